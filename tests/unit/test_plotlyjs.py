"""The project's plotly.js bundle (crmlens.charts.plotlyjs): the plotly package's version, the trace types the
project draws, and the whole plotly.js for any other."""

from __future__ import annotations

import ast
from pathlib import Path

import plotly.graph_objects as go
from plotly.basedatatypes import BaseTraceType
from plotly.offline import get_plotlyjs_version

from crmlens.charts import plotlyjs

LIB = Path(plotlyjs.__file__).resolve().parents[1]


def test_the_bundle_is_the_plotly_js_of_the_plotly_package():
    # figures are made by the plotly package for its own plotly.js: the bundle must be the same version
    assert plotlyjs.bundle_version() == get_plotlyjs_version()
    last = plotlyjs.BUNDLE.read_text(encoding="utf-8").rstrip().splitlines()[-2:]
    assert last[0] == "window.Plotly = Plotly;" and last[1].startswith("Plotly.crmlensTraces = [")
    assert "scatter" in plotlyjs.bundle_traces()
    assert plotlyjs.BUNDLE.stat().st_size < plotlyjs.full_path().stat().st_size / 3


def _traces_the_library_makes() -> set[str]:
    """Trace types named in the library's code: go.Bar(...), fig.add_bar(...), px.treemap(...)."""
    found = set()
    for path in LIB.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            name, owner = node.func.attr, node.func.value
            if isinstance(owner, ast.Name) and owner.id == "go" and name not in ("Figure", "FigureWidget"):
                found.add(name.lower())
            elif name.startswith("add_") and name[4:] in _TRACE_TYPES:
                found.add(name[4:])
            elif isinstance(owner, ast.Name) and owner.id == "px":
                found.add({"line": "scatter", "area": "scatter"}.get(name, name))
    return found


_TRACE_TYPES = {name.lower() for name in dir(go) if isinstance(getattr(go, name), type)
                and issubclass(getattr(go, name), BaseTraceType)}


def test_the_bundle_draws_every_trace_type_the_library_makes():
    made = _traces_the_library_makes()
    assert {"bar", "scatter", "histogram", "treemap", "heatmap"} <= made, made  # the scan finds them
    assert made <= plotlyjs.bundle_traces(), f"not in the bundle: {sorted(made - plotlyjs.bundle_traces())}"


def test_a_page_gets_the_bundle_or_the_whole_plotly_js():
    figures = [go.Figure(go.Bar(x=[1], y=[2])).to_dict(), {"data": [{"x": [1], "y": [2]}]}]
    assert plotlyjs.trace_types(figures) == {"bar", "scatter"}
    assert plotlyjs.script_for({"bar", "scatter"}) == plotlyjs.BUNDLE.read_text(encoding="utf-8")
    assert plotlyjs.script_for(set()) == plotlyjs.BUNDLE.read_text(encoding="utf-8")
    whole = plotlyjs.script_for({"bar", "scatterpolar"})
    assert whole == plotlyjs.full_path().read_text(encoding="utf-8")
