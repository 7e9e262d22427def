"""Time-series forecasts of bookings and leads, with rolling-origin backtests against simple baselines.

A pure library: pandas/numpy in, pandas out; no I/O of its own and nothing printed. Prophet is imported lazily,
inside the functions that fit it; each Prophet use sets Prophet's and cmdstanpy's loggers to WARNING, hides
Prophet's pandas deprecation warnings and (`FAST_STAN_JSON`) installs a faster writer for cmdstan's data file —
process-wide side effects, documented below. cmdstan itself still exchanges temporary files with Python.

Building blocks
---------------
* `regular_series` turns events (dates, optionally values) into a regular daily / weekly / monthly series with
  the empty periods as 0; `choose_freq` picks the frequency the data supports.
* Baselines `seasonal_naive`, `last_year` and `moving_average`, each ``(history, horizon, season_length)`` →
  frame ``date, yhat, lower, upper``; their intervals are the empirical quantiles of the baseline's own in-sample
  h-step residuals (for every step h of the horizon, the errors the same rule made h steps ahead in the history).
* `prophet_forecast`: Prophet with yearly / weekly / quarterly seasonality and a country's holidays as the data
  allow, forecast clipped at 0.
* `backtest`: rolling-origin evaluation (MASE, sMAPE, interval coverage) of Prophet and the baselines;
  `best_model`, `beats_baselines`.
* `forecast_many`: backtest + final forecast for many series in parallel, falling back to the best baseline
  when Prophet does not beat them.

Prophet settings, and the measurements behind them (2026-12-01, this 2-core machine, Prophet 1.5.0)
------------------------------------------------------------------------------------------------------
* Intervals. Prophet's own interval sampling draws from numpy's *global* RNG, so concurrent threads would make
  the intervals depend on scheduling. `prophet_forecast` therefore predicts with ``uncertainty_samples=0``
  (yhat only: 0.028 s per predict of 90 future days, against 0.060 / 0.063 / 0.079 s with Prophet's sampler at
  50 / 200 / 1000 samples) and draws the same simulation as Prophet's vectorised linear-growth sampler (future
  trend changepoints at the fitted changepoint rate with Laplace(mean |delta|) slope shifts, plus
  Normal(0, sigma_obs) noise) from a seeded ``numpy.random.Generator`` of its own: reproducible and
  thread-safe. Checked against Prophet's sampler with 4000 samples on the same fit (1000 daily points, US
  holidays, 90 days ahead): 80 % bounds at steps 1 / 31 / 90 of 40.11 / 58.26 / 60.92 (ours) vs 40.07 / 58.67
  / 60.98 (Prophet) below, 52.50 / 70.86 / 73.56 vs 52.34 / 70.91 / 73.17 above.
* ``uncertainty_samples`` = 200: rolling-origin backtests (3 origins × 90 days) of 20 synthetic daily series
  (1000 days, trend, weekly + yearly seasonality, noise), nominal 80 % intervals:

      samples   coverage   our sampling time per forecast
      50        0.697      1.6 ms
      100       0.715      2.3 ms
      200       0.718      3.5 ms
      300       0.721      4.8 ms
      1000      0.727      13.3 ms

  Coverage gains flatten after ~100–200 samples (the 10 %/90 % quantiles of few draws are biased inwards);
  200 buys 0.718 for 3.5 ms, and 1000 would add only 0.009 for 4× the time. Prophet's intervals under-cover
  (0.72 for a nominal 0.80: they assume the model is right); the backtest reports the measured coverage.
* Optimizer: cmdstan's L-BFGS (Prophet's choice from 100 points; Newton below, left alone) with
  ``tol_rel_grad=1e9`` (`LBFGS_OPTIONS`; cmdstan's default 1e7). Over 12 synthetic daily series × 3 origins:
  median fit 0.108 s → 0.094 s, backtest MASE 0.7304 → 0.7300, yhat within 0.46 % of the series' mean level of
  the default fit; ``tol_rel_obj`` 1e5 / 1e6 saved only 3–4 %. A fit with ``iter=1`` still takes 0.067 s: that
  is the fixed cost (Prophet's preprocessing ~0.02–0.04 s, the data JSON, the cmdstan subprocess).
  ``algorithm="Newton"`` took 4.4 s (no holidays) to 8.9 s (US holidays) per fit of 900 days: not an option.
* The data JSON: stanio writes cmdstan's input with an element-wise conversion and the pure-Python ``json.dump``
  (~0.045 s per fit of 1000 days; it would use ``ujson`` if installed). `_fast_stan_json` writes the same
  numbers with ``tolist`` + ``json.dumps`` (~0.007 s) and is installed as cmdstanpy's writer when
  `FAST_STAN_JSON` (default): fit + predict with US holidays 0.22 s → 0.18 s, the same yhat to the last bit.
* Predict: `_predict_mean` computes yhat as trend + X·beta (the Fourier columns from
  ``Prophet.fourier_series``, holiday columns from Prophet's own code): 7 ms instead of 35 ms for 365 future
  days without holidays, 29 ms with US holidays (building the holiday columns dominates); equal to
  ``Prophet.predict`` within 3e-14.
* Quarterly seasonality (period 91.3125 days = 365.25 / 4) is the same set of sine/cosine columns as the yearly
  seasonality's harmonics 4 and 8 (and 12). With yearly seasonality on (fourier order 10) it only adds the
  12th harmonic; on the same 20 series × 3 origins, MASE 0.8102 with it vs 0.8092 without, and a median fit
  of 0.192 s vs 0.173 s. It is therefore added when asked for and the yearly seasonality is *off* (between 2
  quarters and 2 years of history), where it is the only way to capture a quarter pattern. Monthly data can
  resolve only its first harmonic (a 3-month period sampled monthly), so monthly series get fourier order 1.
* Yearly fourier order 6 (`YEARLY_ORDER`; Prophet's default is 10) for daily and weekly series: on 16 synthetic
  series × 3 origins with a sinusoidal yearly pattern, orders 6 / 4 fitted 14 % / 24 % faster at equal MASE
  (0.756 / 0.754 vs 0.760); on the demo's daily bookings with their Q4 bump (the company and its six regions,
  2023-01..2026-09, 3 origins × 90 days), order 6 vs 10: MASE equal or lower on 6 of 7 series (total 1.165 vs
  1.185, Central 1.259 vs 1.278, East 1.093 vs 1.092), coverage 0.719 vs 0.715, 2.7 s vs 3.8 s. The 100-series
  bench: 19.7 s vs 23.4 s (processes), Prophet's median MASE 1.052 vs 1.053.
* Holidays are added for daily series only: on weekly or monthly rows Prophet's holiday indicator would fire
  only when a holiday happens to fall on the row's date (a Monday, the 1st), a spurious effect.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "BASELINES",
    "backtest",
    "beats_baselines",
    "best_model",
    "choose_freq",
    "coverage",
    "forecast_many",
    "last_year",
    "mase",
    "moving_average",
    "prophet_forecast",
    "regular_series",
    "resolve_country",
    "seasonal_naive",
    "seasonal_naive_scale",
    "smape",
]

#: Pandas frequency used for each public frequency. Weeks start on Monday and are labelled by that Monday.
PANDAS_FREQ = {"D": "D", "W": "W-MON", "MS": "MS"}
#: The default season length (points per seasonal cycle used by seasonal naive and the MASE scale) per freq.
SEASON_LENGTH = {"D": 7, "W": 52, "MS": 12}
#: The lag of "the same period last year" per freq.
YEAR_LAG = {"D": 365, "W": 52, "MS": 12}
#: Average length of one period in days, per freq.
PERIOD_DAYS = {"D": 1.0, "W": 7.0, "MS": 365.25 / 12}
#: Baselines from the simplest; `best_model` breaks MASE ties towards the earlier name, Prophet last.
SIMPLICITY = ("moving_average", "seasonal_naive", "last_year", "prophet")
DEFAULT_MODELS = ("prophet", "seasonal_naive", "last_year", "moving_average")
QUARTER_DAYS = 365.25 / 4
#: Fourier order of the yearly seasonality of daily and weekly series (see the module docstring).
YEARLY_ORDER = 6
DEFAULT_UNCERTAINTY_SAMPLES = 200
#: `forecast_many(executor="auto")` uses processes from this many series on (their start-up, ~1.5 s, is then
#: repaid by running Prophet's Python code outside one GIL), threads below.
PROCESS_MIN_SERIES = 8
#: cmdstan L-BFGS options for Prophet's fit (see the module docstring for the measurement behind them).
LBFGS_OPTIONS: dict[str, float] = {"tol_rel_grad": 1e9}

_FRAME_COLUMNS = ["date", "yhat", "lower", "upper"]


# ------------------------------------------------------------------------------------------------ frequencies

def _freq_key(freq: str) -> str:
    """The public frequency ("D", "W" or "MS") for `freq`, which may also be a pandas alias of one of them."""
    key = {"D": "D", "W": "W", "W-MON": "W", "MS": "MS", "M": "MS", "ME": "MS"}.get(str(freq).upper())
    if key is None:
        raise ValueError(f"freq must be 'D', 'W' or 'MS', not {freq!r}")
    return key


def _period_start(dates: pd.Series, key: str) -> pd.Series:
    dates = pd.to_datetime(dates)
    if dates.dt.tz is not None:
        dates = dates.dt.tz_localize(None)
    if key == "D":
        return dates.dt.normalize()
    if key == "W":
        return dates.dt.to_period("W-SUN").dt.start_time  # the Monday starting the week Monday..Sunday
    return dates.dt.to_period("M").dt.start_time


def _floor_one(value: Any, key: str) -> pd.Timestamp:
    return pd.Timestamp(_period_start(pd.Series([pd.Timestamp(value)]), key).iloc[0])


def regular_series(dates: pd.Series, values: pd.Series | None, freq: str, start: Any = None,
                   end: Any = None) -> pd.Series:
    """Aggregate events into a regular series: the sum of `values` per period, or the count of events when
    `values` is None.

    `freq` is "D" (days), "W" (weeks Monday–Sunday, labelled by their Monday: the index has pandas freq
    "W-MON") or "MS" (calendar months, labelled by their first day). Periods without events between `start` and
    `end` (default: the first and last event's period; both are floored to their period) are 0 — the events
    table is complete, so a gap in sales is a zero. Events outside [start, end] are dropped. The result is a
    float series with a DatetimeIndex named "date" carrying the pandas freq.

    The first and last periods hold whatever events fall in them: when the data start or stop mid-week or
    mid-month they are partial, and a partial last month reads as a drop to every model — cut the events at
    period boundaries (or drop those periods) before forecasting.
    """
    key = _freq_key(freq)
    dates = pd.Series(dates).reset_index(drop=True)
    keep = dates.notna()
    periods = _period_start(dates[keep], key)
    if values is None:
        amounts = pd.Series(1.0, index=periods.index)
    else:
        amounts = pd.Series(values).reset_index(drop=True)[keep].astype(float).fillna(0.0)
    if start is None and periods.empty:
        raise ValueError("no events and no start: cannot build a series")
    first = _floor_one(start, key) if start is not None else periods.min()
    last = _floor_one(end, key) if end is not None else periods.max()
    index = pd.date_range(first, last, freq=PANDAS_FREQ[key], name="date")
    sums = amounts.groupby(periods.to_numpy()).sum()
    out = sums.reindex(index, fill_value=0.0).astype(float)
    out.index = index
    out.name = "value" if values is None or getattr(values, "name", None) is None else values.name
    return out


def choose_freq(n_days_of_history: int, n_events: int) -> str:
    """The finest frequency the data supports.

    * "D" when there are at least 180 days of history and at least 5 events per day on average (daily counts
      of fewer than ~5 are mostly noise and zeros);
    * else "W" when there are at least 26 weeks and at least 3 events per week on average;
    * else "MS" (months).
    """
    days = max(int(n_days_of_history), 0)
    if days >= 180 and n_events >= 5 * days:
        return "D"
    weeks = days / 7
    if weeks >= 26 and n_events >= 3 * weeks:
        return "W"
    return "MS"


def _series_freq(history: pd.Series) -> str:
    """The public freq of a regular series, from its index."""
    index = pd.DatetimeIndex(history.index)
    alias = index.freqstr if index.freq is not None else (pd.infer_freq(index) if len(index) >= 3 else None)
    if alias is None:
        raise ValueError("history must have a regular DatetimeIndex (use regular_series)")
    return _freq_key(alias.split("-")[0] if alias.startswith("W") else alias)


def _future_dates(history: pd.Series, horizon: int, key: str | None = None) -> pd.DatetimeIndex:
    key = key or _series_freq(history)
    last = pd.Timestamp(history.index[-1])
    return pd.date_range(last, periods=horizon + 1, freq=PANDAS_FREQ[key], name="date")[1:]


def _as_series(history: pd.Series) -> pd.Series:
    s = pd.Series(history, dtype=float)
    if not isinstance(s.index, pd.DatetimeIndex):
        s.index = pd.DatetimeIndex(s.index)
    return s


# ------------------------------------------------------------------------------------------------- metrics

def mase(actual: Iterable[float], forecast: Iterable[float], scale: float | Iterable[float]) -> float:
    """Mean absolute scaled error: mean(|actual − forecast| / scale).

    `scale` is the in-sample seasonal naive MAE of the training data (`seasonal_naive_scale`), one value or one
    per point (when points from several origins are pooled). A zero error counts 0 whatever the scale; a
    non-zero error over a zero scale counts +inf.
    """
    a, f = np.asarray(actual, float), np.asarray(forecast, float)
    s = np.broadcast_to(np.asarray(scale, float), a.shape)
    err = np.abs(a - f)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(err == 0, 0.0, err / s)
    return float(np.mean(scaled)) if scaled.size else math.nan


def smape(actual: Iterable[float], forecast: Iterable[float]) -> float:
    """Symmetric MAPE in % (0..200): mean(200·|a − f| / (|a| + |f|)), a point with a = f = 0 counting 0."""
    a, f = np.asarray(actual, float), np.asarray(forecast, float)
    den = np.abs(a) + np.abs(f)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(den == 0, 0.0, 200.0 * np.abs(a - f) / den)
    return float(np.mean(terms)) if terms.size else math.nan


def coverage(actual: Iterable[float], lower: Iterable[float], upper: Iterable[float]) -> float:
    """Share of actuals inside [lower, upper] (bounds included)."""
    a, lo, hi = np.asarray(actual, float), np.asarray(lower, float), np.asarray(upper, float)
    return float(np.mean((a >= lo) & (a <= hi))) if a.size else math.nan


def seasonal_naive_scale(train: Iterable[float], season_length: int) -> float:
    """The in-sample MAE of the seasonal naive forecast (y_t − y_{t−m}) on `train`: the MASE denominator."""
    y = np.asarray(train, float)
    if len(y) <= season_length:
        raise ValueError(f"{len(y)} points: the MASE scale needs more than one season ({season_length})")
    return float(np.mean(np.abs(y[season_length:] - y[:-season_length])))


# ------------------------------------------------------------------------------------------------ baselines

def _quantile_bands(residuals: list[np.ndarray], coverage_: float) -> tuple[np.ndarray, np.ndarray]:
    """(q_low, q_high) per step from each step's residuals; a step without residuals reuses the previous."""
    lo_p, hi_p = (1 - coverage_) / 2, (1 + coverage_) / 2
    q_lo, q_hi = np.empty(len(residuals)), np.empty(len(residuals))
    prev = None
    for i, r in enumerate(residuals):
        if r.size:
            prev = (float(np.quantile(r, lo_p)), float(np.quantile(r, hi_p)))
        if prev is None:
            raise ValueError("no in-sample residuals to build an interval from")
        q_lo[i], q_hi[i] = prev
    return q_lo, q_hi


def _row_quantile_bands(residuals: np.ndarray, counts: np.ndarray, coverage_: float
                        ) -> tuple[np.ndarray, np.ndarray]:
    """`_quantile_bands` for a (steps × points) matrix whose row i holds counts[i] residuals then NaNs, all rows
    at once (numpy's default linear interpolation); a row without residuals reuses the previous row's."""
    ordered = np.sort(residuals, axis=1)  # NaN last
    rows = np.arange(len(ordered))
    bands = []
    for p in ((1 - coverage_) / 2, (1 + coverage_) / 2):
        pos = p * np.maximum(counts - 1, 0)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, np.maximum(counts - 1, 0))
        q = ordered[rows, lo] + (pos - lo) * (ordered[rows, hi] - ordered[rows, lo])
        q = pd.Series(np.where(counts > 0, q, np.nan)).ffill().to_numpy()
        if np.isnan(q).any():
            raise ValueError("no in-sample residuals to build an interval from")
        bands.append(q)
    return bands[0], bands[1]


