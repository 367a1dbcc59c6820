#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# prof.sh -- the heap profiler end to end (the format: src/prof/prof_dump.c): the sites of
# tests/prof_sites.c, whose true sizes the program prints, against what the
# profiles estimate.
#
#   * `mallet profile` on each mode (plain, threads, fork): at the peak
#     keep_forty's in-use bytes within 10% of the truth, churn_four_hundred's
#     in-use near 0 and its allocated bytes within 10%; at exit leak_eight's
#     within 10%, keep_forty's near 0; in fork mode the child's exit profile
#     too (keep_forty inherited, child_twelve its own). The estimates are
#     prof_estimate.awk's, read from the .heap files; the .txt files are only
#     checked to name the top function.
#   * google-pprof reads the profiles: --text (and --inuse_space) lists
#     keep_forty first at the peak, --alloc_space churn_four_hundred,
#     leak_eight first at exit; --callgrind runs; --svg draws keep_forty.
#   * `mallet profile --rate 64`: the header says 65536, the figures hold
#     within 4%; `mallet profile --show` renders a profile.
#   * without the verb, under LD_PRELOAD: no MALLET_PROF, no file;
#     MALLET_PROF=1 and MALLET_PROF_DIR, DIR/mallet.PID.exit.heap;
#     mallet_prof_dump(PATH) and mallet_prof_dump(NULL) (DIR/mallet.PID.1.heap).
#   * the fork and threads modes again, LOOPS times each (races show in
#     loops), under LD_PRELOAD with a peak file (MALLET_PROF_PEAK).
# Each site's standard error, as the program computes it from its block
# sizes, is printed beside its check and must be under a quarter of the
# bound (2.5% for 10%; prof_sites.c explains the sizes).
#
# Env: BUILD (default build), LOOPS (default 6).
. "$(dirname "$0")/tools_lib.bash"
PROG=$ROOT/$BUILD/tests/prof_sites
LIB=$ROOT/$BUILD/libmallet.so
LOOPS=${LOOPS:-6}
for f in "$PROG" "$LIB"; do
    [ -e "$f" ] || { echo "skip: $f is not built (make)"; exit 77; }
done
command -v google-pprof >/dev/null ||
    { echo "skip: no google-pprof (.ci/deps installs google-perftools)"; exit 77; }
unset LD_PRELOAD MALLET_PROF MALLET_PROF_SAMPLE_KB MALLET_PROF_DIR MALLET_PROF_AT_EXIT MALLET_PROF_PEAK

EXE=$(realpath "$PROG")
FORTY=$((40 << 20))

# The program's segments and functions, for prof_estimate.awk.
{
    readelf -lW "$EXE" | awk '$1 == "LOAD" { print "load", $2, $3, $5 }'
    nm -S --defined-only "$EXE" | awk 'NF == 4 && $3 ~ /^[tT]$/ { print "sym", $1, $2, $4 }'
} >"$TMP/elf"

check() {   # check NAME STATUS MESSAGE -- counts STATUS 0 as a pass, and returns it
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1)); echo "ok   $1: $3"
    else
        failed=$((failed + 1)); echo "FAIL $1: $3"
    fi
    return "$2"
}

estimate() {   # estimate HEAPFILE -- prof_estimate.awk's lines
    awk -v exe="$EXE" -f tests/prof_estimate.awk "$TMP/elf" "$1"
}

# against NAME HEAPFILE TRUTHFILE ROLE WHEN [RATE [BOUND]] -- every truth
# line of ROLE at WHEN against the estimates read from HEAPFILE: within BOUND
# (default 0.1) of the truth, with a standard error under BOUND / 4; a truth
# of 0 against 1% of 40 MiB.
against() {
    local name=$1 heap=$2 truth=$3 role=$4 when=$5 rate=${6:-524288} bound=${7:-0.1} est lines
    if [ ! -s "$heap" ]; then
        check "$name" 1 "no $heap"
        return
    fi
    est=$(estimate "$heap")
    same "$name: format" "$(grep '^format' <<<"$est")" "format ok"
    same "$name: rate" "$(grep '^rate' <<<"$est")" "rate $rate"
    lines=$(awk -v r="$role" -v w="$when" '$1 == "truth" && $2 == r && $4 == w' "$truth")
    [ -n "$lines" ] || { check "$name" 1 "no truth for $role $when in $truth"; return; }
    local _t _r _p _w site kind bytes se got verdict
    while read -r _t _r _p _w site kind bytes se; do
        got=$(awk -v s="$site" -v k="$kind" '$1 == "site" && $2 == s { print (k == "inuse" ? $3 : $4) }' <<<"$est")
        got=${got:-0}
        verdict=$(awk -v g="$got" -v t="$bytes" -v se="$se" -v b="$bound" -v forty=$FORTY 'BEGIN {
            if (t > 0) {
                off = (g - t) / t
                printf "%s estimated %.2f MiB, true %.2f MiB (%+.1f%%, SE %.2f%%)",
                    (off < -b || off > b || se >= b / 4) ? "bad" : "good",
                    g / 1048576, t / 1048576, 100 * off, 100 * se
            } else {
                printf "%s estimated %.2f MiB, true 0 (bound: 1%% of 40 MiB)",
                    (g > 0.01 * forty) ? "bad" : "good", g / 1048576
            } }')
        check "$name: $site $kind" "$([ "${verdict%% *}" = good ]; echo $?)" "${verdict#* }"
    done <<<"$lines"
}

