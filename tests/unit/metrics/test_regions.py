"""Tests of crmlens.metrics.regions: hand-computed fixtures, failure modes, planted truths, Maven cross-check."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from crmlens import data, kpis
from crmlens.errors import ParameterError, SchemaError
from crmlens.kpis import KpiContext
from crmlens.metrics import regions as rg
from crmlens.params import validate_params
from crmlens.periods import parse_period
from crmlens.store import LATEST_ATTR
from crmlens.truths import COMPETITOR_STRONGHOLD, FORGOTTEN_CUSTOMERS, TEAM_BELOW_TARGET

T = pd.Timestamp
NaT = pd.NaT
Q3 = KpiContext(period_start=T("2026-07-01"), period_end=T("2026-10-01"), region="all", as_of=T("2026-10-01"),
                period_label="2026-Q3")
Q2 = KpiContext(period_start=T("2026-04-01"), period_end=T("2026-07-01"), region="all", as_of=T("2026-10-01"),
                period_label="2026-Q2")


def frame(rows: list[tuple], columns: str, **dtypes: str) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=columns.split())
    for col in df.columns:
        if col.endswith("_at") or col in dtypes.get("times", ""):
            df[col] = pd.to_datetime(df[col]).astype("datetime64[us]")
        elif col.startswith("is_"):
            df[col] = df[col].astype("boolean")
        elif col in ("amount", "target_amount", "market_size_amount"):
            df[col] = df[col].astype("float64")
        else:
            df[col] = df[col].astype("string")
    return df


def fixture_frames() -> dict[str, pd.DataFrame]:
    """Two regions (R1, R2), two teams, four reps (D inactive), six accounts, Q3 2026 deals and activities."""
    regions = frame([("R1", "North"), ("R2", "South")], "region_id name")
    teams = frame([("T1", "Team One", "R1"), ("T2", "Team Two", "R2")], "team_id name region_id")
    reps = frame([("A", "Ann", "T1", "R1", True), ("B", "Bob", "T1", "R1", True), ("C", "Cai", "T2", "R2", True),
                  ("D", "Dan", "T2", "R2", False)], "rep_id name team_id region_id is_active")
    accounts = frame([
        ("a1", "Acme", "CN", "P1", "X", "R1", "A", "A", "2020-01-01", False, None),
        ("a2", "Beta", "CN", "P1", "Y", "R1", "C", "A", "2020-01-01", False, None),
        ("a3", "Core", "CN", "P2", "Z", "R2", "B", "C", "2020-01-01", False, None),
        ("a4", "Dyna", "CN", "P2", "Z", "R2", "B", None, "2020-01-01", True, "2026-08-01"),
        ("a5", "Echo", "CN", "P1", "X", "R1", "C", None, "2020-01-01", True, "2025-01-01"),
        ("a6", "Flux", "CN", "P1", "X", "R1", "B", "B", "2026-10-15", False, None),
    ], "account_id name country province city region_id level owner_rep_id created_at is_public_pool "
       "pool_entered_at")
    opportunities = frame([
        ("o1", "a1", "A", "R1", "2026-06-01", "2026-07-11", True, 100.0, "new"),
        ("o2", "a2", "A", "R1", "2026-07-01", "2026-08-01", False, 50.0, "new"),
        ("o3", "a3", "C", "R2", "2026-05-02", "2026-08-30", True, 300.0, "new"),
        ("o4", "a1", "B", "R1", "2026-08-01", None, None, 80.0, "new"),
        ("o5", "a3", "C", "R2", "2025-01-01", "2025-03-01", True, 10.0, "new"),
        ("o6", None, "A", "R1", "2026-07-15", "2026-09-01", True, 20.0, "new"),
    ], "opportunity_id account_id owner_rep_id region_id created_at closed_at is_won amount deal_type")
    contracts = frame([
        ("k1", "a1", "A", "R1", "2026-07-15", 100.0),
        ("k2", "a2", "A", "R1", "2026-09-10", 40.0),
        ("k0", "a3", "C", "R2", "2025-03-05", 10.0),
    ], "contract_id account_id owner_rep_id region_id signed_at amount")
    payments = frame([("p1", "k1", "2026-08-01", 60.0), ("p2", "k0", "2026-07-20", 5.0),
                      ("p3", "k1", "2026-06-01", 40.0)], "payment_id contract_id received_at amount")
    activities = frame([
        ("ac1", "A", "R1", "a1", "call", None, "2026-09-01", "2026-09-01"),
        ("ac2", "A", "R1", "a2", "email", "2026-07-10", "2026-07-10", "2026-07-10"),
        ("ac3", "C", "R2", "a3", "meeting", "2026-08-15", None, None),
        ("ac4", "C", "R2", "a3", "call", "2026-09-20", "2026-09-20", "2026-09-21"),
        ("ac5", "B", "R1", "a1", "visit", None, "2026-08-10", None),
        ("ac6", "A", "R1", None, "call", None, "2026-06-20", None),
    ], "activity_id rep_id region_id account_id activity_type due_at occurred_at completed_at")
    leads = frame([
        ("l1", "A", "R1", "2026-07-01 00:00", "2026-07-01 06:00"),
        ("l2", "A", "R1", "2026-07-02 00:00", "2026-07-02 10:00"),
        ("l3", "C", "R2", "2026-07-03 00:00", None),
        ("l4", "A", "R1", "2026-06-30 00:00", "2026-06-30 01:00"),
        ("l5", None, "R1", "2026-07-05 00:00", "2026-07-05 02:00"),
    ], "lead_id owner_rep_id region_id created_at first_response_at")
    targets = frame([
        ("2026-Q3", "rep", "A", 240.0), ("2026-Q3", "rep", "C", 300.0), ("2026-Q3", "team", "T1", 400.0),
        ("2026-Q3", "region", "R1", 1200.0), ("2026-07", "rep", "A", 80.0), ("2026-Q2", "rep", "A", 1000.0),
    ], "period level key target_amount")
    market = frame([
        ("2026-Q3", "R1", "Core", 1000.0, "X"), ("2026-Q3", "R1", "Core", 1000.0, "Y"),
        ("2026-Q3", "R1", "Edge", 200.0, "X"), ("2026-Q3", "R2", "Core", 600.0, "X"),
        ("2026-Q2", "R1", "Core", 999.0, "X"),
    ], "period region_id product_line market_size_amount competitor")
    return {"regions": regions, "teams": teams, "reps": reps, "accounts": accounts, "opportunities": opportunities,
            "contracts": contracts, "payments": payments, "activities": activities, "leads": leads,
            "targets": targets, "market": market}


def comparison_frames() -> dict[str, pd.DataFrame]:
    """Q2 2026: A won 500, B won 200, C lost one."""
    frames = fixture_frames()
    frames["opportunities"] = frame([
        ("q1", "a1", "A", "R1", "2026-04-01", "2026-05-01", True, 500.0, "new"),
        ("q2", "a2", "B", "R1", "2026-04-01", "2026-06-01", True, 200.0, "new"),
        ("q3", "a3", "C", "R2", "2026-04-01", "2026-06-10", False, 0.0, "new"),
    ], "opportunity_id account_id owner_rep_id region_id created_at closed_at is_won amount deal_type")
    return frames


def region_ctx(region: str, base: KpiContext = Q3) -> KpiContext:
    return KpiContext(period_start=base.period_start, period_end=base.period_end, region=region, as_of=base.as_of,
                      period_label=base.period_label)


# ------------------------------------------------------------------------------------------- geography


def test_geography_by_region_hand_computed() -> None:
    g = rg.geography(fixture_frames(), Q3, level="region").set_index("region_id")
    assert list(g.index) == ["R2", "R1"]  # by bookings, descending
    assert g.loc["R1", ["n_closed", "n_won", "n_customers"]].tolist() == [3, 2, 2]  # a1 won, a2 contract k2
    assert g.loc["R1", "win_rate"] == pytest.approx(2 / 3)
    assert g.loc["R1", "bookings_amount"] == 120.0
    assert g.loc["R1", "sales_cycle_days"] == pytest.approx(44.0)  # median of 40 and 48 days
    assert g.loc["R1", "market_size_amount"] == 1200.0  # the Core segment counted once, Q2 left out
    assert g.loc["R1", "market_share_rate"] == pytest.approx(0.1)
    assert g.loc["R2", ["bookings_amount", "sales_cycle_days", "market_share_rate"]].tolist() == [300.0, 120.0, 0.5]


def test_geography_drills_down_to_city_with_unknown_places() -> None:
    g = rg.geography(fixture_frames(), Q3, level="city")
    assert list(g.columns[:4]) == ["region_id", "country", "province", "city"]
    rows = {tuple(r[:4]): r[4:] for r in g.itertuples(index=False)}
    assert set(rows) == {("R2", "CN", "P2", "Z"), ("R1", "CN", "P1", "X"), ("R1", "CN", "P1", "Y"),
                         ("R1", rg.UNKNOWN, rg.UNKNOWN, rg.UNKNOWN)}
    x = g[(g["city"] == "X")].iloc[0]
    assert (x["n_closed"], x["bookings_amount"], x["n_customers"]) == (1, 100.0, 1)
    assert g["market_size_amount"].isna().all()
    country = rg.geography(fixture_frames(), Q3, level="country")
    assert country["bookings_amount"].sum() == 420.0


def test_geography_region_filter_and_treemap_builder() -> None:
    from crmlens.charts import regions as charts

    g = rg.geography(fixture_frames(), region_ctx("R1"), level="city")
    assert set(g["region_id"]) == {"R1"}
    fig = charts.plot_geography_treemap(g, title="Bookings")
    assert len(fig.data) == 1 and fig.data[0].type == "treemap"
    text = rg.describe_geography(rg.geography(fixture_frames(), region_ctx("R1"))).text
    assert text.startswith("All bookings (120) come from R1: 2 customers, win rate 67%"), text
    found = rg.describe_geography(rg.geography(fixture_frames(), Q3))
    assert "market share ranges from 10% in R1 to 50% in R2" in found.text
    assert (found.severity, found.kpi) == ("watch", "bookings_amount") and "Grow in R1" in found.recommendation


def test_geography_unknown_level_names_the_parameter() -> None:
    with pytest.raises(ParameterError, match="level"):
        rg.geography(fixture_frames(), Q3, level="county")


def test_geography_empty_and_missing_optional_tables() -> None:
    frames = fixture_frames()
    frames["opportunities"] = frames["opportunities"].iloc[:0]
    g = rg.geography(frames, Q3)
    assert set(g["region_id"]) == {"R1", "R2"} and (g["bookings_amount"] == 0).all()
    assert g["win_rate"].isna().all()
    assert "No deal" in rg.describe_geography(g).text
    only = {"opportunities": fixture_frames()["opportunities"]}
    g = rg.geography(only, Q3, level="province")  # no accounts: every place unknown; no market
    assert set(g["province"]) == {rg.UNKNOWN} and g["market_size_amount"].isna().all()
    with pytest.raises(SchemaError, match="opportunities"):
        rg.geography({"accounts": fixture_frames()["accounts"]}, Q3)


# ---------------------------------------------------------------------------------------- leaderboards


def test_rank_with_change_ties_take_the_best_rank() -> None:
    values = pd.Series([5.0, 7.0, 5.0, float("nan")], index=["w", "x", "y", "z"])
    before = pd.Series([1.0, 9.0, 3.0, 2.0], index=["w", "x", "y", "z"])
    r = rg.rank_with_change(values, before)
    assert r["rank"].tolist()[:3] == [2, 1, 2] and pd.isna(r.loc["z", "rank"])
    assert r["comparison_rank"].tolist() == [4, 1, 2, 3]
    assert r["rank_change"].tolist()[:3] == [2, 0, 0]


def test_leaderboard_bookings_by_rep_with_rank_change() -> None:
    b = rg.leaderboard(fixture_frames(), comparison_frames(), Q3, Q2, metric="bookings_amount", by="rep")
    assert b["rep_id"].tolist() == ["C", "A", "B"]  # D is inactive and sold nothing
    assert b["rank"].tolist() == [1, 2, 3]
    assert b["bookings_amount"].tolist() == [300.0, 120.0, 0.0]
    assert b["comparison_bookings_amount"].tolist() == [0.0, 500.0, 200.0]
    assert b["comparison_rank"].tolist() == [3, 1, 2]
    assert b["rank_change"].tolist() == [2, -1, -1]
    assert b["name"].tolist() == ["Cai", "Ann", "Bob"]
    found = rg.describe_leaderboard(b)
    text = found.text
    assert text.startswith("Cai leads on bookings") and "Cai climbed the most (2 places, now #1)" in text
    assert "Ann and Bob fell the most (1 place each)" in text and text.endswith("Last is Bob, with 0.")
    assert found.kpi == "bookings_amount" and 0 <= found.weight <= 1


@pytest.mark.parametrize(("metric", "by", "expected"), [
    ("win_rate", "rep", {"C": 1.0, "A": 2 / 3, "B": None}),
    ("win_rate", "team", {"T2": 1.0, "T1": 2 / 3}),
    ("bookings_amount", "region", {"R2": 300.0, "R1": 120.0}),
    ("n_won", "rep", {"A": 2, "C": 1, "B": 0}),
    ("n_new_opportunities", "rep", {"A": 2, "B": 1, "C": 0}),
    ("n_new_customers", "rep", {"A": 1, "B": 0, "C": 0}),  # a3 won before (o5): not new
    ("contract_amount", "rep", {"A": 140.0, "B": 0.0, "C": 0.0}),
    ("n_contracts", "team", {"T1": 2, "T2": 0}),
    ("payments_amount", "rep", {"A": 60.0, "C": 5.0, "B": 0.0}),
    ("n_activities", "rep", {"A": 2, "B": 1, "C": 1}),
    ("attainment_rate", "rep", {"A": 0.5, "C": 1.0, "B": None}),
    ("attainment_rate", "team", {"T1": 0.3, "T2": None}),
])
def test_leaderboard_values(metric: str, by: str, expected: dict) -> None:
    b = rg.leaderboard(fixture_frames(), comparison_frames(), Q3, Q2, metric=metric, by=by)
    key = {"rep": "rep_id", "team": "team_id", "region": "region_id"}[by]
    got = dict(zip(b[key], b[metric], strict=True))
    assert set(got) == set(expected)
    for k, v in expected.items():
        assert (pd.isna(got[k]) if v is None else got[k] == pytest.approx(v)), (k, got[k], v)
    assert b["rank"].dropna().is_monotonic_increasing


def test_leaderboard_lists_inactive_reps_only_with_results_and_ties_by_name() -> None:
    frames = fixture_frames()
    frames["opportunities"].loc[1, ["owner_rep_id", "is_won", "amount"]] = ["D", True, 120.0]  # o2 won by Dan
    b = rg.leaderboard(frames, None, Q3, metric="bookings_amount")
    assert b["rep_id"].tolist() == ["C", "A", "D", "B"]  # Ann and Dan tie at 120: ordered by name
    assert b["rank"].tolist() == [1, 2, 2, 4]


def test_leaderboard_region_filter_and_history() -> None:
    b = rg.leaderboard(fixture_frames(), None, region_ctx("R1"), metric="bookings_amount")
    assert b["rep_id"].tolist() == ["A", "B"] and b["rank_change"].isna().all()
    frames = fixture_frames()
    history = {"opportunities": frames["opportunities"].iloc[[4]], "contracts": frames["contracts"].iloc[[2]]}
    frames["opportunities"] = frames["opportunities"].drop(index=4)  # o5: a3's earlier win
    frames["contracts"] = frames["contracts"].drop(index=2)  # k0: signed before the period
    without = rg.leaderboard(frames, None, Q3, metric="n_new_customers")
    assert dict(zip(without["rep_id"], without["n_new_customers"], strict=True))["C"] == 1
    with_history = rg.leaderboard(frames, None, Q3, metric="n_new_customers", history=history)
    assert dict(zip(with_history["rep_id"], with_history["n_new_customers"], strict=True))["C"] == 0
    pays = rg.leaderboard(frames, None, Q3, metric="payments_amount", history=history)
    assert dict(zip(pays["rep_id"], pays["payments_amount"], strict=True))["C"] == 5.0


def test_new_customers_follow_deal_type() -> None:
    frames = fixture_frames()
    opps = frames["opportunities"].drop(index=4).assign(deal_type=pd.array(["upsell", *["new"] * 4], dtype="string"))
    assert rg.first_won_deals(opps, Q3)["account_id"].tolist() == ["a3"]  # a1's won deal is an upsell


def test_attainment_of_a_range_sums_the_quarters_inside() -> None:
    period = parse_period("2026-07-01..2026-09-30")
    ctx = KpiContext(period_start=period.start, period_end=period.end, as_of=Q3.as_of, period_label=period.label)
    b = rg.leaderboard(fixture_frames(), None, ctx, metric="attainment_rate")
    assert dict(zip(b["rep_id"], b["attainment_rate"], strict=True))["A"] == pytest.approx(0.5)


def test_leaderboard_overview_skips_metrics_without_tables() -> None:
    frames = {k: v for k, v in fixture_frames().items() if k not in ("contracts", "payments", "activities")}
    o = rg.leaderboard_overview(frames, None, Q3, by="team")
    assert o["team_id"].tolist() == ["T2", "T1"]
    assert set(o.attrs["skipped"]) == {"contract_amount", "n_contracts", "payments_amount", "n_activities"}
    assert "bookings_amount_rank" in o.columns and "contract_amount" not in o.columns


def test_leaderboard_overview_of_chosen_metrics_equals_the_full_one() -> None:
    frames = fixture_frames()
    full = rg.leaderboard_overview(frames, None, Q3, by="rep")
    some = rg.leaderboard_overview(frames, None, Q3, by="rep", metrics=["bookings_amount", "win_rate"])
    assert [c for c in some.columns if c not in ("rep_id", "name")] == [
        "bookings_amount", "bookings_amount_rank", "bookings_amount_rank_change",
        "win_rate", "win_rate_rank", "win_rate_rank_change"]
    pd.testing.assert_frame_equal(some, full[some.columns.tolist()])
    with pytest.raises(ParameterError, match="metrics"):
        rg.leaderboard_overview(frames, None, Q3, metrics=["revenue"])


def test_leaderboard_failure_modes() -> None:
    frames = fixture_frames()
    with pytest.raises(ParameterError, match="metric"):
        rg.leaderboard(frames, None, Q3, metric="revenue")
    with pytest.raises(ParameterError, match="by"):
        rg.leaderboard(frames, None, Q3, by="country")
    with pytest.raises(ParameterError, match="metric"):
        rg.leaderboard_tables("revenue")
    assert rg.leaderboard_tables("payments_amount") == ("payments", "contracts")
    with pytest.raises(SchemaError, match="contracts"):
        rg.leaderboard({"opportunities": frames["opportunities"]}, None, Q3, metric="contract_amount")
    empty = {k: v.iloc[:0] for k, v in frames.items()}
    b = rg.leaderboard(empty, None, Q3, metric="bookings_amount")
    assert b.empty
    assert "Nobody" in rg.describe_leaderboard(b).text


# ----------------------------------------------------------------------------------- team effectiveness


def test_activities_per_rep_by_team() -> None:
    a = rg.activities_per_rep(fixture_frames(), Q3, by="team").set_index("team_id")
    assert a.loc["T1", ["n_reps", "n_activities"]].tolist() == [2, 3]
    assert a.loc["T1", ["activities_per_rep", "call_per_rep", "email_per_rep", "visit_per_rep"]].tolist() == \
        [1.5, 0.5, 0.5, 0.5]
    assert a.loc["T2", ["n_reps", "n_activities", "call_per_rep", "email_per_rep"]].tolist() == [1, 1, 1.0, 0.0]
    assert "meeting_per_rep" not in a.columns  # the meeting never happened
    assert rg.describe_activities_per_rep(a.reset_index()).text.startswith("Team One is the most active")
    with pytest.raises(ParameterError, match="by"):
        rg.activities_per_rep(fixture_frames(), Q3, by="desk")


def test_activity_completion() -> None:
    c = rg.activity_completion(fixture_frames(), Q3, by="rep").set_index("rep_id")
    assert c.loc["A", ["n_due", "n_completed", "n_overdue"]].tolist() == [1, 1, 0]
    assert c.loc["C", ["n_due", "n_completed", "completion_rate", "n_overdue"]].tolist() == [2, 1, 0.5, 1]
    assert pd.isna(c.loc["B", "completion_rate"])
    found = rg.describe_activity_completion(c.reset_index())
    assert found.text.startswith("67% of the 3 activities")
    assert "Cai completes the fewest (50%, 1 overdue)" in found.text
    assert found.recommendation == "Ask Cai to close their 1 overdue activity."
    frames = fixture_frames()
    frames["activities"] = frames["activities"].drop(columns=["completed_at"])
    assert rg.activity_completion(frames, Q3, by="region")["n_completed"].sum() == 0


def test_lead_first_response() -> None:
    r = rg.lead_first_response(fixture_frames(), Q3, by="rep").set_index("rep_id")
    assert set(r.index) == {"A", "C"}
    assert r.loc["A", ["n_leads", "n_responded", "median_first_response_hours"]].tolist() == [2, 2, 8.0]
    assert r.loc["C", "response_rate"] == 0.0 and pd.isna(r.loc["C", "median_first_response_hours"])
    team = rg.lead_first_response(fixture_frames(), Q3, by="team").set_index("team_id")
    assert team.loc["T1", "median_first_response_hours"] == 8.0
    found = rg.describe_lead_first_response(r.reset_index())
    assert "8.0 hours" in found.text and "Cai answered none of their new leads (1 lead)" in found.text
    assert found.kpi == "lead_first_response_days" and found.severity == "watch"


# ----------------------------------------------------------------------------------- customer follow-up


def test_account_follow_up_and_forgotten_by_rep() -> None:
    state = rg.account_follow_up(fixture_frames(), Q3, days=60).set_index("account_id")
    assert list(state.index) == ["a1", "a2", "a3"]  # a6 is created after the reference time; pool left out
    assert state["days_since_activity"].tolist() == [30.0, 83.0, 11.0]
    assert state["is_forgotten"].tolist() == [False, True, False]
    assert state.loc["a1", ["n_open_opportunities", "open_opportunity_amount"]].tolist() == [1, 80.0]
    f = rg.forgotten_by_rep(fixture_frames(), Q3, days=60)
    assert f["rep_id"].tolist() == ["A", "C"] and f["rank"].tolist() == [1, 2]
    assert f[["n_owned_accounts", "n_forgotten_accounts", "forgotten_rate"]].iloc[0].tolist() == [2, 1, 0.5]
    found = rg.describe_forgotten_by_rep(f)
    assert "Ann (50% of 2)" in found.text and found.severity == "act" and found.kpi == "forgotten_accounts"
    assert found.recommendation == "A Ann: call the 1 account silent for 60+ days."
    longer = rg.forgotten_by_rep(fixture_frames(), Q3, days=90)
    assert longer["n_forgotten_accounts"].sum() == 0
    assert rg.forgotten_count(fixture_frames(), Q3, days=60) == 1.0  # the KPI's count: a2
    assert rg.forgotten_count(fixture_frames(), Q3, days=10) == 3.0 and rg.forgotten_count(fixture_frames(), Q3,
                                                                                             days=90) == 0.0


def test_follow_up_failure_modes() -> None:
    with pytest.raises(ParameterError, match="days"):
        rg.account_follow_up(fixture_frames(), Q3, days=0)
    with pytest.raises(ParameterError, match="top_n"):
        rg.call_next(fixture_frames(), Q3, top_n=0)
    with pytest.raises(SchemaError, match="activities"):
        rg.forgotten_by_rep({"accounts": fixture_frames()["accounts"]}, Q3)
    frames = fixture_frames()
    frames["activities"] = frames["activities"].iloc[:0]
    state = rg.account_follow_up(frames, Q3)
    assert state["is_forgotten"].all() and state["days_since_activity"].isna().all()


def test_call_next_scoring_rule() -> None:
    c = rg.call_next(fixture_frames(), Q3, days=60, top_n=2)
    assert c[["owner_rep_id", "priority", "account_id"]].values.tolist() == [["A", 1, "a1"], ["A", 2, "a2"],
                                                                              ["C", 1, "a3"]]
    # a1: 30/365 × 3 (level A) × (1 + 80/80); a2: 83/365 × 1 × 1; a3: 11/365 × 2 × 1
    assert c["score"].tolist() == pytest.approx([30 / 365 * 6, 83 / 365, 11 / 365 * 2], abs=1e-6)
    assert rg.call_next(fixture_frames(), Q3, top_n=1)["account_id"].tolist() == ["a1", "a3"]
    assert "Ann → Acme (level A, silent for 30 days, 80 in open deals)" in rg.describe_call_next(c).text


def test_followups_by_rep() -> None:
    f = rg.followups_by_rep(fixture_frames(), Q3).set_index("rep_id")
    assert f.loc["A", ["n_followups", "n_accounts_followed", "n_owned_accounts", "coverage_rate"]].tolist() == \
        [2, 2, 2, 1.0]
    assert f.loc["B", ["n_followups", "n_owned_accounts", "coverage_rate"]].tolist() == [1, 1, 0.0]
    assert "D" not in f.index  # inactive, no follow-up, no account
    assert "Bob touched only 0%" in rg.describe_followups_by_rep(f.reset_index()).text


def test_public_pool() -> None:
    p = rg.public_pool(fixture_frames(), Q3).set_index("region_id")
    assert p.loc["R1", ["n_accounts", "n_pool_accounts", "n_entered"]].tolist() == [4, 1, 0]
    assert p.loc["R2", ["n_accounts", "n_pool_accounts", "n_entered", "pool_rate"]].tolist() == [2, 1, 1, 0.5]
    assert p.loc["R1", "median_days_in_pool"] == 638.0 and p.loc["R2", "median_days_in_pool"] == 61.0
    assert "flow out cannot" in rg.describe_public_pool(p.reset_index()).text
    frames = fixture_frames()
    frames["accounts"] = frames["accounts"].assign(is_public_pool=pd.array([None] * 6, dtype="boolean"))
    unknown = rg.public_pool(frames, Q3)
    assert unknown["n_pool_accounts"].isna().all()
    assert "Not in this source" in rg.describe_public_pool(unknown).text


def test_history_periods_for() -> None:
    q3 = parse_period("2026-Q3")
    assert rg.history_periods_for(q3, T("2026-10-01"), 60) == 1
    assert rg.history_periods_for(q3, T("2026-10-01"), 120) == 2
    assert rg.history_periods_for(parse_period("2026-09"), T("2026-10-01"), 60) == 2
    assert rg.history_periods_for(q3, T("2026-08-01"), 60) == 2  # as-of inside the period


# --------------------------------------------------------------------------------------------------- KPIs


KPI_NAMES = ["active_reps", "activities_per_rep", "activity_completion_rate", "lead_first_response_days",
             "forgotten_accounts", "public_pool_accounts", "new_customers"]


def test_kpis_are_registered_with_units_and_directions() -> None:
    registry = kpis.load_all()
    got = {n: (registry[n].unit, registry[n].direction, registry[n].area) for n in KPI_NAMES}
    assert got == {
        "active_reps": ("count", "higher", rg.AREA), "activities_per_rep": ("ratio", "higher", rg.AREA),
        "activity_completion_rate": ("rate", "higher", rg.AREA),
        "lead_first_response_days": ("days", "lower", rg.AREA), "forgotten_accounts": ("count", "lower", rg.AREA),
        "public_pool_accounts": ("count", "neutral", rg.AREA), "new_customers": ("count", "higher", rg.AREA)}


def test_kpi_values_on_the_fixture() -> None:
    frames = fixture_frames()
    values = {n: kpis.compute_kpi(n, frames, Q3) for n in KPI_NAMES}
    assert values == pytest.approx({"active_reps": 3.0, "activities_per_rep": 4 / 3,
                                    "activity_completion_rate": 2 / 3, "lead_first_response_days": 0.25,
                                    "forgotten_accounts": 1.0, "public_pool_accounts": 2.0, "new_customers": 1.0})
    assert kpis.compute_kpi("public_pool_accounts", frames, region_ctx("R2")) == 1.0


def test_kpis_without_data_are_none() -> None:
    frames = fixture_frames()
    empty = {k: v.iloc[:0] for k, v in frames.items()}
    for name in ("active_reps", "activity_completion_rate", "lead_first_response_days", "new_customers"):
        assert kpis.compute_kpi(name, empty, Q3) is None, name
    assert kpis.compute_kpi("activities_per_rep", {"opportunities": frames["opportunities"]}, Q3) is None
    september = KpiContext(period_start=T("2026-09-01"), period_end=T("2026-10-01"), as_of=T("2026-10-01"))
    assert kpis.compute_kpi("forgotten_accounts", frames, september) is None  # a month cannot see 60 days
    no_types = {**frames, "opportunities": frames["opportunities"].drop(index=4)}  # all "new", no earlier deal
    assert kpis.compute_kpi("new_customers", no_types, Q3) is None


# -------------------------------------------------------------------------------- planted truths (tiny demo)


@pytest.fixture(scope="module")
def demo_slice(tiny_demo):
    params = validate_params({"source": str(tiny_demo), "region": "all", "period": "2026-Q3", "as_of": "2026-10-01",
                              "forgotten_days": FORGOTTEN_CUSTOMERS.inactive_days})
    return data.open_slice(params, data.connect(tiny_demo))


def _ctx(s, which: str = "current") -> KpiContext:
    from crmlens import notebook

    return notebook.context(s, which)


def test_planted_forgotten_customers_come_first(demo_slice) -> None:
    s = demo_slice
    n = rg.history_periods_for(s.period, s.as_of, s.params.forgotten_days)
    frames = s.tables.with_frames(activities=s.history("activities", n))
    ranking = rg.forgotten_by_rep(frames, _ctx(s), days=s.params.forgotten_days)
    assert set(ranking["rep_id"].head(2)) == set(FORGOTTEN_CUSTOMERS.rep_ids), ranking.head()
    assert (ranking["forgotten_rate"].head(2) > 0.5).all()
    assert ranking["forgotten_rate"].iloc[2] < ranking["forgotten_rate"].iloc[1]


@pytest.mark.parametrize("region", ["all", "East"])
def test_last_activities_from_the_engine_equal_the_history_path(tiny_demo, region) -> None:
    """`last_activities` (a group-by in the engine) gives the follow-up states that the activity history gives."""
    params = validate_params({"source": str(tiny_demo), "region": region, "period": "2026-Q3",
                              "as_of": "2026-09-15", "forgotten_days": 45})
    s = data.open_slice(params, data.connect(tiny_demo))
    days = max(s.params.forgotten_days, rg.STALENESS_CAP_DAYS)
    history = s.history("activities", rg.history_periods_for(s.period, s.as_of, days))
    latest = rg.last_activities(s, days)
    assert len(latest) == latest["account_id"].nunique() > 0 and len(latest) < len(history)
    by_history = s.tables.with_frames(activities=history)
    by_engine = s.tables.with_frames(activities=latest)
    ctx = _ctx(s)
    for fn in (rg.account_follow_up, rg.forgotten_by_rep, rg.call_next):
        pd.testing.assert_frame_equal(fn(by_engine, ctx, days=45), fn(by_history, ctx, days=45), obj=fn.__name__)
    # the KPI's count (no per-account frame) is the per-account states' count, from the engine or from frames
    for frames in (by_engine, by_history, s.tables):
        state = rg.account_follow_up(frames, ctx, days=45)
        assert rg.forgotten_count(frames, ctx, days=45) == float(state["is_forgotten"].sum()) > 0
    ref = rg.reference_time(ctx)
    pd.testing.assert_series_equal(rg.last_activity(latest, ref), rg.last_activity(history, ref))
    # the store flags its result as one row per account: asked again (same or later time) it is not regrouped
    assert latest.attrs[LATEST_ATTR] == ("occurred_at", "account_id", ref)
    regrouped = latest.copy()
    regrouped.attrs = {}
    for before in (ref, ref + pd.Timedelta(days=1)):
        pd.testing.assert_frame_equal(data.latest_in_frame(latest, "occurred_at", "account_id", before),
                                      data.latest_in_frame(regrouped, "occurred_at", "account_id", before))


@pytest.mark.parametrize("region", ["all", "West"])
def test_follow_up_on_slice_tables_uses_the_engine_and_equals_pandas(tiny_demo, region) -> None:
    """On a slice's tables each account's latest activity comes from the engine (`SliceTables.latest`); the
    states equal those computed in pandas from the same frames, and with the KPI for both periods."""
    params = validate_params({"source": str(tiny_demo), "region": region, "period": "2026-Q3",
                              "as_of": "2026-09-20", "forgotten_days": 30})
    s = data.open_slice(params, data.connect(tiny_demo))
    for frames, which in ((s.tables, "current"), (s.comparison, "comparison")):
        ctx = _ctx(s, which)
        engine = rg.account_follow_up(frames, ctx, days=30)
        assert "activities" not in frames.loaded()  # the activities were not read into pandas
        plain = {n: frames[n] for n in ("accounts", "activities", "opportunities", "reps", "teams")}
        pd.testing.assert_frame_equal(engine, rg.account_follow_up(plain, ctx, days=30))
        assert rg.kpi_forgotten_accounts(frames, ctx) == rg.kpi_forgotten_accounts(plain, ctx)
    given = s.tables.with_frames(activities=s.tables["activities"].iloc[:0])  # a frame handed in wins
    assert given.latest("activities", "occurred_at", "account_id", s.period.end).empty


def test_planted_team_below_target_is_last_on_attainment(demo_slice) -> None:
    s = demo_slice
    board = rg.leaderboard(s.tables, s.comparison, _ctx(s), _ctx(s, "comparison"), metric="attainment_rate",
                           by="team")
    last = board.dropna(subset=["attainment_rate"]).iloc[-1]
    assert last["team_id"] == TEAM_BELOW_TARGET.team_id
    assert last["attainment_rate"] == pytest.approx(TEAM_BELOW_TARGET.attainment, abs=0.02)


def test_planted_competitor_stronghold_has_the_lowest_market_share(demo_slice) -> None:
    g = rg.geography(demo_slice.tables, _ctx(demo_slice), level="region").set_index("region_id")
    share = g["market_share_rate"]
    assert share.idxmin() == COMPETITOR_STRONGHOLD.region_id, share
    assert share.drop(COMPETITOR_STRONGHOLD.region_id).min() > share[COMPETITOR_STRONGHOLD.region_id] * 1.2


# ------------------------------------------------------------------------------------ Maven cross-check


def test_maven_win_rate_by_office_matches_raw_csvs(maven_dir, maven_con) -> None:
    params = validate_params({"source": str(maven_dir), "mapping": "params/sources/maven_crm.yaml", "region": "all",
                              "period": "2016-10-01..2017-12-31"})
    s = data.open_slice(params, maven_con)
    board = rg.leaderboard(s.tables, None, _ctx(s), metric="win_rate", by="region")
    got = dict(zip(board["region_id"], board["win_rate"], strict=True))

    pipeline = pd.read_csv(maven_dir / "sales_pipeline.csv", parse_dates=["close_date"])
    teams = pd.read_csv(maven_dir / "sales_teams.csv")
    deals = pipeline.merge(teams, on="sales_agent")
    closed = deals[deals["deal_stage"].isin(["Won", "Lost"])
                   & deals["close_date"].between("2016-10-01", "2017-12-31")]
    expected = closed.groupby("regional_office")["deal_stage"].apply(lambda s: (s == "Won").mean())
    assert set(got) == set(expected.index)
    for office, rate in expected.items():
        assert math.isclose(got[office], rate, rel_tol=1e-12), office
    assert board["rank"].tolist() == [1, 2, 3]


def test_chart_builders_draw_the_computed_frames() -> None:
    from crmlens.charts import regions as charts

    frames = fixture_frames()
    board = rg.leaderboard(frames, comparison_frames(), Q3, Q2, metric="win_rate")
    fig = charts.plot_leaderboard(board, metric="win_rate", title="Win rate")
    assert list(fig.data[0].y) == ["#2 Ann ▼1", "#1 Cai ▲2"]  # reps without a rate are left out
    mix = charts.plot_activity_mix(rg.activities_per_rep(frames, Q3, by="team"))
    assert [t.name for t in mix.data] == ["call", "email", "visit"]
    forgotten = charts.plot_forgotten(rg.forgotten_by_rep(frames, Q3), threshold=0.4)
    assert list(forgotten.data[0].marker.color)[-1] == "#c62828"  # Ann (50%) is flagged, drawn last (top)
    share = charts.plot_market_share(rg.geography(frames, Q3))
    assert list(share.data[1].text) == ["50%", "10%"]
    empty = charts.plot_geography_treemap(rg.geography({"opportunities": frames["opportunities"].iloc[:0]}, Q3),
                                          title="Bookings")
    assert len(empty.data) == 0
