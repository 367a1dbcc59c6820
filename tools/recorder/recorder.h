// SPDX-License-Identifier: MIT
//
// recorder.h -- what the two files of the trace recorder share
// (build/libmallet-trace.so: trace.c records, exec.c wraps the exec family).
#ifndef MALLET_RECORDER_H
#define MALLET_RECORDER_H

// The recorder's own definitions of libc's names: visible to the program.
#define EXPORT __attribute__((visibility("default")))

// Write out what this process recorded and its header, now. Safe to call
// again: recording goes on and the header is rewritten at exit.
void mallet__trace_finish(void);

#endif
