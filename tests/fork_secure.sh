#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# fork_secure.sh -- tests/test_fork.c and test_lib_fork_repair.c against the
# secure build, plainly and under AddressSanitizer and ThreadSanitizer (the
# default build runs them in every mode of tests/run.sh; secure_suite.sh
# runs override_fork.c on the secure build). Builds the three variants it
# needs, then prints the summed "N passed, N failed, N skipped" line.
set -u
cd "$(dirname "$0")/.."
. tests/tally.bash
passed=0 failed=0 skipped=0
for variant in "plain build/secure" "asan build/secure/san-address SAN=address" \
               "tsan build/secure/san-thread SAN=thread"; do
    read -r mode dir san <<<"$variant"
    for prog in test_fork test_lib_fork_repair; do
        echo "== secure $mode $prog"
        if ! make -s -j2 SECURE=1 ${san:+"$san"} "$dir/tests/$prog" >/dev/null 2>&1; then
            echo "FAIL  build of $dir/tests/$prog"
            failed=$((failed + 1))
            continue
        fi
        out=$(MALLET_TEST_MODE=$mode TEST_TIMEOUT=120 TSAN_OPTIONS=die_after_fork=0 "$dir/tests/$prog" 2>&1)
        status=$?
        printf '%s\n' "$out" | grep -E '^(ok|FAIL|skip) |CHECK failed|rounds|Sanitizer'
        tally "$status" "$out"
    done
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
