"""The official MiniMax-M3 chat template in plain Python, byte-identical to transformers 5.23.

render.py's ``render_prompt`` comes here for a variant whose ``format`` is ``m3``, after the shared input steps
(None-valued keys dropped, reasoning aliases, JSON-string arguments decoded). Like the M2 renderer, the code
follows the template's control flow branch by branch; the value writer (the template's ``to_xml``) is
formats/xml_writer.py, and the depth, digit-limit and encodability bounds are render.py's, shared, as are the
steps both templates take alike with their own tokens (the tools section, tool-result runs, reasoning cut out of
the content, a call's name and arguments).

What M3 does differently from M2 (the template is the spec, ../shared/reference/MiniMax-M3):
a ``root`` message is the system block, whose default text is the variant's identity and which always ends with
the thinking instructions (their last line names ``thinking_mode``); a leading ``system`` or ``developer`` message
and the tools go into a separate ``]~b]developer`` block; every assistant turn shows its reasoning as
``<mm:think>…</mm:think>``, or a bare ``</mm:think>``; tool calls are namespaced XML with arguments written as
nested elements; all results of one tool run share one ``]~b]tool`` turn, one ``<response>`` per message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .formats.m3 import (
    BOS,
    GENERATION_PROMPTS,
    IMAGE_TOKEN,
    INVOKE_CLOSE,
    INVOKE_TAG,
    NAMESPACE,
    ROLE_AI,
    ROLE_DEVELOPER,
    ROLE_ROOT,
    ROLE_SYSTEM,
    ROLE_TOOL,
    ROLE_USER,
    THINK_CLOSE,
    THINK_OPEN,
    THINKING_MODES,
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    TURN_END,
    TURN_START,
    VIDEO_TOKEN,
)
from .formats.xml_writer import close_tag, open_tag, write_xml_value
from .render import (
    MISSING,
    RenderError,
    _check_depth,
    _is_mapping,
    _iterate,
    _name_and_arguments,
    _reason,
    _reasoning_and_content,
    _str,
    _tool_turn,
    _type,
    _visible_text,
    _write_calls,
    _write_tools,
    prepare_messages,
)
from .templates import TemplateVariant

__all__ = [
    "DEFAULT_DEVELOPER",
    "DEVELOPER_HEADER",
    "MODE_LINES",
    "SYSTEM_HEADER",
    "THINKING_HEAD",
    "THINKING_TAIL",
    "TOOLS_HEAD",
    "TOOLS_TAIL",
    "render_assistant_turn",
    "render_m3",
]

END = TURN_END + "\n"
SYSTEM_HEADER = BOS + TURN_START + ROLE_SYSTEM + "\n"
DEVELOPER_HEADER = TURN_START + ROLE_DEVELOPER + "\n"
AI_HEADER = TURN_START + ROLE_AI + "\n"
USER_HEADER = TURN_START + ROLE_USER + "\n"
TOOL_HEADER = TURN_START + ROLE_TOOL
RESPONSE_OPEN = "\n<response>"
RESPONSE_CLOSE = "</response>"
CALLS_OPEN = TOOL_CALL_OPEN + "\n"
INVOKE_OPEN = NAMESPACE + "<" + INVOKE_TAG + ' name="'
INVOKE_NAME_END = '">'
INVOKE_END = INVOKE_CLOSE + "\n"
#: The developer block's text when there is no system/developer text and no ``model_identity``.
DEFAULT_DEVELOPER = "You are a helpful assistant."
THINKING_HEAD = (
    "\n\n<thinking_instructions>\nYou have a thinking capability that allows you to reason step by step before "
    "responding. When thinking is enabled, wrap your reasoning in " + THINK_OPEN + THINK_CLOSE + " tags before "
    "your response. When thinking is disabled, begin your response directly after the " + THINK_CLOSE + " prefix. "
    "When thinking is adaptive, decide on your own whether to think for the current turn.\n"
)
_ADAPTIVE = (
    "Current thinking mode: adaptive. You are encouraged to think for complex decision-making, multi-step "
    "reasoning, or when analyzing function/tool results.\n"
)
#: The system block's last line for each known ``thinking_mode`` (unset reads as adaptive; other values: none).
MODE_LINES: dict[str, str] = {
    "enabled": "Current thinking mode: enabled. You MUST think step by step before every response, including "
    "after receiving function/tool results.\n",
    "disabled": "Current thinking mode: disabled. Do not output any thinking process.\n",
    "adaptive": _ADAPTIVE,
}
THINKING_TAIL = "</thinking_instructions>"
TOOLS_HEAD = (
    "\n\n# Tools\nYou may call one or more tools to assist with the user query.\n"
    "Here are the tools available in JSONSchema format:\n\n<tools>\n"
)
TOOLS_TAIL = (
    "</tools>\n\nTo call tools, wrap all invocations in a single " + TOOL_CALL_OPEN + TOOL_CALL_CLOSE + " block. "
    "Parameter values containing nested objects or arrays are recursively expanded into XML elements. Example:\n\n"
    + CALLS_OPEN
    + INVOKE_OPEN + "tool-name-1" + INVOKE_NAME_END
    + open_tag("param-1") + "value-1" + close_tag("param-1")
    + open_tag("param-2") + open_tag("item")
    + open_tag("key-a") + "val-a" + close_tag("key-a") + open_tag("key-b") + "val-b" + close_tag("key-b")
    + close_tag("item") + close_tag("param-2")
    + INVOKE_END
    + INVOKE_OPEN + "tool-name-2" + INVOKE_NAME_END
    + open_tag("param-1") + "value-1" + close_tag("param-1")
    + INVOKE_END
    + TOOL_CALL_CLOSE
)  # fmt: skip
#: What ``visible_text`` writes for a media part.
MEDIA = {"image": IMAGE_TOKEN, "video": VIDEO_TOKEN}
_FRONT_ROLES = (ROLE_SYSTEM, ROLE_DEVELOPER)


def render_m3(
    messages: list[dict[str, Any]],
    tools: list[Mapping[str, Any]] | None,
    variant: TemplateVariant,
    add_generation_prompt: bool,
    kwargs: Mapping[str, Any],
    notes: list[str],
) -> str:
    """The template's main logic over prepared messages (render.prepare_messages) and tools (prepare_tools)."""
    mode = kwargs.get("thinking_mode")
    if mode is not None and mode not in THINKING_MODES:
        notes.append(
            f"thinking_mode={mode!r} is not one of {', '.join(THINKING_MODES)}: the template then writes no "
            "'Current thinking mode' line and an adaptive generation prompt"
        )
    system = developer = None
    offset = 0
    if messages[0].get("role") == ROLE_ROOT:
        system, offset = messages[0], 1
        if len(messages) > 1 and messages[1].get("role") in _FRONT_ROLES:
            developer, offset = messages[1], 2
    elif messages[0].get("role") in _FRONT_ROLES:
        developer, offset = messages[0], 1
    conversation = messages[offset:]

    out = [SYSTEM_HEADER, _system_text(system, variant, notes), THINKING_HEAD, _mode_line(mode), THINKING_TAIL, END]
    out += [DEVELOPER_HEADER, _developer_text(developer, offset - 1, kwargs, notes)]
    _write_tools(out, tools, TOOLS_HEAD, TOOLS_TAIL)
    out.append(END)

    call_open = False  # the template's `last_tool_call.name is not none`
    for i, message in enumerate(conversation):
        where = f"messages[{i + offset}]"
        role = message.get("role", MISSING)
        if role == "assistant":
            call_open = _assistant(out, message, where, notes)
        elif role == ROLE_TOOL:
            _tool_turn(out, conversation, i, where, call_open, _tool_result)
        elif role == ROLE_USER:
            out += [USER_HEADER, _visible_text(message.get("content", MISSING), f"{where}.content", notes, MEDIA), END]
        elif any(value for key, value in message.items() if key != "role"):  # dropping nothing is no news
            notes.append(f"{where} is not rendered: {_why_dropped(role)} (the template drops it silently)")
    if add_generation_prompt:
        out.append(GENERATION_PROMPTS.get(mode, GENERATION_PROMPTS["adaptive"]))
    return "".join(out)


