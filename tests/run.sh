#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# run.sh MODE... -- build and run the suite in each mode, then print one line:
# "N passed, N failed, N skipped", summed over every test of every mode.
#
#   plain     the default build; C tests, override tests and the real-program
#             scripts (tests/*.sh)
#   asan      SAN=address build of the C tests
#   valgrind  TRACK=valgrind build of the C tests, each run under memcheck
#   ubsan     SAN=undefined build of the C tests (any report fails the test)
#   tsan      SAN=thread build of the multithreaded C tests: those whose
#             source carries the line `// tsan: yes`
#   fuzz      `make fuzz` for FUZZ_SECONDS (default 20) per target; each
#             target counts as one test
#
# A test program prints its own closing count line (tests/test.h); a script
# exits 0 (pass), 77 (skip) or anything else (fail), or prints a count line.
set -u
cd "$(dirname "$0")/.."
JOBS=$(nproc 2>/dev/null || echo 2)
passed=0 failed=0 skipped=0
failures=()
log_dir=build/test-logs
mkdir -p "$log_dir"

count() {   # count NAME STATUS LOGFILE
    local name=$1 status=$2 log=$3 line p f s
    line=$(grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+')
        f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+')
        s=$(grep -oE '[0-9]+ skipped' <<<"$line" | grep -oE '[0-9]+' || echo 0)
        [ "$status" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    elif [ "$status" -eq 0 ]; then p=1 f=0 s=0
    elif [ "$status" -eq 77 ]; then p=0 f=0 s=1
    else p=0 f=1 s=0
    fi
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + ${s:-0}))
    local mark=ok
    [ "$f" -gt 0 ] && { mark=FAIL; failures+=("$name (log: $log)"); }
    printf '%-5s %-44s %3d passed, %d failed, %d skipped\n' "$mark" "$name" "$p" "$f" "${s:-0}"
    if [ "$f" -gt 0 ]; then grep -E 'FAIL|CHECK|ERROR|Sanitizer|error' "$log" | head -n 15 | sed 's/^/      /'; fi
}

run_mode() {
    local mode=$1 build make_args wrap=()
    case $mode in
        plain)    build=build;                      make_args=() ;;
        asan)     build=build/san-address;          make_args=(SAN=address) ;;
        # nouserintercepts: memcheck would otherwise replace the malloc that
        # override_* programs link statically; libmallet describes its blocks
        # to memcheck itself (TRACK=valgrind), glibc's malloc is still replaced.
        valgrind) build=build/track-valgrind;       make_args=(TRACK=valgrind)
                  # --fair-sched: valgrind runs one thread at a time, and its
                  # default hand-over lets a thread spinning on a lock take
                  # the turn back before the holder runs.
                  wrap=(valgrind -q --error-exitcode=99 --leak-check=full --fair-sched=yes
                        --soname-synonyms=somalloc=nouserintercepts
                        --errors-for-leak-kinds=definite --show-leak-kinds=definite) ;;
        ubsan)    build=build/san-undefined;        make_args=(SAN=undefined) ;;
        # die_after_fork=0: a forked child of a threaded test may start
        # libmallet's purger thread, which TSan refuses by default.
        tsan)     build=build/san-thread;           make_args=(SAN=thread)
                  export TSAN_OPTIONS=${TSAN_OPTIONS:-die_after_fork=0} ;;
        fuzz)     run_fuzz; return ;;
        *) echo "run.sh: unknown mode $mode" >&2; return 2 ;;
    esac
    echo "== $mode"
    if ! make -s -j"$JOBS" "${make_args[@]}" all >"$log_dir/build-$mode.log" 2>&1; then
        cat "$log_dir/build-$mode.log" | tail -n 30
        failed=$((failed + 1)); failures+=("build ($mode)")
        return
    fi
    local t name log status
    for t in "$build"/tests/test_* "$build"/tests/override_*; do
        [ -x "$t" ] || continue
        if [ "$mode" = tsan ] && ! grep -qx '// tsan: yes' "tests/$(basename "$t").c"; then
            continue
        fi
        name=$mode/$(basename "$t")
        log=$log_dir/${mode}-$(basename "$t").log
        # Memcheck slows programs ~20-50x: the timeout per test grows with it.
        if [ "$mode" = valgrind ]; then
            TEST_TIMEOUT=600 MALLET_TEST_MODE=$mode "${wrap[@]}" "$t" >"$log" 2>&1; status=$?
        else
            TEST_TIMEOUT=120 MALLET_TEST_MODE=$mode "$t" >"$log" 2>&1; status=$?
        fi
        count "$name" "$status" "$log"
    done
    if [ "$mode" = plain ]; then
        for t in tests/*.sh; do
            [ -f "$t" ] && [ "$(basename "$t")" != run.sh ] || continue
            name=$mode/$(basename "$t" .sh)
            log=$log_dir/${mode}-$(basename "$t" .sh).log
            MALLET_TEST_MODE=$mode BUILD=$build timeout 900 bash "$t" >"$log" 2>&1; status=$?
            count "$name" "$status" "$log"
        done
    fi
}

# Each fuzz target for FUZZ_SECONDS; a crash leaves its input in build/fuzz/
# and fails the target.
run_fuzz() {
    local secs=${FUZZ_SECONDS:-20} target log status
    echo "== fuzz"
    if ! make -s fuzz-build >"$log_dir/build-fuzz.log" 2>&1; then
        tail -n 30 "$log_dir/build-fuzz.log"
        failed=$((failed + 1)); failures+=("build (fuzz)")
        return
    fi
    for target in $(make -s fuzz-list); do
        log=$log_dir/fuzz-$target.log
        make -s fuzz-run FUZZ_TARGET="$target" FUZZ_SECONDS="$secs" >"$log" 2>&1; status=$?
        count "fuzz/$target" "$status" "$log"
    done
}

[ $# -gt 0 ] || set -- plain
for mode in "$@"; do run_mode "$mode"; done
if [ ${#failures[@]} -gt 0 ]; then
    echo "failed:"; printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
