"""Regions & teams: geography, leaderboards (排行榜), team effectiveness and customer follow-up (跟进, 公海).

Pure functions over validated frames (see `crmlens.data.Slice`). Multi-table functions take the slice's
``frames`` mapping and a `KpiContext`; a table a function needs and the frames lack raises a `SchemaError`
naming it (notebooks guard sections with ``nb.when``). Optional tables (contracts for customers, market for
market potential, activities for active reps...) are used when present.

Conventions:

* **bookings**: amount of won opportunities closed in the period, credited to ``owner_rep_id`` and, through
  the reps table, to the rep's team and region (``crmlens.truths``);
* **reference time** of follow-up metrics: the as-of time, but never later than the period end (the slice
  holds no activity after the period);
* rankings use ``method="min"`` (ties share the best rank) and a deterministic order (rank, name, key).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from crmlens.errors import ParameterError, SchemaError
from crmlens.kpis import KpiContext, register_kpi
from crmlens.metrics.common import (
    check_choice,
    closed_in_period,
    in_period,
    isin,
    lookup,
    map_keys,
    memo_by_inputs,
    memo_small,
    ratio,
    ratio_series,
    target_periods,
    won_in_period,
    won_mask,
)
from crmlens.periods import Period, parse_period

AREA = "regions_teams"
Frames = Mapping[str, pd.DataFrame]

#: Geography drill levels, from the coarsest; each level's path includes the levels before it.
GEO_LEVELS: tuple[str, ...] = ("region", "country", "province", "city")
_GEO_COLUMNS = {"region": "region_id", "country": "country", "province": "province", "city": "city"}
#: Label used where an account (or its geography) is unknown.
UNKNOWN = "(unknown)"
#: Grouping levels of leaderboards and team metrics.
GROUP_LEVELS: tuple[str, ...] = ("rep", "team", "region")
_GROUP_KEYS = {"rep": "rep_id", "team": "team_id", "region": "region_id"}
#: Weights of account levels (客户级别) in the call-next score; unknown levels weigh 1.
LEVEL_WEIGHTS: dict[str, float] = {"A": 3.0, "B": 2.0, "C": 1.0}
#: Days of silence at which an account's staleness reaches its maximum (1.0) in the call-next score.
STALENESS_CAP_DAYS = 365


# ---------------------------------------------------------------------------------------------- helpers


def _need(frames: Frames, *tables: str) -> None:
    missing = [t for t in tables if t not in frames]
    if missing:
        raise SchemaError(f"needs table{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                          f"the frames have: {', '.join(frames) or 'none'}")


def _col(df: pd.DataFrame, name: str, dtype: str = "string") -> pd.Series:
    """Column `name`, or an all-missing column of `dtype` when the frame lacks it (optional columns)."""
    if name in df.columns:
        return df[name]
    return pd.Series(pd.NA if dtype != "datetime64[us]" else pd.NaT, index=df.index, dtype=dtype)


def _in_region(df: pd.DataFrame, ctx: KpiContext, column: str = "region_id") -> pd.DataFrame:
    """Rows of the context's region (all rows for "all" or when the frame has no region column)."""
    if ctx.region == "all" or column not in df.columns:
        return df
    return df[df[column].eq(ctx.region).fillna(False).astype(bool)]


def reference_time(ctx: KpiContext) -> pd.Timestamp:
    """The "now" of follow-up metrics: the as-of time, but not later than the period end."""
    end = pd.Timestamp(ctx.period_end)
    return min(pd.Timestamp(ctx.as_of), end) if ctx.as_of is not None else end


def history_periods_for(period: Period, as_of: pd.Timestamp | None, days: int) -> int:
    """How many periods of `period`'s kind `Slice.history` must load (ending with `period`) to see every
    activity of the `days` days before the reference time (as-of, capped at the period end)."""
    end = period.end if as_of is None else min(pd.Timestamp(as_of), period.end)
    since = end - pd.Timedelta(days=days)
    length = max((period.end - period.start).days, 1)
    behind = (period.start - since).days
    return 1 + max(0, math.ceil(behind / length))


def last_activities(s: Any, days: int | None = None) -> pd.DataFrame:
    """Each account's latest activity before the slice's reference time (as-of, capped at the period end),
    among the activities of the periods covering `days` days back (`history_periods_for`; default: the
    slice's `forgotten_days`, at least `STALENESS_CAP_DAYS` so that call-next scores see a year): the ``activities``
    frame that `account_follow_up`, `forgotten_by_rep` and `call_next` need — columns account_id and
    occurred_at, one row per account — computed in the engine by `Slice.latest` instead of reading the history
    (on the 10M-activity demo, five quarters are 4.6M rows). Same results as passing the history itself:
    ``s.tables.with_frames(activities=last_activities(s, days))``."""
    days = days if days is not None else max(s.params.forgotten_days, STALENESS_CAP_DAYS)
    ref = reference_time(KpiContext(period_start=s.period.start, period_end=s.period.end, as_of=s.as_of))
    return s.latest("activities", "occurred_at", "account_id", before=ref,
                    n_periods=history_periods_for(s.period, s.as_of, days))


def _rows(frame: pd.DataFrame, mask: pd.Series, *columns: str) -> pd.DataFrame:
    """The rows of `mask`, with only the named columns the frame has: filtering a million activities copies
    every text column, and a reduction needs two or three of them."""
    return frame.loc[mask.to_numpy(), [c for c in columns if c in frame.columns]]


@memo_small
def _reps_frame(frames: Frames) -> pd.DataFrame:
    """rep_id, rep name, team_id, team name, region_id, is_active (from reps/teams when present)."""
    cols = ["rep_id", "rep_name", "team_id", "team_name", "region_id", "is_active"]
    if "reps" not in frames:
        return pd.DataFrame(columns=cols).astype({"rep_id": "string", "is_active": "boolean"})
    reps = frames["reps"]
    out = pd.DataFrame({"rep_id": reps["rep_id"].astype("string"),
                        "rep_name": _col(reps, "name").astype("string"),
                        "team_id": _col(reps, "team_id").astype("string"),
                        "region_id": _col(reps, "region_id").astype("string"),
                        "is_active": _col(reps, "is_active", "boolean").astype("boolean")})
    if "teams" in frames and "name" in frames["teams"].columns:
        names = frames["teams"].drop_duplicates("team_id").set_index("team_id")["name"]
        out["team_name"] = out["team_id"].map(names).astype("string")
    else:
        out["team_name"] = out["team_id"]
    return out[cols].reset_index(drop=True)


@memo_small
def _names(frames: Frames, by: str) -> pd.Series:
    """Display names of reps, teams or regions keyed by id (empty when the dimension is absent)."""
    table = {"rep": "reps", "team": "teams", "region": "regions"}[by]
    if table not in frames or "name" not in frames[table].columns:
        return pd.Series(dtype="string")
    dim = frames[table].drop_duplicates(_GROUP_KEYS[by])
    return pd.Series(dim["name"].astype("string").to_numpy(), index=dim[_GROUP_KEYS[by]].astype("string"))


@memo_small
def _entities(frames: Frames, ctx: KpiContext, by: str) -> pd.Index:
    """The reps (active ones), teams or regions of the context's region, from their dimension table (empty if
    absent)."""
    table = {"rep": "reps", "team": "teams", "region": "regions"}[by]
    if table not in frames:
        return pd.Index([], dtype="string")
    dim = _in_region(frames[table], ctx)
    if by == "rep" and "is_active" in dim.columns:
        dim = dim[dim["is_active"].fillna(True).astype(bool)]
    return pd.Index(dim[_GROUP_KEYS[by]].dropna().astype("string").unique(), dtype="string")


