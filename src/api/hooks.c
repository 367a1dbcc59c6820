// SPDX-License-Identifier: MIT
//
// hooks.c -- who is behind each hook of base/hooks.h: the one place that
// says which higher layer a lower one reaches, and for what.
#include "base/base.h"
#include "init.h"

const mallet_hooks_t mallet__hooks = {
    .start = mallet__init_slow,
    .register_fork = mallet__thread_register_fork,
};
