#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# 30-replay.sh -- every allocator on the shipped traces (bench/traces/):
# utilization and throughput from `mallet replay`, as two Markdown tables
# (traces down, allocators across), the per-allocator summary, and two
# plots. Prints Markdown; progress on stderr.
#
# Allocators: libmallet and the teach designs in-process, glibc and the
# peers installed on the machine in a preloaded child. Each trace runs on
# every allocator in turn; throughput is the median of the timed passes.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
MALLET=$BUILD/mallet
[ -x "$MALLET" ] || { echo "30-replay: $MALLET not built" >&2; exit 1; }
mkdir -p bench/plots

if [ "${BENCH_QUICK:-0}" = 1 ]; then
    reps=3 timeout=30
    traces=(sqlite3 git-log python3-threads frag-worst realloc-growth producer-consumer)
else
    reps=5 timeout=60
    traces=()
    for f in bench/traces/*.trace.zst; do traces+=("$(basename "$f" .trace.zst)"); done
fi
files=()
for t in "${traces[@]}"; do files+=("bench/traces/$t.trace.zst"); done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Every allocator this build and machine can replay: try each on a tiny trace.
printf '64\n1\n2\n1\na 0 16\nf 0\n' >"$tmp/tiny.trace"
allocs=$("$MALLET" replay --help | sed -n 's/^ *valid: //p' | tr ' ' '\n' | while read -r a; do
    [ -n "$a" ] && "$MALLET" replay -r 1 -a "$a" "$tmp/tiny.trace" >/dev/null 2>&1 && echo "$a"
done | paste -sd, -)
[ -n "$allocs" ] || { echo "30-replay: no allocator replays" >&2; exit 1; }

cmd="$MALLET replay -a $allocs -r $reps --timeout $timeout --md --csv results.csv ${files[*]}"
echo "30-replay: $cmd" >&2
status=0
"$MALLET" replay -a "$allocs" -r "$reps" --timeout "$timeout" --md --csv "$tmp/results.csv" "${files[@]}" \
    >"$tmp/replay.md" 2>"$tmp/replay.err" || status=$?
[ "$status" -le 1 ] || { cat "$tmp/replay.err" >&2; exit 1; }

# pivot COLUMN: traces down, allocators across, one CSV column as the cell.
pivot() {
    awk -F, -v col="$1" -v allocs="$allocs" -v order="${traces[*]}" '
        NR > 1 { sub(/\.trace\.zst$/, "", $1); v[$1, $2] = $col }
        END {
            n = split(allocs, a, ","); m = split(order, t, " ")
            printf "| trace |"; for (i = 1; i <= n; i++) printf " %s |", a[i]; print ""
            printf "|---|"; for (i = 1; i <= n; i++) printf "--:|"; print ""
            for (j = 1; j <= m; j++) {
                printf "| %s |", t[j]
                for (i = 1; i <= n; i++) {
                    x = v[t[j], a[i]]
                    if (x == "") printf " — |"
                    else if (col == 8) printf " %.0f%% |", 100 * x
                    else printf " %.1f |", x / 1e6
                }
                print ""
            }
        }' "$tmp/results.csv"
}

echo "## Trace replay: utilization and throughput"
echo
echo "\`$cmd\`"
echo
echo "Traces (bench/traces/README.md): real programs recorded with \`mallet trace\`, and"
echo "synthetic patterns. Every block is checked (alignment, overlap, payload through realloc)."
echo "Utilization = peak live payload / peak footprint. The footprint is measured two ways:"
echo "teach designs **exact** (break + mmap, from the design itself); libmallet, glibc and the"
echo "peers **RSS** (peak RSS of the replay minus the RSS before its first op; every payload"
echo "byte is written, so what was handed out is resident). The kernel keeps RSS in per-CPU"
echo "counters and whole pages, so an RSS figure is good to a few hundred KiB: a small trace"
echo "can show slightly over 100%."
echo "Throughput is the median of $reps timed passes (fewer when the passes of one pair"
echo "exceed 3 s); a pair taking over $timeout s is shown as —."
echo
echo "### Utilization (higher is better)"
echo
pivot 8
echo
echo "### Throughput, million operations per second (higher is better)"
echo
pivot 7
echo
echo "### Summary: mean utilization, all ops / all time, malloc-lab score"
echo
echo "Score = 0.6 × util + 0.4 × min(1, ops/s ÷ 20 M), as in the CS:APP malloc lab."
echo
sed -n '/^| allocator | traces/,$p' "$tmp/replay.md"
if [ -s "$tmp/replay.err" ]; then
    echo
    echo "Failures and timeouts:"
    echo
    sed 's/^/    /' "$tmp/replay.err"
fi

if command -v gnuplot >/dev/null; then
    # data: one row per trace, one column per allocator
    for col in 8 7; do
        awk -F, -v col="$col" -v allocs="$allocs" -v order="${traces[*]}" '
            NR > 1 { sub(/\.trace\.zst$/, "", $1); v[$1, $2] = $col }
            END {
                n = split(allocs, a, ","); m = split(order, t, " ")
                printf "trace"; for (i = 1; i <= n; i++) printf " %s", a[i]; print ""
                for (j = 1; j <= m; j++) {
                    printf "%s", t[j]
                    for (i = 1; i <= n; i++) {
                        x = v[t[j], a[i]]
                        printf " %s", x == "" ? "NaN" : (col == 8 ? 100 * x : x / 1e6)
                    }
                    print ""
                }
            }' "$tmp/results.csv" >"$tmp/col$col.dat"
    done
    n=$(awk -F, '{ print NF }' <<<"$allocs")
    for what in util throughput; do
        if [ $what = util ]; then dat=$tmp/col8.dat ylabel="utilization, %" extra="set yrange [0:110]" title=utilization
        else dat=$tmp/col7.dat ylabel="million ops/s (log scale)" extra="set logscale y" title=throughput
        fi
        gnuplot <<EOF
set terminal svg size 1100,460 font "DejaVu Sans,11" background "white"
set output "bench/plots/replay-$what.svg"
set title "mallet replay: $title per trace (higher is better)"
set linetype 1 lc rgb "#1b9e77"
set linetype 2 lc rgb "#d95f02"
set linetype 3 lc rgb "#7570b3"
set linetype 4 lc rgb "#e7298a"
set linetype 5 lc rgb "#66a61e"
set linetype 6 lc rgb "#e6ab02"
set linetype 7 lc rgb "#a6761d"
set linetype 8 lc rgb "#666666"
set linetype 9 lc rgb "#1f78b4"
set linetype 10 lc rgb "#b2df8a"
set linetype 11 lc rgb "#fb9a99"
set linetype 12 lc rgb "#cab2d6"
set linetype 13 lc rgb "#ffff99"
set linetype 14 lc rgb "#000000"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top
set ylabel "$ylabel"
set xtics rotate by -25
set grid ytics
$extra
plot for [i=2:$((n + 1))] "$dat" using i:xtic(1) title columnheader(i)
EOF
    done
    echo
    echo "![utilization per trace](plots/replay-util.svg)"
    echo "![throughput per trace](plots/replay-throughput.svg)"
fi
