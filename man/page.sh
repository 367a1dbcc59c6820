#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# page.sh TEMPLATE -- a manual page from its template (man/*.in): the prose
# is written there; the parts that would drift are made here from what the
# code holds, each where the template has a line @@NAME@@:
#
#   @@SYNOPSIS@@      the declarations of include/mallet.h
#   @@STATS_FIELDS@@  mallet_stats_t's fields and their comments (mallet.h)
#   @@OPTIONS@@       every option of src/base/options.h (TABLES options)
#   @@SUMMARY@@       the lines MALLET_STATS=1 prints (TABLES stats)
#   @@VERBS@@         each verb of the command and its --help (MALLET)
#   @@ALLOCATORS@@    the allocator names the command takes (MALLET --help)
#
# and @VERSION@, @MAJOR@, @DATE@, @BINDIR@, @LIBDIR@, @INCLUDEDIR@ anywhere
# in a line. Those values come from the environment (the Makefile sets
# them), with MALLET (the command), TABLES (man/tables.c built) and HEADER.
set -euo pipefail
template=$1
: "${VERSION:?}" "${MAJOR:?}" "${DATE:?}" "${BINDIR:?}" "${LIBDIR:?}" "${INCLUDEDIR:?}"
HEADER=${HEADER:-include/mallet.h}

# roff(s): text as roff sees it: a backslash printed, a dash that starts a
# word (an option) a minus sign, a line that would read as a request kept
# as text.
ROFF='
function roff(s,    out, i, c, prev) {
    out = ""; prev = " "
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c == "\\") c = "\\e"
        else if (c == "-" && prev ~ /[- \t(\[|,=]/) c = "\\-"
        out = out c
        prev = substr(s, i, 1)
    }
    if (out ~ /^[.\047]/) out = "\\&" out
    return out
}
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
'

synopsis() {   # the header's declarations, in its order, without MALLET_API
    awk "$ROFF"'
        /^#define MALLET_VERSION_/   { print roff($1 " " $2 " " $3); next }
        /^\/\/ --- /                 { print "" }
        /^typedef struct/            { in_struct = 1 }
        in_struct                    { line = $0; sub(/ *\/\/.*/, "", line); print roff(line) }
        in_struct && /^}/            { in_struct = 0; next }
        /^MALLET_API /               { line = $0; sub(/^MALLET_API +/, "", line); gsub(/  +/, " ", line)
                                       print roff(line) }
    ' "$HEADER"
}

stats_fields() {   # uint64_t NAME;   // MEANING
    awk "$ROFF"'
        /^typedef struct mallet_stats/ { on = 1; next }
        on && /^}/                     { on = 0 }
        on && /;.*\/\//                { name = $2; sub(/;$/, "", name)
                                         meaning = $0; sub(/.*\/\/ */, "", meaning)
                                         print ".TP"; print "\\fB" roff(name) "\\fP"; print roff(meaning) }
    ' "$HEADER"
}

options() {   # kind TAB name TAB variable TAB default TAB meaning
    "$TABLES" options | awk -F '\t' "$ROFF"'
        { print ".TP"
          print "\\fB" roff($3) "\\fP=\\fI" ($1 == "int" ? "n" : "text") "\\fP"
          print "(\\fB" roff($2) "\\fP, default \\fB" ($1 == "text" ? "\"" roff($4) "\"" : roff($4)) "\\fP)"
          print roff($5) }
    '
}

summary() {   # "mallet:   NAME   VALUE  MEANING" after the heading line
    "$TABLES" stats | awk "$ROFF"'
        NR > 1 { name = $2; meaning = $0; sub(/^mallet: +[^ ]+ +[0-9]+ +/, "", meaning)
                 print ".TP"; print "\\fB" roff(name) "\\fP"; print roff(meaning) }
    '
}

