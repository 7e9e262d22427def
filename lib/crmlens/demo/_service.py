"""Service tickets (with rising complaints about one line and unresolved tickets before churn) and surveys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crmlens.demo._accounts import AccountState
from crmlens.demo._calendar import (
    DAY,
    HOUR,
    MONTH_EDGES,
    Q0,
    Q_END,
    SECOND,
    T_END,
    YEAR,
    days,
    quarter_pos,
    uniform_between,
)
from crmlens.demo._org import REP_ID_WIDTH
from crmlens.demo._parquet import Ids, Labels, Numbers, Times, id_width, write_table
from crmlens.demo._random import choice, expand_counts, systematic_counts
from crmlens.demo._records import Records
from crmlens.demo._sales import Deals
from crmlens.demo._world import PRODUCTS, SURVEY_DRIVERS, TICKET_CATEGORIES
from crmlens.schema import TICKET_PRIORITIES
from crmlens.truths import CSAT_DRIVER, PRODUCT_LINES, RISING_COMPLAINTS

COMPLAINT = TICKET_CATEGORIES.index(RISING_COMPLAINTS.category)
PRODUCT_LINE = np.array([PRODUCT_LINES.index(p.line) for p in PRODUCTS])
TICKETS_PER_CONTRACT_YEAR = 1.0
COMPLAINTS_PER_LINE_QUARTER = 0.02  # of the line's contracts over the whole history
MIN_COMPLAINTS_PER_QUARTER = 5.0  # enough for the planted rise to show in every step at any scale
COMPLAINT_NOISE = 0.08  # quarter-to-quarter wobble (less than the planted rise per quarter)


def _quarter_of(label: str) -> int:
    year, q = (int(x) for x in label.split("-Q"))
    return quarter_pos(year, q)


def _planted_quarters() -> np.ndarray:
    """Offsets (from Q0) of the quarters in which complaints rise."""
    return np.array([_quarter_of(q) - Q0 for q in RISING_COMPLAINTS.quarters])


def _complaint_curve() -> np.ndarray:
    """Complaint intensity multiplier per (product line, quarter Q0..Q_END)."""
    curve = np.ones((len(PRODUCT_LINES), Q_END - Q0 + 1))
    steps = _planted_quarters()
    curve[PRODUCT_LINES.index(RISING_COMPLAINTS.product_line), steps] = np.geomspace(
        1.0, RISING_COMPLAINTS.growth, len(steps))
    return curve


def _pick_contract(rng: np.random.Generator, signed: np.ndarray, pool: np.ndarray, t: np.ndarray) -> np.ndarray:
    """For each time, a random contract of `pool` (sorted by signature) signed within the year before it;
    the latest earlier one if none; -1 if none was signed yet."""
    s = signed[pool]
    hi = np.searchsorted(s, t, side="right")
    lo = np.searchsorted(s, t - YEAR, side="left")
    pick = np.where(hi > lo, lo + (rng.random(len(t)) * (hi - lo)).astype(np.int64), hi - 1)
    return np.where(pick >= 0, pool[np.clip(pick, 0, len(pool) - 1)], -1)


def _last_contract(account: np.ndarray, n_accounts: int) -> np.ndarray:
    """Per account, its latest contract (contracts are in signature order), -1 for none."""
    last = np.full(n_accounts, -1)
    np.maximum.at(last, account, np.arange(len(account)))
    return last


def _responses(rng: np.random.Generator, opened: np.ndarray, priority: np.ndarray,
               median_days: np.ndarray, unresolved: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(opened)
    first = opened + (rng.lognormal(np.log(np.array([24.0, 8.0, 3.0, 1.0])[priority]), 0.8) * HOUR).astype(np.int64)
    resolved = first + (rng.lognormal(np.log(median_days), 0.9, n) * DAY).astype(np.int64)
    first = np.where(first <= T_END, first, -1)
    resolved = np.where(~unresolved & (first >= 0) & (resolved <= T_END), resolved, -1)
    return first, resolved


@dataclass(frozen=True)
class _Tickets(Records):
    contract: np.ndarray  # position in the contracts array
    opened: np.ndarray
    category: np.ndarray  # index into TICKET_CATEGORIES
    kind: np.ndarray  # EVERYDAY, COMPLAINT_WAVE or BEFORE_CHURN


EVERYDAY, COMPLAINT_WAVE, BEFORE_CHURN = 0, 1, 2


def _everyday(rng: np.random.Generator, signed: np.ndarray) -> _Tickets:
    """Questions, defects, requests and billing issues during each contract's year."""
    covered = np.minimum(signed + YEAR, T_END) - signed
    contract = np.repeat(np.arange(len(signed)), rng.poisson(TICKETS_PER_CONTRACT_YEAR * covered / YEAR))
    opened = uniform_between(rng, signed[contract], signed[contract] + covered[contract])
    category = choice(rng, (0.45, 0.25, 0.2, 0.1, 0.0), len(contract))
    return _Tickets(contract, opened, category, np.full(len(contract), EVERYDAY))


