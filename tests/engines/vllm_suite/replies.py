"""What a client gets, in one comparable shape, from each way the openai SDK can ask; and what it must equal.

Three ways to ask: ``create()`` (one reply), ``create(stream=True)`` (chunks the test reassembles the way the
OpenAI docs describe) and ``.stream()`` (the SDK's own accumulator, which raises on ``finish_reason: length``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from openai import OpenAI

from m2parse import ParsedMessage, parse

MODES = ("create", "stream", "helper")


@dataclass(frozen=True)
class Reply:
    content: str | None
    reasoning: str | None
    #: (name, arguments as a JSON value) per call, in order
    tool_calls: list[tuple[str, Any]]
    finish_reason: str | None
    #: the m2parse extension (server only): problem codes, and the withheld truncated calls as (name, arguments)
    problems: list[str] | None = None
    truncated_calls: list[tuple[str, Any]] | None = None
    prompt_tokens: int | None = None
    ids: list[str] = field(default_factory=list, compare=False)

    def message(self) -> tuple[Any, ...]:
        """What every mode gives: the message and the finish reason."""
        return self.content, self.reasoning, self.tool_calls, self.finish_reason

    def extension(self) -> tuple[Any, ...]:
        return self.problems, self.truncated_calls


def expected_reply(
    text: str,
    tools: list[dict[str, Any]] | None,
    *,
    hit_limit: bool = False,
    tool_calls: bool = True,
    withhold_truncated: bool = True,
    with_extension: bool = True,
) -> Reply:
    """``parse()`` of the forced text, under the server's documented policies: a truncated call is withheld
    from ``tool_calls`` (``m2parse.truncated_tool_calls``) unless asked; ``tool_choice: none`` parses with
    ``tool_calls=False``; ``finish_reason`` is ``length`` at the token limit, else ``tool_calls`` or ``stop``."""
    result: ParsedMessage = parse(text, tools, tool_calls=tool_calls)
    withheld = [c for c in result.tool_calls if c.truncated] if withhold_truncated else []
    calls = [c for c in result.tool_calls if c not in withheld]
    stopped_by_limit = hit_limit and not result.ended_by_turn_marker
    finish = "length" if stopped_by_limit else "tool_calls" if calls else "stop"
    return Reply(
        content=result.content or None,
        reasoning=result.reasoning_content or None,
        tool_calls=[(c.name, c.arguments) for c in calls],
        finish_reason=finish,
        problems=[p.code for p in result.problems] if with_extension else None,
        truncated_calls=[(c.name, c.arguments) for c in withheld] if with_extension else None,
    )


def _calls(entries: list[Any] | None) -> list[tuple[str, Any]]:
    return [(c.function.name, json.loads(c.function.arguments)) for c in entries or []]


def _extension(choice: Any) -> tuple[list[str] | None, list[tuple[str, Any]] | None]:
    ext = (choice.model_extra or {}).get("m2parse")
    if ext is None:
        return None, None
    entries = ext.get("truncated_tool_calls", [])
    withheld = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in entries]
    return [p["code"] for p in ext["problems"]], withheld


def ask(client: OpenAI, mode: str, reasoning_field: str, **request: Any) -> Reply:
    """One request in ``mode``; ``reasoning_field`` is where the reasoning comes (m2parse: ``reasoning_content``,
    vLLM 0.32: ``reasoning``)."""
    if mode == "create":
        reply = client.chat.completions.create(**request)
        choice = reply.choices[0]
        message = choice.message
        problems, withheld = _extension(choice)
        return Reply(
            content=message.content or None,
            reasoning=(message.model_extra or {}).get(reasoning_field) or None,
            tool_calls=_calls(message.tool_calls),
            finish_reason=choice.finish_reason,
            problems=problems,
            truncated_calls=withheld,
            prompt_tokens=reply.usage.prompt_tokens if reply.usage else None,
            ids=[c.id for c in message.tool_calls or []],
        )
    if mode == "stream":
        chunks = client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **request)
        return _reassemble(chunks, reasoning_field)
    with client.chat.completions.stream(**request) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    return Reply(
        content=choice.message.content or None,
        reasoning=(choice.message.model_extra or {}).get(reasoning_field) or None,
        tool_calls=_calls(choice.message.tool_calls),
        finish_reason=choice.finish_reason,
        ids=[c.id for c in choice.message.tool_calls or []],
    )


def _reassemble(chunks: Any, reasoning_field: str) -> Reply:
    content, reasoning = [], []
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    problems = withheld = None
    prompt_tokens = None
    for chunk in chunks:
        if chunk.usage is not None:
            prompt_tokens = chunk.usage.prompt_tokens
        for choice in chunk.choices:
            delta = choice.delta
            content.append(delta.content or "")
            reasoning.append((delta.model_extra or {}).get(reasoning_field) or "")
            for call in delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                if call.id:
                    assert entry["id"] is None, "a call's id comes once"
                    entry["id"] = call.id
                if call.function is not None:
                    entry["name"] += call.function.name or ""
                    entry["arguments"] += call.function.arguments or ""
            if choice.finish_reason is not None:
                assert finish is None, "one finish_reason per choice"
                finish = choice.finish_reason
                problems, withheld = _extension(choice)
    assert sorted(calls) == list(range(len(calls))), "call indices run 0, 1, 2, ..."
    ordered = [calls[i] for i in sorted(calls)]
    return Reply(
        content="".join(content) or None,
        reasoning="".join(reasoning) or None,
        tool_calls=[(c["name"], json.loads(c["arguments"])) for c in ordered],
        finish_reason=finish,
        problems=problems,
        truncated_calls=withheld,
        prompt_tokens=prompt_tokens,
        ids=[c["id"] for c in ordered],
    )