def render_assistant_turn(message: Mapping[str, Any]) -> str:
    """What the template writes between ``]~b]ai\\n`` and ``[e~[\\n`` for one assistant message.

    With ``thinking_mode="adaptive"`` this is also the model's own output for the turn.
    """
    out: list[str] = []
    _assistant(out, prepare_messages([{**message, "role": "assistant"}])[0], "message", [])
    return "".join(out)[len(AI_HEADER) : -len(END)]


def _why_dropped(role: Any) -> str:
    if role is MISSING:
        return "it has no role"
    if role == ROLE_ROOT:
        return "a root message is only read at index 0"
    if role in _FRONT_ROLES:
        return f"a {role} message is only read first, or right after a root message"
    return f"role {role!r} is unknown"


def _mode_line(mode: Any) -> str:
    if mode is None:  # not given: the template's `thinking_mode is not defined` branch
        return _ADAPTIVE
    return MODE_LINES.get(mode, "") if isinstance(mode, str) else ""


def _system_text(system: Mapping[str, Any] | None, variant: TemplateVariant, notes: list[str]) -> str:
    content = system.get("content", MISSING) if system is not None else MISSING
    if content:
        return _visible_text(content, "messages[0].content", notes, MEDIA)
    return variant.identity


def _developer_text(
    developer: Mapping[str, Any] | None, index: int, kwargs: Mapping[str, Any], notes: list[str]
) -> str:
    content = developer.get("content", MISSING) if developer is not None else MISSING
    if content:
        return _visible_text(content, f"messages[{index}].content", notes, MEDIA)
    identity = kwargs.get("model_identity")
    return DEFAULT_DEVELOPER if identity is None else _str(identity, "model_identity")


