"""Sales performance metrics: hand-computed fixtures, failure modes, planted truths, Maven cross-check."""

from __future__ import annotations

import pandas as pd
import pytest

from crmlens import data, kpis, params
from crmlens.errors import ParameterError
from crmlens.kpis import KpiContext
from crmlens.metrics import performance as perf
from crmlens.truths import Q4_SEASONALITY, TEAM_BELOW_TARGET

T = pd.Timestamp
Q3 = KpiContext(period_start=T("2026-07-01"), period_end=T("2026-10-01"), as_of=T("2026-08-16"),
                period_label="2026-Q3")  # 46 of 92 days elapsed: elapsed share 0.5
Q2 = KpiContext(period_start=T("2026-04-01"), period_end=T("2026-07-01"), as_of=T("2026-08-16"),
                period_label="2026-Q2")


def _ctx(base: KpiContext = Q3, **kw) -> KpiContext:
    return KpiContext(**{"period_start": base.period_start, "period_end": base.period_end, "region": base.region,
                         "as_of": base.as_of, "period_label": base.period_label, **kw})


def _frame(rows: list[tuple], columns: str, times: str = "", floats: str = "", bools: str = "") -> pd.DataFrame:
    cols = columns.split()
    frame = pd.DataFrame(rows, columns=cols)
    for c in cols:
        if c in times.split():
            frame[c] = pd.to_datetime(frame[c]).astype("datetime64[us]")
        elif c in floats.split():
            frame[c] = frame[c].astype("float64")
        elif c in bools.split():
            frame[c] = frame[c].astype("boolean")
        else:
            frame[c] = frame[c].astype("string")
    return frame


N = None


def tables() -> dict[str, pd.DataFrame]:
    """A tiny company: 2 regions, 2 teams, 3 reps, 2 products, 3 accounts, 8 opportunities, 3 contracts."""
    opportunities = _frame([
        ("O1", "A1", "R1", "P1", "East", "2026-06-01", "2026-07-11", 100.0, True),
        ("O2", "A2", "R2", "P2", "East", "2026-07-01", "2026-07-21", 300.0, True),
        ("O3", "A3", "R3", "P1", "West", "2026-05-02", "2026-08-10", 200.0, True),
        ("O4", N, "R3", "P2", "West", N, "2026-08-20", 400.0, True),
        ("O5", "A1", "R1", "P1", "East", "2026-07-01", "2026-07-15", 500.0, False),
        ("O6", "A2", "R2", "P2", "East", "2026-07-05", N, 50.0, N),
        ("O7", "A1", "R1", "P1", "East", "2026-01-01", "2026-04-10", 1000.0, True),
        ("O8", "A3", "R3", "P1", "West", "2025-06-01", "2025-07-10", 150.0, True),
    ], "opportunity_id account_id owner_rep_id product_id region_id created_at closed_at amount is_won",
        times="created_at closed_at", floats="amount", bools="is_won")
    targets = pd.DataFrame(
        [("2026-Q3", "company", "company", 2000.0, 10), ("2026-Q3", "region", "East", 1000.0, 4),
         ("2026-Q3", "region", "West", 1200.0, 6), ("2026-Q3", "team", "T1", 800.0, 4),
         ("2026-Q3", "team", "T2", 1500.0, 6), ("2026-Q3", "rep", "R1", 400.0, 2), ("2026-Q3", "rep", "R2", 400.0, 2),
         ("2026-Q3", "rep", "R3", 1500.0, 6), ("2026-Q3", "product_line", "Core", 1000.0, 5),
         ("2026-Q3", "product_line", "Cloud", 1000.0, 5), ("2026-07", "company", "company", 500.0, 3),
         ("2026-08", "company", "company", 700.0, 3), ("2026-09", "company", "company", 800.0, 4),
         ("2025-Q3", "company", "company", 100.0, 1)],
        columns=["period", "level", "key", "target_amount", "n_target_deals"],
    ).astype({"period": "string", "level": "string", "key": "string", "n_target_deals": "Int64"})
    return {
        "opportunities": opportunities,
        "targets": targets,
        "regions": _frame([("East", "East China"), ("West", "West China")], "region_id name"),
        "teams": _frame([("T1", "East", "Team One"), ("T2", "West", "Team Two")], "team_id region_id name"),
        "reps": _frame([("R1", "T1", "East", "Ann"), ("R2", "T1", "East", "Bo"), ("R3", "T2", "West", "Cy")],
                       "rep_id team_id region_id name"),
        "products": _frame([("P1", "Core", "Core S"), ("P2", "Cloud", "Cloud S")], "product_id product_line name"),
        "accounts": _frame([("A1", "Acme", "small", "Retail", "East", "2026-07-02"),
                            ("A2", "Bolt", "large", "Energy", "East", "2026-03-01"),
                            ("A3", "Cato", "small", "Retail", "West", "2026-08-01")],
                           "account_id name size_band industry region_id created_at", times="created_at"),
        "contacts": _frame([("C1", "A1", "2026-07-04"), ("C2", "A3", "2026-07-05"), ("C3", "A2", "2026-04-02")],
                           "contact_id account_id created_at", times="created_at"),
        "leads": _frame([("L1", "East", "2026-07-03"), ("L2", "West", "2026-08-05"), ("L3", "East", "2026-05-01")],
                        "lead_id region_id created_at", times="created_at"),
        "contracts": _frame([("K1", "O1", "A1", "R1", "P1", "2026-07-12", 100.0),
                             ("K2", "O2", "A2", "R2", "P2", "2026-07-22", 300.0),
                             ("K3", "O7", "A1", "R1", "P1", "2026-04-11", 1000.0)],
                            "contract_id opportunity_id account_id owner_rep_id product_id signed_at amount",
                            times="signed_at", floats="amount"),
        "invoices": _frame([("I1", "K1", "2026-07-13", 100.0), ("I2", "K2", "2026-07-23", 150.0),
                            ("I3", "K3", "2026-04-12", 1000.0)], "invoice_id contract_id issued_at amount",
                           times="issued_at", floats="amount"),
        "payments": _frame([("Y1", "K1", "2026-07-30", 100.0), ("Y2", "K2", "2026-08-15", 100.0),
                            ("Y3", "K3", "2026-07-05", 600.0), ("Y4", "K2", "2026-10-05", 50.0)],
                           "payment_id contract_id received_at amount", times="received_at", floats="amount"),
    }


