"""Rep activities: deal work, account management, lead follow-up, planned follow-ups.

Planted: activity on customers fades over the half year before they churn, and the forgetful reps'
accounts get no activity in the last months, while every other owned account is touched recently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crmlens.demo._accounts import AccountState
from crmlens.demo._calendar import DAY, HOUR, T0, T_END, YEAR, days, uniform_between
from crmlens.demo._marketing import Leads
from crmlens.demo._org import REP_ID_WIDTH, Org
from crmlens.demo._parquet import Ids, Labels, Times, id_width, write_table
from crmlens.demo._random import choice
from crmlens.demo._records import Records
from crmlens.demo._sales import RENEWAL, Accounts, Deals
from crmlens.schema import ACTIVITY_TYPES
from crmlens.truths import FORGOTTEN_CUSTOMERS, REGION_IDS

DEAL_MIX = (0.30, 0.35, 0.12, 0.05, 0.08, 0.10)  # call, email, meeting, visit, demo, task
ACCOUNT_MIX = (0.35, 0.35, 0.15, 0.10, 0.0, 0.05)
DAYS_PER_DEAL_ACTIVITY = 11.0
ACCOUNT_ACTIVITIES_PER_MONTH = 0.8
FADE_DAYS = 180  # activity fades over this many days before churn ...
FADE_TO = 0.05  # ... down to this share
LOST_RENEWAL_WORK = 0.2  # the renewal a churning customer does not sign gets little work
SCHEDULED = np.isin(np.array(ACTIVITY_TYPES), ["meeting", "visit", "demo", "task"])


@dataclass(frozen=True)
class Activities(Records):
    """Activities as arrays; -1 marks an empty reference or time."""

    rep: np.ndarray
    account: np.ndarray
    deal: np.ndarray
    lead: np.ndarray
    kind: np.ndarray
    due: np.ndarray
    occurred: np.ndarray

    @staticmethod
    def make(rep: np.ndarray, kind: np.ndarray, occurred: np.ndarray, *, account: np.ndarray | None = None,
             deal: np.ndarray | None = None, lead: np.ndarray | None = None,
             due: np.ndarray | None = None) -> Activities:
        none = np.full(len(rep), -1, np.int64)
        return Activities(
            rep=rep.astype(np.int32), account=(none if account is None else account).astype(np.int32),
            deal=(none if deal is None else deal).astype(np.int32),
            lead=(none if lead is None else lead).astype(np.int32), kind=kind.astype(np.int8),
            due=none if due is None else due, occurred=occurred,
        )



def _fade(t: np.ndarray, churn: np.ndarray) -> np.ndarray:
    """Share of activity kept at `t` for an account churning at `churn` (1 where it does not churn):
    it falls ever faster over the FADE_DAYS before the churn, down to FADE_TO."""
    before = np.clip((churn - t) / (FADE_DAYS * DAY), 0.0, 1.0)
    return np.where(churn < 0, 1.0, FADE_TO + (1.0 - FADE_TO) * before**2)


def _deal_work(rng: np.random.Generator, deals: Deals, state: AccountState) -> Activities:
    lo = np.maximum(deals.created, T0)
    hi = np.minimum(deals.close, T_END)
    span = np.maximum(hi - lo, 0)
    count = rng.poisson(np.minimum(span / (DAYS_PER_DEAL_ACTIVITY * DAY), 40.0))
    deal = np.repeat(np.arange(len(lo)), count)
    t = uniform_between(rng, lo[deal], hi[deal])
    churn = np.where(state.churned, state.churn_date, -1)[deals.account[deal]]
    lost_renewal = (deals.deal_type[deal] == RENEWAL) & ~deals.won[deal]
    keep = rng.random(len(deal)) < np.where(lost_renewal, LOST_RENEWAL_WORK * _fade(t, churn), 1.0)
    deal, t = deal[keep], t[keep]
    kind = choice(rng, DEAL_MIX, len(deal))
    return Activities.make(deals.rep[deal], kind, t, account=deals.account[deal], deal=deal)


def _planned(rng: np.random.Generator, deals: Deals) -> Activities:
    open_deals = np.flatnonzero(~deals.closed)
    fate = rng.random(len(open_deals))
    deal = open_deals[fate < 0.83]
    overdue = fate[fate < 0.83] >= 0.75
    due = np.where(overdue, T_END - days(rng, 1, 20, len(deal)), T_END + days(rng, 1, 30, len(deal)))
    kind = np.array([ACTIVITY_TYPES.index(k) for k in ("task", "call", "meeting")])[rng.integers(0, 3, len(deal))]
    return Activities.make(deals.rep[deal], kind, np.full(len(deal), -1), account=deals.account[deal], deal=deal,
                           due=due)


def _account_care(rng: np.random.Generator, org: Org, accounts: Accounts, state: AccountState) -> Activities:
    customers = np.flatnonzero(accounts.is_customer)
    start = np.maximum(accounts.first_signed[customers], T0)
    churn = state.churn_date[customers]
    end = np.where(state.churned[customers], churn, T_END)
    months = np.maximum(end - start, 0) / (YEAR / 12)
    acc = np.repeat(customers, rng.poisson(ACCOUNT_ACTIVITIES_PER_MONTH * months))
    t = uniform_between(rng, np.maximum(accounts.first_signed[acc], T0),
                        np.where(state.churned[acc], state.churn_date[acc], T_END))
    keep = rng.random(len(acc)) < _fade(t, np.where(state.churned[acc], state.churn_date[acc], -1))
    acc, t = acc[keep], t[keep]
    return Activities.make(org.owner_at(accounts.rep[acc], t), choice(rng, ACCOUNT_MIX, len(acc)), t, account=acc)


def _lead_follow_up(rng: np.random.Generator, leads: Leads) -> Activities:
    first = np.flatnonzero(leads.first_response >= 0)
    nurtured = np.flatnonzero((leads.mql >= 0) & (leads.owner >= 0))
    upto = np.where(leads.sql[nurtured] >= 0, leads.sql[nurtured], leads.mql[nurtured] + 20 * DAY)
    t2 = uniform_between(rng, leads.mql[nurtured], np.minimum(upto, T_END))
    lead = np.concatenate([first, nurtured])
    t = np.concatenate([leads.first_response[first], t2])
    kind = np.array([ACTIVITY_TYPES.index("call"), ACTIVITY_TYPES.index("email")])[rng.integers(0, 2, len(lead))]
    return Activities.make(leads.owner[lead], kind, t, lead=lead)


def _recent_care(rng: np.random.Generator, done: Activities, state: AccountState) -> tuple[Activities, np.ndarray]:
    """Drop the forgotten accounts' recent activity; touch every other owned account lacking one."""
    quiet_since = T_END - (FORGOTTEN_CUSTOMERS.inactive_days + 15) * DAY
    on_account = done.account >= 0
    recent = on_account & (done.occurred > quiet_since)
    drop = recent & state.forgotten[np.maximum(done.account, 0)]
    last = np.full(state.n, -1, np.int64)
    np.maximum.at(last, done.account[on_account & ~drop], done.occurred[on_account & ~drop])
    window = FORGOTTEN_CUSTOMERS.inactive_days * DAY
    lacking = (state.owner >= 0) & ~state.forgotten & (last < T_END - window) & (rng.random(state.n) < 0.95)
    acc = np.flatnonzero(lacking)
    t = T_END - days(rng, 1, FORGOTTEN_CUSTOMERS.inactive_days - 5, len(acc))
    kind = choice(rng, ACCOUNT_MIX, len(acc))
    return Activities.make(state.owner[acc], kind, t, account=acc), ~drop


