"""`crmlens.run.diff`: what changed between two runs (inputs, task statuses, KPIs), on synthetic runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crmlens import paths
from crmlens.errors import RunError
from crmlens.run.diff import diff_runs, read_manifest, resolve_run
from tests.unit.run import fakes

FUNNEL_EAST = fakes.task_id("East", "2026-Q3", "02_sales_funnel")
PERF_WEST = fakes.task_id("West", "2026-Q3", "03_sales_performance")
N_KPIS = sum(len(v) for v in fakes.KPI_SPECS.values()) * len(fakes.REGIONS) * len(fakes.PERIODS)


def _pair(tmp_path: Path, edit_a=None, edit_b=None) -> tuple[Path, Path]:
    """Two runs of the same default manifest, each adjusted by an optional edit(manifest)."""
    a, b = fakes.fake_manifest("run-a"), fakes.fake_manifest("run-b")
    if edit_a:
        edit_a(a)
    if edit_b:
        edit_b(b)
    return fakes.write_run(tmp_path / "run-a", a), fakes.write_run(tmp_path / "run-b", b)


def _inputs(diff) -> set[tuple[str, str]]:
    return {(c.section, c.key) for c in diff.inputs}


# ------------------------------------------------------------------------------------------ identical


def test_identical_runs_say_so(tmp_path):
    a, b = _pair(tmp_path)
    diff = diff_runs(a, b)
    assert diff.identical
    assert diff.inputs == [] and diff.kpis_changed == [] and diff.kpis_added == [] and diff.kpis_removed == []
    assert diff.kpis_unchanged == N_KPIS
    text = diff.to_text()
    assert "identical in inputs and KPIs" in text
    assert "run-a" in text and "run-b" in text
    d = diff.to_dict()
    assert d["identical"] is True and d["kpis_changed"] == [] and d["kpis_unchanged"] == N_KPIS
    assert d["summary"]["kpis_changed"] == 0 and d["summary"]["kpis_unchanged"] == N_KPIS


def test_run_folder_inside_parameters_is_not_a_change(tmp_path):
    def with_output_dir(m):
        m["parameters"]["output_dir"] = str(tmp_path / m["run_id"])
        for task in m["tasks"]:
            task["parameters"]["output_dir"] = f"outputs/{m['run_id']}/{task['id']}"

    a, b = _pair(tmp_path, with_output_dir, with_output_dir)
    assert diff_runs(a, b).identical


def test_short_run_ids_are_not_masked_inside_words(tmp_path):
    """Runs named "a" and "b": a region "East" or a path "/data/a.b" must not be mistaken for a run id."""
    a = fakes.write_run(tmp_path / "a", fakes.fake_manifest("a"))
    b = fakes.write_run(tmp_path / "b", fakes.fake_manifest("b"))
    assert diff_runs(a, b).identical
    manifest = fakes.fake_manifest("b")
    fakes.set_param(manifest, "base.source", "/data/b")
    b = fakes.write_run(tmp_path / "b2", manifest)
    a_manifest = fakes.fake_manifest("a")
    fakes.set_param(a_manifest, "base.source", "/data/a")
    a = fakes.write_run(tmp_path / "a2", a_manifest)
    assert ("parameters", "base.source") in _inputs(diff_runs(a, b))


def test_reused_tasks_do_not_make_runs_different(tmp_path):
    a, b = _pair(tmp_path, edit_b=lambda m: fakes.find_task(m, PERF_WEST).update(status="reused"))
    diff = diff_runs(a, b)
    assert diff.identical
    assert [(t.task, t.old, t.new) for t in diff.tasks] == [(PERF_WEST, "ok", "reused")]
    assert "identical in inputs and KPIs" in diff.to_text() and PERF_WEST in diff.to_text()


# ------------------------------------------------------------------------------------ what changed


def test_names_exactly_the_parameter_the_table_and_the_kpi_that_changed(tmp_path):
    def edit_a(m):
        fakes.set_kpi(m, PERF_WEST, "bookings", 1000.0)

    def edit_b(m):
        fakes.set_param(m, "base.comparison", "year_ago")
        fakes.set_kpi(m, PERF_WEST, "bookings", 1250.0)
        fakes.set_fingerprint(m, "opportunities", rows=1300, digest="e" * 64)

    a, b = _pair(tmp_path, edit_a, edit_b)
    diff = diff_runs(a, b)
    assert not diff.identical
    assert _inputs(diff) == {("parameters", "base.comparison"), ("task parameters", "comparison"),
                             ("data", "opportunities")}
    param = next(c for c in diff.inputs if c.key == "base.comparison")
    assert (param.old, param.new) == ("previous", "year_ago")
    task_param = next(c for c in diff.inputs if c.section == "task parameters")
    assert len(task_param.tasks) == len(fakes.REGIONS) * len(fakes.NOTEBOOKS)
    table = next(c for c in diff.inputs if c.key == "opportunities")
    assert "rows 1,200 → 1,300" in table.detail and "hash changed" in table.detail

    assert [c.key for c in diff.kpis_changed] == [("West", "2026-Q3", "03_sales_performance", "bookings")]
    change = diff.kpis_changed[0]
    # hand-computed: 1250 − 1000 = 250; 250 / 1000 = 25 %
    assert (change.old, change.new, change.delta, change.rel_change) == (1000.0, 1250.0, 250.0, 0.25)
    assert (change.old_display, change.new_display) == ("1,000 USD", "1,250 USD")
    assert diff.kpis_unchanged == N_KPIS - 1
    assert diff.kpis_added == [] and diff.kpis_removed == []

    text = diff.to_text()
    assert text.index("Inputs that changed") < text.index("KPIs that changed")
    assert "base.comparison" in text and "previous → year_ago" in text and "opportunities" in text
    row = next(line for line in text.splitlines() if "bookings" in line and "West" in line)
    assert row.split()[:8] == ["West", "2026-Q3", "03_sales_performance", "bookings", "1,000", "1,250", "+250",
                               "+25.0%"]
    assert "1,000 USD → 1,250 USD" in row
    assert f"1 KPI changed, {N_KPIS - 1} unchanged" in text


def test_deltas_hand_computed(tmp_path):
    cases = {  # (notebook task, kpi): (old, new, delta, relative)
        (FUNNEL_EAST, "win_rate"): (0.5, 0.375, -0.125, -0.25),
        (PERF_WEST, "bookings"): (0.0, 500.0, 500.0, None),  # no relative change from 0
        (PERF_WEST, "attainment"): (-0.5, 0.25, 0.75, 1.5),  # relative to |old|
    }

    def edit(which):
        def apply(m):
            for (tid, kpi), values in cases.items():
                fakes.set_kpi(m, tid, kpi, values[which])
        return apply

    diff = diff_runs(*_pair(tmp_path, edit(0), edit(1)))
    got = {(c.region, c.kpi): (c.old, c.new, c.delta, c.rel_change) for c in diff.kpis_changed}
    assert got == {("East", "win_rate"): cases[FUNNEL_EAST, "win_rate"],
                   ("West", "bookings"): cases[PERF_WEST, "bookings"],
                   ("West", "attainment"): cases[PERF_WEST, "attainment"]}
    assert _inputs(diff) == set()
    text = diff.to_text()
    assert "none: parameters, data, code and packages are the same" in text
    assert f"3 KPIs changed, {N_KPIS - 3} unchanged" in text


def test_text_table_sorted_and_aligned(tmp_path):
    def edit(m):
        for tid, kpi in ((PERF_WEST, "bookings"), (FUNNEL_EAST, "win_rate"),
                         (fakes.task_id("all", "2026-Q3", "08_regions_teams"), "active_reps"),
                         (FUNNEL_EAST, "pipeline_value")):
            rec = next(r for r in fakes.find_task(m, tid)["kpis"] if r["kpi"] == kpi)
            fakes.set_kpi(m, tid, kpi, rec["value"] * 2)

    diff = diff_runs(*_pair(tmp_path, edit_b=edit))
    lines = diff.to_text().splitlines()
    start = lines.index("KPIs that changed") + 1
    header, rule, *rows = lines[start:start + 2 + 4]
    assert header.split()[:4] == ["region", "period", "notebook", "kpi"]
    assert [tuple(r.split()[:4]) for r in rows] == [
        ("East", "2026-Q3", "02_sales_funnel", "pipeline_value"), ("East", "2026-Q3", "02_sales_funnel", "win_rate"),
        ("West", "2026-Q3", "03_sales_performance", "bookings"), ("all", "2026-Q3", "08_regions_teams", "active_reps")]
    # aligned: the "old" column ends at the same character in every row
    end = header.index("old") + len("old")
    assert all(r[end - 1] != " " and r[end] == " " for r in rows)
    assert set(rule.replace(" ", "")) == {"-"}


def test_missing_values_equal_only_to_missing(tmp_path):
    def edit_a(m):
        fakes.set_kpi(m, FUNNEL_EAST, "win_rate", None)
        fakes.set_kpi(m, PERF_WEST, "bookings", None)

    def edit_b(m):
        fakes.set_kpi(m, FUNNEL_EAST, "win_rate", None)  # NaN in both parquets: unchanged
        fakes.set_kpi(m, PERF_WEST, "bookings", 42.0)  # no data → a number: changed, no delta

    diff = diff_runs(*_pair(tmp_path, edit_a, edit_b))
    assert [c.kpi for c in diff.kpis_changed] == ["bookings"]
    change = diff.kpis_changed[0]
    assert change.old is None and change.new == 42.0 and change.delta is None and change.rel_change is None
    assert diff.kpis_unchanged == N_KPIS - 1
    json.dumps(diff.to_dict(), allow_nan=False)


def test_tiny_differences_count_and_show_every_digit(tmp_path):
    diff = diff_runs(*_pair(tmp_path, lambda m: fakes.set_kpi(m, FUNNEL_EAST, "win_rate", 0.3),
                            lambda m: fakes.set_kpi(m, FUNNEL_EAST, "win_rate", 0.1 + 0.2)))
    assert len(diff.kpis_changed) == 1
    assert "0.30000000000000004" in diff.to_text()


def test_kpis_present_in_one_run_only(tmp_path):
    def edit_a(m):
        fakes.drop_kpi(m, FUNNEL_EAST, "sales_cycle_days")
        fakes.add_kpi(m, PERF_WEST, "old_metric", "Old metric", "count", 7.0)

    diff = diff_runs(*_pair(tmp_path, edit_a))
    assert [(c.kind, c.key) for c in diff.kpis_added] == [
        ("added", ("East", "2026-Q3", "02_sales_funnel", "sales_cycle_days"))]
    assert diff.kpis_added[0].old is None and isinstance(diff.kpis_added[0].new, float)
    assert [(c.kind, c.kpi, c.old, c.new, c.old_display) for c in diff.kpis_removed] == [
        ("removed", "old_metric", 7.0, None, "7")]
    assert diff.kpis_changed == [] and diff.kpis_unchanged == N_KPIS - 1
    text = diff.to_text()
    assert "KPIs only in run B (added)" in text and "KPIs only in run A (removed)" in text
    assert "1 only in run B, 1 only in run A" in text
    d = diff.to_dict()
    assert d["kpis_added"][0]["kpi"] == "sales_cycle_days" and d["kpis_removed"][0]["kpi"] == "old_metric"


def test_failed_task_changes_status_and_loses_its_kpis(tmp_path):
    a = fakes.write_run(tmp_path / "a", fakes.fake_manifest("a"))
    b = fakes.write_run(tmp_path / "b", fakes.fake_manifest("b", failed={FUNNEL_EAST: 7}))
    diff = diff_runs(a, b)
    assert [(t.task, t.old, t.new) for t in diff.tasks] == [(FUNNEL_EAST, "ok", "failed")]
    assert {c.kpi for c in diff.kpis_removed} == {"win_rate", "pipeline_value", "sales_cycle_days"}
    assert "Tasks whose status changed" in diff.to_text()


def test_code_packages_and_tables(tmp_path):
    def edit_b(m):
        m["code"].update(git_commit="f" * 40, git_dirty=True, library_hash="9" * 64)
        m["code"]["notebooks"]["02_sales_funnel"] = "8" * 64
        m["packages"]["pandas"] = "3.2.0"
        m["packages"]["duckdb"] = "1.3.2"
        del m["packages"]["plotly"]
        m["python"] = "3.11.9"
        fakes.set_fingerprint(m, "leads", rows=50, digest="1" * 64)
        del m["data"]["fingerprint"]["accounts"]
        fakes.set_fingerprint(m, "regions", digest="2" * 64)

    diff = diff_runs(*_pair(tmp_path, edit_b=edit_b))
    assert _inputs(diff) == {
        ("code", "git_commit"), ("code", "git_dirty"), ("code", "library_hash"), ("code", "notebook 02_sales_funnel"),
        ("packages", "pandas"), ("packages", "duckdb"), ("packages", "plotly"), ("environment", "python"),
        ("data", "leads"), ("data", "accounts"), ("data", "regions")}
    by_key = {c.key: c for c in diff.inputs}
    assert by_key["leads"].detail == "table added (50 rows)"
    assert by_key["accounts"].detail == "table removed (had 300 rows)"
    assert by_key["regions"].detail == "content hash changed (same row count)"
    assert (by_key["duckdb"].old, by_key["duckdb"].new) == (None, "1.3.2")
    assert (by_key["plotly"].old, by_key["plotly"].new) == ("7.0.0", None)
    assert by_key["git_dirty"].detail == "false → true"
    text = diff.to_text()
    for word in ("Code", "Packages", "Data", "3.1.1 → 3.2.0", "0123456789ab → ffffffffffff"):
        assert word in text
    assert diff.kpis_changed == [] and "0 KPIs changed" in text


def test_per_task_parameter_change(tmp_path):
    diff = diff_runs(*_pair(tmp_path, edit_b=lambda m: fakes.find_task(m, PERF_WEST)["parameters"].update(
        forgotten_days=90)))
    assert [(c.section, c.key, c.old, c.new, c.tasks) for c in diff.inputs] == [
        ("task parameters", "forgotten_days", 60, 90, (PERF_WEST,))]
    assert f"60 → 90  ({PERF_WEST})" in diff.to_text()


def test_to_dict_is_json(tmp_path):
    diff = diff_runs(*_pair(tmp_path, edit_b=lambda m: fakes.set_kpi(m, PERF_WEST, "bookings", 1.5)))
    d = json.loads(json.dumps(diff.to_dict(), allow_nan=False))
    assert d["run_a"]["run_id"] == "run-a" and d["run_b"]["path"].endswith("run-b")
    assert d["kpis_changed"][0]["new"] == 1.5 and d["kpis_changed"][0]["new_display"] == "2 USD"
    assert d["kpis_unchanged"] == N_KPIS - 1


def test_kpis_from_manifest_when_no_parquet(tmp_path):
    a, b = fakes.fake_manifest("a"), fakes.fake_manifest("b")
    fakes.set_kpi(b, PERF_WEST, "bookings", 1.0)
    dir_a = fakes.write_run(tmp_path / "a", a, write_kpis=False)
    dir_b = fakes.write_run(tmp_path / "b", b, write_kpis=False)
    diff = diff_runs(dir_a, dir_b)
    assert [c.kpi for c in diff.kpis_changed] == ["bookings"] and diff.kpis_unchanged == N_KPIS - 1
    assert any("no kpis.parquet" in n for n in diff.notes)


def test_parquet_wins_over_manifest(tmp_path):
    """The KPI tables are what the diff reads; the task records only fill in for a missing table."""
    a, b = _pair(tmp_path)
    manifest = json.loads((b / "manifest.json").read_text())
    fakes.set_kpi(manifest, PERF_WEST, "bookings", 1.0)
    (b / "manifest.json").write_text(json.dumps(manifest))
    diff = diff_runs(a, b)
    assert diff.kpis_changed == []


# ------------------------------------------------------------------------------- finding runs, errors


def test_missing_manifest_names_the_path(tmp_path):
    a, b = _pair(tmp_path)
    (b / "manifest.json").unlink()
    with pytest.raises(RunError, match="manifest") as err:
        diff_runs(a, b)
    assert str(b / "manifest.json") in str(err.value)


def test_corrupt_manifest_names_the_path(tmp_path):
    a, b = _pair(tmp_path)
    (a / "manifest.json").write_text('{"run_id": "x", "tasks": [')
    with pytest.raises(RunError, match="not valid JSON") as err:
        diff_runs(a, b)
    assert str(a / "manifest.json") in str(err.value)
    (a / "manifest.json").write_text("[1, 2]")
    with pytest.raises(RunError, match="JSON object"):
        read_manifest(a)


def test_corrupt_kpi_table_names_the_path(tmp_path):
    a, b = _pair(tmp_path)
    (b / "East" / "kpis.parquet").write_bytes(b"not parquet")
    with pytest.raises(RunError) as err:
        diff_runs(a, b)
    assert str(b / "East" / "kpis.parquet") in str(err.value)


def test_missing_run_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "OUTPUTS_DIR", tmp_path / "outputs")
    a, _ = _pair(tmp_path)
    with pytest.raises(RunError) as err:
        diff_runs(a, tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)
    with pytest.raises(RunError) as err:
        resolve_run("20991231-000000")
    assert str(tmp_path / "outputs" / "20991231-000000") in str(err.value)


def test_run_ids_resolve_under_outputs(tmp_path, monkeypatch):
    outputs = tmp_path / "outputs"
    monkeypatch.setattr(paths, "OUTPUTS_DIR", outputs)
    fakes.make_run(outputs, "20261123-101500")
    b = fakes.make_run(outputs, "20261124-090000")
    (outputs / "latest").symlink_to("20261124-090000")
    monkeypatch.chdir(tmp_path)
    assert resolve_run("20261123-101500") == outputs / "20261123-101500"
    assert resolve_run("latest").resolve() == b.resolve()
    assert resolve_run(b) == b and resolve_run(str(b)) == b
    assert resolve_run(b / "manifest.json") == b
    diff = diff_runs("20261123-101500", "latest")
    assert diff.identical and diff.run_id_b == "20261124-090000"