def _by_key(result: pd.DataFrame, column: str = "key") -> pd.DataFrame:
    return result.set_index(column)


# ------------------------------------------------------------------------------------- attainment

def test_target_labels_for_quarters_months_and_ranges():
    targets = tables()["targets"]
    assert perf.target_periods(targets, T("2026-07-01"), T("2026-10-01"), "2026-Q3") == ["2026-Q3"]
    assert perf.target_periods(targets, T("2026-07-01"), T("2026-09-01"), "2026-07-01..2026-08-31") == [
        "2026-07", "2026-08"]
    assert perf.target_periods(targets, T("2026-07-06"), T("2026-07-13"), "2026-W28") == []
    assert perf.target_periods(targets, T("2026-01-01"), T("2027-01-01"), "2026") == []  # only Q3 is planned


def test_company_attainment_and_on_track():
    got = perf.target_attainment(tables()["opportunities"], tables(), Q3, "company").iloc[0]
    assert (got["bookings_amount"], got["n_won"], got["target_amount"]) == (1000.0, 4, 2000.0)
    assert got["attainment_rate"] == 0.5 and got["deal_attainment_rate"] == 0.4
    assert got["elapsed_rate"] == 0.5 and got["gap_amount"] == 1000.0
    assert bool(got["is_on_track"]) is True  # 50% done with 50% elapsed


@pytest.mark.parametrize(("level", "expected"), [
    ("region", {"East": 0.4, "West": 0.5}),
    ("team", {"T1": 0.5, "T2": 0.4}),
    ("rep", {"R1": 0.25, "R2": 0.75, "R3": 0.4}),
    ("product_line", {"Core": 0.3, "Cloud": 0.7}),
])
def test_attainment_per_level(level, expected):
    got = _by_key(perf.target_attainment(tables()["opportunities"], tables(), Q3, level))
    assert got["attainment_rate"].to_dict() == pytest.approx(expected)
    assert got["is_on_track"].astype(bool).to_dict() == {k: v >= 0.5 for k, v in expected.items()}


def test_attainment_names_and_sentence():
    result = perf.target_attainment(tables()["opportunities"], tables(), Q3, "team")
    assert result["name"].tolist() == ["Team Two", "Team One"]  # worst first
    text = perf.describe_attainment(result).text
    assert text.startswith("Team Two is furthest behind: 40% of its target with 50% of the period elapsed")
    assert "1 of 2 are on track" in text


