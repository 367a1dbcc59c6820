// SPDX-License-Identifier: MIT
//
// dwarf_line.c -- ELF address -> source file and line, from the DWARF line
// tables in a file's .debug_line section (versions 2 to 5), read by our own
// code.
//
// .debug_line holds one unit per compilation unit: a header (the encoding's
// constants, then the directories and the file names), then the line
// program, bytecode a small state machine runs to produce *rows*: address,
// file, line. A row holds from its address to the next row's; a row marked
// end_sequence closes a *sequence*, a run of contiguous code. We run every
// unit's program once, keep every row, and sort them by address; a lookup
// is a binary search for the last row at or below the address. Of several
// rows of a sequence at one address only the last is kept (the earlier
// ones hold no bytes), and a sequence's end sorts before a row that starts
// another sequence at the same address.
//
// The versions differ in their headers. 2 to 4 list directories and files
// as strings, files numbered from 1, directory 0 the compilation's own
// (which the line table does not name: such a file keeps the name it has);
// 4 adds max_ops_per_inst. 5 describes its entries with (content, form)
// pairs, its strings may be offsets into .debug_line_str or .debug_str,
// both lists count from 0, and directory 0 is the compilation directory,
// which relative directories are joined to. A unit this cannot read (a
// form it does not know, another version) is skipped: its rows are lost,
// the other units serve.
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "elf_file.h"

// The DWARF numbers we read (DWARF 5, section 7.22 and 7.5.6).
enum {
    DW_LNS_copy = 1,
    DW_LNS_advance_pc = 2,
    DW_LNS_advance_line = 3,
    DW_LNS_set_file = 4,
    DW_LNS_const_add_pc = 8,
    DW_LNS_fixed_advance_pc = 9,
    DW_LNE_end_sequence = 1,
    DW_LNE_set_address = 2,
    DW_LNE_define_file = 3,
    DW_LNE_set_discriminator = 4,
    DW_LNCT_path = 1,
    DW_LNCT_directory_index = 2,
    DW_FORM_data2 = 0x05,
    DW_FORM_data4 = 0x06,
    DW_FORM_data8 = 0x07,
    DW_FORM_string = 0x08,
    DW_FORM_block = 0x09,
    DW_FORM_data1 = 0x0b,
    DW_FORM_strp = 0x0e,
    DW_FORM_udata = 0x0f,
    DW_FORM_data16 = 0x1e,
    DW_FORM_line_strp = 0x1f,
};

#define NO_FILE UINT32_MAX            // a row whose file number names no file

struct line_row {
    uint64_t addr;                    // the first address the row holds
    uint32_t file;                    // index into line_table_t.files, or NO_FILE
    uint32_t line;                    // source line; 0 for code the compiler made up
    bool end;                         // closes its sequence: no line from addr on
};

// Bytes being read: every read checks the end, and a read past it marks
// the cursor bad and gives 0 (or NULL), so the caller checks once, later.
typedef struct cursor {
    const uint8_t *p, *end;           // the next byte, and the end of what may be read
    bool bad;                         // a read went past end
} cursor_t;

typedef struct unit {
    int version;                      // 2 to 5
    int offset_size;                  // 4, or 8 in 64-bit DWARF
    unsigned min_inst;                // minimum_instruction_length
    unsigned max_ops;                 // maximum_operations_per_instruction (1 before version 4)
    int line_base;                    // special opcodes: line advance = line_base + adj % line_range
    unsigned line_range;              // and address advance = adj / line_range
    unsigned opcode_base;             // the first special opcode
    const uint8_t *std_lengths;       // operands of standard opcode n: std_lengths[n - 1]
    const char **dirs;                // the directories (NULL where unnamed or unreadable)
    size_t n_dirs, dirs_cap;          // how many, and room for
    size_t file_base;                 // its first file in line_table_t.files
} unit_t;

