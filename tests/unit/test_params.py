"""Tests of crmlens.params (the parameter schema, merging, errors, docs) and crmlens.paths."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
import yaml

from crmlens import paths
from crmlens.errors import ParameterError
from crmlens.params import (
    Params,
    describe_params,
    load_params,
    match_region,
    parameters_cell,
    validate_params,
)

DEMO_REGIONS = ["East", "West", "North", "South", "Central", "APAC"]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A defaults file and a regions file whose values differ at every layer."""
    defaults = write(tmp_path / "defaults.yaml", """
region: all
period: 2026-Q3
currency: EUR
forgotten_days: 30
fiscal_year_start: 4
options:
  pipeline: {min_amount: 1000, stale_days: 90}
  funnel: {stage: sql}
""")
    regions = write(tmp_path / "regions.yaml", """
East:
  forgotten_days: 45
  currency: GBP
  options:
    pipeline: {stale_days: 120}
West: {}
""")
    return {"defaults_path": defaults, "regions_path": regions}


# -- the shipped files --------------------------------------------------------------------------------------


def test_shipped_defaults_equal_the_model_defaults() -> None:
    shipped = yaml.safe_load((paths.PARAMS_DIR / "defaults.yaml").read_text(encoding="utf-8"))
    assert Params(**shipped) == Params()
    assert set(shipped) == set(Params.model_fields), "defaults.yaml should list every parameter"
    assert load_params() == Params()


def test_shipped_regions_cover_the_demo_regions() -> None:
    shipped = yaml.safe_load((paths.PARAMS_DIR / "regions.yaml").read_text(encoding="utf-8"))
    assert set(DEMO_REGIONS) <= set(shipped)
    apac = load_params(region="APAC")
    assert apac.forgotten_days == 90
    assert apac.currency == "USD"
    assert load_params(region="East").forgotten_days == 60


# -- merge order --------------------------------------------------------------------------------------------


def test_defaults_file_is_read(files: dict[str, Path]) -> None:
    p = load_params(**files)
    assert (p.region, p.currency, p.forgotten_days, p.fiscal_year_start) == ("all", "EUR", 30, 4)
    assert p.options == {"pipeline": {"min_amount": 1000, "stale_days": 90}, "funnel": {"stage": "sql"}}


def test_region_overrides_beat_defaults(files: dict[str, Path]) -> None:
    p = load_params(region="East", **files)
    assert (p.region, p.currency, p.forgotten_days) == ("East", "GBP", 45)
    assert p.options["pipeline"] == {"min_amount": 1000, "stale_days": 120}  # merged per area
    assert p.options["funnel"] == {"stage": "sql"}


def test_region_chosen_by_overrides_applies_its_overrides(files: dict[str, Path]) -> None:
    assert load_params({"region": "East"}, **files).forgotten_days == 45
    assert load_params({"region": "west"}, **files).region == "West"  # spelled as in regions.yaml


def test_explicit_overrides_beat_everything(files: dict[str, Path]) -> None:
    p = load_params({"forgotten_days": 7, "options": {"pipeline": {"min_amount": 5}}}, region="East", **files)
    assert p.forgotten_days == 7
    assert p.currency == "GBP"
    assert p.options["pipeline"] == {"min_amount": 5, "stale_days": 120}


def test_none_overrides_are_not_given(files: dict[str, Path]) -> None:
    p = load_params({"currency": None, "region": None, "as_of": None}, **files)
    assert (p.currency, p.region) == ("EUR", "all")


def test_overrides_are_not_mutated(files: dict[str, Path]) -> None:
    overrides = {"options": {"pipeline": {"min_amount": 5}}}
    load_params(overrides, region="East", **files)
    assert overrides == {"options": {"pipeline": {"min_amount": 5}}}


def test_region_given_twice_differently(files: dict[str, Path]) -> None:
    with pytest.raises(ParameterError, match=r"region: given twice, as 'East' and as 'West'"):
        load_params({"region": "West"}, region="East", **files)
    assert load_params({"region": "east"}, region="East", **files).region == "East"