def _assistant(out: list[str], message: Mapping[str, Any], where: str, notes: list[str]) -> bool:
    """Write one assistant turn; True when it has tool calls (a tool result may follow)."""
    out.append(AI_HEADER)
    content = _visible_text(message.get("content", MISSING), f"{where}.content", notes, MEDIA)
    reasoning, content = _reasoning_and_content(message, content, where, notes, THINK_OPEN, THINK_CLOSE)
    out += [THINK_OPEN, reasoning, THINK_CLOSE] if reasoning else [THINK_CLOSE]
    if content:
        out.append(content)
    calls = message.get("tool_calls", MISSING)
    _write_calls(out, calls, where, _invoke, CALLS_OPEN, TOOL_CALL_CLOSE)
    out.append(END)
    return bool(calls)  # a rendered call always has a string name, so `last_tool_call.name` is not none


def _invoke(out: list[str], call: Any, where: str) -> None:
    name, arguments = _name_and_arguments(call, where)
    out += [INVOKE_OPEN, name, INVOKE_NAME_END]
    for key, value in arguments.items():
        if value is None:  # the template's `if v is not none`: the argument is left out
            continue
        if not isinstance(key, str):
            raise RenderError(f"{where}: argument names must be strings, not {_type(key)}")
        out += [open_tag(key), _xml(value, f"{where}.arguments[{key!r}]"), close_tag(key)]
    out.append(INVOKE_END)


def _xml(value: Any, where: str) -> str:
    """The template's ``to_xml``, with render.py's bounds: depth (and cycles) first, then the int digit limit."""
    if isinstance(value, str):
        return value
    _check_depth(value, where)
    try:
        return write_xml_value(value)
    except (ValueError, TypeError) as exc:
        raise RenderError(f"{where}: cannot be written ({_reason(exc)})") from None


def _tool_result(out: list[str], content: Any, where: str) -> None:
    """One ``<response>`` per tool message: a string as is, list items concatenated (media as their token)."""
    out.append(RESPONSE_OPEN)
    if isinstance(content, str):
        out.append(content)
    else:
        for k, item in enumerate(_iterate(content, f"{where}.content")):
            kind = item.get("type", MISSING) if _is_mapping(item) else MISSING
            if isinstance(kind, str) and kind in MEDIA:
                out.append(MEDIA[kind])
                continue
            if _is_mapping(item) and "output" in item:
                item, label = item["output"], f"{where}.content[{k}].output"
            elif kind == "text" and "text" in item:
                item, label = item["text"], f"{where}.content[{k}].text"
            else:
                label = f"{where}.content[{k}]"
            out.append(_str(item, label))
    out.append(RESPONSE_CLOSE)
