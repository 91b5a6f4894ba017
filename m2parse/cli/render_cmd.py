"""``m2parse render CONVERSATION.json``: the exact prompt text the official template makes of it, on stdout.

The input is a list of messages, or an object with ``messages`` and optionally ``tools``, ``template``,
``add_generation_prompt``, ``model_identity`` and ``thinking_mode`` (MiniMax-M3) — exactly what ``m2parse read``
prints, so the two verbs round-trip. Flags override the file. The prompt is written as UTF-8 bytes with nothing added.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from ..render import RenderError, RenderWarning, render_prompt
from ..templates import VARIANTS, get_variant
from . import UsageError
from .common import read_json, read_tools

#: Keys of a conversation object (what ``m2parse read`` prints) and the type each must have.
FILE_KEYS: dict[str, tuple[type, ...]] = {
    "messages": (list,),
    "tools": (list, type(None)),
    "template": (str,),
    "add_generation_prompt": (bool,),
    "model_identity": (str,),
    "thinking_mode": (str,),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "conversation", help="JSON list of messages, or an object with 'messages' (and 'tools', …); '-' for stdin"
    )
    parser.add_argument("--tools", metavar="TOOLS.json", help="OpenAI tools list (or an object with 'tools')")
    parser.add_argument(
        "--template",
        metavar="NAME|PATH",
        help=f"one of {', '.join(VARIANTS)} (default MiniMax-M2), or a chat_template.jinja / model folder to "
        "render with jinja2",
    )
    parser.add_argument(
        "--generation-prompt",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="end with the assistant header (M2: ']~b]ai\\n<think>\\n'; M3: by --thinking-mode) (default: yes)",
    )
    parser.add_argument(
        "--model-identity",
        metavar="TEXT",
        help="the system line (M3: the developer line) used when there is no system text",
    )
    parser.add_argument(
        "--thinking-mode",
        metavar="MODE",
        help="MiniMax-M3's thinking_mode: enabled, disabled or adaptive (default: unset, which renders as "
        "adaptive); M2 templates ignore it",
    )
    parser.add_argument(
        "--strict", action="store_true", help="fail where the template would silently drop part of the input"
    )


def run(args: argparse.Namespace) -> int:
    options = conversation_options(read_json(args.conversation, "the conversation"), args.conversation)
    if args.tools is not None:
        options["tools"] = read_tools(args.tools)
    if args.template is not None:
        options.update(template_option(args.template))
    if args.generation_prompt is not None:
        options["add_generation_prompt"] = args.generation_prompt
    if args.model_identity is not None:
        options["model_identity"] = args.model_identity
    if args.thinking_mode is not None:
        options["thinking_mode"] = args.thinking_mode
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RenderWarning)
        try:
            prompt = render_prompt(**options, strict=args.strict)
        except RenderError as exc:
            raise UsageError(f"{args.conversation}: {exc}") from None
        except ImportError as exc:  # --template PATH without jinja2
            raise UsageError(str(exc)) from None
    for warning in caught:
        print(f"m2parse: warning: {warning.message}", file=sys.stderr)
    sys.stdout.buffer.write(prompt.encode("utf-8"))
    sys.stdout.buffer.flush()
    return 0


def conversation_options(data: Any, path: str) -> dict[str, Any]:
    """render_prompt keyword arguments from a conversation file's JSON."""
    if isinstance(data, list):
        return {"messages": data}
    if not isinstance(data, dict) or "messages" not in data:
        raise UsageError(f"{path}: expected a JSON list of messages or an object with a 'messages' list")
    options: dict[str, Any] = {}
    for key, value in data.items():
        if key not in FILE_KEYS:
            print(f"m2parse: note: {path}: ignoring key {key!r}", file=sys.stderr)
        elif not isinstance(value, FILE_KEYS[key]):
            raise UsageError(f"{path}: {key!r} has the wrong type ({type(value).__name__})")
        else:
            options[key] = value
    return options


def template_option(value: str) -> dict[str, Any]:
    """A variant name, else a template file or model folder for the jinja2 escape hatch."""
    try:
        return {"template": get_variant(value).name}
    except ValueError:
        pass
    if not Path(value).exists():
        raise UsageError(f"--template {value!r}: not one of {', '.join(VARIANTS)} and no such file or folder")
    return {"chat_template": value}
