"""KPI tiles as data: what a dashboard's tile row shows, computed from the KPI registry — no widgets here.

`tiles_for(s, names)` returns one `Tile` per KPI of a slice: its value, the comparison period's value and the
change (`crmlens.kpis.change`), a direction-aware colour, the target and attainment where the KPI has one, a
sparkline over the last periods, an alert when a threshold is breached, and — when there is no value — a
plain sentence saying why ("No data: this source has no `leads` table"), never a 0.

A tile's texts (label, formatted numbers, change, target, alert, reason) are in the language in use when it
is made (`crmlens.i18n.language`; KPI labels from the registry, `Kpi.title`); its numbers are the same in
every language.

`tile_html(tile)` / `tiles_html(tiles)` render tiles as small self-contained HTML cards (inline styles, inline
SVG sparkline, no script, no external resource) that carry ``data-kpi`` and ``data-value`` attributes for
browser tests. The widget layer renders the same objects.

Every number comes from the registry: a tile's value is ``kpis.compute_kpi`` on the slice's frames, a sparkline
point is the same KPI on the frames of an earlier period (cut from `Slice.history`), and targets come from
`crmlens.metrics.performance.target_attainment`.
"""

from __future__ import annotations

import html
import math
import re
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from crmlens import data, kpis, notebook
from crmlens.charts import COLORS
from crmlens.dashboard.state import join_clauses, or_list
from crmlens.errors import ParameterError
from crmlens.i18n import _, format_number, n_
from crmlens.metrics import performance
from crmlens.periods import Period, shift_period
from crmlens.schema import SCHEMA, Table

#: Tiles of the executive overview: bookings against target, conversion, pipeline and deal economics.
DEFAULT_OVERVIEW: list[str] = ["bookings_amount", "target_attainment", "win_rate", "pipeline_amount",
                               "new_opportunities", "avg_deal_size", "sales_cycle_days"]
#: Tiles of the sales manager's view: pipeline, attainment, the team's output and its follow-ups.
DEFAULT_SALES_MANAGER: list[str] = ["pipeline_amount", "target_attainment", "bookings_amount", "won_deals", "win_rate",
                                    "activity_completion_rate", "forgotten_accounts"]

#: The keys a KPI's threshold may have: ``min`` (alert when the value is below), ``max`` (above) and
#: ``drop_pct`` (alert when the value fell by at least this fraction vs the comparison period: 0.3 = 30%).
THRESHOLD_KEYS: tuple[str, ...] = ("min", "max", "drop_pct")

#: Colour of a tile's change by trend (`kpis.change`): better is good, worse is bad, the rest grey.
TREND_COLOURS: dict[str, str] = {"better": COLORS["good"], "worse": COLORS["bad"], "flat": COLORS["neutral"],
                                 "neutral": COLORS["neutral"], "n/a": COLORS["neutral"]}

#: KPIs measured against the slice's own target in the targets table (the region's, or the company's in the
#: "all" slice): the column of `performance.target_attainment(..., level="company")` holding that target.
TARGET_COLUMNS: dict[str, str] = {"bookings_amount": "target_amount", "won_deals": "n_target_deals"}

SPARK_WIDTH, SPARK_HEIGHT, SPARK_PAD = 120, 30, 3


@dataclass(frozen=True)
class Tile:
    """One KPI tile of a slice, ready to render.

    `value` is the KPI for the slice (None: no data, and `no_data` says why); `comparison_value` the same KPI
    for the comparison period (`comparison_label`); `delta`, `delta_pct` and `trend` come from
    `kpis.change`. `target` is in the KPI's unit (1.0 for a KPI that is itself an attainment rate, whose
    `target_display` names the amount behind it) and `attainment` is value ÷ target. `sparkline` holds
    (period label, value) for the last periods, oldest first, ending with the slice's period; a period
    without data has None (a gap, never a 0). `alert` is a short text when a threshold is breached.
    """

    kpi: str
    label: str
    unit: str
    direction: str
    description: str
    value: float | None
    display: str
    period_label: str
    comparison_label: str
    comparison_value: float | None
    comparison_display: str
    delta: float | None
    delta_pct: float | None
    delta_display: str
    trend: str
    colour: str
    target: float | None = None
    target_display: str = ""
    attainment: float | None = None
    attainment_display: str = ""
    sparkline: list[tuple[str, float | None]] = field(default_factory=list)
    alert: str | None = None
    no_data: str | None = None
    note: str | None = None  # e.g. "not filtered by team": a filter of the view that could not apply


