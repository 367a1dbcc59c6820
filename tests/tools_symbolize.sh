#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# tools_symbolize.sh -- `mallet symbolize`: a stack printed by
# tests/tools_symbolize_prog.c in the frame format of libmallet's reports
# gets the source line of each frame, the one its "line: NAME" comment
# marks and the one addr2line (the oracle) gives, for a PIE and a non-PIE
# program, a shared library, DWARF 4 and 5, and a separate debug file found
# by build-id and by .gnu_debuglink; everything else passes through byte
# for byte. Then `mallet run`: the program's stderr symbolized as it is
# written (or not, with --raw), and all else as before: the exit status, a
# crash, stdin and stdout, binary bytes, a closed stderr, a reader that goes
# away, a background process holding the pipe, a line that does not end.
. "$(dirname "$0")/tools_lib.bash"

SRC=$ROOT/tests/tools_symbolize_prog.c
LIB_SRC=$ROOT/tests/tools_symbolize_lib.c
line_of() {   # line_of FILE NAME: the line whose comment is "line: NAME"
    grep -n "// line: $2\$" "$1" | cut -d: -f1
}
L_LEAF=$(line_of "$SRC" leaf)
L_REPORT=$(line_of "$SRC" call-report)
L_FN=$(line_of "$LIB_SRC" call-fn)
L_LIB=$(line_of "$SRC" call-lib)

build() {   # build DIR CFLAGS PROGFLAGS: DIR/prog linked with DIR/libtsym.so
    mkdir -p "$1"
    # shellcheck disable=SC2086
    cc -g -O0 $2 -shared -fPIC -o "$1/libtsym.so" "$LIB_SRC" &&
        cc -g -O0 $2 $3 -o "$1/prog" "$SRC" -L"$1" -ltsym -Wl,-rpath,"$1"
}

