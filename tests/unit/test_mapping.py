"""Mapping files: the Maven CRM export loaded into the canonical model, and every mapping error."""

from __future__ import annotations

import json
import textwrap

import pandas as pd
import pytest

from crmlens import data, paths
from crmlens.cli import main
from crmlens.errors import SourceError
from crmlens.mapping import load_mapping
from crmlens.schema import SCHEMA
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
    assert load_mapping(paths.SOURCES_DIR / "churn_modelling.yaml").custom_fields()["accounts"]["gender"] == "category"


# ------------------------------------------------------------------------------------ custom fields

CRM_EXPORT = (
    "id,company,office,Tier__c,Notes__c,Seats__c,Score__c,Partner__c,Renewal__c,Founded__c\n"
    "a1,Acme,East,gold,likes demos,12,0.5,yes,2026-03-01 10:00,2001-05-01\n"
    "a2,Bolt,East,silver,,3,1.25,no,2027-01-15,1999-12-31\n"
    "a3,Cork,West,gold,slow payer,,,,,\n"
)

CUSTOM = """
name: crm
files:
  accounts: {path: accounts.csv}
tables:
  regions:
    from: accounts
    distinct: true
    columns: {region_id: office, name: office, country: {value: Testland}}
  accounts:
    from: accounts
    columns:
      account_id: id
      name: company
      region_id: office
    custom_fields:
      Tier__c: category                          # short form: the source column of that name
      notes: {column: Notes__c, type: string}
      seats: {column: Seats__c, type: integer}
      score: {column: Score__c, type: number}
      is_partner: {column: Partner__c, type: boolean}
      renewal_at: {column: Renewal__c, type: timestamp}
      founded_date: {column: Founded__c, type: date}
      seats_x2: {sql: "TRY_CAST(Seats__c AS INTEGER) * 2", type: integer}
"""

CUSTOM_TYPES = {"Tier__c": "category", "notes": "string", "seats": "integer", "score": "number",
                "is_partner": "boolean", "renewal_at": "timestamp", "founded_date": "date", "seats_x2": "integer"}


def custom_export(tmp_path, rows: str = CRM_EXPORT):
    folder = tmp_path / "crm"
    folder.mkdir(exist_ok=True)
    (folder / "accounts.csv").write_text(rows)
    return folder


def custom_slice(tmp_path, rows: str = CRM_EXPORT, mapping: str = CUSTOM):
    from crmlens.params import validate_params

    params = validate_params({"source": str(custom_export(tmp_path, rows)), "mapping": str(write(tmp_path, mapping)),
                              "region": "all", "period": "2026", "as_of": "2026-10-01"})
    return data.open_slice(params)


@pytest.fixture
def own_store(tmp_path, monkeypatch):
    """A validated store of the test's own (each test's export is small and validated afresh)."""
    monkeypatch.setenv("CRMLENS_STORE_DIR", str(tmp_path / "store"))


def test_custom_fields_of_every_type_are_kept_typed_and_discoverable_from_the_slice(tmp_path, own_store):
    s = custom_slice(tmp_path)
    assert data.custom_fields(s, "accounts") == CUSTOM_TYPES
    assert list(data.custom_fields(s, "accounts")) == list(CUSTOM_TYPES), "in the mapping's order"
    assert data.custom_fields(s, "regions") == {} and data.custom_fields(s, "contracts") == {}
    acc = s.tables["accounts"].set_index("account_id")
    assert [str(acc[c].dtype) for c in CUSTOM_TYPES] == ["string", "string", "Int64", "float64", "boolean",
                                                         "datetime64[us]", "datetime64[us]", "Int64"]
    assert acc["Tier__c"].tolist() == ["gold", "silver", "gold"]
    assert acc["notes"].tolist()[0] == "likes demos" and pd.isna(acc.at["a2", "notes"])
    assert acc["seats"].tolist()[:2] == [12, 3] and pd.isna(acc.at["a3", "seats"])
    assert acc["score"].tolist()[:2] == [0.5, 1.25]
    assert acc["is_partner"].tolist()[:2] == [True, False]
    # a custom timestamp is not a canonical *_at column: a planned date after the as-of is kept
    assert acc.at["a2", "renewal_at"] == pd.Timestamp("2027-01-15")
    assert acc.at["a1", "founded_date"] == pd.Timestamp("2001-05-01")
    assert acc["seats_x2"].tolist()[:2] == [24, 6]
    # the canonical columns come first, the custom fields after them, in the comparison periods too
    canonical = [c for c in s.tables["accounts"].columns if c not in CUSTOM_TYPES and c != "_source_row"]
    assert canonical == list(SCHEMA["accounts"].column_names)
    assert list(s.previous["accounts"].columns) == list(s.tables["accounts"].columns)
    assert "custom fields kept: Tier__c (category)" in " ".join(s.report.tables["accounts"].notes)


