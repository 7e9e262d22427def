"""Regions & teams: geography, leaderboards (排行榜), team effectiveness and customer follow-up (跟进, 公海).

Pure functions over validated frames (see `crmlens.data.Slice`). Multi-table functions take the slice's
``frames`` mapping and a `KpiContext`; a table a function needs and the frames lack raises a `SchemaError`
naming it. Optional tables (contracts for customers, market for market potential, activities for active
reps...) are used when present.

A notebook calls the analyses with the slice (`crmlens.analysis.on_slice`): ``regions.geography(s,
level="region")``; a source without a needed table shows the "needs table" note instead. The describe_*
functions turn a result into a `crmlens.findings.Finding` written only from what the numbers support: ties
share a rank (nobody is "the best" among equals), a column the source does not record is said to be "not in
this source" (never a zero; results list such columns in ``.attrs["not_in_source"]``).

Conventions:

* **bookings**: amount of won opportunities closed in the period, credited to ``owner_rep_id`` and, through
  the reps table, to the rep's team and region (``crmlens.truths``);
* **reference time** of follow-up metrics: the as-of time, but never later than the period end (the slice
  holds no activity after the period);
* rankings use ``method="min"`` (ties share the best rank) and a deterministic order (rank, name, key).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from crmlens import i18n
from crmlens.analysis import is_slice, on_slice
from crmlens.errors import ParameterError, SchemaError
from crmlens.findings import Finding, finding
from crmlens.i18n import N_, _, n_
from crmlens.i18n import sentences as _sentences
from crmlens.kpis import KpiContext, register_kpi
from crmlens.metrics.common import (
    UNKNOWN,
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
    reference_time,
    target_periods,
    won_in_period,
    won_mask,
)
from crmlens.metrics.common import fmt as _fmt
from crmlens.metrics.common import shown as _shown
from crmlens.periods import Period, parse_period
from crmlens.present import register_columns

AREA = "regions_teams"
Frames = Mapping[str, pd.DataFrame]

#: Geography drill levels, from the coarsest; each level's path includes the levels before it.
GEO_LEVELS: tuple[str, ...] = ("region", "country", "province", "city")
_GEO_COLUMNS = {"region": "region_id", "country": "country", "province": "province", "city": "city"}
#: Label used where an account (or its geography) is unknown (a data value; readers see it translated).
#: Grouping levels of leaderboards and team metrics.
GROUP_LEVELS: tuple[str, ...] = ("rep", "team", "region")
_GROUP_KEYS = {"rep": "rep_id", "team": "team_id", "region": "region_id"}
#: Weights of account levels (客户级别) in the call-next score; unknown levels weigh 1.
LEVEL_WEIGHTS: dict[str, float] = {"A": 3.0, "B": 2.0, "C": 1.0}
#: Days of silence at which an account's staleness reaches its maximum (1.0) in the call-next score.
STALENESS_CAP_DAYS = 365
#: Key of a result's ``.attrs`` listing the ``table.column``s the source does not record (`describe_*` say so).
NOT_IN_SOURCE = "not_in_source"
#: Share of a rep's owned accounts forgotten from which the rep is flagged (chart in red, an "act" finding).
FORGOTTEN_FLAG_RATE = 0.5

# Labels and units of every result column of this module, as readers see them (`crmlens.present`).
register_columns({
    # geography
    "n_closed": (N_("Closed deals"), "count"),
    "n_won": (N_("Won deals"), "count"),
    "win_rate": (N_("Win rate"), "rate"),
    "bookings_amount": (N_("Bookings"), "amount"),
    "n_customers": (N_("Customers"), "count"),
    "sales_cycle_days": (N_("Sales cycle"), "days"),
    "market_size_amount": (N_("Market size"), "amount"),
    "market_share_rate": (N_("Market share"), "rate"),
    # leaderboards: each metric, its value in the comparison period, its rank and rank change
    "comparison_rank": (N_("Rank in the comparison period"), "count"),
    "rank_change": (N_("Rank change"), "count"),
    "comparison_bookings_amount": (N_("Bookings, comparison period"), "amount"),
    "bookings_amount_rank": (N_("Bookings: rank"), "count"),
    "bookings_amount_rank_change": (N_("Bookings: rank change"), "count"),
    "comparison_n_won": (N_("Won deals, comparison period"), "count"),
    "n_won_rank": (N_("Won deals: rank"), "count"),
    "n_won_rank_change": (N_("Won deals: rank change"), "count"),
    "comparison_win_rate": (N_("Win rate, comparison period"), "rate"),
    "win_rate_rank": (N_("Win rate: rank"), "count"),
    "win_rate_rank_change": (N_("Win rate: rank change"), "count"),
    "n_new_opportunities": (N_("New opportunities"), "count"),
    "comparison_n_new_opportunities": (N_("New opportunities, comparison period"), "count"),
    "n_new_opportunities_rank": (N_("New opportunities: rank"), "count"),
    "n_new_opportunities_rank_change": (N_("New opportunities: rank change"), "count"),
    "n_new_customers": (N_("New customers"), "count"),
    "comparison_n_new_customers": (N_("New customers, comparison period"), "count"),
    "n_new_customers_rank": (N_("New customers: rank"), "count"),
    "n_new_customers_rank_change": (N_("New customers: rank change"), "count"),
    "contract_amount": (N_("Contract amount"), "amount"),
    "comparison_contract_amount": (N_("Contract amount, comparison period"), "amount"),
    "contract_amount_rank": (N_("Contract amount: rank"), "count"),
    "contract_amount_rank_change": (N_("Contract amount: rank change"), "count"),
    "n_contracts": (N_("Contracts signed"), "count"),
    "comparison_n_contracts": (N_("Contracts signed, comparison period"), "count"),
    "n_contracts_rank": (N_("Contracts signed: rank"), "count"),
    "n_contracts_rank_change": (N_("Contracts signed: rank change"), "count"),
    "payments_amount": (N_("Payments received"), "amount"),
    "comparison_payments_amount": (N_("Payments received, comparison period"), "amount"),
    "payments_amount_rank": (N_("Payments received: rank"), "count"),
    "payments_amount_rank_change": (N_("Payments received: rank change"), "count"),
    "n_activities": (N_("Activities"), "count"),
    "comparison_n_activities": (N_("Activities, comparison period"), "count"),
    "n_activities_rank": (N_("Activities: rank"), "count"),
    "n_activities_rank_change": (N_("Activities: rank change"), "count"),
    "attainment_rate": (N_("Target attainment"), "rate"),
    "comparison_attainment_rate": (N_("Target attainment, comparison period"), "rate"),
    "attainment_rate_rank": (N_("Target attainment: rank"), "count"),
    "attainment_rate_rank_change": (N_("Target attainment: rank change"), "count"),
    # team effectiveness
    "n_reps": (N_("Reps"), "count"),
    "activities_per_rep": (N_("Activities per rep"), "ratio"),
    "call_per_rep": (N_("Calls per rep"), "ratio"),
    "email_per_rep": (N_("Emails per rep"), "ratio"),
    "meeting_per_rep": (N_("Meetings per rep"), "ratio"),
    "visit_per_rep": (N_("Visits per rep"), "ratio"),
    "demo_per_rep": (N_("Demos per rep"), "ratio"),
    "task_per_rep": (N_("Tasks per rep"), "ratio"),
    "n_due": (N_("Activities due"), "count"),
    "n_completed": (N_("Completed"), "count"),
    "completion_rate": (N_("Completion rate"), "rate"),
    "n_overdue": (N_("Overdue"), "count"),
    "n_leads": (N_("Leads"), "count"),
    "n_responded": (N_("Leads answered"), "count"),
    "response_rate": (N_("Response rate"), "rate"),
    "median_first_response_hours": (N_("First response, median hours"), "number"),
    # customer follow-up (跟进) and the public pool (公海)
    "account_level": (N_("Account level"), "text"),
    "last_activity_at": (N_("Last activity"), "date"),
    "days_since_activity": (N_("Days since the last activity"), "days"),
    "is_forgotten": (N_("Forgotten account"), "text"),
    "n_open_opportunities": (N_("Open opportunities"), "count"),
    "open_opportunity_amount": (N_("Open opportunity amount"), "amount"),
    "n_owned_accounts": (N_("Owned accounts"), "count"),
    "n_forgotten_accounts": (N_("Forgotten accounts"), "count"),
    "n_forgotten_a_accounts": (N_("Forgotten A-level accounts"), "count"),
    "forgotten_rate": (N_("Share forgotten"), "rate"),
    "rep_name": (N_("Rep name"), "text"),
    "priority": (N_("Call order"), "count"),
    "score": (N_("Call-next score"), "score"),
    "n_followups": (N_("Follow-ups"), "count"),
    "n_accounts_followed": (N_("Accounts followed up"), "count"),
    "coverage_rate": (N_("Owned accounts followed up"), "rate"),
    "n_accounts": (N_("Accounts"), "count"),
    "n_pool_accounts": (N_("In the public pool"), "count"),
    "pool_rate": (N_("Share in the public pool"), "rate"),
    "n_entered": (N_("Entered the pool in the period"), "count"),
    "median_days_in_pool": (N_("Median time in the pool"), "days"),
})
#: Reader's names of the activity types (`crmlens.schema.ACTIVITY_TYPES`; other values are shown as they are).
ACTIVITY_TYPE_LABELS = {"call": N_("call"), "email": N_("email"), "meeting": N_("meeting"), "visit": N_("visit"),
                        "demo": N_("demo"), "task": N_("task")}


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


def _not_in_source(frame: pd.DataFrame | None, table: str, *columns: str) -> list[str]:
    """``table.column`` for each of `columns` the source does not record: `frame` lacks it, or has rows and
    leaves it empty everywhere (a mapping that does not fill it). An empty frame tells nothing."""
    if frame is None:
        return [f"{table}.{c}" for c in columns]
    return [f"{table}.{c}" for c in columns
            if c not in frame.columns or (len(frame) > 0 and not frame[c].notna().any())]


def _noting(out: pd.DataFrame, gaps: Sequence[str], **attrs: Any) -> pd.DataFrame:
    """`out` with the columns the source does not record (``.attrs["not_in_source"]``) and other `attrs`."""
    out.attrs[NOT_IN_SOURCE] = list(dict.fromkeys(gaps))
    out.attrs.update(attrs)
    return out


# ---------------------------------------------------------------------------------------------- findings


def _join(items: Sequence[str]) -> str:
    """"A", "A and B", "A, B and C" in the language in use."""
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return _("{items} and {last}", items=_(", ").join(items[:-1]), last=items[-1])


def _some(names: Sequence[str], limit: int = 3) -> str:
    """Up to `limit` names joined; more are counted ("A, B, C and 4 more")."""
    names = list(names)
    if len(names) <= limit:
        return _join(names)
    return _join([*names[:limit], n_("{n} more", "{n} more", len(names) - limit)])


def _who(result: pd.DataFrame, key: str, name: str = "name") -> pd.Series:
    """Each row's name for a sentence, with its id in parentheses where several ids of `result` share the name
    (two reps called David Huang stay two people: "David Huang (R0038)"), as the charts label them."""
    ids = result[key].astype("string")
    names = result[name].astype("string").fillna(ids) if name in result.columns else ids
    per_name = pd.DataFrame({"id": ids, "name": names}).groupby("name")["id"].nunique()
    clash = names.map(per_name).fillna(1) > 1
    shown = names.where(~clash | (names == ids), names + " (" + ids + ")")
    return pd.Series([_shown(v) for v in shown], index=result.index, dtype="object")


def _key_of(result: pd.DataFrame) -> str:
    """The id column of a per-rep/team/region result."""
    return next((c for c in ("rep_id", "team_id", "region_id") if c in result.columns), result.columns[0])


def _groups(result: pd.DataFrame, n: int) -> str:
    """"3 reps", "2 teams", "4 regions" for a per-rep/team/region result."""
    key = _key_of(result)
    if key == "team_id":
        return n_("{n} team", "{n} teams", n)
    if key == "region_id":
        return n_("{n} region", "{n} regions", n)
    return n_("{n} rep", "{n} reps", n)


def _missing_finding(result: pd.DataFrame, what: str, kpi: str = "") -> Finding | None:
    """The finding of a result whose key columns the source does not record (``attrs["not_in_source"]``)."""
    gaps = result.attrs.get(NOT_IN_SOURCE) or []
    if not gaps:
        return None
    return finding(_("Not in this source: the source does not record {columns}, so {what} cannot be shown.",
                     columns=_join([f"`{g}`" for g in gaps]), what=what), "info", kpi=kpi)


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


@on_slice("opportunities")
def geography(frames: Frames, ctx: KpiContext, *, level: str = "region") -> pd.DataFrame:
    """Sales by geography at `level` (region | country | province | city), one row per place with its path.

    Columns: region_id … `level` (the path; missing places are "(unknown)"), n_closed, n_won, win_rate,
    bookings_amount, n_customers (accounts with a won deal closed, or a contract signed, in the period),
    sales_cycle_days (median days from creation to close of the won deals), and at region level
    market_size_amount (the `market` table, segments de-duplicated) and market_share_rate (bookings /
    market size); below region level the market has no figures (empty). A region's deals are placed by
    the deal's region_id, countries/provinces/cities by the deal's account. Place columns the accounts do not
    record are listed in ``.attrs["not_in_source"]``. Needs opportunities.
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
    return _noting(out.reset_index(drop=True), _not_in_source(frames.get("accounts"), "accounts", *path[1:]))


