"""Chart panels of the sales rep view ("my day") and the executive view's additions, as data (`Panel`, see
`crmlens.dashboard.panels`): numbers from `crmlens.metrics`, figures from `crmlens.charts`.

Sales rep (销售个人工作台), for the rep of the filter state (``?rep=R0001``; without one each panel asks for a
rep): `my_attainment` (my bookings vs my target and the share of the period elapsed), `my_pipeline` (my open
deals by stage, each with its last activity and next step, stale ones first), `my_agenda` (my due and
overdue tasks, calls and meetings: 任务和约会) and `my_customers` (my accounts to call next: long silent,
high level, big open deals). These read the view without its rep filter and keep the rep's rows: a deal's
or an account's last activity counts whoever did it.

Executive additions: `market_share` (us vs competitors over the market periods), `forecast` (the period's
simulated bookings and the chance of reaching the target), `customer_base` (active customers: new, reactivated,
churned) and `exceptions` (regions whose KPI change stands out from their peers').
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go

from crmlens.charts import customers as customer_charts
from crmlens.charts import forecast as forecast_charts
from crmlens.charts import market as market_charts
from crmlens.charts import myday as myday_charts
from crmlens.charts import performance as performance_charts
from crmlens.dashboard.model import View
from crmlens.i18n import N_, _
from crmlens.metrics import customers, forecasting, market, myday, performance, regions

if TYPE_CHECKING:  # panels.py registers these panels: it imports this module at its end
    from crmlens.dashboard.panels import Panel, Said


def _panel(*args: object, **kwargs: object) -> Panel:
    from crmlens.dashboard.panels import _panel as make

    return make(*args, **kwargs)  # type: ignore[arg-type]


def _plain(key: str, title: str, no_data: str) -> Panel:
    from crmlens.dashboard.panels import Panel

    return Panel(key, title, no_data=no_data)

#: What a rep panel says when the view has no rep chosen (msgid).
CHOOSE_REP = N_("Choose a rep in the filter bar (or open the view with ?rep=<rep_id>) to see their day.")


def _rep_view(v: View) -> tuple[str | None, View]:
    """The view's rep and the same view without the rep filter (activities of anyone count)."""
    rep = v.state.rep
    if rep is None:
        return None, v
    return rep, v.source.view(dataclasses.replace(v.state, rep=None))


def _no_rep(key: str, title: str) -> Panel:
    return _plain(key, title, _(CHOOSE_REP))


def _rep_panel(v: View, key: str, title: str, tables: tuple[str, ...],
               make: Callable[[View, str], tuple[go.Figure, pd.DataFrame, Said]], columns: dict[str, str]) -> Panel:
    """A panel of the view's rep: `make(base, rep)` on the view without its rep filter; without a rep, the
    plain "choose a rep" line."""
    rep, base = _rep_view(v)
    if rep is None:
        return _no_rep(key, title)
    return _panel(key, title, v, tables, lambda: make(base, rep), columns)


def _empty() -> tuple[go.Figure, pd.DataFrame, Said]:
    return go.Figure(), pd.DataFrame(), ""


def _my_attainment(base: View, rep: str) -> tuple[go.Figure, pd.DataFrame, Said]:
    table = performance.target_attainment(base.tables["opportunities"], base.tables, base.ctx(), level="rep")
    table = table[table["key"].astype(str) == rep].reset_index(drop=True)
    return performance_charts.plot_attainment(table), table, performance.describe_attainment(table)


def _my_pipeline(base: View, rep: str) -> tuple[go.Figure, pd.DataFrame, Said]:
    table = myday.pipeline_of(base, rep)
    if table is None or table.empty:
        return _empty()
    return myday_charts.plot_my_pipeline(table), table, myday.describe_pipeline(table)


