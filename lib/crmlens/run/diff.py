"""`crmlens diff RUN_A RUN_B`: what changed between two runs, inputs first, then every KPI that moved.

The question it answers is "why did the Q3 number move?": it compares the two manifests (parameters, data
fingerprint, code, packages, task statuses) and every ``<region>/kpis.parquet`` (layout: docs/run.md).

    diff = diff_runs(resolve_run("20261123-101500"), resolve_run("latest"))
    print(diff.to_text())          # or json.dumps(diff.to_dict())

KPI values are compared exactly (two missing values are equal). A run id is looked up under
`crmlens.paths.OUTPUTS_DIR`; a folder path is used as given.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmlens import paths
from crmlens.errors import RunError

#: Columns of kpis.parquet the diff needs.
KPI_KEY = ("region", "period", "notebook", "kpi")
_NEEDED_COLUMNS = (*KPI_KEY, "value")

_ABSENT = object()  # a key present in one run only


# ------------------------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class InputChange:
    """One input that differs between the runs.

    `section` is one of ``parameters``, ``task parameters``, ``data``, ``code``, ``packages``, ``environment``;
    `key` names the input (``base.comparison``, a table, ``git_commit``, a package); `old`/`new` are its values
    (None when absent from that run); `detail` says it in words; `tasks` lists the tasks concerned (task
    parameters only).
    """

    section: str
    key: str
    old: Any
    new: Any
    detail: str
    tasks: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        out = {"section": self.section, "key": self.key, "old": _json_safe(self.old), "new": _json_safe(self.new),
               "detail": self.detail}
        if self.tasks:
            out["tasks"] = list(self.tasks)
        return out


@dataclass(frozen=True)
class KpiChange:
    """One KPI of one region × period × notebook: changed (both values), added (`old` None) or removed."""

    region: str
    period: str
    notebook: str
    kpi: str
    label: str
    old: float | None
    new: float | None
    old_display: str | None
    new_display: str | None
    kind: str = "changed"  # changed | added | removed

    @property
    def delta(self) -> float | None:
        """new − old (None unless both are numbers)."""
        if _is_number(self.old) and _is_number(self.new):
            return self.new - self.old  # type: ignore[operator]
        return None

    @property
    def rel_change(self) -> float | None:
        """(new − old) / |old| (None when old is 0 or missing)."""
        delta = self.delta
        if delta is None or not self.old:
            return None
        return delta / abs(self.old)  # type: ignore[arg-type]

    @property
    def key(self) -> tuple[str, str, str, str]:
        """(region, period, notebook, kpi)."""
        return (self.region, self.period, self.notebook, self.kpi)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"region": self.region, "period": self.period, "notebook": self.notebook, "kpi": self.kpi,
                "label": self.label, "kind": self.kind, "old": _json_safe(self.old), "new": _json_safe(self.new),
                "delta": _json_safe(self.delta), "rel_change": _json_safe(self.rel_change),
                "old_display": self.old_display, "new_display": self.new_display}


@dataclass(frozen=True)
class TaskChange:
    """A task whose status differs (None: the task is absent from that run)."""

    task: str
    region: str
    period: str
    notebook: str
    old: str | None
    new: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"task": self.task, "region": self.region, "period": self.period, "notebook": self.notebook,
                "old": self.old, "new": self.new}


@dataclass(frozen=True)
class ForecastChange:
    """How a region's pipeline forecast of a period moved between the runs, and the deals that moved it
    (`crmlens.forecast.snapshots.drift`)."""

    region: str
    period: str  # the analysis period of the task
    forecast_period: str
    as_of_a: str | None
    as_of_b: str | None
    expected_a: float
    expected_b: float
    by_change: dict[str, float]  # change kind → effect
    deals: list[dict[str, Any]]  # the deals with the largest effects

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"region": self.region, "period": self.period, "forecast_period": self.forecast_period,
                "as_of_a": self.as_of_a, "as_of_b": self.as_of_b, "expected_a": _json_safe(self.expected_a),
                "expected_b": _json_safe(self.expected_b), "by_change": {k: _json_safe(v) for k, v in
                                                                         self.by_change.items()},
                "deals": [{k: _json_safe(v) for k, v in d.items()} for d in self.deals]}


@dataclass
class RunDiff:
    """The differences between run A (before) and run B (after)."""

    run_a: Path
    run_b: Path
    run_id_a: str
    run_id_b: str
    inputs: list[InputChange] = field(default_factory=list)
    kpis_changed: list[KpiChange] = field(default_factory=list)
    kpis_added: list[KpiChange] = field(default_factory=list)
    kpis_removed: list[KpiChange] = field(default_factory=list)
    kpis_unchanged: int = 0
    tasks: list[TaskChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    forecasts: list[ForecastChange] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """True when inputs and KPIs are the same (task statuses such as ok → reused do not count)."""
        return not (self.inputs or self.kpis_changed or self.kpis_added or self.kpis_removed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for ``crmlens diff --json``); NaN becomes null."""
        return {
            "run_a": {"run_id": self.run_id_a, "path": str(self.run_a)},
            "run_b": {"run_id": self.run_id_b, "path": str(self.run_b)},
            "identical": self.identical,
            "inputs": [c.to_dict() for c in self.inputs],
            "tasks": [c.to_dict() for c in self.tasks],
            "kpis_changed": [c.to_dict() for c in self.kpis_changed],
            "kpis_added": [c.to_dict() for c in self.kpis_added],
            "kpis_removed": [c.to_dict() for c in self.kpis_removed],
            "kpis_unchanged": self.kpis_unchanged,
            "forecasts": [c.to_dict() for c in self.forecasts],
            "summary": {"inputs_changed": len(self.inputs), "tasks_changed": len(self.tasks),
                        "kpis_changed": len(self.kpis_changed), "kpis_unchanged": self.kpis_unchanged,
                        "kpis_added": len(self.kpis_added), "kpis_removed": len(self.kpis_removed)},
            "notes": list(self.notes),
        }

    def to_text(self) -> str:
        """A readable report: inputs that changed, task statuses, KPIs that changed, summary."""
        lines = [f"Run A: {self.run_id_a}  ({self.run_a})", f"Run B: {self.run_id_b}  ({self.run_b})", ""]
        if self.identical:
            lines.append(f"The runs are identical in inputs and KPIs ({self.kpis_unchanged} KPIs compared, "
                         "none changed).")
            if self.tasks:
                lines += ["", *_task_lines(self.tasks)]
            lines += [f"  note: {n}" for n in self.notes]
            return "\n".join(lines) + "\n"

        lines.append("Inputs that changed")
        if self.inputs:
            lines += _input_lines(self.inputs)
        else:
            lines.append("  none: parameters, data, code and packages are the same in both runs")
        if self.tasks:
            lines += ["", *_task_lines(self.tasks)]
        lines += ["", "KPIs that changed"]
        if self.kpis_changed:
            lines += _table(["region", "period", "notebook", "kpi", "old", "new", "delta", "change", "display"],
                            [_kpi_row(c) for c in sorted(self.kpis_changed, key=lambda c: c.key)])
        else:
            lines.append("  none")
        for title, items in (("KPIs only in run B (added)", self.kpis_added),
                             ("KPIs only in run A (removed)", self.kpis_removed)):
            if items:
                value = (lambda c: c.new) if items is self.kpis_added else (lambda c: c.old)
                shown = (lambda c: c.new_display) if items is self.kpis_added else (lambda c: c.old_display)
                rows = [[c.region, c.period, c.notebook, c.kpi, _num(value(c)), shown(c) or ""]
                        for c in sorted(items, key=lambda c: c.key)]
                lines += ["", title, *_table(["region", "period", "notebook", "kpi", "value", "display"], rows)]
        if self.forecasts:
            lines += ["", "Pipeline forecasts that moved", *_forecast_lines(self.forecasts)]
        lines += [""] + [f"note: {n}" for n in self.notes]
        lines.append(self.summary())
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        """``N KPIs changed, M unchanged`` (+ added/removed when any)."""
        text = f"{len(self.kpis_changed)} {_plural('KPI', len(self.kpis_changed))} changed, " \
               f"{self.kpis_unchanged} unchanged"
        extra = []
        if self.kpis_added:
            extra.append(f"{len(self.kpis_added)} only in run B")
        if self.kpis_removed:
            extra.append(f"{len(self.kpis_removed)} only in run A")
        if extra:
            text += ", " + ", ".join(extra)
        return text + f"; {len(self.inputs)} {_plural('input', len(self.inputs))} changed."


