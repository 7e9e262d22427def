"""Market and competition (市场与竞争): market size and growth against ours, market share, competitive deals and
competitive intelligence.

Pure functions over validated frames, as the other areas; the slice-level entry points (``*_of``) know their
tables.

**Market size** comes from the ``market`` table: one row per period × region × product line × competitor, the
segment's ``market_size_amount`` repeated on each competitor's row — segments are de-duplicated by (period,
region_id, product_line) before summing (`segments`). **Our sales** are our bookings: the amount of the won
opportunities, dated by ``closed_at``, in the same regions (and product lines, through ``products``). **Market
share** = sales ÷ market size, ours and each competitor's (``competitor_sales_amount``). A figure for a span that
covers a market period in part counts that period's figures by the share of it the span covers.

**Growth vs the market** (`growth_vs_market`) compares the last four complete quarters of market data (up to the
reference time) with the four before: the market's growth and ours, and the gap — "the market grew 12 %, we grew
4 %: we are losing share". The definitions of `crmlens.truths.MarketOutgrowsUs`.

**Competitive deals** are the closed opportunities with a ``competitor`` recorded (`head_to_head`): our win rate
against each competitor (`crmlens.metrics.funnel.win_rate_by`), by region, product line, deal size band and rep;
the deals lost to each and their amount; loss reasons; the trend. A **stronghold** (`strongholds`) is a region
where we win far less against a competitor than against the same competitor elsewhere — the definitions of
`crmlens.truths.CompetitorStronghold`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from crmlens.analysis import on_slice
from crmlens.errors import ParameterError
from crmlens.findings import Finding, finding
from crmlens.i18n import N_, _
from crmlens.kpis import KpiContext, register_kpi
from crmlens.metrics import funnel
from crmlens.metrics.common import fmt as _fmt
from crmlens.metrics.common import in_period, ratio, ratio_series, reference_time, won_mask
from crmlens.periods import parse_period
from crmlens.present import register_columns

AREA = "market"
Frames = Mapping[str, pd.DataFrame]
#: Our own row among the competitors in the share tables (translated where shown).
OURS = N_("Us (our bookings)")
#: The key of the total row of `growth_vs_market` (translated).
TOTAL = N_("Total")
#: Splits of the market and of the competitive deals.
MARKET_BY = ("region_id", "product_line")
#: The columns a reader's table of `market_shares` / `share_change` shows (``nb.table(frame, columns=...)``).
SHARE_TABLE = ("region_id", "product_line", "period", "player", "sales_amount", "market_size_amount",
               "market_share_rate", "share_before_rate", "share_change")
HEAD_TO_HEAD_BY = ("region_id", "product_line", "deal_size_band", "owner_rep_id")
INTEL_KIND_LABELS = {"launch": N_("Product launch"), "price": N_("Price change"), "campaign": N_("Campaign"),
                     "press": N_("Press")}
INTEL_KIND_COUNTS = {"launch": N_("{n} launches"), "price": N_("{n} price changes"), "campaign": N_("{n} campaigns"),
                     "press": N_("{n} press items")}
#: Closed deals needed before a win rate is compared.
MIN_CLOSED = 10
_YEAR = pd.DateOffset(years=1)

register_columns({
    "market_size_amount": (N_("Market size"), "amount"),
    "market_share_rate": (N_("Market share"), "rate"),
    "player": (N_("Who"), "text"),
    "sales_amount": (N_("Sales"), "amount"),
    "market_growth_rate": (N_("Market growth"), "rate"),
    "our_growth_rate": (N_("Our growth"), "rate"),
    "growth_gap": (N_("Market growth − ours (points)"), "rate"),
    "market_before_amount": (N_("Market size, year before"), "amount"),
    "bookings_before_amount": (N_("Bookings, year before"), "amount"),
    "share_before_rate": (N_("Market share, before"), "rate"),
    "share_change": (N_("Change of share (points)"), "rate"),
    "deal_size_band": (N_("Deal size"), "text"),
    "win_rate_elsewhere": (N_("Win rate against it elsewhere"), "rate"),
    "n_closed_elsewhere": (N_("Closed deals elsewhere"), "count"),
    "win_rate_gap": (N_("Win rate gap (points)"), "rate"),
    "competitor_share_rate": (N_("Its market share"), "rate"),
    "our_share_rate": (N_("Our market share"), "rate"),
    "occurred_at": (N_("Date"), "date"),
    "kind_label": (N_("Kind"), "text"),
    "summary": (N_("What happened"), "text"),
    "where": (N_("Where"), "text"),
    "n_items": (N_("Intelligence items"), "count"),
    "n_launch": (N_("Launches"), "count"),
    "n_price": (N_("Price changes"), "count"),
    "n_campaign": (N_("Campaigns"), "count"),
    "n_press": (N_("Press"), "count"),
    "latest_at": (N_("Latest"), "date"),
})


# ------------------------------------------------------------------------------------------ market figures

def in_region(market: pd.DataFrame, region: str) -> pd.DataFrame:
    """The market rows of `region` (every row for "all"): the market is a dimension table, whole in every slice."""
    if region == "all":
        return market
    return market[market["region_id"].astype("string").eq(region).fillna(False).to_numpy(dtype=bool)]


def segments(market: pd.DataFrame) -> pd.DataFrame:
    """The market's segments once each: period, region_id, product_line, market_size_amount (the size repeats on
    every competitor's row of a segment)."""
    return market.drop_duplicates(["period", "region_id", "product_line"])[
        ["period", "region_id", "product_line", "market_size_amount"]].reset_index(drop=True)


def market_periods(market: pd.DataFrame) -> pd.DataFrame:
    """The market's periods (labels such as 2026-Q3), oldest first: period, start, end; labels that are no period
    are left out."""
    rows = []
    for label in market["period"].dropna().astype(str).unique():
        try:
            p = parse_period(label)
        except ParameterError:
            continue
        rows.append({"period": label, "start": p.start, "end": p.end})
    out = pd.DataFrame(rows, columns=["period", "start", "end"])
    return out.sort_values("start", kind="stable").reset_index(drop=True)


