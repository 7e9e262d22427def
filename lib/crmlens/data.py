"""The data layer: the only place that reads input data.

* `connect(source, mapping)` returns an Ibis connection whose tables carry canonical names:
  - ``"demo"`` (default): DuckDB over the Parquet demo in ``data/demo/``;
  - a folder of ``<table>.parquet`` / ``<table>.csv`` files already in the canonical model;
  - a folder of exports plus a mapping file (``params/sources/*.yaml``, see `crmlens.mapping`);
  - a database URL Ibis understands (``postgresql://user@host:port/db``, ``duckdb:///file.duckdb``...).
* `validate_source(...)` validates every table of a source (what ``crmlens validate`` prints).
* `open_slice(params)` returns the validated tables of one region × period and of its comparison
  periods, with filters pushed down to the engine.
* `custom_fields(slice, table)` names the custom fields a mapping keeps in a table, with their declared types.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from crmlens import paths
from crmlens.errors import SchemaError, SourceError
from crmlens.schema import SCHEMA, TABLE_NAMES, Table, Vocabulary, load_order
from crmlens.validate import SOURCE_ROW, TableReport, ValidationReport

if TYPE_CHECKING:
    import ibis
    from ibis import BaseBackend
    from ibis.expr.types import Table as IbisTable

    from crmlens.params import Params
    from crmlens.periods import Period

URL_SCHEMES = ("postgres://", "postgresql://", "duckdb://", "sqlite://", "mysql://", "trino://", "snowflake://",
               "bigquery://", "mssql://", "clickhouse://")


@dataclass
class SourceInfo:
    """What the data layer knows about a connection: where it points and how it was mapped."""

    source: str
    kind: str  # demo | folder | mapped | url
    mapping: str | None = None
    vocabulary: Vocabulary = field(default_factory=Vocabulary)
    fixes: list[dict[str, Any]] = field(default_factory=list)
    tables: tuple[str, ...] = ()
    as_of_cache: pd.Timestamp | None = None
    store: Any = None  # the validated store (`crmlens.store.Store`), once opened
    custom_fields: dict[str, dict[str, str]] = field(default_factory=dict)  # table → field → declared type
    declared_as_of: pd.Timestamp | None = None  # the export's 'today', when its mapping declares one


# Stored on the connection object itself: ibis backends compare equal by database identity (two in-memory
# DuckDB connections are "equal"), so a mapping keyed by connection would mix sources up.
_INFO_ATTR = "_crmlens_source_info"


def source_info(con: BaseBackend) -> SourceInfo:
    """The `SourceInfo` of a connection made by `connect`."""
    info = getattr(con, _INFO_ATTR, None)
    if info is None:
        raise SourceError("this connection was not opened with crmlens.data.connect()")
    return info


def _is_url(source: str) -> bool:
    return "://" in source


def connect(source: str | Path = "demo", mapping: str | Path | None = None) -> BaseBackend:
    """Open a source and return an Ibis connection over its canonical tables.

    Raises `SourceError` naming the source and what was expected when it cannot be opened.
    """
    text = str(source)
    if mapping is not None:
        import ibis

        from crmlens.mapping import build_mapped_source, load_mapping

        if _is_url(text):
            raise SourceError(f"source {text}: a mapping applies to a folder of exports, not to a database URL")
        spec = load_mapping(_resolve(Path(mapping)))
        raw, fixes = build_mapped_source(_resolve(Path(text)), spec)
        con = ibis.duckdb.from_connection(raw)
        info = SourceInfo(text, "mapped", mapping=str(mapping), vocabulary=spec.vocab(), fixes=fixes,
                          custom_fields=spec.custom_fields(),
                          declared_as_of=pd.Timestamp(spec.as_of) if spec.as_of is not None else None)
    elif _is_url(text):
        import ibis

        try:
            con = ibis.connect(text)
        except Exception as err:  # drivers raise many kinds
            raise SourceError(f"source {text}: cannot connect ({type(err).__name__}: {err}); "
                              f"expected a URL such as postgresql://user:password@127.0.0.1:5432/db") from None
        info = SourceInfo(text, "url")
    else:
        from crmlens.mapping import check_parquet, csv_reader
        from crmlens.store import CANONICAL_ENCODING_FIX

        folder = paths.DEMO_DIR if text == "demo" else _resolve(Path(text))
        kind = "demo" if text == "demo" else "folder"
        if folder.is_file():
            raise SourceError(f"source {text}: {folder} is a file, not a folder; give the folder that holds the "
                              f"<table>.parquet/.csv files, or, for another CRM's export, its folder with --mapping")
        if not folder.is_dir():
            hint = ("generate it with `crmlens demo` (or `make demo`)" if kind == "demo"
                    else "expected a folder of <table>.parquet/.csv files, a folder plus --mapping, or a URL")
            raise SourceError(f"source {text}: folder {folder} does not exist; {hint}")
        views, found = [], []
        for name in TABLE_NAMES:
            pq, csv = folder / f"{name}.parquet", folder / f"{name}.csv"
            for path in (pq, csv):
                if path.is_dir():
                    raise SourceError(f"table {name}: {path} is a folder, not a file; expected the file {path.name} "
                                      f"(the {name} table as Parquet or CSV) — move the folder away, or put the "
                                      f"table's file there")
            if pq.exists():
                check_parquet(pq, f"table {name}")
                views.append((name, pq, "parquet",
                              f"CREATE VIEW \"{name}\" AS SELECT * EXCLUDE (file_row_number), "
                              f"file_row_number + 1 AS {SOURCE_ROW} FROM read_parquet('{_sql_path(pq)}', "
                              f"file_row_number=true)"))
                found.append(name)
            elif csv.exists():
                reader, _ = csv_reader(csv.resolve(), f"table {name}", fix=CANONICAL_ENCODING_FIX)
                views.append((name, csv, "csv", f"CREATE VIEW \"{name}\" AS SELECT row_number() OVER () + 1 "
                                                f"AS {SOURCE_ROW}, * FROM {reader}"))
                found.append(name)
        if not found:
            raise SourceError(f"source {text}: folder {folder} holds no canonical table files "
                              f"(<table>.parquet or <table>.csv for tables: {', '.join(TABLE_NAMES)}); "
                              f"for another CRM's export give a --mapping")
        con = FolderConnection(views)
        info = SourceInfo(str(folder), kind)
        info.tables = tuple(found)
        setattr(con, _INFO_ATTR, info)
        return con
    present = set(con.list_tables())
    info.tables = tuple(t for t in TABLE_NAMES if t in present)
    setattr(con, _INFO_ATTR, info)
    return con


class FolderConnection:
    """The Ibis DuckDB connection of a folder source, opened on first use.

    Reading the validated store needs no Ibis (`crmlens.store` queries DuckDB directly), and importing Ibis's
    DuckDB backend costs ~0.7 s of a kernel's start: the connection and its views are made when something asks
    for them (an Ibis expression, the first validation of a version). Every attribute is the real backend's.
    """

    def __init__(self, views: list[tuple[str, Path, str, str]]) -> None:
        self.__dict__["_views"] = views
        self.__dict__["_backend"] = None

    def backend(self) -> BaseBackend:
        """The real Ibis backend (made now if needed)."""
        if self.__dict__["_backend"] is None:
            import duckdb
            import ibis

            from crmlens.mapping import read_error
            from crmlens.store import CANONICAL_ENCODING_FIX

            backend = ibis.duckdb.connect()
            for name, path, fmt, sql in self.__dict__["_views"]:
                try:
                    backend.raw_sql(sql)
                except duckdb.Error as err:  # the file cannot be read: say why, naming it
                    raise read_error(path, f"table {name}", err, fmt=fmt, fix=CANONICAL_ENCODING_FIX) from None
            self.__dict__["_backend"] = backend
        return self.__dict__["_backend"]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.backend(), name)


def _resolve(path: Path) -> Path:
    """A relative path as given when it exists from the current folder, else from the project root
    (notebooks run from notebooks/, schedulers from anywhere)."""
    if path.is_absolute() or path.exists():
        return path
    return paths.PROJECT_ROOT / path


def _sql_path(path: Path) -> str:
    return str(path.resolve()).replace("'", "''")


def available_tables(con: BaseBackend) -> tuple[str, ...]:
    """The canonical tables this source has."""
    return source_info(con).tables


# ------------------------------------------------------------------------------------- filtering

def _time_expr(t: IbisTable, column: str) -> ibis.Value:
    col = t[column]
    return col.try_cast("timestamp") if col.type().is_string() else col


def _period_rule(table: Table, columns: Iterable[str], period: Period, get: Any, start: Any, end: Any,
                 coalesce: Any, isnull: Any) -> Any:
    """The one rule for "this row belongs to the period", written once for the engine and for pandas:
    kind "at" — the first non-null time column falls in [start, end); kind "span" — the row's interval
    overlaps it, a missing start counting as "since ever". None when the table has no period columns."""
    if table.period is None:
        return None
    cols = [c for c in table.period.columns if c in columns]
    if not cols:
        return None
    if table.period.kind == "at":
        when = coalesce([get(c) for c in cols])
        return (when >= start) & (when < end)
    begin = get(cols[0])
    pred = isnull(begin) | (begin < end)
    if len(cols) > 1:
        finish = get(cols[1])
        pred = pred & (isnull(finish) | (finish >= start))
    return pred


def _period_predicate(t: IbisTable, table: Table, period: Period) -> ibis.Value | None:
    import ibis

    return _period_rule(table, t.columns, period, lambda c: _time_expr(t, c), ibis.timestamp(period.start),
                        ibis.timestamp(period.end), lambda xs: ibis.coalesce(*xs) if len(xs) > 1 else xs[0],
                        lambda v: v.isnull())


def period_mask(frame: pd.DataFrame, table: Table, period: Period) -> pd.Series | None:
    """The rows of a loaded frame of `table` that `load_table(..., period=period)` would return (the same
    rule, applied in pandas); None when the table is not cut by period."""
    from functools import reduce

    mask = _period_rule(table, frame.columns, period, lambda c: frame[c], period.start, period.end,
                        lambda xs: reduce(lambda a, b: a.fillna(b), xs), lambda v: v.isna())
    return None if mask is None else mask.fillna(False).astype(bool)


def _region_predicate(con: BaseBackend, t: IbisTable, table: Table, region: str) -> ibis.Value | None:
    if table.region is None:
        return None
    if isinstance(table.region, str):
        return t[table.region] == region if table.region in t.columns else None
    parent_name, fk = table.region
    if parent_name not in available_tables(con) or fk not in t.columns:
        return None
    parent = con.table(parent_name)
    parent_table = SCHEMA[parent_name]
    inner = _region_predicate(con, parent, parent_table, region)
    if inner is None:
        return None
    return t[fk].isin(parent.filter(inner)[parent_table.key[0]])


def table_expr(con: BaseBackend, name: str, *, region: str | None = None, period: Period | None = None) -> IbisTable:
    """The Ibis expression for table `name`, filtered in the engine to a region and/or period."""
    table = SCHEMA[name]
    if name not in available_tables(con):
        raise SchemaError(f"table {name} is not in source {source_info(con).source} "
                          f"(it has: {', '.join(available_tables(con)) or 'no canonical table'})")
    t = con.table(name)
    preds = []
    if region and region != "all":
        pred = _region_predicate(con, t, table, region)
        if pred is not None:
            preds.append(pred)
    if period is not None:
        pred = _period_predicate(t, table, period)
        if pred is not None:
            preds.append(pred)
    return t.filter(*preds) if preds else t


def load_table(con: BaseBackend, name: str, *, region: str | None = None, period: Period | None = None) -> pd.DataFrame:
    """Read table `name` (raw, before validation) for a region/period; rows in source order."""
    expr = table_expr(con, name, region=region, period=period)
    if SOURCE_ROW in expr.columns:
        expr = expr.order_by(SOURCE_ROW)
    else:
        key = [k for k in SCHEMA[name].key if k in expr.columns]
        expr = expr.order_by(key) if key else expr
    return expr.to_pandas()


# ------------------------------------------------------------------------------------------ as-of

def data_as_of(con: BaseBackend) -> pd.Timestamp:
    """The default "today" of an analysis on this source: midnight after the latest recorded event.

    Only timestamps that cannot lie in the future count (not planned due dates), and only those up to the
    current time (a stray future value does not move it). Derived from the data, so re-running on the same
    data gives the same answer whatever day it is. Read from the validated store (rows whose time cannot be
    read do not count). A mapping that declares the export's `as_of` (an export with no dates) gives that.
    """
    from crmlens.store import ensure_validated

    info = source_info(con)
    if getattr(info, "declared_as_of", None) is not None:
        return info.declared_as_of
    if info.as_of_cache is not None:
        return info.as_of_cache
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    latest = ensure_validated(con).data_as_of(now)
    info.as_of_cache = latest if latest is not None else now.normalize()
    return info.as_of_cache


# ------------------------------------------------------------------------------------ validation

class StoredTableResult:
    """A table's validation result read from the validated store: `accepted` and `rejected` frames are
    loaded when first used (a report alone never loads the accepted rows)."""

    def __init__(self, store: Any, name: str, report: TableReport, as_of: pd.Timestamp | None):
        self._store, self._name, self.report, self._as_of = store, name, report, as_of
        self._accepted: pd.DataFrame | None = None
        self._rejected: pd.DataFrame | None = None

    @property
    def accepted(self) -> pd.DataFrame:
        if self._accepted is None:
            self._accepted = self._store.read(self._name, as_of=self._as_of)
        return self._accepted

    @property
    def rejected(self) -> pd.DataFrame:
        if self._rejected is None:
            self._rejected = self._store.rejected(self._name, as_of=self._as_of)
        return self._rejected


def validate_source(con: BaseBackend, *, as_of: pd.Timestamp | None = None, tables: Iterable[str] | None = None,
                    progress: Any = None) -> tuple[dict[str, StoredTableResult], ValidationReport]:
    """Validate every table of a source (or report the given ones) in full, through the validated store
    (`crmlens.store`: validated once per source version, in the engine).

    Foreign keys are checked against the parent's accepted rows. Tables the source lacks are reported as
    "absent". "Not in the future" is judged against `as_of` (default: now).
    """
    from crmlens.store import ensure_validated

    info = source_info(con)
    store = ensure_validated(con, progress=progress)
    as_of = as_of if as_of is not None else pd.Timestamp.now(tz="UTC").tz_localize(None)
    wanted = list(tables) if tables is not None else list(TABLE_NAMES)
    report = store.report(as_of=as_of, tables=wanted,
                          source=info.source + (f" with mapping {info.mapping}" if info.mapping else ""))
    results = {name: StoredTableResult(store, name, rep, as_of) for name, rep in report.tables.items()
               if rep.status != "absent"}
    return results, report


# ----------------------------------------------------------------------------------------- slices

class _SliceReader:
    """Reads a slice's tables from the validated store: fact tables cut to the region and to one of the
    slice's periods in the engine, dimension tables whole (read once, shared by the three periods)."""

    def __init__(self, store: Any, region: str, periods: dict[str, Period], as_of: pd.Timestamp) -> None:
        self.store, self.region, self.periods, self.as_of = store, region, periods, as_of
        self._dimensions: dict[str, pd.DataFrame] = {}

    def read(self, which: str, name: str) -> pd.DataFrame:
        if SCHEMA[name].kind == "dimension":
            if name not in self._dimensions:
                self._dimensions[name] = self.store.read(name, as_of=self.as_of)
            return self._dimensions[name]
        return self.store.read(name, region=self.region, period=self.periods[which], as_of=self.as_of)

    def latest(self, which: str, name: str, column: str, by: str, before: pd.Timestamp) -> pd.DataFrame:
        cut = {} if SCHEMA[name].kind == "dimension" else {"region": self.region, "period": self.periods[which]}
        return self.store.latest(name, column, by, before=before, as_of=self.as_of, **cut)


