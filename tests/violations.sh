#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# violations.sh -- what each allocator notices of the heap violations that
# tests/violation.c commits, one per run.
#
#   violations.sh                  the test: every violation once under
#                                  build/libmallet.so and once under
#                                  build/libmallet-secure.so; the outcome
#                                  must be the one EXPECTED lists. Prints
#                                  "N passed, N failed, N skipped".
#   violations.sh --table [ALLOC...]
#                                  a Markdown table of outcomes, a row per
#                                  violation, a column per allocator; each
#                                  cell runs VIOLATION_RUNS times (default 3)
#                                  and lists every outcome seen.
#
# ALLOC is glibc (no preload), mallet, mallet-secure, scudo (bench/scudo.sh
# finds it), a peer of bench/peers.sh (jemalloc, tcmalloc, mimalloc,
# tbbmalloc), or NAME=LIBRARY. Without ALLOC: every one found.
#
# Outcomes:
#   report  killed by SIGABRT after a message on stderr. For the mallet
#           builds the message must be one line starting "mallet: " and
#           naming an address (0x...), followed by nothing but the frames
#           of stacks ("    #N ...") and their titles ("  freed by thread
#           N:"), or the outcome is bad-report.
#   abort   killed by SIGABRT without a word
#   fault   killed by SIGSEGV or SIGBUS
#   erased  exit 3: a read after free found the block's old data gone
#   missed  exit 0: the violation ran to its end unnoticed (for the reads
#           after free: the old data was still there)
#   anything else is shown as "exit N", "signal N" or "timeout".
#
# Env: BUILD (default build), VIOLATION_RUNS.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PROG=$BUILD/tests/violation

# EXPECTED: violation, outcome under the default build, under the secure
# build, and under the default build when the block is guarded
# (MALLET_GUARD_SAMPLE_KB=0: every block is); a build that gains a check
# changes its column here in the same commit. "a|b" accepts either: an overflow past a large block lands
# on the next page, which is mapped or not as the address space happens to
# be laid out (no guard page after a large block yet).
EXPECTED="
double-free-small           report        report        report
double-free-large           report        report        report
double-free-small-delayed   report        report        report
double-free-large-delayed   report        report        report
free-interior-small         report        report        report
free-interior-large         report        report        report
free-stack                  report        report        report
free-global                 report        report        report
free-foreign-mmap           report        report        report
free-wild                   report        report        report
overflow-small-1            missed        report        report
overflow-small-8            missed        report        report
overflow-large-1            missed|fault  fault         report
overflow-large-8            missed|fault  fault         report
uaf-write-small-0           missed        report        report
uaf-write-small-40          missed        report        report
uaf-write-small-last        missed        report        report
uaf-write-small-0-reuse     report        report        report
uaf-write-small-40-reuse    missed        report        report
uaf-write-small-last-reuse  missed        report        report
uaf-write-128-at-65         missed        report        report
uaf-write-128-at-65-reuse   missed        report        report
uaf-write-large             missed        fault         report
uaf-write-large-reuse       missed        fault         report
uaf-write-large-reused      missed        fault         report
uaf-read-small              missed        erased        report
uaf-read-512                missed        erased        report
uaf-read-large              missed        fault         report
zero-size-read              missed        fault         report
zero-size-write             missed        fault         report
usable-size-freed           report        report        report
realloc-freed               report        report        report
"

# outcome LABEL LIB NAME -- run violation NAME with LIB preloaded ("-":
# none) and print its outcome. LABEL mallet* asks for mallet's report form;
# LABEL *-guarded has every block guarded.
outcome() {
    local label=$1 lib=$2 name=$3 dir status=0 sig text env=()
    dir=$(mktemp -d)
    [[ $label == *-guarded ]] && env=(MALLET_GUARD_SAMPLE_KB=0)
    if [ "$lib" = - ]; then
        { timeout 20 "$PROG" $name >"$dir/out" 2>"$dir/err" || status=$?; } 2>/dev/null
    else
        { env "${env[@]}" LD_PRELOAD="$lib" timeout 20 "$PROG" $name >"$dir/out" 2>"$dir/err" ||
              status=$?; } 2>/dev/null
    fi
    text=$(cat "$dir/err")
    rm -rf "$dir"
    case $status in
        0) echo missed; return ;;
        3) echo erased; return ;;
        124) echo timeout; return ;;
    esac
    [ "$status" -gt 128 ] || { echo "exit $status"; return; }
    sig=$((status - 128))
    case $sig in
        6)
            if [ -z "$text" ]; then
                echo abort
            elif [[ $label == mallet* ]] &&
                ! { [[ $text == "mallet: "* ]] && [[ $(head -n 1 <<<"$text") =~ 0x[0-9a-f]+ ]] &&
                    ! tail -n +2 <<<"$text" | grep -qvE '^    #[0-9]|^  [a-z][a-z0-9 ]*:$'; }; then
                echo bad-report
            else
                echo report
            fi ;;
        7 | 11) echo fault ;;
        *) echo "signal $sig" ;;
    esac
}

# Outcomes, one a line, in the order the header lists them.
sort_outcomes() {
    awk '{ split("report bad-report abort fault erased missed", k, " ")
           r = 99; for (i in k) if (k[i] == $0) r = i
           print r "\t" $0 }' | sort -n | cut -f 2
}

