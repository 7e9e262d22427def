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

import os
import tomllib
from pathlib import Path

from crmlens.errors import ParameterError

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
    "find_project_root",
]
