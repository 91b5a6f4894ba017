"""Latency the server adds per chunk, and its throughput, against a fake backend on 127.0.0.1.

    python benchmarks/bench_server.py [--backend-type openai] [--streams 1,50,200] [--delay 0.05]

Latency: the fake backend streams unique words (``w00001 ``...) one per token at ``--delay`` seconds per token
and records when it sends each; the server runs with ``starts_in_reasoning: false``, so every token becomes
exactly one content chunk, and the client records when each arrives. Per-chunk latency is receive time minus send
time (one monotonic clock, one host). The same client reading the backend directly gives the baseline; the
server's added latency is the difference. Throughput: at each level, unpaced streams sharing about ``--total``
chunks; chunks/s delivered, directly and through the server, and the server process's CPU time per chunk.

Everything (backend, server, client) shares this machine's cores, so the numbers include their contention.
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
from tests import fake_backends


def words(n: int) -> str:
    return "".join(f"w{i:05d} " for i in range(n))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def server_request(directive: str) -> dict[str, Any]:
    return {
        "model": "m",
        "stream": True,
        "messages": [{"role": "user", "content": f"bench {directive}"}],
        "m2parse": {"starts_in_reasoning": False},
    }


def backend_request(kind: str, directive: str) -> tuple[str, dict[str, Any]]:
    prompt = f"bench {directive}"
    if kind == "tgi":
        return "/generate_stream", {"inputs": prompt, "parameters": {"details": True}}
    if kind == "llamacpp":
        return "/completion", {"prompt": prompt, "stream": True}
    return "/v1/completions", {"prompt": prompt, "stream": True}


def piece_text(kind: str, obj: Any) -> str:
    """The text a chunk carries: the server's delta content or the backend's own field."""
    if "choices" in obj and obj["choices"] and "delta" in obj["choices"][0]:
        return obj["choices"][0]["delta"].get("content") or ""
    if kind == "tgi":
        return obj["token"]["text"] if not obj["token"]["special"] else ""
    if kind == "llamacpp":
        return obj.get("content", "")
    return obj["choices"][0]["text"] if obj.get("choices") else ""


async def read_stream(
    http: httpx.AsyncClient,
    kind: str,
    url: str,
    body: dict[str, Any],
    arrivals: list[tuple[float, str]] | None,
    start_after: float = 0.0,
) -> int:
    await asyncio.sleep(start_after)
    chunks = 0
    async with http.stream("POST", url, json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            chunks += 1
            if arrivals is not None:
                now = time.monotonic()
                text = piece_text(kind, json.loads(line[5:]))
                if text:
                    arrivals.append((now, text))
    return chunks


async def latency_run(
    kind: str, backend_url: str, server_url: str, streams: int, tokens: int, delay: float, direct: bool
) -> list[float]:
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    label = "d" if direct else "s"
    async with httpx.AsyncClient(limits=limits, timeout=300) as http:
        arrivals: list[list[tuple[float, str]]] = [[] for _ in range(streams)]
        jobs = []
        for i in range(streams):
            directive = f"[[fake pieces=7 delay={delay} tag={label}{streams}-{i}]]"
            if direct:
                path, body = backend_request(kind, directive)
                url = backend_url + path
            else:
                body, url = server_request(directive), server_url + "/v1/chat/completions"
            # spread the starts over one token interval, so the streams' tokens do not all arrive at once
            jobs.append(read_stream(http, kind, url, body, arrivals[i], delay * i / streams))
        await asyncio.gather(*jobs)
    lags: list[float] = []
    for i in range(streams):
        sent = dict((text, t) for t, text in fake_backends.timings(backend_url, f"{label}{streams}-{i}"))
        got = [(t, text) for t, text in arrivals[i] if text in sent]
        assert len(got) == tokens, f"stream {i}: {len(got)} of {tokens} chunks matched"
        lags += [t - sent[text] for t, text in got]
    return lags


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def throughput_run(kind: str, url: str, streams: int, repeat: int, direct: bool) -> tuple[int, float]:
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    async with httpx.AsyncClient(limits=limits, timeout=300) as http:
        jobs = []
        for i in range(streams):
            directive = f"[[fake pieces=7 repeat={repeat} seed={i + 1}]]"
            if direct:
                path, body = backend_request(kind, directive)
                jobs.append(read_stream(http, kind, url + path, body, None))
            else:
                jobs.append(read_stream(http, kind, url + "/v1/chat/completions", server_request(directive), None))
        start = time.monotonic()
        counts = await asyncio.gather(*jobs)
        return sum(counts), time.monotonic() - start


def ms(value: float) -> str:
    return f"{value * 1000:7.2f}"


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--backend-type", default="openai", choices=fake_backends.KINDS)
    cli.add_argument("--streams", default="1,50,200", help="concurrency levels, comma separated")
    cli.add_argument("--tokens", type=int, default=200, help="tokens per stream")
    cli.add_argument("--delay", type=float, default=0.05, help="seconds between tokens in the latency runs")
    cli.add_argument("--total", type=int, default=100_000, help="chunks per throughput run (split over the streams)")
    args = cli.parse_args()
    levels = [int(n) for n in args.streams.split(",")]
    kind = args.backend_type

    backend_url, stop_backend = fake_backends.start_backend(kind, text=words(args.tokens), finish="stop")
    server_url, stop_server = fake_backends.start_m2parse(backend_url, kind, "--log-level", "warning")
    pid = stop_server.process.pid  # type: ignore[attr-defined]
    try:
        for direct in (True, False):  # warm up: connections, the backend model lookup, imports
            asyncio.run(latency_run(kind, backend_url, server_url, 2, args.tokens, 0.0, direct))
        print(f"backend type {kind}, {args.tokens} tokens per stream, {os.cpu_count()} CPUs shared by all processes")
        print(f"\nper-chunk latency, tokens paced at {args.delay * 1000:.0f} ms (ms: median / p95 / p99)")
        print(
            f"{'streams':>8} {'direct':>24} {'through m2parse':>24} {'added median':>14} {'added p95':>10}"
            f" {'server CPU':>11}"
        )
        for streams in levels:
            direct = asyncio.run(latency_run(kind, backend_url, server_url, streams, args.tokens, args.delay, True))
            before, start = cpu_seconds(pid), time.monotonic()
            served = asyncio.run(latency_run(kind, backend_url, server_url, streams, args.tokens, args.delay, False))
            busy = (cpu_seconds(pid) - before) / (time.monotonic() - start)
            row = [statistics.median(direct), percentile(direct, 0.95), percentile(direct, 0.99)]
            srow = [statistics.median(served), percentile(served, 0.95), percentile(served, 0.99)]
            print(
                f"{streams:>8} {' /'.join(ms(v) for v in row):>24} {' /'.join(ms(v) for v in srow):>24} "
                f"{ms(srow[0] - row[0]):>14} {ms(srow[1] - row[1]):>10} {busy * 100:>10.0f}%"
            )

        print(f"\nthroughput, unpaced tokens, about {args.total} chunks per level (chunks/s delivered to the clients)")
        print(f"{'streams':>8} {'direct':>12} {'through m2parse':>16} {'server CPU per chunk':>22}")
        for streams in levels:
            repeat = max(1, args.total // (streams * args.tokens))
            n_direct, t_direct = asyncio.run(throughput_run(kind, backend_url, streams, repeat, True))
            before = cpu_seconds(pid)
            n_served, t_served = asyncio.run(throughput_run(kind, server_url, streams, repeat, False))
            cpu = cpu_seconds(pid) - before
            print(
                f"{streams:>8} {n_direct / t_direct:>12.0f} {n_served / t_served:>16.0f} "
                f"{cpu / n_served * 1e6:>18.1f} us"
            )
    finally:
        stop_server()
        stop_backend()


if __name__ == "__main__":
    main()
