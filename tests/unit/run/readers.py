"""Checks that a report's tables are for readers (used by the English and the Chinese report tests)."""

from __future__ import annotations

import re
from pathlib import Path

from crmlens.run import exports

_SNAKE = re.compile(r"^[a-z]+(_[a-z0-9]+)+$")
_RAW_RATE = re.compile(r"^-?0\.\d{3,}$")


def table_problems(page: str) -> list[str]:
    """Report tables that are not for readers."""
    problems = []
    if 'class="dataframe' in page:
        problems.append("a raw pandas table (class dataframe)")
    for header in re.findall(r"<th(?:\s[^>]*)?>(.*?)</th>", page, re.S):
        text = re.sub(r"<[^>]+>", "", header).strip()
        if not text:
            problems.append("an empty header (an index column)")
        elif _SNAKE.match(text):
            problems.append(f"snake_case header {text!r}")
    for cell in re.findall(r"<td(?:\s[^>]*)?>(.*?)</td>", page, re.S):
        text = re.sub(r"<[^>]+>", "", cell).strip()
        if _RAW_RATE.match(text) or text in ("NaN", "nan", "None", "<NA>", "NaT"):
            problems.append(f"unformatted cell {text!r}")
    return sorted(set(problems))


def tables_cut_in_print(html_path: Path) -> list[str]:
    """Tables wider than the printed page (A4 landscape, 10 mm margins: 277 mm ≈ 1047 px)."""
    with exports.chromium() as browser, exports.report_page(html_path, browser) as report:
        page = report._page
        page.emulate_media(media="print")
        page.set_viewport_size({"width": 1047, "height": 1400})
        return page.evaluate("""() => Array.from(document.querySelectorAll('table'))
            .filter(t => t.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
            .map(t => (t.querySelector('th') || t).textContent.slice(0, 40))""")
