"""Tests of crmlens.dashboard.model: a View cut in memory equals the engine's slice (`data.open_slice`) for the
same parameters — KPIs, comparison KPIs and tiles — plus region masks, caches, deep links and tile notes."""

from __future__ import annotations

import dataclasses
import os

import pandas as pd
import pytest

from crmlens import data, kpis, notebook
from crmlens.dashboard import model, tiles
from crmlens.dashboard import state as st
from crmlens.dashboard.model import DashboardData, View, region_mask
from crmlens.errors import ParameterError
from crmlens.params import Params
from crmlens.schema import SCHEMA
from crmlens.truths import REGION_IDS

#: The KPIs of both dashboard views, each once.
VIEW_KPIS = list(dict.fromkeys([*tiles.DEFAULT_OVERVIEW, *tiles.DEFAULT_SALES_MANAGER]))
AS_OF = pd.Timestamp("2026-10-01")  # the tiny demo: data up to 2026-09-30


@pytest.fixture(scope="module")
def con(tiny_demo):
    return data.connect(str(tiny_demo))


@pytest.fixture(scope="module")
def board(con) -> DashboardData:
    return DashboardData(con)


@pytest.fixture(scope="module")
def maven_board(maven_con) -> DashboardData:
    return DashboardData(maven_con)


def engine_slice(con, state: st.FilterState) -> data.Slice:
    """The engine's slice of `state` — the reference every View is checked against."""
    return data.open_slice(st.to_params(state, data.data_as_of(con)), con)


def same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a == pytest.approx(b, rel=1e-9)


def ids(frame: pd.DataFrame, key: str) -> set:
    return set(frame[key].astype(str))


# ------------------------------------------------------------------------------------------ region_mask

def test_region_mask_by_region_column():
    frame = pd.DataFrame({"opportunity_id": ["O1", "O2", "O3"], "region_id": ["East", "West", None]})
    mask = region_mask(frame, SCHEMA["opportunities"], "East", {})
    assert mask.tolist() == [True, False, False]
    assert mask.dtype == bool


def test_region_mask_all_or_no_route_is_none():
    frame = pd.DataFrame({"opportunity_id": ["O1"], "region_id": ["East"]})
    assert region_mask(frame, SCHEMA["opportunities"], "all", {}) is None
    products = pd.DataFrame({"product_id": ["P1"], "product_line": ["Core"]})
    assert SCHEMA["products"].region is None
    assert region_mask(products, SCHEMA["products"], "East", {}) is None
    # the region column is not in the frame: the table is not cut
    assert region_mask(frame.drop(columns="region_id"), SCHEMA["opportunities"], "East", {}) is None


def test_region_mask_through_a_parent_table():
    assert SCHEMA["contacts"].region == ("accounts", "account_id")
    accounts = pd.DataFrame({"account_id": ["A1", "A2", "A3"], "region_id": ["East", "West", "East"]})
    contacts = pd.DataFrame({"contact_id": ["C1", "C2", "C3", "C4"], "account_id": ["A1", "A2", "A3", None]})
    mask = region_mask(contacts, SCHEMA["contacts"], "East", {"accounts": accounts})
    assert mask.tolist() == [True, False, True, False]
    # the parent is not loaded (or the key column is absent): not cut
    assert region_mask(contacts, SCHEMA["contacts"], "East", {}) is None
    assert region_mask(contacts.drop(columns="account_id"), SCHEMA["contacts"], "East", {"accounts": accounts}) is None


def test_region_mask_two_levels_up():
    assert SCHEMA["payments"].region == ("contracts", "contract_id")
    contracts = pd.DataFrame({"contract_id": ["K1", "K2"], "region_id": ["West", "East"]})
    payments = pd.DataFrame({"payment_id": ["Y1", "Y2", "Y3"], "contract_id": ["K1", "K2", "K9"]})
    mask = region_mask(payments, SCHEMA["payments"], "West", {"contracts": contracts})
    assert mask.tolist() == [True, False, False]