def _my_agenda(base: View, rep: str) -> tuple[go.Figure, pd.DataFrame, Said]:
    table = myday.agenda_of(base, rep)
    if table is None or table.empty:
        return _empty()
    shown = table.assign(status=table["status"].map(lambda s: _(myday.STATUS_LABELS[s])).astype("string"))
    return myday_charts.plot_agenda(table), shown, myday.describe_agenda(table)


def _my_customers(base: View, rep: str, top: int = 10) -> tuple[go.Figure, pd.DataFrame, Said]:
    frames = {**base.tables, "activities": regions.last_activities(base)}
    table = regions.call_next(frames, base.ctx(), top_n=top)
    table = table[table["owner_rep_id"].astype(str) == rep].reset_index(drop=True)
    if table.empty:
        return go.Figure(), table, ""
    return myday_charts.plot_call_list(table), table, regions.describe_call_next(table)


def _my_churn_risk(base: View, rep: str, top: int = 10, min_risk: float = 0.3
                   ) -> tuple[go.Figure, pd.DataFrame, Said]:
    """The rep's customers (accounts.owner_rep_id) with a churn risk of at least `min_risk` in the whole
    company's churn model (`crmlens.dashboard.panels.company_churn_model`, as the customer service view's):
    `health.call_list` of the rep's accounts — by yearly revenue at risk, at most `top`."""
    from crmlens.dashboard.panels import company_churn_model
    from crmlens.metrics import health

    accounts = base.tables["accounts"]
    model = company_churn_model(base)
    if "owner_rep_id" not in accounts.columns or not model.ok:
        return _empty()
    owned = accounts.loc[accounts["owner_rep_id"].astype("string").eq(rep).fillna(False).to_numpy(bool)]
    mine = model.scores["account_id"].astype(str).isin(set(owned["account_id"].astype(str))).to_numpy()
    model = dataclasses.replace(model, scores=model.scores[mine].reset_index(drop=True))
    table = health.call_list(owned, model, per_rep=top, min_risk=min_risk, ids=True)
    if table is None or table.empty:
        return _empty()
    return myday_charts.plot_churn_risk(table), table, health.describe_churn_risk(model)


def my_attainment_panel(v: View) -> Panel:
    """The rep's bookings against their target and the share of the period elapsed (on track or not)."""
    return _rep_panel(v, "my_attainment", _("My target attainment"), ("opportunities", "targets"), _my_attainment,
                      {"name": N_("Rep"), "bookings_amount": N_("Bookings"), "target_amount": N_("Target"),
                       "attainment_rate": N_("Attainment"), "elapsed_rate": N_("Period elapsed"),
                       "gap_amount": N_("Gap to target"), "is_on_track": N_("On track")})


def my_pipeline_panel(v: View) -> Panel:
    """The rep's open deals by stage, stale ones apart, with each deal's last activity and next step."""
    return _rep_panel(v, "my_pipeline", _("My open deals: next steps and stale deals"), ("opportunities",),
                      _my_pipeline,
                      {"opportunity_id": N_("Opportunity"), "account_name": N_("Account"), "stage": N_("Stage"),
                       "amount": N_("Amount"), "expected_close_date": N_("Expected close"),
                       "days_since_activity": N_("Days since last activity"), "next_step": N_("Next step"),
                       "next_step_due_at": N_("Next step due"), "is_stale": N_("Stale")})


def my_agenda_panel(v: View) -> Panel:
    """The rep's overdue activities and those due in the next days (tasks, calls, meetings)."""
    return _rep_panel(v, "my_agenda", _("My tasks and appointments: due and overdue"), ("activities",), _my_agenda,
                      {"due_at": N_("Due"), "status": N_("Status"), "activity_type": N_("Type"),
                       "account_name": N_("Account"), "opportunity_id": N_("Opportunity"),
                       "days_overdue": N_("Days overdue")})


