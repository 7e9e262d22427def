"""The dashboards' landing page (``notebooks/dashboards/index.ipynb``): every view of
`crmlens.dashboard.views.VIEWS` with a thumbnail, who it is for and one line on what it shows, each a link to
the view (relative to the page, so it works under any Voila address and prefix). The thumbnail is drawn from
the view's spec — its tiles as a row of cards, its panels as a grid — so it never goes stale when a view
changes. English or Chinese (``?language=zh``), like the views. No data is read: the page opens at once.
"""

from __future__ import annotations

import html
import os

from crmlens import i18n
from crmlens.charts import COLORS
from crmlens.dashboard import state as st
from crmlens.dashboard.views import VIEWS, ViewSpec
from crmlens.i18n import _


def thumbnail_svg(spec: ViewSpec, width: int = 240, height: int = 150) -> str:
    """A schematic of the view as an inline SVG: the title bar, one card per tile and the panels in two
    columns (the widths and order of the real page)."""
    pad, bar = 8, 14
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             f"viewBox='0 0 {width} {height}' role='img' aria-label='{html.escape(spec.name)}'>",
             f"<rect width='{width}' height='{height}' rx='6' fill='#f6f8fb' stroke='#d0d7e2'/>",
             f"<rect x='{pad}' y='{pad}' width='{width * 0.55:.0f}' height='{bar - 4}' rx='2' "
             f"fill='{COLORS['actual']}'/>"]
    n = max(len(spec.tiles), 1)
    tile_w = (width - 2 * pad - (n - 1) * 4) / n
    y = pad + bar + 4
    for i in range(len(spec.tiles)):
        parts.append(f"<rect x='{pad + i * (tile_w + 4):.1f}' y='{y}' width='{tile_w:.1f}' height='18' rx='2' "
                     f"fill='#ffffff' stroke='{COLORS['comparison']}'/>")
    y += 24
    rows = (len(spec.panels) + 1) // 2
    panel_h = (height - y - pad - (rows - 1) * 4) / max(rows, 1)
    panel_w = (width - 2 * pad - 4) / 2
    for i in range(len(spec.panels)):
        row, col = divmod(i, 2)
        parts.append(f"<rect x='{pad + col * (panel_w + 4):.1f}' y='{y + row * (panel_h + 4):.1f}' "
                     f"width='{panel_w:.1f}' height='{panel_h:.1f}' rx='2' fill='#ffffff' stroke='#d0d7e2'/>")
        parts.append(f"<polyline fill='none' stroke='{COLORS['target'] if i % 3 == 1 else COLORS['actual']}' "
                     f"stroke-width='1.5' points='" + " ".join(
                         f"{pad + col * (panel_w + 4) + 4 + k * (panel_w - 8) / 5:.1f},"
                         f"{y + row * (panel_h + 4) + panel_h - 4 - ((k * 7 + i * 3) % 5) * (panel_h - 8) / 5:.1f}"
                         for k in range(6)) + "'/>")
    parts.append("</svg>")
    return "".join(parts)


def landing_html(language: str | None = None) -> str:
    """The landing page's HTML in `language` (default: the language in use): one card per view."""
    with i18n.language(language or i18n.current()):
        cards = []
        for spec in VIEWS.values():
            link = f"{spec.name}.ipynb" + (f"?language={language}" if language and language != "en" else "")
            cards.append(
                f"<a class='crmlens-view-card' data-view='{spec.name}' href='{html.escape(link)}' "
                "style='display:block;width:260px;padding:10px;border:1px solid #d0d7e2;border-radius:8px;"
                "text-decoration:none;color:#222;background:#fff'>"
                f"{thumbnail_svg(spec)}"
                f"<div style='font-weight:600;margin-top:6px'>{html.escape(_(spec.title))}</div>"
                f"<div style='color:#1f4e79;font-size:12px'>{html.escape(_(spec.audience))}</div>"
                f"<div style='font-size:13px;margin-top:4px'>{html.escape(_(spec.summary))}</div></a>")
        title = _("CRM Lens dashboards")
        intro = _("Choose a view. Each opens on this quarter for all regions; its filter bar changes the period, "
                  "region, product line, team, segment and language, and its address is a link to what you see.")
    return (f"<div class='crmlens-landing' data-language='{language or ''}'>"
            f"<h2 style='margin:0 0 4px 0'>{html.escape(title)}</h2>"
            f"<p style='color:#444;margin:0 0 12px 0'>{html.escape(intro)}</p>"
            "<div style='display:flex;flex-wrap:wrap;gap:12px'>" + "".join(cards) + "</div></div>")


def show(query: str | None = None) -> None:
    """Display the landing page in the language of the page's address (``?language=zh``). As a widget: its
    links are the browser's own (an HTML output's relative links would be rewritten to file downloads)."""
    import ipywidgets as w
    from IPython.display import display

    language = st.language_of_query(os.environ.get("QUERY_STRING", "") if query is None else query)
    display(w.HTML(landing_html(language)))