# google-pprof ARGS... FILE; a FILE that is not there it would take for a URL
# and go fetching.
pprof() {
    [ -s "${!#}" ] || { echo "pprof: no file ${!#}"; return 1; }
    timeout 60 google-pprof "$@"
}

top_function() {   # top_function PPROF-ARGS... FILE -- the first function google-pprof lists
    pprof "$@" 2>/dev/null | awk 'seen { print $NF; exit } /^Total:/ { seen = 1 }'
}

pprof_checks() {   # pprof_checks NAME DIR
    local name=$1 d=$2
    same "$name: pprof --text peak" "$(top_function --text "$EXE" "$d/p.peak.heap")" keep_forty
    same "$name: pprof --inuse_space peak" \
        "$(top_function --text --inuse_space "$EXE" "$d/p.peak.heap")" keep_forty
    same "$name: pprof --alloc_space peak" \
        "$(top_function --text --alloc_space "$EXE" "$d/p.peak.heap")" churn_four_hundred
    same "$name: pprof --text exit" "$(top_function --text "$EXE" "$d/p.exit.heap")" leak_eight
    ok "$name: pprof --callgrind" pprof --callgrind "$EXE" "$d/p.peak.heap"
    grep -q 'fn=.*keep_forty' "$TMP/out"; check "$name: callgrind names keep_forty" $? ""
    # --svg draws with graphviz's dot (.ci/packages has it).
    ok "$name: pprof --svg" pprof --svg "$EXE" "$d/p.peak.heap"
    grep -q '<svg' "$TMP/out" && grep -q 'keep_forty' "$TMP/out"; check "$name: the svg names keep_forty" $? ""
}

# --- under the verb ----------------------------------------------------------
profile() {   # profile LABEL MODE [VERB-OPTIONS...] -- prof_sites MODE under the verb, in $TMP/verb-LABEL
    local label=$1 mode=$2 d=$TMP/verb-$1; shift 2
    mkdir -p "$d"
    (cd "$d" && timeout 60 "$MALLET" profile -o "$d/p" "$@" -- "$PROG" "$mode" >"$d/out" 2>"$d/err")
    check "verb $label" $? "mallet profile $* -- prof_sites $mode" ||
        sed 's/^/    stderr: /' "$d/err" | head -n 20
    local f
    for f in peak.heap peak.svg peak.txt exit.heap exit.svg exit.txt; do
        [ -s "$d/p.$f" ]; check "verb $label" $? "p.$f written"
    done
}

verb_checks() {   # verb_checks MODE -- the figures and files of profile MODE MODE
    local mode=$1 d=$TMP/verb-$1
    against "verb $mode peak" "$d/p.peak.heap" "$d/out" main peak
    against "verb $mode exit" "$d/p.exit.heap" "$d/out" main exit
    head -n 25 "$d/p.peak.txt" 2>/dev/null | grep -q keep_forty
    check "verb $mode" $? "p.peak.txt names keep_forty in its top lines"
    grep -q leak_eight "$d/p.exit.txt" 2>/dev/null
    check "verb $mode" $? "p.exit.txt names leak_eight"
    grep -q '<svg' "$d/p.peak.svg" 2>/dev/null
    check "verb $mode" $? "p.peak.svg is an SVG"
}

for mode in plain threads fork; do
    profile $mode $mode
    verb_checks $mode
done
pprof_checks "verb plain" "$TMP/verb-plain"
same "verb threads: pprof --text peak" \
    "$(top_function --text "$EXE" "$TMP/verb-threads/p.peak.heap")" keep_forty

