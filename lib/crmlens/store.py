"""The validated store: a source is validated once per version, in the engine; everything reads the result.

A **source version** is the data's fingerprint (every input file's name, size and modification time; for a
mapping also the mapping file's content), plus the code that decides what is valid (schema, validators,
mapping loader: their source hash) and `STORE_FORMAT`. The first reader of a version validates the whole
source with `crmlens.validate_engine` (DuckDB SQL, no pandas over the big tables) and writes, atomically,
into ``<store root>/<version>/``:

* ``accepted/<table>.parquet`` — accepted rows in canonical types, in source order;
* ``rejected/<table>.parquet`` — rejected rows as the source had them, with every reason (``_reasons``);
* ``problems.parquet`` — every problem row (table, column, row key, source row, value, rule, message);
* ``meta.json`` — per-table counts, notes, custom fields (name → declared type), fixes, and what the version
  was made from.

Readers (`open_slice`, notebooks, run tasks, dashboard kernels, ``crmlens validate``) query those files
with DuckDB, the region and period filters pushed into the scan: opening a slice costs a filter, not a
validation. A changed file is a new version (a new folder); a version is never rewritten, so nothing stale is
served. The store root is ``outputs/.cache/store`` (``$CRMLENS_STORE_DIR`` to move it). Database sources
(a URL) have no cheap fingerprint: their tables are copied into DuckDB and validated once per connection,
into a temporary store removed at exit.

"Not in the future" depends on the reader's as-of time, not on the data: rows are stored with the latest of
their not-future timestamps (``_future_at``) and the rule is applied when read, with the same messages.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from crmlens import paths
from crmlens.schema import PANDAS_DTYPES, SCHEMA, TABLE_NAMES, Table, Vocabulary, load_order
from crmlens.validate import (
    PROBLEM_COLUMNS,
    REASONS,
    SOURCE_ROW,
    TableReport,
    ValidationReport,
    _explain_check,
    _Problems,
    _row_keys,
)
from crmlens.validate_engine import FUTURE_AT, PERIOD_KEY, RID, TYPED_PREFIX, ident, literal, validate_in_engine

if TYPE_CHECKING:
    from crmlens.periods import Period

#: Bump when the store's layout or meaning changes: every existing version is then rebuilt.
STORE_FORMAT = 1
#: Environment variable naming the store root (default ``outputs/.cache/store``).
STORE_DIR_ENV = "CRMLENS_STORE_DIR"
#: attrs key on a `Store.latest` result: (column, by, before) — one row per `by` (`crmlens.data.latest_in_frame`).
LATEST_ATTR = "crmlens.latest"
#: Versions kept per source (older ones are removed when a new one is written).
KEEP_VERSIONS = 3
#: Fact tables with at least this many rows are stored sorted by period time, if set (``CRMLENS_STORE_CLUSTER_ROWS``):
#: a period's rows then sit in few row groups, at the price of a sorted copy when validating (measured on the
#: `large` demo: validation 48 s → 86 s, warm slices no faster). Off by default.
CLUSTER_ROWS: int | None = int(os.environ["CRMLENS_STORE_CLUSTER_ROWS"]) if os.environ.get(
    "CRMLENS_STORE_CLUSTER_ROWS", "").strip() else None
#: DuckDB memory limit while validating (the rest spills to disk in the version's temporary folder).
VALIDATION_MEMORY = os.environ.get("CRMLENS_VALIDATION_MEMORY", "3GB")

_LOCK = threading.Lock()
#: Stands for the version's folder in stored SQL (the folder is renamed into place after validation).
_STORE_FOLDER_MARK = "@STORE@"
_OPEN: dict[str, Store] = {}


def store_root() -> Path:
    """Where validated versions live."""
    env = os.environ.get(STORE_DIR_ENV, "").strip()
    return Path(env).expanduser() if env else paths.OUTPUTS_DIR / ".cache" / "store"


def _code_hash() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256(f"format {STORE_FORMAT}".encode())
    for name in ("schema.py", "validate.py", "validate_engine.py", "mapping.py"):
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:16]


def _files_fingerprint(files: list[Path]) -> list[list[Any]]:
    out = []
    for f in sorted(set(files)):
        st = f.stat()
        out.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    return out


def source_fingerprint(info: Any) -> dict[str, Any] | None:
    """What identifies the content of a file source (None for a database URL: no cheap fingerprint)."""
    if info.kind in ("demo", "folder"):
        folder = Path(info.source)
        files = [p for n in info.tables for p in (folder / f"{n}.parquet", folder / f"{n}.csv") if p.is_file()]
        return {"kind": info.kind, "folder": str(folder.resolve()), "files": _files_fingerprint(files)}
    if info.kind == "mapped":
        from crmlens.data import _resolve
        from crmlens.mapping import load_mapping

        mapping_path = _resolve(Path(info.mapping))
        folder = _resolve(Path(info.source))
        spec = load_mapping(mapping_path)
        files = [folder / f.path for f in spec.files.values()]
        return {"kind": "mapped", "folder": str(folder.resolve()), "files": _files_fingerprint(files),
                "mapping": hashlib.sha256(mapping_path.read_bytes()).hexdigest()}
    return None


def source_version(info: Any) -> str | None:
    """The version key of a source (None for a database URL)."""
    fp = source_fingerprint(info)
    if fp is None:
        return None
    payload = json.dumps({"fingerprint": fp, "code": _code_hash()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


# ------------------------------------------------------------------------------------------ building

def _duckdb_of(con: Any) -> Any:
    """The DuckDB connection under an Ibis DuckDB backend."""
    raw = getattr(con, "con", None)
    if raw is None or not hasattr(raw, "execute"):
        raise TypeError("not a DuckDB-backed connection")
    return raw


def source_file(info: Any, name: str) -> tuple[Path, str] | None:
    """The file (and its format) table `name` of a folder source is read from; None for other sources."""
    if info.kind not in ("demo", "folder"):
        return None
    for fmt in ("parquet", "csv"):
        path = Path(info.source) / f"{name}.{fmt}"
        if path.is_file():
            return path, fmt
    return None


def _read_failure(info: Any, name: str, err: Exception) -> Exception:
    """A plain `SourceError` for an engine error while reading table `name`: the file's problem when it is a file."""
    from crmlens.errors import SourceError
    from crmlens.mapping import read_error

    found = source_file(info, name)
    if found is not None:
        path, fmt = found
        return read_error(path, f"table {name}", err, fmt=fmt, fix=CANONICAL_ENCODING_FIX)
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return SourceError(f"table {name} of {info.source}: cannot be read ({first[:300]})")


