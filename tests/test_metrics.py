"""``/metrics`` counts exactly what happened: a known sequence of real requests (the official openai SDK against a
real ``m2parse serve`` process in front of the fake backend), then scrapes, read with prometheus_client's own
parser. The expected problem and tool-call counts come from parsing the fixtures directly
(tests/metrics_sequence.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import fake_backends

pytest.importorskip("openai")
pytest.importorskip("prometheus_client")

from .metrics_sequence import API_KEY, METRICS_KEY, get, run_sequence, samples, scrape_exact


@pytest.fixture(scope="module")
def backend_url() -> Iterator[str]:
    with fake_backends.backend("openai") as url:
        yield url


def test_metrics_count_a_known_sequence_exactly(backend_url: str) -> None:
    args = ("--api-key", API_KEY, "--metrics-key", METRICS_KEY, "--log-level", "error")
    server_url, stop = fake_backends.start_m2parse(backend_url, "openai", *args)
    try:
        want = run_sequence(server_url)
        scrape_exact(server_url, want, scrapes_before=1)
        text = get(server_url + "/metrics", METRICS_KEY)[1]
        assert "m2parse_problems_total" in text and 'code="unknown_tool"' in text
    finally:
        stop()


def test_metrics_follow_the_api_key_without_a_metrics_key(backend_url: str) -> None:
    server_url, stop = fake_backends.start_m2parse(backend_url, "openai", "--api-key", API_KEY)
    try:
        assert get(server_url + "/metrics", None)[0] == 401
        status, text = get(server_url + "/metrics", API_KEY)
        assert status == 200 and text.startswith("# HELP")
    finally:
        stop()


def test_metrics_are_open_without_keys(backend_url: str) -> None:
    server_url, stop = fake_backends.start_m2parse(backend_url, "openai")
    try:
        status, text = get(server_url + "/metrics", None)
        assert status == 200
        found = samples(text)
        # the scrape does not count itself: it is counted once its answer is sent
        assert found[("m2parse_requests_total", (("route", "/v1/models"), ("status", "200"), ("stream", "false")))]
    finally:
        stop()


def test_two_apps_in_one_process_keep_their_own_counts() -> None:
    """No process-wide registry: each app's metrics are its own (and creating a second one does not clash)."""
    from m2parse.server.metrics import Metrics

    first, second = Metrics(), Metrics()
    first.outcome("stop", ["unknown_tool"], 2)
    scraped = samples(second.exposition().decode())
    assert scraped.get(("m2parse_problems_total", (("code", "unknown_tool"),)), 0.0) == 0.0
    assert samples(first.exposition().decode())[("m2parse_tool_calls_total", ())] == 2
