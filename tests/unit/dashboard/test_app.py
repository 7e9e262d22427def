"""What the dashboard notebooks call: the states a preheating kernel computes."""

from __future__ import annotations

import pytest

from crmlens.dashboard import app
from crmlens.dashboard import state as st
from crmlens.dashboard.app import warm_states
from crmlens.errors import ParameterError


def test_default_warm_up_is_every_region_at_the_default_period_and_every_preset_for_all():
    states = warm_states(["East", "West"], "default", seed=3)
    assert states[0] == st.FilterState()
    assert sorted((s.region, s.period) for s in states) == sorted(
        [("all", p) for p in st.PRESETS] + [("East", "this_quarter"), ("West", "this_quarter")])


def test_all_warm_up_covers_every_region_and_preset_and_kernels_take_different_orders():
    a, b = warm_states(["East", "West"], "all", seed=1), warm_states(["East", "West"], "all", seed=2)
    assert len(a) == 3 * len(st.PRESETS) and set(a) == set(b)
    assert a[0] == b[0] == st.FilterState() and a != b


def test_no_warm_up_and_a_bad_choice():
    assert warm_states(["East"], "0") == []
    with pytest.raises(ParameterError, match="CRMLENS_DASHBOARD_WARM: 'most'"):
        warm_states(["East"], "most")


def test_preheating_kernels_queue_for_a_slot_and_a_dead_kernels_slot_is_freed(tmp_path, monkeypatch):
    """Kernels preheating for the pool take one of `preheat_slots` lock files before their imports (the others
    wait); a slot is given back by `release_slot` — or by the operating system when its kernel dies."""
    import subprocess
    import sys
    import textwrap

    monkeypatch.setenv("CRMLENS_DASHBOARD_CACHE", str(tmp_path))
    monkeypatch.setenv(app.PREHEAT_SLOTS_ENV, "1")
    assert app.preheat_slots() == 1 and app._slot_dir() == str(tmp_path / "preheat-slots")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, sys, time
        os.makedirs({str(tmp_path / 'preheat-slots')!r}, exist_ok=True)
        fh = open(os.path.join({str(tmp_path / 'preheat-slots')!r}, "slot-0.lock"), "a+")
        fcntl.flock(fh, fcntl.LOCK_EX)
        print("held", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        import threading

        waited: list[float] = []
        taker = threading.Thread(target=lambda: waited.append(app._take_slot()))
        taker.start()
        taker.join(1.0)
        assert taker.is_alive()  # queued behind the other kernel
        holder.kill()  # that kernel dies: its slot is free
        taker.join(10)
        assert not taker.is_alive() and waited and waited[0] >= 1.0
        assert app._SLOT["file"] is not None
    finally:
        holder.kill()
        app.release_slot()
    assert app._SLOT["file"] is None
    monkeypatch.setenv(app.PREHEAT_SLOTS_ENV, "many")
    assert app.preheat_slots() >= 1
