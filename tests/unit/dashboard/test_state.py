"""Tests of crmlens.dashboard.state: presets, deep links, parameters, frame filters, names and choices."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from crmlens import data
from crmlens.dashboard.state import (
    PRESETS,
    FilterState,
    apply_filters,
    describe,
    file_stem,
    from_query,
    options_for,
    resolve_comparison,
    resolve_period,
    to_params,
    to_query,
)
from crmlens.errors import ParameterError
from crmlens.params import Params

REGIONS = ["East", "West", "North", "South", "Central", "APAC"]
LINES = ["Core", "Cloud", "Edge", "Insight", "Software"]
TEAMS = ["East-1", "East-2", "West-1", "Dustin Brinkmann"]
KNOWN = {"known_regions": REGIONS, "known_product_lines": LINES, "known_teams": TEAMS}


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


# -- presets -----------------------------------------------------------------------------------------------

# (preset, as_of, fiscal_year_start) -> (label, first day, last day), worked out by hand from the documented rule
PRESET_CASES = [
    # the demo: data up to 2026-09-30, so as_of = 2026-10-01 (midnight after the last event)
    ("this_month", "2026-10-01", 1, "2026-09", "2026-09-01", "2026-09-30"),
    ("this_quarter", "2026-10-01", 1, "2026-Q3", "2026-07-01", "2026-09-30"),
    ("this_year", "2026-10-01", 1, "2026", "2026-01-01", "2026-12-31"),
    ("last_quarter", "2026-10-01", 1, "2026-Q3", "2026-07-01", "2026-09-30"),
    ("last_12_months", "2026-10-01", 1, "2025-10-01..2026-09-30", "2025-10-01", "2026-09-30"),
    # mid-month: the running month/quarter/year, partially elapsed (data up to 2026-08-14)
    ("this_month", "2026-08-15", 1, "2026-08", "2026-08-01", "2026-08-31"),
    ("this_quarter", "2026-08-15", 1, "2026-Q3", "2026-07-01", "2026-09-30"),
    ("this_year", "2026-08-15", 1, "2026", "2026-01-01", "2026-12-31"),
    ("last_quarter", "2026-08-15", 1, "2026-Q2", "2026-04-01", "2026-06-30"),
    ("last_12_months", "2026-08-15", 1, "2025-08-01..2026-07-31", "2025-08-01", "2026-07-31"),
    # new year's day: everything "this" is last year's
    ("this_month", "2026-01-01", 1, "2025-12", "2025-12-01", "2025-12-31"),
    ("this_quarter", "2026-01-01", 1, "2025-Q4", "2025-10-01", "2025-12-31"),
    ("this_year", "2026-01-01", 1, "2025", "2025-01-01", "2025-12-31"),
    ("last_12_months", "2026-01-01", 1, "2025-01-01..2025-12-31", "2025-01-01", "2025-12-31"),
    # the second day of a quarter: the new quarter is running
    ("this_quarter", "2026-10-02", 1, "2026-Q4", "2026-10-01", "2026-12-31"),
    ("last_quarter", "2026-10-02", 1, "2026-Q3", "2026-07-01", "2026-09-30"),
    # fiscal years starting in April: FY2026 = 2026-04-01..2027-03-31, its Q2 = July–September
    ("this_quarter", "2026-08-15", 4, "2026-Q2", "2026-07-01", "2026-09-30"),
    ("this_year", "2026-08-15", 4, "2026", "2026-04-01", "2027-03-31"),
    ("this_year", "2026-02-10", 4, "2025", "2025-04-01", "2026-03-31"),
    ("last_quarter", "2026-02-10", 4, "2025-Q3", "2025-10-01", "2025-12-31"),
    ("last_12_months", "2026-02-10", 4, "2025-02-01..2026-01-31", "2025-02-01", "2026-01-31"),
]


@pytest.mark.parametrize(("preset", "as_of", "fys", "label", "first", "last"), PRESET_CASES)
def test_presets_resolve_by_the_documented_rule(preset, as_of, fys, label, first, last):
    period = resolve_period(FilterState(period=preset), as_of, fys)
    assert period.label == label
    assert period.start == ts(first)
    assert period.last_day == ts(last)


def test_last_12_months_is_twelve_whole_months():
    period = resolve_period("last_12_months", date(2026, 8, 15))
    assert period.kind == "range"
    assert period.days == 365  # 2025-08-01..2026-07-31, no 29 February inside


def test_as_of_may_be_a_date_timestamp_or_text():
    expected = resolve_period("this_month", "2026-10-01")
    assert resolve_period("this_month", date(2026, 10, 1)) == expected
    assert resolve_period("this_month", pd.Timestamp("2026-10-01")) == expected
    assert resolve_period("this_month", pd.Timestamp("2026-10-01 08:00", tz="Asia/Shanghai")) == \
        resolve_period("this_month", "2026-10-01")  # 08:00 in Shanghai is midnight UTC


def test_a_time_of_day_counts_its_own_day():
    assert resolve_period("this_month", "2026-10-01 09:30").label == "2026-10"
    assert resolve_period("last_quarter", "2026-10-01 09:30").label == "2026-Q3"


def test_a_period_text_ignores_as_of():
    assert resolve_period(FilterState(period="2026-q2"), "2030-01-01").label == "2026-Q2"
    assert resolve_period(FilterState(period="2026-W37")).label == "2026-W37"
    assert resolve_period(FilterState(period="2026-07-01..2026-09-30")).days == 92


def test_a_preset_needs_as_of():
    with pytest.raises(ParameterError, match=r"as_of: needed to resolve the period preset this_quarter"):
        resolve_period(FilterState())


def test_bad_as_of_is_named():
    with pytest.raises(ParameterError, match=r"as_of: 'soon' is not a date"):
        resolve_period("this_month", "soon")


def test_demo_as_of_gives_its_latest_quarter(tiny_demo: Path):
    con = data.connect(str(tiny_demo))
    as_of = data.data_as_of(con)
    assert as_of == ts("2026-10-01")  # the tiny demo's data end on 2026-09-30
    assert resolve_period(FilterState(period="last_quarter"), as_of).label == "2026-Q3"
    assert resolve_period(FilterState(), as_of).label == "2026-Q3"  # default: this_quarter


def test_comparison_periods():
    assert resolve_comparison(FilterState(), "2026-10-01").label == "2026-Q2"
    assert resolve_comparison(FilterState(comparison="yoy"), "2026-10-01").label == "2025-Q3"
    last12 = FilterState(period="last_12_months")
    assert resolve_comparison(last12, "2026-10-01").label == "2024-10-01..2025-09-30"


# -- the state ---------------------------------------------------------------------------------------------


def test_values_are_normalised():
    state = FilterState(period="This-Quarter", comparison="ly", region=" ALL ", product_line="all",
                        team="", segment=" mid ")
    assert state == FilterState(period="this_quarter", comparison="last_year", segment="mid")
    assert FilterState(period="2026-q3").period == "2026-Q3"
    assert FilterState(period="2026-w7").period == "2026-W07"
    assert FilterState(period=" 2026-07-01 .. 2026-09-30 ").period == "2026-07-01..2026-09-30"
    assert FilterState(team="East-1").slice_filters == {"team": "East-1"}


def test_bad_state_values_raise():
    with pytest.raises(ParameterError, match=r"period: 'next_week' is not a period; use a preset \(this_month"):
        FilterState(period="next_week")
    with pytest.raises(ParameterError, match=r"comparison: 'budget' is not a comparison"):
        FilterState(comparison="budget")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match=r"team: 3 is not a team"):
        FilterState(team=3)  # type: ignore[arg-type]


# -- deep links --------------------------------------------------------------------------------------------


def test_to_query_writes_only_non_defaults_in_a_stable_order():
    assert to_query(FilterState()) == ""
    assert to_query(FilterState(period="2026-Q3", region="East")) == "region=East&period=2026-Q3"
    state = FilterState(segment="enterprise", team="Dustin Brinkmann", product_line="Software",
                        comparison="last_year", period="2026-07-01..2026-09-30", region="East")
    assert to_query(state) == ("region=East&period=2026-07-01..2026-09-30&comparison=last_year"
                               "&product_line=Software&team=Dustin%20Brinkmann&segment=enterprise")


def test_to_query_against_other_defaults_writes_all_for_a_cleared_filter():
    defaults = FilterState(region="East", product_line="Core")
    assert to_query(FilterState(), defaults=defaults) == "region=all&product_line=all"
    assert from_query("region=all&product_line=all", defaults=defaults, **KNOWN) == FilterState()
    assert from_query("", defaults=defaults, **KNOWN) == defaults


ROUND_TRIP_STATES = [
    FilterState(),
    FilterState(region="East"),
    FilterState(region="APAC", period="2026-Q3"),
    FilterState(period="this_month"),
    FilterState(period="this_year", comparison="last_year"),
    FilterState(period="last_quarter"),
    FilterState(period="last_12_months", comparison="last_year", region="West"),
    FilterState(period="2026"),
    FilterState(period="2026-09"),
    FilterState(period="2026-W37"),
    FilterState(period="2026-07-01..2026-09-30", region="Central"),
    FilterState(product_line="Software"),
    FilterState(team="Dustin Brinkmann", segment="small"),
    FilterState(region="North", period="2025-Q4", comparison="last_year", product_line="Insight", team="East-2",
                segment="enterprise"),
]


@pytest.mark.parametrize("state", ROUND_TRIP_STATES, ids=lambda s: to_query(s) or "defaults")
def test_round_trip(state: FilterState):
    query = to_query(state)
    assert from_query(query, **KNOWN) == state
    assert from_query("?" + query, **KNOWN) == state  # as a URL's search part


@pytest.mark.parametrize("state", ROUND_TRIP_STATES[1:6], ids=lambda s: to_query(s))
def test_round_trip_with_other_defaults(state: FilterState):
    defaults = FilterState(region="West", period="2026-Q1", team="East-1")
    assert from_query(to_query(state, defaults=defaults), defaults=defaults, **KNOWN) == state


def test_from_query_matches_the_sources_spelling_ignoring_case():
    state = from_query("region=east&Period=2026-q3&TEAM=dustin+brinkmann&product-line=SOFTWARE&segment=Large",
                       **KNOWN)
    assert state == FilterState(region="East", period="2026-Q3", team="Dustin Brinkmann", product_line="Software",
                                segment="large")
    assert from_query("region=apac&comparison=YoY&period=Last_12_Months", **KNOWN) == \
        FilterState(region="APAC", comparison="last_year", period="last_12_months")


def test_from_query_keeps_defaults_for_empty_values_and_ignores_server_keys():
    assert from_query("region=&period=", **KNOWN) == FilterState()
    assert from_query("token=abc123&voila-theme=dark&region=West", **KNOWN) == FilterState(region="West")
    assert from_query("region=West&region=west", **KNOWN) == FilterState(region="West")


def test_unknown_key_names_it_and_lists_the_known_ones():
    with pytest.raises(ParameterError) as err:
        from_query("region=East&regoin=West", **KNOWN)
    message = str(err.value)
    assert message.startswith("regoin: unknown URL parameter (value 'West')")
    assert "region, period, comparison, product_line, team, segment" in message
    assert "did you mean region?" in message


def test_bad_period_names_parameter_value_and_allowed_forms():
    with pytest.raises(ParameterError) as err:
        from_query("period=2026-Q5", **KNOWN)
    message = str(err.value)
    assert message.startswith("period: '2026-Q5' is not a period")
    assert "this_month, this_quarter, this_year, last_quarter, last_12_months" in message
    assert "2026, 2026-Q3, 2026-09, 2026-W37 or 2026-07-01..2026-09-30" in message
    assert "(quarter must be 1–4)" in message


def test_unknown_region_lists_the_sources_regions():
    with pytest.raises(ParameterError) as err:
        from_query("region=Mars", **KNOWN)
    message = str(err.value)
    assert message.startswith("region: 'Mars' is not a region of this source")
    assert "APAC, Central, East, North, South, West or all" in message


@pytest.mark.parametrize(("query", "expected"), [
    ("product_line=Hardware", "product_line: 'Hardware' is not a product line of this source; use Cloud, Core, "
                              "Edge, Insight, Software or all"),
    ("team=Dustin%20Brinkman", "team: 'Dustin Brinkman' is not a team of this source; use Dustin Brinkmann, "
                               "East-1, East-2, West-1 or all; did you mean Dustin Brinkmann?"),
    ("segment=huge", "segment: 'huge' is not a customer segment of this source; use enterprise, large, mid, "
                     "small or all"),
    ("comparison=budget", "comparison: 'budget' is not a comparison; use previous"),
    ("region=East&region=West", "region: given twice in the URL, as 'East' and as 'West'; give it once"),
])
def test_bad_values_name_parameter_value_and_allowed(query: str, expected: str):
    with pytest.raises(ParameterError) as err:
        from_query(query, **KNOWN)
    assert str(err.value).startswith(expected)


def test_a_source_without_product_lines_accepts_only_all():
    assert from_query("product_line=all", known_regions=REGIONS, known_product_lines=[]) == FilterState()
    with pytest.raises(ParameterError, match=r"use all \(the source has no product lines\)"):
        from_query("product_line=Core", known_regions=REGIONS, known_product_lines=[])


def test_unchecked_filters_are_taken_as_given():
    state = from_query("product_line=Anything&team=Someone", known_regions=REGIONS)
    assert (state.product_line, state.team) == ("Anything", "Someone")


# -- parameters --------------------------------------------------------------------------------------------


def test_to_params_resolves_the_period_and_keeps_the_base():
    base = Params(source="/data/export", currency="EUR", forgotten_days=30)
    params = to_params(FilterState(region="East", comparison="last_year", product_line="Core"), "2026-10-01", base)
    assert (params.region, params.period, params.comparison) == ("East", "2026-Q3", "last_year")
    assert params.as_of == date(2026, 10, 1)
    assert (params.source, params.currency, params.forgotten_days) == ("/data/export", "EUR", 30)
    assert params.comparison_obj().label == "2025-Q3"


def test_to_params_follows_the_base_fiscal_year():
    params = to_params(FilterState(period="this_year"), pd.Timestamp("2026-02-10"), Params(fiscal_year_start=4))
    assert params.period == "2025"
    assert params.period_obj().start == ts("2025-04-01")


def test_to_params_with_a_fixed_period_needs_no_as_of():
    params = to_params(FilterState(period="2026-07-01..2026-09-30"), None)
    assert params.period == "2026-07-01..2026-09-30"
    assert params.as_of is None


# -- frame filters -----------------------------------------------------------------------------------------


@pytest.fixture
def frames() -> dict[str, pd.DataFrame]:
    """Three products in two lines, four reps in two teams (one without), three accounts in two bands."""
    products = pd.DataFrame({"product_id": ["P1", "P2", "P3"], "product_line": ["Software", "Hardware", "Software"]})
    reps = pd.DataFrame({"rep_id": ["R1", "R2", "R3", "R4"], "team_id": ["T1", "T1", "T2", None]})
    accounts = pd.DataFrame({"account_id": ["A1", "A2", "A3"], "size_band": ["enterprise", "small", "enterprise"]})
    opportunities = pd.DataFrame({
        "opportunity_id": ["O1", "O2", "O3", "O4", "O5", "O6"],
        "product_id": ["P1", "P2", "P3", None, "P1", "P9"],
        "owner_rep_id": ["R1", "R3", "R2", "R1", "R4", "R1"],
        "account_id": ["A1", "A1", "A2", "A3", "A3", None],
    })
    contracts = pd.DataFrame({
        "contract_id": ["C1", "C2", "C3"],
        "product_id": ["P3", "P2", "P1"],
        "owner_rep_id": ["R2", "R1", "R3"],
        "account_id": ["A3", "A3", "A1"],
    })
    leads = pd.DataFrame({"lead_id": ["L1", "L2", "L3"], "owner_rep_id": ["R1", None, "R3"]})
    payments = pd.DataFrame({"payment_id": ["Y1"], "contract_id": ["C1"]})
    return {"products": products, "reps": reps, "accounts": accounts, "opportunities": opportunities,
            "contracts": contracts, "leads": leads, "payments": payments}


def ids(frame: pd.DataFrame) -> list[str]:
    return frame.iloc[:, 0].tolist()


def test_product_line_filter(frames):
    out = apply_filters(frames, FilterState(product_line="Software"))
    assert ids(out["opportunities"]) == ["O1", "O3", "O5"]  # P1, P3, P1; O4 (no product) and O6 (P9) drop
    assert ids(out["contracts"]) == ["C1", "C3"]
    assert ids(out["leads"]) == ["L1", "L2", "L3"]  # leads have no product: unchanged, and reported
    assert out.not_applied == {"leads": ("product_line",), "payments": ("product_line",)}
    assert out.note("leads") == "not filtered by product line"
    assert out.note("opportunities") is None


def test_team_filter(frames):
    out = apply_filters(frames, FilterState(team="T1"))
    assert ids(out["opportunities"]) == ["O1", "O3", "O4", "O6"]  # R1, R2; R4 has no team
    assert ids(out["contracts"]) == ["C1", "C2"]
    assert ids(out["leads"]) == ["L1"]
    assert out.not_applied == {"payments": ("team",)}


def test_segment_filter(frames):
    out = apply_filters(frames, FilterState(segment="enterprise"))
    assert ids(out["opportunities"]) == ["O1", "O2", "O4", "O5"]  # A1, A3; O6 has no account
    assert ids(out["contracts"]) == ["C1", "C2", "C3"]
    assert out.not_applied == {"leads": ("segment",), "payments": ("segment",)}


def test_filters_combine(frames):
    out = apply_filters(frames, FilterState(product_line="Software", team="T1", segment="enterprise"))
    assert ids(out["opportunities"]) == ["O1"]
    assert ids(out["contracts"]) == ["C1"]
    assert ids(out["leads"]) == ["L1"]  # by team only
    assert out.not_applied == {"leads": ("product_line", "segment"),
                               "payments": ("product_line", "team", "segment")}
    assert out.note("payments") == "not filtered by product line, team or customer segment"
    assert out.note("leads") == "not filtered by product line or customer segment"


def test_dimension_tables_stay_whole_and_inputs_unchanged(frames):
    before = {name: frame.copy() for name, frame in frames.items()}
    out = apply_filters(frames, FilterState(product_line="Hardware", team="T2", segment="small"))
    for name in ("products", "reps", "accounts"):
        assert out[name] is frames[name]
    for name, frame in frames.items():
        pd.testing.assert_frame_equal(frame, before[name])
    assert ids(out["opportunities"]) == []
    assert ids(out["contracts"]) == []


def test_no_filter_returns_the_frames_as_they_are(frames):
    out = apply_filters(frames, FilterState(region="East", period="2026-Q1"))
    assert all(out[name] is frame for name, frame in frames.items())
    assert out.not_applied == {}
    assert isinstance(out, dict)


def test_missing_lookup_table_is_reported(frames):
    without_products = {k: v for k, v in frames.items() if k != "products"}
    out = apply_filters(without_products, FilterState(product_line="Software", team="T2"))
    assert ids(out["opportunities"]) == ["O2"]  # filtered by team only
    assert out.not_applied["opportunities"] == ("product_line",)
    given = apply_filters(without_products, FilterState(product_line="Software"), products=frames["products"])
    assert ids(given["opportunities"]) == ["O1", "O3", "O5"]


def test_only_the_chosen_tables_are_filtered(frames):
    out = apply_filters(frames, FilterState(team="T1"), tables=["opportunities"])
    assert ids(out["opportunities"]) == ["O1", "O3", "O4", "O6"]
    assert out["contracts"] is frames["contracts"]
    assert out.not_applied == {}


# -- names and headers -------------------------------------------------------------------------------------


def test_file_stem_examples():
    assert file_stem(FilterState(region="East", period="2026-Q3", product_line="Software")) == \
        "crmlens_East_2026-Q3_vs-previous_line-Software"
    assert file_stem(FilterState(), "2026-10-01") == "crmlens_all-regions_2026-Q3_vs-previous"
    assert file_stem(FilterState(period="last_12_months", comparison="last_year")) == \
        "crmlens_all-regions_last-12-months_vs-last-year"
    assert file_stem(FilterState(period="last_12_months"), "2026-10-01") == \
        "crmlens_all-regions_2025-10-01-to-2026-09-30_vs-previous"
    assert file_stem(FilterState(region="West", period="2026-09", team="Dustin Brinkmann", segment="mid")) == \
        "crmlens_West_2026-09_vs-previous_team-Dustin-Brinkmann_segment-mid"


@pytest.mark.parametrize("value", ["Zürich / Nord", "华东", "a..b", "../../etc/passwd", "x_y z", "Co., Ltd."])
def test_file_stem_is_always_safe(value: str):
    stem = file_stem(FilterState(region=value, period="2026-W37", product_line=value, team=value))
    assert re.fullmatch(r"[A-Za-z0-9_-]+", stem), stem
    assert stem.count("_") == 5  # six parts (crmlens, region, period, comparison, line, team)
    assert len(stem) < 200


def test_file_stem_keeps_ascii_of_accented_values_and_tells_non_latin_apart():
    assert file_stem(FilterState(region="Zürich")).split("_")[1] == "Zurich"
    assert file_stem(FilterState(region="华东")) != file_stem(FilterState(region="华南"))


def test_describe():
    state = FilterState(region="East", period="2026-Q3", product_line="Software")
    assert describe(state) == "East · 2026-Q3 vs 2026-Q2 · product line Software"
    assert describe(FilterState(), "2026-10-01") == "All regions · 2026-Q3 (this quarter) vs 2026-Q2"
    assert describe(FilterState(comparison="last_year", team="East-1", segment="small")) == \
        "All regions · this quarter vs same period last year · team East-1 · customer segment small"
    assert describe(FilterState(period="last_12_months", comparison="last_year"), "2026-10-01") == \
        "All regions · 2025-10-01 – 2026-09-30 (last 12 months) vs 2024-10-01 – 2025-09-30"


def test_every_preset_has_a_header_name():
    for preset, name in PRESETS.items():
        assert describe(FilterState(period=preset)).startswith(f"All regions · {name} vs previous period")


# -- choices -----------------------------------------------------------------------------------------------


def test_options_for_the_tiny_demo(tiny_demo: Path):
    options = options_for(data.connect(str(tiny_demo)))
    assert options == {
        "regions": ["APAC", "Central", "East", "North", "South", "West"],
        "product_lines": ["Cloud", "Core", "Edge", "Insight"],
        "teams": ["APAC-1", "APAC-2", "Central-1", "Central-2", "East-1", "East-2", "North-1", "North-2",
                  "South-1", "South-2", "West-1", "West-2"],
        "segments": ["small", "mid", "large", "enterprise"],
        "reps": options["reps"],
    }
    reps = pd.read_parquet(tiny_demo / "reps.parquet")["rep_id"]
    assert options["reps"] == sorted(reps.astype(str).unique()) and len(options["reps"]) > 10
    state = from_query("region=east&team=apac-2&segment=MID&rep=" + options["reps"][3].lower(),
                       **{f"known_{key}": values for key, values in options.items()})
    assert (state.region, state.team, state.segment, state.rep) == ("East", "APAC-2", "mid", options["reps"][3])
    with pytest.raises(ParameterError, match="rep: 'R9999' is not a sales rep of this source"):
        from_query("rep=R9999", **{f"known_{key}": values for key, values in options.items()})


def test_options_for_maven(maven_con):
    options = options_for(maven_con)
    assert options == {
        "regions": ["Central", "East", "West"],
        "product_lines": ["GTK", "GTX", "MG"],
        "teams": ["Cara Losch", "Celia Rouche", "Dustin Brinkmann", "Melvin Marxen", "Rocco Neubert",
                  "Summer Sewald"],
        "segments": ["small", "mid", "large", "enterprise"],
        "reps": options["reps"],
    }
    assert len(options["reps"]) == 35  # Maven's sales agents


def test_options_for_a_source_lacking_tables(tmp_path: Path):
    (tmp_path / "regions.csv").write_text("region_id,name,country\nNorth,North,X\nEast,East,X\nNorth,N2,X\n",
                                          encoding="utf-8")
    options = options_for(data.connect(str(tmp_path)))
    assert options == {"regions": ["East", "North"], "product_lines": [], "teams": [], "segments": [],
                       "reps": []}


# -- language ----------------------------------------------------------------------------------------------


@pytest.fixture
def restore_language():
    """Tests that switch the process's language get the previous one back."""
    from crmlens import i18n

    before = i18n.current()
    yield
    i18n.use(before)


