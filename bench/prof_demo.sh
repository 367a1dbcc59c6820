#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# prof_demo.sh -- the README's flame graph, bench/plots/prof-python3.svg:
# `mallet profile` on python3 (PYTHONMALLOC=malloc, so every object is a
# malloc) building a few real data structures -- a JSON document of ~5 MiB
# dumped and parsed back, a dict of 200k entries, a list of 100k strings --
# and the flame graph of its heap at the peak. The samples are random, so
# each run draws a slightly different picture.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MALLET=$PWD/$BUILD/mallet
[ -x "$MALLET" ] || { echo "prof_demo: $MALLET not built (make)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/demo.py" <<'PYEOF'
import json
doc = {"items": [{"id": i, "name": "item-%d" % i, "tags": ["t%d" % (i * k % 97) for k in range(8)],
                  "price": i * 0.25} for i in range(40000)]}
text = json.dumps(doc)
parsed = json.loads(text)
index = {"key-%d" % i: (i, str(i) * 3) for i in range(200000)}
words = [("w%d " % i) * (i % 16 + 1) for i in range(100000)]
print(len(text), len(parsed["items"]), len(index), sum(map(len, words)))
PYEOF
# Run from the work folder so the picture names its profile python3.peak.heap.
(cd "$work" && PYTHONMALLOC=malloc "$MALLET" profile -o python3 -- /usr/bin/python3 demo.py >/dev/null)
mkdir -p bench/plots
cp "$work/python3.peak.svg" bench/plots/prof-python3.svg
echo "prof_demo: wrote bench/plots/prof-python3.svg" >&2
