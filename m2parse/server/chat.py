"""``/v1/chat/completions``: validate the OpenAI request, render the M2 prompt, parse the raw output.

Validation happens before anything is sent to the backend, so every malformed request is a 400 that names the
field, and nothing about a request can fail later except the backend itself.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..backends import Piece, SamplingParams, Usage
from ..backends.client import BackendClient
from ..format import THINK_OPEN
from ..message import ParsedMessage
from ..parser import StreamParser
from ..render import render_prompt
from ..schema import ToolsError, ToolSpec, normalize_tools, tool_schema_error
from .config import ServerConfig
from .errors import bad_request

log = logging.getLogger("m2parse.server")

_ROLES = ("system", "developer", "user", "assistant", "tool")
#: per-request parser options a client may set in the ``m2parse`` extension field
_OPTION_TYPES: dict[str, tuple[type, tuple[Any, ...] | None]] = {
    "reasoning": (str, ("separated", "inline")),
    "starts_in_reasoning": (bool, None),
    "infer_types": (bool, None),
    "unknown_tool": (str, ("keep", "drop")),
    "unknown_parameter": (str, ("keep", "drop")),
    "validate": (bool, None),
}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    messages: list[dict[str, Any]]
    #: the request's tools (OpenAI shape), used for typing the output even when tool_choice is "none"
    tools: list[dict[str, Any]] | None
    #: the tools the prompt shows: None when there are none or tool_choice is "none"
    prompt_tools: list[dict[str, Any]] | None
    stream: bool
    include_usage: bool
    sampling: SamplingParams
    #: parser keyword overrides from the request's ``m2parse`` field
    parser_options: tuple[tuple[str, Any], ...] = ()


# ---------------------------------------------------------------------------------------------- validation


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _check_content(content: Any, param: str, *, required: bool) -> None:
    """OpenAI content: a string, null (assistant only), or a list of ``{"type": "text", "text": ...}`` parts."""
    if content is None:
        if required:
            raise bad_request(f"'{param}' is required", param)
        return
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise bad_request(f"'{param}' must be a string or a list of text parts", param)
    for j, part in enumerate(content):
        if not isinstance(part, Mapping) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise bad_request(f"'{param}[{j}]' must be a text part (only text is supported)", f"{param}[{j}]")


def _check_tool_calls(calls: Any, i: int) -> None:
    param = f"messages[{i}].tool_calls"
    if not isinstance(calls, list):
        raise bad_request(f"'{param}' must be a list", param)
    for j, call in enumerate(calls):
        here = f"{param}[{j}]"
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping):
            raise bad_request(f"'{here}.function' must be an object", f"{here}.function")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request(f"'{here}.function.name' must be a non-empty string", f"{here}.function.name")
        arguments = function.get("arguments", "{}")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                raise bad_request(
                    f"'{here}.function.arguments' is not valid JSON", f"{here}.function.arguments"
                ) from None
        if not isinstance(arguments, Mapping):
            raise bad_request(f"'{here}.function.arguments' must be a JSON object", f"{here}.function.arguments")


def validate_messages(messages: Any) -> list[dict[str, Any]]:
    """Check the OpenAI chat shape and return the messages for ``render_prompt`` unchanged (it reads that shape
    itself), except that a leading ``developer`` message is the system message."""
    if messages is None:
        raise bad_request("'messages' is required", "messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty list", "messages")
    out: list[dict[str, Any]] = []
    calls_open = False  # the last non-tool message was an assistant message with tool calls
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise bad_request(f"'messages[{i}]' must be an object", f"messages[{i}]")
        role = message.get("role")
        if role not in _ROLES:
            roles = ", ".join(_ROLES)
            raise bad_request(f"'messages[{i}].role' must be one of {roles}", f"messages[{i}].role")
        entry = dict(message)
        if role == "developer" and i == 0:
            entry["role"] = "system"
        _check_content(message.get("content"), f"messages[{i}].content", required=role != "assistant")
        if role == "assistant":
            for key in ("reasoning_content", "reasoning"):
                if message.get(key) is not None and not isinstance(message[key], str):
                    raise bad_request(f"'messages[{i}].{key}' must be a string", f"messages[{i}].{key}")
            calls = message.get("tool_calls")
            if calls:
                _check_tool_calls(calls, i)
            calls_open = bool(calls)
        elif role == "tool":
            if not calls_open:
                raise bad_request(
                    f"'messages[{i}]' is a tool result with no preceding assistant message that called a tool",
                    f"messages[{i}]",
                )
            call_id = message.get("tool_call_id")
            if call_id is not None and not isinstance(call_id, str):
                raise bad_request(f"'messages[{i}].tool_call_id' must be a string", f"messages[{i}].tool_call_id")
        else:
            calls_open = False
        out.append(entry)
    return out


class SchemaChecks:
    """Per-app memo of ``tool_schema_error``: agents send the same tools every turn, and the metaschema check
    costs milliseconds. Bounded; the oldest entry goes first."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._seen: dict[str, str | None] = {}

    def error(self, spec: ToolSpec) -> str | None:
        try:
            key = spec.name + "\0" + json.dumps(spec.parameters, sort_keys=True)
        except (TypeError, ValueError, RecursionError):
            return tool_schema_error(spec)
        if key not in self._seen:
            if len(self._seen) >= self._size:
                del self._seen[next(iter(self._seen))]
            self._seen[key] = tool_schema_error(spec)
        return self._seen[key]


