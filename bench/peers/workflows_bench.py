"""The six benchmark workloads on llama-index-workflows (the Python engine eventflow re-imagines).

    python bench/peers/workflows_bench.py WORKLOAD N

prints exactly one JSON line, the same shape as `eventflow-bench`:

    {"engine":"llama-index-workflows","workload":"w2_loop","n":10000,"seconds":...,
     "per_item_us":...,"peak_rss_mb":...}

(w4_concurrent adds "runs_per_s"). Workflow construction and a warm-up run of size 10 are not
timed; the timed run's result is checked and a wrong result exits non-zero.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Awaitable, Callable

from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StopEvent

from harness import Builder, check, main

ENGINE = "llama-index-workflows"


# --- w1_chain: ten steps in a line, each adding 1 to the carried integer -------------------


class ChainStart(StartEvent):
    c: int


class E1(Event):
    c: int


class E2(Event):
    c: int


class E3(Event):
    c: int


class E4(Event):
    c: int


class E5(Event):
    c: int


class E6(Event):
    c: int


class E7(Event):
    c: int


class E8(Event):
    c: int


class E9(Event):
    c: int


class ChainFlow(Workflow):
    @step
    async def s1(self, ev: ChainStart) -> E1:
        return E1(c=ev.c + 1)

    @step
    async def s2(self, ev: E1) -> E2:
        return E2(c=ev.c + 1)

    @step
    async def s3(self, ev: E2) -> E3:
        return E3(c=ev.c + 1)

    @step
    async def s4(self, ev: E3) -> E4:
        return E4(c=ev.c + 1)

    @step
    async def s5(self, ev: E4) -> E5:
        return E5(c=ev.c + 1)

    @step
    async def s6(self, ev: E5) -> E6:
        return E6(c=ev.c + 1)

    @step
    async def s7(self, ev: E6) -> E7:
        return E7(c=ev.c + 1)

    @step
    async def s8(self, ev: E7) -> E8:
        return E8(c=ev.c + 1)

    @step
    async def s9(self, ev: E8) -> E9:
        return E9(c=ev.c + 1)

    @step
    async def s10(self, ev: E9) -> StopEvent:
        return StopEvent(result=ev.c + 1)


def w1_chain(n: int) -> Callable[[], Awaitable[None]]:
    wf = ChainFlow(timeout=None)

    async def run() -> None:
        for _ in range(n):
            c = await wf.run(start_event=ChainStart(c=0))
            check(c == 10, f"w1_chain returned {c}, expected 10")

    return run


# --- w2_loop: one step looping N times carrying a counter ----------------------------------


class LoopEv(Event):
    i: int


class LoopFlow(Workflow):
    def __init__(self, n: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.n = n

    @step
    async def spin(self, ev: StartEvent | LoopEv) -> LoopEv | StopEvent:
        i = (ev.i if isinstance(ev, LoopEv) else 0) + 1
        if i >= self.n:
            return StopEvent(result=i)
        return LoopEv(i=i)


def w2_loop(n: int) -> Callable[[], Awaitable[None]]:
    wf = LoopFlow(n, timeout=None)

    async def run() -> None:
        count = await wf.run()
        check(count == n, f"w2_loop returned {count}, expected {n}")

    return run


# --- w3_fanout: send N WorkEv, 8 workers double them, a collector sums N ResultEv ----------


class WorkEv(Event):
    x: int


class ResultEv(Event):
    y: int


class FanoutFlow(Workflow):
    def __init__(self, n: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.n = n

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> WorkEv | None:
        for i in range(self.n):
            ctx.send_event(WorkEv(x=i))
        return None

    @step(num_workers=8)
    async def work(self, ev: WorkEv) -> ResultEv:
        return ResultEv(y=2 * ev.x)

    @step
    async def collect(self, ctx: Context, ev: ResultEv) -> StopEvent | None:
        events = ctx.collect_events(ev, [ResultEv] * self.n)
        if events is None:
            return None
        return StopEvent(result=sum(e.y for e in events))


def w3_fanout(n: int) -> Callable[[], Awaitable[None]]:
    wf = FanoutFlow(n, timeout=None)

    async def run() -> None:
        total = await wf.run()
        check(total == n * (n - 1), f"w3_fanout returned {total}, expected {n * (n - 1)}")

    return run


# --- w4_concurrent: N concurrent runs of a 3-step chain, awaited together -----------------


class ThreeStart(StartEvent):
    c: int


class T1(Event):
    c: int


class T2(Event):
    c: int


class ThreeFlow(Workflow):
    @step
    async def a(self, ev: ThreeStart) -> T1:
        return T1(c=ev.c + 1)

    @step
    async def b(self, ev: T1) -> T2:
        return T2(c=ev.c + 1)

    @step
    async def d(self, ev: T2) -> StopEvent:
        return StopEvent(result=ev.c + 1)


def w4_concurrent(n: int) -> Callable[[], Awaitable[None]]:
    wf = ThreeFlow(timeout=None)

    async def run() -> None:
        results = await asyncio.gather(*(wf.run(start_event=ThreeStart(c=c)) for c in range(n)))
        for c, result in enumerate(results):
            check(result == c + 3, f"w4 run {c} returned {result}, expected {c + 3}")

    return run


# --- w5_stream: one step writes N TickEv to the stream; the caller counts them -------------


class TickEv(Event):
    i: int


class StreamFlow(Workflow):
    def __init__(self, n: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.n = n

    @step
    async def emit(self, ctx: Context, ev: StartEvent) -> StopEvent:
        for i in range(self.n):
            ctx.write_event_to_stream(TickEv(i=i))
        return StopEvent(result=self.n)


def w5_stream(n: int) -> Callable[[], Awaitable[None]]:
    wf = StreamFlow(n, timeout=None)

    async def run() -> None:
        handler = wf.run()
        ticks = 0
        async for event in handler.stream_events():
            if isinstance(event, TickEv):
                ticks += 1
        result = await handler
        check(ticks == n and result == n, f"w5 counted {ticks} ticks, result {result}, expected {n}")

    return run


# --- w6_state: a counter in the context state, read, incremented and written back --------


class TickLoop(Event):
    pass


class StateFlow(Workflow):
    def __init__(self, n: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.n = n

    @step
    async def tick(self, ctx: Context, ev: StartEvent | TickLoop) -> TickLoop | StopEvent:
        counter = await ctx.store.get("counter", default=0)
        counter += 1
        await ctx.store.set("counter", counter)
        if counter >= self.n:
            return StopEvent(result=counter)
        return TickLoop()


def w6_state(n: int) -> Callable[[], Awaitable[None]]:
    wf = StateFlow(n, timeout=None)

    async def run() -> None:
        count = await wf.run()
        check(count == n, f"w6_state returned {count}, expected {n}")

    return run


BUILDERS: dict[str, Builder] = {
    "w1_chain": w1_chain,
    "w2_loop": w2_loop,
    "w3_fanout": w3_fanout,
    "w4_concurrent": w4_concurrent,
    "w5_stream": w5_stream,
    "w6_state": w6_state,
}


if __name__ == "__main__":
    sys.exit(main(ENGINE, BUILDERS, sys.argv[1:]))
