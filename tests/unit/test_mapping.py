"""Mapping files: the Maven CRM export loaded into the canonical model, and every mapping error."""

from __future__ import annotations

import json
import textwrap

import pandas as pd
import pytest

from crmlens import data
from crmlens.cli import main
from crmlens.errors import SourceError
from crmlens.mapping import load_mapping
from tests.conftest import MAVEN_MAPPING


@pytest.fixture(scope="module")
def maven_validated(maven_con):
    return data.validate_source(maven_con)


@pytest.fixture(scope="module")
def raw_pipeline(maven_dir) -> pd.DataFrame:
    return pd.read_csv(maven_dir / "sales_pipeline.csv")


def test_every_maven_opportunity_is_accounted_for(maven_validated, raw_pipeline):
    _, report = maven_validated
    opp = report.tables["opportunities"]
    assert opp.loaded == len(raw_pipeline) == 8800
    assert opp.accepted + opp.rejected == 8800
    assert report.ok


def test_gtxpro_is_fixed_and_counted(maven_validated, raw_pipeline):
    results, report = maven_validated
    fix = next(f for f in report.fixes if f["from"] == "GTXPro")
    assert fix["to"] == "GTX Pro" and fix["rows"] == int((raw_pipeline["product"] == "GTXPro").sum())
    products = set(results["opportunities"].accepted["product_id"].dropna())
    assert "GTXPro" not in products and products <= set(results["products"].accepted["product_id"])
    assert not (report.problems["rule"] == "foreign_key").any()


def test_account_typos_are_fixed(maven_validated):
    results, report = maven_validated
    accounts = results["accounts"].accepted
    assert "technolgy" not in set(accounts["industry"]) and "technology" in set(accounts["industry"])
    assert "Philipines" not in set(accounts["country"]) and "Philippines" in set(accounts["country"])
    assert {f["from"] for f in report.fixes} == {"GTXPro", "technolgy", "Philipines"}


def test_known_gaps_are_kept_and_warned_not_dropped(maven_validated, raw_pipeline):
    results, report = maven_validated
    warn = report.problems[report.problems["severity"] == "warn"]
    no_account = warn[warn["column"] == "account_id"]
    assert len(no_account) == int(raw_pipeline["account"].isna().sum()) == 1425
    no_created = warn[warn["column"] == "created_at"]
    assert len(no_created) == int(raw_pipeline["engage_date"].isna().sum()) == 500
    opp = results["opportunities"].accepted
    assert opp["closed_at"].isna().sum() == raw_pipeline["close_date"].isna().sum()


def test_won_revenue_per_regional_office_matches_pandas_on_the_raw_csv(maven_validated, maven_dir, raw_pipeline):
    results, _ = maven_validated
    teams = pd.read_csv(maven_dir / "sales_teams.csv")
    expected = (raw_pipeline[raw_pipeline["deal_stage"] == "Won"].merge(teams, on="sales_agent")
                .groupby("regional_office")["close_value"].sum())
    opp = results["opportunities"].accepted
    got = opp[opp["is_won"].fillna(False).astype(bool)].groupby("region_id")["amount"].sum()
    assert got.round(2).to_dict() == expected.astype(float).round(2).to_dict()


def test_summary_bookings_by_region_match_raw(maven_con, maven_dir, raw_pipeline):
    teams = pd.read_csv(maven_dir / "sales_teams.csv")
    expected = (raw_pipeline[raw_pipeline["deal_stage"] == "Won"].merge(teams, on="sales_agent")
                .groupby("regional_office")["close_value"].sum())
    got = data.bookings_by_region(maven_con).set_index("region_id")["won_amount"]
    assert got.round(2).to_dict() == expected.astype(float).round(2).to_dict()


def test_cli_validate_json_for_maven(maven_dir, capsys):
    code = main(["validate", "--source", str(maven_dir), "--mapping", str(MAVEN_MAPPING), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    opp = out["tables"]["opportunities"]
    assert opp["loaded"] == 8800 and opp["accepted"] + opp["rejected"] == 8800
    assert out["tables"]["leads"]["status"] == "absent"
    assert any(f["from"] == "GTXPro" for f in out["fixes"])


# ---------------------------------------------------------------------------------- mapping errors

def write(tmp_path, text: str):
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def make_export(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "deals.csv").write_text("id,agent,value\nd1,ann,10\nd2,bob,x\n")
    (folder / "agents.csv").write_text("agent,office\nann,East\nbob,West\n")
    return folder


GOOD = """
name: t
files:
  deals: {path: deals.csv}
  agents: {path: agents.csv}
tables:
  opportunities:
    from: deals
    join: [{file: agents, using: agent}]
    columns:
      opportunity_id: id
      owner_rep_id: agent
      region_id: office
      amount: value
      stage: {value: Prospecting}
"""


def test_a_small_mapping_builds_and_validates(tmp_path):
    con = data.connect(make_export(tmp_path), write(tmp_path, GOOD))
    _results, report = data.validate_source(con, tables=["opportunities"])
    opp = report.tables["opportunities"]
    assert (opp.loaded, opp.accepted, opp.rejected) == (2, 1, 1)
    bad = report.problems[report.problems["rule"] == "wrong_type"]
    assert bad["value"].tolist() == ["x"] and bad["source_row"].tolist() == [3]  # line 3 of deals.csv


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("owner_rep_id: agent", "owner_rep_id: agnt"), ["owner_rep_id", "'agnt'", "deals: id, agent, value"]),
        (("opportunities:", "opportunitiez:"), ["opportunitiez", "unknown canonical table"]),
        (("      amount: value", "      amount_x: value"), ["amount_x", "not a column of opportunities"]),
        (("{path: deals.csv}", "{path: nope.csv}"), ["nope.csv", "does not exist", "deals.csv"]),
        (("from: deals", "from: dealz"), ["dealz", "not declared under 'files'"]),
        (("using: agent", "usin: agent"), ["usin"]),
    ],
)
def test_mapping_errors_name_the_culprit(tmp_path, change, expected):
    folder = make_export(tmp_path)
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(SourceError) as err:
        data.connect(folder, path)
    for text in expected:
        assert text in str(err.value)


def test_join_that_duplicates_rows_is_an_error(tmp_path):
    folder = make_export(tmp_path)
    (folder / "agents.csv").write_text("agent,office\nann,East\nann,West\nbob,West\n")
    with pytest.raises(SourceError, match="not unique"):
        data.connect(folder, write(tmp_path, GOOD))


def test_invalid_yaml_is_reported_with_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(SourceError, match=r"bad\.yaml is not valid YAML"):
        load_mapping(path)


def test_shipped_mappings_load():
    assert load_mapping(MAVEN_MAPPING).vocab().stages == ("Prospecting", "Engaging", "Won", "Lost")
