"""The engine validator (DuckDB SQL, through the validated store) against the reference pandas validator:
same counts, same problem rows and messages, same accepted rows in the same dtypes, same reasons — for every
failure mode of tests/unit/test_validate.py, from CSV exports (text) and from typed Parquet."""

from __future__ import annotations

import pandas as pd
import pytest

from crmlens import data, store
from crmlens.schema import SCHEMA
from crmlens.validate import REASONS, SOURCE_ROW, validate_tables
from tests.unit.test_validate import opportunities as opportunity_frame

AS_OF = pd.Timestamp("2026-10-01")

PARENTS = {
    "regions": {"region_id": ["East", "West"], "name": ["East", "West"], "country": ["CN", "CN"]},
    "reps": {"rep_id": ["r1", "r2"], "name": ["A", "B"], "region_id": ["East", "West"], "is_active": ["yes", "no"]},
    "accounts": {"account_id": ["a1", "a2"], "name": ["Acme", "Bolt"], "region_id": ["East", "West"]},
    "products": {"product_id": ["p1"], "name": ["P"], "product_line": ["L"]},
}


def opportunities(**changes: list) -> dict:
    """The three opportunities of tests/unit/test_validate.py (o1 won, o2 lost, o3 open), as file columns."""
    return opportunity_frame(**changes).drop(columns=[SOURCE_ROW]).to_dict("list")


CASES = {
    "valid": opportunities(),
    "wrong_type": opportunities(amount=["100", "abc", "3"]),
    "unreadable_timestamp": opportunities(created_at=["2026-01-05", "31/02/2026", "2026-03-01"]),
    "iso_variants": opportunities(created_at=["2026-01", "2026", "20260105"], closed_at=["2026-02-01", None, None],
                                  stage=["Won", "Proposal", "Proposal"], is_won=["true", None, None]),
    "duplicate_key": opportunities(opportunity_id=["o1", "o2", "o1"]),
    "dangling_fk": opportunities(owner_rep_id=["r1", "ghost", "r2"]),
    "allowed_values": opportunities(stage=["Won", "Lost", "Maybe"]),
    "negative_amount": opportunities(amount=["100", "-5", "3"]),
    "row_rule": opportunities(closed_at=["2025-12-31", "2026-03-01", None]),
    "future": opportunities(created_at=["2026-01-05", "2026-02-01", "2027-01-01"]),
    "required_blank": opportunities(region_id=["East", "  ", "West"]),
    "outcome_won": opportunities(is_won=["false", "false", None]),
    "outcome_open_closed": opportunities(closed_at=["2026-02-01", "2026-03-01", "2026-03-05"]),
    "warning": opportunities(account_id=["a1", None, "a2"]),
    "several": opportunities(amount=["-1", "0", "1"], stage=["Bogus", "Lost", "Proposal"],
                             is_won=[None, "false", None], closed_at=[None, "2026-03-01", None]),
    "whitespace_and_numbers": opportunities(amount=[" 4 ", "1e3", "1,5"], is_won=["TRUE", "no", None]),
    "padded": opportunities(region_id=[" East", "East\u3000", "West\t"], stage=["Won ", "\u00a0Lost", "Proposal"],
                            opportunity_id=["o1", "o2 ", ""]),
    "future_and_wrong": opportunities(created_at=["2027-01-05", "2026-02-01", "2026-03-01"], amount=["x", "1", "2"]),
}


#: Failure modes also checked from typed Parquet (typed columns take other SQL paths than text).
TYPED_CASES = ("valid", "duplicate_key", "padded", "future", "row_rule", "outcome_open_closed", "warning", "several",
               "negative_amount")