class SliceTables(Mapping[str, pd.DataFrame]):
    """The validated frames of one period of a slice (``s.tables``, ``s.previous``, ``s.last_year``), read
    from the validated store when first used and kept: a notebook pays only for the tables it reads.

    It is a read-only mapping of table name → frame over the tables the source has (``"leads" in s.tables``
    and ``s.tables.get("leads")`` work as on a dict). ``{**s.tables, ...}`` would read every table: to
    replace some frames use `with_frames`, which reads the others lazily as well.
    """

    #: Its frames never change once read (`crmlens.metrics.common.memo_by_inputs` may key on its identity).
    immutable_frames = True

    def __init__(self, names: Iterable[str], which: str, reader: _SliceReader,
                 frames: dict[str, pd.DataFrame] | None = None) -> None:
        self._names = tuple(names)
        self._which, self._reader = which, reader
        self._frames: dict[str, pd.DataFrame] = dict(frames or {})
        self._given = set(frames or {})  # frames handed in (`with_frames`), not read from the store

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._frames:
            if name not in self._names:
                raise KeyError(name)
            self._frames[name] = self._reader.read(self._which, name)
        return self._frames[name]

    def __contains__(self, name: object) -> bool:
        return name in self._frames or name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._names, *self._frames]))

    def __len__(self) -> int:
        return len(set(self._names) | set(self._frames))

    def loaded(self) -> tuple[str, ...]:
        """The tables read so far."""
        return tuple(self._frames)

    def with_frames(self, **frames: pd.DataFrame) -> SliceTables:
        """These tables with some frames replaced (e.g. ``s.tables.with_frames(activities=history)``); the
        others are read lazily as here, and shared."""
        out = SliceTables(self._names, self._which, self._reader, {**self._frames, **frames})
        out._given = self._given | set(frames)
        return out

    def latest(self, name: str, column: str, by: str, before: pd.Timestamp) -> pd.DataFrame:
        """Per value of `by`, the latest `column` before `before` among this table's rows: a group-by in the
        engine over the same cut (a frame handed in with `with_frames`: in pandas). Columns `by` and `column`,
        one row per non-empty `by`, sorted by it."""
        if name in self._given:
            return latest_in_frame(self._frames[name], column, by, before)
        if name not in self._names:
            raise KeyError(name)
        return self._reader.latest(self._which, name, column, by, before)

    def __repr__(self) -> str:
        return f"SliceTables({self._which}: {', '.join(self._names)}; read: {', '.join(self._frames) or 'none'})"


