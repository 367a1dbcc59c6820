# SPDX-License-Identifier: MIT
#
# lib_common.sh -- sourced by the libmallet benchmark sections (20-29, 50-56) and
# demo.sh: run workloads on every allocator from peers.sh in turn (A B C A B
# C ...), collect wall time and peak RSS per run, and print Markdown tables of
# medians with ratios to glibc and to the best peer, plus a gnuplot bar chart.
#
#   lib_run_matrix RAWFILE REPS    (reads the WORKLOADS array: "name|command")
#   lib_tables RAWFILE [PLOT.svg]  prints the tables; draws the chart
#
# and, for the sections that price a build or an option against itself (55,
# 56): lib_build_at (libmallet from an older commit), lib_pair_tables (off
# against on), lib_perf_workloads, lib_perf_share and lib_perf_excerpt
# (where perf finds the CPU going).
#
# RAWFILE lines: workload allocator rep seconds peak_kib status user_s sys_s
# wall_s.

BUILD=${BUILD:-build}
BENCH_QUICK=${BENCH_QUICK:-0}
BENCH_DIR=${BENCH_DIR:-$PWD/bench}
PY=/usr/bin/python3
mapfile -t ALLOCATORS < <("$BENCH_DIR/peers.sh")

# lib_measure LIB OUT CMD -- one run of CMD (a shell command line) with LIB
# preloaded ("-" for none); appends "seconds peak_kib status user_s sys_s
# wall_s" to OUT: /usr/bin/time's wall time (10 ms steps), peak RSS and CPU
# times, then the wall time from bash's microsecond clock around it.
lib_measure() {
    local lib=$1 out=$2 cmd=$3 t status=0 t0 t1 sec kib user sys pre=()
    t=$(mktemp)
    if [ "$lib" != - ]; then
        pre=(env LD_PRELOAD="$lib")
    fi
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%e %M %U %S' -o "$t" "${pre[@]}" bash -c "$cmd" >/dev/null 2>&1 || status=$?
    t1=$EPOCHREALTIME
    read -r sec kib user sys < <(tail -n 1 "$t")
    echo "$sec $kib $status $user $sys $("$PY" -c "print('%.4f' % ($t1 - $t0))")" >>"$out"
    rm -f "$t"
}

