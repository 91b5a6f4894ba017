"""Loads fixtures/NAME.txt + NAME.json (M2) and fixtures/m3/NAME.* (M3); shared by every test that replays raw
outputs. An M3 fixture's name is "m3/NAME", its tools path is relative to fixtures/ like M2's."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"
M3_SUBDIR = "m3"


@dataclass(frozen=True)
class Fixture:
    name: str
    text: str
    tools: list[dict[str, Any]] | None
    options: dict[str, Any]
    expected: dict[str, Any]


def _load_tools(spec: Any) -> list[dict[str, Any]] | None:
    if isinstance(spec, str):
        data = json.loads((FIXTURES_DIR / spec).read_text(encoding="utf-8"))
        return data["tools"] if isinstance(data, dict) else data
    return spec


def load_fixture(name: str) -> Fixture:
    meta = json.loads((FIXTURES_DIR / f"{name}.json").read_text(encoding="utf-8"))
    with open(FIXTURES_DIR / f"{name}.txt", encoding="utf-8", newline="") as handle:
        text = handle.read()
    return Fixture(name, text, _load_tools(meta.get("tools")), dict(meta.get("options") or {}), meta["expected"])


def fixture_names() -> list[str]:
    return sorted(p.stem for p in FIXTURES_DIR.glob("*.txt"))


def all_fixtures() -> list[Fixture]:
    return [load_fixture(name) for name in fixture_names()]


def m3_fixture_names() -> list[str]:
    return sorted(f"{M3_SUBDIR}/{p.stem}" for p in (FIXTURES_DIR / M3_SUBDIR).glob("*.txt"))


def all_m3_fixtures() -> list[Fixture]:
    return [load_fixture(name) for name in m3_fixture_names()]
