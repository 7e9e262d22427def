"""Tests of the marketing and customer-service panels of crmlens.dashboard.panels on the tiny demo: each draws a
figure and the table of the metric it shows (the same numbers as the metric called on the same View), says "no
data" naming the table a source lacks, the attribution model switcher, the drill-down record tables
(`campaign_leads`, `product_tickets`, `customer_history`) and their Chinese titles."""

from __future__ import annotations

import shutil

import pandas as pd
import plotly.graph_objects as go
import pytest

from crmlens import data, i18n
from crmlens.dashboard import panels
from crmlens.dashboard import state as st
from crmlens.dashboard.model import DashboardData
from crmlens.dashboard.panels import (
    ATTRIBUTION_MODELS,
    PANEL_TABLES,
    PANELS,
    Panel,
    attribution_panel,
    campaign_leads,
    customer_history,
    product_tickets,
)
from crmlens.errors import ParameterError
from crmlens.metrics import customers, funnel, health, marketing, products
from crmlens.schema import SCHEMA

MARKETING = ("campaign_roi", "channel_efficiency", "lead_sources", "campaign_funnel", "attribution",
             "engagement_trend")
SERVICE = ("satisfaction_trend", "satisfaction_drivers", "service_levels", "complaint_hotspots", "at_risk_customers")
NEW = MARKETING + SERVICE
#: The fact tables the new panels read: what their dashboards load.
FACTS = tuple(sorted({t for key in NEW for t in PANEL_TABLES[key]}))


@pytest.fixture(scope="module")
def board(tiny_demo) -> DashboardData:
    return DashboardData.load(str(tiny_demo), tables=FACTS)


@pytest.fixture(scope="module")
def view(board):
    return board.view(st.FilterState())


@pytest.fixture(scope="module")
def made(view) -> dict[str, Panel]:
    return {key: PANELS[key](view) for key in NEW}


@pytest.fixture(scope="module")
def narrow(tiny_demo):
    """A view of the tiny demo that loaded none of the fact tables the new panels read."""
    return DashboardData(data.connect(str(tiny_demo)), tables=("campaign_metrics",)).view(st.FilterState())


@pytest.fixture(scope="module")
def stripped(tiny_demo, tmp_path_factory):
    """A view of a copy of the tiny demo without its campaigns and accounts tables."""
    folder = tmp_path_factory.mktemp("demo_tiny_stripped")
    for f in tiny_demo.iterdir():
        if f.stem not in ("campaigns", "accounts"):
            shutil.copy(f, folder / f.name)
    return DashboardData.load(str(folder), tables=("leads", "opportunities")).view(st.FilterState())


# ------------------------------------------------------------------------------------------ registries

def test_new_panels_are_registered_after_the_sales_panels():
    assert list(PANELS)[7:7 + len(NEW)] == list(NEW)  # after the sales panels, before the rep and executive ones
    assert PANELS["attribution"] is attribution_panel


def test_panel_tables_name_the_fact_tables_of_every_panel():
    assert set(PANEL_TABLES) == set(PANELS)
    for key, tables in PANEL_TABLES.items():
        assert tables and all(SCHEMA[t].kind == "fact" for t in tables), key
    assert PANEL_TABLES["service_levels"] == ("tickets",) and "surveys" in PANEL_TABLES["satisfaction_trend"]
    assert "campaign_events" in PANEL_TABLES["attribution"]


# ------------------------------------------------------------------------------------------ every new panel

@pytest.mark.parametrize("key", NEW)
def test_every_new_panel_draws_its_table(made, key):
    p = made[key]
    assert p.key == key and p.title
    assert p.no_data is None and p.note is None
    assert isinstance(p.figure, go.Figure) and len(p.figure.data) > 0
    assert p.figure.layout.height >= 300 and p.figure.layout.title.text is None
    assert isinstance(p.table, pd.DataFrame) and len(p.table) > 0
    assert p.columns and set(p.columns) <= set(p.table.columns), f"{key}: {list(p.columns)} vs {list(p.table.columns)}"


def _call_list(v):
    return health.call_list(v, health.churn_model(v, customers.purchase_history(v)))


def _hotspots(v):
    return products.complaint_hotspots(products.complaint_trend_of(v, "product_id"),
                                       products.feedback_of(v, "product_id"))


