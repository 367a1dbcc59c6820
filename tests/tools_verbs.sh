#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# tools_verbs.sh -- each verb of the mallet command: help, error paths
# (missing arguments, missing files, unknown and missing allocators,
# malformed traces), exit statuses, crash reports, and the heap map's SVG.
. "$(dirname "$0")/tools_lib.bash"

# --- help and dispatch ----------------------------------------------------------
fails "no verb" "usage: mallet VERB" "$MALLET"
fails "unknown verb" "unknown verb 'frobnicate'" "$MALLET" frobnicate
ok "help" "$MALLET" --help
for v in run trace replay bench heapmap; do
    ok "$v --help" "$MALLET" "$v" --help
    grep -q "usage: mallet $v" "$TMP/out"; same "$v --help shows its usage" $? 0
done

# --- run ---------------------------------------------------------------------------
fails "run: no command" "no command given" "$MALLET" run -a glibc
fails "run: unknown allocator lists the valid ones" "valid: mallet" "$MALLET" run -a nosuch -- true
grep -q "glibc" "$TMP/out" && grep -q "jemalloc" "$TMP/out"; same "valid list names glibc and peers" $? 0
fails "run: missing peer names its package" "apt-get install libjemalloc2" \
    env MALLET_PEER_DIR="$TMP/none" "$MALLET" run -a jemalloc -- true
"$MALLET" run -a glibc -- sh -c 'exit 7' >/dev/null 2>&1
same "run keeps the exit status" $? 7
fails "run: crash named" "crashed under glibc: signal 11 (SIGSEGV)" "$MALLET" run -a glibc -- "$PROG" crash
"$MALLET" run -a glibc -- "$PROG" crash >/dev/null 2>&1
same "run: crash status" $? 139
fails "run: missing program" "cannot run" "$MALLET" run -a glibc -- "$TMP/no-such-program"
ok "run --stats glibc says none" "$MALLET" run -a glibc --stats -- true
grep -q "no summary" "$TMP/out"; same "glibc has no summary" $? 0
for a in firstfit split; do
    if [ -f "$ROOT/$BUILD/teach/libteach-$a.so" ]; then
        ok "run on $a" "$MALLET" run -a "$a" -- "$PROG" threads 2 2000
    fi
done

# --- trace ---------------------------------------------------------------------------
fails "trace: no -o" "no output file" "$MALLET" trace -- true
fails "trace: no command" "no command given" "$MALLET" trace -o "$TMP/x.trace"
fails "trace: unwritable" "$TMP/none/x.trace" "$MALLET" trace -o "$TMP/none/x.trace" -- true

# --- replay: arguments ----------------------------------------------------------------
printf '100\n2\n4\n1\na 0 16\na 1 32\nf 0\nf 1\n' >"$TMP/good.trace"
fails "replay: no trace" "no trace given" "$MALLET" replay
fails "replay: missing file" "no-such.trace: No such file" "$MALLET" replay -a glibc "$TMP/no-such.trace"
fails "replay: unknown allocator" "unknown allocator 'nosuch'; valid: mallet" "$MALLET" replay -a nosuch "$TMP/good.trace"
fails "replay: bad -r" "-r wants a number" "$MALLET" replay -r 0 "$TMP/good.trace"
fails "replay: missing peer" "apt-get install libmimalloc2.0" \
    env MALLET_PEER_DIR="$TMP/none" "$MALLET" replay -a mimalloc "$TMP/good.trace"
ok "replay: a 4-line header" "$MALLET" replay -r 1 -a glibc "$TMP/good.trace"
printf '100\n2\n4\na 0 16\na 1 32\nf 0\nf 1\n' >"$TMP/three.trace"
ok "replay: 3-line header (no weight)" "$MALLET" replay -r 1 -a glibc "$TMP/three.trace"
printf '2\n4\na 0 16\na 1 32\nf 0\nf 1\n' >"$TMP/two.trace"
ok "replay: 2-line header (ids, ops)" "$MALLET" replay -r 1 -a glibc "$TMP/two.trace"
same "2-line header: all ops" "$(awk '$2 == "glibc" { print $3 }' "$TMP/out")" 4

