"""`crmlens.forecast.series`: the metric formulas on hand-computed examples, the baselines on series whose
forecast is known exactly, rolling origins that never look at or past their origin, Prophet against the
baselines on a seasonal series and on pure noise (the fallback), holidays, `regular_series`, `choose_freq` and
the determinism of `forecast_many`."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from crmlens.forecast import series as fs


def daily(values, start="2024-01-01") -> pd.Series:
    return pd.Series(np.asarray(values, float), index=pd.date_range(start, periods=len(values), freq="D",
                                                                     name="date"))


def monthly(values, start="2019-01-01") -> pd.Series:
    return pd.Series(np.asarray(values, float), index=pd.date_range(start, periods=len(values), freq="MS",
                                                                     name="date"))


def seasonal_monthly(n: int = 72, seed: int = 3) -> pd.Series:
    """Trend + Q4 ×1.4 (like the demo) + 4 % noise."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2019-01-01", periods=n, freq="MS", name="date")
    base = 100 * (1 + 0.01 * np.arange(n))
    q4 = np.where(idx.month >= 10, 1.4, 1.0)
    return pd.Series(base * q4 * (1 + rng.normal(0, 0.04, n)), index=idx)


# ------------------------------------------------------------------------------------------------- metrics

def test_metric_formulas_on_a_hand_computed_example():
    actual, forecast = [1.0, 2.0, 0.0], [2.0, 2.0, 0.0]
    # errors 1, 0, 0 over a scale of 0.5 → (2 + 0 + 0) / 3
    assert fs.mase(actual, forecast, 0.5) == pytest.approx(2 / 3)
    # 200·1/3, 0, and 0/0 counted as 0 → 200/9
    assert fs.smape(actual, forecast) == pytest.approx(200 / 9)
    assert fs.smape([0.0, 0.0], [0.0, 0.0]) == 0.0
    assert fs.smape([0.0], [5.0]) == 200.0
    # 1 inside [0, 1] (bound included), 2 outside [2.5, 3], 3 inside [3, 4]
    assert fs.coverage([1.0, 2.0, 3.0], [0.0, 2.5, 3.0], [1.0, 3.0, 4.0]) == pytest.approx(2 / 3)
    # |2 − 1| and |4 − 3| → 1
    assert fs.seasonal_naive_scale([1.0, 3.0, 2.0, 4.0], 2) == 1.0
    # per-point scales (pooled origins); zero error over a zero scale is 0, a non-zero one +inf
    assert fs.mase([1.0, 1.0], [0.0, 0.0], [1.0, 0.5]) == pytest.approx(1.5)
    assert fs.mase([1.0], [1.0], 0.0) == 0.0
    assert fs.mase([1.0], [2.0], 0.0) == math.inf


# ------------------------------------------------------------------------------------------------ baselines

def test_seasonal_naive_is_exact_on_a_periodic_series():
    pattern = [5.0, 7.0, 9.0, 4.0, 3.0, 1.0, 0.0]
    s = daily(pattern * 10)
    fc = fs.seasonal_naive(s, 10, 7)
    assert list(fc["yhat"]) == (pattern * 2)[:10]
    assert (fc["lower"] == fc["yhat"]).all() and (fc["upper"] == fc["yhat"]).all()
    assert list(fc["date"]) == list(pd.date_range(s.index[-1], periods=11, freq="D")[1:])
    bt = fs.backtest(s, "D", horizon=7, models=("seasonal_naive", "moving_average"))
    row = bt.set_index("model").loc["seasonal_naive"]
    assert row["mase"] == 0.0 and row["smape"] == 0.0 and row["coverage"] == 1.0
    assert bt.set_index("model").loc["moving_average", "mase"] > 0