def latest_in_frame(frame: pd.DataFrame, column: str, by: str, before: pd.Timestamp) -> pd.DataFrame:
    """`SliceTables.latest` of a frame in memory. A frame that is itself the store's `latest` of the same
    `column` and `by` before a time ≤ `before` (flagged in its attrs: one row per `by`, sorted) is its own
    answer — the group-by would give it back unchanged (4 s for the 2 M accounts of `large`)."""
    from crmlens.store import LATEST_ATTR

    keep = (frame[column] < before).fillna(False).astype(bool).to_numpy() & frame[by].notna().to_numpy()
    flag = frame.attrs.get(LATEST_ATTR)
    if flag is not None and flag[:2] == (column, by) and flag[2] <= before:
        return frame.loc[keep, [by, column]].reset_index(drop=True)
    return frame[keep].groupby(by, sort=True)[column].max().reset_index()


@dataclass
class Slice:
    """Validated tables for one region × period, and for its comparison periods.

    `tables` holds the current period; `previous` and `last_year` the comparison periods (`SliceTables`:
    each table is read from the validated store when first used). Dimension tables (regions, teams, reps,
    products, accounts, contacts, campaigns, targets, market) are whole and shared by all three; fact tables
    are cut to the region and period in the engine.
    """

    params: Params
    period: Period
    previous_period: Period
    last_year_period: Period
    tables: Mapping[str, pd.DataFrame]
    previous: Mapping[str, pd.DataFrame]
    last_year: Mapping[str, pd.DataFrame]
    rejected: dict[str, pd.DataFrame]
    report: ValidationReport
    con: BaseBackend
    info: SourceInfo
    as_of: pd.Timestamp
    _check_as_of: pd.Timestamp = field(default=None, repr=False)  # the "now" of not-in-the-future checks
    _history: dict = field(default_factory=dict, repr=False)
    #: Frames derived from the slice that several cells of a notebook share (e.g. the marketing area's region
    #: cut of campaigns, leads and events), keyed by the analysis that derives them.
    derived: dict = field(default_factory=dict, repr=False)

    @property
    def store(self) -> Any:
        """The validated store the slice was read from (`crmlens.store.Store`)."""
        from crmlens.store import ensure_validated

        if self.info.store is None:
            self.info.store = ensure_validated(self.con)
        return self.info.store

    @property
    def comparison(self) -> Mapping[str, pd.DataFrame]:
        """The comparison slice chosen by the `comparison` parameter."""
        return self.last_year if self.params.comparison == "last_year" else self.previous

    @property
    def comparison_period(self) -> Period:
        return self.last_year_period if self.params.comparison == "last_year" else self.previous_period

    def history(self, name: str, n_periods: int = 8, region: str | None = None) -> pd.DataFrame:
        """Validated rows of table `name` over the `n_periods` periods (of the slice's kind) ending with the
        current one — for trends — for the slice's region, or for `region` ("all" to compare a region with
        its peers). Dimension tables come whole. Cached per slice."""
        region = region or self.params.region
        key = (name, n_periods, region)
        if key not in self._history:
            if SCHEMA[name].kind == "dimension":
                return self.tables[name]
            self._history[key] = self.store.read(name, region=region, period=self.history_span(n_periods),
                                                 as_of=self._check_as_of)
        return self._history[key]

    def history_columns(self, name: str, columns: list[str], n_periods: int = 8,
                        region: str | None = None) -> pd.DataFrame:
        """`history`, but only `columns`, read in the engine (`crmlens.store.Store.read_columns`): e.g. the
        account and time of millions of activities, whose other columns would cost as much again to bring into
        pandas. For the slice's region, or for `region`. Not cached."""
        if SCHEMA[name].kind == "dimension":
            return self.tables[name][columns]
        return self.store.read_columns(name, columns, region=region or self.params.region,
                                       period=self.history_span(n_periods), as_of=self._check_as_of)

    def history_span(self, n_periods: int) -> Period:
        """The `n_periods` periods (of the slice's kind) ending with the current one, as one range."""
        from crmlens.periods import Period, shift_period

        first = shift_period(self.period, -(n_periods - 1))
        return Period(label=f"{first.label}..{self.period.label}", start=first.start, end=self.period.end,
                      kind="range", fiscal_year_start=self.period.fiscal_year_start)

    def latest(self, name: str, column: str, by: str, before: pd.Timestamp, n_periods: int = 8,
               region: str | None = None) -> pd.DataFrame:
        """Per value of `by`, the latest `column` before `before` among the rows ``history(name, n_periods,
        region)`` holds — computed in the engine, without reading the history (e.g. each account's last activity
        over five quarters of a 10M-activity source). Columns `by` and `column`, one row per non-empty `by`."""
        return self.store.latest(name, column, by, before=before, region=region or self.params.region,
                                 period=self.history_span(n_periods), as_of=self._check_as_of)

    def has(self, *names: str) -> bool:
        """True when the source has every table named."""
        return all(n in self.info.tables for n in names)

    def missing(self, *names: str) -> list[str]:
        """Which of the named tables this source lacks (for "needs tables X, Y" sections)."""
        return [n for n in names if n not in self.info.tables]

    def custom_fields(self, name: str) -> dict[str, str]:
        """The custom fields the mapping keeps in table `name`: name → declared type (see `custom_fields`)."""
        return custom_fields(self, name)

    def has_column(self, name: str, column: str) -> bool:
        """True when the source has table `name` with `column` (see `has_column`)."""
        return has_column(self, name, column)


