"""The executive view's "Customer value by segment" panel (客户终身价值，按细分): what the customers of the view are
worth to date and are predicted to be worth over the next 12 months, per industry, from the CLV models of
`crmlens.metrics.clv` (BG/NBD + Gamma-Gamma, as notebook 04 calls them).

The models are fitted once for the **whole company** (region all, no product line / team / segment / rep filter)
at the reference time of the view's period, on the purchases (``contracts``) and credits (``credit_notes``, when
loaded) of the 16 periods ending with it — the numbers `clv.customer_value` gives on that slice, same seed — and a
view shows those values restricted to its own customers (the accounts of its region and its segment, team or rep
filter). So every region, segment and team view of a period reads the same fit: their segments add up.

A fit never runs in a dashboard kernel while a viewer waits (importing pymc takes ~5 s, a fit 3–5 s): it runs in
the kernel's second process (`customer_values`, one worker, stopped after its last job; `warm_up` starts it
early), and its
result is filed with the dashboard's results (`DashboardData._store`, the key of `values_key`), on disk where the
source's results are shared, so every kernel of the same data reads it. A job already running for a key — in this
kernel, or in another kernel sharing the cache folder (a ``.running`` marker next to the result) — is not started
again: its result is waited for. Until the values are there the panel says so and carries the job
(`Panel.pending`); the dashboard draws it again when the job is done. A failed job says why, in plain words, and is
not retried by this kernel for the same data (a reload starts afresh).

Segments are the accounts' **industry** — the breakdown notebook 04 shows ("Net revenue to date and predicted
12-month value by industry") — so a view filtered by customer segment (company size) still splits its customers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import sys
import threading
import time
import weakref
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import plotly.graph_objects as go

from crmlens.charts import customers as customer_charts
from crmlens.dashboard import state as st
from crmlens.dashboard.model import DashboardData, View
from crmlens.errors import CrmLensError
from crmlens.i18n import N_, _
from crmlens.metrics import clv, customers
from crmlens.metrics.common import isin, region_accounts

if TYPE_CHECKING:
    from collections.abc import Callable

    from crmlens.dashboard.panels import Panel, Said

#: The accounts' field the panel splits customers by (notebook 04's breakdown of the predicted value).
SEGMENT_BY = "industry"
#: Periods of purchase history the models are fitted on (`crmlens.metrics.customers.purchase_history`'s default).
HISTORY_PERIODS = 16
#: A ``.running`` marker older than this is a job that died with its kernel: another kernel may start it again.
STALE_SECONDS = 600.0
#: How often a kernel waiting for another kernel's job looks for its result.
POLL_SECONDS = 0.5

TITLE = N_("Customer value by segment")
PENDING_TEXT = N_("Customer values are being computed (about a minute at most); this panel fills in by itself.")
FAILED_TEXT = N_("Customer values could not be computed: {reason}")
STOPPED_TEXT = N_("the process computing them stopped (out of memory, killed or shut down)")
NO_PROCESS_TEXT = N_("no second process could be started here")
NO_COLUMN_TEXT = N_("No data: this source does not record `accounts.{column}`")
COLUMNS = {"segment": N_("Industry"), "n_customers": N_("Customers"), "net_revenue_amount": N_("Net revenue to date"),
           "predicted_value_amount": N_("Predicted value (12 months)"),
           "predicted_per_customer": N_("Predicted value per customer"),
           "predicted_share": N_("Share of predicted value")}


# ------------------------------------------------------------------------------------ the company's values

def company_state(state: st.FilterState) -> st.FilterState:
    """`state` for the whole company at the same period: region all, no product line, team, segment or rep."""
    return dataclasses.replace(state, region="all", product_line=None, team=None, segment=None, rep=None)


def values_key(board: DashboardData, state: st.FilterState) -> tuple:
    """What identifies the company-wide customer values of `state`'s period: the source's version, the reference
    time, the purchase history's span, whether credits are read, the seed and the horizon (a `DashboardData.memo`
    key: texts and numbers)."""
    from crmlens.periods import shift_period

    # from the parameters alone (cutting the company's slice to name its key cost ~1 s a period)
    params = board.params_for(company_state(state))
    period = params.period_obj()
    first = shift_period(period, -(HISTORY_PERIODS - 1))
    as_of = pd.Timestamp(params.as_of) if params.as_of is not None else board.as_of
    reference = min(as_of, pd.Timestamp(period.end))
    return ("clv customer values", board.version or "", str(reference), str(first.start), str(period.end),
            "credits" if customers.CREDITS_TABLE in board.frames else "no credits", clv.SEED, clv.HORIZON_DAYS)


#: This kernel's second process (one worker: pymc is imported once, jobs run one after the other).
_POOL: dict[str, ProcessPoolExecutor | None] = {"pool": None}
_LOCK = threading.Lock()
#: Jobs sent to the second process and not finished: the process stops with the last one (~0.5 GB idle).
_SENT = {"n": 0}
#: Per DashboardData: values_key → the job's future (running, done or failed) in this kernel.
_JOBS: weakref.WeakKeyDictionary[DashboardData, dict[tuple, Future]] = weakref.WeakKeyDictionary()


def _pool() -> ProcessPoolExecutor:
    """The kernel's second process, started when none is open (forkserver: the kernel's threads — DuckDB,
    ZeroMQ — are never forked)."""
    if _POOL["pool"] is None:
        main = sys.modules.get("__main__")
        if main is not None and not hasattr(main, "__spec__"):  # an interactive __main__ (a kernel)
            main.__spec__ = None
        _POOL["pool"] = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("forkserver"))
    return _POOL["pool"]


def warm_up() -> bool:
    """Start the kernel's second process now and import pymc-marketing there (`clv.prepare`), so the first
    `customer_values` job starts at once; True when started, False when it runs already or cannot start."""
    with _LOCK:
        if _POOL["pool"] is not None:
            return False
        try:
            _pool().submit(clv.prepare)
        except (OSError, RuntimeError, ValueError):
            _POOL["pool"] = None
            return False
    return True


def shutdown() -> None:
    """Stop the kernel's second process (a running job is cancelled: its panel says it failed)."""
    with _LOCK:
        pool, _POOL["pool"] = _POOL["pool"], None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def _marker(board: DashboardData, key: tuple) -> Path | None:
    """The file saying a kernel computes `key` (None without a shared cache folder)."""
    path = board._path(key)
    return path.with_suffix(".running") if path is not None else None


