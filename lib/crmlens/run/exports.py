"""The exports of one region of a run: `report.html`, `report.pdf`, `report.xlsx` and `deck.pptx` (docs/run.md).

`export_region` is called once per region after every notebook of the region ran:

    for region in regions:                   # the run does two regions at a time, in threads
        export_region(run_dir / region, notebooks[region], kpis[region], title="CRM Lens — 2026-Q3")

- report.html: every analysis of the region in one self-contained page (no code, a table of contents,
  plotly.js embedded once, nothing fetched from the network);
- report.pdf: that page printed by headless Chromium (charts included; Playwright drives Debian's binary);
- report.xlsx: a Summary sheet with every KPI, then one sheet per analysis with its KPI table for every period,
  number formats per unit and native Excel charts;
- deck.pptx: a title slide, then one slide per key chart (a plotly figure of a cell not tagged `analyst`),
  titled by its finding (`crmlens.notebook.say`); its image is taken from the chart the report page drew
  (element id `chart_div_id`), at IMAGE_SCALE.

Every file is written atomically (`crmlens.atomic`). A notebook that failed (papermill's error cell) is exported
with what it has and marked as failed.
"""

from __future__ import annotations

import contextlib
import html
import math
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from crmlens import atomic, i18n
from crmlens.errors import ParameterError, RunError
from crmlens.i18n import N_
from crmlens.kpis import STATUS_LABELS, TREND_LABELS

if TYPE_CHECKING:  # nbformat imports jsonschema's format checkers (~2 s): loaded when a notebook is read
    import nbformat

#: The export formats, in the order they are written (the PDF is printed from the HTML).
FORMATS: tuple[str, ...] = ("html", "xlsx", "pptx", "pdf")
#: File name of each format in the region's folder.
FILENAMES: dict[str, str] = {"html": "report.html", "pdf": "report.pdf", "xlsx": "report.xlsx", "pptx": "deck.pptx"}
PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"
#: Cells with this tag hold detail for analysts: their charts are not key charts (not in the deck).
ANALYST_TAG = "analyst"
#: Headless Chromium (Debian package `chromium`), for the PDF and the deck images (never `playwright install`).
CHROMIUM = "/usr/bin/chromium"
#: Flags for headless Chromium here: no sandbox (root in containers), no GPU, nothing fetched in the background
#: (no QUIC, updates, sync). Used to print PDFs and by the Playwright tests and benchmarks.
CHROMIUM_ARGS: list[str] = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Slide titles are cut to about two lines at TITLE_POINTS (the full finding is in the slide notes).
MAX_TITLE_CHARS = 150
TITLE_POINTS = 22
IMAGE_SCALE = 2
#: Time limit of each step in the browser (launch, loading the report, drawing the images, printing the PDF).
BROWSER_TIMEOUT_S = 180
#: The sheet of every KPI of the region.
SUMMARY_SHEET = N_("Summary")
SUMMARY_COLUMNS = [N_("Period"), N_("Comparison period"), N_("Analysis"), N_("KPI"), N_("Value"), N_("Comparison"),
                   N_("Delta"), N_("Delta %"), N_("Trend"), N_("Status")]
ANALYSIS_COLUMNS = [N_("Period"), N_("Comparison period"), N_("KPI"), N_("Unit"), N_("Value"), N_("Comparison"),
                    N_("Delta"), N_("Delta %"), N_("Trend"), N_("Status")]


class ExportError(RunError):
    """Some exports of a region failed; `files` holds the ones written, `errors` the message per format."""

    def __init__(self, message: str, files: Mapping[str, Path], errors: Mapping[str, str]) -> None:
        super().__init__(message)
        self.files = dict(files)
        self.errors = dict(errors)


# ------------------------------------------------------------------------------------------ reading notebooks

@dataclass(frozen=True)
class Analysis:
    """One executed notebook of the region: what the exports need to know about it."""

    path: Path
    name: str  # the notebook, e.g. 02_sales_funnel
    period: str
    title: str  # the notebook's `# ` heading
    nb: nbformat.NotebookNode
    failed: bool
    error: str | None  # "KeyError: 'x' (cell [7])" when it failed


@dataclass(frozen=True)
class KeyChart:
    """A key chart: a plotly figure of a cell not tagged `analyst`, with the finding that goes with it."""

    notebook: str
    period: str
    figure: dict[str, Any]
    finding: str  # markdown text; the chart's own title when the notebook shows no finding for it
    chart_title: str
    cell: int  # index of the cell in the notebook
    section: int = 1  # 1-based position of its analysis in the report
    output: int = 0  # index of the figure's output in its cell

    @property
    def div_id(self) -> str:
        """The id of the chart's element in `report.html` (the deck's image is taken from it)."""
        return chart_div_id(self.section, self.cell, self.output)


def chart_div_id(section: int, cell: int, output: int) -> str:
    """The id of a figure's element in the report: analysis `section` (1-based), cell index, output index."""
    return f"crmlens-chart-{section}-{cell}-{output}"


def load_analysis(path: str | Path) -> Analysis:
    """Read an executed notebook; a file that cannot be read is a RunError naming it."""
    import nbformat

    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except FileNotFoundError as e:
        raise RunError(f"export: the executed notebook {path} does not exist") from e
    except Exception as e:  # nbformat raises several kinds (JSON, validation, OS)
        raise RunError(f"export: cannot read the executed notebook {path}: {e}") from e
    return analysis_of(nb, path)


