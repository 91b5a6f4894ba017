"""Helpers for the M3 value tests: the official template's ``to_xml`` rules, a tiny tag splitter standing in for
the parser engine, and a driver that collects the builder's fragments.

The namespace token and the rendering rules are written out from the template
(../shared/reference/MiniMax-M3/chat_template.jinja, macro ``to_xml``), not imported: the tests check the builder
against the format, not against its own constants.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from m2parse.formats.xml_values import XmlValueBuilder

NS = "]<]minimax[>["
_TAG = re.compile(re.escape(NS) + r"<(/?)([^<>]*)>")

#: ("text", s) | ("open", name) | ("close", name)
Event = tuple[str, str]


def to_xml(value: Any) -> str:
    """What ``to_xml(val, ns_token)`` renders: keys with a None value are omitted, booleans are ``tojson``, a list
    is one ``<item>`` per entry, anything else is its text (Jinja's ``{{ val }}``: Python's ``str``)."""
    if isinstance(value, Mapping):
        return "".join(f"{NS}<{k}>{to_xml(v)}{NS}</{k}>" for k, v in value.items() if v is not None)
    if isinstance(value, (list, tuple)):
        return "".join(f"{NS}<item>{to_xml(v)}{NS}</item>" for v in value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def events(text: str) -> list[Event]:
    """The calls an engine makes for ``text`` (the content between an argument's tags)."""
    out: list[Event] = []
    pos = 0
    for m in _TAG.finditer(text):
        if m.start() > pos:
            out.append(("text", text[pos : m.start()]))
        out.append(("close" if m.group(1) else "open", m.group(2)))
        pos = m.end()
    if pos < len(text):
        out.append(("text", text[pos:]))
    return out


def held_back(text: str) -> str:
    """``text`` without a tag cut off at its end, as an engine holds it (and reports it) when the output ends."""
    start = text.rfind(NS)
    if start >= 0 and ">" not in text[start + len(NS) :]:
        return text[:start]
    for k in range(len(NS) - 1, 0, -1):
        if text.endswith(NS[:k]):
            return text[:-k]
    return text


def split_text(evs: Iterable[Event], cuts: Sequence[int]) -> list[Event]:
    """``evs`` with every text event cut at the offsets in ``cuts`` (taken modulo its length)."""
    out: list[Event] = []
    for kind, payload in evs:
        if kind != "text" or len(payload) < 2:
            out.append((kind, payload))
            continue
        points = sorted({c % len(payload) for c in cuts} - {0})
        start = 0
        for point in [*points, len(payload)]:
            out.append(("text", payload[start:point]))
            start = point
    return out


@dataclass
class Built:
    value: Any
    codes: list[str]
    messages: list[str]
    fragments: list[str]

    @property
    def joined(self) -> str:
        return "".join(self.fragments)


def drive(builder: XmlValueBuilder, evs: Iterable[Event], *, truncated: bool = False) -> Built:
    fragments: list[str] = []
    for kind, payload in evs:
        if kind == "text":
            fragments.append(builder.text(payload))
        elif kind == "open":
            fragments.append(builder.open(payload))
        else:
            fragments.append(builder.close(payload))
    fragments.append(builder.finish(truncated=truncated))
    return Built(builder.value, [code for code, _ in builder.problems], [m for _, m in builder.problems], fragments)


def build(
    schema: Mapping[str, Any] | None,
    text: str,
    root: Mapping[str, Any] | None = None,
    *,
    infer_types: bool = False,
    truncated: bool = False,
) -> Built:
    """Build ``text`` and check the one invariant every result must keep: fragments == json.dumps(value)."""
    built = drive(XmlValueBuilder(schema, root, infer_types=infer_types), events(text), truncated=truncated)
    assert built.joined == json.dumps(built.value, ensure_ascii=False)
    return built
