"""Tests of crmlens.dashboard.widgets without a browser: the widgets are built in-process (ipywidgets need no
frontend) and their state, HTML values and exports are checked against the model, tiles and panels."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
from html import unescape

import openpyxl
import pytest

from crmlens import data, i18n, kpis
from crmlens.dashboard import exports, widgets
from crmlens.dashboard import state as st
from crmlens.dashboard.model import DashboardData
from crmlens.dashboard.tiles import tiles_for
from crmlens.dashboard.widgets import CUSTOM, SALES_MANAGER, Dashboard, FilterBar, recent_periods
from crmlens.metrics import funnel
from crmlens.truths import REGION_IDS

#: The overview with its sales panels (the executive additions — forecast, market share, customer base, alerts —
#: are test_views.py's and test_panels_roles.py's): these tests render it many times.
OVERVIEW = dataclasses.replace(widgets.OVERVIEW, panels=widgets.OVERVIEW.panels[:5])


@pytest.fixture(scope="module")
def board_data(tiny_demo) -> DashboardData:
    return DashboardData(data.connect(str(tiny_demo)))


@pytest.fixture
def board(board_data) -> Dashboard:
    """A fresh overview dashboard (its tiles and panels are remembered by `board_data`, so this is quick)."""
    return Dashboard(board_data, OVERVIEW)


def tile_values(html: str) -> dict[str, str]:
    """data-kpi → data-value of the tile cards in a tile row's HTML."""
    return dict(re.findall(r'data-kpi="([^"]*)" data-value="([^"]*)"', html))


def expected_values(board_data: DashboardData, state: st.FilterState, names) -> dict[str, str]:
    v = board_data.view(state)
    return {t.kpi: "" if t.value is None else repr(float(t.value)) for t in tiles_for(v, list(names))}


def render_count(board: Dashboard) -> int:
    found = re.search(r"data-render='(\d+)'", board.status.value)
    assert found, board.status.value
    return int(found.group(1))


# ------------------------------------------------------------------------------------------ rendering

def test_dashboard_opens_on_the_default_view(board, board_data):
    assert board.state == st.FilterState()
    assert render_count(board) == 1 == board.renders
    assert board.url.query == "" == st.to_query(board.state)
    values = tile_values(board.tile_row.value)
    assert list(values) == list(OVERVIEW.tiles)
    assert values == expected_values(board_data, st.FilterState(), OVERVIEW.tiles)
    assert all(values.values())  # the demo has every tile's data
    assert "2026-Q3 (this quarter) vs 2026-Q2" in board.header.value and "data as of 2026-10-01" in board.header.value
    assert [p.key for p in board.panel_data] == ["key_findings", *OVERVIEW.panels]


def test_set_state_changes_the_tiles_and_bumps_the_render_counter(board, board_data):
    before = tile_values(board.tile_row.value)
    state = st.FilterState(region="East", period="this_month", comparison="last_year")
    board.set_state(state)
    after = tile_values(board.tile_row.value)
    assert after == expected_values(board_data, state, OVERVIEW.tiles)
    assert after != before
    assert float(after["bookings_amount"]) < float(before["bookings_amount"])
    assert render_count(board) == 2 == board.renders
    assert board.state == state and board.filters.read() == state
    assert board.url.query == st.to_query(state) == "region=East&period=this_month&comparison=last_year"
    assert unescape(re.search(r"data-state='([^']*)'", board.status.value).group(1)) == board.url.query
    board.set_state(st.FilterState(region="West"))
    assert render_count(board) == 3 and board.url.query == "region=West"


def test_a_filter_change_in_the_bar_re_renders(board, board_data):
    board.filters.region.value = "South"
    assert board.state == st.FilterState(region="South") and render_count(board) == 2
    assert tile_values(board.tile_row.value) == expected_values(board_data, board.state, OVERVIEW.tiles)
    board.filters.product_line.value = "Cloud"
    assert board.state == st.FilterState(region="South", product_line="Cloud")
    assert board.url.query == "region=South&product_line=Cloud"
    assert render_count(board) == 3


