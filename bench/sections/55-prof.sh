#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# 55-prof.sh -- what the sampling heap profiler (src/prof/prof.h, MALLET_PROF=1)
# costs. First the fast-path instruction counts of section 21 for libmallet
# as built (prof=0), for libmallet built from the last commit before the
# profiler, and with prof=1: the profiler's promise is that prof=0 leaves the
# fast paths within one instruction per pair of the build before it. Then
# every workload of section 50 (section 20's, the fast-path loops, sqlite3
# and python3 of section 23) with prof=0 and prof=1 in turn -- the same
# library, only the environment differs -- medians of wall time, CPU time and
# peak RSS, and the samples each run took. The machine's noise is larger than
# the 5% to be seen, so each workload runs once more under perf, which gives
# the profiler's share of its CPU directly; the one where that share is
# highest is shown symbol by symbol.
set -eu
cd "$(dirname "$0")/../.."
export BUILD=${BUILD:-build}
. bench/lib_common.sh
B=$BUILD/bench
LIB=$BUILD/libmallet.so
PRE=c2cc90c   # the last commit before the profiler
[ -f "$LIB" ] || { echo "55-prof: $LIB not built (make)" >&2; exit 1; }
[ -x "$B/lib_fastpath" ] || { echo "55-prof: $B/lib_fastpath not built (make)" >&2; exit 1; }
# The profiler at its defaults: nothing from the caller's environment.
unset MALLET_PROF MALLET_PROF_SAMPLE_KB MALLET_PROF_DIR MALLET_PROF_AT_EXIT MALLET_PROF_PEAK
if [ "$BENCH_QUICK" = 1 ]; then
    reps=5 fp=2000000 rows=50000 docs=20000 scale=1 pairs=20000 batches=20
else
    reps=9 fp=80000000 rows=200000 docs=60000 scale=4 pairs=200000 batches=200
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
quick=
[ "$BENCH_QUICK" = 1 ] && quick='BENCH_QUICK=1 '

echo "## The heap profiler's cost"
echo
echo "Regenerate: \`${quick}bench/sections/55-prof.sh\`. The profiler (\`MALLET_PROF=1\`, src/prof/prof.h) samples"
echo "about one allocation per 512 KiB allocated (\`MALLET_PROF_SAMPLE_KB\`, left at its default here),"
echo "records its call stack (src/prof/prof_unwind.c: each return address's unwind rule read once and kept,"
echo "libgcc's unwinder where a rule does not fit) and writes a profile at exit; the peak profile"
echo "(\`MALLET_PROF_PEAK\`) is off, as it is by default. Its promise: with prof=0 the malloc and free"
echo "fast paths keep their instruction counts (within 1 per pair), and with prof=1 the workloads"
echo "below run at most 5% slower."
echo

# --- fast-path instruction counts -------------------------------------------------
if command -v valgrind >/dev/null; then
    pre_lib=$(lib_build_at "$PRE" "$work/pre") || pre_lib=
    mkdir "$work/fp-prof"
    fp_rows=()
    echo "  callgrind: before, prof=0, prof=1" >&2
    [ -n "$pre_lib" ] && fp_rows+=("$(lib_fastpath_row "before the profiler ($PRE)" "$pre_lib" "$pairs" "$batches")")
    fp_rows+=("$(lib_fastpath_row "prof=0 (as built)" "$LIB" "$pairs" "$batches")")
    fp_rows+=("$(MALLET_PROF=1 MALLET_PROF_DIR=$work/fp-prof lib_fastpath_row "prof=1" "$LIB" "$pairs" "$batches")")
    if [ -n "$pre_lib" ]; then
        note="The first row is libmallet built from $PRE, the commit before the profiler (\`git archive $PRE\`
