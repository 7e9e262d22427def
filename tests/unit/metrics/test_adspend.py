"""Advertising: ad performance per campaign, channel and audience from aggregated ad figures and, failing those,
from campaign events — every figure computed by hand on 3–10 row fixtures — and its finding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmlens.errors import ParameterError
from crmlens.kpis import KpiContext
from crmlens.metrics import adspend as ad

T = pd.Timestamp
Q3 = KpiContext(period_start=T("2026-07-01"), period_end=T("2026-10-01"), region="all", period_label="2026-Q3")


def ts(values):
    return pd.to_datetime(pd.Series(values), format="ISO8601").astype("datetime64[us]")


def campaigns() -> pd.DataFrame:
    return pd.DataFrame({
        "campaign_id": pd.Series(["c1", "c2", "c3", "c4"], dtype="string"),
        "channel": pd.Series(["social", "paid_search", "email", "trade_show"], dtype="string"),
        # c1 runs 30 days inside Q3; c2 runs 40 days, 10 of them in Q3; c3 is undated; c4 has no ad events
        "started_at": ts(["2026-07-01", "2026-06-01", None, "2026-08-01"]),
        "ended_at": ts(["2026-07-31", "2026-07-11", None, "2026-08-03"]),
        "cost_amount": [300.0, 400.0, 50.0, 1000.0]})


def metrics() -> pd.DataFrame:
    return pd.DataFrame({
        "campaign_id": pd.Series(["c1", "c1", "c2", "c2"], dtype="string"),
        "ad_id": pd.Series(["a1", "a2", "a3", "a4"], dtype="string"),
        "report_date": ts([None, None, None, None]),
        "audience": pd.Series(["A", "B", "A", "B"], dtype="string"),
        "n_impressions": pd.array([1000, 500, 2000, 0], dtype="Int64"),
        "n_clicks": pd.array([10, 0, 40, 0], dtype="Int64"),
        "spend_amount": [20.0, 0.0, 100.0, 0.0],
        "n_conversions": pd.array([4, 1, 5, 0], dtype="Int64"),
        "n_approved_conversions": pd.array([2, 0, 1, 0], dtype="Int64")})


def events() -> pd.DataFrame:
    kinds = {"c1": ["impression"] * 3 + ["click"], "c2": ["impression"] * 4 + ["click"] * 2 + ["visit"],
             "c3": ["click", "click", "open"], "c4": ["register", "register"]}
    rows = [(c, k) for c, ks in kinds.items() for k in ks]
    return pd.DataFrame({"event_id": [f"e{i}" for i in range(len(rows))],
                         "campaign_id": pd.Series([c for c, _ in rows], dtype="string"),
                         "event_type": pd.Series([k for _, k in rows], dtype="string"),
                         "occurred_at": ts(["2026-07-05"] * len(rows))})


def no_infinity(frame: pd.DataFrame) -> bool:
    numbers = frame.select_dtypes("number").astype("float64")
    return not np.isinf(numbers.to_numpy()).any()


def test_per_campaign_by_hand():
    out = ad.ad_performance(campaigns(), metrics(), None, "campaign", ctx=Q3)
    assert out["campaign_id"].tolist() == ["c1", "c2"], "cheapest approved conversion first; c3, c4 have no figures"
    c1, c2 = out.iloc[0], out.iloc[1]
    assert c1["channel"] == "social" and c1["n_ads"] == 2
    # c1: 1,500 impressions, 10 clicks, 20 spent, 5 conversions, 2 approved
    assert [c1[c] for c in ("n_impressions", "n_clicks", "n_conversions", "n_approved_conversions")] == [1500, 10, 5, 2]
    assert c1["ad_spend_amount"] == 20.0
    assert c1["click_through_rate"] == pytest.approx(10 / 1500)
    assert c1["cost_per_click"] == pytest.approx(2.0)
    assert c1["cost_per_conversion"] == pytest.approx(4.0)
    assert c1["cost_per_approved_conversion"] == pytest.approx(10.0)
    assert c1["click_conversion_rate"] == pytest.approx(0.5)
    # c2: 2,000 impressions, 40 clicks, 100 spent, 5 conversions, 1 approved
    assert c2["click_through_rate"] == pytest.approx(0.02) and c2["cost_per_click"] == pytest.approx(2.5)
    assert c2["cost_per_conversion"] == pytest.approx(20.0) and c2["cost_per_approved_conversion"] == 100.0
    assert c2["click_conversion_rate"] == pytest.approx(0.125)
    assert out.attrs == {"by": "campaign", "source": "campaign_metrics", "spend": "reported",
                         "ranked_by": "cost_per_approved_conversion", "n_rows": 4, "n_undated": 4}


def test_per_channel_and_per_audience_by_hand():
    by_channel = ad.ad_performance(campaigns(), metrics(), by="channel").set_index("channel")
    assert by_channel.loc["social", "cost_per_approved_conversion"] == pytest.approx(10.0)
    assert by_channel.loc["paid_search", "cost_per_click"] == pytest.approx(2.5)
    aud = ad.ad_performance(campaigns(), metrics(), by="audience")
    assert aud["audience"].tolist() == ["A", "B"]
    a, b = aud.set_index("audience").loc["A"], aud.set_index("audience").loc["B"]
    # A: a1 + a3 — 3,000 impressions, 50 clicks, 120 spent, 9 conversions, 3 approved
    assert (a["n_impressions"], a["n_clicks"], a["ad_spend_amount"]) == (3000, 50, 120.0)
    assert a["click_through_rate"] == pytest.approx(50 / 3000) and a["cost_per_click"] == pytest.approx(2.4)
    assert a["cost_per_approved_conversion"] == pytest.approx(40.0)
    assert a["cost_per_conversion"] == pytest.approx(120 / 9)
    # B: 500 impressions, no click, nothing spent, 1 conversion, none approved
    assert b["click_through_rate"] == 0.0, "a real zero: shown and not clicked"
    assert pd.isna(b["cost_per_click"]) and pd.isna(b["click_conversion_rate"]), "no click: missing, not 0 or inf"
    assert pd.isna(b["cost_per_approved_conversion"]) and b["cost_per_conversion"] == 0.0
    assert no_infinity(aud)


def test_zero_and_missing_denominators_give_missing_values_never_inf_or_zero():
    m = metrics().assign(n_impressions=pd.array([0, 0, 0, 0], dtype="Int64"),
                         n_clicks=pd.array([0, 0, 0, 0], dtype="Int64"),
                         n_approved_conversions=pd.array([pd.NA] * 4, dtype="Int64"))
    out = ad.ad_performance(campaigns(), m)
    assert out["click_through_rate"].isna().all() and out["cost_per_click"].isna().all()
    assert out["cost_per_approved_conversion"].isna().all() and out["click_conversion_rate"].isna().all()
    assert out["n_approved_conversions"].isna().all(), "a figure the source lacks is missing, not 0"
    assert out.attrs["ranked_by"] == "cost_per_conversion", "ranked by the first cost with figures"
    assert no_infinity(out)


def test_by_a_column_of_the_source_and_bad_groupings():
    m = metrics().assign(age=pd.Series(["30-34", "35-39", "30-34", "35-39"], dtype="string"))
    by_age = ad.ad_performance(campaigns(), m, by="age").set_index("age")
    assert by_age.loc["30-34", "n_clicks"] == 50 and by_age.loc["35-39", "n_impressions"] == 500
    with pytest.raises(ParameterError, match=r"by: 'week'.*audience"):
        ad.ad_performance(campaigns(), metrics(), by="week")
    with pytest.raises(ParameterError, match="by: 'age'"):
        ad.ad_performance(campaigns(), None, events(), by="age")
    no_audience = metrics().assign(audience=pd.Series([pd.NA] * 4, dtype="string"))
    assert ad.ad_performance(campaigns(), no_audience, by="audience") is None, "audience not recorded"


def test_fallback_from_events_counts_impressions_and_clicks_and_prorates_the_cost():
    out = ad.ad_performance(campaigns(), None, events(), ctx=Q3)
    # c1: 3 impressions, 1 click, 300 (30 of its 30 days in Q3); c2: 4, 2, 400 x 10/40 = 100;
    # c3: no impression, 2 clicks, 50 (undated: its whole cost); c4: no impression or click: not shown
    assert out["campaign_id"].tolist() == ["c3", "c2", "c1"], "cheapest click first"
    got = out.set_index("campaign_id")
    assert got["n_impressions"].tolist() == [0, 4, 3] and got["n_clicks"].tolist() == [2, 2, 1]
    assert got["ad_spend_amount"].tolist() == pytest.approx([50.0, 100.0, 300.0])
    assert got.loc["c1", "click_through_rate"] == pytest.approx(1 / 3)
    assert got.loc["c2", "click_through_rate"] == pytest.approx(0.5) and got.loc["c2", "cost_per_click"] == 50.0
    assert pd.isna(got.loc["c3", "click_through_rate"]) and got.loc["c3", "cost_per_click"] == 25.0
    assert got["n_conversions"].isna().all() and got["cost_per_approved_conversion"].isna().all(), \
        "events record no conversions: missing, not 0"
    assert out.attrs | {} == {"by": "campaign", "source": "campaign_events", "spend": "mixed",
                              "ranked_by": "cost_per_click", "n_rows": 3, "n_undated": 0}
    assert no_infinity(out)
    whole = ad.ad_performance(campaigns(), None, events()).set_index("campaign_id")
    assert whole["ad_spend_amount"].tolist() == pytest.approx([50.0, 400.0, 300.0])
    assert ad.ad_performance(campaigns(), None, events()).attrs["spend"] == "whole"
    by_channel = ad.ad_performance(campaigns(), None, events(), by="channel", ctx=Q3).set_index("channel")
    assert by_channel.loc["social", "n_impressions"] == 3 and by_channel.loc["paid_search", "cost_per_click"] == 50
    assert ad.ad_performance(campaigns(), None, events(), by="audience") is None
    assert "counted from campaign events" in ad.basis_note(out) and "pro-rated" in ad.basis_note(out)


def test_metrics_are_preferred_to_events_and_neither_gives_none():
    out = ad.ad_performance(campaigns(), metrics(), events())
    assert out.attrs["source"] == "campaign_metrics"
    assert ad.ad_performance(campaigns(), None, None) is None
    assert ad.basis_note(out) == ("Figures as the ad platform reported them: none of the 4 rows has a date, so they "
                                  "count in every period.")
    dated = metrics().assign(report_date=ts(["2026-07-01", "2026-07-02", None, None]))
    assert "2 of the 4 rows have no date" in ad.basis_note(ad.ad_performance(campaigns(), dated))


def test_inputs_are_not_modified():
    c, m, e = campaigns(), metrics(), events()
    before = (c.copy(), m.copy(), e.copy())
    ad.ad_performance(c, m, e, ctx=Q3)
    ad.ad_performance(c, None, e, ctx=Q3)
    for frame, copy in zip((c, m, e), before, strict=True):
        pd.testing.assert_frame_equal(frame, copy)


# ------------------------------------------------------------------------------------------------- finding

def test_finding_names_cheapest_and_dearest_with_numbers_and_a_recommendation():
    out = ad.ad_performance(campaigns(), metrics())
    assert ad.describe_ad_performance(out) is None, "2 and 1 approved conversions are too few to compare"
    found = ad.describe_ad_performance(out, min_count=1)
    assert found.text == ("c1 brings an approved conversion at the lowest cost (10.00, from 20 spent); c2 at the "
                          "highest (100.00, from 100 spent), 10.0 times as much.")
    assert found.severity == "act" and found.kpi == "cost_per_approved_conversion"
    assert found.recommendation.startswith("Move ad budget from c2 to c1")


def _result(costs: list[float], n: int = 10) -> pd.DataFrame:
    k = len(costs)
    frame = pd.DataFrame({"campaign_id": [f"c{i}" for i in range(k)], "ad_spend_amount": [c * n for c in costs],
                          "n_approved_conversions": pd.array([n] * k, dtype="Int64"),
                          "cost_per_approved_conversion": costs})
    frame.attrs["ranked_by"] = "cost_per_approved_conversion"
    return frame


def test_finding_holds_back_on_ties_small_gaps_and_one_group():
    assert ad.describe_ad_performance(_result([5.0, 5.0, 5.0])) is None, "no ranking of equal costs"
    assert ad.describe_ad_performance(_result([5.0])) is None, "one group: nothing to compare"
    assert ad.describe_ad_performance(None) is None
    small = ad.describe_ad_performance(_result([10.0, 12.0]))
    assert small.severity == "info" and small.recommendation == "", "a 1.2x gap is no case for moving budget"
    tied = ad.describe_ad_performance(_result([4.0, 4.0, 7.0]))
    assert tied.text == ("c0, c1 bring an approved conversion at the lowest cost (4.00 each, from 80 spent); c2 at "
                         "the highest (7.00, from 70 spent), 1.8 times as much."), "equal cheapest named together"
    assert tied.severity == "watch" and tied.recommendation.startswith("Move ad budget from c2 to c0, c1")
    few = _result([4.0, 9.0]).assign(n_approved_conversions=pd.array([3, 10], dtype="Int64"))
    assert ad.describe_ad_performance(few) is None, "3 approved conversions are too few (min_count 5)"
    clicks = _result([1.0, 3.0]).rename(columns={"cost_per_approved_conversion": "cost_per_click",
                                                  "n_approved_conversions": "n_clicks"})
    clicks.attrs["ranked_by"] = "cost_per_click"
    assert ad.describe_ad_performance(clicks).text.startswith("c0 brings a click at the lowest cost (1.00")


def test_finding_and_note_read_in_chinese():
    from crmlens import i18n

    with i18n.language("zh"):
        found = ad.describe_ad_performance(ad.ad_performance(campaigns(), metrics()), min_count=1)
        assert found.text == ("c1 获得一次有效转化的成本最低（10.00，花费 20）；"
                              "c2 最高（100.00，花费 100），是前者的 10.0 倍。")
        assert found.recommendation.startswith("把广告预算逐步从 c2 转向 c1")
        from_events = ad.ad_performance(campaigns(), None, events(), ctx=Q3)
        assert "展示量和点击量由营销互动记录计数" in ad.basis_note(from_events)
        assert ad.basis_note(ad.ad_performance(campaigns(), metrics())) == \
            "数据为广告平台报告的原始数据：4 行均没有日期，因此计入每个期间。"
