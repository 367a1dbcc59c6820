#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# teach_gc_link.sh -- the garbage collector linked the way the README tells
# a user to: `cc prog.c -Iteach build/teach/libteach-gc.a`, nothing more.
# The archive carries the OS seam it runs on, so the line links on its own;
# the program then collects garbage it made (the README's example), and the
# same line with -O2 and with -static links and runs too.
#
# Env: BUILD (build folder, default build). Exit 77 when the archive is not
# built. Prints "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
LIB=$BUILD/teach/libteach-gc.a
[ -f "$LIB" ] || { echo "skip: $LIB is not built"; exit 77; }
WORK=$(mktemp -d /tmp/mallet-gclink.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
passed=0 failed=0

check() {   # check NAME STATUS
    if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $1"; fi
}

cat >"$WORK/prog.c" <<'PROG'
#include <stdio.h>
#include "gc.h"

typedef struct node { struct node *next; char pad[48]; } node_t;

int main(void)
{
    node_t *keep = gc_malloc(sizeof *keep);
    node_t *p = gc_malloc(sizeof *p);
    p->next = gc_malloc(sizeof *p);
    p = NULL;                                   // two blocks are garbage now
    gc_collect();
    gc_stats_t s;
    gc_stats_get(&s);
    printf("live %zu freed %llu\n", gc_live_bytes(), (unsigned long long)s.last_freed);
    return keep->next != NULL;
}
PROG

# The README's line, as typed (from the repository's root).
cc "$WORK/prog.c" -Iteach "$LIB" -o "$WORK/prog" 2>"$WORK/err"
status=$?
[ $status -eq 0 ] || sed 's/^/    /' "$WORK/err" | head -n 20
check "cc prog.c -Iteach $LIB links" $status
out=$("$WORK/prog" 2>&1)
[ "$out" = "live 64 freed 2" ]
status=$?
[ $status -eq 0 ] || echo "    prog printed: $out (wanted: live 64 freed 2)"
check "the program collects its garbage" $status

cc -O2 "$WORK/prog.c" -Iteach "$LIB" -o "$WORK/prog-O2" 2>"$WORK/err" && "$WORK/prog-O2" >/dev/null
check "the line with -O2" $?
if cc -static "$WORK/prog.c" -Iteach "$LIB" -o "$WORK/prog-static" 2>"$WORK/err"; then
    "$WORK/prog-static" >/dev/null
    check "the line with -static" $?
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
