"""Marketing: campaign ROI and rule-based attribution on hand-computed fixtures, and the demo's planted channel
ROI (referral best, trade shows losing money) recovered."""

from __future__ import annotations

import pandas as pd
import pytest

from crmlens import data, params
from crmlens.errors import ParameterError
from crmlens.kpis import KpiContext
from crmlens.metrics import marketing as mk
from crmlens.truths import CHANNEL_ROI

T = pd.Timestamp
Q3 = KpiContext(period_start=T("2026-07-01"), period_end=T("2026-10-01"), region="all", period_label="2026-Q3")


def ts(values):
    return pd.to_datetime(pd.Series(values), format="ISO8601").astype("datetime64[us]")


def frames():
    campaigns = pd.DataFrame({
        "campaign_id": ["c1", "c2", "c3", "c4"], "channel": ["email", "email", "trade_show", "email"],
        "started_at": ts(["2026-06-01", "2026-07-15", "2026-08-01", "2026-01-01"]),
        "ended_at": ts(["2026-07-31", None, "2026-08-03", "2026-03-31"]),  # c4 ended before Q3: not active
        "cost_amount": [100.0, 300.0, 1000.0, 50.0]})
    leads = pd.DataFrame({
        "lead_id": ["l1", "l2", "l3", "l4", "l5", "l6"],
        "campaign_id": ["c1", "c1", "c2", "c3", "c3", "c4"],
        "created_at": ts(["2026-06-05", "2026-07-01", "2026-07-20", "2026-08-02", "2026-08-02", "2026-02-01"]),
        "mql_at": ts(["2026-06-10", None, "2026-07-25", "2026-08-05", None, "2026-02-02"]),
        "sql_at": ts(["2026-06-20", None, "2026-08-01", None, None, None]),
        "opportunity_id": ["o1", None, "o2", "o3", None, "o4"]}).astype({"opportunity_id": "string"})
    opportunities = pd.DataFrame({
        "opportunity_id": ["o1", "o2", "o3", "o4"], "account_id": ["a1", "a2", "a3", "a4"],
        "amount": [1200.0, 600.0, 500.0, 999.0], "is_won": [True, True, False, True],
        "closed_at": ts(["2026-09-01", "2026-10-05", "2026-09-10", "2026-03-01"])})
    return campaigns, leads, opportunities


def test_roi_by_channel_by_hand():
    campaigns, leads, opps = frames()
    out = mk.campaign_roi(campaigns, leads, ctx=Q3, opportunities=opps).set_index("channel")
    # email: c1 + c2 cost 400; leads l1, l2, l3; MQLs l1, l3; won: o1 (1,200; o2 closes after the period end)
    email = out.loc["email"]
    assert email[["n_leads", "n_mqls", "n_sqls", "n_opportunities", "n_won"]].tolist() == [3, 2, 2, 2, 1]
    assert email["won_amount"] == 1200.0 and email["roi"] == pytest.approx((1200 - 400) / 400)
    assert email["cost_per_lead"] == pytest.approx(400 / 3) and email["cpa"] == pytest.approx(400.0)
    # trade show: c3 cost 1,000, two leads, one opportunity lost: nothing won
    show = out.loc["trade_show"]
    assert show["roi"] == pytest.approx(-1.0) and pd.isna(show["cpa"]) and show["cost_per_mql"] == 1000.0
    assert list(out.index) == ["email", "trade_show"]  # best ROI first; c4 (not active) is left out
    text = mk.describe_campaign_roi(mk.campaign_roi(campaigns, leads, ctx=Q3, opportunities=opps)).text
    assert text.startswith("trade_show cost more than the revenue they brought (1,000 spent, ROI -100.0%)")
    per_campaign = mk.campaign_roi(campaigns, leads, ctx=Q3, by="campaign", opportunities=opps)
    assert set(per_campaign["campaign_id"]) == {"c1", "c2", "c3"}
    payback = per_campaign.set_index("campaign_id")["payback_days"]
    assert payback["c1"] == 92.0  # started 1 June; o1's 1,200 covered its 100 on 1 September
    assert pd.isna(payback["c2"]) and pd.isna(payback["c3"])  # not paid back by the end of Q3
    assert pd.isna(out.loc["email", "payback_days"])  # one of two campaigns paid back: the median is not yet
    with pytest.raises(ParameterError, match="by"):
        mk.campaign_roi(campaigns, leads, ctx=Q3, by="week")


