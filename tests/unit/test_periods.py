"""Tests of crmlens.periods: every form of the grammar, fiscal years, comparisons and run ranges.

Expected dates are worked out by hand (1 Jan 2026 is a Thursday, so ISO 2026-W01 starts Mon 2025-12-29 and
2026 has 53 ISO weeks; 2025 has 52; 2024 is a leap year).
"""

from __future__ import annotations

import pandas as pd
import pytest

from crmlens.errors import ParameterError
from crmlens.periods import (
    PERIOD_FORMS,
    Period,
    comparison_period,
    latest_complete_period,
    next_period,
    normalise_comparison,
    parse_period,
    period_containing,
    period_range,
    previous_period,
    same_period_last_year,
)

T = pd.Timestamp


def span(p: Period) -> tuple[str, str]:
    """(first day, last day) of `p`, both included, as ISO dates."""
    return f"{p.start:%Y-%m-%d}", f"{p.last_day:%Y-%m-%d}"


def labels(periods: list[Period]) -> list[str]:
    return [p.label for p in periods]


# -- the grammar --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label", "kind", "first", "last"),
    [
        ("2026", "2026", "year", "2026-01-01", "2026-12-31"),
        ("2026-Q1", "2026-Q1", "quarter", "2026-01-01", "2026-03-31"),
        ("2026-Q3", "2026-Q3", "quarter", "2026-07-01", "2026-09-30"),
        ("2026-Q4", "2026-Q4", "quarter", "2026-10-01", "2026-12-31"),
        ("2026-09", "2026-09", "month", "2026-09-01", "2026-09-30"),
        ("2024-02", "2024-02", "month", "2024-02-01", "2024-02-29"),
        ("2026-12", "2026-12", "month", "2026-12-01", "2026-12-31"),
        ("2026-W01", "2026-W01", "week", "2025-12-29", "2026-01-04"),
        ("2026-W37", "2026-W37", "week", "2026-09-07", "2026-09-13"),
        ("2026-W53", "2026-W53", "week", "2026-12-28", "2027-01-03"),
        ("2026-07-01..2026-09-30", "2026-07-01..2026-09-30", "range", "2026-07-01", "2026-09-30"),
        ("2026-07-01..2026-07-01", "2026-07-01..2026-07-01", "range", "2026-07-01", "2026-07-01"),
    ],
)
def test_parse_every_form(text: str, label: str, kind: str, first: str, last: str) -> None:
    p = parse_period(text)
    assert (p.label, p.kind, span(p)) == (label, kind, (first, last))
    assert p.end == p.last_day + pd.Timedelta(days=1)  # stored end is exclusive
    assert p.start == p.start.normalize()


@pytest.mark.parametrize(
    ("text", "label"),
    [
        (" 2026-q3 ", "2026-Q3"),
        ("2026-w7", "2026-W07"),
        ("2026-W07", "2026-W07"),
        ("2026-9", "2026-09"),
        ("\t2026\n", "2026"),
        ("2026-07-01 .. 2026-09-30", "2026-07-01..2026-09-30"),
        (2026, "2026"),  # YAML reads `period: 2026` as a number
    ],
)
def test_labels_are_normalised(text: object, label: str) -> None:
    assert parse_period(text).label == label  # type: ignore[arg-type]


def test_range_end_is_exclusive_and_days_counted() -> None:
    p = parse_period("2026-07-01..2026-09-30")
    assert p.end == T("2026-10-01")
    assert p.days == 92
    assert parse_period("2024-01-01..2024-12-31").days == 366


def test_period_round_trips_through_its_label() -> None:
    for fys in (1, 4, 10):
        for text in ("2026", "2026-Q2", "2026-02", "2026-W53", "2024-02-29..2024-03-02"):
            p = parse_period(text, fys)
            assert parse_period(p.label, fys) == p
            assert str(p) == p.label


