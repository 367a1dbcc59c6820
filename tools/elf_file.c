// SPDX-License-Identifier: MIT
//
// elf_file.c -- an ELF file open for reading: its headers, its sections
// found by name and read whole, and the way to its separate debug file.
//
// Every read is a pread of exactly the bytes asked for, checked against
// the file's size first, so a truncated or hostile file yields "not
// there" (NULL, false) and never a read past what the file holds. Section
// bytes come back in new memory the caller frees.
//
// A separate debug file is how Debian ships debug information
// (-dbgsym, -dbg packages): the program keeps its code, a copy with the
// DWARF sections goes to /usr/lib/debug, found by the program's build-id
// (.note.gnu.build-id: .build-id/xx/rest.debug) or by the name in its
// .gnu_debuglink section, beside the program's own path under that
// directory; the link carries the CRC-32 of the debug file, which we
// check, so a stale copy is not taken for the program's.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elf_file.h"

#define MAX_READ (256u << 20)         // larger tables are not a sane ELF file's
#define DEBUG_DIR "/usr/lib/debug"    // where Debian installs separate debug files

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

size_t elf_count_at_or_below(const void *base, size_t n, size_t size, size_t at, uint64_t addr)
{
    size_t lo = 0, hi = n;                // the first element above addr is in [lo, hi]
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t key;
        memcpy(&key, (const char *)base + mid * size + at, sizeof key);
        if (key <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

// --- the separate debug file ---------------------------------------------------------

// The GNU build-id note's bytes into id; how many (0 when there is none).
static size_t build_id(const elf_file_t *f, uint8_t *id, size_t cap)
{
    const Elf64_Shdr *s = elf_section(f, ".note.gnu.build-id");
    Elf64_Nhdr *note = s ? elf_section_data(f, s) : NULL;
    size_t n = 0;
    // The note: its header, the name "GNU\0" (4 bytes, already aligned), the id.
    if (note && s->sh_size >= sizeof *note + 4 && note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4
        && !memcmp(note + 1, "GNU", 4) && note->n_descsz <= cap && note->n_descsz <= s->sh_size - sizeof *note - 4) {
        n = note->n_descsz;
        memcpy(id, (char *)(note + 1) + 4, n);
    }
    free(note);
    return n;
}

// The CRC-32 (IEEE 802.3, reflected, as zlib computes it) of the whole
// file at path, which .gnu_debuglink records; false when it cannot be read.
static bool file_crc32(const char *path, uint32_t *out)
{
    static uint32_t table[256];
    if (!table[1]) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = (c >> 1) ^ (0xedb88320u & -(c & 1));
            table[i] = c;
        }
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    uint32_t crc = ~0u;
    unsigned char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++)
            crc = (crc >> 8) ^ table[(crc ^ buf[i]) & 0xff];
    close(fd);
    *out = ~crc;
    return n == 0;
}

bool elf_debug_file(const elf_file_t *f, const char *path, char *out, size_t cap)
{
    const char *dir = getenv("MALLET_DEBUG_DIR");
    if (!dir || !*dir)
        dir = DEBUG_DIR;
    struct stat st;
    uint8_t id[64];
    size_t n = build_id(f, id, sizeof id);
    if (n >= 2) {
        int at = snprintf(out, cap, "%s/.build-id/%02x/", dir, id[0]);
        for (size_t i = 1; i < n && at > 0 && (size_t)at < cap; i++)
            at += snprintf(out + at, cap - (size_t)at, "%02x", id[i]);
        if (at > 0 && (size_t)at < cap && (size_t)snprintf(out + at, cap - (size_t)at, ".debug") < cap - (size_t)at
            && stat(out, &st) == 0)
            return true;
    }
    // .gnu_debuglink: the file's name, NUL, padding to 4 bytes, the CRC.
    const Elf64_Shdr *s = elf_section(f, ".gnu_debuglink");
    char *link = s ? elf_section_data(f, s) : NULL;
    size_t len = link ? strlen(link) : 0;
    size_t crc_at = (len + 4) & ~(size_t)3;
    const char *slash = strrchr(path, '/');
    bool found = false;
    uint32_t want, got;
    if (len && !strchr(link, '/') && crc_at + 4 <= s->sh_size && path[0] == '/') {
        memcpy(&want, link + crc_at, sizeof want);
        found = (size_t)snprintf(out, cap, "%s%.*s/%s", dir, (int)(slash - path), path, link) < cap
                && file_crc32(out, &got) && got == want;
    }
    free(link);
    return found;
}
