// SPDX-License-Identifier: MIT
//
// elf_file.h -- what the command reads from ELF files itself (no libelf, no
// libdw, no binutils: it links libc only):
//   elf_file.c     an open file: its headers, its sections by name, its
//                  build-id, and where its separate debug file is
//   symbols.c      its function symbols: ELF address -> function name
//   dwarf_line.c   its DWARF line tables: ELF address -> source file:line
//
// An *ELF address* is an address as the file's headers and symbols give
// it (p_vaddr, st_value): what `addr2line -e FILE` takes, the same wherever
// the loader put the file. Only 64-bit little-endian files (the x86-64 the
// allocator runs on) are read; others are refused by elf_open.
#ifndef MALLET_TOOLS_ELF_FILE_H
#define MALLET_TOOLS_ELF_FILE_H

#include <elf.h>

#include "tools.h"

// --- elf_file.c -----------------------------------------------------------------

typedef struct elf_file {
    int fd;                           // open on the file
    uint64_t size;                    // its bytes
    Elf64_Ehdr eh;                    // its header
    Elf64_Phdr *ph;                   // its program headers, eh.e_phnum of them
    Elf64_Shdr *sh;                   // its section headers (NULL when it has none)
    uint64_t shnum;                   // how many
    char *names;                      // the section names (.shstrtab), NUL-terminated at its end
    uint64_t names_size;              // bytes in names
} elf_file_t;

// Open and check path, read its program and section headers. False (and f
// empty) when it is not a readable 64-bit little-endian ELF file.
bool elf_open(elf_file_t *f, const char *path);
void elf_close(elf_file_t *f);
// len bytes at file offset off, in new memory with a NUL byte after them;
// NULL when they are not all in the file (or absurdly many).
void *elf_read(const elf_file_t *f, uint64_t off, uint64_t len);
// The section called name, or NULL.
const Elf64_Shdr *elf_section(const elf_file_t *f, const char *name);
// A section's bytes as elf_read gives them; NULL when it has none in the
// file (SHT_NOBITS) or they are compressed (SHF_COMPRESSED), which we do
// not read.
void *elf_section_data(const elf_file_t *f, const Elf64_Shdr *s);
// The path of f's separate debug file into out, when one is installed:
// DIR/.build-id/xx/rest.debug for its build-id, else DIR/PATHDIR/NAME for
// its .gnu_debuglink NAME (taken only when the link's CRC matches), where
// DIR is /usr/lib/debug or $MALLET_DEBUG_DIR and PATHDIR the directory of
// path, the file f was opened from.
bool elf_debug_file(const elf_file_t *f, const char *path, char *out, size_t cap);
// In the n elements of size bytes at base, sorted by the ELF address each
// holds at byte offset `at`: how many hold one at or below addr. The last
// of those is the one whose range may hold addr.
size_t elf_count_at_or_below(const void *base, size_t n, size_t size, size_t at, uint64_t addr);

// --- symbols.c ------------------------------------------------------------------

typedef struct func_sym func_sym_t;

typedef struct func_table {
    func_sym_t *syms;                 // the functions, by address, one name per address
    size_t n_syms;                    // how many
    char *strtab;                     // their names, NUL-terminated at its end
    size_t strtab_size;               // bytes in strtab
    bool full;                        // from .symtab (every function), not .dynsym (exported ones)
} func_table_t;

// The functions of f: from .symtab, else .dynsym. False (and t empty) when
// it has neither or they cannot be read.
bool func_table_read(func_table_t *t, const elf_file_t *f);
// The name of the function holding ELF address addr, its first address in
// *start; NULL when no function holds it.
const char *func_table_find(const func_table_t *t, uint64_t addr, uint64_t *start);
void func_table_free(func_table_t *t);

// --- dwarf_line.c ---------------------------------------------------------------

typedef struct line_row line_row_t;

typedef struct line_table {
    line_row_t *rows;                 // every row of every sequence, by address
    size_t n_rows;                    // how many
    char **files;                     // source paths, directory joined; NULL where a name could not be read
    size_t n_files;                   // how many
} line_table_t;

// The line tables of f's .debug_line (DWARF versions 2 to 5). False (and t
// empty) when it has none, or compressed, or out of memory; a unit that
// cannot be read is skipped.
bool line_table_read(line_table_t *t, const elf_file_t *f);
// The source file and line of ELF address addr; false when no row holds it.
bool line_table_find(const line_table_t *t, uint64_t addr, const char **file, unsigned *line);
void line_table_free(line_table_t *t);

#endif
