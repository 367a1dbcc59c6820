#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# 56-guard.sh -- what guarded sampling (src/secure/guard.h, on by default) costs.
# Its bar: at the default rate, at most 0.5% of the CPU of every workload,
# and the fast paths' instruction counts unchanged. First section 21's
# fast-path counts for libmallet built from the last commit before the
# guard, as built with MALLET_GUARD=0, and with the guard at its default.
# Then every workload of section 55 (section 20's, the fast-path loops,
# sqlite3 and python3 of section 23), each run a second or more, with
# MALLET_GUARD=0 and with the default -- the same library, only the
# environment differs -- medians of wall time, CPU time and peak RSS, and
# the guarded blocks each run took (MALLET_STATS=1). Wall and CPU times move
# by more than 0.5% from run to run here, so each workload runs once more
# under perf, which gives the guard's share of its CPU directly. A few
# workloads run again at a rate 64 times the default, which prices one
# guarded block; the section ends with the smallest default that keeps
# every workload under the bar, and the chance that a bug is caught.
set -eu
cd "$(dirname "$0")/../.."
export BUILD=${BUILD:-build}
. bench/lib_common.sh
B=$BUILD/bench
LIB=$BUILD/libmallet.so
PRE=ab87638   # the last commit before the guard
[ -f "$LIB" ] || { echo "56-guard: $LIB not built (make)" >&2; exit 1; }
[ -x "$B/lib_fastpath" ] || { echo "56-guard: $B/lib_fastpath not built (make)" >&2; exit 1; }
# The guard at its defaults, the profiler off: nothing from the caller's
# environment.
unset MALLET_GUARD MALLET_GUARD_SAMPLE_KB MALLET_GUARD_SLOTS MALLET_PROF MALLET_STATS
default_kb=$(sed -n 's/.*X(guard_sample_kb, \([0-9]*\),.*/\1/p' src/base/options.h)
hot_kb=$((default_kb / 64))
if [ "$BENCH_QUICK" = 1 ]; then
    reps=3 fp=2000000 rows=50000 docs=20000 scale=1 long=1 pairs=20000 batches=20
else
    reps=5 fp=400000000 rows=400000 docs=60000 scale=32 long=6 pairs=200000 batches=200
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
quick=
[ "$BENCH_QUICK" = 1 ] && quick='BENCH_QUICK=1 '

echo "## Guarded sampling's cost"
echo
echo "Regenerate: \`${quick}bench/sections/56-guard.sh\`. The guard (src/secure/guard.h, on by default) serves"
echo "about one allocation per $default_kb KiB allocated (\`MALLET_GUARD_SAMPLE_KB\`, left at its default"
echo "here) alone between inaccessible pages: small blocks are drawn by the profiler's sampler (the"
echo "countdown in the malloc slow path), large blocks by a countdown of their own, each counting as"
echo "16 KiB. A guarded block costs a slot of the pool, an \`mprotect\` to open its pages and their page"
echo "faults, its slack filled with a pattern and checked at free, its call stack at malloc and at"
echo "free, and a \`mmap\` over its pages at free. The bar: at the default rate, at most 0.5% of the CPU"
echo "of every workload (perf's share, as section 55 measures the profiler), and the malloc and free"
echo "fast paths' instruction counts unchanged."
echo

# --- fast-path instruction counts -------------------------------------------------
if command -v valgrind >/dev/null; then
    pre_lib=$(lib_build_at "$PRE" "$work/pre") || pre_lib=
    fp_rows=()
    echo "  callgrind: before, guard=0, default" >&2
    [ -n "$pre_lib" ] && fp_rows+=("$(lib_fastpath_row "before the guard ($PRE)" "$pre_lib" "$pairs" "$batches")")
    fp_rows+=("$(MALLET_GUARD=0 lib_fastpath_row "guard=0" "$LIB" "$pairs" "$batches")")
    fp_rows+=("$(lib_fastpath_row "guard at its default (as built)" "$LIB" "$pairs" "$batches")")
    if [ -n "$pre_lib" ]; then
        note="The first row is libmallet built from $PRE, the commit before the guard (\`git archive $PRE\`
