"""What a run ran on and with: data fingerprint (per table: rows + content hash), code version (git commit,
dirty flag, a hash of the library and of each notebook's cells), package versions."""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from crmlens import __version__, data, paths

#: Packages whose versions the manifest records (the ones that can change a number or a report).
PACKAGES = ("crmlens", "pandas", "numpy", "pyarrow", "duckdb", "ibis-framework", "pandera", "pydantic", "plotly",
            "prophet", "papermill", "nbclient", "nbconvert", "ipykernel", "jupyter-client", "dask", "distributed",
            "playwright", "xlsxwriter", "python-pptx")


def _table_hash_sql(backend: str, relation: str) -> str | None:
    """SQL giving (rows, order-independent content hash) of a relation, for engines we know."""
    if backend == "duckdb":
        return f"SELECT count(*) AS n, coalesce(sum(hash(x)::HUGEINT), 0)::VARCHAR AS h FROM ({relation}) AS x"
    if backend == "postgres":
        return (f"SELECT count(*) AS n, coalesce(sum(('x' || substr(md5(x::text), 1, 15))::bit(60)::bigint::numeric),"
                f" 0)::text AS h FROM ({relation}) AS x")
    return None


def table_fingerprint(con: Any, name: str) -> dict[str, Any]:
    """``{"rows": n, "hash": sha256}`` of a canonical table's content (independent of row order)."""
    import ibis

    expr = data.table_expr(con, name)
    sql = _table_hash_sql(con.name, str(ibis.to_sql(expr, dialect=con.name)))
    if sql is not None:
        row = con.raw_sql(sql).fetchone() if con.name == "duckdb" else _fetch_one(con, sql)
        rows, digest = int(row[0]), str(row[1])
    else:  # any other engine: hash the table's Arrow data in a stable order
        import pyarrow as pa

        table = expr.to_pyarrow()
        table = table.sort_by([(c, "ascending") for c in table.column_names])
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        rows, digest = table.num_rows, hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()
    return {"rows": rows, "hash": hashlib.sha256(f"{name}:{rows}:{digest}".encode()).hexdigest()}


def _fetch_one(con: Any, sql: str) -> tuple[Any, ...]:
    with con.raw_sql(sql) as cur:
        return cur.fetchone()


def data_fingerprint(con: Any) -> dict[str, dict[str, Any]]:
    """Per canonical table of the source: rows and content hash. Same data ⇒ same fingerprint."""
    return {name: table_fingerprint(con, name) for name in data.available_tables(con)}


def _files_hash(files: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(str(f.relative_to(root)).encode())
        h.update(b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()


def library_hash() -> str:
    """sha256 of the library's Python sources (a code change without a version bump still changes it)."""
    root = Path(__file__).resolve().parents[1]
    return _files_hash(list(root.rglob("*.py")), root)


def notebook_hash(path: str | Path) -> str:
    """sha256 of a notebook's cells (type, tags, source) — not of outputs or execution metadata."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cells = [(c.cell_type, sorted(c.get("metadata", {}).get("tags", [])), c.source) for c in nb.cells]
    return hashlib.sha256(repr(cells).encode()).hexdigest()


def git_state(root: Path | None = None) -> dict[str, Any]:
    """``{"git_commit": sha or None, "git_dirty": bool or None}`` of the project checkout."""
    root = root or paths.PROJECT_ROOT
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=10, check=True).stdout
        return {"git_commit": commit, "git_dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}


def code_version(notebooks: list[Path]) -> dict[str, Any]:
    """The code a run used: crmlens version, git state, library hash, per-notebook hash."""
    return {"crmlens_version": __version__, **git_state(), "library_hash": library_hash(),
            "notebooks": {Path(p).stem: notebook_hash(p) for p in notebooks}}


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape the results."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def environment() -> dict[str, str]:
    return {"python": platform.python_version(), "platform": platform.platform(), "executable": sys.executable}