def test_attainment_in_a_region_slice():
    frames = tables()
    east = frames["opportunities"][frames["opportunities"]["region_id"] == "East"]
    ctx = _ctx(region="East")
    company = perf.target_attainment(east, frames, ctx, "company").iloc[0]
    assert (company["key"], company["target_amount"], company["attainment_rate"]) == ("East", 1000.0, 0.4)
    assert perf.describe_attainment(perf.target_attainment(east, frames, ctx, "company")).text.startswith(
        "East China: bookings of 400 are 40% of the target (1,000) with 50% of the period elapsed: behind. 2 deals "
        "won of 4 targeted.")
    assert perf.target_attainment(east, frames, ctx, "team")["key"].tolist() == ["T1"]
    assert perf.target_attainment(east, frames, ctx, "rep")["key"].tolist() == ["R1", "R2"]
    lines = perf.target_attainment(east, frames, ctx, "product_line")
    assert lines.empty and "whole company" in perf.note(lines)


def test_attainment_of_a_range_sums_the_months():
    ctx = KpiContext(T("2026-07-01"), T("2026-09-01"), as_of=T("2026-10-01"), period_label="2026-07-01..2026-08-31")
    got = perf.target_attainment(tables()["opportunities"], tables(), ctx).iloc[0]
    assert got["target_amount"] == 1200.0 and got["bookings_amount"] == 1000.0 and got["elapsed_rate"] == 1.0
    assert perf.note(perf.target_attainment(tables()["opportunities"], tables(), ctx)) == \
        "Targets of 2026-07 + 2026-08."


def test_attainment_without_targets_says_so():
    week = KpiContext(T("2026-07-06"), T("2026-07-13"), period_label="2026-W28")
    result = perf.target_attainment(tables()["opportunities"], tables(), week)
    assert result.empty and "No targets for 2026-W28" in perf.note(result)
    assert perf.describe_attainment(result).text.startswith("No targets for 2026-W28")
    no_table = perf.target_attainment(tables()["opportunities"], {}, Q3)
    assert no_table.empty and "no targets table" in perf.note(no_table)


def test_attainment_without_as_of_has_no_on_track_flag():
    got = perf.target_attainment(tables()["opportunities"], tables(), _ctx(as_of=None)).iloc[0]
    assert pd.isna(got["elapsed_rate"]) and pd.isna(got["is_on_track"])


def test_attainment_with_no_deals_is_zero_not_missing():
    empty = tables()["opportunities"].iloc[0:0]
    got = perf.target_attainment(empty, tables(), Q3, "region")
    assert got["bookings_amount"].tolist() == [0.0, 0.0] and got["attainment_rate"].tolist() == [0.0, 0.0]


def test_unknown_level_names_the_parameter():
    with pytest.raises(ParameterError, match="level: 'division'"):
        perf.target_attainment(tables()["opportunities"], tables(), Q3, "division")


# ------------------------------------------------------------------------------- trends and seasonality

def test_quarterly_bookings_trend():
    trend = perf.bookings_trend(tables()["opportunities"], "quarter", targets=tables()["targets"])
    assert trend["period"].tolist() == ["2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3"]
    assert trend["bookings_amount"].tolist() == [150.0, 0.0, 0.0, 1000.0, 1000.0]
    assert trend["n_won"].tolist() == [1, 0, 0, 1, 4]
    last = trend.iloc[-1]
    assert last["target_amount"] == 2000.0 and last["attainment_rate"] == 0.5
    assert last["last_year_amount"] == 150.0 and last["previous_amount"] == 1000.0
    assert bool(last["is_partial"]) is True  # the data stops on 2026-08-20
    # a part of a quarter is not compared with whole quarters
    assert pd.isna(last["yoy_rate"]) and pd.isna(last["pop_rate"])
    assert trend.iloc[0]["attainment_rate"] == 1.5 and pd.isna(trend.iloc[0]["last_year_amount"])
    assert pd.isna(trend.iloc[1]["target_amount"])  # no target planned for 2025-Q4: NaN, not 0
    text = perf.describe_bookings_trend(trend).text
    assert text == ("2026-Q2: bookings 1,000 from 1 won deal. 2026-Q3 so far (the data covers it only in part): "
                    "bookings 1,000 from 4 won deals, 50% of its target.")


def test_monthly_trend_with_bounds_and_region_target():
    frames = tables()
    trend = perf.bookings_trend(frames["opportunities"], "month", targets=frames["targets"],
                                start=T("2026-07-01"), end=T("2026-10-01"))
    assert trend["period"].tolist() == ["2026-07", "2026-08", "2026-09"]
    assert trend["bookings_amount"].tolist() == [400.0, 600.0, 0.0]
    assert trend["target_amount"].tolist() == [500.0, 700.0, 800.0]
    assert not trend["is_partial"].any()
    quarter = perf.bookings_trend(frames["opportunities"], "quarter", targets=frames["targets"], region="West",
                                  start=T("2026-07-01"), end=T("2026-10-01"))
    assert quarter["target_amount"].tolist() == [1200.0]


