"""Figures of the sales performance analysis. They draw frames computed by `crmlens.metrics.performance`.

Bars and lines are keyed by id (rep, team, region, product...) and labelled with `display_names`: two reps
called "David Huang" stay two bars, "David Huang (R0038)" and "David Huang (R0062)". Every text a reader sees
(titles, axis titles, legend names, annotations, hover texts) is in the language in use (`tr`, `_`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from crmlens import i18n
from crmlens.charts import CATEGORICAL, COLORS, _layout, display_names, plot_trend, tr
from crmlens.i18n import N_, _, n_

if TYPE_CHECKING:  # plotly loads with the first figure, not with the notebook's imports
    import plotly.graph_objects as go


def _segment_key(frame: pd.DataFrame, key: str | None) -> str:
    """The id column of a per-segment result: `key`, else the column just before ``name`` (the segment key of
    `deal_size`, `sales_cycle` and their trends)."""
    if key is not None:
        return key
    columns = list(frame.columns)
    return columns[columns.index("name") - 1] if "name" in columns and columns.index("name") > 0 else "name"


def _labels(frame: pd.DataFrame, key: str) -> pd.Series:
    """Per-row labels keyed by `key`: the name, with the id added where names clash (`display_names`)."""
    names = frame["name"] if "name" in frame and key != "name" else None
    return display_names(frame[key], names).astype(str)


def plot_attainment(frame: pd.DataFrame, *, title: str = N_("Target attainment")) -> go.Figure:
    """Horizontal bars of `attainment_rate`, one per `key` (a `target_attainment` result), labelled with its
    name (and id where names clash): green when on track, red when behind, with a dashed line at the share of
    the period elapsed."""
    import plotly.graph_objects as go

    rated = frame.dropna(subset=["attainment_rate"]).sort_values(["attainment_rate", "key"])
    labels = _labels(rated, "key")
    on_track = rated["is_on_track"].fillna(False).astype(bool)
    colors = [COLORS["good"] if ok else COLORS["bad"] for ok in on_track]
    hover = [_("{name}: bookings {bookings} of a {target} target", name=label,
               bookings=i18n.format_number(b, "amount"), target=i18n.format_number(t, "amount"))
             for label, b, t in zip(labels, rated["bookings_amount"], rated["target_amount"], strict=True)]
    fig = go.Figure(go.Bar(x=rated["attainment_rate"], y=labels.tolist(), orientation="h",
                           marker_color=colors, texttemplate="%{x:.0%}", textposition="outside",
                           hovertext=hover, hoverinfo="text", name=tr(N_("Target attainment"))))
    elapsed = rated["elapsed_rate"].dropna()
    if len(elapsed):
        share = i18n.format_number(float(elapsed.iloc[0]), "rate", digits=0)
        fig.add_vline(x=float(elapsed.iloc[0]), line_dash="dash", line_color=COLORS["target"],
                      annotation_text=_("{share} of the period elapsed", share=share), annotation_position="top")
    fig.update_xaxes(tickformat=".0%", title=tr(N_("Bookings ÷ target")))
    fig.update_yaxes(type="category")
    return _layout(fig, title, height=max(300, 28 * len(rated) + 140))


def plot_bookings_trend(frame: pd.DataFrame, *, title: str = N_("Bookings")) -> go.Figure:
    """Bookings per bucket (bars) against target and last year (a `bookings_trend` result); series without any
    value are left out."""
    series = {"bookings_amount": N_("Bookings"), "target_amount": N_("Target"),
              "last_year_amount": N_("Same period last year")}
    shown = {col: name for col, name in series.items() if frame[col].notna().any()}
    return plot_trend(frame, x="period", series=shown, title=title, y_title=N_("Amount"),
                      kinds={"bookings_amount": "bar", "last_year_amount": "dash"})


def plot_segment_lines(frame: pd.DataFrame, *, value: str, title: str, x: str = "period", key: str | None = None,
                       y_title: str = "") -> go.Figure:
    """One line per segment over time, from a long frame (`deal_size_trend`, `sales_cycle_trend`): keyed by the
    segment's id column (`key`; default: the column before ``name``), named by `display_names`."""
    import plotly.graph_objects as go

    key = _segment_key(frame, key)
    labelled = frame.assign(_label=_labels(frame, key).to_numpy())
    fig = go.Figure()
    order = labelled.drop_duplicates(key).sort_values(["_label", key])[key].tolist()
    for i, segment in enumerate(order):
        rows = labelled.loc[labelled[key] == segment]
        fig.add_scatter(x=rows[x], y=rows[value], name=str(rows["_label"].iloc[0]), mode="lines+markers",
                        line={"color": CATEGORICAL[i % len(CATEGORICAL)]})
    fig.update_yaxes(title=tr(y_title))
    fig.update_xaxes(type="category", categoryorder="category ascending")
    return _layout(fig, title)


