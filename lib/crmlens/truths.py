"""The truths planted in the demo data (`crmlens demo`), declared once.

The demo generator (`crmlens.demo`) plants each truth below; the tests of the generator and of every
analysis import these constants and check that the truth can be *recovered* from the generated tables
with an independent computation. Nothing here computes anything: these are names, dates, definitions
and approximate magnitudes.

Vocabulary used in the definitions:

* **bookings**: the sum of `opportunities.amount` over won opportunities (`is_won` true), dated by
  `closed_at`, credited to `owner_rep_id` (and through it to the rep's team) and to `region_id`.
  Every won opportunity has exactly one contract with the same amount.
* **funnel**: a lead is an MQL when `mql_at` is set, an SQL when `sql_at` is set, and converted when
  `opportunity_id` is set. Rates are counts over the whole history.
* **quarter** `YYYY-Qn` and **month** `YYYY-MM` are calendar periods (UTC, fiscal year = calendar year).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

#: First day of the demo history: every event (leads, activities, campaigns, contracts, tickets, ...)
#: happens on or after it. Only the carried-over pipeline (opportunities open on that day and their stage
#: history), accounts, contacts and reps' hire dates may be older.
DEMO_START = datetime(2023, 1, 1)

#: Last instant of the demo history (inclusive). No timestamp is later, except `activities.due_at` of
#: planned follow-ups, `opportunities.expected_close_date` of open deals and `invoices.due_date` of
#: invoices not yet due.
DEMO_END = datetime(2026, 9, 30, 23, 59, 59)

#: The latest complete quarter and month of the history: the default period of a run.
LATEST_QUARTER = "2026-Q3"
LATEST_MONTH = "2026-09"

# The cast of the demo company.
REGION_IDS = ("East", "West", "North", "South", "Central", "APAC")
PRODUCT_LINES = ("Core", "Cloud", "Insight", "Edge")
COMPETITORS = ("Apex", "Nimbus", "Vertex", "Orion")
#: Marketing channels that run campaigns (every lead from them carries a `campaign_id`).
CAMPAIGN_CHANNELS = ("referral", "trade_show", "webinar", "paid_search", "email", "content", "social",
                     "partner")
#: Lead channel without campaigns (`campaign_id` empty).
ORGANIC_CHANNEL = "organic"


@dataclass(frozen=True)
class FunnelBottleneck:
    """Region `region_id` converts SQLs into opportunities at about `rate`, every other region at about
    `others_rate`; the other funnel steps are the same everywhere.

    Detect: per region, (leads with `sql_at` and `opportunity_id` set) / (leads with `sql_at` set).
    The planted region's rate is far below the others (< 0.6×); its lead→MQL (`mql_at` set / all) and
    MQL→SQL (`sql_at` set / `mql_at` set) rates are within ±20% of the other regions'.
    """

    region_id: str
    step: str
    rate: float
    others_rate: float
    lead_to_mql_rate: float
    mql_to_sql_rate: float


FUNNEL_BOTTLENECK = FunnelBottleneck(
    region_id="East", step="sql_to_opportunity", rate=0.18, others_rate=0.35,
    lead_to_mql_rate=0.45, mql_to_sql_rate=0.50,
)


@dataclass(frozen=True)
class Q4Seasonality:
    """Bookings in Q4 are about `ratio` × the average of Q1–Q3 of the same year, in every complete year.

    Detect: per year in `years`, bookings (won amount by `closed_at` quarter) of Q4 divided by the mean of
    Q1, Q2 and Q3; the same holds for the number of contracts by `signed_at` quarter. Both are > 1.2.
    """

    quarter: int
    ratio: float
    years: tuple[int, ...]


Q4_SEASONALITY = Q4Seasonality(quarter=4, ratio=1.4, years=(2023, 2024, 2025))


@dataclass(frozen=True)
class CompetitorStronghold:
    """Competitor `competitor` beats us in region `region_id`.

    Detect: over closed opportunities (new business and expansions) with `competitor == competitor`,
    our win rate in the region is about `win_rate_in_region` vs about `win_rate_elsewhere` in other
    regions (< 0.5×). In the `market` table, summed over the region's rows, the competitor's share
    (its `competitor_sales_amount` / `market_size_amount` of the distinct segments) is about
    `competitor_share` and exceeds ours (our bookings in the region / the same market size, about
    `our_share`); elsewhere our share (about `our_share_elsewhere`) exceeds the competitor's.
    """

    competitor: str
    region_id: str
    win_rate_in_region: float
    win_rate_elsewhere: float
    competitor_share: float
    our_share: float
    our_share_elsewhere: float


COMPETITOR_STRONGHOLD = CompetitorStronghold(
    competitor="Apex", region_id="South", win_rate_in_region=0.07, win_rate_elsewhere=0.37,
    competitor_share=0.30, our_share=0.11, our_share_elsewhere=0.22,
)


@dataclass(frozen=True)
class ChannelRoi:
    """One channel has the best marketing ROI and one loses money.

    ROI of a channel = (revenue − cost) / cost, over the whole history, where cost is the sum of
    `campaigns.cost_amount` of the channel's campaigns and revenue is the amount of the won opportunities
    that leads of those campaigns converted into (`leads.campaign_id` → `leads.opportunity_id` →
    `opportunities.amount` where `is_won`). `planted_roi` gives the planted value per campaign channel.

    Detect: `best_channel` has the highest ROI of all channels; `negative_channel` has ROI < 0 (its
    campaigns cost more than the revenue they produced); every other channel is in between.
    """

    best_channel: str
    negative_channel: str
    planted_roi: tuple[tuple[str, float], ...]


CHANNEL_ROI = ChannelRoi(
    best_channel="referral",
    negative_channel="trade_show",
    planted_roi=(
        ("referral", 6.0), ("email", 3.0), ("webinar", 2.5), ("partner", 2.0), ("content", 1.5),
        ("paid_search", 0.8), ("social", 0.4), ("trade_show", -0.45),
    ),
)


@dataclass(frozen=True)
class ChurnDrivers:
    """Churn is preceded by falling activity and by unresolved tickets.

    Definitions (from the tables, no hidden state):

    * a **customer** is an account with at least one contract; a contract covers `contract_term_days`
      from `signed_at` (customers renew yearly);
    * its **churn date** is its latest `contracts.signed_at` + `contract_term_days`;
    * it has **churned** when churn date + `grace_days` <= DEMO_END (the renewal is more than
      `grace_days` overdue and nothing was bought since); its reference date is the churn date;
    * it is **retained** when it has not churned and its first contract was signed at least
      `earlier_window_days[0]` days before the reference date DEMO_END − `grace_days`.

    Detect, relative to each account's reference date R:

    * activity: the number of activities (`occurred_at`) on the account in [R − `recent_window_days`, R)
      vs in [R − `earlier_window_days[0]`, R − `earlier_window_days[1]`). Summed over churned customers the
      recent count is about `activity_ratio_churned` × the earlier one (< 0.5×); for retained customers it
      is about the same (> 0.7×);
    * tickets: tickets opened in [R − `ticket_window_days`, R) and unresolved at R (`resolved_at` empty or
      after R): on average about `unresolved_tickets_churned` per churned customer and about
      `unresolved_tickets_retained` per retained customer (well over 5× fewer).
    """

    contract_term_days: int
    grace_days: int
    recent_window_days: int
    earlier_window_days: tuple[int, int]
    ticket_window_days: int
    activity_ratio_churned: float
    unresolved_tickets_churned: float
    unresolved_tickets_retained: float


CHURN_DRIVERS = ChurnDrivers(
    contract_term_days=365, grace_days=90, recent_window_days=90, earlier_window_days=(270, 180),
    ticket_window_days=180, activity_ratio_churned=0.2, unresolved_tickets_churned=1.9,
    unresolved_tickets_retained=0.05,
)


@dataclass(frozen=True)
class RisingComplaints:
    """Complaints about product line `product_line` rise quarter over quarter in `quarters`; the other
    lines stay flat.

    Detect: tickets with `category == category`, joined to `products.product_line`, counted per
    `opened_at` quarter. For the planted line the count grows in (almost) every step of `quarters` and the
    last quarter is about `growth` × the first (> 2×); for each other line last / first is within
    0.6–1.6.
    """

    product_line: str
    category: str
    quarters: tuple[str, ...]
    growth: float


RISING_COMPLAINTS = RisingComplaints(
    product_line="Edge", category="complaint",
    quarters=("2025-Q2", "2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3"), growth=3.5,
)


@dataclass(frozen=True)
class ForgottenCustomers:
    """Reps `rep_ids` neglect their accounts.

    Detect: for each active rep, among the accounts it owns (`accounts.owner_rep_id`, not in the public
    pool), the share with no activity (`occurred_at`) in the `inactive_days` days up to DEMO_END. It is
    about `share` for the named reps (> 0.5) and rarely above `others_max_share` for anyone else.
    """

    rep_ids: tuple[str, ...]
    inactive_days: int
    share: float
    others_max_share: float


FORGOTTEN_CUSTOMERS = ForgottenCustomers(
    rep_ids=("R0004", "R0023"), inactive_days=60, share=0.75, others_max_share=0.2,
)


@dataclass(frozen=True)
class TeamBelowTarget:
    """Team `team_id` attains about `attainment` of its target in `period`; the other teams attain
    between `others_range[0]` and `others_range[1]`.

    Detect: attainment = bookings of the team's reps in the period / `targets.target_amount` where
    `level == "team"` and `key == team_id`. Targets roll up: rep targets sum to their team's, teams to
    their region's, regions to the company's; product-line targets sum to the company's.
    """

    team_id: str
    period: str
    attainment: float
    others_range: tuple[float, float]


TEAM_BELOW_TARGET = TeamBelowTarget(
    team_id="West-2", period="2026-Q3", attainment=0.60, others_range=(0.90, 1.12),
)


@dataclass(frozen=True)
class SuddenDrop:
    """New leads in region `region_id` fall to about `ratio` × their trailing average in `month`.

    Detect: leads per `created_at` month in the region; the count of `month` divided by the mean of the
    `baseline_months` months before it is about `ratio` (< 0.7). Other regions stay near 1 (> 0.8).
    """

    metric: str
    region_id: str
    month: str
    ratio: float
    baseline_months: int


SUDDEN_DROP = SuddenDrop(metric="new_leads", region_id="North", month="2026-09", ratio=0.5, baseline_months=6)

@dataclass(frozen=True)
class CsatDriver:
    """A slow first response to a ticket lowers the customer's satisfaction.

    A ticket **misses its first-response target** when no response came within `target_hours` (by priority)
    of its opening; it is known missed from that deadline on. A survey response is **after a slow response**
    when a ticket of the same account opened in the `window_days` days before the response had missed its
    target by the response time.

    Detect: the mean CSAT (1–5) of responses after a slow response is about `csat_drop` lower than that of the
    other responses, also when unresolved tickets and the survey's named driver are held constant (a
    regression); no other service factor moves CSAT as much.
    """

    target_hours: tuple[tuple[str, float], ...]
    window_days: int
    csat_drop: float


CSAT_DRIVER = CsatDriver(
    target_hours=(("low", 48.0), ("medium", 16.0), ("high", 6.0), ("urgent", 2.0)), window_days=90, csat_drop=1.0,
)

@dataclass(frozen=True)
class HighValueIndustry:
    """The high-value customers concentrate in industry `industry`.

    Planted: of the accounts in the large and enterprise size bands (the biggest deals), about `big_share` are in
    `industry` (elsewhere 1 in 10 for every industry).

    Detect: the industry profile of the active customers (`crmlens.metrics.customers.profile` by industry) names
    `industry` as the one whose share of revenue most exceeds its share of customers; among the customers of the
    high value tier (`crmlens.metrics.customers.value_tier` "high": M score 4–5) its share is above its share of
    all customers (> 1.2×).
    """

    industry: str
    big_share: float


HIGH_VALUE_INDUSTRY = HighValueIndustry(industry="Financial Services", big_share=0.6)


@dataclass(frozen=True)
class WorseCohort:
    """The customers who first bought in quarter `quarter` stay less.

    Planted: at their first contract anniversary about `first_year_churn` of them do not renew (other cohorts:
    the usual hazard, about 0.15, lower for big customers).

    Detect: quarterly cohorts of first purchase, active customers (`crmlens.metrics.customers.cohort_retention`
    basis "active", default `churn_days`): from the quarter their first term plus grace ends (about 5 quarters
    after the first purchase) on, `quarter`'s retention is at least 10 points below the median of the other
    cohorts observed as long, and the cohort retention finding names it.
    """

    quarter: str
    first_year_churn: float


WORSE_COHORT = WorseCohort(quarter="2024-Q4", first_year_churn=0.45)


@dataclass(frozen=True)
class AssistChannel:
    """Channel `channel` starts journeys that other channels close.

    About `early_share` of the leads that became won deals through another channel's campaign engaged with a `channel`
    campaign `early_days` days before the lead was created (a `campaign_events` row with the lead's `lead_id`);
    about `other_share` of the other leads did too.

    Detect: journeys to won deals (`crmlens.metrics.marketing.journeys`, 180-day window): `channel`'s share of
    the credit under first-touch exceeds its share under last-touch by more than `min_gap` (last-touch
    under-credits it, the most of any channel), and the data-driven (Markov) model credits it above last-touch.
    """

    channel: str
    early_share: float
    other_share: float
    early_days: tuple[int, int]
    min_gap: float


ASSIST_CHANNEL = AssistChannel(channel="content", early_share=0.5, other_share=0.1, early_days=(7, 60),
                               min_gap=0.1)


@dataclass(frozen=True)
class HollowCampaign:
    """Campaign `name` (a `channel` campaign run in `quarter`) draws the most engagement of any campaign, yet
    none of its leads became an opportunity.

    Detect: per campaign, engagement events (`campaign_events` of every type but impression); `name` has the
    most of all campaigns; it brought at least `min_leads` leads (`leads.campaign_id`) and none has an
    `opportunity_id` (lead → opportunity 0 % while the other campaigns of its channel convert some).
    """

    name: str
    channel: str
    quarter: str
    lead_share: float
    min_leads: int


HOLLOW_CAMPAIGN = HollowCampaign(name="Social Viral Challenge 2025-Q2", channel="social", quarter="2025-Q2",
                                 lead_share=0.6, min_leads=10)


@dataclass(frozen=True)
class MarketOutgrowsUs:
    """In region `region_id` the market grows faster than we do from `since` on: its size, which elsewhere follows
    our bookings, is multiplied each year by (1 + `market_growth`) ÷ 1.15 on top of them (the demo's planned yearly
    growth is 15 %), while our bookings there grow as everywhere.

    Detect: year over year over the last four complete quarters (2025-Q4..2026-Q3 vs 2024-Q4..2025-Q3), the
    growth of the region's market (``market.market_size_amount`` of its distinct (period, product_line) rows) exceeds
    the growth of our bookings there (won amount by ``closed_at``) by more than `min_gap` (about 30 points on the
    default demo), the widest gap of any region; our share of the region's market falls.
    """

    region_id: str
    since: str
    market_growth: float
    min_gap: float


MARKET_OUTGROWS_US = MarketOutgrowsUs(region_id="APAC", since="2025-Q1", market_growth=0.40, min_gap=0.1)


@dataclass(frozen=True)
class CrossSell:
    """Customers whose first purchase is a `first_line` product buy a `next_line` product next far more often than
    customers in general.

    Detect: per account, the product line of its first contract and of the next contract of another line (by
    ``signed_at``); among accounts with a next line, P(next = `next_line` | first = `first_line`) ÷
    P(next = `next_line`) — the lift — is at least `min_lift`, the highest lift of any (first, next) pair with at
    least 5 accounts (over the whole company; one region's pairs are small samples).
    """

    first_line: str
    next_line: str
    min_lift: float


CROSS_SELL = CrossSell(first_line="Core", next_line="Cloud", min_lift=1.5)


@dataclass(frozen=True)
class ThinMargin:
    """Product line `line` is among the two largest by revenue but has the thinnest margin.

    Detect: over contracts, revenue (``amount``) and margin rate (1 − ``cost_amount`` ÷ ``amount``) per product
    line: `line` ranks first or second by revenue and its margin rate (about `margin_rate`) is the lowest of all
    lines.
    """

    line: str
    margin_rate: float


THIN_MARGIN = ThinMargin(line="Cloud", margin_rate=0.3)

ALL_TRUTHS = (
    FUNNEL_BOTTLENECK, Q4_SEASONALITY, COMPETITOR_STRONGHOLD, CHANNEL_ROI, CHURN_DRIVERS,
    RISING_COMPLAINTS, FORGOTTEN_CUSTOMERS, TEAM_BELOW_TARGET, SUDDEN_DROP, CSAT_DRIVER, HIGH_VALUE_INDUSTRY,
    WORSE_COHORT, ASSIST_CHANNEL, HOLLOW_CAMPAIGN, MARKET_OUTGROWS_US, CROSS_SELL, THIN_MARGIN,
)