# -- fiscal years: named by the calendar year they start in -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fys", "first", "last"),
    [
        ("2026", 4, "2026-04-01", "2027-03-31"),
        ("2026-Q1", 4, "2026-04-01", "2026-06-30"),
        ("2026-Q2", 4, "2026-07-01", "2026-09-30"),
        ("2026-Q4", 4, "2027-01-01", "2027-03-31"),
        ("2026", 10, "2026-10-01", "2027-09-30"),
        ("2026-Q1", 10, "2026-10-01", "2026-12-31"),
        ("2026-Q4", 12, "2027-09-01", "2027-11-30"),
        ("2026-Q3", 1, "2026-07-01", "2026-09-30"),
    ],
)
def test_fiscal_years_and_quarters(text: str, fys: int, first: str, last: str) -> None:
    p = parse_period(text, fiscal_year_start=fys)
    assert span(p) == (first, last)
    assert p.fiscal_year_start == fys


@pytest.mark.parametrize("text", ["2026-09", "2026-W37", "2026-07-01..2026-09-30"])
def test_months_weeks_and_ranges_ignore_the_fiscal_start(text: str) -> None:
    assert span(parse_period(text, 4)) == span(parse_period(text, 1))
    assert parse_period(text, 4) == parse_period(text, 1)


# -- previous period ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fys", "previous"),
    [
        ("2026", 1, "2025"),
        ("2026-Q1", 1, "2025-Q4"),  # year boundary
        ("2026-Q3", 1, "2026-Q2"),
        ("2026-01", 1, "2025-12"),
        ("2024-03", 1, "2024-02"),
        ("2026-W01", 1, "2025-W52"),
        ("2027-W01", 1, "2026-W53"),  # the previous ISO year has 53 weeks
        ("2026-W37", 1, "2026-W36"),
        ("2026-07-01..2026-09-30", 1, "2026-03-31..2026-06-30"),  # 92 days before
        ("2024-03-01..2024-03-31", 1, "2024-01-30..2024-02-29"),  # 31 days, across the leap day
        ("2026-Q1", 4, "2025-Q4"),
        ("2026", 4, "2025"),
    ],
)
def test_previous_period(text: str, fys: int, previous: str) -> None:
    p = parse_period(text, fys)
    prev = previous_period(p)
    assert prev.label == previous
    assert prev.end == p.start  # immediately before
    assert prev.kind == p.kind
    assert next_period(prev) == p


def test_previous_fiscal_quarter_dates() -> None:
    assert span(previous_period(parse_period("2026-Q1", 4))) == ("2026-01-01", "2026-03-31")


def test_previous_range_has_the_same_length() -> None:
    p = parse_period("2026-02-10..2026-02-20")
    assert previous_period(p).days == p.days == 11


# -- same period last year ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fys", "last_year", "first", "last"),
    [
        ("2026", 1, "2025", "2025-01-01", "2025-12-31"),
        ("2026-Q3", 1, "2025-Q3", "2025-07-01", "2025-09-30"),
        ("2026-01", 1, "2025-01", "2025-01-01", "2025-01-31"),
        ("2025-02", 1, "2024-02", "2024-02-01", "2024-02-29"),
        ("2026-W10", 1, "2025-W10", "2025-03-03", "2025-03-09"),
        ("2026-W53", 1, "2025-W52", "2025-12-22", "2025-12-28"),  # 2025 has no week 53
        ("2027-W52", 1, "2026-W52", "2026-12-21", "2026-12-27"),
        ("2026-07-01..2026-09-30", 1, "2025-07-01..2025-09-30", "2025-07-01", "2025-09-30"),
        ("2024-02-29..2024-02-29", 1, "2023-02-28..2023-02-28", "2023-02-28", "2023-02-28"),
        ("2024-02-01..2024-02-29", 1, "2023-02-01..2023-02-28", "2023-02-01", "2023-02-28"),
        ("2024-02-29..2024-03-31", 1, "2023-02-28..2023-03-31", "2023-02-28", "2023-03-31"),
        ("2025-03-01..2025-03-31", 1, "2024-03-01..2024-03-31", "2024-03-01", "2024-03-31"),
        ("2026", 4, "2025", "2025-04-01", "2026-03-31"),
        ("2026-Q4", 4, "2025-Q4", "2026-01-01", "2026-03-31"),
    ],
)
def test_same_period_last_year(text: str, fys: int, last_year: str, first: str, last: str) -> None:
    p = same_period_last_year(parse_period(text, fys))
    assert (p.label, span(p)) == (last_year, (first, last))


