"""Sales performance: target attainment, bookings trends and seasonality, deal size, sales cycle,
contracts / invoices / payments (回款) and the period's sales brief.

Definitions used throughout (see `crmlens.truths`):

* **bookings** — the amount of won opportunities (`is_won`), dated by `closed_at`, credited to the
  opportunity's `region_id`, to its `owner_rep_id` and through `reps.team_id` to the rep's team, and through
  `products.product_line` to a product line;
* **target** — `targets.target_amount` (and `n_target_deals`) of the period's label (``2026-Q3``,
  ``2026-09``); a period without its own target (a year, a range of months) takes the sum of the months
  (or quarters) that tile it exactly; weeks, days and ragged ranges have none;
* **sales cycle** — days from `created_at` to `closed_at` of won deals (deals without `created_at` are
  left out and counted);
* **collection rate** — payments received in the period ÷ amount invoiced in the period;
* **receivable balance** — for the contracts signed in the period: contract amount − payments received
  against them by the end of the period (what the period's deals still owe).

Every function takes validated frames and a `KpiContext` (`crmlens.notebook.context(s)`), never mutates
them, and returns a tidy frame; a frame's ``attrs["note"]`` says what was left out and why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from crmlens.errors import ParameterError
from crmlens.kpis import KpiContext, register_kpi
from crmlens.metrics.common import (
    FREQS,
    bucket,
    check_choice,
    has,
    in_period,
    isin,
    ratio,
    ratio_series,
    target_periods,
    won_in_period,
    won_mask,
)
from crmlens.periods import Period

AREA = "sales_performance"
Frames = Mapping[str, pd.DataFrame]

#: Target levels and the canonical column that carries each level's key on a won opportunity.
LEVELS: dict[str, str] = {
    "company": "company",
    "region": "region_id",
    "team": "team_id",
    "rep": "rep_id",
    "product_line": "product_line",
}
#: Segments deals can be grouped by, and the key column each produces.
SEGMENTS: dict[str, str] = {
    "all": "segment",
    "product": "product_id",
    "product_line": "product_line",
    "region": "region_id",
    "team": "team_id",
    "rep": "rep_id",
    "size_band": "size_band",
    "industry": "industry",
}
UNKNOWN = "(unknown)"
ATTAINMENT_COLUMNS = ["level", "key", "name", "bookings_amount", "n_won", "target_amount", "n_target_deals",
                      "attainment_rate", "deal_attainment_rate", "elapsed_rate", "gap_amount", "is_on_track"]


# ------------------------------------------------------------------------------------------- helpers

def _note(frame: pd.DataFrame, *parts: str, n_excluded: int | None = None) -> pd.DataFrame:
    frame.attrs["note"] = " ".join(p for p in parts if p)
    if n_excluded is not None:
        frame.attrs["n_excluded"] = n_excluded
    return frame


def note(result: pd.DataFrame) -> str:
    """The note a result carries (what was left out and why), or ''."""
    return str(result.attrs.get("note", "")) if isinstance(result, pd.DataFrame) else ""


def _period_of(ctx: KpiContext) -> Period:
    return Period(label=ctx.period_label or "period", start=ctx.period_start, end=ctx.period_end, kind="range")


def elapsed_share(ctx: KpiContext) -> float | None:
    """Share (0–1) of the context's period elapsed at its as-of time; None without an as-of time."""
    if ctx.as_of is None:
        return None
    return _period_of(ctx).elapsed_share(ctx.as_of)


def _targets_for(targets: pd.DataFrame, labels: list[str], level: str) -> pd.DataFrame:
    """Summed target amount and deal count per key of `level` over the period labels."""
    rows = targets.loc[targets["period"].isin(labels) & (targets["level"] == level)]
    if rows.empty:
        return pd.DataFrame({"target_amount": pd.Series(dtype="float64"),
                             "n_target_deals": pd.Series(dtype="float64")}, index=pd.Index([], name="key"))
    out = rows.groupby("key")[["target_amount", "n_target_deals"]].sum(min_count=1)
    return out.astype("float64")


def _names(dims: Frames, segment: str) -> pd.Series:
    """Display names of a segment's keys (team, rep, region, product names); empty when not known."""
    table, key = {"team_id": ("teams", "team_id"), "rep_id": ("reps", "rep_id"),
                  "region_id": ("regions", "region_id"), "product_id": ("products", "product_id")}.get(
        segment, (None, None))
    if table is None or table not in dims or dims[table].empty:
        return pd.Series(dtype="string")
    frame = dims[table]
    return pd.Series(frame["name"].astype("string").to_numpy(), index=frame[key].astype("string").to_numpy())


def _segment_keys(deals: pd.DataFrame, by: str, dims: Frames) -> tuple[pd.Series, int, str]:
    """Each deal's key for segment `by`, the number of deals that cannot be placed, and why."""
    def lookup(table: str, key: str, column: str, via: str) -> pd.Series:
        if table not in dims:
            raise ParameterError(f"by: {by!r} needs table {table}, which this source lacks")
        mapping = dims[table].drop_duplicates(key).set_index(key)[column]
        return deals[via].map(mapping).astype("string")

    if by == "all":
        return pd.Series("all", index=deals.index, dtype="string"), 0, ""
    if by == "product":
        return deals["product_id"].astype("string"), 0, ""
    if by == "region":
        return deals["region_id"].astype("string"), 0, ""
    if by == "rep":
        return deals["owner_rep_id"].astype("string"), 0, ""
    if by == "product_line":
        return lookup("products", "product_id", "product_line", "product_id"), 0, ""
    if by == "team":
        return lookup("reps", "rep_id", "team_id", "owner_rep_id"), 0, ""
    # account attributes: deals without an account cannot be placed
    keys = lookup("accounts", "account_id", by, "account_id")
    no_account = int(deals["account_id"].isna().sum())
    why = f"{no_account:,} won deal{'s' if no_account != 1 else ''} without an account left out." if no_account else ""
    return keys.fillna(UNKNOWN).where(deals["account_id"].notna()), no_account, why


