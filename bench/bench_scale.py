"""Benchmark "validate once, query many" (issue 10): this project vs a naive pandas path on the same data,
side by side — seconds, ratio naive/project, peak memory — each measurement in its own fresh process.

    .venv/bin/python bench/bench_scale.py --data default            # data/demo (what `make bench` runs)
    .venv/bin/python bench/bench_scale.py --data large              # data/large (crmlens demo --scale large)
    .venv/bin/python bench/bench_scale.py --data uci                # ../shared/data/uci_online_retail + mapping
    .venv/bin/python bench/bench_scale.py --data default --kernel   # only the dashboard-like cold kernel start

Rows (--data default / large):

* first validation — project: ``crmlens.store.ensure_validated(crmlens.data.connect(folder))`` with an empty
  store (``$CRMLENS_STORE_DIR`` = a fresh temporary folder); naive: ``pd.read_parquet`` every table, then
  ``crmlens.validate.validate_tables`` (every table in `load_order`, foreign keys against the validated parents).
* open_slice all / <region> — project: ``crmlens.data.open_slice(params)`` at the period, store warm (the
  slice's report is computed, its tables are read when first used; the line below the row gives open + every
  table of the three periods read, comparable with the naive column) (the
  validation row ran first in the same store folder); naive: read_parquet + validate_tables, then the pandas
  filter to the region and to the period, previous period and same period last year (the rule of
  ``crmlens.data.period_mask``), as a slice holds.
* 00–09 notebooks — papermill's Python API, kernel "crmlens", cwd notebooks/, parameters region "all" and
  the source folder, store warm, without a save after every cell (as `crmlens run` executes). Project only.
* dashboard cold start (default, or --kernel alone after warming the store) — a fresh Python process that
  imports ``crmlens.notebook``, opens the slice for "all" at the default period and computes the overview tiles
  (``crmlens.dashboard.tiles.tiles_for``), store warm: the process's whole wall time.

Row (--data uci): validation of the UCI Online Retail export through params/sources/uci_online_retail.yaml —
project: ``crmlens.data.validate_source(crmlens.data.connect(folder, mapping))``, empty store; naive:
``pd.read_csv`` of the .csv.gz, the same mapping written in pandas, ``validate_tables``.

Seconds are the measured call inside the child (imports excluded; the cold start row is the child's wall time).
Peak RSS is the child's own ``ru_maxrss`` from ``os.wait4`` (it includes the descendants it waited for, e.g.
a notebook's kernel: the largest single process, not a sum). A child whose RSS passes ``--rss-limit-gb`` is
killed and reported as such. A project API that does not exist yet prints "not available: <error>" for its
row. Figures only; nothing is asserted. Times are wall-clock on a possibly shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = {
    "default": ROOT / "data" / "demo",
    "large": ROOT / "data" / "large",
    "uci": ROOT.parent / "shared" / "data" / "uci_online_retail",
}
UCI_MAPPING = ROOT / "params" / "sources" / "uci_online_retail.yaml"
UCI_FILE = "online_retail.csv.gz"
NOTEBOOKS = ("00_data_quality", "01_market_competition", "02_sales_funnel", "03_sales_performance", "04_customers",
             "05_marketing", "06_customer_health", "07_products", "08_regions_teams", "09_forecast_alerts")
STORE_DIR_ENV = "CRMLENS_STORE_DIR"  # (crmlens.store.STORE_DIR_ENV; not imported: the parent stays light)
DASH = "–"


# =========================================================================================== child side
# Each function runs inside a fresh `python bench/bench_scale.py --one CASE` process and returns a dict with
# at least "seconds" (the measured call, imports excluded).

def _now() -> float:
    return time.perf_counter()


def _read_parquet_folder(folder: Path) -> dict[str, Any]:
    import pandas as pd

    from crmlens.schema import load_order

    return {name: pd.read_parquet(folder / f"{name}.parquet") for name in load_order()
            if (folder / f"{name}.parquet").is_file()}


def _params(folder: Path, region: str, period: str | None) -> Any:
    from crmlens.params import load_params

    given = {"source": str(folder), "region": region}
    if period:
        given["period"] = period
    return load_params(given)


def case_project_validate(opts: argparse.Namespace) -> dict:
    from crmlens import data, store

    t0 = _now()
    con = data.connect(str(opts.folder))
    validated = store.ensure_validated(con)
    seconds = _now() - t0
    return {"seconds": seconds, "validated": type(validated).__name__}


def case_naive_validate(opts: argparse.Namespace) -> dict:
    import pandas as pd

    from crmlens.validate import validate_tables

    t0 = _now()
    frames = _read_parquet_folder(opts.folder)
    read_s = _now() - t0
    results, _ = validate_tables(frames, source=str(opts.folder),
                                 as_of=pd.Timestamp.now(tz="UTC").tz_localize(None))
    seconds = _now() - t0
    return {"seconds": seconds, "read_s": read_s, "rows": sum(len(f) for f in frames.values()),
            "accepted": sum(r.report.accepted for r in results.values()),
            "rejected": sum(r.report.rejected for r in results.values())}


def case_project_slice(opts: argparse.Namespace) -> dict:
    from crmlens import data

    params = _params(opts.folder, opts.region, opts.period)
    t0 = _now()
    s = data.open_slice(params)
    seconds = _now() - t0
    # tables are read when first used: also time reading every table of the three periods (what the naive
    # path holds), so that the laziness is not the whole story
    rows = sum(len(f) for f in s.tables.values())
    for other in (s.previous, s.last_year):
        for frame in other.values():
            len(frame)
    return {"seconds": seconds, "period": s.period.label, "rows": rows, "read_all_s": _now() - t0}


def _region_mask(name: str, frames: dict[str, Any], region: str) -> Any:
    """Rows of frames[name] in `region`, following the schema's region route (a column, or a parent's key)."""
    from crmlens.schema import SCHEMA

    table, frame = SCHEMA[name], frames[name]
    if table.region is None:
        return None
    if isinstance(table.region, str):
        return frame[table.region] == region if table.region in frame else None
    parent, fk = table.region
    if parent not in frames or fk not in frame:
        return None
    inner = _region_mask(parent, frames, region)
    if inner is None:
        return None
    keys = frames[parent].loc[inner.fillna(False).astype(bool), SCHEMA[parent].key[0]]
    return frame[fk].isin(keys)


def case_naive_slice(opts: argparse.Namespace) -> dict:
    import pandas as pd

    from crmlens.data import period_mask
    from crmlens.periods import previous_period, same_period_last_year
    from crmlens.schema import SCHEMA
    from crmlens.validate import validate_tables

    params = _params(opts.folder, opts.region, opts.period)
    period = params.period_obj()
    periods = {"current": period, "previous": previous_period(period), "last_year": same_period_last_year(period)}
    t0 = _now()
    frames = _read_parquet_folder(opts.folder)
    results, _ = validate_tables(frames, source=str(opts.folder), as_of=pd.Timestamp.now(tz="UTC").tz_localize(None))
    accepted = {name: r.accepted for name, r in results.items()}
    slices: dict[str, dict[str, Any]] = {which: {} for which in periods}
    for name, frame in accepted.items():
        table = SCHEMA[name]
        if table.kind == "dimension":  # whole, as in a slice
            for which in periods:
                slices[which][name] = frame
            continue
        in_region = _region_mask(name, accepted, opts.region) if opts.region != "all" else None
        base = frame if in_region is None else frame[in_region.fillna(False).astype(bool).to_numpy()]
        for which, p in periods.items():
            mask = period_mask(base, table, p)
            slices[which][name] = base if mask is None else base[mask.to_numpy()]
    seconds = _now() - t0
    return {"seconds": seconds, "period": period.label, "rows": sum(len(f) for f in slices["current"].values())}


def case_notebook(opts: argparse.Namespace) -> dict:
    import papermill

    from crmlens import paths
    from crmlens.notebook import RENDERER_ENV, RUN_RENDERER

    os.environ[RENDERER_ENV] = RUN_RENDERER  # the kernel draws charts as `crmlens run`'s kernels do
    path = paths.NOTEBOOKS_DIR / f"{opts.notebook}.ipynb"
    parameters = {"region": "all", "source": str(opts.folder)}
    if opts.period:
        parameters["period"] = opts.period
    with tempfile.TemporaryDirectory(prefix="crmlens-bench-nb-") as tmp:
        t0 = _now()
        # as `crmlens run` executes a notebook: no save of the output notebook after every cell (papermill's
        # default; with 57 cells of charts that rewrites a 6 MB file 57 times: 03 at `large` 16 s → 29 s)
        papermill.execute_notebook(str(path), str(Path(tmp) / path.name), parameters=parameters,
                                   kernel_name="crmlens", cwd=str(paths.NOTEBOOKS_DIR), progress_bar=False,
                                   log_output=False, request_save_on_cell_execute=False)
        seconds = _now() - t0
    return {"seconds": seconds}


def case_project_uci(opts: argparse.Namespace) -> dict:
    from crmlens import data

    t0 = _now()
    con = data.connect(str(opts.folder), str(UCI_MAPPING))
    connect_s = _now() - t0
    _, report = data.validate_source(con)
    seconds = _now() - t0
    contracts = report.tables.get("contracts")
    return {"seconds": seconds, "connect_s": connect_s,
            "contracts": None if contracts is None else [contracts.loaded, contracts.accepted, contracts.rejected]}


def uci_frames_pandas(folder: Path) -> dict[str, Any]:
    """params/sources/uci_online_retail.yaml written in pandas: the canonical tables, values as text where the
    mapping leaves text (the validator converts them)."""
    import numpy as np
    import pandas as pd

    raw = pd.read_csv(folder / UCI_FILE, dtype=str, keep_default_na=False, na_values=[""])
    raw["_source_row"] = np.arange(len(raw)) + 2  # line in the file (line 1: the header)
    country = raw["Country"]
    regions = pd.DataFrame({"region_id": country, "name": country, "country": country}).drop_duplicates()
    reps = pd.DataFrame({"rep_id": ["online_store"], "name": ["Online store"], "region_id": ["United Kingdom"],
                         "is_active": ["true"]})
    description = raw.groupby("StockCode", sort=False)["Description"].first()
    code = description.index.to_series()
    product_line = np.select(
        [code.isin(["POST", "DOT", "C2"]),
         code.isin(["M", "m", "D", "S", "B", "BANK CHARGES", "AMAZONFEE", "CRUK"]),
         code.str.startswith("gift_")],
        ["postage", "fees & adjustments", "gift vouchers"], "merchandise")
    products = pd.DataFrame({"product_id": code.to_numpy(), "name": description.fillna(code).to_numpy(),
                             "product_line": product_line})
    by_customer = raw.groupby("CustomerID", dropna=False, sort=False)
    first_country = by_customer["Country"].first()
    accounts = pd.DataFrame({"account_id": first_country.index, "name": first_country.index,
                             "country": first_country.to_numpy(), "region_id": first_country.to_numpy(),
                             "created_at": by_customer["InvoiceDate"].min().reindex(first_country.index).to_numpy(),
                             "source_channel": "online"})
    amount = pd.to_numeric(raw["Quantity"], errors="coerce") * pd.to_numeric(raw["UnitPrice"], errors="coerce")
    contracts = pd.DataFrame({
        "contract_id": raw["InvoiceNo"] + "-" + raw["_source_row"].astype(str),
        "account_id": raw["CustomerID"], "product_id": raw["StockCode"], "owner_rep_id": "online_store",
        "region_id": country, "signed_at": raw["InvoiceDate"], "quantity": raw["Quantity"], "amount": amount,
        "_source_row": raw["_source_row"],
    })
    return {"regions": regions, "reps": reps, "products": products, "accounts": accounts, "contracts": contracts}


def case_naive_uci(opts: argparse.Namespace) -> dict:
    import pandas as pd

    from crmlens.validate import validate_tables

    t0 = _now()
    frames = uci_frames_pandas(opts.folder)
    mapped_s = _now() - t0
    _, report = validate_tables(frames, source=str(opts.folder), as_of=pd.Timestamp.now(tz="UTC").tz_localize(None))
    seconds = _now() - t0
    c = report.tables["contracts"]
    return {"seconds": seconds, "mapped_s": mapped_s, "contracts": [c.loaded, c.accepted, c.rejected]}


def case_kernel(opts: argparse.Namespace) -> dict:
    t0 = _now()
    from crmlens import data, notebook  # noqa: F401 - the import is what is measured
    from crmlens.dashboard.tiles import DEFAULT_OVERVIEW, tiles_for

    imported = _now()
    s = data.open_slice(_params(opts.folder, "all", opts.period))
    opened = _now()
    tiles = tiles_for(s, DEFAULT_OVERVIEW)
    done = _now()
    return {"seconds": done - t0, "import_s": imported - t0, "open_slice_s": opened - imported,
            "tiles_s": done - opened, "tiles": len(tiles)}


CHILD_CASES: dict[str, Callable[[argparse.Namespace], dict]] = {
    "project_validate": case_project_validate,
    "naive_validate": case_naive_validate,
    "project_slice": case_project_slice,
    "naive_slice": case_naive_slice,
    "notebook": case_notebook,
    "project_uci": case_project_uci,
    "naive_uci": case_naive_uci,
    "kernel": case_kernel,
}


def run_one(opts: argparse.Namespace) -> int:
    """Child entry point: run one case, print one JSON line (ok, or the error and whether an API is missing)."""
    try:
        result = {"ok": True, **CHILD_CASES[opts.one](opts)}
    except (ImportError, AttributeError) as err:  # the project API this case calls does not exist (yet)
        result = {"ok": False, "missing": True, "error": f"{type(err).__name__}: {err}",
                  "trace": traceback.format_exc(limit=4)}
    except Exception as err:
        result = {"ok": False, "missing": False, "error": f"{type(err).__name__}: {str(err)[:300]}",
                  "trace": traceback.format_exc(limit=4)}
    print("BENCH-RESULT " + json.dumps(result, default=str), flush=True)
    return 0


# ========================================================================================== parent side

@dataclass
class Measure:
    """One child's result: seconds (None when it failed), peak RSS in MB, wall time, and why it failed."""

    seconds: float | None
    peak_mb: float | None
    wall_s: float
    error: str | None = None
    missing: bool = False
    extra: dict | None = None

    def cell(self) -> str:
        if self.seconds is not None:
            return f"{self.seconds:.2f}"
        return "n/a"

    def problem(self) -> str | None:
        if self.error is None:
            return None
        return ("not available: " if self.missing else "failed: ") + self.error


