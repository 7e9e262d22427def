"""Deals: new business, the customer lifecycle (renewals, churn, expansions), competitors and stages.

New business is generated close-first: the number of deals won and lost per team and month follows a
smooth intensity (growth, Q4 season, planted dips) rounded systematically, then each deal gets a cycle
and is dated back to its creation. Deals planned to close after DEMO_END are the open pipeline.
Every won deal closed by DEMO_END makes its account a customer, who renews once a year until it churns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from crmlens.demo._calendar import (
    DAY,
    M0,
    MONTH_EDGES,
    SECOND,
    T0,
    T_END,
    YEAR,
    days,
    grid_month_weights,
    in_month,
    month_pos,
    quarter_end,
    quarter_index,
    quarter_pos,
    seasonal_sample,
)
from crmlens.demo._org import Org
from crmlens.demo._random import (
    choice,
    choice_in_ranges,
    exact_share,
    expand_counts,
    log_logistic,
    rank_in_group,
    stratified_uniform,
    systematic_counts,
)
from crmlens.demo._records import Records
from crmlens.demo._world import COMPETITOR_WEIGHTS, LINE_WEIGHTS, PRODUCTS
from crmlens.schema import DEAL_TYPES
from crmlens.truths import (
    COMPETITOR_STRONGHOLD,
    COMPETITORS,
    FUNNEL_BOTTLENECK,
    PRODUCT_LINES,
    Q4_SEASONALITY,
    REGION_IDS,
    TEAM_BELOW_TARGET,
    WORSE_COHORT,
)
from crmlens.truths import CROSS_SELL as CROSS_SELL_TRUTH

NEW, UPSELL, CROSS_SELL, RENEWAL = (DEAL_TYPES.index(k) for k in ("new", "upsell", "cross_sell", "renewal"))
N_OPEN_STAGES = 4  # Prospecting, Qualification, Proposal, Negotiation
LIST_PRICE = np.array([p.list_price for p in PRODUCTS])
UNIT_COST = np.array([round(p.list_price * p.cost_ratio, 2) for p in PRODUCTS])
BAND_EDGES = np.array([12_000.0, 35_000.0, 90_000.0])  # deal size at which the size band steps up
BAND_CHURN = np.array([1.5, 1.0, 0.75, 0.5])  # churn hazard multiplier per size band

GROWTH_PER_YEAR = 1.15
MONTHLY_NOISE = 0.08  # log-sd of the month-to-month wobble of every team's business
# Q4 closes half a year after the middle of Q1-Q3: growth already lifts it by GROWTH_PER_YEAR ** 0.5
Q4_FACTOR = Q4_SEASONALITY.ratio / GROWTH_PER_YEAR**0.5
LOSSES_PER_WIN = 1.8
LAST_CLOSE_MONTH = month_pos(2027, 3)  # new business is planned to close up to here (open pipeline)
NEW_DEAL_MEDIAN = 28_000.0
CROSS_SELL_MEDIAN = 15_000.0
LOST_AT_STAGE = (0.32, 0.30, 0.23, 0.15)  # where lost deals stop
LEAD_SOURCED_SHARE = 0.30  # share of new business that starts as a lead (scaled down in the bottleneck)
#: Days (min, max) from lead creation to MQL, MQL to SQL, and SQL to the opportunity.
LEAD_STEP_DAYS = ((0.0, 12.0), (2.0, 20.0), (1.0, 14.0))
LEAD_TO_DEAL_DAYS = sum(hi for _, hi in LEAD_STEP_DAYS) + 4  # deals this early in the history have no lead
CHURN_HAZARD = 0.15  # chance to churn at each anniversary (before the band multiplier)
EXPANSIONS_PER_YEAR = 0.45
# in the competitor's stronghold we win less, and the competitor sits on most deals we lose
STRONGHOLD_WIN_FACTOR = 0.8
STRONGHOLD_LOSS_FACTOR = 1.15
STRONGHOLD_SHARE_LOST = 0.55
STRONGHOLD_SHARE_WON = 0.08
WEAK_TEAM_LOSS_FACTOR = 1.3  # the team below target also loses more deals that quarter
CONTESTED_SHARE = (0.65, 0.25, 0.35, 0.12)  # share of deals with a competitor, per DEAL_TYPES
LOSS_MIX_CONTESTED = (0.25, 0.5, 0.05, 0.15, 0.05, 0.0)  # per LOSS_REASONS
LOSS_MIX_UNCONTESTED = (0.3, 0.0, 0.25, 0.1, 0.15, 0.2)
STAGE_LENGTH = (1.0, 1.2, 1.3, 1.0)  # relative mean time spent in each open stage
DEALS_PER_PROSPECT = 1.7
#: Share of the cross-sell deals of CROSS_SELL.first_line customers that are moved to CROSS_SELL.next_line (on top of
#: the third they would get anyway): those customers buy that line next far more often than others (CROSS_SELL).
CROSS_SELL_PULL = 0.7
WON_CYCLE_DAYS, LOST_CYCLE_DAYS = 70.0, 45.0  # median sales cycles of new business


@dataclass(frozen=True)
class Deals(Records):
    """Opportunities as parallel arrays (one entry per deal)."""

    deal_type: np.ndarray  # index into schema.DEAL_TYPES
    account: np.ndarray  # account index
    rep: np.ndarray
    region: np.ndarray
    product: np.ndarray
    quantity: np.ndarray
    amount: np.ndarray
    created: np.ndarray
    close: np.ndarray  # planned close; the deal is closed iff close <= T_END
    won: np.ndarray  # planned outcome
    reached: np.ndarray  # last open stage reached (0..3)
    lead_sourced: np.ndarray
    signed: np.ndarray  # contract signature of won closed deals, else -1

    @property
    def closed(self) -> np.ndarray:
        return self.close <= T_END

    @property
    def booked(self) -> np.ndarray:
        """Won and closed by DEMO_END (has a contract)."""
        return self.won & (self.close <= T_END)



@dataclass(frozen=True)
class Accounts:
    """Accounts known from deals: index = account index used by Deals.account."""

    rep: np.ndarray  # first owner
    region: np.ndarray
    band: np.ndarray  # size band index (schema.SIZE_BANDS)
    is_customer: np.ndarray
    first_signed: np.ndarray  # first contract (customers), else -1
    customer_line: np.ndarray  # product line of the first contract, else -1

    @property
    def n(self) -> int:
        return len(self.rep)


def price_deals(u: np.ndarray, line: np.ndarray, median: float) -> tuple[np.ndarray, ...]:
    """Product, quantity, amount and size band of deals of a given size quantile `u` and product line."""
    target = log_logistic(u, median, 3.0)
    base = line * 3
    tier = (target >= LIST_PRICE[base + 1]).astype(np.int64) + (target >= LIST_PRICE[base + 2])
    product = base + tier
    price = LIST_PRICE[product]
    quantity = np.maximum(1, np.rint(target / (0.9 * price))).astype(np.int64)
    net = np.clip(target / (quantity * price), 0.65, 1.0)
    amount = np.round(quantity * price * net, 2)
    band = np.searchsorted(BAND_EDGES, target)
    return product, quantity, amount, band


def sign_contracts(rng: np.random.Generator, close: np.ndarray, won: np.ndarray, within_days: float) -> np.ndarray:
    """Signature of the contract of each deal won by DEMO_END: a few days after the close, in the same
    quarter (deals closed at the end of a quarter are signed before it ends); -1 for the others."""
    signed = np.minimum(np.minimum(close + days(rng, 0, within_days, len(close)), quarter_end(close)), T_END)
    return np.where(won & (close <= T_END), signed, -1)


def _cycle(rng: np.random.Generator, median_days: np.ndarray, amount: np.ndarray, median: float) -> np.ndarray:
    length = rng.lognormal(np.log(median_days), 0.55) * (amount / median) ** 0.15
    return (np.clip(length, 5.0, 500.0) * DAY).astype(np.int64)


def _lost_stage(rng: np.random.Generator, won: np.ndarray) -> np.ndarray:
    return np.where(won, N_OPEN_STAGES - 1, choice(rng, LOST_AT_STAGE, len(won))).astype(np.int8)


def _by_quarter_then_team(rng: np.random.Generator, intensity: np.ndarray) -> np.ndarray:
    """Counts per (team, month) rounded systematically along quarter → team → month, so that both every
    team's and the company's count in a quarter are within one of their intensity."""
    teams, months = intensity.shape
    flat = intensity.reshape(teams, months // 3, 3).transpose(1, 0, 2).reshape(1, -1)
    return systematic_counts(rng, flat).reshape(months // 3, teams, 3).transpose(1, 0, 2).reshape(teams, months)


def new_business(rng: np.random.Generator, org: Org, won_per_month: float) -> tuple[Deals, Accounts]:
    """New-business deals per team and month, and the accounts they are on.

    Each deal won by DEMO_END opens a new customer account; lost and open deals are spread over prospect
    accounts of the same rep and size band (DEALS_PER_PROSPECT deals each).
    """
    months = np.arange(M0, LAST_CLOSE_MONTH + 1)
    growth = GROWTH_PER_YEAR ** ((months - M0) / 12.0)
    season = grid_month_weights(Q4_FACTOR)[months]
    team_region = org.team_region
    south = team_region == REGION_IDS.index(COMPETITOR_STRONGHOLD.region_id)
    won_mult = np.ones((len(team_region), len(months)))
    lost_mult = np.ones_like(won_mult)
    won_mult[south] *= STRONGHOLD_WIN_FACTOR
    lost_mult[south] *= STRONGHOLD_LOSS_FACTOR
    weak_team = org.team_labels.index(TEAM_BELOW_TARGET.team_id)
    year, quarter = (int(x) for x in TEAM_BELOW_TARGET.period.split("-Q"))
    weak_months = (months >= month_pos(year, 3 * quarter - 2)) & (months <= month_pos(year, 3 * quarter))
    won_mult[weak_team, weak_months] *= TEAM_BELOW_TARGET.attainment
    lost_mult[weak_team, weak_months] *= WEAK_TEAM_LOSS_FACTOR
    wobble = rng.lognormal(0.0, MONTHLY_NOISE, (2, len(team_region), len(months)))  # months are never smooth
    won_mult *= wobble[0]
    lost_mult *= wobble[1]
    base = won_per_month * org.team_weight[:, None] * growth[None, :]
    team_w, month_w = expand_counts(_by_quarter_then_team(rng, base * season[None, :] * won_mult))
    team_l, month_l = expand_counts(_by_quarter_then_team(rng, base * LOSSES_PER_WIN * lost_mult))
    team = np.concatenate([team_w, team_l])
    won = np.concatenate([np.ones(len(team_w), bool), np.zeros(len(team_l), bool)])
    close = in_month(rng, months[np.concatenate([month_w, month_l])])
    n = len(team)

    line = choice(rng, LINE_WEIGHTS, n)
    size_u = stratified_uniform(rng, quarter_index(close) * 2 + won)
    product, quantity, amount, band = price_deals(size_u, line, NEW_DEAL_MEDIAN)
    created = close - _cycle(rng, np.where(won, WON_CYCLE_DAYS, LOST_CYCLE_DAYS), amount, NEW_DEAL_MEDIAN)
    starts, stops = org.team_first_rep[team], org.team_first_rep[team + 1]
    rep = np.where(won, choice_in_ranges(rng, starts, stops, org.rep_win_weight),
                   choice_in_ranges(rng, starts, stops, org.rep_loss_weight))
    rep = np.where(org.employed(rep, created, close), rep, org.team_manager[team])
    region = team_region[team]
    lead_share = np.full(len(REGION_IDS), LEAD_SOURCED_SHARE)
    lead_share[REGION_IDS.index(FUNNEL_BOTTLENECK.region_id)] *= FUNNEL_BOTTLENECK.rate / FUNNEL_BOTTLENECK.others_rate
    lead_sourced = (created >= T0 + LEAD_TO_DEAL_DAYS * DAY) & (rng.random(n) < lead_share[region])

    keep = created <= T_END
    deals = Deals(
        deal_type=np.full(n, NEW, np.int8), account=np.zeros(n, np.int64), rep=rep, region=region,
        product=product, quantity=quantity, amount=amount, created=created, close=close, won=won,
        reached=_lost_stage(rng, won), lead_sourced=lead_sourced, signed=np.full(n, -1, np.int64),
    ).take(np.flatnonzero(keep))
    return _assign_accounts(rng, deals, band[keep], line[keep])


def _assign_accounts(rng: np.random.Generator, deals: Deals, band: np.ndarray,
                     line: np.ndarray) -> tuple[Deals, Accounts]:
    customer = deals.booked
    n_customers = int(customer.sum())
    account = np.empty(len(customer), np.int64)
    account[customer] = np.arange(n_customers)
    prospect = np.flatnonzero(~customer)
    group = deals.rep[prospect] * 4 + band[prospect]
    rank, size = rank_in_group(rng, group)
    per_group = np.ceil(size / DEALS_PER_PROSPECT).astype(np.int64)
    local = rank % per_group
    # number prospect accounts group by group
    keys, first = np.unique(group, return_index=True)
    offsets = np.concatenate([[0], np.cumsum(per_group[first])])
    account[prospect] = n_customers + offsets[np.searchsorted(keys, group)] + local
    n_accounts = n_customers + int(offsets[-1])

    signed = sign_contracts(rng, deals.close, customer, 10)
    acc_rep = np.zeros(n_accounts, np.int64)
    acc_rep[account] = deals.rep
    acc_region = np.zeros(n_accounts, np.int64)
    acc_region[account] = deals.region
    acc_band = np.zeros(n_accounts, np.int64)
    acc_band[account] = band
    first_signed = np.full(n_accounts, -1, np.int64)
    first_signed[account[customer]] = signed[customer]
    customer_line = np.full(n_accounts, -1, np.int64)
    customer_line[account[customer]] = line[customer]
    accounts = Accounts(rep=acc_rep, region=acc_region, band=acc_band,
                        is_customer=first_signed >= 0, first_signed=first_signed, customer_line=customer_line)
    return replace(deals, account=account, signed=signed), accounts


@dataclass(frozen=True)
class Lifecycle:
    """Renewal deals of customers and, per customer account, the window in which it may expand."""

    renewals: Deals
    expand_from: np.ndarray  # per account (customers only meaningful)
    expand_until: np.ndarray


def _churn_anniversary(rng: np.random.Generator, s0: np.ndarray, band: np.ndarray) -> np.ndarray:
    """At which anniversary (1..4, 5 = later) each customer churns: CHURN_HAZARD of the customers still
    there at each anniversary quarter churn (smaller customers more likely)."""
    churn_at = np.full(len(s0), 5)
    year, q = (int(x) for x in WORSE_COHORT.quarter.split("-Q"))
    worse = quarter_pos(year, q) + 4  # the planted cohort's first anniversary quarter
    for k in range(1, 5):
        alive = np.flatnonzero(churn_at == 5)
        quarter = quarter_index(s0[alive] + k * YEAR)
        share = np.full(max(int(quarter.max(initial=0)), worse) + 1, CHURN_HAZARD)
        if k == 1:  # the customers who first bought in WORSE_COHORT.quarter (no extra draw: the same randomness)
            share[worse] = WORSE_COHORT.first_year_churn
        churn_at[alive[exact_share(rng, quarter, share, BAND_CHURN[band[alive]])]] = k
    return churn_at


def renewals(rng: np.random.Generator, org: Org, new: Deals, accounts: Accounts) -> Lifecycle:
    """A renewal deal at each contract anniversary until the customer churns (loses its renewal)."""
    first = np.flatnonzero(new.booked)
    acc = new.account[first]
    s0 = new.signed[first]
    n = len(first)
    churn_at = _churn_anniversary(rng, s0, accounts.band[acc])
    k = np.arange(1, 5)
    anniversary = s0[:, None] + k[None, :] * YEAR
    created = anniversary - days(rng, 60, 100, n * 4).reshape(n, 4)
    exists = (k[None, :] <= churn_at[:, None]) & (created <= T_END)
    # renewals close around the anniversary, within the quarter the first deal closed in
    quarter = quarter_index(new.close[first])[:, None] + 4 * k[None, :]
    close = np.clip(anniversary + days(rng, -30, 20, n * 4).reshape(n, 4),
                    MONTH_EDGES[quarter * 3], MONTH_EDGES[quarter * 3 + 3] - SECOND)
    won = k[None, :] < churn_at[:, None]
    signed = sign_contracts(rng, close.ravel(), won.ravel(), 5).reshape(n, 4)
    amount = np.round(new.amount[first, None] * 1.04 ** k[None, :] * rng.uniform(0.98, 1.05, (n, 4)), 2)

    row, col = np.nonzero(exists)
    src = first[row]
    rep = org.owner_at(new.rep[src], created[row, col])
    deals = Deals(
        deal_type=np.full(len(row), RENEWAL, np.int8), account=new.account[src], rep=rep,
        region=new.region[src], product=new.product[src], quantity=new.quantity[src],
        amount=amount[row, col], created=created[row, col], close=close[row, col], won=won[row, col],
        reached=np.where(won[row, col], 3, 2 + (rng.random(len(row)) < 0.6)).astype(np.int8),
        lead_sourced=np.zeros(len(row), bool), signed=signed[row, col],
    )
    # a churning customer may only expand before its last renewal, so that renewal stays its last purchase
    churns = exists[np.arange(n), np.minimum(churn_at, 4) - 1] & (churn_at <= 4)
    prior = np.clip(churn_at - 2, 0, 3)
    last_signed = np.where(churn_at >= 2, signed[np.arange(n), prior], s0)
    expand_from = np.full(accounts.n, -1, np.int64)
    expand_until = np.full(accounts.n, -1, np.int64)
    expand_from[acc] = s0 + 60 * DAY
    expand_until[acc] = np.where(churns, last_signed - 15 * DAY, T_END + 180 * DAY)
    return Lifecycle(deals, expand_from, expand_until)


def expansions(rng: np.random.Generator, org: Org, new: Deals, accounts: Accounts,
               lifecycle: Lifecycle, plant: np.random.Generator | None = None) -> Deals:
    """Upsell and cross-sell deals of customers during their active years; with `plant` (its own random stream,
    so the other draws stay the same), the cross-sell pattern of CROSS_SELL."""
    first = np.flatnonzero(new.booked)
    acc = new.account[first]
    lo, hi = lifecycle.expand_from[acc], lifecycle.expand_until[acc]
    years = np.maximum(hi - lo, 0) / YEAR
    count = rng.poisson(EXPANSIONS_PER_YEAR * years)
    src = np.repeat(first, count)
    a = new.account[src]
    close = seasonal_sample(rng, lifecycle.expand_from[a], lifecycle.expand_until[a], grid_month_weights(Q4_FACTOR))
    n = len(src)
    won = rng.random(n) < 0.55
    created = np.maximum(close - (rng.lognormal(np.log(40.0), 0.5, n) * DAY).astype(np.int64),
                         new.signed[src] + 30 * DAY)
    upsell = rng.random(n) < 0.5
    line0 = accounts.customer_line[a]
    line = np.where(upsell, line0, (line0 + 1 + rng.integers(0, 3, n)) % 4)
    if plant is not None:
        pulled = (line0 == PRODUCT_LINES.index(CROSS_SELL_TRUTH.first_line)) & (plant.random(n) < CROSS_SELL_PULL)
        line = np.where(~upsell & pulled, PRODUCT_LINES.index(CROSS_SELL_TRUTH.next_line), line)
    size_u = stratified_uniform(rng, quarter_index(close) * 2 + won)
    x_product, x_quantity, x_amount, _ = price_deals(size_u, line, CROSS_SELL_MEDIAN)
    up_quantity = np.maximum(1, np.rint(new.quantity[src] * rng.uniform(0.15, 0.5, n))).astype(np.int64)
    up_amount = np.round(new.amount[src] / new.quantity[src] * up_quantity, 2)
    signed = sign_contracts(rng, close, won, 7)
    deals = Deals(
        deal_type=np.where(upsell, UPSELL, CROSS_SELL).astype(np.int8), account=a,
        rep=org.owner_at(new.rep[src], created), region=new.region[src],
        product=np.where(upsell, new.product[src], x_product),
        quantity=np.where(upsell, up_quantity, x_quantity), amount=np.where(upsell, up_amount, x_amount),
        created=created, close=close, won=won, reached=_lost_stage(rng, won),
        lead_sourced=np.zeros(n, bool), signed=signed,
    )
    return deals.take(np.flatnonzero((close - created >= 3 * DAY) & (created <= T_END)))


@dataclass(frozen=True)
class DealDetails:
    """Competitor, loss reason and stage timeline of every deal."""

    competitor: np.ndarray  # index into COMPETITORS, -1 for none
    loss_reason: np.ndarray  # index into LOSS_REASONS, -1 for none
    entered: np.ndarray  # (n, 4) entry time of each open stage, -1 when not entered
    stage: np.ndarray  # current stage index into DEFAULT_STAGES


def deal_details(rng: np.random.Generator, deals: Deals) -> DealDetails:
    """Competitors (with the planted stronghold), loss reasons and stage timelines."""
    competitor = _competitors(rng, deals)
    entered = _stage_entries(rng, deals)
    current_open = (entered >= 0).sum(axis=1) - 1
    return DealDetails(
        competitor=competitor,
        loss_reason=_loss_reasons(rng, deals, competitor),
        entered=entered,
        stage=np.where(deals.closed, np.where(deals.won, 4, 5), current_open),
    )


def _competitors(rng: np.random.Generator, deals: Deals) -> np.ndarray:
    """Main competitor per deal; in the stronghold region the planted competitor sits on most lost deals
    and few won ones (exact shares), and on a third of the open ones."""
    n = len(deals.created)
    contested = np.array(CONTESTED_SHARE)[deals.deal_type]
    competitor = np.where(rng.random(n) < contested, choice(rng, COMPETITOR_WEIGHTS, n), -1)
    strong = COMPETITORS.index(COMPETITOR_STRONGHOLD.competitor)
    in_region = (deals.region == REGION_IDS.index(COMPETITOR_STRONGHOLD.region_id)) & (deals.deal_type != RENEWAL)
    closed_here = np.flatnonzero(in_region & deals.closed)
    picked = exact_share(rng, deals.won[closed_here].astype(np.int64),
                         np.array([STRONGHOLD_SHARE_LOST, STRONGHOLD_SHARE_WON]))
    on_deal = in_region & ~deals.closed & (rng.random(n) < 0.35)
    on_deal[closed_here[picked]] = True
    others = np.array([i for i in range(len(COMPETITORS)) if i != strong])
    substitute = others[choice(rng, np.array(COMPETITOR_WEIGHTS)[others], n)]
    return np.where(on_deal, strong, np.where(in_region & (competitor == strong), substitute, competitor))


def _loss_reasons(rng: np.random.Generator, deals: Deals, competitor: np.ndarray) -> np.ndarray:
    """Why lost deals were lost (index into LOSS_REASONS; -1 for other deals)."""
    n = len(competitor)
    reason = np.where(competitor >= 0, choice(rng, LOSS_MIX_CONTESTED, n), choice(rng, LOSS_MIX_UNCONTESTED, n))
    return np.where(deals.closed & ~deals.won, reason, -1)


def _stage_entries(rng: np.random.Generator, deals: Deals) -> np.ndarray:
    """(n, 4) entry time of each open stage reached by DEMO_END (-1 otherwise): the cycle is split into
    random stage durations, the first stage entered at creation."""
    n = len(deals.created)
    weights = rng.exponential(1.0, (n, N_OPEN_STAGES)) * np.array(STAGE_LENGTH)
    reached = np.arange(N_OPEN_STAGES)[None, :] <= deals.reached[:, None]
    weights[~reached] = 0.0
    share_before = (np.cumsum(weights, axis=1) - weights) / weights.sum(axis=1, keepdims=True)
    cycle = (deals.close - deals.created).astype(np.float64)
    entered = deals.created[:, None] + (share_before * cycle[:, None]).astype(np.int64)
    return np.where(reached & (entered <= T_END), entered, -1)