def _frame(dates: pd.DatetimeIndex, yhat: np.ndarray, lower: np.ndarray, upper: np.ndarray, model: str,
           clip_lower: bool) -> pd.DataFrame:
    if clip_lower:
        lower = np.maximum(lower, 0.0)
    # the empirical band is kept as measured, even when it does not contain yhat (a biased baseline)
    out = pd.DataFrame({"date": pd.DatetimeIndex(dates), "yhat": yhat, "lower": lower, "upper": upper})
    out.attrs["model"] = model
    return out


def _lag_forecast(history: pd.Series, horizon: int, lag: int, model: str, coverage_: float) -> pd.DataFrame:
    s = _as_series(history)
    y = s.to_numpy()
    n = len(y)
    if lag < 1:
        raise ValueError("lag must be ≥ 1")
    if n <= lag:
        raise ValueError(f"history of {n} points is shorter than a season of {lag} + 1")
    steps = np.arange(1, horizon + 1)
    k = (steps - 1) // lag + 1  # seasons back for step h
    yhat = y[n - lag + (steps - 1) % lag]  # y_{T+h-k·lag}, T = n - 1
    ks = np.unique(k)  # steps sharing k share their residuals y_t − y_{t−k·lag}: one quantile per k
    k_lo, k_hi = _quantile_bands([y[kk * lag:] - y[:-kk * lag] if n > kk * lag else np.empty(0) for kk in ks],
                                 coverage_)
    pos = np.searchsorted(ks, k)
    q_lo, q_hi = k_lo[pos], k_hi[pos]
    return _frame(_future_dates(s, horizon), yhat, yhat + q_lo, yhat + q_hi, model, bool((y >= 0).all()))


