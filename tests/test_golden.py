"""The golden vectors (fixtures/golden/, written by scripts/make_golden.py from the reference templates rendered by
real transformers 5.23.0): render_prompt must give every prompt byte for byte and raise where the template raises,
and read_prompt must read every prompt back exactly. These run on any clone; no reference folder is needed.
The five M2-family files and MiniMax-M3's (its own format, conversations and thinking modes) are checked alike.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from m2parse.prompt_reader import read_prompt
from m2parse.render import RenderError

from .test_render import render_quietly

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "fixtures" / "golden"
TEMPLATES = ("MiniMax-M2", "MiniMax-M2-original", "MiniMax-M2.1", "MiniMax-M2.5", "MiniMax-M2.7")
M3 = "MiniMax-M3"
ALL = (*TEMPLATES, M3)


def load(name: str) -> list[dict[str, Any]]:
    with (GOLDEN / f"{name}.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def expected_prompts(vector: dict[str, Any]) -> list[tuple[bool, str]]:
    return [(False, vector["prompt"]), (True, vector["prompt"] + vector["generation_prompt"])]


def make_golden() -> Any:
    spec = importlib.util.spec_from_file_location("make_golden", ROOT / "scripts" / "make_golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_official_template_has_hundreds_of_vectors() -> None:
    assert tuple(make_golden().TEMPLATES) == TEMPLATES and make_golden().M3_TEMPLATE == M3
    for name in ALL:
        vectors = load(name)
        rendered = [v for v in vectors if "prompt" in v]
        assert len(rendered) * 2 >= 400, name  # each line holds the prompt with and without the generation prompt
        assert any(v["id"].startswith("fixed/") for v in rendered) and any("error" in v for v in vectors)
    assert sum(p.stat().st_size for p in GOLDEN.glob("*.jsonl")) < 2_500_000
    modes = {v["kwargs"].get("thinking_mode") for v in load(M3) if "prompt" in v}
    assert modes == {None, "enabled", "disabled", "adaptive", "auto"}


@pytest.mark.parametrize("name", ALL)
def test_render_prompt_equals_every_golden_prompt(name: str) -> None:
    failures = []
    for vector in load(name):
        if "error" in vector:
            continue
        for generation, prompt in expected_prompts(vector):
            got = render_quietly(
                vector["messages"], vector["tools"], template=name, add_generation_prompt=generation, **vector["kwargs"]
            )
            if got != prompt:
                failures.append(f"{vector['id']} (add_generation_prompt={generation})")
    assert not failures, f"{len(failures)} vectors differ, first: {failures[:5]}"


@pytest.mark.parametrize("name", ALL)
def test_render_prompt_raises_where_the_template_raises(name: str) -> None:
    failures = []
    for vector in load(name):
        if "error" not in vector:
            continue
        try:
            render_quietly(vector["messages"], vector["tools"], template=name, **vector["kwargs"])
        except RenderError:
            continue
        failures.append(f"{vector['id']} ({vector['error']})")
    assert not failures, f"rendered, but the template raises: {failures[:5]}"


@pytest.mark.parametrize("name", ALL)
def test_read_prompt_reads_every_golden_prompt_back_exactly(name: str) -> None:
    failures = []
    for vector in load(name):
        if "error" in vector:
            continue
        for generation, prompt in expected_prompts(vector):
            reading = read_prompt(prompt)
            if reading.add_generation_prompt != generation or render_quietly(**reading) != prompt:
                failures.append(f"{vector['id']} (add_generation_prompt={generation})")
    assert not failures, f"{len(failures)} prompts do not read back, first: {failures[:5]}"


def test_golden_files_are_what_the_script_writes() -> None:
    """Where the reference templates and the pinned transformers are present (CI), the files are up to date."""
    module = make_golden()
    reference = module.reference_dir()
    if reference is None:
        pytest.skip("no reference templates: set M2PARSE_REFERENCE_DIR (default ../shared/reference)")
    transformers = pytest.importorskip("transformers", reason="regenerating needs the [conformance] extra")
    if transformers.__version__ != module.PINNED:
        pytest.skip(f"the golden vectors are rendered by transformers=={module.PINNED}")
    stale = [name for name, text in module.build(reference).items() if (GOLDEN / name).read_text("utf-8") != text]
    assert not stale, f"out of date: {stale}; run python scripts/make_golden.py"
