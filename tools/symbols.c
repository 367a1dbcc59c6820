// SPDX-License-Identifier: MIT
//
// symbols.c -- ELF address -> function name, from the files' own symbol
// tables (no addr2line, no nm, no libelf: the command links libc only);
// and return address -> function name for the mappings of one process.
//
// A file's function table (func_table_*, what `mallet symbolize` asks
// for an ELF address) holds its STT_FUNC symbols sorted by address,
// aliases (several names at one address, e.g. malloc and __libc_malloc)
// reduced to the one most likely to be the name in the source: global
// before weak before local, fewer leading underscores, then the first in
// byte order. A symbol of size 0 (hand-written assembly) reaches to the
// next one, or to the end of its section. Symbols come from .symtab, or
// from .dynsym when the file is stripped (then only exported functions
// have names).
//
// The way from a process's address there (src/prof/prof_dump.c): the mapping
// that holds the address gives the file and the file offset (address -
// start + offset); the PT_LOAD segment that holds that offset gives the
// ELF virtual address (offset - p_offset + p_vaddr); the function whose
// [st_value, st_value + st_size) holds that address is the name. This one
// rule serves PIE and non-PIE executables and shared libraries alike,
// wherever the loader put them. An address in a file but in no function
// it names is shown as "[file]+0xADDR", its ELF address: what `addr2line
// -e FILE` takes. A file is read once, the first time an address falls in
// it.
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "elf_file.h"
#include "prof.h"

struct func_sym {
    uint64_t addr, size;              // the function's ELF addresses, [addr, addr + size)
    uint32_t name;                    // its name: offset in the table's strtab
    uint8_t binding;                  // 0 global, 1 weak, 2 local: which alias wins
};

typedef struct segment {
    uint64_t offset, filesz;          // a PT_LOAD's file bytes, [offset, offset + filesz)
    uint64_t vaddr;                   // the ELF address of its first byte
} segment_t;

typedef struct image {
    const char *path;                 // the file (a mapping's path, not owned)
    bool read;                        // read already (or tried: then n_segs and funcs are empty)
    segment_t *segs;                  // its PT_LOAD segments
    size_t n_segs;                    // how many
    func_table_t funcs;               // its functions
} image_t;

struct symbolizer {
    const prof_map_t **maps;          // the mappings, sorted by start address
    size_t *image_of;                 // per sorted mapping: its image in images[]
    size_t n_maps;                    // how many
    image_t *images;                  // one per distinct file
    size_t n_images;                  // how many
};

// --- a file's function table ------------------------------------------------------

static int underscores(const char *name)
{
    int n = 0;
    while (name[n] == '_')
        n++;
    return n;
}

static int cmp_sym(const void *a, const void *b, void *table)
{
    const func_sym_t *x = a, *y = b;
    const func_table_t *t = table;
    if (x->addr != y->addr)
        return (x->addr > y->addr) - (x->addr < y->addr);
    if (x->binding != y->binding)
        return x->binding - y->binding;
    const char *nx = t->strtab + x->name, *ny = t->strtab + y->name;
    int ux = underscores(nx), uy = underscores(ny);
    return ux != uy ? ux - uy : strcmp(nx, ny);
}

