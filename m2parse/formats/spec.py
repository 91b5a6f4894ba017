"""A format description: what the one parser engine reads to know a format's spellings and value grammar.

The engine (m2parse.parser) never names a tag itself; it compiles its tag sets and searches from one of these,
once per description. Two descriptions exist today, M2 (formats/m2.py) and M3 (formats/m3.py); a family variant
is a new description, not a new parser.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

#: How an argument value is written. ``flat``: raw text, JSON for containers, inside ``<parameter name="k">``
#: (M2). ``xml``: the element is named after the key, objects are nested elements one per key, arrays repeated
#: item elements, all namespace-prefixed (M3).
ValueStyle = Literal["flat", "xml"]
#: Where the output starts, given a format and a thinking_mode: inside reasoning, in content, or adaptive (the
#: model opens reasoning itself or writes a bare think-close first).
ReasoningStart = Literal["reasoning", "content", "adaptive"]

THINKING_MODES = ("enabled", "disabled", "adaptive")


@dataclass(frozen=True, slots=True)
class Markup:
    """Every literal a format's output uses. Tool-call tags are given whole, the namespace prefix included."""

    #: Written before every tool-call tag ("" when the format has none).
    namespace: str
    think_open: str
    think_close: str
    #: What the template writes after the reasoning open tag ("\n" for M2's ``<think>\n``, "" for M3).
    think_newline: str
    tool_call_open: str
    tool_call_close: str
    invoke_tag: str
    #: ``<parameter name="k">`` style (M2); None when the argument element is named after its key (M3).
    parameter_tag: str | None
    #: True when the template writes one "\n" directly before the block open tag (M2), which is then markup.
    newline_before_block: bool
    bos: str
    turn_start: str
    turn_end: str

    @property
    def turn_markers(self) -> tuple[str, str, str]:
        return (self.bos, self.turn_start, self.turn_end)

    @property
    def tag_lead(self) -> str:
        """What every tool-call tag starts with: the namespace and '<'."""
        return self.namespace + "<"

    @property
    def invoke_open(self) -> str:
        """The invoke open tag up to its attributes (``<invoke``)."""
        return self.tag_lead + self.invoke_tag

    @property
    def invoke_close(self) -> str:
        return self.tag(self.invoke_tag, closing=True)

    def tag(self, name: str, *, closing: bool = False) -> str:
        """A namespaced element tag without attributes: ``tag("city")`` is M3's ``]<]minimax[>[<city>``."""
        return f"{self.tag_lead}{'/' if closing else ''}{name}>"


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """A model family's output format, as data: its markup, its value style, and how its prompt ends."""

    name: str
    markup: Markup
    values: ValueStyle
    #: The element name of one array entry ("item"), for the xml value style.
    item_tag: str | None
    #: The template's thinking_mode switch (empty: the template has none, thinking_mode is ignored).
    thinking_modes: tuple[str, ...]
    #: What the template appends with add_generation_prompt=True, by thinking_mode (None: unset).
    generation_prompts: Mapping[str | None, str] = field(hash=False, compare=False)

    def __post_init__(self) -> None:
        """The engine knows two value grammars, each tied to its markup: refuse a description it cannot read."""
        mk = self.markup
        if self.values == "flat" and not mk.parameter_tag:
            raise ValueError("the flat value style needs markup.parameter_tag (<parameter name=...>)")
        if self.values == "xml" and (mk.parameter_tag or not mk.namespace or not self.item_tag):
            raise ValueError("the xml value style needs a namespace, item_tag, and no parameter_tag")
        if self.values not in ("flat", "xml"):
            raise ValueError(f"values must be 'flat' or 'xml', not {self.values!r}")
        # The engine's fast paths pass a delta on unscanned when it holds no '<' or '~' and does not end in '[' or
        # ']': every tag must start with '<' or with a namespace token that starts with '[' or ']' and then '<',
        # and every turn marker must hold a '~'.
        if mk.namespace and not (mk.namespace[0] in "[]" and mk.namespace[1:2] == "<"):
            raise ValueError("a namespace token must start with '[' or ']' followed by '<'")
        if not all(tag.startswith(("<", mk.namespace or "<")) for tag in (mk.think_open, mk.think_close)):
            raise ValueError("think tags must start with '<'")
        if not (mk.tool_call_open.startswith(mk.tag_lead) and mk.tool_call_close.startswith(mk.tag_lead)):
            raise ValueError("the block tags must start with the namespace token and '<'")
        if not all("~" in marker and marker[0] in "[]" for marker in mk.turn_markers):
            raise ValueError("turn markers must start with '[' or ']' and hold a '~'")

    def reasoning_start(self, thinking_mode: str | None) -> ReasoningStart:
        """Where the output begins, from the prompt's end that ``thinking_mode`` selects.

        A format without the switch ignores thinking_mode (M2's templates always end in ``<think>\\n``). For
        one with it, "enabled" ends the prompt with the think open tag (output is reasoning), "disabled" with
        the think close tag (output is content), "adaptive" and None (the template's default) with neither.
        """
        if not self.thinking_modes:
            return "reasoning"
        if thinking_mode is None:
            return "adaptive"
        if thinking_mode not in self.thinking_modes:
            raise ValueError(
                f"thinking_mode must be one of {', '.join(self.thinking_modes)} or None, not {thinking_mode!r}"
            )
        return {"enabled": "reasoning", "disabled": "content"}.get(thinking_mode, "adaptive")  # type: ignore[return-value]
