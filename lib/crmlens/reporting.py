"""Writing validation reports and rejected rows to disk."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from crmlens import atomic
from crmlens.validate import TableResult, ValidationReport


def write_validation_outputs(folder: Path, results: dict[str, TableResult], report: ValidationReport) -> Path:
    """Write `report.json` (full, every problem row) and `rejected/<table>.parquet` into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_text(folder / "report.json", json.dumps(report.to_dict(max_problems=None), indent=2, default=str))
    problems = report.problems
    atomic.write_with(folder / "problems.parquet", lambda p: problems.to_parquet(p, index=False))
    for name, result in results.items():
        if len(result.rejected):
            frame = result.rejected.astype({c: "string" for c in result.rejected.columns
                                            if result.rejected[c].dtype == object})
            atomic.write_with(folder / "rejected" / f"{name}.parquet", lambda p, f=frame: f.to_parquet(p, index=False))
    return folder


def counts_frame(report: ValidationReport) -> pd.DataFrame:
    """One row per table: loaded, accepted, rejected, status."""
    return pd.DataFrame(
        [{"table": n, "loaded": r.loaded, "accepted": r.accepted, "rejected": r.rejected, "status": r.status}
         for n, r in report.tables.items()]
    )