@pytest.mark.parametrize(("freq", "first", "n"), [("day", "2025-07-10", 407), ("week", "2025-W28", 59),
                                                   ("year", "2025", 2)])
def test_trend_grains(freq, first, n):
    trend = perf.bookings_trend(tables()["opportunities"], freq, targets=tables()["targets"])
    assert trend["period"].iloc[0] == first and len(trend) == n
    assert trend["bookings_amount"].sum() == 2150.0
    if freq in ("day", "week"):
        assert trend["target_amount"].isna().all() and "none for weeks or days" in perf.note(trend)


def test_yearly_trend_sums_quarter_targets_only_when_complete():
    trend = perf.bookings_trend(tables()["opportunities"], "year", targets=tables()["targets"])
    assert trend["target_amount"].isna().all()  # neither year has all four quarters or twelve months planned


def test_trend_failure_modes():
    empty = tables()["opportunities"].iloc[0:0]
    result = perf.bookings_trend(empty, "month")
    assert result.empty and "No closed opportunities" in perf.note(result)
    assert perf.describe_bookings_trend(result).text == "No closed opportunities in the data."
    with pytest.raises(ParameterError, match="freq: 'fortnight'"):
        perf.bookings_trend(tables()["opportunities"], "fortnight")


def _quarters(values: dict[str, float]) -> pd.DataFrame:
    starts = [pd.Period(q.replace("-", ""), "Q").start_time for q in values]
    return pd.DataFrame({"period": list(values), "period_start": starts, "bookings_amount": list(values.values()),
                         "is_partial": False})


def test_quarterly_seasonality_and_sentence():
    trend = _quarters({"2024-Q1": 100, "2024-Q2": 200, "2024-Q3": 300, "2024-Q4": 400,
                       "2025-Q1": 100, "2025-Q2": 100, "2025-Q3": 100, "2025-Q4": 150, "2026-Q1": 999})
    result = perf.quarterly_seasonality(trend)
    assert result["year"].tolist() == [2024, 2025]  # 2026 is incomplete
    assert result["q4_ratio"].tolist() == [2.0, 1.5]
    assert perf.describe_seasonality(result).text == (
        "Q4 is the peak every year: bookings run at 1.8× the Q1–Q3 average (2024: 2.00×, 2025: 1.50×).")
    assert perf.describe_seasonality(result).recommendation == (
        "Plan pipeline, capacity and quarterly targets for the Q4 peak.")
    flat = perf.quarterly_seasonality(_quarters({"2024-Q1": 100, "2024-Q2": 100, "2024-Q3": 100, "2024-Q4": 100,
                                                 "2025-Q1": 100, "2025-Q2": 100, "2025-Q3": 100, "2025-Q4": 90}))
    assert perf.describe_seasonality(flat).text.startswith("No consistent Q4 peak")
    one = perf.quarterly_seasonality(_quarters({"2024-Q1": 100, "2024-Q2": 100, "2024-Q3": 100, "2024-Q4": 130}))
    assert "too little" in perf.describe_seasonality(one).text


def test_seasonality_failure_modes():
    assert perf.quarterly_seasonality(_quarters({})).empty
    one_quarter = perf.quarterly_seasonality(_quarters({"2024-Q1": 1.0}))
    assert perf.describe_seasonality(one_quarter).text.startswith("No complete")
    monthly = perf.bookings_trend(tables()["opportunities"], "month")
    with pytest.raises(ParameterError, match="quarterly_trend"):
        perf.quarterly_seasonality(monthly)


# -------------------------------------------------------------------------------------- deal size

def test_deal_size_by_product_line():
    result = perf.deal_size(tables()["opportunities"], Q3, "product_line", tables())
    assert result["product_line"].tolist() == ["Cloud", "Core"]
    assert result["avg_deal_amount"].tolist() == [350.0, 150.0]
    assert result["n_won"].tolist() == [2, 2] and result["bookings_share"].tolist() == [0.7, 0.3]
    assert perf.describe_deal_size(result).text == (
        "Average won deal 250; Cloud deals are the largest (350 on 2 deals), Core the smallest (150, 2.3× less).")