typedef struct reader {
    line_table_t *t;                  // the table being filled
    size_t rows_cap, files_cap;       // room in t->rows and t->files
    const char *line_str, *str;       // .debug_line_str and .debug_str (NULL when absent or compressed)
    uint64_t line_str_size, str_size; // their bytes
    bool oom;                         // out of memory: the table is given up
} reader_t;

// --- reading bytes -------------------------------------------------------------------

static bool has(cursor_t *c, uint64_t n)
{
    if (!c->bad && n <= (uint64_t)(c->end - c->p))
        return true;
    c->bad = true;
    c->p = c->end;
    return false;
}

// n bytes (n <= 8), little-endian.
static uint64_t fixed(cursor_t *c, unsigned n)
{
    uint64_t v = 0;
    if (!has(c, n))
        return 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)c->p[i] << (8 * i);
    c->p += n;
    return v;
}

static void skip(cursor_t *c, uint64_t n)
{
    if (has(c, n))
        c->p += n;
}

// An unsigned LEB128 (bits past 64 are dropped).
static uint64_t uleb(cursor_t *c)
{
    uint64_t v = 0;
    for (unsigned shift = 0; has(c, 1); shift += 7) {
        uint8_t b = *c->p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    return 0;
}

// A signed LEB128.
static int64_t sleb(cursor_t *c)
{
    uint64_t v = 0;
    for (unsigned shift = 0; has(c, 1);) {
        uint8_t b = *c->p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80))
            return (int64_t)(shift < 64 && (b & 0x40) ? v | ~0ull << shift : v);
    }
    return 0;
}

// A NUL-terminated string in the bytes, or NULL.
static const char *cstr(cursor_t *c)
{
    const uint8_t *nul = has(c, 1) ? memchr(c->p, 0, (size_t)(c->end - c->p)) : NULL;
    if (!nul) {
        has(c, (uint64_t)(c->end - c->p) + 1);
        return NULL;
    }
    const char *s = (const char *)c->p;
    c->p = nul + 1;
    return s;
}

// The string at off in a string section, or NULL.
static const char *section_str(const char *sec, uint64_t size, uint64_t off)
{
    return sec && off < size ? sec + off : NULL;
}

// --- growing the table ---------------------------------------------------------------

// Room for one more of size bytes at *p, which holds n with room for *cap.
static bool room(reader_t *r, void **p, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return true;
    size_t want = *cap ? 2 * *cap : 64;
    void *q = reallocarray(*p, want, size);
    if (!q) {
        r->oom = true;
        return false;
    }
    *p = q;
    *cap = want;
    return true;
}

// name, joined to its directory: as it is when absolute; else under dir
// (and dir under base, the compilation directory, when dir is relative).
static char *join(const char *base, const char *dir, const char *name)
{
    const char *parts[3];
    int n = 0;
    if (name[0] != '/' && dir && *dir) {
        if (dir[0] != '/' && base && *base)
            parts[n++] = base;
        parts[n++] = dir;
    }
    parts[n++] = name;
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(parts[i]) + 1;
    char *path = malloc(len), *at = path;
    for (int i = 0; path && i < n; i++) {
        size_t k = strlen(parts[i]);
        memcpy(at, parts[i], k);
        at += k;
        if (i + 1 < n && k && parts[i][k - 1] != '/')
            *at++ = '/';
    }
    if (path)
        *at = 0;
    return path;
}

// A file of the unit (named in its header or by define_file): name in
// directory number dir. A file whose name cannot be read stays NULL.
static void add_file(reader_t *r, unit_t *u, const char *name, uint64_t dir)
{
    line_table_t *t = r->t;
    if (!room(r, (void **)&t->files, t->n_files, &r->files_cap, sizeof *t->files))
        return;
    char *path = NULL;
    if (name) {
        path = join(dir && u->n_dirs ? u->dirs[0] : NULL, dir < u->n_dirs ? u->dirs[dir] : NULL, name);
        r->oom |= !path;
    }
    t->files[t->n_files++] = path;
}

