#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# tools_profile.sh -- `mallet profile`: the reading side on profiles written
# here by hand to the contract (src/prof/prof_dump.c) around a real process map of
# tests/tools_prof_prog.c -- names from the ELF files of a PIE program, a
# non-PIE one, a shared library and a stripped one; the estimates, checked
# against the formula; the order and shares of the top table; the stacks
# still live; the flame graph -- then the run: the environment the library
# is given, the files it leaves renamed and rendered, the exit status, and
# the error paths; last, libmallet's own profiler end to end, on that
# program and on a forking one. google-pprof, when installed, must read the
# same files.
. "$(dirname "$0")/tools_lib.bash"

RATE=524288
D=$TMP/prof
mkdir -p "$D/stripped"
cflags=(-O1 -fno-inline -fno-optimize-sibling-calls)
cc "${cflags[@]}" -shared -fPIC -o "$D/libtoolsprof.so" tests/tools_prof_lib.c &&
    cp "$D/libtoolsprof.so" "$D/stripped/" && strip "$D/stripped/libtoolsprof.so" &&
    cc "${cflags[@]}" -o "$D/prog" tests/tools_prof_prog.c -L"$D" -ltoolsprof -Wl,-rpath,"$D" &&
    cc "${cflags[@]}" -no-pie -o "$D/prog-nopie" tests/tools_prof_prog.c -L"$D/stripped" -ltoolsprof \
        -Wl,-rpath,"$D/stripped" || { echo "cannot build tests/tools_prof_prog.c"; exit 1; }
same "the stripped library has no .symtab" "$(nm "$D/stripped/libtoolsprof.so" 2>&1 | grep -c 'no symbols')" 1

# --- writing profiles by hand ---------------------------------------------------------
# A record is "N1 B1 N2 B2 FRAME..."; a frame is NAME+DELTA, a return address
# DELTA bytes past the first byte of the function (or data object) NAME in
# the program or its library (read from the library before it was
# stripped: the same addresses), placed where the process map of a real run
# put them; NAME+end is the address just past NAME's last byte (a call that
# ends a function returns there: it is named by the byte before it, NAME's;
# the next function starts there); or a literal 0xADDR.

