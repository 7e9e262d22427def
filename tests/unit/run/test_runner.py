"""`crmlens run` end to end with real kernels: failure isolation, retries of a killed kernel, timeouts,
resume, interrupted runs, determinism of kpis.parquet, and the same matrix on a real Dask cluster."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from crmlens.errors import ParameterError
from crmlens.notebook import KPI_MIMETYPE
from crmlens.run import runner
from crmlens.run.diff import diff_runs
from crmlens.run.runner import RunOptions
from tests.unit.run.fakes import write_notebook

pytestmark = pytest.mark.slow

KPI_CELL = f"""
from IPython.display import display
value = {{"East": 1.0, "West": 2.0}}.get(region, 3.0) * (2 if comparison == "last_year" else 1)
display({{"{KPI_MIMETYPE}": {{"area": "test", "region": region, "period": period, "comparison_period": "x",
          "kpis": [{{"kpi": "answer", "label": "Answer", "unit": "count", "direction": "higher", "value": value,
                    "comparison_value": 1.0, "delta": value - 1.0, "delta_pct": value - 1.0, "trend": "better",
                    "display": str(value), "status": "ok"}}]}}}}, raw=True)
"""


_notebook = write_notebook


@pytest.fixture
def test_notebooks(tmp_path):
    """01 records a KPI; 02 raises for West; 03 kills its own kernel once for East (then succeeds)."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    # kernels are reused after a namespace reset: nothing of an earlier notebook may be visible
    _notebook(folder / "01_ok.ipynb", "assert not {'y', 'marker', 'time', 'x'} & set(globals()), sorted(globals())\n"
              "x = 1", KPI_CELL)
    _notebook(folder / "02_raises.ipynb", "y = 2",
              "if region == 'West':\n    raise ValueError(f'no data for {region}')", KPI_CELL)
    _notebook(folder / "03_dies.ipynb",
              "import os, pathlib, signal\nmarker = pathlib.Path(options['test']['marker'])\n"
              "if region == 'East' and not marker.exists():\n    marker.write_text('killed once')\n"
              "    os.kill(os.getpid(), signal.SIGKILL)", KPI_CELL)
    _notebook(folder / "04_sleeps.ipynb", "import time\nif region == 'North':\n    time.sleep(60)", KPI_CELL)
    return folder


def _opts(tiny_demo, tmp_path, **kw) -> RunOptions:
    base = dict(source=str(tiny_demo), periods="2026-Q3", outputs_dir=tmp_path / "outputs", exports=(),
                progress=False, workers=2)
    base.update(kw)
    return RunOptions(**base)


def test_bad_parameters_fail_before_anything_runs(tiny_demo, tmp_path):
    for kw, words in [({"regions": "Atlantis"}, ["Atlantis", "East"]),
                      ({"periods": "2026-Q5"}, ["2026-Q5"]),
                      ({"overrides": {"comparison": "yesterday"}}, ["comparison", "yesterday"]),
                      ({"overrides": {"region": "East"}}, ["--regions"]),
                      ({"notebooks": "99_*"}, ["99_*", "02_sales_funnel"])]:
        with pytest.raises(ParameterError) as err:
            runner.run(_opts(tiny_demo, tmp_path, **kw))
        assert all(w in str(err.value) for w in words), str(err.value)
    assert not (tmp_path / "outputs").exists()  # nothing was started or written


