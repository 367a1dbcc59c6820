// SPDX-License-Identifier: MIT
//
// options.c -- the option table's values, reading them from the
// environment, and mallet_option_get/set.
//
// Start-up may run before libc is ready, so this walks `environ` by hand
// and parses decimal integers itself: no getenv, no strtol, no locale.
#include "options.h"

#include <stdbool.h>
#include <stddef.h>

#include "init.h"
#include "mallet.h"

extern char **environ;

int64_t mallet__options[MALLET_OPT_COUNT];

static const struct {
    const char *name;       // lower-case name
    int64_t def;            // default value
} option_table[MALLET_OPT_COUNT] = {
#define MALLET_OPTION_ROW(name, def, meaning) { #name, def },
    MALLET_OPTION_LIST(MALLET_OPTION_ROW)
#undef MALLET_OPTION_ROW
};

// Does `var` read MALLET_<NAME>= for this name? Returns the value text.
static const char *env_match(const char *var, const char *name)
{
    static const char prefix[] = "MALLET_";
    for (size_t i = 0; i < sizeof prefix - 1; i++)
        if (var[i] != prefix[i])
            return NULL;
    var += sizeof prefix - 1;
    for (; *name; name++, var++) {
        char up = (*name >= 'a' && *name <= 'z') ? (char)(*name - 'a' + 'A') : *name;
        if (*var != up)
            return NULL;
    }
    return *var == '=' ? var + 1 : NULL;
}

static bool parse_int(const char *s, int64_t *out)
{
    bool neg = false;
    if (*s == '-' || *s == '+')
        neg = *s++ == '-';
    if (*s < '0' || *s > '9')
        return false;
    int64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++)
        v = v * 10 + (*s - '0');
    if (*s != 0)
        return false;
    *out = neg ? -v : v;
    return true;
}

void mallet__options_init(void)
{
    for (int i = 0; i < MALLET_OPT_COUNT; i++)
        mallet__options[i] = option_table[i].def;
    char **env = environ;
    if (env == NULL)
        return;
    for (; *env; env++) {
        if ((*env)[0] != 'M')
            continue;
        for (int i = 0; i < MALLET_OPT_COUNT; i++) {
            const char *val = env_match(*env, option_table[i].name);
            int64_t v;
            if (val && parse_int(val, &v))
                mallet__options[i] = v;
        }
    }
}

static int option_find(const char *name)
{
    for (int i = 0; name && i < MALLET_OPT_COUNT; i++) {
        const char *a = option_table[i].name, *b = name;
        while (*a && *a == *b)
            a++, b++;
        if (*a == 0 && *b == 0)
            return i;
    }
    return -1;
}

bool mallet_option_set(const char *name, int64_t value)
{
    mallet__init();
    int i = option_find(name);
    if (i < 0)
        return false;
    __atomic_store_n(&mallet__options[i], value, __ATOMIC_RELAXED);
    return true;
}

int64_t mallet_option_get(const char *name)
{
    mallet__init();
    int i = option_find(name);
    return i < 0 ? -1 : __atomic_load_n(&mallet__options[i], __ATOMIC_RELAXED);
}