def open_slice(params: Params, con: BaseBackend | None = None) -> Slice:
    """Open the source named by `params`, and return the validated slice and comparison slices.

    The source is validated once per version into the validated store (`crmlens.store`); a slice is a
    set of engine queries over it (region and period filters pushed into the scan).
    """
    from crmlens.periods import previous_period, same_period_last_year
    from crmlens.store import ensure_validated

    con = con if con is not None else connect(params.source, params.mapping_path())
    info = source_info(con)
    store = ensure_validated(con)
    period = params.period_obj()
    periods = {"current": period, "previous": previous_period(period), "last_year": same_period_last_year(period)}
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    # "in the future" is judged against the given as-of date, else against the clock
    as_of = pd.Timestamp(params.as_of) if params.as_of else now
    report = ValidationReport(source=info.source)
    report.fixes = list(info.fixes)
    rejected: dict[str, pd.DataFrame] = {}
    names = [n for n in load_order() if n in info.tables]
    cuts = {n: (None, None) if SCHEMA[n].kind == "dimension" else (params.region, period) for n in names}
    counts = store.counts(cuts, as_of=as_of)  # the report's accepted rows, counted in the engine in one query
    for name in names:
        region, cut_period = cuts[name]
        report.tables[name], rejected[name] = store.cut_report(name, region=region, period=cut_period, as_of=as_of,
                                                               accepted_rows=counts[name])
    reader = _SliceReader(store, params.region, periods, as_of)
    return Slice(params=params, period=period, previous_period=periods["previous"],
                 last_year_period=periods["last_year"], tables=SliceTables(names, "current", reader),
                 previous=SliceTables(names, "previous", reader), last_year=SliceTables(names, "last_year", reader),
                 rejected=rejected, report=report, con=con, info=info,
                 as_of=pd.Timestamp(params.as_of) if params.as_of else data_as_of(con),
                 _check_as_of=as_of)


