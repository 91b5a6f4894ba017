"""Input families for bench_adversarial.py, one module per area."""

from __future__ import annotations

import importlib

from .common import Family

AREAS = ("parser_families", "schema_families", "server_families", "text_families")


def all_families() -> list[Family]:
    families: list[Family] = []
    for area in AREAS:
        try:
            module = importlib.import_module(f"adversarial.{area}")
        except ModuleNotFoundError as exc:
            if exc.name != f"adversarial.{area}":
                raise
            continue
        families.extend(module.FAMILIES)
    return families