def seasonal_naive(history: pd.Series, horizon: int, season_length: int, *, coverage: float = 0.8) -> pd.DataFrame:
    """The value one season ago, repeated: ŷ_{T+h} = y_{T+h−m·k}, k = ⌈h/m⌉.

    Interval: for each step h, the empirical (1 ± coverage)/2 quantiles of the in-sample errors of the same
    rule, y_t − y_{t−m·k}, added to ŷ (the lower bound clipped at 0 when the history is non-negative).
    Raises ValueError when the history is not longer than a season.
    """
    return _lag_forecast(history, horizon, int(season_length), "seasonal_naive", coverage)


def last_year(history: pd.Series, horizon: int, season_length: int | None = None, *,
              coverage: float = 0.8) -> pd.DataFrame:
    """The same period last year: the value 365 days / 52 weeks / 12 months before (by the history's freq),
    repeated for horizons beyond a year. `season_length` is accepted for the common signature and ignored: the
    lag is always a year. Intervals as in `seasonal_naive`, with the yearly lag. Raises ValueError when the
    history is not longer than a year.
    """
    return _lag_forecast(history, horizon, YEAR_LAG[_series_freq(_as_series(history))], "last_year", coverage)


def moving_average(history: pd.Series, horizon: int, season_length: int, *, coverage: float = 0.8) -> pd.DataFrame:
    """The mean of the last `season_length` points, flat over the horizon.

    Interval: for each step h, the empirical quantiles of the in-sample errors y_t − mean(y_{t−h−m+1..t−h}).
    Raises ValueError when the history has fewer than `season_length` + 1 points.
    """
    s = _as_series(history)
    y = s.to_numpy()
    n, w = len(y), int(season_length)
    if n <= w:
        raise ValueError(f"history of {n} points is shorter than a season of {w} + 1")
    level = float(y[-w:].mean())
    csum = np.concatenate([[0.0], np.cumsum(y)])
    means = (csum[w:] - csum[:-w]) / w  # means[j] = mean(y[j : j+w]), known at time j+w-1
    # the forecast of y_t made h steps earlier is means[t-h-w+1]: row h-1, column j holds y[j+w+h-1] - means[j]
    steps = np.arange(1, horizon + 1)[:, None]
    j = np.arange(n - w)[None, :]
    t_idx = j + w - 1 + steps
    valid = t_idx < n
    residuals = np.where(valid, y[np.minimum(t_idx, n - 1)] - means[j], np.nan)
    q_lo, q_hi = _row_quantile_bands(residuals, valid.sum(axis=1), coverage)
    yhat = np.full(horizon, level)
    return _frame(_future_dates(s, horizon), yhat, yhat + q_lo, yhat + q_hi, "moving_average",
                  bool((y >= 0).all()))


