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
work=$(mktemp -d)

# ir LIB MODE N FUNCTION -- instructions callgrind counted inside FUNCTION.
ir() {
    local lib=$1 mode=$2 n=$3 fn=$4 out=$work/cg.out pre=()
    [ "$lib" != - ] && pre=(env LD_PRELOAD="$lib")
    rm -f "$out"
    "${pre[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect="$fn" \
        "$FP" "$mode" "$n" >/dev/null 2>"$work/err" || { echo NaN; return; }
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

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
    name=${a%% *} lib=${a#* }
    echo "  callgrind: $name" >&2
    p1=$(ir "$lib" pair "$pairs" run_pairs) p0=$(ir "$lib" pair 0 run_pairs)
    b1=$(ir "$lib" batch "$batches" run_batches) b0=$(ir "$lib" batch 0 run_batches)
    "$PY" - "$name" "$p1" "$p0" "$pairs" "$b1" "$b0" "$batches" <<'PYEOF'
import sys
name, p1, p0, n, b1, b0, m = sys.argv[1:]
def per(a, b, k, scale):
    try:
        return "%.1f" % ((float(a) - float(b)) / (float(k) * scale))
    except ValueError:
        return "failed"
print("| %s | %s | %s |" % (name, per(p1, p0, n, 1), per(b1, b0, m, 1000)))
PYEOF
done
echo
rm -rf "$work"
