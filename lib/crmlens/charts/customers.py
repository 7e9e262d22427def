"""Figures of the customers analysis. They draw frames computed by `crmlens.metrics.customers`; every text a
reader sees is in the language in use (`tr`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from crmlens import i18n
from crmlens.charts import COLORS, _layout, tr
from crmlens.i18n import N_

if TYPE_CHECKING:  # plotly loads with the first figure, not with the notebook's imports
    import plotly.graph_objects as go


def plot_customer_bridge(base: pd.DataFrame, *, title: str = N_("Active customers: start → end of the period")
                         ) -> go.Figure:
    """A waterfall of a `customer_base` frame (summed over its segments): active at the start, + new,
    + reactivated, − churned, active at the end."""
    import plotly.graph_objects as go

    total = base[["n_active_start", "n_new_customers", "n_reactivated", "n_churned", "n_active_end"]].sum()
    steps = [(N_("Active at the start"), "absolute", total["n_active_start"]),
             (N_("New"), "relative", total["n_new_customers"]),
             (N_("Reactivated"), "relative", total["n_reactivated"]),
             (N_("Churned"), "relative", -total["n_churned"]),
             (N_("Active at the end"), "total", total["n_active_end"])]
    fig = go.Figure(go.Waterfall(
        x=[tr(s[0]) for s in steps], measure=[s[1] for s in steps], y=[float(s[2]) for s in steps],
        text=[i18n.format_number(s[2], "count", signed=s[1] == "relative") for s in steps], textposition="outside",
        increasing={"marker": {"color": COLORS["good"]}}, decreasing={"marker": {"color": COLORS["bad"]}},
        totals={"marker": {"color": COLORS["actual"]}}, connector={"line": {"color": "#9e9e9e"}}))
    fig.update_layout(showlegend=False)
    fig.update_yaxes(title=tr(N_("Customers")))
    return _layout(fig, title)


def plot_base_trend(trend: pd.DataFrame, *, title: str = N_("Active customers, won and lost, by period")
                    ) -> go.Figure:
    """A `base_trend` frame: bars of new (+ reactivated) and churned customers per period, and a line of the active
    customers at each period's end."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_bar(x=trend["period"], y=trend["n_new_customers"] + trend["n_reactivated"],
                name=tr(N_("New and reactivated")), marker_color=COLORS["good"])
    fig.add_bar(x=trend["period"], y=-trend["n_churned"], name=tr(N_("Churned")), marker_color=COLORS["bad"])
    fig.add_scatter(x=trend["period"], y=trend["n_active_end"], name=tr(N_("Active at the end")), yaxis="y2",
                    mode="lines+markers", line={"color": COLORS["actual"]})
    fig.update_layout(barmode="relative", yaxis={"title": tr(N_("Customers won and lost"))},
                      yaxis2={"title": tr(N_("Active customers")), "overlaying": "y", "side": "right"})
    fig.update_xaxes(type="category")
    return _layout(fig, title)


def plot_growth_by_segment(base: pd.DataFrame, *, title: str = N_("Net growth rate by segment")) -> go.Figure:
    """Bars of a per-segment `customer_base` frame: each segment's net growth rate (segments with nobody active
    at the start have no rate and are left out), shrinking segments in the 'bad' colour."""
    import plotly.graph_objects as go

    shown = base.dropna(subset=["net_growth_rate"]).sort_values(["net_growth_rate", "segment"])
    unknown = N_("(unknown)")
    labels = shown["segment"].astype(str).where(shown["segment"].astype(str) != unknown, tr(unknown))
    fig = go.Figure(go.Bar(
        x=shown["net_growth_rate"], y=labels, orientation="h",
        marker_color=[COLORS["bad"] if v < 0 else COLORS["actual"] for v in shown["net_growth_rate"]],
        text=[i18n.format_number(v, "rate", signed=True, digits=1) for v in shown["net_growth_rate"]],
        textposition="outside", cliponaxis=False, hovertemplate="%{y}: %{x:+.1%}<extra></extra>"))
    fig.update_xaxes(tickformat="+.0%", title=tr(N_("Net growth rate")))
    fig.update_yaxes(type="category")
    return _layout(fig, title, height=max(320, 60 + 28 * len(shown)))