BASELINES: dict[str, Callable[..., pd.DataFrame]] = {
    "seasonal_naive": seasonal_naive,
    "last_year": last_year,
    "moving_average": moving_average,
}


# -------------------------------------------------------------------------------------------------- prophet

def _fast_stan_json(path: str, data: Mapping[str, Any]) -> None:
    """cmdstanpy's data-file writer for plain numeric data (Prophet's): ``ndarray.tolist`` + the C JSON encoder
    (``json.dumps``) instead of stanio's element-wise conversion and pure-Python ``json.dump`` — the same
    numbers (floats are written as their shortest round-trip repr either way). Anything else (strings, tuples,
    non-finite values) goes to stanio's writer unchanged."""
    import json

    from stanio import write_stan_json

    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, bool):
            out[k] = int(v)
            continue
        arr = None if isinstance(v, str | tuple | dict) else np.asarray(v)
        if arr is None or arr.dtype.kind not in "iuf" or (arr.dtype.kind == "f" and not np.isfinite(arr).all()):
            write_stan_json(path, data)
            return
        out[k] = arr.tolist()
    with open(path, "w") as fd:
        fd.write(json.dumps(out))


#: When True (default), `prophet_forecast` installs `_fast_stan_json` as cmdstanpy's data-file writer
#: (``cmdstanpy.utils.filesystem.write_stan_json``, process-wide; see the module docstring for the gain).
FAST_STAN_JSON = True