# ------------------------------------------------------------------------------------------ reading runs


def resolve_run(ref: str | Path) -> Path:
    """The run directory for `ref`: a folder path (or its manifest.json), or a run id (or ``latest``) under
    `crmlens.paths.OUTPUTS_DIR`. RunError naming what was tried when there is no such folder."""
    raw = Path(ref).expanduser()
    if raw.name == "manifest.json" and raw.is_file():
        return raw.parent
    if raw.is_dir():
        return raw
    tried = [str(raw)]
    text = str(ref)
    if "/" not in text and "\\" not in text and text not in ("", ".", ".."):
        under = paths.OUTPUTS_DIR / text
        if under.is_dir():
            return under
        tried.append(str(under))
    raise RunError(f"run {text!r}: no such run folder (looked for {' and '.join(tried)}); give a run folder or a "
                   f"run id under {paths.OUTPUTS_DIR}")


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The run's manifest.json as a dict; RunError naming the file when it is missing or not a manifest."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: run folder does not exist")
    path = run_dir / "manifest.json"
    if not path.is_file():
        raise RunError(f"{path}: manifest.json is missing; {run_dir} is not a finished `crmlens run` folder")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise RunError(f"{path}: cannot read the manifest: {err}") from None
    except json.JSONDecodeError as err:
        raise RunError(f"{path}: the manifest is not valid JSON (line {err.lineno}, column {err.colno}: "
                       f"{err.msg})") from None
    if not isinstance(manifest, dict):
        raise RunError(f"{path}: the manifest must be a JSON object, not a {type(manifest).__name__}")
    for key, kind in (("parameters", dict), ("data", dict), ("code", dict), ("packages", dict), ("tasks", list)):
        if manifest.get(key) is not None and not isinstance(manifest[key], kind):
            raise RunError(f"{path}: manifest field {key!r} must be a JSON {'object' if kind is dict else 'array'}")
    return manifest