# ------------------------------------------------------------------------------------------ loading

def test_dashboard_data_loads_the_default_tables(board, con):
    assert board.as_of == AS_OF == data.data_as_of(con)
    loaded = set(board.frames)
    assert set(model.DEFAULT_FACT_TABLES) <= loaded
    dimensions = {n for n in board.info.tables if SCHEMA[n].kind == "dimension"}
    assert dimensions <= loaded
    assert "contracts" not in loaded and not board.has("contracts") and board.has("leads")
    assert set(board.rejected) == loaded and all(n == 0 for n in board.rejected.values())
    assert board.options["regions"] == sorted(REGION_IDS)
    assert board.memory_bytes() > 0


def test_dashboard_data_refuses_unknown_tables(con):
    with pytest.raises(ParameterError, match=r"tables: leeds not in the data model"):
        DashboardData(con, tables=("opportunities", "leeds"))


def test_region_frame_keeps_only_the_region(board, con):
    east = board.region_frame("opportunities", "East")
    assert set(east["region_id"]) == {"East"}
    assert ids(east, "opportunity_id") == ids(data.load_table(con, "opportunities", region="East"), "opportunity_id")
    assert board.region_frame("opportunities", "East") is east  # cached
    assert board.region_frame("opportunities", "all") is board.frames["opportunities"]


def test_frame_cuts_period_like_the_engine(board, con):
    period = st.resolve_period(st.FilterState(period="2026-Q2"))
    cut = board.frame("leads", "West", period)
    engine = data.load_table(con, "leads", region="West", period=period)
    assert ids(cut, "lead_id") == ids(engine, "lead_id") and len(cut) > 0
    assert board.frame("accounts", "West", period) is board.frames["accounts"]  # dimensions come whole


# ------------------------------------------------------------------------------------------ views

def test_view_periods_and_comparisons(board):
    v = board.view(st.FilterState())
    assert isinstance(v, View) and isinstance(v, data.Slice)
    assert (v.period.label, v.previous_period.label, v.last_year_period.label) == ("2026-Q3", "2026-Q2", "2025-Q3")
    assert v.comparison_period.label == "2026-Q2" and v.comparison is v.previous
    ly = board.view(st.FilterState(comparison="last_year"))
    assert ly.comparison_period.label == "2025-Q3" and ly.comparison is ly.last_year
    assert v.params.as_of == AS_OF.date() or pd.Timestamp(v.params.as_of) == AS_OF
    assert v.ctx().period_label == "2026-Q3" and ly.ctx("comparison").period_label == "2025-Q3"
    assert v.ctx("comparison") == notebook.context(v, "comparison")


def test_view_is_cached_and_keyed_by_the_resolved_period(board):
    preset = board.view(st.FilterState(period="this_quarter", region="North"))
    explicit = board.view(st.FilterState(period="2026-Q3", region="North"))
    assert explicit is preset
    assert board.view_key(st.FilterState(period="2026-Q3", region="North")) == ("2026-Q3", "previous", "North", ())
    filtered = st.FilterState(region="North", team="North-1", product_line="Core")
    assert board.view_key(filtered) == ("2026-Q3", "previous", "North", (("product_line", "Core"), ("team", "North-1")))
    assert board.view(filtered) is not preset


def test_view_cache_keeps_the_latest_states(con, monkeypatch):
    board = DashboardData(con, tables=("opportunities",))
    monkeypatch.setattr(model, "VIEW_CACHE_SIZE", 2)
    first = board.view(st.FilterState(region="East"))
    board.view(st.FilterState(region="West"))
    assert board.view(st.FilterState(region="East")) is first  # used again: now the most recent
    board.view(st.FilterState(region="North"))  # evicts West
    assert len(board._views) == 2
    assert board.view(st.FilterState(region="East")) is first


