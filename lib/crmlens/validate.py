"""Validate loaded tables against the canonical model, keeping every rejected row with its reason.

The flow for one table (`validate_table`):

1. **columns** — a missing required column makes the table unusable (every row is rejected with that
   reason); a missing optional column is added empty and noted; columns outside the model are ignored
   and noted. Custom fields a mapping declares (`crmlens.schema.Table.with_custom_fields`) are columns too:
   kept after the canonical ones, checked for their declared type only (a value that cannot be read
   rejects the row, as for a canonical column).
2. **types** — each column is coerced to its canonical type row by row; a value that cannot be read
   (``"abc"`` in an amount) rejects its row, naming the column and the value.
3. **rules** — pandera checks built from `crmlens.schema`: not-null, allowed values, ranges, timestamps
   not after the as-of time, and the table's row rules (e.g. ``closed_at`` not before ``created_at``).
4. **keys** — duplicate keys (the first occurrence is kept) and foreign keys that resolve to no
   parent row.

Nothing is dropped silently: ``loaded == accepted + rejected`` for every table, and every problem is a
row of the report with table, column, row key, source row, value, rule and message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa_types
import pyarrow.compute as pc

from crmlens.schema import PANDAS_DTYPES, SCHEMA, Column, Table, Vocabulary, load_order

if TYPE_CHECKING:  # pandera is imported where the pandas path validates (17 MB and ~0.3 s per process)
    import pandera.pandas as pa

#: Meta column carried from the source: the row's line (CSV) or position (Parquet), 1-based.
SOURCE_ROW = "_source_row"
#: Column added to rejected rows: every reason the row was rejected, joined by "; ".
REASONS = "_reasons"

PROBLEM_COLUMNS = ["table", "column", "row_key", "source_row", "value", "rule", "severity", "message"]

TRUE_WORDS = {"true", "t", "yes", "y", "1", "1.0"}
FALSE_WORDS = {"false", "f", "no", "n", "0", "0.0"}

#: Returns the valid keys of a parent table column (a pyarrow array or any iterable), or None = not checked.
ParentKeys = Callable[[str, str], "pa_types.Array | set[Any] | None"]
#: (parent table, parent column, values) → {value: reasons} for the values whose parent row exists but was rejected.
ParentRejected = Callable[[str, str, list[str]], dict[str, str]]


@dataclass
class TableReport:
    """What validation found in one table."""

    table: str
    loaded: int = 0
    accepted: int = 0
    rejected: int = 0
    status: str = "ok"  # ok | warnings | unusable | absent
    problems: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PROBLEM_COLUMNS))
    notes: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.status not in ("unusable",)

    def problem_counts(self) -> list[dict[str, Any]]:
        """Problems grouped by column, rule and severity, with their number of rows."""
        if self.problems.empty:
            return []
        grouped = (
            self.problems.fillna({"column": ""})
            .groupby(["column", "rule", "severity"], sort=True)
            .agg(rows=("rule", "size"), message=("message", "first"))
            .reset_index()
        )
        return [
            {"column": r.column or None, "rule": r.rule, "severity": r.severity, "rows": int(r.rows),
             "example": r.message}
            for r in grouped.itertuples()
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "status": self.status,
            "notes": list(self.notes),
            "problems": self.problem_counts(),
        }


@dataclass
class TableResult:
    """A validated table: the accepted rows (canonical types), the rejected rows and the report."""

    accepted: pd.DataFrame
    rejected: pd.DataFrame
    report: TableReport


@dataclass
class ValidationReport:
    """The validation report of a whole source (or slice)."""

    source: str
    tables: dict[str, TableReport] = field(default_factory=dict)
    fixes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no table that is present is unusable."""
        return all(t.usable for t in self.tables.values())

    @property
    def problems(self) -> pd.DataFrame:
        frames = [t.problems for t in self.tables.values() if not t.problems.empty]
        if not frames:
            return pd.DataFrame(columns=PROBLEM_COLUMNS)
        return pd.concat(frames, ignore_index=True)

    def to_dict(self, max_problems: int | None = 1000) -> dict[str, Any]:
        """JSON-ready form: per-table counts, fixes applied, and the problem rows (capped)."""
        problems = self.problems
        total = len(problems)
        if max_problems is not None:
            problems = problems.head(max_problems)
        records = json.loads(problems.to_json(orient="records", date_format="iso", default_handler=str))
        return {
            "source": self.source,
            "ok": self.ok,
            "tables": {name: rep.to_dict() for name, rep in self.tables.items()},
            "fixes": list(self.fixes),
            "n_problems": total,
            "problems": records,
        }

    def to_text(self, max_problems: int = 20) -> str:
        """A plain-text report for terminals: one line per table, then the problems by rule."""
        lines = [f"Validation of {self.source}", ""]
        width = max([len(n) for n in self.tables] + [5])
        lines.append(f"{'table':<{width}}  {'loaded':>9} {'accepted':>9} {'rejected':>9}  status")
        for name, rep in self.tables.items():
            if rep.status == "absent":  # not in this source: no counts, never zeros
                lines.append(f"{name:<{width}}  {'–':>9} {'–':>9} {'–':>9}  absent")
                continue
            lines.append(
                f"{name:<{width}}  {rep.loaded:>9,} {rep.accepted:>9,} {rep.rejected:>9,}  {rep.status}"
            )
        if any(rep.status == "absent" for rep in self.tables.values()):
            lines += ["(absent: not in this source — the analyses that need the table say so)"]
        if self.fixes:
            lines += ["", "Fixes applied by the mapping:"]
            for fix in self.fixes:
                lines.append(f"  {fix['file']}.{fix['column']}: {fix['from']!r} → {fix['to']!r} "
                             f"in {fix['rows']:,} rows ({fix['reason']})")
        notes = [(n, note) for n, r in self.tables.items() for note in r.notes if r.status != "absent"]
        if notes:
            lines += ["", "Notes:"]
            lines += [f"  {n}: {note}" for n, note in notes]
        counted = [(n, c) for n, r in self.tables.items() for c in r.problem_counts()]
        if counted:
            lines += ["", "Problems (rows per table, column and rule):"]
            for n, c in counted:
                col = f".{c['column']}" if c["column"] else ""
                lines.append(f"  {c['severity']:<6} {n}{col} [{c['rule']}]: {c['rows']:,} rows — e.g. {c['example']}")
        problems = self.problems
        if len(problems):
            lines += ["", f"First {min(max_problems, len(problems))} of {len(problems):,} problem rows:"]
            for p in problems.head(max_problems).itertuples():
                lines.append(f"  {p.message}")
        lines += ["", "OK: every table can be used." if self.ok else
                  "NOT OK: a table cannot be used (see 'unusable' above)."]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------- coercion

