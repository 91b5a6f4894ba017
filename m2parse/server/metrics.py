"""``/metrics``: Prometheus counters and histograms of one app, correct across ``--workers`` processes.

Each app owns its metrics in its own ``CollectorRegistry`` (no process-wide registry), so two apps in one process
never mix their counts. With several worker processes, prometheus_client's multiprocess mode keeps each
process's values in files under ``PROMETHEUS_MULTIPROC_DIR`` (set by ``m2parse serve --workers N`` to a
directory it creates and removes), and a scrape that lands on any worker sums them all: a load balancer's
choice of process cannot change what the scraper sees.

The signal nobody else exports is the model's own: how often its output needed recovery, and which kind
(``m2parse_problems_total{code=...}``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

#: the environment variable prometheus_client reads (at import) to keep values in per-process files
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: the routes counted under their own name; anything else is ``other``, so a scanner cannot grow the label set
ROUTES = ("/v1/chat/completions", "/v1/models", "/health", "/metrics")
#: whole requests: from a few milliseconds (an error) to the backend timeout's order (a long generation)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
#: what m2parse adds to one chunk: tens of microseconds normally, milliseconds under load
CHUNK_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


class Metrics:
    """The app's metrics. Labels are bounded: routes are a fixed list, problem codes and finish reasons come from
    m2parse's own vocabularies, backend error kinds from ``BackendError.kind``; no label carries a model-written
    string (tool names are unbounded, so tool calls are counted without one)."""

    #: the media type of ``exposition()``
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self._multiprocess_dir = multiprocess_dir
        own = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "m2parse_requests", "HTTP requests answered", ("route", "status", "stream"), registry=own
        )
        self.time_to_first_chunk = Histogram(
            "m2parse_time_to_first_chunk_seconds",
            "streams: request received -> first chunk carrying model output (or the finish chunk)",
            buckets=REQUEST_BUCKETS,
            registry=own,
        )
        self.request_duration = Histogram(
            "m2parse_request_duration_seconds",
            "chat completions: request received -> last byte of the response",
            ("stream",),
            buckets=REQUEST_BUCKETS,
            registry=own,
        )
        self.chunk_latency = Histogram(
            "m2parse_chunk_added_latency_seconds",
            "streams: backend piece received -> its chunks ready to send (parsing and serialising)",
            buckets=CHUNK_BUCKETS,
            registry=own,
        )
        self.backend_errors = Counter(
            "m2parse_backend_errors", "backend failures, by kind (before or during a response)", ("kind",), registry=own
        )
        self.tool_calls = Counter(
            "m2parse_tool_calls", "tool calls parsed from model output (cut-off ones included)", registry=own
        )
        self.problems = Counter(
            "m2parse_problems",
            "problems found in model output (one response may have several)",
            ("code",),
            registry=own,
        )
        self.finish_reasons = Counter(
            "m2parse_finish_reasons", "finish_reason of completed responses", ("reason",), registry=own
        )
        if multiprocess_dir is None:
            self._exposed = own
        else:
            from prometheus_client import multiprocess

            self._exposed = CollectorRegistry(auto_describe=True)
            multiprocess.MultiProcessCollector(self._exposed, path=multiprocess_dir)

    @classmethod
    def from_environment(cls) -> Metrics:
        """Multiprocess mode exactly when prometheus_client itself is in it (the variable is set)."""
        return cls(os.environ.get(MULTIPROC_ENV) or None)

    def exposition(self) -> bytes:
        """The Prometheus text format of every process's values (this one's alone without multiprocess mode)."""
        return generate_latest(self._exposed)

    def request(self, route: str, status: int, stream: bool) -> None:
        label = route if route in ROUTES else "other"
        self.requests.labels(label, str(status), "true" if stream else "false").inc()

    def outcome(self, finish_reason: str, problem_codes: Iterable[str], tool_calls: int) -> None:
        self.finish_reasons.labels(finish_reason).inc()
        for code in problem_codes:
            self.problems.labels(code).inc()
        if tool_calls:
            self.tool_calls.inc(tool_calls)
