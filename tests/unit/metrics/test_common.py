"""Shared metric helpers: one definition of a period's target, of bookings, of closed deals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmlens.errors import ParameterError
from crmlens.kpis import KpiContext
from crmlens.metrics.common import (
    bucket,
    check_choice,
    clear_memo,
    closed_in_period,
    isin,
    lookup,
    map_keys,
    memo_by_inputs,
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


# ------------------------------------------------------------------------------- isin / map_keys / memo

@pytest.mark.parametrize("candidates", [["A0", 5, None], [], pd.Index(["A1"]), ["A0"], [float("nan")],
                                        pd.Series(["A2", None], dtype="string"), {"A0", "A2"}, ("A1", "A2")])
def test_isin_answers_as_pandas(candidates):
    values = pd.Series(["A0", "A1", None, "A2"], dtype="string", index=[3, 4, 5, 6])
    expected = values.isin(list(candidates) if isinstance(candidates, set) else candidates)
    got = isin(values, candidates)
    assert got.tolist() == expected.fillna(False).astype(bool).tolist()
    assert got.dtype == bool and got.index.tolist() == [3, 4, 5, 6]


def test_isin_on_numbers_falls_back_to_pandas():
    assert isin(pd.Series([1, 2, 3]), [2]).tolist() == [False, True, False]


def test_map_keys_answers_as_series_map():
    keys = pd.Series(["a", "b", None, "a", "z"], dtype="string", index=[5, 6, 7, 8, 9])
    lookup = pd.Series({"a": "T1", "b": "T2"}, dtype="string")
    got = map_keys(keys, lookup)
    assert got.tolist() == keys.map(lookup).tolist() and got.index.tolist() == keys.index.tolist()
    assert map_keys(pd.Series([], dtype="string"), lookup).tolist() == []
    assert map_keys(pd.Series(["a", "b"], dtype="string"), {"a": 1}).tolist()[0] == 1


@pytest.mark.parametrize("table", [
    pd.Series([1.5, 2.5], index=pd.Index(["b", "a"], dtype="string")),                 # numbers by text key
    pd.Series(["T1", "T2"], index=pd.Index(["a", "b"], dtype="string"), dtype="string"),  # text by text key
    pd.Series([1.5, 2.5], index=pd.Index(["a", "b"], dtype="object")),                  # object keys: pandas
    pd.Series([], index=pd.Index([], dtype="string"), dtype="float64"),                 # nothing to find
])
def test_lookup_answers_as_series_map(table):
    keys = pd.Series(["a", "b", None, "a", "z"], dtype="string", index=[5, 6, 7, 8, 9], name="k")
    got, expected = lookup(keys, table), keys.map(table)
    assert got.isna().tolist() == expected.isna().tolist()
    assert got.dropna().tolist() == expected.dropna().tolist()
    assert got.index.tolist() == [5, 6, 7, 8, 9]
    many = pd.Series([f"O{i}" for i in range(2000)], dtype="string")
    big = pd.Series(np.arange(1000, dtype="float64"), index=pd.Index([f"O{i}" for i in range(999, -1, -1)],
                                                                      dtype="string"))
    fast = lookup(many, big)
    assert fast.dtype == "float64"  # the table's dtype (pandas' map turns it into double[pyarrow])
    assert fast.fillna(-1).tolist() == many.map(big).astype("float64").fillna(-1).tolist()


def test_memo_by_inputs_reuses_results_for_the_same_frames_only():
    calls = []

    @memo_by_inputs
    def total(frames, factor=1):
        calls.append(1)
        return frames["x"]["v"] * factor

    clear_memo()
    a = {"x": pd.DataFrame({"v": [1, 2]})}
    first = total(a, factor=2)
    again = total(a, factor=2)
    assert again.tolist() == [2, 4] and len(calls) == 1
    again.iloc[0] = 99  # a caller changing its result does not change what the next caller gets
    assert total(a, factor=2).tolist() == [2, 4] and len(calls) == 1
    total(a, factor=3)  # other arguments: computed
    total({"x": pd.DataFrame({"v": [1, 2]})}, factor=2)  # an equal but other frame: computed
    b = dict(a)
    b["x"] = pd.DataFrame({"v": [5]})  # a dict whose frame was replaced: computed
    assert total(b, factor=2).tolist() == [10]
    assert len(calls) == 4
    assert first.tolist() == [2, 4]


def test_memo_by_inputs_does_not_key_lazy_mappings():
    from collections.abc import Mapping

    class Lazy(Mapping):
        def __getitem__(self, k):
            raise AssertionError("memo read a table to key it")

        def __iter__(self):
            return iter(["x"])

        def __len__(self):
            return 1

    @memo_by_inputs
    def size(frames):
        return len(frames)

    assert size(Lazy()) == 1