#: Per panel: the metric it shows, called on the view as the notebooks call it, and columns to compare.
METRICS = {
    "campaign_roi": (marketing.channel_roi, ["channel", "cost_amount", "n_leads", "n_won", "roi", "cost_per_lead",
                                             "cpa"]),
    "channel_efficiency": (marketing.channel_efficiency_of, ["channel", "n_leads", "sql_rate", "lead_to_won_rate",
                                                             "won_amount"]),
    "lead_sources": (marketing.channel_mix_of, ["period", "channel", "n_leads", "lead_share", "cost_amount"]),
    "campaign_funnel": (marketing.campaign_funnel_of, ["campaign_id", "n_exposed", "n_engagements", "n_leads",
                                                       "n_opportunities", "n_won"]),
    "attribution": (marketing.attribution_of, ["channel", "first_touch", "last_touch", "markov", "vs_last_touch"]),
    "engagement_trend": (marketing.engagement_trend_of, ["period", "event_type", "n_events"]),
    "satisfaction_trend": (health.satisfaction_trend, ["period", "n_responses", "csat_mean", "nps"]),
    "satisfaction_drivers": (health.csat_drivers, ["n_with", "csat_with", "csat_effect", "p_value"]),
    "service_levels": (lambda v: health.service_levels(v, "category"),
                       ["segment", "n_opened", "n_resolved", "n_backlog", "first_response_met", "resolution_met"]),
    "complaint_hotspots": (_hotspots, ["product_id", "n_complaints", "complaint_growth", "tickets_per_customer"]),
    "at_risk_customers": (_call_list, ["account", "risk", "revenue_at_risk"]),
}


@pytest.mark.parametrize("key", NEW)
def test_panel_tables_hold_the_metrics_numbers(made, view, key):
    metric, columns = METRICS[key]
    expected = metric(view)
    table = made[key].table
    assert len(table) == len(expected) > 0
    pd.testing.assert_frame_equal(table[columns].reset_index(drop=True), expected[columns].reset_index(drop=True),
                                  check_dtype=False)


def test_campaign_roi_shows_cost_per_won_customer_and_the_money_losers(made):
    p = made["campaign_roi"]
    assert {"cost_amount", "n_leads", "n_won", "roi", "cpa", "cost_per_lead"} <= set(p.columns)
    assert p.columns["cpa"] == "Cost per won customer (CPA)"
    losing = p.table.loc[p.table["roi"] < 0, "channel"]
    assert len(losing) and all(name in p.finding for name in losing)


def test_service_levels_draws_the_monthly_trend_and_finds_the_backlog(made, view):
    p = made["service_levels"]
    trend = health.ticket_trend(view, freq="month")
    assert list(p.figure.data[0].y) == list(trend["n_opened"])
    backlog = int(health.service_levels(view)["n_backlog"].iloc[0])
    assert f"{backlog} are open" in p.finding


def test_complaint_hotspots_are_by_product_with_names(made, view):
    table = made["complaint_hotspots"].table
    assert table["product_id"].is_unique
    assert set(table["product_id"]) <= set(view.tables["products"]["product_id"])
    names = view.tables["products"].set_index("product_id")["name"]
    assert list(table["name"]) == [names[p] for p in table["product_id"]]


def test_at_risk_customers_lists_risky_customers_with_reasons(made):
    table = made["at_risk_customers"].table
    assert (table["risk"] >= 0.3).all() and table["reasons"].str.len().gt(0).all()
    assert "churn risk" in made["at_risk_customers"].finding


def test_one_churn_model_scores_every_region_and_period_ending_at_the_same_time(board, view):
    """The at-risk panel's model is the whole company's at the reference time: fitted once, a region view only
    keeps its customers' scores (the same risks), and a period ending at the same time reuses it."""
    company = panels.company_churn_model(view)
    region = board.options["regions"][0]
    east = board.view(st.FilterState(region=region))
    fits = []
    board.memo = _counting(board.memo, fits)  # every compute the memo runs
    try:
        mine = panels.slice_scores(panels.company_churn_model(east), east)
        assert panels.company_churn_model(board.view(st.FilterState(period="last_12_months"))) is company
    finally:
        del board.memo
    assert fits == []  # nothing fitted again
    accounts = board.frames["accounts"]
    theirs = set(accounts.loc[accounts["region_id"] == region, "account_id"].astype(str))
    assert 0 < len(mine.scores) < len(company.scores) and set(mine.scores["account_id"].astype(str)) <= theirs
    risks = company.scores.set_index("account_id")["risk"]
    assert mine.scores.set_index("account_id")["risk"].equals(risks.loc[mine.scores["account_id"]])
    table = PANELS["at_risk_customers"](east).table
    assert set(table["account"]) <= set(accounts.loc[accounts["region_id"] == region, "name"]) | theirs