def write_source(folder, tables: dict[str, dict], fmt: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, columns in tables.items():
        frame = pd.DataFrame(columns)
        if fmt == "csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        else:
            frame.to_parquet(folder / f"{name}.parquet", index=False)


def reference(con) -> tuple[dict, object]:
    """The pandas validator over the same raw tables (as `load_table` reads them)."""
    frames = {name: data.load_table(con, name) for name in data.available_tables(con)}
    return validate_tables(frames, source="ref", as_of=AS_OF)


def sorted_problems(frame: pd.DataFrame) -> pd.DataFrame:
    cols = ["table", "column", "row_key", "source_row", "value", "rule", "severity", "message"]
    return frame[cols].astype({"source_row": "Int64"}).sort_values(["table", "source_row", "rule", "column"],
                                                                   na_position="first").reset_index(drop=True)


def reasons(frame: pd.DataFrame) -> list[set[str]]:
    return [set(r.split("; ")) for r in frame[REASONS]]


@pytest.fixture(autouse=True)
def _store_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(store.STORE_DIR_ENV, str(tmp_path / "store"))


@pytest.mark.parametrize("clustered", [False, True], ids=["source-order", "clustered"])
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_engine_equals_reference(tmp_path, case, fmt, clustered, monkeypatch):
    if clustered:
        if case not in ("duplicate_key", "future_and_wrong", "padded") or (fmt == "parquet") != (case == "padded"):
            pytest.skip("the clustered layout is checked on a few cases")
        monkeypatch.setattr(store, "CLUSTER_ROWS", 0)
    if fmt == "parquet" and case not in TYPED_CASES:
        pytest.skip("the other failure modes do not depend on the file format (text values are the CSV case)")
    folder = tmp_path / "src"
    write_source(folder, {**PARENTS, "opportunities": CASES[case]}, fmt)
    con = data.connect(folder)
    ref_results, ref = reference(con)
    results, got = data.validate_source(con, as_of=AS_OF, tables=list(ref.tables))
    for name in ref.tables:
        r, g = ref.tables[name], got.tables[name]
        assert (g.loaded, g.accepted, g.rejected, g.status) == (r.loaded, r.accepted, r.rejected, r.status), name
        assert g.notes == r.notes, name
        pd.testing.assert_frame_equal(sorted_problems(g.problems), sorted_problems(r.problems), obj=name)
        pd.testing.assert_frame_equal(results[name].accepted, ref_results[name].accepted, obj=name)
        rej_g, rej_r = results[name].rejected, ref_results[name].rejected
        assert reasons(rej_g) == reasons(rej_r), name
        if case != "future_and_wrong":  # rows rejected only by the as-of are shown in canonical form
            assert rej_g.columns.tolist() == rej_r.columns.tolist()


def test_missing_required_column_makes_the_table_unusable(tmp_path):
    folder = tmp_path / "src"
    opps = opportunities()
    del opps["owner_rep_id"]
    write_source(folder, {**PARENTS, "opportunities": opps}, "csv")
    con = data.connect(folder)
    _ref_results, ref = reference(con)
    results, got = data.validate_source(con, as_of=AS_OF)
    g, r = got.tables["opportunities"], ref.tables["opportunities"]
    assert (g.status, g.loaded, g.accepted, g.rejected) == ("unusable", 3, 0, 3) == (r.status, r.loaded, r.accepted,
                                                                                     r.rejected)
    pd.testing.assert_frame_equal(sorted_problems(g.problems), sorted_problems(r.problems))
    assert results["opportunities"].rejected[REASONS].str.contains("required column 'owner_rep_id'").all()


def test_tiny_demo_store_equals_the_reference_for_every_table(tiny_demo):
    con = data.connect(tiny_demo)
    ref_results, ref = reference(con)
    results, got = data.validate_source(con, as_of=AS_OF)
    for name in ref.tables:
        r, g = ref.tables[name], got.tables[name]
        assert (g.loaded, g.accepted, g.rejected) == (r.loaded, r.accepted, r.rejected), name
        pd.testing.assert_frame_equal(results[name].accepted, ref_results[name].accepted, obj=name)


def test_future_rule_follows_the_readers_as_of(tmp_path):
    folder = tmp_path / "src"
    write_source(folder, {**PARENTS, "opportunities": CASES["future"]}, "csv")
    con = data.connect(folder)
    _, early = data.validate_source(con, as_of=AS_OF)
    _, late = data.validate_source(con, as_of=pd.Timestamp("2027-06-01"))
    assert early.tables["opportunities"].rejected == 1 and late.tables["opportunities"].rejected == 0
    assert len(list((tmp_path / "store").glob("*/meta.json"))) == 1  # one version serves both


def test_a_changed_file_is_a_new_version_and_nothing_stale_is_served(tmp_path):
    import os

    folder = tmp_path / "src"
    write_source(folder, {**PARENTS, "opportunities": CASES["valid"]}, "csv")
    _, first = data.validate_source(data.connect(folder), as_of=AS_OF)
    write_source(folder, {**PARENTS, "opportunities": CASES["negative_amount"]}, "csv")
    path = folder / "opportunities.csv"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    _, second = data.validate_source(data.connect(folder), as_of=AS_OF)
    assert first.tables["opportunities"].rejected == 0 and second.tables["opportunities"].rejected == 1
    assert len(list((tmp_path / "store").glob("*/meta.json"))) == 2


def test_store_is_reused_across_connections_without_validating_again(tmp_path, monkeypatch):
    folder = tmp_path / "src"
    write_source(folder, {**PARENTS, "opportunities": CASES["valid"]}, "parquet")
    data.validate_source(data.connect(folder), as_of=AS_OF)
    calls = []
    monkeypatch.setattr(store, "build_store", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(store, "_OPEN", {})
    _, again = data.validate_source(data.connect(folder), as_of=AS_OF)
    assert calls == [] and again.tables["opportunities"].accepted == 3


def test_source_rows_and_keys_survive_the_store(tmp_path):
    folder = tmp_path / "src"
    write_source(folder, {**PARENTS, "opportunities": CASES["duplicate_key"]}, "csv")
    results, report = data.validate_source(data.connect(folder), as_of=AS_OF)
    dup = report.problems[report.problems["rule"] == "duplicate_key"]
    assert dup["source_row"].tolist() == [4] and "first seen at source row 2" in dup["message"].iloc[0]
    assert results["opportunities"].accepted[SOURCE_ROW].tolist() == [2, 3]
    assert SCHEMA["opportunities"].column_names == tuple(results["opportunities"].accepted.columns[:-1])


def test_slices_of_a_clustered_store_equal_the_source_order_store(tiny_demo, tmp_path, monkeypatch):
    """Big tables are stored sorted by period time: slices are the same rows, in the same (source) order."""
    from crmlens.params import validate_params

    params = validate_params({"region": "East", "period": "2026-Q2", "as_of": str(AS_OF.date()),
                              "source": str(tiny_demo)})
    plain = data.open_slice(params, data.connect(tiny_demo))
    monkeypatch.setenv(store.STORE_DIR_ENV, str(tmp_path / "clustered"))
    monkeypatch.setattr(store, "CLUSTER_ROWS", 0)
    monkeypatch.setattr(store, "_OPEN", {})
    clustered = data.open_slice(params, data.connect(tiny_demo))
    assert any(t.get("clustered") for t in clustered.store.meta["tables"].values())
    for which in ("tables", "previous", "last_year"):
        for name, frame in getattr(plain, which).items():
            pd.testing.assert_frame_equal(getattr(clustered, which)[name], frame, obj=f"{which}.{name}")
    pd.testing.assert_frame_equal(clustered.history("activities", 4), plain.history("activities", 4))


def test_a_parquet_source_changed_under_an_open_store_is_refused(tmp_path):
    """The accepted rows of a Parquet table are read from the source file: a changed file is never served
    under the old validation."""
    import os

    from crmlens.errors import SourceError

    folder = tmp_path / "src"
    write_source(folder, {**PARENTS, "opportunities": CASES["valid"]}, "parquet")
    con = data.connect(folder)
    st = store.ensure_validated(con)
    assert st.meta["tables"]["opportunities"]["accepted_sql"]  # read in place
    assert len(st.read("opportunities")) == 3
    write_source(folder, {**PARENTS, "opportunities": CASES["duplicate_key"]}, "parquet")
    path = folder / "opportunities.parquet"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    with pytest.raises(SourceError, match="changed after it was validated"):
        st.read("opportunities")
    fresh = store.ensure_validated(data.connect(folder))
    assert fresh.version != st.version and fresh.meta["tables"]["opportunities"]["rejected"] == 1


@pytest.mark.parametrize("region", ["East", "all"])
def test_every_slice_frame_comes_in_source_order(tiny_demo, region):
    """As the pandas path read them (ordered by source row): a region cut through a parent table is a join in
    the engine and must not reorder rows."""
    from crmlens.params import validate_params

    s = data.open_slice(validate_params({"region": region, "period": "2026-Q2", "as_of": str(AS_OF.date()),
                                         "source": str(tiny_demo)}), data.connect(tiny_demo))
    for which in ("tables", "previous", "last_year"):
        for name, frame in getattr(s, which).items():
            assert frame[SOURCE_ROW].is_monotonic_increasing, f"{which}.{name}"
    for name in ("tickets", "payments", "opportunity_stage_history", "activities"):
        assert s.history(name, 4)[SOURCE_ROW].is_monotonic_increasing, name


# ------------------------------------------------------------------------------------------ custom fields

CUSTOM_EXPORT = (
    "id,company,office,tier,seats,score,partner,renewal,founded\n"
    "a1,Acme,East, gold ,12,0.5,yes,2026-03-01 10:00,2001-05-01\n"
    "a2,Bolt,East,silver,1.5,1e3,no,2027-01-15,1999-12-31\n"
    "a3,Cork,West,,,,,,\n"
    "a4,Dent,West,gold,x,abc,maybe,soon,2026-13-01\n"
    "a5,Echo,East,bronze,7,-2,0,2026-01-01T00:00:00Z,2020-02-29\n"
)
CUSTOM_MAPPING = """
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
    columns: {account_id: id, name: company, region_id: office}
    custom_fields:
      tier: category
      seats: integer
      score: number
      partner: boolean
      renewal: timestamp
      founded: date
"""


def test_custom_fields_in_the_engine_equal_the_reference(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "accounts.csv").write_text(CUSTOM_EXPORT)
    (tmp_path / "m.yaml").write_text(CUSTOM_MAPPING)
    con = data.connect(folder, tmp_path / "m.yaml")
    frames = {name: data.load_table(con, name) for name in data.available_tables(con)}
    ref_results, ref = validate_tables(frames, source="ref", as_of=AS_OF,
                                       custom_fields=data.source_info(con).custom_fields)
    results, got = data.validate_source(con, as_of=AS_OF, tables=list(ref.tables))
    for name in ref.tables:
        r, g = ref.tables[name], got.tables[name]
        assert (g.loaded, g.accepted, g.rejected, g.status) == (r.loaded, r.accepted, r.rejected, r.status), name
        assert g.notes == r.notes, name
        pd.testing.assert_frame_equal(sorted_problems(g.problems), sorted_problems(r.problems), obj=name)
        pd.testing.assert_frame_equal(results[name].accepted, ref_results[name].accepted, obj=name)
        assert reasons(results[name].rejected) == reasons(ref_results[name].rejected), name
    acc = results["accounts"].accepted.set_index("account_id")
    assert acc.index.tolist() == ["a1", "a3", "a5"]  # a2: 1.5 seats; a4: every custom value unreadable
    assert acc.at["a1", "tier"] == "gold" and acc.at["a5", "renewal"] == pd.Timestamp("2026-01-01")
    bad = got.tables["accounts"].problems
    assert sorted(bad.loc[bad["row_key"] == "a4", "column"]) == ["founded", "partner", "renewal", "score", "seats"]
    assert "not a valid boolean" in " ".join(bad["message"])
