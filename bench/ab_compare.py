#!/usr/bin/env python3
"""A/B of two eventflow-bench binaries, interleaved: for each workload, runs A then B, ROUNDS
times, and prints the medians and B's change. Interleaving keeps a noisy machine's slow spells
from landing on one side only; use it to check that a change makes no workload slower.

    python3 bench/ab_compare.py BEFORE_BINARY AFTER_BINARY [ROUNDS]

Each measurement is one process printing one JSON line (see bench/src/main.rs). Standard
library only.
"""
import json
import statistics
import subprocess
import sys
import tempfile

WORKLOADS = [
    ("w1_chain", "1000"),
    ("w2_loop", "10000"),
    ("w3_fanout", "1000"),
    ("w4_concurrent", "1000"),
    ("w5_stream", "10000"),
    ("w6_state", "10000"),
    ("w2_loop_durable", "2000", "memory"),
    ("w2_loop_durable", "2000", "sqlite"),
]


def measure(binary, workload):
    name, n, *store = workload
    args = [binary, name, n]
    if store:
        url = store[0]
        if url == "sqlite":
            url = f"sqlite:{tempfile.mkdtemp()}/bench.db"
        args += ["--store", url]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])["per_item_us"]


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    before, after = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) == 4 else 25
    print("| workload | store | before µs/item | after µs/item | change |")
    print("|---|---|---|---|---|")
    for workload in WORKLOADS:
        times = {before: [], after: []}
        for _ in range(rounds):
            for binary in (before, after):
                times[binary].append(measure(binary, workload))
        b = statistics.median(times[before])
        a = statistics.median(times[after])
        store = workload[2] if len(workload) > 2 else "-"
        print(f"| {workload[0]} | {store} | {b:.3f} | {a:.3f} | {(a / b - 1) * 100:+.1f}% |")


if __name__ == "__main__":
    main()
