// SPDX-License-Identifier: MIT
//
// heapmap.c -- `mallet heapmap`: replay a trace on a teach design and draw
// its heap, block by block, as SVG (written here by hand) or PNG (the SVG
// converted by rsvg-convert).
//
// A snapshot is the design's walk(): every block in address order, used or
// free. Blocks are laid end to end at one scale (bytes per pixel), so sizes
// compare across the picture; a jump in the address space (a new region, a
// mmap'd block) is marked with a dark tick. Neighbouring blocks of the same
// kind alternate two shades, so two free blocks side by side -- what
// coalescing would merge -- show as two.
//   - One snapshot (no -s): the heap after the last op of the trace (or op
//     --at), before the replayer frees what is still live, wrapped into rows.
//   - -s STEP: one strip per STEP ops, each on the same scale, so the heap
//     is seen to grow, fragment, and (in coalescing designs) heal.
// Each strip carries its figures: free bytes, largest free block, external
// fragmentation = 1 - largest free / total free, and utilization = live
// requested bytes / footprint.
//
// The replay runs in a child process: a design that crashes is reported as
// that design's crash.
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine.h"

#define BAR_X      90.0               // left margin: strip labels
#define BAR_W      1000.0             // width of the address bar
#define STATS_W    440.0              // right margin: strip figures
#define STRIP_H    16.0               // height of one strip or row
#define STRIP_GAP  6.0                // space between strips
#define MAX_STRIPS 400                // more is not a picture anyone reads
#define WRAP_ROWS  12                 // rows for a single snapshot

typedef struct block {
    uint64_t offset;                  // bytes from the start of the snapshot
    uint64_t size;                    // bytes
    bool used;                        // in use (else free)
    bool jump;                        // the address space jumps before it
} block_t;

typedef struct snapshot {
    uint64_t op;                      // ops done when it was taken
    size_t first, count;              // its blocks in heapmap_t.blocks
    uint64_t total;                   // bytes walked (used + free)
    uint64_t free_bytes;              // bytes in free blocks
    uint64_t largest_free;            // largest free block
    uint64_t live;                    // requested bytes live
    uint64_t footprint;               // the design's footprint()
} snapshot_t;

typedef struct heapmap {
    const teach_allocator_t *design;  // the heap being drawn
    uint64_t step;                    // ops per snapshot, 0 for one picture
    uint64_t at;                      // the one picture: after this many ops
    uint64_t n_ops;                   // ops in the trace
    block_t *blocks;                  // every snapshot's blocks
    size_t n_blocks, cap_blocks;      // used and allocated entries
    snapshot_t *snaps;                // the snapshots
    size_t n_snaps, cap_snaps;        // used and allocated entries
    uintptr_t last_end;               // end of the previous block in this walk
    bool oom;                         // a snapshot could not be stored
} heapmap_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mallet heapmap -a NAME [-s STEP | --at OP] -o FILE.svg|FILE.png TRACE\n"
            "\n"
            "Replay TRACE on the teach design NAME and draw its heap: blocks along the\n"
            "address space, used and free in different colours, sizes to scale, with\n"
            "free bytes, the largest free block, external fragmentation\n"
            "(1 - largest free / total free) and utilization (live / footprint).\n"
            "\n"
            "  -a NAME   a teach design:");
    for (const teach_allocator_t *const *t = teach_allocators; *t; t++)
        fprintf(f, " %s", (*t)->name);
    fprintf(f,
            "\n"
            "  -s STEP   one strip per STEP ops (default: one picture after the last op)\n"
            "  --at OP   the one picture after op OP instead (a trace often frees all at the end)\n"
            "  -o FILE   .svg, or .png (converted with rsvg-convert, Debian librsvg2-bin)\n");
}

