"""Leads and their funnel, campaigns (with costs that plant the channel ROI) and campaign events.

Leads that became opportunities are dated back from their opportunity; the others fill every region's
monthly lead flow. Funnel counts are exact per region: SQL→opportunity conversion is
FUNNEL_BOTTLENECK.rate in the bottleneck region and `others_rate` elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from crmlens.demo._accounts import AccountState
from crmlens.demo._calendar import (
    DAY,
    HOUR,
    M0,
    M_END,
    MONTH_EDGES,
    Q0,
    Q_END,
    SECOND,
    T0,
    T_END,
    days,
    in_month,
    month_index,
    month_pos,
    quarter_index,
    quarter_label,
    quarter_pos,
    uniform_between,
)
from crmlens.demo._org import REP_ID_WIDTH, Org
from crmlens.demo._parquet import Ids, Labels, Numbers, Strings, Times, id_width, write_table
from crmlens.demo._random import (
    choice,
    choice_in_ranges,
    exact_share,
    expand_counts,
    quantile_choice,
    stratified_uniform,
    systematic_counts,
)
from crmlens.demo._records import Records
from crmlens.demo._sales import GROWTH_PER_YEAR, LEAD_STEP_DAYS, Accounts, Deals
from crmlens.demo._world import (
    CHANNEL_EVENTS,
    CHANNEL_MIX_CONVERTED,
    CHANNEL_MIX_OTHER,
    CHANNEL_MIX_WON,
    GLOBAL_CHANNELS,
    LEAD_CHANNELS,
)
from crmlens.schema import EVENT_TYPES
from crmlens.truths import (
    ASSIST_CHANNEL,
    CAMPAIGN_CHANNELS,
    CHANNEL_ROI,
    FUNNEL_BOTTLENECK,
    HOLLOW_CAMPAIGN,
    REGION_IDS,
    SUDDEN_DROP,
)

ORGANIC = len(CAMPAIGN_CHANNELS)  # channel index of organic leads
N_REGIONS = len(REGION_IDS)
GLOBAL_SLOT = N_REGIONS  # region slot of global campaigns
MIN_CAMPAIGN_COST = {"trade_show": 8_000.0}
DEFAULT_MIN_CAMPAIGN_COST = 50.0
DISQUALIFIED_SHARE = (0.6, 0.5, 0.7)  # of leads stopping at: raw, MQL, SQL
LEAD_FLOW_NOISE = 0.04  # log-sd of the month-to-month wobble of each region's lead flow


@dataclass(frozen=True)
class Leads(Records):
    """Leads in id order (index + 1 = id number)."""

    created: np.ndarray
    region: np.ndarray
    channel: np.ndarray  # index into LEAD_CHANNELS
    campaign: np.ndarray  # campaign index, -1 for organic
    owner: np.ndarray  # rep, -1 unassigned
    first_response: np.ndarray  # -1 when never contacted
    mql: np.ndarray
    sql: np.ndarray
    disqualified: np.ndarray
    deal: np.ndarray  # deal index it converted into, -1

    @property
    def n(self) -> int:
        return len(self.created)


@dataclass(frozen=True)
class Campaigns:
    """Quarterly campaigns per channel and region (or global), and the planted hollow campaign (the last one,
    which `find` never returns: its leads are moved to it by `generate_leads`)."""

    channel: np.ndarray
    region_slot: np.ndarray  # region index, GLOBAL_SLOT for global campaigns
    quarter: np.ndarray  # grid quarter index
    lookup: np.ndarray  # [channel, region slot, quarter - Q0] -> campaign index
    hollow: int  # index of HOLLOW_CAMPAIGN

    def names(self) -> list[str]:
        return [HOLLOW_CAMPAIGN.name if i == self.hollow else
                f"{CAMPAIGN_CHANNELS[c].replace('_', ' ').title()} "
                f"{'Global' if s == GLOBAL_SLOT else REGION_IDS[s]} {quarter_label(q)}"
                for i, (c, s, q) in enumerate(zip(self.channel, self.region_slot, self.quarter, strict=True))]

    @property
    def n(self) -> int:
        return len(self.channel)

    @property
    def started(self) -> np.ndarray:
        return MONTH_EDGES[self.quarter * 3]

    @property
    def ended(self) -> np.ndarray:
        return MONTH_EDGES[self.quarter * 3 + 3] - SECOND

    def find(self, channel: np.ndarray, region: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Campaign running in a channel and region at `t`, -1 for organic leads."""
        is_global = np.isin(channel, [CAMPAIGN_CHANNELS.index(c) for c in GLOBAL_CHANNELS])
        slot = np.where(is_global, GLOBAL_SLOT, region)
        q = np.clip(quarter_index(t) - Q0, 0, self.lookup.shape[2] - 1)
        return np.where(channel == ORGANIC, -1, self.lookup[np.minimum(channel, ORGANIC - 1), slot, q])