def test_language_defaults_to_english_and_accepts_aliases():
    assert FilterState().language == "en"
    assert FilterState(language="zh").language == "zh"
    assert FilterState(language="zh-CN").language == FilterState(language="中文").language == "zh"
    assert FilterState(language=None).language == "en"  # type: ignore[arg-type]


def test_language_deep_link_round_trip():
    zh = FilterState(region="East", period="2026-Q3", language="zh")
    assert to_query(zh) == "region=East&period=2026-Q3&language=zh"
    assert from_query(to_query(zh), **KNOWN) == zh
    assert from_query("?language=zh", **KNOWN) == FilterState(language="zh")
    assert from_query("LANGUAGE=ZH", **KNOWN) == FilterState(language="zh")  # keys and values ignore case
    # the default is not written: an English link is the plain one
    assert to_query(FilterState(language="en")) == ""
    assert from_query("language=en", **KNOWN) == FilterState()
    assert from_query("", **KNOWN).language == "en"


@pytest.mark.parametrize("value", ["fr", "xx", "deutsch"])
def test_bad_language_names_the_parameter_and_lists_the_languages(value: str):
    with pytest.raises(ParameterError) as info:
        from_query(f"region=East&language={value}", **KNOWN)
    message = str(info.value)
    assert message.startswith("language:") and repr(value) in message
    assert "en, zh" in message
    with pytest.raises(ParameterError, match=r"^language:.*en, zh"):
        FilterState(language=value)


