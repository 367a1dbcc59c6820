# SPDX-License-Identifier: MIT
#
# tally.bash -- sourced by the scripts that run test programs themselves
# (secure_suite.sh, fork_secure.sh): add one program's result to the
# running totals `passed`, `failed`, `skipped`.
#
#   tally STATUS OUTPUT   the program's exit status and what it printed; its
#                         last "N passed, N failed, N skipped" line counts,
#                         a non-zero status counts as one failure at least,
#                         and no count line at all is one failure.
tally() {
    local status=$1 out=$2 line p f s
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ]; then
        echo "  no count line (status $status)"
        failed=$((failed + 1))
        return
    fi
    read -r p _ f _ s _ <<<"$line"
    [ "$status" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + ${s:-0}))
}