def _rss_kb(pid: int) -> int:
    """RSS of a process and its descendants (KB), for the memory guard."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
                break
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (OSError, ValueError):
        return total
    return total + sum(_rss_kb(int(c)) for c in children)


def measure(case: str, opts: argparse.Namespace, *, folder: Path, store_dir: Path, region: str = "all",
            notebook: str = "") -> Measure:
    """Run `case` in a fresh process; its seconds, its own peak RSS (os.wait4) and the wall time."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", case, "--folder", str(folder),
           "--region", region, "--notebook", notebook]
    if opts.period:
        cmd += ["--period", opts.period]
    env = {**os.environ, STORE_DIR_ENV: str(store_dir)}
    limit_kb = int(opts.rss_limit_gb * 1024 * 1024)
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE if opts.quiet else None, text=True,
                                env=env, cwd=str(ROOT), start_new_session=True)
        killed = None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            elapsed = time.perf_counter() - started
            if _rss_kb(proc.pid) > limit_kb:
                killed = f"killed: resident memory passed {opts.rss_limit_gb:g} GB after {elapsed:.0f} s"
            elif elapsed > opts.timeout:
                killed = f"killed: still running after {opts.timeout:.0f} s"
            if killed:
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.1)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        lines = [ln for ln in out.read().splitlines() if ln.startswith("BENCH-RESULT ")]
    peak_mb = usage.ru_maxrss / 1024  # Linux: kilobytes
    if killed:
        return Measure(None, peak_mb, wall, error=killed)
    if not lines:
        return Measure(None, peak_mb, wall, error=f"the child exited with {proc.returncode} and no result")
    result = json.loads(lines[-1][len("BENCH-RESULT "):])
    if not result.pop("ok"):
        if opts.verbose:
            print(result.get("trace", ""), file=sys.stderr)
        return Measure(None, peak_mb, wall, error=result["error"], missing=result["missing"], extra=result)
    seconds = result.pop("seconds")
    if case == "kernel":  # a cold start is the whole process, interpreter start included
        seconds = wall
    return Measure(seconds, peak_mb, wall, extra=result)


