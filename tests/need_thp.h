// SPDX-License-Identifier: MIT
//
// need_thp.h -- need_thp(): skip the calling test unless the kernel can
// give this process transparent huge pages on advice and report them.
// Include after test.h and os/huge.h.
#ifndef MALLET_NEED_THP_H
#define MALLET_NEED_THP_H

static inline void need_thp(void)
{
    mallet_thp_mode_t m = mallet__os_thp_mode();
    if (m == MALLET_THP_UNKNOWN)
        TEST_SKIP("no /sys/kernel/mm/transparent_hugepage/enabled");
    if (m == MALLET_THP_NEVER)
        TEST_SKIP("transparent huge pages are [never] on this machine");
    if (mallet__os_anon_huge_kb() < 0)
        TEST_SKIP("/proc/self/smaps_rollup has no AnonHugePages line");
}

#endif