def test_a_bad_state_keeps_the_previous_one_and_says_why(board):
    good = st.FilterState(region="North")
    board.set_state(good)
    tiles_before, query_before = board.tile_row.value, board.url.query
    board.set_state(st.FilterState(region="Atlantis"))
    assert board.state == good and board.filters.read() == good
    assert board.tile_row.value == tiles_before and board.url.query == query_before == "region=North"
    assert "crmlens-error" in board.status.value
    assert "region: &#x27;Atlantis&#x27; is not a region" in board.status.value
    assert board.renders == 2


def test_from_query_opens_a_deep_link(board_data):
    board = Dashboard.from_query(board_data, OVERVIEW, "region=west&period=2026-q2&comparison=last_year")
    assert board.state == st.FilterState(region="West", period="2026-Q2", comparison="last_year")
    assert board.url.query == "region=West&period=2026-Q2&comparison=last_year"
    assert "crmlens-error" not in board.status.value and render_count(board) == 1


def test_the_link_the_page_reports_is_opened_when_the_kernel_was_not_given_it(board_data):
    """Voila hands a preheated kernel its page's query over a channel of its own; when that fails the kernel
    shows the default view. The page then says which link it was opened with (UrlSync's "opened" message),
    and the dashboard opens it; the same link as the kernel's is not rendered twice."""
    board = Dashboard.from_query(board_data, OVERVIEW, "")  # the kernel got no QUERY_STRING
    sent: list[dict] = []
    board.url.send = lambda content, buffers=None: sent.append(content)
    board.url._message(board.url, {"kind": "opened", "query": "region=west&period=2026-q2"}, [])
    assert board.state == st.FilterState(region="West", period="2026-Q2") and board.link == "region=west&period=2026-q2"
    assert board.url.query == "region=West&period=2026-Q2" and sent == [{"kind": "apply"}]
    assert render_count(board) == 2
    board.url._message(board.url, {"kind": "opened", "query": "region=west&period=2026-q2"}, [])
    assert render_count(board) == 2 and sent == [{"kind": "apply"}] * 2  # the address is rewritten, nothing else
    board.url._message(board.url, {"kind": "something else"}, [])
    assert render_count(board) == 2 and len(sent) == 2


def test_a_bad_link_the_page_reports_opens_the_default_view_and_says_why(board_data):
    board = Dashboard.from_query(board_data, OVERVIEW, "region=East")
    board.url.send = lambda content, buffers=None: None
    board.url._message(board.url, {"kind": "opened", "query": "region=Atlantis"}, [])
    assert board.state == st.FilterState() and "crmlens-error" in board.status.value
    assert "Atlantis" in unescape(board.status.value)


@pytest.mark.parametrize(("query", "param"), [("region=Atlantis", "region"), ("colour=red", "colour"),
                                              ("period=someday", "period"), ("team=Z-9", "team")])
def test_from_query_with_a_bad_link_opens_the_default_view(board_data, query, param):
    board = Dashboard.from_query(board_data, OVERVIEW, query)
    assert board.state == st.FilterState() and board.url.query == ""
    text = unescape(re.sub(r"<[^>]+>", "", board.status.value))
    assert text.startswith("The link could not be opened as given: ")
    assert f": {param}: " in text and text.endswith("Showing the default view.")
    assert tile_values(board.tile_row.value) == expected_values(board_data, st.FilterState(), OVERVIEW.tiles)


