"""The dashboards' toolkit: what the Voila dashboards in ``notebooks/dashboards/`` are built from.

* `crmlens.dashboard.state` — the filter bar's state (`FilterState`, with the language: English / 中文):
  period presets resolved against the data's as-of date, deep links
  (``?region=East&period=2026-Q3&language=zh``) and back, the analysis `Params` of the slice, the product
  line / team / customer segment filters applied to frames, export file names and header lines, and the
  choices the filter bar offers for a source. Pure library code, no widgets.
* `crmlens.dashboard.model` — the data a dashboard kernel holds: tables validated once, cut in memory per
  filter state into a `View` (a `crmlens.data.Slice`), results remembered per state.
* `crmlens.dashboard.tiles` — KPI tiles as data (`Tile`: value, comparison and change with a direction-aware
  colour, target and attainment, sparkline, alert, a plain "no data" reason) and as self-contained HTML cards.
* `crmlens.dashboard.panels` — chart panels (funnel, bookings trend, pipeline, leaderboard, regions,
  attainment, follow-ups) and drill-down tables as data.
* `crmlens.dashboard.widgets` — the widget toolkit: filter bar, tiles, chart panels, drill-down, funnel
  records, export buttons, deep-link sync.
* `crmlens.dashboard.views` — the views (`ViewSpec`: tiles, panels, thresholds, drill-down) by name.
* `crmlens.dashboard.exports` — the current view to Excel and PDF.
* `crmlens.dashboard.serve` / `crmlens.dashboard.app` — serving with Voila (`crmlens dashboard`) and what
  the dashboard notebooks call.

Dashboards hold no logic of their own: they call this package, `crmlens.metrics`, the KPI registry and
`crmlens.charts`. Guide: docs/dashboards.md.
"""
