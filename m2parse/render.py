"""render_prompt(): the official M2-family chat templates, in plain Python, byte-identical to transformers 5.23.

The code follows the template's control flow step by step (one branch here per branch there), so a review can
hold the two side by side. Inputs are first normalised the way ``apply_chat_template`` 5.23 does it (None-valued
message keys dropped, ``thinking``/``reasoning`` aliased to ``reasoning_content``) plus the one thing servers add
(JSON-string ``arguments`` decoded). Every place where we differ from the template is listed in docs/rendering.md.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .format import (
    BOS,
    GENERATION_PROMPT,
    THINK_CLOSE,
    THINK_OPEN,
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    TURN_END,
    TURN_START,
)
from .pyliteral import MAX_DEPTH
from .templates import DEFAULT_TEMPLATE, TemplateVariant, get_variant

__all__ = [
    "MAX_DEPTH",
    "RenderError",
    "RenderWarning",
    "prepare_messages",
    "prepare_tools",
    "render_assistant_turn",
    "render_prompt",
]

TOOLS_HEAD = (
    "\n\n# Tools\nYou may call one or more tools to assist with the user query.\n"
    "Here are the tools available in JSONSchema format:\n\n<tools>\n"
)
TOOLS_TAIL = (
    "</tools>\n\nWhen making tool calls, use XML format to invoke tools and pass parameters:\n\n"
    + TOOL_CALL_OPEN
    + '\n<invoke name="tool-name-1">\n<parameter name="param-key-1">param-value-1</parameter>\n'
    '<parameter name="param-key-2">param-value-2</parameter>\n...\n</invoke>\n' + TOOL_CALL_CLOSE
)
SYSTEM_HEADER = BOS + TURN_START + "system\n"
END = TURN_END + "\n"
AI_HEADER = TURN_START + "ai\n"
USER_HEADER = TURN_START + "user\n"
TOOL_HEADER = TURN_START + "tool"
THINK_BLOCK_OPEN = THINK_OPEN + "\n"
THINK_BLOCK_CLOSE = "\n" + THINK_CLOSE + "\n\n"
CALLS_OPEN = "\n" + TOOL_CALL_OPEN + "\n"
RESPONSE_OPEN = "\n<response>"
RESPONSE_CLOSE = "</response>"
#: transformers >= 5.21 copies the first non-None of these into ``reasoning_content`` (and ``thinking``).
REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
#: transformers' ``tojson``: json.dumps(ensure_ascii=False), default separators, no sorting (one shared encoder:
#: json.dumps builds a new one per call when given any option).
_JSON = json.JSONEncoder(ensure_ascii=False)


class RenderError(ValueError):
    """The conversation cannot be rendered (the official template would raise, or the input has a wrong shape)."""


class RenderWarning(UserWarning):
    """The template silently drops part of the input; ``strict=True`` turns this into a RenderError."""


class _Missing:
    """A key that is absent: jinja's Undefined (renders as '', iterates as empty, is falsy)."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def render_prompt(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    add_generation_prompt: bool = True,
    template: str = DEFAULT_TEMPLATE,
    chat_template: str | os.PathLike[str] | None = None,
    strict: bool = False,
    **template_kwargs: Any,
) -> str:
    """The prompt text the official template ``template`` renders for this conversation.

    ``chat_template`` (a template string, a ``.jinja`` path or a model folder) renders any other template with
    jinja2 instead (needs the ``[jinja]`` extra). ``template_kwargs`` are the template's variables; the M2
    templates read only ``model_identity``; MiniMax-M3 reads ``model_identity`` and ``thinking_mode``
    (render_m3.py). ``strict`` raises instead of warning when the template would silently drop input (a
    misplaced system message, an unknown role, a non-text part, lost ``</think>`` segments).
    """
    prepared = prepare_messages(messages)
    tool_list = prepare_tools(tools)
    if chat_template is not None:
        from .jinja_render import render_chat_template

        text = render_chat_template(
            chat_template, prepared, tool_list, add_generation_prompt=add_generation_prompt, **template_kwargs
        )
        _check_encodable(text, prepared, tool_list, template_kwargs)
        return text
    try:
        variant = get_variant(template)
    except ValueError as exc:
        raise RenderError(str(exc)) from None
    notes: list[str] = []
    if variant.format == "m3":
        from .render_m3 import render_m3

        text = render_m3(prepared, tool_list, variant, add_generation_prompt, template_kwargs, notes)
    else:
        text = _render(prepared, tool_list, variant, add_generation_prompt, template_kwargs, notes)
    _check_encodable(text, prepared, tool_list, template_kwargs)
    if notes and strict:
        raise RenderError(notes[0])
    for note in notes:
        warnings.warn(note, RenderWarning, stacklevel=2)
    return text


