"""Analyses that take the slice: cells that read like the question.

A frame-level analysis function (tested on hand-made frames) declares once, with `on_slice`, the tables it
needs; then a notebook calls it with the slice and only the arguments that are the question:

    @on_slice("leads")
    def conversion_by(leads, opportunities, by, ctx): ...

    funnel.conversion_by(s, "source_channel")          # in a notebook
    funnel.conversion_by(leads, opps, "source_channel", ctx)   # in a unit test: the function as written

Called with a slice (`crmlens.data.Slice`), the function's leading parameters are filled from it by name:

| parameter name | filled with |
|---|---|
| a table of the data model (``leads``, ``opportunities``, ``accounts``...) | ``s.tables.get(name)`` (None if absent) |
| ``stage_history`` | ``s.tables.get("opportunity_stage_history")`` |
| ``frames``, ``dims``, ``current`` | ``s.tables`` (every table, read when used) |
| ``comparison`` | ``s.comparison`` |
| ``ctx`` | the KPI context of the period (`crmlens.notebook.context`) |
| ``comparison_ctx``, ``before`` | the KPI context of the comparison period |
| ``vocabulary`` | the source's stage vocabulary |
| ``s`` | the slice itself |

Every parameter with such a name is filled (keyword-only ones too, e.g. ``products=``) unless the call
passes it by keyword; the other parameters take the call's arguments in order, then its keywords. When the
source lacks a needed table the call shows the plain "needs table `leads`" note and returns None, so the
section is skipped and the following ``nb.say``/``nb.plot``/``nb.table`` calls show nothing.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: Parameter names filled from the slice (see the module's table).
_TABLE_ALIASES = {"stage_history": "opportunity_stage_history"}
_ALL_TABLES = ("frames", "dims", "current")


def is_slice(value: Any) -> bool:
    """True for an analysis slice (duck-typed: tables, params and `missing`)."""
    return hasattr(value, "tables") and hasattr(value, "params") and hasattr(value, "missing")


def _fill(name: str, s: Any) -> tuple[bool, Any]:
    """(True, value) when parameter `name` is filled from the slice `s`."""
    from crmlens import notebook
    from crmlens.schema import SCHEMA

    if name == "s":
        return True, s
    if name in _ALL_TABLES:
        return True, s.tables
    if name == "comparison":
        return True, s.comparison
    if name == "ctx":
        return True, notebook.context(s)
    if name in ("comparison_ctx", "before"):
        return True, notebook.context(s, "comparison")
    if name == "vocabulary":
        return True, s.info.vocabulary
    table = _TABLE_ALIASES.get(name, name)
    if table in SCHEMA:
        return True, s.tables.get(table)
    return False, None


def _records(s: Any, table: str, column: str) -> bool:
    """True when the source records `column` in `table` (names that are no column at all are left to the
    function's own checks)."""
    from crmlens.data import has_column
    from crmlens.schema import SCHEMA

    if table not in SCHEMA or column not in {c.name for c in SCHEMA[table].columns}:
        return True
    return has_column(s, table, column)


def _bind(fn: Callable[..., Any], params: list[inspect.Parameter], s: Any, rest: list[Any],
          kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of the frame-level `fn` for a call with the slice `s` (see the module's table)."""
    for p in params:
        if p.kind is p.VAR_POSITIONAL or p.kind is p.VAR_KEYWORD or p.name in kwargs:
            continue
        filled, value = _fill(p.name, s)
        if filled:
            kwargs[p.name] = value
        elif p.kind is not p.KEYWORD_ONLY and rest:
            kwargs[p.name] = rest.pop(0)
    if rest:
        raise TypeError(f"{fn.__name__}(s, ...): too many positional arguments: {rest!r}")
    return kwargs


def on_slice(*needs: str, columns: dict[str, str] | None = None) -> Callable[[F], F]:
    """Decorator: the function also takes the slice as its first argument (see the module doc); `needs` are the
    tables without which the analysis is skipped with the "needs table" note. `columns` maps a parameter naming a
    column (e.g. ``{"by": "accounts"}``) to its table: a column the source does not record (`crmlens.data.
    has_column`; the slice's frames carry every canonical column, empty where the source has none) skips the
    analysis with the "needs column" note instead of a table of "(unknown)"."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)
        params = list(signature.parameters.values())
        defaults = {p.name: p.default for p in params if p.default is not p.empty}

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not args or not is_slice(args[0]):
                return fn(*args, **kwargs)
            s, rest = args[0], list(args[1:])
            if s.missing(*needs):
                from crmlens import notebook

                notebook.needs(s, *needs)
                return None
            for name, table in (columns or {}).items():
                column = kwargs.get(name, defaults.get(name))
                if isinstance(column, str) and not _records(s, table, column):
                    from crmlens import notebook

                    notebook.md(notebook.needs_column_text(table, column, s.info.source))
                    return None
            return fn(**_bind(fn, params, s, rest, kwargs))

        wrapper.needs = needs  # type: ignore[attr-defined]
        wrapper.columns = columns or {}  # type: ignore[attr-defined]
        wrapper.frame_level = fn  # type: ignore[attr-defined]
        wrapper.bind = lambda s, *rest, **kwargs: _bind(fn, params, s, list(rest), dict(kwargs))  # type: ignore
        return wrapper  # type: ignore[return-value]

    return decorate


# ------------------------------------------------------------------------------------- in a second process

#: Set to 0 to keep every analysis in its kernel (`crmlens run` does when its own workers fill the cores).
BACKGROUND_ENV = "CRMLENS_BACKGROUND"


def usable_cores() -> int:
    """The cores this process may run on."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def spare_cores() -> int:
    """Cores free for a second process now: the usable cores minus the processes running at this moment (this
    one included; Linux's /proc/loadavg, else the 1-minute load average); 0 when `BACKGROUND_ENV` is 0."""
    import math
    import os

    if os.environ.get(BACKGROUND_ENV, "").strip() == "0":
        return 0
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        running = math.ceil(os.getloadavg()[0]) if hasattr(os, "getloadavg") else usable_cores()
    return max(0, usable_cores() - max(running, 1))


def _call_frame_level(module: str, name: str, kwargs: dict[str, Any]) -> Any:
    """In the second process: the frame-level function `module.name` with its bound arguments."""
    import importlib

    return getattr(importlib.import_module(module), name).frame_level(**kwargs)


#: The second process of this kernel: one worker shared by every job started while another is pending, so its
#: imports (e.g. pymc's ~4 s) are paid once and the jobs run one after the other, in the order started.
_SECOND: dict[str, Any] = {"pool": None, "open": 0}
_SECOND_LOCK = threading.Lock()


def _second_process() -> Any:
    """The shared one-worker pool, started when none is open."""
    import multiprocessing
    import sys
    from concurrent.futures import ProcessPoolExecutor

    if _SECOND["pool"] is None:
        main = sys.modules.get("__main__")
        if main is not None and not hasattr(main, "__spec__"):  # a kernel started by `crmlens run`'s pool
            main.__spec__ = None  # what multiprocessing expects of an interactive __main__
        # forkserver: the kernel's threads (DuckDB, ZeroMQ) are never forked
        _SECOND["pool"] = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("forkserver"))
        _SECOND["open"] = 0
    return _SECOND["pool"]


def _release(pool: Any, broken: bool = False) -> None:
    """One job of `pool` is done: the pool stops with its last pending job (or at once when it broke)."""
    with _SECOND_LOCK:
        if _SECOND["pool"] is not pool:
            return
        _SECOND["open"] = max(0, _SECOND["open"] - 1)
        if not broken and _SECOND["open"] > 0:
            return
        _SECOND["pool"] = None
    pool.shutdown(wait=False)


def _call_by_name(module: str, name: str) -> None:
    """In the second process: ``module.name()``."""
    import importlib

    getattr(importlib.import_module(module), name)()


def warm_up(fn: Callable[[], Any]) -> bool:
    """Start this kernel's second process now, when a core is free (`spare_cores`), and run `fn` there — a
    module-level function without arguments that imports and compiles what the jobs `in_background` will send
    (e.g. `crmlens.metrics.clv.prepare`) — so those jobs, sent while it runs, find the process ready. True when
    started; False (nothing done) without a spare core. The process stops after its last job; a warm-up no job
    followed stops it when done. Changes no result."""
    if _SECOND["pool"] is not None or spare_cores() < 1:
        return False
    try:
        with _SECOND_LOCK:
            pool = _second_process()
            future = pool.submit(_call_by_name, fn.__module__, fn.__name__)
            _SECOND["open"] += 1
    except (OSError, RuntimeError, AttributeError, ValueError):
        return False
    future.add_done_callback(lambda _f: _release(pool))
    return True


class Pending:
    """A slice analysis started by `in_background`: `result()` returns what the call would have returned in
    place (the same value, note or exception), waiting for the second process if it runs there."""

    def __init__(self, fn: Callable[..., Any], s: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._call = (fn, s, args, kwargs)
        self._pool: Any = None
        self._future: Any = None
        self.in_second_process = False

    def _start(self, bound: dict[str, Any]) -> None:
        fn = self._call[0]
        try:
            with _SECOND_LOCK:
                self._pool = _second_process()
                self._future = self._pool.submit(_call_frame_level, fn.__module__, fn.__name__, bound)
                _SECOND["open"] += 1
        except (OSError, RuntimeError, AttributeError, ValueError):  # no second process here: in place
            self._future = None
            if self._pool is not None:
                with _SECOND_LOCK:
                    _SECOND["open"] += 1
                _release(self._pool, broken=True)
            return
        self.in_second_process = True

    def result(self) -> Any:
        fn, s, args, kwargs = self._call
        if self._future is None:
            return fn(s, *args, **kwargs)
        from concurrent.futures.process import BrokenProcessPool

        broken = False
        try:
            return self._future.result()
        except BrokenProcessPool:  # the second process died (killed, out of memory): the call, here
            broken = True
            return fn(s, *args, **kwargs)
        finally:
            _release(self._pool, broken)
            self._future = None


def in_background(fn: Callable[..., Any], s: Any, *args: Any, **kwargs: Any) -> Pending:
    """Start ``fn(s, *args, **kwargs)`` — a slice analysis (`on_slice`) — in a second process when a core is
    free (`spare_cores`), so a notebook's next sections run meanwhile; ``.result()`` later gives what the call
    gives. In place instead (at ``.result()``, where its notes then appear) when no core is free, when the
    source lacks a table or column it needs, or when it takes the slice itself. Same arguments, same code, same
    seed: the same result either way. Jobs started while another is pending share its second process and run
    there one after the other (no further core is asked for)."""
    pending = Pending(fn, s, args, kwargs)
    needs, columns = getattr(fn, "needs", None), getattr(fn, "columns", {})
    if needs is None or not is_slice(s) or s.missing(*needs) or (_SECOND["pool"] is None and spare_cores() < 1):
        return pending
    for name, table in columns.items():
        column = kwargs.get(name, inspect.signature(fn).parameters[name].default)
        if isinstance(column, str) and not _records(s, table, column):
            return pending
    bound = fn.bind(s, *args, **kwargs)  # type: ignore[attr-defined]
    if any(value is s or value is getattr(s, "tables", None) for value in bound.values()):
        return pending
    pending._start(bound)
    return pending