def _claim(marker: Path | None) -> bool:
    """True when this kernel may compute (no other kernel does: the marker made here, or a stale one replaced)."""
    if marker is None:
        return True
    for _attempt in range(2):
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if not _stale(marker):
                return False
            with contextlib.suppress(OSError):
                marker.unlink()
            continue
        except OSError:  # a read-only cache folder: no sharing, compute here
            return True
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        return True
    return False


def _stale(marker: Path) -> bool:
    """True when the kernel that made `marker` is gone (its process on this machine), or it is too old."""
    try:
        age = time.time() - marker.stat().st_mtime
        pid = int(marker.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return True
    if age > STALE_SECONDS:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: alive
        return False
    return False


def _release_marker(marker: Path | None) -> None:
    if marker is not None:
        with contextlib.suppress(OSError):
            marker.unlink()


def _done(value: Any) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


class NoSecondProcess(CrmLensError):
    """The kernel could not start its second process (or send it the job)."""


def _start(board: DashboardData, state: st.FilterState, key: tuple, outer: Future) -> None:
    """Send the fit to the second process; `outer` gets the values once they are filed (or the failure)."""
    company = board.view(company_state(state))
    bound = clv.customer_value.bind(company, customers.purchase_history(company, HISTORY_PERIODS),
                                    credits=customers.credit_history(company, HISTORY_PERIODS))
    marker = _marker(board, key)
    for attempt in range(2):  # a process that broke since its last job (killed while idle): once more, a new one
        try:
            with _LOCK:
                pool = _pool()
                job = pool.submit(clv.customer_value, **bound)  # the frame-level function, as in_background sends it
                _SENT["n"] += 1
            break
        except (OSError, RuntimeError, ValueError) as exc:  # no process here, or a broken one (BrokenProcessPool)
            with _LOCK:
                broken, _POOL["pool"] = _POOL["pool"], None
            if broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
            if attempt == 0 and isinstance(exc, BrokenProcessPool):
                continue
            _release_marker(marker)
            outer.set_exception(NoSecondProcess(f"{type(exc).__name__}: {exc}"))
            return

    def finish(job: Future) -> None:
        with _LOCK:  # the last job done: the process stops (a new one starts with the next job)
            _SENT["n"] -= 1
            idle = _SENT["n"] == 0 and _POOL["pool"] is pool
            if idle:
                _POOL["pool"] = None
        if idle:
            pool.shutdown(wait=False)
        try:
            value = job.result()
        except BaseException as exc:  # reported to the panel, never raised in the kernel
            if isinstance(exc, BrokenProcessPool):  # the next job gets a new process
                with _LOCK:
                    if _POOL["pool"] is pool:
                        _POOL["pool"] = None
                pool.shutdown(wait=False, cancel_futures=True)
            _release_marker(marker)
            outer.set_exception(exc)
            return
        board._store(key, value)  # shared with the other kernels (what `DashboardData.memo` reads)
        _release_marker(marker)
        outer.set_result(value)

    job.add_done_callback(finish)


def _wait_for_other_kernel(board: DashboardData, state: st.FilterState, key: tuple, outer: Future) -> None:
    """Another kernel computes `key`: wait for its result on disk; if its marker goes (or goes stale) without
    a result, compute here."""
    marker = _marker(board, key)

    def poll() -> None:
        while True:
            value = board._load(key)
            if value is not None:
                outer.set_result(value)
                return
            if (marker is None or not marker.exists() or _stale(marker)) and _claim(marker):
                value = board._load(key)  # filed just before the marker went
                if value is not None:
                    _release_marker(marker)
                    outer.set_result(value)
                    return
                try:
                    _start(board, state, key, outer)
                except Exception as exc:  # reported to the panel
                    _release_marker(marker)
                    outer.set_exception(exc)
                return
            time.sleep(POLL_SECONDS)

    threading.Thread(target=poll, name="crmlens-clv-wait", daemon=True).start()


def customer_values(board: DashboardData, state: st.FilterState) -> Future:
    """The company-wide customer values (`clv.customer_value` on the whole company's slice at `state`'s period)
    as a `concurrent.futures.Future`: already done when filed (in this kernel, or on disk by any kernel);
    otherwise the job computing them — started in this kernel's second process, or run by another kernel — whose
    result is filed before the future completes. Asking again while it runs gives the same future; a failed job
    stays failed for this data (its exception is the future's). Needs the tables ``accounts`` and ``contracts``."""
    key = values_key(board, state)
    with _LOCK:
        jobs = _JOBS.setdefault(board, {})
        job = jobs.get(key)
        if job is not None:
            return job
        value = board._load(key)
        if value is not None:
            jobs[key] = _done(value)
            return jobs[key]
        outer: Future = Future()
        jobs[key] = outer
        mine = _claim(_marker(board, key))
    if mine:
        try:
            _start(board, state, key, outer)
        except Exception as exc:  # reading the history failed: reported to the panel
            _release_marker(_marker(board, key))
            outer.set_exception(exc)
    else:
        _wait_for_other_kernel(board, state, key, outer)
    return outer


# ------------------------------------------------------------------------------------------------ the panel

def view_customers(v: View) -> tuple[pd.Series, tuple[str, ...]]:
    """The account ids of the view's customers — its region's accounts, kept by its segment, team and rep filters
    (`crmlens.dashboard.state.apply_filters` on the accounts) — and the slice filters that cannot apply to
    accounts (a product line)."""
    accounts = region_accounts(v.tables["accounts"], v.ctx())
    filtered = st.apply_filters({"accounts": accounts}, v.state, products=v.tables.get("products"),
                                accounts=v.tables["accounts"], reps=v.tables.get("reps"), tables=("accounts",))
    return filtered["accounts"]["account_id"].astype("string"), filtered.not_applied.get("accounts", ())


def failure_text(exc: BaseException) -> str:
    """Why the values could not be computed, in one plain line in the language in use (never a traceback)."""
    if isinstance(exc, BrokenProcessPool | CancelledError):
        reason = _(STOPPED_TEXT)
    elif isinstance(exc, NoSecondProcess):
        reason = _(NO_PROCESS_TEXT)
    else:
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        if not isinstance(exc, CrmLensError):
            reason = f"{type(exc).__name__}: {reason}"
    return _(FAILED_TEXT, reason=reason)


def _plain(key: str, title: str, no_data: str, pending: Any = None) -> Panel:
    from crmlens.dashboard.panels import Panel

    return Panel(key, title, no_data=no_data, pending=pending)


def clv_segments_panel(v: View) -> Panel:
    """Customer value by segment (industry): for the view's customers, their net revenue to date and predicted
    12-month value per industry (`clv.value_by_segment` of the company-wide values kept to the view's customers),
    the chart and the finding of `clv.describe_value_by_segment`. While the values are computed the panel says
    so and carries the job (`Panel.pending`)."""
    from crmlens.dashboard.panels import _missing, _panel

    title = _(TITLE)
    reason = _missing(v, "accounts", "contracts")
    if reason:
        return _plain("clv_segments", title, reason)
    job = customer_values(v.source, v.state)
    if not job.done():
        return _plain("clv_segments", title, _(PENDING_TEXT), pending=job)
    exc = job.exception()
    if exc is not None:
        return _plain("clv_segments", title, failure_text(exc))
    values: pd.DataFrame = job.result()
    if values.attrs.get("status") != "ok":  # too few customers or repeat buyers: said in the language in use
        return _plain("clv_segments", title, clv.status_message(values.attrs.get("status", "no_purchases"),
                                                                values.attrs.get("n_customers", 0),
                                                                values.attrs.get("n_repeat_buyers", 0)))
    if not v.has_column("accounts", SEGMENT_BY):
        return _plain("clv_segments", title, _(NO_COLUMN_TEXT, column=SEGMENT_BY))
    ids, not_applied = view_customers(v)
    mine = values[isin(values["account_id"].astype("string"), ids)].reset_index(drop=True)

    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        table = clv.value_by_segment(v, mine, by=SEGMENT_BY)
        if table is None or table.empty:
            return go.Figure(), pd.DataFrame(), None
        return customer_charts.plot_value_by_segment(table), table, clv.describe_value_by_segment(table)

    panel = _panel("clv_segments", title, v, ("accounts", "contracts"), build, COLUMNS)
    panel.note = st.not_filtered_note(not_applied)
    return panel


#: The panel by key, for `crmlens.dashboard.panels.PANELS`.
CLV_PANELS: dict[str, Callable[[View], Panel]] = {"clv_segments": clv_segments_panel}
#: The fact tables the panel reads (credit notes where the source records them: net revenue), for
#: `crmlens.dashboard.panels.PANEL_TABLES`.
PANEL_TABLES_CLV: dict[str, tuple[str, ...]] = {"clv_segments": ("contracts", "credit_notes")}
