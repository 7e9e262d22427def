"""Invoices and payments: receivables with punctual, late, partial and defaulting payers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crmlens.demo._accounts import AccountState
from crmlens.demo._calendar import DAY, T_END, days, floor_day
from crmlens.demo._parquet import Ids, Labels, Numbers, Times, id_width, write_table
from crmlens.demo._random import choice
from crmlens.demo._sales import Deals
from crmlens.schema import INVOICE_STATUSES

PAYERS = ("punctual", "late", "partial", "defaulting")
PAYER_MIX = (0.78, 0.12, 0.05, 0.05)
PAYER_MIX_CHURNED = (0.45, 0.25, 0.15, 0.15)
INSTALMENTS = np.array([1, 2, 4])
INSTALMENT_MIX = (0.6, 0.15, 0.25)


def write_finance(out: Path, rng: np.random.Generator, deals: Deals, contracts: np.ndarray, state: AccountState,
                  chunk_rows: int, progress: bool) -> dict[str, int]:
    """Write invoices (yearly, half-yearly or quarterly instalments) and the payments received."""
    n_contracts = len(contracts)
    contract_width = id_width(n_contracts)
    per_contract = INSTALMENTS[choice(rng, INSTALMENT_MIX, n_contracts)]
    contract = np.repeat(np.arange(n_contracts), per_contract)
    first = np.repeat(np.cumsum(per_contract) - per_contract, per_contract)
    nth = np.arange(len(contract)) - first
    k = per_contract[contract]
    deal = contracts[contract]
    issued = deals.signed[deal] + (nth * (365 // k)) * DAY + days(rng, 0, 3, len(contract))
    share = np.round(deals.amount[deal] / k, 2)
    amount = np.where(nth == k - 1, np.round(deals.amount[deal] - share * (k - 1), 2), share)
    keep = issued <= T_END
    contract, issued, amount = contract[keep], issued[keep], amount[keep]
    n = len(contract)
    due = floor_day(issued) + np.array([30, 45, 60])[choice(rng, (0.6, 0.25, 0.15), n)] * DAY

    account = deals.account[contracts[contract]]
    payer_by_account = np.where(state.churned, choice(rng, PAYER_MIX_CHURNED, state.n),
                                choice(rng, PAYER_MIX, state.n))
    payer = payer_by_account[account]
    void = rng.random(n) < 0.015
    first_at = np.select(
        [payer == 0, payer == 1, payer == 2],
        [issued + days(rng, 3, 28, n), due + days(rng, 5, 90, n), issued + days(rng, 5, 30, n)],
        due + days(rng, 60, 240, n),
    )
    first_paid = ~void & ((payer < 3) | (rng.random(n) < 0.3))
    part = np.round(amount * rng.uniform(0.4, 0.7, n), 2)
    first_amount = np.where(payer == 2, part, amount)
    second_at = due + days(rng, 30, 150, n)
    second_paid = ~void & (payer == 2) & (rng.random(n) < 0.6)
    first_in = first_paid & (first_at <= T_END)
    second_in = second_paid & (second_at <= T_END) & first_in
    fully_paid = first_in & ((payer != 2) | second_in)
    status = np.where(void, INVOICE_STATUSES.index("void"),
                      np.where(fully_paid, INVOICE_STATUSES.index("paid"),
                               np.where(due < floor_day(np.int64(T_END)), INVOICE_STATUSES.index("overdue"),
                                        INVOICE_STATUSES.index("issued"))))
    order = np.argsort(issued, kind="stable")
    counts = {"invoices": write_table(out, "invoices", n, {
        "invoice_id": Ids("IN", id_width(n)),
        "contract_id": Ids("K", contract_width, contract[order] + 1),
        "issued_at": Times(issued[order]),
        "due_date": Times(due[order]),
        "amount": Numbers(amount[order]),
        "status": Labels(INVOICE_STATUSES, status[order]),
    }, chunk_rows=chunk_rows, progress=progress)}

    p_contract = np.concatenate([contract[first_in], contract[second_in]])
    p_at = np.concatenate([first_at[first_in], second_at[second_in]])
    p_amount = np.concatenate([first_amount[first_in], (amount - part)[second_in]])
    order = np.argsort(p_at, kind="stable")
    counts["payments"] = write_table(out, "payments", len(order), {
        "payment_id": Ids("PY", id_width(len(order))),
        "contract_id": Ids("K", contract_width, p_contract[order] + 1),
        "received_at": Times(p_at[order]),
        "amount": Numbers(p_amount[order]),
    }, chunk_rows=chunk_rows, progress=progress)
    return counts