# bias MAPS FILE: where FILE was loaded: its mapping at offset 0 less its first PT_LOAD's address
bias() {
    local start vaddr
    start=$(awk -v f="$2" '$6 == f && $3 ~ /^0+$/ { split($1, r, "-"); print r[1]; exit }' "$1")
    vaddr=$(readelf -lW "$2" | awk '$1 == "LOAD" { print $3; exit }')
    echo $((16#$start - vaddr))
}

# elf_sym FILE NAME: NAME's address and size in FILE, decimal
elf_sym() {
    local a s
    read -r a s < <(nm -S "$1" | awk -v n="$2" '$4 == n { print $1, $2; exit }')
    echo $((16#$a)) $((16#$s))
}

# write_profile OUT PROG LIB RECORD...: the profile, header sums included
write_profile() {
    local out=$1 prog=$2 lib=$3 rec frame file name delta stack n1=0 b1=0 n2=0 b2=0
    local pbias lbias addr size
    shift 3
    "$prog" maps >"$out.maps"
    pbias=$(bias "$out.maps" "$prog")
    lbias=$(bias "$out.maps" "$lib")
    : >"$out.records"
    for rec in "$@"; do
        set -- $rec
        n1=$((n1 + $1)) b1=$((b1 + $2)) n2=$((n2 + $3)) b2=$((b2 + $4))
        stack=""
        for frame in "${@:5}"; do
            if [[ $frame == 0x* ]]; then stack+=" $frame"; continue; fi
            name=${frame%+*} delta=${frame#*+} file=$prog b=$pbias
            [[ $name == lib_* ]] && file=$D/libtoolsprof.so b=$lbias
            read -r addr size <<<"$(elf_sym "$file" "$name")"
            [ "$delta" = end ] && delta=$size
            stack+=$(printf ' 0x%x' $((b + addr + delta)))
        done
        printf '%6d: %8d [%6d: %8d] @%s\n' "$1" "$2" "$3" "$4" "$stack" >>"$out.records"
    done
    {
        printf 'heap profile: %6d: %8d [%6d: %8d] @ heap_v2/%d\n' $n1 $b1 $n2 $b2 $RATE
        cat "$out.records"
        printf '\nMAPPED_LIBRARIES:\n'
        cat "$out.maps"
    } >"$out"
}

# The records, with the function each first frame must be named. Sizes
# span the range where the estimate matters: 32-byte blocks count ~16385
# times, 2 MiB blocks barely more than once. alloc_big appears from two
# return addresses with the same callers: one function in the table, one
# stack in the live list. The last record's blocks are all freed.
pie_records=(
    "3 3145728 3 3145728 alloc_big+5 make_tree+20 main+40"
    "1 2097152 1 2097152 alloc_big+13 make_tree+20 main+40"
    "40 40960 40 40960 alloc_small+4 main+60"
    "1 65536 1 65536 alloc_small+end main+70"
    "2 2048 2 2048 alloc_small+4 make_tree+20 make_tree+30 main+140"
    "2 131072 2 131072 lib_alloc+6 main+80"
    "1 4096 1 4096 lib_local_alloc+5 lib_alloc+12 main+80"
    "6 192 6 192 allocate_with_a_name_far_too_long_for_a_narrow_box_in_the_graph+4 main+90"
    "1 8192 1 8192 prof_table+256 main+100"
    "1 16384 1 16384 0x10 main+110"
    "0 0 5 5120 alloc_small+4 main+120"
)
write_profile "$D/pie.exit.heap" "$D/prog" "$D/libtoolsprof.so" "${pie_records[@]}"
read -r table_at _ <<<"$(elf_sym "$D/prog" prof_table)"
table_name=$(printf '[prog]+0x%x' $((table_at + 256)))

# expected [--cum] RECORD... -> "function estimated-bytes" per function, most
# first: its flat bytes (first frame), or with --cum its cumulative bytes
# (every stack it is in, once per stack)
expected() {
    local cum=0
    [ "$1" = --cum ] && { cum=1; shift; }
    printf '%s\n' "$@" | awk -v rate=$RATE -v table="$table_name" -v cum=$cum '
        function name(frame) { sub(/\+[0-9a-z]+$/, "", frame); return frame == "prof_table" ? table : frame }
        $1 > 0 {
            est = $2 / (1 - exp(-($2 / $1) / rate))
            split("", seen)
            for (i = 5; i <= (cum ? NF : 5); i++)
                if (!seen[name($i)]++) sum[name($i)] += est
        }
        END { for (f in sum) printf "%s %.0f\n", f, sum[f] }' | sort -k2,2nr -k1,1
}

# table TXT -> "function flat-bytes" per row of the top table
table() {
    awk '/^ *flat bytes/ { on = 1; next } on && NF == 0 { exit } on && NF >= 6 { print $6, $1 }' "$1"
}

# well_formed NAME FILE: FILE parses as XML (xmllint, else Python's parser;
# with neither, not checked)
well_formed() {
    if command -v xmllint >/dev/null; then
        xmllint --noout "$2"; same "$1" $? 0
    elif command -v /usr/bin/python3 >/dev/null; then
        /usr/bin/python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])' "$2"
        same "$1" $? 0
    fi
}

# --- --show: names, estimates, order, shares ---------------------------------------------
ok "show: a PIE program and its library" "$MALLET" profile --show "$D/pie.exit.heap" -o "$D/pie"
want=$(expected "${pie_records[@]}")
got=$(table "$D/pie.txt" | awk '$2 > 0')
same "show: the top table: names, order, estimated bytes" "$got" "$want"
same "show: every function once in the table" "$(table "$D/pie.txt" | awk '{ print $1 }' | sort | uniq -d)" ""
same "show: cumulative bytes, once per stack however deep the recursion" \
    "$(awk '/^ *flat bytes/ { on = 1; next } on && NF == 0 { exit } on { print $6, $4 }' "$D/pie.txt" |
       sort -k2,2nr -k1,1)" "$(expected --cum "${pie_records[@]}")"
same "show: callers with no bytes of their own: cum only" "$(table "$D/pie.txt" | awk '$2 == 0 { print $1 }' | sort | tr '\n' ' ')" \
    "main make_tree "
same "show: main's cum is the whole" "$(awk '$6 == "main" { print $4, $5 }' "$D/pie.txt")" \
    "$(awk '/^estimated in use:/ { print $4 }' "$D/pie.txt") 100.00%"
total=$(printf '%s\n' "${pie_records[@]}" | awk -v rate=$RATE '$1 > 0 { s += $2 / (1 - exp(-($2 / $1) / rate)) }
                                                     END { printf "%.0f", s }')
same "show: the total is the sum of the estimates" "$(awk '/^estimated in use:/ { print $4 }' "$D/pie.txt")" "$total"
same "show: flat shares sum to 100%" \
    "$(awk '/^ *flat bytes/ { on = 1; next } on && NF >= 6 { s += $2 } END { printf "%.1f", s }' "$D/pie.txt")" 100.0
same "show: the running share ends at 100%" \
    "$(awk '/^ *flat bytes/ { on = 1; next } on && NF == 0 { exit } on { last = $3 } END { print last }' "$D/pie.txt")" \
    "100.00%"
same "show: an address in a file but in no function: [file]+0xELFADDR" \
    "$(table "$D/pie.txt" | awk -v n="$table_name" '$1 == n' | wc -l)" 1
same "show: an address in no mapping: itself" "$(table "$D/pie.txt" | awk '$1 == "0x10"' | wc -l)" 1
grep -q "estimated in use at exit: " "$TMP/out" && grep -q "alloc_small" "$TMP/out"
same "show: the summary names the total and the top" $? 0

# The live stacks (an .exit.heap is shown with them, as possible leaks):
# grouped by functions, largest first, outermost last.
stacks=$(awk '/^possible leaks/ { on = 1; next } on' "$D/pie.txt" | awk 'NF' | tr -s ' ' | tr '\n' '|')
big=$(expected "${pie_records[@]}" | awk '$1 == "alloc_big" { print $2 }')
case "$stacks" in
    *" $big bytes in 4 blocks ("*"%)| alloc_big| make_tree| main| "*) r=0 ;;
    *) r=1 ;;
esac
same "leaks: alloc_big's two records are one stack, outermost last" $r 0
# (alloc_small's two call sites in main make one stack)
same "leaks: one entry per distinct stack" "$(grep -c ' bytes in .* blocks' "$D/pie.txt")" 8
grep ' bytes in .* blocks' "$D/pie.txt" | awk '{ print $1 }' | sort -nrc; same "leaks: largest first" $? 0
case "$stacks" in *"| lib_local_alloc| lib_alloc| main|"*) r=0 ;; *) r=1 ;; esac
same "leaks: a library's local function, named from .symtab" $r 0