def test_moving_average_on_a_constant_series():
    s = daily([4.0] * 40)
    fc = fs.moving_average(s, 5, 7)
    assert (fc["yhat"] == 4.0).all() and (fc["lower"] == 4.0).all() and (fc["upper"] == 4.0).all()
    bt = fs.backtest(s, "D", horizon=5, models=("moving_average",)).iloc[0]
    assert bt["mase"] == 0.0 and bt["smape"] == 0.0 and bt["coverage"] == 1.0


def test_moving_average_is_the_mean_of_the_last_season_and_its_interval_comes_from_residuals():
    s = daily(np.arange(1.0, 31.0))  # 1..30, rising by 1
    fc = fs.moving_average(s, 3, 4)
    assert (fc["yhat"] == np.mean([27, 28, 29, 30])).all()
    # h-step residuals of a 4-point mean on a unit ramp are all 2.5 + h − 1 → interval collapses onto yhat + that
    assert list(fc["lower"]) == pytest.approx([28.5 + 2.5, 28.5 + 3.5, 28.5 + 4.5])
    assert list(fc["upper"]) == list(fc["lower"])


def test_last_year_uses_the_yearly_lag_for_the_freq():
    s = monthly(np.arange(1.0, 37.0))
    fc = fs.last_year(s, 14, 3)  # season_length ignored: 12 months back
    assert list(fc["yhat"]) == [*range(25, 37), 25, 26]
    d = daily(np.arange(400.0))
    assert fs.last_year(d, 2, 7)["yhat"].tolist() == [400 - 365, 401 - 365]
    with pytest.raises(ValueError, match="shorter than a season"):
        fs.last_year(monthly(np.ones(12)), 3, 12)


def test_baselines_that_cannot_be_computed_are_omitted_with_a_reason():
    s = daily(np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], 30))  # 210 days: no year of history
    bt = fs.backtest(s, "D", horizon=7, models=("seasonal_naive", "last_year")).set_index("model")
    assert math.isnan(bt.loc["last_year", "mase"]) and "omitted" in bt.loc["last_year", "note"]
    assert bt.loc["seasonal_naive", "mase"] == 0.0
    assert fs.best_model(bt.reset_index()) == "seasonal_naive"


# ------------------------------------------------------------------------------------------- rolling origins

def test_rolling_origins_count_and_no_look_ahead(monkeypatch):
    # flat 10 until the first origin (position 70), 1000 from there on
    s = daily([10.0] * 70 + [1000.0] * 30)
    seen = []

    def spy(history, horizon, season_length, *, coverage=0.8):
        seen.append((history.index[-1], len(history)))
        return fs.moving_average(history, horizon, season_length, coverage=coverage)

    monkeypatch.setitem(fs.BASELINES, "moving_average", spy)
    bt = fs.backtest(s, "D", horizon=10, n_origins=3, models=("moving_average",)).iloc[0]
    assert bt["n_points"] == 30 and bt["n_origins"] == 3
    assert [n for _, n in seen] == [70, 80, 90]
    for (last, n), origin in zip(seen, (70, 80, 90), strict=True):
        assert last < s.index[origin] and last == s.index[n - 1]
    # the first origin's forecast saw only the 10s: 10 errors of 990, then 10s of zero errors twice
    assert bt["smape"] == pytest.approx((10 * 200 * 990 / 1010) / 30)
    # a `step` spaces origins differently; too little training raises
    seen.clear()
    fs.backtest(s, "D", horizon=10, n_origins=3, step=5, models=("moving_average",))
    assert [n for _, n in seen] == [80, 85, 90]
    with pytest.raises(ValueError, match="too short"):
        fs.backtest(daily(np.ones(20)), "D", horizon=7, n_origins=2)


# -------------------------------------------------------------------------------------------------- prophet

def test_prophet_beats_the_moving_average_on_a_seasonal_series():
    s = seasonal_monthly()
    bt = fs.backtest(s, "MS", horizon=12, n_origins=3)
    by = bt.set_index("model")
    assert (by["n_points"] == 36).all()
    assert by.loc["prophet", "mase"] < 0.5 * by.loc["moving_average", "mase"]
    assert fs.beats_baselines(bt)
    assert fs.best_model(bt) == "prophet"
    assert 0.0 < by.loc["prophet", "coverage"] <= 1.0


