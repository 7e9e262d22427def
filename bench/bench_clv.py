"""CLV cost: pymc-marketing's import, the BG/NBD + Gamma-Gamma fits by MAP (cold: the first in a process, which
builds and loads the compiled models; warm: the next), the prediction, the holdout check, on the default demo
and on UCI Online Retail; and, with --notebook, notebook 04's time for region all (papermill).

    .venv/bin/python bench/bench_clv.py [--demo data/demo] [--uci ../shared/data/uci_online_retail] [--notebook]

Cold here means a new process with pytensor's compile cache (~/.cache/crmlens/pytensor) already filled; the very
first run for a user compiles the C code once more (~30 s). Not run by `make test`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from crmlens import paths
from crmlens.metrics import clv
from crmlens.metrics import customers as cu

UCI_AS_OF = pd.Timestamp("2011-12-10")


def demo_purchases(folder: Path) -> tuple[pd.DataFrame, pd.Timestamp]:
    contracts = pd.read_parquet(folder / "contracts.parquet", columns=["account_id", "signed_at", "amount"])
    purchases = cu.purchases_of(contracts)
    ref = (purchases["purchased_at"].max() + pd.Timedelta(days=1)).floor("D")
    return purchases, ref


def uci_purchases(folder: Path) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The accepted sales lines (a customer, positive quantity, price ≥ 0), as the mapping keeps them."""
    raw = pd.read_csv(folder / "online_retail.csv.gz", dtype={"CustomerID": str, "InvoiceNo": str, "StockCode": str})
    raw = raw[raw["CustomerID"].notna() & (raw["Quantity"] > 0) & (raw["UnitPrice"] >= 0)]
    lines = pd.DataFrame({"account_id": raw["CustomerID"], "signed_at": pd.to_datetime(raw["InvoiceDate"]),
                          "amount": raw["Quantity"] * raw["UnitPrice"]})
    return cu.purchases_of(lines), UCI_AS_OF


def timed(label: str, fn, *args, **kwargs):
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    print(f"  {label:<38} {time.perf_counter() - started:6.2f} s")
    return out


def bench(name: str, purchases: pd.DataFrame, ref: pd.Timestamp) -> None:
    print(f"{name}: {purchases['account_id'].nunique():,} customers, {len(purchases):,} purchases, as of {ref.date()}")
    summary = clv.rfm_t_summary(purchases, ref)
    timed("import pymc_marketing.clv", clv._clv_module)
    fit = timed("fit BG/NBD + Gamma-Gamma (cold)", clv.fit_models, summary)
    fit = timed("fit BG/NBD + Gamma-Gamma (warm)", clv.fit_models, summary)
    timed("predict 12 months (expected + alive + spend)",
          lambda: (clv._expected_purchases(fit, summary, 365), clv._probability_alive(fit, summary),
                   clv._expected_spend(fit, summary)))
    check = timed("holdout check (fit BG/NBD + simulate)", clv.holdout_check, purchases,
                  ref - pd.Timedelta(days=clv.HOLDOUT_DAYS))
    print("  " + clv.holdout_note(check))
    print(f"  params: {fit['params']}")


def bench_notebook() -> None:
    started = time.perf_counter()
    cli = str(Path(sys.executable).with_name("crmlens"))
    subprocess.run([cli, "run", "--notebooks", "04_*", "--regions", "all", "--exports", "none",
                    "--outputs", "/tmp/bench_clv_run", "--no-progress"], check=True)
    print(f"notebook 04, region all (crmlens run, incl. store check and kernel start): "
          f"{time.perf_counter() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=paths.DEMO_DIR)
    parser.add_argument("--uci", type=Path, default=paths.PROJECT_ROOT.parent / "shared" / "data" / "uci_online_retail")
    parser.add_argument("--notebook", action="store_true", help="also time notebook 04 for region all")
    args = parser.parse_args()
    if (args.demo / "contracts.parquet").is_file():
        bench("default demo", *demo_purchases(args.demo))
    if (args.uci / "online_retail.csv.gz").is_file():
        bench("UCI Online Retail", *uci_purchases(args.uci))
    if args.notebook:
        bench_notebook()


if __name__ == "__main__":
    main()
