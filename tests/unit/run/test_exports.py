"""The region exports (crmlens.run.exports): report.html, report.pdf, report.xlsx and deck.pptx.

The slow tests execute the real notebooks 02 and 03 once (papermill, tiny demo, East, 2026-Q3), add a synthetic
failed notebook, export the region once, and open every file with an independent reader (openpyxl, python-pptx,
pypdfium2, plain text for the HTML).
"""

from __future__ import annotations

import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from crmlens import paths
from crmlens.charts import COLORS, FIGURE_WIDTH
from crmlens.errors import ParameterError, RunError
from crmlens.notebook import FINDING_METADATA, KPI_MIMETYPE
from crmlens.run import exports
from crmlens.run.summary import executive_summary, recommendations
from tests.unit.run.readers import table_problems, tables_cut_in_print

REGION, PERIOD = "East", "2026-Q3"
REAL = ("02_sales_funnel", "03_sales_performance")
FAILED = "09_broken"
TITLE = "CRM Lens — East, 2026-Q3"
PLOTLY = "application/vnd.plotly.v1+json"
KPI_COLUMNS = ["region", "period", "comparison_period", "notebook", "area", "kpi", "label", "unit", "direction",
               "value", "comparison_value", "delta", "delta_pct", "trend", "display", "status"]


# ------------------------------------------------------------------------------------------------ builders

def finding_output(text: str) -> dict:
    return nbformat.v4.new_output("display_data", data={"text/markdown": text, "text/plain": "<Markdown>"},
                                  metadata=FINDING_METADATA)


def figure_output(title: str, color: str = COLORS["actual"]) -> dict:
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=["a", "b", "c"], y=[3, 1, 2], marker_color=color))
    fig.update_layout(title=title, width=FIGURE_WIDTH, height=400)
    return nbformat.v4.new_output("display_data", data={PLOTLY: json.loads(fig.to_json()),
                                                         "text/html": "<div>stale html</div>"})


