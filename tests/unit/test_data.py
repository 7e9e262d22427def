"""The data layer: sources, engine-side slicing, validated slices, and PostgreSQL ≡ DuckDB."""

from __future__ import annotations

import ibis
import pandas as pd
import pytest

from crmlens import data
from crmlens.errors import SchemaError, SourceError
from crmlens.params import validate_params
from crmlens.periods import parse_period
from crmlens.schema import SCHEMA, TABLE_NAMES
from crmlens.validate import SOURCE_ROW

AS_OF = "2026-10-01"


@pytest.fixture(scope="module")
def demo_con(tiny_demo):
    return data.connect(tiny_demo)


def slice_params(source, **kw):
    values = {"region": "East", "period": "2026-Q2", "comparison": "previous", "as_of": AS_OF, "source": str(source)}
    values.update(kw)
    return validate_params(values)


def test_demo_folder_has_every_canonical_table(demo_con):
    assert data.available_tables(demo_con) == TABLE_NAMES
    assert data.source_info(demo_con).kind == "folder"


def test_the_whole_tiny_demo_validates_without_rejects(demo_con):
    _results, report = data.validate_source(demo_con, as_of=pd.Timestamp(AS_OF))
    assert report.ok
    rejected = {n: t.rejected for n, t in report.tables.items() if t.rejected}
    assert not rejected, report.problems.head(20).to_string()


def test_region_filter_is_pushed_to_the_engine(demo_con, tiny_demo):
    expr = data.table_expr(demo_con, "opportunities", region="East")
    sql = str(ibis.to_sql(expr))
    assert "WHERE" in sql and "'East'" in sql
    raw = pd.read_parquet(tiny_demo / "opportunities.parquet")
    assert expr.count().execute() == int((raw["region_id"] == "East").sum())


def test_period_span_filter_keeps_opportunities_open_during_the_period(demo_con, tiny_demo):
    period = parse_period("2026-Q2")
    got = data.load_table(demo_con, "opportunities", period=period)
    raw = pd.read_parquet(tiny_demo / "opportunities.parquet")
    expected = raw[(raw["created_at"].isna() | (raw["created_at"] < period.end))
                   & (raw["closed_at"].isna() | (raw["closed_at"] >= period.start))]
    assert sorted(got["opportunity_id"]) == sorted(expected["opportunity_id"])


def test_child_tables_are_sliced_through_their_parent_region(demo_con, tiny_demo):
    payments = data.load_table(demo_con, "payments", region="West")
    contracts = pd.read_parquet(tiny_demo / "contracts.parquet")
    west = set(contracts.loc[contracts["region_id"] == "West", "contract_id"])
    assert len(payments) and set(payments["contract_id"]) <= west


def test_open_slice_returns_validated_current_and_comparison_slices(demo_con, tiny_demo):
    s = data.open_slice(slice_params(tiny_demo), demo_con)
    assert (s.period.label, s.previous_period.label, s.last_year_period.label) == ("2026-Q2", "2026-Q1", "2025-Q2")
    for frames, period in ((s.tables, s.period), (s.previous, s.previous_period), (s.last_year, s.last_year_period)):
        contracts = frames["contracts"]
        assert len(contracts) and (contracts["region_id"] == "East").all()
        assert contracts["signed_at"].between(period.start, period.end, inclusive="left").all()
    assert str(s.tables["contracts"]["amount"].dtype) == "float64"
    assert len(s.tables["reps"]) == len(pd.read_parquet(tiny_demo / "reps.parquet"))  # dimensions whole
    assert s.comparison is s.previous and s.comparison_period == s.previous_period
    assert s.report.tables["opportunities"].loaded == s.report.tables["opportunities"].accepted


