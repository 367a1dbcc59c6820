#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# 40-gc.sh -- the garbage collector (teach/gc.h) on an interpreter's
# workload, against the same workload freeing explicitly: on glibc, and on
# the segregated teach design when the build has it. Prints Markdown.
#
# Each repetition runs every allocator in turn (A B C A B C ...); the table
# shows the median. CPU time is the process's, collections included, so a
# busy machine stretches it less than wall-clock time; so are the pauses (the
# collector measures them in thread CPU time). Instruction counts (callgrind)
# are exact.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
prog=$BUILD/bench/gc_workload
[ -x "$prog" ] || { echo "40-gc: $prog not built" >&2; exit 1; }

if [ "${BENCH_QUICK:-0}" = 1 ]; then iters=10000 reps=3 cg_iters=1000
else iters=40000 reps=7 cg_iters=4000
fi

modes=(gc glibc)
"$prog" teach:segregated 1 >/dev/null 2>&1 && modes+=(teach:segregated)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in $(seq "$reps"); do
    for m in "${modes[@]}"; do
        echo "40-gc: rep $r $m" >&2
        "$prog" "$m" "$iters" 2>/dev/null >>"$tmp/$(tr : _ <<<"$m")"
    done
done

# median COLUMN FILE: the median of one tab-separated column
median() {
    cut -f "$1" "$2" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "## Garbage collection: an interpreter's trees, collected or freed"
echo
echo "\`$prog MODE $iters\`, $reps repetitions in turn, medians. Each iteration builds an"
echo "expression tree (about 200 blocks: 32-byte nodes, 8..200-byte names), evaluates it and"
echo "drops it; every eighth tree replaces one of 64 globals. \`gc\` only allocates"
echo "(teach/gc.c collects when the heap has doubled, at least every 4 MiB); the others free"
echo "each dropped tree. Peak heap: the collector's heap pages; glibc's arena plus mmapped"
echo "chunks; a teach design's footprint. Peak live: the most the program itself held."
echo "Pauses are the collector's thread CPU time per collection."
echo
echo "| mode | CPU ms | ratio to glibc | allocations | collections | mean pause µs | max pause µs | peak heap KiB | peak live KiB | heap / live |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
base=$(median 2 "$tmp/glibc")
for m in "${modes[@]}"; do
    f=$tmp/$(tr : _ <<<"$m")
    cpu=$(median 2 "$f") heap=$(median 7 "$f") live=$(median 8 "$f")
    printf '| %s | %.0f | %.2f | %s | %s | %.0f | %.0f | %s | %s | %.2f |\n' "$m" "$cpu" \
        "$(awk -v a="$cpu" -v b="$base" 'BEGIN { print a / b }')" \
        "$(median 3 "$f")" "$(median 4 "$f")" "$(median 5 "$f")" "$(median 6 "$f")" \
        "$heap" "$live" "$(awk -v a="$heap" -v b="$live" 'BEGIN { print a / b }')"
done
echo

if command -v valgrind >/dev/null; then
    echo "Instructions (\`valgrind --tool=callgrind $prog MODE $cg_iters\`), whole program:"
    echo
    echo "| mode | instructions | per allocation | ratio to glibc |"
    echo "|---|---:|---:|---:|"
    declare -A ir allocs
    for m in "${modes[@]}"; do
        echo "40-gc: callgrind $m" >&2
        ir[$m]=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$prog" "$m" "$cg_iters" 2>&1 >"$tmp/cg.out" |
                 sed -n 's/.*refs: *//p' | tr -d ,)
        allocs[$m]=$(cut -f 3 "$tmp/cg.out")
    done
    for m in "${modes[@]}"; do
        printf '| %s | %s | %.0f | %.2f |\n' "$m" "${ir[$m]}" \
            "$(awk -v a="${ir[$m]}" -v n="${allocs[$m]}" 'BEGIN { print a / n }')" \
            "$(awk -v a="${ir[$m]}" -v b="${ir[glibc]}" 'BEGIN { print a / b }')"
    done
    echo
fi
