"""The marketing, customer service and sales rep views and the landing page in a real browser (Voila on a
loopback port, Debian's Chromium). One page per view, used as its reader would: it opens from a deep link
(restored), renders every tile and panel without error text or outside requests, shows the numbers the library
computes for that slice — before and after a filter change —, drills to records, exports the view's numbers
to Excel, and switches to Chinese.

Numbers are checked against the library computed independently: `crmlens.data.open_slice` (the engine path the
notebooks use) with `crmlens.dashboard.tiles.tiles_for` and the record tables of `crmlens.dashboard.panels`.
"""

from __future__ import annotations

import openpyxl
import pytest

from crmlens import data, i18n
from crmlens.dashboard import panels
from crmlens.dashboard import state as st
from crmlens.dashboard.tiles import tiles_for
from crmlens.dashboard.views import VIEWS
from tests.browser.conftest import RENDER_TIMEOUT_MS, start_server
from tests.browser.test_dashboards import STATUS, assert_same, page_tiles, render_count, select, shown, wait_render

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tiny_demo):
    s = start_server(str(tiny_demo), None, "views", pool_size=0)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def con(tiny_demo):
    return data.connect(str(tiny_demo))


def library(con, name: str, state: st.FilterState) -> dict[str, float | None]:
    """The view's tiles computed the notebooks' way: the engine-filtered slice of the same parameters."""
    s = data.open_slice(st.to_params(state, data.data_as_of(con)), con)
    return {t.kpi: t.value for t in tiles_for(s, list(VIEWS[name].tiles))}


def rep_library(con, state: st.FilterState) -> dict[str, float | None]:
    """The sales rep view's tiles: the slice's KPIs on its tables kept to the rep's rows (`apply_filters`)."""
    from crmlens import kpis, notebook

    s = data.open_slice(st.to_params(state, data.data_as_of(con)), con)
    frames = st.apply_filters({name: s.tables[name] for name in s.tables}, state)
    return {k: kpis.compute_kpi(k, frames, notebook.context(s)) for k in VIEWS["sales_rep"].tiles}


def open_view(page, server, name: str, **query) -> None:
    page.goto(server.url(name, **query), timeout=RENDER_TIMEOUT_MS)
    page.wait_for_selector(STATUS, timeout=RENDER_TIMEOUT_MS)


def every_panel_drawn(page, name: str) -> None:
    """Each panel shows a chart or its plain no-data line; no error text anywhere."""
    for key in VIEWS[name].panels:
        panel = page.locator(f".crmlens-panel-{key}")
        assert panel.count() == 1, key
        panel.locator(".crmlens-chart .main-svg, .crmlens-no_data").first.wait_for(timeout=60_000)
    body = page.inner_text("body")
    for bad in ("Traceback", "Error", "error when executing", "Could not compute"):
        assert bad not in body, bad


def excel_tiles(page, tmp_path) -> dict[str, float | None]:
    with page.expect_download(timeout=120_000) as info:
        page.locator(".crmlens-export-excel").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    rows = list(openpyxl.load_workbook(path, read_only=True)["View"].iter_rows(values_only=True))
    header = next(i for i, r in enumerate(rows) if r and r[0] == "KPI")
    return {r[0]: r[2] for r in rows[header + 1:] if r and r[0]}


def choose_record(page, key: str) -> int:
    """Choose the first record in drill `key`'s dropdown; the count the page shows."""
    import re

    drill = page.locator(f".crmlens-records-{key}")
    label = drill.locator("select option").nth(1).inner_text().strip()
    found = re.search(r"\(([^()]+)\)$", label)  # "name (id)": the widget sends the label, the id is in it
    value = found.group(1) if found else label
    drill.locator("select").select_option(index=1)
    count = drill.locator(".crmlens-records-count")
    count.wait_for(timeout=60_000)
    return value, int(count.get_attribute("data-count"))


