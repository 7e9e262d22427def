"""Marketing (营销活动效果评估): campaign and channel return on investment, and multi-touch attribution.

Pure functions over validated frames, as the other areas.

**Campaign ROI** (`campaign_roi`): the campaigns active in the period (started before its end, not ended before
its start), their cost (``campaigns.cost_amount``), the leads they brought (``leads.campaign_id``, created at any
time) and how far those went — MQL, SQL, opportunity, won — and the revenue they brought: the amount of the won
opportunities the leads converted into (``leads.opportunity_id`` → ``opportunities.amount`` where ``is_won``),
**followed to the reference time** (the as-of time, capped at the period end; the attribution window is the
whole time since the lead). ROI = (revenue − cost) ÷ cost; cost per lead, per MQL; CPA = cost ÷ won customers
(distinct accounts of the won opportunities). The definitions of `crmlens.truths.ChannelRoi`.

**Attribution** (`attribute`): a journey is the touches (campaign events) of one lead or account before its
conversion; each model splits the conversion's value between the touches — first-touch, last-touch, linear,
U-shaped (40 % first, 40 % last, 20 % spread over the middle), W-shaped (30 % first, 30 % the lead-creation
touch, 30 % last, 10 % spread over the others) and time-decay (a touch's weight halves every `half_life_days`
before the conversion). A journey of one touch gives it everything under every model; of two touches, U- and
W-shaped split it 50/50.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from crmlens.analysis import on_slice
from crmlens.errors import ParameterError
from crmlens.findings import Finding, finding
from crmlens.i18n import N_, _
from crmlens.kpis import KpiContext, register_kpi
from crmlens.metrics import datadriven
from crmlens.metrics.common import (
    UNKNOWN,
    bucket,
    check_choice,
    in_period,
    isin,
    lookup,
    ratio,
    reference_time,
    region_accounts,
    won_mask,
)
from crmlens.metrics.common import fmt as _fmt
from crmlens.present import register_columns

AREA = "marketing"
Frames = Mapping[str, pd.DataFrame]
ROI_BY = ("campaign", "channel")
MODELS = ("first_touch", "last_touch", "linear", "u_shaped", "w_shaped", "time_decay")
#: A time-decay touch's weight halves every this many days before the conversion.
HALF_LIFE_DAYS = 7.0

register_columns({
    "channel": (N_("Channel"), "text"),
    "cost_amount": (N_("Cost"), "amount"),
    "n_leads": (N_("Leads"), "count"),
    "n_mqls": (N_("MQLs"), "count"),
    "n_sqls": (N_("SQLs"), "count"),
    "n_opportunities": (N_("Opportunities"), "count"),
    "n_won": (N_("Won deals"), "count"),
    "won_amount": (N_("Won amount"), "amount"),
    "roi": (N_("ROI"), "rate"),
    "cost_per_lead": (N_("Cost per lead"), "amount"),
    "cost_per_mql": (N_("Cost per MQL"), "amount"),
    "cpa": (N_("Cost per won customer (CPA)"), "amount"),
    "payback_days": (N_("Payback (days)"), "days"),
    "attributed_amount": (N_("Credited value"), "amount"),
    "attributed_share": (N_("Share of credit"), "share"),
    "first_touch": (N_("First touch"), "share"),
    "last_touch": (N_("Last touch"), "share"),
    "linear": (N_("Linear"), "share"),
    "u_shaped": (N_("U-shaped"), "share"),
    "w_shaped": (N_("W-shaped"), "share"),
    "time_decay": (N_("Time decay"), "share"),
    "vs_last_touch": (N_("Largest gap to last touch"), "share"),
    "markov": (N_("Markov chain"), "share"),
    "shapley": (N_("Shapley value"), "share"),
    "sql_rate": (N_("Lead→SQL rate"), "rate"),
    "median_days_to_won": (N_("Median days lead→won"), "days"),
    "lead_share": (N_("Share of leads"), "share"),
    "cost_share": (N_("Share of cost"), "share"),
    "days_to_mql": (N_("Days to MQL"), "days"),
    "days_to_sql": (N_("Days MQL→SQL"), "days"),
    "days_to_opportunity": (N_("Days SQL→opportunity"), "days"),
    "days_to_close": (N_("Days opportunity→won"), "days"),
    "n_impressions": (N_("Impressions"), "count"),
    "n_opens": (N_("Email opens"), "count"),
    "n_clicks": (N_("Clicks"), "count"),
    "n_registrations": (N_("Registrations"), "count"),
    "n_attended": (N_("Attendances"), "count"),
    "n_downloads": (N_("Downloads"), "count"),
    "n_visits": (N_("Web visits"), "count"),
    "n_engagements": (N_("Engagements"), "count"),
    "n_engaged_leads": (N_("Leads who engaged"), "count"),
    "click_rate": (N_("Clicks per view"), "rate"),
    "attendance_rate": (N_("Attendance rate"), "rate"),
    "n_exposed": (N_("Exposed (impressions)"), "count"),
    "engagement_rate": (N_("Engagements per impression"), "rate"),
    "lead_rate": (N_("Leads per engagement"), "rate"),
    "opportunity_rate": (N_("Lead→opportunity rate"), "rate"),
    "won_rate": (N_("Opportunity→won rate"), "rate"),
    "n_campaigns": (N_("Campaigns"), "count"),
    "elasticity": (N_("Elasticity (revenue to spend)"), "ratio"),
    "marginal_roi": (N_("Marginal ROI"), "rate"),
    "marginal_roi_low": (N_("Marginal ROI, low"), "rate"),
    "marginal_roi_high": (N_("Marginal ROI, high"), "rate"),
})


def campaign_roi(campaigns: pd.DataFrame, leads: pd.DataFrame, *, ctx: KpiContext, by: str = "channel",
                 opportunities: pd.DataFrame | None = None,
                 ended_between: tuple[pd.Timestamp, pd.Timestamp] | None = None) -> pd.DataFrame:
    """Per campaign or per channel (`ROI_BY`), for the campaigns active in the period (or, with `ended_between`,
    those that ended in that window: campaigns old enough for their leads to have become deals): cost, leads,
    MQLs, SQLs, opportunities, won deals and won amount (followed to the reference time), ROI, cost per lead and
    per MQL, CPA, and the payback: the days from a campaign's start until the won amount of its leads covered
    its cost (for a channel, the median over its campaigns; missing while most have not paid back). An undated
    campaign (no ``started_at``) counts in every period. Best ROI first; campaigns without a cost have no ROI.
    Leads must be the campaigns' leads of any date (a slice's leads are the
    period's: pass ``s.history("leads", n)``)."""
    check_choice("by", by, ROI_BY)
    at = reference_time(ctx)
    active = campaigns_in(campaigns, ctx, ended_between)
    key = "campaign_id" if by == "campaign" else "channel"
    mine = leads[isin(leads["campaign_id"], active["campaign_id"]) & (leads["created_at"] < at).fillna(False)]
    group = lookup(mine["campaign_id"].astype("string"),
                   active.set_index(active["campaign_id"].astype("string"))[key].astype("string"))
    frame = pd.DataFrame({
        "key": group.to_numpy(), "lead": 1,
        "mql": (mine["mql_at"] < at).to_numpy(dtype=bool, na_value=False),
        "sql": (mine["sql_at"] < at).to_numpy(dtype=bool, na_value=False),
        "opp": mine["opportunity_id"].notna().to_numpy(),
    })
    won_amount = pd.Series(0.0, index=mine.index)
    won_account = pd.Series(pd.NA, index=mine.index, dtype="string")
    is_won = pd.Series(False, index=mine.index)
    won_at = pd.Series(pd.NaT, index=mine.index, dtype="datetime64[us]")
    if opportunities is not None and len(opportunities):
        opps = opportunities.drop_duplicates("opportunity_id").set_index(
            opportunities.drop_duplicates("opportunity_id")["opportunity_id"].astype("string"))
        won = opps["is_won"].fillna(False).astype(bool) & (opps["closed_at"] < at).fillna(False).astype(bool)
        ids = mine["opportunity_id"].astype("string")
        is_won = lookup(ids, won).fillna(False).astype(bool)
        won_amount = lookup(ids, opps["amount"].astype("float64")).where(is_won, 0.0).fillna(0.0)
        won_account = lookup(ids, opps["account_id"].astype("string")).where(is_won)
        won_at = lookup(ids, opps["closed_at"]).where(is_won)
    frame["won"] = is_won.to_numpy(dtype=bool)
    frame["won_amount"] = won_amount.to_numpy(dtype="float64")
    frame["account"] = won_account.to_numpy()
    g = frame.groupby("key", sort=True)
    out = pd.DataFrame({"n_leads": g["lead"].sum(), "n_mqls": g["mql"].sum(), "n_sqls": g["sql"].sum(),
                        "n_opportunities": g["opp"].sum(), "n_won": g["won"].sum(),
                        "won_amount": g["won_amount"].sum(), "n_customers": g["account"].nunique()})
    cost = active.groupby(active[key].astype("string"))["cost_amount"].sum(min_count=1)
    out = out.reindex(cost.index.union(out.index).rename(key)).fillna(0)
    out.insert(0, "cost_amount", cost.reindex(out.index))
    paid = out["cost_amount"].where(out["cost_amount"] > 0)
    out["roi"] = (out["won_amount"] - paid) / paid
    out["cost_per_lead"] = paid / out["n_leads"].where(out["n_leads"] > 0)
    out["cost_per_mql"] = paid / out["n_mqls"].where(out["n_mqls"] > 0)
    out["cpa"] = paid / out["n_customers"].where(out["n_customers"] > 0)
    days = _payback_days(active, mine["campaign_id"].astype("string"), won_at, won_amount)
    if by == "campaign":
        out["payback_days"] = days.reindex(out.index)
    else:
        per = pd.DataFrame({"key": lookup(days.index.to_series(), active.set_index(active["campaign_id"].astype(
            "string"))[key].astype("string")).to_numpy(), "days": days.to_numpy()})
        out["payback_days"] = per.groupby("key")["days"].median().reindex(out.index)  # inf: not paid back yet
    out["payback_days"] = out["payback_days"].replace(np.inf, np.nan)
    counts = ["n_leads", "n_mqls", "n_sqls", "n_opportunities", "n_won", "n_customers"]
    out[counts] = out[counts].astype("int64")
    out = out.reset_index()
    out = out.sort_values(["roi", key], ascending=[False, True], na_position="last", kind="stable")
    out = out.drop(columns="n_customers").reset_index(drop=True)
    if by == "campaign" and "name" in active.columns:
        names = active.drop_duplicates("campaign_id").set_index(
            active.drop_duplicates("campaign_id")["campaign_id"].astype("string"))["name"].astype("string")
        out.insert(1, "name", lookup(out["campaign_id"].astype("string"), names).to_numpy())
    out.attrs.update(by=by, window=ended_between)
    return out


