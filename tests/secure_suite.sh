#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# secure_suite.sh -- the override tests against the secure build: every
# tests/override_*.c linked with build/secure/libmallet.a (made by `make
# secure`, with MALLET_SECURE=1, so override_misuse_heap.c expects the
# secure build's outcomes: overflows and writes after free are stopped),
# plus a preload check of build/libmallet-secure.so on real programs.
# Prints the summed "N passed, N failed, N skipped" line.
set -u
cd "$(dirname "$0")/.."
. tests/tally.bash
dir=${BUILD:-build}/secure/tests
so=${BUILD:-build}/libmallet-secure.so
if [ ! -d "$dir" ] || [ ! -f "$so" ]; then
    echo "secure_suite.sh: $dir or $so not built (make secure)"
    exit 1
fi
passed=0 failed=0 skipped=0
for t in "$dir"/override_*; do
    [ -x "$t" ] || continue
    echo "== $(basename "$t")"
    out=$(MALLET_TEST_MODE=plain TEST_TIMEOUT=120 "$t" 2>&1)
    status=$?
    printf '%s\n' "$out" | grep -E '^(ok|FAIL|skip) |CHECK failed'
    printf '%s\n' "$out" | grep -E '^ *(child said: )?mallet:' | head -n 5
    tally "$status" "$out"
done
# Real programs on the preloaded secure build: output as with glibc.
for cmd in "sort -n" "/usr/bin/python3 -c 'import json,sys; print(len(json.dumps(list(range(200000)))))'"; do
    want=$(seq 20000 -1 1 | bash -c "$cmd" 2>&1 | md5sum)
    got=$(seq 20000 -1 1 | LD_PRELOAD=$so bash -c "$cmd" 2>&1 | md5sum)
    if [ "$want" = "$got" ]; then
        echo "ok    preload: $cmd"
        passed=$((passed + 1))
    else
        echo "FAIL  preload: $cmd"
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed, $skipped skipped"