def _is_blank(values: pd.Series) -> pd.Series:
    """True where a value is missing: null, NaN, or an empty/whitespace string."""
    blank = values.isna()
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        stripped = values.astype("string").str.strip()
        blank = blank | (stripped == "").fillna(False).astype(bool)
    return blank.astype(bool)


def coerce_column(values: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    """Convert `values` to the canonical type of `column`.

    Returns the converted series and a boolean mask of rows whose value was present but could not be
    read as that type. Blank strings become missing values.
    """
    target = PANDAS_DTYPES[column.dtype]
    if str(values.dtype) == target:
        if column.dtype == "float":  # typed floats: infinity is not a value (NaN is missing, as in pandas)
            infinite = pd.Series(np.isinf(values.to_numpy(dtype="float64", na_value=np.nan)), index=values.index)
            return values.mask(infinite), infinite
        return values, pd.Series(False, index=values.index)
    blank = _is_blank(values)
    if column.dtype == "string":
        out = values.astype("string").str.strip()
        out = out.mask(blank)
        return out.astype("string"), pd.Series(False, index=values.index)
    if column.dtype in ("int", "float"):
        if pd.api.types.is_bool_dtype(values.dtype):
            numeric = values.astype("float64")
        else:
            numeric = pd.to_numeric(values.where(~blank), errors="coerce")
        infinite = pd.Series(np.isinf(numeric.to_numpy(dtype="float64", na_value=np.nan)), index=values.index)
        numeric = numeric.mask(infinite)  # 'inf', '-inf', '1e999': not a number a CRM can hold
        bad = numeric.isna() & ~blank
        if column.dtype == "int":
            fractional = numeric.notna() & (numeric != np.floor(numeric))
            bad = bad | fractional
            out = numeric.where(~bad).astype("Float64").astype("Int64")
        else:
            out = numeric.astype("float64")
        return out, bad.astype(bool)
    if column.dtype in ("timestamp", "date"):
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            out = values.dt.tz_convert("UTC").dt.tz_localize(None)
        elif pd.api.types.is_datetime64_any_dtype(values.dtype):
            out = values
        else:
            text = values.where(~blank).astype("string")
            out = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True).dt.tz_localize(None)
        bad = out.isna() & ~blank
        out = out.astype(PANDAS_DTYPES[column.dtype])
        if column.dtype == "date":
            out = out.dt.normalize()
        return out, bad.astype(bool)
    if column.dtype == "bool":
        if pd.api.types.is_bool_dtype(values.dtype):
            return values.astype("boolean"), pd.Series(False, index=values.index)
        text = values.where(~blank).astype("string").str.strip().str.lower()
        out = pd.Series(pd.NA, index=values.index, dtype="boolean")
        out = out.mask(text.isin(TRUE_WORDS).fillna(False).astype(bool), True)
        out = out.mask(text.isin(FALSE_WORDS).fillna(False).astype(bool), False)
        bad = out.isna() & ~blank
        return out.astype("boolean"), bad.astype(bool)
    raise TypeError(f"unknown canonical type {column.dtype!r}")  # pragma: no cover


