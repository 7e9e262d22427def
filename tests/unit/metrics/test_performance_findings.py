"""Findings that hold (issue 11): sales-performance findings are records, are written only when the numbers
support them (no ranking of equal values, no "complete year" the data does not cover, no zero from an absent
table), and read in Chinese without English left."""

from __future__ import annotations

import pandas as pd
import pytest

from crmlens import data, i18n, params, present
from crmlens.findings import Finding
from crmlens.kpis import KpiContext
from crmlens.metrics import performance as perf
from tests.unit.metrics.test_performance import Q2, Q3, T, _ctx, tables


def _attainment(rates: dict[str, float], level: str = "product_line", elapsed: float = 0.5) -> pd.DataFrame:
    """A `target_attainment`-shaped result with the given attainment per key (target 1,000 each)."""
    rows = [{"level": level, "key": k, "name": k, "bookings_amount": 1000 * r, "n_won": 1, "target_amount": 1000.0,
             "n_target_deals": float("nan"), "attainment_rate": r, "deal_attainment_rate": float("nan"),
             "elapsed_rate": elapsed, "gap_amount": 1000 * (1 - r), "is_on_track": r >= elapsed}
            for k, r in rates.items()]
    return pd.DataFrame(rows, columns=perf.ATTAINMENT_COLUMNS).sort_values(["attainment_rate", "key"])


# ------------------------------------------------------------------------ a. equal values are not ranked

def test_attainment_does_not_rank_values_that_read_the_same():
    # the case: "Insight is furthest behind: 97% … while the other 3 product lines are all at 97%"
    found = perf.describe_attainment(_attainment({"Insight": 0.9681, "Core": 0.971, "Cloud": 0.9702,
                                                  "Edge": 0.9744}, elapsed=1.0))
    assert isinstance(found, Finding)
    assert "furthest behind" not in found.text
    assert found.text.startswith("All 4 product lines are at 97% of their targets with 100% of the period elapsed")


def test_attainment_names_every_key_tied_at_the_bottom():
    found = perf.describe_attainment(_attainment({"Insight": 0.6, "Edge": 0.6004, "Core": 0.8, "Cloud": 0.9}))
    assert found.text.startswith("Insight, Edge are furthest behind, each at 60% of their targets")
    assert "while the other 2 product lines range from 80% to 90%" in found.text
    assert "Insight is furthest behind" not in found.text


def test_attainment_says_the_others_are_equal_rather_than_a_range():
    found = perf.describe_attainment(_attainment({"Insight": 0.3, "Core": 0.801, "Cloud": 0.799}))
    assert "while the other 2 product lines are all at 80%" in found.text and "range" not in found.text


def test_deal_size_and_cycle_do_not_rank_equal_segments():
    equal = pd.DataFrame({"product_line": ["Core", "Cloud"], "name": ["Core", "Cloud"], "n_won": [2, 3],
                          "bookings_amount": [200.0, 300.0], "avg_deal_amount": [100.0, 100.2]})
    text = perf.describe_deal_size(equal).text
    assert "largest" not in text and "all 2 segments average the same (100)" in text
    cycles = pd.DataFrame({"region_id": ["East", "West"], "name": ["East", "West"], "n_won": [2, 2],
                           "median_cycle_days": [30.2, 29.9], "mean_cycle_days": [30.0, 30.0],
                           "p25_cycle_days": [20.0, 20.0], "p75_cycle_days": [40.0, 40.0]})
    text = perf.describe_sales_cycle(cycles).text
    assert "longest" not in text and text.startswith("Won deals take the same median time to win in every segment")


def test_sales_brief_without_any_move_says_so():
    frames = tables()
    brief = perf.sales_brief(frames, Q3, frames, Q3)  # the period against itself: every change is 0
    assert perf.describe_sales_brief(brief).text.startswith("Nothing moved vs the comparison period.")


def test_two_reps_with_the_same_name_are_told_apart_in_findings():
    frames = tables()
    frames["reps"] = frames["reps"].assign(name=pd.array(["Ann", "Ann", "Cy"], dtype="string"))
    reps = perf.target_attainment(frames["opportunities"], frames, Q3, "rep")
    text = perf.describe_attainment(reps).text
    assert text.startswith("Ann (R1) is furthest behind: 25%") and "Ann (R2)" not in text.split(",")[0]


