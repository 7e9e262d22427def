"""Figures of customer engagement (`crmlens.metrics.engagement`); every text a reader sees is in the language in
use (`tr`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from crmlens import i18n
from crmlens.charts import CATEGORICAL, COLORS, _layout, tr
from crmlens.i18n import N_

if TYPE_CHECKING:  # plotly loads with the first figure, not with the notebook's imports
    import plotly.graph_objects as go


def plot_engagement_trend(trend: pd.DataFrame, *, title: str = N_("Customers' marketing engagement by month")
                          ) -> go.Figure:
    """Stacked bars of an `engagement.trend` frame: the customers' events of each kind per period."""
    import plotly.graph_objects as go

    from crmlens.metrics.engagement import EVENT_LABELS, EVENTS

    fig = go.Figure()
    for i, kind in enumerate(EVENTS):
        fig.add_bar(x=trend["period"], y=trend[f"n_{kind}"], name=tr(EVENT_LABELS[kind]),
                    marker_color=CATEGORICAL[i % len(CATEGORICAL)])
    fig.update_layout(barmode="stack")
    fig.update_xaxes(type="category")
    fig.update_yaxes(title=tr(N_("Events")))
    return _layout(fig, title)


def plot_engaged_share(result: pd.DataFrame, *, title: str = N_("Share of active customers engaged, by segment")
                       ) -> go.Figure:
    """Bars of a per-segment `engagement.by_segment` frame: the share of each segment's active customers who
    engaged with marketing in the period; segments below the median in the 'bad' colour."""
    import plotly.graph_objects as go

    shown = result.sort_values(["engaged_share", "segment"])
    median = float(shown["engaged_share"].median()) if len(shown) else 0.0
    fig = go.Figure(go.Bar(
        x=shown["engaged_share"], y=shown["segment"].astype(str), orientation="h",
        marker_color=[COLORS["bad"] if v < median else COLORS["actual"] for v in shown["engaged_share"]],
        text=[i18n.format_number(v, "share", digits=0) for v in shown["engaged_share"]], textposition="outside",
        cliponaxis=False))
    fig.update_xaxes(tickformat=".0%", title=tr(N_("Share engaged")))
    fig.update_yaxes(type="category")
    return _layout(fig, title, height=max(300, 60 + 28 * len(shown)))
