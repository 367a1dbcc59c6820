#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# peers.sh -- the allocators a benchmark can preload on this machine, one per
# line: NAME and the library for LD_PRELOAD ("-" for glibc, which needs
# none). glibc first, then libmallet when it is built, then the peers found
# on the system. Missing ones are left out; `peers.sh -v` says why on stderr.
#
# Env: BUILD (the build folder, default build); BENCH_ALLOCATORS, a space
# separated list of names, keeps only those (e.g. "glibc mallet jemalloc").
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
verbose=0
[ "${1:-}" = -v ] && verbose=1
libdir=/usr/lib/x86_64-linux-gnu
[ -d "$libdir" ] || libdir=/usr/lib

candidates=(
    "glibc -"
    "mallet $PWD/$BUILD/libmallet.so"
    "jemalloc $libdir/libjemalloc.so.2"
    "tcmalloc $libdir/libtcmalloc_minimal.so.4"
    "mimalloc $libdir/libmimalloc.so.2"
    "tbbmalloc $libdir/libtbbmalloc_proxy.so.2"
)
for c in "${candidates[@]}"; do
    set -- $c
    name=$1 lib=$2
    if [ -n "${BENCH_ALLOCATORS:-}" ] && [[ " $BENCH_ALLOCATORS " != *" $name "* ]]; then
        continue
    fi
    if [ "$lib" != - ] && [ ! -f "$lib" ]; then
        [ $verbose = 1 ] && echo "peers: $name not found ($lib)" >&2
        continue
    fi
    # A library that cannot run /bin/true is no use to a benchmark.
    if [ "$lib" != - ] && ! LD_PRELOAD=$lib /bin/true 2>/dev/null; then
        [ $verbose = 1 ] && echo "peers: $name does not load ($lib)" >&2
        continue
    fi
    printf '%s %s\n' "$name" "$lib"
done
