"""Load a folder of CSV/Parquet exports into the canonical model with a mapping file.

A mapping (``params/sources/<name>.yaml``, documented in ``docs/mappings.md``) says which export file
feeds which canonical table, how source columns become canonical columns (a column name, a SQL
expression, or a constant), which files to join for columns that live elsewhere, which values to fix
(every fix is counted and reported), the source's sales-stage vocabulary, the custom fields each table keeps
beside its canonical columns (``custom_fields:``, each with a declared type, `crmlens.schema.CUSTOM_FIELD_TYPES`)
and, for exports with no dates, the export's as-of date (``as_of:``, read in SQL expressions as ``as_of()``).

Everything runs in an in-memory DuckDB database: the raw files become tables in the schema ``raw``
(every value read as text, plus ``_source_row``, the line number in the file), fixes are applied
there, and each canonical table is created in the main schema by one SELECT. Type conversion and all
rule checks happen afterwards in `crmlens.validate`, so an unreadable value is rejected with its row
rather than silently turned into an empty one.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Any, Literal

import duckdb
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crmlens.errors import SourceError
from crmlens.schema import SCHEMA, TABLE_NAMES, Vocabulary, custom_field_problem
from crmlens.validate import SOURCE_ROW, shorten


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


#: Encodings a CSV export may declare (``encoding:`` of a `files:` entry): name → Python codec. DuckDB reads
#: UTF-8, UTF-16 and Latin-1 itself; the others are converted to UTF-8 first (line numbers are kept).
ENCODINGS = {"utf-8": "utf-8-sig", "utf-16": "utf-16", "latin-1": "latin-1", "cp1252": "cp1252",
             "gbk": "gbk", "gb18030": "gb18030", "big5": "big5", "shift_jis": "shift_jis"}
_ENCODING_ALIASES = {"utf8": "utf-8", "utf-8-sig": "utf-8", "utf16": "utf-16", "latin1": "latin-1",
                     "iso-8859-1": "latin-1", "iso8859-1": "latin-1", "windows-1252": "cp1252", "gb2312": "gb18030",
                     "sjis": "shift_jis"}
_DUCKDB_ENCODINGS = {"utf-8": "utf-8", "utf-16": "utf-16", "latin-1": "latin-1"}


def encoding_name(value: str) -> str:
    """The canonical name of an encoding a `files:` entry declares (``UTF8`` → ``utf-8``); ValueError listing the
    accepted ones."""
    key = value.strip().lower().replace("_", "-")
    key = {"shift-jis": "shift_jis"}.get(key, key)
    key = _ENCODING_ALIASES.get(key, key)
    if key not in ENCODINGS:
        raise ValueError(f"encoding {value!r} is not supported; use one of: {', '.join(ENCODINGS)}")
    return key


class FileSpec(_Strict):
    """One export file."""

    path: str = Field(description="File name, relative to the source folder.")
    format: Literal["csv", "parquet"] | None = Field(None, description="Default: from the file extension.")
    delimiter: str = Field(",", description="CSV field separator.")
    encoding: str = Field("utf-8", description="CSV text encoding: " + ", ".join(ENCODINGS) + " (default utf-8).")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        return encoding_name(value)

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError(f"delimiter {value!r} must be one character, e.g. ',', ';', '|' or '\\t' (a tab)")
        return value


# ------------------------------------------------------------------------------------------ input files

def check_input_file(path: Path, what: str) -> None:
    """Raise `SourceError` naming `what` and `path` when it is not a readable, non-empty file (a folder, a file
    without read permission, a 0-byte file); the message says what to do."""
    if not path.exists():
        raise SourceError(f"{what}: {path} does not exist")
    if path.is_dir():
        raise SourceError(f"{what}: {path} is a folder, not a file; expected a CSV or Parquet file there "
                          f"(move the folder away, or point to the file inside it)")
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except PermissionError:
        raise SourceError(f"{what}: {path} cannot be read (permission denied); give your user read access "
                          f"(e.g. chmod a+r '{path}') or copy the file somewhere readable") from None
    except OSError as err:
        raise SourceError(f"{what}: {path} cannot be read ({err.strerror or err}); check the file") from None
    if path.stat().st_size == 0:
        raise SourceError(f"{what}: {path} is empty (0 bytes); export it again (a CSV needs at least its header "
                          f"line, a Parquet file its footer), or remove it if the source has no such data")


def check_parquet(path: Path, what: str) -> None:
    """`check_input_file`, then read the Parquet footer: a truncated or non-Parquet file raises `SourceError`."""
    check_input_file(path, what)
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError... for damaged files
        detail = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise SourceError(f"{what}: {path} is not a readable Parquet file ({detail}); it is truncated, damaged or "
                          f"not Parquet — export or copy it again") from None


def _open_text(path: Path, encoding: str) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")  # noqa: SIM115 - closed with the wrapper
    return io.TextIOWrapper(raw, encoding=encoding, newline="")


def _read_bytes(path: Path, limit: int | None = None) -> bytes:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as fh:
        return fh.read() if limit is None else fh.read(limit)


def _guess_encoding(data: bytes) -> str:
    """The probable encoding of text that is not UTF-8: UTF-16 (a byte-order mark, or NUL bytes), GB18030 (non-ASCII
    bytes in pairs, as Chinese text has them), else Windows-1252 / Latin-1 (single accented letters)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or data[:1000].count(0) > len(data[:1000]) // 4:
        return "utf-16"
    runs, run = [], 0  # lengths of the runs of non-ASCII bytes: Chinese characters come as pairs
    for b in data:
        if b >= 0x80:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    runs += [run] if run else []
    if runs and sum(r for r in runs if r % 2 == 0) >= 0.8 * sum(runs):
        try:
            data.decode("gb18030")
            return "gb18030"
        except UnicodeDecodeError:
            pass
    return "cp1252" if any(0x80 <= b <= 0x9f for b in data) else "latin-1"