def _complaints(rng: np.random.Generator, signed: np.ndarray, product: np.ndarray) -> _Tickets:
    """An exact, flat number of complaints per product line and quarter, rising for the planted line;
    each about a contract of that line signed in the year before."""
    per_line = np.bincount(PRODUCT_LINE[product], minlength=len(PRODUCT_LINES))
    base = np.maximum(MIN_COMPLAINTS_PER_QUARTER, COMPLAINTS_PER_LINE_QUARTER * per_line)
    curve = _complaint_curve()
    wobble = rng.uniform(1.0 - COMPLAINT_NOISE, 1.0 + COMPLAINT_NOISE, curve.shape)
    wobble[PRODUCT_LINES.index(RISING_COMPLAINTS.product_line), _planted_quarters()] = 1.0  # a clean rise
    line, quarter = expand_counts(systematic_counts(rng, base[:, None] * curve * wobble))
    quarter = quarter + Q0
    opened = uniform_between(rng, MONTH_EDGES[quarter * 3], np.minimum(MONTH_EDGES[quarter * 3 + 3] - SECOND, T_END))
    contract = np.full(len(line), -1)
    for ln in range(len(PRODUCT_LINES)):  # four lines
        pool = np.flatnonzero(PRODUCT_LINE[product] == ln)
        if len(pool):
            contract[line == ln] = _pick_contract(rng, signed, pool, opened[line == ln])
    found = contract >= 0
    return _Tickets(contract[found], opened[found], np.full(int(found.sum()), COMPLAINT),
                    np.full(int(found.sum()), COMPLAINT_WAVE))


def _before_churn(rng: np.random.Generator, account: np.ndarray, state: AccountState) -> _Tickets:
    """Tickets churned customers opened in the half year before they left."""
    churned = np.flatnonzero(state.churned)
    who = np.repeat(churned, 1 + rng.poisson(1.3, len(churned)))
    ref = state.churn_date[who]
    contract = _last_contract(account, state.n)[who]
    category = choice(rng, (0.3, 0.4, 0.1, 0.2, 0.0), len(who))
    return _Tickets(contract, uniform_between(rng, ref - 170 * DAY, ref - 5 * DAY), category,
                    np.full(len(who), BEFORE_CHURN))


def write_service(out: Path, rng: np.random.Generator, deals: Deals, contracts: np.ndarray, state: AccountState,
                  chunk_rows: int, progress: bool) -> dict[str, int]:
    """Write tickets and surveys; `contracts` are deal indices in signature order."""
    signed = deals.signed[contracts]
    product = deals.product[contracts]
    account = deals.account[contracts]
    tickets = _Tickets.concat(_everyday(rng, signed), _complaints(rng, signed, product),
                              _before_churn(rng, account, state))
    n = len(tickets.contract)
    kind = tickets.kind
    priority = np.where(kind == EVERYDAY, choice(rng, (0.3, 0.4, 0.2, 0.1), n), choice(rng, (0.1, 0.35, 0.35, 0.2), n))
    fate = rng.random(n)
    never = np.where(kind == BEFORE_CHURN, fate < 0.55, fate < 0.02)
    first, resolved = _responses(rng, tickets.opened, priority, np.where(kind == COMPLAINT_WAVE, 6.0, 2.0), never)
    # a quarter of the churned customers' tickets were resolved only after they left
    late = (kind == BEFORE_CHURN) & (fate >= 0.55) & (fate < 0.8)
    late_resolution = state.churn_date[account[tickets.contract]] + days(rng, 5, 60, n)
    resolved = np.where(late, np.where(late_resolution <= T_END, late_resolution, -1), resolved)

    o = np.argsort(tickets.opened, kind="stable")
    c = tickets.contract[o]
    counts = {"tickets": write_table(out, "tickets", n, {
        "ticket_id": Ids("T", id_width(n)),
        "account_id": Ids("A", state.width, state.number[account[c]]),
        "product_id": Ids("P", 2, product[c] + 1),
        "opened_at": Times(tickets.opened[o]),
        "first_response_at": Times(first[o], valid=first[o] >= 0),
        "resolved_at": Times(resolved[o], valid=resolved[o] >= 0),
        "category": Labels(TICKET_CATEGORIES, tickets.category[o]),
        "priority": Labels(TICKET_PRIORITIES, priority[o]),
    }, chunk_rows=chunk_rows, progress=progress)}
    slow = _slow_first_response(tickets.opened, first, priority)
    counts["surveys"] = _write_surveys(out, rng, deals, contracts, state, progress,
                                       slow=(account[tickets.contract], tickets.opened, slow))
    return counts


