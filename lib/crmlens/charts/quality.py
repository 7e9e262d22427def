"""Figures of the data quality analysis. They draw what `crmlens.metrics.quality` computed; every text a reader
sees is in the language in use (`tr`). Bars and lines are keyed by ``table.column`` ids, labelled for readers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from crmlens.charts import COLORS, _layout, tr
from crmlens.i18n import N_

if TYPE_CHECKING:  # plotly loads with the first figure, not with the notebook's imports
    import plotly.graph_objects as go


def plot_table_rows(overview: pd.DataFrame, *, title: str = N_("Share of each table's rows rejected or warned")
                    ) -> go.Figure | None:
    """Per table with problems: the share of its rows rejected and the share kept with a warning, as stacked
    horizontal bars (tables without a problem are left out; None when no table has one)."""
    import plotly.graph_objects as go

    present = overview[(overview["status"] != "absent") & (overview["loaded"] > 0)]
    present = present[(present["rejected"] > 0) | (present["warned"] > 0)]
    if present.empty:
        return None
    present = present.iloc[::-1]
    loaded = present["loaded"].astype(float)
    fig = go.Figure()
    for column, name, color in (("rejected", N_("Rejected"), COLORS["bad"]),
                                ("warned", N_("Kept, with a warning"), COLORS["target"])):
        fig.add_bar(y=present["table"], x=present[column].astype(float) / loaded, orientation="h", name=tr(name),
                    marker_color=color, customdata=present[column].astype(float),
                    hovertemplate="%{y}: %{x:.2%} (%{customdata:,.0f})<extra></extra>")
    fig.update_yaxes(tickvals=list(present["table"]), ticktext=list(present["table_label"]))
    fig.update_xaxes(title=tr(N_("Share of the table's rows")), tickformat=".1%", rangemode="tozero")
    fig.update_layout(barmode="stack", height=max(300, 30 * len(present) + 140))
    return _layout(fig, tr(title))


def plot_completeness(frame: pd.DataFrame | None, *, top: int = 25,
                      title: str = N_("Share of empty values, by column")) -> go.Figure | None:
    """The `top` emptiest columns (with some empty values) as horizontal bars."""
    import plotly.graph_objects as go

    if frame is None:
        return None
    gaps = frame[frame["n_empty"] > 0].head(top).iloc[::-1]
    if gaps.empty:
        return None
    ids = gaps["table"] + "." + gaps["column"]
    fig = go.Figure()
    fig.add_bar(y=ids, x=gaps["empty_share"], orientation="h", marker_color=COLORS["comparison"],
                customdata=gaps["table_label"] + "." + gaps["column"],
                hovertemplate="%{customdata}: %{x:.1%}<extra></extra>")
    fig.update_yaxes(tickvals=list(ids), ticktext=list(gaps["table_label"] + "." + gaps["column"]))
    fig.update_xaxes(title=tr(N_("Share empty")), tickformat=".0%", range=[0, 1])
    fig.update_layout(showlegend=False, height=max(320, 22 * len(gaps) + 120))
    return _layout(fig, tr(title))


def plot_completeness_trend(trend: pd.DataFrame | None, *, top: int = 8,
                            title: str = N_("Share of empty values by month")) -> go.Figure | None:
    """The share of empty values per month of the `top` columns whose share moved the most (max − min) over the
    months shown: a column that started or stopped being filled in shows as a step."""
    import plotly.graph_objects as go

    if trend is None or trend.empty:
        return None
    ids = trend["table"] + "." + trend["column"]
    spread = trend.assign(id=ids).groupby("id")["empty_share"].agg(lambda v: v.max() - v.min())
    keep = spread[spread > 0].sort_values(ascending=False).head(top).index
    if not len(keep):
        return None
    fig = go.Figure()
    for key in sorted(keep):
        part = trend[ids == key]
        fig.add_scatter(x=part["month"], y=part["empty_share"], mode="lines+markers",
                        name=f"{part['table_label'].iloc[0]}.{part['column'].iloc[0]}")
    fig.update_yaxes(title=tr(N_("Share empty")), tickformat=".0%", rangemode="tozero")
    fig.update_xaxes(title=tr(N_("Month")), type="category")
    return _layout(fig, tr(title))


def plot_problem_trend(trend: pd.DataFrame | None, *, title: str = N_("Problem rows per table, run by run")
                       ) -> go.Figure | None:
    """Problem rows (rejected + warned) per table in each run's record, the tables with any problem."""
    import plotly.graph_objects as go

    if trend is None or trend.empty:
        return None
    with_problems = trend.groupby("table")["problem_rows"].transform("max") > 0
    trend = trend[with_problems]
    if trend.empty:
        return None
    fig = go.Figure()
    for table in sorted(trend["table"].unique()):
        part = trend[trend["table"] == table]
        fig.add_scatter(x=part["run"], y=part["problem_rows"].astype(float), mode="lines+markers",
                        name=part["table_label"].iloc[0])
    fig.update_yaxes(title=tr(N_("Problem rows")), rangemode="tozero")
    fig.update_xaxes(title=tr(N_("Run")), type="category")
    return _layout(fig, tr(title))
