#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# 32-replay-threads.sh -- the multithreaded traces of bench/traces/ (those
# whose ops carry a thread number, `@T`) replayed by every allocator twice:
# on one thread in recorded order, and with `mallet replay --threads`, each
# recorded thread on a thread of its own. Utilization and throughput side by
# side, as Markdown. Progress on stderr.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
MALLET=$BUILD/mallet
[ -x "$MALLET" ] || { echo "32-replay-threads: $MALLET not built" >&2; exit 1; }

if [ "${BENCH_QUICK:-0}" = 1 ]; then reps=3 timeout=30; else reps=5 timeout=60; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

traces=() files=()
for f in bench/traces/*.trace.zst; do
    zstd -dc "$f" | grep -q ' @[0-9]' || continue
    traces+=("$(basename "$f" .trace.zst)")
    files+=("$f")
done
[ ${#files[@]} -gt 0 ] || { echo "32-replay-threads: no multithreaded trace" >&2; exit 1; }

# Every allocator this build and machine can replay: try each on a tiny trace.
printf '64\n1\n2\n1\na 0 16\nf 0 @1\n' >"$tmp/tiny.trace"
allocs=$("$MALLET" replay --help | sed -n 's/^ *valid: //p' | tr ' ' '\n' | while read -r a; do
    [ -n "$a" ] && "$MALLET" replay --threads -r 1 -a "$a" "$tmp/tiny.trace" >/dev/null 2>&1 && echo "$a"
done | paste -sd, -)
[ -n "$allocs" ] || { echo "32-replay-threads: no allocator replays" >&2; exit 1; }

cmd1="$MALLET replay -a $allocs -r $reps --timeout $timeout --csv one.csv ${files[*]}"
cmdn="$MALLET replay --threads -a $allocs -r $reps --timeout $timeout --csv threads.csv ${files[*]}"
for mode in one threads; do
    echo "32-replay-threads: $([ $mode = one ] && echo "$cmd1" || echo "$cmdn")" >&2
    flag=()
    [ $mode = threads ] && flag=(--threads)
    status=0
    "$MALLET" replay "${flag[@]}" -a "$allocs" -r "$reps" --timeout "$timeout" --csv "$tmp/$mode.csv" \
        "${files[@]}" >"$tmp/$mode.out" 2>"$tmp/$mode.err" || status=$?
    [ "$status" -le 1 ] || { cat "$tmp/$mode.err" >&2; exit 1; }
done

# side COLUMN: allocators down; per trace, one thread then its threads.
side() {
    awk -F, -v col="$1" -v allocs="$allocs" -v order="${traces[*]}" '
        FNR == 1 { mode = FILENAME ~ /threads\.csv$/ ? "n" : "1"; next }
        { sub(/\.trace\.zst$/, "", $1); v[$1, $2, mode] = $col; if (mode == "n") nt[$1] = $11 }
        END {
            n = split(allocs, a, ","); m = split(order, t, " ")
            printf "| allocator |"
            for (j = 1; j <= m; j++) printf " %s, 1 thread | %s, %s threads |", t[j], t[j], nt[t[j]]
            print ""
            printf "|---|"; for (j = 1; j <= m; j++) printf "--:|--:|"; print ""
            for (i = 1; i <= n; i++) {
                printf "| %s |", a[i]
                for (j = 1; j <= m; j++) {
                    for (k = 1; k <= 2; k++) {
                        x = v[t[j], a[i], k == 1 ? "1" : "n"]
                        if (x == "") printf " — |"
                        else if (col == 8) printf " %.0f%% |", 100 * x
                        else printf " %.1f |", x / 1e6
                    }
                }
                print ""
            }
        }' "$tmp/one.csv" "$tmp/threads.csv"
}

echo "## Trace replay on the recorded threads"
echo
echo "\`$cmd1\`"
echo
echo "\`$cmdn\`"
echo
echo "The multithreaded traces of bench/traces/ (their ops carry the recording's thread"
echo "numbers), replayed twice by every allocator: on one thread in recorded order, as in"
echo "the section above, and with \`--threads\`, where each recorded thread replays its ops on"
echo "a thread of its own and an op waits only for the op before it on the same block"
echo "(frees of another thread's blocks included). Without that order between blocks a"
echo "thread may run ahead of the others, so the live payload peaks differently than on one"
echo "thread; utilization is each replay's own peak live payload over its own peak footprint"
echo "(measured as in the section above). Teach designs run under one lock with \`--threads\`."
echo "The machine has $(nproc) cores, fewer than some traces have threads: a waiting thread"
echo "spins a few microseconds, then yields. Throughput is the median of $reps timed passes; a"
echo "pair taking over $timeout s is shown as —."
echo
echo "### Utilization (higher is better)"
echo
side 8
echo
echo "### Throughput, million operations per second (higher is better)"
echo
side 7
for mode in one threads; do
    if [ -s "$tmp/$mode.err" ]; then
        echo
        echo "Failures and timeouts ($([ $mode = one ] && echo "one thread" || echo "--threads")):"
        echo
        sed 's/^/    /' "$tmp/$mode.err"
    fi
done
