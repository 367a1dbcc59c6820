#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# 50-secure.sh -- what the secure build costs: every libmallet workload of
# section 20 (bench/lib_*.c), the fast-path pair and batch loops of section
# 21, and the sqlite3 and python3 programs of section 23, run under
# build/libmallet.so and build/libmallet-secure.so in turn (A B A B ...),
# 9 repetitions, medians of wall time, CPU time (user + system) and peak
# RSS; per-workload ratios secure / default and their geometric mean. The
# short workloads (churn, producer/consumer, larson, the fast-path loops) run
# 4 times their section 20/21 iterations, and wall time is read from the
# shell's microsecond clock, so that runs of a few hundred milliseconds
# resolve a few percent (/usr/bin/time's is 10 ms); the others, seconds long
# already, run as in section 20.
set -eu
cd "$(dirname "$0")/../.."
export BUILD=${BUILD:-build}
. bench/lib_common.sh
B=$BUILD/bench
for f in "$BUILD/libmallet.so" "$BUILD/libmallet-secure.so"; do
    [ -f "$f" ] || { echo "50-secure: $f not built (make)" >&2; exit 1; }
done
[ -x "$B/lib_fastpath" ] || { echo "50-secure: $B/lib_fastpath not built (make)" >&2; exit 1; }
if [ "$BENCH_QUICK" = 1 ]; then
    reps=3 fp=2000000 rows=50000 docs=20000 scale=1
else
    reps=9 fp=80000000 rows=200000 docs=60000 scale=4
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
lib_make_sql "$work/script.sql" "$rows"
lib_make_py "$work/work.py" "$docs"
lib_synthetic_workloads "$scale"
WORKLOADS+=(
    "fastpath-pair|$B/lib_fastpath pair $fp"
    "fastpath-batch|$B/lib_fastpath batch $((fp / 1000))"
)
command -v sqlite3 >/dev/null &&
    WORKLOADS+=("sqlite3|rm -f $work/db; sqlite3 $work/db < $work/script.sql")
WORKLOADS+=("python3|PYTHONMALLOC=malloc /usr/bin/python3 $work/work.py")
ALLOCATORS=("default $BUILD/libmallet.so" "secure $BUILD/libmallet-secure.so")

raw=$(mktemp)
lib_run_matrix "$raw" "$reps"

echo "## The secure build's cost"
echo
echo "Regenerate: \`$([ "$BENCH_QUICK" = 1 ] && echo 'BENCH_QUICK=1 ')bench/sections/50-secure.sh\`."
echo
echo "The same workloads under \`build/libmallet.so\` (default) and \`build/libmallet-secure.so\`"
echo "(\`make secure\`: a canary after every small request, bytes 8..31 of freed blocks filled and"
echo "checked on reuse, the newest 8 frees of a page sent to the back of its free list, blocks dealt from 8 random runs, guard"
echo "pages), interleaved, $reps repetitions, medians. Each command"
echo "runs as \`/usr/bin/time -f '%e %M %U %S' env LD_PRELOAD=LIB bash -c COMMAND\`, its wall time"
echo "taken from bash's \`\$EPOCHREALTIME\` around it. The short workloads (churn, prodcons, larson and"
echo "the fast-path loops) run $scale times the iterations of section 20 (and 21 for the fast-path loops), so that"
echo "each run is long enough to resolve a few percent; the others run as in section 20."
echo
echo "| workload | command |"
echo "|---|---|"
for w in "${WORKLOADS[@]}"; do echo "| ${w%%|*} | \`${w#*|}\` |"; done
echo
echo "sqlite3 and python3 run the generated script and program of section 23 (\`lib_make_sql\`,"
echo "\`lib_make_py\` in bench/lib_common.sh; the work folder is a temporary one)."
echo
"$PY" - "$raw" <<'PYEOF'
import math, statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
runs, works = {}, []
for w, a, rep, _, kib, status, user, sys_, wall in rows:
    if w not in works:
        works.append(w)
    runs.setdefault((w, a), []).append((float(wall), float(user) + float(sys_), int(kib), int(status)))
def med(w, a, i):
    r = runs.get((w, a), [])
    if not r or any(x[3] != 0 for x in r):
        return None
    return statistics.median(x[i] for x in r)
print("| workload | default wall s | secure wall s | ratio | default CPU s | secure CPU s | ratio | default RSS MiB | secure RSS MiB | ratio |")
print("|---|---|---|---|---|---|---|---|---|---|")
logs = {0: [], 1: [], 2: []}
for w in works:
    cells = []
    for i, scale, f in ((0, 1, "%.3f"), (1, 1, "%.2f"), (2, 1 / 1024, "%.2f")):
        d, s = med(w, "default", i), med(w, "secure", i)
        if d is None or s is None:
            cells += ["failed" if d is None else f % (d * scale),
                      "failed" if s is None else f % (s * scale), "-"]
            continue
        r = s / d if d > 0 else float("nan")
        if d > 0 and s > 0:
            logs[i].append(math.log(r))
        cells += [f % (d * scale), f % (s * scale), "%.2fx" % r]
    print("| %s | %s |" % (w, " | ".join(cells)))
def gm(i):
    return "%.3fx" % math.exp(sum(logs[i]) / len(logs[i])) if logs[i] else "-"
print("| **geometric mean** | | | **%s** | | | **%s** | | | **%s** |" % (gm(0), gm(1), gm(2)))
print()
print("Ratios are secure / default: 1.10x means 10% slower (or larger). The goal is a geometric")
print("mean of at most 1.15x on wall time and no workload above 1.3x. The machine is shared, so single")
print("workloads move by several percent from run to run; CPU time is the steadier column.")
PYEOF
rm -f "$raw"

if command -v valgrind >/dev/null; then
    if [ "$BENCH_QUICK" = 1 ]; then pairs=20000 batches=20; else pairs=200000 batches=200; fi
    echo
    echo "Instructions per \`malloc(32)\`+\`free\` as section 21 counts them (callgrind, loop overhead"
    echo "included), the default build beside the secure one:"
    echo
    echo "| build | pair loop | batch of 1000 |"
    echo "|---|---|---|"
    for a in "${ALLOCATORS[@]}"; do
        lib_fastpath_row "${a%% *}" "${a#* }" "$pairs" "$batches"
    done
fi
