// SPDX-License-Identifier: MIT
//
// registry.c -- the list of teaching allocators, in reading order, and the
// lookup by name that tests, the replayer and the heap map use.
#include "teach.h"

#include <string.h>

extern const teach_allocator_t teach_bump;
extern const teach_allocator_t teach_firstfit;
extern const teach_allocator_t teach_split;
extern const teach_allocator_t teach_coalesce;
extern const teach_allocator_t teach_segregated;
extern const teach_allocator_t teach_buddy;
extern const teach_allocator_t teach_arena;

const teach_allocator_t *const teach_allocators[] = {
    &teach_bump,
    &teach_firstfit,
    &teach_split,
    &teach_coalesce,
    &teach_segregated,
    &teach_buddy,
    &teach_arena,
    NULL,
};

const teach_allocator_t *teach_find(const char *name)
{
    for (const teach_allocator_t *const *a = teach_allocators; *a; a++)
        if (strcmp((*a)->name, name) == 0)
            return *a;
    return NULL;
}
