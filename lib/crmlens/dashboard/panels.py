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

Titles, column headings, findings and "no data" reasons are in the language in use when a panel is made
(`crmlens.i18n.language`); the chart builders translate their own texts (`crmlens.charts.tr`).
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
from crmlens.findings import Finding, as_finding
from crmlens.i18n import N_, _
from crmlens.metrics import funnel, performance, regions


@dataclass
class Panel:
    """One chart panel of a view: `figure` and the `table` it draws (None when there is `no_data`), a
    `finding` sentence (Markdown) with its `recommendation` ("" when the numbers support none), and `note`
    (e.g. "not filtered by team") when a filter could not apply."""

    key: str
    title: str
    figure: go.Figure | None = None
    table: pd.DataFrame | None = None
    finding: str = ""
    no_data: str | None = None
    note: str | None = None
    columns: dict[str, str] = field(default_factory=dict)  # table column → heading, in order (export, display)
    recommendation: str = ""


def _missing(v: View, *tables: str) -> str | None:
    return missing_tables_text(v.missing(*tables))


#: What a describe function of `crmlens.metrics` returns: a Finding, a sentence, or None (nothing to say).
Said = Finding | str | None


def _panel(key: str, title: str, v: View, tables: tuple[str, ...],
           build: Callable[[], tuple[go.Figure, pd.DataFrame, Said]], columns: dict[str, str]) -> Panel:
    """A panel titled `title` (shown as given: translated by the caller) with `columns` (column → heading
    msgid, shown in the language in use); `build` makes the figure, its table and the finding."""
    reason = _missing(v, *tables)
    if reason:
        return Panel(key, title, no_data=reason)
    figure, table, said = build()
    if table is None or table.empty:
        return Panel(key, title, no_data=_("No data for this period"), note=v.note(tables))
    figure.update_layout(title=None, width=None, height=360, margin={"l": 50, "r": 20, "t": 20, "b": 40})
    found = as_finding(said)
    return Panel(key, title, figure=figure, table=table, finding=found.text if found else "",
                 recommendation=found.recommendation if found else "", note=v.note(tables),
                 columns={c: _(h) for c, h in columns.items()})


# -- panels ------------------------------------------------------------------------------------------------

def funnel_panel(v: View) -> Panel:
    """The lead funnel of the leads created in the period: leads per step, conversion and drop-off %."""
    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        table = funnel.lead_funnel(v.tables["leads"], v.tables.get("opportunities"), v.ctx())
        if table.empty or table["n_leads"].iloc[0] == 0:
            return go.Figure(), pd.DataFrame(), ""
        return funnel_charts.plot_lead_funnel(table), table, funnel.describe_lead_funnel(table)
    return _panel("funnel", _("Lead funnel"), v, ("leads",), build,
                  {"step": N_("Step"), "n_leads": N_("Leads"), "conversion_rate": N_("Conversion from previous step"),
                   "drop_off_rate": N_("Drop-off"), "from_lead_rate": N_("Share of leads"),
                   "opportunity_amount": N_("Opportunity amount")})


def bookings_trend_panel(v: View, n_periods: int = 4) -> Panel:
    """Bookings per month over the last `n_periods` periods of the view's kind: actual, target, last year."""
    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        history = v.history("opportunities", n_periods)
        table = performance.bookings_trend(history, "month", targets=v.tables.get("targets"),
                                           region=v.params.region, end=v.period.end)
        return performance_charts.plot_bookings_trend(table), table, performance.describe_bookings_trend(table)
    return _panel("bookings_trend", _("Bookings: actual, target, last year"), v, ("opportunities",), build,
                  {"period": N_("Month"), "bookings_amount": N_("Bookings"), "target_amount": N_("Target"),
                   "attainment_rate": N_("Attainment"), "last_year_amount": N_("Same month last year"),
                   "yoy_rate": N_("Growth vs last year"), "n_won": N_("Won deals")})