def custom_fields(s: Slice, table: str) -> dict[str, str]:
    """The custom fields the source's mapping keeps in `table` (docs/mappings.md, "Custom fields"): field name →
    declared type, in column order; ``{}`` when there are none or the source lacks the table.

    Each is a column of the table's frames (``s.tables[table]``, ``s.previous[table]``...), after the canonical
    columns, read as its type: ``string`` and ``category`` → pandas ``string``, ``integer`` → ``Int64``,
    ``number`` → ``float64``, ``boolean`` → ``boolean``, ``timestamp`` and ``date`` → ``datetime64``. A
    ``category`` is text meant for grouping (segments, filters, one-hot features); ``string`` is free text.
    """
    from crmlens.schema import table as canonical_table

    canonical_table(table)  # an unknown table name is a SchemaError listing the known ones
    if table not in s.info.tables:
        return {}
    return s.store.custom_fields(table)


def has_column(s: Slice, table: str, column: str) -> bool:
    """True when the source gives table `table` the column `column` (canonical or custom). The slice's frames
    carry every canonical column whether the source has it or not (empty where it has not): this tells "not in
    this source" from "recorded, and empty" — e.g. ``accounts.churned_at``, which only sources that record churn
    have."""
    if table not in s.info.tables:
        return False
    meta = s.store.meta["tables"].get(table, {})
    return column in meta.get("columns", ()) or column in s.store.custom_fields(table)


