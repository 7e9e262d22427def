"""The run's index page, ``outputs/<run_id>/index.html``: one self-contained static page for stakeholders.

It shows what ran on what (run id, status, periods, source, data fingerprint, git commit, times), failures
first, then one section per region with, for every notebook × period, its status, duration and headline KPIs
and links to its report (.html) and executed notebook (.ipynb), and the region's exports. The page makes no
network request (inline CSS and a few lines of inline JS, a Content-Security-Policy forbidding anything else);
every link is relative to the run folder, so the folder can be zipped and mailed. Layout: docs/run.md.

Machine-readable hooks for tests and browser checks: ``section[data-region]``, ``tr[data-task][data-status]``
(also ``data-region``, ``data-period``, ``data-notebook``), ``tr[data-failure]`` and ``[data-kpi]``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from html import escape
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from crmlens import atomic
from crmlens.paths import safe_component

#: Export kinds, in the order and with the names the page shows them.
EXPORT_LABELS = {"html": "Report (HTML)", "pdf": "Report (PDF)", "xlsx": "Excel workbook", "pptx": "Slide deck",
                 "kpis": "KPI table (parquet)"}
STATUS_LABELS = {"ok": "ok", "failed": "failed", "reused": "reused", "interrupted": "interrupted",
                 "missing": "not run"}
ALL_REGION = "all"


def write_index(run_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write ``run_dir/index.html`` for the run described by `manifest` (atomically); returns its path."""
    run_dir = Path(run_dir)
    return atomic.write_text(run_dir / "index.html", render_index(run_dir, manifest))


def render_index(run_dir: Path, manifest: Mapping[str, Any]) -> str:
    """The HTML of the index page (links are checked against the files in `run_dir`)."""
    run_dir = Path(run_dir)
    tasks = [t for t in manifest.get("tasks") or [] if isinstance(t, Mapping)]
    run_id = str(manifest.get("run_id") or run_dir.name)
    regions = region_order(manifest)
    failures = [t for t in tasks if t.get("status") == "failed"]
    exports = manifest.get("exports") or {}
    failed_exports = [(r, e) for r, e in exports.items() if isinstance(e, Mapping) and e.get("status") == "failed"]

    body = [_header(run_id, manifest, tasks, run_dir)]
    if failures or failed_exports:
        body.append(_failures(failures, failed_exports, run_dir))
    if len(regions) > 1:
        links = " ".join(f'<a href="#{_anchor(i, r)}">{escape(_region_title(r))}</a>' for i, r in enumerate(regions))
        body.append(f'<nav class="regions" aria-label="Regions">{links}</nav>')
    body += [_region_section(i, region, manifest, tasks, run_dir) for i, region in enumerate(regions)]
    body.append(_footer(manifest))
    title = f"CRM Lens run {run_id}"
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; img-src data:\">\n"
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body data-run=\"{escape(run_id)}\" data-status=\"{escape(str(manifest.get('status') or ''))}\">\n"
        + "\n".join(body) + f"\n<script>{_JS}</script>\n</body>\n</html>\n"
    )


def region_order(manifest: Mapping[str, Any]) -> list[str]:
    """Regions as the manifest lists them (parameters, then tasks, then exports), ``all`` first."""
    params = manifest.get("parameters") or {}
    found = [str(r) for r in params.get("regions") or []]
    found += [str(t.get("region")) for t in manifest.get("tasks") or [] if isinstance(t, Mapping) and t.get("region")]
    found += [str(r) for r in manifest.get("exports") or {}]
    unique = list(dict.fromkeys(found))
    return ([ALL_REGION] if ALL_REGION in unique else []) + [r for r in unique if r != ALL_REGION]


# ------------------------------------------------------------------------------------------- sections


