"""``/v1/chat/completions``: validate the OpenAI request, render the M2 prompt, parse the raw output.

Validation happens before anything is sent to the backend, so every malformed request is a 400 that names the
field, and nothing about a request can fail later except the backend itself.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import anyio

from ..backends import Piece, SamplingParams, Usage
from ..backends.base import find_surrogate, one_line
from ..backends.client import RESERVED_EXTRA_KEYS, BackendClient
from ..format import THINK_OPEN
from ..formats import m3
from ..message import ParsedMessage
from ..parser import StreamParser
from ..problems import INVALID_UNICODE, Problem
from ..render import RenderWarning, render_prompt
from ..schema import ToolsError, ToolSpec, normalize_tools, tool_schema_error
from .access_log import RequestRecord
from .config import ServerConfig
from .errors import APIError, bad_request
from .grammar_fields import grammar_backend, grammar_body, grammar_options

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
    "tool_calls": (bool, None),  # false: markup stays in the content (what tool_choice "none" sets)
}
#: integer fields bounded as OpenAI bounds them (a value past the bound is a 400, never forwarded)
_INT32 = 2**31 - 1
#: requests bigger than this (bytes), or with tools, are prepared and parsed in a worker thread
OFFLOAD_BYTES = 16 * 1024


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
    #: tool_choice "none": a call the model writes anyway stays in the content as text
    tool_calls: bool = True
    #: ``m2parse.keep_truncated_tool_calls``: return calls cut off by the token limit as ordinary tool calls
    keep_truncated: bool = False
    #: ``m2parse.backend_extra``: merged into the backend request body at top level
    backend_extra: Mapping[str, Any] | None = None
    #: ``chat_template_kwargs.thinking_mode`` (as vLLM and SGLang take it): None when unset
    thinking_mode: str | None = None


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
        where = f"{here}.function.arguments"
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                raise bad_request(f"'{where}' is not valid JSON", where) from None
            except RecursionError:
                raise bad_request(f"'{where}' is nested too deeply", where) from None
            if (inner := surrogate_path(arguments)) is not None:
                raise bad_request(f"'{where}' holds a lone surrogate (invalid Unicode) at {inner or 'the top'}", where)
        if not isinstance(arguments, Mapping):
            raise bad_request(f"'{where}' must be a JSON object", where)


_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def may_hold_surrogates(raw: bytes) -> bool:
    """Whether a JSON body could decode to a lone surrogate: only a ``\\uD800``-``\\uDFFF`` escape or their
    raw (invalid UTF-8) bytes can make one, so most bodies skip the walk below."""
    return _ESCAPED_SURROGATE.search(raw) is not None


def surrogate_path(value: Any) -> str | None:
    """The path (``messages[0].content``) of the first string or key holding a lone surrogate, or None.

    Iterative, and each node's place is kept as two integers-and-keys list entries rather than an object, so
    depth costs no stack, the walk stays linear, and it allocates nothing the garbage collector has to scan.
    """
    keys: list[Any] = [None]  # node id -> its key in its parent
    parents: list[int] = [-1]  # node id -> its parent's id
    nodes: list[Any] = [value]  # the stack: nodes still to visit, and their ids
    ids: list[int] = [0]
    while nodes:
        node, here = nodes.pop(), ids.pop()
        if isinstance(node, str):
            if find_surrogate(node) >= 0:
                return _path(here, keys, parents)
            continue
        if isinstance(node, Mapping):
            items: Any = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            continue
        pairs = list(items)
        first = len(keys)
        for key, _ in pairs:
            keys.append(key)
            parents.append(here)
            if isinstance(key, str) and find_surrogate(key) >= 0:
                return _path(len(keys) - 1, keys, parents)
        nodes.extend(item for _, item in reversed(pairs))  # last first, so they are visited in order
        ids.extend(range(len(keys) - 1, first - 1, -1))
    return None


def _path(node: int, keys: list[Any], parents: list[int]) -> str:
    parts: list[str] = []
    while node > 0:
        key = keys[node]
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
        node = parents[node]
    text = "".join(reversed(parts))
    return text[1:] if text.startswith(".") else text


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
        self._lock = threading.Lock()  # requests are prepared in worker threads; held only for dict updates

    def error(self, spec: ToolSpec) -> str | None:
        try:
            key = spec.name + "\0" + json.dumps(spec.parameters, sort_keys=True)
        except (TypeError, ValueError, RecursionError):
            return tool_schema_error(spec)
        with self._lock:
            if key in self._seen:
                return self._seen[key]
        error = tool_schema_error(spec)  # outside the lock: the costly part, and the same answer for everyone
        with self._lock:
            while len(self._seen) >= self._size:
                del self._seen[next(iter(self._seen))]
            self._seen[key] = error
        return error


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


def _number(body: Mapping[str, Any], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if not _is_number(value) or not low <= value <= high:
        raise bad_request(f"'{key}' must be a number from {low:g} to {high:g}", key)
    return float(value)


def _integer(body: Mapping[str, Any], key: str, low: int, high: int) -> int | None:
    """An integer as OpenAI takes one: not a boolean, not a float (``1.0`` is refused), within bounds."""
    value = body.get(key)
    if value is None:
        return None
    if not _is_int(value) or not low <= value <= high:
        raise bad_request(f"'{key}' must be an integer from {low} to {high}", key)
    return int(value)


def _typed(body: Mapping[str, Any], key: str, kind: type, label: str) -> None:
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        raise bad_request(f"'{key}' must be {label}", key)


def _check_ignored_fields(body: Mapping[str, Any]) -> None:
    """Fields a raw completion cannot honour are ignored, but typed as OpenAI types them, so a client's mistake
    is a 400 here as it would be there."""
    for key in ("presence_penalty", "frequency_penalty"):
        _number(body, key, -2.0, 2.0)
    _integer(body, "top_logprobs", 0, 20)
    for key in ("logprobs", "parallel_tool_calls", "store"):
        _typed(body, key, bool, "a boolean")
    for key in ("model", "user", "service_tier"):
        _typed(body, key, str, "a string")
    for key in ("response_format", "metadata", "logit_bias"):
        _typed(body, key, Mapping, "an object")
    for token, bias in (body.get("logit_bias") or {}).items():
        if not _is_number(bias) or not -100 <= bias <= 100:
            raise bad_request(f"'logit_bias.{token}' must be a number from -100 to 100", f"logit_bias.{token}")


def _sampling(body: Mapping[str, Any], config: ServerConfig) -> SamplingParams:
    values: dict[str, Any] = dict(config.default_sampling)
    for key, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        if (number := _number(body, key, low, high)) is not None:
            values[key] = number
    for key, ilow, ihigh in (("top_k", -1, _INT32), ("seed", -(2**63), 2**64 - 1)):
        if (integer := _integer(body, key, ilow, ihigh)) is not None:
            values[key] = integer
    for key in ("max_completion_tokens", "max_tokens"):
        if (integer := _integer(body, key, 1, _INT32)) is not None:
            values.setdefault("max_tokens", integer)
    if "max_tokens" not in values and config.default_max_tokens is not None:
        values["max_tokens"] = config.default_max_tokens
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


@dataclass(frozen=True, slots=True)
class Extension:
    """The request's ``m2parse`` field: parser options, and the two server switches."""

    parser_options: tuple[tuple[str, Any], ...] = ()
    keep_truncated: bool = False
    backend_extra: Mapping[str, Any] | None = None


