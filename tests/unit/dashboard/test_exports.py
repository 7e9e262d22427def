"""Tests of crmlens.dashboard.exports: the Excel workbook read back with openpyxl (header lines, the tiles' own
numbers, one sheet per table), the panel tables, the printable HTML page (offline, plotly.js once) and the PDF."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from crmlens.dashboard import exports
from crmlens.dashboard import state as st
from crmlens.dashboard.model import DashboardData
from crmlens.dashboard.panels import PANELS, Panel
from crmlens.dashboard.tiles import DEFAULT_OVERVIEW, tiles_for
from crmlens.run.exports import network_references

#: The sales panels (the overview's and the sales manager's): every one has a table on the demo.
SALES = ["funnel", "bookings_trend", "pipeline", "leaderboard", "regions", "attainment", "follow_ups"]

TITLE = "CRM Lens — executive overview"
HEADER = ["All regions · 2026-Q3 (this quarter) vs 2026-Q2", "Data as of 2026-10-01 · source demo · exported now"]


@pytest.fixture(scope="module")
def board(tiny_demo) -> DashboardData:
    from crmlens import data

    return DashboardData(data.connect(str(tiny_demo)))


@pytest.fixture(scope="module")
def view(board):
    return board.view(st.FilterState(product_line="Cloud"))


@pytest.fixture(scope="module")
def tiles(view):
    return view.annotate(tiles_for(view, [*DEFAULT_OVERVIEW, "activity_completion_rate"], spark_periods=2,
                                   thresholds={"target_attainment": {"min": 2.0}}))


@pytest.fixture(scope="module")
def panels(view) -> list[Panel]:
    return [PANELS[key](view) for key in SALES]


@pytest.fixture(scope="module")
def tables(panels) -> dict[str, pd.DataFrame]:
    return exports.panel_tables(panels)


@pytest.fixture(scope="module")
def book(tiles, tables) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(exports.view_xlsx(TITLE, HEADER, tiles, tables)))


def as_written(value: float | None) -> float | None:
    """A number as xlsxwriter writes it: 16 significant digits (`{:.16G}`), exact otherwise."""
    return None if value is None else float(f"{value:.16g}")


# ------------------------------------------------------------------------------------------ View sheet

def test_view_sheet_header_lines(book):
    ws = book[exports.VIEW_SHEET]
    assert book.sheetnames[0] == "View"
    assert ws["A1"].value == TITLE
    assert [ws.cell(row=2 + i, column=1).value for i in range(len(HEADER))] == HEADER
    assert ws.cell(row=len(HEADER) + 2, column=1).value is None
    head = [ws.cell(row=len(HEADER) + 3, column=c + 1).value for c in range(len(exports.TILE_COLUMNS))]
    assert head == list(exports.TILE_COLUMNS)


def test_view_sheet_rows_hold_the_tiles_values(book, tiles):
    ws = book[exports.VIEW_SHEET]
    first = len(HEADER) + 4
    rows = list(ws.iter_rows(min_row=first, max_row=ws.max_row, values_only=True))
    assert len(rows) == len(tiles)
    for row, t in zip(rows, tiles, strict=True):
        cells = dict(zip(exports.TILE_COLUMNS, row, strict=True))
        assert (cells["KPI"], cells["Name"], cells["Comparison period"]) == (t.kpi, t.label, t.comparison_label)
        for column, value in (("Value", t.value), ("Comparison value", t.comparison_value), ("Change", t.delta),
                              ("Change %", t.delta_pct), ("Target", t.target), ("Attainment", t.attainment)):
            assert cells[column] == as_written(value), f"{t.kpi} {column}: {cells[column]!r} vs {value!r}"
            if value is not None:
                assert cells[column] == pytest.approx(value, rel=1e-15, abs=0)
        assert (cells["Alert"] or "") == (t.alert or "")
    by_kpi = {r[0]: dict(zip(exports.TILE_COLUMNS, r, strict=True)) for r in rows}
    assert by_kpi["target_attainment"]["Alert"].startswith("Below the minimum")
    assert by_kpi["activity_completion_rate"]["Note"] == "not filtered by product line"
    assert by_kpi["bookings_amount"]["Note"] == "the target is the whole company's"
    assert by_kpi["win_rate"]["Note"] in ("", None)


def test_a_tile_without_value_is_blank_with_its_reason(tiles):
    empty = dataclasses.replace(tiles[0], value=None, comparison_value=None, delta=None, delta_pct=None,
                                target=None, attainment=None, note=None,
                                no_data="No data: this source has no `targets` table")
    ws = openpyxl.load_workbook(io.BytesIO(exports.view_xlsx(TITLE, HEADER[:1], [empty], {})))["View"]
    row = dict(zip(exports.TILE_COLUMNS, next(ws.iter_rows(min_row=5, max_row=5, values_only=True)), strict=True))
    assert row["KPI"] == empty.kpi
    assert row["Value"] is None and row["Target"] is None and row["Change %"] is None
    assert row["Note"] == "No data: this source has no `targets` table"


def test_tile_rows_are_the_tiles_numbers(tiles):
    frame = exports.tile_rows(tiles)
    assert list(frame.columns) == list(exports.TILE_COLUMNS) and len(frame) == len(tiles)
    for (_, row), t in zip(frame.iterrows(), tiles, strict=True):
        assert row["KPI"] == t.kpi and row["Value"] == t.value
        assert row["Target"] == t.target if t.target is not None else pd.isna(row["Target"])
    notes = dict(zip(frame["KPI"], frame["Note"], strict=True))
    assert notes["activity_completion_rate"] == "not filtered by product line"


# ------------------------------------------------------------------------------------------ table sheets

def test_one_sheet_per_table(book, tables):
    assert len(book.sheetnames) == 1 + len(tables)
    assert len(tables) == len(SALES)  # the demo: every panel has a table
    for name, (key, frame) in zip(book.sheetnames[1:], tables.items(), strict=True):
        ws = book[name]
        assert len(name) <= 31 and ws["A1"].value == key
        assert ws["A2"].value == HEADER[0]
        assert [c.value for c in ws[4]][:len(frame.columns)] == [str(c) for c in frame.columns]
        assert ws.max_row == 4 + len(frame)
        assert ws.freeze_panes == "A5"


def test_table_sheet_values(book, tables):
    key = "Pipeline by stage"
    frame = tables[key]
    ws = book[book.sheetnames[1 + list(tables).index(key)]]
    rows = list(ws.iter_rows(min_row=5, values_only=True))
    assert [r[0] for r in rows] == list(frame["Stage"])
    assert [r[1] for r in rows] == [as_written(float(v)) for v in frame["Opportunities"]]
    assert [r[2] for r in rows] == [as_written(float(v)) for v in frame["Amount"]]


def test_table_sheet_writes_dates_booleans_and_gaps():
    frame = pd.DataFrame({"created_at": [pd.Timestamp("2026-07-01 10:30"), pd.NaT],
                          "is_won": pd.array([True, pd.NA], dtype="boolean"),
                          "amount": [1234.5, float("nan")], "stage": ["won", None]})
    ws = openpyxl.load_workbook(io.BytesIO(exports.view_xlsx(TITLE, HEADER, [], {"Opps": frame})))["Opps"]
    assert [c.value for c in ws[5]] == [pd.Timestamp("2026-07-01 10:30").to_pydatetime(), True, 1234.5, "won"]
    assert [c.value for c in ws[6]] == [None, None, None, None]
    assert ws["C5"].number_format == "#,##0"


def test_numpy_booleans_are_written_as_booleans(book, tables):
    """The attainment table's is_on_track column iterates as numpy booleans: cells must be TRUE/FALSE."""
    frame = pd.DataFrame({"is_on_track": pd.array([True, False], dtype="boolean"), "n": [1, 2]})
    frame["flag"] = frame["is_on_track"].to_numpy(dtype=bool)
    ws = openpyxl.load_workbook(io.BytesIO(exports.view_xlsx(TITLE, HEADER, [], {"T": frame})))["T"]
    assert [[c.value for c in row] for row in ws.iter_rows(min_row=5)] == [[True, 1, True], [False, 2, False]]
    key = next(k for k in tables if k.startswith("Target attainment"))
    sheet = book[book.sheetnames[1 + list(tables).index(key)]]
    column = [c.value for c in sheet[4]].index("On track")
    assert {row[column] for row in sheet.iter_rows(min_row=5, values_only=True)} <= {True, False, None}


