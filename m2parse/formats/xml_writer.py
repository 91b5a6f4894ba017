"""One MiniMax-M3 argument value written as the official template's ``to_xml`` macro writes it.

The template writes a mapping as one namespaced element per key (keys whose value is None are left out), a list
(any non-string iterable) as one ``<item>`` element per entry (None entries give an empty element), a boolean
through ``tojson`` (``true``/``false``), None as nothing, and anything else as jinja prints it, which is
Python's ``str()`` (``1e+100``, ``nan``, ``inf``, big integers in full). Keys are printed with ``str()`` too.

The writer is iterative (an explicit stack, no recursion), so its stack stays fixed whatever the nesting; the
caller bounds the depth first (render.py's ``_check_depth``), as for M2's JSON values. Its cost is linear in the
size of the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .m3 import ITEM_TAG, NAMESPACE

__all__ = ["close_tag", "open_tag", "write_xml_value"]


def open_tag(name: str) -> str:
    """``]<]minimax[>[<name>``: every element of an M3 tool call starts so."""
    return NAMESPACE + "<" + name + ">"


def close_tag(name: str) -> str:
    """``]<]minimax[>[</name>``."""
    return NAMESPACE + "</" + name + ">"


_ITEM_OPEN = open_tag(ITEM_TAG)
_ITEM_CLOSE = close_tag(ITEM_TAG)


def write_xml_value(value: Any) -> str:
    """The text ``to_xml(value, ns_token)`` renders (see the module docstring for the rules).

    ``str()`` may raise ValueError (an integer past Python's int-to-str digit limit); the renderer turns that
    into a RenderError naming the field.
    """
    out: list[str] = []
    # The stack holds values still to write and literal strings (closing tags) to emit in order.
    stack: list[tuple[bool, Any]] = [(False, value)]
    while stack:
        literal, node = stack.pop()
        if literal:
            out.append(node)
            continue
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, Mapping):
            pending: list[tuple[bool, Any]] = []
            for key, child in node.items():
                if child is None:
                    continue
                name = key if isinstance(key, str) else _text(key)
                pending += [(True, open_tag(name)), (False, child), (True, close_tag(name))]
            stack.extend(reversed(pending))
        elif node is None:
            continue
        elif isinstance(node, bool):
            out.append("true" if node else "false")
        elif _is_iterable(node):
            pending = []
            for child in node:
                pending += [(True, _ITEM_OPEN), (False, child), (True, _ITEM_CLOSE)]
            stack.extend(reversed(pending))
        else:
            out.append(_text(node))
    return "".join(out)


def _text(value: Any) -> str:
    """What ``{{ value }}`` prints: ``str(value)`` (jinja adds nothing without autoescape)."""
    return value if isinstance(value, str) else str(value)


def _is_iterable(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return True
    try:
        iter(value)
    except TypeError:
        return False
    return True
