"""The task matrix of a run: notebooks × regions × periods, every task's parameters checked before any
kernel starts (a bad region, period or option fails the whole run at once and runs nothing)."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from crmlens import data, paths
from crmlens.errors import ParameterError
from crmlens.params import Params, load_params
from crmlens.periods import latest_complete_period, period_range

#: Analysis notebooks: notebooks/NN_area.ipynb (dashboards live in notebooks/dashboards/ and are not run).
NOTEBOOK_PATTERN = "[0-9][0-9]_*.ipynb"
#: Parameters the run sets per task; the others come from defaults, --params FILE and the CLI.
MATRIX_PARAMS = ("region", "period")
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


@dataclass(frozen=True)
class Task:
    """One notebook for one region and period, with the full parameters it receives."""

    notebook: str  # stem, e.g. "02_sales_funnel"
    path: str  # the notebook file
    region: str
    period: str
    parameters: dict[str, Any] = field(hash=False, compare=False)

    @property
    def id(self) -> str:
        """``region/period/notebook``: also the task's place under the run directory."""
        return f"{self.region}/{self.period}/{self.notebook}"

    @property
    def slug(self) -> str:
        """The id as one file name (for the task's record in .tasks/)."""
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.id.replace("/", "__"))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **asdict(self)}


@dataclass
class Plan:
    """What a run will do: the tasks, and the inputs that identify them."""

    tasks: list[Task]
    regions: list[str]
    periods: list[str]
    notebooks: list[Path]
    base: dict[str, Any]  # the parameters shared by every task (after defaults and overrides)
    source: str
    mapping: str | None


def find_notebooks(pattern: str | None = None, folder: Path | None = None) -> list[Path]:
    """The analysis notebooks matching `pattern` (a glob on the file name or stem, comma-separated for several;
    default: all of notebooks/NN_*.ipynb), in name order. None matching is a ParameterError listing them."""
    folder = folder or paths.NOTEBOOKS_DIR
    every = sorted(folder.glob(NOTEBOOK_PATTERN))
    if not pattern or pattern.strip() in ("all", "*"):
        chosen = every
    else:
        globs = [g.strip() for g in pattern.split(",") if g.strip()]
        chosen = [p for p in every
                  if any(fnmatch.fnmatch(p.name, g) or fnmatch.fnmatch(p.stem, g) or fnmatch.fnmatch(p.name, g + "*")
                         for g in globs)]
    if not chosen:
        names = ", ".join(p.stem for p in every) or "(none)"
        raise ParameterError(f"--notebooks: {pattern!r} matches no analysis notebook in {paths.display_path(folder)}; "
                             f"there are: {names}")
    return chosen


def split_list(text: str | Sequence[str] | None) -> list[str]:
    """``"East,West"`` or ``["East", "West"]`` (or a mix) → ``["East", "West"]``."""
    if text is None:
        return []
    items = [text] if isinstance(text, str) else list(text)
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def source_regions(con: Any) -> list[str]:
    """The source's region ids (empty when it has no regions table)."""
    if "regions" not in data.available_tables(con):
        return []
    ids = data.table_expr(con, "regions").select("region_id").to_pandas()["region_id"].dropna()
    return sorted(dict.fromkeys(str(v) for v in ids))


def resolve_regions(given: str | Sequence[str] | None, known: list[str]) -> list[str]:
    """``all`` (or nothing) → the company as a whole plus every region of the source; ``company`` → the company
    as a whole only; else the regions named (matched ignoring case, checked against the source; ``company`` among
    them adds the whole company)."""
    from crmlens.params import match_region

    items = split_list(given)
    if not items or [i.lower() for i in items] == ["all"]:
        return ["all", *known]
    items = ["all" if i.lower() == "company" else i for i in items]
    if not known and any(i.lower() != "all" for i in items):
        raise ParameterError(f"--regions: {', '.join(items)}: the source has no regions table; use all")
    return list(dict.fromkeys("all" if i.lower() == "all" else match_region(i, known, param="--regions")
                              for i in items))


