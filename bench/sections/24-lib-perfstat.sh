#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# 24-lib-perfstat.sh -- event counts on the slow-path workloads of section 20
# (bigheap-1t, bigheap-2t, server-2t, fanout-1x2, bigbuf): each runs under
# `perf stat -x, -e cycles,instructions,page-faults` on every allocator from
# peers.sh, 3 repetitions interleaved, medians; one Markdown table per
# workload with ratios to glibc. Instruction and fault counts, unlike times,
# barely move when the machine is shared. Events this machine cannot count
# (virtual machines often have no PMU for cycles and instructions) are left
# out and named in one line; without perf, or with no event counted, the
# section says so in one line and prints no table.
set -eu
cd "$(dirname "$0")/../.."
export BUILD=${BUILD:-build}
. bench/lib_common.sh
B=$BUILD/bench
reps=3
wanted=(cycles instructions page-faults)
lib_synthetic_workloads
slow=()
for w in "${WORKLOADS[@]}"; do
    case ${w%%|*} in bigheap-1t | bigheap-2t | server-2t | fanout-1x2 | bigbuf) slow+=("$w") ;; esac
done

echo "## libmallet and its peers: event counts on the slow paths"
echo
echo "Regenerate: \`$([ "$BENCH_QUICK" = 1 ] && echo 'BENCH_QUICK=1 ')bench/sections/24-lib-perfstat.sh\` (allocators from \`bench/peers.sh\`)."
echo

if ! command -v perf >/dev/null; then
    echo "perf is not installed, so there are no event counts."
    exit 0
fi
# An event counts here when perf stat prints a number for it on /bin/true;
# it prints "<not supported>" for an event the machine lacks, and nothing at
# all when perf_event_paranoid forbids counting.
probe=$(mktemp)
events=() missing=()
for e in "${wanted[@]}"; do
    perf stat -x, -o "$probe" -e "$e" true >/dev/null 2>&1 || true
    if grep -Eq "^[0-9.]+,[^,]*,$e(:u)?," "$probe"; then events+=("$e"); else missing+=("$e"); fi
done
rm -f "$probe"
if [ ${#events[@]} = 0 ]; then
    echo "perf stat counts none of ${wanted[*]} on this machine, so there are no event counts."
    exit 0
fi

# RAW lines: workload allocator rep status count... (one per event, in order).
raw=$(mktemp)
list=$(IFS=,; echo "${events[*]}")
for rep in $(seq "$reps"); do
    for w in "${slow[@]}"; do
        name=${w%%|*} cmd=${w#*|}
        for a in "${ALLOCATORS[@]}"; do
            aname=${a%% *} alib=${a#* } pre=() status=0
            [ "$alib" != - ] && pre=(env LD_PRELOAD="$alib")
            echo "  rep $rep: $name on $aname (perf stat)" >&2
            out=$(mktemp)
            perf stat -x, -o "$out" -e "$list" "${pre[@]}" bash -c "$cmd" >/dev/null 2>&1 || status=$?
            counts=()
            for e in "${events[@]}"; do
                counts+=("$(awk -F, -v e="$e" '$3 == e || $3 == e ":u" { print $1; exit }' "$out")")
            done
            echo "$name $aname $rep $status ${counts[*]}" >>"$raw"
            rm -f "$out"
        done
    done
done

echo "Each command of section 20 runs as \`perf stat -x, -e $list env LD_PRELOAD=LIB bash -c COMMAND\`"
echo "(threads and the bash wrapper included), $reps repetitions with the allocators interleaved; medians,"
echo "with the ratio to glibc in parentheses (lower is better). page faults are minor and major ones together."
[ ${#missing[@]} -gt 0 ] &&
    echo "Not counted: $(printf '%s, ' "${missing[@]}" | sed 's/, $//') (perf stat says the machine does not support them)."
echo
"$PY" - "$raw" "${events[@]}" <<'PYEOF'
import statistics, sys
raw, events = sys.argv[1], sys.argv[2:]
heads = {"cycles": "cycles", "instructions": "instructions", "page-faults": "page faults"}
works, allocs, runs = [], [], {}
for line in open(raw):
    f = line.split()
    if not f:
        continue
    w, a, status = f[0], f[1], int(f[3])
    if w not in works: works.append(w)
    if a not in allocs: allocs.append(a)
    counts = f[4:]
    ok = status == 0 and len(counts) == len(events) and all(c.replace(".", "").isdigit() for c in counts)
    runs.setdefault((w, a), []).append([float(c) for c in counts] if ok else None)

def med(w, a, i):
    r = runs.get((w, a), [])
    if not r or any(x is None for x in r):
        return None
    return statistics.median(x[i] for x in r)

def fmt(v):
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return "%.2f%s" % (v / div, unit)
    return "%.0f" % v

for w in works:
    print("### %s" % w)
    print()
    print("| allocator | " + " | ".join(heads[e] for e in events) + " |")
    print("|---|" + "---|" * len(events))
    for a in allocs:
        cells = []
        for i in range(len(events)):
            v, base = med(w, a, i), med(w, "glibc", i)
            if v is None:
                cells.append("failed")
            elif a != "glibc" and base:
                cells.append("%s (%.2fx)" % (fmt(v), v / base))
            else:
                cells.append(fmt(v))
        print("| %s | %s |" % (a, " | ".join(cells)))
    print()
print("A cell says failed when any of its runs exited non-zero or perf gave no count.")
PYEOF
rm -f "$raw"