def _overlap(periods: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Per market period label, the share of it that [start, end) covers (0..1)."""
    lo = periods["start"].where(periods["start"] > start, start)
    hi = periods["end"].where(periods["end"] < end, end)
    share = ((hi - lo) / (periods["end"] - periods["start"])).clip(lower=0.0).astype("float64")
    return pd.Series(share.to_numpy(), index=periods["period"].to_numpy())


def _won(opportunities: pd.DataFrame, products: pd.DataFrame | None) -> pd.DataFrame:
    """Our won deals: closed_at, region_id, product_line (from `products`, when given), amount."""
    won = opportunities[won_mask(opportunities) & opportunities["closed_at"].notna()]
    out = pd.DataFrame({"closed_at": won["closed_at"], "region_id": won["region_id"].astype("string"),
                        "amount": won["amount"].astype("float64").fillna(0.0)})
    if products is not None and "product_id" in won.columns:
        lines = products.drop_duplicates("product_id").set_index("product_id")["product_line"].astype("string")
        out["product_line"] = won["product_id"].map(lines).astype("string")
    return out


def _keys(by: str | None) -> list[str]:
    if by is not None and by not in MARKET_BY:
        raise ParameterError(f"by: {by!r} is not a split of the market; use one of {', '.join(MARKET_BY)}")
    return [by] if by else []


def _span_figures(market: pd.DataFrame, won: pd.DataFrame, periods: pd.DataFrame, start: pd.Timestamp,
                  end: pd.Timestamp, by: str | None) -> pd.DataFrame:
    """Market size, our bookings and each competitor's sales over [start, end) per `by` value (or one row)."""
    return _spans_figures(market, won, periods, [(start, end)], by)[0]


def _spans_figures(market: pd.DataFrame, won: pd.DataFrame, periods: pd.DataFrame,
                   spans: Sequence[tuple[pd.Timestamp, pd.Timestamp]], by: str | None) -> list[pd.DataFrame]:
    """`_span_figures` of each [start, end) of `spans`, computed together: the market's rows are weighted by
    how much of their period each span covers (`_overlap`), and each span's sums are one group of a single
    group-by (the rows in their order, as a group-by per span adds them: the same numbers)."""
    keys = _keys(by)
    if not spans:
        return []
    weights = np.column_stack([_overlap(periods, s, e).to_numpy() for s, e in spans])
    where = {label: i for i, label in enumerate(periods["period"])}

    def weighted(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(row, span) of every row with a positive weight, row by row within each span, and the weights."""
        at = frame["period"].astype(str).map(where)
        known = at.notna().to_numpy()
        w = np.zeros((len(frame), len(spans)))
        w[known] = weights[at[known].astype("int64").to_numpy()]
        span, row = np.nonzero(w.T > 0)
        return np.stack([row, span]), w[row, span]

    def key_of(frame: pd.DataFrame) -> np.ndarray:
        return frame[by].astype("string").to_numpy() if keys else np.full(len(frame), "all", dtype=object)

    seg = segments(market)
    (rows, span), w = weighted(seg)
    size_values = seg["market_size_amount"].astype("float64").to_numpy()[rows] * w
    seg_keys = key_of(seg)[rows]
    sizes: dict[int, pd.Series] = {}
    if keys:
        grouped = pd.Series(size_values).groupby([span, seg_keys]).sum()
        for j, part in grouped.groupby(level=0, sort=False):
            sizes[int(j)] = part.droplevel(0)
    (rrows, rspan), rw = weighted(market)  # every competitor's row
    sales = market["competitor_sales_amount"].astype("float64").to_numpy()[rrows] * rw
    per_span = pd.Series(sales).groupby([rspan, key_of(market)[rrows],
                                         market["competitor"].astype("string").to_numpy()[rrows]]).sum()
    per_all = {int(j): part.droplevel(0).unstack() for j, part in per_span.groupby(level=0, sort=False)}
    closed = won["closed_at"]
    amounts, won_keys = won["amount"], key_of(won)
    out = []
    for j, (start, end) in enumerate(spans):
        if keys:
            size = sizes.get(j, pd.Series(dtype="float64"))
        else:
            size = pd.Series([float(pd.Series(size_values[span == j]).sum())], index=pd.Index(["all"], name="key"))
        inside = ((closed >= start) & (closed < end)).to_numpy(dtype=bool)
        if keys:  # a key the market does not cover is left out by the join below
            ours = amounts[inside].groupby(won_keys[inside]).sum()
        else:
            ours = pd.Series([float(amounts[inside].sum())], index=pd.Index(["all"], name="key"))
        frame = pd.DataFrame({"market_size_amount": size}).join(ours.rename("bookings_amount"), how="left")
        frame["bookings_amount"] = frame["bookings_amount"].fillna(0.0)
        per = per_all.get(j)
        if per is None:
            per = pd.DataFrame(index=pd.Index([], dtype=object))
        frame = frame.join(per, how="left")
        frame.index.name = by or "key"
        out.append(frame)
    return out


def _period_spans(periods: pd.DataFrame) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Each market period's [start, end), oldest first (`market_periods`' order)."""
    return list(zip(periods["start"], periods["end"], strict=True))


def _long_shares(wide: pd.DataFrame, by: str | None) -> pd.DataFrame:
    """One row per [by ×] player — us first, then the competitors by sales — with sales and share."""
    rows = []
    rivals = [c for c in wide.columns if c not in ("market_size_amount", "bookings_amount")]
    for key, row in wide.iterrows():
        size = row["market_size_amount"]
        players = [(_(OURS), row["bookings_amount"], True)] + [(c, row[c], False) for c in rivals if pd.notna(row[c])]
        for name, sales, is_us in players:
            rows.append({**({by: key} if by else {}), "player": name, "is_us": is_us, "sales_amount": float(sales),
                         "market_size_amount": float(size), "market_share_rate": ratio(sales, size)})
    out = pd.DataFrame(rows, columns=[*_keys(by), "player", "is_us", "sales_amount", "market_size_amount",
                                      "market_share_rate"])
    out["market_share_rate"] = out["market_share_rate"].astype("float64")
    order = [*_keys(by), "is_us", "sales_amount", "player"]
    asc = [True] * len(_keys(by)) + [False, False, True]
    return out.sort_values(order, ascending=asc, kind="stable").reset_index(drop=True)


def market_trend(market: pd.DataFrame, opportunities: pd.DataFrame | None = None,
                 products: pd.DataFrame | None = None, *, by: str | None = None) -> pd.DataFrame:
    """Per market period (oldest first) [and `by` value]: market_size_amount, bookings_amount (ours, when
    `opportunities` are given), market_share_rate (ours), pop_rate (market growth vs the previous period) and
    yoy_rate (vs the same period a year earlier, where the market has it)."""
    periods = market_periods(market)
    won = _won(opportunities, products) if opportunities is not None else None
    keys = _keys(by)
    frames = []
    figures = None if won is None else _spans_figures(market, won, periods, _period_spans(periods), by)
    for i, p in enumerate(periods.itertuples(index=False)):
        if figures is None:
            seg = segments(market)
            seg = seg[seg["period"].astype(str) == p.period]
            part = (seg.groupby(seg[by].astype("string"))["market_size_amount"].sum().to_frame() if by
                    else pd.DataFrame({"market_size_amount": [float(seg["market_size_amount"].sum())]}))
            part["bookings_amount"] = np.nan
        else:
            part = figures[i][["market_size_amount", "bookings_amount"]]
        part = part.reset_index(drop=not by)
        part.insert(0, "period", p.period)
        frames.append(part)
    columns = ["period", *keys, "market_size_amount", "bookings_amount"]
    out = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    out["market_share_rate"] = ratio_series(out["bookings_amount"], out["market_size_amount"])
    starts = periods.set_index("period")["start"]
    out["_start"] = out["period"].map(starts)
    group = out.groupby(keys)["market_size_amount"] if keys else out["market_size_amount"]
    out["pop_rate"] = group.pct_change(fill_method=None) if keys else out["market_size_amount"].pct_change(
        fill_method=None)
    before = out.assign(_start=out["_start"] + _YEAR)[[*keys, "_start", "market_size_amount"]].rename(
        columns={"market_size_amount": "_before"})
    out = out.merge(before, on=[*keys, "_start"], how="left")
    out["yoy_rate"] = ratio_series(out["market_size_amount"] - out["_before"], out["_before"])
    return out.drop(columns=["_start", "_before"])


def market_shares(market: pd.DataFrame, opportunities: pd.DataFrame, products: pd.DataFrame | None = None, *,
                  ctx: KpiContext | None = None, by: str | None = None) -> pd.DataFrame:
    """Our share and each competitor's: over `ctx`'s period (one figure per [by ×] player), or per market period
    without `ctx` (with a `period` column, oldest first). Columns: [period], [by], player, is_us, sales_amount,
    market_size_amount, market_share_rate; us first, then the competitors by sales."""
    periods = market_periods(market)
    won = _won(opportunities, products)
    if ctx is not None:
        out = _long_shares(_span_figures(market, won, periods, ctx.period_start, ctx.period_end, by), by)
        out.attrs["period"] = ctx.period_label
        return out
    frames = []
    figures = _spans_figures(market, won, periods, _period_spans(periods), by)
    for p, wide in zip(periods.itertuples(index=False), figures, strict=True):
        part = _long_shares(wide, by)
        part.insert(0, "period", p.period)
        frames.append(part)
    return pd.concat(frames, ignore_index=True) if frames else _long_shares(
        pd.DataFrame(columns=["market_size_amount", "bookings_amount"]), by).assign(period=pd.Series(dtype=str))


def share_change(market: pd.DataFrame, opportunities: pd.DataFrame, products: pd.DataFrame | None = None, *,
                 ctx: KpiContext, before: KpiContext, by: str | None = None) -> pd.DataFrame:
    """Market share per [by ×] player in `ctx`'s period and in the comparison period `before`: market_share_rate,
    share_before_rate and share_change (points); us first. `opportunities` must hold both periods' deals."""
    now = market_shares(market, opportunities, products, ctx=ctx, by=by)
    then = market_shares(market, opportunities, products, ctx=before, by=by)
    keys = [*_keys(by), "player"]
    then = then[[*keys, "market_share_rate"]].rename(columns={"market_share_rate": "share_before_rate"})
    out = now.merge(then, on=keys, how="left")
    out["share_change"] = out["market_share_rate"] - out["share_before_rate"]
    out.attrs.update(period=ctx.period_label, comparison=before.period_label)
    return out


def describe_share_change(result: pd.DataFrame | None, *, min_change: float = 0.01) -> Finding | None:
    """Our share now vs the comparison period, and the competitor whose share moved most (unique) — nothing from a
    market without figures, no "gained" for a move under `min_change` (points)."""
    if result is None or result.empty or "player" not in result:
        return None
    rows = result[result["market_size_amount"] > 0]
    us = rows[rows["is_us"]]
    if len(us) != 1 or pd.isna(us["market_share_rate"].iloc[0]) or pd.isna(us["share_before_rate"].iloc[0]):
        return None
    now, then = float(us["market_share_rate"].iloc[0]), float(us["share_before_rate"].iloc[0])
    change = now - then
    period, comparison = result.attrs.get("period", ""), result.attrs.get("comparison", "")
    if abs(change) < min_change:
        text = _("Our market share held at {now} in {period} ({then} in {comparison}).", now=_fmt(now, "rate"),
                 then=_fmt(then, "rate"), period=period, comparison=comparison)
        return finding(text, "info", kpi="our_market_share", weight=0.1)
    verb = _("rose") if change > 0 else _("fell")
    text = _("Our market share {verb} from {then} in {comparison} to {now} in {period}.", verb=verb,
             then=_fmt(then, "rate"), now=_fmt(now, "rate"), period=period, comparison=comparison)
    rivals = rows[~rows["is_us"]].dropna(subset=["share_change"])
    if len(rivals) and rivals["share_change"].max() >= min_change:
        top = rivals[rivals["share_change"] == rivals["share_change"].max()]
        if len(top) == 1:
            r = top.iloc[0]
            text = _("{text} {who} gained most: {then} → {now}.", text=text, who=r["player"],
                     then=_fmt(r["share_before_rate"], "rate"), now=_fmt(r["market_share_rate"], "rate"))
    return finding(text, "good" if change > 0 else "watch", kpi="our_market_share",
                   weight=min(1.0, abs(change) * 5))


def describe_outsold(result: pd.DataFrame | None, *, min_lead: float = 0.01) -> Finding | None:
    """Where a competitor out-sells us (from `market_shares` by region or product line over one span) by at least
    `min_lead` (points of share): the places and the competitor, its share against ours — nothing when we lead (or
    are level) everywhere or there is no market figure."""
    if result is None or result.empty or "player" not in result or "period" in result:
        return None
    by = result.columns[0] if result.columns[0] in MARKET_BY else None
    if by is None:
        return None
    parts = []
    for key, rows in result[result["market_size_amount"] > 0].groupby(by, sort=True):
        ours = rows.loc[rows["is_us"], "market_share_rate"]
        rivals = rows[~rows["is_us"]]
        if ours.empty or rivals.empty or pd.isna(ours.iloc[0]):
            continue
        ahead = rivals[rivals["market_share_rate"] >= ours.iloc[0] + min_lead]
        if len(ahead):
            who = ", ".join(f"{r.player} {_fmt(r.market_share_rate, 'rate')}" for r in ahead.itertuples(index=False))
            parts.append(_("{where} ({rivals} vs our {ours})", where=key, rivals=who, ours=_fmt(ours.iloc[0], "rate")))
    if not parts:
        return None
    text = _("Competitors out-sell us in {parts}.", parts="; ".join(parts))
    return finding(text, "watch", kpi="our_market_share", weight=min(1.0, 0.3 + 0.1 * len(parts)))


# ------------------------------------------------------------------------------------ growth vs the market

def growth_window(market: pd.DataFrame, at: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The year of complete market periods ending with the last one that ends by `at`: (start, end), or None
    when the market has no such period or less than two years of data before it ends."""
    periods = market_periods(market)
    done = periods[periods["end"] <= at]
    if done.empty:
        return None
    end = pd.Timestamp(done["end"].max())
    start = end - _YEAR
    if periods["start"].min() > start - _YEAR:
        return None
    return start, end


def growth_vs_market(market: pd.DataFrame, opportunities: pd.DataFrame, products: pd.DataFrame | None = None, *,
                     ctx: KpiContext, by: str | None = "region_id") -> pd.DataFrame:
    """The market's growth and ours over the last year of complete market periods (`growth_window`) vs the year
    before, per `by` value, then the total (key `TOTAL`, translated): market_size_amount, market_before_amount,
    market_growth_rate, bookings_amount, bookings_before_amount, our_growth_rate, growth_gap (market − ours),
    market_share_rate and share_before_rate (ours). Empty when the market has no two years before the reference
    time. `opportunities` must reach two years back."""
    keys = _keys(by)
    window = growth_window(market, reference_time(ctx))
    columns = [*(keys or ["key"]), "market_size_amount", "market_before_amount", "market_growth_rate",
               "bookings_amount", "bookings_before_amount", "our_growth_rate", "growth_gap", "market_share_rate",
               "share_before_rate"]
    if window is None:
        return pd.DataFrame(columns=columns)
    start, end = window
    periods = market_periods(market)
    won = _won(opportunities, products)
    parts = []
    for split in ([by, None] if by else [None]):
        now, then = (f[["market_size_amount", "bookings_amount"]]
                     for f in _spans_figures(market, won, periods, [(start, end), (start - _YEAR, start)], split))
        then = then.rename(columns={
            "market_size_amount": "market_before_amount", "bookings_amount": "bookings_before_amount"})
        part = now.join(then, how="left")
        part.index = part.index.astype("string").rename(keys[0] if keys else "key")
        parts.append(part)
    out = pd.concat(parts).reset_index()
    if by:
        out.loc[out.index[-1], out.columns[0]] = _(TOTAL)
    out["market_growth_rate"] = ratio_series(out["market_size_amount"] - out["market_before_amount"],
                                             out["market_before_amount"])
    out["our_growth_rate"] = ratio_series(out["bookings_amount"] - out["bookings_before_amount"],
                                          out["bookings_before_amount"])
    out["growth_gap"] = out["market_growth_rate"] - out["our_growth_rate"]
    out["market_share_rate"] = ratio_series(out["bookings_amount"], out["market_size_amount"])
    out["share_before_rate"] = ratio_series(out["bookings_before_amount"], out["market_before_amount"])
    labels = market_periods(market)
    inside = labels[(labels["start"] >= start) & (labels["end"] <= end)]["period"].tolist()
    out.attrs.update(by=by, window=(start, end), label=f"{inside[0]}..{inside[-1]}" if inside else "")
    return out[columns]


def describe_growth_vs_market(result: pd.DataFrame | None, *, min_gap: float = 0.1,
                              hold: float = 0.02) -> Finding | None:
    """The market's growth against ours, stated with the gap. With several regions (or lines), the one whose
    market outgrew us by most (unique, at least `min_gap`) — "APAC's market grew 67 %, we grew 45 %: we are
    losing share there" — else the total, "keeping our share" within `hold` points. Nothing when a growth cannot be
    computed (no sales the year before)."""
    if result is None or result.empty:
        return None
    key = result.columns[0]
    window = result.attrs.get("label", "")
    rows = result.dropna(subset=["market_growth_rate", "our_growth_rate"])
    total = rows[rows[key] == _(TOTAL)] if key != "key" else rows
    places = rows[rows[key] != _(TOTAL)] if key != "key" else rows.iloc[0:0]
    if len(places) > 1:
        widest = places[places["growth_gap"] == places["growth_gap"].max()]
        if len(widest) == 1 and widest["growth_gap"].iloc[0] >= min_gap:
            r = widest.iloc[0]
            text = _("In {where}, the market grew {market} over {window} (vs a year before), we grew {ours}: we are "
                     "losing share there ({before} → {now}), the widest gap of any {what}.", where=r[key],
                     market=_fmt(r["market_growth_rate"], "rate"), window=window,
                     ours=_fmt(r["our_growth_rate"], "rate"),
                     before=_fmt(r["share_before_rate"], "rate"), now=_fmt(r["market_share_rate"], "rate"),
                     what=_("region") if key == "region_id" else _("product line"))
            if len(total):
                t = total.iloc[0]
                text = _("{text} The whole market grew {market}, we grew {ours}.", text=text,
                         market=_fmt(t["market_growth_rate"], "rate"), ours=_fmt(t["our_growth_rate"], "rate"))
            gap = float(r["growth_gap"])
            return finding(text, "act" if gap >= 0.15 else "watch", _(
                "Invest ahead of the market in {where}: add reps and marketing there, and review the deals lost "
                "there, before the gap widens.", where=r[key]), kpi="market_growth_rate",
                weight=min(0.9, gap))
        if len(widest) == 1 or widest["growth_gap"].iloc[0] < min_gap:
            return finding(_("In no {what} did the market outgrow us by {gap} points or more over {window}.",
                             what=_("region") if key == "region_id" else _("product line"),
                             gap=_fmt(round(min_gap * 100), "count"), window=window), "info",
                           kpi="market_growth_rate", weight=0.1)
        return None  # several places tied for the widest gap: no ranking
    one = total if len(total) else places
    if len(one) != 1:
        return None
    r = one.iloc[0]
    market_growth, ours = float(r["market_growth_rate"]), float(r["our_growth_rate"])
    gap = market_growth - ours
    if abs(gap) < hold:
        text = _("Over {window} (vs a year before) the market grew {market} and we grew {ours}: we are keeping "
                 "our share.", window=window, market=_fmt(market_growth, "rate"), ours=_fmt(ours, "rate"))
        return finding(text, "info", kpi="market_growth_rate", weight=0.1)
    if gap > 0:
        text = _("Over {window} (vs a year before) the market grew {market}, we grew {ours}: we are losing share.",
                 window=window, market=_fmt(market_growth, "rate"), ours=_fmt(ours, "rate"))
        return finding(text, "watch", _("Find where the market grows faster than we do (the regions and lines "
                                        "below) and put sales and marketing there."), kpi="market_growth_rate",
                       weight=min(0.9, gap))
    text = _("Over {window} (vs a year before) the market grew {market}, we grew {ours}: we are gaining share.",
             window=window, market=_fmt(market_growth, "rate"), ours=_fmt(ours, "rate"))
    return finding(text, "good", kpi="market_growth_rate", weight=min(0.9, -gap))


# ------------------------------------------------------------------------------------------ competitive deals

def competitive(opportunities: pd.DataFrame) -> pd.DataFrame:
    """The opportunities with a competitor recorded."""
    named = opportunities["competitor"].astype("string").str.strip()
    return opportunities[(named.notna() & (named != "")).to_numpy(dtype=bool)]


def deal_size_bands(amounts: pd.Series) -> pd.Series:
    """Each deal's size band by the terciles of `amounts` (edges rounded to two significant digits): "under
    20,000", "20,000–40,000", "40,000 and over"; a deal without an amount is "(unknown)"."""
    known = amounts.dropna().astype("float64")
    out = pd.Series(_("(unknown)"), index=amounts.index, dtype="string")
    if known.empty:
        return out
    edges = sorted({float(f"{v:.2g}") for v in known.quantile([1 / 3, 2 / 3])})
    if len(edges) == 1 and (known < edges[0]).sum() == 0:
        edges = []
    labels = []
    bounds = [-np.inf, *edges, np.inf]
    for lo, hi in itertools.pairwise(bounds):
        if lo == -np.inf and hi == np.inf:
            labels.append(_("all sizes"))
        elif lo == -np.inf:
            labels.append(_("under {x}", x=_fmt(hi, "count")))
        elif hi == np.inf:
            labels.append(_("{x} and over", x=_fmt(lo, "count")))
        else:
            labels.append(_("{lo}–{hi}", lo=_fmt(lo, "count"), hi=_fmt(hi, "count")))
    codes = np.searchsorted(np.array(edges), amounts.astype("float64").to_numpy(), side="right")
    out = pd.Series(np.array(labels, dtype=object)[codes], index=amounts.index, dtype="string")
    out = out.where(amounts.notna(), _("(unknown)"))
    out.attrs["order"] = labels
    return out


def head_to_head(opportunities: pd.DataFrame, by: str | None = None, *, ctx: KpiContext | None = None,
                 products: pd.DataFrame | None = None, reps: pd.DataFrame | None = None,
                 regions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Our win rate against each competitor over the deals closed in `ctx`'s period (all closed without it)
    that name one (`funnel.win_rate_by`), [per `by` value of `HEAD_TO_HEAD_BY`]: competitor, [by, name], n_closed,
    n_won, n_lost, won_amount, lost_amount, win_rate. Most closed deals first (per competitor by total)."""
    if by is not None and by not in HEAD_TO_HEAD_BY:
        raise ParameterError(f"by: {by!r} is not allowed; use one of {', '.join(HEAD_TO_HEAD_BY)}")
    fought = competitive(opportunities)
    if ctx is not None:
        fought = fought[(fought["closed_at"].notna() & in_period(fought["closed_at"], ctx)).to_numpy(dtype=bool)]
    closed = fought[(fought["closed_at"].notna() & fought["is_won"].notna()).to_numpy(dtype=bool)]
    lost = closed[~won_mask(closed)]
    if by is None:
        out = funnel.win_rate_by(closed, "competitor")
        keys = ["competitor"]
    elif by == "deal_size_band":
        band = deal_size_bands(closed["amount"])
        frame = pd.DataFrame({"competitor": closed["competitor"].astype("string"), "deal_size_band": band,
                              "won": won_mask(closed).astype(int), "won_amount": closed["amount"].where(
                                  won_mask(closed))})
        g = frame.groupby(["competitor", "deal_size_band"], observed=True)
        out = pd.DataFrame({"n_closed": g.size(), "n_won": g["won"].sum(),
                            "won_amount": g["won_amount"].sum()}).reset_index()
        out["win_rate"] = ratio_series(out["n_won"], out["n_closed"])
        order = {label: i for i, label in enumerate(band.attrs.get("order", []))}
        out = out.assign(_o=out["deal_size_band"].map(order)).sort_values(["competitor", "_o"]).drop(columns="_o")
        lost = lost.assign(deal_size_band=band.reindex(lost.index))
        keys = ["competitor", "deal_size_band"]
    else:
        parts = []
        for name, part in closed.groupby(closed["competitor"].astype("string"), sort=True):
            rates = funnel.win_rate_by(part, by, None, products, reps=reps, regions=regions)
            rates.insert(0, "competitor", name)
            parts.append(rates)
        out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            columns=["competitor", by, "n_closed", "n_won", "won_amount", "win_rate"])
        keys = ["competitor", by]
        if by == "product_line" and products is not None:
            lines = products.drop_duplicates("product_id").set_index("product_id")["product_line"]
            lost = lost.assign(product_line=lost["product_id"].map(lines).astype("string").fillna(
                funnel.none_label()))
        else:
            lost = lost.assign(**{by: lost[by].astype("string").fillna(funnel.none_label())})
    lost_amount = lost.groupby([lost[k].astype("string") for k in keys])["amount"].sum()
    out["n_lost"] = (out["n_closed"] - out["n_won"]).astype(int)
    index = pd.MultiIndex.from_frame(out[keys].astype("string")) if len(keys) > 1 else out[keys[0]].astype("string")
    out["lost_amount"] = lost_amount.reindex(index).fillna(0.0).to_numpy(dtype="float64")
    if by is not None and by != "deal_size_band" and len(out):
        totals = out.groupby("competitor")["n_closed"].transform("sum")
        out = out.assign(_t=totals).sort_values(["_t", "competitor", "n_closed"], ascending=[False, True, False],
                                                kind="stable").drop(columns="_t")
    columns = [c for c in [*keys, "name"] if c in out.columns] + ["n_closed", "n_won", "n_lost", "won_amount",
                                                                  "lost_amount", "win_rate"]
    return out[columns].reset_index(drop=True)


def strongholds(opportunities: pd.DataFrame, market: pd.DataFrame | None = None, *,
                span: tuple[pd.Timestamp, pd.Timestamp] | None = None) -> pd.DataFrame:
    """Per competitor × region: our win rate against it there (closed deals naming it, over `span` when given)
    and against the same competitor in every other region, the gap (elsewhere − here), and — with the `market`
    over the same span — its share of the region's market and ours. `opportunities` must hold every region.
    Widest gap first among the pairs with `MIN_CLOSED` closed deals on each side, then the others."""
    fought = competitive(opportunities)
    fought = fought[(fought["closed_at"].notna() & fought["is_won"].notna()).to_numpy(dtype=bool)]
    if span is not None:
        fought = fought[((fought["closed_at"] >= span[0]) & (fought["closed_at"] < span[1])).to_numpy(dtype=bool)]
    frame = pd.DataFrame({"competitor": fought["competitor"].astype("string"),
                          "region_id": fought["region_id"].astype("string"), "won": won_mask(fought).astype(int)})
    g = frame.groupby(["competitor", "region_id"], observed=True)["won"]
    out = pd.DataFrame({"n_closed": g.size(), "n_won": g.sum()}).reset_index()
    every = out.groupby("competitor")[["n_closed", "n_won"]].transform("sum")
    out["n_closed_elsewhere"] = every["n_closed"] - out["n_closed"]
    out["win_rate"] = ratio_series(out["n_won"], out["n_closed"])
    out["win_rate_elsewhere"] = ratio_series(every["n_won"] - out["n_won"], out["n_closed_elsewhere"])
    out["win_rate_gap"] = out["win_rate_elsewhere"] - out["win_rate"]
    out["competitor_share_rate"] = np.nan
    out["our_share_rate"] = np.nan
    if market is not None and len(market) and span is not None:
        shares = market_shares(market, opportunities, ctx=KpiContext(period_start=span[0], period_end=span[1]),
                               by="region_id")
        ours = shares[shares["is_us"]].set_index("region_id")["market_share_rate"]
        theirs = shares[~shares["is_us"]].set_index(["player", "region_id"])["market_share_rate"]
        out["our_share_rate"] = out["region_id"].map(ours).astype("float64")
        idx = pd.MultiIndex.from_frame(out[["competitor", "region_id"]])
        out["competitor_share_rate"] = theirs.reindex(idx).to_numpy(dtype="float64")
    solid = (out["n_closed"] >= MIN_CLOSED) & (out["n_closed_elsewhere"] >= MIN_CLOSED)
    out = out.assign(_solid=solid).sort_values(["_solid", "win_rate_gap", "competitor", "region_id"],
                                               ascending=[False, False, True, True], na_position="last", kind="stable")
    return out.drop(columns="_solid").reset_index(drop=True)


def describe_strongholds(result: pd.DataFrame | None, *, min_gap: float = 0.15,
                         min_closed: int = MIN_CLOSED) -> Finding | None:
    """The region where a competitor beats us most against how we do against it elsewhere (at least `min_closed`
    closed deals on each side and a gap of `min_gap`), with its market share against ours there — the headline of
    the market notebook. Nothing when no region stands out; ties are not ranked."""
    if result is None or result.empty:
        return None
    solid = result[(result["n_closed"] >= min_closed) & (result["n_closed_elsewhere"] >= min_closed)].dropna(
        subset=["win_rate_gap"])
    if solid.empty:
        return None
    top = solid[solid["win_rate_gap"] == solid["win_rate_gap"].max()]
    if len(top) != 1 or top["win_rate_gap"].iloc[0] < min_gap:
        return None
    r = top.iloc[0]
    text = _("{who} beats us in {where}: we win {rate} of the {n} deals it is on there vs {elsewhere} against it "
             "elsewhere.", who=r["competitor"], where=r["region_id"], rate=_fmt(r["win_rate"], "rate"),
             n=_fmt(int(r["n_closed"]), "count"), elsewhere=_fmt(r["win_rate_elsewhere"], "rate"))
    if pd.notna(r["competitor_share_rate"]) and pd.notna(r["our_share_rate"]):
        text = _("{text} It holds {its} of {where}'s market, we hold {ours}.", text=text,
                 its=_fmt(r["competitor_share_rate"], "rate"), where=r["region_id"],
                 ours=_fmt(r["our_share_rate"], "rate"))
    advice = _("Build a plan against {who} in {where}: review the deals lost to it there (loss reasons, prices), "
               "give the {where} team proof points and pricing guidance against {who}, and have a manager join the "
               "largest open deals it is on.", who=r["competitor"], where=r["region_id"])
    return finding(text, "act", advice, kpi="competitive_win_rate", weight=min(1.0, float(r["win_rate_gap"]) / 0.25))


def competitive_loss_reasons(opportunities: pd.DataFrame, ctx: KpiContext | None = None) -> pd.DataFrame:
    """Why the deals naming a competitor were lost, per competitor (`funnel.loss_reasons`): competitor,
    loss_reason, n_lost, lost_amount, share_rate (of that competitor's losses), amount_share_rate."""
    parts = []
    fought = competitive(opportunities)
    for name, part in fought.groupby(fought["competitor"].astype("string"), sort=True):
        reasons = funnel.loss_reasons(part, ctx)
        if len(reasons):
            reasons.insert(0, "competitor", name)
            parts.append(reasons)
    columns = ["competitor", "loss_reason", "n_lost", "lost_amount", "share_rate", "amount_share_rate"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


# ----------------------------------------------------------------------------------------- intelligence

def intel_items(competitor_intel: pd.DataFrame, opportunities: pd.DataFrame | None = None, *,
                span: tuple[pd.Timestamp, pd.Timestamp]) -> pd.DataFrame:
    """The intelligence items of `span`, latest first: occurred_at (the day), competitor, kind_label, where (the
    region, or "all regions"), summary, and next to each our deals against that competitor closed in the span in
    the same region (every region for a global item): n_closed, win_rate."""
    items = competitor_intel[((competitor_intel["occurred_at"] >= span[0])
                              & (competitor_intel["occurred_at"] < span[1])).to_numpy(dtype=bool)]
    items = items.sort_values(["occurred_at", "intel_id"], ascending=[False, True], kind="stable")
    region = items["region_id"].astype("string")
    out = pd.DataFrame({
        "occurred_at": items["occurred_at"].dt.normalize().to_numpy(),
        "competitor": items["competitor"].astype("string").to_numpy(),
        "kind_label": [_(INTEL_KIND_LABELS.get(str(k), str(k))) for k in items["kind"]],
        "where": region.fillna(_("all regions")).to_numpy(),
        "summary": items["summary"].astype("string").to_numpy() if "summary" in items else pd.NA,
    })
    out["n_closed"] = 0
    out["win_rate"] = np.nan
    if opportunities is not None and len(out):
        rates = strongholds(opportunities, span=span)
        overall = head_to_head(opportunities, ctx=KpiContext(period_start=span[0], period_end=span[1]))
        here = rates.set_index(["competitor", "region_id"])
        everywhere = overall.set_index("competitor")
        n, w = [], []
        for comp, reg in zip(out["competitor"], region.to_numpy(), strict=True):
            source = everywhere.loc[comp] if pd.isna(reg) and comp in everywhere.index else (
                here.loc[(comp, reg)] if (comp, reg) in here.index else None)
            n.append(int(source["n_closed"]) if source is not None else 0)
            w.append(float(source["win_rate"]) if source is not None else np.nan)
        out["n_closed"], out["win_rate"] = n, w
    out.attrs["span"] = span
    return out


def intel_summary(competitor_intel: pd.DataFrame, opportunities: pd.DataFrame | None = None, *,
                  span: tuple[pd.Timestamp, pd.Timestamp]) -> pd.DataFrame:
    """Per competitor, over `span`: n_items and the items of each kind (n_launch, n_price, n_campaign, n_press),
    latest_at, and our deals against it closed in the span (n_closed, win_rate, n_lost, lost_amount). Most items
    first."""
    items = competitor_intel[((competitor_intel["occurred_at"] >= span[0])
                              & (competitor_intel["occurred_at"] < span[1])).to_numpy(dtype=bool)]
    kinds = pd.crosstab(items["competitor"].astype("string"), items["kind"].astype("string"))
    out = pd.DataFrame(index=kinds.index)
    for kind in INTEL_KIND_LABELS:
        out[f"n_{kind}"] = kinds.get(kind, 0)
    out.insert(0, "n_items", out.sum(axis=1))
    out["latest_at"] = items.groupby(items["competitor"].astype("string"))["occurred_at"].max().dt.normalize()
    if opportunities is not None:
        h2h = head_to_head(opportunities, ctx=KpiContext(period_start=span[0], period_end=span[1])).set_index(
            "competitor")
        out = out.join(h2h[["n_closed", "win_rate", "n_lost", "lost_amount"]], how="outer")
        out[["n_closed", "n_lost"]] = out[["n_closed", "n_lost"]].fillna(0).astype(int)
    count_cols = ["n_items", *[f"n_{k}" for k in INTEL_KIND_LABELS]]
    out[count_cols] = out[count_cols].fillna(0).astype(int)
    out.index.name = "competitor"
    out = out.reset_index().sort_values(["n_items", "competitor"], ascending=[False, True], kind="stable")
    out.attrs["span"] = span
    return out.reset_index(drop=True)


def describe_intel(result: pd.DataFrame | None) -> Finding | None:
    """The most active competitor (unique) with what it did and our win rate against it — a "watch" when that is
    also our lowest win rate against any competitor (with at least `MIN_CLOSED` closed deals)."""
    if result is None or result.empty or result["n_items"].max() == 0:
        return None
    top = result[result["n_items"] == result["n_items"].max()]
    if len(top) != 1:
        return None
    r = top.iloc[0]
    done = ", ".join(_(INTEL_KIND_COUNTS[k], n=_fmt(int(r[f"n_{k}"]), "count")) for k in INTEL_KIND_LABELS
                     if r[f"n_{k}"] > 0)
    text = _("{who} was the most active competitor ({n} items: {done}).", who=r["competitor"],
             n=_fmt(int(r["n_items"]), "count"), done=done)
    rated = result[(result.get("n_closed", 0) >= MIN_CLOSED)].dropna(subset=["win_rate"]) if "win_rate" in result \
        else result.iloc[0:0]
    if r["competitor"] in set(rated["competitor"]):
        rate = float(rated.loc[rated["competitor"] == r["competitor"], "win_rate"].iloc[0])
        text = _("{text} We win {rate} of the deals it is on.", text=text, rate=_fmt(rate, "rate"))
        lowest = rated[rated["win_rate"] == rated["win_rate"].min()]
        if len(rated) > 1 and len(lowest) == 1 and lowest["competitor"].iloc[0] == r["competitor"]:
            return finding(_("{text} That is our lowest win rate against any competitor.", text=text), "watch", _(
                "Brief the reps on {who}'s latest price changes and campaigns, and prepare answers to them.",
                who=r["competitor"]), kpi="competitive_win_rate", weight=0.4)
    return finding(text, "info", kpi="competitive_win_rate", weight=0.1)


# ------------------------------------------------------------------------------------- slice-level entry points

def _year_span(s: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The twelve months up to the end of the slice's period (the span of the competitive and intel sections)."""
    end = pd.Timestamp(s.period.end)
    return end - _YEAR, end


def _n_periods(s: Any, start: pd.Timestamp) -> int:
    """How many periods of the slice's kind reach back to `start`."""
    length = max((pd.Timestamp(s.period.end) - pd.Timestamp(s.period.start)).days, 1)
    days = (pd.Timestamp(s.period.end) - start).days
    return max(2, min(400, -(-days // length)))


def _history(s: Any, start: pd.Timestamp, region: str | None = None) -> pd.DataFrame:
    return s.history("opportunities", _n_periods(s, start), region=region)


def _market_start(s: Any) -> pd.Timestamp:
    periods = market_periods(_market(s))
    first = pd.Timestamp(periods["start"].min()) if len(periods) else pd.Timestamp(s.period.start)
    return min(first, pd.Timestamp(s.period.end) - 2 * _YEAR)


def _market(s: Any) -> pd.DataFrame:
    """The slice region's market rows."""
    return in_region(s.tables["market"], s.params.region)


def _products(s: Any) -> pd.DataFrame | None:
    return s.tables["products"] if s.has("products") else None


def _ctx(s: Any, which: str = "current") -> KpiContext:
    from crmlens import notebook

    return notebook.context(s, which)


def _records_competitor(s: Any) -> bool:
    """True when the source records the competitor on opportunities; else the "needs column" note."""
    from crmlens import notebook
    from crmlens.data import has_column

    if has_column(s, "opportunities", "competitor"):
        return True
    notebook.md(notebook.needs_column_text("opportunities", "competitor", s.info.source))
    return False


@on_slice("market", "opportunities")
def market_trend_of(s: Any, by: str | None = None) -> pd.DataFrame:
    """`market_trend` of the slice's region over every market period, with our bookings."""
    return market_trend(_market(s), _history(s, _market_start(s)), _products(s), by=by)


@on_slice("market", "opportunities")
def growth_vs_market_of(s: Any, by: str | None = "region_id") -> pd.DataFrame:
    """`growth_vs_market` of the slice's region (per region, or per product line)."""
    return growth_vs_market(_market(s), _history(s, pd.Timestamp(s.period.end) - 2 * _YEAR - _YEAR),
                            _products(s), ctx=_ctx(s), by=by)


@on_slice("market", "opportunities")
def market_shares_of(s: Any, by: str | None = None, *, trend: bool = False) -> pd.DataFrame:
    """`market_shares` of the slice's period (or, with `trend`, per market period)."""
    opps = _history(s, _market_start(s)) if trend else s.tables["opportunities"]
    return market_shares(_market(s), opps, _products(s), ctx=None if trend else _ctx(s), by=by)


@on_slice("market", "opportunities")
def share_change_of(s: Any, by: str | None = None) -> pd.DataFrame:
    """`share_change` of the slice's period vs its comparison period."""
    before = _ctx(s, "comparison")
    opps = pd.concat([s.tables["opportunities"], s.comparison["opportunities"]], ignore_index=True)
    opps = opps.drop_duplicates("opportunity_id")
    return share_change(_market(s), opps, _products(s), ctx=_ctx(s), before=before, by=by)


@on_slice("opportunities")
def strongholds_of(s: Any) -> pd.DataFrame | None:
    """`strongholds` over the twelve months up to the period's end (every region's deals, so that a region is
    compared with the others), the market shares from the slice's market; for one region, its rows."""
    if not _records_competitor(s):
        return None
    span = _year_span(s)
    every = _history(s, span[0], region="all")
    market = s.tables["market"] if s.has("market") else None
    out = strongholds(every, market, span=span)
    if s.params.region != "all":
        out = out[out["region_id"] == s.params.region].reset_index(drop=True)
    return out


@on_slice("opportunities")
def head_to_head_of(s: Any, by: str | None = None) -> pd.DataFrame | None:
    """`head_to_head` over the twelve months up to the period's end, in the slice's region."""
    if not _records_competitor(s):
        return None
    span = _year_span(s)
    regions = s.tables["regions"] if s.has("regions") else None
    reps = s.tables["reps"] if s.has("reps") else None
    out = head_to_head(_history(s, span[0]), by, ctx=KpiContext(period_start=span[0], period_end=span[1]),
                       products=_products(s), reps=reps, regions=regions)
    out.attrs["span"] = span
    return out


@on_slice("opportunities")
def competitive_loss_reasons_of(s: Any) -> pd.DataFrame | None:
    """`competitive_loss_reasons` over the twelve months up to the period's end."""
    if not _records_competitor(s):
        return None
    span = _year_span(s)
    return competitive_loss_reasons(_history(s, span[0]), KpiContext(period_start=span[0], period_end=span[1]))


@on_slice("opportunities")
def head_to_head_trend_of(s: Any, n_periods: int = 8) -> pd.DataFrame | None:
    """Our win rate against each competitor per quarter of close over the slice's last `n_periods` periods
    (`funnel.win_rate_trend`)."""
    if not _records_competitor(s):
        return None
    return funnel.win_rate_trend(competitive(s.history("opportunities", n_periods)), by="competitor")


@on_slice("competitor_intel")
def intel_items_of(s: Any) -> pd.DataFrame:
    """`intel_items` of the twelve months up to the period's end: the region's items and the global ones."""
    span = _year_span(s)
    return intel_items(_intel(s, span), _opps_for_intel(s, span), span=span)


@on_slice("competitor_intel")
def intel_summary_of(s: Any) -> pd.DataFrame:
    """`intel_summary` of the twelve months up to the period's end: the region's items and the global ones."""
    span = _year_span(s)
    return intel_summary(_intel(s, span), _opps_for_intel(s, span, every=False), span=span)


def _intel(s: Any, span: tuple[pd.Timestamp, pd.Timestamp]) -> pd.DataFrame:
    intel = s.history("competitor_intel", _n_periods(s, span[0]), region="all")
    if s.params.region != "all":
        region = intel["region_id"].astype("string")
        intel = intel[(region.isna() | region.eq(s.params.region)).to_numpy(dtype=bool)]
    return intel


def _opps_for_intel(s: Any, span: tuple[pd.Timestamp, pd.Timestamp], every: bool = True) -> pd.DataFrame | None:
    from crmlens.data import has_column

    if not s.has("opportunities") or not has_column(s, "opportunities", "competitor"):
        return None
    return _history(s, span[0], region="all" if every and s.params.region == "all" else None)


# ------------------------------------------------------------------------------------------- headline KPIs

def _market_size(market: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> float | None:
    periods = market_periods(market)
    if periods.empty:
        return None
    weight = _overlap(periods, start, end)
    seg = segments(market)
    w = seg["period"].astype(str).map(weight).fillna(0.0)
    if not (w > 0).any():
        return None
    return float((seg["market_size_amount"].astype("float64") * w).sum())


@register_kpi("market_size", label=N_("Market size"), unit="amount", direction="neutral", tables=("market",),
              area=AREA, description="Market size (`market.market_size_amount` of the region's distinct period × "
              "product line segments) in the period; a market period the analysed period covers in part counts by "
              "the share it covers.")
def kpi_market_size(frames: Frames, ctx: KpiContext) -> float | None:
    return _market_size(in_region(frames["market"], ctx.region), ctx.period_start, ctx.period_end)


@register_kpi("market_growth_rate", label=N_("Market growth"), unit="rate", direction="neutral", tables=("market",),
              area=AREA, description="Market size in the period vs the same period a year earlier.")
def kpi_market_growth_rate(frames: Frames, ctx: KpiContext) -> float | None:
    market = in_region(frames["market"], ctx.region)
    now = _market_size(market, ctx.period_start, ctx.period_end)
    before = _market_size(market, ctx.period_start - _YEAR, ctx.period_end - _YEAR)
    return ratio(now - before, before) if now is not None and before is not None else None


@register_kpi("our_market_share", label=N_("Our market share"), unit="rate", direction="higher",
              tables=("market", "opportunities"), area=AREA,
              description="Our bookings (won amount by `closed_at`) in the period ÷ the market size in the period.")
def kpi_our_market_share(frames: Frames, ctx: KpiContext) -> float | None:
    size = kpi_market_size(frames, ctx)
    if not size:
        return None
    opps = frames["opportunities"]
    won = opps[won_mask(opps) & in_period(opps["closed_at"], ctx)]
    return ratio(float(won["amount"].sum()), size)


@register_kpi("competitive_win_rate", label=N_("Competitive win rate"), unit="rate", direction="higher",
              tables=("opportunities",), area=AREA,
              description="Won ÷ closed opportunities closed in the period that name a competitor.")
def kpi_competitive_win_rate(frames: Frames, ctx: KpiContext) -> float | None:
    closed = _closed_competitive(frames, ctx)
    return None if closed is None else ratio(float(won_mask(closed).sum()), len(closed))


def _closed_competitive(frames: Frames, ctx: KpiContext) -> pd.DataFrame | None:
    """The opportunities naming a competitor closed in the period; None when no deal names one."""
    opps = frames["opportunities"]
    if "competitor" not in opps or opps["competitor"].isna().all():
        return None
    fought = competitive(opps)
    return fought[(fought["is_won"].notna() & in_period(fought["closed_at"], ctx)).to_numpy(dtype=bool)]


@register_kpi("lost_to_competitors_amount", label=N_("Lost to competitors"), unit="amount", direction="lower",
              tables=("opportunities",), area=AREA,
              description="Amount of the opportunities lost in the period that name a competitor.")
def kpi_lost_to_competitors_amount(frames: Frames, ctx: KpiContext) -> float | None:
    closed = _closed_competitive(frames, ctx)
    return None if closed is None else float(closed.loc[~won_mask(closed).to_numpy(), "amount"].sum())


def headline_kpis(s: Any) -> list[str]:
    """The notebook's headline KPIs."""
    return ["our_market_share", "market_size", "market_growth_rate", "competitive_win_rate",
            "lost_to_competitors_amount"]

