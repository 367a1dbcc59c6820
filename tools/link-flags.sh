#!/bin/sh
# SPDX-License-Identifier: MIT
#
# link-flags.sh ARCHIVE... -- the linker flags that bring libmallet and the
# teach designs into the mallet command.
#
# The command refers to them weakly (tools/tools.h), so it links whether or
# not they are built; a weak reference alone never takes a member out of an
# archive, though. For each symbol the command uses that an archive defines,
# print -Wl,-u,SYMBOL: the linker then takes that member and what it needs,
# and leaves the rest of the archive alone.
nm -g --defined-only "$@" 2>/dev/null |
    awk '$2 ~ /^[TDRB]$/ && $3 ~ /^(mallet_malloc|mallet_free|mallet_realloc|mallet_stats_get|teach_allocators|teach_find)$/ { print "-Wl,-u," $3 }' |
    sort -u
