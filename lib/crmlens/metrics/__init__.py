"""Metric functions, one module per analysis area. Pure functions over validated frames: they never
mutate their inputs, never read files, and register their headline KPIs in `crmlens.kpis`.

Importing this package registers every KPI.
"""

from __future__ import annotations

from importlib import import_module

AREAS: tuple[str, ...] = ("funnel", "performance", "regions", "customers", "engagement", "health", "marketing",
                         "products", "market", "quality")

for _area in AREAS:
    try:
        import_module(f"crmlens.metrics.{_area}")
    except ModuleNotFoundError as err:  # an area not written yet
        if err.name != f"crmlens.metrics.{_area}":
            raise
