"""Exports of a dashboard's current view: its tables to Excel, the view to PDF — the filter state in the file
name (`crmlens.dashboard.state.file_stem`) and in each file's header (`describe`).

* `view_xlsx(...)` — a workbook: sheet "View" with the header lines and one row per KPI tile (value,
  comparison, change, target, attainment, alert, note — the tiles' own numbers, unrounded, with number
  formats), then one sheet per panel table (and the drill-down / funnel records when open).
* `view_pdf(...)` — an HTML page of the view (tiles, every panel's chart with plotly.js embedded, its finding
  and table) printed by headless Chromium (`crmlens.run.exports.write_pdf`): no network needed.

Sheet names, headings, header lines and messages are in the language in use (`crmlens.i18n.language`); the
numbers are the same in every language.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crmlens import i18n
from crmlens.dashboard.panels import Panel
from crmlens.dashboard.state import join_clauses
from crmlens.dashboard.tiles import Tile, tiles_html
from crmlens.i18n import N_, _, format_number, n_
from crmlens.run.exports import number_format, sheet_names, write_pdf

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PDF_MIME = "application/pdf"
#: The first sheet's name (a msgid: "View", 看板).
VIEW_SHEET = N_("View")
#: Columns of the View sheet's KPI table (msgids; the first holds the KPI's name in the registry).
TILE_COLUMNS: tuple[str, ...] = (N_("KPI"), N_("Name"), N_("Value"), N_("Comparison period"),
                                 N_("Comparison value"), N_("Change"), N_("Change %"), N_("Target"),
                                 N_("Attainment"), N_("Alert"), N_("Note"))


#: Table columns holding fractions, shown as percentages on the page and in Excel: by suffix, and by name.
RATE_SUFFIXES = ("_rate", "_probability", "_share")  # not _pct: e.g. smape_pct is in percent already
RATE_COLUMNS = ("risk", "share_change")


def is_rate_column(column: str) -> bool:
    """True for a column of fractions (0.4045 is shown 40.5%)."""
    return column.endswith(RATE_SUFFIXES) or column in RATE_COLUMNS


def _column_format(column: str) -> str | None:
    if is_rate_column(column):
        return "0.0%"
    if column.endswith("_amount") or column.startswith("n_") or column in ("amount",):
        return "#,##0"
    if column.endswith("_days"):
        return "0.0"
    return None


def _tile_note(t: Tile) -> str:
    """The Note cell: why a tile has no value, and the view's note on it ("not filtered by team")."""
    return join_clauses((t.no_data, t.note))


def _tile_values(t: Tile) -> list[object]:
    return [t.kpi, t.label, t.value, t.comparison_label, t.comparison_value, t.delta, t.delta_pct, t.target,
            t.attainment, t.alert or "", _tile_note(t)]


def tile_rows(tiles: Sequence[Tile]) -> pd.DataFrame:
    """The tiles as the View sheet's table (raw values: what the tiles show, unrounded), headed in the language
    in use."""
    columns = [_(c) for c in TILE_COLUMNS]
    return pd.DataFrame([dict(zip(columns, _tile_values(t), strict=True)) for t in tiles], columns=columns)


def view_xlsx(title: str, header: Sequence[str], tiles: Sequence[Tile], tables: Mapping[str, pd.DataFrame],
              currency: str = "USD") -> bytes:
    """The workbook of a view as bytes (see the module docs). `tables` maps a sheet title to a frame."""
    import xlsxwriter

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "nan_inf_to_errors": True,
                                        "default_date_format": "yyyy-mm-dd"})
    bold = book.add_format({"bold": True})
    title_fmt = book.add_format({"bold": True, "font_size": 14})
    head = book.add_format({"bold": True, "bg_color": "#e8eef5", "border": 1})
    formats: dict[str, object] = {}

    def fmt(spec: str | None) -> object:
        if spec is None:
            return None
        if spec not in formats:
            formats[spec] = book.add_format({"num_format": spec})
        return formats[spec]

    def put(ws: object, row: int, col: int, value: object, spec: str | None = None) -> None:
        if isinstance(value, np.generic):  # numpy scalars (a boolean column's np.bool_) as Python values
            value = value.item()
        if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA or value is pd.NaT:
            ws.write_blank(row, col, None)  # type: ignore[attr-defined]
        elif isinstance(value, pd.Timestamp):
            ws.write_datetime(row, col, value.to_pydatetime().replace(tzinfo=None), fmt("yyyy-mm-dd hh:mm"))  # type: ignore[attr-defined]
        elif isinstance(value, bool):
            ws.write_boolean(row, col, value)  # type: ignore[attr-defined]
        elif isinstance(value, int | float):
            ws.write_number(row, col, float(value), fmt(spec))  # type: ignore[attr-defined]
        else:
            ws.write_string(row, col, str(value))  # type: ignore[attr-defined]

    view_sheet = _(VIEW_SHEET)
    ws = book.add_worksheet(view_sheet)
    ws.write_string(0, 0, title, title_fmt)
    for i, line in enumerate(header, start=1):
        ws.write_string(i, 0, line)
    start = len(header) + 2
    for c, name in enumerate(TILE_COLUMNS):
        ws.write_string(start, c, _(name), head)
    for r, t in enumerate(tiles, start=start + 1):
        unit_fmt = number_format(t.unit, currency)
        values = _tile_values(t)
        specs = [None, None, unit_fmt, None, unit_fmt, number_format(t.unit, currency, signed=True), "+0.0%;-0.0%;0.0%",
                 unit_fmt if t.target != 1.0 or t.unit != "rate" else "0%", "0.0%", None, None]
        for c, (value, spec) in enumerate(zip(values, specs, strict=True)):
            put(ws, r, c, value, spec)
    ws.set_column(0, 0, 24)
    ws.set_column(1, 1, 28)
    ws.set_column(2, len(TILE_COLUMNS) - 1, 16)
    names = sheet_names(list(tables), reserved=(view_sheet,))
    for key, frame in tables.items():
        sheet = book.add_worksheet(names[key])
        sheet.write_string(0, 0, key, bold)
        sheet.write_string(1, 0, header[0] if header else "")
        columns = [str(c) for c in frame.columns]
        known = frame.attrs.get("formats", {})
        specs = [known[c] if c in known else _column_format(c) for c in columns]
        for c, name in enumerate(columns):
            sheet.write_string(3, c, name, head)
        for r, row in enumerate(frame.itertuples(index=False), start=4):
            for c, value in enumerate(row):
                put(sheet, r, c, value, specs[c])
        sheet.set_column(0, max(len(columns) - 1, 0), 16)
        sheet.freeze_panes(4, 0)
    book.close()
    return buffer.getvalue()


