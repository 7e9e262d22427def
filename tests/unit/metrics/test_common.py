"""Shared metric helpers: one definition of a period's target, of bookings, of closed deals."""

from __future__ import annotations

import pandas as pd
import pytest

from crmlens.errors import ParameterError
from crmlens.kpis import KpiContext
from crmlens.metrics.common import (
    bucket,
    check_choice,
    closed_in_period,
    ratio,
    target_periods,
    won_in_period,
)

Q3 = KpiContext(period_start=pd.Timestamp("2026-07-01"), period_end=pd.Timestamp("2026-10-01"), period_label="2026-Q3")

TARGETS = pd.DataFrame({"period": ["2026-Q3", "2026-07", "2026-08", "2026-09", "2026-10", "2026-Q4"],
                        "level": ["team"] * 6, "key": ["T1"] * 6, "target_amount": [90.0, 30, 30, 30, 40, 120]})


def test_target_periods_prefers_the_exact_label_then_tiles_months_then_quarters():
    assert target_periods(TARGETS, Q3.period_start, Q3.period_end, "2026-Q3") == ["2026-Q3"]
    assert target_periods(TARGETS, pd.Timestamp("2026-07-01"), pd.Timestamp("2026-09-01")) == ["2026-07", "2026-08"]
    only_quarters = TARGETS[TARGETS["period"].str.contains("Q")]
    assert target_periods(only_quarters, pd.Timestamp("2026-07-01"), pd.Timestamp("2027-01-01")) == \
        ["2026-Q3", "2026-Q4"]
    assert target_periods(TARGETS, pd.Timestamp("2026-07-15"), pd.Timestamp("2026-09-01")) == []  # no exact tiling
    assert target_periods(TARGETS, pd.Timestamp("2027-01-01"), pd.Timestamp("2027-04-01"), "2027-Q1") == []


def opportunities() -> pd.DataFrame:
    return pd.DataFrame({
        "opportunity_id": ["a", "b", "c", "d"],
        "closed_at": pd.to_datetime(["2026-07-05 00:00", "2026-09-30 23:00", "2026-10-01 00:00", None]).astype(
            "datetime64[us]"),
        "is_won": pd.array([True, False, True, None], dtype="boolean"),
        "amount": [10.0, 20.0, 30.0, 40.0],
    })


def test_closed_and_won_in_period():
    assert closed_in_period(opportunities(), Q3)["opportunity_id"].tolist() == ["a", "b"]
    assert closed_in_period(opportunities(), None)["opportunity_id"].tolist() == ["a", "b", "c"]
    assert won_in_period(opportunities(), Q3)["opportunity_id"].tolist() == ["a"]
    assert won_in_period(opportunities().iloc[0:0], Q3).empty


def test_check_choice_names_parameter_and_choices():
    assert check_choice("level", "team", ("team", "rep")) == "team"
    with pytest.raises(ParameterError, match=r"level: 'tema' is not allowed; use one of team, rep"):
        check_choice("level", "tema", ("team", "rep"))


def test_ratio_is_none_without_denominator():
    assert ratio(1, 4) == 0.25 and ratio(1, 0) is None and ratio(1, float("nan")) is None


def test_bucket_labels():
    times = pd.Series(pd.to_datetime(["2026-09-14", "2026-01-01"]))
    assert bucket(times, "quarter").tolist() == ["2026-Q3", "2026-Q1"]
    assert bucket(times, "month").tolist() == ["2026-09", "2026-01"]
    assert bucket(times, "week").tolist() == ["2026-W38", "2026-W01"]
    with pytest.raises(ParameterError, match="freq"):
        bucket(times, "fortnight")