def validate_tools(
    tools: Any, tool_choice: Any, checks: SchemaChecks | None = None
) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    """(tools for typing, tools for the prompt). Each schema must be a valid JSON schema."""
    if tools is None or tools == []:
        tools = None
    elif not isinstance(tools, list):
        raise bad_request("'tools' must be a list", "tools")
    names: list[str] = []
    if tools is not None:
        try:
            specs = normalize_tools(tools)
        except ToolsError as exc:
            where = re.match(r"tools\[\d+\][\w.]*", str(exc))
            raise bad_request(f"invalid 'tools': {exc}", where.group(0) if where else "tools") from None
        for i, tool in enumerate(tools):
            function = tool.get("function", tool) if isinstance(tool, Mapping) else {}
            spec = specs.get(function.get("name")) if isinstance(function, Mapping) else None
            if spec is None:
                continue
            names.append(spec.name)
            if (error := checks.error(spec) if checks is not None else tool_schema_error(spec)) is not None:
                param = f"tools[{i}].function.parameters"
                raise bad_request(f"'{param}' is not a valid JSON schema: {error}", param)
    if tool_choice is None or tool_choice in ("auto", "required"):
        return tools, tools
    if tool_choice == "none":
        return tools, None
    chosen = tool_choice.get("function") if isinstance(tool_choice, Mapping) else None
    name = chosen.get("name") if isinstance(chosen, Mapping) else None
    if not isinstance(name, str):
        raise bad_request(
            "'tool_choice' must be none, auto, required or {type: function, function: {name}}", "tool_choice"
        )
    if name not in names:
        raise bad_request(f"'tool_choice' names {name!r}, which is not in 'tools'", "tool_choice")
    return tools, tools


def _sampling(body: Mapping[str, Any], config: ServerConfig) -> SamplingParams:
    values: dict[str, Any] = dict(config.default_sampling)
    for key, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        value = body.get(key)
        if value is None:
            continue
        if not _is_number(value) or not low <= value <= high:
            raise bad_request(f"'{key}' must be a number from {low} to {high}", key)
        values[key] = float(value)
    for key in ("top_k", "seed"):
        value = body.get(key)
        if value is None:
            continue
        if not _is_int(value) or (key == "top_k" and value < -1):
            raise bad_request(f"'{key}' must be an integer" + (" >= -1" if key == "top_k" else ""), key)
        values[key] = value
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if not _is_int(value) or value < 1:
            raise bad_request(f"'{key}' must be a positive integer", key)
        values.setdefault("max_tokens", value)
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is None:
        stop = []
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise bad_request("'stop' must be a string or a list of non-empty strings", "stop")
    if "top_k" in values:
        values["top_k"] = int(values["top_k"])
    return SamplingParams(stop=tuple(stop), **values)


