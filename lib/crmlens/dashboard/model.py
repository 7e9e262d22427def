"""A dashboard's data, held in the kernel: validated once, cut in memory for every filter change.

`crmlens.data.open_slice` reads and validates a region × period in the engine — right for a notebook run,
seconds too slow for a filter bar. A dashboard kernel instead loads the tables it shows once, for every region
and the whole history (`DashboardData.load`, run before a preheated kernel waits for its viewer), and answers
each filter state with a `View`: a `crmlens.data.Slice` whose frames are cut from memory by the same rules the
engine applies — `crmlens.data.period_mask` for periods, the schema's region routes for regions — and
filtered by product line, team and segment (`crmlens.dashboard.state.apply_filters`). Every metric, KPI and
tile function takes a View as it takes a slice; `tests/unit/dashboard/test_model.py` checks that a View's KPIs
equal `open_slice`'s for the same parameters.

Rows come from the validated store exactly as `open_slice` reads them (`crmlens.store`: the source is validated
once per version, in the engine, by whoever asks first), with the data's as-of date as "now"; rejected rows are
counted per table in `DashboardData.rejected`.

Live refresh: `DashboardData.source_version` is a cheap key of the source's current content (file stats; a
database's counters), `version` the one the data was loaded from; `reload` builds a new DashboardData for the
current version (`crmlens.dashboard.widgets.Dashboard.refresh` swaps it in; docs/dashboards.md, Live refresh).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from crmlens import atomic, data, kpis, notebook, paths
from crmlens.dashboard import state as st
from crmlens.dashboard.tiles import Tile
from crmlens.errors import ParameterError
from crmlens.i18n import _
from crmlens.metrics.common import isin
from crmlens.params import Params
from crmlens.periods import Period, previous_period, same_period_last_year
from crmlens.schema import SCHEMA, Table, load_order
from crmlens.validate import SOURCE_ROW, ValidationReport

#: Fact tables a dashboard loads unless told otherwise (dimension tables are always loaded).
DEFAULT_FACT_TABLES: tuple[str, ...] = ("opportunities", "leads", "activities")
#: How many views (filter states) a kernel keeps cut, and how many computed results (tiles, panels, drill-down
#: tables) it keeps for `DashboardData.memo`.
VIEW_CACHE_SIZE = 24
RESULT_CACHE_SIZE = 256
#: Folder where kernels share computed results (tiles, panels, drill-down tables) on disk, so the kernels of a
#: pool, later pools and other viewers do not recompute them: $CRMLENS_DASHBOARD_CACHE, else
#: outputs/.cache/dashboard. Set the variable to "off" to keep results in memory only.
CACHE_ENV = "CRMLENS_DASHBOARD_CACHE"


def default_cache_dir() -> Path | None:
    """The shared result cache folder (None when $CRMLENS_DASHBOARD_CACHE is "off")."""
    value = os.environ.get(CACHE_ENV)
    if value is not None and value.strip().lower() in ("off", "0", "none", ""):
        return None
    return Path(value) if value else paths.OUTPUTS_DIR / ".cache" / "dashboard"


def _hash_source_files(h: Any, info: data.SourceInfo) -> bool:
    """Feed `h` the files of a folder source (relative name, size, modification time) and the mapping file's
    content; False (nothing fed) when the source is not a folder source or its folder is gone."""
    if info.kind not in ("demo", "folder", "mapped"):
        return False
    folder = data._resolve(Path(info.source))  # as `crmlens.data.connect` found it (relative: cwd, else the project)
    if not folder.is_dir():
        return False
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            stat = f.stat()
        except FileNotFoundError:  # removed since listed (a file being replaced): the next look sees the result
            h.update(f"{f.relative_to(folder)}\0-\n".encode())
            continue
        h.update(f"{f.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    if info.mapping:
        h.update(data._resolve(Path(info.mapping)).read_bytes())
    return True


def source_identity(info: data.SourceInfo, base: Params) -> str | None:
    """A key that changes whenever the data, the mapping, the library code or the parameters change: the
    files of a folder source (name, size, modification time), the mapping file's content, the library's
    hash and the base parameters. None for database sources (their content is not seen from here): their
    results are not shared on disk."""
    h = hashlib.sha256()
    if not _hash_source_files(h, info):
        return None
    from crmlens.run.provenance import library_hash

    h.update(library_hash().encode())
    h.update(base.model_dump_json().encode())
    return h.hexdigest()[:24]


#: The database tables' counters PostgreSQL keeps (inserted, updated, deleted rows; the table's oid changes
#: when it is dropped and made again): read from its statistics view, no table is scanned.
_PG_VERSION_SQL = ("SELECT c.relname, c.oid::bigint, s.n_tup_ins, s.n_tup_upd, s.n_tup_del, s.n_live_tup, "
                   "c.relfilenode::bigint FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
                   "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relname = ANY(%s) "
                   "AND pg_table_is_visible(c.oid) ORDER BY c.relname")


def _duckdb_file(url: str) -> Path | None:
    """The database file of a ``duckdb:///path`` URL (None for an in-memory database or another URL)."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(url)
    if parsed.scheme != "duckdb":
        return None
    path = unquote(parsed.netloc + parsed.path)
    if not path or path == ":memory:" or path.startswith("/:memory:"):
        return None
    return Path(path)