def test_missing_default_files_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "PARAMS_DIR", tmp_path)
    assert load_params() == Params()


def test_missing_given_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"params file .*nope\.yaml: not found"):
        load_params(defaults_path=tmp_path / "nope.yaml")


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    bad = write(tmp_path / "broken.yaml", "period: [2026\n")
    with pytest.raises(ParameterError, match=r"params file .*broken\.yaml: not valid YAML"):
        load_params(defaults_path=bad)
    listed = write(tmp_path / "list.yaml", "- 2026\n")
    with pytest.raises(ParameterError, match=r"list\.yaml: must be a mapping"):
        load_params(defaults_path=listed)


def test_region_overrides_cannot_set_region(tmp_path: Path, files: dict[str, Path]) -> None:
    regions = write(tmp_path / "r.yaml", "East:\n  region: West\n")
    with pytest.raises(ParameterError, match=r"r\.yaml: the overrides of region 'East' set region"):
        load_params(region="East", defaults_path=files["defaults_path"], regions_path=regions)


def test_error_says_which_file_set_the_bad_value(tmp_path: Path, files: dict[str, Path]) -> None:
    regions = write(tmp_path / "r.yaml", "East:\n  forgotten_days: -5\n")
    with pytest.raises(ParameterError) as err:
        load_params(region="East", defaults_path=files["defaults_path"], regions_path=regions)
    assert "forgotten_days: -5" in str(err.value)
    assert "r.yaml, region East" in str(err.value)


# -- unknown parameters -------------------------------------------------------------------------------------


def test_unknown_parameter_is_named_with_the_known_ones() -> None:
    with pytest.raises(ParameterError) as err:
        load_params({"perod": "2026-Q3"})
    message = str(err.value)
    assert message.startswith("perod: unknown parameter (value '2026-Q3')")
    assert "did you mean period?" in message
    for name in Params.model_fields:
        assert name in message


def test_unknown_parameter_in_defaults_file(tmp_path: Path) -> None:
    defaults = write(tmp_path / "d.yaml", "colour: blue\n")
    with pytest.raises(ParameterError, match=r"colour: unknown parameter .*\[set in .*d\.yaml\]"):
        load_params(defaults_path=defaults)


def test_several_errors_are_all_reported() -> None:
    with pytest.raises(ParameterError) as err:
        Params(period="2026-Q5", currency="dollars", zzz=1)
    message = str(err.value)
    assert message.startswith("3 parameters are invalid:")
    assert "period: '2026-Q5'" in message and "currency: 'dollars'" in message and "zzz: unknown" in message


# -- each parameter's failure mode --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("region", "Ea\x00t", "region_id"),
        ("region", "x" * 65, "region_id"),
        ("region", "", "region_id"),
        ("region", 7, "region_id"),
        ("period", "2026-Q5", "quarter must be 1–4"),
        ("period", "2026-W54", "week must be 1–53 in 2026"),
        ("comparison", "lastyear", "last_year"),
        ("source", "", "database URL"),
        ("source", "9x://host/db", "bad scheme"),
        ("mapping", "hubspot.txt", ".yaml/.yml"),
        ("currency", "dollars", "3-letter ISO 4217"),
        ("currency", "US", "3-letter ISO 4217"),
        ("fiscal_year_start", 13, "1–12"),
        ("fiscal_year_start", 0, "1–12"),
        ("as_of", "2026-13-01", "ISO date"),
        ("as_of", "2026-10-01 12:30", "ISO date"),
        ("forgotten_days", 0, "> 0"),
        ("forgotten_days", -3, "> 0"),
        ("forgotten_days", "sixty", "> 0"),
        ("forgotten_days", True, "> 0"),
        ("forgotten_days", 1.5, "> 0"),
        ("options", ["pipeline"], "{area: {option: value}}"),
    ],
)
def test_bad_value_message(name: str, value: object, allowed: str) -> None:
    with pytest.raises(ParameterError) as err:
        Params(**{name: value})
    message = str(err.value)
    assert message.startswith(f"{name}: {value!r}"), message
    assert allowed in message