def test_slice_tables_are_read_when_first_used_and_reported_up_front(demo_con, tiny_demo):
    s = data.open_slice(slice_params(tiny_demo), demo_con)
    assert s.tables.loaded() == () and s.previous.loaded() == ()  # opening reads no table
    assert "leads" in s.tables and s.tables.loaded() == ()  # nor does asking whether it is there
    assert s.tables.get("no_such_table") is None
    leads = s.tables["leads"]
    assert s.tables["leads"] is leads and s.tables.loaded() == ("leads",)  # read once, kept
    assert s.tables["reps"] is s.previous["reps"]  # dimension tables: one frame for the three periods
    for name in s.tables:  # the report, computed at open with engine counts, matches what is read
        assert s.report.tables[name].accepted == len(s.tables[name]), name
    assert list(s.tables) == [n for n in data.load_order() if n in s.info.tables]
    replaced = s.tables.with_frames(activities=leads.iloc[:0])
    assert len(replaced["activities"]) == 0 and replaced["leads"] is leads and len(s.tables["activities"]) > 0
    assert "activities" not in s.previous.loaded()


def test_open_slice_all_regions_is_the_sum_of_regions(demo_con, tiny_demo):
    total = len(data.open_slice(slice_params(tiny_demo, region="all"), demo_con).tables["contracts"])
    regions = pd.read_parquet(tiny_demo / "regions.parquet")["region_id"]
    parts = sum(len(data.open_slice(slice_params(tiny_demo, region=r), demo_con).tables["contracts"]) for r in regions)
    assert total == parts > 0


def test_slice_reports_missing_tables(maven_con):
    params = validate_params({"region": "Central", "period": "2017-Q3", "as_of": AS_OF, "source": "demo"})
    s = data.open_slice(params, maven_con)
    assert s.missing("opportunities", "leads", "activities") == ["leads", "activities"]
    assert not s.has("leads") and s.has("opportunities", "reps")


def test_maven_slice_matches_pandas_on_the_raw_csv(maven_con, maven_dir):
    params = validate_params({"region": "Central", "period": "2017-Q3", "as_of": AS_OF, "source": "demo"})
    s = data.open_slice(params, maven_con)
    raw = pd.read_csv(maven_dir / "sales_pipeline.csv", parse_dates=["engage_date", "close_date"])
    teams = pd.read_csv(maven_dir / "sales_teams.csv")
    raw = raw.merge(teams, on="sales_agent")
    start, end = pd.Timestamp("2017-07-01"), pd.Timestamp("2017-10-01")
    active = raw[(raw["regional_office"] == "Central")
                 & (raw["engage_date"].isna() | (raw["engage_date"] < end))
                 & (raw["close_date"].isna() | (raw["close_date"] >= start))]
    assert sorted(s.tables["opportunities"]["opportunity_id"]) == sorted(active["opportunity_id"])


def test_unknown_table_is_a_schema_error(demo_con):
    with pytest.raises(SchemaError, match="unknown table 'oportunities'"):
        from crmlens.schema import table

        table("oportunities")


def test_table_the_source_lacks_is_a_schema_error(maven_con):
    with pytest.raises(SchemaError, match="table leads is not in source"):
        data.table_expr(maven_con, "leads")


def test_bad_url_is_a_source_error():
    with pytest.raises(SourceError, match="cannot connect"):
        data.connect("postgresql://nobody@127.0.0.1:1/none")


def test_connection_not_made_by_connect_is_refused():
    with pytest.raises(SourceError, match=r"crmlens\.data\.connect"):
        data.source_info(ibis.duckdb.connect())


# ------------------------------------------------------------------------------------- PostgreSQL

