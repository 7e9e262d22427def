"""Computing ahead (`crmlens.dashboard.ahead`): which states are one change away, the thread's rules (after a
render, not during one, only with a free core, dropped when the viewer moves on), the thread-safe memo it relies
on, the language of a background thread, and — on the tiny demo — a region change served from what was computed
ahead with the same numbers as computed on demand."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from crmlens import data, i18n
from crmlens.dashboard import ahead
from crmlens.dashboard import state as st
from crmlens.dashboard.ahead import ComputeAhead, one_change_away
from crmlens.dashboard.model import DashboardData
from crmlens.dashboard.tiles import tiles_for
from crmlens.dashboard.widgets import OVERVIEW, Dashboard
from crmlens.errors import ParameterError

LIGHT = dataclasses.replace(OVERVIEW, panels=("pipeline",), key_findings=False)


def test_one_change_away_takes_regions_and_periods_in_turn_then_the_comparison():
    here = st.FilterState(period="this_quarter", region="East", segment="SMB", language="zh")
    out = one_change_away(here, ["East", "West"], ["this_quarter", "this_year", "2026-Q2"])
    assert [(s.region, s.period, s.comparison) for s in out] == [
        ("West", "this_quarter", "previous"), ("East", "this_year", "previous"),
        ("all", "this_quarter", "previous"), ("East", "2026-Q2", "previous"), ("East", "this_quarter", "last_year")]
    assert all(s.segment == "SMB" and s.language == "zh" for s in out) and here not in out


def test_one_change_away_takes_the_neighbours_in_each_drop_down_first():
    regions = ["APAC", "Central", "East", "North", "South"]
    assert ahead.nearest_first(["all", *regions], "Central") == ["East", "APAC", "North", "all", "South"]
    assert ahead.nearest_first(["all", *regions], "South") == ["North", "East", "Central", "APAC", "all"]
    assert ahead.nearest_first(["a", "b"], "z") == ["a", "b"]  # not in the list: in list order
    here = st.FilterState(period="this_year", region="Central")
    out = one_change_away(here, regions, ["this_month", "this_quarter", "this_year", "last_quarter"])
    assert [(s.region, s.period) for s in out[:4]] == [("East", "this_year"), ("Central", "last_quarter"),
                                                       ("APAC", "this_year"), ("Central", "this_quarter")]


def test_ahead_count_reads_the_environment():
    assert ahead.ahead_count({}) == ahead.DEFAULT_AHEAD
    assert ahead.ahead_count({ahead.AHEAD_ENV: "0"}) == 0
    with pytest.raises(ParameterError, match=r"CRMLENS_DASHBOARD_AHEAD: 'many'.*whole number"):
        ahead.ahead_count({ahead.AHEAD_ENV: "many"})


def _states(n: int) -> list[st.FilterState]:
    regions = ["all", "A", "B", "C", "D", "E"]
    return [st.FilterState(region=regions[i]) for i in range(n)]


def test_the_thread_computes_the_neighbours_after_a_render_and_not_during_one():
    done: list[st.FilterState] = []
    runner = ComputeAhead(done.append, lambda s: _states(4)[1:], limit=2, spare=lambda: True, delay_s=0)
    with runner.rendering():
        runner.shown(st.FilterState())
        time.sleep(0.5)
        assert done == []  # a render is on: nothing starts
    assert runner.wait_idle(5)
    assert done == _states(4)[1:3]  # the first `limit` neighbours, in order
    runner.stop()


def test_the_thread_waits_for_a_free_core_and_drops_what_the_viewer_moved_away_from():
    free = threading.Event()
    done: list[st.FilterState] = []
    periods = ("this_year", "this_month")
    runner = ComputeAhead(done.append, lambda s: [dataclasses.replace(s, period=p) for p in periods], limit=5,
                          spare=free.is_set, delay_s=0)
    runner.shown(st.FilterState(region="A"))
    time.sleep(0.5)
    assert done == [] and not runner.wait_idle(0)
    runner.shown(st.FilterState(region="B"))  # moved on before anything was computed
    free.set()
    assert runner.wait_idle(5)
    assert [(s.region, s.period) for s in done] == [("B", "this_year"), ("B", "this_month")]
    runner.stop()


def test_the_first_state_waits_for_the_browser_to_draw_the_page():
    done: list[st.FilterState] = []
    runner = ComputeAhead(done.append, lambda s: _states(2), limit=2, spare=lambda: True, delay_s=1.0)
    runner.shown(st.FilterState(region="E"))
    time.sleep(0.5)
    assert done == []
    assert runner.wait_idle(5) and done == _states(2)
    runner.stop()


def test_off_means_no_thread():
    runner = ComputeAhead(lambda s: None, lambda s: _states(3), limit=0)
    runner.shown(st.FilterState())
    assert runner._thread is None and not runner.enabled


def test_a_failing_state_does_not_stop_the_others():
    done: list[st.FilterState] = []

    def compute(s):
        if s.region == "A":
            raise ValueError("boom")
        done.append(s)
    runner = ComputeAhead(compute, lambda s: _states(3), limit=3, spare=lambda: True, delay_s=0)
    runner.shown(st.FilterState())
    assert runner.wait_idle(5) and done == [_states(3)[0], _states(3)[2]] and runner.computed == 3
    runner.stop()


# -- what it relies on ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def board_data(tiny_demo) -> DashboardData:
    return DashboardData(data.connect(str(tiny_demo)), cache_dir=False)


def test_memo_computes_a_key_once_when_two_threads_ask_together(board_data):
    calls, started = [], threading.Event()

    def slow():
        calls.append(1)
        started.set()
        time.sleep(0.3)
        return "value"
    other = threading.Thread(target=lambda: board_data.memo(("test", "once"), slow))
    other.start()
    started.wait(5)
    assert board_data.memo(("test", "once"), slow) == "value"  # waited for the other thread's
    other.join()
    assert calls == [1]


def test_remember_replaces_what_memo_holds(board_data):
    calls = []
    assert board_data.memo(("test", "later"), lambda: calls.append(1) or "not yet") == "not yet"
    board_data.remember(("test", "later"), "done")
    assert board_data.memo(("test", "later"), lambda: calls.append(1) or "again") == "done" and calls == [1]


def test_a_language_block_holds_for_its_own_thread_only():
    i18n.use("en")
    seen = {}
    inside, leave = threading.Event(), threading.Event()

    def background():
        with i18n.language("zh"):
            seen["background"] = i18n.current()
            inside.set()
            leave.wait(5)
    t = threading.Thread(target=background)
    t.start()
    inside.wait(5)
    seen["main"] = i18n.current()
    leave.set()
    t.join()
    assert seen == {"background": "zh", "main": "en"}
    with i18n.language("zh"):
        i18n.use("en")  # inside a block: the block's language until it ends
        assert i18n.current() == "en"
    assert i18n.current() == "en"


# -- a dashboard ----------------------------------------------------------------------------------------------

def test_a_region_change_is_served_from_what_was_computed_ahead(board_data, monkeypatch):
    monkeypatch.setenv(ahead.AHEAD_ENV, "3")
    monkeypatch.setattr(ahead, "_core_is_free", lambda: True)
    board = Dashboard(board_data, LIGHT)
    try:
        assert board.ahead.limit == 3 and board.ahead.wait_idle(60)
        assert board.ahead.computed == 3
        region = board_data.options["regions"][0]
        target = dataclasses.replace(board.state, region=region)
        assert target in board.ahead.neighbours(board.state)[:3]
        computed: list[tuple] = []
        memo = board_data.memo
        monkeypatch.setattr(board_data, "memo", lambda key, fn: memo(key, lambda: computed.append(key) or fn()))
        board.set_state(target)
        assert not [k for k in computed if "view" in k]  # the view came from memory
        fresh = DashboardData(data.connect(str(board_data.info.source)), cache_dir=False)
        expected = {t.kpi: t.value for t in tiles_for(fresh.view(target), list(LIGHT.tiles))}
        assert {t.kpi: t.value for t in board.tiles} == expected
    finally:
        board.ahead.stop()
