"""Plotly figure builders. They draw frames the metrics already computed — no aggregation here — in one
consistent theme. Every builder is called `plot_*`, takes a frame and returns a `go.Figure`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # plotly loads with the first figure, not with the notebook's imports
    import plotly.graph_objects as go

TEMPLATE_NAME = "crmlens"
#: Our colours: actual, comparison (previous / last year), target, good, bad, then categorical.
COLORS = {
    "actual": "#1f4e79",
    "comparison": "#9fb8d0",
    "target": "#e07b00",
    "good": "#2e7d32",
    "bad": "#c62828",
    "neutral": "#757575",
}
CATEGORICAL = ["#1f4e79", "#e07b00", "#2e7d32", "#8e24aa", "#00838f", "#c62828", "#6d4c41", "#546e7a"]
FIGURE_WIDTH = 900  # fixed width so that PDF/PPTX exports lay out the same as the screen


def register_template() -> None:
    """Register our plotly template as `TEMPLATE_NAME` (once; imports plotly). Every builder's figure uses it,
    and the notebooks' `setup()` makes it plotly's default."""
    import plotly.graph_objects as go
    import plotly.io as pio

    if TEMPLATE_NAME in pio.templates:
        return
    template = go.layout.Template(pio.templates["plotly_white"])
    template.layout.colorway = CATEGORICAL
    template.layout.font = {"family": "Inter, Segoe UI, Helvetica, Arial, sans-serif", "size": 13, "color": "#222"}
    template.layout.title = {"x": 0.0, "xanchor": "left", "font": {"size": 16}}
    template.layout.margin = {"l": 60, "r": 20, "t": 60, "b": 50}
    template.layout.legend = {"orientation": "h", "y": -0.15}
    template.layout.hoverlabel = {"namelength": -1}
    pio.templates[TEMPLATE_NAME] = template


def use_template() -> None:
    """Make our template plotly's default (registering it first): every figure made afterwards has it from
    the start, and `_layout` skips applying it again (~30–50 ms a figure). The notebooks' `setup()` and the
    dashboards' panels call it."""
    import plotly.io as pio

    register_template()
    pio.templates.default = TEMPLATE_NAME


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    """Size and theme a figure; `title` (an English msgid, or a text already translated) in the language in
    use."""
    import plotly.io as pio

    register_template()
    # a figure made while our template is plotly's default has it already (applying it again: ~30 ms a figure)
    theme = {} if pio.templates.default == TEMPLATE_NAME else {"template": TEMPLATE_NAME}
    fig.update_layout(title=tr(title), width=FIGURE_WIDTH, height=height, **theme)
    return fig


def tr(text: str | None) -> str:
    """A chart text in the language in use: a catalogue msgid is translated, a text with Chinese characters
    (already translated, or a data value) is kept as it is."""
    from crmlens import i18n

    if not text or i18n.current() == i18n.DEFAULT_LANGUAGE or i18n.has_cjk(text):
        return text or ""
    return i18n._(text)


def display_names(ids: pd.Series, names: pd.Series | None) -> pd.Series:
    """Labels for chart categories keyed by id: the name, or "name (id)" where several ids share a name (two
    reps called David Huang stay two bars: "David Huang (R0038)", "David Huang (R0062)"); the id when there is
    no name. Charts plot one bar per id and show these labels."""
    ids = ids.astype("string")
    if names is None:
        return ids
    shown = names.astype("string").where(names.notna() & (names.astype("string").str.len() > 0), ids)
    ids_per_name = pd.DataFrame({"id": ids, "name": shown}).groupby("name")["id"].nunique()
    clash = shown.map(ids_per_name).fillna(1) > 1
    return shown.where(~clash | (shown == ids), shown + " (" + ids + ")")


def plot_funnel(frame: pd.DataFrame, *, step: str = "step", count: str = "count", title: str = "Funnel") -> go.Figure:
    """A funnel: one bar per step with its count and the share of the first step."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Funnel(y=frame[step], x=frame[count], textinfo="value+percent initial+percent previous",
                              marker={"color": COLORS["actual"]}))
    return _layout(fig, title)


def plot_trend(frame: pd.DataFrame, *, x: str, series: dict[str, str], title: str, y_title: str = "",
               kinds: dict[str, str] | None = None) -> go.Figure:
    """Lines (or bars) over time: `series` maps column → legend name; `kinds` maps column → 'bar'|'line'|'dash'."""
    import plotly.graph_objects as go

    kinds = kinds or {}
    fig = go.Figure()
    palette = [COLORS["actual"], COLORS["target"], COLORS["comparison"], *CATEGORICAL[3:]]
    for i, (col, name) in enumerate(series.items()):
        name = tr(name)
        color = palette[i % len(palette)]
        kind = kinds.get(col, "line")
        if kind == "bar":
            fig.add_bar(x=frame[x], y=frame[col], name=name, marker_color=color)
        else:
            fig.add_scatter(x=frame[x], y=frame[col], name=name, mode="lines+markers",
                            line={"color": color, "dash": "dash" if kind == "dash" else "solid"})
    fig.update_yaxes(title=tr(y_title))
    return _layout(fig, title)


def plot_ranking(frame: pd.DataFrame, *, label: str, value: str, title: str, highlight: Sequence[str] = (),
                 value_format: str = ",.0f", key: str | None = None) -> go.Figure:
    """Horizontal bars sorted by value, one per row; labels in `highlight` are drawn in the 'bad' colour. With
    `key` (an id column) the bars are keyed by id and same-named rows are labelled "name (id)"
    (`display_names`)."""
    import plotly.graph_objects as go

    ordered = frame.sort_values(value)
    shown = display_names(ordered[key], ordered[label]) if key else ordered[label].astype(str)
    colors = [COLORS["bad"] if lab in set(highlight) else COLORS["actual"] for lab in ordered[label]]
    fig = go.Figure(go.Bar(x=ordered[value], y=shown.astype(str).tolist(), orientation="h", marker_color=colors,
                           texttemplate=f"%{{x:{value_format}}}", textposition="outside"))
    return _layout(fig, title, height=max(300, 28 * len(ordered) + 120))


def plot_grouped_bars(frame: pd.DataFrame, *, x: str, columns: dict[str, str], title: str, y_title: str = "",
                      percent: bool = False) -> go.Figure:
    """Bars grouped by `x`, one series per column (`columns` maps column → legend name)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for col, name in columns.items():
        fig.add_bar(x=frame[x].astype(str), y=frame[col], name=tr(name))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title=tr(y_title), tickformat=".0%" if percent else None)
    return _layout(fig, title)


def plot_treemap(frame: pd.DataFrame, *, path: Sequence[str], value: str, title: str,
                 color: str | None = None) -> go.Figure:
    """A treemap over a hierarchy (e.g. region → country → province → city), sized by `value`."""
    import plotly.express as px

    fig = px.treemap(frame, path=list(path), values=value, color=color,
                     color_continuous_scale="RdYlGn" if color else None)
    return _layout(fig, title, height=520)