# oracle FILE: for each frame line of FILE, what addr2line says of it
# (VADDR for #0, VADDR - 1 for the return addresses), or "-" for others.
oracle() {
    local n module vaddr frame='^ *#([0-9]+) 0x[0-9a-f]+ [^ ]+ \((/.*)\+0x([0-9a-f]+)\)$'
    while IFS= read -r line; do
        if [[ $line =~ $frame ]]; then
            n=${BASH_REMATCH[1]} module=${BASH_REMATCH[2]} vaddr=$((16#${BASH_REMATCH[3]}))
            [ "$n" -gt 0 ] && vaddr=$((vaddr - 1))
            addr2line -e "$module" "$(printf '%x' "$vaddr")" | sed 's/ (discriminator [0-9]*)$//'
        else
            echo -
        fi
    done <"$1"
}

# masked FILE: FILE with the run-time addresses (0xADDR) masked: they move from run to run.
masked() {
    sed 's/^\( *#[0-9]* \)0x[0-9a-f]* /\10xADDR /' "$1"
}

# at FILE: the " at FILE:LINE" of each line of FILE, or "-".
at() {
    sed -n 's/.* at \([^ ]*\)$/\1/p; t; s/.*/-/p' "$1"
}

# frame N FILE: "FUNCTION+0xOFF FILE:LINE" of frame #N in FILE.
frame() {
    sed -n "s/^ *#$1 0x[0-9a-f]* \([^ ]*\) (.*) at \(.*\)\$/\1 \2/p" "$2"
}

# --- the stack, in each build ------------------------------------------------------------
check_build() {   # check_build NAME CFLAGS PROGFLAGS
    local d=$TMP/$1
    build "$d" "$2" "$3" || { failed=$((failed + 1)); echo "FAIL $1: cannot build"; return; }
    "$d/prog" stdout >"$d/frames.txt"
    same "$1: the program prints its stack" "$(grep -c '^    #[0-3] 0x.* ?? (/' "$d/frames.txt")" 4
    ok "$1: symbolize" "$MALLET" symbolize "$d/frames.txt"
    cp "$TMP/out" "$d/symbolized.txt"
    same "$1: #0, leaf's first byte" "$(frame 0 "$d/symbolized.txt")" "leaf+0x0 $SRC:$L_LEAF"
    same "$1: #1, the call of report" "$(frame 1 "$d/symbolized.txt" | sed 's/+0x[0-9a-f]* / /')" "leaf $SRC:$L_REPORT"
    same "$1: #2, the library's call" "$(frame 2 "$d/symbolized.txt" | sed 's/+0x[0-9a-f]* / /')" \
        "lib_call $LIB_SRC:$L_FN"
    same "$1: #3, main's call" "$(frame 3 "$d/symbolized.txt" | sed 's/+0x[0-9a-f]* / /')" "main $SRC:$L_LIB"
    same "$1: addr2line agrees" "$(at "$d/symbolized.txt")" "$(oracle "$d/frames.txt")"
    same "$1: only the frames change" "$(grep -v '#[0-3] ' "$d/symbolized.txt")" \
        "$(grep -v '#[0-3] ' "$d/frames.txt")"
}
check_build pie "" ""
check_build nopie "" "-no-pie"
check_build dwarf4 "-gdwarf-4" ""
check_build dwarf4-nopie "-gdwarf-4" "-no-pie"
same "the PIE is one" "$(readelf -h "$TMP/pie/prog" | awk '$1 == "Type:" { print $2 }')" DYN
same "the non-PIE is one" "$(readelf -h "$TMP/nopie/prog" | awk '$1 == "Type:" { print $2 }')" EXEC
dwarf_version() { readelf --debug-dump=rawline "$1" | awk '/DWARF Version:/ { print $3; exit }'; }
same "DWARF 5 by default" "$(dwarf_version "$TMP/pie/prog")" 5
same "DWARF 4 when asked" "$(dwarf_version "$TMP/dwarf4/prog")" 4

# Compiled from a relative path: DWARF 5 names the compilation directory,
# DWARF 4 leaves it to .debug_info, and the path stays as the table has it.
for v in 4 5; do
    d=$TMP/relative$v
    mkdir -p "$d"
    cc -g -gdwarf-$v -O0 -o "$d/prog" tests/tools_symbolize_prog.c -L"$TMP/pie" -ltsym -Wl,-rpath,"$TMP/pie"
    "$d/prog" >"$d/frames.txt"
    "$MALLET" symbolize "$d/frames.txt" >"$d/symbolized.txt"
    want=$([ $v = 5 ] && echo "$SRC" || echo tests/tools_symbolize_prog.c)
    same "relative path, DWARF $v" "$(grep '#3 ' "$d/symbolized.txt" | sed 's/.* at //')" "$want:$L_LIB"
done

# --- what passes through unchanged --------------------------------------------------------
P=$TMP/pie/prog
{
    printf 'free text\n\n#not a frame\n'
    printf '#1 0x5 ?? (??)\n'                                    # the module unknown
    printf '  #1 0x5 ?? (%s)\n' "$P"                              # no +0xVADDR
    printf '#1 0x5 main (%s+0x1000)\n' "$P"                       # no +0xOFF
    printf '#1 5 ?? (%s+0x1000)\n' "$P"                           # no 0x
    printf '#x 0x5 ?? (%s+0x1000)\n' "$P"                         # no number
    printf '#1 0x5 ?? (%s+0x1000) tail\n' "$P"                    # text after the parenthesis
    printf '#1 0x5 ?? (%s+0x1000)\r\n' "$P"                       # CR LF
    printf '#1 0x5 ?? (%s+0x0)\n' "$P"                            # no code there
    printf '#1 0x5 ?? (%s+0x1000)\n' "$TMP/no-such-file"          # no file
    printf '#1 0x5 ?? (%s+0x1000)\n' "$SRC"                       # not ELF
    printf 'binary \x00\x01\x7f\xfe\xff #1 0x5 ?? (%s+0x1000)\n' "$P"
    printf '#1 0x5 ?? (%s\x00+0x1000)\n' "$P"                     # a NUL in the path
    printf 'the last line, no newline'
} >"$TMP/plain.txt"
ok "plain text" "$MALLET" symbolize "$TMP/plain.txt"
cmp -s "$TMP/out" "$TMP/plain.txt"; same "plain text: byte for byte" $? 0
printf '#3 0x5 ?? (%s+0x%s)' "$P" "$(sed -n 's/.*#3 .*+0x\([0-9a-f]*\))$/\1/p' "$TMP/pie/frames.txt")" |
    "$MALLET" symbolize >"$TMP/out"
same "a frame as the last line, no newline" "$(sed 's/.* at //' "$TMP/out")" "$SRC:$L_LIB"
same "... and it still ends without one" "$(tail -c 1 "$TMP/out" | wc -l)" 0

# A program without line tables: its named frames stay as they are, a ??
# gets the name from .symtab and no line.
strip -g -o "$TMP/nodebug" "$P"
sed "s|$P+|$TMP/nodebug+|" "$TMP/pie/frames.txt" | sed '/#1 /s/?? (/main+0x1 (/' >"$TMP/nodebug.txt"
ok "no line tables" "$MALLET" symbolize "$TMP/nodebug.txt"
same "no line tables: a named frame as it was" "$(grep '#1 ' "$TMP/out")" "$(grep '#1 ' "$TMP/nodebug.txt")"
same "no line tables: ?? named, no line" "$(grep '#3 ' "$TMP/out" | grep -c 'main+0x.* (.*)$')" 1
same "no line tables: the library's frame still has its line" "$(grep '#2 ' "$TMP/out" | sed 's/.* at //')" \
    "$LIB_SRC:$L_FN"

# Compressed debug sections are not read: no line, no harm.
objcopy --compress-debug-sections=zlib "$P" "$TMP/compressed"
sed "s|$P+|$TMP/compressed+|" "$TMP/pie/frames.txt" >"$TMP/compressed.txt"
ok "compressed .debug_line" "$MALLET" symbolize "$TMP/compressed.txt"
same "compressed: no line in the program" "$(grep -v '#2 ' "$TMP/out" | grep -c ' at ')" 0
same "compressed: ?? still named" "$(grep -c 'main+0x' "$TMP/out")" 1

# --- separate debug files ---------------------------------------------------------------------
# Fully stripped (no .symtab either), its debug file under MALLET_DEBUG_DIR.
D=$TMP/debug
objcopy --only-keep-debug "$P" "$TMP/prog.debug"
strip --strip-all -o "$TMP/stripped" "$P"
id=$(readelf -n "$P" | awk '/Build ID:/ { print $3 }')
mkdir -p "$D/.build-id/${id:0:2}"
cp "$TMP/prog.debug" "$D/.build-id/${id:0:2}/${id:2}.debug"
sed "s|$P+|$TMP/stripped+|" "$TMP/pie/frames.txt" >"$TMP/stripped.txt"
sed "s|$P+|$TMP/stripped+|" "$TMP/pie/symbolized.txt" >"$TMP/stripped.want"
"$MALLET" symbolize "$TMP/stripped.txt" >"$TMP/out"
same "stripped, no debug file: the program's frames as they were" "$(grep -v '#2 ' "$TMP/out")" \
    "$(grep -v '#2 ' "$TMP/stripped.txt")"
MALLET_DEBUG_DIR=$D "$MALLET" symbolize "$TMP/stripped.txt" >"$TMP/out"
same "by build-id: lines and names from the debug file" "$(cat "$TMP/out")" "$(cat "$TMP/stripped.want")"

# .gnu_debuglink, found under DEBUG_DIR/<the program's directory>/, when its CRC matches.
mkdir -p "$TMP/link"
cc -g -O0 -Wl,--build-id=none -o "$TMP/link/prog" "$SRC" -L"$TMP/pie" -ltsym -Wl,-rpath,"$TMP/pie"
objcopy --only-keep-debug "$TMP/link/prog" "$TMP/link/prog.debug"
strip --strip-all "$TMP/link/prog"
objcopy --add-gnu-debuglink="$TMP/link/prog.debug" "$TMP/link/prog"
mkdir -p "$D$TMP/link"
mv "$TMP/link/prog.debug" "$D$TMP/link/"
"$TMP/link/prog" >"$TMP/link.txt"
MALLET_DEBUG_DIR=$D "$MALLET" symbolize "$TMP/link.txt" >"$TMP/out"
same "by .gnu_debuglink" "$(frame 3 "$TMP/out" | sed 's/+0x[0-9a-f]* / /')" "main $SRC:$L_LIB"
printf 'x' >>"$D$TMP/link/prog.debug"
MALLET_DEBUG_DIR=$D "$MALLET" symbolize "$TMP/link.txt" >"$TMP/out"
same "by .gnu_debuglink: a CRC that does not match" "$(grep -c ' at ' "$TMP/out")" 1   # the library's frame

# --- each module read once ----------------------------------------------------------------------
if command -v strace >/dev/null; then
    cat "$TMP/pie/frames.txt" "$TMP/pie/frames.txt" "$TMP/pie/frames.txt" >"$TMP/thrice.txt"
    strace -f -e trace=open,openat -o "$TMP/strace" "$MALLET" symbolize "$TMP/thrice.txt" >/dev/null
    same "the program is opened once" "$(grep -c "\"$P\"" "$TMP/strace")" 1
fi

# --- the verb ---------------------------------------------------------------------------------------
ok "symbolize --help" "$MALLET" symbolize --help
grep -q "usage: mallet symbolize" "$TMP/out"; same "--help shows the usage" $? 0
"$MALLET" --help | grep -q "mallet symbolize"; same "the overall help names it" $? 0
fails "unknown option" "unknown option '--bogus'" "$MALLET" symbolize --bogus
"$MALLET" symbolize --bogus >/dev/null 2>&1; same "unknown option: status 2" $? 2
fails "unreadable file" "no-such-file: No such file" "$MALLET" symbolize "$TMP/no-such-file"
"$MALLET" symbolize "$TMP/plain.txt" "$TMP/no-such-file" "$TMP/plain.txt" >"$TMP/two" 2>/dev/null
same "unreadable file: status 2" $? 2
cat "$TMP/plain.txt" "$TMP/plain.txt" | cmp -s - "$TMP/two"; same "unreadable file: the others still copied" $? 0
"$MALLET" symbolize <"$TMP/pie/frames.txt" >"$TMP/out"
same "standard input" "$(cat "$TMP/out")" "$(cat "$TMP/pie/symbolized.txt")"
"$MALLET" symbolize - <"$TMP/pie/frames.txt" >"$TMP/out"
same "- is standard input" "$(cat "$TMP/out")" "$(cat "$TMP/pie/symbolized.txt")"

# --- mallet run ------------------------------------------------------------------------------------
"$MALLET" run -a glibc -- "$P" stderr 3 >"$TMP/run.out" 2>"$TMP/run.err"
same "run: the exit status" $? 3
same "run: stderr symbolized" "$(masked "$TMP/run.err")" "$(masked "$TMP/pie/symbolized.txt")"
same "run: stdout untouched" "$(cat "$TMP/run.out")" ""
"$MALLET" run -a glibc --raw -- "$P" stderr 0 2>"$TMP/run.err"
same "run --raw: stderr as written" "$(masked "$TMP/run.err")" "$(masked "$TMP/pie/frames.txt")"
"$MALLET" run -a glibc -- "$P" abort >/dev/null 2>"$TMP/run.err"
same "run: an abort's status" $? 134
same "run: the frames before the crash" "$(masked "$TMP/run.err" | head -n 6)" "$(masked "$TMP/pie/symbolized.txt")"
same "run: the crash named last" "$(tail -n 1 "$TMP/run.err" | sed 's/.*: \(.* crashed under glibc: .*\)/\1/')" \
    "$P crashed under glibc: signal 6 (SIGABRT)"
"$MALLET" run -a glibc -- "$TMP/nopie/prog" stderr >/dev/null 2>"$TMP/run.err"
same "run: non-PIE" "$(at "$TMP/run.err")" "$(at "$TMP/nopie/symbolized.txt")"
if [ -f "$ROOT/$BUILD/libmallet.so" ]; then
    "$MALLET" run -- "$P" stderr 2>"$TMP/run.err"
    same "run on libmallet" "$(masked "$TMP/run.err")" "$(masked "$TMP/pie/symbolized.txt")"
fi

same "run: stdin and stdout are the program's" "$(printf 'in\n' | "$MALLET" run -a glibc -- cat)" "in"
head -c 300000 /dev/urandom >"$TMP/random"
"$MALLET" run -a glibc -- sh -c 'cat "$0" >&2' "$TMP/random" 2>"$TMP/run.err"
cmp -s "$TMP/random" "$TMP/run.err"; same "run: binary stderr byte for byte" $? 0
same "run: a program that closes its stderr" \
    "$("$MALLET" run -a glibc -- sh -c 'exec 2>&-; echo out; exit 4'; echo "status $?")" "$(printf 'out\nstatus 4')"
same "run: our stderr closed" "$("$MALLET" run -a glibc -- sh -c 'echo out; echo err >&2' 2>&-)" "out"
fails "run: a missing program" "cannot run" "$MALLET" run -a glibc -- "$TMP/no-such-program"

same "run: a reader of our stderr that goes away: SIGPIPE, as without us" "$(timeout 20 bash -c \
    '"$0" run -a glibc -- sh -c "while :; do echo x >&2; done" 2>&1 | head -n 1 >/dev/null; echo "${PIPESTATUS[*]}"' \
    "$MALLET")" "141 0"

# A background process holding the pipe: the command returns when the
# program does, and what the process writes later still arrives; one that
# writes without a pause does not hold the command either.
ms() { echo $(($(date +%s%N) / 1000000)); }
start=$(ms)
"$MALLET" run -a glibc -- sh -c '(sleep 2; echo late >&2) & echo early >&2' 2>"$TMP/late"
same "run: returns when the program exits" "$(($(ms) - start < 1500))" 1
start=$(ms)
"$MALLET" run -a glibc -- sh -c 'timeout 2 yes >&2 & echo early >&2' 2>/dev/null
same "run: returns when the program exits, a writer behind it" "$(($(ms) - start < 1500))" 1
sleep 3
same "run: a background writer's stderr still arrives" "$(cat "$TMP/late")" "$(printf 'early\nlate')"

# A line that does not end (a prompt) goes out before the program goes on.
"$MALLET" run -a glibc -- sh -c 'printf "prompt: " >&2; sleep 2; echo done >&2' 2>"$TMP/prompt" &
sleep 1
same "run: a line without its end, shown" "$(cat "$TMP/prompt")" "prompt: "
wait
same "run: ... and the rest after it" "$(cat "$TMP/prompt")" "prompt: done"

finish
