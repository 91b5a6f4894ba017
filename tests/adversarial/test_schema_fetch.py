"""No schema makes m2parse fetch anything: every path that could resolve a reference, tried against a listener
that records any connection, and a ``file://`` reference to a file whose content must never come back."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from m2parse import M2ParseError, parse
from m2parse.schema import (
    convert_value,
    normalize_tools,
    parameter_schema,
    streams_as_string,
    tool_schema_error,
    validate_arguments,
)

DRAFT4 = "http://json-schema.org/draft-04/schema#"
DRAFT7 = "http://json-schema.org/draft-07/schema#"
DRAFT2019 = "https://json-schema.org/draft/2019-09/schema"


class Listener:
    """A TCP listener on 127.0.0.1 that accepts and drops every connection, counting them. Dropping at once
    means a regression fails the test quickly instead of hanging on a fetch that never gets an answer."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    try:
        yield lst
    finally:
        lst.close()


def hostile_schemas(base: str) -> dict[str, dict[str, Any]]:
    """Every way a schema could point outside itself, each aimed at ``base``."""
    return {
        "absolute $ref": {"type": "object", "properties": {"x": {"$ref": f"{base}/a.json"}}},
        "relative to $id": {"$id": f"{base}/root.json", "type": "object", "properties": {"x": {"$ref": "b.json"}}},
        "relative to draft-4 id": {
            "$schema": DRAFT4,
            "id": f"{base}/root4.json",
            "type": "object",
            "properties": {"x": {"$ref": "c.json"}},
        },
        "relative to draft-7 $id": {
            "$schema": DRAFT7,
            "$id": f"{base}/root7.json",
            "type": "object",
            "properties": {"x": {"$ref": "d.json#/definitions/e"}},
        },
        "embedded $id": {
            "type": "object",
            "properties": {"x": {"$id": f"{base}/sub/", "type": "object", "properties": {"y": {"$ref": "f.json"}}}},
        },
        "$dynamicRef": {"type": "object", "properties": {"x": {"$dynamicRef": f"{base}/g.json#meta"}}},
        "$recursiveRef base": {
            "$schema": DRAFT2019,
            "$id": f"{base}/h.json",
            "type": "object",
            "properties": {"x": {"$ref": "i.json"}, "y": {"$recursiveRef": "#"}},
        },
        "$ref in $defs only": {"type": "object", "$defs": {"unused": {"$ref": f"{base}/j.json"}}},
        "$ref under not/if": {
            "type": "object",
            "not": {"$ref": f"{base}/k.json"},
            "if": {"$ref": f"{base}/l.json"},
        },
        "$ref to a metaschema URI": {"type": "object", "properties": {"x": {"$ref": f"{base}/draft/2020-12/schema"}}},
        "unknown $schema": {"$schema": f"{base}/meta.json", "type": "object", "properties": {"x": {"$ref": "m.json"}}},
        "$vocabulary": {"$vocabulary": {f"{base}/vocab": True}, "type": "object", "properties": {"x": {"$ref": "#"}}},
    }


def tool(parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "f", "parameters": parameters}}


CALL = (
    '<minimax:tool_call>\n<invoke name="f">\n<parameter name="x">{"y": 1}</parameter>\n</invoke>\n</minimax:tool_call>'
)


def exercise(parameters: dict[str, Any]) -> list[str]:
    """Everything m2parse does with a schema, returning every string it produced."""
    spec = normalize_tools([tool(parameters)])["f"]
    out: list[str] = []
    out.append(str(tool_schema_error(spec)))
    out.extend(validate_arguments(spec, {"x": {"y": 1}}))
    known, schema = parameter_schema(spec, "x")
    out.append(repr((known, schema)))
    out.append(repr(streams_as_string(schema, spec.parameters)))
    out.append(repr(convert_value('{"y": 1}', schema, spec.parameters)))
    for options in ({}, {"infer_types": True}):
        result = parse(CALL, tools=[tool(parameters)], **options)
        out.append(repr(result))
        out.extend(problem.message for problem in result.problems)
    try:
        parse(CALL, tools=[tool(parameters)], strict=True)
    except M2ParseError as exc:
        out.append(str(exc))
    return out


