"""The validator: one test per failure mode, on hand-made frames whose answer is known."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from crmlens.schema import SCHEMA, Vocabulary
from crmlens.validate import REASONS, SOURCE_ROW, coerce_column, validate_table, validate_tables

AS_OF = pd.Timestamp("2026-10-01")


def opportunities(**changes: list) -> pd.DataFrame:
    """Three valid opportunities (o1 won, o2 lost, o3 open); `changes` replaces whole columns."""
    base = {
        "opportunity_id": ["o1", "o2", "o3"],
        "account_id": ["a1", "a1", "a2"],
        "owner_rep_id": ["r1", "r1", "r2"],
        "product_id": ["p1", "p1", "p1"],
        "region_id": ["East", "East", "West"],
        "created_at": ["2026-01-05", "2026-02-01", "2026-03-01"],
        "stage": ["Won", "Lost", "Proposal"],
        "amount": ["100.5", "0", "250"],
        "closed_at": ["2026-02-01", "2026-03-01", None],
        "is_won": ["true", "false", None],
        SOURCE_ROW: [2, 3, 4],
    }
    base.update(changes)
    return pd.DataFrame(base)


def keys(parent: str, column: str) -> set[str] | None:
    return {"reps": {"r1", "r2"}, "accounts": {"a1", "a2"}, "products": {"p1"},
            "regions": {"East", "West"}}.get(parent)


def run(df: pd.DataFrame, name: str = "opportunities"):
    return validate_table(name, df, as_of=AS_OF, parent_keys=keys)


def rejects_of(result, rule: str) -> pd.DataFrame:
    problems = result.report.problems
    return problems[problems["rule"] == rule]


def assert_reconciles(result) -> None:
    rep = result.report
    assert rep.loaded == rep.accepted + rep.rejected
    assert len(result.accepted) == rep.accepted and len(result.rejected) == rep.rejected


def test_valid_rows_are_all_accepted_with_canonical_types():
    result = run(opportunities())
    assert result.report.rejected == 0 and result.report.status == "ok"
    acc = result.accepted
    assert str(acc["amount"].dtype) == "float64" and acc["amount"].tolist() == [100.5, 0.0, 250.0]
    assert str(acc["created_at"].dtype) == "datetime64[us]"
    assert acc["is_won"].tolist()[:2] == [True, False] and pd.isna(acc["is_won"].iloc[2])
    assert acc[SOURCE_ROW].tolist() == [2, 3, 4]


def test_input_frame_is_not_modified():
    df = opportunities(amount=["x", "1", "2"])
    before = df.copy()
    run(df)
    pd.testing.assert_frame_equal(df, before)


def test_missing_required_column_makes_table_unusable_and_rejects_every_row():
    df = opportunities().drop(columns=["owner_rep_id"])
    result = run(df)
    assert result.report.status == "unusable" and not result.report.usable
    assert result.report.rejected == 3 and result.report.accepted == 0
    msgs = rejects_of(result, "missing_column")["message"]
    assert msgs.str.contains("owner_rep_id").all()
    assert result.rejected[REASONS].str.contains("required column 'owner_rep_id' is missing").all()
    assert_reconciles(result)


def test_missing_optional_column_is_added_empty_and_noted():
    result = run(opportunities().drop(columns=["product_id"]))
    assert result.report.rejected == 0
    assert result.accepted["product_id"].isna().all()
    assert any("product_id" in n for n in result.report.notes)


def test_wrong_type_rejects_the_row_naming_column_and_value():
    result = run(opportunities(amount=["100", "abc", "3"]))
    bad = rejects_of(result, "wrong_type")
    assert bad["column"].tolist() == ["amount"] and bad["value"].tolist() == ["abc"]
    assert bad["row_key"].tolist() == ["o2"] and bad["source_row"].tolist() == [3]
    assert "opportunities.amount" in bad["message"].iloc[0] and "'abc'" in bad["message"].iloc[0]
    assert result.rejected["opportunity_id"].tolist() == ["o2"]
    assert "amount: not a valid float" in result.rejected[REASONS].iloc[0]
    assert_reconciles(result)


def test_unreadable_timestamp_is_wrong_type():
    result = run(opportunities(created_at=["2026-01-05", "31/02/2026", "2026-03-01"]))
    bad = rejects_of(result, "wrong_type")
    assert bad["column"].tolist() == ["created_at"] and bad["value"].tolist() == ["31/02/2026"]


def test_duplicate_key_keeps_first_and_rejects_the_later_row():
    result = run(opportunities(opportunity_id=["o1", "o2", "o1"]))
    dup = rejects_of(result, "duplicate_key")
    assert dup["row_key"].tolist() == ["o1"] and dup["source_row"].tolist() == [4]
    assert "first seen at source row 2" in dup["message"].iloc[0]
    assert result.accepted["opportunity_id"].tolist() == ["o1", "o2"]
    assert_reconciles(result)


def test_dangling_foreign_key_is_rejected_naming_parent():
    result = run(opportunities(owner_rep_id=["r1", "ghost", "r2"]))
    fk = rejects_of(result, "foreign_key")
    assert fk["column"].tolist() == ["owner_rep_id"] and fk["value"].tolist() == ["ghost"]
    assert "no reps row has rep_id" in fk["message"].iloc[0]
    assert_reconciles(result)


def test_value_outside_allowed_set_lists_the_allowed_values():
    result = run(opportunities(stage=["Won", "Lost", "Maybe"]))
    bad = rejects_of(result, "allowed_values")
    assert bad["column"].tolist() == ["stage"] and bad["value"].tolist() == ["Maybe"]
    assert "Prospecting, Qualification, Proposal, Negotiation, Won, Lost" in bad["message"].iloc[0]


def test_allowed_stages_come_from_the_source_vocabulary():
    vocab = Vocabulary(stages=("Prospecting", "Engaging", "Won", "Lost"))
    df = opportunities(stage=["Won", "Lost", "Engaging"])
    result = validate_table("opportunities", df, vocab=vocab, as_of=AS_OF)
    assert result.report.rejected == 0
    result = validate_table("opportunities", opportunities(), vocab=vocab, as_of=AS_OF)
    assert rejects_of(result, "allowed_values")["value"].tolist() == ["Proposal"]


def test_negative_amount_is_rejected():
    result = run(opportunities(amount=["100", "-5", "3"]))
    bad = rejects_of(result, "min")
    assert bad["column"].tolist() == ["amount"] and bad["row_key"].tolist() == ["o2"]
    assert "below the minimum 0" in bad["message"].iloc[0]


def test_close_date_before_create_date_breaks_the_row_rule():
    result = run(opportunities(closed_at=["2025-12-31", "2026-03-01", None]))
    bad = rejects_of(result, "closed_at_not_before_created_at")
    assert bad["row_key"].tolist() == ["o1"]
    assert "closed_at=2025-12-31" in bad["message"].iloc[0] and "created_at=2026-01-05" in bad["message"].iloc[0]
    assert result.rejected["opportunity_id"].tolist() == ["o1"]


def test_timestamp_in_the_future_is_rejected():
    result = run(opportunities(created_at=["2026-01-05", "2026-02-01", "2027-01-01"]))
    bad = rejects_of(result, "not_in_future")
    assert bad["column"].tolist() == ["created_at"] and bad["row_key"].tolist() == ["o3"]
    assert "2026-10-01" in bad["message"].iloc[0]


def test_required_value_empty_is_rejected():
    result = run(opportunities(region_id=["East", "", "West"]))
    bad = rejects_of(result, "not_null")
    assert bad["column"].tolist() == ["region_id"] and bad["row_key"].tolist() == ["o2"]


def test_outcome_must_match_stage():
    result = run(opportunities(is_won=["false", "false", None]))
    assert rejects_of(result, "outcome_matches_stage")["row_key"].tolist() == ["o1"]
    result = run(opportunities(closed_at=["2026-02-01", "2026-03-01", "2026-03-05"]))
    assert rejects_of(result, "outcome_matches_stage")["row_key"].tolist() == ["o3"]


def test_optional_value_with_warning_is_kept_and_reported():
    result = run(opportunities(account_id=["a1", None, "a2"]))
    warn = rejects_of(result, "missing_value")
    assert warn["severity"].tolist() == ["warn"] and warn["row_key"].tolist() == ["o2"]
    assert result.report.rejected == 0 and result.report.status == "warnings"


def test_row_failing_several_rules_is_rejected_once_with_every_reason():
    result = run(opportunities(amount=["-1", "0", "1"], stage=["Bogus", "Lost", "Proposal"],
                               is_won=[None, "false", None], closed_at=[None, "2026-03-01", None]))
    assert result.report.rejected == 1
    reasons = result.rejected[REASONS].iloc[0]
    assert "amount" in reasons and "stage" in reasons
    assert_reconciles(result)


def test_composite_key_duplicates():
    df = pd.DataFrame({"opportunity_id": ["o1", "o1", "o1"], "stage": ["Prospecting", "Proposal", "Prospecting"],
                       "entered_at": ["2026-01-01", "2026-01-05", "2026-01-01"], "exited_at": [None] * 3})
    result = validate_table("opportunity_stage_history", df, as_of=AS_OF)
    dup = rejects_of(result, "duplicate_key")
    assert dup["row_key"].tolist() == ["o1|Prospecting|2026-01-01"]  # as written in the source


def test_validate_tables_checks_foreign_keys_against_accepted_parents_only():
    reps = pd.DataFrame({"rep_id": ["r1", "r1"], "name": ["A", "B"], "region_id": ["East", "East"],
                         "is_active": ["yes", "no"]})
    regions = pd.DataFrame({"region_id": ["East"], "name": ["East"], "country": ["CN"]})
    contracts = pd.DataFrame({"contract_id": ["c1", "c2"], "account_id": ["a1", "a1"], "owner_rep_id": ["r1", "r9"],
                              "region_id": ["East", "East"], "signed_at": ["2026-01-01"] * 2, "amount": [1, 2]})
    _results, report = validate_tables({"reps": reps, "regions": regions, "contracts": contracts}, as_of=AS_OF)
    assert report.tables["reps"].rejected == 1  # duplicate rep_id
    fk = report.problems[report.problems["rule"] == "foreign_key"]
    assert fk["value"].tolist() == ["r9"]
    assert list(report.tables) == ["regions", "reps", "contracts"]  # dependency order
    payload = json.loads(json.dumps(report.to_dict(), default=str))
    assert payload["tables"]["contracts"] == {**payload["tables"]["contracts"], "loaded": 2, "accepted": 1,
                                              "rejected": 1}


@pytest.mark.parametrize(
    ("dtype", "values", "expected_bad"),
    [
        ("int", ["1", "2.0", "2.5", "x", None, ""], [False, False, True, True, False, False]),
        ("bool", ["TRUE", "no", "1", "maybe", None], [False, False, False, True, False]),
        ("float", ["1e3", " 4 ", "1,5"], [False, False, True]),
    ],
)
def test_coerce_column_flags_unreadable_values(dtype, values, expected_bad):
    column = next(c for t in SCHEMA.values() for c in t.columns if c.dtype == dtype)
    _, bad = coerce_column(pd.Series(values, dtype=object), column)
    assert bad.tolist() == expected_bad


def test_text_report_lists_counts_and_problems():
    result = run(opportunities(amount=["100", "abc", "3"]))
    from crmlens.validate import ValidationReport

    text = ValidationReport("test", {"opportunities": result.report}).to_text()
    assert "opportunities" in text and "wrong_type" in text and "'abc'" in text


# ------------------------------------------------------------------------------------------ custom fields

def test_custom_fields_are_typed_and_an_unreadable_value_rejects_its_row():
    frame = pd.DataFrame({"account_id": ["a1", "a2", "a3"], "name": ["Acme", "Bolt", "Cork"],
                          "Tier__c": [" gold ", "silver", None], "Seats__c": ["12", "twelve", ""],
                          "Vip__c": ["yes", "no", "0"], SOURCE_ROW: [2, 3, 4]})
    result = validate_table("accounts", frame, as_of=AS_OF,
                            custom_fields={"Tier__c": "category", "Seats__c": "integer", "Vip__c": "boolean"})
    assert_reconciles(result)
    acc = result.accepted
    assert acc.columns.tolist() == [*SCHEMA["accounts"].column_names, "Tier__c", "Seats__c", "Vip__c", SOURCE_ROW]
    assert acc["Tier__c"].tolist()[0] == "gold" and str(acc["Seats__c"].dtype) == "Int64"
    assert acc["account_id"].tolist() == ["a1", "a3"] and acc["Vip__c"].tolist() == [True, False]
    bad = rejects_of(result, "wrong_type").iloc[0]
    assert (bad["column"], bad["row_key"], bad["source_row"], bad["value"]) == ("Seats__c", "a2", 3, "twelve")
    assert bad["message"] == "accounts.Seats__c (row key a2, source row 3): 'twelve' — not a valid integer [wrong_type]"
    assert "custom fields kept: Tier__c (category), Seats__c (integer), Vip__c (boolean)" in result.report.notes


def test_columns_not_declared_as_custom_fields_are_still_ignored():
    frame = pd.DataFrame({"account_id": ["a1"], "name": ["Acme"], "Tier__c": ["gold"]})
    result = validate_table("accounts", frame)
    assert "Tier__c" not in result.accepted and "ignored columns not in the model: Tier__c" in result.report.notes


@pytest.mark.parametrize(("fields", "expected"), [
    ({"name": "string"}, "clashes with the canonical column 'name' of accounts"),
    ({"CREATED_AT": "timestamp"}, "clashes with the canonical column 'created_at'"),
    ({"tier": "text"}, "'text' is not a custom field type"),
    ({"_rid": "integer"}, "reserved for meta columns"),
])
def test_a_custom_field_that_clashes_or_has_no_type_is_a_schema_error(fields, expected):
    from crmlens.errors import SchemaError

    frame = pd.DataFrame({"account_id": ["a1"], "name": ["Acme"]})
    with pytest.raises(SchemaError, match=f"custom field accounts\\.{next(iter(fields))}: .*{expected}"):
        validate_table("accounts", frame, custom_fields=fields)


def test_churned_at_is_a_timestamp_not_in_the_future_and_not_before_creation():
    frame = pd.DataFrame({"account_id": ["a1", "a2", "a3", "a4"], "name": ["A", "B", "C", "D"],
                          "created_at": ["2025-01-01"] * 4,
                          "churned_at": ["2026-03-31", "2024-12-31", "2026-12-01", "lost"]})
    result = validate_table("accounts", frame, as_of=AS_OF)
    assert result.accepted["account_id"].tolist() == ["a1"]
    rules = dict(zip(result.report.problems["row_key"], result.report.problems["rule"], strict=True))
    assert rules == {"a2": "churned_at_not_before_created_at", "a3": "not_in_future", "a4": "wrong_type"}
