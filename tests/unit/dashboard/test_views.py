"""Every dashboard view on the tiny demo, as a `Dashboard` (no browser): it opens without an error line with
its tiles in order and the library's values; the sales rep view is chosen by its rep (filter bar, deep link,
reset keeps it); record drill-downs open records and go into the Excel export; the attribution switcher
redraws the panel for one model; the views' tables are what `app.load` loads."""

from __future__ import annotations

import dataclasses
import html
import io
import re

import openpyxl
import pytest

from crmlens.dashboard import app
from crmlens.dashboard import state as st
from crmlens.dashboard.model import DashboardData
from crmlens.dashboard.panels import PANEL_TABLES, attribution_panel
from crmlens.dashboard.tiles import tiles_for
from crmlens.dashboard.views import VIEWS
from crmlens.dashboard.widgets import Dashboard, open_dashboard

STATE = st.FilterState(period="2026-Q3")


@pytest.fixture(scope="module")
def board_data(tiny_demo) -> DashboardData:
    tables = set().union(*(app.view_tables(spec) for spec in VIEWS.values()))
    return DashboardData.load(str(tiny_demo), tables=sorted(tables))


@pytest.fixture(scope="module")
def rep(board_data) -> str:
    return board_data.options["reps"][2]


def status_ok(board: Dashboard) -> bool:
    return "crmlens-status-line" in board.status.value


@pytest.mark.parametrize("name", ["marketing", "customer_service", "sales_rep", "overview"])
def test_every_view_opens_with_the_librarys_tiles(board_data, rep, name):
    spec = VIEWS[name]
    state = dataclasses.replace(STATE, rep=rep if spec.needs == "rep" else None)
    board = Dashboard(board_data, spec, state)
    assert status_ok(board), board.status.value
    assert [t.kpi for t in board.tiles] == list(spec.tiles)
    expected = {t.kpi: t.value for t in tiles_for(board_data.view(state), list(spec.tiles))}
    assert {t.kpi: t.value for t in board.tiles} == expected
    assert [p.key for p in board.panel_data] == (["key_findings"] if spec.key_findings else []) + list(spec.panels)
    assert len(board.record_drills) == len(spec.records)
    assert (board.attribution is not None) == ("attribution" in spec.panels)
    assert app.view_tables(spec) >= {t for key in spec.panels for t in PANEL_TABLES[key]}


def test_the_rep_view_is_chosen_by_its_rep_and_keeps_it_on_reset(board_data, rep):
    board = open_dashboard("sales_rep", board_data, f"period=2026-Q3&rep={rep.lower()}")
    assert board.state.rep == rep and board.filters.rep.value == rep
    assert board.filters.rep.layout.display is None  # shown in this view
    assert f"rep={rep}" in board.url.query
    assert all(p.no_data is None or "No data" in p.no_data for p in board.panel_data)
    other = board_data.options["reps"][5]
    board.filters.rep.value = other  # the reader picks another rep
    assert board.state.rep == other and board.panel_data[0].table["key"].astype(str).tolist() == [other]
    board.filters.reset.click()
    assert board.state.rep == other and board.state.period == st.DEFAULT_PERIOD
    overview = Dashboard(board_data, VIEWS["overview"], STATE)
    assert overview.filters.rep.layout.display == "none"


def test_the_rep_views_tiles_are_measured_against_the_reps_own_targets(board_data, rep):
    """Bookings and won deals of one rep against that rep's targets (targets.level = rep), with no "the target
    is the company's" note; the same numbers as `performance.target_attainment` at the rep level."""
    from crmlens.metrics import performance

    state = dataclasses.replace(STATE, rep=rep)
    board = Dashboard(board_data, VIEWS["sales_rep"], state)
    tiles = {t.kpi: t for t in board.tiles}
    whole = board_data.view(dataclasses.replace(STATE, rep=None))
    rows = performance.target_attainment(whole.tables["opportunities"], whole.tables, whole.ctx(), level="rep")
    mine = rows[rows["key"].astype(str) == rep].iloc[0]
    assert tiles["bookings_amount"].target == pytest.approx(mine["target_amount"])
    assert tiles["bookings_amount"].value == pytest.approx(mine["bookings_amount"])
    assert tiles["bookings_amount"].attainment == pytest.approx(mine["attainment_rate"])
    assert tiles["won_deals"].target == pytest.approx(mine["n_target_deals"])
    assert not any("target is" in (t.note or "") for t in board.tiles)
    with_segment = board_data.view(dataclasses.replace(state, segment=board_data.options["segments"][0]))
    noted = with_segment.annotate(tiles_for(with_segment, ["bookings_amount"]))
    assert noted[0].note == "the target is the rep's whole target"


