"""Adversarial input families: each one timed (CPU time) at size n and 10n in one run, and the ratio printed.

    python benchmarks/bench_adversarial.py [--quick] [--check] [--only NAME]

A family whose cost is linear in its input gives a ratio of about 10; a quadratic one about 100. ``--check``
exits 1 when any ratio exceeds ``CHECK_RATIO`` (20): a loose bound that a linear family meets on a busy machine
and a quadratic one cannot. Families live beside this file in ``adversarial/`` (one module per area: parser,
server, text), each exposing ``FAMILIES``: a list of :class:`~adversarial.common.Family`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from adversarial import all_families  # noqa: E402
from adversarial.common import CHECK_RATIO, measure  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (CI: the whole run takes under a minute)")
    ap.add_argument("--check", action="store_true", help=f"exit 1 when a ratio exceeds {CHECK_RATIO}")
    ap.add_argument("--only", default=None, help="run the families whose name contains this text")
    args = ap.parse_args(argv)

    failed = []
    print(f"{'family':<60} {'n':>9} {'cpu(n) ms':>10} {'cpu(10n) ms':>11} {'ratio':>7}")
    for family in all_families():
        if args.only and args.only not in family.name:
            continue
        n = family.quick_n if args.quick else family.n
        small, large = measure(family, n)
        ratio = large / small if small > 0 else float("inf")
        flag = "" if ratio <= CHECK_RATIO else "  <-- over the bound"
        print(f"{family.name:<60} {n:>9} {small * 1e3:>10.2f} {large * 1e3:>11.2f} {ratio:>7.1f}{flag}", flush=True)
        if ratio > CHECK_RATIO:
            failed.append(family.name)
    if args.check and failed:
        print(f"FAILED: ratio over {CHECK_RATIO} for: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
