"""The dashboards' chart widget (`crmlens.dashboard.widgets.Chart`) in Chromium, without a kernel: its own
JavaScript module, given a page like the dashboard template's (the project's plotly.js bundle preloaded, the
whole plotly.js named), draws with the bundle, and loads the whole plotly.js once for a trace type the bundle
lacks."""

from __future__ import annotations

import pytest

from crmlens.charts import plotlyjs
from crmlens.dashboard.widgets import Chart

pytestmark = pytest.mark.slow

DRAW = """async ([esm, spec]) => {
  const url = URL.createObjectURL(new Blob([esm], { type: "text/javascript" }));
  const widget = (await import(url)).default;
  const el = document.createElement("div");
  document.body.appendChild(el);
  const listeners = {};
  const model = {
    values: { spec: spec, revision: 1 },
    get(key) { return this.values[key]; },
    on(event, fn) { listeners[event] = fn; },
    send(msg) { (window.sent = window.sent || []).push(msg); },
  };
  await widget.render({ model, el });
  window.charts = window.charts || [];
  window.charts.push({ el, model, listeners });
  return window.charts.length - 1;
}"""

REDRAW = """async ([i, spec]) => {
  const c = window.charts[i];
  c.model.values.spec = spec;
  c.model.values.revision += 1;
  await c.listeners["change:spec"]();
}"""


def _spec(trace: dict) -> dict:
    return {"data": [trace], "layout": {"width": 400, "height": 300}, "config": {"displaylogo": False}}


@pytest.fixture
def chart_page(browser, tmp_path):
    page_file = tmp_path / "page.html"
    page_file.write_text(
        "<!DOCTYPE html><html><head>"
        f'<link rel="preload" as="script" id="crmlens-plotly-js" href="{plotlyjs.BUNDLE.as_uri()}">'
        f'<meta name="crmlens-plotly-full" content="{plotlyjs.full_path().as_uri()}">'
        "</head><body></body></html>", encoding="utf-8")
    context = browser.new_context()
    page = context.new_page()
    page.goto(page_file.as_uri())
    yield page
    context.close()


def loaded_scripts(page) -> list[str]:
    return page.evaluate("Array.from(document.scripts).map((s) => s.src.split('/').pop())")


def test_the_bundle_draws_and_a_trace_type_it_lacks_loads_the_whole_plotly_js(chart_page):
    page, esm = chart_page, Chart._esm
    bar = page.evaluate(DRAW, [esm, _spec({"type": "bar", "x": ["a", "b"], "y": [1, 2]})])
    assert loaded_scripts(page) == ["plotly-crmlens.min.js"]
    assert set(page.evaluate("window.Plotly.crmlensTraces")) == plotlyjs.bundle_traces()
    assert page.locator(".main-svg").count() >= 1
    # a click on a bar reaches the kernel side (model.send)
    page.locator(".point").first.click(force=True)
    page.wait_for_function("() => (window.sent || []).length === 1")
    assert page.evaluate("window.sent[0]") == {"kind": "click", "label": "a", "id": ""}

    # a pie: not in the bundle, so the whole plotly.js is loaded, once, and draws it
    pie = page.evaluate(DRAW, [esm, _spec({"type": "pie", "labels": ["x", "y"], "values": [3, 1]})])
    assert loaded_scripts(page) == ["plotly-crmlens.min.js", "plotly.min.js"]
    assert page.evaluate("window.Plotly.crmlensTraces") is None
    assert page.evaluate(f"window.charts[{pie}].el.querySelectorAll('.slice').length") == 2

    # the bar chart drawn by the bundle is redrawn by the whole plotly.js, and still answers clicks
    page.evaluate(REDRAW, [bar, _spec({"type": "bar", "x": ["c", "d", "e"], "y": [3, 1, 2]})])
    assert page.evaluate(f"window.charts[{bar}].el._crmlensPlotly === window.Plotly")
    assert page.evaluate(f"window.charts[{bar}].el.querySelectorAll('.point').length") == 3
    page.locator(".point").first.click(force=True)
    page.wait_for_function("() => window.sent.length === 2")
    assert page.evaluate("window.sent[1]")["label"] == "c"
    assert loaded_scripts(page).count("plotly.min.js") == 1