def test_language_of_query_is_the_links_language_or_the_default():
    from crmlens.dashboard.state import language_of_query

    assert language_of_query("region=Atlantis&language=zh") == "zh"
    assert language_of_query("?language=zh-CN") == "zh"
    assert language_of_query("language=fr") == "en"
    assert language_of_query("") == language_of_query(None) == "en"


def test_language_is_no_analysis_parameter():
    """The language changes what is shown, never the slice: the same parameters in both languages."""
    params = to_params(FilterState(region="East"), "2026-10-01")
    assert to_params(FilterState(region="East", language="zh"), "2026-10-01") == params
    assert file_stem(FilterState(language="zh")) == file_stem(FilterState())


def test_describe_in_chinese(restore_language):
    from crmlens import i18n

    with i18n.language("zh"):
        line = describe(FilterState(region="East", period="2026-Q3", product_line="Software"))
        assert line == "East · 2026-Q3 对比 2026-Q2 · 产品线：Software"
        line = describe(FilterState(comparison="last_year", team="East-1", segment="small"))
        assert line == "全部区域 · 本季度 对比 去年同期（同比） · 团队：East-1 · 客户细分：small"
        line = describe(FilterState(), "2026-10-01")
        assert line == "全部区域 · 2026-Q3（本季度） 对比 2026-Q2"
    assert describe(FilterState(), "2026-10-01") == "All regions · 2026-Q3 (this quarter) vs 2026-Q2"


def test_notes_and_lists_in_chinese(restore_language):
    from crmlens import i18n
    from crmlens.dashboard.state import join_clauses, not_filtered_note, or_list

    assert not_filtered_note(["team", "segment"]) == "not filtered by team or customer segment"
    assert not_filtered_note(["product_line", "team", "segment"]) == \
        "not filtered by product line, team or customer segment"
    assert join_clauses(["a", None, "b"]) == "a; b" and join_clauses([]) == ""
    with i18n.language("zh"):
        assert not_filtered_note(["team", "segment"]) == "未按团队或客户细分筛选"
        assert or_list(["产品线", "团队", "客户细分"]) == "产品线、团队或客户细分"
        assert join_clauses(["甲", "乙"]) == "甲；乙"
    assert not_filtered_note([]) is None
