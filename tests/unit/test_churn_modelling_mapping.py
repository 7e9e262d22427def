"""The "Churn Modelling" bank customers through params/sources/churn_modelling.yaml, checked against an
independent pandas reading of the raw CSV: every customer kept, the recorded churn (Exited) as
accounts.churned_at, churn rates by country and by gender, the custom fields and their types, and the
dates derived from the mapping's as-of.
"""

from __future__ import annotations

import pandas as pd
import pytest

from crmlens import data, paths
from crmlens.params import validate_params
from crmlens.schema import SCHEMA

CHURN_DIR = paths.PROJECT_ROOT.parent / "shared" / "data" / "churn_modelling"
CHURN_FILE = CHURN_DIR / "Churn_Modelling.csv"
CHURN_MAPPING = paths.SOURCES_DIR / "churn_modelling.yaml"
AS_OF = pd.Timestamp("2019-01-01")  # declared by the mapping (the export has no date)
CUSTOM = {"credit_score": ("CreditScore", "integer", "Int64"), "gender": ("Gender", "category", "string"),
          "age": ("Age", "integer", "Int64"), "tenure_years": ("Tenure", "integer", "Int64"),
          "balance_amount": ("Balance", "number", "float64"), "n_products": ("NumOfProducts", "integer", "Int64"),
          "has_credit_card": ("HasCrCard", "boolean", "boolean"),
          "is_active_member": ("IsActiveMember", "boolean", "boolean"),
          "estimated_salary_amount": ("EstimatedSalary", "number", "float64")}

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    if not CHURN_FILE.is_file():
        pytest.skip(f"the Churn Modelling export is not at {CHURN_FILE} (shared/data must sit beside the project)")
    return pd.read_csv(CHURN_FILE)


@pytest.fixture(scope="module")
def churn_slice(raw):
    params = validate_params({"source": str(CHURN_DIR), "mapping": str(CHURN_MAPPING), "region": "all",
                              "period": "2018"})
    return data.open_slice(params)


@pytest.fixture(scope="module")
def accounts(churn_slice) -> pd.DataFrame:
    return churn_slice.tables["accounts"]


def test_every_customer_is_an_accepted_account_and_nothing_is_rejected(churn_slice, accounts, raw):
    report = churn_slice.report
    assert (report.tables["accounts"].loaded, report.tables["accounts"].accepted) == (10_000, 10_000)
    assert report.tables["accounts"].rejected == 0 and report.ok
    assert len(accounts) == 10_000 and accounts["account_id"].tolist() == raw["CustomerId"].astype(str).tolist()
    assert set(churn_slice.tables["regions"]["region_id"]) == {"France", "Germany", "Spain"}
    assert churn_slice.info.tables == ("regions", "accounts"), "the other tables are absent"


def test_the_as_of_is_the_mappings_and_dates_derive_from_it(churn_slice, accounts, raw):
    assert churn_slice.as_of == AS_OF == data.data_as_of(churn_slice.con)
    tenure = raw["Tenure"].to_numpy()
    want = [AS_OF - pd.DateOffset(years=int(t)) - pd.Timedelta(days=1) for t in tenure]
    assert accounts["created_at"].tolist() == want
    assert (accounts["created_at"] < AS_OF).all()


def test_churned_count_equals_pandas_on_the_raw_csv(accounts, raw):
    churned = accounts["churned_at"].notna()
    assert churned.sum() == (raw["Exited"] == 1).sum() == 2_037
    assert (accounts.loc[churned, "churned_at"] == AS_OF - pd.Timedelta(days=1)).all()
    assert churned.tolist() == (raw["Exited"] == 1).tolist()


@pytest.mark.parametrize(("raw_column", "slice_column"), [("Geography", "region_id"), ("Gender", "gender")])
def test_churn_rate_by_segment_equals_pandas_on_the_raw_csv(accounts, raw, raw_column, slice_column):
    want = raw.groupby(raw_column)["Exited"].mean()
    got = accounts.assign(churned=accounts["churned_at"].notna()).groupby(slice_column)["churned"].mean()
    assert got.index.tolist() == want.index.tolist()
    assert got.to_numpy() == pytest.approx(want.to_numpy(), abs=1e-12)


def test_custom_fields_are_present_with_their_types(churn_slice, accounts, raw):
    assert data.custom_fields(churn_slice, "accounts") == {name: t for name, (_, t, _) in CUSTOM.items()}
    assert data.custom_fields(churn_slice, "regions") == {}
    assert churn_slice.custom_fields("accounts") == data.custom_fields(churn_slice, "accounts")
    for name, (source, _, dtype) in CUSTOM.items():
        assert str(accounts[name].dtype) == dtype, name
        values = accounts[name].astype("float64") if dtype in ("Int64", "boolean") else accounts[name]
        assert values.tolist() == raw[source].tolist(), name
    assert list(accounts.columns[: len(SCHEMA["accounts"].columns)]) == list(SCHEMA["accounts"].column_names)


def test_surnames_are_not_kept(accounts, raw):
    surnames = set(raw["Surname"])
    text_columns = [c for c in accounts.columns if str(accounts[c].dtype) == "string"]
    assert not any(accounts[c].isin(surnames).any() for c in text_columns)


def test_cli_validate_reports_clean_with_absent_tables(capsys, raw):
    from crmlens.cli import main

    code = main(["validate", "--source", str(CHURN_DIR), "--mapping", str(CHURN_MAPPING)])
    out = capsys.readouterr().out
    assert code == 0 and "OK: every table can be used." in out
    assert "custom fields kept: credit_score (integer), gender (category)" in out
    for line in out.splitlines():
        if line.startswith(("contracts ", "opportunities ", "reps ")):
            assert line.rstrip().endswith("absent")



# ------------------------------------------------------------------------ customer health on the bank customers

def test_recorded_churn_by_segment_equals_pandas(churn_slice, raw):
    from crmlens import notebook as nb
    from crmlens.metrics import health

    ctx = nb.context(churn_slice)
    overall = health.recorded_churn(churn_slice)
    assert overall["n_customers"].item() == 10_000 and overall["n_churned"].item() == int(raw["Exited"].sum())
    for by, column in (("country", "Geography"), ("gender", "Gender")):
        mine = health.recorded_churn(churn_slice, by).set_index("segment")["churn_rate"].sort_index()
        theirs = raw.groupby(column)["Exited"].mean().sort_index()
        assert mine.to_dict() == pytest.approx(theirs.to_dict(), abs=1e-12), by
    fields = health.recorded_churn_by_fields(churn_slice, ctx=ctx)
    active = fields[fields["field"] == "is_active_member"].set_index("segment")["churn_rate"]
    theirs = raw.groupby(raw["IsActiveMember"].map({1: "yes", 0: "no"}))["Exited"].mean()
    assert active.sort_index().to_dict() == pytest.approx(theirs.sort_index().to_dict())
    assert "Germany loses most customers" in health.describe_recorded_churn(
        health.recorded_churn(churn_slice, "country")).text


def test_churn_model_cross_validated_auc_and_named_drivers(churn_slice):
    from crmlens.metrics import customers, health

    model = health.churn_model(churn_slice, customers.purchase_history(churn_slice))
    assert model.ok and model.validation == "cv", "no churn dates: cross-validated, not time-based"
    assert model.auc >= 0.85
    top = set(model.importance["feature"].head(3))
    assert {"age", "n_products"} <= top  # the well-known drivers of this dataset
    text = health.describe_churn_model(model).text
    assert "ROC AUC 0.8" in text and "age" in text
    assert model.scores["risk"].between(0, 1).all() and len(model.scores) == 10_000 - 2_037
