// SPDX-License-Identifier: MIT
//
// symbols.c -- return address -> function name, for the mappings of one
// process, reading the ELF files themselves (no addr2line, no nm, no
// libelf: the command links libc only).
//
// The way there (src/prof_dump.c): the mapping that holds the address gives
// the file and the file offset (address - start + offset); the PT_LOAD
// segment that holds that offset gives the ELF virtual address (offset -
// p_offset + p_vaddr); the STT_FUNC symbol whose [st_value, st_value +
// st_size) holds that address is the function. This one rule serves PIE
// and non-PIE executables and shared libraries alike, wherever the loader
// put them. Symbols come from .symtab, or from .dynsym when the file is
// stripped (then only exported functions have names, and an address in a
// local one is shown as "[file]+0xADDR", its ELF address: what
// `addr2line -e FILE` takes).
//
// A file is read once, the first time an address falls in it: its
// segments and its function symbols sorted by address, aliases (several
// names at one address, e.g. malloc and __libc_malloc) reduced to the
// one most likely to be the name in the source: global before weak
// before local, fewer leading underscores, then the first in byte order.
// A symbol of size 0 (hand-written assembly) reaches to the next one, or
// to the end of its section.
// Only 64-bit little-endian ELF (the x86-64 the allocator runs on) is
// read; other files leave their addresses unnamed.
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "prof.h"

#define MAX_TABLE (256u << 20)        // larger symbol or string tables are not a sane ELF file's

typedef struct func_sym {
    uint64_t addr, size;              // the function's ELF addresses, [addr, addr + size)
    uint32_t name;                    // its name: offset in the image's string table
    uint8_t binding;                  // 0 global, 1 weak, 2 local: which alias wins
} func_sym_t;

typedef struct segment {
    uint64_t offset, filesz;          // a PT_LOAD's file bytes, [offset, offset + filesz)
    uint64_t vaddr;                   // the ELF address of its first byte
} segment_t;

typedef struct image {
    const char *path;                 // the file (a mapping's path, not owned)
    bool read;                        // read already (or tried: then n_syms and n_segs are 0)
    segment_t *segs;                  // its PT_LOAD segments
    size_t n_segs;                    // how many
    func_sym_t *syms;                 // its functions, by address, one name per address
    size_t n_syms;                    // how many
    char *strtab;                     // the names, NUL-terminated at its end
    size_t strtab_size;               // bytes in strtab
} image_t;

struct symbolizer {
    const prof_map_t **maps;          // the mappings, sorted by start address
    size_t *image_of;                 // per sorted mapping: its image in images[]
    size_t n_maps;                    // how many
    image_t *images;                  // one per distinct file
    size_t n_images;                  // how many
};

static int cmp_map(const void *a, const void *b)
{
    const prof_map_t *x = *(const prof_map_t *const *)a, *y = *(const prof_map_t *const *)b;
    return (x->start > y->start) - (x->start < y->start);
}

symbolizer_t *sym_open(const prof_map_t *maps, size_t n_maps)
{
    symbolizer_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->maps = malloc((n_maps + 1) * sizeof *s->maps);
    s->image_of = malloc((n_maps + 1) * sizeof *s->image_of);
    s->images = calloc(n_maps + 1, sizeof *s->images);
    if (!s->maps || !s->image_of || !s->images) {
        sym_close(s);
        return NULL;
    }
    for (size_t i = 0; i < n_maps; i++)
        s->maps[i] = &maps[i];
    qsort(s->maps, n_maps, sizeof *s->maps, cmp_map);
    s->n_maps = n_maps;
    for (size_t i = 0; i < n_maps; i++) {
        const char *path = s->maps[i]->path;
        size_t k = 0;
        while (k < s->n_images && !(path && !strcmp(s->images[k].path, path)))
            k++;
        if (path && k == s->n_images)
            s->images[s->n_images++].path = path;
        s->image_of[i] = k;                 // == n_images for no file: never read
    }
    return s;
}

