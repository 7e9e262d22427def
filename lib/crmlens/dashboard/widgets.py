"""The dashboards' widget toolkit (ipywidgets and a few small anywidgets), used by the Voila
views in ``notebooks/dashboards/``. A view is a `ViewSpec` (which tiles, which panels, thresholds); a
`Dashboard` puts it on screen:

* `FilterBar` — period (presets, recent quarters, custom range), comparison, region, product line, team,
  customer segment, and the language (English / 中文); every change re-renders the whole view.
* KPI tiles (`crmlens.dashboard.tiles`), chart panels (`crmlens.dashboard.panels`) drawn by plotly.js in
  `Chart` widgets (plotly.js served with the page, or sent once by `plotly_loader()` in JupyterLab),
  each with its finding, its note ("not filtered by team") or a plain "No data: …" instead of an empty chart.
* `DrillDown` — regions → a region's teams → a team's reps → a rep's opportunities, with a breadcrumb;
  `FunnelRecords` — the leads behind a funnel step.
* `ExportBar` — the current view's tables to Excel and the view to PDF, downloaded by the browser
  (`Downloader`), the filter state in the file name and header.
* `UrlSync` — keeps the page's address equal to the filter state (``?region=East&period=2026-Q3``), so the
  address bar is a deep link; `Dashboard.from_query` restores such a link.
* Live refresh — a "Refresh data" button, and (`Dashboard.start_auto_refresh`, started by `open_dashboard`)
  a daemon thread that checks the source's version every ``$CRMLENS_DASHBOARD_REFRESH_S`` seconds
  (`crmlens.dashboard.serve.refresh_interval`); on new data the dashboard reloads it
  (`DashboardData.reload`) and re-renders the current filter state (`Dashboard.refresh`).

Nothing here computes a number: values come from `crmlens.dashboard.model` views, the KPI registry and
`crmlens.metrics`. Every text is shown in the state's language (`FilterState.language`): a dashboard renders
inside ``crmlens.i18n.language(state.language)`` and makes it the kernel's language, so a switch to 中文
changes every label, tile, chart, table, export and message — and no number.

Test hooks: every part carries a ``crmlens-*`` CSS class, tiles carry ``data-kpi`` / ``data-value``, and the
status line carries ``data-render`` (a counter bumped after all panels are updated), ``data-state`` (the
deep-link query) and ``data-language``; the refresh line (``crmlens-refresh-status``) carries
``data-refreshes`` (data reloads so far) and ``data-kind`` (refreshed | current | error).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import html
import os
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import anywidget
import ipywidgets as w
import pandas as pd
import plotly.graph_objects as go
import traitlets

from crmlens import i18n
from crmlens.charts import COLORS
from crmlens.charts.marketing import MODEL_LABELS
from crmlens.dashboard import exports
from crmlens.dashboard import state as st
from crmlens.dashboard.ahead import ComputeAhead, one_change_away
from crmlens.dashboard.exports import table_html
from crmlens.dashboard.model import DashboardData, View
from crmlens.dashboard.panels import (
    ATTRIBUTION_MODELS,
    DRILL_LEVELS,
    PANELS,
    DrillTable,
    Panel,
    attribution_panel,
    drill_table,
    funnel_records,
)
from crmlens.dashboard.panels_roles import KEY_FINDINGS, TABLE_PANELS, key_findings
from crmlens.dashboard.records import RecordsDrill
from crmlens.dashboard.serve import PAGE_PLOTLY_ENV, refresh_interval
from crmlens.dashboard.tiles import Tile, missing_tables_text, tiles_for, tiles_html
from crmlens.dashboard.views import OVERVIEW, SALES_MANAGER, VIEWS, ViewSpec  # noqa: F401 - re-exported
from crmlens.errors import CrmLensError
from crmlens.i18n import N_, _, n_
from crmlens.metrics.funnel import STEP_LABELS, STEPS

CUSTOM = "custom"
#: Panels whose bars are customers keyed by account id: a click opens the customer's history.
CUSTOMER_CHARTS = ("my_customers", "my_churn_risk")
#: The language control's choices, each language named in itself (never translated).
LANGUAGE_CHOICES: tuple[tuple[str, str], ...] = (("English", "en"), ("中文", "zh"))


#: The export sheet of each drill-down level (msgids).
DRILL_SHEETS: dict[str, str] = {"region": N_("Drill-down regions"), "team": N_("Drill-down teams"),
                                "rep": N_("Drill-down reps"), "opportunity": N_("Drill-down opportunities")}


# -- browser helpers (anywidget: ES modules sent over the widget channel, nothing fetched) ---------------------

class UrlSync(anywidget.AnyWidget):
    """Keeps the page address's query string equal to `query` (history.replaceState: no reload, no history
    entry per filter change). On a Voila page it first tells the kernel the link the page was opened with
    (`on_opened` handlers), then follows `query`: the deep link is opened even when Voila's own channel for
    the request (``voila.utils.wait_for_request``, which gives a preheated kernel its ``QUERY_STRING``) did
    not deliver it."""

    _esm = """
    function render({ model }) {
      const apply = () => {
        const q = model.get("query");
        const url = window.location.pathname + (q ? "?" + q : "");
        if (url !== window.location.pathname + window.location.search) {
          window.history.replaceState(null, "", url);
        }
      };
      model.on("change:query", apply);
      model.on("msg:custom", (msg) => { if (msg && msg.kind === "apply") apply(); });
      if (document.body && document.body.dataset.voila === "voila" && !window.crmlensLinkSent) {
        // the kernel answers with the link's state (change:query) or "apply"; until then the address stays
        window.crmlensLinkSent = true;
        model.send({ kind: "opened", query: window.location.search.replace(/^[?]/, "") });
      } else {
        apply();
      }
    }
    export default { render };
    """
    query = traitlets.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._opened_handlers: list[Callable[[str], None]] = []
        self.on_msg(self._message)

    def on_opened(self, fn: Callable[[str], None]) -> None:
        """Call fn(query) with the query string of the address the page was opened with."""
        self._opened_handlers.append(fn)

    def _message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("kind") == "opened":
            for fn in self._opened_handlers:
                fn(str(content.get("query") or ""))
            self.send({"kind": "apply"})


class Downloader(anywidget.AnyWidget):
    """Hands bytes to the browser as a file download (`send_file`): a Blob and a click on a temporary link."""

    _esm = """
    function render({ model, el }) {
      model.on("msg:custom", (msg, buffers) => {
        if (!msg || msg.kind !== "download") return;
        const blob = new Blob([buffers[0]], { type: msg.mime });
        const a = document.createElement("a");
        a.href = URL.createObjectURL(blob);
        a.download = msg.filename;
        a.className = "crmlens-download-link";
        el.appendChild(a);
        a.click();
        setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 60000);
      });
    }
    export default { render };
    """

    def send_file(self, filename: str, content: bytes, mime: str) -> None:
        self.send({"kind": "download", "filename": filename, "mime": mime}, buffers=[content])


# -- small renderers -------------------------------------------------------------------------------------------

def _message(text: str, kind: str = "info") -> str:
    colour = {"info": "#555", "error": COLORS["bad"], "no_data": COLORS["neutral"]}[kind]
    return f'<div class="crmlens-message crmlens-{kind}" style="color:{colour};padding:6px 0">{html.escape(text)}</div>'


@functools.cache
def _plotly_loader_class() -> type[anywidget.AnyWidget]:
    from crmlens.charts import plotlyjs

    js = plotlyjs.full_path().read_text(encoding="utf-8")

    class PlotlyLoader(anywidget.AnyWidget):
        _esm = js + "\nexport default { render({ el }) { el.dataset.plotly = window.Plotly.version; } };\n"

    return PlotlyLoader


def plotly_loader() -> anywidget.AnyWidget:
    """A widget carrying plotly.js (the copy inside the plotly package), sent to the page once over the widget
    channel and run there (it sets ``window.Plotly``); every `Chart` of the page draws with it. For pages that
    do not load plotly.js themselves (a dashboard shown in JupyterLab; under `crmlens dashboard` the page
    template loads it from the server, cached by the browser). Nothing is fetched from a CDN, and plotly.js
    travels once per page instead of once per chart (plotly's FigureWidget sends ~5 MB each). The 4.6 MB file
    is read on first use only."""
    return _plotly_loader_class()()


class Chart(anywidget.AnyWidget):
    """A plotly chart: `spec` is the figure as JSON (data, layout, config); drawn with Plotly.react. A click on
    a point (a bar, a treemap tile...) calls the `on_click` handlers with its label and id."""

    _esm = """
    function whenPlotly() {
      // the page template preloads plotly.js (link#crmlens-plotly-js): the first chart runs it; elsewhere
      // (JupyterLab) a plotly_loader() widget brings it
      const link = document.getElementById("crmlens-plotly-js");
      if (!window.Plotly && link && !document.getElementById("crmlens-plotly-script")) {
        const script = document.createElement("script");
        script.id = "crmlens-plotly-script";
        script.src = link.href;
        document.head.appendChild(script);
      }
      return new Promise((resolve) => {
        const check = () => (window.Plotly ? resolve(window.Plotly) : setTimeout(check, 20));
        check();
      });
    }
    let whole = null;
    async function plotlyFor(data) {
      // the page's bundle lists the trace types it draws (crmlens.charts.plotlyjs); a chart of another type
      // loads the whole plotly.js (served beside it), once, and every chart drawn after that uses it
      const Plotly = await whenPlotly();
      const known = Plotly.crmlensTraces;
      const meta = document.querySelector('meta[name="crmlens-plotly-full"]');
      if (!known || !meta || data.every((t) => known.includes(t.type || "scatter"))) return Plotly;
      whole = whole || new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = meta.content;
        script.onload = () => resolve(window.Plotly);
        script.onerror = reject;
        document.head.appendChild(script);
      });
      return whole;
    }
    async function render({ model, el }) {
      el.classList.add("crmlens-chart");
      const onClick = (event) => {
        const p = (event && event.points && event.points[0]) || {};
        model.send({ kind: "click", label: String(p.label ?? p.y ?? p.x ?? ""), id: String(p.id ?? "") });
      };
      const draw = async () => {
        const spec = model.get("spec") || {};
        const Plotly = await plotlyFor(spec.data || []);
        if (el._crmlensPlotly && el._crmlensPlotly !== Plotly) el._crmlensPlotly.purge(el);  // drawn by the other
        el._crmlensPlotly = Plotly;
        if (!spec.data) { Plotly.purge(el); el.dataset.traces = "0"; return; }
        await Plotly.react(el, spec.data, spec.layout || {}, spec.config || {});
        // purge drops the chart's listeners: listen again after every draw, once
        el.removeAllListeners("plotly_click");
        el.on("plotly_click", onClick);
        el.dataset.traces = String(spec.data.length);
        el.dataset.revision = String(model.get("revision"));
      };
      model.on("change:spec", draw);
      await draw();
    }
    export default { render };
    """
    spec = traitlets.Dict().tag(sync=True)
    revision = traitlets.Int(0).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._click_handlers: list[Callable[[str, str], None]] = []
        self.on_msg(self._message)

    def on_click(self, fn: Callable[[str, str], None]) -> None:
        """Call fn(label, id) when the viewer clicks a point of the chart."""
        self._click_handlers.append(fn)

    def _message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("kind") == "click":
            for fn in self._click_handlers:
                fn(str(content.get("label", "")), str(content.get("id", "")))

    def show(self, figure: go.Figure | None) -> None:
        """Draw `figure` (None: clear the chart)."""
        import json

        import plotly.io as pio

        if figure is None:
            self.spec = {}
            return
        spec = json.loads(pio.to_json(figure, validate=False))
        spec["config"] = {"displaylogo": False, "responsive": True}
        self.revision += 1
        self.spec = spec


# -- filter bar ------------------------------------------------------------------------------------------------

def recent_periods(as_of: pd.Timestamp, fiscal_year_start: int = 1, n: int = 8) -> list[str]:
    """The last `n` complete quarters before `as_of` (newest first), offered after the presets."""
    from crmlens.periods import latest_complete_period, shift_period

    last = latest_complete_period(as_of, "quarter", fiscal_year_start)
    return [shift_period(last, -k).label for k in range(n)]


class FilterBar:
    """The filter controls and the language switch. `state` is the current `FilterState`; `on_change(fn)` calls
    fn(state) after the user changed a control; `set_state(state)` moves the controls without calling back
    (and relabels them when the state's language is not the one they show)."""

    def __init__(self, options: Mapping[str, list[str]], state: st.FilterState, as_of: pd.Timestamp,
                 fiscal_year_start: int = 1, *, with_rep: bool = False,
                 rep_names: Mapping[str, str] | None = None) -> None:
        self._callbacks: list[Callable[[st.FilterState], None]] = []
        self.with_rep = with_rep
        self.rep_names = dict(rep_names or {})
        self._quiet = False
        self.as_of = as_of
        self.options = options
        self.recent = recent_periods(as_of, fiscal_year_start)
        layout = w.Layout(width="180px")
        style = {"description_width": "initial"}
        self.period = w.Dropdown(layout=layout, style=style)
        self.start = w.DatePicker(layout=w.Layout(width="190px", display="none"), style=style)
        self.end = w.DatePicker(layout=w.Layout(width="190px", display="none"), style=style)
        self.comparison = w.Dropdown(layout=layout, style=style)
        self.region = w.Dropdown(layout=layout, style=style, disabled=not options.get("regions"))
        self.product_line = w.Dropdown(layout=layout, style=style, disabled=not options.get("product_lines"))
        self.team = w.Dropdown(layout=layout, style=style, disabled=not options.get("teams"))
        self.segment = w.Dropdown(layout=layout, style=style, disabled=not options.get("segments"))
        # the sales rep view's "my" rep (other views keep a rep of their deep link, not shown)
        self.rep = w.Dropdown(layout=w.Layout(width="240px", display=None if with_rep else "none"), style=style,
                              disabled=not options.get("reps"))
        self.language = w.ToggleButtons(options=list(LANGUAGE_CHOICES), value=state.language,
                                        style={"button_width": "64px"}, layout=w.Layout(width="auto"))
        self.reset = w.Button(layout=w.Layout(width="80px"))
        self.reset.add_class("crmlens-reset")
        controls = (self.period, self.start, self.end, self.comparison, self.region, self.product_line, self.team,
                    self.segment, self.rep, self.language)
        for name, c in zip(("period", "start", "end", "comparison", "region", "product_line", "team", "segment",
                            "rep", "language"), controls, strict=True):
            c.add_class(f"crmlens-filter-{name}")
            c.observe(self._changed, names="value")
        # Reset: the default filters, in the language the reader chose
        # (the rep view keeps its rep: its reader is that rep)
        self.reset.on_click(lambda _b: self._emit(st.FilterState(language=self.state.language,
                                                                 rep=self.state.rep if with_rep else None)))
        for c in (*controls, self.reset):
            c.layout.margin = "2px 12px 2px 0"
        self.box = w.HBox([*controls, self.reset], layout=w.Layout(flex_flow="row wrap"))
        self.box.add_class("crmlens-filters")
        self.state = state
        self.shown_language = ""
        self.set_state(state)

    def relabel(self, language: str) -> None:
        """Show every label and option text in `language` (values stay; data values such as region ids are
        shown as the source spells them)."""
        self._quiet = True
        try:
            with i18n.language(language):
                periods = [(_(label).capitalize(), key) for key, label in st.PRESETS.items()]
                periods += [(p, p) for p in self.recent]
                periods.append((_("Custom range…"), CUSTOM))
                self._options(self.period, periods)
                self.period.description = _("Period")
                self.start.description, self.end.description = _("From"), _("To")
                self._options(self.comparison, [(_("Previous period"), "previous"),
                                                (_("Same period last year"), "last_year")])
                self.comparison.description = _("vs")
                for name, key, label in (("region", "regions", _("Region")),
                                         ("product_line", "product_lines", _("Product line")),
                                         ("team", "teams", _("Team")), ("segment", "segments", _("Segment"))):
                    control = getattr(self, name)
                    extra = [(v, v) for _t, v in control.options[1:] if v not in self.options.get(key, [])]
                    self._options(control, [(_("All"), "all"), *((v, v) for v in self.options.get(key, [])), *extra])
                    control.description = label
                reps = [(f"{self.rep_names[r]} ({r})" if self.rep_names.get(r) else r, r)
                        for r in self.options.get("reps", [])]
                extra = [(v, v) for _t, v in self.rep.options[1:] if v not in self.options.get("reps", [])]
                self._options(self.rep, [(_("Choose a rep"), "all"), *reps, *extra])
                self.rep.description = _("Rep")
                self.language.tooltips = [_("Show the dashboard in English"), _("Show the dashboard in Chinese")]
                self.reset.description = _("Reset")
                self.reset.tooltip = _("Back to the default filters")
            self.shown_language = language
        finally:
            self._quiet = False

    @staticmethod
    def _options(control: w.Dropdown, options: list[tuple[str, str]]) -> None:
        """New option texts for `control`, keeping its value."""
        value = control.value
        control.options = options
        if value is not None and value in [v for _t, v in options]:
            control.value = value

    def on_change(self, fn: Callable[[st.FilterState], None]) -> None:
        self._callbacks.append(fn)

    def set_state(self, state: st.FilterState) -> None:
        if state.language != self.shown_language:
            self.relabel(state.language)
        self._quiet = True
        try:
            self.state = state
            self.language.value = state.language
            values = [v for _t, v in self.period.options]
            if state.period in values:
                self.period.value = state.period
                custom = False
            else:
                custom = True
                self.period.value = CUSTOM
                from crmlens.dashboard.state import resolve_period

                p = resolve_period(state, self.as_of)
                self.start.value = p.start.date()
                self.end.value = (p.end - pd.Timedelta(days=1)).date()
            self.start.layout.display = self.end.layout.display = None if custom else "none"
            self.comparison.value = state.comparison
            for name in ("region", *st.SLICE_FILTERS):
                control = getattr(self, name)
                value = getattr(state, name) or "all"
                allowed = [v for _t, v in control.options]
                if value not in allowed:  # a value the source does not list (deep link checked before)
                    control.options = [*control.options, (value, value)]
                control.value = value
        finally:
            self._quiet = False

    def read(self) -> st.FilterState:
        """The state the controls show (a custom range needs both dates)."""
        period = self.period.value
        if period == CUSTOM:
            if self.start.value is None or self.end.value is None:
                return self.state
            period = f"{self.start.value:%Y-%m-%d}..{self.end.value:%Y-%m-%d}"
        return st.FilterState(period=period, comparison=self.comparison.value, region=self.region.value,
                              product_line=self.product_line.value, team=self.team.value, segment=self.segment.value,
                              rep=self.rep.value, language=self.language.value)

    def _changed(self, change: Any) -> None:
        if self._quiet:
            return
        custom = self.period.value == CUSTOM
        self.start.layout.display = self.end.layout.display = None if custom else "none"
        if custom and (self.start.value is None or self.end.value is None):
            if change["owner"] is self.period:
                p = st.resolve_period(self.state, self.as_of)
                self._quiet = True
                self.start.value, self.end.value = p.start.date(), (p.end - pd.Timedelta(days=1)).date()
                self._quiet = False
            else:
                return
        self._emit(self.read())

    def _emit(self, state: st.FilterState) -> None:
        for fn in self._callbacks:
            fn(state)


# -- panels ----------------------------------------------------------------------------------------------------

class PanelBox:
    """A panel on the page: title, chart (or, for a `TABLE_PANELS` panel, its table), finding / note / no-data
    line."""

    def __init__(self, key: str, title: str) -> None:
        self.key = key
        self.title = w.HTML(f"<h3 style='margin:4px 0'>{html.escape(title)}</h3>")
        self.table: w.HTML | None = w.HTML() if key in TABLE_PANELS else None
        self.figure: Chart | None = Chart() if self.table is None else None
        self.text = w.HTML()
        self.box = w.VBox([self.title, self.figure if self.figure is not None else self.table, self.text],
                          layout=w.Layout(border="1px solid #e0e0e0", padding="6px 10px", margin="6px 0"))
        self.box.add_class("crmlens-panel")
        self.box.add_class(f"crmlens-panel-{key}")

    @property
    def chart(self) -> Chart:
        """The panel's chart (a chart panel's)."""
        if self.figure is None:
            raise TypeError(f"panel {self.key!r} is a table panel: it has no chart")
        return self.figure

    def show(self, panel: Panel) -> None:
        """Show `panel` (its texts are in the language it was made in; the fallbacks in the language in use)."""
        self.title.value = f"<h3 style='margin:4px 0'>{html.escape(panel.title)}</h3>"
        shown = panel.figure if self.figure is not None else panel.table
        if panel.no_data or shown is None:
            if self.figure is not None:
                self.figure.show(None)
            if self.table is not None:
                self.table.value = ""
            self.text.value = _message(panel.no_data or _("No data"), "no_data")
            return
        if self.figure is not None:
            self.figure.show(panel.figure)
        if self.table is not None:
            self.table.value = exports.findings_html(panel.table, panel.columns)
        parts = [f"<div class='crmlens-finding'>{exports.finding_html(panel.finding)}</div>"] if panel.finding else []
        if panel.recommendation:
            label = html.escape(_("Recommendation"))
            parts.append(f"<div class='crmlens-recommendation'><b>{label}:</b> "
                         f"{exports.finding_html(panel.recommendation)}</div>")
        if panel.note:
            parts.append(f"<div class='crmlens-note' style='color:#8a6d00;font-size:12px'>"
                         f"{html.escape(panel.note)}</div>")
        self.text.value = "".join(parts)


class FunnelRecords:
    """Buttons per funnel step; a click lists the leads behind that step."""

    def __init__(self) -> None:
        self.buttons = w.ToggleButtons(options=self._options(), value="", description=_("Records at step"),
                                       style={"button_width": "auto"})
        self.buttons.add_class("crmlens-funnel-steps")
        self.language = i18n.current()
        self.table = w.HTML()
        self.table.add_class("crmlens-funnel-records")
        self.box = w.VBox([self.buttons, self.table])
        self.view_of: Callable[[], View] | None = None
        self.frame: pd.DataFrame | None = None
        self.buttons.observe(lambda _: self.refresh(), names="value")

    #: Columns of the records list (column → heading msgid).
    COLUMNS: ClassVar[dict[str, str]] = {
        "lead_id": N_("Lead"), "created_at": N_("Created"), "source_channel": N_("Channel"), "region_id": N_("Region"),
        "owner_rep_id": N_("Owner"), "campaign_id": N_("Campaign"), "opportunity_amount": N_("Opportunity amount")}

    @staticmethod
    def _options() -> list[tuple[str, str]]:
        return [(_("Hide records"), "")] + [(_(STEP_LABELS[s]), s) for s in STEPS]

    def reset(self, view_of: Callable[[], View], language: str | None = None) -> None:
        """Follow a new filter state (`view_of` gives its view, cut only when records are asked for), shown in
        `language` (default: the language in use)."""
        self.view_of = view_of
        language = language or i18n.current()
        if language != self.language:
            with i18n.language(language):
                step = self.buttons.value
                self.view_of = None  # relabelling must not list records twice
                self.buttons.options = self._options()
                self.buttons.description = _("Records at step")
                self.view_of = view_of
                self.buttons.value = step
            self.language = language
        self.refresh()

    def refresh(self) -> None:
        with i18n.language(self.language):
            self._refresh()

    def _refresh(self) -> None:
        step = self.buttons.value
        if not step or self.view_of is None:
            self.frame, self.table.value = None, ""
            return
        view = self.view_of()
        self.frame = funnel_records(view, step)
        if view.missing("leads"):
            self.table.value = _message(missing_tables_text(["leads"]) or "", "no_data")
            return
        columns = {c: _(h) for c, h in self.COLUMNS.items()}
        count = n_("{n} lead of the period reached {step}", "{n} leads of the period reached {step}",
                   len(self.frame), step=_(STEP_LABELS[step]))
        intro = (f"<div class='crmlens-records-count' data-count='{len(self.frame)}'>{html.escape(count)}</div>")
        self.table.value = intro + table_html(self.frame, columns, css="crmlens-records", key="lead_id")


def drill_result(data_: DashboardData, state: st.FilterState, path: Sequence[tuple[str, str, str]]) -> DrillTable:
    """The drill-down table after choosing `path` ((level, key, label)...) from the top, under `state`'s
    filters other than region, in `state`'s language (remembered per kernel)."""
    chosen = {level: key for level, key, _label in path}
    level = DRILL_LEVELS[len(path)]
    at = dataclasses.replace(state, region=chosen.get("region", "all"))
    key = (*data_.result_key(at), "drill", level, chosen.get("team"), chosen.get("rep"))

    def compute() -> DrillTable:
        with i18n.language(state.language):
            return drill_table(data_.view(at), level, team=chosen.get("team"), rep=chosen.get("rep"))
    return data_.memo(key, compute)


class DrillDown:
    """Regions → teams → reps → a rep's opportunities. Rows are buttons; the breadcrumb goes back."""

    def __init__(self, data_: DashboardData, on_state: Callable[[], st.FilterState]) -> None:
        self.data = data_
        self.state_of = on_state
        self.crumbs = w.HBox()
        self.crumbs.add_class("crmlens-breadcrumb")
        self.items = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        self.items.add_class("crmlens-drill-items")
        self.table = w.HTML()
        self.table.add_class("crmlens-drill-table")
        self.heading = w.HTML()
        self.box = w.VBox([self.heading, self.crumbs, self.items, self.table],
                          layout=w.Layout(border="1px solid #e0e0e0", padding="6px 10px", margin="6px 0"))
        self.box.add_class("crmlens-panel")
        self.box.add_class("crmlens-panel-drill")
        self.path: list[tuple[str, str, str]] = []  # (level, key, label) chosen so far
        self.current: pd.DataFrame | None = None
        self.columns: dict[str, str] = {}
        self.level = "region"

    def reset(self) -> None:
        """Start at the filter's region: every region, or the chosen region's teams."""
        region = self.state_of().region
        self.path = [] if region == "all" else [("region", region, region)]
        self.render()

    def render(self) -> None:
        """Show the current level, in the filter state's language."""
        state = self.state_of()
        with i18n.language(state.language):
            self._render(state)

    def _render(self, state: st.FilterState) -> None:
        depth = len(self.path)
        self.level = DRILL_LEVELS[depth]
        result = drill_result(self.data, state, self.path)
        self.current, self.columns = result.table, result.columns
        self.heading.value = f"<h3 style='margin:4px 0'>{html.escape(_('Drill down'))}</h3>"
        crumbs = [(_("All regions"), 0)] + [(label, i + 1) for i, (_level, _key, label) in enumerate(self.path)]
        buttons = []
        for label, n in crumbs:
            b = w.Button(description=label, tooltip=_("Back to {place}", place=label), disabled=n == depth,
                         layout=w.Layout(width="auto"))
            b.add_class("crmlens-crumb")
            b.on_click(lambda _b, n=n: self.back(n))
            buttons.append(b)
        self.crumbs.children = buttons
        items = []
        if self.level != "opportunity" and not result.no_data:
            for _i, row in result.table.iterrows():
                key, name = str(row[result.key]), str(row.get("name", row[result.key]))
                b = w.Button(description=name, tooltip=_("Open {name} ({id})", name=name, id=key),
                             layout=w.Layout(width="auto", margin="2px 4px 2px 0"))
                b.add_class("crmlens-drill-item")
                b.on_click(lambda _b, key=key, name=name: self.open(key, name))
                items.append(b)
        self.items.children = items
        if result.no_data:
            self.table.value = _message(result.no_data, "no_data")
        else:
            self.table.value = (f"<div class='crmlens-drill-level' data-level='{self.level}'></div>"
                                + table_html(result.table, result.columns, css=f"crmlens-drill-{self.level}",
                                             key=result.key))

    def open(self, key: str, label: str) -> None:
        if self.level == "opportunity":
            return
        self.path.append((self.level, key, label))
        self.render()

    def back(self, depth: int) -> None:
        self.path = self.path[:depth]
        self.render()


class ExportBar:
    """"Excel" and "PDF" buttons: the current view, downloaded with the filter state in the file name. Its
    texts are in the language of `relabel` (the language in use when made)."""

    def __init__(self, on_excel: Callable[[], tuple[str, bytes]], on_pdf: Callable[[], tuple[str, bytes]]) -> None:
        self.downloader = Downloader()
        self.excel = w.Button(description="Excel")
        self.pdf = w.Button(description="PDF")
        self.excel.add_class("crmlens-export-excel")
        self.pdf.add_class("crmlens-export-pdf")
        self.status = w.HTML()
        self.status.add_class("crmlens-export-status")
        self.label = w.HTML()
        self.box = w.HBox([self.label, self.excel, self.pdf, self.status, self.downloader],
                          layout=w.Layout(align_items="center"))
        for part in self.box.children:
            part.layout.margin = "0 8px 0 0"
        self.language = i18n.current()
        self.relabel(self.language)
        self.excel.on_click(lambda _b: self._run(on_excel, exports.XLSX_MIME))
        self.pdf.on_click(lambda _b: self._run(on_pdf, exports.PDF_MIME))

    def relabel(self, language: str) -> None:
        """Show the bar's texts in `language` (the file formats keep their names)."""
        self.language = language
        with i18n.language(language):
            self.label.value = f"<b>{html.escape(_('Export:'))}</b>"
            self.excel.tooltip = _("The view's tables as an Excel workbook")
            self.pdf.tooltip = _("The view as a PDF")
        self.status.value = ""

    def _run(self, make: Callable[[], tuple[str, bytes]], mime: str) -> None:
        with i18n.language(self.language):
            self.status.value = html.escape(_("Preparing…"))
            try:
                filename, content = make()
            except Exception as exc:  # the page says what failed; the kernel keeps serving
                self.status.value = _message(_("Export failed: {error}", error=str(exc)), "error")
                return
            self.downloader.send_file(filename, content, mime)
            size = _("{size} KB", size=i18n.format_number(len(content) / 1024, "number", digits=0))
            self.status.value = (f"<span class='crmlens-export-done' data-file='{html.escape(filename)}' "
                                 f"data-bytes='{len(content)}'>{html.escape(filename)} ({html.escape(size)})</span>")


# -- the dashboard ---------------------------------------------------------------------------------------------

def rep_names(data_: DashboardData) -> dict[str, str]:
    """rep_id → name of the source's reps (empty without a reps table or names)."""
    reps = data_.frames.get("reps")
    if reps is None or "name" not in reps.columns:
        return {}
    first = reps.drop_duplicates("rep_id")
    return {str(k): str(v) for k, v in zip(first["rep_id"], first["name"], strict=True) if isinstance(v, str)}


class AttributionSwitch:
    """The marketing view's attribution model switcher: a dropdown above the attribution panel; choosing a
    model redraws the panel for that model alone (`crmlens.dashboard.panels.attribution_panel`), "all models"
    compares them. Its choice is kept across filter changes."""

    def __init__(self, data_: DashboardData, on_state: Callable[[], st.FilterState], box: PanelBox) -> None:
        self.data, self.state_of, self.panel_box = data_, on_state, box
        self.choice = w.Dropdown(options=[("", "")], value="", layout=w.Layout(width="320px"))
        self.choice.add_class("crmlens-attribution-model")
        self._quiet = False
        self.choice.observe(lambda _c: None if self._quiet else self.render(), names="value")
        box.box.children = (box.box.children[0], self.choice, *box.box.children[1:])
        self.panel: Panel | None = None

    def reset(self) -> None:
        """Follow a new filter state: the options in its language; a chosen model is redrawn for it."""
        state = self.state_of()
        with i18n.language(state.language):
            options = [(_("All models"), ""), *((_(MODEL_LABELS.get(m, m)), m) for m in ATTRIBUTION_MODELS)]
            self._quiet = True
            try:
                value = self.choice.value
                self.choice.options = options
                self.choice.value = value if value in {v for _l, v in options} else ""
                self.choice.description = _("Model")
            finally:
                self._quiet = False
        if self.choice.value:
            self.render()

    def render(self) -> None:
        state, model = self.state_of(), self.choice.value or None

        def compute() -> Panel:
            with i18n.language(state.language):
                return attribution_panel(self.data.view(state), model)
        self.panel = self.data.memo((*self.data.result_key(state), "attribution", model), compute)
        with i18n.language(state.language):
            self.panel_box.show(self.panel)


class Dashboard:
    """A view (`ViewSpec`) of a `DashboardData` on screen: `app` is the widget to display. `set_state(state)`
    re-renders every part for a filter state; the filter bar, drill-down and export buttons call it."""

    def __init__(self, data_: DashboardData, spec: ViewSpec = OVERVIEW, state: st.FilterState | None = None) -> None:
        self.data, self.spec = data_, spec
        self.state = state or st.FilterState()
        self.renders = 0
        self.tiles: list[Tile] = []
        self.panel_data: list[Panel] = []
        self.last_seconds = 0.0
        self.title = w.HTML()
        self.shown_language = ""
        self.header = w.HTML()
        self.header.add_class("crmlens-header")
        self.status = w.HTML()
        self.status.add_class("crmlens-status")
        self.filters = FilterBar(data_.options, self.state, data_.as_of, data_.base.fiscal_year_start,
                                 with_rep=spec.needs == "rep", rep_names=rep_names(data_))
        self.filters.on_change(self.set_state)
        self.tile_row = w.HTML()
        self.tile_row.add_class("crmlens-tile-row")
        self.panels = {key: PanelBox(key, "") for key in
                       ((KEY_FINDINGS,) if spec.key_findings else ()) + tuple(spec.panels)}
        self.records = FunnelRecords() if "funnel" in spec.panels else None
        if self.records is not None:
            self.panels["funnel"].box.children = (*self.panels["funnel"].box.children, self.records.box)
        self.drill = DrillDown(data_, lambda: self.state) if spec.drill else None
        if self.drill is not None and "regions" in self.panels:
            self.panels["regions"].chart.on_click(self.drill_to_place)
        self.record_drills = [RecordsDrill(data_, key, lambda: self.state) for key in spec.records]
        for key in CUSTOMER_CHARTS:  # a click on a customer's bar opens the customer's history
            if key in self.panels and "customer_history" in spec.records:
                self.panels[key].chart.on_click(self.drill_to_customer)
        self.attribution = AttributionSwitch(data_, lambda: self.state, self.panels["attribution"]) \
            if "attribution" in self.panels else None
        self.export = ExportBar(self.excel_file, self.pdf_file)
        # live refresh (see `refresh`): renders take `_render_lock`, data reloads `_refresh_lock`
        self._render_lock = threading.RLock()
        self._refresh_lock = threading.Lock()
        self._watch_stop: threading.Event | None = None
        self._failed_version: str | None = None
        self.refreshes = 0
        self._refresh_text: tuple[str, dict[str, Any], str] | None = None
        self.refresh_button = w.Button(layout=w.Layout(width="auto"))
        self.refresh_button.add_class("crmlens-refresh")
        self.refresh_button.on_click(lambda _b: self.refresh(manual=True))
        self.refresh_note = w.HTML()
        self.refresh_note.add_class("crmlens-refresh-status")
        self.refresh_box = w.HBox([self.refresh_button, self.refresh_note], layout=w.Layout(align_items="center"))
        self.refresh_button.layout.margin = "0 8px 0 0"
        self.link = ""  # the deep link opened (`from_query`, `open_link`)
        self.url = UrlSync()
        self.url.on_opened(self._page_opened)
        parts: list[w.Widget] = [self.title, self.header, self.filters.box, self.export.box, self.refresh_box,
                                 self.status, self.tile_row, *(p.box for p in self.panels.values())]
        if self.drill is not None:
            parts.append(self.drill.box)
        parts += [d.box for d in self.record_drills]
        parts.append(self.url)
        if os.environ.get(PAGE_PLOTLY_ENV) != "1":  # not under `crmlens dashboard`: bring plotly.js along
            parts.append(plotly_loader())
        self.app = w.VBox(parts, layout=w.Layout(max_width="1280px"))
        self.app.add_class("crmlens-dashboard")
        self._awaited: set[int] = set()  # panels still being computed elsewhere whose end redraws the view
        self.ahead = ComputeAhead(self._compute_ahead, self._one_change_away)
        self._wanted = self.state
        self.set_state(self.state)

    @classmethod
    def from_query(cls, data_: DashboardData, spec: ViewSpec, query: str | None) -> Dashboard:
        """The dashboard of a deep link (Voila's QUERY_STRING). A bad link opens the default view — in the
        link's language when that one is good — with a message naming the URL parameter and what is allowed."""
        state, error = _link_state(data_, query)
        board = cls(data_, spec, state)
        board.link = query or ""
        if error:
            board._link_error(error)
        return board

    def open_link(self, query: str | None) -> None:
        """Show deep link `query` on this dashboard as `from_query` opens it (a dashboard a preheating kernel
        built for the default view before its viewer arrived: only what the link changes is redrawn)."""
        self.link = query or ""
        state, error = _link_state(self.data, query)
        if state != self.state:
            self.set_state(state)
        if error:
            self._link_error(error)

    def _page_opened(self, query: str) -> None:
        """The page says which link it was opened with: open it when it is not the one this kernel was given
        (Voila's request channel failed, or the kernel was not started for this page)."""
        if query != self.link:
            print(f"crmlens: the page was opened with ?{query}, the kernel was given ?{self.link}: opening the "
                  "page's link", file=sys.__stderr__ or sys.stderr, flush=True)  # the server's log, not the page
            self.open_link(query)

    def _link_error(self, error: str) -> None:
        with i18n.language(self.state.language):
            text = _("The link could not be opened as given: {error}. Showing the default view.", error=error)
        self.status.value = _message(text, "error")

    def compute(self, state: st.FilterState) -> tuple[list[Tile], list[Panel]]:
        """The tiles and panels of `state`, their texts in `state`'s language (no widgets touched; remembered,
        and shared between kernels: the view is only cut when they were never computed)."""
        from crmlens import alerts

        # the thresholds file (params/alerts.yaml) wins over the view's own badges, KPI by KPI
        rules = {**self.spec.thresholds, **alerts.tile_thresholds(alerts.load_alerts(), state.region)}

        def run() -> tuple[list[Tile], list[Panel]]:
            with i18n.language(state.language):
                v = self.data.view(state)
                tiles = v.annotate(tiles_for(v, list(self.spec.tiles), thresholds=rules))
                made = [PANELS[key](v) for key in self.spec.panels]
                # a panel still computed elsewhere is remembered as such (True), and made again when shown
                made = [dataclasses.replace(p, pending=True) if p.pending is not None else p for p in made]
                return tiles, ([key_findings(made)] if self.spec.key_findings else []) + made
        key = (*self.data.result_key(state), "view", self.spec.name, self.spec.digest, repr(sorted(rules.items())))
        tiles, panels = self.data.memo(key, run)
        if not any(p.pending is not None for p in panels):
            return tiles, panels
        return self._finish_pending(key, state, tiles, panels)

    def _finish_pending(self, key: tuple, state: st.FilterState, tiles: list[Tile], panels: list[Panel]
                        ) -> tuple[list[Tile], list[Panel]]:
        """`panels` with the ones that were still being computed elsewhere made again (ready now, or pending
        with the job to wait for) and the key findings ranked again; remembered under `key` once none is
        pending any more."""
        with i18n.language(state.language):
            v = self.data.view(state)
            made = [PANELS[p.key](v) if p.pending is not None else p for p in panels if p.key != KEY_FINDINGS]
            panels = ([key_findings(made)] if self.spec.key_findings else []) + made
        if not any(p.pending is not None for p in panels):
            self.data.remember(key, (tiles, panels))
        return tiles, panels

    def _compute_ahead(self, state: st.FilterState) -> None:
        """What the computing-ahead thread computes for `state` (`crmlens.dashboard.ahead`): as `warm` does. The
        results are kept; the cut slice is let go (memory: a viewer's kernel would otherwise hold every
        neighbour's frames)."""
        try:
            self.compute(state)
            if self.spec.drill:
                drill_result(self.data, state,
                             [] if state.region == "all" else [("region", state.region, state.region)])
        finally:
            if state != self.state:
                self.data.forget_view(state)

    def _one_change_away(self, state: st.FilterState) -> list[st.FilterState]:
        periods = [*st.PRESETS, *self.filters.recent[:4]]
        return one_change_away(state, self.data.options.get("regions", []), periods)

    @property
    def view(self) -> View:
        """The slice the dashboard shows (cut on first use)."""
        return self.data.view(self.state)

    def set_state(self, state: st.FilterState) -> None:
        """Re-render every part for `state`, in its language (which becomes the kernel's: `crmlens.i18n.use`);
        on a bad state keep the previous one and say why. One render at a time (a live refresh renders from
        its thread)."""
        self._wanted = state  # asked last: a panel finishing meanwhile for the state shown must not redraw it
        with self._render_lock, self.ahead.rendering():
            self._set_state(state)
            self._wanted = self.state  # (a bad state keeps the one shown)
        self.ahead.shown(self.state)

    def _set_state(self, state: st.FilterState) -> None:
        start = time.perf_counter()
        try:
            tiles, panels = self.compute(state)
        except CrmLensError as exc:
            self.filters.set_state(self.state)
            self.status.value = _message(str(exc), "error")
            return
        except Exception as exc:  # never a traceback on the page; the kernel log has it
            traceback.print_exc()
            self.filters.set_state(self.state)
            with i18n.language(self.state.language):
                text = _("Could not compute this view: {error}", error=f"{type(exc).__name__}: {exc}")
            self.status.value = _message(text, "error")
            return
        i18n.use(state.language)
        self.state, self.tiles, self.panel_data = state, tiles, panels
        self.filters.set_state(state)
        if state.language != self.shown_language:
            self.relabel(state.language)
        header = _("{filters} · data as of {date}", filters=self.describe(),
                   date=i18n.format_date(self.data.as_of.normalize()))
        self.header.value = f"<div style='color:#444'>{html.escape(header)}</div>"
        self.tile_row.value = tiles_html(tiles)
        for p in panels:
            self.panels[p.key].show(p)
            if hasattr(p.pending, "add_done_callback") and id(p.pending) not in self._awaited:
                self._awaited.add(id(p.pending))
                p.pending.add_done_callback(functools.partial(self._pending_done, state))
        if self.records is not None:
            self.records.reset(lambda: self.data.view(state), state.language)
        if self.drill is not None:
            self.drill.reset()
        for drill in self.record_drills:
            drill.reset()
        if self.attribution is not None:
            self.attribution.reset()
        query = st.to_query(state)
        self.url.query = query
        self.renders += 1
        self.last_seconds = time.perf_counter() - start
        updated = _("Updated in {seconds} s", seconds=i18n.format_number(self.last_seconds, "number", digits=2))
        self.status.value = (f"<span class='crmlens-status-line' data-render='{self.renders}' "
                             f"data-state='{html.escape(query)}' data-seconds='{self.last_seconds:.3f}' "
                             f"data-language='{state.language}' style='color:#888;font-size:12px'>"
                             f"{html.escape(updated)}</span>")

    def _pending_done(self, state: st.FilterState, future: Any) -> None:
        """A panel computed elsewhere is ready: draw the view again when it still shows `state` (in a thread of
        its own: the callback's thread belongs to whoever computed the panel)."""
        self._awaited.discard(id(future))

        def redraw() -> None:
            # under the render lock: a render of another state asked for (or under way) meanwhile wins — checked
            # before it, this redrew the old state over a deep link's once that link's render finished
            with self._render_lock:
                if self.state == state and self._wanted == state:
                    self.set_state(state)
        threading.Thread(target=redraw, name="crmlens-panel-ready", daemon=True).start()

    def relabel(self, language: str) -> None:
        """Show the dashboard's own texts (title, export bar) in `language`; tiles, panels, filters, drill-down
        and records follow their state."""
        with i18n.language(language):
            self.title.value = f"<h2 style='margin:0'>{html.escape(_(self.spec.title))}</h2>"
            self.refresh_button.description = _("Refresh data")
            self.refresh_button.tooltip = _("Check the source for new data now and show it")
        self.export.relabel(language)
        self._show_refresh_text(language)
        if self.shown_language:
            self.app.remove_class(f"crmlens-lang-{self.shown_language}")
        self.app.add_class(f"crmlens-lang-{language}")
        self.shown_language = language

    # -- live refresh --------------------------------------------------------------------------------

    def _say(self, msgid: str, kind: str = "current", **values: Any) -> None:
        """Show `msgid` (filled with `values`) on the refresh line, in the dashboard's language (kept, so a
        language switch re-says it). `kind`: refreshed | current | error."""
        with self._render_lock:  # the language in use is the kernel's: one thread at a time switches it
            self._refresh_text = (msgid, values, kind)
            self._show_refresh_text(self.state.language)

    def _show_refresh_text(self, language: str) -> None:
        if self._refresh_text is None:
            self.refresh_note.value = ""
            return
        msgid, values, kind = self._refresh_text
        with i18n.language(language):
            text = _(msgid, **{k: v() if callable(v) else v for k, v in values.items()})
        colour = COLORS["bad"] if kind == "error" else "#888"
        self.refresh_note.value = (f"<span class='crmlens-refresh-line' data-kind='{kind}' "
                                   f"data-refreshes='{self.refreshes}' style='color:{colour};font-size:12px'>"
                                   f"{html.escape(text)}</span>")

    def _as_of_text(self, data_: DashboardData) -> Callable[[], str]:
        return lambda: i18n.format_date(data_.as_of.normalize())

    def check_for_update(self) -> bool:
        """The automatic check (`start_auto_refresh`'s thread): reload and re-render when the source has a new
        version; True when new data is shown. Says nothing when nothing changed (no message reaches the page,
        so an idle kernel is still culled); never raises — a failed check or reload keeps the data shown and
        says why."""
        return self.refresh(manual=False)

    def refresh(self, manual: bool = True, force: bool = False) -> bool:
        """Show the source's current data: when its version (`DashboardData.source_version`) differs from the
        one shown — or `force`, or a click (`manual`) on a database source, whose counters can lag — load it
        (`DashboardData.reload`, a new DashboardData: nothing computed for the old version is served again),
        compute the current filter state on it, then swap it in and re-render (`set_state(self.state)`): the
        header's "data as of" and every tile follow. On failure the data shown stays, with a message. True when
        new data is shown. One refresh at a time (a second one asked meanwhile returns False)."""
        if not self._refresh_lock.acquire(blocking=False):
            return False
        try:
            return self._refresh(manual, force)
        except Exception as exc:  # never into the page or the thread: the kernel log has the traceback
            traceback.print_exc()
            with contextlib.suppress(Exception):
                self._say(N_("Could not refresh the data: {error}. Still showing the data as of {date}."), "error",
                          error=f"{type(exc).__name__}: {exc}", date=self._as_of_text(self.data))
            return False
        finally:
            self._refresh_lock.release()

    def _refresh(self, manual: bool, force: bool) -> bool:
        old = self.data
        now = time.strftime("%H:%M:%S")
        try:
            current = old.source_version()
        except Exception as exc:
            traceback.print_exc()
            self._say(N_("Could not check for new data: {error}"), "error", error=f"{type(exc).__name__}: {exc}")
            return False
        changed = current is not None and current != old.version
        if not (changed or force or (manual and old.info.kind == "url")):
            # a click says so; the automatic check only clears an earlier error (else nothing reaches the page)
            if manual or (self._refresh_text is not None and self._refresh_text[2] == "error"):
                self._say(N_("The data is up to date (checked at {time})."), "current", time=now)
            return False
        if not manual and not force and current == self._failed_version:
            return False  # that version could not be loaded: wait for the next change (or a click)
        try:
            new = old.reload()  # the slow part (a new version is validated), off the page and unlocked
        except Exception as exc:
            return self._refresh_failed(exc, old, current)
        with self._render_lock:  # computing uses the kernel's language: not while the page renders
            state = self._keep_state(st.FilterState(language=self.state.language), new)
            probe = Dashboard.__new__(Dashboard)  # the view computed on the new data before anything is swapped
            probe.data, probe.spec = new, self.spec
            try:
                probe.compute(state)
            except Exception as exc:
                return self._refresh_failed(exc, old, current)
            self._adopt(new)
            self._set_state(state)
            self.refreshes += 1  # after the render: whoever sees the count sees the new view
            self._failed_version = None
            self._say(N_("Data refreshed at {time}: data as of {date}."), "refreshed", time=now,
                      date=self._as_of_text(new))
        old.close()  # its views and results are never shown again
        return True

    def _refresh_failed(self, exc: Exception, old: DashboardData, version: str | None) -> bool:
        traceback.print_exc()
        self._failed_version = version
        self._say(N_("Could not refresh the data: {error}. Still showing the data as of {date}."), "error",
                  error=f"{type(exc).__name__}: {exc}", date=self._as_of_text(old))
        return False

    def _keep_state(self, fallback: st.FilterState, new: DashboardData) -> st.FilterState:
        """The filter state to show on the newly loaded data `new`: the current one when `new` still has it
        (e.g. its region), else `fallback`."""
        try:
            new.params_for(self.state)
            return self.state
        except CrmLensError:
            return fallback

    def _adopt(self, new: DashboardData) -> None:
        """Make `new` the data every part reads (filter choices and recent quarters, drill-down)."""
        self.data = new
        bar = self.filters
        bar.options, bar.as_of = new.options, new.as_of
        bar.recent = recent_periods(new.as_of, new.base.fiscal_year_start)
        for name, key in (("region", "regions"), ("product_line", "product_lines"), ("team", "teams"),
                          ("segment", "segments")):
            getattr(bar, name).disabled = not new.options.get(key)
        bar.relabel(bar.shown_language or self.state.language)
        if self.drill is not None:
            self.drill.data = new

    def start_auto_refresh(self, seconds: float | None = None) -> threading.Thread | None:
        """Check the source for new data every `seconds` (default `refresh_interval()`: the
        ``$CRMLENS_DASHBOARD_REFRESH_S`` of the kernel; 0: no automatic check) in a daemon thread — the page is
        never blocked, the thread ends with the kernel (or `stop_auto_refresh`, or when the dashboard is
        collected) and never raises (`check_for_update`). A bad interval turns the check off, with a message.
        Returns the thread (None when off)."""
        self.stop_auto_refresh()
        if seconds is None:
            try:
                seconds = refresh_interval()
            except CrmLensError as exc:
                self._say(N_("Automatic refresh is off: {error}"), "error", error=str(exc))
                return None
        if not seconds or seconds <= 0:
            return None
        stop = threading.Event()
        thread = threading.Thread(target=_watch, args=(weakref.ref(self), stop, float(seconds)), daemon=True,
                                  name="crmlens-dashboard-refresh")
        self._watch_stop = stop
        weakref.finalize(self, stop.set)
        thread.start()
        return thread

    def stop_auto_refresh(self) -> None:
        """Stop the automatic check (if running)."""
        if self._watch_stop is not None:
            self._watch_stop.set()
            self._watch_stop = None

    def describe(self) -> str:
        """The filter state as a header line, in the language in use."""
        return st.describe(self.state, self.data.as_of, self.data.base.fiscal_year_start)

    def drill_to_place(self, label: str, point_id: str) -> None:
        """A click on the regions treemap: open that region's teams in the drill-down (the tile's id starts
        with its region_id: ``East`` or ``East/China``)."""
        if self.drill is None:
            return
        region = (point_id or label).split("/")[0]
        if region not in self.data.options["regions"]:
            return
        self.drill.path = [("region", region, region)]
        self.drill.render()

    def drill_to_customer(self, label: str, point_id: str) -> None:
        """A click on a customer's bar (`CUSTOMER_CHARTS`, keyed by account id): open that customer's history
        in the record drill-down, when the view offers that customer."""
        drill = next((d for d in self.record_drills if d.spec.key == "customer_history"), None)
        if drill is None or not point_id:
            return
        if point_id in {value for _label, value in drill.choice.options}:
            drill.open(point_id)

    # -- exports -------------------------------------------------------------------------------------------

    def export_name(self, suffix: str) -> str:
        stem = st.file_stem(self.state, self.data.as_of, self.data.base.fiscal_year_start)
        return f"{stem}_{self.spec.name}.{suffix}"

    def export_tables(self) -> dict[str, pd.DataFrame]:
        """Sheet title → table of the view (panels, the open drill-down level, the funnel records), titles and
        headings in the language in use."""
        tables = exports.panel_tables(self.panel_data)
        if self.drill is not None and self.drill.current is not None and len(self.drill.current):
            title = _(DRILL_SHEETS[self.drill.level])
            tables[title] = exports.labelled(self.drill.current, self.drill.columns)
        if self.records is not None and self.records.frame is not None:
            title = _("Funnel {step} leads", step=_(STEP_LABELS[self.records.buttons.value]))
            tables[title] = exports.labelled(self.records.frame, {c: _(h) for c, h in FunnelRecords.COLUMNS.items()})
        for drill in self.record_drills:
            if drill.current is not None and not drill.current.no_data and len(drill.current.table):
                tables[_(drill.spec.title)] = exports.labelled(drill.current.table, drill.current.columns)
        return tables

    def header_lines(self) -> list[str]:
        return exports.header_lines(self.describe(), self.data.as_of, self.data.info.source)

    def excel_file(self) -> tuple[str, bytes]:
        """The view's Excel workbook (file name, bytes), in the view's language."""
        with i18n.language(self.state.language):
            return self.export_name("xlsx"), exports.view_xlsx(_(self.spec.title), self.header_lines(), self.tiles,
                                                               self.export_tables(), self.data.base.currency)

    def pdf_file(self) -> tuple[str, bytes]:
        """The view as a PDF (file name, bytes), in the view's language."""
        with i18n.language(self.state.language):
            return self.export_name("pdf"), exports.view_pdf(_(self.spec.title), self.header_lines(), self.tiles,
                                                             self.panel_data)


def _link_state(data_: DashboardData, query: str | None) -> tuple[st.FilterState, str | None]:
    """The filter state of deep link `query` and None; for a bad link the default state (in the link's language
    when that one is good) and what was wrong."""
    try:
        state = data_.parse_query(query)
        data_.params_for(state)
        return state, None
    except CrmLensError as exc:
        return st.FilterState(language=st.language_of_query(query)), str(exc)


def open_dashboard(spec: ViewSpec | str, data_: DashboardData, query: str | None = None) -> Dashboard:
    """The dashboard of view `spec` (a `ViewSpec` or a name in `VIEWS`) for a deep link `query`."""
    if isinstance(spec, str):
        if spec not in VIEWS:
            raise CrmLensError(f"view: {spec!r} is not a dashboard view; use one of {', '.join(VIEWS)}")
        spec = VIEWS[spec]
    board = Dashboard.from_query(data_, spec, query)
    board.start_auto_refresh()
    return board


#: Set when the interpreter exits: every automatic check stops at once.
_EXITING = threading.Event()
atexit.register(_EXITING.set)


def _watch(board_ref: Callable[[], Dashboard | None], stop: threading.Event, seconds: float) -> None:
    """The automatic check's loop (`Dashboard.start_auto_refresh`): every `seconds`, `check_for_update` on the
    dashboard while it exists; nothing escapes."""
    while not stop.wait(seconds) and not _EXITING.is_set():
        board = board_ref()
        if board is None:
            return
        try:
            board.check_for_update()
        except Exception:  # a thread must not die: the next check runs all the same
            with contextlib.suppress(Exception):
                traceback.print_exc()
        del board


def warm(data_: DashboardData, spec: ViewSpec, states: Sequence[st.FilterState]) -> float:
    """Compute the tiles and panels of `states` once (fills the caches a preheated kernel keeps); seconds. A view
    chosen by its rep (`ViewSpec.needs`) also computes the first state for one rep: what every rep's view shares
    (the company's churn model, the region's frames) is then ready for whichever rep opens it."""
    start = time.perf_counter()
    board = Dashboard.__new__(Dashboard)
    board.data, board.spec = data_, spec
    reps = data_.options.get("reps") or []
    if spec.needs == "rep" and reps and states:
        states = [dataclasses.replace(states[0], rep=reps[0]), *states]
    for s in states:
        try:
            board.compute(s)
            if spec.drill:
                drill_result(data_, s, [] if s.region == "all" else [("region", s.region, s.region)])
        except CrmLensError:
            continue
    return time.perf_counter() - start