def _group_of(frames: Frames, rep_ids: pd.Series, by: str) -> pd.Series:
    """The team or region of each rep (the rep itself for by="rep"); unknown reps map to UNKNOWN."""
    rep_ids = rep_ids.astype("string")
    if by == "rep":
        return rep_ids
    return map_keys(rep_ids, _rep_lookup(frames, by)).fillna(UNKNOWN).astype("string")


@memo_small
def _rep_lookup(frames: Frames, by: str) -> pd.Series:
    """The team or region of each rep id."""
    return _reps_frame(frames).drop_duplicates("rep_id").set_index("rep_id")[_GROUP_KEYS[by]]


def rank_with_change(values: pd.Series, previous: pd.Series, *, ascending: bool = False) -> pd.DataFrame:
    """Rank (1 = best, ties share the best rank: method "min") of `values` and of `previous` (indexed by the
    same keys), and the change: ``rank_change = comparison_rank − rank`` (positive = moved up; empty when
    either rank is missing). Missing values get no rank."""
    current = values.astype("float64")
    before = previous.reindex(current.index).astype("float64")
    rank = current.rank(method="min", ascending=ascending).astype("Int64")
    before_rank = before.rank(method="min", ascending=ascending).astype("Int64")
    return pd.DataFrame({"rank": rank, "comparison_rank": before_rank,
                         "rank_change": (before_rank - rank).astype("Int64")}, index=current.index)


# ---------------------------------------------------------------------------------------------- deals


def deal_types_known(opportunities: pd.DataFrame) -> bool:
    """True when ``deal_type`` tells new business from sales to existing customers: some deal is not "new".
    (A source whose deals are all "new" — e.g. a mapping that sets a constant — carries no information.)"""
    deal_type = _col(opportunities, "deal_type")
    return bool((deal_type.notna() & deal_type.ne("new").fillna(False).astype(bool)).any())


@memo_by_inputs
def first_won_deals(opportunities: pd.DataFrame, ctx: KpiContext,
                    history: pd.DataFrame | None = None) -> pd.DataFrame:
    """The won deals that made an account a customer in the period: per account, its first won deal when
    that closed in the period.

    An account counts when (1) it has a won deal closed in the period, (2) no won deal of it closed before
    the period in `opportunities` or `history` (earlier opportunities, e.g. ``s.history("opportunities", 8)``;
    a slice alone holds only deals active in the period) and (3) that deal is new business (``deal_type`` is
    "new" or unknown — upsell, cross-sell and renewal deals are sold to existing customers).
    Returns the deals (one per account) with their columns.
    """
    parts = [opportunities] if history is None or history.empty else [history, opportunities]
    # the first row of each opportunity (history first), as concat + drop_duplicates would keep it — decided on
    # the ids alone, so that only the won deals' rows are copied (8 quarters of history are a million rows)
    ids = pd.concat([f["opportunity_id"] for f in parts], ignore_index=True)
    first_row = ~ids.duplicated().to_numpy()
    won_parts, start = [], 0
    for f in parts:
        keep = first_row[start:start + len(f)] & (won_mask(f) & f["closed_at"].notna() & f["account_id"].notna()
                                                  ).to_numpy(dtype=bool)
        won_parts.append(f[keep])
        start += len(f)
    won = pd.concat(won_parts, ignore_index=True) if len(won_parts) > 1 else won_parts[0].reset_index(drop=True)
    won = won.sort_values(["closed_at", "opportunity_id"], kind="mergesort")
    first = won.drop_duplicates("account_id")
    first = first[in_period(first["closed_at"], ctx)]
    deal_type = _col(first, "deal_type")
    first = first[deal_type.isna() | deal_type.eq("new").fillna(False).astype(bool)]
    return _in_region(first, ctx).reset_index(drop=True)


# ------------------------------------------------------------------------------------------- geography


def _geo_of_accounts(accounts: pd.DataFrame | None) -> pd.DataFrame:
    cols = ["country", "province", "city"]
    if accounts is None:
        return pd.DataFrame(columns=["account_id", *cols]).astype("string").set_index("account_id")
    geo = pd.DataFrame({c: _col(accounts, c).astype("string") for c in cols})
    geo.index = accounts["account_id"].astype("string")
    return geo[~geo.index.duplicated()]


def _with_geo(rows: pd.DataFrame, geo: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"region_id": rows["region_id"].astype("string").fillna(UNKNOWN).to_numpy(),
                        "account_id": rows["account_id"].astype("string").to_numpy()}, index=rows.index)
    for c in ("country", "province", "city"):
        out[c] = map_keys(out["account_id"], geo[c]).astype("string").fillna(UNKNOWN)
    return out


def _market_by_region(market: pd.DataFrame, ctx: KpiContext) -> pd.Series:
    """Market size per region for the period: segments de-duplicated by (period, region_id, product_line),
    each market period weighted by the share of it that overlaps the analysed period."""
    segments = _in_region(market, ctx).drop_duplicates(["period", "region_id", "product_line"])
    weights = {}
    for label in segments["period"].dropna().unique():
        try:
            p = parse_period(str(label))
        except ParameterError:
            continue
        overlap = (min(p.end, ctx.period_end) - max(p.start, ctx.period_start)) / (p.end - p.start)
        weights[label] = max(0.0, float(overlap))
    weight = segments["period"].map(weights).astype("float64").fillna(0.0)
    sized = segments.assign(_w=segments["market_size_amount"].astype("float64") * weight)
    sized = sized[weight > 0]
    return sized.groupby(sized["region_id"].astype("string"))["_w"].sum(min_count=1)


def geography(frames: Frames, ctx: KpiContext, *, level: str = "region") -> pd.DataFrame:
    """Sales by geography at `level` (region | country | province | city), one row per place with its path.

    Columns: region_id … `level` (the path; missing places are "(unknown)"), n_closed, n_won, win_rate,
    bookings_amount, n_customers (accounts with a won deal closed, or a contract signed, in the period),
    sales_cycle_days (median days from creation to close of the won deals), and at region level
    market_size_amount (the `market` table, segments de-duplicated) and market_share_rate (bookings /
    market size); below region level the market has no figures (empty). A region's deals are placed by
    the deal's region_id, countries/provinces/cities by the deal's account. Needs opportunities.
    """
    check_choice("level", level, GEO_LEVELS)
    _need(frames, "opportunities")
    path = [_GEO_COLUMNS[lv] for lv in GEO_LEVELS[: GEO_LEVELS.index(level) + 1]]
    geo = _geo_of_accounts(frames.get("accounts"))
    opps = _in_region(frames["opportunities"], ctx)
    closed = closed_in_period(opps, ctx)
    deals = _with_geo(closed, geo)
    deals["is_won"] = won_mask(closed).to_numpy()
    deals["amount"] = closed["amount"].astype("float64").where(deals["is_won"], 0.0).fillna(0.0).to_numpy()
    cycle = (closed["closed_at"] - _col(closed, "created_at", "datetime64[us]")).dt.total_seconds() / 86400
    deals["cycle_days"] = cycle.where(deals["is_won"]).to_numpy()
    grouped = deals.groupby(path, dropna=False)
    out = pd.DataFrame({"n_closed": grouped.size(), "n_won": grouped["is_won"].sum(),
                        "bookings_amount": grouped["amount"].sum(),
                        "sales_cycle_days": grouped["cycle_days"].median()})
    buyers = [deals.loc[deals["is_won"], [*path, "account_id"]]]
    if "contracts" in frames:
        contracts = _in_region(frames["contracts"], ctx)
        signed = contracts[in_period(contracts["signed_at"], ctx)]
        buyers.append(_with_geo(signed, geo)[[*path, "account_id"]])
    customers = pd.concat(buyers, ignore_index=True).dropna(subset=["account_id"])
    out = out.join(customers.groupby(path)["account_id"].nunique().rename("n_customers"), how="outer")
    if level == "region":
        for region in _entities(frames, ctx, "region").difference(out.index):
            out.loc[region] = np.nan
    out = out.reset_index()
    for c in ("n_closed", "n_won", "n_customers"):
        out[c] = out[c].fillna(0).astype("int64")
    out["bookings_amount"] = out["bookings_amount"].fillna(0.0)
    out["win_rate"] = ratio_series(out["n_won"], out["n_closed"])
    if level == "region" and "market" in frames:
        size = _market_by_region(frames["market"], ctx)
        out["market_size_amount"] = out["region_id"].map(size).astype("float64")
    else:
        out["market_size_amount"] = np.nan
    out["market_share_rate"] = ratio_series(out["bookings_amount"], out["market_size_amount"])
    cols = [*path, "n_closed", "n_won", "win_rate", "bookings_amount", "n_customers", "sales_cycle_days",
            "market_size_amount", "market_share_rate"]
    out = out[cols].sort_values(["bookings_amount", *path], ascending=[False, *[True] * len(path)])
    return out.reset_index(drop=True)


