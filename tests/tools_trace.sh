#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# tools_trace.sh -- `mallet trace` records what programs allocate, and
# `mallet replay` replays it: the exact operations of a known program, a
# multithreaded one, a forking one, real programs (sort, sqlite3), and
# compressed traces.
. "$(dirname "$0")/tools_lib.bash"

# --- round trip: the trace has exactly the program's operations ----------------
ok "trace known" "$MALLET" trace -o "$TMP/k.trace" -- "$PROG" known
body=$(awk 'NR > 4' "$TMP/k.trace" | sed -n '/^a [0-9]* 777777$/,/^a [0-9]* 888888$/p')
want='a 0 777777
f 0
a 1 100
a 2 120
r 1 200
f 2
a 3 256
a 4 48
a 5 72
r 6 10
f 1
f 3
f 4
f 5
f 6
f -1
a 7 888888'
same "known ops, in order, with ids" "$body" "$want"
header=$(head -n 4 "$TMP/k.trace" | tr -s ' \n' ' ')
ops=$(awk 'NR > 4' "$TMP/k.trace" | wc -l)
ids=$(awk 'NR > 4 && $2 != "-1" { print $2 }' "$TMP/k.trace" | sort -u | wc -l)
same "header counts the ops" "$(echo "$header" | awk '{ print $3 }')" "$ops"
same "header counts the ids" "$(echo "$header" | awk '{ print $2 }')" "$ids"
ok "replay known" "$MALLET" replay -r 1 -a glibc,firstfit "$TMP/k.trace"
same "replay counts the same ops" "$(awk '$1 == "k.trace" && $2 == "glibc" { print $3 }' "$TMP/out")" "$ops"

# --- compressed traces ---------------------------------------------------------
if command -v zstd >/dev/null; then
    zstd -q -k "$TMP/k.trace" -o "$TMP/k.trace.zst"
    ok "replay .zst" "$MALLET" replay -r 1 -a firstfit "$TMP/k.trace.zst"
    same "replay .zst counts the ops" "$(awk '$2 == "firstfit" { print $3 }' "$TMP/out")" "$ops"
fi
gzip -c "$TMP/k.trace" >"$TMP/k.trace.gz"
ok "replay .gz" "$MALLET" replay -r 1 -a glibc "$TMP/k.trace.gz"
same "replay .gz counts the ops" "$(awk '$2 == "glibc" { print $3 }' "$TMP/out")" "$ops"

# --- threads: every operation of every thread, consistent ----------------------
ok "trace threads" "$MALLET" trace -o "$TMP/mt.trace" -- "$PROG" threads 4 5000
made=$(grep -E '^[0-9]+$' "$TMP/out" | head -n 1)
recorded=$(sed -n 3p "$TMP/mt.trace" | tr -d ' ')
[ -n "$made" ] && [ "$recorded" -ge "$made" ] && [ "$recorded" -le $((made + 20)) ]
same "threads: all ops recorded ($recorded for $made)" $? 0
ok "replay threads" "$MALLET" replay -r 1 -a glibc,firstfit "$TMP/mt.trace"
# Each thread's ops carry its number (the first thread's none, so a
# single-threaded trace stays classic): 4 workers, @1..@4.
same "threads: each worker's ops carry @T" \
    "$(awk 'NR > 4 && $NF ~ /^@/ { print $NF }' "$TMP/mt.trace" | sort -u | tr '\n' ' ')" "@1 @2 @3 @4 "
ok "replay --threads" "$MALLET" replay --threads -r 1 -a mallet,glibc,firstfit --csv "$TMP/mt.csv" "$TMP/mt.trace"
same "replay --threads: every op, on 5 threads" \
    "$(awk -F, 'NR > 1 { print $2, $3, $11 }' "$TMP/mt.csv" | tr '\n' ';')" \
    "mallet $recorded 5;glibc $recorded 5;firstfit $recorded 5;"
ok "replay without --threads" "$MALLET" replay -r 1 -a mallet --csv "$TMP/mt1.csv" "$TMP/mt.trace"
same "replay without --threads: on one" "$(awk -F, 'NR > 1 { print $11 }' "$TMP/mt1.csv")" 1

# Cross-thread dependencies: thread 1 resizes and thread 2 frees what
# thread 0 made; thread 2 makes what thread 1 frees. The replay must keep
# each block's ops in their recorded order, whichever thread runs first.
printf '0\n3\n10\n1\na 0 100\nr 0 5000 @1\na 1 64 @2\nr 0 40 @1\nf 1 @1\nf -1 @2\nf 0 @2\nr 2 24 @1\nr 2 240\nf 2 @2\n' \
    >"$TMP/cross.trace"
for i in 1 2 3; do
    ok "replay --threads cross-thread ($i)" "$MALLET" replay --threads -r 3 "$TMP/cross.trace"
done
same "cross-thread: every allocator replays every op" \
    "$(awk '$1 == "cross.trace" { print $3 }' "$TMP/out" | sort -u)" 10

# --- fork: one file per process -------------------------------------------------
ok "trace fork" "$MALLET" trace -o "$TMP/f.trace" -- "$PROG" fork
files=$(cd "$TMP" && ls f.trace* | wc -l)
same "fork writes two traces" "$files" 2
child=$(cd "$TMP" && ls f.trace.* 2>/dev/null | head -n 1)
same "child trace: its own ops, parent's block skipped" "$(awk 'NR > 4' "$TMP/$child" 2>/dev/null | tr '\n' ';')" "a 0 2000;f 0;"
same "parent trace" "$(awk 'NR > 4' "$TMP/f.trace" | grep -E ' (1000|3000)$' | wc -l)" 2
ok "replay fork traces" "$MALLET" replay -r 1 -a firstfit "$TMP/f.trace" "$TMP/$child"

# --- exec: the new image writes FILE.PID, the old one's trace is complete ------
ok "trace exec" "$MALLET" trace -o "$TMP/x.trace" -- bash -c 'echo "pid $$"; exec ls /'
pid=$(sed -n 's/^pid //p' "$TMP/out")
[ -s "$TMP/x.trace" ] && [ -s "$TMP/x.trace.$pid" ]; same "exec writes FILE and FILE.PID" $? 0
ok "replay both images" "$MALLET" replay -r 1 -a glibc "$TMP/x.trace" "$TMP/x.trace.$pid"

# --- a program that crashes is reported, its status kept -----------------------
fails "trace crash" "crashed" "$MALLET" trace -o "$TMP/c.trace" -- "$PROG" crash
fails "trace exit status" "" "$MALLET" trace -o "$TMP/e.trace" -- sh -c 'exit 3'

# --- real programs ---------------------------------------------------------------
seq 1 3000 | sort -R >"$TMP/numbers"
ok "trace sort" "$MALLET" trace -o "$TMP/sort.trace" -- sort -n "$TMP/numbers"
ok "replay sort" "$MALLET" replay -r 1 -a glibc,firstfit "$TMP/sort.trace"
if command -v sqlite3 >/dev/null; then
    printf 'create table t(a, b);\nwith recursive n(i) as (select 1 union all select i + 1 from n where i < 500)\ninsert into t select i, hex(randomblob(20)) from n;\nselect count(*), sum(length(b)) from t;\n' >"$TMP/q.sql"
    ok "trace sqlite3" "$MALLET" trace -o "$TMP/sq.trace" -- sqlite3 :memory: ".read $TMP/q.sql"
    ok "replay sqlite3" "$MALLET" replay -r 1 -a glibc,firstfit "$TMP/sq.trace"
fi

finish
