"""Drives `eventflow serve --demo` with LlamaIndex's own Python client, llama-agents-client 0.4.1.

    python_compat.sh VENV_DIR     # creates the venv, starts the server, runs this script

or by hand, against a running `eventflow serve --demo`:

    VENV_DIR/bin/python crates/eventflow-cli/tests/python_compat.py http://127.0.0.1:8080

With EVENTFLOW set to the `eventflow` binary, a run started here is also answered by the CLI.
Every check is an assert; the script prints one line per check and exits non-zero on the first
failure, or after TIMEOUT seconds in all.
"""

import asyncio
import os
import subprocess
import sys

import httpx
from llama_agents.client import WorkflowClient
from workflows.events import HumanResponseEvent, InputRequiredEvent, StartEvent

DEMO = ["quickstart", "branching", "refinement", "parallel_search", "streaming", "hitl"]
HITL_QUERY = "A customer asks for a refund of a damaged order"
TIMEOUT = 180  # seconds for the whole script: a stream that never closes fails it
MAX_EVENTS = 1000  # per stream: a stream that never ends fails it


def ok(name: str) -> None:
    print(f"ok  {name}", flush=True)


def assert_sequences(sequences: list, first: int, last: int) -> None:
    """A stream's resume positions are exactly first..last, in order, with no gap or repeat."""
    assert sequences == list(range(first, last + 1)), (sequences, first, last)


async def answer_hitl(client: WorkflowClient, handler_id: str, response: str) -> list[str]:
    """Streams a hitl run, answering its question with `response`; returns the event types."""
    types, sequences = [], []
    stream = client.get_workflow_events(handler_id)
    async for event in stream:
        types.append(event.type)
        sequences.append(stream.last_sequence)
        assert len(types) <= MAX_EVENTS, types
        if event.type == "InputRequiredEvent":
            question = event.load_event([InputRequiredEvent])
            assert "needs approval" in question.prefix, question.prefix
            sent = await client.send_event(handler_id, HumanResponseEvent(response=response))
            assert sent.status == "sent", sent
    assert_sequences(sequences, 1, len(types))
    return types


async def first_event(client: WorkflowClient, handler_id: str):
    """The first event of a handler's stream; the stream is closed after it."""
    events = client.get_workflow_events(handler_id).__aiter__()
    try:
        return await events.__anext__()
    finally:
        await events.aclose()


async def main(base: str) -> None:
    client = WorkflowClient(base_url=base)

    assert (await client.is_healthy()).status == "healthy"
    ok("is_healthy")

    names = (await client.list_workflows()).workflows
    assert set(DEMO) <= set(names), names
    ok(f"list_workflows: {', '.join(names)}")

    done = await client.run_workflow(
        "quickstart", start_event=StartEvent(query="What is quantum computing?")
    )
    assert done.status == "completed", done
    answer = done.result.load_event().result
    assert "qubits" in answer, answer
    done = await client.run_workflow("quickstart", start_event={"query": "What is Rust?"})
    assert done.status == "completed" and "Rust" in done.result.value["result"], done
    ok("run_workflow quickstart (StartEvent and dict), result.load_event()")

    started = await client.run_workflow_nowait(
        "streaming", start_event=StartEvent(prompt="Why are workflows event-driven?")
    )
    assert started.status == "running", started
    types, tokens, sequences = [], [], []
    stream = client.get_workflow_events(started.handler_id)
    async for event in stream:
        types.append(event.type)
        sequences.append(stream.last_sequence)
        assert len(types) <= MAX_EVENTS, types
        if event.type == "TokenEvent":
            tokens.append(event.value["text"])
    assert types[0] == "ProgressEvent" and types[-1] == "StopEvent", types
    assert_sequences(sequences, 1, len(types))
    assert types.count("TokenEvent") == len(tokens) > 5, types
    final = await client.wait_for_handler(started.handler_id, timeout=30, poll_interval=0.05)
    assert final.status == "completed", final
    assert "".join(tokens) == final.result.value["result"], (tokens, final.result)
    ok(f"run_workflow_nowait streaming + get_workflow_events (events 1..{len(types)})")

    # Resume where a reader would have left off mid-stream: the rest, numbered on.
    middle = len(types) // 2
    resumed_types, resumed = [], []
    stream = client.get_workflow_events(started.handler_id, after_sequence=middle)
    async for event in stream:
        resumed_types.append(event.type)
        resumed.append(stream.last_sequence)
        assert len(resumed) <= MAX_EVENTS, resumed
    assert resumed_types == types[middle:], (resumed_types, types)
    assert_sequences(resumed, middle + 1, len(types))
    ok(f"get_workflow_events after_sequence={middle}: events {middle + 1}..{len(types)}")

    started = await client.run_workflow_nowait("hitl", start_event=StartEvent(query=HITL_QUERY))
    types = await answer_hitl(client, started.handler_id, "yes")
    assert types == ["InputRequiredEvent", "StopEvent"], types
    final = await client.get_handler(started.handler_id)
    assert final.status == "completed", final
    result = final.result.value["result"]
    assert result["response"] == "yes" and result["status"] == "approved", result
    ok("hitl: InputRequiredEvent streamed, HumanResponseEvent sent, response in the result")

    eventflow = os.environ.get("EVENTFLOW")
    if eventflow:
        started = await client.run_workflow_nowait("hitl", start_event={"query": HITL_QUERY})
        await first_event(client, started.handler_id)
        subprocess.run(
            [eventflow, "--url", base, "send", started.handler_id,
             "HumanResponseEvent", "response=from the CLI"],
            check=True, stdout=subprocess.DEVNULL, timeout=60,
        )
        final = await client.wait_for_handler(started.handler_id, timeout=30, poll_interval=0.05)
        assert final.result.value["result"]["response"] == "from the CLI", final
        ok("hitl started by Python, answered by `eventflow send`")

    started = await client.run_workflow_nowait("hitl", start_event=StartEvent(query=HITL_QUERY))
    first = await first_event(client, started.handler_id)
    assert first.type == "InputRequiredEvent", first
    cancelled = await client.cancel_handler(started.handler_id)
    assert cancelled.status == "cancelled", cancelled
    try:
        await client.get_handler(started.handler_id)
        raise AssertionError("a cancelled handler answers 500")
    except httpx.HTTPStatusError as error:
        assert error.response.status_code == 500, error
        assert error.response.json()["status"] == "cancelled", error.response.text
    cancelled_id = started.handler_id
    ok("cancel_handler: the handler is cancelled")

    handlers = (await client.get_handlers()).handlers
    by_id = {h.handler_id: h for h in handlers}
    assert by_id[cancelled_id].status == "cancelled", by_id[cancelled_id]
    assert {"quickstart", "streaming", "hitl"} <= {h.workflow_name for h in handlers}, handlers
    completed = (await client.get_handlers(status=["completed"], workflow_name=["hitl"])).handlers
    assert completed and all(
        h.status == "completed" and h.workflow_name == "hitl" for h in completed
    ), completed
    ok(f"get_handlers ({len(handlers)} handlers; filters by status and workflow)")

    purged = await client.cancel_handler(cancelled_id, purge=True)
    assert purged.status == "deleted", purged
    ok("cancel_handler purge=True")

    print("all checks passed", flush=True)


if __name__ == "__main__":
    base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
    asyncio.run(asyncio.wait_for(main(base), TIMEOUT))