def my_customers_panel(v: View) -> Panel:
    """The rep's accounts to call next (`crmlens.metrics.regions.call_next`: long silent, high level, big open
    deals first), forgotten ones flagged."""
    return _rep_panel(v, "my_customers", _("My customers to call next"), ("accounts", "activities"),
                      _my_customers,
                      {"priority": N_("Priority"), "name": N_("Account"), "account_level": N_("Customer level"),
                       "days_since_activity": N_("Days since last activity"), "is_forgotten": N_("Forgotten"),
                       "open_opportunity_amount": N_("Open pipeline")})


def my_churn_risk_panel(v: View) -> Panel:
    """The rep's customers most at risk of churning, by revenue at risk, with the reasons (a bar click opens
    the customer's history)."""
    said: dict[str, bool] = {}

    def make(base: View, rep: str) -> tuple[go.Figure, pd.DataFrame, Said]:
        made = _my_churn_risk(base, rep)
        said["none_at_risk"] = made[1].empty and _has_churn_model(base)
        return made
    panel = _rep_panel(v, "my_churn_risk", _("My customers at risk of churning"), ("accounts", "contracts"), make,
                       {"account": N_("Customer"), "risk": N_("Churn risk"),
                        "revenue_at_risk": N_("Yearly revenue at risk"), "reasons": N_("Reasons")})
    if panel.table is None and said.get("none_at_risk"):  # a model, and none of the rep's customers at risk
        panel.no_data = _("None of my customers has a churn risk of {risk} or more.", risk="30%")
    return panel


def _has_churn_model(base: View) -> bool:
    from crmlens.dashboard.panels import company_churn_model

    return bool(company_churn_model(base).ok)


# -- executive additions --------------------------------------------------------------------------------------

def market_share_panel(v: View) -> Panel:
    """Our market share and each competitor's per market period, with the change in the view's period."""
    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        trend = market.market_shares_of(v, trend=True)
        table = market.share_change_of(v)
        return market_charts.plot_share_trend(trend), table, market.describe_share_change(table)
    return _panel("market_share", _("Market share vs competitors"), v, ("market", "opportunities"), build,
                  {"player": N_("Player"), "sales_amount": N_("Sales"), "market_share_rate": N_("Market share"),
                   "share_before_rate": N_("Share in the comparison period"), "share_change": N_("Change")})


def forecast_panel(v: View) -> Panel:
    """The period's bookings forecast (pipeline × win rates + run rate, simulated) and the chance of reaching
    the target, per region (per team inside a region)."""
    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        f = forecasting.outlook(v)
        level = "region" if v.params.region == "all" else "team"
        table = forecasting.forecast_table(f, level)
        if table is None or table.empty:
            return go.Figure(), pd.DataFrame(), ""
        figure = forecast_charts.plot_target_chances(table)
        return (figure if figure is not None else forecast_charts.plot_outlook(f)), table, \
            forecasting.describe_outlook(f)
    return _panel("forecast", _("Forecast and chance of reaching the target"), v, ("opportunities",), build,
                  {"group": N_("Group"), "expected_amount": N_("Expected bookings"), "p10": N_("Low (10 %)"),
                   "p90": N_("High (90 %)"), "target_amount": N_("Target"),
                   "target_probability": N_("Chance of reaching the target")})


def customer_base_panel(v: View) -> Panel:
    """Active customers at the start and end of the period: new, reactivated and churned in between."""
    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        base = customers.customer_base(v, customers.purchase_history(v))
        if base is None or base.empty:
            return go.Figure(), pd.DataFrame(), ""
        return customer_charts.plot_customer_bridge(base), base, customers.describe_customer_base(base)
    return _panel("customer_base", _("Customer base: new, reactivated, churned"), v, ("accounts", "contracts"), build,
                  {"n_active_start": N_("Active at the start"), "n_new_customers": N_("New"),
                   "n_reactivated": N_("Reactivated"), "n_churned": N_("Churned"),
                   "n_active_end": N_("Active at the end"), "net_growth_rate": N_("Net growth rate"),
                   "churn_rate": N_("Churn rate")})


#: What the alerts panel says when no region's change stands out (msgid).
NOTHING_STANDS_OUT = N_("No region's change stands out from its peers' in this period.")