def test_sales_manager_view_builds(board_data):
    board = Dashboard(board_data, SALES_MANAGER, st.FilterState(region="APAC"))
    assert render_count(board) == 1 and "crmlens-error" not in board.status.value
    assert list(tile_values(board.tile_row.value)) == list(SALES_MANAGER.tiles)
    assert tile_values(board.tile_row.value) == expected_values(board_data, board.state, SALES_MANAGER.tiles)
    assert [p.key for p in board.panel_data] == list(SALES_MANAGER.panels)
    assert board.records is None and board.drill is not None
    assert board.drill.level == "team" and board.drill.path == [("region", "APAC", "APAC")]
    assert all(p.no_data is None for p in board.panel_data)


# ------------------------------------------------------------------------------------------ drill-down

def test_drill_down_goes_region_team_rep_opportunity_and_back(board):
    drill = board.drill
    assert (drill.level, drill.path) == ("region", [])
    assert set(drill.current["region_id"]) == set(REGION_IDS)
    assert len(drill.items.children) == len(REGION_IDS) and len(drill.crumbs.children) == 1
    assert "data-level='region'" in drill.table.value

    drill.open("East", "East")
    assert drill.level == "team" and set(drill.current["team_id"]) == {"East-1", "East-2"}
    assert [b.description for b in drill.crumbs.children] == ["All regions", "East"]
    assert [b.disabled for b in drill.crumbs.children] == [False, True]

    drill.open("East-1", "East China Team 1")
    reps = board.data.frames["reps"]
    assert drill.level == "rep"
    assert set(drill.current["rep_id"]) <= set(reps.loc[reps["team_id"] == "East-1", "rep_id"])
    rep = str(drill.current["rep_id"].iloc[0])

    drill.open(rep, rep)
    assert drill.level == "opportunity" and len(drill.path) == 3
    assert drill.items.children == ()
    opps = board.view.tables["opportunities"]
    assert set(drill.current["opportunity_id"]) == set(opps.loc[opps["owner_rep_id"] == rep, "opportunity_id"])
    drill.open("O-anything", "x")  # the bottom level: nothing below
    assert drill.level == "opportunity" and len(drill.path) == 3

    drill.back(2)
    assert drill.level == "rep" and [key for _, key, _ in drill.path] == ["East", "East-1"]
    drill.crumbs.children[1].click()
    assert drill.level == "team" and drill.path == [("region", "East", "East")]
    drill.back(0)
    assert drill.level == "region" and drill.path == []


def test_drill_down_starts_at_the_filters_region(board):
    board.set_state(st.FilterState(region="West"))
    assert board.drill.level == "team" and set(board.drill.current["team_id"]) == {"West-1", "West-2"}


# ------------------------------------------------------------------------------------------ funnel records

@pytest.mark.parametrize("step", list(funnel.STEPS))
def test_funnel_records_list_the_steps_leads(board, step):
    records = board.records
    assert records.frame is None and records.table.value == ""
    records.buttons.value = step
    v = board.view
    expected = funnel.lead_funnel(v.tables["leads"], v.tables.get("opportunities"), v.ctx()).set_index("step_id")
    assert len(records.frame) == expected.loc[step, "n_leads"]
    assert f"data-count='{len(records.frame)}'" in records.table.value
    records.buttons.value = ""
    assert records.frame is None and records.table.value == ""


# ------------------------------------------------------------------------------------------ exports

def test_excel_file_holds_the_view(board):
    state = st.FilterState(region="East", period="2026-Q2")
    board.set_state(state)
    board.records.buttons.value = "mql"
    name, content = board.excel_file()
    assert name == f"{st.file_stem(state, board.data.as_of)}_overview.xlsx"
    assert name == "crmlens_East_2026-Q2_vs-previous_overview.xlsx"
    book = openpyxl.load_workbook(io.BytesIO(content))
    ws = book[exports.VIEW_SHEET]
    assert ws["A1"].value == OVERVIEW.title
    assert ws["A2"].value == st.describe(state, board.data.as_of)
    rows = list(ws.iter_rows(min_row=6, max_row=5 + len(board.tiles), values_only=True))
    for row, tile in zip(rows, board.tiles, strict=True):
        assert row[0] == tile.kpi
        for cell, value in zip(row[2:3] + row[4:9], (tile.value, tile.comparison_value, tile.delta,
                                                     tile.delta_pct, tile.target, tile.attainment), strict=True):
            assert cell == (None if value is None else float(f"{value:.16g}")), tile.kpi
    tables = board.export_tables()
    assert len(book.sheetnames) == 1 + len(tables)
    assert "Drill-down teams" in tables and "Funnel MQL leads" in tables
    assert len(tables["Funnel MQL leads"]) == len(board.records.frame)