static void visit(void *ctx, void *addr, size_t size, bool used)
{
    heapmap_t *h = ctx;
    if (h->oom)
        return;
    if (h->n_blocks == h->cap_blocks) {
        size_t cap = h->cap_blocks ? h->cap_blocks * 2 : 4096;
        block_t *b = realloc(h->blocks, cap * sizeof *b);
        if (!b) {
            h->oom = true;
            return;
        }
        h->blocks = b;
        h->cap_blocks = cap;
    }
    snapshot_t *s = &h->snaps[h->n_snaps];
    h->blocks[h->n_blocks++] = (block_t){
        .offset = s->total,
        .size = size,
        .used = used,
        .jump = s->count > 0 && (uintptr_t)addr != h->last_end,
    };
    h->last_end = (uintptr_t)addr + size;
    s->count++;
    s->total += size;
    if (!used) {
        s->free_bytes += size;
        if (size > s->largest_free)
            s->largest_free = size;
    }
}

static void take_snapshot(void *ctx, uint64_t index, uint64_t live)
{
    heapmap_t *h = ctx;
    bool last = index + 1 == (h->step ? h->n_ops : h->at);
    if (h->oom || (!h->step && h->n_snaps) || !(last || (h->step && (index + 1) % h->step == 0)))
        return;
    if (h->n_snaps == h->cap_snaps) {
        size_t cap = h->cap_snaps ? h->cap_snaps * 2 : 64;
        snapshot_t *s = realloc(h->snaps, cap * sizeof *s);
        if (!s) {
            h->oom = true;
            return;
        }
        h->snaps = s;
        h->cap_snaps = cap;
    }
    h->snaps[h->n_snaps] = (snapshot_t){ .op = index + 1, .first = h->n_blocks, .live = live,
                                         .footprint = h->design->footprint() };
    h->design->walk(visit, h);
    h->n_snaps++;
}

static double frag(const snapshot_t *s)
{
    return s->free_bytes ? 1.0 - (double)s->largest_free / (double)s->free_bytes : 0;
}

static double util(const snapshot_t *s)
{
    return s->footprint ? (double)s->live / (double)s->footprint : 0;
}

static const char *fill_for(const block_t *b, int parity)
{
    if (b->used)
        return parity ? "#2f6db5" : "#5b93d6";
    return parity ? "#e4572e" : "#f5a65b";
}

#define MIX_LEVELS 8                  // shades between all used and all free

// A run of pixel columns too crowded to show single blocks: each column is
// shaded by the share of its bytes that are free.
typedef struct mix {
    long px;                          // column being filled, -1 for none
    uint64_t used, free;              // its bytes
    long run_px, run_end;             // columns [run_px, run_end) of one shade
    int run_level;                    // that shade, 0 all used .. MIX_LEVELS all free
} mix_t;

static void mix_emit(FILE *f, mix_t *m, double y)
{
    if (m->run_end <= m->run_px)
        return;
    double t = (double)m->run_level / MIX_LEVELS;
    int r = (int)(0x2f + t * (0xe4 - 0x2f)), g = (int)(0x6d + t * (0x57 - 0x6d)), b = (int)(0xb5 + t * (0x2e - 0xb5));
    fprintf(f, "<rect x=\"%.0f\" y=\"%.1f\" width=\"%ld\" height=\"%.0f\" fill=\"#%02x%02x%02x\"/>\n",
            BAR_X + (double)m->run_px, y, m->run_end - m->run_px, STRIP_H, r, g, b);
    m->run_px = m->run_end = 0;
}

// Close the current column: extend the run of its shade or start a new one.
static void mix_column(FILE *f, mix_t *m, double y)
{
    if (m->px < 0)
        return;
    int level = (int)((double)m->free * MIX_LEVELS / (double)(m->used + m->free) + 0.5);
    if (m->run_end == m->px && m->run_level == level) {
        m->run_end++;
    } else {
        mix_emit(f, m, y);
        m->run_px = m->px;
        m->run_end = m->px + 1;
        m->run_level = level;
    }
    m->px = -1;
    m->used = m->free = 0;
}

