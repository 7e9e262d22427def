"""Customer engagement (客户行为): how the customers engage with marketing (website visits, downloads, email opens
and clicks, event registrations and attendance — ``campaign_events``) and with their reps (calls, meetings, visits
— ``activities``), per customer segment and over time.

Pure functions over validated frames, as the other areas. An event counts for a customer when it names the
account (``campaign_events.account_id``) or comes from a lead that became one of the account's opportunities
(``leads.lead_id`` → ``leads.opportunity_id`` → ``opportunities.account_id``); events of leads that never became
an opportunity are prospects', not customers', and are left out. The customers of a period are the active
customers at its reference time (`crmlens.metrics.customers.customer_states`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crmlens.analysis import on_slice
from crmlens.findings import Finding, finding
from crmlens.i18n import N_, _, n_
from crmlens.kpis import KpiContext
from crmlens.metrics.common import UNKNOWN, bucket, check_choice, extreme_vs_median, lookup, reference_time
from crmlens.metrics.common import fmt as _fmt
from crmlens.metrics.customers import SEGMENTS, customer_states
from crmlens.present import register_columns

#: Marketing engagement counted per customer, in the order readers see it.
EVENTS = ("visit", "download", "open", "click", "register", "attend")
EVENT_LABELS = {"visit": N_("Website visits"), "download": N_("Downloads"), "open": N_("Email opens"),
                "click": N_("Email clicks"), "register": N_("Event registrations"), "attend": N_("Event attendance")}
#: A segment is named as engaging less only with at least this many customers and this gap below the median.
MIN_CUSTOMERS = 20
MIN_GAP = 0.05

register_columns({
    "n_customers_active": (N_("Active customers"), "count"),
    "n_engaged": (N_("Engaged customers"), "count"),
    "engaged_share": (N_("Share engaged"), "share"),
    "n_visit": (EVENT_LABELS["visit"], "count"),
    "n_download": (EVENT_LABELS["download"], "count"),
    "n_open": (EVENT_LABELS["open"], "count"),
    "n_click": (EVENT_LABELS["click"], "count"),
    "n_register": (EVENT_LABELS["register"], "count"),
    "n_attend": (EVENT_LABELS["attend"], "count"),
    "events_per_customer": (N_("Marketing events per customer"), "ratio"),
    "activities_per_customer": (N_("Rep activities per customer"), "ratio"),
})


def customer_events(campaign_events: pd.DataFrame, leads: pd.DataFrame | None,
                    opportunities: pd.DataFrame | None) -> pd.DataFrame:
    """The campaign events with the account they belong to (``account_id`` filled from the lead's opportunity
    where the event names no account); events that reach no account are dropped."""
    account = campaign_events["account_id"].astype("string") if "account_id" in campaign_events else \
        pd.Series(pd.NA, index=campaign_events.index, dtype="string")
    if leads is not None and opportunities is not None and "lead_id" in campaign_events:
        converted = leads.drop_duplicates("lead_id").set_index("lead_id")["opportunity_id"]
        opp = lookup(campaign_events["lead_id"], converted)
        owner = opportunities.drop_duplicates("opportunity_id").set_index("opportunity_id")["account_id"]
        via = lookup(opp, owner)
        account = account.fillna(via.astype("string"))
    out = campaign_events.assign(account_id=account)
    return out[out["account_id"].notna()]


def _counts(events: pd.DataFrame, keys: pd.Series) -> pd.DataFrame:
    kinds = events["event_type"].astype("string")
    frame = pd.DataFrame({"key": keys.to_numpy(), "kind": kinds.to_numpy()})
    frame = frame[frame["kind"].isin(EVENTS)]
    table = pd.crosstab(frame["key"], frame["kind"]) if len(frame) else pd.DataFrame()
    return table.reindex(columns=list(EVENTS), fill_value=0).add_prefix("n_")


@on_slice("accounts", "contracts", "campaign_events", columns={"by": "accounts"})
def by_segment(accounts: pd.DataFrame, purchases: pd.DataFrame | None, campaign_events: pd.DataFrame, *,
               ctx: KpiContext, by: str | None = None, leads: pd.DataFrame | None = None,
               opportunities: pd.DataFrame | None = None, activities: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per segment `by` (an account attribute of `crmlens.metrics.customers.SEGMENTS`, or overall): the active
    customers at the reference time, those engaged (at least one marketing event in the period), the share
    engaged, the events per kind and per customer, and rep activities per customer (when the source has
    activities). Most customers first. (Ratios such as clicks per open are not given: exports often hold a click
    without its open, or an attendance without its registration.)"""
    if by is not None:
        check_choice("by", by, SEGMENTS)
    states = customer_states(accounts, purchases, ctx)
    active = states.loc[states["active_end"], "account_id"].astype("string")
    acc = accounts.drop_duplicates("account_id").set_index("account_id")
    if by is None:
        segment_of = pd.Series(_("All active customers"), index=active.to_numpy(), dtype="string")
    else:
        values = acc[by] if by in acc else pd.Series(pd.NA, index=acc.index)
        segment_of = pd.Series(lookup(active, values).astype("string").fillna(UNKNOWN).to_numpy(),
                               index=active.to_numpy(), dtype="string")
    start, at = pd.Timestamp(ctx.period_start), reference_time(ctx)
    events = customer_events(campaign_events, leads, opportunities)
    events = events[(events["occurred_at"] >= start) & (events["occurred_at"] < at)
                     & events["account_id"].isin(segment_of.index)]
    per_customer = _counts(events, events["account_id"])
    out = pd.DataFrame({"segment": segment_of.to_numpy(), "account_id": segment_of.index})
    out["engaged"] = out["account_id"].isin(per_customer.index)
    counts = per_customer.reindex(out["account_id"]).fillna(0).astype("int64").reset_index(drop=True)
    out = pd.concat([out.reset_index(drop=True), counts], axis=1)
    if activities is not None and "account_id" in activities:
        acts = activities[(activities["occurred_at"] >= start) & (activities["occurred_at"] < at)]
        per = acts["account_id"].astype("string").value_counts()
        out["n_activities"] = out["account_id"].map(per).fillna(0).astype("int64")
    g = out.groupby("segment", sort=True)
    table = g[[c for c in out.columns if c.startswith("n_")]].sum()
    table.insert(0, "n_engaged", g["engaged"].sum())
    table.insert(0, "n_customers_active", g.size())
    table["engaged_share"] = table["n_engaged"] / table["n_customers_active"]
    table["events_per_customer"] = table[[f"n_{k}" for k in EVENTS]].sum(axis=1) / table["n_customers_active"]
    if "n_activities" in table:
        table["activities_per_customer"] = table.pop("n_activities") / table["n_customers_active"]
    table = table.reset_index().sort_values(["n_customers_active", "segment"], ascending=[False, True],
                                            kind="stable").reset_index(drop=True)
    table.attrs["by"] = by
    return table