def encoding_problem(path: Path, what: str, encoding: str, fix: str) -> str | None:
    """The message for a file that is not valid text in `encoding` (the line and byte of the first bad byte, the
    encoding it probably is, and `fix`: how to declare it); None when it decodes."""
    data = _read_bytes(path)
    try:
        data.decode(ENCODINGS[encoding])
        return None
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        bad = data[err.start:max(err.end, err.start + 1)].hex(" ").upper().replace(" ", " 0x")
        guess = _guess_encoding(data)
        return (f"{what}: {path} is not {encoding.upper()} text: line {line}, byte {err.start:,} (0x{bad}) cannot be "
                f"read. It is probably {guess}; {fix.format(guess=guess)}")


def row_shape_problem(path: Path, what: str, encoding: str, delimiter: str) -> str | None:
    """The message for the first line whose number of fields differs from the header's (a ragged row); None."""
    with _open_text(path, ENCODINGS[encoding]) as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return None
        expected = len(header)
        for record in reader:
            if record and len(record) != expected:
                shown = delimiter.join(record)
                shown = shown if len(shown) <= 80 else f"{shown[:80]}…"
                return (f"{what}: {path} line {reader.line_num} has "
                        f"{len(record)} fields where the header (line 1) has {expected} ({shown!r}); a value holding "
                        f"the delimiter {delimiter!r} must be quoted (\"...\"), or a field is missing or extra — "
                        f"fix that line and validate again")
    return None


def _mixed_newlines(path: Path) -> bool:
    """True when the file ends some lines with CR LF and others with LF alone (Excel edits of an export...)."""
    if path.suffix.lower() == ".gz":
        return False
    crlf = lf = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):  # a CR LF cut between two chunks only costs a check of the rows
            crlf += chunk.count(b"\r\n")
            lf += chunk.count(b"\n")
            if crlf and lf > crlf:
                return True
    return False


def header_fields(path: Path, what: str, encoding: str, delimiter: str | None) -> tuple[list[str], str]:
    """The header (line 1) of a CSV file and its delimiter (`delimiter`, or the most frequent of , ; tab | in the
    header). Duplicate names raise `SourceError` naming them."""
    data = _read_bytes(path, 1 << 16)
    try:
        text = data.decode(ENCODINGS[encoding])
    except UnicodeDecodeError as err:
        text = data[:err.start].decode(ENCODINGS[encoding], errors="ignore")
    first = text.splitlines()[0] if text.splitlines() else ""
    if delimiter is None:
        counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
        delimiter = max(counts, key=lambda d: (counts[d], d == ","))
    names = next(csv.reader([first], delimiter=delimiter), [])
    seen: dict[str, tuple[int, str]] = {}
    for i, name in enumerate(names, 1):
        key = name.strip().lower()
        if key in seen:
            j, other = seen[key]
            if other.strip() == name.strip():
                raise SourceError(f"{what}: {path} line 1 (the header) names column {name.strip()!r} twice (fields {j} "
                                  f"and {i}); rename or remove one so that every value has one column")
            raise SourceError(f"{what}: {path} line 1 (the header): {other!r} and {name!r} (fields {j} and {i}) both "
                              f"stand for column {key!r} (column names that differ only by case or spaces are the "
                              f"same column); rename or remove one")
        seen[key] = (i, name)
    return names, delimiter