def describe_geography(result: pd.DataFrame) -> str:
    """One sentence on where the bookings come from (and the market share at region level)."""
    if result.empty or result["bookings_amount"].sum() <= 0:
        return "No deal was won in this slice, so there is no geography of bookings to show."
    key = next(c for c in ("city", "province", "country", "region_id") if c in result.columns)
    top = result.iloc[0]
    share = top["bookings_amount"] / result["bookings_amount"].sum()
    rate = f", win rate {top['win_rate']:.0%}" if pd.notna(top["win_rate"]) else ""
    if len(result) == 1:
        text = (f"All bookings ({top['bookings_amount']:,.0f}) come from {top[key]} ({int(top['n_customers'])} "
                f"customers{rate})")
    else:
        text = (f"{top[key]} brings the most bookings ({top['bookings_amount']:,.0f}, {share:.0%} of the total, "
                f"{int(top['n_customers'])} customers{rate}) of {len(result)} places")
    market = result.dropna(subset=["market_share_rate"])
    if key == "region_id" and len(market) > 1:
        low, high = market.nsmallest(1, "market_share_rate").iloc[0], market.nlargest(1, "market_share_rate").iloc[0]
        text += (f"; our market share ranges from {low['market_share_rate']:.0%} in {low['region_id']} to "
                 f"{high['market_share_rate']:.0%} in {high['region_id']}")
    return text + "."


# ------------------------------------------------------------------------------------------ leaderboards


@dataclass(frozen=True)
class LeaderboardMetric:
    """A leaderboard metric: its label, the tables it needs and how it rolls up from rep components."""

    name: str
    label: str
    tables: tuple[str, ...]
    numerator: str
    denominator: str | None = None  # a rate: numerator / denominator; None: a sum


LEADERBOARD_METRICS: dict[str, LeaderboardMetric] = {m.name: m for m in (
    LeaderboardMetric("bookings_amount", "Bookings (won amount)", ("opportunities",), "bookings_amount"),
    LeaderboardMetric("n_won", "Won deals", ("opportunities",), "n_won"),
    LeaderboardMetric("win_rate", "Win rate", ("opportunities",), "n_won", "n_closed"),
    LeaderboardMetric("n_new_opportunities", "New opportunities", ("opportunities",), "n_new_opportunities"),
    LeaderboardMetric("n_new_customers", "New customers", ("opportunities",), "n_new_customers"),
    LeaderboardMetric("contract_amount", "Contract amount", ("contracts",), "contract_amount"),
    LeaderboardMetric("n_contracts", "Contracts signed", ("contracts",), "n_contracts"),
    LeaderboardMetric("payments_amount", "Payments received", ("payments", "contracts"), "payments_amount"),
    LeaderboardMetric("n_activities", "Follow-up activities", ("activities",), "n_activities"),
    LeaderboardMetric("attainment_rate", "Target attainment", ("opportunities", "targets"), "bookings_amount",
                      "target_amount"),
)}


def leaderboard_tables(metric: str) -> tuple[str, ...]:
    """The tables leaderboard `metric` needs (for ``nb.when``)."""
    check_choice("metric", metric, tuple(LEADERBOARD_METRICS))
    return LEADERBOARD_METRICS[metric].tables


def _count_by(keys: pd.Series, name: str) -> pd.Series:
    return keys.dropna().astype("string").value_counts().rename(name).astype("float64")


def _sum_by(keys: pd.Series, values: pd.Series, name: str) -> pd.Series:
    frame = pd.DataFrame({"k": keys.astype("string").to_numpy(), "v": values.astype("float64").to_numpy()})
    return frame.dropna(subset=["k"]).groupby("k")["v"].sum().rename(name)


@memo_by_inputs
def rep_components(frames: Frames, ctx: KpiContext, history: Frames | None = None) -> pd.DataFrame:
    """Per rep (index rep_id), the period's additive components of the leaderboard metrics, for the tables
    present: bookings_amount, n_won, n_closed, n_new_opportunities, n_new_customers (opportunities);
    contract_amount, n_contracts (contracts); payments_amount (payments credited to the contract's rep);
    n_activities (activities that occurred in the period).

    `history` may hold earlier "opportunities" (to tell new customers from existing ones) and "contracts"
    (payments of contracts signed before the period are credited through them; payments whose contract is
    not found, or is of another region, are left out).
    """
    history = history or {}
    parts: list[pd.Series] = []
    if "opportunities" in frames:
        opps = _in_region(frames["opportunities"], ctx)
        closed = closed_in_period(opps, ctx)
        won = closed[won_mask(closed)]
        created = opps[in_period(_col(opps, "created_at", "datetime64[us]"), ctx)]
        first = first_won_deals(opps, ctx, history.get("opportunities"))
        parts += [_sum_by(won["owner_rep_id"], won["amount"].fillna(0.0), "bookings_amount"),
                  _count_by(won["owner_rep_id"], "n_won"), _count_by(closed["owner_rep_id"], "n_closed"),
                  _count_by(created["owner_rep_id"], "n_new_opportunities"),
                  _count_by(first["owner_rep_id"], "n_new_customers")]
    if "contracts" in frames:
        contracts = _in_region(frames["contracts"], ctx)
        signed = contracts[in_period(contracts["signed_at"], ctx)]
        parts += [_sum_by(signed["owner_rep_id"], signed["amount"], "contract_amount"),
                  _count_by(signed["owner_rep_id"], "n_contracts")]
        if "payments" in frames:
            known = [frames["contracts"]]
            if history.get("contracts") is not None:
                known.append(history["contracts"])
            owner = _in_region(pd.concat(known, ignore_index=True).drop_duplicates("contract_id"), ctx)
            owner = owner.set_index(owner["contract_id"].astype("string"))["owner_rep_id"]
            pays = frames["payments"]
            pays = pays[in_period(pays["received_at"], ctx)]
            parts.append(_sum_by(lookup(pays["contract_id"].astype("string"), owner), pays["amount"],
                                 "payments_amount"))
    if "activities" in frames:
        acts = _in_region(frames["activities"], ctx)
        done = _rows(acts, in_period(_col(acts, "occurred_at", "datetime64[us]"), ctx), "rep_id")
        parts.append(_count_by(done["rep_id"], "n_activities"))
    out = pd.concat(parts, axis=1) if parts else pd.DataFrame()
    out.index = pd.Index(out.index.astype("string"), name="rep_id")
    return out.fillna(0.0)