def test_params_for_refuses_a_region_of_another_source(board):
    with pytest.raises(ParameterError, match=r"region: 'Nowhere' is not a region of .*use one of APAC, Central"):
        board.params_for(st.FilterState(region="Nowhere"))
    with pytest.raises(ParameterError, match="region: 'Nowhere'"):
        board.view(st.FilterState(region="Nowhere"))
    assert board.params_for(st.FilterState(region="South")).region == "South"


def test_memo_computes_once_and_forgets_the_oldest(board, monkeypatch):
    monkeypatch.setattr(board, "_results", type(board._results)())
    monkeypatch.setattr(board, "cache_dir", None)  # memory only (the disk cache is tested below)
    monkeypatch.setattr(model, "RESULT_CACHE_SIZE", 2)
    calls: list[str] = []

    def compute(name: str):
        return lambda: calls.append(name) or f"value of {name}"

    key = board.view_key(st.FilterState())
    assert board.memo((*key, "a"), compute("a")) == "value of a"
    assert board.memo((*key, "a"), compute("a")) == "value of a"
    assert calls == ["a"]
    board.memo((*key, "b"), compute("b"))
    board.memo((*key, "a"), compute("a"))  # a is now the most recent
    board.memo((*key, "c"), compute("c"))  # evicts b
    assert calls == ["a", "b", "c"]
    board.memo((*key, "a"), compute("a"))
    board.memo((*key, "b"), compute("b"))
    assert calls == ["a", "b", "c", "b"]


def test_parse_query_matches_the_sources_spelling(board):
    state = board.parse_query("?region=east&period=2026-q2&comparison=yoy&product_line=cloud&team=east-1"
                              "&segment=LARGE&token=abc")
    assert state == st.FilterState(period="2026-Q2", comparison="last_year", region="East", product_line="Cloud",
                                   team="East-1", segment="large")
    assert board.parse_query(None) == st.FilterState() == board.parse_query("")


@pytest.mark.parametrize(("query", "param"), [
    ("region=Atlantis", "region"),
    ("product_line=Hardware", "product_line"),
    ("team=Z-9", "team"),
    ("segment=huge", "segment"),
    ("period=someday", "period"),
    ("regoin=East", "regoin"),
])
def test_parse_query_names_the_bad_url_parameter(board, query, param):
    with pytest.raises(ParameterError, match=rf"^{param}: "):
        board.parse_query(query)


# ------------------------------------------------------------------------- the View equals the engine path

EQUIVALENCE_STATES = [
    st.FilterState(),  # this quarter, every region, vs previous
    st.FilterState(region="East"),
    st.FilterState(period="this_quarter", region="South", comparison="last_year"),
    st.FilterState(period="this_month", comparison="last_year"),
    st.FilterState(period="this_month", region="APAC"),
    st.FilterState(period="last_12_months", region="West"),
    st.FilterState(period="2025-Q4", comparison="last_year"),
    st.FilterState(period="2026-Q1", region="North"),
]


@pytest.mark.parametrize("state", EQUIVALENCE_STATES, ids=lambda s: st.to_query(s) or "default")
def test_view_kpis_equal_the_engine_path(board, con, state):
    v = board.view(state)
    s = engine_slice(con, state)
    assert (v.period, v.comparison_period) == (s.period, s.comparison_period)
    assert v.params.region == s.params.region == state.region
    for which in ("current", "comparison"):
        v_frames, s_frames = (v.tables, s.tables) if which == "current" else (v.comparison, s.comparison)
        v_ctx, s_ctx = notebook.context(v, which), notebook.context(s, which)
        assert v_ctx == s_ctx
        for name in VIEW_KPIS:
            mine, theirs = kpis.compute_kpi(name, v_frames, v_ctx), kpis.compute_kpi(name, s_frames, s_ctx)
            assert same(mine, theirs), f"{name} ({which}): view {mine!r} != engine {theirs!r}"
    # tile values (sparklines: see below), from fresh caches each: the view and the slice share a SourceInfo
    assert_same_tiles(v, s, spark_periods=1)


