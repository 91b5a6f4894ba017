"""The official MiniMax chat templates as data: what differs between them, and nothing else.

Every template of the M2 family shares one body; the revisions differ only in the default identity line, in how
``content=None`` renders (invisible under transformers >= 5.23, which drops None keys first) and in where the
"previous tool call" check reads the call's name. MiniMax-M3 is a different prompt format (``format="m3"``,
rendered by render_m3.py); its row holds its default system text. See docs/rendering.md and the reference
TEMPLATE-NOTES.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DEFAULT_TEMPLATE = "MiniMax-M2"


@dataclass(frozen=True, slots=True)
class TemplateVariant:
    name: str
    #: The system text when there is no system message (or its content is falsy) and no ``model_identity``.
    identity: str
    #: What the raw template writes for ``content=None``; never reached here, because None keys are dropped
    #: before rendering exactly as transformers 5.23 does. Kept to document (and test) the revision.
    none_content: Literal["", "None"]
    #: Where the tool-result check reads the last call's name: ``function`` = ``.function.name`` (else ``.name``),
    #: ``outer`` = the call dict's own ``name`` key (the release body; only an explicit ``"name": None`` there
    #: makes a following tool message raise).
    last_call_name: Literal["function", "outer"]
    #: The prompt format the template writes (and so the output format its model writes): ``m2`` or ``m3``.
    #: The renderer, the reader and the server pick their code path by this field.
    format: Literal["m2", "m3"] = "m2"


VARIANTS: dict[str, TemplateVariant] = {
    v.name: v
    for v in (
        TemplateVariant(
            "MiniMax-M2",
            "You are MiniMax-M2, a helpful AI assistant built by MiniMax. Knowledge cutoff: 2025-06.",
            "",
            "function",
        ),
        TemplateVariant("MiniMax-M2-original", "You are a helpful assistant.", "None", "outer"),
        # The Hub snapshot's template: the current M2 body with its own identity line.
        TemplateVariant(
            "MiniMax-M2.1",
            "You are a helpful assistant. Your name is MiniMax-M2.1 and is built by MiniMax.",
            "",
            "function",
        ),
        TemplateVariant(
            "MiniMax-M2.5",
            "You are a helpful assistant. Your name is MiniMax-M2.5 and is built by MiniMax.",
            "None",
            "outer",
        ),
        TemplateVariant(
            "MiniMax-M2.7",
            "You are a helpful assistant. Your name is MiniMax-M2.7 and is built by MiniMax.",
            "None",
            "outer",
        ),
        # A different format: ``identity`` is the system block's text when there is no ``root`` message.
        TemplateVariant(
            "MiniMax-M3",
            "Your model version is MiniMax-M3, developed by MiniMax. Knowledge cutoff: January 2026. Founded in "
            "early 2022, MiniMax is a global AI foundation model company committed to advancing the frontiers of "
            "AI towards AGI.",
            "",
            "function",
            "m3",
        ),
    )
}

#: Default identity line -> variant name, for the M2 prompt format (every identity is distinct).
BY_IDENTITY: dict[str, str] = {v.identity: v.name for v in VARIANTS.values() if v.format == "m2"}
#: The variants that write the M2 prompt format.
M2_TEMPLATES: tuple[str, ...] = tuple(v.name for v in VARIANTS.values() if v.format == "m2")


def get_variant(name: str) -> TemplateVariant:
    """Look a variant up by name: case-insensitive, with or without the Hub's ``MiniMaxAI/`` prefix."""
    key = name.strip().lower().removeprefix("minimaxai/")
    for variant in VARIANTS.values():
        if variant.name.lower() == key:
            return variant
    raise ValueError(f"unknown template {name!r}; expected one of: {', '.join(VARIANTS)}")