# The allocators --table can run: "LABEL LIB" lines.
known_allocators() {
    local scudo
    echo "glibc -"
    [ -f "$BUILD/libmallet.so" ] && echo "mallet $PWD/$BUILD/libmallet.so" &&
        echo "mallet-guarded $PWD/$BUILD/libmallet.so"
    [ -f "$BUILD/libmallet-secure.so" ] && echo "mallet-secure $PWD/$BUILD/libmallet-secure.so"
    scudo=$(bench/scudo.sh) && echo "scudo $scudo"
    BUILD=$BUILD bench/peers.sh | grep -vE '^(glibc|mallet) '
}

table() {
    local runs=${VIOLATION_RUNS:-3} known allocs=() a name cells seen o r
    known=$(known_allocators)
    if [ $# -eq 0 ]; then
        mapfile -t allocs <<<"$known"
    fi
    for a in "$@"; do
        if [[ $a == *=* ]]; then
            allocs+=("${a%%=*} ${a#*=}")
        elif grep -q "^$a " <<<"$known"; then
            allocs+=("$(grep "^$a " <<<"$known")")
        else
            echo "violations.sh: no allocator $a here" >&2
            return 2
        fi
    done
    printf '| violation |'; printf ' %s |' "${allocs[@]%% *}"; echo
    printf '|---|'; printf -- '---|%.0s' "${allocs[@]}"; echo
    for name in $("$PROG" --list); do
        cells=()
        for a in "${allocs[@]}"; do
            seen=()
            for r in $(seq "$runs"); do
                o=$(outcome "${a%% *}" "${a#* }" "$name")
                [[ " ${seen[*]} " == *" $o "* ]] || seen+=("$o")
            done
            cells+=("$(printf '%s\n' "${seen[@]}" | sort_outcomes | paste -sd /)")
        done
        printf '| %s |' "$name"; printf ' %s |' "${cells[@]}"; echo
    done
    echo
    echo "Each cell: the outcomes seen in $runs runs (report, abort, fault, erased, missed)."
}

# The test: each violation once per build, its outcome one of the expected.
test_builds() {
    local passed=0 failed=0 name want_default want_secure want_guarded build lib want got listed label
    for f in "$PROG" "$BUILD/libmallet.so" "$BUILD/libmallet-secure.so"; do
        [ -e "$f" ] || { echo "violations.sh: $f not built (make, make secure)"; exit 1; }
    done
    listed=$("$PROG" --list)
    for name in $listed; do
        grep -q "^$name " <<<"$EXPECTED" ||
            { echo "FAIL  $name: not in EXPECTED"; failed=$((failed + 1)); }
    done
    while read -r name want_default want_secure want_guarded; do
        [ -n "$name" ] || continue
        if ! grep -qx "$name" <<<"$listed"; then
            echo "FAIL  $name: violation --list does not have it"
            failed=$((failed + 1))
            continue
        fi
        for build in default secure guarded; do
            label=mallet lib=$BUILD/libmallet.so
            case $build in
                default) want=$want_default ;;
                secure)  want=$want_secure lib=$BUILD/libmallet-secure.so ;;
                guarded) want=$want_guarded label=mallet-guarded ;;
            esac
            got=$(outcome $label "$PWD/$lib" "$name")
            if [[ "|$want|" == *"|$got|"* ]]; then
                printf 'ok    %-7s %-28s %s\n' $build "$name" "$got"
                passed=$((passed + 1))
            else
                printf 'FAIL  %-7s %-28s %s, expected %s\n' $build "$name" "$got" "$want"
                failed=$((failed + 1))
            fi
        done
    done <<<"$EXPECTED"
    sweep
    echo "$passed passed, $failed failed, 0 skipped"
    [ "$failed" -eq 0 ]
}

# The secure build's sweep: a write after free at sampled offsets of a
# block of every small class the fill covers whole (up to 1 KiB, harden.h),
# the block then left free (the check at exit finds it) or handed out
# again; each must be reported. A class's request is its block size less
# the secure build's 8-byte tag, so the block is the class's own. Counts
# into passed and failed.
sweep() {
    local bs req at how got offsets lib=$PWD/$BUILD/libmallet-secure.so
    local -a sizes=(16 32 48 64 80 96 112 128)
    for bs in 160 192 224 256 320 384 448 512 640 768 896 1024; do sizes+=("$bs"); done
    for bs in "${sizes[@]}"; do
        req=$((bs - 8))
        offsets=$(printf '%s\n' 0 7 8 15 16 40 65 $((req / 2)) $((req - 9)) $((req - 1)) \
                      $((RANDOM % req)) | awk -v r="$req" '$1 >= 0 && $1 < r' | sort -nu)
        for at in $offsets; do
            for how in once reuse; do
                got=$(outcome mallet "$lib" "uaf-write-at $req $at $how")
                if [ "$got" = report ]; then
                    passed=$((passed + 1))
                else
                    printf 'FAIL  secure  uaf-write-at %s %s %s: %s, expected report\n' \
                        "$req" "$at" "$how" "$got"
                    failed=$((failed + 1))
                fi
            done
        done
    done
    echo "ok    secure  the sweep: writes after free at sampled offsets of ${#sizes[@]} classes"
}

ulimit -c 0
if [ "${1:-}" = --table ]; then
    shift
    table "$@"
else
    test_builds
fi