def _quiet_prophet() -> None:
    """Raise Prophet's and cmdstanpy's loggers to WARNING and hide Prophet's pandas deprecation warnings."""
    import warnings

    from cmdstanpy.utils.logging import get_logger  # creates cmdstanpy's handler once; then we raise the level

    get_logger().setLevel(logging.WARNING)
    for name in ("cmdstanpy", "prophet", "prophet.models", "prophet.plot"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Prophet 1.5 still uses pandas' deprecated ``inplace=`` (Pandas4Warning, a DeprecationWarning); added per
    # call (filterwarnings de-duplicates) so it also holds under contexts that reset the filters
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"prophet(\.|$)")
    if FAST_STAN_JSON:
        import cmdstanpy.utils.filesystem as cmdstan_fs

        cmdstan_fs.write_stan_json = _fast_stan_json


def resolve_country(country: str | None) -> str | None:
    """The `holidays` package's code for `country` — a 2-letter (or 3-letter) code, or a name such as
    "United States" / "UnitedStates" — or None when it is empty or unknown."""
    if not country or not str(country).strip():
        return None
    import holidays

    text = str(country).strip()
    squashed = "".join(ch for ch in text if ch.isalnum()).lower()
    try:
        from holidays.registry import COUNTRIES  # {module: (ClassName, alpha-2, alpha-3, ...)}
    except ImportError:  # pragma: no cover - older/newer holidays layouts
        COUNTRIES = {}
    for module, (class_name, alpha2, *rest) in COUNTRIES.items():
        aliases = {class_name.lower(), module.replace("_", ""), alpha2.lower(), *(r.lower() for r in rest[:1])}
        if squashed in aliases:
            return alpha2
    return text.upper() if text.upper() in holidays.list_supported_countries() else None


def _predict_mean(model: Any, future: pd.DataFrame) -> np.ndarray:
    """Prophet's yhat for `future`: trend + X·beta·y_scale, for linear growth with additive seasonalities and
    holidays (what `prophet_forecast` builds) — the same numbers as ``model.predict`` (see the tests) in ~5 ms
    instead of ~35 ms: the Fourier columns come straight from ``Prophet.fourier_series`` and only the holiday
    columns go through Prophet's pandas code. Anything else (regressors, conditions, multiplicative terms)
    takes Prophet's own path."""
    ds = pd.Series(pd.DatetimeIndex(future["ds"]).as_unit("ns"))
    beta = np.asarray(model.params["beta"], float).mean(axis=0)
    simple = (model.growth == "linear" and not model.extra_regressors and model.holidays_mode == "additive"
              and all(p["mode"] == "additive" and p["condition_name"] is None for p in model.seasonalities.values()))
    blocks = [model.fourier_series(ds, p["period"], p["fourier_order"]) for p in model.seasonalities.values()]
    if simple and (model.holidays is not None or model.country_holidays is not None):
        holidays = model.construct_holiday_dataframe(ds)
        if len(holidays):
            features, _, _ = model.make_holiday_features(ds, holidays)
            blocks.append(features.to_numpy(float))
    width = sum(b.shape[1] for b in blocks)
    if simple and width == beta.size and width:
        t = ((ds - model.start) / model.t_scale).to_numpy(float)
        k, m = float(np.nanmean(model.params["k"])), float(np.nanmean(model.params["m"]))
        deltas = np.nanmean(model.params["delta"], axis=0)
        trend = model.piecewise_linear(t, deltas, k, m, model.changepoints_t) * float(model.y_scale)
        return trend + np.hstack(blocks) @ beta * float(model.y_scale)
    return model.predict(future)["yhat"].to_numpy(float)


def _sample_intervals(model: Any, future: pd.DataFrame, yhat: np.ndarray, n_samples: int, interval_width: float,
                      seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Prophet's vectorised linear-growth predictive simulation (trend changepoints in the future + observation
    noise) drawn from a seeded Generator, instead of numpy's global RNG."""
    rng = np.random.default_rng(seed)
    t = ((pd.to_datetime(future["ds"]) - model.start) / model.t_scale).to_numpy(float)
    y_scale = float(model.y_scale)
    deltas = np.asarray(model.params["delta"])[0]
    sigma = float(np.ravel(model.params["sigma_obs"])[0])
    n = len(t)
    unc = np.zeros((n_samples, n))
    future_mask = t > 1
    m = int(future_mask.sum())
    if m:
        tf = t[future_mask]
        single_diff = float(np.diff(tf).mean()) if m > 1 else float(np.diff(model.history["t"]).mean())
        likelihood = len(model.changepoints_t) * single_diff
        mean_delta = float(np.mean(np.abs(deltas))) + 1e-8
        change = rng.uniform(size=(n_samples, m)) < likelihood
        shifts = rng.laplace(0.0, mean_delta, size=(n_samples, m)) * change
        shifts = (np.hstack([np.zeros((n_samples, 1)), shifts])[:, :-1] + shifts) / 2
        unc[:, future_mask] = shifts.cumsum(axis=1).cumsum(axis=1) * single_diff
    sims = yhat[None, :] + unc * y_scale + rng.normal(0.0, sigma, (n_samples, n)) * y_scale
    lo_p, hi_p = 100 * (1 - interval_width) / 2, 100 * (1 + interval_width) / 2
    return np.percentile(sims, lo_p, axis=0), np.percentile(sims, hi_p, axis=0)


