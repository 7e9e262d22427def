"""The UCI "Online Retail" export through params/sources/uci_online_retail.yaml, checked against an
independent pandas reading of the raw .csv.gz: rows loaded, accepted and rejected per table, every
rejection reason (table, column, rule and the very source lines), and the accepted contracts' total amount.
Sales lines become contracts, cancellation lines (InvoiceNo starting with C) credit notes.

The expected problems are derived here, in pandas, from the rules of `crmlens.schema` (required, type,
minimum/maximum, allowed values, not in the future, duplicate keys, foreign keys to the accepted parent
rows), not by calling the validator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmlens import data, paths
from crmlens.schema import SCHEMA

UCI_DIR = paths.PROJECT_ROOT.parent / "shared" / "data" / "uci_online_retail"
UCI_FILE = UCI_DIR / "online_retail.csv.gz"
UCI_MAPPING = paths.SOURCES_DIR / "uci_online_retail.yaml"
AS_OF = pd.Timestamp("2012-01-01")
TABLES = ["regions", "reps", "products", "accounts", "contracts", "credit_notes"]
FACTS = ("contracts", "credit_notes")  # tables with a line of the file per row
N_LINES = 541_909
N_CANCELLATIONS = 9_288  # lines whose InvoiceNo starts with C
PLACEHOLDER_REP = "online_store"

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def uci_dir() -> Path:
    if not UCI_FILE.is_file():
        pytest.skip(f"the UCI Online Retail export is not at {UCI_FILE} (shared/data must sit beside the project)")
    return UCI_DIR


# ------------------------------------------------------------------------------ the pandas side

def read_raw() -> pd.DataFrame:
    """The export as text, empty fields missing (no other word means "missing"), with each row's line."""
    raw = pd.read_csv(UCI_FILE, dtype=str, keep_default_na=False, na_values=[""])
    raw = raw.apply(lambda s: s.str.strip()).replace("", np.nan)
    raw["_source_row"] = np.arange(len(raw)) + 2  # line 1 is the header
    return raw