# ------------------------------------------------------------------------------------ period frames

class _Cache:
    """Cached work of the tiles: earlier periods' frames cut from `Slice.history` and the slice's targets
    (per slice), or earlier periods' KPI values (per source connection, shared by its slices)."""

    def __init__(self) -> None:
        self.frames: dict[tuple[str, str], pd.DataFrame] = {}
        self.targets: dict[str, pd.DataFrame] = {}
        self.values: dict[tuple, float | None] = {}


# Keyed by id(): slices and source infos are unhashable dataclasses. An entry goes when its owner is collected.
_CACHES: dict[int, _Cache] = {}


def _cache_of(owner: object) -> _Cache:
    key = id(owner)
    if key not in _CACHES:
        _CACHES[key] = _Cache()
        weakref.finalize(owner, _CACHES.pop, key, None)
    return _CACHES[key]


def _cache(s: data.Slice) -> _Cache:
    return _cache_of(s)


def clear_cache() -> None:
    """Forget every cached frame and value (e.g. after the data of an open connection changed)."""
    _CACHES.clear()


def cut_to_period(frame: pd.DataFrame, table: Table, period: Period) -> pd.DataFrame:
    """The rows of a fact table's frame that `crmlens.data` would load for `period` (its own rule,
    `data.period_mask`)."""
    keep = data.period_mask(frame, table, period)
    if keep is None:
        return frame
    return frame.loc[keep.to_numpy()].reset_index(drop=True)


class PeriodFrames(Mapping[str, pd.DataFrame]):
    """The validated tables of the slice's region for an earlier `period`, as `open_slice` would give them,
    read lazily: a fact table is cut from `Slice.history(name, n_periods)` on first access (and cached per
    slice), a dimension table is the slice's own. Holds exactly the tables the source has."""

    def __init__(self, s: data.Slice, period: Period, n_periods: int) -> None:
        self._s, self._period, self._n = s, period, n_periods
        self._cache = _cache(s)

    def __contains__(self, name: object) -> bool:
        return name in self._s.info.tables

    def __iter__(self) -> Iterator[str]:
        return iter(self._s.info.tables)

    def __len__(self) -> int:
        return len(self._s.info.tables)

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._s.info.tables:
            raise KeyError(name)
        table = SCHEMA[name]
        if table.kind == "dimension":
            return self._s.tables[name]
        key = (name, self._period.label)
        if key not in self._cache.frames:
            self._cache.frames[key] = cut_to_period(self._s.history(name, self._n), table, self._period)
        return self._cache.frames[key]


def period_context(s: data.Slice, period: Period) -> kpis.KpiContext:
    """The KPI context of `period` in the slice's region (as `notebook.context` builds the current one)."""
    return kpis.KpiContext(period_start=period.start, period_end=period.end, region=s.params.region,
                           as_of=s.as_of, vocabulary=s.info.vocabulary, period_label=period.label,
                           forgotten_days=s.params.forgotten_days, churn_days=s.params.churn_days)


def sparkline_periods(s: data.Slice, n_periods: int = 8) -> list[Period]:
    """The `n_periods` periods of the slice's kind ending with its period, oldest first."""
    if not isinstance(n_periods, int) or isinstance(n_periods, bool) or n_periods < 1:
        raise ParameterError(f"spark_periods: {n_periods!r} is not a positive whole number of periods")
    return [shift_period(s.period, -k) for k in range(n_periods - 1, -1, -1)]


