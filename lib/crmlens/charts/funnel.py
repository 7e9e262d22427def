"""Figures of the sales funnel analysis. They draw frames computed by `crmlens.metrics.funnel` (no aggregation
here: at most a reshape or a filter of rows to draw). Every text a reader sees (titles, axes, legends, hover
labels) is in the language in use (`crmlens.charts.tr`); groups are keyed by their id and labelled with their
name where the frame has one (`display_names`: regions, reps)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from crmlens.charts import CATEGORICAL, COLORS, _layout, display_names, plot_ranking, plot_trend, tr
from crmlens.i18n import N_, _
from crmlens.metrics.funnel import DIMENSION_WORDS, TRANSITION_LABELS, TRANSITIONS, Bottleneck

if TYPE_CHECKING:  # plotly loads with the first figure, not with the notebook's imports
    import plotly.graph_objects as go

_PERIOD_COLORS = [COLORS["actual"], COLORS["comparison"], "#cfd8e3"]


def _names(frame: pd.DataFrame, key: str) -> pd.Series:
    """The label of each row's `key` (an id): its name where the frame has a `name` column (`display_names`)."""
    return display_names(frame[key], frame["name"] if "name" in frame.columns else None).astype(str)


def _dimension(by: str) -> str:
    return _(DIMENSION_WORDS[by]) if by in DIMENSION_WORDS else by


def plot_lead_funnel(frame: pd.DataFrame, *, title: str = N_("Lead funnel")) -> go.Figure:
    """The lead funnel of one or several periods (a `lead_funnel` or `lead_funnel_periods` frame): one funnel
    per period, side by side, with each step's count and its share of the previous step."""
    import plotly.graph_objects as go

    fig = go.Figure()
    periods = frame["period"].drop_duplicates().tolist() if "period" in frame.columns else [None]
    hover = tr(N_("%{y}: %{x:,} leads (%{percentPrevious:.0%} of the previous step)")) + "<extra>%{fullData.name}"\
        "</extra>"
    for i, period in enumerate(periods):
        part = frame if period is None else frame[frame["period"] == period]
        fig.add_trace(go.Funnel(name=period or tr(N_("Leads")), y=part["step"], x=part["n_leads"],
                                textinfo="value+percent previous", hovertemplate=hover,
                                marker={"color": _PERIOD_COLORS[i % len(_PERIOD_COLORS)]}))
    return _layout(fig, title)


def plot_peer_ratios(frame: pd.DataFrame, *,
                     title: str = N_("Step rate vs peers (1 = the peers' median)")) -> go.Figure:
    """Heat map of a `compare_steps` frame: one row per group (keyed by id, labelled by name), one column per
    step, coloured by the ratio to the peers' median (red below 1, green above), with the group's rate written
    in each cell."""
    import plotly.graph_objects as go

    steps = [s for s in TRANSITIONS if s in set(frame["step"])]
    ratios = frame.pivot(index="group", columns="step", values="ratio").reindex(columns=steps)
    rates = frame.pivot(index="group", columns="step", values="rate").reindex(index=ratios.index, columns=steps)
    groups = frame.drop_duplicates("group").set_index("group", drop=False).reindex(ratios.index)
    text = rates.map(lambda v: "" if pd.isna(v) else f"{v:.0%}")
    fig = go.Figure(go.Heatmap(z=ratios.to_numpy(), x=[tr(TRANSITION_LABELS[s]) for s in steps],
                               y=_names(groups, "group").tolist(), text=text.to_numpy(), texttemplate="%{text}",
                               colorscale="RdYlGn", zmid=1.0, zmin=0.4, zmax=1.6,
                               colorbar={"title": tr(N_("× peers"))},
                               hovertemplate=tr(N_("%{y} %{x}: %{text} (%{z:.2f}× the peers' median)"))
                               + "<extra></extra>"))
    return _layout(fig, title, height=max(300, 40 * len(ratios) + 140))


def plot_step_comparison(frame: pd.DataFrame, bottleneck: Bottleneck | None = None, *, step: str | None = None,
                         title: str | None = None) -> go.Figure:
    """Bars of each group's rate for one step of a `compare_steps` frame (the bottleneck's step by default),
    one bar per group id (labelled by name), the bottleneck's group in red, and the peers' median as a mark."""
    import plotly.graph_objects as go

    step = step or (bottleneck.step if bottleneck is not None and bottleneck.kind == "conversion" else None) \
        or "sql_to_opportunity"
    part = frame[frame["step"] == step].sort_values("rate")
    flagged = bottleneck.group if bottleneck is not None and bottleneck.flagged else None
    colors = [COLORS["bad"] if g == flagged else COLORS["actual"] for g in part["group"]]
    labels = _names(part, "group").tolist()
    fig = go.Figure(go.Bar(x=labels, y=part["rate"], marker_color=colors, texttemplate="%{y:.0%}",
                           textposition="outside", name=tr(N_("Rate")),
                           hovertemplate="%{x}: %{y:.1%}<extra></extra>"))
    fig.add_scatter(x=labels, y=part["peer_rate"], mode="markers", name=tr(N_("Peers' median")),
                    hovertemplate=tr(N_("%{x}: peers' median %{y:.1%}")) + "<extra></extra>",
                    marker={"symbol": "line-ew-open", "size": 28, "color": COLORS["target"], "line": {"width": 3}})
    fig.update_yaxes(tickformat=".0%")
    dimension = str(frame["dimension"].iloc[0]) if len(frame) else ""
    label = TRANSITION_LABELS.get(step)
    default = _("{step} rate by {dimension}", step=_(label) if label else step, dimension=_dimension(dimension))
    return _layout(fig, title or default)


