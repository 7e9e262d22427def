"""Customers: customer base, RFM and cohort retention on hand-computed fixtures (numbers worked out in the
comments), and their failure modes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from crmlens import i18n
from crmlens.errors import ParameterError, SchemaError
from crmlens.kpis import KpiContext
from crmlens.metrics import customers as cu

T = pd.Timestamp
Q3 = KpiContext(period_start=T("2026-07-01"), period_end=T("2026-10-01"), region="all", period_label="2026-Q3")
Q2 = KpiContext(period_start=T("2026-04-01"), period_end=T("2026-07-01"), region="all", period_label="2026-Q2")


def accounts() -> pd.DataFrame:
    return pd.DataFrame({
        "account_id": ["a1", "a2", "a3", "a4", "a5", "a6", "a7"],
        "name": ["Alpha", "Beta", "Gamma", "Delta", "Eps", "Zeta", "Eta"],
        "industry": ["Tech", "Tech", "Retail", "Retail", "Tech", None, "Tech"],
        "region_id": ["R1", "R1", "R1", "R1", "R2", "R1", "R1"],
    }).astype("string")


def contracts() -> pd.DataFrame:
    rows = [("a1", "2025-01-10", 100.0), ("a1", "2026-01-15", 120.0),  # active throughout
            ("a2", "2024-06-01", 50.0),                                # lapsed long before (2025-08-30)
            ("a3", "2025-05-01", 80.0),                                # covered to 2026-07-30: churns in Q3
            ("a4", "2024-03-01", 40.0), ("a4", "2026-08-10", 60.0),    # lapsed, bought again: reactivated
            ("a5", "2026-07-20", 200.0),                               # first purchase in Q3: new (region R2)
            ("a6", "2026-09-01", 30.0),                                # new, industry unknown
            ("a7", "2026-10-05", 10.0)]                                # after the reference time: not yet
    frame = pd.DataFrame(rows, columns=["account_id", "signed_at", "amount"])
    frame["signed_at"] = pd.to_datetime(frame["signed_at"]).astype("datetime64[us]")
    frame["account_id"] = frame["account_id"].astype("string")
    return frame


def purchases() -> pd.DataFrame:
    return cu.purchases_of(contracts())


def test_customer_base_whole_region() -> None:
    base = cu.customer_base(accounts(), purchases(), Q3)
    row = base.iloc[0]
    # active at the start: a1, a3; new: a5, a6; reactivated: a4; churned: a3; active at the end: a1 a4 a5 a6
    assert row[["n_active_start", "n_new_customers", "n_reactivated", "n_churned", "n_active_end"]].tolist() == [
        2, 2, 1, 1, 4]
    assert row["net_growth"] == 2 and row["net_growth_rate"] == 1.0 and row["churn_rate"] == 0.5
    states = cu.customer_states(accounts(), purchases(), Q3).set_index("account_id")
    assert list(states.index) == ["a1", "a2", "a3", "a4", "a5", "a6"]  # a7 bought after the reference time
    assert states.loc["a3", "is_churned"] and states.loc["a4", "is_reactivated"] and not states.loc["a2", "active_end"]


def test_customer_base_by_segment_and_region() -> None:
    base = cu.customer_base(accounts(), purchases(), Q3, by="industry")
    assert base["segment"].tolist() == ["Tech", "(unknown)", "Retail"]  # by active customers at the end, then name
    tech, unknown, retail = (base.iloc[i] for i in range(3))
    assert tech[["n_active_start", "n_new_customers", "n_active_end", "net_growth"]].tolist() == [1, 1, 2, 1]
    assert retail[["n_active_start", "n_reactivated", "n_churned", "n_active_end"]].tolist() == [1, 1, 1, 1]
    assert retail["net_growth_rate"] == 0.0 and retail["churn_rate"] == 1.0
    assert unknown["n_new_customers"] == 1 and math.isnan(unknown["net_growth_rate"])  # nobody active at the start
    r1 = KpiContext(period_start=Q3.period_start, period_end=Q3.period_end, region="R1")
    row = cu.customer_base(accounts(), purchases(), r1).iloc[0]  # a5 is R2's
    assert row[["n_active_start", "n_new_customers", "n_reactivated", "n_churned", "n_active_end"]].tolist() == [
        2, 1, 1, 1, 3]


def test_customer_base_as_of_mid_period_and_terms() -> None:
    mid = KpiContext(period_start=Q3.period_start, period_end=Q3.period_end, as_of=T("2026-07-25"))
    row = cu.customer_base(accounts(), purchases(), mid).iloc[0]
    # by 2026-07-25: a3 still covered (to 07-30), a5 new, a4 and a6 not yet bought
    assert row[["n_active_start", "n_new_customers", "n_reactivated", "n_churned", "n_active_end"]].tolist() == [
        2, 1, 0, 0, 3]
    no_grace = cu.customer_base(accounts(), purchases(), Q3, churn_days=365).iloc[0]
    assert no_grace["n_active_start"] == 1  # a3's cover ended 2026-05-01 without the grace days
    retail = KpiContext(period_start=Q3.period_start, period_end=Q3.period_end, churn_days=90)  # the run's parameter
    row = cu.customer_base(accounts(), purchases(), retail).iloc[0]
    # 90 days: at the start only purchases after 2026-04-02 count (none); at the end after 2026-07-03: a4 a5 a6
    assert row[["n_active_start", "n_new_customers", "n_reactivated", "n_churned", "n_active_end"]].tolist() == [
        0, 2, 1, 0, 3]
    with pytest.raises(ParameterError, match="churn_days"):
        cu.customer_base(accounts(), purchases(), Q3, churn_days=0)
    with pytest.raises(ParameterError, match="by"):
        cu.customer_base(accounts(), purchases(), Q3, by="shoe_size")
    with pytest.raises(SchemaError, match="contracts"):
        cu.customer_base(accounts(), None, Q3)
    with pytest.raises(SchemaError, match="signed_at"):
        cu.purchases_of(contracts().drop(columns="signed_at"))


def test_customer_base_findings() -> None:
    found = cu.describe_customer_base(cu.customer_base(accounts(), purchases(), Q3))
    assert found.text == "Active customers went from 2 to 4 (+100.0%): 2 new, 1 reactivated, 1 churned."
    assert found.severity == "good"
    # per segment: Tech +100%, Retail 0% (not a shrink), "(unknown)" has no rate (nobody active at the start)
    by = cu.describe_customer_base(cu.customer_base(accounts(), purchases(), Q3, by="industry"))
    assert by.text == "Tech grew most (+100.0%); the median segment grew by +50.0%." and by.severity == "good"
    shrinking = purchases()[purchases()["account_id"] != "a4"]  # Retail: a3 churns, nobody comes back
    worse = cu.describe_customer_base(cu.customer_base(accounts(), shrinking, Q3, by="industry"))
    assert worse.text.startswith("Retail shrank most (-100.0%)") and worse.severity == "watch" and "Retail" in \
        worse.recommendation
    alike = cu.customer_base(accounts(), purchases(), Q3, by="industry")
    alike["net_growth_rate"] = 0.5
    assert cu.describe_customer_base(alike) is None  # every segment changed alike: no ranking
    everyone_gone = purchases()[purchases()["account_id"] == "a3"]
    lost = cu.describe_customer_base(cu.customer_base(accounts(), everyone_gone, Q3))
    assert "from 1 to 0 (-100.0%)" in lost.text and lost.severity == "act" and lost.recommendation
    empty = cu.describe_customer_base(cu.customer_base(accounts(), purchases().iloc[:0], Q3))
    assert empty.severity == "info" and "No customer" in empty.text
    with i18n.language("zh"):
        assert i18n.has_cjk(cu.describe_customer_base(cu.customer_base(accounts(), purchases(), Q3)).text)


def test_rfm_scores_and_tiers() -> None:
    scored = cu.rfm(accounts(), purchases(), Q3).set_index("account_id")
    # recency (days to 2026-10-01): a6 30, a4 52, a5 73, a1 259, a3 518, a2 852 → R 5 5 4 3 2 1
    assert scored["recency_days"].round().to_dict() == {"a5": 73, "a4": 52, "a1": 259, "a6": 30, "a3": 518,
                                                        "a2": 852}
    assert scored["r_score"].to_dict() == {"a5": 4, "a4": 5, "a1": 3, "a6": 5, "a3": 2, "a2": 1}
    # frequency: a1, a4 two purchases (average rank 5.5/6 → 5), the others one (2.5/6 → 3): equal values, equal score
    assert scored["f_score"].to_dict() == {"a5": 3, "a4": 5, "a1": 5, "a6": 3, "a3": 3, "a2": 3}
    # monetary: a6 30, a2 50, a3 80, a4 100, a5 200, a1 220 → 1 2 3 4 5 5
    assert scored["m_score"].to_dict() == {"a5": 5, "a4": 4, "a1": 5, "a6": 1, "a3": 3, "a2": 2}
    # FM = (F + M) / 2: a1 5 (R3 → loyal), a2 2.5 (R1 → lost), a3 3 (R2 → at risk), a4 4.5 and a5 4 (R ≥ 4 →
    # champions), a6 2 (R5 → promising); ordered by tier, then revenue
    assert list(scored.index) == ["a5", "a4", "a1", "a6", "a3", "a2"]
    assert scored["rfm_tier"].tolist() == ["champions", "champions", "loyal", "promising", "at_risk", "lost"]
    assert scored["value_tier"].tolist() == ["high", "high", "high", "low", "mid", "low"]
    assert scored["tier_name"].tolist()[:3] == ["Champions", "Champions", "Loyal"]
    assert "rfm_tier" not in cu.in_tier(scored.reset_index(), "at_risk").columns
    tiers = cu.rfm_tiers(cu.rfm(accounts(), purchases(), Q3)).set_index("rfm_tier")
    assert list(tiers.index) == list(cu.TIERS)
    assert tiers["n_customers"].tolist() == [2, 1, 1, 1, 0, 1]
    assert tiers.loc["champions", "revenue_share"] == pytest.approx(300 / 680)
    assert tiers.loc["hibernating", "monetary_amount"] == 0.0 and tiers.loc["hibernating", "customer_share"] == 0.0
    found = cu.describe_rfm_tiers(tiers.reset_index())
    assert "Champions are 33% of the customers and bring 44% of the revenue." in found.text
    assert "1 customer is at risk" in found.text and found.severity == "watch" and found.recommendation


def test_rfm_tier_rules_cover_every_score() -> None:
    seen = {cu.rfm_tier(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)}
    assert seen == set(cu.TIERS)
    assert cu.rfm_tier(4, 4, 4) == "champions" and cu.rfm_tier(5, 3, 3) == "loyal" and cu.rfm_tier(3, 1, 2) == \
        "promising" and cu.rfm_tier(2, 5, 1) == "at_risk" and cu.rfm_tier(2, 1, 1) == "hibernating"


def test_rfm_edge_cases() -> None:
    one = purchases()[purchases()["account_id"] == "a1"]
    scored = cu.rfm(accounts(), one, Q3)
    assert len(scored) == 1 and scored.iloc[0][["r_score", "f_score", "m_score"]].tolist() == [5, 5, 5]
    few = cu.describe_rfm_tiers(cu.rfm_tiers(scored))
    assert few.severity == "info" and "too few" in few.text
    none = cu.rfm(accounts(), purchases().iloc[:0], Q3)
    assert none.empty and "nothing to score" in cu.describe_rfm_tiers(cu.rfm_tiers(none)).text
    windowed = cu.rfm(accounts(), purchases(), Q3, window_days=365).set_index("account_id")
    assert set(windowed.index) == {"a1", "a4", "a5", "a6"} and windowed.loc["a1", "frequency"] == 1
    with pytest.raises(ParameterError, match="window_days"):
        cu.rfm(accounts(), purchases(), Q3, window_days=0)


def test_tier_migration() -> None:
    before, after = cu.rfm(accounts(), purchases(), Q2), cu.rfm(accounts(), purchases(), Q3)
    moves = cu.tier_migration(before, after)
    assert list(moves.columns) == ["from_tier", *cu.TIERS] and list(moves.index) == [*cu.TIERS, "new"]
    counts = moves[list(cu.TIERS)]
    assert int(counts.to_numpy().sum()) == len(after) == 6
    assert int(counts.loc["new"].sum()) == 2  # a5 and a6 first bought in Q3
    assert int(counts["champions"].sum()) == 2
    assert moves.loc["at_risk", "from_tier"] == "At risk" and moves.loc["new", "from_tier"] == "New since then"
    with i18n.language("zh"):
        assert cu.tier_migration(before, after).loc["champions", "from_tier"] == "重要价值客户"


def cohort_purchases() -> pd.DataFrame:
    rows = [("c1", "2026-01-10", 10.0), ("c1", "2026-04-05", 10.0), ("c1", "2026-07-07", 10.0),
            ("c2", "2026-02-01", 20.0), ("c2", "2026-08-01", 5.0),
            ("c3", "2026-04-20", 30.0),
            ("c4", "2026-05-05", 15.0), ("c4", "2026-05-20", 15.0)]
    frame = pd.DataFrame(rows, columns=["account_id", "signed_at", "amount"])
    frame["signed_at"] = pd.to_datetime(frame["signed_at"]).astype("datetime64[us]")
    return cu.purchases_of(frame.astype({"account_id": "string"}))


def cohort_accounts() -> pd.DataFrame:
    return pd.DataFrame({"account_id": ["c1", "c2", "c3", "c4"], "name": list("ABCD")}).astype("string")


def test_cohort_retention_by_purchase_and_revenue() -> None:
    matrix = cu.cohort_retention(cohort_accounts(), cohort_purchases(), Q3, freq="quarter", n_periods=2)
    assert matrix["cohort"].tolist() == ["2026-Q1", "2026-Q2"] and matrix["cohort_size"].tolist() == [2, 2]
    # Q1 cohort {c1, c2}: Q1 both, Q2 c1, Q3 both; Q2 cohort {c3, c4}: Q2 both, Q3 none, Q4 not observed yet
    assert matrix.loc[0, ["0", "1", "2"]].tolist() == [1.0, 0.5, 1.0]
    assert matrix.loc[1, ["0", "1"]].tolist() == [1.0, 0.0] and np.isnan(matrix.loc[1, "2"])
    revenue = cu.cohort_retention(cohort_accounts(), cohort_purchases(), Q3, n_periods=2, measure="revenue")
    # Q1 cohort: 30 in Q1, 10 in Q2, 15 in Q3; Q2 cohort: 60 in Q2, 0 in Q3
    assert revenue.loc[0, ["0", "1", "2"]].tolist() == pytest.approx([1.0, 10 / 30, 15 / 30])
    assert revenue.loc[1, "1"] == 0.0
    found = cu.describe_cohort_retention(matrix)
    assert found is not None and "2026-Q2" in found.text and "0%" in found.text


def test_cohort_retention_mid_period_and_active_basis() -> None:
    mid = KpiContext(period_start=Q3.period_start, period_end=Q3.period_end, as_of=T("2026-08-15"))
    matrix = cu.cohort_retention(cohort_accounts(), cohort_purchases(), mid, n_periods=2)
    assert np.isnan(matrix.loc[0, "2"]) and np.isnan(matrix.loc[1, "1"])  # Q3 is not over: not observed, not 0
    active = cu.cohort_retention(cohort_accounts(), cohort_purchases(), Q3, n_periods=2, basis="active")
    assert active.loc[0, ["0", "1", "2"]].tolist() == [1.0, 1.0, 1.0]  # covered by their contracts throughout
    monthly = cu.cohort_retention(cohort_accounts(), cohort_purchases(), Q3, freq="month", n_periods=3)
    assert monthly["cohort"].tolist() == ["2026-01", "2026-02", "2026-04", "2026-05"]
    assert monthly.loc[monthly["cohort"] == "2026-01", "3"].tolist() == [1.0]  # c1 again in April
    with pytest.raises(ParameterError, match="freq"):
        cu.cohort_retention(cohort_accounts(), cohort_purchases(), Q3, freq="fortnight")
    with pytest.raises(ParameterError, match="basis"):
        cu.cohort_retention(cohort_accounts(), cohort_purchases(), Q3, basis="vibes")
    assert cu.cohort_retention(cohort_accounts(), cohort_purchases().iloc[:0], Q3).empty


def test_kpis_need_the_purchase_history_and_agree_with_the_base() -> None:
    from crmlens import kpis

    frames = {"accounts": accounts(), "contracts": contracts()}
    with_history = {**frames, cu.PURCHASES: purchases()}
    assert kpis.compute_kpi("active_customers", with_history, Q3) == 4.0
    assert kpis.compute_kpi("customer_churn_rate", with_history, Q3) == 0.5
    assert kpis.compute_kpi("customer_net_growth_rate", with_history, Q3) == 1.0
    # without the history the period's contracts alone would undercount: no value, not a wrong one
    assert kpis.compute_kpi("active_customers", frames, Q3) is None
    assert kpis.compute_kpi("paying_customers", frames, Q3) == 3.0  # a4, a5, a6 signed in Q3 (a7 after it)


def test_customer_charts_draw_the_frames_in_the_language_in_use() -> None:
    from crmlens.charts import customers as charts

    base = cu.customer_base(accounts(), purchases(), Q3)
    bridge = charts.plot_customer_bridge(base)
    assert list(bridge.data[0].y) == [2.0, 2.0, 1.0, -1.0, 4.0]
    by = cu.customer_base(accounts(), purchases(), Q3, by="industry")
    growth = charts.plot_growth_by_segment(by)
    assert list(growth.data[0].y) == ["Retail", "Tech"]  # "(unknown)" had nobody at the start: no rate
    tiers = charts.plot_rfm_tiers(cu.rfm_tiers(cu.rfm(accounts(), purchases(), Q3)))
    assert next(iter(tiers.data[0].x)) == "Champions" and len(tiers.data) == 2
    heat = charts.plot_cohort_heatmap(cu.cohort_retention(cohort_accounts(), cohort_purchases(), Q3, n_periods=2))
    assert heat.layout.title.text == "Customer retention by cohort" and list(heat.data[0].y) == ["2026-Q1", "2026-Q2"]
    with i18n.language("zh"):
        assert charts.plot_customer_bridge(base).layout.title.text == "活跃客户：期初 → 期末"
        assert next(iter(charts.plot_rfm_tiers(cu.rfm_tiers(cu.rfm(accounts(), purchases(), Q3))).data[0].x)) == \
            "重要价值客户"


def test_a_source_without_contracts_skips_the_sections() -> None:
    """On a slice lacking `contracts` the analyses show the "needs table" note and return None; what takes
    their results passes None on (the notebook's cells then show nothing)."""
    assert cu.customer_base.needs == ("accounts", "contracts") and cu.rfm.needs == ("accounts", "contracts")
    assert cu.rfm_tiers(None) is None and cu.tier_migration(None, None) is None and cu.in_tier(None, "lost") is None
    assert cu.describe_customer_base(None) is None and cu.describe_rfm_tiers(None) is None
    assert cu.describe_cohort_retention(None) is None


def test_the_lines_of_one_order_are_one_purchase() -> None:
    times = pd.to_datetime(["2026-08-01 10:00", "2026-08-01 10:00", "2026-08-03 00:00", "2026-08-01 10:00",
                            "2026-08-02 00:00"]).astype("datetime64[us]")
    lines = pd.DataFrame({"account_id": pd.array(["a1", "a1", "a1", "a2", None], dtype="string"),
                          "signed_at": times, "amount": [10.0, 5.0, None, 7.0, 3.0]})
    bought = cu.purchases_of(lines)
    assert bought.to_dict("list") == {"account_id": ["a1", "a2", "a1"],
                                      "purchased_at": [times[0], times[0], times[2]], "amount": [15.0, 7.0, 0.0]}
    assert cu.rfm(accounts(), bought, Q3).set_index("account_id").loc["a1", "frequency"] == 2


def test_profile_of_the_active_customers() -> None:
    prof = cu.profile(accounts(), purchases(), Q3, by="industry")
    # active at 2026-10-01: a1 (Tech, 120 in the last year), a5 (Tech, 200), a4 (Retail, 60), a6 (unknown, 30)
    assert prof["industry"].tolist() == ["Tech", "Retail", "(unknown)"]
    assert prof["n_customers"].tolist() == [2, 1, 1] and prof["revenue_amount"].tolist() == [320.0, 60.0, 30.0]
    assert prof["customer_share"].tolist() == [0.5, 0.25, 0.25]
    assert prof.loc[0, "revenue_share"] == pytest.approx(320 / 410) and prof.loc[0, "revenue_per_customer"] == 160.0
    found = cu.describe_profile(prof)
    assert found.text.startswith("Tech customers are 50% of the active customers and bring 78% of their revenue")
    places = cu.profile(accounts().assign(country="CN", province=None, city=None), purchases(), Q3, by="place")
    assert list(places.columns[:4]) == ["region_id", "country", "province", "city"]
    assert places["n_customers"].sum() == 4 and set(places["region_id"]) == {"R1", "R2"}
    with pytest.raises(SchemaError, match="country"):
        cu.profile(accounts(), purchases(), Q3, by="place")
    with pytest.raises(ParameterError, match="by"):
        cu.profile(accounts(), purchases(), Q3, by="zodiac")
    even = prof.assign(revenue_share=prof["customer_share"])
    assert cu.describe_profile(even) is None  # revenue follows the customers: nothing to say


def test_base_trend_period_by_period() -> None:
    from types import SimpleNamespace

    from crmlens.periods import parse_period

    fake = SimpleNamespace(period=parse_period("2026-Q3"))
    trend = cu.base_trend(fake, accounts(), purchases(), Q3, n_periods=3)
    assert trend["period"].tolist() == ["2026-Q1", "2026-Q2", "2026-Q3"]
    # the last period is the customer base of the slice's own period
    own = cu.customer_base(accounts(), purchases(), Q3).drop(columns="segment").iloc[0]
    assert trend.iloc[-1].drop("period").tolist() == own.tolist()
    # each period starts with the customers the one before ended with
    assert trend["n_active_start"].iloc[1:].tolist() == trend["n_active_end"].iloc[:-1].tolist()
    # Q1: a1 (2025-01-10, renewed 2026-01-15) and a3 (2025-05-01) active throughout; nobody new
    assert trend.iloc[0][["n_active_start", "n_new_customers", "n_active_end"]].tolist() == [2, 0, 2]
    found = cu.describe_base_trend(trend)
    assert found.text.startswith("Over the last 3 periods the active customers went from 2 to 4 (+100.0%).")


def test_profile_by_a_custom_field_of_the_source() -> None:
    # a mapping kept Tier__c (a custom field): a1, a4 gold; a5 silver; a6 none
    acc = accounts().assign(Tier__c=pd.array(["gold", None, None, "gold", "silver", None, None], dtype="string"))
    prof = cu.profile(acc, purchases(), Q3, by="Tier__c").set_index("Tier__c")
    assert prof.loc["gold", "n_customers"] == 2 and prof.loc["gold", "revenue_amount"] == 180.0  # 120 + 60
    assert prof.loc["silver", "revenue_amount"] == 200.0 and prof.loc["(unknown)", "n_customers"] == 1
    with pytest.raises(ParameterError, match="by"):
        cu.profile(acc, purchases(), Q3, by="created_at")  # a model column that is not a segment


def test_degenerate_inputs_give_no_false_sentence_and_no_crash() -> None:
    after = cu.rfm(accounts(), purchases(), Q3)
    nobody_before = cu.rfm(accounts(), purchases().iloc[:0], Q2)
    moves = cu.tier_migration(nobody_before, after)
    assert int(moves.loc["new", list(cu.TIERS)].sum()) == len(after)  # everyone is new
    empty_by = cu.customer_base(accounts(), purchases().iloc[:0], Q3, by="industry")
    assert cu.describe_customer_base(empty_by) is None  # the whole region's finding says it once
    close = pd.DataFrame({"cohort": ["2026-Q1", "2026-Q2", "2026-Q3"], "cohort_size": [100, 100, 100],
                          "0": [1.0, 1.0, 1.0], "1": [0.99, 1.0, 1.0]})
    assert cu.describe_cohort_retention(close) is None  # 99% vs 100%: not a finding
    far = close.assign(**{"1": [0.7, 1.0, 0.95]})
    found = cu.describe_cohort_retention(far)
    assert "The 2026-Q1 cohort kept 70%" in found.text and found.severity == "watch"


def test_a_segment_the_source_does_not_record_is_not_a_table_of_unknowns(tiny_demo, tmp_path, monkeypatch):
    """A source whose accounts have no `size_band` column: the segment tables say "not in this source" (the
    slice's frames carry the column, empty) instead of one "(unknown)" row; a column it has still works."""
    import shutil

    from crmlens import data, params
    from crmlens.metrics import engagement

    for f in tiny_demo.glob("*.parquet"):
        shutil.copy(f, tmp_path / f.name)
    pd.read_parquet(tiny_demo / "accounts.parquet").drop(columns="size_band").to_parquet(tmp_path / "accounts.parquet")
    values = {"source": str(tmp_path), "region": "all", "period": "2026-Q3", "as_of": "2026-10-01"}
    s = data.open_slice(params.validate_params(values), data.connect(tmp_path))
    assert "size_band" in s.tables["accounts"].columns  # carried, empty
    purchases = cu.purchase_history(s)
    notes = []
    monkeypatch.setattr("crmlens.notebook.md", lambda text, finding=False: notes.append(text))
    assert cu.customer_base(s, purchases, by="size_band") is None
    assert cu.profile(s, purchases, by="size_band") is None
    assert engagement.by_segment(s, purchases, by="size_band") is None
    assert len(notes) == 3 and all("This section needs column `accounts.size_band`" in n for n in notes), notes
    assert len(cu.customer_base(s, purchases, by="industry")) > 1
