#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# synth.py OUTDIR -- write the synthetic traces (CS:APP malloc-lab format)
# into OUTDIR, uncompressed; bench/traces/record.sh compresses them.
# Deterministic: a fixed seed, so the files are the same on every run.
#
#   frag-worst.trace       allocate blocks, free every other one, then ask
#                          for blocks a little larger than every hole; two
#                          phases later free the survivors too. Their holes
#                          fit later requests only once free neighbours are
#                          merged, so heaps that do not coalesce grow and
#                          grow while the live data stays small.
#   realloc-growth.trace   buffers grown by realloc a little at a time (a
#                          string builder, a vector), with small blocks
#                          allocated between the steps so that growing in
#                          place is not always possible.
#   producer-consumer.trace  messages of mixed sizes made at one end of a
#                          queue and freed at the other after a lag: a
#                          producer thread (0) makes them and a consumer
#                          thread (1) frees them, so `mallet replay
#                          --threads` replays the two on two threads.
import random
import sys


class Trace:
    """Collects ops with fresh ids and writes the file with its header."""

    def __init__(self):
        self.ops = []        # text lines
        self.next_id = 0     # ids handed out
        self.size = {}       # live id -> requested size
        self.live = 0        # requested bytes live now
        self.peak = 0        # most bytes live at once

    def alloc(self, n):
        i = self.next_id
        self.next_id += 1
        self.ops.append("a %d %d" % (i, n))
        self.size[i] = n
        self._account(n)
        return i

    def free(self, i, thread=0):
        # Thread 0's ops carry no number; any other's end in @THREAD.
        self.ops.append("f %d" % i + (" @%d" % thread if thread else ""))
        self.live -= self.size.pop(i)

    def realloc(self, i, n):
        self.ops.append("r %d %d" % (i, n))
        self.live -= self.size[i]
        self.size[i] = n
        self._account(n)

    def _account(self, n):
        self.live += n
        self.peak = max(self.peak, self.live)

    def write(self, path):
        for i in list(self.size):
            self.free(i)
        with open(path, "w") as f:
            f.write("%d\n%d\n%d\n1\n" % (self.peak, self.next_id, len(self.ops)))
            f.write("\n".join(self.ops))
            f.write("\n")


def frag_worst(rng):
    t = Trace()
    size, pinned = 32, []
    for _ in range(16):
        blocks = [t.alloc(size) for _ in range(1000)]
        for b in blocks[::2]:
            t.free(b)
        pinned.append(blocks[1::2])      # every other block stays: holes of `size`
        if len(pinned) > 2:              # release an old phase: merged, its holes
            for b in pinned.pop(0):      # would fit anything that follows
                t.free(b)
        size = size + size // 4 + 16     # just too big for any single old hole
    return t


def realloc_growth(rng):
    t = Trace()
    buffers = {t.alloc(16): 16 for _ in range(24)}
    small = []
    for _ in range(6000):
        b = rng.choice(list(buffers))
        n = buffers[b] + rng.choice((16, 64, 100, buffers[b] // 8 + 1))
        if n > 256 * 1024:               # a finished buffer: start a new one
            t.free(b)
            del buffers[b]
            buffers[t.alloc(16)] = 16
            continue
        t.realloc(b, n)
        buffers[b] = n
        small.append(t.alloc(rng.randint(8, 96)))
        if len(small) > 400:
            t.free(small.pop(rng.randrange(len(small))))
    return t


def producer_consumer(rng):
    t = Trace()
    queue = []
    for step in range(60000):
        burst = rng.random() < 0.1       # the producer sometimes runs ahead
        for _ in range(rng.randint(2, 6) if burst else 1):
            n = rng.choice((24, 48, 64, 128, 256)) if rng.random() < 0.9 else rng.randint(512, 8192)
            queue.append(t.alloc(n))
        lag = 300 + (step // 5000) % 4 * 200
        while len(queue) > lag:
            t.free(queue.pop(0), thread=1)
    return t


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    for name, fn in (("frag-worst", frag_worst), ("realloc-growth", realloc_growth),
                     ("producer-consumer", producer_consumer)):
        fn(random.Random(42)).write("%s/%s.trace" % (out, name))


if __name__ == "__main__":
    main()