def test_forecast_many_falls_back_to_a_baseline_on_noise():
    rng = np.random.default_rng(7)
    idx = pd.date_range("2019-01-01", periods=60, freq="MS")
    frame = pd.DataFrame({"series_id": "noise", "date": idx, "value": 100 + rng.normal(0, 10, 60)})
    forecasts, backtests = fs.forecast_many(frame, "MS", 6, workers=1)
    assert not backtests["beats_baselines"].any()
    chosen = backtests.loc[backtests["chosen"], "model"].tolist()
    assert chosen == [fs.best_model(backtests)] and chosen != ["prophet"]
    assert (forecasts["model"] == chosen[0]).all() and len(forecasts) == 6
    assert list(forecasts.columns) == ["series_id", "date", "yhat", "lower", "upper", "model"]


def test_prophet_uses_the_country_holidays_and_ignores_an_unknown_country():
    rng = np.random.default_rng(0)
    s = daily(np.maximum(0, 20 + rng.normal(0, 3, 420)), start="2024-01-01")
    us = fs.prophet_forecast(s, 14, "D", country="US")
    assert us.attrs["country"] == "US"
    assert {"Thanksgiving Day", "Independence Day", "Christmas Day"} <= set(us.attrs["holidays"])
    assert len(us) == 14 and (us[["yhat", "lower", "upper"]] >= 0).all().all()
    assert (us["lower"] <= us["yhat"]).all() and (us["yhat"] <= us["upper"]).all()
    nowhere = fs.prophet_forecast(s, 14, "D", country="Atlantis")
    assert nowhere.attrs["country"] is None and nowhere.attrs["holidays"] == []
    assert "unknown country" in nowhere.attrs["note"]
    assert fs.resolve_country("United States") == "US" and fs.resolve_country("de") == "DE"
    assert fs.resolve_country("") is None


def test_prophet_forecast_is_clipped_at_zero():
    s = daily(np.linspace(100, 1, 120))  # falling to zero: the trend goes negative ahead
    fc = fs.prophet_forecast(s, 60, "D")
    assert (fc[["yhat", "lower", "upper"]] >= 0).all().all()
    assert fc["yhat"].iloc[-1] == 0.0


# ------------------------------------------------------------------------------------------ regular / freq

def test_regular_series_fills_gaps_with_zeros_and_respects_freq():
    dates = pd.Series(pd.to_datetime(["2024-01-01 10:00", "2024-01-01 12:00", "2024-01-04 00:00", "2024-01-09 23:59"]))
    values = pd.Series([1.0, 2.0, 5.0, 7.0])
    d = fs.regular_series(dates, values, "D")
    assert d.index.name == "date" and len(d) == 9
    assert d.tolist() == [3.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0, 7.0]
    counts = fs.regular_series(dates, None, "D", end="2024-01-11")
    assert counts.iloc[0] == 2.0 and counts.iloc[-1] == 0.0 and len(counts) == 11
    w = fs.regular_series(dates, values, "W")
    # 2024-01-01 is a Monday: week of Jan 1 holds 1 + 2 + 5, week of Jan 8 holds 7
    assert w.index.tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-08")]
    assert w.tolist() == [8.0, 7.0] and w.index.freqstr == "W-MON"
    m = fs.regular_series(pd.Series(pd.to_datetime(["2024-01-31", "2024-04-02"])), None, "MS")
    assert m.tolist() == [1.0, 0.0, 0.0, 1.0] and m.index[0] == pd.Timestamp("2024-01-01")
    with pytest.raises(ValueError):
        fs.regular_series(dates, values, "Q")