#: Figure targets of issue 10: (data, row key) → (max seconds, max peak MB or None).
TARGETS: dict[tuple[str, str], tuple[float, float | None]] = {
    ("large", "validate"): (60.0, 4096.0),
    ("large", "slice_all"): (3.0, None),
    ("large", "slice_region"): (2.0, None),
    **{("large", f"nb_{nb}"): (20.0, None) for nb in NOTEBOOKS},
    ("default", "nb_04_customers"): (20.0, None),  # issue 12
    ("default", "nb_06_customer_health"): (20.0, None),  # issue 12
    ("default", "nb_09_forecast_alerts"): (30.0, None),  # issue 15
    ("default", "slice_all"): (0.5, None),
    ("default", "slice_region"): (0.5, None),
    ("default", "kernel"): (5.0, 300.0),
    ("uci", "validate"): (10.0, None),
}


@dataclass
class Row:
    key: str
    label: str
    project: Measure | None
    naive: Measure | None


def _target_text(data: str, key: str) -> str:
    target = TARGETS.get((data, key))
    if target is None:
        return DASH
    seconds, mb = target
    return f"≤ {seconds:g} s" + (f", ≤ {mb / 1024:g} GB" if mb and mb >= 1024 else (f", ≤ {mb:g} MB" if mb else ""))