// Draw the blocks of s whose offsets fall in [from, to) as one bar at y,
// `scale` pixels per byte: a block of a pixel or more as itself, smaller
// ones pooled per pixel column.
static void draw_bar(FILE *f, const heapmap_t *h, const snapshot_t *s, uint64_t from, uint64_t to,
                     double y, double scale)
{
    mix_t m = { .px = -1 };
    int parity[2] = { 0, 0 };
    for (size_t i = s->first; i < s->first + s->count; i++) {
        const block_t *b = &h->blocks[i];
        parity[b->used] ^= 1;
        uint64_t start = b->offset, end = b->offset + b->size;
        if (end <= from || start >= to)
            continue;
        start = start < from ? from : start;
        end = end > to ? to : end;
        double x = (double)(start - from) * scale, w = (double)(end - start) * scale;
        if (w >= 1) {
            mix_column(f, &m, y);
            mix_emit(f, &m, y);
            fprintf(f, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.0f\" fill=\"%s\"/>\n", BAR_X + x,
                    y, w, STRIP_H, fill_for(b, parity[b->used]));
            continue;
        }
        if ((long)x != m.px)
            mix_column(f, &m, y);
        m.px = (long)x;
        if (b->used)
            m.used += end - start;
        else
            m.free += end - start;
    }
    mix_column(f, &m, y);
    mix_emit(f, &m, y);
    for (size_t i = s->first; i < s->first + s->count; i++) {
        const block_t *b = &h->blocks[i];
        if (b->jump && b->offset >= from && b->offset < to)
            fprintf(f, "<rect x=\"%.2f\" y=\"%.1f\" width=\"1.5\" height=\"%.0f\" fill=\"#222\"/>\n",
                    BAR_X + (double)(b->offset - from) * scale - 0.75, y - 3, STRIP_H + 6);
    }
    fprintf(f, "<rect x=\"%.0f\" y=\"%.1f\" width=\"%.2f\" height=\"%.0f\" fill=\"none\" stroke=\"#999\" stroke-width=\"0.5\"/>\n",
            BAR_X, y, (double)(to - from) * scale, STRIP_H);
}

static void strip_figures(FILE *f, const snapshot_t *s, double x, double y)
{
    char a[32], b[32];
    fprintf(f, "<text x=\"%.0f\" y=\"%.1f\">free %s, largest %s, ext. frag %.0f%%, util %.0f%%</text>\n", x,
            y + STRIP_H - 4, tool_human(s->free_bytes, a, sizeof a), tool_human(s->largest_free, b, sizeof b),
            100 * frag(s), 100 * util(s));
}

static void legend(FILE *f, double y)
{
    static const struct {
        const char *fill;             // swatch colour
        const char *text;             // its meaning
    } items[] = {
        { "#2f6db5", "used block" },
        { "#5b93d6", "next used block" },
        { "#e4572e", "free block" },
        { "#f5a65b", "next free block" },
        { "#222", "address jump (new region)" },
        { "#89625f", "blocks under 1 px, shaded by share free" },
    };
    double x = BAR_X;
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
        fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"14\" height=\"12\" fill=\"%s\"/>\n", x, y, items[i].fill);
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">%s</text>\n", x + 19, y + 10, items[i].text);
        x += 40 + 7.0 * (double)strlen(items[i].text);
    }
}