def _header(run_id: str, manifest: Mapping[str, Any], tasks: list[Mapping[str, Any]], run_dir: Path) -> str:
    status = str(manifest.get("status") or "unknown")
    params = manifest.get("parameters") or {}
    data = manifest.get("data") or {}
    code = manifest.get("code") or {}
    base = params.get("base") or {}
    periods = [str(p) for p in params.get("periods") or []] or list(dict.fromkeys(str(t.get("period")) for t in tasks))
    commit = code.get("git_commit")
    commit_text = escape(str(commit)[:12]) if commit else "not a git checkout"
    if code.get("git_dirty"):
        commit_text += ' <span class="badge badge-dirty" title="uncommitted changes">dirty</span>'
    rows = [
        ("Periods", escape(", ".join(periods)) or "—"),
        ("Comparison", escape(str(base.get("comparison"))) if base.get("comparison") is not None else "—"),
        ("Source", escape(str(data.get("source") or base.get("source") or "—"))
         + (f" (mapping {escape(str(data['mapping']))})" if data.get("mapping") else "")),
        ("Data", _fingerprint_html(data.get("fingerprint"))),
        ("Code", f"crmlens {escape(str(code.get('crmlens_version') or '?'))}, commit {commit_text}"),
        ("Started", escape(_time(manifest.get("started_at")))),
        ("Finished", escape(_time(manifest.get("finished_at")))),
        ("Duration", escape(_duration(_run_duration(manifest)))),
    ]
    executor = manifest.get("executor") or {}
    if executor.get("kind"):
        workers = f", {executor['workers']} workers" if executor.get("workers") else ""
        rows.append(("Executor", escape(f"{executor['kind']}{workers}")))
    dl = "\n".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    counts = _counts(manifest, tasks)
    parts = [f'<span class="count">{counts["tasks"]} task{"s" * (counts["tasks"] != 1)}</span>']
    for key in ("ok", "failed", "reused"):
        parts.append(f'<span class="count count-{key}" data-count="{key}">{counts[key]} {key}</span>')
    banner = ""
    if status == "interrupted":
        banner = '<p class="banner banner-failed">This run was interrupted: some tasks did not run.</p>'
    manifest_link = _link(run_dir, "manifest.json", "manifest.json")
    return (
        f'<header>\n<h1>CRM Lens run <span class="run-id">{escape(run_id)}</span> {_badge(status)}</h1>\n'
        f'<p class="summary" data-summary>{" · ".join(parts)}</p>\n{banner}'
        f'<dl class="meta">\n{dl}\n</dl>\n<p class="small">Full record: {manifest_link}</p>\n</header>'
    )


def _failures(failures: list[Mapping[str, Any]], failed_exports: list[tuple[str, Any]], run_dir: Path) -> str:
    rows = []
    for task in failures:
        err = task.get("error") if isinstance(task.get("error"), Mapping) else {}
        tid = str(task.get("id") or "")
        cell = err.get("cell")
        kind = str(err.get("kind") or "error").replace("_", " ")
        message = ": ".join(str(x) for x in (err.get("ename"), err.get("evalue")) if x) or kind
        source = f'<pre class="source">{escape(str(err["source"]))}</pre>' if err.get("source") else ""
        attempts = task.get("attempts")
        attempts_text = f'<div class="small">{attempts} attempts</div>' if isinstance(attempts, int) and attempts > 1 \
            else ""
        rows.append(
            f'<tr data-failure="{escape(tid)}" data-task="{escape(tid)}" data-status="failed"'
            f' data-region="{escape(str(task.get("region", "")))}">'
            f'<td>{escape(_region_title(str(task.get("region", ""))))}</td>'
            f'<td>{escape(str(task.get("period", "")))}</td>'
            f'<td>{escape(str(task.get("notebook", "")))}{attempts_text}</td>'
            f'<td class="cell" data-cell="{escape(str(cell if cell is not None else ""))}">'
            f'{"cell " + escape(str(cell)) if cell is not None else escape(kind)}</td>'
            f'<td><span class="error">{escape(message)}</span>{source}</td>'
            f'<td class="links">{_task_links(task, run_dir)}</td></tr>'
        )
    for region, export in failed_exports:
        rows.append(
            f'<tr data-failure="export:{escape(str(region))}" data-status="failed" data-region="{escape(str(region))}">'
            f'<td>{escape(_region_title(str(region)))}</td><td></td><td>exports</td><td></td>'
            f'<td><span class="error">{escape(str(export.get("error") or "export failed"))}</span></td><td></td></tr>'
        )
    n = len(rows)
    return (
        f'<section class="failures" id="failures" data-failures="{n}">\n'
        f'<h2>Failures <span class="badge badge-failed">{n}</span></h2>\n'
        '<p class="small">The executed notebook (.ipynb) shows the failing cell highlighted, with its traceback.</p>\n'
        '<div class="table-wrap"><table>\n<thead><tr><th>Region</th><th>Period</th><th>Notebook</th><th>Where</th>'
        f'<th>Error</th><th>Open</th></tr></thead>\n<tbody>\n{chr(10).join(rows)}\n</tbody></table></div>\n</section>'
    )