def _verdict(data: str, key: str, m: Measure | None) -> str:
    target = TARGETS.get((data, key))
    if target is None or m is None:
        return ""
    if m.seconds is None:
        return "not measured"
    seconds, mb = target
    missed = []
    if m.seconds > seconds:
        missed.append(f"time {m.seconds:.1f} s")
    if mb is not None and m.peak_mb and m.peak_mb > mb:
        missed.append(f"memory {m.peak_mb:,.0f} MB")
    return "meets target" if not missed else "MISSES (" + ", ".join(missed) + ")"


def print_rows(data: str, rows: list[Row], header: str) -> None:
    print(header)
    cols = (f"{'case':<34} {'project s':>9} {'naive s':>9} {'naive/proj':>10} {'proj MB':>8} {'naive MB':>9}  "
            f"{'target':<18} verdict")
    print(cols)
    print("-" * len(cols))
    for r in rows:
        p, n = r.project, r.naive
        ratio = DASH
        if p and n and p.seconds and n.seconds:
            ratio = f"{n.seconds / p.seconds:.1f}×"
        print(f"{r.label:<34} {p.cell() if p else DASH:>9} {n.cell() if n else DASH:>9} {ratio:>10} "
              f"{f'{p.peak_mb:,.0f}' if p and p.peak_mb else DASH:>8} "
              f"{f'{n.peak_mb:,.0f}' if n and n.peak_mb else DASH:>9}  {_target_text(data, r.key):<18} "
              f"{_verdict(data, r.key, p)}")
        for side, m in (("project", p), ("naive", n)):
            if m is not None and m.problem():
                print(f"{'':<4}{side}: {m.problem()}")
        if r.key.startswith("slice_") and p is not None and p.seconds is not None and p.extra:
            print(f"{'':<4}tables are read when first used; open + every table of the three periods read: "
                  f"{p.extra['read_all_s']:.2f} s ({p.extra['rows']:,} rows in the current period)")
        if r.key == "kernel" and p is not None and p.seconds is not None and p.extra:
            print(f"{'':<4}imports {p.extra['import_s']:.2f} s, open_slice {p.extra['open_slice_s']:.2f} s, "
                  f"{p.extra['tiles']} tiles {p.extra['tiles_s']:.2f} s; process wall {p.wall_s:.2f} s")
    print(flush=True)


