"""Figures of a sales rep's day (`crmlens.metrics.myday`): the open deals by stage (stale ones apart) and the
due and overdue activities on a time line. Texts in the language in use (`tr`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from crmlens.charts import COLORS, _layout, tr
from crmlens.i18n import N_

if TYPE_CHECKING:
    import plotly.graph_objects as go


def plot_my_pipeline(result: pd.DataFrame, *, title: str = N_("My open deals by stage")) -> go.Figure:
    """Stacked bars of a `myday.pipeline` frame: the amount of the open deals per stage (in the frame's stage
    order of first appearance), stale deals in the alert colour."""
    import plotly.graph_objects as go

    stages = list(dict.fromkeys(result["stage"].astype(str)))
    fig = go.Figure()
    for stale, name, color in ((False, N_("Active"), COLORS["actual"]), (True, N_("Stale"), COLORS["target"])):
        rows = result[result["is_stale"] == stale]
        amounts = rows.groupby(rows["stage"].astype(str))["amount"].sum().reindex(stages)
        fig.add_bar(x=stages, y=amounts.to_numpy(), name=tr(name), marker_color=color,
                    customdata=[[s] for s in stages], ids=[f"{s}/{int(stale)}" for s in stages])
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title=tr(N_("Amount")))
    return _layout(fig, title)


def plot_agenda(result: pd.DataFrame, *, title: str = N_("My due and overdue activities")) -> go.Figure:
    """The activities of a `myday.agenda` frame on a time line by type, overdue ones in the alert colour."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for status, name, color in (("overdue", N_("overdue"), COLORS["target"]), ("due", N_("due"), COLORS["actual"])):
        rows = result[result["status"] == status]
        fig.add_scatter(x=rows["due_at"], y=rows["activity_type"].astype(str), mode="markers", name=tr(name),
                        ids=rows["activity_id"].astype(str).tolist(), marker={"color": color, "size": 12},
                        text=rows["account_name"].astype(str).tolist())
    fig.update_yaxes(type="category")
    return _layout(fig, title, height=320)


def plot_call_list(result: pd.DataFrame, *, title: str = N_("My customers to call next")) -> go.Figure:
    """Horizontal bars of a `crmlens.metrics.regions.call_next` frame (one rep's rows): days since the last
    activity per account, in call order (first at the top), forgotten ones in the alert colour."""
    import plotly.graph_objects as go

    rows = result.sort_values("priority", ascending=False)
    days = rows["days_since_activity"].astype("Float64").fillna(365).to_numpy("float64")
    colors = [COLORS["target"] if bool(f) else COLORS["actual"] for f in rows["is_forgotten"].fillna(False)]
    fig = go.Figure(go.Bar(x=days, y=rows["name"].astype(str), orientation="h", marker_color=colors,
                           ids=rows["account_id"].astype(str).tolist()))
    fig.update_xaxes(title=tr(N_("Days since last activity")))
    fig.update_yaxes(type="category")
    return _layout(fig, title, height=max(300, 28 * len(rows) + 120))


def plot_churn_risk(result: pd.DataFrame, *, title: str = N_("My customers at risk of churning")) -> go.Figure:
    """Horizontal bars of one rep's customers at risk (`_my_churn_risk` of the sales rep view): the yearly
    revenue at risk per account (the churn risk where there are no purchases), biggest at the top; keyed by
    account id (a click opens the customer's history)."""
    import plotly.graph_objects as go

    value = "revenue_at_risk" if "revenue_at_risk" in result.columns else "risk"
    rows = result.iloc[::-1]
    fig = go.Figure(go.Bar(x=rows[value].astype("float64").to_numpy(), y=rows["account"].astype(str),
                           orientation="h", marker_color=COLORS["bad"], ids=rows["account_id"].astype(str).tolist(),
                           customdata=rows[["risk"]].astype("float64").to_numpy(),
                           hovertemplate="%{y}: %{x:,.0f} (" + tr(N_("Churn risk")) + " %{customdata[0]:.0%})"
                           "<extra></extra>"))
    fig.update_xaxes(title=tr(N_("Yearly revenue at risk") if value == "revenue_at_risk" else N_("Churn risk")))
    fig.update_yaxes(type="category")
    return _layout(fig, title, height=max(300, 28 * len(rows) + 120))
