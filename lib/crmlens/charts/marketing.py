"""Figures of the marketing analysis. They draw frames computed by `crmlens.metrics.marketing`; every text a reader
sees is in the language in use (`tr`); bars are keyed by the channel or campaign id."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from crmlens import i18n
from crmlens.charts import CATEGORICAL, COLORS, _layout, display_names, tr
from crmlens.i18n import N_

if TYPE_CHECKING:  # plotly loads with the first figure, not with the notebook's imports
    import plotly.graph_objects as go

#: Labels of the campaign funnel's steps and of the event types.
STEP_LABELS = {"exposed": N_("Exposed"), "engaged": N_("Engaged"), "lead": N_("Lead"),
               "opportunity": N_("Opportunity"), "won": N_("Won")}
EVENT_LABELS = {"impression": N_("Impressions"), "open": N_("Email opens"), "click": N_("Clicks"),
                "register": N_("Registrations"), "attend": N_("Attendances"), "download": N_("Downloads"),
                "visit": N_("Web visits")}
MODEL_LABELS = {"first_touch": N_("First touch"), "last_touch": N_("Last touch"), "linear": N_("Linear"),
                "u_shaped": N_("U-shaped"), "w_shaped": N_("W-shaped"), "time_decay": N_("Time decay"),
                "markov": N_("Markov chain"), "shapley": N_("Shapley value")}


def plot_roi(result: pd.DataFrame, *, title: str = N_("Return on marketing investment")) -> go.Figure:
    """ROI per channel (or campaign) of a `campaign_roi` frame as horizontal bars, the money-losing ones in the
    'bad' colour; rows without a cost are left out."""
    import plotly.graph_objects as go

    key = "campaign_id" if "campaign_id" in result else "channel"
    shown = result[result["roi"].notna()].sort_values(["roi", key], ascending=[True, True])
    labels = display_names(shown[key], shown["name"]) if "name" in shown else shown[key].astype(str)
    fig = go.Figure(go.Bar(
        x=shown["roi"], y=labels.astype(str).tolist(), orientation="h",
        marker_color=[COLORS["bad"] if v < 0 else COLORS["good"] for v in shown["roi"]],
        text=[i18n.format_number(v, "rate") for v in shown["roi"]], textposition="outside", cliponaxis=False,
        customdata=shown[key].astype(str), hovertemplate="%{customdata}: %{x:.1%}<extra></extra>"))
    fig.update_xaxes(title=tr(N_("ROI = (revenue − cost) ÷ cost")), tickformat=".0%", zeroline=True)
    fig.update_yaxes(type="category")
    return _layout(fig, title, height=max(300, 60 + 32 * len(shown)))


def plot_channel_mix(mix: pd.DataFrame, *, title: str = N_("Share of leads by channel")) -> go.Figure:
    """Stacked bars of each channel's share of the leads per period (a `channel_mix` frame)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, (channel, rows) in enumerate(mix.groupby("channel", sort=True)):
        fig.add_bar(x=rows["period"].astype(str), y=rows["lead_share"], name=str(channel),
                    marker_color=CATEGORICAL[i % len(CATEGORICAL)])
    fig.update_layout(barmode="stack")
    fig.update_yaxes(tickformat=".0%", range=[0, 1], title=tr(N_("Share of leads")))
    fig.update_xaxes(type="category")
    return _layout(fig, title)


def plot_source_paths(paths: pd.DataFrame, *, title: str = N_("How each source's leads move through the funnel")
                      ) -> go.Figure:
    """For each lead source (a `source_paths` frame), the rate of each funnel step as grouped bars."""
    import plotly.graph_objects as go

    steps = {"mql_rate": N_("Lead → MQL"), "mql_to_sql_rate": N_("MQL → SQL"),
             "sql_to_opportunity_rate": N_("SQL → opportunity"), "opportunity_to_won_rate": N_("Opportunity → won")}
    fig = go.Figure()
    for i, (column, name) in enumerate(steps.items()):
        fig.add_bar(x=paths["channel"].astype(str), y=paths[column], name=tr(name),
                    marker_color=CATEGORICAL[i % len(CATEGORICAL)])
    fig.update_layout(barmode="group")
    fig.update_yaxes(tickformat=".0%", title=tr(N_("Conversion rate of the step")))
    fig.update_xaxes(type="category")
    return _layout(fig, title)


