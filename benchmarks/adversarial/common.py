"""The Family record and the timing rule shared by every area's families."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CHECK_RATIO = 20.0


@dataclass(frozen=True)
class Family:
    """``build(n)`` makes the input of size n (untimed); ``run(input)`` is the work that is timed."""

    name: str
    build: Callable[[int], Any]
    run: Callable[[Any], Any]
    n: int
    quick_n: int


def _best_of(family: Family, data: Any, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.process_time()
        family.run(data)
        best = min(best, time.process_time() - start)
    return best


def measure(family: Family, n: int, repeats: int = 3) -> tuple[float, float]:
    """Best-of CPU times at n and 10n, interleaved so that both sizes see the same machine load.

    CPU time rather than wall time: CI shares two cores with other work, and a quadratic family is told apart
    by its ratio (about 100 against about 10), which CPU time measures without the other processes' noise.
    """
    small_input, large_input = family.build(n), family.build(10 * n)
    small = large = float("inf")
    for _ in range(repeats):
        small = min(small, _best_of(family, small_input, 2))
        large = min(large, _best_of(family, large_input, 1))
    return small, large
