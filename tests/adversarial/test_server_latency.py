"""A hostile request never holds up other clients (issue 9): its CPU work runs off the event loop.

Measured the honest way, as a ratio that does not depend on the machine's speed: while one costly request is
being served, a normal client keeps sending small requests back to back. Had the costly work run on the event
loop, one of those requests would have waited for most of it; off the loop, each waits a small fraction.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .. import fake_backends

httpx = pytest.importorskip("httpx")

NORMAL = {"model": "m", "messages": [{"role": "user", "content": "[[fake text=fine]]"}]}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with fake_backends.backend("openai") as backend, fake_backends.app_server(backend_url=backend) as url:
        yield url


def costly_schema(nonce: str, width: int = 300) -> dict[str, Any]:
    """A valid schema of about 5 × ``width`` objects: each costs the metaschema check about 0.3 ms."""
    properties = {
        f"p{i}_{nonce}": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"anyOf": [{}, {}]}}}
        for i in range(width)
    }
    return {"type": "object", "properties": properties}


def schema_request() -> dict[str, Any]:
    nonce = uuid.uuid4().hex[:8]  # the server caches schema checks: a new schema each time
    tools = [
        {"type": "function", "function": {"name": f"t{i}_{nonce}", "parameters": costly_schema(nonce)}}
        for i in range(2)
    ]
    return {**NORMAL, "tools": tools}


def piece_request() -> dict[str, Any]:
    """The backend answers one piece holding a call with 40,000 parameters: seconds of parsing in Python."""
    tool = {"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}
    prefix = "%3Cminimax:tool_call%3E%3Cinvoke%20name=w%3E"
    parameter = "%3Cparameter%20name=p%3Ev%3C/parameter%3E"
    text = f"[[fake prefix={prefix} text={parameter} repeat=40000 pieces=100000000]]"
    return {"model": "m", "messages": [{"role": "user", "content": text}], "tools": [tool]}


def quiet(server: str, count: int = 20) -> list[float]:
    """Latencies of normal requests with nothing else going on: the baseline printed beside the figures."""
    out = []
    with httpx.Client(timeout=300) as client:
        for _ in range(count):
            start = time.monotonic()
            client.post(server + "/v1/chat/completions", json=NORMAL)
            out.append(time.monotonic() - start)
    return out


def measure(server: str, hostile: dict[str, Any]) -> tuple[float, list[float]]:
    """(how long the hostile request took, the latencies of the normal requests sent meanwhile)."""
    done = threading.Event()
    took: list[float] = []

    def attack() -> None:
        start = time.monotonic()
        with httpx.Client(timeout=300) as client:
            response = client.post(server + "/v1/chat/completions", content=json.dumps(hostile).encode())
        took.append(time.monotonic() - start)
        assert response.status_code == 200, response.text[:300]
        done.set()

    latencies: list[float] = []
    with httpx.Client(timeout=300) as client:
        for _ in range(3):  # warm: connection, imports, backend model lookup
            client.post(server + "/v1/chat/completions", json=NORMAL)
        worker = threading.Thread(target=attack)
        worker.start()
        time.sleep(0.05)  # let the hostile request reach the server first
        while not done.is_set():
            start = time.monotonic()
            assert client.post(server + "/v1/chat/completions", json=NORMAL).status_code == 200
            latencies.append(time.monotonic() - start)
        worker.join()
    return took[0], latencies


@pytest.mark.parametrize("hostile", [schema_request, piece_request], ids=["schemas", "big-piece"])
def test_a_costly_request_does_not_hold_up_the_others(server: str, hostile: Any) -> None:
    took, latencies = measure(server, hostile())
    worst = max(latencies)
    base = sorted(quiet(server))
    print(f"\nno attack: median {base[len(base) // 2] * 1000:.0f} ms, worst {base[-1] * 1000:.0f} ms", end="")
    print(
        f"\n{hostile.__name__}: took {took * 1000:.0f} ms; {len(latencies)} normal requests meanwhile, "
        f"worst {worst * 1000:.0f} ms, median {sorted(latencies)[len(latencies) // 2] * 1000:.0f} ms"
    )
    assert took > 0.3, "the hostile request must cost enough for the ratio to mean something"
    assert len(latencies) >= 3
    assert worst < took / 3, (took, latencies)
