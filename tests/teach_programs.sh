#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# teach_programs.sh -- real programs on every teach design, preloaded as
# their malloc (build/teach/libteach-NAME.so), each output compared with the
# same program on glibc's malloc:
#
#   ls       ls -la /usr/bin
#   sort     sort -n of a generated 200,000-line file
#   sqlite   sqlite3 on a temp database: a few thousand inserts, an index, queries
#   python   PYTHONMALLOC=malloc python3 building, dumping and parsing JSON
#   api      a small C program: calloc zeroes and rejects n*size overflow,
#            posix_memalign says EINVAL to a bad alignment, aligned_alloc,
#            memalign, valloc, reallocarray, realloc(p, 0), malloc_usable_size
#
# Prints one line per design x program and closes with "N passed, N failed,
# N skipped". A design whose preload library is not built is skipped with a
# message. Plain mode only (tests/run.sh); BUILD names the build folder.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DESIGNS="bump firstfit split coalesce segregated buddy arena"
PY=/usr/bin/python3
LIMIT=60                  # seconds per program run
passed=0 failed=0 skipped=0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- inputs, made once with glibc's malloc -----------------------------------

awk 'BEGIN { srand(7); for (i = 0; i < 200000; i++) printf "%d\n", int(rand() * 2000000000) - 1000000000 }' \
    >"$tmp/numbers.txt"

{
    echo "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score INTEGER, note TEXT);"
    echo "BEGIN;"
    awk 'BEGIN { srand(11); for (i = 1; i <= 4000; i++)
        printf "INSERT INTO t (name, score, note) VALUES (\x27name%05d\x27, %d, \x27%s\x27);\n",
               int(rand() * 3000), int(rand() * 100000), substr("abcdefghijklmnopqrstuvwxyz", 1 + i % 20) }'
    echo "COMMIT;"
    echo "CREATE INDEX t_score ON t (score);"
    echo "SELECT count(*), sum(score), min(score), max(score) FROM t;"
    echo "SELECT name, score FROM t WHERE score BETWEEN 1000 AND 1400 ORDER BY score, id;"
    echo "SELECT name, count(*) AS c FROM t GROUP BY name HAVING c > 3 ORDER BY c DESC, name LIMIT 20;"
    echo "UPDATE t SET note = note || note WHERE id % 3 = 0;"
    echo "DELETE FROM t WHERE id % 5 = 0;"
    echo "SELECT count(*), sum(length(note)) FROM t;"
    echo "SELECT a.id, b.id FROM t a JOIN t b ON a.score = b.score AND a.id < b.id ORDER BY a.id LIMIT 15;"
} >"$tmp/script.sql"

cat >"$tmp/json_work.py" <<'EOF'
import json
import random
random.seed(3)
rows = [{"id": i, "name": "item%d" % i, "tags": [random.randrange(1000) for _ in range(i % 7)],
         "nested": {"a": random.random(), "b": str(random.randrange(10**9))}} for i in range(1000)]
text = json.dumps(rows, sort_keys=True)
back = json.loads(text)
assert back == rows
merged = {}
for r in back:
    merged.setdefault(len(r["tags"]), []).append(r["nested"]["b"])
print(len(text), sum(len(v) for v in merged.values()), sorted(merged)[:5])
print(json.dumps({k: v[:3] for k, v in sorted(merged.items())}, sort_keys=True))
EOF

cat >"$tmp/api.c" <<'EOF'
// The allocation API beyond malloc/free, with every answer printed so the
// run can be compared with glibc's.
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int aligned(const void *p, size_t a) { return p && ((uintptr_t)p & (a - 1)) == 0; }

