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

from crmlens import kpis

if TYPE_CHECKING:  # the data layer (Ibis, DuckDB, pandera) loads when a notebook opens its slice
    from crmlens import data

#: MIME type of the KPI record a notebook emits in its last cell; `crmlens run` reads it back from
#: the executed notebook.
KPI_MIMETYPE = "application/vnd.crmlens.kpis+json"


#: Environment variable naming plotly's renderer in a kernel (default DEFAULT_RENDERER). `crmlens run` sets
#: RUN_RENDERER: its HTML reports embed plotly.js once per page, so each executed notebook does not carry a copy
#: (4.8 MB through the kernel's messages and into every .ipynb).
RENDERER_ENV = "CRMLENS_PLOTLY_RENDERER"
#: JupyterLab and Voila draw the plotly MIME type; "notebook" adds plotly.js for `jupyter nbconvert --to html`.
DEFAULT_RENDERER = "plotly_mimetype+notebook"
RUN_RENDERER = "plotly_mimetype"


def setup() -> None:
    """Display settings for notebooks, papermill and Voila (plotly charts survive HTML export)."""
    skip_iri_grammar()
    import os

    import plotly.io as pio

    from crmlens import charts

    charts.register_template()
    pio.renderers.default = os.environ.get(RENDERER_ENV, "").strip() or DEFAULT_RENDERER
    pio.templates.default = charts.TEMPLATE_NAME
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.width", 160)
    pd.set_option("display.float_format", lambda v: f"{v:,.4g}" if abs(v) < 1 else f"{v:,.2f}")
    warnings.filterwarnings("ignore", category=FutureWarning)


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
    """Show `text` as Markdown (a heading, a note; `finding=True` marks it as a finding for the exports)."""
    from IPython.display import Markdown, display

    display(Markdown(text), metadata=FINDING_METADATA if finding else None)
    return None


def needs(s: data.Slice, *tables: str) -> bool:
    """True when the source has every table; else show a clear "needs tables ..." note and return False."""
    missing = s.missing(*tables)
    if missing:
        md(f"> **Skipped — no data.** This section needs table{'s' if len(missing) > 1 else ''} "
           f"{', '.join(f'`{t}`' for t in missing)}; the source `{s.info.source}` has none.")
        return False
    return True


def context(s: data.Slice, which: str = "current") -> kpis.KpiContext:
    """The KPI context of the current slice or of its comparison ("comparison")."""
    period = s.period if which == "current" else s.comparison_period
    return kpis.KpiContext(period_start=period.start, period_end=period.end, region=s.params.region,
                           as_of=s.as_of, vocabulary=s.info.vocabulary, period_label=period.label,
                           forgotten_days=s.params.forgotten_days)


def kpi_summary(s: data.Slice, names: Iterable[str]) -> pd.DataFrame:
    """The named KPIs for the slice, against its comparison period."""
    return kpis.kpi_table(list(names), s.tables, context(s), s.comparison, context(s, "comparison"),
                          currency=s.params.currency)


def record_kpis(s: data.Slice, names: Iterable[str], area: str) -> None:
    """Emit the notebook's headline KPIs for the run index (last cell of every notebook) and show them.
    (`kpi_summary` returns the same table as a frame.)"""
    from IPython.display import display

    table = kpi_summary(s, names)
    payload = {
        "area": area,
        "region": s.params.region,
        "period": s.period.label,
        "comparison_period": s.comparison_period.label,
        "kpis": json.loads(table.to_json(orient="records")),
    }
    shown = table[["label", "display", "comparison_value", "delta_pct", "trend", "status"]]
    display({KPI_MIMETYPE: payload, "text/html": shown.to_html(index=False, na_rep="—"),
             "text/plain": shown.to_string(index=False)}, raw=True)


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


def plot(builder: Any, result: Any, *args: Any, **kwargs: Any) -> Any:
    """``builder(result, ...)`` — a figure — unless `result` is None (a skipped section) or empty."""
    if result is None or (isinstance(result, pd.DataFrame) and result.empty):
        return None
    return builder(result, *args, **kwargs)


def say(describe: Any, result: Any, *args: Any, **kwargs: Any) -> Any:
    """Show the finding ``describe(result, ...)`` (a sentence written from the numbers) as Markdown, unless
    `result` is None (a skipped section)."""
    if result is None:
        return None
    text = describe(result, *args, **kwargs)
    return md(text, finding=True) if text else None
