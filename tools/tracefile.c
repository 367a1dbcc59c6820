// SPDX-License-Identifier: MIT
//
// tracefile.c -- reading CS:APP malloc-lab traces.
//
// Format (text, one item per line):
//   HEAP_HINT   suggested heap size (not used for replay)
//   IDS         number of block ids; every id is < IDS
//   OPS         number of operations that follow
//   WEIGHT      scoring weight (not used for replay)
// Shorter headers seen in the wild are read too: HINT IDS OPS, and IDS OPS.
//   a ID SIZE   allocate SIZE bytes as block ID
//   f ID        free block ID
//   r ID SIZE   resize block ID to SIZE bytes
// and the variants the public trace sets hold, each a thing the traced
// program did:
//   f -1        free(NULL)
//   r ID SIZE   for an ID that is not live: realloc(NULL, SIZE), a malloc
//   a ID        no size: malloc(0)
// Lines may end in CR LF. Any op may end with `@T`, the number of the thread
// that made it (mallet trace writes it for every thread but the first);
// without it an op belongs to thread 0, so classic traces read unchanged.
// Blank lines are skipped, and so (with a warning) is anything after the
// OPS operations, as the lab's driver does. The loader checks that the file
// keeps its promises -- ids in range, no block allocated twice, no free of
// a block that is not live, at least OPS operations -- so a replay never
// meets a malformed op. Compressed traces (.gz, .zst) are read through
// gzip -dc / zstd -dc on a pipe.
//
// The loader does not use malloc: ops live in an mmap'd array grown with
// mremap, the read buffer is static. A replay child under a preloaded
// allocator thus starts with that allocator's heap untouched.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tools.h"

#define READ_CHUNK (1u << 20)
#define LINE_MAX_LEN 256              // longer lines cannot be valid ops
#define MAX_SIZE   (1ull << 47)       // larger requests are surely a typo

typedef struct reader {
    int fd;                           // the file, or the decompressor's pipe
    pid_t child;                      // the decompressor, or 0
    const char *tool;                 // its name, for messages
    char buf[READ_CHUNK];             // bytes read and not yet consumed
    size_t len, pos;                  // fill level and read position of buf
    bool eof;                         // read returned 0
    uint64_t line;                    // number of the line last returned
} reader_t;

static reader_t rd;                   // one trace is read at a time

bool trace_warnings = true;

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static bool reader_open(const char *path)
{
    struct stat st;
    memset(&rd, 0, offsetof(reader_t, buf));
    rd.len = rd.pos = 0;
    rd.eof = false;
    rd.line = 0;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return false;
    }
    if (S_ISDIR(st.st_mode)) {
        fprintf(stderr, "%s: is a directory, not a trace\n", path);
        return false;
    }
    const char *argv[] = { NULL, "-dc", "--", path, NULL };
    if (ends_with(path, ".gz"))
        argv[0] = "gzip";
    else if (ends_with(path, ".zst"))
        argv[0] = "zstd";
    if (!argv[0]) {
        rd.fd = open(path, O_RDONLY | O_CLOEXEC);
        if (rd.fd < 0) {
            fprintf(stderr, "%s: %s\n", path, strerror(errno));
            return false;
        }
        return true;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        fprintf(stderr, "%s: pipe: %s\n", path, strerror(errno));
        return false;
    }
    rd.tool = argv[0];
    rd.child = fork();
    if (rd.child == 0) {
        dup2(p[1], 1);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "%s: cannot run %s to decompress it (apt-get install %s)\n", path, argv[0],
                argv[0]);
        _exit(127);
    }
    close(p[1]);
    if (rd.child < 0) {
        close(p[0]);
        fprintf(stderr, "%s: fork: %s\n", path, strerror(errno));
        return false;
    }
    rd.fd = p[0];
    return true;
}

// Close; false when the decompressor failed. `quiet` after a parse error:
// the decompressor is cut off mid-stream and its failure is expected.
static bool reader_close(const char *path, bool quiet)
{
    close(rd.fd);
    if (!rd.child)
        return true;
    int status;
    while (waitpid(rd.child, &status, 0) < 0 && errno == EINTR)
        continue;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return true;
    if (!quiet && !(WIFEXITED(status) && WEXITSTATUS(status) == 127))
        fprintf(stderr, "%s: %s -dc failed, the trace is damaged\n", path, rd.tool);
    return false;
}