def prophet_forecast(history: pd.Series, horizon: int, freq: str, *, country: str | None = None,
                     interval_width: float = 0.8, uncertainty_samples: int = DEFAULT_UNCERTAINTY_SAMPLES,
                     quarterly_seasonality: bool = True, seed: int | None = 0) -> pd.DataFrame:
    """Prophet forecast of `horizon` periods after `history` (a regular series at `freq`).

    Settings: linear growth; yearly seasonality when the history spans ≥ 2 years (fourier order `YEARLY_ORDER`,
    5 for monthly data); weekly seasonality for daily data; a quarterly seasonality (period 91.3125 days, fourier
    order 3, 1 for monthly data) when `quarterly_seasonality`, the history spans ≥ 2 quarters and the yearly
    seasonality is off (with it on, the quarterly columns duplicate its 4th and 8th harmonics: see the module
    docstring); the holidays of `country` (a code or a name the `holidays` package knows) for daily data, an
    unknown country being ignored. Intervals at `interval_width` from `uncertainty_samples` simulations drawn
    with `seed` (reproducible; see the module docstring). yhat, lower and upper are clipped at 0.

    Returns a frame ``date, yhat, lower, upper``; ``frame.attrs`` holds "model" ("prophet"), "country" (the
    resolved code or None), "holidays" (the holiday names Prophet fitted, sorted), "seasonalities" and "note".
    """
    from prophet import Prophet

    _quiet_prophet()
    key = _freq_key(freq)
    s = _as_series(history)
    if len(s) < 2:
        raise ValueError("Prophet needs at least 2 points")
    span_days = (s.index[-1] - s.index[0]).days + PERIOD_DAYS[key]
    yearly = span_days >= 2 * 365
    notes = []
    model = Prophet(growth="linear", yearly_seasonality=False, weekly_seasonality=False, daily_seasonality=False,
                    interval_width=interval_width, uncertainty_samples=0)
    if yearly:
        model.add_seasonality("yearly", period=365.25, fourier_order=5 if key == "MS" else YEARLY_ORDER)
    if key == "D" and len(s) >= 14:
        model.add_seasonality("weekly", period=7, fourier_order=3)
    if quarterly_seasonality and not yearly and span_days >= 2 * QUARTER_DAYS:
        model.add_seasonality("quarterly", period=QUARTER_DAYS, fourier_order=1 if key == "MS" else 3)
    code = resolve_country(country)
    code_used = None
    if country and code is None:
        notes.append(f"unknown country {country!r}: no holidays")
    elif code is not None and key != "D":
        notes.append(f"holidays of {code} not used: they need daily data")
    elif code is not None:
        model.add_country_holidays(country_name=code)
        code_used = code
    frame = pd.DataFrame({"ds": s.index.to_numpy(), "y": s.to_numpy(float)})
    # L-BFGS (Prophet's choice from 100 points; below that it uses Newton, which takes no tolerances)
    model.fit(frame, **(LBFGS_OPTIONS if len(frame) >= 100 else {}))
    future = pd.DataFrame({"ds": _future_dates(s, horizon, key).to_numpy()})
    raw = _predict_mean(model, future)
    lower, upper = _sample_intervals(model, future, raw, max(int(uncertainty_samples), 1), interval_width, seed)
    yhat = np.maximum(raw, 0.0)
    out = pd.DataFrame({"date": pd.DatetimeIndex(future["ds"], name="date"), "yhat": yhat,
                        "lower": np.minimum(np.maximum(lower, 0.0), yhat), "upper": np.maximum(upper, yhat)})
    names = sorted(str(n) for n in (model.train_holiday_names if model.train_holiday_names is not None else []))
    out.attrs.update({"model": "prophet", "country": code_used, "holidays": names,
                      "seasonalities": sorted(model.seasonalities), "note": "; ".join(notes)})
    return out


# ------------------------------------------------------------------------------------------------- backtest

def _origins(n: int, horizon: int, n_origins: int, step: int) -> list[int]:
    """Positions of the origins (first forecast point), the last one at n − horizon, spaced `step` apart."""
    last = n - horizon
    return [last - i * step for i in range(n_origins - 1, -1, -1)]


def _one_forecast(model: str, train: pd.Series, horizon: int, key: str, season_length: int, *,
                  country: str | None, interval_width: float, uncertainty_samples: int, seed: int | None,
                  quarterly_seasonality: bool = True) -> pd.DataFrame:
    if model == "prophet":
        return prophet_forecast(train, horizon, key, country=country, interval_width=interval_width,
                                uncertainty_samples=uncertainty_samples, seed=seed,
                                quarterly_seasonality=quarterly_seasonality)
    if model not in BASELINES:
        raise ValueError(f"unknown model {model!r}")
    return BASELINES[model](train, horizon, season_length, coverage=interval_width)


