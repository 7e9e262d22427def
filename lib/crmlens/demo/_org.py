"""The organisation: regions, teams, reps (with hires, leavers and successors) and products."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from crmlens.demo._calendar import DAY, NEVER, T0, T_END, year_start
from crmlens.demo._parquet import Ids, Labels, Numbers, Strings, Times, write_table
from crmlens.demo._world import FAMILY_NAMES, GIVEN_NAMES, PRODUCTS, REGIONS
from crmlens.truths import FORGOTTEN_CUSTOMERS, REGION_IDS, TEAM_BELOW_TARGET

REP_ID_WIDTH = 4


def rep_index(rep_id: str) -> int:
    """Position of a rep (`R0004` → 3) in the rep arrays."""
    return int(rep_id[1:]) - 1


def forgetful_reps() -> np.ndarray:
    """Sorted positions of the reps named by FORGOTTEN_CUSTOMERS."""
    return np.sort([rep_index(r) for r in FORGOTTEN_CUSTOMERS.rep_ids])


@dataclass(frozen=True)
class Org:
    """Teams and reps as arrays (index = position; ids are 1-based numbers or labels)."""

    team_region: np.ndarray  # region index per team
    team_labels: tuple[str, ...]  # team_id per team
    team_weight: np.ndarray  # share of new business per team (sums to 1)
    team_manager: np.ndarray  # rep index of each team's manager
    team_first_rep: np.ndarray  # reps of team t are team_first_rep[t] .. team_first_rep[t + 1] - 1
    rep_team: np.ndarray
    rep_region: np.ndarray
    rep_hired: np.ndarray  # us
    rep_left: np.ndarray  # us, NEVER while active
    rep_successor: np.ndarray  # rep index taking over the accounts of a leaver (self when active)
    rep_win_weight: np.ndarray
    rep_loss_weight: np.ndarray

    @property
    def n_reps(self) -> int:
        return len(self.rep_team)

    def employed(self, rep: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Whether each rep worked here during the whole of [start, end]."""
        return (self.rep_hired[rep] <= start) & (self.rep_left[rep] >= end)

    def owner_at(self, rep: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Who owns an account first owned by `rep`, at time `t` (its successor once the rep left)."""
        return np.where(t < self.rep_left[rep], rep, self.rep_successor[rep])


def build_org(rng: np.random.Generator, teams_per_region: int, reps_per_team: int) -> Org:
    """Teams per region, reps per team; named reps of the truths are active long-timers, not managers."""
    n_regions = len(REGIONS)
    n_teams = n_regions * teams_per_region
    n_reps = n_teams * reps_per_team
    team_region = np.repeat(np.arange(n_regions), teams_per_region)
    team_labels = tuple(f"{REGION_IDS[r]}-{k + 1}" for r in range(n_regions) for k in range(teams_per_region))
    if TEAM_BELOW_TARGET.team_id not in team_labels:
        raise ValueError(f"scale has no team {TEAM_BELOW_TARGET.team_id!r}")
    named = forgetful_reps()
    if named.max() >= n_reps:
        raise ValueError(f"scale has only {n_reps} reps; the truths name {FORGOTTEN_CUSTOMERS.rep_ids}")

    region_weight = np.array([r.weight for r in REGIONS])
    team_weight = region_weight[team_region] / teams_per_region * rng.uniform(0.85, 1.15, n_teams)
    team_weight /= team_weight.sum()

    rep_team = np.repeat(np.arange(n_teams), reps_per_team)
    team_first_rep = np.arange(n_teams + 1) * reps_per_team
    is_named = np.isin(np.arange(n_reps), named)
    # the manager is the first rep of the team who is not named by a truth
    candidates = np.where(is_named, n_reps, np.arange(n_reps))
    team_manager = np.minimum.reduceat(candidates, team_first_rep[:-1])
    is_manager = np.isin(np.arange(n_reps), team_manager)

    veteran = is_named | is_manager | (rng.random(n_reps) < 0.85)
    hired = np.where(
        veteran,
        rng.integers(year_start(2015), year_start(2022) + 300 * DAY, n_reps),
        rng.integers(T0 + 30 * DAY, T_END - 270 * DAY, n_reps),
    )
    hired = np.where(is_manager, np.minimum(hired, year_start(2020)), hired)
    may_leave = ~is_named & ~is_manager & (rng.random(n_reps) < 0.09)
    earliest_exit = np.maximum(hired + 240 * DAY, T0 + 150 * DAY)
    leaves = may_leave & (earliest_exit < T_END - 60 * DAY)
    exit_at = earliest_exit + (rng.random(n_reps) * (T_END - 60 * DAY - earliest_exit)).astype(np.int64)
    left = np.where(leaves, exit_at, NEVER)

    successor = np.arange(n_reps)
    for rep in np.flatnonzero(leaves):  # a handful of reps: a loop over the dimension is fine
        team = rep_team[rep]
        mates = np.arange(team_first_rep[team], team_first_rep[team + 1])
        ok = mates[(left[mates] == NEVER) & (hired[mates] < left[rep])]
        successor[rep] = ok[rng.integers(len(ok))] if len(ok) else team_manager[team]

    return Org(
        team_region=team_region, team_labels=team_labels, team_weight=team_weight,
        team_manager=team_manager, team_first_rep=team_first_rep, rep_team=rep_team,
        rep_region=team_region[rep_team], rep_hired=hired.astype(np.int64), rep_left=left,
        rep_successor=successor, rep_win_weight=rng.lognormal(0.0, 0.35, n_reps),
        rep_loss_weight=rng.lognormal(0.0, 0.2, n_reps),
    )


def write_org(out: Path, org: Org, rng: np.random.Generator, progress: bool) -> dict[str, int]:
    """Write regions, teams, reps and products."""
    counts = {}
    counts["regions"] = write_table(out, "regions", len(REGIONS), {
        "region_id": Strings(pa.array(REGION_IDS)),
        "name": Strings(pa.array([r.name for r in REGIONS])),
        "country": Strings(pa.array([r.country for r in REGIONS])),
    }, progress=progress)
    n_teams = len(org.team_labels)
    counts["teams"] = write_table(out, "teams", n_teams, {
        "team_id": Strings(pa.array(org.team_labels)),
        "name": Strings(pa.array([f"{REGIONS[r].name} Team {label.split('-')[1]}"
                                  for r, label in zip(org.team_region, org.team_labels, strict=True)])),
        "region_id": Labels(REGION_IDS, org.team_region),
        "manager_rep_id": Ids("R", REP_ID_WIDTH, org.team_manager + 1),
    }, progress=progress)
    n = org.n_reps
    given = rng.integers(len(GIVEN_NAMES), size=n)
    family = rng.integers(len(FAMILY_NAMES), size=n)
    names = [f"{GIVEN_NAMES[g]} {FAMILY_NAMES[f]}" for g, f in zip(given, family, strict=True)]
    counts["reps"] = write_table(out, "reps", n, {
        "rep_id": Ids("R", REP_ID_WIDTH),
        "name": Strings(pa.array(names)),
        "team_id": Labels(org.team_labels, org.rep_team),
        "region_id": Labels(REGION_IDS, org.rep_region),
        "hired_at": Times(org.rep_hired),
        "is_active": Numbers(org.rep_left == NEVER),
    }, progress=progress)
    counts["products"] = write_table(out, "products", len(PRODUCTS), {
        "product_id": Ids("P", 2),
        "name": Strings(pa.array([p.name for p in PRODUCTS])),
        "product_line": Strings(pa.array([p.line for p in PRODUCTS])),
        "category": Strings(pa.array([p.category for p in PRODUCTS])),
        "list_price": Numbers(np.array([p.list_price for p in PRODUCTS])),
        "unit_cost": Numbers(np.array([round(p.list_price * p.cost_ratio, 2) for p in PRODUCTS])),
    }, progress=progress)
    return counts