def journeys():
    # j1: email (day 0), social (day 10), search (day 20), converts day 30 for 100
    # j2: social (day 0) only, converts day 5 for 50; j3: a touch after its conversion only: unattributed 70
    touches = pd.DataFrame({
        "journey_id": ["j1", "j1", "j1", "j2", "j3"],
        "channel": ["email", "social", "search", "social", "email"],
        "occurred_at": ts(["2026-01-01", "2026-01-11", "2026-01-21", "2026-02-01", "2026-03-10"])})
    conversions = pd.DataFrame({"journey_id": ["j1", "j2", "j3"], "value": [100.0, 50.0, 70.0],
                                "converted_at": ts(["2026-01-31", "2026-02-06", "2026-03-01"])})
    return touches, conversions


@pytest.mark.parametrize(("model", "expected"), [
    ("first_touch", {"email": 100.0, "social": 50.0, "search": 0.0}),
    ("last_touch", {"email": 0.0, "social": 50.0, "search": 100.0}),
    ("linear", {"email": 100 / 3, "social": 100 / 3 + 50, "search": 100 / 3}),
    ("u_shaped", {"email": 40.0, "social": 20.0 + 50, "search": 40.0}),
    ("w_shaped", {"email": 100 / 3, "social": 100 / 3 + 50, "search": 100 / 3}),  # three touches: a third each
])
def test_rule_based_attribution_by_hand(model, expected):
    touches, conversions = journeys()
    out = mk.attribute(touches, conversions, model).set_index("channel")["attributed_amount"]
    assert out.reindex(list(expected)).fillna(0.0).to_dict() == pytest.approx(expected)
    assert out.sum() == pytest.approx(150.0)
    assert mk.attribute(touches, conversions, model).attrs["unattributed"] == 70.0


