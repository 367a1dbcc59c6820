// SPDX-License-Identifier: MIT
//
// prof_unwind.c -- the stack of a sample, fast: the unwind rule of each
// return address is read once from the .eh_frame rules and kept.
//
// libgcc's unwinder reads and runs a function's DWARF call-frame program at
// every frame of every stack, about 1.5 k instructions a frame, which is
// most of what a sample costs. On x86-64 the rules a compiler writes for
// ordinary code say little: the caller's stack pointer (the CFA) is rsp or
// rbp plus a constant, the return address sits just below it, and rbp is
// kept or saved at a constant offset from it. This file runs the program
// once per return address (finding the FDE through libgcc's
// _Unwind_Find_FDE), keeps the answer in a table, and then a frame costs a
// lookup and two loads.
//
// Anything else -- a CFA from another register or an expression, a return
// address or rbp kept elsewhere, a signal frame, an augmentation this does
// not know -- makes the whole stack go to libgcc's unwinder instead (the
// caller's fallback), so a stack is never guessed. tests/test_lib_prof.c
// compares the two unwinders on the same stacks, through libc's qsort too.
//
// The table is shared by all threads without a lock: an entry's key is
// written last and read before and after its rule, so a reader sees a whole
// entry or none. It lives in memory mapped here; nothing calls malloc.
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "os/os.h"
#include "prof.h"

#if defined(__x86_64__)

// What _Unwind_Find_FDE fills in (libgcc's unwind-dw2-fde.h).
struct dwarf_eh_bases {
    void *tbase;       // text base (unused on x86-64)
    void *dbase;       // data base (unused on x86-64)
    void *func;        // start of the function the FDE covers
};
extern const void *_Unwind_Find_FDE(void *pc, struct dwarf_eh_bases *bases);

// DWARF register numbers on x86-64.
enum { REG_RBP = 6, REG_RSP = 7, REG_RA = 16 };

// A rule, packed in one word: CFA = (rbp or rsp) + cfa_off; the return
// address at CFA - 8; rbp unchanged, or loaded from CFA + rbp_off.
typedef union rule {
    uint64_t word;
    struct {
        int32_t cfa_off;    // CFA offset from the base register
        int16_t rbp_off;    // where rbp is saved, from the CFA (when rbp_saved)
        uint8_t flags;      // RULE_*
        uint8_t pad;
    } r;
} rule_t;

#define RULE_KNOWN     1    // the entry holds a rule (a word of 0 is "not looked up")
#define RULE_CFA_RBP   2    // the CFA is rbp-based (else rsp-based)
#define RULE_RBP_SAVED 4    // rbp is saved at CFA + rbp_off
#define RULE_END       8    // the outermost frame: no caller
#define RULE_NONE      16   // not expressible here: use libgcc

typedef struct entry {
    uintptr_t pc;           // the address looked up (written last; 0: empty)
    uint64_t rule;          // its rule_t
} entry_t;

#define TABLE_SLOTS 16384   // a power of two; 256 KiB
static entry_t *table;      // mapped at the first use

// --- reading the .eh_frame records -----------------------------------------------