def _counting(memo, fits):
    def counted(key, compute):
        return memo(key, lambda: fits.append(key) or compute())
    return counted


# ------------------------------------------------------------------------------------------ missing tables

@pytest.mark.parametrize(("key", "table"), [
    ("channel_efficiency", "leads"), ("lead_sources", "leads"), ("attribution", "campaign_events"),
    ("engagement_trend", "campaign_events"), ("satisfaction_trend", "surveys"), ("satisfaction_drivers", "surveys"),
    ("service_levels", "tickets"), ("complaint_hotspots", "tickets")])
def test_a_panel_without_its_fact_table_says_no_data(narrow, key, table):
    p = PANELS[key](narrow)
    assert p.no_data.startswith("No data: this source has no") and f"`{table}`" in p.no_data, p.no_data
    assert p.figure is None and p.table is None and p.finding == ""


@pytest.mark.parametrize(("key", "table"), [("campaign_roi", "campaigns"), ("campaign_funnel", "campaigns"),
                                            ("at_risk_customers", "accounts")])
def test_a_panel_of_a_source_without_its_dimension_says_no_data(stripped, key, table):
    p = PANELS[key](stripped)
    assert p.no_data == f"No data: this source has no `{table}` table"
    assert p.figure is None and p.table is None


def test_lead_sources_draw_without_campaigns(stripped):
    p = PANELS["lead_sources"](stripped)
    assert p.no_data is None and len(p.table) > 0 and "cost_amount" not in p.table


# ------------------------------------------------------------------------------------------ attribution switcher

def test_attribution_models_are_the_metrics():
    assert ATTRIBUTION_MODELS == marketing.ALL_MODELS
    assert ATTRIBUTION_MODELS[:2] == ("first_touch", "last_touch") and "markov" in ATTRIBUTION_MODELS


@pytest.mark.parametrize("model", ATTRIBUTION_MODELS)
def test_attribution_panel_emphasises_one_model(view, made, model):
    p = attribution_panel(view, model=model)
    assert p.no_data is None
    assert list(p.columns)[:2] == ["channel", model] and list(p.table.columns)[:2] == ["channel", model]
    assert p.table[model].is_monotonic_decreasing
    assert len(p.figure.data) == 1  # that model's bars alone
    assert p.title.startswith("Attribution: share of the credit by channel, ")
    every = made["attribution"].table.set_index("channel")
    shown = p.table.set_index("channel")
    pd.testing.assert_frame_equal(shown[list(every.columns)], every.loc[shown.index], check_dtype=False)
    assert p.finding == made["attribution"].finding


def test_attribution_panel_refuses_an_unknown_model(view):
    with pytest.raises(ParameterError, match=r"^model: 'best' is not an attribution model; use one of "
                                             r"first_touch, last_touch, linear, u_shaped, w_shaped, time_decay, "
                                             r"markov, shapley$"):
        attribution_panel(view, model="best")


# ------------------------------------------------------------------------------------------ drill-down records

def test_campaign_leads_are_the_campaigns_leads_of_the_period(view):
    leads = view.tables["leads"]
    campaign = leads["campaign_id"].value_counts().index[0]
    t = campaign_leads(view, campaign)
    assert (t.level, t.key, t.no_data) == ("lead", "lead_id", None)
    assert set(t.table["lead_id"]) == set(leads.loc[leads["campaign_id"] == campaign, "lead_id"])
    assert list(t.table.columns) == list(t.columns) and t.columns["stage"] == "Stage reached"
    assert set(t.table["stage"]) <= set(funnel.STEP_LABELS.values())
    assert t.table["created_at"].is_monotonic_decreasing
    opps = view.tables["opportunities"].set_index("opportunity_id")["account_id"]
    became = leads.set_index("lead_id")["opportunity_id"]
    for lead, account in zip(t.table["lead_id"], t.table["account_id"], strict=True):
        assert pd.isna(account) or opps[became[lead]] == account


