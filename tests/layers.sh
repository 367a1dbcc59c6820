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
# through os).
#
# And no call goes upward: when the objects are built ($BUILD, default
# build, and the secure build's, build/secure), no object of a layer uses a symbol that a higher layer's object
# defines -- except the hook table (base/hooks.h), whose constant
# mallet__hooks api/hooks.c defines. A finding prints FILE: LINE: what, or
# OBJECT: SYMBOL; the test fails.
set -u
cd "$(dirname "$0")/.."

rank() {    # rank FOLDER -- the layer's height, or nothing for no layer
    case $1 in
        os|debug) echo 0 ;; base) echo 1 ;; mem) echo 2 ;; prof) echo 3 ;;
        secure) echo 4 ;; api) echo 5 ;; override) echo 6 ;;
    esac
}

bad=0 files=0
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

# Symbols: "LAYER DEFINED|USED SYMBOL OBJECT" for every object, then each
# use matched with its definition.
objs=0
for obj_dir in "${BUILD:-build}/obj/src" build/secure/obj/src; do
    [ -d "$obj_dir" ] || continue
    while read -r what; do say "$what"; done < <(
        for o in "$obj_dir"/*/*.o; do
            layer=$(basename "$(dirname "$o")")
            r=$(rank "$layer")
            [ -n "$r" ] || continue
            [ -f "src/$layer/$(basename "$o" .o).c" ] || continue   # a source since moved
            nm "$o" | awk -v r="$r" -v o="${o#"$obj_dir"/}" '
                $1 == "U" { print r, "U", $2, o; next }
                NF == 3 && $2 ~ /^[TDBRVW]$/ { print r, "D", $3, o }'
        done | awk '
            $2 == "D" { def[$3] = $1; where[$3] = $4; next }
            { use[++n] = $0 }
            END {
                for (i = 1; i <= n; i++) {
                    split(use[i], u, " ")
                    if ((u[3] in def) && def[u[3]] > u[1] && u[3] != "mallet__hooks")
                        print "src/" u[4] ": uses " u[3] ", defined above it in src/" where[u[3]]
                }
            }')
    for o in "$obj_dir"/*/*.o; do
        [ -f "src/$(basename "$(dirname "$o")")/$(basename "$o" .o).c" ] && objs=$((objs + 1))
    done
done

echo "layers: $files files, $objs objects, $bad findings"
[ "$bad" -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
[ "$bad" -eq 0 ]
