"""Figures of the sales funnel analysis. They draw frames computed by `crmlens.metrics.funnel` (no aggregation
here: at most a reshape or a filter of rows to draw)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from crmlens.charts import CATEGORICAL, COLORS, _layout, plot_ranking, plot_trend
from crmlens.metrics.funnel import DIMENSION_WORDS, TRANSITION_LABELS, TRANSITIONS, Bottleneck

if TYPE_CHECKING:  # plotly loads with the first figure, not with the notebook's imports
    import plotly.graph_objects as go

_PERIOD_COLORS = [COLORS["actual"], COLORS["comparison"], "#cfd8e3"]


def plot_lead_funnel(frame: pd.DataFrame, *, title: str = "Lead funnel") -> go.Figure:
    """The lead funnel of one or several periods (a `lead_funnel` or `lead_funnel_periods` frame): one funnel
    per period, side by side, with each step's count and its share of the previous step."""
    import plotly.graph_objects as go

    fig = go.Figure()
    periods = frame["period"].drop_duplicates().tolist() if "period" in frame.columns else [None]
    for i, period in enumerate(periods):
        part = frame if period is None else frame[frame["period"] == period]
        fig.add_trace(go.Funnel(name=period or "leads", y=part["step"], x=part["n_leads"],
                                textinfo="value+percent previous",
                                marker={"color": _PERIOD_COLORS[i % len(_PERIOD_COLORS)]}))
    return _layout(fig, title)


def plot_peer_ratios(frame: pd.DataFrame, *, title: str = "Step rate vs peers (1 = the peers' median)") -> go.Figure:
    """Heat map of a `compare_steps` frame: one row per group, one column per step, coloured by the ratio to
    the peers' median (red below 1, green above), with the group's rate written in each cell."""
    import plotly.graph_objects as go

    steps = [s for s in TRANSITIONS if s in set(frame["step"])]
    ratios = frame.pivot(index="group", columns="step", values="ratio").reindex(columns=steps)
    rates = frame.pivot(index="group", columns="step", values="rate").reindex(index=ratios.index, columns=steps)
    text = rates.map(lambda v: "" if pd.isna(v) else f"{v:.0%}")
    fig = go.Figure(go.Heatmap(z=ratios.to_numpy(), x=[TRANSITION_LABELS[s] for s in steps],
                               y=ratios.index.astype(str).tolist(), text=text.to_numpy(), texttemplate="%{text}",
                               colorscale="RdYlGn", zmid=1.0, zmin=0.4, zmax=1.6,
                               colorbar={"title": "× peers"},
                               hovertemplate="%{y} %{x}: %{text} (%{z:.2f}× peers)<extra></extra>"))
    return _layout(fig, title, height=max(300, 40 * len(ratios) + 140))


def plot_step_comparison(frame: pd.DataFrame, bottleneck: Bottleneck | None = None, *, step: str | None = None,
                         title: str | None = None) -> go.Figure:
    """Bars of each group's rate for one step of a `compare_steps` frame (the bottleneck's step by default),
    the bottleneck's group in red, and the peers' median as a dashed line."""
    import plotly.graph_objects as go

    step = step or (bottleneck.step if bottleneck is not None and bottleneck.kind == "conversion" else None) \
        or "sql_to_opportunity"
    part = frame[frame["step"] == step].sort_values("rate")
    flagged = bottleneck.group if bottleneck is not None and bottleneck.flagged else None
    colors = [COLORS["bad"] if g == flagged else COLORS["actual"] for g in part["group"]]
    fig = go.Figure(go.Bar(x=part["group"].astype(str), y=part["rate"], marker_color=colors,
                           texttemplate="%{y:.0%}", textposition="outside", name="rate"))
    fig.add_scatter(x=part["group"].astype(str), y=part["peer_rate"], mode="markers", name="peers' median",
                    marker={"symbol": "line-ew-open", "size": 28, "color": COLORS["target"], "line": {"width": 3}})
    fig.update_yaxes(tickformat=".0%")
    dimension = str(frame["dimension"].iloc[0]) if len(frame) else ""
    default = f"{TRANSITION_LABELS.get(step, step)} rate by {DIMENSION_WORDS.get(dimension, dimension)}"
    return _layout(fig, title or default)


