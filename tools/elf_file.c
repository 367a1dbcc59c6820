// SPDX-License-Identifier: MIT
//
// elf_file.c -- an ELF file open for reading: its headers, its sections
// found by name and read whole.
//
// Every read is a pread of exactly the bytes asked for, checked against
// the file's size first, so a truncated or hostile file yields "not
// there" (NULL, false) and never a read past what the file holds. Section
// bytes come back in new memory the caller frees.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elf_file.h"

#define MAX_READ (256u << 20)         // larger tables are not a sane ELF file's

bool elf_open(elf_file_t *f, const char *path)
{
    memset(f, 0, sizeof *f);
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (f->fd < 0)
        return false;
    Elf64_Ehdr *eh = &f->eh;
    if (fstat(f->fd, &st) != 0 || pread(f->fd, eh, sizeof *eh, 0) != (ssize_t)sizeof *eh
        || memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64
        || eh->e_ident[EI_DATA] != ELFDATA2LSB || (eh->e_phnum && eh->e_phentsize != sizeof *f->ph))
        goto fail;
    f->size = (uint64_t)st.st_size;
    f->ph = elf_read(f, eh->e_phoff, (uint64_t)eh->e_phnum * sizeof *f->ph);
    if (!f->ph)
        goto fail;
    // Section headers: with 0xff00 sections or more, e_shnum is 0 and the
    // count is the first header's sh_size (the names' index its sh_link).
    Elf64_Shdr first;
    if (eh->e_shoff == 0 || eh->e_shentsize != sizeof first
        || pread(f->fd, &first, sizeof first, (off_t)eh->e_shoff) != (ssize_t)sizeof first)
        return true;                  // no sections: the segments are all there is
    f->shnum = eh->e_shnum ? eh->e_shnum : first.sh_size;
    if (f->shnum > MAX_READ / sizeof *f->sh || !(f->sh = elf_read(f, eh->e_shoff, f->shnum * sizeof *f->sh))) {
        f->shnum = 0;
        return true;
    }
    uint64_t names = eh->e_shstrndx == SHN_XINDEX ? first.sh_link : eh->e_shstrndx;
    if (names < f->shnum && f->sh[names].sh_type == SHT_STRTAB) {
        f->names = elf_section_data(f, &f->sh[names]);
        f->names_size = f->names ? f->sh[names].sh_size : 0;
    }
    return true;
fail:
    elf_close(f);
    return false;
}

void elf_close(elf_file_t *f)
{
    if (f->fd >= 0)
        close(f->fd);
    free(f->ph);
    free(f->sh);
    free(f->names);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

void *elf_read(const elf_file_t *f, uint64_t off, uint64_t len)
{
    if (off > f->size || len > f->size - off || len > MAX_READ)
        return NULL;
    char *buf = malloc(len + 1);
    if (!buf)
        return NULL;
    for (uint64_t got = 0; got < len;) {
        ssize_t n = pread(f->fd, buf + got, len - got, (off_t)(off + got));
        if (n <= 0) {
            free(buf);
            return NULL;
        }
        got += (uint64_t)n;
    }
    buf[len] = 0;
    return buf;
}

const Elf64_Shdr *elf_section(const elf_file_t *f, const char *name)
{
    for (uint64_t i = 0; f->names && i < f->shnum; i++)
        if (f->sh[i].sh_name < f->names_size && !strcmp(f->names + f->sh[i].sh_name, name))
            return &f->sh[i];
    return NULL;
}

void *elf_section_data(const elf_file_t *f, const Elf64_Shdr *s)
{
    if (s->sh_type == SHT_NOBITS || (s->sh_flags & SHF_COMPRESSED))
        return NULL;
    return elf_read(f, s->sh_offset, s->sh_size);
}
