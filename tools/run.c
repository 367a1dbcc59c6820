// SPDX-License-Identifier: MIT
//
// run.c -- `mallet run`: run a program with an allocator preloaded.
//
// The allocator's library goes first in LD_PRELOAD (ahead of any the user
// set). --stats asks the allocator for its summary at exit through its own
// switch: MALLET_STATS=1, jemalloc's MALLOC_CONF=stats_print:true,
// MIMALLOC_SHOW_STATS=1; the others have none, and we say so. The command
// exits with the program's status; a program killed by a signal is reported
// as a crash under that allocator.
//
// The program's stderr is a pipe we read, and each line of it goes on to
// ours through symbolize.c, so the stack frames of libmallet's reports
// arrive with their source lines; every other byte passes as it is, in
// order, as soon as its line ends (a line that does not end, a prompt,
// goes out after PARTIAL_WAIT_MS). Its stdin and stdout are its own. When
// the program exits, what it wrote is copied and the command returns; if
// something it started still holds the pipe, a process of ours copies the
// rest for as long as that lasts, the way that something would have
// written to our stderr itself. --raw gives the program our stderr.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "tools.h"

#define PARTIAL_WAIT_MS 50            // how long a line not ended waits for its end

typedef struct err_pipe {
    int read_fd, write_fd;            // the pipe that is the program's stderr (-1 once closed)
    FILE *out;                        // our stderr (a duplicate, buffered: flushed after each read)
    symbolize_t *sym;                 // what each line goes through
    size_t have;                      // bytes of a line not ended yet, at buf[0..have)
    char buf[65536];                  // that line; one longer than this goes out as it is
} err_pipe_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mallet run [-a NAME] [--stats] [--raw] -- CMD [ARG...]\n"
            "\n"
            "Run CMD with the allocator NAME in place of malloc (default: mallet).\n"
            "\n"
            "  -a NAME    allocator: ");
    tool_alloc_list(f);
    fprintf(f,
            "\n"
            "             (teach designs run through their preload builds, one lock each)\n"
            "  --stats    print the allocator's summary at exit (mallet, jemalloc, mimalloc)\n"
            "  --raw      leave CMD's stderr alone: by default it passes through `mallet\n"
            "             symbolize`, which gives the stack frames of libmallet's reports\n"
            "             their source lines (the rest passes as it is, line by line)\n"
            "\n"
            "Exits with CMD's status; a CMD killed by a signal is reported as a crash\n"
            "under the allocator, with status 128 + the signal number. Peers are looked\n"
            "for in /usr/lib/x86_64-linux-gnu (MALLET_PEER_DIR overrides it).\n");
}

// Set the allocator's own "summary at exit" switch; false when it has none.
static bool enable_stats(const alloc_desc_t *a)
{
    if (a->kind == ALLOC_MALLET || a->kind == ALLOC_MALLET_SECURE) {
        setenv("MALLET_STATS", "1", 1);
        return true;
    }
    if (a->kind == ALLOC_PEER && !strcmp(a->name, "jemalloc")) {
        const char *old = getenv("MALLOC_CONF");
        char conf[1024];
        snprintf(conf, sizeof conf, "%s%sstats_print:true", old ? old : "", old && *old ? "," : "");
        setenv("MALLOC_CONF", conf, 1);
        return true;
    }
    if (a->kind == ALLOC_PEER && !strcmp(a->name, "mimalloc")) {
        setenv("MIMALLOC_SHOW_STATS", "1", 1);
        return true;
    }
    return false;
}

// --- the program's stderr, symbolized ---------------------------------------------------

// Pass the ended lines in buf through the symbolizer; false when writing fails.
static bool pass_lines(err_pipe_t *p)
{
    size_t start = 0;
    char *nl;
    while ((nl = memchr(p->buf + start, '\n', p->have - start))) {
        size_t n = (size_t)(nl + 1 - (p->buf + start));
        symbolize_line(p->sym, p->buf + start, n, p->out);
        start += n;
    }
    p->have -= start;
    memmove(p->buf, p->buf + start, p->have);
    if (p->have == sizeof p->buf) {
        fwrite(p->buf, 1, p->have, p->out);
        p->have = 0;
    }
    return fflush(p->out) == 0;
}