def test_failures_are_isolated_retried_and_reported(tiny_demo, tmp_path, test_notebooks):
    marker = tmp_path / "killed.txt"
    opts = _opts(tiny_demo, tmp_path, regions="East,West,North", notebooks="01_*,02_*,03_*,04_*",
                 notebooks_dir=test_notebooks, overrides={"options": {"test": {"marker": str(marker)}}},
                 timeout=10, retries=2, run_id="failing", exports=("xlsx",))
    log = io.StringIO()
    result = runner.run(opts, stream=log)
    tasks = {t["id"]: t for t in result.manifest["tasks"]}
    # regions go in groups of two (the workers): East's exports start while North's notebooks still run
    text = log.getvalue()
    assert text.index("exports East: ok") < text.index("North/2026-Q3/04_sleeps"), text
    assert result.manifest["exports"]["West"]["status"] == "ok"  # a failed task's region is still exported
    assert len(tasks) == 3 * 4  # East, West, North × 4 notebooks: every task ran
    assert result.exit_code == 1 and result.manifest["status"] == "failed"
    # the kernel killed mid-run was retried and then succeeded
    killed = tasks["East/2026-Q3/03_dies"]
    assert marker.exists() and killed["status"] == "ok" and killed["attempts"] == 2, killed
    # the notebook that raises is reported with its cell and error, its executed notebook kept
    broken = tasks["West/2026-Q3/02_raises"]
    assert broken["status"] == "failed" and broken["attempts"] == 1
    assert broken["error"]["kind"] == "cell_error" and broken["error"]["ename"] == "ValueError"
    assert "no data for West" in broken["error"]["evalue"] and "raise ValueError" in broken["error"]["source"]
    executed = nbformat.read(result.run_dir / broken["outputs"]["ipynb"], as_version=4)
    assert any("An Exception was encountered" in c.source for c in executed.cells if c.cell_type == "markdown")
    # the timeout stops one notebook without retrying it
    slow = tasks["North/2026-Q3/04_sleeps"]
    assert slow["status"] == "failed" and slow["error"]["kind"] == "timeout" and slow["attempts"] == 1
    assert slow["duration_s"] < 30
    # nothing else is lost: every other task is ok and recorded its KPI
    failed = {"West/2026-Q3/02_raises", "North/2026-Q3/04_sleeps"}
    for tid, t in tasks.items():
        if tid not in failed:
            assert t["status"] == "ok", t
            assert [k["kpi"] for k in t["kpis"]] == ["answer"]
            assert (result.run_dir / t["outputs"]["ipynb"]).is_file()
            assert (result.run_dir / t["outputs"]["html"]).is_file()
    first_cells = [c for c in executed.cells if c.cell_type == "code"]
    assert first_cells[0].execution_count == 1  # a reused kernel counts from 1 again
    kpis = pd.read_parquet(result.run_dir / "West" / "kpis.parquet")
    assert sorted(kpis["notebook"]) == ["01_ok", "03_dies", "04_sleeps"]
    assert set(kpis["value"]) == {2.0}
    # the summary names the failures with their cell
    text = runner.summary_text(result)
    assert "West/2026-Q3/02_raises" in text and "ValueError" in text and "In [" in text
    assert "North/2026-Q3/04_sleeps" in text and "timeout" in text
    # resume re-runs only the failed ones (still failing), reuses the rest
    again = runner.run(_opts(tiny_demo, tmp_path, regions="East,West,North", notebooks="01_*,02_*,03_*,04_*",
                             notebooks_dir=test_notebooks, overrides={"options": {"test": {"marker": str(marker)}}},
                             timeout=10, run_id="failing", resume=True))
    s = again.manifest["summary"]
    assert (s["reused"], s["failed"], s["ok"]) == (10, 2, 0)


