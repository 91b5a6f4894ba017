"""The literal markers of the MiniMax-M3 prompt and output format (../shared/reference/MiniMax-M3).

M3 keeps M2's turn markers, prefixes every tool-call tag with a namespace token, writes arguments as nested
elements named after their keys, and names its reasoning tags ``<mm:think>``. Everything that knows an M3 spelling
imports it from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from .spec import Markup, OutputFormat

#: Written before every XML tag of a tool call (block, invoke, argument, nested key, item).
NAMESPACE = "]<]minimax[>["
THINK_OPEN = "<mm:think>"
THINK_CLOSE = "</mm:think>"
TOOL_CALL_OPEN = NAMESPACE + "<tool_call>"
TOOL_CALL_CLOSE = NAMESPACE + "</tool_call>"
INVOKE_TAG = "invoke"
INVOKE_CLOSE = NAMESPACE + "</invoke>"
#: The element name of one array entry.
ITEM_TAG = "item"

BOS = "]~!b["
TURN_START = "]~b]"
TURN_END = "[e~["
TURN_MARKERS = (BOS, TURN_START, TURN_END)
IMAGE_TOKEN = "]<]image[>["
VIDEO_TOKEN = "]<]video[>["

ROLE_ROOT = "root"
ROLE_SYSTEM = "system"
ROLE_DEVELOPER = "developer"
ROLE_USER = "user"
ROLE_AI = "ai"
ROLE_TOOL = "tool"

ThinkingMode = Literal["enabled", "disabled", "adaptive"]
THINKING_MODES: tuple[ThinkingMode, ...] = ("enabled", "disabled", "adaptive")

#: What the official template appends with add_generation_prompt=True, by thinking_mode (None: the kwarg unset).
GENERATION_PROMPTS: dict[str | None, str] = {
    "enabled": TURN_START + ROLE_AI + "\n" + THINK_OPEN,
    "disabled": TURN_START + ROLE_AI + "\n" + THINK_CLOSE,
    "adaptive": TURN_START + ROLE_AI + "\n",
    None: TURN_START + ROLE_AI + "\n",
}

STOP_STRINGS = (TURN_END, TURN_START)


def thinking_mode_from_prompt(prompt: str) -> ThinkingMode:
    """The mode a rendered prompt gives the model, read off its end (what the generation prompt wrote) rather than
    off a kwarg, so that a template file which ignores or renames ``thinking_mode`` still gets a matching parser:
    ``<mm:think>`` → enabled (output starts in reasoning), ``</mm:think>`` → disabled (content), else adaptive."""
    tail = prompt.rstrip()
    if tail.endswith(THINK_OPEN):
        return "enabled"
    if tail.endswith(THINK_CLOSE):
        return "disabled"
    return "adaptive"


def thinking_mode_from_kwargs(kwargs: object) -> ThinkingMode | None:
    """``chat_template_kwargs.thinking_mode`` when it is one of the template's modes; None otherwise (unset, or a
    value the template does not know, which renders like unset)."""
    mode = kwargs.get("thinking_mode") if isinstance(kwargs, Mapping) else None
    return mode if mode in THINKING_MODES else None


def element_open(name: str) -> str:
    """``]<]minimax[>[<name>``: how the template opens an argument, an object key or an array item."""
    return NAMESPACE + "<" + name + ">"


def element_close(name: str) -> str:
    return NAMESPACE + "</" + name + ">"


def _description() -> OutputFormat:
    markup = Markup(
        namespace=NAMESPACE,
        think_open=THINK_OPEN,
        think_close=THINK_CLOSE,
        think_newline="",
        tool_call_open=TOOL_CALL_OPEN,
        tool_call_close=TOOL_CALL_CLOSE,
        invoke_tag=INVOKE_TAG,
        parameter_tag=None,
        newline_before_block=False,
        bos=BOS,
        turn_start=TURN_START,
        turn_end=TURN_END,
    )
    assert markup.invoke_close == INVOKE_CLOSE and markup.tag("tool_call") == TOOL_CALL_OPEN
    return OutputFormat(
        name="m3",
        markup=markup,
        values="xml",
        item_tag=ITEM_TAG,
        thinking_modes=THINKING_MODES,
        generation_prompts=GENERATION_PROMPTS,
    )


#: The MiniMax-M3 output format, as the parser engine reads it.
M3 = _description()
