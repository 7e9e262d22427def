"""The dashboards in a real browser: Voila on a loopback port (fixture), Debian's Chromium via Playwright.

Numbers on the page are checked against the library computed independently — `crmlens.data.open_slice` (the
engine path the notebooks use) and `crmlens.dashboard.tiles.tiles_for` — not against the dashboard's own
in-memory cut.
"""

from __future__ import annotations

import http.client
import time

import pytest

from crmlens import data
from crmlens.dashboard import state as st
from crmlens.dashboard.tiles import tiles_for
from crmlens.dashboard.widgets import OVERVIEW
from crmlens.metrics import funnel
from tests.browser.conftest import ARTIFACTS, RENDER_TIMEOUT_MS, start_server
from tests.conftest import MAVEN_MAPPING

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STATUS = ".crmlens-status-line"


@pytest.fixture(scope="module")
def server(tiny_demo):
    s = start_server(str(tiny_demo), None, "tiny")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def con(tiny_demo):
    return data.connect(str(tiny_demo))


def open_page(page, server, **query):
    page.goto(server.url("overview", **query), timeout=RENDER_TIMEOUT_MS)
    page.wait_for_selector(STATUS, timeout=RENDER_TIMEOUT_MS)
    return render_count(page)


def render_count(page) -> int:
    return int(page.get_attribute(STATUS, "data-render"))


def wait_render(page, before: int) -> int:
    page.wait_for_function(f"() => {{ const e = document.querySelector('{STATUS}');"
                           f" return e && Number(e.dataset.render) > {before}; }}", timeout=60_000)
    return render_count(page)


def page_tiles(page) -> dict[str, float | None]:
    tiles = page.locator(".crmlens-tile")
    out = {}
    for i in range(tiles.count()):
        t = tiles.nth(i)
        raw = t.get_attribute("data-value")
        out[t.get_attribute("data-kpi")] = float(raw) if raw else None
    return out


def library_tiles(con, state: st.FilterState) -> dict[str, float | None]:
    """The tiles' values computed the notebooks' way: the engine-filtered slice of the same parameters."""
    s = data.open_slice(st.to_params(state, data.data_as_of(con)), con)
    return {t.kpi: t.value for t in tiles_for(s, list(OVERVIEW.tiles))}


def assert_same(shown: dict, expected: dict) -> None:
    assert list(shown) == list(expected)
    for kpi, value in expected.items():
        if value is None:
            assert shown[kpi] is None, kpi
        else:
            assert shown[kpi] == pytest.approx(value, rel=1e-9), kpi


def select(page, name: str, label: str) -> int:
    """Choose the option shown as `label` in filter `name` and wait until every panel was updated."""
    before = render_count(page)
    page.locator(f".crmlens-filter-{name} select").select_option(label=label)
    return wait_render(page, before)


def shown(page, name: str) -> str:
    """The label a filter shows."""
    text = page.locator(f".crmlens-filter-{name} select").evaluate("s => s.options[s.selectedIndex].text")
    return text.replace("\xa0", " ")


