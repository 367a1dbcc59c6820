#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# lib_programs_guarded.sh -- the real programs of lib_programs.sh again,
# with guarded sampling at one allocation per 8 KiB (MALLET_GUARD_SAMPLE_KB
# =8, 2048 times as often as the default) and a pool of 4096 slots:
# thousands of blocks alone between inaccessible pages in each program,
# whose output must still match glibc's.
# First checks that the rate guards thousands of blocks in python3.
#
# Env: as lib_programs.sh. Prints "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
LIB=${MALLET_PRELOAD:-$PWD/$BUILD/libmallet.so}
case $LIB in /*) ;; *) LIB=$PWD/$LIB ;; esac
[ -f "$LIB" ] || { echo "skip: $LIB is not built"; exit 77; }
export MALLET_GUARD_SAMPLE_KB=8 MALLET_GUARD_SLOTS=4096
passed=0 failed=0
# (PYTHONMALLOC=malloc: python's small objects through malloc too.)
guarded=$(PYTHONMALLOC=malloc MALLET_STATS=1 LD_PRELOAD=$LIB /usr/bin/python3 -c \
              'import json; print(sum(len(json.dumps({"k": str(i), "v": [i] * 20})) for i in range(30000)))' 2>&1 >/dev/null |
          awk '$2 == "guarded_total" { print $3 }')
if [ "${guarded:-0}" -ge 1000 ]; then
    echo "ok    python3 guarded $guarded blocks"
    passed=1
else
    echo "FAIL  python3 guarded ${guarded:-no} blocks, expected 1000 or more"
    failed=1
fi
out=$(tests/lib_programs.sh)
status=$?
printf '%s\n' "$out" | grep -v -E '^[0-9]+ passed, [0-9]+ failed'
line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
read -r p _ f _ s _ <<<"${line//,/}"
[ "$status" -ne 0 ] && [ "${f:-0}" -eq 0 ] && f=1
echo "$((passed + ${p:-0})) passed, $((failed + ${f:-1})) failed, ${s:-0} skipped"
[ "$((failed + ${f:-1}))" -eq 0 ]