def database_version(info: data.SourceInfo, con: Any) -> str | None:
    """A cheap key of a database source's content (`DashboardData.source_version`; see docs/dashboards.md,
    Live refresh): a ``duckdb:///file`` database — the file's and its write-ahead log's size and modification
    time (no query); PostgreSQL — per table its statistics counters (rows inserted, updated, deleted; its oid
    and file node, which change on DROP/CREATE and TRUNCATE), one catalogue query; any other database — per
    table its row count and the latest value of its time columns (one aggregate query per table: a scan
    unless the database keeps those). `con` is an Ibis connection to ask (not needed for a DuckDB file)."""
    h = hashlib.sha256()
    db_file = _duckdb_file(info.source)
    if db_file is not None:
        for f in (db_file, db_file.with_name(db_file.name + ".wal")):
            try:
                stat = f.stat()
                h.update(f"{f.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            except FileNotFoundError:
                h.update(f"{f.name}\0-\n".encode())
        return h.hexdigest()[:24]
    if con is None:
        return None
    name = getattr(con, "name", "")
    if name == "postgres":
        raw = con.con  # a psycopg connection
        with raw.cursor() as cur:
            cur.execute(_PG_VERSION_SQL, (list(info.tables),))
            rows = cur.fetchall()
        if not getattr(raw, "autocommit", True):
            raw.rollback()  # statistics are read as of the transaction: the next check needs a new one
        h.update(repr(rows).encode())
        return h.hexdigest()[:24]
    for table_name in info.tables:
        t = con.table(table_name)
        times = [c.name for c in SCHEMA[table_name].columns if c.dtype in ("timestamp", "date") and c.name in t.columns]
        aggs = {"n": t.count(), **{f"max_{c}": t[c].max().cast("string") for c in times}}
        row = t.aggregate(**aggs).to_pandas().iloc[0].to_dict()
        h.update(f"{table_name}\0{sorted(row.items())!r}\n".encode())
    return h.hexdigest()[:24]


def region_mask(frame: pd.DataFrame, table: Table, region: str,
                frames: Mapping[str, pd.DataFrame]) -> pd.Series | None:
    """The rows of a loaded frame of `table` that belong to `region` — the rule `crmlens.data` applies in the
    engine (a region column, or a key into a parent table that has one); None when the table has no region
    route (or its parent is not loaded): such a table is not cut by region."""
    if table.region is None or region == "all":
        return None
    if isinstance(table.region, str):
        if table.region not in frame.columns:
            return None
        return (frame[table.region] == region).fillna(False).astype(bool)
    parent_name, fk = table.region
    parent = frames.get(parent_name)
    if parent is None or fk not in frame.columns:
        return None
    parent_table = SCHEMA[parent_name]
    inner = region_mask(parent, parent_table, region, frames)
    if inner is None:
        return None
    keys = parent.loc[inner.to_numpy(), parent_table.key[0]].dropna().unique()
    return isin(frame[fk], keys)


def _cut(frame: pd.DataFrame, mask: pd.Series | None) -> pd.DataFrame:
    return frame if mask is None else frame.loc[mask.to_numpy()].reset_index(drop=True)


@dataclass
class View(data.Slice):
    """A slice cut from a `DashboardData` for one filter state (see the module docs). `state` is the filter
    state, `filters_not_applied` (table → slice filters that table cannot be filtered by) and `source` the
    data it was cut from. `history` cuts from memory as well."""

    state: st.FilterState = field(default_factory=st.FilterState)
    filters_not_applied: dict[str, tuple[str, ...]] = field(default_factory=dict)
    source: Any = field(default=None, repr=False)

    def history(self, name: str, n_periods: int = 8, region: str | None = None) -> pd.DataFrame:
        if SCHEMA[name].kind == "dimension":
            return self.tables[name]
        return self.source.frame(name, region or self.params.region, self.history_span(n_periods), self.state)

    def latest(self, name: str, column: str, by: str, before: pd.Timestamp, n_periods: int = 8,
               region: str | None = None) -> pd.DataFrame:
        """`crmlens.data.Slice.latest` from memory: per value of `by`, the latest `column` before `before` among
        the rows of ``history(name, n_periods, region)``."""
        return data.latest_in_frame(self.history(name, n_periods, region), column, by, before)

    def has(self, *names: str) -> bool:
        """True when every named table was loaded for the dashboard (the source has it and the view uses it)."""
        return all(n in self.tables for n in names)

    def missing(self, *names: str) -> list[str]:
        """Which of the named tables the view does not hold (the source lacks them, or they were not loaded)."""
        return [n for n in names if n not in self.tables]

    def ctx(self, which: str = "current") -> kpis.KpiContext:
        """The KPI context of the view's period (`which`: current | comparison | previous | last_year)."""
        return notebook.context(self, which)

    def note(self, tables: Iterable[str]) -> str | None:
        """"not filtered by team" when a slice filter cannot apply to one of `tables`; None otherwise."""
        missed: list[str] = []
        for t in tables:
            missed += [f for f in self.filters_not_applied.get(t, ()) if f not in missed]
        return st.not_filtered_note(missed)

    def annotate(self, tiles: Iterable[Tile]) -> list[Tile]:
        """`tiles` with a note (in the language in use) where the view's product line / team / segment filter
        does not apply to a KPI's tables, or where a KPI is measured against a target those filters do not
        split."""
        out = []
        for t in tiles:
            notes = [n for n in (self.note(kpis.get_kpi(t.kpi).tables),) if n]
            others = [f for f in self.state.slice_filters if f != "rep"]
            if others and t.target is not None:  # a rep's target is their own (tiles._slice_target)
                notes.append(_("the target is the rep's whole target") if self.state.rep else
                             _("the target is the whole company's") if self.params.region == "all"
                             else _("the target is the whole region's"))
            out.append(dataclasses.replace(t, note=st.join_clauses(notes)) if notes else t)
        return out


class DashboardData:
    """The validated tables of a source for a dashboard kernel (see the module docs).

    `tables` are the fact tables to load (default `DEFAULT_FACT_TABLES`, those the source has); every
    dimension table the source has is loaded too. `base` holds the analysis parameters that are not filters
    (currency, fiscal year start, forgotten_days...). Use `view(state)` to get a slice. `cache_dir`: True (the
    default) shares results on disk in `default_cache_dir()`, a folder to use that one, False/None for memory
    only; results are filed under `source_identity` (data files, mapping, library code, parameters).
    """

    def __init__(self, con: Any, *, tables: Iterable[str] = DEFAULT_FACT_TABLES, base: Params | None = None,
                 cache_dir: str | Path | bool | None = True) -> None:
        self.con = con
        self.info = data.source_info(con)
        self._tables_asked = tuple(tables)
        self._cache_asked = cache_dir
        self._check_con: Any = None
        self._check_lock = threading.Lock()
        #: The source's version this data was loaded from (`source_version`, taken before loading: a change
        #: made while loading shows as a new version at the next check). None when it cannot be told.
        self.version: str | None = self._initial_version()
        #: When the data was loaded (UTC).
        self.loaded_at = pd.Timestamp.now(tz="UTC")
        self.as_of: pd.Timestamp = data.data_as_of(con)
        self.options: dict[str, list[str]] = st.options_for(con)
        self.base = base if base is not None else Params()
        wanted = set(tables)
        unknown = sorted(wanted - set(SCHEMA))
        if unknown:
            raise ParameterError(f"tables: {', '.join(unknown)} not in the data model; use table names of "
                                 "docs/data_model.md")
        folder = default_cache_dir() if cache_dir is True else (Path(cache_dir) if cache_dir else None)
        identity = source_identity(self.info, self.base) if folder is not None else None
        #: Where this source's results are shared between kernels (None: memory only).
        self.cache_dir: Path | None = folder / identity if folder is not None and identity else None
        loaded_key = ("validated tables", tuple(sorted(wanted & set(self.info.tables))), str(self.as_of))
        loaded = self._load(loaded_key)
        if loaded is not None:
            self.frames, self.rejected, self.report = loaded
        else:
            self._validate(con, wanted)
            self._store(loaded_key, (self.frames, self.rejected, self.report))
        self._regions: dict[tuple[str, str], pd.DataFrame] = {}
        self._infos: dict[tuple, data.SourceInfo] = {}
        self._views: OrderedDict[tuple, View] = OrderedDict()
        self._results: OrderedDict[tuple, Any] = OrderedDict()
        self._running: dict[tuple, threading.Event] = {}  # keys being computed (by another thread: wait)
        self._lock = threading.RLock()  # the caches above: a dashboard computes ahead in a second thread


    def _validate(self, con: Any, wanted: set[str]) -> None:
        """Read every table to hold from the validated store (`crmlens.store`: the source is validated once per
        version, whoever asks first), as `open_slice` reads it, with the data's as-of as "now"."""
        from crmlens.store import ensure_validated

        store = ensure_validated(con)
        self.frames: dict[str, pd.DataFrame] = {}
        self.rejected: dict[str, int] = {}
        self.report = ValidationReport(source=self.info.source)
        for name in load_order():
            table = SCHEMA[name]
            if name not in self.info.tables or (table.kind != "dimension" and name not in wanted):
                continue
            frame = store.read(name, as_of=self.as_of)
            rep = store.table_report(name, as_of=self.as_of, accepted_rows=len(frame))
            # the source row of each accepted row is for tracing rejects (`crmlens validate`, notebook 00); no
            # panel shows it: 7 MB less per viewer's kernel on the demo
            self.frames[name] = frame.drop(columns=[SOURCE_ROW], errors="ignore")
            self.rejected[name] = rep.rejected
            self.report.tables[name] = rep

    @classmethod
    def load(cls, source: str = "demo", mapping: str | None = None, **kwargs: Any) -> DashboardData:
        """Connect to `source` (see `crmlens.data.connect`) and load it."""
        return cls(data.connect(source, mapping), **kwargs)

    # -- live refresh ----------------------------------------------------------------------------------

    def _initial_version(self) -> str | None:
        try:
            return self.source_version(self.con)
        except Exception:  # a source whose version cannot be read loads all the same (never refreshed by itself)
            return None

    def source_version(self, con: Any = None) -> str | None:
        """A cheap key of the source's current content, which changes when the source changes: for a folder,
        demo or mapped source its files' names, sizes and modification times and the mapping file's content
        (what `source_identity` hashes, without the library hash and parameters — a stat per file, no read);
        for a database, `database_version` (a DuckDB file's size and time; PostgreSQL's table statistics; other
        databases a count per table). None when it cannot be told (then the data is only reloaded on request).
        Database checks use a connection of their own (`con` to use another), safe to call from a thread."""
        h = hashlib.sha256()
        if _hash_source_files(h, self.info):
            return h.hexdigest()[:24]
        if self.info.kind != "url":
            return None
        if con is None and _duckdb_file(self.info.source) is None:
            with self._check_lock:
                if self._check_con is None:
                    import ibis

                    self._check_con = ibis.connect(self.info.source)
                try:
                    return database_version(self.info, self._check_con)
                except Exception:
                    self._check_con = None  # a broken connection: a new one at the next check
                    raise
        return database_version(self.info, con)

    def changed(self) -> bool:
        """True when the source's version differs from the one this data was loaded from (`source_version`;
        False when it cannot be told). Raises what reading the version raises (a database that went away)."""
        now = self.source_version()
        return now is not None and now != self.version

    def reload(self) -> DashboardData:
        """A NEW DashboardData for the source's current version: the source opened again (a new connection:
        its validated store, as-of date, filter choices and caches are those of the new version), the same
        tables, parameters and cache setting. Nothing of this object is shared with it: its views, results
        and disk cache folder (keyed by `source_identity`, which changes with the files) are its own."""
        con = data.connect(self.info.source, self.info.mapping)
        return type(self)(con, tables=self._tables_asked, base=self.base, cache_dir=self._cache_asked)

    def close(self) -> None:
        """Let go of what can be made again, once a `reload` replaced this data: the connection
        `source_version` opened for a database (if any), the cut views and the remembered results (in memory;
        the disk cache stays). The validated tables stay: the object still answers, computing afresh."""
        with self._check_lock:
            check, self._check_con = self._check_con, None
        if check is not None:
            with contextlib.suppress(Exception):
                check.disconnect()
        self._views.clear()
        self._results.clear()
        self._regions.clear()

    # -- cutting ---------------------------------------------------------------------------------------

    def has(self, name: str) -> bool:
        """True when table `name` was loaded (the source has it and the dashboard asked for it)."""
        return name in self.frames

    def region_frame(self, name: str, region: str) -> pd.DataFrame:
        """Table `name`'s validated rows of `region` (all rows for "all"), cached."""
        key = (name, region)
        if key not in self._regions:
            frame = self.frames[name]
            self._regions[key] = _cut(frame, region_mask(frame, SCHEMA[name], region, self.frames))
        return self._regions[key]

    def frame(self, name: str, region: str, period: Period | None, state: st.FilterState | None = None) -> pd.DataFrame:
        """Table `name` cut to `region` and `period` (the rule of `crmlens.data.load_table`), then filtered by
        `state`'s product line, team and segment. Dimension tables come whole."""
        if SCHEMA[name].kind == "dimension":
            return self.frames[name]
        frame = self.region_frame(name, region)
        if period is not None:
            frame = _cut(frame, data.period_mask(frame, SCHEMA[name], period))
        if state is not None and state.slice_filters:
            frame = self._filtered({name: frame}, state)[name]
        return frame

    def _filtered(self, frames: dict[str, pd.DataFrame], state: st.FilterState) -> st.FilteredFrames:
        return st.apply_filters(frames, state, products=self.frames.get("products"),
                                accounts=self.frames.get("accounts"), reps=self.frames.get("reps"))

    def _info_for(self, state: st.FilterState) -> data.SourceInfo:
        """One SourceInfo per set of slice filters: the tiles cache earlier periods' values per SourceInfo, so
        values of differently filtered views never mix."""
        key = tuple(sorted(state.slice_filters.items()))
        if not key:
            return self.info
        if key not in self._infos:
            self._infos[key] = dataclasses.replace(self.info)
        return self._infos[key]

    # -- views -----------------------------------------------------------------------------------------

    def params_for(self, state: st.FilterState) -> Params:
        """The analysis parameters of `state` (its region checked against the source)."""
        if state.region != "all" and self.options["regions"] and state.region not in self.options["regions"]:
            raise ParameterError(f"region: {state.region!r} is not a region of {self.info.source}; use one of "
                                 f"{', '.join(self.options['regions'])} or all")
        return st.to_params(state, self.as_of, self.base)

    def view_key(self, state: st.FilterState) -> tuple:
        """What identifies `state`'s slice: the resolved period, comparison, region and slice filters."""
        params = self.params_for(state)
        return (params.period, params.comparison, params.region, tuple(sorted(state.slice_filters.items())))

    def result_key(self, state: st.FilterState) -> tuple:
        """What identifies what `state`'s view shows: its slice (`view_key`) and its language — tiles, panels
        and tables hold their texts in the language they were made in; their numbers are the same in every
        language."""
        return (*self.view_key(state), state.language)

    def memo(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """`compute()`, remembered under `key` (a tuple of texts, numbers, None): in memory (the last
        `RESULT_CACHE_SIZE` results) and in `cache_dir`, shared by every kernel serving the same data and code,
        so what a view shows for a filter state is computed once. Keys should start with `result_key(state)`.
        Thread-safe: a key another thread is computing is waited for, not computed twice."""
        while True:
            with self._lock:
                if key in self._results:
                    self._results.move_to_end(key)
                    return self._results[key]
                running = self._running.get(key)
                if running is None:
                    self._running[key] = mine = threading.Event()
                    break
            running.wait()  # then from memory — or, when the other thread failed, computed here
        try:
            value = self._load(key)
            if value is None:
                value = compute()
                self._store(key, value)
            self._keep(key, value)
            return value
        finally:
            with self._lock:
                self._running.pop(key, None)
            mine.set()

    def remember(self, key: tuple, value: Any) -> None:
        """Remember `value` under `key` in place of what `memo` holds (in memory and on disk): a result
        completed later (a panel that was still being computed elsewhere)."""
        self._store(key, value)
        self._keep(key, value)

    def _keep(self, key: tuple, value: Any) -> None:
        with self._lock:
            self._results[key] = value
            self._results.move_to_end(key)
            while len(self._results) > RESULT_CACHE_SIZE:
                self._results.popitem(last=False)

    def view(self, state: st.FilterState) -> View:
        """The slice of `state` (cached: the last `VIEW_CACHE_SIZE` states)."""
        params = self.params_for(state)
        key = (params.period, params.comparison, params.region, tuple(sorted(state.slice_filters.items())))
        with self._lock:
            if key in self._views:
                self._views.move_to_end(key)
                return self._views[key]
        period = params.period_obj()
        periods = {"current": period, "previous": previous_period(period), "last_year": same_period_last_year(period)}
        frames: dict[str, dict[str, pd.DataFrame]] = {}
        not_applied: dict[str, tuple[str, ...]] = {}
        for which, p in periods.items():
            cut = {name: self.frame(name, params.region, p) for name in self.frames}
            filtered = self._filtered(cut, state)
            frames[which] = dict(filtered)
            if which == "current":
                not_applied = filtered.not_applied
        v = View(params=params, period=period, previous_period=periods["previous"],
                 last_year_period=periods["last_year"], tables=frames["current"], previous=frames["previous"],
                 last_year=frames["last_year"], rejected={}, report=self.report, con=self.con,
                 info=self._info_for(state), as_of=self.as_of, _check_as_of=self.as_of, state=state,
                 filters_not_applied=not_applied, source=self)
        with self._lock:
            self._views[key] = v
            while len(self._views) > VIEW_CACHE_SIZE:
                self._views.popitem(last=False)
        return v

    def forget_view(self, state: st.FilterState) -> None:
        """Let go of `state`'s cut slice (its results stay remembered): it is cut again when asked for."""
        params = self.params_for(state)
        key = (params.period, params.comparison, params.region, tuple(sorted(state.slice_filters.items())))
        with self._lock:
            self._views.pop(key, None)

    def _path(self, key: tuple) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{hashlib.sha256(repr(key).encode()).hexdigest()[:32]}.pkl"

    def _load(self, key: tuple) -> Any:
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            with path.open("rb") as fh:
                stored_key, value = pickle.load(fh)
        except Exception:  # a damaged or foreign entry is recomputed, never trusted
            return None
        return value if stored_key == key else None

    def _store(self, key: tuple, value: Any) -> None:
        path = self._path(key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            blob = pickle.dumps((key, value), protocol=pickle.HIGHEST_PROTOCOL)
            atomic.write_with(path, lambda tmp: tmp.write_bytes(blob))
        except OSError:  # a read-only or full disk only costs speed
            pass

    def parse_query(self, query: str | None) -> st.FilterState:
        """A deep link's filter state, its values matched against this source's choices."""
        return st.from_query(query or "", **{f"known_{k}": v for k, v in self.options.items()})

    def memory_bytes(self) -> int:
        """Bytes held by the loaded frames (deep), for the memory report."""
        return int(sum(f.memory_usage(deep=True).sum() for f in self.frames.values()))