def _extension(ext: Any) -> Extension:
    if ext is None:
        return Extension()
    if not isinstance(ext, Mapping):
        raise bad_request("'m2parse' must be an object of parser options", "m2parse")
    out = []
    keep, extra = False, None
    for key, value in ext.items():
        if key == "keep_truncated_tool_calls":
            if not isinstance(value, bool):
                raise bad_request(f"'m2parse.{key}' must be a boolean", f"m2parse.{key}")
            keep = value
            continue
        if key == "backend_extra":
            extra = _backend_extra(value)
            continue
        if key == "grammar":  # grammar bounds: checked with the grammar (grammar_fields.grammar_options)
            continue
        if key not in _OPTION_TYPES:
            allowed = ", ".join((*_OPTION_TYPES, "keep_truncated_tool_calls", "backend_extra", "grammar"))
            raise bad_request(f"'m2parse.{key}' is not an option the server takes ({allowed})", f"m2parse.{key}")
        kind, choices = _OPTION_TYPES[key]
        if not isinstance(value, kind) or (choices is not None and value not in choices):
            expected = " or ".join(map(repr, choices)) if choices else kind.__name__
            raise bad_request(f"'m2parse.{key}' must be {expected}", f"m2parse.{key}")
        out.append((key, value))
    return Extension(tuple(out), keep, extra)


def _backend_extra(value: Any) -> Mapping[str, Any] | None:
    param = "m2parse.backend_extra"
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise bad_request(f"'{param}' must be an object (merged into the backend request body)", param)
    for key in sorted(RESERVED_EXTRA_KEYS & set(value)):
        raise bad_request(f"'{param}.{key}' is m2parse's own: the server always sends it", f"{param}.{key}")
    return dict(value)