void sym_close(symbolizer_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_images; i++) {
        free(s->images[i].segs);
        free(s->images[i].syms);
        free(s->images[i].strtab);
    }
    free(s->images);
    free(s->image_of);
    free(s->maps);
    free(s);
}

// len bytes at off of the file, in new memory (one spare NUL byte after
// them); NULL when they are not all there.
static void *read_at(int fd, uint64_t file_size, uint64_t off, uint64_t len)
{
    if (off > file_size || len > file_size - off || len > MAX_TABLE)
        return NULL;
    char *buf = malloc(len + 1);
    if (!buf)
        return NULL;
    for (uint64_t got = 0; got < len;) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
        if (n <= 0) {
            free(buf);
            return NULL;
        }
        got += (uint64_t)n;
    }
    buf[len] = 0;
    return buf;
}

static int underscores(const char *name)
{
    int n = 0;
    while (name[n] == '_')
        n++;
    return n;
}

static int cmp_sym(const void *a, const void *b, void *image)
{
    const func_sym_t *x = a, *y = b;
    const image_t *im = image;
    if (x->addr != y->addr)
        return (x->addr > y->addr) - (x->addr < y->addr);
    if (x->binding != y->binding)
        return x->binding - y->binding;
    const char *nx = im->strtab + x->name, *ny = im->strtab + y->name;
    int ux = underscores(nx), uy = underscores(ny);
    return ux != uy ? ux - uy : strcmp(nx, ny);
}

// The function symbols of the symbol table sh[table] (and its string table).
static bool read_symbols(image_t *im, int fd, uint64_t file_size, const Elf64_Shdr *sh, uint64_t shnum,
                         uint64_t table)
{
    const Elf64_Shdr *tab = &sh[table], *str = &sh[tab->sh_link];
    Elf64_Sym *syms = read_at(fd, file_size, tab->sh_offset, tab->sh_size);
    im->strtab = read_at(fd, file_size, str->sh_offset, str->sh_size);
    size_t n = syms ? tab->sh_size / sizeof *syms : 0;
    im->syms = malloc((n + 1) * sizeof *im->syms);
    if (!syms || !im->strtab || !im->syms) {
        free(syms);
        return false;
    }
    im->strtab_size = str->sh_size;
    for (size_t i = 0; i < n; i++) {
        const Elf64_Sym *y = &syms[i];
        int bind = ELF64_ST_BIND(y->st_info);
        if (ELF64_ST_TYPE(y->st_info) != STT_FUNC || y->st_shndx == SHN_UNDEF || y->st_name >= im->strtab_size
            || !im->strtab[y->st_name])
            continue;
        // Size 0 (hand-written assembly): to the end of its section, and
        // (below) no further than the next function.
        uint64_t size = y->st_size;
        if (size == 0 && y->st_shndx < shnum && sh[y->st_shndx].sh_addr + sh[y->st_shndx].sh_size > y->st_value)
            size = sh[y->st_shndx].sh_addr + sh[y->st_shndx].sh_size - y->st_value;
        im->syms[im->n_syms++] = (func_sym_t){
            .addr = y->st_value,
            .size = size,
            .name = y->st_name,
            .binding = bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2,
        };
    }
    free(syms);
    qsort_r(im->syms, im->n_syms, sizeof *im->syms, cmp_sym, im);
    size_t kept = 0;
    for (size_t i = 0; i < im->n_syms; i++) {
        if (kept && im->syms[i].addr == im->syms[kept - 1].addr)
            continue;                         // an alias: the first is the name kept
        if (kept && im->syms[kept - 1].size > im->syms[i].addr - im->syms[kept - 1].addr)
            im->syms[kept - 1].size = im->syms[i].addr - im->syms[kept - 1].addr;
        im->syms[kept++] = im->syms[i];
    }
    im->n_syms = kept;
    return true;
}

