"""Record drill-downs (`crmlens.dashboard.records`) on the tiny demo: the choices each view offers, the records
of a chosen campaign / product / customer (all of them belong to it), and the widget following filter states."""

from __future__ import annotations

import dataclasses

import pytest

from crmlens.dashboard import state as st
from crmlens.dashboard.model import DashboardData
from crmlens.dashboard.records import (
    MAX_CHOICES,
    RECORDS,
    RecordsDrill,
    customer_choices,
    product_choices,
    records_result,
)
from crmlens.dashboard.views import VIEWS
from crmlens.schema import SCHEMA

STATE = st.FilterState(period="2026-Q3")


@pytest.fixture(scope="module")
def board(tiny_demo) -> DashboardData:
    return DashboardData.load(str(tiny_demo), tables=[n for n, t in SCHEMA.items() if t.kind == "fact"])


def test_views_name_known_record_drills():
    for spec in VIEWS.values():
        assert set(spec.records) <= set(RECORDS), spec.name
    assert VIEWS["marketing"].records and VIEWS["customer_service"].records and VIEWS["sales_rep"].records


def test_every_campaign_is_a_choice_and_its_leads_are_its_own(board):
    v = board.view(STATE)
    choices = RECORDS["campaign_leads"].choices(v)
    ids = [i for _label, i in choices]
    assert set(ids) <= set(board.frames["campaigns"]["campaign_id"].astype(str)) and len(ids) == len(set(ids))
    assert len(ids) == min(MAX_CHOICES, board.frames["campaigns"]["campaign_id"].nunique())
    leads = board.frames["leads"]
    counts = leads[leads["created_at"].between("2026-07-01", "2026-09-30 23:59:59")]["campaign_id"].value_counts()
    busiest = ids[0]
    assert counts[busiest] == counts.max() and set(ids[:len(counts)]) == set(counts.index.astype(str))
    result = records_result(board, STATE, "campaign_leads", busiest)
    assert result.no_data is None and len(result.table) == counts.max()
    ids = set(result.table["lead_id"].astype(str))
    assert set(leads.loc[leads["lead_id"].astype(str).isin(ids), "campaign_id"].astype(str)) == {busiest}


def test_products_with_most_tickets_come_first_and_customers_follow_the_rep(board):
    v = board.view(STATE)
    products = product_choices(v)
    counts = v.tables["tickets"]["product_id"].astype(str).value_counts()
    assert counts[products[0][1]] == counts.max() and len(products) == len(counts)
    table = records_result(board, STATE, "product_tickets", products[0][1]).table
    assert len(table) == counts.max()
    rep = board.options["reps"][0]
    mine = customer_choices(board.view(dataclasses.replace(STATE, rep=rep)))
    accounts = board.frames["accounts"].set_index("account_id")
    assert mine and (accounts.loc[[i for _label, i in mine], "owner_rep_id"].astype(str) == rep).all()
    history = records_result(board, STATE, "customer_history", mine[0][1])
    assert history.no_data is None or "No record" in history.no_data


def test_the_widget_lists_choices_shows_records_and_keeps_a_choice_across_states(board):
    state = {"now": STATE}
    drill = RecordsDrill(board, "campaign_leads", lambda: state["now"])
    drill.reset()
    assert drill.choice.options[0][1] == "" and len(drill.choice.options) > 2 and drill.table.value == ""
    chosen = drill.choice.options[1][1]
    drill.open(chosen)
    assert "crmlens-records-count" in drill.table.value and drill.current is not None
    state["now"] = dataclasses.replace(STATE, language="zh")
    drill.reset()
    assert drill.choice.value == chosen and drill.choice.description == "营销活动"
    missing = records_result(board, STATE, "campaign_leads", "NOPE")
    assert missing.no_data == "No campaign NOPE in this source"
