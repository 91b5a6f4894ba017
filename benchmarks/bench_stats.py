"""``m2parse stats`` throughput in outputs per second, on a generated JSONL (default 100,000 lines).

    python benchmarks/bench_stats.py [--lines 100000] [--keep FILE]

Each line is ``{"n": i, "output": "line i " + fixture}``, cycling over every fixture (clean outputs, broken calls,
cut-off outputs, Chinese text, a 4 KB code argument), so the mix of problems is the fixtures' own. The command
runs as a user runs it (a subprocess, with ``--tools`` for typing and ``--json``); the time includes the start.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"


def write_jsonl(path: Path, lines: int) -> None:
    texts = []
    for txt in sorted(FIXTURES.glob("*.txt")):
        with open(txt, encoding="utf-8", newline="") as handle:
            texts.append(handle.read())
    with open(path, "w", encoding="utf-8") as out:
        for i in range(lines):
            out.write(json.dumps({"n": i, "output": f"line {i} " + texts[i % len(texts)]}, ensure_ascii=False) + "\n")


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--lines", type=int, default=100_000)
    cli.add_argument("--keep", metavar="FILE", help="write the JSONL here and keep it")
    args = cli.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "outputs.jsonl"
        write_jsonl(path, args.lines)
        command = [sys.executable, "-m", "m2parse", "stats", str(path), "--field", "output", "--json"]
        command += ["--tools", str(FIXTURES / "tools" / "weather.json")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        elapsed = time.perf_counter() - start
        stats = json.loads(proc.stdout)
        size = path.stat().st_size
    assert stats["outputs"] == args.lines, stats["outputs"]
    print(
        f"{args.lines:,} outputs ({size / 1e6:.1f} MB of JSONL) in {elapsed:.2f} s: {args.lines / elapsed:,.0f} "
        f"outputs/s, {size / 1e6 / elapsed:.1f} MB/s (parsing alone: {stats['parse_seconds']:.2f} s); "
        f"clean {stats['clean_percent']} %, {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