# --- the flame graph ------------------------------------------------------------------------
svg=$D/pie.svg
same "svg starts with <svg" "$(head -c 4 "$svg")" "<svg"
same "svg ends with </svg>" "$(tail -n 1 "$svg")" "</svg>"
well_formed "svg is well-formed XML" "$svg"
same "svg: one box per distinct path (all, main, its 6 callees, 4 above)" "$(grep -c '<g><title>' "$svg")" 12
for f in all main make_tree alloc_big alloc_small lib_alloc lib_local_alloc; do
    grep -q "<title>$f: [0-9]* bytes ([0-9.]* [KMG]*i*B), [0-9.]*% of the in-use bytes</title>" "$svg"
    same "svg: $f has a box with its figures" $? 0
done
# box FUNC -> "x y width" of its box
box() { sed -n "s|<g><title>$1: .*<rect x=\"\([0-9.]*\)\" y=\"\([0-9.]*\)\" width=\"\([0-9.]*\)\".*|\1 \2 \3|p" "$svg" | head -n 1; }
same "svg: all and main span the width" "$(box all | awk '{ print $1, $3 }') $(box main | awk '{ print $1, $3 }')" \
    "10.00 1180.00 10.00 1180.00"
read -r _ y_all _ <<<"$(box all)"; read -r _ y_main _ <<<"$(box main)"
read -r _ y_tree _ <<<"$(box make_tree)"; read -r _ y_big w_big <<<"$(box alloc_big)"
awk -v a="$y_all" -v m="$y_main" -v t="$y_tree" -v b="$y_big" 'BEGIN { exit !(a > m && m > t && t > b) }'
same "svg: roots at the bottom, the allocating function on top" $? 0
share=$(awk -v b="$big" -v t="$total" 'BEGIN { printf "%.2f", 1180 * b / t }')
same "svg: width is the share of the in-use bytes" "$w_big" "$share"
# Every label fits its box at the font's 6.7 px a character, and a long name is cut.
awk 'match($0, /width="[0-9.]*"/) {
         w = substr($0, RSTART + 7, RLENGTH - 8)
         if (match($0, /<text[^>]*>[^<]*<\/text>/)) {
             t = substr($0, RSTART, RLENGTH); sub(/<text[^>]*>/, "", t); sub(/<\/text>/, "", t)
             if (length(t) * 6.7 + 6 > w + 0.01) { print "too wide: " t " in " w; bad = 1 }
         }
     } END { exit bad }' "$svg"
