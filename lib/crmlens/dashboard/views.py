"""The dashboard views: what each one shows (`ViewSpec`: tiles, panels, alert thresholds, drill-down) and for
whom. `VIEWS` is every view by name; ``notebooks/dashboards/<name>.ipynb`` shows it (three lines, `crmlens.
dashboard.app`). No widgets here: `crmlens.dashboard.widgets.Dashboard` puts a spec on screen."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from crmlens.i18n import N_


@dataclass(frozen=True)
class ViewSpec:
    """What a dashboard view shows: its `title` (a msgid, shown with `_`), `tiles` (KPI names), `panels` (keys of
    `crmlens.dashboard.panels.PANELS`), `thresholds` for the
    tiles' alert badges (`crmlens.dashboard.tiles.check_thresholds`), whether it has the regions → teams → reps
    → opportunities drill-down (`drill`), its `audience` and `summary` (msgids: the landing page's line), and the
    filter it is chosen by (`needs`, e.g. "rep" for the sales rep view: its deep link names the rep) and its
    record drill-downs (`records`: keys of `crmlens.dashboard.records.RECORDS`); `key_findings` puts the view's
    executive summary first (its panels' findings ranked: `crmlens.dashboard.panels_roles.key_findings`)."""

    name: str
    title: str
    tiles: tuple[str, ...]
    panels: tuple[str, ...]
    thresholds: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    drill: bool = True
    audience: str = ""
    summary: str = ""
    needs: str | None = None
    records: tuple[str, ...] = ()
    key_findings: bool = False

    @property
    def digest(self) -> str:
        """A short hash of the whole spec: results cached for one spec are never served for another."""
        import hashlib

        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]


OVERVIEW = ViewSpec(
    "overview", N_("CRM Lens — executive overview"),
    tiles=("bookings_amount", "target_attainment", "win_rate", "pipeline_amount", "new_opportunities",
           "avg_deal_size", "sales_cycle_days"),
    panels=("funnel", "bookings_trend", "pipeline", "leaderboard", "regions", "forecast", "market_share",
            "customer_base", "clv_segments", "exceptions"),
    thresholds={"target_attainment": {"min": 0.9}, "win_rate": {"drop_pct": 0.1},
                "pipeline_amount": {"drop_pct": 0.2}, "sales_cycle_days": {"max": 120}},
    audience=N_("Executives"),
    key_findings=True,
    summary=N_("Bookings, target and forecast, pipeline, market share, customer base and value, and the "
               "regions whose numbers stand out."),
)
SALES_MANAGER = ViewSpec(
    "sales_manager", N_("CRM Lens — sales manager"),
    tiles=("pipeline_amount", "target_attainment", "bookings_amount", "won_deals", "win_rate",
           "activity_completion_rate", "forgotten_accounts"),
    panels=("pipeline", "attainment", "leaderboard", "follow_ups", "bookings_trend"),
    thresholds={"target_attainment": {"min": 0.9}, "activity_completion_rate": {"min": 0.8},
                "win_rate": {"drop_pct": 0.1}},
    audience=N_("Sales managers"),
    summary=N_("The team's pipeline, attainment by team, the leaderboard and the customers left without "
               "follow-up."),
)
MARKETING = ViewSpec(
    "marketing", N_("CRM Lens — marketing"),
    tiles=("marketing_cost", "campaign_leads", "cost_per_lead", "cost_per_mql", "mql_rate", "lead_to_won_rate",
           "campaign_engagements"),
    panels=("campaign_roi", "lead_sources", "campaign_funnel", "attribution", "channel_efficiency",
            "engagement_trend"),
    thresholds={"mql_rate": {"drop_pct": 0.1}, "campaign_leads": {"drop_pct": 0.2}},
    drill=False,
    audience=N_("Marketing"),
    records=("campaign_leads",),
    summary=N_("Campaign ROI and cost per lead, lead volume and quality by source, campaign funnels, "
               "attribution and engagement."),
)
CUSTOMER_SERVICE = ViewSpec(
    "customer_service", N_("CRM Lens — customer service"),
    tiles=("csat", "nps", "first_response_on_target", "complaint_tickets", "active_customers",
           "customer_churn_rate"),
    panels=("satisfaction_trend", "satisfaction_drivers", "service_levels", "complaint_hotspots",
            "at_risk_customers"),
    thresholds={"csat": {"drop_pct": 0.05}, "first_response_on_target": {"min": 0.8}},
    drill=False,
    audience=N_("Customer service"),
    records=("product_tickets", "customer_history"),
    summary=N_("CSAT and NPS with their drivers, ticket backlog and response times, complaint hotspots and "
               "the customers at risk."),
)
SALES_REP = ViewSpec(
    "sales_rep", N_("CRM Lens — my day"),
    tiles=("bookings_amount", "won_deals", "win_rate", "pipeline_amount", "new_opportunities",
           "activity_completion_rate"),
    panels=("my_attainment", "my_pipeline", "my_agenda", "my_customers", "my_churn_risk"),
    thresholds={"activity_completion_rate": {"min": 0.8}, "win_rate": {"drop_pct": 0.1}},
    drill=False,
    audience=N_("Sales reps"),
    summary=N_("My attainment and pace, my open deals with next steps, my due and overdue tasks and the "
               "customers to call."),
    needs="rep",
    records=("customer_history",),
)
VIEWS: dict[str, ViewSpec] = {v.name: v for v in (OVERVIEW, SALES_MANAGER, MARKETING, CUSTOMER_SERVICE,
                                                  SALES_REP)}
