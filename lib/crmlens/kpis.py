"""The KPI registry: every headline KPI is registered once, with its definition and its computation.

Tiles, alerts, exports, the run index and the KPI catalogue (docs/kpis.md) all read this registry.
A KPI is a function ``(frames, ctx) -> float | None`` over the validated tables of one slice, decorated
with `register_kpi`:

    @register_kpi("win_rate", label="Win rate", unit="rate", direction="higher", tables=("opportunities",),
                  area="sales_funnel", description="Won ÷ closed opportunities closed in the period.")
    def win_rate(frames, ctx): ...

`None` means "no data" (the source lacks a table, or nothing happened in the slice) — never a silent 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from crmlens.errors import ParameterError
from crmlens.i18n import N_
from crmlens.schema import SCHEMA, Vocabulary

Unit = Literal["count", "amount", "rate", "days", "score", "ratio"]
Direction = Literal["higher", "lower", "neutral"]
UNITS: tuple[str, ...] = ("count", "amount", "rate", "days", "score", "ratio")
DIRECTIONS: tuple[str, ...] = ("higher", "lower", "neutral")


@dataclass(frozen=True)
class KpiContext:
    """What a KPI needs besides the tables: the slice's period, region, as-of time and vocabulary."""

    period_start: pd.Timestamp
    period_end: pd.Timestamp  # exclusive
    region: str = "all"
    as_of: pd.Timestamp | None = None
    vocabulary: Vocabulary = field(default_factory=Vocabulary)
    period_label: str = ""
    forgotten_days: int = 60  # the run's `forgotten_days` parameter
    churn_days: int = 455  # the run's `churn_days` parameter


KpiFn = Callable[[Mapping[str, pd.DataFrame], KpiContext], "float | None"]


@dataclass(frozen=True)
class Kpi:
    """One registered KPI."""

    name: str
    label: str
    unit: Unit
    description: str
    direction: Direction
    tables: tuple[str, ...]
    area: str
    compute: KpiFn
    grain: str = "region × period"
    target: str | None = None  # name of the target it is measured against (targets.level), if any

    def format(self, value: float | None, currency: str = "USD") -> str:
        """The value as people read it, in the language in use: 1,234,567 USD, 35.2%, 12.5 days (天); '–' for
        no data (`crmlens.i18n.format_number`)."""
        from crmlens.i18n import format_number

        return format_number(value, self.unit, currency)

    def title(self) -> str:
        """The label in the language in use."""
        from crmlens.i18n import _

        return _(self.label)


KPIS: dict[str, Kpi] = {}


