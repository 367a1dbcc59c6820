// SPDX-License-Identifier: MIT
//
// hooks.c -- who is behind each hook of base/hooks.h: the one place that
// says which higher layer a lower one reaches, and for what.
#include "base/base.h"
#include "init.h"
#include "prof/prof.h"
#include "secure/secure.h"

const mallet_hooks_t mallet__hooks = {
    .start = mallet__init_slow,
    .register_fork = mallet__thread_register_fork,

    .sample_take = mallet__prof_take_slow,
    .sample_cut = mallet__prof_cut,
    .sample_heal = mallet__prof_heal,
    .sample_restart = mallet__prof_restart,
    .sample_alloc = mallet__sample_alloc,

    .prof_large_draw = mallet__prof_large_draw,
    .prof_large_record = mallet__prof_large_record,
    .prof_large_resize = mallet__prof_large_resize,
    .prof_drop = mallet__prof_drop,
    .prof_move = mallet__prof_move,

    .guard_large_draw = mallet__guard_large_draw,
    .guard_alloc = mallet__guard_alloc,
    .guard_prof = mallet__guard_prof,
    .guard_rate = mallet__guard_rate,
};