# The preload reaches the workload through bash -c; bash itself runs on the
# allocator too, which costs a few hundred microseconds and the same for all.
lib_run_matrix() {
    local raw=$1 reps=$2 rep w a name cmd aname alib tmp
    : >"$raw"
    for rep in $(seq "$reps"); do
        for w in "${WORKLOADS[@]}"; do
            name=${w%%|*} cmd=${w#*|}
            for a in "${ALLOCATORS[@]}"; do
                aname=${a%% *} alib=${a#* }
                echo "  rep $rep: $name on $aname" >&2
                tmp=$(mktemp)
                lib_measure "$alib" "$tmp" "$cmd"
                echo "$name $aname $rep $(cat "$tmp")" >>"$raw"
                rm -f "$tmp"
            done
        done
    done
}

lib_tables() {
    local raw=$1 plot=${2:-}
    "$PY" - "$raw" "$plot" <<'EOF'
import statistics, subprocess, sys
raw, plot = sys.argv[1], sys.argv[2]
rows = [l.split() for l in open(raw) if l.strip()]
works, allocs = [], []
runs = {}
for w, a, rep, sec, kib, status, *_ in rows:
    if w not in works: works.append(w)
    if a not in allocs: allocs.append(a)
    runs.setdefault((w, a), []).append((float(sec), int(kib), int(status)))
peers = [a for a in allocs if a not in ("glibc", "mallet")]

def med(w, a, i):
    r = runs.get((w, a), [])
    if not r or any(x[2] != 0 for x in r):
        return None
    return statistics.median(x[i] for x in r)

def table(i, unit, fmt):
    head = "| workload | " + " | ".join(allocs) + " | mallet vs best peer |"
    print(head)
    print("|" + "---|" * (len(allocs) + 2))
    for w in works:
        base = med(w, "glibc", i)
        cells = []
        for a in allocs:
            v = med(w, a, i)
            if v is None:
                cells.append("failed")
            elif base and a != "glibc":
                cells.append(fmt(v) + " (%.2fx)" % (v / base))
            else:
                cells.append(fmt(v))
        best = [(med(w, p, i), p) for p in peers if med(w, p, i) is not None]
        m = med(w, "mallet", i)
        if best and m is not None:
            bv, bp = min(best)
            cells.append("%.2fx %s" % (m / bv, bp) if bv else "-")
        else:
            cells.append("-")
        print("| %s | %s |" % (w, " | ".join(cells)))
    print()

print("Median wall time in seconds (ratio to glibc; lower is better):")
print()
table(0, "s", lambda v: "%.2f" % v)
print("Median peak RSS in MiB (ratio to glibc):")
print()
table(1, "MiB", lambda v: "%.1f" % (v / 1024))
reps = max(len(v) for v in runs.values())
print("%d repetitions per cell, allocators interleaved; a cell says failed when any run exited non-zero." % reps)
print()
if plot:
    dat = plot + ".dat"
    shown = [a for a in allocs if a != "glibc"]
    with open(dat, "w") as f:
        f.write("# workload " + " ".join(shown) + "\n")
        for w in works:
            base = med(w, "glibc", 0)
            vals = []
            for a in shown:
                v = med(w, a, 0)
                vals.append("%.3f" % (v / base) if v is not None and base else "NaN")
            f.write(w + " " + " ".join(vals) + "\n")
    cols = ", ".join("'%s' using %d%s title '%s'" % (dat, k + 2, ":xtic(1)" if k == 0 else "", a)
                     for k, a in enumerate(shown))
    script = f"""
set terminal svg size 1000,480 dynamic font 'sans,11'
set output '{plot}'
set title 'Wall time relative to glibc (lower is better)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top
set ylabel 'time / glibc time'
set yrange [0:*]
set grid ytics
set xtics rotate by -30
set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 lc rgb '#444444'
plot {cols}
"""
    subprocess.run(["gnuplot"], input=script.encode(), check=True)
    print("![time relative to glibc](plots/%s)" % plot.split("/")[-1])
    print()
EOF
}

# lib_make_sql FILE ROWS -- a SQL script for sqlite3: ROWS inserts in one
# transaction, an index, point queries, a join with group by, updates,
# deletes and a vacuum. Deterministic.
lib_make_sql() {
    "$PY" - "$1" "$2" <<'PYEOF'
import sys
path, rows = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    f.write("CREATE TABLE person(id INTEGER PRIMARY KEY, name TEXT, city INTEGER, score REAL);\n")
    f.write("CREATE TABLE city(id INTEGER PRIMARY KEY, name TEXT);\nBEGIN;\n")
    for i in range(200):
        f.write("INSERT INTO city VALUES(%d, 'city-%d');\n" % (i, i))
    for i in range(rows):
        f.write("INSERT INTO person VALUES(%d, 'person-%d-%s', %d, %d.%d);\n"
                % (i, i, "x" * (i % 60), i * 7 % 200, i % 1000, i % 10))
    f.write("COMMIT;\nCREATE INDEX person_city ON person(city);\n")
    for k in range(50):
        f.write("SELECT count(*), avg(score) FROM person WHERE city = %d;\n" % k)
    f.write("SELECT c.name, count(*), round(avg(p.score), 3) FROM person p JOIN city c ON p.city = c.id "
            "GROUP BY c.name ORDER BY 2 DESC, 1 LIMIT 10;\n")
    f.write("UPDATE person SET name = upper(name) || name WHERE id % 3 = 0;\n")
    f.write("DELETE FROM person WHERE id % 5 = 0;\nVACUUM;\n")
    f.write("SELECT count(*), max(length(name)) FROM person;\n")
PYEOF
}

# lib_make_py FILE DOCS -- a Python workload: build DOCS nested documents,
# dump and parse them as JSON, regex over the text, and 4 threads of small
# JSON work. Run it with PYTHONMALLOC=malloc so every object goes to malloc.
lib_make_py() {
    cat >"$1" <<PYEOF
import json, re, threading
N = $2
docs = [{"id": i, "name": "item-%d" % i, "tags": ["t%d" % (i * k % 97) for k in range(20)],
         "nested": {"values": list(range(i % 50)), "text": "word " * (i % 30)}} for i in range(N)]
blob = json.dumps(docs, sort_keys=True)
assert json.loads(blob) == docs
hits = len(re.findall(r"t(\\d+)", blob))
def worker(k):
    out = []
    for i in range(N // 8):
        out.append(re.sub(r"\\d", "#", json.dumps({"k": k, "i": i, "pad": "x" * (i % 200)})))
threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(len(blob), hits)
PYEOF
}

# lib_synthetic_workloads [SCALE [LONG]] -- set WORKLOADS to the synthetic
# workloads of bench/lib_*.c, sized for BENCH_QUICK, so every section that
# compares libmallet builds runs the same commands. SCALE (default 1)
# multiplies the iterations of the short ones only (churn, producer/consumer,
# larson), for a section that needs runs long enough to resolve a few
# percent; the others run for seconds already at SCALE 1 on a loaded
# machine, for less than one on a quiet one: LONG (default 1) multiplies
# the steps of those (realloc rounds, large-block steps, fanout's blocks,
# bigbuf's steps) for a section whose every run must last a second. Needs B
# (the bench program folder).
lib_synthetic_workloads() {
    local p churn xt lr rb large bh sv fo bb scale=${1:-1} long=${2:-1}
    for p in lib_churn lib_xthread lib_larson lib_realloc lib_large \
        lib_bigheap lib_server lib_fanout lib_bigbuf; do
        [ -x "$B/$p" ] || { echo "bench: $B/$p not built (make)" >&2; return 1; }
    done
    if [ "$BENCH_QUICK" = 1 ]; then
        churn=2000000 xt=500000 lr="10 $((20000 * scale))" rb="32 262144 2" large=1500
        bh=5000000 sv="50000 10" fo=10000000 bb=200
    else
        churn=5000000 xt=2000000 lr="30 $((50000 * scale))" rb="64 1048576 3" large=4000
        bh=20000000 sv="100000 30" fo=20000000 bb=500
    fi
    churn=$((churn * scale)) xt=$((xt * scale))
    rb="${rb% *} $((${rb##* } * long))" large=$((large * long)) fo=$((fo * long)) bb=$((bb * long))
    WORKLOADS=(
        "churn-1t|$B/lib_churn 1 $churn"
        "churn-2t|$B/lib_churn 2 $churn"
        "churn-4t|$B/lib_churn 4 $churn"
        "prodcons-2x2|$B/lib_xthread 2 $xt"
        "larson-4t|$B/lib_larson 4 $lr"
        "realloc-grow|$B/lib_realloc $rb"
        "large-blocks|$B/lib_large $large"
        "bigheap-1t|$B/lib_bigheap 1 262144 $bh"
        "bigheap-2t|$B/lib_bigheap 2 262144 $bh"
        "server-2t|$B/lib_server 2 $sv"
        "fanout-1x2|$B/lib_fanout 2 $fo"
        "bigbuf|$B/lib_bigbuf 20 $bb"
    )
}

# lib_cost_workloads SCALE FP ROWS DOCS WORK [LONG] -- set WORKLOADS to what
# the sections that price a build or an option (50, 55, 56) run: the
# synthetic workloads at SCALE (and LONG), the fast-path loops of section 21
# (FP pairs, FP / 1000 batches of 1000), and sqlite3 and python3 on the
# script and program of section 23 (ROWS rows, DOCS documents), which it
# writes into folder WORK. Needs B, as lib_synthetic_workloads does.
lib_cost_workloads() {
    local scale=$1 fp=$2 rows=$3 docs=$4 work=$5 long=${6:-1}
    lib_make_sql "$work/script.sql" "$rows"
    lib_make_py "$work/work.py" "$docs"
    lib_synthetic_workloads "$scale" "$long" || return 1
    WORKLOADS+=(
        "fastpath-pair|$B/lib_fastpath pair $fp"
        "fastpath-batch|$B/lib_fastpath batch $((fp / 1000))"
    )
    if command -v sqlite3 >/dev/null; then
        WORKLOADS+=("sqlite3|rm -f $work/db; sqlite3 $work/db < $work/script.sql")
    fi
    WORKLOADS+=("python3|PYTHONMALLOC=malloc /usr/bin/python3 $work/work.py")
}

# lib_fastpath_row NAME LIB PAIRS BATCHES -- print the Markdown row "| NAME |
# pair | batch |": instructions per malloc(32)+free that callgrind counts
# inside bench/lib_fastpath.c's loop functions with LIB preloaded (- for
# none), (Ir(N) - Ir(0)) / N, for back-to-back pairs and for batches of
# 1000.
lib_fastpath_row() {
    local name=$1 lib=$2 pairs=$3 batches=$4 dir p1 p0 b1 b0
    dir=$(mktemp -d)
    # ir MODE N FUNCTION -- instructions callgrind counted inside FUNCTION.
    ir() {
        local pre=()
        [ "$lib" != - ] && pre=(env LD_PRELOAD="$lib")
        rm -f "$dir/cg.out"
        "${pre[@]}" valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" --toggle-collect="$3" \
            "$BUILD/bench/lib_fastpath" "$1" "$2" >/dev/null 2>"$dir/err" || { echo NaN; return; }
        awk '/^(summary|totals):/ { print $2; exit }' "$dir/cg.out"
    }
    p1=$(ir pair "$pairs" run_pairs) p0=$(ir pair 0 run_pairs)
    b1=$(ir batch "$batches" run_batches) b0=$(ir batch 0 run_batches)
    rm -rf "$dir"
    "$PY" - "$name" "$p1" "$p0" "$pairs" "$b1" "$b0" "$batches" <<'PYEOF'
import sys
name, p1, p0, n, b1, b0, m = sys.argv[1:]
def per(a, b, k, scale):
    try:
        v = (float(a) - float(b)) / (float(k) * scale)
    except ValueError:
        return "failed"
    return "failed" if v != v else "%.1f" % v
print("| %s | %s | %s |" % (name, per(p1, p0, n, 1), per(b1, b0, m, 1000)))
PYEOF
}

# lib_fastpath_table PAIRS BATCHES NOTE ROW... -- the Markdown of a section
# that compares builds or options by lib_fastpath_row: a heading, what the
# figures are, NOTE (which rows are which), the table of ROWs.
lib_fastpath_table() {
    local pairs=$1 batches=$2 note=$3
    shift 3
    echo "### Fast-path instruction counts"
    echo
    echo "Instructions per \`malloc(32)\`+\`free\` as section 21 counts them (callgrind inside"
    echo "\`$BUILD/bench/lib_fastpath\`'s loop functions, \`(Ir(N) - Ir(0)) / N\`, the loop's overhead included;"
    echo "pair: $pairs back-to-back pairs, batch: $batches batches of 1000 mallocs then 1000 frees)."
    echo "$note"
    echo
    echo "| build | pair loop | batch of 1000 |"
    echo "|---|---|---|"
    printf '%s\n' "$@"
    echo
}

# lib_cost_workloads_table FP ROWS DOCS WORKLOAD... -- the end of the
# sentence that says what lib_cost_workloads ran (FP, ROWS, DOCS as given to
# it), and the table of the WORKLOADS' commands.
lib_cost_workloads_table() {
    local fp=$1 rows=$2 docs=$3 w
    shift 3
    echo "the fast-path loops of section 21 ($fp pairs; $((fp / 1000)) batches of 1000), and the sqlite3 script"
    echo "and python3 program of section 23 (\`lib_make_sql\` with $rows rows, \`lib_make_py\` with $docs"
    echo "documents, in a temporary folder)."
    echo
    echo "| workload | command |"
    echo "|---|---|"
    for w in "$@"; do echo "| ${w%%|*} | \`${w#*|}\` |"; done
    echo
}

# lib_build_at REV DIR -- build libmallet as it was at commit REV (git
# archive into DIR, make lib there) and print the path of its libmallet.so;
# nothing, and status 1, when REV is not in this checkout's history or does
# not build.
lib_build_at() {
    local rev=$1 dir=$2
    git rev-parse -q --verify "$rev^{commit}" >/dev/null 2>&1 || return 1
    echo "  building libmallet at $rev" >&2
    mkdir -p "$dir"
    git archive "$rev" | tar -x -C "$dir"
    make -s -C "$dir" -j2 lib >/dev/null 2>&1 || return 1
    echo "$dir/build/libmallet.so"
}

# lib_pair_medians RAW -- for lib_run_matrix's RAWFILE of workloads named
# NAME:STATE (one allocator), write RAW.med, a line per workload and state
# in the order first run: "name state runs wall_s cpu_s peak_kib
# shortest_wall_s", the middle three medians ("-" where a run exited
# non-zero), for the tables a section draws from them.
lib_pair_medians() {
    "$PY" - "$1" <<'PYEOF'
import statistics, sys
raw = sys.argv[1]
runs = {}
for line in open(raw):
    if line.strip():
        w, a, rep, _, kib, status, user, sys_, wall = line.split()
        runs.setdefault(tuple(w.rsplit(":", 1)), []).append((float(wall), float(user) + float(sys_), int(kib), int(status)))
with open(raw + ".med", "w") as f:
    for (name, state), r in runs.items():
        ok = all(x[3] == 0 for x in r)
        f.write("%s %s %d %s %s %s %.4f\n" % (name, state, len(r), *(
            "%.4f" % statistics.median(x[i] for x in r) if ok else "-" for i in range(3)), min(x[0] for x in r)))
PYEOF
}

# lib_pair_tables RAW OFF ON BAR MEASURE -- for lib_run_matrix's RAWFILE of
# workloads named NAME:off and NAME:on (one allocator): Markdown tables of
# the median wall time, CPU time (user + system) and peak RSS, off (labelled
# OFF) against on (ON), their ratios (bold above BAR percent) and geometric
# means, and the spread of the off runs; then a note that names MEASURE, the
# perf measure that resolves what the spread hides. Writes RAW.med too.
lib_pair_tables() {
    lib_pair_medians "$1"
    "$PY" - "$@" <<'PYEOF'
import math, os, statistics, sys
raw, off_name, on_name, bar, measure = sys.argv[1:]
bar = float(bar)
runs, works = {}, []
for line in open(raw):
    if not line.strip():
        continue
    w, a, rep, _, kib, status, user, sys_, wall = line.split()
    name, state = w.rsplit(":", 1)
    works.count(name) or works.append(name)
    runs.setdefault((name, state), []).append((float(wall), float(user) + float(sys_), int(kib), int(status)))
def med(name, state, i):
    r = runs[(name, state)]
    return None if any(x[3] != 0 for x in r) else statistics.median(x[i] for x in r)

# The spread of the off runs alone: their interquartile range over their
# median, what the machine's noise does to one workload.
def spread(name, i):
    v = [x[i] for x in runs[(name, "off")]]
    if len(v) < 2 or statistics.median(v) <= 0:
        return "-"
    q = statistics.quantiles(v, n=4)
    return "%.0f%%" % (100 * (q[2] - q[0]) / statistics.median(v))

def table(i, title, unit, scale, fmt, with_bar):
    print(title + ":")
    print()
    print("| workload | %s %s | %s %s | %s / %s |%s" % (off_name, unit, on_name, unit, on_name, off_name,
                                                    " %s spread |" % off_name if with_bar else ""))
    print("|---|---|---|---|" + ("---|" if with_bar else ""))
    logs = []
    for w in works:
        off, on = med(w, "off", i), med(w, "on", i)
        if off is None or on is None or off <= 0 or on <= 0:
            cells = ["failed" if x is None else fmt % (x * scale) for x in (off, on)] + ["-"]
        else:
            r = on / off
            logs.append(math.log(r))
            cell = "%.3fx" % r
            cells = [fmt % (off * scale), fmt % (on * scale), "**%s**" % cell if with_bar and r > 1 + bar / 100 else cell]
        if with_bar:
            cells.append(spread(w, i))
        print("| %s | %s |" % (w, " | ".join(cells)))
    if logs:
        print("| **geometric mean** | | | **%.3fx** |%s" % (math.exp(sum(logs) / len(logs)), " |" if with_bar else ""))
    print()
table(0, "Median wall time", "s", 1, "%.3f", True)
table(1, "Median CPU time (user + system)", "s", 1, "%.2f", True)
table(2, "Median peak RSS", "MiB", 1 / 1024, "%.1f", False)
reps = max(len(v) for v in runs.values())
print("Ratios above the %g%% bar are in bold. A cell says failed when any run of it exited non-zero."
      " The machine has %d cores and is shared with other work, so one workload's time moves between"
      " runs of the same library and settings: the spread column is the interquartile range of the"
      " %d %s runs over their median. Where it is wider than a few percent the ratio cannot show"
      " a cost of %g%%; %s, measured with perf below, can." % (bar, os.cpu_count(), reps, off_name, bar, measure))
print()
PYEOF
}

# lib_perf_share CHAINS GROUP... -- "samples share...": of the perf samples
# in CHAINS (perf script -F comm,ip,sym,dso output, one call chain a sample,
# innermost frame first), the percentage with a frame of each GROUP on its
# chain. A GROUP is a comma-separated list of function names (NAME also
# matches its compiler clones NAME.part.0 and the like; NAME* is a prefix);
# one that starts with "kernel:" counts only the samples whose innermost
# frame is the kernel's.
lib_perf_share() {
    "$PY" - "$@" <<'PYEOF'
import sys
chains, groups = sys.argv[1], sys.argv[2:]
blocks = []
for b in open(chains).read().split("\n\n"):
    lines = b.strip().splitlines()[1:]
    if not lines:
        continue
    frames = []
    for l in lines:
        sym, _, dso = l.split(None, 1)[-1].rpartition(" (")
        frames.append((sym, dso.rstrip(")")))
    blocks.append(frames)
def hit(sym, names):
    return any(sym.startswith(n[:-1]) if n.endswith("*") else sym == n or sym.startswith(n + ".") for n in names)
out = []
for g in groups:
    kernel = g.startswith("kernel:")
    names = g[len("kernel:"):].split(",") if kernel else g.split(",")
    n = sum(1 for f in blocks if (not kernel or f[0][1] == "[kernel.kallsyms]") and any(hit(s, names) for s, _ in f))
    out.append("%.2f" % (100.0 * n / max(len(blocks), 1)))
print(len(blocks), " ".join(out))
PYEOF
}

# lib_perf_workloads LIB DIR GROUPS [VAR=VALUE...] -- each workload of
# WORKLOADS once under perf (cpu-clock at 2000 Hz, DWARF call graphs:
# libmallet and libgcc_s keep no frame pointers, so -g's frame-pointer
# chains would break inside them), with LIB preloaded and the variables
# set; appends "name samples share..." (lib_perf_share of the GROUPS, a
# space-separated list) to DIR/shares. The recording and chains of the
# workload whose first share is highest are kept as DIR/top.data and
# DIR/top.txt, its name and command in PERF_TOP_NAME and PERF_TOP_CMD.
lib_perf_workloads() {
    local lib=$1 dir=$2 groups=$3 w name cmd share top=-1
    shift 3
    PERF_TOP_NAME='' PERF_TOP_CMD=''
    mkdir -p "$dir"
    : >"$dir/shares"
    command -v perf >/dev/null || return 0
    for w in "${WORKLOADS[@]}"; do
        name=${w%%|*} cmd=${w#*|}
        echo "  perf: $name" >&2
        env "$@" perf record -q -e cpu-clock -F 2000 --call-graph dwarf \
            -o "$dir/perf.data" -- env LD_PRELOAD="$lib" bash -c "$cmd" >/dev/null 2>&1 || continue
        perf script -i "$dir/perf.data" -F comm,ip,sym,dso --no-inline >"$dir/perf.txt" 2>/dev/null
        # shellcheck disable=SC2086 # the groups are words
        share=$(lib_perf_share "$dir/perf.txt" $groups)
        echo "$name $share" >>"$dir/shares"
        if "$PY" -c 'import sys; sys.exit(float(sys.argv[1]) <= float(sys.argv[2]))' "$(echo "$share" | cut -d' ' -f2)" "$top"; then
            # shellcheck disable=SC2034 # for the caller
            top=$(echo "$share" | cut -d' ' -f2) PERF_TOP_NAME=$name PERF_TOP_CMD=$cmd
            mv "$dir/perf.data" "$dir/top.data"
            mv "$dir/perf.txt" "$dir/top.txt"
        fi
    done
    rm -f "$dir/perf.data" "$dir/perf.txt"
}

# lib_perf_excerpt DATA SYMBOLS -- perf report's children and self shares
# by symbol for the functions matching SYMBOLS (an extended regular
# expression, anchored), the inlined copies left out.
lib_perf_excerpt() {
    perf report -i "$1" --stdio --children --sort symbol -g none 2>/dev/null |
        grep -E "^# +Children|\] ($2)( |\$)" |
        grep -v '(inlined)' | sed -E 's/^# +/  /; s/ +IPC .*//; s/[ -]*$//'
}