def _by_segment(deals: pd.DataFrame, by: str, dims: Frames) -> tuple[pd.DataFrame, str, int, str]:
    """`deals` with a key column for segment `by` (rows that cannot be placed dropped)."""
    check_choice("by", by, SEGMENTS)
    column = SEGMENTS[by]
    keys, dropped, why = _segment_keys(deals, by, dims)
    placed = deals.assign(**{column: keys.fillna(UNKNOWN) if by not in ("size_band", "industry") else keys})
    placed = placed.loc[placed[column].notna()]
    return placed, column, dropped, why


def _with_names(frame: pd.DataFrame, column: str, dims: Frames) -> pd.DataFrame:
    names = _names(dims, column)
    shown = frame[column].map(names) if not names.empty else pd.Series(pd.NA, index=frame.index)
    return frame.assign(name=shown.fillna(frame[column]).astype("string"))


def _period_buckets(times: pd.Series, freq: str) -> pd.Series:
    if freq not in FREQS:
        raise ParameterError(f"freq: {freq!r} is not a time grain; use one of {', '.join(FREQS)}")
    return times.dt.to_period(FREQS[freq])


def _label(periods: pd.PeriodIndex, freq: str) -> list[str]:
    return bucket(pd.Series(periods.start_time), freq).tolist()


# --------------------------------------------------------------------------------- target attainment

def target_attainment(opportunities: pd.DataFrame, dims: Frames, ctx: KpiContext,
                      level: str = "company") -> pd.DataFrame:
    """Bookings and won deals vs target per key of `level` (company, region, team, rep, product_line).

    One row per key with a target or with bookings: bookings_amount, n_won, target_amount, n_target_deals,
    attainment_rate (bookings ÷ target), deal_attainment_rate, elapsed_rate (share of the period elapsed at
    the as-of time), gap_amount (target − bookings) and is_on_track (attainment ≥ elapsed share). In a region
    slice, teams and reps are those of the region, and the company level is the region's own target;
    product-line targets are company-wide and are only compared in the "all" slice.
    """
    check_choice("level", level, LEVELS)
    targets = dims.get("targets")
    empty = pd.DataFrame(columns=ATTAINMENT_COLUMNS)
    if targets is None:
        return _note(empty, "This source has no targets table.")
    labels = target_periods(targets, ctx.period_start, ctx.period_end, ctx.period_label)
    if not labels:
        return _note(empty, f"No targets for {ctx.period_label or 'this period'}: targets are set per month and "
                            "quarter, and this period is not made of whole months.")
    regional = ctx.region != "all"
    if regional and level == "product_line":
        return _note(empty, "Product-line targets are set for the whole company; compare them in the "
                            "'all' slice.")
    won = won_in_period(opportunities, ctx)
    if level == "company":
        actual_key = pd.Series(ctx.region if regional else "company", index=won.index, dtype="string")
        target_level, wanted = ("region", [ctx.region]) if regional else ("company", ["company"])
    elif level == "product_line":
        actual_key, _, _ = _segment_keys(won, "product_line", dims)
        target_level, wanted = level, None
    else:
        actual_key, _, _ = _segment_keys(won, {"region": "region", "team": "team", "rep": "rep"}[level], dims)
        target_level = level
        wanted = None
        if regional:
            table = {"region": "regions", "team": "teams", "rep": "reps"}[level]
            wanted = ([ctx.region] if level == "region" else
                      dims[table].loc[dims[table]["region_id"] == ctx.region, LEVELS[level]].astype(str).tolist())
    actual = pd.DataFrame({"key": actual_key.to_numpy(), "amount": won["amount"].to_numpy()})
    actual = actual.dropna(subset=["key"]).groupby("key")["amount"].agg(["sum", "size"])
    target = _targets_for(targets, labels, target_level)
    keys = target.index.union(actual.index)
    if wanted is not None:
        keys = keys.intersection(pd.Index(wanted))
    out = pd.DataFrame(index=pd.Index(keys, name="key"))
    out["bookings_amount"] = actual["sum"].reindex(keys, fill_value=0.0).astype("float64")
    out["n_won"] = actual["size"].reindex(keys, fill_value=0).astype("int64")
    out["target_amount"] = target["target_amount"].reindex(keys)
    out["n_target_deals"] = target["n_target_deals"].reindex(keys)
    out = out.reset_index()
    out.insert(0, "level", level)
    name_col = {"region": "region_id", "team": "team_id", "rep": "rep_id",
                "company": "region_id" if regional else ""}.get(level, "")
    names = _names(dims, name_col) if name_col else pd.Series(dtype="string")
    out.insert(2, "name", out["key"].map(names).fillna(out["key"]).astype("string") if not names.empty
               else out["key"].astype("string"))
    out["attainment_rate"] = ratio_series(out["bookings_amount"], out["target_amount"])
    out["deal_attainment_rate"] = ratio_series(out["n_won"], out["n_target_deals"])
    share = elapsed_share(ctx)
    out["elapsed_rate"] = np.nan if share is None else share
    out["gap_amount"] = out["target_amount"] - out["bookings_amount"]
    on_track = (out["attainment_rate"] >= out["elapsed_rate"]).astype("boolean")
    out["is_on_track"] = on_track.where(out["attainment_rate"].notna() & out["elapsed_rate"].notna(), pd.NA)
    out = out.sort_values(["attainment_rate", "key"], na_position="last").reset_index(drop=True)
    source = " + ".join(labels) if len(labels) > 1 else labels[0]
    without = int(out["target_amount"].isna().sum())
    return _note(out[ATTAINMENT_COLUMNS], f"Targets of {source}.",
                 f"{without} {level} key{'s' if without != 1 else ''} with bookings but no target." if without
                 else "")