# ---------------------------------------------- b. a year is complete only when the data covers all of it

def _won(days: pd.DatetimeIndex) -> pd.DataFrame:
    return pd.DataFrame({"opportunity_id": [f"O{i}" for i in range(len(days))],
                         "created_at": days - pd.Timedelta(days=30), "closed_at": days,
                         "amount": 100.0, "is_won": pd.array([True] * len(days), dtype="boolean")})


def test_a_year_whose_data_ends_in_november_is_not_complete():
    # the case: "In 2018, the only complete year, Q4 bookings were 15.06× …" with data ending 2018-11-15
    opps = _won(pd.date_range("2017-01-05", "2018-11-15", freq="7D"))
    trend = perf.bookings_trend(opps, "quarter", end=T("2019-01-01"), data_end=T("2018-11-16"))
    q4 = trend.set_index("period").loc["2018-Q4"]
    assert bool(q4["is_partial"]) and pd.isna(q4["yoy_rate"])
    seasons = perf.quarterly_seasonality(trend)
    assert seasons["year"].tolist() == [2017]  # 2017 is covered from 2016-12-06 (first created) to its end
    found = perf.describe_seasonality(seasons)
    assert "2018" not in found.text and found.text.startswith("In 2017, the only complete year in the data")


def test_a_year_the_data_starts_inside_is_not_complete():
    opps = _won(pd.date_range("2017-03-01", "2018-12-31", freq="5D"))  # first created 2017-01-30
    seasons = perf.quarterly_seasonality(perf.bookings_trend(opps, "quarter", end=T("2019-01-01")))
    assert seasons["year"].tolist() == [2018]
    assert perf.describe_seasonality(seasons.iloc[0:0]).text.startswith("No complete calendar year")


def test_buckets_after_the_data_end_are_unknown_not_zero():
    trend = perf.bookings_trend(tables()["opportunities"], "month", start=T("2026-07-01"), end=T("2026-10-01"),
                                data_end=T("2026-08-16"))
    assert trend["bookings_amount"].iloc[:2].tolist() == [400.0, 600.0] and pd.isna(trend["bookings_amount"].iloc[2])
    assert trend["is_partial"].tolist() == [False, True, True]
    text = perf.describe_bookings_trend(trend).text
    assert text.startswith("2026-07: bookings 400 from 2 won deals") and "2026-08 so far" in text
    assert "2026-09" not in text


def test_quarterly_seasonality_needs_the_trend_coverage():
    frame = pd.DataFrame({"period": ["2024-Q1"], "period_start": [T("2024-01-01")], "bookings_amount": [1.0]})
    with pytest.raises(perf.ParameterError, match="quarterly_trend"):
        perf.quarterly_seasonality(frame)
    assert perf.quarterly_seasonality(None) is None


# ---------------------------------------------------------------------- c. an absent table is not zero

def _without(*names: str) -> dict[str, pd.DataFrame]:
    return {k: v for k, v in tables().items() if k not in names}


def test_contracts_without_payments_say_payments_are_not_in_the_source():
    # the case: "0% paid; these 10 contracts still owe 82,888 (100% of their value)" without payments
    top = perf.contract_summary(_without("payments"), Q3)
    assert top["paid_amount"].isna().all() and top["outstanding_amount"].isna().all() and top["paid_rate"].isna().all()
    text = perf.describe_contract_summary(top).text
    assert "paid" not in text.split(".")[0] and "owe" not in text.replace("owed are not known", "")
    assert "Payments are not in this source" in text
    shown = present.table(top).formatted()
    assert set(shown["Paid by period end"]) == {"–"} and set(shown["Outstanding"]) == {"–"}
    assert set(shown["Paid"]) == {"–"}


