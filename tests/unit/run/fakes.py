"""Synthetic run directories for the tests of `crmlens.run.index` and `crmlens.run.diff`.

A fake run follows docs/run.md: ``manifest.json``, ``<region>/kpis.parquet`` (built from the tasks' KPI records),
dummy ``<region>/<period>/<notebook>.ipynb`` / ``.html`` per task, and dummy export files. Build the manifest with
`fake_manifest`, adjust it (`set_param`, `set_kpi`, `drop_kpi`, `set_fingerprint`, …), then write it with
`write_run`; `make_run` does both in one call.
"""

from __future__ import annotations

import copy
import json
import math
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

RUN_ID = "20261123-101500"
REGIONS = ("all", "East", "West", "North")
PERIODS = ("2026-Q3",)
NOTEBOOKS = ("02_sales_funnel", "03_sales_performance", "08_regions_teams")
#: Per notebook: its headline KPIs as (kpi, label, unit, direction).
KPI_SPECS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "02_sales_funnel": (("win_rate", "Win rate", "rate", "higher"),
                        ("pipeline_value", "Open pipeline", "amount", "higher"),
                        ("sales_cycle_days", "Sales cycle", "days", "lower")),
    "03_sales_performance": (("bookings", "Bookings", "amount", "higher"),
                             ("attainment", "Quota attainment", "rate", "higher")),
    "08_regions_teams": (("active_reps", "Active reps", "count", "neutral"),
                         ("bookings_share", "Share of bookings", "rate", "neutral")),
}
KPI_COLUMNS = ["region", "period", "comparison_period", "notebook", "area", "kpi", "label", "unit", "direction",
               "value", "comparison_value", "delta", "delta_pct", "trend", "display", "status"]
EXPORT_FILES = {"xlsx": "report.xlsx", "pptx": "deck.pptx", "pdf": "report.pdf", "html": "report.html",
                "kpis": "kpis.parquet"}
FINGERPRINT = {"opportunities": {"rows": 1200, "hash": "a" * 64}, "accounts": {"rows": 300, "hash": "b" * 64},
               "regions": {"rows": 3, "hash": "c" * 64}}


def task_id(region: str, period: str, notebook: str) -> str:
    """``region/period/notebook``, as the runner names tasks."""
    return f"{region}/{period}/{notebook}"


def display(value: float | None, unit: str, currency: str = "USD") -> str:
    """The display text of a KPI value (same rules as `crmlens.kpis.Kpi.format`)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if unit == "amount":
        return f"{value:,.0f} {currency}"
    if unit == "rate":
        return f"{value:.1%}"
    if unit == "days":
        return f"{value:,.1f} days"
    if unit == "count":
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def kpi_record(kpi: str, label: str, unit: str, direction: str, value: float | None,
               comparison_value: float | None, currency: str = "USD") -> dict[str, Any]:
    """One KPI as a task's "kpis" list holds it: value, comparison, delta, delta_pct, trend, display."""
    if value is None or comparison_value is None:
        delta = pct = None
        trend = "n/a"
    else:
        delta = value - comparison_value
        pct = delta / abs(comparison_value) if comparison_value else None
        if direction == "neutral" or delta == 0:
            trend = "flat" if delta == 0 else "neutral"
        else:
            trend = "better" if (delta > 0) == (direction == "higher") else "worse"
    return {"kpi": kpi, "label": label, "unit": unit, "direction": direction, "value": value,
            "comparison_value": comparison_value, "delta": delta, "delta_pct": pct, "trend": trend,
            "display": display(value, unit, currency), "status": "ok" if value is not None else "no data"}


def _base_value(unit: str, key: str) -> float:
    """A deterministic, plausible value for a KPI of a task (same key ⇒ same value)."""
    h = zlib.crc32(key.encode())
    if unit == "rate":
        return round(0.1 + (h % 700) / 1000, 3)
    if unit == "amount":
        return float(100_000 + (h % 9_000) * 100)
    if unit == "days":
        return round(20 + (h % 600) / 10, 1)
    return float(5 + h % 40)


def _kpis_for(region: str, period: str, notebook: str, currency: str) -> list[dict[str, Any]]:
    out = []
    for kpi, label, unit, direction in KPI_SPECS.get(notebook, (("score", "Score", "score", "higher"),)):
        value = _base_value(unit, f"{region}|{period}|{notebook}|{kpi}")
        before = _base_value(unit, f"{region}|{period}|{notebook}|{kpi}|before")
        out.append(kpi_record(kpi, label, unit, direction, value, before, currency))
    return out


