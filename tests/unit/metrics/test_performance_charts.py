"""Sales-performance charts are keyed by ids (two reps called the same stay two bars, labelled apart) and every
text a reader sees is in the language in use."""

from __future__ import annotations

import pandas as pd
import pytest

from crmlens import i18n
from crmlens.charts import performance as charts
from crmlens.metrics import performance as perf
from tests.unit.metrics.test_performance import Q3, tables


def _same_named_reps() -> dict[str, pd.DataFrame]:
    """The fixture company with reps R1 and R2 both called "David Huang" (like R0038, R0062 in the demo)."""
    frames = tables()
    frames["reps"] = frames["reps"].assign(name=pd.array(["David Huang", "David Huang", "Cy"], dtype="string"))
    return frames


def test_attainment_chart_has_one_bar_per_rep_even_with_the_same_name():
    frames = _same_named_reps()
    reps = perf.target_attainment(frames["opportunities"], frames, Q3, "rep")
    assert reps["key"].tolist() == ["R1", "R3", "R2"]  # the result carries the rep id
    bar = charts.plot_attainment(reps).data[0]
    labels = list(bar.y)
    assert len(labels) == 3 and len(set(labels)) == 3
    by_label = dict(zip(labels, bar.x, strict=True))
    assert by_label == pytest.approx({"David Huang (R1)": 0.25, "Cy": 0.4, "David Huang (R2)": 0.75})
    expected = reps.set_index("key")["attainment_rate"]
    assert by_label["David Huang (R1)"] == expected["R1"] and by_label["David Huang (R2)"] == expected["R2"]


def test_cycle_and_segment_lines_are_keyed_by_id():
    frames = _same_named_reps()
    cycle = perf.sales_cycle(frames["opportunities"], Q3, "rep", frames)
    bar = charts.plot_cycle(cycle).data[0]
    assert sorted(bar.y) == ["Cy", "David Huang (R1)", "David Huang (R2)"]
    assert dict(zip(bar.y, bar.x, strict=True)) == {"David Huang (R2)": 20.0, "David Huang (R1)": 40.0, "Cy": 100.0}
    trend = perf.sales_cycle_trend(frames["opportunities"], "quarter", "rep", frames)
    lines = charts.plot_segment_lines(trend, value="median_cycle_days", title="t")
    assert sorted(t.name for t in lines.data) == ["Cy", "David Huang (R1)", "David Huang (R2)"]
    r1 = next(t for t in lines.data if t.name == "David Huang (R1)")
    assert list(r1.x) == ["2026-Q2", "2026-Q3"] and list(r1.y) == [99.0, 40.0]


def test_collections_chart_leaves_out_what_the_source_lacks():
    frames = tables()
    trend = perf.collections_trend(frames["contracts"], frames["invoices"], None, "quarter")
    assert [t.name for t in charts.plot_collections(trend).data] == ["Signed", "Invoiced"]


def test_chart_texts_are_in_chinese(monkeypatch):
    monkeypatch.setenv(i18n.STRICT_ENV, "1")
    frames = tables()
    with i18n.language("zh"):
        teams = charts.plot_attainment(perf.target_attainment(frames["opportunities"], frames, Q3, "team"),
                                       title="Attainment by team")
        trend = charts.plot_bookings_trend(perf.bookings_trend(frames["opportunities"], "month",
                                                               targets=frames["targets"]),
                                           title="Bookings per month: actual, target, last year")
        money = charts.plot_collections(perf.collections_trend(frames["contracts"], frames["invoices"],
                                                               frames["payments"], "quarter"))
        cycle = charts.plot_cycle(perf.sales_cycle(frames["opportunities"], Q3, "region", frames))
    assert teams.layout.title.text == "各团队目标完成率" and teams.layout.xaxis.title.text == "成交额 ÷ 目标"
    assert teams.layout.annotations[0].text == "期间已过 50%"
    assert teams.data[0].hovertext[0] == "Team Two：成交额 600，目标 1,500"
    assert trend.layout.title.text == "月度成交额：实际、目标、去年同期"
    assert all(i18n.has_cjk(t.name) for t in [*trend.data, *money.data])
    assert money.layout.yaxis2.title.text == "已回款 ÷ 已开票" and i18n.has_cjk(cycle.layout.title.text)
    assert cycle.data[0].hovertext[0] == "East China：中位数 30 天，平均 30 天（2 单）"
