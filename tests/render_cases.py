"""The fixed conversations of the template conformance tests, shared with scripts/make_golden.py.

Every branch of the official templates is hit by at least one of them; the golden vectors in fixtures/golden/
include each one, so a clone without the reference templates still renders them all.
"""

from __future__ import annotations

from typing import Any

from .test_render import WEATHER_TOOLS


def call(name: str, arguments: Any, *, flat: bool = False) -> dict[str, Any]:
    if flat:
        return {"name": name, "arguments": arguments}
    return {"id": f"call_{name}", "type": "function", "function": {"name": name, "arguments": arguments}}


RICH_TOOLS = [
    *WEATHER_TOOLS,
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": 'Suche im Web — 検索 <b>&amp;</b> "quoted"\nnew line',
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}, "filters": {"type": "object"}, "n": {"type": "integer"}},
                "required": ["q"],
            },
            "strict": True,
        },
    },
]
NESTED = {"q": "café", "filters": {"lang": ["de", "fr"], "safe": True, "depth": {"max": 2.5, "none": None}}, "n": 3}

CASES: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]] | None, dict[str, Any]]] = {
    "user only": ([{"role": "user", "content": "hi"}], None, {}),
    "system": ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}], None, {}),
    "system empty content": ([{"role": "system", "content": ""}, {"role": "user", "content": "hi"}], None, {}),
    "system date and location": (
        [
            {"role": "system", "content": "S", "current_date": "2025-11-01", "current_location": "Köln"},
            {"role": "user", "content": "hi"},
        ],
        None,
        {},
    ),
    "system none content with date": (
        [{"role": "system", "content": None, "current_date": "2025-11-01"}, {"role": "user", "content": "hi"}],
        None,
        {},
    ),
    "model_identity": ([{"role": "user", "content": "hi"}], None, {"model_identity": "You are Bob."}),
    "model_identity ignored with a system text": (
        [{"role": "system", "content": "Sys"}, {"role": "user", "content": "hi"}],
        None,
        {"model_identity": "You are Bob."},
    ),
    "tools": ([{"role": "user", "content": "hi"}], RICH_TOOLS, {}),
    "empty tools list": ([{"role": "user", "content": "hi"}], [], {}),
    "system list content": (
        [
            {"role": "system", "content": [{"type": "text", "text": "A"}, "B", {"type": "image_url"}]},
            {"role": "user", "content": "hi"},
        ],
        RICH_TOOLS,
        {},
    ),
    "multi-turn reasoning before and after the last user": (
        [
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1", "reasoning_content": "r1"},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "a2", "reasoning_content": "r2"},
            {"role": "assistant", "content": "<think>\nr3\n</think>\n\na3"},
        ],
        None,
        {},
    ),
    "parallel calls and consecutive results": (
        [
            {"role": "user", "content": "Weather in Paris and Köln?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "reasoning_content": "Two calls.",
                "tool_calls": [call("get_weather", {"city": "Paris"}), call("get_weather", {"city": "Köln"})],
            },
            {"role": "tool", "tool_call_id": "call_get_weather", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_get_weather", "content": "12C"},
            {"role": "assistant", "content": "Paris 18C, Köln 12C."},
        ],
        RICH_TOOLS,
        {},
    ),
    "interleaved agent loop, flat calls, nested arguments": (
        [
            {"role": "user", "content": "find"},
            {"role": "assistant", "content": None, "reasoning_content": "r1", "tool_calls": [call("search", NESTED)]},
            {"role": "tool", "content": "result 1"},
            {
                "role": "assistant",
                "content": "",
                "reasoning_content": "r2",
                "tool_calls": [call("search", {"q": "x\ny", "n": -1, "e": [], "o": {}}, flat=True)],
            },
            {"role": "tool", "content": ""},
            {"role": "assistant", "content": "done", "reasoning_content": "r3"},
        ],
        RICH_TOOLS,
        {},
    ),
    "list content parts everywhere": (
        [
            {"role": "user", "content": [{"type": "text", "text": "look: "}, {"type": "image_url"}, "tail"]},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "<think>r</think>"}, {"type": "text", "text": "seen"}],
                "tool_calls": [call("f", {})],
            },
            {
                "role": "tool",
                "content": [
                    {"type": "text", "text": "t1"},
                    {"output": "o1"},
                    {"output": {"k": [1, 2]}},
                    "bare",
                    {"type": "image_url", "image_url": {"url": "u"}},
                    {"type": "text"},
                ],
            },
            {"role": "tool", "content": "s"},
        ],
        None,
        {},
    ),
    "non-ascii, quotes and empty strings": (
        [
            {"role": "system", "content": "日本語 \"q\" 'a' <&> é 😀"},
            {"role": "user", "content": ""},
            {"role": "assistant", "content": "", "reasoning_content": ""},
            {"role": "user", "content": "   "},
            {
                "role": "assistant",
                "content": "\n",
                "tool_calls": [call('we"ird', {'k"': "v<&>", "ü": "ö", "": ""})],
            },
            {"role": "tool", "content": []},
            {"role": "tool"},
        ],
        None,
        {},
    ),
    "dropped roles split a tool run": (
        [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [call("f", {"a": 1}), call("g", {"b": None})]},
            {"role": "tool", "content": "1"},
            {"role": "developer", "content": "dropped"},
            {"role": "tool", "content": "2"},
            {"role": "system", "content": "dropped too"},
        ],
        None,
        {},
    ),
    "tool result after a user turn": (
        [
            {"role": "assistant", "tool_calls": [call("f", {})]},
            {"role": "user", "content": "wait"},
            {"role": "tool", "content": "late"},
        ],
        None,
        {},
    ),
    "no user message at all keeps every reasoning": (
        [
            {"role": "system", "content": "S"},
            {"role": "assistant", "content": "a", "reasoning_content": "r"},
            {"role": "assistant", "content": "b", "thinking": "t"},
            {"role": "assistant", "content": "c", "reasoning": "q"},
        ],
        None,
        {},
    ),
    "several think closers": ([{"role": "assistant", "content": "\n<think>\nA\n</think>B</think>\nC\n"}], None, {}),
    "think split strips only newlines": ([{"role": "assistant", "content": " \nR \n</think>\n C \n"}], None, {}),
    "odd values": (
        [
            {"role": "user", "content": 5},
            {"role": "user", "content": {"a": 1}},
            {"role": "assistant", "content": True, "tool_calls": [call("f", {"x": float("nan"), "y": 1e100})]},
        ],
        None,
        {},
    ),
}


