"""The executive summary: findings read back from executed notebooks, ranked, at the front of the report,
as the first sheet of the workbook and the first slides of the deck, and on the run's index page."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
import pytest

from crmlens import i18n, present
from crmlens.findings import FINDING_MIMETYPE, finding
from crmlens.notebook import FINDING_METADATA
from crmlens.run import exports, summary


@pytest.fixture(autouse=True)
def _english_after():
    yield
    i18n.use("en")


def finding_output(f) -> dict:
    return nbformat.v4.new_output("display_data", data={"text/markdown": f.markdown(), FINDING_MIMETYPE: f.record()},
                                  metadata=FINDING_METADATA)


def table_output(frame: pd.DataFrame, title: str) -> dict:
    return nbformat.v4.new_output("display_data", data=present.table(frame, title=title)._repr_mimebundle_())


def executed(name: str, cells: list) -> exports.Analysis:
    nb = nbformat.v4.new_notebook()
    for kind, content in cells:
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(content))
        else:
            cell = nbformat.v4.new_code_cell("")
            cell.outputs = content
            nb.cells.append(cell)
    return exports.analysis_of(nb, Path(f"/tmp/East/2026-Q3/{name}.ipynb"))


ACT = finding("East: SQL→opportunity 18% vs 35% elsewhere.", "act", "Review how East's SDRs hand SQLs to reps.",
              kpi="sql_to_opportunity_rate", weight=0.5)
WATCH = finding("Win rate fell from 40% to 31%.", "watch", "Look at the deals lost on price.", weight=0.3)
GOOD = finding("Bookings are 112% of target.", "good", weight=0.4)
INFO = finding("Most leads come from webinars.", "info")


@pytest.fixture
def analyses() -> list[exports.Analysis]:
    funnel = executed("02_sales_funnel", [
        ("md", "# Sales funnel\n\nIntro."), ("md", "## 1. The lead funnel"), ("code", [finding_output(INFO)]),
        ("md", "## 4. Bottleneck diagnosis"),
        ("code", [table_output(pd.DataFrame({"region_id": ["East"], "n_test_rows": [3]}), "Steps"),
                  finding_output(ACT)]),
    ])
    perf = executed("03_sales_performance", [
        ("md", "# Sales performance"), ("md", "## Target attainment"),
        ("code", [finding_output(GOOD), finding_output(WATCH)]),
    ])
    return [funnel, perf]


def test_findings_are_read_back_with_their_section_and_anchor(analyses):
    found = exports.region_findings(analyses)
    assert [f.text for f in found] == [INFO.text, ACT.text, GOOD.text, WATCH.text]
    act = found[1]
    assert (act.notebook, act.section, act.anchor) == ("02_sales_funnel", "4. Bottleneck diagnosis",
                                                       summary.finding_anchor(1, 4, 1))
    assert found[2].anchor == summary.finding_anchor(2, 2, 0)


def test_the_report_opens_with_the_ranked_summary_and_ends_with_the_recommendations(analyses):
    page = exports.render_html(analyses, "CRM Lens — East, 2026-Q3", "East")
    start, contents = page.index('id="crmlens-executive-summary"'), page.index('class="crmlens-toc"')
    assert start < contents < page.index('id="crmlens-section-1"')
    head = page[start:contents]
    order = [head.index(t.split(":")[0]) for t in (ACT.text, WATCH.text, GOOD.text)]
    assert order == sorted(order), "act, then watch, then good news"
    assert INFO.text not in head, "context stays out while something is pressing"
    assert "Review how East&#x27;s SDRs hand SQLs to reps." in head or "Review how East's SDRs" in head
    anchor = summary.finding_anchor(1, 4, 1)
    assert f'href="#{anchor}"' in head and f'id="{anchor}"' in page, "each finding links to its evidence"
    closing = page[page.index('id="crmlens-conclusions"'):]
    assert "Conclusions and recommendations" in closing and "Look at the deals lost on price." in closing
    assert GOOD.text not in closing, "a finding without recommendation is not in the closing list"


def test_the_report_in_chinese(analyses):
    with i18n.language("zh"):
        page = exports.render_html(analyses, "CRM Lens", "East")
    assert "管理层摘要" in page and "结论与建议" in page and "目录" in page
    assert ">Executive summary<" not in page and "Contents</h2>" not in page


def test_the_workbook_starts_with_the_summary_and_holds_every_table_in_full(analyses, tmp_path):
    from openpyxl import load_workbook

    kpis = pd.DataFrame(columns=["region", "period", "comparison_period", "notebook", "area", "kpi", "label", "unit",
                                 "direction", "value", "comparison_value", "delta", "delta_pct", "trend", "display",
                                 "status"])
    path = exports.write_xlsx(tmp_path / "report.xlsx", kpis, "t", [a.name for a in analyses], analyses=analyses)
    book = load_workbook(path)
    assert book.sheetnames[0] == "Executive summary"
    ws = book["Executive summary"]
    assert [c.value for c in ws[1]] == ["Rank", "Severity", "Finding", "Recommendation", "Analysis", "Section"]
    assert ws["C2"].value == ACT.text and ws["B2"].value == "Act" and ws["A2"].value == "1"
    assert ws["F2"].value == "4. Bottleneck diagnosis"
    tables = book["02_sales_funnel tables"]
    assert tables["A1"].value == "Steps" and [c.value for c in tables[2]] == ["Region", "N test rows"]
    assert tables["B3"].value == 3


def test_the_deck_opens_with_the_summary_slides(analyses, tmp_path):
    from pptx import Presentation

    exports._write_deck(tmp_path / "deck.pptx", [], [], "Title", "East", ["2026-Q3"], [],
                        exports.region_findings(analyses), {a.name: a.title for a in analyses})
    slides = list(Presentation(str(tmp_path / "deck.pptx")).slides)
    assert slides[1].shapes.title.text == "Executive summary"
    body = " ".join(s.text_frame.text for s in slides[1].shapes if s.has_text_frame)
    assert body.index(ACT.text) < body.index(WATCH.text) < body.index(GOOD.text)
    assert "Review how East's SDRs hand SQLs to reps." in body
    assert slides[-1].shapes.title.text == "Conclusions and recommendations"


def test_the_index_shows_each_regions_summary():
    from crmlens.run import index

    tasks = [{"region": "East", "findings": [WATCH.record(), ACT.record(), INFO.record()]}]
    html = index._summary_html(tasks)
    assert html.index("SQL→opportunity") < html.index("Win rate fell") and INFO.text not in html
    assert index._summary_html([{"region": "East"}]) == ""
    assert "管理层摘要" in index._summary_html(tasks, "zh")