def test_campaign_leads_of_an_unknown_campaign_or_source_without_campaigns(view, stripped):
    bad = campaign_leads(view, "CMP-NOPE")
    assert bad.table.empty and bad.no_data == "No campaign CMP-NOPE in this source"
    assert campaign_leads(stripped, "CMP00001").no_data == "No data: this source has no `campaigns` table"


def test_product_tickets_are_the_products_tickets(view):
    tickets = view.tables["tickets"]
    product = tickets["product_id"].value_counts().index[0]
    t = product_tickets(view, product)
    assert (t.level, t.key, t.no_data) == ("ticket", "ticket_id", None)
    assert set(t.table["ticket_id"]) == set(tickets.loc[tickets["product_id"] == product, "ticket_id"])
    assert list(t.table.columns) == list(t.columns)
    assert {"opened_at", "category", "priority", "status", "first_response_at", "resolved_at"} <= set(t.columns)
    assert (t.table["status"] == "Resolved").tolist() == t.table["resolved_at"].notna().tolist()
    assert t.table["opened_at"].is_monotonic_decreasing


def test_product_tickets_of_an_unknown_product_or_source_without_tickets(view, narrow):
    bad = product_tickets(view, "P99")
    assert bad.table.empty and bad.no_data == "No product P99 in this source"
    assert product_tickets(narrow, "P01").no_data == "No data: this source has no `tickets` table"


def test_customer_history_gathers_one_customers_records(view):
    counts = pd.concat([view.tables[t]["account_id"] for t in ("activities", "opportunities", "tickets", "surveys")])
    account = counts.value_counts().index[0]
    t = customer_history(view, account)
    assert t.no_data is None and list(t.table.columns) == list(t.columns)
    ids = {"Activity": "activity_id", "Opportunity": "opportunity_id", "Ticket": "ticket_id",
           "Survey response": "survey_id"}
    tables = {"Activity": "activities", "Opportunity": "opportunities", "Ticket": "tickets",
              "Survey response": "surveys"}
    assert set(t.table["kind"]) <= set(ids) and t.table["kind"].nunique() >= 2
    for kind, rows in t.table.groupby("kind"):
        frame = view.tables[tables[kind]]
        mine = frame.loc[frame["account_id"] == account, ids[kind]]
        assert set(rows["record_id"]) == set(mine), kind
    assert len(t.table) == int((counts == account).sum())
    assert t.table["at"].dropna().is_monotonic_decreasing
    surveys = t.table[t.table["kind"] == "Survey response"]
    assert surveys["csat"].notna().all() or surveys.empty


def test_customer_history_of_an_unknown_customer_or_source_without_its_tables(view, narrow):
    bad = customer_history(view, "A99999")
    assert bad.table.empty and bad.no_data == "No customer A99999 in this source"
    none = customer_history(narrow, "A00001")
    assert none.no_data.startswith("No data: this source has no") and "`tickets`" in none.no_data


# ------------------------------------------------------------------------------------------ 中文

def test_chinese_panels_and_drill_headings(view, made):
    with i18n.language("zh"):
        roi = panels.campaign_roi_panel(view)
        service = panels.service_levels_panel(view)
        tickets = product_tickets(view, view.tables["tickets"]["product_id"].iloc[0])
    for zh, en in ((roi, made["campaign_roi"]), (service, made["service_levels"])):
        assert i18n.has_cjk(zh.title) and zh.title != en.title
        assert list(zh.columns) == list(en.columns) and any(i18n.has_cjk(h) for h in zh.columns.values())
        numbers = en.table.select_dtypes("number").columns
        pd.testing.assert_frame_equal(zh.table[numbers], en.table[numbers])
    assert "营销" in roi.title or "渠道" in roi.title
    assert service.columns["segment"] == "工单类别" and tickets.columns["category"] == "工单类别"
    assert all(i18n.has_cjk(h) for h in tickets.columns.values())
    assert set(tickets.table["status"]) <= {"已解决", "未解决"}
