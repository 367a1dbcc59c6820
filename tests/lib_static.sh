#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# lib_static.sh -- a program built the way a user links libmallet in: once
# with build/libmallet.a next to the dynamic libc, once fully static
# (-static, libc.a), with threads and libc-internal mallocs (strdup,
# asprintf). Each must run on libmallet: mallet_stats_get counts every one of
# its mallocs, and `nm` shows malloc defined in the program itself.
#
# Env: BUILD (build folder, default build). Exit 77 when libmallet.a is not
# built or has no allocator yet. Prints "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
LIB=$BUILD/libmallet.a
if [ ! -f "$LIB" ] || ! nm "$LIB" 2>/dev/null | grep -q ' T mallet_stats_get$'; then
    echo "skip: $LIB holds no allocator"
    exit 77
fi
WORK=$(mktemp -d /tmp/mallet-static.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
passed=0 failed=0

cat >"$WORK/prog.c" <<'EOF'
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mallet.h"

// Through volatile pointers, so no malloc/free pair is folded away.
static void *(*volatile do_malloc)(size_t) = malloc;
static void (*volatile do_free)(void *) = free;

static void *worker(void *arg)
{
    for (int i = 0; i < 10000; i++)
        do_free(do_malloc(16 + (size_t)(i % 900)));
    return arg;
}

int main(void)
{
    mallet_stats_t a, b;
    mallet_stats_get(&a);
    char *s = strdup("libc copies this with malloc");
    char *f = NULL;
    if (asprintf(&f, "%s and %d", s, 42) < 0)
        return 2;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    mallet_stats_get(&b);
    unsigned long long calls = b.malloc_calls - a.malloc_calls;
    int ok = calls >= 40002 && mallet_usable_size(s) >= strlen(s) + 1 &&
             mallet_usable_size(f) >= strlen(f) + 1;
    printf("%s: %llu mallocs counted by libmallet\n", f, calls);
    free(f);
    free(s);
    return ok ? 0 : 1;
}
EOF

# build_and_run NAME EXTRA_FLAGS...
build_and_run() {
    local name=$1; shift
    if ! cc -O2 -pthread -Iinclude "$@" -o "$WORK/$name" "$WORK/prog.c" "$LIB" 2>"$WORK/$name.err"; then
        echo "FAIL  $name: does not link: $(head -c 600 "$WORK/$name.err")"
        failed=$((failed + 1))
        return
    fi
    if ! nm "$WORK/$name" | grep -qE ' T (malloc|__libc_malloc)$'; then
        echo "FAIL  $name: malloc is not defined in the program"
        failed=$((failed + 1))
    elif out=$("$WORK/$name" 2>&1); then
        echo "ok    $name ($out)"
        passed=$((passed + 1))
    else
        echo "FAIL  $name: exit $?: $out"
        failed=$((failed + 1))
    fi
}

build_and_run linked_with_libmallet_a
if [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -f /usr/lib/libc.a ]; then
    build_and_run fully_static -static
else
    echo "skip  fully_static: no libc.a"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