#: Environment variable naming a folder where validated slices are shared between the notebooks of one run
#: (set by `crmlens run` for its kernels: the folder is specific to the run's data fingerprint and code).
SLICE_CACHE_ENV = "CRMLENS_SLICE_CACHE"


def _slice_cache_key(params: Params) -> str:
    import hashlib
    import json

    values = {k: v for k, v in params.to_notebook_dict().items() if k != "options"}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:32]


def open_slice_cached(params: Params, con: BaseBackend | None = None, cache_dir: str | Path | None = None) -> Slice:
    """`open_slice`, shared through `cache_dir` (default: $CRMLENS_SLICE_CACHE; none: no cache).

    The notebooks of one run that analyse the same region × period validate its slice once: the first
    stores it (atomically), the others load it and reconnect to the source. Only for a folder whose
    content cannot change while it is used — `crmlens run` makes one per data fingerprint and library.
    """
    import os
    import pickle

    from crmlens import atomic

    folder = cache_dir or os.environ.get(SLICE_CACHE_ENV)
    if not folder:
        return open_slice(params, con)
    path = Path(folder) / f"{_slice_cache_key(params)}.pkl"
    if path.is_file():
        try:
            with path.open("rb") as fh:
                cached: Slice = pickle.load(fh)
        except Exception:  # a damaged cache entry is rebuilt, never trusted
            cached = None
        if cached is not None:
            con = con if con is not None else connect(params.source, params.mapping_path())
            setattr(con, _INFO_ATTR, cached.info)
            cached.con = con
            cached.params = params
            return cached
    s = open_slice(params, con)
    con, s.con = s.con, None
    try:
        atomic.write_with(path, lambda tmp: tmp.write_bytes(pickle.dumps(s, protocol=pickle.HIGHEST_PROTOCOL)))
    finally:
        s.con = con
    return s


