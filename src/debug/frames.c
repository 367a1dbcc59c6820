// SPDX-License-Identifier: MIT
//
// frames.c -- a call stack as report lines, named without malloc.
//
// A report is written when the heap is already damaged, from a signal
// handler or with the allocator's locks held, so nothing here allocates,
// takes a lock or uses stdio. Each frame is one line:
//
//     #N 0xADDR FUNCTION+0xOFF (MODULE+0xVADDR)
//
// MODULE is the file /proc/self/maps names for the address, VADDR the
// address inside that ELF file (the file offset carried through the
// PT_LOAD that holds it: what `addr2line -e MODULE` and `mallet
// symbolize` take), FUNCTION the STT_FUNC symbol of .symtab (or .dynsym
// when the file is stripped) that holds it, so a program built with
// symbols names its own static functions. What cannot be found is "??".
// The file is read through a private read-only mapping of its own, made
// and dropped for each frame: slow, and only ever paid by a report.
//
// Frames past the first are return addresses: their function is looked up
// one byte earlier (a call that ends a function returns to the next one).
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "debug.h"

// Scratch for one frame: a line of /proc/self/maps and its read buffer,
// the function's name. Mapped by the caller (a report may run on a small
// signal stack).
typedef struct frame_scratch {
    char chunk[4096];       // read from /proc/self/maps
    char line[4096 + 128];  // the line being assembled
    char path[4096];        // the module of the frame
    char name[256];         // its function
    char out[4096 + 512];   // the frame's line
} frame_scratch_t;

static uint64_t hex_field(const char **s)
{
    uint64_t v = 0;
    for (;; (*s)++) {
        char c = **s;
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                   : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 16u;
        if (d == 16)
            return v;
        v = v * 16 + d;
    }
}

// One maps line "start-end perms offset dev inode path": when it holds pc,
// its path (empty for an anonymous mapping) and the file offset of pc.
static bool maps_line(const char *s, uintptr_t pc, char *path, size_t cap, uint64_t *file_off)
{
    uint64_t start = hex_field(&s);
    if (*s++ != '-')
        return false;
    uint64_t end = hex_field(&s);
    if (pc < start || pc >= end)
        return false;
    for (int field = 0; field < 4 && *s; field++) {      // perms, offset, dev, inode
        while (*s == ' ')
            s++;
        if (field == 1)
            *file_off = hex_field(&s) + (pc - start);
        while (*s && *s != ' ')
            s++;
    }
    while (*s == ' ')
        s++;
    size_t n = 0;
    while (s[n] && s[n] != '\n' && n + 1 < cap) {
        path[n] = s[n];
        n++;
    }
    path[n] = 0;
    return true;
}

// The mapping that holds pc: its file and the file offset of pc.
static bool find_module(frame_scratch_t *w, uintptr_t pc, uint64_t *file_off)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool found = false;
    size_t len = 0;
    ssize_t got;
    while (!found && (got = read(fd, w->chunk, sizeof w->chunk)) > 0) {
        for (ssize_t i = 0; i < got && !found; i++) {
            char c = w->chunk[i];
            if (len + 1 < sizeof w->line)
                w->line[len++] = c;
            if (c == '\n') {
                w->line[len] = 0;
                found = maps_line(w->line, pc, w->path, sizeof w->path, file_off);
                len = 0;
            }
        }
    }
    close(fd);
    return found && w->path[0] == '/';
}