def _region_section(i: int, region: str, manifest: Mapping[str, Any], tasks: list[Mapping[str, Any]],
                    run_dir: Path) -> str:
    params = manifest.get("parameters") or {}
    mine = [t for t in tasks if str(t.get("region")) == region]
    interrupted = manifest.get("status") == "interrupted"  # then show the planned tasks that did not run
    periods = _order([str(p) for p in params.get("periods") or []], (str(t.get("period")) for t in mine),
                     keep_all=interrupted)
    notebooks = _order([str(n) for n in params.get("notebooks") or []], (str(t.get("notebook")) for t in mine),
                       keep_all=interrupted)
    by_cell = {(str(t.get("notebook")), str(t.get("period"))): t for t in mine}
    rows = []
    for notebook in notebooks:
        for period in periods:
            task = by_cell.get((notebook, period))
            if task is not None:
                rows.append(_task_row(task, run_dir))
            elif interrupted:
                tid = f"{region}/{period}/{notebook}"
                rows.append(f'<tr data-task="{escape(tid)}" data-status="missing" data-region="{escape(region)}"'
                            f' data-period="{escape(period)}" data-notebook="{escape(notebook)}">'
                            f'<td>{_notebook_title(notebook)}</td><td>{escape(period)}</td><td>{_badge("missing")}</td>'
                            '<td></td><td></td><td></td></tr>')
    counts = _counts({}, mine)
    count_text = f'{counts["tasks"]} task{"s" * (counts["tasks"] != 1)}: ' + ", ".join(
        f"{counts[k]} {k}" for k in ("ok", "failed", "reused") if counts[k] or k == "ok")
    table = (
        '<div class="table-wrap"><table>\n<thead><tr><th>Notebook</th><th>Period</th><th>Status</th>'
        '<th class="num">Duration</th><th>Headline KPIs (vs comparison period)</th><th>Open</th></tr></thead>\n'
        f'<tbody>\n{chr(10).join(rows)}\n</tbody></table></div>'
        if rows else '<p class="small">No task ran for this region.</p>'
    )
    return (
        f'<section class="region" id="{_anchor(i, region)}" data-region="{escape(region)}">\n'
        f'<h2>{escape(_region_title(region))} <span class="small">{escape(count_text)}</span></h2>\n'
        f'{_exports_html(region, (manifest.get("exports") or {}).get(region), run_dir)}\n'
        f'{_summary_html(mine, (params.get("base") or {}).get("language"))}\n'
        f'{_alerts_html(mine, region, run_dir)}\n{table}\n</section>'
    )