def test_record_drills_open_records_and_go_into_the_export(board_data):
    board = Dashboard(board_data, VIEWS["marketing"], STATE)
    drill = board.record_drills[0]
    assert drill.spec.key == "campaign_leads" and len(drill.choice.options) > 2
    chosen = drill.choice.options[1][1]
    drill.open(chosen)  # the campaign with most leads in the period
    assert drill.current is not None and len(drill.current.table) > 0
    assert "crmlens-records-count" in drill.table.value
    _name, content = board.excel_file()
    book = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    assert "A campaign's leads" in book.sheetnames
    board.set_state(dataclasses.replace(STATE, region="East"))  # the choice is kept while offered
    offered = {v for _label, v in drill.choice.options}
    assert drill.choice.value == (chosen if chosen in offered else "")
    assert (drill.current is not None) == (chosen in offered)


def test_the_attribution_switcher_redraws_the_panel_for_one_model(board_data):
    board = Dashboard(board_data, VIEWS["marketing"], STATE)
    switch = board.attribution
    assert switch.choice.options[0][1] == "" and len(switch.choice.options) > 3
    switch.choice.value = "last_touch"
    expected = attribution_panel(board_data.view(STATE), "last_touch")
    assert switch.panel.table.equals(expected.table) and switch.panel.title == expected.title
    board.set_state(dataclasses.replace(STATE, language="zh"))
    assert switch.choice.value == "last_touch" and switch.choice.description == "模型"


def test_the_command_offers_every_view_and_prints_the_landing_page():
    from crmlens import cli
    from crmlens.dashboard import serve

    action = next(a for a in cli.build_parser()._subparsers._group_actions[0].choices["dashboard"]._actions
                  if a.dest == "notebook")
    assert set(action.choices) == {"all", *VIEWS}
    assert serve.url_for("127.0.0.1", 8866, None, serve.LANDING) == "http://127.0.0.1:8866/voila/render/index.ipynb"
    argv = serve.voila_command(pool_size=1)
    assert "--VoilaKernelManager.preheat_denylist=['index.ipynb']" in argv
    argv = serve.voila_command(pool_size=1, preheat=("overview", "marketing"))
    assert ("--VoilaKernelManager.preheat_denylist=['index.ipynb', 'customer_service.ipynb', "
            "'sales_manager.ipynb', 'sales_rep.ipynb']") in argv


def test_the_overview_opens_with_its_key_findings_ranked_from_its_panels(board_data):
    from crmlens.findings import summary

    board = Dashboard(board_data, VIEWS["overview"], STATE)
    first, rest = board.panel_data[0], board.panel_data[1:]
    expected = summary([p.found for p in rest if p.found is not None])
    assert first.key == "key_findings" and list(first.table["finding"]) == [f.text for f in expected]
    assert 0 < len(first.table) <= 6 and set(first.table["panel"]) <= {p.title for p in rest}
    assert first.table["severity"].iloc[0] in ("Act", "Watch", "Good news", "Context")
    assert list(first.table["level"]) == [f.severity for f in expected]
    # shown as an HTML table (readable, wrapping, copyable text; nothing for plotly.js to draw), not a chart
    box = board.panels["key_findings"]
    assert first.figure is None and box.figure is None and box.table in box.box.children
    page = box.table.value
    assert page.count("<tr data-severity=") == len(first.table) and "**" not in page
    for f in expected:
        assert f"<tr data-severity='{f.severity}'>" in page
        assert html.escape(re.sub(r"\*\*(.+?)\*\*", r"\1", f.text).split("`")[0][:40]) in re.sub(r"</?b>", "", page)
    with pytest.raises(TypeError, match="table panel"):
        box.chart  # noqa: B018


def test_a_click_on_a_customers_bar_opens_the_customers_history(board_data, rep):
    board = Dashboard(board_data, VIEWS["sales_rep"], dataclasses.replace(STATE, rep=rep))
    chart = board.panels["my_customers"].figure
    account = board.panel_data[[p.key for p in board.panel_data].index("my_customers")].table["account_id"].iloc[0]
    drill = board.record_drills[0]
    assert drill.spec.key == "customer_history" and drill.choice.value == ""
    chart._message(chart, {"kind": "click", "label": "whatever", "id": "not-an-account"}, [])
    assert drill.choice.value == ""  # an id the view does not offer opens nothing
    chart._message(chart, {"kind": "click", "label": "whatever", "id": str(account)}, [])
    assert drill.choice.value == str(account) and drill.current is not None
    assert drill.current.table is not None and "crmlens-records-count" in drill.table.value