// The records hold their numbers unaligned.
static uint16_t load16(const uint8_t *p)
{
    uint16_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

static uint32_t load32(const uint8_t *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

static uint64_t uleb(const uint8_t **p)
{
    uint64_t v = 0;
    unsigned shift = 0;
    uint8_t b;
    do {
        b = *(*p)++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
    } while (b & 0x80);
    return v;
}

static int64_t sleb(const uint8_t **p)
{
    int64_t v = 0;
    unsigned shift = 0;
    uint8_t b;
    do {
        b = *(*p)++;
        if (shift < 64)
            v |= (int64_t)(b & 0x7f) << shift;
        shift += 7;
    } while (b & 0x80);
    if (shift < 64 && (b & 0x40))
        v |= -((int64_t)1 << shift);
    return v;
}

// Bytes of a pointer in encoding enc (DW_EH_PE_*); -1 when variable or unknown.
static int enc_size(uint8_t enc)
{
    switch (enc & 0x0f) {
    case 0x00: return 8;    // absptr
    case 0x02: case 0x0a: return 2;
    case 0x03: case 0x0b: return 4;
    case 0x04: case 0x0c: return 8;
    default: return -1;
    }
}

typedef struct cie_info {
    uint64_t code_align;    // code alignment factor
    int64_t data_align;     // data alignment factor
    uint8_t fde_enc;        // encoding of the FDE's pc_begin and pc_range
    bool aug_z;             // the FDE has augmentation data to skip
    const uint8_t *insn;    // initial instructions
    const uint8_t *end;     // their end
} cie_info_t;

static bool read_cie(const uint8_t *cie, cie_info_t *ci)
{
    uint32_t len = load32(cie);
    if (len == 0 || len == 0xffffffff)
        return false;
    const uint8_t *p = cie + 8, *end = cie + 4 + len;   // after length and id
    uint8_t version = *p++;
    const char *aug = (const char *)p;
    while (*p)
        p++;
    p++;
    if (version >= 4)
        p += 2;             // address and segment sizes
    ci->code_align = uleb(&p);
    ci->data_align = sleb(&p);
    uint64_t ra = version == 1 ? *p++ : uleb(&p);
    if (ra != REG_RA)
        return false;
    ci->fde_enc = 0;
    ci->aug_z = aug[0] == 'z';
    if (ci->aug_z) {
        uint64_t n = uleb(&p);
        const uint8_t *q = p;
        p += n;
        for (const char *a = aug + 1; *a; a++) {
            if (*a == 'R') {
                ci->fde_enc = *q++;
            } else if (*a == 'L') {
                q++;
            } else if (*a == 'P') {
                int s = enc_size(*q);
                if (s < 0)
                    return false;
                q += 1 + s;
            } else {
                return false;   // 'S' (a signal frame) and anything unknown
            }
        }
    } else if (aug[0] != 0) {
        return false;
    }
    ci->insn = p;
    ci->end = end;
    return true;
}

// --- running the call-frame program -------------------------------------------------

typedef struct cfa_state {
    uint8_t cfa_reg;        // REG_RSP or REG_RBP (anything else: unsupported)
    int64_t cfa_off;        // CFA offset
    int8_t rbp_how;         // 0: unchanged, 1: saved at CFA + rbp_off, -1: unsupported
    int64_t rbp_off;        // (rbp_how 1)
    int8_t ra_how;          // 1: at CFA + ra_off, 0: undefined (end), -1: unsupported
    int64_t ra_off;         // (ra_how 1)
} cfa_state_t;

#define STATE_STACK 8

// Run insn..end from state *s up to the row that covers target (code
// addresses from loc); false when an instruction is not supported.
static bool run_cfa(const uint8_t *p, const uint8_t *end, const cie_info_t *ci, uintptr_t loc,
                    uintptr_t target, cfa_state_t *s, const cfa_state_t *initial)
{
    cfa_state_t stack[STATE_STACK];
    int depth = 0;
    while (p < end) {
        uint8_t op = *p++;
        uint64_t reg;
        int64_t off;
        switch (op >> 6) {
        case 1:             // advance_loc
            loc += (op & 0x3f) * ci->code_align;
            if (loc > target)
                return true;
            continue;
        case 2:             // offset
            reg = op & 0x3f;
            off = (int64_t)uleb(&p) * ci->data_align;
            goto set_offset;
        case 3:             // restore
            reg = op & 0x3f;
            goto restore;
        }
        switch (op) {
        case 0x00:          // nop
            break;
        case 0x02:          // advance_loc1
            loc += *p++ * ci->code_align;
            if (loc > target)
                return true;
            break;
        case 0x03:          // advance_loc2
            loc += load16(p) * ci->code_align;
            p += 2;
            if (loc > target)
                return true;
            break;
        case 0x04:          // advance_loc4
            loc += load32(p) * ci->code_align;
            p += 4;
            if (loc > target)
                return true;
            break;
        case 0x05:          // offset_extended
            reg = uleb(&p);
            off = (int64_t)uleb(&p) * ci->data_align;
            goto set_offset;
        case 0x11:          // offset_extended_sf
            reg = uleb(&p);
            off = sleb(&p) * ci->data_align;
            goto set_offset;
        case 0x06:          // restore_extended
            reg = uleb(&p);
            goto restore;
        case 0x07:          // undefined
            reg = uleb(&p);
            if (reg == REG_RA)
                s->ra_how = 0;
            else if (reg == REG_RBP)
                s->rbp_how = -1;
            break;
        case 0x08:          // same_value
            reg = uleb(&p);
            if (reg == REG_RBP)
                s->rbp_how = 0;
            else if (reg == REG_RA)
                s->ra_how = -1;
            break;
        case 0x09:          // register
            reg = uleb(&p);
            uleb(&p);
            if (reg == REG_RBP || reg == REG_RA || reg == REG_RSP)
                return false;
            break;
        case 0x0a:          // remember_state
            if (depth == STATE_STACK)
                return false;
            stack[depth++] = *s;
            break;
        case 0x0b:          // restore_state
            if (depth == 0)
                return false;
            *s = stack[--depth];
            break;
        case 0x0c:          // def_cfa
            s->cfa_reg = (uint8_t)uleb(&p);
            s->cfa_off = (int64_t)uleb(&p);
            break;
        case 0x12:          // def_cfa_sf
            s->cfa_reg = (uint8_t)uleb(&p);
            s->cfa_off = sleb(&p) * ci->data_align;
            break;
        case 0x0d:          // def_cfa_register
            s->cfa_reg = (uint8_t)uleb(&p);
            break;
        case 0x0e:          // def_cfa_offset
            s->cfa_off = (int64_t)uleb(&p);
            break;
        case 0x13:          // def_cfa_offset_sf
            s->cfa_off = sleb(&p) * ci->data_align;
            break;
        case 0x10:          // expression
        case 0x16:          // val_expression
            reg = uleb(&p);
            p += uleb(&p);
            if (reg == REG_RBP || reg == REG_RA || reg == REG_RSP)
                return false;
            break;
        case 0x14:          // val_offset
            reg = uleb(&p);
            uleb(&p);
            if (reg == REG_RBP || reg == REG_RA || reg == REG_RSP)
                return false;
            break;
        case 0x15:          // val_offset_sf
            reg = uleb(&p);
            sleb(&p);
            if (reg == REG_RBP || reg == REG_RA || reg == REG_RSP)
                return false;
            break;
        case 0x2e:          // GNU_args_size
            uleb(&p);
            break;
        default:            // set_loc, def_cfa_expression, and the rest
            return false;
        }
        continue;
set_offset:
        if (reg == REG_RBP) {
            s->rbp_how = 1;
            s->rbp_off = off;
        } else if (reg == REG_RA) {
            s->ra_how = 1;
            s->ra_off = off;
        } else if (reg == REG_RSP) {
            return false;
        }
        continue;
restore:
        if (initial == NULL)
            return false;   // restore in the CIE's own program
        if (reg == REG_RBP) {
            s->rbp_how = initial->rbp_how;
            s->rbp_off = initial->rbp_off;
        } else if (reg == REG_RA) {
            s->ra_how = initial->ra_how;
            s->ra_off = initial->ra_off;
        }
    }
    return true;
}

// The rule for code address pc, from its FDE.
static rule_t rule_of(uintptr_t pc)
{
    rule_t none = { .r = { .flags = RULE_KNOWN | RULE_NONE } };
    struct dwarf_eh_bases bases;
    const uint8_t *fde = _Unwind_Find_FDE((void *)pc, &bases);
    if (fde == NULL)
        return (rule_t){ .r = { .flags = RULE_KNOWN | RULE_END } };   // as libgcc: the stack ends
    uint32_t len = load32(fde);
    if (len == 0xffffffff)
        return none;
    const uint8_t *cie = fde + 4 - (int32_t)load32(fde + 4);
    cie_info_t ci;
    if (!read_cie(cie, &ci))
        return none;
    int s = enc_size(ci.fde_enc);
    if (s < 0)
        return none;
    const uint8_t *p = fde + 8 + 2 * s, *end = fde + 4 + len;
    if (ci.aug_z)
        p += uleb(&p);
    cfa_state_t st = { .cfa_reg = REG_RSP, .rbp_how = 0, .ra_how = -1 };
    if (!run_cfa(ci.insn, ci.end, &ci, 0, UINTPTR_MAX, &st, NULL))
        return none;
    cfa_state_t initial = st;
    if (!run_cfa(p, end, &ci, (uintptr_t)bases.func, pc, &st, &initial))
        return none;
    if (st.ra_how == 0)
        return (rule_t){ .r = { .flags = RULE_KNOWN | RULE_END } };
    if (st.ra_how != 1 || st.ra_off != -8 || st.rbp_how < 0 || (st.cfa_reg != REG_RSP && st.cfa_reg != REG_RBP) ||
        st.cfa_off < INT32_MIN || st.cfa_off > INT32_MAX || (st.rbp_how == 1 && (st.rbp_off < INT16_MIN || st.rbp_off > INT16_MAX)))
        return none;
    rule_t r = { .r = { .cfa_off = (int32_t)st.cfa_off, .rbp_off = (int16_t)st.rbp_off, .flags = RULE_KNOWN } };
    if (st.cfa_reg == REG_RBP)
        r.r.flags |= RULE_CFA_RBP;
    if (st.rbp_how == 1)
        r.r.flags |= RULE_RBP_SAVED;
    return r;
}

// --- the table ---------------------------------------------------------------------

static rule_t lookup(uintptr_t pc)
{
    entry_t *t = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
    if (t == NULL) {
        entry_t *fresh = mallet__os_map(TABLE_SLOTS * sizeof *fresh, 0);
        if (fresh == NULL)
            return (rule_t){ .r = { .flags = RULE_KNOWN | RULE_NONE } };
        if (!__atomic_compare_exchange_n(&table, &t, fresh, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            mallet__os_release(fresh, TABLE_SLOTS * sizeof *fresh);
        else
            t = fresh;
    }
    entry_t *e = &t[(pc ^ (pc >> 13)) & (TABLE_SLOTS - 1)];
    if (__atomic_load_n(&e->pc, __ATOMIC_ACQUIRE) == pc) {
        rule_t r = { .word = __atomic_load_n(&e->rule, __ATOMIC_ACQUIRE) };
        if (__atomic_load_n(&e->pc, __ATOMIC_ACQUIRE) == pc && r.word != 0)
            return r;
    }
    rule_t r = rule_of(pc);
    // Key cleared, rule, key: a reader that sees the key around its read of
    // the rule has the rule that goes with it.
    __atomic_store_n(&e->pc, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&e->rule, r.word, __ATOMIC_RELEASE);
    __atomic_store_n(&e->pc, pc, __ATOMIC_RELEASE);
    return r;
}

// --- the walk ----------------------------------------------------------------------

uint32_t mallet__prof_unwind(uintptr_t pc, uintptr_t sp, uintptr_t fp, uintptr_t *out, uint32_t max)
{
    uint32_t n = 0;
    // pc is an address in the first frame's code; the later ones are
    // return addresses, whose call is the byte before.
    for (uintptr_t at = pc; n < max;) {
        out[n++] = pc;
        rule_t r = lookup(at);
        if (r.r.flags & RULE_END)
            return n;
        if (r.r.flags & RULE_NONE)
            return 0;
        uintptr_t cfa = ((r.r.flags & RULE_CFA_RBP) ? fp : sp) + (intptr_t)r.r.cfa_off;
        // The stack grows down: the caller's frame is above this one. A
        // CFA that is not is a rule misread or a stack damaged; libgcc
        // decides then.
        if (cfa <= sp || cfa - sp > ((uintptr_t)1 << 30) || (cfa & 7) != 0)
            return 0;
        uintptr_t ra = *(const uintptr_t *)(cfa - 8);
        if (r.r.flags & RULE_RBP_SAVED)
            fp = *(const uintptr_t *)(cfa + r.r.rbp_off);
        sp = cfa;
        if (ra == 0)
            return n;
        pc = ra;
        at = ra - 1;
    }
    return n;
}

#else

uint32_t mallet__prof_unwind(uintptr_t pc, uintptr_t sp, uintptr_t fp, uintptr_t *out, uint32_t max)
{
    (void)pc, (void)sp, (void)fp, (void)out, (void)max;
    return 0;
}

#endif