def _sparkline(s: data.Slice, kpi: kpis.Kpi, periods: list[Period], known: Mapping[str, float | None],
               n_periods: int) -> list[tuple[str, float | None]]:
    """(label, value) per period: `known` values first, then the slice's previous / last-year frames, else
    frames cut from the slice's history. Values are cached per source connection × region × KPI × period
    (× as-of), so a slice opened again for the same region, or for a neighbouring period, reuses them."""
    if s.missing(*kpi.tables):
        return [(p.label, None) for p in periods]
    cache = _cache_of(s.info)
    loaded = {s.previous_period.label: s.previous, s.last_year_period.label: s.last_year}
    same_slice = (s.params.region, s.as_of, s.params.as_of, s.params.forgotten_days)
    points = []
    for p in periods:
        if p.label in known:
            points.append((p.label, known[p.label]))
            continue
        key = (kpi.name, p.label, p.start, p.end, *same_slice)
        if key not in cache.values:
            frames = loaded.get(p.label) or PeriodFrames(s, p, n_periods)
            cache.values[key] = kpis.compute_kpi(kpi.name, frames, period_context(s, p))
        points.append((p.label, cache.values[key]))
    return points


# ------------------------------------------------------------------------------------------- targets

def _slice_target(s: data.Slice, ctx: kpis.KpiContext) -> pd.DataFrame:
    """`performance.target_attainment` at the slice's own level: a rep's when the slice is one rep's (the sales
    rep view: its ``state.rep``), else its region's (the company's in "all")."""
    cache = _cache(s)
    rep = slice_rep(s)
    if ctx.period_label not in cache.targets:
        if s.missing("opportunities", "targets"):
            cache.targets[ctx.period_label] = pd.DataFrame(columns=performance.ATTAINMENT_COLUMNS)
        else:
            table = performance.target_attainment(s.tables["opportunities"], s.tables, ctx,
                                                  level="rep" if rep else "company")
            cache.targets[ctx.period_label] = table[table["key"].astype("string") == rep] if rep else table
    return cache.targets[ctx.period_label]


def slice_rep(s: data.Slice) -> str | None:
    """The rep a slice is cut for (a dashboard view's rep filter), or None."""
    state = getattr(s, "state", None)
    return getattr(state, "rep", None)


def _target(s: data.Slice, kpi: kpis.Kpi, value: float | None,
            ctx: kpis.KpiContext) -> tuple[float | None, str, float | None, str]:
    """(target, target_display, attainment, attainment_display) of a KPI; Nones when it has no target."""
    column = TARGET_COLUMNS.get(kpi.name)
    if kpi.target is None and column is None:
        return None, "", None, ""
    row = _slice_target(s, ctx)
    column = column or "target_amount"
    amount = row[column].iloc[0] if len(row) else None
    if amount is None or pd.isna(amount):
        return None, "", None, ""
    amount = float(amount)
    currency = s.params.currency
    if kpi.target is not None:  # the KPI is itself an attainment rate: its target is 100% of the amount
        return 1.0, _("Target {amount}", amount=format_number(amount, "amount", currency)), value, ""
    attainment = value / amount if value is not None and amount else None
    shown = _("{share} of target", share=format_number(attainment, "rate", digits=0)) if attainment is not None else ""
    return amount, _("Target {amount}", amount=kpi.format(amount, currency)), attainment, shown


# -------------------------------------------------------------------------------------------- alerts