def _read_kpis(run_dir: Path, manifest: Mapping[str, Any]) -> tuple[dict[tuple[str, ...], dict[str, Any]], list[str]]:
    """Every KPI of the run by (region, period, notebook, kpi): from each ``<region>/kpis.parquet``, and from
    the manifest's task records for regions without one. Returns the KPIs and notes."""
    import pandas as pd

    found: dict[tuple[str, ...], dict[str, Any]] = {}
    notes: list[str] = []
    covered: set[str] = set()
    for path in sorted(run_dir.glob("*/kpis.parquet")):
        try:
            frame = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises several kinds for a damaged file
            raise RunError(f"{path}: cannot read the KPI table: {err}") from None
        missing = [c for c in _NEEDED_COLUMNS if c not in frame.columns]
        if missing:
            raise RunError(f"{path}: the KPI table lacks column(s) {', '.join(missing)} (see docs/run.md)")
        covered.add(path.parent.name)
        for rec in frame.to_dict("records"):
            key = tuple(str(rec[c]) for c in KPI_KEY)
            covered.add(key[0])
            found.setdefault(key, {"value": _clean(rec.get("value")), "label": _text(rec.get("label")),
                                   "display": _text(rec.get("display"))})
    fallback = set()
    for task in manifest.get("tasks") or []:
        region = str(task.get("region", ""))
        if region in covered or not isinstance(task.get("kpis"), list):
            continue
        fallback.add(region)
        for rec in task["kpis"]:
            if not isinstance(rec, Mapping) or "kpi" not in rec:
                continue
            key = (region, str(task.get("period", "")), str(task.get("notebook", "")), str(rec["kpi"]))
            found.setdefault(key, {"value": _clean(rec.get("value")), "label": _text(rec.get("label")),
                                   "display": _text(rec.get("display"))})
    if fallback:
        notes.append(f"{run_dir}: no kpis.parquet for {', '.join(sorted(fallback))}; used the KPIs in its manifest")
    return found, notes


