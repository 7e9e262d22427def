"""Figures of the product analysis. They draw frames computed by `crmlens.metrics.products`; every text a reader
sees is in the language in use (`tr`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from crmlens import i18n
from crmlens.charts import CATEGORICAL, COLORS, _layout, tr
from crmlens.i18n import N_

if TYPE_CHECKING:  # plotly loads with the first figure, not with the notebook's imports
    import plotly.graph_objects as go


def _labels(result: pd.DataFrame, key: str) -> list[str]:
    if key == "product_id" and "name" in result:
        return result["name"].fillna(result[key]).astype(str).tolist()
    return result[key].astype(str).tolist()


def plot_contribution(result: pd.DataFrame, *, title: str = N_("Share of revenue and of margin")) -> go.Figure:
    """Per line (a `contribution` frame): its share of the revenue and of the margin side by side, the margin rate
    written over the margin bar; without costs, the revenue share alone."""
    import plotly.graph_objects as go

    key = result.attrs.get("by", result.columns[0])
    x = _labels(result, key)
    fig = go.Figure()
    fig.add_bar(x=x, y=result["revenue_share"], name=tr(N_("Share of revenue")), marker_color=COLORS["actual"],
                text=[i18n.format_number(v, "share") for v in result["revenue_share"]], textposition="outside")
    if result["margin_share"].notna().any():
        fig.add_bar(x=x, y=result["margin_share"], name=tr(N_("Share of margin")), marker_color=CATEGORICAL[1],
                    text=[tr(N_("margin rate")) + " " + i18n.format_number(v, "rate") for v in result["margin_rate"]],
                    textposition="outside")
    fig.update_layout(barmode="group")
    fig.update_yaxes(tickformat=".0%", title=tr(N_("Share")))
    fig.update_xaxes(type="category")
    return _layout(fig, title)


def plot_complaint_trend(trend: pd.DataFrame, *, title: str = N_("Complaints per quarter")) -> go.Figure:
    """One line per product line (or product, category) of a `complaint_trend` frame."""
    import plotly.graph_objects as go

    key = trend.attrs.get("by", trend.columns[1])
    fig = go.Figure()
    for i, (name, rows) in enumerate(trend.groupby(key, sort=True)):
        fig.add_scatter(x=rows["period"].astype(str), y=rows["n_tickets"], name=str(name), mode="lines+markers",
                        line={"color": CATEGORICAL[i % len(CATEGORICAL)]})
    fig.update_yaxes(title=tr(N_("Complaints")), rangemode="tozero")
    fig.update_xaxes(type="category")
    return _layout(fig, title)


def plot_affinity(result: pd.DataFrame, *, title: str = N_("What customers buy next: lift")) -> go.Figure:
    """A heat map of the lift of each (first purchase → bought next) pair of an `affinity` frame; the cell text
    is the lift and the confidence."""
    import plotly.graph_objects as go

    lift = result.pivot(index="first_line", columns="next_line", values="lift")
    conf = result.pivot(index="first_line", columns="next_line", values="confidence").reindex_like(lift)
    text = [[("" if pd.isna(v) else f"{i18n.format_number(v, 'number', digits=1)}×<br>"
              f"{i18n.format_number(c, 'rate')}") for v, c in zip(row_l, row_c, strict=True)]
            for row_l, row_c in zip(lift.to_numpy(), conf.to_numpy(), strict=True)]
    fig = go.Figure(go.Heatmap(z=lift.to_numpy(), x=[str(c) for c in lift.columns], y=[str(i) for i in lift.index],
                               text=text, texttemplate="%{text}", colorscale="Blues", zmin=0,
                               colorbar={"title": tr(N_("Lift"))}))
    fig.update_xaxes(title=tr(N_("Bought next")), type="category")
    fig.update_yaxes(title=tr(N_("First purchase")), type="category")
    return _layout(fig, title)


def plot_cycle(result: pd.DataFrame, *, title: str = N_("Median days to a won deal, and win rate")) -> go.Figure:
    """Per line or product (a `cycle_and_win_rate` frame): the median days from creation to a won deal as bars,
    the win rate written on each."""
    import plotly.graph_objects as go

    key = result.attrs.get("by", result.columns[0])
    fig = go.Figure(go.Bar(
        x=_labels(result, key), y=result["won_cycle_days"], marker_color=COLORS["actual"],
        text=[tr(N_("win rate")) + " " + i18n.format_number(v, "rate") for v in result["win_rate"]],
        textposition="outside"))
    fig.update_yaxes(title=tr(N_("Median days created → won")), rangemode="tozero")
    fig.update_xaxes(type="category")
    return _layout(fig, title)
