"""`crmlens run`: plan → provenance → execute (threads or a Dask cluster) → KPI tables → exports → index and
manifest. Failures are isolated per task; finished tasks are recorded as they finish, so an interrupted run
can be completed with `--resume`.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from crmlens import atomic, paths
from crmlens.analysis import BACKGROUND_ENV, usable_cores
from crmlens.data import SLICE_CACHE_ENV
from crmlens.errors import ParameterError, RunError
from crmlens.notebook import READER_TABLES_ENV, RENDERER_ENV, RUN_RENDERER
from crmlens.paths import RUN_DIR_ENV
from crmlens.run import provenance
from crmlens.run.execute import TaskSpec, run_task
from crmlens.run.kernels import KERNEL_NAME, KernelPool, close_worker_pool
from crmlens.run.plan import Plan, Task, check_run_id, make_plan, matrix_summary, stable_hash

EXPORT_FORMATS = ("html", "xlsx", "pptx", "pdf")
KPI_COLUMNS = ["region", "period", "comparison_period", "notebook", "area", "kpi", "label", "unit", "direction",
               "value", "comparison_value", "delta", "delta_pct", "trend", "display", "status"]
TASKS_DIR = ".tasks"
CACHE_DIR = ".cache"
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


@dataclass
class RunOptions:
    """The options of `crmlens run` (see `crmlens run --help`)."""

    regions: str | Sequence[str] | None = None
    periods: str | Sequence[str] | None = None
    notebooks: str | None = None
    source: str | None = None
    mapping: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    workers: int = 2
    cluster: str | None = None
    run_id: str | None = None
    resume: bool = False
    timeout: float | None = 600.0
    retries: int = 2
    exports: Sequence[str] = EXPORT_FORMATS
    outputs_dir: Path | None = None
    notebooks_dir: Path | None = None
    kernel_name: str = KERNEL_NAME
    progress: bool | None = None  # None: a bar on a terminal, log lines otherwise
    command: list[str] | None = None
    notify: str | Path | None = None  # a notifications file (docs/notifications.md): digest and alerts after the run


@dataclass
class RunResult:
    run_dir: Path
    manifest: dict[str, Any]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [t for t in self.manifest["tasks"] if t["status"] == "failed"]

    @property
    def exit_code(self) -> int:
        if self.manifest["status"] == "interrupted":
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.manifest["status"] != "ok" else EXIT_OK


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- progress --------------------------------------------------------------------------------------------------

class Progress:
    """A tqdm bar (done/failed/remaining, ETA) on a terminal; one plain line per finished task otherwise."""

    def __init__(self, total: int, enabled: bool | None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total, self.done, self.failed, self.reused = total, 0, 0, 0
        self.t0 = time.perf_counter()
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = None
        if (tty if enabled is None else enabled) and total:
            from tqdm import tqdm

            width = shutil.get_terminal_size((100, 20)).columns or 100  # 0 in some pseudo-terminals
            self.bar = tqdm(total=total, unit="task", file=self.stream, ncols=min(width, 120),
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} done [{elapsed}<{remaining}]{postfix}")

    def update(self, record: dict[str, Any]) -> None:
        self.done += 1
        self.failed += record["status"] == "failed"
        self.reused += record["status"] == "reused"
        if self.bar is not None:
            self.bar.set_postfix_str(f"failed {self.failed}, remaining {self.total - self.done}", refresh=False)
            self.bar.update(1)
            return
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0
        err = record.get("error") or {}
        extra = f"  {err.get('ename')}: {str(err.get('evalue', ''))[:80]}" if err else ""
        print(f"[{self.done:>{len(str(self.total))}}/{self.total}] {record['status']:<6} {record['id']}  "
              f"{record.get('duration_s', 0):.1f} s  (failed {self.failed}, remaining {self.total - self.done}, "
              f"ETA {eta:.0f} s){extra}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- run directory ---------------------------------------------------------------------------------------------

def outputs_dir(options: RunOptions) -> Path:
    return Path(options.outputs_dir) if options.outputs_dir else paths.OUTPUTS_DIR


def latest_run(root: Path) -> Path | None:
    """The run `latest` points at, else the newest run folder with a manifest or task records."""
    link = root / "latest"
    if link.exists():
        return link.resolve()
    runs = [p for p in root.iterdir() if p.is_dir() and ((p / "manifest.json").exists() or (p / TASKS_DIR).is_dir())] \
        if root.is_dir() else []
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def _choose_run_dir(options: RunOptions) -> Path:
    root = outputs_dir(options)
    if options.run_id:
        run_dir = root / check_run_id(options.run_id)
        if run_dir.exists() and not options.resume and any(run_dir.iterdir()):
            raise ParameterError(f"--run-id: {options.run_id!r} already exists ({paths.display_path(run_dir)}); "
                                 f"add --resume to complete or refresh it, or choose another run id")
        return run_dir
    if options.resume:
        found = latest_run(root)
        if found is None:
            raise ParameterError(f"--resume: there is no earlier run in {paths.display_path(root)} to resume; "
                                 f"give --run-id")
        return found
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir, n = root / stamp, 1
    while run_dir.exists():
        n += 1
        run_dir = root / f"{stamp}-{n}"
    return run_dir


def _clean_partial_files(run_dir: Path) -> int:
    """Remove temp files an interrupted run left (never under a final name)."""
    n = 0
    for tmp in [*run_dir.rglob(".*.tmp"), *run_dir.rglob(".*.tmp.*")]:
        with contextlib.suppress(OSError):
            tmp.unlink()
            n += 1
    return n


def _previous_records(run_dir: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for f in sorted((run_dir / TASKS_DIR).glob("*.json")):
        with contextlib.suppress(ValueError, OSError):
            rec = json.loads(f.read_text(encoding="utf-8"))
            out[rec["id"]] = rec
    return out


def _reusable(rec: dict[str, Any] | None, key: str, run_dir: Path) -> bool:
    if not rec or rec.get("status") not in ("ok", "reused") or rec.get("cache_key") != key:
        return False
    return all((run_dir / p).is_file() for p in (rec.get("outputs") or {}).values() if p)


def _record_path(run_dir: Path, task: Task) -> Path:
    return run_dir / TASKS_DIR / f"{task.slug}.json"


def second_processes(n_tasks: int, workers: int, cores: int | None = None) -> bool:
    """Whether a run's kernels may start a second process for an analysis (`crmlens.analysis.in_background`):
    not when the run's own workers fill the `cores`, nor when its kernels are reused for several tasks — a warm
    kernel keeps what its first task imported (pymc's 4–5 s for notebook 04), a second process would import it
    again for every task."""
    cores = usable_cores() if cores is None else cores
    return workers < cores and n_tasks <= max(1, workers)


def execution_order(plan: Plan, workers: int = 2) -> list[Task]:
    """Tasks in the order they start: the regions in groups of `workers`, and in a group each notebook across
    its regions × periods first. Tasks running at the same time open different slices (later notebooks find
    their slice in the cache), and the regions finish group by group, so their exports run while the next
    group's notebooks do."""
    first = {nb.stem: i for i, nb in enumerate(plan.notebooks)}
    size = max(1, workers)
    return sorted(plan.tasks, key=lambda t: (plan.regions.index(t.region) // size, first[t.notebook],
                                             plan.regions.index(t.region), plan.periods.index(t.period)))


# -- KPI tables ------------------------------------------------------------------------------------------------

def kpi_frame(records: Iterable[dict[str, Any]], plan: Plan, region: str) -> pd.DataFrame:
    """Every KPI the region's notebooks recorded, in plan order (period, notebook, the notebook's KPI order)."""
    order = {t.id: i for i, t in enumerate(sorted(plan.tasks, key=lambda t: (plan.periods.index(t.period),
                                                                             t.notebook)))}
    rows = []
    for rec in sorted((r for r in records if r["region"] == region), key=lambda r: order.get(r["id"], 1 << 30)):
        for kpi in rec.get("kpis", []):
            rows.append({**{c: kpi.get(c) for c in KPI_COLUMNS}, "region": region, "period": rec["period"],
                         "notebook": rec["notebook"]})
    frame = pd.DataFrame(rows, columns=KPI_COLUMNS)
    for col in ("value", "comparison_value", "delta", "delta_pct"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    for col in set(KPI_COLUMNS) - {"value", "comparison_value", "delta", "delta_pct"}:
        frame[col] = frame[col].astype("string")
    return frame


def write_kpis(frame: pd.DataFrame, target: Path) -> Path:
    """kpis.parquet, byte-identical for identical content (no times or run ids inside)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    return atomic.write_with(target, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


# -- executors -------------------------------------------------------------------------------------------------

def write_alerts(records: Iterable[dict[str, Any]], plan: Plan, region: str, target: Path) -> Path:
    """alerts.json of a region: every alert its notebooks recorded (`crmlens.notebook.show_alerts`), act before
    watch — an empty list when none was raised (or no notebook raises alerts)."""
    from crmlens import atomic

    alerts = [a for r in records for a in (r.get("alerts") or [])]
    alerts.sort(key=lambda a: (a.get("severity") != "act", str(a.get("kpi")), str(a.get("period"))))
    payload = {"region": region, "periods": plan.periods, "language": plan.base.get("language") or "en",
               "alerts": alerts}
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(target, json.dumps(payload, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
    return target


def _run_threads(specs: list[TaskSpec], workers: int, kernel_name: str, on_done: Callable[[dict], None]) -> None:
    from concurrent.futures import FIRST_COMPLETED, wait

    pool = KernelPool(size=workers, kernel_name=kernel_name, env=specs[0].env if specs else None,
                      cwd=str(Path(specs[0].path).parent) if specs else None)
    pool.expect(len(specs))
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crmlens-task")
    try:
        pending = {executor.submit(run_task, spec, pool) for spec in specs}
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                on_done(fut.result())
    except BaseException:
        for fut in pending:
            fut.cancel()
        pool.close()  # running notebooks stop: their kernels are shut down
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)
    pool.close()


#: Seconds to wait for the Dask scheduler of ``--cluster`` before the run fails (default 10).
CLUSTER_TIMEOUT_ENV = "CRMLENS_CLUSTER_TIMEOUT"


def connect_cluster(address: str) -> Any:
    """A Dask distributed client of the scheduler at `address` (a clear ParameterError when unreachable, after
    `CLUSTER_TIMEOUT_ENV` seconds, default 10)."""
    try:
        from distributed import Client
    except ImportError as err:  # pragma: no cover - installed with the project
        raise RunError("--cluster needs dask.distributed (pip install 'dask[distributed]')") from err
    raw = os.environ.get(CLUSTER_TIMEOUT_ENV, "10")
    try:
        seconds = float(raw)
        if not 0 < seconds <= 3600:
            raise ValueError
    except ValueError:
        raise ParameterError(f"{CLUSTER_TIMEOUT_ENV}={raw!r} is not allowed; use a number of seconds from 0 "
                             "(excluded) to 3600") from None
    try:
        return Client(address, timeout=f"{seconds}s")
    except Exception as err:
        raise ParameterError(f"--cluster: cannot reach a Dask scheduler at {address} "
                             f"({type(err).__name__}: {err}); expected tcp://HOST:PORT of a running scheduler") \
            from None


def _run_dask(specs: list[TaskSpec], client: Any, on_done: Callable[[dict], None]) -> dict[str, Any]:
    from distributed import as_completed

    address = client.scheduler.address
    info = {"kind": "dask", "cluster": address,
            "workers": len(client.scheduler_info().get("workers", {}))}
    by_key = {}
    for spec in specs:
        fut = client.submit(run_task, asdict(spec), key=f"crmlens-{spec.run_dir}-{spec.id}", pure=False)
        by_key[fut.key] = (fut, spec)
    futures = [f for f, _ in by_key.values()]
    try:
        for fut in as_completed(futures):
            spec = by_key[fut.key][1]
            try:
                rec = fut.result()
            except Exception as err:  # the worker itself was lost (retried tasks come back as records)
                rec = _lost_record(spec, err)
            on_done(rec)
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        with contextlib.suppress(Exception):
            client.run(close_worker_pool)
        client.close()
    return info


def _lost_record(spec: TaskSpec, err: BaseException) -> dict[str, Any]:
    return {"id": spec.id, "notebook": spec.notebook, "region": spec.region, "period": spec.period,
            "parameters": spec.parameters, "status": "failed", "attempts": 1, "duration_s": 0.0, "compute_s": 0.0,
            "overhead_s": 0.0, "started_at": _now(), "finished_at": _now(), "cache_key": spec.cache_key,
            "error": {"kind": "worker_lost", "cell": None, "execution_count": None, "source": None,
                      "ename": type(err).__name__, "evalue": str(err)[:2000]},
            "outputs": {"ipynb": None, "html": None}, "kpis": []}


# -- exports ---------------------------------------------------------------------------------------------------

class RegionExports:
    """The exports of a run's regions, each started as soon as the region's last task is done (while other
    regions' notebooks still run): kpis.parquet, then the formats asked for. `workers` threads export one
    region at a time each, with a headless Chromium per thread for the PDF and the deck."""

    def __init__(self, run_dir: Path, plan: Plan, formats: Sequence[str], log: Callable[[str], None],
                 workers: int = 2) -> None:
        self.run_dir, self.plan, self.log = run_dir, plan, log
        self.formats = [f for f in formats if f in EXPORT_FORMATS]
        self.out: dict[str, dict[str, Any]] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._threads = max(1, min(workers, len(plan.regions)))
        self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="crmlens-export")
        self._workers = [self._pool.submit(self._work) for _ in range(self._threads)]
        self._started: set[str] = set()
        self._inputs: dict[str, tuple[pd.DataFrame, list[dict[str, Any]]]] = {}  # region → (KPIs, its tasks)

    def task_done(self, rec: dict[str, Any]) -> None:
        """Note a finished (or reused) task; export its region once every task of the region is done."""
        self._records[rec["id"]] = rec
        region = rec["region"]
        if region not in self._started and all(t.id in self._records for t in self.plan.tasks if t.region == region):
            self._start(region)

    def finish(self, records: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
        """Export the regions not started yet (e.g. some of their tasks did not run), wait for every export and
        return ``{region: {status, files, error}}`` in plan order."""
        for rec in records:
            self._records.setdefault(rec["id"], rec)
        for region in self.plan.regions:
            if region not in self._started:
                self._start(region)
        self.close()
        return {region: self.out[region] for region in self.plan.regions if region in self.out}

    def _start(self, region: str) -> None:
        """Write the region's kpis.parquet from its finished tasks and queue its exports."""
        self._started.add(region)
        records = [self._records[t.id] for t in self.plan.tasks if t.region == region and t.id in self._records]
        frame = kpi_frame(records, self.plan, region)
        folder = paths.ensure_inside(self.run_dir, self.run_dir / paths.safe_component(region))
        write_kpis(frame, folder / "kpis.parquet")
        write_alerts(records, self.plan, region, folder / "alerts.json")
        self.out[region] = {"status": "ok", "files": {"kpis": f"{folder.name}/kpis.parquet",
                                                      "alerts": f"{folder.name}/alerts.json"}, "error": None}
        self._inputs[region] = (frame, records)
        self._queue.put(region)

    def close(self) -> None:
        """Stop the export threads after the regions queued so far."""
        for _ in range(self._threads):
            self._queue.put(None)
        for done in self._workers:
            done.result()
        self._pool.shutdown(wait=True)

    def _work(self) -> None:
        """One browser per thread, for the regions it takes in turn; a fresh one after a region that failed."""
        from crmlens.run import exports

        browser: exports.Chromium | None = None
        try:
            while (region := self._queue.get()) is not None:
                if browser is None and {"pdf", "pptx"} & set(self.formats):
                    try:
                        browser = exports.Chromium()
                    except Exception:  # export_region tries a browser of its own and reports the error
                        browser = None
                self._export(region, browser)
                if self.out[region]["status"] != "ok" and browser is not None:
                    browser.close()
                    browser = None
        finally:
            if browser is not None:
                browser.close()

    def _export(self, region: str, browser: Any) -> None:
        from crmlens.run import exports

        if not self.formats:
            return
        t0 = time.perf_counter()
        entry, (frame, records) = self.out[region], self._inputs[region]
        by_id = {r["id"]: r for r in records}
        notebooks = [self.run_dir / by_id[t.id]["outputs"]["ipynb"] for t in sorted(
            (t for t in self.plan.tasks if t.region == region),
            key=lambda t: (self.plan.periods.index(t.period), t.notebook))
            if (by_id.get(t.id, {}).get("outputs") or {}).get("ipynb")]
        title = report_title(region, self.plan.periods, self.plan.base.get("language"))
        try:
            written = exports.export_region(paths.ensure_inside(self.run_dir, self.run_dir / paths.safe_component(
                region)), notebooks, frame, title,
                                            formats=self.formats, browser=browser)
            entry["files"].update({k: str(Path(v).relative_to(self.run_dir)) for k, v in written.items()})
        except Exception as err:  # one region's export failing does not stop the others
            entry.update(status="failed", error=f"{type(err).__name__}: {err}")
        self.log(f"exports {region}: {entry['status']} in {time.perf_counter() - t0:.1f} s")


def report_title(region: str, periods: list[str], language: str | None = None) -> str:
    """The title of a region's report and deck, in the run's language: "CRM Lens — East, 2026-Q3"."""
    from crmlens import i18n

    with i18n.language(language):
        shown = i18n._("all regions") if region == "all" else region
        return i18n._("CRM Lens — {region}, {periods}", region=shown, periods=", ".join(periods))


# -- the run ---------------------------------------------------------------------------------------------------

def failure_table(tasks: Iterable[dict[str, Any]]) -> str:
    """Failed tasks as an aligned table: task, kind, cell, error, executed notebook."""
    rows = [("task", "kind", "cell", "error", "notebook")]
    for t in tasks:
        if t["status"] != "failed":
            continue
        e = t.get("error") or {}
        cell = "" if e.get("cell") is None else f"In [{e['cell']}]"
        message = f"{e.get('ename')}: {str(e.get('evalue', '')).splitlines()[0] if e.get('evalue') else ''}"
        rows.append((t["id"], str(e.get("kind")), cell, message[:90], str((t.get("outputs") or {}).get("ipynb"))))
    if len(rows) == 1:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def run(options: RunOptions, stream: TextIO | None = None) -> RunResult:
    """Run the workbook (see docs/run.md). Raises ParameterError before anything runs when a parameter is bad."""
    stream = stream or sys.stderr

    def log(text: str) -> None:
        print(text, file=stream, flush=True)

    if options.workers < 1:
        raise ParameterError(f"--workers: {options.workers} is not allowed; give 1 or more")
    if options.retries < 0:
        raise ParameterError(f"--retries: {options.retries} is not allowed; give 0 or more")
    if options.timeout is not None and options.timeout <= 0:
        raise ParameterError(f"--timeout: {options.timeout} is not allowed; give seconds > 0")
    bad = [f for f in options.exports if f not in EXPORT_FORMATS]
    if bad:
        raise ParameterError(f"--exports: {', '.join(bad)} not known; choose from {', '.join(EXPORT_FORMATS)} "
                             f"or none")
    started, t0 = _now(), time.perf_counter()
    plan, con = make_plan(regions=options.regions, periods=options.periods, notebooks=options.notebooks,
                          source=options.source, mapping=options.mapping, overrides=options.overrides,
                          notebooks_dir=options.notebooks_dir)
    run_dir = _choose_run_dir(options)
    run_id = run_dir.name
    notify_config = None
    if options.notify:  # a bad notifications file stops the run before any notebook runs
        from crmlens import notify

        notify_config = notify.load_config(options.notify)
        for missing in notify.missing_environment(notify_config):
            log(f"notifications: environment variable not set — {missing} (that channel will fail)")
    client = connect_cluster(options.cluster) if options.cluster else None
    fingerprint = provenance.data_fingerprint(con)
    code = provenance.code_version(plan.notebooks)
    log(f"crmlens run {run_id}: {matrix_summary(plan.tasks)} → {paths.display_path(run_dir)}")
    # the source is validated once, here, before any kernel starts: the tasks only read the validated store
    from crmlens.store import ensure_validated

    store = ensure_validated(con)
    log(f"validated store: {paths.display_path(store.folder)} (validated in {store.meta['seconds']:.1f} s)")
    unusable = [name for name, t in store.meta["tables"].items() if t.get("status") == "unusable"]
    if unusable:  # the run goes on: notebook 00 says so first, the analyses that need them say what is missing
        log(f"warning: the source's table{'s' * (len(unusable) > 1)} {', '.join(unusable)} cannot be used (every row "
            f"rejected); see 00_data_quality or `crmlens validate`")

    run_dir.mkdir(parents=True, exist_ok=True)
    previous = _previous_records(run_dir) if options.resume else {}
    if options.resume:
        _clean_partial_files(run_dir)
    records: dict[str, dict[str, Any]] = {}
    specs = []
    # the notebooks of one region × period share its validated slice through this folder (removed at the end)
    cache_dir = run_dir / CACHE_DIR / stable_hash([fingerprint, code["library_hash"]])[:16]
    env = {SLICE_CACHE_ENV: str(cache_dir), RENDERER_ENV: RUN_RENDERER, READER_TABLES_ENV: "1",
           RUN_DIR_ENV: str(run_dir)}
    from crmlens import i18n

    # the catalogue checks travel with the run (a warm kernel pool of another setting is not reused)
    env.update({k: os.environ[k] for k in (i18n.STRICT_ENV, i18n.MISSING_ENV) if os.environ.get(k)})
    if not second_processes(len(plan.tasks), options.workers):
        env[BACKGROUND_ENV] = "0"
    for task in execution_order(plan, options.workers):
        key = stable_hash({"notebook": code["notebooks"][task.notebook], "parameters": task.parameters,
                           "data": fingerprint, "library": code["library_hash"], "version": code["crmlens_version"],
                           "kernel": options.kernel_name})
        if _reusable(previous.get(task.id), key, run_dir):
            rec = {**previous[task.id], "status": "reused"}
            records[task.id] = rec
            continue
        specs.append(TaskSpec(id=task.id, notebook=task.notebook, path=task.path, region=task.region,
                              period=task.period, parameters=task.parameters, run_dir=str(run_dir), cache_key=key,
                              timeout=options.timeout, retries=options.retries, kernel_name=options.kernel_name,
                              env=env))
    if records:
        log(f"resume: {len(records)} task(s) unchanged since the last attempt are reused; {len(specs)} to run")

    progress = Progress(len(plan.tasks), options.progress, stream)
    for rec in records.values():
        progress.update(rec)

    # each region's exports start when its last task is done, while the other regions' notebooks run
    exporter = RegionExports(run_dir, plan, options.exports, log, options.workers)
    for rec in records.values():
        exporter.task_done(rec)

    def on_done(rec: dict[str, Any]) -> None:
        records[rec["id"]] = rec
        task = next(t for t in plan.tasks if t.id == rec["id"])
        atomic.write_text(_record_path(run_dir, task), json.dumps(rec, indent=1, default=str))
        progress.update(rec)
        exporter.task_done(rec)

    executor: dict[str, Any] = {"kind": "threads", "workers": options.workers, "cluster": None}
    status = "ok"

    def build_manifest(exports_info: dict[str, Any]) -> dict[str, Any]:
        tasks = [records[t.id] for t in plan.tasks if t.id in records]
        counts = {s: sum(t["status"] == s for t in tasks) for s in ("ok", "failed", "reused")}
        return {
            "run_id": run_id, "status": status, "started_at": started, "finished_at": _now(),
            "command": options.command or ["crmlens", "run"],
            "parameters": {"regions": plan.regions, "periods": plan.periods,
                           "notebooks": [p.stem for p in plan.notebooks], "base": plan.base,
                           "timeout_s": options.timeout, "retries": options.retries,
                           "exports": list(options.exports)},
            "data": {"source": plan.source, "mapping": plan.mapping, "fingerprint": fingerprint},
            "code": code, "packages": provenance.package_versions(), **provenance.environment(),
            "executor": executor, "tasks": tasks, "exports": exports_info,
            "summary": {"tasks": len(plan.tasks), **counts, "not_run": len(plan.tasks) - len(tasks),
                        "duration_s": round(time.perf_counter() - t0, 1)},
        }

    try:
        if client is not None:
            executor = _run_dask(specs, client, on_done) if specs else {"kind": "dask", "workers": None,
                                                                        "cluster": options.cluster}
        elif specs:
            _run_threads(specs, options.workers, options.kernel_name, on_done)
    except KeyboardInterrupt:
        progress.close()
        exporter.close()
        status = "interrupted"
        manifest = build_manifest({})
        atomic.write_text(run_dir / "manifest.json", json.dumps(manifest, indent=1, default=str))
        log(f"\ninterrupted: {len(records)} of {len(plan.tasks)} tasks finished and kept; complete the run with "
            f"`crmlens run --run-id {run_id} --resume` (same options)")
        return RunResult(run_dir, manifest)
    except BaseException:
        exporter.close()
        raise
    progress.close()
    shutil.rmtree(run_dir / CACHE_DIR, ignore_errors=True)

    all_records = [records[t.id] for t in plan.tasks if t.id in records]
    status = "failed" if any(r["status"] == "failed" for r in all_records) else "ok"
    exports_info = exporter.finish(all_records)
    if any(e["status"] != "ok" for e in exports_info.values()):
        status = "failed"
    manifest = build_manifest(exports_info)
    atomic.write_text(run_dir / "manifest.json", json.dumps(manifest, indent=1, default=str))
    from crmlens.run import index

    index.write_index(run_dir, manifest)
    if notify_config is not None:
        manifest["notifications"] = _notify(run_dir, notify_config, log)
        atomic.write_text(run_dir / "manifest.json", json.dumps(manifest, indent=1, default=str))
    _point_latest(run_dir)
    return RunResult(run_dir, manifest)


def _notify(run_dir: Path, config: Any, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Send the run's digest and alerts (`crmlens.notify`); a failing channel is reported, never fatal."""
    from crmlens import notify

    try:
        records = notify.send_run_notifications(run_dir, config=config)
    except Exception as err:  # the run's results stand whatever happens to its notifications
        records = [{"channel": "*", "kind": "?", "status": "failed", "reason": f"{type(err).__name__}: {err}"}]
    for r in records:
        log(f"notification {r.get('channel')} ({r.get('kind')}): {r.get('status')}"
            + (f" — {r['reason']}" if r.get("reason") else ""))
    return records


def _point_latest(run_dir: Path) -> None:
    """outputs/latest → this run (a symlink replaced atomically)."""
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest.{os.getpid()}.tmp"
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)
        os.symlink(run_dir.name, tmp)
        os.replace(tmp, link)


def summary_text(result: RunResult) -> str:
    """What `crmlens run` prints at the end: counts, timings, failures, where the results are."""
    m = result.manifest
    s = m["summary"]
    tasks = m["tasks"]
    ran = [t for t in tasks if t["status"] != "reused"]
    lines = [f"run {m['run_id']}: {m['status']} — {s['ok']} ok, {s['failed']} failed, {s['reused']} reused, "
             f"{s.get('not_run', 0)} not run, of {s['tasks']} tasks in {s['duration_s']:.1f} s"]
    if ran:
        compute = sum(t["compute_s"] for t in ran)
        overhead = sum(t["overhead_s"] for t in ran)
        lines.append(f"  notebooks: {compute:.1f} s of cell execution, {overhead / len(ran):.2f} s overhead per "
                     f"notebook on average")
    failed_exports = {r: e for r, e in m.get("exports", {}).items() if e["status"] != "ok"}
    table = failure_table(tasks)
    if table:
        lines += ["", "Failed tasks (executed notebooks keep the failing cell, highlighted):", table]
    for region, e in failed_exports.items():
        lines.append(f"  exports of {region} failed: {e['error']}")
    run_dir = paths.display_path(result.run_dir)
    from crmlens.run.exports import FILENAMES

    asked = m.get("parameters", {}).get("exports", EXPORT_FORMATS)
    files = ["kpis.parquet", *(FILENAMES[f] for f in EXPORT_FORMATS if f in asked)]
    for r in m.get("notifications") or []:
        lines.append(f"  notification {r.get('channel')}: {r.get('status')}"
                     + (f" — {r['reason']}" if r.get("reason") else ""))
    lines += ["", f"Results: {run_dir}/index.html  (open in a browser)",
              f"         {run_dir}/manifest.json, {run_dir}/<region>/{', '.join(files)}"]
    return "\n".join(lines)
