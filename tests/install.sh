#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# install.sh -- libmallet the way a user gets it, without installing
# anything on the machine:
#   - `make install` into a scratch DESTDIR: the files and links, the
#     SONAME, the exported names (the version script), a program built with
#     `pkg-config --cflags --libs mallet` against that tree and run on it,
#     LD_PRELOAD of the installed libraries, the installed command finding
#     them; `make uninstall` leaves nothing of it behind;
#   - the manual pages: groff -man -ww renders them without a warning, and
#     they name every option of src/base/options.h, every function of mallet.h,
#     every exported name, every error report and every verb and its options;
#   - `make deb`: what each package holds (dpkg-deb -c), a program built
#     against the packages' files unpacked (dpkg-deb -x), and lintian, which
#     must report no error.
#
# Env: BUILD (the build folder; only the default, build, is installed).
# Prints "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build}
[ "$BUILD" = build ] || { echo "skip: make install installs the default build only"; exit 77; }
[ -x build/mallet ] && [ -f build/libmallet.so ] || { echo "skip: build/ is not built"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/mallet-install.XXXXXX")
trap 'rm -rf "$T"' EXIT
passed=0 failed=0 skipped=0

check() {   # check NAME STATUS [WHY]
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1)); echo "FAIL $1${3:+: $3}"
    fi
}
skip() { skipped=$((skipped + 1)); echo "skip $1"; }

VERSION=$(awk '/^#define MALLET_VERSION_(MAJOR|MINOR|PATCH) / { v = v s $3; s = "." } END { print v }' include/mallet.h)
MAJOR=${VERSION%%.*}
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; check "the version in mallet.h is MAJOR.MINOR.PATCH ($VERSION)" $?

