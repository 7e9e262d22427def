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
from collections.abc import Callable
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
            return fn(**kwargs)

        wrapper.needs = needs  # type: ignore[attr-defined]
        wrapper.frame_level = fn  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
