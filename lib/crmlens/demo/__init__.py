"""Deterministic demo data with planted truths (`crmlens demo`).

`generate(scale, seed, out)` writes one Parquet file per canonical table (crmlens.schema) to
`<out>/<table>.parquet`: an internally consistent company across six regions, four product lines and
the history DEMO_START..DEMO_END, with the truths of `crmlens.truths` planted in it. Same scale and
seed give byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crmlens.demo._accounts import account_state, write_accounts
from crmlens.demo._activities import build_activities, write_activities
from crmlens.demo._credits import write_credit_notes
from crmlens.demo._finance import write_finance
from crmlens.demo._marketing import account_lead_channel, build_campaigns, generate_leads, write_marketing
from crmlens.demo._opportunities import contract_rows, write_opportunities
from crmlens.demo._org import build_org, write_org
from crmlens.demo._parquet import ROW_GROUP_ROWS, id_width
from crmlens.demo._plan import write_plan
from crmlens.demo._random import rng_for
from crmlens.demo._sales import Deals, deal_details, expansions, new_business, renewals
from crmlens.demo._service import write_service
from crmlens.errors import ParameterError
from crmlens.schema import TABLE_NAMES

__all__ = ["SCALES", "Scale", "generate"]


@dataclass(frozen=True)
class Scale:
    """Size of a demo company.

    won_per_month: new-business deals won per month at the start of the history; everything else
    follows (about 290 opportunities and 3,200 activities per unit).
    """

    name: str
    won_per_month: float
    teams_per_region: int
    reps_per_team: int
    intel_per_quarter: float
    chunk_rows: int = ROW_GROUP_ROWS


SCALES: dict[str, Scale] = {
    s.name: s
    for s in (
        Scale("tiny", won_per_month=5.0, teams_per_region=2, reps_per_team=3, intel_per_quarter=1.5),
        Scale("small", won_per_month=17.0, teams_per_region=2, reps_per_team=5, intel_per_quarter=3.0),
        Scale("default", won_per_month=170.0, teams_per_region=3, reps_per_team=8, intel_per_quarter=5.0),
        Scale("large", won_per_month=3_500.0, teams_per_region=6, reps_per_team=20, intel_per_quarter=8.0),
    )
}


def _scale(name: str) -> Scale:
    try:
        return SCALES[name]
    except (KeyError, TypeError):
        raise ParameterError(
            f"parameter `scale`: unknown value {name!r}; allowed: {', '.join(SCALES)}") from None


def generate(scale: str = "default", seed: int = 7, out: Path | str = "data/demo",
             progress: bool = False) -> dict[str, int]:
    """Generate the demo dataset into `out` and return the row count of every canonical table.

    scale: one of SCALES ("tiny", "small", "default", "large"); seed: any non-negative integer;
    progress: print one line per table written to stderr.
    """
    spec = _scale(scale)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ParameterError(f"parameter `seed`: bad value {seed!r}; allowed: a non-negative integer")
    seed = int(seed)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    chunk = spec.chunk_rows

    rng = rng_for(seed, "org")
    org = build_org(rng, spec.teams_per_region, spec.reps_per_team)
    counts = write_org(target, org, rng, progress)

    new, accounts = new_business(rng_for(seed, "sales"), org, spec.won_per_month)
    lifecycle = renewals(rng_for(seed, "customers"), org, new, accounts)
    extra = expansions(rng_for(seed, "expansions"), org, new, accounts, lifecycle, rng_for(seed, "cross_sell"))
    deals = Deals.concat(new, lifecycle.renewals, extra)
    deals = deals.take(np.argsort(deals.created, kind="stable"))  # opportunity ids follow creation
    del new, lifecycle, extra
    rng = rng_for(seed, "deals")
    details = deal_details(rng, deals)
    account_rng = rng_for(seed, "accounts")
    state = account_state(account_rng, org, deals, accounts)
    counts |= write_opportunities(target, rng, deals, details, state, chunk, progress)
    del details
    contracts = contract_rows(deals)

    rng = rng_for(seed, "marketing")
    campaigns = build_campaigns()
    leads = generate_leads(rng, org, deals, campaigns)
    counts |= write_accounts(target, account_rng, accounts, state,
                             account_lead_channel(leads, deals, accounts.n), progress)
    opp_width = id_width(len(deals.created))
    counts |= write_marketing(target, rng, campaigns, leads, deals, state, accounts, opp_width, chunk, progress,
                              rng_for(seed, "journeys"))

    counts |= write_finance(target, rng_for(seed, "finance"), deals, contracts, state, chunk, progress)
    counts |= write_credit_notes(target, rng_for(seed, "credits"), deals, contracts, state, chunk, progress)
    counts |= write_service(target, rng_for(seed, "service"), deals, contracts, state, chunk, progress)

    rng = rng_for(seed, "activities")
    acts = build_activities(rng, org, deals, accounts, state, leads)
    counts["activities"] = write_activities(target, rng, acts, org, state, opp_width, id_width(leads.n),
                                            chunk, progress)
    del acts
    counts |= write_plan(target, rng_for(seed, "plan"), org, deals, spec.intel_per_quarter, progress)
    return {name: counts[name] for name in TABLE_NAMES}