# --- the names a program may bind to -----------------------------------------------
# The libc names override.c defines, the functions mallet.h declares.
LIBC_NAMES=$(sed -n 's/^MALLET_API[^(]*[ *]\([a-z_0-9]*\)(.*/\1/p' src/override/*.c | sort -u)
API_NAMES=$(sed -n 's/^MALLET_API[^(]*[ *]\([a-z_0-9]*\)(.*/\1/p' include/mallet.h | sort -u)
exports_check() {   # exports_check LIBRARY
    local lib=$1 exported missing extra
    exported=$(nm -D --defined-only "$lib" | awk '{ print $3 }' | sort -u)
    missing=$(comm -23 <(printf '%s\n' $LIBC_NAMES $API_NAMES | sort -u) - <<<"$exported")
    extra=$(comm -13 <(printf '%s\n' $LIBC_NAMES $API_NAMES | sort -u) - <<<"$exported")
    [ -z "$missing" ]; check "$lib exports the malloc family and mallet.h's functions" $? "missing: $missing"
    [ -z "$extra" ]; check "$lib exports nothing else (no mallet__ internals)" $? "extra: $extra"
    [ "$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')" = "libmallet.so.$MAJOR" ]
    check "$lib has the SONAME libmallet.so.$MAJOR" $?
}
[ "$(wc -w <<<"$LIBC_NAMES")" -ge 20 ] && [ "$(wc -w <<<"$API_NAMES")" -ge 20 ]
check "the exported names are read from override.c and mallet.h" $?

# --- make install ---------------------------------------------------------------------
DEST=$T/root P=$T/root/usr/local L=$T/root/usr/local/lib
make -s install DESTDIR="$DEST" >"$T/install.log" 2>&1
check "make install DESTDIR=..." $? "$(tail -n 5 "$T/install.log")"
want=(bin/mallet include/mallet.h lib/libmallet.a "lib/libmallet.so.$VERSION" lib/mallet/libmallet-secure.so
      lib/mallet/libmallet-trace.so lib/pkgconfig/mallet.pc share/man/man1/mallet.1 share/man/man3/libmallet.3)
for t in build/teach/libteach-*.so; do want+=("lib/mallet/teach/$(basename "$t")"); done
for f in "${want[@]}"; do
    [ -f "$P/$f" ] && [ ! -L "$P/$f" ]; check "installed $f" $?
done
[ "$(readlink "$L/libmallet.so.$MAJOR")" = "libmallet.so.$VERSION" ]; check "libmallet.so.$MAJOR -> libmallet.so.$VERSION" $?
[ "$(readlink "$L/libmallet.so")" = "libmallet.so.$MAJOR" ]; check "libmallet.so -> libmallet.so.$MAJOR" $?
[ "$(find "$DEST" ! -type d | wc -l)" -eq $((${#want[@]} + 2)) ]
check "nothing else installed" $? "$(find "$DEST" ! -type d | sort)"

exports_check build/libmallet.so
exports_check build/libmallet-secure.so
exports_check "$L/libmallet.so.$VERSION"

# A program built the way the README says, against the installed tree.
cat >"$T/prog.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mallet.h>

// Through a volatile pointer, so no malloc/free pair is folded away.
static void *(*volatile do_malloc)(size_t) = malloc;

int main(void)
{
    mallet_stats_t a, b;
    mallet_stats_get(&a);
    for (int i = 0; i < 1000; i++)
        free(do_malloc(24));
    char *s = strdup("the C library's own malloc");
    mallet_stats_get(&b);
    printf("%s %d.%d.%d %llu %d\n", mallet_version(), MALLET_VERSION_MAJOR, MALLET_VERSION_MINOR,
           MALLET_VERSION_PATCH, (unsigned long long)(b.malloc_calls - a.malloc_calls),
           mallet_usable_size(s) >= strlen(s) + 1);
    free(s);
    return 0;
}
EOF
pc=(env PKG_CONFIG_SYSROOT_DIR="$DEST" PKG_CONFIG_LIBDIR="$L/pkgconfig" pkg-config)
[ "$("${pc[@]}" --modversion mallet 2>&1)" = "$VERSION" ]; check "pkg-config --modversion mallet" $?
flags=$("${pc[@]}" --cflags --libs mallet 2>&1)
check "pkg-config --cflags --libs mallet" $? "$flags"
# shellcheck disable=SC2086
cc -O2 -o "$T/prog" "$T/prog.c" $flags 2>"$T/cc.err"
check "cc prog.c \$(pkg-config --cflags --libs mallet)" $? "$(head -c 600 "$T/cc.err")"
readelf -d "$T/prog" 2>/dev/null | grep -q "NEEDED.*\[libmallet.so.$MAJOR\]"
check "the program needs libmallet.so.$MAJOR" $?
# prog_ok OUTPUT: both versions, the 1000 mallocs and strdup's counted by
# libmallet, and libmallet knows strdup's block.
prog_ok() { awk -v v="$VERSION" '{ exit !($1 == v && $2 == v && $3 >= 1001 && $4 == 1) }' <<<"$1"; }
out=$(LD_LIBRARY_PATH=$L "$T/prog" 2>&1)
prog_ok "$out"; check "the program runs on the installed library, its mallocs and libc's counted" $? "printed '$out'"

# LD_PRELOAD of the installed libraries into a program that links no allocator.
cat >"$T/preloaded.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

static void *(*volatile do_malloc)(size_t) = malloc;

int main(void)
{
    const char *(*version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "mallet_version");
    size_t (*usable)(const void *) = (size_t (*)(const void *))dlsym(RTLD_DEFAULT, "mallet_usable_size");
    void *p = do_malloc(100);
    // Only a block of libmallet's has a usable size in libmallet's eyes.
    printf("%s %d\n", version ? version() : "none", usable && usable(p) >= 100);
    free(p);
    return 0;
}
EOF
cc -O2 -o "$T/preloaded" "$T/preloaded.c" 2>"$T/cc.err"; check "the preload probe builds" $? "$(head -c 600 "$T/cc.err")"
for lib in "$L/libmallet.so.$MAJOR" "$L/mallet/libmallet-secure.so"; do
    out=$(LD_PRELOAD=$lib "$T/preloaded" 2>&1)
    [ "$out" = "$VERSION 1" ]; check "LD_PRELOAD=$lib" $? "printed '$out'"
done
out=$(LD_PRELOAD=$L/libmallet.so.$MAJOR MALLET_STATS=1 "$T/preloaded" 2>&1)
grep -q '^mallet: statistics$' <<<"$out"; check "MALLET_STATS=1 under the installed library" $?

# The installed command finds the installed libraries.
[ "$("$P/bin/mallet" --version)" = "mallet $VERSION" ]; check "mallet --version" $?
for case in "mallet:$L/libmallet.so.$VERSION" "mallet-secure:$L/mallet/libmallet-secure.so" \
            "bump:$L/mallet/teach/libteach-bump.so"; do
    out=$("$P/bin/mallet" run -a "${case%%:*}" -- sh -c 'echo "$LD_PRELOAD"' 2>&1)
    [ "$out" = "$(realpath "${case#*:}")" ]; check "installed mallet run -a ${case%%:*} preloads ${case#*:}" $? "got '$out'"
done
out=$("$P/bin/mallet" run -a mallet -- "$T/preloaded" 2>&1)
[ "$out" = "$VERSION 1" ]; check "installed mallet run -a mallet runs a program on libmallet" $? "printed '$out'"
"$P/bin/mallet" trace -o "$T/sort.trace" -- sort /dev/null >/dev/null 2>&1 && [ -s "$T/sort.trace" ]
check "installed mallet trace finds its recorder" $?

# --- the manual pages -----------------------------------------------------------------
# check_page NAME FILE: renders without a warning; the text it renders is
# left in $T/NAME.txt.
check_page() {
    local name=$1 file=$2 dev
    for dev in ps utf8; do
        groff -man -ww -T"$dev" -z "$file" >"$T/groff.err" 2>&1 && [ ! -s "$T/groff.err" ]
        check "groff -man -ww -T$dev $name renders without warnings" $? "$(head -n 5 "$T/groff.err")"
    done
    groff -man -Tutf8 -P-cbou "$file" 2>/dev/null >"$T/$name.txt"
}
check_page mallet.1 "$P/share/man/man1/mallet.1"
check_page libmallet.3 "$P/share/man/man3/libmallet.3"

# The option table, read here from src/base/options.h itself: X(name, default, ...).
options=$(sed -n 's/^ *X(\([a-z_0-9]*\), *\([^,]*\),.*/\1 \2/p' src/base/options.h)
[ "$(wc -l <<<"$options")" -ge 10 ]; check "the options are read from src/base/options.h" $?
while read -r name def; do
    var=MALLET_$(tr a-z A-Z <<<"$name")
    def=${def//\"/}
    grep -qE "^ +$var=" "$T/libmallet.3.txt"
    check "libmallet(3) lists $var" $?
    grep -qE "\($name, +default +\"?$def\"?\)" "$T/libmallet.3.txt"
    check "libmallet(3) gives $name its default $def" $?
done <<<"$options"
for f in $API_NAMES; do
    [ "$(grep -o "\b$f\b" "$T/libmallet.3.txt" | wc -l)" -ge 2 ]
    check "libmallet(3) declares and describes $f" $?
done
for f in $LIBC_NAMES; do
    grep -q "\b$f\b" "$T/libmallet.3.txt"; check "libmallet(3) names $f among the replaced functions" $?
done
# Every one-line report of libmallet's: mallet__fatal("mallet", func, "WHAT", ...).
reports=$(grep -ho 'mallet__fatal("mallet", [a-z_"]*, "[^"]*"' src/*.c src/*/*.c | sed 's/.*, "\(.*\)"$/\1/' | sort -u)
[ -n "$reports" ]; check "the reports are read from src/" $?
while read -r what; do
    grep -q "^ *$what\$" "$T/libmallet.3.txt"; check "libmallet(3) explains the report '$what'" $?
done <<<"$reports"
grep -q "mallet: heap corruption: free list of page" "$T/libmallet.3.txt"
check "libmallet(3) shows the heap corruption line" $?
for w in "SECURE BUILD" "HEAP PROFILER" "LD_PRELOAD" "pkg-config" "libmallet.so.$MAJOR"; do
    grep -q "$w" "$T/libmallet.3.txt"; check "libmallet(3) tells about $w" $?
done
# Every verb of `mallet --help`, with each option its own --help lists.
verbs=$(build/mallet --help | awk 'NR > 1 && /^  [a-z]/ { print $1 }')
[ "$(wc -w <<<"$verbs")" -ge 6 ]; check "the verbs are read from mallet --help" $?
for v in $verbs; do
    grep -q "^   $v\$" "$T/mallet.1.txt"; check "mallet(1) has the verb $v" $?
    for o in $(build/mallet "$v" --help </dev/null 2>/dev/null | sed -n 's/^  \(-[-a-z]*\).*/\1/p'); do
        grep -q -- "^       $o\b" "$T/mallet.1.txt"; check "mallet(1) lists $v $o" $?
    done
done
for w in "EXIT STATUS" "EXAMPLES" "--version" "libmallet.so.$MAJOR"; do
    grep -q -- "$w" "$T/mallet.1.txt"; check "mallet(1) tells about $w" $?
done

# --- make uninstall -------------------------------------------------------------------
echo keep >"$L/someone-elses.so"
make -s uninstall DESTDIR="$DEST" >"$T/uninstall.log" 2>&1; check "make uninstall" $? "$(tail -n 5 "$T/uninstall.log")"
[ "$(find "$DEST" ! -type d)" = "$L/someone-elses.so" ]
check "make uninstall removes what make install put there, and only that" $? "left: $(find "$DEST" ! -type d)"
[ ! -e "$L/mallet" ]; check "make uninstall removes LIBDIR/mallet/" $?

# --- the Debian packages --------------------------------------------------------------
if ! command -v dpkg-buildpackage >/dev/null || ! command -v dh >/dev/null || ! command -v lintian >/dev/null; then
    skip "make deb: dpkg-dev, debhelper or lintian is missing (.ci/packages lists them)"
    echo "$passed passed, $failed failed, $skipped skipped"
    [ "$failed" -eq 0 ]; exit
fi
make -s deb >"$T/deb.log" 2>&1; check "make deb" $? "$(tail -n 15 "$T/deb.log")"
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
ARCH=$(dpkg-architecture -qDEB_HOST_ARCH)
DEBS=(build/deb/libmallet${MAJOR}_${VERSION}_$ARCH.deb build/deb/libmallet-dev_${VERSION}_$ARCH.deb
      build/deb/mallet-tools_${VERSION}_$ARCH.deb)
[ "$(ls build/deb/*.deb 2>/dev/null | sort)" = "$(printf '%s\n' "${DEBS[@]}" | sort)" ]
check "make deb leaves the three packages in build/deb/" $? "$(ls build/deb)"

# holds PACKAGE FILE...: the package holds each file (a link as "LINK -> TARGET").
holds() {
    local deb=$1 list f; shift
    list=$(dpkg-deb -c "$deb" | awk '{ $1 = $2 = $3 = $4 = $5 = ""; sub(/^ +/, ""); print }')
    for f in "$@"; do
        grep -qxF -- "./$f" <<<"$list"; check "$(basename "$deb") holds $f" $?
    done
    ! grep -q 'usr/lib/debug' <<<"$list"; check "$(basename "$deb") holds no debug files" $?
}
doc() { echo "usr/share/doc/$1/copyright usr/share/doc/$1/changelog.gz"; }
# shellcheck disable=SC2046
holds "${DEBS[0]}" "usr/lib/$MA/libmallet.so.$VERSION" "usr/lib/$MA/libmallet.so.$MAJOR -> libmallet.so.$VERSION" \
    "usr/lib/$MA/mallet/libmallet-secure.so" $(doc libmallet$MAJOR)
# shellcheck disable=SC2046
holds "${DEBS[1]}" usr/include/mallet.h "usr/lib/$MA/libmallet.so -> libmallet.so.$MAJOR" "usr/lib/$MA/libmallet.a" \
    "usr/lib/$MA/pkgconfig/mallet.pc" usr/share/man/man3/libmallet.3.gz $(doc libmallet-dev)
teach=(); for t in build/teach/libteach-*.so; do teach+=("usr/lib/$MA/mallet/teach/$(basename "$t")"); done
# shellcheck disable=SC2046
holds "${DEBS[2]}" usr/bin/mallet "usr/lib/$MA/mallet/libmallet-trace.so" "${teach[@]}" \
    usr/share/man/man1/mallet.1.gz $(doc mallet-tools)
for d in "${DEBS[@]:1}"; do
    dpkg-deb -f "$d" Depends | grep -q "libmallet$MAJOR (= $VERSION)"
    check "$(basename "$d") depends on libmallet$MAJOR of its version" $?
done

# The packages' files, unpacked side by side (not installed): a program
# built with their pkg-config file, their command, their manual pages.
PKG=$T/pkg
for d in "${DEBS[@]}"; do dpkg-deb -x "$d" "$PKG"; done
pc=(env PKG_CONFIG_SYSROOT_DIR="$PKG" PKG_CONFIG_LIBDIR="$PKG/usr/lib/$MA/pkgconfig" pkg-config)
# shellcheck disable=SC2046
cc -O2 -o "$T/prog-deb" "$T/prog.c" $("${pc[@]}" --cflags --libs mallet) 2>"$T/cc.err"
check "cc prog.c \$(pkg-config ...) against the packages' files" $? "$(head -c 600 "$T/cc.err")"
out=$(LD_LIBRARY_PATH=$PKG/usr/lib/$MA "$T/prog-deb" 2>&1)
prog_ok "$out"; check "the program runs on the packaged library" $? "printed '$out'"
out=$("$PKG/usr/bin/mallet" run -a mallet -- sh -c 'echo "$LD_PRELOAD"' 2>&1)
[ "$out" = "$PKG/usr/lib/$MA/libmallet.so.$VERSION" ]
check "the packaged mallet finds the packaged library in /usr/lib/$MA" $? "got '$out'"
for page in usr/share/man/man1/mallet.1.gz usr/share/man/man3/libmallet.3.gz; do
    zcat "$PKG/$page" | groff -man -ww -Tutf8 -z >"$T/groff.err" 2>&1 && [ ! -s "$T/groff.err" ]
    check "the packaged $(basename "$page") renders without warnings" $? "$(head -n 5 "$T/groff.err")"
done

lintian --pedantic --display-info --fail-on error "${DEBS[@]}" >"$T/lintian.log" 2>&1
check "lintian reports no error" $? "$(grep '^E:' "$T/lintian.log")"
echo "lintian: $(grep -c '^E:' "$T/lintian.log") errors, $(grep -c '^W:' "$T/lintian.log") warnings," \
     "$(grep -c '^I:' "$T/lintian.log") notes, $(grep -c '^P:' "$T/lintian.log") pedantic"
grep -E '^[EWP]:' "$T/lintian.log" | sed 's/^/    /'

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