_BY_PLACE = {"country": N_("bookings by country"), "province": N_("bookings by province"),
             "city": N_("bookings by city")}


def describe_geography(result: pd.DataFrame) -> Finding | None:
    """Where the bookings come from, and — at region level, with the `market` table — where our market share
    is lowest (the place to grow)."""
    key = next(c for c in ("city", "province", "country", "region_id") if c in result.columns)
    if key != "region_id" and f"accounts.{key}" in (result.attrs.get(NOT_IN_SOURCE) or []):
        return _missing_finding(result, _(_BY_PLACE[key]), "bookings_amount")
    if result.empty or result["bookings_amount"].sum() <= 0:
        return finding(_("No deal was won in this slice, so there is no geography of bookings to show."), "info",
                       kpi="bookings_amount")
    total = float(result["bookings_amount"].sum())
    top_value = result["bookings_amount"].max()
    leaders = result[result["bookings_amount"] == top_value]
    selling = int((result["bookings_amount"] > 0).sum())
    if selling == 1:
        top = leaders.iloc[0]
        text = _("All bookings ({amount}) come from {place}: {customers}{win_rate}.", amount=_fmt(total, "amount"),
                 place=_shown(top[key]), customers=n_("{n} customer", "{n} customers", int(top["n_customers"])),
                 win_rate=_(", win rate {rate}", rate=_fmt(top["win_rate"], "rate", 0))
                 if pd.notna(top["win_rate"]) else "")
        if len(result) > 1:
            text = _sentences(text, n_("{n} other place won nothing.", "{n} other places won nothing.",
                                       len(result) - 1))
    elif len(leaders) > 1:
        text = _("{places} bring the most bookings, {amount} each ({share} of the total each), of {n} places.",
                 places=_some([_shown(v) for v in leaders[key]]), amount=_fmt(top_value, "amount"),
                 share=_fmt(top_value / total, "share", 0), n=_fmt(len(result), "count"))
    else:
        top = leaders.iloc[0]
        text = _("{place} brings the most bookings ({amount}, {share} of the total, {customers}{win_rate}) of {n} "
                 "places.", place=_shown(top[key]), amount=_fmt(top_value, "amount"),
                 share=_fmt(top_value / total, "share", 0),
                 customers=n_("{n} customer", "{n} customers", int(top["n_customers"])),
                 win_rate=_(", win rate {rate}", rate=_fmt(top["win_rate"], "rate", 0))
                 if pd.notna(top["win_rate"]) else "", n=_fmt(len(result), "count"))
    severity, recommendation, weight = "info", "", 0.3
    market = result.dropna(subset=["market_share_rate"])
    if key == "region_id" and len(market) > 1:
        low_rate, high_rate = market["market_share_rate"].min(), market["market_share_rate"].max()
        if low_rate == high_rate:
            text = _sentences(text, _("Our market share is the same in every region: {rate}.",
                                      rate=_fmt(low_rate, "rate", 0)))
        else:
            lows = [_shown(v) for v in market.loc[market["market_share_rate"] == low_rate, "region_id"]]
            highs = [_shown(v) for v in market.loc[market["market_share_rate"] == high_rate, "region_id"]]
            text = _sentences(text, _("Our market share ranges from {low} in {low_places} to {high} in "
                                      "{high_places}.", low=_fmt(low_rate, "rate", 0), low_places=_some(lows),
                                      high=_fmt(high_rate, "rate", 0), high_places=_some(highs)))
            weight = 1 - low_rate / high_rate if high_rate > 0 else 0.0
            if low_rate < high_rate / 2:
                severity = "watch"
                recommendation = _("Grow in {places}: our share of the market there is {low} against {high} in "
                                   "{best}.", places=_some(lows), low=_fmt(low_rate, "rate", 0),
                                   high=_fmt(high_rate, "rate", 0), best=_some(highs))
    return finding(text, severity, recommendation, kpi="bookings_amount", weight=weight)


