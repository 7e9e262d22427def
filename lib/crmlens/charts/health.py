"""Figures of the customer-health analysis. They draw frames computed by `crmlens.metrics.health`; every text a
reader sees is in the language in use (`tr`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from crmlens import i18n
from crmlens.charts import COLORS, _layout, tr
from crmlens.i18n import N_

if TYPE_CHECKING:  # plotly loads with the first figure, not with the notebook's imports
    import plotly.graph_objects as go


def plot_satisfaction_trend(trend: pd.DataFrame, *, title: str = N_("CSAT and NPS by period")) -> go.Figure:
    """NPS as bars (left axis, points) and mean CSAT as a line (right axis, 1–5) per period of a
    `satisfaction_trend` frame."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_bar(x=trend["period"], y=trend["nps"], name=tr(N_("NPS")),
                marker_color=[COLORS["bad"] if v < 0 else COLORS["comparison"] for v in trend["nps"].fillna(0)],
                text=[i18n.format_number(v, "score", signed=True, digits=0) for v in trend["nps"]],
                textposition="outside", cliponaxis=False)
    fig.add_scatter(x=trend["period"], y=trend["csat_mean"], name=tr(N_("CSAT (1–5)")), yaxis="y2",
                    mode="lines+markers", line={"color": COLORS["actual"]})
    fig.update_layout(yaxis={"title": tr(N_("NPS"))},
                      yaxis2={"title": tr(N_("CSAT (1–5)")), "overlaying": "y", "side": "right", "range": [1, 5]})
    fig.update_xaxes(type="category")
    return _layout(fig, title)


def plot_nps_mix(result: pd.DataFrame, *, title: str = N_("Promoters, passives and detractors")) -> go.Figure:
    """Stacked horizontal bars of a per-group `satisfaction` frame: each group's shares of detractors, passives
    and promoters (groups keyed by their id/label as the frame has it)."""
    import plotly.graph_objects as go

    shown = result.sort_values(["nps", "segment"], ascending=[True, True])
    fig = go.Figure()
    for column, name, color in (("detractors_share", N_("Detractors"), COLORS["bad"]),
                                ("passives_share", N_("Passives"), COLORS["neutral"]),
                                ("promoters_share", N_("Promoters"), COLORS["good"])):
        fig.add_bar(y=shown["segment"].astype(str), x=shown[column], name=tr(name), orientation="h",
                    marker_color=color, text=[i18n.format_number(v, "share", digits=0) for v in shown[column]],
                    textposition="inside")
    fig.update_layout(barmode="stack")
    fig.update_xaxes(tickformat=".0%", range=[0, 1])
    fig.update_yaxes(type="category")
    return _layout(fig, title, height=max(300, 60 + 34 * len(shown)))


def plot_drivers(drivers: pd.DataFrame, *, title: str = N_("What moves CSAT: effect in points, 95% CI")
                 ) -> go.Figure:
    """Each factor's effect on CSAT (points, other factors held constant) with its 95 % confidence interval, from a
    `csat_drivers` frame; factors whose interval lies below zero in the 'bad' colour."""
    import plotly.graph_objects as go

    from crmlens.metrics.health import factor_label

    shown = drivers.sort_values("csat_effect", ascending=False)
    labels = [factor_label(str(f)) for f in shown["factor"]]
    colors = [COLORS["bad"] if hi < 0 else COLORS["good"] if lo > 0 else COLORS["neutral"]
              for lo, hi in zip(shown["csat_effect_low"], shown["csat_effect_high"], strict=True)]
    fig = go.Figure(go.Bar(
        x=shown["csat_effect"], y=labels, orientation="h", marker_color=colors,
        error_x={"type": "data", "symmetric": False, "array": shown["csat_effect_high"] - shown["csat_effect"],
                 "arrayminus": shown["csat_effect"] - shown["csat_effect_low"], "color": "#555"},
        text=[i18n.format_number(v, "score", signed=True) for v in shown["csat_effect"]], textposition="outside",
        cliponaxis=False))
    fig.update_xaxes(title=tr(N_("Effect on CSAT (points)")), zeroline=True)
    fig.update_yaxes(type="category")
    return _layout(fig, title, height=max(320, 60 + 30 * len(shown)))


def plot_ticket_trend(trend: pd.DataFrame, *, title: str = N_("Tickets opened, resolved and open")) -> go.Figure:
    """Bars of tickets opened and resolved per period and a line of the open tickets (backlog) at each period's
    end, from a `ticket_trend` frame."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_bar(x=trend["period"], y=trend["n_opened"], name=tr(N_("Tickets opened")),
                marker_color=COLORS["comparison"])
    fig.add_bar(x=trend["period"], y=trend["n_resolved"], name=tr(N_("Tickets resolved")),
                marker_color=COLORS["actual"])
    fig.add_scatter(x=trend["period"], y=trend["n_backlog"], name=tr(N_("Open tickets (backlog)")),
                    mode="lines+markers", line={"color": COLORS["target"]})
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category")
    fig.update_yaxes(title=tr(N_("Tickets")))
    return _layout(fig, title)


def plot_calibration(model: Any, *, title: str = N_("Is the churn risk right? Predicted vs observed")
                     ) -> go.Figure | None:
    """The model's calibration curve on its test customers: mean predicted risk vs the churn rate observed, per
    group of customers with similar risk; the diagonal is a perfect calibration."""
    import plotly.graph_objects as go

    if model is None or not model.ok or model.calibration.empty:
        return None
    cal = model.calibration
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name=tr(N_("Perfect calibration")),
                    line={"color": COLORS["neutral"], "dash": "dash"})
    fig.add_scatter(x=cal["predicted"], y=cal["observed"], mode="lines+markers", name=tr(N_("The model")),
                    line={"color": COLORS["actual"]})
    fig.update_xaxes(title=tr(N_("Predicted churn rate")), tickformat=".0%", range=[0, 1])
    fig.update_yaxes(title=tr(N_("Observed churn rate")), tickformat=".0%", range=[0, 1])
    return _layout(fig, title)


def plot_churn_signals(importance: pd.DataFrame, *, title: str = N_("Signals the churn model relies on")
                       ) -> go.Figure:
    """Bars of the drop in test ROC AUC when each signal is shuffled (`importance_for_readers`)."""
    import plotly.graph_objects as go

    shown = importance.sort_values("auc_drop")
    fig = go.Figure(go.Bar(x=shown["auc_drop"], y=shown["feature"].astype(str), orientation="h",
                           marker_color=COLORS["actual"],
                           text=[i18n.format_number(v, "number", digits=3) for v in shown["auc_drop"]],
                           textposition="outside", cliponaxis=False))
    fig.update_xaxes(title=tr(N_("Importance (drop of ROC AUC)")))
    fig.update_yaxes(type="category")
    return _layout(fig, title, height=max(300, 60 + 30 * len(shown)))