def type_name(column: Column) -> str:
    """The type a message names: a custom field's declared type (e.g. ``integer``), else the canonical one."""
    return column.custom_type or column.dtype


_THOUSANDS_RE = re.compile(r"[-+]?\d{1,3}([,'\u00a0\u202f ]\d{3})+(\.\d+)?")
_ISO_DAY_RE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T].*)?")
_DMY_RE = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{2}|\d{4})(?:[ T].*)?")
_NOT_FINITE = {"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity", "nan", "+nan", "-nan"}


def wrong_type_explain(column: Column, value: Any) -> str:
    """Why `value` cannot be read as the type of `column`, and what to do: "not a valid <type>", plus a hint for
    the usual cases (an impossible date, a day/month/year date, thousands separators, infinity...)."""
    base = f"not a valid {type_name(column)}"
    if not isinstance(value, str):
        if column.dtype == "float" and isinstance(value, (float, np.floating)) and np.isinf(value):
            return f"{base}: an infinite value is not a number a CRM can hold; leave the cell empty if unknown"
        return base
    text = value.strip()
    if column.dtype in ("int", "float"):
        number = _float_or_none(text)
        if text.lower() in _NOT_FINITE or (number is not None and not np.isfinite(number)):
            return f"{base}: infinite and not-a-number values are not accepted; leave the cell empty if unknown"
        if _THOUSANDS_RE.fullmatch(text):
            return (f"{base}: it has thousands separators; remove them (in a mapping: "
                    f"{{sql: \"replace(<column>, ',', '')\"}})")
        if column.dtype == "int" and number is not None:
            return f"{base}: not a whole number"
        return base
    if column.dtype in ("timestamp", "date"):
        iso = _ISO_DAY_RE.fullmatch(text)
        if iso:
            y, m, d = (int(g) for g in iso.groups())
            if not 1 <= m <= 12:
                return f"impossible date: there is no month {m} ({base}; check the month and the day)"
            return (f"impossible date: {y:04d}-{m:02d} has no day {d} ({base}; check the day, or the export's "
                    f"date format)")
        dmy = _DMY_RE.fullmatch(text)
        if dmy:
            sep = dmy.group(2)
            first = "%m" if int(dmy.group(1)) <= 12 and int(dmy.group(3)) > 12 else "%d"
            second = "%d" if first == "%m" else "%m"
            year = "%Y" if len(dmy.group(4)) == 4 else "%y"
            fmt = f"{first}{sep}{second}{sep}{year}"
            return (f"{base}: dates are read as ISO 8601 (2026-09-30); read this one with a mapping column such as "
                    f"{{sql: \"strptime(<column>, '{fmt}')\"}}")
        return f"{base}: dates are read as ISO 8601, e.g. 2026-09-30 or 2026-09-30 14:05:00"
    if column.dtype == "bool":
        return f"{base}: use true/false, yes/no, t/f or 1/0"
    return base


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def add_wrong_type_problems(problems: _Problems, index: Iterable[int], column: Column,
                            values: pd.Series | None = None) -> None:
    """The "wrong_type" problem rows of `column` at `index`, each explained for its value (`wrong_type_explain`)."""
    idx = [int(i) for i in index]
    source = values if values is not None else problems.raw[column.name]
    groups: dict[str, list[int]] = {}
    for i, value in zip(idx, source.loc[idx].tolist(), strict=True):
        groups.setdefault(wrong_type_explain(column, value), []).append(i)
    for explain, rows in groups.items():
        problems.add(rows, column.name, "wrong_type", explain, values=values)