def test_deal_size_by_size_band_leaves_out_deals_without_account():
    result = perf.deal_size(tables()["opportunities"], Q3, "size_band", tables())
    assert _by_key(result, "size_band")["avg_deal_amount"].to_dict() == {"large": 300.0, "small": 150.0}
    assert result.attrs["n_excluded"] == 1 and perf.note(result) == "1 won deal without an account left out."
    assert perf.describe_deal_size(result).text.endswith("1 won deal without an account left out.")


def test_deal_size_by_industry_and_product_names():
    industry = perf.deal_size(tables()["opportunities"], Q3, "industry", tables())
    assert _by_key(industry, "industry")["n_won"].to_dict() == {"Energy": 1, "Retail": 2}
    product = perf.deal_size(tables()["opportunities"], Q3, "product", tables())
    assert product["name"].tolist() == ["Cloud S", "Core S"]


def test_deal_size_trend():
    trend = perf.deal_size_trend(tables()["opportunities"], "quarter", "product_line", tables())
    got = trend.set_index(["period", "product_line"])["avg_deal_amount"].to_dict()
    assert got == {("2025-Q3", "Core"): 150.0, ("2026-Q2", "Core"): 1000.0, ("2026-Q3", "Cloud"): 350.0,
                   ("2026-Q3", "Core"): 150.0}


def test_deal_size_failure_modes():
    empty = tables()["opportunities"].iloc[0:0]
    assert perf.deal_size(empty, Q3, "product_line", tables()).empty
    assert perf.describe_deal_size(perf.deal_size(empty, Q3, "all")).text == "No won deals in the period."
    assert perf.deal_size_trend(empty, "month", "all").empty
    with pytest.raises(ParameterError, match="by: 'colour'"):
        perf.deal_size(tables()["opportunities"], Q3, "colour", tables())
    with pytest.raises(ParameterError, match="by: 'size_band' needs table accounts"):
        perf.deal_size(tables()["opportunities"], Q3, "size_band", {})


def test_unknown_size_band_is_shown_not_dropped():
    frames = tables()
    accounts = frames["accounts"].assign(size_band=pd.array(["small", pd.NA, "small"], dtype="string"))
    result = perf.deal_size(frames["opportunities"], Q3, "size_band", {**frames, "accounts": accounts})
    assert set(result["size_band"]) == {"small", perf.UNKNOWN}


# ------------------------------------------------------------------------------------- sales cycle

def test_sales_cycle_overall_and_by_segment():
    overall = perf.sales_cycle(tables()["opportunities"], Q3)
    row = overall.iloc[0]
    assert (row["n_won"], row["median_cycle_days"]) == (3, 40.0)
    assert row["mean_cycle_days"] == pytest.approx(160 / 3)
    assert overall.attrs["n_excluded"] == 1 and perf.note(overall) == "1 won deal without a created date left out."
    product = perf.sales_cycle(tables()["opportunities"], Q3, "product", tables())
    assert _by_key(product, "product_id")["median_cycle_days"].to_dict() == {"P1": 70.0, "P2": 20.0}
    region = perf.sales_cycle(tables()["opportunities"], Q3, "region", tables())
    assert region["region_id"].tolist() == ["East", "West"]
    assert region["median_cycle_days"].tolist() == [30.0, 100.0]
    assert perf.describe_sales_cycle(region).text == ("West China deals take longest to win (median 100 days) and East "
                                                 "China the shortest (30 days), over 3 won deals. 1 won deal "
                                                 "without a created date left out.")


@pytest.mark.parametrize(("by", "expected"), [("rep", {"R1": 40.0, "R2": 20.0, "R3": 100.0}),
                                              ("team", {"T1": 30.0, "T2": 100.0}),
                                              ("size_band", {"small": 70.0, "large": 20.0})])
def test_sales_cycle_by_rep_team_size(by, expected):
    result = perf.sales_cycle(tables()["opportunities"], Q3, by, tables())
    assert _by_key(result, perf.SEGMENTS[by])["median_cycle_days"].to_dict() == expected


def test_sales_cycle_trend_and_sentence():
    trend = perf.sales_cycle_trend(tables()["opportunities"], "quarter", "all")
    assert trend["period"].tolist() == ["2025-Q3", "2026-Q2", "2026-Q3"]
    assert trend["median_cycle_days"].tolist() == [39.0, 99.0, 40.0]
    assert perf.describe_sales_cycle(perf.sales_cycle(tables()["opportunities"], Q3)).text.startswith(
        "Won deals took a median 40 days from creation to win (mean 53 days, middle half 30–70 days) over 3 deals.")


