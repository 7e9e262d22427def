"""Periods: the grammar of the `period` parameter and the arithmetic on periods.

A period is written as one of::

    2026                     a (fiscal) year
    2026-Q3                  a (fiscal) quarter, 1–4 (q or Q)
    2026-09                  a calendar month
    2026-W37                 an ISO week (Monday to Sunday; w or W)
    2026-07-01..2026-09-30   a range of days, both dates included

Every `Period` is half-open: it covers ``start <= t < end``, where `start` is midnight of its first day and
`end` is midnight of the day after its last day. Timestamps are naive (UTC), like the canonical model's.

Fiscal years. ``fiscal_year_start`` is the month (1–12) the fiscal year starts in; 1 (the default) makes fiscal
years calendar years. A fiscal year is named by the calendar year it STARTS in: with
``fiscal_year_start=4``, ``2026`` is FY2026 = 2026-04-01..2027-03-31, ``2026-Q1`` is 2026-04-01..2026-06-30
and ``2026-Q4`` is 2027-01-01..2027-03-31. Only years and quarters are fiscal; months, weeks and ranges are
calendar periods whatever the fiscal start.

Runs over many periods use `period_range`: ``2025-Q1..2026-Q2`` (every quarter from the first to the last,
both included; both ends of the same kind) or a comma list such as ``2026-Q1, 2026-Q3``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

import pandas as pd

from crmlens.errors import ParameterError

PeriodKind = Literal["year", "quarter", "month", "week", "range"]
Comparison = Literal["previous", "last_year"]

#: The kinds of period, from the longest to the shortest fixed length; "range" is any span of days.
KINDS: tuple[str, ...] = ("year", "quarter", "month", "week", "range")
#: The comparison periods a report can show next to its period.
COMPARISONS: tuple[str, ...] = ("previous", "last_year")
#: Years the grammar accepts (pandas timestamps end in 2262).
MIN_YEAR, MAX_YEAR = 1900, 2199

#: Every accepted form, with an example, as error messages and docs show it.
PERIOD_FORMS = "2026, 2026-Q3, 2026-09, 2026-W37 or 2026-07-01..2026-09-30"
#: The forms `period_range` accepts on top of single periods.
RANGE_FORMS = (
    "a period (2026, 2026-Q3, 2026-09, 2026-W37 or 2026-07-01..2026-09-30), "
    "a run range of one kind (2025-Q1..2026-Q2) or a comma list of those (2026-Q1, 2026-Q3)"
)

_COMPARISON_ALIASES: dict[str, Comparison] = {
    "previous": "previous",
    "prev": "previous",
    "previous_period": "previous",
    "prior": "previous",
    "pop": "previous",
    "last_year": "last_year",
    "previous_year": "last_year",
    "same_period_last_year": "last_year",
    "ly": "last_year",
    "yoy": "last_year",
}

_YEAR_RE = re.compile(r"(\d{4})")
_QUARTER_RE = re.compile(r"(\d{4})-Q(\d+)", re.IGNORECASE)
_MONTH_RE = re.compile(r"(\d{4})-(\d{1,2})")
_WEEK_RE = re.compile(r"(\d{4})-W(\d+)", re.IGNORECASE)
_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_ONE_DAY = pd.Timedelta(days=1)


class _Invalid(Exception):
    """Internal: why a text is not a period (turned into a ParameterError by the public functions)."""


@dataclass(frozen=True)
class Period:
    """A span of time ``[start, end)``: `start` at 00:00 of the first day, `end` exclusive.

    `label` is the normalised text of the period (``2026-Q3``, ``2026-W07``, ``2026-07-01..2026-09-30``);
    ``parse_period(p.label, p.fiscal_year_start) == p``. `fiscal_year_start` is the month the fiscal year
    starts in (it places years and quarters; months, weeks and ranges ignore it) and is not compared.
    """

    label: str
    start: pd.Timestamp
    end: pd.Timestamp
    kind: PeriodKind
    fiscal_year_start: int = field(default=1, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Period kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.start < self.end:
            raise ValueError(f"Period {self.label!r}: start {self.start} is not before end {self.end}")

    def __str__(self) -> str:
        return self.label

    @property
    def days(self) -> int:
        """Number of days in the period."""
        return (self.end - self.start).days

    @property
    def last_day(self) -> pd.Timestamp:
        """Midnight of the last day inside the period (the inclusive end date)."""
        return self.end - _ONE_DAY

    def contains(self, ts: object) -> bool | pd.Series:
        """True when `ts` (a timestamp, date or ISO text) falls in ``[start, end)``.

        A pandas Series or Index of timestamps gives an element-wise boolean result; missing times give False.
        """
        if isinstance(ts, pd.Series | pd.Index):
            return (ts >= self.start) & (ts < self.end)
        t = pd.Timestamp(ts)  # type: ignore[arg-type]
        if pd.isna(t):
            return False
        return bool(self.start <= _naive(t) < self.end)

    def elapsed_share(self, as_of: object) -> float:
        """Share (0–1) of the period's time that lies before `as_of` (a date means midnight of that day)."""
        t = _naive(pd.Timestamp(as_of))  # type: ignore[arg-type]
        share = (t - self.start) / (self.end - self.start)
        return float(min(1.0, max(0.0, share)))