# ---------------------------------------------------------------------------------------- summary

def summarize(con: BaseBackend) -> pd.DataFrame:
    """One row per canonical table the source has: rows and the time span of its period columns."""
    rows = []
    for name in available_tables(con):
        table = SCHEMA[name]
        t = con.table(name)
        aggs = {"rows": t.count()}
        span_cols = [c for c in (table.period.columns if table.period else ()) if c in t.columns]
        if span_cols:
            when = _time_expr(t, span_cols[0])
            aggs |= {"first": when.min(), "last": when.max()}
        got = t.aggregate(**aggs).to_pandas().iloc[0].to_dict()
        first, last = got.get("first"), got.get("last")
        rows.append({"table": name, "rows": int(got["rows"]),
                     "first": pd.Timestamp(first).date() if first is not None and pd.notna(first) else "",
                     "last": pd.Timestamp(last).date() if last is not None and pd.notna(last) else ""})
    return pd.DataFrame(rows, columns=["table", "rows", "first", "last"])


def bookings_by_region(con: BaseBackend) -> pd.DataFrame:
    """Opportunities, won deals, won amount and win rate per region, computed in the engine."""
    import ibis

    t = con.table("opportunities")
    won = t.is_won.cast("string").lower().isin(["true", "1", "t"]) if t.is_won.type().is_string() else t.is_won
    amount = t.amount.try_cast("float64") if t.amount.type().is_string() else t.amount
    closed = t.closed_at.notnull()
    out = (
        t.group_by("region_id")
        .aggregate(
            opportunities=t.count(),
            won=won.fill_null(False).ifelse(1, 0).sum(),
            closed=closed.ifelse(1, 0).sum(),
            won_amount=ibis.cases((won.fill_null(False), amount), else_=0.0).sum(),
        )
        .order_by("region_id")
        .to_pandas()
    )
    out["win_rate"] = (out["won"] / out["closed"].where(out["closed"] > 0)).round(3)
    return out


def summary_text(con: BaseBackend) -> str:
    """A short, human-readable summary of a source (what `crmlens summary` prints)."""
    info = source_info(con)
    lines = [f"Source: {info.source}" + (f" (mapping {info.mapping})" if info.mapping else ""), ""]
    lines.append(summarize(con).to_string(index=False, na_rep="", formatters={"rows": "{:,}".format}))
    if "opportunities" in info.tables:
        lines += ["", "Opportunities per region (all time):",
                  bookings_by_region(con).to_string(index=False, float_format=lambda v: f"{v:,.2f}")]
    missing = [t for t in TABLE_NAMES if t not in info.tables]
    if missing:
        lines += ["", f"Tables this source does not have: {', '.join(missing)}"]
    return "\n".join(lines)
