"""Process trees for the shutdown tests, read from /proc (independently of `crmlens.dashboard.serve`'s own
reader): which processes run below a command, whether they still run, and a cleanup that kills them.

A process is named by (pid, start time), so a pid reused by a later process is never taken for it. Every test
that starts a command also gives it a marker in its environment (`MARK_ENV`): the processes it starts inherit
it (Voila passes its environment on to its kernels), so those still running are found by the marker even when
they left the tree (an orphan is adopted by init)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crmlens.paths import PROJECT_ROOT

MARK_ENV = "CRMLENS_TEST_PROCESS_MARK"
#: A dashboard kernel preheats without its 3 s pause and computes no view ahead (tests/browser/conftest.py).
QUICK = {"CRMLENS_DASHBOARD_PREHEAT_DELAY": "0", "CRMLENS_DASHBOARD_WARM": "0"}


def require_proc() -> None:
    if not Path("/proc/self/stat").is_file():
        pytest.skip("needs /proc (Linux) to read the process tree")


def new_mark() -> str:
    return uuid.uuid4().hex


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, start time, state) of `pid`, None when gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    after = raw[raw.rindex(b")") + 2:].split()
    return int(after[1]), int(after[19]), after[0].decode()


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def tree(pid: int) -> dict[int, int]:
    """`pid` and every process below it, as {pid: start time} (zombies left out)."""
    parent_of: dict[int, list[tuple[int, int]]] = {}
    for p in _pids():
        st = _stat(p)
        if st is not None and st[2] != "Z":
            parent_of.setdefault(st[0], []).append((p, st[1]))
    own = _stat(pid)
    found = {pid: own[1]} if own is not None and own[2] != "Z" else {}
    todo = [pid]
    while todo:
        for child, started in parent_of.get(todo.pop(), ()):
            if child not in found:
                found[child] = started
                todo.append(child)
    return found


def running(procs: dict[int, int]) -> dict[int, int]:
    """Those of `procs` still running (same start time, not a zombie)."""
    out = {}
    for pid, started in procs.items():
        st = _stat(pid)
        if st is not None and st[1] == started and st[2] != "Z":
            out[pid] = started
    return out


def marked(mark: str) -> dict[int, int]:
    """Running processes whose environment holds ``MARK_ENV=mark``."""
    needle = f"{MARK_ENV}={mark}".encode()
    found = {}
    for pid in _pids():
        with contextlib.suppress(OSError):
            if needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                st = _stat(pid)
                if st is not None and st[2] != "Z":
                    found[pid] = st[1]
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "(gone)"


def kernels(procs: dict[int, int]) -> list[int]:
    """The Jupyter kernels among `procs`."""
    return [pid for pid in running(procs) if "ipykernel_launcher" in cmdline(pid)]


def wait_until_gone(procs: dict[int, int], mark: str | None = None, timeout_s: float = 15.0) -> dict[int, int]:
    """Waits until none of `procs` (and no process marked `mark`) runs; what still runs after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = running(procs) | (marked(mark) if mark else {})
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def kill(procs: dict[int, int]) -> None:
    """SIGKILL to each of `procs` still running (test cleanup)."""
    for pid in running(procs):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def default_signals() -> None:  # a preexec_fn: the command gets the stop signals as a terminal would send them
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


# ---------------------------------------------------------------------------------------- for fixtures

class Started:
    """A command started by the `spawn` fixture: its process, its marker, its log."""

    def __init__(self, proc: subprocess.Popen, mark: str, log: Path) -> None:
        self.proc, self.mark, self.log = proc, mark, log
        self.seen: dict[int, int] = {}

    def tree(self) -> dict[int, int]:
        """Its process tree now (remembered for the cleanup)."""
        now = tree(self.proc.pid)
        self.seen.update(now)
        return now

    def output(self, tail: int | None = 6000) -> str:
        """The command's output so far: its last `tail` characters (for a failure message), or all of it (None:
        a line printed at start, before stopped kernels' tracebacks, is found however long those are)."""
        text = self.log.read_text(errors="replace")
        return text if tail is None else text[-tail:]


def spawner(tmp_path: Path) -> Iterator[Callable[..., Started]]:
    """For a fixture (``yield from spawner(tmp_path)``): starts commands in sessions of their own, each with a
    marker in its environment (and `QUICK`), output to a log in `tmp_path`; kills whatever of them still runs
    afterwards, also when the test failed."""
    require_proc()
    started: list[Started] = []

    def start(argv: list[str], **env: str) -> Started:
        mark = new_mark()
        log = tmp_path / f"command-{len(started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, env={**os.environ, **QUICK, **env, MARK_ENV: mark},
                                    stdout=out, stderr=subprocess.STDOUT, cwd=str(PROJECT_ROOT),
                                    start_new_session=True, preexec_fn=default_signals)
        started.append(Started(proc, mark, log))
        return started[-1]

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.tree()
        kill(s.seen | marked(s.mark))
        with contextlib.suppress(OSError):
            os.killpg(s.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            s.proc.wait(timeout=10)
