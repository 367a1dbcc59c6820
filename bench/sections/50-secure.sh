#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# 50-secure.sh -- what the secure build costs: every libmallet workload of
# section 20 (bench/lib_*.c), the fast-path pair and batch loops of section
# 21, and the sqlite3 and python3 programs of section 23, run under
# build/libmallet.so, build/libmallet-secure.so and LLVM's standalone Scudo
# (bench/scudo.sh; package libclang-rt-14-dev, which `make deps` installs)
# in turn (A B C A B C ...), 9 repetitions, medians of wall time, CPU time
# (user + system) and peak RSS; per-workload ratios secure / default and
# secure / Scudo and their geometric means. Without Scudo the section says
# so and compares the two builds only. Then two side measurements: the
# secure build against `make SECURE=edges` and `make SECURE=whole` (free
# blocks filled at their two ends only, or whole at every size) on
# four workloads and python3, and python3 and sqlite3 with the check at
# exit off and on. Every workload runs the section 20/21/23 programs with
# counts chosen so that the default build's run lasts at least a second
# (the secure build's and Scudo's longer), 5 repetitions; wall time is read
# from the shell's microsecond clock. BENCH_QUICK=1 runs a twentieth of it,
# 3 repetitions: a smoke test of the script, not figures to quote.
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
    reps=3 div=20
else
    reps=5 div=1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# n COUNT -- COUNT / div, at least 1.
n() { local v=$(($1 / div)); echo $((v > 0 ? v : 1)); }
fp=$(n 240000000) rows=$(n 130000) docs=$(n 25000)
lib_make_sql "$work/script.sql" "$rows"
lib_make_py "$work/work.py" "$docs"
WORKLOADS=(
    "churn-1t|$B/lib_churn 1 $(n 200000000)"
    "churn-2t|$B/lib_churn 2 $(n 100000000)"
    "churn-4t|$B/lib_churn 4 $(n 60000000)"
    "prodcons-2x2|$B/lib_xthread 2 $(n 4000000)"
    "larson-4t|$B/lib_larson 4 40 $(n 2000000)"
    "realloc-grow|$B/lib_realloc 32 262144 $(n 48)"
    "large-blocks|$B/lib_large $(n 12000)"
    "bigheap-1t|$B/lib_bigheap 1 262144 $(n 10000000)"
    "bigheap-2t|$B/lib_bigheap 2 262144 $(n 10000000)"
    "server-2t|$B/lib_server 2 50000 $(n 90)"
    "fanout-1x2|$B/lib_fanout 2 $(n 40000000)"
    "bigbuf|$B/lib_bigbuf 20 $(n 200)"
    "fastpath-pair|$B/lib_fastpath pair $fp"
    "fastpath-batch|$B/lib_fastpath batch $((fp / 1000))"
)
command -v sqlite3 >/dev/null &&
    WORKLOADS+=("sqlite3|rm -f $work/db; sqlite3 $work/db < $work/script.sql")
WORKLOADS+=("python3|PYTHONMALLOC=malloc /usr/bin/python3 $work/work.py")
side=("${WORKLOADS[0]}" "${WORKLOADS[4]}" "${WORKLOADS[7]}" "${WORKLOADS[9]}" "${WORKLOADS[-1]}")
ALLOCATORS=("default $BUILD/libmallet.so" "secure $BUILD/libmallet-secure.so")
scudo=$(bench/scudo.sh) && ALLOCATORS+=("scudo $scudo")

raw=$(mktemp)
lib_run_matrix "$raw" "$reps"

echo "## The secure build's cost"
echo
echo "Regenerate: \`$([ "$BENCH_QUICK" = 1 ] && echo 'BENCH_QUICK=1 ')bench/sections/50-secure.sh\`."
echo
echo "The same workloads under \`build/libmallet.so\` (default) and \`build/libmallet-secure.so\`"
echo "(\`make secure\`: a tag at the end of every small block and the gap up to it checked at free,"
echo "every byte of freed blocks of up to 1 KiB (the first and last 64 of larger ones) filled and checked on reuse, the newest 8 frees of a page"
echo "sent to the back of its free list, blocks dealt from 8 random runs, large blocks ending at a guard"
echo "page, inaccessible once freed and quarantined behind the next 8 large frees, and from 2 MiB up"
echo "placed on whole huge pages, malloc(0) in an inaccessible region, the heap checked at exit, guard"
if [ -n "$scudo" ]; then
    echo "pages), and LLVM's standalone Scudo, a hardened allocator, as a yardstick (\`$scudo\`,"
    echo "Debian's libclang-rt-14-dev, default options), interleaved, $reps repetitions, medians. Each command"