def csv_reader(path: Path, what: str, *, delimiter: str | None = None, encoding: str = "utf-8",
               fix: str = "") -> tuple[str, Path | None]:
    """The DuckDB ``read_csv(...)`` of an export (every value as text), after checking the file; and a temporary
    UTF-8 copy to remove once read (for encodings DuckDB does not read itself), else None.

    Checks: a readable, non-empty file; no duplicate header name; mixed line endings (CR LF and LF) are read
    once every line is known to have the header's number of fields. `fix` says how to declare an encoding
    (``{guess}`` is replaced by the probable one)."""
    check_input_file(path, what)
    encoding = encoding_name(encoding)
    _, delimiter = header_fields(path, what, encoding, delimiter)
    temp: Path | None = None
    source = path
    if encoding not in _DUCKDB_ENCODINGS:
        fd, name = tempfile.mkstemp(prefix="crmlens-utf8-", suffix=".csv")
        temp = Path(name)
        try:
            with _open_text(path, ENCODINGS[encoding]) as src, os.fdopen(fd, "w", encoding="utf-8", newline="") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
        except UnicodeDecodeError:
            temp.unlink(missing_ok=True)
            raise SourceError(encoding_problem(path, what, encoding, fix) or f"{what}: {path} is not {encoding}") \
                from None
        source = temp
    options = [f"delim={_literal(delimiter)}", "skip=0"]  # the header is line 1 (the sniffer may guess otherwise)
    if encoding in _DUCKDB_ENCODINGS and encoding != "utf-8":
        options.append(f"encoding={_literal(_DUCKDB_ENCODINGS[encoding])}")
    if _mixed_newlines(source):
        problem = row_shape_problem(path, what, encoding, delimiter)
        if problem:
            raise SourceError(problem)
        options.append("strict_mode=false")  # every line has the header's fields: only the line ends differ
    sql = f"read_csv({_literal(str(source))}, all_varchar=true, header=true, {', '.join(options)})"
    return sql, temp


def read_error(path: Path, what: str, err: Exception, *, fmt: str, delimiter: str | None = None,
               encoding: str = "utf-8", fix: str = "") -> SourceError:
    """A `SourceError` for a file the engine failed to read: the cause found in the file when it can be (not valid
    text in its encoding, a ragged line, a damaged Parquet file, no permission), else the engine's first line."""
    try:
        if fmt == "parquet":
            check_parquet(path, what)
        else:
            check_input_file(path, what)
            problem = encoding_problem(path, what, encoding, fix)
            if problem is None:
                _, delim = header_fields(path, what, encoding, delimiter)
                problem = row_shape_problem(path, what, encoding, delim)
            if problem:
                return SourceError(problem)
    except SourceError as found:
        return found
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return SourceError(f"{what}: {path} cannot be read as {fmt}: {first[:300]}; check that the file is a complete "
                       f"{fmt.upper()} export")


#: How to declare an encoding, for files read through a mapping (`{guess}`: the probable encoding).
MAPPING_ENCODING_FIX = ("declare it in the mapping's files entry, e.g. {{path: ..., encoding: {guess}}} "
                        "(docs/mappings.md), or convert the file to UTF-8")


class Fix(_Strict):
    """A value fix applied to a raw file column before mapping; every changed row is counted."""

    file: str
    column: str
    replace: dict[str, str | None] = Field(description="old value → new value (null makes it empty).")
    reason: str = Field(description="Why the fix is right; printed in the validation report.")


class Join(_Strict):
    """A file joined to the table's main file (left join: every main row is kept exactly once)."""

    file: str
    using: str = Field(description="Column of the main file to join on.")
    right_column: str | None = Field(None, description="Column of the joined file, when its name differs.")


