"""The dashboards' toolkit: what the Voila dashboards in ``notebooks/dashboards/`` are built from.

* `crmlens.dashboard.state` — the filter bar's state (`FilterState`): period presets resolved against the
  data's as-of date, deep links (``?region=East&period=2026-Q3``) and back, the analysis `Params` of the
  slice, the product line / team / customer segment filters applied to frames, export file names and header
  lines, and the choices the filter bar offers for a source. Pure library code, no widgets.
* `crmlens.dashboard.tiles` — KPI tiles as data (`Tile`: value, comparison and change with a direction-aware
  colour, target and attainment, sparkline, alert, a plain "no data" reason) and as self-contained HTML cards.

The widget layer (filter bar, panels, drill-down, exports) and the Voila views are not written yet (issue 5).

Dashboards hold no logic of their own: they call this package, `crmlens.metrics`, the KPI registry and
`crmlens.charts`.
"""