static bool write_svg(const heapmap_t *h, const char *trace, FILE *f)
{
    uint64_t max_total = 1;
    for (size_t i = 0; i < h->n_snaps; i++)
        if (h->snaps[i].total > max_total)
            max_total = h->snaps[i].total;
    const snapshot_t *last = &h->snaps[h->n_snaps - 1];
    bool wrap = h->step == 0;
    uint64_t row_bytes = max_total;
    size_t rows = h->n_snaps;
    if (wrap) {
        row_bytes = 4096;
        while (row_bytes * WRAP_ROWS < max_total)
            row_bytes *= 2;
        rows = (size_t)((max_total + row_bytes - 1) / row_bytes);
    }
    double scale = BAR_W / (double)row_bytes;
    double top = 78, height = top + (double)rows * (STRIP_H + STRIP_GAP) + 110;
    double width = BAR_X + BAR_W + STATS_W;
    char a[32], b[32], c[32];

    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n",
            width, height, width, height);
    fprintf(f, "<style>text { font-family: DejaVu Sans Mono, monospace; font-size: 11px; fill: #222 }"
               " .title { font-size: 15px; font-weight: bold }</style>\n");
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", width, height);
    fprintf(f, "<text class=\"title\" x=\"%.0f\" y=\"22\">heap of ", BAR_X);
    tool_xml_text(f, h->design->name);
    fprintf(f, " replaying ");
    tool_xml_text(f, trace);
    fprintf(f, "</text>\n<text x=\"%.0f\" y=\"40\">", BAR_X);
    tool_xml_text(f, h->design->design);
    fprintf(f, ". Scale: %s per row; 1 px = %.0f bytes.</text>\n", tool_human(row_bytes, a, sizeof a), 1 / scale);
    legend(f, 50);

    double y = top;
    if (wrap) {
        for (size_t r = 0; r < rows; r++, y += STRIP_H + STRIP_GAP) {
            fprintf(f, "<text x=\"8\" y=\"%.1f\">+%s</text>\n", y + STRIP_H - 4, tool_human(r * row_bytes, a, sizeof a));
            draw_bar(f, h, last, r * row_bytes, (r + 1) * row_bytes, y, scale);
        }
    } else {
        for (size_t i = 0; i < h->n_snaps; i++, y += STRIP_H + STRIP_GAP) {
            const snapshot_t *s = &h->snaps[i];
            fprintf(f, "<text x=\"8\" y=\"%.1f\">op %llu</text>\n", y + STRIP_H - 4, (unsigned long long)s->op);
            draw_bar(f, h, s, 0, s->total, y, scale);
            strip_figures(f, s, BAR_X + BAR_W + 12, y);
        }
    }
    y += 14;
    fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" class=\"title\">after op %llu of %llu</text>\n", BAR_X, y,
            (unsigned long long)last->op, (unsigned long long)h->n_ops);
    fprintf(f, "<text x=\"%.0f\" y=\"%.1f\">heap walked %s in %zu blocks; footprint %s; live payload %s</text>\n",
            BAR_X, y + 18, tool_human(last->total, a, sizeof a), last->count, tool_human(last->footprint, b, sizeof b),
            tool_human(last->live, c, sizeof c));
    fprintf(f, "<text x=\"%.0f\" y=\"%.1f\">free %s; largest free block %s; external fragmentation %.1f%%"
               " (1 - largest free / total free)</text>\n",
            BAR_X, y + 34, tool_human(last->free_bytes, a, sizeof a), tool_human(last->largest_free, b, sizeof b),
            100 * frag(last));
    fprintf(f, "<text x=\"%.0f\" y=\"%.1f\">utilization %.1f%% (live payload / footprint)</text>\n", BAR_X, y + 50,
            100 * util(last));
    fprintf(f, "</svg>\n");
    return !ferror(f);
}

// The child: replay, snapshot, draw. Exit status 0 when the file is written.
static int draw(const trace_t *t, const teach_allocator_t *design, uint64_t step, uint64_t at, const char *out)
{
    heapmap_t h = { .design = design, .step = step, .at = at ? at : t->n_ops, .n_ops = t->n_ops };
    backend_t b = { design->name, design->malloc, design->free, design->realloc, design->footprint, 1,
                    design->reset };
    replay_result_t r;
    if (t->n_ops == 0) {
        fprintf(stderr, "mallet heapmap: %s has no operations to draw\n", t->path);
        return 1;
    }
    if (!engine_prepare(t) || !engine_check(t, &b, &r, take_snapshot, &h))
        return 1;
    if (h.oom) {
        fprintf(stderr, "mallet heapmap: out of memory for the snapshots\n");
        return 1;
    }
    bool png = tool_ends_with(out, ".png");
    char svg_path[4096];
    snprintf(svg_path, sizeof svg_path, png ? "%s.svg.tmp" : "%s", out);
    FILE *f = fopen(svg_path, "w");
    if (!f) {
        fprintf(stderr, "mallet heapmap: %s: %s\n", svg_path, strerror(errno));
        return 1;
    }
    const char *slash = strrchr(t->path, '/');
    bool ok = write_svg(&h, slash ? slash + 1 : t->path, f);
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        fprintf(stderr, "mallet heapmap: %s: write failed\n", svg_path);
        return 1;
    }
    if (png) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            execlp("rsvg-convert", "rsvg-convert", "-o", out, svg_path, (char *)NULL);
            fprintf(stderr, "mallet heapmap: PNG needs rsvg-convert (apt-get install librsvg2-bin), or write .svg\n");
            _exit(127);
        }
        int status = pid < 0 ? 1 : tool_wait("mallet heapmap", pid, "rsvg-convert", "glibc");
        unlink(svg_path);
        if (status != 0)
            return 1;
    }
    free(h.blocks);
    free(h.snaps);
    printf("mallet heapmap: wrote %s (%zu strip%s)\n", out, h.n_snaps, h.n_snaps == 1 ? "" : "s");
    fflush(stdout);                       // the child leaves by _exit
    return 0;
}