def build_campaigns() -> Campaigns:
    """One campaign per quarter and channel, in every region (or once globally), and the hollow campaign."""
    rows = [(q, c, slot)
            for q in range(Q0, Q_END + 1)
            for c, name in enumerate(CAMPAIGN_CHANNELS)
            for slot in ((GLOBAL_SLOT,) if name in GLOBAL_CHANNELS else range(N_REGIONS))]
    lookup = np.full((len(CAMPAIGN_CHANNELS), N_REGIONS + 1, Q_END - Q0 + 1), -1)
    lookup[tuple(np.array(x) for x in zip(*[(c, s, q - Q0) for q, c, s in rows], strict=True))] = np.arange(len(rows))
    year, q = (int(x) for x in HOLLOW_CAMPAIGN.quarter.split("-Q"))
    channel = CAMPAIGN_CHANNELS.index(HOLLOW_CAMPAIGN.channel)
    rows.append((quarter_pos(year, q), channel, GLOBAL_SLOT if HOLLOW_CAMPAIGN.channel in GLOBAL_CHANNELS else 0))
    quarter, channel, slot = (np.array(x) for x in zip(*rows, strict=True))
    return Campaigns(channel=channel, region_slot=slot, quarter=quarter, lookup=lookup, hollow=len(rows) - 1)


def _region_reps(org: Org) -> tuple[np.ndarray, np.ndarray]:
    teams_per_region = len(org.team_labels) // N_REGIONS
    first = org.team_first_rep[np.arange(N_REGIONS + 1) * teams_per_region]
    return first[:-1], first[1:]


def _pick_owner(rng: np.random.Generator, org: Org, region: np.ndarray, t: np.ndarray) -> np.ndarray:
    start, stop = _region_reps(org)
    rep = choice_in_ranges(rng, start[region], stop[region], np.ones(org.n_reps))
    ok = org.employed(rep, t, t + 90 * DAY)
    return np.where(ok, rep, org.team_manager[org.rep_team[rep]])


def _funnel_counts(converted_per_region: np.ndarray) -> np.ndarray:
    """Leads per region and funnel level (0 raw, 1 MQL, 2 SQL without opportunity) that did not convert."""
    rate = np.full(N_REGIONS, FUNNEL_BOTTLENECK.others_rate)
    rate[REGION_IDS.index(FUNNEL_BOTTLENECK.region_id)] = FUNNEL_BOTTLENECK.rate
    sql = np.rint(converted_per_region / rate)
    mql = np.rint(sql / FUNNEL_BOTTLENECK.mql_to_sql_rate)
    leads = np.rint(mql / FUNNEL_BOTTLENECK.lead_to_mql_rate)
    return np.stack([leads - mql, mql - sql, sql - converted_per_region], axis=1).astype(np.int64)