def plot_conversion_trend(frame: pd.DataFrame, *, title: str = "Conversion by lead cohort") -> go.Figure:
    """Lines of the step rates of a `conversion_trend` frame (without `by`) per creation period."""
    series = {"mql_rate": "lead→MQL", "mql_to_sql_rate": "MQL→SQL", "sql_to_opportunity_rate": "SQL→opportunity",
              "opportunity_to_won_rate": "opportunity→won"}
    fig = plot_trend(frame, x="period", series={k: v for k, v in series.items() if frame[k].notna().any()},
                     title=title)
    fig.update_yaxes(tickformat=".0%")
    return fig


def plot_rate_by_group_trend(frame: pd.DataFrame, *, by: str, rate: str, title: str) -> go.Figure:
    """One line per value of `by` of a `conversion_trend(..., by=...)` or `win_rate_trend(..., by=...)`
    frame, for the column `rate`."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, (group, part) in enumerate(frame.groupby(by, sort=True)):
        fig.add_scatter(x=part["period"], y=part[rate], name=str(group), mode="lines+markers",
                        line={"color": CATEGORICAL[i % len(CATEGORICAL)]})
    fig.update_yaxes(tickformat=".0%")
    return _layout(fig, title)


def plot_stage_days(frame: pd.DataFrame, *, title: str = "Median days in each stage") -> go.Figure:
    """Bars of a `stage_days` frame in stage order: median days, with the number of stage exits on hover."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=frame["stage"], y=frame["median_days"], marker_color=COLORS["actual"],
                           customdata=frame["n_entries"], texttemplate="%{y:.0f} d", textposition="outside",
                           hovertemplate="%{x}: %{y:.1f} days (median of %{customdata} exits)<extra></extra>"))
    fig.update_yaxes(title="days")
    return _layout(fig, title)


def plot_opportunity_stages(frame: pd.DataFrame, *, title: str = "Opportunities by stage") -> go.Figure:
    """Bars of an `opportunity_funnel` frame in the source's stage order; the last two (won, lost) coloured
    good / bad; the amount on hover."""
    import plotly.graph_objects as go

    n = len(frame)
    colors = [COLORS["actual"]] * max(n - 2, 0) + [COLORS["good"], COLORS["bad"]][: min(n, 2)]
    fig = go.Figure(go.Bar(x=frame["stage"], y=frame["n_opportunities"], marker_color=colors,
                           customdata=frame["amount"], texttemplate="%{y:,}", textposition="outside",
                           hovertemplate="%{x}: %{y:,} opportunities, amount %{customdata:,.0f}<extra></extra>"))
    fig.update_yaxes(title="opportunities")
    return _layout(fig, title)


def plot_stage_reach(frame: pd.DataFrame, *, title: str = "How far new opportunities got") -> go.Figure:
    """A funnel of a `stage_reach` frame: opportunities that reached each stage."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Funnel(y=frame["stage"], x=frame["n_reached"], textinfo="value+percent previous",
                              marker={"color": COLORS["actual"]}))
    return _layout(fig, title)


def plot_loss_reasons(frame: pd.DataFrame, *, title: str = "Why deals were lost") -> go.Figure:
    """Horizontal bars of a `loss_reasons` frame (lost deals per reason)."""
    return plot_ranking(frame, label="loss_reason", value="n_lost", title=title)


def plot_win_rates(frame: pd.DataFrame, *, title: str | None = None, highlight: tuple[str, ...] = ()) -> go.Figure:
    """Horizontal bars of a `win_rate_by` frame (its first column is the grouping)."""
    by = frame.columns[0]
    shown = frame.dropna(subset=["win_rate"])
    default = f"Win rate by {DIMENSION_WORDS.get(by, by)}"
    return plot_ranking(shown, label=by, value="win_rate", title=title or default, highlight=highlight,
                        value_format=".0%")