into a temporary folder, \`make lib\` there); the others are \`$LIB\` with \`MALLET_GUARD=0\`
and with the variable unset. The default's figures include the sampler's countdown in the
slow path, spread over the pairs."
    else
        note="The build before the guard ($PRE) could not be made here (no git history), so its row is
missing; the rows are \`$LIB\` with \`MALLET_GUARD=0\` and with the variable unset."
    fi
    lib_fastpath_table "$pairs" "$batches" "$note" "${fp_rows[@]}"
    printf '%s\n' "${fp_rows[@]}" | awk -F'|' -v pre="${pre_lib:+1}" '
        { p[NR] = $3 + 0; b[NR] = $4 + 0 }
        function cmp(what, i, j) {
            d1 = p[i] - p[j]; d2 = b[i] - b[j]
            printf "%s: %+.1f instructions per pair, %+.1f per batch pair (%s)", what, d1, d2,
                (d1 <= 1 && d1 >= -1 && d2 <= 1 && d2 >= -1) ? "equal within the bar of 1" : "over the bar of 1"
        }
        END {
            if (pre) {
                cmp("guard=0 minus the build before the guard", 2, 1); printf "; "
                cmp("the default minus the build before the guard", 3, 1); printf "; "
                cmp("the default minus guard=0", 3, 2); print "."
            } else {
                cmp("the default minus guard=0", 2, 1); print "."
            }
        }'
    echo
fi

# --- time, CPU and peak RSS, guard=0 against the default -------------------------
lib_cost_workloads "$scale" "$fp" "$rows" "$docs" "$work" "$long"
shown=("${WORKLOADS[@]}")
# Each workload twice, off then on, so lib_run_matrix interleaves them. Every
# process of a command prints its statistics at exit (MALLET_STATS=1, in
# both states: the same work at exit); their guarded_total lines, summed, are
# the guarded blocks of the run.
mkdir "$work/stats"
paired=()
for w in "${shown[@]}"; do
    name=${w%%|*} cmd=${w#*|}
    paired+=("$name:off|export MALLET_GUARD=0 MALLET_STATS=1; { $cmd; } 2>>$work/stats/$name.off"
        "$name:on|export MALLET_STATS=1; { $cmd; } 2>>$work/stats/$name.on")
done
WORKLOADS=("${paired[@]}")
ALLOCATORS=("mallet $LIB")
raw=$work/raw
lib_run_matrix "$raw" "$reps"

# The price of one guarded block: a few workloads at 64 times the default
# rate, against guard=0, interleaved as above.
hot=()
for w in "${shown[@]}"; do
    name=${w%%|*} cmd=${w#*|}
    case $name in churn-1t | large-blocks | fastpath-pair | sqlite3 | python3) ;; *) continue ;; esac
    hot+=("$name:off|export MALLET_GUARD=0 MALLET_STATS=1; { $cmd; } 2>>$work/stats/$name.hotoff"
        "$name:hot|export MALLET_GUARD_SAMPLE_KB=$hot_kb MALLET_STATS=1; { $cmd; } 2>>$work/stats/$name.hot")
done
WORKLOADS=("${hot[@]}")
lib_run_matrix "$work/raw-hot" "$reps"

# Each workload once more with the default guard under perf. The shares, of
# perf's samples: (1) a function of the guard or of the sampler it keeps
# running on the stack -- the guard's own (mallet__guard_*, the static
# helpers of guard.c that stay out of line, mallet__sample_alloc, which
# hands a sampled allocation to the guard; the call stacks it takes
# (mallet__stack_capture) and the system calls and page faults it causes are
# below them on the stack) and the sampler's countdown (mallet__prof_cut,
# _take_slow, _heal, _restart, mallet__sample_bytes: with the profiler off
# they run for the guard alone); (2) the guard's own; (3) of those, the
# samples in the kernel; (4) in mallet__stack_capture; (5) the sampler's.
guard_fns="mallet__guard_*,slot_near,slot_of_call,slot_open,slot_claim,slack_fill,slack_damage,stack_take,pool_start,mallet__sample_alloc"
sampler_fns="mallet__prof_cut,mallet__prof_take_slow,mallet__prof_heal,mallet__prof_restart,mallet__sample_bytes"
WORKLOADS=("${shown[@]}")
lib_perf_workloads "$LIB" "$work/perf" "$guard_fns,$sampler_fns $guard_fns kernel:$guard_fns mallet__stack_capture $sampler_fns"
shares=$work/perf/shares

echo "### Time and memory, guard=0 against the default"
echo
echo "Each workload with \`MALLET_GUARD=0\` and with the guard at its default (the variable unset), the"
echo "same library (\`$LIB\`), in turn (off, on, off, on, ...), $reps repetitions of each, medians."
echo "A command runs as \`/usr/bin/time -f '%e %M %U %S' env LD_PRELOAD=$LIB bash -c 'export"
echo "MALLET_GUARD=0 MALLET_STATS=1; { COMMAND; } 2>>STATS'\` (the default's without MALLET_GUARD=0), its"
echo "wall time read from bash's \`\$EPOCHREALTIME\` around it; bash itself starts with the guard at"
echo "its default in both. The workloads are section 55's, made longer so that every run lasts a"
echo "second or more: section 20's with the short ones (churn, prodcons, larson) at $scale times their"
echo "iterations and realloc-grow, large-blocks, fanout and bigbuf at $long times their steps,"
lib_cost_workloads_table "$fp" "$rows" "$docs" "${shown[@]}"
lib_pair_tables "$raw" guard=0 default 0.5 "the guard's share of the CPU"
lib_pair_medians "$work/raw-hot"
"$PY" - "$raw.med" "$work/raw-hot.med" "$work/stats" "$shares" "$default_kb" "$hot_kb" <<'PYEOF'
import os, re, statistics, sys
raw, raw_hot, stats, shares, default_kb, hot_kb = sys.argv[1:]
default_kb, hot_kb = int(default_kb), int(hot_kb)

# lib_pair_medians' lines: {(name, state): (runs, wall, cpu, kib, shortest)}.
def load(path):
    runs, works = {}, []
    for line in open(path):
        name, state, *v = line.split()
        works.count(name) or works.append(name)
        runs[(name, state)] = [int(v[0])] + [None if x == "-" else float(x) for x in v[1:]]
    return runs, works
runs, works = load(raw)
hot_runs, hot_works = load(raw_hot)
def med(r, name, state, i):
    v = r.get((name, state))
    return v[i + 1] if v else None
def guarded(name, state, reps):
    # The guarded_total lines of every process of every run, per run.
    path = os.path.join(stats, "%s.%s" % (name, state))
    if not os.path.exists(path):
        return 0.0
    return sum(int(m) for m in re.findall(r"guarded_total\s+(\d+)", open(path).read())) / reps
shortest = min(v[4] for r in (runs, hot_runs) for v in r.values())
reps = max(v[0] for v in runs.values())
perf = {l.split()[0]: [float(x) for x in l.split()[1:]] for l in open(shares) if l.strip()}

print("Every run above lasted %.2f s or more (wall)." % shortest)
print()

# --- the price of one guarded block ---
cost = {}
print("#### The price of one guarded block")
print()
print("Five of the workloads again, with `MALLET_GUARD=0` and with `MALLET_GUARD_SAMPLE_KB=%d` (64 times"
      " the default rate), interleaved, %d repetitions, medians of the CPU time (user + system); the guarded"
      " blocks per run (the `guarded_total` lines of `MALLET_STATS=1`, summed over the command's"
      " processes); and the difference of the CPU times over those blocks: what one guarded block costs"
      " in that workload, everything included (the system calls, the page faults of its fresh pages, the"
      " program's own faults on them, the stacks, the slack, the slow-path trips)." % (hot_kb, reps))
print()
print("| workload | guard=0 CPU s | %d KiB CPU s | ratio | guarded blocks per run | CPU per guarded block |" % hot_kb)
print("|---|---|---|---|---|---|")
for w in hot_works:
    off, on = med(hot_runs, w, "off", 1), med(hot_runs, w, "hot", 1)
    g = guarded(w, "hot", reps)
    if off is None or on is None or g <= 0:
        print("| %s | %s | %s | - | %.0f | - |" % (w, off, on, g))
        continue
    cost[w] = (on - off) / g
    print("| %s | %.2f | %.2f | %.3fx | %.0f | %.1f µs |" % (w, off, on, on / off, g, 1e6 * cost[w]))
print()

# --- per workload at the default ---
print("#### The guard's share of the CPU at the default rate")
print()
print("Guarded blocks per run at the default (from `MALLET_STATS=1`, summed over the command's processes,"
      " averaged over the %d runs) and per CPU second; then, from one more run of each workload with the"
      " default guard under perf (cpu-clock at 2000 Hz, DWARF call graphs, the kernel's samples included),"
      " the share of perf's samples with one of these on the stack: **guard + sampler**, the total we"
      " hold to the bar: the guard's functions (`mallet__guard_*`; the static helpers of src/secure/guard.c that"
      " are not inlined into them, `slot_near` and `slot_of_call`; `mallet__sample_alloc`, which hands a"
      " sampled small allocation to the guard) with all they call (the call stacks, `mallet__stack_capture`;"
      " the `mprotect` and `mmap` system calls and the page faults of the slack fill, in the kernel), and"
      " the sampler's countdown that the guard keeps running while the profiler is off"
      " (`mallet__prof_cut`, `_take_slow`, `_heal`, `_restart`, `mallet__sample_bytes`; its inline part in"
      " the malloc slow path is not a function of its own and is not counted); **guard**, the guard's"
      " functions alone; **in the kernel**, those of the guard's samples whose innermost frame is the"
      " kernel's; **stacks**, those in `mallet__stack_capture`; **sampler**, the countdown alone. Then"
      " the guard's CPU per guarded block by perf (guard + sampler share times the median CPU time over the"
      " guarded blocks per run; rough where the share is a few perf samples). Not counted: the"
      " program's own page faults on a guarded block's fresh pages (large blocks; the table above"
      " includes them), and the blocks the fast path does not take from a list the sampler cut." % reps)
print()
print("| workload | CPU s | guarded blocks per run | per CPU second | perf samples | guard + sampler | guard | in the kernel | stacks | sampler | per guarded block |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
need = {}
for w in works:
    cpu = med(runs, w, "on", 1)
    g = guarded(w, "on", reps)
    cells = ["%.2f" % cpu if cpu else "failed", "%.0f" % g, "%.0f" % (g / cpu) if cpu else "-"]
    p = perf.get(w)
    if p:
        total = p[1]
        cells += ["%d" % p[0]] + ["**%.2f%%**" % total if total > 0.5 else "%.2f%%" % total] + ["%.2f%%" % x for x in p[2:]]
        cells.append("%.1f µs" % (1e6 * total / 100 * cpu / g) if cpu and g else "-")
        need[w] = total
    else:
        cells += ["failed"] * 6 + ["-"]
    print("| %s | %s |" % (w, " | ".join(cells)))
print()
print("Shares above the bar of 0.5% are in bold.")
print()
# The share falls as the rate does: the guarded blocks are proportional to
# 1 / guard_sample_kb, and so are the sampler's out-of-line calls (a cut,
# its heal, a draw: one each per point of its stream). The rate that keeps
# every workload under 0.5%: the smallest power of two in KiB at or above
# what each needs, by perf's share (the bar's measure); then again with the
# priced share where it is more (it sees what perf leaves out: the
# program's own faults on fresh pages).
priced = {}
if cost:
    pooled = statistics.median(cost.values())
    print("From the price of one guarded block measured above (its own for the five workloads priced, the"
          " median of the five, %.1f µs, for the others), the share at the default is the guarded blocks"
          " per CPU second times that price: %s." % (1e6 * pooled, ", ".join(
              "%s %.2f%%" % (w, 100 * cost.get(w, pooled) * guarded(w, "on", reps) / med(runs, w, "on", 1))
              for w in works if med(runs, w, "on", 1))))
    print()
    priced = {w: 100 * cost[w] * guarded(w, "on", reps) / med(runs, w, "on", 1)
              for w in cost if med(runs, w, "on", 1)}
def rate_for(shares):
    needs = {w: default_kb * s / 0.5 for w, s in shares.items()}
    kb = default_kb
    while kb < max(needs.values(), default=0):
        kb *= 2
    return needs, kb
needs, rec = rate_for(need)
over = ["%s (%.2f%%)" % (w, need[w]) for w in works if need.get(w, 0) > 0.5]
both = {w: max(need.get(w, 0), priced.get(w, 0)) for w in set(need) | set(priced)}
_, rec_all = rate_for(both)
print("**At the default (%d KiB)**, perf's share is over the bar of 0.5%% on %d of the %d workloads: %s."
      " The share scales with the rate: the guarded blocks are proportional to 1 / rate, and so are the"
      " sampler's out-of-line calls (a cut, its heal, a draw, one each per point of its stream). Per"
      " workload, the `guard_sample_kb` that puts perf's share at 0.5%%, the largest first: %s. The smallest"
      " power of two at or above every one of them: **%d KiB** (%s the default)." % (
          default_kb, len(over), len(works), ", ".join(over) or "none",
          ", ".join("%s %.0f KiB" % (w, k) for w, k in sorted(needs.items(), key=lambda kv: -kv[1])[:6]),
          rec, "the same as" if rec == default_kb else "%g times" % (rec / default_kb)))
print()
print("With the priced shares (%s) taken where they are more than perf's, the rate that keeps every workload under"
      " the bar is %d KiB." % (", ".join("%s %.2f%%" % (w, priced[w]) for w in hot_works if w in priced), rec_all))
print()
with open(os.path.join(stats, "recommended"), "w") as f:
    f.write("%d\n" % rec)
PYEOF

# --- where the cost goes --------------------------------------------------------
top_name=$PERF_TOP_NAME top_cmd=$PERF_TOP_CMD
if [ -n "$top_name" ]; then
    echo "### Where the cost goes"
    echo
    echo "The workload where the guard's share is highest, $top_name, under perf with the default guard:"
    echo
    echo '```'
    echo "perf record -e cpu-clock -F 2000 --call-graph dwarf -- env LD_PRELOAD=$LIB bash -c '$top_cmd'"
    echo "perf report --stdio --children --sort symbol -g none   # the allocator's, the guard's and the sampler's lines"
    echo
    lib_perf_excerpt "$work/perf/top.data" 'malloc|free|realloc|mallet__malloc_slow|mallet__free_slow|mallet__guard_[a-z_]+|slot_[a-z_]+|mallet__sample_[a-z_]+|mallet__stack_capture|mallet__prof_[a-z_]+'
    echo '```'
    echo
    echo "perf report's children shares above count every sample with the function on its stack, whoever"
    echo "called it. The guard's samples alone (those with one of its functions on the stack), by the"
    echo "innermost frame, as a share of all the workload's samples:"
    echo
    "$PY" - "$work/perf/top.txt" "$guard_fns" <<'PYEOF'