def build_activities(rng: np.random.Generator, org: Org, deals: Deals, accounts: Accounts,
                     state: AccountState, leads: Leads) -> Activities:
    """All activities, ordered by time (occurred, else due)."""
    done = Activities.concat(_deal_work(rng, deals, state), _account_care(rng, org, accounts, state),
                             _lead_follow_up(rng, leads))
    touches, keep = _recent_care(rng, done, state)
    acts = Activities.concat(done.take(np.flatnonzero(keep)), touches, _planned(rng, deals))
    when = np.where(acts.occurred >= 0, acts.occurred, acts.due)
    return acts.take(np.argsort(when, kind="stable"))


def write_activities(out: Path, rng: np.random.Generator, acts: Activities, org: Org, state: AccountState,
                     opp_width: int, lead_width: int, chunk_rows: int, progress: bool) -> int:
    """Write activities; scheduled kinds (meetings, visits, demos, tasks) carry a due time."""
    n = len(acts.rep)
    done = acts.occurred >= 0
    scheduled = SCHEDULED[acts.kind] & done
    booked_for = np.maximum(acts.occurred - days(rng, 0, 2, n), T0)
    due = np.where(done, np.where(scheduled, booked_for, -1), acts.due)
    completed = np.minimum(acts.occurred + (rng.random(n) * 2 * HOUR).astype(np.int64), T_END)
    marked = done & (rng.random(n) < 0.95)
    account = np.maximum(acts.account, 0)
    return write_table(out, "activities", n, {
        "activity_id": Ids("AC", id_width(n)),
        "rep_id": Ids("R", REP_ID_WIDTH, acts.rep + 1),
        "region_id": Labels(REGION_IDS, org.rep_region[acts.rep]),
        "account_id": Ids("A", state.width, state.number[account], valid=acts.account >= 0),
        "opportunity_id": Ids("O", opp_width, acts.deal + 1, valid=acts.deal >= 0),
        "lead_id": Ids("L", lead_width, acts.lead + 1, valid=acts.lead >= 0),
        "activity_type": Labels(ACTIVITY_TYPES, acts.kind),
        "due_at": Times(due, valid=due >= 0),
        "occurred_at": Times(acts.occurred, valid=done),
        "completed_at": Times(completed, valid=marked),
    }, chunk_rows=chunk_rows, progress=progress)