// The next line without its newline, NUL-terminated, or NULL at the end.
// A line too long to be an op comes back cut (it fails to parse anyway).
static char *reader_line(void)
{
    static char line[LINE_MAX_LEN + 1];
    size_t n = 0;
    for (;;) {
        if (rd.pos == rd.len) {
            if (rd.eof)
                break;
            ssize_t r = read(rd.fd, rd.buf, sizeof rd.buf);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                rd.eof = true;
                break;
            }
            rd.len = (size_t)r;
            rd.pos = 0;
        }
        char *start = rd.buf + rd.pos;
        char *nl = memchr(start, '\n', rd.len - rd.pos);
        size_t take = nl ? (size_t)(nl - start) : rd.len - rd.pos;
        size_t keep = take < LINE_MAX_LEN - n ? take : LINE_MAX_LEN - n;
        memcpy(line + n, start, keep);
        n += keep;
        rd.pos += take + (nl != NULL);
        if (nl) {
            line[n] = 0;
            rd.line++;
            return line;
        }
    }
    if (n == 0)
        return NULL;
    line[n] = 0;
    rd.line++;
    return line;
}

static const char *skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r')
        s++;
    return s;
}

// Parse an unsigned decimal at *s; advance past it.
static bool parse_u64(const char **s, uint64_t *out)
{
    const char *p = skip_space(*s);
    if (*p < '0' || *p > '9')
        return false;
    uint64_t v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    *s = p;
    return true;
}

static bool at_end(const char *s)
{
    return *skip_space(s) == 0;
}

static bool grow_ops(trace_t *t)
{
    size_t cap = t->ops_cap ? t->ops_cap * 2 : (size_t)1 << 20;
    void *p = t->ops_cap ? mremap(t->ops, t->ops_cap, cap, MREMAP_MAYMOVE)
                         : mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return false;
    t->ops = p;
    t->ops_cap = cap;
    return true;
}

static bool fail(const char *path, const char *what, const char *line)
{
    if (line)
        fprintf(stderr, "%s:%llu: %s, found '%s'\n", path, (unsigned long long)rd.line, what, line);
    else
        fprintf(stderr, "%s:%llu: %s\n", path, (unsigned long long)rd.line, what);
    return false;
}

static char *next_nonblank(void)
{
    char *l;
    while ((l = reader_line()) && at_end(l))
        continue;
    return l;
}

// The header is the numbers before the first op, in one of the shapes
// malloc-lab traces come in: HINT IDS OPS WEIGHT (the CS:APP original),
// HINT IDS OPS, or IDS OPS.
static bool read_header(const char *path, trace_t *t, char **first_op)
{
    uint64_t v[4];
    int n = 0;
    char *l;
    *first_op = NULL;
    while ((l = next_nonblank())) {
        const char *s = skip_space(l);
        if (*s == 'a' || *s == 'f' || *s == 'r') {
            *first_op = l;
            break;
        }
        if (n == 4)
            return fail(path, "expected an op after the 4 header numbers", l);
        if (!parse_u64(&s, &v[n]) || !at_end(s))
            return fail(path, n == 0 ? "expected the header (numbers: heap hint, ids, ops, weight)"
                                     : "expected a header number or an op", l);
        n++;
    }
    if (n < 2) {
        if (l)
            return fail(path, "expected the header (numbers: heap hint, ids, ops, weight) before the ops", NULL);
        return fail(path, "expected the header (numbers: heap hint, ids, ops, weight), found the end of the file", NULL);
    }
    int k = n == 2 ? 0 : 1;               // two numbers: ids and ops, no hint
    t->heap_hint = k ? v[0] : 0;
    t->n_ids = v[k];
    t->n_ops = v[k + 1];
    t->weight = n == 4 ? v[3] : 1;
    if (t->n_ids >= TRACE_NULL_ID)
        return fail(path, "expected at most 4294967294 ids", NULL);
    return true;
}

// The optional `@T` at the end of an op: its thread number into *thread.
static bool parse_thread(const char **s, uint32_t *thread)
{
    const char *p = skip_space(*s);
    uint64_t v;
    *thread = 0;
    if (*p != '@')
        return true;
    p++;
    if (!parse_u64(&p, &v) || v >= TRACE_THREADS_MAX)
        return false;
    *thread = (uint32_t)v;
    *s = p;
    return true;
}

