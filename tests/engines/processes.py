"""Start and always stop a real engine or ``m2parse serve`` process on 127.0.0.1, for both engine suites.

Readiness is a poll of a URL until it answers 200, bounded by a generous timeout (a busy 2-core machine starts
engines several times slower than an idle one) and cut short the moment the process exits. Output goes to a log
file whose tail ends every failure message. Each process runs in a session of its own and the whole process group
is stopped, since engines fork workers that must not outlive the test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..fake_backends import REPO


class ProcessFailed(RuntimeError):
    """A process exited or never became ready; the message ends with its log."""


@dataclass(frozen=True, slots=True)
class Running:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    #: seconds from start to ready
    startup: float


def log_tail(path: Path, size: int = 6000) -> str:
    data = path.read_bytes() if path.is_file() else b""
    return data[-size:].decode("utf-8", "replace")


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll ``url`` until it answers 200; ProcessFailed when the process exits first or time runs out."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        if proc.poll() is not None:
            raise ProcessFailed(f"{proc.args!r} exited with {proc.returncode}:\n{log_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise ProcessFailed(f"{url} not ready after {timeout:.0f} s ({last}):\n{log_tail(log)}")
        time.sleep(0.3)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group, SIGKILL to whatever is left after a grace period; always reaps."""
    for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        with contextlib.suppress(ProcessLookupError):  # children that outlive the leader
            os.killpg(proc.pid, signal.SIGKILL)
        return


@contextlib.contextmanager
def running(
    args: Sequence[str], port: int, ready_path: str, log: Path, timeout: float, env: Mapping[str, str] | None = None
) -> Iterator[Running]:
    """Run ``args`` (listening on ``port``) in a new session, wait for ``ready_path``, yield, always stop it."""
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    full_env.update(env or {})
    started = time.monotonic()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(args), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full_env,
            start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url + ready_path, proc, log, timeout)
        yield Running(url, proc, log, time.monotonic() - started)
    finally:
        stop_group(proc)