def empty_column(column: Column, index: pd.Index) -> pd.Series:
    """An all-missing series of the canonical type of `column`."""
    return pd.Series([None] * len(index), index=index, dtype=object).astype(PANDAS_DTYPES[column.dtype])


def key_array(values: Iterable[Any]) -> pa_types.Array:
    """Distinct non-null keys as a pyarrow string array (fast membership tests with `is_member`)."""
    if isinstance(values, pd.Series):
        return pa_types.array(values.dropna().astype(str).unique(), type=pa_types.string())
    return pa_types.array(sorted({str(v) for v in values if v is not None and not pd.isna(v)}), type=pa_types.string())


def is_member(values: pd.Series, valid: pa_types.Array | Iterable[Any]) -> np.ndarray:
    """True where a value is in `valid` (nulls: False). Uses Arrow, fast for large key sets."""
    keys = valid if isinstance(valid, pa_types.Array) else key_array(valid)
    arr = pa_types.array(values.astype("string").to_numpy(dtype=object, na_value=None), type=pa_types.string())
    return pc.is_in(arr, value_set=keys.cast(pa_types.string())).to_numpy(zero_copy_only=False).astype(bool)


# ------------------------------------------------------------------------------------ pandera schema

def pandera_schema(table: Table, vocab: Vocabulary, as_of: pd.Timestamp | None) -> pa.DataFrameSchema:
    """The pandera schema checking the rules of `table` on a frame already in canonical types."""
    import pandera.pandas as pa

    columns: dict[str, pa.Column] = {}
    for col in table.columns:
        checks: list[pa.Check] = []
        if col.allowed is not None:
            allowed = list(vocab.resolve(col.allowed) if isinstance(col.allowed, str) else col.allowed)
            checks.append(pa.Check(lambda s, a=allowed: s.isin(a), name="allowed_values"))
        if col.min is not None:
            checks.append(pa.Check(lambda s, m=col.min: s >= m, name="min"))
        if col.max is not None:
            checks.append(pa.Check(lambda s, m=col.max: s <= m, name="max"))
        if col.not_future and as_of is not None:
            checks.append(pa.Check(lambda s: s <= as_of, name="not_in_future"))
        columns[col.name] = pa.Column(
            PANDAS_DTYPES[col.dtype], checks=checks, nullable=col.nullable, required=True, coerce=False,
        )
    row_checks = [
        pa.Check(lambda df, r=rule: r.check(df, vocab), name=rule.name)
        for rule in table.rules
    ]
    return pa.DataFrameSchema(columns, checks=row_checks, strict=False)


# ---------------------------------------------------------------------------------------- helpers

def _row_keys(df: pd.DataFrame, table: Table) -> pd.Series:
    """A printable key per row: the key columns joined by '|' (or '?' where a key part is missing)."""
    parts = [df[k].astype("string").fillna("?") if k in df else pd.Series("?", index=df.index)
             for k in table.key]
    keys = parts[0]
    for part in parts[1:]:
        keys = keys + "|" + part
    return keys.astype(str)


#: Characters of a value shown in a message (a longer one is cut, saying how long it was).
MESSAGE_VALUE_CHARS = 80
#: Characters of a value kept in a problem row's ``value`` (the rejected row keeps it whole).
PROBLEM_VALUE_CHARS = 200


