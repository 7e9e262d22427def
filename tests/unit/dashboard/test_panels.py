"""Tests of crmlens.dashboard.panels: every panel of `PANELS` on the demo (figure, table, finding), their notes
under filters, plain "no data" reasons (an empty period, the Maven source), the drill-down levels and the
funnel's records."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

from crmlens import data, kpis
from crmlens.dashboard import panels
from crmlens.dashboard import state as st
from crmlens.dashboard.model import DashboardData
from crmlens.dashboard.panels import DRILL_LEVELS, PANELS, Panel, drill_table, funnel_records
from crmlens.errors import ParameterError
from crmlens.metrics import funnel
from crmlens.truths import REGION_IDS


@pytest.fixture(scope="module")
def board(tiny_demo) -> DashboardData:
    return DashboardData.load(str(tiny_demo))


@pytest.fixture(scope="module")
def view(board):
    return board.view(st.FilterState())


@pytest.fixture(scope="module")
def east(board):
    return board.view(st.FilterState(region="East"))


#: The sales panels (the marketing and service panels: test_panels_areas.py; rep and executive: test_panels_roles.py).
SALES = ["funnel", "bookings_trend", "pipeline", "leaderboard", "regions", "attainment", "follow_ups"]


@pytest.fixture(scope="module")
def all_panels(view) -> dict[str, Panel]:
    return {key: PANELS[key](view) for key in SALES}


@pytest.fixture(scope="module")
def maven_view(maven_con):
    return DashboardData(maven_con).view(st.FilterState())


def kpi(v, name: str) -> float | None:
    return kpis.compute_kpi(name, v.tables, v.ctx())


# ------------------------------------------------------------------------------------------ every panel

def test_panels_registry():
    assert list(PANELS)[:len(SALES)] == SALES
    assert set(PANELS) == set(panels.PANEL_TABLES)


@pytest.mark.parametrize("key", SALES)
def test_every_panel_draws_its_table_on_the_demo(all_panels, key):
    p = all_panels[key]
    assert p.key == key and p.title
    assert p.no_data is None and p.note is None
    assert isinstance(p.figure, go.Figure) and len(p.figure.data) > 0
    assert p.figure.layout.height >= 300 and p.figure.layout.title.text is None
    assert isinstance(p.table, pd.DataFrame) and len(p.table) > 0
    assert p.finding and p.finding.endswith((".", ")"))
    # every heading names a column of the table (the Excel export writes only those)
    assert p.columns and set(p.columns) <= set(p.table.columns), f"{key}: {list(p.columns)} vs {list(p.table.columns)}"


def test_funnel_panel_counts_the_periods_leads(all_panels, view):
    table = all_panels["funnel"].table
    assert list(table["step_id"]) == list(funnel.STEPS)
    assert table["n_leads"].iloc[0] == len(view.tables["leads"]) == kpi(view, "leads_created")
    assert table["n_leads"].is_monotonic_decreasing


def test_pipeline_panel_counts_the_periods_opportunities(all_panels, view):
    table = all_panels["pipeline"].table
    assert table["n_opportunities"].sum() == len(view.tables["opportunities"])
    assert table["amount"].sum() == pytest.approx(view.tables["opportunities"]["amount"].sum())


def test_regions_panel_sums_to_the_bookings_kpi(all_panels, view, east):
    table = all_panels["regions"].table
    assert all_panels["regions"].title == "Bookings by region"
    assert set(table["region_id"]) == set(REGION_IDS)
    assert table["bookings_amount"].sum() == pytest.approx(kpi(view, "bookings_amount"), rel=1e-9)
    inside = panels.regions_panel(east)
    assert inside.title == "Bookings by country" and "country" in inside.columns
    assert set(inside.columns) <= set(inside.table.columns)
    assert set(inside.table["region_id"]) == {"East"}
    assert inside.table["bookings_amount"].sum() == pytest.approx(kpi(east, "bookings_amount"), rel=1e-9)


def test_leaderboard_ranks_reps_by_bookings(all_panels, view):
    table = all_panels["leaderboard"].table
    assert "rep_id" in table.columns and table["rep_id"].is_unique
    assert table["rank"].is_monotonic_increasing and table["rank"].iloc[0] == 1
    assert table["bookings_amount"].is_monotonic_decreasing
    assert table["bookings_amount"].sum() == pytest.approx(kpi(view, "bookings_amount"), rel=1e-9)
    teams = panels.leaderboard_panel(view, by="team")
    assert teams.title.startswith("Leaderboard: teams by") and "team_id" in teams.columns
    assert set(teams.columns) <= set(teams.table.columns)


def test_attainment_and_follow_ups_panels(all_panels, view):
    attainment = all_panels["attainment"]
    assert attainment.title == "Target attainment by team" and len(attainment.table) == len(view.tables["teams"])
    by_rep = panels.attainment_panel(view, level="rep")
    assert by_rep.title == "Target attainment by rep" and len(by_rep.table) > len(attainment.table)
    assert set(by_rep.columns) <= set(by_rep.table.columns)
    follow = all_panels["follow_ups"]
    assert follow.title == f"Forgotten customers by rep ({view.params.forgotten_days}+ days silent)"
    assert (follow.table["n_forgotten_accounts"] <= follow.table["n_owned_accounts"]).all()


def test_bookings_trend_ends_with_the_views_last_month(all_panels):
    table = all_panels["bookings_trend"].table
    assert str(table["period"].iloc[-1]) == "2026-09"
    assert len(table) == 12  # four quarters of months
    assert table["bookings_amount"].notna().all()


def test_panels_note_a_filter_they_cannot_apply(board):
    v = board.view(st.FilterState(product_line="Cloud"))
    assert panels.funnel_panel(v).note == "not filtered by product line"
    assert panels.follow_ups_panel(v).note == "not filtered by product line"
    assert panels.pipeline_panel(v).note is None
    assert panels.pipeline_panel(v).table["n_opportunities"].sum() == len(v.tables["opportunities"])


def test_panels_of_an_empty_period_say_no_data(board):
    v = board.view(st.FilterState(period="2020-Q1"))  # before the demo's history
    for key in ("funnel", "bookings_trend", "attainment", "follow_ups"):
        p = PANELS[key](v)
        assert p.no_data == "No data for this period", key
        assert p.figure is None and p.table is None, key


# ------------------------------------------------------------------------------------------ Maven

@pytest.mark.parametrize(("key", "table"), [("funnel", "leads"), ("attainment", "targets"),
                                            ("follow_ups", "activities")])
def test_maven_panels_name_the_missing_table(maven_view, key, table):
    p = PANELS[key](maven_view)
    assert p.no_data.startswith("No data: this source has no")
    assert p.no_data == f"No data: this source has no `{table}` table"
    assert p.figure is None and p.table is None and p.finding == ""


@pytest.mark.parametrize("key", ["bookings_trend", "pipeline", "leaderboard", "regions"])
def test_maven_panels_with_opportunities_draw(maven_view, key):
    p = PANELS[key](maven_view)
    assert p.no_data is None and p.figure is not None and len(p.table) > 0


def test_maven_funnel_records_are_empty_and_regions_drill(maven_view):
    assert funnel_records(maven_view, "lead").empty
    assert set(drill_table(maven_view, "region").table["region_id"]) == {"Central", "East", "West"}


# ------------------------------------------------------------------------------------------ drill-down

def test_drill_levels():
    assert DRILL_LEVELS == ("region", "team", "rep", "opportunity")


def test_drill_regions(view):
    t = drill_table(view, "region")
    assert (t.level, t.key, t.no_data) == ("region", "region_id", None)
    assert set(t.table["region_id"]) == set(REGION_IDS)
    assert list(t.columns)[:2] == ["region_id", "name"] and t.columns["region_id"] == "Region"
    assert list(t.table.columns) == list(t.columns)
    assert t.table["bookings_amount"].sum() == pytest.approx(kpi(view, "bookings_amount"), rel=1e-9)


def test_drill_teams_of_a_region(east):
    t = drill_table(east, "team")
    assert t.key == "team_id" and set(t.table["team_id"]) == {"East-1", "East-2"}
    assert t.table["bookings_amount"].sum() == pytest.approx(kpi(east, "bookings_amount"), rel=1e-9)
    assert t.table["n_won"].sum() == kpi(east, "won_deals")


def test_drill_reps_of_a_team(east):
    reps = east.tables["reps"]
    members = set(reps.loc[reps["team_id"] == "East-1", "rep_id"])
    t = drill_table(east, "rep", team="East-1")
    assert t.key == "rep_id" and len(t.table) > 0
    assert set(t.table["rep_id"]) <= members
    everyone = drill_table(east, "rep")
    assert set(everyone.table["rep_id"]) > set(t.table["rep_id"])
    assert drill_table(east, "rep", team="No-such-team").no_data == "No rep in this slice"


def test_drill_opportunities_of_a_rep(east):
    opps = east.tables["opportunities"]
    rep = opps["owner_rep_id"].value_counts().index[0]
    t = drill_table(east, "opportunity", rep=rep)
    assert t.key == "opportunity_id" and t.no_data is None
    assert set(t.table["opportunity_id"]) == set(opps.loc[opps["owner_rep_id"] == rep, "opportunity_id"])
    assert list(t.table.columns) == list(t.columns) == list(panels.OPPORTUNITY_COLUMNS)
    amounts = t.table["amount"].dropna()
    assert amounts.is_monotonic_decreasing
    nobody = drill_table(east, "opportunity", rep="R9999")
    assert nobody.table.empty and nobody.no_data == "No opportunity of this rep in the period"


def test_drill_table_refuses_bad_arguments(view):
    with pytest.raises(ParameterError, match=r"^level: 'country' is not a drill-down level"):
        drill_table(view, "country")
    with pytest.raises(ParameterError, match=r"^rep: the opportunity level needs a rep_id"):
        drill_table(view, "opportunity")


# ------------------------------------------------------------------------------------------ funnel records

@pytest.mark.parametrize("region", ["all", "East"])
def test_funnel_records_count_equals_the_funnel(board, region):
    v = board.view(st.FilterState(region=region))
    steps = funnel.lead_funnel(v.tables["leads"], v.tables.get("opportunities"), v.ctx()).set_index("step_id")
    for step in funnel.STEPS:
        records = funnel_records(v, step)
        assert len(records) == steps.loc[step, "n_leads"], step
        assert records["lead_id"].is_unique
        if region != "all":
            assert set(records["region_id"]) <= {region}
    assert set(funnel_records(v, "won")["lead_id"]) <= set(funnel_records(v, "opportunity")["lead_id"])


def test_funnel_records_refuse_an_unknown_step(view):
    with pytest.raises(ParameterError, match=r"^step: 'closed' is not a funnel step; use one of lead, mql"):
        funnel_records(view, "closed")


def test_panel_of_a_table_not_loaded_says_no_data(tiny_demo):
    board = DashboardData(data.connect(str(tiny_demo)), tables=("opportunities",))
    p = panels.funnel_panel(board.view(st.FilterState()))
    assert p.no_data is not None and p.figure is None


# ------------------------------------------------------------------------------------------- 中文

def test_chinese_panels_have_chinese_titles_and_headings_and_the_same_tables(view, all_panels):
    from crmlens import i18n

    with i18n.language("zh"):
        chinese = {key: PANELS[key](view) for key in SALES}
        drill = drill_table(view, "region")
    for key, en in all_panels.items():
        zh = chinese[key]
        assert i18n.has_cjk(zh.title) and zh.title != en.title, key
        assert list(zh.columns) == list(en.columns), key
        assert any(i18n.has_cjk(h) for h in zh.columns.values()), key
        numbers = en.table.select_dtypes("number").columns
        pd.testing.assert_frame_equal(zh.table[numbers], en.table[numbers])  # the same numbers
    assert chinese["funnel"].title == "线索漏斗" and chinese["funnel"].columns["drop_off_rate"] == "流失率"
    assert chinese["follow_ups"].title.startswith("各销售代表的遗忘客户（")
    assert drill.columns["region_id"] == "区域" and list(drill.table["region_id"]) == \
        list(drill_table(view, "region").table["region_id"])
