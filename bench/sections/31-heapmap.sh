#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# 31-heapmap.sh -- pictures of teach heaps on the fragmentation worst case
# (bench/traces/frag-worst.trace.zst): one strip every 2,000 ops, for each
# free-list design the build has, so the heap is seen to grow where free
# neighbours are not merged and to be reused where they are. Prints
# Markdown that shows the SVGs it writes into bench/plots/.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
MALLET=$BUILD/mallet
trace=bench/traces/frag-worst.trace.zst
[ -x "$MALLET" ] || { echo "31-heapmap: $MALLET not built" >&2; exit 1; }
mkdir -p bench/plots

designs=()
for d in firstfit split coalesce segregated buddy; do
    "$MALLET" heapmap --help | grep -qw "$d" && designs+=("$d")
done
[ ${#designs[@]} -gt 0 ] || { echo "31-heapmap: no teach design in this build" >&2; exit 1; }

echo "## Heap maps: the fragmentation worst case"
echo
echo "\`$MALLET heapmap -a DESIGN -s 2000 -o bench/plots/heapmap-DESIGN.svg $trace\`"
echo
echo "The trace allocates blocks, frees every other one, then asks for blocks slightly"
echo "larger than any hole; two phases later it frees the survivors, so their holes could"
echo "serve later requests once merged with their free neighbours. One strip per 2,000"
echo "ops, left to right in address order: blue used, orange free, blocks narrower than a"
echo "pixel pooled and shaded by their share of free bytes. Each picture has its own"
echo "scale (the widest strip fills the row): compare the footprints written under them."
echo
echo "| design | footprint at the end | largest free block | external fragmentation |"
echo "|---|--:|--:|--:|"
for d in "${designs[@]}"; do
    echo "31-heapmap: $d" >&2
    out=bench/plots/heapmap-$d.svg
    "$MALLET" heapmap -a "$d" -s 2000 -o "$out" "$trace" >/dev/null
    # the figures under the last strip
    foot=$(sed -n 's/.*footprint \([^;]*\);.*/\1/p' "$out" | tail -n 1)
    largest=$(sed -n 's/.*largest free block \([^;]*\);.*/\1/p' "$out" | tail -n 1)
    frag=$(sed -n 's/.*external fragmentation \([0-9.]*%\).*/\1/p' "$out" | tail -n 1)
    echo "| $d | $foot | $largest | $frag |"
done
echo
for d in "${designs[@]}"; do
    echo "![heap of $d on the fragmentation worst case](plots/heapmap-$d.svg)"
done
