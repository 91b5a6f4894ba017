"""``m2parse stats``: counts checked against the fixtures' hand-written expectations, JSONL fields, unreadable
lines, the human table, and flat memory over a generated JSONL (tracemalloc)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

from m2parse.cli.stats_cmd import outputs
from m2parse.schema import normalize_tools
from m2parse.stats import Stats, parse_output, split_path

from .fixture_loader import FIXTURES_DIR, load_fixture

WEATHER_TOOLS = FIXTURES_DIR / "tools" / "weather.json"
#: fixtures written against the weather tools with the default options: their expectations hold for one
#: `m2parse stats --tools weather.json` run
NAMES = [
    "bad_number",
    "missing_invoke_close",
    "no_newlines_between_tags",
    "no_tool_call_plain_answer",
    "parallel_calls_one_block",
    "schema_violation",
    "stray_text_in_block",
    "truncated_in_invoke_open_tag",
    "turn_marker_after_call",
    "unknown_parameter",
    "unknown_tool",
    "weather_basic",
]


def m2parse(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "m2parse", "stats", *args],
        input=stdin, capture_output=True, text=True, encoding="utf-8", check=False, timeout=120,
    )  # fmt: skip


def state_of(problems: list[str]) -> str:
    if "turn_marker" in problems:
        return "turn_marker"
    if any(code.startswith("truncated") or code == "missing_think_end" for code in problems):
        return "truncated"
    return "complete"


def expected_stats(names: list[str]) -> dict[str, Any]:
    """From the fixtures' JSON expectations only (written by hand, not by the parser)."""
    codes_out: Counter[str] = Counter()
    codes_all: Counter[str] = Counter()
    tools: Counter[str] = Counter()
    states: Counter[str] = Counter()
    clean = 0
    for name in names:
        expected = load_fixture(name).expected
        problems = expected["problems"]
        clean += not problems
        codes_all.update(problems)
        codes_out.update(set(problems))
        tools.update(call["name"] for call in expected["tool_calls"])
        states[state_of(problems)] += 1
    return {"clean": clean, "codes_out": codes_out, "codes_all": codes_all, "tools": tools, "states": states}