def pipeline_panel(v: View) -> Panel:
    """Opportunities active in the period by their stage as of the data."""
    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        opps = v.tables["opportunities"]
        table = funnel.opportunity_funnel(opps, v.info.vocabulary)
        finding = funnel.describe_opportunities(funnel.opportunity_summary(opps, v.ctx()))
        return funnel_charts.plot_opportunity_stages(table), table, finding
    return _panel("pipeline", _("Pipeline by stage"), v, ("opportunities",), build,
                  {"stage": N_("Stage"), "n_opportunities": N_("Opportunities"), "amount": N_("Amount"),
                   "share_rate": N_("Share")})


#: How a leaderboard's title names what it ranks, by its `by` (msgids; {metric} is the metric's label).
LEADERBOARD_TITLES: dict[str, str] = {"rep": N_("Leaderboard: reps by {metric}"),
                                      "team": N_("Leaderboard: teams by {metric}"),
                                      "region": N_("Leaderboard: regions by {metric}")}
#: Headings of the levels of the leaderboard and the drill-down (msgids).
LEVEL_HEADINGS: dict[str, str] = {"region": N_("Region"), "team": N_("Team"), "rep": N_("Rep"),
                                  "opportunity": N_("Opportunity")}


def leaderboard_panel(v: View, *, by: str = "rep", metric: str = "bookings_amount", top: int = 10) -> Panel:
    """The leaderboard of reps (or teams, regions) by `metric`, with the rank change vs the comparison."""
    tables = regions.leaderboard_tables(metric)
    label = regions.LEADERBOARD_METRICS[metric].label

    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        table = regions.leaderboard(v.tables, v.comparison, v.ctx(), v.ctx("comparison"), metric=metric, by=by)
        figure = region_charts.plot_leaderboard(table, metric=metric, title=_(label), top=top)
        figure.update_layout(height=max(300, 28 * min(top, len(table)) + 80))
        return figure, table, regions.describe_leaderboard(table)
    key = {"rep": "rep_id", "team": "team_id", "region": "region_id"}[by]
    return _panel("leaderboard", _(LEADERBOARD_TITLES[by], metric=_(label).lower()), v, tables, build,
                  {"rank": N_("Rank"), key: LEVEL_HEADINGS[by], "name": N_("Name"), metric: label,
                   f"comparison_{metric}": N_("Comparison"), "rank_change": N_("Rank change")})


def regions_panel(v: View) -> Panel:
    """Treemap of bookings by region (by country inside one region), with win rate and market share."""
    level = "region" if v.params.region == "all" else "country"

    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        table = regions.geography(v.tables, v.ctx(), level=level)
        figure = region_charts.plot_geography_treemap(table, value="bookings_amount", title=_("Bookings"))
        return figure, table, regions.describe_geography(table)
    columns = {"region_id": N_("Region"), "n_closed": N_("Closed deals"), "n_won": N_("Won deals"),
               "win_rate": N_("Win rate"), "bookings_amount": N_("Bookings"), "n_customers": N_("Customers")}
    if level == "country":
        columns = {"region_id": N_("Region"), "country": N_("Country"),
                   **{k: c for k, c in columns.items() if k != "region_id"}}
    return _panel("regions", _("Bookings by region") if level == "region" else _("Bookings by country"), v,
                  ("opportunities",), build, columns)


def attainment_panel(v: View, level: str = "team") -> Panel:
    """Target attainment by team (or rep) against the share of the period elapsed."""
    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        table = performance.target_attainment(v.tables["opportunities"], v.tables, v.ctx(), level=level)
        return performance_charts.plot_attainment(table), table, performance.describe_attainment(table)
    titles = {"team": N_("Target attainment by team"), "rep": N_("Target attainment by rep"),
              "region": N_("Target attainment by region"), "company": N_("Target attainment")}
    return _panel("attainment", _(titles.get(level, titles["company"])), v, ("opportunities", "targets"), build,
                  {"name": LEVEL_HEADINGS.get(level, N_("Name")), "bookings_amount": N_("Bookings"),
                   "target_amount": N_("Target"), "attainment_rate": N_("Attainment"),
                   "gap_amount": N_("Gap to target"), "is_on_track": N_("On track")})


