"""Market and competition: market size over distinct segments, shares, growth against ours, win rates against
competitors and strongholds on hand-computed fixtures; the failure modes (no market table, no competitor on the
deals, one competitor); the demo's planted competitor stronghold and the region whose market outgrows us recovered
through the slice-level analyses the notebook calls."""

from __future__ import annotations

import pandas as pd
import pytest

from crmlens import data, findings, kpis, params
from crmlens.kpis import KpiContext
from crmlens.metrics import funnel
from crmlens.metrics import market as mk
from crmlens.truths import COMPETITOR_STRONGHOLD, MARKET_OUTGROWS_US

T = pd.Timestamp
Q1 = KpiContext(period_start=T("2026-01-01"), period_end=T("2026-04-01"), region="all", period_label="2026-Q1",
                as_of=T("2026-04-01"))
Q4 = KpiContext(period_start=T("2025-10-01"), period_end=T("2026-01-01"), region="all", period_label="2025-Q4",
                as_of=T("2026-04-01"))


def ts(values):
    return pd.to_datetime(pd.Series(values), format="ISO8601").astype("datetime64[us]")


def market_frame() -> pd.DataFrame:
    """2026-Q1: segments R1 Core 1000, R1 Cloud 500, R2 Core 2000 (3,500 in all), each repeated per competitor."""
    rows = [("2026-Q1", "R1", "Core", 1000.0, "A", 300.0), ("2026-Q1", "R1", "Core", 1000.0, "B", 100.0),
            ("2026-Q1", "R1", "Cloud", 500.0, "A", 50.0), ("2026-Q1", "R1", "Cloud", 500.0, "B", 50.0),
            ("2026-Q1", "R2", "Core", 2000.0, "A", 200.0), ("2026-Q1", "R2", "Core", 2000.0, "B", 400.0)]
    return pd.DataFrame(rows, columns=["period", "region_id", "product_line", "market_size_amount", "competitor",
                                       "competitor_sales_amount"]).astype({"period": "string"})


PRODUCTS = pd.DataFrame({"product_id": ["P1", "P2"], "product_line": ["Core", "Cloud"]})


def opportunity_frame() -> pd.DataFrame:
    rows = [  # id, region, product, amount, won, closed, competitor, loss reason
        ("o1", "R1", "P1", 100.0, True, "2026-02-01", "A", None),
        ("o2", "R1", "P2", 50.0, True, "2026-02-10", None, None),
        ("o3", "R2", "P1", 500.0, True, "2026-03-01", "A", None),
        ("o4", "R1", "P1", 80.0, False, "2026-02-15", "A", "price"),
        ("o5", "R1", "P1", 70.0, False, "2026-03-15", "A", "competitor"),
        ("o6", "R2", "P1", 60.0, True, "2026-01-20", "A", None),
        ("o7", "R2", "P1", 40.0, True, "2026-03-20", "B", None),
        ("o8", "R2", "P2", 30.0, False, "2026-03-25", "B", "price"),
        ("o9", "R1", "P1", 20.0, None, None, "A", None),  # still open
    ]
    out = pd.DataFrame(rows, columns=["opportunity_id", "region_id", "product_id", "amount", "is_won", "closed_at",
                                      "competitor", "loss_reason"])
    out["closed_at"] = ts(out["closed_at"])
    out["is_won"] = out["is_won"].astype("boolean")
    out["owner_rep_id"] = ["r1", "r1", "r2", "r1", "r2", "r2", "r2", "r2", "r1"]
    return out.astype({"competitor": "string", "loss_reason": "string", "region_id": "string"})


# ------------------------------------------------------------------------------------------ market figures