# --------------------------------------------------------------------------------------------- comparing


def diff_runs(run_a: Path | str, run_b: Path | str) -> RunDiff:
    """Compare run A (before) with run B (after): inputs, task statuses and every KPI. Either may be a run
    folder or a run id (see `resolve_run`)."""
    dir_a, dir_b = resolve_run(run_a), resolve_run(run_b)
    man_a, man_b = read_manifest(dir_a), read_manifest(dir_b)
    id_a = str(man_a.get("run_id") or dir_a.name)
    id_b = str(man_b.get("run_id") or dir_b.name)
    result = RunDiff(dir_a, dir_b, id_a, id_b)
    result.inputs = _input_changes(man_a, man_b, dir_a, dir_b, id_a, id_b)
    result.tasks = _task_changes(man_a, man_b)
    kpis_a, notes_a = _read_kpis(dir_a, man_a)
    kpis_b, notes_b = _read_kpis(dir_b, man_b)
    result.notes = notes_a + notes_b
    result.forecasts = _forecast_changes(man_a, man_b, dir_a, dir_b, result.notes)
    for key in sorted(set(kpis_a) | set(kpis_b)):
        a, b = kpis_a.get(key), kpis_b.get(key)
        label = (b or a or {}).get("label") or key[3]
        if a is None or b is None:
            change = KpiChange(*key, label=label, old=a and a["value"], new=b and b["value"],
                               old_display=a and a["display"], new_display=b and b["display"],
                               kind="added" if a is None else "removed")
            (result.kpis_added if a is None else result.kpis_removed).append(change)
        elif _same(a["value"], b["value"]):
            result.kpis_unchanged += 1
        else:
            result.kpis_changed.append(KpiChange(*key, label=label, old=a["value"], new=b["value"],
                                                 old_display=a["display"], new_display=b["display"]))
    return result


#: Deals listed per moved forecast.
FORECAST_DEALS = 10


