"""Alerts (关键指标预警): KPI thresholds, anomalies in every KPI's history, and the cross-region exception report.

**KPI history.** `kpi_history` computes registered KPIs for each month of the last `months` months (up to the
as-of date) with the registry's own functions on the slice's history — the numbers the notebooks show.

**Thresholds** come from ``params/alerts.yaml`` (`load_alerts`), one rule per KPI and optionally per region:
``below`` / ``above`` (bounds on the month's value), ``drop`` / ``rise`` (a fall or rise of at least this
fraction vs the mean of the `baseline` months before), and a severity. The file is validated when read; an error
names the file, the line and what is accepted.

**Anomalies** (`anomalies`) are judged one month at a time, out of sample, once a year of history is behind it:
the month's expected value is the median of the `baseline` previous months after removing the month-of-year
effect (learnt from the months before: with two years or more, each month's mean deviation from the 12-month
level; with one, how far the same month last year stood from its neighbours), on a log scale for counts and
amounts (a count's chance variation, √n, is the least spread assumed); the expected range is ± `z` robust
standard deviations (1.4826 × the median absolute deviation of the previous 12 months' surprises). A month outside
it is an anomaly, stated with its expected range.

**Cross-region exceptions** (`cross_region`): every region's KPI change vs the comparison period side by side; a
region whose change is far from its peers' (robust z-score) is flagged with the likely driver — for counts and
amounts, the segment (product line, channel, team...) whose own change explains most of the region's move.

Alerts are findings too (severity act/watch) and records (`Alert.record`) the run writes to ``alerts.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from crmlens import i18n, kpis, paths
from crmlens.errors import ParameterError
from crmlens.findings import Finding, finding
from crmlens.i18n import N_, _, n_

#: MIME type of an alert record in an executed notebook (the run writes them to ``<region>/alerts.json``).
ALERT_MIMETYPE = "application/vnd.crmlens.alert+json"
DEFAULT_FILE = "alerts.yaml"
#: Robust z beyond which a month is an anomaly.
ANOMALY_Z = 3.5
#: Months a month's expected value is taken from.
BASELINE_MONTHS = 6
#: Months of history a month needs behind it to be judged (a year: seasonality can be told from a surprise).
MIN_HISTORY = 12
_LOG_UNITS = ("count", "amount")
KIND_LABELS = {"threshold": N_("Threshold"), "anomaly": N_("Anomaly"), "exception": N_("Cross-region exception")}


# --------------------------------------------------------------------------------------------- configuration

class AlertRule(BaseModel):
    """One threshold: a KPI of the registry, optionally one region, its bounds and severity."""

    model_config = ConfigDict(extra="forbid")
    kpi: str = Field(description="A KPI name of the registry (docs/kpis.md).")
    region: str | None = Field(None, description="Only this region (a region_id); empty: every region and all.")
    below: float | None = Field(None, description="Alert when the month's value is below this.")
    above: float | None = Field(None, description="Alert when the month's value is above this.")
    drop: float | None = Field(None, gt=0, le=1, description="Alert on a fall of at least this fraction vs the "
                               "mean of the `baseline` months before (0.3 = 30 %).")
    rise: float | None = Field(None, gt=0, description="Alert on a rise of at least this fraction vs that mean.")
    baseline: int = Field(BASELINE_MONTHS, ge=1, le=24, description="Months the drop/rise is measured against.")
    severity: Literal["act", "watch"] = Field("watch", description="act (red) or watch (orange).")

    @field_validator("kpi")
    @classmethod
    def _known_kpi(cls, value: str) -> str:
        known = kpis.load_all()
        if value not in known:
            raise ValueError(f"unknown KPI {value!r}; use one of: {', '.join(sorted(known))}")
        return value

    @model_validator(mode="after")
    def _has_a_bound(self) -> AlertRule:
        if all(v is None for v in (self.below, self.above, self.drop, self.rise)):
            raise ValueError("a rule needs at least one of below, above, drop, rise")
        return self


class AnomalySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    z: float = Field(ANOMALY_Z, gt=0, description="Robust z-score beyond which a month is an anomaly.")
    months: int = Field(36, ge=6, le=60, description="Months of KPI history examined.")
    kpis: list[str] | None = Field(None, description="KPIs examined (default: every KPI the source supports).")


class AlertsConfig(BaseModel):
    """The content of ``params/alerts.yaml``."""

    model_config = ConfigDict(extra="forbid")
    thresholds: list[AlertRule] = Field(default_factory=list)
    anomalies: AnomalySettings = Field(default_factory=AnomalySettings)

    def rules_for(self, region: str) -> list[AlertRule]:
        """The rules that apply to `region` (a region's own rule replaces the general one of the same KPI)."""
        own = {r.kpi for r in self.thresholds if r.region == region}
        return [r for r in self.thresholds if r.region == region or (r.region is None and r.kpi not in own)]


def _lines(node: Any, path: tuple = ()) -> dict[tuple, int]:
    """YAML path (keys and list indexes) → 1-based line of each node."""
    out = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out.update(_lines(value, (*path, key.value)))
            out[(*path, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.update(_lines(item, (*path, i)))
    return out


def load_alerts(path: str | Path | None = None) -> AlertsConfig:
    """Read and validate the alerts file (default ``params/alerts.yaml``; absent: no thresholds). Errors name the
    file, the line, the field and what is accepted."""
    path = Path(path) if path else paths.PARAMS_DIR / DEFAULT_FILE
    if not path.exists():
        if path.name == DEFAULT_FILE and path.parent == paths.PARAMS_DIR:
            return AlertsConfig()
        raise ParameterError(f"alerts file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text) or {}
        lines = _lines(yaml.compose(text)) if text.strip() else {}
    except yaml.YAMLError as err:
        raise ParameterError(f"alerts file {path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ParameterError(f"alerts file {path}: expected a mapping with `thresholds:` and `anomalies:`")
    try:
        return AlertsConfig.model_validate(raw)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            loc = tuple(e["loc"])
            line = next((lines[loc[:i]] for i in range(len(loc), -1, -1) if loc[:i] in lines), None)
            where = ".".join(str(x) for x in loc) or "file"
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = "unknown key; accepted: " + ", ".join(_fields_at(loc))
            problems.append(f"  line {line}: {where}: {msg}" if line else f"  {where}: {msg}")
        raise ParameterError(f"alerts file {path} is not valid:\n" + "\n".join(problems)) from None


def tile_thresholds(config: AlertsConfig, region: str) -> dict[str, dict[str, float]]:
    """The dashboard tiles' alert badges from the thresholds file (`crmlens.dashboard.tiles.check_thresholds`):
    ``below`` → ``min``, ``above`` → ``max``, ``drop`` → ``drop_pct`` (on a dashboard, a fall vs the comparison
    period the viewer chose). ``rise`` has no badge."""
    out: dict[str, dict[str, float]] = {}
    for rule in config.rules_for(region):
        bounds = {"min": rule.below, "max": rule.above, "drop_pct": rule.drop}
        bounds = {k: float(v) for k, v in bounds.items() if v is not None}
        if bounds:
            out[rule.kpi] = bounds
    return out


def _fields_at(loc: tuple) -> list[str]:
    if loc and loc[0] == "thresholds":
        return list(AlertRule.model_fields)
    if loc and loc[0] == "anomalies":
        return list(AnomalySettings.model_fields)
    return list(AlertsConfig.model_fields)


# --------------------------------------------------------------------------------------------- alert records

@dataclass(frozen=True)
class Alert:
    """One alert: which KPI, where, when, the value, what was expected or allowed, how urgent, and the text."""

    kind: str  # threshold, anomaly, exception
    kpi: str
    region: str
    period: str  # the month (YYYY-MM) or the analysis period
    value: float | None
    severity: str
    text: str
    expected_low: float | None = None
    expected_high: float | None = None
    bound: float | None = None
    driver: str = ""
    recommendation: str = ""

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.kpi}:{self.region}:{self.period}"

    def record(self) -> dict[str, Any]:
        out = {"id": self.id, **asdict(self), "label": _(kpis.get_kpi(self.kpi).label)}
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in out.items()}

    def as_finding(self) -> Finding:
        return Finding(text=self.text, severity=self.severity, recommendation=self.recommendation,  # type: ignore[arg-type]
                       kpi=self.kpi, weight=0.9 if self.severity == "act" else 0.6)


# --------------------------------------------------------------------------------------------- KPI history

def month_starts(end: pd.Timestamp, months: int) -> pd.DatetimeIndex:
    """The first days of the `months` whole months ending with the month of `end`."""
    last = pd.Timestamp(end).to_period("M").to_timestamp()
    return pd.date_range(last - pd.DateOffset(months=months - 1), last, freq="MS")


def kpi_history(frames: Mapping[str, pd.DataFrame], ctx: kpis.KpiContext, names: Iterable[str], *,
                end: pd.Timestamp, months: int = 24) -> pd.DataFrame:
    """KPI values per month: columns kpi, month (YYYY-MM), start, value (None: no data), complete (False for the
    month of `end` when `end` is before the month's last day)."""
    rows = []
    starts = month_starts(end, months)
    for name in names:
        kpi = kpis.get_kpi(name)
        if any(t not in frames for t in kpi.tables):
            continue
        for start in starts:
            stop = start + pd.DateOffset(months=1)
            c = kpis.KpiContext(period_start=start, period_end=stop, region=ctx.region, as_of=ctx.as_of,
                                vocabulary=ctx.vocabulary, period_label=start.strftime("%Y-%m"),
                                forgotten_days=ctx.forgotten_days, churn_days=ctx.churn_days)
            rows.append({"kpi": name, "month": start.strftime("%Y-%m"), "start": start,
                         "value": kpis.compute_kpi(name, frames, c), "complete": bool(stop <= end + pd.Timedelta(
                             seconds=1))})
    return pd.DataFrame(rows, columns=["kpi", "month", "start", "value", "complete"])


# --------------------------------------------------------------------------------------------- anomalies

def expected_range(values: pd.Series, months: pd.DatetimeIndex | pd.Series, *, log: bool, z: float = ANOMALY_Z,
                   baseline: int = BASELINE_MONTHS, count: bool = False) -> pd.DataFrame:
    """Out-of-sample expected value and range of each month of a monthly series (see the module doc): columns
    expected, low, high, robust_z. Months without enough history before them have NaN."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(float)
    month_of_year = pd.DatetimeIndex(months).month.to_numpy()
    y = np.log1p(np.clip(x, 0, None)) if log else x.copy()
    n = len(y)
    expected, scale = np.full(n, np.nan), np.full(n, np.nan)
    surprise = np.full(n, np.nan)
    for i in range(n):
        past = np.arange(max(0, i - 36), i)
        past = past[~np.isnan(y[past])]
        if len(past) < max(MIN_HISTORY, baseline + 3) or np.isnan(y[i]):
            continue
        season = np.zeros(13)
        if i >= 24:  # month-of-year effect from the months before (two years or more)
            level = pd.Series(y[past]).rolling(12, min_periods=12, center=True).mean().to_numpy()
            dev = pd.Series(y[past] - level).groupby(month_of_year[past]).mean()
            season[dev.index.to_numpy()] = np.nan_to_num(dev.to_numpy())
        else:  # one year behind: how far the same month last year stood from its neighbours
            around = [j for j in range(i - 15, i - 8) if j != i - 12 and j >= 0 and not np.isnan(y[j])]
            if around and not np.isnan(y[i - 12]):
                effect = y[i - 12] - np.median(y[around])
                season[month_of_year[i]] = effect
                for j in around:  # the neighbours' own months carry no effect of their own here
                    season[month_of_year[j]] = 0.0
        adjusted = y[past] - season[month_of_year[past]]
        expected[i] = np.median(adjusted[-baseline:]) + season[month_of_year[i]]
        surprise[i] = y[i] - expected[i]
        earlier = surprise[max(0, i - 24):i]
        earlier = earlier[~np.isnan(earlier)]
        if len(earlier) >= 4:
            mad = np.median(np.abs(earlier - np.median(earlier))) * 1.4826
            floor = 1e-9
            if log:  # counts vary by chance at least as a Poisson count does: sd of log(x) ≈ 1/√x
                floor = max(0.02, 1.0 / np.sqrt(max(np.expm1(expected[i]), 1.0))) if count else 0.02
            scale[i] = max(mad, floor)
    low, high = expected - z * scale, expected + z * scale
    if log:
        expected, low, high = np.expm1(expected), np.expm1(low), np.expm1(high)
        low = np.clip(low, 0, None)
    return pd.DataFrame({"expected": expected, "low": low, "high": high,
                         "robust_z": surprise / scale}, index=getattr(values, "index", None))


def anomalies(history: pd.DataFrame, region: str, *, z: float = ANOMALY_Z, baseline: int = BASELINE_MONTHS
              ) -> pd.DataFrame:
    """Every complete month of every KPI of `kpi_history` with its expected range and whether it is an anomaly
    (outside the range, in either direction). Columns kpi, month, value, expected, low, high, robust_z,
    is_anomaly, direction ("up"/"down"), bad (the move is bad for the KPI)."""
    parts = []
    for name, h in history[history["complete"]].groupby("kpi", sort=False):
        h = h.sort_values("start")
        seen = pd.to_numeric(h["value"], errors="coerce").fillna(0).ne(0).cumsum().to_numpy() > 0
        h = h[seen]  # the months before the KPI's first value are before the source's data, not zeros
        kpi = kpis.get_kpi(name)
        r = expected_range(h["value"].astype(float), pd.DatetimeIndex(h["start"]), log=kpi.unit in _LOG_UNITS,
                           z=z, baseline=baseline, count=kpi.unit == "count")
        out = h[["kpi", "month", "value"]].reset_index(drop=True).join(r.reset_index(drop=True))
        out["is_anomaly"] = (out["robust_z"].abs() > z).fillna(False)
        out["direction"] = np.where(out["robust_z"] > 0, "up", "down")
        out["bad"] = np.where(out["direction"] == "up", kpi.direction == "lower", kpi.direction == "higher")
        parts.append(out)
    cols = ["kpi", "month", "value", "expected", "low", "high", "robust_z", "is_anomaly", "direction", "bad"]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    out.attrs["region"] = region
    return out


def region_shown(region: str) -> str:
    """A region as a reader reads it: "the whole company" for ``all``."""
    return _("the whole company") if region == "all" else region


def anomaly_alerts(found: pd.DataFrame, region: str, months: Sequence[str], currency: str = "USD") -> list[Alert]:
    """Alerts of the anomalies in `months` (the analysis period's months): a bad move is act (|z| ≥ 2 × the
    threshold) or watch; a good one is not an alert."""
    rows = found[found["is_anomaly"] & found["bad"] & found["month"].isin(list(months))]
    out = []
    for r in rows.itertuples():
        kpi = kpis.get_kpi(r.kpi)
        text = _("{label} in {region} was {value} in {month}, {direction} the expected {low}–{high}.",
                 label=_(kpi.label), region=region_shown(region), value=kpi.format(r.value, currency), month=r.month,
                 direction=_("below") if r.direction == "down" else _("above"),
                 low=kpi.format(r.low, currency), high=kpi.format(r.high, currency))
        sev = "act" if abs(r.robust_z) >= 2 * ANOMALY_Z else "watch"
        out.append(Alert("anomaly", r.kpi, region, r.month, float(r.value), sev, text, float(r.low), float(r.high),
                         recommendation=_("Check what changed in {month} (a campaign stopped, a form broken, a rep "
                                          "left, a data feed late) before the next month closes.", month=r.month)))
    return out


# --------------------------------------------------------------------------------------------- thresholds

def threshold_hits(history: pd.DataFrame, rules: Iterable[AlertRule]) -> pd.DataFrame:
    """Every complete month where a rule's bound is breached: kpi, month, value, rule (below/above/drop/rise),
    bound, reference (the baseline mean for drop/rise), severity."""
    rows = []
    for rule in rules:
        h = history[(history["kpi"] == rule.kpi) & history["complete"]].sort_values("start")
        values = h["value"].astype(float).reset_index(drop=True)
        trailing = values.shift(1).rolling(rule.baseline, min_periods=rule.baseline).mean()
        for i, (month, value) in enumerate(zip(h["month"], values, strict=True)):
            if pd.isna(value):
                continue
            checks = (("below", rule.below, value < (rule.below if rule.below is not None else -np.inf), None),
                      ("above", rule.above, value > (rule.above if rule.above is not None else np.inf), None))
            for name, bound, hit, ref in checks:
                if bound is not None and hit:
                    rows.append((rule.kpi, month, value, name, bound, ref, rule.severity))
            ref = trailing.iloc[i]
            if pd.notna(ref) and ref > 0:
                if rule.drop is not None and value <= ref * (1 - rule.drop):
                    rows.append((rule.kpi, month, value, "drop", rule.drop, ref, rule.severity))
                if rule.rise is not None and value >= ref * (1 + rule.rise):
                    rows.append((rule.kpi, month, value, "rise", rule.rise, ref, rule.severity))
    return pd.DataFrame(rows, columns=["kpi", "month", "value", "rule", "bound", "reference", "severity"])


def threshold_alerts(hits: pd.DataFrame, region: str, months: Sequence[str], currency: str = "USD") -> list[Alert]:
    """Alerts of the threshold breaches in `months`."""
    out = []
    for r in hits[hits["month"].isin(list(months))].itertuples():
        kpi = kpis.get_kpi(r.kpi)
        value = kpi.format(r.value, currency)
        if r.rule in ("drop", "rise"):
            text = _("{label} in {region} was {value} in {month}: {change} vs the average of the months before "
                     "({reference}); the alert is set at {bound}.", label=_(kpi.label), region=region_shown(region),
                     value=value,
                     month=r.month, change=f"{(r.value / r.reference - 1):+.0%}",
                     reference=kpi.format(r.reference, currency),
                     bound=("-" if r.rule == "drop" else "+") + f"{r.bound:.0%}")
        else:
            text = _("{label} in {region} was {value} in {month}, {side} the alert threshold of {bound}.",
                     label=_(kpi.label), region=region_shown(region), value=value, month=r.month,
                     side=_("below") if r.rule == "below" else _("above"), bound=kpi.format(r.bound, currency))
        out.append(Alert("threshold", r.kpi, region, r.month, float(r.value), r.severity, text,
                         bound=float(r.bound), recommendation=_(
                             "Find the cause with the KPI's owner this week; the threshold is in params/alerts.yaml.")))
    return out


def describe_alerts(alerts: Sequence[Alert]) -> Finding | None:
    """One finding summing up the alerts of the period (the alerts themselves are findings of their own)."""
    if not alerts:
        return finding(_("No KPI crossed a threshold or moved outside its expected range in the period."), "good",
                       weight=0.2)
    act = sum(a.severity == "act" for a in alerts)
    return finding(n_("{n} alert in the period ({act} to act on): {what}.",
                      "{n} alerts in the period ({act} to act on): {what}.", len(alerts), n=len(alerts), act=act,
                      what=("；" if i18n.current() == "zh" else "; ").join(
                          sorted({_(kpis.get_kpi(a.kpi).label) for a in alerts}))),
                   "act" if act else "watch", weight=min(1.0, 0.5 + 0.1 * len(alerts)))


# --------------------------------------------------------------------------------------------- cross-region

def cross_region(table: pd.DataFrame, *, z: float = 2.5, min_regions: int = 4, min_base: float = 0.2
                 ) -> pd.DataFrame:
    """Regions side by side: `table` has kpi, region, value, comparison_value; adds change (relative, or the
    difference for rates and scores), robust_z of the change among the regions, and is_outlier. A count or amount
    whose comparison value is below `min_base` × the regions' median is too small for a relative change (a region
    going from 3 to 30 is not a +900 % story): its change is left empty."""
    t = table.copy()
    units = t["kpi"].map(lambda k: kpis.get_kpi(k).unit)
    relative = units.isin(_LOG_UNITS)
    base = t["comparison_value"].astype(float)
    typical = base.groupby(t["kpi"]).transform("median")
    base = base.where(~relative | (base >= min_base * typical))
    t["change"] = np.where(relative, t["value"].astype(float) / base.where(base != 0) - 1,
                           t["value"].astype(float) - base)
    t["robust_z"] = np.nan
    for _name, g in t.groupby("kpi"):
        ch = g["change"].dropna()
        if len(ch) < min_regions:
            continue
        med = ch.median()
        mad = (ch - med).abs().median() * 1.4826
        spread = max(mad, ch.std() * 0.3, 1e-9)
        t.loc[ch.index, "robust_z"] = (ch - med) / spread
    t["is_outlier"] = (t["robust_z"].abs() >= z).fillna(False)
    return t
