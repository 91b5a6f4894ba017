"""The output and prompt formats m2parse reads and writes, each as a description that one engine follows."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .m2 import M2
from .m3 import M3
from .spec import THINKING_MODES, Markup, OutputFormat, ReasoningStart, ValueStyle

#: The built-in formats by name (names are matched case-insensitively); read-only.
FORMATS: Mapping[str, OutputFormat] = MappingProxyType({"m2": M2, "m3": M3})


def get_format(name_or_format: str | OutputFormat) -> OutputFormat:
    """The description for "m2"/"m3" (any case), or the OutputFormat given; ValueError names the known ones."""
    if isinstance(name_or_format, OutputFormat):
        return name_or_format
    if isinstance(name_or_format, str):
        found = FORMATS.get(name_or_format.strip().lower())
        if found is not None:
            return found
    raise ValueError(f"format must be one of {', '.join(sorted(FORMATS))} or an OutputFormat, not {name_or_format!r}")


__all__ = [
    "FORMATS",
    "M2",
    "M3",
    "THINKING_MODES",
    "Markup",
    "OutputFormat",
    "ReasoningStart",
    "ValueStyle",
    "get_format",
]