else
    echo "pages), interleaved, $reps repetitions, medians. LLVM's standalone Scudo, the hardened allocator"
    echo "this section compares with, is not installed here (package libclang-rt-14-dev): its columns are"
    echo "left out. Each command"
fi
echo "runs as \`/usr/bin/time -f '%e %M %U %S' env LD_PRELOAD=LIB bash -c COMMAND\`, its wall time"
echo "taken from bash's \`\$EPOCHREALTIME\` around it. The counts are chosen so that each run under the"
echo "default build lasts at least a second$([ "$BENCH_QUICK" = 1 ] && echo " (this is a BENCH_QUICK run: a twentieth of that, figures not to quote)")."
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
runs, works, allocs = {}, [], []
for w, a, rep, _, kib, status, user, sys_, wall in rows:
    if w not in works:
        works.append(w)
    if a not in allocs:
        allocs.append(a)
    runs.setdefault((w, a), []).append((float(wall), float(user) + float(sys_), int(kib), int(status)))
def med(w, a, i):
    r = runs.get((w, a), [])
    if not r or any(x[3] != 0 for x in r):
        return None
    return statistics.median(x[i] for x in r)
names = {"default": "default", "secure": "secure", "scudo": "Scudo"}
ratios = [("secure", "default")] + ([("secure", "scudo")] if "scudo" in allocs else [])
def table(i, title, unit, scale, fmt):
    print(title + ":")
    print()
    print("| workload | " + " | ".join("%s %s" % (names[a], unit) for a in allocs) + " | " +
          " | ".join("%s / %s" % (names[a], names[b]) for a, b in ratios) + " |")
    print("|---|" + "---|" * (len(allocs) + len(ratios)))
    logs = {r: [] for r in ratios}
    for w in works:
        cells = []
        for a in allocs:
            v = med(w, a, i)
            cells.append("failed" if v is None else fmt % (v * scale))
        for a, b in ratios:
            x, y = med(w, a, i), med(w, b, i)
            if x is None or y is None or x <= 0 or y <= 0:
                cells.append("-")
                continue
            logs[(a, b)].append(math.log(x / y))
            cells.append("%.2fx" % (x / y))
        print("| %s | %s |" % (w, " | ".join(cells)))
    gm = ["**%.3fx**" % math.exp(sum(l) / len(l)) if l else "-" for l in logs.values()]
    print("| **geometric mean** |" + " |" * len(allocs) + " %s |" % " | ".join(gm))
    print()
table(0, "Median wall time", "s", 1, "%.3f")
table(1, "Median CPU time (user + system)", "s", 1, "%.2f")
table(2, "Median peak RSS", "MiB", 1 / 1024, "%.2f")
print("A cell says failed when any run of it exited non-zero. Ratios below 1 mean the secure build")
print("is faster (or smaller): 1.10x means 10% slower (or larger). The goal is a geometric mean of")
print("secure / default of at most 1.15x on wall time and no workload above 1.4x, and below Scudo on every workload. The machine is")
print("shared, so single workloads move by several percent from run to run; CPU time is the steadier")
print("column.")
PYEOF
rm -f "$raw"

