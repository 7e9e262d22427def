"""The sales rep view's panels ("my day") and the executive view's additions (`crmlens.dashboard.panels_roles`)
on the tiny demo: each panel's numbers are the library's for the same slice, the rep panels keep only the rep's
rows and agree with the rep filter of the tiles, and sources lacking a table say so."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from crmlens import kpis
from crmlens.dashboard import state as st
from crmlens.dashboard.model import DashboardData
from crmlens.dashboard.panels_roles import CHOOSE_REP, NOTHING_STANDS_OUT, ROLE_PANEL_TABLES, ROLE_PANELS
from crmlens.i18n import language
from crmlens.metrics import customers, market, myday
from crmlens.schema import SCHEMA

FACTS = [n for n, t in SCHEMA.items() if t.kind == "fact"]
STATE = st.FilterState(period="2026-Q3")


@pytest.fixture(scope="module")
def board(tiny_demo) -> DashboardData:
    return DashboardData.load(str(tiny_demo), tables=FACTS)


@pytest.fixture(scope="module")
def rep(board) -> str:
    """The rep with the most open deals at the end of the period."""
    opps = board.frames["opportunities"]
    open_ = opps[opps["closed_at"].isna() | (opps["closed_at"] >= pd.Timestamp("2026-10-01"))]
    return str(open_["owner_rep_id"].value_counts().index[0])


@pytest.fixture(scope="module")
def busy_rep(board) -> str:
    """The rep with the most due or overdue activities at the end of the period."""
    v = board.view(STATE)
    counts = {r: len(myday.agenda_of(v, r)) for r in board.options["reps"]}
    return max(counts, key=lambda r: (counts[r], r))


@pytest.fixture(scope="module")
def mine(board, rep):
    v = board.view(dataclasses.replace(STATE, rep=rep))
    return v, {key: build(v) for key, build in ROLE_PANELS.items()}


def test_every_panel_has_its_tables_listed_and_draws_on_the_demo(mine):
    _, made = mine
    assert set(ROLE_PANEL_TABLES) == set(ROLE_PANELS)
    for key, p in made.items():
        if key == "my_agenda" and p.no_data:  # this rep has nothing due (`busy_rep` has, below)
            assert p.no_data == "No data for this period"
            continue
        if key == "my_churn_risk" and p.no_data:  # none of this rep's customers at risk (see the test below)
            assert p.no_data == "None of my customers has a churn risk of 30% or more."
            continue
        if key == "exceptions":  # one rep's numbers: no region stands out (the unfiltered view's below)
            assert p.no_data == NOTHING_STANDS_OUT
            continue
        assert p.key == key and p.title and p.no_data is None, (key, p.no_data)
        assert p.figure is not None and p.table is not None and len(p.table), key
        assert set(p.columns) <= set(p.table.columns), key


def test_my_pipeline_is_the_reps_open_deals_whoever_did_the_activity(board, rep, mine):
    _, made = mine
    table = made["my_pipeline"].table
    unfiltered = board.view(STATE)
    assert table.equals(myday.pipeline_of(unfiltered, rep))
    opps = board.frames["opportunities"].set_index("opportunity_id")
    assert (opps.loc[table["opportunity_id"], "owner_rep_id"].astype(str) == rep).all()
    closed = opps.loc[table["opportunity_id"], "closed_at"]
    assert (closed.isna() | (closed > pd.Timestamp("2026-09-30"))).all()
    mine_all = opps[(opps["owner_rep_id"].astype(str) == rep) & opps["closed_at"].isna()
                    & (opps["created_at"] < pd.Timestamp("2026-10-01"))]
    assert set(mine_all.index) <= set(table["opportunity_id"])  # every deal still open is listed
    assert made["my_pipeline"].finding.startswith(f"{len(table)} open deal")


def test_my_attainment_agrees_with_the_rep_filter_of_the_tiles(mine, rep):
    v, made = mine
    row = made["my_attainment"].table
    assert list(row["key"].astype(str)) == [rep]
    assert row["bookings_amount"].iloc[0] == pytest.approx(kpis.compute_kpi("bookings_amount", v.tables, v.ctx()))


def test_my_agenda_and_my_customers_keep_the_reps_rows(board, mine, rep, busy_rep):
    _, made = mine
    agenda = ROLE_PANELS["my_agenda"](board.view(dataclasses.replace(STATE, rep=busy_rep))).table
    assert agenda is not None and len(agenda)
    rep_of_agenda = busy_rep
    acts = board.frames["activities"].set_index("activity_id")
    assert (acts.loc[agenda["activity_id"], "rep_id"].astype(str) == rep_of_agenda).all()
    assert set(agenda["status"]) <= {"overdue", "due"}
    calls = made["my_customers"].table
    assert (calls["owner_rep_id"].astype(str) == rep).all() and list(calls["priority"]) == list(
        range(1, len(calls) + 1))


def test_rep_panels_ask_for_a_rep_and_the_zh_view_is_chinese(board):
    v = board.view(STATE)
    for key in ("my_attainment", "my_pipeline", "my_agenda", "my_customers"):
        p = ROLE_PANELS[key](v)
        assert p.no_data == CHOOSE_REP and p.figure is None, key
    with language("zh"):
        assert ROLE_PANELS["my_pipeline"](v).title == "我的在途商机：下一步与停滞商机"


def test_executive_panels_show_the_librarys_numbers(board):
    v = board.view(STATE)
    share = ROLE_PANELS["market_share"](v)
    assert share.table.equals(market.share_change_of(v))
    base = ROLE_PANELS["customer_base"](v)
    assert base.table.equals(customers.customer_base(v, customers.purchase_history(v)))
    forecast = ROLE_PANELS["forecast"](v)
    assert set(forecast.table["group"]) == set(board.options["regions"])
    assert forecast.finding.startswith("For 2026-Q4")
    alerts = ROLE_PANELS["exceptions"](v)
    assert alerts.no_data in (None, NOTHING_STANDS_OUT)
    if alerts.table is not None:
        assert set(alerts.table["region"]) <= set(board.options["regions"])
    east = ROLE_PANELS["forecast"](board.view(dataclasses.replace(STATE, region="East")))
    assert east.table is not None and len(east.table)  # a region's forecast is by team


def test_a_source_without_the_tables_says_so(maven_con):
    v = DashboardData(maven_con).view(st.FilterState(period="2017"))
    assert "market" in (ROLE_PANELS["market_share"](v).no_data or "")
    assert "contracts" in (ROLE_PANELS["customer_base"](v).no_data or "")
    rep = DashboardData(maven_con).options["reps"][0]
    agenda = ROLE_PANELS["my_agenda"](DashboardData(maven_con).view(st.FilterState(period="2017", rep=rep)))
    assert "activities" in (agenda.no_data or "")


def test_my_churn_risk_is_the_company_models_risk_of_the_reps_own_customers(board):
    """The rep's customers at risk: the whole company's churn model (the customer service view's), only the
    accounts the rep owns, risk ≥ 0.3, biggest revenue at risk first; the chart's bars are keyed by account id."""
    from crmlens.dashboard.panels import company_churn_model

    v = board.view(STATE)
    model = company_churn_model(v)
    owners = board.frames["accounts"].drop_duplicates("account_id").set_index("account_id")["owner_rep_id"]
    risky = model.scores[model.scores["risk"] >= 0.3]
    per_rep = risky["account_id"].map(owners).astype(str).value_counts()
    rep = str(per_rep.index[0])  # the rep with the most customers at risk
    p = ROLE_PANELS["my_churn_risk"](board.view(dataclasses.replace(STATE, rep=rep)))
    table = p.table
    assert p.no_data is None and 0 < len(table) <= 10
    assert (table["account_id"].map(owners).astype(str) == rep).all()
    expected = model.scores.set_index("account_id")["risk"]
    assert table["risk"].tolist() == expected.loc[table["account_id"]].tolist()
    assert (table["risk"] >= 0.3).all() and table["revenue_at_risk"].is_monotonic_decreasing
    assert len(table) == min(10, int(per_rep.iloc[0]))
    assert list(p.figure.data[0].ids) == table["account_id"].iloc[::-1].tolist()
    assert "churn risk" in p.finding