def _payback_days(active: pd.DataFrame, campaign_of: pd.Series, won_at: pd.Series,
                  amount: pd.Series) -> pd.Series:
    """Per campaign with a cost (index: campaign_id), the days from its start until the cumulated won amount of
    its leads reached its cost; infinite when it has not yet, missing when the campaign is undated."""
    camp = active.drop_duplicates("campaign_id")
    camp = camp[camp["cost_amount"] > 0].set_index(camp.loc[camp["cost_amount"] > 0, "campaign_id"].astype("string"))
    deals = pd.DataFrame({"campaign_id": campaign_of.to_numpy(), "at": won_at.to_numpy(),
                          "amount": amount.to_numpy(dtype="float64")})
    deals = deals[deals["at"].notna() & deals["campaign_id"].isin(camp.index)].sort_values(
        ["campaign_id", "at"], kind="stable")
    deals["cum"] = deals.groupby("campaign_id")["amount"].cumsum()
    covered = deals[deals["cum"] >= deals["campaign_id"].map(camp["cost_amount"]).to_numpy()]
    first = covered.groupby("campaign_id")["at"].min()
    days = (first.reindex(camp.index) - camp["started_at"]) / pd.Timedelta(days=1)
    days = days.where(first.reindex(camp.index).notna(), np.inf)
    return days.where(camp["started_at"].notna()).astype("float64")


def campaigns_in(campaigns: pd.DataFrame, ctx: KpiContext,
                 ended_between: tuple[pd.Timestamp, pd.Timestamp] | None = None) -> pd.DataFrame:
    """The campaigns active in `ctx`'s period (started before its reference time, not ended before its start; an
    undated campaign is active in every period) or, with `ended_between`, those that ended in that window."""
    if ended_between is not None:
        ended = campaigns["ended_at"]
        return campaigns[((ended >= ended_between[0]) & (ended < ended_between[1])).fillna(False).astype(bool)]
    start, at = pd.Timestamp(ctx.period_start), reference_time(ctx)
    keep = ~(campaigns["started_at"] >= at).fillna(False).astype(bool) & ~(campaigns["ended_at"] < start).fillna(
        False).astype(bool)
    return campaigns[keep]


def describe_campaign_roi(result: pd.DataFrame | None) -> Finding | None:
    """The money-losing channels (or campaigns) with their ROI and what they cost, and the best one — no finding
    when every ROI is equal or there is nothing with a cost. With a window (mature campaigns), it says which
    campaigns were measured."""
    if result is None or result.empty:
        return None
    key = "channel" if result.attrs.get("by") == "channel" else "campaign_id"
    rated = result[result["roi"].notna()]
    if len(rated) < 2 or rated["roi"].nunique() == 1:
        return None
    best = rated[rated["roi"] == rated["roi"].max()]
    losing = rated[rated["roi"] < 0]
    best_names = ", ".join(str(v) for v in best[key])
    if losing.empty:
        return finding(_("Every {what} with a cost paid back; {best} paid back most (ROI {roi}).",
                         what=_("channel") if key == "channel" else _("campaign"), best=best_names,
                         roi=_fmt(best["roi"].iloc[0], "rate")), "good")
    names = ", ".join(str(v) for v in losing[key])
    text = _("{losing} cost more than the revenue they brought ({cost} spent, ROI {roi}); {best} returned most "
             "(ROI {best_roi}).", losing=names, cost=_fmt(float(losing["cost_amount"].sum()), "amount"),
             roi=", ".join(_fmt(v, "rate") for v in losing["roi"]), best=best_names,
             best_roi=_fmt(best["roi"].iloc[0], "rate"))
    window = result.attrs.get("window")
    if window is not None:
        text = _("Of the campaigns that ended from {start} to {end}: {text}", start=pd.Timestamp(window[0]).date(),
                 end=(pd.Timestamp(window[1]) - pd.Timedelta(days=1)).date(), text=text)
    return finding(text, "act", recommendation=_(
        "Move budget from {losing} to {best}, a step at a time, and check the ROI after each step.", losing=names,
        best=best_names))


# ------------------------------------------------------------------------------------------- attribution

def attribute(touches: pd.DataFrame, conversions: pd.DataFrame, model: str, *, by: str = "channel",
              half_life_days: float = HALF_LIFE_DAYS) -> pd.DataFrame:
    """Credit per `by` (a column of `touches`, e.g. channel or campaign_id) under attribution `model`
    (`MODELS`; see the module doc). `touches`: journey_id, `by`, occurred_at, and for W-shaped an optional
    boolean ``is_lead_creation``; `conversions`: journey_id, value, converted_at. Touches at or after their
    journey's conversion do not count; a conversion without a touch before it is credited to nobody (its value is
    in ``attrs["unattributed"]``). Columns: `by`, attributed_amount, attributed_share; most credit first."""
    check_choice("model", model, MODELS)
    if half_life_days <= 0:
        raise ParameterError(f"half_life_days: {half_life_days!r} is not allowed; use a number of days > 0")
    conv = conversions.drop_duplicates("journey_id").set_index("journey_id")
    t = touches[isin(touches["journey_id"], conv.index)].copy()
    t["converted_at"] = t["journey_id"].map(conv["converted_at"])
    t = t[t["occurred_at"] < t["converted_at"]].sort_values(["journey_id", "occurred_at"], kind="stable")
    t["value"] = t["journey_id"].map(conv["value"]).astype("float64")
    g = t.groupby("journey_id", sort=False)
    n = g["occurred_at"].transform("size").to_numpy()
    pos = g.cumcount().to_numpy()
    first, last = pos == 0, pos == n - 1
    if model == "first_touch":
        w = first.astype(float)
    elif model == "last_touch":
        w = last.astype(float)
    elif model == "linear":
        w = 1.0 / n
    elif model == "u_shaped":
        middle = np.where(n > 2, 0.2 / np.maximum(n - 2, 1), 0.0)
        w = np.where(n == 1, 1.0, np.where(n == 2, 0.5, np.where(first | last, 0.4, middle)))
    elif model == "w_shaped":
        w = _w_shaped(t, pos, n)
    else:
        age = (t["converted_at"] - t["occurred_at"]).dt.total_seconds().to_numpy() / 86400.0
        raw = np.power(0.5, age / half_life_days)
        w = raw / pd.Series(raw, index=t.index).groupby(t["journey_id"]).transform("sum").to_numpy()
    t["attributed_amount"] = w * t["value"].to_numpy()
    out = t.groupby(t[by].astype("string").fillna(UNKNOWN), sort=True)["attributed_amount"].sum().rename_axis(
        by).reset_index()
    total = float(out["attributed_amount"].sum())
    out["attributed_share"] = out["attributed_amount"] / total if total > 0 else np.nan
    out = out.sort_values(["attributed_amount", by], ascending=[False, True], kind="stable").reset_index(drop=True)
    reached = isin(conv.index.to_series(), t["journey_id"]).to_numpy()
    out.attrs.update(model=model, unattributed=float(conv.loc[~reached, "value"].sum()))
    return out