static void add_dir(reader_t *r, unit_t *u, const char *dir)
{
    if (room(r, (void **)&u->dirs, u->n_dirs, &u->dirs_cap, sizeof *u->dirs))
        u->dirs[u->n_dirs++] = dir;
}

// --- the header's directories and files ----------------------------------------------

// Versions 2 to 4: strings, each list ending with an empty one.
static bool read_names_v2(reader_t *r, cursor_t *c, unit_t *u)
{
    add_dir(r, u, NULL);                  // 0: the compilation directory, not named here
    const char *s;
    while ((s = cstr(c)) && *s)
        add_dir(r, u, s);
    while (!r->oom && (s = cstr(c)) && *s) {
        uint64_t dir = uleb(c);
        uleb(c);                          // modification time
        uleb(c);                          // length
        add_file(r, u, s, dir);
    }
    return !c->bad;
}

// One field of an entry in form: its string in *str or its number in *num.
static bool read_form(const reader_t *r, cursor_t *c, const unit_t *u, uint64_t form, const char **str,
                      uint64_t *num)
{
    switch (form) {
    case DW_FORM_string: *str = cstr(c); break;
    case DW_FORM_line_strp: *str = section_str(r->line_str, r->line_str_size, fixed(c, u->offset_size)); break;
    case DW_FORM_strp: *str = section_str(r->str, r->str_size, fixed(c, u->offset_size)); break;
    case DW_FORM_udata: *num = uleb(c); break;
    case DW_FORM_data1: *num = fixed(c, 1); break;
    case DW_FORM_data2: *num = fixed(c, 2); break;
    case DW_FORM_data4: *num = fixed(c, 4); break;
    case DW_FORM_data8: *num = fixed(c, 8); break;
    case DW_FORM_data16: skip(c, 16); break;          // an MD5
    case DW_FORM_block: skip(c, uleb(c)); break;
    default: return false;
    }
    return !c->bad;
}

// Version 5: a list of entries, each described by the format before it;
// the directories when files is false, else the files.
static bool read_entries_v5(reader_t *r, cursor_t *c, unit_t *u, bool files)
{
    uint64_t content[255], form[255];
    unsigned n_format = (unsigned)fixed(c, 1);
    for (unsigned i = 0; i < n_format; i++) {
        content[i] = uleb(c);
        form[i] = uleb(c);
    }
    uint64_t count = uleb(c);
    // Every entry takes a byte at least, so a count the bytes cannot hold is a lie.
    if (c->bad || (count && !n_format) || count > (uint64_t)(c->end - c->p))
        return false;
    for (uint64_t k = 0; k < count && !r->oom; k++) {
        const char *path = NULL;
        uint64_t dir = 0;
        for (unsigned i = 0; i < n_format; i++) {
            const char *str = NULL;
            uint64_t num = 0;
            if (!read_form(r, c, u, form[i], &str, &num))
                return false;
            if (content[i] == DW_LNCT_path)
                path = str;
            else if (content[i] == DW_LNCT_directory_index)
                dir = num;
        }
        if (files)
            add_file(r, u, path, dir);
        else
            add_dir(r, u, path);
    }
    return true;
}

// --- the line program --------------------------------------------------------------

typedef struct state {
    uint64_t addr;                    // the address register
    uint64_t op_index;                // the operation in a VLIW bundle (0 on x86-64)
    uint64_t file;                    // the file register, as the unit numbers files
    uint64_t line;                    // the line register, wrapping (a signed value, read as one)
    size_t first_row;                 // the sequence's first row in line_table_t.rows
} state_t;

static void advance(state_t *s, const unit_t *u, uint64_t ops)
{
    s->addr += u->min_inst * ((s->op_index + ops) / u->max_ops);
    s->op_index = (s->op_index + ops) % u->max_ops;
}

