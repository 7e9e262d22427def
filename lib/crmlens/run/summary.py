"""The executive summary of a region: its findings read back from the executed notebooks, ranked.

Every finding a notebook shows with ``nb.say`` is kept in the executed notebook as a record
(`crmlens.findings.FINDING_MIMETYPE`). `notebook_findings` reads them back with where they were found: the
notebook, the section (the markdown heading above), and the anchor of the finding in `report.html`
(`finding_anchor`). `executive_summary` ranks a region's findings (act, watch, good news, context; then by
weight) and keeps the few that matter most; the report, the deck, the workbook and the run's index page show
it first, and the report ends with every recommendation ("Conclusions and recommendations").
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from typing import Any

from crmlens.findings import FINDING_MIMETYPE, SEVERITY_LABELS, Finding, summary
from crmlens.i18n import _

#: Findings in a region's executive summary.
SUMMARY_SIZE = 6
_HEADING = re.compile(r"^(#{1,3})\s+(.+?)\s*$", re.M)


def finding_anchor(section: int, cell: int, output: int) -> str:
    """The id of a finding's element in `report.html` (analysis `section` 1-based, cell, output index)."""
    return f"crmlens-finding-{section}-{cell}-{output}"


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _heading_of(source: str) -> str | None:
    found = [m.group(2) for m in _HEADING.finditer(source) if len(m.group(1)) >= 2]
    return found[-1].strip() if found else None


def notebook_findings(nb: Any, notebook: str, section: int = 1) -> list[Finding]:
    """The finding records of an executed notebook, in order, with notebook, section heading and anchor."""
    heading = ""
    found: list[Finding] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            heading = _heading_of(_text(cell.source)) or heading
            continue
        for position, output in enumerate(cell.get("outputs", [])):
            record = (output.get("data") or {}).get(FINDING_MIMETYPE)
            if isinstance(record, Mapping) and record.get("text"):
                found.append(Finding.from_record(record).at(
                    notebook=notebook, section=heading, anchor=finding_anchor(section, index, position)))
    return found


def executive_summary(findings: Iterable[Finding], limit: int = SUMMARY_SIZE) -> list[Finding]:
    """The few findings that matter most (`crmlens.findings.summary`)."""
    return summary(findings, limit)


def recommendations(findings: Iterable[Finding]) -> list[Finding]:
    """Every finding with a recommendation, most urgent first (the report's closing section)."""
    return summary([f for f in findings if f.recommendation], limit=10_000)


def _markdown_inline(text: str) -> str:
    """Escaped text with **bold**, *italics* and `code` of a finding as HTML (findings are one paragraph)."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", out)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return out.replace("\n", "<br>")


def severity_badge(severity: str) -> str:
    """A small coloured badge — a dot and the label: Act (red), Watch (orange), Good news (green), Context
    (grey). The dot is drawn by CSS, not an emoji: no emoji font is needed in the PDF (Chromium prints a box
    for a glyph it has no font for)."""
    label = _(SEVERITY_LABELS.get(severity, SEVERITY_LABELS["info"]))
    return (f'<span class="crmlens-sev crmlens-sev-{html.escape(severity)}"><span class="crmlens-sev-dot" '
            f'aria-hidden="true"></span>{html.escape(label)}</span>')


def findings_html(findings: list[Finding], *, links: bool = True, titles: Mapping[str, str] | None = None,
                  empty: str = "") -> str:
    """An ordered list of findings: badge, text, recommendation, and a link to the evidence in the report."""
    if not findings:
        text = empty or _("No finding of this region calls for attention.")
        return f'<p class="crmlens-none">{html.escape(text)}</p>'
    items = []
    for f in findings:
        where = " · ".join(x for x in ((titles or {}).get(f.notebook, f.notebook), f.section) if x)
        parts = [severity_badge(f.severity), f'<span class="crmlens-finding-text">{_markdown_inline(f.text)}</span>']
        if f.recommendation:
            parts.append(f'<div class="crmlens-rec"><strong>{html.escape(_("Recommendation"))}:</strong> '
                         f"{_markdown_inline(f.recommendation)}</div>")
        if where:
            evidence = html.escape(_("Evidence: {where}", where=where))
            link = f'<a href="#{html.escape(f.anchor)}">{evidence} →</a>' if links and f.anchor else evidence
            parts.append(f'<div class="crmlens-evidence">{link}</div>')
        items.append(f"<li class=\"crmlens-sum-{html.escape(f.severity)}\">{''.join(parts)}</li>")
    return f'<ol class="crmlens-summary-list">{"".join(items)}</ol>'


SUMMARY_CSS = """
.crmlens-summary { border: 1px solid #d0d7e2; border-radius: 6px; padding: 10px 18px; margin: 1em 0 1.5em;
  background: #fafbfd; }
.crmlens-summary h2, .crmlens-conclusions h2 { margin-top: 0.3em; }
.crmlens-summary-list { padding-left: 1.4em; }
.crmlens-summary-list li { margin: 0 0 0.8em; line-height: 1.45; break-inside: avoid; }
.crmlens-sev { display: inline-block; font-size: 0.8em; font-weight: 600; border-radius: 3px; padding: 0 6px;
  margin-right: 6px; white-space: nowrap; }
.crmlens-sev-dot { display: inline-block; width: 0.6em; height: 0.6em; border-radius: 50%;
                   background: currentColor; margin-right: 0.35em; vertical-align: 0.05em; }
.crmlens-sev-act { background: #fdecea; color: #b71c1c; }
.crmlens-sev-watch { background: #fff4e5; color: #a15c00; }
.crmlens-sev-good { background: #e8f5e9; color: #1b5e20; }
.crmlens-sev-info { background: #eceff1; color: #455a64; }
.crmlens-rec { margin-top: 3px; }
.crmlens-evidence { font-size: 0.85em; color: #666; margin-top: 2px; }
.crmlens-none { color: #666; }
.crmlens-conclusions { margin-top: 2.5em; border-top: 3px solid #444; padding-top: 6px; }
@media print { .crmlens-summary { break-after: page; } .crmlens-conclusions { break-before: page; } }
"""
