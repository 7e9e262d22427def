"""Benchmark of the forecast-and-alerts area (issue 15): the whole notebook 09 for `all` (target ≤ 30 s on the default
demo), and its parts side by side with the naive approach, as ratios:

- the Monte Carlo of the pipeline forecast: sparse matrix sums over blocks of simulations vs a Python loop over
  simulations and deals (the way a spreadsheet macro does it), same draws;
- the target check on past quarters (24 forecasts) and the pipeline forecast itself, at the default and the `large`
  scale (1M opportunities);
- the KPI history behind the anomalies (every examined KPI × 36 months);
- the regions that moved apart (every region's KPIs) for each region of a run in one kernel: kept per source
  version and parameters, vs computed again for each region.

    python bench/bench_forecast_alerts.py [--source data/demo] [--large data/large] [--no-notebook]

Measured figures are in the closing notes of the issue (`issues`); series backtests: bench/bench_forecast.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _time(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def naive_simulation(amount, p_win, p_in, n_sims, seed):
    """Per simulation, per deal: draw, add — the loop the library's `simulate` replaces."""
    rng = np.random.default_rng(seed)
    totals = []
    for _ in range(n_sims):
        total = 0.0
        for a, p, q in zip(amount, p_win, p_in, strict=True):
            if rng.random() < p and rng.random() < q:
                total += a
        totals.append(total)
    return np.array(totals)


def bench_source(label: str, source: str, notebook: bool) -> None:
    from crmlens import notebook as nb
    from crmlens.forecast import pipeline as pf
    from crmlens.metrics import forecasting as fc

    t_open, s = _time(lambda: nb.open_analysis(source=source, region="all"))
    t_data, data = _time(lambda: fc.pipeline_data(s))
    t_out, f = _time(lambda: fc.outlook(s))
    print(f"\n{label}: {len(data.deals):,} opportunities, {len(f.deals):,} open at {f.t:%Y-%m-%d}")
    print(f"  open slice {t_open:6.2f} s · read deals + stage history {t_data:6.2f} s · pipeline forecast "
          f"(fit + 2,000 simulations, 4 levels) {t_out:6.2f} s")
    t_check, bt = _time(lambda: fc.target_check(s))
    print(f"  target check: {len(bt):,} targets × points over 8 quarters in {t_check:6.2f} s "
          f"(Brier ours {bt.attrs['scores'].iloc[-1]['brier_model']:.3f} vs pace rule "
          f"{bt.attrs['scores'].iloc[-1]['brier_naive']:.3f})")
    t_hist, hist = _time(lambda: fc.kpi_history_of(s))
    print(f"  KPI history for anomalies: {hist['kpi'].nunique()} KPIs × 36 months in {t_hist:6.2f} s")
    # Monte Carlo: library vs naive loop on the same deals (naive on 100 simulations, scaled)
    deals = f.deals
    amount, p_win, p_in = (deals["amount"].to_numpy(float), deals["p_win"].to_numpy(float),
                           deals["p_in_period"].to_numpy(float))
    t_lib, _ = _time(lambda: pf.simulate(amount, p_win, p_in, {"company": np.full(len(deals), "c")},
                                         n_sims=2000, seed=1), repeat=3)
    n_naive = 100
    t_naive, _ = _time(lambda: naive_simulation(amount, p_win, p_in, n_naive, 1))
    t_naive_full = t_naive * 2000 / n_naive
    print(f"  Monte Carlo, 2,000 simulations: library {t_lib:6.3f} s vs naive loop {t_naive_full:7.2f} s "
          f"(timed on {n_naive}, scaled) = {t_naive_full / t_lib:6.1f}×")
    bench_every_region(source)
    if notebook:
        sys.path.insert(0, str(ROOT))
        from tests.notebooks.test_notebooks import execute

        with tempfile.TemporaryDirectory() as tmp:
            path = ROOT / "notebooks" / "09_forecast_alerts.ipynb"
            t_nb, out = _time(lambda: execute(path, Path(tmp) / "09.ipynb", {"source": source, "region": "all"}))
        cells = sorted(((c.metadata.get("papermill", {}).get("duration") or 0.0, c.source.splitlines()[0])
                        for c in out.cells if c.cell_type == "code"), reverse=True)[:4]
        print(f"  notebook 09 for all (papermill, kernel start included): {t_nb:6.1f} s (target ≤ 30 s); slowest "
              "cells: " + "; ".join(f"{d:.1f} s {src[:40]}" for d, src in cells))


def bench_every_region(source: str) -> None:
    """`forecasting.exceptions` for every region in turn, as the tasks of a run in one reused kernel do: kept in
    memory after the first region vs computed again for each region (the memory cleared before each)."""
    from crmlens import notebook as nb
    from crmlens.metrics import forecasting as fc
    from crmlens.metrics.common import clear_memo

    def slices() -> list:  # fresh ones for each way: nothing read by the other
        return [nb.open_analysis(source=source, region=r) for r in ("East", "West", "North", "South", "Central",
                                                                    "APAC")]

    naive = 0.0
    for s in slices():
        clear_memo()
        naive += _time(lambda s=s: fc.exceptions(s))[0]
    clear_memo()
    kept = sum(_time(lambda s=s: fc.exceptions(s))[0] for s in slices())
    print(f"  regions that moved apart, 6 regions in turn: kept {kept:6.2f} s vs computed for each {naive:6.2f} s "
          f"= {kept / naive:.2f} of the time")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default=str(ROOT / "data" / "demo"), help="the default demo (data/demo)")
    ap.add_argument("--large", default=None, help="a `large` demo folder (crmlens demo --scale large)")
    ap.add_argument("--no-notebook", action="store_true", help="skip the whole-notebook timing")
    args = ap.parse_args()
    bench_source("default demo", args.source, notebook=not args.no_notebook)
    if args.large:
        bench_source("large demo", args.large, notebook=not args.no_notebook)


if __name__ == "__main__":
    main()
