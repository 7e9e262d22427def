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


def _shown(widget):
    """What a viewer is sent of a widget tree: every widget's state, children in place of their model ids,
    without the render counters (the status line's, the charts' revisions)."""
    import re

    import ipywidgets

    if isinstance(widget, (list, tuple)):
        return [_shown(x) for x in widget]
    if isinstance(widget, dict):
        return {k: _shown(v) for k, v in widget.items()}
    if isinstance(widget, str):
        return re.sub(r" data-(render|seconds)='[^']*'|Updated in [^<]*|用时 [^<]*", "", widget)
    if not isinstance(widget, ipywidgets.Widget):
        return widget
    state = widget.get_state()
    for key in ("_esm", "_css", "_anywidget_id", "revision"):
        state.pop(key, None)
    return {k: _shown(getattr(widget, k)) if k in ("children", "layout", "style") else _shown(v)
            for k, v in state.items()}


def test_a_preheating_kernel_builds_the_default_view_and_show_opens_the_link_on_it(tiny_demo, monkeypatch):
    """`load` in a kernel preheating for Voila's pool also builds the default view's widgets; `show` moves that
    dashboard to the page's deep link — the same view, texts and numbers as a dashboard opened for the link
    (a link in another language and region, no link, a bad link)."""
    from crmlens.dashboard.widgets import VIEWS, Dashboard, open_dashboard

    monkeypatch.setenv("VOILA_PREHEAT", "True")
    monkeypatch.setenv("CRMLENS_DASHBOARD_CACHE", "off")
    monkeypatch.setenv("CRMLENS_DASHBOARD_REFRESH_S", "0")
    monkeypatch.setenv(app.WARM_ENV, "0")  # nothing computed besides the default view (quick)
    board_data = app.load("customer_service", source=str(tiny_demo))
    for i, query in enumerate(("region=East&language=zh", "", "region=Atlantis")):
        if i:  # the first link takes what `load` built; the others one built the same way
            app._PREBUILT["customer_service"] = Dashboard(board_data, VIEWS["customer_service"])
        prebuilt = app._PREBUILT["customer_service"]
        assert prebuilt.state == st.FilterState() and prebuilt.renders == 1
        shown = app.show("customer_service", board_data, query=query)
        assert shown is prebuilt and "customer_service" not in app._PREBUILT
        assert shown.renders == (2 if query.startswith("region=East") else 1)  # redrawn only for a new state
        fresh = open_dashboard("customer_service", board_data, query)
        try:
            assert _shown(shown.app) == _shown(fresh.app), query
            assert shown.state == fresh.state
            if query == "region=Atlantis":
                assert "Atlantis" in shown.status.value and "Showing the default view" in shown.status.value
        finally:
            for board in (shown, fresh):
                board.stop_auto_refresh()
                board.ahead.stop()


def test_a_kernel_started_for_a_waiting_viewer_builds_nothing_ahead(tiny_demo, monkeypatch):
    monkeypatch.delenv("VOILA_PREHEAT", raising=False)
    monkeypatch.setenv("CRMLENS_DASHBOARD_CACHE", "off")
    app._PREBUILT.clear()
    app.load("customer_service", source=str(tiny_demo))
    assert app._PREBUILT == {}