# help_roff SUMMARY: a verb's --help on stdin, in roff: the usage lines as
# a synopsis, then each paragraph as prose, as a list of options (lines
# that start "  -"), or kept as laid out (indented lines, columns).
help_roff() {
    awk -v summary="$1" "$ROFF"'
        { line[NR] = $0 }
        END {
            i = 1
            print ".PP"
            for (; i <= NR && line[i] != ""; i++) {
                l = line[i]; sub(/^usage: /, "", l); l = trim(l)
                if (l ~ /^mallet [^ ]+/) {
                    if (i > 1) print ".br"
                    match(l, /^mallet [^ ]+/)
                    l = "\\fB" roff(substr(l, 1, RLENGTH)) "\\fP" roff(substr(l, RLENGTH + 1))
                } else l = roff(l)
                print l
            }
            print ".PP"; print roff(toupper(substr(summary, 1, 1)) substr(summary, 2)) "."
            while (i <= NR) {
                for (; i <= NR && line[i] == ""; i++) ;
                for (n = 0; i <= NR && line[i] != ""; i++) par[++n] = line[i]
                if (!n) break
                if (par[1] ~ /^  -/) {
                    for (k = 1; k <= n; k++) {
                        if (par[k] ~ /^  -/) {
                            l = substr(par[k], 3); tag = l; text = ""
                            if (match(l, /  +/)) { tag = substr(l, 1, RSTART - 1); text = substr(l, RSTART + RLENGTH) }
                            print ".TP"; print "\\fB" roff(tag) "\\fP"
                            if (text != "") print roff(text)
                        } else print roff(trim(par[k]))
                    }
                    continue
                }
                laid_out = 0
                for (k = 1; k <= n; k++) if (par[k] ~ /^ / || par[k] ~ /[^ ]  +[^ ]/) laid_out = 1
                print ".PP"
                if (laid_out) print ".nf"
                for (k = 1; k <= n; k++) print roff(laid_out ? par[k] : trim(par[k]))
                if (laid_out) print ".fi"
            }
        }
    '
}

verbs() {   # the verb list of `mallet --help`: "  VERB SUMMARY  SYNOPSIS"
    local verb summary synopsis help
    "$MALLET" --help | awk 'NR > 1 && /^  [a-z]/ {
        verb = $1; rest = substr($0, index($0, verb) + length(verb)); sub(/^ +/, "", rest)
        if (!match(rest, /  +/)) { print verb "\t" rest "\t"; next }
        print verb "\t" substr(rest, 1, RSTART - 1) "\t" substr(rest, RSTART + RLENGTH) }' |
    while IFS=$'\t' read -r verb summary synopsis; do
        echo ".SS $verb"
        # A verb without --help of its own is shown with its line of the list.
        if help=$("$MALLET" "$verb" --help </dev/null 2>/dev/null) && [ -n "$help" ]; then
            help_roff "$summary" <<<"$help"
        else
            help_roff "$summary" <<<"usage: $synopsis"
        fi
    done
}

allocators() {
    "$MALLET" --help | sed -n 's/^Allocators: //p' | tr ' ' '\n' | awk "$ROFF"'
        NF { names = names (names == "" ? "" : ",\n") "\\fB" roff($1) "\\fP" } END { print names "." }'
}

while IFS= read -r l; do
    case $l in
    @@SYNOPSIS@@) synopsis ;;
    @@STATS_FIELDS@@) stats_fields ;;
    @@OPTIONS@@) options ;;
    @@SUMMARY@@) summary ;;
    @@VERBS@@) verbs ;;
    @@ALLOCATORS@@) allocators ;;
    @@*@@) echo "page.sh: $template: unknown part $l" >&2; exit 1 ;;
    *)
        l=${l//@VERSION@/$VERSION} l=${l//@MAJOR@/$MAJOR} l=${l//@DATE@/$DATE}
        l=${l//@BINDIR@/$BINDIR} l=${l//@LIBDIR@/$LIBDIR} l=${l//@INCLUDEDIR@/$INCLUDEDIR}
        printf '%s\n' "$l" ;;
    esac
done <"$template"