def canonical_frames(raw: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """What the mapping means, written in pandas: the canonical tables, typed."""
    country = raw["Country"]
    regions = pd.DataFrame({"region_id": country, "name": country, "country": country}).drop_duplicates()
    reps = pd.DataFrame({"rep_id": [PLACEHOLDER_REP], "name": ["Online store"], "region_id": ["United Kingdom"],
                         "is_active": [True]})
    description = raw.groupby("StockCode", sort=False)["Description"].first()  # first non-empty one
    products = pd.DataFrame({
        "product_id": description.index,
        "name": description.fillna(description.index.to_series()).to_numpy(),  # none at all: the code
        "product_line": "any",  # required and always set by the mapping; its values are not a rule
    })
    first_country = raw.groupby("CustomerID", dropna=False, sort=False)["Country"].first()
    accounts = pd.DataFrame({"account_id": first_country.index, "name": first_country.index,
                             "region_id": first_country.to_numpy(),
                             "created_at": pd.to_datetime(
                                 raw.groupby("CustomerID", dropna=False, sort=False)["InvoiceDate"].min()
                                 .reindex(first_country.index).to_numpy(), format="ISO8601")})
    cancelled = raw["InvoiceNo"].str.startswith("C").fillna(False).astype(bool)
    sales, cancels = raw[~cancelled], raw[cancelled]
    quantity = pd.to_numeric(sales["Quantity"], errors="coerce")
    contracts = pd.DataFrame({
        "contract_id": sales["InvoiceNo"] + "-" + sales["_source_row"].astype(str),
        "account_id": sales["CustomerID"],
        "product_id": sales["StockCode"],
        "owner_rep_id": PLACEHOLDER_REP,
        "region_id": sales["Country"],
        "signed_at": pd.to_datetime(sales["InvoiceDate"], format="ISO8601", errors="coerce"),
        "quantity": quantity,
        "amount": quantity * pd.to_numeric(sales["UnitPrice"], errors="coerce"),
        "_source_row": sales["_source_row"],
        "_quantity_text": sales["Quantity"],
        "_date_text": sales["InvoiceDate"],
    })
    units = cancels["Quantity"].str.lstrip("-")  # cancelled units, positive
    credit_notes = pd.DataFrame({
        "credit_note_id": cancels["InvoiceNo"] + "-" + cancels["_source_row"].astype(str),
        "account_id": cancels["CustomerID"],
        "product_id": cancels["StockCode"],
        "region_id": cancels["Country"],
        "credited_at": pd.to_datetime(cancels["InvoiceDate"], format="ISO8601", errors="coerce"),
        "quantity": pd.to_numeric(units, errors="coerce"),
        "amount": -(pd.to_numeric(cancels["Quantity"], errors="coerce")
                    * pd.to_numeric(cancels["UnitPrice"], errors="coerce")),
        "reason": "cancellation",
        "_source_row": cancels["_source_row"],
        "_quantity_text": units,
        "_date_text": cancels["InvoiceDate"],
    })
    return {"regions": regions, "reps": reps, "products": products, "accounts": accounts, "contracts": contracts,
            "credit_notes": credit_notes}


def expected_problems(name: str, frame: pd.DataFrame, accepted: dict[str, pd.DataFrame]) -> dict[tuple, pd.Index]:
    """(column, rule, severity) → the frame's rows that break it, from the rules of `crmlens.schema`."""
    table = SCHEMA[name]
    found: dict[tuple, pd.Index] = {}

    def add(column: str | None, rule: str, mask: pd.Series, severity: str = "reject") -> None:
        mask = mask.fillna(False).astype(bool)
        if mask.any():
            found[(column, rule, severity)] = frame.index[mask.to_numpy()]

    for col in table.columns:
        if col.name not in frame:
            continue
        values = frame[col.name]
        unreadable = pd.Series(False, index=frame.index)
        if name in FACTS and col.name == "quantity":  # text that is not a whole number
            unreadable = frame["_quantity_text"].notna() & (values.isna() | (values % 1 != 0))
        if name in FACTS and col.name in ("signed_at", "credited_at"):
            unreadable = frame["_date_text"].notna() & values.isna()
        add(col.name, "wrong_type", unreadable)
        if not col.nullable:
            add(col.name, "not_null", values.isna() & ~unreadable)
        if col.allowed is not None:
            add(col.name, "allowed_values", values.notna() & ~values.isin(list(col.allowed)))
        if col.min is not None:
            add(col.name, "min", values < col.min)
        if col.max is not None:
            add(col.name, "max", values > col.max)
        if col.not_future:
            add(col.name, "not_in_future", values > AS_OF)
        if col.references:
            parent, parent_col = col.references.split(".")
            if parent in accepted:  # checked against the parent's accepted rows
                add(col.name, "foreign_key", values.notna() & ~values.isin(set(accepted[parent][parent_col])))
        if col.warn_if_null:
            add(col.name, "missing_value", values.isna(), severity="warn")
    key = list(table.key)
    add(",".join(key), "duplicate_key", frame.duplicated(subset=key) & frame[key].notna().all(axis=1))
    return found


@pytest.fixture(scope="module")
def expected() -> dict[str, dict]:
    """Per table: the canonical frame, its problems, the rejected rows and the accepted rows (pandas)."""
    frames = canonical_frames(read_raw())
    accepted_rows: dict[str, pd.DataFrame] = {}
    out = {}
    for name in TABLES:  # parents before children, as validation goes
        frame = frames[name].reset_index(drop=True)
        problems = expected_problems(name, frame, accepted_rows)
        rejected = pd.Series(False, index=frame.index)
        for (_, _, severity), rows in problems.items():
            if severity == "reject":
                rejected.loc[rows] = True
        accepted = frame[~rejected]
        accepted_rows[name] = accepted
        out[name] = {"frame": frame, "problems": problems, "rejected": rejected, "accepted": accepted}
    return out


# ----------------------------------------------------------------------------- the project side

@pytest.fixture(scope="module")
def uci_con(uci_dir):
    return data.connect(uci_dir, UCI_MAPPING)


@pytest.fixture(scope="module")
def validated(uci_con):
    out = data.validate_source(uci_con, as_of=AS_OF, tables=TABLES)
    results, report = out if isinstance(out, tuple) else (None, out)
    return results, report


def test_mapping_loads_every_line_of_the_gz_file(uci_con):
    n_contracts = uci_con.table("contracts").count().execute()
    n_credits = uci_con.table("credit_notes").count().execute()
    assert (n_contracts, n_credits) == (N_LINES - N_CANCELLATIONS, N_CANCELLATIONS)  # each line in one table
    distinct_ids = uci_con.table("contracts").contract_id.nunique().execute()
    assert distinct_ids == n_contracts, "contract_id must be unique: invoice number + line in the file"
    assert uci_con.table("credit_notes").credit_note_id.nunique().execute() == n_credits


def test_validation_accepts_and_rejects_what_pandas_says(uci_con, validated, expected):
    results, report = validated
    problems = report.problems
    mismatches: list[str] = []

    for name in TABLES:
        exp = expected[name]
        got = report.tables[name]
        want = (len(exp["frame"]), int((~exp["rejected"]).sum()), int(exp["rejected"].sum()))
        if (got.loaded, got.accepted, got.rejected) != want:
            mismatches.append(f"{name}: loaded/accepted/rejected {(got.loaded, got.accepted, got.rejected)} "
                              f"!= pandas {want}")
        mine = problems[problems["table"] == name].fillna({"column": ""})
        counts = mine.groupby(["column", "rule", "severity"]).size().to_dict()
        want_counts = {(c or "", r, s): len(rows) for (c, r, s), rows in exp["problems"].items()}
        for reason in sorted(set(counts) | set(want_counts)):
            if counts.get(reason, 0) != want_counts.get(reason, 0):
                mismatches.append(f"{name} {reason}: {counts.get(reason, 0):,} problem rows != pandas "
                                  f"{want_counts.get(reason, 0):,}")
        if name in FACTS:  # the very lines of the file, per reason
            for (column, rule, severity), rows in exp["problems"].items():
                want_lines = set(exp["frame"].loc[rows, "_source_row"].astype(int))
                sel = mine[(mine["column"] == (column or "")) & (mine["rule"] == rule) & (mine["severity"] == severity)]
                got_lines = set(sel["source_row"].dropna().astype(int))
                if got_lines != want_lines:
                    mismatches.append(f"{name} {column} [{rule}]: lines differ, e.g. only in the report "
                                      f"{sorted(got_lines - want_lines)[:5]}, only in pandas "
                                      f"{sorted(want_lines - got_lines)[:5]}")

    contracts = expected["contracts"]
    want_amount = float(contracts["accepted"]["amount"].sum())
    if results is not None:
        got_amount = float(results["contracts"].accepted["amount"].sum())
    else:  # a report only: the accepted rows are those no rejection names
        bad = problems[(problems["table"] == "contracts") & (problems["severity"] == "reject")]["source_row"]
        t = uci_con.table("contracts")
        got_amount = float(t.filter(~t["_source_row"].isin(bad.dropna().astype(int).tolist())).amount.sum().execute())
    if got_amount != pytest.approx(want_amount, rel=1e-9):
        mismatches.append(f"accepted contracts' amount {got_amount:,.2f} != pandas {want_amount:,.2f}")
    if results is not None:
        want_credit = float(expected["credit_notes"]["accepted"]["amount"].sum())
        got_credit = float(results["credit_notes"].accepted["amount"].sum())
        if got_credit != pytest.approx(want_credit, rel=1e-9):
            mismatches.append(f"accepted credit notes' amount {got_credit:,.2f} != pandas {want_credit:,.2f}")

    assert not mismatches, "\n".join(mismatches)


def test_the_known_problems_are_rejected_with_their_reason(expected):
    """The pandas side itself finds what ../shared/data/README.md says the export holds: 135,080 lines without
    a CustomerID (134,697 sales lines, 383 cancellations); the cancellations are credit notes, not bad data."""
    problems = expected["contracts"]["problems"]
    assert len(problems[("account_id", "not_null", "reject")]) == 134_697
    assert len(expected["contracts"]["frame"]) == N_LINES - N_CANCELLATIONS
    assert not expected["contracts"]["frame"]["contract_id"].str.startswith("C").any()
    credits = expected["credit_notes"]
    assert len(credits["frame"]) == N_CANCELLATIONS and credits["frame"]["credit_note_id"].str.startswith("C").all()
    assert len(credits["problems"][("account_id", "not_null", "reject")]) == 383
    assert int(credits["rejected"].sum()) == 383, "a cancellation is rejected only for want of a customer"
    assert (credits["accepted"]["amount"] > 0).all() and (credits["accepted"]["quantity"] > 0).all()


# ------------------------------------------------------------- customers: RFM and cohorts against pandas

UCI_PERIOD, UCI_AS_OF = "2011-Q4", pd.Timestamp("2011-12-10")


@pytest.fixture(scope="module")
def uci_customers(uci_con):
    """The customers analysis on the mapped export (the whole company, 2011-Q4 up to the last invoice day)."""
    from crmlens.metrics import customers as cu
    from crmlens.params import validate_params

    params = validate_params({"source": str(UCI_DIR), "mapping": str(UCI_MAPPING), "region": "all",
                              "period": UCI_PERIOD, "as_of": str(UCI_AS_OF.date())})
    s = data.open_slice(params, uci_con)
    purchases = cu.purchase_history(s)
    credits = cu.credit_history(s)
    return {"rfm": cu.rfm(s, purchases, credits=credits), "credits": credits,
            "cohorts": cu.cohort_retention(s, purchases, freq="month", n_periods=12, basis="purchase"),
            "slice": s, "purchases": purchases}


def _pandas_orders(expected: dict) -> pd.DataFrame:
    """The accepted invoice lines (pandas' own reading of the rules), one order per customer and invoice time."""
    lines = expected["contracts"]["accepted"]
    lines = lines[lines["signed_at"] < UCI_AS_OF]
    return lines.groupby(["account_id", "signed_at"], as_index=False)["amount"].sum()


def test_rfm_tiers_on_uci_equal_an_independent_pandas_computation(uci_customers, expected):
    """RFM with the monetary value net of each customer's credits (cancellations), which never count as
    purchases."""
    orders = _pandas_orders(expected)
    per = orders.groupby("account_id").agg(last=("signed_at", "max"), frequency=("signed_at", "size"),
                                           monetary=("amount", "sum"))
    credits = expected["credit_notes"]["accepted"]
    credited = credits[credits["credited_at"] < UCI_AS_OF].groupby("account_id")["amount"].sum()
    assert credited.sum() > 500_000  # ~ 611,000 of cancellations by customers
    per["monetary"] = per["monetary"] - credited.reindex(per.index).fillna(0.0)
    recency = (UCI_AS_OF - per["last"]).dt.total_seconds() / 86400

    def quintile(values: pd.Series) -> np.ndarray:  # percentile of the average rank, in fifths, 1..5
        return np.clip(np.ceil(values.rank(method="average", pct=True).to_numpy() * 5), 1, 5).astype(int)

    r, f, m = quintile(-recency), quintile(per["frequency"].astype(float)), quintile(per["monetary"])
    fm = (f + m) / 2
    tier = np.select([(r >= 4) & (fm >= 4), (r >= 3) & (fm >= 3), r >= 3, fm >= 3, r == 2],
                     ["champions", "loyal", "promising", "at_risk", "hibernating"], default="lost")
    want = pd.Series(tier).value_counts().sort_index()
    scored = uci_customers["rfm"]
    got = scored["rfm_tier"].value_counts().sort_index()
    assert len(scored) == len(per) > 4000
    assert got.to_dict() == want.to_dict()
    mine = scored.set_index("account_id")
    assert mine["frequency"].sum() == per["frequency"].sum()  # orders, not invoice lines
    assert mine["monetary_amount"].sum() == pytest.approx(per["monetary"].sum())


def test_the_first_cohorts_retention_on_uci_equals_pandas(uci_customers, expected):
    orders = _pandas_orders(expected)
    month = orders["signed_at"].dt.to_period("M")
    first = month.groupby(orders["account_id"]).transform("min")
    cohort = orders.loc[first == pd.Period("2010-12", "M"), "account_id"].unique()
    ours = orders[orders["account_id"].isin(cohort)]
    ours_month = ours["signed_at"].dt.to_period("M")
    want = [ours.loc[ours_month == pd.Period("2010-12", "M") + k, "account_id"].nunique() / len(cohort)
            for k in range(12)]  # 2010-12 … 2011-11; 2011-12 is not over at the as-of time
    row = uci_customers["cohorts"].set_index("cohort").loc["2010-12"]
    assert row["cohort_size"] == len(cohort) > 800
    assert [row[str(k)] for k in range(12)] == pytest.approx(want)
    assert np.isnan(row["12"])


def test_clv_holdout_on_uci_beats_the_naive_baseline(uci_customers):
    """The BG/NBD model, fitted on the purchases up to 91 days before the last invoice day, forecasts each
    customer's purchase days in those 91 days with a lower error than repeating each customer's past rate.
    Measured 2026-12-01: model MAE 0.917 vs baseline 0.919, RMSE 1.509 vs 1.570 (3,370 customers; the
    holdout is the autumn peak, which both underestimate)."""
    from crmlens.metrics import clv

    check = clv.holdout(uci_customers["slice"], uci_customers["purchases"])
    assert check.attrs["status"] == "ok" and check.attrs["n_customers"] > 3000
    row = check.set_index("method")
    print(clv.holdout_note(check))
    assert row.loc["model", "mae"] < row.loc["baseline", "mae"]
    assert row.loc["model", "rmse"] < row.loc["baseline", "rmse"]
    assert row.loc["model", "actual_total"] == row.loc["baseline", "actual_total"] > 3000
