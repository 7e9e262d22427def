"""Where the project's folders are: one place for every path the library uses.

The project root is, in order of precedence:

1. the folder named by the environment variable ``CRMLENS_HOME``;
2. the nearest folder at or above the current directory holding a ``pyproject.toml`` for the project
   ``crmlens``;
3. the source tree this package is imported from (``lib/crmlens/../..``) when it holds that file;
4. the current directory.

The constants are computed once, at import; `find_project_root` computes the root afresh.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from pathlib import Path

from crmlens.errors import ParameterError, RunError

#: Environment variable that, when set, names the project root.
HOME_ENV = "CRMLENS_HOME"
#: Environment variable that, when set, names the folder the source ``demo`` reads and `crmlens demo` writes
#: (default ``data/demo``): e.g. the tiny demo for a quick check (`make test` runs the notebooks on it).
DEMO_ENV = "CRMLENS_DEMO_DIR"
PROJECT_NAME = "crmlens"


def _is_project_root(folder: Path) -> bool:
    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        return False
    try:
        with pyproject.open("rb") as f:
            return tomllib.load(f).get("project", {}).get("name") == PROJECT_NAME
    except (OSError, tomllib.TOMLDecodeError):
        return False


def find_project_root(start: Path | str | None = None) -> Path:
    """The CRM Lens project root (see the module docstring), searching upwards from `start` (default: CWD)."""
    home = os.environ.get(HOME_ENV, "").strip()
    if home:
        root = Path(home).expanduser().resolve()
        if not root.is_dir():
            raise ParameterError(
                f"{HOME_ENV}: {home!r} is not a folder; set it to the CRM Lens project folder "
                "(the one holding params/ and pyproject.toml), or unset it"
            )
        return root
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if _is_project_root(folder):
            return folder
    source_tree = Path(__file__).resolve().parents[2]
    if _is_project_root(source_tree):
        return source_tree
    return here


def display_path(path: Path | str) -> str:
    """`path` relative to the project root when it lies inside it (for messages), else as given."""
    p = Path(path)
    try:
        return p.resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(p)


#: Characters an id may keep in a file name besides letters and digits (any script: 华东 stays 华东).
_SAFE_PUNCTUATION = frozenset(" ._-")
#: Longest id kept as it is in a file name.
_SAFE_MAX = 80


def safe_component(value: object) -> str:
    """`value` (a region id, a period, a notebook name...) as one safe path component.

    Ordinary ids are kept unchanged (``East``, ``APAC``, ``all``, ``2026-Q3``, ``2026-07-01..2026-09-30``,
    ``North America``, ``华东``). Any other value — with a slash, a backslash, a control character, ``..``, a
    leading dot, trailing space or dot, or longer than 80 characters — has the characters replaced by ``_`` and a
    short hash of the original appended, so that two distinct ids never share a folder and no id can name a
    place outside the folder it is joined to (``../escaped`` becomes ``escaped-75a9a607``)."""
    text = str(value)
    ordinary = (0 < len(text) <= _SAFE_MAX and text == text.strip() and not text.startswith(".")
                and not text.endswith(".") and all(c.isalnum() or c in _SAFE_PUNCTUATION for c in text))
    if ordinary:
        return text
    cleaned = "".join(c if (c.isalnum() or c in "_-") else "_" for c in text)[:60].strip("_") or "id"
    return f"{cleaned}-{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def ensure_inside(root: Path | str, path: Path | str) -> Path:
    """`path`, after checking that it lies inside `root` (both resolved, symbolic links followed); a path that
    would escape it raises `RunError` — every file a run writes goes through this check."""
    base = Path(root).resolve()
    target = Path(path).resolve()
    if target != base and base not in target.parents:
        raise RunError(f"refusing to write {path}: it lies outside the outputs folder {base} (an id used in a file "
                       f"name must go through crmlens.paths.safe_component)")
    return Path(path)


PROJECT_ROOT: Path = find_project_root()
PARAMS_DIR: Path = PROJECT_ROOT / "params"
SOURCES_DIR: Path = PARAMS_DIR / "sources"
DATA_DIR: Path = PROJECT_ROOT / "data"
DEMO_DIR: Path = (Path(os.environ[DEMO_ENV].strip()).expanduser().resolve() if os.environ.get(DEMO_ENV, "").strip()
                  else DATA_DIR / "demo")
OUTPUTS_DIR: Path = PROJECT_ROOT / "outputs"
#: Set by `crmlens run` for its kernels: the run's folder (a notebook finds earlier runs beside it).
RUN_DIR_ENV = "CRMLENS_RUN_DIR"
DOCS_DIR: Path = PROJECT_ROOT / "docs"
NOTEBOOKS_DIR: Path = PROJECT_ROOT / "notebooks"


def earlier_run_records(pattern: str) -> list[tuple[Path, dict]]:
    """The JSON records matching `pattern` (a glob under the runs' folder, e.g. ``*/East/*/forecast.json``) that
    earlier runs kept: in the runs beside this one (`RUN_DIR_ENV`'s folder, this run's own left out), or in
    `OUTPUTS_DIR` outside a run. (path, record) pairs; files that cannot be read or are not a JSON object are
    skipped."""
    import json

    here = os.environ.get(RUN_DIR_ENV)
    root = Path(here).parent if here else OUTPUTS_DIR
    found = []
    for path in root.glob(pattern):
        if here and path.is_relative_to(Path(here)):
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            found.append((path, record))
    return found


__all__ = [
    "DATA_DIR",
    "DEMO_DIR",
    "DEMO_ENV",
    "DOCS_DIR",
    "HOME_ENV",
    "NOTEBOOKS_DIR",
    "OUTPUTS_DIR",
    "PARAMS_DIR",
    "PROJECT_ROOT",
    "RUN_DIR_ENV",
    "SOURCES_DIR",
    "display_path",
    "ensure_inside",
    "find_project_root",
    "safe_component",
]