def _describe_folder(folder: Path) -> str:
    try:
        import pyarrow.parquet as pq

        files = sorted(folder.glob("*.parquet"))
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        return f"{folder} ({rows:,} rows in {len(files)} tables)"
    except Exception:  # only a description
        return str(folder)


def bench_demo_folder(data: str, opts: argparse.Namespace, store_dir: Path) -> list[Row]:
    """The rows of --data default / large (see the module docs)."""
    folder = opts.source or DATA[data]
    if not (folder / "opportunities.parquet").is_file():
        raise SystemExit(f"{folder} holds no demo data: generate it with `crmlens demo --scale "
                         f"{'large --out data/large' if data == 'large' else 'default'}`")
    header = (f"== CRM Lens scale benchmark: --data {data}, {_describe_folder(folder)}, period "
              f"{opts.period or 'default'}, region {opts.region}, {os.cpu_count()} CPUs, store {store_dir}")
    if opts.kernel:  # a dashboard kernel finds the source validated: warm the store first
        rows = [Row("validate", "first validation (store warm-up)",
                    measure("project_validate", opts, folder=folder, store_dir=store_dir), None)]
        rows.append(Row("kernel", "dashboard cold start (process)",
                        measure("kernel", opts, folder=folder, store_dir=store_dir), None))
        print_rows(data, rows, header)
        return rows
    rows: list[Row] = []
    naive = not opts.no_naive

    def step(row: Row) -> None:
        rows.append(row)
        print(f"  measured: {row.label}", file=sys.stderr, flush=True)

    step(Row("validate", "first validation (cold store)",
             measure("project_validate", opts, folder=folder, store_dir=store_dir),
             measure("naive_validate", opts, folder=folder, store_dir=store_dir) if naive else None))
    for key, region in (("slice_all", "all"), ("slice_region", opts.region)):
        step(Row(key, f"open_slice {region} (warm store)",
                 measure("project_slice", opts, folder=folder, store_dir=store_dir, region=region),
                 measure("naive_slice", opts, folder=folder, store_dir=store_dir, region=region) if naive else None))
    for nb in NOTEBOOKS:
        step(Row(f"nb_{nb}", f"notebook {nb} (all)",
                 measure("notebook", opts, folder=folder, store_dir=store_dir, notebook=nb), None))
    if data == "default":
        step(Row("kernel", "dashboard cold start (process)",
                 measure("kernel", opts, folder=folder, store_dir=store_dir), None))
    print_rows(data, rows, header)
    return rows