def resolve_periods(given: str | Sequence[str] | None, con: Any, fiscal_year_start: int) -> list[str]:
    """``latest`` (or nothing) → the latest complete quarter of the data; else periods and run ranges such as
    ``2025-Q1..2026-Q2`` (see `crmlens.periods.period_range`)."""
    items = split_list(given)
    if not items or [i.lower() for i in items] == ["latest"]:
        return [latest_complete_period(data.data_as_of(con), "quarter", fiscal_year_start).label]
    found = period_range(",".join(items), fiscal_year_start, param="--periods")
    return [p.label for p in found]


def absolute_source(source: str) -> str:
    """A folder source as an absolute path (tasks run with the notebooks folder as working directory)."""
    if source == "demo" or "://" in source:
        return source
    path = Path(source)
    if not path.is_absolute() and path.exists():
        return str(path.resolve())
    return source


def make_plan(*, regions: str | Sequence[str] | None = None, periods: str | Sequence[str] | None = None,
              notebooks: str | None = None, source: str | None = None, mapping: str | None = None,
              overrides: Mapping[str, Any] | None = None, con: Any = None,
              notebooks_dir: Path | None = None) -> tuple[Plan, Any]:
    """Check everything a run needs and list its tasks; returns the plan and the open source connection.

    Parameter order (later wins): params/defaults.yaml < params/regions.yaml[region] < `overrides`
    (--params FILE) < `source`/`mapping` < the matrix (region, period). Every task's parameters are validated
    here, so a bad value fails before any kernel starts.
    """
    given = {k: v for k, v in dict(overrides or {}).items() if v is not None}
    for key in MATRIX_PARAMS:
        if key in given:
            raise ParameterError(f"--params: {key!r} is set by the run matrix; use --{key}s instead")
    if source is not None:
        given["source"] = source
    if mapping is not None:
        given["mapping"] = mapping
    base = load_params(given)  # checks the shared parameters once, with clear messages
    given["source"] = absolute_source(base.source)
    if base.mapping is not None:
        given["mapping"] = str(base.mapping_path())
    chosen = find_notebooks(notebooks, notebooks_dir)
    con = con if con is not None else data.connect(given["source"], given.get("mapping"))
    known = source_regions(con)
    region_list = resolve_regions(regions, known)
    period_list = resolve_periods(periods, con, base.fiscal_year_start)
    tasks = []
    for region in region_list:
        for period in period_list:
            params: Params = load_params({**given, "period": period}, region=region,
                                         known_regions=known or None)
            values = params.to_notebook_dict()
            for nb_path in chosen:
                tasks.append(Task(nb_path.stem, str(nb_path), region, period, values))
    base_values = {k: v for k, v in load_params(given).to_notebook_dict().items() if k not in MATRIX_PARAMS}
    return Plan(tasks, region_list, period_list, chosen, base_values, given["source"], given.get("mapping")), con


def check_run_id(run_id: str) -> str:
    """A run id usable as a folder name: letters, digits, '.', '_' and '-' (up to 80)."""
    if not _RUN_ID_RE.match(run_id or ""):
        raise ParameterError(f"--run-id: {run_id!r} is not allowed; use letters, digits, '.', '_' and '-' "
                             f"(at most 80, starting with a letter or digit), e.g. 2026-Q3-final")
    return run_id


def stable_hash(value: Any) -> str:
    """sha256 of a JSON-able value (keys sorted), for cache keys."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def parse_overrides_file(path: str | Path) -> dict[str, Any]:
    """The parameters in a --params YAML file (a mapping of parameter names to values)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ParameterError(f"--params: file {p} does not exist")
    try:
        loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ParameterError(f"--params: {p} is not valid YAML: {err}") from None
    if not isinstance(loaded, dict):
        raise ParameterError(f"--params: {p} must hold a mapping of parameter names to values, "
                             f"not a {type(loaded).__name__}")
    return loaded


def matrix_summary(tasks: Iterable[Task]) -> str:
    """'21 tasks: 3 notebooks × 7 regions × 1 period'."""
    tasks = list(tasks)
    n_nb = len({t.notebook for t in tasks})
    n_r = len({t.region for t in tasks})
    n_p = len({t.period for t in tasks})
    return (f"{len(tasks)} tasks: {n_nb} notebook{'s' * (n_nb != 1)} × {n_r} region{'s' * (n_r != 1)} × "
            f"{n_p} period{'s' * (n_p != 1)}")