# The fill's extent: `make SECURE=edges` (free blocks filled in their first
# and last 64 bytes), the secure build (every byte of a block of up to 1 KiB,
# the two ends above) and `make SECURE=whole` (every block whole), on
# the workloads where block sizes vary most; and what the check at exit
# costs, python3 and sqlite3 with MALLET_CHECK_AT_EXIT 1 and 0.
whole=$BUILD/secure-whole/libmallet.so edges=$BUILD/secure-edges/libmallet.so
make -s SECURE=whole lib >/dev/null 2>&1 || true
make -s SECURE=edges lib >/dev/null 2>&1 || true
side_table() {   # side_table RAW: median wall per workload and allocator, ratio last / first
    "$PY" - "$1" <<'PYEOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
runs, works, allocs = {}, [], []
for w, a, rep, _, kib, status, user, sys_, wall in rows:
    works.count(w) or works.append(w)
    allocs.count(a) or allocs.append(a)
    runs.setdefault((w, a), []).append(float(wall) if int(status) == 0 else None)
print("| workload | " + " | ".join(a + " wall s" for a in allocs) + " | " +
      " | ".join("%s / %s" % (a, allocs[0]) for a in allocs[1:]) + " |")
print("|---|" + "---|" * (2 * len(allocs) - 1))
for w in works:
    m = [None if None in runs[(w, a)] else statistics.median(runs[(w, a)]) for a in allocs]
    cells = ["failed" if x is None else "%.3f" % x for x in m]
    ratios = ["-" if None in (x, m[0]) else "%.2fx" % (x / m[0]) for x in m[1:]]
    print("| %s | %s | %s |" % (w, " | ".join(cells), " | ".join(ratios)))
PYEOF
}
if [ -f "$whole" ] && [ -f "$edges" ]; then
    WORKLOADS=("${side[@]}")
    ALLOCATORS=("edges $edges" "1KiB $BUILD/libmallet-secure.so" "whole $whole")
    raw=$(mktemp)
    lib_run_matrix "$raw" "$reps"
    echo
    echo "The fill's extent. \`edges\` is \`make SECURE=edges\` (a free block's first and last 64 bytes"
    echo "hold the fill: every byte of a block of up to 128); \`1KiB\` is the secure build as shipped"
    echo "(every byte of a block of up to 1 KiB, the two ends above); \`whole\` is \`make SECURE=whole\`"
    echo "(every byte of every free block filled at free and checked when handed out again). Same"
    echo "method, $reps repetitions, medians:"
    echo
    side_table "$raw"
    rm -f "$raw"
fi
# The same command with the check off, then on: the allocator is the same
# library, the variable goes into the command.
WORKLOADS=()
progs=("python3|PYTHONMALLOC=malloc /usr/bin/python3 $work/work.py")
command -v sqlite3 >/dev/null && progs+=("sqlite3|rm -f $work/db; sqlite3 $work/db < $work/script.sql")
for p in "${progs[@]}"; do
    WORKLOADS+=("${p%%|*}:off|export MALLET_CHECK_AT_EXIT=0; ${p#*|}" "${p%%|*}:on|${p#*|}")
done
ALLOCATORS=("secure $BUILD/libmallet-secure.so")
raw=$(mktemp)
lib_run_matrix "$raw" "$reps"
echo
echo "The check at exit (every free block of the heap, \`check_at_exit\`, on by default in the secure"
echo "build), off (\`MALLET_CHECK_AT_EXIT=0\`) and on, same method:"
echo
"$PY" - "$raw" <<'PYEOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
runs, progs = {}, []
for w, a, rep, _, kib, status, user, sys_, wall in rows:
    prog, state = w.split(":")
    progs.count(prog) or progs.append(prog)
    runs.setdefault((prog, state), []).append(float(wall))
print("| program | check off, wall s | check on, wall s | on / off |")
print("|---|---|---|---|")
for p in progs:
    off, on = statistics.median(runs[(p, "off")]), statistics.median(runs[(p, "on")])
    print("| %s | %.3f | %.3f | %.3fx |" % (p, off, on, on / off))
PYEOF
rm -f "$raw"

if command -v valgrind >/dev/null; then
    if [ "$BENCH_QUICK" = 1 ]; then pairs=20000 batches=20; else pairs=200000 batches=200; fi
    echo
    echo "Instructions per \`malloc(32)\`+\`free\` as section 21 counts them (callgrind, loop overhead"
    echo "included), the default build beside the secure one$([ -n "$scudo" ] &&
        echo " (Scudo stops under valgrind with \"internal map or unmap failure\", so it has no row)"):"
    echo
    echo "| build | pair loop | batch of 1000 |"
    echo "|---|---|---|"
    # (ALLOCATORS was narrowed to the secure build for the check at exit.)
    lib_fastpath_row default "$BUILD/libmallet.so" "$pairs" "$batches"
    lib_fastpath_row secure "$BUILD/libmallet-secure.so" "$pairs" "$batches"
fi
