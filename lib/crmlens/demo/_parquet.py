"""Turning generated numpy columns into canonical Arrow columns and writing them atomically to Parquet.

Columns are described lazily (`Ids`, `Labels`, `Times`, `Numbers`, `Strings`) and converted one chunk
of rows at a time, so a 10-million-row table never exists as a whole in Arrow memory.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crmlens.schema import SCHEMA

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us"),
    "date": pa.timestamp("us"),
}
#: Identifier columns with few distinct values (worth dictionary-encoding in Parquet).
_LOW_CARDINALITY_IDS = {"region_id", "team_id", "product_id", "rep_id", "owner_rep_id", "manager_rep_id",
                        "campaign_id"}
ROW_GROUP_ROWS = 1 << 20


def _validity(valid: np.ndarray | None, sl: slice) -> pa.Buffer | None:
    if valid is None:
        return None
    return pa.py_buffer(np.packbits(valid[sl], bitorder="little"))


def id_strings(prefix: str, numbers: np.ndarray, width: int, valid: np.ndarray | None = None) -> pa.Array:
    """`prefix` + zero-padded `numbers` as an Arrow string array (null where `valid` is False)."""
    value = np.asarray(numbers).astype(np.uint32)
    n = len(value)
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    size = len(head) + width
    chars = np.empty((size, n), dtype=np.uint8)
    chars[: len(head)] = head[:, None]
    for pos in range(size - 1, len(head) - 1, -1):
        quotient = value // 10
        np.add(value - quotient * 10, 48, out=chars[pos], casting="unsafe")
        value = quotient
    data = np.ascontiguousarray(chars.T)
    offsets = np.arange(0, (n + 1) * size, size, dtype=np.int32)
    nulls = 0 if valid is None else int(n - np.count_nonzero(valid))
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data),
                                       _validity(valid, slice(None)) if nulls else None, nulls)


def id_width(count: int, minimum: int = 5) -> int:
    """Digits used for identifiers of a table with `count` rows."""
    return max(minimum, len(str(max(count, 1))))


@dataclass(frozen=True)
class Ids:
    """Identifiers `prefix` + zero-padded number; `numbers` None means 1..n (the table's own key)."""

    prefix: str
    width: int
    numbers: np.ndarray | None = None
    valid: np.ndarray | None = None

    def __call__(self, sl: slice) -> pa.Array:
        numbers = np.arange(sl.start + 1, sl.stop + 1) if self.numbers is None else self.numbers[sl]
        return id_strings(self.prefix, numbers, self.width, None if self.valid is None else self.valid[sl])


@dataclass(frozen=True)
class Labels:
    """Strings from a vocabulary by code (null where `valid` is False)."""

    vocabulary: tuple[str, ...]
    codes: np.ndarray
    valid: np.ndarray | None = None

    def __call__(self, sl: slice) -> pa.Array:
        codes = pa.array(self.codes[sl].astype(np.int32), mask=None if self.valid is None else ~self.valid[sl])
        return pa.array(self.vocabulary, pa.string()).take(codes)


@dataclass(frozen=True)
class Times:
    """Timestamps in microseconds (null where `valid` is False)."""

    values: np.ndarray
    valid: np.ndarray | None = None

    def __call__(self, sl: slice) -> pa.Array:
        mask = None if self.valid is None else ~self.valid[sl]
        return pa.array(self.values[sl].astype(np.int64), pa.timestamp("us"), mask=mask)


@dataclass(frozen=True)
class Numbers:
    """Floats (rounded to cents), ints or bools (null where `valid` is False)."""

    values: np.ndarray
    valid: np.ndarray | None = None

    def __call__(self, sl: slice) -> pa.Array:
        values = self.values[sl]
        if values.dtype.kind == "f":
            values = np.round(values, 2)
        elif values.dtype.kind in "iu":
            values = values.astype(np.int64)
        return pa.array(values, mask=None if self.valid is None else ~self.valid[sl])


@dataclass(frozen=True)
class Strings:
    """A ready Arrow string array (small tables: names, summaries)."""

    array: pa.Array

    def __call__(self, sl: slice) -> pa.Array:
        return self.array.slice(sl.start, sl.stop - sl.start)


Column = Ids | Labels | Times | Numbers | Strings


#: Canonical columns the demo company does not keep: it infers churn from purchases (no recorded churn date),
#: as a contract business does; a column written all empty would say "recorded, and nobody churned".
NOT_IN_DEMO = {"accounts": ("churned_at",)}


def arrow_schema(table_name: str) -> pa.Schema:
    """The Arrow schema of a canonical table as the demo writes it (column order, types and nullability from
    crmlens.schema; without the columns of `NOT_IN_DEMO`)."""
    table = SCHEMA[table_name]
    omitted = NOT_IN_DEMO.get(table_name, ())
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.dtype], nullable=c.nullable) for c in table.columns
                      if c.name not in omitted])


def _dictionary_columns(table_name: str) -> list[str]:
    table = SCHEMA[table_name]
    return [c.name for c in table.columns
            if c.dtype == "string" and (not c.name.endswith("_id") or c.name in _LOW_CARDINALITY_IDS)]


def write_table(out: Path, table_name: str, n_rows: int, columns: Mapping[str, Column],
                chunk_rows: int = ROW_GROUP_ROWS, progress: bool = False) -> int:
    """Write a canonical table to `<out>/<table_name>.parquet` atomically; return its row count.

    `columns` must name exactly the table's canonical columns, in order. Rows are converted and written
    `chunk_rows` at a time (one Parquet row group each). Same input, same bytes: no timestamps or other
    varying metadata are written.
    """
    started = time.perf_counter()
    schema = arrow_schema(table_name)
    if list(columns) != schema.names:
        raise ValueError(f"{table_name}: columns {list(columns)} differ from the canonical {schema.names}")
    path = out / f"{table_name}.parquet"
    tmp = out / f".{table_name}.parquet.{os.getpid()}.tmp"
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd", compression_level=3,
                              use_dictionary=_dictionary_columns(table_name), write_statistics=True,
                              data_page_version="2.0") as writer:
            for start in range(0, max(n_rows, 1), chunk_rows):
                sl = slice(start, min(start + chunk_rows, n_rows))
                arrays = [columns[f.name](sl) for f in schema]
                for f, a in zip(schema, arrays, strict=True):
                    if not f.nullable and a.null_count:
                        raise ValueError(f"{table_name}.{f.name}: {a.null_count} nulls in a required column")
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=chunk_rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if progress:
        print(f"demo: {table_name:<26} {n_rows:>12,} rows  {time.perf_counter() - started:6.1f}s",
              file=sys.stderr)
    return n_rows