def test_collections_without_payments_or_invoices_say_so():
    row = perf.collections_summary(_without("payments"), Q3)
    assert row[["n_payments", "payments_amount", "collection_rate", "receivable_amount"]].isna().all(axis=None)
    found = perf.describe_collections(row)
    assert "collected" not in found.text.split(".")[0] and "Payments are not in this source" in found.text
    assert found.severity == "info" and found.recommendation == ""
    no_invoices = perf.describe_collections(perf.collections_summary(_without("invoices"), Q3)).text
    assert "Invoices are not in this source" in no_invoices
    shown = present.table(row).formatted()
    assert shown["Payments received"].tolist() == ["–"] and shown["Collection rate"].tolist() == ["–"]


def test_collections_trend_without_payments_has_no_zero_payments():
    frames = tables()
    trend = perf.collections_trend(frames["contracts"], frames["invoices"], None, "quarter")
    assert trend["payments_amount"].isna().all() and trend["collection_rate"].isna().all()
    assert trend["contract_amount"].tolist() == [1000.0, 400.0]


def test_sales_brief_without_payments_says_so():
    frames = _without("payments")
    brief = perf.sales_brief(frames, Q3, frames, Q2).set_index("item")
    assert pd.isna(brief.loc["payments_amount", "current_value"])
    assert brief.loc["payments_amount", "note"] == "Not in this source (no `payments` table)."
    assert "Not in this source: payments received." in perf.describe_sales_brief(brief.reset_index()).text


def test_sales_brief_does_not_compare_a_period_the_data_starts_inside():
    # the Maven export starts 2016-10-20: "new opportunities +2,229% (124 → 2,888)" compared 2017 with 10 weeks
    frames = tables()
    late = {**frames, "opportunities": frames["opportunities"].loc[frames["opportunities"]["created_at"]
                                                                  >= T("2026-05-01")]}
    brief = perf.sales_brief(frames, Q3, late, Q2)
    assert brief["comparison_value"].isna().all() and brief["delta_rate"].isna().all()
    found = perf.describe_sales_brief(brief)
    assert found.text.startswith("Nothing to compare with the comparison period.")
    assert "does not cover the comparison period from its first day" in found.text


def test_sales_brief_of_a_period_not_over_says_so_and_gives_no_verdict():
    frames = tables()
    low = {**frames, "opportunities": frames["opportunities"].assign(amount=frames["opportunities"]["amount"] / 2)}
    ended = perf.describe_sales_brief(perf.sales_brief(low, _ctx(as_of=T("2026-10-01")), frames, Q2))
    assert ended.severity == "watch"  # bookings -50% on a whole quarter
    so_far = perf.describe_sales_brief(perf.sales_brief(low, Q3, frames, Q2))  # half the quarter elapsed
    assert so_far.severity == "info" and "The period is not over (50% elapsed)" in so_far.text


@pytest.fixture(scope="module")
def maven_slice(maven_con, maven_dir):
    values = {"source": str(maven_dir), "mapping": "params/sources/maven_crm.yaml", "region": "all",
              "period": "2017-Q4"}
    return data.open_slice(params.validate_params(values), maven_con)


def test_the_maven_export_has_no_payments_and_says_so(maven_slice, monkeypatch):
    from crmlens import notebook

    shown: list[str] = []
    monkeypatch.setattr(notebook, "md", lambda text, finding=False: shown.append(text))
    s = maven_slice
    assert s.missing("contracts", "payments", "invoices") == ["contracts", "payments", "invoices"]
    ctx = KpiContext(s.period.start, s.period.end, region="all", as_of=s.as_of, period_label=s.period.label)
    summary = perf.collections_summary(s.tables, ctx)
    assert summary.isna().all(axis=None)
    text = perf.describe_collections(summary).text
    assert "Payments are not in this source" in text and "0" not in text
    top = perf.contract_summary(s.tables, ctx)
    assert top.empty and perf.describe_contract_summary(top).text == "Contracts are not in this source."
    brief = perf.sales_brief(s.tables, ctx, s.tables, ctx).set_index("item")
    assert brief.loc[["contract_amount", "payments_amount"], "current_value"].isna().all()
    assert "payments received" in perf.describe_sales_brief(brief.reset_index()).text.split("Not in this source:")[1]
    # the notebook's calls: the sections needing contracts are skipped with the "needs table" note
    assert perf.collections_summary(s) is None and perf.contract_summary(s, top=10) is None
    assert len(shown) == 2 and all("needs table `contracts`" in text for text in shown)


