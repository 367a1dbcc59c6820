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

#include "lock.h"
#include "start.h"
#include "mallet.h"

extern char **environ;

int64_t mallet__options[MALLET_OPT_COUNT];
uint32_t mallet__options_epoch;

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

static const struct {
    const char *name;       // lower-case name
    const char *def;        // default value
} text_table[MALLET_OPT_TEXT_COUNT] = {
#define MALLET_OPTION_ROW(name, def, meaning) { #name, def },
    MALLET_OPTION_TEXT_LIST(MALLET_OPTION_ROW)
#undef MALLET_OPTION_ROW
};

// Text values live here, copied: the environment may change under us.
static char text_value[MALLET_OPT_TEXT_COUNT][MALLET_OPTION_TEXT_MAX];
static mallet_lock_t text_lock;            // mallet_option_set_text against readers

// Copy at most MALLET_OPTION_TEXT_MAX - 1 bytes; false when s is longer.
static bool text_copy(char *to, const char *s)
{
    size_t n = 0;
    while (s[n] && n < MALLET_OPTION_TEXT_MAX - 1)
        n++;
    if (s[n])
        return false;
    for (size_t i = 0; i <= n; i++)
        to[i] = s[i];
    return true;
}

void mallet__options_init(void)
{
    for (int i = 0; i < MALLET_OPT_COUNT; i++)
        mallet__options[i] = option_table[i].def;
    for (int i = 0; i < MALLET_OPT_TEXT_COUNT; i++)
        text_copy(text_value[i], text_table[i].def);
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
        for (int i = 0; i < MALLET_OPT_TEXT_COUNT; i++) {
            const char *val = env_match(*env, text_table[i].name);
            if (val && *val)
                text_copy(text_value[i], val);
        }
    }
}

static bool same_name(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == 0 && *b == 0;
}

static int option_find(const char *name)
{
    for (int i = 0; name && i < MALLET_OPT_COUNT; i++)
        if (same_name(option_table[i].name, name))
            return i;
    return -1;
}

static int text_find(const char *name)
{
    for (int i = 0; name && i < MALLET_OPT_TEXT_COUNT; i++)
        if (same_name(text_table[i].name, name))
            return i;
    return -1;
}

size_t mallet__option_text_copy(mallet_option_text_id_t id, char *to, size_t cap)
{
    mallet__lock(&text_lock);
    size_t n = 0;
    for (; text_value[id][n] && n + 1 < cap; n++)
        to[n] = text_value[id][n];
    if (cap)
        to[n] = 0;
    mallet__unlock(&text_lock);
    return n;
}

bool mallet_option_set_text(const char *name, const char *value)
{
    mallet__init();
    int i = text_find(name);
    if (i < 0 || value == NULL)
        return false;
    mallet__lock(&text_lock);
    bool ok = text_copy(text_value[i], value);
    mallet__unlock(&text_lock);
    return ok;
}

size_t mallet_option_get_text(const char *name, char *buf, size_t size)
{
    mallet__init();
    int i = text_find(name);
    if (i < 0)
        return (size_t)-1;
    return mallet__option_text_copy((mallet_option_text_id_t)i, buf, size);
}

bool mallet_option_set(const char *name, int64_t value)
{
    mallet__init();
    int i = option_find(name);
    if (i < 0)
        return false;
    __atomic_store_n(&mallet__options[i], value, __ATOMIC_RELAXED);
    __atomic_add_fetch(&mallet__options_epoch, 1, __ATOMIC_RELAXED);
    return true;
}

int64_t mallet_option_get(const char *name)
{
    mallet__init();
    int i = option_find(name);
    return i < 0 ? -1 : __atomic_load_n(&mallet__options[i], __ATOMIC_RELAXED);
}
