"""GBNF grammars that admit exactly one text: how the suite forces llama.cpp to write a chosen M2 output."""

from __future__ import annotations

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def gbnf_string(text: str) -> str:
    """``text`` as one GBNF string literal: quote and backslash escaped, everything outside printable ASCII as
    a ``\\xHH``/``\\uHHHH``/``\\UHHHHHHHH`` code point (llama.cpp matches code points against token bytes)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02X}")
        elif code < 0x10000:
            out.append(f"\\u{code:04X}")
        else:
            out.append(f"\\U{code:08X}")
    out.append('"')
    return "".join(out)


def exact_text(text: str) -> str:
    """A grammar whose only sentence is ``text``; after it only end-of-generation is allowed."""
    return f"root ::= {gbnf_string(text)}\n"
