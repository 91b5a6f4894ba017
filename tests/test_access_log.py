"""``m2parse serve --log-format json``: one JSON line per request, and no string can forge a line.

A real server process is started with a model name full of line breaks, quotes and control characters, and the
fake backend replays a tool call whose name and an error message carry the same; every line of the log must still
be exactly one JSON object, and the access lines must carry the strings back intact.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from m2parse.server.access_log import JSONFormatter

from . import fake_backends

openai = pytest.importorskip("openai")

#: a newline, a JSON-looking forged line, quotes, a carriage return, an ANSI escape, NUL-free control characters,
#: Unicode line and paragraph separators and NEL (which some log viewers break lines on)
EVIL = 'm2"\n{"level": "critical", "forged": true}\r\x1b[31m\x07\t\u2028\u2029\x85end'
EVIL_TOOL = "tool\n{'forged': 1}\x1b[2J\u2028"  # no '"': the name attribute ends there
EVIL_OUTPUT = f'why\n</think>\n\nok\n<minimax:tool_call>\n<invoke name="{EVIL_TOOL}">\n</invoke>\n</minimax:tool_call>'


def directive(**values: str) -> str:
    return "[[fake " + " ".join(f"{key}={quote(value, safe='')}" for key, value in values.items()) + "]]"


def start(backend_url: str, log: Path) -> tuple[str, Any]:
    port = fake_backends.free_port()
    args = [sys.executable, "-m", "m2parse", "serve", "--backend", backend_url, "--host", "127.0.0.1"]
    args += ["--port", str(port), "--log-format", "json", "--log-level", "warning", "--model-name", EVIL]
    return fake_backends._spawn_server(args, port, open(log, "w"))


def test_every_line_is_one_json_object_and_strings_come_back_intact(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with fake_backends.backend("openai") as backend_url:
        url, stop = start(backend_url, log)
        try:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=30)
            plain = client.chat.completions.create(
                model=EVIL, messages=[{"role": "user", "content": directive(text=EVIL_OUTPUT)}]
            )
            streamed_id = None
            for chunk in client.chat.completions.create(
                model=EVIL, stream=True, messages=[{"role": "user", "content": directive(fixture="truncated_in_value")}]
            ):
                streamed_id = chunk.id
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": directive(fault="500", message=EVIL)}]
                )
        finally:
            stop()
    raw = log.read_bytes()
    assert raw.isascii()  # every non-ASCII character escaped: no U+2028 or NEL for a viewer to break on
    lines = raw.decode().splitlines()
    records = [json.loads(line) for line in lines]  # each line whole JSON: nothing was split or forged
    assert all(isinstance(r, dict) and "forged" not in r for r in records)
    access = [r for r in records if r["logger"] == "m2parse.access"]
    chats = [r for r in access if r["path"] == "/v1/chat/completions"]
    assert len(chats) == 3 and len(access) == 4  # and the harness's startup probe of /v1/models

    first, second, third = chats
    assert first["completion_id"] == plain.id and first["model"] == EVIL
    assert first["tool_calls"] == [EVIL_TOOL] and first["problems"] == []
    assert first["finish_reason"] == "tool_calls" and first["stream"] is False and first["status"] == 200
    assert isinstance(first["backend_latency_ms"], float) and first["backend_latency_ms"] >= 0
    assert first["backend_latency_ms"] <= first["total_ms"]

    assert second["completion_id"] == streamed_id and second["stream"] is True
    assert second["finish_reason"] == "length"
    assert second["problems"] == ["truncated_value", "truncated_tool_call"]  # no tools: no unknown_tool
    assert second["time_to_first_chunk_ms"] is not None and second["backend_latency_ms"] is not None

    assert third["status"] == 502 and third["backend_error"] == "http"
    assert "m2" in third["error"] and third["finish_reason"] is None
    warnings = [r for r in records if r["logger"] == "m2parse.server" and r["level"] == "warning"]
    assert warnings  # the server's own warnings are JSON lines too


def test_formatter_escapes_every_line_break_and_control_character() -> None:
    record = logging.LogRecord("m2parse.server", logging.WARNING, __file__, 1, "said %s", (EVIL,), None)
    record.access = {"tool_calls": [EVIL_TOOL]}
    line = JSONFormatter().format(record)
    assert line.isascii() and "\n" not in line and "\r" not in line and "\x1b" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "said " + EVIL and parsed["tool_calls"] == [EVIL_TOOL]


def test_text_format_keeps_no_access_line(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with fake_backends.backend("openai") as backend_url:
        port = fake_backends.free_port()
        args = [sys.executable, "-m", "m2parse", "serve", "--backend", backend_url, "--port", str(port)]
        url, stop = fake_backends._spawn_server(args, port, open(log, "w"))  # noqa: SIM115
        try:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=30)
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": directive(text="hi")}])
        finally:
            stop()
    text = log.read_text()
    assert "m2parse.access" not in text and "serving" in text