@pytest.mark.parametrize(
    ("comparison", "label"),
    [("previous", "2026-Q2"), ("prev", "2026-Q2"), ("last_year", "2025-Q3"), ("YoY", "2025-Q3"),
     ("last-year", "2025-Q3"), (" Previous ", "2026-Q2")],
)
def test_comparison_period_and_aliases(comparison: str, label: str) -> None:
    assert comparison_period(parse_period("2026-Q3"), comparison).label == label


def test_unknown_comparison_names_it() -> None:
    with pytest.raises(ParameterError) as err:
        comparison_period(parse_period("2026-Q3"), "lastyear")
    assert "comparison" in str(err.value) and "'lastyear'" in str(err.value)
    assert "previous" in str(err.value) and "last_year" in str(err.value)
    with pytest.raises(ParameterError, match="compare_with: 'x'"):
        normalise_comparison("x", param="compare_with")


# -- run ranges ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fys", "expected"),
    [
        ("2025-Q3..2026-Q2", 1, ["2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2"]),
        ("2026-Q2..2026-Q2", 1, ["2026-Q2"]),
        ("2025-11..2026-02", 1, ["2025-11", "2025-12", "2026-01", "2026-02"]),
        ("2026-W52..2027-W02", 1, ["2026-W52", "2026-W53", "2027-W01", "2027-W02"]),
        ("2024..2026", 1, ["2024", "2025", "2026"]),
        ("2026-q4..2027-q1", 4, ["2026-Q4", "2027-Q1"]),
        ("2026-Q1, 2026-Q3", 1, ["2026-Q1", "2026-Q3"]),
        ("2026-Q1..2026-Q2, 2026-Q2, 2026-09", 1, ["2026-Q1", "2026-Q2", "2026-09"]),  # repeat dropped
        ("2026-07-01..2026-09-30", 1, ["2026-07-01..2026-09-30"]),  # a date range is one period
        ("2026-Q3", 1, ["2026-Q3"]),
    ],
)
def test_period_range(text: str, fys: int, expected: list[str]) -> None:
    assert labels(period_range(text, fys)) == expected


def test_fiscal_run_range_dates() -> None:
    periods = period_range("2026-Q4..2027-Q1", 4)
    assert [span(p) for p in periods] == [("2027-01-01", "2027-03-31"), ("2027-04-01", "2027-06-30")]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2025-Q1..2026-06", "not a quarter and a month"),
        ("2026-Q2..2026-Q1", "before it starts"),
        ("2026-Q1,,2026-Q2", "empty"),
        ("2026-07-01..2026-Q3", "two dates"),
        ("2026-Q1..2026-Q7", "quarter must be 1–4"),
        ("2026-Q1, soon", "soon: not a period"),
        ("2026-Q1..2026-Q2..2026-Q3", "one '..'"),
    ],
)
def test_period_range_errors_name_the_text(text: str, reason: str) -> None:
    with pytest.raises(ParameterError) as err:
        period_range(text, param="periods")
    message = str(err.value)
    assert message.startswith(f"periods: {text!r}")
    assert reason in message
    assert "2025-Q1..2026-Q2" in message  # the run-range form is shown


# -- as-of helpers, containment -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("as_of", "kind", "fys", "label"),
    [
        ("2026-10-01", "quarter", 1, "2026-Q3"),  # Q3 ended at midnight
        ("2026-09-30", "quarter", 1, "2026-Q2"),  # the 30th has not ended yet
        ("2026-09-30 23:59", "quarter", 1, "2026-Q2"),
        ("2026-01-15", "quarter", 1, "2025-Q4"),
        ("2026-01-15", "month", 1, "2025-12"),
        ("2026-09-07", "week", 1, "2026-W36"),  # a Monday
        ("2026-01-01", "week", 1, "2025-W52"),  # inside 2026-W01
        ("2026-03-31", "year", 4, "2024"),  # FY2025 ends 2026-03-31 included
        ("2026-04-01", "year", 4, "2025"),
        ("2026-07-01", "quarter", 4, "2026-Q1"),
    ],
)
def test_latest_complete_period(as_of: str, kind: str, fys: int, label: str) -> None:
    p = latest_complete_period(as_of, kind, fys)
    assert p.label == label
    assert p.end <= T(as_of)


def test_latest_complete_period_accepts_dates_and_timestamps() -> None:
    from datetime import date

    assert latest_complete_period(date(2026, 10, 1)).label == "2026-Q3"
    assert latest_complete_period(T("2026-10-01")).label == "2026-Q3"


