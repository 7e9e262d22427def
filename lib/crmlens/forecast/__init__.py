"""Forecasts: time-series forecasts of bookings and leads, backtested against simple baselines
(`crmlens.forecast.series`), and the pipeline forecast with calibrated win probabilities and a Monte Carlo
over deal outcomes (`crmlens.forecast.pipeline`)."""