class ColumnSql(_Strict):
    sql: str = Field(description="A DuckDB SQL expression over the file's (and joined files') columns.")


class ColumnValue(_Strict):
    value: str | int | float | bool | None


ColumnSpec = str | ColumnSql | ColumnValue


class CustomField(_Strict):
    """A custom field: a value of the source kept beside the canonical columns, with a declared type."""

    type: str = Field(description="string, category, integer, number, boolean, timestamp or date.")
    column: str | None = Field(None, description="Source column (default: the field's own name).")
    sql: str | None = Field(None, description="A DuckDB SQL expression instead of a column.")

    def source(self, name: str) -> ColumnSpec:
        if self.column is not None and self.sql is not None:
            raise ValueError("give either column or sql, not both")
        return ColumnSql(sql=self.sql) if self.sql is not None else (self.column or name)


class TableMap(_Strict):
    """How one canonical table is built."""

    from_: str = Field(alias="from", description="Key of the main file under `files`.")
    join: list[Join] = Field(default_factory=list)
    distinct: bool = Field(False, description="Keep one row per distinct combination of the mapped columns.")
    where: str | None = Field(None, description="A DuckDB SQL condition on the main file's columns: only the rows "
                              "where it holds feed this table (e.g. an export's cancellation lines feed "
                              "`credit_notes`, the other lines `contracts`).")
    columns: dict[str, ColumnSpec]
    custom_fields: dict[str, str | CustomField] = Field(
        default_factory=dict,
        description="Extra columns kept with a declared type: `Name: type` (the source column of that name) "
                    "or `name: {type: ..., column: ...}` / `{type: ..., sql: ...}`.")

    def custom_types(self) -> dict[str, str]:
        """Custom field name → declared type."""
        return {n: f if isinstance(f, str) else f.type for n, f in self.custom_fields.items()}

    def custom_sources(self) -> dict[str, ColumnSpec]:
        """Custom field name → where its value comes from."""
        return {n: n if isinstance(f, str) else f.source(n) for n, f in self.custom_fields.items()}


class VocabularySpec(_Strict):
    stages: list[str]
    won_stage: str = "Won"
    lost_stage: str = "Lost"


