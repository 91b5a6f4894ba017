"""A known sequence of real requests to ``m2parse serve`` and the exact ``/metrics`` counts it must produce; used by
tests/test_metrics.py (one process) and tests/test_workers.py (``--workers 2``)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import openai
import pytest
from prometheus_client import parser as prometheus_parser

from m2parse import parse

from . import fake_backends
from .fixture_loader import load_fixture

API_KEY = "test-api-key"
METRICS_KEY = "test-metrics-key"
#: (fixture, stream) for each successful chat request, in order
SUCCESSES = (
    ("weather_basic", False),
    ("unknown_tool", True),
    ("truncated_in_value", True),
    ("bad_number", False),
    ("turn_marker_after_call", True),
    ("schema_violation", True),
    ("missing_parameter_close", False),
)


def chat_args(fixture_name: str, directive: str = "") -> dict[str, Any]:
    fixture = load_fixture(fixture_name)
    args: dict[str, Any] = {
        "model": "MiniMax-M2",
        "messages": [{"role": "user", "content": f"go [[fake fixture={fixture_name} {directive}]]"}],
    }
    if fixture.tools:
        args["tools"] = fixture.tools
    if fixture.options:
        args["extra_body"] = {"m2parse": fixture.options}
    return args


def expected_outcome(fixture_name: str) -> tuple[str, list[str], int]:
    """(finish_reason, problem codes, tool calls parsed) for a fixture replayed by the openai-style fake."""
    fixture = load_fixture(fixture_name)
    result = parse(fixture.text, fixture.tools, **fixture.options)
    if fake_backends.fixture_is_truncated(fixture_name):
        finish = "length"
    else:
        finish = "tool_calls" if any(not call.truncated for call in result.tool_calls) else "stop"
    return finish, [p.code for p in result.problems], len(result.tool_calls)


def get(url: str, key: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


PROBE = ("m2parse_requests_total", (("route", "/v1/models"), ("status", "401"), ("stream", "false")))


def run_sequence(server_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The known sequence; returns the expected value of every counter sample it should produce.

    It starts with a scrape, for the one thing the test does not decide: how many keyless ``/v1/models`` probes
    the harness sent while waiting for the server to come up (one; more when a slow start timed one out)."""
    status, text = get(server_url + "/metrics", METRICS_KEY)
    assert status == 200
    probes = samples(text)[PROBE]
    assert probes >= 1
    client = openai.OpenAI(base_url=server_url + "/v1", api_key=API_KEY, max_retries=0, timeout=60)
    want: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def requests(route: str, status: int, stream: bool) -> None:
        labels = (("route", route), ("status", str(status)), ("stream", str(stream).lower()))
        want["m2parse_requests_total", labels] += 1

    want[PROBE] = probes

    for name, stream in SUCCESSES:
        if stream:
            for _chunk in client.chat.completions.create(stream=True, **chat_args(name)):
                pass
        else:
            client.chat.completions.create(**chat_args(name))
        requests("/v1/chat/completions", 200, stream)
        finish, codes, calls = expected_outcome(name)
        want["m2parse_finish_reasons_total", (("reason", finish),)] += 1
        for code in codes:
            want["m2parse_problems_total", (("code", code),)] += 1
        want["m2parse_tool_calls_total", ()] += calls
        want["m2parse_request_duration_seconds_count", (("stream", str(stream).lower()),)] += 1
        if stream:
            want["m2parse_time_to_first_chunk_seconds_count", ()] += 1

    for fault, kind in (("500", "http"), ("garbage", "protocol")):  # before any output: a 502
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(**chat_args("weather_basic", f"fault={fault}"))
        requests("/v1/chat/completions", 502, False)
        want["m2parse_backend_errors_total", (("kind", kind),)] += 1
    # mid-stream: the HTTP status is already 200; the failure is an error event, and no finish reason
    with pytest.raises(openai.APIError):
        for _chunk in client.chat.completions.create(stream=True, **chat_args("weather_basic", "fault=error_event")):
            pass
    requests("/v1/chat/completions", 200, True)
    want["m2parse_backend_errors_total", (("kind", "backend"),)] += 1
    want["m2parse_request_duration_seconds_count", (("stream", "true"),)] += 1
    want["m2parse_time_to_first_chunk_seconds_count", ()] += 0  # no output and no finish chunk: not observed

    wrong = openai.OpenAI(base_url=server_url + "/v1", api_key="wrong", max_retries=0, timeout=60)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(**chat_args("weather_basic"))
    requests("/v1/chat/completions", 401, False)  # refused before the body is read: not known as a stream
    assert [m.id for m in client.models.list().data]
    requests("/v1/models", 200, False)
    assert get(server_url + "/health", None)[0] == 200
    requests("/health", 200, False)
    assert get(server_url + "/no/such/route", API_KEY)[0] == 404
    requests("other", 404, False)
    assert get(server_url + "/metrics", None)[0] == 401
    assert get(server_url + "/metrics", API_KEY)[0] == 401  # with a metrics key, the API key does not open it
    requests("/metrics", 401, False)
    requests("/metrics", 401, False)
    return dict(want)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the scrape, keyed by (sample name, sorted labels), read by prometheus_client's parser."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in prometheus_parser.text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


def check(scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], want: dict[Any, float], scrapes: int) -> None:
    """Each expected sample has its exact value, and every counter sample the scrape has is expected (a scrape
    counts the scrapes before it, whose number a load balancer may spread over workers: at most ``scrapes``)."""
    for key, value in want.items():
        assert scraped.get(key, 0.0) == value, key
    counted = {k: v for k, v in scraped.items() if k[0].endswith("_total")}
    own = ("m2parse_requests_total", (("route", "/metrics"), ("status", "200"), ("stream", "false")))
    assert counted.pop(own, 0.0) <= scrapes
    extra = {k: v for k, v in counted.items() if k not in want and v}
    assert not extra, extra
    chunk_count = scraped[("m2parse_chunk_added_latency_seconds_count", ())]
    assert chunk_count >= 4  # one observation per backend piece with text; several per stream
    assert scraped[("m2parse_chunk_added_latency_seconds_bucket", (("le", "+Inf"),))] == chunk_count


def scrape_exact(server_url: str, want: dict[Any, float], scrapes_before: int) -> int:
    """Scrape until the counts are exactly ``want`` (returns the scrapes made). A response is counted as its last
    byte is handed over, so a scrape that a client sends the instant its stream ends may, on another worker, miss
    it by microseconds; a few retries absorb that, a wrong count never converges."""
    made = 0
    for attempt in range(30):
        status, text = get(server_url + "/metrics", METRICS_KEY)
        made += 1
        assert status == 200
        try:
            check(samples(text), want, scrapes=scrapes_before + made - 1)
            return made
        except AssertionError:
            if attempt == 29:
                raise
            time.sleep(0.1)
    return made