def test_choose_freq_rule():
    assert fs.choose_freq(365, 5 * 365) == "D"
    assert fs.choose_freq(365, 5 * 365 - 1) == "W"  # 4.99 a day
    assert fs.choose_freq(179, 100_000) == "MS"  # 25.6 weeks: neither 180 days nor 26 weeks
    assert fs.choose_freq(182, 78) == "W"  # 26 weeks, 3 a week
    assert fs.choose_freq(182, 77) == "MS"
    assert fs.choose_freq(120, 10_000) == "MS"  # plenty of events, too little history for D or W
    assert fs.choose_freq(0, 0) == "MS"


# ----------------------------------------------------------------------------------------------- many series

def test_forecast_many_is_deterministic_and_marks_short_series():
    rng = np.random.default_rng(11)
    rows = []
    for sid, n in (("a", 48), ("b", 40), ("short", 20)):
        idx = pd.date_range("2020-01-01", periods=n, freq="MS")
        rows.append(pd.DataFrame({"series_id": sid, "date": idx,
                                  "value": 50 * np.where(idx.month >= 10, 1.4, 1.0) + rng.normal(0, 3, n)}))
    frame = pd.concat(rows, ignore_index=True)
    f1, b1 = fs.forecast_many(frame, "MS", 6, workers=2)
    f2, b2 = fs.forecast_many(frame.sample(frac=1.0, random_state=1), "MS", 6, workers=2)
    pd.testing.assert_frame_equal(f1, f2)
    pd.testing.assert_frame_equal(b1, b2)
    assert f1["series_id"].value_counts().to_dict() == {"a": 6, "b": 6, "short": 6}
    short = b1[b1["series_id"] == "short"]
    assert len(short) == 1 and "too short" in short["note"].iloc[0] and bool(short["chosen"].iloc[0])
    assert (f1.loc[f1["series_id"] == "short", "model"] == "moving_average").all()
    assert b1.groupby("series_id")["chosen"].sum().to_dict() == {"a": 1, "b": 1, "short": 1}


def test_a_backtest_that_fails_once_is_run_again_and_one_that_always_fails_says_so(monkeypatch):
    idx = pd.date_range("2019-01-01", periods=48, freq="MS")
    frame = pd.DataFrame({"series_id": "s", "date": idx, "value": seasonal_monthly(48).to_numpy()})
    expected = fs.forecast_many(frame, "MS", 6, workers=1)
    real, calls = fs.backtest, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Error during optimization")
        return real(*args, **kwargs)

    monkeypatch.setattr(fs, "backtest", flaky)
    again = fs.forecast_many(frame, "MS", 6, workers=1)
    assert len(calls) == 2
    for got, want in zip(again, expected, strict=True):
        pd.testing.assert_frame_equal(got, want)

    def broken(*args, **kwargs):
        raise RuntimeError("Error during optimization")

    monkeypatch.setattr(fs, "backtest", broken)
    forecasts, backtests = fs.forecast_many(frame, "MS", 6, workers=1)
    assert backtests["model"].tolist() == ["moving_average"]
    assert backtests["note"].iloc[0].startswith("backtest failed twice (RuntimeError: Error during optimization)")
    assert (forecasts["model"] == "moving_average").all() and len(forecasts) == 6


def test_best_model_breaks_ties_towards_the_simpler_baseline():
    frame = pd.DataFrame({"model": ["prophet", "seasonal_naive", "moving_average", "last_year"],
                          "mase": [0.5, 0.5, 0.5, math.nan]})
    assert fs.best_model(frame) == "moving_average"
    assert not fs.beats_baselines(frame)
    assert fs.beats_baselines(frame.assign(mase=[0.4, 0.5, 0.5, math.nan]))
    assert not fs.beats_baselines(frame.assign(mase=[math.nan, 0.5, 0.5, 0.6]))


# ------------------------------------------------------------------------------- Prophet internals we bypass

