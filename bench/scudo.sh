#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# scudo.sh -- print the path of LLVM's standalone Scudo allocator, the
# hardened allocator used as a yardstick for the secure build (Debian
# package libclang-rt-14-dev, or another LLVM version's), for LD_PRELOAD.
# Prints nothing and exits 1 when it is not installed or does not load.
# The newest LLVM version wins when several are installed.
set -u
lib=$(ls -d /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.scudo_standalone-"$(uname -m)".so \
    2>/dev/null | sort -V | tail -n 1)
[ -n "$lib" ] && LD_PRELOAD=$lib /bin/true 2>/dev/null || exit 1
echo "$lib"