int tool_heapmap(int argc, char **argv)
{
    const char *name = NULL, *out = NULL, *trace_path = NULL;
    uint64_t step = 0, at = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(s, "-a") && i + 1 < argc) {
            name = argv[++i];
        } else if (!strcmp(s, "-o") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(s, "-s") && i + 1 < argc) {
            char *end;
            step = strtoull(argv[++i], &end, 10);
            if (*end || step == 0) {
                fprintf(stderr, "mallet heapmap: -s wants a positive number of ops, not '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(s, "--at") && i + 1 < argc) {
            char *end;
            at = strtoull(argv[++i], &end, 10);
            if (*end || at == 0) {
                fprintf(stderr, "mallet heapmap: --at wants a positive number of ops, not '%s'\n", argv[i]);
                return 2;
            }
        } else if (s[0] == '-' && s[1]) {
            fprintf(stderr, "mallet heapmap: unknown or incomplete option '%s'\n", s);
            usage(stderr);
            return 2;
        } else if (!trace_path) {
            trace_path = s;
        } else {
            fprintf(stderr, "mallet heapmap: one trace at a time ('%s' and '%s')\n", trace_path, s);
            return 2;
        }
    }
    if (!name || !out || !trace_path) {
        fprintf(stderr, "mallet heapmap: %s\n", !name ? "no design (-a NAME)" : !out ? "no output file (-o FILE.svg)" : "no trace given");
        usage(stderr);
        return 2;
    }
    if (!tool_ends_with(out, ".svg") && !tool_ends_with(out, ".png")) {
        fprintf(stderr, "mallet heapmap: the output must end in .svg or .png, not '%s'\n", out);
        return 2;
    }
    alloc_desc_t a;
    if (!tool_alloc_lookup("mallet heapmap", name, &a))
        return 2;
    if (a.kind != ALLOC_TEACH || !a.teach->walk || !a.teach->footprint) {
        fprintf(stderr, "mallet heapmap: %s cannot be drawn: only teach designs can walk their heap\n", name);
        return 2;
    }
    trace_t t;
    if (!trace_load(trace_path, &t))
        return 2;
    if (at > t.n_ops || (at && step)) {
        fprintf(stderr, "mallet heapmap: %s\n", step ? "--at and -s do not mix: one picture or strips"
                                                        : "--at is past the last op of the trace");
        trace_free(&t);
        return 2;
    }
    if (step && t.n_ops / step > MAX_STRIPS) {
        fprintf(stderr, "mallet heapmap: -s %llu makes %llu strips; use -s %llu or more\n",
                (unsigned long long)step, (unsigned long long)(t.n_ops / step),
                (unsigned long long)((t.n_ops + MAX_STRIPS - 1) / MAX_STRIPS));
        trace_free(&t);
        return 2;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "mallet heapmap: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0)
        _exit(draw(&t, a.teach, step, at, out));
    int status = tool_wait("mallet heapmap", pid, trace_path, name);
    trace_free(&t);
    return status;
}
