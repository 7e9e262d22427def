"""Validation as engine queries: the rules of `crmlens.validate`, run by DuckDB over a whole table.

`crmlens.validate.validate_table` is the reference (pandas, one frame in memory); this module applies the
same canonical model — types, required values, allowed values, ranges, row rules, duplicate keys, foreign
keys, "missing value" warnings — as one SQL query per table, so that ten million rows are checked in seconds
and never held in pandas. Only the rows with a problem (normally a handful) are brought into pandas, where
their report rows are written by the very code the reference uses (`crmlens.validate._Problems`): messages,
row keys, source rows and reasons read the same.

Outputs for one table (`validate_in_engine`):

* ``accepted``: a Parquet file of the accepted rows in canonical types, in source order, with the meta
  columns ``_source_row`` (when the source has it), ``_rid`` (the row's position in the source) and
  ``_future_at`` (the latest of the row's "not in the future" timestamps);
* ``rejected``: the rejected rows as the source had them, with ``_reasons``, ``_rid``, ``_future_at`` and
  the canonical (typed) value of every column as ``_t_<column>`` (to cut rejected rows by region/period);
* the table's `TableReport` and its problem rows (with ``_rid``).

The "not in the future" rule depends on the as-of time of whoever reads the data, not on the data: it is
left out here and applied when the store is read (`crmlens.store`), from ``_future_at``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from crmlens.schema import PANDAS_DTYPES, Column, Table, Vocabulary
from crmlens.validate import (
    FALSE_WORDS,
    PROBLEM_COLUMNS,
    REASONS,
    SOURCE_ROW,
    TRUE_WORDS,
    ParentRejected,
    TableReport,
    _Problems,
    _row_keys,
    add_check_problems,
    add_foreign_key_problems,
    add_missing_column_problems,
    add_wrong_type_problems,
    check_columns,
    explain_all_rejected,
)

#: Meta columns of the store.
RID = "_rid"
FUTURE_AT = "_future_at"
TYPED_PREFIX = "_t_"
BAD_PREFIX = "_b_"
PERIOD_KEY = "_period_key"

#: Characters `str.strip()` removes that matter in exports (DuckDB's trim() only removes spaces).
_WS = "' \t\n\r\x0b\x0c'"

#: White space `str.strip()` removes: ASCII and the Unicode spaces CRM exports carry (NBSP, ideographic space...).
_SPACES = [9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 133, 160, 5760, *range(8192, 8203), 8232, 8233, 8239, 8287, 12288]
_WS_ALL = "(" + " || ".join(f"chr({c})" for c in _SPACES) + ")"


#: Empty, or starting or ending with white space as `str.strip()` sees it (ASCII, Unicode spaces, NEL...): one RE2
#: test (2x cheaper in DuckDB than a chain of prefix/suffix tests).
_EDGE_RE = r"^$|^[\s\pZ\x0b\x1c-\x1f\x85]|[\s\pZ\x0b\x1c-\x1f\x85]$"


def _edge_space(x: str) -> str:
    """SQL: `x` is empty or starts/ends with white space (so it must be trimmed, or becomes empty)."""
    return f"regexp_matches({x}, {literal(_EDGE_RE)})"


#: Returns the SQL of a one-column relation of valid parent keys (as text), or None (not checked).
ParentSql = Callable[[str, str], "str | None"]


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def literal(value: object) -> str:
    """A SQL literal for a string or number."""
    if value is None:
        return "NULL"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _is_text(sql_type: str) -> bool:
    return sql_type.upper().startswith(("VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR", "UUID", "JSON", "ENUM"))


def _is_numeric(sql_type: str) -> bool:
    t = sql_type.upper()
    return t.startswith(("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                         "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "REAL", "INT"))


def _is_integer(sql_type: str) -> bool:
    t = sql_type.upper()
    return _is_numeric(t) and not t.startswith(("FLOAT", "DOUBLE", "DECIMAL", "REAL"))


def _blank(x: str, sql_type: str) -> str:
    """SQL: the value is missing (null, NaN, or blank text) — `crmlens.validate._is_blank`."""
    if _is_text(sql_type):
        return f"({x} IS NULL OR trim({x}, {_WS}) = '')"
    if sql_type.upper().startswith(("FLOAT", "DOUBLE", "REAL")):
        return f"({x} IS NULL OR isnan({x}))"
    return f"({x} IS NULL)"


def _timestamp_from_text(x: str) -> str:
    """ISO 8601 text to a naive UTC timestamp (as pandas' ``to_datetime(format="ISO8601", utc=True)``),
    NULL when unreadable."""
    s = f"trim({x}, {_WS})"
    return (f"coalesce(TRY_CAST({s} AS TIMESTAMPTZ), "
            f"CASE WHEN regexp_full_match({s}, '\\d{{4}}') THEN TRY_CAST({s} || '-01-01' AS TIMESTAMPTZ) "
            f"WHEN regexp_full_match({s}, '\\d{{4}}-\\d{{2}}') THEN TRY_CAST({s} || '-01' AS TIMESTAMPTZ) "
            f"WHEN regexp_full_match({s}, '\\d{{8}}') THEN "
            f"TRY_CAST(substr({s}, 1, 4) || '-' || substr({s}, 5, 2) || '-' || substr({s}, 7, 2) AS TIMESTAMPTZ) "
            f"END)::TIMESTAMP")


def typed_sql(column: Column, x: str, sql_type: str) -> tuple[str, str]:
    """(SQL of the canonical value, SQL that is true where a present value cannot be read as the type) —
    the rules of `crmlens.validate.coerce_column`, in the engine."""
    t = sql_type.upper()
    blank = _blank(x, sql_type)
    false = "FALSE"
    if column.dtype == "string":
        if not _is_text(t):
            return f"CASE WHEN {blank} THEN NULL ELSE CAST({x} AS VARCHAR) END", false
        # trim only the values that start or end with white space (trim() on every value is 4x slower)
        return f"CASE WHEN {_edge_space(x)} THEN nullif(trim({x}, {_WS_ALL}), '') ELSE {x} END", false
    if column.dtype in ("int", "float"):
        if t == "BOOLEAN":
            num = f"CAST({x} AS DOUBLE)"
        elif _is_numeric(t):
            num = f"CASE WHEN {blank} THEN NULL ELSE CAST({x} AS DOUBLE) END"
        else:
            num = f"CASE WHEN {blank} THEN NULL ELSE TRY_CAST(trim(CAST({x} AS VARCHAR), {_WS}) AS DOUBLE) END"
        # 'inf', '-inf', 'NaN' text (and infinite typed values) are not numbers a CRM holds: unreadable
        unreadable = f"((({num}) IS NULL OR isnan({num}) OR isinf({num})) AND NOT {blank})"
        if column.dtype == "int":
            if _is_integer(t) or t == "BOOLEAN":
                return f"CAST({x} AS BIGINT)", false
            bad = f"({unreadable} OR (({num}) IS NOT NULL AND (isinf({num}) OR ({num}) <> floor({num}))))"
            return f"CASE WHEN {bad} THEN NULL ELSE CAST({num} AS BIGINT) END", bad
        return f"CASE WHEN {unreadable} THEN NULL ELSE {num} END", unreadable
    if column.dtype in ("timestamp", "date"):
        typed = True
        if t.startswith("TIMESTAMP WITH TIME ZONE") or t == "TIMESTAMPTZ":
            ts = f"CAST(timezone('UTC', {x}) AS TIMESTAMP)"
        elif t.startswith(("TIMESTAMP", "DATE", "DATETIME")):
            ts = f"CAST({x} AS TIMESTAMP)"
        else:
            typed = False
            ts = f"CASE WHEN {blank} THEN NULL ELSE {_timestamp_from_text(f'CAST({x} AS VARCHAR)')} END"
        bad = "FALSE" if typed else f"(({ts}) IS NULL AND NOT {blank})"
        if column.dtype == "date":
            ts = f"date_trunc('day', {ts})::TIMESTAMP"
        return ts, bad
    if column.dtype == "bool":
        if t == "BOOLEAN":
            return x, false
        word = f"lower(trim(CAST({x} AS VARCHAR), {_WS}))"
        trues = ", ".join(literal(w) for w in sorted(TRUE_WORDS))
        falses = ", ".join(literal(w) for w in sorted(FALSE_WORDS))
        value = f"CASE WHEN {word} IN ({trues}) THEN TRUE WHEN {word} IN ({falses}) THEN FALSE END"
        return value, f"(({value}) IS NULL AND NOT {blank})"
    raise TypeError(f"unknown canonical type {column.dtype!r}")  # pragma: no cover


@dataclass(frozen=True)
class _Check:
    """One check as a boolean SQL column of the check query."""

    flag: str  # column name in the check query
    kind: str  # wrong_type | column | row | duplicate | foreign_key | warn
    column: str | None
    check: str  # the pandera-style check name (`_explain_check`), or the rule
    sql: str
    parent: str | None = None
    parent_col: str | None = None


def _checks(table: Table, vocab: Vocabulary, parent_sql: ParentSql | None, readable: set[str]) -> list[_Check]:
    """Every check of the table, in the order the reference validator reports them. The check query reads
    ``t`` (typed values, ``_b_<column>`` unreadable flags) left-joined to ``d`` (keys seen more than once)."""
    out: list[_Check] = []

    def add(kind: str, column: str | None, check: str, sql: str, **kw: str | None) -> None:
        out.append(_Check(f"_f{len(out)}", kind, column, check, sql, **kw))

    for col in table.columns:
        if col.name not in readable:
            add("wrong_type", col.name, "wrong_type", f"t.{ident(BAD_PREFIX + col.name)}")
    for col in table.columns:
        x = f"t.{ident(col.name)}"
        if not col.nullable:
            add("column", col.name, "not_nullable", f"({x} IS NULL AND NOT t.{ident(BAD_PREFIX + col.name)})")
        if col.allowed is not None:
            allowed = vocab.resolve(col.allowed) if isinstance(col.allowed, str) else col.allowed
            add("column", col.name, "allowed_values",
                f"({x} IS NOT NULL AND {x} NOT IN ({', '.join(literal(a) for a in allowed)}))")
        if col.min is not None:
            add("column", col.name, "min", f"coalesce({x} < {literal(col.min)}, FALSE)")
        if col.max is not None:
            add("column", col.name, "max", f"coalesce({x} > {literal(col.max)}, FALSE)")
    for rule in table.rules:
        add("row", None, rule.name, f"NOT coalesce({rule.sql(vocab, 't.')}, FALSE)")
    add("duplicate", ",".join(table.key), "duplicate_key", f"coalesce(t.{RID} > d._first_rid, FALSE)")
    if parent_sql is not None:
        for col, parent, parent_col in table.foreign_keys:
            keys = parent_sql(parent, parent_col)
            if keys is None:
                continue
            x = f"t.{ident(col.name)}"
            add("foreign_key", col.name, "foreign_key",
                f"({x} IS NOT NULL AND CAST({x} AS VARCHAR) NOT IN (SELECT k FROM ({keys}) AS p(k) "
                f"WHERE k IS NOT NULL))", parent=parent, parent_col=parent_col)
    for col in table.columns:
        if col.warn_if_null:
            add("warn", col.name, "missing_value", f"(t.{ident(col.name)} IS NULL)")
    return out


@dataclass
class EngineTableResult:
    """What `validate_in_engine` found and wrote for one table."""

    report: TableReport
    problems: pd.DataFrame  # PROBLEM_COLUMNS + _rid
    accepted_path: Path | None  # None when the accepted rows are a view (`accepted_sql`)
    rejected_path: Path | None
    columns: list[str]  # the raw columns (without _rid)
    max_future_at: pd.Timestamp | None
    accepted_sql: str | None  # the accepted rows as a SELECT over the source (view mode)
    clustered: str | None  # "at"/"span" when written sorted by ``_period_key``
    steps: dict[str, float]  # seconds per step


def validate_in_engine(con, name: str, table: Table, source: str, *, vocab: Vocabulary,
                       parent_sql: ParentSql | None, out_dir: Path, has_source_row: bool,
                       accepted_as_view: bool = False, cluster_rows: int | None = None,
                       notes: list[str] | None = None,
                       parent_rejected: ParentRejected | None = None) -> EngineTableResult:
    """Validate table `name`, read by SQL relation `source` (raw columns plus ``_rid``) on the DuckDB
    connection `con`, writing the accepted and rejected rows under `out_dir`. See the module docstring.

    With `accepted_as_view` (for a self-contained `source` over a file that reads fast, i.e. Parquet), the
    accepted rows are not written: the result's `accepted_sql` reads them from the source, in canonical types,
    minus the rejected rows — the reader must make sure the file has not changed (`crmlens.store` does).

    A fact table of at least `cluster_rows` rows is written sorted by its period time (``_period_key``: the
    row's time for "at" tables, the end of its interval, open = infinity, for "span" tables), so that a
    period's rows sit in few Parquet row groups and a slice reads only those (readers restore source order
    with ``_rid``)."""
    raw_cols = [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
                if r[0] != RID]
    raw_types = dict(raw_cols)
    report = TableReport(table=name, notes=list(notes or []))
    missing_required = check_columns(table, [c for c, _ in raw_cols], report)
    accepted_path = out_dir / "accepted" / f"{name}.parquet"
    rejected_path = out_dir / "rejected" / f"{name}.parquet"
    accepted_path.parent.mkdir(parents=True, exist_ok=True)
    rejected_path.parent.mkdir(parents=True, exist_ok=True)

    typed_cols = []
    typed_values = []  # the canonical values only (no "unreadable" flags), without aliases
    readable = set()  # columns whose every value can be read (no unreadable flag)
    for col in table.columns:
        if col.name in raw_types:
            value, unreadable = typed_sql(col, f"r.{ident(col.name)}", raw_types[col.name])
        else:
            value, unreadable = "NULL", "FALSE"
        sql_type = {"string": "VARCHAR", "int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN",
                    "timestamp": "TIMESTAMP", "date": "TIMESTAMP"}[col.dtype]
        typed_cols.append(f"CAST({value} AS {sql_type}) AS {ident(col.name)}")
        typed_values.append(f"CAST({value} AS {sql_type})")
        if unreadable != "FALSE":
            typed_cols.append(f"({unreadable}) AS {ident(BAD_PREFIX + col.name)}")
        else:
            readable.add(col.name)
            if not col.nullable:
                typed_cols.append(f"FALSE AS {ident(BAD_PREFIX + col.name)}")
    future_cols = [c.name for c in table.columns if c.not_future]
    def future_of(prefix: str) -> str:
        if not future_cols:
            return "CAST(NULL AS TIMESTAMP)"
        return f"greatest({', '.join(f'{prefix}{ident(c)}' for c in future_cols)})"

    future = future_of("t.")
    keep_src = f", r.{SOURCE_ROW}" if has_source_row else ""
    first_of = SOURCE_ROW if has_source_row else RID
    key_cols = ", ".join(ident(k) for k in table.key)
    key_ok = " AND ".join(f"{ident(k)} IS NOT NULL" for k in table.key)
    key_join = " AND ".join(f"t.{ident(k)} = d.{ident(k)}" for k in table.key)

    checks = [] if missing_required else _checks(table, vocab, parent_sql, readable)
    flags = "".join(f", {c.sql} AS {c.flag}" for c in checks)
    rejecting = [c.flag for c in checks if c.kind != "warn"]
    any_reject = "TRUE" if missing_required else (" OR ".join(rejecting) or "FALSE")
    any_flag = "TRUE" if missing_required else (" OR ".join(c.flag for c in checks) or "FALSE")
    t_name, d_name, k_name = f"_t_{name}", f"_d_{name}", f"_k_{name}"
    steps: dict[str, float] = {}
    clock = [time.perf_counter()]

    def step(label: str) -> None:
        now = time.perf_counter()
        steps[label] = round(now - clock[0], 3)
        clock[0] = now

    typed_q = f"(SELECT r.{RID}{keep_src}, {', '.join(typed_cols)} FROM {source} AS r)"
    if accepted_as_view:
        t_rel = typed_q  # every pass reads the (columnar) source again: nothing big is held in memory
    else:
        # 1. one pass over the source: canonical values and "unreadable" flags, in source order
        con.execute(f"CREATE OR REPLACE TEMP TABLE {t_name} AS SELECT * FROM {typed_q}")
        t_rel = t_name
        step("typed")
    # 2. keys seen more than once (normally none)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {d_name} AS SELECT {key_cols}, min({RID}) AS _first_rid, "
                f"arg_min({first_of}, {RID}) AS _first FROM {t_rel} WHERE {key_ok} GROUP BY ALL HAVING count(*) > 1")
    (n_dup,) = con.execute(f"SELECT count(*) FROM {d_name}").fetchone()
    step("duplicates")
    joined = (f"{t_rel} AS t LEFT JOIN {d_name} AS d ON {key_join}" if n_dup
              else f"{t_rel} AS t, (SELECT NULL::BIGINT AS _first_rid, NULL::BIGINT AS _first) AS d")
    # 3. the rows with any problem (normally few), with every check's flag
    con.execute(f"CREATE OR REPLACE TEMP TABLE {k_name} AS SELECT *, ({any_reject}) AS _reject FROM "
                f"(SELECT t.*, {future} AS {FUTURE_AT}, d._first{flags} FROM {joined}) WHERE {any_flag}")
    n_flag, n_reject = con.execute(f"SELECT count(*), count(*) FILTER (WHERE _reject) FROM {k_name}").fetchone()
    step("checks")
    # 4. accepted rows, in source order: written, or (view) read from the source when used
    canonical = ", ".join(ident(c.name) for c in table.columns)
    src_col = f", {SOURCE_ROW}" if has_source_row else ""
    rejected_now = f"SELECT {RID} FROM {k_name} WHERE _reject"
    if accepted_as_view:
        plain = [c for c in table.columns if c.dtype == "string" and _is_text(raw_types.get(c.name, ""))]
        edges = [f"bool_or({_edge_space(f'r.{ident(c.name)}')})" for c in plain]
        # one pass: rows, the latest not-future time, and which text columns hold a value to trim or blank
        value_of = {c.name: v for c, v in zip(table.columns, typed_values, strict=True)}
        latest = (f"greatest({', '.join(value_of[c] for c in future_cols)})" if future_cols
                  else "CAST(NULL AS TIMESTAMP)")
        got = con.execute(f"SELECT count(*), max({latest}){''.join(', ' + e for e in edges)} "
                          f"FROM {source} AS r").fetchone()
        loaded, max_future = got[0], got[1]
        padded = {c.name: bool(v) for c, v in zip(plain, got[2:], strict=True)}
        # a text column with no value to trim or blank is read as it is (filters reach the Parquet scan)
        view_cols = [f"r.{ident(c.name)}" if padded.get(c.name) is False else f"{v} AS {ident(c.name)}"
                     for c, v in zip(table.columns, typed_values, strict=True)]

        def view_sql(rejected_rids: str) -> str:
            where = f" WHERE r.{RID} NOT IN ({rejected_rids})" if n_reject else ""
            return (f"SELECT {canonical}{src_col}, {RID}, {future_of('')} AS {FUTURE_AT} FROM "
                    f"(SELECT {', '.join(view_cols)}{', r.' + SOURCE_ROW if has_source_row else ''}, r.{RID} "
                    f"FROM {source} AS r{where})")

        accepted_sql: str | None = view_sql(f"SELECT {RID} FROM read_parquet({literal(str(rejected_path))})")
        accepted_rows = f"({view_sql(rejected_now)})"
    else:
        loaded, max_future = con.execute(f"SELECT count(*), max({future_of('')}) FROM {t_name}").fetchone()
        accepted_sql = None
        keep = f" WHERE {RID} NOT IN ({rejected_now})" if n_reject else ""
        accepted_rows = f"(SELECT {canonical}{src_col}, {RID}, {future_of('')} AS {FUTURE_AT} FROM {t_name}{keep})"
    period_cols = [ident(c) for c in (table.period.columns if table.period else ()) if c in raw_types]
    clustered = table.period.kind if cluster_rows is not None and period_cols and loaded >= cluster_rows else None
    if clustered:
        key = (f"coalesce({', '.join(period_cols)})" if clustered == "at" else
               f"coalesce({period_cols[-1]}, 'infinity'::TIMESTAMP)" if len(period_cols) > 1
               else "'infinity'::TIMESTAMP")
        con.execute(f"COPY (SELECT *, {key} AS {PERIOD_KEY} FROM {accepted_rows} ORDER BY {PERIOD_KEY}, {RID}) "
                    f"TO {literal(str(accepted_path))} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)")
        accepted_sql = None
    elif not accepted_as_view:
        con.execute(f"COPY (SELECT * FROM {accepted_rows}) TO {literal(str(accepted_path))} "
                    f"(FORMAT parquet, COMPRESSION zstd)")
    step("accepted")

    # the rows with a problem, raw and typed, into pandas: their report rows are written as the reference does
    flag_cols = ", ".join(["_first"] + [c.flag for c in checks])
    typed_sel = ", ".join(f"k.{ident(c.name)} AS {ident(TYPED_PREFIX + c.name)}" for c in table.columns)
    flagged = con.execute(
        f"SELECT r.*, {typed_sel}, k.{FUTURE_AT}, {flag_cols}, k._reject FROM {source} AS r "
        f"JOIN {k_name} AS k USING ({RID}) ORDER BY {RID}" + ("" if n_flag else " LIMIT 0")
    ).df()
    for tmp in ((d_name, k_name) if accepted_as_view else (t_name, d_name, k_name)):
        con.execute(f"DROP TABLE {tmp}")
    step("problems")

    report.loaded = int(loaded)
    raw = flagged[[c for c, _ in raw_cols] + [RID]].reset_index(drop=True)
    problems = _Problems(table, raw, _row_keys(raw, table))
    typed = _typed_frame(flagged, table)
    if missing_required:
        add_missing_column_problems(problems, table, missing_required)
        report.status = "unusable"
    for c in checks:
        mask = flagged[c.flag].fillna(False).astype(bool).to_numpy()
        if not mask.any():
            continue
        idx = raw.index[mask]
        if c.kind == "wrong_type":
            add_wrong_type_problems(problems, idx, table.column(c.column), values=raw[c.column])
        elif c.kind in ("column", "row"):
            add_check_problems(problems, table, vocab, c.check, c.column, idx, typed)
        elif c.kind == "duplicate":
            keys = problems.keys
            for i in idx:
                first = flagged.at[i, "_first"]
                where = f"source row {int(first)}" if has_source_row else f"row {int(first)}"
                problems.add([i], c.column, "duplicate_key", f"duplicate key {keys.loc[i]} (first seen at {where})",
                             values=keys)
        elif c.kind == "foreign_key":
            values = typed[c.column]
            found = (parent_rejected(c.parent, c.parent_col, sorted({str(v) for v in values.loc[idx]}))
                     if parent_rejected is not None and c.parent is not None else {})
            add_foreign_key_problems(problems, idx, c.column, c.parent or "", c.parent_col or "", values, found)
        else:
            problems.add(idx, c.column, "missing_value", table.column(c.column).warn_if_null, severity="warn",
                         values=typed[c.column])

    rejected_idx = list(raw.index) if missing_required else sorted(problems.reasons)
    rejected = flagged.loc[rejected_idx, [c for c, _ in raw_cols] + [RID, FUTURE_AT]
                           + [TYPED_PREFIX + c.name for c in table.columns]].copy()
    rejected.insert(len(raw_cols), REASONS, ["; ".join(problems.reasons.get(int(i), [])) for i in rejected_idx])
    report.rejected = len(rejected)
    report.accepted = report.loaded - report.rejected
    frame = problems.frame()
    frame[RID] = raw.loc[problems.row_index, RID].to_numpy() if len(frame) else []
    report.problems = frame[PROBLEM_COLUMNS]
    if report.status != "unusable":
        report.status = "warnings" if len(frame) else "ok"
        if report.loaded and not report.accepted:
            report.status = "unusable"
            report.notes.append(explain_all_rejected(name, report.loaded, frame))
    if len(rejected):
        _write_rejected(con, rejected, rejected_path)
    return EngineTableResult(report=report, problems=frame,
                             accepted_path=None if accepted_sql else accepted_path,
                             accepted_sql=accepted_sql, clustered=clustered,
                             rejected_path=rejected_path if len(rejected) else None,
                             columns=[c for c, _ in raw_cols],
                             max_future_at=None if max_future is None else pd.Timestamp(max_future), steps=steps)


def _typed_frame(flagged: pd.DataFrame, table: Table) -> pd.DataFrame:
    """The typed columns of the flagged rows, named canonically, in the reference's pandas dtypes."""
    typed = pd.DataFrame(index=flagged.index)
    for col in table.columns:
        values = flagged[TYPED_PREFIX + col.name]
        typed[col.name] = values.astype(object).where(values.notna(), None).astype(PANDAS_DTYPES[col.dtype]) \
            if col.dtype in ("string", "int", "bool") else values.astype(PANDAS_DTYPES[col.dtype])
    return typed


def _write_rejected(con, rejected: pd.DataFrame, path: Path) -> None:
    """Rejected rows to Parquet: raw values as the source had them (object columns as text)."""
    frame = rejected.astype({c: "string" for c in rejected.columns if rejected[c].dtype == object})
    con.register("_rejected_frame", frame)
    try:
        con.execute(f"COPY (SELECT * FROM _rejected_frame) TO {literal(str(path))} (FORMAT parquet)")
    finally:
        con.unregister("_rejected_frame")
