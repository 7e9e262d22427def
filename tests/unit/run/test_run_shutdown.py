"""`crmlens run` killed by SIGTERM (a service manager, `kill`) leaves no kernel behind: its kernels watch their
parent (ipykernel's parent poller, JPY_PARENT_PID) and exit when the run's process is gone (issue 16). The
process tree is read from /proc (tests/unit/process_tree.py)."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from tests.unit import process_tree as pt
from tests.unit.run.fakes import write_notebook

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")]


@pytest.fixture
def spawn(tmp_path):
    yield from pt.spawner(tmp_path)


def test_a_run_stopped_by_sigterm_leaves_no_kernel(spawn, tiny_demo, tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    started = tmp_path / "started"
    write_notebook(folder / "01_sleeps.ipynb",
                   f"import pathlib, time\npathlib.Path({str(started)!r}).write_text('running')\ntime.sleep(120)")
    run = spawn([sys.executable, "-m", "crmlens.cli", "run", "--source", str(tiny_demo), "--periods", "2026-Q3",
                 "--regions", "East", "--notebooks", "01_*", "--notebooks-dir", str(folder), "--exports", "none",
                 "--outputs", str(tmp_path / "outputs"), "--workers", "1", "--no-progress"])
    deadline = time.monotonic() + 120
    while not started.exists():  # a kernel runs the notebook
        assert run.proc.poll() is None, f"the run exited ({run.proc.returncode}):\n{run.output()}"
        assert time.monotonic() < deadline, f"no notebook started within 120 s:\n{run.output()}"
        time.sleep(0.2)
    tree = run.tree()
    assert pt.kernels(tree), {p: pt.cmdline(p) for p in tree}

    os.kill(run.proc.pid, signal.SIGTERM)  # the run's process only, as a service manager or `kill` does
    left = pt.wait_until_gone(tree, run.mark, timeout_s=15)
    assert not left, "still running after SIGTERM: " + "; ".join(f"{p}: {pt.cmdline(p)}" for p in left)
    assert run.proc.wait(timeout=5) != 0  # stopped, not finished