def test_a_pending_panel_is_made_again_and_the_view_remembered_once_ready(board_data, monkeypatch):
    """A view holding a pending panel is shared at once (the other panels are not computed again) and that panel
    alone is made again when the view is shown; once it is ready the complete view is remembered."""
    from concurrent.futures import Future

    from crmlens.dashboard import panels as panels_module
    from crmlens.dashboard.panels import Panel

    job: Future = Future()
    calls = {"slow": 0, "other": 0}

    def slow(v):
        calls["slow"] += 1
        if not job.done():
            return Panel("slow", "Slow", no_data="being computed", pending=job)
        return Panel("slow", "Slow", no_data="ready now")

    def other(v):
        calls["other"] += 1
        return Panel("other", "Other", no_data="nothing")
    monkeypatch.setitem(panels_module.PANELS, "slow", slow)
    monkeypatch.setitem(panels_module.PANELS, "other", other)
    spec = dataclasses.replace(VIEWS["sales_manager"], name="pending_test", panels=("other", "slow"),
                               key_findings=True)
    board = Dashboard.__new__(Dashboard)
    board.data, board.spec = board_data, spec
    _tiles, first = board.compute(STATE)
    assert first[2].pending is job and calls == {"slow": 2, "other": 1}  # made, then made again to show
    board.compute(STATE)
    assert calls == {"slow": 3, "other": 1}  # the rest from memory; the pending one made again
    job.set_result(None)
    _, ready = board.compute(STATE)
    assert ready[2].no_data == "ready now" and ready[2].pending is None and ready[0].key == "key_findings"
    board.compute(STATE)
    assert calls == {"slow": 4, "other": 1}  # complete now: remembered


def test_warming_the_rep_view_prepares_what_every_rep_shares(tiny_demo):
    """A preheating kernel of the sales rep view computes one rep's view too: the company's churn model (seconds
    on a real source) is then ready for whichever rep opens the page."""
    from crmlens.dashboard.widgets import warm

    spec = VIEWS["sales_rep"]
    fresh = DashboardData.load(str(tiny_demo), tables=sorted(app.view_tables(spec)), cache_dir=False)
    warm(fresh, spec, [STATE])
    assert any(key[0] == "churn model" for key in fresh._results)


def test_a_panel_finishing_for_the_old_state_does_not_redraw_it_over_a_new_one(board_data, monkeypatch):
    """A panel computed elsewhere redraws the view when it is ready, if the view still shows its state. A deep
    link opened meanwhile (its render under way: the state shown is still the old one) must win: the redraw of
    the old state used to wait for the render lock and then draw the old state over the link's (a preheated
    kernel whose default view had a panel pending; seen under load in the browser tests)."""
    import threading
    from concurrent.futures import Future

    from crmlens.dashboard import panels as panels_module
    from crmlens.dashboard.panels import Panel

    job: Future = Future()
    entered, release = threading.Event(), threading.Event()
    link = dataclasses.replace(STATE, region="West")

    def slow(v):
        if v.state == link and not release.is_set():
            entered.set()
            release.wait(30)  # the link's render, in progress
        if v.state != link and not job.done():
            return Panel("slow", "Slow", no_data="being computed", pending=job)
        return Panel("slow", "Slow", no_data="ready")

    monkeypatch.setitem(panels_module.PANELS, "slow", slow)
    spec = dataclasses.replace(VIEWS["sales_manager"], name="race_test", panels=("slow",), key_findings=False)
    board = Dashboard(board_data, spec, STATE)
    assert board.panel_data[0].pending is job
    opening = threading.Thread(target=board.set_state, args=(link,))
    opening.start()
    assert entered.wait(30)
    job.set_result(None)  # the old state's panel is ready: its redraw thread starts and waits for the lock
    redraws = [t for t in threading.enumerate() if t.name == "crmlens-panel-ready"]
    assert redraws
    release.set()
    opening.join(30)
    for t in redraws:
        t.join(30)
    assert board.state == link and board.url.query == st.to_query(link)
    assert f"data-render='2' data-state='{html.escape(st.to_query(link))}'" in board.status.value  # no 3rd render
    board.ahead.stop()