d=$TMP/verb-fork
child=$(awk '$1 == "truth" && $2 == "child" { print $3; exit }' "$d/out")
if [ -n "$child" ]; then
    against "verb fork child" "$d/p.$child.exit.heap" "$d/out" child exit
    grep -q child_twelve "$d/p.$child.exit.txt" 2>/dev/null
    check "verb fork child" $? "p.$child.exit.txt names child_twelve"
    same "verb fork child: pprof --text" \
        "$(top_function --text "$EXE" "$d/p.$child.exit.heap")" keep_forty
else
    check "verb fork child" 1 "the child printed no truth"
fi

# --rate: the rate reaches the header, and the estimates, finer now, hold
# within 4% (keep_forty's SE is 0.43%, the churn's 0.60%: the small blocks'
# share is measured too, not only the large blocks' nearly certain samples).
profile rate plain --rate 64
against "verb --rate 64 peak" "$TMP/verb-rate/p.peak.heap" "$TMP/verb-rate/out" main peak 65536 0.04

# --show renders one file.
ok "verb --show" "$MALLET" profile --show "$TMP/verb-plain/p.peak.heap" -o "$TMP/show"
grep -q '<svg' "$TMP/show.svg" 2>/dev/null; check "verb --show" $? "show.svg is an SVG"
head -n 25 "$TMP/show.txt" 2>/dev/null | grep -q keep_forty
check "verb --show" $? "show.txt names keep_forty in its top lines"

# --- without the verb ----------------------------------------------------------
# preload DIR VAR=VALUE... -- ARGS: prof_sites ARGS under libmallet, in the
# empty folder DIR, its stdout in DIR.out; the profile folder DIR-dir is made.
preload() {
    local d=$1; shift
    local vars=()
    while [ "$1" != -- ]; do vars+=("$1"); shift; done
    shift
    mkdir -p "$d" "$d-dir"
    (cd "$d" && timeout 60 env "${vars[@]}" LD_PRELOAD="$LIB" "$PROG" "$@" >"$d.out" 2>"$d.err")
}

preload "$TMP/off" MALLET_PROF_DIR="$TMP/off-dir" -- plain
check "off" $? "prof_sites plain, MALLET_PROF unset"
same "off: no file written" "$(find "$TMP/off" "$TMP/off-dir" -type f)" ""

preload "$TMP/env" MALLET_PROF=1 MALLET_PROF_DIR="$TMP/env-dir" -- plain
check "env" $? "prof_sites plain, MALLET_PROF=1"
pid=$(awk '$1 == "truth" { print $3; exit }' "$TMP/env.out")
against "env exit" "$TMP/env-dir/mallet.$pid.exit.heap" "$TMP/env.out" main exit
same "env: no peak file without MALLET_PROF_PEAK" "$(ls "$TMP/env-dir" 2>/dev/null)" "mallet.$pid.exit.heap"
same "env: nothing in the current folder" "$(ls -A "$TMP/env")" ""

preload "$TMP/dump" MALLET_PROF=1 MALLET_PROF_DIR="$TMP/dump-dir" -- dump "$TMP/dump-at.heap"
check "dump" $? "prof_sites dump (mallet_prof_dump through dlsym)"
pid=$(awk '$1 == "truth" { print $3; exit }' "$TMP/dump.out")
against "dump PATH" "$TMP/dump-at.heap" "$TMP/dump.out" main dump
against "dump NULL" "$TMP/dump-dir/mallet.$pid.1.heap" "$TMP/dump.out" main dump
[ -s "$TMP/dump-dir/mallet.$pid.exit.heap" ]; check "dump" $? "mallet.$pid.exit.heap written too"

# --- races, in loops -----------------------------------------------------------
for i in $(seq "$LOOPS"); do
    for mode in fork threads; do
        d=$TMP/loop-$mode-$i
        preload "$d" MALLET_PROF=1 MALLET_PROF_PEAK=5 MALLET_PROF_DIR="$d-dir" -- $mode
        check "loop $i $mode" $? "prof_sites $mode" || sed 's/^/    stderr: /' "$d.err" | head -n 5
        pid=$(awk '$1 == "truth" && $2 == "main" { print $3; exit }' "$d.out")
        against "loop $i $mode peak" "$d-dir/mallet.$pid.peak.heap" "$d.out" main peak
        against "loop $i $mode exit" "$d-dir/mallet.$pid.exit.heap" "$d.out" main exit
        if [ $mode = fork ]; then
            child=$(awk '$1 == "truth" && $2 == "child" { print $3; exit }' "$d.out")
            against "loop $i fork child" "$d-dir/mallet.$child.exit.heap" "$d.out" child exit
        fi
    done
done

finish