def plot_conversion_trend(frame: pd.DataFrame, *, title: str = N_("Conversion by lead cohort")) -> go.Figure:
    """Lines of the step rates of a `conversion_trend` frame (without `by`) per creation period."""
    series = {"mql_rate": TRANSITION_LABELS["lead_to_mql"], "mql_to_sql_rate": TRANSITION_LABELS["mql_to_sql"],
              "sql_to_opportunity_rate": TRANSITION_LABELS["sql_to_opportunity"],
              "opportunity_to_won_rate": TRANSITION_LABELS["opportunity_to_won"]}
    fig = plot_trend(frame, x="period", series={k: v for k, v in series.items() if frame[k].notna().any()},
                     title=title)
    fig.update_traces(hovertemplate="%{x}: %{y:.1%}")
    fig.update_yaxes(tickformat=".0%")
    return fig


def plot_rate_by_group_trend(frame: pd.DataFrame, *, by: str, rate: str, title: str) -> go.Figure:
    """One line per value of `by` (keyed by id, labelled by name) of a `conversion_trend(..., by=...)` or
    `win_rate_trend(..., by=...)` frame, for the column `rate`."""
    import plotly.graph_objects as go

    fig = go.Figure()
    labels = _names(frame, by)
    for i, (group, part) in enumerate(frame.groupby(by, sort=True)):
        fig.add_scatter(x=part["period"], y=part[rate], name=labels.loc[part.index[0]], mode="lines+markers",
                        hovertemplate="%{x}: %{y:.1%}", legendgroup=str(group),
                        line={"color": CATEGORICAL[i % len(CATEGORICAL)]})
    fig.update_yaxes(tickformat=".0%")
    return _layout(fig, title)


def plot_stage_days(frame: pd.DataFrame, *, title: str = N_("Median days in each stage")) -> go.Figure:
    """Bars of a `stage_days` frame in stage order: median days, with the number of stage exits on hover."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=frame["stage"], y=frame["median_days"], marker_color=COLORS["actual"],
                           customdata=frame["n_entries"], texttemplate=tr(N_("%{y:.0f} d")), textposition="outside",
                           hovertemplate=tr(N_("%{x}: %{y:.1f} days (median of %{customdata} exits)"))
                           + "<extra></extra>"))
    fig.update_yaxes(title=tr(N_("Days")))
    return _layout(fig, title)


def plot_opportunity_stages(frame: pd.DataFrame, *, title: str = N_("Opportunities by stage")) -> go.Figure:
    """Bars of an `opportunity_funnel` frame in the source's stage order; the last two (won, lost) coloured
    good / bad; the amount on hover."""
    import plotly.graph_objects as go

    n = len(frame)
    colors = [COLORS["actual"]] * max(n - 2, 0) + [COLORS["good"], COLORS["bad"]][: min(n, 2)]
    fig = go.Figure(go.Bar(x=frame["stage"], y=frame["n_opportunities"], marker_color=colors,
                           customdata=frame["amount"], texttemplate="%{y:,}", textposition="outside",
                           hovertemplate=tr(N_("%{x}: %{y:,} opportunities, amount %{customdata:,.0f}"))
                           + "<extra></extra>"))
    fig.update_yaxes(title=tr(N_("Opportunities")))
    return _layout(fig, title)


def plot_stage_reach(frame: pd.DataFrame, *, title: str = N_("How far new opportunities got")) -> go.Figure:
    """A funnel of a `stage_reach` frame: opportunities that reached each stage."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Funnel(y=frame["stage"], x=frame["n_reached"], textinfo="value+percent previous",
                              hovertemplate=tr(N_("%{y}: %{x:,} opportunities (%{percentPrevious:.0%} of the "
                                                  "previous stage)")) + "<extra></extra>",
                              marker={"color": COLORS["actual"]}))
    return _layout(fig, title)


def plot_loss_reasons(frame: pd.DataFrame, *, title: str = N_("Why deals were lost")) -> go.Figure:
    """Horizontal bars of a `loss_reasons` frame (lost deals per reason)."""
    fig = plot_ranking(frame, label="loss_reason", value="n_lost", title=title)
    fig.update_traces(hovertemplate=tr(N_("%{y}: %{x:,} lost deals")) + "<extra></extra>")
    return fig


def plot_win_rates(frame: pd.DataFrame, *, title: str | None = None, highlight: tuple[str, ...] = ()) -> go.Figure:
    """Horizontal bars of a `win_rate_by` frame (its first column is the grouping): one bar per value (keyed by
    id and labelled by name where the frame has names: regions, reps)."""
    by = frame.columns[0]
    shown = frame.dropna(subset=["win_rate"])
    default = _("Win rate by {dimension}", dimension=_dimension(by))
    named = "name" in shown.columns
    fig = plot_ranking(shown, label="name" if named else by, value="win_rate", title=title or default,
                       highlight=highlight, value_format=".0%", key=by if named else None)
    fig.update_traces(customdata=shown.sort_values("win_rate")["n_closed"],
                      hovertemplate=tr(N_("%{y}: win rate %{x:.0%} (%{customdata:,} closed)")) + "<extra></extra>")
    return fig


def plot_win_rate_trend(frame: pd.DataFrame, *, title: str = N_("Win rate by quarter of close")) -> go.Figure:
    """The win rate per close period of a `win_rate_trend` frame (without `by`)."""
    fig = plot_trend(frame, x="period", series={"win_rate": N_("Win rate")}, title=title)
    fig.update_traces(hovertemplate="%{x}: %{y:.1%}")
    fig.update_yaxes(tickformat=".0%")
    return fig