def shorten(text: str, limit: int = MESSAGE_VALUE_CHARS) -> str:
    """`text`, or its first `limit` characters followed by "… (N characters)" when it is longer."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def _describe(value: Any) -> str:
    if value is None or (not isinstance(value, (list, tuple, np.ndarray)) and pd.isna(value)):
        return "empty"
    if isinstance(value, pd.Timestamp):
        return repr(value.isoformat())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str) and len(value) > MESSAGE_VALUE_CHARS:
        return f"{value[:MESSAGE_VALUE_CHARS]!r}… ({len(value):,} characters)"
    return repr(value)


class _Problems:
    """Collects problem rows for one table."""

    def __init__(self, table: Table, raw: pd.DataFrame, keys: pd.Series):
        self.table, self.raw, self.keys = table, raw, keys
        self.rows: list[dict[str, Any]] = []
        self.row_index: list[int] = []  # the frame index of each problem row
        self.reasons: dict[int, list[str]] = {}
        self.unreadable: set[tuple[str | None, int]] = set()  # (column, row) whose value had a wrong type

    def add(self, index: Iterable[int], column: str | None, rule: str, explain: str,
            severity: str = "reject", values: pd.Series | None = None) -> None:
        idx = [int(i) for i in index]
        if not idx:
            return
        # the rows' values, keys and source rows read at once (a per-row lookup made a 100k-problem export slow)
        if values is not None:
            found = values.loc[idx].tolist()
        elif column is not None and column in self.raw:
            found = self.raw.loc[idx, column].tolist()
        else:
            found = [None] * len(idx)
        keys = self.keys.loc[idx].tolist()
        src = self.raw.get(SOURCE_ROW, None)
        sources = src.loc[idx].tolist() if src is not None else [None] * len(idx)
        where = f"{self.table.name}" + (f".{column}" if column else "")
        reason = f"{column + ': ' if column else ''}{explain} [{rule}]"
        for i, value, key, source in zip(idx, found, keys, sources, strict=True):
            source_row = None if source is None or pd.isna(source) else int(source)
            at = f"row key {shorten(str(key))}" + (f", source row {source_row}" if source_row is not None else "")
            shown = _describe(value) if column else (shorten(str(value), 4 * MESSAGE_VALUE_CHARS)
                                                     if value is not None else "")
            body = f"{shown} — {explain}" if shown else explain
            self.rows.append({
                "table": self.table.name, "column": column, "row_key": shorten(str(key), PROBLEM_VALUE_CHARS),
                "source_row": source_row,
                "value": None if value is None or (not isinstance(value, (list, tuple, np.ndarray)) and pd.isna(value))
                else shorten(str(value), PROBLEM_VALUE_CHARS),
                "rule": rule, "severity": severity, "message": f"{where} ({at}): {body} [{rule}]",
            })
            self.row_index.append(i)
            if rule == "wrong_type":
                self.unreadable.add((column, i))
            if severity == "reject":
                self.reasons.setdefault(i, []).append(reason)

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows, columns=PROBLEM_COLUMNS)
        return frame.astype({"source_row": "Int64"})


def _pandera_failures(schema: pa.DataFrameSchema, df: pd.DataFrame) -> pd.DataFrame:
    import pandera.pandas as pa

    try:
        schema.validate(df, lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
        cases = cases[cases["index"].notna()]
        if "check" not in cases:
            return cases.drop_duplicates(subset=["index"])
        # a column check fails once per column; a row rule (DataFrameSchema) is listed once per row
        row_level = cases["schema_context"].eq("DataFrameSchema") if "schema_context" in cases else False
        subset_cols = cases.assign(column=cases["column"].where(~row_level, None))
        keep = ~subset_cols.duplicated(subset=["index", "column", "check"])
        return cases[keep.to_numpy()]
    return pd.DataFrame(columns=["schema_context", "column", "check", "failure_case", "index"])


# ------------------------------------------------------------------------------------------- main

def validate_table(
    name: str,
    raw: pd.DataFrame,
    *,
    vocab: Vocabulary | None = None,
    as_of: pd.Timestamp | None = None,
    parent_keys: ParentKeys | None = None,
    custom_fields: Mapping[str, str] | None = None,
    parent_rejected: ParentRejected | None = None,
) -> TableResult:
    """Validate one loaded table against the canonical model.

    `raw` may hold strings or already-typed values, extra columns and a `_source_row` meta column.
    `parent_keys(table, column)` returns the set of valid keys of a parent table (None = not checked).
    `custom_fields` (name → declared type, `crmlens.schema.CUSTOM_FIELD_TYPES`) are kept after the canonical
    columns and checked for their type like them. The input frame is not modified.
    """
    table = SCHEMA[name].with_custom_fields(custom_fields or {})
    vocab = vocab or Vocabulary()
    rename, header_notes = match_headers(table, raw.columns, f"table {name}")
    raw = raw.reset_index(drop=True).rename(columns=rename)
    keys = _row_keys(raw, table)
    problems = _Problems(table, raw, keys)
    report = TableReport(table=name, loaded=len(raw), notes=header_notes)

    missing_required = check_columns(table, list(raw.columns), report)
    if missing_required:
        add_missing_column_problems(problems, table, missing_required)
        report.status = "unusable"
        return _finish(table, raw, raw.iloc[0:0], problems, report)

    typed = pd.DataFrame(index=raw.index)
    for col in table.columns:
        if col.name not in raw:
            typed[col.name] = empty_column(col, raw.index)
            continue
        converted, bad = coerce_column(raw[col.name], col)
        typed[col.name] = converted
        if bad.any():
            add_wrong_type_problems(problems, raw.index[bad.to_numpy()], col)

    # rows with unreadable values are judged on their other columns too (the value becomes empty
    # for the rule checks, so a not-null rule would fire a second time: skip not_nullable for them)
    failures = _pandera_failures(pandera_schema(table, vocab, as_of), typed)
    for (column, check), group in failures.groupby(["column", "check"], dropna=False, sort=False):
        idx = [int(i) for i in group["index"]]
        col = None if pd.isna(column) else str(column)
        if check == "not_nullable":
            idx = [i for i in idx if (col, i) not in problems.unreadable]
        add_check_problems(problems, table, vocab, str(check), col, idx, typed, str(as_of))

    # key checks
    key_blank = typed[list(table.key)].isna().any(axis=1)
    dup = typed.duplicated(subset=list(table.key), keep="first") & ~key_blank
    if dup.any():
        first_src = _first_source_rows(raw, typed, table)
        for i in typed.index[dup.to_numpy()]:
            problems.add([i], ",".join(table.key), "duplicate_key",
                         f"duplicate key {keys.loc[i]} (first seen at {first_src.get(keys.loc[i], 'another row')})",
                         values=keys)

    if parent_keys is not None:
        for col, parent, parent_col in table.foreign_keys:
            valid = parent_keys(parent, parent_col)
            if valid is None:
                continue
            values = typed[col.name]
            dangling = values.notna().to_numpy() & ~is_member(values, valid)
            if dangling.any():
                idx = typed.index[dangling]
                found = (parent_rejected(parent, parent_col, sorted({str(v) for v in values.loc[idx]}))
                         if parent_rejected is not None else {})
                add_foreign_key_problems(problems, idx, col.name, parent, parent_col, values, found)

    null_warnings = [c for c in table.columns if c.warn_if_null]
    for col in null_warnings:
        missing = typed[col.name].isna()
        if missing.any():
            problems.add(typed.index[missing.to_numpy()], col.name, "missing_value",
                         col.warn_if_null, severity="warn", values=typed[col.name])

    rejected_idx = sorted(problems.reasons)
    accepted = typed.drop(index=rejected_idx)
    if SOURCE_ROW in raw:
        accepted = accepted.assign(**{SOURCE_ROW: raw.loc[accepted.index, SOURCE_ROW].astype("Int64")})
    return _finish(table, raw, accepted.reset_index(drop=True), problems, report)


def match_headers(table: Table, columns: Iterable[str], where: str) -> tuple[dict[str, str], list[str]]:
    """Headers that stand for a model column but differ from its name by case or surrounding white space
    (``Amount``, `` amount ``): returns {header: column} to read them as that column, and a note saying so.
    Two headers standing for the same column (``Amount`` and ``amount``) are ambiguous: a `SchemaError` naming
    both and `where` (the file or table)."""
    from crmlens.errors import SchemaError

    by_name: dict[str, list[str]] = {}
    for c in columns:
        if c != SOURCE_ROW:
            by_name.setdefault(str(c).strip().lower(), []).append(str(c))
    rename: dict[str, str] = {}
    for col in table.column_names:
        found = by_name.get(col.lower(), [])
        if len(found) > 1:
            raise SchemaError(f"{where}: the headers {' and '.join(repr(f) for f in found)} both stand for column "
                              f"{col!r} of {table.name} (they differ only by case or spaces); rename or remove all "
                              f"but one, then validate again")
        if found and found[0] != col:
            rename[found[0]] = col
    notes = []
    if rename:
        notes.append("headers read as model columns (they differ from the column name only by case or white space): "
                     + ", ".join(f"{h!r} as {c}" for h, c in rename.items())
                     + "; rename them in the export to match exactly")
    return rename, notes


def explain_all_rejected(table: str, loaded: int, problems: pd.DataFrame) -> str:
    """The note of a table whose every row was rejected: which column(s) and rule(s) did it, with an example."""
    rejects = problems[problems["severity"] == "reject"].fillna({"column": ""})
    counts = rejects.groupby(["column", "rule"], sort=False).agg(rows=("rule", "size"), message=("message", "first"))
    counts = counts.sort_values("rows", ascending=False, kind="stable")
    every = counts[counts["rows"] >= loaded]
    shown = every if len(every) else counts.head(1)
    parts = []
    for (column, rule), row in shown.iterrows():
        where = f"{table}.{column}" if column else table
        scope = "every row" if row["rows"] >= loaded else f"{int(row['rows']):,} rows"
        if rule == "not_null":
            parts.append(f"{where} is empty in {scope}, but the column is required [not_null]")
        else:
            parts.append(f"{where} [{rule}] in {scope}, e.g. {shorten(str(row['message']), 240)}")
    return (f"unusable: all {loaded:,} rows were rejected — " + "; ".join(parts)
            + ". Fix that column in the export (or its mapping) and validate again.")


def check_columns(table: Table, columns: list[str], report: TableReport) -> list[str]:
    """Note the columns outside the model (ignored) and the optional ones the source lacks (left empty);
    return the required columns it lacks (which make the table unusable)."""
    extra = [c for c in columns if c not in table.column_names and c != SOURCE_ROW]
    custom = [f"{name} ({declared})" for name, declared in table.custom_fields.items() if name in columns]
    if custom:
        report.notes.append(f"custom fields kept: {', '.join(custom)}")
    if extra:
        report.notes.append(f"ignored columns not in the model: {', '.join(map(str, extra))}")
    missing_optional = [c.name for c in table.columns if c.name not in columns and c.nullable]
    if missing_optional:
        report.notes.append(f"optional columns absent from the source, left empty: {', '.join(missing_optional)}")
    return [c.name for c in table.columns if c.name not in columns and not c.nullable]


def add_missing_column_problems(problems: _Problems, table: Table, missing: list[str]) -> None:
    """Every row rejected for each missing required column (the table is unusable)."""
    expected = ", ".join(table.column_names)
    for col in missing:
        problems.add(problems.raw.index, col, "missing_column",
                     f"required column {col!r} is missing (table {table.name} needs: {expected})",
                     values=pd.Series(None, index=problems.raw.index, dtype=object))


def add_foreign_key_problems(problems: _Problems, index: Iterable[int], column: str, parent: str, parent_col: str,
                             values: pd.Series, rejected: dict[str, str] | None = None) -> None:
    """The "foreign_key" problem rows: a value no accepted `parent` row has. When the parent row exists but was
    rejected (`rejected`: value → its reasons) the message says so, with the parent's reasons."""
    idx = [int(i) for i in index]
    rejected = rejected or {}
    groups: dict[str, list[int]] = {}
    for i, value in zip(idx, values.loc[idx].tolist(), strict=True):
        reason = rejected.get(str(value).strip()) if value is not None and not pd.isna(value) else None
        explain = (f"its {parent} row ({parent_col} equal to this value) was rejected ({shorten(reason, 200)}); "
                   f"fix that {parent} row and this one is accepted too" if reason
                   else f"no {parent} row has {parent_col} equal to this value")
        groups.setdefault(explain, []).append(i)
    for explain, rows in groups.items():
        problems.add(rows, column, "foreign_key", explain, values=values)