# ------------------------------------------------------------------------------------------- MiniMax-M3
# Every branch of the M3 template: roles (root, system/developer first or misplaced, unknown), media parts,
# reasoning from reasoning_content or split at </mm:think>, nested arguments through to_xml, tool-result runs.

M3_NESTED = {
    "q": "café <b>&</b>",
    "none_top": None,
    "filters": {"lang": ["de", "fr"], "safe": True, "off": False, "depth": {"max": 2.5, "none": None}},
    "rows": [{"id": 1, "tags": [], "meta": {}}, {"id": 2**80, "skip": None}, None, [1, [2.0]]],
    "n": 3,
    "floats": [1e100, 1e-7, -0.0, 12345678.9, float("inf")],
    "empty": "",
    "ключ": "值 😀",
}
M3_CASES: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]] | None, dict[str, Any]]] = {
    "m3 user only": ([{"role": "user", "content": "hi"}], None, {}),
    "m3 thinking enabled": ([{"role": "user", "content": "hi"}], None, {"thinking_mode": "enabled"}),
    "m3 thinking disabled": ([{"role": "user", "content": "hi"}], None, {"thinking_mode": "disabled"}),
    "m3 thinking adaptive": ([{"role": "user", "content": "hi"}], None, {"thinking_mode": "adaptive"}),
    "m3 thinking unknown value": ([{"role": "user", "content": "hi"}], None, {"thinking_mode": "auto"}),
    "m3 root and developer": (
        [
            {"role": "root", "content": "Root."},
            {"role": "developer", "content": "Dev."},
            {"role": "user", "content": "x"},
        ],
        RICH_TOOLS,
        {"thinking_mode": "enabled"},
    ),
    "m3 root then system": (
        [{"role": "root", "content": ""}, {"role": "system", "content": "Sys."}, {"role": "user", "content": "x"}],
        None,
        {},
    ),
    "m3 system first is the developer block": (
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        RICH_TOOLS,
        {"model_identity": "ignored"},
    ),
    "m3 model_identity and empty tools": ([{"role": "user", "content": "hi"}], [], {"model_identity": "You are Bob."}),
    "m3 media parts": (
        [
            {"role": "root", "content": [{"type": "text", "text": "R"}, {"type": "image"}]},
            {"role": "developer", "content": [{"type": "video"}, "tail", {"type": "image_url"}, {"type": "text"}]},
            {"role": "user", "content": [{"type": "text", "text": "look: "}, {"type": "image"}, {"type": "video"}]},
        ],
        None,
        {},
    ),
    "m3 reasoning in every turn": (
        [
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1", "reasoning_content": "r1"},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "a2", "reasoning": "r2"},
            {"role": "assistant", "content": "\n<mm:think>\nr3\n</mm:think>\n\na3\n"},
            {"role": "assistant", "content": "no reasoning", "reasoning_content": ""},
            {"role": "assistant", "content": "kept </mm:think> verbatim", "reasoning_content": "r"},
            {"role": "assistant", "content": "A</mm:think>lost</mm:think>\nC"},
        ],
        None,
        {"thinking_mode": "disabled"},
    ),
    "m3 nested arguments, parallel calls and grouped results": (
        [
            {"role": "user", "content": "find"},
            {
                "role": "assistant",
                "content": "Checking.",
                "reasoning_content": "Two calls.",
                "tool_calls": [call("search", M3_NESTED), call("get_weather", {"city": "Köln"}, flat=True)],
            },
            {"role": "tool", "tool_call_id": "call_search", "content": "result 1"},
            {
                "role": "tool",
                "content": [
                    {"type": "text", "text": "t1"},
                    {"output": "o1"},
                    {"output": {"k": [1, 2]}},
                    {"output": None},
                    "bare",
                    {"type": "image"},
                    {"type": "video"},
                    {"type": "image_url", "image_url": {"url": "u"}},
                    {"type": "text"},
                ],
            },
            {"role": "assistant", "content": "", "tool_calls": [call("f", {"a": {"b": [1, {"c": None}]}})]},
            {"role": "tool"},
            {"role": "assistant", "content": "done"},
        ],
        RICH_TOOLS,
        {"thinking_mode": "adaptive"},
    ),
    "m3 dropped roles split a tool run": (
        [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [call("f", {"a": 1}), call("g", {"b": None})]},
            {"role": "tool", "content": "1"},
            {"role": "root", "content": "dropped"},
            {"role": "tool", "content": "2"},
            {"role": "system", "content": "dropped too"},
            {"role": "function", "content": "unknown"},
        ],
        None,
        {},
    ),
    "m3 tool result after a user turn": (
        [
            {"role": "assistant", "tool_calls": [call("f", {})]},
            {"role": "user", "content": "wait"},
            {"role": "tool", "content": "late"},
        ],
        None,
        {},
    ),
    "m3 odd values": (
        [
            {"role": "user", "content": 5},
            {"role": "user", "content": {"a": 1}},
            {"role": "assistant", "content": True, "tool_calls": [call("f", {"x": float("nan"), "y": 1e100, "z": -7})]},
            {"role": "tool", "content": {"k": "v"}},
        ],
        None,
        {},
    ),
}