def _forecast_changes(a: Mapping[str, Any], b: Mapping[str, Any], dir_a: Path, dir_b: Path,
                      notes: list[str]) -> list[ForecastChange]:
    """The pipeline forecasts (``forecast.json`` of a task) of the same region, period and notebook in both runs,
    compared deal by deal when they forecast the same period."""
    import json

    from crmlens.forecast import snapshots

    def kept(manifest: Mapping[str, Any], folder: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
        out = {}
        for t in manifest.get("tasks") or []:
            rel = (t.get("outputs") or {}).get("forecast")
            if not rel:
                continue
            try:
                out[(str(t.get("region")), str(t.get("period")), str(t.get("notebook")))] = json.loads(
                    (folder / rel).read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                notes.append(f"forecast {rel} of {folder.name} could not be read: {err}")
        return out

    fa, fb = kept(a, dir_a), kept(b, dir_b)
    changes = []
    for key in sorted(set(fa) & set(fb)):
        before, after = fa[key], fb[key]
        if before.get("period") != after.get("period"):
            notes.append(f"{key[0]} {key[1]}: the runs forecast different periods ({before.get('period')} and "
                         f"{after.get('period')}); not compared deal by deal")
            continue
        moves = snapshots.drift(before, after)
        if moves["effect"].abs().sum() < 0.005 and abs(moves.attrs["expected_after"] - moves.attrs[
                "expected_before"]) < 0.005:
            continue
        by = snapshots.drift_summary(moves).set_index("change")["effect"].to_dict()
        deals = moves[moves["change"] != "run_rate"]
        top = deals.loc[deals["effect"].abs().sort_values(ascending=False).index].head(FORECAST_DEALS)
        changes.append(ForecastChange(key[0], key[1], str(after.get("period")), before.get("as_of"),
                                      after.get("as_of"), moves.attrs["expected_before"], moves.attrs["expected_after"],
                                      {k: float(v) for k, v in by.items()},
                                      top[["opportunity_id", "owner_rep_id", "change", "amount_before", "amount_after",
                                           "effect"]].to_dict(orient="records")))
    return changes


def _forecast_lines(changes: list[ForecastChange]) -> list[str]:
    lines = []
    for c in changes:
        lines.append(f"  {c.region} {c.period}: forecast of {c.forecast_period} {_num(c.expected_a)} → "
                     f"{_num(c.expected_b)} ({_signed(c.expected_b - c.expected_a)}; as of {c.as_of_a} → {c.as_of_b})")
        lines.append("    " + ", ".join(f"{k.replace('_', ' ')} {_signed(v)}" for k, v in c.by_change.items()))
        lines += _table(["deal", "owner", "change", "amount before", "amount after", "effect"],
                        [[str(d["opportunity_id"]), str(d.get("owner_rep_id") or ""), d["change"].replace("_", " "),
                          _num(d["amount_before"]), _num(d["amount_after"]), _signed(d["effect"])] for d in c.deals])
    return lines


def _input_changes(a: Mapping[str, Any], b: Mapping[str, Any], dir_a: Path, dir_b: Path, id_a: str,
                   id_b: str) -> list[InputChange]:
    out: list[InputChange] = []
    # parameters (they may point into the run's own folder: that is not a change)
    pa = _flatten(_mask(a.get("parameters") or {}, dir_a, id_a))
    pb = _flatten(_mask(b.get("parameters") or {}, dir_b, id_b))
    out += [InputChange("parameters", k, o, n, _arrow(o, n)) for k, o, n in _changed(pa, pb)]
    # per-task parameters, grouped by (key, old, new)
    tasks_a = {str(t.get("id")): t for t in a.get("tasks") or [] if isinstance(t, Mapping)}
    tasks_b = {str(t.get("id")): t for t in b.get("tasks") or [] if isinstance(t, Mapping)}
    groups: dict[tuple[str, str, str], list[str]] = {}
    values: dict[tuple[str, str, str], tuple[Any, Any]] = {}
    for tid in sorted(set(tasks_a) & set(tasks_b)):
        ta = _flatten(_mask(tasks_a[tid].get("parameters") or {}, dir_a, id_a))
        tb = _flatten(_mask(tasks_b[tid].get("parameters") or {}, dir_b, id_b))
        for k, o, n in _changed(ta, tb):
            gkey = (k, _show(o), _show(n))
            groups.setdefault(gkey, []).append(tid)
            values[gkey] = (o, n)
    for gkey, tids in groups.items():
        o, n = values[gkey]
        who = f"all {len(tids)} shared tasks" if len(tids) == len(set(tasks_a) & set(tasks_b)) and len(tids) > 1 \
            else (tids[0] if len(tids) == 1 else f"{len(tids)} tasks")
        out.append(InputChange("task parameters", gkey[0], o, n, f"{_arrow(o, n)}  ({who})", tuple(tids)))
    # data: source, mapping, per-table fingerprint
    da, db = a.get("data") or {}, b.get("data") or {}
    for k in ("source", "mapping"):
        o, n = da.get(k), db.get(k)
        if o != n:
            out.append(InputChange("data", k, o, n, _arrow(o, n)))
    fa, fb = da.get("fingerprint") or {}, db.get("fingerprint") or {}
    for table in sorted(set(fa) | set(fb)):
        o, n = fa.get(table), fb.get(table)
        if o == n:
            continue
        if o is None:
            detail = f"table added ({_rows(n)} rows)"
        elif n is None:
            detail = f"table removed (had {_rows(o)} rows)"
        else:
            parts = []
            if _get(o, "rows") != _get(n, "rows"):
                parts.append(f"rows {_rows(o)} → {_rows(n)}")
            if _get(o, "hash") != _get(n, "hash"):
                parts.append("content hash changed" + ("" if parts else " (same row count)"))
            detail = ", ".join(parts) or _arrow(o, n)
        out.append(InputChange("data", table, o, n, detail))
    # code
    ca, cb = a.get("code") or {}, b.get("code") or {}
    for k in sorted(set(ca) | set(cb), key=lambda k: (k == "notebooks", k)):
        if k == "notebooks":
            na, nb = ca.get(k) or {}, cb.get(k) or {}
            for name in sorted(set(na) | set(nb)):
                o, n = na.get(name), nb.get(name)
                if o != n:
                    detail = ("notebook added" if o is None else "notebook removed" if n is None
                              else "cells changed")
                    out.append(InputChange("code", f"notebook {name}", o, n, detail))
            continue
        o, n = ca.get(k), cb.get(k)
        if o != n:
            detail = "changed" if k.endswith("hash") and o and n else _arrow(o, n, short=k == "git_commit")
            out.append(InputChange("code", k, o, n, detail))
    # packages and interpreter
    ka, kb = a.get("packages") or {}, b.get("packages") or {}
    for name in sorted(set(ka) | set(kb)):
        o, n = ka.get(name, _ABSENT), kb.get(name, _ABSENT)
        if o != n:
            out.append(InputChange("packages", name, None if o is _ABSENT else o, None if n is _ABSENT else n,
                                   _arrow(o, n)))
    for k in ("python", "platform"):
        o, n = a.get(k), b.get(k)
        if o != n:
            out.append(InputChange("environment", k, o, n, _arrow(o, n)))
    return out


def _task_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[TaskChange]:
    ta = {str(t.get("id")): t for t in a.get("tasks") or [] if isinstance(t, Mapping)}
    tb = {str(t.get("id")): t for t in b.get("tasks") or [] if isinstance(t, Mapping)}
    out = []
    for tid in sorted(set(ta) | set(tb)):
        x, y = ta.get(tid), tb.get(tid)
        old, new = x and x.get("status"), y and y.get("status")
        if old != new:
            t = y or x or {}
            out.append(TaskChange(tid, str(t.get("region", "")), str(t.get("period", "")), str(t.get("notebook", "")),
                                  old, new))
    return out


# --------------------------------------------------------------------------------------------- helpers


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts → {"base.comparison": ...}; lists and scalars are leaves."""
    if isinstance(value, Mapping) and (value or not prefix):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _mask(value: Any, run_dir: Path, run_id: str) -> Any:
    """`value` with references to the run's own folder (its absolute path, or ``outputs/<run_id>``) replaced by a
    placeholder: a parameter pointing into the run's folder is not a difference between two runs."""
    if isinstance(value, str):
        for folder in dict.fromkeys((str(run_dir.resolve()), str(run_dir))):
            if len(folder) > 1:
                value = re.sub(rf"{re.escape(folder)}(?=[/\\]|$)", "<run_dir>", value)
        if run_id:
            value = re.sub(rf"(?<![^/\\]){re.escape(paths.OUTPUTS_DIR.name)}[/\\]{re.escape(run_id)}(?=[/\\]|$)",
                           "<run_dir>", value)
        return value
    if isinstance(value, Mapping):
        return {k: _mask(v, run_dir, run_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, run_dir, run_id) for v in value]
    return value


def _changed(a: Mapping[str, Any], b: Mapping[str, Any]) -> Iterable[tuple[str, Any, Any]]:
    for k in sorted(set(a) | set(b)):
        o, n = a.get(k, _ABSENT), b.get(k, _ABSENT)
        if o is _ABSENT or n is _ABSENT or not _same(o, n):
            yield k, o, n


def _same(a: Any, b: Any) -> bool:
    """Exact equality where two missing values (None/NaN) are equal."""
    if _missing(a) and _missing(b):
        return True
    if _missing(a) or _missing(b):
        return False
    return bool(a == b)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and not math.isnan(v)


def _clean(v: Any) -> Any:
    """A KPI value as a Python float (None for missing)."""
    if v is None:
        return None
    try:
        import pandas as pd

        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def _text(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    try:
        import pandas as pd

        if v is pd.NA:
            return None
    except ImportError:  # pragma: no cover
        pass
    return str(v)


def _get(d: Any, key: str) -> Any:
    return d.get(key) if isinstance(d, Mapping) else None


def _rows(fp: Any) -> str:
    rows = _get(fp, "rows")
    return f"{rows:,}" if isinstance(rows, int) else str(rows)


def _json_safe(v: Any) -> Any:
    if v is _ABSENT:
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Mapping):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    return v


def _show(v: Any, short: bool = False) -> str:
    if v is _ABSENT:
        return "(absent)"
    if isinstance(v, str):
        return v[:12] if short else v
    if v is None:
        return "null" if not short else "(none)"
    return json.dumps(_json_safe(v), sort_keys=True, default=str)


def _arrow(old: Any, new: Any, short: bool = False) -> str:
    return f"{_show(old, short)} → {_show(new, short)}"


def _plural(word: str, n: int) -> str:
    return word if n == 1 else word + "s"


def _num(v: Any) -> str:
    """A raw KPI value for the text table."""
    if _missing(v):
        return "—"
    if not _is_number(v):
        return str(v)
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    if abs(v) >= 1e5:
        return f"{v:,.2f}"
    return f"{v:.6g}"


def _signed(v: float | None) -> str:
    if v is None:
        return "—"
    text = _num(v)
    return text if text.startswith("-") else "+" + text


def _kpi_row(c: KpiChange) -> list[str]:
    old, new, delta = _num(c.old), _num(c.new), _signed(c.delta)
    if old == new:  # too close for the short format: show every digit
        old, new = repr(c.old), repr(c.new)
        delta = "—" if c.delta is None else f"{c.delta:+.17g}"
    rel = c.rel_change
    display = f"{c.old_display or '—'} → {c.new_display or '—'}"
    return [c.region, c.period, c.notebook, c.kpi, old, new, delta, "—" if rel is None else f"{rel:+.1%}", display]


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """Aligned columns (numbers right-aligned), indented by two spaces."""
    numeric = {"old", "new", "delta", "change", "value"}
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def fmt(cells: list[str]) -> str:
        parts = [c.rjust(w) if h in numeric else c.ljust(w) for c, w, h in zip(cells, widths, headers, strict=True)]
        return ("  " + "  ".join(parts)).rstrip()

    return [fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)]


def _input_lines(changes: list[InputChange]) -> list[str]:
    lines: list[str] = []
    titles = {"parameters": "Parameters", "task parameters": "Task parameters", "data": "Data",
              "code": "Code", "packages": "Packages", "environment": "Environment"}
    order = list(titles)
    width = max(len(c.key) for c in changes)
    for section in sorted({c.section for c in changes}, key=lambda s: order.index(s) if s in order else 99):
        lines.append(f"  {titles.get(section, section)}")
        lines += [f"    {c.key.ljust(width)}  {c.detail}" for c in changes if c.section == section]
    return lines


def _task_lines(changes: list[TaskChange]) -> list[str]:
    rows = [[c.task, c.old or "(absent)", c.new or "(absent)"] for c in changes]
    return ["Tasks whose status changed", *_table(["task", "run A", "run B"], rows)]


__all__ = ["InputChange", "KpiChange", "RunDiff", "TaskChange", "diff_runs", "read_manifest", "resolve_run"]
