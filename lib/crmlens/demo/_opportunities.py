"""Writing opportunities, their stage history and contracts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crmlens.demo._accounts import AccountState
from crmlens.demo._calendar import DAY, T_END, floor_day, uniform_between
from crmlens.demo._org import REP_ID_WIDTH
from crmlens.demo._parquet import Ids, Labels, Numbers, Times, id_width, write_table
from crmlens.demo._sales import N_OPEN_STAGES, UNIT_COST, DealDetails, Deals
from crmlens.demo._world import LOSS_REASONS
from crmlens.schema import DEAL_TYPES, DEFAULT_STAGES, FORECAST_CATEGORIES
from crmlens.truths import COMPETITORS, REGION_IDS

OPEN_PROBABILITY = np.array([0.1, 0.25, 0.5, 0.7])
OPEN_FORECAST = np.array([FORECAST_CATEGORIES.index(c) for c in ("pipeline", "pipeline", "best_case", "commit")])


def write_opportunities(out: Path, rng: np.random.Generator, deals: Deals, details: DealDetails,
                        state: AccountState, chunk_rows: int, progress: bool) -> dict[str, int]:
    """Write opportunities (deals are already in creation order), stage history and contracts."""
    n = len(deals.created)
    width = id_width(n)
    closed, won = deals.closed, deals.won
    stage = details.stage
    open_stage = np.clip(stage, 0, N_OPEN_STAGES - 1)
    probability = np.where(closed, won.astype(np.float64),
                           np.clip(OPEN_PROBABILITY[open_stage] * rng.uniform(0.8, 1.2, n), 0.0, 1.0))
    stale = deals.created < T_END - 365 * DAY
    forecast = np.where(closed, np.where(won, FORECAST_CATEGORIES.index("closed"),
                                         FORECAST_CATEGORIES.index("omitted")),
                        np.where(stale, FORECAST_CATEGORIES.index("omitted"), OPEN_FORECAST[open_stage]))
    expected = floor_day(deals.close + uniform_between(rng, np.full(n, -20 * DAY), np.full(n, 25 * DAY)))
    counts = {"opportunities": write_table(out, "opportunities", n, {
        "opportunity_id": Ids("O", width),
        "account_id": Ids("A", state.width, state.number[deals.account]),
        "owner_rep_id": Ids("R", REP_ID_WIDTH, deals.rep + 1),
        "product_id": Ids("P", 2, deals.product + 1),
        "region_id": Labels(REGION_IDS, deals.region),
        "created_at": Times(deals.created),
        "stage": Labels(DEFAULT_STAGES, stage),
        "amount": Numbers(deals.amount),
        "probability": Numbers(np.round(probability, 2)),
        "forecast_category": Labels(FORECAST_CATEGORIES, forecast),
        "expected_close_date": Times(expected),
        "closed_at": Times(deals.close, valid=closed),
        "is_won": Numbers(won, valid=closed),
        "loss_reason": Labels(LOSS_REASONS, details.loss_reason, valid=details.loss_reason >= 0),
        "competitor": Labels(COMPETITORS, details.competitor, valid=details.competitor >= 0),
        "deal_type": Labels(DEAL_TYPES, deals.deal_type),
    }, chunk_rows=chunk_rows, progress=progress)}

    # stage history: every open stage entered, then Won/Lost at the close
    entered = details.entered
    next_entry = np.concatenate([entered[:, 1:], np.full((n, 1), -1)], axis=1)
    exit_at = np.where(next_entry >= 0, next_entry, np.where(closed, deals.close, -1)[:, None])
    row, col = np.nonzero(entered >= 0)
    terminal = np.flatnonzero(closed)
    h_opp = np.concatenate([row, terminal])
    h_stage = np.concatenate([col, np.where(won[terminal], 4, 5)])
    h_entered = np.concatenate([entered[row, col], deals.close[terminal]])
    h_exited = np.concatenate([exit_at[row, col], np.full(len(terminal), -1)])
    order = np.lexsort((h_stage, h_opp))
    counts["opportunity_stage_history"] = write_table(out, "opportunity_stage_history", len(order), {
        "opportunity_id": Ids("O", width, h_opp[order] + 1),
        "stage": Labels(DEFAULT_STAGES, h_stage[order]),
        "entered_at": Times(h_entered[order]),
        "exited_at": Times(h_exited[order], valid=h_exited[order] >= 0),
    }, chunk_rows=chunk_rows, progress=progress)

    booked = contract_rows(deals)
    quantity = deals.quantity[booked]
    counts["contracts"] = write_table(out, "contracts", len(booked), {
        "contract_id": Ids("K", id_width(len(booked))),
        "opportunity_id": Ids("O", width, booked + 1),
        "account_id": Ids("A", state.width, state.number[deals.account[booked]]),
        "product_id": Ids("P", 2, deals.product[booked] + 1),
        "owner_rep_id": Ids("R", REP_ID_WIDTH, deals.rep[booked] + 1),
        "region_id": Labels(REGION_IDS, deals.region[booked]),
        "signed_at": Times(deals.signed[booked]),
        "quantity": Numbers(quantity),
        "amount": Numbers(deals.amount[booked]),
        "cost_amount": Numbers(np.round(quantity * UNIT_COST[deals.product[booked]], 2)),
    }, chunk_rows=chunk_rows, progress=progress)
    return counts


def contract_rows(deals: Deals) -> np.ndarray:
    """Deal index of each contract, in contract-id order (by signature)."""
    booked = np.flatnonzero(deals.booked)
    return booked[np.argsort(deals.signed[booked], kind="stable")]
