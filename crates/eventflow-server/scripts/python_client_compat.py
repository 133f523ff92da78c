"""Drives an eventflow server with LlamaIndex's own Python client, unchanged.

    python -m venv /tmp/venv && /tmp/venv/bin/pip install llama-agents-client==0.4.1
    cargo run -p eventflow-server --example serve -- 127.0.0.1:8766 sqlite:/tmp/compat.db &
    /tmp/venv/bin/python crates/eventflow-server/scripts/python_client_compat.py http://127.0.0.1:8766

or all at once, as CI does (venv, build, server on a free port, this script, server stopped):

    bash crates/eventflow-server/scripts/python_client_compat.sh VENV_DIR

Every check is an assert; the script prints one line per check and exits non-zero on the first
failure, or after TIMEOUT seconds in all.
"""

import asyncio
import sys
import uuid

import httpx
from llama_agents.client import WorkflowClient
from workflows.events import (
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
)


TIMEOUT = 120  # seconds for the whole script: a stream that never closes fails it
MAX_EVENTS = 100  # per stream: a stream that never ends fails it


def ok(name: str) -> None:
    print(f"ok  {name}", flush=True)


async def read(stream) -> list:
    """Reads a stream to its end: `(stream.last_sequence, event)` for each event."""
    seen = []
    async for event in stream:
        seen.append((stream.last_sequence, event))
        assert len(seen) <= MAX_EVENTS, f"more than {MAX_EVENTS} events: {seen[:5]}..."
    return seen


def assert_sequences(seen: list, first: int, last: int) -> None:
    """The resume positions of a stream are exactly first..last, in order, no gap or repeat."""
    sequences = [sequence for sequence, _ in seen]
    assert sequences == list(range(first, last + 1)), (sequences, first, last)


