"""200 concurrent streams through one server process: every response is its own fixture's parse, no cross-talk.

Each request replays a distinct output: the 44-odd fixtures as they are, then the same fixtures with a unique
prefix (``req123 ``) and a different piece size, so a chunk delivered to the wrong stream cannot go unnoticed.
Prints throughput and the delay between the backend's last token and the client's finish chunk.
"""

from __future__ import annotations

import asyncio
import os
import statistics

from . import fake_backends
from .fixture_loader import all_fixtures
from .load_helpers import CONCURRENCY, expected_summary, plan, run_all


def test_200_concurrent_streams() -> None:
    fixtures = all_fixtures()
    with fake_backends.backend("openai") as backend_url:
        server_url, stop = fake_backends.start_m2parse(backend_url, "openai", "--log-level", "error")
        pid = stop.process.pid  # type: ignore[attr-defined]
        try:
            cpu_before = cpu_seconds(pid)
            results, elapsed = asyncio.run(run_all(server_url, fixtures))
            server_cpu = cpu_seconds(pid) - cpu_before
            lags = []
            for i, (got, _chunks, finish_at) in enumerate(results):
                fixture, prefix, _pieces = plan(i, fixtures)
                assert got == expected_summary(fixture, prefix), f"request {i} ({fixture.name}, {prefix!r})"
                sent = fake_backends.timings(backend_url, f"load{i}")
                lags.append(finish_at - sent[-1][0])
            stats = fake_backends.stats(backend_url)
            assert stats["completed"] >= CONCURRENCY and stats["active"] == 0
        finally:
            stop()
    total_chunks = sum(chunks for _got, chunks, _t in results)
    print(
        f"\n{CONCURRENCY} concurrent streams: {total_chunks} chunks in {elapsed:.2f}s = {total_chunks / elapsed:.0f} "
        f"chunks/s at the SDK clients (which share the cores and dominate); server CPU "
        f"{server_cpu / total_chunks * 1e6:.0f} us/chunk; backend's last token -> client's finish chunk "
        f"median {statistics.median(lags) * 1000:.0f} ms, max {max(lags) * 1000:.0f} ms"
    )


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process (Linux /proc); 0 elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
