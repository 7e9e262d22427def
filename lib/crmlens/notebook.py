"""What every analysis notebook calls: set-up, opening the slice, "needs table X" sections, findings, and
recording the notebook's headline KPIs for the run.

Notebooks stay thin: a parameters cell, then one call per cell. Everything here is plain library code,
tested like the rest.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from crmlens import i18n, kpis
from crmlens.findings import FINDING_MIMETYPE, Finding, as_finding
from crmlens.i18n import _

if TYPE_CHECKING:  # the data layer (Ibis, DuckDB, pandera) loads when a notebook opens its slice
    from crmlens import data

#: MIME type of the KPI record a notebook emits in its last cell; `crmlens run` reads it back from
#: the executed notebook.
KPI_MIMETYPE = "application/vnd.crmlens.kpis+json"
#: Set to 1 (the test suite's nbval pass over the committed notebooks on the demo) to make `record_kpis` fail
#: when one of the notebook's headline KPIs has no value: on the demo every one must have data.
STRICT_KPIS_ENV = "CRMLENS_STRICT_KPIS"


#: Environment variable naming plotly's renderer in a kernel (default DEFAULT_RENDERER). `crmlens run` sets
#: RUN_RENDERER: its HTML reports embed plotly.js once per page, so each executed notebook does not carry a copy
#: (4.8 MB through the kernel's messages and into every .ipynb).
RENDERER_ENV = "CRMLENS_PLOTLY_RENDERER"
#: JupyterLab and Voila draw the plotly MIME type; "notebook" adds plotly.js for `jupyter nbconvert --to html`.
DEFAULT_RENDERER = "plotly_mimetype+notebook"
RUN_RENDERER = "plotly_mimetype"
#: Set to 1 (as `crmlens run` does) to show every pandas frame a cell leaves as a reader's table
#: (`crmlens.present`): the reports never carry raw frames. JupyterLab keeps pandas' own display.
READER_TABLES_ENV = "CRMLENS_READER_TABLES"


def setup() -> None:
    """Display settings for notebooks, papermill and Voila (plotly charts survive HTML export)."""
    skip_iri_grammar()
    import os

    import plotly.io as pio

    from crmlens import charts

    charts.use_template()
    pio.renderers.default = os.environ.get(RENDERER_ENV, "").strip() or DEFAULT_RENDERER
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.width", 160)
    pd.set_option("display.float_format", lambda v: f"{v:,.4g}" if abs(v) < 1 else f"{v:,.2f}")
    warnings.filterwarnings("ignore", category=FutureWarning)
    if os.environ.get(READER_TABLES_ENV, "").strip() == "1":
        show_frames_as_tables()


def show_frames_as_tables() -> None:
    """Display every pandas frame as a reader's table (`crmlens.present`) in this kernel."""
    from crmlens import present

    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is always there in a kernel
        return
    shell = get_ipython()
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["text/html"]
    formatter.for_type(pd.DataFrame, lambda frame: table(frame)._repr_html_())
    plain = shell.display_formatter.formatters["text/plain"]
    plain.for_type(pd.DataFrame, lambda frame, p, cycle: p.text(table(frame).to_text()))
    del present


def subtitle(s: data.Slice) -> None:
    """The line under a notebook's title: region, period vs comparison, as-of date and source."""
    region = _("the whole company") if s.params.region == "all" else s.params.region
    md(_("**{region}**, {period} vs {comparison} (as of {as_of}) — source `{source}`", region=region,
         period=s.period.label, comparison=s.comparison_period.label, as_of=f"{s.as_of:%Y-%m-%d}",
         source=s.info.source))


def skip_iri_grammar() -> None:
    """Keep jsonschema from compiling its RFC 3987 (IRI) grammar in an analysis kernel.

    plotly's renderers import nbformat, which imports jsonschema; jsonschema registers an "iri" format checker
    when the optional package ``rfc3987-syntax`` is installed (Jupyter's event schemas ask for it) and builds
    that checker's Lark grammar at import: ~2.5 s of every kernel's start, for a format no notebook checks.
    Marking the module as absent (before jsonschema is imported) makes jsonschema skip it, as it does when the
    package is not installed. Jupyter's own processes are unaffected.
    """
    import sys

    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)