def _alerts_html(tasks: list[Mapping[str, Any]], region: str, run_dir: Path) -> str:
    """The region's alerts (thresholds, anomalies) as a red/orange badge and list, linking to alerts.json;
    nothing when no notebook of the region raised one."""
    alerts = [a for t in tasks for a in (t.get("alerts") or []) if isinstance(a, Mapping)]
    if not alerts:
        return ""
    act = sum(a.get("severity") == "act" for a in alerts)
    items = "".join(f'<li class="alert-{escape(str(a.get("severity")))}">{escape(str(a.get("text") or ""))}</li>'
                    for a in sorted(alerts, key=lambda a: a.get("severity") != "act"))
    link = _link(run_dir, f"{safe_component(region)}/alerts.json", "alerts.json")
    return (f'<div class="alerts" data-alerts="{len(alerts)}" data-act="{act}"><h3>Alerts '
            f'<span class="badge badge-{"failed" if act else "dirty"}">{len(alerts)}</span> {link}</h3>'
            f'<ul>{items}</ul></div>')


def _summary_html(tasks: list[Mapping[str, Any]], language: Any = None) -> str:
    """The region's executive summary (its tasks' findings ranked, `crmlens.run.summary`), in the run's
    language; nothing when no task recorded a finding."""
    from crmlens import i18n
    from crmlens.findings import Finding
    from crmlens.run.summary import SUMMARY_SIZE, executive_summary, findings_html

    records = [r for t in tasks for r in (t.get("findings") or []) if isinstance(r, Mapping)]
    if not records:
        return ""
    with i18n.language(language if language in i18n.LANGUAGES else None):
        top = executive_summary([Finding.from_record(r) for r in records], SUMMARY_SIZE)
        return (f'<div class="summary" lang="{i18n.html_lang()}" data-summary="{len(top)}">'
                f'<h3>{escape(i18n._("Executive summary"))}</h3>'
                f"{findings_html(top, links=False)}</div>")


def _task_row(task: Mapping[str, Any], run_dir: Path) -> str:
    tid = str(task.get("id") or f"{task.get('region')}/{task.get('period')}/{task.get('notebook')}")
    status = str(task.get("status") or "unknown")
    notebook = str(task.get("notebook") or "")
    extra = ""
    if status == "failed":
        err = task.get("error") if isinstance(task.get("error"), Mapping) else {}
        where = f"cell {err['cell']}: " if err.get("cell") is not None else ""
        extra = f'<div class="error small">{escape(where + str(err.get("ename") or err.get("kind") or "error"))}</div>'
    attempts = task.get("attempts")
    if isinstance(attempts, int) and attempts > 1:
        extra += f'<div class="small">{attempts} attempts</div>'
    return (
        f'<tr data-task="{escape(tid)}" data-status="{escape(status)}"'
        f' data-region="{escape(str(task.get("region", "")))}"'
        f' data-period="{escape(str(task.get("period", "")))}" data-notebook="{escape(notebook)}">'
        f'<td>{_notebook_title(notebook)}</td><td>{escape(str(task.get("period", "")))}</td>'
        f'<td>{_badge(status)}{extra}</td>'
        f'<td class="num">{escape(_duration(task.get("duration_s")))}</td>'
        f'<td>{_kpis_html(task.get("kpis"))}</td><td class="links">{_task_links(task, run_dir)}</td></tr>'
    )


def _kpis_html(kpis: Any) -> str:
    if not isinstance(kpis, list) or not kpis:
        return '<span class="small">—</span>'
    items = []
    for rec in kpis:
        if not isinstance(rec, Mapping):
            continue
        trend = str(rec.get("trend") or "n/a")
        trend_class = re.sub(r"[^a-z]", "", trend.lower()) or "na"
        value = rec.get("display") or _plain(rec.get("value"))
        change = _change_html(rec.get("delta"), rec.get("delta_pct"), trend)
        title = f"{trend} vs comparison period" if trend in ("better", "worse") else trend
        items.append(
            f'<li class="kpi trend-{trend_class}" data-kpi="{escape(str(rec.get("kpi", "")))}"'
            f' data-trend="{escape(trend)}"><span class="kpi-label">{escape(str(rec.get("label") or rec.get("kpi")))}'
            f'</span> <span class="kpi-value">{escape(str(value))}</span>'
            f' <span class="kpi-change" title="{escape(title)}">{change}</span></li>'
        )
    return f'<ul class="kpis">{"".join(items)}</ul>'