# ------------------------------------------------------------------------------------------ leaderboards


@dataclass(frozen=True)
class LeaderboardMetric:
    """A leaderboard metric: its label, the tables it needs and how it rolls up from rep components."""

    name: str
    label: str  # an English msgid (shown with `_`)
    tables: tuple[str, ...]
    numerator: str
    denominator: str | None = None  # a rate: numerator / denominator; None: a sum
    kpi: str = ""  # the KPI of the registry it is about (findings), if any

    @property
    def unit(self) -> str:
        """How its values read: rate, amount or count."""
        return "rate" if self.denominator else ("count" if self.name.startswith("n_") else "amount")


LEADERBOARD_METRICS: dict[str, LeaderboardMetric] = {m.name: m for m in (
    LeaderboardMetric("bookings_amount", N_("Bookings (won amount)"), ("opportunities",), "bookings_amount",
                      kpi="bookings_amount"),
    LeaderboardMetric("n_won", N_("Won deals"), ("opportunities",), "n_won", kpi="won_deals"),
    LeaderboardMetric("win_rate", N_("Win rate"), ("opportunities",), "n_won", "n_closed", kpi="win_rate"),
    LeaderboardMetric("n_new_opportunities", N_("New opportunities"), ("opportunities",), "n_new_opportunities",
                      kpi="new_opportunities"),
    LeaderboardMetric("n_new_customers", N_("New customers"), ("opportunities",), "n_new_customers",
                      kpi="new_customers"),
    LeaderboardMetric("contract_amount", N_("Contract amount"), ("contracts",), "contract_amount",
                      kpi="contract_amount"),
    LeaderboardMetric("n_contracts", N_("Contracts signed"), ("contracts",), "n_contracts", kpi="contract_amount"),
    LeaderboardMetric("payments_amount", N_("Payments received"), ("payments", "contracts"), "payments_amount",
                      kpi="payments_received"),
    LeaderboardMetric("n_activities", N_("Follow-up activities"), ("activities",), "n_activities",
                      kpi="activities_per_rep"),
    LeaderboardMetric("attainment_rate", N_("Target attainment"), ("opportunities", "targets"), "bookings_amount",
                      "target_amount", kpi="target_attainment"),
)}
#: The dimension tables a leaderboard by rep, team or region needs (reps roll deals up to teams and regions).
_BOARD_DIMENSIONS = {"rep": ("reps",), "team": ("reps", "teams"), "region": ("reps", "regions")}


def leaderboard_tables(metric: str, by: str | None = None) -> tuple[str, ...]:
    """The tables leaderboard `metric` needs; with `by`, also the dimension tables of its rows."""
    check_choice("metric", metric, tuple(LEADERBOARD_METRICS))
    if by is None:
        return LEADERBOARD_METRICS[metric].tables
    check_choice("by", by, GROUP_LEVELS)
    return tuple(dict.fromkeys((*LEADERBOARD_METRICS[metric].tables, *_BOARD_DIMENSIONS[by])))