static void emit(reader_t *r, const unit_t *u, const state_t *s, bool end)
{
    line_table_t *t = r->t;
    // A row at the address of the one before it in the sequence replaces it.
    if (t->n_rows > s->first_row && t->rows[t->n_rows - 1].addr == s->addr)
        t->n_rows--;
    if (!room(r, (void **)&t->rows, t->n_rows, &r->rows_cap, sizeof *t->rows))
        return;
    uint64_t first = u->version >= 5 ? 0 : 1, n_files = t->n_files - u->file_base;
    t->rows[t->n_rows] = (line_row_t){
        .addr = s->addr,
        .file = s->file >= first && s->file - first < n_files ? (uint32_t)(u->file_base + s->file - first) : NO_FILE,
        .line = (int64_t)s->line < 0 ? 0 : s->line > UINT32_MAX ? UINT32_MAX : (uint32_t)s->line,
        .end = end,
    };
    t->n_rows++;
}

static void run_program(reader_t *r, cursor_t *c, unit_t *u)
{
    const state_t initial = { .file = 1, .line = 1 };
    state_t s = initial;
    s.first_row = r->t->n_rows;
    while (!r->oom && !c->bad && c->p < c->end) {
        unsigned op = (unsigned)fixed(c, 1);
        if (op >= u->opcode_base) {           // special: advance both, make a row
            unsigned adj = op - u->opcode_base;
            advance(&s, u, adj / u->line_range);
            s.line += (uint64_t)(u->line_base + (int)(adj % u->line_range));
            emit(r, u, &s, false);
        } else if (op == 0) {                 // extended: length, sub-opcode, operands
            uint64_t len = uleb(c);
            if (len == 0 || !has(c, len))
                return;
            cursor_t body = { c->p, c->p + len, false };
            c->p += len;
            switch (fixed(&body, 1)) {
            case DW_LNE_end_sequence:
                emit(r, u, &s, true);
                s = initial;
                s.first_row = r->t->n_rows;
                break;
            case DW_LNE_set_address:
                s.addr = fixed(&body, len - 1 < 8 ? (unsigned)len - 1 : 8);
                s.op_index = 0;
                break;
            case DW_LNE_define_file: {
                const char *name = cstr(&body);
                uint64_t dir = uleb(&body);
                if (name)
                    add_file(r, u, name, dir);
                break;
            }
            case DW_LNE_set_discriminator:    // which block of a line: rows do not need it
            default:                          // another vendor's: its length skips it
                break;
            }
        } else {
            switch (op) {
            case DW_LNS_copy: emit(r, u, &s, false); break;
            case DW_LNS_advance_pc: advance(&s, u, uleb(c)); break;
            case DW_LNS_advance_line: s.line += (uint64_t)sleb(c); break;
            case DW_LNS_set_file: s.file = uleb(c); break;
            case DW_LNS_const_add_pc: advance(&s, u, (255 - u->opcode_base) / u->line_range); break;
            case DW_LNS_fixed_advance_pc:
                s.addr += fixed(c, 2);
                s.op_index = 0;
                break;
            default:
                // set_column, negate_stmt, set_basic_block, set_prologue_end,
                // set_epilogue_begin, set_isa, and opcodes of later versions:
                // nothing a row needs; the header tells how many LEB128
                // operands to step over.
                for (unsigned i = 0; i < u->std_lengths[op - 1]; i++)
                    uleb(c);
            }
        }
    }
}

// --- units -----------------------------------------------------------------------------

