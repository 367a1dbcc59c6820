#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# 10-teach.sh -- the milestone evidence of the teaching allocators, as
# Markdown: one subsection per milestone, each with the command that
# produced its table (bench/teach_evidence.c, bench/teach_speed.c, built by
# make into $BUILD/bench/). Everything runs in-process through
# teach_allocators[]. BENCH_QUICK=1 shortens the timed and random runs.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
EV=$BUILD/bench/teach_evidence
SPEED=$BUILD/bench/teach_speed
for p in "$EV" "$SPEED"; do
    [ -x "$p" ] || { echo "10-teach: $p not built (make)" >&2; exit 1; }
done
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    speed_args="30000 5"
else
    speed_args="100000 5"
fi

# section TITLE TEXT COMMAND...: a subsection with its command and output.
section() {
    local title=$1 text=$2
    shift 2
    echo "10-teach: $*" >&2
    echo "### $title"
    echo
    echo "$text"
    echo
    echo "\`$*\`"
    echo
    "$@"
    echo
}

echo "## Teaching allocators: milestone evidence"
echo
echo "Each design in teach/ adds one idea to the one before; these tables show each idea at"
echo "work, measured in-process through \`teach_allocators[]\` (each design on a private break,"
echo "so footprints are exact). The tests in tests/test_teach_milestones.c and"
echo "tests/test_fragmentation.c assert the same facts."
echo

section "Bump: the heap grows linearly" \
    "1000 x malloc(24): each block sits one fixed step above the last, and the footprint follows." \
    "$EV" bump

section "First fit: freed blocks are reused" \
    "100 x malloc(64), free every other one, then 50 x malloc(64): the new blocks take the freed addresses." \
    "$EV" firstfit

section "Splitting: small blocks reuse the leftovers of large ones" \
    "64 pairs of [malloc(1024), malloc(16)], free the 1024s, then 1024 x malloc(16). First fit hands a whole 1024 to each small request; split carves the small blocks out of them." \
    "$EV" split

section "Coalescing: fragmentation before and after" \
    "Free-block sizes as walk() reports them, after freeing every other block (nothing can merge) and after freeing all (coalesce merges the run into one block; split keeps the pieces)." \
    "$EV" coalesce

section "Segregated size classes: speed" \
    "Random small malloc/free, every design; the seed expects segregated classes to be 5-10x faster than first fit." \
    "$SPEED" $speed_args

# Instructions per malloc+free pair under callgrind: the difference of two
# runs of different length, so the set-up cancels out.
callgrind_pairs() {
    local n1=20000 n2=40000 d i1 i2
    echo "| design | instructions per malloc+free pair | ratio to segregated |"
    echo "|---|---:|---:|"
    local seg=
    for d in segregated firstfit split coalesce buddy bump arena; do
        i1=$(callgrind_ir "$d" $n1) i2=$(callgrind_ir "$d" $n2)
        # A rebuild of the program between the two runs (the build folder is
        # shared) shows as a shrinking count: measure that design again.
        [ "${i2:-0}" -gt "${i1:-0}" ] || { i1=$(callgrind_ir "$d" $n1) i2=$(callgrind_ir "$d" $n2); }
        local per=$(( (i2 - i1) / (n2 - n1) ))
        [ -z "$seg" ] && seg=$per
        awk -v d="$d" -v p="$per" -v s="$seg" 'BEGIN { printf "| %s | %d | %.1fx |\n", d, p, p / s }'
    done
    echo
    echo "\`valgrind --tool=callgrind $SPEED N 1 DESIGN\` at N = $n1 and N = $n2; the"
    echo "figure is the difference of the two instruction totals over the $((n2 - n1)) extra pairs, and"
    echo "includes the benchmark loop's own few instructions (random number, slot"
    echo "pick, one store)."
}

callgrind_ir() {   # callgrind_ir DESIGN PAIRS: total instructions of one run
    local out
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$SPEED" "$2" 1 "$1" >/dev/null 2>&1
    awk '/^summary:/ { print $2 }' "$out"
    rm -f "$out"
}

if command -v valgrind >/dev/null; then
    echo "10-teach: callgrind instruction counts" >&2
    echo "### Segregated size classes: instruction counts"
    echo
    echo "The same workload counted in instructions, which the shared machine's load cannot disturb."
    echo
    callgrind_pairs
    echo
fi

section "Buddy: internal fragmentation beside the others" \
    "Bytes requested against bytes the blocks take, over a random workload. Buddy rounds every block to a power of two; first fit hands out whole free blocks without splitting." \
    "$EV" internal

section "Arena: one reset, the same memory again" \
    "5000 random-sized blocks, one reset(), then the same sequence of requests." \
    "$EV" arena

section "M6: large blocks leave the break alone" \
    "10 x malloc(1 MiB) in every design. In the free-list designs each is a mapping of its own: page aligned, the footprint grows by exactly their pages and returns to its old value on free, so the break never moved. Bump and arena carve them from the break." \
    "$EV" m6