def _on_slice_board(tables: Callable[[dict[str, Any]], tuple[str, ...]]) -> Callable[[Any], Any]:
    """`crmlens.analysis.on_slice` for the leaderboards, whose needed tables depend on the call's keywords
    (`metric`, `by`): ``regions.leaderboard(s, metric="payments_amount", by="rep")`` on a source without
    payments shows the "needs table" note and returns None. Called with frames: the function as written."""

    def decorate(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if args and is_slice(args[0]):
                return on_slice(*tables(kwargs))(fn)(*args, **kwargs)
            return fn(*args, **kwargs)

        wrapper.frame_level = fn  # type: ignore[attr-defined]
        return wrapper

    return decorate


def leaderboard_history(s: Any, n_periods: int = 8) -> dict[str, pd.DataFrame | None]:
    """The earlier deals and contracts the leaderboards look at (the `n_periods` periods up to the slice's, read
    in the engine by `Slice.history`): new customers are told from existing ones, payments of older contracts
    credited to their rep. Tables the source lacks are None."""
    return {table: s.history(table, n_periods) if s.has(table) else None
            for table in ("opportunities", "contracts")}


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


@_on_slice_board(lambda call: leaderboard_tables(call.get("metric", "bookings_amount"), call.get("by", "rep")))
def leaderboard(frames: Frames, comparison: Frames | None, ctx: KpiContext,
                comparison_ctx: KpiContext | None = None, *, metric: str = "bookings_amount", by: str = "rep",
                history: Frames | None = None) -> pd.DataFrame:
    """The leaderboard of `metric` (see `LEADERBOARD_METRICS`) by rep, team or region, with the rank in the
    comparison period and the rank change (positive = moved up).

    One row per rep/team/region of the context's region (from the dimension tables — active reps only — plus
    any key seen in the data): rank, key (rep_id | team_id | region_id), name, `metric`, ``comparison_<metric>``,
    comparison_rank, rank_change. Ties share the best rank; rows are ordered by rank, name, key.
    Win and attainment rates are computed on the summed components (not averaged over reps). With a slice,
    ``regions.leaderboard(s, metric=..., by=...)`` needs the tables of `leaderboard_tables(metric, by)`.
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


@_on_slice_board(lambda call: ("opportunities", *_BOARD_DIMENSIONS[check_choice("by", call.get("by", "rep"),
                                                                              GROUP_LEVELS)]))
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
    return n_("{n} place", "{n} places", int(n))  # type: ignore[call-overload]


def _board_metric(result: pd.DataFrame) -> str | None:
    """The metric column of a `leaderboard` frame."""
    metric = [c for c in result.columns if c not in ("rank", "name", "comparison_rank", "rank_change",
                                                     "rep_id", "team_id", "region_id")
              and not c.startswith("comparison_")]
    return metric[0] if metric else None


def _moves(result: pd.DataFrame, who: pd.Series, metric: str) -> list[str]:
    """Who climbed and who fell the most since the comparison period — only when the comparison period ranked
    anything (its values differ: equal values share one rank, and a move from a shared rank says nothing)."""
    before = result[f"comparison_{metric}"].dropna() if f"comparison_{metric}" in result.columns else pd.Series()
    moves = result.dropna(subset=["rank_change"])
    if moves.empty or before.nunique() < 2:
        return []
    sentences = []
    for sign, one, many in ((1, N_("{name} climbed the most ({places}, now #{rank})."),
                             N_("{names} climbed the most ({places} each).")),
                            (-1, N_("{name} fell the most ({places}, now #{rank})."),
                             N_("{names} fell the most ({places} each)."))):
        change = moves["rank_change"].astype("float64") * sign
        if change.max() <= 0:
            continue
        most = moves[change == change.max()]
        if len(most) == 1:
            sentences.append(_(one, name=who[most.index[0]], places=_places(change.max()),
                               rank=_fmt(most["rank"].iloc[0], "count")))
        else:
            sentences.append(_(many, names=_some(who[most.index].tolist()), places=_places(change.max())))
    return sentences


def describe_leaderboard(result: pd.DataFrame) -> Finding | None:
    """Who leads the board, who is last and who moved the most since the comparison period. Equal values share
    a rank: a tie is said to be one (nobody is "the best" among equals), a board where everybody has the same
    value ranks nobody, and a board of one is no ranking."""
    metric = _board_metric(result) or ""
    spec = LEADERBOARD_METRICS.get(metric)
    label = _(spec.label).lower() if spec else metric
    unit = spec.unit if spec else "number"
    kpi = spec.kpi if spec else ""
    ranked = result.dropna(subset=["rank"]) if metric and "rank" in result.columns else result.iloc[:0]
    if ranked.empty:
        if metric == "attainment_rate" and not result.empty:
            return finding(_("No target is set for this period at this level, so there is no attainment to rank."),
                           "info", kpi=kpi)
        return finding(_("Nobody has a value on the {label} board in this slice.", label=label), "info", kpi=kpi)
    if not (ranked[metric].fillna(0) > 0).any():
        return finding(n_("Nobody scored on {label} in this slice: {n} on the board, at 0.",
                          "Nobody scored on {label} in this slice: {n} on the board, all at 0.", len(ranked),
                          label=label), "info", kpi=kpi)
    who = _who(result, _key_of(result))
    values = ranked[metric]
    last = ranked[ranked["rank"] == ranked["rank"].max()]
    low = last[metric].iloc[0]
    severity, recommendation, weight = "info", "", 0.0
    if metric == "attainment_rate" and low < 1:  # measured against the target, not against the others
        severity = "act" if low < 0.5 else "watch"
        recommendation = _("Review the pipeline and deal coverage of {names} first: {value} of the target reached.",
                           names=_some(who[last.index].tolist()), value=_fmt(low, "rate", 0))
        weight = float(1 - low)
    if len(ranked) == 1:
        return finding(_("Only {name} is on the {label} board, with {value}.", name=who[ranked.index[0]],
                         label=label, value=_fmt(values.iloc[0], unit)), severity, recommendation, kpi=kpi,
                       weight=weight)
    if values.nunique() == 1:
        return finding(_("All {groups} are level on {label}, with {value} each: nobody leads.",
                         groups=_groups(result, len(ranked)), label=label, value=_fmt(values.iloc[0], unit)),
                       severity, recommendation, kpi=kpi, weight=weight or 0.1)
    leaders = ranked[ranked["rank"] == 1]
    top = _fmt(leaders[metric].iloc[0], unit)
    if len(leaders) == 1:
        sentences = [_("{name} leads on {label} with {value}.", name=who[leaders.index[0]], label=label, value=top)]
    else:
        sentences = [_("{names} share first place on {label} with {value} each.",
                       names=_some(who[leaders.index].tolist()), label=label, value=top)]
    sentences += _moves(result, who, metric)
    if len(ranked) > 2:
        if len(last) == 1:
            sentences.append(_("Last is {name}, with {value}.", name=who[last.index[0]], value=_fmt(low, unit)))
        else:
            sentences.append(_("{names} share last place, with {value} each.", names=_some(who[last.index].tolist()),
                               value=_fmt(low, unit)))
    best = leaders[metric].iloc[0]
    weight = weight or (float(1 - low / best) if best > 0 else 0.0)
    return finding(_sentences(*sentences), severity, recommendation, kpi=kpi, weight=weight)


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


@on_slice("activities")
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
    counts = _crosstab(group, done["activity_type"].astype("string"))
    types = sorted(counts.columns)
    stats = pd.DataFrame(index=n_reps.index.union(counts.index))
    stats["n_reps"] = n_reps.reindex(stats.index, fill_value=0)
    stats["n_activities"] = counts.sum(axis=1).reindex(stats.index, fill_value=0)
    stats["activities_per_rep"] = ratio_series(stats["n_activities"], stats["n_reps"])
    for t in types:
        stats[f"{t}_per_rep"] = ratio_series(counts[t].reindex(stats.index, fill_value=0), stats["n_reps"])
    out = _finish(stats, frames, ctx, by)
    out[["n_reps", "n_activities"]] = out[["n_reps", "n_activities"]].fillna(0).astype("int64")
    out = out.sort_values(["activities_per_rep", "name"], ascending=[False, True],
                          na_position="last").reset_index(drop=True)
    return _noting(out, _not_in_source(acts, "activities", "occurred_at"))


def _crosstab(rows: pd.Series, columns: pd.Series) -> pd.DataFrame:
    """``pd.crosstab(rows, columns)`` (pairs with a missing side left out; labels sorted), counted on the
    factorized keys: crosstab groups a million text pairs in seconds, this in a fraction of it."""
    row_codes, row_keys = pd.factorize(rows.to_numpy(), sort=True)
    col_codes, col_keys = pd.factorize(columns.to_numpy(), sort=True)
    both = (row_codes >= 0) & (col_codes >= 0)
    cells = np.bincount(row_codes[both] * len(col_keys) + col_codes[both], minlength=len(row_keys) * len(col_keys))
    return pd.DataFrame(cells.reshape(len(row_keys), len(col_keys)), index=pd.Index(row_keys, dtype="string"),
                        columns=pd.Index(col_keys, dtype="string"))


def _extremes(rated: pd.DataFrame, column: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows at the highest and at the lowest value of `column` (ties kept together)."""
    values = rated[column]
    return rated[values == values.max()], rated[values == values.min()]


def describe_activities_per_rep(result: pd.DataFrame) -> Finding | None:
    """Which group is the busiest per rep and which the quietest (ties named together; all level: said so)."""
    missing = _missing_finding(result, _("the activities done"), "activities_per_rep")
    if missing:
        return missing
    rated = result.dropna(subset=["activities_per_rep"])
    rated = rated[rated["n_reps"] > 0]
    if rated.empty or rated["n_activities"].sum() == 0:
        return finding(_("No activity was recorded in this slice."), "info", kpi="activities_per_rep")
    who = _who(result, _key_of(result))
    top, low = _extremes(rated, "activities_per_rep")
    high_value, low_value = top["activities_per_rep"].iloc[0], low["activities_per_rep"].iloc[0]
    per_rep = functools.partial(_fmt, unit="ratio", digits=1)
    if len(rated) == 1:
        return finding(_("{name} logged {value} activities per rep.", name=who[rated.index[0]],
                         value=per_rep(high_value)), "info", kpi="activities_per_rep")
    if high_value == low_value:
        return finding(_("All {groups} logged the same {value} activities per rep.",
                         groups=_groups(result, len(rated)), value=per_rep(high_value)), "info",
                       kpi="activities_per_rep")
    most = (_("{name} is the most active with {value} activities per rep.", name=who[top.index[0]],
              value=per_rep(high_value)) if len(top) == 1 else
            _("{names} are the most active with {value} activities per rep each.",
              names=_some(who[top.index].tolist()), value=per_rep(high_value)))
    fewest = (_("{name} logs the fewest ({value} per rep).", name=who[low.index[0]], value=per_rep(low_value))
              if len(low) == 1 else
              _("{names} log the fewest ({value} per rep each).", names=_some(who[low.index].tolist()),
                value=per_rep(low_value)))
    ratio_low = low_value / high_value
    severity, recommendation = "info", ""
    if ratio_low < 0.5:
        severity = "watch"
        recommendation = _("Review the activity plan of {names} with their managers: {low} activities per rep "
                           "against {high} for the most active.", names=_some(who[low.index].tolist()),
                           low=per_rep(low_value), high=per_rep(high_value))
    return finding(_sentences(most, fewest), severity, recommendation, kpi="activities_per_rep",
                   weight=float(1 - ratio_low))


@on_slice("activities")
@memo_by_inputs
def activity_completion(frames: Frames, ctx: KpiContext, *, by: str = "team") -> pd.DataFrame:
    """Completion of the activities due in the period (``due_at`` in the period), by rep/team/region.

    Columns: key, name, n_due, n_completed (``completed_at`` set), completion_rate, n_overdue (not completed
    and due before the reference time). A source that records no completion (``completed_at`` empty) has no
    completion figures (empty, not 0; ``.attrs["not_in_source"]``). Needs activities.
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
    gaps = _not_in_source(acts, "activities", "due_at", "completed_at")
    if gaps:  # nothing to count: no figure rather than a zero
        for c in ("n_completed", "n_overdue"):
            out[c] = pd.array([pd.NA] * len(out), dtype="Int64")
        out["completion_rate"] = np.nan
    out = out[[_GROUP_KEYS[by], "name", "n_due", "n_completed", "completion_rate", "n_overdue"]]
    out = out.sort_values(["completion_rate", "name"], na_position="last").reset_index(drop=True)
    return _noting(out, gaps)


def describe_activity_completion(result: pd.DataFrame) -> Finding | None:
    """Completion of the activities due in the period and the group completing the fewest (ties named
    together; nothing said about a "weakest" group when all complete the same share)."""
    missing = _missing_finding(result, _("the completion of due activities"), "activity_completion_rate")
    if missing:
        return missing
    total_due = int(result["n_due"].sum())
    if total_due == 0:
        return finding(_("No activity fell due in this slice."), "info", kpi="activity_completion_rate")
    overall = float(result["n_completed"].sum()) / total_due
    sentences = [n_("{rate} of the {n} activity due in the period was completed.",
                    "{rate} of the {n} activities due in the period were completed.", total_due,
                    rate=_fmt(overall, "rate", 0))]
    rated = result.dropna(subset=["completion_rate"])
    who = _who(result, _key_of(result))
    recommendation = ""
    if len(rated) > 1 and rated["completion_rate"].nunique() > 1:
        _top, low = _extremes(rated, "completion_rate")
        rate = _fmt(low["completion_rate"].iloc[0], "rate", 0)
        if len(low) == 1:
            overdue = int(low["n_overdue"].iloc[0])
            name = who[low.index[0]]
            sentences.append(n_("{name} completes the fewest ({rate}, {n} overdue).",
                                "{name} completes the fewest ({rate}, {n} overdue).", overdue, name=name, rate=rate))
            if overdue:
                recommendation = n_("Ask {name} to close their {n} overdue activity.",
                                    "Ask {name} to close their {n} overdue activities.", overdue, name=name)
        else:
            sentences.append(_("{names} complete the fewest ({rate} each).", names=_some(who[low.index].tolist()),
                               rate=rate))
    severity = "good" if overall >= 0.9 else ("watch" if overall < 0.7 else "info")
    return finding(_sentences(*sentences), severity, recommendation if severity == "watch" else "",
                   kpi="activity_completion_rate", weight=float(1 - overall))


@on_slice("leads")
def lead_first_response(frames: Frames, ctx: KpiContext, *, by: str = "rep") -> pd.DataFrame:
    """Time to first response to the leads created in the period, by owner rep/team/region.

    Columns: key, name, n_leads, n_responded, response_rate, median_first_response_hours (from
    ``created_at`` to ``first_response_at``). Only groups that own leads are listed. A source that records no
    first response has no response figures (empty, not 0; ``.attrs["not_in_source"]``). Needs leads.
    """
    check_choice("by", by, GROUP_LEVELS)
    _need(frames, "leads")
    leads = _in_region(frames["leads"], ctx)
    gaps = _not_in_source(leads, "leads", "first_response_at")
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
    if gaps:  # no response recorded at all: no figure rather than "0 answered"
        out["n_responded"] = pd.array([pd.NA] * len(out), dtype="Int64")
        out["response_rate"] = np.nan
    out = out[[_GROUP_KEYS[by], "name", "n_leads", "n_responded", "response_rate", "median_first_response_hours"]]
    out = out.sort_values(["median_first_response_hours", "name"], ascending=[False, True],
                          na_position="last").reset_index(drop=True)
    return _noting(out, gaps)


def describe_lead_first_response(result: pd.DataFrame) -> Finding | None:
    """The slowest and the fastest responders to new leads (ties named together; all equal: said so), and the
    groups that answered none of their leads."""
    kpi = "lead_first_response_days"
    missing = _missing_finding(result, _("the time to answer new leads"), kpi)
    if missing:
        return missing
    if result.empty:
        return finding(_("No lead with an owner was created in this slice."), "info", kpi=kpi)
    who = _who(result, _key_of(result))
    hours = functools.partial(_fmt, unit="number", digits=1)
    silent = result[(result["n_responded"] == 0) & (result["n_leads"] > 0)]
    rated = result.dropna(subset=["median_first_response_hours"])
    if rated.empty:
        return finding(n_("The {n} lead created in this slice has no recorded first response.",
                          "None of the {n} leads created in this slice has a recorded first response.",
                          int(result["n_leads"].sum())), "watch", kpi=kpi, weight=1.0)
    slow, fast = _extremes(rated, "median_first_response_hours")
    slow_hours, fast_hours = slow["median_first_response_hours"].iloc[0], fast["median_first_response_hours"].iloc[0]
    if len(rated) == 1:
        sentences = [_("{name} answers new leads in {hours} hours (median).", name=who[rated.index[0]],
                       hours=hours(slow_hours))]
    elif slow_hours == fast_hours:
        sentences = [_("All {groups} answer new leads in {hours} hours (median).",
                       groups=_groups(result, len(rated)), hours=hours(slow_hours))]
    else:
        sentences = [_("{slow} takes the longest to answer new leads ({slow_hours} hours median) vs {fast_hours} "
                       "hours for {fast}.", slow=_some(who[slow.index].tolist()), slow_hours=hours(slow_hours),
                       fast_hours=hours(fast_hours), fast=_some(who[fast.index].tolist()))]
    severity, recommendation, weight = "info", "", 0.0
    if slow_hours > 24 and slow_hours > fast_hours:
        severity, weight = "watch", float(1 - fast_hours / slow_hours)
        recommendation = _("Have {names} answer new leads within a day: their median is {hours} hours.",
                           names=_some(who[slow.index].tolist()), hours=hours(slow_hours))
    if len(silent):
        sentences.append(n_("{names} answered none of their new leads ({n} lead).",
                            "{names} answered none of their new leads ({n} leads).", int(silent["n_leads"].sum()),
                            names=_some(who[silent.index].tolist())))
        severity, weight = "watch", max(weight, float(silent["n_leads"].sum() / result["n_leads"].sum()))
        recommendation = recommendation or _("Hand the unanswered leads of {names} to a rep who answers.",
                                             names=_some(who[silent.index].tolist()))
    return finding(_sentences(*sentences), severity, recommendation, kpi=kpi, weight=weight)


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


def _days(days: int | None, ctx: KpiContext) -> int:
    """`days`, or the context's `forgotten_days` (the run's parameter) when None; checked."""
    days = ctx.forgotten_days if days is None else days
    if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
        raise ParameterError(f"days: {days!r} is not allowed; use a whole number of days > 0")
    return days


@memo_by_inputs
def account_follow_up(frames: Frames, ctx: KpiContext, *, days: int | None = None) -> pd.DataFrame:
    """Every owned account (a rep's, not in the public pool, created before the reference time) of the region
    with its follow-up state at the
    reference time (as-of, capped at the period end): account_id, name, owner_rep_id, account_level,
    last_activity_at, days_since_activity (empty when never), is_forgotten (no activity in the `days` days
    before the reference time; default: the context's `forgotten_days`), n_open_opportunities and
    open_opportunity_amount (open deals of the slice).

    `frames["activities"]` must cover the `days` days before the reference time: pass a history, e.g.
    ``s.tables.with_frames(activities=s.history("activities", history_periods_for(s.period, s.as_of, days)))``,
    or, cheaper, each account's latest activity (`follow_up_frames`). A source that records no owner of its
    accounts is noted in ``.attrs["not_in_source"]``. Needs accounts and activities.
    """
    days = _days(days, ctx)
    _need(frames, "accounts", "activities")
    ref = reference_time(ctx)
    gaps = _not_in_source(frames["accounts"], "accounts", "owner_rep_id")
    owned = _owned_accounts(frames["accounts"], ctx)
    owned = owned[~(_col(owned, "created_at", "datetime64[us]") >= ref).fillna(False).astype(bool)]
    latest = getattr(frames, "latest", None)  # a slice's tables: each account's latest activity from the engine
    last = (_last_activity_series(latest("activities", "occurred_at", "account_id", ref)) if callable(latest)
            else last_activity(frames["activities"], ref))
    out = pd.DataFrame({"account_id": owned["account_id"].astype("string").to_numpy(),
                        "name": _col(owned, "name").astype("string").to_numpy(),
                        "owner_rep_id": owned["owner_rep_id"].astype("string").to_numpy(),
                        "account_level": _col(owned, "level").astype("string").to_numpy()})
    out["last_activity_at"] = lookup(out["account_id"], last).to_numpy()
    out["days_since_activity"] = (ref - out["last_activity_at"]).dt.total_seconds() / 86400
    out["is_forgotten"] = ~(out["last_activity_at"] >= ref - pd.Timedelta(days=days)).fillna(False).astype(bool)
    amount = pd.Series(dtype="float64")
    count = pd.Series(dtype="float64")
    if "opportunities" in frames:
        opps = frames["opportunities"]
        still_open = opps["is_won"].isna() | (opps["closed_at"] >= ref).fillna(False).astype(bool)
        open_opps = opps[still_open & opps["account_id"].notna()]
        codes, uniques = pd.factorize(open_opps["account_id"].astype("string"))  # grouped once, by codes
        index = pd.Index(pd.array(uniques, dtype="string"))
        amount = pd.Series(np.bincount(codes, open_opps["amount"].astype("float64").fillna(0.0).to_numpy(),
                                       minlength=len(uniques)), index=index)
        count = pd.Series(np.bincount(codes, minlength=len(uniques)).astype("float64"), index=index)
    out["n_open_opportunities"] = lookup(out["account_id"], count).fillna(0).astype("int64").to_numpy()
    out["open_opportunity_amount"] = lookup(out["account_id"], amount).astype("float64").fillna(0.0).to_numpy()
    return _noting(out.sort_values(["owner_rep_id", "account_id"]).reset_index(drop=True), gaps, days=days)


@on_slice("accounts", "activities")
def follow_up_frames(s: Any, days: int | None = None) -> Any:
    """The slice's tables with, as ``activities``, each account's latest activity before the reference time
    (`last_activities`, computed in the engine): what `forgotten_by_rep` and `call_next` need to look back
    before the period — ``regions.forgotten_by_rep(s, frames=regions.follow_up_frames(s))``."""
    return s.tables.with_frames(activities=last_activities(s, days))


@on_slice("accounts", "activities")
def forgotten_by_rep(frames: Frames, ctx: KpiContext, *, days: int | None = None) -> pd.DataFrame:
    """Reps ranked by the share of their owned accounts that are forgotten (no activity in the `days` days
    before the reference time, default the context's `forgotten_days`; see `account_follow_up`).

    One row per active rep owning accounts (all reps when the reps table is absent): rank, rep_id, name,
    team_id, n_owned_accounts, n_forgotten_accounts, n_forgotten_a_accounts (of account level A, the most
    valuable), forgotten_rate. Ordered by forgotten_rate, then n_forgotten_accounts (both descending), then
    rep_id; ties share a rank. ``.attrs["days"]`` is the number of days.
    """
    state = account_follow_up(frames, ctx, days=days)
    grouped = state.groupby("owner_rep_id")
    top_level = state["is_forgotten"] & state["account_level"].eq("A").fillna(False).astype(bool)
    out = pd.DataFrame({"n_owned_accounts": grouped.size(),
                        "n_forgotten_accounts": grouped["is_forgotten"].sum().astype("int64"),
                        "n_forgotten_a_accounts": top_level.groupby(state["owner_rep_id"]).sum().astype("int64")})
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
    cols = ["rank", "rep_id", "name", "team_id", "n_owned_accounts", "n_forgotten_accounts",
            "n_forgotten_a_accounts", "forgotten_rate"]
    return _noting(out[cols].reset_index(drop=True), state.attrs.get(NOT_IN_SOURCE, []),
                   days=state.attrs.get("days"))


def _rep_label(rep_id: Any, name: Any) -> str:
    """"R0012 Ann Lee": a rep as a recommendation names them (the id first: names are not unique)."""
    return str(rep_id) if i18n.is_missing(name) or str(name) == str(rep_id) else f"{rep_id} {name}"


def describe_forgotten_by_rep(result: pd.DataFrame) -> Finding | None:
    """Which reps neglect their accounts, in numbers, and whom each flagged rep should call first. Reps at
    `FORGOTTEN_FLAG_RATE` or more are flagged; otherwise the highest share is named only when it is not shared
    by every rep."""
    kpi = "forgotten_accounts"
    missing = _missing_finding(result, _("forgotten accounts"), kpi)
    if missing:
        return missing
    if result.empty:
        return finding(_("No rep owns accounts in this slice."), "info", kpi=kpi)
    days = _fmt(result.attrs.get("days") or KpiContext.forgotten_days, "count")
    total, owned = int(result["n_forgotten_accounts"].sum()), int(result["n_owned_accounts"].sum())
    if total == 0:
        return finding(n_("The {n} owned account had a follow-up in the last {days} days: none is forgotten.",
                          "All {n} owned accounts had a follow-up in the last {days} days: none is forgotten.",
                          owned, days=days), "good", kpi=kpi, weight=0.2)
    who = _who(result, "rep_id")

    def item(i: Any) -> str:
        row = result.loc[i]
        return _("{name} ({rate} of {n})", name=who[i], rate=_fmt(row["forgotten_rate"], "rate", 0),
                 n=_fmt(row["n_owned_accounts"], "count"))

    sentences = [n_("{n} of {owned} owned accounts is forgotten (no activity for {days}+ days).",
                    "{n} of {owned} owned accounts are forgotten (no activity for {days}+ days).", total,
                    owned=_fmt(owned, "count"), days=days)]
    rates = result["forgotten_rate"]
    flagged = result[rates >= FORGOTTEN_FLAG_RATE]
    worst = result[rates == rates.max()]
    if len(flagged):
        sentences.append(n_("{n} rep has forgotten half or more of their accounts: {reps}.",
                            "{n} reps have forgotten half or more of their accounts: {reps}.", len(flagged),
                            reps=_some([item(i) for i in flagged.index])))
        named = flagged
    elif len(result) > 1 and rates.nunique() > 1:
        sentences.append(_("The highest share forgotten: {reps}.", reps=_some([item(i) for i in worst.index])))
        named = worst
    else:
        named = result.iloc[:0]
    others = result.drop(index=named.index)
    if len(named) and len(others):
        sentences.append(_("The other reps' median is {rate}.", rate=_fmt(others["forgotten_rate"].median(), "rate",
                                                                           0)))
    calls = []
    for i in named.index[:3]:
        row = result.loc[i]
        rep = _rep_label(row["rep_id"], row["name"])
        n_a = int(row["n_forgotten_a_accounts"])
        calls.append(n_("{rep}: call the {n} A-level account silent for {days}+ days first.",
                        "{rep}: call the {n} A-level accounts silent for {days}+ days first.", n_a, rep=rep, days=days)
                     if n_a else
                     n_("{rep}: call the {n} account silent for {days}+ days.",
                        "{rep}: call the {n} accounts silent for {days}+ days.", int(row["n_forgotten_accounts"]),
                        rep=rep, days=days))
    severity = "act" if len(flagged) else "watch"
    weight = float(rates.max()) if len(flagged) else total / owned
    return finding(_sentences(*sentences), severity, _sentences(*calls), kpi=kpi, weight=weight)


@on_slice("accounts", "activities")
def call_next(frames: Frames, ctx: KpiContext, *, days: int | None = None, top_n: int = 5) -> pd.DataFrame:
    """The accounts each rep should call next: the `top_n` highest-scoring owned accounts per rep.

    Scoring rule (documented, 0–6)::

        score = staleness × level_weight × (1 + pipeline_weight)
        staleness       = min(days since last activity, 365) / 365   (1 when never contacted)
        level_weight    = 3 for level A, 2 for B, 1 for C or unknown  (LEVEL_WEIGHTS)
        pipeline_weight = the account's open opportunity amount / the largest one among the rep's accounts
                          (0 when the rep has no open pipeline)

    so a long-silent A account with the rep's biggest open deal comes first. Ties: higher open amount,
    then account_id. Columns: owner_rep_id, rep_name, priority (1 = call first), account_id, name,
    account_level, days_since_activity, is_forgotten (`days`, default the context's `forgotten_days`),
    n_open_opportunities, open_opportunity_amount, score.
    Needs accounts and activities (see `account_follow_up` for the activity history it expects).
    """
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n <= 0:
        raise ParameterError(f"top_n: {top_n!r} is not allowed; use a whole number > 0")
    state = account_follow_up(frames, ctx, days=days)
    staleness = (state["days_since_activity"].fillna(STALENESS_CAP_DAYS).clip(upper=STALENESS_CAP_DAYS)
                 / STALENESS_CAP_DAYS)
    weight = state["account_level"].map(LEVEL_WEIGHTS).astype("float64").fillna(1.0)
    biggest = state.groupby("owner_rep_id")["open_opportunity_amount"].transform("max")
    pipeline = ratio_series(state["open_opportunity_amount"], biggest).fillna(0.0)
    scored = state.assign(score=(staleness * weight * (1 + pipeline)).round(6))
    scored = scored.sort_values(["owner_rep_id", "score", "open_opportunity_amount", "account_id"],
                                ascending=[True, False, False, True], kind="mergesort")
    scored["priority"] = scored.groupby("owner_rep_id").cumcount() + 1
    scored = scored[scored["priority"] <= top_n]
    reps = _reps_frame(frames).drop_duplicates("rep_id").set_index("rep_id")["rep_name"]
    scored["rep_name"] = scored["owner_rep_id"].map(reps).fillna(scored["owner_rep_id"]).astype("string")
    cols = ["owner_rep_id", "rep_name", "priority", "account_id", "name", "account_level", "days_since_activity",
            "is_forgotten", "n_open_opportunities", "open_opportunity_amount", "score"]
    return _noting(scored[cols].reset_index(drop=True), state.attrs.get(NOT_IN_SOURCE, []))


def describe_call_next(result: pd.DataFrame) -> Finding | None:
    """The most urgent call across all reps (several accounts at the same top score are said to tie)."""
    kpi = "forgotten_accounts"
    missing = _missing_finding(result, _("the accounts to call next"), kpi)
    if missing:
        return missing
    if result.empty:
        return finding(_("No owned account to call in this slice."), "info", kpi=kpi)
    ordered = result.sort_values(["score", "open_opportunity_amount", "owner_rep_id", "account_id"],
                                 ascending=[False, False, True, True], kind="mergesort")
    top = ordered.iloc[0]
    tied = int((result["score"] == top["score"]).sum())
    reps = _who(result, "owner_rep_id", "rep_name")
    accounts = _who(result, "account_id")
    details = []
    if not i18n.is_missing(top["account_level"]):
        details.append(_("level {level}", level=top["account_level"]))
    details.append(_("no activity on record") if pd.isna(top["days_since_activity"]) else
                   n_("silent for {n} day", "silent for {n} days", int(top["days_since_activity"])))
    if top["open_opportunity_amount"] > 0:
        details.append(_("{amount} in open deals", amount=_fmt(top["open_opportunity_amount"], "amount")))
    call = _("{rep} → {account} ({details})", rep=reps[ordered.index[0]], account=accounts[ordered.index[0]],
             details=_(", ").join(details))
    text = (_("Most urgent call: {call}.", call=call) if tied == 1 else
            _("{n} accounts tie for the most urgent call (score {score}), e.g. {call}.", n=_fmt(tied, "count"),
              score=_fmt(top["score"], "score"), call=call))
    text = _sentences(text, n_("Each rep's list has up to {n} account.", "Each rep's list has up to {n} accounts.",
                               int(result["priority"].max())))
    recommendation = _("{rep}: call {account} ({account_id}) first.",
                       rep=_rep_label(top["owner_rep_id"], top["rep_name"]), account=_shown(top["name"]),
                       account_id=top["account_id"])
    return finding(text, "watch" if bool(top["is_forgotten"]) else "info", recommendation, kpi=kpi,
                   weight=float(min(1.0, top["score"] / 6)))


@on_slice("activities")
def followups_by_rep(frames: Frames, ctx: KpiContext) -> pd.DataFrame:
    """Follow-ups per rep in the period: n_followups (activities that occurred), n_accounts_followed
    (distinct accounts touched), n_owned_accounts and coverage_rate (share of the rep's owned accounts that
    had an activity in the period, by anyone; empty without the accounts table — not 0).
    One row per active rep of the region (from reps) or rep seen in the activities. Needs activities."""
    _need(frames, "activities")
    acts = _in_region(frames["activities"], ctx)
    done = _rows(acts, in_period(_col(acts, "occurred_at", "datetime64[us]"), ctx), "rep_id", "account_id")
    rep = done["rep_id"].astype("string")
    stats = pd.DataFrame({"n_followups": rep.value_counts(),
                          "n_accounts_followed": done["account_id"].groupby(rep).nunique()})
    has_accounts = "accounts" in frames
    if has_accounts:
        owned = _owned_accounts(frames["accounts"], ctx)
        owner = owned["owner_rep_id"].astype("string")
        followed = isin(owned["account_id"], done["account_id"].dropna()).astype("int64")
        stats = stats.join(pd.DataFrame({"n_owned_accounts": owner.value_counts(),
                                         "n_owned_followed": followed.groupby(owner).sum()}), how="outer")
    else:
        stats["n_owned_accounts"] = np.nan
        stats["n_owned_followed"] = np.nan
    out = _finish(stats, frames, ctx, "rep")
    for c in ("n_followups", "n_accounts_followed"):
        out[c] = out[c].fillna(0).astype("int64")
    out["n_owned_accounts"] = (out["n_owned_accounts"].fillna(0) if has_accounts
                               else out["n_owned_accounts"]).astype("Int64")
    out["coverage_rate"] = ratio_series(out["n_owned_followed"].fillna(0), out["n_owned_accounts"])
    out = out[["rep_id", "name", "n_followups", "n_accounts_followed", "n_owned_accounts", "coverage_rate"]]
    out = out.sort_values(["n_followups", "name"], ascending=[False, True]).reset_index(drop=True)
    gaps = _not_in_source(acts, "activities", "occurred_at")
    if has_accounts:
        gaps += _not_in_source(frames["accounts"], "accounts", "owner_rep_id")
    return _noting(out, gaps)


def describe_followups_by_rep(result: pd.DataFrame) -> Finding | None:
    """Follow-up volume, and the reps covering the fewest of their own accounts (ties named together)."""
    kpi = "activities_per_rep"
    gaps = result.attrs.get(NOT_IN_SOURCE) or []
    if "activities.occurred_at" in gaps:
        return _missing_finding(result, _("follow-ups"), kpi)
    if result.empty or result["n_followups"].sum() == 0:
        return finding(_("No follow-up activity happened in this slice."), "watch" if len(result) else "info",
                       kpi=kpi)
    who = _who(result, "rep_id")
    counts = result["n_followups"]
    top = result[counts == counts.max()]
    most = _fmt(counts.max(), "count")
    if len(result) == 1:
        sentences = [_("{name} logged {n} follow-ups.", name=who[top.index[0]], n=most)]
    elif counts.nunique() == 1:
        sentences = [_("Every rep logged {n} follow-ups.", n=most)]
    elif len(top) == 1:
        sentences = [_("{name} logged the most follow-ups ({n}).", name=who[top.index[0]], n=most)]
    else:
        sentences = [_("{names} logged the most follow-ups ({n} each).", names=_some(who[top.index].tolist()),
                       n=most)]
    rated = result.dropna(subset=["coverage_rate"])
    severity, recommendation, weight = "info", "", 0.0
    if len(rated) and (rated["coverage_rate"] >= 1).all():
        sentences.append(_("Every rep touched all of their owned accounts."))
        severity = "good"
    elif len(rated):
        low_rate = rated["coverage_rate"].min()
        low = rated[rated["coverage_rate"] == low_rate]
        rate = _fmt(low_rate, "rate", 0)
        if len(low) == 1:
            row = low.iloc[0]
            n_owned = int(row["n_owned_accounts"])
            untouched = n_owned - round(n_owned * low_rate)
            sentences.append(n_("{name} touched only {rate} of their {n} owned account.",
                                "{name} touched only {rate} of their {n} owned accounts.", n_owned,
                                name=who[low.index[0]], rate=rate)
                             if len(rated) > 1 else
                             n_("{name} touched {rate} of their {n} owned account.",
                                "{name} touched {rate} of their {n} owned accounts.", n_owned,
                                name=who[low.index[0]], rate=rate))
            if low_rate < 0.5 and untouched:
                recommendation = n_("{rep}: plan a call or visit to the {n} owned account nobody touched this period.",
                                    "{rep}: plan calls or visits to the {n} owned accounts nobody touched this "
                                    "period.", untouched, rep=_rep_label(row["rep_id"], row["name"]))
        else:
            sentences.append(_("{names} touched the fewest of their owned accounts ({rate} each).",
                               names=_some(who[low.index].tolist()), rate=rate))
        if low_rate < 0.5:
            severity, weight = "watch", float(1 - low_rate)
    return finding(_sentences(*sentences), severity, recommendation, kpi=kpi, weight=weight)


@on_slice("accounts")
def public_pool(frames: Frames, ctx: KpiContext) -> pd.DataFrame:
    """The public pool (公海) by region: n_accounts, n_pool_accounts (in the pool and entered by the
    reference time), pool_rate, n_entered (entered the pool in the period: flow in) and
    median_days_in_pool.

    Flow out cannot be measured: the accounts table keeps only the current flag and the *last* entry time
    (``pool_entered_at``), so an account claimed from the pool leaves no trace, and an account that
    re-entered counts once at its latest entry. n_entered is thus a lower bound of the flow in. Regions
    whose accounts carry no ``is_public_pool`` value (a source without a pool) have empty pool counts; a
    source without ``pool_entered_at`` has no flow in nor time in the pool (empty, not 0). The columns the
    source does not record are in ``.attrs["not_in_source"]``. Needs accounts.
    """
    _need(frames, "accounts")
    gaps = _not_in_source(frames["accounts"], "accounts", "is_public_pool")
    if ctx.region != "all":
        gaps += _not_in_source(frames["accounts"], "accounts", "region_id")
    no_entry = _not_in_source(frames["accounts"], "accounts", "pool_entered_at")
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
    if no_entry:  # when accounts entered the pool is not recorded: no flow in, rather than 0
        out["n_entered"] = pd.array([pd.NA] * len(out), dtype="Int64")
    out["pool_rate"] = ratio_series(out["n_pool_accounts"], out["n_accounts"])
    out = out[["region_id", "name", "n_accounts", "n_pool_accounts", "pool_rate", "n_entered",
               "median_days_in_pool"]]
    out = out.sort_values(["n_pool_accounts", "region_id"], ascending=[False, True]).reset_index(drop=True)
    return _noting(out, gaps, no_entry_time=bool(no_entry))


def describe_public_pool(result: pd.DataFrame) -> Finding | None:
    """Size of the public pool (公海), its flow in and the region with the largest pool (only when several
    regions have one and no tie); a source without the pool says so."""
    kpi = "public_pool_accounts"
    missing = _missing_finding(result, _("the public pool"), kpi)
    if missing:
        return missing
    total = int(result["n_accounts"].sum())
    if total == 0:
        return finding(_("No account of the source is assigned to this region."), "info", kpi=kpi)
    if result["n_pool_accounts"].isna().all():
        return finding(_("Not in this source: no account of this region has an `is_public_pool` value, so the "
                         "public pool cannot be shown."), "info", kpi=kpi)
    pooled = int(result["n_pool_accounts"].sum())
    if pooled == 0:
        return finding(n_("The {n} account of this region is not in the public pool.",
                          "None of the {n} accounts of this region sits in the public pool.", total), "info", kpi=kpi)
    share = pooled / total
    sentences = [n_("{n} of {total} accounts ({share}) sits in the public pool.",
                    "{n} of {total} accounts ({share}) sit in the public pool.", pooled,
                    total=_fmt(total, "count"), share=_fmt(share, "share", 0))]
    if result.attrs.get("no_entry_time"):
        sentences.append(_("When they entered it is not in this source."))
    else:
        sentences.append(n_("{n} of them entered it during the period.", "{n} of them entered it during the period.",
                            int(result["n_entered"].sum())))
    pools = result.dropna(subset=["n_pool_accounts"])
    pools = pools[pools["n_pool_accounts"] > 0]
    if len(pools) > 1:
        largest = pools[pools["n_pool_accounts"] == pools["n_pool_accounts"].max()]
        who = _who(result, "region_id")
        n = _fmt(largest["n_pool_accounts"].iloc[0], "count")
        sentences.append(_("{name} has the largest pool ({n}).", name=who[largest.index[0]], n=n)
                         if len(largest) == 1 else
                         _("{names} have the largest pools ({n} each).", names=_some(who[largest.index].tolist()),
                           n=n))
    sentences.append(_("Accounts taken out of the pool leave no record, so the flow out cannot be shown."))
    return finding(_sentences(*sentences), "info", kpi=kpi, weight=float(share))


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
    if table.attrs.get(NOT_IN_SOURCE):  # the source records no completion: no figure, not 0%
        return None
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
    return forgotten_count(frames, ctx, days=days)


@memo_by_inputs
def forgotten_count(frames: Frames, ctx: KpiContext, *, days: int | None = None) -> float | None:
    """How many of `account_follow_up`'s accounts are forgotten (its ``is_forgotten`` summed; None when the
    region has no owned account), without building the per-account frame: the owned accounts not among those
    whose latest activity is within the `days` days before the reference time."""
    days = _days(days, ctx)
    _need(frames, "accounts", "activities")
    ref = reference_time(ctx)
    owned = _owned_accounts(frames["accounts"], ctx)
    owned = owned[~(_col(owned, "created_at", "datetime64[us]") >= ref).fillna(False).astype(bool)]
    if owned.empty:
        return None
    latest = getattr(frames, "latest", None)
    last = (_last_activity_series(latest("activities", "occurred_at", "account_id", ref)) if callable(latest)
            else last_activity(frames["activities"], ref))
    recent = last.index[(last >= ref - pd.Timedelta(days=days)).fillna(False).to_numpy(dtype=bool)]
    return float((~isin(owned["account_id"].astype("string"), pd.Series(recent, dtype="string"))).sum())


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