def test_sales_cycle_failure_modes():
    opps = tables()["opportunities"].assign(created_at=pd.NaT)
    result = perf.sales_cycle(opps, Q3)
    assert result.empty and result.attrs["n_excluded"] == 4
    assert perf.describe_sales_cycle(result).text == "4 won deals without a created date left out."
    with pytest.raises(ParameterError, match="freq: 'hour'"):
        perf.sales_cycle_trend(tables()["opportunities"], "hour")


# ----------------------------------------------------------------------- contracts, invoices, payments

def test_collections_summary():
    row = perf.collections_summary(tables(), Q3).iloc[0]
    assert row.to_dict() == {"n_contracts": 2.0, "contract_amount": 400.0, "n_invoices": 2.0, "invoiced_amount": 250.0,
                             "n_payments": 3.0, "payments_amount": 800.0, "collection_rate": 3.2,
                             "receivable_amount": 200.0}
    assert perf.describe_collections(perf.collections_summary(tables(), Q3)).text == (
        "2 contracts signed for 400, 250 invoiced, 800 collected. The collection rate is 320% of the amount "
        "invoiced. The period's contracts still owe 200 (50% of their value).")


def test_collections_with_missing_tables_or_empty_period():
    frames = {k: v for k, v in tables().items() if k not in ("invoices", "payments")}
    row = perf.collections_summary(frames, Q3).iloc[0]
    assert row["contract_amount"] == 400.0 and pd.isna(row["collection_rate"]) and pd.isna(row["receivable_amount"])
    later = KpiContext(T("2027-01-01"), T("2027-04-01"))
    empty = perf.collections_summary(tables(), later).iloc[0]
    assert empty["contract_amount"] == 0.0 and pd.isna(empty["collection_rate"])
    assert perf.receivable_balance(tables(), later) is None


def test_collections_trend():
    frames = tables()
    trend = perf.collections_trend(frames["contracts"], frames["invoices"], frames["payments"], "quarter")
    assert trend["period"].tolist() == ["2026-Q2", "2026-Q3", "2026-Q4"]
    assert trend["contract_amount"].tolist() == [1000.0, 400.0, 0.0]
    assert trend["payments_amount"].tolist() == [0.0, 800.0, 50.0]
    assert trend["collection_rate"].tolist()[:2] == [0.0, 3.2] and pd.isna(trend["collection_rate"].iloc[2])
    assert perf.collections_trend(frames["contracts"].iloc[0:0], None, None).empty
    via_history = perf.collections_trend_from(lambda table, n: frames[table], 4, "quarter")
    assert via_history.equals(trend)


def test_contract_summary():
    top = perf.contract_summary(tables(), Q3, top=5)
    assert top["contract_id"].tolist() == ["K2", "K1"]
    first = top.iloc[0]
    assert (first["account"], first["rep"], first["product"]) == ("Bolt", "Bo", "Cloud S")
    assert (first["contract_amount"], first["invoiced_amount"], first["paid_amount"]) == (300.0, 150.0, 100.0)
    assert first["outstanding_amount"] == 200.0 and first["paid_rate"] == pytest.approx(1 / 3)
    assert perf.describe_contract_summary(top).text == (
        "The largest contract, K2 with Bolt (Bo), is worth 300, 33% paid. These 2 contracts still owe 200 (50% of "
        "their value).")
    assert len(perf.contract_summary(tables(), Q3, top=1)) == 1


def test_contract_summary_failure_modes():
    with pytest.raises(ParameterError, match="top: 0"):
        perf.contract_summary(tables(), Q3, top=0)
    empty = perf.contract_summary(tables(), KpiContext(T("2027-01-01"), T("2027-04-01")))
    assert empty.empty and perf.describe_contract_summary(empty).text == "No contracts signed in the period."


# ------------------------------------------------------------------------------------- sales brief

def test_sales_brief_all_regions():
    brief = perf.sales_brief(tables(), Q3, tables(), Q2).set_index("item")
    assert brief["current_value"].to_dict() == {"new_accounts": 2.0, "new_contacts": 2.0, "new_leads": 2.0,
                                        "new_opportunities": 3.0, "won_deals": 4.0, "bookings_amount": 1000.0,
                                        "contract_amount": 400.0, "payments_amount": 800.0}
    assert brief["comparison_value"].to_dict() == {"new_accounts": 0.0, "new_contacts": 1.0, "new_leads": 1.0,
                                                   "new_opportunities": 2.0, "won_deals": 1.0,
                                                   "bookings_amount": 1000.0, "contract_amount": 1000.0,
                                                   "payments_amount": 0.0}
    assert brief.loc["won_deals", "delta_rate"] == 3.0 and pd.isna(brief.loc["new_accounts", "delta_rate"])
    assert perf.describe_sales_brief(brief.reset_index()).text.startswith(
        "Biggest moves vs the comparison period: won deals +300% (1 → 4), new contacts +100% (1 → 2), new leads "
        "+100% (1 → 2).")


