"""A sales rep's day (`crmlens.metrics.myday`) on hand-made frames, each expectation worked out by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from crmlens.errors import ParameterError
from crmlens.kpis import KpiContext
from crmlens.metrics import myday

T = pd.Timestamp
#: Q3 2026, as of 2026-09-20: the reference time is the as-of (before the period end).
CTX = KpiContext(period_start=T("2026-07-01"), period_end=T("2026-10-01"), as_of=T("2026-09-20"))


def _opps() -> pd.DataFrame:
    rows = [  # id, account, rep, created, closed, stage, amount, expected close
        ("O1", "A1", "R1", "2026-05-01", None, "Proposal", 100.0, "2026-10-15"),  # active: activity 5 days ago
        ("O2", "A2", "R1", "2026-06-01", None, "Qualification", 50.0, "2026-11-30"),  # stale: silent 50 days
        ("O3", "A1", "R1", "2026-07-01", None, "Negotiation", 300.0, "2026-09-01"),  # stale: close date passed
        ("O4", "A3", "R1", "2026-03-01", "2026-08-01", "Closed Won", 999.0, "2026-08-01"),  # closed: not open
        ("O5", "A3", "R2", "2026-07-01", None, "Proposal", 80.0, "2026-12-01"),  # another rep's
        ("O6", "A2", "R1", "2026-09-25", None, "Qualification", 20.0, "2026-12-01"),  # created after now
        ("O7", "A3", "R1", "2026-09-10", None, "Qualification", 10.0, "2026-12-01"),  # new, no activity: 10 days
    ]
    out = pd.DataFrame(rows, columns=["opportunity_id", "account_id", "owner_rep_id", "created_at", "closed_at",
                                      "stage", "amount", "expected_close_date"])
    for c in ("created_at", "closed_at", "expected_close_date"):
        out[c] = pd.to_datetime(out[c])
    return out


def _acts() -> pd.DataFrame:
    rows = [  # id, rep, account, opportunity, type, due, occurred, completed
        ("C1", "R1", "A1", "O1", "call", None, "2026-09-15", "2026-09-15"),
        ("C2", "R2", "A1", "O1", "email", None, "2026-09-01", "2026-09-01"),
        ("C3", "R1", "A2", "O2", "meeting", None, "2026-08-01", "2026-08-01"),
        ("C4", "R1", "A1", "O1", "meeting", "2026-09-25", None, None),  # O1's next step; due in 5 days
        ("C5", "R1", "A1", "O1", "task", "2026-09-28", None, None),  # later: not the next step; due in 8 days
        ("C6", "R1", "A2", "O2", "call", "2026-09-10", None, None),  # overdue by 10 days
        ("C7", "R1", "A3", None, "task", "2026-09-19", None, "2026-09-19"),  # completed: not due
        ("C8", "R2", "A3", "O5", "call", "2026-09-18", None, None),  # another rep's
        ("C9", "R1", "A1", "O3", "call", None, "2026-09-19", "2026-09-19"),  # O3: active but past close date
    ]
    out = pd.DataFrame(rows, columns=["activity_id", "rep_id", "account_id", "opportunity_id", "activity_type",
                                      "due_at", "occurred_at", "completed_at"])
    for c in ("due_at", "occurred_at", "completed_at"):
        out[c] = pd.to_datetime(out[c])
    return out


ACCOUNTS = pd.DataFrame({"account_id": ["A1", "A2", "A3"], "name": ["Alpha", "Beta", "Gamma"]})


def test_open_deals_of_the_rep_with_last_activity_next_step_and_staleness():
    out = myday.pipeline(_opps(), _acts(), ACCOUNTS, CTX, "R1")
    assert list(out.columns) == myday.PIPELINE_COLUMNS
    # stale first (by amount: O3 300, O2 50), then the others by amount (O1 100, O7 10)
    assert list(out["opportunity_id"]) == ["O3", "O2", "O1", "O7"]
    row = out.set_index("opportunity_id")
    assert row.loc["O1", "last_activity_at"] == T("2026-09-15")  # the latest by anyone (C1 > C2)
    assert row.loc["O1", "days_since_activity"] == 5 and not row.loc["O1", "is_stale"]
    assert row.loc["O1", "next_step"] == "meeting" and row.loc["O1", "next_step_due_at"] == T("2026-09-25")
    assert row.loc["O2", "days_since_activity"] == 50 and row.loc["O2", "is_stale"]
    assert row.loc["O2", "next_step"] == "call"  # overdue, still the next step
    assert row.loc["O3", "close_date_passed"] and row.loc["O3", "is_stale"]
    assert row.loc["O3", "days_since_activity"] == 1
    assert pd.isna(row.loc["O7", "days_since_activity"]) and not row.loc["O7", "is_stale"]  # 10 days old
    assert row.loc["O1", "account_name"] == "Alpha"
    assert myday.pipeline(_opps(), _acts(), ACCOUNTS, CTX, "R1", stale_days=5).set_index("opportunity_id").loc[
        "O1", "is_stale"]


def test_without_activities_only_the_close_date_and_age_make_a_deal_stale():
    out = myday.pipeline(_opps(), None, None, CTX, "R1").set_index("opportunity_id")
    assert out["is_stale"].to_dict() == {"O3": True, "O2": True, "O1": True, "O7": False}  # O1: 142 days old
    assert out["next_step"].isna().all() and out["account_name"].isna().all()


def test_agenda_lists_overdue_and_due_activities_of_the_rep():
    out = myday.agenda(_acts(), ACCOUNTS, CTX, "R1")
    assert list(out.columns) == myday.AGENDA_COLUMNS
    assert list(out["activity_id"]) == ["C6", "C4"]  # C5 is due in 8 days (> 7), C7 done, C8 another rep's
    assert list(out["status"]) == ["overdue", "due"] and out["days_overdue"].iloc[0] == 10
    assert pd.isna(out["days_overdue"].iloc[1]) and list(out["account_name"]) == ["Beta", "Alpha"]
    assert list(myday.agenda(_acts(), ACCOUNTS, CTX, "R1", due_days=9)["activity_id"]) == ["C6", "C4", "C5"]


def test_findings_say_what_to_do_and_nothing_without_rows():
    found = myday.describe_pipeline(myday.pipeline(_opps(), _acts(), ACCOUNTS, CTX, "R1"))
    assert found.severity == "act" and "4 open deals worth 460" in found.text and "2 stale" in found.text
    assert "worth 350" in found.text and found.recommendation
    assert myday.describe_pipeline(myday.pipeline(_opps(), _acts(), ACCOUNTS, CTX, "R9")) is None
    agenda = myday.describe_agenda(myday.agenda(_acts(), ACCOUNTS, CTX, "R1"))
    assert agenda.text == "1 overdue and 1 due in the next 7 days." and agenda.severity == "act"
    assert myday.describe_agenda(myday.agenda(_acts(), ACCOUNTS, CTX, "R2")).text.startswith("1 overdue")


@pytest.mark.parametrize(("kwargs", "words"), [({"rep": ""}, "rep: ''"), ({"rep": None}, "rep: None"),
                                               ({"rep": "R1", "stale_days": 0}, "stale_days: 0")])
def test_bad_arguments_are_named(kwargs, words):
    with pytest.raises(ParameterError, match=words.replace("(", r"\(")):
        myday.pipeline(_opps(), _acts(), ACCOUNTS, CTX, **kwargs)
