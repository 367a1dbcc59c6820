// SPDX-License-Identifier: MIT
//
// sysfs.h -- reading the kernel's small text files (/sys, /proc) from
// inside the allocator: open, read, close into a caller's fixed buffer, so
// the allocator can ask about NUMA topology and huge pages at any moment,
// even before libc is ready, without malloc or stdio.
#ifndef MALLET_OS_SYSFS_H
#define MALLET_OS_SYSFS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

// Read the file at path into buf (at most size - 1 bytes) and end it with
// a NUL. Returns the bytes read, or -1 (errno from open/read) on failure.
ssize_t mallet__sysfs_read(const char *path, char *buf, size_t size);

// The value, in kB, of the line "key: N kB" in text; -1 when absent.
long mallet__sysfs_field_kb(const char *text, const char *key);

#endif