def test_interrupted_run_leaves_no_complete_looking_file_and_resume_completes_it(tiny_demo, tmp_path,
                                                                                  test_notebooks):
    out = tmp_path / "outputs"
    cmd = [sys.executable, "-m", "crmlens.cli", "run", "--source", str(tiny_demo), "--periods", "2026-Q3",
           "--regions", "East,West,North", "--notebooks", "01_*", "--exports", "none", "--outputs", str(out),
           "--run-id", "cut", "--workers", "1", "--no-progress", "--notebooks-dir", str(test_notebooks)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    records = out / "cut" / ".tasks"
    deadline = time.time() + 120
    while time.time() < deadline and not (records.is_dir() and any(records.glob("*.json"))):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the hardest stop: no clean-up code runs
    proc.wait(timeout=30)
    done = list(records.glob("*.json"))
    assert 1 <= len(done) < 3, "the run should have been cut after the first task"
    assert not (out / "cut" / "manifest.json").exists()
    for f in (out / "cut").rglob("*.ipynb"):  # a file under a final name is complete
        if not f.name.startswith("."):
            nbformat.validate(nbformat.read(f, as_version=4))
    resumed = runner.run(_opts(tiny_demo, tmp_path, regions="East,West,North", notebooks="01_*",
                               notebooks_dir=test_notebooks, run_id="cut", resume=True))
    s = resumed.manifest["summary"]
    assert resumed.exit_code == 0 and s["reused"] == len(done) and s["ok"] == 3 - len(done)
    assert not [p for p in (out / "cut").rglob(".*.tmp*")]


def test_same_inputs_give_identical_kpis_locally_and_on_dask_and_a_changed_parameter_shows_in_diff(
        tiny_demo, tmp_path, dask_cluster):
    """Run a (local threads) and run b (the same tasks on a Dask cluster) give byte-identical KPI files."""
    assert dask_cluster.startswith("tcp://127.0.0.1:")
    opts = dict(regions="all,East,West", notebooks="02_*")
    # the PDF and the deck of a run: tests/unit/run/test_reports_for_readers.py (the Chinese run)
    a = runner.run(_opts(tiny_demo, tmp_path, run_id="a", exports=("html", "xlsx"), **opts))
    # exports are tested in test_exports
    b = runner.run(_opts(tiny_demo, tmp_path, run_id="b", cluster=dask_cluster, **opts))
    assert a.exit_code == b.exit_code == 0
    assert a.manifest["executor"]["kind"] == "threads"
    assert b.manifest["executor"]["kind"] == "dask" and b.manifest["executor"]["workers"] == 2
    assert len({t["worker"] for t in b.manifest["tasks"]}) == 2  # both Dask workers ran tasks
    assert (b.run_dir / "West" / "kpis.parquet").read_bytes() == (a.run_dir / "West" / "kpis.parquet").read_bytes()
    for region in ("all", "East"):
        assert (a.run_dir / region / "kpis.parquet").read_bytes() == (b.run_dir / region / "kpis.parquet").read_bytes()
        files = a.manifest["exports"][region]["files"]
        assert {"kpis", "html", "xlsx"} <= set(files)
        assert all((a.run_dir / f).is_file() for f in files.values())
    kpis = pd.read_parquet(a.run_dir / "East" / "kpis.parquet")
    assert set(kpis["notebook"]) == {"02_sales_funnel"} and "win_rate" in set(kpis["kpi"])
    # the executed notebook holds its figures as plotly JSON, not a 4.8 MB copy of plotly.js (the run's
    # renderer); its HTML page embeds plotly.js once and draws them
    task = next(t for t in a.manifest["tasks"] if t["region"] == "East")
    executed = (a.run_dir / task["outputs"]["ipynb"]).read_text(encoding="utf-8")
    assert "application/vnd.plotly.v1+json" in executed and "plotly.js v" not in executed
    _check_in_chromium(a.run_dir, ["all", "East"], task["outputs"]["html"])
    assert a.manifest["data"]["fingerprint"] == b.manifest["data"]["fingerprint"]
    assert diff_runs(a.run_dir, b.run_dir).to_dict()["kpis_changed"] == []
    # one parameter changed → the manifest and the diff name it, and KPIs move
    c = runner.run(_opts(tiny_demo, tmp_path, run_id="c", overrides={"comparison": "last_year"}, regions="East",
                         notebooks="02_*"))
    assert c.manifest["parameters"]["base"]["comparison"] == "last_year"
    text = diff_runs(a.run_dir, c.run_dir).to_text()
    assert "comparison" in text and "previous" in text and "last_year" in text
    # resume with nothing changed re-runs nothing
    r = runner.run(_opts(tiny_demo, tmp_path, run_id="a", resume=True, exports=("xlsx",), **opts))
    assert r.manifest["summary"]["reused"] == 3 and r.manifest["summary"]["ok"] == 0
    assert (r.run_dir / "East" / "kpis.parquet").read_bytes() == (a.run_dir / "East" / "kpis.parquet").read_bytes()
    assert (tmp_path / "outputs" / "latest").resolve() == a.run_dir.resolve()  # the last run, after c


def _check_in_chromium(run_dir: Path, regions: list[str], task_page: str) -> None:
    """The index, a region report and a task's page open offline in headless Chromium: no failed or outside
    requests, every region shown, the charts drawn (plotly renders SVG)."""
    import re

    from playwright.sync_api import sync_playwright

    from tests.unit.run.test_index import CHROMIUM, CHROMIUM_ARGS

    failed, external = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}"))
            page.route(re.compile(r"^(?!file:|data:|about:|blob:)"), lambda route: (external.append(route.request.url),
                                                                                   route.abort()))
            page.goto((run_dir / "index.html").resolve().as_uri(), wait_until="load")
            for region in regions:
                assert page.locator(f'section[data-region="{region}"]').is_visible(), region
            assert page.locator('tr[data-status="ok"][data-task]').count() >= len(regions)
            for report in (run_dir / regions[-1] / "report.html", run_dir / task_page):
                page.goto(report.resolve().as_uri(), wait_until="load")
                page.wait_for_selector(".plot-container svg.main-svg", timeout=30_000)
                assert page.locator(".plot-container").count() >= 5, report
        finally:
            browser.close()
    assert failed == [] and external == []


@pytest.fixture
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                       dashboard_address=None, processes=True)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_unreachable_cluster_is_a_clear_error(tiny_demo, tmp_path, monkeypatch):
    monkeypatch.setenv(runner.CLUSTER_TIMEOUT_ENV, "soon")
    with pytest.raises(ParameterError, match=r"CRMLENS_CLUSTER_TIMEOUT='soon' is not allowed; use a number of seconds"):
        runner.run(_opts(tiny_demo, tmp_path, regions="East", notebooks="02_*", cluster="tcp://127.0.0.1:9"))
    monkeypatch.setenv(runner.CLUSTER_TIMEOUT_ENV, "2")
    with pytest.raises(ParameterError, match=r"Dask scheduler at tcp://127\.0\.0\.1:9"):
        runner.run(_opts(tiny_demo, tmp_path, regions="East", notebooks="02_*", cluster="tcp://127.0.0.1:9"))
