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

Marketing view (`crmlens.metrics.marketing`, as notebook 05 calls it): `campaign_roi` (ROI and cost per won
customer by channel, mature campaigns), `channel_efficiency` (lead quality by source channel), `lead_sources`
(share of the leads by channel and quarter), `campaign_funnel` (exposure → won per campaign) and `attribution`
(share of the credit by channel under each model; `attribution_panel(v, model)` emphasises one of
`ATTRIBUTION_MODELS`), `engagement_trend` (campaign events per month). Customer-service view
(`crmlens.metrics.health` and `products`, as notebooks 06 and 07 call them): `satisfaction_trend`,
`satisfaction_drivers`, `service_levels` (by ticket category, against the targets), `complaint_hotspots`
(complaints by product) and `at_risk_customers` (the churn model's call list). Their drill-down tables:
`campaign_leads`, `product_tickets` and `customer_history`. `PANEL_TABLES` names the fact tables every panel
reads, for `DashboardData(tables=...)`.

Titles, column headings, findings and "no data" reasons are in the language in use when a panel is made
(`crmlens.i18n.language`); the chart builders translate their own texts (`crmlens.charts.tr`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from crmlens import charts
from crmlens.charts import funnel as funnel_charts
from crmlens.charts import health as health_charts
from crmlens.charts import marketing as marketing_charts
from crmlens.charts import performance as performance_charts
from crmlens.charts import plot_grouped_bars
from crmlens.charts import products as product_charts
from crmlens.charts import regions as region_charts
from crmlens.dashboard.model import View
from crmlens.dashboard.tiles import missing_tables_text
from crmlens.errors import ParameterError
from crmlens.findings import Finding, as_finding
from crmlens.i18n import N_, _
from crmlens.metrics import customers, funnel, health, marketing, performance, products, regions
from crmlens.metrics.common import lookup, reference_time, region_accounts

charts.use_template()  # every dashboard figure is made with the theme already on (see there)


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
    found: Finding | None = None  # the finding itself (severity, weight): the key findings panel ranks them
    #: Still being computed elsewhere (a `concurrent.futures.Future`-like object with ``done()`` and
    #: ``add_done_callback``): the panel shows `no_data` (what is being computed) meanwhile; a view holding a
    #: pending panel is not remembered, and the dashboard draws the view again when it is done.
    pending: Any = field(default=None, repr=False, compare=False)


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
                 columns={c: _(h) for c, h in columns.items()}, found=found)


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


# -- marketing panels ---------------------------------------------------------------------------------------

def campaign_roi_panel(v: View) -> Panel:
    """ROI, cost per lead and per won customer (CPA) by channel of the mature campaigns (`marketing.channel_roi`:
    those that ended in the year up to `marketing.MATURITY_DAYS` before the as-of, their leads followed to it)."""
    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        table = marketing.channel_roi(v)
        return marketing_charts.plot_roi(table), table, marketing.describe_campaign_roi(table)
    return _panel("campaign_roi", _("ROI and cost per acquisition by channel (mature campaigns)"), v,
                  ("campaigns", "leads"), build,
                  {"channel": N_("Channel"), "cost_amount": N_("Cost"), "n_leads": N_("Leads"), "n_mqls": N_("MQLs"),
                   "n_sqls": N_("SQLs"), "n_opportunities": N_("Opportunities"), "n_won": N_("Won deals"),
                   "won_amount": N_("Won amount"), "roi": N_("ROI"), "cost_per_lead": N_("Cost per lead"),
                   "cost_per_mql": N_("Cost per MQL"), "cpa": N_("Cost per won customer (CPA)"),
                   "payback_days": N_("Payback (days)")})


#: The lead-quality rates the channel-efficiency panel draws per channel (column → legend msgid).
_QUALITY_RATES: dict[str, str] = {"mql_rate": N_("Lead→MQL rate"), "sql_rate": N_("Lead→SQL rate"),
                                  "lead_to_won_rate": N_("Lead→won rate")}


def channel_efficiency_panel(v: View) -> Panel:
    """Lead quality by source channel (`marketing.channel_efficiency_of`: the mature lead cohort): leads, the share
    that reached MQL, SQL and a won deal, the median days to a win, won amount, and the cost and ROI of the
    channel's campaigns."""
    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        table = marketing.channel_efficiency_of(v)
        figure = plot_grouped_bars(table, x="channel", columns=_QUALITY_RATES, title="",
                                   y_title=N_("Share of the channel's leads"), percent=True)
        return figure, table, marketing.describe_channel_efficiency(table)
    return _panel("channel_efficiency", _("Lead quality by source channel (mature leads)"), v, ("leads",), build,
                  {"channel": N_("Channel"), "n_leads": N_("Leads"), **_QUALITY_RATES,
                   "median_days_to_won": N_("Median days lead→won"), "won_amount": N_("Won amount"),
                   "cost_amount": N_("Cost"), "roi": N_("ROI"), "cost_per_lead": N_("Cost per lead")})


def lead_sources_panel(v: View) -> Panel:
    """Lead volume by source channel and quarter over three years (`marketing.channel_mix_of`): leads, their
    share of the quarter's leads, and the cost of the campaigns started in it."""
    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        table = marketing.channel_mix_of(v)
        return marketing_charts.plot_channel_mix(table), table, marketing.describe_channel_mix(table)
    return _panel("lead_sources", _("Leads by source channel"), v, ("leads",), build,
                  {"period": N_("Quarter"), "channel": N_("Channel"), "n_leads": N_("Leads"),
                   "lead_share": N_("Share of leads"), "cost_amount": N_("Cost"), "cost_share": N_("Share of cost")})


def campaign_funnel_panel(v: View) -> Panel:
    """Per mature campaign (`marketing.campaign_funnel_of`): exposure → engagement → lead → opportunity → won and
    the rate of each step; the chart shows the campaigns worth a look (`marketing.funnel_highlights`)."""
    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        table = marketing.campaign_funnel_of(v)
        steps = marketing.funnel_highlights(table)
        figure = marketing_charts.plot_campaign_funnel(steps) if steps is not None else go.Figure()
        return figure, table, marketing.describe_campaign_funnel(table)
    return _panel("campaign_funnel", _("Campaign funnels (mature campaigns)"), v, ("campaigns", "leads"), build,
                  {"campaign_id": N_("Campaign"), "name": N_("Name"), "channel": N_("Channel"),
                   "n_exposed": N_("Exposed (impressions)"), "n_engagements": N_("Engagements"),
                   "n_leads": N_("Leads"), "n_opportunities": N_("Opportunities"), "n_won": N_("Won deals"),
                   "engagement_rate": N_("Engagements per impression"), "lead_rate": N_("Leads per engagement"),
                   "opportunity_rate": N_("Lead→opportunity rate"), "won_rate": N_("Opportunity→won rate")})


#: The attribution models of the model switcher, in order (`crmlens.metrics.marketing.ALL_MODELS`).
ATTRIBUTION_MODELS: tuple[str, ...] = marketing.ALL_MODELS


def attribution_panel(v: View, model: str | None = None) -> Panel:
    """Each channel's share of the credit for the won deals under every attribution model
    (`marketing.attribution_of`). With `model` (one of `ATTRIBUTION_MODELS`), the chart shows that model alone and
    the table is ordered by its share, its column first; the finding compares the models either way."""
    if model is not None and model not in ATTRIBUTION_MODELS:
        raise ParameterError(f"model: {model!r} is not an attribution model; use one of "
                             f"{', '.join(ATTRIBUTION_MODELS)}")

    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        # every model's shares at once (Markov and Shapley included): computed once per view, whichever
        # model the switcher shows
        memo = v.__dict__.setdefault("_attribution", {})
        if "all" not in memo:
            memo["all"] = marketing.attribution_of(v)
        table = memo["all"]
        finding = marketing.describe_models(table)
        if model is None:
            return marketing_charts.plot_attribution(table), table, finding
        if model not in table.columns:  # Shapley is left out beyond `datadriven.MAX_SHAPLEY_CHANNELS` channels
            return go.Figure(), pd.DataFrame(), None
        key = table.columns[0]
        table = table.sort_values([model, key], ascending=[False, True], kind="stable").reset_index(drop=True)
        table = table[[key, model, *(c for c in table.columns if c not in (key, model))]]
        return marketing_charts.plot_attribution(table[[key, model]]), table, finding
    models = [m for m in ATTRIBUTION_MODELS if m != model]
    columns = {"channel": N_("Channel"),
               **{m: marketing_charts.MODEL_LABELS[m] for m in ([model] if model else []) + models},
               "vs_last_touch": N_("Largest gap to last touch")}
    title = _("Attribution: share of the credit by channel") if model is None else \
        _("Attribution: share of the credit by channel, {model}", model=_(marketing_charts.MODEL_LABELS[model]))
    panel = _panel("attribution", title, v, ("campaigns", "campaign_events", "leads", "opportunities"), build,
                   columns)
    if panel.table is not None:  # a model the data leaves out has no column
        panel.columns = {c: h for c, h in panel.columns.items() if c in panel.table.columns}
    return panel


def engagement_trend_panel(v: View) -> Panel:
    """Campaign events per month and event type over three years (`marketing.engagement_trend_of`), with the
    period's click and attendance rates by channel as the finding."""
    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        table = marketing.engagement_trend_of(v)
        finding = marketing.describe_engagement(marketing.engagement_of(v))
        return marketing_charts.plot_engagement_trend(table), table, finding
    return _panel("engagement_trend", _("Engagement with campaigns by month"), v, ("campaigns", "campaign_events"),
                  build, {"period": N_("Month"), "event_type": N_("Event type"), "n_events": N_("Events")})


# -- customer-service panels ---------------------------------------------------------------------------------

def satisfaction_trend_panel(v: View) -> Panel:
    """CSAT and NPS per quarter over the last eight (`health.satisfaction_trend`), the period's in the finding."""
    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        table = health.satisfaction_trend(v)
        finding = health.describe_satisfaction(health.satisfaction(v))
        return health_charts.plot_satisfaction_trend(table), table, finding
    return _panel("satisfaction_trend", _("Customer satisfaction (CSAT) and NPS by quarter"), v, ("surveys",), build,
                  {"period": N_("Quarter"), "n_responses": N_("Responses"), "csat_mean": N_("CSAT (1–5)"),
                   "satisfied_share": N_("Satisfied (CSAT 4–5)"), "promoters_share": N_("Promoters"),
                   "passives_share": N_("Passives"), "detractors_share": N_("Detractors"), "nps": N_("NPS")})


def satisfaction_drivers_panel(v: View) -> Panel:
    """What moves CSAT and NPS over two years of responses (`health.csat_drivers`): each service factor's and
    named driver's effect in points with its 95% confidence interval."""
    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        drivers = health.csat_drivers(v)
        if drivers is None or drivers.empty:
            return go.Figure(), pd.DataFrame(), None
        return (health_charts.plot_drivers(drivers), health.drivers_for_readers(drivers),
                health.describe_csat_drivers(drivers))
    return _panel("satisfaction_drivers", _("What drives customer satisfaction"), v, ("surveys",), build,
                  {"factor": N_("Factor"), "n_with": N_("Responses with it"), "csat_with": N_("CSAT with it"),
                   "csat_without": N_("CSAT without it"), "csat_effect": N_("Effect on CSAT (points)"),
                   "csat_effect_low": N_("95% CI, low"), "csat_effect_high": N_("95% CI, high"),
                   "p_value": N_("p-value"), "nps_effect": N_("Effect on NPS (points)")})


def service_levels_panel(v: View) -> Panel:
    """Tickets by category (`health.service_levels`): opened, resolved, the backlog, median first-response hours
    and resolution days, and the shares on target; the chart is the monthly ticket trend (`health.ticket_trend`)."""
    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        table = health.service_levels(v, "category")
        figure = health_charts.plot_ticket_trend(health.ticket_trend(v, freq="month"))
        return figure, table, health.describe_service(health.service_levels(v))
    return _panel("service_levels", _("Ticket backlog and service levels against targets"), v, ("tickets",), build,
                  {"segment": N_("Ticket category"), "n_opened": N_("Tickets opened"),
                   "n_resolved": N_("Tickets resolved"),
                   "n_backlog": N_("Open tickets (backlog)"),
                   "first_response_hours": N_("Median first response (hours)"),
                   "resolution_days": N_("Median resolution (days)"),
                   "first_response_met": N_("First response on target"), "resolution_met": N_("Resolved on target")})


def complaint_hotspots_panel(v: View) -> Panel:
    """Complaint tickets by product (`products.complaint_hotspots` of `products.complaint_trend_of` and
    `products.feedback_of`, as notebook 07 reads them, by product): complaints over the last eight quarters, their
    growth a quarter and its test, tickets per customer against the other products; hotspots first."""
    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        trend = products.complaint_trend_of(v, "product_id")
        table = products.complaint_hotspots(trend, products.feedback_of(v, "product_id"))
        if table is None:
            return go.Figure(), pd.DataFrame(), None
        if "products" in v.tables and "name" in v.tables["products"]:
            dim = v.tables["products"].drop_duplicates("product_id")
            names = dim.set_index(dim["product_id"].astype("string"))["name"].astype("string")
            table.insert(1, "name", lookup(table["product_id"].astype("string"), names).to_numpy())
        return product_charts.plot_complaint_trend(trend), table, products.describe_hotspots(table)
    return _panel("complaint_hotspots", _("Complaint hotspots by product"), v, ("tickets",), build,
                  {"product_id": N_("Product"), "name": N_("Name"), "n_complaints": N_("Complaints"),
                   "first_quarter_complaints": N_("Complaints, first quarter"),
                   "last_quarter_complaints": N_("Complaints, last quarter"),
                   "complaint_growth": N_("Complaint growth a quarter"), "trend_p_value": N_("Trend p-value"),
                   "tickets_per_customer": N_("Tickets per customer"),
                   "rate_ratio": N_("Tickets per customer vs others"), "is_hotspot": N_("Hotspot")})


def company_churn_model(v: View) -> health.ChurnModel:
    """The churn model of the whole company (every region, no slice filter) scoring the customers at the view's
    reference time (`crmlens.metrics.common.reference_time`: the data's as-of, or the end of a past period).
    It is fitted once per source version, reference time and language (the reasons are texts) and shared by
    every filter state and kernel (`DashboardData.memo`): seconds on a large source, so a change of region,
    segment or of a period ending at the same time only cuts its scores. It is always fitted on the 12 months
    up to the reference time (whatever the view's period: a month alone holds too little history to learn
    churn from), so the same reference time gives the same model. A customer's risk is therefore the same
    whichever filter shows it, and the model learns from every customer's history (notebook 06 fits its own
    slice's)."""
    board = v.source
    ref = reference_time(v.ctx())
    year = f"{(ref - pd.DateOffset(years=1)).date()}..{(ref - pd.Timedelta(days=1)).date()}"
    whole = dataclasses.replace(v.state, period=year, region="all", product_line=None, team=None, segment=None,
                                rep=None)

    def fit() -> health.ChurnModel:
        w = board.view(whole)
        return health.churn_model(w, customers.purchase_history(w))
    return board.memo(("churn model", str(ref), whole.language), fit)


def slice_scores(model: health.ChurnModel, v: View) -> health.ChurnModel:
    """`model` with only the scores of the view's customers (its region's accounts, after its slice
    filters)."""
    if not model.ok or not v.has("accounts"):
        return model
    ids = region_accounts(v.tables["accounts"], v.ctx())["account_id"].astype("string")
    mine = model.scores["account_id"].astype("string").isin(set(ids))
    return dataclasses.replace(model, scores=model.scores[mine.to_numpy()].reset_index(drop=True))


def at_risk_customers_panel(v: View) -> Panel:
    """The customers to call first (`health.call_list` of the whole company's churn model,
    `company_churn_model`, scoring the view's customers): per rep, by yearly revenue at risk, with the reasons;
    the chart is the signals the model relies on."""
    fitted: dict[str, health.ChurnModel] = {}

    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        model = slice_scores(company_churn_model(v), v)
        fitted["model"] = model
        table = health.call_list(v, model)
        signals = health.importance_for_readers(model)
        if table is None or signals is None:
            return go.Figure(), pd.DataFrame(), None
        return health_charts.plot_churn_signals(signals), table, health.describe_churn_risk(model)
    panel = _panel("at_risk_customers", _("Customers at risk of churning"), v, ("accounts",), build,
                   {"rep": N_("Rep"), "account": N_("Customer"), "risk": N_("Churn risk"),
                    "revenue_at_risk": N_("Yearly revenue at risk"), "reasons": N_("Reasons")})
    model = fitted.get("model")
    if panel.table is None and model is not None and not model.ok:  # why there is no model, in plain words
        panel.no_data = model.message
    return panel


#: Panel builders by key, for the views' panel lists.
PANELS: dict[str, Callable[[View], Panel]] = {
    "funnel": funnel_panel,
    "bookings_trend": bookings_trend_panel,
    "pipeline": pipeline_panel,
    "leaderboard": leaderboard_panel,
    "regions": regions_panel,
    "attainment": attainment_panel,
    "follow_ups": follow_ups_panel,
    "campaign_roi": campaign_roi_panel,
    "channel_efficiency": channel_efficiency_panel,
    "lead_sources": lead_sources_panel,
    "campaign_funnel": campaign_funnel_panel,
    "attribution": attribution_panel,
    "engagement_trend": engagement_trend_panel,
    "satisfaction_trend": satisfaction_trend_panel,
    "satisfaction_drivers": satisfaction_drivers_panel,
    "service_levels": service_levels_panel,
    "complaint_hotspots": complaint_hotspots_panel,
    "at_risk_customers": at_risk_customers_panel,
}

#: The fact tables each panel reads (dimension tables — accounts, campaigns, products, targets... — are always
#: loaded), for a dashboard kernel's ``DashboardData(tables=...)``. Optional ones count: without them a panel
#: still draws, with less (e.g. ROI without opportunities has no won deals).
PANEL_TABLES: dict[str, tuple[str, ...]] = {
    "funnel": ("leads", "opportunities"),
    "bookings_trend": ("opportunities",),
    "pipeline": ("opportunities",),
    "leaderboard": regions.leaderboard_tables("bookings_amount"),
    "regions": ("opportunities", "contracts"),
    "attainment": ("opportunities",),
    "follow_ups": ("activities",),
    "campaign_roi": ("leads", "opportunities"),
    "channel_efficiency": ("leads", "opportunities"),
    "lead_sources": ("leads",),
    "campaign_funnel": ("leads", "opportunities", "campaign_events", "campaign_metrics"),
    "attribution": ("campaign_events", "leads", "opportunities"),
    "engagement_trend": ("campaign_events",),
    "satisfaction_trend": ("surveys",),
    "satisfaction_drivers": ("surveys", "tickets"),
    "service_levels": ("tickets",),
    "complaint_hotspots": ("tickets", "contracts", "surveys"),
    "at_risk_customers": ("contracts", "activities", "tickets", "surveys"),
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


# -- drill-down of the marketing and customer-service views ---------------------------------------------------

#: Columns of a campaign's leads (column → heading msgid).
CAMPAIGN_LEAD_COLUMNS: dict[str, str] = {"lead_id": N_("Lead"), "created_at": N_("Created"),
                                         "source_channel": N_("Source channel"), "stage": N_("Stage reached"),
                                         "disqualified_at": N_("Disqualified"), "owner_rep_id": N_("Owner rep"),
                                         "account_id": N_("Account")}
#: Columns of a product's tickets (column → heading msgid).
PRODUCT_TICKET_COLUMNS: dict[str, str] = {"ticket_id": N_("Ticket"), "opened_at": N_("Opened"),
                                          "account_id": N_("Account"), "category": N_("Ticket category"),
                                          "priority": N_("Priority"), "status": N_("Status"),
                                          "first_response_at": N_("First response at"),
                                          "resolved_at": N_("Resolved at")}
#: Columns of a customer's history (column → heading msgid).
CUSTOMER_HISTORY_COLUMNS: dict[str, str] = {"at": N_("When"), "kind": N_("What"), "record_id": N_("Record"),
                                            "subject": N_("Subject"), "amount": N_("Amount"), "csat": N_("CSAT"),
                                            "nps": N_("NPS"), "rep_id": N_("Rep")}
#: What each table of a customer's history contributes: kind (msgid), id, time(s) (the first present one),
#: subject, amount, CSAT, NPS and rep columns (None: the table has none).
_HISTORY_SOURCES: dict[str, tuple[str, str, tuple[str, ...], str, str | None, str | None, str | None, str | None]] = {
    "activities": (N_("Activity"), "activity_id", ("occurred_at", "due_at"), "activity_type", None, None, None,
                   "rep_id"),
    "opportunities": (N_("Opportunity"), "opportunity_id", ("closed_at", "created_at"), "stage", "amount", None, None,
                      "owner_rep_id"),
    "tickets": (N_("Ticket"), "ticket_id", ("opened_at",), "category", None, None, None, None),
    "surveys": (N_("Survey response"), "survey_id", ("responded_at",), "driver", None, "csat", "nps", "rep_id"),
}


def _known(v: View, table: str, column: str, value: str) -> bool | None:
    """Whether `value` is a `column` of dimension `table` (None when the view has no such table)."""
    if table not in v.tables or column not in v.tables[table]:
        return None
    return bool(v.tables[table][column].astype("string").eq(value).fillna(False).any())


def campaign_leads(v: View, campaign_id: str) -> DrillTable:
    """The leads of campaign `campaign_id` created in the view's period, newest first: created, source channel, the
    furthest funnel step reached (`funnel.lead_progress`), when disqualified, owner rep, and the account of the
    opportunity the lead became."""
    columns = _headings(CAMPAIGN_LEAD_COLUMNS)
    reason = _missing(v, "campaigns", "leads")
    if reason:
        return DrillTable("lead", "lead_id", pd.DataFrame(columns=list(columns)), columns, reason)
    if not _known(v, "campaigns", "campaign_id", campaign_id):
        return DrillTable("lead", "lead_id", pd.DataFrame(columns=list(columns)), columns,
                          _("No campaign {id} in this source", id=campaign_id))
    leads = v.tables["leads"]
    leads = leads[leads["campaign_id"].astype("string").eq(campaign_id).fillna(False).to_numpy(dtype=bool)]
    opps = v.tables.get("opportunities")
    from crmlens import notebook

    progress = funnel.lead_progress(leads, opps, notebook.context(v))  # a View's or a notebook slice's
    rows = leads.set_index("lead_id").loc[progress["lead_id"]].reset_index()
    first, *later = funnel.STEPS
    stage = pd.Series(_(funnel.STEP_LABELS[first]), index=progress.index, dtype="string")
    for step in later:
        reached = progress[f"reached_{step}"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        stage = stage.where(~reached, _(funnel.STEP_LABELS[step]))
    out = progress[[c for c in ("lead_id", "created_at", "source_channel") if c in progress]].copy()
    out["stage"] = stage
    for c in ("disqualified_at", "owner_rep_id"):
        if c in rows:
            out[c] = rows[c].to_numpy()
    if opps is not None and "account_id" in opps and "opportunity_id" in rows:
        dim = opps.drop_duplicates("opportunity_id")
        out["account_id"] = lookup(rows["opportunity_id"].astype("string"),
                                   dim.set_index(dim["opportunity_id"].astype("string"))["account_id"].astype("string")
                                   ).to_numpy()
    out = out.sort_values(["created_at", "lead_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    columns = {c: h for c, h in columns.items() if c in out.columns}
    return DrillTable("lead", "lead_id", out[list(columns)], columns,
                      None if len(out) else _("No lead of this campaign in the period"))


def product_tickets(v: View, product_id: str) -> DrillTable:
    """The tickets of product `product_id` the view holds (opened in the period, or still open in it), newest
    first: opened, account, category, priority, status (resolved or open as of the data), first response and
    resolution times."""
    columns = _headings(PRODUCT_TICKET_COLUMNS)
    reason = _missing(v, "tickets")
    if reason:
        return DrillTable("ticket", "ticket_id", pd.DataFrame(columns=list(columns)), columns, reason)
    tickets = v.tables["tickets"]
    known = _known(v, "products", "product_id", product_id)
    rows = tickets[tickets["product_id"].astype("string").eq(product_id).fillna(False).to_numpy(dtype=bool)]
    if known is False or (known is None and rows.empty):
        return DrillTable("ticket", "ticket_id", pd.DataFrame(columns=list(columns)), columns,
                          _("No product {id} in this source", id=product_id))
    out = rows[[c for c in PRODUCT_TICKET_COLUMNS if c in rows and c != "status"]].copy()
    if "resolved_at" in rows:  # the view's data is as of its as-of date: a later resolution is not in it
        out["status"] = [_("Resolved") if pd.notna(t) else _("Open") for t in rows["resolved_at"]]
    out = out.sort_values(["opened_at", "ticket_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    columns = {c: h for c, h in columns.items() if c in out.columns}
    return DrillTable("ticket", "ticket_id", out[list(columns)], columns,
                      None if len(out) else _("No ticket of this product in the period"))


def customer_history(v: View, account_id: str) -> DrillTable:
    """One customer's records in the view's period, newest first, in one table: its activities, opportunities (at
    their close, or creation while open), tickets and survey responses — when, what kind, the activity type /
    stage / ticket category / named driver, the amount or scores, and the rep."""
    columns = _headings(CUSTOMER_HISTORY_COLUMNS)
    empty = pd.DataFrame(columns=list(columns))
    held = [t for t in _HISTORY_SOURCES if t in v.tables]
    if not held:
        return DrillTable("record", "record_id", empty, columns, _missing(v, *_HISTORY_SOURCES))
    if _known(v, "accounts", "account_id", account_id) is False:
        return DrillTable("record", "record_id", empty, columns,
                          _("No customer {id} in this source", id=account_id))
    parts = []
    for table in held:
        kind, key, times, subject, amount, csat, nps, rep = _HISTORY_SOURCES[table]
        frame = v.tables[table]
        if "account_id" not in frame:
            continue
        rows = frame[frame["account_id"].astype("string").eq(account_id).fillna(False).to_numpy(dtype=bool)]
        if rows.empty:
            continue
        at = pd.Series(pd.NaT, index=rows.index, dtype="datetime64[us]")
        for t in reversed(times):  # the first time column present and set wins
            if t in rows:
                at = rows[t].astype("datetime64[us]").where(rows[t].notna(), at)
        part = pd.DataFrame({"at": at, "kind": _(kind), "record_id": rows[key].astype("string"),
                             "subject": rows[subject].astype("string") if subject in rows else pd.NA}, index=rows.index)
        for column, source in (("amount", amount), ("csat", csat), ("nps", nps)):
            part[column] = pd.to_numeric(rows[source], errors="coerce").astype("float64") \
                if source and source in rows else float("nan")
        part["rep_id"] = rows[rep].astype("string") if rep and rep in rows else pd.NA
        parts.append(part.astype({"subject": "string", "rep_id": "string"}))
    if not parts:
        return DrillTable("record", "record_id", empty, columns, _("No record of this customer in the period"))
    out = pd.concat(parts, ignore_index=True)
    out = out.sort_values(["at", "record_id"], ascending=[False, True], na_position="last", kind="stable")
    return DrillTable("record", "record_id", out[list(columns)].reset_index(drop=True), columns)


# -- the sales rep view's and the executive view's panels (their own module), in the same registry ----------

from crmlens.dashboard.panels_clv import CLV_PANELS, PANEL_TABLES_CLV  # noqa: E402
from crmlens.dashboard.panels_roles import ROLE_PANEL_TABLES, ROLE_PANELS  # noqa: E402 - needs Panel, _panel above

PANELS.update(ROLE_PANELS)
PANEL_TABLES.update(ROLE_PANEL_TABLES)
PANELS.update(CLV_PANELS)
PANEL_TABLES.update(PANEL_TABLES_CLV)
