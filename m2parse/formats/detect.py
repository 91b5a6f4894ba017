"""Which output format a chat template makes its model write: ``detect_format(template_text) -> "m2" | "m3"``.

The server reads this when it is given a template file (``--chat-template`` or ``--template PATH``) rather than a
built-in variant name, so that the parser reads what the template's model writes without a second flag saying
so. The answer is keyed on the spellings only M3 has (``formats.m3``): its namespace token ``]<]minimax[>[``
(written before every tool-call tag) and its reasoning tags ``<mm:think>`` / ``</mm:think>``. Each one alone
is enough: a template that mentions any of them describes M3's output, whatever else it holds. Every other
template, the M2 family's and unrelated ones alike, is M2 (the format m2parse has always assumed).

Only the template's text is looked at (no rendering, no jinja2), so a template too broken to render is still
classified and its error comes from rendering it, with the renderer's message. M3's spellings hold characters
(``]<]``, ``[>[``) that a template can write only as literal text, so a plain substring test cannot be fooled
by jinja syntax; a template that builds the token from pieces (``']<]' ~ 'minimax'``) is not recognised and
needs ``--format m3``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from . import m3

__all__ = ["FORMATS", "M3_SIGNS", "FormatName", "detect_format", "template_format"]

FormatName = Literal["m2", "m3"]
FORMATS: tuple[FormatName, ...] = ("m2", "m3")

#: Spellings that appear in M3's template and never in M2's (M2 writes ``<think>`` and ``<minimax:tool_call>``).
M3_SIGNS: Sequence[str] = (m3.NAMESPACE, m3.THINK_OPEN, m3.THINK_CLOSE)


def detect_format(template_text: str) -> FormatName:
    """``"m3"`` when the template holds one of M3's own spellings (:data:`M3_SIGNS`), else ``"m2"``."""
    return "m3" if any(sign in template_text for sign in M3_SIGNS) else "m2"


def template_format(template: str, chat_template: str | None = None) -> FormatName:
    """The format for a server or CLI configuration: a template's text (``chat_template``) is detected; otherwise
    the built-in variant ``template`` says its own format. An unknown variant name counts as M2 here: rendering
    refuses it with its own message."""
    if chat_template is not None:
        return detect_format(chat_template)
    from ..templates import get_variant

    try:
        variant = get_variant(template)
    except ValueError:
        return "m2"
    found = getattr(variant, "format", "m2")
    return "m3" if found == "m3" else "m2"