# ---------------------------------------------------------------- findings are records with an action

def test_a_region_far_behind_mid_period_is_an_act_with_a_review():
    frames = tables()
    east = frames["opportunities"][frames["opportunities"]["region_id"] == "East"]
    ctx = _ctx(region="East", as_of=T("2026-08-31"))  # 2/3 of the quarter gone, 40% of the target booked
    found = perf.describe_attainment(perf.target_attainment(east, frames, ctx, "company"))
    assert (found.severity, found.kpi) == ("act", "target_attainment") and 0 < found.weight <= 1
    assert found.recommendation == ("Review East China's pipeline coverage for the rest of the period: 600 of the "
                                    "target is still open.")


def test_findings_carry_a_kpi_and_a_severity():
    frames = tables()
    results = {
        perf.describe_sales_brief: perf.sales_brief(frames, Q3, frames, Q2),
        perf.describe_bookings_trend: perf.bookings_trend(frames["opportunities"], "quarter"),
        perf.describe_deal_size: perf.deal_size(frames["opportunities"], Q3, "product_line", frames),
        perf.describe_sales_cycle: perf.sales_cycle(frames["opportunities"], Q3, "region", frames),
        perf.describe_collections: perf.collections_summary(frames, Q3),
        perf.describe_contract_summary: perf.contract_summary(frames, Q3),
    }
    kpis = {f(r).kpi for f, r in results.items()}
    assert kpis == {"bookings_amount", "avg_deal_size", "sales_cycle_days", "collection_rate", "receivable_balance"}
    collections = perf.describe_collections(perf.collections_summary(frames, Q3))
    assert collections.severity == "good"  # 320% collected: older invoices paid
    low = perf.collections_summary(frames, Q3).assign(payments_amount=100.0, collection_rate=0.4)
    chase = perf.describe_collections(low)
    assert chase.severity == "act" and chase.recommendation.startswith("Chase collection: payments received cover "
                                                                       "only 40% of the 250 invoiced")


# ------------------------------------------------------------------------------------------------- 中文

def test_every_finding_reads_in_chinese(monkeypatch):
    monkeypatch.setenv(i18n.STRICT_ENV, "1")  # a missing translation is an error
    frames = tables()
    with i18n.language("zh"):
        texts = [
            perf.describe_attainment(perf.target_attainment(frames["opportunities"], frames, Q3, "team")),
            perf.describe_attainment(_attainment({"Insight": 0.6, "Edge": 0.6, "Core": 0.8})),
            perf.describe_attainment(_attainment({"Insight": 0.9, "Edge": 0.9})),
            perf.describe_sales_brief(perf.sales_brief(_without("payments"), Q3, frames, Q2)),
            perf.describe_bookings_trend(perf.bookings_trend(frames["opportunities"], "quarter",
                                                             targets=frames["targets"])),
            perf.describe_seasonality(perf.quarterly_seasonality(perf.bookings_trend(
                _won(pd.date_range("2017-01-05", "2018-11-15", freq="7D")), "quarter"))),
            perf.describe_deal_size(perf.deal_size(frames["opportunities"], Q3, "size_band", frames)),
            perf.describe_sales_cycle(perf.sales_cycle(frames["opportunities"], Q3)),
            perf.describe_sales_cycle(perf.sales_cycle(frames["opportunities"], Q3, "region", frames)),
            perf.describe_collections(perf.collections_summary(_without("payments"), Q3)),
            perf.describe_contract_summary(perf.contract_summary(frames, Q3)),
        ]
        headers = present.table(perf.contract_summary(frames, Q3)).formatted().columns.tolist()
    for found in texts:
        assert i18n.has_cjk(found.text), found.text
        for word in ("behind", "bookings", "deals", "contracts", "period", "source"):
            assert word not in found.text, found.text
    assert texts[0].text.startswith("Team Two 落后最多：完成目标的 40%")
    assert headers == ["合同", "签约", "客户", "销售代表", "产品", "合同金额", "已开票", "期末已回款", "未回款",
                       "已回款比例"]
