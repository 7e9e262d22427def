"""A notebook's start-up imports stay light: the heavy libraries load when a cell first needs them.

Each check runs in a fresh interpreter (this test process has long imported everything) and looks at
`sys.modules` after the imports; no timing.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from crmlens import paths

#: Loaded on first use (a figure, the data layer, a forecast), never by a notebook's imports.
HEAVY = ("plotly", "pandera", "prophet", "ibis")

#: The library's start-up modules: what the analysis notebooks import before their first analysis cell.
START_UP_MODULES = ("crmlens", "crmlens.notebook", "crmlens.kpis", "crmlens.params", "crmlens.periods",
                    "crmlens.metrics", "crmlens.metrics.funnel", "crmlens.metrics.performance",
                    "crmlens.metrics.regions", "crmlens.charts", "crmlens.charts.funnel",
                    "crmlens.charts.performance", "crmlens.charts.regions")

ANALYSIS_NOTEBOOKS = sorted(paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def import_cell(path: Path) -> str:
    """The import statements of a notebook's code cells up to its first analysis (`open_analysis`)."""
    nb = nbformat.read(path, as_version=4)
    statements = []
    for cell in nb.cells:
        if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
            continue
        tree = ast.parse(cell.source)
        statements += [ast.unparse(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
        if "open_analysis" in cell.source:
            break
    return "\n".join(statements)


def heavy_modules_after(code: str) -> list[str]:
    """Run `code` in a fresh interpreter; the `HEAVY` top-level packages it left in `sys.modules`."""
    probe = (f"{code}\nimport json, sys\n"
             f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          cwd=paths.PROJECT_ROOT, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_analysis_notebooks_have_an_import_cell():
    assert ANALYSIS_NOTEBOOKS
    for path in ANALYSIS_NOTEBOOKS:
        assert "from crmlens import notebook" in import_cell(path), path.name


@pytest.mark.parametrize("path", ANALYSIS_NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebooks_imports_do_not_load_heavy_libraries(path):
    assert heavy_modules_after(import_cell(path)) == []


def test_the_start_up_modules_do_not_load_heavy_libraries():
    assert heavy_modules_after("\n".join(f"import {m}" for m in START_UP_MODULES)) == []


def test_the_probe_sees_a_heavy_import():  # the check above can fail
    assert heavy_modules_after("import crmlens.notebook\nimport plotly.graph_objects") == ["plotly"]


def test_the_data_layer_and_the_dashboards_load_pandera_only_to_validate_in_pandas():
    """A kernel reading the validated store (notebooks, dashboards) never validates in pandas: pandera (17 MB,
    ~0.3 s) stays out of it."""
    loaded = heavy_modules_after("import crmlens.data, crmlens.store, crmlens.validate, crmlens.dashboard.app")
    assert "pandera" not in loaded
