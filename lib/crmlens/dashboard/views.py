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
    `crmlens.dashboard.panels.PANELS`), `thresholds` for the tiles' alert badges
    (`crmlens.dashboard.tiles.check_thresholds`), and whether it has the drill-down and the funnel's record
    list."""

    name: str
    title: str
    tiles: tuple[str, ...]
    panels: tuple[str, ...]
    thresholds: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    drill: bool = True

    @property
    def digest(self) -> str:
        """A short hash of the whole spec: results cached for one spec are never served for another."""
        import hashlib

        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]


OVERVIEW = ViewSpec(
    "overview", N_("CRM Lens — executive overview"),
    tiles=("bookings_amount", "target_attainment", "win_rate", "pipeline_amount", "new_opportunities",
           "avg_deal_size", "sales_cycle_days"),
    panels=("funnel", "bookings_trend", "pipeline", "leaderboard", "regions"),
    thresholds={"target_attainment": {"min": 0.9}, "win_rate": {"drop_pct": 0.1},
                "pipeline_amount": {"drop_pct": 0.2}, "sales_cycle_days": {"max": 120}},
)
SALES_MANAGER = ViewSpec(
    "sales_manager", N_("CRM Lens — sales manager"),
    tiles=("pipeline_amount", "target_attainment", "bookings_amount", "won_deals", "win_rate",
           "activity_completion_rate", "forgotten_accounts"),
    panels=("pipeline", "attainment", "leaderboard", "follow_ups", "bookings_trend"),
    thresholds={"target_attainment": {"min": 0.9}, "activity_completion_rate": {"min": 0.8},
                "win_rate": {"drop_pct": 0.1}},
)
VIEWS: dict[str, ViewSpec] = {v.name: v for v in (OVERVIEW, SALES_MANAGER)}