def test_time_decay_and_w_shaped_with_the_lead_creation_touch():
    touches, conversions = journeys()
    decay = mk.attribute(touches, conversions, "time_decay", half_life_days=10).set_index("channel")
    # j1 touches 30, 20 and 10 days before: weights 1/8, 1/4, 1/2 → shares 1/7, 2/7, 4/7 of 100
    assert decay.loc["email", "attributed_amount"] == pytest.approx(100 / 7)
    assert decay.loc["search", "attributed_amount"] == pytest.approx(400 / 7)
    four = pd.DataFrame({"journey_id": ["j"] * 4, "channel": ["a", "b", "c", "d"],
                         "occurred_at": ts(["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]),
                         "is_lead_creation": [False, False, True, False]})
    conv = pd.DataFrame({"journey_id": ["j"], "value": [100.0], "converted_at": ts(["2026-01-10"])})
    w = mk.attribute(four, conv, "w_shaped").set_index("channel")["attributed_amount"].to_dict()
    assert w == pytest.approx({"a": 30.0, "b": 10.0, "c": 30.0, "d": 30.0})
    with pytest.raises(ParameterError, match="model"):
        mk.attribute(four, conv, "shapley_magic")


@pytest.mark.parametrize("seed", [7, 11])
def test_planted_channel_roi_is_recovered(demo_folder, seed):
    folder = demo_folder("tiny", seed)
    values = {"source": str(folder), "region": "all", "period": "2023-01-01..2026-09-30", "as_of": "2026-10-01"}
    s = data.open_slice(params.validate_params(values), data.connect(folder))
    out = mk.campaign_roi(s.tables["campaigns"], s.history("leads", 1), ctx=_ctx(s),
                          opportunities=s.history("opportunities", 1)).set_index("channel")
    assert out["roi"].idxmax() == CHANNEL_ROI.best_channel
    assert out.loc[CHANNEL_ROI.negative_channel, "roi"] < 0
    assert (out["roi"].drop(CHANNEL_ROI.negative_channel) > 0).all()


def _ctx(s):
    return KpiContext(period_start=s.period.start, period_end=s.period.end, region="all", as_of=s.as_of)


def test_journeys_from_events_leads_and_accounts_by_hand():
    campaigns = pd.DataFrame({"campaign_id": ["c1", "c2", "c3"], "channel": ["email", "webinar", "search"]})
    leads = pd.DataFrame({"lead_id": ["l1", "l2"], "campaign_id": ["c2", "c1"], "opportunity_id": ["o1", None],
                          "created_at": ts(["2026-03-10", "2026-03-01"])}).astype({"opportunity_id": "string"})
    opps = pd.DataFrame({"opportunity_id": ["o1", "o2"], "account_id": ["a1", "a2"], "amount": [1000.0, 500.0],
                         "is_won": [True, False], "closed_at": ts(["2026-06-01", "2026-06-01"])})
    events = pd.DataFrame({
        "campaign_id": ["c1", "c2", "c3", "c1", "c3", "c1"],
        "lead_id": ["l1", "l1", "l1", None, "l2", "l1"],
        "account_id": [None, None, None, "a1", None, None],
        "occurred_at": ts(["2026-03-01", "2026-03-09", "2026-05-01", "2026-05-20", "2026-04-01", "2025-01-01"])})
    touches, conversions = mk.journeys(events, campaigns, leads, opps, window_days=180)
    # o1 (won): l1's email, webinar (its lead-creating touch), search, and the account's email; l1's 2025 touch is
    # outside the window; l2 never became an opportunity; o2 was lost
    assert conversions.to_dict("list") == {"journey_id": ["o1"], "value": [1000.0], "converted_at": [T("2026-06-01")]}
    won = touches[touches["journey_id"] == "o1"]
    assert won["channel"].tolist() == ["email", "webinar", "search", "email"]
    assert won["is_lead_creation"].tolist() == [False, True, False, False]
    # l2 engaged (search) but never became a won deal: a journey without a conversion, for the data-driven models
    assert touches.loc[touches["journey_id"] == "lead:l2", "channel"].tolist() == ["search"]
    assert set(touches["journey_id"]) == {"o1", "lead:l2"}
    w = mk.attribute(touches, conversions, "w_shaped").set_index("channel")["attributed_amount"].to_dict()
    # W: 30% first (email), 30% lead creation (webinar), 30% last (email), 10% the other (search)
    assert w == pytest.approx({"email": 600.0, "webinar": 300.0, "search": 100.0})
    side = mk.compare_models(touches, conversions).set_index("channel")
    assert side.loc["email", "last_touch"] == 1.0 and side.loc["webinar", "first_touch"] == 0.0
    assert side.loc["webinar", "vs_last_touch"] == pytest.approx(0.3)  # W-shaped: 30% vs 0 under last-touch
    text = mk.describe_models(side.reset_index()).text
    assert "under-credits webinar" in text and "over-credits email" in text


def test_models_that_agree_make_no_finding():
    touches = pd.DataFrame({"journey_id": ["j1", "j2"], "channel": ["a", "b"], "occurred_at": ts(["2026-01-01"] * 2)})
    conv = pd.DataFrame({"journey_id": ["j1", "j2"], "value": [1.0, 1.0], "converted_at": ts(["2026-02-01"] * 2)})
    assert mk.describe_models(mk.compare_models(touches, conv)) is None  # one touch each: every model agrees


def test_every_model_shares_out_the_same_value_on_the_demo(demo_folder):
    folder = demo_folder("tiny", 7)
    values = {"source": str(folder), "region": "all", "period": "2023-01-01..2026-09-30", "as_of": "2026-10-01"}
    s = data.open_slice(params.validate_params(values), data.connect(folder))
    touches, conversions = mk.journeys(s.history("campaign_events", 1), s.tables["campaigns"], s.history("leads", 1),
                                       s.history("opportunities", 1))
    assert len(touches) > 100 and touches["journey_id"].nunique() > 20
    totals = {m: mk.attribute(touches, conversions, m)["attributed_amount"].sum() for m in mk.MODELS}
    reached = conversions.loc[conversions["journey_id"].isin(touches["journey_id"]), "value"].sum()
    assert all(t == pytest.approx(reached) for t in totals.values()), totals
