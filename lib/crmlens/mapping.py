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

from datetime import date
from pathlib import Path
from typing import Any, Literal

import duckdb
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crmlens.errors import SourceError
from crmlens.schema import SCHEMA, TABLE_NAMES, Vocabulary, custom_field_problem
from crmlens.validate import SOURCE_ROW


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FileSpec(_Strict):
    """One export file."""

    path: str = Field(description="File name, relative to the source folder.")
    format: Literal["csv", "parquet"] | None = Field(None, description="Default: from the file extension.")
    delimiter: str = Field(",", description="CSV field separator.")


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
    if not path.is_file():
        raise SourceError(f"mapping file {path} does not exist; mappings live in params/sources/*.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise SourceError(f"mapping file {path} is not valid YAML: {err}") from None
    try:
        mapping = Mapping.model_validate(data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"])
            lines.append(f"  {loc}: {e['msg']}")
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
        if not path.is_file():
            present = ", ".join(sorted(p.name for p in folder.iterdir())) if folder.is_dir() else "nothing"
            raise SourceError(f"source {folder}: file {spec.path!r} (mapping '{mapping.name}', files.{key}) "
                              f"does not exist; the folder has: {present}")
        fmt = spec.format or ("parquet" if path.suffix.lower() == ".parquet" else "csv")
        if fmt == "csv":
            reader = (f"read_csv({_literal(str(path))}, all_varchar=true, header=true, "
                      f"delim={_literal(spec.delimiter)})")
            select = f"SELECT row_number() OVER () + 1 AS {SOURCE_ROW}, * FROM {reader}"
        else:
            reader = f"read_parquet({_literal(str(path))}, file_row_number=true)"
            select = f"SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS {SOURCE_ROW} FROM {reader}"
        try:
            con.execute(f"CREATE OR REPLACE TABLE raw.{_ident(key)} AS {select}")
        except duckdb.Error as err:
            raise SourceError(f"source {folder}: cannot read {spec.path} as {fmt}: {err}") from None
        columns[key] = [r[0] for r in con.execute(f"DESCRIBE raw.{_ident(key)}").fetchall()]
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
                raise SourceError(f"mapping '{mapping.name}': tables.{name}.{section}.{target}: source column "
                                  f"{source!r} not found (available — {listing})")
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


def build_mapped_source(folder: str | Path, mapping: Mapping) -> tuple[duckdb.DuckDBPyConnection, list[dict]]:
    """Create an in-memory DuckDB holding the canonical tables built from `folder` by `mapping`.

    Returns the connection and the list of fixes applied (file, column, from, to, rows, reason).
    """
    folder = Path(folder)
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