def test_market_size_counts_each_segment_once():
    trend = mk.market_trend(market_frame(), opportunity_frame(), PRODUCTS)
    assert trend[["period", "market_size_amount", "bookings_amount"]].values.tolist() == [["2026-Q1", 3500.0, 750.0]]
    assert trend["market_share_rate"].iloc[0] == pytest.approx(750 / 3500)
    by_line = mk.market_trend(market_frame(), opportunity_frame(), PRODUCTS, by="product_line").set_index(
        "product_line")
    assert by_line["market_size_amount"].to_dict() == {"Cloud": 500.0, "Core": 3000.0}
    assert by_line["bookings_amount"].to_dict() == {"Cloud": 50.0, "Core": 700.0}
    assert mk.kpi_market_size({"market": market_frame()}, Q1) == 3500.0
    r1 = KpiContext(period_start=Q1.period_start, period_end=Q1.period_end, region="R1")
    assert mk.kpi_market_size({"market": market_frame()}, r1) == 1500.0  # the market is cut to the region


def test_shares_ours_and_each_competitor():
    shares = mk.market_shares(market_frame(), opportunity_frame(), PRODUCTS, ctx=Q1, by="region_id")
    r1 = shares[shares["region_id"] == "R1"].set_index("player")["market_share_rate"]
    assert r1.index[0] == mk.OURS and r1.iloc[0] == pytest.approx(0.1)  # us first: 150 / 1,500
    assert r1["A"] == pytest.approx(350 / 1500) and r1["B"] == pytest.approx(0.1)
    r2 = shares[shares["region_id"] == "R2"].set_index("player")["market_share_rate"]
    assert r2.tolist() == pytest.approx([0.3, 0.2, 0.1])  # us 600, B 400, A 200 of 2,000
    text = mk.describe_outsold(shares).text
    assert text == "Competitors out-sell us in R1 (A 23.3% vs our 10.0%)."  # B level with us in R1 is not named
    frames = {"market": market_frame(), "opportunities": opportunity_frame()}
    assert mk.kpi_our_market_share(frames, Q1) == pytest.approx(750 / 3500)


def test_spans_computed_together_equal_each_span_alone():
    """The trend computes every market period's figures in one group-by (`_spans_figures`): each span's figures
    equal those computed for that span alone, also for spans that overlap, cover half a period or none."""
    market = pd.concat([market_frame(), market_frame().assign(period="2025-Q4", market_size_amount=800.0),
                        market_frame().assign(period="not a period")], ignore_index=True)
    opps = opportunity_frame()
    won = mk._won(opps, PRODUCTS)
    periods = mk.market_periods(market)
    spans = [(T("2025-10-01"), T("2026-01-01")), (T("2026-01-01"), T("2026-04-01")),
             (T("2025-10-01"), T("2026-04-01")), (T("2026-02-15"), T("2026-04-01")), (T("2027-01-01"), T("2027-04-01"))]
    for by in (None, "region_id", "product_line"):
        together = mk._spans_figures(market, won, periods, spans, by)
        for (start, end), figures in zip(spans, together, strict=True):
            alone = mk._spans_figures(market, won, periods, [(start, end)], by)[0]
            pd.testing.assert_frame_equal(figures, alone, check_exact=True)
    year = mk._spans_figures(market, won, periods, spans, None)[2]
    assert year["market_size_amount"].tolist() == [2400.0 + 3500.0]  # 2025-Q4: every segment 800
    assert year["bookings_amount"].tolist() == [750.0]
    assert year[["A", "B"]].iloc[0].tolist() == [2 * 550.0, 2 * 550.0]
    half = mk._spans_figures(market, won, periods, spans, "region_id")[3]  # 45 of the quarter's 90 days
    assert half["market_size_amount"].to_dict() == {"R1": 750.0, "R2": 1000.0}
    assert half["bookings_amount"].to_dict() == {"R1": 0.0, "R2": 540.0}  # o3 and o7 close after mid-February
    assert mk._spans_figures(market, won, periods, spans, "region_id")[4].empty  # no market period in 2027