def parse_request(body: Any, config: ServerConfig, checks: SchemaChecks | None = None) -> ChatRequest:
    if not isinstance(body, Mapping):
        raise bad_request("the request body must be a JSON object")
    messages = validate_messages(body.get("messages"))
    tools, prompt_tools = validate_tools(body.get("tools"), body.get("tool_choice"), checks)
    if _integer(body, "n", 1, 128) not in (None, 1):
        raise bad_request("only n=1 is supported", "n")
    _typed(body, "stream", bool, "a boolean")
    stream = body.get("stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, Mapping):
        raise bad_request("'stream_options' must be an object", "stream_options")
    include_usage = (options or {}).get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise bad_request("'stream_options.include_usage' must be a boolean", "stream_options.include_usage")
    _check_ignored_fields(body)
    ext = _extension(body.get("m2parse"))
    thinking_mode = _thinking_mode(body.get("chat_template_kwargs"))
    if config.model_format == "m3" and "starts_in_reasoning" in dict(ext.parser_options):
        raise bad_request(
            "'m2parse.starts_in_reasoning' is for M2 prompts; an M3 prompt says where the output starts with "
            "'chat_template_kwargs.thinking_mode'",
            "m2parse.starts_in_reasoning",
        )
    return ChatRequest(
        messages=messages,
        tools=tools,
        prompt_tools=prompt_tools,
        stream=bool(stream),
        include_usage=include_usage,
        sampling=_sampling(body, config),
        parser_options=ext.parser_options,
        tool_calls=body.get("tool_choice") != "none",
        keep_truncated=ext.keep_truncated,
        backend_extra=ext.backend_extra,
        thinking_mode=thinking_mode,
    )


def _thinking_mode(kwargs: Any) -> str | None:
    """``chat_template_kwargs.thinking_mode``: one of M3's three modes, or None (absent or null: unset).

    Any other value is a 400: the M3 template would render it as no mode at all (its system block then states
    none, and the generation prompt is the adaptive one), a prompt none of the documented modes gives. The
    other keys are not template variables here and are ignored, as a template ignores variables it never reads.
    """
    if kwargs is None:
        return None
    if not isinstance(kwargs, Mapping):
        raise bad_request("'chat_template_kwargs' must be an object", "chat_template_kwargs")
    mode = kwargs.get("thinking_mode")
    if mode is not None and mode not in m3.THINKING_MODES:
        param = "chat_template_kwargs.thinking_mode"
        raise bad_request(f"'{param}' must be one of {', '.join(m3.THINKING_MODES)} (or null: unset)", param)
    return mode


# ---------------------------------------------------------------------------------------------- the completion


def render(request: ChatRequest, config: ServerConfig) -> str:
    """The M2 prompt. What the template drops silently (e.g. a system message after the first) is logged.

    It runs in worker threads, where ``warnings.catch_warnings`` is not safe, so the drop is found by rendering
    strictly first (which raises on it) and only then leniently.
    """
    note = None
    try:
        prompt = _render(request, config, strict=True)
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        note = exc
        prompt = None
    if prompt is None:
        try:
            prompt = _render(request, config, strict=False)
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise bad_request(f"cannot render 'messages' into a prompt: {exc}", "messages") from None
        log.warning("prompt rendering: %s", one_line(str(note)))
    if find_surrogate(prompt) >= 0:  # every field was checked; this is the last line of defence
        raise bad_request("the rendered prompt holds a lone surrogate (invalid Unicode)", "messages")
    return prompt


def _render(request: ChatRequest, config: ServerConfig, *, strict: bool) -> str:
    # thinking_mode goes to the templates that may read it: M3's and any template file; the M2 ones never do.
    kwargs: dict[str, Any] = {}
    if request.thinking_mode is not None and (config.model_format == "m3" or config.chat_template is not None):
        kwargs["thinking_mode"] = request.thinking_mode
    return render_prompt(
        request.messages,
        request.prompt_tools,
        template=config.template,
        chat_template=config.chat_template,
        strict=strict,
        **kwargs,
    )


# the lenient render runs only after the strict one raised, whose note is logged: its warning would repeat it
warnings.filterwarnings("ignore", category=RenderWarning, module=r"m2parse\.server\.chat")


def new_parser(request: ChatRequest, prompt: str, config: ServerConfig) -> StreamParser:
    """The prompt decides where the output starts: after ``<think>\\n`` it starts inside reasoning (M2); for M3
    see :func:`m2parse.formats.m3.thinking_mode_from_prompt`."""
    start: dict[str, Any] = {"starts_in_reasoning": prompt.rstrip().endswith(THINK_OPEN)}
    if config.model_format == "m3":
        start = {"format": "m3", "thinking_mode": m3.thinking_mode_from_prompt(prompt)}
    options: dict[str, Any] = {
        "reasoning": config.reasoning,
        **start,
        "infer_types": config.infer_types,
        "unknown_tool": config.unknown_tool,
        "unknown_parameter": config.unknown_parameter,
        "validate": config.validate,
        **dict(request.parser_options),
    }
    if not request.tool_calls:
        options["tool_calls"] = False  # tool_choice "none": markup stays in the content, reported
    return StreamParser(request.tools, **options)


# ---------------------------------------------------------------------------------------------- off the loop

#: a body over this size is checked for JSON structure before it is decoded
_STRUCTURE_CHECK_BYTES = 64 * 1024
#: decoding holds the interpreter lock however it is scheduled, and its cost follows the number of JSON values,
#: not bytes: these bounds keep one body's decode under about 100 ms of a busy core (see docs/server.md)
MAX_JSON_CONTAINERS = 200_000
MAX_JSON_SEPARATORS = 1_000_000


def decode_body(raw: bytes) -> Any:
    """The JSON body, refused with 413 when its structure would make the decode itself stall the server."""
    if len(raw) > _STRUCTURE_CHECK_BYTES:
        containers = raw.count(b"{") + raw.count(b"[")
        if containers > MAX_JSON_CONTAINERS or containers + raw.count(b",") > MAX_JSON_SEPARATORS:
            raise APIError(
                413,
                f"the request body holds too many JSON values (over {MAX_JSON_CONTAINERS} objects and arrays "
                f"or {MAX_JSON_SEPARATORS} separators)",
                code="request_too_complex",
            )
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise bad_request("the request body is not valid JSON", code="invalid_json") from None
    if may_hold_surrogates(raw) and (where := surrogate_path(body)) is not None:
        raise bad_request(f"'{where}' holds a lone surrogate (invalid Unicode), which UTF-8 cannot encode", where)
    return body


@dataclass(frozen=True, slots=True)
class Prepared:
    request: ChatRequest
    prompt: str
    parser: StreamParser


def prepare(raw: bytes, config: ServerConfig, checks: SchemaChecks | None = None) -> Prepared:
    """Everything CPU-bound before the backend is asked: decode, validate (schemas too), render, make the parser.
    The app runs it in a worker thread, so a costly request cannot hold up the others."""
    return prepare_body(decode_body(raw), config, checks)


def prepare_body(body: Any, config: ServerConfig, checks: SchemaChecks | None = None) -> Prepared:
    request = parse_request(body, config, checks)
    prompt = render(request, config)
    request = with_grammar(request, body, prompt, config)
    return Prepared(request, prompt, new_parser(request, prompt, config))


def with_grammar(request: ChatRequest, body: Mapping[str, Any], prompt: str, config: ServerConfig) -> ChatRequest:
    """The request with the grammar its tool_choice/strict tools need merged under its ``backend_extra`` (the
    client's own keys win); a 400 when the backend cannot take one (see grammar_fields)."""
    ext = body.get("m2parse")
    bounds = ext.get("grammar") if isinstance(ext, Mapping) else None
    fields = grammar_body(
        grammar_backend(config.backend_type, config.grammar_engine) if config.model_format != "m3" else "m3",
        request.tools,
        body.get("tool_choice"),
        starts_in_reasoning=prompt.rstrip().endswith(THINK_OPEN),
        options=grammar_options(bounds, body.get("parallel_tool_calls")),
        fallback=config.unconstrained_fallback,
    )
    if not fields:
        return request
    return replace(request, backend_extra={**fields, **(request.backend_extra or {})})


def cheap(body: Any) -> bool:
    """A decoded small body without tools: preparing it costs little (no schema to check)."""
    return not (isinstance(body, Mapping) and body.get("tools"))


def heavy_piece(request: ChatRequest, text: str, config: ServerConfig) -> bool:
    """Whether feeding ``text`` may cost enough to run off the event loop: a long piece, or (with schemas to
    validate against) a piece holding a ``>``, without which no call can end and be validated."""
    return len(text) > OFFLOAD_BYTES or (request.tools is not None and config.validate and ">" in text)


# ---------------------------------------------------------------------------------------------- the output


@dataclass
class OutputCheck:
    """What the server itself finds in the backend's output: lone surrogates it replaced (see ``clean_piece``)."""

    replaced: int = 0
    first_at: int = 0
    seen: int = 0  # characters of output so far: the offsets are the parser's

    def see(self, piece: Piece) -> None:
        if piece.replaced:
            if not self.replaced:
                self.first_at = self.seen + piece.replaced_at
            self.replaced += piece.replaced
        self.seen += len(piece.text)

    def problems(self) -> tuple[Problem, ...]:
        if not self.replaced:
            return ()
        message = (
            f"the backend's output held {self.replaced} lone surrogate(s) (invalid Unicode); "
            "each was replaced with U+FFFD"
        )
        return (Problem(INVALID_UNICODE, message, self.first_at),)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The message as the client gets it, its finish reason and the ``m2parse`` extension."""

    message: ParsedMessage
    finish_reason: str
    extension: dict[str, Any]

    def extension_json(self) -> str:
        """The extension as JSON, one problem at a time: one ``json.dumps`` of a list of many thousand problems
        would hold the interpreter lock for its whole length, even in a worker thread."""
        dumps = json.dumps
        parts = [dumps(problem, ensure_ascii=False) for problem in self.extension["problems"]]
        rest = {key: value for key, value in self.extension.items() if key != "problems"}
        more = "".join(f", {dumps(key)}: {dumps(value, ensure_ascii=False)}" for key, value in rest.items())
        return '{"problems": [' + ", ".join(parts) + "]" + more + "}"


def settle(result: ParsedMessage, backend_reason: str | None, request: ChatRequest, check: OutputCheck) -> Outcome:
    """A call cut off by the token limit is withheld from ``tool_calls`` (an agent that ignores
    ``finish_reason`` would run it with half its arguments) and given in ``m2parse.truncated_tool_calls``,
    unless the request asked ``keep_truncated_tool_calls``."""
    withheld = () if request.keep_truncated else tuple(call for call in result.tool_calls if call.truncated)
    message = replace(
        result,
        tool_calls=tuple(call for call in result.tool_calls if call not in withheld),
        problems=result.problems + check.problems(),
    )
    ext: dict[str, Any] = {"problems": [problem.to_dict() for problem in message.problems]}
    if withheld:
        ext["truncated_tool_calls"] = [{**call.to_openai(), "truncated": True} for call in withheld]
    return Outcome(message, finish_reason(backend_reason, message), ext)


def finish_reason(backend_reason: str | None, result: ParsedMessage) -> str:
    if backend_reason == "length" and not result.ended_by_turn_marker:
        return "length"
    return "tool_calls" if result.tool_calls else "stop"


def log_problems(completion_id: str, result: ParsedMessage) -> None:
    if result.problems:
        codes = ", ".join(problem.code for problem in result.problems)
        log.warning("%s: model output needed recovery: %s", completion_id, codes)


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def _parse_whole(parser: StreamParser, text: str) -> ParsedMessage:
    parser.feed(text)
    parser.finish()
    return parser.result


async def complete(
    backend: BackendClient, prepared: Prepared, config: ServerConfig, record: RequestRecord | None = None
) -> bytes:
    """The non-streaming reply as JSON bytes (BackendError propagates; the app maps it). A long output is
    parsed, settled and serialised in a worker thread: all three cost time in proportion to it. ``record``
    (``/metrics``, the JSON access log) learns the backend's latency and the outcome."""
    request = prepared.request
    piece: Piece = await backend.complete(prepared.prompt, request.sampling, extra=request.backend_extra)
    if record is not None:
        record.backend_answered()
    if heavy_piece(request, piece.text, config):
        return await anyio.to_thread.run_sync(reply_body, prepared, piece, config, record)
    return reply_body(prepared, piece, config, record)


def reply_body(prepared: Prepared, piece: Piece, config: ServerConfig, record: RequestRecord | None = None) -> bytes:
    result = _parse_whole(prepared.parser, piece.text)
    check = OutputCheck()
    check.see(piece)
    outcome = settle(result, piece.finish_reason, prepared.request, check)
    cid = completion_id()
    log_problems(cid, outcome.message)
    if record is not None:
        record.settled(cid, outcome, result)
    choice = {
        "index": 0,
        "message": outcome.message.to_openai(reasoning_field=config.reasoning_field),
        "logprobs": None,
        "finish_reason": outcome.finish_reason,
    }
    head = {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": config.model_name}
    usage = json.dumps((piece.usage or Usage()).to_openai())
    choice_json = json.dumps(choice, ensure_ascii=False)[:-1] + ', "m2parse": ' + outcome.extension_json() + "}"
    text = json.dumps(head, ensure_ascii=False)[:-1] + ', "choices": [' + choice_json + '], "usage": ' + usage + "}"
    return text.encode()