def _canonical(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    key = list(SCHEMA[name].key)
    return frame.drop(columns=[SOURCE_ROW], errors="ignore").sort_values(key).reset_index(drop=True)


@pytest.mark.postgres
@pytest.mark.parametrize("region", ["East", "all"])
def test_postgres_and_duckdb_return_the_same_slice(postgres_demo, tiny_demo, demo_con, region):
    params = slice_params(tiny_demo, region=region)
    duck = data.open_slice(params, demo_con)
    pg = data.open_slice(params, data.connect(postgres_demo))
    assert set(duck.tables) == set(pg.tables) == set(TABLE_NAMES)
    for which in ("tables", "previous", "last_year"):
        for name in TABLE_NAMES:
            a, b = getattr(duck, which)[name], getattr(pg, which)[name]
            pd.testing.assert_frame_equal(_canonical(a, name), _canonical(b, name), check_dtype=True,
                                          obj=f"{which}.{name}")
    for name in TABLE_NAMES:
        d, p = duck.report.tables[name], pg.report.tables[name]
        assert (d.loaded, d.accepted, d.rejected) == (p.loaded, p.accepted, p.rejected), name


@pytest.mark.postgres
def test_postgres_and_duckdb_return_the_same_aggregates(postgres_demo, demo_con):
    pg = data.connect(postgres_demo)
    pd.testing.assert_frame_equal(data.bookings_by_region(demo_con), data.bookings_by_region(pg), check_dtype=False)
    summary_duck = data.summarize(demo_con).set_index("table")["rows"]
    summary_pg = data.summarize(pg).set_index("table")["rows"]
    assert summary_duck.to_dict() == summary_pg.to_dict()


def test_default_as_of_is_derived_from_the_data(maven_con):
    params = validate_params({"region": "all", "period": "2017-Q4", "source": "demo"})
    s = data.open_slice(params, maven_con)
    assert s.as_of == pd.Timestamp("2018-01-01")  # the day after the last close date, 2017-12-31
    given = data.open_slice(validate_params({"period": "2017-Q4", "as_of": "2017-12-15"}), maven_con)
    assert given.as_of == pd.Timestamp("2017-12-15")


def test_history_covers_n_periods_of_the_slice_kind(demo_con, tiny_demo):
    s = data.open_slice(slice_params(tiny_demo, region="West"), demo_con)
    hist = s.history("contracts", n_periods=4)  # 2025-Q3 .. 2026-Q2
    raw = pd.read_parquet(tiny_demo / "contracts.parquet")
    in_span = (raw["signed_at"] >= "2025-07-01") & (raw["signed_at"] < "2026-07-01")
    expected = raw[(raw["region_id"] == "West") & in_span]
    assert sorted(hist["contract_id"]) == sorted(expected["contract_id"])
    assert s.history("contracts", n_periods=4) is hist  # cached
    assert s.history("reps") is s.tables["reps"]


def test_slice_cache_shares_a_validated_slice_and_rebuilds_a_damaged_entry(tiny_demo, tmp_path, monkeypatch):
    params = validate_params({"source": str(tiny_demo), "region": "East", "period": "2026-Q3"})
    first = data.open_slice_cached(params, cache_dir=tmp_path)
    entries = list(tmp_path.glob("*.pkl"))
    assert len(entries) == 1
    calls = []
    real_open = data.open_slice
    monkeypatch.setattr(data, "open_slice", lambda *a, **k: calls.append(1) or real_open(*a, **k))
    again = data.open_slice_cached(params, cache_dir=tmp_path)
    assert calls == []  # loaded, not validated again
    for name, frame in first.tables.items():
        pd.testing.assert_frame_equal(frame, again.tables[name])
    assert again.report.to_dict() == first.report.to_dict()
    # the loaded slice is live: it reads history from the source
    pd.testing.assert_frame_equal(first.history("leads", 4, "all"), again.history("leads", 4, "all"))
    # other parameters → another entry; a damaged entry is rebuilt, never trusted
    other = validate_params({"source": str(tiny_demo), "region": "West", "period": "2026-Q3"})
    data.open_slice_cached(other, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.pkl"))) == 2
    entries[0].write_bytes(b"not a pickle")
    rebuilt = data.open_slice_cached(params, cache_dir=tmp_path)
    assert len(calls) == 2
    pd.testing.assert_frame_equal(rebuilt.tables["opportunities"], first.tables["opportunities"])


def test_custom_fields_of_a_source_without_any_are_empty(demo_con, tiny_demo):
    s = data.open_slice(slice_params(tiny_demo), demo_con)
    assert data.custom_fields(s, "accounts") == {} == s.custom_fields("accounts")
    with pytest.raises(SchemaError, match="unknown table 'acounts'"):
        data.custom_fields(s, "acounts")