printf '100\n1\n2\n1\na 0 16\nf 0\nn\n' >"$TMP/tail.trace"
ok "replay: lines after the ops are ignored" "$MALLET" replay -r 1 -a glibc "$TMP/tail.trace"
grep -q "tail.trace:7: warning: ignoring" "$TMP/out"; same "... with a warning" $? 0

# --- replay: the variants public malloc-lab trace sets hold --------------------------
# Each is a thing the traced program did: free(NULL) as `f -1`, realloc(NULL,
# n) as `r` of an id not live, malloc(0) as `a ID` with no size; and lines
# ending in CR LF. Every allocator replays them, and heapmap draws them.
variant() {   # variant NAME OPS CONTENT
    printf "$3" >"$TMP/variant.trace"
    ok "variant: $1" "$MALLET" replay -r 1 "$TMP/variant.trace"
    same "variant: $1: every allocator, every op" \
        "$(awk '$1 == "variant.trace" { print $2, $3 }' "$TMP/out" | sort -u | awk '{ print $2 }' | sort -u)" "$2"
}
variant "free of NULL" 4 '100\n1\n4\n1\nf -1\na 0 16\nf -1\nf 0\n'
variant "realloc of NULL" 5 '100\n2\n5\n1\nr 0 40\nr 0 100\nf 0\nr 1 24\nf 1\n'
variant "realloc of a freed id" 4 '100\n1\n4\n1\na 0 16\nf 0\nr 0 32\nf 0\n'
variant "malloc of 0" 5 '100\n2\n5\n1\na 0 \na 1\nr 1 48\nf 0\nf 1\n'
variant "CR LF" 6 '100\r\n3\r\n6\r\n1\r\na 0 16\r\nf -1\r\nr 1 8\r\na 2 \r\nf 0\r\nf 1\r\n'
printf '20000\r\n4\r\n10\r\n1\r\na 0 512\r\nf -1\r\nr 1 640\r\na 2\r\na 3 128\r\nf 2\r\nr 0 768\r\nf 0\r\nf 1\r\nf 3\r\n' \
    >"$TMP/all.trace"
if "$MALLET" heapmap --help | grep -q firstfit; then
    ok "variants: heapmap" "$MALLET" heapmap -a coalesce -o "$TMP/variants.svg" "$TMP/all.trace"
    grep -q '<svg' "$TMP/variants.svg"; same "variants: heapmap draws" $? 0
fi

# --- replay: malformed traces stop with FILE:LINE --------------------------------------
bad() {   # bad NAME NEEDLE CONTENT
    printf "$3" >"$TMP/bad.trace"
    fails "malformed: $1" "bad.trace:$2" "$MALLET" replay -r 1 -a glibc "$TMP/bad.trace"
}
bad "bad op" "6: expected 'a ID SIZE', 'f ID' or 'r ID SIZE', found 'x 1 32'" '100\n2\n4\n1\na 0 16\nx 1 32\nf 0\nf 1\n'
bad "missing size" "5: expected 'a ID SIZE'" '100\n2\n2\n1\nr 0\nf 0\n'
bad "free of -2" "5: expected 'a ID SIZE'" '100\n2\n1\n1\nf -2\n'
bad "bad thread" "5: expected a thread number from 0 to 255" '100\n2\n1\n1\na 0 16 @256\n'
bad "header" "2: expected a header number or an op, found 'two'" '100\ntwo\n4\n1\n'
bad "no header" "1: expected the header" 'a 0 16\nf 0\n'
bad "id range" "6: id 5 out of range (the header declares 2 ids)" '100\n2\n4\n1\na 0 16\na 5 32\nf 0\nf 5\n'
bad "double alloc" "6: id 0 is allocated twice" '100\n2\n3\n1\na 0 16\na 0 32\nf 0\n'
bad "free of unallocated" "5: free of id 1, which is not allocated" '100\n2\n1\n1\nf 1\n'
bad "op count" "6: expected 4 operations (the header), found 2" '100\n2\n4\n1\na 0 16\nf 0\n'
bad "trailing junk" "5: expected 'a ID SIZE'" '100\n2\n2\n1\na 0 16 17\nf 0\n'

