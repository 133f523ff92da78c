"""What the peer benchmarks share: the command line, the timing and the JSON line.

Each engine's script defines one builder per workload: `build(n)` constructs everything for size
`n` (not timed) and returns a coroutine function that runs it once and checks its result.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from typing import Awaitable, Callable

WORKLOADS = ("w1_chain", "w2_loop", "w3_fanout", "w4_concurrent", "w5_stream", "w6_state")

Builder = Callable[[int], Callable[[], Awaitable[None]]]


class BenchError(Exception):
    """A timed run returned a wrong result."""


def check(ok: bool, message: str) -> None:
    if not ok:
        raise BenchError(message)


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


async def measure(build: Builder, n: int) -> float:
    timed = build(n)  # construction: not timed
    await build(10)()  # warm-up of size 10: not timed
    started = time.perf_counter()
    await timed()
    return time.perf_counter() - started


def main(engine: str, builders: dict[str, Builder], argv: list[str]) -> int:
    """`SCRIPT WORKLOAD N`: measures one workload and prints one JSON line; exit 1 on a failed
    or wrong run, 2 on bad usage."""
    if len(argv) != 2 or argv[0] not in builders or not argv[1].isdigit() or int(argv[1]) <= 0:
        print(f"usage: {sys.argv[0]} WORKLOAD N", file=sys.stderr)
        print(f"workloads: {', '.join(WORKLOADS)}", file=sys.stderr)
        return 2
    workload, n = argv[0], int(argv[1])
    try:
        seconds = asyncio.run(measure(builders[workload], n))
    except Exception as error:  # noqa: BLE001 - any failure is a failed measurement
        print(f"{workload} n={n} failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    line = {
        "engine": engine,
        "workload": workload,
        "n": n,
        "seconds": seconds,
        "per_item_us": seconds * 1e6 / n,
        "peak_rss_mb": peak_rss_mb(),
    }
    if workload == "w4_concurrent":
        line["runs_per_s"] = n / seconds
    print(json.dumps(line, separators=(",", ":")))
    return 0
