#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# record.sh -- regenerate the traces in bench/traces/: record real programs
# with `mallet trace`, write the synthetic ones with synth.py, compress
# everything with zstd. Each program's work is capped so the whole folder
# stays around a few MB. Run from anywhere after `make`:
#
#   bench/traces/record.sh [NAME...]
#
# With names, only those traces are made again (e.g. `record.sh
# python3-threads cxx-threads`); the synthetic ones come as one, `synth`.
# A multithreaded program's trace numbers its threads (`@T`), so `mallet
# replay --threads` replays it on as many threads.
#
# A program that forks or execs leaves one trace per process (FILE,
# FILE.PID); where a command is a driver (gcc, env), the trace kept is that
# of the process doing the work, the largest one.
set -eu
cd "$(dirname "$0")"
HERE=$PWD
MALLET=${MALLET:-$HERE/../../build/mallet}
PY=/usr/bin/python3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mallet-traces.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ONLY=" $* "

# want NAME: whether NAME is to be made (all of them when no name was given).
want() {
    [ "$ONLY" = "  " ] || [[ $ONLY == *" $1 "* ]]
}

# keep NAME: the largest trace written under $WORK/NAME.trace*, compressed here.
keep() {
    local name=$1 best
    best=$(ls -S "$WORK/$name.trace"* | head -n 1)
    zstd -q -19 -f "$best" -o "$HERE/$name.trace.zst"
    echo "record.sh: $name: $(sed -n 3p "$best" | tr -d ' ') ops -> $name.trace.zst ($(stat -c %s "$HERE/$name.trace.zst") bytes)" >&2
}

trace() {   # trace NAME CMD...
    local name=$1; shift
    want "$name" || return 0
    "$MALLET" trace -o "$WORK/$name.trace" -- "$@" >/dev/null 2>"$WORK/$name.log" || {
        cat "$WORK/$name.log" >&2; return 1; }
    keep "$name"
}

# sqlite3: a table of 20,000 rows, an index, a join and a grouped query.
cat >"$WORK/work.sql" <<'EOF'
create table item(id integer primary key, name text, price real, tag text);
with recursive n(i) as (select 1 union all select i + 1 from n where i < 20000)
insert into item select i, 'item-' || hex(randomblob(6)), (i * 37) % 1000 / 7.0,
       'tag' || (i % 97) from n;
create index item_tag on item(tag);
create table tag(name text primary key, weight integer);
insert into tag select distinct tag, length(tag) from item;
select t.name, count(*), avg(i.price) from item i join tag t on t.name = i.tag
 group by t.name order by 3 desc limit 10;
update item set name = upper(name) where id % 3 = 0;
delete from item where id % 5 = 0;
select count(*), sum(length(name)) from item;
EOF
trace sqlite3 sqlite3 :memory: ".read $WORK/work.sql"

# python3: JSON encode and decode, with Python's own allocator off.
PYTHONMALLOC=malloc trace python3-json "$PY" -c '
import json
rows = [{"id": i, "name": "n%d" % i * (i % 5 + 1), "tags": list(range(i % 12)),
         "score": i / 7} for i in range(2500)]
for _ in range(2):
    text = json.dumps(rows)
    rows = json.loads(text)
print(len(text))'

# gcc: cc1 compiling one file of this repository at -O2.
trace gcc-cc1 gcc -O2 -I"$HERE/../../include" -I"$HERE/../../src" -I"$HERE/../../teach" \
    -c "$HERE/../../tools/tracefile.c" -o "$WORK/tracefile.o"

# git: history and status of a small generated repository.
if want git-log; then
    REPO=$WORK/repo
    git init -q "$REPO"
    for i in $(seq 1 30); do
        for f in 1 2 3 4 5 6; do seq "$i" $((i * f + 40)) >"$REPO/file$f.txt"; done
        git -C "$REPO" add -A
        git -C "$REPO" -c user.name=bench -c user.email=bench@localhost commit -q -m "change $i"
    done
    echo change >>"$REPO/file3.txt"
    trace git-log git --no-pager -C "$REPO" log -p --stat
fi

# Multithreaded: two Python threads building and parsing JSON (each thread
# calls malloc itself, Python's allocator off).
PYTHONMALLOC=malloc trace python3-threads "$PY" -c '
import json, threading
def work(k):
    for i in range(80):
        d = {"k": k, "v": [str(j) * 3 for j in range(60)]}
        json.loads(json.dumps(d))
ts = [threading.Thread(target=work, args=(k,)) for k in range(2)]
[t.start() for t in ts]
[t.join() for t in ts]'

# Multithreaded C++: six threads filling std::maps of std::vectors, then
# moving them into one shared map under a mutex; the main thread frees
# what the workers made.
if want cxx-threads; then
    cat >"$WORK/threads.cc" <<'EOF'
#include <map>
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
            for (int i = 0; i < 6000; i++) {
                auto key = "k" + std::to_string((i * 31 + t) % 400);
                local[key].push_back(i);
                if (local[key].size() > 30) local.erase(key);
            }
            std::lock_guard<std::mutex> g(m);
            for (auto &kv : local) shared[kv.first + ":" + std::to_string(t)] = std::move(kv.second);
        });
    for (auto &t : ts) t.join();
    return shared.size() == 0;
}
EOF
    g++ -O2 -pthread -o "$WORK/threads" "$WORK/threads.cc"
    trace cxx-threads "$WORK/threads"
fi

# Synthetic patterns.
if want synth; then
    "$PY" "$HERE/synth.py" "$WORK"
    for name in frag-worst realloc-growth producer-consumer; do keep "$name"; done
fi
