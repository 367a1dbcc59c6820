#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# 23-lib-programs.sh -- real programs on every allocator: sqlite3 running a
# generated SQL script, python3 (PYTHONMALLOC=malloc) doing JSON, regex and
# thread work, and redis-server's requests per second under redis-benchmark.
set -eu
cd "$(dirname "$0")/../.."
export BUILD=${BUILD:-build}
. bench/lib_common.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "$BENCH_QUICK" = 1 ]; then
    reps=3 rows=50000 docs=20000 requests=20000
else
    reps=5 rows=200000 docs=60000 requests=100000
fi
lib_make_sql "$work/script.sql" "$rows"
lib_make_py "$work/work.py" "$docs"
WORKLOADS=()
command -v sqlite3 >/dev/null &&
    WORKLOADS+=("sqlite3|rm -f $work/db; sqlite3 $work/db < $work/script.sql")
WORKLOADS+=("python3|PYTHONMALLOC=malloc /usr/bin/python3 $work/work.py")
raw=$(mktemp)
lib_run_matrix "$raw" "$reps"

echo "## libmallet and its peers: real programs"
echo
echo "Regenerate: \`$([ "$BENCH_QUICK" = 1 ] && echo 'BENCH_QUICK=1 ')bench/sections/23-lib-programs.sh\`."
echo "sqlite3 runs a generated script into a new database file ($rows inserts in one transaction, an"
echo "index, 50 indexed queries, a join with group by, updates, deletes, vacuum: \`lib_make_sql\` in"
echo "bench/lib_common.sh); python3 runs with PYTHONMALLOC=malloc on $docs JSON documents plus 4 threads"
echo "of JSON and regex work (\`lib_make_py\`)."
echo
lib_tables "$raw" bench/plots/programs.svg
rm -f "$raw" bench/plots/programs.svg.dat

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "redis: not installed, skipped."
    echo
    exit 0
fi
port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
tests=set,get,lpush,lpop,sadd,hset,zadd,lrange_100
echo "### redis-server: requests per second"
echo
echo "\`redis-benchmark -p PORT -n $requests -q -t $tests\` against \`LD_PRELOAD=LIB redis-server --port PORT --save ''\`,"
echo "each allocator's server in turn, $reps rounds interleaved; median requests per second (higher is better)."
echo
for rep in $(seq "$reps"); do
    for a in "${ALLOCATORS[@]}"; do
        name=${a%% *} lib=${a#* }
        echo "  redis rep $rep: $name" >&2
        pre=()
        [ "$lib" != - ] && pre=(env LD_PRELOAD="$lib")
        "${pre[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            --logfile "$work/redis.log" &
        pid=$!
        for _ in $(seq 50); do
            [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
            sleep 0.1
        done
        timeout 300 redis-benchmark -p "$port" -n "$requests" -q -t "$tests" 2>/dev/null |
            tr '\r' '\n' | grep 'requests per second' |
            sed -E "s/^ *([A-Z_0-9]+).*: ([0-9.]+) requests per second.*/$name \1 \2/" >>"$work/redis.raw"
        redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
done
"$PY" - "$work/redis.raw" <<'PYEOF'
import statistics, sys
vals, allocs, tests = {}, [], []
for line in open(sys.argv[1]):
    a, t, v = line.split()
    if a not in allocs: allocs.append(a)
    if t not in tests: tests.append(t)
    vals.setdefault((t, a), []).append(float(v))
print("| test | " + " | ".join(allocs) + " |")
print("|---|" + "---|" * len(allocs))
for t in tests:
    base = statistics.median(vals[(t, "glibc")]) if (t, "glibc") in vals else None
    cells = []
    for a in allocs:
        if (t, a) not in vals:
            cells.append("failed")
            continue
        m = statistics.median(vals[(t, a)])
        cells.append("%.0f" % m + (" (%.2fx)" % (m / base) if base and a != "glibc" else ""))
    print("| %s | %s |" % (t, " | ".join(cells)))
print()
PYEOF
