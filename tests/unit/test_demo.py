"""The demo generator writes every canonical table, exactly as crmlens.schema defines it, consistently
and deterministically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crmlens.demo import SCALES, generate
from crmlens.demo._parquet import ARROW_TYPES, NOT_IN_DEMO, Strings, write_table
from crmlens.errors import ParameterError
from crmlens.schema import TABLE_NAMES, TABLES, Vocabulary
from crmlens.truths import DEMO_END, DEMO_START, REGION_IDS

Frames = dict[str, pd.DataFrame]
END = pd.Timestamp(DEMO_END)
START = pd.Timestamp(DEMO_START)
#: Dates allowed after DEMO_END: planned follow-ups, expected closes of open deals, due dates of invoices.
FUTURE_ALLOWED = {("activities", "due_at"), ("opportunities", "expected_close_date"), ("invoices", "due_date")}
#: Timestamps allowed before DEMO_START: dimensions and the pipeline carried into the history.
PAST_ALLOWED = {("reps", "hired_at"), ("accounts", "created_at"),
                ("contacts", "created_at"), ("opportunities", "created_at"),
                ("opportunities", "expected_close_date"), ("opportunity_stage_history", "entered_at"),
                ("opportunity_stage_history", "exited_at")}


# --- parameters and files -----------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["huge", "", "Tiny", None])
def test_unknown_scale_is_a_parameter_error(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ParameterError) as err:
        generate(bad, 7, tmp_path)  # type: ignore[arg-type]
    message = str(err.value)
    assert "scale" in message and repr(bad) in message
    assert all(name in message for name in SCALES)
    assert not list(tmp_path.iterdir()), "nothing is written for a bad parameter"


@pytest.mark.parametrize("bad", [-1, 1.5, "7", True])
def test_bad_seed_is_a_parameter_error(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ParameterError, match="seed"):
        generate("tiny", bad, tmp_path)  # type: ignore[arg-type]


def test_scales_are_the_four_documented_ones() -> None:
    assert list(SCALES) == ["tiny", "small", "default", "large"]


def test_one_file_per_table_and_counts_returned(demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "nested" / "demo"
    counts = generate("tiny", 7, out)
    assert list(counts) == list(TABLE_NAMES)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.parquet" for name in TABLE_NAMES)
    for name, rows in counts.items():
        assert pq.ParquetFile(out / f"{name}.parquet").metadata.num_rows == rows, name
        assert rows > 0, name
    assert generate("tiny", 7, str(out)) == counts, "regenerating over an existing folder"
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.parquet" for name in TABLE_NAMES)


def test_a_failed_write_leaves_the_previous_file(tmp_path: Path) -> None:
    columns = {"region_id": Strings(pa.array(["East"])), "name": Strings(pa.array(["East China"])),
               "country": Strings(pa.array(["China"]))}
    write_table(tmp_path, "regions", 1, columns)
    before = (tmp_path / "regions.parquet").read_bytes()

    def broken(sl: slice) -> pa.Array:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_table(tmp_path, "regions", 1, {**columns, "country": broken})  # type: ignore[dict-item]
    assert (tmp_path / "regions.parquet").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["regions.parquet"], "no temporary file is left behind"
    with pytest.raises(ValueError, match="canonical"):
        write_table(tmp_path, "regions", 1, {"region_id": columns["region_id"]})


def test_same_seed_gives_identical_bytes_and_another_seed_differs(demo_dir: Path, tmp_path: Path) -> None:
    generate("tiny", 7, tmp_path / "again")
    generate("tiny", 8, tmp_path / "other")
    for name in TABLE_NAMES:
        first = (demo_dir / f"{name}.parquet").read_bytes()
        assert (tmp_path / "again" / f"{name}.parquet").read_bytes() == first, name
    other = {name: (tmp_path / "other" / f"{name}.parquet").read_bytes() for name in TABLE_NAMES}
    differing = [name for name in TABLE_NAMES if other[name] != (demo_dir / f"{name}.parquet").read_bytes()]
    assert {"opportunities", "leads", "activities", "accounts", "contracts"} <= set(differing)


def test_progress_prints_one_line_per_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generate("tiny", 7, tmp_path, progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == len(TABLE_NAMES)
    assert {line.split()[1] for line in lines} == set(TABLE_NAMES)


# --- the canonical model --------------------------------------------------------------------------------

@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_columns_and_types_are_canonical(demo_dir: Path, table) -> None:
    schema = pq.read_schema(demo_dir / f"{table.name}.parquet")
    omitted = NOT_IN_DEMO.get(table.name, ())
    assert all(table.column(c).nullable for c in omitted), "the demo leaves out only optional columns"
    assert schema.names == [c for c in table.column_names if c not in omitted]
    for column in (c for c in table.columns if c.name not in omitted):
        assert schema.field(column.name).type == ARROW_TYPES[column.dtype], (table.name, column.name)
    assert not (schema.metadata or {}).keys() - {b"ARROW:schema"}, "no pandas or other metadata"


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_required_columns_keys_and_allowed_values(demo_tables: Frames, table) -> None:
    df = demo_tables[table.name]
    vocab = Vocabulary()
    for column in table.columns:
        if column.name in NOT_IN_DEMO.get(table.name, ()):
            continue
        values = df[column.name]
        if not column.nullable:
            assert values.notna().all(), (table.name, column.name)
        present = values.dropna()
        if column.allowed is not None:
            allowed = vocab.resolve(column.allowed) if isinstance(column.allowed, str) else column.allowed
            assert set(present) <= set(allowed), (table.name, column.name, set(present) - set(allowed))
        if column.min is not None:
            assert (present >= column.min).all(), (table.name, column.name)
        if column.max is not None:
            assert (present <= column.max).all(), (table.name, column.name)
        if column.dtype == "date":
            assert (present == present.dt.normalize()).all(), f"{table.name}.{column.name} is not at midnight"
    assert not df.duplicated(list(table.key)).any(), f"{table.name}: duplicate key {table.key}"


def test_every_foreign_key_resolves(demo_tables: Frames) -> None:
    for table in TABLES:
        for column, parent, parent_column in table.foreign_keys:
            refs = demo_tables[table.name][column.name].dropna()
            missing = set(refs) - set(demo_tables[parent][parent_column])
            assert not missing, f"{table.name}.{column.name} → {parent}.{parent_column}: {sorted(missing)[:5]}"


@pytest.mark.parametrize("table", [t for t in TABLES if t.rules], ids=lambda t: t.name)
def test_every_row_rule_holds(demo_tables: Frames, table) -> None:
    df = demo_tables[table.name]
    for rule in table.rules:
        if set(rule.columns) & set(NOT_IN_DEMO.get(table.name, ())):
            continue  # a rule about a column the demo does not keep
        ok = rule.check(df, Vocabulary())
        assert ok.all(), f"{table.name}: {rule.name} fails on {int((~ok).sum())} rows"


def test_timestamps_stay_inside_the_history(demo_tables: Frames) -> None:
    for table in TABLES:
        for column in table.columns:
            if column.dtype not in ("timestamp", "date") or column.name in NOT_IN_DEMO.get(table.name, ()):
                continue
            values = demo_tables[table.name][column.name].dropna()
            if (table.name, column.name) not in FUTURE_ALLOWED:
                assert (values <= END).all(), f"{table.name}.{column.name} after DEMO_END"
            if (table.name, column.name) not in PAST_ALLOWED:
                assert (values >= START).all(), f"{table.name}.{column.name} before DEMO_START"


def test_every_region_and_product_line_has_business(demo_tables: Frames) -> None:
    assert list(demo_tables["regions"]["region_id"]) == list(REGION_IDS)
    opps = demo_tables["opportunities"]
    assert set(opps["region_id"]) == set(REGION_IDS)
    lines = demo_tables["products"].set_index("product_id").loc[opps["product_id"], "product_line"]
    assert lines.nunique() >= 4
    assert demo_tables["teams"].groupby("region_id").size().min() >= 2
    assert demo_tables["leads"]["source_channel"].nunique() >= 6
    assert demo_tables["opportunities"]["competitor"].nunique() >= 3


# --- internal consistency -------------------------------------------------------------------------------

def test_stage_history_agrees_with_opportunities(demo_tables: Frames) -> None:
    opps = demo_tables["opportunities"].set_index("opportunity_id")
    history = demo_tables["opportunity_stage_history"].sort_values(["opportunity_id", "entered_at", "stage"])
    assert set(history["opportunity_id"]) == set(opps.index), "every opportunity has a history"
    last = history.groupby("opportunity_id").tail(1).set_index("opportunity_id").loc[opps.index]
    assert (last["stage"] == opps["stage"]).all()
    assert last["exited_at"].isna().all(), "the current stage has not been left"
    closed = opps["closed_at"].notna()
    assert (last.loc[closed, "entered_at"] == opps.loc[closed, "closed_at"]).all()
    first = history.groupby("opportunity_id").head(1).set_index("opportunity_id").loc[opps.index]
    assert (first["stage"] == "Prospecting").all()
    assert (first["entered_at"] == opps["created_at"]).all()
    # consecutive rows chain: a stage is left when the next one is entered
    nxt = history.groupby("opportunity_id")["entered_at"].shift(-1)
    chained = nxt.notna()
    assert (history.loc[chained, "exited_at"] == nxt[chained]).all()
    order = {s: i for i, s in enumerate(Vocabulary().stages)}
    rank = history["stage"].map(order)
    assert (rank.groupby(history["opportunity_id"]).diff().dropna() > 0).all(), "stages only move forward"


def test_won_opportunities_have_one_contract(demo_tables: Frames) -> None:
    opps = demo_tables["opportunities"]
    won = opps[opps["is_won"].eq(True)].set_index("opportunity_id")
    contracts = demo_tables["contracts"].set_index("opportunity_id")
    assert sorted(contracts.index) == sorted(won.index)
    c = contracts.loc[won.index]
    assert np.allclose(c["amount"], won["amount"])
    lag = c["signed_at"] - won["closed_at"]
    assert (lag >= pd.Timedelta(0)).all() and (lag <= pd.Timedelta(days=10)).all()
    assert (c["account_id"] == won["account_id"]).all() and (c["owner_rep_id"] == won["owner_rep_id"]).all()


def test_receivables_are_realistic(demo_tables: Frames) -> None:
    invoices, payments = demo_tables["invoices"], demo_tables["payments"]
    contracts = demo_tables["contracts"].set_index("contract_id")
    status = invoices["status"].value_counts(normalize=True)
    assert status["paid"] > 0.7 and status["overdue"] > 0.02 and "issued" in status and "void" in status
    billed = invoices.groupby("contract_id")["amount"].sum()
    assert (billed <= contracts.loc[billed.index, "amount"] + 0.01).all(), "never invoiced beyond the contract"
    paid = payments.groupby("contract_id")["amount"].sum()
    live = invoices[invoices["status"] != "void"].groupby("contract_id")["amount"].sum()
    assert (paid <= live.reindex(paid.index, fill_value=0) + 0.01).all(), "never paid beyond the invoices"
    assert (payments["received_at"].to_numpy() >= contracts.loc[payments["contract_id"], "signed_at"].to_numpy()).all()
    assert (invoices["due_date"] > invoices["issued_at"].dt.normalize()).all()


def test_accounts_live_in_their_region(demo_tables: Frames) -> None:
    from crmlens.demo._world import REGIONS

    places = {(r.region_id, *p) for r in REGIONS for p in r.places}
    accounts = demo_tables["accounts"]
    seen = set(accounts[["region_id", "country", "province", "city"]].itertuples(index=False, name=None))
    assert seen <= places


def test_public_pool_accounts_have_no_owner(demo_tables: Frames) -> None:
    accounts = demo_tables["accounts"]
    pool = accounts["is_public_pool"].astype(bool)
    assert pool.mean() > 0.05
    assert accounts.loc[pool, "owner_rep_id"].isna().all() and accounts.loc[pool, "pool_entered_at"].notna().all()
    assert accounts.loc[~pool, "owner_rep_id"].notna().all() and accounts.loc[~pool, "pool_entered_at"].isna().all()
    assert (accounts.loc[pool, "pool_entered_at"] >= accounts.loc[pool, "created_at"]).all()
    owners = demo_tables["reps"].set_index("rep_id").loc[accounts.loc[~pool, "owner_rep_id"], "is_active"]
    assert owners.all(), "only active reps own accounts"


def test_accounts_exist_before_their_business(demo_tables: Frames) -> None:
    created = demo_tables["accounts"].set_index("account_id")["created_at"]
    for table, column in (("opportunities", "created_at"), ("contracts", "signed_at"), ("contacts", "created_at")):
        df = demo_tables[table]
        assert (df[column].to_numpy() >= created.loc[df["account_id"]].to_numpy()).all(), table


def test_reps_work_only_while_employed(demo_tables: Frames) -> None:
    reps = demo_tables["reps"].set_index("rep_id")
    opps = demo_tables["opportunities"]
    assert (opps["created_at"].to_numpy() >= reps.loc[opps["owner_rep_id"], "hired_at"].to_numpy()).all()
    acts = demo_tables["activities"].dropna(subset=["occurred_at"])
    assert (acts["occurred_at"].to_numpy() >= reps.loc[acts["rep_id"], "hired_at"].to_numpy()).all()
    assert (acts["region_id"].to_numpy() == reps.loc[acts["rep_id"], "region_id"].to_numpy()).all()
    managers = reps.loc[demo_tables["teams"]["manager_rep_id"]]
    assert (managers["team_id"].to_numpy() == demo_tables["teams"]["team_id"].to_numpy()).all()


def test_open_opportunities_carry_no_outcome(demo_tables: Frames) -> None:
    opps = demo_tables["opportunities"]
    open_ = opps["closed_at"].isna()
    assert 0.03 < open_.mean() < 0.3
    assert opps.loc[open_, "is_won"].isna().all() and opps.loc[open_, "loss_reason"].isna().all()
    lost = opps["is_won"].eq(False)
    assert opps.loc[lost, "loss_reason"].notna().all()
    assert (opps.loc[opps["is_won"].eq(True), "probability"] == 1).all()
    assert (opps.loc[lost, "probability"] == 0).all()
    assert set(opps["deal_type"]) == {"new", "upsell", "cross_sell", "renewal"}


def test_targets_roll_up_to_the_cent(demo_tables: Frames) -> None:
    targets = demo_tables["targets"]
    table = targets.pivot_table(index=["level", "key"], columns="period", values="target_amount")
    reps = demo_tables["reps"].set_index("rep_id")
    teams = demo_tables["teams"].set_index("team_id")

    def same(a: pd.DataFrame | pd.Series, b: pd.DataFrame | pd.Series) -> bool:
        return bool(np.allclose(a, b, rtol=0, atol=0.005))

    rep_sum = table.loc["rep"].groupby(reps.loc[table.loc["rep"].index, "team_id"].to_numpy()).sum()
    assert same(rep_sum.loc[table.loc["team"].index], table.loc["team"])
    team_sum = table.loc["team"].groupby(teams.loc[table.loc["team"].index, "region_id"].to_numpy()).sum()
    assert same(team_sum.loc[table.loc["region"].index], table.loc["region"])
    assert same(table.loc["region"].sum(), table.loc["company"].iloc[0])
    assert same(table.loc["product_line"].sum(), table.loc["company"].iloc[0])
    company = table.loc[("company", "company")]
    for quarter in ("2023-Q1", "2026-Q3", "2026-Q4"):
        year, q = quarter.split("-Q")
        months = [f"{year}-{3 * int(q) - k:02d}" for k in (2, 1, 0)]
        assert same(company[months].sum(), company[quarter]), quarter


def test_market_covers_every_segment(demo_tables: Frames) -> None:
    market = demo_tables["market"]
    assert market.groupby(["period", "region_id", "product_line"]).size().eq(4).all()
    assert market["period"].nunique() == 15
    sizes = market.groupby(["period", "region_id", "product_line"])["market_size_amount"].nunique()
    assert (sizes == 1).all(), "one market size per segment"
    assert (market["competitor_sales_amount"] < market["market_size_amount"]).all()


def test_campaigns_events_and_intel(demo_tables: Frames) -> None:
    campaigns = demo_tables["campaigns"]
    assert campaigns["channel"].nunique() >= 6 and (campaigns["cost_amount"] > 0).all()
    events = demo_tables["campaign_events"].merge(campaigns, on="campaign_id")
    assert ((events["occurred_at"] >= events["started_at"]) & (events["occurred_at"] <= events["ended_at"])).all()
    leads = demo_tables["leads"].dropna(subset=["campaign_id"]).merge(campaigns, on="campaign_id")
    assert (leads["source_channel"] == leads["channel"]).all()
    assert ((leads["created_at"] >= leads["started_at"]) & (leads["created_at"] <= leads["ended_at"])).all()
    assert demo_tables["competitor_intel"]["kind"].nunique() == 4


def test_small_scale_sizes(demo_frames) -> None:
    tables = demo_frames("small", 7)
    assert 4_000 <= len(tables["opportunities"]) <= 6_500
    assert len(tables["activities"]) >= 40_000