// One unit, from its version on (c ends where the unit does).
static void read_unit(reader_t *r, cursor_t *c, int offset_size)
{
    unit_t u = { .offset_size = offset_size, .file_base = r->t->n_files };
    u.version = (int)fixed(c, 2);
    if (u.version < 2 || u.version > 5)
        return;
    if (u.version >= 5)
        skip(c, 2);                           // address_size, segment_selector_size
    uint64_t header_length = fixed(c, (unsigned)offset_size);
    if (!has(c, header_length))
        return;
    cursor_t program = { c->p + header_length, c->end, false };
    c->end = c->p + header_length;
    u.min_inst = (unsigned)fixed(c, 1);
    u.max_ops = u.version >= 4 ? (unsigned)fixed(c, 1) : 1;
    skip(c, 1);                               // default_is_stmt: every row serves a lookup
    u.line_base = (int8_t)fixed(c, 1);
    u.line_range = (unsigned)fixed(c, 1);
    u.opcode_base = (unsigned)fixed(c, 1);
    u.std_lengths = c->p;
    skip(c, u.opcode_base ? u.opcode_base - 1 : 0);
    if (c->bad || !u.max_ops || !u.line_range || !u.opcode_base)
        return;
    bool names = u.version >= 5 ? read_entries_v5(r, c, &u, false) && read_entries_v5(r, c, &u, true)
                                : read_names_v2(r, c, &u);
    if (names && !r->oom) {
        run_program(r, &program, &u);
    } else {
        while (r->t->n_files > u.file_base)   // the files of a unit given up
            free(r->t->files[--r->t->n_files]);
    }
    free(u.dirs);
}

static int cmp_row(const void *a, const void *b)
{
    const line_row_t *x = a, *y = b;
    if (x->addr != y->addr)
        return (x->addr > y->addr) - (x->addr < y->addr);
    return y->end - x->end;
}

// A string section's bytes (its size in *size), when it is there to read.
static void *string_section(const elf_file_t *f, const char *name, uint64_t *size)
{
    const Elf64_Shdr *s = elf_section(f, name);
    void *data = s ? elf_section_data(f, s) : NULL;
    *size = data ? s->sh_size : 0;
    return data;
}

bool line_table_read(line_table_t *t, const elf_file_t *f)
{
    memset(t, 0, sizeof *t);
    const Elf64_Shdr *s = elf_section(f, ".debug_line");
    uint8_t *data = s ? elf_section_data(f, s) : NULL;
    if (!data)
        return false;
    reader_t r = { .t = t };
    char *line_str = string_section(f, ".debug_line_str", &r.line_str_size);
    char *str = string_section(f, ".debug_str", &r.str_size);
    r.line_str = line_str;
    r.str = str;
    cursor_t c = { data, data + s->sh_size, false };
    // Each unit: its length (4 bytes, or 0xffffffff and 8 in 64-bit DWARF), then the rest.
    while (!r.oom && c.end - c.p >= 4) {
        int offset_size = 4;
        uint64_t len = fixed(&c, 4);
        if (len == 0xffffffff) {
            len = fixed(&c, 8);
            offset_size = 8;
        } else if (len >= 0xfffffff0) {
            break;                            // reserved: nothing after it can be found
        }
        if (!has(&c, len))
            break;
        cursor_t unit = { c.p, c.p + len, false };
        c.p += len;
        read_unit(&r, &unit, offset_size);
    }
    free(data);
    free(line_str);
    free(str);
    if (r.oom) {
        line_table_free(t);
        return false;
    }
    qsort(t->rows, t->n_rows, sizeof *t->rows, cmp_row);
    return true;
}

bool line_table_find(const line_table_t *t, uint64_t addr, const char **file, unsigned *line)
{
    size_t lo = elf_count_at_or_below(t->rows, t->n_rows, sizeof *t->rows, offsetof(line_row_t, addr), addr);
    if (lo == 0)
        return false;
    const line_row_t *row = &t->rows[lo - 1];
    if (row->end || !row->line || row->file == NO_FILE || !t->files[row->file])
        return false;
    *file = t->files[row->file];
    *line = row->line;
    return true;
}

void line_table_free(line_table_t *t)
{
    for (size_t i = 0; i < t->n_files; i++)
        free(t->files[i]);
    free(t->files);
    free(t->rows);
    memset(t, 0, sizeof *t);
}
