#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# 21-lib-fastpath.sh -- instructions per malloc(32)+free pair on every
# allocator, counted by callgrind inside the loop function of
# bench/lib_fastpath.c only (--toggle-collect), minus a run with zero
# iterations: once for back-to-back pairs, once for batches of 1000 mallocs
# then 1000 frees. Instruction counts do not depend on the machine's load.
set -eu
cd "$(dirname "$0")/../.."
export BUILD=${BUILD:-build}
. bench/lib_common.sh
FP=$BUILD/bench/lib_fastpath
[ -x "$FP" ] || { echo "21-lib-fastpath: $FP not built (make)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "21-lib-fastpath: valgrind is not installed" >&2; exit 1; }
if [ "$BENCH_QUICK" = 1 ]; then pairs=20000 batches=20; else pairs=200000 batches=200; fi

echo "## libmallet and its peers: fast-path instruction counts"
echo
echo "Regenerate: \`$([ "$BENCH_QUICK" = 1 ] && echo 'BENCH_QUICK=1 ')bench/sections/21-lib-fastpath.sh\`. Each figure is"
echo "\`(Ir(N) - Ir(0)) / N\` from \`valgrind --tool=callgrind --toggle-collect=FUNCTION $FP MODE N\`"
echo "with the allocator preloaded: pair = \`run_pairs\`, N=$pairs iterations of \`free(malloc(32))\`;"
echo "batch = \`run_batches\`, N=$batches batches of 1000 \`malloc(32)\` then 1000 \`free\`, divided by 1000"
echo "more to give one malloc+free pair. The loop's own overhead (an indirect call each way) is included"
echo "and is the same for every allocator."
echo
echo "| allocator | pair loop: instructions per malloc+free | batch of 1000: instructions per malloc+free |"
echo "|---|---|---|"
for a in "${ALLOCATORS[@]}"; do
    echo "  callgrind: ${a%% *}" >&2
    lib_fastpath_row "${a%% *}" "${a#* }" "$pairs" "$batches"
done
echo