def add_check_problems(problems: _Problems, table: Table, vocab: Vocabulary, check: str, column: str | None,
                       idx: Iterable[int], typed: pd.DataFrame, as_of_text: str = "") -> None:
    """The problem rows of one failed check (a column check, or a row rule showing its columns' values)."""
    idx = list(idx)
    rule, explain = _explain_check(table, check, column, vocab, as_of_text)
    if rule.startswith("row:"):
        cols = next(r.columns for r in table.rules if r.name == rule[4:])
        shown = typed.loc[idx, list(cols)].astype("string").fillna("empty")
        values = shown.apply(lambda r: ", ".join(f"{c}={v}" for c, v in r.items()), axis=1)
        problems.add(idx, None, rule[4:], explain, values=values)
    else:
        problems.add(idx, column, rule, explain, values=typed.get(column, None))


def _first_source_rows(raw: pd.DataFrame, typed: pd.DataFrame, table: Table) -> dict[str, str]:
    keys = _row_keys(typed, table)
    firsts = ~typed.duplicated(subset=list(table.key), keep="first")
    if SOURCE_ROW in raw:
        return {k: f"source row {int(s)}" for k, s in zip(keys[firsts], raw.loc[firsts, SOURCE_ROW], strict=True)}
    return {k: f"row {i + 1}" for k, i in zip(keys[firsts], typed.index[firsts], strict=True)}


