#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# 20-lib-workloads.sh -- libmallet against glibc and the peers on the
# synthetic workloads (bench/lib_*.c): small churn on 1, 2 and 4 threads,
# producer/consumer cross-thread frees, a larson-style server, realloc
# growth and large blocks. Time and peak RSS, medians of interleaved runs,
# and the main comparison chart bench/plots/compare.svg.
set -eu
cd "$(dirname "$0")/../.."
export BUILD=${BUILD:-build}
. bench/lib_common.sh
B=$BUILD/bench
for p in lib_churn lib_xthread lib_larson lib_realloc lib_large; do
    [ -x "$B/$p" ] || { echo "20-lib-workloads: $B/$p not built (make)" >&2; exit 1; }
done
if [ "$BENCH_QUICK" = 1 ]; then
    reps=3 churn=2000000 xt=500000 lr="10 20000" rb="32 262144 2" large=1500
else
    reps=5 churn=5000000 xt=2000000 lr="30 50000" rb="64 1048576 3" large=4000
fi
WORKLOADS=(
    "churn-1t|$B/lib_churn 1 $churn"
    "churn-2t|$B/lib_churn 2 $churn"
    "churn-4t|$B/lib_churn 4 $churn"
    "prodcons-2x2|$B/lib_xthread 2 $xt"
    "larson-4t|$B/lib_larson 4 $lr"
    "realloc-grow|$B/lib_realloc $rb"
    "large-blocks|$B/lib_large $large"
)
raw=$(mktemp)
lib_run_matrix "$raw" "$reps"

echo "## libmallet and its peers: synthetic workloads"
echo
echo "Regenerate: \`$([ "$BENCH_QUICK" = 1 ] && echo 'BENCH_QUICK=1 ')bench/sections/20-lib-workloads.sh\` (allocators from \`bench/peers.sh\`)."
echo
echo "| workload | command |"
echo "|---|---|"
for w in "${WORKLOADS[@]}"; do echo "| ${w%%|*} | \`${w#*|}\` |"; done
echo
echo "Each command runs as \`/usr/bin/time -f '%e %M' env LD_PRELOAD=LIB bash -c COMMAND\`;"
echo "the allocators are: $(printf '%s, ' "${ALLOCATORS[@]%% *}" | sed 's/, $//')."
echo
lib_tables "$raw" bench/plots/compare.svg
rm -f "$raw" bench/plots/compare.svg.dat
