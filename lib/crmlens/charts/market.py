"""Figures of the market and competition analysis. They draw frames computed by `crmlens.metrics.market`; every
text a reader sees is in the language in use (`tr`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from crmlens.charts import CATEGORICAL, COLORS, _layout, tr
from crmlens.i18n import N_

if TYPE_CHECKING:  # plotly loads with the first figure, not with the notebook's imports
    import plotly.graph_objects as go


def plot_market_trend(trend: pd.DataFrame, *, title: str = N_("Market size and our share by period")) -> go.Figure:
    """A `market_trend` frame: without a split, the market size as bars and our share as a line (right axis);
    split by region or product line, one line of market size per value."""
    import plotly.graph_objects as go

    by = next((c for c in ("region_id", "product_line") if c in trend.columns), None)
    fig = go.Figure()
    if by is None:
        fig.add_bar(x=trend["period"].astype(str), y=trend["market_size_amount"], name=tr(N_("Market size")),
                    marker_color=COLORS["comparison"])
        if trend["market_share_rate"].notna().any():
            fig.add_scatter(x=trend["period"].astype(str), y=trend["market_share_rate"], name=tr(N_("Our share")),
                            mode="lines+markers", yaxis="y2", line={"color": COLORS["actual"]})
            fig.update_layout(yaxis2={"overlaying": "y", "side": "right", "tickformat": ".0%",
                                      "title": tr(N_("Our share")), "rangemode": "tozero"})
    else:
        for i, (key, rows) in enumerate(trend.groupby(by, sort=True)):
            fig.add_scatter(x=rows["period"].astype(str), y=rows["market_size_amount"], name=str(key),
                            mode="lines+markers", line={"color": CATEGORICAL[i % len(CATEGORICAL)]})
    fig.update_yaxes(title=tr(N_("Market size")), selector={"anchor": "x"})
    fig.update_xaxes(type="category")
    return _layout(fig, title)


def plot_growth_vs_market(growth: pd.DataFrame, *, title: str = N_("Market growth vs our growth (year on year)")
                          ) -> go.Figure:
    """Grouped bars of a `growth_vs_market` frame: the market's growth and ours per region (or line) and in total."""
    import plotly.graph_objects as go

    key = growth.columns[0]
    labels = [str(v) for v in growth[key]]  # the total row is labelled (translated) by the metric
    fig = go.Figure()
    fig.add_bar(x=labels, y=growth["market_growth_rate"], name=tr(N_("Market growth")),
                marker_color=COLORS["comparison"])
    fig.add_bar(x=labels, y=growth["our_growth_rate"], name=tr(N_("Our growth")), marker_color=COLORS["actual"])
    fig.update_layout(barmode="group")
    fig.update_yaxes(tickformat=".0%", title=tr(N_("Growth vs the year before")))
    fig.update_xaxes(type="category")
    return _layout(fig, title)


def _player_colors(shares: pd.DataFrame) -> list[tuple[bool, str]]:
    """(is us, colour) of each player of a `market_shares` frame in groupby order: us in the 'actual' colour, the
    competitors in the categorical colours after it."""
    out, rivals = [], 1
    for _player, rows in shares.groupby("player", sort=False):
        us = bool(rows["is_us"].iloc[0])
        out.append((us, COLORS["actual"] if us else CATEGORICAL[rivals % len(CATEGORICAL)]))
        rivals += 0 if us else 1
    return out


def plot_share_trend(shares: pd.DataFrame, *, title: str = N_("Market share by period: us and each competitor")
                     ) -> go.Figure:
    """One line per player (us in the 'actual' colour, thicker) of a `market_shares` frame per period."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for (player, rows), (us, color) in zip(shares.groupby("player", sort=False), _player_colors(shares), strict=True):
        fig.add_scatter(x=rows["period"].astype(str), y=rows["market_share_rate"], name=str(player),
                        mode="lines+markers", line={"color": color, "width": 4 if us else 2})
    fig.update_yaxes(tickformat=".0%", title=tr(N_("Market share")), rangemode="tozero")
    fig.update_xaxes(type="category")
    return _layout(fig, title)


def plot_shares_by(shares: pd.DataFrame, *, title: str = N_("Market share by region in the period")) -> go.Figure:
    """Grouped bars of a `market_shares` frame split by region or product line: each player's share per value."""
    import plotly.graph_objects as go

    by = shares.columns[0]
    fig = go.Figure()
    for (player, rows), (_us, color) in zip(shares.groupby("player", sort=False), _player_colors(shares), strict=True):
        fig.add_bar(x=rows[by].astype(str), y=rows["market_share_rate"], name=str(player), marker_color=color)
    fig.update_layout(barmode="group")
    fig.update_yaxes(tickformat=".0%", title=tr(N_("Market share")))
    fig.update_xaxes(type="category")
    return _layout(fig, title)


def plot_head_to_head(result: pd.DataFrame, *, title: str = N_("Our win rate against each competitor, by region")
                      ) -> go.Figure:
    """A heat map of a `head_to_head` frame split by a dimension: our win rate per competitor (rows) and value
    (columns), the closed deals in the hover."""
    import plotly.graph_objects as go

    by = result.columns[1]
    label = "name" if "name" in result.columns else by
    wide = result.pivot_table(index="competitor", columns=label, values="win_rate", aggfunc="first")
    counts = result.pivot_table(index="competitor", columns=label, values="n_closed", aggfunc="first")
    fig = go.Figure(go.Heatmap(
        z=wide.to_numpy(), x=[str(c) for c in wide.columns], y=[str(i) for i in wide.index],
        customdata=counts.reindex_like(wide).to_numpy(), colorscale="RdYlGn", zmin=0, zmax=max(0.6, float(
            wide.max().max() if wide.size else 0.6)), texttemplate="%{z:.0%}",
        hovertemplate=tr(N_("%{y} · %{x}: win rate %{z:.0%} (%{customdata:,} closed)")) + "<extra></extra>",
        colorbar={"tickformat": ".0%"}))
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category", autorange="reversed")
    return _layout(fig, title, height=max(300, 120 + 40 * len(wide)))


def plot_head_to_head_trend(trend: pd.DataFrame, *, title: str = N_("Win rate against each competitor by quarter")
                            ) -> go.Figure:
    """One line per competitor of a `win_rate_trend` frame split by competitor."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, (name, rows) in enumerate(trend.groupby("competitor", sort=True)):
        fig.add_scatter(x=rows["period"].astype(str), y=rows["win_rate"], name=str(name), mode="lines+markers",
                        customdata=rows["n_closed"], line={"color": CATEGORICAL[i % len(CATEGORICAL)]},
                        hovertemplate="%{x}: %{y:.0%} (%{customdata:,})<extra></extra>")
    fig.update_yaxes(tickformat=".0%", title=tr(N_("Win rate")), rangemode="tozero")
    fig.update_xaxes(type="category")
    return _layout(fig, title)
