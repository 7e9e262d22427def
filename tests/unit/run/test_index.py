"""`crmlens.run.index`: the run's static index page, checked as HTML and in headless Chromium."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from crmlens.run import index
from crmlens.run.exports import CHROMIUM, CHROMIUM_ARGS
from tests.unit.run import fakes

REGIONS = ("East", "West", "North", "all")  # parameters list `all` last: the page still shows it first
FAILED = fakes.task_id("East", "2026-Q3", "02_sales_funnel")
REUSED = fakes.task_id("West", "2026-Q3", "08_regions_teams")


class Page(HTMLParser):
    """Every start tag with its attributes, and the text, of an HTML page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def attr(self, name: str, tag: str | None = None) -> list[str]:
        return [a[name] for t, a in self.tags if name in a and (tag is None or t == tag)]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict]:
    """A fake run: 3 regions + all, one failed task (cell 7), one reused task, North's exports failed."""
    manifest = fakes.fake_manifest(regions=REGIONS, failed={FAILED: 7}, reused=[REUSED], export_failed=["North"])
    run_dir = fakes.write_run(tmp_path_factory.mktemp("run") / manifest["run_id"], manifest)
    index.write_index(run_dir, manifest)
    return run_dir, manifest


@pytest.fixture(scope="module")
def html(run) -> str:
    return (run[0] / "index.html").read_text(encoding="utf-8")


def test_written_atomically(tmp_path, monkeypatch):
    calls = []
    real = index.atomic.write_text
    monkeypatch.setattr(index.atomic, "write_text", lambda target, text: calls.append(target) or real(target, text))
    manifest = fakes.fake_manifest()
    run_dir = fakes.write_run(tmp_path / "r", manifest)
    out = index.write_index(run_dir, manifest)
    assert out == run_dir / "index.html" and out.is_file()
    assert calls == [run_dir / "index.html"]
    assert not list(run_dir.glob(".index.html*"))  # no temporary file left behind


def test_header(html, run):
    _, manifest = run
    page = Page(html)
    text = " ".join(page.text)
    assert "<!doctype html>" in html.lower() and '<meta charset="utf-8">' in html
    for needle in (manifest["run_id"], "2026-Q3", "data/demo", "0123456789ab", "crmlens 0.1.0",
                   "2026-11-23 10:15:00", "2026-11-23 10:16:35", "1 min 35 s", "3 tables, 1,503 rows"):
        assert needle in text, needle
    assert page.attr("data-badge")[0] == "failed"  # the run's status, next to its id
    summary = re.sub(r"\s+", " ", re.search(r"<p class=\"summary\"[^>]*>(.*?)</p>", html).group(1))
    assert re.sub(r"<[^>]+>", "", summary) == "12 tasks · 10 ok · 1 failed · 1 reused"


def test_every_region_has_a_section_all_first(html):
    page = Page(html)
    assert page.attr("data-region", "section") == ["all", "East", "West", "North"]
    for region in ("all", "East", "West", "North"):
        rows = [a for t, a in page.tags if t == "tr" and a.get("data-region") == region and "data-task" in a
                and "data-failure" not in a]
        assert [r["data-notebook"] for r in rows] == list(fakes.NOTEBOOKS), region


def test_task_rows_carry_status(html, run):
    _, manifest = run
    page = Page(html)
    rows = {a["data-task"]: a["data-status"] for t, a in page.tags
            if t == "tr" and "data-task" in a and "data-failure" not in a}
    assert rows == {t["id"]: t["status"] for t in manifest["tasks"]}
    assert rows[FAILED] == "failed" and rows[REUSED] == "reused"


def test_failures_come_first_with_cell_error_and_links(html, run):
    run_dir, _ = run
    assert html.index('id="failures"') < html.index('<section class="region"')
    row = re.search(rf'<tr data-failure="{re.escape(FAILED)}".*?</tr>', html, re.S).group(0)
    assert 'data-cell="7"' in row and "cell 7" in row
    assert "KeyError: &#x27;stage&#x27; &lt;not a column&gt;" in row  # escaped
    assert "frac = won / closed[&#x27;stage&#x27;]" in row  # the failing cell's first lines
    hrefs = re.findall(r'href="([^"]+)"', row)
    assert sorted(hrefs) == ["East/2026-Q3/02_sales_funnel.html", "East/2026-Q3/02_sales_funnel.ipynb"]
    assert all((run_dir / h).is_file() for h in hrefs)
    assert 'data-failure="export:North"' in html and "PDF: chromium exited with code 1" in html