def render_assistant_turn(message: Mapping[str, Any], *, keeps_reasoning: bool = True) -> str:
    """What the template writes between ``]~b]ai\\n`` and ``[e~[\\n`` for one assistant message.

    ``keeps_reasoning`` says whether the turn comes after the last user message (only those show reasoning).
    This is also the model's own output for that turn, once its leading ``<think>\\n`` is taken off.
    """
    out: list[str] = []
    _assistant(out, prepare_messages([{**message, "role": "assistant"}])[0], keeps_reasoning, "message", [])
    return "".join(out)[len(AI_HEADER) : -len(END)]


# ------------------------------------------------------------------------------------------ input shape


def prepare_messages(messages: Any) -> list[dict[str, Any]]:
    """Copies of the messages as the template sees them under transformers 5.23, plus decoded arguments."""
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise RenderError(f"messages must be a list of message dicts, not {type(messages).__name__}")
    if not messages:
        raise RenderError("messages is empty: there is nothing to render (transformers raises here too)")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            dump = getattr(message, "model_dump", None)  # pydantic models, e.g. the openai SDK's messages
            if not callable(dump):
                raise RenderError(f"messages[{i}] must be a dict, not {type(message).__name__}")
            message = dump()
        msg = {k: v for k, v in message.items() if v is not None}
        reasoning = next((msg[k] for k in REASONING_FIELDS if k in msg), None)
        if reasoning is not None:
            msg = {"thinking": reasoning, **msg, "reasoning_content": reasoning}
        calls = msg.get("tool_calls")
        if msg.get("role") == "assistant" and isinstance(calls, (list, tuple)):
            msg["tool_calls"] = [_decode_call(c, f"messages[{i}].tool_calls[{j}]") for j, c in enumerate(calls)]
        out.append(msg)
    return out


def _decode_call(call: Any, where: str) -> Any:
    """OpenAI sends ``arguments`` as a JSON string; the template needs a mapping (vLLM decodes it the same way)."""
    if not isinstance(call, Mapping):
        return call
    function = call.get("function")
    target = function if isinstance(function, Mapping) and function else call
    arguments = target.get("arguments")
    if not isinstance(arguments, str):
        return call
    decoded = decode_arguments(arguments, where)
    if target is call:
        return {**call, "arguments": decoded}
    return {**call, "function": {**function, "arguments": decoded}}