#: How to read a canonical CSV that is not UTF-8 (`{guess}`: its probable encoding).
CANONICAL_ENCODING_FIX = ("convert it to UTF-8 (e.g. iconv -f {guess} -t utf-8 FILE > NEW.csv, or save it as "
                          "'CSV UTF-8' in Excel), or read the folder through a mapping whose files entry declares "
                          "encoding: {guess} (docs/mappings.md)")


def _source_relations(con: Any, info: Any) -> tuple[Any, dict[str, tuple[str, bool, bool]], list[Any],
                                                     dict[str, list[str]]]:
    """A DuckDB connection where every table of the source is readable, and per table the SQL relation
    (raw columns + ``_rid``), whether it has ``_source_row``, and whether the accepted rows can stay a view
    over the source (a Parquet file: columnar, read fast); and per table the notes on its headers (a header
    that differs from a model column only by case or white space is read as that column)."""
    import duckdb

    from crmlens.validate import match_headers

    keep: list[Any] = []
    if info.kind == "url":
        dcon = duckdb.connect()
        for name in info.tables:
            t = con.table(name)
            key = [k for k in SCHEMA[name].key if k in t.columns]
            arrow = (t.order_by(key) if key else t).to_pyarrow()
            keep.append(arrow)
            dcon.register(f"_src_{name}", arrow)
    else:
        dcon = _duckdb_of(con)
    relations = {}
    for name in info.tables:
        parquet = Path(info.source) / f"{name}.parquet" if info.kind in ("demo", "folder") else None
        if parquet is not None and parquet.is_file():
            # self-contained (no connection-local view): the store may keep it as the accepted rows' view
            rel = (f"(SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS {SOURCE_ROW}, "
                   f"file_row_number + 1 AS {RID} FROM read_parquet({literal(str(parquet.resolve()))}, "
                   f"file_row_number=true))")
            relations[name] = (rel, True, True)
            continue
        base = f"_src_{name}" if info.kind == "url" else ident(name)
        cols = [r[0] for r in dcon.execute(f"DESCRIBE SELECT * FROM {base}").fetchall()]
        has_src = SOURCE_ROW in cols
        if has_src:
            rel = f"(SELECT *, {SOURCE_ROW} AS {RID} FROM {base})"
        else:
            key = [ident(k) for k in SCHEMA[name].key if k in cols]
            order = f"ORDER BY {', '.join(key)}" if key and info.kind != "url" else ""
            dcon.execute(f"CREATE OR REPLACE TEMP TABLE _rid_{name} AS SELECT *, row_number() OVER ({order}) "
                         f"AS {RID} FROM {base}")
            rel = f"_rid_{name}"
        relations[name] = (rel, has_src, False)
    notes: dict[str, list[str]] = {}
    for name, (rel, has_src, as_view) in list(relations.items()):
        try:
            cols = [r[0] for r in dcon.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]
        except duckdb.Error as err:
            raise _read_failure(info, name, err) from None
        found = source_file(info, name)
        where = f"table {name} ({found[0]})" if found else f"table {name}"
        custom = dict(getattr(info, "custom_fields", {}).get(name) or {})
        table = SCHEMA[name].with_custom_fields(custom)
        rename, notes[name] = match_headers(table, cols, where)
        if found is not None and found[1] == "csv":  # DuckDB trims the header's names: say so
            from crmlens.mapping import header_fields

            names, _ = header_fields(found[0], where, "utf-8", None)
            padded = [n for n in names if n != n.strip() and n.strip().lower() in table.column_names]
            if padded:
                notes[name].append("headers with white space around them read as model columns: "
                                   + ", ".join(f"{n!r} as {n.strip().lower()}" for n in padded)
                                   + "; trim them in the export to silence this note")
        if rename:
            renamed = ", ".join(f"{ident(a)} AS {ident(b)}" for a, b in rename.items())
            relations[name] = (f"(SELECT * RENAME ({renamed}) FROM {rel})", has_src, as_view)
    return dcon, relations, keep, notes


