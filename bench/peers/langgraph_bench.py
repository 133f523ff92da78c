"""The six benchmark workloads on LangGraph, in the most natural LangGraph shapes.

    python bench/peers/langgraph_bench.py WORKLOAD N

prints exactly one JSON line, the same shape as `eventflow-bench`:

    {"engine":"langgraph","workload":"w2_loop","n":10000,"seconds":...,
     "per_item_us":...,"peak_rss_mb":...}

(w4_concurrent adds "runs_per_s"). Graph construction and compilation and a warm-up run of size
10 are not timed; the timed run's result is checked and a wrong result exits non-zero. All nodes
are async and the graphs are run with `ainvoke` / `astream`, as the eventflow and Workflows
versions are async. No checkpointer (LangGraph's default).

Shapes:
- w1_chain: StateGraph of ten nodes in a line, state {"c"}; N `ainvoke` one after the other.
- w2_loop: one node with a self-loop through a conditional edge; recursion_limit above N.
- w3_fanout: a start node, a conditional edge returning N `Send("work", {"x": i})`, a worker
  node returning {"total": 2x} into a summing reducer (operator.add), and a collector node.
- w4_concurrent: a 3-node chain; N `ainvoke` started together with asyncio.gather.
- w5_stream: one node calls `get_stream_writer()` N times; the caller counts the "custom"
  chunks of `astream(stream_mode=["custom", "values"])`.
- w6_state: one node reads the counter from the graph state, adds 1 and writes it back, in a
  self-loop through a conditional edge until N.
"""

from __future__ import annotations

import asyncio
import operator
import sys
from typing import Annotated, Any, Awaitable, Callable, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from harness import Builder, check, main

ENGINE = "langgraph"


# --- w1_chain: ten nodes in a line, each adding 1 to the carried integer ------------------


class CState(TypedDict):
    c: int


async def add_one(state: CState) -> dict[str, int]:
    return {"c": state["c"] + 1}


def chain_graph(length: int) -> Any:
    graph = StateGraph(CState)
    names = [f"s{k}" for k in range(1, length + 1)]
    for name in names:
        graph.add_node(name, add_one)
    graph.add_edge(START, names[0])
    for before, after in zip(names, names[1:]):
        graph.add_edge(before, after)
    graph.add_edge(names[-1], END)
    return graph.compile()


def w1_chain(n: int) -> Callable[[], Awaitable[None]]:
    app = chain_graph(10)

    async def run() -> None:
        for _ in range(n):
            c = (await app.ainvoke({"c": 0}))["c"]
            check(c == 10, f"w1_chain returned {c}, expected 10")

    return run


# --- w2_loop: one node in a self-loop carrying a counter ----------------------------------


class LoopState(TypedDict):
    i: int


def w2_loop(n: int) -> Callable[[], Awaitable[None]]:
    async def spin(state: LoopState) -> dict[str, int]:
        return {"i": state["i"] + 1}

    def again(state: LoopState) -> str:
        return END if state["i"] >= n else "spin"

    graph = StateGraph(LoopState)
    graph.add_node("spin", spin)
    graph.add_edge(START, "spin")
    graph.add_conditional_edges("spin", again, ["spin", END])
    app = graph.compile()
    config = {"recursion_limit": n + 10}

    async def run() -> None:
        count = (await app.ainvoke({"i": 0}, config))["i"]
        check(count == n, f"w2_loop returned {count}, expected {n}")

    return run


# --- w3_fanout: Send N items to a worker node; a summing reducer collects them -----------


class FanState(TypedDict):
    total: Annotated[int, operator.add]
    result: int


class WorkState(TypedDict):
    x: int


def w3_fanout(n: int) -> Callable[[], Awaitable[None]]:
    async def start(state: FanState) -> dict[str, int]:
        return {}

    def fan_out(state: FanState) -> list[Send]:
        return [Send("work", {"x": i}) for i in range(n)]

    async def work(state: WorkState) -> dict[str, int]:
        return {"total": 2 * state["x"]}

    async def collect(state: FanState) -> dict[str, int]:
        return {"result": state["total"]}

    graph = StateGraph(FanState)
    graph.add_node("start", start)
    graph.add_node("work", work)
    graph.add_node("collect", collect)
    graph.add_edge(START, "start")
    graph.add_conditional_edges("start", fan_out, ["work"])
    graph.add_edge("work", "collect")
    graph.add_edge("collect", END)
    app = graph.compile()

    async def run() -> None:
        total = (await app.ainvoke({"total": 0}))["result"]
        check(total == n * (n - 1), f"w3_fanout returned {total}, expected {n * (n - 1)}")

    return run


# --- w4_concurrent: N concurrent runs of a 3-node chain, awaited together ----------------


def w4_concurrent(n: int) -> Callable[[], Awaitable[None]]:
    app = chain_graph(3)

    async def run() -> None:
        outputs = await asyncio.gather(*(app.ainvoke({"c": c}) for c in range(n)))
        for c, output in enumerate(outputs):
            result = output["c"]
            check(result == c + 3, f"w4 run {c} returned {result}, expected {c + 3}")

    return run


# --- w5_stream: one node writes N ticks to the custom stream; the caller counts them ------


class StreamState(TypedDict):
    result: int


def w5_stream(n: int) -> Callable[[], Awaitable[None]]:
    async def emit(state: StreamState) -> dict[str, int]:
        writer = get_stream_writer()
        for i in range(n):
            writer({"tick": i})
        return {"result": n}

    graph = StateGraph(StreamState)
    graph.add_node("emit", emit)
    graph.add_edge(START, "emit")
    graph.add_edge("emit", END)
    app = graph.compile()

    async def run() -> None:
        ticks = 0
        result = None
        async for mode, chunk in app.astream({"result": 0}, stream_mode=["custom", "values"]):
            if mode == "custom":
                ticks += 1
            else:
                result = chunk["result"]
        check(ticks == n and result == n, f"w5 counted {ticks} ticks, result {result}, expected {n}")

    return run


# --- w6_state: a counter in the graph state, read, incremented and written back ----------


class CounterState(TypedDict):
    counter: int


def w6_state(n: int) -> Callable[[], Awaitable[None]]:
    async def tick(state: CounterState) -> dict[str, int]:
        counter = state["counter"]
        counter += 1
        return {"counter": counter}

    def again(state: CounterState) -> str:
        return END if state["counter"] >= n else "tick"

    graph = StateGraph(CounterState)
    graph.add_node("tick", tick)
    graph.add_edge(START, "tick")
    graph.add_conditional_edges("tick", again, ["tick", END])
    app = graph.compile()
    config = {"recursion_limit": n + 10}

    async def run() -> None:
        count = (await app.ainvoke({"counter": 0}, config))["counter"]
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
