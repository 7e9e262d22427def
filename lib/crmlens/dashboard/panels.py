"""The dashboards' chart panels and drill-down tables as data: each function takes a `View` (a slice cut for
the filter state, `crmlens.dashboard.model`) and returns a `Panel` — a figure from `crmlens.charts`, the
table behind it (what the Excel export writes), a one-sentence finding and, when the source lacks what the
panel needs, a plain "no data" reason instead of an empty chart. No widgets and no arithmetic of their own:
the numbers come from `crmlens.metrics`.

Panels: `funnel` (lead funnel with step conversion and drop-off), `bookings_trend` (actual, target, same
period last year per month), `pipeline` (opportunities by stage), `leaderboard` (reps by bookings),
`regions` (treemap of bookings by region, or by country inside a region), `attainment` (by team or rep) and
`follow_ups` (forgotten customers per rep). Drill-down: `drill_table` lists the regions, a region's teams, a
team's reps (bookings, won deals, win rate, attainment) or a rep's opportunities; `funnel_records` the leads
behind a funnel step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go

from crmlens.charts import funnel as funnel_charts
from crmlens.charts import performance as performance_charts
from crmlens.charts import regions as region_charts
from crmlens.dashboard.model import View
from crmlens.dashboard.tiles import missing_tables_text
from crmlens.errors import ParameterError
from crmlens.metrics import funnel, performance, regions


@dataclass
class Panel:
    """One chart panel of a view: `figure` and the `table` it draws (None when there is `no_data`), a
    `finding` sentence, and `note` (e.g. "not filtered by team") when a filter could not apply."""

    key: str
    title: str
    figure: go.Figure | None = None
    table: pd.DataFrame | None = None
    finding: str = ""
    no_data: str | None = None
    note: str | None = None
    columns: dict[str, str] = field(default_factory=dict)  # table column → heading, in order (export, display)


def _missing(v: View, *tables: str) -> str | None:
    return missing_tables_text(v.missing(*tables))


def _panel(key: str, title: str, v: View, tables: tuple[str, ...],
           build: Callable[[], tuple[go.Figure, pd.DataFrame, str]], columns: dict[str, str]) -> Panel:
    reason = _missing(v, *tables)
    if reason:
        return Panel(key, title, no_data=reason)
    figure, table, finding = build()
    if table is None or table.empty:
        return Panel(key, title, no_data="No data for this period", note=v.note(tables))
    figure.update_layout(title=None, width=None, height=360, margin={"l": 50, "r": 20, "t": 20, "b": 40})
    return Panel(key, title, figure=figure, table=table, finding=finding, note=v.note(tables), columns=columns)


# -- panels ------------------------------------------------------------------------------------------------

def funnel_panel(v: View) -> Panel:
    """The lead funnel of the leads created in the period: leads per step, conversion and drop-off %."""
    def build() -> tuple[go.Figure, pd.DataFrame, str]:
        table = funnel.lead_funnel(v.tables["leads"], v.tables.get("opportunities"), v.ctx())
        if table.empty or table["n_leads"].iloc[0] == 0:
            return go.Figure(), pd.DataFrame(), ""
        return funnel_charts.plot_lead_funnel(table), table, funnel.describe_lead_funnel(table)
    return _panel("funnel", "Lead funnel", v, ("leads",), build,
                  {"step": "Step", "n_leads": "Leads", "conversion_rate": "Conversion from previous step",
                   "drop_off_rate": "Drop-off", "from_lead_rate": "Share of leads",
                   "opportunity_amount": "Opportunity amount"})


def bookings_trend_panel(v: View, n_periods: int = 4) -> Panel:
    """Bookings per month over the last `n_periods` periods of the view's kind: actual, target, last year."""
    def build() -> tuple[go.Figure, pd.DataFrame, str]:
        history = v.history("opportunities", n_periods)
        table = performance.bookings_trend(history, "month", targets=v.tables.get("targets"),
                                           region=v.params.region, end=v.period.end)
        return performance_charts.plot_bookings_trend(table), table, performance.describe_bookings_trend(table)
    return _panel("bookings_trend", "Bookings: actual, target, last year", v, ("opportunities",), build,
                  {"period": "Month", "bookings_amount": "Bookings", "target_amount": "Target",
                   "attainment_rate": "Attainment", "last_year_amount": "Same month last year",
                   "yoy_rate": "Growth vs last year", "n_won": "Won deals"})