def check_thresholds(thresholds: Mapping[str, Mapping[str, float]] | None) -> dict[str, dict[str, float]]:
    """Validated thresholds ``{kpi: {"min": x, "max": y, "drop_pct": z}}`` (any of the keys).

    KPI names must be registered; values are numbers in the KPI's unit (rates as fractions); ``drop_pct`` is
    a fraction in (0, 1] (0.3 alerts on a fall of 30% or more vs the comparison period)."""
    checked: dict[str, dict[str, float]] = {}
    for name, rule in (thresholds or {}).items():
        kpis.get_kpi(name)
        if not isinstance(rule, Mapping) or not rule:
            raise ParameterError(f"thresholds.{name}: {rule!r} is not a mapping of {', '.join(THRESHOLD_KEYS)}")
        unknown = [k for k in rule if k not in THRESHOLD_KEYS]
        if unknown:
            raise ParameterError(f"thresholds.{name}: {', '.join(map(str, unknown))} not allowed; use "
                                 f"{', '.join(THRESHOLD_KEYS)}")
        for key, bound in rule.items():
            if isinstance(bound, bool) or not isinstance(bound, int | float) or math.isnan(bound):
                raise ParameterError(f"thresholds.{name}.{key}: {bound!r} is not a number")
            if key == "drop_pct" and not 0 < bound <= 1:
                raise ParameterError(f"thresholds.{name}.drop_pct: {bound!r} is not a fraction in (0, 1]; "
                                     f"write 0.3 for a fall of 30%")
        checked[name] = {k: float(v) for k, v in rule.items()}
    return checked


def _percent(fraction: float) -> str:
    """30%, 12.5%: a threshold as written (up to three significant digits)."""
    percent = float(f"{fraction * 100:.3g}")
    return format_number(percent / 100, "rate", digits=0 if percent.is_integer() else len(f"{percent:g}".split(".")[1]))


def _alert(kpi: kpis.Kpi, value: float | None, delta_pct: float | None, comparison_label: str,
           rule: Mapping[str, float] | None, currency: str) -> str | None:
    if not rule or value is None:
        return None
    texts = []
    if "min" in rule and value < rule["min"]:
        texts.append(_("Below the minimum of {value}", value=kpi.format(rule["min"], currency)))
    if "max" in rule and value > rule["max"]:
        texts.append(_("Above the maximum of {value}", value=kpi.format(rule["max"], currency)))
    if "drop_pct" in rule and delta_pct is not None and delta_pct <= -rule["drop_pct"]:
        texts.append(_("Down {change} vs {period} (alert at {threshold})", change=_percent(-delta_pct),
                       period=comparison_label, threshold=_percent(rule["drop_pct"])))
    return join_clauses(texts) or None


# --------------------------------------------------------------------------------------------- tiles

def missing_tables_text(missing: Sequence[str]) -> str | None:
    """"No data: this source has no `leads` table" for the tables a source lacks, in the language in use (None
    when none is missing)."""
    if not missing:
        return None
    names = or_list(f"`{t}`" for t in missing)
    return n_("No data: this source has no {names} table", "No data: this source has no {names} tables",
              len(missing), names=names)


def _no_data(s: data.Slice, kpi: kpis.Kpi, target: float | None) -> str:
    """Why a KPI has no value: a table the source lacks, a period without target, or no data in the period."""
    missing = missing_tables_text(s.missing(*kpi.tables))
    if missing:
        return missing
    if kpi.target is not None and target is None:
        return _("No target set for this period")
    return _("No data for this period")


def _delta_display(kpi: kpis.Kpi, value: float | None, change: Mapping[str, object], label: str,
                   currency: str) -> str:
    if value is None:
        return ""
    delta, pct = change["delta"], change["delta_pct"]
    if delta is None:
        return _("no data for {period}", period=label)
    arrow = "▲" if delta > 0 else "▼" if delta < 0 else "="
    if kpi.unit == "rate":
        points = ("+" if delta >= 0 else "") + format_number(delta * 100, "number", digits=1)
        return _("{arrow} {change} pp vs {period}", arrow=arrow, change=points, period=label)
    if pct is not None:
        return _("{arrow} {change} vs {period}", arrow=arrow, change=("+" if pct >= 0 else "")
                 + format_number(pct, "rate"), period=label)
    amount = ("+" if delta >= 0 else "−") + kpi.format(abs(delta), currency)
    return _("{arrow} {change} vs {period}", arrow=arrow, change=amount, period=label)


