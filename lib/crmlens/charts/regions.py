"""Figures of the regions & teams analysis. They draw frames computed by `crmlens.metrics.regions`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from crmlens.charts import CATEGORICAL, COLORS, _layout, plot_ranking, plot_treemap

if TYPE_CHECKING:  # plotly loads with the first figure, not with the notebook's imports
    import plotly.graph_objects as go

_PATH = ("region_id", "country", "province", "city")


def plot_geography_treemap(frame: pd.DataFrame, *, value: str = "bookings_amount", title: str = "Bookings by place",
                           color: str | None = None) -> go.Figure:
    """Treemap of a `geography` frame over its path columns (region → … → its level), sized by `value`;
    places with nothing to show (value ≤ 0) are left out, as a treemap cannot draw them."""
    import plotly.graph_objects as go

    path = [c for c in _PATH if c in frame.columns]
    shown = frame[frame[value] > 0]
    if shown.empty:
        return _layout(go.Figure(), f"{title} — nothing to show")
    return plot_treemap(shown, path=path, value=value, title=title, color=color)


def plot_leaderboard(frame: pd.DataFrame, *, metric: str, title: str, top: int = 15) -> go.Figure:
    """Horizontal bars of a `leaderboard` frame (its first `top` rows), labelled "#rank name (▲n / ▼n)"."""
    shown = frame.dropna(subset=["rank"]).head(top)
    arrows = shown["rank_change"].map(
        lambda c: "" if pd.isna(c) else (f" ▲{int(c)}" if c > 0 else (f" ▼{-int(c)}" if c < 0 else " =")))
    labels = "#" + shown["rank"].astype(str) + " " + shown["name"].astype(str) + arrows
    fmt = ".0%" if metric.endswith("_rate") else ",.0f"
    return plot_ranking(shown.assign(label=labels.to_numpy()), label="label", value=metric, title=title,
                        value_format=fmt)


def plot_activity_mix(frame: pd.DataFrame, *, label: str = "name", title: str = "Activities per rep, by type",
                      types: Sequence[str] | None = None) -> go.Figure:
    """Stacked bars of an `activities_per_rep` frame: one bar per group, one segment per activity type."""
    import plotly.graph_objects as go

    columns = [c for c in frame.columns if c.endswith("_per_rep") and c != "activities_per_rep"]
    if types is not None:
        columns = [f"{t}_per_rep" for t in types if f"{t}_per_rep" in frame.columns]
    fig = go.Figure()
    for i, col in enumerate(columns):
        fig.add_bar(x=frame[label].astype(str), y=frame[col], name=col.removesuffix("_per_rep"),
                    marker_color=CATEGORICAL[i % len(CATEGORICAL)])
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title="activities per rep")
    return _layout(fig, title)


def plot_forgotten(frame: pd.DataFrame, *, title: str = "Share of owned accounts forgotten", top: int = 15,
                   threshold: float = 0.5) -> go.Figure:
    """Bars of a `forgotten_by_rep` frame; reps above `threshold` are drawn in the 'bad' colour."""
    shown = frame.head(top)
    labels = shown["name"].astype(str) + " (" + shown["rep_id"].astype(str) + ")"
    flagged = labels[shown["forgotten_rate"] > threshold].tolist()
    return plot_ranking(shown.assign(label=labels.to_numpy()), label="label", value="forgotten_rate", title=title,
                        highlight=flagged, value_format=".0%")


def plot_market_share(frame: pd.DataFrame, *, title: str = "Bookings vs market size by region") -> go.Figure:
    """Bars of bookings and market size per region (a region-level `geography` frame), share as text."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_bar(x=frame["region_id"], y=frame["market_size_amount"], name="market size",
                marker_color=COLORS["comparison"])
    fig.add_bar(x=frame["region_id"], y=frame["bookings_amount"], name="our bookings", marker_color=COLORS["actual"],
                text=frame["market_share_rate"].map(lambda v: "" if pd.isna(v) else f"{v:.0%}"),
                textposition="outside")
    fig.update_layout(barmode="overlay")
    return _layout(fig, title)
