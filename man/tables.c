// SPDX-License-Identifier: MIT
//
// tables.c -- prints the tables libmallet's manual page is made from, as
// the library itself holds them, for man/page.sh to set in roff:
//
//   tables options   one line per option, TAB separated: kind (int or
//                    text), name, MALLET_ variable, default, meaning;
//                    from src/base/options.h's X-macro lists
//   tables stats     the summary MALLET_STATS=1 prints at exit, from
//                    mallet_stats_print() of the library this is linked with
//
// Linked with libmallet.a, so its own malloc is libmallet's.
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "mallet.h"
#include "base/base.h"

static void option(const char *kind, const char *name, const char *def, const char *meaning)
{
    printf("%s\t%s\tMALLET_", kind, name);
    for (const char *c = name; *c; c++)
        putchar(toupper((unsigned char)*c));
    printf("\t%s\t%s\n", def, meaning);
}

// An integer option's default as the library holds it (the table may
// write an expression).
static void int_option(const char *name, long long def, const char *meaning)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", def);
    option("int", name, text, meaning);
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "options")) {
#define INT_OPTION(name, def, meaning) int_option(#name, (long long)(def), meaning);
        MALLET_OPTION_LIST(INT_OPTION)
#undef INT_OPTION
#define TEXT_OPTION(name, def, meaning) option("text", #name, def, meaning);
        MALLET_OPTION_TEXT_LIST(TEXT_OPTION)
#undef TEXT_OPTION
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "stats")) {
        fflush(stdout);
        mallet_stats_print(1);
        return 0;
    }
    fprintf(stderr, "usage: tables options|stats\n");
    return 2;
}
