#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# demo.sh -- `make demo`: the same real programs on glibc, libmallet and each
# teaching design, side by side: wall time, peak RSS, and whether the output
# matches glibc's. Programs: sqlite3 running a generated SQL script, and
# python3 (PYTHONMALLOC=malloc, so every object is a malloc) doing JSON and
# regex work on threads. A run is cut off after DEMO_TIMEOUT seconds (default
# 10): the list-based teaching designs take minutes on the Python workload,
# which is the lesson. Missing libraries are skipped with a note.
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
. bench/lib_common.sh
limit=${DEMO_TIMEOUT:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

runs=("glibc -" "mallet $PWD/$BUILD/libmallet.so")
for d in bump firstfit split coalesce segregated buddy arena; do
    runs+=("teach-$d $PWD/$BUILD/teach/libteach-$d.so")
done

# demo_one TITLE COMMAND -- one table: COMMAND on every allocator.
demo_one() {
    local title=$1 cmd=$2 r name lib out t secs kib status note base_secs=
    echo
    echo "== $title"
    echo "   $cmd"
    printf '   %-18s %9s %9s %12s  %s\n' allocator "time (s)" "x glibc" "peak RSS" "output"
    for r in "${runs[@]}"; do
        name=${r%% *} lib=${r#* }
        if [ "$lib" != - ] && [ ! -f "$lib" ]; then
            printf '   %-18s %9s %9s %12s  %s\n' "$name" - - - "skipped: $lib is not built"
            continue
        fi
        out=$work/$name.out t=$work/time
        if [ "$lib" = - ]; then
            /usr/bin/time -f '%e %M' -o "$t" timeout "$limit" bash -c "$cmd" >"$out" 2>/dev/null
        else
            /usr/bin/time -f '%e %M' -o "$t" timeout "$limit" env LD_PRELOAD="$lib" bash -c "$cmd" \
                >"$out" 2>/dev/null
        fi
        status=$?
        read -r secs kib < <(tail -n 1 "$t")
        if [ "$status" = 124 ]; then
            note="cut off after ${limit} s (RSS so far)"
            secs=">$limit"
        elif [ "$status" != 0 ]; then
            note="failed (exit $status)"
        elif [ "$name" = glibc ]; then
            note="reference"
            base_secs=$secs
        elif cmp -s "$work/glibc.out" "$out"; then
            note="same as glibc"
        else
            note="DIFFERS from glibc"
        fi
        local ratio=-
        if [ -n "$base_secs" ] && [ "$status" = 0 ] && [ "$name" != glibc ]; then
            ratio=$(awk -v a="$secs" -v b="$base_secs" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
        fi
        printf '   %-18s %9s %9s %9.1f MiB  %s\n' "$name" "$secs" "$ratio" \
            "$(awk -v k="$kib" 'BEGIN { print k / 1024 }')" "$note"
    done
}

echo "mallet demo: the same programs on glibc, libmallet and the teaching allocators"
echo "(LD_PRELOAD each library; time and peak RSS from /usr/bin/time; runs cut off after ${limit} s)"
if command -v sqlite3 >/dev/null; then
    lib_make_sql "$work/script.sql" 20000
    demo_one "sqlite3: 20,000 inserts, an index, queries, a join, updates, vacuum" \
        "rm -f $work/db; sqlite3 $work/db < $work/script.sql"
else
    echo
    echo "== sqlite3 is not installed: skipped (apt-get install sqlite3)"
fi
lib_make_py "$work/work.py" 8000
demo_one "python3: 8,000 JSON documents, regex, 4 threads (PYTHONMALLOC=malloc)" \
    "PYTHONMALLOC=malloc /usr/bin/python3 $work/work.py"
echo
echo "The benchmarks against jemalloc, tcmalloc, mimalloc and tbbmalloc: make bench (bench/results.md)."