def test_share_change_vs_the_comparison_period():
    market = pd.concat([market_frame(), market_frame().assign(period="2025-Q4")], ignore_index=True)
    opps = opportunity_frame()
    earlier = opps[opps["opportunity_id"] == "o3"].assign(opportunity_id="o0", closed_at=T("2025-11-01"),
                                                           amount=1050.0)
    out = mk.share_change(market, pd.concat([opps, earlier], ignore_index=True), PRODUCTS, ctx=Q1, before=Q4)
    us = out[out["is_us"]].iloc[0]
    assert us["share_before_rate"] == pytest.approx(0.3) and us["market_share_rate"] == pytest.approx(750 / 3500)
    assert us["share_change"] == pytest.approx(750 / 3500 - 0.3)
    found = mk.describe_share_change(out)
    assert found.text.startswith("Our market share fell from 30.0% in 2025-Q4 to 21.4% in 2026-Q1.")
    assert found.severity == "watch"


def growth_frames():
    """Eight quarters: R1's market grows 100 → 150 a quarter, ours 10 → 11; R2's market 100 → 110, ours 10 → 11."""
    quarters = ["2024-Q4", "2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3"]
    rows, deals = [], []
    for i, q in enumerate(quarters):
        late = i >= 4
        rows += [(q, "R1", "Core", 150.0 if late else 100.0, "A", 5.0),
                 (q, "R2", "Core", 110.0 if late else 100.0, "A", 5.0)]
        start = pd.Period(q.replace("-", ""), freq="Q").start_time + pd.Timedelta(days=10)
        for region in ("R1", "R2"):
            deals.append((f"{region}{i}", region, "P1", 11.0 if late else 10.0, True, start, None))
    market = pd.DataFrame(rows, columns=["period", "region_id", "product_line", "market_size_amount", "competitor",
                                         "competitor_sales_amount"])
    opps = pd.DataFrame(deals, columns=["opportunity_id", "region_id", "product_id", "amount", "is_won", "closed_at",
                                        "competitor"])
    opps["closed_at"] = opps["closed_at"].astype("datetime64[us]")
    return market, opps


def test_growth_vs_market_states_the_gap():
    market, opps = growth_frames()
    ctx = KpiContext(period_start=T("2026-07-01"), period_end=T("2026-10-01"), as_of=T("2026-10-01"))
    out = mk.growth_vs_market(market, opps, PRODUCTS, ctx=ctx).set_index("region_id")
    assert out.loc["R1", ["market_growth_rate", "our_growth_rate"]].tolist() == pytest.approx([0.5, 0.1])
    assert out.loc["R1", "growth_gap"] == pytest.approx(0.4)
    assert out.loc["R2", "growth_gap"] == pytest.approx(0.0)
    assert out.loc[mk.TOTAL, "market_growth_rate"] == pytest.approx(0.3)  # 1,040 vs 800
    assert out.loc["R1", ["share_before_rate", "market_share_rate"]].tolist() == pytest.approx([0.1, 44 / 600])
    found = mk.describe_growth_vs_market(out.reset_index())
    assert found.text.startswith("In R1, the market grew 50.0% over 2025-Q4..2026-Q3 (vs a year before), we grew "
                                 "10.0%: we are losing share there (10.0% → 7.3%), the widest gap of any region.")
    assert found.severity == "act" and found.recommendation
    # a window the market does not reach: no growth, no sentence (not a zero)
    early = KpiContext(period_start=T("2025-07-01"), period_end=T("2025-10-01"), as_of=T("2025-10-01"))
    empty = mk.growth_vs_market(market, opps, PRODUCTS, ctx=early)
    assert empty.empty and mk.describe_growth_vs_market(empty) is None
    assert mk.kpi_market_growth_rate({"market": market}, ctx) == pytest.approx(0.3)


def test_growth_tied_or_small_everywhere_ranks_nothing():
    market, opps = growth_frames()
    r2 = market["region_id"] == "R2"
    market.loc[~r2, "market_size_amount"] = market.loc[r2, "market_size_amount"].to_numpy()  # R1 = R2
    ctx = KpiContext(period_start=T("2026-07-01"), period_end=T("2026-10-01"), as_of=T("2026-10-01"))
    found = mk.describe_growth_vs_market(mk.growth_vs_market(market, opps, PRODUCTS, ctx=ctx))
    assert found.text == "In no region did the market outgrow us by 10 points or more over 2025-Q4..2026-Q3."
    assert found.severity == "info"