def test_folder_of_txt_counts_match_the_fixture_expectations(tmp_path: Path) -> None:
    for name in NAMES:
        shutil.copy(FIXTURES_DIR / f"{name}.txt", tmp_path / f"{name}.txt")
    (tmp_path / "notes.md").write_text("not an output")  # ignored: only .txt in a folder
    proc = m2parse(str(tmp_path), "--tools", str(WEATHER_TOOLS), "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal
    got = json.loads(proc.stdout)
    want = expected_stats(NAMES)
    assert got["outputs"] == len(NAMES) and got["unreadable"] == 0
    assert got["clean"] == want["clean"]
    assert {code: v["outputs"] for code, v in got["problems"].items()} == dict(want["codes_out"])
    assert {code: v["occurrences"] for code, v in got["problems"].items()} == dict(want["codes_all"])
    assert {name: v["calls"] for name, v in got["tools"].items()} == dict(want["tools"])
    assert {s: v["outputs"] for s, v in got["finish_states"].items() if v["outputs"]} == dict(want["states"])
    assert got["problems"]["schema_violation"]["percent"] == round(100 * 2 / len(NAMES), 2)
    assert sum(b["outputs"] for b in got["sizes"]["buckets"]) == len(NAMES)
    sizes = [len((FIXTURES_DIR / f"{n}.txt").read_text(encoding="utf-8")) for n in NAMES]
    assert (got["sizes"]["min"], got["sizes"]["max"]) == (min(sizes), max(sizes))
    assert len(got["slowest"]) == 10 and all(s["source"].endswith(".txt") for s in got["slowest"])


def test_human_table(tmp_path: Path) -> None:
    for name in ("unknown_tool", "weather_basic", "turn_marker_after_call"):
        shutil.copy(FIXTURES_DIR / f"{name}.txt", tmp_path / f"{name}.txt")
    proc = m2parse(str(tmp_path), "--tools", str(WEATHER_TOOLS))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["outputs", "3"]
    assert lines[1].split() == ["clean", "1", "33.33", "%"]
    assert any(line.split() == ["unknown_tool", "1", "33.33", "1"] for line in lines)
    assert any(line.split() == ["ended", "by", "a", "turn", "marker", "1", "33.33"] for line in lines)
    assert any(line.split()[:3] == ["get_weather", "2", "66.67"] for line in lines)
    assert "slowest parses" in proc.stdout


def test_jsonl_fields_openai_responses_and_unreadable_lines(tmp_path: Path) -> None:
    weather = load_fixture("weather_basic").text
    cut = load_fixture("truncated_in_invoke_open_tag").text
    lines = [
        json.dumps({"id": 1, "response": {"choices": [{"text": weather, "finish_reason": "stop"}]}}),
        json.dumps({"id": 2, "response": {"choices": [{"text": "r\n</think>\n\nplain", "finish_reason": "length"}]}}),
        json.dumps({"id": 3, "response": {"choices": [{"text": cut, "finish_reason": "length"}]}}),
        "{not json",
        json.dumps({"id": 5, "other": 1}),
        "",
    ]
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    got = json.loads(m2parse(str(path), "--field", "response", "--json").stdout)
    assert got["outputs"] == 3 and got["unreadable"] == 2
    assert got["finish_states"]["truncated"]["outputs"] == 2  # "length" counts, so does a cut-off call
    assert got["unreadable_examples"][0].startswith(f"{path}:4: not JSON")
    assert got["unreadable_examples"][1] == f"{path}:5: no field 'response'"
    # a path into the text itself, and stdin
    deep = m2parse("-", "--field", "response.choices[0].text", "--json", stdin="\n".join(lines[:3]))
    assert json.loads(deep.stdout)["outputs"] == 3
    assert json.loads(deep.stdout)["finish_states"]["truncated"]["outputs"] == 1  # a bare string has no reason
    bare = m2parse("-", "--json", stdin=json.dumps("just text") + "\n" + json.dumps({"text": "x"}))
    assert json.loads(bare.stdout)["outputs"] == 2


def test_usage_errors() -> None:
    assert m2parse("nowhere.txt").returncode == 2
    bad = m2parse("-", "--field", "a..b", stdin="")
    assert bad.returncode == 2 and "--field" in bad.stderr and "Traceback" not in bad.stderr
    assert split_path("a.b[2].c") == ["a", "b", 2, "c"]


def run_stats(path: Path, tools: Any) -> Stats:
    stats = Stats()
    for output in outputs([str(path)], split_path("output"), True, stats):
        result, seconds = parse_output(output, tools, {})
        stats.add(output, result, seconds)
    return stats


def write_jsonl(path: Path, count: int) -> None:
    texts = [load_fixture(name).text for name in NAMES]
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(count):
            handle.write(json.dumps({"n": i, "output": f"line {i} " + texts[i % len(texts)]}) + "\n")


def test_memory_stays_flat_as_the_input_grows(tmp_path: Path) -> None:
    """Peak traced memory for 4,000 outputs is about that for 500: nothing is kept per output."""
    tools = normalize_tools(json.loads(WEATHER_TOOLS.read_text()))
    warm = tmp_path / "warm.jsonl"
    write_jsonl(warm, 50)
    run_stats(warm, tools)  # imports, validator caches: made once, not per output
    peaks = []
    for count in (500, 4_000):
        path = tmp_path / f"{count}.jsonl"
        write_jsonl(path, count)
        tracemalloc.start()
        try:
            stats = run_stats(path, tools)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert stats.outputs == count
    print(f"\npeak traced memory: {peaks[0]:,} bytes for 500 outputs, {peaks[1]:,} for 4,000")
    assert peaks[1] < peaks[0] * 1.3 + 64 * 1024, peaks


def test_progress_line_redraws_in_place() -> None:
    from m2parse.cli.stats_cmd import Progress

    stream = io.StringIO()
    progress = Progress(stream)
    progress.last -= 1  # as if a redraw were due
    progress.tick(1234)
    progress.close(2000)
    text = stream.getvalue()
    assert text.startswith("\r1,234 outputs") and "\r2,000 outputs" in text and text.endswith("\n")
    assert text.count("\n") == 1