class Mapping(_Strict):
    """A whole mapping file."""

    name: str
    description: str = ""
    as_of: date | None = Field(None, description="The export's 'today' (as the as_of parameter): analyses "
                               "default to it, and SQL expressions read it as as_of().")
    files: dict[str, FileSpec]
    vocabulary: VocabularySpec | None = None
    fixes: list[Fix] = Field(default_factory=list)
    tables: dict[str, TableMap]

    @field_validator("tables")
    @classmethod
    def _known_tables(cls, tables: dict[str, TableMap]) -> dict[str, TableMap]:
        for name, spec in tables.items():
            if name not in SCHEMA:
                raise ValueError(f"unknown canonical table {name!r}; known: {', '.join(TABLE_NAMES)}")
            model_cols = SCHEMA[name].column_names
            for col in spec.columns:
                if col not in model_cols:
                    raise ValueError(
                        f"tables.{name}.columns: {col!r} is not a column of {name}; "
                        f"its columns are: {', '.join(model_cols)} (to keep another column, declare it "
                        f"under tables.{name}.custom_fields)"
                    )
            seen: dict[str, str] = {}
            for field, declared in spec.custom_types().items():
                problem = custom_field_problem(SCHEMA[name], field, declared)
                if problem is None and field.lower() in seen:
                    problem = f"{field!r} and {seen[field.lower()]!r} differ only by case"
                custom = spec.custom_fields[field]
                if problem is None and not isinstance(custom, str):
                    try:
                        custom.source(field)
                    except ValueError as err:
                        problem = str(err)
                if problem is not None:
                    raise ValueError(f"tables.{name}.custom_fields.{field}: {problem}")
                seen[field.lower()] = field
        return tables

    def custom_fields(self) -> dict[str, dict[str, str]]:
        """Per table with custom fields: field name → declared type."""
        return {name: spec.custom_types() for name, spec in self.tables.items() if spec.custom_fields}

    def vocab(self) -> Vocabulary:
        if self.vocabulary is None:
            return Vocabulary()
        v = self.vocabulary
        return Vocabulary(stages=tuple(v.stages), won_stage=v.won_stage, lost_stage=v.lost_stage)


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file; problems raise `SourceError` naming the file and the field."""
    path = Path(path)
    if path.is_dir():
        raise SourceError(f"--mapping: {path} is a folder, not a mapping file; give the YAML file "
                          f"(e.g. params/sources/maven_crm.yaml), and the export folder as --source")
    if not path.is_file():
        raise SourceError(f"mapping file {path} does not exist; mappings live in params/sources/*.yaml")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise SourceError(f"mapping file {path} is not UTF-8 text (byte {err.start:,}); save it as UTF-8") from None
    except OSError as err:
        raise SourceError(f"mapping file {path} cannot be read ({err.strerror or err})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SourceError(f"mapping file {path} is not valid YAML{where}: {problem}; fix that line (indentation, "
                          f"a missing ':' or an unquoted special character are the usual causes)") from None
    if not isinstance(data, dict):
        raise SourceError(f"mapping file {path} must hold a mapping with name, files and tables (docs/mappings.md), "
                          f"not {type(data).__name__ if data is not None else 'nothing'}")
    try:
        mapping = Mapping.model_validate(data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"])
            if e["type"] == "extra_forbidden":
                lines.append(f"  {loc}: unknown key {str(e['loc'][-1])!r} (a typo? docs/mappings.md lists the keys "
                             f"of each section)")
            elif e["type"] == "missing":
                lines.append(f"  {loc}: required key missing")
            else:
                got = e.get("input")
                shown = f" (got {shorten(repr(got))})" if got is not None and not isinstance(got, dict) else ""
                lines.append(f"  {loc}: {e['msg']}{shown}")
        raise SourceError(f"mapping file {path} is not valid:\n" + "\n".join(lines)) from None
    for key in [f.file for f in mapping.fixes] + [t.from_ for t in mapping.tables.values()] + [
        j.file for t in mapping.tables.values() for j in t.join
    ]:
        if key not in mapping.files:
            raise SourceError(
                f"mapping file {path}: file key {key!r} is used but not declared under 'files' "
                f"(declared: {', '.join(mapping.files)})"
            )
    return mapping


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _read_files(con: duckdb.DuckDBPyConnection, folder: Path, mapping: Mapping) -> dict[str, list[str]]:
    """Load every declared file into raw.<key>; return each file's column names."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    columns: dict[str, list[str]] = {}
    for key, spec in mapping.files.items():
        path = folder / spec.path
        what = f"mapping '{mapping.name}', files.{key}"
        if not path.exists():
            present = ", ".join(sorted(p.name for p in folder.iterdir())) if folder.is_dir() else "nothing"
            raise SourceError(f"source {folder}: file {spec.path!r} (mapping '{mapping.name}', files.{key}) "
                              f"does not exist; the folder has: {present}")
        fmt = spec.format or ("parquet" if path.suffix.lower() == ".parquet" else "csv")
        fix = (f"declare it in the mapping: files.{key}: {{{{path: {spec.path}, encoding: {{guess}}}}}} "
               f"(docs/mappings.md), or convert the file to UTF-8")
        temp = None
        try:
            if fmt == "csv":
                reader, temp = csv_reader(path, what, delimiter=spec.delimiter, encoding=spec.encoding, fix=fix)
                select = f"SELECT row_number() OVER () + 1 AS {SOURCE_ROW}, * FROM {reader}"
            else:
                check_parquet(path, what)
                reader = f"read_parquet({_literal(str(path))}, file_row_number=true)"
                select = f"SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS {SOURCE_ROW} FROM {reader}"
            try:
                con.execute(f"CREATE OR REPLACE TABLE raw.{_ident(key)} AS {select}")
            except duckdb.Error as err:
                raise read_error(path, what, err, fmt=fmt, delimiter=spec.delimiter, encoding=spec.encoding,
                                 fix=fix) from None
        finally:
            if temp is not None:
                temp.unlink(missing_ok=True)
        columns[key] = [r[0] for r in con.execute(f"DESCRIBE raw.{_ident(key)}").fetchall()]
        names = [c for c in columns[key] if c != SOURCE_ROW]
        if fmt == "csv" and len(names) == 1:
            other = next((d for d in (";", "\t", "|", ",") if d != spec.delimiter and d in names[0]), None)
            if other is not None:
                raise SourceError(f"{what}: {path} line 1 (the header) is one field, {shorten(names[0])!r}: the file "
                                  f"separates its fields with {other!r}, not {spec.delimiter!r}; add "
                                  f"delimiter: {other!r} to files.{key} in the mapping")
    return columns


