"""The run's task matrix: every task's parameters are checked before anything runs."""

from __future__ import annotations

import pytest

from crmlens.errors import ParameterError
from crmlens.run import plan


@pytest.fixture(scope="module")
def tiny(tiny_demo):
    return str(tiny_demo)


def test_defaults_are_every_region_plus_all_and_the_latest_complete_quarter(tiny):
    p, _ = plan.make_plan(source=tiny)
    assert p.regions == ["all", "APAC", "Central", "East", "North", "South", "West"]
    assert p.periods == ["2026-Q3"]
    assert [nb.stem for nb in p.notebooks] == ["00_data_quality", "01_market_competition", "02_sales_funnel",
                                               "03_sales_performance", "04_customers", "05_marketing",
                                               "06_customer_health", "07_products", "08_regions_teams",
                                               "09_forecast_alerts"]
    assert len(p.tasks) == 7 * 10
    t = next(t for t in p.tasks if t.region == "East" and t.notebook == "02_sales_funnel")
    assert t.id == "East/2026-Q3/02_sales_funnel" and t.parameters["region"] == "East"
    assert t.parameters["period"] == "2026-Q3" and t.parameters["comparison"] == "previous"


def test_regions_periods_and_notebooks_are_resolved(tiny):
    p, _ = plan.make_plan(source=tiny, regions="east, all", periods="2025-Q4..2026-Q2,2026-09",
                          notebooks="03_*")
    assert p.regions == ["East", "all"]  # spelled as the source spells it
    assert p.periods == ["2025-Q4", "2026-Q1", "2026-Q2", "2026-09"]
    assert {t.notebook for t in p.tasks} == {"03_sales_performance"} and len(p.tasks) == 8
    # company: the company as a whole only (alone, or beside regions)
    assert plan.make_plan(source=tiny, regions="company")[0].regions == ["all"]
    assert plan.make_plan(source=tiny, regions="Company,West")[0].regions == ["all", "West"]


def test_overrides_reach_every_task_and_the_base(tiny):
    p, _ = plan.make_plan(source=tiny, regions="West", overrides={"comparison": "last_year", "currency": "EUR"})
    assert p.base["comparison"] == "last_year" and "region" not in p.base
    assert all(t.parameters["currency"] == "EUR" for t in p.tasks)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"regions": "Mars"}, ["--regions", "Mars", "East"]),
    ({"periods": "2026-Q3..2025-Q1"}, ["--periods", "before"]),
    ({"notebooks": "zz*"}, ["--notebooks", "02_sales_funnel"]),
    ({"overrides": {"period": "2026"}}, ["--params", "--periods"]),
    ({"overrides": {"forgotten_days": -3}}, ["forgotten_days"]),
])
def test_bad_values_are_named(tiny, kwargs, words):
    with pytest.raises(ParameterError) as err:
        plan.make_plan(source=tiny, **kwargs)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_run_ids_and_override_files(tmp_path):
    assert plan.check_run_id("2026-Q3_final.v2") == "2026-Q3_final.v2"
    for bad in ("", "../x", "a b", "-x"):
        with pytest.raises(ParameterError, match="--run-id"):
            plan.check_run_id(bad)
    f = tmp_path / "p.yaml"
    f.write_text("comparison: last_year\n")
    assert plan.parse_overrides_file(f) == {"comparison": "last_year"}
    f.write_text("- a list\n")
    with pytest.raises(ParameterError, match="mapping"):
        plan.parse_overrides_file(f)
    with pytest.raises(ParameterError, match="does not exist"):
        plan.parse_overrides_file(tmp_path / "missing.yaml")


def test_second_processes_only_for_a_run_with_a_free_core_and_a_task_per_worker():
    from crmlens.run.runner import second_processes

    assert second_processes(1, 1, cores=2)  # one notebook alone: its kernel may use the free core
    assert not second_processes(8, 1, cores=2)  # a reused kernel keeps its imports: no second process per task
    assert not second_processes(2, 2, cores=2)  # the run's own workers fill the cores
    assert second_processes(3, 3, cores=8) and not second_processes(9, 3, cores=8)