def _slow_first_response(opened: np.ndarray, first: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """When each ticket is known to have missed its first-response target (`CSAT_DRIVER.target_hours` by
    priority): at the deadline, when no answer had come by then; -1 if it was met."""
    target = dict(CSAT_DRIVER.target_hours)
    due = opened + (np.array([target[p] for p in TICKET_PRIORITIES])[priority] * HOUR).astype(np.int64)
    missed = (first < 0) | (first > due)
    return np.where(missed, due, -1)


def _after_slow_response(account: np.ndarray, responded: np.ndarray,
                         slow: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Per survey response, whether a ticket of its account opened in the `CSAT_DRIVER.window_days` days before
    it had missed its first-response target by then (a ticket missing it later is not yet known as slow)."""
    t_account, t_opened, t_known = slow
    late = t_known >= 0
    t_account, t_opened, t_known = t_account[late], t_opened[late], t_known[late]
    if not len(t_account) or not len(account):
        return np.zeros(len(account), dtype=bool)
    # one key per (account, second): tickets sorted by it; a survey asks the range of its own account's window
    scale = np.int64(T_END // SECOND + 1)
    key = t_account.astype(np.int64) * scale + t_opened // SECOND
    order = np.argsort(key, kind="stable")
    key, known = key[order], t_known[order]
    base = account.astype(np.int64) * scale
    lo = np.searchsorted(key, base + (responded - CSAT_DRIVER.window_days * DAY) // SECOND, side="left")
    hi = np.searchsorted(key, base + responded // SECOND, side="left")
    # any ticket in [lo, hi) known slow before the response: the earliest "known" time in the range
    out = np.zeros(len(account), dtype=bool)
    has = np.flatnonzero(hi > lo)
    if len(has):
        span = hi[has] - lo[has]
        idx = np.repeat(lo[has], span) + (np.arange(span.sum()) - np.repeat(np.cumsum(span) - span, span))
        hit = known[idx] < np.repeat(responded[has], span)
        out[has] = np.add.reduceat(hit, np.cumsum(span) - span) > 0
    return out


def _write_surveys(out: Path, rng: np.random.Generator, deals: Deals, contracts: np.ndarray,
                   state: AccountState, progress: bool, slow: tuple[np.ndarray, np.ndarray, np.ndarray]) -> int:
    account = deals.account[contracts]
    asked = np.flatnonzero(rng.random(len(contracts)) < 0.55)
    responded = deals.signed[contracts[asked]] + days(rng, 30, 150, len(asked))
    churned = np.flatnonzero(state.churned)
    last_contract = _last_contract(account, state.n)
    exit_survey = churned[rng.random(len(churned)) < 0.5]
    contract = np.concatenate([asked, last_contract[exit_survey]])
    responded = np.concatenate([responded, state.churn_date[exit_survey] - days(rng, 30, 120, len(exit_survey))])
    keep = responded <= T_END
    contract, responded = contract[keep], responded[keep]
    n = len(contract)
    acc = account[contract]
    product = deals.product[contracts[contract]]
    unhappy = state.churned[acc] & (responded >= state.churn_date[acc] - 200 * DAY)
    edge_recent = (PRODUCT_LINE[product] == PRODUCT_LINES.index(RISING_COMPLAINTS.product_line)) & (
        responded >= MONTH_EDGES[_quarter_of(RISING_COMPLAINTS.quarters[0]) * 3])
    csat = 1 + np.where(unhappy, choice(rng, (0.2, 0.3, 0.3, 0.15, 0.05), n),
                        np.where(edge_recent, choice(rng, (0.08, 0.17, 0.3, 0.3, 0.15), n),
                                 choice(rng, (0.04, 0.08, 0.2, 0.4, 0.28), n)))
    # the planted CSAT driver: a slow first response costs a point (no draw: the other tables stay as they were)
    csat = np.maximum(1, csat - np.rint(CSAT_DRIVER.csat_drop).astype(np.int64) * _after_slow_response(acc, responded,
                                                                                                     slow))
    nps = np.clip(np.rint(2.2 * csat - 1.0 + rng.normal(0.0, 1.3, n)), 0, 10).astype(np.int64)
    driver = np.where(unhappy, choice(rng, (0.3, 0.35, 0.15, 0.05, 0.1, 0.05), n),
                      choice(rng, (0.25, 0.2, 0.15, 0.15, 0.15, 0.1), n))
    order = np.argsort(responded, kind="stable")
    c = contracts[contract[order]]
    return write_table(out, "surveys", n, {
        "survey_id": Ids("S", id_width(n)),
        "account_id": Ids("A", state.width, state.number[deals.account[c]]),
        "product_id": Ids("P", 2, deals.product[c] + 1),
        "rep_id": Ids("R", REP_ID_WIDTH, deals.rep[c] + 1),
        "responded_at": Times(responded[order]),
        "csat": Numbers(csat[order]),
        "nps": Numbers(nps[order]),
        "driver": Labels(SURVEY_DRIVERS, driver[order]),
    }, progress=progress)
