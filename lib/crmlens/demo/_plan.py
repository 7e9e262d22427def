"""Targets (set from the bookings each team reached, except the planted team), market figures and
competitor intelligence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from crmlens.demo._calendar import (
    M0,
    M_END,
    MONTH_EDGES,
    Q0,
    Q_END,
    SECOND,
    T_END,
    month_label,
    quarter_index,
    quarter_label,
    quarter_pos,
    uniform_between,
)
from crmlens.demo._org import REP_ID_WIDTH, Org
from crmlens.demo._parquet import Ids, Labels, Numbers, Strings, Times, id_strings, id_width, write_table
from crmlens.demo._random import choice
from crmlens.demo._sales import GROWTH_PER_YEAR, Deals
from crmlens.demo._world import INTEL_TEMPLATES, LINE_WEIGHTS, PRODUCTS, REGIONS
from crmlens.schema import INTEL_KINDS, TARGET_LEVELS
from crmlens.truths import (
    COMPETITOR_STRONGHOLD,
    COMPETITORS,
    MARKET_OUTGROWS_US,
    PRODUCT_LINES,
    REGION_IDS,
    TEAM_BELOW_TARGET,
)

MONTH_SPLIT = np.array([0.30, 0.33, 0.37])  # share of a quarter's target in its 1st, 2nd, 3rd month
PRODUCT_LINE = np.array([PRODUCT_LINES.index(p.line) for p in PRODUCTS])
OUR_SHARE = 0.22
COMPETITOR_SHARE = (0.10, 0.14, 0.12, 0.08)  # as COMPETITORS, outside the stronghold


def _monthly_cents(quarterly: np.ndarray) -> np.ndarray:
    """Monthly amounts in cents from quarterly ones (rows × quarters → rows × months): MONTH_SPLIT, the
    last month of each quarter taking the rounding, so months add up to the rounded quarter."""
    q = np.round(quarterly, 2)
    first = np.round(q[..., None] * MONTH_SPLIT[None, None, :2], 2)
    return np.concatenate([first, (q - first.sum(axis=-1))[..., None]], axis=-1).reshape(len(q), -1)


def _sum_rows(index: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    total = np.zeros((size, values.shape[1]))
    np.add.at(total, index, values)
    return total


def _team_targets(rng: np.random.Generator, org: Org, deals: Deals) -> np.ndarray:
    """Team × quarter (Q0..Q_END+1) targets: what each team booked divided by an attainment near 100%
    (the planted team's is TEAM_BELOW_TARGET.attainment); the coming quarter is a year ago, grown."""
    booked = np.flatnonzero(deals.booked)
    n_teams = len(org.team_labels)
    actual = np.zeros((n_teams, Q_END - Q0 + 2))
    np.add.at(actual, (org.rep_team[deals.rep[booked]], quarter_index(deals.close[booked]) - Q0), deals.amount[booked])
    attainment = rng.uniform(0.92, 1.10, actual.shape)
    year, quarter = (int(x) for x in TEAM_BELOW_TARGET.period.split("-Q"))
    attainment[org.team_labels.index(TEAM_BELOW_TARGET.team_id), quarter_pos(year, quarter) - Q0] = (
        TEAM_BELOW_TARGET.attainment)
    fallback = org.team_weight[:, None] * actual.sum(axis=0)[None, :]
    team = np.where(actual > 0, actual / attainment, fallback)
    team[:, -1] = team[:, -5] * GROWTH_PER_YEAR
    return team


def _monthly_targets(rng: np.random.Generator, org: Org, deals: Deals) -> dict[str, tuple[list[str], np.ndarray]]:
    """Per level: (keys, matrix keys × months M0..M_END+3 in cents). Team targets are split over the
    team's reps in the quarter; every level above is the exact sum of the one below."""
    team = _team_targets(rng, org, deals)
    starts = MONTH_EDGES[np.arange(Q0, Q_END + 2) * 3]
    ends = MONTH_EDGES[np.arange(Q0, Q_END + 2) * 3 + 3]
    employed = (org.rep_hired[:, None] < ends[None, :]) & (org.rep_left[:, None] >= starts[None, :])
    weight = org.rep_win_weight[:, None] * employed
    rep = _monthly_cents(team[org.rep_team] * weight / _sum_rows(org.rep_team, weight, len(team))[org.rep_team])
    teams = _sum_rows(org.rep_team, rep, len(team))
    regions = _sum_rows(org.team_region, teams, len(REGION_IDS))
    company = regions.sum(axis=0, keepdims=True)

    booked = np.flatnonzero(deals.booked)
    line_actual = np.zeros((len(PRODUCT_LINES), Q_END - Q0 + 2))
    np.add.at(line_actual, (PRODUCT_LINE[deals.product[booked]], quarter_index(deals.close[booked]) - Q0),
              deals.amount[booked])
    line_actual[:, -1] = line_actual[:, -5]
    totals = line_actual.sum(axis=0)
    share = np.where(totals > 0, line_actual / np.where(totals > 0, totals, 1.0), np.array(LINE_WEIGHTS)[:, None])
    lines = np.round(company * np.repeat(share, 3, axis=1), 2)
    lines[np.argmax(LINE_WEIGHTS)] += company[0] - lines.sum(axis=0)  # the biggest line takes the rounding
    return {
        "company": (["company"], company),
        "region": (list(REGION_IDS), regions),
        "team": (list(org.team_labels), teams),
        "rep": (id_strings("R", np.arange(1, org.n_reps + 1), REP_ID_WIDTH).to_pylist(), rep),
        "product_line": (list(PRODUCT_LINES), lines),
    }


def write_plan(out: Path, rng: np.random.Generator, org: Org, deals: Deals, intel_per_quarter: float,
               progress: bool) -> dict[str, int]:
    """Write targets (per quarter and month, for the history and the coming quarter), market and
    competitor_intel."""
    by_level = _monthly_targets(rng, org, deals)
    quarters = [quarter_label(q) for q in range(Q0, Q_END + 2)]
    months = [month_label(m) for m in range(M0, M_END + 4)]
    periods = quarters + months
    period_idx, level_idx, key_text, amount = [], [], [], []
    for level in TARGET_LEVELS:
        keys, per_month = by_level[level]
        per_quarter = per_month.reshape(len(keys), -1, 3).sum(axis=2)
        values = np.concatenate([per_quarter, per_month], axis=1)  # keys × periods
        k, p = np.meshgrid(np.arange(len(keys)), np.arange(len(periods)), indexing="ij")
        period_idx.append(p.ravel())
        level_idx.append(np.full(k.size, TARGET_LEVELS.index(level)))
        key_text.append(pa.array(keys).take(pa.array(k.ravel())))
        amount.append(values.ravel())
    period_i = np.concatenate(period_idx)
    level_i = np.concatenate(level_idx)
    order = np.lexsort((level_i, period_i))
    target = np.round(np.concatenate(amount)[order], 2)
    mean_deal = float(deals.amount[deals.booked].mean()) if deals.booked.any() else 1.0
    counts = {"targets": write_table(out, "targets", len(order), {
        "period": Labels(tuple(periods), period_i[order]),
        "level": Labels(TARGET_LEVELS, level_i[order]),
        "key": Strings(pa.concat_arrays(key_text).take(pa.array(order))),
        "target_amount": Numbers(target),
        "n_target_deals": Numbers(np.rint(target / mean_deal).astype(np.int64)),
    }, progress=progress)}
    counts["market"] = _write_market(out, rng, deals, progress)
    counts["competitor_intel"] = _write_intel(out, rng, intel_per_quarter, progress)
    return counts


def _outgrowth(n_q: int) -> np.ndarray:
    """Per quarter (Q0..Q_END), the factor by which MARKET_OUTGROWS_US's region's market exceeds the size that
    tracks our bookings: 1 before `since`, then compounding so that the market grows `market_growth` a year
    while our bookings grow GROWTH_PER_YEAR."""
    year, quarter = (int(x) for x in MARKET_OUTGROWS_US.since.split("-Q"))
    since = quarter_pos(year, quarter) - Q0
    extra = (1.0 + MARKET_OUTGROWS_US.market_growth) / GROWTH_PER_YEAR
    return extra ** (np.maximum(np.arange(n_q) - since + 1, 0) / 4.0)


def _write_market(out: Path, rng: np.random.Generator, deals: Deals, progress: bool) -> int:
    """The market: each segment's size is our bookings there over our share (COMPETITOR_STRONGHOLD's shares in
    its region), MARKET_OUTGROWS_US's region growing faster from its `since` on; competitors' sales are their
    shares of it."""
    booked = np.flatnonzero(deals.booked)
    amount = deals.amount[booked]
    n_q = Q_END - Q0 + 1
    per_quarter = np.bincount(quarter_index(deals.close[booked]) - Q0, weights=amount, minlength=n_q)[:n_q]
    region_share = np.bincount(deals.region[booked], weights=amount, minlength=len(REGION_IDS)) / amount.sum()
    line_share = np.bincount(PRODUCT_LINE[deals.product[booked]], weights=amount,
                             minlength=len(PRODUCT_LINES)) / amount.sum()
    stronghold = REGION_IDS.index(COMPETITOR_STRONGHOLD.region_id)
    our_share = OUR_SHARE * rng.uniform(0.9, 1.1, len(REGION_IDS))
    our_share[stronghold] = COMPETITOR_STRONGHOLD.our_share
    rival_share = np.array(COMPETITOR_SHARE)[:, None] * rng.uniform(0.9, 1.1, (len(COMPETITORS), len(REGION_IDS)))
    rival_share[COMPETITORS.index(COMPETITOR_STRONGHOLD.competitor), stronghold] = (
        COMPETITOR_STRONGHOLD.competitor_share)
    shape = (n_q, len(REGION_IDS), len(PRODUCT_LINES))
    size = (per_quarter[:, None, None] * region_share[None, :, None] * line_share[None, None, :]
            / our_share[None, :, None] * rng.uniform(0.95, 1.05, shape))
    size[:, REGION_IDS.index(MARKET_OUTGROWS_US.region_id), :] *= _outgrowth(n_q)[:, None]
    q, r, ln, c = (a.ravel() for a in np.meshgrid(np.arange(n_q), np.arange(len(REGION_IDS)),
                                                   np.arange(len(PRODUCT_LINES)), np.arange(len(COMPETITORS)),
                                                   indexing="ij"))
    seg_size = size[q, r, ln]
    rival = seg_size * rival_share[c, r] * rng.uniform(0.95, 1.05, len(q))
    return write_table(out, "market", len(q), {
        "period": Labels(tuple(quarter_label(x) for x in range(Q0, Q_END + 1)), q),
        "region_id": Labels(REGION_IDS, r),
        "product_line": Labels(PRODUCT_LINES, ln),
        "market_size_amount": Numbers(seg_size),
        "competitor": Labels(COMPETITORS, c),
        "competitor_sales_amount": Numbers(rival),
    }, progress=progress)


def _write_intel(out: Path, rng: np.random.Generator, per_quarter: float, progress: bool) -> int:
    quarters = np.arange(Q0, Q_END + 1)
    q, c = (a.ravel() for a in np.meshgrid(quarters, np.arange(len(COMPETITORS)), indexing="ij"))
    count = rng.poisson(per_quarter, len(q))
    item_q, item_c = np.repeat(q, count), np.repeat(c, count)
    region = np.where(rng.random(len(item_q)) < 0.25, -1, rng.integers(0, len(REGION_IDS), len(item_q)))
    kind = choice(rng, (0.2, 0.3, 0.3, 0.2), len(item_q))
    # the stronghold competitor keeps pushing price and campaigns in its region
    extra = np.repeat(quarters, rng.poisson(per_quarter, len(quarters)))
    item_q = np.concatenate([item_q, extra])
    item_c = np.concatenate([item_c, np.full(len(extra), COMPETITORS.index(COMPETITOR_STRONGHOLD.competitor))])
    region = np.concatenate([region, np.full(len(extra), REGION_IDS.index(COMPETITOR_STRONGHOLD.region_id))])
    kind = np.concatenate([kind, 1 + rng.integers(0, 2, len(extra))])
    occurred = uniform_between(rng, MONTH_EDGES[item_q * 3], np.minimum(MONTH_EDGES[item_q * 3 + 3] - SECOND, T_END))
    order = np.argsort(occurred, kind="stable")
    template = rng.integers(0, 3, len(order))
    line = rng.integers(0, len(PRODUCT_LINES), len(order))
    pct = rng.integers(5, 31, len(order))
    summaries = []
    for i, row in enumerate(order):  # a few hundred short texts
        text = INTEL_TEMPLATES[INTEL_KINDS[kind[row]]][template[i]].format(line=PRODUCT_LINES[line[i]], pct=pct[i])
        where = "" if region[row] < 0 else f" in {REGIONS[region[row]].name}"
        summaries.append(f"{COMPETITORS[item_c[row]]} {text}{where}.")
    return write_table(out, "competitor_intel", len(order), {
        "intel_id": Ids("CI", id_width(len(order))),
        "occurred_at": Times(occurred[order]),
        "competitor": Labels(COMPETITORS, item_c[order]),
        "kind": Labels(INTEL_KINDS, kind[order]),
        "region_id": Labels(REGION_IDS, np.maximum(region[order], 0), valid=region[order] >= 0),
        "summary": Strings(pa.array(summaries, pa.string())),
    }, progress=progress)
