"""The pipeline forecast: Monte Carlo on a hand-computable fixture, state at a time, calibrated win rates, the
run-rate, targets, and — on the demo — that its target probabilities beat the pace rule on past quarters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmlens.forecast import pipeline as pf
from crmlens.periods import parse_period

T = pd.Timestamp


def test_three_deals_distribution_is_the_hand_computed_one():
    # deals of 100, 200 and 300: the first two won with probability 1/2, the third surely; all close in the
    # period. Bookings are 300, 400, 500 or 600, each with probability 1/4.
    sims = pf.simulate(np.array([100.0, 200.0, 300.0]), np.array([0.5, 0.5, 1.0]), np.ones(3),
                       {"company": np.array(["c", "c", "c"])}, n_sims=20_000, seed=1)["company"]["c"]
    freq = sims.value_counts(normalize=True).sort_index()
    assert list(freq.index) == [300.0, 400.0, 500.0, 600.0]
    assert freq.to_numpy() == pytest.approx([0.25] * 4, abs=0.015)
    assert (sims >= 450).mean() == pytest.approx(0.5, abs=0.015)
    assert sims.mean() == pytest.approx(450, abs=3)


def test_close_date_chance_and_groups():
    # one deal of 100 won surely but closing inside the period only half the time; groups add up
    out = pf.simulate(np.array([100.0, 50.0]), np.array([1.0, 1.0]), np.array([0.5, 1.0]),
                      {"rep": np.array(["a", "b"]), "company": np.array(["c", "c"])}, n_sims=20_000, seed=2)
    assert out["rep"]["a"].mean() == pytest.approx(50, abs=1.5)
    assert (out["rep"]["b"] == 50).all()
    assert np.allclose(out["company"]["c"], out["rep"]["a"] + out["rep"]["b"])


def test_same_seed_same_numbers():
    args = (np.array([10.0, 20.0]), np.array([0.3, 0.6]), np.array([0.9, 0.8]), {"company": np.array(["c", "c"])})
    a = pf.simulate(*args, n_sims=500, seed=5, shift_sd=0.4)["company"]
    b = pf.simulate(*args, n_sims=500, seed=5, shift_sd=0.4)["company"]
    assert a.equals(b)


def _deals(rows):
    cols = ["opportunity_id", "owner_rep_id", "region_id", "created_at", "closed_at", "is_won", "stage", "amount",
            "probability", "forecast_category", "expected_close_date"]
    frame = pd.DataFrame(rows, columns=cols)
    for c in ("created_at", "closed_at", "expected_close_date"):
        frame[c] = pd.to_datetime(frame[c])
    return frame


def test_open_at_a_time_and_stage_from_history():
    opps = _deals([
        ("o1", "r1", "X", "2026-01-01", "2026-03-01", True, "Won", 100, 1.0, "closed", "2026-03-01"),
        ("o2", "r1", "X", "2026-01-15", None, None, "Proposal", 200, 0.5, "best_case", "2026-05-01"),
        ("o3", "r2", "X", "2026-02-20", None, None, "Qualification", 50, 0.2, "pipeline", "2026-06-01"),
    ])
    history = pd.DataFrame({"opportunity_id": ["o1", "o1", "o2", "o2"],
                            "stage": ["Qualification", "Won", "Qualification", "Proposal"],
                            "entered_at": pd.to_datetime(["2026-01-01", "2026-03-01", "2026-01-15", "2026-02-10"]),
                            "exited_at": pd.to_datetime(["2026-03-01", None, "2026-02-10", None])})
    data = pf.PipelineData.build(opps, history=history, as_of=T("2026-04-01"))
    at = data.open_at(T("2026-02-01")).set_index("opportunity_id")
    # o1 closed after Feb 1st: open then, in Qualification; o2 in Qualification then; o3 not created yet
    assert list(at.index) == ["o1", "o2"]
    assert at.loc["o1", "stage_at"] == "Qualification" and at.loc["o2", "stage_at"] == "Qualification"
    assert at.loc["o2", "age_days"] == pytest.approx(17, abs=0.01)
    later = data.open_at(T("2026-03-15")).set_index("opportunity_id")
    assert list(later.index) == ["o2", "o3"]
    assert later.loc["o2", "stage_at"] == "Proposal"
    assert later.loc["o3", "stage_at"] == "Qualification"  # no history: the current stage of a deal still open


def test_win_rates_are_empirical_and_thin_cells_borrow_from_their_stage():
    rng = np.random.default_rng(0)
    n = 2000
    stage = np.where(np.arange(n) < n // 2, "A", "B")
    won = np.where(stage == "A", rng.random(n) < 0.8, rng.random(n) < 0.2)
    samples = pd.DataFrame({"stage_at": stage, "age_days": rng.uniform(0, 60, n), "amount": rng.uniform(1, 100, n),
                            "won": won, "days_to_close": rng.uniform(1, 90, n),
                            "at": np.repeat(pd.date_range("2024-01-31", periods=10, freq="ME"), n // 10)})
    thin = pd.DataFrame({"stage_at": ["A"] * 3, "age_days": [500.0] * 3, "amount": [50.0] * 3, "won": [False] * 3,
                         "days_to_close": [10.0] * 3, "at": [T("2024-05-31")] * 3})
    model = pf.fit_win_model(pd.concat([samples, thin], ignore_index=True), T("2025-01-01"))
    probe = pd.DataFrame({"stage_at": ["A", "B", "A", "Z"], "age_days": [10.0, 10.0, 500.0, 10.0],
                          "amount": [50.0, 50.0, 50.0, 50.0]})
    p = model.p_win(probe)
    assert p[0] == pytest.approx(0.8, abs=0.05) and p[1] == pytest.approx(0.2, abs=0.05)
    # three lost old deals in stage A: pulled toward A's rate, not 0
    assert 0.6 < p[2] < p[0]
    assert p[3] == pytest.approx(won.mean(), abs=0.03)  # an unknown stage: the overall rate


def test_forecast_adds_won_so_far_open_deals_and_targets():
    # history: every quarter of 2024-2025 a deal of 100 won in its last month by a deal created inside it
    rows = []
    for i, q in enumerate(pd.period_range("2024Q1", "2025Q4", freq="Q")):
        start = q.start_time
        rows.append((f"h{i}", "r1", "X", start + pd.Timedelta(days=40), start + pd.Timedelta(days=70), True, "Won",
                     100.0, 1.0, "closed", start + pd.Timedelta(days=70)))
    rows += [("old", "r1", "X", "2023-12-01", "2023-12-20", False, "Lost", 10.0, 0.0, "omitted", "2023-12-20"),
             ("w1", "r1", "X", "2026-01-02", "2026-01-20", True, "Won", 40.0, 1.0, "closed", "2026-01-20"),
             ("o1", "r1", "X", "2026-01-05", None, None, "Negotiation", 60.0, 0.8, "commit", "2026-03-15")]
    opps = _deals(rows)
    targets = pd.DataFrame({"period": ["2026-Q1"], "level": ["company"], "key": ["company"],
                            "target_amount": [150.0]})
    data = pf.PipelineData.build(opps, targets=targets, as_of=T("2026-02-01"))
    f = pf.pipeline_forecast(data, parse_period("2026-Q1"), levels=("company",), n_sims=2000)
    row = f.summary.iloc[0]
    assert row["closed_amount"] == 40.0
    assert row["target_amount"] == 150.0
    # the run-rate: Q1 of 2025 and of 2024 each had a deal of 100 created after the same point (Feb 1st) and won
    # in the quarter, scaled by the growth of the last 12 months' bookings over the 12 before (440 / 400)
    assert f.run_rate_basis == "same_period"
    growth = 440 / 400
    assert row["run_rate_expected"] == pytest.approx((100 * growth + 100 * growth ** 2) / 2, rel=1e-6)
    assert row["expected_amount"] == pytest.approx(40 + row["pipeline_expected"] + row["run_rate_expected"], rel=0.05)
    cats = f.categories.set_index("forecast_category")
    assert cats.loc["closed", "expected_amount"] == 40.0
    assert cats.loc["commit", "n_deals"] == 1
    assert 0.0 <= row["target_probability"] <= 1.0


def test_forecast_period_is_the_next_once_the_period_is_over():
    q3 = parse_period("2026-Q3")
    assert pf.forecast_period_for(q3, T("2026-08-15")).label == "2026-Q3"
    assert pf.forecast_period_for(q3, T("2026-09-30 23:59:59.9")).label == "2026-Q4"
    assert pf.forecast_period_for(q3, T("2026-10-01")).label == "2026-Q4"


def test_brier_scores_by_hand():
    bt = pd.DataFrame({"days_before_end": [30, 30, 10], "p_model": [0.8, 0.4, 1.0], "p_naive": [1.0, 0.0, 1.0],
                       "reached": [1.0, 0.0, 0.0]})
    scores = pf.brier_scores(bt).set_index("days_before_end", drop=False)
    assert scores["brier_model"].iloc[-1] == pytest.approx((0.04 + 0.16 + 1.0) / 3)
    assert scores["brier_naive"].iloc[-1] == pytest.approx((0 + 0 + 1.0) / 3)
    assert scores.loc[30, "brier_model"] == pytest.approx(0.1)


@pytest.fixture(scope="module")
def demo_data(demo_folder):
    folder = demo_folder("small", 7)
    read = lambda name: pd.read_parquet(folder / f"{name}.parquet")  # noqa: E731
    return pf.PipelineData.build(read("opportunities"), reps=read("reps"), history=read("opportunity_stage_history"),
                                 targets=read("targets"), as_of=T("2026-09-30 23:59:59"))


@pytest.mark.slow
def test_on_the_demo_our_target_probabilities_beat_the_pace_rule(demo_data):
    quarters = [parse_period(q) for q in ("2025-Q2", "2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3")]
    bt = pf.target_backtest(demo_data, quarters, n_sims=300)
    scores = pf.brier_scores(bt)
    total = scores.iloc[-1]
    assert total["n"] >= 100
    assert total["brier_model"] < total["brier_naive"], scores
    assert total["brier_model"] < 0.25, scores  # better than a coin toss


@pytest.mark.slow
def test_on_the_demo_calibrated_win_rates_beat_the_stage_probability(demo_data):
    check = pf.deal_calibration(demo_data, [T("2025-03-31"), T("2025-09-30")]).set_index("source")
    assert check.loc["model", "brier"] < check.loc["stage_probability", "brier"]
    assert check.loc["model", "mean_predicted"] == pytest.approx(check.loc["model", "win_share"], abs=0.08)


def _outlook(p10: float, p90: float) -> pf.Forecast:
    summary = pd.DataFrame([{"level": "company", "key": "all", "closed_amount": 1000.0, "pipeline_expected": 0.0,
                             "run_rate_expected": 0.0, "expected_amount": 1000.0, "p10": p10, "p50": 1000.0,
                             "p90": p90, "target_amount": np.nan, "target_probability": np.nan}])
    deals = pd.DataFrame({"deal_id": ["D1", "D2"], "amount_known": [False, False]})
    return pf.Forecast(period=parse_period("2026-Q3"), t=pd.Timestamp("2026-08-15"), deals=deals, summary=summary,
                       categories=pd.DataFrame(), sims={}, run_rate_basis="", model=None)


def test_the_outlook_writes_a_range_only_when_there_is_one():
    """No "80 % range X–X": when every open deal lacks an amount (Maven) nothing is left uncertain."""
    from crmlens.metrics import forecasting

    flat = forecasting.describe_outlook(_outlook(1000.0, 1000.0)).text
    assert "80 % range" not in flat and "no uncertainty left" in flat and "bookings of 1,000," in flat
    assert "2 of the 2 open deals have no amount" in flat
    spread = forecasting.describe_outlook(_outlook(800.0, 1300.0)).text
    assert "80 % range 800–1,300" in spread and "uncertainty" not in spread