def parameters_cell_source() -> str:
    """The source of every analysis notebook's `parameters` cell: ``name: type = None  # help (default: x)``.

    Values left None take their defaults from params/defaults.yaml and the region's overrides in
    params/regions.yaml, so those files stay the single place defaults are set. A test keeps every
    notebook's parameters cell equal to this text.
    """
    from crmlens.params import Params, load_params

    defaults = load_params()
    lines = []
    for name, field in Params.model_fields.items():
        kind = "dict" if name == "options" else ("int" if field.annotation is int else "str")
        default = getattr(defaults, name)
        shown = default.isoformat() if hasattr(default, "isoformat") else default
        help_text = re.split(r"\.\s+(?=[A-Z])", field.description or "")[0].rstrip(".")
        help_text = help_text.replace(" = ", " is ").replace("=", ":")  # papermill cannot parse '=' in the help
        shown = shown if shown not in (None, {}) else "empty"
        lines.append(f"{name}: {kind} = None  # {help_text} (default: {shown})")
    return "\n".join(lines)


def open_analysis(namespace: Mapping[str, Any] | None = None, **parameters: Any) -> data.Slice:
    """Validate the notebook's parameters, open the source, and return the region × period slice.

    Pass `globals()` (the parameters cell's names are picked from it) and/or keyword arguments.
    Parameters left empty (None) take their defaults from params/defaults.yaml and params/regions.yaml.
    The region is checked against the source's regions.
    """
    from crmlens import data
    from crmlens.params import Params, load_params

    setup()
    picked = {k: v for k, v in (namespace or {}).items() if k in Params.model_fields}
    given = {k: v for k, v in {**picked, **parameters}.items() if v not in (None, "")}
    params = load_params(given, region=given.get("region"))
    i18n.use(params.language)
    _CURRENT_CURRENCY[:] = [params.currency]
    con = data.connect(params.source, params.mapping_path())
    if "regions" in data.available_tables(con):
        from crmlens.store import ensure_validated

        # the validated store (made or found by open_slice anyway): no Ibis connection at a kernel's start
        known = ensure_validated(con).read("regions")["region_id"].dropna().tolist()
        params = params.check_region(known)
    if os.environ.get(data.SLICE_CACHE_ENV):  # inside `crmlens run`: share the slice with the run's notebooks
        return data.open_slice_cached(params, con)
    return data.open_slice(params, con)


#: Output metadata key marking a displayed finding; the run's exports (deck titles) read it back.
FINDING_METADATA = {"crmlens": {"kind": "finding"}}


def md(text: str, finding: bool = False) -> Any:
    """Show `text` as Markdown (a heading, a note; `finding=True` marks it as a finding for the exports); an empty
    text (a skipped section's note) shows nothing."""
    from IPython.display import Markdown, display

    if not text:
        return None
    display(Markdown(text), metadata=FINDING_METADATA if finding else None)
    return None


def needs(s: data.Slice, *tables: str) -> bool:
    """True when the source has every table; else show a clear "needs tables ..." note and return False."""
    missing = s.missing(*tables)
    if missing:
        md(needs_text(missing, s.info.source))
        return False
    return True


def needs_text(missing: Iterable[str], source: str) -> str:
    """The note of a section skipped because the source lacks tables (not in this source — never a zero)."""
    missing = list(missing)
    names = ", ".join(f"`{t}`" for t in missing)
    text = i18n.n_("This section needs table {names}; the source `{source}` does not have it.",
                   "This section needs tables {names}; the source `{source}` does not have them.", len(missing),
                   names=names, source=source)
    return f"> **{_('Skipped — not in this source.')}** {text}"


def needs_column_text(table: str, column: str, source: str) -> str:
    """The note of a section skipped because the source's table lacks a column (not in this source)."""
    text = _("This section needs column `{table}.{column}`; the source `{source}` does not record it.", table=table,
             column=column, source=source)
    return f"> **{_('Skipped — not in this source.')}** {text}"


