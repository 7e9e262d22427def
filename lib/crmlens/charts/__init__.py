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


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    import plotly.io as pio

    register_template()
    # a figure made while our template is plotly's default has it already (applying it again: ~30 ms a figure)
    theme = {} if pio.templates.default == TEMPLATE_NAME else {"template": TEMPLATE_NAME}
    fig.update_layout(title=title, width=FIGURE_WIDTH, height=height, **theme)
    return fig


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
        color = palette[i % len(palette)]
        kind = kinds.get(col, "line")
        if kind == "bar":
            fig.add_bar(x=frame[x], y=frame[col], name=name, marker_color=color)
        else:
            fig.add_scatter(x=frame[x], y=frame[col], name=name, mode="lines+markers",
                            line={"color": color, "dash": "dash" if kind == "dash" else "solid"})
    fig.update_yaxes(title=y_title)
    return _layout(fig, title)


def plot_ranking(frame: pd.DataFrame, *, label: str, value: str, title: str, highlight: Sequence[str] = (),
                 value_format: str = ",.0f") -> go.Figure:
    """Horizontal bars sorted by value; labels in `highlight` are drawn in the 'bad' colour."""
    import plotly.graph_objects as go

    ordered = frame.sort_values(value)
    colors = [COLORS["bad"] if lab in set(highlight) else COLORS["actual"] for lab in ordered[label]]
    fig = go.Figure(go.Bar(x=ordered[value], y=ordered[label].astype(str), orientation="h", marker_color=colors,
                           texttemplate=f"%{{x:{value_format}}}", textposition="outside"))
    return _layout(fig, title, height=max(300, 28 * len(ordered) + 120))


def plot_grouped_bars(frame: pd.DataFrame, *, x: str, columns: dict[str, str], title: str, y_title: str = "",
                      percent: bool = False) -> go.Figure:
    """Bars grouped by `x`, one series per column (`columns` maps column → legend name)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for col, name in columns.items():
        fig.add_bar(x=frame[x].astype(str), y=frame[col], name=name)
    fig.update_layout(barmode="group")
    fig.update_yaxes(title=y_title, tickformat=".0%" if percent else None)
    return _layout(fig, title)


def plot_treemap(frame: pd.DataFrame, *, path: Sequence[str], value: str, title: str,
                 color: str | None = None) -> go.Figure:
    """A treemap over a hierarchy (e.g. region → country → province → city), sized by `value`."""
    import plotly.express as px

    fig = px.treemap(frame, path=list(path), values=value, color=color,
                     color_continuous_scale="RdYlGn" if color else None)
    return _layout(fig, title, height=520)
