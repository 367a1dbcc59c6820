// SPDX-License-Identifier: MIT
//
// run.c -- `mallet run`: run a program with an allocator preloaded.
//
// The allocator's library goes first in LD_PRELOAD (ahead of any the user
// set). --stats asks the allocator for its summary at exit through its own
// switch: MALLET_STATS=1, jemalloc's MALLOC_CONF=stats_print:true,
// MIMALLOC_SHOW_STATS=1; the others have none, and we say so. The command
// exits with the program's status; a program killed by a signal is reported
// as a crash under that allocator.
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "tools.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mallet run [-a NAME] [--stats] -- CMD [ARG...]\n"
            "\n"
            "Run CMD with the allocator NAME in place of malloc (default: mallet).\n"
            "\n"
            "  -a NAME    allocator: ");
    tool_alloc_list(f);
    fprintf(f,
            "\n"
            "             (teach designs run through their preload builds, one lock each)\n"
            "  --stats    print the allocator's summary at exit (mallet, jemalloc, mimalloc)\n"
            "\n"
            "Exits with CMD's status; a CMD killed by a signal is reported as a crash\n"
            "under the allocator, with status 128 + the signal number. Peers are looked\n"
            "for in /usr/lib/x86_64-linux-gnu (MALLET_PEER_DIR overrides it).\n");
}

// Set the allocator's own "summary at exit" switch; false when it has none.
static bool enable_stats(const alloc_desc_t *a)
{
    if (a->kind == ALLOC_MALLET || a->kind == ALLOC_MALLET_SECURE) {
        setenv("MALLET_STATS", "1", 1);
        return true;
    }
    if (a->kind == ALLOC_PEER && !strcmp(a->name, "jemalloc")) {
        const char *old = getenv("MALLOC_CONF");
        char conf[1024];
        snprintf(conf, sizeof conf, "%s%sstats_print:true", old ? old : "", old && *old ? "," : "");
        setenv("MALLOC_CONF", conf, 1);
        return true;
    }
    if (a->kind == ALLOC_PEER && !strcmp(a->name, "mimalloc")) {
        setenv("MIMALLOC_SHOW_STATS", "1", 1);
        return true;
    }
    return false;
}

int tool_run(int argc, char **argv)
{
    const char *name = "mallet";
    bool stats = false;
    int i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-a") && i + 1 < argc) {
            name = argv[++i];
        } else if (!strcmp(argv[i], "--stats")) {
            stats = true;
        } else if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "mallet run: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            break;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "mallet run: no command given\n");
        usage(stderr);
        return 2;
    }
    alloc_desc_t a;
    char lib[4096];
    if (!tool_alloc_lookup("mallet run", name, &a) || !tool_alloc_preload("mallet run", &a, lib, sizeof lib))
        return 2;
    if (stats && !enable_stats(&a))
        fprintf(stderr, "mallet run: %s has no summary at exit%s\n", a.name,
                a.kind == ALLOC_GLIBC ? " (glibc prints one only when the program calls malloc_stats())" : "");
    if (lib[0] && !tool_preload_first("mallet run", lib))
        return 1;
    return tool_command("mallet run", argv + i, a.name, NULL);
}
