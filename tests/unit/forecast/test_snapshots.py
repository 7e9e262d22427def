"""Forecast snapshots and drift: which deals moved the forecast between two runs, adding up exactly."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from crmlens.forecast import pipeline as pf
from crmlens.forecast import snapshots as sn
from crmlens.periods import parse_period

COLS = ["opportunity_id", "owner_rep_id", "stage", "amount", "expected_close_date", "p", "expected_amount"]


def snap(as_of, deals, closed, run_rate):
    return {"version": 1, "region": "all", "period": "2026-Q4", "as_of": as_of, "run_rate_expected": run_rate,
            "deals": {"columns": COLS, "rows": deals},
            "closed": {"columns": ["opportunity_id", "won", "in_period", "amount"], "rows": closed}}


BEFORE = snap("2026-10-15T00:00:00", [
    ["won", "r1", "Negotiation", 100.0, "2026-11-01", 0.8, 80.0],
    ["lost", "r1", "Proposal", 50.0, "2026-11-15", 0.5, 25.0],
    ["pushed", "r2", "Proposal", 40.0, "2026-12-10", 0.5, 20.0],
    ["bigger", "r2", "Proposal", 10.0, "2026-12-01", 0.5, 5.0],
    ["same", "r2", "Qualification", 30.0, "2026-12-01", 0.2, 6.0],
    ["gone", "r3", "Qualification", 20.0, "2026-12-01", 0.1, 2.0],
], [["early", True, True, 70.0]], 15.0)
AFTER = snap("2026-11-15T00:00:00", [
    ["pushed", "r2", "Proposal", 40.0, "2027-01-20", 0.1, 4.0],
    ["bigger", "r2", "Proposal", 30.0, "2026-12-01", 0.5, 15.0],
    ["same", "r2", "Qualification", 30.0, "2026-12-01", 0.25, 7.5],
    ["new", "r1", "Qualification", 60.0, "2026-12-20", 0.1, 6.0],
], [["early", True, True, 70.0], ["won", True, True, 110.0], ["lost", False, False, 50.0]], 10.0)


def test_each_deal_is_classed_and_the_effects_add_up_to_the_move():
    moves = sn.drift(BEFORE, AFTER)
    by = moves.set_index("opportunity_id")
    assert by.loc["won", "change"] == "won" and by.loc["won", "effect"] == pytest.approx(110 - 80)
    assert by.loc["lost", "change"] == "lost" and by.loc["lost", "effect"] == pytest.approx(-25)
    assert by.loc["pushed", "change"] == "pushed" and by.loc["pushed", "effect"] == pytest.approx(4 - 20)
    assert by.loc["bigger", "change"] == "amount_changed" and by.loc["bigger", "effect"] == pytest.approx(10)
    assert by.loc["same", "change"] == "re_estimated" and by.loc["same", "effect"] == pytest.approx(1.5)
    assert by.loc["gone", "change"] == "removed" and by.loc["gone", "effect"] == pytest.approx(-2)
    assert by.loc["new", "change"] == "added" and by.loc["new", "effect"] == pytest.approx(6)
    assert "early" not in by.index  # won in both: no effect
    assert moves.loc[moves["change"] == "run_rate", "effect"].item() == pytest.approx(-5)
    before, after = moves.attrs["expected_before"], moves.attrs["expected_after"]
    assert before == pytest.approx(70 + 80 + 25 + 20 + 5 + 6 + 2 + 15)
    assert after == pytest.approx(70 + 110 + 4 + 15 + 7.5 + 6 + 10)
    assert moves["effect"].sum() == pytest.approx(after - before)
    summary = sn.drift_summary(moves).set_index("change")
    assert summary.loc["won", "n_deals"] == 1 and summary.loc["run_rate", "n_deals"] == 0


def test_forecasts_of_different_periods_are_not_compared():
    with pytest.raises(ValueError, match="different periods"):
        sn.drift(BEFORE, {**AFTER, "period": "2027-Q1"})


def test_a_forecast_round_trips_through_its_json_snapshot():
    rows = [("h", "r1", "X", "2025-10-01", "2025-11-01", True, "Won", 100.0, 1.0, "closed", "2025-11-01"),
            ("o", "r1", "X", "2026-09-01", None, None, "Proposal", 60.0, 0.5, "best_case", "2026-11-15")]
    opps = pd.DataFrame(rows, columns=["opportunity_id", "owner_rep_id", "region_id", "created_at", "closed_at",
                                       "is_won", "stage", "amount", "probability", "forecast_category",
                                       "expected_close_date"])
    for c in ("created_at", "closed_at", "expected_close_date"):
        opps[c] = pd.to_datetime(opps[c])
    data = pf.PipelineData.build(opps, as_of=pd.Timestamp("2026-10-01"))
    f = pf.pipeline_forecast(data, parse_period("2026-Q4"), levels=("company",), n_sims=200)
    record = json.loads(json.dumps(sn.snapshot(f, "all")))
    assert record["period"] == "2026-Q4" and record["region"] == "all"
    assert record["deals"]["rows"][0][0] == "o"
    moves = sn.drift(record, record)
    assert (moves["effect"].abs() < 1e-9).all()