def test_panel_tables_use_headings_and_skip_panels_without_table(panels, tables):
    with_table = [p for p in panels if p.table is not None]
    assert list(tables) == [p.title for p in with_table]
    pipeline = next(p for p in panels if p.key == "pipeline")
    assert list(tables[pipeline.title].columns) == list(pipeline.columns.values())
    assert len(tables[pipeline.title]) == len(pipeline.table)
    empty = Panel("funnel", "Lead funnel", no_data="No data: this source has no `leads` table")
    assert exports.panel_tables([empty]) == {}
    bare = Panel("x", "Raw", table=pd.DataFrame({"a": [1], "b": [2]}), columns={"zzz": "Missing"})
    assert list(exports.panel_tables([bare])["Raw"].columns) == ["a", "b"]


def test_header_lines():
    lines = exports.header_lines("East · 2026-Q3 vs 2026-Q2", pd.Timestamp("2026-10-01"), "demo")
    assert lines[0] == "East · 2026-Q3 vs 2026-Q2"
    assert lines[1].startswith("Data as of 2026-10-01 · source demo · exported ") and lines[1].endswith(" UTC")


# ------------------------------------------------------------------------------------------ HTML and PDF

@pytest.fixture(scope="module")
def page(tiles, panels) -> str:
    gone = Panel("attainment", "Target attainment", no_data="No data: this source has no `targets` table")
    return exports.view_html(TITLE, HEADER, tiles, [*panels, gone])