def plot_rfm_tiers(tiers: pd.DataFrame, *, title: str = N_("RFM tiers: share of customers and of revenue")
                   ) -> go.Figure:
    """Side-by-side bars of a `rfm_tiers` frame: each tier's share of the customers and of the revenue."""
    import plotly.graph_objects as go

    from crmlens.metrics.customers import tier_label

    labels = [tier_label(t) for t in tiers["rfm_tier"]]
    fig = go.Figure()
    for column, name, color in (("customer_share", N_("Share of customers"), COLORS["comparison"]),
                                ("revenue_share", N_("Share of revenue"), COLORS["actual"])):
        fig.add_bar(x=labels, y=tiers[column], name=tr(name), marker_color=color,
                    text=[i18n.format_number(v, "share", digits=0) for v in tiers[column]], textposition="outside")
    fig.update_yaxes(tickformat=".0%")
    fig.update_xaxes(type="category")
    fig.update_layout(barmode="group")
    return _layout(fig, title)


def plot_cohort_heatmap(matrix: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """A heatmap of a `cohort_retention` frame: cohorts as rows (oldest on top), periods since the first purchase
    as columns, the retained share in each cell (empty where not observed yet)."""
    import plotly.graph_objects as go

    periods = [c for c in matrix.columns if c.isdigit()]
    measure = matrix.attrs.get("measure", "customers")
    if title is None:
        title = N_("Revenue retention by cohort") if measure == "revenue" else N_("Customer retention by cohort")
    values = matrix[periods].astype("float64")
    text = [[("" if pd.isna(v) else i18n.format_number(v, "share", digits=0)) for v in row]
            for row in values.to_numpy()]
    fig = go.Figure(go.Heatmap(
        z=values.to_numpy(), x=periods, y=matrix["cohort"].astype(str), text=text, texttemplate="%{text}",
        colorscale="Blues", zmin=0, zmax=1 if measure != "revenue" else None, hoverongaps=False,
        colorbar={"tickformat": ".0%"}))
    fig.update_yaxes(autorange="reversed", type="category", title=tr(N_("Cohort (first purchase)")))
    fig.update_xaxes(type="category", title=tr(N_("Periods since the first purchase")))
    return _layout(fig, title, height=max(360, 80 + 30 * len(matrix)))


def plot_top_customer_value(top: pd.DataFrame, *, title: str = N_("Top customers: net revenue to date and predicted "
                                                                  "12-month value")) -> go.Figure:
    """Horizontal bars of a `crmlens.metrics.clv.top_customers` frame, one row per customer keyed by its
    account id (highest predicted value on top): its net revenue to date and its predicted 12-month value."""
    import plotly.graph_objects as go

    ids = top["account_id"].astype(str).tolist()[::-1]
    fig = go.Figure()
    for column, name, color in (("net_revenue_amount", N_("Net revenue to date"), COLORS["comparison"]),
                                ("predicted_value_amount", N_("Predicted value (12 months)"), COLORS["actual"])):
        values = top[column].astype("float64").tolist()[::-1]
        fig.add_bar(x=values, y=ids, orientation="h", name=tr(name), marker_color=color,
                    text=[i18n.format_number(v, "amount") for v in values], textposition="outside", cliponaxis=False,
                    hovertemplate="%{y}: %{x:,.0f}<extra>" + tr(name) + "</extra>")
    fig.update_layout(barmode="group")
    fig.update_yaxes(type="category", title=tr(N_("Account")))
    fig.update_xaxes(title=tr(N_("Amount")))
    return _layout(fig, title, height=max(360, 80 + 44 * len(ids)))


def plot_value_by_segment(result: pd.DataFrame, *, title: str = N_("Customer value by segment")) -> go.Figure:
    """Horizontal bars of a `crmlens.metrics.clv.value_by_segment` frame, one row per segment keyed by its name
    (highest predicted value on top): its customers' net revenue to date and their predicted 12-month value. A
    segment without a prediction (no model) draws no predicted bar."""
    import plotly.graph_objects as go

    from crmlens.metrics.common import UNKNOWN

    segments = result["segment"].astype(str).tolist()[::-1]
    labels = [tr(s) if s == UNKNOWN else s for s in segments]
    fig = go.Figure()
    for column, name, color in (("net_revenue_amount", N_("Net revenue to date"), COLORS["comparison"]),
                                ("predicted_value_amount", N_("Predicted value (12 months)"), COLORS["actual"])):
        values = result[column].astype("float64").tolist()[::-1]
        fig.add_bar(x=values, y=labels, orientation="h", name=tr(name), marker_color=color,
                    text=["" if pd.isna(v) else i18n.format_number(v, "amount") for v in values],
                    textposition="outside", cliponaxis=False, hovertemplate="%{y}: %{x:,.0f}<extra>" + tr(name)
                    + "</extra>")
    fig.update_layout(barmode="group")
    fig.update_yaxes(type="category")
    fig.update_xaxes(title=tr(N_("Amount")))
    return _layout(fig, title, height=max(360, 80 + 44 * len(labels)))
