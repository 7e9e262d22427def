"""Customers (客户洞察): the customer base — active, new, reactivated, churned, net growth —, RFM value tiers
and their migration, and cohort retention.

Pure functions over validated frames, as the other areas. A **purchase** is a signed contract (``contracts``:
``account_id``, ``signed_at``, ``amount``); a **customer** is an account with at least one purchase. A purchase
covers its account for `churn_days` (the run's parameter; by default a yearly term plus a grace period,
365 + 90 days, the definitions of `crmlens.truths.ChurnDrivers`; a retailer might use 90 or 180). So, at a
time *t*, a customer is **active** when its latest purchase before *t* was less than `churn_days` days before
*t*, and **churned** once that time passes without a new purchase.

In a period [start, end) with reference time R (the as-of time, capped at the period end):

* ``n_active_start``: customers active at the start; ``n_active_end``: active at R;
* ``n_new_customers``: accounts whose first purchase ever falls in [start, R);
* ``n_reactivated``: customers inactive at the start (but not new) who bought again and are active at R;
* ``n_churned``: customers active at the start and not at R;
* ``n_active_end = n_active_start + n_new_customers + n_reactivated − n_churned``; ``net_growth`` is that difference and
  ``net_growth_rate`` = net growth ÷ ``n_active_start`` (missing when nobody was active at the start).

Purchases must reach back far enough: a slice holds only the period's contracts, so pass a history
(`purchase_history`, 16 periods by default). The first purchase "ever" is the first one the history holds.

**Credits** (table ``credit_notes``, where the source records returns, refunds or cancelled orders;
`credit_history`) give money back: they reduce a customer's net revenue and RFM monetary value (``rfm(...,
credits=...)``) and its lifetime value (`crmlens.metrics.clv`), and they are never purchases (no frequency,
activity or cohort counts them). `credit_summary` counts them for the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from crmlens.analysis import on_slice
from crmlens.errors import ParameterError, SchemaError
from crmlens.findings import Finding, finding
from crmlens.i18n import N_, _, format_number, n_, sentences
from crmlens.kpis import KpiContext, register_kpi
from crmlens.metrics.common import (
    UNKNOWN,
    bucket,
    check_choice,
    isin,
    memo_by_inputs,
    ratio,
    reference_time,
    region_accounts,
    segment_fields,
)
from crmlens.metrics.common import fmt as _fmt
from crmlens.metrics.common import shown as _shown
from crmlens.present import register_columns

AREA = "customers"
Frames = Mapping[str, pd.DataFrame]

#: By default a purchase covers its customer a yearly term ...
TERM_DAYS = 365
#: ... and a grace period before the customer counts as churned (a late renewal is not a churn): the default
#: of the `churn_days` parameter is their sum.
GRACE_DAYS = 90
#: Account attributes a customer base can be split by.
SEGMENTS = ("industry", "size_band", "region_id", "level", "source_channel", "country", "province", "city")
#: RFM tiers, best first (see `rfm_tier`).
TIERS = ("champions", "loyal", "promising", "at_risk", "hibernating", "lost")
TIER_LABELS = {"champions": N_("Champions"), "loyal": N_("Loyal"), "promising": N_("Promising"),
               "at_risk": N_("At risk"), "hibernating": N_("Hibernating"), "lost": N_("Lost customers")}
VALUE_TIERS = ("high", "mid", "low")
VALUE_LABELS = {"high": N_("High value"), "mid": N_("Mid value"), "low": N_("Low value")}
NEW_IN_TIER = "new"
NEW_CUSTOMERS = N_("New since then")
COHORT_BASES = ("purchase", "active")
COHORT_FREQS = ("month", "quarter", "year")
#: A cohort is named as keeping fewer customers only this far (or more) below the other cohorts' median.
MIN_COHORT_GAP = 0.05

register_columns({
    "segment": (N_("Segment"), "text"),
    "field": (N_("Field"), "text"),
    "n_active_start": (N_("Active customers at the start"), "count"),
    "n_new_customers": (N_("New customers"), "count"),
    "n_reactivated": (N_("Reactivated customers"), "count"),
    "n_churned": (N_("Churned customers"), "count"),
    "n_active_end": (N_("Active customers at the end"), "count"),
    "net_growth": (N_("Net growth"), "count"),
    "net_growth_rate": (N_("Net growth rate"), "rate"),
    "churn_rate": (N_("Churn rate"), "rate"),
    "last_purchase_at": (N_("Last purchase"), "date"),
    "recency_days": (N_("Days since the last purchase"), "days"),
    "frequency": (N_("Purchases"), "count"),
    "monetary_amount": (N_("Revenue"), "amount"),
    "r_score": (N_("R score"), "count"),
    "f_score": (N_("F score"), "count"),
    "m_score": (N_("M score"), "count"),
    "rfm_tier": (N_("RFM tier"), "text"),
    "value_tier": (N_("Value tier"), "text"),
    "n_customers": (N_("Customers"), "count"),
    "customer_share": (N_("Share of customers"), "share"),
    "revenue_share": (N_("Share of revenue"), "share"),
    "tier_name": (N_("RFM tier"), "text"),
    "value_name": (N_("Value tier"), "text"),
    "from_tier": (N_("Tier in the comparison period"), "text"),
    **{tier: (label, "count") for tier, label in TIER_LABELS.items()},
    "revenue_amount": (N_("Revenue"), "amount"),
    "revenue_per_customer": (N_("Revenue per customer"), "amount"),
    "cohort": (N_("Cohort (first purchase)"), "text"),
    "cohort_size": (N_("Customers in the cohort"), "count"),
    "n_credits": (N_("Credit notes"), "count"),
    "n_credited_customers": (N_("Customers credited"), "count"),
    "credit_amount": (N_("Credits"), "amount"),
    "credit_share": (N_("Credits ÷ gross revenue"), "share"),
    "gross_revenue_amount": (N_("Gross revenue"), "amount"),
    "net_revenue_amount": (N_("Net revenue"), "amount"),
})


# ------------------------------------------------------------------------------------------------ purchases

def purchases_of(contracts: pd.DataFrame) -> pd.DataFrame:
    """The purchases in `contracts`: account_id, purchased_at, amount (missing → 0), one row per account and
    signing time (the contracts, or order lines, an account signed at the same time are one purchase; their
    amounts summed), contracts without an account or a signing time left out, ordered by time then account.
    A SchemaError names a missing column."""
    missing = [c for c in ("account_id", "signed_at") if c not in contracts.columns]
    if missing:
        raise SchemaError(f"contracts: column(s) {', '.join(missing)} needed for purchases are not in this source")
    amount = contracts["amount"] if "amount" in contracts.columns else pd.Series(np.nan, index=contracts.index)
    out = pd.DataFrame({"account_id": contracts["account_id"].astype("string").to_numpy(),
                        "purchased_at": contracts["signed_at"].astype("datetime64[us]").to_numpy(),
                        "amount": pd.to_numeric(amount, errors="coerce").astype("float64").fillna(0.0).to_numpy()})
    out = out[out["account_id"].notna() & out["purchased_at"].notna()]
    # one purchase per account and signing time: the lines of one order (a transactional export maps each
    # invoice line to a contract) are one purchase, with their amounts summed
    out = out.groupby(["purchased_at", "account_id"], sort=True, as_index=False)["amount"].sum()
    return out[["account_id", "purchased_at", "amount"]]


def purchase_history(s: Any, n_periods: int = 16) -> pd.DataFrame | None:
    """The slice's purchases over the `n_periods` periods ending with its own (``contracts`` read in the
    engine, `crmlens.data.Slice.history`); None when the source has no contracts."""
    if not s.has("contracts"):
        return None
    return purchases_of(s.history("contracts", n_periods))


#: The canonical table of credits (returns, refunds, cancelled orders), for the sources that record them.
CREDITS_TABLE = "credit_notes"


def credits_of(credit_notes: pd.DataFrame) -> pd.DataFrame:
    """The credits in `credit_notes`: account_id, credited_at, amount (the value credited back, ≥ 0; missing →
    0), one row per credit note, those without an account or a time left out, ordered by time then account.
    A credit is not a purchase: it reduces its customer's net revenue (RFM monetary value, lifetime value)
    and never counts as a purchase (frequency, activity, cohorts). A SchemaError names a missing column."""
    missing = [c for c in ("account_id", "credited_at") if c not in credit_notes.columns]
    if missing:
        raise SchemaError(f"{CREDITS_TABLE}: column(s) {', '.join(missing)} needed for credits are not in this "
                          "source")
    amount = credit_notes["amount"] if "amount" in credit_notes.columns else pd.Series(np.nan,
                                                                                       index=credit_notes.index)
    out = pd.DataFrame({"account_id": credit_notes["account_id"].astype("string").to_numpy(),
                        "credited_at": credit_notes["credited_at"].astype("datetime64[us]").to_numpy(),
                        "amount": pd.to_numeric(amount, errors="coerce").astype("float64").fillna(0.0).abs()
                        .to_numpy()})
    out = out[out["account_id"].notna() & out["credited_at"].notna()]
    return out.sort_values(["credited_at", "account_id"], kind="mergesort").reset_index(drop=True)


def credit_history(s: Any, n_periods: int = 16) -> pd.DataFrame | None:
    """The slice's credits over the `n_periods` periods ending with its own (the source's `credit_notes`);
    None when the source records none (the net revenue is then the gross revenue)."""
    if not s.has(CREDITS_TABLE):
        return None
    return credits_of(s.history(CREDITS_TABLE, n_periods))


def net_revenue(purchases: pd.DataFrame, credits: pd.DataFrame | None, start: pd.Timestamp | None,
                end: pd.Timestamp) -> pd.DataFrame:
    """Per customer (account_id) with a purchase or a credit in [start, end) (no start: since ever):
    n_purchases, gross_revenue_amount, n_credits, credit_amount and net_revenue_amount (gross − credits),
    ordered by account_id."""
    def window(frame: pd.DataFrame, column: str) -> pd.DataFrame:
        keep = frame[column] < end
        if start is not None:
            keep &= frame[column] >= start
        return frame[keep]

    bought = window(purchases, "purchased_at").groupby(purchases["account_id"].astype("string"))["amount"]
    out = pd.DataFrame({"n_purchases": bought.size(), "gross_revenue_amount": bought.sum()})
    if credits is not None and not credits.empty:
        credited = window(credits, "credited_at")
        grouped = credited.groupby(credited["account_id"].astype("string"))["amount"]
        out = out.join(pd.DataFrame({"n_credits": grouped.size(), "credit_amount": grouped.sum()}), how="outer")
    else:
        out["n_credits"], out["credit_amount"] = 0, 0.0
    out = out.fillna({"n_purchases": 0, "gross_revenue_amount": 0.0, "n_credits": 0, "credit_amount": 0.0})
    out[["n_purchases", "n_credits"]] = out[["n_purchases", "n_credits"]].astype("int64")
    out["net_revenue_amount"] = out["gross_revenue_amount"] - out["credit_amount"]
    out = out.rename_axis("account_id").reset_index()
    out["account_id"] = out["account_id"].astype("string")
    return out.sort_values("account_id", kind="mergesort").reset_index(drop=True)


@on_slice("accounts", "contracts")
def credit_summary(accounts: pd.DataFrame, purchases: pd.DataFrame | None, ctx: KpiContext, *,
                   credits: pd.DataFrame | None = None, window_days: int = 365) -> pd.DataFrame | None:
    """Returns, refunds and cancellations of the region's customers over the `window_days` before the reference
    time, as one row: n_credits, n_credited_customers, credit_amount, gross_revenue_amount, net_revenue_amount
    and credit_share (credits ÷ gross revenue). ``attrs["recorded"]`` is False when the source records no
    credits (`credits` None): then the counts are missing, not zero."""
    if purchases is None:
        raise SchemaError("credit_summary needs purchases (table `contracts`), which are not in this source")
    ref = reference_time(ctx)
    start = ref - pd.Timedelta(days=_check_days("window_days", window_days, 1))
    mine = region_accounts(accounts, ctx)["account_id"].astype("string")
    bought = purchases[isin(purchases["account_id"].astype("string"), mine)]
    credited = None if credits is None else credits[isin(credits["account_id"].astype("string"), mine)]
    per = net_revenue(bought, credited, start, ref)
    gross, credit = float(per["gross_revenue_amount"].sum()), float(per["credit_amount"].sum())
    row = {"n_credits": int(per["n_credits"].sum()), "n_credited_customers": int((per["n_credits"] > 0).sum()),
           "credit_amount": credit, "gross_revenue_amount": gross, "net_revenue_amount": gross - credit,
           "credit_share": ratio(credit, gross) if gross > 0 else np.nan}
    out = pd.DataFrame([row])
    if credits is None:
        out[["n_credits", "n_credited_customers", "credit_amount", "credit_share"]] = np.nan
    out["credit_share"] = out["credit_share"].astype("float64")
    out.attrs.update(recorded=credits is not None, window_days=window_days)
    return out


#: From this share of gross revenue credited back on, credits are a finding to act on ("watch").
CREDIT_SHARE_WATCH = 0.05


def describe_credits(result: pd.DataFrame | None) -> Finding | None:
    """How much revenue returns, refunds and cancellations took back, in numbers — or that the source records
    none (never a zero from an absent table)."""
    if result is None:
        return None
    if not result.attrs.get("recorded", True):
        return finding(_("This source records no returns, refunds or cancellations: revenue is shown gross."),
                       "info")
    row = result.iloc[0]
    if int(row["n_credits"]) == 0:
        return finding(n_("No return, refund or cancellation was recorded in the last {days} day.",
                          "No return, refund or cancellation was recorded in the last {days} days.",
                          int(result.attrs.get("window_days", 365)),
                          days=_fmt(result.attrs.get("window_days", 365), "count")), "info")
    text = n_("{n} credit note (returns, refunds, cancellations) took back {amount}, {share} of the gross revenue "
              "of the last {days} days, from {customers} customers.",
              "{n} credit notes (returns, refunds, cancellations) took back {amount}, {share} of the gross revenue "
              "of the last {days} days, from {customers} customers.", int(row["n_credits"]),
              amount=_fmt(row["credit_amount"], "amount"), share=_fmt(row["credit_share"], "share", 1),
              days=_fmt(result.attrs.get("window_days", 365), "count"),
              customers=_fmt(row["n_credited_customers"], "count"))
    if pd.notna(row["credit_share"]) and row["credit_share"] >= CREDIT_SHARE_WATCH:
        return finding(text, "watch", recommendation=_(
            "Review the customers and products with the largest credits: returns above {share} of revenue erode "
            "the margin.", share=_fmt(CREDIT_SHARE_WATCH, "share", 0)))
    return finding(text, "info")


def _check_days(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ParameterError(f"{name}: {value!r} is not allowed; use a whole number of days ≥ {minimum}")
    return value


def _cover(ctx: KpiContext, churn_days: int | None) -> pd.Timedelta:
    """How long a purchase keeps its customer active: `churn_days`, or the context's (the run's parameter)."""
    days = getattr(ctx, "churn_days", TERM_DAYS + GRACE_DAYS) if churn_days is None else churn_days
    return pd.Timedelta(days=_check_days("churn_days", days, 1))


def _last_before(purchases: pd.DataFrame, t: pd.Timestamp) -> pd.Series:
    """Per account (index), its latest purchase strictly before `t`."""
    before = purchases[purchases["purchased_at"] < t]
    return before.groupby("account_id", sort=True)["purchased_at"].max()


def _active_at(purchases: pd.DataFrame, t: pd.Timestamp, cover: pd.Timedelta) -> pd.Index:
    last = _last_before(purchases, t)
    return last.index[(last + cover > t).to_numpy()]




# ------------------------------------------------------------------------------------------ customer base

@memo_by_inputs
def customer_states(accounts: pd.DataFrame, purchases: pd.DataFrame, ctx: KpiContext, *,
                    churn_days: int | None = None) -> pd.DataFrame:
    """Every customer of the region that was active at the start or bought before the reference time, with its
    state in the period: account_id, first_purchase_at, active_start, active_end, is_new, is_reactivated,
    is_churned (see the module doc)."""
    cover = _cover(ctx, churn_days)
    start, ref = pd.Timestamp(ctx.period_start), reference_time(ctx)
    mine = region_accounts(accounts, ctx)
    bought = purchases[isin(purchases["account_id"].astype("string"), mine["account_id"].astype("string"))]
    bought = bought[bought["purchased_at"] < ref]
    first = bought.groupby("account_id", sort=True)["purchased_at"].min()
    out = pd.DataFrame({"account_id": first.index.astype("string"), "first_purchase_at": first.to_numpy()})
    out["active_start"] = out["account_id"].isin(_active_at(bought, start, cover)).to_numpy()
    out["active_end"] = out["account_id"].isin(_active_at(bought, ref, cover)).to_numpy()
    out["is_new"] = (out["first_purchase_at"] >= start).to_numpy()
    out["is_reactivated"] = ~out["active_start"] & out["active_end"] & ~out["is_new"]
    out["is_churned"] = out["active_start"] & ~out["active_end"]
    return out


@on_slice("accounts", "contracts", columns={"by": "accounts"})
@memo_by_inputs
def customer_base(accounts: pd.DataFrame, purchases: pd.DataFrame | None, ctx: KpiContext, *,
                  by: str | None = None, churn_days: int | None = None) -> pd.DataFrame:
    """The customer base of the period (see the module doc), for the whole region or per segment `by` (an
    account attribute of `SEGMENTS`): segment, n_active_start, n_new_customers, n_reactivated, n_churned, n_active_end,
    net_growth, net_growth_rate, churn_rate (churned ÷ active at the start). Segments ordered by active
    customers at the end (then name); accounts with no value of `by` are "(unknown)". With a slice:
    ``customers.customer_base(s, customers.purchase_history(s), by="industry")``."""
    if purchases is None:
        raise SchemaError("customer_base needs purchases (table `contracts`), which are not in this source")
    if by is not None:
        check_choice("by", by, SEGMENTS)
    states = customer_states(accounts, purchases, ctx, churn_days=churn_days)
    if by is None:
        states["segment"] = "all"
    else:
        if by not in accounts.columns:
            raise SchemaError(f"accounts: column {by!r} is not in this source")
        frame = region_accounts(accounts, ctx)
        seg = pd.Series(frame[by].astype("string").to_numpy(), index=pd.Index(frame["account_id"].astype("string")))
        states["segment"] = states["account_id"].map(seg).astype("string").fillna(_(UNKNOWN)).to_numpy()
    flags = {"n_active_start": "active_start", "n_new_customers": "is_new", "n_reactivated": "is_reactivated",
             "n_churned": "is_churned", "n_active_end": "active_end"}
    out = states.groupby("segment", sort=True)[list(flags.values())].sum().astype("int64")
    out.columns = list(flags)
    out = out.reset_index()
    out["net_growth"] = out["n_active_end"] - out["n_active_start"]
    out["net_growth_rate"] = [ratio(g, a) for g, a in zip(out["net_growth"], out["n_active_start"], strict=True)]
    out["churn_rate"] = [ratio(c, a) for c, a in zip(out["n_churned"], out["n_active_start"], strict=True)]
    out[["net_growth_rate", "churn_rate"]] = out[["net_growth_rate", "churn_rate"]].astype("float64")
    out = out.sort_values(["n_active_end", "segment"], ascending=[False, True], kind="mergesort")
    out.attrs["by"] = by
    return out.reset_index(drop=True)



@on_slice("accounts", "contracts")
def base_trend(s: Any, accounts: pd.DataFrame, purchases: pd.DataFrame | None, ctx: KpiContext, *,
               n_periods: int = 8, churn_days: int | None = None) -> pd.DataFrame:
    """The customer base period by period: `customer_base` for each of the `n_periods` periods of the slice's
    kind ending with its own (the purchases must reach back that far plus `churn_days`: `purchase_history`
    gives 16 periods) — period, n_active_start, n_new_customers, n_reactivated, n_churned, n_active_end,
    net_growth, net_growth_rate, churn_rate. The current period ends at the reference time."""
    from dataclasses import replace

    from crmlens.periods import shift_period

    if purchases is None:
        raise SchemaError("base_trend needs purchases (table `contracts`), which are not in this source")
    rows = []
    for k in range(n_periods - 1, -1, -1):
        p = shift_period(s.period, -k)
        c = replace(ctx, period_start=p.start, period_end=p.end, period_label=p.label)
        row = customer_base(accounts, purchases, c, churn_days=churn_days).drop(columns="segment")
        rows.append(row.assign(period=p.label))
    out = pd.concat(rows, ignore_index=True)
    out = out[["period", *[c for c in out.columns if c != "period"]]]
    return out


def describe_base_trend(result: pd.DataFrame | None) -> Finding | None:
    """Whether the active customers grew or shrank over the periods shown, and the period that lost most."""
    if result is None or len(result) < 3 or int(result["n_active_start"].iloc[0]) == 0:
        return None
    first, last = int(result["n_active_start"].iloc[0]), int(result["n_active_end"].iloc[-1])
    change = ratio(last - first, first)
    if change is None or abs(change) < 0.02:
        return None
    text = _("Over the last {n} periods the active customers went from {first} to {last} ({change}).", n=len(result),
             first=_fmt(first, "count"), last=_fmt(last, "count"),
             change=format_number(change, "rate", signed=True, digits=1))
    worst = result.loc[result["net_growth"].idxmin()]
    if int(worst["net_growth"]) >= 0:
        return finding(text, "good" if change > 0 else "watch", kpi="active_customers")
    text += " " + _("{period} lost most ({growth}).", period=str(worst["period"]),
                    growth=format_number(int(worst["net_growth"]), "count", signed=True))
    return finding(text, "good" if change > 0 else "watch", kpi="active_customers", recommendation=_(
        "Compare the churned customers of {period} with those who stayed: what did they buy, and who looked after "
        "them?", period=str(worst["period"])))


def describe_customer_base(result: pd.DataFrame) -> Finding | None:
    """For the whole region: the period's change of active customers, in numbers. Per segment: the segment(s)
    that shrank most (equal rates named together), or, when none shrank, the one that grew most — nothing when
    every segment changed alike."""
    if result is None:
        return None
    if result.empty or int(result["n_active_start"].sum() + result["n_active_end"].sum()) == 0:
        if result.attrs.get("by") is not None:
            return None  # the whole region's finding says it once
        return finding(_("No customer was active in this slice: the source records no purchase in reach."),
                       "info", kpi="active_customers")
    if result.attrs.get("by") is not None:
        return _describe_segments(result)
    total = result[["n_active_start", "n_new_customers", "n_reactivated", "n_churned", "n_active_end"]].sum()
    start, end = int(total["n_active_start"]), int(total["n_active_end"])
    growth = end - start
    change = format_number(ratio(growth, start), "rate", signed=True, digits=1) if start else \
        format_number(growth, "count", signed=True)
    text = _("Active customers went from {start} to {end} ({change}): {new} new, {back} reactivated, {lost} "
             "churned.", start=_fmt(start, "count"), end=_fmt(end, "count"), change=change,
             new=_fmt(int(total["n_new_customers"]), "count"), back=_fmt(int(total["n_reactivated"]), "count"),
             lost=_fmt(int(total["n_churned"]), "count"))
    if growth < 0:
        return finding(text, "act", kpi="active_customers", recommendation=_(
            "Review the churned customers' last contracts and call those due for renewal next."))
    return finding(text, "good" if growth > 0 else "info", kpi="active_customers")


def _describe_segments(result: pd.DataFrame) -> Finding | None:
    rated = result[result["n_active_start"] > 0]
    if len(rated) < 2 or rated["net_growth_rate"].nunique() == 1:
        return None
    low, high = rated["net_growth_rate"].min(), rated["net_growth_rate"].max()
    median = float(rated["net_growth_rate"].median())
    if low < 0:
        worst = rated[rated["net_growth_rate"] == low]
        names = ", ".join(str(v) for v in worst["segment"])
        text = n_("{segments} shrank most ({rate}); the median segment changed by {median}.",
                  "{segments} shrank most ({rate} each); the median segment changed by {median}.", len(worst),
                  segments=names, rate=format_number(low, "rate", signed=True, digits=1),
                  median=format_number(median, "rate", signed=True, digits=1))
        return finding(text, "watch", kpi="active_customers", recommendation=_(
            "Review why customers of {segments} did not renew, and call those due for renewal first.",
            segments=names))
    best = rated[rated["net_growth_rate"] == high]
    names = ", ".join(str(v) for v in best["segment"])
    text = n_("{segments} grew most ({rate}); the median segment grew by {median}.",
              "{segments} grew most ({rate} each); the median segment grew by {median}.", len(best),
              segments=names, rate=format_number(high, "rate", signed=True, digits=1),
              median=format_number(median, "rate", signed=True, digits=1))
    return finding(text, "good", kpi="active_customers")


# ------------------------------------------------------------------------------------------------ profiles

PLACE = "place"
_PLACE_PATH = ("region_id", "country", "province", "city")


def _segment_key(accounts: pd.DataFrame, by: str) -> str:
    """`by` when it is a segment (`SEGMENTS`) or a custom field of the accounts (a column beyond the model's)."""
    from crmlens.schema import SCHEMA

    if by in SEGMENTS or (by in accounts.columns and by not in SCHEMA["accounts"].column_names):
        return by
    return check_choice("by", by, SEGMENTS)


@on_slice("accounts", "contracts", columns={"by": "accounts"})
@memo_by_inputs
def profile(accounts: pd.DataFrame, purchases: pd.DataFrame | None, ctx: KpiContext, *, by: str = "industry",
            window_days: int = 365, churn_days: int | None = None) -> pd.DataFrame:
    """Who the active customers are (客户画像): per value of the account attribute `by` (one of `SEGMENTS`, a
    custom field the source keeps, or "place" for region → country → province → city), the active customers at
    the reference time (n_customers, customer_share) and their revenue over the `window_days` before it (revenue_amount,
    revenue_share, revenue_per_customer). Accounts without a value are "(unknown)". Ordered by revenue, then
    customers (both descending), then value."""
    if purchases is None:
        raise SchemaError("profile needs purchases (table `contracts`), which are not in this source")
    keys = list(_PLACE_PATH) if by == PLACE else [_segment_key(accounts, by)]
    mine = region_accounts(accounts, ctx)
    missing = [k for k in keys if k not in mine.columns]
    if missing:
        raise SchemaError(f"accounts: column(s) {', '.join(missing)} are not in this source")
    states = customer_states(accounts, purchases, ctx, churn_days=churn_days)
    active = states.loc[states["active_end"], "account_id"]
    ref = reference_time(ctx)
    recent = purchases[(purchases["purchased_at"] >= ref - pd.Timedelta(days=_check_days("window_days",
                                                                                        window_days, 1)))
                       & (purchases["purchased_at"] < ref)]
    revenue = recent.groupby("account_id")["amount"].sum()
    rows = mine[isin(mine["account_id"].astype("string"), active)]
    frame = pd.DataFrame({k: rows[k].astype("string").fillna(_(UNKNOWN)).to_numpy() for k in keys})
    frame["revenue_amount"] = rows["account_id"].astype("string").map(revenue).fillna(0.0).astype("float64").to_numpy()
    out = frame.groupby(keys, sort=True).agg(n_customers=("revenue_amount", "size"),
                                             revenue_amount=("revenue_amount", "sum")).reset_index()
    total_n, total_m = int(out["n_customers"].sum()), float(out["revenue_amount"].sum())
    out["customer_share"] = out["n_customers"] / total_n if total_n else np.nan
    out["revenue_share"] = out["revenue_amount"] / total_m if total_m > 0 else np.nan
    out["revenue_per_customer"] = out["revenue_amount"] / out["n_customers"]
    out = out.sort_values(["revenue_amount", "n_customers", *keys], ascending=[False, False, *[True] * len(keys)],
                          kind="mergesort").reset_index(drop=True)
    out.attrs.update(by=by, window_days=window_days)
    return out[[*keys, "n_customers", "customer_share", "revenue_amount", "revenue_share", "revenue_per_customer"]]


@on_slice("accounts", "contracts")
def profile_by_fields(s: Any, accounts: pd.DataFrame, purchases: pd.DataFrame | None, ctx: KpiContext, *,
                      max_values: int = 12) -> pd.DataFrame | None:
    """`profile` by each of the source's own fields (custom fields of the accounts: categories, yes/no, and numbers
    with at most `max_values` distinct values), stacked with a ``field`` column and the value as ``segment``. None
    when the source keeps no such field."""
    parts = []
    for name in segment_fields(s, accounts, max_values):
        part = profile(accounts, purchases, ctx, by=name).rename(columns={name: "segment"})
        parts.append(part.assign(field=name)[["field", *part.columns]])
    return pd.concat(parts, ignore_index=True) if parts else None


def describe_profile(result: pd.DataFrame | None) -> Finding | None:
    """Where the revenue concentrates: the value of the attribute whose revenue share most exceeds its share of
    customers (named only when it is a single value and exceeds it by 5 points or more)."""
    if result is None:
        return None
    if result.empty or not result["revenue_share"].notna().any():
        return finding(_("No active customer bought in the window: there is no profile of revenue to show."),
                       "info")
    key = result.columns[0] if result.attrs.get("by") != PLACE else "city"
    lift = result["revenue_share"] - result["customer_share"]
    top = lift.max()
    if len(result) < 2 or top < 0.05 or int((lift == top).sum()) > 1:
        return None
    row = result[lift == top].iloc[0]
    text = _("{value} customers are {customers} of the active customers and bring {revenue} of their revenue "
             "({per} per customer).", value=_shown(row[key]), customers=_fmt(row["customer_share"], "share", 0),
             revenue=_fmt(row["revenue_share"], "share", 0), per=_fmt(row["revenue_per_customer"], "amount"))
    return finding(text, "info", recommendation=_("Look for more accounts like the {value} customers: they are "
                                                  "worth more than the average.", value=_shown(row[key])))



# ----------------------------------------------------------------------------------------------------- RFM

def _score(values: pd.Series, higher_is_better: bool = True) -> pd.Series:
    """Quintile scores 1–5 by percentile rank (equal values share a score: average ranks)."""
    if values.empty:
        return pd.Series(dtype="int64", index=values.index)
    pct = (values if higher_is_better else -values).rank(method="average", pct=True)
    return np.ceil(pct * 5).clip(1, 5).astype("int64")


def rfm_tier(r: int, f: int, m: int) -> str:
    """The tier of R, F and M scores (1–5), with FM = (F + M) / 2:

    champions R ≥ 4 and FM ≥ 4; loyal R ≥ 3 and FM ≥ 3 (not champions); promising R ≥ 3 and FM < 3;
    at_risk R ≤ 2 and FM ≥ 3; hibernating R = 2 and FM < 3; lost R = 1 and FM < 3."""
    fm = (f + m) / 2
    if r >= 3:
        return "champions" if r >= 4 and fm >= 4 else ("loyal" if fm >= 3 else "promising")
    if fm >= 3:
        return "at_risk"
    return "hibernating" if r == 2 else "lost"


def value_tier(m: int) -> str:
    """high (M score 4–5), mid (3), low (1–2)."""
    return "high" if m >= 4 else ("mid" if m == 3 else "low")


@on_slice("accounts", "contracts")
def rfm(accounts: pd.DataFrame, purchases: pd.DataFrame | None, ctx: KpiContext, *,
        window_days: int | None = None, credits: pd.DataFrame | None = None) -> pd.DataFrame:
    """Recency, frequency and monetary value of every customer of the region at the reference time (purchases
    before it; within `window_days` when given): account_id, name, last_purchase_at, recency_days, frequency,
    monetary_amount, r_score, f_score, m_score (1–5, quintiles of the customers; equal values share a score),
    rfm_tier (`rfm_tier`) and value_tier (`value_tier`) — ids —, and tier_name and value_name, their names in the
    language in use. Ordered by tier, then revenue (descending), then id. With `credits` (`credit_history`), the
    monetary value is net of the customer's credits in the same window (returns, refunds, cancellations); they
    never count as purchases."""
    if purchases is None:
        raise SchemaError("rfm needs purchases (table `contracts`), which are not in this source")
    ref = reference_time(ctx)
    mine = region_accounts(accounts, ctx)
    bought = purchases[isin(purchases["account_id"].astype("string"), mine["account_id"].astype("string"))]
    bought = bought[bought["purchased_at"] < ref]
    if window_days is not None:
        bought = bought[bought["purchased_at"] >= ref - pd.Timedelta(days=_check_days("window_days", window_days, 1))]
    grouped = bought.groupby("account_id", sort=True)
    out = pd.DataFrame({"last_purchase_at": grouped["purchased_at"].max(), "frequency": grouped.size(),
                        "monetary_amount": grouped["amount"].sum()})
    if credits is not None and not credits.empty:
        start = ref - pd.Timedelta(days=window_days) if window_days is not None else None
        net = net_revenue(bought.iloc[0:0], credits, start, ref).set_index("account_id")["credit_amount"]
        out["monetary_amount"] = out["monetary_amount"] - net.reindex(out.index.astype("string")).fillna(0.0).to_numpy()
    out = out.reset_index()
    out["account_id"] = out["account_id"].astype("string")
    names = mine.set_index(mine["account_id"].astype("string"))["name"] if "name" in mine.columns else pd.Series(
        dtype="string")
    out.insert(1, "name", out["account_id"].map(names).astype("string"))
    out["recency_days"] = (ref - out["last_purchase_at"]).dt.total_seconds() / 86400
    out["r_score"] = _score(out["recency_days"], higher_is_better=False)
    out["f_score"] = _score(out["frequency"].astype("float64"))
    out["m_score"] = _score(out["monetary_amount"])
    out["rfm_tier"] = [rfm_tier(r, f, m) for r, f, m in zip(out["r_score"], out["f_score"], out["m_score"],
                                                           strict=True)]
    out["value_tier"] = [value_tier(m) for m in out["m_score"]]
    out["tier_name"] = out["rfm_tier"].map(tier_label).astype("string")
    out["value_name"] = out["value_tier"].map(tier_label).astype("string")
    order = {t: i for i, t in enumerate(TIERS)}
    out = out.assign(_o=out["rfm_tier"].map(order)).sort_values(["_o", "monetary_amount", "account_id"],
                                                                 ascending=[True, False, True], kind="mergesort")
    cols = ["account_id", "name", "last_purchase_at", "recency_days", "frequency", "monetary_amount", "r_score",
            "f_score", "m_score", "rfm_tier", "value_tier", "tier_name", "value_name"]
    return out[cols].reset_index(drop=True)


def rfm_tiers(scored: pd.DataFrame | None) -> pd.DataFrame | None:
    """Per RFM tier (all six, in `TIERS` order): rfm_tier, tier_name, n_customers, customer_share,
    monetary_amount, revenue_share (missing when there is no revenue at all), recency_days and frequency
    (medians). None for None (a skipped section)."""
    if scored is None:
        return None
    grouped = scored.groupby("rfm_tier")
    out = pd.DataFrame({"n_customers": grouped.size(), "monetary_amount": grouped["monetary_amount"].sum(),
                        "recency_days": grouped["recency_days"].median(),
                        "frequency": grouped["frequency"].median()}).reindex(list(TIERS))
    out["n_customers"] = out["n_customers"].fillna(0).astype("int64")
    out["monetary_amount"] = out["monetary_amount"].fillna(0.0)
    total_n, total_m = int(out["n_customers"].sum()), float(out["monetary_amount"].sum())
    out["customer_share"] = out["n_customers"] / total_n if total_n else np.nan
    out["revenue_share"] = out["monetary_amount"] / total_m if total_m > 0 else np.nan
    out = out.rename_axis("rfm_tier").reset_index()
    out["tier_name"] = out["rfm_tier"].map(tier_label).astype("string")
    return out[["rfm_tier", "tier_name", "n_customers", "customer_share", "monetary_amount", "revenue_share",
                "recency_days", "frequency"]]


def in_tier(scored: pd.DataFrame | None, tier: str) -> pd.DataFrame | None:
    """The customers of an `rfm` frame in RFM tier `tier`, by revenue (the frame's order within a tier); None
    for None (a skipped section)."""
    check_choice("tier", tier, TIERS)
    if scored is None:
        return None
    return scored.loc[scored["rfm_tier"] == tier, [c for c in scored.columns if c not in _ID_COLUMNS]
                      ].reset_index(drop=True)


#: Tier ids beside their names: a reader's table shows the names (`in_tier`, `TIERS_TABLE`).
_ID_COLUMNS = ("rfm_tier", "value_tier")
#: The columns of a `rfm_tiers` frame a reader's table shows.
TIERS_TABLE = ("tier_name", "n_customers", "customer_share", "monetary_amount", "revenue_share", "recency_days",
               "frequency")


def tier_migration(before: pd.DataFrame | None, after: pd.DataFrame | None) -> pd.DataFrame | None:
    """How customers moved between RFM tiers: a count matrix with the comparison tier as rows (index: the tier
    ids, plus "new" for customers not scored then; column ``from_tier``: their names) and the current
    tier as columns (one per tier id, in `TIERS` order). None when either is None (a skipped section)."""
    if before is None or after is None:
        return None
    then = before.set_index(before["account_id"].astype("string"))["rfm_tier"]
    now = after.set_index(after["account_id"].astype("string"))["rfm_tier"]
    origin = pd.Series(then.reindex(now.index).astype("object").to_numpy(), index=now.index)
    origin = origin.where(origin.notna(), NEW_IN_TIER)  # not scored then (none were: all new)
    counts = pd.crosstab(origin.to_numpy(), now.to_numpy())
    out = counts.reindex(index=[*TIERS, NEW_IN_TIER], columns=list(TIERS), fill_value=0).astype("int64")
    out.columns.name = None
    names = [tier_label(t) if t != NEW_IN_TIER else _(NEW_CUSTOMERS) for t in out.index]
    out.index = pd.Index(list(out.index))  # the tier ids, unnamed: a reader's table shows the names only
    out.insert(0, "from_tier", pd.array(names, dtype="string"))
    return out


def describe_rfm_tiers(tiers: pd.DataFrame) -> Finding | None:
    """Where the revenue sits: the champions' share of customers and of revenue, and the revenue at risk."""
    if tiers is None:
        return None
    total = int(tiers["n_customers"].sum())
    if total == 0:
        return finding(_("No customer bought before the reference time: there is nothing to score."), "info")
    if total < 5:
        return finding(n_("Only {n} customer bought: too few to score them in quintiles.",
                          "Only {n} customers bought: too few to score them in quintiles.", total), "info")
    row = tiers.set_index("rfm_tier")
    champions, at_risk = row.loc["champions"], row.loc["at_risk"]
    text = _("Champions are {share} of the customers and bring {revenue} of the revenue.",
             share=_fmt(champions["customer_share"], "share", 0), revenue=_fmt(champions["revenue_share"], "share", 0))
    severity, recommendation = "info", None
    if at_risk["n_customers"] > 0 and pd.notna(at_risk["revenue_share"]) and at_risk["revenue_share"] > 0:
        text = sentences(text, n_("{n} customer is at risk (bought often, not lately) with {revenue} of the revenue.",
                         "{n} customers are at risk (bought often, not lately) with {revenue} of the revenue.",
                         int(at_risk["n_customers"]), revenue=_fmt(at_risk["revenue_share"], "share", 0)))
        severity = "watch"
        recommendation = _("Call the at-risk customers with the highest revenue before their renewal is due.")
    return finding(text, severity, recommendation=recommendation)


# ------------------------------------------------------------------------------------------------ cohorts

def _period_index(labels: pd.Series, freq: str) -> pd.Series:
    """An integer per period label, consecutive periods one apart."""
    if freq == "year":
        return labels.astype("int64")
    year = labels.str.slice(0, 4).astype("int64")
    if freq == "quarter":
        return year * 4 + labels.str.slice(6, 7).astype("int64") - 1
    return year * 12 + labels.str.slice(5, 7).astype("int64") - 1


@on_slice("accounts", "contracts")
def cohort_retention(accounts: pd.DataFrame, purchases: pd.DataFrame | None, ctx: KpiContext, *,
                     freq: str = "quarter", n_periods: int = 8, basis: str = "purchase",
                     measure: str = "customers", churn_days: int | None = None) -> pd.DataFrame:
    """Cohorts of customers by the `freq` period of their first purchase × periods since (0 … `n_periods`):
    cohort, cohort_size, then one column per period since (``0``, ``1``, …).

    `measure` "customers": the share of the cohort retained in that period — with `basis` "purchase", who bought
    in it; with "active", who were active at its end (or at the reference time, for the current period).
    `measure` "revenue": the cohort's revenue in that period ÷ its revenue in its first period. Periods not
    over yet at the reference time are missing (not yet observed — not a zero). The last `n_periods` + 1
    cohorts up to the reference time are shown."""
    if purchases is None:
        raise SchemaError("cohort_retention needs purchases (table `contracts`), which are not in this source")
    check_choice("freq", freq, COHORT_FREQS)
    check_choice("basis", basis, COHORT_BASES)
    check_choice("measure", measure, ("customers", "revenue"))
    if isinstance(n_periods, bool) or not isinstance(n_periods, int) or n_periods < 1:
        raise ParameterError(f"n_periods: {n_periods!r} is not allowed; use a whole number ≥ 1")
    ref = reference_time(ctx)
    mine = region_accounts(accounts, ctx)
    bought = purchases[isin(purchases["account_id"].astype("string"), mine["account_id"].astype("string"))]
    bought = bought[bought["purchased_at"] < ref].copy()
    columns = ["cohort", "cohort_size", *[str(k) for k in range(n_periods + 1)]]
    if bought.empty:
        return pd.DataFrame(columns=columns)
    bought["period"] = _period_index(bucket(bought["purchased_at"], freq), freq).to_numpy()
    now = int(_period_index(bucket(pd.Series([ref - pd.Timedelta(microseconds=1)]), freq), freq).iloc[0])
    first = bought.groupby("account_id")["period"].min()
    labels = bucket(bought["purchased_at"], freq)
    label_of = dict(zip(bought["period"], labels, strict=True))
    cohorts = sorted(set(first))[-(n_periods + 1):]
    sizes = first.value_counts()
    bought["cohort"] = bought["account_id"].map(first).to_numpy()
    # every count is grouped once, by (cohort, period), not per cohort and period
    if measure == "revenue":
        values = bought.groupby(["cohort", "period"])["amount"].sum()
    elif basis == "purchase":
        values = bought.groupby(["cohort", "period"])["account_id"].nunique()
    else:
        cover = _cover(ctx, churn_days)
        counts = {}
        for p in range(min(cohorts), now + 1):  # active at each period's end (at the reference time for the last)
            end = _period_end(p, freq) if p < now else ref
            recent = bought[(bought["purchased_at"] < end) & (bought["purchased_at"] > end - cover)]
            counts[p] = first.reindex(recent["account_id"].unique()).value_counts()
        values = pd.concat(counts, names=["period", "cohort"]).swaplevel() if counts else pd.Series(dtype="float64")
    rows = []
    for cohort in cohorts:
        size = int(sizes[cohort])
        row: dict[str, Any] = {"cohort": label_of[cohort], "cohort_size": size}
        base_revenue = float(values.get((cohort, cohort), 0.0)) if measure == "revenue" else 0.0
        for k in range(n_periods + 1):
            p = cohort + k
            if p > now or (p == now and k > 0 and ref < _period_end(now, freq)):
                row[str(k)] = np.nan  # not observed yet, or not over at the reference time: not a zero
                continue
            value = float(values.get((cohort, p), 0.0))
            if measure == "revenue":
                row[str(k)] = ratio(value, base_revenue) if base_revenue > 0 else np.nan
            else:
                row[str(k)] = value / size
        rows.append(row)
    out = pd.DataFrame(rows, columns=columns)
    out[columns[2:]] = out[columns[2:]].astype("float64")
    out.attrs.update(freq=freq, basis=basis, measure=measure)
    return out


def _period_end(index: int, freq: str) -> pd.Timestamp:
    if freq == "year":
        return pd.Timestamp(year=index + 1, month=1, day=1)
    months = 3 if freq == "quarter" else 1
    per_year = 12 // months
    year, part = divmod(index + 1, per_year)
    return pd.Timestamp(year=year, month=part * months + 1, day=1)


def describe_cohort_retention(result: pd.DataFrame, *, min_cohorts: int = 3) -> Finding | None:
    """The cohort that kept the fewest of its customers, against the median of the others — only when it is
    `MIN_COHORT_GAP` or more below it (equal shares named together). Compared at the furthest period since the
    first purchase that at least `min_cohorts` cohorts reached (yearly contracts show their churn only after the
    term and grace), or one period on when fewer cohorts are that old."""
    if result is None or result.empty or "1" not in result.columns:
        return finding(_("No cohort of customers is in reach of this slice."), "info") if result is not None \
            else None
    sized = result[result["cohort_size"] > 0]
    reached = [c for c in sized.columns if str(c).isdigit() and int(c) >= 1 and sized[c].notna().sum() >= min_cohorts]
    at = max(reached, key=int) if reached else "1"
    seen = sized[sized[at].notna()]
    if len(seen) < 2 or seen[at].nunique() == 1:
        return None
    worst_value = seen[at].min()
    worst = seen[seen[at] == worst_value]
    others = seen.loc[seen[at] != worst_value, at]
    if float(others.median()) - worst_value < MIN_COHORT_GAP:
        return None  # 99% against 100% is not a finding
    text = n_("The {cohorts} cohort kept {share} of its customers {n} periods on; the other cohorts' median is "
              "{median}.", "The {cohorts} cohorts kept {share} of their customers {n} periods on; the other "
              "cohorts' median is {median}.", len(worst), cohorts=", ".join(worst["cohort"]),
              share=_fmt(worst_value, "share", 0), median=_fmt(float(others.median()), "share", 0), n=int(at))
    severity = "watch" if float(others.median()) - worst_value >= 0.1 else "info"
    return finding(text, severity, recommendation=_(
        "Look at what the {cohorts} cohort was sold and how it was onboarded.", cohorts=", ".join(worst["cohort"]))
        if severity == "watch" else None)


# ---------------------------------------------------------------------------------------------------- KPIs

#: The frame name under which a notebook hands the purchase history to its KPIs:
#: ``nb.record_kpis(s, [...], area=AREA, with_frames={PURCHASES: purchases})``.
PURCHASES = "purchases"
_HISTORY_NOTE = (" Needs the purchase history (the notebook hands it to its KPIs); from the period's contracts "
                 "alone it is not computed.")


def _kpi_base(frames: Frames, ctx: KpiContext) -> pd.DataFrame | None:
    purchases = frames.get(PURCHASES) if PURCHASES in frames else None
    if purchases is None or "accounts" not in frames:
        return None
    base = customer_base(frames["accounts"], purchases, ctx)
    return None if base.empty else base


@register_kpi("active_customers", label="Active customers", unit="count", direction="higher",
              tables=("accounts", "contracts"), area=AREA,
              description="Customers whose latest purchase (signed contract) before the as-of time (capped at the "
              "period end) is less than `churn_days` (a parameter: 455 = a yearly term plus 90 grace days by default) "
              "old." + _HISTORY_NOTE)
def kpi_active_customers(frames: Frames, ctx: KpiContext) -> float | None:
    base = _kpi_base(frames, ctx)
    return None if base is None else float(base["n_active_end"].sum())


@register_kpi("customer_churn_rate", label="Customer churn rate", unit="rate", direction="lower",
              tables=("accounts", "contracts"), area=AREA,
              description="Customers active at the period start and no longer active at its end (the as-of time, "
              "capped at the period end), divided by the customers active at the start." + _HISTORY_NOTE)
def kpi_customer_churn_rate(frames: Frames, ctx: KpiContext) -> float | None:
    base = _kpi_base(frames, ctx)
    return None if base is None else ratio(float(base["n_churned"].sum()), float(base["n_active_start"].sum()))


@register_kpi("customer_net_growth_rate", label="Customer net growth", unit="rate", direction="higher",
              tables=("accounts", "contracts"), area=AREA,
              description="(Active customers at the end − active customers at the start) ÷ active customers at the "
              "start: new and reactivated customers minus churned ones." + _HISTORY_NOTE)
def kpi_customer_net_growth_rate(frames: Frames, ctx: KpiContext) -> float | None:
    base = _kpi_base(frames, ctx)
    return None if base is None else ratio(float(base["net_growth"].sum()), float(base["n_active_start"].sum()))


@register_kpi("paying_customers", label="Buying customers", unit="count", direction="higher",
              tables=("accounts", "contracts"), area=AREA,
              description="Customers of the region who signed at least one contract in the period.")
def kpi_paying_customers(frames: Frames, ctx: KpiContext) -> float | None:
    contracts = frames["contracts"]
    mine = region_accounts(frames["accounts"], ctx)
    signed = contracts[((contracts["signed_at"] >= ctx.period_start) & (contracts["signed_at"] < reference_time(ctx))
                        ).fillna(False).astype(bool)]
    signed = signed[isin(signed["account_id"].astype("string"), mine["account_id"].astype("string"))]
    return float(signed["account_id"].nunique())


# ------------------------------------------------------------------------------------------------ labels

def tier_label(tier: str) -> str:
    """The reader's name of an RFM or value tier."""
    return _(TIER_LABELS.get(tier) or VALUE_LABELS.get(tier) or tier)