// The function symbols of the symbol table sh[table] (and its string table).
static bool read_symbols(func_table_t *t, const elf_file_t *f, uint64_t table)
{
    const Elf64_Shdr *sh = f->sh, *tab = &sh[table], *str = &sh[tab->sh_link];
    Elf64_Sym *syms = elf_read(f, tab->sh_offset, tab->sh_size);
    t->strtab = elf_read(f, str->sh_offset, str->sh_size);
    size_t n = syms ? tab->sh_size / sizeof *syms : 0;
    t->syms = malloc((n + 1) * sizeof *t->syms);
    if (!syms || !t->strtab || !t->syms) {
        free(syms);
        return false;
    }
    t->strtab_size = str->sh_size;
    for (size_t i = 0; i < n; i++) {
        const Elf64_Sym *y = &syms[i];
        int bind = ELF64_ST_BIND(y->st_info);
        if (ELF64_ST_TYPE(y->st_info) != STT_FUNC || y->st_shndx == SHN_UNDEF || y->st_name >= t->strtab_size
            || !t->strtab[y->st_name])
            continue;
        // Size 0 (hand-written assembly): to the end of its section, and
        // (below) no further than the next function.
        uint64_t size = y->st_size;
        if (size == 0 && y->st_shndx < f->shnum && sh[y->st_shndx].sh_addr + sh[y->st_shndx].sh_size > y->st_value)
            size = sh[y->st_shndx].sh_addr + sh[y->st_shndx].sh_size - y->st_value;
        t->syms[t->n_syms++] = (func_sym_t){
            .addr = y->st_value,
            .size = size,
            .name = y->st_name,
            .binding = bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2,
        };
    }
    free(syms);
    qsort_r(t->syms, t->n_syms, sizeof *t->syms, cmp_sym, t);
    size_t kept = 0;
    for (size_t i = 0; i < t->n_syms; i++) {
        if (kept && t->syms[i].addr == t->syms[kept - 1].addr)
            continue;                         // an alias: the first is the name kept
        if (kept && t->syms[kept - 1].size > t->syms[i].addr - t->syms[kept - 1].addr)
            t->syms[kept - 1].size = t->syms[i].addr - t->syms[kept - 1].addr;
        t->syms[kept++] = t->syms[i];
    }
    t->n_syms = kept;
    return true;
}

bool func_table_read(func_table_t *t, const elf_file_t *f)
{
    memset(t, 0, sizeof *t);
    uint64_t table = f->shnum;
    for (uint64_t i = 0; i < f->shnum; i++)
        if (f->sh[i].sh_type == SHT_SYMTAB || (f->sh[i].sh_type == SHT_DYNSYM && table == f->shnum))
            table = i;
    if (table == f->shnum || f->sh[table].sh_link >= f->shnum || f->sh[f->sh[table].sh_link].sh_type != SHT_STRTAB
        || f->sh[table].sh_entsize != sizeof(Elf64_Sym))
        return false;
    if (!read_symbols(t, f, table)) {
        func_table_free(t);
        return false;
    }
    t->full = f->sh[table].sh_type == SHT_SYMTAB;
    return true;
}

const char *func_table_find(const func_table_t *t, uint64_t addr, uint64_t *start)
{
    size_t lo = elf_count_at_or_below(t->syms, t->n_syms, sizeof *t->syms, offsetof(func_sym_t, addr), addr);
    if (lo == 0 || addr - t->syms[lo - 1].addr >= t->syms[lo - 1].size)
        return NULL;
    *start = t->syms[lo - 1].addr;
    return t->strtab + t->syms[lo - 1].name;
}

void func_table_free(func_table_t *t)
{
    free(t->syms);
    free(t->strtab);
    memset(t, 0, sizeof *t);
}

// --- a process's mappings ----------------------------------------------------------

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
        func_table_free(&s->images[i].funcs);
    }
    free(s->images);
    free(s->image_of);
    free(s->maps);
    free(s);
}

// Segments and functions of the file; on any failure they stay empty and
// its addresses unnamed.
static void read_image(image_t *im)
{
    im->read = true;
    elf_file_t f;
    if (!elf_open(&f, im->path))
        return;
    im->segs = malloc((f.eh.e_phnum + 1u) * sizeof *im->segs);
    for (size_t i = 0; im->segs && i < f.eh.e_phnum; i++)
        if (f.ph[i].p_type == PT_LOAD)
            im->segs[im->n_segs++] = (segment_t){ f.ph[i].p_offset, f.ph[i].p_filesz, f.ph[i].p_vaddr };
    func_table_read(&im->funcs, &f);
    elf_close(&f);
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
    uint64_t off = a - m->start + m->offset, elf = off, start;
    for (size_t i = 0; i < im->n_segs; i++) {
        const segment_t *g = &im->segs[i];
        if (off - g->offset < g->filesz) {
            elf = off - g->offset + g->vaddr;
            const char *f = func_table_find(&im->funcs, elf, &start);
            if (f)
                return strdup(f);
            break;
        }
    }
    const char *slash = strrchr(im->path, '/');
    return asprintf(&name, "[%s]+0x%llx", slash ? slash + 1 : im->path, (unsigned long long)elf + 1) < 0 ? NULL
                                                                                                       : name;
}
