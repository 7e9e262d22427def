"""Accounts (customers and prospects), their churn, public pool and ownership; contacts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crmlens.demo._calendar import DAY, T_END, days
from crmlens.demo._org import REP_ID_WIDTH, Org, forgetful_reps
from crmlens.demo._parquet import Ids, Labels, Numbers, Strings, Times, id_width, write_table
from crmlens.demo._random import choice, exact_share
from crmlens.demo._sales import Accounts, Deals
from crmlens.demo._world import (
    ACCOUNT_CHANNELS,
    CONTACT_ROLES,
    INDUSTRIES,
    NAME_HEADS,
    NAME_STEMS,
    NAME_TAILS,
    REGIONS,
)
from crmlens.schema import ACCOUNT_LEVELS, SIZE_BANDS
from crmlens.truths import CHURN_DRIVERS, FORGOTTEN_CUSTOMERS, HIGH_VALUE_INDUSTRY, REGION_IDS

CONTRACT_TERM = CHURN_DRIVERS.contract_term_days * DAY
GRACE = CHURN_DRIVERS.grace_days * DAY


@dataclass(frozen=True)
class AccountState:
    """What later tables need to know about each account (index = account index)."""

    number: np.ndarray  # 1-based id number (accounts are numbered by creation)
    created: np.ndarray
    owner: np.ndarray  # current owner rep, -1 in the public pool
    pool_entered: np.ndarray  # -1 when not in the pool
    churn_date: np.ndarray  # last contract + term (customers), else -1
    churned: np.ndarray  # churned by the truths' definition
    forgotten: np.ndarray  # owned by a forgetful rep and left without activity lately
    width: int  # digits of account ids

    @property
    def n(self) -> int:
        return len(self.number)


def account_state(rng: np.random.Generator, org: Org, deals: Deals, accounts: Accounts) -> AccountState:
    """Creation, churn, public pool and current owner of every account."""
    n = accounts.n
    first_deal = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_deal, deals.account, deals.created)
    created = first_deal - days(rng, 0, 120, n)
    last_signed = np.full(n, -1, np.int64)
    booked = deals.booked
    np.maximum.at(last_signed, deals.account[booked], deals.signed[booked])
    churn_date = np.where(last_signed >= 0, last_signed + CONTRACT_TERM, -1)
    churned = (last_signed >= 0) & (churn_date + GRACE <= T_END)

    has_open = np.zeros(n, bool)
    has_open[deals.account[~deals.closed]] = True
    last_close = np.full(n, -1, np.int64)
    np.maximum.at(last_close, deals.account[deals.closed], deals.close[deals.closed])
    stale = ~accounts.is_customer & ~has_open & (last_close <= T_END - 180 * DAY) & (rng.random(n) < 0.85)
    pool_entered = np.where(churned, churn_date + days(rng, 30, 90, n),
                            np.where(stale, last_close + days(rng, 60, 180, n), -1))
    pool_entered = np.where(pool_entered >= 0, np.minimum(pool_entered, T_END), -1)
    owner = np.where(pool_entered >= 0, -1, org.owner_at(accounts.rep, np.full(n, T_END)))

    named = forgetful_reps()
    mine = np.flatnonzero(np.isin(owner, named))
    forgotten = np.zeros(n, bool)
    by_rep = np.searchsorted(named, owner[mine])
    forgotten[mine[exact_share(rng, by_rep, np.full(len(named), FORGOTTEN_CUSTOMERS.share))]] = True

    order = np.argsort(created, kind="stable")
    number = np.empty(n, np.int64)
    number[order] = np.arange(1, n + 1)
    return AccountState(number=number, created=created, owner=owner, pool_entered=pool_entered,
                        churn_date=churn_date, churned=churned, forgotten=forgotten, width=id_width(n))


def _industry(drawn: np.ndarray, band: np.ndarray) -> np.ndarray:
    """The planted high-value industry (`HIGH_VALUE_INDUSTRY`): big accounts (large, enterprise) whose uniform
    draw fell on one of the first industries move to it, so that about `big_share` of them are in it — no extra
    draw, so every other column stays as it was."""
    target = INDUSTRIES.index(HIGH_VALUE_INDUSTRY.industry)
    others = [i for i in range(len(INDUSTRIES)) if i != target]
    moved = others[:round(HIGH_VALUE_INDUSTRY.big_share * len(INDUSTRIES)) - 1]
    return np.where((band >= 2) & np.isin(drawn, moved), target, drawn)


def _names(rng: np.random.Generator, n: int) -> pa.Array:
    parts = [pa.array(words).take(pa.array(rng.integers(0, len(words), n)))
             for words in (NAME_HEADS, NAME_STEMS, NAME_TAILS)]
    return pc.binary_join_element_wise(*parts, " ")


def write_accounts(out: Path, rng: np.random.Generator, accounts: Accounts, state: AccountState,
                   lead_channel: np.ndarray, progress: bool) -> dict[str, int]:
    """Write accounts (in creation order) and their contacts.

    `lead_channel` is, per account, the ACCOUNT_CHANNELS index of the lead it came from, or -1.
    """
    n = accounts.n
    o = np.argsort(state.number)  # rows in id order
    per_region = np.array([len(r.places) for r in REGIONS])
    flat_places = [p for r in REGIONS for p in r.places]
    # the first places of a region (its big cities) get more accounts
    pick = np.minimum(np.floor(rng.power(0.6, n) * per_region[accounts.region]), per_region[accounts.region] - 1)
    place = (np.cumsum(per_region) - per_region)[accounts.region] + pick.astype(np.int64)
    channel = np.where(lead_channel >= 0, lead_channel,
                       np.where(rng.random(n) < 0.75, ACCOUNT_CHANNELS.index("outbound"),
                                choice(rng, np.ones(len(ACCOUNT_CHANNELS) - 1), n)))
    big = accounts.band >= 2
    level = np.where(accounts.is_customer, np.where(big, 0, 1 + (rng.random(n) < 0.3)),
                     np.where(big, 1, 2 - (rng.random(n) < 0.15)))
    in_pool = state.pool_entered >= 0
    counts = {"accounts": write_table(out, "accounts", n, {
        "account_id": Ids("A", state.width),
        "name": Strings(_names(rng, n)),
        "industry": Labels(INDUSTRIES, _industry(rng.integers(0, len(INDUSTRIES), n), accounts.band)[o]),
        "size_band": Labels(SIZE_BANDS, accounts.band[o]),
        "country": Labels(tuple(p[0] for p in flat_places), place[o]),
        "province": Labels(tuple(p[1] for p in flat_places), place[o]),
        "city": Labels(tuple(p[2] for p in flat_places), place[o]),
        "region_id": Labels(REGION_IDS, accounts.region[o]),
        "level": Labels(ACCOUNT_LEVELS, level[o]),
        "source_channel": Labels(ACCOUNT_CHANNELS, channel[o]),
        "owner_rep_id": Ids("R", REP_ID_WIDTH, state.owner[o] + 1, valid=~in_pool[o]),
        "created_at": Times(state.created[o]),
        "is_public_pool": Numbers(in_pool[o]),
        "pool_entered_at": Times(state.pool_entered[o], valid=in_pool[o]),
    }, progress=progress)}

    per_account = 1 + rng.poisson(np.where(accounts.is_customer, 2.0, 0.8))
    acc = np.repeat(np.arange(n), per_account)
    created = np.minimum(state.created[acc] + days(rng, 0, 300, len(acc)), T_END)
    contact_order = np.lexsort((acc, created))
    acc, created = acc[contact_order], created[contact_order]
    owner = state.owner[acc]
    counts["contacts"] = write_table(out, "contacts", len(acc), {
        "contact_id": Ids("C", id_width(len(acc))),
        "account_id": Ids("A", state.width, state.number[acc]),
        "owner_rep_id": Ids("R", REP_ID_WIDTH, owner + 1, valid=owner >= 0),
        "role": Labels(CONTACT_ROLES, choice(rng, (0.2, 0.2, 0.2, 0.2, 0.1, 0.1), len(acc))),
        "created_at": Times(created),
    }, progress=progress)
    return counts