def assert_same_tiles(v: View, s: data.Slice, spark_periods: int) -> None:
    tiles.clear_cache()
    mine = {t.kpi: t for t in tiles.tiles_for(v, VIEW_KPIS, spark_periods=spark_periods)}
    tiles.clear_cache()
    theirs = {t.kpi: t for t in tiles.tiles_for(s, VIEW_KPIS, spark_periods=spark_periods)}
    tiles.clear_cache()
    for name in VIEW_KPIS:
        a, b = mine[name], theirs[name]
        for attribute in ("value", "comparison_value", "delta", "delta_pct", "target", "attainment"):
            assert same(getattr(a, attribute), getattr(b, attribute)), f"{name}.{attribute}"
        assert (a.trend, a.display, a.no_data, a.period_label, a.comparison_label) == \
            (b.trend, b.display, b.no_data, b.period_label, b.comparison_label), name
        assert [p for p, _ in a.sparkline] == [p for p, _ in b.sparkline]
        assert len(a.sparkline) == spark_periods
        assert all(same(x, y) for (_, x), (_, y) in zip(a.sparkline, b.sparkline, strict=True)), name


@pytest.mark.parametrize("state", [st.FilterState(), st.FilterState(region="East", comparison="last_year")],
                         ids=lambda s: st.to_query(s) or "default")
def test_view_sparklines_equal_the_engine_path(board, con, state):
    """Sparklines cut earlier periods from `View.history` (memory) vs `Slice.history` (the engine)."""
    assert_same_tiles(board.view(state), engine_slice(con, state), spark_periods=8)


def test_the_demo_view_has_a_value_for_every_kpi(board):
    for t in tiles.tiles_for(board.view(st.FilterState()), VIEW_KPIS, spark_periods=1):
        assert t.value is not None and t.no_data is None, t.kpi


def test_view_history_equals_the_slices(board, con):
    state = st.FilterState(region="East")
    v, s = board.view(state), engine_slice(con, state)
    for name, key in (("opportunities", "opportunity_id"), ("activities", "activity_id")):
        assert ids(v.history(name, 4), key) == ids(s.history(name, 4), key)
    assert v.history("accounts") is board.frames["accounts"]


# ------------------------------------------------------------------------------------- slice filters

FILTER_STATES = [
    st.FilterState(product_line="Cloud"),
    st.FilterState(region="East", team="East-1"),
    st.FilterState(period="this_month", segment="large"),
    st.FilterState(period="2026-Q2", comparison="last_year", product_line="Core", team="West-2", segment="mid"),
]
KEYS = {"opportunities": "opportunity_id", "leads": "lead_id", "activities": "activity_id"}


@pytest.mark.parametrize("state", FILTER_STATES, ids=lambda s: st.to_query(s))
def test_slice_filters_equal_apply_filters_on_the_engine_slice(board, con, state):
    v, s = board.view(state), engine_slice(con, state)
    for which in ("current", "comparison"):
        mine, theirs = (v.tables, s.tables) if which == "current" else (v.comparison, s.comparison)
        expected = st.apply_filters(theirs, state)
        for name, key in KEYS.items():
            assert ids(mine[name], key) == ids(expected[name], key), f"{name} ({which})"
        for name in ("win_rate", "bookings_amount", "pipeline_amount", "won_deals", "activity_completion_rate"):
            mine_value = kpis.compute_kpi(name, mine, v.ctx(which))
            assert same(mine_value, kpis.compute_kpi(name, expected, notebook.context(s, which))), f"{name} ({which})"
    assert len(v.tables["opportunities"]) < len(board.view(dataclasses.replace(state, product_line=None, team=None,
                                                                               segment=None)).tables["opportunities"])
    expected_missed = st.apply_filters(s.tables, state).not_applied
    assert v.filters_not_applied == {t: f for t, f in expected_missed.items() if t in v.tables}