static bool parse_ops(const char *path, trace_t *t, char *l, uint8_t *live)
{
    static const char want[] = "expected 'a ID SIZE', 'f ID' or 'r ID SIZE'";
    uint64_t declared = t->n_ops, n = 0;
    char msg[160];
    for (; l; l = next_nonblank()) {
        if (n == declared) {
            // Like the lab's driver, read no further than the header says;
            // but say so, a short count is a likely mistake.
            if (trace_warnings)
                fprintf(stderr, "%s:%llu: warning: ignoring the lines after the %llu operations"
                        " the header declares\n", path, (unsigned long long)rd.line,
                        (unsigned long long)declared);
            while (reader_line())
                continue;
            break;
        }
        const char *s = skip_space(l);
        char c = *s++;
        uint64_t id, size = 0;
        uint32_t thread;
        bool null_free = false;
        if ((c != 'a' && c != 'f' && c != 'r') || (*s != ' ' && *s != '\t'))
            return fail(path, want, l);
        if (c == 'f' && skip_space(s)[0] == '-') {
            // free(NULL): the lab's driver reads `f -1` as a free of no block.
            s = skip_space(s) + 1;
            if (!parse_u64(&s, &id) || id != 1)
                return fail(path, want, l);
            null_free = true;
        } else if (!parse_u64(&s, &id)) {
            return fail(path, want, l);
        }
        // `a ID` with nothing after it is malloc(0); `r` keeps its size.
        if (c == 'r' && !parse_u64(&s, &size))
            return fail(path, want, l);
        if (c == 'a' && !parse_u64(&s, &size) && *skip_space(s) != '@' && !at_end(s))
            return fail(path, want, l);
        if (!parse_thread(&s, &thread))
            return fail(path, "expected a thread number from 0 to 255 after '@'", l);
        if (!at_end(s))
            return fail(path, want, l);
        if (size > MAX_SIZE)
            return fail(path, "expected a size below 2^47", l);
        if (!null_free && id >= t->n_ids) {
            snprintf(msg, sizeof msg, "id %llu out of range (the header declares %llu ids)",
                     (unsigned long long)id, (unsigned long long)t->n_ids);
            return fail(path, msg, NULL);
        }
        bool is_live = !null_free && (live[id / 8] >> (id % 8) & 1);
        if (c == 'a' && is_live) {
            snprintf(msg, sizeof msg, "id %llu is allocated twice (no free between)", (unsigned long long)id);
            return fail(path, msg, NULL);
        }
        if (c == 'f' && !null_free && !is_live) {
            snprintf(msg, sizeof msg, "free of id %llu, which is not allocated", (unsigned long long)id);
            return fail(path, msg, NULL);
        }
        // A realloc of an id that is not live is realloc(NULL, SIZE): the
        // block is live afterwards, as after `a`.
        if (c == 'a' || c == 'r')
            live[id / 8] |= (uint8_t)(1u << (id % 8));
        else if (!null_free)
            live[id / 8] &= (uint8_t)~(1u << (id % 8));
        if ((n + 1) * sizeof(trace_op_t) > t->ops_cap && !grow_ops(t)) {
            fprintf(stderr, "%s: out of memory for %llu operations\n", path, (unsigned long long)n);
            return false;
        }
        if (thread >= t->n_threads)
            t->n_threads = thread + 1;
        t->ops[n++] = (trace_op_t){
            .size = size,
            .id = null_free ? TRACE_NULL_ID : (uint32_t)id,
            .kind = c == 'a' ? OP_ALLOC : c == 'f' ? OP_FREE : OP_REALLOC,
            .line = rd.line < (1u << 30) ? (uint32_t)rd.line : (1u << 30) - 1,
            .thread = thread,
        };
    }
    if (n != declared) {
        fprintf(stderr, "%s:%llu: expected %llu operations (the header), found %llu\n", path,
                (unsigned long long)rd.line, (unsigned long long)declared, (unsigned long long)n);
        return false;
    }
    return true;
}

bool trace_load(const char *path, trace_t *t)
{
    memset(t, 0, sizeof *t);
    t->path = path;
    t->n_threads = 1;
    if (!reader_open(path))
        return false;
    char *first = NULL;
    bool ok = read_header(path, t, &first);
    uint8_t *live = NULL;
    size_t live_size = t->n_ids / 8 + 1;
    if (ok) {
        live = mmap(NULL, live_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (live == MAP_FAILED) {
            fprintf(stderr, "%s: out of memory for %llu ids\n", path, (unsigned long long)t->n_ids);
            live = NULL;
            ok = false;
        }
    }
    if (ok)
        ok = parse_ops(path, t, first, live);
    if (live)
        munmap(live, live_size);
    bool closed = reader_close(path, !ok);
    if (!ok || !closed) {
        trace_free(t);
        return false;
    }
    return true;
}

void trace_free(trace_t *t)
{
    if (t->ops_cap)
        munmap(t->ops, t->ops_cap);
    t->ops = NULL;
    t->ops_cap = 0;
}