def pipeline_panel(v: View) -> Panel:
    """Opportunities active in the period by their stage as of the data."""
    def build() -> tuple[go.Figure, pd.DataFrame, str]:
        opps = v.tables["opportunities"]
        table = funnel.opportunity_funnel(opps, v.info.vocabulary)
        finding = funnel.describe_opportunities(funnel.opportunity_summary(opps, v.ctx()))
        return funnel_charts.plot_opportunity_stages(table), table, finding
    return _panel("pipeline", "Pipeline by stage", v, ("opportunities",), build,
                  {"stage": "Stage", "n_opportunities": "Opportunities", "amount": "Amount",
                   "share_rate": "Share"})


def leaderboard_panel(v: View, *, by: str = "rep", metric: str = "bookings_amount", top: int = 10) -> Panel:
    """The leaderboard of reps (or teams, regions) by `metric`, with the rank change vs the comparison."""
    tables = regions.leaderboard_tables(metric)

    def build() -> tuple[go.Figure, pd.DataFrame, str]:
        table = regions.leaderboard(v.tables, v.comparison, v.ctx(), v.ctx("comparison"), metric=metric, by=by)
        label = regions.LEADERBOARD_METRICS[metric].label
        figure = region_charts.plot_leaderboard(table, metric=metric, title=label, top=top)
        figure.update_layout(height=max(300, 28 * min(top, len(table)) + 80))
        return figure, table, regions.describe_leaderboard(table)
    key = {"rep": "rep_id", "team": "team_id", "region": "region_id"}[by]
    return _panel("leaderboard", f"Leaderboard: {by}s by {regions.LEADERBOARD_METRICS[metric].label.lower()}", v,
                  tables, build, {"rank": "Rank", key: by.capitalize(), "name": "Name",
                                  metric: regions.LEADERBOARD_METRICS[metric].label,
                                  f"comparison_{metric}": "Comparison", "rank_change": "Rank change"})


def regions_panel(v: View) -> Panel:
    """Treemap of bookings by region (by country inside one region), with win rate and market share."""
    level = "region" if v.params.region == "all" else "country"

    def build() -> tuple[go.Figure, pd.DataFrame, str]:
        table = regions.geography(v.tables, v.ctx(), level=level)
        figure = region_charts.plot_geography_treemap(table, value="bookings_amount", title="Bookings")
        return figure, table, regions.describe_geography(table)
    columns = {"region_id": "Region", "n_closed": "Closed deals", "n_won": "Won deals", "win_rate": "Win rate",
               "bookings_amount": "Bookings", "n_customers": "Customers"}
    if level == "country":
        columns = {"region_id": "Region", "country": "Country",
                   **{k: c for k, c in columns.items() if k != "region_id"}}
    return _panel("regions", "Bookings by region" if level == "region" else "Bookings by country", v,
                  ("opportunities",), build, columns)


def attainment_panel(v: View, level: str = "team") -> Panel:
    """Target attainment by team (or rep) against the share of the period elapsed."""
    def build() -> tuple[go.Figure, pd.DataFrame, str]:
        table = performance.target_attainment(v.tables["opportunities"], v.tables, v.ctx(), level=level)
        return performance_charts.plot_attainment(table), table, performance.describe_attainment(table)
    return _panel("attainment", f"Target attainment by {level}", v, ("opportunities", "targets"), build,
                  {"name": level.capitalize(), "bookings_amount": "Bookings", "target_amount": "Target",
                   "attainment_rate": "Attainment", "gap_amount": "Gap to target", "is_on_track": "On track"})


def follow_ups_panel(v: View, top: int = 12) -> Panel:
    """Reps by the share of their customers left without activity for `forgotten_days` days."""
    def build() -> tuple[go.Figure, pd.DataFrame, str]:
        days = v.params.forgotten_days
        table = regions.forgotten_by_rep({**v.tables, "activities": regions.last_activities(v)}, v.ctx(), days=days)
        figure = region_charts.plot_forgotten(table, title="", top=top)
        figure.update_layout(height=max(300, 28 * min(top, len(table)) + 80))
        return figure, table, regions.describe_forgotten_by_rep(table)
    return _panel("follow_ups", f"Forgotten customers by rep ({v.params.forgotten_days}+ days silent)", v,
                  ("accounts", "activities"), build,
                  {"rep_id": "Rep", "name": "Name", "n_owned_accounts": "Owned accounts",
                   "n_forgotten_accounts": "Forgotten",
                   "forgotten_rate": "Share forgotten"})


