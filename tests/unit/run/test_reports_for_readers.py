"""Reports people read, checked on real runs of the three sales notebooks (tiny demo, East):

- in Chinese (`crmlens run --language zh`) no English prose is left in report.html (data values, names and ids
  aside), chart texts included; the catalogue is complete for what the notebooks write (strict mode: a missing
  translation fails the task); the PDF opens with the executive summary and draws Chinese glyphs with a CJK
  font (not boxes: compared with the same page printed without a CJK font);
- in both languages every report table is for readers (no index column, no snake_case header, no raw rate,
  no NaN) and no table is cut at the right edge of the printed page.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from crmlens import i18n
from crmlens.run import exports, runner
from crmlens.run.runner import RunOptions
from tests.unit.run.readers import table_problems, tables_cut_in_print

pytestmark = pytest.mark.slow

NOTEBOOKS = "02_sales_funnel,03_sales_performance,04_customers,05_marketing,08_regions_teams"
#: Words a Chinese report may keep: product and format names, CRM acronyms, units.
ALLOWED_WORDS = {"crm", "lens", "usd", "mql", "mqls", "sql", "sqls", "kpi", "kpis", "pdf", "xlsx", "report", "html",
                 "ipynb", "csv", "id", "ids", "vs", "all", "demo", "p25", "p75", "cny", "eur", "sdr", "sdrs", "rfm",
                 # names of methods and measures, written as such in Chinese analytics too
                 "bg", "nbd", "gamma", "mae", "rmse", "csat", "nps", "roc", "auc", "brier", "scikit", "learn",
                 # marketing measures Chinese marketers write in English (ROI 投入产出比, 点击率 CTR ...), Shapley 值
                 "roi", "ctr", "cpc", "cpa", "shapley"}


class _Text(HTMLParser):
    """Visible text of a page, without scripts, styles and `code` spans (table names such as `leads`)."""

    def __init__(self) -> None:
        super().__init__()
        self.skip = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "code"):
            self.skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style", "code") and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def visible_text(page: str) -> str:
    parser = _Text()
    parser.feed(page)
    return " ".join(parser.parts)


def data_words(folder: Path) -> set[str]:
    """Every word of every text value of the source (names, channels, stages, industries...)."""
    words: set[str] = set()
    for path in folder.glob("*.parquet"):
        frame = pd.read_parquet(path)
        for column in frame.columns:
            if pd.api.types.is_object_dtype(frame[column]) or pd.api.types.is_string_dtype(frame[column]):
                for value in frame[column].dropna().astype(str).unique()[:20000]:
                    words.update(w.lower() for w in re.findall(r"[A-Za-z]+", value))
    return words


def english_words(text: str, allowed: set[str]) -> list[str]:
    text = re.sub(r"\b\w*[_\d]\w*\b", " ", text)  # ids, file names, snake_case names of notebooks
    words = (w.strip("'’") for w in re.findall(r"[A-Za-z][A-Za-z'’]+", text))
    return [w for w in words if w.lower() not in allowed and len(w) > 2]


def figure_texts(nb) -> list[str]:
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            figure = output.get("data", {}).get(exports.PLOTLY_MIMETYPE)
            if not figure:
                continue
            layout = figure.get("layout", {})
            for key in ("title", "xaxis", "yaxis"):
                part = layout.get(key) or {}
                title = part.get("title") if key != "title" else part
                text = title.get("text") if isinstance(title, dict) else title
                if text:
                    texts.append(str(text))
            texts += [str(t.get("name")) for t in figure.get("data", []) if t.get("name")]
            texts += [str(a.get("text")) for a in layout.get("annotations", []) if a.get("text")]
    return texts


@pytest.fixture(scope="module")
def zh_run(tmp_path_factory, tiny_demo):
    """The three sales notebooks for East in Chinese, strict: an untranslated string fails its task."""
    out = tmp_path_factory.mktemp("zh")
    mp = pytest.MonkeyPatch()
    mp.setenv(i18n.STRICT_ENV, "1")
    try:
        result = runner.run(RunOptions(source=str(tiny_demo), regions="East", periods="2026-Q3", notebooks=NOTEBOOKS,
                                       overrides={"as_of": "2026-10-01", "language": "zh"}, outputs_dir=out,
                                       exports=("html", "pdf", "pptx"), progress=False, workers=2,
                                       run_id="zh-east"))
    finally:
        mp.undo()
    return result


def test_the_chinese_run_has_every_string_translated_and_no_english_prose(zh_run, tiny_demo):
    failed = {t["notebook"]: t.get("error") for t in zh_run.manifest["tasks"] if t["status"] != "ok"}
    assert not failed, f"tasks failed (a missing translation fails in strict mode): {failed}"
    page = (zh_run.run_dir / "East" / "report.html").read_text(encoding="utf-8")
    text = visible_text(page)
    assert "管理层摘要" in text and "结论与建议" in text
    assert '<html lang="zh-CN">' in page, "browsers pick the Simplified Chinese glyphs"
    emoji = re.findall(r"[\U0001F000-\U0001FFFF]", text)
    assert not emoji, f"no emoji font is installed: the PDF would print boxes for {sorted(set(emoji))}"
    allowed = ALLOWED_WORDS | data_words(Path(tiny_demo))
    left = english_words(text, allowed)
    assert not left, f"English words left in the zh report: {sorted(set(left))[:40]}"
    import nbformat

    for task in zh_run.manifest["tasks"]:
        nb = nbformat.read(zh_run.run_dir / task["outputs"]["ipynb"], as_version=4)
        chart_left = english_words(" ".join(figure_texts(nb)), allowed)
        assert not chart_left, f"{task['notebook']}: English chart texts {sorted(set(chart_left))[:30]}"


def test_the_chinese_pdf_opens_with_the_summary_and_draws_cjk_glyphs(zh_run, tmp_path):
    import numpy as np
    import pypdfium2 as pdfium

    pdf_path = zh_run.run_dir / "East" / "report.pdf"
    raw = pdf_path.read_bytes()
    assert re.search(rb"/FontName\s*/[A-Z]{6}\+Noto\w*CJKsc", raw), "a CJK font is embedded"
    pdf = pdfium.PdfDocument(str(pdf_path))
    try:
        first = pdf[0].get_textpage().get_text_range()
        assert "管理层摘要" in first and "建议" in first
        with_font = np.asarray(pdf[0].render(scale=1).to_pil().convert("L")).astype(int)
    finally:
        pdf.close()
    # the same page printed by a Chromium that has no CJK font: boxes (tofu) instead of glyphs
    control = _print_without_cjk_fonts(zh_run.run_dir / "East" / "report.html", tmp_path)
    pdf = pdfium.PdfDocument(str(control))
    try:
        without = np.asarray(pdf[0].render(scale=1).to_pil().convert("L")).astype(int)
        assert not re.search(rb"/FontName\s*/[A-Z]{6}\+Noto\w*CJKsc", control.read_bytes())
    finally:
        pdf.close()
    rows = min(with_font.shape[0], without.shape[0])
    changed = (np.abs(with_font[:rows] - without[:rows]) > 64).mean()
    assert changed > 0.005, f"the page looks the same without the CJK font ({changed:.4f} of pixels differ)"


def test_the_chinese_deck_is_written_by_the_run_with_chinese_slide_titles(zh_run):
    from pptx import Presentation

    files = zh_run.manifest["exports"]["East"]["files"]
    assert {"html", "pdf", "pptx"} <= set(files)
    deck = Presentation(str(zh_run.run_dir / files["pptx"]))
    titles = [shape.text_frame.text for slide in deck.slides for shape in slide.shapes
              if shape.has_text_frame and shape.text_frame.text.strip()]
    assert len(deck.slides) >= 3 and sum(i18n.has_cjk(t) for t in titles) >= 3, titles[:6]


def _print_without_cjk_fonts(html_path: Path, tmp_path: Path) -> Path:
    from playwright.sync_api import sync_playwright

    conf = tmp_path / "fonts.conf"
    conf.write_text('<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
                    "<dir>/usr/share/fonts/truetype/dejavu</dir>"
                    f"<cachedir>{tmp_path}/fc-cache</cachedir></fontconfig>", encoding="utf-8")
    target = tmp_path / "no-cjk.pdf"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exports.CHROMIUM, args=exports.CHROMIUM_ARGS,
                                    env={"FONTCONFIG_FILE": str(conf), "HOME": str(tmp_path)})
        try:
            page = browser.new_page()
            page.goto(html_path.as_uri(), wait_until="load")
            page.pdf(path=str(target), prefer_css_page_size=True, print_background=True)
        finally:
            browser.close()
    return target


def test_the_chinese_report_tables_are_for_readers_and_fit_the_page(zh_run):
    html_path = zh_run.run_dir / "East" / "report.html"
    assert table_problems(html_path.read_text(encoding="utf-8")) == []
    assert tables_cut_in_print(html_path) == []


def test_reader_checks_catch_raw_frames():
    raw = pd.DataFrame({"sql_to_opportunity_rate": [0.40451, float("nan")]}).to_html()
    found = table_problems(raw)
    assert "a raw pandas table (class dataframe)" in found and "snake_case header 'sql_to_opportunity_rate'" in found
    assert "unformatted cell '0.40451'" in found and "unformatted cell 'NaN'" in found


def test_findings_and_tables_are_recorded_in_the_manifest(zh_run):
    tasks = zh_run.manifest["tasks"]
    assert all(t.get("findings") for t in tasks), "every notebook records findings"
    assert json.dumps(tasks, ensure_ascii=False)