def register_kpi(name: str, *, label: str, unit: Unit, description: str, direction: Direction,
                 tables: tuple[str, ...], area: str, grain: str = "region × period",
                 target: str | None = None) -> Callable[[KpiFn], KpiFn]:
    """Decorator registering a KPI function under `name` (names are unique)."""
    if unit not in UNITS:
        raise ValueError(f"KPI {name}: unit {unit!r} is not one of {', '.join(UNITS)}")
    if direction not in DIRECTIONS:
        raise ValueError(f"KPI {name}: direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    unknown = [t for t in tables if t not in SCHEMA]
    if unknown:
        raise ValueError(f"KPI {name}: unknown tables {unknown}")

    def decorate(fn: KpiFn) -> KpiFn:
        if name in KPIS and KPIS[name].compute is not fn:
            raise ValueError(f"KPI {name!r} is registered twice ({KPIS[name].compute.__module__} and {fn.__module__})")
        KPIS[name] = Kpi(name=name, label=label, unit=unit, description=description, direction=direction,
                         tables=tables, area=area, compute=fn, grain=grain, target=target)
        return fn

    return decorate


def load_all() -> dict[str, Kpi]:
    """Import every metrics module so that all KPIs are registered; return the registry."""
    import crmlens.metrics  # noqa: F401  (registers on import)

    return KPIS


def get_kpi(name: str) -> Kpi:
    """The KPI called `name`; an unknown name is a ParameterError listing the registered ones."""
    registry = load_all()
    if name not in registry:
        raise ParameterError(f"kpi: {name!r} is not a registered KPI; known: {', '.join(sorted(registry))}")
    return registry[name]


def compute_kpi(name: str, frames: Mapping[str, pd.DataFrame], ctx: KpiContext) -> float | None:
    """Compute one KPI on a set of frames; None when a table it needs is missing or there is no data."""
    kpi = get_kpi(name)
    if any(t not in frames for t in kpi.tables):
        return None
    value = kpi.compute(frames, ctx)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def change(kpi: Kpi, value: float | None, before: float | None) -> dict[str, float | str | None]:
    """Delta and relative change of `value` vs `before`, and whether that is good for this KPI."""
    if value is None or before is None:
        return {"delta": None, "delta_pct": None, "trend": "n/a"}
    delta = value - before
    pct = delta / abs(before) if before else None
    if kpi.direction == "neutral" or delta == 0:
        trend = "flat" if delta == 0 else "neutral"
    else:
        trend = "better" if (delta > 0) == (kpi.direction == "higher") else "worse"
    return {"delta": delta, "delta_pct": pct, "trend": trend}


def kpi_table(names: Iterable[str], current: Mapping[str, pd.DataFrame], current_ctx: KpiContext,
              comparison: Mapping[str, pd.DataFrame] | None = None,
              comparison_ctx: KpiContext | None = None, currency: str = "USD") -> pd.DataFrame:
    """One row per KPI: value, comparison value, delta, relative change, trend and display texts."""
    rows = []
    for name in names:
        kpi = get_kpi(name)
        value = compute_kpi(name, current, current_ctx)
        before = compute_kpi(name, comparison, comparison_ctx) if comparison is not None and comparison_ctx else None
        rows.append({"kpi": name, "label": kpi.label, "unit": kpi.unit, "direction": kpi.direction,
                     "value": value, "comparison_value": before, **change(kpi, value, before),
                     "display": kpi.format(value, currency),
                     "status": "ok" if value is not None else (
                         "not in source" if any(t not in current for t in kpi.tables) else "no data")})
    columns = ["kpi", "label", "unit", "direction", "value", "comparison_value", "delta", "delta_pct", "trend",
               "display", "status"]
    return pd.DataFrame(rows, columns=columns)


#: What a reader sees for the trend and status of a KPI (msgids).
TREND_LABELS = {"better": N_("better"), "worse": N_("worse"), "flat": N_("flat"), "neutral": N_("changed"),
                "n/a": N_("–")}
STATUS_LABELS = {"ok": N_("ok"), "no data": N_("no data in the period"), "not in source": N_("not in this source")}


def readers_table(table: pd.DataFrame, currency: str = "USD", period: str = "", comparison_period: str = "") -> Any:
    """A `kpi_table` as a reader's table (`crmlens.present.Table`): KPI label, value, comparison value, change
    and trend, all formatted and in the language in use."""
    from crmlens import present
    from crmlens.i18n import MISSING_VALUE, _, format_number

    rows = []
    for row in table.itertuples(index=False):
        kpi = get_kpi(row.kpi)
        rows.append({
            "kpi_label": kpi.title(),
            "value_text": kpi.format(row.value, currency),
            "comparison_text": kpi.format(row.comparison_value, currency),
            "change_text": format_number(row.delta_pct, "rate", signed=True) if row.delta_pct is not None
            and not (isinstance(row.delta_pct, float) and math.isnan(row.delta_pct)) else MISSING_VALUE,
            "trend_text": _(TREND_LABELS.get(str(row.trend), str(row.trend))),
            "status_text": _(STATUS_LABELS.get(str(row.status), str(row.status))),
        })
    labels = {"kpi_label": _("KPI"), "value_text": period or _("Value"),
              "comparison_text": comparison_period or _("Comparison"), "change_text": _("Change"),
              "trend_text": _("Trend"), "status_text": _("Status")}
    units = {"value_text": "number", "comparison_text": "number", "change_text": "number"}
    frame = pd.DataFrame(rows, columns=list(labels))
    return present.Table(frame=frame, labels=labels, units=units, title=N_("Headline KPIs"))
