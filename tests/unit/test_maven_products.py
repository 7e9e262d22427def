"""The product analysis on the Maven CRM export (params/sources/maven_crm.yaml), checked against an independent
pandas reading of the raw CSVs: won revenue and win rate per product and per series (the mapping's product line)
equal what `crmlens.metrics.products.cycle_and_win_rate` computes on the mapped, validated source."""

from __future__ import annotations

import pandas as pd
import pytest

from crmlens import data, params
from crmlens.metrics import products as pr
from tests.conftest import MAVEN_MAPPING

pytestmark = [pytest.mark.realdata]

#: Every close date of the export (2017-03..2017-12) falls in it.
WHOLE_EXPORT = "2016-01-01..2017-12-31"


def raw_results(maven_dir, by: str) -> pd.DataFrame:
    """Closed deals, won deals, won revenue and win rate per product ("product") or series ("series"), from the CSVs
    alone: a deal is closed when its stage is Won or Lost, won when Won; its revenue is close_value."""
    pipeline = pd.read_csv(maven_dir / "sales_pipeline.csv")
    products = pd.read_csv(maven_dir / "products.csv")
    pipeline["product"] = pipeline["product"].replace({"GTXPro": "GTX Pro"})  # the spelling products.csv uses
    closed = pipeline[pipeline["deal_stage"].isin(["Won", "Lost"])].merge(products, on="product", how="left")
    closed["won"] = closed["deal_stage"].eq("Won")
    closed["won_value"] = closed["close_value"].where(closed["won"], 0.0)
    g = closed.groupby(by)
    out = pd.DataFrame({"n_closed": g.size(), "n_won": g["won"].sum(), "won_amount": g["won_value"].sum()})
    out["win_rate"] = out["n_won"] / out["n_closed"]
    return out.sort_index()


@pytest.fixture(scope="module")
def maven_slice(maven_dir):
    values = {"source": str(maven_dir), "mapping": str(MAVEN_MAPPING), "region": "all", "period": WHOLE_EXPORT}
    return data.open_slice(params.validate_params(values))


@pytest.mark.parametrize(("by", "raw_by"), [("product_id", "product"), ("product_line", "series")])
def test_won_revenue_and_win_rate_match_the_raw_csvs(maven_dir, maven_slice, by, raw_by):
    expected = raw_results(maven_dir, raw_by)
    got = pr.cycle_and_win_rate(maven_slice, by=by).set_index(by).sort_index()
    assert got.index.tolist() == expected.index.tolist()
    assert got["n_closed"].tolist() == expected["n_closed"].tolist()
    assert got["n_won"].tolist() == expected["n_won"].tolist()
    assert got["won_amount"].to_numpy() == pytest.approx(expected["won_amount"].to_numpy())
    assert got["win_rate"].to_numpy() == pytest.approx(expected["win_rate"].to_numpy())


def test_sections_without_their_tables_say_so(maven_slice):
    assert maven_slice.missing("contracts", "tickets") == ["contracts", "tickets"]
    assert pr.contribution_of(maven_slice) is None and pr.feedback_of(maven_slice) is None
