"""The demo's Q4 seasonality is forecast: on each region's monthly bookings the trend model's rolling-origin
backtest beats the seasonal-naive baseline, and the company's forecast of the next Q4 stands above the year's first
three quarters, as the planted Q4 does."""

from __future__ import annotations

import pandas as pd
import pytest

from crmlens.forecast import series
from crmlens.truths import Q4_SEASONALITY

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def won(demo_folder):
    o = pd.read_parquet(demo_folder("small", 7) / "opportunities.parquet")
    won = o[o["is_won"].astype("boolean").fillna(False) & o["closed_at"].notna()]
    return won[won["closed_at"] < "2026-10-01"]


def monthly(rows):
    return series.regular_series(rows["closed_at"], rows["amount"], "MS", start="2023-01-01", end="2026-09-30")


def test_the_trend_model_beats_seasonal_naive_on_every_region(won):
    frame = pd.concat([pd.DataFrame({"series_id": r, "date": s.index, "value": s.to_numpy()})
                       for r, s in ((r, monthly(rows)) for r, rows in won.groupby("region_id"))], ignore_index=True)
    _forecasts, backtests = series.forecast_many(frame, "MS", 9, n_origins=3, executor="thread")
    mase = backtests.pivot(index="series_id", columns="model", values="mase")
    assert len(mase) == 6 and (mase["prophet"] < mase["seasonal_naive"]).all(), (mase, backtests["note"].unique())
    assert backtests.groupby("series_id")["beats_baselines"].first().sum() >= 4, backtests


def test_the_company_forecast_of_q4_stands_above_the_first_three_quarters(won):
    history = monthly(won)
    forecast = series.prophet_forecast(history, 9, "MS").set_index("date")["yhat"]
    q4 = forecast["2026-10-01":"2026-12-01"].sum()
    q1_q3 = history["2026-01-01":"2026-09-01"].sum() / 3
    assert q4 > 1.1 * q1_q3, (q4, q1_q3, Q4_SEASONALITY.ratio)