int main(void)
{
    // calloc zeroes, even memory that was just dirtied and freed.
    for (size_t n = 1; n <= 1 << 20; n *= 4) {
        unsigned char *d = malloc(n * 8);
        memset(d, 0xff, n * 8);
        free(d);
        unsigned char *z = calloc(n, 8);
        size_t nonzero = 0;
        for (size_t i = 0; i < n * 8; i++)
            nonzero += z[i] != 0;
        printf("calloc(%zu, 8): %s, nonzero bytes %zu\n", n, z ? "ok" : "NULL", nonzero);
        free(z);
    }
    errno = 0;
    void *o = calloc(SIZE_MAX / 2, 4);
    printf("calloc overflow: %s errno %s\n", o ? "non-NULL" : "NULL", errno == ENOMEM ? "ENOMEM" : "other");
    errno = 0;
    o = calloc((size_t)1 << 33, (size_t)1 << 33);
    printf("calloc 2^33 x 2^33: %s errno %s\n", o ? "non-NULL" : "NULL", errno == ENOMEM ? "ENOMEM" : "other");
    void *c0 = calloc(0, 16);
    printf("calloc(0, 16): %s\n", c0 ? "non-NULL" : "NULL");
    free(c0);

    // posix_memalign: EINVAL for an alignment that is no power of two or
    // smaller than a pointer; aligned blocks otherwise; *out untouched on error.
    static const size_t bad[] = { 0, 3, 4, 24, 48, 1000 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *p = (void *)0x1;
        int r = posix_memalign(&p, bad[i], 64);
        printf("posix_memalign(align %zu): %s, out %s\n", bad[i], r == EINVAL ? "EINVAL" : "other",
               p == (void *)0x1 ? "untouched" : "changed");
    }
    for (size_t a = sizeof(void *); a <= 1 << 16; a *= 2) {
        void *p = NULL;
        int r = posix_memalign(&p, a, 100 + a);
        printf("posix_memalign(%zu): %d aligned %d\n", a, r, aligned(p, a));
        if (p)
            memset(p, 1, 100 + a);
        free(p);
    }
    for (size_t a = 16; a <= 1 << 16; a *= 4) {
        void *p = aligned_alloc(a, 4 * a);
        void *q = memalign(a, 3 * a + 5);
        printf("aligned_alloc/memalign(%zu): %d %d usable %d\n", a, aligned(p, a), aligned(q, a),
               q && malloc_usable_size(q) >= 3 * a + 5);
        if (p)
            memset(p, 2, 4 * a);
        free(p);
        free(q);
    }
    long page = sysconf(_SC_PAGESIZE);
    void *v = valloc(10);
    printf("valloc: page aligned %d\n", aligned(v, (size_t)page));
    free(v);

    // reallocarray overflow, realloc(p, 0), usable size.
    errno = 0;
    char *r = reallocarray(NULL, SIZE_MAX / 2, 3);
    printf("reallocarray overflow: %s errno %s\n", r ? "non-NULL" : "NULL", errno == ENOMEM ? "ENOMEM" : "other");
    r = reallocarray(NULL, 10, 10);
    printf("reallocarray 10x10: %s usable %d\n", r ? "ok" : "NULL", r && malloc_usable_size(r) >= 100);
    strcpy(r, "keep me");
    r = realloc(r, 100000);
    printf("realloc grow keeps: %s\n", r && strcmp(r, "keep me") == 0 ? "yes" : "no");
    printf("realloc(p, 0): %s\n", realloc(r, 0) ? "non-NULL" : "NULL");
    errno = 0;
    void *big = malloc(SIZE_MAX - 100);
    printf("malloc(SIZE_MAX - 100): %s errno %s\n", big ? "non-NULL" : "NULL", errno == ENOMEM ? "ENOMEM" : "other");
    errno = 77;
    free(NULL);
    printf("free(NULL) keeps errno: %d\n", errno == 77);
    return 0;
}
EOF
if ! cc -O1 -o "$tmp/api" "$tmp/api.c" 2>"$tmp/api.err"; then
    cat "$tmp/api.err"
    echo "teach_programs: cannot build the API program"
    exit 1
fi

# --- the programs --------------------------------------------------------------

# run NAME [LD_PRELOAD value]: run program NAME, output to stdout.
run() {
    local name=$1 preload=${2:-}
    local env=(env)
    [ -n "$preload" ] && env+=(LD_PRELOAD="$preload")
    case $name in
        ls)     "${env[@]}" timeout $LIMIT ls -la /usr/bin ;;
        sort)   "${env[@]}" timeout $LIMIT sort -n "$tmp/numbers.txt" ;;
        sqlite) rm -f "$tmp/db.sqlite"
                "${env[@]}" timeout $LIMIT sqlite3 "$tmp/db.sqlite" <"$tmp/script.sql" ;;
        python) "${env[@]}" PYTHONMALLOC=malloc timeout $LIMIT $PY "$tmp/json_work.py" ;;
        api)    "${env[@]}" timeout $LIMIT "$tmp/api" ;;
    esac
}

PROGRAMS="ls sort sqlite python api"
for p in $PROGRAMS; do
    if ! run "$p" >"$tmp/$p.glibc" 2>"$tmp/$p.glibc.err"; then
        echo "teach_programs: $p fails on glibc's malloc itself:"
        head -n 5 "$tmp/$p.glibc.err"
        exit 1
    fi
done

for d in $DESIGNS; do
    so=$BUILD/teach/libteach-$d.so
    case $so in /*) ;; *) so=$PWD/$so ;; esac
    if [ ! -f "$so" ]; then
        printf 'skip  %-10s (%s not built)\n' "$d" "$BUILD/teach/libteach-$d.so"
        skipped=$((skipped + 1))
        continue
    fi
    for p in $PROGRAMS; do
        start=$(date +%s.%N)
        run "$p" "$so" >"$tmp/$p.$d" 2>"$tmp/$p.$d.err"
        status=$?
        secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
        if [ $status -eq 0 ] && cmp -s "$tmp/$p.glibc" "$tmp/$p.$d"; then
            printf 'ok    %-10s %-7s %5ss\n' "$d" "$p" "$secs"
            passed=$((passed + 1))
        else
            printf 'FAIL  %-10s %-7s %5ss  exit %d\n' "$d" "$p" "$secs" "$status"
            head -n 5 "$tmp/$p.$d.err" | sed 's/^/      /'
            diff "$tmp/$p.glibc" "$tmp/$p.$d" | head -n 8 | sed 's/^/      /'
            failed=$((failed + 1))
        fi
    done
done
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