import collections, sys
chains, names = sys.argv[1], sys.argv[2].split(",")
def hit(sym):
    return any(sym.startswith(n[:-1]) if n.endswith("*") else sym == n or sym.startswith(n + ".") for n in names)
total, leaves, kinds = 0, collections.Counter(), collections.Counter()
for b in open(chains).read().split("\n\n"):
    lines = b.strip().splitlines()[1:]
    if not lines:
        continue
    total += 1
    frames = [l.split(None, 1)[-1].rpartition(" (")[0] for l in lines]
    if not any(hit(s) for s in frames):
        continue
    leaves[frames[0]] += 1
    chain = " ".join(frames)
    calls = set(frames)
    kind = ("page faults" if "asm_exc_page_fault" in calls else
            "mprotect" if calls & {"__mprotect", "mprotect"} else
            "mmap and munmap (the decommit at free, a mapping of its own)" if calls & {"__mmap", "mmap", "mmap64", "__munmap", "munmap"} else
            "other system calls" if "do_syscall_64" in calls else
            "the call stacks (mallet__stack_capture)" if "mallet__stack_capture" in calls else
            "the guard's own code and the rest")
    kinds[kind] += 1
print("| innermost frame | share |")
print("|---|---|")
for s, n in leaves.most_common(12):
    print("| `%s` | %.2f%% |" % (s, 100.0 * n / total))
