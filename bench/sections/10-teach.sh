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
    speed_args="50000 5"
else
    speed_args="200000 5"
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

section "Buddy: internal fragmentation beside the others" \
    "Bytes requested against bytes the blocks take, over a random workload. Buddy rounds every block to a power of two; first fit hands out whole free blocks without splitting." \
    "$EV" internal

section "Arena: one reset, the same memory again" \
    "5000 random-sized blocks, one reset(), then the same sequence of requests." \
    "$EV" arena

section "M6: large blocks leave the break alone" \
    "10 x malloc(1 MiB) in every design. In the free-list designs each is a mapping of its own: page aligned, the footprint grows by exactly their pages and returns to its old value on free, so the break never moved. Bump and arena carve them from the break." \
    "$EV" m6
