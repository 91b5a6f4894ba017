"""What the suite forces llama.cpp to write, and what ``m2parse serve`` must answer for it.

Each forced text is a fixture output. The answer the server must give is computed from ``m2parse.parse()`` of
exactly the text the engine wrote, with the server's defaults (separated reasoning, starting inside reasoning
because the M2 prompt ends in ``<think>``) and its documented policies: ``finish_reason`` is ``length`` when
the engine hit its token limit, else ``tool_calls`` when there are calls, else ``stop``; a cut-off call is not a
``tool_calls`` entry but goes to the ``m2parse.truncated_tool_calls`` extension (docs/server.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from m2parse import parse

from ...fixture_loader import Fixture, load_fixture
from .. import model_kit as kit

#: Fixture outputs forced through the engine, by what they exercise.
FORCED = {
    "content_after_block": "reasoning, content, one call, content after the block",
    "parallel_calls_one_block": "two calls in one block",
    "reasoning_only_cut_off": "reasoning only, never closed",
    "truncated_in_value": "a call cut off inside a value (the model stops there)",
    "chinese_text": "multi-byte UTF-8 split across byte-level tokens",
}
#: A long output (a whole file as an argument): far past the 16 tokens OpenAI-style servers default to.
LONG = "long_code_argument"


def fixture(name: str) -> Fixture:
    return load_fixture(name)


@dataclass(frozen=True, slots=True)
class Reply:
    """The parts of a chat reply that the suite compares; tool call arguments as parsed JSON."""

    content: str | None
    reasoning_content: str | None
    tool_calls: tuple[tuple[str, Any], ...]
    finish_reason: str
    problems: tuple[str, ...]
    #: calls cut off in the output, which the server withholds from ``tool_calls``
    truncated_calls: tuple[tuple[str, Any], ...] = ()

    def without_extension(self) -> Reply:
        """What the SDK's ``.stream()`` helper keeps: its final completion has no ``m2parse`` field."""
        return Reply(self.content, self.reasoning_content, self.tool_calls, self.finish_reason, ())


def expected_reply(text: str, tools: list[dict[str, Any]] | None, *, hit_limit: bool = False) -> Reply:
    """What the server must answer when the engine wrote ``text`` (and stopped at its token limit or not)."""
    result = parse(text, tools)
    calls = [c for c in result.tool_calls if not c.truncated]
    limited = hit_limit and not result.ended_by_turn_marker
    finish = "length" if limited else "tool_calls" if calls else "stop"
    return Reply(
        content=result.content or None,
        reasoning_content=result.reasoning_content,
        tool_calls=tuple((c.name, c.arguments) for c in calls),
        finish_reason=finish,
        problems=tuple(p.code for p in result.problems),
        truncated_calls=tuple((c.name, c.arguments) for c in result.tool_calls if c.truncated),
    )


def reply_of(choice: Any, extension: dict[str, Any] | None = None) -> Reply:
    """A Reply from an SDK choice (a ChatCompletion's, or a stream's accumulated one).

    ``extension``: the ``m2parse`` field when it is not on ``choice`` (streams carry it on the finish chunk,
    which the SDK's accumulator drops).
    """
    message = choice.message
    if extension is None:
        extension = (choice.model_extra or {}).get("m2parse", {})
    problems = extension.get("problems", [])
    truncated = extension.get("truncated_tool_calls", [])
    extra = message.model_extra or {}
    return Reply(
        content=message.content,
        reasoning_content=extra.get("reasoning_content"),
        tool_calls=tuple((c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []),
        finish_reason=choice.finish_reason,
        problems=tuple(p["code"] for p in problems),
        truncated_calls=tuple((c["function"]["name"], json.loads(c["function"]["arguments"])) for c in truncated),
    )


def forced_prefixes(model_dir: Path, text: str) -> list[str]:
    """The text the engine has written for ``text`` after each of its tokens (the kit's greedy longest-token
    choice, see ``model_kit``); only for texts whose tokens end on character boundaries."""
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    pieces = kit.token_bytes(tok)
    out, written = [], b""
    for token in kit.longest_prefix_ids(model_dir, text):
        written += pieces[token]
        out.append(written.decode("utf-8"))
    return out