def bench_uci(opts: argparse.Namespace, store_dir: Path) -> list[Row]:
    folder = opts.source or DATA["uci"]
    if not (folder / UCI_FILE).is_file():
        raise SystemExit(f"the UCI Online Retail export is not at {folder / UCI_FILE}")
    header = (f"== CRM Lens scale benchmark: --data uci, {folder / UCI_FILE} through "
              f"{UCI_MAPPING.relative_to(ROOT)}, {os.cpu_count()} CPUs, store {store_dir}")
    rows = [Row("validate", "crmlens validate (cold store)",
                measure("project_uci", opts, folder=folder, store_dir=store_dir),
                None if opts.no_naive else measure("naive_uci", opts, folder=folder, store_dir=store_dir))]
    print_rows("uci", rows, header)
    for side, m in (("project", rows[0].project), ("naive", rows[0].naive)):
        if m is not None and m.extra and m.extra.get("contracts"):
            loaded, accepted, rejected = m.extra["contracts"]
            print(f"  {side}: contracts loaded {loaded:,}, accepted {accepted:,}, rejected {rejected:,}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("default", "large", "uci"), default="default",
                        help="default: data/demo; large: data/large; uci: ../shared/data/uci_online_retail "
                             "(default: %(default)s)")
    parser.add_argument("--kernel", action="store_true",
                        help="only the dashboard-like cold kernel start (import, open_slice all, tiles)")
    parser.add_argument("--source", type=Path, help="another folder instead of the --data one")
    parser.add_argument("--region", default="East", help="the one-region slice (default: %(default)s)")
    parser.add_argument("--period", help="period of the slices and notebooks (default: params/defaults.yaml, "
                                         "the demo's latest complete quarter)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive pandas path (slow on large)")
    parser.add_argument("--rss-limit-gb", type=float, default=16.0,
                        help="kill a child whose resident memory passes this (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="kill a child running longer, seconds (default: %(default)s)")
    parser.add_argument("--keep-store", action="store_true", help="keep the temporary store folder")
    parser.add_argument("--json", action="store_true", help="also print every measurement as one JSON line")
    parser.add_argument("--quiet", action="store_true", help="hide the children's stderr (warnings, logs)")
    parser.add_argument("--verbose", action="store_true", help="print the traceback of a failed case")
    # the child side (internal)
    parser.add_argument("--one", choices=sorted(CHILD_CASES), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--notebook", default="", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)

    if opts.one:
        return run_one(opts)
    if opts.source is not None:
        opts.source = opts.source.resolve()
    if opts.kernel and opts.data == "uci":
        parser.error("--kernel needs --data default or large")
    store_dir = Path(tempfile.mkdtemp(prefix=f"crmlens-bench-store-{opts.data}-"))
    try:
        rows = bench_uci(opts, store_dir) if opts.data == "uci" else bench_demo_folder(opts.data, opts, store_dir)
    finally:
        if opts.keep_store:
            print(f"store kept in {store_dir}")
        else:
            shutil.rmtree(store_dir, ignore_errors=True)
    if opts.json:
        for r in rows:
            for side, m in (("project", r.project), ("naive", r.naive)):
                if m is not None:
                    print(json.dumps({"data": opts.data, "case": r.key, "side": side, "seconds": m.seconds,
                                      "peak_rss_mb": m.peak_mb, "wall_s": m.wall_s, "error": m.error,
                                      "target": TARGETS.get((opts.data, r.key)), **(m.extra or {})}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