def _explain_check(table: Table, check: str, column: str | None, vocab: Vocabulary,
                   as_of_text: str = "") -> tuple[str, str]:
    """Map a pandera check name to (our rule name, a sentence saying what is accepted)."""
    for rule in table.rules:
        if check == rule.name:
            return f"row:{rule.name}", f"broken rule: {rule.description}"
    col = table.column(column) if column and column in table.column_names else None
    if check == "not_nullable":
        return "not_null", "empty, but the column is required"
    if check == "allowed_values" and col is not None and col.allowed is not None:
        allowed = vocab.resolve(col.allowed) if isinstance(col.allowed, str) else col.allowed
        return "allowed_values", f"not an allowed value; allowed: {', '.join(allowed)}"
    if check == "min" and col is not None and col.min is not None:
        return "min", f"below the minimum {col.min:g}"
    if check == "max" and col is not None and col.max is not None:
        return "max", f"above the maximum {col.max:g}"
    if check == "not_in_future":
        return "not_in_future", f"in the future (after the as-of time {as_of_text})"
    if check.startswith("dtype"):
        return "wrong_type", f"not of type {type_name(col) if col else '?'}"
    return check, f"failed check {check}"


def _finish(table: Table, raw: pd.DataFrame, accepted: pd.DataFrame, problems: _Problems,
            report: TableReport) -> TableResult:
    rejected_idx = sorted(problems.reasons)
    if report.status == "unusable":
        rejected_idx = list(raw.index)
    rejected = raw.loc[rejected_idx].copy()
    rejected[REASONS] = ["; ".join(problems.reasons.get(int(i), [])) for i in rejected_idx]
    report.problems = problems.frame()
    report.accepted = len(accepted)
    report.rejected = len(rejected)
    if report.status != "unusable":
        report.status = "warnings" if len(report.problems) else "ok"
        if report.loaded and not report.accepted:
            report.status = "unusable"
            report.notes.append(explain_all_rejected(table.name, report.loaded, report.problems))
    assert report.loaded == report.accepted + report.rejected, "validation lost rows"
    return TableResult(accepted=accepted, rejected=rejected.reset_index(drop=True), report=report)


