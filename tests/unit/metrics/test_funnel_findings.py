"""Sales funnel findings that hold (issue 11): each describe function's record (severity, recommendation, KPI,
weight), and the cases where a naive sentence would be false — ties, a single item, zero denominators, unknown
amounts, absent columns and tables. Also: reader tables (every result column registered), the slice-level
entry points, charts keyed by id, and the Chinese catalogue of this area."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from crmlens import i18n, present
from crmlens.findings import Finding
from crmlens.kpis import KPIS, KpiContext
from crmlens.metrics import funnel
from crmlens.schema import Vocabulary

Q3 = KpiContext(period_start=pd.Timestamp("2026-07-01"), period_end=pd.Timestamp("2026-10-01"), region="all",
                period_label="2026-Q3")
VOCAB = Vocabulary()


def _str(values):
    return pd.Series(values, dtype="string")


def _ts(values):
    return pd.Series([pd.Timestamp(v) if v else pd.NaT for v in values], dtype="datetime64[us]")


def _win_rates(by: str, rows: list[tuple[str, int, int]]) -> pd.DataFrame:
    """A `win_rate_by` frame from (value, closed, won) rows."""
    frame = pd.DataFrame(rows, columns=[by, "n_closed", "n_won"])
    frame[by] = frame[by].astype("string")
    frame["won_amount"] = frame["n_won"] * 10.0
    frame["win_rate"] = frame["n_won"] / frame["n_closed"]
    return frame


def _lead_funnel(counts: list[int]) -> pd.DataFrame:
    leads = []
    for i in range(counts[0]):
        leads.append({"lead_id": f"L{i}", "created_at": "2026-07-05",
                      "mql_at": "2026-07-06" if i < counts[1] else None,
                      "sql_at": "2026-07-07" if i < counts[2] else None,
                      "opportunity_id": f"O{i}" if i < counts[3] else None})
    frame = pd.DataFrame(leads)
    for col in ("created_at", "mql_at", "sql_at"):
        frame[col] = _ts(frame[col].tolist())
    for col in ("lead_id", "opportunity_id"):
        frame[col] = frame[col].astype("string")
    return frame


def _opps(rows: list[tuple]) -> pd.DataFrame:
    """Opportunities from (id, created, closed, is_won, amount, loss_reason) rows."""
    ids, created, closed, won, amount, reason = zip(*rows, strict=True)
    return pd.DataFrame({"opportunity_id": _str(ids), "created_at": _ts(created), "closed_at": _ts(closed),
                         "is_won": pd.array(won, dtype="boolean"), "amount": list(amount),
                         "stage": _str(["Won" if w else ("Lost" if c else "Prospecting")
                                        for w, c in zip(won, closed, strict=True)]),
                         "loss_reason": _str(reason), "owner_rep_id": _str(["R1"] * len(ids))})


# ------------------------------------------------------------------------------------ win rate by

def test_equal_win_rates_are_not_a_range():
    frame = _win_rates("product_line", [("Core", 12, 12), ("Cloud", 10, 10)])
    found = funnel.describe_win_rate_by(frame)
    assert "ranges" not in found.text
    assert found.text == "All 2 product lines with 10 or more closed deals have the same win rate, 100%."
    assert found.severity == "info" and found.recommendation == ""


def test_a_single_group_is_not_a_comparison():
    frame = _win_rates("region_id", [("East", 25, 13)])
    found = funnel.describe_win_rate_by(frame)
    assert found.text == "East: win rate 52% over 25 closed deals; no other region to compare with."
    assert "ranges" not in found.text and found.severity == "info"
    # "(none)" is not a second group
    with_none = _win_rates("competitor", [("Apex", 12, 6), ("(none)", 30, 10)])
    assert "no other competitor to compare with" in funnel.describe_win_rate_by(with_none).text


def test_tied_extremes_are_named_together_and_a_wide_gap_is_a_watch():
    frame = _win_rates("competitor", [("Apex", 10, 2), ("Nimbus", 10, 2), ("Orion", 20, 10)])
    found = funnel.describe_win_rate_by(frame)
    assert found.text == "Win rate ranges from 20% (Apex and Nimbus, 20 closed) to 50% (Orion, 20 closed)."
    assert found.severity == "watch" and found.kpi == "win_rate" and found.weight == pytest.approx(0.3)
    assert found.recommendation == ""  # two weakest: no single competitor to prepare against
    single = _win_rates("competitor", [("Apex", 10, 2), ("Orion", 20, 10)])
    advice = funnel.describe_win_rate_by(single).recommendation
    assert advice == "Prepare the team's answer to Apex: we win 20% of the deals it is on, vs 50% against Orion."


def test_a_narrow_gap_is_context():
    found = funnel.describe_win_rate_by(_win_rates("product_line", [("Core", 10, 5), ("Cloud", 10, 4)]))
    assert found.severity == "info" and found.weight == pytest.approx(0.1)


def test_reps_are_named_with_their_id():
    frame = _win_rates("owner_rep_id", [("R1", 10, 2), ("R2", 10, 8)])
    frame.insert(1, "name", _str(["David Huang", "David Huang"]))
    found = funnel.describe_win_rate_by(frame)
    assert "David Huang (R1), 10 closed" in found.text
    assert found.recommendation == ("Have David Huang (R1)'s manager review their open deals with them; "
                                    "David Huang (R2) wins 80%.")


def test_win_rate_by_keeps_unknown_won_amounts_missing():
    opps = _opps([("A", "2026-07-01", "2026-08-01", True, np.nan, None),
                  ("B", "2026-07-01", "2026-08-02", False, 50.0, "price")])
    out = funnel.win_rate_by(opps, "owner_rep_id", Q3)
    assert math.isnan(out["won_amount"].iloc[0])  # a won deal of unknown amount: not 0
    lost_only = funnel.win_rate_by(opps.iloc[1:], "owner_rep_id", Q3)
    assert lost_only["won_amount"].tolist() == [0.0]  # no won deal: a true zero


# ------------------------------------------------------------------------------------ lead funnel

def test_lead_funnel_findings_tie_and_no_drop():
    tie = funnel.lead_funnel(_lead_funnel([8, 4, 2, 2]))  # lead→MQL and MQL→SQL both lose 50%
    found = funnel.describe_lead_funnel(tie)
    assert "The biggest drops so far, 50% each, are Lead→MQL and MQL→SQL." in found.text
    assert "The biggest drop so far is" not in found.text
    assert found.severity == "info" and found.kpi == "leads_created"
    none_lost = funnel.describe_lead_funnel(funnel.lead_funnel(_lead_funnel([3, 3, 3, 3])))
    assert none_lost.text.endswith("No step has lost a lead so far.")


def test_no_leads_is_a_watch_not_a_zero_rate():
    empty = funnel.lead_funnel(_lead_funnel([1, 0, 0, 0]).iloc[0:0])
    found = funnel.describe_lead_funnel(empty)
    assert found.text == "No leads were created in the period." and found.severity == "watch"
    assert found.kpi == "leads_created" and found.recommendation


def _periods(current: int, previous: int, *, as_of=None) -> pd.DataFrame:
    q2 = KpiContext(period_start=pd.Timestamp("2026-04-01"), period_end=pd.Timestamp("2026-07-01"),
                    period_label="2026-Q2")
    q3 = KpiContext(period_start=Q3.period_start, period_end=Q3.period_end, period_label="2026-Q3", as_of=as_of)
    cur = _lead_funnel([current, 0, 0, 0])
    prev = _lead_funnel([previous, 0, 0, 0]).assign(created_at=_ts(["2026-05-01"] * previous))
    leads = pd.concat([cur, prev], ignore_index=True)
    return funnel.lead_funnel_periods({"2026-Q3": ({"leads": leads}, q3), "2026-Q2": ({"leads": leads}, q2)})


def test_funnel_periods_judge_lead_volume_only_for_a_finished_period():
    fewer = funnel.describe_funnel_periods(_periods(6, 10))
    assert fewer.severity == "watch" and fewer.kpi == "leads_created" and fewer.weight == pytest.approx(0.4)
    assert fewer.recommendation == "Review lead generation with marketing: -40% leads vs 2026-Q2."
    under_way = funnel.describe_funnel_periods(_periods(6, 10, as_of=pd.Timestamp("2026-08-15")))
    assert under_way.severity == "info" and under_way.recommendation == ""
    assert funnel.describe_funnel_periods(_periods(15, 10)).severity == "good"
    assert funnel.describe_funnel_periods(_periods(10, 10)).severity == "info"


def test_one_period_is_not_a_comparison():
    one = _periods(6, 10)
    assert funnel.describe_funnel_periods(one[one["period"] == "2026-Q3"]) is None
    assert funnel.describe_funnel_periods(pd.DataFrame()) is None


# ------------------------------------------------------------------------------------- bottleneck

def _bottleneck(**changes) -> funnel.Bottleneck:
    base = {"dimension": "region_id", "group": "East", "step": "sql_to_opportunity", "kind": "conversion",
            "value": 0.18, "peer_value": 0.35, "ratio": 0.18 / 0.35, "n_entered": 120, "flagged": True,
            "threshold": 0.7}
    return funnel.Bottleneck(**{**base, **changes})


def test_a_flagged_bottleneck_is_an_act_with_the_step_to_review():
    found = funnel.describe_bottleneck(_bottleneck())
    assert found.text == ("East converts SQL→opportunity at 18% vs 35% for the other regions (0.51×, 120 leads "
                          "entering the step) — the bottleneck.")
    assert (found.severity, found.kpi) == ("act", "sql_to_opportunity_rate")
    assert found.recommendation == "Review how East's SDRs hand SQLs to reps."
    assert found.weight == pytest.approx(1 - 0.18 / 0.35)
    named = funnel.describe_bottleneck(_bottleneck(name="East China"))
    assert named.text.startswith("East China converts") and "East China's SDRs" in named.recommendation
    rep = funnel.describe_bottleneck(_bottleneck(dimension="owner_rep_id", group="R7", name="Lei Li",
                                                 step="mql_to_sql"))
    assert rep.text.startswith("Lei Li (R7) converts MQL→SQL") and "for the other reps" in rep.text
    assert rep.recommendation == "Review with Lei Li (R7) how their MQLs are followed up and qualified."


def test_a_healthy_set_is_context_and_no_data_says_so():
    healthy = funnel.describe_bottleneck(_bottleneck(ratio=0.9, flagged=False))
    assert healthy.severity == "info" and healthy.recommendation == ""
    assert healthy.text.startswith("No step is abnormally weak (none below 70% of its peers)")
    nothing = funnel.describe_bottleneck(funnel.Bottleneck("region_id", None, None, None, None, None, None, 0, False,
                                                           0.7))
    assert nothing.severity == "info" and "Not enough data" in nothing.text
    assert funnel.describe_bottleneck(None) is None
    assert funnel.diagnose_bottleneck(None) is None  # the section was skipped for want of leads


def test_equally_weak_groups_are_a_tie_not_one_bottleneck():
    leads = []
    for region, (n, sql, opp) in {"A": (10, 4, 2), "B": (10, 4, 2), "C": (10, 4, 1), "D": (10, 4, 1),
                                  "E": (10, 4, 2)}.items():
        frame = _lead_funnel([n, sql, sql, opp]).assign(region_id=region)
        frame["lead_id"] = region + frame["lead_id"]
        frame["opportunity_id"] = region + frame["opportunity_id"]
        leads.append(frame)
    steps = funnel.compare_steps(pd.concat(leads, ignore_index=True).astype({"region_id": "string"}), min_n=3)
    found = funnel.diagnose_bottleneck(steps)
    assert found.group == "C" and found.tied_with == ("D (SQL→opportunity)",)
    text = funnel.describe_bottleneck(found).text
    assert text.endswith("— the bottleneck, tied with D (SQL→opportunity).")


def test_a_dwell_bottleneck_against_peers_of_zero_days_has_no_infinite_factor():
    found = funnel.describe_bottleneck(_bottleneck(kind="dwell", step="Proposal", value=12.0, peer_value=0.0,
                                                   ratio=0.0))
    assert "×" not in found.text and "inf" not in found.text
    assert found.kpi == "median_stage_days" and found.severity == "act"
    assert found.recommendation.startswith("Review what East's deals in Proposal wait for")


# ------------------------------------------------------------------------------------- stage days

def _stage_days(medians: list[float | None], exits: list[int] | None = None) -> pd.DataFrame:
    stages = list(VOCAB.open_stages)[: len(medians)]
    return pd.DataFrame({"stage": stages, "n_entries": exits or [5] * len(medians),
                         "median_days": pd.Series(medians, dtype="float64"), "mean_days": np.nan})


def test_stage_days_ties_single_stage_and_equal_waits():
    tie = funnel.describe_stage_days(_stage_days([10, 10, 4]))
    assert tie.text.startswith("Deals wait longest in Prospecting and Qualification (a median 10 days each)")
    single = funnel.describe_stage_days(_stage_days([7, None, None]))
    assert single.text == "Only Prospecting had deals leaving it in the period: a median 7 days there (5 stage exits)."
    assert "longest" not in single.text
    equal = funnel.describe_stage_days(_stage_days([6, 6]))
    assert equal.text.startswith("Deals wait as long in every stage") and equal.severity == "info"


def test_a_stage_where_deals_stall_is_a_watch():
    found = funnel.describe_stage_days(_stage_days([30, 10, 10]))
    assert found.severity == "watch" and found.kpi == "median_stage_days"
    assert found.recommendation == ("Review what deals in Prospecting wait for: they stay 3.0× as long as in a "
                                    "typical stage.")
    assert funnel.describe_stage_days(_stage_days([12, 10, 8])).severity == "info"


# ---------------------------------------------------------------------------------- opportunities

def test_no_closed_deal_gives_no_win_rate_and_unknown_amounts_no_zero():
    opps = _opps([("A", "2026-07-02", None, None, np.nan, None), ("B", "2026-07-03", None, None, np.nan, None)])
    summary = funnel.opportunity_summary(opps, Q3)
    assert math.isnan(summary["new_amount"].iloc[0]) and math.isnan(summary["pipeline_amount"].iloc[0])
    found = funnel.describe_opportunities(summary)
    assert found.text == "2 new opportunities; none closed; 2 still open at period end."
    assert "win rate" not in found.text and "worth" not in found.text


def test_an_empty_pipeline_at_period_end_is_a_watch_with_amounts_in_the_currency():
    opps = _opps([("A", "2026-07-02", "2026-08-01", True, 1000.0, None)])
    found = funnel.describe_opportunities(funnel.opportunity_summary(opps, Q3), currency="USD")
    assert found.text == ("1 new opportunity worth 1,000 USD; 1 closed, 1 won (win rate 100%, 1,000 USD booked); "
                          "0 still open at period end.")
    assert (found.severity, found.kpi) == ("watch", "pipeline_amount") and found.recommendation


def test_lost_deals_running_long_are_a_watch():
    rows = [(f"W{i}", "2026-06-01", "2026-07-01", True, 10.0, None) for i in range(3)]
    rows += [(f"L{i}", "2026-04-01", "2026-07-10", False, 10.0, "price") for i in range(3)]
    found = funnel.describe_win_loss(funnel.win_loss(_opps(rows), Q3))
    assert found.text == ("3 of 6 closed deals were won (50%); won deals took 30 days from creation to close "
                          "(median) vs 100 for lost ones.")
    assert found.severity == "watch" and found.recommendation.startswith("Review the open deals older than 30 days")
    one_side = funnel.describe_win_loss(funnel.win_loss(_opps(rows[:3]), Q3))
    assert one_side.text == "3 of 3 closed deals were won (100%)." and one_side.severity == "info"


def test_win_loss_amounts_of_unknown_value_stay_missing():
    opps = _opps([("A", "2026-07-01", "2026-08-01", False, np.nan, "price")])
    wl = funnel.win_loss(opps, Q3)
    assert wl["amount"].iloc[0] == 0.0 and math.isnan(wl["amount"].iloc[1])
    assert math.isnan(funnel.loss_reasons(opps, Q3)["lost_amount"].iloc[0])


def _losses(rows: list[tuple[str, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["loss_reason", "n_lost"]).astype({"loss_reason": "string"})
    frame["lost_amount"] = frame["n_lost"] * 10.0
    frame["share_rate"] = frame["n_lost"] / frame["n_lost"].sum()
    frame["amount_share_rate"] = frame["share_rate"]
    return frame


def test_loss_reasons_ties_single_reason_and_missing_reasons():
    tie = funnel.describe_loss_reasons(_losses([("price", 3), ("timing", 3), ("budget", 1)]))
    assert tie.text == "price and timing are the top reasons for losing: 3 of 7 lost deals each (43% each)."
    only = funnel.describe_loss_reasons(_losses([("price", 4)]))
    assert only.text == "price is the reason for all 4 lost deals." and "top" not in only.text
    mostly_unknown = funnel.describe_loss_reasons(_losses([("(none)", 6), ("price", 2)]))
    assert mostly_unknown.text.endswith("75% of the lost deals have no reason recorded.")
    assert mostly_unknown.severity == "watch"
    assert mostly_unknown.recommendation == "Make the loss reason a required field when a deal is closed as lost."


def test_a_dominant_loss_reason_is_a_watch():
    found = funnel.describe_loss_reasons(_losses([("price", 5), ("timing", 3), ("budget", 2)]))
    assert found.severity == "watch" and found.weight == pytest.approx(0.5)
    assert found.recommendation == "Review the deals lost to price with the team: 50% of the losses."


def test_every_describe_function_returns_a_finding():
    frames = [funnel.describe_win_rate_by(_win_rates("competitor", [("Apex", 10, 2), ("Orion", 20, 10)])),
              funnel.describe_loss_reasons(_losses([("price", 1)])),
              funnel.describe_stage_days(_stage_days([3, 4])),
              funnel.describe_bottleneck(_bottleneck())]
    assert all(isinstance(f, Finding) and 0 <= f.weight <= 1 for f in frames)


# ---------------------------------------------------------------------------------- reader tables

def test_every_result_column_has_a_label_and_unit(tmp_path):
    leads = _lead_funnel([8, 4, 2, 2]).assign(source_channel=_str(["web"] * 8), region_id=_str(["East"] * 8),
                                              owner_rep_id=_str(["R1"] * 8), campaign_id=_str(["C1"] * 8))
    opps = _opps([("O0", "2026-07-02", "2026-08-01", True, 10.0, None),
                  ("O1", "2026-07-02", "2026-08-02", False, 10.0, "price")])
    opps = opps.assign(competitor=_str(["Apex", None]), region_id=_str(["East", "East"]))
    history = pd.DataFrame({"opportunity_id": _str(["O0", "O0", "O1", "O1"]),
                            "stage": _str(["Prospecting", "Won", "Prospecting", "Lost"]),
                            "entered_at": _ts(["2026-07-02", "2026-08-01", "2026-07-02", "2026-08-02"]),
                            "exited_at": _ts(["2026-08-01", None, "2026-08-02", None])})
    results = [funnel.lead_funnel_periods({"2026-Q3": ({"leads": leads, "opportunities": opps}, Q3)}),
               funnel.conversion_by(leads, opps, "owner_rep_id", Q3,
                                    reps=pd.DataFrame({"rep_id": _str(["R1"]), "name": _str(["Lei Li"])})),
               funnel.conversion_trend(leads, opps, by="campaign_id"),
               funnel.compare_steps(leads, opps, min_n=1),
               funnel.compare_stage_days(history, opps, VOCAB, min_n=1),
               funnel.stage_days(history, VOCAB), funnel.stage_to_stage_days(history, VOCAB),
               funnel.stage_reach(history, opps, VOCAB), funnel.opportunity_funnel(opps, VOCAB),
               funnel.opportunity_summary(opps, Q3), funnel.win_loss(opps, Q3), funnel.loss_reasons(opps, Q3),
               funnel.win_rate_by(opps, "competitor", Q3), funnel.win_rate_trend(opps, by="region_id")]
    assert present.unregistered(results) == set()


def test_names_come_with_region_and_rep_ids():
    regions = pd.DataFrame({"region_id": _str(["East"]), "name": _str(["East China"])})
    leads = _lead_funnel([3, 2, 1, 0]).assign(region_id=_str(["East", "East", None]))
    by_region = funnel.conversion_by(leads, None, "region_id", regions=regions)
    assert by_region.columns[:2].tolist() == ["region_id", "name"]
    assert by_region["name"].tolist()[0] == "East China" and pd.isna(by_region["name"].tolist()[1])


# ------------------------------------------------------------------------------------ slice level

class _Slice(SimpleNamespace):
    def missing(self, *names):
        return [n for n in names if n not in self.tables]


def test_analyses_take_the_slice_and_skip_without_their_table(monkeypatch):
    from crmlens import notebook

    shown = []
    monkeypatch.setattr(notebook, "md", lambda text, finding=False: shown.append(text))
    leads = _lead_funnel([4, 2, 1, 1]).assign(source_channel=_str(["web", "web", "mail", None]))
    params = SimpleNamespace(region="all", forgotten_days=60, churn_days=455)
    info = SimpleNamespace(vocabulary=VOCAB, source="test", tables=("leads",))
    period = SimpleNamespace(start=Q3.period_start, end=Q3.period_end, label="2026-Q3")
    s = _Slice(tables={"leads": leads}, params=params, info=info, period=period, comparison_period=period,
               as_of=Q3.period_end, comparison={})
    assert funnel.conversion_by.needs == ("leads",)
    by_channel = funnel.conversion_by(s, "source_channel")
    pd.testing.assert_frame_equal(by_channel, funnel.conversion_by(leads, None, "source_channel", Q3))
    assert funnel.win_loss(s) is None  # no opportunities table: the "needs table" note, no zero
    assert funnel.win_rate_by_product_line(s) is None
    assert len(shown) == 2 and "`opportunities`" in shown[0] and "`products`" in shown[1]


# ------------------------------------------------------------------------------------------ charts

def test_charts_key_groups_by_id_and_label_them_by_name():
    from crmlens.charts import funnel as charts

    frame = _win_rates("owner_rep_id", [("R1", 10, 2), ("R2", 10, 8), ("R3", 10, 5)])
    frame.insert(1, "name", _str(["David Huang", "David Huang", "Lei Li"]))
    bars = charts.plot_win_rates(frame).data[0]
    assert list(bars.y) == ["David Huang (R1)", "Lei Li", "David Huang (R2)"]  # two bars for two David Huangs
    assert list(bars.customdata) == [10, 10, 10]


def test_charts_and_findings_speak_chinese():
    from crmlens.charts import funnel as charts

    frame = _win_rates("competitor", [("Apex", 10, 2), ("Orion", 20, 10)])
    with i18n.language("zh"):
        fig = charts.plot_win_rates(frame)
        found = funnel.describe_win_rate_by(frame)
        heat = charts.plot_peer_ratios(funnel.compare_steps(_lead_funnel([8, 4, 2, 2]).assign(
            region_id=_str(["A"] * 8)), min_n=1))
        lost = funnel.describe_loss_reasons(_losses([("(none)", 3)]))
    assert fig.layout.title.text == "按竞争对手的赢单率"
    assert found.text == "赢单率从 20%（Apex，结单 10 个）到 50%（Orion，结单 20 个）不等。"
    assert found.recommendation.startswith("请准备团队应对 Apex 的策略")
    assert list(heat.data[0].x) == ["线索→MQL", "MQL→SQL", "SQL→商机"]
    assert lost.text == "共丢单 3 个；该数据源没有记录丢单原因。"  # "(none)" of an English frame
    with i18n.language("zh"):
        zh_frame = funnel.win_loss(_opps([("A", "2026-07-01", "2026-08-01", True, 5.0, None)]), Q3)
    assert zh_frame["outcome"].tolist() == ["赢单", "丢单"]


def test_the_area_catalogue_translates_every_string_of_the_area():
    """Every msgid of the funnel's metrics and charts, its KPIs and notebook 02's markdown cells is in zh."""
    import nbformat
    from babel.messages.extract import extract_from_file

    from crmlens import paths
    from crmlens.i18n import KEYWORDS, catalogue

    zh = catalogue("zh")
    wanted = []
    for module in (funnel, __import__("crmlens.charts.funnel", fromlist=["x"])):
        for _line, message, _c, _x in extract_from_file("python", module.__file__, keywords=KEYWORDS):
            wanted.append(message if isinstance(message, str) else message[0])
    wanted += [t for k in KPIS.values() if k.area == funnel.AREA for t in (k.label, k.description)]
    notebook = nbformat.read(paths.NOTEBOOKS_DIR / "02_sales_funnel.ipynb", as_version=4)
    wanted += [c.source.strip() for c in notebook.cells if c.cell_type == "markdown"]
    assert [t for t in wanted if t not in zh] == []