def analysis_of(nb: nbformat.NotebookNode, path: Path) -> Analysis:
    """The `Analysis` of an executed notebook already in memory (`path`: where it is or will be written)."""
    path = Path(path)
    papermill = nb.metadata.get("papermill", {})
    period = _period_of(nb, papermill, path)
    title = next((line[2:].strip() for cell in nb.cells if cell.cell_type == "markdown"
                  for line in cell.source.splitlines() if line.startswith("# ")), path.stem)
    errors = [(cell, out) for cell in nb.cells if cell.cell_type == "code"
              for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    failed = bool(papermill.get("exception")) or bool(errors)
    error = None
    if errors:
        cell, out = errors[0]
        where = f" (cell [{cell.get('execution_count')}])" if cell.get("execution_count") else ""
        error = f"{out.get('ename', 'Error')}: {out.get('evalue', '')}{where}"
    elif failed:
        error = "the notebook did not finish (no error output: timeout or dead kernel)"
    return Analysis(path=path, name=path.stem, period=period, title=title, nb=nb, failed=failed, error=error)


def _period_of(nb: nbformat.NotebookNode, papermill: Mapping[str, Any], path: Path) -> str:
    """The period label: from the notebook's KPI record, else its `period` parameter, else its folder's name."""
    from crmlens.notebook import KPI_MIMETYPE
    from crmlens.periods import parse_period

    for cell in reversed(nb.cells):
        for output in cell.get("outputs", []):
            record = output.get("data", {}).get(KPI_MIMETYPE)
            if isinstance(record, Mapping) and record.get("period"):
                return str(record["period"])
    parameter = (papermill.get("parameters") or {}).get("period")
    if parameter:
        try:
            return parse_period(str(parameter)).label
        except Exception:
            return str(parameter)
    return path.parent.name


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def language_of(analyses: Iterable[Analysis]) -> str:
    """The reader's language of the analyses (their `language` parameter; English when none says)."""
    from crmlens.i18n import DEFAULT_LANGUAGE, check_language

    for a in analyses:
        chosen = (a.nb.metadata.get("crmlens") or {}).get("language") or \
            ((a.nb.metadata.get("papermill") or {}).get("parameters") or {}).get("language")
        if chosen:
            try:
                return check_language(chosen)
            except Exception:
                continue
    return DEFAULT_LANGUAGE


def region_findings(analyses: Iterable[Analysis]) -> list[Any]:
    """Every finding record of the analyses, with notebook, section and anchor (`crmlens.run.summary`)."""
    from crmlens.run.summary import notebook_findings

    return [f for section, a in enumerate(analyses, 1) for f in notebook_findings(a.nb, a.name, section)]


def _is_finding(output: Mapping[str, Any]) -> bool:
    from crmlens.notebook import FINDING_METADATA

    marked = (output.get("metadata") or {}).get("crmlens", {}).get("kind") == FINDING_METADATA["crmlens"]["kind"]
    return marked and "text/markdown" in output.get("data", {})


def _finding_text(output: Mapping[str, Any]) -> str:
    from crmlens.findings import FINDING_MIMETYPE

    record = output["data"].get(FINDING_MIMETYPE)
    if isinstance(record, Mapping) and record.get("text"):
        return str(record["text"]).strip()
    return _text(output["data"]["text/markdown"]).strip()


def _figure_title(figure: Mapping[str, Any]) -> str:
    title = (figure.get("layout") or {}).get("title")
    text = title.get("text") if isinstance(title, Mapping) else title
    return str(text or "").strip()


def read_findings(nb: nbformat.NotebookNode) -> list[tuple[dict[str, Any], str, int]]:
    """The key charts of an executed notebook: ``(figure dict, finding, cell index)`` (see `_read_findings`)."""
    return [(figure, finding, cell) for figure, finding, cell, _ in _read_findings(nb)]


def _read_findings(nb: nbformat.NotebookNode) -> list[tuple[dict[str, Any], str, int, int]]:
    """The key charts of an executed notebook: ``(figure dict, finding, cell index, output index)`` in notebook
    order.

    A key chart is an output with the plotly mime type in a code cell not tagged `analyst`. Its finding is an
    output marked with `crmlens.notebook.FINDING_METADATA`, searched in this order:

    1. in the figure's own cell: the first finding after the figure, else the last one before it
       (``nb.say(...)`` then ``nb.plot(...)`` in one cell);
    2. in the code cells that follow, up to the next markdown cell or the next cell with a figure (a finding
       further away belongs to another result);
    3. else the figure's layout title.
    """
    cells = nb.cells
    found: list[tuple[dict[str, Any], str, int, int]] = []
    for index, cell in enumerate(cells):
        if cell.cell_type != "code" or ANALYST_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        outputs = cell.get("outputs", [])
        for position, output in enumerate(outputs):
            figure = output.get("data", {}).get(PLOTLY_MIMETYPE)
            if not isinstance(figure, Mapping):
                continue
            after = [o for o in outputs[position + 1:] if _is_finding(o)]
            before = [o for o in outputs[:position] if _is_finding(o)]
            finding = _finding_text(after[0]) if after else (_finding_text(before[-1]) if before else "")
            if not finding:
                finding = _following_finding(cells, index)
            found.append((dict(figure), finding or _figure_title(figure), index, position))
    return found


def _following_finding(cells: list[Any], index: int) -> str:
    for cell in cells[index + 1:]:
        if cell.cell_type == "markdown":
            return ""
        if cell.cell_type != "code":
            continue
        outputs = cell.get("outputs", [])
        if any(PLOTLY_MIMETYPE in o.get("data", {}) for o in outputs):
            return ""
        for output in outputs:
            if _is_finding(output):
                return _finding_text(output)
    return ""


def key_charts(analyses: Iterable[Analysis]) -> list[KeyChart]:
    """Every key chart of the analyses, in their order (see `read_findings`)."""
    return [KeyChart(notebook=a.name, period=a.period, figure=figure, finding=finding,
                     chart_title=_figure_title(figure), cell=cell, section=section, output=output)
            for section, a in enumerate(analyses, 1) for figure, finding, cell, output in _read_findings(a.nb)]


def plain_text(markdown: str) -> str:
    """Markdown of a finding as plain text: no `**`/`__`/backticks/links/quote marks, one line."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    text = re.sub(r"^\s*>\s?", "", text, flags=re.M)
    text = text.replace("**", "").replace("__", "").replace("`", "")
    return re.sub(r"\s+", " ", text).strip()


def slide_title(finding: str, limit: int = MAX_TITLE_CHARS) -> str:
    """The slide title for a finding: plain text, cut at a word to at most `limit` characters (about two lines)."""
    text = plain_text(finding)
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    cut = cut[: cut.rfind(" ")] if " " in cut else cut
    return cut.rstrip(" ,;:—-") + "…"


# ---------------------------------------------------------------------------------------------- the entry point

def export_region(region_dir: Path, notebooks: list[Path], kpis: pd.DataFrame, title: str,
                  formats: Iterable[str] = FORMATS, browser: Chromium | None = None) -> dict[str, Path]:
    """Write the region's exports into `region_dir` and return ``{format: path}``.

    `notebooks` are the region's executed notebooks (any periods, in the order wanted in the report);
    `kpis` is the region's KPI frame (docs/run.md, `kpis.parquet`); `title` heads the report and the deck.
    Each format is attempted even when another fails; then an `ExportError` (a RunError) names every failure
    and holds the files written. The deck and the PDF share one headless Chromium page of the report
    (`report_page`): each chart is drawn once. Pass `browser` (see `chromium`) to reuse one for several
    regions; calls in several threads run side by side, one browser per thread.
    """
    region_dir = Path(region_dir)
    wanted = list(dict.fromkeys(formats))
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise ParameterError(f"export formats: {', '.join(map(repr, unknown))} unknown; accepted: {', '.join(FORMATS)}")
    analyses = [load_analysis(p) for p in notebooks]
    with i18n.language(language_of(analyses)):
        return _export_region(region_dir, analyses, kpis, title, wanted, browser)


def _export_region(region_dir: Path, analyses: list[Analysis], kpis: pd.DataFrame, title: str, wanted: list[str],
                   browser: Chromium | None) -> dict[str, Path]:
    region = _region_name(region_dir, kpis)
    written: dict[str, Path] = {}
    errors: dict[str, str] = {}

    def attempt(fmt: str, write: Callable[[Path], Path]) -> None:
        target = region_dir / FILENAMES[fmt]
        try:
            written[fmt] = write(target)
        except Exception as e:
            errors[fmt] = str(e) if isinstance(e, RunError) else f"{target}: {type(e).__name__}: {e}"

    if "html" in wanted:
        attempt("html", lambda t: write_html(t, analyses, title, region))
    if "xlsx" in wanted:
        attempt("xlsx", lambda t: write_xlsx(t, kpis, title, [a.name for a in analyses], analyses=analyses))
    browser_formats = [f for f in ("pptx", "pdf") if f in wanted]
    if browser_formats:
        # One Chromium page of the report draws every chart once: the deck's images are taken from it, then it
        # is printed. Without report.html (not asked for, or it failed) the page is built in a temporary folder.
        with tempfile.TemporaryDirectory(prefix="crmlens-html-") as tmp:
            try:
                page_path = written.get("html") or write_html(Path(tmp) / FILENAMES["html"], analyses, title, region)
                with report_page(page_path, browser) as page:
                    if "pptx" in browser_formats:
                        attempt("pptx", lambda t: write_pptx(t, analyses, title, region, page))
                    if "pdf" in browser_formats:
                        attempt("pdf", page.pdf)
            except Exception as e:
                message = str(e) if isinstance(e, RunError) else f"{type(e).__name__}: {e}"
                for fmt in browser_formats:
                    if fmt not in written:
                        errors.setdefault(fmt, message)
    written = {fmt: written[fmt] for fmt in FORMATS if fmt in written}
    if errors:
        detail = "; ".join(f"{fmt}: {errors[fmt]}" for fmt in FORMATS if fmt in errors)
        raise ExportError(f"exports of {region} in {region_dir} failed — {detail}", written, errors)
    return written


def _region_name(region_dir: Path, kpis: pd.DataFrame) -> str:
    if "region" in kpis.columns and len(kpis):
        return str(kpis["region"].iloc[0])
    return region_dir.name


def _periods(analyses: Iterable[Analysis], kpis: pd.DataFrame | None = None) -> list[str]:
    periods = [a.period for a in analyses]
    if kpis is not None and "period" in kpis.columns:
        periods += [str(p) for p in kpis["period"]]
    return list(dict.fromkeys(periods))


# ------------------------------------------------------------------------------------------------------- HTML

_TEMPLATE_NAME = "crmlens_report.html.j2"
_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}
<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>
<script>{{ resources.crmlens_plotlyjs }}</script>
{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}<style type="text/css">{{ resources.crmlens_css }}</style>{% endblock extra_css %}
"""
_CSS = """
body, .jp-RenderedHTMLCommon { font-family: Inter, "Segoe UI", Helvetica, Arial, "Noto Sans CJK SC",
  "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei", sans-serif; }
main { max-width: 1100px; margin: 0 auto; }
.crmlens-subtitle { color: #555; }
.crmlens-toc ol { line-height: 1.6; }
.crmlens-toc .failed, .crmlens-failed strong { color: #b71c1c; }
.crmlens-section { margin-top: 2.5em; padding-top: 6px; border-top: 3px solid #444; color: #555;
                   font-size: 0.9em; }
.crmlens-failed { background: #fdecea; border-left: 4px solid #b71c1c; padding: 8px 12px; margin: 8px 0; }
.plotly-graph-div { break-inside: avoid; }
@page { size: A4 landscape; margin: 10mm; }
@media print {
  main { max-width: none; }
  .crmlens-section { break-before: page; }
  .jp-OutputArea-output { break-inside: avoid; overflow: visible !important; }
  .jp-RenderedHTMLCommon, .jp-OutputArea-child { overflow: visible !important; }
  .crmlens-table { break-inside: auto; }
  .jp-RenderedHTMLCommon table { font-size: 11px; }
  .modebar-container { display: none !important; }
}
"""
# A text/html output that loads plotly.js (the "notebook" renderer emits one per kernel, ~5 MB): dropped.
_PLOTLYJS_LOADER = re.compile(r"window\.Plotly\s*=\s*Plotly|\*\s*plotly\.js v\d", re.I)
# Script/link/img tags that would fetch something from the network.
_NETWORK_TAG = re.compile(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*[\"']?(https?:)?//[^>]*>"
                          r"(\s*</script>)?", re.I)


_PLOTLYJS_SLOT = "/* crmlens: plotly.js */"


def network_references(page: str) -> list[str]:
    """The script/link/img/iframe tags of an HTML page that fetch from the network (should be none)."""
    return [m.group(0) for m in _NETWORK_TAG.finditer(page)]


def _sized(figure: Mapping[str, Any]) -> dict[str, Any]:
    """The figure dict with a fixed size: its own, else FIGURE_WIDTH × 450 (print and slides lay out the same)."""
    from crmlens.charts import FIGURE_WIDTH

    layout = dict(figure.get("layout") or {})
    layout["width"] = layout.get("width") or FIGURE_WIDTH
    layout["height"] = layout.get("height") or 450
    return {**figure, "layout": layout}


def figure_html(figure: Mapping[str, Any], div_id: str | None = None) -> str:
    """A plotly figure (its JSON dict) as an HTML fragment without plotly.js (the page embeds it once), at a fixed
    size, in an element with id `div_id` (a random one when None). The dict is used as the notebook wrote it
    (validating it with `go.Figure` costs ~0.1 s per figure)."""
    import plotly.io as pio

    return pio.to_html(_sized(figure), include_plotlyjs=False, include_mathjax=False, full_html=False,
                       validate=False, div_id=div_id, config={"displaylogo": False, "responsive": False})


def _report_outputs(outputs: list[Any], section: int = 1, cell: int = 0) -> list[Any]:
    """The outputs as the report shows them: figures re-drawn without plotly.js (in elements with the ids of
    `chart_div_id`), findings preceded by their anchor (`crmlens.run.summary.finding_anchor`), loaders and
    stderr dropped."""
    import nbformat

    from crmlens.findings import FINDING_MIMETYPE
    from crmlens.run.summary import finding_anchor

    kept = []
    for position, output in enumerate(outputs):
        kind = output.get("output_type")
        if kind == "stream" and output.get("name") == "stderr":
            continue
        data = output.get("data", {})
        if PLOTLY_MIMETYPE in data:
            page = figure_html(data[PLOTLY_MIMETYPE], chart_div_id(section, cell, position))
            output = nbformat.from_dict({**output, "data": {"text/html": page}})
        elif "text/html" in data and _PLOTLYJS_LOADER.search(_text(data["text/html"])):
            continue
        elif kind in ("display_data", "execute_result"):
            shown = {k: v for k, v in data.items() if not k.startswith("application/vnd.")}
            if not shown:  # e.g. a KPI record with no text form: nothing for a reader
                continue
            if FINDING_MIMETYPE in data:
                anchor = finding_anchor(section, cell, position)
                kept.append(nbformat.v4.new_output("display_data", data={
                    "text/html": f'<a class="crmlens-anchor" id="{anchor}"></a>'}))
            output = nbformat.from_dict({**output, "data": shown})
        kept.append(output)
    return kept


SUMMARY_INTRO = N_("The findings that matter most in this report, most urgent first, with what to do about them. "
                   "Each links to its evidence.")
FAILED_NOTE = N_("It shows the results up to the failure; the executed notebook is {name}.")
NO_RECOMMENDATION = N_("The analyses make no recommendation for this region.")


def report_notebook(analyses: list[Analysis], title: str, region: str) -> nbformat.NotebookNode:
    """One notebook holding every analysis: a title, the executive summary and the contents, then per analysis
    a heading cell and its cells (outputs prepared for the report), then the conclusions and recommendations.
    Its texts are in the language in use (`crmlens.i18n`)."""
    import nbformat

    from crmlens.i18n import _, n_
    from crmlens.run import summary as summaries

    merged = nbformat.v4.new_notebook()
    merged.metadata["title"] = title
    if analyses:
        for key in ("kernelspec", "language_info"):
            if key in analyses[0].nb.metadata:
                merged.metadata[key] = analyses[0].nb.metadata[key]
    periods = _periods(analyses)
    failed = sum(a.failed for a in analyses)
    titles = {a.name: a.title for a in analyses}
    toc = []
    for i, a in enumerate(analyses, 1):
        mark = f' <span class="failed">({html.escape(_("failed"))})</span>' if a.failed else ""
        toc.append(f'<li><a href="#crmlens-section-{i}">{html.escape(a.title)} — {html.escape(a.period)}</a>{mark}'
                   "</li>")
    region_shown = _("the whole company") if region == "all" else region
    subtitle = " · ".join([
        _("Region {region}", region=f"<strong>{html.escape(region_shown)}</strong>"),
        n_("period {periods}", "periods {periods}", len(periods), periods=html.escape(", ".join(periods)) or "–"),
        n_("{n} analysis", "{n} analyses", len(analyses)),
    ]) + (f' · <strong class="failed">{html.escape(n_("{n} failed", "{n} failed", failed))}</strong>' if failed else "")
    findings = region_findings(analyses)
    top = summaries.executive_summary(findings)
    head = (f"# {title}\n\n<p class=\"crmlens-subtitle\">{subtitle}</p>\n\n"
            f'<section class="crmlens-summary" id="crmlens-executive-summary"><h2>{html.escape(_("Executive summary"))}'
            f"</h2>\n<p>{html.escape(_(SUMMARY_INTRO))}</p>"
            f"{summaries.findings_html(top, titles=titles)}</section>\n\n"
            f"<nav class=\"crmlens-toc\"><h2>{html.escape(_('Contents'))}</h2>\n<ol>\n"
            f"{''.join(toc) or '<li>' + html.escape(_('No analyses.')) + '</li>'}\n"
            f'<li><a href="#crmlens-conclusions">{html.escape(_("Conclusions and recommendations"))}</a></li>\n'
            "</ol></nav>\n")
    merged.cells.append(nbformat.v4.new_markdown_cell(head))
    for i, a in enumerate(analyses, 1):
        banner = (f'<div class="crmlens-section" id="crmlens-section-{i}">{html.escape(region_shown)} · '
                  f"{html.escape(a.period)} · {html.escape(a.name)}</div>")
        if a.failed:
            banner += (f'\n<div class="crmlens-failed"><strong>{html.escape(_("This analysis failed:"))}</strong> '
                       f"{html.escape(a.error or _('unknown error'))}. "
                       f"{html.escape(_(FAILED_NOTE, name=a.path.name))}"
                       "</div>")
        merged.cells.append(nbformat.v4.new_markdown_cell(banner + "\n"))
        for index, cell in enumerate(a.nb.cells):
            if cell.cell_type == "markdown":
                source = cell.source.replace("papermill-error-cell", f"papermill-error-cell-{i}")
                merged.cells.append(nbformat.v4.new_markdown_cell(source))
            elif cell.cell_type == "code":
                outputs = _report_outputs(cell.get("outputs", []), i, index)
                if outputs:
                    new = nbformat.v4.new_code_cell("", metadata={"tags": list(cell.metadata.get("tags", []))})
                    new.outputs = outputs
                    new.execution_count = cell.get("execution_count")
                    merged.cells.append(new)
    closing = summaries.recommendations(findings)
    merged.cells.append(nbformat.v4.new_markdown_cell(
        f'<section class="crmlens-conclusions" id="crmlens-conclusions"><h2>'
        f'{html.escape(_("Conclusions and recommendations"))}</h2>\n'
        f"<p>{html.escape(_('Every recommendation of this report, most urgent first.'))}</p>"
        f"{summaries.findings_html(closing, titles=titles, empty=_(NO_RECOMMENDATION))}"
        "</section>\n"))
    return merged


_EXPORTERS = threading.local()


def render_html(analyses: list[Analysis], title: str, region: str) -> str:
    """The region's report page: every analysis, no code, plotly.js embedded once, no network references."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    from crmlens.charts import plotlyjs

    exporter = getattr(_EXPORTERS, "html", None)
    if exporter is None:  # one per thread: it compiles its Jinja templates once (0.3 s), and is not thread-safe
        exporter = _EXPORTERS.html = HTMLExporter(
            template_name="lab", extra_loaders=[DictLoader({_TEMPLATE_NAME: _TEMPLATE})],
            template_file=_TEMPLATE_NAME, exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    # plotly.js (4.8 MB) goes in after nbconvert: its HTML clean-up parses the whole page (BeautifulSoup)
    from crmlens.present import TABLE_CSS
    from crmlens.run.summary import SUMMARY_CSS

    resources = {"crmlens_plotlyjs": _PLOTLYJS_SLOT, "crmlens_css": _CSS + TABLE_CSS + SUMMARY_CSS,
                 "metadata": {"name": title}}
    page, _ = exporter.from_notebook_node(report_notebook(analyses, title, region), resources=resources)
    page = _NETWORK_TAG.sub("", page)  # e.g. a CDN script inside an output: it would not load offline anyway
    page = page.replace('<html lang="en">', f'<html lang="{i18n.html_lang()}">', 1)
    head, slot, tail = page.partition(_PLOTLYJS_SLOT)
    if not slot:
        raise RunError("export: the report template lost its plotly.js slot")
    # the project's plotly.js bundle when it draws every chart of the report (1.4 MB instead of 4.8 MB)
    return head + plotlyjs.script_for(plotlyjs.trace_types(_figures(analyses))) + tail


def _figures(analyses: Iterable[Analysis]) -> Iterator[Mapping[str, Any]]:
    """Every plotly figure the analyses' cells show."""
    for a in analyses:
        for cell in a.nb.cells:
            for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
                figure = output.get("data", {}).get(PLOTLY_MIMETYPE)
                if isinstance(figure, Mapping):
                    yield figure


def write_html(target: Path, analyses: list[Analysis], title: str, region: str) -> Path:
    """Write `report.html` (see `render_html`) atomically."""
    try:
        page = render_html(analyses, title, region)
    except Exception as e:
        raise RunError(f"export: cannot build {target}: {type(e).__name__}: {e}") from e
    return atomic.write_text(target, page)


# -------------------------------------------------------------------------------------------------------- PDF

def chromium_path() -> str:
    """The headless Chromium binary; a RunError naming the Debian package when it is missing."""
    found = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    if not found:
        raise RunError(f"export: headless Chromium (for the PDF and the deck's images) was not found at {CHROMIUM} "
                       "or on PATH; install the Debian package `chromium` (apt-get install -y chromium)")
    return found


def write_pdf(html_path: Path, target: Path, timeout_s: float = BROWSER_TIMEOUT_S) -> Path:
    """Print `html_path` to the PDF `target` with headless Chromium (charts drawn by the embedded plotly.js), as
    the region exports do (`ReportPage.pdf`). The browser runs in a helper thread, so this works from any thread,
    also one running an asyncio loop (a dashboard's kernel)."""
    from concurrent.futures import ThreadPoolExecutor

    def printed() -> Path:
        with chromium(timeout_s) as browser, report_page(html_path, browser) as page:
            return page.pdf(target)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="crmlens-pdf") as pool:
        return pool.submit(printed).result()


# ------------------------------------------------------------------------------------------------------- XLSX

_UNIT_FORMATS = {"count": "#,##0", "amount": "#,##0", "rate": "0.0%", "share": "0.0%", "days": '#,##0.0" days"',
                 "score": "0.00", "ratio": "0.00", "number": "#,##0.00"}


#: Units as readers name them (the KPI registry's units).
UNIT_LABELS = {"count": N_("Counts"), "amount": N_("Amounts"), "rate": N_("Rates"), "days": N_("Days"),
               "score": N_("Scores"), "ratio": N_("Ratios")}


def number_format(unit: str, currency: str | None = None, signed: bool = False) -> str:
    """The Excel number format of a KPI unit (`crmlens.kpis.UNITS`); `signed` for deltas (+1.2%)."""
    fmt = _UNIT_FORMATS.get(unit, "#,##0.00")
    if unit == "days":
        from crmlens.i18n import _

        fmt = f'#,##0.0" {_("days")}"'
    if unit == "amount" and currency:
        fmt = f'#,##0" {currency}"'
    if signed:
        zero = fmt.replace("#,##", "").lstrip(",") if fmt.startswith("#,##") else fmt
        fmt = f"+{fmt};-{fmt};{zero}"
    return fmt


def _currency(kpis: pd.DataFrame) -> str | None:
    if "display" not in kpis.columns or "unit" not in kpis.columns:
        return None
    for text in kpis.loc[kpis["unit"] == "amount", "display"].dropna():
        match = re.search(r"\d\s+([A-Z]{3})$", str(text))
        if match:
            return match.group(1)
    return None


def _number(value: Any) -> float | None:
    if value is None or value is pd.NA:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or math.isinf(number) else number


def _str(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def sheet_names(analyses: Iterable[str], reserved: Iterable[str] = (SUMMARY_SHEET,)) -> dict[str, str]:
    """A valid, unique Excel sheet name (≤ 31 characters, no []:*?/\\) for each analysis."""
    taken = {name.lower() for name in reserved}
    names: dict[str, str] = {}
    for analysis in analyses:
        base = re.sub(r"[\[\]:*?/\\]", "_", analysis).strip("'") or "Analysis"
        if base.lower() == "history":
            base = "History_"
        name, n = base[:31], 1
        while name.lower() in taken:
            n += 1
            suffix = f" ({n})"
            name = base[: 31 - len(suffix)] + suffix
        taken.add(name.lower())
        names[analysis] = name
    return names


def _kpi_frame(kpis: pd.DataFrame) -> pd.DataFrame:
    needed = ["region", "period", "comparison_period", "notebook", "area", "kpi", "label", "unit", "direction",
              "value", "comparison_value", "delta", "delta_pct", "trend", "display", "status"]
    missing = [c for c in needed if c not in kpis.columns]
    if missing:
        raise RunError(f"export: the KPI frame lacks columns {', '.join(missing)} (docs/run.md, kpis.parquet)")
    return kpis.reset_index(drop=True)


def write_xlsx(target: Path, kpis: pd.DataFrame, title: str, notebooks: Iterable[str] = (),
               analyses: list[Analysis] | None = None) -> Path:
    """Write `report.xlsx`: with `analyses`, an Executive summary sheet first (the ranked findings with their
    recommendations); a Summary sheet with every KPI; one sheet per analysis (each notebook of `notebooks`, then
    any other notebook of `kpis`) with its KPIs for every period and native charts; then, with `analyses`, one
    "tables" sheet per analysis holding every table it showed, in full (the report shows the first rows).
    Headers and sheet names are in the language in use."""
    frame = _kpi_frame(kpis)
    names = list(dict.fromkeys([*notebooks, *frame["notebook"].astype(str)]))
    try:
        atomic.write_with(target, lambda tmp: _write_workbook(tmp, frame, title, names, analyses or []))
    except RunError:
        raise
    except Exception as e:
        raise RunError(f"export: cannot write {target}: {type(e).__name__}: {e}") from e
    return Path(target)


def _write_workbook(path: Path, frame: pd.DataFrame, title: str, analyses: list[str],
                    documents: list[Analysis]) -> None:
    import xlsxwriter

    from crmlens.charts import COLORS
    from crmlens.i18n import _

    currency = _currency(frame)
    book = xlsxwriter.Workbook(str(path))
    book.set_properties({"title": title, "subject": "CRM Lens KPIs", "creator": "CRM Lens"})
    header = book.add_format({"bold": True, "bg_color": "#1f4e79", "font_color": "#ffffff", "border": 1,
                              "text_wrap": True, "valign": "top"})
    caption = book.add_format({"bold": True, "font_color": "#1f4e79"})
    note = book.add_format({"italic": True, "font_color": "#757575"})
    trend_colors = {"better": COLORS["good"], "worse": COLORS["bad"]}
    cache: dict[tuple[str, str | None], Any] = {}

    def fmt(num_format: str | None = None, color: str | None = None) -> Any:
        key = (num_format or "", color)
        if key not in cache:
            props = {"num_format": num_format} if num_format else {}
            if color:
                props["font_color"] = color
            cache[key] = book.add_format(props)
        return cache[key]

    def put(ws: Any, row: int, col: int, value: Any, num_format: str | None = None) -> None:
        number = _number(value)
        if number is None:
            ws.write_blank(row, col, None, fmt(num_format))
        else:
            ws.write_number(row, col, number, fmt(num_format))

    def table(ws: Any, columns: list[str], rows: pd.DataFrame, with_analysis: bool) -> None:
        wide = {_(c) for c in ("Value", "Comparison", "Delta")}
        columns = [_(c) for c in columns]
        widths = [len(c) + 2 for c in columns]
        ws.write_row(0, 0, columns, header)
        for r, (_index, row) in enumerate(rows.iterrows(), start=1):
            unit = str(row["unit"])
            texts = [_str(row["period"]), _str(row["comparison_period"])]
            texts += [_str(row["notebook"])] if with_analysis else []
            texts += [_(_str(row["label"])) if _str(row["label"]) else ""] + ([] if with_analysis else [unit])
            for c, text in enumerate(texts):
                ws.write_string(r, c, text)
                widths[c] = max(widths[c], len(text) + 2)
            c = len(texts)
            put(ws, r, c, row["value"], number_format(unit, currency))
            put(ws, r, c + 1, row["comparison_value"], number_format(unit, currency))
            put(ws, r, c + 2, row["delta"], number_format(unit, currency, signed=True))
            put(ws, r, c + 3, row["delta_pct"], "+0.0%;-0.0%;0.0%")
            trend = _str(row["trend"])
            ws.write_string(r, c + 4, _(TREND_LABELS.get(trend, trend)) if trend else "",
                            fmt(None, trend_colors.get(trend)))
            status = _str(row["status"])
            ws.write_string(r, c + 5, _(STATUS_LABELS.get(status, status)) if status else "")
        for c, width in enumerate(widths):
            ws.set_column(c, c, 16 if columns[c] in wide else min(max(width, 10), 60))
        ws.freeze_panes(1, 0)
        if len(rows):
            ws.autofilter(0, 0, len(rows), len(columns) - 1)

    wrap = book.add_format({"text_wrap": True, "valign": "top"})
    summary_name = _(EXECUTIVE_SUMMARY_SHEET)[:31]
    kpi_sheet = _(SUMMARY_SHEET)[:31]
    if documents:
        _summary_sheet(book.add_worksheet(summary_name), documents, header, wrap, note)
    summary = book.add_worksheet(kpi_sheet)
    table(summary, SUMMARY_COLUMNS, frame, with_analysis=True)
    if frame.empty:
        summary.write_string(1, 0, _("No KPIs were recorded for this region."), note)

    reserved = (kpi_sheet, summary_name)
    for analysis, name in sheet_names(analyses, reserved=reserved).items():
        ws = book.add_worksheet(name)
        rows = frame[frame["notebook"].astype(str) == analysis]
        table(ws, ANALYSIS_COLUMNS, rows, with_analysis=False)
        if rows.empty:
            ws.write_string(1, 0, _("No KPIs recorded (the notebook failed or did not run)."), note)
            continue
        _add_charts(book, ws, name, rows, currency, caption, fmt, first_col=len(ANALYSIS_COLUMNS) + 1)
    tables = {f"{a.name} · {a.period}" if len({d.period for d in documents}) > 1 else a.name: shown_tables(a.nb)
              for a in documents}
    tables = {key: shown for key, shown in tables.items() if shown}  # no empty sheet for an analysis without tables
    taken = [*reserved, *sheet_names(analyses, reserved=reserved).values()]
    labels = {key: _("{analysis} tables", analysis=key) for key in tables}
    for key, name in sheet_names(labels.values(), reserved=taken).items():
        original = next(k for k, v in labels.items() if v == key)
        _tables_sheet(book.add_worksheet(name), tables[original], header, caption, note, fmt, currency)
    book.close()


EXECUTIVE_SUMMARY_SHEET = N_("Executive summary")


def shown_tables(nb: Any) -> list[dict[str, Any]]:
    """The tables an executed notebook showed (`crmlens.present.TABLE_MIMETYPE` records), in order."""
    from crmlens.present import TABLE_MIMETYPE

    return [output["data"][TABLE_MIMETYPE] for cell in nb.cells if cell.cell_type == "code"
            for output in cell.get("outputs", []) if isinstance((output.get("data") or {}).get(TABLE_MIMETYPE),
                                                                  Mapping)]


def _summary_sheet(ws: Any, documents: list[Analysis], header: Any, wrap: Any, note: Any) -> None:
    from crmlens.findings import SEVERITY_LABELS
    from crmlens.i18n import _
    from crmlens.run.summary import executive_summary, recommendations

    findings = region_findings(documents)
    titles = {a.name: a.title for a in documents}
    columns = [_("Rank"), _("Severity"), _("Finding"), _("Recommendation"), _("Analysis"), _("Section")]
    ws.write_row(0, 0, columns, header)
    top = executive_summary(findings)
    rest = [f for f in recommendations(findings) if f not in top]
    row = 1
    for rank, f in enumerate([*top, *rest], start=1):
        values = [str(rank) if rank <= len(top) else "", _(SEVERITY_LABELS[f.severity]), plain_text(f.text),
                  plain_text(f.recommendation), titles.get(f.notebook, f.notebook), f.section]
        for c, value in enumerate(values):
            ws.write_string(row, c, value, wrap)
        row += 1
    if not findings:
        ws.write_string(1, 0, _("No findings were recorded for this region."), note)
    for c, width in enumerate((6, 12, 70, 55, 30, 30)):
        ws.set_column(c, c, width)
    ws.freeze_panes(1, 0)


def _tables_sheet(ws: Any, tables: list[dict[str, Any]], header: Any, caption: Any, note: Any, fmt: Any,
                  currency: str | None) -> None:
    """Every table of an analysis, one under the other: title, labelled header, all rows with number formats."""
    from crmlens.i18n import _

    row = 0
    widths: dict[int, int] = {}
    if not tables:
        ws.write_string(0, 0, _("This analysis showed no table."), note)
    for record in tables:
        ws.write_string(row, 0, str(record.get("title") or _("Table")), caption)
        row += 1
        columns = record.get("columns") or []
        ws.write_row(row, 0, [str(c.get("label", c.get("name", ""))) for c in columns], header)
        row += 1
        table_currency = record.get("currency") or currency
        for values in record.get("data") or []:
            for c, (column, value) in enumerate(zip(columns, values, strict=False)):
                unit = str(column.get("unit", "text"))
                number = _number(value) if unit not in ("text", "date") and not isinstance(value, str) else None
                if number is not None:
                    ws.write_number(row, c, number, fmt(number_format(unit, table_currency)))
                else:
                    text = _str(value)
                    ws.write_string(row, c, text)
                    widths[c] = max(widths.get(c, 10), min(len(text) + 2, 50))
            row += 1
        if int(record.get("rows") or 0) > len(record.get("data") or []):
            ws.write_string(row, 0, _("First {shown} of {total} rows.", shown=len(record["data"]),
                                      total=record["rows"]), note)
            row += 1
        row += 1
    for c, width in widths.items():
        ws.set_column(c, c, max(width, 14))


def _add_charts(book: Any, ws: Any, sheet: str, rows: pd.DataFrame, currency: str | None, caption: Any,
                fmt: Any, first_col: int) -> None:
    """For the latest period with values: a column chart of value vs comparison per unit (the KPIs of one unit
    share an axis), from a small data block to the right of the table."""
    from xlsxwriter.utility import quote_sheetname

    from crmlens.charts import COLORS

    with_values = rows[rows["value"].map(_number).notna()]
    if with_values.empty:
        return
    latest = with_values["period"].astype(str).iloc[-1]
    block = with_values[with_values["period"].astype(str) == latest]
    from crmlens.i18n import _

    comparison = _str(block["comparison_period"].iloc[0]) or _("comparison")
    col = first_col
    ws.write_string(0, col, _("Chart data: {period} vs {comparison}", period=latest, comparison=comparison), caption)
    ws.set_column(col, col, 28)
    ws.set_column(col + 1, col + 2, 14)
    row = 1
    chart_row = 1
    quoted = quote_sheetname(sheet)
    for unit, group in block.groupby("unit", sort=False):
        unit = str(unit)
        num = number_format(unit, currency)
        ws.write_row(row, col, [_("KPI ({unit})", unit=_(UNIT_LABELS.get(unit, unit))), latest, comparison], caption)
        first = row + 1
        for i, (_index, kpi) in enumerate(group.iterrows()):
            ws.write_string(first + i, col, _(_str(kpi["label"])) if _str(kpi["label"]) else "")
            for j, key in enumerate(("value", "comparison_value"), start=1):
                number = _number(kpi[key])
                if number is None:
                    ws.write_blank(first + i, col + j, None, fmt(num))
                else:
                    ws.write_number(first + i, col + j, number, fmt(num))
        last = first + len(group) - 1
        chart = book.add_chart({"type": "column"})
        for j, color in ((1, COLORS["actual"]), (2, COLORS["comparison"])):
            chart.add_series({"name": [sheet, row, col + j],
                              "categories": f"={quoted}!${_col(col)}${first + 1}:${_col(col)}${last + 1}",
                              "values": f"={quoted}!${_col(col + j)}${first + 1}:${_col(col + j)}${last + 1}",
                              "fill": {"color": color}, "border": {"none": True}})
        chart.set_title({"name": _("{unit} KPIs: {period} vs {comparison}", unit=_(UNIT_LABELS.get(unit, unit)),
                                   period=latest, comparison=comparison),
                         "name_font": {"size": 12, "bold": True}})
        chart.set_y_axis({"num_format": num, "major_gridlines": {"visible": True, "line": {"color": "#e0e0e0"}}})
        chart.set_legend({"position": "bottom"})
        chart.set_size({"width": 560, "height": 300})
        ws.insert_chart(chart_row, col + 4, chart)
        chart_row += 16
        row = last + 2


def _col(index: int) -> str:
    from xlsxwriter.utility import xl_col_to_name

    return xl_col_to_name(index)


# ------------------------------------------------------------------------------------------------ images, PPTX

#: Waits for every chart of the page to be drawn by plotly.js (a page without plotly.js has nothing to wait for).
_CHARTS_DRAWN = """() => !window.Plotly || Array.from(document.querySelectorAll('.plotly-graph-div'))
    .every(gd => gd._fullLayout && gd.querySelector('.main-svg'))"""
#: The PNG of each drawn chart (by element id), from the SVG plotly.js already drew: no second drawing.
_CHART_PNGS = """async ([ids, scale]) => {
  const out = [];
  for (const id of ids) {
    const gd = document.getElementById(id);
    if (!gd || !gd._fullLayout) { out.push(null); continue; }
    const layout = gd._fullLayout;
    const svg = Plotly.Snapshot.toSVG(gd, 'png', scale);
    const url = await Plotly.Snapshot.svgToImg({svg: svg, format: 'png', width: layout.width,
      height: layout.height, scale: scale, promise: true, canvas: document.createElement('canvas')});
    out.push(url.slice(url.indexOf(',') + 1));
  }
  return out;
}"""


class ReportPage:
    """`report.html` open in headless Chromium with every chart drawn: the deck's images are taken from its
    charts and the PDF is printed from it, so each chart is drawn once (see `report_page`)."""

    def __init__(self, page: Any, html_path: Path) -> None:
        self._page = page
        self.html_path = html_path

    def chart_pngs(self, charts: list[KeyChart], scale: float = IMAGE_SCALE) -> list[bytes]:
        """PNG bytes of each key chart at its own size × `scale`, as the page drew it."""
        import base64

        encoded = self._page.evaluate(_CHART_PNGS, [[c.div_id for c in charts], scale]) if charts else []
        missing = [c.chart_title or c.div_id for c, png in zip(charts, encoded, strict=True) if png is None]
        if missing:
            raise RunError(f"export: {self.html_path} does not draw the chart(s) {', '.join(map(repr, missing))}")
        return [base64.b64decode(png) for png in encoded]

    def pdf(self, target: Path) -> Path:
        """Print the page (A4 landscape, from its CSS) to the PDF `target`, atomically."""
        with atomic.atomic_path(Path(target)) as tmp:
            self._page.pdf(path=str(tmp), prefer_css_page_size=True, print_background=True)
            with open(tmp, "rb") as f:
                if f.read(5) != b"%PDF-":
                    raise RunError(f"export: Chromium printed no PDF of {self.html_path} to {target}")
        return Path(target)


class Chromium:
    """A headless Chromium (Debian's `/usr/bin/chromium`, driven by Playwright; nothing is downloaded) with one
    tab, reused for every report opened in it: plotly.js is compiled once (the second report loads ~2 s
    faster). Playwright's sync API ties it to the thread that started it (no asyncio loop running there)."""

    def __init__(self, timeout_s: float = BROWSER_TIMEOUT_S) -> None:
        from playwright.sync_api import sync_playwright

        self.timeout_s = timeout_s
        executable = chromium_path()
        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS,
                                                             timeout=timeout_s * 1000)
            self._page = self._browser.new_page()
            self._page.set_default_timeout(timeout_s * 1000)
        except BaseException:
            self._playwright.stop()
            raise

    def open(self, html_path: Path) -> ReportPage:
        """Load `html_path` in the tab and wait until plotly.js drew every chart."""
        html_path = Path(html_path).resolve()
        self._page.goto(html_path.as_uri(), wait_until="load")
        self._page.wait_for_function(_CHARTS_DRAWN)
        return ReportPage(self._page, html_path)

    def close(self) -> None:
        try:
            self._browser.close()
        finally:
            self._playwright.stop()


def _browser_error(e: BaseException, what: str) -> RunError:
    text = str(e).strip()
    return RunError(f"export: headless Chromium failed on {what}: {text.splitlines()[0] if text else type(e).__name__}")


@contextmanager
def chromium(timeout_s: float = BROWSER_TIMEOUT_S) -> Iterator[Chromium]:
    """Start a `Chromium` for several reports (in this thread) and stop it at the end of the block. Each browser
    step has the limit `timeout_s`; a failure is a RunError."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        browser = Chromium(timeout_s)
    except PlaywrightError as e:
        raise _browser_error(e, "start") from e
    try:
        yield browser
    finally:
        browser.close()


@contextmanager
def report_page(html_path: Path, browser: Chromium | None = None) -> Iterator[ReportPage]:
    """`html_path` open in headless Chromium with every chart drawn, in `browser` (else a browser started for
    it). A browser failure is a RunError naming the page."""
    from playwright.sync_api import Error as PlaywrightError

    with contextlib.ExitStack() as stack:
        if browser is None:
            browser = stack.enter_context(chromium())
        try:
            yield browser.open(html_path)
        except PlaywrightError as e:
            raise _browser_error(e, str(html_path)) from e


def write_pptx(target: Path, analyses: list[Analysis], title: str, region: str, page: ReportPage) -> Path:
    """Write `deck.pptx`: a title slide, then one slide per key chart, titled by its finding. The chart images
    come from `page`: the analyses' report open in Chromium (`report_page`)."""
    charts = key_charts(analyses)
    try:
        images = page.chart_pngs(charts)
    except RunError:
        raise
    except Exception as e:
        raise RunError(f"export: cannot draw the charts of {target}: {type(e).__name__}: {e}") from e
    failed = [a for a in analyses if a.failed]
    try:
        atomic.write_with(target, lambda tmp: _write_deck(tmp, charts, images, title, region,
                                                         _periods(analyses), failed, region_findings(analyses),
                                                         {a.name: a.title for a in analyses}))
    except Exception as e:
        raise RunError(f"export: cannot write {target}: {type(e).__name__}: {e}") from e
    return Path(target)


#: Findings per executive-summary slide of the deck.
FINDINGS_PER_SLIDE = 3


def _findings_slides(deck: Any, findings: list[Any], heading: str, titles: Mapping[str, str]) -> None:
    """Slides listing `findings` (FINDINGS_PER_SLIDE each): severity, finding, recommendation, where."""
    from pptx.dml.color import RGBColor
    from pptx.util import Inches, Pt

    from crmlens.findings import SEVERITY_LABELS
    from crmlens.i18n import _

    colors = {"act": RGBColor(0xB7, 0x1C, 0x1C), "watch": RGBColor(0xA1, 0x5C, 0x00),
              "good": RGBColor(0x1B, 0x5E, 0x20), "info": RGBColor(0x45, 0x5A, 0x64)}
    width = deck.slide_width
    margin = Inches(0.5)
    chunks = [findings[i:i + FINDINGS_PER_SLIDE] for i in range(0, len(findings), FINDINGS_PER_SLIDE)] or [[]]
    for n, chunk in enumerate(chunks, 1):
        slide = deck.slides.add_slide(deck.slide_layouts[5])
        title = slide.shapes.title
        title.left, title.top, title.width, title.height = margin, Inches(0.3), width - 2 * margin, Inches(0.9)
        title.text = heading + (f" ({n}/{len(chunks)})" if len(chunks) > 1 else "")
        box = slide.shapes.add_textbox(margin, Inches(1.3), width - 2 * margin, deck.slide_height - Inches(1.8))
        frame = box.text_frame
        frame.word_wrap = True
        if not chunk:
            frame.text = _("No finding of this region calls for attention.")
        for i, f in enumerate(chunk):
            para = frame.paragraphs[0] if i == 0 else frame.add_paragraph()
            badge = para.add_run()
            badge.text = f"{_(SEVERITY_LABELS[f.severity])} · "
            badge.font.bold, badge.font.size, badge.font.color.rgb = True, Pt(18), colors[f.severity]
            text = para.add_run()
            text.text = plain_text(f.text)
            text.font.size = Pt(18)
            if f.recommendation:
                rec = frame.add_paragraph()
                run = rec.add_run()
                run.text = f"→ {_('Recommendation')}: {plain_text(f.recommendation)}"
                run.font.size, run.font.italic = Pt(15), True
            where = frame.add_paragraph()
            run = where.add_run()
            run.text = " · ".join(x for x in (titles.get(f.notebook, f.notebook), f.section) if x)
            run.font.size, run.font.color.rgb = Pt(11), RGBColor(0x75, 0x75, 0x75)
            where.space_after = Pt(14)


def _write_deck(path: Path, charts: list[KeyChart], images: list[bytes], title: str, region: str,
                periods: list[str], failed: list[Analysis], findings: list[Any] | None = None,
                titles: Mapping[str, str] | None = None) -> None:
    from io import BytesIO

    from PIL import Image
    from pptx import Presentation
    from pptx.dml.color import RGBColor
    from pptx.enum.text import PP_ALIGN
    from pptx.util import Emu, Inches, Pt

    deck = Presentation()
    deck.slide_width, deck.slide_height = Inches(13.333), Inches(7.5)
    width, height = deck.slide_width, deck.slide_height
    margin = Inches(0.5)

    slide = deck.slides.add_slide(deck.slide_layouts[0])
    slide.shapes.title.text = title
    slide.shapes.title.left, slide.shapes.title.top = margin, Inches(2.2)
    slide.shapes.title.width, slide.shapes.title.height = width - 2 * margin, Inches(1.6)
    subtitle = slide.placeholders[1]
    subtitle.left, subtitle.top, subtitle.width, subtitle.height = margin, Inches(4.0), width - 2 * margin, Inches(1.5)
    from crmlens.i18n import _, n_
    from crmlens.run.summary import executive_summary, recommendations

    lines = [_("Region {region}", region=_("the whole company") if region == "all" else region),
             n_("Period {periods}", "Periods {periods}", len(periods), periods=", ".join(periods) or "–"),
             n_("{n} key chart", "{n} key charts", len(charts))]
    if failed:
        lines.append(_("Failed: {notebooks}", notebooks=", ".join(f"{a.name} ({a.period})" for a in failed)))
    subtitle.text = "\n".join(lines)
    if findings is not None:
        _findings_slides(deck, executive_summary(findings), _("Executive summary"), titles or {})

    grey = RGBColor(0x75, 0x75, 0x75)
    for chart, png in zip(charts, images, strict=True):
        slide = deck.slides.add_slide(deck.slide_layouts[5])  # Title Only
        heading = slide.shapes.title
        heading.left, heading.top, heading.width, heading.height = margin, Inches(0.3), width - 2 * margin, Inches(1.1)
        heading.text = slide_title(chart.finding)
        frame = heading.text_frame
        frame.word_wrap = True
        for paragraph in frame.paragraphs:
            paragraph.alignment = PP_ALIGN.LEFT
            for run in paragraph.runs:
                run.font.size = Pt(TITLE_POINTS)
                run.font.bold = True
                run.font.color.rgb = RGBColor(0x1F, 0x4E, 0x79)
        box_top, box_height = Inches(1.5), height - Inches(1.5) - Inches(0.6)
        box_width = width - 2 * margin
        with Image.open(BytesIO(png)) as img:
            px_w, px_h = img.size
        scale = min(box_width / px_w, box_height / px_h)
        pic_w, pic_h = int(px_w * scale), int(px_h * scale)
        slide.shapes.add_picture(BytesIO(png), Emu(int((width - pic_w) / 2)), box_top, Emu(pic_w), Emu(pic_h))
        source = f"{region} · {chart.period} · {chart.notebook}" + (f" · {chart.chart_title}" if chart.chart_title
                                                                    else "")
        footer = slide.shapes.add_textbox(margin, height - Inches(0.5), width - 2 * margin, Inches(0.35))
        footer.text_frame.text = source
        for run in footer.text_frame.paragraphs[0].runs:
            run.font.size, run.font.color.rgb = Pt(10), grey
        slide.notes_slide.notes_text_frame.text = (
            f"{plain_text(chart.finding)}\n\n{_('Chart')}: {chart.chart_title}\n{_('Source')}: {source}")
    if findings is not None:
        closing = recommendations(findings)
        if closing:
            _findings_slides(deck, closing, _("Conclusions and recommendations"), titles or {})
    deck.core_properties.title = title
    deck.save(str(path))