def build_store(con: Any, info: Any, target: Path, *, progress: Any = None) -> None:
    """Validate every table of the source into `target` (written in a temporary folder, then renamed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        dcon, relations, _keep, notes = _source_relations(con, info)
        spill = tmp / "spill"
        spill.mkdir()
        settings = {}
        for key, value in (("memory_limit", VALIDATION_MEMORY), ("temp_directory", str(spill)),
                           ("enable_progress_bar", "false")):
            (old,) = dcon.execute(f"SELECT current_setting('{key}')").fetchone()
            settings[key] = old
            dcon.execute(f"SET {key} = {literal(value)}")
        try:
            meta = _validate_all(dcon, info, relations, tmp, progress, notes)
        finally:
            for key, old in settings.items():
                with contextlib.suppress(Exception):
                    dcon.execute(f"SET {key} = {literal(old)}")
            for name in info.tables:
                dcon.execute(f"DROP TABLE IF EXISTS _rid_{name}")
        shutil.rmtree(spill, ignore_errors=True)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str), encoding="utf-8")
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "meta.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _validate_all(dcon: Any, info: Any, relations: dict[str, tuple[str, bool, bool]], out: Path,
                  progress: Any, notes: dict[str, list[str]] | None = None) -> dict[str, Any]:
    import duckdb

    accepted: dict[str, str] = {}  # table -> SQL relation of its accepted rows
    notes = notes or {}

    def parent_rejected(parent: str, parent_col: str, values: list[str]) -> dict[str, str]:
        """Reasons of the parent rows that exist but were rejected, for the given key values."""
        path = out / "rejected" / f"{parent}.parquet"
        if parent not in accepted or not path.is_file() or not values:
            return {}
        col = ident(TYPED_PREFIX + parent_col)
        listed = ", ".join(literal(v) for v in values)
        try:
            got = dcon.execute(f"SELECT CAST({col} AS VARCHAR) AS k, first({ident(REASONS)}) FROM "
                               f"read_parquet({literal(str(path))}) WHERE CAST({col} AS VARCHAR) IN ({listed}) "
                               f"GROUP BY k").fetchall()
        except duckdb.Error:
            return {}
        return {str(k): str(r) for k, r in got}

    def parent_sql(parent: str, parent_col: str) -> str | None:
        if parent in accepted:
            return f"SELECT CAST({ident(parent_col)} AS VARCHAR) FROM {accepted[parent]}"
        if parent in relations:  # a back-reference to a table validated later: its keys as the source has them
            return f"SELECT DISTINCT CAST({ident(parent_col)} AS VARCHAR) FROM {relations[parent][0]}"
        return None

    tables: dict[str, Any] = {}
    problem_frames = []
    started = time.perf_counter()
    for name in load_order():
        if name not in relations:
            continue
        t0 = time.perf_counter()
        rel, has_src, as_view = relations[name]
        custom = dict(getattr(info, "custom_fields", {}).get(name) or {})
        try:
            result = validate_in_engine(dcon, name, SCHEMA[name].with_custom_fields(custom), rel,
                                        vocab=info.vocabulary, parent_sql=parent_sql, out_dir=out,
                                        has_source_row=has_src, accepted_as_view=as_view, cluster_rows=CLUSTER_ROWS,
                                        notes=notes.get(name), parent_rejected=parent_rejected)
        except duckdb.Error as err:
            raise _read_failure(info, name, err) from None
        if info.kind == "mapped":
            lost = _cast_loss_problems(dcon, name, rel, has_src)
            if len(lost):
                result.problems = pd.concat([result.problems, lost], ignore_index=True)
                result.report.problems = pd.concat([result.report.problems, lost[PROBLEM_COLUMNS]],
                                                   ignore_index=True).astype({"source_row": "Int64"})
                if result.report.status == "ok":
                    result.report.status = "warnings"
        found = source_file(info, name)
        if found is not None and result.report.loaded == 0:
            result.report.notes.append(
                f"{found[0]} has no data rows (only a header, or nothing after line 1): the table is empty; export "
                f"it again with its rows, or remove the file if the source has no {name}")
        accepted[name] = (f"({result.accepted_sql})" if result.accepted_sql
                          else f"read_parquet({literal(str(result.accepted_path))})")
        rep = result.report
        if len(result.problems):
            problem_frames.append(result.problems)
        tables[name] = {"loaded": rep.loaded, "accepted": rep.accepted, "rejected": rep.rejected,
                        "status": rep.status, "notes": rep.notes, "n_problems": len(result.problems),
                        "has_source_row": has_src, "columns": result.columns,
                        "max_future_at": None if result.max_future_at is None else result.max_future_at.isoformat(),
                        "seconds": round(time.perf_counter() - t0, 3), "steps": result.steps,
                        "accepted_sql": result.accepted_sql.replace(str(out), _STORE_FOLDER_MARK)
                        if result.accepted_sql else None, "clustered": result.clustered,
                        "custom_fields": custom}
        if progress is not None:
            progress(name, rep)
    problems = (pd.concat(problem_frames, ignore_index=True) if problem_frames
                else pd.DataFrame(columns=[*PROBLEM_COLUMNS, RID]))
    problems = problems.astype({"source_row": "Int64", RID: "Int64"})
    problems.to_parquet(out / "problems.parquet", index=False)
    vocab = info.vocabulary
    return {"format": STORE_FORMAT, "source": info.source, "kind": info.kind, "mapping": info.mapping,
            "vocabulary": {"stages": list(vocab.stages), "won_stage": vocab.won_stage, "lost_stage": vocab.lost_stage},
            "fixes": info.fixes, "tables": tables, "fingerprint": source_fingerprint(info),
            "validated_at": pd.Timestamp.now(tz="UTC").isoformat(), "seconds": round(time.perf_counter() - started, 3)}


def _cast_loss_problems(dcon: Any, name: str, rel: str, has_src: bool) -> pd.DataFrame:
    """Warnings for the source values a mapping's TRY_CAST could not read for table `name` (see
    `crmlens.mapping.CAST_LOSSES`): the value, its source line and row key, the expression, and what to do."""
    import duckdb

    from crmlens.mapping import CAST_LOSSES
    from crmlens.validate import _describe, shorten

    try:
        keys = SCHEMA[name].key
        key_sql = (", " + ", ".join(f"CAST(r.{ident(k)} AS VARCHAR) AS {ident('_k_' + k)}" for k in keys)
                   if has_src else "")
        join = f" LEFT JOIN {rel} AS r ON r.{SOURCE_ROW} = l.source_row" if has_src else ""
        got = dcon.execute(f"SELECT l.column_name, l.source_row, l.value, l.expression{key_sql} FROM "
                           f"main.{CAST_LOSSES} AS l{join} WHERE l.table_name = ? ORDER BY l.source_row",
                           [name]).df()
    except duckdb.Error:
        return pd.DataFrame(columns=[*PROBLEM_COLUMNS, RID])
    rows = []
    for r in got.to_dict("records"):
        key = "|".join("?" if pd.isna(r.get("_k_" + k)) else str(r["_k_" + k]) for k in keys) if has_src else None
        src = None if pd.isna(r["source_row"]) else int(r["source_row"])
        at = ", ".join(x for x in (f"row key {shorten(key)}" if key else "", f"source row {src}" if src else "") if x)
        rows.append({"table": name, "column": r["column_name"], "row_key": key, "source_row": src,
                     "value": shorten(str(r["value"]), 200), "rule": "unread_by_mapping", "severity": "warn",
                     "message": f"{name}.{r['column_name']} ({at}): {_describe(r['value'])} — the mapping's "
                                f"{shorten(r['expression'])} cannot read it, so it counts as empty; fix the value in "
                                f"the export, or the mapping [unread_by_mapping]",
                     RID: src if has_src else None})
    return pd.DataFrame(rows, columns=[*PROBLEM_COLUMNS, RID]).astype({"source_row": "Int64", RID: "Int64"})


def _prune(root: Path, keep_key: str, source: str) -> None:
    """Remove older versions of the same source beyond `KEEP_VERSIONS`."""
    versions = []
    for meta in root.glob("*/meta.json"):
        if meta.parent.name == keep_key:
            continue
        try:
            if json.loads(meta.read_text(encoding="utf-8")).get("source") == source:
                versions.append((meta.stat().st_mtime, meta.parent))
        except (OSError, ValueError):
            continue
    for _mtime, folder in sorted(versions, reverse=True)[KEEP_VERSIONS - 1:]:
        shutil.rmtree(folder, ignore_errors=True)


def ensure_validated(con: Any, *, progress: Any = None) -> Store:
    """The validated store of the source behind `con` (a `crmlens.data.connect` connection), validating
    the source first when this version has not been validated yet (by this or any other process)."""
    from crmlens.data import source_info

    info = source_info(con)
    cached = getattr(info, "store", None)
    version = source_version(info)
    if cached is not None and cached.version == version:  # a database's store (version None) lives as long as con
        return cached
    if version is None:  # a database: validated once per connection
        folder = Path(tempfile.mkdtemp(prefix="crmlens-store-"))
        atexit.register(shutil.rmtree, folder, True)
        build_store(con, info, folder / "v")
        store = Store(folder / "v", None)
    else:
        root = store_root()
        target = root / version
        with _LOCK:
            if version in _OPEN:
                store = _OPEN[version]
                info.store = store
                return store
        if not (target / "meta.json").is_file():
            root.mkdir(parents=True, exist_ok=True)
            import fcntl

            with open(root / f".{version}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # another process validating the same version: wait for it
                if not (target / "meta.json").is_file():
                    build_store(con, info, target, progress=progress)
                    _prune(root, version, info.source)
            with contextlib.suppress(OSError):
                (root / f".{version}.lock").unlink()
        store = Store(target, version)
        with _LOCK:
            _OPEN[version] = store
    info.store = store
    return store


# ------------------------------------------------------------------------------------------ reading

class _Sql(str):
    """A SQL boolean/value expression with Python operators, so that one rule (`crmlens.data._period_rule`)
    serves pandas, Ibis and SQL."""

    def __and__(self, other: object) -> _Sql:
        return _Sql(f"({self} AND {other})")

    def __or__(self, other: object) -> _Sql:
        return _Sql(f"({self} OR {other})")

    def __ge__(self, other: object) -> _Sql:  # type: ignore[override]
        return _Sql(f"({self} >= {other})")

    def __lt__(self, other: object) -> _Sql:  # type: ignore[override]
        return _Sql(f"({self} < {other})")


def _ts(value: Any) -> _Sql:
    return _Sql(f"TIMESTAMP {literal(pd.Timestamp(value).isoformat(sep=' '))}")


def _frame(arrow: Any, table: Table) -> pd.DataFrame:
    """Arrow rows of `table` as pandas in the reference validator's canonical dtypes."""
    import pyarrow as pa

    mapping = {pa.string(): pd.StringDtype(), pa.large_string(): pd.StringDtype(), pa.int64(): pd.Int64Dtype(),
               pa.bool_(): pd.BooleanDtype()}
    frame = arrow.to_pandas(types_mapper=mapping.get)
    wanted = {c.name: PANDAS_DTYPES[c.dtype] for c in table.columns if c.name in frame}
    wrong = {c: d for c, d in wanted.items() if str(frame[c].dtype) != d}
    if wrong:
        frame = frame.astype(wrong)
    if SOURCE_ROW in frame and str(frame[SOURCE_ROW].dtype) != "Int64":
        frame[SOURCE_ROW] = frame[SOURCE_ROW].astype("Int64")
    return frame