def _w_shaped(t: pd.DataFrame, pos: np.ndarray, n: np.ndarray) -> np.ndarray:
    """30 % first, 30 % the lead-creation touch (``is_lead_creation``; else the middle touch), 30 % last, 10 %
    over the others; journeys of one or two touches: all, or 50/50; of three: a third each."""
    if "is_lead_creation" in t.columns and t["is_lead_creation"].fillna(False).astype(bool).any():
        flagged = t["is_lead_creation"].fillna(False).astype(bool).to_numpy()
        first_flag = pd.Series(np.where(flagged, pos, n.max() + 1), index=t.index).groupby(
            t["journey_id"]).transform("min").to_numpy()
        mid = np.where(first_flag <= n, first_flag, n // 2)
    else:
        mid = n // 2
    mid = np.clip(mid, 1, np.maximum(n - 2, 1))
    key = (pos == 0) | (pos == n - 1) | (pos == mid)
    others = np.maximum(n - 3, 0)
    w = np.where(key, 0.3, np.where(others > 0, 0.1 / np.maximum(others, 1), 0.0))
    w = np.where(n == 3, 1 / 3, w)
    w = np.where(n == 2, 0.5, w)
    return np.where(n == 1, 1.0, w)


def journeys(campaign_events: pd.DataFrame, campaigns: pd.DataFrame, leads: pd.DataFrame,
             opportunities: pd.DataFrame, *, window_days: int = 180,
             until: pd.Timestamp | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The journeys, for `attribute` and the data-driven models: one per won opportunity (closed before `until`,
    when given) whose leads (``leads.opportunity_id``) or account (``campaign_events.account_id``) engaged with
    campaigns in the `window_days` before it closed, and one per lead that engaged but did not end in a won deal
    (journey_id ``lead:<lead_id>``, its touches in the `window_days` up to its last one; it has no conversion).
    Touches: journey_id, campaign_id, channel (the campaign's), occurred_at, is_lead_creation (the latest touch
    of the lead's own campaign at or before the lead's creation). Conversions (won journeys only): journey_id,
    value (the amount), converted_at (closed_at)."""
    if window_days <= 0:
        raise ParameterError(f"window_days: {window_days!r} is not allowed; use a number of days > 0")
    won = opportunities[opportunities["is_won"].fillna(False).astype(bool) & opportunities["closed_at"].notna()]
    if until is not None:
        won = won[won["closed_at"] < until]
    conversions = pd.DataFrame({"journey_id": won["opportunity_id"].astype("string").to_numpy(),
                                "value": won["amount"].astype("float64").to_numpy(),
                                "converted_at": won["closed_at"].to_numpy()})
    ev = campaign_events[["campaign_id", "lead_id", "account_id", "occurred_at"]].copy()
    lead = leads.drop_duplicates("lead_id")
    lead = lead.set_index(lead["lead_id"].astype("string"))
    by_lead = lookup(ev["lead_id"].astype("string"), lead["opportunity_id"].astype("string"))
    parts = [ev.assign(journey_id=by_lead.to_numpy())]
    accounts = won[["opportunity_id", "account_id"]].dropna().astype("string")
    if len(accounts):
        by_account = ev[ev["account_id"].notna()].merge(accounts, on="account_id", how="inner")
        parts.append(by_account.rename(columns={"opportunity_id": "journey_id"}))
    touches = pd.concat(parts, ignore_index=True)
    converting = isin(touches["journey_id"], conversions["journey_id"])
    # the leads that engaged but did not end in a won deal: journeys without a conversion ("lead:<id>")
    lost = ev.loc[~isin(by_lead, conversions["journey_id"]).to_numpy(dtype=bool) & ev["lead_id"].notna().to_numpy()]
    if until is not None:
        lost = lost[lost["occurred_at"] < until]
    lost = lost.assign(journey_id="lead:" + lost["lead_id"].astype("string"))
    won_touches = touches[converting].drop_duplicates(["journey_id", "campaign_id", "occurred_at"])
    closed = won_touches["journey_id"].map(conversions.set_index("journey_id")["converted_at"])
    won_touches = won_touches[(won_touches["occurred_at"] < closed)
                              & (won_touches["occurred_at"] >= closed - pd.Timedelta(days=window_days))]
    lost = lost.drop_duplicates(["journey_id", "campaign_id", "occurred_at"])
    ended = lost.groupby("journey_id")["occurred_at"].transform("max")
    lost = lost[lost["occurred_at"] >= ended - pd.Timedelta(days=window_days)]
    touches = pd.concat([won_touches, lost], ignore_index=True)
    touches["channel"] = lookup(touches["campaign_id"].astype("string"), campaigns.set_index(
        campaigns["campaign_id"].astype("string"))["channel"].astype("string")).fillna(UNKNOWN).to_numpy()
    # the lead-creation touch: the latest touch of the lead's own campaign at or before the lead's creation
    own = lookup(touches["lead_id"].astype("string"), lead["campaign_id"].astype("string"))
    created = lookup(touches["lead_id"].astype("string"), lead["created_at"])
    candidate = (own == touches["campaign_id"].astype("string")).fillna(False) & (touches["occurred_at"] <= created)
    latest = touches["occurred_at"].where(candidate).groupby(touches["journey_id"]).transform("max")
    touches["is_lead_creation"] = candidate & (touches["occurred_at"] == latest)
    touches = touches.sort_values(["journey_id", "occurred_at"], kind="stable").reset_index(drop=True)
    return touches[["journey_id", "campaign_id", "channel", "occurred_at", "is_lead_creation"]], conversions


def compare_models(touches: pd.DataFrame, conversions: pd.DataFrame, *, by: str = "channel",
                   models: tuple[str, ...] = MODELS) -> pd.DataFrame:
    """Each `by` value's share of the credit under every model, side by side (one column per model), and
    ``vs_last_touch``: the largest difference of another model's share from last-touch's (points of share,
    signed). Most last-touch credit first."""
    shares = {m: credit(touches, conversions, m, by=by).set_index(by)["attributed_share"] for m in models}
    out = pd.DataFrame(shares).fillna(0.0)
    if "last_touch" in out:
        others = out.drop(columns="last_touch").sub(out["last_touch"], axis=0)
        pick = others.abs().idxmax(axis=1)
        out["vs_last_touch"] = [others.at[i, c] for i, c in zip(out.index, pick, strict=True)]
        out = out.sort_values(["last_touch"], ascending=False, kind="stable")
    return out.rename_axis(by).reset_index()


def describe_models(result: pd.DataFrame | None, *, min_gap: float = 0.05) -> Finding | None:
    """The channel last-touch under-credits most (others credit it `min_gap` or more above: it starts journeys)
    and the one it over-credits most (it closes them) — nothing when no model differs that much."""
    if result is None or result.empty or "vs_last_touch" not in result:
        return None
    key = result.columns[0]
    ordered = result.sort_values("vs_last_touch", kind="stable")
    low, high = ordered.iloc[0], ordered.iloc[-1]
    parts = []
    if high["vs_last_touch"] >= min_gap:
        parts.append(_("last-touch under-credits {name} by up to {gap} of the credit: it starts journeys that other "
                       "channels close", name=str(high[key]), gap=_fmt(high["vs_last_touch"], "share")))
    if low["vs_last_touch"] <= -min_gap:
        parts.append(_("last-touch over-credits {name} by up to {gap}: it closes journeys others started",
                       name=str(low[key]), gap=_fmt(-low["vs_last_touch"], "share")))
    if not parts:
        return None
    text = _("Across the attribution models, {parts}.", parts="; ".join(parts))
    return finding(text, "watch", recommendation=_(
        "Judge channels on more than last-touch: keep funding the channels that start journeys even when they "
        "rarely close them."))


# ------------------------------------------------------------------------------- the slice's marketing data

#: Days of history the marketing analyses read (campaigns' leads take months to become won deals).
HISTORY_DAYS = 3 * 365
#: A campaign (or a lead cohort) is **mature** when it ended (was created) at least this many days before the
#: reference time: time enough for most leads to become won or lost deals (the demo's median lead → won is
#: about 90 days). ROI, lead quality and the response curves are measured on mature campaigns and cohorts;
#: the period's own campaigns show their cost, leads and MQLs, early indicators.
MATURITY_DAYS = 180
#: Length of the mature window of the ROI and channel-efficiency views, and of the paths and response curves.
ROI_WINDOW_DAYS = 365
CURVE_WINDOW_DAYS = 730


@dataclass(frozen=True)
class MarketingData:
    """The marketing tables of a slice's region over its last `n_periods` periods (`marketing_data`).

    * ``campaigns``: the region's campaigns and the global ones (no ``region_id``); in a region, a global
      campaign's ``cost_amount`` is its share by the region's share of the campaign's leads (``cost_shared``
      in ``attrs``); for "all", every campaign at its whole cost;
    * ``leads``, ``opportunities``: the region's, of the `n_periods` periods;
    * ``events``: the engagement with the region's campaigns, and with global campaigns by the region's leads
      and accounts (anonymous engagement with a global campaign counts for the whole company only);
    * ``own_events``: the engagement with the region's own campaigns only (engagement rates of a global campaign
      measured on one region's leads alone would be biased: they are shown for the whole company);
    * ``ad_metrics``: ``campaign_metrics`` of the region's own campaigns (global ones: the whole company only).
    Tables the source lacks are None.
    """

    campaigns: pd.DataFrame | None
    leads: pd.DataFrame | None
    events: pd.DataFrame | None
    opportunities: pd.DataFrame | None
    ad_metrics: pd.DataFrame | None
    own_events: pd.DataFrame | None
    ctx: KpiContext

    @property
    def at(self) -> pd.Timestamp:
        """The reference time: revenue is followed to it."""
        return reference_time(self.ctx)

    def mature(self, days: int, maturity_days: int = MATURITY_DAYS) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The window of `days` days that ends `maturity_days` before the reference time."""
        end = self.at.normalize() - pd.Timedelta(days=maturity_days)
        return end - pd.Timedelta(days=days), end


def history_periods(s: Any, days: int = HISTORY_DAYS) -> int:
    """How many periods of the slice's kind cover `days` days (at least three)."""
    length = max((pd.Timestamp(s.period.end) - pd.Timestamp(s.period.start)).days, 1)
    return max(3, min(400, -(-days // length)))


def marketing_data(s: Any) -> MarketingData:
    """The slice's `MarketingData` (read once per slice and shared by the notebook's cells)."""
    key = "marketing"
    if key in s.derived:
        return s.derived[key]
    from crmlens import notebook

    n_periods = history_periods(s)
    ctx = notebook.context(s)
    region = s.params.region
    campaigns = s.tables["campaigns"] if s.has("campaigns") else None
    leads = s.history("leads", n_periods) if s.has("leads") else None
    events = s.history("campaign_events", n_periods, region="all") if s.has("campaign_events") else None
    own_events = events
    if region != "all" and campaigns is not None:
        here = campaigns["region_id"].astype("string").eq(region).fillna(False).to_numpy(dtype=bool)
        spread = campaigns["region_id"].isna().to_numpy()
        campaigns = campaigns[here | spread].copy()
        spread = campaigns["region_id"].isna().to_numpy()
        if spread.any():
            share = pd.Series(0.0, index=campaigns.index)
            if leads is not None:
                everywhere = s.history_columns("leads", ["campaign_id"], n_periods, region="all")["campaign_id"]
                ratio_ = (leads["campaign_id"].astype("string").value_counts()
                          / everywhere.astype("string").value_counts())
                share = lookup(campaigns["campaign_id"].astype("string"), ratio_).fillna(0.0).astype("float64")
            campaigns["cost_amount"] = campaigns["cost_amount"].where(~spread, campaigns["cost_amount"] * share)
            campaigns.attrs["cost_shared"] = True
        if events is not None:
            ids = campaigns["campaign_id"].astype("string")
            own = isin(events["campaign_id"], ids[~spread])
            lead_ids = leads["lead_id"] if leads is not None else pd.Series([], dtype="string")
            accounts = region_accounts(s.tables["accounts"], ctx)["account_id"] if s.has("accounts") else lead_ids[:0]
            theirs = isin(events["campaign_id"], ids[spread]) & (isin(events["lead_id"], lead_ids)
                                                                  | isin(events["account_id"], accounts))
            own_events = events[own.to_numpy(dtype=bool)]
            events = events[(own | theirs).to_numpy(dtype=bool)]
    out = MarketingData(
        campaigns=campaigns, leads=leads, events=events,
        opportunities=s.history("opportunities", n_periods) if s.has("opportunities") else None,
        ad_metrics=s.history("campaign_metrics", n_periods) if s.has("campaign_metrics") else None,
        own_events=own_events, ctx=ctx)
    s.derived[key] = out
    return out


@on_slice("campaigns", "leads")
def channel_roi(s: Any, by: str = "channel", *, mature: bool = True) -> pd.DataFrame:
    """`campaign_roi` of the slice (the region's campaigns and its share of the global ones; their leads followed
    to the as-of time): by default of the **mature** campaigns — those that ended in the `ROI_WINDOW_DAYS` up to
    `MATURITY_DAYS` before the as-of, whose leads have had time to become deals; with ``mature=False``, of the
    campaigns active in the period (their cost, leads and MQLs are early indicators, their ROI still grows)."""
    md = marketing_data(s)
    window = md.mature(ROI_WINDOW_DAYS) if mature else None
    return campaign_roi(md.campaigns, md.leads, ctx=md.ctx, by=by, opportunities=md.opportunities,
                        ended_between=window)


# ------------------------------------------------------------------------------------- channel efficiency

def _lead_steps(leads: pd.DataFrame, opportunities: pd.DataFrame | None, at: pd.Timestamp) -> pd.DataFrame:
    """Per lead, as known at `at`: reached MQL / SQL / opportunity / won (a later step implies the earlier ones),
    days lead→MQL, MQL→SQL, SQL→opportunity, opportunity→won, lead→won, and the won amount."""
    n = len(leads)
    opp = pd.Series(pd.NA, index=leads.index, dtype="string") if "opportunity_id" not in leads else \
        leads["opportunity_id"].astype("string")
    opp_created = pd.Series(pd.NaT, index=leads.index, dtype="datetime64[us]")
    closed = pd.Series(pd.NaT, index=leads.index, dtype="datetime64[us]")
    won = np.zeros(n, dtype=bool)
    amount = np.zeros(n)
    if opportunities is not None and len(opportunities):
        opps = opportunities.drop_duplicates("opportunity_id")
        opps = opps.set_index(opps["opportunity_id"].astype("string"))
        won_here = won_mask(opps) & (opps["closed_at"] < at).fillna(False).astype(bool)
        won = lookup(opp, won_here).fillna(False).to_numpy(dtype=bool)
        amount = lookup(opp, opps["amount"].astype("float64")).fillna(0.0).to_numpy() * won
        opp_created = lookup(opp, opps["created_at"])
        closed = lookup(opp, opps["closed_at"]).where(won)
    reached_opp = opp.notna().to_numpy() | won
    sql = (leads["sql_at"] < at).to_numpy(dtype=bool, na_value=False) | reached_opp
    mql = (leads["mql_at"] < at).to_numpy(dtype=bool, na_value=False) | sql
    day = pd.Timedelta(days=1)
    return pd.DataFrame({
        "mql": mql, "sql": sql, "opportunity": reached_opp, "won": won, "won_amount": amount,
        "days_to_mql": ((leads["mql_at"] - leads["created_at"]) / day).to_numpy(dtype="float64", na_value=np.nan),
        "days_to_sql": ((leads["sql_at"] - leads["mql_at"]) / day).to_numpy(dtype="float64", na_value=np.nan),
        "days_to_opportunity": ((opp_created - leads["sql_at"]) / day).to_numpy(dtype="float64", na_value=np.nan),
        "days_to_close": ((closed - opp_created) / day).to_numpy(dtype="float64", na_value=np.nan),
        "days_to_won": ((closed - leads["created_at"]) / day).to_numpy(dtype="float64", na_value=np.nan),
    }, index=leads.index)


def _cohort(leads: pd.DataFrame, ctx: KpiContext,
            created_between: tuple[pd.Timestamp, pd.Timestamp] | None) -> pd.DataFrame:
    if created_between is None:
        return leads[in_period(leads["created_at"], ctx)]
    created = leads["created_at"]
    return leads[((created >= created_between[0]) & (created < created_between[1])).fillna(False).astype(bool)]


def channel_efficiency(leads: pd.DataFrame, opportunities: pd.DataFrame | None = None, *, ctx: KpiContext,
                       roi: pd.DataFrame | None = None,
                       created_between: tuple[pd.Timestamp, pd.Timestamp] | None = None) -> pd.DataFrame:
    """Per lead source channel (``leads.source_channel``; organic and other channels without campaigns too), the
    period's lead cohort (created in it) followed to the reference time: leads, lead quality — MQL, SQL and
    win rate (share of the leads that reached each) —, speed (median days lead → won) and the won amount; with
    the cost and ROI of the channel's campaigns active in the period (`roi`: `campaign_roi` by channel; a
    channel without campaigns has none) and the cost per lead of the cohort. With `created_between`, the cohort
    is the leads created in that window instead. Most leads first."""
    at = reference_time(ctx)
    cohort = _cohort(leads, ctx, created_between)
    steps = _lead_steps(cohort, opportunities, at)
    steps["channel"] = cohort["source_channel"].astype("string").fillna(UNKNOWN).to_numpy()
    g = steps.groupby("channel", sort=True)
    out = pd.DataFrame({"n_leads": g.size(), "mql_rate": g["mql"].mean(), "sql_rate": g["sql"].mean(),
                        "lead_to_won_rate": g["won"].mean(), "median_days_to_won": g["days_to_won"].median(),
                        "won_amount": g["won_amount"].sum()})
    if roi is not None and not roi.empty and "channel" in roi:
        costs = roi.set_index("channel")
        out = out.join(costs[["cost_amount", "roi"]], how="outer")
        out["n_leads"] = out["n_leads"].fillna(0).astype("int64")
        out["won_amount"] = out["won_amount"].fillna(0.0)
        out["cost_per_lead"] = out["cost_amount"].where(out["cost_amount"] > 0) / out["n_leads"].where(
            out["n_leads"] > 0)
    out = out.rename_axis("channel").reset_index()
    return out.sort_values(["n_leads", "channel"], ascending=[False, True], kind="stable").reset_index(drop=True)


@on_slice("leads")
def channel_efficiency_of(s: Any) -> pd.DataFrame:
    """`channel_efficiency` of the mature lead cohort (created in the `ROI_WINDOW_DAYS` up to `MATURITY_DAYS`
    before the as-of), with the cost and ROI of the campaigns that ended in the same window."""
    md = marketing_data(s)
    window = md.mature(ROI_WINDOW_DAYS)
    roi = campaign_roi(md.campaigns, md.leads, ctx=md.ctx, opportunities=md.opportunities, ended_between=window) \
        if md.campaigns is not None else None
    return channel_efficiency(md.leads, md.opportunities, ctx=md.ctx, roi=roi, created_between=window)


def describe_channel_efficiency(result: pd.DataFrame | None, *, min_leads: int = 20) -> Finding | None:
    """The channel whose leads turn into won deals most often and the one least often (channels with at least
    `min_leads` leads), with the fastest and slowest — nothing when the rates are equal."""
    if result is None or result.empty:
        return None
    rated = result[(result["n_leads"] >= min_leads) & result["lead_to_won_rate"].notna()]
    if len(rated) < 2 or rated["lead_to_won_rate"].nunique() == 1:
        return None
    best = rated[rated["lead_to_won_rate"] == rated["lead_to_won_rate"].max()]
    worst = rated[rated["lead_to_won_rate"] == rated["lead_to_won_rate"].min()]
    if len(best) > 1 or len(worst) > 1:  # tied at the top or the bottom: no ranking
        return None
    text = _("Leads from {best} become won deals most often ({best_rate} of {n} leads), leads from {worst} least "
             "often ({worst_rate}).", best=", ".join(best["channel"].astype(str)),
             best_rate=_fmt(best["lead_to_won_rate"].iloc[0], "rate"), n=_fmt(int(best["n_leads"].sum()), "count"),
             worst=", ".join(worst["channel"].astype(str)), worst_rate=_fmt(worst["lead_to_won_rate"].iloc[0], "rate"))
    return finding(text, "info", recommendation=_(
        "Judge channels by the deals their leads become, not by lead volume: qualify {worst}'s leads harder "
        "before they reach sales.", worst=", ".join(worst["channel"].astype(str))))


def channel_mix(leads: pd.DataFrame, campaigns: pd.DataFrame | None = None, *, freq: str = "quarter"
                ) -> pd.DataFrame:
    """Per period (`freq`) and lead source channel: leads created and their share of the period's leads, and
    (with `campaigns`) the cost of the campaigns started in the period and its share. Long format, oldest first."""
    periods = bucket(leads["created_at"], freq)
    frame = pd.DataFrame({"period": periods.to_numpy(),
                          "channel": leads["source_channel"].astype("string").fillna(UNKNOWN).to_numpy()})
    out = frame.groupby(["period", "channel"], sort=True).size().rename("n_leads").reset_index()
    out["lead_share"] = out["n_leads"] / out.groupby("period")["n_leads"].transform("sum")
    if campaigns is not None and len(campaigns):
        started = campaigns[campaigns["started_at"].notna()]
        cost = started.groupby([bucket(started["started_at"], freq).to_numpy(),
                                started["channel"].astype("string").to_numpy()])["cost_amount"].sum()
        cost.index = cost.index.set_names(["period", "channel"])
        out = out.merge(cost.rename("cost_amount").reset_index(), on=["period", "channel"], how="left")
        out = out[out["period"].isin(set(frame["period"]))]
        out["cost_share"] = out["cost_amount"] / out.groupby("period")["cost_amount"].transform("sum")
    return out.sort_values(["period", "channel"], kind="stable").reset_index(drop=True)


@on_slice("leads")
def channel_mix_of(s: Any, *, freq: str = "quarter") -> pd.DataFrame:
    """`channel_mix` of the slice's history (`HISTORY_DAYS`)."""
    md = marketing_data(s)
    return channel_mix(md.leads, md.campaigns, freq=freq)


def describe_channel_mix(result: pd.DataFrame | None, *, min_change: float = 0.05) -> Finding | None:
    """The channel whose share of the leads grew most and the one that shrank most from the first period to the
    last — nothing when no share moved `min_change` (points of share) or more, or with fewer than two periods."""
    if result is None or result.empty or result["period"].nunique() < 2:
        return None
    wide = result.pivot(index="period", columns="channel", values="lead_share").fillna(0.0)
    first, last = wide.index[0], wide.index[-1]
    change = wide.loc[last] - wide.loc[first]
    parts = []
    if change.max() >= min_change:
        up = change.idxmax()
        parts.append(_("{name} grew from {a} to {b} of the leads", name=up, a=_fmt(wide.at[first, up], "share"),
                       b=_fmt(wide.at[last, up], "share")))
    if change.min() <= -min_change:
        down = change.idxmin()
        parts.append(_("{name} fell from {a} to {b}", name=down, a=_fmt(wide.at[first, down], "share"),
                       b=_fmt(wide.at[last, down], "share")))
    if not parts:
        return None
    return finding(_("From {first} to {last}, {parts}.", first=str(first), last=str(last), parts="; ".join(parts)),
                   "info")


# ------------------------------------------------------------------------------------ lead-source paths

def source_paths(leads: pd.DataFrame, opportunities: pd.DataFrame | None = None, *, ctx: KpiContext,
                 created_between: tuple[pd.Timestamp, pd.Timestamp] | None = None) -> pd.DataFrame:
    """How the leads of each source channel (created in `ctx`'s period — a long one, e.g. the last eight
    quarters) move through the funnel, known at the reference time: leads, the rate of each step (lead → MQL →
    SQL → opportunity → won), the median days each step took, and the source's share of the lead-sourced
    bookings (won amount). With `created_between`, the leads created in that window. Largest share of bookings
    first."""
    at = reference_time(ctx)
    cohort = _cohort(leads, ctx, created_between)
    steps = _lead_steps(cohort, opportunities, at)
    steps["channel"] = cohort["source_channel"].astype("string").fillna(UNKNOWN).to_numpy()
    g = steps.groupby("channel", sort=True)
    n = g.size()
    out = pd.DataFrame({
        "n_leads": n, "mql_rate": g["mql"].sum() / n,
        "mql_to_sql_rate": g["sql"].sum() / g["mql"].sum().where(lambda v: v > 0),
        "sql_to_opportunity_rate": g["opportunity"].sum() / g["sql"].sum().where(lambda v: v > 0),
        "opportunity_to_won_rate": g["won"].sum() / g["opportunity"].sum().where(lambda v: v > 0),
        "days_to_mql": g["days_to_mql"].median(), "days_to_sql": g["days_to_sql"].median(),
        "days_to_opportunity": g["days_to_opportunity"].median(), "days_to_close": g["days_to_close"].median(),
        "won_amount": g["won_amount"].sum()})
    total = float(out["won_amount"].sum())
    out["bookings_share"] = out["won_amount"] / total if total > 0 else np.nan
    out = out.rename_axis("channel").reset_index()
    return out.sort_values(["won_amount", "channel"], ascending=[False, True], kind="stable").reset_index(drop=True)


@on_slice("leads")
def source_paths_of(s: Any) -> pd.DataFrame:
    """`source_paths` of the mature lead cohort of `CURVE_WINDOW_DAYS` (created up to `MATURITY_DAYS` before the
    as-of)."""
    md = marketing_data(s)
    return source_paths(md.leads, md.opportunities, ctx=md.ctx, created_between=md.mature(CURVE_WINDOW_DAYS))





def describe_source_paths(result: pd.DataFrame | None, *, min_leads: int = 20) -> Finding | None:
    """The source that brings the largest share of bookings, and the step where the source with the most leads
    loses most of them against the median source — nothing when there are no bookings or fewer than two sources
    with `min_leads` leads."""
    if result is None or result.empty or not (result["won_amount"] > 0).any():
        return None
    rated = result[result["n_leads"] >= min_leads]
    if len(rated) < 2:
        return None
    top = rated[rated["bookings_share"] == rated["bookings_share"].max()]
    if len(top) > 1:
        return None
    row = top.iloc[0]
    text = _("{name} brings {share} of the bookings from leads ({amount} won from {n} leads; {rate} of its "
             "opportunities are won).", name=str(row["channel"]), share=_fmt(row["bookings_share"], "share"),
             amount=_fmt(row["won_amount"], "amount"), n=_fmt(int(row["n_leads"]), "count"),
             rate=_fmt(row["opportunity_to_won_rate"], "rate"))
    slow = rated[rated["days_to_close"] == rated["days_to_close"].max()]
    median_days = float(rated["days_to_close"].median())
    if len(slow) == 1 and pd.notna(median_days) and slow["days_to_close"].iloc[0] >= 1.5 * median_days > 0:
        text += " " + _("{name}'s opportunities take longest to close ({days}; median source {median}).",
                        name=str(slow["channel"].iloc[0]), days=_fmt(slow["days_to_close"].iloc[0], "days"),
                        median=_fmt(median_days, "days"))
    return finding(text, "info")


# ----------------------------------------------------------------------------------------- engagement

#: Event types counted as engagement (every type but an impression: being shown is exposure, not engagement).
ENGAGEMENT_TYPES = ("open", "click", "register", "attend", "download", "visit")
_EVENT_COLUMNS = {"impression": "n_impressions", "open": "n_opens", "click": "n_clicks",
                  "register": "n_registrations", "attend": "n_attended", "download": "n_downloads",
                  "visit": "n_visits"}


def _event_counts(events: pd.DataFrame, keys: pd.Series) -> pd.DataFrame:
    types = events["event_type"].astype("string").to_numpy()
    frame = pd.DataFrame({"key": keys.to_numpy(), "type": types})
    out = frame.groupby(["key", "type"], sort=True).size().unstack("type", fill_value=0)
    out = out.reindex(columns=list(_EVENT_COLUMNS), fill_value=0).rename(columns=_EVENT_COLUMNS)
    return out.astype("int64")


def campaign_engagement(events: pd.DataFrame, campaigns: pd.DataFrame, *, by: str = "channel",
                        ctx: KpiContext | None = None) -> pd.DataFrame:
    """Engagement per channel or campaign (`ROI_BY`) from the campaign events of the period (all of them when
    `ctx` is None): impressions, email opens, clicks, registrations, attendances, downloads and web visits;
    leads who engaged; the click rate (clicks per email opened or ad shown) and the attendance rate
    (attendances per registration). Most engagement first."""
    check_choice("by", by, ROI_BY)
    if ctx is not None:
        events = events[in_period(events["occurred_at"], ctx)]
    ids = events["campaign_id"].astype("string")
    camp = campaigns.drop_duplicates("campaign_id").set_index(campaigns.drop_duplicates("campaign_id")[
        "campaign_id"].astype("string"))
    keys = ids if by == "campaign" else lookup(ids, camp["channel"].astype("string")).fillna(UNKNOWN)
    out = _event_counts(events, keys)
    out["n_engagements"] = out[[_EVENT_COLUMNS[t] for t in ENGAGEMENT_TYPES]].sum(axis=1)
    leads = events["lead_id"].notna().to_numpy()
    engaged = pd.Series(events["lead_id"].to_numpy()[leads]).groupby(keys.to_numpy()[leads]).nunique()
    out["n_engaged_leads"] = engaged.reindex(out.index).fillna(0).astype("int64")
    views = out["n_opens"] + out["n_impressions"]
    out["click_rate"] = out["n_clicks"] / views.where(views > 0)
    out["attendance_rate"] = out["n_attended"] / out["n_registrations"].where(out["n_registrations"] > 0)
    key = "campaign_id" if by == "campaign" else "channel"
    out = out.rename_axis(key).reset_index()
    if by == "campaign" and "name" in camp:
        out.insert(1, "name", lookup(out[key].astype("string"), camp["name"].astype("string")).to_numpy())
    return out.sort_values(["n_engagements", key], ascending=[False, True], kind="stable").reset_index(drop=True)


def engagement_trend(events: pd.DataFrame, *, freq: str = "month", campaigns: pd.DataFrame | None = None
                     ) -> pd.DataFrame:
    """Events per period (`freq`) and event type, oldest first (columns period, event_type, n_events); with
    `campaigns`, engagement events (every type but an impression) per period and channel instead (columns
    period, channel, n_engagements)."""
    periods = bucket(events["occurred_at"], freq).to_numpy()
    if campaigns is not None:
        camp = campaigns.drop_duplicates("campaign_id")
        channel = lookup(events["campaign_id"].astype("string"), camp.set_index(camp["campaign_id"].astype(
            "string"))["channel"].astype("string")).fillna(UNKNOWN)
        engaged = events["event_type"].astype("string").isin(ENGAGEMENT_TYPES).to_numpy(dtype=bool)
        out = pd.DataFrame({"period": periods[engaged], "channel": channel.to_numpy()[engaged]})
        return out.groupby(["period", "channel"], sort=True).size().rename("n_engagements").reset_index()
    out = pd.DataFrame({"period": periods, "event_type": events["event_type"].astype("string").to_numpy()})
    return out.groupby(["period", "event_type"], sort=True).size().rename("n_events").reset_index()


@on_slice("campaigns", "campaign_events")
def engagement_of(s: Any, by: str = "channel") -> pd.DataFrame:
    """`campaign_engagement` of the slice's period (in a region: its own campaigns)."""
    md = marketing_data(s)
    return campaign_engagement(md.own_events, md.campaigns, by=by, ctx=md.ctx)


@on_slice("campaigns", "campaign_events")
def engagement_trend_of(s: Any, by: str = "event_type", *, freq: str = "month") -> pd.DataFrame:
    """`engagement_trend` of the slice's history (`HISTORY_DAYS`; in a region: its own campaigns), per event type
    or per channel (`by`)."""
    check_choice("by", by, ("event_type", "channel"))
    md = marketing_data(s)
    return engagement_trend(md.own_events, freq=freq, campaigns=md.campaigns if by == "channel" else None)


def describe_engagement(result: pd.DataFrame | None, *, min_views: int = 200) -> Finding | None:
    """The channel with the best click rate and the one with the worst (channels with at least `min_views` opens
    or impressions), and the attendance rate when registrations exist."""
    if result is None or result.empty:
        return None
    key = result.columns[0]
    rated = result[(result["n_opens"] + result["n_impressions"] >= min_views) & result["click_rate"].notna()]
    if len(rated) < 2 or rated["click_rate"].nunique() == 1:
        return None
    best = rated[rated["click_rate"] == rated["click_rate"].max()]
    worst = rated[rated["click_rate"] == rated["click_rate"].min()]
    text = _("{best} draws the most clicks per view ({best_rate}), {worst} the fewest ({worst_rate}).",
             best=", ".join(best[key].astype(str)), best_rate=_fmt(best["click_rate"].iloc[0], "rate"),
             worst=", ".join(worst[key].astype(str)), worst_rate=_fmt(worst["click_rate"].iloc[0], "rate"))
    registered = int(result["n_registrations"].sum())
    if registered:
        text += " " + _("{rate} of the {n} registrations for events and webinars turned into attendance.",
                        rate=_fmt(result["n_attended"].sum() / registered, "rate"), n=_fmt(registered, "count"))
    return finding(text, "info")


# ------------------------------------------------------------------------------------ campaign funnel

FUNNEL_STEPS = ("exposed", "engaged", "lead", "opportunity", "won")


def campaign_funnel(campaigns: pd.DataFrame, leads: pd.DataFrame, *, events: pd.DataFrame | None = None,
                    opportunities: pd.DataFrame | None = None, ad_metrics: pd.DataFrame | None = None,
                    ctx: KpiContext, ended_between: tuple[pd.Timestamp, pd.Timestamp] | None = None
                    ) -> pd.DataFrame:
    """Per campaign active in `ctx`'s period: exposure → engagement → lead → opportunity → won, and the rate of
    each step from the previous one (its drop-off is one minus it). Exposure and engagement come from the
    campaign's events (impressions; every other event type) or, for a campaign without events, from the ad
    platform's figures (``campaign_metrics``: impressions; clicks), never a mix of both; leads are the
    campaign's leads (``leads.campaign_id``); opportunities and won deals as they stand at the reference time.
    A step the source does not record for a campaign is missing, not zero. With `ended_between`, the campaigns
    that ended in that window. Most engagement first."""
    at = reference_time(ctx)
    active = campaigns_in(campaigns, ctx, ended_between).drop_duplicates("campaign_id")
    out = pd.DataFrame(index=pd.Index(active["campaign_id"].astype("string"), name="campaign_id"))
    out["name"] = active["name"].astype("string").to_numpy() if "name" in active else pd.NA
    out["channel"] = active["channel"].astype("string").to_numpy()
    exposed = pd.Series(np.nan, index=out.index)
    engaged = pd.Series(np.nan, index=out.index)
    has_events = pd.Series(False, index=out.index)
    if events is not None and len(events):
        counts = _event_counts(events, events["campaign_id"].astype("string")).reindex(out.index)
        has_events = counts.notna().all(axis=1)
        engaged = counts[[_EVENT_COLUMNS[t] for t in ENGAGEMENT_TYPES]].sum(axis=1).where(has_events)
        exposed = counts["n_impressions"].where(counts["n_impressions"] > 0)
    if ad_metrics is not None and len(ad_metrics):  # the platform's figures for campaigns without events
        figures = ad_metrics.groupby(ad_metrics["campaign_id"].astype("string"))[["n_impressions", "n_clicks"]].sum()
        figures = figures.reindex(out.index).astype("float64")
        exposed = exposed.where(has_events, figures["n_impressions"])
        engaged = engaged.where(has_events, figures["n_clicks"])
    out["n_exposed"] = exposed.astype("float64")
    out["n_engagements"] = engaged.astype("float64")
    steps = _lead_steps(leads, opportunities, at)
    camp_of = leads["campaign_id"].astype("string").to_numpy()
    by_camp = steps.assign(campaign_id=camp_of).groupby("campaign_id")
    out["n_leads"] = by_camp.size().reindex(out.index).fillna(0).astype("int64")
    out["n_opportunities"] = by_camp["opportunity"].sum().reindex(out.index).fillna(0).astype("int64")
    out["n_won"] = by_camp["won"].sum().reindex(out.index).fillna(0).astype("int64")
    out["engagement_rate"] = out["n_engagements"] / out["n_exposed"].where(out["n_exposed"] > 0)
    out["lead_rate"] = out["n_leads"] / out["n_engagements"].where(out["n_engagements"] > 0)
    out["opportunity_rate"] = out["n_opportunities"] / out["n_leads"].where(out["n_leads"] > 0)
    out["won_rate"] = out["n_won"] / out["n_opportunities"].where(out["n_opportunities"] > 0)
    out = out.reset_index()
    return out.sort_values(["n_engagements", "campaign_id"], ascending=[False, True], na_position="last",
                           kind="stable").reset_index(drop=True)


@on_slice("campaigns", "leads")
def campaign_funnel_of(s: Any) -> pd.DataFrame:
    """`campaign_funnel` of the mature campaigns (ended in the `CURVE_WINDOW_DAYS` up to `MATURITY_DAYS` before
    the as-of): younger campaigns' leads have not had time to become deals."""
    md = marketing_data(s)
    return campaign_funnel(md.campaigns, md.leads, events=md.events, opportunities=md.opportunities,
                           ad_metrics=md.ad_metrics, ctx=md.ctx, ended_between=md.mature(CURVE_WINDOW_DAYS))


def funnel_steps(result: pd.DataFrame, campaign_ids: list[str]) -> pd.DataFrame:
    """The steps of `campaign_funnel` rows `campaign_ids` in long format (campaign_id, name, step, count), for the
    funnel chart; steps the source does not record are left out."""
    rows = []
    counts = {"exposed": "n_exposed", "engaged": "n_engagements", "lead": "n_leads", "opportunity": "n_opportunities",
              "won": "n_won"}
    for cid in campaign_ids:
        row = result[result["campaign_id"] == cid].iloc[0]
        rows += [{"campaign_id": cid, "name": row["name"], "step": step, "count": float(row[col])}
                 for step, col in counts.items() if pd.notna(row[col])]
    return pd.DataFrame(rows, columns=["campaign_id", "name", "step", "count"])


def funnel_highlights(result: pd.DataFrame | None, n: int = 4) -> pd.DataFrame | None:
    """`funnel_steps` of the campaigns worth a look side by side: the flagged ones (`hollow_campaigns`), then the
    campaigns that turned the most of their leads into opportunities (at least ten leads), `n` in all."""
    if result is None or result.empty:
        return None
    flagged = list(hollow_campaigns(result)["campaign_id"])
    rated = result[(result["n_leads"] >= 10) & ~result["campaign_id"].isin(flagged)]
    best = rated.sort_values(["opportunity_rate", "campaign_id"], ascending=[False, True], kind="stable")
    ids = (flagged + list(best["campaign_id"]))[:n]
    return funnel_steps(result, ids) if ids else None


def hollow_campaigns(result: pd.DataFrame, *, min_leads: int = 10, top_share: float = 0.1) -> pd.DataFrame:
    """The campaigns among the `top_share` most engaging (engagement at or above that quantile) that brought at
    least `min_leads` leads of which none became an opportunity, while the median such campaign turns some of
    its leads into opportunities. Most engagement first."""
    if result is None or result.empty or result["n_engagements"].notna().sum() < 5:
        return result.iloc[0:0] if result is not None else pd.DataFrame()
    enough = result[result["n_leads"] >= min_leads]
    if len(enough) < 3 or not enough["opportunity_rate"].median() > 0:
        return result.iloc[0:0]
    high = result["n_engagements"] >= result["n_engagements"].quantile(1 - top_share)
    flagged = result[high & (result["n_leads"] >= min_leads) & (result["n_opportunities"] == 0)]
    return flagged.sort_values("n_engagements", ascending=False, kind="stable")


def describe_campaign_funnel(result: pd.DataFrame | None, *, min_leads: int = 10) -> Finding | None:
    """The most engaging campaign whose leads did not convert (`hollow_campaigns`), with its numbers against the
    median campaign; else the campaign that turned the most engagement into opportunities — nothing from too few
    campaigns."""
    if result is None or result.empty:
        return None
    hollow = hollow_campaigns(result, min_leads=min_leads)
    median_engaged = float(result["n_engagements"].median())
    enough = result[result["n_leads"] >= min_leads]
    if not hollow.empty and median_engaged > 0:
        row = hollow.iloc[0]
        text = _("{name} drew {x} times the engagement of the median campaign ({n} interactions) but none of its "
                 "{leads} leads became an opportunity (median campaign: {rate} of its leads).",
                 name=str(row["name"] if pd.notna(row["name"]) else row["campaign_id"]),
                 x=_fmt(row["n_engagements"] / median_engaged, "number", digits=1),
                 n=_fmt(row["n_engagements"], "count"),
                 leads=_fmt(int(row["n_leads"]), "count"), rate=_fmt(enough["opportunity_rate"].median(), "rate"))
        return finding(text, "act", recommendation=_(
            "Before repeating it, check who it reached and how its leads were followed up: attention that does not "
            "convert is cost, not pipeline."))
    rated = enough[enough["opportunity_rate"].notna()]
    if len(rated) < 3 or rated["opportunity_rate"].nunique() == 1:
        return None
    best = rated[rated["opportunity_rate"] == rated["opportunity_rate"].max()]
    if len(best) > 1:
        return None
    row = best.iloc[0]
    return finding(_("{name} turned the largest share of its leads into opportunities ({rate} of {n}; median "
                     "campaign {median}).", name=str(row["name"] if pd.notna(row["name"]) else row["campaign_id"]),
                     rate=_fmt(row["opportunity_rate"], "rate"), n=_fmt(int(row["n_leads"]), "count"),
                     median=_fmt(rated["opportunity_rate"].median(), "rate")), "good")


# -------------------------------------------------------------------------------- attribution of a slice

#: The data-driven models (`crmlens.metrics.datadriven`): they learn from the journeys that did not convert too.
DATA_DRIVEN = ("markov", "shapley")
ALL_MODELS = (*MODELS, *DATA_DRIVEN)
#: Touches counted before a conversion (days).
WINDOW_DAYS = 180


def credit(touches: pd.DataFrame, conversions: pd.DataFrame, model: str, *, by: str = "channel") -> pd.DataFrame:
    """Credit per `by` under any model of `ALL_MODELS` (the rule-based ones: `attribute`; Markov and Shapley:
    `crmlens.metrics.datadriven`). Same columns whatever the model."""
    check_choice("model", model, ALL_MODELS)
    if model in MODELS:
        return attribute(touches, conversions, model, by=by)
    fn = datadriven.markov_attribution if model == "markov" else datadriven.shapley_attribution
    return fn(touches, conversions, by=by)


@on_slice("campaigns", "campaign_events", "leads", "opportunities")
def attribution_of(s: Any, by: str = "channel", *, window_days: int = WINDOW_DAYS,
                   models: tuple[str, ...] = ALL_MODELS) -> pd.DataFrame:
    """`compare_models` over the journeys (`journeys`) to the deals won in the `CURVE_WINDOW_DAYS` up to the
    as-of (touches up to `window_days` before each), and the journeys of the leads that engaged and did not
    convert though created at least `MATURITY_DAYS` before the as-of (for the data-driven models)."""
    md = marketing_data(s)
    key = ("journeys", window_days)
    if key not in s.derived:  # shared by the views by channel and by campaign
        s.derived[key] = journeys(md.events, md.campaigns, md.leads, md.opportunities, window_days=window_days,
                                  until=md.at)
    touches, conversions = s.derived[key]
    conversions = conversions[conversions["converted_at"] >= md.at - pd.Timedelta(days=CURVE_WINDOW_DAYS)]
    mature_end = md.mature(0)[1]
    lost = touches["journey_id"].str.startswith("lead:")
    last = touches.groupby("journey_id")["occurred_at"].transform("max")
    touches = touches[isin(touches["journey_id"], conversions["journey_id"]) | (lost & (last < mature_end))]
    if touches[by].nunique() > datadriven.MAX_SHAPLEY_CHANNELS:  # exact Shapley: too many coalitions
        models = tuple(m for m in models if m != "shapley")
    out = compare_models(touches, conversions, by=by, models=models)
    if by == "campaign_id" and md.campaigns is not None and "name" in md.campaigns:
        camp = md.campaigns.drop_duplicates("campaign_id")
        names = camp.set_index(camp["campaign_id"].astype("string"))["name"].astype("string")
        out.insert(1, "name", lookup(out["campaign_id"].astype("string"), names).to_numpy())
    reached = isin(touches["journey_id"], conversions["journey_id"])
    out.attrs.update(n_journeys=int(touches.loc[reached, "journey_id"].nunique()), n_conversions=len(conversions),
                     n_lost=int(touches.loc[~reached, "journey_id"].nunique()), window_days=window_days)
    return out


# -------------------------------------------------------------------------------- where the next euro goes

#: Fewest campaigns with a cost a channel needs for its response curve.
MIN_CAMPAIGNS = 6
#: Confidence of the stated intervals.
CONFIDENCE = 0.9
#: Prior of the shared elasticity (mean, sd): returns a little below proportional to spend, as ad-response studies
#: usually find; campaigns that vary enough in spend move it, a handful of similar campaigns do not.
ELASTICITY_PRIOR = (0.8, 0.25)


def marginal_roi(per_campaign: pd.DataFrame, *, min_campaigns: int = MIN_CAMPAIGNS, confidence: float = CONFIDENCE,
                 n_boot: int = 400, seed: int = 0) -> pd.DataFrame:
    """Per channel, the return of the next unit of money (a `campaign_roi` frame by campaign with a ``channel``
    column: each campaign's cost and won amount).

    A response curve is fitted over the campaigns: revenue = e^a(channel) × cost^b — a level per channel and one
    **elasticity** b shared by all (how revenue grows with spend; b < 1 means diminishing returns), by
    quasi-Poisson likelihood (the level of each channel has a closed form given b) and the `ELASTICITY_PRIOR` on b
    (the most probable b: campaigns of similar size say little about the shape of the curve). At the
    channel's spend the next unit then returns b × its won amount ÷ its cost: the **marginal ROI** is that minus
    one (the average ROI is the won amount ÷ cost minus one). Its `confidence` interval is a percentile bootstrap
    over campaigns (resampled within each channel, `n_boot` draws from `seed`). Channels with fewer than
    `min_campaigns` campaigns with a cost get only their average ROI. Best marginal ROI first."""
    from scipy.optimize import minimize_scalar

    paid = per_campaign[(per_campaign["cost_amount"] > 0) & per_campaign["channel"].notna()]
    counts = paid.groupby("channel").size()
    fitted = sorted(counts.index[counts >= min_campaigns])
    rows = []
    for channel, group in paid.groupby("channel", sort=True):
        cost, won = float(group["cost_amount"].sum()), float(group["won_amount"].sum())
        rows.append({"channel": channel, "n_campaigns": len(group), "cost_amount": cost, "won_amount": won,
                     "roi": (won - cost) / cost, "elasticity": np.nan, "marginal_roi": np.nan,
                     "marginal_roi_low": np.nan, "marginal_roi_high": np.nan})
    out = pd.DataFrame(rows, columns=["channel", "n_campaigns", "cost_amount", "won_amount", "roi", "elasticity",
                                      "marginal_roi", "marginal_roi_low", "marginal_roi_high"])
    use = paid[paid["channel"].isin(fitted)]
    if len(fitted) < 2 or use["won_amount"].sum() <= 0:
        return out.sort_values(["roi", "channel"], ascending=[False, True], kind="stable").reset_index(drop=True)
    code = pd.Categorical(use["channel"], categories=fitted).codes
    log_cost = np.log(use["cost_amount"].to_numpy(float))
    centred = log_cost - log_cost.mean()
    won = use["won_amount"].to_numpy(float)

    prior_mean, prior_sd = ELASTICITY_PRIOR

    def elasticity(rows_: np.ndarray, dispersion: float | None) -> float:
        c, x, r = code[rows_], centred[rows_], won[rows_]
        total = np.bincount(c, weights=r, minlength=len(fitted))
        seen = total > 0

        def loss(b: float) -> float:  # minus the profile log-likelihood (constants dropped), minus the log prior
            spend = np.bincount(c, weights=np.exp(b * x), minlength=len(fitted))
            nll = -(b * float(r @ x) - float(total[seen] @ np.log(spend[seen])))
            return nll if dispersion is None else nll / dispersion + (b - prior_mean) ** 2 / (2 * prior_sd ** 2)

        return float(minimize_scalar(loss, bounds=(0.0, 2.0), method="bounded").x)

    def pearson(b: float) -> float:  # the quasi-Poisson dispersion at b
        spend = np.bincount(code, weights=np.exp(b * centred), minlength=len(fitted))
        total = np.bincount(code, weights=won, minlength=len(fitted))
        mu = total[code] * np.exp(b * centred) / spend[code]
        ok = mu > 0
        return max(float(((won[ok] - mu[ok]) ** 2 / mu[ok]).sum()) / max(len(won) - len(fitted) - 1, 1), 1e-9)

    def marginal(rows_: np.ndarray, b: float) -> np.ndarray:
        c = code[rows_]
        return b * np.bincount(c, weights=won[rows_], minlength=len(fitted)) / np.bincount(
            c, weights=np.exp(log_cost[rows_]), minlength=len(fitted)) - 1.0

    everything = np.arange(len(use))
    dispersion = pearson(elasticity(everything, None))
    b = elasticity(everything, dispersion)
    point = marginal(everything, b)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(code == k) for k in range(len(fitted))]
    draws = np.empty((n_boot, len(fitted)))
    for i in range(n_boot):  # a few hundred draws of a scalar fit: well under a second
        sample = np.concatenate([rng.choice(g, len(g)) for g in groups])
        draws[i] = marginal(sample, elasticity(sample, dispersion))
    lo, hi = np.nanpercentile(draws, [50 * (1 - confidence), 50 * (1 + confidence)], axis=0)
    at = out.set_index("channel")
    at.loc[fitted, "elasticity"] = b
    at.loc[fitted, "marginal_roi"] = point
    at.loc[fitted, "marginal_roi_low"] = lo
    at.loc[fitted, "marginal_roi_high"] = hi
    out = at.reset_index()
    out.attrs.update(confidence=confidence, elasticity=b)
    return out.sort_values(["marginal_roi", "roi", "channel"], ascending=[False, False, True], na_position="last",
                           kind="stable").reset_index(drop=True)


@on_slice("campaigns", "leads")
def marginal_roi_of(s: Any) -> pd.DataFrame:
    """`marginal_roi` over the mature campaigns of `CURVE_WINDOW_DAYS` (ended up to `MATURITY_DAYS` before the
    as-of)."""
    md = marketing_data(s)
    per_campaign = campaign_roi(md.campaigns, md.leads, ctx=md.ctx, by="campaign", opportunities=md.opportunities,
                                ended_between=md.mature(CURVE_WINDOW_DAYS))
    channels = md.campaigns.drop_duplicates("campaign_id").set_index(
        md.campaigns.drop_duplicates("campaign_id")["campaign_id"].astype("string"))["channel"].astype("string")
    per_campaign["channel"] = lookup(per_campaign["campaign_id"].astype("string"), channels).to_numpy()
    return marginal_roi(per_campaign)


def describe_marginal_roi(result: pd.DataFrame | None) -> Finding | None:
    """A budget move from the channel with the lowest marginal ROI to the one with the highest, when their
    intervals do not overlap (else: which channels the data cannot tell apart); channels whose whole interval is
    below zero are named as losing money on the next unit."""
    if result is None or result.empty or result["marginal_roi"].notna().sum() < 2:
        return None
    fitted = result[result["marginal_roi"].notna()]
    best = fitted.iloc[0]
    worst = fitted.iloc[-1]
    level = _fmt(result.attrs.get("confidence", CONFIDENCE), "share", digits=0)

    def span(row: pd.Series) -> str:
        return _("{v} ({level} interval {lo} to {hi})", v=_fmt(row["marginal_roi"], "rate"), level=level,
                 lo=_fmt(row["marginal_roi_low"], "rate"), hi=_fmt(row["marginal_roi_high"], "rate"))

    if best["marginal_roi_low"] > worst["marginal_roi_high"]:
        text = _("The next unit of budget returns most in {best}: marginal ROI {best_span}, against {worst_span} in "
                 "{worst}.", best=str(best["channel"]), best_span=span(best), worst=str(worst["channel"]),
                 worst_span=span(worst))
        losing = fitted[fitted["marginal_roi_high"] < 0]
        if len(losing):
            text += " " + _("In {names} even the next unit loses money.",
                            names=", ".join(losing["channel"].astype(str)))
        return finding(text, "act", recommendation=_(
            "Move budget from {worst} to {best} in steps (e.g. a tenth a quarter) and re-fit after each: the curves "
            "hold near today's spend, not far from it.", worst=str(worst["channel"]), best=str(best["channel"])))
    return finding(_("The marginal returns of the channels overlap (highest {best}: {best_span}; lowest {worst}: "
                     "{worst_span}): the data does not support moving budget between them yet.",
                     best=str(best["channel"]), best_span=span(best), worst=str(worst["channel"]),
                     worst_span=span(worst)), "info")


# ------------------------------------------------------------------------------------------- headline KPIs

def _period_campaigns(frames: Frames, ctx: KpiContext) -> pd.DataFrame | None:
    """The campaigns started in the period (an undated campaign counts in every period): the region's own (global
    campaigns count for the whole company)."""
    campaigns = frames.get("campaigns")
    if campaigns is None:
        return None
    if ctx.region != "all":
        campaigns = campaigns[campaigns["region_id"].astype("string").eq(ctx.region).fillna(False).astype(bool)]
    return campaigns[(campaigns["started_at"].isna() | in_period(campaigns["started_at"], ctx)).to_numpy(dtype=bool)]


def _campaign_leads(frames: Frames, ctx: KpiContext) -> pd.DataFrame | None:
    leads, campaigns = frames.get("leads"), _period_campaigns(frames, ctx)
    if leads is None or campaigns is None:
        return None
    created = leads[in_period(leads["created_at"], ctx)]
    return created[isin(created["campaign_id"], campaigns["campaign_id"]).to_numpy(dtype=bool)]


@register_kpi("marketing_cost", label="Marketing cost", unit="amount", direction="neutral", tables=("campaigns",),
              area=AREA, description="Cost (`campaigns.cost_amount`) of the campaigns started in the period (an "
              "undated campaign counts in every period): the region's own campaigns (global campaigns, without a "
              "region, count for the whole company).")
def kpi_marketing_cost(frames: Frames, ctx: KpiContext) -> float | None:
    campaigns = _period_campaigns(frames, ctx)
    if campaigns is None or campaigns.empty:
        return None
    return float(campaigns["cost_amount"].sum(min_count=1)) if campaigns["cost_amount"].notna().any() else None


@register_kpi("campaign_leads", label="Campaign leads", unit="count", direction="higher",
              tables=("campaigns", "leads"), area=AREA,
              description="Leads created in the period by the campaigns started in it (`leads.campaign_id`).")
def kpi_campaign_leads(frames: Frames, ctx: KpiContext) -> float | None:
    leads = _campaign_leads(frames, ctx)
    return None if leads is None else float(len(leads))


@register_kpi("cost_per_lead", label="Cost per lead", unit="amount", direction="lower",
              tables=("campaigns", "leads"), area=AREA,
              description="Marketing cost ÷ campaign leads: what a lead of the period's campaigns cost.")
def kpi_cost_per_lead(frames: Frames, ctx: KpiContext) -> float | None:
    cost, leads = kpi_marketing_cost(frames, ctx), kpi_campaign_leads(frames, ctx)
    return ratio(cost, leads) if cost is not None and leads else None


@register_kpi("cost_per_mql", label="Cost per MQL", unit="amount", direction="lower",
              tables=("campaigns", "leads"), area=AREA,
              description="Marketing cost ÷ the campaign leads that became MQLs by the period's end.")
def kpi_cost_per_mql(frames: Frames, ctx: KpiContext) -> float | None:
    cost, leads = kpi_marketing_cost(frames, ctx), _campaign_leads(frames, ctx)
    if cost is None or leads is None:
        return None
    mqls = int((leads["mql_at"] < ctx.period_end).sum())
    return ratio(cost, mqls) if mqls else None


@register_kpi("campaign_engagements", label="Campaign engagements", unit="count", direction="higher",
              tables=("campaign_events",), area=AREA,
              description="Engagement events (every type but an impression) with the region's campaigns in the "
              "period.")
def kpi_campaign_engagements(frames: Frames, ctx: KpiContext) -> float | None:
    events = frames.get("campaign_events")
    if events is None:
        return None
    events = events[in_period(events["occurred_at"], ctx)]
    return float(events["event_type"].astype("string").isin(ENGAGEMENT_TYPES).sum())


def headline_kpis(s: Any) -> list[str]:
    """The notebook's headline KPIs."""
    return ["marketing_cost", "campaign_leads", "cost_per_lead", "cost_per_mql", "campaign_engagements"]
