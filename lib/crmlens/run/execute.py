"""One task of a run: execute a notebook with papermill in a warm kernel, retry a dead kernel, enforce the
timeout, write the executed notebook and its HTML report atomically, and read back the recorded KPIs.

`run_task` is a plain top-level function of plain data so a thread pool and a Dask cluster run the same code.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crmlens import atomic
from crmlens.notebook import KPI_MIMETYPE
from crmlens.run.kernels import KERNEL_NAME, KernelPool, worker_pool

#: Pause before retry n (seconds): 1, 2, 4, ... capped at 10.
BACKOFF_S = 1.0


@dataclass
class TaskSpec:
    """Everything a worker needs to run one task (plain data: it travels to Dask workers)."""

    id: str
    notebook: str
    path: str
    region: str
    period: str
    parameters: dict[str, Any]
    run_dir: str
    cache_key: str = ""
    timeout: float | None = 600.0
    retries: int = 2
    kernel_name: str = KERNEL_NAME
    html: bool = True
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # for the kernel (e.g. the run's slice cache)

    @property
    def folder(self) -> Path:
        """``<run_dir>/<region>/<period>``, each id made a safe path component (`crmlens.paths.safe_component`:
        ordinary ids unchanged), checked to lie inside the run folder."""
        from crmlens.paths import ensure_inside, safe_component

        return ensure_inside(self.run_dir, Path(self.run_dir) / safe_component(self.region)
                             / safe_component(self.period))

    @property
    def ipynb(self) -> Path:
        from crmlens.paths import safe_component

        return self.folder / f"{safe_component(self.notebook)}.ipynb"

    @property
    def html_path(self) -> Path:
        from crmlens.paths import safe_component

        return self.folder / f"{safe_component(self.notebook)}.html"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _is_retryable(err: BaseException) -> bool:
    """Kernel death and kernel-transport failures (ZMQ sockets, ports, a kernel that never answered)."""
    from nbclient.exceptions import DeadKernelError

    if isinstance(err, DeadKernelError):
        return True
    try:
        import zmq

        if isinstance(err, zmq.error.ZMQError):
            return True
    except ImportError:  # pragma: no cover
        pass
    text = str(err).lower()
    return isinstance(err, RuntimeError | TimeoutError | OSError) and any(
        s in text for s in ("kernel died", "didn't respond", "address already in use", "kernel is dead", "zmq"))


def compute_seconds(nb: Any) -> float:
    """Seconds the notebook's cells took to execute (papermill's per-cell timings)."""
    total = 0.0
    for cell in nb.cells:
        d = cell.get("metadata", {}).get("papermill", {}).get("duration")
        if isinstance(d, int | float):
            total += float(d)
    return total


def recorded_kpis(nb: Any) -> list[dict[str, Any]]:
    """The KPI records the notebook emitted (`crmlens.notebook.record_kpis`), one dict per KPI."""
    rows = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            payload = out.get("data", {}).get(KPI_MIMETYPE)
            if payload:
                for kpi in payload.get("kpis", []):
                    rows.append({"area": payload.get("area"), "comparison_period": payload.get("comparison_period"),
                                 **kpi})
    return rows


def recorded_findings(nb: Any, notebook: str = "") -> list[dict[str, Any]]:
    """The finding records the notebook emitted (`crmlens.notebook.say`), with their section heading."""
    from crmlens.run.summary import notebook_findings

    return [f.record() for f in notebook_findings(nb, notebook)]


def recorded_alerts(nb: Any) -> list[dict[str, Any]]:
    """The alert records the notebook emitted (`crmlens.notebook.show_alerts`)."""
    from crmlens.alerts import ALERT_MIMETYPE

    return [out["data"][ALERT_MIMETYPE] for cell in nb.cells for out in cell.get("outputs", [])
            if isinstance((out.get("data") or {}).get(ALERT_MIMETYPE), dict)]


def write_record(nb: Any, mimetype: str, target: Path) -> Path | None:
    """The last JSON record of type `mimetype` the notebook kept, written to `target`; None when it kept none."""
    import json

    from crmlens import atomic

    found = [out["data"][mimetype] for cell in nb.cells for out in cell.get("outputs", [])
             if isinstance((out.get("data") or {}).get(mimetype), dict)]
    if not found:
        return None
    return atomic.write_text(target, json.dumps(found[-1], ensure_ascii=False, sort_keys=True) + "\n")


def write_forecast(nb: Any, target: Path) -> Path | None:
    """The forecast snapshot the notebook kept (`crmlens.notebook.record_forecast`), written to `target`
    (``<region>/<period>/forecast.json``); None when the notebook kept none."""
    from crmlens.forecast.snapshots import FORECAST_MIMETYPE

    return write_record(nb, FORECAST_MIMETYPE, target)


def write_quality(nb: Any, target: Path) -> Path | None:
    """The data quality record the notebook kept (`crmlens.notebook.keep_quality`), written to `target`
    (``<region>/<period>/quality.json``, read back by the next runs); None when the notebook kept none."""
    from crmlens.metrics.quality import QUALITY_MIMETYPE

    return write_record(nb, QUALITY_MIMETYPE, target)


def _mark_failure(nb: Any, text: str) -> None:
    """Put a red banner on top of a notebook that did not finish (papermill does this for cell errors)."""
    import nbformat

    banner = nbformat.v4.new_markdown_cell(
        f'<span style="color:red; font-size:1.4em">**The run stopped this notebook:** {text}</span>')
    banner.metadata["tags"] = ["crmlens-run-failure"]
    nb.cells.insert(0, banner)


def _error_info(err: BaseException, kind: str, timeout: float | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"kind": kind, "cell": None, "execution_count": None, "source": None,
                            "ename": type(err).__name__, "evalue": str(err).strip()[:2000]}
    if kind == "timeout":
        info.update(ename="Timeout", evalue=f"the notebook ran longer than the timeout of {timeout:g} s and was "
                                            f"stopped")
    if hasattr(err, "exec_count"):  # papermill's PapermillExecutionError
        info.update(cell=getattr(err, "exec_count", None), execution_count=getattr(err, "exec_count", None),
                    source="\n".join(str(getattr(err, "source", "")).splitlines()[:6]),
                    ename=getattr(err, "ename", info["ename"]), evalue=str(getattr(err, "evalue", ""))[:2000])
    return info


def _one_attempt(spec: TaskSpec, pool: KernelPool, tmp: Path) -> tuple[Any, BaseException | None, bool]:
    """Run the notebook once into `tmp`. Returns (notebook or None, error or None, timed_out)."""
    import papermill as pm

    km = pool.acquire()
    timed_out = threading.Event()

    def _on_timeout() -> None:
        timed_out.set()
        pool.release(km)  # the kernel dies; papermill stops with DeadKernelError

    timer = threading.Timer(spec.timeout, _on_timeout) if spec.timeout else None
    if timer:
        timer.daemon = True
        timer.start()
    nb, error = None, None
    # nbclient leaves the channels of a client it made for a kernel it does not own running (its heartbeat
    # thread then reopens sockets forever once the kernel is gone: "Too many open files" in a process that runs
    # many tasks); the clients made for this task are stopped when it ends
    clients: list[Any] = []
    make_client = km.client

    def client(**kwargs: Any) -> Any:
        kc = make_client(**kwargs)
        clients.append(kc)
        return kc

    km.client = client
    try:
        # no papermill `cwd`: it would chdir the whole (multi-threaded) process; the pool starts its kernels
        # in the notebooks' folder instead
        nb = pm.execute_notebook(_source_notebook(spec), str(tmp), parameters=spec.parameters,
                                 kernel_name=spec.kernel_name, progress_bar=False,
                                 request_save_on_cell_execute=False, km=km, execution_timeout=spec.timeout)
    except BaseException as err:  # classified by the caller; KeyboardInterrupt is re-raised there
        error = err
    finally:
        del km.client  # the manager's own method again
        for kc in clients:
            with contextlib.suppress(Exception):
                kc.stop_channels()
        if timer:
            timer.cancel()
        if error is None and not timed_out.is_set():
            pool.recycle(km)  # namespace reset, then the next task's
        else:
            pool.release(km)
    return nb, error, timed_out.is_set()


def _source_notebook(spec: TaskSpec) -> Any:
    """The notebook to execute: its path, or, for a language other than English, the notebook with its prose
    (markdown cells) translated from the catalogue (`crmlens.i18n.translate_notebook`)."""
    language = (spec.parameters or {}).get("language")
    if not language or language == "en":
        return spec.path
    import nbformat

    from crmlens import i18n

    return i18n.translate_notebook(nbformat.read(spec.path, as_version=4), language)


def run_task(spec: TaskSpec | dict[str, Any], pool: KernelPool | None = None) -> dict[str, Any]:
    """Execute one task and return its record (see docs/run.md, manifest "tasks"). Never raises for a failing
    notebook: the record says failed, with the cell and error; the executed notebook is kept."""
    import nbformat
    from nbclient.exceptions import CellTimeoutError
    from papermill.exceptions import PapermillExecutionError

    spec = spec if isinstance(spec, TaskSpec) else TaskSpec(**spec)
    pool = pool or worker_pool(kernel_name=spec.kernel_name, env=spec.env,
                               cwd=spec.cwd or str(Path(spec.path).parent))
    started, t0 = _now(), time.perf_counter()
    target = spec.ipynb
    attempts, nb, error, kind = 0, None, None, None
    while True:
        attempts += 1
        tmp = atomic.temp_beside(target, suffix=f".tmp{target.suffix}")  # papermill wants .ipynb
        nb, err, timed_out = _one_attempt(spec, pool, tmp)
        if err is None:
            error = kind = None
        elif isinstance(err, KeyboardInterrupt | SystemExit):
            tmp.unlink(missing_ok=True)
            raise err
        elif timed_out or isinstance(err, CellTimeoutError):
            error, kind = err, "timeout"
        elif isinstance(err, PapermillExecutionError):
            error, kind = err, "cell_error"
        elif _is_retryable(err):
            error, kind = err, "kernel_died"
        else:
            error, kind = err, "error"
        if kind == "kernel_died" and attempts <= spec.retries:
            tmp.unlink(missing_ok=True)
            time.sleep(min(10.0, BACKOFF_S * 2 ** (attempts - 1)))
            continue
        break
    # keep what was executed, under the final name (a failing cell is highlighted by papermill / our banner)
    if nb is None and tmp.exists() and tmp.stat().st_size:
        with contextlib.suppress(Exception):
            nb = nbformat.read(tmp, as_version=4)
    if nb is None:
        nb = nbformat.read(spec.path, as_version=4)
    if kind in ("timeout", "kernel_died", "error"):
        what = {"timeout": f"it ran longer than the timeout of {spec.timeout:g} s",
                "kernel_died": f"its kernel died ({attempts} attempt{'s' * (attempts > 1)})",
                "error": f"{type(error).__name__}: {error}"}[kind]
        _mark_failure(nb, what)
    if error is not None or not tmp.stat().st_size:  # papermill has written a finished notebook: keep it
        nbformat.write(nb, str(tmp))
    os.replace(tmp, target)
    html = None
    if spec.html:
        # drawn like the region's report: no code, plotly.js embedded once, nothing fetched from the network
        from crmlens.run import exports

        exports.write_html(spec.html_path, [exports.analysis_of(nb, target)],
                           f"{spec.notebook} — {spec.region}, {spec.period}", spec.region)
        html = str(spec.html_path.relative_to(spec.run_dir))
    forecast = write_forecast(nb, target.parent / "forecast.json") if error is None else None
    quality = write_quality(nb, target.parent / "quality.json") if error is None else None
    duration = time.perf_counter() - t0
    compute = compute_seconds(nb)
    return {
        "id": spec.id, "notebook": spec.notebook, "region": spec.region, "period": spec.period,
        "parameters": spec.parameters, "status": "ok" if error is None else "failed", "attempts": attempts,
        "duration_s": round(duration, 3), "compute_s": round(compute, 3),
        "overhead_s": round(max(0.0, duration - compute), 3), "started_at": started, "finished_at": _now(),
        "cache_key": spec.cache_key,
        "error": None if error is None else _error_info(error, kind or "error", spec.timeout),
        "outputs": {"ipynb": str(target.relative_to(spec.run_dir)), "html": html,
                    **({"forecast": str(forecast.relative_to(spec.run_dir))} if forecast else {}),
                    **({"quality": str(quality.relative_to(spec.run_dir))} if quality else {})},
        "kpis": recorded_kpis(nb) if error is None else [],
        "findings": recorded_findings(nb, spec.notebook) if error is None else [],
        "alerts": recorded_alerts(nb) if error is None else [],
        "worker": f"{os.uname().nodename}:{os.getpid()}",
    }