#: Panel builders by key, for the views' panel lists.
PANELS: dict[str, Callable[[View], Panel]] = {
    "funnel": funnel_panel,
    "bookings_trend": bookings_trend_panel,
    "pipeline": pipeline_panel,
    "leaderboard": leaderboard_panel,
    "regions": regions_panel,
    "attainment": attainment_panel,
    "follow_ups": follow_ups_panel,
}


# -- drill-down --------------------------------------------------------------------------------------------

#: The drill-down levels, from the top.
DRILL_LEVELS: tuple[str, ...] = ("region", "team", "rep", "opportunity")
_BOARD_COLUMNS = {"name": "Name", "bookings_amount": "Bookings", "n_won": "Won deals", "win_rate": "Win rate",
                  "attainment_rate": "Attainment"}
OPPORTUNITY_COLUMNS: dict[str, str] = {"opportunity_id": "Opportunity", "account_id": "Account", "stage": "Stage",
                                       "amount": "Amount", "created_at": "Created", "closed_at": "Closed",
                                       "is_won": "Won", "product_id": "Product"}


@dataclass
class DrillTable:
    """One level of the drill-down: its rows (`table`, keyed by `key` — the id a click on a row passes down),
    the column headings, and `no_data` when the level cannot be shown."""

    level: str
    key: str
    table: pd.DataFrame
    columns: dict[str, str]
    no_data: str | None = None


def drill_table(v: View, level: str, *, team: str | None = None, rep: str | None = None) -> DrillTable:
    """The rows of drill-down `level` in the view's region: ``region`` (every region; the view should be
    region "all"), ``team`` (the region's teams), ``rep`` (the reps of `team`) — each with bookings, won
    deals, win rate and attainment from `crmlens.metrics.regions.leaderboard_overview` — or ``opportunity``
    (the opportunities of `rep` active in the period, largest first)."""
    if level not in DRILL_LEVELS:
        raise ParameterError(f"level: {level!r} is not a drill-down level; use one of {', '.join(DRILL_LEVELS)}")
    if level == "opportunity":
        if rep is None:
            raise ParameterError("rep: the opportunity level needs a rep_id")
        if v.missing("opportunities"):
            return DrillTable(level, "opportunity_id", pd.DataFrame(), OPPORTUNITY_COLUMNS,
                              _missing(v, "opportunities"))
        opps = v.tables["opportunities"]
        rows = opps[opps["owner_rep_id"].astype("string") == rep] if "owner_rep_id" in opps.columns else opps.iloc[0:0]
        rows = rows.sort_values(["amount", "opportunity_id"], ascending=[False, True], na_position="last")
        columns = {c: h for c, h in OPPORTUNITY_COLUMNS.items() if c in rows.columns}
        return DrillTable(level, "opportunity_id", rows[list(columns)].reset_index(drop=True), columns,
                          None if len(rows) else "No opportunity of this rep in the period")
    if v.missing("opportunities"):
        return DrillTable(level, f"{level}_id", pd.DataFrame(), _BOARD_COLUMNS, _missing(v, "opportunities"))
    board = regions.leaderboard_overview(v.tables, v.comparison, v.ctx(), v.ctx("comparison"), by=level,
                                         metrics=[c for c in _BOARD_COLUMNS if c != "name"])
    key = f"{level}_id"
    if level == "rep" and team is not None and "reps" in v.tables:
        reps = v.tables["reps"]
        members = set(reps.loc[reps["team_id"].astype("string") == team, "rep_id"].astype(str))
        board = board[board[key].astype(str).isin(members)]
    columns = {key: level.capitalize(), **{c: h for c, h in _BOARD_COLUMNS.items() if c in board.columns}}
    board = board[list(columns)].reset_index(drop=True)
    return DrillTable(level, key, board, columns, None if len(board) else f"No {level} in this slice")


def funnel_records(v: View, step: str) -> pd.DataFrame:
    """The leads of the period's cohort that reached funnel `step` (lead, mql, sql, opportunity, won)."""
    if step not in funnel.STEPS:
        raise ParameterError(f"step: {step!r} is not a funnel step; use one of {', '.join(funnel.STEPS)}")
    if v.missing("leads"):
        return pd.DataFrame()
    progress = funnel.lead_progress(v.tables["leads"], v.tables.get("opportunities"), v.ctx())
    reached = progress[f"reached_{step}"].fillna(False).astype(bool)
    keep = [c for c in ("lead_id", "created_at", "source_channel", "region_id", "owner_rep_id", "campaign_id",
                        "opportunity_amount") if c in progress.columns]
    return progress.loc[reached.to_numpy(), keep].reset_index(drop=True)