def _period_targets(targets: pd.DataFrame, ctx: KpiContext, level: str) -> pd.Series:
    """Summed target amount per key of `level` for the period (see `common.target_periods`)."""
    labels = target_periods(targets, ctx.period_start, ctx.period_end, ctx.period_label)
    rows = targets[targets["period"].isin(labels) & targets["level"].eq(level).fillna(False).astype(bool)]
    return rows.groupby(rows["key"].astype("string"))["target_amount"].sum()


def _metric_values(frames: Frames, ctx: KpiContext, metric: LeaderboardMetric, by: str,
                   comps: pd.DataFrame) -> pd.Series:
    entities = _entities(frames, ctx, by)
    if metric.name == "attainment_rate":
        amount = comps["bookings_amount"] if "bookings_amount" in comps else pd.Series(dtype="float64")
        actual = amount.groupby(_group_of(frames, pd.Series(amount.index, index=amount.index), by)).sum()
        target = _period_targets(frames["targets"], ctx, by)
        index = entities.union(actual.index).union(target.index.intersection(entities)) \
            if len(entities) else actual.index.union(target.index)
        return ratio_series(actual.reindex(index, fill_value=0.0), target.reindex(index))
    needed = [metric.numerator] + ([metric.denominator] if metric.denominator else [])
    comps = comps.reindex(columns=needed, fill_value=0.0)
    grouped = comps.groupby(_group_of(frames, pd.Series(comps.index, index=comps.index), by)).sum()
    grouped = grouped.reindex(entities.union(grouped.index), fill_value=0.0)
    if metric.denominator:
        return ratio_series(grouped[metric.numerator], grouped[metric.denominator])
    return grouped[metric.numerator]


def leaderboard(frames: Frames, comparison: Frames | None, ctx: KpiContext,
                comparison_ctx: KpiContext | None = None, *, metric: str = "bookings_amount", by: str = "rep",
                history: Frames | None = None) -> pd.DataFrame:
    """The leaderboard of `metric` (see `LEADERBOARD_METRICS`) by rep, team or region, with the rank in the
    comparison period and the rank change (positive = moved up).

    One row per rep/team/region of the context's region (from the dimension tables — active reps only — plus
    any key seen in the data): rank, key (rep_id | team_id | region_id), name, `metric`, ``comparison_<metric>``,
    comparison_rank, rank_change. Ties share the best rank; rows are ordered by rank, name, key.
    Win and attainment rates are computed on the summed components (not averaged over reps).
    """
    check_choice("metric", metric, tuple(LEADERBOARD_METRICS))
    check_choice("by", by, GROUP_LEVELS)
    _need(frames, *LEADERBOARD_METRICS[metric].tables)
    now = rep_components(frames, ctx, history)
    then = rep_components(comparison, comparison_ctx, history) if _comparable(comparison, comparison_ctx) else None
    return _board(frames, comparison, ctx, comparison_ctx, now, then, metric, by)


def _comparable(comparison: Frames | None, comparison_ctx: KpiContext | None) -> bool:
    return comparison is not None and comparison_ctx is not None


def _board(frames: Frames, comparison: Frames | None, ctx: KpiContext, comparison_ctx: KpiContext | None,
           now: pd.DataFrame, then: pd.DataFrame | None, metric: str, by: str) -> pd.DataFrame:
    spec = LEADERBOARD_METRICS[metric]
    values = _metric_values(frames, ctx, spec, by, now)
    if then is not None and all(t in comparison for t in spec.tables):  # type: ignore[operator]
        before = _metric_values(comparison, comparison_ctx, spec, by, then)  # type: ignore[arg-type]
    else:
        before = pd.Series(np.nan, index=values.index)
    ranks = rank_with_change(values, before)
    key = _GROUP_KEYS[by]
    names = _names(frames, by)
    out = pd.DataFrame({key: values.index.astype("string"),
                        "name": values.index.astype("string").map(lambda k: names.get(k, k)),
                        metric: values.to_numpy(), f"comparison_{metric}": before.reindex(values.index).to_numpy()})
    out = pd.concat([out, ranks.reset_index(drop=True)], axis=1)
    out["name"] = out["name"].astype("string")
    if metric.startswith("n_"):
        out[[metric, f"comparison_{metric}"]] = out[[metric, f"comparison_{metric}"]].round().astype("Int64")
    out = out.sort_values(["rank", "name", key], na_position="last", kind="mergesort")
    cols = ["rank", key, "name", metric, f"comparison_{metric}", "comparison_rank", "rank_change"]
    return out[cols].reset_index(drop=True)


