"""Products: contribution and margin, cross-sell affinity, complaint hotspots, sales cycle and the headline KPIs on
hand-computed fixtures, their failure modes (no products table, one product, no costs), and the demo's planted
cross-sell pattern, thin-margin line and Edge complaint hotspot recovered through the slice-level analyses the
notebook calls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmlens import data, params
from crmlens.errors import ParameterError
from crmlens.kpis import KpiContext
from crmlens.metrics import products as pr
from crmlens.truths import CROSS_SELL, RISING_COMPLAINTS, THIN_MARGIN

T = pd.Timestamp
Q1 = KpiContext(period_start=T("2026-01-01"), period_end=T("2026-04-01"), region="all", period_label="2026-Q1",
                as_of=T("2026-04-01"))


def ts(values):
    return pd.to_datetime(pd.Series(values), format="ISO8601").astype("datetime64[us]")


PRODUCTS = pd.DataFrame({"product_id": ["P1", "P2", "P3"], "name": ["Core One", "Cloud One", "Insight One"],
                         "product_line": ["Core", "Cloud", "Insight"], "category": ["platform", "saas", "analytics"],
                         "unit_cost": [250.0, 300.0, 100.0]})


def contracts(rows):
    """rows: (contract_id, account_id, product_id, signed_at, quantity, amount, cost_amount)."""
    frame = pd.DataFrame(rows, columns=["contract_id", "account_id", "product_id", "signed_at", "quantity", "amount",
                                        "cost_amount"])
    frame["signed_at"] = ts(frame["signed_at"])
    return frame.astype({"cost_amount": "float64", "amount": "float64", "quantity": "float64"})


PERIOD = contracts([("k1", "a1", "P1", "2026-01-10", 2, 1000, 400), ("k2", "a2", "P2", "2026-02-01", 1, 500, None),
                    ("k3", "a3", "P1", "2026-03-01", 1, 500, 100)])


# ------------------------------------------------------------------------------------------- contribution

def test_contribution_by_hand():
    before = {"contracts": contracts([("c1", "a1", "P1", "2025-11-01", 1, 1000, 0), ("c2", "a2", "P2", "2025-12-01",
                                                                                        1, 1000, 0)])}
    last_year = {"contracts": contracts([("y1", "a1", "P1", "2025-02-01", 1, 750, 0)])}
    out = pr.contribution(PERIOD, PRODUCTS, comparison=before, last_year=last_year)
    assert out["product_line"].tolist() == ["Core", "Cloud"]  # most revenue first
    core, cloud = out.set_index("product_line").loc["Core"], out.set_index("product_line").loc["Cloud"]
    # Core: 1000 + 500 revenue, 400 + 100 recorded cost; Cloud: no recorded cost, so 1 × unit_cost 300
    assert core[["n_contracts", "n_units", "revenue_amount", "cost_of_sales_amount", "margin_amount"]].tolist() == [
        2, 3.0, 1500.0, 500.0, 1000.0]
    assert cloud[["revenue_amount", "cost_of_sales_amount", "margin_amount"]].tolist() == [500.0, 300.0, 200.0]
    assert core["margin_rate"] == pytest.approx(2 / 3) and cloud["margin_rate"] == pytest.approx(0.4)
    assert core["revenue_share"] == 0.75 and core["margin_share"] == pytest.approx(1000 / 1200)
    assert core["revenue_growth"] == 0.5 and cloud["revenue_growth"] == -0.5
    assert core["revenue_yoy"] == 1.0 and pd.isna(cloud["revenue_yoy"])  # nothing a year ago: no growth, not ∞
    assert out.attrs["cost_basis"] == "mixed"
    assert "or `products.unit_cost` × quantity" in pr.cost_basis_note(out)


def test_contribution_by_product_and_category():
    by_product = pr.contribution(PERIOD, PRODUCTS, "product_id")
    assert by_product.columns[:3].tolist() == ["product_id", "name", "product_line"]
    assert by_product["product_id"].tolist() == ["P1", "P2"]
    by_category = pr.contribution(PERIOD, PRODUCTS, "category")
    assert by_category.set_index("category")["revenue_amount"].to_dict() == {"platform": 1500.0, "saas": 500.0}


def test_no_costs_means_no_margin_not_zero():
    bare = PERIOD.assign(cost_amount=np.nan)
    no_unit_cost = PRODUCTS.drop(columns="unit_cost")
    out = pr.contribution(bare, no_unit_cost)
    assert out["margin_amount"].isna().all() and out["margin_rate"].isna().all()
    assert out.attrs["cost_basis"] is None
    assert pr.cost_basis_note(out).startswith("Margin is not in this source")
    assert pr.describe_contribution(out).text == "Core brings the most revenue (75.0% of 2,000)."  # revenue only
    frames = {"contracts": bare, "products": no_unit_cost}
    assert pr.kpi_gross_margin(frames, Q1) is None and pr.kpi_margin_rate(frames, Q1) is None


def test_no_products_table():
    with pytest.raises(ParameterError, match="products"):
        pr.contribution(PERIOD, None)
    out = pr.contribution(PERIOD, None, "product_id")  # by product needs no products table
    assert out["product_id"].tolist() == ["P1", "P2"] and out.attrs["cost_basis"] == "cost_amount"


def test_one_product_says_nothing_comparative():
    one = pr.contribution(PERIOD[PERIOD["product_id"] == "P1"], PRODUCTS)
    assert len(one) == 1 and pr.describe_contribution(one) is None and pr.describe_growth(one) is None


def test_thin_margin_finding_names_the_large_line_with_the_lowest_rate():
    result = pd.DataFrame({"product_line": ["Core", "Cloud", "Insight", "Edge"],
                           "revenue_amount": [400.0, 300.0, 200.0, 100.0],
                           "revenue_share": [0.4, 0.3, 0.2, 0.1], "margin_rate": [0.8, 0.3, 0.75, 0.4],
                           "margin_share": [0.5, 0.14, 0.24, 0.06]})
    result.attrs["by"] = "product_line"
    found = pr.describe_contribution(result)
    assert found.severity == "act" and "Cloud is among the two largest lines by revenue (30.0% of it)" in found.text
    assert "30.0% against 57.5% for the median line" in found.text
    equal = result.assign(margin_rate=0.5)  # equal rates are not ranked
    assert "margin" not in pr.describe_contribution(equal).text


# ----------------------------------------------------------------------------------------- cross-sell

def test_deal_type_results_by_hand():
    opps = pd.DataFrame({
        "opportunity_id": ["o1", "o2", "o3", "o4", "o5", "o6"],
        "deal_type": ["new", "new", "cross_sell", "cross_sell", "upsell", "cross_sell"],
        "amount": [100.0, 200.0, 50.0, 150.0, 80.0, 999.0], "is_won": [True, False, True, True, False, True],
        "closed_at": ts(["2026-01-05", "2026-02-01", "2026-02-03", "2026-03-01", "2026-03-03", "2025-12-01"])})
    out = pr.deal_type_results(opps, ctx=Q1).set_index("deal_type")
    assert out.index.tolist() == ["new", "upsell", "cross_sell"]  # o6 closed before the period
    assert out["win_rate"].tolist() == [0.5, 0.0, 1.0]
    assert out["bookings_share"].tolist() == pytest.approx([100 / 300, 0.0, 200 / 300])
    assert pr.kpi_cross_sell_win_rate({"opportunities": opps}, Q1) == pytest.approx(2 / 3)
    assert pr.kpi_expansion_bookings_share({"opportunities": opps}, Q1) == pytest.approx(200 / 300)
    assert pr.kpi_cross_sell_win_rate({"opportunities": opps.iloc[:2]}, Q1) is None  # no such deal: no rate
    found = pr.describe_deal_types(out.reset_index(), min_closed=2)
    assert found.text == ("Selling more to existing customers (cross-sell and upsell) wins 66.7% of 3 deals closed, "
                          "against 50.0% for new business; it brings 66.7% of the bookings.")


SEQUENCES = contracts([
    ("k1", "a1", "P1", "2024-01-01", 1, 1, 0), ("k2", "a1", "P2", "2024-06-01", 1, 1, 0),  # Core → Cloud
    ("k3", "a2", "P1", "2024-01-01", 1, 1, 0), ("k4", "a2", "P1", "2024-03-01", 1, 1, 0),
    ("k5", "a2", "P2", "2024-09-01", 1, 1, 0),  # Core, Core again, then Cloud
    ("k6", "a3", "P1", "2024-01-01", 1, 1, 0), ("k7", "a3", "P3", "2024-02-01", 1, 1, 0),  # Core → Insight
    ("k8", "a4", "P2", "2024-05-01", 1, 1, 0), ("k9", "a4", "P1", "2024-01-01", 1, 1, 0),  # signed first: Core
    ("k10", "a5", "P3", "2024-01-01", 1, 1, 0)])  # one line only


def test_purchase_sequences_and_affinity_by_hand():
    seq = pr.purchase_sequences(SEQUENCES, PRODUCTS).set_index("account_id")
    assert seq["first_line"].tolist() == ["Core", "Core", "Core", "Core", "Insight"]
    assert seq["next_line"].iloc[:4].tolist() == ["Cloud", "Cloud", "Insight", "Cloud"] and pd.isna(seq.at["a5",
                                                                                                         "next_line"])
    out = pr.affinity(seq.reset_index())
    pairs = out.set_index(["first_line", "next_line"])
    # four accounts went on: three to Cloud, one to Insight, all first buying Core
    assert pairs.loc[("Core", "Cloud"), ["n_pair_accounts", "n_first_accounts"]].tolist() == [3, 4]
    assert pairs.loc[("Core", "Cloud"), "support"] == 0.75 and pairs.loc[("Core", "Cloud"), "confidence"] == 0.75
    assert pairs.loc[("Core", "Cloud"), "lift"] == 1.0  # everyone who went on was a Core customer: no lift
    assert pr.describe_affinity(out, min_accounts=1) is None  # equal lifts are not ranked


def test_lift_by_hand_and_the_finding():
    more = pd.concat([SEQUENCES, contracts([("m1", "b1", "P2", "2024-01-01", 1, 1, 0),
                                            ("m2", "b1", "P3", "2024-04-01", 1, 1, 0)])], ignore_index=True)
    out = pr.affinity(pr.purchase_sequences(more, PRODUCTS)).set_index(["first_line", "next_line"])
    # five went on: Core→Cloud 3, Core→Insight 1, Cloud→Insight 1; P(next = Cloud) = 3/5
    assert out.loc[("Core", "Cloud"), "lift"] == pytest.approx((3 / 4) / (3 / 5))
    assert out.loc[("Cloud", "Insight"), "lift"] == pytest.approx(1.0 / (2 / 5))
    found = pr.describe_affinity(out.reset_index(), min_accounts=2, min_lift=1.2)
    assert found.text.startswith("Customers whose first purchase was Core buy Cloud next in 75.0% of cases (3 of 4")


def test_best_next_line_per_segment_lists_ties_together():
    accounts = pd.DataFrame({"account_id": ["a1", "a2", "a3", "a4", "a5"],
                             "size_band": ["small", "small", "large", "large", "large"]})
    seq = pr.purchase_sequences(SEQUENCES, PRODUCTS)
    out = pr.best_next_line(seq, accounts, "size_band", min_accounts=1).set_index("segment")
    assert out.loc["small", "next_line"] == "Cloud" and out.loc["small", "confidence"] == 1.0
    assert out.loc["large", "next_line"] == "Cloud, Insight" and pd.isna(out.loc["large", "lift"])


# ---------------------------------------------------------------------------------------- feedback

def test_complaint_trend_fills_empty_quarters_and_drops_the_open_one():
    tickets = pd.DataFrame({"ticket_id": ["t1", "t2", "t3", "t4"], "product_id": ["P1", "P1", "P2", "P1"],
                            "category": ["complaint", "complaint", "complaint", "question"],
                            "opened_at": ts(["2025-10-05", "2026-01-10", "2026-02-01", "2026-02-02"])})
    out = pr.complaint_trend(tickets, PRODUCTS, until=T("2026-05-15"), quarters=3)  # 2026-Q2 not complete
    assert out["period"].unique().tolist() == ["2025-Q3", "2025-Q4", "2026-Q1"]
    core = out[out["product_line"] == "Core"]["n_tickets"].tolist()
    assert core == [0, 1, 1]  # the question does not count; an empty quarter is a zero


def _trend(counts: dict[str, list[int]]) -> pd.DataFrame:
    rows = [{"period": f"q{i}", "product_line": line, "n_tickets": n} for line, values in counts.items()
            for i, n in enumerate(values)]
    out = pd.DataFrame(rows)
    out.attrs["by"] = "product_line"
    return out


def test_hotspot_trend_test():
    trend = _trend({"Edge": [10, 14, 19, 27, 38, 52], "Core": [30, 28, 31, 29, 30, 31]})
    out = pr.complaint_hotspots(trend).set_index("product_line")
    assert out.index.tolist() == ["Edge", "Core"] and out["is_hotspot"].tolist() == [True, False]
    assert out.loc["Edge", "complaint_growth"] == pytest.approx(0.38, abs=0.03)  # the counts grow ~38% a step
    assert out.loc["Edge", "trend_p_value"] < 1e-6 and out.loc["Core", "trend_p_value"] > 0.1
    text = pr.describe_hotspots(out.reset_index().rename_axis(None).pipe(_keep_attrs, out)).text
    assert text.startswith("Complaint hotspot: complaints about Edge rose from 10 to 52 a quarter over q0–q5")
    calm = pr.complaint_hotspots(_trend({"Edge": [10, 11, 9, 10, 10, 11], "Core": [30, 28, 31, 29, 30, 31]}))
    assert not calm["is_hotspot"].any()
    assert pr.describe_hotspots(calm).text == "No product line's complaints rise significantly over q0–q5."
    few = pr.complaint_hotspots(_trend({"Edge": [0, 0, 1, 0, 1, 2]}))  # too few complaints to test
    assert pd.isna(few.loc[0, "trend_p_value"]) and pr.describe_hotspots(few) is None


def _keep_attrs(frame: pd.DataFrame, source: pd.DataFrame) -> pd.DataFrame:
    frame.attrs.update(source.attrs)
    return frame


def test_ticket_rate_test_by_hand():
    tickets = pd.DataFrame({"ticket_id": [f"t{i}" for i in range(40)], "product_id": ["P1"] * 30 + ["P2"] * 10,
                            "category": ["complaint"] * 5 + ["question"] * 35,
                            "opened_at": ts(["2026-02-01"] * 40)})
    history = contracts([(f"k{i}", f"a{i}", "P1" if i < 10 else "P2", "2025-01-01", 1, 1, 0) for i in range(110)])
    out = pr.ticket_load(tickets, PRODUCTS, ctx=Q1, contracts=history).set_index("product_line")
    assert out.loc["Core", ["n_tickets", "n_complaints", "n_customers"]].tolist() == [30, 5, 10]
    assert out.loc["Core", "tickets_per_customer"] == 3.0 and out.loc["Cloud", "tickets_per_customer"] == 0.1
    assert out.loc["Core", "rate_ratio"] == pytest.approx(30.0) and out.loc["Core", "rate_p_value"] < 1e-10
    assert out.loc["Cloud", "rate_p_value"] == 1.0
    load = out.reset_index()
    hot = pr.complaint_hotspots(_trend({"Core": [1, 2, 1, 2, 1, 2], "Cloud": [1, 1, 2, 1, 1, 2]}), load)
    assert hot.set_index("product_line")["is_high_rate"].to_dict() == {"Core": True, "Cloud": False}
    assert "Core draws 30.0 times the tickets per customer of the other product lines" in pr.describe_hotspots(hot).text


# --------------------------------------------------------------------------------------- sales cycle

def test_cycle_and_win_rate_by_hand():
    opps = pd.DataFrame({
        "opportunity_id": ["o1", "o2", "o3", "o4", "o5"], "product_id": ["P1", "P1", "P1", "P2", "P2"],
        "amount": [100.0, 300.0, 50.0, 80.0, 10.0], "is_won": [True, True, False, True, True],
        "created_at": ts(["2026-01-01", "2026-01-01", "2026-01-01", "2026-02-01", "2025-01-01"]),
        "closed_at": ts(["2026-01-11", "2026-01-31", "2026-02-01", "2026-02-06", "2025-02-01"])})
    out = pr.cycle_and_win_rate(opps, PRODUCTS, ctx=Q1).set_index("product_line")
    assert out.index.tolist() == ["Core", "Cloud"]  # o5 closed a year earlier
    assert out.loc["Core", "win_rate"] == pytest.approx(2 / 3) and out.loc["Core", "won_amount"] == 400.0
    assert out.loc["Core", "won_cycle_days"] == 20.0 and out.loc["Cloud", "won_cycle_days"] == 5.0
    found = pr.describe_cycle(out.reset_index().pipe(_keep_attrs, out), min_won=1)
    assert found.text.startswith("Core takes longest to sell (median 20")
    assert pr.describe_cycle(out.reset_index().pipe(_keep_attrs, out), min_won=1, min_gap_days=30) is None


def test_complaint_kpi_counts_zero_only_when_the_table_is_there():
    tickets = pd.DataFrame({"ticket_id": ["t1", "t2"], "product_id": ["P1", "P1"], "category": ["complaint", "x"],
                            "opened_at": ts(["2026-01-05", "2025-01-05"])})
    assert pr.kpi_complaint_tickets({"tickets": tickets}, Q1) == 1.0
    assert pr.kpi_complaint_tickets({"tickets": tickets.iloc[1:]}, Q1) == 0.0
    assert pr.kpi_complaint_tickets({}, Q1) is None


# ------------------------------------------------------------------------------------- planted truths

def _slice(folder, region="all"):
    values = {"source": str(folder), "region": region, "period": "2026-Q3", "as_of": "2026-10-01"}
    return data.open_slice(params.validate_params(values), data.connect(folder))


@pytest.mark.parametrize("seed", [7, 11])
def test_planted_cross_sell_is_found(demo_folder, seed):
    s = _slice(demo_folder("tiny", seed))
    out = pr.next_line_affinity(s)
    rated = out[out["n_pair_accounts"] >= pr.MIN_PAIR_ACCOUNTS]
    top = rated.iloc[0]
    assert (top["first_line"], top["next_line"]) == (CROSS_SELL.first_line, CROSS_SELL.next_line)
    assert top["lift"] >= CROSS_SELL.min_lift
    assert pr.describe_affinity(out).text.startswith(
        f"Customers whose first purchase was {CROSS_SELL.first_line} buy {CROSS_SELL.next_line} next")


@pytest.mark.parametrize("seed", [7, 11])
def test_planted_thin_margin_is_found(demo_folder, seed):
    s = _slice(demo_folder("tiny", seed))
    history = s.history("contracts", 16)  # four years of contracts: the truth holds over them
    out = pr.contribution(history, s.tables["products"]).set_index("product_line")
    assert THIN_MARGIN.line in out.index[:2]
    assert out["margin_rate"].idxmin() == THIN_MARGIN.line
    assert out.loc[THIN_MARGIN.line, "margin_rate"] == pytest.approx(THIN_MARGIN.margin_rate, abs=0.05)
    found = pr.describe_contribution(out.reset_index().pipe(_keep_attrs, out))
    assert found.severity == "act" and f"{THIN_MARGIN.line} is among the two largest lines" in found.text


@pytest.mark.parametrize("seed", [7, 11])
def test_planted_edge_complaints_are_the_hotspot(demo_folder, seed):
    s = _slice(demo_folder("tiny", seed))
    out = pr.hotspots_of(s)
    assert out.loc[out["is_rising"], "product_line"].tolist() == [RISING_COMPLAINTS.product_line]
    edge = out.iloc[0]
    assert edge["product_line"] == RISING_COMPLAINTS.product_line and edge["trend_p_value"] < pr.ALPHA
    assert edge["last_quarter_complaints"] > 2 * edge["first_quarter_complaints"]
    assert f"complaints about {RISING_COMPLAINTS.product_line} rose" in pr.describe_hotspots(out).text
