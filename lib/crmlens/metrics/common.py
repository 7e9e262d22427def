"""Small helpers shared by the metric modules (time buckets, safe ratios, won/closed selections)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from crmlens.errors import ParameterError
from crmlens.kpis import KpiContext
from crmlens.schema import Vocabulary

#: pandas period frequencies accepted by `bucket` ("day" … "year").
FREQS: dict[str, str] = {"day": "D", "week": "W-SUN", "month": "M", "quarter": "Q", "year": "Y"}


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None when the denominator is 0 or missing (never a fake 0)."""
    if denominator is None or pd.isna(denominator) or denominator == 0:
        return None
    return float(numerator) / float(denominator)


def ratio_series(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """Element-wise ratio with NaN where the denominator is 0."""
    den = denominator.astype("float64")
    return numerator.astype("float64") / den.where(den != 0, np.nan)


def bucket(times: pd.Series, freq: str) -> pd.Series:
    """Label each timestamp with its period ('2026-09', '2026-Q3', '2026-W37', '2026', '2026-09-14')."""
    if freq not in FREQS:
        raise ParameterError(f"freq: {freq!r} is not a time grain; use one of {', '.join(FREQS)}")
    periods = times.dt.to_period(FREQS[freq])
    if freq == "week":
        iso = times.dt.isocalendar()
        return (iso["year"].astype("string") + "-W" + iso["week"].astype("string").str.zfill(2)).where(times.notna())
    if freq == "quarter":
        return periods.astype("string").str.replace("Q", "-Q", regex=False)
    return periods.astype("string")


def in_period(times: pd.Series, ctx: KpiContext) -> pd.Series:
    """True where a timestamp falls in the context's period [start, end)."""
    return ((times >= ctx.period_start) & (times < ctx.period_end)).fillna(False).astype(bool)


def won_mask(opportunities: pd.DataFrame) -> pd.Series:
    """True for won opportunities."""
    return opportunities["is_won"].fillna(False).astype(bool)


def closed_mask(opportunities: pd.DataFrame, vocabulary: Vocabulary | None = None) -> pd.Series:
    """True for closed (won or lost) opportunities."""
    return opportunities["closed_at"].notna() & opportunities["is_won"].notna()


def check_choice(param: str, value: str, allowed: Iterable[str]) -> str:
    """`value` when it is one of `allowed`, else a ParameterError naming the parameter and the choices."""
    allowed = list(allowed)
    if value not in allowed:
        raise ParameterError(f"{param}: {value!r} is not allowed; use one of {', '.join(map(str, allowed))}")
    return value


def closed_in_period(opportunities: pd.DataFrame, ctx: KpiContext | None) -> pd.DataFrame:
    """Opportunities won or lost in the context's period (all closed ones when `ctx` is None)."""
    closed = opportunities["closed_at"].notna() & opportunities["is_won"].notna()
    if ctx is not None:
        closed = closed & in_period(opportunities["closed_at"], ctx)
    return opportunities[closed.astype(bool)]


def won_in_period(opportunities: pd.DataFrame, ctx: KpiContext) -> pd.DataFrame:
    """The won opportunities closed in the context's period (the period's bookings)."""
    if opportunities.empty:
        return opportunities.iloc[0:0]
    return opportunities.loc[won_mask(opportunities) & in_period(opportunities["closed_at"], ctx)]


def _tiling(start: pd.Timestamp, end: pd.Timestamp, freq: str) -> list[str] | None:
    """Labels of the months/quarters that tile [start, end) exactly, or None."""
    periods = pd.period_range(start, end - pd.Timedelta(microseconds=1), freq=FREQS[freq])
    if len(periods) == 0 or periods[0].start_time != start or periods[-1].end_time.ceil("D") != end:
        return None
    return bucket(pd.Series(periods.start_time), freq).tolist()


def target_periods(targets: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, label: str = "") -> list[str]:
    """The `targets.period` labels that make up [start, end): the label itself when targets exist for it,
    else the months (then quarters) tiling it exactly when all have targets; [] when there is none.

    The one definition of "the period's target" used by every analysis."""
    available = {str(v) for v in targets["period"].dropna().unique()} if "period" in targets else set()
    if label and label in available:
        return [label]
    for freq in ("month", "quarter"):
        labels = _tiling(pd.Timestamp(start), pd.Timestamp(end), freq)
        if labels and set(labels) <= available:
            return labels
    return []


def has(frames: Mapping[str, pd.DataFrame], *tables: str) -> bool:
    """True when every table is present (for KPIs that return None without data)."""
    return all(t in frames for t in tables)
