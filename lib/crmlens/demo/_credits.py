"""Credit notes: a few customers return part of what they bought (returns, refunds), credited back within
three months of signing. They reduce the customers' net revenue (RFM monetary value, lifetime value) and are
never purchases (`crmlens.metrics.customers.credits_of`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crmlens.demo._accounts import AccountState
from crmlens.demo._calendar import T_END, days
from crmlens.demo._parquet import Ids, Labels, Numbers, Times, id_width, write_table
from crmlens.demo._sales import Deals
from crmlens.truths import REGION_IDS

#: Share of contracts partly credited back, and the share of the units returned (uniform in this range).
CREDIT_RATE = 0.03
RETURNED_SHARE = (0.1, 0.5)
REASONS = ("return", "refund")


def write_credit_notes(out: Path, rng: np.random.Generator, deals: Deals, contracts: np.ndarray,
                       state: AccountState, chunk_rows: int, progress: bool) -> dict[str, int]:
    """Write `credit_notes`: `CREDIT_RATE` of the contracts get one credit note 7–90 days after signing (those
    falling after the demo's end are not written yet), for part of their units at the contract's unit price."""
    contract_width = id_width(len(contracts))
    picked = np.flatnonzero(rng.random(len(contracts)) < CREDIT_RATE)
    deal = contracts[picked]
    credited = deals.signed[deal] + days(rng, 7, 90, len(picked))
    bought = np.maximum(deals.quantity[deal], 1)
    units = np.clip(np.round(bought * rng.uniform(*RETURNED_SHARE, len(picked))), 1, bought).astype(np.int64)
    amount = np.round(deals.amount[deal] * units / bought, 2)
    reason = (rng.random(len(picked)) < 0.3).astype(np.int64)  # 70% returns of goods, 30% refunds
    keep = credited <= T_END
    order = np.flatnonzero(keep)[np.argsort(credited[keep], kind="stable")]
    n = len(order)
    return {"credit_notes": write_table(out, "credit_notes", n, {
        "credit_note_id": Ids("CN", id_width(max(n, 1))),
        "account_id": Ids("A", state.width, state.number[deals.account[deal[order]]]),
        "contract_id": Ids("K", contract_width, picked[order] + 1),
        "product_id": Ids("P", 2, deals.product[deal[order]] + 1),
        "region_id": Labels(REGION_IDS, deals.region[deal[order]]),
        "credited_at": Times(credited[order]),
        "quantity": Numbers(units[order]),
        "amount": Numbers(amount[order]),
        "reason": Labels(REASONS, reason[order]),
    }, chunk_rows=chunk_rows, progress=progress)}