def context(s: data.Slice, which: str = "current") -> kpis.KpiContext:
    """The KPI context of the current slice or of its comparison ("comparison")."""
    period = s.period if which == "current" else s.comparison_period
    return kpis.KpiContext(period_start=period.start, period_end=period.end, region=s.params.region,
                           as_of=s.as_of, vocabulary=s.info.vocabulary, period_label=period.label,
                           forgotten_days=s.params.forgotten_days, churn_days=s.params.churn_days)


def kpi_summary(s: data.Slice, names: Iterable[str],
                with_frames: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """The named KPIs for the slice, against its comparison period. `with_frames` adds frames both periods'
    KPIs read (e.g. a purchase history that reaches before the period)."""
    current, comparison = s.tables, s.comparison
    if with_frames:
        current, comparison = current.with_frames(**with_frames), comparison.with_frames(**with_frames)
    return kpis.kpi_table(list(names), current, context(s), comparison, context(s, "comparison"),
                          currency=s.params.currency)


def record_kpis(s: data.Slice, names: Iterable[str], area: str,
                with_frames: Mapping[str, pd.DataFrame] | None = None) -> None:
    """Emit the notebook's headline KPIs for the run index (last cell of every notebook) and show them as a
    reader's table (`kpi_table_for_readers`). (`kpi_summary` returns the same table as a frame.)"""
    from IPython.display import display

    table = kpi_summary(s, names, with_frames)
    payload = {
        "area": area,
        "region": s.params.region,
        "period": s.period.label,
        "comparison_period": s.comparison_period.label,
        "language": i18n.current(),
        "kpis": json.loads(table.to_json(orient="records")),
    }
    shown = kpis.readers_table(table, currency=s.params.currency, period=s.period.label,
                               comparison_period=s.comparison_period.label)
    display({KPI_MIMETYPE: payload, "text/html": shown._repr_html_(), "text/plain": shown.to_text()}, raw=True)
    if os.environ.get(STRICT_KPIS_ENV, "").strip() in ("1", "true", "yes"):
        empty = [f"{k['kpi']} ({k['status']})" for k in payload["kpis"] if k["status"] != "ok"]
        if empty:
            from crmlens.errors import CrmLensError

            raise CrmLensError(f"{STRICT_KPIS_ENV}: KPIs without a value for {s.params.region} {s.period.label}: "
                               f"{', '.join(empty)}; every headline KPI must have data here")


def when(s: data.Slice, tables: str | Iterable[str], fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` when the source has the tables in `needs`; else show the "needs table" note
    and return None. The notebook pattern for a section:

        lead_funnel = nb.when(s, "leads", funnel.lead_funnel, s.tables, nb.context(s))
    """
    wanted = (tables,) if isinstance(tables, str) else tuple(tables)
    if not needs_quietly(s, wanted):
        needs(s, *wanted)
        return None
    return fn(*args, **kwargs)


def sync_parameters_cells(check: bool = False) -> list[Path]:
    """Make every analysis notebook's `parameters` cell equal to `parameters_cell_source()` (or, with `check`,
    only list the notebooks that differ). Run by `crmlens docs`."""
    import nbformat

    from crmlens import atomic, paths

    source = parameters_cell_source()
    changed = []
    for path in sorted(paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        if cells and cells[0].source != source:
            changed.append(path)
            if not check:
                cells[0].source = source
                atomic.write_text(path, nbformat.writes(nb) + "\n")
    return changed


def needs_quietly(s: data.Slice, tables: Iterable[str]) -> bool:
    """True when the source has every table (no output)."""
    return not s.missing(*tables)


def in_background(fn: Any, s: data.Slice, *args: Any, **kwargs: Any) -> Any:
    """Start a slice analysis in a second process while the next sections run (`crmlens.analysis.
    in_background`): ``job = nb.in_background(clv.holdout, s, purchases)``, later ``job.result()``."""
    from crmlens.analysis import in_background as start

    return start(fn, s, *args, **kwargs)


def warm_up(fn: Any) -> bool:
    """Start the kernel's second process now and run `fn` (imports, a first compile) there, so the jobs
    `in_background` sends later find it ready (`crmlens.analysis.warm_up`): ``nb.warm_up(clv.prepare)``."""
    from crmlens.analysis import warm_up as start

    return start(fn)


def plot(builder: Any, result: Any, *args: Any, **kwargs: Any) -> Any:
    """``builder(result, ...)`` — a figure — unless `result` is None (a skipped section) or empty."""
    if result is None or (isinstance(result, pd.DataFrame) and result.empty):
        return None
    return builder(result, *args, **kwargs)


def say(describe: Any, result: Any, *args: Any, **kwargs: Any) -> None:
    """Show and record the finding ``describe(result, ...)`` — a `crmlens.findings.Finding` (or a sentence)
    written from the numbers — unless `result` is None (a skipped section) or the data supports no finding.
    The executed notebook keeps it as a record (`FINDING_MIMETYPE`) for the run's executive summary."""
    if result is None:
        return None
    found = as_finding(describe(result, *args, **kwargs))
    if found is None:
        return None
    show_finding(found)
    return None  # shown and recorded; a cell ending with nb.say(...) prints nothing more


def show_finding(found: Finding) -> None:
    """Display `found` as Markdown marked as a finding, with its record."""
    from IPython.display import display

    display({"text/markdown": found.markdown(), "text/plain": found.markdown(), FINDING_MIMETYPE: found.record()},
            metadata=FINDING_METADATA, raw=True)


def show_alerts(result: Mapping[str, Any] | None) -> None:
    """Show each alert of `result` (``crmlens.metrics.forecasting.alerts_of``) as a finding, with its alert
    record (`crmlens.alerts.ALERT_MIMETYPE`) for the run's ``alerts.json``, the index and the summary."""
    from IPython.display import display

    from crmlens.alerts import ALERT_MIMETYPE

    for alert in (result or {}).get("alerts", []):
        found = alert.as_finding()
        display({"text/markdown": found.markdown(), "text/plain": found.markdown(),
                 FINDING_MIMETYPE: found.record(), ALERT_MIMETYPE: alert.record()},
                metadata=FINDING_METADATA, raw=True)


def record_forecast(s: data.Slice, forecast: Any) -> None:
    """Keep the pipeline forecast's snapshot (`crmlens.forecast.snapshots`) in the executed notebook: the run
    writes it to ``<region>/<period>/forecast.json``, and later runs and `crmlens diff` compare with it."""
    from IPython.display import display

    from crmlens.forecast.snapshots import FORECAST_MIMETYPE, snapshot

    if forecast is None:
        return None
    record = snapshot(forecast, s.params.region)
    text = i18n.n_("Forecast snapshot of {period} kept for later runs to compare with ({n} open deal).",
                   "Forecast snapshot of {period} kept for later runs to compare with ({n} open deals).",
                   len(forecast.deals), period=forecast.period.label, n=len(forecast.deals))
    display({FORECAST_MIMETYPE: record, "text/plain": text}, raw=True)
    return None


def keep_quality(record: Mapping[str, Any]) -> None:
    """Keep the source's data quality record (`crmlens.metrics.quality.snapshot`) in the executed notebook: the
    run writes it to ``<region>/<period>/quality.json``, and the next runs compare with it."""
    from IPython.display import display

    from crmlens.metrics.quality import QUALITY_MIMETYPE

    n = sum(1 for t in record.get("tables", {}).values() if t.get("status") != "absent")
    text = i18n.n_("Data quality record of {n} table kept for the next runs to compare with.",
                   "Data quality record of {n} tables kept for the next runs to compare with.", n, n=n)
    display({QUALITY_MIMETYPE: dict(record), "text/plain": text}, raw=True)


def table(frame: Any, **options: Any) -> Any:
    """Show `frame` as a reader's table (`crmlens.present.table`: labels, units, no index, fits the page);
    None (a skipped section) shows nothing. The frame itself stays in the variable the cell assigned."""
    from crmlens import present

    if frame is None:
        return None
    if isinstance(frame, present.Table):
        return frame
    if "currency" not in options and _CURRENT_CURRENCY:
        options["currency"] = _CURRENT_CURRENCY[0]
    return present.table(frame, **options)


#: The currency of the open slice (set by `open_analysis`), used by `table` for money columns.
_CURRENT_CURRENCY: list[str] = []