same "svg: labels fit their boxes" $? 0
grep -q '>alloca[a-z_]*\.\.</text>' "$svg"; same "svg: a long name's label is cut with .." $? 0
grep -q '<title>allocate_with_a_name_far_too_long_for_a_narrow_box_in_the_graph: ' "$svg"
same "svg: ... and its title is whole" $? 0
grep -q 'fill="#c8c8c8"' "$svg"; same "svg: frames with no name are grey" $? 0

# --- non-PIE program, stripped library ---------------------------------------------------
nopie_records=(
    "4 4194304 4 4194304 alloc_big+5 make_tree+20 main+40"
    "2 262144 2 262144 lib_alloc+6 main+80"
    "1 4096 1 4096 lib_local_alloc+5 lib_alloc+12 main+80"
)
write_profile "$D/nopie.peak.heap" "$D/prog-nopie" "$D/stripped/libtoolsprof.so" "${nopie_records[@]}"
same "non-PIE: loaded at its link address" "$(bias "$D/nopie.peak.heap.maps" "$D/prog-nopie")" 0
ok "show: a non-PIE program and a stripped library" "$MALLET" profile --show "$D/nopie.peak.heap" -o "$D/nopie"
read -r local_at _ <<<"$(elf_sym "$D/libtoolsprof.so" lib_local_alloc)"
want=$(expected "${nopie_records[@]}" | sed "s/^lib_local_alloc /[libtoolsprof.so]+$(printf '0x%x' $((local_at + 5))) /")
same "non-PIE: the top table (a stripped local function: [file]+0xADDR)" "$(table "$D/nopie.txt" | awk '$2 > 0')" "$want"
grep -q "^possible leaks\|^blocks live" "$D/nopie.txt"; same "a .peak.heap lists no stacks" $? 1

# --- google-pprof reads the same files (it checks the contract) -----------------------------
if command -v google-pprof >/dev/null; then
    google-pprof --text "$D/prog" "$D/pie.exit.heap" >"$D/pprof.txt" 2>"$D/pprof.err"
    same "google-pprof reads the profile" $? 0
    same "google-pprof: the same total" "$(awk '/^Total:/ { print $2 }' "$D/pprof.txt")" \
        "$(awk -v t="$total" 'BEGIN { printf "%.1f", t / 1048576 }')"
    same "google-pprof: the same top three" "$(awk '$1 ~ /^[0-9.]+$/ { print $6 }' "$D/pprof.txt" | head -n 3 | tr '\n' ' ')" \
        "$(table "$D/pie.txt" | awk '{ print $1 }' | head -n 3 | tr '\n' ' ')"
fi

# --- malformed profiles and arguments --------------------------------------------------------
bad() {   # bad NAME NEEDLE CONTENT
    printf "$3" >"$D/bad.heap"
    fails "malformed: $1" "bad.heap:$2" "$MALLET" profile --show "$D/bad.heap" -o "$D/bad"
    [ "$(cat "$TMP/out" | wc -l)" -eq 1 ]; same "malformed: $1: one line" $? 0
}
bad "not a profile" "1: expected the header" 'hello\n'
bad "v1 profile" "1: expected a heap_v2 profile" 'heap profile: 1: 8 [ 1: 8] @ heap/1024\n'
bad "bad record" "2: expected a record" 'heap profile: 1: 8 [ 1: 8] @ heap_v2/1024\n 1: 8 [ 1 8] @ 0x10\n'
bad "no stack" "2: expected a stack" 'heap profile: 1: 8 [ 1: 8] @ heap_v2/1024\n 1: 8 [ 1: 8] @\n'
bad "bad address" "2: expected a stack" 'heap profile: 1: 8 [ 1: 8] @ heap_v2/1024\n 1: 8 [ 1: 8] @ 0x10 main\n'
bad "records after the gap" "4: expected 'MAPPED_LIBRARIES:'" \
    'heap profile: 2: 16 [ 2: 16] @ heap_v2/1024\n 1: 8 [ 1: 8] @ 0x10\n\n 1: 8 [ 1: 8] @ 0x10\n'