def test_export_name_follows_the_filters(board):
    board.set_state(st.FilterState(product_line="Cloud", segment="large", comparison="last_year"))
    assert board.export_name("pdf") == "crmlens_all-regions_2026-Q3_vs-last-year_line-Cloud_segment-large_overview.pdf"


# ------------------------------------------------------------------------------------------ filter bar

@pytest.fixture
def bar(board_data) -> FilterBar:
    return FilterBar(board_data.options, st.FilterState(), board_data.as_of)


ROUND_TRIP = [
    st.FilterState(),
    st.FilterState(period="last_12_months", comparison="last_year", region="East"),
    st.FilterState(period="2026-Q2", product_line="Cloud", team="West-1", segment="large"),
    st.FilterState(period="2026-01-01..2026-02-15", region="APAC", segment="small"),
]


@pytest.mark.parametrize("state", ROUND_TRIP, ids=lambda s: st.to_query(s) or "default")
def test_filter_bar_round_trip(bar, state):
    heard: list[st.FilterState] = []
    bar.on_change(heard.append)
    bar.set_state(state)
    assert bar.read() == state and bar.state == state
    assert heard == []  # set_state never calls back


def test_filter_bar_custom_range(bar):
    bar.set_state(st.FilterState(period="2026-01-01..2026-02-15"))
    assert bar.period.value == CUSTOM
    assert (bar.start.value, bar.end.value) == (dt.date(2026, 1, 1), dt.date(2026, 2, 15))
    assert bar.start.layout.display is None and bar.end.layout.display is None
    bar.set_state(st.FilterState())
    assert bar.period.value == "this_quarter" and bar.start.layout.display == "none"


def test_filter_bar_user_changes_call_back(bar):
    heard: list[st.FilterState] = []
    bar.on_change(heard.append)
    bar.region.value = "West"
    assert heard[-1] == st.FilterState(region="West")
    bar.period.value = CUSTOM  # the custom range starts on the current period's days
    assert heard[-1].period == "2026-07-01..2026-09-30"
    bar.end.value = dt.date(2026, 8, 15)
    assert heard[-1] == st.FilterState(period="2026-07-01..2026-08-15", region="West")
    bar.reset.click()
    assert heard[-1] == st.FilterState()


def test_filter_bar_offers_presets_recent_quarters_and_the_sources_choices(bar, board_data):
    periods = [v for _, v in bar.period.options]
    assert periods == [*st.PRESETS, *recent_periods(board_data.as_of), CUSTOM]
    assert recent_periods(board_data.as_of)[:2] == ["2026-Q3", "2026-Q2"]
    assert [v for _, v in bar.region.options] == ["all", *board_data.options["regions"]]
    assert [v for _, v in bar.segment.options] == ["all", "small", "mid", "large", "enterprise"]


def test_filter_bar_spaces_its_controls_with_margins(bar):
    # ipywidgets 8.1's Layout has no `gap`: spacing is each control's margin
    assert all(c.layout.margin == "2px 12px 2px 0" for c in bar.box.children)


def test_a_click_on_the_regions_treemap_opens_the_region_in_the_drill_down(board_data):
    from crmlens.dashboard.widgets import Dashboard

    board = Dashboard(board_data, OVERVIEW)
    region = board_data.options["regions"][0]
    board.panels["regions"].figure._message(None, {"kind": "click", "label": region, "id": region}, [])
    assert board.drill.level == "team" and board.drill.path == [("region", region, region)]
    board.drill_to_place("Atlantis", "Atlantis")  # not a region: nothing happens
    assert board.drill.level == "team"