def test_overview_page_loads_renders_drills_and_exports(page, server, con, tmp_path):
    """One page of the default overview, used the way a stakeholder would in one visit (each page load costs
    a dashboard kernel: the checks that need no other filter state share it)."""
    # a loading state shows before the dashboard
    page.add_init_script("""
        window.__seen = {};
        new MutationObserver(() => {
          const now = performance.now();
          if (!window.__seen.loading && document.getElementById('loading')) window.__seen.loading = now;
          if (!window.__seen.status && document.querySelector('.crmlens-status-line')) window.__seen.status = now;
        }).observe(document, { childList: true, subtree: true });
    """)
    open_page(page, server)
    seen = page.evaluate("window.__seen")
    assert "loading" in seen and seen["loading"] < seen["status"]
    # every tile and panel renders without error, with the library's numbers
    assert list(page_tiles(page)) == list(OVERVIEW.tiles)
    for key in OVERVIEW.panels:
        panel = page.locator(f".crmlens-panel-{key}")
        assert panel.count() == 1, key
        # a chart, or (the alerts panel when no region stands out) its plain line
        panel.locator(".crmlens-chart .main-svg, .crmlens-no_data").first.wait_for(timeout=30_000)
    assert page.locator(".crmlens-panel-drill .crmlens-drill-item").count() >= 2
    # the key findings: an HTML table (no chart to draw), or the plain line when the numbers support none
    findings = page.locator(".crmlens-panel-key_findings")
    assert findings.count() == 1 and findings.locator(".crmlens-chart").count() == 0
    rows = findings.locator("table.crmlens-findings tbody tr").count()
    assert rows >= 1 or findings.locator(".crmlens-no_data").count() == 1
    assert "**" not in findings.inner_text()
    # customer value by segment: fitted in a second process (or read from the shared results), then drawn
    page.locator(".crmlens-panel-clv_segments .crmlens-chart .main-svg").first.wait_for(timeout=120_000)
    text = page.inner_text("body")
    for bad in ("Traceback", "Error", "error when executing"):
        assert bad not in text
    assert page.outside == []
    assert_same(page_tiles(page), library_tiles(con, st.FilterState()))
    # a funnel step lists the leads behind it
    page.locator(".crmlens-funnel-steps button", has_text="SQL").click()
    count = page.locator(".crmlens-records-count")
    count.wait_for(timeout=30_000)
    s = data.open_slice(st.to_params(st.FilterState(), data.data_as_of(con)), con)
    from crmlens import notebook

    table = funnel.lead_funnel(s.tables["leads"], s.tables["opportunities"], notebook.context(s))
    assert int(count.get_attribute("data-count")) == int(table.loc[table["step_id"] == "sql", "n_leads"].iloc[0])
    # the drill-down reaches a rep's opportunities and back
    drill = page.locator(".crmlens-panel-drill")
    for level in ("team", "rep", "opportunity"):
        drill.locator(".crmlens-drill-item").first.click()
        drill.locator(f".crmlens-drill-level[data-level='{level}']").wait_for(state="attached", timeout=30_000)
    rows = int(drill.locator(".crmlens-drill-opportunity").get_attribute("data-rows"))
    assert rows > 0
    assert drill.locator(".crmlens-crumb").count() == 4
    drill.locator(".crmlens-crumb", has_text="All regions").click()
    drill.locator(".crmlens-drill-level[data-level='region']").wait_for(state="attached", timeout=30_000)
    assert drill.locator(".crmlens-crumb").count() == 1
    # clicking a region on the treemap drills to its teams
    tile = page.locator(".crmlens-panel-regions g.slice").first
    tile.wait_for(timeout=30_000)
    tile.click(force=True)
    drill.locator(".crmlens-drill-level[data-level='team']").wait_for(state="attached", timeout=30_000)
    assert drill.locator(".crmlens-crumb").count() == 2
    # the PDF export downloads a PDF of the view
    with page.expect_download(timeout=120_000) as info:
        page.locator(".crmlens-export-pdf").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    assert path.name.endswith("_overview.pdf") and path.read_bytes()[:5] == b"%PDF-"