bad "bad mapping" "5: expected a mapping" 'heap profile: 1: 8 [ 1: 8] @ heap_v2/1024\n 1: 8 [ 1: 8] @ 0x10\n\nMAPPED_LIBRARIES:\nnonsense\n'
: >"$D/empty.heap"
fails "show: empty file" "empty" "$MALLET" profile --show "$D/empty.heap" -o "$D/bad"
fails "show: missing file" "none.heap: No such file" "$MALLET" profile --show "$D/none.heap"
fails "show: unwritable prefix" "$D/nodir/x.svg" "$MALLET" profile --show "$D/pie.exit.heap" -o "$D/nodir/x"
printf 'heap profile: 0: 0 [ 0: 0] @ heap_v2/1024\n' >"$D/zero.heap"
ok "show: a profile with nothing in use" "$MALLET" profile --show "$D/zero.heap" -o "$D/zero"
grep -q "no sampled block in use" "$D/zero.svg"; same "zero: the graph says so" $? 0
ok "profile --help" "$MALLET" profile --help
grep -q "usage: mallet profile" "$TMP/out"; same "profile --help shows its usage" $? 0
"$MALLET" --help | grep -q "^  profile "; same "the overall usage lists profile" $? 0
fails "profile: no command" "no command given" "$MALLET" profile -o "$D/x"
for r in 0 -3 abc 12k ""; do
    fails "profile: --rate '$r'" "--rate wants a positive number of KiB, not '$r'" "$MALLET" profile --rate "$r" -- true