def _plural(n: float, word: str) -> str:
    return f"{n:,.0f} {word}{'' if n == 1 else 's'}"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def describe_attainment(result: pd.DataFrame) -> str:
    """A sentence on who is furthest behind target, and how many are on track."""
    rated = result.dropna(subset=["attainment_rate"]) if not result.empty else result
    if rated.empty:
        return note(result) or "No targets to compare with."
    level = str(rated["level"].iloc[0]).replace("_", " ")
    elapsed = rated["elapsed_rate"].iloc[0]
    worst = rated.sort_values(["attainment_rate", "key"]).iloc[0]
    when = f" with {elapsed:.0%} of the period elapsed" if pd.notna(elapsed) else ""
    if len(rated) == 1:
        on_track = worst["is_on_track"]
        status = "" if pd.isna(on_track) else (": on track" if bool(on_track) else ": behind")
        who = "Bookings" if worst["key"] == "company" else f"{worst['name']}: bookings"
        deals = (f"; {_plural(worst['n_won'], 'deal')} won of {worst['n_target_deals']:,.0f} targeted"
                 if pd.notna(worst["n_target_deals"]) else "")
        return (f"{who} of {worst['bookings_amount']:,.0f} are {worst['attainment_rate']:.0%} of the target "
                f"({worst['target_amount']:,.0f}){when}{status}{deals}.")
    others = rated.drop(index=worst.name)
    n_on = int(rated["is_on_track"].fillna(False).astype(bool).sum())
    low, high = others["attainment_rate"].min(), others["attainment_rate"].max()
    if len(others) == 1:
        rest = f"while {others['name'].iloc[0]} is at {low:.0%}"
    elif round(low, 2) == round(high, 2):
        rest = f"while the other {len(others)} {level}s are all at {low:.0%}"
    else:
        rest = f"while the other {len(others)} {level}s range {low:.0%}–{high:.0%}"
    track = f"; {n_on} of {len(rated)} are on track" if pd.notna(elapsed) else ""
    return (f"{_cap(str(worst['name']))} is furthest behind: {worst['attainment_rate']:.0%} of its target{when} "
            f"(gap {worst['gap_amount']:,.0f}), {rest}{track}.")


# ----------------------------------------------------------------------------- trends and seasonality

def _target_key(ctx_region: str) -> tuple[str, str]:
    return ("company", "company") if ctx_region == "all" else ("region", ctx_region)