# --- replay: a crash is the allocator's, contained and named -----------------------------
cat >"$TMP/crashy.c" <<'EOF'
#include <signal.h>
#include <stddef.h>
extern void *__libc_malloc(size_t);
void *malloc(size_t n) { if (n == 4242) raise(SIGSEGV); return __libc_malloc(n); }
EOF
mkdir -p "$TMP/peers"
cc -shared -fPIC -o "$TMP/peers/libjemalloc.so.2" "$TMP/crashy.c"
printf '100\n1\n2\n1\na 0 4242\nf 0\n' >"$TMP/crash.trace"
fails "replay: crash named" "crash.trace crashed under jemalloc: signal 11 (SIGSEGV)" \
    env MALLET_PEER_DIR="$TMP/peers" "$MALLET" replay -r 1 -a jemalloc,glibc "$TMP/crash.trace"
grep -qE '^crash.trace +glibc +2 ' "$TMP/out"; same "replay goes on after a crash" $? 0

# --- heapmap --------------------------------------------------------------------------------
fails "heapmap: no design" "no design" "$MALLET" heapmap -o "$TMP/h.svg" "$TMP/good.trace"
fails "heapmap: not a teach design" "only teach designs" "$MALLET" heapmap -a glibc -o "$TMP/h.svg" "$TMP/good.trace"
fails "heapmap: bad suffix" "must end in .svg or .png" "$MALLET" heapmap -a firstfit -o "$TMP/h.txt" "$TMP/good.trace"
fails "heapmap: missing trace" "No such file" "$MALLET" heapmap -a firstfit -o "$TMP/h.svg" "$TMP/none.trace"
if "$MALLET" heapmap --help | grep -q firstfit; then
    ok "heapmap: svg" "$MALLET" heapmap -a firstfit -s 2 -o "$TMP/h.svg" "$TMP/good.trace"
    same "svg starts with <svg" "$(head -c 4 "$TMP/h.svg")" "<svg"
    same "svg ends with </svg>" "$(tail -n 1 "$TMP/h.svg")" "</svg>"
    [ "$(grep -c '<rect' "$TMP/h.svg")" -gt 5 ]; same "svg has blocks" $? 0
    grep -q "free block" "$TMP/h.svg" && grep -q "used block" "$TMP/h.svg"; same "svg has the legend" $? 0
    grep -q "external fragmentation" "$TMP/h.svg"; same "svg has the figures" $? 0
    grep -c '>op [0-9]' "$TMP/h.svg" >"$TMP/strips"; same "one strip per 2 ops" "$(cat "$TMP/strips")" 2
    ok "heapmap: --at" "$MALLET" heapmap -a firstfit --at 2 -o "$TMP/at.svg" "$TMP/good.trace"
    grep -q "after op 2 of 4" "$TMP/at.svg"; same "--at draws that op" $? 0
    fails "heapmap: --at past the end" "past the last op" "$MALLET" heapmap -a firstfit --at 9 -o "$TMP/at.svg" "$TMP/good.trace"
    if command -v /usr/bin/python3 >/dev/null; then
        /usr/bin/python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])' "$TMP/h.svg"
        same "svg is well-formed XML" $? 0
    fi
    if command -v rsvg-convert >/dev/null; then
        ok "heapmap: png" "$MALLET" heapmap -a firstfit -o "$TMP/h.png" "$TMP/good.trace"
        same "png signature" "$(head -c 4 "$TMP/h.png" | tail -c 3)" "PNG"
    fi
fi

# --- bench -------------------------------------------------------------------------------------
fails "bench: bad argument" "unknown argument" "$MALLET" bench --bogus

finish