def _spread_over_months(rng: np.random.Generator, totals: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Counts per (row, month) proportional to `weights`, summing exactly to `totals` per row."""
    share = weights / weights.sum(axis=1, keepdims=True)
    counts = systematic_counts(rng, share * totals[:, None])
    fix = totals - counts.sum(axis=1)
    counts[np.arange(len(totals)), counts.argmax(axis=1)] += fix
    return counts


def generate_leads(rng: np.random.Generator, org: Org, deals: Deals, campaigns: Campaigns) -> Leads:
    """Converted leads from lead-sourced deals, the rest of the funnel around them, and the planted drop;
    in creation order."""
    converted = _converted_leads(rng, org, deals)
    leads = Leads.concat(converted, _other_leads(rng, org, converted))
    contacted = (leads.owner >= 0) & (rng.random(leads.n) < 0.95)
    response = leads.created + (rng.lognormal(np.log(5.0), 1.0, leads.n) * HOUR).astype(np.int64)
    campaign = campaigns.find(leads.channel, leads.region, leads.created)
    leads = replace(leads, campaign=_to_hollow(campaigns, leads, campaign),
                    first_response=np.where(contacted & (response <= T_END), response, -1))
    return _drop(rng, leads)


def _to_hollow(campaigns: Campaigns, leads: Leads, campaign: np.ndarray) -> np.ndarray:
    """Move HOLLOW_CAMPAIGN.lead_share of the leads of its channel and quarter that never reached SQL to it
    (every few in creation order: no randomness)."""
    h = campaigns.hollow
    eligible = np.flatnonzero((leads.channel == campaigns.channel[h]) & (quarter_index(leads.created) ==
                              campaigns.quarter[h]) & (leads.sql < 0) & (leads.deal < 0))
    eligible = eligible[np.argsort(leads.created[eligible], kind="stable")]
    pick = (np.arange(len(eligible)) * HOLLOW_CAMPAIGN.lead_share) % 1.0 < HOLLOW_CAMPAIGN.lead_share
    out = campaign.copy()
    out[eligible[pick]] = h
    return out


def _converted_leads(rng: np.random.Generator, org: Org, deals: Deals) -> Leads:
    """One lead per lead-sourced deal, dated back from the deal's creation."""
    conv = np.flatnonzero(deals.lead_sourced)
    n = len(conv)
    to_mql, to_sql, to_deal = LEAD_STEP_DAYS
    sql = deals.created[conv] - days(rng, *to_deal, n)
    mql = sql - days(rng, *to_sql, n)
    created = np.maximum(mql - days(rng, *to_mql, n), T0)
    won = deals.booked[conv]
    spread = stratified_uniform(rng, won.astype(np.int64))  # channel counts exact to one lead
    channel = np.where(won, quantile_choice(CHANNEL_MIX_WON, spread), quantile_choice(CHANNEL_MIX_CONVERTED, spread))
    owner = deals.rep[conv]  # the rep who got the deal, or the team manager if not hired yet
    owner = np.where(org.employed(owner, created, deals.created[conv]), owner, org.team_manager[org.rep_team[owner]])
    none = np.full(n, -1)
    return Leads(created=created, region=deals.region[conv], channel=channel, campaign=none, owner=owner,
                 first_response=none, mql=mql, sql=sql, disqualified=none, deal=conv)


def _other_leads(rng: np.random.Generator, org: Org, converted: Leads) -> Leads:
    """The leads that did not convert: exact funnel counts per region, spread over the months so that
    each region's total lead flow grows smoothly."""
    per_region = np.bincount(converted.region, minlength=N_REGIONS)
    levels = _funnel_counts(per_region)
    months = np.arange(M0, M_END + 1)
    flow = GROWTH_PER_YEAR ** ((months - M0) / 12.0) * rng.lognormal(0.0, LEAD_FLOW_NOISE, (N_REGIONS, len(months)))
    conv_by_month = np.zeros((N_REGIONS, len(months)))
    np.add.at(conv_by_month, (converted.region, month_index(converted.created) - M0), 1.0)
    totals = levels.sum(axis=1)
    target = flow * ((totals + per_region) / flow.sum(axis=1))[:, None]
    region, month = expand_counts(_spread_over_months(rng, totals, np.maximum(target - conv_by_month, 0.1 * target)))
    # funnel levels in region order, shuffled within each region
    ordered = np.concatenate([np.repeat(np.arange(3), levels[r]) for r in range(N_REGIONS)])
    level = ordered[np.lexsort((rng.random(len(ordered)), np.repeat(np.arange(N_REGIONS), totals)))]
    n = len(region)
    created = in_month(rng, months[month])
    to_mql, to_sql, _ = LEAD_STEP_DAYS
    d1, d2 = days(rng, *to_mql, n), days(rng, *to_sql, n)
    squeeze = np.minimum(1.0, (T_END - created) / (d1 + d2 + HOUR))  # recent leads move faster
    mql = np.where(level >= 1, created + (d1 * squeeze).astype(np.int64), -1)
    sql = np.where(level >= 2, mql + (d2 * squeeze).astype(np.int64), -1)
    last_step = np.maximum(np.maximum(created, mql), sql)
    disqualified = np.where(rng.random(n) < np.array(DISQUALIFIED_SHARE)[level], last_step + days(rng, 1, 45, n), -1)
    channel = np.where(level == 2, choice(rng, CHANNEL_MIX_CONVERTED, n), choice(rng, CHANNEL_MIX_OTHER, n))
    assigned = (level >= 1) | (rng.random(n) < 0.7)
    none = np.full(n, -1)
    return Leads(created=created, region=region, channel=channel, campaign=none,
                 owner=np.where(assigned, _pick_owner(rng, org, region, created), -1), first_response=none,
                 mql=mql, sql=sql, disqualified=np.where(disqualified <= T_END, disqualified, -1), deal=none)


def _drop(rng: np.random.Generator, leads: Leads) -> Leads:
    """Remove the planted share of the drop region's leads in the drop month; order by creation."""
    year, month = (int(x) for x in SUDDEN_DROP.month.split("-"))
    cell = np.flatnonzero((leads.region == REGION_IDS.index(SUDDEN_DROP.region_id))
                          & (month_index(leads.created) == month_pos(year, month)))
    gone = cell[exact_share(rng, np.zeros(len(cell), np.int64), np.array([1.0 - SUDDEN_DROP.ratio]))]
    keep = np.ones(leads.n, bool)
    keep[gone] = False
    rows = np.flatnonzero(keep)
    return leads.take(rows[np.argsort(leads.created[rows], kind="stable")])


def account_lead_channel(leads: Leads, deals: Deals, n_accounts: int) -> np.ndarray:
    """Per account, the channel of its earliest lead (leads are in creation order), or -1.

    Lead channels are the first entries of ACCOUNT_CHANNELS, so the index serves both."""
    converted = np.flatnonzero(leads.deal >= 0)
    earliest = np.full(n_accounts, leads.n)
    np.minimum.at(earliest, deals.account[leads.deal[converted]], converted)
    return np.where(earliest < leads.n, leads.channel[np.minimum(earliest, leads.n - 1)], -1)


def campaign_costs(rng: np.random.Generator, campaigns: Campaigns, leads: Leads, deals: Deals) -> np.ndarray:
    """Cost of each campaign, set so that each channel's ROI is the planted one."""
    roi = dict(CHANNEL_ROI.planted_roi)
    with_campaign = leads.campaign >= 0
    won = with_campaign & (leads.deal >= 0)
    won[won] = deals.booked[leads.deal[won]]
    revenue = np.bincount(campaigns.channel[leads.campaign[won]], weights=deals.amount[leads.deal[won]],
                          minlength=len(CAMPAIGN_CHANNELS))
    n_leads = np.bincount(leads.campaign[with_campaign], minlength=campaigns.n)
    weight = (n_leads + 3.0) * rng.uniform(0.8, 1.2, campaigns.n)
    cost = np.zeros(campaigns.n)
    for c, name in enumerate(CAMPAIGN_CHANNELS):  # eight channels
        mine = campaigns.channel == c
        floor = mine.sum() * MIN_CAMPAIGN_COST.get(name, DEFAULT_MIN_CAMPAIGN_COST)
        total = max(revenue[c] / (1.0 + roi[name]), floor)
        cost[mine] = np.round(total * weight[mine] / weight[mine].sum(), 2)
    return cost


def write_marketing(out: Path, rng: np.random.Generator, campaigns: Campaigns, leads: Leads, deals: Deals,
                    state: AccountState, accounts: Accounts, opp_width: int, chunk_rows: int,
                    progress: bool, plant_rng: np.random.Generator) -> dict[str, int]:
    """Write campaigns, leads and campaign events (`plant_rng` draws the assist channel's and the hollow
    campaign's engagement)."""
    names = campaigns.names()
    camp_width = id_width(campaigns.n)
    counts = {"campaigns": write_table(out, "campaigns", campaigns.n, {
        "campaign_id": Ids("CMP", camp_width),
        "name": Strings(pa.array(names)),
        "channel": Labels(CAMPAIGN_CHANNELS, campaigns.channel),
        "region_id": Labels(REGION_IDS, np.minimum(campaigns.region_slot, N_REGIONS - 1),
                            valid=campaigns.region_slot != GLOBAL_SLOT),
        "started_at": Times(campaigns.started),
        "ended_at": Times(np.minimum(campaigns.ended, T_END)),
        "cost_amount": Numbers(cost := campaign_costs(rng, campaigns, leads, deals)),
    }, progress=progress)}
    campaign, day, figures = _ad_figures(plant_rng, campaigns, np.round(cost, 2), leads)
    counts["campaign_metrics"] = write_table(out, "campaign_metrics", len(campaign), {
        "campaign_id": Ids("CMP", id_width(campaigns.n), campaign + 1),
        "ad_id": Strings(pa.nulls(len(campaign), pa.string())),
        "report_date": Times(day),
        "audience": Strings(pa.nulls(len(campaign), pa.string())),
        **{name: Numbers(values) for name, values in figures.items()},
    }, chunk_rows=chunk_rows, progress=progress)

    lead_width = id_width(leads.n)
    has = {name: getattr(leads, name) >= 0 for name in ("first_response", "mql", "sql", "disqualified")}
    counts["leads"] = write_table(out, "leads", leads.n, {
        "lead_id": Ids("L", lead_width),
        "created_at": Times(leads.created),
        "source_channel": Labels(LEAD_CHANNELS, leads.channel),
        "campaign_id": Ids("CMP", camp_width, leads.campaign + 1, valid=leads.campaign >= 0),
        "region_id": Labels(REGION_IDS, leads.region),
        "owner_rep_id": Ids("R", REP_ID_WIDTH, leads.owner + 1, valid=leads.owner >= 0),
        "first_response_at": Times(leads.first_response, valid=has["first_response"]),
        "mql_at": Times(leads.mql, valid=has["mql"]),
        "sql_at": Times(leads.sql, valid=has["sql"]),
        "opportunity_id": Ids("O", opp_width, leads.deal + 1, valid=leads.deal >= 0),
        "disqualified_at": Times(leads.disqualified, valid=has["disqualified"]),
    }, chunk_rows=chunk_rows, progress=progress)

    campaign, lead, account, event_type, occurred = _events(rng, campaigns, leads, accounts, deals, plant_rng)
    counts["campaign_events"] = write_table(out, "campaign_events", len(campaign), {
        "event_id": Ids("EV", id_width(len(campaign))),
        "campaign_id": Ids("CMP", camp_width, campaign + 1),
        "lead_id": Ids("L", lead_width, lead + 1, valid=lead >= 0),
        "account_id": Ids("A", state.width, state.number[np.maximum(account, 0)], valid=account >= 0),
        "event_type": Labels(EVENT_TYPES, event_type),
        "occurred_at": Times(occurred),
    }, chunk_rows=chunk_rows, progress=progress)
    return counts


def _events(rng: np.random.Generator, campaigns: Campaigns, leads: Leads, accounts: Accounts, deals: Deals,
            plant_rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Engagement before each campaign lead, anonymous engagement, customers' engagement, and the planted
    assist touches and hollow campaign's engagement."""
    seq = np.full((len(CAMPAIGN_CHANNELS), 3), -1)
    for c, name in enumerate(CAMPAIGN_CHANNELS):
        steps = CHANNEL_EVENTS[name]
        seq[c, : len(steps)] = [EVENT_TYPES.index(s) for s in steps]
    length = (seq >= 0).sum(axis=1)

    camp_leads = np.flatnonzero(leads.campaign >= 0)
    ch = leads.channel[camp_leads]
    slot = np.arange(3)[None, :]
    last = (length[ch] - 1)[:, None]
    use = slot <= last  # a lead who clicked had opened, one who attended had registered
    row, col = np.nonzero(use)
    lead_rows = camp_leads[row]
    camp = leads.campaign[lead_rows]
    back = ((last[row, 0] - col) * rng.uniform(0.0, 5.0, len(row)) * DAY).astype(np.int64)
    lead_time = np.maximum(leads.created[lead_rows] - back - (rng.random(len(row)) * HOUR).astype(np.int64),
                           campaigns.started[camp])
    lead_time = np.minimum(lead_time, leads.created[lead_rows])

    per_campaign = np.bincount(leads.campaign[camp_leads], minlength=campaigns.n)
    anon_camp = np.repeat(np.arange(campaigns.n), rng.poisson(per_campaign * 0.8 + 2.0))
    anon_time = uniform_between(rng, campaigns.started[anon_camp], np.minimum(campaigns.ended[anon_camp], T_END))

    customers = np.flatnonzero(accounts.is_customer)
    engaged = np.repeat(customers, rng.poisson(0.8, len(customers)))
    engage_channel = np.array([CAMPAIGN_CHANNELS.index(c) for c in ("webinar", "email", "content")])
    e_channel = engage_channel[rng.integers(0, 3, len(engaged))]
    e_time = uniform_between(rng, np.maximum(accounts.first_signed[engaged], T0), np.full(len(engaged), T_END))
    e_camp = campaigns.find(e_channel, accounts.region[engaged], e_time)
    e_type = seq[e_channel, 0]  # customers open, register, visit: not every step follows

    campaign = np.concatenate([camp, anon_camp, e_camp])
    lead = np.concatenate([lead_rows, np.full(len(anon_camp) + len(engaged), -1)])
    account = np.concatenate([np.full(len(camp) + len(anon_camp), -1), engaged])
    event_type = np.concatenate([seq[ch[row], col], seq[campaigns.channel[anon_camp], 0], e_type])
    occurred = np.concatenate([lead_time, anon_time, e_time])

    a_lead, a_camp, a_type, a_time = _assist_touches(plant_rng, campaigns, leads, deals)
    n_hollow = 2 * int(np.bincount(campaign, minlength=campaigns.n).max())  # engagement; and 4x as many views
    h_time = uniform_between(plant_rng, np.full(5 * n_hollow, campaigns.started[campaigns.hollow]),
                             np.full(5 * n_hollow, campaigns.ended[campaigns.hollow]))
    h_type = np.concatenate([choice(plant_rng, np.array([0.45, 0.45, 0.1]), n_hollow), np.full(4 * n_hollow, 3)])
    campaign = np.concatenate([campaign, a_camp, np.full(5 * n_hollow, campaigns.hollow)])
    lead = np.concatenate([lead, a_lead, np.full(5 * n_hollow, -1)])
    account = np.concatenate([account, np.full(len(a_lead) + 5 * n_hollow, -1)])
    event_type = np.concatenate([event_type, a_type, np.array(
        [EVENT_TYPES.index(t) for t in ("click", "visit", "download", "impression")])[h_type]])
    occurred = np.concatenate([occurred, a_time, h_time])
    order = np.argsort(occurred, kind="stable")
    return campaign[order], lead[order], account[order], event_type[order], occurred[order]


def _assist_touches(rng: np.random.Generator, campaigns: Campaigns, leads: Leads,
                    deals: Deals) -> tuple[np.ndarray, ...]:
    """An early touch of the assist channel (ASSIST_CHANNEL) for about `early_share` of the campaign leads of
    other channels that became won deals and `other_share` of the rest: lead, campaign, event type, time."""
    assist = CAMPAIGN_CHANNELS.index(ASSIST_CHANNEL.channel)
    won = np.zeros(leads.n, bool)
    won[leads.deal >= 0] = deals.booked[leads.deal[leads.deal >= 0]]
    share = np.where(won, ASSIST_CHANNEL.early_share, ASSIST_CHANNEL.other_share)
    t = leads.created - days(rng, *ASSIST_CHANNEL.early_days, leads.n)
    pick = np.flatnonzero((leads.channel != assist) & (leads.campaign >= 0) & (rng.random(leads.n) < share)
                          & (t >= T0))
    camp = campaigns.find(np.full(len(pick), assist), leads.region[pick], t[pick])
    kind = np.array([EVENT_TYPES.index("visit"), EVENT_TYPES.index("download")])[rng.integers(0, 2, len(pick))]
    return pick, camp, kind, t[pick]


#: Channels whose campaigns are bought on ad platforms, with their click-through rate and cost per thousand
#: impressions: they report daily figures (`campaign_metrics`).
AD_CHANNELS = {"paid_search": (0.035, 30.0), "social": (0.012, 8.0)}
HOLLOW_CTR = 0.06


def _ad_figures(rng: np.random.Generator, campaigns: Campaigns, cost: np.ndarray,
                leads: Leads) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Daily figures of the ad-platform campaigns: spend (the campaign's cost spread over its days, to the cent),
    impressions from the channel's CPM, clicks from its CTR (the hollow campaign's far higher), conversions =
    the campaign's leads created that day, approved = those that reached MQL."""
    ads = np.flatnonzero(np.isin(campaigns.channel, [CAMPAIGN_CHANNELS.index(c) for c in AD_CHANNELS]))
    first = campaigns.started[ads] // DAY
    last = np.minimum(campaigns.ended[ads], T_END) // DAY
    n_days = (last - first + 1).astype(np.int64)
    camp = np.repeat(ads, n_days)
    offset = np.arange(len(camp)) - np.repeat(np.cumsum(n_days) - n_days, n_days)
    day = (np.repeat(first, n_days) + offset) * DAY
    weight = rng.uniform(0.5, 1.5, len(camp))
    total = np.bincount(np.searchsorted(ads, camp), weights=weight, minlength=len(ads))
    cents = np.floor(cost[camp] * 100 * weight / total[np.searchsorted(ads, camp)])
    short = np.rint(cost[ads] * 100).astype(np.int64) - np.bincount(np.searchsorted(ads, camp), weights=cents,
                                                                      minlength=len(ads)).astype(np.int64)
    ends = np.cumsum(n_days) - 1
    cents[ends] += short  # each campaign's spend adds up to its cost to the cent
    spend = cents / 100.0
    ctr_cpm = np.array([AD_CHANNELS[CAMPAIGN_CHANNELS[c]] for c in campaigns.channel[camp]])
    impressions = rng.poisson(spend / ctr_cpm[:, 1] * 1000.0)
    ctr = np.where(camp == campaigns.hollow, HOLLOW_CTR, ctr_cpm[:, 0])
    clicks = rng.binomial(impressions, ctr)
    mine = np.flatnonzero(np.isin(leads.campaign, ads))
    rows = np.searchsorted(_day_key(camp, day), _day_key(leads.campaign[mine], leads.created[mine]))
    conversions = np.bincount(rows, minlength=len(camp))
    approved = np.bincount(rows, weights=(leads.mql[mine] >= 0), minlength=len(camp)).astype(np.int64)
    figures = {"n_impressions": impressions, "n_clicks": clicks, "spend_amount": spend,
               "n_conversions": conversions, "n_approved_conversions": approved}
    return camp, day, figures


def _day_key(campaign: np.ndarray, t: np.ndarray) -> np.ndarray:
    return campaign.astype(np.int64) * (1 << 32) + t // DAY