def to_chinese(page) -> None:
    before = render_count(page)
    page.locator(".crmlens-filter-language button", has_text="中文").click()
    wait_render(page, before)
    assert page.get_attribute(STATUS, "data-language") == "zh"


@pytest.mark.parametrize("name", ["marketing", "customer_service"])
def test_an_area_view_from_a_deep_link_to_records_export_and_chinese(page, server, con, tmp_path, name):
    open_view(page, server, name, region="East", period="2026-Q3")
    assert (shown(page, "region"), shown(page, "period")) == ("East", "2026-Q3")
    every_panel_drawn(page, name)
    assert page.outside == []
    east = st.FilterState(region="East", period="2026-Q3")
    assert list(page_tiles(page)) == list(VIEWS[name].tiles)
    assert_same(page_tiles(page), library(con, name, east))
    # a filter change shows the library's numbers of the new slice
    select(page, "region", "All")
    every = st.FilterState(period="2026-Q3")
    assert_same(page_tiles(page), library(con, name, every))
    # a drill-down reaches the records (the library's count for that campaign / product)
    key = VIEWS[name].records[0]
    chosen, count = choose_record(page, key)
    s = data.open_slice(st.to_params(every, data.data_as_of(con)), con)
    expected = getattr(panels, key)(s, chosen)
    assert expected.no_data is None and count == len(expected.table) > 0
    # the Excel export holds the tiles' numbers of this state
    in_file, on_page = excel_tiles(page, tmp_path), page_tiles(page)
    assert list(in_file) == list(on_page)
    for kpi, value in on_page.items():
        assert in_file[kpi] == (pytest.approx(value, rel=1e-12) if value is not None else None), kpi
    if name == "marketing":  # the attribution model switcher redraws the panel for one model
        switch = page.locator(".crmlens-attribution-model select")
        switch.select_option(label="First touch")
        page.locator(".crmlens-panel-attribution h3", has_text="First touch").wait_for(timeout=60_000)
    to_chinese(page)
    body = page.inner_text("body")
    assert i18n.has_cjk(body) and "Export:" not in body
    assert_same(page_tiles(page), library(con, name, every))  # the same numbers in Chinese


def test_the_sales_rep_view_is_my_day_for_the_rep_of_the_link(page, server, con):
    reps = st.options_for(con)["reps"]
    rep = reps[2]
    open_view(page, server, "sales_rep", rep=rep, period="2026-Q3")
    assert page.get_attribute(STATUS, "data-state") == f"period=2026-Q3&rep={rep}"
    every_panel_drawn(page, "sales_rep")
    assert page.outside == []
    assert_same(page_tiles(page), rep_library(con, st.FilterState(period="2026-Q3", rep=rep)))
    # another rep: their numbers
    other = reps[5]
    before = render_count(page)
    rep_select = page.locator(".crmlens-filter-rep select")
    labels = rep_select.locator("option").all_inner_texts()  # "name (rep_id)"
    rep_select.select_option(label=next(x for x in labels if x.strip().endswith(f"({other})")).strip())
    wait_render(page, before)
    assert f"rep={other}" in page.get_attribute(STATUS, "data-state")
    assert_same(page_tiles(page), rep_library(con, st.FilterState(period="2026-Q3", rep=other)))
    to_chinese(page)
    assert "我的工作台" in page.inner_text("body")


def test_the_landing_page_links_every_view(page, server):
    page.goto(server.url("index"), timeout=RENDER_TIMEOUT_MS)
    page.wait_for_selector(".crmlens-landing", timeout=RENDER_TIMEOUT_MS)
    cards = page.locator(".crmlens-view-card")
    assert cards.count() == len(VIEWS)
    assert page.locator(".crmlens-view-card svg").count() == len(VIEWS)
    page.locator(".crmlens-view-card[data-view='marketing']").click()
    page.wait_for_selector(STATUS, timeout=RENDER_TIMEOUT_MS)
    assert "/voila/render/marketing.ipynb" in page.url
    assert page.outside == []