done
fails "profile: unknown option" "unknown or incomplete option '--frob'" "$MALLET" profile --frob -- true
fails "profile: --show with a command" "no command with it" "$MALLET" profile --show "$D/pie.exit.heap" -- true
fails "profile: unwritable prefix" "cannot write $D/nodir/x.*" "$MALLET" profile -o "$D/nodir/x" -- true
for case in "no command given:profile -o $D/x" "--rate wants:profile --rate 0 -- true" \
            "No such file:profile --show $D/none.heap"; do
    "$MALLET" ${case#*:} >/dev/null 2>&1
    same "profile: '${case%%:*}' exits 2" $? 2
done

# --- the run: what the library is given, what is left of what it writes ----------------------
lib=$(readlink -f "$ROOT/$BUILD/libmallet.so")
ok "run: the environment" "$MALLET" profile -o "$D/env" --rate 64 -- \
    sh -c 'echo "prof=$MALLET_PROF rate=$MALLET_PROF_SAMPLE_KB peak=$MALLET_PROF_PEAK preload=$LD_PRELOAD"; test -d "$MALLET_PROF_DIR" && echo "dir=$MALLET_PROF_DIR"'
same "run: MALLET_PROF, the rate, the peak step, libmallet first" "$(grep '^prof=' "$TMP/out")" \
    "prof=1 rate=64 peak=10 preload=$lib"
dir=$(sed -n 's/^dir=//p' "$TMP/out")
[ -n "$dir" ] && [ ! -e "$dir" ]; same "run: the profile directory is fresh and removed after" $? 0
ok "run: the user's peak step" env MALLET_PROF_PEAK=25 "$MALLET" profile -o "$D/env" -- sh -c 'echo "peak=$MALLET_PROF_PEAK"'
grep -qx "peak=25" "$TMP/out"; same "run: MALLET_PROF_PEAK from the environment wins" $? 0

# A stand-in for the library: the program drops profiles into the
# directory as the library would, under its own pid ($$: sh is the process
# started), a child's, and a dump's. The library itself, preloaded into
# the shell, is told to write none (a shell that leaves by exit() would
# write its own exit profile over the stand-in's).
standin=(env MALLET_PROF_AT_EXIT=0 MALLET_PROF_PEAK=0 "$MALLET" profile)
touch "$D/run.peak.svg"                 # from an earlier run: must not survive
ok "run: files renamed and rendered" "${standin[@]}" -o "$D/run" -- sh -c '
    cp "$0" "$MALLET_PROF_DIR/mallet.$$.exit.heap"
    cp "$0" "$MALLET_PROF_DIR/mallet.4242.exit.heap"
    cp "$0" "$MALLET_PROF_DIR/mallet.$$.1.heap"
    touch "$MALLET_PROF_DIR/mallet.$$.peak.heap.tmp"' "$D/pie.exit.heap"
for f in run.exit.heap run.exit.svg run.exit.txt run.4242.exit.heap run.4242.exit.svg run.4242.exit.txt \
         run.1.heap run.1.svg run.1.txt; do
    [ -s "$D/$f" ]; same "run: $f" $? 0
done
cmp -s "$D/run.exit.heap" "$D/pie.exit.heap"; same "run: the profile is copied as written" $? 0
[ ! -e "$D/run.peak.svg" ]; same "run: no peak: no peak files, none stale" $? 0
grep -q "no peak profile" "$TMP/out"; same "run: no peak: said" $? 0
grep -q "^possible leaks" "$D/run.exit.txt" && ! grep -q "^possible leaks" "$D/run.1.txt"
same "run: the exit report lists leaks, a dump's not" $? 0
grep -q "wrote $D/run.exit.heap $D/run.exit.svg $D/run.exit.txt" "$TMP/out"
same "run: the summary names the files" $? 0
grep -q "top functions at exit:" "$TMP/out" && grep -A1 "top functions" "$TMP/out" | grep -q alloc_small
same "run: the summary names the top functions" $? 0
ok "run: peak and exit" "${standin[@]}" -o "$D/both" -- sh -c '
    cp "$0" "$MALLET_PROF_DIR/mallet.$$.peak.heap"; cp "$1" "$MALLET_PROF_DIR/mallet.$$.exit.heap"' \
    "$D/pie.exit.heap" "$D/zero.heap"
grep -q "estimated in use: $(awk -v t="$total" 'BEGIN { printf "%.1f", t / 1048576 }') MiB at peak, 0 B at exit" "$TMP/out"
same "run: totals at peak and at exit" $? 0
grep -q "top functions at peak:" "$TMP/out"; same "run: the top at peak" $? 0
ok "run: nothing written" "${standin[@]}" -o "$D/none" -- true
grep -q "wrote no profile" "$TMP/out"; same "run: nothing written: said" $? 0
"$MALLET" profile -o "$D/st" -- sh -c 'exit 7' >/dev/null 2>&1
same "run: keeps the exit status" $? 7
fails "run: crash named" "crashed under mallet: signal 11 (SIGSEGV)" "$MALLET" profile -o "$D/c" -- "$PROG" crash
fails "run: missing program" "cannot run" "$MALLET" profile -o "$D/m" -- "$TMP/no-such-program"
same "run: missing program: one line" "$(wc -l <"$TMP/out")" 1
"${standin[@]}" -o "$D/bad" -- sh -c 'echo junk >"$MALLET_PROF_DIR/mallet.$$.exit.heap"' >/dev/null 2>&1
same "run: a profile that cannot be read fails the run" $? 1

# --- end to end: libmallet's profiler under the verb ---------------------------------------
# One sample per 16 KiB on average: every function of the program is sampled
# (the smallest, alloc_small's 256 KiB, is missed with odds of about 1e-7).
ok "e2e: profile a program" "$MALLET" profile -o "$D/e2e" --rate 16 -- "$D/prog" run
for f in e2e.peak.heap e2e.peak.svg e2e.peak.txt e2e.exit.heap e2e.exit.svg e2e.exit.txt; do
    [ -s "$D/$f" ]; same "e2e: $f" $? 0
done
same "e2e: the top at peak: alloc_big's 8 MiB" "$(table "$D/e2e.peak.txt" | head -n 1 | awk '{ print $1 }')" alloc_big
grep -A1 "top functions at peak:" "$TMP/out" | grep -q "alloc_big$"; same "e2e: the summary's top at peak" $? 0
stacks=$(awk '/^possible leaks/ { on = 1; next } on' "$D/e2e.exit.txt" | awk 'NF' | tr -s ' ' | tr '\n' '|')
case "$stacks" in *"| alloc_small| main|"*) r=0 ;; *) r=1 ;; esac
same "e2e: the leak (alloc_small's blocks, never freed) is listed" $r 0
case "$stacks" in *alloc_big* | *lib_alloc*) r=1 ;; *) r=0 ;; esac
same "e2e: blocks freed are not" $r 0
well_formed "e2e: the flame graph is well-formed XML" "$D/e2e.peak.svg"
if command -v google-pprof >/dev/null; then
    google-pprof --text "$D/prog" "$D/e2e.peak.heap" >"$D/pprof-e2e.txt" 2>/dev/null
    same "e2e: google-pprof reads the library's profile; the same top" \
        "$(awk '$1 ~ /^[0-9.]+$/ { print $6; exit }' "$D/pprof-e2e.txt")" alloc_big
fi
ok "e2e: a forking program" "$MALLET" profile -o "$D/fork" -- "$PROG" fork
[ -s "$D/fork.exit.heap" ]; same "e2e: the parent's exit profile" $? 0
same "e2e: the child's, under its pid" "$(cd "$D" && ls fork.[0-9]*.exit.heap fork.[0-9]*.exit.svg fork.[0-9]*.exit.txt 2>/dev/null | wc -l)" 3

finish
