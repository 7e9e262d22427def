"""The run's parts that need no kernel: progress lines, failure table, KPI table, task order, retry rules."""

from __future__ import annotations

import io
from pathlib import Path

import nbformat
import pytest

from crmlens.notebook import KPI_MIMETYPE
from crmlens.run import execute, runner
from crmlens.run.plan import Plan, Task


def _rec(tid: str, status: str = "ok", **kw) -> dict:
    region, period, notebook = tid.split("/")
    return {"id": tid, "region": region, "period": period, "notebook": notebook, "status": status,
            "duration_s": 2.0, "error": None, "outputs": {"ipynb": f"{tid}.ipynb"}, "kpis": [], **kw}


def test_plain_progress_lines_when_not_a_terminal():
    out = io.StringIO()
    p = runner.Progress(3, None, out)
    p.update(_rec("East/2026-Q3/02_a"))
    p.update(_rec("West/2026-Q3/02_a", "failed", error={"ename": "ValueError", "evalue": "boom"}))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[1/3] ok     East/2026-Q3/02_a  2.0 s  (failed 0, remaining 2, ETA")
    assert "failed West/2026-Q3/02_a" in lines[1] and "(failed 1, remaining 1" in lines[1]
    assert lines[1].endswith("ValueError: boom")


def test_failure_table_names_task_kind_cell_error_and_notebook():
    recs = [_rec("East/2026-Q3/02_a"),
            _rec("West/2026-Q3/02_a", "failed", error={"kind": "cell_error", "cell": 7, "ename": "KeyError",
                                                         "evalue": "'region'\nmore"}),
            _rec("North/2026-Q3/02_a", "failed", error={"kind": "timeout", "cell": None, "ename": "Timeout",
                                                          "evalue": "ran longer than 5 s"})]
    lines = runner.failure_table(recs).splitlines()
    assert lines[0].split() == ["task", "kind", "cell", "error", "notebook"]
    assert lines[1].split()[:4] == ["West/2026-Q3/02_a", "cell_error", "In", "[7]"]
    assert "KeyError: 'region'" in lines[1] and "more" not in lines[1] and "West/2026-Q3/02_a.ipynb" in lines[1]
    assert "timeout" in lines[2] and "Timeout: ran longer than 5 s" in lines[2]
    assert runner.failure_table([_rec("East/2026-Q3/02_a")]) == ""


def _plan() -> Plan:
    tasks = [Task(nb, f"/x/{nb}.ipynb", r, p, {}) for r in ("all", "East") for p in ("2026-Q2", "2026-Q3")
             for nb in ("02_a", "03_b")]
    return Plan(tasks, ["all", "East"], ["2026-Q2", "2026-Q3"], [Path("/x/02_a.ipynb"), Path("/x/03_b.ipynb")],
                {}, "demo", None)


def test_tasks_start_notebook_by_notebook_so_parallel_tasks_open_different_slices():
    order = [t.id for t in runner.execution_order(_plan(), workers=2)]
    assert order[:4] == ["all/2026-Q2/02_a", "all/2026-Q3/02_a", "East/2026-Q2/02_a", "East/2026-Q3/02_a"]
    assert all(t.endswith("03_b") for t in order[4:])
    # regions go in groups of `workers`: with one worker, region `all` finishes first (its exports start)
    order = [t.id for t in runner.execution_order(_plan(), workers=1)]
    assert order == ["all/2026-Q2/02_a", "all/2026-Q3/02_a", "all/2026-Q2/03_b", "all/2026-Q3/03_b",
                     "East/2026-Q2/02_a", "East/2026-Q3/02_a", "East/2026-Q2/03_b", "East/2026-Q3/03_b"]


def test_kpi_table_is_in_plan_order_with_stable_types():
    plan = _plan()
    kpi = {"kpi": "win_rate", "label": "Win rate", "unit": "rate", "direction": "higher", "value": 0.5,
           "comparison_value": None, "delta": None, "delta_pct": None, "trend": "n/a", "display": "50%",
           "status": "ok", "area": "sales", "comparison_period": "x"}
    recs = [_rec(t.id, kpis=[{**kpi, "value": i / 10}]) for i, t in enumerate(reversed(plan.tasks))]
    frame = runner.kpi_frame(recs, plan, "East")
    assert list(frame.columns) == runner.KPI_COLUMNS
    assert list(zip(frame["period"], frame["notebook"], strict=True)) == [
        ("2026-Q2", "02_a"), ("2026-Q2", "03_b"), ("2026-Q3", "02_a"), ("2026-Q3", "03_b")]
    assert str(frame["value"].dtype) == "float64" and frame["comparison_value"].isna().all()
    assert list(frame["value"]) == [0.3, 0.2, 0.1, 0.0]


def test_recorded_kpis_and_compute_time_are_read_from_the_executed_notebook():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.metadata["papermill"] = {"duration": 1.25}
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        KPI_MIMETYPE: {"area": "sales", "comparison_period": "2026-Q2", "kpis": [{"kpi": "a", "value": 1}]}})]
    other = nbformat.v4.new_code_cell("y")
    other.metadata["papermill"] = {"duration": None}
    nb.cells = [cell, other]
    assert execute.recorded_kpis(nb) == [{"area": "sales", "comparison_period": "2026-Q2", "kpi": "a", "value": 1}]
    assert execute.compute_seconds(nb) == 1.25


@pytest.mark.parametrize(("err", "retry"), [
    (RuntimeError("Kernel died before replying to kernel_info"), True),
    (RuntimeError("Kernel didn't respond in 60 seconds"), True),
    (OSError("Address already in use"), True),
    (ValueError("bad value"), False),
    (RuntimeError("something else"), False),
])
def test_only_kernel_and_transport_failures_are_retried(err, retry):
    assert execute._is_retryable(err) is retry


def test_dead_kernel_and_zmq_errors_are_retried():
    import zmq
    from nbclient.exceptions import DeadKernelError

    assert execute._is_retryable(DeadKernelError("Kernel died"))
    assert execute._is_retryable(zmq.error.ZMQError(98))