@pytest.mark.parametrize(
    ("options", "where"),
    [
        ({"pipe line": {"x": 1}}, "options: 'pipe line' is not an area name"),
        ({"pipeline": [1, 2]}, "options.pipeline: [1, 2] is not a mapping"),
        ({"pipeline": {"1x": 1}}, "options.pipeline: '1x' is not an option name"),
        ({"pipeline": {"x": [1]}}, "options.pipeline.x: [1] is not a plain value"),
        ({"pipeline": {"x": float("nan")}}, "options.pipeline.x: nan is not a plain value"),
        ({"pipeline": {"x": {"y": 1}}}, "options.pipeline.x: {'y': 1} is not a plain value"),
    ],
)
def test_bad_options(options: dict, where: str) -> None:
    with pytest.raises(ParameterError) as err:
        Params(options=options)
    assert str(err.value).startswith(where)


def test_model_validate_raises_parameter_error_too() -> None:
    with pytest.raises(ParameterError, match=r"^currency: 'x'"):
        Params.model_validate({"currency": "x"})


# -- normalisation of good values ---------------------------------------------------------------------------


def test_text_values_from_a_url_or_cli_are_coerced() -> None:
    p = validate_params({"region": "ALL", "period": " 2026-q1 ", "comparison": "YoY", "source": "DEMO",
                         "currency": "sgd", "fiscal_year_start": "4", "as_of": "2026-10-01",
                         "forgotten_days": "90", "mapping": ""})
    assert (p.region, p.period, p.comparison, p.source, p.currency) == ("all", "2026-Q1", "last_year", "demo", "SGD")
    assert (p.fiscal_year_start, p.as_of, p.forgotten_days, p.mapping) == (4, date(2026, 10, 1), 90, None)


def test_sources_accepted() -> None:
    for source in ("demo", "data/exports", "/abs/folder", "postgresql://user@host:5432/crm",
                   "duckdb:///data/crm.duckdb"):
        assert Params(source=source).source == source


def test_params_are_frozen() -> None:
    with pytest.raises(Exception, match="frozen"):
        Params().region = "East"  # type: ignore[misc]


def test_mapping_path_is_taken_from_the_project_root() -> None:
    assert Params().mapping_path() is None
    p = Params(mapping="params/sources/hubspot.yml")
    assert p.mapping_path() == paths.PROJECT_ROOT / "params/sources/hubspot.yml"
    assert Params(mapping="/x/m.yaml").mapping_path() == Path("/x/m.yaml")


def test_option_lookup() -> None:
    p = Params(options={"pipeline": {"min_amount": 1000, "flag": True, "label": None}})
    assert p.option("pipeline", "min_amount") == 1000
    assert p.option("pipeline", "flag") is True
    assert p.option("pipeline", "missing", 5) == 5
    assert p.option("funnel", "x") is None


# -- periods from params ------------------------------------------------------------------------------------


def test_period_and_comparison_objects() -> None:
    p = Params(period="2026-Q1", fiscal_year_start=4, comparison="previous")
    assert (p.period_obj().start.date(), p.period_obj().last_day.date()) == (date(2026, 4, 1), date(2026, 6, 30))
    assert p.comparison_obj().label == "2025-Q4"
    ly = Params(period="2026-W53", comparison="last_year")
    assert ly.comparison_obj().label == "2025-W52"


# -- regions ------------------------------------------------------------------------------------------------


def test_unknown_region_lists_the_known_ones() -> None:
    with pytest.raises(ParameterError) as err:
        load_params({"region": "Esat"}, known_regions=DEMO_REGIONS)
    message = str(err.value)
    assert message.startswith("region: 'Esat' is not a region of this source")
    for region in [*DEMO_REGIONS, "all"]:
        assert region in message
    assert "did you mean East?" in message


