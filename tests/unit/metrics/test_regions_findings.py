"""Findings that hold (issue 11): each regions describe_* says only what its numbers support — ties share a rank,
equal values are not a range, one item is no comparison, a column or table the source lacks is "not in this
source" (never a zero) — and the regions charts and slice-level calls. One test per fault fixed."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from crmlens import i18n, kpis, present
from crmlens.findings import Finding
from crmlens.metrics import regions as rg
from tests.unit.metrics.test_regions import Q2, Q3, comparison_frames, fixture_frames, frame, region_ctx


def board(values: dict[str, float], before: dict[str, float] | None = None, *, metric: str = "bookings_amount",
          names: dict[str, str] | None = None) -> pd.DataFrame:
    """A rep leaderboard frame of `values` (rep_id → value), ranked as `leaderboard` ranks."""
    ids = list(values)
    now = pd.Series(values, dtype="float64")
    then = pd.Series(before if before is not None else {}, index=ids, dtype="float64")
    ranks = rg.rank_with_change(now, then)
    out = pd.DataFrame({"rep_id": pd.array(ids, dtype="string"),
                        "name": pd.array([(names or {}).get(i, i) for i in ids], dtype="string"),
                        metric: now.to_numpy(), f"comparison_{metric}": then.to_numpy()})
    out = pd.concat([out, ranks.reset_index(drop=True)], axis=1)
    out = out.sort_values(["rank", "name"], kind="mergesort").reset_index(drop=True)
    return out[["rank", "rep_id", "name", metric, f"comparison_{metric}", "comparison_rank", "rank_change"]]


# ---------------------------------------------------------------------------------------------- geography


def test_geography_equal_market_shares_are_not_a_range() -> None:
    frames = fixture_frames()
    frames["market"] = frame([("2026-Q3", "R1", "Core", 1200.0, "X"), ("2026-Q3", "R2", "Core", 3000.0, "X")],
                             "period region_id product_line market_size_amount competitor")
    found = rg.describe_geography(rg.geography(frames, Q3))  # 120/1200 = 300/3000 = 10%
    assert "ranges from" not in found.text and "same in every region: 10%" in found.text
    assert found.severity == "info" and found.recommendation == ""


def test_geography_tied_top_places_are_not_one_best() -> None:
    frames = fixture_frames()
    frames["opportunities"].loc[2, "amount"] = 120.0  # R2 now books 120, as R1 does
    found = rg.describe_geography(rg.geography(frames, Q3))
    assert found.text.startswith("R1 and R2 bring the most bookings, 120 each"), found.text


def test_geography_city_not_recorded_is_not_in_this_source() -> None:
    frames = fixture_frames()
    frames["accounts"] = frames["accounts"].assign(city=pd.array([None] * 6, dtype="string"))
    result = rg.geography(frames, Q3, level="city")
    assert result.attrs[rg.NOT_IN_SOURCE] == ["accounts.city"]
    found = rg.describe_geography(result)
    assert found.text.startswith("Not in this source") and "`accounts.city`" in found.text
    assert "(unknown)" not in found.text


# ------------------------------------------------------------------------------------------- leaderboards


def test_leaderboard_tied_last_place_is_shared_not_one_worst() -> None:
    found = rg.describe_leaderboard(board({"A": 300.0, "B": 100.0, "C": 50.0, "D": 50.0}))
    assert "C and D share last place, with 50 each." in found.text and "Last is" not in found.text


def test_leaderboard_of_equal_values_ranks_nobody() -> None:
    found = rg.describe_leaderboard(board({"A": 100.0, "B": 100.0, "C": 100.0}))
    assert found.text == "All 3 reps are level on bookings (won amount), with 100 each: nobody leads."
    for word in ("leads on", "Last", "climbed", "fell"):
        assert word not in found.text


def test_leaderboard_of_one_is_no_ranking() -> None:
    found = rg.describe_leaderboard(board({"A": 120.0, "B": float("nan")}))
    assert found.text == "Only A is on the bookings (won amount) board, with 120."


def test_leaderboard_moves_from_an_unranked_comparison_are_not_reported() -> None:
    """Everybody at 0 in the comparison period shares rank 1: a "fall" from it is no move."""
    found = rg.describe_leaderboard(board({"A": 300.0, "B": 100.0, "C": 50.0}, {"A": 0.0, "B": 0.0, "C": 0.0}))
    assert "fell" not in found.text and "climbed" not in found.text
    moved = rg.describe_leaderboard(board({"A": 300.0, "B": 100.0, "C": 50.0}, {"A": 10.0, "B": 30.0, "C": 20.0}))
    assert "A climbed the most (2 places, now #1)" in moved.text


def test_leaderboard_tied_climbers_are_named_together() -> None:
    found = rg.describe_leaderboard(board({"A": 300.0, "B": 200.0, "C": 50.0, "D": 10.0},
                                          {"A": 20.0, "B": 10.0, "C": 40.0, "D": 30.0}))
    assert "A and B climbed the most (2 places each)" in found.text
    assert "C and D fell the most (2 places each)" in found.text


def test_leaderboard_same_named_reps_are_told_apart() -> None:
    names = {"R0038": "David Huang", "R0062": "David Huang", "R0100": "Ann Lee"}
    found = rg.describe_leaderboard(board({"R0038": 300.0, "R0062": 100.0, "R0100": 50.0}, names=names))
    assert found.text.startswith("David Huang (R0038) leads") and "Last is Ann Lee, with 50." in found.text


def test_attainment_without_targets_says_so_and_low_attainment_is_acted_on() -> None:
    frames = fixture_frames()
    frames["targets"] = frames["targets"][frames["targets"]["level"] != "team"]
    result = rg.leaderboard(frames, None, Q3, metric="attainment_rate", by="team")
    assert rg.describe_leaderboard(result).text.startswith("No target is set for this period at this level")
    found = rg.describe_leaderboard(rg.leaderboard(fixture_frames(), None, Q3, metric="attainment_rate", by="team"))
    assert (found.severity, found.kpi) == ("act", "target_attainment")  # Team One: 120 of 400
    assert "Team One" in found.recommendation and "30%" in found.recommendation


# ------------------------------------------------------------------------------------- team effectiveness


def test_activities_per_rep_all_level_names_no_busiest() -> None:
    frames = fixture_frames()
    frames["activities"] = frames["activities"][frames["activities"]["rep_id"].isin(["A", "C"])]
    frames["activities"].loc[frames["activities"]["rep_id"] == "C", "occurred_at"] = pd.Timestamp("2026-09-20")
    table = rg.activities_per_rep(frames, Q3, by="rep")
    table = table[table["rep_id"].isin(["A", "C"])].reset_index(drop=True)
    assert table["activities_per_rep"].tolist() == [2.0, 2.0]
    found = rg.describe_activities_per_rep(table)
    assert found.text == "All 2 reps logged the same 2.0 activities per rep."


def test_activity_completion_all_equal_names_no_weakest() -> None:
    frames = fixture_frames()
    frames["activities"]["completed_at"] = frames["activities"]["due_at"]
    found = rg.describe_activity_completion(rg.activity_completion(frames, Q3, by="rep"))
    assert found.text == "100% of the 3 activities due in the period were completed."
    assert found.severity == "good"


def test_activity_completion_not_recorded_is_not_zero() -> None:
    frames = fixture_frames()
    frames["activities"] = frames["activities"].assign(completed_at=pd.Series(pd.NaT, index=frames["activities"].index,
                                                                              dtype="datetime64[us]"))
    result = rg.activity_completion(frames, Q3, by="rep")
    assert result["n_completed"].isna().all() and result["completion_rate"].isna().all()
    assert rg.describe_activity_completion(result).text.startswith("Not in this source")
    assert kpis.compute_kpi("activity_completion_rate", frames, Q3) is None


def test_lead_first_response_equal_times_are_not_slow_and_fast() -> None:
    frames = fixture_frames()
    frames["leads"].loc[2, "first_response_at"] = pd.Timestamp("2026-07-03 08:00")  # Cai: 8 hours, as Ann
    found = rg.describe_lead_first_response(rg.lead_first_response(frames, Q3, by="rep"))
    assert found.text == "All 2 reps answer new leads in 8.0 hours (median)."


def test_lead_first_response_not_recorded_is_not_in_this_source() -> None:
    frames = fixture_frames()
    frames["leads"] = frames["leads"].drop(columns=["first_response_at"])
    result = rg.lead_first_response(frames, Q3, by="rep")
    assert result["n_responded"].isna().all()
    assert "`leads.first_response_at`" in rg.describe_lead_first_response(result).text


# ------------------------------------------------------------------------------------- customer follow-up


def test_forgotten_equal_shares_name_no_worst_rep() -> None:
    frames = fixture_frames()
    frames["activities"] = frames["activities"].iloc[:0]  # every owned account is forgotten: A 2/2, C 1/1
    found = rg.describe_forgotten_by_rep(rg.forgotten_by_rep(frames, Q3))
    assert "2 reps have forgotten half or more of their accounts: Ann (100% of 2) and Cai (100% of 1)" in found.text
    assert "median" not in found.text  # no other rep to compare with
    assert found.recommendation == ("A Ann: call the 1 A-level account silent for 60+ days first. "
                                    "C Cai: call the 1 account silent for 60+ days.")


def test_forgotten_below_the_flag_with_equal_shares_names_nobody() -> None:
    result = pd.DataFrame({"rank": pd.array([1, 1], dtype="Int64"), "rep_id": ["A", "B"], "name": ["Ann", "Bob"],
                           "team_id": ["T1", "T1"], "n_owned_accounts": [10, 10], "n_forgotten_accounts": [2, 2],
                           "n_forgotten_a_accounts": [0, 0], "forgotten_rate": [0.2, 0.2]})
    found = rg.describe_forgotten_by_rep(result)
    assert found.text == "4 of 20 owned accounts are forgotten (no activity for 60+ days)."
    assert found.severity == "watch" and found.recommendation == ""


def test_forgotten_recommends_the_a_level_accounts_of_the_flagged_rep() -> None:
    result = pd.DataFrame({"rank": pd.array([1, 2], dtype="Int64"), "rep_id": ["R0012", "R0013"],
                           "name": ["Ann Lee", "Bo Li"], "team_id": ["T1", "T1"], "n_owned_accounts": [20, 20],
                           "n_forgotten_accounts": [16, 2], "n_forgotten_a_accounts": [14, 0],
                           "forgotten_rate": [0.8, 0.1]})
    result.attrs["days"] = 60
    found = rg.describe_forgotten_by_rep(result)
    assert found.recommendation == "R0012 Ann Lee: call the 14 A-level accounts silent for 60+ days first."
    assert found.severity == "act" and found.weight == pytest.approx(0.8)


def test_forgotten_without_account_owners_is_not_in_this_source() -> None:
    frames = fixture_frames()
    frames["accounts"] = frames["accounts"].assign(owner_rep_id=pd.array([None] * 6, dtype="string"))
    found = rg.describe_forgotten_by_rep(rg.forgotten_by_rep(frames, Q3))
    assert found.text.startswith("Not in this source") and "`accounts.owner_rep_id`" in found.text


def test_call_next_unknown_level_is_left_out_and_ties_are_said() -> None:
    frames = fixture_frames()
    frames["accounts"]["level"] = pd.array([None] * 6, dtype="string")
    frames["activities"] = frames["activities"].iloc[:0]  # all never contacted: the same staleness
    frames["opportunities"] = frames["opportunities"].iloc[:0]  # no pipeline: every score is 1
    found = rg.describe_call_next(rg.call_next(frames, Q3))
    assert "<NA>" not in found.text and "level" not in found.text
    assert found.text.startswith("3 accounts tie for the most urgent call (score 1.00), e.g. Ann → Acme (no activity "
                                 "on record).")


def test_followups_without_accounts_show_no_owned_zero() -> None:
    frames = {k: v for k, v in fixture_frames().items() if k != "accounts"}
    result = rg.followups_by_rep(frames, Q3)
    assert result["n_owned_accounts"].isna().all() and result["coverage_rate"].isna().all()
    found = rg.describe_followups_by_rep(result)
    assert found.text == "Ann logged the most follow-ups (2)."


def test_followups_tied_top_is_shared() -> None:
    frames = fixture_frames()
    frames["activities"].loc[4, "rep_id"] = "C"  # Bob's visit now Cai's: Ann 2, Cai 2
    found = rg.describe_followups_by_rep(rg.followups_by_rep(frames, Q3))
    assert found.text.startswith("Ann and Cai logged the most follow-ups (2 each).")


def test_public_pool_of_one_region_names_no_largest_pool() -> None:
    found = rg.describe_public_pool(rg.public_pool(fixture_frames(), region_ctx("R2")))
    assert "largest" not in found.text and found.text.startswith("1 of 2 accounts (50%) sits in the public pool.")


def test_public_pool_without_entry_times_has_no_zero_flow_in() -> None:
    frames = fixture_frames()
    frames["accounts"] = frames["accounts"].drop(columns=["pool_entered_at"])
    result = rg.public_pool(frames, Q3)
    assert result["n_entered"].isna().all() and result["n_pool_accounts"].sum() == 2
    found = rg.describe_public_pool(result)
    assert "When they entered it is not in this source." in found.text and "entered it during" not in found.text


def test_public_pool_of_a_region_when_accounts_have_no_region_is_not_in_this_source() -> None:
    frames = fixture_frames()
    frames["accounts"] = frames["accounts"].assign(region_id=pd.array([None] * 6, dtype="string"))
    found = rg.describe_public_pool(rg.public_pool(frames, region_ctx("R1")))
    assert "`accounts.region_id`" in found.text and "No account" not in found.text


# -------------------------------------------------------------------------------------- records, readers


def test_every_describe_returns_a_finding_with_a_registered_kpi() -> None:
    frames = fixture_frames()
    results = [
        (rg.describe_geography, rg.geography(frames, Q3)),
        (rg.describe_leaderboard, rg.leaderboard(frames, comparison_frames(), Q3, Q2)),
        (rg.describe_activities_per_rep, rg.activities_per_rep(frames, Q3)),
        (rg.describe_activity_completion, rg.activity_completion(frames, Q3)),
        (rg.describe_lead_first_response, rg.lead_first_response(frames, Q3)),
        (rg.describe_forgotten_by_rep, rg.forgotten_by_rep(frames, Q3)),
        (rg.describe_call_next, rg.call_next(frames, Q3)),
        (rg.describe_followups_by_rep, rg.followups_by_rep(frames, Q3)),
        (rg.describe_public_pool, rg.public_pool(frames, Q3)),
    ]
    registry = kpis.load_all()
    for describe, result in results:
        found = describe(result)
        assert isinstance(found, Finding), describe.__name__
        assert found.kpi in registry and 0 <= found.weight <= 1, (describe.__name__, found)


def test_findings_are_in_chinese_with_formatted_numbers() -> None:
    frames = fixture_frames()
    with i18n.language("zh"):
        found = rg.describe_forgotten_by_rep(rg.forgotten_by_rep(frames, Q3))
        pool = rg.describe_public_pool(rg.public_pool(frames, Q3))
    assert i18n.has_cjk(found.text) and i18n.has_cjk(found.recommendation) and "50%" in found.text
    assert i18n.has_cjk(pool.text) and "公海" in pool.text


def test_every_shown_result_column_has_a_label() -> None:
    frames = fixture_frames()
    history = {"opportunities": None, "contracts": None}
    shown = [rg.geography(frames, Q3, level="city"), rg.leaderboard(frames, comparison_frames(), Q3, Q2),
             rg.leaderboard_overview(frames, comparison_frames(), Q3, Q2, by="team", history=history),
             rg.activities_per_rep(frames, Q3), rg.activity_completion(frames, Q3), rg.lead_first_response(frames, Q3),
             rg.forgotten_by_rep(frames, Q3), rg.call_next(frames, Q3), rg.followups_by_rep(frames, Q3),
             rg.public_pool(frames, Q3)]
    assert present.unregistered(shown) == set()


# ---------------------------------------------------------------------------------------------- slices


class _Tables(dict):
    def with_frames(self, **frames: pd.DataFrame) -> _Tables:
        return _Tables({**self, **frames})


def fake_slice(frames: dict[str, pd.DataFrame]) -> SimpleNamespace:
    """A slice of the fixture frames (Q3 2026 vs Q2), as `crmlens.analysis.on_slice` reads one."""
    from crmlens.periods import parse_period

    tables = _Tables(frames)
    return SimpleNamespace(
        tables=tables, comparison=_Tables(comparison_frames()),
        params=SimpleNamespace(region="all", forgotten_days=60, churn_days=455),
        period=parse_period("2026-Q3"), comparison_period=parse_period("2026-Q2"), as_of=Q3.as_of,
        info=SimpleNamespace(vocabulary=None, source="fixture"),
        missing=lambda *names: [n for n in names if n not in tables])


def test_slice_calls_equal_frame_calls_and_skip_missing_tables(monkeypatch) -> None:
    from crmlens import notebook

    notes: list[str] = []
    monkeypatch.setattr(notebook, "md", lambda text, finding=False: notes.append(text))
    frames = fixture_frames()
    s = fake_slice(frames)
    pd.testing.assert_frame_equal(rg.geography(s, level="city"), rg.geography(frames, Q3, level="city"))
    pd.testing.assert_frame_equal(rg.leaderboard(s, metric="payments_amount", by="team"),
                                  rg.leaderboard(frames, comparison_frames(), Q3, Q2, metric="payments_amount",
                                                 by="team"))
    pd.testing.assert_frame_equal(rg.public_pool(s), rg.public_pool(frames, Q3))
    no_payments = fake_slice({k: v for k, v in frames.items() if k != "payments"})
    assert rg.leaderboard(no_payments, metric="payments_amount", by="rep") is None  # "needs table payments"
    assert rg.leaderboard(no_payments, metric="bookings_amount", by="rep") is not None
    no_teams = fake_slice({k: v for k, v in frames.items() if k != "teams"})
    assert rg.leaderboard_overview(no_teams, by="team") is None
    assert len(notes) == 2 and "`payments`" in notes[0] and "`teams`" in notes[1]
    assert all("not in this source" in n for n in notes)


def test_follow_up_frames_feed_forgotten_and_call_next_with_the_run_days() -> None:
    frames = fixture_frames()
    s = fake_slice(frames)
    s.latest = lambda *args, **kwargs: frames["activities"]  # no engine here: the frame itself
    follow = rg.follow_up_frames(s)
    assert follow["activities"] is frames["activities"]
    pd.testing.assert_frame_equal(rg.forgotten_by_rep(s, frames=follow), rg.forgotten_by_rep(frames, Q3, days=60))
    s.params.forgotten_days = 90
    assert rg.forgotten_by_rep(s, frames=follow)["n_forgotten_accounts"].sum() == 0
    assert rg.forgotten_by_rep(s, frames=follow).attrs["days"] == 90


# ---------------------------------------------------------------------------------------------- charts


def test_leaderboard_chart_keeps_same_named_reps_apart() -> None:
    from crmlens.charts import regions as charts

    names = {"R0038": "David Huang", "R0062": "David Huang", "R0137": "David Huang", "R0100": "Ann Lee"}
    frame_ = board({"R0038": 300.0, "R0062": 100.0, "R0137": 100.0, "R0100": 50.0}, names=names)
    fig = charts.plot_leaderboard(frame_, metric="bookings_amount", title="Bookings by rep")
    assert list(fig.data[0].y) == ["#4 Ann Lee", "#2 David Huang (R0062)", "#2 David Huang (R0137)",
                                   "#1 David Huang (R0038)"]
    assert list(fig.data[0].x) == [50.0, 100.0, 100.0, 300.0]  # one bar per rep: nothing merged


def test_regions_charts_key_by_id_and_speak_chinese() -> None:
    from crmlens.charts import regions as charts

    frames = fixture_frames()
    frames["teams"].loc[1, "name"] = "Team One"  # two teams of the same name
    mix = charts.plot_activity_mix(rg.activities_per_rep(frames, Q3, by="team"))
    assert list(mix.data[0].x) == ["T1", "T2"]
    assert list(mix.layout.xaxis.ticktext) == ["Team One (T1)", "Team One (T2)"]
    forgotten = charts.plot_forgotten(rg.forgotten_by_rep(frames, Q3))
    assert forgotten.layout.title.text == "Owned accounts silent for 60+ days"
    with i18n.language("zh"):
        share = charts.plot_market_share(rg.geography(frames, Q3))
        tree = charts.plot_geography_treemap(rg.geography(frames, Q3, level="city"))
    assert all(i18n.has_cjk(t) for t in (share.data[0].name, share.data[1].name, share.layout.title.text,
                                         tree.layout.title.text))
    assert "未知" in "".join(tree.data[0].labels)  # "(unknown)" translated
    boxes = dict(zip(tree.data[0].ids, tree.data[0].values, strict=True))
    assert (boxes["R1"], boxes["R2"], boxes["R1/CN/P1/X"]) == (120.0, 300.0, 100.0)  # parents sum their boxes