def _apply_fixes(con: duckdb.DuckDBPyConnection, mapping: Mapping, columns: dict[str, list[str]]) -> list[dict]:
    applied = []
    for fix in mapping.fixes:
        if fix.column not in columns[fix.file]:
            raise SourceError(f"mapping '{mapping.name}': fix on {fix.file}.{fix.column}: no such column; "
                              f"{fix.file} has: {', '.join(c for c in columns[fix.file] if c != SOURCE_ROW)}")
        col, tbl = _ident(fix.column), f"raw.{_ident(fix.file)}"
        for old, new in fix.replace.items():
            (rows,) = con.execute(f"SELECT count(*) FROM {tbl} WHERE {col} = ?", [old]).fetchone()
            if rows:
                con.execute(f"UPDATE {tbl} SET {col} = ? WHERE {col} = ?", [new, old])
            applied.append({"file": fix.file, "column": fix.column, "from": old, "to": new,
                            "rows": int(rows), "reason": fix.reason})
    return applied


def _build_table(con: duckdb.DuckDBPyConnection, mapping: Mapping, name: str, spec: TableMap,
                 columns: dict[str, list[str]]) -> None:
    available = set(columns[spec.from_]) | {c for j in spec.join for c in columns[j.file]}

    def expr(section: str, target: str, source: ColumnSpec) -> str:
        if isinstance(source, str):
            if source not in available:
                files = [spec.from_] + [j.file for j in spec.join]
                listing = "; ".join(f"{f}: {', '.join(c for c in columns[f] if c != SOURCE_ROW)}" for f in files)
                near = [c for c in sorted(available) if c.strip().lower() == source.strip().lower()]
                hint = (f"; did you mean {near[0]!r} (the header differs by case or spaces: write it exactly)"
                        if near else "")
                raise SourceError(f"mapping '{mapping.name}': tables.{name}.{section}.{target}: source column "
                                  f"{source!r} not found{hint} (available — {listing})")
            owner = spec.from_ if source in columns[spec.from_] else next(
                j.file for j in spec.join if source in columns[j.file])
            return f"{_ident(owner)}.{_ident(source)} AS {_ident(target)}"
        if isinstance(source, ColumnSql):
            return f"({source.sql}) AS {_ident(target)}"
        return f"{_literal(source.value)} AS {_ident(target)}"

    exprs = [expr("columns", canonical, source) for canonical, source in spec.columns.items()]
    exprs += [expr("custom_fields", field, source) for field, source in spec.custom_sources().items()]
    if not spec.distinct:
        exprs.append(f"{_ident(spec.from_)}.{SOURCE_ROW} AS {SOURCE_ROW}")
    joins = "".join(
        f" LEFT JOIN raw.{_ident(j.file)} AS {_ident(j.file)} ON {_ident(spec.from_)}.{_ident(j.using)} = "
        f"{_ident(j.file)}.{_ident(j.right_column or j.using)}"
        for j in spec.join
    )
    order = "" if spec.distinct else f" ORDER BY {_ident(spec.from_)}.{SOURCE_ROW}"
    where = f" WHERE ({spec.where})" if spec.where else ""
    sql = (f"SELECT {'DISTINCT ' if spec.distinct else ''}{', '.join(exprs)} "
           f"FROM raw.{_ident(spec.from_)} AS {_ident(spec.from_)}{joins}{where}{order}")
    try:
        con.execute(f"CREATE OR REPLACE TABLE main.{_ident(name)} AS {sql}")
    except duckdb.Error as err:
        raise SourceError(f"mapping '{mapping.name}': cannot build table {name}: {err}") from None
    if spec.join and not spec.distinct:
        (n_main,) = con.execute(f"SELECT count(*) FROM raw.{_ident(spec.from_)} AS {_ident(spec.from_)}"
                                f"{where}").fetchone()
        (n_out,) = con.execute(f"SELECT count(*) FROM main.{_ident(name)}").fetchone()
        if n_main != n_out:
            raise SourceError(
                f"mapping '{mapping.name}': tables.{name}: joining "
                f"{', '.join(j.file for j in spec.join)} turned {n_main} rows of {spec.from_} into {n_out}: "
                f"the join column is not unique in the joined file"
            )
    _audit_try_casts(con, mapping, name, spec, joins, where)