def fake_manifest(run_id: str = RUN_ID, *, regions: Iterable[str] = REGIONS, periods: Iterable[str] = PERIODS,
                  notebooks: Iterable[str] = NOTEBOOKS, comparison: str = "previous", currency: str = "USD",
                  fingerprint: Mapping[str, Mapping[str, Any]] | None = None,
                  failed: Mapping[str, int] | None = None, reused: Iterable[str] = (),
                  export_failed: Iterable[str] = (), status: str | None = None) -> dict[str, Any]:
    """A manifest as docs/run.md describes it.

    `failed` maps task ids to the number of the failing cell (those tasks get an error and no KPIs); `reused`
    lists task ids reused from an earlier run; `export_failed` lists regions whose exports failed.
    """
    regions, periods, notebooks = list(regions), list(periods), list(notebooks)
    failed = dict(failed or {})
    reused = set(reused)
    base = {"comparison": comparison, "source": "demo", "currency": currency, "fiscal_year_start": 1,
            "forgotten_days": 60}
    tasks = []
    for region in regions:
        for period in periods:
            for i, notebook in enumerate(notebooks):
                tid = task_id(region, period, notebook)
                stem = f"{region}/{period}/{notebook}"
                task: dict[str, Any] = {
                    "id": tid, "notebook": notebook, "region": region, "period": period,
                    "parameters": {"region": region, "period": period, **base},
                    "status": "ok", "attempts": 1, "duration_s": 10.0 + i + len(region) / 10,
                    "compute_s": 9.5 + i, "overhead_s": 0.5 + len(region) / 10,
                    "started_at": "2026-11-23T10:15:01+00:00", "finished_at": "2026-11-23T10:15:13+00:00",
                    "cache_key": f"{zlib.crc32(tid.encode()):08x}" * 8, "error": None,
                    "outputs": {"ipynb": f"{stem}.ipynb", "html": f"{stem}.html"},
                    "kpis": _kpis_for(region, period, notebook, currency),
                }
                if tid in failed:
                    task.update(status="failed", attempts=3, kpis=[], error={
                        "kind": "cell_error", "cell": failed[tid], "execution_count": failed[tid],
                        "source": "frames = load(region)\nfrac = won / closed['stage']",
                        "ename": "KeyError", "evalue": "'stage' <not a column>"})
                elif tid in reused:
                    task["status"] = "reused"
                tasks.append(task)
    exports: dict[str, Any] = {}
    for region in regions:
        if region in set(export_failed):
            exports[region] = {"status": "failed", "files": {"kpis": f"{region}/kpis.parquet"},
                               "error": "PDF: chromium exited with code 1"}
        else:
            exports[region] = {"status": "ok", "files": {k: f"{region}/{v}" for k, v in EXPORT_FILES.items()},
                               "error": None}
    n_failed = sum(t["status"] == "failed" for t in tasks)
    summary = {"tasks": len(tasks), "ok": sum(t["status"] == "ok" for t in tasks), "failed": n_failed,
               "reused": sum(t["status"] == "reused" for t in tasks), "duration_s": 95.1}
    return {
        "run_id": run_id,
        "status": status or ("failed" if n_failed else "ok"),
        "started_at": "2026-11-23T10:15:00+00:00", "finished_at": "2026-11-23T10:16:35+00:00",
        "command": ["crmlens", "run", "--run-id", run_id],
        "parameters": {"regions": regions, "periods": periods, "notebooks": notebooks, "base": base,
                       "timeout_s": 600, "retries": 2},
        "data": {"source": "data/demo", "mapping": None,
                 "fingerprint": copy.deepcopy(dict(fingerprint) if fingerprint is not None else FINGERPRINT)},
        "code": {"crmlens_version": "0.1.0", "git_commit": "0123456789abcdef0123456789abcdef01234567",
                 "git_dirty": False, "library_hash": "d" * 64,
                 "notebooks": {nb: f"{zlib.crc32(nb.encode()):08x}" * 8 for nb in notebooks}},
        "packages": {"pandas": "3.1.1", "numpy": "2.3.0", "plotly": "7.0.0"},
        "python": "3.11.2", "platform": "Linux-6.1.0-x86_64-with-glibc2.36",
        "executor": {"kind": "threads", "workers": 2, "cluster": None},
        "tasks": tasks,
        "exports": exports,
        "summary": summary,
    }


# ----------------------------------------------------------------------------------------- adjusting


def find_task(manifest: dict[str, Any], tid: str) -> dict[str, Any]:
    """The task with id `tid` (KeyError if none)."""
    for task in manifest["tasks"]:
        if task["id"] == tid:
            return task
    raise KeyError(tid)


def set_param(manifest: dict[str, Any], key: str, value: Any, *, tasks: bool = True) -> None:
    """Set a run parameter by dotted path (``base.comparison``); a ``base.`` key also goes to every task."""
    node = manifest["parameters"]
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    if tasks and parents == ["base"]:
        for task in manifest["tasks"]:
            task["parameters"][last] = value


