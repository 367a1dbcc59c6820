// SPDX-License-Identifier: MIT
//
// elf_file.h -- what the command reads from ELF files itself (no libelf, no
// libdw, no binutils: it links libc only):
//   elf_file.c     an open file: its headers, its sections by name
//   symbols.c      its function symbols: ELF address -> function name
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

// --- symbols.c ------------------------------------------------------------------

typedef struct func_sym func_sym_t;

typedef struct func_table {
    func_sym_t *syms;                 // the functions, by address, one name per address
    size_t n_syms;                    // how many
    char *strtab;                     // their names, NUL-terminated at its end
    size_t strtab_size;               // bytes in strtab
} func_table_t;

// The functions of f: from .symtab, else .dynsym. False (and t empty) when
// it has neither or they cannot be read.
bool func_table_read(func_table_t *t, const elf_file_t *f);
// The name of the function holding ELF address addr, its first address in
// *start; NULL when no function holds it.
const char *func_table_find(const func_table_t *t, uint64_t addr, uint64_t *start);
void func_table_free(func_table_t *t);

#endif