def follow_ups_panel(v: View, top: int = 12) -> Panel:
    """Reps by the share of their customers left without activity for `forgotten_days` days."""
    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        days = v.params.forgotten_days
        table = regions.forgotten_by_rep({**v.tables, "activities": regions.last_activities(v)}, v.ctx(), days=days)
        figure = region_charts.plot_forgotten(table, title="", top=top)
        figure.update_layout(height=max(300, 28 * min(top, len(table)) + 80))
        return figure, table, regions.describe_forgotten_by_rep(table)
    title = _("Forgotten customers by rep ({days}+ days silent)", days=v.params.forgotten_days)
    return _panel("follow_ups", title, v, ("accounts", "activities"), build,
                  {"rep_id": N_("Rep"), "name": N_("Name"), "n_owned_accounts": N_("Owned accounts"),
                   "n_forgotten_accounts": N_("Forgotten"), "forgotten_rate": N_("Share forgotten")})


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
_BOARD_COLUMNS = {"name": N_("Name"), "bookings_amount": N_("Bookings"), "n_won": N_("Won deals"),
                  "win_rate": N_("Win rate"), "attainment_rate": N_("Attainment")}
#: Columns of a rep's opportunities (column → heading msgid).
OPPORTUNITY_COLUMNS: dict[str, str] = {"opportunity_id": N_("Opportunity"), "account_id": N_("Account"),
                                       "stage": N_("Stage"), "amount": N_("Amount"), "created_at": N_("Created"),
                                       "closed_at": N_("Closed"), "is_won": N_("Won"), "product_id": N_("Product")}
#: Why a drill-down level has no row (msgids).
_NO_LEVEL: dict[str, str] = {"region": N_("No region in this slice"), "team": N_("No team in this slice"),
                             "rep": N_("No rep in this slice")}


@dataclass
class DrillTable:
    """One level of the drill-down: its rows (`table`, keyed by `key` — the id a click on a row passes down),
    the column headings and `no_data` when the level cannot be shown (texts in the language in use)."""

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
            return DrillTable(level, "opportunity_id", pd.DataFrame(), _headings(OPPORTUNITY_COLUMNS),
                              _missing(v, "opportunities"))
        opps = v.tables["opportunities"]
        rows = opps[opps["owner_rep_id"].astype("string") == rep] if "owner_rep_id" in opps.columns else opps.iloc[0:0]
        rows = rows.sort_values(["amount", "opportunity_id"], ascending=[False, True], na_position="last")
        columns = {c: h for c, h in _headings(OPPORTUNITY_COLUMNS).items() if c in rows.columns}
        return DrillTable(level, "opportunity_id", rows[list(columns)].reset_index(drop=True), columns,
                          None if len(rows) else _("No opportunity of this rep in the period"))
    if v.missing("opportunities"):
        return DrillTable(level, f"{level}_id", pd.DataFrame(), _headings(_BOARD_COLUMNS),
                          _missing(v, "opportunities"))
    board = regions.leaderboard_overview(v.tables, v.comparison, v.ctx(), v.ctx("comparison"), by=level,
                                         metrics=[c for c in _BOARD_COLUMNS if c != "name"])
    key = f"{level}_id"
    if level == "rep" and team is not None and "reps" in v.tables:
        reps = v.tables["reps"]
        members = set(reps.loc[reps["team_id"].astype("string") == team, "rep_id"].astype(str))
        board = board[board[key].astype(str).isin(members)]
    columns = {key: _(LEVEL_HEADINGS[level]),
               **{c: h for c, h in _headings(_BOARD_COLUMNS).items() if c in board.columns}}
    board = board[list(columns)].reset_index(drop=True)
    return DrillTable(level, key, board, columns, None if len(board) else _(_NO_LEVEL[level]))


def _headings(columns: dict[str, str]) -> dict[str, str]:
    """Column → heading in the language in use."""
    return {c: _(h) for c, h in columns.items()}


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
