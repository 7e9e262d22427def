"""Customer health: NPS, satisfaction, service levels, drivers and the churn model on hand-computed fixtures
(numbers worked out in the comments), their failure modes, and the demo's planted truths recovered."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmlens import data, params
from crmlens.kpis import KpiContext
from crmlens.metrics import customers as cu
from crmlens.metrics import health as he
from crmlens.truths import CHURN_DRIVERS, CSAT_DRIVER

T = pd.Timestamp
Q3 = KpiContext(period_start=T("2026-07-01"), period_end=T("2026-10-01"), region="all", period_label="2026-Q3")


def ts(values):
    return pd.to_datetime(pd.Series(values), format="ISO8601").astype("datetime64[us]")


# ------------------------------------------------------------------------------------------- NPS, CSAT

def test_nps_groups_and_score_by_hand():
    nps = pd.Series([10, 9, 8, 7, 6, 0, None], dtype="Float64")
    assert he.nps_group(nps).tolist()[:6] == ["promoter", "promoter", "passive", "passive", "detractor", "detractor"]
    assert pd.isna(he.nps_group(nps).iloc[6])
    assert he.nps_score(nps) == pytest.approx(0.0)  # 2 of 6 promoters − 2 of 6 detractors
    assert he.nps_score(pd.Series([10, 10, 9, 5])) == pytest.approx(50.0)  # 75% − 25%
    assert he.nps_score(pd.Series([], dtype="float64")) is None


def surveys() -> pd.DataFrame:
    return pd.DataFrame({
        "account_id": ["a1", "a1", "a2", "a3", "a3"],
        "product_id": ["p1", "p2", "p1", "p2", "p2"],
        "rep_id": ["r1", "r1", "r2", "r2", "r2"],
        "responded_at": ts(["2026-07-05", "2026-08-01", "2026-08-20", "2026-09-01", "2026-09-15"]),
        "csat": [5, 4, 2, 3, 1],
        "nps": [10, 9, 6, 8, 0],
        "driver": ["support", "price", "support", "support", "features"],
    })


def test_satisfaction_by_product_line_by_hand():
    products = pd.DataFrame({"product_id": ["p1", "p2"], "product_line": ["Core", "Edge"]})
    out = he.satisfaction(surveys(), "product_line", products=products).set_index("segment")
    # Core: p1 responses csat 5, 2 → mean 3.5, satisfied 1 of 2; nps 10, 6 → 50% promoters − 50% detractors = 0
    assert out.loc["Core", "csat_mean"] == pytest.approx(3.5)
    assert out.loc["Core", "satisfied_share"] == pytest.approx(0.5)
    assert out.loc["Core", "nps"] == pytest.approx(0.0)
    # Edge: csat 4, 3, 1 → 8/3; nps 9, 8, 0 → 1/3 promoters − 1/3 detractors = 0; passives 1/3
    assert out.loc["Edge", "csat_mean"] == pytest.approx(8 / 3)
    assert out.loc["Edge", "passives_share"] == pytest.approx(1 / 3)
    overall = he.satisfaction(surveys())
    assert overall["n_responses"].item() == 5 and overall["nps"].item() == pytest.approx(0.0)  # 2 − 2 of 5


def test_satisfaction_finding_says_the_numbers_and_no_ranking_of_ties():
    text = he.describe_satisfaction(he.satisfaction(surveys())).text
    assert "2.99" not in text and "3.00 of 5" in text and "NPS 0" in text
    tied = pd.DataFrame({"segment": ["A", "B", "C"], "n_responses": [20, 20, 20], "nps": [10.0, 10.0, 10.0]})
    tied.attrs["by"] = "region_id"
    assert he.describe_satisfaction(tied) is None  # equal values are not ranked


# ------------------------------------------------------------------------------------------------ service

def tickets() -> pd.DataFrame:
    # targets: medium 16 h / 5 d; urgent 2 h / 1 d
    return pd.DataFrame({
        "ticket_id": ["t1", "t2", "t3", "t4"],
        "account_id": ["a1", "a1", "a2", "a3"],
        "product_id": ["p1", "p1", "p2", "p2"],
        "opened_at": ts(["2026-06-20", "2026-07-10", "2026-08-01", "2026-09-29 12:00"]),
        "first_response_at": ts(["2026-06-20 05:00", "2026-07-11 12:00", "2026-08-01 01:00", None]),
        "resolved_at": ts(["2026-06-22", None, "2026-08-03", None]),
        "category": ["question", "complaint", "defect", "question"],
        "priority": ["medium", "medium", "urgent", "urgent"],
    })


def test_service_levels_by_hand():
    out = he.service_table(tickets(), ctx=Q3).iloc[0]
    assert out["n_opened"] == 3  # t2, t3, t4 opened in Q3 (t1 in June)
    assert out["n_resolved"] == 1  # t3
    assert out["n_backlog"] == 2  # t2 and t4 open at the period end
    # first response: t2 36 h > 16 h missed; t3 1 h ≤ 2 h met; t4 not answered, due 2026-09-29 14:00 < end: missed
    assert out["first_response_met"] == pytest.approx(1 / 3)
    assert out["first_response_hours"] == pytest.approx((36 + 1) / 2)  # median of the answered ones
    # resolution: t2 due 07-15, open: missed; t3 2 days > 1 day: missed; t4 due 09-30 12:00 < end: missed
    assert out["resolution_met"] == pytest.approx(0.0)
    by = he.service_table(tickets(), "category", ctx=Q3).set_index("segment")
    assert by.loc["question", "n_opened"] == 1 and by.loc["question", "n_backlog"] == 1


def test_service_targets_are_checked():
    with pytest.raises(Exception, match="service target priority 'vip'"):
        he.service_table(tickets(), ctx=Q3, service_targets={"vip": [1, 1]})
    with pytest.raises(Exception, match=r"\[first-response hours, resolution days\]"):
        he.service_table(tickets(), ctx=Q3, service_targets={"low": 5})


def test_response_service_flags_by_hand():
    s = pd.DataFrame({"account_id": ["a1", "a1", "a2", "a9"],
                      "responded_at": ts(["2026-07-11 00:00", "2026-07-12", "2026-10-30", "2026-07-12"])})
    out = he.response_service(s, tickets())
    # a1 on 07-11 00:00: t2 opened 07-10, answered 07-11 12:00 — its target (07-10 16:00) already missed
    assert out.iloc[0].to_dict() == {"had_ticket": True, "slow_first_response": True, "unresolved_ticket": True,
                                     "slow_resolution": False}  # resolution due 07-15: not missed yet
    # a1 on 07-12: t1 (06-20) is in the 90 days too, answered and resolved on time
    assert out.iloc[1]["slow_first_response"] and out.iloc[1]["unresolved_ticket"]
    # a2 on 10-30: t3 (08-01) answered on time, resolved after its 1-day target
    assert out.iloc[2].to_dict() == {"had_ticket": True, "slow_first_response": False, "unresolved_ticket": False,
                                     "slow_resolution": True}
    assert not out.iloc[3].any()  # no ticket


def test_driver_regression_recovers_a_known_effect():
    # 400 responses: a slow first response costs exactly 1 point, an unresolved ticket 0.5, plus noise
    rng = np.random.default_rng(1)
    n = 400
    slow = rng.random(n) < 0.3
    csat = np.clip(np.rint(4 - 1.0 * slow + rng.normal(0, 0.4, n)), 1, 5)
    opened = T("2026-05-01")
    t = pd.DataFrame({"account_id": [f"a{i}" for i in range(n)], "opened_at": ts([opened] * n),
                      "first_response_at": ts([opened + pd.Timedelta(hours=30 if x else 1) for x in slow]),
                      "resolved_at": ts([opened + pd.Timedelta(days=1)] * n), "priority": ["medium"] * n})
    sv = pd.DataFrame({"account_id": t["account_id"], "responded_at": ts([T("2026-06-01")] * n), "csat": csat,
                       "nps": np.clip(2 * csat - 1, 0, 10), "driver": ["support"] * n})
    out = he.driver_table(sv, t).set_index("factor")
    row = out.loc["slow_first_response"]
    assert row["csat_effect_low"] < -1.0 + 0.25 and row["csat_effect_high"] > -1.0 - 0.25
    assert row["csat_effect_high"] < 0 and row["p_value"] < 0.001
    assert "had_ticket" not in out.index  # everybody had one: nothing to estimate
    assert "lowers CSAT by" in he.describe_csat_drivers(out.reset_index()).text


def test_drivers_with_too_few_responses_say_so():
    out = he.driver_table(surveys(), tickets())
    assert out.empty
    assert "Only 5 survey responses" in he.describe_csat_drivers(out).text


# ------------------------------------------------------------------------------------------- churn data

def test_churn_dataset_inferred_from_purchases_by_hand():
    acc = pd.DataFrame({"account_id": ["a1", "a2", "a3"], "industry": ["Tech", "Retail", "Tech"]})
    purchases = pd.DataFrame({"account_id": ["a1", "a1", "a2", "a3"],
                              "purchased_at": ts(["2024-01-01", "2025-01-01", "2025-01-01", "2026-09-01"]),
                              "amount": [100.0, 100.0, 50.0, 10.0]})
    acts = pd.DataFrame({"account_id": ["a1", "a1", "a1", "a2"],
                         "occurred_at": ts(["2025-02-01", "2025-03-01", "2025-06-01", "2025-06-15"])})
    d = he.churn_dataset(acc, at=T("2026-01-01"), purchases=purchases, activities=acts, cover_days=455,
                         horizon_days=182, n_refs=1)
    assert d.refs == [T("2026-01-01") - pd.Timedelta(days=182)]  # 2025-07-03
    ref = d.frame[d.frame["ref"] == d.refs[0]].set_index("account_id")
    # at 2025-07-03: a1 and a2 bought 2025-01-01 (active to 2026-03-31); a3 not a customer yet
    assert sorted(ref.index) == ["a1", "a2"]
    # by 2026-01-01 neither bought again; 2025-01-01 + 455 d = 2026-03-31 > 2026-01-01: still active, no churn
    assert ref["churned"].tolist() == [0.0, 0.0]
    assert ref.loc["a1", "days_since_purchase"] == pytest.approx(183.0)  # 2025-01-01 → 2025-07-03
    assert ref.loc["a1", "n_purchases_2y"] == 2 and ref.loc["a1", "revenue_2y"] == pytest.approx(200.0)
    assert ref.loc["a1", "n_activities_90d"] == 1  # 2025-06-01 in [04-04, 07-03)
    # 180 days before that window [2024-10-06, 2025-04-04): 2 activities → 1 per 90 days; change 1/1 − 1 = 0
    assert ref.loc["a1", "activity_change"] == pytest.approx(0.0)
    assert ref.loc["a2", "days_since_activity"] == pytest.approx(18.0)
    assert ref.loc["a1", "industry"] == "Tech"
    now = d.frame[d.frame["ref"] == T("2026-01-01")]
    assert now["churned"].isna().all() and sorted(now["account_id"]) == ["a1", "a2"]  # a3 first buys later


def test_churn_dataset_inferred_labels_a_lapse():
    acc = pd.DataFrame({"account_id": ["a1", "a2"]})
    purchases = pd.DataFrame({"account_id": ["a1", "a2", "a2"], "purchased_at": ts(["2025-01-01"] * 2 + ["2025-12-01"]),
                              "amount": [1.0, 1.0, 1.0]})
    d = he.churn_dataset(acc, at=T("2026-06-01"), purchases=purchases, cover_days=365, horizon_days=182, n_refs=1)
    ref = d.frame[d.frame["churned"].notna()].set_index("account_id")
    # R = 2025-12-01: a1 covered to 2026-01-01 and lapses before R + 182 d; a2 renewed on R (after R: not seen)
    assert ref.loc["a1", "churned"] == 1.0 and ref.loc["a2", "churned"] == 0.0


def test_churn_dataset_recorded_churn_and_custom_attributes():
    acc = pd.DataFrame({"account_id": ["a1", "a2", "a3", "a4"],
                        "created_at": ts(["2020-01-01", "2020-01-01", "2026-03-01", "2020-01-01"]),
                        "churned_at": ts([None, "2026-02-01", None, "2025-01-01"]),
                        "seats": pd.array([10, 3, 5, 1], dtype="Int64"),
                        "is_vip": pd.array([True, False, None, False], dtype="boolean")})
    d = he.churn_dataset(acc, at=T("2026-06-01"), n_refs=1, horizon_days=182, attributes=["seats", "is_vip"])
    assert d.mode == "recorded" and d.dated
    ref = d.frame[d.frame["churned"].notna()].set_index("account_id")
    # R = 2025-12-01: a4 churned before R (gone), a3 not created yet; a2 churns 2026-02-01 ≤ R + 182 d
    assert sorted(ref.index) == ["a1", "a2"] and ref.loc["a2", "churned"] == 1.0 and ref.loc["a1", "churned"] == 0
    assert ref.loc["a1", "seats"] == 10 and d.booleans == ["is_vip"] and "seats" in d.numeric
    now = d.frame[d.frame["churned"].isna()]
    assert sorted(now["account_id"]) == ["a1", "a3"]  # the customers still here at the scoring date


def test_churn_recorded_without_dates_uses_one_reference_date():
    acc = pd.DataFrame({"account_id": ["a1", "a2"], "churned_at": ts(["2018-12-31", None])})
    d = he.churn_dataset(acc, at=T("2019-01-01"), n_refs=8)
    assert not d.dated and len(d.refs) == 1 and d.score_ref == T("2018-12-31")


def test_churn_model_failure_modes_give_a_message():
    acc = pd.DataFrame({"account_id": ["a1"]})
    no_features = he.fit_churn_model(he.churn_dataset(acc, at=T("2026-01-01"), purchases=pd.DataFrame(
        {"account_id": ["a1"], "purchased_at": ts(["2025-06-01"]), "amount": [1.0]}), n_refs=2))
    assert not no_features.ok and "Too little history" in no_features.message
    assert "Too little history" in he.describe_churn_model(no_features).text
    assert he.model_quality(no_features) is None and he.describe_churn_risk(no_features) is None
    # everybody churned: nothing to tell churners from
    n = 200
    everyone = pd.DataFrame({"account_id": [f"a{i}" for i in range(n)], "churned_at": ts(["2018-12-31"] * n),
                             "industry": ["x", "y"] * (n // 2)})
    model = he.fit_churn_model(he.churn_dataset(everyone, at=T("2019-01-01")))
    assert not model.ok and "10 churns and 10 stays" in model.message
    # churn recorded, but not a single attribute or table to learn it from
    bare = pd.DataFrame({"account_id": ["a1", "a2"], "churned_at": ts(["2025-12-01", None])})
    nothing = he.fit_churn_model(he.churn_dataset(bare, at=T("2026-01-01")))
    assert not nothing.ok and "nothing to predict churn from" in nothing.message
    # neither recorded nor purchases to infer it from (Maven): churn cannot be told, which the message says
    untold = he.fit_churn_model(he.churn_dataset(pd.DataFrame({"account_id": ["a1"]}), at=T("2026-01-01")))
    assert not untold.ok and "Churn cannot be told in this source" in untold.message


# ---------------------------------------------------------------------------------- planted truths (demo)

@pytest.fixture(scope="module")
def demo_slice(tiny_demo):
    con = data.connect(tiny_demo)
    return data.open_slice(params.validate_params({"source": str(tiny_demo), "region": "all", "period": "2026-Q3"}),
                           con)


def test_planted_csat_driver_is_recovered(demo_slice):
    drivers = he.csat_drivers(demo_slice)
    worst = drivers.loc[drivers["csat_effect"].idxmin()]
    assert worst["factor"] == "slow_first_response"  # no other factor lowers CSAT as much
    assert worst["csat_effect_high"] < 0 and worst["csat_effect_low"] < -CSAT_DRIVER.csat_drop / 2
    assert "first-response target" in he.describe_csat_drivers(drivers).text


def test_planted_churn_drivers_are_recovered_by_the_model(demo_slice):
    from crmlens import notebook as nb

    model = he.churn_model(demo_slice, cu.purchase_history(demo_slice), ctx=nb.context(demo_slice))
    assert model.ok and model.validation == "time"
    assert model.auc >= 0.80
    churned = model.test_scores[model.test_scores["churned"] == 1]
    assert len(churned) >= 10
    # falling activity and unresolved tickets (CHURN_DRIVERS) are among the reasons of most churned customers
    named = churned["reason_features"].map(
        lambda fs: bool({"n_activities_90d", "activity_change", "days_since_activity", "n_unresolved"} & set(fs)))
    assert named.mean() >= 0.5, (CHURN_DRIVERS, churned["reason_features"].tolist())
    # ... and among the signals the model relies on most (permutation importance on the test date)
    top = set(model.importance["feature"].head(4))
    assert top & {"n_activities_90d", "activity_change", "days_since_activity"} and "n_unresolved" in top, top
    assert model.scores["risk"].between(0, 1).all()
    calls = he.call_list(demo_slice, model, min_risk=0.0)
    assert {"rep", "account", "risk", "revenue_at_risk", "reasons"} <= set(calls.columns)
    assert calls.groupby("rep").size().max() <= 5


def test_health_kpis_on_hand_data():
    from crmlens.kpis import compute_kpi

    frames = {"surveys": surveys(), "tickets": tickets()}
    assert compute_kpi("csat", frames, Q3) == pytest.approx(3.0)
    assert compute_kpi("nps", frames, Q3) == pytest.approx(0.0)
    assert compute_kpi("first_response_on_target", frames, Q3) == pytest.approx(1 / 3)


def test_recorded_churn_by_hand():
    acc = pd.DataFrame({"account_id": ["a1", "a2", "a3", "a4", "a5"],
                        "country": ["DE", "DE", "FR", "FR", "FR"],
                        "created_at": ts(["2020-01-01", "2026-08-01", "2020-01-01", "2020-01-01", "2026-10-05"]),
                        "churned_at": ts([None, "2026-09-01", "2026-06-30", "2026-07-15", None]),
                        "vip": pd.array([True, False, True, None, False], dtype="boolean")})
    # Q3: a1 here; a2 won and lost in Q3; a3 lost before Q3 (not a customer of it); a4 lost in Q3; a5 after Q3
    out = he.recorded_churn(acc, ctx=Q3).iloc[0]
    assert (out["n_customers"], out["n_churned"]) == (3, 2)
    by = he.recorded_churn(acc, "country", ctx=Q3).set_index("segment")
    assert by.loc["DE", "churn_rate"] == pytest.approx(0.5) and by.loc["FR", "churn_rate"] == pytest.approx(1.0)
    vip = he.recorded_churn(acc, "vip", ctx=Q3).set_index("segment")  # yes/no fields read as words
    assert vip["n_customers"].to_dict() == {"yes": 1, "no": 1, "(unknown)": 1}
    assert he.recorded_churn(acc.drop(columns="churned_at"), ctx=Q3) is None  # not recorded: not a zero
    with pytest.raises(Exception, match="not a column of accounts"):
        he.recorded_churn(acc, "tier", ctx=Q3)


def test_churn_reasons_by_hand():
    acc = pd.DataFrame({"account_id": ["a1", "a2", "a3"], "created_at": ts(["2020-01-01"] * 3),
                        "churned_at": ts(["2026-08-01", "2026-09-01", None])})
    sv = pd.DataFrame({"account_id": ["a1", "a1", "a2", "a3", "a2"],
                       "responded_at": ts(["2026-01-01", "2026-06-01", "2026-05-01", "2026-06-01", "2024-01-01"]),
                       "csat": [4, 2, 1, 5, 3], "driver": ["price", "support", "support", "price", "price"]})
    out = he.churn_reasons(acc, None, ctx=Q3, surveys=sv).set_index("driver")
    # a1's last answer before it left named support (CSAT 2), a2's too (CSAT 1; its 2024 answer is too old);
    # a3 did not leave
    assert out["n_churned_naming"].to_dict() == {"support": 2}
    assert out.loc["support", "csat_mean"] == pytest.approx(1.5) and out.loc["support", "share"] == 1.0
    assert he.describe_churn_reasons(out.reset_index()) is None  # two answers: too few for a finding
    assert he.churn_reasons(acc, None, ctx=Q3, surveys=sv.drop(columns="driver")) is None


def test_a_canonical_column_the_source_lacks_is_not_in_this_source(demo_slice):
    assert not data.has_column(demo_slice, "accounts", "churned_at")  # the frame has it, empty: not recorded
    assert "churned_at" in demo_slice.tables["accounts"].columns
    assert data.has_column(demo_slice, "accounts", "industry")
    assert he.recorded_churn(demo_slice) is None
    assert "customer_churn_rate" in he.headline_kpis(demo_slice)