def _parser_options(ext: Any) -> tuple[tuple[str, Any], ...]:
    if ext is None:
        return ()
    if not isinstance(ext, Mapping):
        raise bad_request("'m2parse' must be an object of parser options", "m2parse")
    out = []
    for key, value in ext.items():
        if key not in _OPTION_TYPES:
            allowed = ", ".join(_OPTION_TYPES)
            raise bad_request(f"'m2parse.{key}' is not a parser option the server takes ({allowed})", f"m2parse.{key}")
        kind, choices = _OPTION_TYPES[key]
        if not isinstance(value, kind) or (choices is not None and value not in choices):
            expected = " or ".join(map(repr, choices)) if choices else kind.__name__
            raise bad_request(f"'m2parse.{key}' must be {expected}", f"m2parse.{key}")
        out.append((key, value))
    return tuple(out)


def parse_request(body: Any, config: ServerConfig, checks: SchemaChecks | None = None) -> ChatRequest:
    if not isinstance(body, Mapping):
        raise bad_request("the request body must be a JSON object")
    messages = validate_messages(body.get("messages"))
    tools, prompt_tools = validate_tools(body.get("tools"), body.get("tool_choice"), checks)
    n = body.get("n")
    if n is not None and n != 1:
        raise bad_request("only n=1 is supported", "n")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise bad_request("'stream' must be a boolean", "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, Mapping):
        raise bad_request("'stream_options' must be an object", "stream_options")
    include_usage = (options or {}).get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise bad_request("'stream_options.include_usage' must be a boolean", "stream_options.include_usage")
    return ChatRequest(
        messages=messages,
        tools=tools,
        prompt_tools=prompt_tools,
        stream=bool(stream),
        include_usage=include_usage,
        sampling=_sampling(body, config),
        parser_options=_parser_options(body.get("m2parse")),
    )


# ---------------------------------------------------------------------------------------------- the completion


def render(request: ChatRequest, config: ServerConfig) -> str:
    """The M2 prompt. What the template drops silently (e.g. a system message after the first) is logged."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            prompt = render_prompt(
                request.messages, request.prompt_tools, template=config.template, chat_template=config.chat_template
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise bad_request(f"cannot render 'messages' into a prompt: {exc}", "messages") from None
    for warning in caught:
        log.warning("prompt rendering: %s", warning.message)
    return prompt


def new_parser(request: ChatRequest, prompt: str, config: ServerConfig) -> StreamParser:
    """The prompt decides where the output starts: after ``<think>\\n`` it starts inside reasoning."""
    options: dict[str, Any] = {
        "reasoning": config.reasoning,
        "starts_in_reasoning": prompt.rstrip().endswith(THINK_OPEN),
        "infer_types": config.infer_types,
        "unknown_tool": config.unknown_tool,
        "unknown_parameter": config.unknown_parameter,
        "validate": config.validate,
        **dict(request.parser_options),
    }
    return StreamParser(request.tools, **options)


def finish_reason(backend_reason: str | None, result: ParsedMessage) -> str:
    if backend_reason == "length" and not result.ended_by_turn_marker:
        return "length"
    return "tool_calls" if result.tool_calls else "stop"


def extension(result: ParsedMessage) -> dict[str, Any]:
    """The ``m2parse`` field: what the parser had to recover from, so it is never silent."""
    return {"problems": [problem.to_dict() for problem in result.problems]}


def log_problems(completion_id: str, result: ParsedMessage) -> None:
    if result.problems:
        codes = ", ".join(problem.code for problem in result.problems)
        log.warning("%s: model output needed recovery: %s", completion_id, codes)


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


async def complete(backend: BackendClient, request: ChatRequest, config: ServerConfig) -> dict[str, Any]:
    """The non-streaming reply (BackendError propagates; the app maps it)."""
    prompt = render(request, config)
    parser = new_parser(request, prompt, config)
    piece: Piece = await backend.complete(prompt, request.sampling)
    parser.feed(piece.text)
    parser.finish()
    result = parser.result
    cid = completion_id()
    log_problems(cid, result)
    choice = {
        "index": 0,
        "message": result.to_openai(reasoning_field=config.reasoning_field),
        "logprobs": None,
        "finish_reason": finish_reason(piece.finish_reason, result),
        "m2parse": extension(result),
    }
    usage = (piece.usage or Usage()).to_openai()
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": config.model_name,
        "choices": [choice],
        "usage": usage,
    }