def leaderboard_overview(frames: Frames, comparison: Frames | None, ctx: KpiContext,
                         comparison_ctx: KpiContext | None = None, *, by: str = "rep",
                         history: Frames | None = None, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """All leaderboards the frames allow (or those of `metrics`), side by side: one row per rep/team/region
    with, for each metric, its value and ``<metric>_rank`` (``<metric>_rank_change`` vs the comparison).
    Metrics whose tables are missing are left out (listed in ``.attrs["skipped"]``). Rows ordered by
    bookings rank."""
    check_choice("by", by, GROUP_LEVELS)
    for name in metrics or ():
        check_choice("metrics", name, tuple(LEADERBOARD_METRICS))
    key = _GROUP_KEYS[by]
    out: pd.DataFrame | None = None
    skipped = []
    now = rep_components(frames, ctx, history)
    then = rep_components(comparison, comparison_ctx, history) if _comparable(comparison, comparison_ctx) else None
    for name, spec in LEADERBOARD_METRICS.items():
        if metrics is not None and name not in metrics:
            continue
        if any(t not in frames for t in spec.tables):
            skipped.append(name)
            continue
        board = _board(frames, comparison, ctx, comparison_ctx, now, then, name, by)
        board = board.rename(columns={"rank": f"{name}_rank", "rank_change": f"{name}_rank_change"})
        board = board[[key, "name", name, f"{name}_rank", f"{name}_rank_change"]]
        out = board if out is None else out.merge(board, on=[key, "name"], how="outer")
    if out is None:
        out = pd.DataFrame(columns=[key, "name"])
    order = [c for c in ("bookings_amount_rank", f"{key}") if c in out.columns]
    out = out.sort_values([*order, "name"], na_position="last", kind="mergesort").reset_index(drop=True)
    out.attrs["skipped"] = skipped
    return out


def _places(n: object) -> str:
    return f"{int(n)} place{'' if int(n) == 1 else 's'}"  # type: ignore[call-overload]


def describe_leaderboard(result: pd.DataFrame) -> str:
    """Who leads the board, and who climbed the most since the comparison period."""
    metric = [c for c in result.columns if c not in ("rank", "name", "comparison_rank", "rank_change",
                                                     "rep_id", "team_id", "region_id")
              and not c.startswith("comparison_")]
    if result.empty or not metric or result["rank"].isna().all():
        return "Nobody has a value on this leaderboard in the slice."
    metric_name = metric[0]
    label = LEADERBOARD_METRICS[metric_name].label.lower() if metric_name in LEADERBOARD_METRICS else metric_name
    fmt = (lambda v: f"{v:.0%}") if metric_name.endswith("_rate") else (lambda v: f"{v:,.0f}")
    if not (result[metric_name].fillna(0) > 0).any():
        return f"Nobody scored on {label} in this slice (all {len(result)} at 0)."
    leaders = result[result["rank"] == 1]
    if len(leaders) > 3:
        who = f"{len(leaders)} tie for first place ({', '.join(leaders['name'].astype(str).head(3))}, ...)"
    else:
        who = " and ".join(leaders["name"].astype(str)) + (" leads" if len(leaders) == 1 else " lead")
    text = f"{who} on {label} with {fmt(leaders.iloc[0][metric_name])}"
    moves = result.dropna(subset=["rank_change"])
    if not moves.empty and moves["rank_change"].max() > 0:
        up = moves.sort_values(["rank_change", "rank"], ascending=[False, True]).iloc[0]
        text += f"; {up['name']} climbed the most ({_places(up['rank_change'])}, now #{int(up['rank'])})"
    if not moves.empty and moves["rank_change"].min() < 0:
        down = moves.sort_values(["rank_change", "rank"], ascending=[True, True]).iloc[0]
        text += f"; {down['name']} fell the most ({_places(-down['rank_change'])}, now #{int(down['rank'])})"
    ranked = result.dropna(subset=["rank"])
    if len(ranked) > 2 and ranked["rank"].iloc[-1] > 1:
        last = ranked.iloc[-1]
        text += f"; last is {last['name']} ({fmt(last[metric_name])})"
    return text + "."


# --------------------------------------------------------------------------------------- team effectiveness


def _group_frame(frames: Frames, ctx: KpiContext, by: str) -> pd.DataFrame:
    """Key and name of each rep/team/region of the context's region."""
    key = _GROUP_KEYS[by]
    entities = _entities(frames, ctx, by)
    names = _names(frames, by)
    return pd.DataFrame({key: entities, "name": [names.get(k, k) for k in entities]}).astype("string")


def _finish(stats: pd.DataFrame, frames: Frames, ctx: KpiContext, by: str, *, keep_all: bool = True) -> pd.DataFrame:
    key = _GROUP_KEYS[by]
    stats = stats.rename_axis(key).reset_index()
    stats[key] = stats[key].astype("string")
    base = _group_frame(frames, ctx, by)
    how = "outer" if keep_all else "right"
    out = base.merge(stats, on=key, how=how)
    out["name"] = out["name"].fillna(out[key]).astype("string")
    return out


@memo_by_inputs
def activities_per_rep(frames: Frames, ctx: KpiContext, *, by: str = "team") -> pd.DataFrame:
    """Activities done (``occurred_at`` in the period) per rep, by activity type, for each rep/team/region.

    Columns: key, name, n_reps (reps of the group that are active or did an activity), n_activities,
    activities_per_rep, and ``<type>_per_rep`` for each activity type seen. Needs activities (and reps to
    roll reps up to teams/regions).
    """
    check_choice("by", by, GROUP_LEVELS)
    _need(frames, "activities")
    acts = _in_region(frames["activities"], ctx)
    done = _rows(acts, in_period(_col(acts, "occurred_at", "datetime64[us]"), ctx), "rep_id", "activity_type")
    reps = _in_region(_reps_frame(frames), ctx)
    headcount = set(reps.loc[reps["is_active"].fillna(False).astype(bool), "rep_id"]) | set(
        done["rep_id"].dropna().astype("string").unique())
    rep_index = pd.Series(sorted(headcount), dtype="string")
    n_reps = rep_index.groupby(_group_of(frames, rep_index, by).to_numpy()).size().rename("n_reps")
    group = _group_of(frames, done["rep_id"], by)
    counts = pd.crosstab(group.to_numpy(), done["activity_type"].astype("string").to_numpy())
    types = sorted(counts.columns)
    stats = pd.DataFrame(index=n_reps.index.union(counts.index))
    stats["n_reps"] = n_reps.reindex(stats.index, fill_value=0)
    stats["n_activities"] = counts.sum(axis=1).reindex(stats.index, fill_value=0)
    stats["activities_per_rep"] = ratio_series(stats["n_activities"], stats["n_reps"])
    for t in types:
        stats[f"{t}_per_rep"] = ratio_series(counts[t].reindex(stats.index, fill_value=0), stats["n_reps"])
    out = _finish(stats, frames, ctx, by)
    out[["n_reps", "n_activities"]] = out[["n_reps", "n_activities"]].fillna(0).astype("int64")
    return out.sort_values(["activities_per_rep", "name"], ascending=[False, True],
                           na_position="last").reset_index(drop=True)


def describe_activities_per_rep(result: pd.DataFrame) -> str:
    """Which group is the busiest per rep and which the quietest."""
    rated = result.dropna(subset=["activities_per_rep"])
    rated = rated[rated["n_reps"] > 0]
    if rated.empty:
        return "No activity was recorded in this slice."
    top, low = rated.iloc[0], rated.iloc[-1]
    if len(rated) == 1:
        return f"{top['name']} logged {top['activities_per_rep']:.1f} activities per rep."
    return (f"{top['name']} is the most active with {top['activities_per_rep']:.1f} activities per rep; "
            f"{low['name']} logs the fewest ({low['activities_per_rep']:.1f} per rep).")


@memo_by_inputs
def activity_completion(frames: Frames, ctx: KpiContext, *, by: str = "team") -> pd.DataFrame:
    """Completion of the activities due in the period (``due_at`` in the period), by rep/team/region.

    Columns: key, name, n_due, n_completed (``completed_at`` set), completion_rate, n_overdue (not completed
    and due before the reference time). Needs activities.
    """
    check_choice("by", by, GROUP_LEVELS)
    _need(frames, "activities")
    acts = _in_region(frames["activities"], ctx)
    due = _rows(acts, in_period(_col(acts, "due_at", "datetime64[us]"), ctx), "rep_id", "due_at", "completed_at")
    done = _col(due, "completed_at", "datetime64[us]").notna()
    overdue = ~done & (due["due_at"] < reference_time(ctx)).fillna(False).astype(bool)
    group = _group_of(frames, due["rep_id"], by).to_numpy()
    stats = pd.DataFrame({"n_due": pd.Series(1, index=due.index).groupby(group).sum(),
                          "n_completed": done.astype("int64").groupby(group).sum(),
                          "n_overdue": overdue.astype("int64").groupby(group).sum()})
    out = _finish(stats, frames, ctx, by)
    for c in ("n_due", "n_completed", "n_overdue"):
        out[c] = out[c].fillna(0).astype("int64")
    out["completion_rate"] = ratio_series(out["n_completed"], out["n_due"])
    out = out[[_GROUP_KEYS[by], "name", "n_due", "n_completed", "completion_rate", "n_overdue"]]
    return out.sort_values(["completion_rate", "name"], na_position="last").reset_index(drop=True)


def describe_activity_completion(result: pd.DataFrame) -> str:
    """Overall completion of due activities and the weakest group."""
    total_due = int(result["n_due"].sum())
    if total_due == 0:
        return "No activity fell due in this slice."
    overall = result["n_completed"].sum() / total_due
    text = f"{overall:.0%} of the {total_due:,} activities due in the period were completed"
    rated = result.dropna(subset=["completion_rate"])
    if len(rated) > 1:
        low = rated.iloc[0]
        text += (f"; {low['name']} completes the fewest ({low['completion_rate']:.0%}, "
                 f"{int(low['n_overdue'])} overdue)")
    return text + "."


def lead_first_response(frames: Frames, ctx: KpiContext, *, by: str = "rep") -> pd.DataFrame:
    """Time to first response to the leads created in the period, by owner rep/team/region.

    Columns: key, name, n_leads, n_responded, response_rate, median_first_response_hours (from
    ``created_at`` to ``first_response_at``). Only groups that own leads are listed. Needs leads.
    """
    check_choice("by", by, GROUP_LEVELS)
    _need(frames, "leads")
    leads = _in_region(frames["leads"], ctx)
    leads = leads[in_period(leads["created_at"], ctx) & _col(leads, "owner_rep_id").notna()]
    hours = (_col(leads, "first_response_at", "datetime64[us]") - leads["created_at"]).dt.total_seconds() / 3600
    group = _group_of(frames, leads["owner_rep_id"], by).to_numpy()
    stats = pd.DataFrame({"n_leads": pd.Series(1, index=leads.index).groupby(group).sum(),
                          "n_responded": hours.notna().astype("int64").groupby(group).sum(),
                          "median_first_response_hours": hours.groupby(group).median()})
    out = _finish(stats, frames, ctx, by, keep_all=False) if len(stats) else _finish(stats, frames, ctx, by)
    out = out.dropna(subset=["n_leads"])
    for c in ("n_leads", "n_responded"):
        out[c] = out[c].astype("int64")
    out["response_rate"] = ratio_series(out["n_responded"], out["n_leads"])
    out = out[[_GROUP_KEYS[by], "name", "n_leads", "n_responded", "response_rate", "median_first_response_hours"]]
    return out.sort_values(["median_first_response_hours", "name"], ascending=[False, True],
                           na_position="last").reset_index(drop=True)


def describe_lead_first_response(result: pd.DataFrame) -> str:
    """The slowest and fastest responders to new leads."""
    rated = result.dropna(subset=["median_first_response_hours"])
    if rated.empty:
        return "No lead created in this slice has a recorded first response."
    slow, fast = rated.iloc[0], rated.iloc[-1]
    if len(rated) == 1:
        return f"{slow['name']} answers new leads in {slow['median_first_response_hours']:.1f} hours (median)."
    return (f"{slow['name']} takes the longest to answer new leads ({slow['median_first_response_hours']:.1f} "
            f"hours median) vs {fast['median_first_response_hours']:.1f} hours for {fast['name']}.")


# ------------------------------------------------------------------------------------- customer follow-up


def last_activity(activities: pd.DataFrame, before: pd.Timestamp) -> pd.Series:
    """Per account (index account_id), the time of its latest activity that occurred before `before`."""
    from crmlens.data import latest_in_frame  # the same group-by `SliceTables.latest` does for a frame in memory

    frame = pd.DataFrame({"account_id": _col(activities, "account_id").astype("string"),
                          "occurred_at": _col(activities, "occurred_at", "datetime64[us]")})
    return _last_activity_series(latest_in_frame(frame, "occurred_at", "account_id", before))


def _last_activity_series(latest: pd.DataFrame) -> pd.Series:
    """`last_activity`'s Series from a per-account latest frame (columns account_id, occurred_at)."""
    return pd.Series(latest["occurred_at"].astype("datetime64[us]").to_numpy(), name="last_activity_at",
                     index=pd.Index(latest["account_id"].astype("string"), name="account_id"))


def _owned_accounts(accounts: pd.DataFrame, ctx: KpiContext) -> pd.DataFrame:
    """Accounts of the region owned by a rep and not in the public pool."""
    accounts = _in_region(accounts, ctx)
    pool = _col(accounts, "is_public_pool", "boolean").fillna(False).astype(bool)
    return accounts[_col(accounts, "owner_rep_id").notna() & ~pool]


@memo_by_inputs
def account_follow_up(frames: Frames, ctx: KpiContext, *, days: int = 60) -> pd.DataFrame:
    """Every owned account (a rep's, not in the public pool, created before the reference time) of the region
    with its follow-up state at the
    reference time (as-of, capped at the period end): account_id, name, owner_rep_id, level,
    last_activity_at, days_since_activity (empty when never), is_forgotten (no activity in the `days` days
    before the reference time), n_open_opportunities and open_opportunity_amount (open deals of the slice).

    `frames["activities"]` must cover the `days` days before the reference time: pass a history, e.g.
    ``s.tables.with_frames(activities=s.history("activities", history_periods_for(s.period, s.as_of, days)))``,
    or, cheaper, each account's latest activity: ``s.tables.with_frames(activities=last_activities(s, days))``.
    Needs accounts and activities.
    """
    if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
        raise ParameterError(f"days: {days!r} is not allowed; use a whole number of days > 0")
    _need(frames, "accounts", "activities")
    ref = reference_time(ctx)
    owned = _owned_accounts(frames["accounts"], ctx)
    owned = owned[~(_col(owned, "created_at", "datetime64[us]") >= ref).fillna(False).astype(bool)]
    latest = getattr(frames, "latest", None)  # a slice's tables: each account's latest activity from the engine
    last = (_last_activity_series(latest("activities", "occurred_at", "account_id", ref)) if callable(latest)
            else last_activity(frames["activities"], ref))
    out = pd.DataFrame({"account_id": owned["account_id"].astype("string").to_numpy(),
                        "name": _col(owned, "name").astype("string").to_numpy(),
                        "owner_rep_id": owned["owner_rep_id"].astype("string").to_numpy(),
                        "level": _col(owned, "level").astype("string").to_numpy()})
    out["last_activity_at"] = last.reindex(out["account_id"]).to_numpy()
    out["days_since_activity"] = (ref - out["last_activity_at"]).dt.total_seconds() / 86400
    out["is_forgotten"] = ~(out["last_activity_at"] >= ref - pd.Timedelta(days=days)).fillna(False).astype(bool)
    amount = pd.Series(dtype="float64")
    count = pd.Series(dtype="float64")
    if "opportunities" in frames:
        opps = frames["opportunities"]
        still_open = opps["is_won"].isna() | (opps["closed_at"] >= ref).fillna(False).astype(bool)
        open_opps = opps[still_open & opps["account_id"].notna()]
        keys = open_opps["account_id"].astype("string")
        amount = open_opps["amount"].astype("float64").fillna(0.0).groupby(keys).sum()
        count = keys.value_counts()
    out["n_open_opportunities"] = out["account_id"].map(count).fillna(0).astype("int64")
    out["open_opportunity_amount"] = out["account_id"].map(amount).astype("float64").fillna(0.0)
    return out.sort_values(["owner_rep_id", "account_id"]).reset_index(drop=True)


def forgotten_by_rep(frames: Frames, ctx: KpiContext, *, days: int = 60) -> pd.DataFrame:
    """Reps ranked by the share of their owned accounts that are forgotten (no activity in the `days` days
    before the reference time; see `account_follow_up`).

    One row per active rep owning accounts (all reps when the reps table is absent): rank, rep_id, name,
    team_id, n_owned_accounts, n_forgotten_accounts, forgotten_rate. Ordered by forgotten_rate, then
    n_forgotten_accounts (both descending), then rep_id.
    """
    state = account_follow_up(frames, ctx, days=days)
    grouped = state.groupby("owner_rep_id")
    out = pd.DataFrame({"n_owned_accounts": grouped.size(),
                        "n_forgotten_accounts": grouped["is_forgotten"].sum().astype("int64")})
    out = out.rename_axis("rep_id").reset_index()
    reps = _reps_frame(frames)
    if len(reps):
        active = reps[reps["is_active"].fillna(True).astype(bool)]
        out = out[isin(out["rep_id"], active["rep_id"])]
    info = reps.drop_duplicates("rep_id").set_index("rep_id")
    out["name"] = out["rep_id"].map(info["rep_name"]).fillna(out["rep_id"]).astype("string")
    out["team_id"] = out["rep_id"].map(info["team_id"]).astype("string")
    out["forgotten_rate"] = ratio_series(out["n_forgotten_accounts"], out["n_owned_accounts"])
    out = out.sort_values(["forgotten_rate", "n_forgotten_accounts", "rep_id"], ascending=[False, False, True])
    out["rank"] = out["forgotten_rate"].rank(method="min", ascending=False).astype("Int64")
    cols = ["rank", "rep_id", "name", "team_id", "n_owned_accounts", "n_forgotten_accounts", "forgotten_rate"]
    return out[cols].reset_index(drop=True)


def describe_forgotten_by_rep(result: pd.DataFrame) -> str:
    """Which reps neglect their accounts, in numbers."""
    if result.empty:
        return "No rep owns accounts in this slice."
    total, owned = int(result["n_forgotten_accounts"].sum()), int(result["n_owned_accounts"].sum())
    if total == 0:
        return f"Every one of the {owned:,} owned accounts had a follow-up recently: nobody is forgotten."
    worst = result[result["forgotten_rate"] >= 0.5]
    worst = worst if len(worst) else result.head(1)
    rest = result.iloc[len(worst):]["forgotten_rate"].median() if len(result) > len(worst) else float("nan")
    names = " and ".join(f"{r['name']} ({r['rep_id']}, {r['forgotten_rate']:.0%} of {int(r['n_owned_accounts'])})"
                         for _, r in worst.iterrows())
    text = f"{total:,} of {owned:,} owned accounts {'is' if total == 1 else 'are'} forgotten; the worst: {names}"
    if not math.isnan(rest):
        text += f", against a median of {rest:.0%} for the other reps"
    return text + "."


def call_next(frames: Frames, ctx: KpiContext, *, days: int = 60, top_n: int = 5) -> pd.DataFrame:
    """The accounts each rep should call next: the `top_n` highest-scoring owned accounts per rep.

    Scoring rule (documented, 0–6)::

        score = staleness × level_weight × (1 + pipeline_weight)
        staleness       = min(days since last activity, 365) / 365   (1 when never contacted)
        level_weight    = 3 for level A, 2 for B, 1 for C or unknown  (LEVEL_WEIGHTS)
        pipeline_weight = the account's open opportunity amount / the largest one among the rep's accounts
                          (0 when the rep has no open pipeline)

    so a long-silent A account with the rep's biggest open deal comes first. Ties: higher open amount,
    then account_id. Columns: owner_rep_id, rep_name, priority (1 = call first), account_id, name, level,
    days_since_activity, is_forgotten, n_open_opportunities, open_opportunity_amount, score.
    Needs accounts and activities (see `account_follow_up` for the activity history it expects).
    """
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n <= 0:
        raise ParameterError(f"top_n: {top_n!r} is not allowed; use a whole number > 0")
    state = account_follow_up(frames, ctx, days=days)
    staleness = (state["days_since_activity"].fillna(STALENESS_CAP_DAYS).clip(upper=STALENESS_CAP_DAYS)
                 / STALENESS_CAP_DAYS)
    weight = state["level"].map(LEVEL_WEIGHTS).astype("float64").fillna(1.0)
    biggest = state.groupby("owner_rep_id")["open_opportunity_amount"].transform("max")
    pipeline = ratio_series(state["open_opportunity_amount"], biggest).fillna(0.0)
    scored = state.assign(score=(staleness * weight * (1 + pipeline)).round(6))
    scored = scored.sort_values(["owner_rep_id", "score", "open_opportunity_amount", "account_id"],
                                ascending=[True, False, False, True], kind="mergesort")
    scored["priority"] = scored.groupby("owner_rep_id").cumcount() + 1
    scored = scored[scored["priority"] <= top_n]
    reps = _reps_frame(frames).drop_duplicates("rep_id").set_index("rep_id")["rep_name"]
    scored["rep_name"] = scored["owner_rep_id"].map(reps).fillna(scored["owner_rep_id"]).astype("string")
    cols = ["owner_rep_id", "rep_name", "priority", "account_id", "name", "level", "days_since_activity",
            "is_forgotten", "n_open_opportunities", "open_opportunity_amount", "score"]
    return scored[cols].reset_index(drop=True)


def describe_call_next(result: pd.DataFrame) -> str:
    """The most urgent call across all reps."""
    if result.empty:
        return "No owned account to call in this slice."
    top = result.sort_values(["score", "open_opportunity_amount"], ascending=False).iloc[0]
    silent = ("no activity on record" if pd.isna(top["days_since_activity"])
              else f"silent for {top['days_since_activity']:.0f} days")
    return (f"Most urgent call: {top['rep_name']} → {top['name']} (level {top['level']}, {silent}, "
            f"{top['open_opportunity_amount']:,.0f} in open deals); each rep's list has up to "
            f"{int(result['priority'].max())} accounts.")


def followups_by_rep(frames: Frames, ctx: KpiContext) -> pd.DataFrame:
    """Follow-ups per rep in the period: n_followups (activities that occurred), n_accounts_followed
    (distinct accounts touched), n_owned_accounts and coverage_rate (share of the rep's owned accounts that
    had an activity in the period, by anyone).
    One row per active rep of the region (from reps) or rep seen in the activities. Needs activities."""
    _need(frames, "activities")
    acts = _in_region(frames["activities"], ctx)
    done = _rows(acts, in_period(_col(acts, "occurred_at", "datetime64[us]"), ctx), "rep_id", "account_id")
    rep = done["rep_id"].astype("string")
    stats = pd.DataFrame({"n_followups": rep.value_counts(),
                          "n_accounts_followed": done["account_id"].groupby(rep).nunique()})
    if "accounts" in frames:
        owned = _owned_accounts(frames["accounts"], ctx)
        owner = owned["owner_rep_id"].astype("string")
        followed = isin(owned["account_id"], done["account_id"].dropna()).astype("int64")
        stats = stats.join(pd.DataFrame({"n_owned_accounts": owner.value_counts(),
                                         "n_owned_followed": followed.groupby(owner).sum()}), how="outer")
    else:
        stats["n_owned_accounts"] = np.nan
        stats["n_owned_followed"] = np.nan
    out = _finish(stats, frames, ctx, "rep")
    for c in ("n_followups", "n_accounts_followed", "n_owned_accounts"):
        out[c] = out[c].fillna(0).astype("int64")
    out["coverage_rate"] = ratio_series(out["n_owned_followed"].fillna(0), out["n_owned_accounts"])
    out = out[["rep_id", "name", "n_followups", "n_accounts_followed", "n_owned_accounts", "coverage_rate"]]
    return out.sort_values(["n_followups", "name"], ascending=[False, True]).reset_index(drop=True)


def describe_followups_by_rep(result: pd.DataFrame) -> str:
    """Follow-up volume and the rep covering the fewest of its accounts."""
    if result["n_followups"].sum() == 0:
        return "No follow-up activity happened in this slice."
    top = result.iloc[0]
    text = f"{top['name']} logged the most follow-ups ({int(top['n_followups'])})"
    rated = result.dropna(subset=["coverage_rate"]).sort_values(["coverage_rate", "name"])
    if len(rated) and rated["coverage_rate"].iloc[0] >= 1:
        text += "; every rep touched all of its owned accounts"
    elif len(rated):
        low = rated.iloc[0]
        text += (f"; {low['name']} touched only {low['coverage_rate']:.0%} of "
                 f"{int(low['n_owned_accounts'])} owned accounts")
    return text + "."


def public_pool(frames: Frames, ctx: KpiContext) -> pd.DataFrame:
    """The public pool (公海) by region: n_accounts, n_pool_accounts (in the pool and entered by the
    reference time), pool_rate, n_entered (entered the pool in the period: flow in) and
    median_days_in_pool.

    Flow out cannot be measured: the accounts table keeps only the current flag and the *last* entry time
    (``pool_entered_at``), so an account claimed from the pool leaves no trace, and an account that
    re-entered counts once at its latest entry. n_entered is thus a lower bound of the flow in. Regions
    whose accounts carry no ``is_public_pool`` value (a source without a pool) have empty pool counts.
    Needs accounts.
    """
    _need(frames, "accounts")
    accounts = _in_region(frames["accounts"], ctx)
    ref = reference_time(ctx)
    entered = _col(accounts, "pool_entered_at", "datetime64[us]")
    flag = _col(accounts, "is_public_pool", "boolean")
    pool = flag.fillna(False).astype(bool) & ~(entered >= ref).fillna(False)
    flow_in = pool & in_period(entered, ctx)
    region = _col(accounts, "region_id").astype("string").fillna(UNKNOWN)
    days_in = ((ref - entered) / pd.Timedelta(days=1)).where(pool)
    stats = pd.DataFrame({"n_accounts": region.value_counts(),
                          "n_known": flag.notna().astype("int64").groupby(region).sum(),
                          "n_pool_accounts": pool.astype("int64").groupby(region).sum(),
                          "n_entered": flow_in.astype("int64").groupby(region).sum(),
                          "median_days_in_pool": days_in.groupby(region).median()})
    out = _finish(stats, frames, ctx, "region")
    out = out[out["n_accounts"].fillna(0) > 0]
    for c in ("n_accounts", "n_pool_accounts", "n_entered"):
        out[c] = out[c].fillna(0).astype("int64")
    unknown = out["n_known"].fillna(0).eq(0)
    out[["n_pool_accounts", "n_entered"]] = out[["n_pool_accounts", "n_entered"]].astype("Int64").mask(unknown)
    out["pool_rate"] = ratio_series(out["n_pool_accounts"], out["n_accounts"])
    out = out[["region_id", "name", "n_accounts", "n_pool_accounts", "pool_rate", "n_entered",
               "median_days_in_pool"]]
    return out.sort_values(["n_pool_accounts", "region_id"], ascending=[False, True]).reset_index(drop=True)


def describe_public_pool(result: pd.DataFrame) -> str:
    """Size of the public pool and its flow in."""
    pooled, total = int(result["n_pool_accounts"].sum()), int(result["n_accounts"].sum())
    if total == 0:
        return "No account of the source is assigned to this region."
    if result["n_pool_accounts"].isna().all():
        return "This source does not record the public pool (no account has an `is_public_pool` value)."
    if pooled == 0:
        return f"No account of the {total:,} sits in the public pool."
    top = result.iloc[0]
    return (f"{pooled:,} of {total:,} accounts ({pooled / total:.0%}) sit in the public pool, "
            f"{int(result['n_entered'].sum()):,} of them entered it during the period; {top['name']} has the "
            f"largest pool ({int(top['n_pool_accounts'])}). Accounts taken out of the pool leave no record, "
            f"so the flow out cannot be shown.")


# ---------------------------------------------------------------------------------------------------- KPIs


@register_kpi("active_reps", label="Active reps", unit="count", direction="higher", tables=("opportunities",),
              area=AREA, description="Reps with an activity (when the source has activities) or a won deal in "
              "the period.")
def kpi_active_reps(frames: Frames, ctx: KpiContext) -> float | None:
    opps = _in_region(frames["opportunities"], ctx)
    reps = set(won_in_period(opps, ctx)["owner_rep_id"].dropna().unique())
    if "activities" in frames:
        acts = _in_region(frames["activities"], ctx)
        reps |= set(acts.loc[in_period(_col(acts, "occurred_at", "datetime64[us]"), ctx), "rep_id"].dropna().unique())
    return float(len(reps)) if reps else None


@register_kpi("activities_per_rep", label="Activities per rep", unit="ratio", direction="higher",
              tables=("activities", "reps"), area=AREA,
              description="Activities done in the period ÷ reps of the region that are active or did one.")
def kpi_activities_per_rep(frames: Frames, ctx: KpiContext) -> float | None:
    table = activities_per_rep(frames, ctx, by="region")
    return ratio(table["n_activities"].sum(), table["n_reps"].sum())


@register_kpi("activity_completion_rate", label="Activity completion", unit="rate", direction="higher",
              tables=("activities",), area=AREA,
              description="Activities due in the period that were completed ÷ activities due in the period.")
def kpi_activity_completion_rate(frames: Frames, ctx: KpiContext) -> float | None:
    table = activity_completion(frames, ctx, by="region")
    return ratio(table["n_completed"].sum(), table["n_due"].sum())


@register_kpi("lead_first_response_days", label="First response to leads", unit="days", direction="lower",
              tables=("leads",), area=AREA,
              description="Median time from a lead's creation to its first response, for leads created in "
              "the period (in days).")
def kpi_lead_first_response_days(frames: Frames, ctx: KpiContext) -> float | None:
    leads = _in_region(frames["leads"], ctx)
    leads = leads[in_period(leads["created_at"], ctx)]
    days = (_col(leads, "first_response_at", "datetime64[us]") - leads["created_at"]).dt.total_seconds() / 86400
    days = days.dropna()
    return float(days.median()) if len(days) else None


@register_kpi("forgotten_accounts", label="Forgotten customers", unit="count", direction="lower",
              tables=("accounts", "activities"), area=AREA,
              description="Owned accounts (not in the public pool) with no activity in the `forgotten_days` "
              "days (a parameter, 60 by default) before the as-of time (capped at the period end). No data "
              "when the slice's activities do not reach that far back (periods shorter than that).")
def kpi_forgotten_accounts(frames: Frames, ctx: KpiContext) -> float | None:
    days = ctx.forgotten_days
    if reference_time(ctx) - pd.Timedelta(days=days) < pd.Timestamp(ctx.period_start):
        return None
    state = account_follow_up(frames, ctx, days=days)
    return float(state["is_forgotten"].sum()) if len(state) else None


@register_kpi("public_pool_accounts", label="Accounts in the public pool", unit="count", direction="neutral",
              tables=("accounts",), area=AREA,
              description="Accounts of the region in the public pool (公海) that entered it by the as-of time "
              "(capped at the period end).")
def kpi_public_pool_accounts(frames: Frames, ctx: KpiContext) -> float | None:
    table = public_pool(frames, ctx)
    known = table["n_pool_accounts"].dropna()
    return float(known.sum()) if len(known) else None


@register_kpi("new_customers", label="New customers", unit="count", direction="higher",
              tables=("opportunities",), area=AREA,
              description="Accounts whose first won deal closed in the period: won new-business deals of "
              "accounts with no earlier win in the data given. No data when the source's deal types are all "
              "'new' and the frames hold no earlier deals (a first win cannot be told from a repeat one).")
def kpi_new_customers(frames: Frames, ctx: KpiContext) -> float | None:
    opps = frames["opportunities"]
    if opps.empty:
        return None
    earlier = (opps["closed_at"] < pd.Timestamp(ctx.period_start)).fillna(False).astype(bool).any()
    if not deal_types_known(opps) and not earlier:
        return None
    return float(len(first_won_deals(opps, ctx)))