def test_filter_changes_show_the_library_numbers_and_the_excel_file_holds_them(page, server, con, tmp_path):
    open_page(page, server)
    first = page_tiles(page)
    select(page, "region", "East")
    east = page_tiles(page)
    assert east != first
    assert_same(east, library_tiles(con, st.FilterState(region="East")))
    assert "region=East" in page.url
    select(page, "period", "This month")
    assert_same(page_tiles(page), library_tiles(con, st.FilterState(region="East", period="this_month")))
    assert "period=this_month" in page.url
    select(page, "comparison", "Same period last year")
    state = st.FilterState(region="East", period="this_month", comparison="last_year")
    assert_same(page_tiles(page), library_tiles(con, state))
    # the Excel export downloads the tiles' numbers of this state
    with page.expect_download(timeout=60_000) as info:
        page.locator(".crmlens-export-excel").click()
    download = info.value
    assert download.suggested_filename == f"{st.file_stem(state, data.data_as_of(con))}_overview.xlsx"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    assert path.stat().st_size > 5000
    import openpyxl

    ws = openpyxl.load_workbook(path, read_only=True)["View"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[1][0].startswith("East · ")
    header = next(i for i, r in enumerate(rows) if r and r[0] == "KPI")
    in_file = {r[0]: r[2] for r in rows[header + 1:] if r and r[0]}
    shown = page_tiles(page)
    assert list(in_file) == list(shown)
    for kpi, value in shown.items():
        assert in_file[kpi] == (pytest.approx(value, rel=1e-12) if value is not None else None), kpi


def test_deep_link_restores_the_state_and_a_custom_range_shows_the_library_numbers(page, server, con):
    open_page(page, server, region="West", period="2026-Q2", comparison="last_year")
    # the kernel opens the link it is given, or the one the page reports (Voila's channel failed): wait for it
    page.wait_for_selector(f"{STATUS}[data-state='region=West&period=2026-Q2&comparison=last_year']",
                           timeout=RENDER_TIMEOUT_MS)
    assert (shown(page, "region"), shown(page, "period"), shown(page, "comparison")) == \
        ("West", "2026-Q2", "Same period last year")
    assert page.get_attribute(STATUS, "data-state") == "region=West&period=2026-Q2&comparison=last_year"
    assert_same(page_tiles(page), library_tiles(con, st.FilterState(region="West", period="2026-Q2",
                                                                    comparison="last_year")))
    # a custom range: the dates start as the current period's; a new start date shows those days' numbers
    select(page, "period", "Custom range…")
    before = render_count(page)
    page.locator(".crmlens-filter-start input").fill("2026-05-01")
    page.locator(".crmlens-filter-start input").dispatch_event("change")
    wait_render(page, before)
    state = st.FilterState(region="West", period="2026-05-01..2026-06-30", comparison="last_year")
    assert page.get_attribute(STATUS, "data-state") == "region=West&period=2026-05-01..2026-06-30&comparison=last_year"
    assert_same(page_tiles(page), library_tiles(con, state))


def test_a_deep_link_opens_when_voilas_request_channel_fails(page, tiny_demo):
    """A preheated kernel gets its page's query from Voila over a websocket of its own; here it cannot reach it
    (a wrong path: as behind a proxy that does not pass it), so the kernel shows the default view. The page
    tells the kernel the link it was opened with, and the link's view is shown."""
    s = start_server(str(tiny_demo), None, "no-request-channel", env={"VOILA_WS_BASE_URL": "/no-such-path/"})
    log_path = ARTIFACTS / "voila-no-request-channel.log"
    try:
        # the page must get the preheated kernel (one that asked for its request and got a 404): a page arriving
        # before the pool's kernel started gets a kernel of its own, started with the query in its environment
        deadline = time.monotonic() + RENDER_TIMEOUT_MS / 1000
        while "404 GET /no-such-path/voila/query/" not in log_path.read_text(errors="replace"):
            assert time.monotonic() < deadline, "the pool's kernel never asked for its request"
            time.sleep(0.5)
        page.goto(s.url("overview", region="West", period="2026-Q2"), timeout=RENDER_TIMEOUT_MS)
        page.wait_for_selector(f"{STATUS}[data-state='region=West&period=2026-Q2']", timeout=RENDER_TIMEOUT_MS)
        assert (shown(page, "region"), shown(page, "period")) == ("West", "2026-Q2")
        assert page.url.endswith("?region=West&period=2026-Q2")
        text = page.inner_text("body")
        assert "Traceback" not in text and "Exception" not in text and "Failed to connect" not in text
        log = log_path.read_text(errors="replace")
        assert "Using pre-heated kernel" in log
        assert "crmlens: the page was opened with ?region=West&period=2026-Q2, the kernel was given ?:" in log
    finally:
        s.stop()


def test_bad_deep_link_names_the_parameter_and_opens_the_default(page, server):
    page.goto(server.url("overview", region="Atlantis"), timeout=RENDER_TIMEOUT_MS)
    page.wait_for_selector(".crmlens-error", timeout=RENDER_TIMEOUT_MS)
    message = page.inner_text(".crmlens-error")
    assert "region" in message and "Atlantis" in message
    assert shown(page, "region") == "All"


def test_a_token_protects_the_dashboards(tiny_demo):
    from crmlens.dashboard.serve import VoilaServer

    def get(path: str) -> tuple[int, str | None]:
        c = http.client.HTTPConnection(s.host, s.port, timeout=60)
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.getheader("Location")

    with VoilaServer(pool_size=0, source=str(tiny_demo), token="s3cret-token") as s:
        page = "/voila/render/overview.ipynb"
        status, where = get(page)
        assert status == 302 and where.startswith("/login")  # no token: the login page, never the dashboard
        assert get(page + "?token=wrong")[0] == 302
        assert get(page + "?token=s3cret-token")[0] == 200


def test_maven_tiles_say_plainly_what_the_source_lacks(page, maven_dir):
    s = start_server(str(maven_dir), str(MAVEN_MAPPING), "maven", pool_size=0)  # one page: no kernel kept ahead
    try:
        page.goto(s.url("overview", period="2017-Q3"), timeout=RENDER_TIMEOUT_MS)
        page.wait_for_selector(STATUS, timeout=RENDER_TIMEOUT_MS)
        tiles = page_tiles(page)
        assert tiles["bookings_amount"] and tiles["bookings_amount"] > 0
        assert tiles["target_attainment"] is None
        attainment = page.locator(".crmlens-tile[data-kpi='target_attainment']")
        assert "No data: this source has no targets table" in attainment.inner_text().replace("`", "")
        funnel_panel = page.locator(".crmlens-panel-funnel")
        assert "No data: this source has no leads table" in funnel_panel.inner_text().replace("`", "")
        assert page.outside == []
    finally:
        s.stop()


def test_sales_manager_view_renders_its_tiles_and_panels(page, server, con):
    from crmlens.dashboard.widgets import SALES_MANAGER

    page.goto(server.url("sales_manager", region="East"), timeout=RENDER_TIMEOUT_MS)
    page.wait_for_selector(STATUS, timeout=RENDER_TIMEOUT_MS)
    assert list(page_tiles(page)) == list(SALES_MANAGER.tiles)
    for key in SALES_MANAGER.panels:
        page.locator(f".crmlens-panel-{key} .crmlens-chart .main-svg").first.wait_for(timeout=30_000)
    assert "Traceback" not in page.inner_text("body")
    s = data.open_slice(st.to_params(st.FilterState(region="East"), data.data_as_of(con)), con)
    expected = {t.kpi: t.value for t in tiles_for(s, list(SALES_MANAGER.tiles))}
    assert_same(page_tiles(page), expected)


def page_labels(page) -> dict[str, str]:
    """data-kpi → the tile's label as written (textContent: the card shows it upper-cased by CSS)."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.crmlens-tile')].map(
        t => [t.dataset.kpi, t.querySelector('.crmlens-tile-label').textContent]))""")


