"""Sales funnel metrics: hand-computed fixtures, failure modes, the planted funnel bottleneck of the demo, and a
cross-check against the raw Maven CRM export."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from crmlens import data, kpis
from crmlens.errors import ParameterError, SchemaError
from crmlens.kpis import KpiContext
from crmlens.metrics import funnel
from crmlens.params import validate_params
from crmlens.schema import Vocabulary
from crmlens.truths import FUNNEL_BOTTLENECK

Q3 = KpiContext(period_start=pd.Timestamp("2026-07-01"), period_end=pd.Timestamp("2026-10-01"), region="all",
                period_label="2026-Q3")
VOCAB = Vocabulary()
T = pd.Timestamp
NAT = pd.NaT
FUNNEL_KPIS = ("leads_created", "mql_rate", "sql_to_opportunity_rate", "lead_to_won_rate", "new_opportunities",
               "pipeline_amount", "win_rate", "median_stage_days")


def _ts(values):
    return pd.Series([T(v) if v else NAT for v in values], dtype="datetime64[us]")


def _str(values):
    return pd.Series(values, dtype="string")


@pytest.fixture
def leads() -> pd.DataFrame:
    """8 leads; L7 was created before Q3. L6 became an opportunity without MQL/SQL dates (a skipped step)."""
    return pd.DataFrame({
        "lead_id": _str(["L1", "L2", "L3", "L4", "L5", "L6", "L7", "L8"]),
        "created_at": _ts(["2026-07-05", "2026-07-10", "2026-08-01", "2026-08-02", "2026-08-03", "2026-09-01",
                           "2026-06-15", "2026-09-20"]),
        "source_channel": _str(["web", "web", "email", "email", "email", "web", "web", None]),
        "region_id": _str(["East", "East", "West", "West", "East", "West", "East", "West"]),
        "mql_at": _ts(["2026-07-06", "2026-07-11", "2026-08-02", "2026-08-03", None, None, "2026-06-16",
                       "2026-09-21"]),
        "sql_at": _ts(["2026-07-07", "2026-07-12", "2026-08-03", None, None, None, None, None]),
        "opportunity_id": _str(["O1", "O2", None, None, None, "O3", None, None]),
    })


@pytest.fixture
def opps() -> pd.DataFrame:
    """7 opportunities active in Q3: O1 won, O2/O4/O6 lost in Q3, O3/O7 open, O5 won after the quarter."""
    return pd.DataFrame({
        "opportunity_id": _str(["O1", "O2", "O3", "O4", "O5", "O6", "O7"]),
        "owner_rep_id": _str(["R1", "R2", "R1", "R2", "R1", "R1", "R2"]),
        "product_id": _str(["P1", "P2", "P1", "P1", "P2", "P2", "P1"]),
        "region_id": _str(["East", "East", "West", "West", "West", "East", "West"]),
        "created_at": _ts(["2026-07-20", "2026-07-25", "2026-09-05", "2026-03-01", "2026-02-01", "2026-06-01", None]),
        "stage": _str(["Won", "Lost", "Prospecting", "Lost", "Won", "Lost", "Qualification"]),
        "amount": [100.0, 50.0, 30.0, 20.0, 70.0, 40.0, np.nan],
        "closed_at": _ts(["2026-08-20", "2026-09-04", None, "2026-07-10", "2026-10-15", "2026-09-30", None]),
        "is_won": pd.array([True, False, None, False, True, False, None], dtype="boolean"),
        "loss_reason": _str([None, "price", None, "price", None, None, None]),
        "competitor": _str(["Apex", "Apex", None, None, None, "Nimbus", None]),
        "deal_type": _str(["new"] * 7),
    })


@pytest.fixture
def history() -> pd.DataFrame:
    """Stage history of X1..X4: X1 won, X2 lost from Prospecting, X3 still in Qualification, X4 moved back."""
    rows = [
        ("X1", "Prospecting", "2026-07-01", "2026-07-11"), ("X1", "Qualification", "2026-07-11", "2026-07-31"),
        ("X1", "Proposal", "2026-07-31", "2026-08-05"), ("X1", "Won", "2026-08-05", None),
        ("X2", "Prospecting", "2026-06-01", "2026-07-01"), ("X2", "Lost", "2026-07-01", None),
        ("X3", "Prospecting", "2026-05-01", "2026-06-01"), ("X3", "Qualification", "2026-06-01", None),
        ("X4", "Prospecting", "2026-08-01", "2026-08-03"), ("X4", "Qualification", "2026-08-03", "2026-08-09"),
        ("X4", "Prospecting", "2026-08-09", None),
    ]
    ids, stages, entered, exited = zip(*rows, strict=True)
    return pd.DataFrame({"opportunity_id": _str(ids), "stage": _str(stages), "entered_at": _ts(entered),
                         "exited_at": _ts(exited)})


@pytest.fixture
def history_opps() -> pd.DataFrame:
    return pd.DataFrame({"opportunity_id": _str(["X1", "X2", "X3", "X4"]),
                         "region_id": _str(["East", "East", "West", "West"]),
                         "created_at": _ts(["2026-07-01", "2026-06-01", "2026-05-01", "2026-08-01"]),
                         "amount": [10.0, 20.0, 30.0, 40.0]})


def _region_leads(counts: dict[str, tuple[int, int, int, int]]) -> pd.DataFrame:
    """Leads per region with (leads, MQLs, SQLs, opportunities), nested."""
    rows = []
    for region, (n, mql, sql, opp) in counts.items():
        for i in range(n):
            rows.append({"lead_id": f"{region}{i}", "created_at": "2026-07-01", "region_id": region,
                         "mql_at": "2026-07-02" if i < mql else None, "sql_at": "2026-07-03" if i < sql else None,
                         "opportunity_id": f"O{region}{i}" if i < opp else None})
    frame = pd.DataFrame(rows)
    for col in ("created_at", "mql_at", "sql_at"):
        frame[col] = _ts(frame[col].tolist())
    for col in ("lead_id", "region_id", "opportunity_id"):
        frame[col] = frame[col].astype("string")
    return frame


PEERS = {"A": (10, 5, 4, 2), "B": (10, 5, 4, 2), "C": (10, 5, 4, 2), "D": (10, 5, 4, 1), "E": (2, 0, 0, 0)}


# --------------------------------------------------------------------------------------- lead funnel

def test_lead_funnel_counts_the_period_cohort_with_skipped_steps_as_passed(leads, opps):
    f = funnel.lead_funnel(leads, opps, Q3)
    assert f["step_id"].tolist() == ["lead", "mql", "sql", "opportunity", "won"]
    assert f["n_leads"].tolist() == [7, 6, 4, 3, 1]
    assert f["opportunity_amount"].iloc[3:].tolist() == [180.0, 100.0]
    assert f["opportunity_amount"].iloc[:3].isna().all()
    assert math.isnan(f["conversion_rate"].iloc[0])
    assert f["conversion_rate"].iloc[1:].tolist() == pytest.approx([6 / 7, 4 / 6, 3 / 4, 1 / 3])
    assert f["drop_off_rate"].iloc[1:].tolist() == pytest.approx([1 / 7, 2 / 6, 1 / 4, 2 / 3])
    assert f["from_lead_rate"].tolist() == pytest.approx([1, 6 / 7, 4 / 7, 3 / 7, 1 / 7])


def test_lead_funnel_without_opportunities_stops_at_opportunity(leads):
    f = funnel.lead_funnel(leads)  # no ctx: every lead, L7 included
    assert f["step_id"].tolist() == ["lead", "mql", "sql", "opportunity"]
    assert f["n_leads"].tolist() == [8, 7, 4, 3]


def test_lead_funnel_does_not_modify_its_inputs(leads, opps):
    before_l, before_o = leads.copy(), opps.copy()
    funnel.lead_funnel(leads, opps, Q3)
    funnel.conversion_by(leads, opps, "source_channel", Q3)
    pd.testing.assert_frame_equal(leads, before_l)
    pd.testing.assert_frame_equal(opps, before_o)


def test_lead_funnel_periods_stacks_each_period(leads, opps):
    q2 = KpiContext(period_start=T("2026-04-01"), period_end=T("2026-07-01"), period_label="2026-Q2")
    stacked = funnel.lead_funnel_periods({"2026-Q3": ({"leads": leads, "opportunities": opps}, Q3),
                                          "2026-Q2": ({"leads": leads, "opportunities": opps}, q2)})
    assert stacked["period"].unique().tolist() == ["2026-Q3", "2026-Q2"]
    assert stacked.loc[stacked["period"] == "2026-Q2", "n_leads"].tolist() == [1, 1, 0, 0, 0]
    text = funnel.describe_funnel_periods(stacked).text
    assert text == "2026-Q3: 7 leads, 14% reached Won — vs 1 lead and 0% end to end in 2026-Q2."


def test_describe_lead_funnel_names_the_biggest_loss(leads, opps):
    text = funnel.describe_lead_funnel(funnel.lead_funnel(leads, opps, Q3)).text
    assert text.startswith("Of 7 leads created in the period, 1 reached Won (14% end to end).")
    assert "Opportunity→Won: 67% of the leads at Opportunity have not (yet) reached Won." in text


def test_conversion_by_channel(leads, opps):
    by = funnel.conversion_by(leads, opps, "source_channel", Q3)
    assert by["source_channel"].tolist() == ["email", "web", "(none)"]
    rows = by.set_index("source_channel")
    assert rows.loc["email", ["n_leads", "n_mql", "n_sql", "n_opportunity", "n_won"]].tolist() == [3, 2, 1, 0, 0]
    assert rows.loc["web", ["n_leads", "n_mql", "n_sql", "n_opportunity", "n_won"]].tolist() == [3, 3, 3, 3, 1]
    assert rows.loc["email", "mql_rate"] == pytest.approx(2 / 3)
    assert rows.loc["email", "mql_to_sql_rate"] == pytest.approx(1 / 2)
    assert rows.loc["web", "opportunity_to_won_rate"] == pytest.approx(1 / 3)
    assert math.isnan(rows.loc["email", "opportunity_to_won_rate"])  # no opportunity: no rate, not 0
    assert rows.loc["(none)", "sql_to_opportunity_rate"] != rows.loc["(none)", "sql_to_opportunity_rate"]


def test_conversion_trend_by_month(leads, opps):
    trend = funnel.conversion_trend(leads, opps, freq="month").set_index("period")
    assert trend.index.tolist() == ["2026-06", "2026-07", "2026-08", "2026-09"]
    assert trend.loc["2026-07", ["n_leads", "n_opportunity", "n_won"]].tolist() == [2, 2, 1]
    assert trend.loc["2026-07", "lead_to_won_rate"] == pytest.approx(0.5)
    assert trend.loc["2026-08", ["n_leads", "n_mql", "n_sql", "n_opportunity"]].tolist() == [3, 2, 1, 0]
    by = funnel.conversion_trend(leads, opps, freq="quarter", by="region_id")
    assert by[["period", "region_id", "n_leads"]].values.tolist() == [
        ["2026-Q2", "East", 1], ["2026-Q3", "East", 3], ["2026-Q3", "West", 4]]


# ------------------------------------------------------------------------------------- bottleneck

def test_compare_steps_against_the_median_of_peers():
    steps = funnel.compare_steps(_region_leads(PEERS), by="region_id", min_n=3)
    d = steps[(steps["group"] == "D") & (steps["step"] == "sql_to_opportunity")].iloc[0]
    assert (d["n_at_step"], d["n_converted"], d["rate"], d["peer_rate"], d["ratio"]) == (4, 1, 0.25, 0.5, 0.5)
    a = steps[(steps["group"] == "A") & (steps["step"] == "sql_to_opportunity")].iloc[0]
    assert (a["peer_rate"], a["ratio"]) == (0.5, 1.0)  # median of B, C, D = 0.5; E is too small to count
    e = steps[steps["group"] == "E"]
    assert e["ratio"].isna().all()
    assert set(steps["step"]) == {"lead_to_mql", "mql_to_sql", "sql_to_opportunity"}  # no won without opps


def test_leads_without_a_value_are_neither_judged_nor_peers():
    unassigned = _region_leads({**PEERS, "E": (10, 0, 0, 0)})
    unassigned["region_id"] = unassigned["region_id"].mask(unassigned["region_id"] == "E")
    steps = funnel.compare_steps(unassigned, min_n=3)
    none = steps[steps["group"] == "(none)"]
    assert len(none) == 3 and none["ratio"].isna().all()
    assert steps.loc[steps["group"] == "A", "peer_rate"].tolist() == [0.5, 0.8, 0.5]  # (none)'s 0% is not a peer
    assert funnel.diagnose_bottleneck(steps).group == "D"


def test_diagnose_bottleneck_flags_the_worst_group_and_step():
    steps = funnel.compare_steps(_region_leads(PEERS), min_n=3)
    found = funnel.diagnose_bottleneck(steps)
    assert (found.group, found.step, found.kind, found.flagged) == ("D", "sql_to_opportunity", "conversion", True)
    assert (found.value, found.peer_value, found.ratio, found.n_entered) == (0.25, 0.5, 0.5, 4)
    assert funnel.describe_bottleneck(found).text == (
        "D converts SQL→opportunity at 25% vs 50% for the other regions (0.50×, 4 leads entering the step) "
        "— the bottleneck.")
    healthy = funnel.diagnose_bottleneck(steps, focus="A")
    assert healthy.group == "A" and not healthy.flagged
    assert funnel.describe_bottleneck(healthy).text.startswith("No step is abnormally weak")
    assert funnel.diagnose_bottleneck(steps, threshold=0.4).flagged is False
    assert funnel.diagnose_bottleneck(steps).as_frame()["group"].tolist() == ["D"]


def test_compare_stage_days_and_a_dwell_bottleneck(history, history_opps):
    dwell = funnel.compare_stage_days(history, history_opps, VOCAB, min_n=1)
    rows = dwell.set_index(["group", "step"])
    assert rows.loc[("East", "Prospecting"), ["n_entries", "median_days", "peer_median_days"]].tolist() == [2, 20, 16.5]
    assert rows.loc[("East", "Prospecting"), "ratio"] == pytest.approx(16.5 / 20)
    assert rows.loc[("East", "Qualification"), "ratio"] == pytest.approx(6 / 20)
    assert math.isnan(rows.loc[("East", "Proposal"), "ratio"])  # no peer has been in Proposal
    assert dwell["step"].tolist()[:2] == ["Prospecting", "Prospecting"]  # vocabulary order
    steps = funnel.compare_steps(_region_leads(PEERS), min_n=3)
    worst = funnel.diagnose_bottleneck(steps, dwell)
    assert (worst.group, worst.step, worst.kind) == ("East", "Qualification", "dwell")
    assert funnel.describe_bottleneck(worst).text == (
        "East deals spend 20 days in Qualification vs 6 for the other regions (3.3× as long) — the bottleneck.")


# ---------------------------------------------------------------------------------------- velocity

def test_stage_days_of_entries_left_in_the_period(history):
    days = funnel.stage_days(history, VOCAB, Q3)
    assert days["stage"].tolist() == ["Prospecting", "Qualification", "Proposal", "Negotiation"]
    assert days["n_entries"].tolist() == [3, 2, 1, 0]
    assert days["median_days"].tolist()[:3] == [10, 13, 5] and math.isnan(days["median_days"].iloc[3])
    assert days["mean_days"].tolist()[:2] == [14, 13]
    assert funnel.stage_days(history, VOCAB)["median_days"].iloc[0] == 20  # X3's 31 days count without a period
    assert funnel.describe_stage_days(days).text == (
        "Deals wait longest in Qualification (median 13 days over 2 stage exits); the stage medians add up to "
        "28 days.")


def test_stage_to_stage_days(history):
    moves = funnel.stage_to_stage_days(history, VOCAB, Q3)
    assert moves[["from_stage", "to_stage", "n_moves", "median_days"]].values.tolist() == [
        ["Prospecting", "Qualification", 2, 6.0], ["Prospecting", "Lost", 1, 30.0],
        ["Qualification", "Prospecting", 1, 6.0], ["Qualification", "Proposal", 1, 20.0],
        ["Proposal", "Won", 1, 5.0]]


def test_stage_reach_of_opportunities_created_in_the_period(history, history_opps):
    reach = funnel.stage_reach(history, history_opps, VOCAB, Q3)
    assert reach["stage"].tolist() == ["Prospecting", "Qualification", "Proposal", "Negotiation", "Won"]
    assert reach["n_reached"].tolist() == [2, 2, 1, 0, 1]
    assert reach["amount"].tolist() == [50, 50, 10, 0, 10]
    assert reach["conversion_rate"].tolist()[1:4] == [1.0, 0.5, 0.0] and math.isnan(reach["conversion_rate"].iloc[4])


# ---------------------------------------------------------------------------------- opportunities

def test_opportunity_funnel_follows_the_vocabulary(opps):
    f = funnel.opportunity_funnel(opps, VOCAB)
    assert f["stage"].tolist() == list(VOCAB.stages)
    assert f["n_opportunities"].tolist() == [1, 1, 0, 0, 2, 3]
    assert f["amount"].tolist()[0] == 30 and f["amount"].tolist()[4:] == [170, 110]
    assert f["amount"].iloc[1:4].isna().all()  # unknown amount (O7) and empty stages: missing, not 0
    assert f["share_rate"].sum() == pytest.approx(1)
    other = Vocabulary(stages=("Open", "Engaged", "Closed Won", "Closed Lost"), won_stage="Closed Won",
                       lost_stage="Closed Lost")
    renamed = opps.assign(stage=opps["stage"].replace({"Won": "Closed Won", "Lost": "Closed Lost",
                                                       "Prospecting": "Open", "Qualification": "Engaged"}))
    assert funnel.opportunity_funnel(renamed, other)["n_opportunities"].tolist() == [1, 1, 2, 3]


def test_opportunity_summary_and_description(opps):
    row = funnel.opportunity_summary(opps, Q3).iloc[0]
    assert row[["n_active", "n_new", "new_amount", "n_closed", "n_won", "n_lost", "won_amount"]].tolist() == [
        7, 3, 180, 4, 1, 3, 100]
    assert row["win_rate"] == 0.25
    assert (row["n_open_at_end"], row["pipeline_amount"], row["median_cycle_days"]) == (3, 100, 81)
    assert funnel.describe_opportunities(funnel.opportunity_summary(opps, Q3)).text == (
        "3 new opportunities worth 180; 4 closed, 1 won (win rate 25%, 100 booked); 3 still open at period end "
        "worth 100.")


def test_win_loss(opps):
    wl = funnel.win_loss(opps, Q3).set_index("outcome")
    assert wl.loc["Won", ["n_opportunities", "amount", "share_rate", "avg_amount", "median_cycle_days"]].tolist() == [
        1, 100, 0.25, 100, 31]
    assert wl.loc["Lost", ["n_opportunities", "amount", "median_cycle_days"]].tolist() == [3, 110, 121]
    assert wl.loc["Lost", "avg_amount"] == pytest.approx(110 / 3)
    assert funnel.describe_win_loss(funnel.win_loss(opps, Q3)).text == (
        "1 of 4 closed deals were won (25%); won deals took 31 days from creation to close (median) vs 121 for "
        "lost ones.")


def test_loss_reasons(opps):
    lr = funnel.loss_reasons(opps, Q3)
    assert lr[["loss_reason", "n_lost", "lost_amount"]].values.tolist() == [["price", 2, 70.0], ["(none)", 1, 40.0]]
    assert lr["share_rate"].tolist() == pytest.approx([2 / 3, 1 / 3])
    assert lr["amount_share_rate"].tolist() == pytest.approx([70 / 110, 40 / 110])
    assert funnel.describe_loss_reasons(lr).text == "price is the top reason for losing: 2 of 3 lost deals (67%)."
    no_column = funnel.loss_reasons(opps.drop(columns="loss_reason"), Q3)
    assert no_column[["loss_reason", "n_lost"]].values.tolist() == [["(none)", 3]]
    assert "records no loss reason" in funnel.describe_loss_reasons(no_column).text


def test_win_rate_by_competitor_and_product_line(opps):
    comp = funnel.win_rate_by(opps, "competitor", Q3)
    assert comp[["competitor", "n_closed", "n_won", "won_amount"]].values.tolist() == [
        ["Apex", 2, 1, 100.0], ["(none)", 1, 0, 0.0], ["Nimbus", 1, 0, 0.0]]
    assert comp["win_rate"].tolist() == [0.5, 0.0, 0.0]
    products = pd.DataFrame({"product_id": _str(["P1", "P2"]), "product_line": _str(["Core", "Cloud"])})
    lines = funnel.win_rate_by(opps, "product_line", Q3, products)
    assert lines[["product_line", "n_closed", "n_won"]].values.tolist() == [["Cloud", 2, 0], ["Core", 2, 1]]
    assert funnel.describe_win_rate_by(lines, min_closed=2).text == (
        "Win rate ranges from 0% (Cloud, 2 closed) to 50% (Core, 2 closed).")
    assert funnel.describe_win_rate_by(lines).text.startswith("Too few closed deals per product line (under 10)")
    nobody = funnel.win_rate_by(opps.assign(competitor=pd.NA), "competitor", Q3)
    assert funnel.describe_win_rate_by(nobody).text == "No competitor is recorded on these deals."


def test_win_rate_trend(opps):
    trend = funnel.win_rate_trend(opps, freq="month")
    assert trend[["period", "n_closed", "n_won"]].values.tolist() == [
        ["2026-07", 1, 0], ["2026-08", 1, 1], ["2026-09", 2, 0], ["2026-10", 1, 1]]
    assert trend["win_rate"].tolist() == [0, 1, 0, 1]


# -------------------------------------------------------------------------------------------- KPIs

def test_kpis_are_registered_with_their_definitions():
    registry = kpis.load_all()
    got = {n: (registry[n].unit, registry[n].direction, registry[n].area) for n in FUNNEL_KPIS}
    assert got == {
        "leads_created": ("count", "higher", "sales_funnel"), "mql_rate": ("rate", "higher", "sales_funnel"),
        "sql_to_opportunity_rate": ("rate", "higher", "sales_funnel"),
        "lead_to_won_rate": ("rate", "higher", "sales_funnel"),
        "new_opportunities": ("count", "higher", "sales_funnel"),
        "pipeline_amount": ("amount", "higher", "sales_funnel"), "win_rate": ("rate", "higher", "sales_funnel"),
        "median_stage_days": ("days", "lower", "sales_funnel")}


def test_kpi_values_on_the_fixtures(leads, opps, history):
    frames = {"leads": leads, "opportunities": opps}
    values = {n: kpis.compute_kpi(n, frames, Q3) for n in FUNNEL_KPIS}
    assert values == pytest.approx({"leads_created": 7, "mql_rate": 6 / 7, "sql_to_opportunity_rate": 3 / 4,
                                    "lead_to_won_rate": 1 / 7, "new_opportunities": 3, "pipeline_amount": 100,
                                    "win_rate": 0.25, "median_stage_days": 81})
    # with a stage history, an earlier first stage entry lengthens O2's time in open stages to 101 days
    entries = pd.DataFrame({"opportunity_id": _str(["O2"]), "stage": _str(["Prospecting"]),
                            "entered_at": _ts(["2026-05-26"]), "exited_at": _ts(["2026-06-30"])})
    with_history = {**frames, "opportunity_stage_history": entries}
    assert kpis.compute_kpi("median_stage_days", with_history, Q3) == pytest.approx((101 + 121) / 2)


def test_kpis_are_none_without_data(leads, opps):
    empty = {"leads": leads.iloc[0:0], "opportunities": opps.iloc[0:0]}
    assert {n: kpis.compute_kpi(n, empty, Q3) for n in FUNNEL_KPIS} == dict.fromkeys(FUNNEL_KPIS)
    # a source without leads: lead KPIs are "no data", opportunity KPIs still work
    only_opps = {"opportunities": opps}
    assert kpis.compute_kpi("mql_rate", only_opps, Q3) is None
    assert kpis.compute_kpi("win_rate", only_opps, Q3) == 0.25
    # open deals with unknown amounts: no pipeline amount rather than a fake 0
    unknown = opps.assign(amount=np.nan)
    assert kpis.compute_kpi("pipeline_amount", {"opportunities": unknown}, Q3) is None


# ---------------------------------------------------------------------------------- failure modes

def test_empty_frames_give_empty_results_not_errors(leads, opps, history):
    f = funnel.lead_funnel(leads.iloc[0:0], opps.iloc[0:0], Q3)
    assert f["n_leads"].tolist() == [0, 0, 0, 0, 0] and f["conversion_rate"].isna().all()
    assert funnel.describe_lead_funnel(f).text == "No leads were created in the period."
    assert funnel.conversion_by(leads.iloc[0:0], None, "source_channel").empty
    assert funnel.loss_reasons(opps.iloc[0:0], Q3).empty
    no_loss = funnel.describe_loss_reasons(funnel.loss_reasons(opps.iloc[0:0], Q3))
    assert no_loss.text == "No deal was lost in the period."
    no_close = funnel.describe_win_loss(funnel.win_loss(opps.iloc[0:0], Q3))
    assert no_close.text == "No opportunity was closed in the period."
    assert funnel.stage_days(history.iloc[0:0], VOCAB)["n_entries"].tolist() == [0, 0, 0, 0]
    assert funnel.describe_stage_days(funnel.stage_days(history.iloc[0:0], VOCAB)).text.startswith("No opportunity")
    nothing = funnel.diagnose_bottleneck(funnel.compare_steps(leads.iloc[0:0]))
    assert nothing.group is None and "Not enough data" in funnel.describe_bottleneck(nothing).text


@pytest.mark.parametrize(("call", "param"), [
    (lambda ld, o: funnel.conversion_by(ld, o, "colour"), "by"),
    (lambda ld, o: funnel.conversion_trend(ld, o, freq="decade"), "freq"),
    (lambda ld, o: funnel.conversion_trend(ld, o, by="colour"), "by"),
    (lambda ld, o: funnel.compare_steps(ld, o, by="colour"), "by"),
    (lambda ld, o: funnel.compare_steps(ld, o, min_n=0), "min_n"),
    (lambda ld, o: funnel.diagnose_bottleneck(funnel.compare_steps(ld, o, min_n=1), threshold=1.5), "threshold"),
    (lambda ld, o: funnel.diagnose_bottleneck(funnel.compare_steps(ld, o, min_n=1), focus="Mars"), "focus"),
    (lambda ld, o: funnel.win_rate_by(o, "colour", Q3), "by"),
    (lambda ld, o: funnel.win_rate_by(o, "product_line", Q3), "products"),
    (lambda ld, o: funnel.win_rate_by(o.drop(columns="competitor"), "competitor", Q3), "by"),
    (lambda ld, o: funnel.win_rate_trend(o, by="colour"), "by"),
    (lambda ld, o: funnel.conversion_by(ld.drop(columns="source_channel"), o, "source_channel"), "by"),
])
def test_bad_parameters_name_the_parameter(leads, opps, call, param):
    with pytest.raises(ParameterError, match=rf"^{param}: "):
        call(leads, opps)


def test_unknown_grouping_for_dwell_names_the_parameter(history, history_opps):
    with pytest.raises(ParameterError, match=r"^by: .*'colour'"):
        funnel.compare_stage_days(history, history_opps, VOCAB, by="colour")


def test_a_missing_required_column_is_named(leads, opps):
    with pytest.raises(SchemaError, match="leads: missing column mql_at"):
        funnel.lead_funnel(leads.drop(columns="mql_at"))
    with pytest.raises(SchemaError, match="opportunities: missing column is_won"):
        funnel.win_loss(opps.drop(columns="is_won"), Q3)


def test_a_lead_whose_opportunity_is_not_in_the_frames_counts_as_not_won(leads, opps):
    f = funnel.lead_funnel(leads, opps[opps["opportunity_id"] != "O1"], Q3).set_index("step_id")
    assert (f.loc["opportunity", "n_leads"], f.loc["won", "n_leads"]) == (3, 0)
    assert f.loc["opportunity", "opportunity_amount"] == 80  # O1's amount is unknown


# --------------------------------------------------------------------------- planted truth (demo)

@pytest.fixture(scope="module")
def demo_con(tiny_demo):
    return data.connect(tiny_demo)


def _slice(con, folder, region):
    params = validate_params({"region": region, "period": "2026-Q3", "as_of": "2026-10-01", "source": str(folder)})
    return data.open_slice(params, con)


@pytest.fixture(scope="module")
def demo_all(demo_con, tiny_demo):
    return _slice(demo_con, tiny_demo, "all")


@pytest.fixture(scope="module")
def demo_east(demo_con, tiny_demo):
    return _slice(demo_con, tiny_demo, FUNNEL_BOTTLENECK.region_id)


def _diagnose(s, focus):
    leads = funnel.history(s, "leads", 8, every_region=True)
    opps = funnel.history(s, "opportunities", 8, every_region=True)
    steps = funnel.compare_steps(leads, opps)
    dwell = funnel.compare_stage_days(funnel.history(s, "opportunity_stage_history", 8, every_region=True), opps,
                                      s.info.vocabulary)
    return steps, funnel.diagnose_bottleneck(steps, dwell, focus=focus)


def test_the_planted_bottleneck_is_found_comparing_all_regions(demo_all):
    steps, found = _diagnose(demo_all, "all")
    assert (found.group, found.step, found.kind, found.flagged) == (
        FUNNEL_BOTTLENECK.region_id, FUNNEL_BOTTLENECK.step, "conversion", True)
    assert found.ratio < 0.6
    assert found.value == pytest.approx(FUNNEL_BOTTLENECK.rate, abs=0.08)
    assert found.peer_value == pytest.approx(FUNNEL_BOTTLENECK.others_rate, abs=0.08)
    text = funnel.describe_bottleneck(found).text
    assert text.startswith("East converts SQL→opportunity at") and text.endswith("— the bottleneck.")
    # the other steps of the planted region are normal
    east = steps[(steps["group"] == "East") & steps["step"].isin(["lead_to_mql", "mql_to_sql"])]
    assert east["ratio"].between(0.8, 1.25).all()


def test_the_planted_bottleneck_is_found_from_the_region_itself(demo_east):
    leads = funnel.history(demo_east, "leads", 8, every_region=True)
    assert set(leads["region_id"]) > {"East"}  # the peers are loaded, not just the slice's region
    assert set(demo_east.history("leads", 8)["region_id"]) == {"East"}  # and the slice itself is untouched
    _, found = _diagnose(demo_east, "East")
    assert (found.group, found.step, found.flagged) == ("East", "sql_to_opportunity", True)


def test_a_healthy_region_has_no_flagged_bottleneck(demo_all):
    _, found = _diagnose(demo_all, "West")
    assert found.group == "West" and not found.flagged


def test_rates_match_an_independent_computation_on_the_raw_demo(demo_all, tiny_demo):
    raw = pd.read_parquet(tiny_demo / "leads.parquet")
    window = raw[(raw["created_at"] >= "2024-10-01") & (raw["created_at"] < "2026-10-01")]
    sql = window[window["sql_at"].notna()]
    expected = (sql["opportunity_id"].notna().groupby(sql["region_id"]).mean()).to_dict()
    steps = funnel.compare_steps(funnel.history(demo_all, "leads", 8, every_region=True))
    got = steps[steps["step"] == "sql_to_opportunity"].set_index("group")["rate"].to_dict()
    assert got == pytest.approx(expected)
    q3 = raw[(raw["created_at"] >= "2026-07-01") & (raw["created_at"] < "2026-10-01")]
    ctx = KpiContext(period_start=T("2026-07-01"), period_end=T("2026-10-01"))
    assert kpis.compute_kpi("leads_created", demo_all.tables, ctx) == len(q3)
    assert kpis.compute_kpi("mql_rate", demo_all.tables, ctx) == pytest.approx(q3["mql_at"].notna().mean())
    opps = pd.read_parquet(tiny_demo / "opportunities.parquet")
    closed = opps[(opps["closed_at"] >= "2026-07-01") & (opps["closed_at"] < "2026-10-01")]
    assert kpis.compute_kpi("win_rate", demo_all.tables, ctx) == pytest.approx(closed["is_won"].mean())


# --------------------------------------------------------------------------------- Maven cross-check

@pytest.fixture(scope="module")
def maven_slice(maven_con):
    params = validate_params({"region": "all", "period": "2016-10-01..2017-12-31", "as_of": "2018-01-01",
                              "source": "demo"})
    return data.open_slice(params, maven_con)


def test_maven_win_rate_per_regional_office_matches_the_raw_export(maven_slice, maven_dir):
    ctx = KpiContext(period_start=maven_slice.period.start, period_end=maven_slice.period.end)
    got = funnel.win_rate_by(maven_slice.tables["opportunities"], "region_id", ctx)
    raw = pd.read_csv(maven_dir / "sales_pipeline.csv").merge(pd.read_csv(maven_dir / "sales_teams.csv"),
                                                             on="sales_agent")
    closed = raw[raw["deal_stage"].isin(["Won", "Lost"])]
    expected = (closed["deal_stage"] == "Won").groupby(closed["regional_office"]).agg(["size", "sum", "mean"])
    got = got.set_index("region_id").sort_index()
    assert got.index.tolist() == sorted(expected.index) == ["Central", "East", "West"]
    assert got["n_closed"].tolist() == expected["size"].tolist()
    assert got["n_won"].tolist() == expected["sum"].tolist()
    assert got["win_rate"].tolist() == pytest.approx(expected["mean"].tolist())
    overall = (closed["deal_stage"] == "Won").mean()
    assert kpis.compute_kpi("win_rate", maven_slice.tables, ctx) == pytest.approx(overall)


def test_maven_opportunity_funnel_and_win_loss_work_without_leads(maven_slice, maven_dir):
    vocab = maven_slice.info.vocabulary
    f = funnel.opportunity_funnel(maven_slice.tables["opportunities"], vocab)
    raw = pd.read_csv(maven_dir / "sales_pipeline.csv")
    assert f["stage"].tolist() == ["Prospecting", "Engaging", "Won", "Lost"]
    assert f["n_opportunities"].tolist() == raw["deal_stage"].value_counts()[f["stage"]].tolist()
    ctx = KpiContext(period_start=maven_slice.period.start, period_end=maven_slice.period.end)
    wl = funnel.win_loss(maven_slice.tables["opportunities"], ctx).set_index("outcome")
    assert wl.loc["Won", "amount"] == raw.loc[raw["deal_stage"] == "Won", "close_value"].sum()
    assert kpis.compute_kpi("lead_to_won_rate", maven_slice.tables, ctx) is None
    assert funnel.history(maven_slice, "leads", 4) is None  # quietly: the notebook's section says why


# ------------------------------------------------------------------------------------------ charts

def test_the_chart_builders_draw_the_computed_frames(leads, opps, history):
    from crmlens.charts import funnel as charts

    q2 = KpiContext(period_start=T("2026-04-01"), period_end=T("2026-07-01"), period_label="2026-Q2")
    periods = funnel.lead_funnel_periods({"2026-Q3": ({"leads": leads, "opportunities": opps}, Q3),
                                          "2026-Q2": ({"leads": leads, "opportunities": opps}, q2)})
    assert [t.name for t in charts.plot_lead_funnel(periods).data] == ["2026-Q3", "2026-Q2"]
    steps = funnel.compare_steps(_region_leads(PEERS), min_n=3)
    heat = charts.plot_peer_ratios(steps).data[0]
    assert list(heat.y) == ["A", "B", "C", "D", "E"] and list(heat.x) == ["lead→MQL", "MQL→SQL", "SQL→opportunity"]
    bars = charts.plot_step_comparison(steps, funnel.diagnose_bottleneck(steps))
    assert bars.data[0].marker.color[0] == charts.COLORS["bad"]  # D, the flagged group, has the lowest rate
    assert bars.layout.title.text == "SQL→opportunity rate by region"
    assert len(charts.plot_conversion_trend(funnel.conversion_trend(leads, opps, freq="month")).data) == 4
    assert list(charts.plot_stage_days(funnel.stage_days(history, VOCAB, Q3)).data[0].x) == list(VOCAB.open_stages)
    assert list(charts.plot_opportunity_stages(funnel.opportunity_funnel(opps, VOCAB)).data[0].y) == [1, 1, 0, 0, 2, 3]
    rates = charts.plot_win_rates(funnel.win_rate_by(opps, "competitor", Q3))
    assert rates.layout.title.text == "Win rate by competitor"
    assert len(charts.plot_loss_reasons(funnel.loss_reasons(opps, Q3)).data[0].x) == 2