def _change_html(delta: Any, pct: Any, trend: str) -> str:
    """Arrow + relative change: ▲ 6.9% / ▼ 2.0% / = 0.0%; — when there is nothing to compare."""
    d, p = _number(delta), _number(pct)
    if d is None and p is None:
        return "—"
    sign = d if d is not None else p
    arrow = "▲" if sign and sign > 0 else "▼" if sign and sign < 0 else "="
    return escape(f"{arrow} {abs(p):.1%}" if p is not None else f"{arrow} n/a")


def _task_links(task: Mapping[str, Any], run_dir: Path) -> str:
    outputs = task.get("outputs") if isinstance(task.get("outputs"), Mapping) else {}
    return " ".join(_link(run_dir, outputs.get(kind), label, kind=kind)
                    for kind, label in (("html", "report"), ("ipynb", "notebook")))


def _exports_html(region: str, export: Any, run_dir: Path) -> str:
    if not isinstance(export, Mapping):
        return ""
    files = export.get("files") if isinstance(export.get("files"), Mapping) else {}
    kinds = [k for k in EXPORT_LABELS if k in files] + [k for k in files if k not in EXPORT_LABELS]
    links = [_link(run_dir, files[k], EXPORT_LABELS.get(k, str(k)), kind=f"export-{k}") for k in kinds]
    status = str(export.get("status") or "")
    failed = ""
    if status == "failed":
        failed = f' {_badge("failed")} <span class="error small">{escape(str(export.get("error") or ""))}</span>'
    if not links and not failed:
        return ""
    return f'<p class="exports" data-exports="{escape(region)}">Exports: {" · ".join(links) or "none"}{failed}</p>'


def _footer(manifest: Mapping[str, Any]) -> str:
    packages = manifest.get("packages") or {}
    bits = [f"Python {manifest['python']}" if manifest.get("python") else "",
            str(manifest.get("platform") or ""),
            ", ".join(f"{k} {v}" for k, v in sorted(packages.items()) if v)]
    return f'<footer class="small">{escape(" · ".join(b for b in bits if b))}</footer>'


# --------------------------------------------------------------------------------------------- helpers


def _link(run_dir: Path, rel: Any, label: str, kind: str = "") -> str:
    """A relative link to a file of the run, or the label greyed out when the file is not there."""
    href = _href(run_dir, rel)
    kind_attr = f' data-link="{escape(kind)}"' if kind else ""
    if href is None:
        return f'<span class="missing"{kind_attr} title="not written">{escape(label)}</span>'
    return f'<a href="{escape(href)}"{kind_attr}>{escape(label)}</a>'


def _href(run_dir: Path, rel: Any) -> str | None:
    """`rel` (relative to the run folder) as a URL-quoted relative link, if it names an existing file inside it."""
    if not rel or not isinstance(rel, str) or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", rel):
        return None
    path = Path(rel)
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(run_dir.resolve())
        except ValueError:
            return None
    posix = PurePosixPath(path.as_posix())
    if ".." in posix.parts or not (run_dir / posix).is_file():
        return None
    return quote(str(posix), safe="/-._~")


def _anchor(i: int, region: str) -> str:
    return f"region-{i}-{re.sub(r'[^A-Za-z0-9_-]+', '-', region).strip('-') or 'x'}"


def _region_title(region: str) -> str:
    return "All regions (company)" if region == ALL_REGION else region


def _notebook_title(notebook: str) -> str:
    """``02_sales_funnel`` → ``02 · Sales funnel`` (escaped), with the id as a tooltip."""
    m = re.match(r"^(\d+)_(.+)$", notebook)
    title = f"{m.group(1)} · {m.group(2).replace('_', ' ').capitalize()}" if m else notebook
    return f'<span title="{escape(notebook)}">{escape(title)}</span>'