def labelled(frame: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    """`frame`'s `columns` (column → heading; all columns when none of them is there) renamed to their
    headings, for an export sheet; the number format each column's name implies is kept in
    ``attrs["formats"]`` (heading → Excel format), so that a translated heading keeps its format."""
    cols = {c: h for c, h in columns.items() if c in frame.columns} or {c: c for c in frame.columns}
    out = frame[list(cols)].rename(columns=cols).reset_index(drop=True)
    out.attrs["formats"] = {h: _column_format(str(c)) for c, h in cols.items()}
    return out


def panel_tables(panels: Sequence[Panel]) -> dict[str, pd.DataFrame]:
    """Sheet title → table of the panels that have one, with their display headings (`labelled`)."""
    return {p.title: labelled(p.table, p.columns) for p in panels if p.table is not None}


#: Rows of a table shown on the page or in the PDF (all rows go to the Excel export).
TABLE_ROWS = 50


def _fmt_cell(column: str, value: Any) -> str:
    """A table cell as a reader reads it, in the language in use (`crmlens.i18n.format_number`; "–" for a
    missing value), its unit told by the column's name."""
    if isinstance(value, np.generic):
        value = value.item()
    if i18n.is_missing(value):
        return i18n.MISSING_VALUE
    if isinstance(value, pd.Timestamp):
        return i18n.format_date(value.normalize())
    if isinstance(value, bool):
        return format_number(value)
    if isinstance(value, int | float):
        if is_rate_column(column):  # e.g. the forecast's target_probability, a churn risk
            return format_number(value, "rate")
        if column.endswith("_days"):
            return format_number(value, "number", digits=1)
        whole = abs(value) >= 100 or float(value).is_integer()
        return format_number(value, "number", digits=0 if whole else 2)
    return str(value)


def table_html(frame: pd.DataFrame, columns: Mapping[str, str], *, css: str, limit: int = TABLE_ROWS,
               key: str | None = None) -> str:
    """An HTML table of `frame`'s `columns` (column → heading), values formatted by column name in the language
    in use; at most `limit` rows, then a line saying how many more (all are in the Excel export)."""
    cols = [c for c in columns if c in frame.columns]
    head = "".join(f"<th>{html.escape(columns[c])}</th>" for c in cols)
    rows = []
    for _i, row in frame.head(limit).iterrows():
        attr = f' data-key="{html.escape(str(row[key]))}"' if key and key in frame.columns else ""
        cells = "".join(f"<td>{html.escape(_fmt_cell(c, row[c]))}</td>" for c in cols)
        rows.append(f"<tr{attr}>{cells}</tr>")
    more = ""
    if len(frame) > limit:
        text = n_("{n} more row in the Excel export", "{n} more rows in the Excel export", len(frame) - limit)
        more = f'<div style="color:#555;font-size:12px">{html.escape(text)}</div>'
    style = ("<style>.crmlens-table{border-collapse:collapse;font-size:13px}.crmlens-table th{text-align:left;"
             "background:#e8eef5;padding:3px 8px}.crmlens-table td{padding:2px 8px;border-bottom:1px solid #eee;"
             "text-align:right}.crmlens-table td:first-child{text-align:left}</style>")
    return (f'{style}<table class="crmlens-table {css}" data-rows="{len(frame)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>{more}')


def findings_html(table: pd.DataFrame, columns: Mapping[str, str]) -> str:
    """The key findings panel's table (`crmlens.dashboard.panels_roles.key_findings`) as HTML: a row per
    finding with its severity as the run's reports badge it (`crmlens.run.summary.severity_badge`, same
    colours), the finding and recommendation with their Markdown (bold, code), the panel it comes from."""
    from crmlens.run.summary import SUMMARY_CSS, severity_badge

    order = ("severity", "finding", "recommendation", "panel")
    head = "".join(f"<th>{html.escape(columns.get(c, c))}</th>" for c in order)
    rows = [f"<tr data-severity='{html.escape(str(r.level))}'><td>{severity_badge(str(r.level))}</td>"
            f"<td>{finding_html(str(r.finding))}</td><td>{finding_html(str(r.recommendation or ''))}</td>"
            f"<td style='color:#555'>{html.escape(str(r.panel))}</td></tr>" for r in table.itertuples(index=False)]
    style = (f"<style>{SUMMARY_CSS}.crmlens-findings{{border-collapse:collapse;font-size:13px;width:100%}}"
             ".crmlens-findings th{text-align:left;background:#1f4e79;color:#fff;padding:4px 8px}"
             ".crmlens-findings td{padding:4px 8px;border-bottom:1px solid #e0e0e0;vertical-align:top;"
             "text-align:left}</style>")
    return (f"{style}<table class='crmlens-findings' data-rows='{len(table)}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def view_html(title: str, header: Sequence[str], tiles: Sequence[Tile], panels: Sequence[Panel]) -> str:
    """The printable page of a view: header, tiles, each panel's chart (plotly.js embedded once), finding (and
    its recommendation), table — its texts in the language in use."""
    import plotly.io as pio

    from crmlens.charts import plotlyjs
    from crmlens.dashboard.panels_roles import TABLE_PANELS

    parts = [f"<h1>{html.escape(title)}</h1>"] + [f"<p class='hdr'>{html.escape(line)}</p>" for line in header]
    parts.append(tiles_html(tiles))
    figures = []
    for p in panels:
        parts.append(f"<section><h2>{html.escape(p.title)}</h2>")
        if p.no_data:
            parts.append(f"<p class='nodata'>{html.escape(p.no_data)}</p></section>")
            continue
        if p.figure is not None:
            fig = p.figure.to_dict()
            fig["layout"] = {**fig.get("layout", {}), "width": 900, "height": 380}
            figures.append(fig)
            parts.append(pio.to_html(fig, include_plotlyjs=False, full_html=False,
                                     validate=False, config={"displaylogo": False, "staticPlot": True}))
        if p.finding:
            parts.append(f"<p class='finding'>{finding_html(p.finding)}</p>")
        if p.recommendation:
            parts.append(f"<p class='finding'><b>{html.escape(_('Recommendation'))}:</b> "
                         f"{finding_html(p.recommendation)}</p>")
        if p.note:
            parts.append(f"<p class='note'>{html.escape(p.note)}</p>")
        if p.table is not None and p.key in TABLE_PANELS:
            parts.append(findings_html(p.table, p.columns))
        elif p.table is not None:
            parts.append(table_html(p.table, p.columns or {c: c for c in p.table.columns}, css="tbl", limit=30))
        parts.append("</section>")
    style = ("body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222}h1{font-size:20px}"
             "h2{font-size:15px;margin-top:18px}.hdr{color:#555;margin:2px 0}.nodata{color:#757575}"
             ".note{color:#8a6d00;font-size:12px}.tbl{border-collapse:collapse;font-size:11px}"
             ".tbl td,.tbl th{padding:2px 6px;border-bottom:1px solid #ddd;text-align:right}"
             "section{page-break-inside:avoid}")
    lang = i18n.html_lang()
    # plotly.js once, before the charts: the project's bundle when it draws them all
    script = f"<script>{plotlyjs.script_for(plotlyjs.trace_types(figures))}</script>" if figures else ""
    return (f"<!DOCTYPE html><html lang='{lang}'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style>{script}</head><body>{''.join(parts)}</body></html>")


def view_pdf(title: str, header: Sequence[str], tiles: Sequence[Tile], panels: Sequence[Panel]) -> bytes:
    """The view printed to PDF by headless Chromium (bytes)."""
    with tempfile.TemporaryDirectory(prefix="crmlens-view-") as tmp:
        page = Path(tmp) / "view.html"
        page.write_text(view_html(title, header, tiles, panels), encoding="utf-8")
        return write_pdf(page, Path(tmp) / "view.pdf").read_bytes()


def header_lines(description: str, as_of: pd.Timestamp, source: str) -> list[str]:
    """The header lines of an export, in the language in use: the filter state, the data's as-of date, the
    source, when made."""
    made = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [description, _("Data as of {date} · source {source} · exported {made}",
                           date=i18n.format_date(as_of.normalize()), source=source, made=made)]


def finding_html(text: str) -> str:
    """A finding's Markdown (``**bold**`` and `` `code` `` spans) as escaped HTML."""
    import re

    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
