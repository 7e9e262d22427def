"""Data quality (notebook 00) on a tiny demo with planted problems — each count worked out from the planted
changes or checked against an independent pandas computation on the files — and the across-runs record (drift,
trend) on hand-made records."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from crmlens import data
from crmlens.metrics import quality as q
from crmlens.params import load_params

STALE_FROM = pd.Timestamp("2026-06-01")
N_SURVEYS_KEPT: int


@pytest.fixture(scope="module")
def dirty(tiny_demo, tmp_path_factory):
    """The tiny demo with: two accounts named like one company in the same city (different legal forms and
    case), one contract pointing to no account, one opportunity with a negative amount (rejected: amount ≥ 0),
    surveys that stopped on 2026-06-01 (the others run to the end of September)."""
    out = tmp_path_factory.mktemp("dirty")
    for f in tiny_demo.glob("*.parquet"):
        shutil.copy(f, out / f.name)
    acc = pd.read_parquet(out / "accounts.parquet")
    acc.loc[1, ["country", "city"]] = acc.loc[0, ["country", "city"]].to_numpy()
    acc.loc[0, "name"], acc.loc[1, "name"] = "Acme Robotics Co., Ltd.", "ACME robotics ltd"
    acc.to_parquet(out / "accounts.parquet", index=False)
    con = pd.read_parquet(out / "contracts.parquet")
    con.loc[5, "account_id"] = "NOPE"
    con.to_parquet(out / "contracts.parquet", index=False)
    opp = pd.read_parquet(out / "opportunities.parquet")
    opp.loc[7, "amount"] = -100.0
    opp.to_parquet(out / "opportunities.parquet", index=False)
    sv = pd.read_parquet(out / "surveys.parquet")
    sv[sv["responded_at"] < STALE_FROM].to_parquet(out / "surveys.parquet", index=False)
    return out


@pytest.fixture(scope="module")
def s(dirty):
    return data.open_slice(load_params({"region": "all", "source": str(dirty)}))


def test_overview_counts_loaded_as_accepted_plus_rejected_and_absent_is_not_zero(s, dirty):
    ov = q.table_overview(s).set_index("table")
    present = ov[ov["status"] != "absent"]
    assert (present["loaded"] == present["accepted"] + present["rejected"]).all()
    assert int(ov.loc["opportunities", "rejected"]) == 1
    assert int(ov.loc["contracts", "rejected"]) >= 1  # the orphan (and what hangs on it)
    assert int(ov.loc["accounts", "loaded"]) == len(pd.read_parquet(dirty / "accounts.parquet"))
    assert ov.loc["opportunities", "rejected_share"] == pytest.approx(1 / int(ov.loc["opportunities", "loaded"]))
    found = q.describe_overview(q.table_overview(s))
    rejected = int(ov.loc[ov["status"] != "absent", "rejected"].sum())
    assert found.severity == "info" and f"{rejected} of" in found.text and "(0.03%)" in found.text


def test_an_absent_table_has_no_counts(tiny_demo, tmp_path):
    for f in tiny_demo.glob("*.parquet"):
        if f.stem != "surveys":
            shutil.copy(f, tmp_path / f.name)
    ov = q.table_overview(data.open_slice(load_params({"region": "all", "source": str(tmp_path)})))
    row = ov.set_index("table").loc["surveys"]
    assert row["status"] == "absent" and row["status_label"] == "not in this source"
    assert pd.isna(row["loaded"]) and pd.isna(row["rejected"])


def test_problems_name_the_rule_column_value_and_source_row(s):
    by_rule = q.problems_by_rule(s)
    opp = by_rule[(by_rule["table"] == "opportunities") & (by_rule["column"] == "amount")].iloc[0]
    assert opp["rule"] == "min" and int(opp["rows"]) == 1 and opp["example_value"].startswith("-100")
    assert opp["example_source_row"] == "8"  # row 7 of the frame: the file's 8th row
    fk = by_rule[(by_rule["table"] == "contracts") & (by_rule["rule"] == "foreign_key")].iloc[0]
    assert fk["column"] == "account_id" and fk["example_value"] == "NOPE" and fk["outcome_label"] == "rejected"
    top = by_rule.iloc[0]  # the stage history of the rejected opportunity: its rows lose their parent
    assert int(top["rows"]) == int(by_rule["rows"].max())
    assert f"{top['table_label']}.{top['column']}" in q.describe_problems(by_rule).text
    assert int(by_rule["rows"].sum()) == len(s.store.problems())
    examples = q.problem_examples(s)
    assert (examples["problem_value"] == "NOPE").any()


def test_orphans_per_relationship(s):
    links = q.orphans(s).set_index("relationship")
    assert int(links.loc["contracts.account_id → accounts.account_id", "orphans"]) == 1
    # the rejected opportunity's stage history: its parent exists but was rejected
    history = links.loc["opportunity_stage_history.opportunity_id → opportunities.opportunity_id"]
    assert int(history["orphans"]) == 0 and int(history["parent_rejected"]) == 5
    found = q.describe_orphans(q.orphans(s))
    assert found.severity == "watch" and "contracts.account_id" in found.text and "(1 row)" in found.text
    assert "only because" in found.text


def test_completeness_matches_pandas_on_the_file(s, dirty):
    frame = q.completeness(s).set_index(["table", "column"])
    leads = pd.read_parquet(dirty / "leads.parquet")  # no lead was rejected: accepted rows = the file
    for column in ("campaign_id", "sql_at", "opportunity_id"):
        assert frame.loc[("leads", column), "empty_share"] == pytest.approx(leads[column].isna().mean())
        assert int(frame.loc[("leads", column), "n_empty"]) == int(leads[column].isna().sum())
    assert "columns have empty values" in q.describe_completeness(q.completeness(s)).text


def test_freshness_finds_the_table_that_stopped(s):
    fresh = q.freshness(s).set_index("table")
    assert bool(fresh.loc["surveys", "is_stale"]) and fresh.loc["surveys", "latest_record_at"] < STALE_FROM
    assert not fresh.drop(index="surveys")["is_stale"].any()
    found = q.describe_freshness(q.freshness(s))
    assert found.severity == "act" and "Surveys" in found.text


def test_near_duplicates_finds_the_planted_pair(s):
    dup = q.near_duplicates(s)
    mine = dup[dup["shared_value"].str.startswith("acme robotics (")]
    assert len(mine) == 1 and mine.iloc[0]["ids"] == "A00001, A00002" and int(mine.iloc[0]["n_ids"]) == 2


@pytest.mark.parametrize(("raw", "expected"), [
    ("ACME, Inc.", "acme"), ("Acme Inc", "acme"), ("  Pearl   Pharma Holdings ", "pearl pharma"),
    ("北京星辰科技有限公司", "北京星辰科技"), ("", ""), (None, ""),
])
def test_normalize_name(raw, expected):
    assert q.normalize_name(raw) == expected


def test_normalize_phone_and_email():
    assert q.normalize_phone("+1 (555) 010-2000") == "15550102000" and q.normalize_phone("12 34") == ""
    assert q.normalize_email(" Ann@Example.COM ") == "ann@example.com" and q.normalize_email("n/a") == ""


def test_kpis_from_the_overview(s):
    ov = q.table_overview(s)
    present = ov[ov["status"] != "absent"]
    frames = {q.OVERVIEW: ov}
    assert q.rejected_row_share(frames, None) == pytest.approx(present["rejected"].sum() / present["loaded"].sum())
    assert q.unusable_tables(frames, None) == 0.0
    assert q.problem_rows(frames, None) == float(present["rejected"].sum() + present["warned"].sum())
    assert q.rejected_row_share({}, None) is None  # no overview: no data, not 0


def test_snapshot_round_trips_and_carries_categories(s):
    import json

    record = q.snapshot(s, q.table_overview(s), q.problems_by_rule(s))
    back = json.loads(json.dumps(record))
    assert back["tables"]["opportunities"]["rejected"] == 1 and back["tables"]["surveys"]["status"] == "ok"
    stages = back["categories"]["accounts"]["industry"]
    assert sum(stages.values()) == pytest.approx(1.0, abs=1e-3) or len(stages) == q.MAX_CATEGORIES


def _record(run: str, problem_rows: dict[str, int], industry: dict[str, float]) -> dict:
    return {"run": run, "as_of": "2026-10-01T00:00:00", "categories": {"accounts": {"industry": industry}},
            "tables": {t: {"status": "ok", "loaded": 100, "rejected": n, "warned": 0} for t, n in problem_rows.items()}}


def test_drift_names_new_gone_and_moved_values():
    before = _record("r1", {"leads": 0}, {"Tech": 0.5, "Retail": 0.3, "Energy": 0.2})
    after = _record("r2", {"leads": 0}, {"Tech": 0.4, "Retail": 0.32, "Health": 0.28})
    moved = q.drift(before, after).set_index("category_value")
    assert set(moved.index) == {"Health", "Energy", "Tech"}  # Retail moved 0.02 < DRIFT_MIN_SHARE
    assert moved.loc["Health", "drift_change"] == "new value" and pd.isna(moved.loc["Health", "share_before"])
    assert moved.loc["Energy", "drift_change"] == "value gone" and moved.loc["Tech", "drift_change"] == "share moved"
    assert q.drift(None, after) is None
    assert "3 categorical values changed" in q.describe_drift(q.drift(before, after), before).text


def test_a_table_worse_run_after_run_is_an_act_finding():
    history = [_record("r1", {"leads": 1, "tickets": 5}, {}), _record("r2", {"leads": 4, "tickets": 5}, {})]
    trend = q.problem_trend(history, _record("", {"leads": 9, "tickets": 5}, {}))
    assert list(trend[trend["table"] == "leads"]["problem_rows"]) == [1, 4, 9]
    found = q.describe_trend(trend)
    assert found.severity == "act" and "Leads" in found.text and "4 → 9" in found.text
    better = q.problem_trend(history, _record("", {"leads": 2, "tickets": 5}, {}))
    assert q.describe_trend(better).severity == "good"
    assert q.problem_trend([], _record("", {"leads": 2}, {})) is None
    assert q.describe_history([]).severity == "info" and q.describe_history(history) is None


def test_previous_snapshots_reads_earlier_runs_of_the_same_source_and_region(s, tmp_path, monkeypatch):
    import json

    from crmlens import paths

    monkeypatch.setenv(paths.RUN_DIR_ENV, str(tmp_path / "run3"))
    for run, source in (("run1", s.info.source), ("run2", "elsewhere")):
        folder = tmp_path / run / "all" / "2026-Q3"
        folder.mkdir(parents=True)
        (folder / q.FILENAME).write_text(json.dumps({"source": str(source), "region": "all", "tables": {}}))
    (tmp_path / "run3" / "all" / "2026-Q3").mkdir(parents=True)
    (tmp_path / "run3" / "all" / "2026-Q3" / q.FILENAME).write_text(
        json.dumps({"source": str(s.info.source), "region": "all"}))  # this run's own: not "earlier"
    found = q.previous_snapshots(s)
    assert [f["run"] for f in found] == ["run1"]
    assert np.isfinite(len(found))


def test_in_the_run_it_comes_first_leads_the_summary_and_the_next_run_compares(dirty, tmp_path):
    """`crmlens run` on the dirty source (region East): notebook 00 runs first, its finding on the stopped table
    opens the executive summary before the funnel's findings, and it writes quality.json; a second run reads it
    back."""
    from crmlens.findings import Finding
    from crmlens.run import runner
    from crmlens.run.runner import RunOptions
    from crmlens.run.summary import executive_summary

    def run(run_id: str, notebooks: str) -> dict:
        result = runner.run(RunOptions(source=str(dirty), regions="East", notebooks=notebooks, outputs_dir=tmp_path,
                                       exports=(), progress=False, workers=1, run_id=run_id))
        assert result.manifest["summary"]["failed"] == 0
        return result.manifest

    first = run("r1", "00_*,02_*")
    assert [t["notebook"] for t in first["tasks"]] == ["00_data_quality", "02_sales_funnel"]
    findings = [Finding.from_record(r) for t in first["tasks"] for r in t["findings"]]
    top = executive_summary(findings)
    assert top[0].notebook == "00_data_quality" and "Surveys" in top[0].text  # the stopped table leads
    assert any(f.notebook == "02_sales_funnel" and f.severity == "act" for f in top[1:])
    record = json.loads((tmp_path / "r1" / "East" / "2026-Q3" / q.FILENAME).read_text())
    assert record["tables"]["opportunities"]["rejected"] == 1 and record["source"] == str(dirty)
    second = run("r2", "00_*")
    texts = " ".join(r["text"] for t in second["tasks"] for r in t["findings"])
    assert "No category appeared" in texts and "(r1)" in texts  # compared with r1's record
    assert "As many problem rows as in the previous run" in texts
    # the kernel clients papermill made for the pool's kernels were stopped: no heartbeat thread outlives a task
    # (it reopened sockets forever once its kernel was gone: "Too many open files" after many runs)
    import threading

    from jupyter_client.channels import HBChannel

    assert not [t for t in threading.enumerate() if isinstance(t, HBChannel)]


def test_problem_changes_compare_each_kind_of_problem_as_a_share_of_its_table():
    def rec(run, problems, loaded=200):
        return {"run": run, "tables": {"payments": {"status": "ok", "loaded": loaded}},
                "problems": [{"table": "payments", "column": c, "rule": r, "rows": n} for c, r, n in problems]}

    before = rec("r1", [("amount", "min", 2), ("received_at", "wrong_type", 10)])
    after = rec("r2", [("amount", "min", 18), ("received_at", "wrong_type", 11), ("payment_id", "duplicate_key", 1)])
    changed = q.problem_changes(before, after).set_index("rule")
    # amount < 0: 1 % → 9 % of the rows; the date problem 5 % → 5.5 % (< DRIFT_MIN_SHARE: not listed)
    assert set(changed.index) == {"min", "duplicate_key"}
    assert changed.loc["min", "share_before"] == pytest.approx(0.01) and changed.loc["min", "share_now"] == 0.09
    assert changed.loc["duplicate_key", "drift_change"] == "new problem" and changed.loc["min", "rows_before"] == 2
    found = q.describe_problem_changes(q.problem_changes(before, after), before)
    assert found.severity == "watch" and "Payments.amount" in found.text and "1.0% to 9.0%" in found.text
    assert q.problem_changes(None, after) is None
    assert q.describe_problem_changes(q.problem_changes(after, before), after) is None  # only better: no finding


def test_an_unusable_table_is_said_first_and_leads():
    from crmlens.findings import leads

    overview = pd.DataFrame({"table": ["payments", "leads", "surveys"], "table_label": ["Payments", "Leads", "Surveys"],
                             "status": ["unusable", "ok", "absent"], "loaded": [3, 10, None],
                             "accepted": [0, 10, None], "rejected": [3, 0, None], "warned": [0, 0, None],
                             "rejected_share": [1.0, 0.0, None]})
    found = q.describe_overview(overview)
    assert found.severity == "act" and found.text.startswith("Table Payments cannot be used") and leads(found)
    assert "Surveys" in found.text  # the table the source does not have is named, not counted as zero
    assert q.unusable_tables({q.OVERVIEW: overview}, None) == 1.0
