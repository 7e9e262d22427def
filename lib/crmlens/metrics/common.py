"""Small helpers shared by the metric modules (time buckets, safe ratios, won/closed selections)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

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
        from crmlens.errors import ParameterError

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


def has(frames: Mapping[str, pd.DataFrame], *tables: str) -> bool:
    """True when every table is present (for KPIs that return None without data)."""
    return all(t in frames for t in tables)