def test_a_custom_field_value_of_the_wrong_type_rejects_its_row_naming_table_column_and_line(tmp_path, own_store):
    rows = CRM_EXPORT.replace("a2,Bolt,East,silver,,3,", "a2,Bolt,East,silver,,three,")
    s = custom_slice(tmp_path, rows)
    report = s.report.tables["accounts"]
    assert (report.loaded, report.accepted, report.rejected) == (3, 2, 1)
    assert s.tables["accounts"]["account_id"].tolist() == ["a1", "a3"]
    problem = report.problems[report.problems["rule"] == "wrong_type"].iloc[0]
    assert (problem["table"], problem["column"], problem["row_key"], problem["source_row"], problem["value"]) == \
        ("accounts", "seats", "a2", 3, "three")
    assert "accounts.seats (row key a2, source row 3): 'three' — not a valid integer" in problem["message"]
    assert "seats: not a valid integer [wrong_type]" in s.rejected["accounts"]["_reasons"].iloc[0]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("name: {column: company, type: string}", ["custom_fields.name", "clashes with the canonical column 'name'"]),
        ("Region_ID: {column: office, type: category}", ["custom_fields.Region_ID", "canonical column 'region_id'"]),
        ("_hidden: {column: company, type: string}", ["custom_fields._hidden", "reserved"]),
        ("headcount: {column: Seats__c, type: int}", ["custom_fields.headcount", "'int' is not a custom field type",
                                                      "integer"]),
        ("headcount: {column: Seats__c, sql: 'Seats__c', type: integer}", ["custom_fields.headcount", "not both"]),
        ("Notes: {column: Notes__c, type: string}", ["'Notes'", "'notes'", "differ only by case"]),
    ],
)
def test_a_bad_custom_field_is_an_error_naming_file_table_and_field(tmp_path, own_store, field, expected):
    mapping = write(tmp_path, CUSTOM.replace("      Tier__c: category", "      Tier__c: category\n      " + field))
    with pytest.raises(SourceError) as err:
        data.connect(custom_export(tmp_path), mapping)
    text = str(err.value)
    for part in [str(mapping), "tables.accounts", *expected]:
        assert part in text


def test_a_custom_field_from_a_missing_source_column_lists_the_columns(tmp_path, own_store):
    mapping = write(tmp_path, CUSTOM.replace("column: Notes__c", "column: Note__c"))
    with pytest.raises(SourceError, match=r"tables\.accounts\.custom_fields\.notes: source column 'Note__c'"):
        data.connect(custom_export(tmp_path), mapping)


def test_a_column_outside_the_model_points_to_custom_fields(tmp_path, own_store):
    mapping = write(tmp_path, CUSTOM.replace("      region_id: office\n",
                                             "      region_id: office\n      tier: Tier__c\n"))
    with pytest.raises(SourceError, match=r"declare it under tables\.accounts\.custom_fields"):
        data.connect(custom_export(tmp_path), mapping)


# ------------------------------------------------------------------------------------ as_of, churned_at

AS_OF_MAPPING = CUSTOM.replace("name: crm\n", "name: crm\nas_of: 2026-07-01\n").replace(
    "      region_id: office\n",
    "      region_id: office\n      created_at: {sql: \"as_of() - INTERVAL 30 DAY\"}\n"
    "      churned_at: {sql: \"CASE WHEN Tier__c = 'silver' THEN as_of() - INTERVAL 1 DAY END\"}\n")


def test_a_mapping_as_of_is_the_sources_default_as_of_and_readable_in_sql(tmp_path, own_store):
    con = data.connect(custom_export(tmp_path), write(tmp_path, AS_OF_MAPPING))
    assert data.data_as_of(con) == pd.Timestamp("2026-07-01")
    _results, report = data.validate_source(con, tables=["accounts"])
    assert report.tables["accounts"].rejected == 0
    acc = _results["accounts"].accepted.set_index("account_id")
    assert (acc["created_at"] == pd.Timestamp("2026-06-01")).all()
    assert acc["churned_at"].tolist()[1] == pd.Timestamp("2026-06-30") and acc["churned_at"].isna().sum() == 2


def test_as_of_in_sql_without_a_declared_as_of_is_a_clear_error(tmp_path, own_store):
    mapping = write(tmp_path, AS_OF_MAPPING.replace("as_of: 2026-07-01\n", ""))
    with pytest.raises(SourceError, match=r"uses as_of\(\) but declares no as_of"):
        data.connect(custom_export(tmp_path), mapping)


def test_churned_at_follows_the_rules_of_timestamps(tmp_path, own_store):
    """Not in the future, not before created_at, unreadable = wrong type: each rejects its row."""
    mapping = AS_OF_MAPPING.replace("as_of() - INTERVAL 1 DAY", "CAST(Renewal__c AS VARCHAR)").replace(
        "Tier__c = 'silver'", "Renewal__c IS NOT NULL")
    rows = CRM_EXPORT.replace("2026-03-01 10:00", "2026-05-01").replace("2027-01-15", "soon")
    rows = rows.replace("a3,Cork,West,gold,slow payer,,,,,", "a3,Cork,West,gold,slow payer,,,,2026-06-30,")
    con = data.connect(custom_export(tmp_path, rows), write(tmp_path, mapping))
    _results, report = data.validate_source(con, as_of=pd.Timestamp("2026-06-30"), tables=["accounts"])
    problems = report.tables["accounts"].problems
    found = {k: set(zip(g["column"].fillna(""), g["rule"], strict=True)) for k, g in problems.groupby("row_key")}
    assert found == {"a1": {("", "churned_at_not_before_created_at")},          # 2026-05-01 < 2026-06-01
                     "a2": {("churned_at", "wrong_type"), ("renewal_at", "wrong_type")}}   # 'soon'
    _results, report = data.validate_source(con, as_of=pd.Timestamp("2026-06-29"), tables=["accounts"])
    late = report.tables["accounts"].problems
    assert late[late["row_key"] == "a3"]["rule"].tolist() == ["not_in_future"]