def _badge(status: str) -> str:
    cls = re.sub(r"[^a-z]", "", status.lower()) or "unknown"
    label = escape(STATUS_LABELS.get(status, status))
    return f'<span class="badge badge-{cls}" data-badge="{escape(status)}">{label}</span>'


def _order(first: list[str], more: Iterable[str], keep_all: bool = False) -> list[str]:
    """`first` (restricted to values in `more` unless `keep_all`), then the rest of `more` in order of appearance."""
    present = list(dict.fromkeys(more))
    return [x for x in first if keep_all or x in present] + [x for x in present if x not in first]


def _counts(manifest: Mapping[str, Any], tasks: list[Mapping[str, Any]]) -> dict[str, int]:
    summary = manifest.get("summary") if isinstance(manifest.get("summary"), Mapping) else {}
    statuses = [t.get("status") for t in tasks]
    out = {"tasks": len(tasks), **{k: statuses.count(k) for k in ("ok", "failed", "reused")}}
    for key in out:
        if isinstance(summary.get(key), int):
            out[key] = summary[key]
    return out


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return None if math.isnan(v) or math.isinf(v) else float(v)


def _plain(v: Any) -> str:
    n = _number(v)
    return "—" if n is None else f"{n:,.4g}"


def _fingerprint_html(fingerprint: Any) -> str:
    if not isinstance(fingerprint, Mapping) or not fingerprint:
        return "—"
    tables = sorted(fingerprint)
    rows = sum(int(v.get("rows") or 0) for v in fingerprint.values() if isinstance(v, Mapping))
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:12]
    items = "".join(
        f"<li>{escape(str(t))}: {escape(_int(_get(fingerprint[t], 'rows')))} rows,"
        f" <code>{escape(str(_get(fingerprint[t], 'hash') or '')[:12])}</code></li>" for t in tables)
    return (f'<details class="fingerprint"><summary>{len(tables)} table{"s" * (len(tables) != 1)}, '
            f'{rows:,} rows · fingerprint <code data-fingerprint>{digest}</code></summary><ul>{items}</ul></details>')


def _get(d: Any, key: str) -> Any:
    return d.get(key) if isinstance(d, Mapping) else None


