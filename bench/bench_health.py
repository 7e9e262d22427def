"""Benchmark the customer-health analysis (notebook 06): the churn model and the CSAT driver regression, each
measured in its own fresh process, side by side with the naive way, as ratios.

    .venv/bin/python bench/bench_health.py                 # data/demo, region all (what `make bench` runs)
    .venv/bin/python bench/bench_health.py --data large    # data/large (crmlens demo --scale large)
    .venv/bin/python bench/bench_health.py --churn         # ../shared/data/churn_modelling through its mapping

Rows:

* activities for the churn features — project: `Slice.history_columns` (account and time only, in the engine);
  naive: the slice's whole activities history (`Slice.history`, every column) then the two columns.
* churn dataset — `crmlens.metrics.health.churn_dataset` over the customers × reference dates (binary searches
  per account); no naive row.
* churn model fit + checks — `fit_churn_model` (gradient boosting on one thread, calibration, permutation
  importance, reasons): project = OMP_NUM_THREADS=1 (as the library sets it); naive = scikit-learn's default
  threads (one per core). Measured alone, and beside a second process keeping one core busy (as the other
  notebook of a `crmlens run` with two workers does): there OpenMP's threads spin against each other.
* CSAT drivers — `csat_drivers` (ticket join + OLS with HC3 errors, statsmodels); no naive row.

Seconds are the measured call inside the child (imports and the slice's opening excluded). Figures only; nothing
is asserted. Times are wall-clock on a possibly shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = {"default": ROOT / "data" / "demo", "large": ROOT / "data" / "large"}
CHURN = (ROOT.parent / "shared" / "data" / "churn_modelling", ROOT / "params" / "sources" / "churn_modelling.yaml")

CHILD = r'''
import json, sys, time
args = json.loads(sys.argv[1])
from crmlens import data, params
from crmlens.metrics import customers, health
values = {"source": args["source"], "region": "all", "period": args["period"]}
if args.get("mapping"):
    values["mapping"] = args["mapping"]
s = data.open_slice(params.validate_params(values))
from crmlens import notebook as nb
ctx = nb.context(s)
out = {}
t = time.perf_counter()
if args["what"] == "activities_project":
    frame = s.history_columns("activities", ["account_id", "occurred_at"], 14)
elif args["what"] == "activities_naive":
    frame = s.history("activities", 14)[["account_id", "occurred_at"]]
if args["what"].startswith("activities"):
    out["seconds"] = time.perf_counter() - t
    out["rows"] = len(frame)
elif args["what"] == "model":
    purchases = customers.purchase_history(s)
    acts = s.history_columns("activities", ["account_id", "occurred_at"], 14) if s.has("activities") else None
    tk = s.history("tickets", 14) if s.has("tickets") else None
    sv = s.history("surveys", 14) if s.has("surveys") else None
    t = time.perf_counter()
    d = health.churn_dataset(s.tables["accounts"], at=health.reference_time(ctx), purchases=purchases,
                             activities=acts, tickets=tk, surveys=sv, cover_days=ctx.churn_days,
                             attributes=health._custom_fields(s))
    out["dataset_seconds"] = time.perf_counter() - t
    out["rows"] = len(d.frame)
    t = time.perf_counter()
    m = health._fit_churn_model(d) if args.get("raw") else health.fit_churn_model(d)
    out["seconds"] = time.perf_counter() - t
    out["auc"] = m.auc
    out["validation"] = m.validation
elif args["what"] == "drivers":
    d = health.csat_drivers(s)
    out["seconds"] = time.perf_counter() - t
    out["rows"] = int(d.attrs.get("n_responses", 0))
print("RESULT " + json.dumps(out))
'''


class _Busy:
    """A second process keeping one core busy, as the other notebook of a run with two workers does."""

    def __enter__(self) -> _Busy:
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


def child(args: dict, env: dict | None = None) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=ROOT, timeout=3600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}


def row(name: str, project: dict, naive: dict | None = None) -> None:
    p = project.get("seconds")
    n = naive.get("seconds") if naive else None
    ratio = f"{n / p:6.1f}×" if p and n else "     –"
    extra = {k: v for k, v in project.items() if k not in ("seconds",)}
    print(f"{name:<34} {p if p is not None else float('nan'):8.2f} s  "
          f"{n if n is not None else float('nan'):8.2f} s  {ratio}   {extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=sorted(DATA), default="default", help="demo folder (default: data/demo)")
    parser.add_argument("--churn", action="store_true", help="the Churn Modelling dataset through its mapping")
    opts = parser.parse_args()
    if opts.churn:
        base = {"source": str(CHURN[0]), "mapping": str(CHURN[1]), "period": "2018"}
        label = "churn_modelling"
    else:
        base = {"source": str(DATA[opts.data]), "period": "2026-Q3"}
        label = opts.data
    print(f"customer health on {label}, region all — project vs naive (seconds; ratio naive/project)")
    print(f"{'':<34} {'project':>10}  {'naive':>10}  {'ratio':>6}")
    child({**base, "what": "drivers"})  # warm the validated store once
    if not opts.churn:
        row("activities for churn features", child({**base, "what": "activities_project"}),
            child({**base, "what": "activities_naive"}))
    project = child({**base, "what": "model"}, {"OMP_NUM_THREADS": "1"})
    naive = subprocess_env_free(base)
    row("churn dataset", {"seconds": project.get("dataset_seconds"), "rows": project.get("rows")})
    row("churn model fit + checks, alone", project, naive)
    with _Busy():
        project = child({**base, "what": "model"}, {"OMP_NUM_THREADS": "1"})
        naive = subprocess_env_free(base)
    row("  … beside a busy second process", project, naive)
    if not opts.churn:
        row("CSAT drivers (OLS, HC3)", child({**base, "what": "drivers"}))


def subprocess_env_free(base: dict) -> dict:
    """The model with scikit-learn's default threads (OMP_NUM_THREADS unset, no thread limit)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps({**base, "what": "model", "raw": True})],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=3600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": proc.stderr.strip().splitlines()[-1:]}


if __name__ == "__main__":
    main()