def plot_cycle(frame: pd.DataFrame, *, title: str = N_("Sales cycle (days from creation to win)"),
               key: str | None = None) -> go.Figure:
    """Median sales cycle per segment with its middle half (p25–p75) as an error bar (a `sales_cycle` result),
    one bar per segment id (`key`; default: the column before ``name``)."""
    import plotly.graph_objects as go

    ordered = frame.sort_values(["median_cycle_days", _segment_key(frame, key)])
    labels = _labels(ordered, _segment_key(ordered, key))
    hover = [_("{name}: median {median}, mean {mean} ({deals})", name=label,
               median=i18n.format_number(m, "days", digits=0), mean=i18n.format_number(a, "days", digits=0),
               deals=n_("{n} deal", "{n} deals", int(n)))
             for label, m, a, n in zip(labels, ordered["median_cycle_days"], ordered["mean_cycle_days"],
                                      ordered["n_won"], strict=True)]
    fig = go.Figure(go.Bar(
        x=ordered["median_cycle_days"], y=labels.tolist(), orientation="h",
        marker_color=COLORS["actual"], name=tr(N_("Median sales cycle")),
        error_x={"type": "data", "symmetric": False,
                 "array": ordered["p75_cycle_days"] - ordered["median_cycle_days"],
                 "arrayminus": ordered["median_cycle_days"] - ordered["p25_cycle_days"], "color": COLORS["neutral"]},
        hovertext=hover, hoverinfo="text"))
    fig.update_xaxes(title=tr(N_("Days")))
    fig.update_yaxes(type="category")
    return _layout(fig, title, height=max(300, 28 * len(ordered) + 140))


def plot_collections(frame: pd.DataFrame, *, title: str = N_("Contracts, invoices and payments")) -> go.Figure:
    """Contract, invoiced and paid amounts per bucket (bars) and the collection rate (line, right axis), from
    a `collections_trend` result; series the source does not record (all missing) are left out."""
    import plotly.graph_objects as go

    fig = go.Figure()
    bars = {"contract_amount": (N_("Signed"), COLORS["actual"]),
            "invoiced_amount": (N_("Invoiced"), COLORS["comparison"]),
            "payments_amount": (N_("Collected"), COLORS["good"])}
    for col, (name, color) in bars.items():
        if frame[col].notna().any():
            fig.add_bar(x=frame["period"], y=frame[col], name=tr(name), marker_color=color)
    if frame["collection_rate"].notna().any():
        fig.add_scatter(x=frame["period"], y=frame["collection_rate"], name=tr(N_("Collection rate")), yaxis="y2",
                        mode="lines+markers", line={"color": COLORS["target"]})
    fig.update_layout(barmode="group", yaxis={"title": tr(N_("Amount"))},
                      yaxis2={"title": tr(N_("Collected ÷ invoiced")), "overlaying": "y", "side": "right",
                              "tickformat": ".0%", "showgrid": False})
    return _layout(fig, title)