def test_no_failures_section_when_all_ok(tmp_path):
    manifest = fakes.fake_manifest()
    html = index.render_index(fakes.write_run(tmp_path / "r", manifest), manifest)
    assert 'id="failures"' not in html and "data-failure" not in html


def test_headline_kpis_with_trend(html, run):
    _, manifest = run
    task = fakes.find_task(manifest, fakes.task_id("West", "2026-Q3", "02_sales_funnel"))
    row = re.search(rf'<tr data-task="{re.escape(task["id"])}".*?</tr>', html, re.S).group(0)
    for rec in task["kpis"]:
        li = re.search(rf'<li class="kpi trend-(\w+)" data-kpi="{rec["kpi"]}".*?</li>', row, re.S)
        assert li, rec["kpi"]
        assert li.group(1) == rec["trend"].replace("/", "")
        assert rec["label"] in li.group(0) and rec["display"] in li.group(0)
        arrow = "▲" if rec["delta"] > 0 else "▼"
        assert f"{arrow} {abs(rec['delta_pct']):.1%}" in li.group(0)
    assert f"{task['duration_s']:.1f} s" in row


def test_kpi_change_formats():
    assert index._change_html(0.02, 0.069, "better") == "▲ 6.9%"
    assert index._change_html(-5.0, -0.125, "worse") == "▼ 12.5%"
    assert index._change_html(0.0, 0.0, "flat") == "= 0.0%"
    assert index._change_html(3.0, None, "better") == "▲ n/a"  # comparison value 0
    assert index._change_html(None, None, "n/a") == "—"
    html = index._kpis_html([{"kpi": "x", "label": "X", "display": "1", "delta": 1.0, "delta_pct": 0.5,
                              "trend": "worse"}])
    assert 'class="kpi trend-worse"' in html


def test_links_are_relative_and_exist(html, run):
    run_dir, manifest = run
    page = Page(html)
    hrefs = [h for h in page.attr("href") if not h.startswith("#")]
    assert hrefs, "no links"
    for href in hrefs:
        assert not re.match(r"^[a-z][a-z0-9+.-]*:", href, re.I) and not href.startswith("/"), href
        assert (run_dir / unquote(href)).is_file(), href
    anchors = {h[1:] for h in page.attr("href") if h.startswith("#")}
    assert anchors <= set(page.attr("id"))
    # every task's report and notebook, and every export file, is linked
    for task in manifest["tasks"]:
        assert task["outputs"]["html"] in hrefs and task["outputs"]["ipynb"] in hrefs
    for export in manifest["exports"].values():
        for rel in export["files"].values():
            assert rel in hrefs
    assert "manifest.json" in hrefs


def test_no_external_resources(html):
    assert not re.search(r"https?:", html, re.I)
    assert not re.search(r"//[a-z0-9.-]+\.[a-z]{2,}", html, re.I)  # no protocol-relative URLs either
    page = Page(html)
    assert page.attr("src") == []  # no external scripts, images or frames
    assert [t for t, _ in page.tags if t == "link"] == []
    assert "default-src 'none'" in html  # the page's CSP forbids any request it did not inline


def test_exports_of_a_region(html):
    section = re.search(r'<section class="region"[^>]*data-region="East">.*?</section>', html, re.S).group(0)
    exports = re.search(r'<p class="exports".*?</p>', section, re.S).group(0)
    assert re.findall(r'data-link="export-(\w+)"', exports) == ["html", "pdf", "xlsx", "pptx", "kpis"]
    north = re.search(r'<section class="region"[^>]*data-region="North">.*?</section>', html, re.S).group(0)
    assert "export-kpis" in north and "export-pdf" not in north and "badge-failed" in north


