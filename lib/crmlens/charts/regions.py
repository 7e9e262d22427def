"""Figures of the regions & teams analysis. They draw frames computed by `crmlens.metrics.regions`.

Bars and boxes are keyed by id (rep_id, team_id, region_id, the place path): two reps called David Huang stay
two bars, labelled "David Huang (R0038)" and "David Huang (R0062)" (`display_names`). Every text a reader sees
is in the language in use (`tr`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from crmlens import i18n
from crmlens.charts import CATEGORICAL, COLORS, _layout, display_names, plot_ranking, tr
from crmlens.i18n import N_

if TYPE_CHECKING:  # plotly loads with the first figure, not with the notebook's imports
    import plotly.graph_objects as go

_PATH = ("region_id", "country", "province", "city")
_KEYS = ("rep_id", "team_id", "region_id")
#: Place values that are not names (`crmlens.metrics.regions.UNKNOWN`), translated where shown.
_UNKNOWN = N_("(unknown)")


def _key(frame: pd.DataFrame) -> str:
    """The id column of a per-rep/team/region frame."""
    return next(c for c in _KEYS if c in frame.columns)


def _labels(frame: pd.DataFrame, key: str, name: str = "name") -> pd.Series:
    """Per row: the name, with the id where several ids share it (`display_names`); "(unknown)" translated."""
    names = frame[name] if name in frame.columns else None
    shown = display_names(frame[key], names).astype(str)
    return shown.where(shown != _UNKNOWN, tr(_UNKNOWN))


def plot_geography_treemap(frame: pd.DataFrame, *, value: str = "bookings_amount",
                           title: str = N_("Bookings by place"), color: str | None = None) -> go.Figure:
    """Treemap of a `geography` frame over its path columns (region → … → its level), sized by `value`;
    places with nothing to show (value ≤ 0) are left out, as a treemap cannot draw them. Each box is keyed by
    its whole path (two cities of the same name in different provinces stay two boxes) and a parent is the sum
    of its boxes, as in `plotly.express.treemap`; with `color`, the leaves are coloured by that column."""
    import plotly.graph_objects as go

    path = [c for c in _PATH if c in frame.columns]
    shown = frame[frame[value] > 0]
    if shown.empty:
        return _layout(go.Figure(), i18n._("{title} — nothing to show", title=tr(title)))
    places = shown[path].astype("string").fillna(_UNKNOWN).assign(_value=shown[value].astype("float64"))
    ids, labels, values, colors = [], [], [], []
    for depth in range(1, len(path) + 1):
        level = places.groupby(path[:depth], sort=True)["_value"].sum() if depth < len(path) else \
            places.set_index(path)["_value"]
        for parts, total in level.items():
            parts = parts if isinstance(parts, tuple) else (parts,)
            ids.append("/".join(parts))
            labels.append(tr(_UNKNOWN) if parts[-1] == _UNKNOWN else str(parts[-1]))
            values.append(float(total))
        if color:
            colors += [None] * len(level) if depth < len(path) else shown[color].astype("float64").tolist()
    marker = ({"colors": colors, "colorscale": "RdYlGn", "showscale": True,
               "colorbar": {"title": tr(_VALUE_LABELS.get(color, color))}} if color else {})
    value_label = tr(_VALUE_LABELS.get(value, value))
    fig = go.Figure(go.Treemap(ids=ids, labels=labels, parents=[i.rpartition("/")[0] for i in ids], values=values,
                               branchvalues="total", marker=marker,
                               hovertemplate=f"%{{label}}<br>{value_label}: %{{value:,.0f}}<extra></extra>"))
    return _layout(fig, title, height=520)


#: Labels of the values the geography charts draw (msgids).
_VALUE_LABELS = {"bookings_amount": N_("Bookings"), "n_won": N_("Won deals"), "n_customers": N_("Customers"),
                 "n_closed": N_("Closed deals"), "win_rate": N_("Win rate"), "market_share_rate": N_("Market share")}


def plot_leaderboard(frame: pd.DataFrame, *, metric: str, title: str, top: int = 15) -> go.Figure:
    """Horizontal bars of a `leaderboard` frame (its first `top` rows), one per rep/team/region id, labelled
    "#rank name (▲n / ▼n)" — the name with its id where names clash."""
    shown = frame.dropna(subset=["rank"]).head(top)
    key = _key(shown)
    arrows = shown["rank_change"].map(
        lambda c: "" if pd.isna(c) else (f" ▲{int(c)}" if c > 0 else (f" ▼{-int(c)}" if c < 0 else " =")))
    labels = "#" + shown["rank"].astype(str) + " " + _labels(shown, key) + arrows
    fmt = ".0%" if metric.endswith("_rate") else ",.0f"
    return plot_ranking(shown.assign(label=labels.to_numpy()), label="label", value=metric, title=title,
                        value_format=fmt, key=key)


def plot_activity_mix(frame: pd.DataFrame, *, label: str = "name", title: str = N_("Activities per rep, by type"),
                      types: Sequence[str] | None = None) -> go.Figure:
    """Stacked bars of an `activities_per_rep` frame: one bar per group (keyed by its id, labelled with its
    name), one segment per activity type."""
    import plotly.graph_objects as go

    from crmlens.metrics.regions import ACTIVITY_TYPE_LABELS

    columns = [c for c in frame.columns if c.endswith("_per_rep") and c != "activities_per_rep"]
    if types is not None:
        columns = [f"{t}_per_rep" for t in types if f"{t}_per_rep" in frame.columns]
    key = _key(frame)
    categories = frame[key].astype(str).tolist()
    names = _labels(frame, key, label).tolist()
    fig = go.Figure()
    for i, col in enumerate(columns):
        kind = col.removesuffix("_per_rep")
        fig.add_bar(x=categories, y=frame[col], name=tr(ACTIVITY_TYPE_LABELS[kind]) if kind in ACTIVITY_TYPE_LABELS
                    else kind, marker_color=CATEGORICAL[i % len(CATEGORICAL)])
    fig.update_layout(barmode="stack")
    fig.update_xaxes(type="category", tickmode="array", tickvals=categories, ticktext=names)
    fig.update_yaxes(title=tr(N_("activities per rep")))
    return _layout(fig, title)


def plot_forgotten(frame: pd.DataFrame, *, title: str | None = None, top: int = 15,
                   threshold: float = 0.5) -> go.Figure:
    """Bars of a `forgotten_by_rep` frame, one per rep id; reps above `threshold` are drawn in the 'bad'
    colour. The default title names the frame's number of days (``attrs["days"]``)."""
    shown = frame.head(top)
    labels = _labels(shown, "rep_id")
    flagged = labels[shown["forgotten_rate"] > threshold].tolist()
    if title is None:
        days = frame.attrs.get("days")
        title = (i18n._("Owned accounts silent for {days}+ days", days=i18n.format_number(days, "count"))
                 if days else i18n._("Share of owned accounts forgotten"))
    return plot_ranking(shown.assign(label=labels.to_numpy()), label="label", value="forgotten_rate", title=title,
                        highlight=flagged, value_format=".0%", key="rep_id")


def plot_market_share(frame: pd.DataFrame, *, title: str = N_("Bookings vs market size by region")) -> go.Figure:
    """Bars of bookings and market size per region (a region-level `geography` frame), share as text."""
    import plotly.graph_objects as go

    regions = frame["region_id"].astype(str)
    fig = go.Figure()
    fig.add_bar(x=regions, y=frame["market_size_amount"], name=tr(N_("Market size")),
                marker_color=COLORS["comparison"])
    fig.add_bar(x=regions, y=frame["bookings_amount"], name=tr(N_("Our bookings")), marker_color=COLORS["actual"],
                text=frame["market_share_rate"].map(lambda v: "" if pd.isna(v) else i18n.format_number(v, "rate",
                                                                                                       digits=0)),
                textposition="outside")
    fig.update_xaxes(type="category")
    fig.update_layout(barmode="overlay")
    return _layout(fig, title)