def tile_for(s: data.Slice, name: str, *, rule: Mapping[str, float] | None = None,
             spark_periods: int = 8) -> Tile:
    """The tile of KPI `name` for slice `s` (see `tiles_for`)."""
    kpi = kpis.get_kpi(name)
    currency = s.params.currency
    ctx, comparison_ctx = notebook.context(s), notebook.context(s, "comparison")
    value = kpis.compute_kpi(name, s.tables, ctx)
    before = kpis.compute_kpi(name, s.comparison, comparison_ctx)
    change = kpis.change(kpi, value, before)
    known = {s.comparison_period.label: before, s.period.label: value}
    target, target_display, attainment, attainment_display = _target(s, kpi, value, ctx)
    return Tile(
        kpi=name, label=kpi.title(), unit=kpi.unit, direction=kpi.direction, description=_(kpi.description),
        value=value, display=kpi.format(value, currency), period_label=s.period.label,
        comparison_label=s.comparison_period.label, comparison_value=before,
        comparison_display=kpi.format(before, currency), delta=change["delta"], delta_pct=change["delta_pct"],
        delta_display=_delta_display(kpi, value, change, s.comparison_period.label, currency),
        trend=str(change["trend"]), colour=TREND_COLOURS[str(change["trend"])],
        target=target, target_display=target_display, attainment=attainment,
        attainment_display=attainment_display,
        sparkline=_sparkline(s, kpi, sparkline_periods(s, spark_periods), known, spark_periods),
        alert=_alert(kpi, value, change["delta_pct"], s.comparison_period.label, rule, currency),
        no_data=None if value is not None else _no_data(s, kpi, target),
    )


def tiles_for(s: data.Slice, names: Sequence[str], *, thresholds: Mapping[str, Mapping[str, float]] | None = None,
              spark_periods: int = 8) -> list[Tile]:
    """One `Tile` per KPI name for slice `s`, in order, its texts in the language in use.

    `thresholds` maps KPI names to ``{"min": x}``, ``{"max": y}`` and/or ``{"drop_pct": z}`` (see
    `check_thresholds`; none by default). Sparklines cover the last `spark_periods` periods of the slice's
    kind; earlier periods are computed from one `Slice.history` frame per table, cut per period and cached
    per slice, so recomputing the tiles of the same slice is cheap.
    """
    rules = check_thresholds(thresholds)
    sparkline_periods(s, spark_periods)
    for name in names:
        kpis.get_kpi(name)
    return [tile_for(s, name, rule=rules.get(name), spark_periods=spark_periods) for name in names]


# ---------------------------------------------------------------------------------------------- HTML

def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _esc_code(text: str) -> str:
    """Escaped text with `name` spans shown as code (table names in "no data" sentences)."""
    return re.sub(r"`([^`]+)`", r'<code style="font-size:12px">\1</code>', _esc(text))