def backtest(series: pd.Series, freq: str, *, horizon: int, n_origins: int = 3, season_length: int | None = None,
             country: str | None = None, interval_width: float = 0.8,
             models: Sequence[str] = DEFAULT_MODELS, step: int | None = None,
             uncertainty_samples: int = DEFAULT_UNCERTAINTY_SAMPLES, seed: int = 0,
             quarterly_seasonality: bool = True) -> pd.DataFrame:
    """Rolling-origin evaluation of `models` on `series` (a regular series at `freq`).

    Origins are `step` (default `horizon`) points apart, the last at len − horizon so that its forecast ends at
    the last point. At each origin every model is fitted on the points before the origin only and forecasts
    the next `horizon` points. Per model: ``mase`` (errors scaled by the in-sample seasonal naive MAE, season
    `season_length` — default 7 / 52 / 12 for D / W / MS — of that origin's training data, pooled over all
    origins), ``smape`` (%, 0..200, 0/0 → 0), ``coverage`` (share of actuals within [lower, upper]) and
    ``n_points``; one row per model, plus ``n_origins`` and ``note``. A model that cannot be computed at some
    origin (e.g. `last_year` with less than a year of training) gets NaN metrics and the reason in ``note``.
    Raises ValueError when the first origin leaves no more than one season of training data.
    """
    key = _freq_key(freq)
    s = _as_series(series)
    m = int(season_length or SEASON_LENGTH[key])
    step = int(step or horizon)
    origins = _origins(len(s), horizon, n_origins, step)
    if origins[0] <= m:
        raise ValueError(f"too short: {len(s)} points leave {max(origins[0], 0)} training points at the first "
                         f"origin, need more than one season ({m})")
    errs: dict[str, list[pd.DataFrame]] = {name: [] for name in models}
    notes: dict[str, str] = {}
    for i, origin in enumerate(origins):
        train, test = s.iloc[:origin], s.iloc[origin:origin + horizon]
        scale = seasonal_naive_scale(train.to_numpy(), m)
        for name in models:
            if name in notes:
                continue
            try:
                fc = _one_forecast(name, train, horizon, key, m, country=country, interval_width=interval_width,
                                   uncertainty_samples=uncertainty_samples, seed=seed + i,
                                   quarterly_seasonality=quarterly_seasonality)
            except ValueError as exc:
                if name == "prophet":
                    raise
                notes[name] = f"omitted: {exc}"
                continue
            errs[name].append(pd.DataFrame({"actual": test.to_numpy(), "yhat": fc["yhat"].to_numpy(),
                                            "lower": fc["lower"].to_numpy(), "upper": fc["upper"].to_numpy(),
                                            "scale": scale}))
    rows = []
    for name in models:
        if name in notes or not errs[name]:
            rows.append({"model": name, "mase": math.nan, "smape": math.nan, "coverage": math.nan, "n_points": 0,
                         "n_origins": 0, "note": notes.get(name, "omitted")})
            continue
        e = pd.concat(errs[name], ignore_index=True)
        rows.append({"model": name, "mase": mase(e["actual"], e["yhat"], e["scale"]),
                     "smape": smape(e["actual"], e["yhat"]),
                     "coverage": coverage(e["actual"], e["lower"], e["upper"]), "n_points": len(e),
                     "n_origins": len(errs[name]), "note": ""})
    return pd.DataFrame(rows, columns=["model", "mase", "smape", "coverage", "n_points", "n_origins", "note"])


def _rank(name: str) -> int:
    return SIMPLICITY.index(name) if name in SIMPLICITY else len(SIMPLICITY)


def best_model(backtest_frame: pd.DataFrame) -> str:
    """The model with the lowest MASE; ties (within 1e-9 relative) go to the simpler model (moving average,
    seasonal naive, last year, Prophet). Models without a MASE are ignored; ValueError when none has one."""
    ok = backtest_frame[np.isfinite(backtest_frame["mase"].astype(float))]
    if ok.empty:
        raise ValueError("no model has a MASE")
    low = float(ok["mase"].min())
    tied = [str(n) for n, v in zip(ok["model"], ok["mase"], strict=True) if np.isclose(v, low, rtol=1e-9, atol=0)]
    return min(tied, key=_rank)


def beats_baselines(frame: pd.DataFrame) -> bool:
    """True when Prophet has a MASE strictly below that of every baseline with one (and at least one has)."""
    mases = dict(zip(frame["model"], frame["mase"].astype(float), strict=True))
    p = mases.get("prophet", math.nan)
    base = [v for k, v in mases.items() if k != "prophet" and not math.isnan(v)]
    return bool(not math.isnan(p) and base and all(p < v for v in base))


# ---------------------------------------------------------------------------------------------- many series

def _stable_seed(series_id: Any) -> int:
    return zlib.crc32(str(series_id).encode("utf-8"))


