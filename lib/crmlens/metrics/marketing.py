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

import numpy as np
import pandas as pd

from crmlens.analysis import on_slice
from crmlens.errors import ParameterError
from crmlens.findings import Finding, finding
from crmlens.i18n import N_, _
from crmlens.kpis import KpiContext
from crmlens.metrics.common import UNKNOWN, check_choice, lookup, reference_time
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
    "attributed_amount": (N_("Credited value"), "amount"),
    "attributed_share": (N_("Share of credit"), "share"),
    "first_touch": (N_("First touch"), "share"),
    "last_touch": (N_("Last touch"), "share"),
    "linear": (N_("Linear"), "share"),
    "u_shaped": (N_("U-shaped"), "share"),
    "w_shaped": (N_("W-shaped"), "share"),
    "time_decay": (N_("Time decay"), "share"),
    "vs_last_touch": (N_("Largest gap to last touch"), "share"),
})


@on_slice("campaigns", "leads")
def campaign_roi(campaigns: pd.DataFrame, leads: pd.DataFrame, *, ctx: KpiContext, by: str = "channel",
                 opportunities: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per campaign or per channel (`ROI_BY`), for the campaigns active in the period: cost, leads, MQLs, SQLs,
    opportunities, won deals and won amount (followed to the reference time), ROI, cost per lead and per MQL,
    and CPA. Best ROI first; campaigns without a cost have no ROI. Leads must be the campaigns' leads of any
    date (a slice's leads are the period's: pass ``s.history("leads", n)``)."""
    check_choice("by", by, ROI_BY)
    start, at = pd.Timestamp(ctx.period_start), reference_time(ctx)
    active = campaigns[(campaigns["started_at"] < at) & ~(campaigns["ended_at"] < start)]
    key = "campaign_id" if by == "campaign" else "channel"
    mine = leads[leads["campaign_id"].isin(active["campaign_id"]) & (leads["created_at"] < at)]
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
    if opportunities is not None and len(opportunities):
        opps = opportunities.drop_duplicates("opportunity_id").set_index(
            opportunities.drop_duplicates("opportunity_id")["opportunity_id"].astype("string"))
        won = opps["is_won"].fillna(False).astype(bool) & (opps["closed_at"] < at).fillna(False).astype(bool)
        ids = mine["opportunity_id"].astype("string")
        is_won = lookup(ids, won).fillna(False).astype(bool)
        won_amount = lookup(ids, opps["amount"].astype("float64")).where(is_won, 0.0).fillna(0.0)
        won_account = lookup(ids, opps["account_id"].astype("string")).where(is_won)
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
    counts = ["n_leads", "n_mqls", "n_sqls", "n_opportunities", "n_won", "n_customers"]
    out[counts] = out[counts].astype("int64")
    out = out.reset_index()
    out = out.sort_values(["roi", key], ascending=[False, True], na_position="last", kind="stable")
    out = out.drop(columns="n_customers").reset_index(drop=True)
    out.attrs["by"] = by
    return out


def describe_campaign_roi(result: pd.DataFrame | None) -> Finding | None:
    """The money-losing channels (or campaigns) with their ROI and what they cost, and the best one — no finding
    when every ROI is equal or there is nothing with a cost."""
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
    t = touches[touches["journey_id"].isin(conv.index)].copy()
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
    out.attrs.update(model=model, unattributed=float(conv.loc[~conv.index.isin(t["journey_id"]), "value"].sum()))
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
    """The journeys to a won deal, for `attribute`: one per won opportunity (closed before `until`, when given)
    whose leads (``leads.opportunity_id``) or account (``campaign_events.account_id``) engaged with campaigns in
    the `window_days` before it closed. Touches: journey_id (the opportunity), campaign_id, channel (the
    campaign's), occurred_at, is_lead_creation (the latest touch of the lead's own campaign at or before the
    lead's creation). Conversions: journey_id, value (the amount), converted_at (closed_at)."""
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
    touches = touches[touches["journey_id"].isin(conversions["journey_id"])]
    touches = touches.drop_duplicates(["journey_id", "campaign_id", "occurred_at"])
    closed = touches["journey_id"].map(conversions.set_index("journey_id")["converted_at"])
    touches = touches[(touches["occurred_at"] < closed) & (touches["occurred_at"] >= closed - pd.Timedelta(
        days=window_days))]
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
    shares = {m: attribute(touches, conversions, m, by=by).set_index(by)["attributed_share"] for m in models}
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