# ------------------------------------------------------------------------------------------- 中文 / English

def visible_text(board: Dashboard) -> str:
    """What a reader of the board sees: HTML values without tags, SVG titles and styles, and every label,
    option text and button caption (not the controls' values)."""
    import ipywidgets as w

    out: list[str] = []

    def walk(widget) -> None:
        if isinstance(widget, w.HTML):
            value = re.sub(r"<(style|svg)\b.*?</\1>", " ", widget.value, flags=re.S)
            out.append(unescape(re.sub(r"<[^>]+>", " ", value)))
        for attr in ("description", "tooltip"):
            if isinstance(getattr(widget, attr, None), str):
                out.append(getattr(widget, attr))
        if isinstance(widget, w.widgets.widget_selection._Selection):
            out.extend(label for label, _value in widget._options_full)
        for child in getattr(widget, "children", ()):
            walk(child)
    walk(board.app)
    return re.sub(r"\s+", " ", " ".join(out))


def test_a_chinese_deep_link_shows_chinese_with_the_same_numbers(board_data):
    en = Dashboard.from_query(board_data, OVERVIEW, "region=East")
    zh = Dashboard.from_query(board_data, OVERVIEW, "region=East&language=zh")
    assert zh.state == st.FilterState(region="East", language="zh") and "crmlens-error" not in zh.status.value
    assert zh.url.query == "region=East&language=zh"
    assert "data-language='zh'" in zh.status.value
    assert tile_values(zh.tile_row.value) == tile_values(en.tile_row.value)  # the numbers, to the last digit
    text = visible_text(zh)
    for chinese in ("CRM Lens — 管理层总览", "全部区域", "本季度", "重置", "导出：", "线索漏斗", "下钻分析", "数据截至",
                    "对比 2026-Q2"):
        assert chinese in text, chinese
    for english in ("executive overview", "Drill down", "Export:", "Reset", "This quarter", "Custom range",
                    "Lead funnel", "data as of", "Records at step", "Updated in"):
        assert english not in text, english
    # the reader's tile labels: the zh catalogue's KPI labels (where the area's catalogue has them already)
    for t in zh.tiles:
        label = kpis.get_kpi(t.kpi).label
        assert t.label == (i18n.lookup(label, "zh") or label)
    # a data value stays as the source spells it
    assert "East" in text and "English" in text and "中文" in text


def test_the_language_switch_relabels_everything_and_keeps_the_filters(board, board_data):
    board.set_state(st.FilterState(region="West", period="2026-Q2"))
    english = tile_values(board.tile_row.value)
    board.filters.language.value = "zh"
    assert board.state == st.FilterState(region="West", period="2026-Q2", language="zh")
    assert i18n.current() == "zh"  # the kernel follows the dashboard
    assert board.url.query == "region=West&period=2026-Q2&language=zh"
    assert tile_values(board.tile_row.value) == english
    assert board.filters.period.label == "2026-Q2" and board.filters.region.label == "West"
    assert board.filters.comparison.label == "上一期（环比）" and board.filters.product_line.label == "全部"
    assert board.panels["funnel"].title.value.count("线索漏斗") == 1
    assert "下钻-" not in visible_text(board) and "全部区域" in visible_text(board)
    # filters keep working in Chinese; Reset keeps the language
    board.filters.region.value = "East"
    assert board.state == st.FilterState(region="East", period="2026-Q2", language="zh")
    assert tile_values(board.tile_row.value) == expected_values(board_data, board.state, OVERVIEW.tiles)
    board.filters.reset.click()
    assert board.state == st.FilterState(language="zh")
    board.filters.language.value = "en"
    assert board.state == st.FilterState() and i18n.current() == "en"
    assert "Reset" in visible_text(board) and "重置" not in visible_text(board)


