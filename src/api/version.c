// SPDX-License-Identifier: MIT
//
// version.c -- mallet_version(): the version this library was built as,
// spelled from the numbers in mallet.h, the one place they are written.
#include "mallet.h"

#define VERSION_TEXT(major, minor, patch) #major "." #minor "." #patch
#define VERSION_STRING(major, minor, patch) VERSION_TEXT(major, minor, patch)

MALLET_API const char *mallet_version(void)
{
    return VERSION_STRING(MALLET_VERSION_MAJOR, MALLET_VERSION_MINOR, MALLET_VERSION_PATCH);
}