def test_sales_brief_region_and_missing_tables():
    frames = tables()
    east = _ctx(region="East")
    brief = perf.sales_brief(frames, east, frames, _ctx(Q2, region="East")).set_index("item")
    assert brief.loc[["new_accounts", "new_contacts", "new_leads", "new_opportunities"], "current_value"].tolist() == [
        1.0, 1.0, 1.0, 3.0]
    only_opps = {"opportunities": frames["opportunities"], "accounts": frames["accounts"].assign(created_at=pd.NaT)}
    brief = perf.sales_brief(only_opps, Q3, only_opps, Q2).set_index("item")
    assert brief.loc["new_leads", "status"] == "needs table leads" and pd.isna(brief.loc["new_leads", "current_value"])
    assert brief.loc["new_accounts", "status"] == "accounts has no dates"
    text = perf.describe_sales_brief(brief.reset_index()).text
    assert "Not in this source: new contacts, new leads, contract amount, payments received." in text
    assert "Without creation dates in this source: new accounts." in text


# -------------------------------------------------------------------------------------------- KPIs

NAMES = {"bookings_amount": ("amount", "higher"), "won_deals": ("count", "higher"),
         "target_attainment": ("rate", "higher"), "avg_deal_size": ("amount", "higher"),
         "sales_cycle_days": ("days", "lower"), "contract_amount": ("amount", "higher"),
         "payments_received": ("amount", "higher"), "collection_rate": ("rate", "higher"),
         "receivable_balance": ("amount", "lower")}


def test_kpis_are_registered():
    registry = kpis.load_all()
    for name, (unit, direction) in NAMES.items():
        assert (registry[name].unit, registry[name].direction, registry[name].area) == (unit, direction, perf.AREA)


def test_kpi_values():
    got = {name: kpis.compute_kpi(name, tables(), Q3) for name in NAMES}
    assert got == {"bookings_amount": 1000.0, "won_deals": 4.0, "target_attainment": 0.5, "avg_deal_size": 250.0,
                   "sales_cycle_days": 40.0, "contract_amount": 400.0, "payments_received": 800.0,
                   "collection_rate": 3.2, "receivable_balance": 200.0}
    frames = tables()
    east = {**frames, "opportunities": frames["opportunities"][frames["opportunities"]["region_id"] == "East"]}
    assert kpis.compute_kpi("target_attainment", east, _ctx(region="East")) == 0.4


def test_kpis_without_data_are_none():
    week = KpiContext(T("2026-07-06"), T("2026-07-13"), period_label="2026-W28")
    assert kpis.compute_kpi("target_attainment", tables(), week) is None
    empty = {k: v.iloc[0:0] for k, v in tables().items()}
    for name in NAMES:
        assert kpis.compute_kpi(name, empty, Q3) is None, name
        assert kpis.compute_kpi(name, {}, Q3) is None, name


# ---------------------------------------------------------------------------------- planted truths

@pytest.fixture(scope="module")
def demo_slice(tiny_demo):
    con = data.connect(tiny_demo)
    values = {"source": str(tiny_demo), "region": "all", "period": TEAM_BELOW_TARGET.period, "as_of": "2026-10-01"}
    return data.open_slice(params.validate_params(values), con)


def _context(s: data.Slice) -> KpiContext:
    return KpiContext(period_start=s.period.start, period_end=s.period.end, region=s.params.region, as_of=s.as_of,
                      vocabulary=s.info.vocabulary, period_label=s.period.label)


def test_planted_team_below_target(demo_slice):
    teams = perf.target_attainment(demo_slice.tables["opportunities"], demo_slice.tables, _context(demo_slice),
                                   "team").set_index("key")
    truth = TEAM_BELOW_TARGET
    assert teams.loc[truth.team_id, "attainment_rate"] == pytest.approx(truth.attainment, abs=0.03)
    assert not teams.loc[truth.team_id, "is_on_track"]
    others = teams.drop(index=truth.team_id)["attainment_rate"]
    assert others.between(*truth.others_range).all(), others
    assert teams["attainment_rate"].idxmin() == truth.team_id
    assert perf.describe_attainment(teams.reset_index()).text.startswith("West China Team 2 is furthest behind: 60%")