// Segments and symbols of the file; on any failure the image stays empty
// and its addresses unnamed.
static void read_image(image_t *im)
{
    im->read = true;
    int fd = open(im->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return;
    Elf64_Ehdr eh;
    Elf64_Phdr *ph = NULL;
    Elf64_Shdr *sh = NULL;
    if (fstat(fd, &st) != 0 || pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh
        || memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64
        || eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_phentsize != sizeof *ph)
        goto done;
    uint64_t size = (uint64_t)st.st_size;
    ph = read_at(fd, size, eh.e_phoff, (uint64_t)eh.e_phnum * sizeof *ph);
    im->segs = malloc((eh.e_phnum + 1u) * sizeof *im->segs);
    if (!ph || !im->segs)
        goto done;
    for (size_t i = 0; i < eh.e_phnum; i++)
        if (ph[i].p_type == PT_LOAD)
            im->segs[im->n_segs++] = (segment_t){ ph[i].p_offset, ph[i].p_filesz, ph[i].p_vaddr };
    // Section headers: with 0xff00 sections or more, e_shnum is 0 and the
    // count is the first header's sh_size.
    uint64_t shnum = eh.e_shnum;
    Elf64_Shdr first;
    if (eh.e_shoff == 0 || eh.e_shentsize != sizeof first
        || pread(fd, &first, sizeof first, (off_t)eh.e_shoff) != (ssize_t)sizeof first)
        goto done;
    if (shnum == 0)
        shnum = first.sh_size;
    if (shnum > MAX_TABLE / sizeof *sh)
        goto done;
    sh = read_at(fd, size, eh.e_shoff, shnum * sizeof *sh);
    if (!sh)
        goto done;
    uint64_t table = shnum;
    for (uint64_t i = 0; i < shnum; i++)
        if (sh[i].sh_type == SHT_SYMTAB || (sh[i].sh_type == SHT_DYNSYM && table == shnum))
            table = i;
    if (table < shnum && sh[table].sh_link < shnum && sh[sh[table].sh_link].sh_type == SHT_STRTAB
        && sh[table].sh_entsize == sizeof(Elf64_Sym) && !read_symbols(im, fd, size, sh, shnum, table)) {
        free(im->syms);
        free(im->strtab);
        im->syms = NULL;
        im->strtab = NULL;
        im->n_syms = 0;
    }
done:
    free(ph);
    free(sh);
    close(fd);
}

// The function holding ELF address a, or NULL.
static const func_sym_t *find_sym(const image_t *im, uint64_t a)
{
    size_t lo = 0, hi = im->n_syms;       // the first symbol above a is in [lo, hi]
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (im->syms[mid].addr <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    const func_sym_t *f = &im->syms[lo - 1];
    return a - f->addr < f->size ? f : NULL;
}

char *sym_name(symbolizer_t *s, uint64_t pc)
{
    uint64_t a = pc - 1;                  // inside the call instruction, not after it
    size_t lo = 0, hi = s->n_maps;        // the first mapping starting above a
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->maps[mid]->start <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    char *name;
    if (lo == 0 || a >= s->maps[lo - 1]->end || s->image_of[lo - 1] == s->n_images)
        return asprintf(&name, "0x%llx", (unsigned long long)pc) < 0 ? NULL : name;
    const prof_map_t *m = s->maps[lo - 1];
    image_t *im = &s->images[s->image_of[lo - 1]];
    if (!im->read)
        read_image(im);
    uint64_t off = a - m->start + m->offset, elf = off;
    for (size_t i = 0; i < im->n_segs; i++) {
        const segment_t *g = &im->segs[i];
        if (off - g->offset < g->filesz) {
            elf = off - g->offset + g->vaddr;
            const func_sym_t *f = find_sym(im, elf);
            if (f)
                return strdup(im->strtab + f->name);
            break;
        }
    }
    const char *slash = strrchr(im->path, '/');
    return asprintf(&name, "[%s]+0x%llx", slash ? slash + 1 : im->path, (unsigned long long)elf + 1) < 0 ? NULL
                                                                                                       : name;
}