def bookings_trend(opportunities: pd.DataFrame, freq: str = "month", *, targets: pd.DataFrame | None = None,
                   region: str = "all", start: pd.Timestamp | None = None,
                   end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Bookings per day/week/month/quarter/year with target, same period last year and previous period.

    One row per bucket from `start` (default: the first close date in the frame) to `end` (exclusive,
    default: the last close date): period, period_start, bookings_amount, n_won, target_amount (the company's,
    or `region`'s, when targets exist for the bucket), attainment_rate, last_year_amount, yoy_rate (growth vs
    last year), previous_amount, pop_rate (growth vs the previous bucket), is_partial (the bucket
    runs past `end` or the data). Comparisons outside the data are NaN, never 0.
    """
    _period_buckets(pd.Series([], dtype="datetime64[us]"), freq)
    columns = ["period", "period_start", "bookings_amount", "n_won", "target_amount", "attainment_rate",
               "last_year_amount", "yoy_rate", "previous_amount", "pop_rate", "is_partial"]
    closed = opportunities["closed_at"].dropna() if not opportunities.empty else pd.Series(dtype="datetime64[us]")
    first = pd.Timestamp(start) if start is not None else (closed.min() if len(closed) else None)
    last = (pd.Timestamp(end) - pd.Timedelta(microseconds=1)) if end is not None else (
        closed.max() if len(closed) else None)
    if first is None or last is None or pd.isna(first) or pd.isna(last) or last < first:
        return _note(pd.DataFrame(columns=columns), "No closed opportunities in the data.")
    index = pd.period_range(first, last, freq=FREQS[freq])
    won = opportunities.loc[won_mask(opportunities) & opportunities["closed_at"].notna()]
    buckets = _period_buckets(won["closed_at"], freq)
    agg = won.groupby(buckets)["amount"].agg(["sum", "size"]).reindex(index)
    out = pd.DataFrame({"period": _label(index, freq), "period_start": index.start_time.astype("datetime64[us]"),
                        "bookings_amount": agg["sum"].fillna(0.0).to_numpy(),
                        "n_won": agg["size"].fillna(0).astype("int64").to_numpy()})
    amount = pd.Series(out["bookings_amount"].to_numpy(), index=index)
    ly_index = (index.start_time - pd.DateOffset(years=1)).to_period(FREQS[freq])
    out["target_amount"] = np.nan
    if targets is not None and freq in ("month", "quarter", "year"):
        level, key = _target_key(region)
        mine = targets.loc[(targets["level"] == level) & (targets["key"] == key)]
        per_label = mine.groupby("period")["target_amount"].sum()
        values = []
        for p, label in zip(index, out["period"], strict=True):
            labels = target_periods(mine, p.start_time, (p + 1).start_time, label)
            values.append(float(per_label.reindex(labels).sum()) if labels else np.nan)
        out["target_amount"] = values
    out["attainment_rate"] = ratio_series(out["bookings_amount"], out["target_amount"])
    out["last_year_amount"] = amount.reindex(ly_index).to_numpy()
    out["yoy_rate"] = ratio_series(out["bookings_amount"], out["last_year_amount"]) - 1
    out["previous_amount"] = amount.shift(1).to_numpy()
    out["pop_rate"] = ratio_series(out["bookings_amount"], out["previous_amount"]) - 1
    covered = pd.Timestamp(end) if end is not None else last.normalize() + pd.Timedelta(days=1)
    out["is_partial"] = (index + 1).start_time > covered
    missing = "" if targets is not None and freq in ("month", "quarter", "year") else (
        "Targets are set per month and quarter: none for weeks or days." if targets is not None
        else "No targets table.")
    return _note(out[columns], missing)


def describe_bookings_trend(result: pd.DataFrame) -> str:
    """A sentence on the latest bucket: bookings vs target, last year and the previous bucket."""
    if result.empty:
        return note(result) or "No bookings to show."
    row = result.iloc[-1]
    partial = " (so far: the period is not over)" if row["is_partial"] else ""
    parts = [f"{row['period']}{partial}: bookings {row['bookings_amount']:,.0f} from {row['n_won']:,} won deals"]
    if pd.notna(row["attainment_rate"]):
        parts.append(f"{row['attainment_rate']:.0%} of target ({row['target_amount']:,.0f})")
    if pd.notna(row["yoy_rate"]):
        parts.append(f"{row['yoy_rate']:+.0%} vs last year")
    if pd.notna(row["pop_rate"]):
        parts.append(f"{row['pop_rate']:+.0%} vs the previous period")
    return ", ".join(parts) + "."


def quarterly_seasonality(quarterly_trend: pd.DataFrame) -> pd.DataFrame:
    """Per complete calendar year of a quarterly `bookings_trend`: Q1–Q4 bookings and q4_ratio = Q4 ÷ mean(Q1–Q3)."""
    columns = ["year", "q1_amount", "q2_amount", "q3_amount", "q4_amount", "q4_ratio"]
    if quarterly_trend.empty:
        return pd.DataFrame(columns=columns)
    starts = pd.to_datetime(quarterly_trend["period_start"])
    if not (starts.dt.month.isin([1, 4, 7, 10]) & (starts.dt.day == 1)).all():
        raise ParameterError("quarterly_trend: expects the result of bookings_trend(..., freq='quarter')")
    table = pd.DataFrame({"year": starts.dt.year, "quarter": starts.dt.quarter,
                          "amount": quarterly_trend["bookings_amount"].to_numpy()})
    wide = table.pivot_table(index="year", columns="quarter", values="amount", aggfunc="sum")
    wide = wide.reindex(columns=[1, 2, 3, 4]).dropna()
    out = pd.DataFrame({"year": wide.index.astype("int64"),
                        **{f"q{q}_amount": wide[q].to_numpy() for q in (1, 2, 3, 4)}})
    out["q4_ratio"] = ratio_series(out["q4_amount"], out[["q1_amount", "q2_amount", "q3_amount"]].mean(axis=1))
    return out[columns].reset_index(drop=True)


def describe_seasonality(result: pd.DataFrame) -> str:
    """A sentence on the Q4 peak (or its absence) across complete years."""
    rated = result.dropna(subset=["q4_ratio"]) if not result.empty else result
    if rated.empty:
        return "No complete calendar year in the history: seasonality cannot be judged yet."
    years = ", ".join(f"{int(y)}: {r:.2f}×" for y, r in zip(rated["year"], rated["q4_ratio"], strict=True))
    mean = rated["q4_ratio"].mean()
    if len(rated) == 1:
        year, value = int(rated["year"].iloc[0]), float(rated["q4_ratio"].iloc[0])
        return (f"In {year}, the only complete year, Q4 bookings were {value:.2f}× the Q1–Q3 average; one year "
                "is too little to call it a seasonal pattern.")
    if (rated["q4_ratio"] > 1.2).all():
        return (f"Q4 is the peak every year: bookings run at {mean:.1f}× the Q1–Q3 average ({years}) — "
                "plan pipeline, capacity and quarterly targets for it.")
    return f"No consistent Q4 peak: Q4 bookings vs the Q1–Q3 average were {years}."


# --------------------------------------------------------------------------------------- deal size

def deal_size(opportunities: pd.DataFrame, ctx: KpiContext, by: str = "product_line",
              dims: Frames | None = None) -> pd.DataFrame:
    """Average and median won-deal amount per segment (product, product_line, size_band, industry, region,
    team, rep or all) for deals won in the period: n_won, bookings_amount, avg_deal_amount,
    median_deal_amount, share_rate (of the period's bookings). Size band and industry come from the deal's
    account; deals without an account are left out and counted in the note."""
    dims = dims or {}
    won = won_in_period(opportunities, ctx)
    placed, column, dropped, why = _by_segment(won, by, dims)
    grouped = placed.groupby(column)["amount"]
    out = pd.DataFrame({"n_won": grouped.size(), "bookings_amount": grouped.sum(),
                        "avg_deal_amount": grouped.mean(), "median_deal_amount": grouped.median()})
    out = out.reset_index().astype({column: "string"})
    out["share_rate"] = ratio_series(out["bookings_amount"], pd.Series(out["bookings_amount"].sum(), index=out.index))
    out = _with_names(out, column, dims).sort_values(["avg_deal_amount", column], ascending=[False, True])
    cols = [column, "name", "n_won", "bookings_amount", "avg_deal_amount", "median_deal_amount", "share_rate"]
    return _note(out[cols].reset_index(drop=True), why, n_excluded=dropped)


def deal_size_trend(opportunities: pd.DataFrame, freq: str = "quarter", by: str = "product_line",
                    dims: Frames | None = None) -> pd.DataFrame:
    """Average won-deal amount per bucket (by `closed_at`) and segment: period, <segment key>, name, n_won,
    avg_deal_amount (long format, for lines per segment). Deals without an account are left out for
    size_band/industry and counted in the note."""
    dims = dims or {}
    won = opportunities.loc[won_mask(opportunities) & opportunities["closed_at"].notna()] \
        if not opportunities.empty else opportunities
    buckets = _period_buckets(won["closed_at"], freq) if not won.empty else pd.Series(dtype="object")
    placed, column, dropped, why = _by_segment(won.assign(_bucket=buckets), by, dims)
    grouped = placed.groupby(["_bucket", column])["amount"]
    out = pd.DataFrame({"n_won": grouped.size(), "avg_deal_amount": grouped.mean()}).reset_index()
    out.insert(0, "period", _label(pd.PeriodIndex(out["_bucket"]), freq) if len(out) else [])
    out = _with_names(out.drop(columns="_bucket").astype({column: "string"}), column, dims)
    out = out.sort_values(["period", column]).reset_index(drop=True)
    return _note(out[["period", column, "name", "n_won", "avg_deal_amount"]], why, n_excluded=dropped)


def describe_deal_size(result: pd.DataFrame) -> str:
    """A sentence comparing the biggest and smallest average deals across segments."""
    if result.empty:
        return note(result) or "No won deals in the period."
    top, low = result.iloc[0], result.iloc[-1]
    overall = result["bookings_amount"].sum() / result["n_won"].sum()
    text = f"Average won deal {overall:,.0f}"
    if len(result) > 1:
        times = ratio(top["avg_deal_amount"], low["avg_deal_amount"]) or 0.0
        # "2.3× less" reads well for big gaps; small gaps read better as a percentage
        gap = f"{times:.1f}× less" if times >= 1.5 else f"{1 - 1 / times:.0%} smaller" if times else "n/a"
        text += (f"; {top['name']} deals are the largest ({top['avg_deal_amount']:,.0f} on "
                 f"{_plural(top['n_won'], 'deal')}), "
                 f"{low['name']} the smallest ({low['avg_deal_amount']:,.0f}, {gap})")
    return text + "." + (f" {note(result)}" if note(result) else "")


# -------------------------------------------------------------------------------------- sales cycle

def _cycle_frame(won: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    dated = won.loc[won["created_at"].notna()]
    days = (dated["closed_at"] - dated["created_at"]).dt.total_seconds() / 86400.0
    return dated.assign(cycle_days=days.to_numpy()), int(len(won) - len(dated))


def _cycle_note(missing: int, why: str) -> str:
    text = (f"{missing:,} won deal{'s' if missing != 1 else ''} without a created date left out."
            if missing else "")
    return " ".join(t for t in (text, why) if t)


def sales_cycle(opportunities: pd.DataFrame, ctx: KpiContext, by: str = "all",
                dims: Frames | None = None) -> pd.DataFrame:
    """Days from creation to win for deals won in the period, per segment (all, product, product_line,
    region, team, rep, size_band, industry): n_won, median_cycle_days, mean_cycle_days, p25_cycle_days,
    p75_cycle_days. Deals without `created_at` are left out and counted in the note."""
    dims = dims or {}
    won = won_in_period(opportunities, ctx)
    cycle, missing = _cycle_frame(won)
    placed, column, dropped, why = _by_segment(cycle, by, dims)
    grouped = placed.groupby(column)["cycle_days"]
    out = pd.DataFrame({"n_won": grouped.size(), "median_cycle_days": grouped.median(),
                        "mean_cycle_days": grouped.mean(), "p25_cycle_days": grouped.quantile(0.25),
                        "p75_cycle_days": grouped.quantile(0.75)})
    out = _with_names(out.reset_index().astype({column: "string"}), column, dims)
    out = out.sort_values(["median_cycle_days", column]).reset_index(drop=True)
    cols = [column, "name", "n_won", "median_cycle_days", "mean_cycle_days", "p25_cycle_days", "p75_cycle_days"]
    return _note(out[cols], _cycle_note(missing, why), n_excluded=missing + dropped)


def sales_cycle_trend(opportunities: pd.DataFrame, freq: str = "quarter", by: str = "all",
                      dims: Frames | None = None) -> pd.DataFrame:
    """Median and mean sales cycle of won deals per bucket of `closed_at` and segment (long format)."""
    dims = dims or {}
    won = opportunities.loc[won_mask(opportunities) & opportunities["closed_at"].notna()] \
        if not opportunities.empty else opportunities
    cycle, missing = _cycle_frame(won)
    buckets = _period_buckets(cycle["closed_at"], freq) if not cycle.empty else pd.Series(dtype="object")
    placed, column, dropped, why = _by_segment(cycle.assign(_bucket=buckets), by, dims)
    grouped = placed.groupby(["_bucket", column])["cycle_days"]
    out = pd.DataFrame({"n_won": grouped.size(), "median_cycle_days": grouped.median(),
                        "mean_cycle_days": grouped.mean()}).reset_index()
    out.insert(0, "period", _label(pd.PeriodIndex(out["_bucket"]), freq) if len(out) else [])
    out = _with_names(out.drop(columns="_bucket").astype({column: "string"}), column, dims)
    out = out.sort_values(["period", column]).reset_index(drop=True)
    return _note(out[["period", column, "name", "n_won", "median_cycle_days", "mean_cycle_days"]],
                 _cycle_note(missing, why), n_excluded=missing + dropped)


def describe_sales_cycle(result: pd.DataFrame) -> str:
    """A sentence on the median cycle and the fastest / slowest segment."""
    if result.empty:
        return note(result) or "No won deals with a created date in the period."
    total = int(result["n_won"].sum())
    if len(result) == 1:
        row = result.iloc[0]
        text = (f"Won deals took a median {row['median_cycle_days']:.0f} days from creation to win "
                f"(mean {row['mean_cycle_days']:.0f}, middle half {row['p25_cycle_days']:.0f}–"
                f"{row['p75_cycle_days']:.0f}) over {total:,} deals.")
    else:
        fast, slow = result.iloc[0], result.iloc[-1]
        text = (f"{_cap(str(slow['name']))} deals take longest to win (median {slow['median_cycle_days']:.0f} days) "
                f"and "
                f"{fast['name']} the shortest ({fast['median_cycle_days']:.0f} days), over {total:,} won deals.")
    return text + (f" {note(result)}" if note(result) else "")


# -------------------------------------------------------------------- contracts, invoices, payments

def _signed(frames: Frames, ctx: KpiContext) -> pd.DataFrame:
    contracts = frames["contracts"]
    return contracts.loc[in_period(contracts["signed_at"], ctx)] if not contracts.empty else contracts


def _in(frames: Frames, table: str, column: str, ctx: KpiContext) -> pd.DataFrame:
    frame = frames[table]
    return frame.loc[in_period(frame[column], ctx)] if not frame.empty else frame


def collections_summary(frames: Frames, ctx: KpiContext) -> pd.DataFrame:
    """One row: contracts signed, invoices issued and payments received in the period (amounts and counts),
    collection_rate (payments ÷ invoiced in the period) and receivable_amount (contract amount − payments
    received by period end on the contracts signed in the period). Tables the source lacks give NaN."""
    row: dict[str, float] = {}
    if "contracts" in frames:
        signed = _signed(frames, ctx)
        row |= {"n_contracts": len(signed), "contract_amount": float(signed["amount"].sum())}
    if "invoices" in frames:
        issued = _in(frames, "invoices", "issued_at", ctx)
        row |= {"n_invoices": len(issued), "invoiced_amount": float(issued["amount"].sum())}
    if "payments" in frames:
        paid = _in(frames, "payments", "received_at", ctx)
        row |= {"n_payments": len(paid), "payments_amount": float(paid["amount"].sum())}
    columns = ["n_contracts", "contract_amount", "n_invoices", "invoiced_amount", "n_payments", "payments_amount",
               "collection_rate", "receivable_amount"]
    out = pd.DataFrame([row]).reindex(columns=columns)
    out["collection_rate"] = ratio(row.get("payments_amount", np.nan), row.get("invoiced_amount", np.nan))
    out["receivable_amount"] = receivable_balance(frames, ctx) if has(frames, "contracts", "payments") else np.nan
    return out.astype("float64")


def receivable_balance(frames: Frames, ctx: KpiContext) -> float | None:
    """What the contracts signed in the period still owe at its end: their amount − payments received
    against them up to the end of the period. None without contracts in the period."""
    signed = _signed(frames, ctx)
    if signed.empty:
        return None
    payments = frames["payments"]
    paid = payments.loc[isin(payments["contract_id"], signed["contract_id"])
                        & (payments["received_at"] < ctx.period_end).fillna(False).astype(bool), "amount"]
    return float(signed["amount"].sum() - paid.sum())


def collections_trend(contracts: pd.DataFrame, invoices: pd.DataFrame | None, payments: pd.DataFrame | None,
                      freq: str = "month") -> pd.DataFrame:
    """Per bucket: contract_amount (by signed_at), invoiced_amount (issued_at), payments_amount (received_at)
    and collection_rate (payments ÷ invoiced of the bucket)."""
    series = {"contract_amount": (contracts, "signed_at"), "invoiced_amount": (invoices, "issued_at"),
              "payments_amount": (payments, "received_at")}
    _period_buckets(pd.Series([], dtype="datetime64[us]"), freq)
    parts = {}
    for name, (frame, column) in series.items():
        if frame is not None and not frame.empty:
            parts[name] = frame.groupby(_period_buckets(frame[column], freq))["amount"].sum()
    columns = ["period", "period_start", *series, "collection_rate"]
    if not parts:
        return pd.DataFrame(columns=columns)
    wide = pd.DataFrame(parts)
    index = pd.period_range(wide.index.min(), wide.index.max(), freq=FREQS[freq])
    wide = wide.reindex(index).reindex(columns=list(series)).fillna(
        {k: 0.0 for k in parts})
    out = pd.DataFrame({"period": _label(index, freq), "period_start": index.start_time.astype("datetime64[us]")})
    for name in series:
        out[name] = wide[name].to_numpy()
    out["collection_rate"] = ratio_series(out["payments_amount"], out["invoiced_amount"])
    return out[columns]


def collections_trend_from(history: Callable[[str, int], pd.DataFrame], n_periods: int = 4,
                           freq: str = "month") -> pd.DataFrame:
    """`collections_trend` over the trailing `n_periods` periods, reading each table with `history(table,
    n_periods)` (e.g. `Slice.history`)."""
    return collections_trend(history("contracts", n_periods), history("invoices", n_periods),
                             history("payments", n_periods), freq)


def describe_collections(result: pd.DataFrame) -> str:
    """A sentence on signed, invoiced, collected and still owed in the period."""
    if result.empty:
        return "No contracts, invoices or payments."
    row = result.iloc[0]
    parts = []
    if pd.notna(row["contract_amount"]):
        parts.append(f"{row['n_contracts']:,.0f} contracts signed for {row['contract_amount']:,.0f}")
    if pd.notna(row["invoiced_amount"]):
        parts.append(f"{row['invoiced_amount']:,.0f} invoiced")
    if pd.notna(row["payments_amount"]):
        parts.append(f"{row['payments_amount']:,.0f} collected")
    text = ", ".join(parts) or "No contract data"
    if pd.notna(row["collection_rate"]):
        text += f" — a collection rate of {row['collection_rate']:.0%} of the amount invoiced"
    if pd.notna(row["receivable_amount"]) and pd.notna(row["contract_amount"]) and row["contract_amount"] > 0:
        text += (f"; the period's contracts still owe {row['receivable_amount']:,.0f} "
                 f"({row['receivable_amount'] / row['contract_amount']:.0%} of their value)")
    return text + "."


def contract_summary(frames: Frames, ctx: KpiContext, top: int = 10) -> pd.DataFrame:
    """The `top` largest contracts signed in the period: contract_id, signed_at, account, rep, product,
    contract_amount, invoiced_amount, paid_amount (by period end), outstanding_amount, paid_rate."""
    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise ParameterError(f"top: {top!r} is not a positive whole number of contracts")
    signed = _signed(frames, ctx)
    columns = ["contract_id", "signed_at", "account", "rep", "product", "contract_amount", "invoiced_amount",
               "paid_amount", "outstanding_amount", "paid_rate"]
    if signed.empty:
        return pd.DataFrame(columns=columns)
    biggest = signed.sort_values(["amount", "contract_id"], ascending=[False, True]).head(top)

    def per_contract(table: str, column: str) -> pd.Series:
        if table not in frames or frames[table].empty:
            return pd.Series(np.nan if table == "invoices" else 0.0, index=biggest["contract_id"])
        frame = frames[table]
        upto = frame.loc[(frame[column] < ctx.period_end).fillna(False).astype(bool)]
        return upto.groupby("contract_id")["amount"].sum().reindex(biggest["contract_id"], fill_value=0.0)

    def name_of(table: str, key: str, via: str) -> pd.Series:
        names = _names(frames, key) if table != "accounts" else (
            frames["accounts"].set_index("account_id")["name"] if "accounts" in frames else pd.Series(dtype="string"))
        return biggest[via].map(names).fillna(biggest[via]).astype("string")

    out = pd.DataFrame({
        "contract_id": biggest["contract_id"].to_numpy(), "signed_at": biggest["signed_at"].to_numpy(),
        "account": name_of("accounts", "account_id", "account_id").to_numpy(),
        "rep": name_of("reps", "rep_id", "owner_rep_id").to_numpy(),
        "product": name_of("products", "product_id", "product_id").to_numpy(),
        "contract_amount": biggest["amount"].to_numpy(dtype="float64"),
        "invoiced_amount": per_contract("invoices", "issued_at").to_numpy(dtype="float64"),
        "paid_amount": per_contract("payments", "received_at").to_numpy(dtype="float64"),
    })
    out["outstanding_amount"] = out["contract_amount"] - out["paid_amount"]
    out["paid_rate"] = ratio_series(out["paid_amount"], out["contract_amount"])
    return out[columns]


def describe_contract_summary(result: pd.DataFrame) -> str:
    """A sentence on the largest contract and how much of the top contracts is still unpaid."""
    if result.empty:
        return "No contracts signed in the period."
    top = result.iloc[0]
    owed = result["outstanding_amount"].sum()
    return (f"The largest contract, {top['contract_id']} with {top['account']} ({top['rep']}), is worth "
            f"{top['contract_amount']:,.0f}, {top['paid_rate']:.0%} paid; these {len(result)} contracts still owe "
            f"{owed:,.0f} ({owed / result['contract_amount'].sum():.0%} of their value).")


# -------------------------------------------------------------------------------------- sales brief

BRIEF_ITEMS: tuple[tuple[str, str, str], ...] = (
    ("new_accounts", "New accounts", "accounts"),
    ("new_contacts", "New contacts", "contacts"),
    ("new_leads", "New leads", "leads"),
    ("new_opportunities", "New opportunities", "opportunities"),
    ("won_deals", "Won deals", "opportunities"),
    ("bookings_amount", "Bookings", "opportunities"),
    ("contract_amount", "Contract amount", "contracts"),
    ("payments_amount", "Payments received", "payments"),
)


def _count_created(frame: pd.DataFrame, ctx: KpiContext, keep: pd.Series | None = None) -> float | None:
    """Rows created in the period (optionally only where `keep`); None when no row has a created date."""
    if frame.empty:
        return 0.0
    if frame["created_at"].isna().all():
        return None  # the source does not record creation dates
    mask = in_period(frame["created_at"], ctx)
    if keep is not None:
        mask &= keep.fillna(False).astype(bool)
    return float(mask.sum())


def _brief_values(frames: Frames, ctx: KpiContext) -> dict[str, float | None]:
    regional = ctx.region != "all"
    values: dict[str, float | None] = {}
    if "accounts" in frames:
        accounts = frames["accounts"]
        values["new_accounts"] = _count_created(accounts, ctx, accounts["region_id"] == ctx.region if regional
                                                else None)
    if "contacts" in frames:
        contacts = frames["contacts"]
        keep = None
        if regional and "accounts" in frames:
            mine = frames["accounts"].loc[(frames["accounts"]["region_id"] == ctx.region).fillna(False), "account_id"]
            keep = isin(contacts["account_id"], mine)
        values["new_contacts"] = _count_created(contacts, ctx, keep)
    for table, item in (("leads", "new_leads"), ("opportunities", "new_opportunities")):
        if table in frames:
            frame = frames[table]
            values[item] = _count_created(frame, ctx, frame["region_id"] == ctx.region if regional else None)
    if "opportunities" in frames:
        won = won_in_period(frames["opportunities"], ctx)
        values |= {"won_deals": float(len(won)), "bookings_amount": float(won["amount"].sum())}
    if "contracts" in frames:
        values["contract_amount"] = float(_signed(frames, ctx)["amount"].sum())
    if "payments" in frames:
        values["payments_amount"] = float(_in(frames, "payments", "received_at", ctx)["amount"].sum())
    return values


def sales_brief(current: Frames, ctx: KpiContext, comparison: Frames, comparison_ctx: KpiContext) -> pd.DataFrame:
    """The period's sales brief: new accounts (created in the period, in the region), new contacts (of the
    region's accounts), new leads, new opportunities, won deals, bookings, contract amount and payments, this
    period vs the comparison period: item, label, value, comparison_value, delta, delta_rate, status
    ("ok" or "needs table X")."""
    now, before = _brief_values(current, ctx), _brief_values(comparison, comparison_ctx)
    rows = []
    for item, label, table in BRIEF_ITEMS:
        value, was = now.get(item), before.get(item)
        status = "ok" if table in current else f"needs table {table}"
        if status == "ok" and value is None:
            status = f"{table} has no dates"
        delta = value - was if value is not None and was is not None else None
        rows.append({"item": item, "label": label, "value": value, "comparison_value": was, "delta": delta,
                     "delta_rate": ratio(delta, was) if delta is not None and was else None, "status": status})
    return pd.DataFrame(rows).astype({"value": "float64", "comparison_value": "float64", "delta": "float64",
                                      "delta_rate": "float64"})


def describe_sales_brief(result: pd.DataFrame) -> str:
    """A sentence listing the brief's biggest moves."""
    known = result.dropna(subset=["delta_rate"])
    if known.empty:
        return "Nothing to compare with the comparison period."
    moves = known.reindex(known["delta_rate"].abs().sort_values(ascending=False).index).head(3)
    parts = [f"{r['label'].lower()} {r['delta_rate']:+.0%} ({r['comparison_value']:,.0f} → {r['value']:,.0f})"
             for _, r in moves.iterrows()]
    missing = result.loc[result["status"] != "ok", "label"].str.lower().tolist()
    tail = f" Not available from this source: {', '.join(missing)}." if missing else ""
    return "Biggest moves vs the comparison period: " + "; ".join(parts) + "." + tail


# -------------------------------------------------------------------------------------------- KPIs

@register_kpi("bookings_amount", label="Bookings", unit="amount", direction="higher", tables=("opportunities",),
              area=AREA, description="Amount of won opportunities closed in the period.")
def kpi_bookings_amount(frames: Frames, ctx: KpiContext) -> float | None:
    won = won_in_period(frames["opportunities"], ctx)
    return float(won["amount"].sum()) if not frames["opportunities"].empty else None


@register_kpi("won_deals", label="Won deals", unit="count", direction="higher", tables=("opportunities",),
              area=AREA, description="Number of opportunities won (closed as won) in the period.")
def kpi_won_deals(frames: Frames, ctx: KpiContext) -> float | None:
    return float(len(won_in_period(frames["opportunities"], ctx))) if not frames["opportunities"].empty else None


@register_kpi("target_attainment", label="Target attainment", unit="rate", direction="higher",
              tables=("opportunities", "targets"), area=AREA, target="region",
              description="Bookings ÷ bookings target of the period, for the slice's region (the company's in "
                          "the 'all' slice); no value when the period has no target.")
def kpi_target_attainment(frames: Frames, ctx: KpiContext) -> float | None:
    targets = frames["targets"]
    labels = target_periods(targets, ctx.period_start, ctx.period_end, ctx.period_label)
    level, key = _target_key(ctx.region)
    mine = targets.loc[targets["period"].isin(labels) & (targets["level"] == level) & (targets["key"] == key)]
    if not labels or mine.empty:
        return None
    bookings = won_in_period(frames["opportunities"], ctx)["amount"].sum()
    return ratio(bookings, mine["target_amount"].sum())


@register_kpi("avg_deal_size", label="Average deal size", unit="amount", direction="higher",
              tables=("opportunities",), area=AREA, description="Average amount of the deals won in the period.")
def kpi_avg_deal_size(frames: Frames, ctx: KpiContext) -> float | None:
    won = won_in_period(frames["opportunities"], ctx)
    return float(won["amount"].mean()) if len(won) else None


@register_kpi("sales_cycle_days", label="Sales cycle", unit="days", direction="lower", tables=("opportunities",),
              area=AREA, description="Median days from creation to win of the deals won in the period (deals "
                                     "without a created date left out).")
def kpi_sales_cycle_days(frames: Frames, ctx: KpiContext) -> float | None:
    cycle, _ = _cycle_frame(won_in_period(frames["opportunities"], ctx))
    return float(cycle["cycle_days"].median()) if len(cycle) else None


@register_kpi("contract_amount", label="Contract amount", unit="amount", direction="higher", tables=("contracts",),
              area=AREA, description="Amount of the contracts signed in the period.")
def kpi_contract_amount(frames: Frames, ctx: KpiContext) -> float | None:
    return float(_signed(frames, ctx)["amount"].sum()) if not frames["contracts"].empty else None


@register_kpi("payments_received", label="Payments received", unit="amount", direction="higher",
              tables=("payments",), area=AREA, description="Payments (回款) received in the period.")
def kpi_payments_received(frames: Frames, ctx: KpiContext) -> float | None:
    paid = _in(frames, "payments", "received_at", ctx)
    return float(paid["amount"].sum()) if not frames["payments"].empty else None


@register_kpi("collection_rate", label="Collection rate", unit="rate", direction="higher",
              tables=("payments", "invoices"), area=AREA,
              description="Payments received in the period ÷ amount invoiced in the period.")
def kpi_collection_rate(frames: Frames, ctx: KpiContext) -> float | None:
    paid = _in(frames, "payments", "received_at", ctx)["amount"].sum()
    return ratio(paid, _in(frames, "invoices", "issued_at", ctx)["amount"].sum())


@register_kpi("receivable_balance", label="Receivable balance", unit="amount", direction="lower",
              tables=("contracts", "payments"), area=AREA,
              description="What the contracts signed in the period still owe at its end: their amount − payments "
                          "received against them.")
def kpi_receivable_balance(frames: Frames, ctx: KpiContext) -> float | None:
    return receivable_balance(frames, ctx)