# ------------------------------------------------------------------------------------------ competitive deals

def test_win_rate_against_each_competitor():
    out = mk.head_to_head(opportunity_frame(), ctx=Q1).set_index("competitor")
    assert out.loc["A", ["n_closed", "n_won", "n_lost"]].tolist() == [5, 3, 2]  # o9 is open; o2 names nobody
    assert out.loc["A", "win_rate"] == pytest.approx(0.6) and out.loc["A", "lost_amount"] == 150.0
    assert out.loc["B", ["n_closed", "n_won", "lost_amount"]].tolist() == [2, 1, 30.0]
    by_region = mk.head_to_head(opportunity_frame(), "region_id", ctx=Q1).set_index(["competitor", "region_id"])
    assert by_region.loc[("A", "R1"), ["n_closed", "n_won", "lost_amount"]].tolist() == [3, 1, 150.0]
    assert by_region.loc[("A", "R2"), "win_rate"] == 1.0
    by_line = mk.head_to_head(opportunity_frame(), "product_line", ctx=Q1, products=PRODUCTS)
    assert by_line.set_index(["competitor", "product_line"]).loc[("B", "Cloud"), "lost_amount"] == 30.0
    frames = {"opportunities": opportunity_frame()}
    assert mk.kpi_competitive_win_rate(frames, Q1) == pytest.approx(4 / 7)
    assert mk.kpi_lost_to_competitors_amount(frames, Q1) == 180.0
    reasons = mk.competitive_loss_reasons(opportunity_frame(), Q1)
    assert reasons[["competitor", "loss_reason", "n_lost"]].values.tolist() == [
        ["A", "competitor", 1], ["A", "price", 1], ["B", "price", 1]]


def test_deal_size_bands_by_terciles():
    bands = mk.deal_size_bands(pd.Series([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, None]))
    assert bands.tolist() == ["under 27", "under 27", "27–43", "27–43", "43 and over", "43 and over", "(unknown)"]
    out = mk.head_to_head(opportunity_frame(), "deal_size_band", ctx=Q1)
    assert out["n_closed"].sum() == 7 and set(out["competitor"]) == {"A", "B"}


def test_stronghold_is_a_region_far_below_the_same_competitor_elsewhere():
    span = (Q1.period_start, Q1.period_end)
    out = mk.strongholds(opportunity_frame(), market_frame(), span=span)
    top = out.iloc[0]
    assert (top["competitor"], top["region_id"]) == ("A", "R1")
    assert top[["n_closed", "n_closed_elsewhere"]].tolist() == [3, 2]
    assert top["win_rate"] == pytest.approx(1 / 3) and top["win_rate_elsewhere"] == 1.0
    assert top["competitor_share_rate"] == pytest.approx(350 / 1500) and top["our_share_rate"] == pytest.approx(0.1)
    found = mk.describe_strongholds(out, min_closed=2)
    assert found.text == ("A beats us in R1: we win 33.3% of the 3 deals it is on there vs 100.0% against it "
                          "elsewhere. It holds 23.3% of R1's market, we hold 10.0%.")
    assert found.severity == "act" and "plan against A in R1" in found.recommendation
    assert mk.describe_strongholds(out) is None  # too few deals at the default minimum: no finding


# ------------------------------------------------------------------------------------------ failure modes

def test_no_competitor_on_the_deals():
    opps = opportunity_frame().assign(competitor=pd.Series([None] * 9, dtype="string"))
    assert mk.head_to_head(opps, ctx=Q1).empty
    assert mk.strongholds(opps).empty and mk.describe_strongholds(mk.strongholds(opps)) is None
    assert mk.kpi_competitive_win_rate({"opportunities": opps}, Q1) is None  # not a zero
    assert mk.kpi_lost_to_competitors_amount({"opportunities": opps}, Q1) is None
    assert mk.competitive_loss_reasons(opps, Q1).empty


