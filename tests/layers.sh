#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# layers.sh -- src/ keeps its layer rule (src/README.md): a folder per
# layer, bottom first,
#
#   os, debug -> base -> mem -> prof -> secure -> api -> override
#
# and a file includes from src/ only
#   - headers of its own folder, by their bare name ("page.h");
#   - the one header of a lower folder, named like it ("base/base.h");
# never a header of its own or a higher layer through a folder path, never
# another folder's private header. Every folder has its header. os and
# debug are one level: each may include the other's header (debug reports
# through os). A finding prints FILE: LINE: what; the test fails.
set -u
cd "$(dirname "$0")/.."

rank() {    # rank FOLDER -- the layer's height, or nothing for no layer
    case $1 in
        os|debug) echo 0 ;; base) echo 1 ;; mem) echo 2 ;; prof) echo 3 ;;
        secure) echo 4 ;; api) echo 5 ;; override) echo 6 ;;
    esac
}

# The upward includes that remain, FILE INCLUDE, each one an open item of
# the layer rule (src/README.md, "what still calls upward"): the sampler's
# cut in the malloc slow path and the guard's and profiler's large blocks.
# A line here that no longer matches a file is a finding too: remove it.
ALLOWED='
src/mem/heap.c prof/prof.h
src/mem/heap_list.c prof/prof.h
src/mem/large.c secure/secure.h
src/mem/large.c prof/prof.h
src/prof/prof.c secure/secure.h
src/prof/prof.h secure/secure.h
'
bad=0 files=0 used=
say() { echo "$1"; bad=$((bad + 1)); }

for dir in src/*/; do
    folder=$(basename "$dir")
    [ -n "$(rank "$folder")" ] || say "src/$folder: a folder that is no layer (add it to tests/layers.sh)"
    [ "$folder" = override ] || [ -f "$dir$folder.h" ] || say "src/$folder: no header $folder/$folder.h"
done

for f in src/*/*.c src/*/*.h; do
    files=$((files + 1))
    folder=$(basename "$(dirname "$f")")
    mine=$(rank "$folder")
    while IFS=: read -r line inc; do
        case $inc in
            */*)
                to=${inc%%/*} name=${inc#*/}
                theirs=$(rank "$to")
                [ -n "$theirs" ] || continue
                if [ "$to" = "$folder" ]; then
                    say "$f:$line: \"$inc\": a header of its own folder is included by its bare name"
                elif [ "$theirs" -gt "$mine" ] && grep -qx "$f $inc" <<<"$ALLOWED"; then
                    used="$used$f $inc"$'\n'
                elif [ "$theirs" -gt "$mine" ]; then
                    say "$f:$line: \"$inc\": $to/ is a higher layer than $folder/"
                elif [ "$theirs" -eq "$mine" ] && [ "$mine" -ne 0 ]; then
                    say "$f:$line: \"$inc\": $to/ and $folder/ are one level"
                elif [ "$name" != "$to.h" ]; then
                    say "$f:$line: \"$inc\": private to $to/; include \"$to/$to.h\""
                fi ;;
            mallet.h) ;;
            *)
                [ -f "$(dirname "$f")/$inc" ] || say "$f:$line: \"$inc\": not in $folder/" ;;
        esac
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
             sed 's/^\([0-9]*\):.*"\([^"]*\)".*/\1:\2/')
done

while read -r allowed; do
    [ -z "$allowed" ] || grep -qx "$allowed" <<<"$used" || say "tests/layers.sh: \"$allowed\" is allowed but not found"
done <<<"$ALLOWED"

echo "layers: $files files, $bad findings"
[ "$bad" -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
[ "$bad" -eq 0 ]
