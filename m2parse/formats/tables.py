"""The parser engine's search tables, compiled from a format description once per description.

Everything the state machine searches for (tag sets, needles, the regexes that find where stray text or a value
may end) is derived here from ``OutputFormat.markup``, so the engine itself names no tag. The built-in formats
are compiled at import; another description is compiled on first use and memoised (an immutable result per
immutable description, so the memo is a cache, not state).
"""

from __future__ import annotations

import re
from functools import lru_cache

from .m2 import M2
from .m3 import M3
from .spec import OutputFormat

# Actions a fixed tag triggers in a text state. A_TEXT: a tag that means nothing in this state (plain text).
A_THINK_CLOSE, A_BLOCK_OPEN, A_LITERAL_TAG, A_TURN, A_PARAM_CLOSE, A_VALUE_CUT, A_STRAY_CLOSE, A_TEXT, A_NS = range(9)
# Needles: pieces of tags searched with C-level searches in long text (see parser.py).
N_THINK, N_BLOCK, N_MARK, N_VALUE, N_GT = range(5)

#: Characters where a tag or marker may begin (a partial one is held back at the end of a buffer).
CANDIDATE = re.compile(r"[<\]\[]")
#: The turn markers share this character: one regex starting with it finds them all at str.find speed.
MARK_CHAR = "~"
#: A </parameter> followed by more whitespace than this closes the value whatever comes next (M2, rule 6a).
MAX_CLOSE_WHITESPACE = 64
_WS = r"[ \t\r\n]"


def _prefix_chain(atoms: list[str]) -> str:
    """A regex matching every prefix (of at least the first atom) of the concatenated atoms."""
    out = ""
    for atom in reversed(atoms[1:]):
        out = "(?:" + atom + out + ")?"
    return atoms[0] + out


class TagSet:
    """The tags one text state reacts to: one regex finds the next full tag, a tail check finds a partial one."""

    __slots__ = ("actions", "find", "partial_extra", "prefixes", "tags", "window")

    def __init__(
        self,
        tags: tuple[tuple[str, int], ...],
        extra: str = "",
        extra_partial: re.Pattern[str] | None = None,
        extra_window: int = 0,
    ):
        self.tags = tuple(tag for tag, _ in tags)
        self.prefixes = frozenset(tag[:k] for tag in self.tags for k in range(1, len(tag)))
        self.actions = dict(tags)
        alternatives = [re.escape(tag) for tag in sorted(self.tags, key=len, reverse=True)]
        if extra:
            alternatives.append(extra)
        self.find = re.compile("|".join(alternatives))
        self.partial_extra = extra_partial
        self.window = max([len(t) for t in self.tags] + ([extra_window] if extra else []))

    def held_from(self, buf: str, start: int) -> int:
        """Where a proper prefix of a tag begins at the very end of buf (only the last `window` chars), or -1."""
        k = max(start, len(buf) - self.window + 1)
        while True:
            m = CANDIDATE.search(buf, k)
            if m is None:
                return -1
            k = m.start()
            rest = buf[k:]
            if rest in self.prefixes or (self.partial_extra is not None and self.partial_extra.fullmatch(rest)):
                return k
            k += 1


