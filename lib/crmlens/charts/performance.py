"""Figures of the sales performance analysis. They draw frames computed by `crmlens.metrics.performance`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from crmlens.charts import CATEGORICAL, COLORS, _layout, plot_trend

if TYPE_CHECKING:  # plotly loads with the first figure, not with the notebook's imports
    import plotly.graph_objects as go


def plot_attainment(frame: pd.DataFrame, *, title: str = "Target attainment") -> go.Figure:
    """Horizontal bars of `attainment_rate` per `name` (a `target_attainment` result): green when on track,
    red when behind, with a dashed line at the share of the period elapsed."""
    import plotly.graph_objects as go

    rated = frame.dropna(subset=["attainment_rate"]).sort_values("attainment_rate")
    on_track = rated["is_on_track"].fillna(False).astype(bool)
    colors = [COLORS["good"] if ok else COLORS["bad"] for ok in on_track]
    hover = [f"bookings {b:,.0f} of {t:,.0f}" for b, t in zip(rated["bookings_amount"], rated["target_amount"],
                                                             strict=True)]
    fig = go.Figure(go.Bar(x=rated["attainment_rate"], y=rated["name"].astype(str), orientation="h",
                           marker_color=colors, texttemplate="%{x:.0%}", textposition="outside",
                           hovertext=hover, name="attainment"))
    elapsed = rated["elapsed_rate"].dropna()
    if len(elapsed):
        fig.add_vline(x=float(elapsed.iloc[0]), line_dash="dash", line_color=COLORS["target"],
                      annotation_text=f"{elapsed.iloc[0]:.0%} of period elapsed", annotation_position="top")
    fig.update_xaxes(tickformat=".0%", title="bookings ÷ target")
    return _layout(fig, title, height=max(300, 28 * len(rated) + 140))


def plot_bookings_trend(frame: pd.DataFrame, *, title: str = "Bookings") -> go.Figure:
    """Bookings per bucket (bars) against target and last year (a `bookings_trend` result); series without any
    value are left out."""
    series = {"bookings_amount": "bookings", "target_amount": "target", "last_year_amount": "same period last year"}
    shown = {col: name for col, name in series.items() if frame[col].notna().any()}
    return plot_trend(frame, x="period", series=shown, title=title, y_title="amount",
                      kinds={"bookings_amount": "bar", "last_year_amount": "dash"})


def plot_segment_lines(frame: pd.DataFrame, *, value: str, title: str, x: str = "period", group: str = "name",
                       y_title: str = "") -> go.Figure:
    """One line per segment over time, from a long frame (`deal_size_trend`, `sales_cycle_trend`)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, (name, rows) in enumerate(frame.groupby(group, sort=True)):
        fig.add_scatter(x=rows[x], y=rows[value], name=str(name), mode="lines+markers",
                        line={"color": CATEGORICAL[i % len(CATEGORICAL)]})
    fig.update_yaxes(title=y_title)
    fig.update_xaxes(type="category", categoryorder="category ascending")
    return _layout(fig, title)


def plot_cycle(frame: pd.DataFrame, *, title: str = "Sales cycle (days from creation to win)") -> go.Figure:
    """Median sales cycle per segment with its middle half (p25–p75) as an error bar (a `sales_cycle` result)."""
    import plotly.graph_objects as go

    ordered = frame.sort_values("median_cycle_days")
    fig = go.Figure(go.Bar(
        x=ordered["median_cycle_days"], y=ordered["name"].astype(str), orientation="h",
        marker_color=COLORS["actual"], name="median",
        error_x={"type": "data", "symmetric": False,
                 "array": ordered["p75_cycle_days"] - ordered["median_cycle_days"],
                 "arrayminus": ordered["median_cycle_days"] - ordered["p25_cycle_days"], "color": COLORS["neutral"]},
        customdata=ordered[["n_won", "mean_cycle_days"]].to_numpy(),
        hovertemplate="%{y}: median %{x:.0f} days, mean %{customdata[1]:.0f} (%{customdata[0]} deals)<extra></extra>"))
    fig.update_xaxes(title="days")
    return _layout(fig, title, height=max(300, 28 * len(ordered) + 140))


def plot_collections(frame: pd.DataFrame, *, title: str = "Contracts, invoices and payments") -> go.Figure:
    """Contract, invoiced and paid amounts per bucket (bars) and the collection rate (line, right axis), from
    a `collections_trend` result."""
    import plotly.graph_objects as go

    fig = go.Figure()
    bars = {"contract_amount": ("signed", COLORS["actual"]), "invoiced_amount": ("invoiced", COLORS["comparison"]),
            "payments_amount": ("collected", COLORS["good"])}
    for col, (name, color) in bars.items():
        if frame[col].notna().any():
            fig.add_bar(x=frame["period"], y=frame[col], name=name, marker_color=color)
    fig.add_scatter(x=frame["period"], y=frame["collection_rate"], name="collection rate", yaxis="y2",
                    mode="lines+markers", line={"color": COLORS["target"]})
    fig.update_layout(barmode="group", yaxis={"title": "amount"},
                      yaxis2={"title": "collected ÷ invoiced", "overlaying": "y", "side": "right",
                              "tickformat": ".0%", "showgrid": False})
    return _layout(fig, title)