print()
print("By what they are doing: %s; %d perf samples in all." % (
    ", ".join("%s %.2f%%" % (k, 100.0 * n / total) for k, n in kinds.most_common()), total))
print()
PYEOF
fi

# --- the chance of catching a bug -------------------------------------------------
rec_kb=$(cat "$work/stats/recommended" 2>/dev/null || echo "$default_kb")
echo "### The chance that a bug is caught"
echo
"$PY" - "$default_kb" "$rec_kb" <<'PYEOF'
import math, sys
default_kb, rec_kb = int(sys.argv[1]), int(sys.argv[2])
print("A small block of s bytes is guarded with probability p = 1 - exp(-s/R) at rate R bytes (the sampler"
      " is a Poisson process over the bytes allocated; s is the block's size class, a little above the"
      " request); a large block (over 256 KiB) counts as 16 KiB whatever its size. So a bug on one"
      " particular block is caught with probability p each time it happens, and a bug that happens on N"
      " different blocks of that size, independently, with 1 - (1 - p)^N. While the pool's slots (256 by"
      " default, `MALLET_GUARD_SLOTS`) are all live, no block is guarded: the chances below are the most"
      " the guard gives.")
print()
rates = [default_kb] + ([rec_kb] if rec_kb != default_kb else [])
for kb in rates:
    r = kb * 1024.0
    print("At %d KiB (%s):" % (kb, "the default" if kb == default_kb else "the recommended default"))
    print()
    print("| block | p per allocation | N = 1 | N = 1e3 | N = 1e6 | N = 1e9 |")
    print("|---|---|---|---|---|---|")
    for label, s in (("64 B", 64), ("1 KiB", 1024), ("16 KiB, and any large block", 16384)):
        p = -math.expm1(-s / r)
        cells = []
        for n in (1, 1e3, 1e6, 1e9):
            c = -math.expm1(n * math.log1p(-p))
            cells.append("%.2g" % c if c < 0.995 else "%.4g" % c if c < 1 - 1e-4 else "~1")
        print("| %s | %.2g | %s |" % (label, p, " | ".join(cells)))
    print()
PYEOF