def exceptions_panel(v: View) -> Panel:
    """The regions whose KPI change vs the comparison period stands out from their peers' (alerts)."""
    title = _("Alerts: regions whose change stands out")
    # every region's change is compared whichever region the view shows: computed once for all of them
    every = dataclasses.replace(v.state, region="all")
    found = None if v.missing("opportunities") else \
        v.source.memo((*v.source.result_key(every), "exceptions"), lambda: forecasting.exceptions(v))
    table = forecasting.exceptions_table(found)
    if found is not None and table is None:
        return _plain("exceptions", title, _(NOTHING_STANDS_OUT))

    def build() -> tuple[go.Figure, pd.DataFrame, Said]:
        if found is None or table is None:
            return go.Figure(), pd.DataFrame(), ""
        figure = forecast_charts.plot_exceptions(found)
        return (figure if figure is not None else go.Figure()), table, forecasting.describe_exceptions(found)
    return _panel("exceptions", title, v, ("opportunities",), build,
                  {"region": N_("Region"), "kpi": N_("KPI"), "value_shown": N_("Value"),
                   "comparison_shown": N_("Comparison"), "change_shown": N_("Change"),
                   "likely_driver": N_("Likely driver")})


#: The key findings panel's key (made from a view's other panels: `key_findings`).
KEY_FINDINGS = "key_findings"


def key_findings(made: list[Panel], limit: int = 6) -> Panel:
    """The view's executive summary: the findings of its other panels ranked as the run's executive summary
    ranks a region's (`crmlens.findings.summary`: act, watch, good news, context; then weight), each with its
    recommendation and the panel it comes from — a table (`TABLE_PANELS`: shown as HTML, not drawn; the
    ``level`` column, not shown, is the finding's severity). No findings: a plain line."""
    from crmlens.findings import SEVERITY_LABELS, summary

    title = _("Key findings")
    source = {id(p.found): p.title for p in made if p.found is not None}
    top = summary([p.found for p in made if p.found is not None], limit)
    if not top:
        return _plain(KEY_FINDINGS, title, _("No finding for this view: its numbers support none."))
    table = pd.DataFrame({"severity": [_(SEVERITY_LABELS[f.severity]) for f in top],
                          "finding": [f.text for f in top], "recommendation": [f.recommendation for f in top],
                          "panel": [source.get(id(f), "") for f in top], "level": [f.severity for f in top]})
    from crmlens.dashboard.panels import Panel

    return Panel(KEY_FINDINGS, title, table=table,
                 columns={"severity": _("Severity"), "finding": _("Finding"),
                          "recommendation": _("Recommendation"), "panel": _("Panel")})


#: Panels shown as a table (`crmlens.dashboard.exports.findings_html`) instead of a chart.
TABLE_PANELS = frozenset({KEY_FINDINGS})


ROLE_PANELS: dict[str, Callable[[View], Panel]] = {
    "my_attainment": my_attainment_panel,
    "my_pipeline": my_pipeline_panel,
    "my_agenda": my_agenda_panel,
    "my_customers": my_customers_panel,
    "my_churn_risk": my_churn_risk_panel,
    "market_share": market_share_panel,
    "forecast": forecast_panel,
    "customer_base": customer_base_panel,
    "exceptions": exceptions_panel,
}
#: The fact tables each of these panels reads (for `DashboardData(tables=...)`).
ROLE_PANEL_TABLES: dict[str, tuple[str, ...]] = {
    "my_attainment": ("opportunities",),
    "my_pipeline": ("opportunities", "activities"),
    "my_agenda": ("activities",),
    "my_customers": ("activities", "opportunities"),
    "my_churn_risk": ("contracts", "activities", "tickets", "surveys"),
    "market_share": ("opportunities",),
    "forecast": ("opportunities",),
    "customer_base": ("contracts",),
    "exceptions": ("opportunities", "leads", "activities"),
}