def test_missing_file_is_not_linked(tmp_path):
    manifest = fakes.fake_manifest()
    run_dir = fakes.write_run(tmp_path / "r", manifest)
    (run_dir / "West/2026-Q3/02_sales_funnel.html").unlink()
    manifest["exports"]["East"]["files"]["pdf"] = "../../etc/passwd"
    manifest["exports"]["East"]["files"]["xlsx"] = "https://example.com/report.xlsx"
    html = index.render_index(run_dir, manifest)
    assert 'href="West/2026-Q3/02_sales_funnel.html"' not in html
    assert 'href="West/2026-Q3/02_sales_funnel.ipynb"' in html
    assert "passwd" not in html and "example.com" not in html
    assert html.count('class="missing"') == 3


def test_text_is_escaped_and_links_quoted(tmp_path):
    region = 'A&B <script>alert("x")</script>'
    manifest = fakes.fake_manifest(regions=["all", region], notebooks=["02_sales_funnel"])
    manifest["tasks"][1]["kpis"][0]["label"] = "<b>Win</b> rate"
    manifest["data"]["source"] = "<img src=x onerror=alert(1)>"
    run_dir = fakes.write_run(tmp_path / "r", manifest)
    html = index.render_index(run_dir, manifest)
    assert "<script>alert" not in html and "<img" not in html and "<b>Win" not in html
    assert "A&amp;B &lt;script&gt;" in html and "&lt;b&gt;Win&lt;/b&gt; rate" in html
    page = Page(html)
    assert page.attr("data-region", "section") == ["all", region]  # the attribute round-trips
    href = next(h for h in page.attr("href") if h.endswith("02_sales_funnel.html") and not h.startswith("all"))
    assert " " not in href and "<" not in href and (run_dir / unquote(href)).is_file()


def test_interrupted_run_shows_tasks_not_run(tmp_path):
    manifest = fakes.fake_manifest(regions=["all", "East"], status="interrupted")
    manifest["tasks"] = manifest["tasks"][:4]  # East stopped after one notebook
    html = index.render_index(fakes.write_run(tmp_path / "r", manifest), manifest)
    assert "interrupted" in html
    assert re.findall(r'data-task="([^"]+)" data-status="missing"', html) == [
        "East/2026-Q3/03_sales_performance", "East/2026-Q3/08_regions_teams"]


def test_survives_a_sparse_manifest(tmp_path):
    """A manifest written when a run died early (few fields) still gives a page."""
    manifest = {"run_id": "x", "status": "failed", "tasks": [{"id": "East/2026-Q3/02_sales_funnel",
                                                               "region": "East", "status": "failed"}]}
    html = index.render_index(tmp_path, manifest)
    assert 'data-region="East"' in html and 'data-failure="East/2026-Q3/02_sales_funnel"' in html


# ----------------------------------------------------------------------------------------- browser


@pytest.mark.slow
def test_in_headless_chromium(run):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is not installed; `make test` installs it (make system-deps)")
    run_dir, manifest = run
    url = (run_dir / "index.html").resolve().as_uri()
    failed, external, errors = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}"))
            page.on("request", lambda r: None if r.url.startswith(("file:", "data:", "about:")) else external.append(
                r.url))
            page.on("response", lambda r: None if r.url.startswith(("file:", "data:", "about:")) else external.append(
                r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route(re.compile(r"^(?!file:|data:|about:)"), lambda route: route.abort())
            page.goto(url, wait_until="load")
            assert page.title() == f"CRM Lens run {manifest['run_id']}"
            for region in ("all", "East", "West", "North"):
                assert page.locator(f'section[data-region="{region}"]').is_visible(), region
            failure = page.locator(f'tr[data-failure="{FAILED}"]')
            assert failure.is_visible()
            assert "cell 7" in failure.inner_text()
            assert page.locator('tr[data-status="failed"][data-task]').count() == 2  # failures table + East table
            # the inline filter: only failed tasks left in the region tables
            ok_row = page.locator(f'section[data-region="West"] tr[data-task="{REUSED}"]')
            assert ok_row.is_visible()
            page.locator('input[data-filter="failed"]').check()
            assert not ok_row.is_visible()
            assert page.locator(f'section[data-region="East"] tr[data-task="{FAILED}"]').is_visible()
            # a relative link opens the file beside the index
            page.locator(f'section[data-region="East"] tr[data-task="{FAILED}"] a[data-link="html"]').click()
            page.wait_for_load_state()
            assert page.url == (run_dir / FAILED).with_suffix(".html").resolve().as_uri()
        finally:
            browser.close()
    assert failed == []
    assert external == []
    assert errors == []