def _int(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


def _time(value: Any) -> str:
    if not value:
        return "—"
    try:
        dt = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    tz = dt.strftime("%Z") if dt.tzinfo else ""
    return f"{dt:%Y-%m-%d %H:%M:%S}" + (f" {'UTC' if tz in ('UTC', 'UTC+00:00') else tz}" if tz else "")


def _run_duration(manifest: Mapping[str, Any]) -> float | None:
    summary = manifest.get("summary") if isinstance(manifest.get("summary"), Mapping) else {}
    if _number(summary.get("duration_s")) is not None:
        return float(summary["duration_s"])
    try:
        start = datetime.fromisoformat(str(manifest.get("started_at")))
        end = datetime.fromisoformat(str(manifest.get("finished_at")))
        return (end - start).total_seconds()
    except (TypeError, ValueError):
        return None


def _duration(seconds: Any) -> str:
    """12.3 s, 1 min 35 s, 1 h 02 min."""
    s = _number(seconds)
    if s is None:
        return "—"
    if round(s, 1) < 60:
        return f"{s:.1f} s"
    whole = round(s)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


_CSS = """
.summary { border: 1px solid var(--line); border-radius: 6px; padding: 4px 14px; margin: 8px 0; background: #fafbfd; }
.summary h3 { margin: 6px 0; font-size: 15px; }
.crmlens-summary-list li { margin-bottom: 6px; }
.crmlens-sev { font-size: 12px; font-weight: 600; border-radius: 3px; padding: 0 5px; margin-right: 5px; }
.crmlens-sev-act { background: #fdecea; color: #b71c1c; } .crmlens-sev-watch { background: #fff4e5; color: #a15c00; }
.crmlens-sev-good { background: #e8f5e9; color: #1b5e20; } .crmlens-sev-info { background: #eceff1; color: #455a64; }
.crmlens-rec, .crmlens-evidence { font-size: 13px; color: #444; }
:root { --ok: #1a7f37; --bad: #cf222e; --reused: #0969da; --muted: #59636e; --line: #d1d9e0; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1f2328; margin: 0 auto; padding: 24px; max-width: 1280px; }
h1 { font-size: 22px; margin: 0 0 6px; } h2 { font-size: 18px; margin: 28px 0 8px; }
.run-id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
header { border-bottom: 2px solid var(--line); padding-bottom: 12px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0; }
dl.meta dt { color: var(--muted); } dl.meta dd { margin: 0; }
.summary { font-size: 15px; margin: 4px 0 8px; } .count { margin-right: 2px; }
.count-ok { color: var(--ok); } .count-failed { color: var(--bad); } .count-reused { color: var(--reused); }
.small { font-size: 12px; color: var(--muted); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
         color: #fff; background: var(--muted); vertical-align: middle; }
.badge-ok { background: var(--ok); } .badge-failed, .badge-interrupted { background: var(--bad); }
.badge-reused { background: var(--reused); } .badge-dirty { background: #9a6700; }
.badge-missing { background: #8c959f; }
.banner { padding: 8px 12px; border-radius: 6px; } .banner-failed { background: #ffebe9; color: var(--bad); }
nav.regions { margin: 16px 0 0; display: flex; flex-wrap: wrap; gap: 6px; }
nav.regions a { padding: 3px 10px; border: 1px solid var(--line); border-radius: 14px; text-decoration: none; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 6px 8px; border-bottom: 1px solid var(--line); }
th { background: var(--bg); font-weight: 600; } .num { text-align: right; white-space: nowrap; }
tr[data-status="failed"] { background: #fff5f5; }
section.failures { border: 1px solid #ffcecb; border-radius: 8px; padding: 0 12px 12px; margin-top: 20px; }
.error { color: var(--bad); font-weight: 600; }
pre.source { background: var(--bg); padding: 6px 8px; margin: 6px 0 0; white-space: pre-wrap; font-size: 12px; }
ul.kpis { list-style: none; margin: 0; padding: 0; }
li.kpi { white-space: nowrap; } .kpi-label { color: var(--muted); } .kpi-value { font-weight: 600; }
.trend-better .kpi-change { color: var(--ok); } .trend-worse .kpi-change { color: var(--bad); }
.trend-flat .kpi-change, .trend-neutral .kpi-change, .trend-na .kpi-change { color: var(--muted); }
.links a, .exports a { margin-right: 6px; } .missing { color: #8c959f; text-decoration: line-through; }
.filter { margin: 12px 0 0; } footer { margin-top: 32px; border-top: 1px solid var(--line); padding-top: 8px; }
body.only-failed section.region tr[data-status]:not([data-status="failed"]) { display: none; }
@media print { .filter, nav.regions { display: none; } body { padding: 0; } a { color: inherit; } }
"""

# A checkbox to show only failed tasks (the page works without it).
_JS = """
(function () {
  var header = document.querySelector('header');
  if (!header || !document.querySelector('tr[data-status="failed"]')) return;
  var p = document.createElement('p'); p.className = 'filter';
  var label = document.createElement('label'); var box = document.createElement('input');
  box.type = 'checkbox'; box.setAttribute('data-filter', 'failed');
  box.addEventListener('change', function () { document.body.classList.toggle('only-failed', box.checked); });
  label.appendChild(box); label.appendChild(document.createTextNode(' show failed tasks only'));
  p.appendChild(label); header.appendChild(p);
})();
"""


__all__ = ["region_order", "render_index", "write_index"]
