"""KPI tiles: values equal the registry's, direction-aware colours, targets (planted team below target),
sparklines from history, thresholds, plain "no data" on the Maven source, and safe self-contained HTML."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from crmlens import data, i18n, kpis, notebook
from crmlens.charts import COLORS
from crmlens.dashboard import tiles
from crmlens.dashboard.tiles import Tile
from crmlens.errors import ParameterError
from crmlens.params import validate_params
from crmlens.periods import parse_period
from crmlens.schema import SCHEMA
from crmlens.truths import REGION_IDS, TEAM_BELOW_TARGET
from tests.conftest import MAVEN_MAPPING

AS_OF = "2026-10-01"
PERIOD = TEAM_BELOW_TARGET.period  # 2026-Q3, the latest quarter of the demo
#: KPIs whose value depends on more than the period's rows of one table (stage history, activities going back
#: `forgotten_days`, earlier wins, dimension tables): the strictest check of the per-period frames.
EXTRA = ["median_stage_days", "leads_created", "lead_first_response_days", "activity_completion_rate",
         "forgotten_accounts", "new_customers", "active_reps", "collection_rate", "receivable_balance"]


def open_slice(con, source, region: str, period: str = PERIOD, **kw) -> data.Slice:
    values = {"source": str(source), "region": region, "period": period, "as_of": AS_OF, **kw}
    return data.open_slice(validate_params(values), con)


@pytest.fixture(scope="module")
def con(tiny_demo):
    return data.connect(tiny_demo)


@pytest.fixture(scope="module")
def slices(con, tiny_demo) -> dict[str, data.Slice]:
    return {region: open_slice(con, tiny_demo, region) for region in REGION_IDS}


@pytest.fixture(scope="module")
def west(slices) -> data.Slice:
    return slices["West"]


@pytest.fixture(scope="module")
def west_tiles(west) -> dict[str, Tile]:
    return {t.kpi: t for t in tiles.tiles_for(west, [*tiles.DEFAULT_OVERVIEW, *EXTRA])}


class Cards(HTMLParser):
    """The tile cards of an HTML fragment: their attributes, and all text a person sees."""

    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.cards: list[dict[str, str | None]] = []
        self.attributes: set[str] = set()
        self.text: list[str] = []
        self._in_title = False
        self.feed(fragment)

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        self.attributes |= set(found)
        if "crmlens-tile" in (found.get("class") or "").split():
            self.cards.append(found)
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, text):
        if not self._in_title:
            self.text.append(text)


# ---------------------------------------------------------------------------------------------- registry

def test_default_views_use_registered_kpis():
    registry = kpis.load_all()
    for view in (tiles.DEFAULT_OVERVIEW, tiles.DEFAULT_SALES_MANAGER):
        assert 5 <= len(view) <= 7 and len(set(view)) == len(view)
        assert set(view) <= set(registry)
    assert {"pipeline_amount", "target_attainment"} <= set(tiles.DEFAULT_SALES_MANAGER)


def test_unknown_kpi_is_a_parameter_error_listing_the_registry(west):
    with pytest.raises(ParameterError, match=r"'win_rat' is not a registered KPI; known: .*win_rate"):
        tiles.tiles_for(west, ["win_rate", "win_rat"])


# ------------------------------------------------------------------------------------------------ values

def test_tile_values_equal_the_registry(west, west_tiles):
    ctx, before_ctx = notebook.context(west), notebook.context(west, "comparison")
    assert west.params.comparison == "previous" and west.comparison_period.label == "2026-Q2"
    for name, tile in west_tiles.items():
        value = kpis.compute_kpi(name, west.tables, ctx)
        before = kpis.compute_kpi(name, west.comparison, before_ctx)
        change = kpis.change(kpis.get_kpi(name), value, before)
        assert (tile.value, tile.comparison_value) == (value, before), name
        assert (tile.delta, tile.delta_pct, tile.trend) == (change["delta"], change["delta_pct"], change["trend"])
        assert tile.display == kpis.get_kpi(name).format(value, "USD")
        assert tile.comparison_label == "2026-Q2" and tile.period_label == PERIOD
        assert tile.value is not None and tile.no_data is None, name  # the demo has every table


def test_tiles_match_the_notebooks_kpi_summary(west):
    summary = notebook.kpi_summary(west, tiles.DEFAULT_OVERVIEW).set_index("kpi")
    for tile in tiles.tiles_for(west, tiles.DEFAULT_OVERVIEW):
        assert tile.value == summary.loc[tile.kpi, "value"]
        assert tile.display == summary.loc[tile.kpi, "display"]
        assert tile.trend == summary.loc[tile.kpi, "trend"]


def test_colour_follows_the_kpi_direction(west_tiles):
    colours = {"better": COLORS["good"], "worse": COLORS["bad"], "flat": COLORS["neutral"],
               "neutral": COLORS["neutral"], "n/a": COLORS["neutral"]}
    for tile in west_tiles.values():
        assert tile.colour == colours[tile.trend], tile.kpi
    # "lower is better" KPIs: rose → red, fell → green
    lower = [t for t in west_tiles.values() if t.direction == "lower" and t.value is not None
             and t.comparison_value is not None and t.value != t.comparison_value]
    assert {t.kpi for t in lower} >= {"median_stage_days", "sales_cycle_days"}
    for tile in lower:
        rose = tile.value > tile.comparison_value
        assert (tile.trend, tile.colour) == (("worse", COLORS["bad"]) if rose else ("better", COLORS["good"])), tile.kpi
    # "higher is better" that rose is green
    bookings = west_tiles["bookings_amount"]
    assert bookings.value > bookings.comparison_value and bookings.colour == COLORS["good"]


def test_delta_display_reads_points_for_rates_and_percent_for_the_rest(west_tiles):
    win = west_tiles["win_rate"]
    assert win.delta_display == f"{'▲' if win.delta > 0 else '▼'} {win.delta * 100:+.1f} pp vs 2026-Q2"
    bookings = west_tiles["bookings_amount"]
    assert bookings.delta_display == f"▲ {bookings.delta_pct:+.1%} vs 2026-Q2"


# ----------------------------------------------------------------------------------------------- targets

def test_west_is_below_target_as_planted(slices, west_tiles):
    """TEAM_BELOW_TARGET: team West-2 attains ~60% in 2026-Q3, every other team 90–112%. West's own
    attainment mixes West-2 with its other teams, so it is below every other team's range and the lowest
    of all regions."""
    truth = TEAM_BELOW_TARGET
    tile = west_tiles["target_attainment"]
    assert truth.attainment - 0.03 <= tile.value < truth.others_range[0]
    others = {r: tiles.tiles_for(s, ["target_attainment"])[0].value for r, s in slices.items() if r != "West"}
    assert all(v is not None and v > tile.value for v in others.values()), others
    assert tile.target == 1.0 and tile.attainment == tile.value and tile.attainment_display == ""
    assert tile.target_display.startswith("Target ") and tile.target_display.endswith(" USD")


def test_bookings_target_comes_from_the_targets_table(west, west_tiles):
    targets = west.tables["targets"]
    mine = targets[(targets["period"] == PERIOD) & (targets["level"] == "region") & (targets["key"] == "West")]
    target = float(mine["target_amount"].sum())
    bookings = west_tiles["bookings_amount"]
    assert bookings.target == target
    assert bookings.attainment == bookings.value / target
    assert bookings.attainment == pytest.approx(west_tiles["target_attainment"].value, rel=1e-12)
    assert bookings.target_display == f"Target {target:,.0f} USD"
    assert bookings.attainment_display == f"{bookings.value / target:.0%} of target"
    assert west_tiles["target_attainment"].target_display == f"Target {target:,.0f} USD"
    won = tiles.tiles_for(west, ["won_deals"])[0]
    assert won.target == float(mine["n_target_deals"].sum()) and won.attainment == won.value / won.target
    assert west_tiles["win_rate"].target is None and west_tiles["win_rate"].target_display == ""


def test_period_without_targets_says_so(con, tiny_demo):
    week = open_slice(con, tiny_demo, "West", period="2026-W30")
    tile = tiles.tiles_for(week, ["target_attainment", "bookings_amount"], spark_periods=2)
    assert tile[0].value is None and tile[0].no_data == "No target set for this period"
    assert tile[1].value is not None and tile[1].target is None and tile[1].attainment is None


# -------------------------------------------------------------------------------------------- sparklines

def test_sparkline_covers_the_last_periods_and_ends_with_the_value(west_tiles):
    labels = ["2024-Q4", "2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3"]
    for tile in west_tiles.values():
        assert [label for label, _ in tile.sparkline] == labels, tile.kpi
        points = dict(tile.sparkline)
        assert points[PERIOD] == tile.value
        assert points["2026-Q2"] == tile.comparison_value


def test_sparkline_points_equal_the_kpi_of_that_periods_slice(con, tiny_demo, west_tiles, slices):
    """Earlier points are cut from one history frame per table: each equals the KPI of a slice opened for
    that period (2025-Q1 is neither the previous period nor the same quarter last year)."""
    for region in ("West", "East"):
        past = open_slice(con, tiny_demo, region, period="2025-Q1")
        got = {t.kpi: dict(t.sparkline)["2025-Q1"] for t in tiles.tiles_for(slices[region], list(west_tiles))}
        for name, value in got.items():
            assert value == kpis.compute_kpi(name, past.tables, notebook.context(past)), (region, name)


def test_period_frames_reproduce_the_slice(west):
    """Cutting the history to the current period gives the rows `open_slice` loaded, table by table."""
    frames = tiles.PeriodFrames(west, west.period, 8)
    assert set(frames) == set(west.tables)
    for name, frame in west.tables.items():
        key = list(SCHEMA[name].key)
        assert sorted(map(tuple, frames[name][key].astype(str).to_numpy())) == \
            sorted(map(tuple, frame[key].astype(str).to_numpy())), name


def test_cut_to_period_follows_the_data_layers_rules():
    """Hand-made rows: "at" tables use the first non-null time column; "span" tables keep every row whose
    interval overlaps the period, an unknown start meaning "since ever" and an unknown end "still open"."""
    q3 = parse_period("2026-Q3")
    t = pd.Timestamp
    activities = pd.DataFrame({"activity_id": ["a", "b", "c", "d", "e"],
                               "occurred_at": [t("2026-07-01"), pd.NaT, t("2026-06-30 23:59"), pd.NaT, pd.NaT],
                               "due_at": [t("2026-01-01"), t("2026-09-30 23:00"), t("2026-08-01"), t("2026-10-01"),
                                          pd.NaT]})
    got = tiles.cut_to_period(activities, SCHEMA["activities"], q3)
    assert got["activity_id"].tolist() == ["a", "b"] and got.index.tolist() == [0, 1]
    opportunities = pd.DataFrame({"opportunity_id": ["a", "b", "c", "d", "e", "f"],
                                  "created_at": [pd.NaT, t("2026-09-30"), t("2026-10-01"), t("2025-01-01"),
                                                 t("2025-01-01"), t("2026-07-02")],
                                  "closed_at": [pd.NaT, pd.NaT, pd.NaT, t("2026-07-01"), t("2026-06-30"),
                                                t("2026-07-03")]})
    got = tiles.cut_to_period(opportunities, SCHEMA["opportunities"], q3)
    assert got["opportunity_id"].tolist() == ["a", "b", "d", "f"]


def test_spark_periods_sets_the_number_of_points(west):
    tile = tiles.tiles_for(west, ["win_rate"], spark_periods=3)[0]
    assert [label for label, _ in tile.sparkline] == ["2026-Q1", "2026-Q2", "2026-Q3"]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ParameterError, match="spark_periods"):
            tiles.tiles_for(west, ["win_rate"], spark_periods=bad)


def test_monthly_slice_has_monthly_sparkline(con, tiny_demo):
    month = open_slice(con, tiny_demo, "East", period="2026-09")
    tile = tiles.tiles_for(month, ["new_opportunities"], spark_periods=4)[0]
    assert [label for label, _ in tile.sparkline] == ["2026-06", "2026-07", "2026-08", "2026-09"]
    assert tile.sparkline[-1][1] == tile.value


# ------------------------------------------------------------------------------------------------ alerts

def test_no_thresholds_no_alerts(west_tiles):
    assert all(t.alert is None for t in west_tiles.values())


def test_min_and_max_thresholds(west, west_tiles):
    win, pipeline = west_tiles["win_rate"], west_tiles["pipeline_amount"]
    got = {t.kpi: t.alert for t in tiles.tiles_for(west, ["win_rate", "pipeline_amount", "new_opportunities"],
                                                   thresholds={"win_rate": {"min": win.value + 0.01},
                                                               "pipeline_amount": {"max": 100_000},
                                                               "new_opportunities": {"min": 1, "max": 10_000}})}
    assert got["win_rate"] == f"Below the minimum of {win.value + 0.01:.1%}"
    assert pipeline.value > 100_000 and got["pipeline_amount"] == "Above the maximum of 100,000 USD"
    assert got["new_opportunities"] is None
    # the bound itself is no breach
    same = tiles.tiles_for(west, ["win_rate"], thresholds={"win_rate": {"min": win.value, "max": win.value}})
    assert same[0].alert is None


def test_drop_threshold_compares_with_the_comparison_period(slices):
    east = slices["East"]
    tile = tiles.tiles_for(east, ["bookings_amount"])[0]
    fall = (tile.comparison_value - tile.value) / tile.comparison_value  # hand-computed: East fell in 2026-Q3
    assert fall > 0.2
    alert = tiles.tiles_for(east, ["bookings_amount"], thresholds={"bookings_amount": {"drop_pct": 0.2}})[0].alert
    assert alert == f"Down {fall * 100:.3g}% vs 2026-Q2 (alert at 20%)"
    assert tiles.tiles_for(east, ["bookings_amount"],
                           thresholds={"bookings_amount": {"drop_pct": round(fall + 0.05, 2)}})[0].alert is None
    rose = tiles.tiles_for(slices["West"], ["bookings_amount"], thresholds={"bookings_amount": {"drop_pct": 0.01}})
    assert rose[0].alert is None  # West's bookings rose


@pytest.mark.parametrize(("thresholds", "message"), [
    ({"win_rat": {"min": 0.1}}, "'win_rat' is not a registered KPI"),
    ({"win_rate": {"minimum": 0.1}}, "thresholds.win_rate: minimum not allowed; use min, max, drop_pct"),
    ({"win_rate": {"drop_pct": 30}}, r"thresholds.win_rate.drop_pct: 30 is not a fraction in \(0, 1\]"),
    ({"win_rate": {"min": "low"}}, "thresholds.win_rate.min: 'low' is not a number"),
    ({"win_rate": 0.3}, "thresholds.win_rate: 0.3 is not a mapping"),
])
def test_bad_thresholds_name_the_culprit(west, thresholds, message):
    with pytest.raises(ParameterError, match=message):
        tiles.tiles_for(west, ["win_rate"], thresholds=thresholds)


# -------------------------------------------------------------------------------------- Maven: no data

@pytest.fixture(scope="module")
def maven_tiles(maven_con, maven_dir) -> dict[str, Tile]:
    values = {"source": str(maven_dir), "mapping": str(MAVEN_MAPPING), "region": "Central", "period": "2017-Q3",
              "as_of": "2018-01-01"}
    s = data.open_slice(validate_params(values), maven_con)
    names = ["leads_created", "activity_completion_rate", "target_attainment", "bookings_amount", "win_rate"]
    return {t.kpi: t for t in tiles.tiles_for(s, names, thresholds={"leads_created": {"min": 10}})}


def test_maven_tiles_say_which_table_is_missing(maven_tiles):
    for name, table in (("leads_created", "leads"), ("activity_completion_rate", "activities"),
                        ("target_attainment", "targets")):
        tile = maven_tiles[name]
        assert tile.value is None and tile.display == i18n.MISSING_VALUE, name
        assert tile.no_data == f"No data: this source has no `{table}` table"
        assert all(v is None for _, v in tile.sparkline) and len(tile.sparkline) == 8
        assert tile.alert is None and tile.trend == "n/a" and tile.colour == COLORS["neutral"]
    bookings = maven_tiles["bookings_amount"]
    assert bookings.value is not None and bookings.value > 0 and bookings.no_data is None
    assert bookings.target is None and bookings.target_display == ""


def test_maven_no_data_card_shows_the_reason_and_no_zero(maven_tiles):
    tile = maven_tiles["leads_created"]
    cards = Cards(tiles.tile_html(tile))
    text = " ".join(" ".join(cards.text).split())
    assert text == "Leads created No data: this source has no leads table"
    assert "no <code" in tiles.tile_html(tile)  # the table name shown as code
    assert not re.search(r"\d", text)  # no 0 (nor any other number) for a missing source table
    assert cards.cards[0]["data-value"] == "" and cards.cards[0]["data-kpi"] == "leads_created"
    assert "<svg" not in tiles.tile_html(tile)


# -------------------------------------------------------------------------------------------------- HTML

def test_tiles_html_carries_the_raw_values(west_tiles):
    fragment = tiles.tiles_html(list(west_tiles.values()))
    cards = Cards(fragment)
    assert [c["data-kpi"] for c in cards.cards] == list(west_tiles)
    for card in cards.cards:
        tile = west_tiles[card["data-kpi"]]
        assert card["data-value"] == repr(tile.value) and float(card["data-value"]) == tile.value
        assert card["data-comparison-value"] == repr(tile.comparison_value)
        assert card["data-trend"] == tile.trend
    assert fragment.startswith('<div class="crmlens-tiles" style="display:flex;')
    assert fragment.count("<svg") == len(west_tiles)
    shown = " ".join(cards.text)
    assert all(t.display in shown and t.delta_display in shown for t in west_tiles.values())


def test_tile_html_is_self_contained(west_tiles, maven_tiles):
    fragment = tiles.tiles_html([*west_tiles.values(), *maven_tiles.values()])
    assert not re.search(r"https?://", fragment)
    assert "<script" not in fragment.lower() and "javascript:" not in fragment.lower()
    assert not re.search(r"<(link|img|iframe|object|embed)\b", fragment)
    assert not [a for a in Cards(fragment).attributes if a.startswith("on")]  # no event handlers


def test_tile_html_escapes_text(west_tiles):
    evil = '<script>alert("x")</script> & "Co"'
    tile = Tile(kpi='x" onclick="boom', label=evil, unit="count", direction="higher", description=evil, value=1.0,
                display=evil, period_label=PERIOD, comparison_label="2026-Q2", comparison_value=None,
                comparison_display="—", delta=None, delta_pct=None, delta_display=evil, trend="n/a",
                colour=COLORS["neutral"], target_display=evil, sparkline=[(evil, 1.0), ("b", 2.0)], alert=evil)
    fragment = tiles.tile_html(tile)
    assert "<script" not in fragment and 'onclick="boom"' not in fragment
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;Co&quot;" in fragment
    cards = Cards(fragment)
    assert cards.cards[0]["data-kpi"] == 'x" onclick="boom' and cards.cards[0]["data-value"] == "1.0"
    assert evil in "".join(cards.text)


def test_alert_badge_is_shown(west, west_tiles):
    tile = tiles.tiles_for(west, ["pipeline_amount"], thresholds={"pipeline_amount": {"max": 1}})[0]
    cards = Cards(tiles.tile_html(tile))
    assert cards.cards[0]["data-alert"] == "1"
    assert "⚠ Above the maximum of 1 USD" in " ".join(cards.text)
    assert Cards(tiles.tile_html(west_tiles["pipeline_amount"])).cards[0]["data-alert"] == ""


def test_sparkline_svg_leaves_gaps_for_missing_points():
    svg = tiles.sparkline_svg([("a", 1.0), ("b", None), ("c", 2.0), ("d", 3.0)], label="X")
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 2  # lone 'a' dot, run c–d, end dot
    assert tiles.sparkline_svg([("a", None), ("b", None)]) == ""
    flat = tiles.sparkline_svg([("a", 5.0), ("b", 5.0)])
    assert 'points="3.0,15.0 117.0,15.0"' in flat


# ------------------------------------------------------------------------------------------- 中文

@pytest.fixture(scope="module")
def west_tiles_zh(west) -> dict[str, Tile]:
    before = i18n.current()
    try:
        with i18n.language("zh"):
            return {t.kpi: t for t in tiles.tiles_for(west, [*tiles.DEFAULT_OVERVIEW, *EXTRA],
                                                     thresholds={"win_rate": {"min": 0.99}})}
    finally:
        assert i18n.current() == before


def test_chinese_tiles_have_the_same_numbers(west_tiles, west_tiles_zh):
    assert list(west_tiles_zh) == list(west_tiles)
    for name, en in west_tiles.items():
        zh = west_tiles_zh[name]
        for attr in ("value", "comparison_value", "delta", "delta_pct", "target", "attainment", "trend", "colour",
                     "period_label", "comparison_label", "sparkline"):
            assert getattr(zh, attr) == getattr(en, attr), f"{name}.{attr}"
        assert (zh.no_data is None) == (en.no_data is None), name


def test_chinese_tiles_show_chinese_texts(west_tiles, west_tiles_zh):
    for name, zh in west_tiles_zh.items():
        label = kpis.get_kpi(name).label
        # KPI labels are translated by the catalogues of their areas; where one is there, the tile shows it
        assert zh.label == (i18n.lookup(label, "zh") or label), name
    win, bookings = west_tiles_zh["win_rate"], west_tiles_zh["bookings_amount"]
    assert win.delta_display.startswith("较 2026-Q2 ") and win.delta_display.endswith(" 个百分点")
    assert bookings.target_display.startswith("目标 ") and bookings.target_display.endswith(" USD")
    assert bookings.attainment_display.startswith("目标完成 ")
    assert west_tiles_zh["sales_cycle_days"].display.endswith(" 天")
    assert i18n.has_cjk(win.alert or "") and (win.alert or "").startswith("低于下限 ")
    # a number reads the same in both languages (digits, separators, units other than days)
    assert bookings.display == west_tiles["bookings_amount"].display
    assert win.display == west_tiles["win_rate"].display


def test_chinese_tile_card_keeps_the_data_attributes(west_tiles, west_tiles_zh):
    en, zh = Cards(tiles.tiles_html(list(west_tiles.values()))), Cards(tiles.tiles_html(list(west_tiles_zh.values())))
    keep = ("data-kpi", "data-value", "data-comparison-value", "data-target", "data-attainment", "data-trend")
    assert [{k: c[k] for k in keep} for c in zh.cards] == [{k: c[k] for k in keep} for c in en.cards]
    assert i18n.has_cjk(" ".join(zh.text))


def test_chinese_no_data_reason_names_the_missing_table(maven_con, maven_dir):
    values = {"source": str(maven_dir), "mapping": str(MAVEN_MAPPING), "region": "Central", "period": "2017-Q3",
              "as_of": "2018-01-01"}
    s = data.open_slice(validate_params(values), maven_con)
    with i18n.language("zh"):
        tile = tiles.tile_for(s, "leads_created")
        assert tiles.missing_tables_text(["leads", "targets"]) == "无数据：此数据源没有 `leads`或`targets` 表"
    assert tile.value is None and tile.display == i18n.MISSING_VALUE
    assert tile.no_data == "无数据：此数据源没有 `leads` 表"
