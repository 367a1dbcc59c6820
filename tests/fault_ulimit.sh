#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# fault_ulimit.sh -- runs tests/test_fault_ulimit.c under a real address-space
# limit (ulimit -v 512 MiB), where the kernel itself refuses memory; the
# program's own count line is the result.
set -u
cd "$(dirname "$0")/.."
prog=${BUILD:-build}/tests/test_fault_ulimit
[ -x "$prog" ] || { echo "fault_ulimit.sh: $prog not built"; exit 1; }
ulimit -v $((512 * 1024))
MALLET_TEST_ULIMIT=1 "$prog"
