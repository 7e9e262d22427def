"""Figures of the forecast and alerts analysis. They draw what `crmlens.metrics.forecasting` computed; every
text a reader sees is in the language in use (`tr`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from crmlens.charts import COLORS, _layout, tr
from crmlens.i18n import N_

if TYPE_CHECKING:  # plotly loads with the first figure, not with the notebook's imports
    import plotly.graph_objects as go


def plot_outlook(f: Any, level: str | None = None, key: str | None = None, *,
                 title: str = N_("Simulated bookings of the period vs target")) -> go.Figure:
    """The Monte Carlo distribution of a group's bookings (the company's, or the slice's region) as a histogram,
    with the target and the expected value as lines; the share of simulations at or above the target is the
    chance of reaching it."""
    import plotly.graph_objects as go

    level = level or f.summary["level"].iloc[0]
    sims = f.sims[level]
    key = key if key is not None else sims.columns[0]
    values = sims[key].to_numpy(float)
    row = f.summary[(f.summary["level"] == level) & (f.summary["key"] == key)].iloc[0]
    fig = go.Figure()
    fig.add_histogram(x=values, nbinsx=40, name=tr(N_("Simulations")), marker_color=COLORS["comparison"])
    fig.add_vline(x=float(row["expected_amount"]), line={"color": COLORS["actual"], "width": 2},
                  annotation_text=tr(N_("Expected")), annotation_position="top left")
    if pd.notna(row["target_amount"]):
        fig.add_vline(x=float(row["target_amount"]), line={"color": COLORS["target"], "width": 2, "dash": "dash"},
                      annotation_text=tr(N_("Target")), annotation_position="top right")
    fig.update_xaxes(title=tr(N_("Bookings of the period")))
    fig.update_yaxes(title=tr(N_("Simulations")))
    fig.update_layout(showlegend=False, bargap=0.02)
    return _layout(fig, f"{tr(title)} — {f.period.label}")


def plot_target_chances(table: pd.DataFrame, *, title: str = N_("Chance of reaching the target")
                        ) -> go.Figure | None:
    """Horizontal bars of each group's chance of reaching its target (a `forecast_table`), red below 50 %; None
    when no group has a target."""
    import plotly.graph_objects as go

    if "target_probability" not in table or table["target_probability"].isna().all():
        return None
    t = table.dropna(subset=["target_probability"]).sort_values("target_probability")
    colors = [COLORS["bad"] if p < 0.5 else COLORS["good"] for p in t["target_probability"]]
    fig = go.Figure(go.Bar(x=t["target_probability"], y=t["group"].astype(str), orientation="h",
                           marker_color=colors, text=[f"{p:.0%}" for p in t["target_probability"]],
                           textposition="outside"))
    fig.update_xaxes(tickformat=".0%", range=[0, 1.1])
    fig.update_yaxes(type="category")
    return _layout(fig, title, height=max(300, 28 * len(t) + 120))


def plot_series_forecast(result: dict[str, pd.DataFrame], series_id: str | None = None, *,
                         title: str = N_("Sales and forecast")) -> go.Figure:
    """A series' history, the chosen model's forecast and its prediction interval (a `bookings_forecast`
    result); the first series (the total) unless `series_id` is given."""
    import plotly.graph_objects as go

    history, forecasts = result["history"], result["forecasts"]
    series_id = series_id if series_id is not None else history["series_id"].iloc[0]
    h = history[history["series_id"] == series_id]
    f = forecasts[forecasts["series_id"] == series_id]
    fig = go.Figure()
    fig.add_scatter(x=h["date"], y=h["value"], name=tr(N_("Actual")), mode="lines+markers",
                    line={"color": COLORS["actual"]})
    if len(f):
        fig.add_scatter(x=np.concatenate([f["date"], f["date"][::-1]]),
                        y=np.concatenate([f["upper"], f["lower"][::-1]]), fill="toself", mode="lines",
                        line={"width": 0}, fillcolor="rgba(224,123,0,0.18)", name=tr(N_("80 % interval")),
                        hoverinfo="skip")
        from crmlens.metrics.forecasting import MODEL_LABELS

        model = f["model"].iloc[0]
        name = tr(N_("Forecast")) + f" ({tr(MODEL_LABELS.get(model, model))})"
        fig.add_scatter(x=f["date"], y=f["yhat"], name=name,
                        mode="lines+markers", line={"color": COLORS["target"], "dash": "dash"})
    fig.update_yaxes(title=tr(N_("Sales")), rangemode="tozero")
    return _layout(fig, f"{tr(title)} — {series_id}")


def plot_kpi_anomalies(found: pd.DataFrame, kpi: str, *, title: str = N_("Monthly history and expected range"),
                       ) -> go.Figure | None:
    """A KPI's monthly values with the expected range of each month; anomalies marked red (an `anomalies`
    frame). None when the KPI has no history."""
    import plotly.graph_objects as go

    from crmlens import kpis

    k = found[found["kpi"] == kpi]
    if k.empty:
        return None
    fig = go.Figure()
    ok = k.dropna(subset=["low", "high"])
    fig.add_scatter(x=np.concatenate([ok["month"], ok["month"][::-1]]),
                    y=np.concatenate([ok["high"], ok["low"][::-1]]), fill="toself", mode="lines",
                    line={"width": 0}, fillcolor="rgba(31,78,121,0.12)", name=tr(N_("Expected range")),
                    hoverinfo="skip")
    fig.add_scatter(x=k["month"], y=k["value"], mode="lines+markers", name=tr(N_("Actual")),
                    line={"color": COLORS["actual"]})
    bad = k[k["is_anomaly"]]
    if len(bad):
        fig.add_scatter(x=bad["month"], y=bad["value"], mode="markers", name=tr(N_("Anomaly")),
                        marker={"color": COLORS["bad"], "size": 12, "symbol": "circle-open", "line": {"width": 3}})
    fig.update_xaxes(type="category")
    label = tr(kpis.get_kpi(kpi).label)
    return _layout(fig, f"{tr(title)} — {label} ({found.attrs.get('region', '')})")


def plot_exceptions(table: pd.DataFrame, *, title: str = N_("Change vs comparison period, by region")
                    ) -> go.Figure | None:
    """A heatmap of each region's KPI change (robust z-score among the regions as colour; outliers stand out)."""
    import plotly.graph_objects as go

    from crmlens import kpis

    if table is None or table.empty or table["robust_z"].isna().all():
        return None
    z = table.pivot(index="kpi", columns="region", values="robust_z")
    text = table.pivot(index="kpi", columns="region", values="change")
    units = {k: kpis.get_kpi(k).unit for k in z.index}
    shown = [[(f"{v:+.0%}" if units[k] in ("count", "amount") else f"{v:+.2f}") if pd.notna(v) else ""
              for v in text.loc[k]] for k in z.index]
    fig = go.Figure(go.Heatmap(z=z.to_numpy(float), x=list(z.columns), y=[tr(kpis.get_kpi(k).label) for k in z.index],
                               text=shown, texttemplate="%{text}", colorscale="RdBu", zmid=0, zmin=-4, zmax=4,
                               colorbar={"title": "z"}))
    return _layout(fig, title, height=max(320, 40 * len(z) + 140))