def describe_engagement(result: pd.DataFrame | None) -> Finding | None:
    """Overall: the share of active customers who engaged and with what most. Per segment: the segment(s) engaging
    least, when at least `MIN_GAP` below the median segment (segments of `MIN_CUSTOMERS` customers or more)."""
    if result is None or result.empty:
        return None
    if result.attrs.get("by") is None:
        row = result.iloc[0]
        if int(row["n_customers_active"]) == 0:
            return None
        counts = {k: int(row[f"n_{k}"]) for k in EVENTS}
        if not any(counts.values()):
            return finding(_("None of the {n} active customers engaged with a campaign in the period.",
                             n=_fmt(int(row["n_customers_active"]), "count")), "watch",
                           recommendation=_("Invite the active customers to the next webinar or event, and send "
                                            "them the content that brought in new customers."))
        top = max(counts.values())
        most = [k for k in EVENTS if counts[k] == top]
        text = _("{share} of the active customers engaged with marketing in the period ({n} of {total}); most "
                 "through {kinds} ({count}).", share=_fmt(row["engaged_share"], "share"),
                 n=_fmt(int(row["n_engaged"]), "count"), total=_fmt(int(row["n_customers_active"]), "count"),
                 kinds=", ".join(_(EVENT_LABELS[k]).lower() for k in most), count=_fmt(top, "count"))
        return finding(text, "info")
    found = extreme_vs_median(result[result["n_customers_active"] >= MIN_CUSTOMERS], "engaged_share", lowest=True,
                              min_gap=MIN_GAP, min_groups=3)
    if found is None:
        return None
    worst, low, median = found
    names = ", ".join(str(v) for v in worst["segment"])
    text = n_("{segments} engages least: {share} of its active customers engaged with marketing, against a median "
              "of {median}.", "{segments} engage least: {share} of their active customers engaged with marketing, "
              "against a median of {median}.", len(worst), segments=names, share=_fmt(low, "share"),
              median=_fmt(median, "share"))
    return finding(text, "watch", recommendation=_(
        "Plan a campaign for the {segments} customers (a user event, a product webinar) and ask their account "
        "managers to invite them.", segments=names))


@on_slice("accounts", "contracts", "campaign_events")
def trend(s: Any, accounts: pd.DataFrame, purchases: pd.DataFrame | None, campaign_events: pd.DataFrame, *,
          ctx: KpiContext, freq: str = "month", n_periods: int = 4, leads: pd.DataFrame | None = None,
          opportunities: pd.DataFrame | None = None) -> pd.DataFrame:
    """Customers' marketing events per `freq` and kind over the `n_periods` periods (of the slice's kind) ending
    with the slice's own — the customers of the region (accounts that ever bought by the reference time)."""
    history = s.history("campaign_events", n_periods) if hasattr(s, "history") else campaign_events
    if hasattr(s, "history") and s.has("leads") and s.has("opportunities"):
        leads, opportunities = s.history("leads", n_periods + 8), s.history("opportunities", n_periods + 8)
    states = customer_states(accounts, purchases, ctx)
    events = customer_events(history, leads, opportunities)
    events = events[events["account_id"].isin(states["account_id"]) & (events["occurred_at"] < reference_time(ctx))]
    period = bucket(events["occurred_at"], freq)
    out = _counts(events, period).reset_index().rename(columns={"key": "period"})
    out.attrs["freq"] = freq
    return out


def describe_trend(result: pd.DataFrame | None) -> Finding | None:
    """The last complete period's customer events against the average of the periods before it, when they moved
    by a quarter or more."""
    if result is None or len(result) < 4:
        return None
    total = result[[f"n_{k}" for k in EVENTS]].sum(axis=1).to_numpy(dtype="float64")
    last, before = total[-2], float(np.mean(total[:-2]))  # the last row may be a period still running
    if before <= 0 or abs(last / before - 1) < 0.25:
        return None
    change = last / before - 1
    text = _("Customers' marketing engagement in {period} was {change} against the average of the periods before "
             "({last} events vs {before}).", period=str(result["period"].iloc[-2]),
             change=_fmt(change, "rate") if change < 0 else "+" + _fmt(change, "rate"), last=_fmt(last, "count"),
             before=_fmt(before, "count"))
    return finding(text, "watch" if change < 0 else "good", recommendation=_(
        "Find which campaigns stopped reaching customers and restart the ones that worked.") if change < 0 else None)