def test_latest_complete_period_rejects_range_kind() -> None:
    with pytest.raises(ParameterError, match="kind: 'range'"):
        latest_complete_period("2026-10-01", "range")


def test_period_containing() -> None:
    assert period_containing("2026-03-15", "quarter", 4).label == "2025-Q4"
    assert period_containing("2027-01-03 12:00", "week").label == "2026-W53"


def test_contains_is_half_open() -> None:
    p = parse_period("2026-Q3")
    assert p.contains("2026-07-01")
    assert p.contains(T("2026-09-30 23:59:59"))
    assert not p.contains("2026-10-01")
    assert not p.contains("2026-06-30 23:59:59")
    assert not p.contains(None)
    assert p.contains(T("2026-09-30 23:30", tz="UTC"))
    assert p.contains(T("2026-10-01 01:30", tz="Europe/Berlin"))  # = 2026-09-30 23:30 UTC
    assert not p.contains(T("2026-10-01 02:30", tz="Europe/Berlin"))  # = 2026-10-01 00:30 UTC
    s = pd.Series(pd.to_datetime(["2026-07-01", None, "2026-10-01", "2026-08-15"]))
    assert p.contains(s).tolist() == [True, False, False, True]


def test_elapsed_share() -> None:
    p = parse_period("2026-Q3")  # 92 days
    assert p.elapsed_share("2026-08-16") == pytest.approx(46 / 92)
    assert p.elapsed_share("2026-06-01") == 0.0
    assert p.elapsed_share("2026-12-01") == 1.0


def test_periods_are_hashable_values() -> None:
    assert len({parse_period("2026-Q3"), parse_period("2026-q3"), parse_period("2026-Q2")}) == 2
    with pytest.raises(AttributeError):
        parse_period("2026").label = "2027"  # type: ignore[misc]


# -- failure modes: each names the parameter, the bad value and the accepted forms -------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2026-Q5", "quarter must be 1–4"),
        ("2026-Q0", "quarter must be 1–4"),
        ("2026-13", "month must be 01–12"),
        ("2026-00", "month must be 01–12"),
        ("2026-W54", "week must be 1–53 in 2026"),
        ("2025-W53", "week must be 1–52 in 2025"),
        ("2026-W00", "week must be 1–53 in 2026"),
        ("2026-09-30..2026-07-01", "ends on 2026-07-01, before it starts on 2026-09-30"),
        ("2026-02-30..2026-03-01", "2026-02-30 is not a calendar date"),
        ("2026-07-01", "a single day is written as a range: 2026-07-01..2026-07-01"),
        ("2026-07-01..", "a range needs a date on each side of '..'"),
        ("2026-07-01..2026-9-30", "2026-9-30 is not a date written YYYY-MM-DD"),
        ("1066", "year must be 1900–2199"),
        ("Q3 2026", ""),
        ("", ""),
        ("2026-H1", ""),
    ],
)
def test_bad_period_message(text: str, reason: str) -> None:
    with pytest.raises(ParameterError) as err:
        parse_period(text)
    message = str(err.value)
    assert message.startswith(f"period: {text!r} is not a period; use {PERIOD_FORMS}")
    assert reason in message


def test_spec_example_message() -> None:
    with pytest.raises(ParameterError) as err:
        parse_period("2026-Q5")
    assert str(err.value) == (
        "period: '2026-Q5' is not a period; use 2026, 2026-Q3, 2026-09, 2026-W37 or "
        "2026-07-01..2026-09-30 (quarter must be 1–4)"
    )


def test_param_name_can_be_overridden() -> None:
    with pytest.raises(ParameterError, match=r"^compare_to: '2026-13'"):
        parse_period("2026-13", param="compare_to")


def test_non_text_period() -> None:
    with pytest.raises(ParameterError, match=r"period: 2026\.5 is not a period.*got a float"):
        parse_period(2026.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("fys", [0, 13, "April", True])
def test_bad_fiscal_year_start(fys: object) -> None:
    with pytest.raises(ParameterError) as err:
        parse_period("2026", fys)  # type: ignore[arg-type]
    assert str(err.value).startswith(f"fiscal_year_start: {fys!r}")
    assert "1–12" in str(err.value)
