// SPDX-License-Identifier: MIT
//
// exec.c -- the exec family, wrapped for the trace recorder (trace.c):
// before a process image is replaced, its trace is flushed and its header
// written, since the image's destructors will never run. If the exec fails
// the process goes on recording and the header is rewritten at exit.
//
// glibc's execv, execvp and the execl forms reach execve and execvpe
// without going through the dynamic linker, so each is wrapped here and
// passes on to the real execve, execvpe or fexecve, found with
// dlsym(RTLD_NEXT) on first use. The execl forms gather their arguments on
// the stack: the recorder never calls malloc.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <unistd.h>

#include "recorder.h"

typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    static execve_fn real_execve;
    if (!real_execve)
        real_execve = (execve_fn)dlsym(RTLD_NEXT, "execve");
    mallet__trace_finish();
    return real_execve(path, argv, envp);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    static execve_fn real_execvpe;
    if (!real_execvpe)
        real_execvpe = (execve_fn)dlsym(RTLD_NEXT, "execvpe");
    mallet__trace_finish();
    return real_execvpe(file, argv, envp);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    static fexecve_fn real_fexecve;
    if (!real_fexecve)
        real_fexecve = (fexecve_fn)dlsym(RTLD_NEXT, "fexecve");
    mallet__trace_finish();
    return real_fexecve(fd, argv, envp);
}

EXPORT int execv(const char *path, char *const argv[])
{
    return execve(path, argv, environ);
}

EXPORT int execvp(const char *file, char *const argv[])
{
    return execvpe(file, argv, environ);
}

#define EXECL_MAX 4096                    // arguments an execl form may pass

static int gather(const char *arg0, va_list ap, char **argv, char ***envp_out, bool with_env)
{
    int n = 0;
    argv[n++] = (char *)arg0;
    while (arg0 && n < EXECL_MAX) {
        char *a = va_arg(ap, char *);
        argv[n++] = a;
        if (!a)
            break;
    }
    if (n == EXECL_MAX) {
        errno = E2BIG;
        return -1;
    }
    if (with_env)
        *envp_out = va_arg(ap, char **);
    return 0;
}

EXPORT int execl(const char *path, const char *arg, ...)
{
    char *argv[EXECL_MAX];
    va_list ap;
    va_start(ap, arg);
    int r = gather(arg, ap, argv, NULL, false);
    va_end(ap);
    return r < 0 ? -1 : execve(path, argv, environ);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
    char *argv[EXECL_MAX];
    va_list ap;
    va_start(ap, arg);
    int r = gather(arg, ap, argv, NULL, false);
    va_end(ap);
    return r < 0 ? -1 : execvpe(file, argv, environ);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
    char *argv[EXECL_MAX], **envp = NULL;
    va_list ap;
    va_start(ap, arg);
    int r = gather(arg, ap, argv, &envp, true);
    va_end(ap);
    return r < 0 ? -1 : execve(path, argv, envp);
}