def test_our_prophet_mean_and_intervals_match_prophets_own():
    from prophet import Prophet

    rng = np.random.default_rng(5)
    idx = pd.date_range("2024-01-01", periods=500, freq="D")
    y = 30 + 0.02 * np.arange(500) + 5 * np.sin(2 * np.pi * idx.day_of_week.to_numpy() / 7) + rng.normal(0, 2, 500)
    fs._quiet_prophet()
    model = Prophet(uncertainty_samples=4000, interval_width=0.8)
    model.add_country_holidays(country_name="US")
    model.fit(pd.DataFrame({"ds": idx, "y": y}))
    future = pd.DataFrame({"ds": pd.date_range(idx[-1], periods=61, freq="D")[1:]})
    np.random.seed(0)
    theirs = model.predict(future)
    ours = fs._predict_mean(model, future)
    np.testing.assert_allclose(ours, theirs["yhat"].to_numpy(), rtol=1e-10, atol=1e-9)
    lower, upper = fs._sample_intervals(model, future, ours, 4000, 0.8, seed=1)
    width = (theirs["yhat_upper"] - theirs["yhat_lower"]).to_numpy()
    assert np.abs(lower - theirs["yhat_lower"].to_numpy()).max() < 0.1 * width.mean()
    assert np.abs(upper - theirs["yhat_upper"].to_numpy()).max() < 0.1 * width.mean()
    # and it is reproducible: same seed, same bounds
    again = fs._sample_intervals(model, future, ours, 4000, 0.8, seed=1)
    assert (again[0] == lower).all() and (again[1] == upper).all()


def test_fast_stan_json_writes_what_stanio_writes(tmp_path):
    import json

    from stanio import write_stan_json

    data = {"T": 3, "K": 2, "t": np.array([0.0, 0.5, 1.0]), "X": np.array([[1.0, 0.1], [0.2, 1 / 3], [0.0, 2.5]]),
            "y": [0.1, 0.2, 0.30000000000000004], "flag": True, "s_a": np.array([1, 0])}
    fs._fast_stan_json(str(tmp_path / "fast.json"), data)
    write_stan_json(str(tmp_path / "stanio.json"), data)
    assert json.loads((tmp_path / "fast.json").read_text()) == json.loads((tmp_path / "stanio.json").read_text())
    odd = {**data, "y": np.array([1.0, np.nan, 2.0])}  # non-finite → stanio's own writer, byte for byte
    fs._fast_stan_json(str(tmp_path / "fast2.json"), odd)
    write_stan_json(str(tmp_path / "stanio2.json"), odd)
    assert (tmp_path / "fast2.json").read_text() == (tmp_path / "stanio2.json").read_text()


def test_forecast_many_gives_the_same_frames_with_processes_and_threads():
    rng = np.random.default_rng(2)
    idx = pd.date_range("2021-01-01", periods=40, freq="MS")
    frame = pd.concat([pd.DataFrame({"series_id": sid, "date": idx, "value": 20 + rng.normal(0, 2, 40)})
                       for sid in ("x", "y")], ignore_index=True)
    by_threads = fs.forecast_many(frame, "MS", 4, workers=2, executor="thread")
    by_processes = fs.forecast_many(frame, "MS", 4, workers=1, executor="process")
    pd.testing.assert_frame_equal(by_threads[0], by_processes[0])
    pd.testing.assert_frame_equal(by_threads[1], by_processes[1])


def test_importing_is_lazy_and_a_fit_prints_nothing():
    import subprocess
    import sys

    code = ("import sys, numpy as np, pandas as pd\n"
            "from crmlens.forecast import series as fs\n"
            "assert 'prophet' not in sys.modules and 'cmdstanpy' not in sys.modules\n"
            "s = pd.Series(np.arange(200.0) % 7 + 10, index=pd.date_range('2024-01-01', periods=200, freq='D'))\n"
            "fs.prophet_forecast(s, 7, 'D', country='US')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