async def main(base: str) -> None:
    client = WorkflowClient(base_url=base)

    assert (await client.is_healthy()).status == "healthy"
    ok("is_healthy")
    names = (await client.list_workflows()).workflows
    assert {"greet", "fail", "ask", "approve", "orders", "visits"} <= set(names), names
    ok("list_workflows")
    schema = await client.get_workflow_schema("greet")
    assert schema.start["title"] == "StartEvent" and schema.stop["title"] == "StopEvent"
    ok("get_workflow_schema")
    events = await client.get_workflow_events_schema("greet")
    assert [e["title"] for e in events.events] == [
        "HumanResponseEvent",
        "InputRequiredEvent",
        "StartEvent",
        "StopEvent",
    ], events
    ok("get_workflow_events_schema")
    graph = (await client.get_workflow_graph("approve")).graph
    kinds = {node.id: node.node_type for node in graph.nodes}
    assert kinds["external_step"] == "external" and kinds["ask"] == "step", kinds
    ok("get_workflow_graph (pydantic WorkflowGraph)")

    done = await client.run_workflow("greet", start_event=StartEvent(name="Ada"))
    assert done.status == "completed"
    assert done.result.load_event().result == "Hello, Ada!"
    ok("run_workflow + result.load_event()")
    done = await client.run_workflow("greet", start_event={"name": "Dict"})
    assert done.result.value == {"result": "Hello, Dict!"}
    ok("run_workflow with a dict")
    try:
        await client.run_workflow("fail")
        raise AssertionError("a failed run must raise")
    except httpx.HTTPStatusError as error:
        assert error.response.status_code == 500
        body = error.response.json()
        assert body["status"] == "failed" and "boom" in body["error"], body
    ok("run_workflow of a failing workflow: 500 naming the step")

    done = await client.run_workflow("orders", start_event={"item": "tea", "quantity": 2})
    assert done.result.value == {"result": "2 x tea: 6"}, done
    handler = await client.run_workflow_nowait(
        "orders", start_event={"type": "Order", "value": {"item": "pen", "quantity": 1}}
    )
    final = await client.wait_for_handler(handler.handler_id, timeout=10, poll_interval=0.05)
    assert final.result.value == {"result": "1 x pen: 3"}, final
    ok("typed start event (run_workflow, run_workflow_nowait)")

    handler_id = f"visitor-{uuid.uuid4()}"
    for n in (1, 2):
        done = await client.run_workflow(
            "visits", handler_id=handler_id, start_event={"who": "ada"}
        )
        assert done.handler_id == handler_id and done.status == "completed", done
        assert done.result.value == {"result": f"ada: visit {n}"}, done
    handler = await client.run_workflow_nowait(
        "visits", handler_id=handler_id, start_event=StartEvent(who="ada")
    )
    assert handler.handler_id == handler_id
    final = await client.wait_for_handler(handler_id, timeout=10, poll_interval=0.05)
    assert final.result.value == {"result": "ada: visit 3"}, final
    # The default stream of a continued handler is its current run's events; the handler keeps
    # one event sequence across its runs (one StopEvent each), so the third run's is 3.
    seen = await read(client.get_workflow_events(handler_id))
    assert [e.type for _, e in seen] == ["StopEvent"], seen
    assert seen[0][1].value == {"result": "ada: visit 3"}
    assert_sequences(seen, 3, 3)
    ok("handler_id of a finished handler continues its state; its stream is the new run's")
    seen = await read(client.get_workflow_events(handler_id, after_sequence=0))
    assert [e.value for _, e in seen] == [{"result": f"ada: visit {n}"} for n in (1, 2, 3)], seen
    assert_sequences(seen, 1, 3)
    ok("after_sequence=0 replays every run of the handler, sequences 1..3")

    asking = await client.run_workflow_nowait("ask", handler_id=f"asking-{uuid.uuid4()}")
    try:
        await client.run_workflow_nowait("ask", handler_id=asking.handler_id)
        raise AssertionError("a running handler id must be refused")
    except httpx.HTTPStatusError as error:
        assert error.response.status_code == 409
        assert "already running" in error.response.json()["detail"]
    await client.cancel_handler(asking.handler_id, purge=True)
    ok("handler_id of a running handler: 409")

    handler = await client.run_workflow_nowait("greet", start_event=StartEvent(name="Bo"))
    assert handler.status == "running"
    seen = await read(client.get_workflow_events(handler.handler_id))
    assert [e.type for _, e in seen] == ["Progress", "StopEvent"], seen
    assert_sequences(seen, 1, 2)
    final = await client.wait_for_handler(handler.handler_id, timeout=10, poll_interval=0.05)
    assert final.status == "completed"
    ok("run_workflow_nowait + get_workflow_events + wait_for_handler")

    for workflow, step in [("ask", None), ("approve", "answer")]:
        handler = await client.run_workflow_nowait(workflow)
        stream = client.get_workflow_events(handler.handler_id)
        types, seen = [], []
        async for event in stream:
            types.append(event.type)
            seen.append((stream.last_sequence, event))
            assert len(seen) <= MAX_EVENTS, seen
            if event.type == "InputRequiredEvent":
                question = event.load_event([InputRequiredEvent])
                assert question.prefix in ("Your name?", "Approve?")
                sent = await client.send_event(
                    handler.handler_id, HumanResponseEvent(response="yes"), step=step
                )
                assert sent.status == "sent"
        assert types == ["InputRequiredEvent", "StopEvent"], types
        assert_sequences(seen, 1, 2)
        result = await client.get_handler(handler.handler_id)
        assert result.status == "completed", result
        ok(f"human in the loop ({workflow}): stream, load_event, send_event")
        resumed = await read(client.get_workflow_events(handler.handler_id, after_sequence=1))
        assert [e.type for _, e in resumed] == ["StopEvent"], resumed
        assert_sequences(resumed, 2, 2)
        now = await read(client.get_workflow_events(handler.handler_id, after_sequence="now"))
        assert now == [], now
        ok(f"resume after_sequence=1 and 'now' ({workflow})")

    completed = (await client.get_handlers(status=["completed"])).handlers
    assert completed and all(h.status == "completed" for h in completed)
    by_name = (await client.get_handlers(workflow_name=["approve"])).handlers
    assert by_name and all(h.workflow_name == "approve" for h in by_name)
    ok("get_handlers with filters")

    handler = await client.run_workflow_nowait("ask")
    await asyncio.sleep(0.3)
    assert (await client.cancel_handler(handler.handler_id)).status == "cancelled"
    assert (await client.cancel_handler(handler.handler_id)).status == "cancelled"
    assert (await client.cancel_handler(handler.handler_id, purge=True)).status == "deleted"
    try:
        await client.get_handler(handler.handler_id)
        raise AssertionError("a purged handler must be gone")
    except httpx.HTTPStatusError as error:
        assert error.response.status_code == 404
    ok("cancel_handler (twice) and purge")

    handler = await client.run_workflow_nowait("ask")
    try:
        await client.send_event(handler.handler_id, {"type": "Nope", "value": {}})
        raise AssertionError("an unknown event type must be refused")
    except httpx.HTTPStatusError as error:
        assert error.response.status_code == 400
        assert "Nope" in error.response.json()["detail"]
    await client.cancel_handler(handler.handler_id, purge=True)
    ok("send_event of an unknown type: 400 naming it")

    print("all checks passed")


if __name__ == "__main__":
    base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8766"
    asyncio.run(asyncio.wait_for(main(base), TIMEOUT))