def test_known_region_is_spelled_as_the_source_spells_it(files: dict[str, Path]) -> None:
    p = load_params({"region": "east"}, known_regions=DEMO_REGIONS, **files)
    assert p.region == "East"
    assert p.forgotten_days == 45  # its overrides applied
    assert load_params({"region": "All"}, known_regions=DEMO_REGIONS).region == "all"


def test_check_region_and_match_region() -> None:
    assert Params(region="apac").check_region(DEMO_REGIONS).region == "APAC"
    assert Params().check_region([]).region == "all"
    with pytest.raises(ParameterError, match="region: 'Mars'"):
        Params(region="Mars").check_region(DEMO_REGIONS)
    with pytest.raises(ParameterError, match=r"use all \(the source has no regions\)"):
        match_region("East", [])
    assert validate_params({"region": "west"}, known_regions=DEMO_REGIONS).region == "West"


# -- plain values for papermill, docs -----------------------------------------------------------------------


def test_to_notebook_dict_is_json_plain() -> None:
    p = Params(region="East", as_of="2026-10-01", options={"pipeline": {"min_amount": 1000.5, "on": True}})
    d = p.to_notebook_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["as_of"] == "2026-10-01"
    assert set(d) == set(Params.model_fields)
    assert Params(**d) == p  # and back


def test_describe_params_lists_every_field() -> None:
    text = describe_params()
    for name, field in Params.model_fields.items():
        assert re.search(rf"^{name}: .+ = {re.escape(repr(Params().to_notebook_dict()[name]))}$", text, re.M), name
        assert field.description and field.description in text
    assert "allowed: 2026, 2026-Q3, 2026-09, 2026-W37 or 2026-07-01..2026-09-30" in text
    assert "forgotten_days: int = 90" in describe_params(load_params(region="APAC"))


def test_parameters_cell_has_one_documented_line_per_parameter() -> None:
    lines = parameters_cell(Params(as_of="2026-10-01")).splitlines()
    assert [line.split(":", 1)[0] for line in lines] == list(Params.model_fields)
    pattern = re.compile(r"^\w+: [\w |]+ = .+  # .+$")
    assert all(pattern.match(line) for line in lines), lines
    assert "as_of: str | None = '2026-10-01'  # " in "\n".join(lines)
    namespace: dict = {}
    exec("\n".join(lines), namespace)  # the cell is valid Python with the plain values
    assert namespace["period"] == "2026-Q3" and namespace["options"] == {}


# -- paths --------------------------------------------------------------------------------------------------


def test_project_root_is_found_from_a_subfolder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(paths.HOME_ENV, raising=False)
    assert paths.find_project_root(paths.PROJECT_ROOT / "lib" / "crmlens") == paths.PROJECT_ROOT
    assert (paths.PROJECT_ROOT / "pyproject.toml").is_file()
    assert paths.PARAMS_DIR == paths.PROJECT_ROOT / "params"
    assert paths.DEMO_DIR == paths.PROJECT_ROOT / "data" / "demo"


def test_other_projects_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(paths.HOME_ENV, raising=False)
    write(tmp_path / "pyproject.toml", '[project]\nname = "other"\n')
    # not this project: falls back to the source tree the package is imported from
    assert paths.find_project_root(tmp_path) == Path(paths.__file__).resolve().parents[2]


def test_crmlens_home_overrides_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path))
    assert paths.find_project_root() == tmp_path.resolve()
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path / "missing"))
    with pytest.raises(ParameterError, match=r"CRMLENS_HOME: .*missing.* is not a folder"):
        paths.find_project_root()


def test_display_path() -> None:
    assert paths.display_path(paths.PARAMS_DIR / "defaults.yaml") == "params/defaults.yaml"
    assert paths.display_path("/somewhere/else.yaml") == "/somewhere/else.yaml"