def plot_engagement_trend(trend: pd.DataFrame, *, title: str = N_("Engagement with campaigns by month")
                          ) -> go.Figure:
    """One line per event type, or per channel (an `engagement_trend` frame of either kind)."""
    import plotly.graph_objects as go

    by_channel = "channel" in trend.columns
    key, value = ("channel", "n_engagements") if by_channel else ("event_type", "n_events")
    fig = go.Figure()
    for i, (kind, rows) in enumerate(trend.groupby(key, sort=True)):
        fig.add_scatter(x=rows["period"].astype(str), y=rows[value], mode="lines",
                        name=str(kind) if by_channel else tr(EVENT_LABELS.get(str(kind), str(kind))),
                        line={"color": CATEGORICAL[i % len(CATEGORICAL)]})
    fig.update_yaxes(title=tr(N_("Engagements") if by_channel else N_("Events")))
    fig.update_xaxes(type="category")
    return _layout(fig, title)


def plot_campaign_funnel(steps: pd.DataFrame, *, title: str = N_("Campaign funnels: from exposure to won deals")
                         ) -> go.Figure:
    """A funnel per campaign (a `funnel_steps` frame), side by side: each step's count and its share of the
    previous one."""
    import plotly.graph_objects as go

    fig = go.Figure()
    ids = list(dict.fromkeys(steps["campaign_id"]))
    names = display_names(pd.Series(ids), steps.drop_duplicates("campaign_id").set_index("campaign_id")
                          .reindex(ids)["name"].reset_index(drop=True))
    for i, (cid, name) in enumerate(zip(ids, names, strict=True)):
        rows = steps[steps["campaign_id"] == cid]
        fig.add_trace(go.Funnel(y=[tr(STEP_LABELS[s]) for s in rows["step"]], x=rows["count"], name=str(name),
                                textinfo="value+percent previous", marker={"color": CATEGORICAL[i % len(CATEGORICAL)]}))
    return _layout(fig, title, height=480)


def plot_attribution(models: pd.DataFrame, *, title: str = N_("Share of the credit by channel under each model")
                     ) -> go.Figure:
    """Grouped horizontal bars: each channel's share of the credit under every model of a `compare_models`
    frame."""
    import plotly.graph_objects as go

    key = models.columns[0]
    present = [m for m in MODEL_LABELS if m in models.columns]
    shown = models.iloc[::-1]
    fig = go.Figure()
    for i, model in enumerate(present):
        fig.add_bar(y=shown[key].astype(str), x=shown[model], name=tr(MODEL_LABELS[model]), orientation="h",
                    marker_color=CATEGORICAL[i % len(CATEGORICAL)])
    fig.update_layout(barmode="group")
    fig.update_xaxes(tickformat=".0%", title=tr(N_("Share of the credit")))
    fig.update_yaxes(type="category")
    return _layout(fig, title, height=max(420, 60 + 18 * len(present) * len(shown)))


def plot_marginal_roi(result: pd.DataFrame, *, title: str = N_("Return on the next unit of budget")) -> go.Figure:
    """Each channel's marginal ROI with its interval (points and error bars) beside its average ROI (hollow
    markers), from a `marginal_roi` frame."""
    import plotly.graph_objects as go

    shown = result.sort_values(["marginal_roi", "roi"], ascending=True, na_position="first")
    channels = shown["channel"].astype(str).tolist()
    fig = go.Figure()
    fig.add_scatter(x=shown["roi"], y=channels, mode="markers", name=tr(N_("Average ROI")),
                    marker={"symbol": "circle-open", "size": 11, "color": COLORS["comparison"]})
    fig.add_scatter(x=shown["marginal_roi"], y=channels, mode="markers", name=tr(N_("Marginal ROI")),
                    marker={"size": 11, "color": [COLORS["bad"] if v < 0 else COLORS["actual"]
                                                  for v in shown["marginal_roi"].fillna(0)]},
                    error_x={"type": "data", "symmetric": False,
                             "array": (shown["marginal_roi_high"] - shown["marginal_roi"]).tolist(),
                             "arrayminus": (shown["marginal_roi"] - shown["marginal_roi_low"]).tolist(),
                             "color": "#555"})
    fig.update_xaxes(tickformat=".0%", zeroline=True, title=tr(N_("Return per unit of money, after its cost")))
    fig.update_yaxes(type="category")
    return _layout(fig, title, height=max(320, 60 + 36 * len(shown)))