def test_one_competitor():
    opps = opportunity_frame()
    opps = opps[opps["competitor"].fillna("") != "B"]
    out = mk.head_to_head(opps, ctx=Q1)
    assert out["competitor"].tolist() == ["A"]
    assert "no other competitor to compare with" in funnel.describe_win_rate_by(out).text
    one_region = opps[opps["region_id"] == "R1"]
    assert mk.describe_strongholds(mk.strongholds(one_region), min_closed=1) is None  # nothing elsewhere to compare


def test_no_market_table_is_not_in_this_source():
    frames = {"opportunities": opportunity_frame()}
    table = kpis.kpi_table(["our_market_share", "market_size", "market_growth_rate"], frames, Q1)
    assert table["value"].isna().all() and set(table["status"]) == {"not in source"}
    assert mk.describe_share_change(None) is None and mk.describe_outsold(None) is None


def test_maven_says_the_market_and_competitors_are_not_in_the_source(maven_dir, monkeypatch):
    from crmlens import notebook

    shown = []
    monkeypatch.setattr(notebook, "md", lambda text, finding=False: shown.append(text))
    values = {"source": str(maven_dir), "mapping": "params/sources/maven_crm.yaml", "region": "all",
              "period": "2017"}
    s = data.open_slice(params.validate_params(values), data.connect(maven_dir, "params/sources/maven_crm.yaml"))
    assert mk.growth_vs_market_of(s) is None and mk.market_trend_of(s) is None
    assert mk.head_to_head_of(s) is None and mk.strongholds_of(s) is None
    assert any("needs table `market`" in text for text in shown)
    assert any("needs column `opportunities.competitor`" in text for text in shown)


# ------------------------------------------------------------------------------------------ planted truths

def _slice(folder, region="all"):
    values = {"source": str(folder), "region": region, "period": "2026-Q3", "as_of": "2026-10-01"}
    return data.open_slice(params.validate_params(values), data.connect(folder))


@pytest.mark.parametrize("seed", [7, 11])
def test_planted_stronghold_is_the_headline(demo_folder, seed):
    s = _slice(demo_folder("tiny", seed))
    strong = mk.strongholds_of(s)
    top = strong.iloc[0]
    truth = COMPETITOR_STRONGHOLD
    assert (top["competitor"], top["region_id"]) == (truth.competitor, truth.region_id)
    assert top["win_rate"] < 0.5 * top["win_rate_elsewhere"]
    assert top["competitor_share_rate"] > top["our_share_rate"]
    headline = mk.describe_strongholds(strong)
    assert headline.text.startswith(f"{truth.competitor} beats us in {truth.region_id}") and headline.recommendation
    growth = mk.describe_growth_vs_market(mk.growth_vs_market_of(s))
    intel = mk.describe_intel(mk.intel_summary_of(s))
    assert findings.rank([f for f in (growth, intel, headline) if f])[0] == headline


@pytest.mark.parametrize("seed", [7, 11])
def test_planted_market_outgrows_us(demo_folder, seed):
    s = _slice(demo_folder("tiny", seed))
    growth = mk.growth_vs_market_of(s).set_index("region_id")
    truth = MARKET_OUTGROWS_US
    places = growth.drop(index=mk.TOTAL)
    assert places["growth_gap"].idxmax() == truth.region_id, places["growth_gap"]
    assert places.loc[truth.region_id, "growth_gap"] > truth.min_gap
    assert places.loc[truth.region_id, "market_share_rate"] < places.loc[truth.region_id, "share_before_rate"]
    found = mk.describe_growth_vs_market(growth.reset_index())
    assert found.text.startswith(f"In {truth.region_id}, the market grew") and "we are losing share" in found.text
