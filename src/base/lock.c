// SPDX-License-Identifier: MIT
//
// lock.c -- the calling thread's lock token (lock.h): its address is the
// thread's name in a lock word.
#include "lock.h"

__thread uint8_t mallet__lock_token __attribute__((tls_model("initial-exec")));
