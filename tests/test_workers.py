"""``m2parse serve --workers 2``: two real worker processes behind one port serve the load test correctly, and
``/metrics`` sums both, whichever one answers the scrape; the multiprocess directory is removed at the end."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from . import fake_backends
from .fixture_loader import all_fixtures
from .load_helpers import CONCURRENCY, expected_summary, plan, run_all

pytest.importorskip("openai")
pytest.importorskip("prometheus_client")

from .metrics_sequence import API_KEY, METRICS_KEY, run_sequence, scrape_exact


def worker_pids(parent: int) -> list[int]:
    """The uvicorn worker processes of ``parent`` (spawned: ``multiprocessing.spawn`` in their command line)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except OSError:
            continue
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="counts worker processes in /proc")
def test_two_workers_count_together_and_serve_the_load_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the server makes its metrics directory
    fixtures = all_fixtures()
    with fake_backends.backend("openai") as backend_url:
        args = ("--workers", "2", "--api-key", API_KEY, "--metrics-key", METRICS_KEY, "--log-level", "error")
        server_url, stop = fake_backends.start_m2parse(backend_url, "openai", *args)
        parent = stop.process.pid  # type: ignore[attr-defined]
        try:
            assert len(worker_pids(parent)) == 2
            metrics_dirs = list(tmp_path.glob("m2parse-metrics-*"))
            assert len(metrics_dirs) == 1

            want = run_sequence(server_url)
            scrapes = 1
            for _ in range(6):  # a scrape may land on either worker: every one must see both workers' counts
                scrapes += scrape_exact(server_url, want, scrapes_before=scrapes)
            pids = {path.stem.rsplit("_", 1)[1] for path in metrics_dirs[0].glob("*.db")}
            assert len(pids) == 2, pids
        finally:
            stop()
        assert not list(tmp_path.glob("m2parse-metrics-*")), "the metrics directory outlived the server"

        # the load test's 200 concurrent streams, each checked against the parse of its own text
        server_url, stop = fake_backends.start_m2parse(backend_url, "openai", "--workers", "2", "--log-level", "error")
        try:
            results, _elapsed = asyncio.run(run_all(server_url, fixtures))
            for i, (got, _chunks, _finish_at) in enumerate(results):
                fixture, prefix, _pieces = plan(i, fixtures)
                assert got == expected_summary(fixture, prefix), f"request {i} ({fixture.name}, {prefix!r})"
            assert len(results) == CONCURRENCY
        finally:
            stop()


def test_worker_config_round_trips_through_json() -> None:
    from m2parse.server import ServerConfig
    from m2parse.server.workers import config_from_json, config_to_json

    config = ServerConfig(
        backend_url="http://127.0.0.1:9",
        allowed_origins=("chrome-extension://*",),
        default_sampling=(("temperature", 1.0), ("top_p", 0.95)),
        metrics_key="m",
        model_name='odd "name"\n',
    )
    assert config_from_json(config_to_json(config, "info", "json")) == (config, "info", "json")


def test_workers_must_be_positive() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "m2parse", "serve", "--backend", "http://127.0.0.1:9", "--workers", "0"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "--workers 0" in proc.stderr