_NO_FUTURE = pd.DataFrame(columns=[*PROBLEM_COLUMNS, RID, "_reason"])


_NO_PROBLEMS = pd.DataFrame(columns=PROBLEM_COLUMNS).astype({"source_row": "Int64"})


def _problem_frame(problems: pd.DataFrame) -> pd.DataFrame:
    """Problem rows in the form the reference validator gives them (plain objects, None for missing)."""
    if problems.empty:
        return _NO_PROBLEMS.copy()
    plain = problems[PROBLEM_COLUMNS].astype(object)
    plain = plain.where(plain.notna(), None)
    return pd.DataFrame({c: plain[c].tolist() for c in PROBLEM_COLUMNS}).astype({"source_row": "Int64"})


@dataclass
class Store:
    """A validated version of a source, read with DuckDB."""

    folder: Path
    version: str | None
    meta: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.meta = json.loads((self.folder / "meta.json").read_text(encoding="utf-8"))
        self._con = None
        self._views = any(t.get("accepted_sql") for t in self.meta["tables"].values())
        self._problems: pd.DataFrame | None = None
        self._lock = threading.Lock()

    # --- plumbing
    @property
    def con(self) -> Any:
        """A DuckDB connection with views ``acc_<table>`` and ``rej_<table>`` over the store's files."""
        if self._con is None:
            import duckdb

            con = duckdb.connect()
            con.execute("SET enable_progress_bar = false")
            for name in self.tables:
                view = self.meta["tables"][name].get("accepted_sql")
                if view:  # a validated Parquet source read in place (see `_check_fresh`)
                    view = view.replace(_STORE_FOLDER_MARK, str(self.folder))
                    con.execute(f"CREATE VIEW acc_{name} AS {view}")
                else:
                    con.execute(f"CREATE VIEW acc_{name} AS SELECT * FROM "
                                f"read_parquet({literal(str(self.folder / 'accepted' / f'{name}.parquet'))})")
                rej = self.folder / "rejected" / f"{name}.parquet"
                if rej.is_file():
                    con.execute(f"CREATE VIEW rej_{name} AS SELECT * FROM read_parquet({literal(str(rej))})")
            self._con = con
        return self._con

    def _check_fresh(self) -> None:
        """Refuse to read a source file that changed since it was validated (its accepted rows are read in
        place): the caller opens the source again, which validates the new version."""
        from crmlens.errors import SourceError

        if not self._views:
            return
        for path, size, mtime in self.meta["fingerprint"]["files"]:
            try:
                st = os.stat(path)
            except OSError:
                st = None
            if st is None or st.st_size != size or st.st_mtime_ns != mtime:
                raise SourceError(f"source file {path} changed after it was validated (store version "
                                  f"{self.version}); open the source again (crmlens.data.connect / open_slice) "
                                  f"to validate the new version")

    def _query(self, sql: str) -> Any:
        self._check_fresh()
        with self._lock:
            got = self.con.execute(sql).arrow()
        return got.read_all() if hasattr(got, "read_all") else got

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder, "version": self.version}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.folder, self.version = state["folder"], state["version"]
        self.__post_init__()

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(n for n in TABLE_NAMES if n in self.meta["tables"])

    def table(self, name: str) -> Table:
        """The table `name` as stored: the canonical table plus the custom fields its mapping keeps."""
        return SCHEMA[name].with_custom_fields(self.custom_fields(name))

    def custom_fields(self, name: str) -> dict[str, str]:
        """The custom fields stored with table `name` (name → declared type, in column order); {} if none."""
        meta = self.meta["tables"].get(name)
        return dict(meta.get("custom_fields") or {}) if meta else {}

    @property
    def vocabulary(self) -> Vocabulary:
        v = self.meta["vocabulary"]
        return Vocabulary(stages=tuple(v["stages"]), won_stage=v["won_stage"], lost_stage=v["lost_stage"])

    def _has_future(self, name: str, as_of: pd.Timestamp | None) -> bool:
        top = self.meta["tables"][name]["max_future_at"]
        return as_of is not None and top is not None and pd.Timestamp(top) > pd.Timestamp(as_of)

    # --- predicates
    def predicate(self, name: str, *, region: str | None = None, period: Period | None = None,
                  typed_prefix: str = "") -> str:
        """SQL predicate cutting table `name` to a region and/or period (the rules of `crmlens.data`);
        `typed_prefix` reads the typed copies of a rejected table."""
        from crmlens.data import _period_rule

        table = SCHEMA[name]
        preds: list[str] = []
        if region and region != "all":
            pred = self._region_sql(name, region, typed_prefix)
            if pred is not None:
                preds.append(pred)
        if period is not None:
            present = [c for c in table.column_names if c in self.meta["tables"][name]["columns"]]
            pred = _period_rule(table, present, period, lambda c: _Sql(ident(typed_prefix + c)),
                                _ts(period.start), _ts(period.end),
                                lambda xs: _Sql(f"coalesce({', '.join(xs)})") if len(xs) > 1 else xs[0],
                                lambda v: _Sql(f"({v} IS NULL)"))
            if pred is not None:
                preds.append(str(pred))
                kind = self.meta["tables"][name].get("clustered")
                if kind and not typed_prefix:  # the same rows, said so that Parquet row-group statistics can skip
                    preds.append(f"({PERIOD_KEY} >= {_ts(period.start)} AND {PERIOD_KEY} < {_ts(period.end)})"
                                 if kind == "at" else f"({PERIOD_KEY} >= {_ts(period.start)})")
        return " AND ".join(preds) if preds else "TRUE"

    def _region_sql(self, name: str, region: str, typed_prefix: str = "") -> str | None:
        table = SCHEMA[name]
        present = self.meta["tables"][name]["columns"]
        if table.region is None:
            return None
        if isinstance(table.region, str):
            return f"({ident(typed_prefix + table.region)} = {literal(region)})" if table.region in present else None
        parent, fk = table.region
        if parent not in self.meta["tables"] or fk not in present:
            return None
        inner = self._region_sql(parent, region)
        if inner is None:
            return None
        key = SCHEMA[parent].key[0]
        return f"({ident(typed_prefix + fk)} IN (SELECT {ident(key)} FROM acc_{parent} WHERE {inner}))"

    def _columns(self, name: str) -> list[str]:
        """The accepted rows' columns as read: every canonical column, the custom fields, then ``_source_row`` when
        the source has it."""
        cols = [ident(c.name) for c in self.table(name).columns]
        return [*cols, SOURCE_ROW] if self.meta["tables"][name]["has_source_row"] else cols

    def _order(self, name: str, region: str | None) -> str:
        """`` ORDER BY _rid`` where the source order would be lost: a table stored sorted by period time, or a
        region cut through a parent table (a join). A filtered scan keeps the order (DuckDB preserves insertion
        order), and sorting a large result costs time."""
        through_parent = region not in (None, "all") and isinstance(SCHEMA[name].region, tuple)
        return f" ORDER BY {RID}" if through_parent or self.meta["tables"][name].get("clustered") else ""

    @staticmethod
    def _not_future(as_of: pd.Timestamp | None) -> str:
        return "TRUE" if as_of is None else f"({FUTURE_AT} IS NULL OR {FUTURE_AT} <= {_ts(as_of)})"

    # --- reads
    def read(self, name: str, *, region: str | None = None, period: Period | None = None,
             as_of: pd.Timestamp | None = None) -> pd.DataFrame:
        """Accepted rows of `name` for a region/period, in canonical dtypes and source order (as
        `crmlens.validate.validate_table` returns them); rows after `as_of` are not accepted."""
        table = self.table(name)
        cols = self._columns(name)
        where = self.predicate(name, region=region, period=period)
        if self._has_future(name, as_of):
            where = f"({where}) AND {self._not_future(as_of)}"
        return _frame(self._query(f"SELECT {', '.join(cols)} FROM acc_{name} WHERE {where}{self._order(name, region)}"),
                      table)

    def read_columns(self, name: str, columns: list[str], *, region: str | None = None, period: Period | None = None,
                     as_of: pd.Timestamp | None = None) -> pd.DataFrame:
        """`read`, but only `columns` (e.g. the account and time of ten million activities: each text column
        costs as much again to bring into pandas)."""
        table = self.table(name)
        known = set(self._columns(name)) | {ident(c) for c in self.custom_fields(name)}
        cols = [ident(c) for c in columns]
        missing = [c for c, q in zip(columns, cols, strict=True) if q not in known]
        if missing:
            from crmlens.errors import SchemaError

            raise SchemaError(f"table {name} has no column {', '.join(missing)}")
        where = self.predicate(name, region=region, period=period)
        if self._has_future(name, as_of):
            where = f"({where}) AND {self._not_future(as_of)}"
        return _frame(self._query(f"SELECT {', '.join(cols)} FROM acc_{name} WHERE {where}{self._order(name, region)}"),
                      table)

    def latest(self, name: str, column: str, by: str, *, before: pd.Timestamp, region: str | None = None,
               period: Period | None = None, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
        """Per value of `by`, the latest `column` before `before`, among the rows `read` would return — a group-by
        in the engine: columns `by`, `column`, one row per non-empty `by` (sorted by it)."""
        where = self.predicate(name, region=region, period=period)
        if self._has_future(name, as_of):
            where = f"({where}) AND {self._not_future(as_of)}"
        col, key = ident(column), ident(by)
        sql = (f"SELECT {key}, max({col}) AS {col} FROM acc_{name} WHERE ({where}) AND {col} < {_ts(before)} "
               f"AND {key} IS NOT NULL GROUP BY {key} ORDER BY {key}")
        out = _frame(self._query(sql), self.table(name))
        out.attrs[LATEST_ATTR] = (column, by, pd.Timestamp(before))  # one row per `by` (see latest_in_frame)
        return out

    def counts(self, cuts: dict[str, tuple[str | None, Period | None]], *,
               as_of: pd.Timestamp | None = None) -> dict[str, int]:
        """How many rows `read` would return for several tables, each with its (region, period) cut — counted
        in the engine, in one query, nothing read into pandas."""
        parts = []
        for i, (name, (region, period)) in enumerate(cuts.items()):
            where = self.predicate(name, region=region, period=period)
            if self._has_future(name, as_of):
                where = f"({where}) AND {self._not_future(as_of)}"
            parts.append(f"SELECT {i} AS i, count(*) AS n FROM acc_{name} WHERE {where}")
        if not parts:
            return {}
        got = self._query(" UNION ALL ".join(parts)).to_pydict()
        names = list(cuts)
        return {names[i]: int(n) for i, n in zip(got["i"], got["n"], strict=True)}

    def rejected(self, name: str, *, region: str | None = None, period: Period | None = None,
                 as_of: pd.Timestamp | None = None) -> pd.DataFrame:
        """Rejected rows of `name` (as the source had them, with ``_reasons``) for a region/period,
        including rows rejected only for lying after `as_of`."""
        frame, _ = self._rejected_and_rids(name, region=region, period=period, as_of=as_of)
        return frame

    def _rejected_and_rids(self, name: str, *, region: str | None, period: Period | None,
                           as_of: pd.Timestamp | None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(rejected rows for the cut, the future problems of the cut's rows)."""
        meta = self.meta["tables"][name]
        raw_cols = list(meta["columns"])
        if not meta["rejected"] and not self._has_future(name, as_of):  # the usual case: nothing to read
            return pd.DataFrame(columns=[*raw_cols, REASONS]), _NO_FUTURE
        future = self._future_problems(name, region=region, period=period, as_of=as_of)
        if meta["rejected"]:
            where = self.predicate(name, region=region, period=period, typed_prefix=TYPED_PREFIX)
            got = self.con_df(f"SELECT * FROM rej_{name} WHERE {where} ORDER BY {RID}")
        else:
            got = pd.DataFrame(columns=[*raw_cols, REASONS, RID])
        if len(future):
            extra = future.groupby(RID, sort=True)["_reason"].apply(lambda r: "; ".join(r))
            if len(got):
                add = got[RID].map(extra)
                got[REASONS] = [f"{r}; {a}" if isinstance(a, str) else r
                                for r, a in zip(got[REASONS], add, strict=True)]
            moved = self._future_rows(name, sorted(set(extra.index) - set(got[RID].tolist())), region, period)
            if len(moved):
                moved[REASONS] = moved[RID].map(extra)
                got = pd.concat([got, moved], ignore_index=True).sort_values(RID, kind="stable")
        cols = [c for c in raw_cols if c in got] + [REASONS]
        out = got[cols].reset_index(drop=True) if len(got) else pd.DataFrame(columns=cols)
        return out, future

    def con_df(self, sql: str) -> pd.DataFrame:
        return self._query(sql).to_pandas()

    def _future_rows(self, name: str, rids: list[int], region: str | None, period: Period | None) -> pd.DataFrame:
        """Accepted rows (canonical form) that the as-of time rejects."""
        if not rids:
            return pd.DataFrame()
        table = self.table(name)
        cols = self._columns(name)
        ids = ", ".join(str(int(r)) for r in rids)
        return _frame(self._query(f"SELECT {', '.join(cols)}, {RID} FROM acc_{name} WHERE {RID} IN ({ids}) "
                                  f"ORDER BY {RID}"), table)

    def _future_problems(self, name: str, *, region: str | None, period: Period | None,
                         as_of: pd.Timestamp | None) -> pd.DataFrame:
        """Problem rows of the "not in the future" rule for `as_of` (with ``_rid`` and ``_reason``)."""
        table = self.table(name)
        cols = [c for c in table.columns if c.not_future and c.name in self.meta["tables"][name]["columns"]]
        if not cols or not self._has_future(name, as_of):
            return _NO_FUTURE
        cut = self.predicate(name, region=region, period=period)
        cut_rej = self.predicate(name, region=region, period=period, typed_prefix=TYPED_PREFIX)
        later = f"{FUTURE_AT} > {_ts(as_of)}"
        typed = ", ".join(ident(c.name) for c in table.columns)
        typed_rej = ", ".join(f"{ident(TYPED_PREFIX + c.name)} AS {ident(c.name)}" for c in table.columns)
        src = SOURCE_ROW if self.meta["tables"][name]["has_source_row"] else f"NULL::BIGINT AS {SOURCE_ROW}"
        parts = [f"SELECT {typed}, {src}, {RID} FROM acc_{name} WHERE {later} AND {cut}"]
        if self.meta["tables"][name]["rejected"]:
            parts.append(f"SELECT {typed_rej}, {src}, {RID} FROM rej_{name} WHERE {later} AND {cut_rej}")
        rows = _frame(self._query(" UNION ALL ".join(parts) + f" ORDER BY {RID}"), table).reset_index(drop=True)
        if not self.meta["tables"][name]["has_source_row"]:
            rows = rows.drop(columns=[SOURCE_ROW])
        problems = _Problems(table, rows, _row_keys(rows, table))
        reasons = []
        for col in cols:
            late = rows[col.name].notna() & (rows[col.name] > pd.Timestamp(as_of))
            if late.any():
                rule, explain = _explain_check(table, "not_in_future", col.name, self.vocabulary, str(as_of))
                problems.add(rows.index[late.to_numpy()], col.name, rule, explain, values=rows[col.name])
                reasons += [f"{col.name}: {explain} [{rule}]"] * int(late.sum())
        frame = problems.frame()
        frame[RID] = rows.loc[problems.row_index, RID].to_numpy()
        frame["_reason"] = reasons
        return frame

    # --- reports
    def problems(self) -> pd.DataFrame:
        if self._problems is None:
            self._problems = pd.read_parquet(self.folder / "problems.parquet")
        return self._problems

    def table_report(self, name: str, *, region: str | None = None, period: Period | None = None,
                     as_of: pd.Timestamp | None = None, accepted_rows: int | None = None) -> TableReport:
        """The validation report of table `name`, whole or for a region/period cut, at `as_of`."""
        return self.cut_report(name, region=region, period=period, as_of=as_of, accepted_rows=accepted_rows)[0]

    def cut_report(self, name: str, *, region: str | None = None, period: Period | None = None,
                   as_of: pd.Timestamp | None = None,
                   accepted_rows: int | None = None) -> tuple[TableReport, pd.DataFrame]:
        """(`table_report`, `rejected`) of a cut, computed together."""
        meta = self.meta["tables"][name]
        whole = (region in (None, "all")) and period is None
        rep = TableReport(table=name, notes=list(meta["notes"]))
        rejected, future = self._rejected_and_rids(name, region=region, period=period, as_of=as_of)
        stored = self.problems()
        stored = stored[stored["table"] == name] if meta["n_problems"] else stored.iloc[0:0]
        if not whole and len(stored):
            where = self.predicate(name, region=region, period=period)
            rids = self.con_df(f"SELECT {RID} FROM acc_{name} WHERE {where}")[RID]
            if meta["rejected"]:
                rwhere = self.predicate(name, region=region, period=period, typed_prefix=TYPED_PREFIX)
                rids = pd.concat([rids, self.con_df(f"SELECT {RID} FROM rej_{name} WHERE {rwhere}")[RID]])
            stored = stored[stored[RID].isin(rids)]
        problems = pd.concat([stored, future[stored.columns.intersection(future.columns)]], ignore_index=True) \
            if len(future) else stored
        rep.problems = _problem_frame(problems)
        rep.rejected = len(rejected)
        if accepted_rows is None:
            if whole:
                n_future_moved = len(set(future[RID]) - set(self._rejected_rids(name))) if len(future) else 0
                accepted_rows = meta["accepted"] - n_future_moved
            else:
                accepted_rows = len(self.read(name, region=region, period=period, as_of=as_of))
        rep.accepted = int(accepted_rows)
        rep.loaded = rep.accepted + rep.rejected
        rep.status = meta["status"] if meta["status"] == "unusable" else ("warnings" if len(rep.problems) else "ok")
        return rep, rejected

    def _rejected_rids(self, name: str) -> list[int]:
        if not self.meta["tables"][name]["rejected"]:
            return []
        return self.con_df(f"SELECT {RID} FROM rej_{name}")[RID].tolist()

    def report(self, *, as_of: pd.Timestamp | None = None, tables: list[str] | None = None,
               source: str | None = None) -> ValidationReport:
        """The whole source's validation report at `as_of` (tables the source lacks: "absent")."""
        report = ValidationReport(source=source or self.meta["source"])
        report.fixes = list(self.meta.get("fixes") or [])
        wanted = tables if tables is not None else list(TABLE_NAMES)
        for name in load_order():
            if name not in wanted:
                continue
            if name not in self.meta["tables"]:
                report.tables[name] = TableReport(table=name, status="absent", notes=["this source has no such table"])
                continue
            report.tables[name] = self.table_report(name, as_of=as_of)
        return report

    def data_as_of(self, now: pd.Timestamp) -> pd.Timestamp | None:
        """Midnight after the latest not-future timestamp up to `now` (see `crmlens.data.data_as_of`)."""
        tops = [pd.Timestamp(t["max_future_at"]) for t in self.meta["tables"].values() if t["max_future_at"]]
        if tops and max(tops) <= now:  # no stray future value anywhere: the stored maximum is the answer
            return (max(tops) + pd.Timedelta(days=1)).normalize()
        parts = []
        for name in self.tables:
            cols = [c.name for c in SCHEMA[name].columns if c.not_future
                    and c.name in self.meta["tables"][name]["columns"]]
            for c in cols:
                parts.append(f"SELECT max({ident(c)}) AS m FROM acc_{name} WHERE {ident(c)} <= {_ts(now)}")
                if self.meta["tables"][name]["rejected"]:
                    parts.append(f"SELECT max({ident(TYPED_PREFIX + c)}) FROM rej_{name} "
                                 f"WHERE {ident(TYPED_PREFIX + c)} <= {_ts(now)}")
        if not parts:
            return None
        (value,) = self._query(f"SELECT max(m) AS m FROM ({' UNION ALL '.join(parts)})").to_pylist()[0].values()
        return None if value is None else (pd.Timestamp(value) + pd.Timedelta(days=1)).normalize()