into a temporary folder, \`make lib\` there); the others are \`$LIB\`, the last with
\`MALLET_PROF=1\`. The prof=1 figures include the samples' own work (their stacks, their
records), spread over the pairs."
    else
        note="The build before the profiler ($PRE) could not be made here (no git history), so
its row is missing; the rows are \`$LIB\` with prof=0 and with \`MALLET_PROF=1\`."
    fi
    lib_fastpath_table "$pairs" "$batches" "$note" "${fp_rows[@]}"
    if [ -n "$pre_lib" ]; then
        printf '%s\n' "${fp_rows[@]}" | awk -F'|' '
            { p[NR] = $3 + 0; b[NR] = $4 + 0 }
            END {
                printf "prof=0 minus the build before the profiler: %+.1f instructions per pair, %+.1f per batch pair", p[2] - p[1], b[2] - b[1]
                printf " (%s); prof=1 minus prof=0: %+.1f and %+.1f.\n", (p[2] - p[1] <= 1 && b[2] - b[1] <= 1) ? "within the bar of 1" : "over the bar of 1", p[3] - p[2], b[3] - b[2]
            }'
        echo
    fi
fi

# --- time, CPU and peak RSS, prof=0 against prof=1 -----------------------------
lib_cost_workloads "$scale" "$fp" "$rows" "$docs" "$work"
shown=("${WORKLOADS[@]}")
# Each workload twice, off then on, so lib_run_matrix interleaves them (off,
# on, off, on, ...); the profiles of the runs with prof=1 go to one folder
# per workload, counted afterwards.
paired=()
for w in "${shown[@]}"; do
    name=${w%%|*} cmd=${w#*|}
    mkdir -p "$work/prof/$name"
    paired+=("$name:off|export MALLET_PROF=0; $cmd"
        "$name:on|export MALLET_PROF=1 MALLET_PROF_DIR=$work/prof/$name; $cmd")
done
WORKLOADS=("${paired[@]}")
ALLOCATORS=("mallet $LIB")
raw=$work/raw
lib_run_matrix "$raw" "$reps"

# Each workload once more with prof=1 under perf. The shares: a function of
# the profiler on the stack, a sampled allocation, the stack walk
# (prof_unwind.c, and libgcc's unwinder it may fall back to or find an FDE
# with), writing the profile at exit.
groups="mallet__prof*,mallet_prof_dump*,prof_at_exit*,unwind_step*,_Unwind_*
    mallet__prof_alloc*,mallet__prof_large_record* mallet__prof_unwind*,_Unwind_* mallet__prof_write*"
WORKLOADS=("${shown[@]}")
mkdir "$work/perf-prof"
lib_perf_workloads "$LIB" "$work/perf" "$groups" MALLET_PROF=1 MALLET_PROF_DIR="$work/perf-prof"
shares=$work/perf/shares top_name=$PERF_TOP_NAME top_cmd=$PERF_TOP_CMD

echo "### Time and memory, prof=0 against prof=1"
echo
echo "Each workload with \`MALLET_PROF=0\` and with \`MALLET_PROF=1 MALLET_PROF_DIR=TMP\`, the same library"
echo "(\`$LIB\`), in turn (off, on, off, on, ...), $reps repetitions of each, medians. A command"
echo "runs as \`/usr/bin/time -f '%e %M %U %S' env LD_PRELOAD=$LIB bash -c 'export MALLET_PROF=...; COMMAND'\`,"
echo "its wall time read from bash's \`\$EPOCHREALTIME\` around it. The workloads are section 50's:"
if [ "$scale" != 1 ]; then
    echo "section 20's with the short ones (churn, prodcons, larson) at $scale times their iterations,"
else
    echo "section 20's,"
fi
lib_cost_workloads_table "$fp" "$rows" "$docs" "${shown[@]}"
lib_pair_tables "$raw" prof=0 prof=1 5 "the profiler's share of the CPU"
"$PY" - "$raw.med" "$work/prof" "$shares" <<'PYEOF'
import os, re, sys
medians, profdir, shares = sys.argv[1:]
cpu_med, works, reps = {}, [], 0
for line in open(medians):
    name, state, n, wall, c, kib, shortest = line.split()
    works.count(name) or works.append(name)
    cpu_med[(name, state)] = None if c == "-" else float(c)
    reps = max(reps, int(n))
def cpu_on(name):
    return cpu_med[(name, "on")]

# The samples: every profile a prof=1 run wrote (each process of the command
# writes mallet.PID.exit.heap); the header's N2 is the blocks sampled.
perf = {l.split()[0]: l.split()[1:] for l in open(shares) if l.strip()}
print("The samples the prof=1 runs took, from the exit profiles they wrote: sampled allocations per run"
      " (the header's sampled-ever count, summed over the command's processes, averaged over the runs),"
      " the records (call stack, size) of the largest exit profile, and samples per CPU second.%s" %
      (" The last columns come from one more run of each workload with prof=1 under perf (DWARF call"
       " graphs, cpu-clock at 2000 Hz): the share of perf's samples with a function of the profiler"
       " on the stack (`mallet__prof_*`, libgcc's `_Unwind_*`), and the share in the stack walk alone"
       " (`mallet__prof_unwind`, `_Unwind_*`); then the profiler's CPU per sample, the first share of the median CPU time with prof=1"
       " over the samples per run (rough where the share is under 1%: a few perf samples). Those shares do not move with the machine's load as wall times do; they leave out"
       " what the profiler costs indirectly (one more trip to the malloc slow path per sample, the"
       " caches its records take)." if perf else ""))
print()
print("| workload | sampled allocations per run | records in the exit profile | samples per CPU second |"
      + (" CPU in the profiler (perf) | of which the stack walk | profiler CPU per sample |" if perf else ""))
print("|---|---|---|---|" + ("---|---|---|" if perf else ""))
pooled = [0.0, 0]   # profiler CPU seconds, samples: over every workload
for w in works:
    d = os.path.join(profdir, w)
    total, recs = 0, 0
    for f in sorted(os.listdir(d)):
        with open(os.path.join(d, f)) as fh:
            total += int(re.search(r"\[\s*(\d+):", fh.readline()).group(1))
            n = 0
            for l in fh:
                if not l.strip():
                    break
                n += 1
            recs = max(recs, n)
    per_run = total / reps
    cpu = cpu_on(w)
    cells = ["%.0f" % per_run, "%d" % recs, "%.0f" % (per_run / cpu) if cpu else "-"]
    if perf:
        p = perf.get(w)
        cells += ["%s%%" % p[1], "%s%%" % p[3]] if p else ["failed", "failed"]
        if p and cpu and per_run:
            pooled[0] += float(p[1]) / 100 * cpu
            pooled[1] += per_run
            cells.append("%.1f µs" % (1e6 * float(p[1]) / 100 * cpu / per_run))
        else:
            cells.append("-")
    print("| %s | %s |" % (w, " | ".join(cells)))
print()
if perf:
    over = ["%s (%s%%)" % (w, perf[w][1]) for w in works if w in perf and float(perf[w][1]) > 5]
    per = max(pooled[0], 1e-9) / max(pooled[1], 1)
    print("Workloads where the profiler takes more than 5%% of the CPU: %s. Over all the workloads,"
          " the profiler's CPU over the samples taken is %.1f µs per sample, so the cost follows the"
          " samples per CPU second: at that mean, 5%% is about %.0f samples per CPU second, a program"
          " allocating about %.0f GiB per CPU second at the default rate." % (", ".join(over) or "none", 1e6 * per, 0.05 / per, 0.05 / per * 512 / 1024 / 1024))
    print()
PYEOF

# --- where the cost goes --------------------------------------------------------
if [ -n "$top_name" ]; then
    echo "### Where the cost goes"
    echo
    echo "The workload where the profiler's share is highest, $top_name, under perf with prof=1:"
    echo
    echo '```'
    echo "MALLET_PROF=1 MALLET_PROF_DIR=TMP perf record -e cpu-clock -F 2000 --call-graph dwarf -- env LD_PRELOAD=$LIB bash -c '$top_cmd'"
    echo "perf report --stdio --children --sort symbol -g none   # the allocator's and the profiler's lines"
    echo
    lib_perf_excerpt "$work/perf/top.data" 'malloc|free|realloc|mallet__malloc_slow|mallet__free_slow|mallet__prof_[a-z_]+|_Unwind_[A-Za-z_]+|_dl_find_object'
    echo '```'
    echo
    read -r n prof alloc unwind write < <(grep "^$top_name " "$shares" | cut -d' ' -f2-)
    echo "Of $n perf samples, $prof% have a function of the profiler on their stack: $alloc% are in a"
    echo "sampled allocation (\`mallet__prof_alloc\`, \`mallet__prof_large_record\`: its stack and its"
    echo "record), $unwind% in the stack walk (\`mallet__prof_unwind\`, libgcc's \`_Unwind_*\`), $write% in writing the"
    echo "profile at exit (\`mallet__prof_write\`); the rest is the countdown in the malloc slow path"
    echo "(\`mallet__prof_take\`, \`_plan\`, \`_heal\`) and the sampled blocks' frees."
    echo
fi
