// SPDX-License-Identifier: MIT
//
// symbolize.c -- `mallet symbolize`: the source file and line of each
// stack frame in libmallet's reports; the same filter serves `mallet run`,
// which passes a program's stderr through it.
//
// The library prints a frame (in-process, without malloc) as one line,
// perhaps indented:
//     #N 0xADDR FUNCTION+0xOFF (MODULE+0xVADDR)
// FUNCTION+0xOFF is `??` when it knew no name, and the parenthesis `(??)`
// when it knew no file. MODULE is the file's path as /proc/self/maps has
// it and VADDR the frame's ELF address in it (elf_file.h). Such a line
// gets " at FILE:LINE" appended, from MODULE's DWARF line tables
// (dwarf_line.c) or, when MODULE has no .debug_line, from its separate
// debug file; a `??` becomes the name the symbol tables give (symbols.c).
// Frames after #0 hold return addresses, which point past their call:
// they are looked up at VADDR - 1, inside the call itself. Every other
// line, and a frame nothing is found for, passes through byte for byte
// (NULs and all).
//
// Each module is read once, the first time a frame names it, and kept
// (a file that cannot be read is kept too, empty).
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "elf_file.h"

typedef struct module {
    char *path;                       // MODULE as the frames name it
    func_table_t funcs;               // its functions (its debug file's, when only that has .symtab)
    line_table_t lines;               // its line tables (its debug file's, when it has none)
} module_t;

struct symbolize {
    module_t *mods;                   // every module a frame has named
    size_t n_mods, cap;               // how many, and room for
};

// Where the parts of a frame line are.
typedef struct frame {
    unsigned long number;             // N of #N: 0 is a pc, the others return addresses
    size_t func, func_len;            // FUNCTION+0xOFF: its offset in the line, its length
    bool func_unknown;                // it is `??`
    size_t module, module_len;        // MODULE: its offset, its length
    uint64_t vaddr;                   // VADDR
    size_t end;                       // just past the closing parenthesis
} frame_t;

symbolize_t *symbolize_open(void)
{
    return calloc(1, sizeof(symbolize_t));
}

void symbolize_close(symbolize_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_mods; i++) {
        free(s->mods[i].path);
        func_table_free(&s->mods[i].funcs);
        line_table_free(&s->mods[i].lines);
    }
    free(s->mods);
    free(s);
}

// --- modules ---------------------------------------------------------------------------

// The line tables of m, and its functions; from its separate debug file
// when it has no .debug_line (Debian's stripped programs), whose .symtab
// also names the static functions the file's own .dynsym does not.
static void read_module(module_t *m)
{
    elf_file_t f, debug;
    char path[PATH_MAX];
    if (!elf_open(&f, m->path))
        return;
    func_table_read(&m->funcs, &f);
    if (elf_section(&f, ".debug_line")) {
        line_table_read(&m->lines, &f);
    } else if (elf_debug_file(&f, m->path, path, sizeof path) && elf_open(&debug, path)) {
        line_table_read(&m->lines, &debug);
        func_table_t full;
        if (!m->funcs.full && func_table_read(&full, &debug)) {
            func_table_free(&m->funcs);
            m->funcs = full;
        }
        elf_close(&debug);
    }
    elf_close(&f);
}

// The module at path (len bytes, not NUL-terminated), read the first time;
// NULL when out of memory or the path cannot be a file's.
static module_t *module_of(symbolize_t *s, const char *path, size_t len)
{
    if (memchr(path, 0, len) || len >= PATH_MAX)
        return NULL;
    for (size_t i = 0; i < s->n_mods; i++)
        if (!strncmp(s->mods[i].path, path, len) && !s->mods[i].path[len])
            return &s->mods[i];
    if (s->n_mods == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        module_t *mods = reallocarray(s->mods, cap, sizeof *mods);
        if (!mods)
            return NULL;
        s->mods = mods;
        s->cap = cap;
    }
    module_t *m = &s->mods[s->n_mods];
    *m = (module_t){ .path = strndup(path, len) };
    if (!m->path)
        return NULL;
    s->n_mods++;
    read_module(m);
    return m;
}

// --- frame lines -------------------------------------------------------------------------

