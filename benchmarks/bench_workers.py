"""Throughput of ``m2parse serve --workers 2`` against ``--workers 1``, with bench_server.py's unpaced load.

    python benchmarks/bench_workers.py [--streams 50] [--total 60000] [--rounds 3] [--tools]

The fake backend, the server's processes and the client share the machine's cores, as in bench_server.py; the
rounds alternate N=1 and N=2 so that other load on the machine falls on both alike. ``--tools`` sends the
weather tools with every request and replays a fixture with a tool call, so each stream also validates typed
arguments (more server work per chunk, where a second process has more to win).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_server import read_stream, server_request, words
from tests import fake_backends

WEATHER_TOOLS = json.loads((fake_backends.FIXTURES_DIR / "tools" / "weather.json").read_text(encoding="utf-8"))


def request(i: int, repeat: int, tools: bool) -> dict[str, Any]:
    if not tools:
        return server_request(f"[[fake pieces=7 repeat={repeat} seed={i + 1}]]")
    body = server_request(f"[[fake fixture=weather_basic pieces=token repeat={repeat} seed={i + 1}]]")
    return {**body, "tools": WEATHER_TOOLS, "m2parse": {}}


async def run(url: str, streams: int, repeat: int, tools: bool) -> float:
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    async with httpx.AsyncClient(limits=limits, timeout=300) as http:
        jobs = [
            read_stream(http, "openai", url + "/v1/chat/completions", request(i, repeat, tools), None)
            for i in range(streams)
        ]
        start = time.monotonic()
        counts = await asyncio.gather(*jobs)
        return sum(counts) / (time.monotonic() - start)


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--streams", type=int, default=50)
    cli.add_argument("--total", type=int, default=60_000, help="chunks per run, about")
    cli.add_argument("--rounds", type=int, default=3)
    cli.add_argument("--tools", action="store_true", help="tool calls validated against a schema in every stream")
    args = cli.parse_args()
    tokens = 200
    backend_url, stop_backend = fake_backends.start_backend("openai", text=words(tokens), finish="stop")
    servers = {n: fake_backends.start_m2parse(backend_url, "openai", "--workers", str(n), "--log-level", "warning")
               for n in (1, 2)}  # fmt: skip
    repeat = max(1, args.total // (args.streams * tokens))
    rates: dict[int, list[float]] = {1: [], 2: []}
    try:
        for n, (url, _stop) in servers.items():  # warm up: connections, imports, every worker
            asyncio.run(run(url, 4 * n, 1, args.tools))
        for _ in range(args.rounds):
            for n, (url, _stop) in servers.items():
                rates[n].append(asyncio.run(run(url, args.streams, repeat, args.tools)))
    finally:
        for _url, stop in servers.values():
            stop()
        stop_backend()
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"{os.cpu_count()} CPUs shared by the fake backend, the server and the client; {args.streams} streams")
    for n in (1, 2):
        print(f"  --workers {n}: " + ", ".join(f"{r:,.0f}" for r in rates[n]) + " chunks/s")
    print(f"ratio N=2 / N=1 (medians): {two / one:.2f}")


if __name__ == "__main__":
    main()
