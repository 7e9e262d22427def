"""Stopping `crmlens dashboard` stops Voila and its kernels (issue 16): on SIGTERM (a service manager, `kill`),
SIGINT (Ctrl+C) and SIGHUP (a closed terminal) the command stops its Voila process and every process below it
and exits with status 0; so does an exit of the command's process for another reason (atexit), and a killed
command (SIGKILL) takes Voila with it (Linux's parent-death signal). The process tree is read from /proc
(tests/unit/process_tree.py)."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from crmlens.dashboard import serve
from tests.unit import process_tree as pt

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")

@pytest.fixture
def spawn(tmp_path):
    yield from pt.spawner(tmp_path)


def _wait_for(what: str, check, started: pt.Started, timeout_s: float = 90.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if started.proc.poll() is not None:
            pytest.fail(f"the command exited ({started.proc.returncode}) before {what}:\n{started.output()}")
        time.sleep(0.2)
    pytest.fail(f"no {what} within {timeout_s:.0f} s:\n{started.output()}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


# ------------------------------------------------------------------------------- the real command

@pytest.mark.slow
# SIGKILL: nothing runs in the killed command; Voila gets SIGTERM from the kernel (PR_SET_PDEATHSIG) and stops
# its kernels itself
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name)
def test_a_stopped_dashboard_leaves_no_voila_and_no_kernel(spawn, tiny_demo, sig):
    port = serve.free_port()
    cmd = spawn([sys.executable, "-m", "crmlens.cli", "dashboard", "--source", str(tiny_demo),
                 "--host", "127.0.0.1", "--port", str(port), "--pool-size", "1"])
    base = f"http://127.0.0.1:{port}/"
    _wait_for("answer on " + base, lambda: _answers(base), cmd)
    # a viewer opens a dashboard: it takes the preheated kernel, and Voila starts another for its pool
    opened = threading.Event()

    def view() -> None:
        with contextlib.suppress(OSError, http.client.HTTPException), \
                urllib.request.urlopen(base + "voila/render/overview.ipynb", timeout=60) as page:
            opened.set()
            page.read()  # until the server stops

    threading.Thread(target=view, daemon=True).start()
    _wait_for("page", opened.is_set, cmd)

    def tree_with_kernels() -> dict[int, int] | None:
        now = cmd.tree()
        return now if pt.kernels(now) else None

    tree = _wait_for("kernel", tree_with_kernels, cmd)
    voila = [pid for pid in tree if " -m voila " in pt.cmdline(pid)]
    assert len(voila) == 1 and voila[0] in tree and cmd.proc.pid in tree, {p: pt.cmdline(p) for p in tree}
    print(f"{sig.name} to a tree of {len(tree)}: {len(pt.kernels(tree))} kernel(s)")

    started = time.monotonic()
    os.kill(cmd.proc.pid, sig)  # the command only, as a service manager or `kill` does
    left = pt.wait_until_gone(tree, cmd.mark, timeout_s=15)
    assert not left, f"still running after {sig.name}: " + "; ".join(f"{p}: {pt.cmdline(p)}" for p in left)
    assert cmd.proc.wait(timeout=5) == (-signal.SIGKILL if sig == signal.SIGKILL else 0), cmd.output()
    assert time.monotonic() - started < 15
    assert f"at http://127.0.0.1:{port}/" in cmd.output(tail=None), cmd.output()


# ---------------------------------------------------------------- run_voila and stop_process_tree

#: Stands for Voila: starts a "kernel" in a session of its own (as Jupyter does) that ignores SIGTERM, and one
#: in its own group that does not; prints "ready" once both run, then waits.
FAKE_VOILA = textwrap.dedent("""
    import signal, subprocess, sys, time
    stubborn = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('up', flush=True); time.sleep(120)")
    plain = "import sys, time; print('up', flush=True); time.sleep(120)"
    kids = [subprocess.Popen([sys.executable, "-c", stubborn], start_new_session=True, stdout=subprocess.PIPE),
            subprocess.Popen([sys.executable, "-c", plain], stdout=subprocess.PIPE)]
    for k in kids:
        k.stdout.readline()
    print("ready", flush=True)
    time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 120)
    sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
""")


def _wait_ready(log: Path, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if "ready" in log.read_text(errors="replace"):
            return
        time.sleep(0.05)
    pytest.fail(f"the fake Voila did not start its kernels:\n{log.read_text(errors='replace')}")


@pytest.mark.parametrize("own_session", [True, False], ids=["own-session", "our-group"])
def test_stop_process_tree_stops_voila_its_group_and_kernels_in_other_sessions(own_session):
    pt.require_proc()
    proc = subprocess.Popen([sys.executable, "-c", FAKE_VOILA], stdout=subprocess.PIPE,
                            start_new_session=own_session)
    tree: dict[int, int] = {}
    try:
        assert proc.stdout.readline().strip() == b"ready"
        tree = pt.tree(proc.pid)
        assert len(tree) == 3
        started = time.monotonic()
        serve.stop_process_tree(proc, grace_s=0.5)
        took = time.monotonic() - started
        assert proc.returncode is not None
        assert not pt.running(tree), {p: pt.cmdline(p) for p in pt.running(tree)}
        assert 0.5 <= took < 5  # the kernel ignoring SIGTERM was killed after the grace period
        serve.stop_process_tree(proc, grace_s=0.5)  # idempotent
    finally:
        pt.kill(tree)
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait(timeout=10)


def _runner(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "runner.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, threading, time
        from crmlens.dashboard import serve
        serve.STOP_GRACE_S, serve.TREE_REFRESH_S, serve.POLL_S = 0.5, 0.2, 0.1
        fake = [sys.executable, "-c", {FAKE_VOILA!r}]
    """) + textwrap.dedent(body))
    return script


def test_voila_exiting_by_itself_gives_its_status_and_its_kernels_are_stopped(spawn, tmp_path):
    # the fake Voila exits with status 3 after 1.5 s, leaving its kernels (a crash)
    script = _runner(tmp_path, "sys.exit(serve.run_voila(fake + ['1.5', '3'], grace_s=0.5))\n")
    cmd = spawn([sys.executable, str(script)])
    _wait_ready(cmd.log)
    tree = cmd.tree()
    assert len(tree) == 4, {p: pt.cmdline(p) for p in tree}  # the runner, the fake Voila, two kernels
    assert cmd.proc.wait(timeout=15) == 3, cmd.output()
    assert not pt.wait_until_gone(tree, cmd.mark, timeout_s=5)


def test_an_exit_of_the_process_for_another_reason_stops_voila_and_its_kernels(spawn, tmp_path):
    # run_voila in a daemon thread; the main thread exits (when told to): the atexit handler stops the tree
    go = tmp_path / "go"
    script = _runner(tmp_path, f"""
        threading.Thread(target=serve.run_voila, args=(fake,), kwargs={{"grace_s": 0.5}}, daemon=True).start()
        while not os.path.exists({str(go)!r}):
            time.sleep(0.05)
        sys.exit(4)
    """)
    cmd = spawn([sys.executable, str(script)])
    _wait_ready(cmd.log)
    tree = cmd.tree()
    assert len(tree) == 4, {p: pt.cmdline(p) for p in tree}
    go.write_text("exit")
    assert cmd.proc.wait(timeout=15) == 4, cmd.output()
    assert not pt.wait_until_gone(tree, cmd.mark, timeout_s=5)
