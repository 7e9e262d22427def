"""Benchmark the market figures per market period (notebook 01's market and share trends, the overview's
market panel), side by side with the naive way, as ratios.

    .venv/bin/python bench/bench_market.py                 # data/demo, regions all, East, APAC
    .venv/bin/python bench/bench_market.py --repeats 5

Rows, per region and split (none, region, product line):

* project — `crmlens.metrics.market._spans_figures`: every market period's size, our bookings and each
  competitor's sales in one group-by (what `market_trend` and `market_shares` use).
* naive — one pandas pass per market period (`_span_figures` of each period in turn, as the trends did before).

Both are checked equal (exactly) before they are timed. Seconds are the best of `--repeats` runs inside this
process (the slice's opening excluded). Figures only; nothing is asserted. Times are wall-clock on a possibly
shared machine.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from crmlens import data
from crmlens.metrics import market as mk
from crmlens.params import load_params


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="demo", help="data source (default: demo, i.e. data/demo)")
    parser.add_argument("--regions", default="all,East,APAC", help="comma list of regions (default: all,East,APAC)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, the best is kept (default 3)")
    args = parser.parse_args()
    print(f"{'region':8s} {'split':13s} {'periods':>7s} {'naive s':>9s} {'project s':>10s} {'ratio':>7s}")
    total_naive = total_project = 0.0
    for region in args.regions.split(","):
        s = data.open_slice(load_params(overrides={"region": region, "source": args.source}))
        market = mk._market(s)
        won = mk._won(mk._history(s, mk._market_start(s)), mk._products(s))
        periods = mk.market_periods(market)
        spans = mk._period_spans(periods)
        for by in (None, "region_id", "product_line"):
            args_ = (market, won, periods, spans, by)

            def naive(m=market, w=won, p=periods, sp=spans, b=by):
                return [mk._span_figures(m, w, p, start, end, b) for start, end in sp]

            def project(a=args_):
                return mk._spans_figures(*a)

            for x, y in zip(naive(), project(), strict=True):
                pd.testing.assert_frame_equal(x, y, check_exact=True)
            t_naive, t_project = best(naive, args.repeats), best(project, args.repeats)
            total_naive += t_naive
            total_project += t_project
            print(f"{region:8s} {by or '-':13s} {len(spans):7d} {t_naive:9.3f} {t_project:10.3f} "
                  f"{t_project / t_naive:7.2f}")
    print(f"{'total':8s} {'':13s} {'':7s} {total_naive:9.3f} {total_project:10.3f} {total_project / total_naive:7.2f}")


if __name__ == "__main__":
    main()