def code(*outputs: dict, tags: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("x = 1", metadata={"tags": list(tags)} if tags else {})
    cell.outputs = list(outputs)
    return cell


def failed_notebook(path: Path) -> Path:
    """A notebook as papermill leaves it when cell [3] raised: red banner on top, an error output, a chart
    and its finding before the failure."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "crmlens", "display_name": "CRM Lens", "language": "python"}
    nb.metadata["papermill"] = {"exception": True, "parameters": {"region": REGION, "period": PERIOD}}
    error = nbformat.v4.new_output("error", ename="KeyError", evalue="'missing_column'",
                                   traceback=["KeyError                   Traceback", "KeyError: 'missing_column'"])
    broken = code(error)
    broken.execution_count = 3
    nb.cells = [
        nbformat.v4.new_markdown_cell('<span style="color:red; font-size:2em;">An Exception was encountered at '
                                      "'<a href=\"#papermill-error-cell\">In [3]</a>'.</span>"),
        nbformat.v4.new_markdown_cell("# Broken analysis: does the export survive?"),
        code(figure_output("Broken chart"), finding_output("The **broken** notebook still found this.")),
        nbformat.v4.new_markdown_cell('<span id="papermill-error-cell" style="color:red;">Execution using papermill '
                                      "encountered an exception here and stopped:</span>"),
        broken,
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def kpi_frame(notebook_paths: list[Path]) -> pd.DataFrame:
    """The region's KPI frame (docs/run.md columns), read from the notebooks' KPI records."""
    rows = []
    for path in notebook_paths:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                record = output.get("data", {}).get(KPI_MIMETYPE)
                if record:
                    rows += [{"region": REGION, "period": record["period"],
                              "comparison_period": record["comparison_period"], "notebook": path.stem,
                              "area": record["area"], **{k: kpi[k] for k in KPI_COLUMNS[5:]}}
                             for kpi in record["kpis"]]
    frame = pd.DataFrame(rows, columns=KPI_COLUMNS)
    return frame.astype({c: "float64" for c in ("value", "comparison_value", "delta", "delta_pct")})


def key_chart_count(notebook_paths: list[Path]) -> int:
    """Plotly outputs in cells not tagged `analyst` (counted here independently of the module)."""
    return sum(PLOTLY in o.get("data", {})
               for p in notebook_paths for c in nbformat.read(p, as_version=4).cells if c.cell_type == "code"
               and "analyst" not in c.metadata.get("tags", []) for o in c.get("outputs", []))


def hex_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


CHART_COLORS = [hex_rgb(COLORS[k]) for k in ("actual", "comparison", "target", "good")]


def chart_pixel_pages(pdf_path: Path, min_pixels: int = 800) -> list[int]:
    """Pages of the PDF with at least `min_pixels` pixels (at 36 dpi) in solid 2×2 blocks of a chart colour (within
    24 per channel): a chart drawn there. Text is black/grey/blue and thin, the page background white: they do not
    count."""
    import numpy as np
    import pypdfium2 as pdfium

    pages = []
    pdf = pdfium.PdfDocument(str(pdf_path))
    try:
        for i in range(len(pdf)):
            image = np.asarray(pdf[i].render(scale=0.5).to_pil().convert("RGB")).astype(int)
            hits = 0
            for c in CHART_COLORS:
                mask = np.abs(image - np.array(c)).max(axis=2) <= 24
                # solid 2×2 blocks only: bars and areas, not the anti-aliased edges of blue link text
                hits += int((mask[:-1, :-1] & mask[1:, :-1] & mask[:-1, 1:] & mask[1:, 1:]).sum())
            if hits >= min_pixels:
                pages.append(i)
    finally:
        pdf.close()
    return pages


# ------------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def region_dir(tmp_path_factory, tiny_demo) -> Path:
    """The region folder of a run: the real notebooks 02 and 03 executed for East, 2026-Q3 (in parallel),
    plus a failed notebook."""
    import papermill

    out = tmp_path_factory.mktemp("run") / REGION

    def run(name: str) -> None:
        papermill.execute_notebook(str(paths.NOTEBOOKS_DIR / f"{name}.ipynb"), str(out / PERIOD / f"{name}.ipynb"),
                                   parameters={"source": str(tiny_demo), "region": REGION, "period": PERIOD},
                                   kernel_name="crmlens", cwd=str(paths.NOTEBOOKS_DIR), progress_bar=False,
                                   log_output=False, request_save_on_cell_execute=False)

    (out / PERIOD).mkdir(parents=True)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(run, REAL))
    failed_notebook(out / PERIOD / f"{FAILED}.ipynb")
    return out


@pytest.fixture(scope="module")
def notebooks(region_dir) -> list[Path]:
    return [region_dir / PERIOD / f"{name}.ipynb" for name in (*REAL, FAILED)]


@pytest.fixture(scope="module")
def kpis(notebooks) -> pd.DataFrame:
    frame = kpi_frame(notebooks)
    assert set(frame["notebook"]) == set(REAL), "both real notebooks record KPIs"
    return frame


@pytest.fixture(scope="module")
def exported(region_dir, notebooks, kpis) -> dict[str, Path]:
    with exports.chromium() as browser:  # as the run does: one browser for the regions of an export thread
        return exports.export_region(region_dir, notebooks, kpis, TITLE, browser=browser)


# ------------------------------------------------------------------------------------- fast: the pieces

def test_read_findings_pairs_each_key_chart_with_its_own_finding():
    nb = nbformat.v4.new_notebook()
    plain_markdown = nbformat.v4.new_output("display_data", data={"text/markdown": "not a finding"})
    nb.cells = [
        nbformat.v4.new_markdown_cell("## A"),
        code(finding_output("before, same cell"), figure_output("Fig 1")),       # say() then plot() in one cell
        code(figure_output("Fig 2"), plain_markdown, finding_output("after, same cell")),
        code(figure_output("Fig 3")),
        code(finding_output("next cell")),
        code(figure_output("Fig 4")),
        nbformat.v4.new_markdown_cell("An explanation ends the search."),
        code(finding_output("too far")),
        code(figure_output("Analyst fig"), finding_output("analyst"), tags=("analyst",)),
        code(figure_output("Fig 6")),
        code(figure_output("Fig 7")),                                                 # the next figure ends it
        code(finding_output("for fig 7")),
    ]
    found = exports.read_findings(nb)
    assert [(f["layout"]["title"]["text"], text) for f, text, _ in found] == [
        ("Fig 1", "before, same cell"), ("Fig 2", "after, same cell"), ("Fig 3", "next cell"),
        ("Fig 4", "Fig 4"), ("Fig 6", "Fig 6"), ("Fig 7", "for fig 7")]
    assert [cell for _, _, cell in found] == [1, 2, 3, 5, 9, 10]


def test_slide_title_is_plain_and_at_most_two_lines():
    assert exports.slide_title("**East** converts `SQL` at [20%](#x) — the bottleneck.") == \
        "East converts SQL at 20% — the bottleneck."
    long = "word " * 80
    title = exports.slide_title(long)
    assert len(title) <= exports.MAX_TITLE_CHARS and title.endswith("…") and "  " not in title


def test_sheet_names_are_valid_and_unique():
    names = exports.sheet_names(["02_sales_funnel", "a/b:c*d?[e]", "x" * 40, "x" * 40 + "y", "summary", "History"])
    values = list(names.values())
    assert names["02_sales_funnel"] == "02_sales_funnel"
    assert names["a/b:c*d?[e]"] == "a_b_c_d__e_"
    assert all(len(v) <= 31 for v in values)
    assert len({v.lower() for v in [*values, "Summary"]}) == len(values) + 1
    assert names["History"] != "History"


def test_number_formats_per_unit():
    assert exports.number_format("rate") == "0.0%"
    assert exports.number_format("count") == "#,##0"
    assert exports.number_format("amount", "USD") == '#,##0" USD"'
    assert exports.number_format("days") == '#,##0.0" days"'
    assert exports.number_format("rate", signed=True) == "+0.0%;-0.0%;0.0%"


def test_unknown_format_is_a_parameter_error(tmp_path):
    with pytest.raises(ParameterError, match=r"'docx'.*accepted: html, xlsx, pptx, pdf"):
        exports.export_region(tmp_path, [], pd.DataFrame(columns=KPI_COLUMNS), TITLE, formats=("docx",))


def test_a_missing_notebook_is_a_run_error_naming_it(tmp_path):
    missing = tmp_path / PERIOD / "02_sales_funnel.ipynb"
    with pytest.raises(RunError, match=re.escape(str(missing))):
        exports.export_region(tmp_path, [missing], pd.DataFrame(columns=KPI_COLUMNS), TITLE, formats=("xlsx",))


def test_missing_chromium_names_the_package_and_other_formats_are_still_written(tmp_path, monkeypatch):
    monkeypatch.setattr(exports, "CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setattr(exports.shutil, "which", lambda name: None)
    notebook = failed_notebook(tmp_path / PERIOD / f"{FAILED}.ipynb")
    with pytest.raises(exports.ExportError, match=r"pdf: .*Debian package `chromium`") as caught:
        exports.export_region(tmp_path, [notebook], pd.DataFrame(columns=KPI_COLUMNS), TITLE,
                              formats=("pdf", "xlsx"))
    assert isinstance(caught.value, RunError)
    assert caught.value.files == {"xlsx": tmp_path / "report.xlsx"} and (tmp_path / "report.xlsx").is_file()
    assert set(caught.value.errors) == {"pdf"} and not (tmp_path / "report.pdf").exists()
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file left behind"


@pytest.mark.slow
def test_a_chart_never_drawn_fails_the_pdf_and_deck_within_the_limit_and_the_rest_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(exports, "_CHARTS_DRAWN", "() => false")  # as if plotly.js never finished drawing
    notebook = failed_notebook(tmp_path / PERIOD / f"{FAILED}.ipynb")
    with exports.chromium(timeout_s=2) as browser, pytest.raises(exports.ExportError) as caught:
        exports.export_region(tmp_path, [notebook], pd.DataFrame(columns=KPI_COLUMNS), TITLE, browser=browser)
    errors = caught.value.errors
    assert set(errors) == {"pptx", "pdf"}
    assert all("headless Chromium failed on" in e and "report.html" in e and "2000ms" in e for e in errors.values())
    assert set(caught.value.files) == {"html", "xlsx"}
    assert not (tmp_path / "report.pdf").exists() and not (tmp_path / "deck.pptx").exists()


@pytest.mark.slow
def test_deck_images_come_from_the_drawn_report_and_a_missing_chart_is_named(tmp_path):
    notebook = failed_notebook(tmp_path / PERIOD / f"{FAILED}.ipynb")
    analyses = [exports.load_analysis(notebook)]
    charts = exports.key_charts(analyses)
    assert [c.div_id for c in charts] == ["crmlens-chart-1-2-0"]  # section 1, cell 2, first output
    page = exports.write_html(tmp_path / "report.html", analyses, TITLE, REGION)
    assert page.read_text(encoding="utf-8").count('id="crmlens-chart-1-2-0"') == 1
    gone = exports.KeyChart(notebook=FAILED, period=PERIOD, figure={}, finding="", chart_title="Gone", cell=9)
    with exports.report_page(page) as opened:
        png = opened.chart_pngs(charts)[0]
        with pytest.raises(RunError, match=r"does not draw the chart\(s\) 'Gone'"):
            opened.chart_pngs([gone])
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        assert img.size == (FIGURE_WIDTH * 2, 400 * 2)
        colours = {c for _, c in img.convert("RGB").getcolors(1 << 20)}
    assert _rgb(COLORS["actual"]) in colours, "the bars are drawn in the chart's colour"


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


# --------------------------------------------------------------------------- slow: one real region export

@pytest.mark.slow
def test_export_writes_every_format_atomically(exported, region_dir):
    assert exported == {fmt: region_dir / name for fmt, name in exports.FILENAMES.items()}
    assert all(p.is_file() for p in exported.values())
    assert not list(region_dir.glob(".*.tmp")), "no temporary file left behind"


@pytest.mark.slow
def test_report_html_is_self_contained_without_code(exported, notebooks):
    from crmlens.charts import plotlyjs

    page = exported["html"].read_text(encoding="utf-8")
    assert page.count("* plotly.js v") == 1, "plotly.js embedded exactly once"
    # the demo's charts are all of the bundle's types: the 1.4 MB bundle, not the whole 4.8 MB plotly.js
    assert page.count(plotlyjs.BUNDLE.read_text(encoding="utf-8")[:300]) == 1
    assert len(page) < 2 * plotlyjs.BUNDLE.stat().st_size + 2_000_000
    fetching = re.findall(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", page, re.I)
    assert fetching == [], "nothing fetched from the network"
    assert "nb.record_kpis(" not in page and "from crmlens import notebook as nb" not in page, "no code inputs"
    assert not re.search(r'class="[^"]*\b(jp-InputPrompt|jp-InputArea-editor|highlight)\b', page), "no input areas"
    assert f"<title>{TITLE}</title>" in page and "<h1 id=" in page
    sections = re.findall(r'href="#(crmlens-section-\d+)"', page)
    assert len(sections) == len(notebooks) and all(f'id="{s}"' in page for s in sections), "contents link up"
    for path in notebooks:
        title = next(line[2:] for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"
                     for line in c.source.splitlines() if line.startswith("# "))
        assert title.split(":")[0] in page
    figures = sum(PLOTLY in o.get("data", {}) for p in notebooks for c in nbformat.read(p, as_version=4).cells
                  for o in c.get("outputs", []))
    assert page.count('class="plotly-graph-div"') == figures, "every chart of every notebook, analyst ones too"
    assert page.count("Plotly.newPlot(") == figures
    assert "stale html" not in page, "figures are drawn from their JSON"
    assert re.search(r"This analysis failed:</strong> KeyError: ('|&#x27;)missing_column\1 \(cell \[3\]\)", page)
    assert re.search(r'crmlens-section-3">[^<]*</a> <span class="failed">\(failed\)', page), "marked in the contents"
    assert 'id="papermill-error-cell-3"' in page


@pytest.mark.slow
def test_report_tables_are_for_readers_and_fit_the_printed_page(exported):
    assert table_problems(exported["html"].read_text(encoding="utf-8")) == []
    assert tables_cut_in_print(exported["html"]) == []


@pytest.mark.slow
def test_report_xlsx_holds_every_kpi_with_formats_and_charts(exported, kpis, notebooks):
    import openpyxl

    book = openpyxl.load_workbook(exported["xlsx"])
    shown = [p.stem for p in notebooks if exports.shown_tables(exports.load_analysis(p).nb)]
    assert set(REAL) <= set(shown), "the real notebooks show tables"
    assert book.sheetnames == ["Executive summary", "Summary", *REAL, FAILED, *(f"{n} tables" for n in shown)]
    summary_sheet = [r for r in book["Executive summary"].iter_rows(values_only=True) if any(r)]
    assert len(summary_sheet) >= 2, "the ranked findings are on the first sheet"

    summary = book["Summary"]
    rows = list(summary.iter_rows(values_only=True))
    assert list(rows[0]) == exports.SUMMARY_COLUMNS
    assert summary.freeze_panes == "A2"
    assert len(rows) - 1 == len(kpis)
    for row, (_, kpi) in zip(rows[1:], kpis.iterrows(), strict=True):
        assert row[:4] == (kpi.period, kpi.comparison_period, kpi.notebook, kpi.label)
        for got, want in zip(row[4:8], (kpi.value, kpi.comparison_value, kpi.delta, kpi.delta_pct), strict=True):
            assert (got is None and pd.isna(want)) or got == pytest.approx(want, rel=1e-9, abs=1e-12)
        assert row[8:10] == (kpi.trend, kpi.status)

    units = dict(zip(kpis["label"], kpis["unit"], strict=False))
    expected_format = {"rate": "0.0%", "count": "#,##0", "amount": '#,##0" USD"', "days": '#,##0.0" days"'}
    for r in range(2, summary.max_row + 1):
        unit = units[summary.cell(r, 4).value]
        assert summary.cell(r, 5).number_format == expected_format[unit], (summary.cell(r, 4).value, unit)
        assert summary.cell(r, 8).number_format == "+0.0%;-0.0%;0.0%"
    assert {"rate", "count", "amount"} <= set(units.values())
    assert summary.column_dimensions["D"].width >= max(len(label) for label in kpis["label"])

    for name in REAL:
        sheet = book[name]
        mine = kpis[kpis["notebook"] == name]
        values = list(sheet.iter_rows(min_row=1, max_col=len(exports.ANALYSIS_COLUMNS), values_only=True))
        assert list(values[0]) == exports.ANALYSIS_COLUMNS and sheet.freeze_panes == "A2"
        assert [(r[0], r[2], r[3]) for r in values[1:len(mine) + 1]] == list(
            zip(mine["period"], mine["label"], mine["unit"], strict=True))
        assert [r[4] for r in values[1:len(mine) + 1]] == pytest.approx(mine["value"].tolist())
        assert len(sheet._charts) >= 1, f"{name}: a native chart"
        assert len(sheet._charts) == mine.loc[mine["period"] == mine["period"].iloc[-1], "unit"].nunique()
    assert "No KPIs recorded" in book[FAILED]["A2"].value and not book[FAILED]._charts


@pytest.mark.slow
def test_deck_has_a_slide_per_key_chart_titled_by_its_finding(exported, notebooks):
    from PIL import Image
    from pptx import Presentation
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    deck = Presentation(str(exported["pptx"]))
    slides = list(deck.slides)
    charts = exports.key_charts([exports.load_analysis(p) for p in notebooks])
    assert len(charts) == key_chart_count(notebooks) > 20
    findings = exports.region_findings([exports.load_analysis(p) for p in notebooks])
    per_slide = exports.FINDINGS_PER_SLIDE
    n_summary = -(-len(executive_summary(findings)) // per_slide)
    n_closing = -(-len(recommendations(findings)) // per_slide)
    assert n_summary >= 1 and n_closing >= 1
    assert len(slides) == 1 + n_summary + len(charts) + n_closing
    assert all(s.shapes.title.text.startswith("Executive summary") for s in slides[1:1 + n_summary])
    assert all(s.shapes.title.text.startswith("Conclusions and recommendations") for s in slides[-n_closing:])
    chart_slides = slides[1 + n_summary:1 + n_summary + len(charts)]

    cover = slides[0]
    assert cover.shapes.title.text == TITLE
    assert REGION in cover.placeholders[1].text and PERIOD in cover.placeholders[1].text

    notes = []
    for slide, chart in zip(chart_slides, charts, strict=True):
        title = slide.shapes.title.text
        assert title and title == exports.slide_title(chart.finding) and "**" not in title
        assert len(title) <= exports.MAX_TITLE_CHARS
        pictures = [s for s in slide.shapes if s.shape_type == MSO_SHAPE_TYPE.PICTURE]
        assert len(pictures) == 1 and pictures[0].image.content_type == "image/png"
        with Image.open(io.BytesIO(pictures[0].image.blob)) as img:
            width, height = img.size
        layout = chart.figure["layout"]
        assert (width, height) == (layout.get("width", FIGURE_WIDTH) * 2, layout.get("height", 450) * 2)
        assert pictures[0].left >= 0 and pictures[0].left + pictures[0].width <= deck.slide_width
        assert pictures[0].top + pictures[0].height <= deck.slide_height
        notes.append((title, slide.notes_slide.notes_text_frame.text))

    def slide_for(chart_title: str) -> str:
        hits = [t for t, n in notes if f"Chart: {chart_title}\n" in n]
        assert len(hits) == 1, chart_title
        return hits[0]

    assert "top reason for losing" in slide_for("Why deals were lost")          # nb.plot cell, then nb.say cell
    assert "of the target" in slide_for("Attainment by region")                  # nb.say then nb.plot, one cell
    assert slide_for("Win rate by region") == "Win rate by region"              # no finding: the chart title
    assert slide_for("Broken chart") == "The broken notebook still found this."  # the failed notebook's chart
    assert not any("Chart: Attainment by rep\n" in n for _, n in notes), "analyst charts stay out of the deck"


@pytest.mark.slow
def test_pdf_draws_the_charts_and_the_check_catches_a_chartless_pdf(exported, tmp_path):
    from crmlens.charts import plotlyjs

    drawn = chart_pixel_pages(exported["pdf"])
    assert len(drawn) >= 15, f"chart colours on only {len(drawn)} pages"

    # Negative control: the same report without plotly.js prints every text but no chart.
    page = exported["html"].read_text(encoding="utf-8").replace(plotlyjs.BUNDLE.read_text(encoding="utf-8"), "")
    chartless = tmp_path / "chartless.html"
    chartless.write_text(page, encoding="utf-8")
    control = exports.write_pdf(chartless, tmp_path / "chartless.pdf")
    assert chart_pixel_pages(control) == []
