# SPDX-License-Identifier: MIT
#
# tools_lib.bash -- sourced by tests/tools_*.sh: the mallet command under
# test, a scratch folder, the test program, and three checks that count:
#   ok NAME CMD...             CMD succeeds
#   fails NAME NEEDLE CMD...   CMD exits non-zero and prints NEEDLE (stdout+stderr)
#   same NAME A B              A equals B
# `finish` prints "N passed, N failed" and exits with the verdict.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build}
MALLET=$ROOT/$BUILD/mallet
[ -x "$MALLET" ] || { echo "skip: $MALLET is not built"; exit 77; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mallet-tools.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0 failed=0

cc -O0 -pthread -o "$TMP/prog" tests/tools_prog.c || { echo "cannot build tests/tools_prog.c"; exit 1; }
PROG=$TMP/prog

ok() {
    local name=$1; shift
    if "$@" >"$TMP/out" 2>&1; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1)); echo "FAIL $name: '$*' exited $?"; sed 's/^/    /' "$TMP/out" | head -n 20
    fi
}

fails() {
    local name=$1 needle=$2; shift 2
    "$@" >"$TMP/out" 2>&1
    local status=$?
    if [ $status -ne 0 ] && grep -qF -- "$needle" "$TMP/out"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1)); echo "FAIL $name: '$*' exited $status, wanted non-zero and '$needle'"
        sed 's/^/    /' "$TMP/out" | head -n 20
    fi
}

same() {
    if [ "$2" = "$3" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1)); echo "FAIL $1:"; echo "  got:  $(printf '%s' "$2" | head -c 600)"
        echo "  want: $(printf '%s' "$3" | head -c 600)"
    fi
}

finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
