#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# 22-lib-rss.sh -- how fast each allocator gives memory back: bench/lib_rss.c
# fills a large heap with small blocks, frees it all, then samples its RSS
# every 100 ms for 3 s while idle (calling malloc once per sample; libmallet
# also with no call at all, single- and multithreaded). One run per allocator (the curve, not a
# time, is the result); the table shows selected samples and the plot the
# whole curve: bench/plots/rss_after_free.svg.
set -eu
cd "$(dirname "$0")/../.."
export BUILD=${BUILD:-build}
. bench/lib_common.sh
RSS=$BUILD/bench/lib_rss
[ -x "$RSS" ] || { echo "22-lib-rss: $RSS not built (make)" >&2; exit 1; }
if [ "$BENCH_QUICK" = 1 ]; then mib=256; else mib=1024; fi
work=$(mktemp -d)
names=()
for a in "${ALLOCATORS[@]}"; do
    name=${a%% *} lib=${a#* }
    echo "  rss: $name" >&2
    if [ "$lib" = - ]; then "$RSS" "$mib" calls >"$work/$name" || true
    else LD_PRELOAD=$lib "$RSS" "$mib" calls >"$work/$name" || true; fi
    names+=("$name")
    # libmallet again, idle with no call at all: with one thread (no thread
    # of libmallet's may start) and after a thread of the program's own.
    if [ "$name" = mallet ]; then
        for m in silent threaded; do
            LD_PRELOAD=$lib "$RSS" "$mib" $m >"$work/mallet-$m" || true
            names+=("mallet-$m")
        done
    fi
done

echo "## libmallet and its peers: RSS after a big free"
echo
echo "Regenerate: \`$([ "$BENCH_QUICK" = 1 ] && echo 'BENCH_QUICK=1 ')bench/sections/22-lib-rss.sh\` (runs \`LD_PRELOAD=LIB $RSS $mib\`)."
echo "The program allocates $mib MiB in blocks of 16..256 bytes, frees every one, and then idles:"
echo "the resident set it keeps is what the allocator holds on to. No malloc_trim call is made."
echo "Each allocator's row idles with one malloc(100)/free pair per 100 ms sample (\`calls\`, one thread)."
echo "mallet-silent makes no allocator call at all while idle, with one thread: libmallet starts no"
echo "thread in a program that has none, so nothing can give memory back until the program calls again."
echo "mallet-threaded is silent too, after the program started and joined a thread of its own: the"
echo "purger thread may then run."
echo
"$PY" - "$work" bench/plots/rss_after_free.svg "${names[@]}" <<'PYEOF'
import subprocess, sys
work, plot, names = sys.argv[1], sys.argv[2], sys.argv[3:]
curves = {}
for n in names:
    peak, pts = None, []
    for line in open("%s/%s" % (work, n)):
        f = line.split()
        if f[0] == "peak":
            peak = float(f[1])
        elif len(f) == 2:
            pts.append((float(f[0]), float(f[1])))
    curves[n] = (peak, pts)
marks = [0.0, 0.5, 1.0, 2.0, 3.0]
print("| allocator | peak MiB | " + " | ".join("after %.1f s" % t for t in marks) + " |")
print("|---|---|" + "---|" * len(marks))
for n in names:
    peak, pts = curves[n]
    if peak is None or not pts:
        print("| %s | failed |%s" % (n, " |" * len(marks)))
        continue
    cells = []
    for t in marks:
        v = min(pts, key=lambda p: abs(p[0] - t))[1]
        cells.append("%.1f (%.0f%%)" % (v, 100 * v / peak))
    print("| %s | %.1f | %s |" % (n, peak, " | ".join(cells)))
print()
with open(plot + ".dat", "w") as f:
    for n in names:
        f.write("# %s\n" % n)
        for t, v in curves[n][1]:
            f.write("%.1f %.1f\n" % (t, v))
        f.write("\n\n")
lines = ", ".join("'%s.dat' index %d with linespoints title '%s'" % (plot, i, n)
                  for i, n in enumerate(names) if curves[n][1])
subprocess.run(["gnuplot"], check=True, input=("""
set terminal svg size 900,450 dynamic font 'sans,11'
set output '%s'
set title 'RSS after freeing everything, process idle'
set xlabel 'seconds after the free'
set ylabel 'RSS (MiB)'
set key outside right top
set grid
set yrange [0:*]
plot %s
""" % (plot, lines)).encode())
print("![RSS after a big free](plots/rss_after_free.svg)")
print()
PYEOF
rm -rf "$work" bench/plots/rss_after_free.svg.dat