def test_language_zh_deep_link_shows_chinese_with_the_english_numbers(page, server, con):
    """?language=zh: the labels, tiles and filter bar in Chinese, the numbers those of the English view; the
    language control switches the whole page back to English with the same numbers."""
    from crmlens import i18n, kpis

    open_page(page, server, region="East", language="zh")
    assert page.get_attribute(STATUS, "data-state") == "region=East&language=zh"
    assert page.get_attribute(STATUS, "data-language") == "zh"
    state = st.FilterState(region="East")
    chinese = page_tiles(page)
    assert_same(chinese, library_tiles(con, state))  # the numbers of the English computation
    labels = page_labels(page)
    assert list(labels) == list(OVERVIEW.tiles)
    for kpi, shown_label in labels.items():
        english = kpis.get_kpi(kpi).label
        expected = i18n.lookup(english, "zh")  # KPI labels come from their areas' catalogues
        if expected:
            assert shown_label == expected and i18n.has_cjk(shown_label), kpi
        else:
            assert shown_label == english, kpi  # not translated yet: its area's catalogue lacks it
    assert any(i18n.has_cjk(label) for label in labels.values())
    body = page.inner_text("body")
    assert i18n.has_cjk(body)
    for chinese_text in ("管理层总览", "线索漏斗", "下钻分析", "全部区域", "导出："):
        assert chinese_text in body, chinese_text
    for english_text in ("executive overview", "Lead funnel", "Drill down", "Export:", "Reset", "data as of"):
        assert english_text not in body, english_text
    assert shown(page, "comparison") == "上一期（环比）" and shown(page, "region") == "East"
    assert "Traceback" not in body and page.outside == []
    assert page.evaluate("document.documentElement.lang") == "zh-CN", "the loading text was Chinese too"
    # the control in the filter bar: back to English, same filters, same numbers, English labels
    before = render_count(page)
    page.locator(".crmlens-filter-language button", has_text="English").click()
    wait_render(page, before)
    assert page.get_attribute(STATUS, "data-state") == "region=East"
    assert page_tiles(page) == chinese
    assert page_labels(page) == {k: kpis.get_kpi(k).label for k in OVERVIEW.tiles}
    body = page.inner_text("body")
    assert "Lead funnel" in body and "线索漏斗" not in body and "region=East" in page.url
    assert "language" not in page.url


@pytest.fixture
def spawn(tmp_path):
    from tests.unit import process_tree as pt

    yield from pt.spawner(tmp_path)


def test_the_address_crmlens_dashboard_prints_for_one_notebook_opens_it(page, spawn, tiny_demo, con):
    """`crmlens dashboard --notebook overview` serves one notebook at its root: the address it prints opens the
    dashboard (it printed /voila/render/overview.ipynb, which answers 302 → 403 in that mode)."""
    import re
    import sys
    import time

    from crmlens.dashboard import serve

    port = serve.free_port()
    cmd = spawn([sys.executable, "-m", "crmlens.cli", "dashboard", "--notebook", "overview", "--source",
                 str(tiny_demo), "--host", "127.0.0.1", "--port", str(port), "--pool-size", "0"])  # no kernel ahead
    deadline, url = time.monotonic() + 60, None
    while url is None and time.monotonic() < deadline and cmd.proc.poll() is None:
        found = re.search(r"at (http://\S+)", cmd.output())
        url = found.group(1) if found else time.sleep(0.2)
    assert url == f"http://127.0.0.1:{port}/", cmd.output()
    response = None
    while response is None and time.monotonic() < deadline + 60:
        try:
            response = page.goto(url, timeout=RENDER_TIMEOUT_MS)
        except Exception:  # Voila not listening yet
            time.sleep(0.5)
    assert response is not None and response.status == 200, cmd.output()
    page.wait_for_selector(STATUS, timeout=RENDER_TIMEOUT_MS)
    assert list(page_tiles(page)) == list(OVERVIEW.tiles)
    assert_same(page_tiles(page), library_tiles(con, st.FilterState()))
    text = page.inner_text("body")
    assert "Traceback" not in text and "403" not in text and page.outside == []