@pytest.mark.parametrize("case", sorted(hostile_schemas("http://127.0.0.1:1")))
def test_no_schema_reaches_the_network(listener: Listener, case: str) -> None:
    parameters = hostile_schemas(listener.base)[case]
    outputs = exercise(parameters)
    assert listener.connections == 0
    error = tool_schema_error(normalize_tools([tool(parameters)])["f"])
    if case == "$vocabulary":  # a vocabulary URI is never a reference: nothing to refuse
        assert error is None
    else:
        assert error is not None and "\n" not in error and "fetches nothing" in error
        # It names the reference (absolute when a base URI made it so; $schema is no base URI).
        assert ("'m.json'" if case == "unknown $schema" else str(listener.port)) in error
    assert any("fetches nothing" in text for text in outputs) == (case != "$vocabulary")


def test_file_reference_content_never_appears(tmp_path: Path, listener: Listener) -> None:
    marker = f"M2PARSE-MARKER-{uuid.uuid4().hex}"
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"type": "string", "enum": [marker], "description": marker}))
    refs = [secret.as_uri(), secret.as_uri() + "#/description", "secret.json"]
    for ref in refs:
        parameters = {"$id": tmp_path.as_uri() + "/", "type": "object", "properties": {"x": {"$ref": ref}}}
        outputs = exercise(parameters)
        assert not any(marker in text for text in outputs)
        assert any("fetches nothing" in text for text in outputs)
    assert listener.connections == 0


def test_local_references_still_resolve() -> None:
    """Pointers, $defs/definitions, anchors and $id-relative references into the schema itself all work."""
    parameters = {
        "$id": "http://127.0.0.1:1/root.json",
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/A"},
            "b": {"$ref": "#/definitions/B"},
            "c": {"$ref": "#anchor"},
            "d": {"$ref": "http://127.0.0.1:1/root.json#/$defs/A"},
            "e": {"$ref": "sub.json"},
        },
        "$defs": {"A": {"type": "integer"}, "C": {"$anchor": "anchor", "type": "boolean"}},
        "definitions": {"B": {"type": "string"}},
        "$comment": "sub.json is embedded below, so it is inside the schema",
        "allOf": [{"$id": "sub.json", "type": "object"}],
    }
    spec = normalize_tools([tool(parameters)])["f"]
    assert tool_schema_error(spec) is None
    assert validate_arguments(spec, {"a": 1, "b": "x", "c": True, "d": 2}) == []
    errors = validate_arguments(spec, {"a": "1", "c": 1, "d": "x", "e": 5})
    assert len(errors) == 4


# ---------------------------------------------------------------------------------------------- the server


def test_server_refuses_with_400_and_fetches_nothing(listener: Listener) -> None:
    httpx = pytest.importorskip("httpx")
    from tests import fake_backends

    backend_url, stop_backend = fake_backends.start_backend("openai")
    try:
        server_url, stop_server = fake_backends.start_m2parse(backend_url, "openai")
        try:
            user = {"role": "user", "content": "[[fake text=fine]]"}
            for case, parameters in hostile_schemas(listener.base).items():
                body = {"model": "m", "messages": [user], "tools": [tool(parameters)]}
                response = httpx.post(server_url + "/v1/chat/completions", json=body, timeout=30)
                if case == "$vocabulary":
                    assert response.status_code == 200, response.text
                    continue
                assert response.status_code == 400, (case, response.text)
                error = response.json()["error"]
                assert error["param"] == "tools[0].function.parameters"
                named = "'m.json'" if case == "unknown $schema" else str(listener.port)
                assert named in error["message"] and "\n" not in error["message"]
            fan = {f"a{i}": {"anyOf": [{"$ref": f"#/$defs/a{i + 1}"}] * 2} for i in range(22)}
            over = {"type": "object", "properties": {"x": {"$ref": "#/$defs/a0"}}, "$defs": {**fan, "a22": {}}}
            response = httpx.post(
                server_url + "/v1/chat/completions",
                json={"model": "m", "messages": [user], "tools": [tool(over)]},
                timeout=30,
            )
            assert response.status_code == 400 and "expand" in response.json()["error"]["message"]
        finally:
            stop_server()
    finally:
        stop_backend()
    assert listener.connections == 0