#: The mapped connection's table of values a mapping's TRY_CAST could not read (reported as warnings).
CAST_LOSSES = "_crmlens_cast_losses"


def try_casts(sql: str) -> list[tuple[str, str]]:
    """The ``TRY_CAST(<expression> AS <type>)`` calls of a SQL expression, as (expression, type)."""
    found = []
    upper = sql.upper()
    start = upper.find("TRY_CAST")
    while start >= 0:
        open_at = sql.find("(", start)
        if open_at < 0 or sql[start + len("TRY_CAST"):open_at].strip():
            start = upper.find("TRY_CAST", start + 1)
            continue
        depth, quote, i = 0, None, open_at
        while i < len(sql):
            c = sql[i]
            if quote:
                quote = None if c == quote else quote
            elif c in "'\"":
                quote = c
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        inside = sql[open_at + 1:i]
        cut = inside.upper().rfind(" AS ")
        if cut > 0:
            found.append((inside[:cut].strip(), inside[cut + 4:].strip()))
        start = upper.find("TRY_CAST", i)
    return found


def _audit_try_casts(con: duckdb.DuckDBPyConnection, mapping: Mapping, name: str, spec: TableMap, joins: str,
                     where: str) -> None:
    """Record, per table column, the source values a ``TRY_CAST`` of its SQL could not read (present, not blank,
    cast to NULL): they would otherwise vanish as empty values. The store reports each as a warning naming the
    value, the source line and the expression."""
    con.execute(f"CREATE TABLE IF NOT EXISTS main.{CAST_LOSSES} (table_name VARCHAR, column_name VARCHAR, "
                f"source_row BIGINT, value VARCHAR, expression VARCHAR)")
    sources: dict[str, ColumnSpec] = {**spec.columns, **spec.custom_sources()}
    main = _ident(spec.from_)
    for target, source in sources.items():
        if not isinstance(source, ColumnSql):
            continue
        for arg, sql_type in try_casts(source.sql):
            text = f"CAST(({arg}) AS VARCHAR)"
            lost = f"({text} IS NOT NULL AND trim({text}) <> '' AND TRY_CAST(({arg}) AS {sql_type}) IS NULL)"
            condition = f"{where} AND {lost}" if where else f" WHERE {lost}"
            try:
                con.execute(f"INSERT INTO main.{CAST_LOSSES} SELECT {_literal(name)}, {_literal(target)}, "
                            f"{main}.{SOURCE_ROW}, {text}, {_literal(f'TRY_CAST({arg} AS {sql_type})')} "
                            f"FROM raw.{main} AS {main}{joins}{condition}")
            except duckdb.Error:  # an expression that only makes sense in its context (an aggregate...): not audited
                continue


def build_mapped_source(folder: str | Path, mapping: Mapping) -> tuple[duckdb.DuckDBPyConnection, list[dict]]:
    """Create an in-memory DuckDB holding the canonical tables built from `folder` by `mapping`.

    Returns the connection and the list of fixes applied (file, column, from, to, rows, reason).
    """
    folder = Path(folder)
    if folder.is_file():
        raise SourceError(f"--source: {folder} is a file, not a folder; with --mapping give the folder that holds "
                          f"the export files the mapping names")
    if not folder.is_dir():
        raise SourceError(f"source folder {folder} does not exist")
    con = duckdb.connect()
    # as_of() in SQL expressions: the export's 'today' declared by the mapping (a clear error when it has none)
    if mapping.as_of is not None:
        con.execute(f"CREATE MACRO as_of() AS TIMESTAMP {_literal(mapping.as_of.isoformat())}")
    else:
        con.execute("CREATE MACRO as_of() AS CAST(error(" + _literal(
            f"mapping '{mapping.name}' uses as_of() but declares no as_of (add e.g. 'as_of: 2019-01-01')")
            + ") AS TIMESTAMP)")
    columns = _read_files(con, folder, mapping)
    fixes = _apply_fixes(con, mapping, columns)
    for name, spec in mapping.tables.items():
        _build_table(con, mapping, name, spec, columns)
    return con, fixes
