"""What every analysis notebook calls: set-up, opening the slice, "needs table X" sections, findings, and
recording the notebook's headline KPIs for the run.

Notebooks stay thin: a parameters cell, then one call per cell. Everything here is plain library code,
tested like the rest.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from typing import Any

import pandas as pd

from crmlens import data, kpis
from crmlens.params import load_params

#: MIME type of the KPI record a notebook emits in its last cell; `crmlens run` reads it back from
#: the executed notebook.
KPI_MIMETYPE = "application/vnd.crmlens.kpis+json"


def setup() -> None:
    """Display settings for notebooks, papermill and Voila (plotly charts survive HTML export)."""
    import plotly.io as pio

    from crmlens import charts

    pio.renderers.default = "plotly_mimetype+notebook"
    pio.templates.default = charts.TEMPLATE_NAME
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.width", 160)
    pd.set_option("display.float_format", lambda v: f"{v:,.4g}" if abs(v) < 1 else f"{v:,.2f}")
    warnings.filterwarnings("ignore", category=FutureWarning)


def open_analysis(**parameters: Any) -> data.Slice:
    """Validate the notebook's parameters, open the source, and return the region × period slice.

    Parameters left empty (None) take their defaults from params/defaults.yaml and params/regions.yaml.
    The region is checked against the source's regions.
    """
    setup()
    given = {k: v for k, v in parameters.items() if v not in (None, "")}
    params = load_params(given, region=given.get("region"))
    con = data.connect(params.source, params.mapping_path())
    if "regions" in data.available_tables(con):
        known = data.table_expr(con, "regions").select("region_id").to_pandas()["region_id"].dropna().tolist()
        params = params.check_region(known)
    return data.open_slice(params, con)


def md(text: str) -> Any:
    """Show `text` as Markdown (a finding, a heading)."""
    from IPython.display import Markdown, display

    display(Markdown(text))
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
                           as_of=s.as_of, vocabulary=s.info.vocabulary, period_label=period.label)


def kpi_summary(s: data.Slice, names: Iterable[str]) -> pd.DataFrame:
    """The named KPIs for the slice, against its comparison period."""
    return kpis.kpi_table(list(names), s.tables, context(s), s.comparison, context(s, "comparison"),
                          currency=s.params.currency)


def record_kpis(s: data.Slice, names: Iterable[str], area: str) -> pd.DataFrame:
    """Emit the notebook's headline KPIs for the run index (last cell of every notebook) and show them."""
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
    return table