def test_view_html_needs_no_network(page):
    assert network_references(page) == []
    assert "<script src" not in page and "<link " not in page


def test_view_html_embeds_plotly_once(page, panels):
    assert page.count("* plotly.js v") == 1
    assert page.count('class="plotly-graph-div"') == sum(1 for p in panels if p.figure is not None) >= 5


def test_view_html_shows_tiles_findings_and_no_data(page, tiles, panels):
    assert page.startswith("<!DOCTYPE html>") and "<title>CRM Lens — executive overview</title>" in page
    for t in tiles:
        assert f'data-kpi="{t.kpi}"' in page
    for p in panels:
        assert p.title.replace("'", "&#x27;") in page
    assert "No data: this source has no `targets` table" in page
    assert "not filtered by product line" in page


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Chromium is not installed at /usr/bin/chromium")
def test_view_pdf(tiles, panels):
    pdf = exports.view_pdf(TITLE, HEADER, tiles[:2], [p for p in panels if p.key == "pipeline"])
    assert pdf.startswith(b"%PDF") and len(pdf) > 1000


# ------------------------------------------------------------------------------------------- 中文

def test_translated_headings_keep_the_columns_number_formats():
    frame = pd.DataFrame({"win_rate": [0.5], "bookings_amount": [1234.0]})
    labelled = exports.labelled(frame, {"win_rate": "赢单率", "bookings_amount": "成交额"})
    assert list(labelled.columns) == ["赢单率", "成交额"]
    ws = openpyxl.load_workbook(io.BytesIO(exports.view_xlsx(TITLE, HEADER, [], {"T": labelled})))["T"]
    assert ws["A5"].number_format == "0.0%" and ws["B5"].number_format == "#,##0"
    assert ws["A5"].value == 0.5 and ws["B5"].value == 1234.0


def test_chinese_exports_have_chinese_headers_and_the_same_numbers(tiles):
    from crmlens import i18n

    english = exports.tile_rows(tiles)
    with i18n.language("zh"):
        chinese = exports.tile_rows(tiles)
        header = exports.header_lines("全部区域", pd.Timestamp("2026-10-01"), "demo")
        cells = exports.table_html(pd.DataFrame({"win_rate": [0.25, None], "is_won": [True, False]}),
                                   {"win_rate": "赢单率", "is_won": "赢单"}, css="t")
        book = openpyxl.load_workbook(io.BytesIO(exports.view_xlsx("标题", header, tiles, {})))
    assert all(i18n.has_cjk(c) for c in chinese.columns[1:])
    pd.testing.assert_frame_equal(chinese.set_axis(english.columns, axis=1), english)  # only the headings differ
    assert header[1].startswith("数据截至 2026-10-01 · 数据源 demo · 导出于 ")
    assert ">25.0%<" in cells and f">{i18n.MISSING_VALUE}<" in cells and ">是<" in cells and ">否<" in cells
    assert book.sheetnames == ["看板"]
    rows = list(book["看板"].iter_rows(min_row=len(header) + 4, values_only=True))
    assert [r[2] for r in rows] == [None if t.value is None else float(f"{t.value:.16g}") for t in tiles]


def test_view_html_in_chinese(tiles, panels):
    from crmlens import i18n

    with i18n.language("zh"):
        page = exports.view_html("标题", ["全部区域"], tiles, panels[:1])
    assert "<html lang='zh-CN'>" in page and "标题" in page


def test_a_probability_column_reads_as_a_percentage():
    assert exports._fmt_cell("target_probability", 0.8825) == "88.2%"
    assert exports._column_format("target_probability") == "0.0%"
    # a churn risk, a share of predicted value and a change of market share are fractions too
    assert exports._fmt_cell("risk", 0.4045) == "40.5%" and exports._column_format("predicted_share") == "0.0%"
    assert exports._fmt_cell("share_change", 0.012) == "1.2%"
    assert exports._column_format("smape_pct") is None  # already in percent