def _one_series(series_id: Any, s: pd.Series, key: str, horizon: int, opts: dict[str, Any]
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    m = int(opts["season_length"] or SEASON_LENGTH[key])
    seed = _stable_seed(series_id)
    country = opts["country"]
    common = {"interval_width": opts["interval_width"], "uncertainty_samples": opts["uncertainty_samples"],
              "quarterly_seasonality": opts["quarterly_seasonality"]}
    # the backtest looks as far ahead as the history allows (at most the horizon): a year of daily sales cannot
    # hold three origins 200 days apart, but it can hold three 3-month ones
    n_origins = int(opts["n_origins"])
    test_h = max(1, min(horizon, (len(s) - 2 * m) // (n_origins + 1)))
    shortest = min(horizon, max(3, m // 4))  # a test window shorter than this says little
    bt, note = None, f"too short: {len(s)} points < 2 seasons ({2 * m}) + {n_origins + 1} windows of {shortest}"
    if test_h >= shortest:
        for attempt in (1, 2):
            try:
                bt = backtest(s, key, horizon=test_h, n_origins=n_origins, season_length=m, country=country,
                              models=opts["models"], step=opts["step"], seed=seed, **common)
                break
            except ValueError as exc:  # too little training data at the first origin
                note = str(exc) if str(exc).startswith("too short") else f"too short: {exc}"
                break
            except Exception as exc:  # e.g. cmdstan failing on a pathological series: keep the other series going
                # once more first: a cmdstan run can fail for reasons outside the series (a loaded machine);
                # the seeds are fixed, so a second attempt that succeeds gives the same numbers
                note = f"backtest failed twice ({type(exc).__name__}: {exc}): moving average used"
                logging.getLogger(__name__).warning("backtest of %r failed (attempt %d): %r", series_id, attempt,
                                                    exc)
    if bt is not None:  # a MASE is undefined (inf) when the training data never changed: no model to rank by it
        bt = bt.assign(mase=bt["mase"].astype(float).where(np.isfinite(bt["mase"].astype(float))))
        if bt["mase"].notna().sum() == 0:
            note = "MASE undefined (the series did not change over the training data): moving average used"
    if bt is None or bt["mase"].notna().sum() == 0:
        window = min(m, max(len(s) - 1, 1))
        fc = (moving_average(s, horizon, window, coverage=opts["interval_width"]) if len(s) > window
              else _flat(s, horizon, key))
        bt_rows = pd.DataFrame([{"model": "moving_average", "mase": math.nan, "smape": math.nan,
                                 "coverage": math.nan, "n_points": 0, "n_origins": 0, "note": note,
                                 "chosen": True, "beats_baselines": False}])
        chosen = "moving_average"
    else:
        beats = beats_baselines(bt)
        baselines = bt[bt["model"] != "prophet"]
        has_baseline = bool(baselines["mase"].notna().any())
        if "prophet" in set(bt["model"]) and (beats or not has_baseline):
            chosen = "prophet"
        else:
            chosen = best_model(baselines if has_baseline else bt)
        fc = _one_forecast(chosen, s, horizon, key, m, country=country, seed=seed + 1000, **common)
        bt_rows = bt.assign(chosen=bt["model"] == chosen, beats_baselines=beats)
    fc = fc[_FRAME_COLUMNS].assign(model=chosen)
    fc.insert(0, "series_id", series_id)
    bt_rows.insert(0, "series_id", series_id)
    return fc, bt_rows


def _load_prophet() -> None:
    """Import Prophet and cmdstanpy and set their loggers, in the calling thread."""
    import prophet  # noqa: F401

    _quiet_prophet()


def _flat(s: pd.Series, horizon: int, key: str) -> pd.DataFrame:
    level = float(s.mean()) if len(s) else 0.0
    y = np.full(horizon, level)
    return _frame(_future_dates(s, horizon, key) if len(s) else pd.DatetimeIndex([]), y, y, y, "moving_average",
                  True)


def _run_task(task: tuple[Any, pd.Series, str, int, dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    return _one_series(*task)


def forecast_many(frame: pd.DataFrame, freq: str, horizon: int, *, n_origins: int = 3,
                  country_of: Mapping[str, str] | None = None, workers: int = 2, executor: str = "auto",
                  season_length: int | None = None, step: int | None = None, interval_width: float = 0.8,
                  uncertainty_samples: int = DEFAULT_UNCERTAINTY_SAMPLES, quarterly_seasonality: bool = True,
                  models: Sequence[str] = DEFAULT_MODELS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Backtest and forecast every series of `frame` (columns series_id, date, value; regular at `freq`, a
    missing period inside a series' range counting 0).

    For each series: `backtest` with `n_origins` origins, then the final forecast of `horizon` periods from
    the chosen model — Prophet when it beats every baseline on MASE, else the best baseline. The backtest looks
    ahead min(horizon, (points − 2 seasons) ÷ (origins + 1)) points from each origin: a year of daily sales holds
    three 3-month tests, not three of 200 days. A series too short for test windows of max(3, season ÷ 4) points
    (or of the horizon, if shorter), or whose backtest fails twice (a failing cmdstan run is tried once more),
    gets the moving average of its last season (or its mean) and a single backtest row saying why.

    Series run in parallel on `workers` processes (`executor="process"`, forkserver start: each worker imports
    pandas + Prophet once, ~1.5 s) or threads (`executor="thread"`: only cmdstan's optimizer, a subprocess,
    runs outside the GIL; Prophet's preprocessing is Python). ``"auto"`` (default) takes processes from
    `PROCESS_MIN_SERIES` series on, threads below. Measured with bench/bench_forecast.py (100 daily series,
    2 cores, another job running): processes 24.4 s, threads 34.4 s, serial 45.0 s. Deterministic: each
    series' intervals are drawn from a Generator seeded by a stable hash of its id, so the same input gives the
    same frames, whatever the executor or scheduling.

    Returns (forecasts: series_id, date, yhat, lower, upper, model; backtests: series_id, model, mase, smape,
    coverage, n_points, n_origins, note, chosen, beats_baselines), both in series_id order.
    """
    key = _freq_key(freq)
    if frame.empty:
        return (pd.DataFrame(columns=["series_id", *_FRAME_COLUMNS, "model"]),
                pd.DataFrame(columns=["series_id", "model", "mase", "smape", "coverage", "n_points", "n_origins",
                                      "note", "chosen", "beats_baselines"]))
    base_opts = {"n_origins": n_origins, "season_length": season_length, "step": step,
                 "interval_width": interval_width, "uncertainty_samples": uncertainty_samples,
                 "quarterly_seasonality": quarterly_seasonality, "models": tuple(models)}
    tasks = []
    for sid, g in frame.groupby("series_id", sort=True):
        values = g.groupby(pd.to_datetime(g["date"]))["value"].sum().sort_index()
        index = pd.date_range(values.index[0], values.index[-1], freq=PANDAS_FREQ[key], name="date")
        s = values.reindex(index, fill_value=0.0).astype(float)
        opts = dict(base_opts, country=(country_of or {}).get(sid))
        tasks.append((sid, s, key, horizon, opts))
    if workers <= 1 or len(tasks) == 1:
        results = [_run_task(t) for t in tasks]
    elif executor == "process" or (executor == "auto" and len(tasks) >= PROCESS_MIN_SERIES):
        import multiprocessing

        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
            results = list(pool.map(_run_task, tasks))
    elif executor in ("thread", "auto"):
        _load_prophet()  # imported here, not by two threads at once
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_run_task, tasks))
    else:
        raise ValueError(f"executor must be 'auto', 'thread' or 'process', not {executor!r}")
    forecasts = pd.concat([r[0] for r in results], ignore_index=True)
    backtests = pd.concat([r[1] for r in results], ignore_index=True)
    return forecasts, backtests