def test_filters_not_applied_lists_tables_without_a_route(board):
    # leads carry no product and no account; activities carry no product: hand-checked against the schema
    assert board.view(st.FilterState(product_line="Cloud")).filters_not_applied == {
        "leads": ("product_line",), "activities": ("product_line",)}
    assert board.view(st.FilterState(segment="large")).filters_not_applied == {"leads": ("segment",)}
    assert board.view(st.FilterState(team="East-1")).filters_not_applied == {}
    assert board.view(st.FilterState()).filters_not_applied == {}


def test_filtered_view_keeps_dimensions_whole(board):
    v = board.view(st.FilterState(product_line="Cloud", segment="small"))
    for name in ("accounts", "reps", "products", "targets"):
        assert v.tables[name] is board.frames[name]
    lines = set(board.frames["products"].set_index("product_id").loc[v.tables["opportunities"]["product_id"],
                                                                       "product_line"])
    assert lines == {"Cloud"}
    assert set(v.tables["opportunities"]["account_id"].map(
        board.frames["accounts"].set_index("account_id")["size_band"])) == {"small"}


def test_filtered_views_get_their_own_source_info(board):
    plain = board.view(st.FilterState())
    cloud = board.view(st.FilterState(product_line="Cloud"))
    assert plain.info is board.info
    assert cloud.info is not board.info and cloud.info.tables == board.info.tables
    assert board.view(st.FilterState(product_line="Cloud", region="West")).info is cloud.info


# ------------------------------------------------------------------------------------------ annotate

def test_annotate_notes_tables_not_filtered_and_targets(board):
    v = board.view(st.FilterState(product_line="Cloud"))
    notes = {t.kpi: t.note for t in v.annotate(tiles.tiles_for(v, VIEW_KPIS, spark_periods=1))}
    assert notes["activity_completion_rate"] == "not filtered by product line"
    assert notes["forgotten_accounts"] == "not filtered by product line"
    assert notes["target_attainment"] == "the target is the whole company's"
    assert notes["bookings_amount"] == "the target is the whole company's"
    assert notes["won_deals"] == "the target is the whole company's"
    for name in ("win_rate", "pipeline_amount", "new_opportunities", "avg_deal_size", "sales_cycle_days"):
        assert notes[name] is None, name


def test_annotate_names_the_region_target_and_several_filters(board):
    v = board.view(st.FilterState(region="East", team="East-1"))
    notes = {t.kpi: t.note for t in v.annotate(tiles.tiles_for(v, ["bookings_amount", "win_rate"], spark_periods=1))}
    assert notes == {"bookings_amount": "the target is the whole region's", "win_rate": None}
    both = board.view(st.FilterState(product_line="Core", segment="mid"))
    tile = both.annotate(tiles.tiles_for(both, ["leads_created"], spark_periods=1))[0]
    assert kpis.get_kpi("leads_created").tables == ("leads",)
    assert tile.note == "not filtered by product line or customer segment"


def test_note_lists_three_filters_in_order():
    v = View(params=None, period=None, previous_period=None, last_year_period=None, tables={}, previous={},
             last_year={}, rejected={}, report=None, con=None, info=None, as_of=None,
             filters_not_applied={"a": ("product_line", "segment"), "b": ("team", "segment")})
    assert v.note(["a", "b"]) == "not filtered by product line, customer segment or team"
    assert v.note(["b"]) == "not filtered by team or customer segment"
    assert v.note(["c"]) is None and v.note([]) is None


def test_annotate_leaves_unfiltered_tiles_alone(board):
    v = board.view(st.FilterState())
    plain = tiles.tiles_for(v, VIEW_KPIS, spark_periods=1)
    assert v.annotate(plain) == plain
    assert all(t.note is None for t in v.annotate(plain))


# ------------------------------------------------------------------------------------------ Maven