def _raw(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def sparkline_svg(points: Sequence[tuple[str, float | None]], *, label: str = "", colour: str = COLORS["actual"],
                  width: int = SPARK_WIDTH, height: int = SPARK_HEIGHT) -> str:
    """An inline SVG sparkline of (label, value) points (None values leave gaps); '' when there is no value."""
    values = [v for _label, v in points if v is not None]
    if not values:
        return ""
    low, high = min(values), max(values)
    n = len(points)
    step = (width - 2 * SPARK_PAD) / (n - 1) if n > 1 else 0.0

    def xy(i: int, v: float) -> tuple[float, float]:
        x = SPARK_PAD + i * step if n > 1 else width / 2
        y = height / 2 if high == low else SPARK_PAD + (high - v) / (high - low) * (height - 2 * SPARK_PAD)
        return x, y

    runs: list[list[tuple[float, float]]] = [[]]
    for i, (_label, v) in enumerate(points):
        if v is None:
            runs.append([])
        else:
            runs[-1].append(xy(i, v))
    shapes = []
    for run in runs:
        if len(run) > 1:
            coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
            shapes.append(f'<polyline points="{coords}" fill="none" stroke="{_esc(colour)}" stroke-width="1.5" '
                          'stroke-linejoin="round" stroke-linecap="round"/>')
        elif len(run) == 1:
            shapes.append(f'<circle cx="{run[0][0]:.1f}" cy="{run[0][1]:.1f}" r="1.5" fill="{_esc(colour)}"/>')
    last = [(i, v) for i, (_label, v) in enumerate(points) if v is not None][-1]
    if last[0] == n - 1:
        x, y = xy(*last)
        shapes.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{_esc(colour)}"/>')
    span = _("{start} to {end}", start=points[0][0], end=points[-1][0])
    title = _("{label}: {span}", label=label, span=span) if label else span
    return (f'<svg class="crmlens-sparkline" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{_esc(title)}"><title>{_esc(title)}</title>{"".join(shapes)}</svg>')


_CARD_STYLE = ("box-sizing:border-box;min-width:190px;max-width:260px;flex:1 1 190px;padding:10px 12px;"
               "background:#fff;border:1px solid #ddd;border-top:4px solid {colour};border-radius:6px;"
               "font-family:Inter,Segoe UI,Helvetica,Arial,sans-serif;color:#222")


def tile_html(tile: Tile) -> str:
    """A small self-contained HTML card for a tile (escaped text, inline styles, inline SVG, no script).

    The card carries ``data-kpi``, ``data-value`` (the raw value, `repr` of the float; empty for no data),
    ``data-comparison-value``, ``data-target``, ``data-attainment``, ``data-trend`` and ``data-alert``."""
    attrs = {"class": "crmlens-tile", "data-kpi": tile.kpi, "data-value": _raw(tile.value),
             "data-comparison-value": _raw(tile.comparison_value), "data-target": _raw(tile.target),
             "data-attainment": _raw(tile.attainment), "data-trend": tile.trend,
             "data-alert": "1" if tile.alert else "", "title": tile.description,
             "style": _CARD_STYLE.format(colour=tile.colour if tile.value is not None else COLORS["neutral"])}
    parts = [f'<div class="crmlens-tile-label" style="font-size:12px;color:#555;text-transform:uppercase;'
             f'letter-spacing:.03em">{_esc(tile.label)}</div>']
    if tile.value is None:
        reason = tile.no_data or _("No data")
        parts.append(f'<div class="crmlens-tile-nodata" style="font-size:13px;color:{COLORS["neutral"]};'
                     f'margin:6px 0">{_esc_code(reason)}</div>')
    else:
        parts.append('<div class="crmlens-tile-value" style="font-size:22px;font-weight:600;margin:2px 0;'
                     f'white-space:nowrap">{_esc(tile.display)}</div>')
        if tile.delta_display:
            parts.append(f'<div class="crmlens-tile-delta" style="font-size:12px;color:{_esc(tile.colour)}">'
                         f'{_esc(tile.delta_display)}</div>')
        target = " · ".join(t for t in (tile.target_display, tile.attainment_display) if t)
        if target:
            parts.append(f'<div class="crmlens-tile-target" style="font-size:12px;color:#555">{_esc(target)}</div>')
        svg = sparkline_svg(tile.sparkline, label=tile.label)
        if svg:
            parts.append(f'<div style="margin-top:4px">{svg}</div>')
    if tile.note:
        parts.append(f'<div class="crmlens-tile-note" style="font-size:11px;color:#8a6d00;margin-top:2px">'
                     f'{_esc(tile.note)}</div>')
    if tile.alert:
        parts.append(f'<div class="crmlens-tile-alert" role="alert" style="margin-top:6px;padding:2px 6px;'
                     f'border-radius:3px;font-size:12px;background:{COLORS["bad"]};color:#fff">'
                     f'⚠ {_esc(tile.alert)}</div>')
    attributes = " ".join(f'{k}="{_esc(v)}"' for k, v in attrs.items())
    return f"<div {attributes}>{''.join(parts)}</div>"


def tiles_html(tiles: Sequence[Tile]) -> str:
    """Tiles laid out in a wrapping flex row."""
    cards = "".join(tile_html(t) for t in tiles)
    return f'<div class="crmlens-tiles" style="display:flex;flex-wrap:wrap;gap:12px;align-items:stretch">{cards}</div>'

