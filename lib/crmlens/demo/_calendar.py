"""Time arithmetic for the generator: timestamps are int64 microseconds since the epoch (naive UTC)."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from crmlens.truths import DEMO_END, DEMO_START

SECOND = 1_000_000
HOUR = 3_600 * SECOND
DAY = 86_400 * SECOND
YEAR = 365 * DAY
#: Sentinel for "never" (e.g. a rep who never left).
NEVER = np.iinfo(np.int64).max


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch of a naive datetime."""
    return int(np.datetime64(moment, "us").astype(np.int64))


def year_start(year: int) -> int:
    """Microseconds at January 1st of `year`."""
    return to_us(datetime(year, 1, 1))


T0 = to_us(DEMO_START)
T_END = to_us(DEMO_END)

#: Calendar grid of month starts, 2015-01 .. 2032-01 (the last entry closes the grid).
_GRID_MONTHS = np.arange(np.datetime64("2015-01"), np.datetime64("2032-02"), dtype="datetime64[M]")
MONTH_EDGES: np.ndarray = _GRID_MONTHS.astype("datetime64[us]").astype(np.int64)
_GRID_FIRST_YEAR = 2015


def month_pos(year: int, month: int) -> int:
    """Index of a calendar month in the grid."""
    return (year - _GRID_FIRST_YEAR) * 12 + month - 1


def month_index(t: np.ndarray) -> np.ndarray:
    """Grid month index of each timestamp."""
    return np.searchsorted(MONTH_EDGES, t, side="right") - 1


def quarter_index(t: np.ndarray) -> np.ndarray:
    """Grid quarter index (grid month index // 3) of each timestamp."""
    return month_index(t) // 3


def quarter_end(t: np.ndarray) -> np.ndarray:
    """The last second of each timestamp's quarter."""
    return MONTH_EDGES[quarter_index(t) * 3 + 3] - SECOND


def quarter_pos(year: int, quarter: int) -> int:
    """Grid quarter index of a calendar quarter."""
    return month_pos(year, 3 * quarter - 2) // 3


def month_label(pos: int) -> str:
    """`YYYY-MM` of a grid month index."""
    return f"{_GRID_FIRST_YEAR + pos // 12}-{pos % 12 + 1:02d}"


def quarter_label(qpos: int) -> str:
    """`YYYY-Qn` of a grid quarter index."""
    return f"{_GRID_FIRST_YEAR + qpos // 4}-Q{qpos % 4 + 1}"


M0 = month_pos(DEMO_START.year, DEMO_START.month)
M_END = month_pos(DEMO_END.year, DEMO_END.month)
Q0 = M0 // 3
Q_END = M_END // 3


def uniform_between(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A uniform instant in [lo, hi] per row (hi >= lo)."""
    span = (np.asarray(hi) - np.asarray(lo)).astype(np.float64)
    return np.asarray(lo) + (rng.random(span.shape) * span).astype(np.int64)


def in_month(rng: np.random.Generator, pos: np.ndarray) -> np.ndarray:
    """A uniform instant within each given grid month."""
    return uniform_between(rng, MONTH_EDGES[pos], MONTH_EDGES[pos + 1] - SECOND)


def days(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    """`n` random durations between `lo` and `hi` days, in microseconds."""
    return (rng.uniform(lo, hi, n) * DAY).astype(np.int64)


def floor_day(t: np.ndarray) -> np.ndarray:
    """Midnight of each timestamp's day."""
    return t - t % DAY


def seasonal_sample(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray,
                    month_weight: np.ndarray) -> np.ndarray:
    """Instants in [lo, hi] drawn with a density proportional to `month_weight` of the grid month."""
    widths = np.diff(MONTH_EDGES).astype(np.float64) * month_weight[: len(MONTH_EDGES) - 1]
    cum = np.concatenate([[0.0], np.cumsum(widths)])
    edges = MONTH_EDGES.astype(np.float64)
    a, b = np.interp(lo, edges, cum), np.interp(hi, edges, cum)
    target = a + rng.random(len(a)) * (b - a)
    return np.clip(np.interp(target, cum, edges).astype(np.int64), lo, hi)


def grid_month_weights(q4_factor: float) -> np.ndarray:
    """Weight per grid month: `q4_factor` for October–December, 1 otherwise."""
    months = np.arange(len(MONTH_EDGES)) % 12 + 1
    return np.where(months >= 10, q4_factor, 1.0)
