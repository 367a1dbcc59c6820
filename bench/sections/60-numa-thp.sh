#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# 60-numa-thp.sh -- libmallet's huge-page and NUMA options on a TLB-bound
# workload (bench/thp_random.c: small blocks linked in random order, then
# chased), with MALLET_HUGEPAGES=0/1 and MALLET_NUMA=0/1, glibc alongside.
# Prints Markdown.
#
# Each repetition runs every configuration in turn (A B C D E A B C D E
# ...); the tables show medians. Peak RSS and minor faults come from
# /usr/bin/time; dTLB misses from `perf stat` when the machine lets perf
# count them (a virtual machine often does not: the section says so);
# mbind calls from one `strace -c` run per NUMA configuration.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
prog=$BUILD/bench/thp_random
lib=$BUILD/libmallet.so
[ -x "$prog" ] && [ -f "$lib" ] || { echo "60-numa-thp: $prog or $lib not built" >&2; exit 1; }

if [ "${BENCH_QUICK:-0}" = 1 ]; then mib=64 reps=3
else mib=128 reps=7
fi
block=64 rounds=1
args=("$mib" "$block" "$rounds")

configs=(glibc h0n0 h1n0 h0n1 h1n1)
# run CONFIG CMD...: the command under CONFIG's environment.
run() {
    local c=$1
    shift
    case $c in
        glibc) "$@" ;;
        h*n*) env LD_PRELOAD="$PWD/$lib" MALLET_HUGEPAGES="${c:1:1}" MALLET_NUMA="${c:3:1}" "$@" ;;
    esac
}
label() {
    case $1 in
        glibc) echo "glibc" ;;
        *) echo "mallet hugepages=${1:1:1} numa=${1:3:1}" ;;
    esac
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in $(seq "$reps"); do
    for c in "${configs[@]}"; do
        echo "60-numa-thp: rep $r $c" >&2
        out=$(run "$c" /usr/bin/time -f '%M\t%R' -o "$tmp/time" "$prog" "${args[@]}")
        printf '%s\t%s\n' "$(cut -f 1-5 <<<"$out")" "$(cat "$tmp/time")" >>"$tmp/$c"
    done
done

# median COLUMN FILE: the median of one tab-separated column
median() {
    cut -f "$1" "$2" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

perf_note=
perf_ok=0
if command -v perf >/dev/null 2>&1; then
    if perf stat -x, -e dTLB-load-misses true 2>&1 | grep -q '^[0-9]'; then
        perf_ok=1
    else
        perf_note="perf cannot count dTLB-load-misses here (\`perf stat -e dTLB-load-misses\` reports \`<not supported>\`: no hardware counters in this virtual machine), so the table has no TLB column; the chase time and the minor faults stand for it."
    fi
else
    perf_note="perf is not installed, so the table has no TLB column."
fi
if [ "$perf_ok" = 1 ]; then
    for c in "${configs[@]}"; do
        echo "60-numa-thp: perf $c" >&2
        run "$c" perf stat -x, -e dTLB-load-misses -o "$tmp/perf" "$prog" "${args[@]}" >/dev/null
        grep dTLB-load-misses "$tmp/perf" | cut -d, -f1 >"$tmp/$c.tlb"
    done
fi

mbind_calls() {
    if ! command -v strace >/dev/null 2>&1; then echo "n/a"; return; fi
    run "$1" strace -f -c -e trace=mbind -o "$tmp/strace" "$prog" "${args[@]}" >/dev/null 2>&1 || true
    awk '$NF == "mbind" { print ($4 ~ /^[0-9]+$/) ? $4 : $5; found = 1 } END { if (!found) print 0 }' "$tmp/strace"
}

echo "## Huge pages and NUMA placement: random access over small blocks"
echo
echo "\`LD_PRELOAD=$lib MALLET_HUGEPAGES=H MALLET_NUMA=N $prog ${args[*]}\` (glibc: without"
echo "the preload), $reps repetitions in turn, medians. The program allocates $mib MiB of $block-byte"
echo "blocks, links them in a random cycle and follows it once around (one TLB and cache miss per"
echo "step), then frees them. Times are the process's CPU time in each phase (system time, so page"
echo "faults and zeroing, included). THP mode: \`$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo unknown)\`;"
echo "NUMA nodes online: \`$(cat /sys/devices/system/node/online 2>/dev/null || echo unknown)\`."
echo "Huge pages at peak: AnonHugePages of the process once the blocks are linked."
echo
echo "| configuration | alloc CPU ms | chase CPU ms | ns / step | chase vs mallet 0/0 | free CPU ms | huge pages at peak MiB | peak RSS MiB | minor faults |$([ $perf_ok = 1 ] && echo ' dTLB-load-misses |')"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|$([ $perf_ok = 1 ] && echo '---:|')"
base=$(median 2 "$tmp/h0n0")
for c in "${configs[@]}"; do
    f=$tmp/$c
    chase=$(median 2 "$f")
    printf '| %s | %.0f | %.0f | %.0f | %.2f | %.0f | %.0f | %.0f | %.0f |' "$(label "$c")" \
        "$(median 1 "$f")" "$chase" "$(median 3 "$f")" \
        "$(awk -v a="$chase" -v b="$base" 'BEGIN { print a / b }')" "$(median 4 "$f")" \
        "$(awk -v k="$(median 5 "$f")" 'BEGIN { print (k < 0 ? 0 : k / 1024) }')" \
        "$(awk -v k="$(median 6 "$f")" 'BEGIN { print k / 1024 }')" "$(median 7 "$f")"
    [ "$perf_ok" = 1 ] && printf ' %s |' "$(cat "$tmp/$c.tlb")"
    echo
done
echo
[ -n "$perf_note" ] && { echo "$perf_note"; echo; }
echo "The cost of NUMA placement is one \`mbind\` per page a heap takes from a segment (one per"
echo "empty 2 MiB unit with hugepages=1, and one per new segment) and a \`getcpu\` every 16th page;"
echo "on this one-node machine the policy changes nothing, so what the numa=1 rows add over numa=0"
echo "is that cost alone. mbind calls in one run (\`strace -f -c -e trace=mbind\`):"
echo
echo "| configuration | mbind calls |"
echo "|---|---:|"
for c in h0n1 h1n1; do
    echo "| $(label "$c") | $(mbind_calls "$c") |"
done
echo
# The fixed price of huge pages: a small program's peak RSS.
for r in $(seq "$reps"); do
    for c in h0n0 h1n0; do
        run "$c" /usr/bin/time -f '%M' -o "$tmp/time" "$prog" 1 "$block" 1 >/dev/null
        cat "$tmp/time" >>"$tmp/small-$c"
    done
done
echo "What huge pages cost a small program: \`$prog 1 $block 1\` (1 MiB of blocks), peak RSS, median"
echo "of $reps. With hugepages=1 a segment's first 2 MiB is one huge page from its first write."
echo
echo "| configuration | peak RSS KiB |"
echo "|---|---:|"
for c in h0n0 h1n0; do
    echo "| $(label "$c") | $(median 1 "$tmp/small-$c") |"
done
