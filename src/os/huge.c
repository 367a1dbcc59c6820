// SPDX-License-Identifier: MIT
//
// huge.c -- the transparent huge page mode and how many huge pages the
// process holds, read from the kernel's text files without allocating.
#include "huge.h"

#include "sysfs.h"

#define THP_ENABLED "/sys/kernel/mm/transparent_hugepage/enabled"

mallet_thp_mode_t mallet__os_thp_mode(void)
{
    static const struct {
        const char *word;           // the mode's bracketed name
        mallet_thp_mode_t mode;     // what it means
    } modes[] = {
        { "[always]", MALLET_THP_ALWAYS },
        { "[madvise]", MALLET_THP_MADVISE },
        { "[never]", MALLET_THP_NEVER },
    };
    char text[128];
    if (mallet__sysfs_read(THP_ENABLED, text, sizeof text) < 0)
        return MALLET_THP_UNKNOWN;
    // The file lists every mode and brackets the one in force.
    for (const char *s = text; *s; s++) {
        if (*s != '[')
            continue;
        for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
            const char *w = modes[i].word, *t = s;
            while (*w && *t == *w)
                w++, t++;
            if (*w == 0)
                return modes[i].mode;
        }
    }
    return MALLET_THP_UNKNOWN;
}

long mallet__os_anon_huge_kb(void)
{
    char text[4096];
    if (mallet__sysfs_read("/proc/self/smaps_rollup", text, sizeof text) < 0)
        return -1;
    return mallet__sysfs_field_kb(text, "AnonHugePages");
}
