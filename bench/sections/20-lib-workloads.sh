#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# 20-lib-workloads.sh -- libmallet against glibc and the peers on the
# synthetic workloads (bench/lib_*.c): small churn on 1, 2 and 4 threads,
# producer/consumer cross-thread frees, a larson-style server, realloc
# growth, large blocks, and the slow paths: a big live set under random
# replacement on 1 and 2 threads, a server whose every block is freed by
# another thread, one producer feeding two consumers, and large buffers the
# program zeroes. Time and peak RSS, medians of interleaved runs, and the
# main comparison chart bench/plots/compare.svg.
set -eu
cd "$(dirname "$0")/../.."
export BUILD=${BUILD:-build}
. bench/lib_common.sh
B=$BUILD/bench
reps=5; [ "$BENCH_QUICK" = 1 ] && reps=3
# A full run makes the short workloads (churn, producer/consumer, larson)
# four times longer, so that each lasts a second or more.
scale=4; [ "$BENCH_QUICK" = 1 ] && scale=1
lib_synthetic_workloads "$scale"
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