def parent_key_lookup(results: Mapping[str, TableResult], fallback: ParentKeys | None = None) -> ParentKeys:
    """Keys of a parent table: its accepted rows when it was validated (in `results`), else `fallback`
    (e.g. the whole parent table in the engine when only a slice is loaded), else None (not checked)."""

    def keys(parent: str, parent_col: str) -> pa_types.Array | set[Any] | None:
        if parent in results:
            got = results[parent].accepted
            return key_array(got[parent_col]) if parent_col in got else None
        return fallback(parent, parent_col) if fallback else None

    return keys


def parent_rejected_lookup(results: Mapping[str, TableResult]) -> ParentRejected:
    """Reasons of the parent rows that exist but were rejected (for "parent X was rejected" messages)."""

    def rejected(parent: str, parent_col: str, values: list[str]) -> dict[str, str]:
        if parent not in results:
            return {}
        got = results[parent].rejected
        if parent_col not in got or got.empty:
            return {}
        keys = got[parent_col].astype("string").str.strip()
        wanted = set(values)
        out: dict[str, str] = {}
        for key, reason in zip(keys.tolist(), got[REASONS].tolist(), strict=True):
            if key is not None and not pd.isna(key) and key in wanted and key not in out:
                out[key] = str(reason)
        return out

    return rejected


def validate_tables(
    tables: Mapping[str, pd.DataFrame],
    *,
    source: str = "source",
    vocab: Vocabulary | None = None,
    as_of: pd.Timestamp | None = None,
    external_keys: ParentKeys | None = None,
    custom_fields: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[dict[str, TableResult], ValidationReport]:
    """Validate several tables in dependency order, checking foreign keys against accepted parents.

    A foreign key to a table that is not among `tables` is checked with `external_keys` when given
    (e.g. the full parent table in the engine when only a period slice is loaded), else not checked.
    `custom_fields` gives per table the custom fields to keep (see `validate_table`).
    """
    custom_fields = custom_fields or {}
    results: dict[str, TableResult] = {}
    report = ValidationReport(source=source)
    parent_keys = parent_key_lookup(results, external_keys)

    for name in load_order():
        if name not in tables:
            continue
        result = validate_table(name, tables[name], vocab=vocab, as_of=as_of, parent_keys=parent_keys,
                                custom_fields=custom_fields.get(name), parent_rejected=parent_rejected_lookup(results))
        results[name] = result
        report.tables[name] = result.report
    return results, report