// In the ELF image at f (size bytes): the virtual address of file offset
// off, and the function that holds the address of file offset at_off (its
// name into name, that address's distance from its start into *into).
// false when the image is not one we read.
static bool elf_lookup(const uint8_t *f, size_t size, uint64_t off, uint64_t *vaddr, uint64_t at_off,
                       char *name, size_t cap, uint64_t *into)
{
    const Elf64_Ehdr *eh = (const void *)f;
    if (size < sizeof *eh || eh->e_ident[EI_MAG0] != ELFMAG0 || eh->e_ident[EI_MAG1] != ELFMAG1 ||
        eh->e_ident[EI_MAG2] != ELFMAG2 || eh->e_ident[EI_MAG3] != ELFMAG3 ||
        eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_phoff > size ||
        (size - eh->e_phoff) / sizeof(Elf64_Phdr) < eh->e_phnum)
        return false;
    const Elf64_Phdr *ph = (const void *)(f + eh->e_phoff);
    bool mapped = false;
    uint64_t at = 0;
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type != PT_LOAD)
            continue;
        if (off >= ph[i].p_offset && off - ph[i].p_offset < ph[i].p_filesz) {
            *vaddr = off - ph[i].p_offset + ph[i].p_vaddr;
            at = at_off - ph[i].p_offset + ph[i].p_vaddr;
            mapped = true;
        }
    }
    if (!mapped)
        return false;
    name[0] = 0;
    if (eh->e_shoff > size || (size - eh->e_shoff) / sizeof(Elf64_Shdr) < eh->e_shnum)
        return true;
    const Elf64_Shdr *sh = (const void *)(f + eh->e_shoff);
    const Elf64_Shdr *tab = NULL;
    for (unsigned i = 0; i < eh->e_shnum; i++)
        if (sh[i].sh_type == SHT_SYMTAB || (sh[i].sh_type == SHT_DYNSYM && tab == NULL))
            tab = &sh[i];
    if (tab == NULL || tab->sh_link >= eh->e_shnum || tab->sh_offset > size ||
        tab->sh_size > size - tab->sh_offset)
        return true;
    const Elf64_Shdr *str = &sh[tab->sh_link];
    if (str->sh_offset > size || str->sh_size > size - str->sh_offset)
        return true;
    const Elf64_Sym *sym = (const void *)(f + tab->sh_offset);
    size_t n = tab->sh_size / sizeof *sym;
    const Elf64_Sym *best = NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned type = ELF64_ST_TYPE(sym[i].st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym[i].st_shndx == SHN_UNDEF ||
            at < sym[i].st_value || at - sym[i].st_value >= (sym[i].st_size ? sym[i].st_size : 1))
            continue;
        // Aliases: a global name before a local one.
        if (best == NULL || (ELF64_ST_BIND(best->st_info) == STB_LOCAL && ELF64_ST_BIND(sym[i].st_info) != STB_LOCAL))
            best = &sym[i];
    }
    if (best == NULL || best->st_name >= str->sh_size)
        return true;
    const char *s = (const char *)f + str->sh_offset + best->st_name;
    size_t k = 0;
    while (k + 1 < cap && best->st_name + k < str->sh_size && s[k]) {
        name[k] = s[k];
        k++;
    }
    name[k] = 0;
    *into = at - best->st_value;
    return true;
}

static void frame_line(mallet_buf_t *b, frame_scratch_t *w, unsigned n, uintptr_t pc)
{
    mallet__buf_str(b, "    #");
    mallet__buf_u64(b, n);
    mallet__buf_str(b, " ");
    mallet__buf_hex(b, pc);
    uint64_t off = 0, vaddr = 0, into = 0;
    uintptr_t at = n > 0 && pc > 0 ? pc - 1 : pc;
    bool named = false, placed = false;
    if (find_module(w, pc, &off)) {
        int fd = open(w->path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0) {
            void *f = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (f != MAP_FAILED) {
                placed = elf_lookup(f, (size_t)st.st_size, off, &vaddr, off - (pc - at), w->name,
                                    sizeof w->name, &into);
                named = placed && w->name[0];
                munmap(f, (size_t)st.st_size);
            }
        }
        if (fd >= 0)
            close(fd);
    }
    mallet__buf_str(b, " ");
    if (named) {
        mallet__buf_str(b, w->name);
        mallet__buf_str(b, "+");
        mallet__buf_hex(b, into + (pc - at));
    } else {
        mallet__buf_str(b, "??");
    }
    if (placed) {
        mallet__buf_str(b, " (");
        mallet__buf_str(b, w->path);
        mallet__buf_str(b, "+");
        mallet__buf_hex(b, vaddr);
        mallet__buf_str(b, ")\n");
    } else {
        mallet__buf_str(b, " (?" "?)\n");
    }
}

void mallet__frames_write(int fd, const uintptr_t *pc, unsigned n)
{
    if (n == 0)
        return;
    frame_scratch_t *w = mmap(NULL, sizeof *w, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char small[64];
    mallet_buf_t b = { small, sizeof small, 0 };
    if (w != MAP_FAILED)
        b = (mallet_buf_t){ w->out, sizeof w->out, 0 };
    for (unsigned i = 0; i < n; i++) {
        if (w == MAP_FAILED) {
            mallet__buf_str(&b, "    #");
            mallet__buf_u64(&b, i);
            mallet__buf_str(&b, " ");
            mallet__buf_hex(&b, pc[i]);
            mallet__buf_str(&b, " ?? (?" "?)\n");
        } else {
            frame_line(&b, w, i, pc[i]);
        }
        mallet__buf_flush(&b, fd);
    }
    if (w != MAP_FAILED)
        munmap(w, sizeof *w);
}