// Copy the pipe to our stderr to its end or, when pidfd is not -1, until
// the program has exited and the bytes in the pipe then are read: all it
// wrote, and no more, should a process it started keep writing. True when
// the pipe is still open at that point (such a process holds it). A write
// to our stderr that fails ends the copy: the pipe closes, and the program
// sees the failure as it would have without us.
static bool copy_stderr(err_pipe_t *p, int pidfd)
{
    bool exited = false;
    size_t left = 0;                          // once exited: bytes in the pipe still to read
    for (;;) {
        if (!exited) {
            struct pollfd pf[2] = { { .fd = p->read_fd, .events = POLLIN }, { .fd = pidfd, .events = POLLIN } };
            int n = poll(pf, 2, p->have ? PARTIAL_WAIT_MS : -1);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return false;
            if (n == 0) {                     // a line that does not end: out as it is
                fwrite(p->buf, 1, p->have, p->out);
                p->have = 0;
                if (fflush(p->out) != 0)
                    return false;
                continue;
            }
            if (pf[1].revents) {
                int in_pipe = 0;
                ioctl(p->read_fd, FIONREAD, &in_pipe);
                exited = true;
                left = (size_t)in_pipe;
            }
        }
        if (exited && left == 0) {
            struct pollfd pf = { .fd = p->read_fd, .events = POLLIN };
            if (poll(&pf, 1, 0) != 1 || pf.revents != POLLHUP)
                return true;                  // still open, or more bytes came: not the program's
            break;
        }
        size_t room = sizeof p->buf - p->have;
        ssize_t got = read(p->read_fd, p->buf + p->have, exited && left < room ? left : room);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        p->have += (size_t)got;
        left -= exited ? (size_t)got : 0;
        if (!pass_lines(p))
            return false;
    }
    if (p->have)                              // the last line, not ended
        symbolize_line(p->sym, p->buf, p->have, p->out);
    p->have = 0;
    fflush(p->out);
    return false;
}

// While the program runs (tool_command_during): its stderr through the
// symbolizer to ours.
static void symbolize_stderr(void *ctx, pid_t pid)
{
    err_pipe_t *p = ctx;
    close(p->write_fd);
    p->write_fd = -1;
    // Our stderr closed under us is a failed write to see, not our death.
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    int pidfd = pidfd_open(pid, 0);           // -1 on kernels before 5.3: copy to the end then
    if (copy_stderr(p, pidfd)) {
        if (fork() == 0) {
            copy_stderr(p, -1);
            _exit(0);
        }
    }
    if (pidfd >= 0)
        close(pidfd);
    close(p->read_fd);                        // before the wait: a program still writing must see it
    p->read_fd = -1;
    signal(SIGPIPE, old);
}

// Run cmd with its stderr through the symbolizer; as tool_command (stderr
// left alone) when our stderr is closed or a pipe cannot be made.
static int run_symbolized(char **cmd, const char *alloc)
{
    err_pipe_t *p = malloc(sizeof *p);
    int fds[2] = { -1, -1 }, out = -1;
    if (!p || (out = fcntl(2, F_DUPFD_CLOEXEC, 3)) < 0 || pipe2(fds, O_CLOEXEC) != 0) {
        if (out >= 0)
            close(out);
        free(p);
        return tool_command("mallet run", cmd, alloc, NULL);
    }
    *p = (err_pipe_t){ .read_fd = fds[0], .write_fd = fds[1], .out = fdopen(out, "w"), .sym = symbolize_open() };
    int status;
    if (p->out && p->sym)
        status = tool_command_during("mallet run", cmd, alloc, p->write_fd, symbolize_stderr, p);
    else
        status = tool_command("mallet run", cmd, alloc, NULL);
    if (p->read_fd >= 0)
        close(p->read_fd);
    if (p->write_fd >= 0)
        close(p->write_fd);
    if (p->out)
        fclose(p->out);
    else
        close(out);
    symbolize_close(p->sym);
    free(p);
    return status;
}

int tool_run(int argc, char **argv)
{
    const char *name = "mallet";
    bool stats = false, raw = false;
    int i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-a") && i + 1 < argc) {
            name = argv[++i];
        } else if (!strcmp(argv[i], "--stats")) {
            stats = true;
        } else if (!strcmp(argv[i], "--raw")) {
            raw = true;
        } else if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "mallet run: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            break;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "mallet run: no command given\n");
        usage(stderr);
        return 2;
    }
    alloc_desc_t a;
    char lib[4096];
    if (!tool_alloc_lookup("mallet run", name, &a) || !tool_alloc_preload("mallet run", &a, lib, sizeof lib))
        return 2;
    if (stats && !enable_stats(&a))
        fprintf(stderr, "mallet run: %s has no summary at exit%s\n", a.name,
                a.kind == ALLOC_GLIBC ? " (glibc prints one only when the program calls malloc_stats())" : "");
    if (lib[0] && !tool_preload_first("mallet run", lib))
        return 1;
    return raw ? tool_command("mallet run", argv + i, a.name, NULL) : run_symbolized(argv + i, a.name);
}