def test_planted_q4_seasonality(demo_slice):
    history = demo_slice.history("opportunities", 16)
    trend = perf.bookings_trend(history, "quarter", targets=demo_slice.tables["targets"])
    result = perf.quarterly_seasonality(trend).set_index("year")
    years = list(Q4_SEASONALITY.years)
    assert result.index.tolist() == years
    assert (result.loc[years, "q4_ratio"] > 1.2).all(), result
    assert perf.describe_seasonality(result.reset_index()).text.startswith("Q4 is the peak every year")


# ------------------------------------------------------------------------------- Maven cross-check

def test_maven_sales_cycle_per_product_matches_raw_csv(maven_con, maven_dir):
    values = {"source": str(maven_dir), "mapping": "params/sources/maven_crm.yaml", "region": "all",
              "period": "2016-01-01..2017-12-31"}
    s = data.open_slice(params.validate_params(values), maven_con)
    ours = perf.sales_cycle(s.tables["opportunities"], _context(s), "product", s.tables)
    raw = pd.read_csv(maven_dir / "sales_pipeline.csv", parse_dates=["engage_date", "close_date"])
    raw["product"] = raw["product"].replace({"GTXPro": "GTX Pro"})
    won = raw[raw["deal_stage"] == "Won"]
    expected = (won["close_date"] - won["engage_date"]).dt.days.groupby(won["product"]).median()
    assert set(expected.index) <= set(pd.read_csv(maven_dir / "products.csv")["product"])
    got = ours.set_index("product_id")["median_cycle_days"]
    assert got.sort_index().to_dict() == expected.astype("float64").sort_index().to_dict()
    assert ours["n_won"].sum() == len(won)


def test_attainment_sentences_for_one_two_and_tied_keys():
    frames = tables()
    east = frames["opportunities"][frames["opportunities"]["region_id"] == "East"]
    one = perf.target_attainment(east, frames, _ctx(region="East"), "team")
    assert perf.describe_attainment(one).text == (
        "Team One: bookings of 400 are 50% of the target (800) with 50% of the period elapsed: on track. 2 deals won "
        "of 4 targeted.")
    two = perf.target_attainment(frames["opportunities"], frames, Q3, "product_line")
    assert perf.describe_attainment(two).text == ("Core is furthest behind: 30% of its target with 50% of the period "
                                             "elapsed (gap 700), while Cloud is at 70%; 1 of 2 are on track.")
    tied = two.assign(attainment_rate=0.9, is_on_track=True)
    tied = pd.concat([tied, tied.iloc[:1].assign(key="Edge", name="Edge")], ignore_index=True)
    found = perf.describe_attainment(tied)  # equal attainments: nobody is "furthest behind"
    assert found.text == ("All 3 product lines are at 90% of their targets with 50% of the period elapsed; 3 of 3 "
                          "are on track.")
    assert found.severity == "good" and found.kpi == "target_attainment"


# ------------------------------------------------------------------------------------------ charts

def test_chart_builders_draw_the_computed_frames():
    from crmlens.charts import performance as charts

    frames = tables()
    teams = perf.target_attainment(frames["opportunities"], frames, Q3, "team")
    fig = charts.plot_attainment(teams)
    assert list(fig.data[0].y) == ["Team Two", "Team One"] and len(fig.layout.shapes) == 1
    trend = perf.bookings_trend(frames["opportunities"], "month")  # no targets: the target line is left out
    assert [t.name for t in charts.plot_bookings_trend(trend).data] == ["Bookings", "Same period last year"]
    lines = charts.plot_segment_lines(perf.deal_size_trend(frames["opportunities"], "quarter", "product_line",
                                                           frames), value="avg_deal_amount", title="t")
    assert sorted(t.name for t in lines.data) == ["Cloud", "Core"]
    cycle = charts.plot_cycle(perf.sales_cycle(frames["opportunities"], Q3, "region", frames))
    assert list(cycle.data[0].x) == [30.0, 100.0]
    money = charts.plot_collections(perf.collections_trend(frames["contracts"], frames["invoices"],
                                                           frames["payments"], "quarter"))
    assert [t.name for t in money.data] == ["Signed", "Invoiced", "Collected", "Collection rate"]


def test_deal_size_sentence_uses_a_percentage_for_small_gaps():
    frame = pd.DataFrame({"name": ["Insight", "Edge"], "avg_deal_amount": [32050.0, 30783.0],
                          "bookings_amount": [32050.0 * 561, 30783.0 * 500], "n_won": [561, 500]})
    text = perf.describe_deal_size(frame).text
    assert "Edge the smallest (30,783, 4% smaller)" in text and "×" not in text
