"""Benchmark of `crmlens run`: the whole matrix (every demo region + all × every notebook, latest quarter)
serially, with 2 local workers, and on a local Dask cluster (2 workers × 1 thread); then the exports.

Prints wall time, speed-up, and per task: cell execution ("compute") vs everything else ("overhead": waiting
for a kernel, parameter injection, writing the notebook and its HTML report).
Targets (issue 4): overhead ≤ 1 s per notebook beyond its own compute; ≥ 1.7× speed-up with 2 workers.

    python bench/bench_run.py [--source data/demo] [--modes serial,workers2,dask] [--exports]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from crmlens.run import runner


def _row(name: str, result: runner.RunResult, wall: float, base: float | None, workers: int) -> str:
    tasks = sorted((t for t in result.manifest["tasks"] if t["status"] != "reused"), key=lambda t: t["started_at"])
    compute = [t["compute_s"] for t in tasks]
    overhead = [t["overhead_s"] for t in tasks]
    steady = overhead[workers:]  # without each worker's first task, which waits for its kernel to start
    speedup = f"{base / wall:4.2f}×" if base else "  1.00×"
    return (f"{name:<10} {len(tasks):>5} {wall:8.1f} {speedup:>7} {sum(compute):9.1f} "
            f"{statistics.mean(compute):8.2f} {statistics.mean(overhead):9.2f} {statistics.median(overhead):9.2f} "
            f"{statistics.mean(steady):10.2f} {max(overhead):8.2f}  {result.manifest['status']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default="demo", help="data source (default: the demo in data/demo)")
    ap.add_argument("--modes", default="serial,workers2,dask", help="comma list of serial, workers2, dask")
    ap.add_argument("--exports", action="store_true", help="also time the exports of one run (all formats)")
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp(prefix="crmlens-bench-"))
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    print(f"outputs in {out}")
    header = (f"{'mode':<10} {'tasks':>5} {'wall s':>8} {'speedup':>7} {'compute':>9} {'mean cmp':>8} "
              f"{'mean ovh':>9} {'med ovh':>9} {'steady ovh':>10} {'max ovh':>8}  status")
    rows, base = [], None
    for mode in modes:
        opts = runner.RunOptions(source=args.source, outputs_dir=out, run_id=mode, exports=(), progress=False,
                                 workers=1 if mode == "serial" else 2)
        cluster = None
        if mode == "dask":
            from distributed import LocalCluster

            cluster = LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                                   processes=True)
            opts.cluster = cluster.scheduler_address
        t0 = time.perf_counter()
        result = runner.run(opts)
        wall = time.perf_counter() - t0
        if cluster is not None:
            cluster.close()
        base = base or (wall if mode == "serial" else None)
        rows.append(_row(mode, result, wall, base if mode != "serial" else None, 1 if mode == "serial" else 2))
        print(header, *rows, sep="\n", flush=True)
    if args.exports:
        t0 = time.perf_counter()
        opts = runner.RunOptions(source=args.source, outputs_dir=out, run_id=modes[-1], resume=True,
                                 progress=False)
        result = runner.run(opts)
        print(f"\nexports of {len(result.manifest['exports'])} regions (html, xlsx, pptx, pdf; tasks reused): "
              f"{time.perf_counter() - t0:.1f} s")
    print("\noverhead = task wall time − its cells' execution time (kernel wait, papermill, notebook + HTML "
          "writing); steady = without each worker's first task (cold kernel start). Target ≤ 1 s; speed-up "
          "target ≥ 1.7× with 2 workers.")


if __name__ == "__main__":
    main()