def test_maven_tiles_say_which_table_is_missing(maven_board):
    assert {"leads", "activities", "targets"}.isdisjoint(maven_board.frames)
    v = maven_board.view(st.FilterState())
    found = {t.kpi: t for t in v.annotate(tiles.tiles_for(v, VIEW_KPIS, spark_periods=1))}
    expected = {"target_attainment": "No data: this source has no `targets` table",
                "activity_completion_rate": "No data: this source has no `activities` table",
                "forgotten_accounts": "No data: this source has no `activities` table"}
    for name, text in expected.items():
        assert found[name].value is None and found[name].comparison_value is None, name
        assert found[name].no_data == text
        assert found[name].value != 0
    assert found["bookings_amount"].value > 0 and found["bookings_amount"].target is None
    assert found["win_rate"].value is not None


def test_maven_deep_links_use_its_regions(maven_board):
    assert maven_board.parse_query("region=central").region == "Central"
    with pytest.raises(ParameterError, match=r"^region: "):
        maven_board.parse_query("region=APAC")


# -- results shared on disk between kernels ---------------------------------------------------------------------

def test_results_are_shared_on_disk_between_kernels(tiny_demo, tmp_path):
    con = data.connect(str(tiny_demo))
    first = DashboardData(con, cache_dir=tmp_path)
    assert first.cache_dir is not None and first.cache_dir.parent == tmp_path
    key = (*first.view_key(st.FilterState()), "test")
    calls = []
    assert first.memo(key, lambda: calls.append(1) or {"value": 42}) == {"value": 42}
    second = DashboardData(con, cache_dir=tmp_path)  # another kernel, same data and code
    assert second.cache_dir == first.cache_dir
    assert second.memo(key, lambda: calls.append(2) or {"value": -1}) == {"value": 42}
    assert calls == [1]


def test_a_changed_file_or_a_damaged_entry_is_recomputed(tiny_demo, tmp_path):
    import shutil

    copy = tmp_path / "demo"
    shutil.copytree(tiny_demo, copy)
    board = DashboardData(data.connect(str(copy)), cache_dir=tmp_path / "cache")
    key = ("k",)
    board.memo(key, lambda: "old")
    board._path(key).write_bytes(b"not a pickle")
    fresh = DashboardData(data.connect(str(copy)), cache_dir=tmp_path / "cache")
    assert fresh.memo(key, lambda: "recomputed") == "recomputed"
    target = copy / "targets.parquet"
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    changed = DashboardData(data.connect(str(copy)), cache_dir=tmp_path / "cache")
    assert changed.cache_dir != board.cache_dir
    assert changed.memo(key, lambda: "new data") == "new data"


def test_a_second_kernel_takes_the_validated_tables_from_disk(tiny_demo, tmp_path, monkeypatch):
    con = data.connect(str(tiny_demo))
    first = DashboardData(con, cache_dir=tmp_path)
    monkeypatch.setattr(DashboardData, "_validate", lambda *a: pytest.fail("validated again"))
    second = DashboardData(con, cache_dir=tmp_path)
    assert second.frames.keys() == first.frames.keys() and second.rejected == first.rejected
    for name, frame in first.frames.items():
        pd.testing.assert_frame_equal(second.frames[name], frame)


def test_no_disk_cache_when_switched_off_or_for_a_database(tiny_demo, monkeypatch):
    monkeypatch.setenv(model.CACHE_ENV, "off")
    assert model.default_cache_dir() is None
    assert DashboardData(data.connect(str(tiny_demo))).cache_dir is None
    info = dataclasses.replace(data.source_info(data.connect(str(tiny_demo))), kind="url", source="postgresql://x")
    assert model.source_identity(info, Params()) is None


@pytest.mark.parametrize("state", [st.FilterState(), st.FilterState(region="East")],
                         ids=lambda s: st.to_query(s) or "default")
def test_view_latest_equals_the_engine_group_by(board, con, state):
    """`View.latest` (pandas over the kernel's history) equals `Slice.latest` (a group-by in the engine)."""
    v, s = board.view(state), engine_slice(con, state)
    before = min(s.as_of, s.period.end)
    mine = v.latest("activities", "occurred_at", "account_id", before, 3)
    theirs = s.latest("activities", "occurred_at", "account_id", before, 3)
    assert len(theirs) > 0
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), theirs, check_dtype=False)
