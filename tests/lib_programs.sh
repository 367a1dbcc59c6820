#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# lib_programs.sh -- real programs run on libmallet through LD_PRELOAD, each
# output compared with the same run on glibc: python3 (json, re, threads),
# sqlite3 on a generated SQL script, git on a generated repository, gcc and
# g++ compiling and running programs, a C++ program with std containers across
# threads, and redis-server driven by redis-benchmark and redis-cli. It also
# checks that the library is really loaded (/proc/PID/maps).
#
# Env: BUILD (build folder, default build), MALLET_PRELOAD (the library to
# test, default $BUILD/libmallet.so). Exit 77 when the library is not built.
# Prints "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
LIB=${MALLET_PRELOAD:-$PWD/$BUILD/libmallet.so}
case $LIB in /*) ;; *) LIB=$PWD/$LIB ;; esac
if [ ! -f "$LIB" ]; then
    echo "skip: $LIB is not built"
    exit 77
fi
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/mallet-programs.XXXXXX)
REDIS_PID=
cleanup() {
    [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
SECONDS=0
passed=0 failed=0 skipped=0

pass() { passed=$((passed + 1)); echo "ok    $1 (${SECONDS}s)"; }
fail() { failed=$((failed + 1)); echo "FAIL  $1: $2"; }
skip() { skipped=$((skipped + 1)); echo "skip  $1: $2"; }

# same NAME CMD... -- run CMD on glibc and on the library; the exit status,
# stdout and stderr must match.
same() {
    local name=$1; shift
    local g=$WORK/$name.glibc m=$WORK/$name.mallet sg sm
    "$@" >"$g.out" 2>"$g.err"; sg=$?
    LD_PRELOAD=$LIB "$@" >"$m.out" 2>"$m.err"; sm=$?
    if [ "$sg" -ne 0 ]; then
        fail "$name" "exits $sg even on glibc: $(head -c 300 "$g.err")"
    elif [ "$sm" -ne 0 ]; then
        fail "$name" "exits $sm on the library: $(head -c 600 "$m.err")"
    elif ! cmp -s "$g.out" "$m.out"; then
        fail "$name" "stdout differs: $(diff "$g.out" "$m.out" | head -n 10)"
    elif ! cmp -s "$g.err" "$m.err"; then
        fail "$name" "stderr differs: $(diff "$g.err" "$m.err" | head -n 10)"
    elif [ ! -s "$g.out" ]; then
        fail "$name" "printed nothing"
    else
        pass "$name"
    fi
}

# --- the library is really in the process -----------------------------------
if LD_PRELOAD=$LIB cat /proc/self/maps | grep -q "$(basename "$LIB")"; then
    pass library_is_mapped_in_the_process
else
    fail library_is_mapped_in_the_process "$(basename "$LIB") not in /proc/self/maps"
fi

# libmallet's own summary at exit: its counters saw the program's mallocs.
if [ "$(basename "$LIB")" = libmallet.so ]; then
    calls=$(MALLET_STATS=1 LD_PRELOAD=$LIB $PY -c 'print(sum(len(str(i)) for i in range(100000)))' 2>&1 >/dev/null |
        awk '$2 == "malloc_calls" { print $3 }')
    if [ -n "$calls" ] && [ "$calls" -gt 1000 ]; then
        pass mallet_stats_summary_counts_the_programs_mallocs
    else
        fail mallet_stats_summary_counts_the_programs_mallocs "MALLET_STATS=1 printed malloc_calls '$calls'"
    fi
fi

# --- python3 -------------------------------------------------------------------
cat >"$WORK/work.py" <<'EOF'
import json, re, threading, hashlib
def build(seed):
    return {"id": seed, "name": "item-%d" % seed, "tags": ["t%d" % (seed * k % 97) for k in range(20)],
            "nested": {"values": list(range(seed % 50)), "text": "word " * (seed % 30)}}
docs = [build(i) for i in range(20000)]
blob = json.dumps(docs, sort_keys=True)
back = json.loads(blob)
assert back == docs
words = re.findall(r"t(\d+)", blob)
counts = {}
for w in words:
    counts[w] = counts.get(w, 0) + 1
results = [None] * 8
def worker(k):
    acc = []
    for i in range(3000):
        s = json.dumps({"k": k, "i": i, "pad": "x" * (i % 200)})
        acc.append(re.sub(r"\d", "#", s))
    results[k] = hashlib.sha256("".join(acc).encode()).hexdigest()
threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(len(blob), hashlib.sha256(blob.encode()).hexdigest())
print(sorted(counts.items())[:10])
print(results)
EOF
same python3_json_re_threads env PYTHONMALLOC=malloc $PY "$WORK/work.py"

# --- sqlite3 -------------------------------------------------------------------
if command -v sqlite3 >/dev/null; then
    $PY - "$WORK/script.sql" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    f.write("CREATE TABLE person(id INTEGER PRIMARY KEY, name TEXT, city INTEGER, score REAL);\n")
    f.write("CREATE TABLE city(id INTEGER PRIMARY KEY, name TEXT);\n")
    f.write("BEGIN;\n")
    for i in range(100):
        f.write("INSERT INTO city VALUES(%d, 'city-%d');\n" % (i, i))
    for i in range(20000):
        f.write("INSERT INTO person VALUES(%d, 'person-%d-%s', %d, %d.%d);\n"
                % (i, i, "x" * (i % 40), i * 7 % 100, i % 1000, i % 10))
    f.write("COMMIT;\n")
    f.write("CREATE INDEX person_city ON person(city);\n")
    f.write("SELECT count(*), sum(score) FROM person;\n")
    f.write("SELECT name FROM person WHERE city = 42 ORDER BY id LIMIT 5;\n")
    f.write("SELECT c.name, count(*), round(avg(p.score), 3) FROM person p JOIN city c ON p.city = c.id "
            "GROUP BY c.name ORDER BY 2 DESC, 1 LIMIT 10;\n")
    f.write("SELECT city, group_concat(id) FROM (SELECT * FROM person WHERE id % 997 = 0) GROUP BY city;\n")
    f.write("UPDATE person SET name = upper(name) || name WHERE id % 3 = 0;\n")
    f.write("DELETE FROM person WHERE id % 5 = 0;\n")
    f.write("SELECT count(*), max(length(name)) FROM person;\n")
    f.write("VACUUM;\n")
    f.write("SELECT count(*) FROM person p1 JOIN person p2 ON p1.city = p2.city WHERE p1.id < 300 AND p2.id < 300;\n")
EOF
    sqlite_work() { rm -f "$WORK/db"; sqlite3 "$WORK/db" <"$WORK/script.sql"; }
    same sqlite3_script sqlite_work
else
    skip sqlite3_script "sqlite3 is not installed"
fi

# --- git -----------------------------------------------------------------------
# A subshell: the function moves to the repository and sets HOME.
git_work() (
    repo=$WORK/repo
    rm -rf "$repo" "$WORK/home"
    mkdir -p "$repo" "$WORK/home"
    export HOME=$WORK/home GIT_CONFIG_NOSYSTEM=1 \
        GIT_AUTHOR_NAME=Test GIT_AUTHOR_EMAIL=test@example.org GIT_AUTHOR_DATE='2024-01-01T00:00:00Z' \
        GIT_COMMITTER_NAME=Test GIT_COMMITTER_EMAIL=test@example.org GIT_COMMITTER_DATE='2024-01-01T00:00:00Z'
    cd "$repo" || return 1
    git init -q -b main . || return 1
    for c in 1 2 3 4 5; do
        for f in $(seq 1 60); do
            printf 'file %d commit %d\n%s\n' "$f" "$c" "$(seq "$f" $((f * c + 40)))" >"f$f.txt"
        done
        git add -A && git commit -q -m "commit $c" || return 1
    done
    git log --stat --format='%H %s' | head -n 200
    git gc -q --aggressive || return 1
    git fsck --no-progress 2>&1
    git count-objects -v | grep -E '^(count|in-pack|packs)'
    git cat-file -p HEAD^{tree} | head -n 20
)
same git_init_add_commit_log_gc git_work

# --- gcc and g++ ---------------------------------------------------------------
cat >"$WORK/prog.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
int main(void) {
    enum { N = 5000 };
    char **v = malloc(N * sizeof *v);
    for (int i = 0; i < N; i++) { v[i] = malloc(32); snprintf(v[i], 32, "s%07d", (i * 7919) % N); }
    qsort(v, N, sizeof *v, cmp);
    unsigned long h = 5381;
    for (int i = 0; i < N; i++) { for (char *c = v[i]; *c; c++) h = h * 33 + (unsigned char)*c; free(v[i]); }
    free(v);
    printf("%s %lu\n", "sorted", h);
    return 0;
}
EOF
cat >"$WORK/prog.cc" <<'EOF'
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
int main() {
    std::map<std::string, std::vector<int>> shared;
    std::mutex m;
    std::vector<std::thread> ts;
    for (int t = 0; t < 6; t++)
        ts.emplace_back([&, t] {
            std::map<std::string, std::vector<int>> local;
            for (int i = 0; i < 20000; i++) {
                auto key = "k" + std::to_string((i * 31 + t) % 500);
                local[key].push_back(i);
                if (local[key].size() > 40) local.erase(key);
            }
            auto owned = std::make_unique<std::vector<std::string>>();
            for (auto &kv : local) owned->push_back(kv.first + ":" + std::to_string(kv.second.size()));
            std::lock_guard<std::mutex> g(m);
            for (auto &s : *owned) shared[s].push_back(t);
        });
    for (auto &t : ts) t.join();
    size_t total = 0;
    for (auto &kv : shared) { std::sort(kv.second.begin(), kv.second.end()); total += kv.second.size(); }
    std::printf("%zu keys, %zu entries, first %s, last %s\n", shared.size(), total,
                shared.begin()->first.c_str(), shared.rbegin()->first.c_str());
    return 0;
}
EOF
compile_c() { gcc -O2 -o "$WORK/prog-c" "$WORK/prog.c" && "$WORK/prog-c"; }
compile_cc() { g++ -O2 -pthread -o "$WORK/prog-cc" "$WORK/prog.cc" && "$WORK/prog-cc"; }
same gcc_compiles_and_runs compile_c
same gxx_compiles_and_runs compile_cc
g++ -O2 -pthread -o "$WORK/containers" "$WORK/prog.cc"
same cxx_std_containers_across_threads "$WORK/containers"

# --- redis ---------------------------------------------------------------------
free_port() {
    $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
    port=$(free_port)
    LD_PRELOAD=$LIB redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no --logfile "$WORK/redis.log" &
    REDIS_PID=$!
    up=0
    for _ in $(seq 50); do
        [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && { up=1; break; }
        sleep 0.1
    done
    if [ $up = 0 ]; then
        fail redis_server_starts "no PONG on port $port: $(tail -n 5 "$WORK/redis.log")"
    else
        if grep -q "$(basename "$LIB")" "/proc/$REDIS_PID/maps" 2>/dev/null; then
            pass redis_server_runs_on_the_library
        else
            fail redis_server_runs_on_the_library "library not in /proc/$REDIS_PID/maps"
        fi
        # The default suite's commands, one per data type, without the
        # 300..600-element LRANGE runs (a minute more, no allocation pattern
        # LRANGE_100 lacks) and the PING/RPUSH/LPOP/ZPOPMIN twins.
        timeout 150 redis-benchmark -p "$port" -n 100000 -q \
            -t set,get,incr,lpush,rpop,sadd,hset,spop,zadd,lrange_100,mset \
            2>&1 | tr '\r' '\n' | grep -E 'requests per second|rror' >"$WORK/bench.out"
        lines=$(grep -c 'requests per second' "$WORK/bench.out")
        if [ "$lines" -ge 11 ] && ! grep -qi error "$WORK/bench.out" && kill -0 "$REDIS_PID" 2>/dev/null; then
            pass redis_benchmark_completes
        else
            fail redis_benchmark_completes "$lines result lines: $(head -c 400 "$WORK/bench.out")"
        fi
        ok=1
        for i in 1 2 3 4 5; do
            v=$(printf 'value-%d-%0500d' "$i" "$i")
            [ "$(redis-cli -p "$port" set "key:$i" "$v")" = OK ] || ok=0
            [ "$(redis-cli -p "$port" get "key:$i")" = "$v" ] || ok=0
        done
        [ "$(redis-cli -p "$port" dbsize)" -ge 5 ] || ok=0
        [ $ok = 1 ] && pass redis_cli_set_get || fail redis_cli_set_get "a SET/GET pair did not round-trip"
    fi
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1
    for _ in $(seq 100); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$REDIS_PID" 2>/dev/null
    wait "$REDIS_PID"; status=$?
    REDIS_PID=
    [ $status = 0 ] && pass redis_server_shuts_down_cleanly ||
        fail redis_server_shuts_down_cleanly "exit $status: $(tail -n 5 "$WORK/redis.log")"
else
    skip redis "redis-server or redis-benchmark is not installed"
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
