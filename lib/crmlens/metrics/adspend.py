"""Advertising (广告投放效果): what the ads cost and what they brought — impressions, clicks, spend and conversions
per campaign, channel and audience, and the efficiency ratios ad platforms report.

Pure functions over validated frames, as the other areas.

**Where the figures come from** (``attrs["source"]`` of the result, and `basis_note`):

- ``campaign_metrics`` — the aggregated figures an ad platform exports (impressions, clicks, spend, conversions
  per campaign, ad, day and audience). The slice holds the period's rows and the undated ones (a source without
  dates, e.g. the Facebook ``ad_campaigns`` export, has one row per ad for its whole run: it counts in every
  period).
- else ``campaign_events`` — impressions and clicks counted from the individual events (``event_type``
  impression / click) of the campaigns that have any, and the spend taken from ``campaigns.cost_amount``,
  pro-rated to the period by the days the campaign ran in it (the whole cost when its start or end is unknown).
  Events record no conversions: those columns are missing, never zero.

**Ratios** (a zero or missing denominator gives a missing value, never 0 or infinity):
click-through rate (CTR) = clicks ÷ impressions; cost per click (CPC) = spend ÷ clicks; cost per conversion =
spend ÷ conversions; cost per approved conversion = spend ÷ approved conversions; conversions per click =
conversions ÷ clicks (above 100 % when conversions are counted after a view as well as after a click).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crmlens.analysis import on_slice
from crmlens.errors import ParameterError
from crmlens.findings import Finding, finding
from crmlens.i18n import N_, _, n_
from crmlens.kpis import KpiContext
from crmlens.metrics.common import UNKNOWN, lookup, shown
from crmlens.metrics.common import fmt as _fmt
from crmlens.present import register_columns

AREA = "advertising"
#: The groupings every source with ad figures supports; a source's campaign_metrics may add its own columns
#: (its custom fields, e.g. age or gender) and ``ad_id``.
AD_BY = ("campaign", "channel", "audience")
#: Ratio columns in the order a result is ranked by: the first one with figures (lowest cost first).
RANK_BY = ("cost_per_approved_conversion", "cost_per_conversion", "cost_per_click")
#: Where the figures came from (``attrs["source"]``).
SOURCES = ("campaign_metrics", "campaign_events")

_SUMS = ("n_impressions", "n_clicks", "ad_spend_amount", "n_conversions", "n_approved_conversions")

register_columns({
    "audience": (N_("Audience"), "text"),
    "ad_id": (N_("Ad"), "text"),
    "n_ads": (N_("Ads"), "count"),
    "n_impressions": (N_("Impressions"), "count"),
    "n_clicks": (N_("Clicks"), "count"),
    "ad_spend_amount": (N_("Ad spend"), "amount"),
    "n_conversions": (N_("Conversions"), "count"),
    "n_approved_conversions": (N_("Approved conversions"), "count"),
    "click_through_rate": (N_("Click-through rate (CTR)"), "rate"),
    "cost_per_click": (N_("Cost per click (CPC)"), "number"),
    "cost_per_conversion": (N_("Cost per conversion"), "number"),
    "cost_per_approved_conversion": (N_("Cost per approved conversion"), "number"),
    "click_conversion_rate": (N_("Conversions per click"), "rate"),
})
# (the costs per click and per conversion are a few currency units: "number" shows them with two decimals, where
# "amount" would round them to whole units)


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """num ÷ den, missing where den is 0 or missing (never inf, never a made-up 0)."""
    num, den = num.astype("float64"), den.astype("float64")
    return (num / den.where(den > 0)).astype("float64")


def _campaign_frame(campaigns: pd.DataFrame) -> pd.DataFrame:
    first = campaigns.drop_duplicates("campaign_id")
    return first.set_index(first["campaign_id"].astype("string"))


def _from_metrics(metrics: pd.DataFrame, camps: pd.DataFrame, by: str) -> pd.DataFrame:
    """One row per metrics row: the campaign, its channel, the ad, the day, the `by` column and the figures (spend
    as ``ad_spend_amount``) — a copy of just those columns."""
    figures = [c for c in _SUMS if c in metrics.columns]
    keep = list(dict.fromkeys(c for c in ("campaign_id", "ad_id", "report_date", by, *figures)
                              if c in metrics.columns))
    ids = metrics["campaign_id"].astype("string")
    rows = metrics[keep].copy()
    rows["campaign_id"] = ids.to_numpy()
    rows["channel"] = lookup(ids, camps["channel"].astype("string")).fillna(UNKNOWN).to_numpy()
    rows["ad_spend_amount"] = metrics["spend_amount"].astype("float64").to_numpy()
    return rows


def _from_events(events: pd.DataFrame, camps: pd.DataFrame, ctx: KpiContext | None) -> tuple[pd.DataFrame, str]:
    """One row per campaign with impression or click events: their counts, and the campaign's cost pro-rated to
    the period (`ctx`) by the days it ran in it; the whole cost when its start or end is unknown or without ctx.
    Returns the rows and how the spend was taken ("prorated", "whole" or "mixed")."""
    kinds = events["event_type"].astype("string")
    ads = events[kinds.isin(["impression", "click"]).fillna(False).to_numpy(dtype=bool)]
    ids = ads["campaign_id"].astype("string")
    counts = pd.DataFrame({"campaign_id": ids.to_numpy(),
                           "n_impressions": (ads["event_type"] == "impression").to_numpy(dtype=bool),
                           "n_clicks": (ads["event_type"] == "click").to_numpy(dtype=bool)})
    out = counts.groupby("campaign_id", sort=True)[["n_impressions", "n_clicks"]].sum().astype("int64")
    mine = camps.reindex(out.index)
    cost = mine["cost_amount"].astype("float64")
    fraction = pd.Series(1.0, index=out.index)
    if ctx is not None and len(out):
        start_c, end_c = mine["started_at"], mine["ended_at"]
        days = (end_c - start_c).dt.total_seconds()
        lo = start_c.where(start_c > pd.Timestamp(ctx.period_start), pd.Timestamp(ctx.period_start))
        hi = end_c.where(end_c < pd.Timestamp(ctx.period_end), pd.Timestamp(ctx.period_end))
        overlap = (hi - lo).dt.total_seconds().clip(lower=0)
        dated = (start_c.notna() & end_c.notna() & (days > 0)).to_numpy(dtype=bool)
        fraction = fraction.where(~dated, (overlap / days).astype("float64"))
        how = "prorated" if dated.all() else ("whole" if not dated.any() else "mixed")
    else:
        how = "whole"
    out["ad_spend_amount"] = (cost * fraction).to_numpy()
    out["n_conversions"] = np.nan
    out["n_approved_conversions"] = np.nan
    out = out.reset_index()
    out["channel"] = lookup(out["campaign_id"].astype("string"), camps["channel"].astype("string")).fillna(
        UNKNOWN).to_numpy()
    return out, how


@on_slice("campaigns")
def ad_performance(campaigns: pd.DataFrame, campaign_metrics: pd.DataFrame | None = None,
                   campaign_events: pd.DataFrame | None = None, by: str = "campaign", *,
                   ctx: KpiContext | None = None, s: Any = None) -> pd.DataFrame | None:
    """Per campaign, channel or audience (`AD_BY`; with ``campaign_metrics`` also ``ad_id`` or a column of the
    source's own, such as ``age``): impressions, clicks, ad spend, conversions and approved conversions, and
    CTR, CPC, cost per conversion, cost per approved conversion and conversions per click (see the module doc).
    Cheapest first by the first of `RANK_BY` with figures; groups without it last.

    From ``campaign_metrics`` when the source has it, else from ``campaign_events`` (impressions and clicks
    counted, spend from the campaigns' cost, no conversions); ``attrs``: ``by``, ``source`` (`SOURCES`),
    ``spend`` (``reported``, or how the campaigns' cost was taken: ``prorated``, ``whole``, ``mixed``),
    ``ranked_by``, ``n_rows`` and ``n_undated`` (figure rows, and those without a day). None — with the
    "not in this source" note when called with a slice — when the source has neither table, or the grouping
    (e.g. the audience) is not in it."""
    if by not in AD_BY and campaign_metrics is None and s is None:  # (with a slice: "not in this source" below)
        raise ParameterError(f"by: {by!r} is not allowed; use one of {', '.join(AD_BY)}")
    camps = _campaign_frame(campaigns)
    if campaign_metrics is not None:
        source = "campaign_metrics"
        if by not in AD_BY and by not in campaign_metrics.columns:
            usable = [*AD_BY, "ad_id", *[c for c in campaign_metrics.columns if c not in
                                        ("campaign_id", "ad_id", "report_date", "audience", *_SUMS, "spend_amount",
                                         "_source_row")]]
            raise ParameterError(f"by: {by!r} is not allowed; use one of {', '.join(usable)}")
        if by not in ("campaign", "channel") and not _recorded(campaign_metrics, by, s):
            _not_in_source(s, "by")
            return None
        rows = _from_metrics(campaign_metrics, camps, by)
        spend, n_rows = "reported", len(rows)
        n_undated = int(rows["report_date"].isna().sum()) if "report_date" in rows else n_rows
    elif campaign_events is not None:
        if by not in ("campaign", "channel"):
            _not_in_source(s, "by")
            return None
        source = "campaign_events"
        rows, spend = _from_events(campaign_events, camps, ctx)
        n_rows, n_undated = len(rows), 0
    else:
        _not_in_source(s, "tables")
        return None
    key = "campaign_id" if by == "campaign" else by
    keys = rows[key].astype("string").fillna(UNKNOWN) if len(rows) else pd.Series(dtype="string")
    g = rows.assign(_key=keys.to_numpy()).groupby("_key", sort=True)
    out = pd.DataFrame({c: g[c].sum(min_count=1) for c in _SUMS})
    if source == "campaign_metrics" and "ad_id" in rows and by != "ad_id" and rows["ad_id"].notna().any():
        out.insert(0, "n_ads", g["ad_id"].nunique())
    out = out.rename_axis(key).reset_index()
    if by == "campaign":
        out.insert(1, "channel", lookup(out["campaign_id"].astype("string"), camps["channel"].astype("string"))
                   .fillna(UNKNOWN).to_numpy())
        if "name" in camps and camps["name"].notna().any():
            out.insert(1, "name", lookup(out["campaign_id"].astype("string"), camps["name"].astype("string"))
                       .to_numpy())
    for c in ("n_impressions", "n_clicks", "n_conversions", "n_approved_conversions"):
        out[c] = out[c].round().astype("Int64")
    out["ad_spend_amount"] = out["ad_spend_amount"].astype("float64")
    out["click_through_rate"] = _ratio(out["n_clicks"], out["n_impressions"])
    out["cost_per_click"] = _ratio(out["ad_spend_amount"], out["n_clicks"])
    out["cost_per_conversion"] = _ratio(out["ad_spend_amount"], out["n_conversions"])
    out["cost_per_approved_conversion"] = _ratio(out["ad_spend_amount"], out["n_approved_conversions"])
    out["click_conversion_rate"] = _ratio(out["n_conversions"], out["n_clicks"])
    ranked_by = next((c for c in RANK_BY if out[c].notna().any()), RANK_BY[-1])
    out = out.sort_values([ranked_by, key], ascending=[True, True], na_position="last", kind="stable")
    out = out.reset_index(drop=True)
    out.attrs.update(by=by, source=source, spend=spend, ranked_by=ranked_by, n_rows=int(n_rows),
                     n_undated=int(n_undated))
    return out


def _recorded(metrics: pd.DataFrame, column: str, s: Any) -> bool:
    """Whether the figures are broken down by `column`: the source has it (`crmlens.data.has_column`, for a slice)
    and it holds at least one value (a source may export the column empty, as the demo's audience)."""
    if s is not None and hasattr(s, "store"):
        from crmlens.data import has_column

        if not has_column(s, "campaign_metrics", column):
            return False
    return column in metrics.columns and bool(metrics[column].notna().any())


def _not_in_source(s: Any, what: str) -> None:
    """The "not in this source" note, when called with a slice (nothing for bare frames)."""
    if s is None or not hasattr(s, "info"):
        return
    from crmlens import notebook

    if what == "tables":
        text = _("This section needs table `campaign_metrics` (or `campaign_events` with impressions and clicks); "
                 "the source `{source}` has neither.", source=s.info.source)
    else:
        text = _("This section needs ad figures broken down this way (`campaign_metrics` with the column); the "
                 "source `{source}` does not record them.", source=s.info.source)
    notebook.md(f"> **{_('Skipped — not in this source.')}** {text}")


def basis_note(result: pd.DataFrame | None) -> str:
    """One sentence saying where `ad_performance`'s figures come from (for the notebook's markdown)."""
    if result is None:
        return ""
    if result.attrs.get("source") == "campaign_events":
        how = {"prorated": _("the campaigns' cost pro-rated to the days they ran in the period"),
               "whole": _("the campaigns' whole cost (their dates are not known)"),
               "mixed": _("the campaigns' cost, pro-rated to the period where their dates are known")}
        return _("The source has no aggregated ad figures: impressions and clicks are counted from campaign events "
                 "and the spend is {how}; events record no conversions.", how=how[result.attrs.get("spend",
                                                                                                     "whole")])
    n, undated = int(result.attrs.get("n_rows", 0)), int(result.attrs.get("n_undated", 0))
    if n and undated == n:
        return n_("Figures as the ad platform reported them: the {n} row has no date, so it counts in every "
                  "period.", "Figures as the ad platform reported them: none of the {n} rows has a date, so they "
                  "count in every period.", n)
    if undated:
        return _("Figures as the ad platform reported them; {undated} of the {n} rows have no date and count in "
                 "every period.", undated=_fmt(undated, "count"), n=_fmt(n, "count"))
    return _("Figures as the ad platform reported them, for the days of the period.")


def describe_ad_performance(result: pd.DataFrame | None, *, min_count: int = 5) -> Finding | None:
    """The cheapest and the dearest group by cost per approved conversion (else per conversion, else per click:
    the result's ``ranked_by``) with their numbers, and — when the dearest costs at least 1.5 times the
    cheapest — a recommendation to move budget. Only groups with spend and at least `min_count` of the
    denominator (approved conversions, conversions or clicks) compare; nothing when fewer than two do, or when
    they all cost the same. Equal values are named together, never ranked."""
    if result is None or result.empty:
        return None
    metric = result.attrs.get("ranked_by", RANK_BY[0])
    counts = {"cost_per_approved_conversion": "n_approved_conversions", "cost_per_conversion": "n_conversions",
              "cost_per_click": "n_clicks"}
    if metric not in counts or metric not in result:
        return None
    key = result.columns[0]
    rated = result[result[metric].notna() & (result["ad_spend_amount"] > 0).fillna(False)
                   & (result[counts[metric]].astype("float64") >= min_count).fillna(False)]
    if len(rated) < 2 or rated[metric].nunique() < 2:
        return None
    low, high = float(rated[metric].min()), float(rated[metric].max())
    best, worst = rated[rated[metric] == low], rated[rated[metric] == high]
    label = "name" if key == "campaign_id" and "name" in result else key  # a campaign by its name, if it has one
    best_names = ", ".join(shown(n if pd.notna(n) else v) for v, n in zip(best[key], best[label], strict=True))
    worst_names = ", ".join(shown(n if pd.notna(n) else v) for v, n in zip(worst[key], worst[label], strict=True))
    what = {"cost_per_approved_conversion": _("an approved conversion"),
            "cost_per_conversion": _("a conversion"), "cost_per_click": _("a click")}[metric]
    text = n_("{best} brings {what} at the lowest cost ({low}, from {spend} spent); {worst} at the highest ({high}, "
              "from {worst_spend} spent), {times} times as much.",
              "{best} bring {what} at the lowest cost ({low} each, from {spend} spent); {worst} at the highest "
              "({high}, from {worst_spend} spent), {times} times as much.", len(best), best=best_names, what=what,
              low=_fmt(low, "number", 2), spend=_fmt(float(best["ad_spend_amount"].sum()), "amount"),
              worst=worst_names, high=_fmt(high, "number", 2),
              worst_spend=_fmt(float(worst["ad_spend_amount"].sum()), "amount"), times=_fmt(high / low, "ratio", 1))
    if high < 1.5 * low:
        return finding(text, "info", kpi=metric)
    return finding(text, "act" if high >= 2 * low else "watch", kpi=metric, recommendation=_(
        "Move ad budget from {worst} to {best} a step at a time, and check after each step that {best}'s cost per "
        "result holds as its spend grows.", worst=worst_names, best=best_names))
