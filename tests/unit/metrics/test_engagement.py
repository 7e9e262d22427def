"""Customer engagement on hand-computed fixtures: events reach customers directly or through their lead's
opportunity, per segment and over time; failure modes and findings."""

from __future__ import annotations

import pandas as pd
import pytest

from crmlens.errors import ParameterError
from crmlens.kpis import KpiContext
from crmlens.metrics import engagement as en

T = pd.Timestamp
Q3 = KpiContext(period_start=T("2026-07-01"), period_end=T("2026-10-01"), region="all", period_label="2026-Q3")


def ts(values):
    return pd.to_datetime(pd.Series(values), format="ISO8601").astype("datetime64[us]")


def frames():
    accounts = pd.DataFrame({"account_id": ["a1", "a2", "a3", "a4"], "industry": ["Tech", "Tech", "Retail", "Retail"],
                             "region_id": ["R1"] * 4}).astype("string")
    # a1..a3 active at the end of Q3 (bought within 455 days); a4 lapsed long ago
    purchases = pd.DataFrame({"account_id": ["a1", "a2", "a3", "a4"],
                              "purchased_at": ts(["2026-01-10", "2026-05-01", "2025-12-01", "2023-01-01"]),
                              "amount": [10.0, 20.0, 30.0, 40.0]})
    leads = pd.DataFrame({"lead_id": ["l1", "l2"], "opportunity_id": ["o1", None]}).astype("string")
    opportunities = pd.DataFrame({"opportunity_id": ["o1"], "account_id": ["a3"]}).astype("string")
    events = pd.DataFrame({
        "event_id": ["e1", "e2", "e3", "e4", "e5", "e6"],
        "campaign_id": ["c1"] * 6,
        "lead_id": [None, None, "l1", "l2", None, None],
        "account_id": ["a1", "a1", None, None, "a4", "a2"],
        "event_type": ["visit", "open", "attend", "download", "visit", "click"],
        "occurred_at": ts(["2026-07-05", "2026-08-01", "2026-09-01", "2026-09-02", "2026-07-10", "2026-06-30"]),
    }).astype({"lead_id": "string", "account_id": "string", "event_type": "string"})
    activities = pd.DataFrame({"account_id": ["a1", "a3", "a3", "a3"],
                               "occurred_at": ts(["2026-07-01", "2026-07-02", "2026-08-02", "2026-06-01"])})
    return accounts, purchases, leads, opportunities, events, activities


def test_events_reach_customers_directly_or_through_their_lead():
    _, _, leads, opps, events, _ = frames()
    out = en.customer_events(events, leads, opps).set_index("event_id")["account_id"]
    # e3 comes from lead l1 → opportunity o1 → a3; e4's lead never became an opportunity: a prospect's
    assert out.to_dict() == {"e1": "a1", "e2": "a1", "e3": "a3", "e5": "a4", "e6": "a2"}


def test_engagement_by_segment_by_hand():
    accounts, purchases, leads, opps, events, activities = frames()
    out = en.by_segment(accounts, purchases, events, ctx=Q3, by="industry", leads=leads, opportunities=opps,
                        activities=activities).set_index("segment")
    # Tech: a1 (visit + open in Q3), a2 (its click was in Q2): 2 active, 1 engaged
    assert out.loc["Tech", ["n_customers_active", "n_engaged", "n_visit", "n_open", "n_click"]].tolist() == [2, 1, 1,
                                                                                                           1, 0]
    assert out.loc["Tech", "engaged_share"] == pytest.approx(0.5)
    # Retail: a3 active (attend through its lead), a4 lapsed (its visit does not count)
    assert out.loc["Retail", ["n_customers_active", "n_engaged", "n_attend", "n_visit"]].tolist() == [1, 1, 1, 0]
    assert out.loc["Tech", "events_per_customer"] == pytest.approx(1.0)  # 2 events / 2 customers
    assert out.loc["Retail", "activities_per_customer"] == pytest.approx(2.0)  # a3's two Q3 activities
    overall = en.by_segment(accounts, purchases, events, ctx=Q3, leads=leads, opportunities=opps).iloc[0]
    assert (overall["n_customers_active"], overall["n_engaged"]) == (3, 2)
    assert "66.7% of the active customers engaged" in en.describe_engagement(
        en.by_segment(accounts, purchases, events, ctx=Q3, leads=leads, opportunities=opps)).text
    with pytest.raises(ParameterError, match="by"):
        en.by_segment(accounts, purchases, events, ctx=Q3, by="shoe_size")


def test_no_engagement_is_said_and_equal_segments_are_not_ranked():
    accounts, purchases, _, _, events, _ = frames()
    none = en.by_segment(accounts, purchases, events.iloc[:0], ctx=Q3)
    assert "None of the 3 active customers engaged" in en.describe_engagement(none).text
    tied = pd.DataFrame({"segment": ["A", "B", "C"], "n_customers_active": [30, 30, 30],
                         "engaged_share": [0.2, 0.2, 0.2]})
    tied.attrs["by"] = "industry"
    assert en.describe_engagement(tied) is None


def test_trend_by_month_by_hand():
    accounts, purchases, leads, opps, events, _ = frames()
    out = en.trend(None, accounts, purchases, events, ctx=Q3, leads=leads, opportunities=opps).set_index("period")
    assert out.loc["2026-07", "n_visit"] == 2 and out.loc["2026-06", "n_click"] == 1  # a4 bought once: a customer
    assert out.loc["2026-09", "n_attend"] == 1 and out["n_download"].sum() == 0