def _naive(ts: pd.Timestamp) -> pd.Timestamp:
    """`ts` as a naive UTC timestamp, like the canonical model's."""
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


# -- building periods -------------------------------------------------------------------------------------


def _month_start(year: int, month: int, add_months: int = 0) -> pd.Timestamp:
    index = year * 12 + (month - 1) + add_months
    return pd.Timestamp(index // 12, index % 12 + 1, 1)


def _fiscal_year_of(ts: pd.Timestamp, fiscal_year_start: int) -> int:
    return ts.year if ts.month >= fiscal_year_start else ts.year - 1


def _iso_weeks_in(year: int) -> int:
    return date(year, 12, 28).isocalendar().week


def _year(fiscal_year: int, fiscal_year_start: int) -> Period:
    start = _month_start(fiscal_year, fiscal_year_start)
    return Period(str(fiscal_year), start, _month_start(fiscal_year, fiscal_year_start, 12), "year",
                  fiscal_year_start)


def _quarter(fiscal_year: int, quarter: int, fiscal_year_start: int) -> Period:
    start = _month_start(fiscal_year, fiscal_year_start, 3 * (quarter - 1))
    end = _month_start(fiscal_year, fiscal_year_start, 3 * quarter)
    return Period(f"{fiscal_year}-Q{quarter}", start, end, "quarter", fiscal_year_start)


def _month(year: int, month: int, fiscal_year_start: int) -> Period:
    return Period(f"{year}-{month:02d}", _month_start(year, month), _month_start(year, month, 1), "month",
                  fiscal_year_start)


def _week(iso_year: int, week: int, fiscal_year_start: int) -> Period:
    start = pd.Timestamp(date.fromisocalendar(iso_year, week, 1))
    return Period(f"{iso_year}-W{week:02d}", start, start + pd.Timedelta(days=7), "week", fiscal_year_start)


def _days(start: pd.Timestamp, end: pd.Timestamp, fiscal_year_start: int) -> Period:
    last = end - _ONE_DAY
    return Period(f"{start:%Y-%m-%d}..{last:%Y-%m-%d}", start, end, "range", fiscal_year_start)


def _containing(ts: pd.Timestamp, kind: str, fiscal_year_start: int) -> Period:
    if kind == "year":
        return _year(_fiscal_year_of(ts, fiscal_year_start), fiscal_year_start)
    if kind == "quarter":
        quarter = (ts.month - fiscal_year_start) % 12 // 3 + 1
        return _quarter(_fiscal_year_of(ts, fiscal_year_start), quarter, fiscal_year_start)
    if kind == "month":
        return _month(ts.year, ts.month, fiscal_year_start)
    iso = ts.isocalendar()
    return _week(iso.year, iso.week, fiscal_year_start)


def _check_year(year: int) -> None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise _Invalid(f"year must be {MIN_YEAR}–{MAX_YEAR}")


def _parse_date(text: str) -> pd.Timestamp:
    if not text:
        raise _Invalid("a range needs a date on each side of '..'")
    m = _DATE_RE.fullmatch(text)
    if not m:
        raise _Invalid(f"{text} is not a date written YYYY-MM-DD")
    year, month, day = (int(g) for g in m.groups())
    _check_year(year)
    try:
        return pd.Timestamp(date(year, month, day))
    except ValueError:
        raise _Invalid(f"{text} is not a calendar date") from None


def _parse(text: str, fiscal_year_start: int) -> Period:
    if m := _YEAR_RE.fullmatch(text):
        year = int(m[1])
        _check_year(year)
        return _year(year, fiscal_year_start)
    if m := _QUARTER_RE.fullmatch(text):
        year, quarter = int(m[1]), int(m[2])
        _check_year(year)
        if not 1 <= quarter <= 4:
            raise _Invalid("quarter must be 1–4")
        return _quarter(year, quarter, fiscal_year_start)
    if m := _WEEK_RE.fullmatch(text):
        year, week = int(m[1]), int(m[2])
        _check_year(year)
        n_weeks = _iso_weeks_in(year)
        if not 1 <= week <= n_weeks:
            raise _Invalid(f"week must be 1–{n_weeks} in {year}")
        return _week(year, week, fiscal_year_start)
    if m := _MONTH_RE.fullmatch(text):
        year, month = int(m[1]), int(m[2])
        _check_year(year)
        if not 1 <= month <= 12:
            raise _Invalid("month must be 01–12")
        return _month(year, month, fiscal_year_start)
    if ".." in text:
        parts = text.split("..")
        if len(parts) != 2:
            raise _Invalid("a range has one '..' between two dates")
        start, last = (_parse_date(p.strip()) for p in parts)
        if last < start:
            raise _Invalid(f"the range ends on {last:%Y-%m-%d}, before it starts on {start:%Y-%m-%d}")
        return _days(start, last + _ONE_DAY, fiscal_year_start)
    if _DATE_RE.fullmatch(text):
        raise _Invalid(f"a single day is written as a range: {text}..{text}")
    raise _Invalid("")


def _message(param: str, text: object, reason: str, *, run: bool = False) -> str:
    what, forms = ("a list of periods", RANGE_FORMS) if run else ("a period", PERIOD_FORMS)
    msg = f"{param}: {text!r} is not {what}; use {forms}"
    return f"{msg} ({reason})" if reason else msg


def _as_text(text: object, param: str, *, run: bool = False) -> str:
    if isinstance(text, int) and not isinstance(text, bool):  # YAML reads `period: 2026` as a number
        return str(text)
    if not isinstance(text, str):
        raise ParameterError(_message(param, text, f"got a {type(text).__name__}, not text", run=run))
    return text.strip()


def check_fiscal_year_start(value: object, param: str = "fiscal_year_start") -> int:
    """`value` as a month number 1–12, or a ParameterError naming `param`."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 12:
        raise ParameterError(
            f"{param}: {value!r} is not a month; use the number of the month the fiscal year starts in, "
            "1–12 (1 = January: calendar years; 4 = April)"
        )
    return value


def _as_timestamp(value: object, param: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        ts = pd.NaT
    if pd.isna(ts):
        raise ParameterError(f"{param}: {value!r} is not a date; use an ISO date such as 2026-10-01")
    return _naive(ts)


# -- public API -------------------------------------------------------------------------------------------


def parse_period(text: str, fiscal_year_start: int = 1, *, param: str = "period") -> Period:
    """The period written `text` (see the module docstring for the grammar).

    Letters are case-insensitive and surrounding whitespace is ignored. A bad text raises a ParameterError
    naming `param`, the text, every accepted form and the reason.
    """
    fiscal_year_start = check_fiscal_year_start(fiscal_year_start)
    if isinstance(text, Period):
        return text if text.fiscal_year_start == fiscal_year_start else parse_period(text.label,
                                                                                     fiscal_year_start)
    clean = _as_text(text, param)
    try:
        return _parse(clean, fiscal_year_start)
    except _Invalid as exc:
        raise ParameterError(_message(param, text, str(exc))) from None


def shift_period(p: Period, n: int) -> Period:
    """The period `n` periods of the same length after `p` (before it when `n` is negative)."""
    fys = p.fiscal_year_start
    if p.kind == "range":
        step = (p.end - p.start) * n
        return _days(p.start + step, p.end + step, fys)
    if p.kind == "week":
        return _containing(p.start + pd.Timedelta(weeks=n), "week", fys)
    months = {"year": 12, "quarter": 3, "month": 1}[p.kind] * n
    return _containing(_month_start(p.start.year, p.start.month, months), p.kind, fys)


def previous_period(p: Period) -> Period:
    """The period of the same length just before `p`: previous year/quarter/month/week, or for a range the
    same number of days ending the day before it starts."""
    return shift_period(p, -1)


def next_period(p: Period) -> Period:
    """The period of the same length just after `p`."""
    return shift_period(p, 1)


def same_period_last_year(p: Period) -> Period:
    """`p` one year earlier.

    Years, quarters and months: the same one of the year before. Weeks: the same ISO week number of the
    previous ISO year; week 53 maps to week 52 when the previous ISO year has only 52. Ranges: both dates
    minus one year, 29 February becoming 28 February.
    """
    fys = p.fiscal_year_start
    if p.kind in ("year", "quarter", "month"):
        return _containing(_month_start(p.start.year, p.start.month, -12), p.kind, fys)
    if p.kind == "week":
        iso = p.start.isocalendar()
        year = iso.year - 1
        return _week(year, min(iso.week, _iso_weeks_in(year)), fys)
    one_year = pd.DateOffset(years=1)
    return _days(p.start - one_year, p.last_day - one_year + _ONE_DAY, fys)


def normalise_comparison(comparison: str, *, param: str = "comparison") -> Comparison:
    """"previous" or "last_year" from `comparison` or one of its aliases (prev, prior, pop; yoy, ly, ...)."""
    key = comparison.strip().lower().replace("-", "_").replace(" ", "_") if isinstance(comparison, str) else None
    if key is None or key not in _COMPARISON_ALIASES:
        raise ParameterError(
            f"{param}: {comparison!r} is not a comparison; use previous (the period just before, of the same "
            "length) or last_year (the same period one year earlier)"
        )
    return _COMPARISON_ALIASES[key]


def comparison_period(p: Period, comparison: str = "previous") -> Period:
    """The period `p` is compared with: `previous_period` or `same_period_last_year`."""
    if normalise_comparison(comparison) == "previous":
        return previous_period(p)
    return same_period_last_year(p)


def period_range(text: str, fiscal_year_start: int = 1, *, param: str = "period") -> list[Period]:
    """The periods of a run: one period, a run range such as ``2025-Q1..2026-Q2`` (every period of that kind
    from the first to the last, both included) or a comma list of those. A date range
    (``2026-07-01..2026-09-30``) is one period. Repeats are dropped; order is kept."""
    fiscal_year_start = check_fiscal_year_start(fiscal_year_start)
    clean = _as_text(text, param, run=True)
    periods: list[Period] = []
    try:
        items = [item.strip() for item in clean.split(",")]
        if any(not item for item in items):
            raise _Invalid("an item of the comma list is empty")
        for item in items:
            where = f"{item}: " if len(items) > 1 else ""
            periods.extend(_run_item(item, fiscal_year_start, where))
    except _Invalid as exc:
        raise ParameterError(_message(param, text, str(exc), run=True)) from None
    return list(dict.fromkeys(periods))


def _run_item(item: str, fiscal_year_start: int, where: str) -> list[Period]:
    parts = [part.strip() for part in item.split("..")]
    try:
        if len(parts) == 1 or all(_DATE_RE.fullmatch(part) for part in parts):
            return [_parse(item, fiscal_year_start)]
        if len(parts) != 2:
            raise _Invalid("a range has one '..' between two periods")
        if any(_DATE_RE.fullmatch(part) for part in parts):
            raise _Invalid("write a range of days with two dates, or a run range with two periods of one kind")
        first, last = (_parse(part, fiscal_year_start) for part in parts)
        if first.kind != last.kind:
            raise _Invalid(f"both ends must be the same kind of period, not a {first.kind} and a {last.kind}")
        if last.start < first.start:
            raise _Invalid(f"the range ends with {last.label}, before it starts with {first.label}")
    except _Invalid as exc:
        raise _Invalid(f"{where}{exc}" if str(exc) else f"{where}not a period or a range of periods") from None
    out = [first]
    while out[-1] != last:
        out.append(next_period(out[-1]))
    return out


def period_containing(ts: object, kind: str = "quarter", fiscal_year_start: int = 1) -> Period:
    """The year, quarter, month or week (`kind`) that contains the time `ts`."""
    fiscal_year_start = check_fiscal_year_start(fiscal_year_start)
    if kind not in ("year", "quarter", "month", "week"):
        raise ParameterError(f"kind: {kind!r} is not a kind of period; use year, quarter, month or week")
    return _containing(_as_timestamp(ts, "as_of"), kind, fiscal_year_start)


def latest_complete_period(as_of: object, kind: str = "quarter", fiscal_year_start: int = 1) -> Period:
    """The last year/quarter/month/week (`kind`) that has ended by `as_of`.

    `as_of` is "now"; a date means midnight at its start, so on 2026-10-01 the latest complete quarter is
    2026-Q3 and on 2026-09-30 it is 2026-Q2.
    """
    return previous_period(period_containing(as_of, kind, fiscal_year_start))


__all__ = [
    "COMPARISONS",
    "KINDS",
    "PERIOD_FORMS",
    "RANGE_FORMS",
    "Comparison",
    "Period",
    "PeriodKind",
    "check_fiscal_year_start",
    "comparison_period",
    "latest_complete_period",
    "next_period",
    "normalise_comparison",
    "parse_period",
    "period_containing",
    "period_range",
    "previous_period",
    "same_period_last_year",
    "shift_period",
]