def test_a_bad_language_names_the_parameter_and_opens_the_english_view(board_data):
    board = Dashboard.from_query(board_data, OVERVIEW, "language=fr")
    assert board.state == st.FilterState()
    text = unescape(re.sub(r"<[^>]+>", "", board.status.value))
    assert "language: 'fr'" in text and "en, zh" in text


def test_a_bad_link_in_chinese_says_so_in_chinese(board_data):
    board = Dashboard.from_query(board_data, OVERVIEW, "region=Atlantis&language=zh")
    assert board.state == st.FilterState(language="zh")
    text = unescape(re.sub(r"<[^>]+>", "", board.status.value))
    assert text.startswith("无法按该链接打开：region: ") and text.endswith("现显示默认视图。")


def test_chinese_drill_down_and_funnel_records(board_data):
    board = Dashboard(board_data, OVERVIEW, st.FilterState(language="zh"))
    assert board.drill.crumbs.children[0].description == "全部区域"
    board.drill.open(board.drill.current["region_id"].iloc[0], "x")
    assert board.drill.level == "team" and board.drill.crumbs.children[1].tooltip == "返回x"
    assert "团队" in board.drill.table.value
    board.records.buttons.value = "sql"
    assert "条线索到达" in board.records.table.value and "创建日期" in board.records.table.value
    assert board.records.buttons._options_full[0][0] == "隐藏明细"


def test_chinese_excel_file_has_chinese_headers_and_the_same_numbers(board_data):
    state = st.FilterState(region="East", period="2026-Q2")
    en = Dashboard(board_data, OVERVIEW, state)
    zh = Dashboard(board_data, OVERVIEW, dataclasses.replace(state, language="zh"))
    en.records.buttons.value = zh.records.buttons.value = "mql"
    name_en, content_en = en.excel_file()
    name_zh, content_zh = zh.excel_file()
    assert name_zh == name_en  # the file name is made of ids and periods
    book_en, book_zh = openpyxl.load_workbook(io.BytesIO(content_en)), openpyxl.load_workbook(io.BytesIO(content_zh))
    assert book_zh.sheetnames[0] == "看板" and len(book_zh.sheetnames) == len(book_en.sheetnames)
    view_en, view_zh = book_en[book_en.sheetnames[0]], book_zh["看板"]
    assert view_zh["A1"].value == "CRM Lens — 管理层总览"
    assert view_zh["A2"].value.startswith("East · 2026-Q2 对比 2026-Q1")
    assert view_zh["A3"].value.startswith("数据截至 2026-10-01 · 数据源 ")
    assert view_zh["A5"].value == "指标" or i18n.has_cjk(view_zh["A5"].value)
    rows_en = list(view_en.iter_rows(min_row=6, values_only=True))
    rows_zh = list(view_zh.iter_rows(min_row=6, values_only=True))
    numeric = (0, 2, 4, 5, 6, 7, 8)  # KPI id, value, comparison, change, change %, target, attainment
    assert [[r[i] for i in numeric] for r in rows_zh] == [[r[i] for i in numeric] for r in rows_en]
    for sheet_en, sheet_zh in zip(book_en.sheetnames[1:], book_zh.sheetnames[1:], strict=True):
        cells_en = list(book_en[sheet_en].iter_rows(min_row=5, values_only=True))
        cells_zh = list(book_zh[sheet_zh].iter_rows(min_row=5, values_only=True))
        numbers = [[c for c in r if isinstance(c, int | float)] for r in cells_en]
        assert [[c for c in r if isinstance(c, int | float)] for r in cells_zh] == numbers, sheet_zh
    assert "下钻-团队" in book_zh.sheetnames
    assert any(name.startswith("漏斗-") for name in book_zh.sheetnames)  # (the step's name: the funnel catalogue's)
