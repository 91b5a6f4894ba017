"""lxml as an independent oracle: on well-formed, XML-safe tool-call blocks our reading must equal an XML parser's.

The blocks vary the things both readers must agree on: quote style, spaces around ``=``, extra attributes before
or after ``name`` (including ``data-name``, which is not ``name``), whitespace between tags, several blocks.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from m2parse.parser import parse, sequential_ids

from .strategies import TURN_MARKERS, is_plain

NS = "urn:m2parse-oracle"
Params = list[tuple[str, str]]
Calls = list[tuple[str, Params]]

# XML character data needing no escaping: no "<", "&", ">", no "\r" (XML normalises it), no control chars.
_VALUE_CHARS = st.one_of(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn"), exclude_characters="<&>\r\ufffe\uffff"),
    st.sampled_from(["\n", "\t", " ", '"', "'", "=", "/", "]", "[", "~", "中", "😀"]),
)
_values = st.text(_VALUE_CHARS, max_size=30).filter(lambda v: is_plain(v) and not any(m in v for m in TURN_MARKERS))
_names = st.text(st.sampled_from([*"abcxyzKLM_019.-:", "中", "文"]), min_size=1, max_size=10)
_between = st.sampled_from(["\n", "", " ", "\n  ", "\t", "\n\n"])


@st.composite
def _attributes(draw: st.DrawFn, name: str) -> str:
    quote = draw(st.sampled_from(['"', "'"]))
    eq = draw(st.sampled_from(["=", " = ", "= ", "\n=\t"]))
    extras = draw(st.lists(st.sampled_from(['id="7"', "type='function'", 'data-name="decoy"', 'x=""']), unique=True))
    split = draw(st.integers(0, len(extras)))
    parts = [*extras[:split], f"name{eq}{quote}{name}{quote}", *extras[split:]]
    return "".join(draw(st.sampled_from([" ", "\n", "  "])) + p for p in parts) + draw(st.sampled_from(["", " "]))


@st.composite
def _call(draw: st.DrawFn) -> tuple[str, Params, str]:
    name = draw(_names)
    params = list(draw(st.dictionaries(_names, _values, max_size=4)).items())
    out = [f"<invoke{draw(_attributes(name))}>"]
    for key, value in params:
        out += [draw(_between), f"<parameter{draw(_attributes(key))}>{value}</parameter>"]
    out += [draw(_between), "</invoke>"]
    return name, params, "".join(out)


@st.composite
def blocks(draw: st.DrawFn) -> str:
    """One or more well-formed blocks (content text between them), as the tail of an output."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        out.append(draw(st.sampled_from(["\n", "", "between\n"])) + "<minimax:tool_call>")
        for _, _, text in draw(st.lists(_call(), max_size=3)):
            out += [draw(_between), text]
        out += [draw(_between), "</minimax:tool_call>"]
    return "".join(out)


def oracle(block_text: str) -> Calls:
    root = etree.fromstring(f'<root xmlns:minimax="{NS}">{block_text}</root>')
    calls: Calls = []
    for block in root.iter(f"{{{NS}}}tool_call"):
        for invoke in block.iterchildren("invoke"):
            params = [(p.get("name"), p.text or "") for p in invoke.iterchildren("parameter")]
            calls.append((invoke.get("name"), params))
    return calls


@settings(max_examples=max(10, settings.default.max_examples // 2))
@given(tail=blocks())
def test_lxml_agrees_on_names_and_raw_values(tail: str) -> None:
    expected = oracle(tail)
    result = parse("reasoning\n</think>\n\n" + tail, id_factory=sequential_ids())
    got = [(call.name, list(call.arguments.items())) for call in result.tool_calls]
    assert got == expected
    # Only whitespace sits between tags inside the blocks: nothing to report.
    assert result.problems == ()
