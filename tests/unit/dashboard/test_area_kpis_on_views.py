"""The headline KPIs of the marketing, market and products notebooks on a dashboard's in-memory View, under the
filter bar (region, period, comparison, team, product line): the same values as the engine's slice with the same
filters applied (`crmlens.dashboard.state.apply_filters`), so a notebook's headline numbers and a dashboard tile
never disagree."""

from __future__ import annotations

import pytest

from crmlens import data, kpis, notebook
from crmlens.dashboard import state as st
from crmlens.dashboard.model import DashboardData
from crmlens.metrics import market, marketing, products

MARKETING_KPIS = [*marketing.headline_kpis(None), *market.headline_kpis(None), *products.headline_kpis(None)]
STATES = [st.FilterState(), st.FilterState(region="East", comparison="last_year"),
          st.FilterState(period="2026-Q2", region="West", team="West-1"),
          st.FilterState(region="South", product_line="Cloud")]


@pytest.fixture(scope="module")
def con(tiny_demo):
    return data.connect(str(tiny_demo))


@pytest.fixture(scope="module")
def board(con) -> DashboardData:
    return DashboardData(con, tables=("opportunities", "leads", "campaign_events", "contracts", "tickets"))


def same(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and a == pytest.approx(b, rel=1e-9))


@pytest.mark.parametrize("state", STATES, ids=lambda s: st.to_query(s) or "default")
def test_marketing_kpis_of_a_view_equal_the_engine_slice(board, con, state):
    v = board.view(state)
    s = data.open_slice(st.to_params(state, data.data_as_of(con)), con)
    for which in ("current", "comparison"):
        mine = v.tables if which == "current" else v.comparison
        theirs = st.apply_filters(s.tables if which == "current" else s.comparison, state)
        for name in MARKETING_KPIS:
            a, b = kpis.compute_kpi(name, mine, v.ctx(which)), kpis.compute_kpi(name, theirs,
                                                                              notebook.context(s, which))
            assert same(a, b), f"{name} ({which}): view {a!r} != engine {b!r}"
    assert kpis.compute_kpi("campaign_leads", v.tables, v.ctx()) is not None


def test_a_team_filter_narrows_the_campaign_leads(board):
    whole = kpis.compute_kpi("campaign_leads", board.view(st.FilterState(region="East")).tables,
                             board.view(st.FilterState(region="East")).ctx())
    team = board.view(st.FilterState(region="East", team="East-1"))
    assert 0 < kpis.compute_kpi("campaign_leads", team.tables, team.ctx()) < whole