def set_kpi(manifest: dict[str, Any], tid: str, kpi: str, value: float | None) -> None:
    """Give one KPI of one task a new value (delta, trend and display follow)."""
    task = find_task(manifest, tid)
    for i, rec in enumerate(task["kpis"]):
        if rec["kpi"] == kpi:
            currency = manifest["parameters"]["base"].get("currency", "USD")
            task["kpis"][i] = {**rec, **kpi_record(kpi, rec["label"], rec["unit"], rec["direction"], value,
                                                   rec["comparison_value"], currency)}
            return
    raise KeyError(f"{tid}: no KPI {kpi}")


def add_kpi(manifest: dict[str, Any], tid: str, kpi: str, label: str, unit: str, value: float | None,
            comparison_value: float | None = None, direction: str = "higher") -> None:
    """Append a KPI record to a task."""
    find_task(manifest, tid)["kpis"].append(kpi_record(kpi, label, unit, direction, value, comparison_value))


def drop_kpi(manifest: dict[str, Any], tid: str, kpi: str) -> None:
    """Remove a KPI record from a task."""
    task = find_task(manifest, tid)
    task["kpis"] = [rec for rec in task["kpis"] if rec["kpi"] != kpi]


def set_fingerprint(manifest: dict[str, Any], table: str, *, rows: int | None = None,
                    digest: str | None = None) -> None:
    """Change (or add) one table's data fingerprint."""
    entry = manifest["data"]["fingerprint"].setdefault(table, {"rows": 0, "hash": "0" * 64})
    if rows is not None:
        entry["rows"] = rows
    if digest is not None:
        entry["hash"] = digest


# ------------------------------------------------------------------------------------------- writing


def kpi_frame(manifest: Mapping[str, Any], region: str) -> pd.DataFrame:
    """The region's kpis.parquet content: one row per period × notebook × KPI of its tasks."""
    notebook_order = {nb: i for i, nb in enumerate(manifest["parameters"]["notebooks"])}
    rows = []
    tasks = [t for t in manifest["tasks"] if t["region"] == region]
    tasks.sort(key=lambda t: (t["period"], notebook_order.get(t["notebook"], 99), t["notebook"]))
    for task in tasks:
        for rec in task["kpis"]:
            rows.append({"region": region, "period": task["period"], "comparison_period": "2026-Q2",
                         "notebook": task["notebook"], "area": task["notebook"][3:], "kpi": rec["kpi"],
                         "label": rec["label"], "unit": rec.get("unit", "score"),
                         "direction": rec.get("direction", "higher"), "value": rec["value"],
                         "comparison_value": rec["comparison_value"], "delta": rec["delta"],
                         "delta_pct": rec["delta_pct"], "trend": rec["trend"], "display": rec["display"],
                         "status": rec.get("status", "ok")})
    frame = pd.DataFrame(rows, columns=KPI_COLUMNS)
    floats = ["value", "comparison_value", "delta", "delta_pct"]
    frame[floats] = frame[floats].astype("float64")
    others = [c for c in KPI_COLUMNS if c not in floats]
    frame[others] = frame[others].astype("string")
    return frame


def write_run(run_dir: Path, manifest: Mapping[str, Any], *, write_kpis: bool = True) -> Path:
    """Write `manifest` as a run directory: manifest.json, per-task .ipynb/.html, kpis.parquet and exports."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    for task in manifest["tasks"]:
        for kind, rel in task["outputs"].items():
            path = run_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "ipynb":
                path.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}),
                                encoding="utf-8")
            else:
                path.write_text(f"<!doctype html><title>{task['id']}</title><p>report", encoding="utf-8")
    regions = list(dict.fromkeys(t["region"] for t in manifest["tasks"]))
    for region, export in manifest.get("exports", {}).items():
        if region not in regions:
            regions.append(region)
        for kind, rel in export.get("files", {}).items():
            if kind != "kpis":
                path = run_dir / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"dummy " + kind.encode())
    if write_kpis:
        for region in regions:
            (run_dir / region).mkdir(parents=True, exist_ok=True)
            kpi_frame(manifest, region).to_parquet(run_dir / region / "kpis.parquet", index=False)
    return run_dir


def make_run(parent: Path, run_id: str = RUN_ID, **options: Any) -> Path:
    """`fake_manifest(run_id, **options)` written as ``parent/run_id``; returns the run directory."""
    return write_run(Path(parent) / run_id, fake_manifest(run_id, **options))


def write_notebook(path: Path, *cells: str) -> None:
    """A small analysis notebook for real runs: a title, the project's parameters cell, then `cells`."""
    import nbformat

    from crmlens.notebook import parameters_cell_source

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "crmlens", "display_name": "CRM Lens", "language": "python"}
    params = nbformat.v4.new_code_cell(parameters_cell_source())
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), params,
                *(nbformat.v4.new_code_cell(c) for c in cells)]
    nbformat.write(nb, path)