// Hex digits at s[*i..end), at least one and at most 16, into *v.
static bool hex(const char *s, size_t end, size_t *i, uint64_t *v)
{
    size_t start = *i;
    *v = 0;
    for (; *i < end && *i - start < 16; ++*i) {
        char c = s[*i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            break;
        *v = *v << 4 | (uint64_t)d;
    }
    return *i > start;
}

// Whether s[i..end) ends in "+0xHEX", with its last '+' at *plus.
static bool offset_suffix(const char *s, size_t i, size_t end, size_t *plus)
{
    size_t p = end;
    while (p > i && s[p - 1] != '+')
        p--;
    if (p == i)
        return false;
    *plus = p - 1;
    uint64_t v;
    return end - p >= 3 && s[p] == '0' && s[p + 1] == 'x' && (p += 2, hex(s, end, &p, &v)) && p == end;
}

// Parse the line (its '\n' included, when it has one) as a frame.
static bool parse_frame(const char *s, size_t len, frame_t *fr)
{
    size_t end = len && s[len - 1] == '\n' ? len - 1 : len, i = 0, plus;
    uint64_t v;
    while (i < end && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i == end || s[i++] != '#')
        return false;
    size_t digits = i;
    fr->number = 0;
    for (; i < end && s[i] >= '0' && s[i] <= '9' && i - digits < 9; i++)
        fr->number = fr->number * 10 + (unsigned long)(s[i] - '0');
    if (i == digits || end - i < 4 || s[i] != ' ' || s[i + 1] != '0' || s[i + 2] != 'x')
        return false;
    i += 3;
    if (!hex(s, end, &i, &v) || i == end || s[i++] != ' ')
        return false;
    fr->func = i;
    while (i < end && s[i] != ' ')
        i++;
    fr->func_len = i - fr->func;
    fr->func_unknown = fr->func_len == 2 && !memcmp(s + fr->func, "??", 2);
    if (!fr->func_unknown && !offset_suffix(s, fr->func, i, &plus))
        return false;
    // " (MODULE+0xVADDR)" to the end of the line.
    if (end - i < 3 || s[i] != ' ' || s[i + 1] != '(' || s[end - 1] != ')')
        return false;
    fr->module = i + 2;
    if (!offset_suffix(s, fr->module, end - 1, &plus) || plus == fr->module)
        return false;
    fr->module_len = plus - fr->module;
    i = plus + 3;
    hex(s, end - 1, &i, &fr->vaddr);
    fr->end = end;
    return true;
}

bool symbolize_line(symbolize_t *s, const char *line, size_t len, FILE *out)
{
    frame_t fr;
    module_t *m;
    if (!parse_frame(line, len, &fr) || !(m = module_of(s, line + fr.module, fr.module_len)))
        return fwrite(line, 1, len, out) == len;
    uint64_t pc = fr.number ? fr.vaddr - 1 : fr.vaddr, start = 0;
    const char *file = NULL, *name = NULL;
    unsigned source_line = 0;
    bool found = line_table_find(&m->lines, pc, &file, &source_line);
    if (fr.func_unknown)
        name = func_table_find(&m->funcs, pc, &start);
    if (!found && !name)
        return fwrite(line, 1, len, out) == len;
    fwrite(line, 1, fr.func, out);
    if (name)                         // without a .symtab version: malloc@@GLIBC_2.2.5
        fprintf(out, "%.*s+0x%llx", (int)strcspn(name, "@"), name, (unsigned long long)(fr.vaddr - start));
    else
        fwrite(line + fr.func, 1, fr.func_len, out);
    fwrite(line + fr.func + fr.func_len, 1, fr.end - fr.func - fr.func_len, out);
    if (found)
        fprintf(out, " at %s:%u", file, source_line);
    fwrite(line + fr.end, 1, len - fr.end, out);
    return !ferror(out);
}

// --- the verb ------------------------------------------------------------------------------

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mallet symbolize [FILE...]\n"
            "\n"
            "Copy FILE (standard input when none, or -) to standard output, adding to\n"
            "each stack frame of a libmallet report its source file and line:\n"
            "\n"
            "  #1 0x55d0c6a1b410 main+0x40 (/src/build/prog+0x1410) at /src/prog.c:12\n"
            "\n"
            "The line comes from the module's DWARF line tables (.debug_line), or from\n"
            "its separate debug file under /usr/lib/debug ($MALLET_DEBUG_DIR) by build-id\n"
            "or .gnu_debuglink; a frame whose function is ?? gets its name from the\n"
            "symbol tables. Other lines, and frames nothing is found for, are copied as\n"
            "they are. `mallet run` does this to a program's stderr already.\n");
}

// Copy in to stdout, frame lines symbolized; false when in cannot be read.
static bool copy(symbolize_t *s, FILE *in)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, in)) > 0)
        symbolize_line(s, line, (size_t)n, stdout);
    free(line);
    return !ferror(in);
}

int tool_symbolize(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else {
            fprintf(stderr, "mallet symbolize: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    symbolize_t *s = symbolize_open();
    if (!s) {
        fprintf(stderr, "mallet symbolize: out of memory\n");
        return 1;
    }
    // A line as soon as it is made: the input may be a running program's.
    setvbuf(stdout, NULL, _IOLBF, 0);
    int status = 0;
    for (int k = i; k < argc || k == i; k++) {
        const char *name = k < argc ? argv[k] : "-";
        bool std_in = !strcmp(name, "-");
        FILE *in = std_in ? stdin : fopen(name, "r");
        if (!in || !copy(s, in)) {
            fprintf(stderr, "mallet symbolize: %s: %s\n", std_in ? "standard input" : name, strerror(errno));
            status = 2;
        }
        if (in && !std_in)
            fclose(in);
    }
    symbolize_close(s);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "mallet symbolize: writing the output: %s\n", strerror(errno));
        return 1;
    }
    return status;
}