def decode_arguments(text: str, where: str = "arguments") -> dict[str, Any]:
    """A JSON-object string as a dict; an empty string means no arguments.

    Nesting is bounded by MAX_DEPTH (checked when the value is written) and by the interpreter's recursion limit
    while decoding, so a hostile string costs time in proportion to its length and a bounded stack.
    """
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RenderError(f"{where}: arguments is not valid JSON ({exc.msg} at char {exc.pos})") from None
    except RecursionError:
        raise RenderError(f"{where}: arguments are nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # an integer over Python's int-to-str digit limit
        raise RenderError(f"{where}: arguments cannot be read ({_reason(exc)})") from None
    if not isinstance(value, dict):
        raise RenderError(f"{where}: arguments must be a JSON object, not {type(value).__name__}")
    return value


def prepare_tools(tools: Any) -> list[Mapping[str, Any]] | None:
    """OpenAI-shaped tools as given; bare ``{"name", "parameters"}`` ones wrapped (the template would raise)."""
    if tools is None:
        return None
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
        raise RenderError(f"tools must be a list of tool dicts, not {type(tools).__name__}")
    out: list[Mapping[str, Any]] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            if callable(tool):
                raise RenderError(
                    f"tools[{i}] is a Python callable, which m2parse does not convert; pass its JSON schema "
                    "instead (transformers.utils.get_json_schema(fn) makes one)"
                )
            raise RenderError(f"tools[{i}] must be a dict, not {type(tool).__name__}")
        if "function" in tool:
            out.append(tool)
        elif "name" in tool:
            function = {k: v for k, v in tool.items() if not (k == "type" and v == "function")}
            out.append({"type": "function", "function": function})
        else:
            raise RenderError(f"tools[{i}] has neither 'function' nor 'name'")
    return out


# --------------------------------------------------------------------------------------------- template


def _render(
    messages: list[dict[str, Any]],
    tools: list[Mapping[str, Any]] | None,
    variant: TemplateVariant,
    add_generation_prompt: bool,
    kwargs: Mapping[str, Any],
    notes: list[str],
) -> str:
    system = messages[0] if messages[0].get("role") == "system" else None
    offset = 1 if system is not None else 0
    conversation = messages[offset:]
    last_user = max((i for i, m in enumerate(conversation) if m.get("role") == "user"), default=-1)

    out = [SYSTEM_HEADER, _system_text(system, variant, kwargs, notes)]
    _write_tools(out, tools, TOOLS_HEAD, TOOLS_TAIL)
    out.append(END)

    call_open = False  # the template's `last_tool_call.name is not none`
    for i, message in enumerate(conversation):
        where = f"messages[{i + offset}]"
        role = message.get("role", MISSING)
        if role == "assistant":
            _assistant(out, message, i > last_user, where, notes)
            calls = message.get("tool_calls", MISSING)
            call_open = bool(calls) and not _name_is_none(calls[-1], variant)
        elif role == "tool":
            _tool_turn(out, conversation, i, where, call_open, _tool_results)
        elif role == "user":
            out += [USER_HEADER, _visible_text(message.get("content", MISSING), f"{where}.content", notes), END]
        elif any(value for key, value in message.items() if key != "role"):  # dropping nothing is no news
            notes.append(f"{where} is not rendered: {_why_dropped(role)} (the template drops it silently)")
    if add_generation_prompt:
        out.append(GENERATION_PROMPT)
    return "".join(out)


def _why_dropped(role: Any) -> str:
    if role is MISSING:
        return "it has no role"
    if role == "system":
        return "a system message is only read at index 0"
    return f"role {role!r} is unknown"


def _system_text(
    system: Mapping[str, Any] | None, variant: TemplateVariant, kwargs: Mapping[str, Any], notes: list[str]
) -> str:
    content = system.get("content", MISSING) if system is not None else MISSING
    if content:
        text = _visible_text(content, "messages[0].content", notes)
    else:
        identity = kwargs.get("model_identity")
        text = variant.identity if identity is None else _str(identity, "model_identity")
    if system is None:
        return text
    for key, label in (("current_date", "Current date: "), ("current_location", "Current location: ")):
        value = system.get(key)
        if value:
            if not isinstance(value, str):
                raise RenderError(f"messages[0].{key} must be a string, not {type(value).__name__}")
            text += "\n" + label + value
    return text


def _assistant(out: list[str], message: Mapping[str, Any], keeps_reasoning: bool, where: str, notes: list[str]) -> None:
    out.append(AI_HEADER)
    content = _visible_text(message.get("content", MISSING), f"{where}.content", notes)
    reasoning, content = _reasoning_and_content(message, content, where, notes, THINK_OPEN, THINK_CLOSE)
    if reasoning and keeps_reasoning:
        out += [THINK_BLOCK_OPEN, reasoning, THINK_BLOCK_CLOSE]
    if content:
        out.append(content)
    _write_calls(out, message.get("tool_calls", MISSING), where, _invoke, CALLS_OPEN, TOOL_CALL_CLOSE)
    out.append(END)


# The steps both templates (M2 here, M3 in render_m3.py) take alike, with their own tokens.


def _write_tools(out: list[str], tools: list[Mapping[str, Any]] | None, head: str, tail: str) -> None:
    """The tools section of the system (M2) or developer (M3) block: each tool's function as JSON."""
    if tools:
        out.append(head)
        for i, tool in enumerate(tools):
            out += ["<tool>", _json(tool["function"], f"tools[{i}].function"), "</tool>\n"]
        out.append(tail)


def _tool_turn(
    out: list[str],
    conversation: list[dict[str, Any]],
    i: int,
    where: str,
    call_open: bool,
    write_results: Callable[[list[str], Any, str], None],
) -> None:
    """Tool message ``i``: a run of tool messages shares one tool turn, opened at its first and closed after its
    last; a tool message with no open tool call is the template's raise."""
    if not call_open:
        raise RenderError(
            f"{where} is a tool result, but the last assistant message before it has no tool calls "
            "(the template raises: 'Message has tool role, but there was no previous assistant "
            "message with a tool call!')"
        )
    if i == 0 or conversation[i - 1].get("role") != "tool":
        out.append(TOOL_HEADER)
    write_results(out, conversation[i].get("content", MISSING), where)
    if i == len(conversation) - 1 or conversation[i + 1].get("role") != "tool":
        out.append(END)


def _reasoning_and_content(
    message: Mapping[str, Any], content: str, where: str, notes: list[str], think_open: str, think_close: str
) -> tuple[str, str]:
    """A string ``reasoning_content``, else the reasoning the template cuts out of the content at its think tags."""
    reasoning = message.get("reasoning_content", MISSING)
    if isinstance(reasoning, str):
        return reasoning, content
    if think_close not in content:
        return "", content
    segments = content.split(think_close)
    if len(segments) > 2:
        notes.append(
            f"{where}.content has {len(segments) - 1} '{think_close}': the template keeps the text before the "
            "first as reasoning and after the last as content, and drops the rest"
        )
    return segments[0].strip("\n").split(think_open)[-1].strip("\n"), segments[-1].strip("\n")


def _name_and_arguments(call: Any, where: str) -> tuple[str, Mapping[Any, Any]]:
    """A tool call's name and arguments, from ``function`` or (when that is falsy) the call itself."""
    if not _is_mapping(call):
        raise RenderError(f"{where} must be a dict, not {type(call).__name__}")
    function = call.get("function", MISSING)
    target = function if function else call
    if not _is_mapping(target):
        raise RenderError(f"{where}.function must be a dict, not {type(target).__name__}")
    name = target.get("name", MISSING)
    if not isinstance(name, str):
        raise RenderError(f"{where}: the tool call's name must be a string, not {_type(name)}")
    arguments = target.get("arguments", MISSING)
    if not _is_mapping(arguments):
        raise RenderError(f"{where}: arguments must be an object (or a JSON-object string), not {_type(arguments)}")
    return name, arguments


def _write_calls(
    out: list[str],
    calls: Any,
    where: str,
    invoke: Callable[[list[str], Any, str], None],
    calls_open: str,
    calls_close: str,
) -> None:
    """An assistant message's tool calls, if any, as one block of invokes."""
    if calls:
        if not isinstance(calls, (list, tuple)):
            raise RenderError(f"{where}.tool_calls must be a list, not {type(calls).__name__}")
        out.append(calls_open)
        for j, call in enumerate(calls):
            invoke(out, call, f"{where}.tool_calls[{j}]")
        out.append(calls_close)


def _invoke(out: list[str], call: Any, where: str) -> None:
    name, arguments = _name_and_arguments(call, where)
    out += ['<invoke name="', name, '">\n']
    for key, value in arguments.items():
        if not isinstance(key, str):
            raise RenderError(f"{where}: argument names must be strings, not {_type(key)}")
        rendered = value if isinstance(value, str) else _json(value, f"{where}.arguments[{key!r}]")
        out += ['<parameter name="', key, '">', rendered, "</parameter>\n"]
    out.append("</invoke>\n")


def _name_is_none(call: Any, variant: TemplateVariant) -> bool:
    """The release body reads ``tool_calls[-1].name``: only an explicit ``"name": None`` there is none."""
    return variant.last_call_name == "outer" and _is_mapping(call) and "name" in call and call["name"] is None


def _tool_results(out: list[str], content: Any, where: str) -> None:
    if isinstance(content, str):
        out += [RESPONSE_OPEN, content, RESPONSE_CLOSE]
        return
    for k, item in enumerate(_iterate(content, f"{where}.content")):
        if _is_mapping(item) and "output" in item:
            item = item["output"]
        elif _is_mapping(item) and item.get("type") == "text" and "text" in item:
            item = item["text"]
        out += [RESPONSE_OPEN, _str(item, f"{where}.content[{k}]"), "\n" + RESPONSE_CLOSE]


def _visible_text(content: Any, where: str, notes: list[str], media: Mapping[str, str] | None = None) -> str:
    """The template's ``visible_text`` macro: strings as is, text parts of lists joined, other parts dropped.

    ``media`` maps part types to the token written for them (M3 writes ``]<]image[>[`` for an image part).
    """
    if isinstance(content, str):
        return content
    if content is MISSING:
        return ""
    if _is_mapping(content) or not _is_iterable(content):
        return _str(content, where)
    parts = []
    for k, item in enumerate(content):
        if _is_mapping(item) and item.get("type") == "text":
            parts.append(_str(item["text"], f"{where}[{k}].text") if "text" in item else "")
        elif media and _is_mapping(item) and isinstance(item.get("type"), str) and item["type"] in media:
            parts.append(media[item["type"]])
        elif isinstance(item, str):
            parts.append(item)
        else:
            kind = item.get("type") if _is_mapping(item) else type(item).__name__
            kept = "text, image and video parts" if media else "text parts"
            notes.append(f"{where}[{k}] ({kind!r}) is not rendered: the template keeps {kept} only")
    return "".join(parts)


def _iterate(value: Any, where: str) -> Any:
    if value is MISSING:
        return ()
    if _is_mapping(value):
        return list(value)  # jinja iterates a mapping's keys
    if not _is_iterable(value):
        raise RenderError(f"{where} must be a string or a list, not {type(value).__name__}")
    return value


def _is_iterable(value: Any) -> bool:
    try:
        iter(value)
    except TypeError:
        return False
    return True


def _str(value: Any, where: str) -> str:
    """What ``{{ value }}`` writes (Python's ``str``), for values no API sends but the template still renders."""
    if isinstance(value, str):
        return value
    _check_depth(value, where)
    try:
        return str(value)
    except (ValueError, RecursionError) as exc:
        raise RenderError(f"{where}: cannot be written as text ({_reason(exc)})") from None


def _json(value: Any, where: str) -> str:
    """transformers' ``tojson``; NaN and infinities are written as ``NaN``/``Infinity``, as json.dumps does."""
    _check_depth(value, where)
    try:
        return _JSON.encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise RenderError(f"{where}: not JSON-serialisable ({_reason(exc)})") from None


def _check_depth(value: Any, where: str) -> None:
    """Refuse containers nested deeper than MAX_DEPTH (a cycle is infinitely deep), before any recursive code runs.

    Iterative, and each container is visited once per path to it: linear for trees, which is what decoded JSON
    always is. (A Python object graph that shares sub-objects is written once per reference, by json.dumps too.)
    """
    if not _is_container(value):
        return
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise RenderError(f"{where}: nested deeper than {MAX_DEPTH} levels (or it contains itself)")
        children = node.values() if _is_mapping(node) else node
        stack.extend((child, depth + 1) for child in children if _is_container(child))


def _is_container(value: Any) -> bool:
    return type(value) in (dict, list, tuple) or (not isinstance(value, str) and isinstance(value, (Mapping, list)))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deep for Python's recursion limit"
    text = str(exc)
    if "integer string conversion" in text:
        return f"an integer has more than {sys.get_int_max_str_digits()} digits, Python's int-to-str limit"
    return text


def _check_encodable(text: str, messages: list[dict[str, Any]], tools: Any, kwargs: Mapping[str, Any]) -> None:
    """A prompt with a lone surrogate cannot be encoded, so no tokenizer or socket can take it: name the field."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = text[exc.start]
        where = _find_text(char, messages, "messages") or _find_text(char, tools, "tools")
        where = where or _find_text(char, dict(kwargs), "") or "the template's own text"
        raise RenderError(
            f"{where}: lone surrogate {char!r} at char {exc.start} of the prompt; a prompt must be valid Unicode "
            "(decode input with errors='replace' or fix the producer)"
        ) from None


def _find_text(char: str, value: Any, where: str) -> str | None:
    """The path of the first string (or key) under ``value`` that holds ``char``, depth-bounded like rendering."""
    stack = [(value, where, 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            if char in node:
                return path
        elif depth < MAX_DEPTH and _is_container(node):
            if _is_mapping(node):
                items = [(f"{path}.{k}" if isinstance(k, str) and k.isidentifier() else f"{path}[{k!r}]", k, v)
                         for k, v in node.items()]  # fmt: skip
                for label, key, _ in items:
                    if isinstance(key, str) and char in key:
                        return label.lstrip(".")
                stack.extend((v, label.lstrip("."), depth + 1) for label, _, v in reversed(items))
            else:
                stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in reversed(list(enumerate(node))))
    return None


def _is_mapping(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)  # the ABC check is slow; dicts are the rule


def _type(value: Any) -> str:
    return "nothing" if value is MISSING else type(value).__name__