class EngineTables:
    """One format's compiled tables. Attribute names follow the engine's former module constants."""

    def __init__(self, fmt: OutputFormat) -> None:
        mk = fmt.markup
        self.format = fmt
        self.xml_values = fmt.values == "xml"
        self.namespace = mk.namespace
        self.item_tag = fmt.item_tag
        self.think_open = mk.think_open
        self.think_close = mk.think_close
        self.think_newline = mk.think_newline
        self.tool_call_open = mk.tool_call_open
        self.tool_call_close = mk.tool_call_close
        self.invoke_close = mk.invoke_close
        self.invoke_open = mk.invoke_open
        self.invoke_tag = mk.invoke_tag
        self.newline_before_block = mk.newline_before_block
        self.tag_lead = mk.tag_lead
        self.turn_markers = mk.turn_markers
        assert all(MARK_CHAR in marker for marker in self.turn_markers)
        assert all(tag[0] in "<]" for tag in (mk.think_open, mk.think_close, mk.tool_call_open, self.invoke_close))
        #: M2: ``<parameter`` (attributes follow); M3: the namespaced '<' (the key's name follows).
        self.param_open = mk.tag_lead + mk.parameter_tag if mk.parameter_tag else mk.tag_lead
        self.param_close = mk.tag(mk.parameter_tag, closing=True) if mk.parameter_tag else ""
        self.turn_tags = tuple((marker, A_TURN) for marker in self.turn_markers)
        markers = [re.escape(marker) for marker in self.turn_markers]

        if mk.namespace:
            # Every tool-call tag starts with the namespace token: stray text may end at any of them.
            self.markup_start = re.compile("|".join([re.escape(mk.namespace), *markers]))
        else:
            self.markup_start = re.compile(
                "|".join(
                    [
                        re.escape(mk.tool_call_close),
                        re.escape(self.invoke_close),
                        re.escape(self.invoke_open) + r"[\s>/]",
                        re.escape(self.param_open) + r"[\s>/]",
                        *markers,
                    ]
                )
            )
        self.block_markup = (mk.tool_call_close, self.invoke_open)  # what a partial tag between invokes may become
        self.invoke_markup = (mk.tool_call_close, self.invoke_open, self.invoke_close, self.param_open)
        self.longest_markup = max(map(len, self.invoke_markup))
        #: Fast path in a string value: with nothing held, a tag can only start where this matches, searched from
        #: the first character of _SPECIAL (M2: '<' then '/' or 'p'; M3: the namespace token's '<]').
        if mk.namespace:
            lt = mk.namespace.index("<")
            self.value_tag_head = re.compile(rf"~|<(?:{re.escape(mk.namespace[lt + 1])}|\Z)")
        else:
            assert mk.parameter_tag is not None
            assert all(
                t[1] in ("/", mk.parameter_tag[0]) for t in (self.param_close, self.invoke_close, mk.tool_call_close)
            )
            self.value_tag_head = re.compile(rf"~|<(?:[/{mk.parameter_tag[0]}]|\Z)")

        # M2's value grammar: a </parameter> closes only before one of these (rule 6a); a missing one ends at
        # the next <parameter name=, found with bounded whitespace so that the hold-back window stays constant.
        self.close_followers = (
            self.param_open,
            self.invoke_close,
            self.invoke_open,
            mk.tool_call_close,
            *self.turn_markers,
        )
        self.longest_follower = max(map(len, self.close_followers))
        self.param_open_re: re.Pattern[str] | None = None
        self.param_open_partial: re.Pattern[str] | None = None
        param_window = 0
        if mk.parameter_tag:
            start = re.escape(self.param_open) + _WS + "{1,8}name" + _WS + "{0,8}="
            self.param_open_re = re.compile(start)
            atoms = [re.escape(c) for c in self.param_open] + [_WS + "{1,8}", "n", "a", "m", "e", _WS + "{0,8}"]
            self.param_open_partial = re.compile(_prefix_chain(atoms))
            param_window = len(self.param_open) + 8 + len("name") + 8 + 1

        self.reasoning_tagset = TagSet(
            (
                (mk.think_close, A_THINK_CLOSE),
                (mk.tool_call_open, A_BLOCK_OPEN),
                (mk.think_open, A_LITERAL_TAG),
                *self.turn_tags,
            )
        )
        self.content_tagset = TagSet(
            (
                (mk.tool_call_open, A_BLOCK_OPEN),
                (mk.think_close, A_LITERAL_TAG),
                (mk.think_open, A_LITERAL_TAG),
                (mk.tool_call_close, A_STRAY_CLOSE),
                *self.turn_tags,
            )
        )
        if mk.parameter_tag:
            value_ends: tuple[str, ...] = (self.param_close, self.invoke_close, mk.tool_call_close)
            self.value_tagset = TagSet(
                (
                    (self.param_close, A_PARAM_CLOSE),
                    (self.invoke_close, A_VALUE_CUT),
                    (mk.tool_call_close, A_VALUE_CUT),
                    *self.turn_tags,
                ),
                start,
                self.param_open_partial,
                param_window,
            )
            # The tags that end a value, in one regex that starts with '<': code, where '<' is rare enough, is
            # searched about three times faster this way than with one str.find per tag.
            value_needle: str | re.Pattern[str] = re.compile(
                "<(?:/(?:"
                + "|".join(re.escape(t[2:]) for t in value_ends)
                + ")|"
                + re.escape(mk.parameter_tag)
                + r"[ \t\r\n])"
            )
            value_needle_tags = tuple((tag, 0) for tag in value_ends)
            value_span = max(map(len, value_ends))
        else:
            # XML values: every tag in a value starts with the namespace token, so the token is the needle.
            self.value_tagset = TagSet(((mk.namespace, A_NS), *self.turn_tags))
            value_needle = mk.namespace
            value_needle_tags = ((mk.namespace, 0),)
            value_span = len(mk.namespace)

        self.mark_hint = re.compile(
            re.escape(MARK_CHAR)
            + "(?:"
            + "|".join(re.escape(m[m.index(MARK_CHAR) + 1 :]) for m in self.turn_markers)
            + ")"
        )
        # Needle for both think tags, and for both block tags: the part after the last '<' of the open tag.
        think_needle = mk.think_open[mk.think_open.rindex("<") + 1 :]
        block_needle = mk.tool_call_open[mk.tool_call_open.rindex("<") + 1 :]
        assert think_needle in mk.think_close and block_needle in mk.tool_call_close
        self.needles: tuple[str | re.Pattern[str], ...] = (
            think_needle,
            block_needle,
            self.mark_hint,
            value_needle,
            ">",
        )
        #: Longest text a needle matches: a miss at the end of a buffer is searched again from this far back.
        self.needle_span = (
            len(think_needle),
            len(block_needle),
            max(map(len, self.turn_markers)),
            value_span,
            1,
        )
        #: For each needle: the fixed tags that contain it, with the offset of the needle's hit inside the tag.
        self.needle_tags: tuple[tuple[tuple[str, int], ...], ...] = (
            tuple((tag, tag.find(think_needle)) for tag in (mk.think_open, mk.think_close)),
            tuple((tag, tag.find(block_needle)) for tag in (mk.tool_call_open, mk.tool_call_close)),
            tuple((marker, marker.index(MARK_CHAR)) for marker in self.turn_markers),
            value_needle_tags,
            (),
        )


_BUILT_IN = {M2: EngineTables(M2), M3: EngineTables(M3)}
M2_TABLES = _BUILT_IN[M2]


@lru_cache(maxsize=32)
def _compile(fmt: OutputFormat) -> EngineTables:
    return EngineTables(fmt)


def tables_for(fmt: OutputFormat) -> EngineTables:
    """The compiled tables of a description (the built-in ones without hashing it)."""
    if fmt is M2:
        return M2_TABLES
    if fmt is M3:
        return _BUILT_IN[M3]
    return _compile(fmt)
