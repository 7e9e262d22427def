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
them, and returns a tidy frame; a frame's ``attrs["note"]`` says what was left out and why. A table the source
lacks gives missing values ("–"), never zeros. A notebook calls the analyses with the slice
(`crmlens.analysis.on_slice`): ``perf.target_attainment(s, "region")``; a source without a needed table
(including the table the chosen segment needs, e.g. `accounts` for ``by="size_band"``) shows the "needs
table" note instead. The describe_* functions turn a result into a `crmlens.findings.Finding` written only
from what the numbers support: equal values are not ranked, a year is "complete" only when the data covers
it from its first to its last day, and a table the source lacks is said to be not in this source.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from crmlens import i18n
from crmlens.analysis import is_slice, on_slice
from crmlens.errors import ParameterError
from crmlens.findings import Finding, finding
from crmlens.i18n import N_, _, n_
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
from crmlens.present import register_columns

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
#: Tables a segment (or target level) needs besides the analysis' own: a source without them skips the section.
SEGMENT_TABLES: dict[str, tuple[str, ...]] = {
    "product_line": ("products",),
    "team": ("reps", "teams"),
    "rep": ("reps",),
    "size_band": ("accounts",),
    "industry": ("accounts",),
}
UNKNOWN = N_("(unknown)")  # a data value in the frames (translated in `name`)
ATTAINMENT_COLUMNS = ["level", "key", "name", "bookings_amount", "n_won", "target_amount", "n_target_deals",
                      "attainment_rate", "deal_attainment_rate", "elapsed_rate", "gap_amount", "is_on_track"]
#: The columns of a `target_attainment` result a reader's table shows (the level is the table's title; add
#: "key" where names can clash, e.g. reps).
ATTAINMENT_SHOWN = ["name", "bookings_amount", "n_won", "target_amount", "n_target_deals", "attainment_rate",
                    "deal_attainment_rate", "gap_amount", "is_on_track"]
#: The columns of a `sales_brief` result a reader's table shows.
BRIEF_SHOWN = ["measure", "current_value", "comparison_value", "delta", "delta_rate", "note"]
#: The columns of a `sales_cycle` result a reader's table shows (the segment's name, not its key).
CYCLE_SHOWN = ["name", "n_won", "median_cycle_days", "mean_cycle_days", "p25_cycle_days", "p75_cycle_days"]

#: What a reader sees for each level (singular, plural), translated where shown.
LEVEL_NOUNS: dict[str, tuple[str, str]] = {
    "company": (N_("company"), N_("companies")),
    "region": (N_("region"), N_("regions")),
    "team": (N_("team"), N_("teams")),
    "rep": (N_("rep"), N_("reps")),
    "product_line": (N_("product line"), N_("product lines")),
}
#: Display name of the company row of a company-level attainment in the "all" slice, and of the "all" segment.
COMPANY_NAME = N_("Whole company")
ALL_DEALS_NAME = N_("All won deals")

register_columns({
    # target attainment
    "level": (N_("Level"), "text"),
    "key": (N_("ID"), "text"),
    "bookings_amount": (N_("Bookings"), "amount"),
    "n_won": (N_("Won deals"), "count"),
    "target_amount": (N_("Target"), "amount"),
    "n_target_deals": (N_("Target deals"), "count"),
    "attainment_rate": (N_("Target attainment"), "rate"),
    "deal_attainment_rate": (N_("Deal attainment"), "rate"),
    "elapsed_rate": (N_("Period elapsed"), "rate"),
    "gap_amount": (N_("Gap to target"), "amount"),
    "is_on_track": (N_("On track"), "text"),
    # bookings trend and seasonality
    "period_start": (N_("Period start"), "date"),
    "last_year_amount": (N_("Same period last year"), "amount"),
    "yoy_rate": (N_("Growth vs last year"), "rate"),
    "previous_amount": (N_("Previous period"), "amount"),
    "pop_rate": (N_("Growth vs previous period"), "rate"),
    "is_partial": (N_("Partly covered by the data"), "text"),
    "year": (N_("Year"), "text"),
    "q1_amount": (N_("Q1 bookings"), "amount"),
    "q2_amount": (N_("Q2 bookings"), "amount"),
    "q3_amount": (N_("Q3 bookings"), "amount"),
    "q4_amount": (N_("Q4 bookings"), "amount"),
    "q4_ratio": (N_("Q4 ÷ Q1–Q3 average"), "ratio"),
    # deal size and sales cycle
    "segment": (N_("Segment"), "text"),
    "avg_deal_amount": (N_("Average deal"), "amount"),
    "median_deal_amount": (N_("Median deal"), "amount"),
    "bookings_share": (N_("Share of bookings"), "share"),
    "median_cycle_days": (N_("Median sales cycle"), "days"),
    "mean_cycle_days": (N_("Mean sales cycle"), "days"),
    "p25_cycle_days": (N_("Sales cycle, 25th percentile"), "days"),
    "p75_cycle_days": (N_("Sales cycle, 75th percentile"), "days"),
    # contracts, invoices, payments
    "n_contracts": (N_("Contracts signed"), "count"),
    "contract_amount": (N_("Contract amount"), "amount"),
    "n_invoices": (N_("Invoices issued"), "count"),
    "invoiced_amount": (N_("Invoiced"), "amount"),
    "n_payments": (N_("Payments"), "count"),
    "payments_amount": (N_("Payments received"), "amount"),
    "collection_rate": (N_("Collection rate"), "rate"),
    "receivable_amount": (N_("Receivable"), "amount"),
    "contract_id": (N_("Contract"), "text"),
    "signed_at": (N_("Signed"), "date"),
    "paid_amount": (N_("Paid by period end"), "amount"),
    "outstanding_amount": (N_("Outstanding"), "amount"),
    "paid_rate": (N_("Paid"), "rate"),
    # sales brief (values are counts or amounts, both shown as whole numbers)
    "item": (N_("Item"), "text"),
    "measure": (N_("Measure"), "text"),
    "current_value": (N_("This period"), "count"),
    "comparison_value": (N_("Comparison period"), "count"),
    "delta": (N_("Change"), "count"),
    "delta_rate": (N_("Relative change"), "rate"),
})


# ------------------------------------------------------------------------------------------- helpers

def _note(frame: pd.DataFrame, *parts: str, n_excluded: int | None = None) -> pd.DataFrame:
    frame.attrs["note"] = _sentences(*parts)
    if n_excluded is not None:
        frame.attrs["n_excluded"] = n_excluded
    return frame


def note(result: pd.DataFrame) -> str:
    """The note a result carries (what was left out and why, in the language it was computed in), or ''."""
    return str(result.attrs.get("note", "")) if isinstance(result, pd.DataFrame) else ""


def _pct(value: float) -> str:
    return i18n.format_number(value, "rate", digits=0)


def _amount(value: float) -> str:
    return i18n.format_number(value, "amount")


def _count(value: float) -> str:
    return i18n.format_number(value, "count")


def _days(value: float) -> str:
    return i18n.format_number(value, "days", digits=0)


def _times(value: float, digits: int = 2) -> str:
    return i18n.format_number(value, "ratio", digits=digits)


def _join(items: Iterable[str]) -> str:
    """Names in a sentence ("A, B" / "A、B")."""
    return _(", ").join(str(i) for i in items)


def _sentences(*texts: str) -> str:
    """Sentences one after the other (a space between them in English, none in Chinese)."""
    return ("" if i18n.current() == "zh" else " ").join(t for t in texts if t)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _shown_names(result: pd.DataFrame, key: str | None = None) -> pd.DataFrame:
    """`result` with `name` as readers see it in sentences: the id added where several ids share a name ("Qiang
    He (R0002)"), as the charts label them (`crmlens.charts.display_names`). `key` defaults to the column just
    before ``name`` (the segment key of a per-segment result)."""
    from crmlens.charts import display_names

    columns = list(result.columns)
    if key is None and "name" in columns and columns.index("name") > 0:
        key = columns[columns.index("name") - 1]
    if key is None or key not in result or result.empty:
        return result
    return result.assign(name=display_names(result[key], result["name"]).to_numpy())


def _noun(level: str, n: int) -> str:
    """The level's noun for `n` items, in the language in use ("team", "teams")."""
    singular, plural = LEVEL_NOUNS.get(level, (level.replace("_", " "), level.replace("_", " ")))
    return _(singular if n == 1 else plural)


def _shown_equal(a: float, b: float, scale: float = 100.0) -> bool:
    """True when `a` and `b` read the same at the precision shown (whole percent by default)."""
    return round(float(a) * scale) == round(float(b) * scale)


def _period_of(ctx: KpiContext) -> Period:
    return Period(label=ctx.period_label or "period", start=ctx.period_start, end=ctx.period_end, kind="range")


def elapsed_share(ctx: KpiContext) -> float | None:
    """Share (0–1) of the context's period elapsed at its as-of time; None without an as-of time."""
    if ctx.as_of is None:
        return None
    return _period_of(ctx).elapsed_share(ctx.as_of)


def _on_slice_by(argument: str, *needs: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`crmlens.analysis.on_slice` for an analysis whose segment (`argument`: ``by`` or ``level``, the first
    argument after the slice) needs a table of its own (`SEGMENT_TABLES`): ``deal_size(s, "size_band")`` on a
    source without `accounts` shows the "needs table" note and returns None, like a missing table of `needs`."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        sliced = on_slice(*needs)(fn)
        default = inspect.signature(fn).parameters[argument].default

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if args and is_slice(args[0]):
                s = args[0]
                chosen = kwargs.get(argument, args[1] if len(args) > 1 else default)
                missing = s.missing(*needs, *SEGMENT_TABLES.get(str(chosen), ()))
                if missing:
                    from crmlens import notebook

                    notebook.needs(s, *missing)
                    return None
            return sliced(*args, **kwargs)

        wrapper.needs = needs  # type: ignore[attr-defined]
        wrapper.frame_level = fn  # type: ignore[attr-defined]
        return wrapper

    return decorate


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
    why = n_("{n} won deal without an account left out.", "{n} won deals without an account left out.",
             no_account) if no_account else ""
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
    """`frame` with a `name` column: the key's display name (the key where none is known; "All won deals"
    for the "all" segment, "(unknown)" translated)."""
    names = _names(dims, column)
    shown = frame[column].map(names) if not names.empty else pd.Series(pd.NA, index=frame.index)
    shown = shown.fillna(frame[column]).astype("string")
    if column == "segment":
        shown = shown.where(frame[column] != "all", _(ALL_DEALS_NAME))
    shown = shown.where(frame[column] != UNKNOWN, _(UNKNOWN))
    return frame.assign(name=shown.astype("string"))


def _period_buckets(times: pd.Series, freq: str) -> pd.Series:
    if freq not in FREQS:
        raise ParameterError(f"freq: {freq!r} is not a time grain; use one of {', '.join(FREQS)}")
    return times.dt.to_period(FREQS[freq])


def _label(periods: pd.PeriodIndex, freq: str) -> list[str]:
    return bucket(pd.Series(periods.start_time), freq).tolist()


# --------------------------------------------------------------------------------- target attainment

@_on_slice_by("level", "opportunities", "targets")
def target_attainment(opportunities: pd.DataFrame, dims: Frames, ctx: KpiContext,
                      level: str = "company") -> pd.DataFrame:
    """Bookings and won deals vs target per key of `level` (company, region, team, rep, product_line).

    One row per key with a target or with bookings: level, key (the id: region_id, team_id, rep_id, product
    line; "company"), name, bookings_amount, n_won, target_amount, n_target_deals, attainment_rate (bookings ÷
    target), deal_attainment_rate, elapsed_rate (share of the period elapsed at the as-of time), gap_amount
    (target − bookings) and is_on_track (attainment ≥ elapsed share). In a region slice, teams and reps are
    those of the region, and the company level is the region's own target; product-line targets are
    company-wide and are only compared in the "all" slice.
    """
    check_choice("level", level, LEVELS)
    targets = dims.get("targets")
    empty = pd.DataFrame(columns=ATTAINMENT_COLUMNS)
    if targets is None:
        return _note(empty, _("This source has no targets table."))
    labels = target_periods(targets, ctx.period_start, ctx.period_end, ctx.period_label)
    if not labels:
        return _note(empty, _("No targets for {period}: targets are set per month and quarter, and this period "
                              "is not made of whole months.", period=ctx.period_label or _("this period")))
    regional = ctx.region != "all"
    if regional and level == "product_line":
        return _note(empty, _("Product-line targets are set for the whole company; compare them in the 'all' "
                              "slice."))
    won = won_in_period(opportunities, ctx)
    if level == "company":
        actual_key = pd.Series(ctx.region if regional else "company", index=won.index, dtype="string")
        target_level, wanted = ("region", [ctx.region]) if regional else ("company", ["company"])
    elif level == "product_line":
        actual_key = _segment_keys(won, "product_line", dims)[0]
        target_level, wanted = level, None
    else:
        actual_key = _segment_keys(won, level, dims)[0]
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
    out["key"] = out["key"].astype("string")
    out.insert(0, "level", level)
    name_col = {"region": "region_id", "team": "team_id", "rep": "rep_id",
                "company": "region_id" if regional else ""}.get(level, "")
    names = _names(dims, name_col) if name_col else pd.Series(dtype="string")
    shown = out["key"].map(names).fillna(out["key"]) if not names.empty else out["key"]
    if level == "company" and not regional:
        shown = pd.Series(_(COMPANY_NAME), index=out.index)
    out.insert(2, "name", shown.astype("string"))
    out["attainment_rate"] = ratio_series(out["bookings_amount"], out["target_amount"])
    out["deal_attainment_rate"] = ratio_series(out["n_won"], out["n_target_deals"])
    share = elapsed_share(ctx)
    out["elapsed_rate"] = np.nan if share is None else share
    out["gap_amount"] = out["target_amount"] - out["bookings_amount"]
    on_track = (out["attainment_rate"] >= out["elapsed_rate"]).astype("boolean")
    out["is_on_track"] = on_track.where(out["attainment_rate"].notna() & out["elapsed_rate"].notna(), pd.NA)
    out = out.sort_values(["attainment_rate", "key"], na_position="last").reset_index(drop=True)
    source = " + ".join(labels)
    without = int(out["target_amount"].isna().sum())
    return _note(out[ATTAINMENT_COLUMNS], _("Targets of {periods}.", periods=source),
                 n_("{n} of them has bookings but no target.", "{n} of them have bookings but no target.",
                    without) if without else "")


def _attainment_severity(pace: float | None, closed: bool) -> tuple[str, float]:
    """(severity, weight) of the worst attainment's pace (attainment ÷ elapsed share): far behind is act
    while the period is open (watch once it is over: nothing can be done in it any more)."""
    if pace is None or pd.isna(pace):
        return "info", 0.0
    if pace < 0.8:
        return ("watch" if closed else "act"), min(1.0, 1.0 - pace)
    if pace < 1.0:
        return "watch", 1.0 - pace
    return "good", min(1.0, pace - 1.0) * 0.5


def _pace(rate: float, elapsed: float) -> float | None:
    if pd.isna(elapsed) or pd.isna(rate):
        return None
    return float(rate) / float(elapsed) if elapsed > 0 else None


def describe_attainment(result: pd.DataFrame) -> Finding | None:
    """Who is furthest behind target (equal attainments are not ranked), and how many are on track."""
    rated = result.dropna(subset=["attainment_rate"]) if not result.empty else result
    if rated.empty:
        return finding(note(result) or _("No targets to compare with."), "info", kpi="target_attainment")
    level = str(rated["level"].iloc[0])
    elapsed = rated["elapsed_rate"].iloc[0]
    has_elapsed = pd.notna(elapsed)
    closed = bool(has_elapsed and elapsed >= 1.0)
    rated = _shown_names(rated.sort_values(["attainment_rate", "key"]), "key")
    if len(rated) == 1:
        row = rated.iloc[0]
        values = {"who": row["name"], "bookings": _amount(row["bookings_amount"]),
                  "rate": _pct(row["attainment_rate"]), "target": _amount(row["target_amount"]),
                  "elapsed": _pct(elapsed) if has_elapsed else ""}
        on_track = row["is_on_track"]
        if not has_elapsed or pd.isna(on_track):
            text = _("{who}: bookings of {bookings} are {rate} of the target ({target}).", **values)
        elif bool(on_track):
            text = _("{who}: bookings of {bookings} are {rate} of the target ({target}) with {elapsed} of the "
                     "period elapsed: on track.", **values)
        else:
            text = _("{who}: bookings of {bookings} are {rate} of the target ({target}) with {elapsed} of the "
                     "period elapsed: behind.", **values)
        if pd.notna(row["n_target_deals"]):
            text = _sentences(text, n_("{n} deal won of {targeted} targeted.",
                                       "{n} deals won of {targeted} targeted.", int(row["n_won"]),
                                       targeted=_count(row["n_target_deals"])))
        severity, weight = _attainment_severity(_pace(row["attainment_rate"], elapsed), closed)
        return finding(text, severity, _attainment_advice(severity, closed, rated, elapsed),
                       kpi="target_attainment", weight=weight)
    n_on = int(rated["is_on_track"].fillna(False).astype(bool).sum())
    low = rated["attainment_rate"].iloc[0]
    worst = rated.loc[[_shown_equal(r, low) for r in rated["attainment_rate"]]]
    others = rated.drop(index=worst.index)
    track = {"on": _count(n_on), "total": _count(len(rated)), "elapsed": _pct(elapsed) if has_elapsed else ""}
    if others.empty:  # every key at the same attainment (as shown): nobody is furthest behind
        values = {"n": _count(len(rated)), "levels": _noun(level, len(rated)), "rate": _pct(low), **track}
        text = (_("All {n} {levels} are at {rate} of their targets with {elapsed} of the period elapsed; {on} of "
                  "{total} are on track.", **values) if has_elapsed else
                _("All {n} {levels} are at {rate} of their targets.", **values))
        severity, weight = _attainment_severity(_pace(low, elapsed), closed)
        advice = ""
        if severity == "act":
            advice = _("Review the pipeline coverage of every {level} for the rest of the period: all are "
                       "behind the elapsed share of the period.", level=_noun(level, 1))
        return finding(text, severity, advice, kpi="target_attainment", weight=weight)
    o_low, o_high = others["attainment_rate"].min(), others["attainment_rate"].max()
    if len(others) == 1:
        rest = _("while {name} is at {rate}", name=others["name"].iloc[0], rate=_pct(o_low))
    elif _shown_equal(o_low, o_high):
        rest = _("while the other {n} {levels} are all at {rate}", n=_count(len(others)),
                 levels=_noun(level, len(others)), rate=_pct(o_low))
    else:
        rest = _("while the other {n} {levels} range from {low} to {high}", n=_count(len(others)),
                 levels=_noun(level, len(others)), low=_pct(o_low), high=_pct(o_high))
    if len(worst) == 1:
        row = worst.iloc[0]
        values = {"name": _cap(str(row["name"])), "rate": _pct(low), "gap": _amount(row["gap_amount"]),
                  "rest": rest, **track}
        text = (_("{name} is furthest behind: {rate} of its target with {elapsed} of the period elapsed (gap "
                  "{gap}), {rest}; {on} of {total} are on track.", **values) if has_elapsed else
                _("{name} is furthest behind: {rate} of its target (gap {gap}), {rest}.", **values))
    else:
        values = {"names": _join(worst["name"]), "n": _count(len(worst)), "rate": _pct(low), "rest": rest, **track}
        text = (_("{names} are furthest behind, each at {rate} of their targets with {elapsed} of the period "
                  "elapsed, {rest}; {on} of {total} are on track.", **values) if has_elapsed else
                _("{names} are furthest behind, each at {rate} of their targets, {rest}.", **values))
    severity, weight = _attainment_severity(_pace(low, elapsed), closed)
    return finding(text, severity, _attainment_advice(severity, closed, worst, elapsed),
                   kpi="target_attainment", weight=weight)


def _attainment_advice(severity: str, closed: bool, behind: pd.DataFrame, elapsed: float) -> str:
    """The recommendation for the furthest behind (one row or several tied): review the pipeline while the
    period is open and far behind, the miss once it is over and at least 10% short of the pace."""
    gap = behind["gap_amount"].sum()
    pace = _pace(behind["attainment_rate"].iloc[0], elapsed)
    if severity not in ("act", "watch") or pd.isna(gap) or gap <= 0 or pace is None or pace >= 0.9:
        return ""
    names = [_("the company") if k == "company" else str(n) for k, n in zip(behind["key"], behind["name"],
                                                                           strict=True)]
    who, rate = _join(names), _pct(behind["attainment_rate"].iloc[0])
    if closed:
        return n_("Review with {who} why the period closed at {rate} of target before the next period's targets "
                  "are set.", "Review with {who} why the period closed at {rate} of their targets before the next "
                  "period's targets are set.", len(names), who=who, rate=rate)
    if severity == "act":
        return n_("Review {who}'s pipeline coverage for the rest of the period: {gap} of the target is still "
                  "open.", "Review the pipeline coverage of {who} for the rest of the period: {gap} of their "
                  "targets is still open.", len(names), who=who, gap=_amount(gap))
    return ""


# ----------------------------------------------------------------------------- trends and seasonality

def _target_key(ctx_region: str) -> tuple[str, str]:
    return ("company", "company") if ctx_region == "all" else ("region", ctx_region)


def _data_start(opportunities: pd.DataFrame) -> pd.Timestamp | None:
    """The earliest time the opportunities record (created or closed): the data covers time from there."""
    times = [opportunities[c].min() for c in ("created_at", "closed_at") if c in opportunities]
    times = [t for t in times if pd.notna(t)]
    return min(times) if times else None


def bookings_trend(opportunities: pd.DataFrame, freq: str = "month", *, targets: pd.DataFrame | None = None,
                   region: str = "all", start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                   data_end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Bookings per day/week/month/quarter/year with target, same period last year and previous period.

    One row per bucket from `start` (default: the first close date in the frame) to `end` (exclusive,
    default: the last close date): period, period_start, bookings_amount, n_won, target_amount (the company's,
    or `region`'s, when targets exist for the bucket), attainment_rate, last_year_amount, yoy_rate (growth vs
    last year), previous_amount, pop_rate (growth vs the previous bucket), is_partial (the data does not cover
    the whole bucket: it starts after the bucket's first day — `start`, else the earliest created/closed time
    of the frame — or ends before its last day: `end`, `data_end` (the data's as-of time) or the last close
    date). Buckets after the data's end have no bookings (NaN, not 0); growth rates compare only buckets the
    data covers fully; comparisons outside the data are NaN, never 0.
    """
    _period_buckets(pd.Series([], dtype="datetime64[us]"), freq)
    columns = ["period", "period_start", "bookings_amount", "n_won", "target_amount", "attainment_rate",
               "last_year_amount", "yoy_rate", "previous_amount", "pop_rate", "is_partial"]
    closed = opportunities["closed_at"].dropna() if not opportunities.empty else pd.Series(dtype="datetime64[us]")
    first = pd.Timestamp(start) if start is not None else (closed.min() if len(closed) else None)
    last = (pd.Timestamp(end) - pd.Timedelta(microseconds=1)) if end is not None else (
        closed.max() if len(closed) else None)
    if first is None or last is None or pd.isna(first) or pd.isna(last) or last < first:
        return _note(pd.DataFrame(columns=columns), _("No closed opportunities in the data."))
    index = pd.period_range(first, last, freq=FREQS[freq])
    won = opportunities.loc[won_mask(opportunities) & opportunities["closed_at"].notna()]
    buckets = _period_buckets(won["closed_at"], freq)
    agg = won.groupby(buckets)["amount"].agg(["sum", "size"]).reindex(index)
    covered_from = pd.Timestamp(start) if start is not None else (_data_start(opportunities) or first)
    covered_to = pd.Timestamp(end) if end is not None else last.normalize() + pd.Timedelta(days=1)
    if data_end is not None and pd.notna(data_end):
        covered_to = min(covered_to, pd.Timestamp(data_end))
    starts, ends = index.start_time, (index + 1).start_time
    partial = np.asarray((starts < covered_from) | (ends > covered_to))
    beyond = np.asarray(starts >= covered_to)  # after the data's end: unknown, not zero
    out = pd.DataFrame({"period": _label(index, freq), "period_start": starts.astype("datetime64[us]"),
                        "bookings_amount": agg["sum"].fillna(0.0).to_numpy(),
                        "n_won": pd.array(agg["size"].fillna(0).astype("int64").to_numpy(), dtype="Int64")})
    out.loc[beyond, "bookings_amount"] = np.nan
    out.loc[beyond, "n_won"] = pd.NA
    amount = pd.Series(out["bookings_amount"].to_numpy(), index=index)
    full = amount.where(~partial)  # only buckets the data covers fully are compared
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
    out["last_year_amount"] = full.reindex(ly_index).to_numpy()
    out["yoy_rate"] = (ratio_series(out["bookings_amount"], out["last_year_amount"]) - 1).where(~partial)
    out["previous_amount"] = full.shift(1).to_numpy()
    out["pop_rate"] = (ratio_series(out["bookings_amount"], out["previous_amount"]) - 1).where(~partial)
    out["is_partial"] = partial
    missing = "" if targets is not None and freq in ("month", "quarter", "year") else (
        _("Targets are set per month and quarter: none for weeks or days.") if targets is not None
        else _("No targets table."))
    out = _note(out[columns], missing)
    out.attrs |= {"covered_from": covered_from, "covered_to": covered_to}
    return out


@on_slice("opportunities")
def bookings_over_time(s: Any, freq: str = "month", n_periods: int = 1) -> pd.DataFrame:
    """`bookings_trend` of the slice per `freq` bucket: the `n_periods` periods ending with the slice's period
    (1: the period itself, e.g. week by week), with the slice's targets, up to the period's end and covered by
    the data up to its as-of time."""
    if n_periods == 1:
        return bookings_trend(s.tables["opportunities"], freq, targets=s.tables.get("targets"),
                              region=s.params.region, start=s.period.start, end=s.period.end, data_end=s.as_of)
    return bookings_trend(s.history("opportunities", n_periods), freq, targets=s.tables.get("targets"),
                          region=s.params.region, end=s.period.end, data_end=s.as_of)


def _bucket_sentence(row: pd.Series) -> str:
    """One bucket of a bookings trend: bookings, and vs target, last year and the previous bucket."""
    parts = [n_("{period}: bookings {amount} from {n} won deal", "{period}: bookings {amount} from {n} won deals",
                int(row["n_won"]), period=row["period"], amount=_amount(row["bookings_amount"]))]
    if pd.notna(row["attainment_rate"]):
        parts.append(_("{rate} of target ({target})", rate=_pct(row["attainment_rate"]),
                       target=_amount(row["target_amount"])))
    if pd.notna(row["yoy_rate"]):
        parts.append(_("{change} vs last year", change=i18n.format_number(row["yoy_rate"], "rate", signed=True,
                                                                         digits=0)))
    if pd.notna(row["pop_rate"]):
        parts.append(_("{change} vs the previous period",
                       change=i18n.format_number(row["pop_rate"], "rate", signed=True, digits=0)))
    return _("{text}.", text=_join(parts))


def describe_bookings_trend(result: pd.DataFrame) -> Finding | None:
    """The latest bucket the data covers fully: bookings vs target, last year and the previous bucket; a
    later bucket the data covers only in part is said "so far", without growth rates (a part of a period is
    not compared with whole ones)."""
    known = result.dropna(subset=["bookings_amount"]) if not result.empty else result
    if known.empty:
        return finding(note(result) or _("No bookings to show."), "info", kpi="bookings_amount")
    complete = known.loc[~known["is_partial"].astype(bool)]
    latest = known.iloc[-1]
    texts = []
    row = complete.iloc[-1] if len(complete) else None
    if row is not None:
        texts.append(_bucket_sentence(row))
    if bool(latest["is_partial"]) and (row is None or latest["period"] != row["period"]):
        values = {"period": latest["period"], "amount": _amount(latest["bookings_amount"]),
                  "rate": _pct(latest["attainment_rate"])}
        if pd.notna(latest["attainment_rate"]):
            so_far = n_("{period} so far (the data covers it only in part): bookings {amount} from {n} won deal, "
                        "{rate} of its target.", "{period} so far (the data covers it only in part): bookings "
                        "{amount} from {n} won deals, {rate} of its target.", int(latest["n_won"]), **values)
        else:
            so_far = n_("{period} so far (the data covers it only in part): bookings {amount} from {n} won deal.",
                        "{period} so far (the data covers it only in part): bookings {amount} from {n} won deals.",
                        int(latest["n_won"]), **values)
        texts.append(so_far)
    severity, weight = "info", 0.0
    if row is not None:
        attainment, growth = row["attainment_rate"], row["yoy_rate"]
        if pd.notna(attainment) and attainment < 0.8:
            severity, weight = "watch", min(1.0, 1.0 - float(attainment))
        elif pd.notna(growth) and growth <= -0.2:
            severity, weight = "watch", min(1.0, -float(growth))
        elif pd.notna(growth) and growth >= 0.2 and (pd.isna(attainment) or attainment >= 1.0):
            severity, weight = "good", min(1.0, float(growth)) * 0.5
    return finding(_sentences(*texts), severity, kpi="bookings_amount", weight=weight)


def quarterly_seasonality(quarterly_trend: pd.DataFrame | None) -> pd.DataFrame | None:
    """Per complete calendar year of a quarterly `bookings_trend`: Q1–Q4 bookings and q4_ratio = Q4 ÷
    mean(Q1–Q3). A year is complete when the data covers all four quarters from the year's first to its last
    day (no quarter `is_partial`, none after the data's end). None (a skipped section) stays None."""
    if quarterly_trend is None:
        return None
    columns = ["year", "q1_amount", "q2_amount", "q3_amount", "q4_amount", "q4_ratio"]
    if quarterly_trend.empty:
        return pd.DataFrame(columns=columns)
    starts = pd.to_datetime(quarterly_trend["period_start"])
    if not (starts.dt.month.isin([1, 4, 7, 10]) & (starts.dt.day == 1)).all() \
            or "is_partial" not in quarterly_trend:
        raise ParameterError("quarterly_trend: expects the result of bookings_trend(..., freq='quarter')")
    covered = ~quarterly_trend["is_partial"].astype(bool).to_numpy() & quarterly_trend["bookings_amount"].notna()
    table = pd.DataFrame({"year": starts.dt.year, "quarter": starts.dt.quarter,
                          "amount": quarterly_trend["bookings_amount"].where(covered).to_numpy()})
    wide = table.pivot_table(index="year", columns="quarter", values="amount", aggfunc="sum", dropna=False)
    wide = wide.reindex(columns=[1, 2, 3, 4])
    complete = table.groupby("year")["amount"].apply(lambda a: a.notna().sum() == 4 and len(a) == 4)
    wide = wide.loc[wide.index.isin(complete[complete].index)]
    out = pd.DataFrame({"year": wide.index.astype("int64"),
                        **{f"q{q}_amount": wide[q].to_numpy(dtype="float64") for q in (1, 2, 3, 4)}})
    out["q4_ratio"] = ratio_series(out["q4_amount"], out[["q1_amount", "q2_amount", "q3_amount"]].mean(axis=1))
    return out[columns].reset_index(drop=True)


def describe_seasonality(result: pd.DataFrame) -> Finding | None:
    """The Q4 peak (or its absence) across the complete years (one year is not a pattern)."""
    rated = result.dropna(subset=["q4_ratio"]) if not result.empty else result
    if rated.empty:
        return finding(_("No complete calendar year in the history: seasonality cannot be judged yet."), "info",
                       kpi="bookings_amount")
    years = _join(_("{year}: {ratio}×", year=int(y), ratio=_times(r))
                  for y, r in zip(rated["year"], rated["q4_ratio"], strict=True))
    mean = float(rated["q4_ratio"].mean())
    if len(rated) == 1:
        return finding(_("In {year}, the only complete year in the data, Q4 bookings were {ratio}× the Q1–Q3 "
                         "average; one year is too little to call it a seasonal pattern.",
                         year=int(rated["year"].iloc[0]), ratio=_times(rated["q4_ratio"].iloc[0])), "info",
                       kpi="bookings_amount", weight=0.1)
    if (rated["q4_ratio"] > 1.2).all():
        return finding(_("Q4 is the peak every year: bookings run at {mean}× the Q1–Q3 average ({years}).",
                         mean=_times(mean, 1), years=years), "info",
                       _("Plan pipeline, capacity and quarterly targets for the Q4 peak."), kpi="bookings_amount",
                       weight=min(1.0, (mean - 1.0) / 2.0))
    return finding(_("No consistent Q4 peak: Q4 bookings vs the Q1–Q3 average were {years}.", years=years), "info",
                   kpi="bookings_amount", weight=0.1)


# --------------------------------------------------------------------------------------- deal size

@_on_slice_by("by", "opportunities")
def deal_size(opportunities: pd.DataFrame, ctx: KpiContext, by: str = "product_line",
              dims: Frames | None = None) -> pd.DataFrame:
    """Average and median won-deal amount per segment (product, product_line, size_band, industry, region,
    team, rep or all) for deals won in the period: <segment key>, name, n_won, bookings_amount,
    avg_deal_amount, median_deal_amount, bookings_share (of the period's bookings). Size band and industry
    come from the deal's account; deals without an account are left out and counted in the note."""
    dims = dims or {}
    won = won_in_period(opportunities, ctx)
    placed, column, dropped, why = _by_segment(won, by, dims)
    grouped = placed.groupby(column)["amount"]
    out = pd.DataFrame({"n_won": grouped.size(), "bookings_amount": grouped.sum(),
                        "avg_deal_amount": grouped.mean(), "median_deal_amount": grouped.median()})
    out = out.reset_index().astype({column: "string"})
    out["bookings_share"] = ratio_series(out["bookings_amount"],
                                         pd.Series(out["bookings_amount"].sum(), index=out.index))
    out = _with_names(out, column, dims).sort_values(["avg_deal_amount", column], ascending=[False, True])
    cols = [column, "name", "n_won", "bookings_amount", "avg_deal_amount", "median_deal_amount", "bookings_share"]
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


@_on_slice_by("by", "opportunities")
def deal_size_over_time(s: Any, by: str = "product_line", freq: str = "quarter", n_periods: int = 16) -> pd.DataFrame:
    """`deal_size_trend` of the slice's `n_periods` periods ending with its period."""
    return deal_size_trend(s.history("opportunities", n_periods), freq, by, s.tables)


def _extremes(result: pd.DataFrame, value: str, scale: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows at the highest and at the lowest `value`, as read at the precision shown (`scale`)."""
    top, low = result[value].max(), result[value].min()
    high_rows = result.loc[[_shown_equal(v, top, scale) for v in result[value]]]
    low_rows = result.loc[[_shown_equal(v, low, scale) for v in result[value]]]
    return high_rows, low_rows


def describe_deal_size(result: pd.DataFrame) -> Finding | None:
    """The average won deal, and the segments with the largest and smallest averages (equal averages are not
    ranked)."""
    if result.empty:
        return finding(note(result) or _("No won deals in the period."), "info", kpi="avg_deal_size")
    result = _shown_names(result)
    overall = _amount(result["bookings_amount"].sum() / result["n_won"].sum())
    weight = 0.0
    if len(result) == 1:
        text = _("Average won deal {amount}.", amount=overall)
    else:
        largest, smallest = _extremes(result, "avg_deal_amount", 1.0)
        if len(largest) == len(result):
            text = _("Average won deal {amount}; all {n} segments average the same ({value}).", amount=overall,
                     n=_count(len(result)), value=_amount(result["avg_deal_amount"].iloc[0]))
        else:
            top, low = float(largest["avg_deal_amount"].iloc[0]), float(smallest["avg_deal_amount"].iloc[0])
            times = ratio(top, low)
            values = {"amount": overall, "largest": _join(largest["name"]), "top": _amount(top),
                      "deals": n_("{n} deal", "{n} deals", int(largest["n_won"].sum())),
                      "smallest": _join(smallest["name"]), "low": _amount(low)}
            if times is None:
                text = _("Average won deal {amount}; {largest} deals are the largest ({top} on {deals}), "
                         "{smallest} the smallest ({low}).", **values)
            else:
                # "2.3× less" reads well for big gaps; small gaps read better as a percentage
                gap = (_("{times}× less", times=_times(times, 1)) if times >= 1.5 else
                       _("{share} smaller", share=_pct(1 - 1 / times)))
                text = _("Average won deal {amount}; {largest} deals are the largest ({top} on {deals}), "
                         "{smallest} the smallest ({low}, {gap}).", gap=gap, **values)
                weight = min(0.5, (times - 1.0) / 8.0)
    extra = note(result)
    return finding(_sentences(text, extra), "info", kpi="avg_deal_size", weight=weight)


# -------------------------------------------------------------------------------------- sales cycle

def _cycle_frame(won: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    dated = won.loc[won["created_at"].notna()]
    days = (dated["closed_at"] - dated["created_at"]).dt.total_seconds() / 86400.0
    return dated.assign(cycle_days=days.to_numpy()), int(len(won) - len(dated))


def _cycle_note(missing: int, why: str) -> str:
    text = n_("{n} won deal without a created date left out.", "{n} won deals without a created date left out.",
              missing) if missing else ""
    return _sentences(text, why)


@_on_slice_by("by", "opportunities")
def sales_cycle(opportunities: pd.DataFrame, ctx: KpiContext, by: str = "all",
                dims: Frames | None = None) -> pd.DataFrame:
    """Days from creation to win for deals won in the period, per segment (all, product, product_line,
    region, team, rep, size_band, industry): <segment key>, name, n_won, median_cycle_days, mean_cycle_days,
    p25_cycle_days, p75_cycle_days. Deals without `created_at` are left out and counted in the note."""
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


@_on_slice_by("by", "opportunities")
def sales_cycle_over_time(s: Any, by: str = "all", freq: str = "quarter", n_periods: int = 16) -> pd.DataFrame:
    """`sales_cycle_trend` of the slice's `n_periods` periods ending with its period."""
    return sales_cycle_trend(s.history("opportunities", n_periods), freq, by, s.tables)


def describe_sales_cycle(result: pd.DataFrame) -> Finding | None:
    """The median cycle, and the slowest and fastest segments (equal medians are not ranked)."""
    if result.empty:
        return finding(note(result) or _("No won deals with a created date in the period."), "info",
                       kpi="sales_cycle_days")
    result = _shown_names(result)
    total = int(result["n_won"].sum())
    weight = 0.0
    if len(result) == 1:
        row = result.iloc[0]
        text = n_("Won deals took a median {median} from creation to win (mean {mean}, middle half {p25}–{p75} "
                  "days) over {n} deal.",
                  "Won deals took a median {median} from creation to win (mean {mean}, middle half {p25}–{p75} "
                  "days) over {n} deals.", total, median=_days(row["median_cycle_days"]),
                  mean=_days(row["mean_cycle_days"]),
                  p25=i18n.format_number(row["p25_cycle_days"], "number", digits=0),
                  p75=i18n.format_number(row["p75_cycle_days"], "number", digits=0))
    else:
        slowest, fastest = _extremes(result, "median_cycle_days", 1.0)
        if len(slowest) == len(result):
            text = n_("Won deals take the same median time to win in every segment ({days}), over {n} won deal.",
                      "Won deals take the same median time to win in every segment ({days}), over {n} won deals.",
                      total, days=_days(result["median_cycle_days"].iloc[0]))
        else:
            slow, fast = float(slowest["median_cycle_days"].iloc[0]), float(fastest["median_cycle_days"].iloc[0])
            text = _cap(n_("{slow} deals take longest to win (median {slow_days}) and {fast} the shortest "
                           "({fast_days}), over {n} won deal.",
                           "{slow} deals take longest to win (median {slow_days}) and {fast} the shortest "
                           "({fast_days}), over {n} won deals.", total, slow=_join(slowest["name"]),
                           slow_days=_days(slow), fast=_join(fastest["name"]), fast_days=_days(fast)))
            times = ratio(slow, fast)
            weight = min(0.5, (times - 1.0) / 8.0) if times else 0.0
    extra = note(result)
    return finding(_sentences(text, extra), "info", kpi="sales_cycle_days", weight=weight)


# -------------------------------------------------------------------- contracts, invoices, payments

def _signed(frames: Frames, ctx: KpiContext) -> pd.DataFrame:
    contracts = frames["contracts"]
    return contracts.loc[in_period(contracts["signed_at"], ctx)] if not contracts.empty else contracts


def _in(frames: Frames, table: str, column: str, ctx: KpiContext) -> pd.DataFrame:
    frame = frames[table]
    return frame.loc[in_period(frame[column], ctx)] if not frame.empty else frame


def _not_in_source(frames: Frames, *tables: str) -> str:
    """The note of the tables (invoices, payments) a result could not use, or ''."""
    texts = {"invoices": N_("Invoices are not in this source: invoiced amounts are not known."),
             "payments": N_("Payments are not in this source: what has been collected and what is still owed are "
                            "not known.")}
    return _sentences(*(_(texts[t]) for t in tables if t not in frames))


@on_slice("contracts")
def collections_summary(frames: Frames, ctx: KpiContext) -> pd.DataFrame:
    """One row: contracts signed, invoices issued and payments received in the period (amounts and counts),
    collection_rate (payments ÷ invoiced in the period) and receivable_amount (contract amount − payments
    received by period end on the contracts signed in the period). Tables the source lacks give NaN (shown
    "–"), never 0, and are named in the note."""
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
    missing = [t for t in ("contracts",) if t not in frames]
    return _note(out.astype("float64"), _("Contracts are not in this source.") if missing else "",
                 _not_in_source(frames, "invoices", "payments"))


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
    and collection_rate (payments ÷ invoiced of the bucket). A table given as None (not in the source) gives
    NaN, never 0."""
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
    present = {k: 0.0 for k, (frame, _column) in series.items() if frame is not None}
    wide = wide.reindex(index).reindex(columns=list(series)).fillna(present)
    out = pd.DataFrame({"period": _label(index, freq), "period_start": index.start_time.astype("datetime64[us]")})
    for name in series:
        out[name] = wide[name].to_numpy(dtype="float64")
    out["collection_rate"] = ratio_series(out["payments_amount"], out["invoiced_amount"])
    return out[columns]


def collections_trend_from(history: Callable[[str, int], pd.DataFrame], n_periods: int = 4,
                           freq: str = "month") -> pd.DataFrame:
    """`collections_trend` over the trailing `n_periods` periods, reading each table with `history(table,
    n_periods)` (e.g. `Slice.history`)."""
    return collections_trend(history("contracts", n_periods), history("invoices", n_periods),
                             history("payments", n_periods), freq)


@on_slice("contracts")
def collections_over_time(s: Any, freq: str = "month", n_periods: int = 4) -> pd.DataFrame:
    """`collections_trend` of the slice's `n_periods` periods ending with its period; invoices and payments
    the source lacks are left out (NaN), not zero."""
    def history(table: str) -> pd.DataFrame | None:
        return s.history(table, n_periods) if s.has(table) else None

    return collections_trend(history("contracts"), history("invoices"), history("payments"), freq)


def describe_collections(result: pd.DataFrame) -> Finding | None:
    """Signed, invoiced, collected and still owed in the period; what the source does not record is said to be
    not in this source."""
    if result.empty:
        return finding(_("No contracts, invoices or payments."), "info", kpi="collection_rate")
    row = result.iloc[0]
    parts = []
    if pd.notna(row["contract_amount"]):
        parts.append(n_("{n} contract signed for {amount}", "{n} contracts signed for {amount}",
                        int(row["n_contracts"]), amount=_amount(row["contract_amount"])))
    if pd.notna(row["invoiced_amount"]):
        parts.append(_("{amount} invoiced", amount=_amount(row["invoiced_amount"])))
    if pd.notna(row["payments_amount"]):
        parts.append(_("{amount} collected", amount=_amount(row["payments_amount"])))
    texts = [_("{text}.", text=_join(parts))] if parts else []
    rate = row["collection_rate"]
    if pd.notna(rate):
        texts.append(_("The collection rate is {rate} of the amount invoiced.", rate=_pct(rate)))
    owed, signed = row["receivable_amount"], row["contract_amount"]
    if pd.notna(owed) and pd.notna(signed) and signed > 0:
        texts.append(_("The period's contracts still owe {amount} ({share} of their value).", amount=_amount(owed),
                       share=_pct(owed / signed)))
    if note(result):
        texts.append(note(result))
    severity, weight, advice = "info", 0.0, ""
    if pd.notna(rate) and row["invoiced_amount"] > 0:
        if rate < 0.8:
            severity, weight = ("act" if rate < 0.5 else "watch"), min(1.0, 1.0 - float(rate))
            advice = _("Chase collection: payments received cover only {rate} of the {invoiced} invoiced in the "
                       "period.", rate=_pct(rate), invoiced=_amount(row["invoiced_amount"]))
        elif rate >= 1.0:
            severity, weight = "good", 0.2
    return finding(_sentences(*texts) or _("No contract data."), severity, advice, kpi="collection_rate",
                   weight=weight)


@on_slice("contracts")
def contract_summary(frames: Frames, ctx: KpiContext, top: int = 10) -> pd.DataFrame:
    """The `top` largest contracts signed in the period: contract_id, signed_at, account, rep, product,
    contract_amount, invoiced_amount, paid_amount (by period end), outstanding_amount, paid_rate. Invoices or
    payments the source lacks give NaN (shown "–"), never 0, and are named in the note."""
    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise ParameterError(f"top: {top!r} is not a positive whole number of contracts")
    columns = ["contract_id", "signed_at", "account", "rep", "product", "contract_amount", "invoiced_amount",
               "paid_amount", "outstanding_amount", "paid_rate"]
    if "contracts" not in frames:
        return _note(pd.DataFrame(columns=columns), _("Contracts are not in this source."))
    signed = _signed(frames, ctx)
    if signed.empty:
        return _note(pd.DataFrame(columns=columns), _not_in_source(frames, "invoices", "payments"))
    biggest = signed.sort_values(["amount", "contract_id"], ascending=[False, True]).head(top)

    def per_contract(table: str, column: str) -> pd.Series:
        if table not in frames:  # not in this source: unknown, not zero
            return pd.Series(np.nan, index=biggest["contract_id"])
        frame = frames[table]
        if frame.empty:
            return pd.Series(0.0, index=biggest["contract_id"])
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
    return _note(out[columns], _not_in_source(frames, "invoices", "payments"))


def describe_contract_summary(result: pd.DataFrame) -> Finding | None:
    """The largest contract (or the contracts tied as largest) and how much of the listed contracts is still
    unpaid — or, without payments in the source, that this is not known."""
    if result.empty:
        return finding(note(result) or _("No contracts signed in the period."), "info", kpi="receivable_balance")
    largest, _smallest = _extremes(result, "contract_amount", 1.0)
    top = result.iloc[0]
    unpaid_known = result["paid_amount"].notna().all()
    if len(largest) > 1:
        text = _("{n} contracts tie as the largest, at {amount} each ({ids}).", n=_count(len(largest)),
                 amount=_amount(top["contract_amount"]), ids=_join(largest["contract_id"]))
    elif unpaid_known:
        text = _("The largest contract, {id} with {account} ({rep}), is worth {amount}, {paid} paid.",
                 id=top["contract_id"], account=top["account"], rep=top["rep"], amount=_amount(top["contract_amount"]),
                 paid=_pct(top["paid_rate"]))
    else:
        text = _("The largest contract, {id} with {account} ({rep}), is worth {amount}.", id=top["contract_id"],
                 account=top["account"], rep=top["rep"], amount=_amount(top["contract_amount"]))
    total = result["contract_amount"].sum()
    weight = 0.0
    if unpaid_known:
        owed = result["outstanding_amount"].sum()
        share = ratio(owed, total)
        text = _sentences(text, n_("This contract still owes {owed} ({share} of its value).",
                                   "These {n} contracts still owe {owed} ({share} of their value).", len(result),
                                   owed=_amount(owed),
                                   share=_pct(share) if share is not None else i18n.MISSING_VALUE))
        weight = 0.3 * min(1.0, max(0.0, share or 0.0))
    extra = note(result)
    return finding(_sentences(text, extra), "info", kpi="receivable_balance", weight=weight)


# -------------------------------------------------------------------------------------- sales brief

#: The brief's items: (item, label, the table it needs, unit).
BRIEF_ITEMS: tuple[tuple[str, str, str, str], ...] = (
    ("new_accounts", N_("New accounts"), "accounts", "count"),
    ("new_contacts", N_("New contacts"), "contacts", "count"),
    ("new_leads", N_("New leads"), "leads", "count"),
    ("new_opportunities", N_("New opportunities"), "opportunities", "count"),
    ("won_deals", N_("Won deals"), "opportunities", "count"),
    ("bookings_amount", N_("Bookings"), "opportunities", "amount"),
    ("contract_amount", N_("Contract amount"), "contracts", "amount"),
    ("payments_amount", N_("Payments received"), "payments", "amount"),
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


def _covers_start(frames: Frames, ctx: KpiContext) -> bool:
    """True when the data covers the period from its first day: some opportunity of the period's frames was
    created on or before it (opportunities are cut by the span from creation to close, so a source recording
    before the period has deals still open at its start)."""
    opportunities = frames.get("opportunities") if "opportunities" in frames else None
    if opportunities is None or opportunities.empty:
        return False
    first = opportunities["created_at"].min()
    return bool(pd.notna(first) and first <= ctx.period_start)


@on_slice("opportunities")
def sales_brief(current: Frames, ctx: KpiContext, comparison: Frames, comparison_ctx: KpiContext) -> pd.DataFrame:
    """The period's sales brief: new accounts (created in the period, in the region), new contacts (of the
    region's accounts), new leads, new opportunities, won deals, bookings, contract amount and payments, this
    period vs the comparison period: item, measure (its label in the language in use), current_value,
    comparison_value, delta, delta_rate, status ("ok", "needs table X" or "X has no dates") and note (the
    status as a reader reads it; empty when ok). An item the source does not record has no value (NaN), never 0.

    A comparison period the data does not cover from its first day (the source starts inside it) is not
    compared (NaN); a period not over at the as-of time is compared so far, and says so (``attrs["note"]``,
    ``attrs["elapsed_rate"]``)."""
    covered = _covers_start(comparison, comparison_ctx)
    now, before = _brief_values(current, ctx), (_brief_values(comparison, comparison_ctx) if covered else {})
    rows = []
    for item, label, table, _unit in BRIEF_ITEMS:
        value, was = now.get(item), before.get(item)
        status, reader_note = "ok", ""
        if table not in current:
            status, reader_note = f"needs table {table}", _("Not in this source (no `{table}` table).", table=table)
        elif value is None:
            status, reader_note = f"{table} has no dates", _("This source does not record when `{table}` rows were "
                                                             "created.", table=table)
        delta = value - was if value is not None and was is not None else None
        rows.append({"item": item, "measure": _(label), "current_value": value, "comparison_value": was,
                     "delta": delta, "delta_rate": ratio(delta, was) if delta is not None and was else None,
                     "status": status, "note": reader_note})
    out = pd.DataFrame(rows).astype({"current_value": "float64", "comparison_value": "float64",
                                     "delta": "float64", "delta_rate": "float64"})
    share = elapsed_share(ctx)
    out.attrs["elapsed_rate"] = share
    return _note(out, "" if covered else _("The data does not cover the comparison period from its first day: it is "
                                           "not compared."),
                 _("The period is not over ({elapsed} elapsed): its values so far are compared with the whole "
                   "comparison period.", elapsed=_pct(share)) if share is not None and share < 1 else "")


def describe_sales_brief(result: pd.DataFrame) -> Finding | None:
    """The brief's biggest moves vs the comparison period (moves of the same size are all named), and the
    items the source does not record."""
    units = {item: unit for item, _label, _table, unit in BRIEF_ITEMS}
    known = result.dropna(subset=["delta_rate"])
    moving = known.loc[[not _shown_equal(r, 0.0) for r in known["delta_rate"]]]
    texts = []
    if moving.empty:
        texts.append(_("Nothing moved vs the comparison period.") if len(known) else
                     _("Nothing to compare with the comparison period."))
    else:
        size = moving["delta_rate"].abs()
        ordered = moving.loc[size.sort_values(ascending=False, kind="stable").index]
        third = ordered["delta_rate"].abs().iloc[min(2, len(ordered) - 1)]
        moves = ordered.loc[[abs(r) > third or _shown_equal(abs(r), third) for r in ordered["delta_rate"]]]
        parts = [_("{label} {change} ({before} → {now})", label=str(r["measure"]).lower(),
                   change=i18n.format_number(r["delta_rate"], "rate", signed=True, digits=0),
                   before=i18n.format_number(r["comparison_value"], units.get(r["item"], "count")),
                   now=i18n.format_number(r["current_value"], units.get(r["item"], "count")))
                 for r in moves.to_dict("records")]
        texts.append(_("Biggest moves vs the comparison period: {moves}.", moves=_join(parts)))
    absent = result.loc[result["status"].str.startswith("needs table"), "measure"].str.lower().tolist()
    undated = result.loc[result["status"].str.endswith("has no dates"), "measure"].str.lower().tolist()
    if absent:
        texts.append(_("Not in this source: {items}.", items=_join(absent)))
    if undated:
        texts.append(_("Without creation dates in this source: {items}.", items=_join(undated)))
    texts.append(note(result))
    severity, weight = "info", 0.0
    bookings = result.loc[result["item"] == "bookings_amount", "delta_rate"]
    change = bookings.iloc[0] if len(bookings) else np.nan
    elapsed = result.attrs.get("elapsed_rate")
    if elapsed is not None and elapsed < 1:
        pass  # part of a period against a whole one: context, not a verdict
    elif pd.notna(change) and change <= -0.2:
        severity, weight = "watch", min(1.0, -float(change))
    elif pd.notna(change) and change >= 0.2:
        severity, weight = "good", min(1.0, float(change)) * 0.5
    return finding(_sentences(*texts), severity, kpi="bookings_amount", weight=weight)


# -------------------------------------------------------------------------------------------- KPIs

@register_kpi("bookings_amount", label=N_("Bookings"), unit="amount", direction="higher", tables=("opportunities",),
              area=AREA, description=N_("Amount of won opportunities closed in the period."))
def kpi_bookings_amount(frames: Frames, ctx: KpiContext) -> float | None:
    won = won_in_period(frames["opportunities"], ctx)
    return float(won["amount"].sum()) if not frames["opportunities"].empty else None


@register_kpi("won_deals", label=N_("Won deals"), unit="count", direction="higher", tables=("opportunities",),
              area=AREA, description=N_("Number of opportunities won (closed as won) in the period."))
def kpi_won_deals(frames: Frames, ctx: KpiContext) -> float | None:
    return float(len(won_in_period(frames["opportunities"], ctx))) if not frames["opportunities"].empty else None


@register_kpi("target_attainment", label=N_("Target attainment"), unit="rate", direction="higher",
              tables=("opportunities", "targets"), area=AREA, target="region",
              description=N_("Bookings ÷ bookings target of the period, for the slice's region (the company's in "
                             "the 'all' slice); no value when the period has no target."))
def kpi_target_attainment(frames: Frames, ctx: KpiContext) -> float | None:
    targets = frames["targets"]
    labels = target_periods(targets, ctx.period_start, ctx.period_end, ctx.period_label)
    level, key = _target_key(ctx.region)
    mine = targets.loc[targets["period"].isin(labels) & (targets["level"] == level) & (targets["key"] == key)]
    if not labels or mine.empty:
        return None
    bookings = won_in_period(frames["opportunities"], ctx)["amount"].sum()
    return ratio(bookings, mine["target_amount"].sum())


@register_kpi("avg_deal_size", label=N_("Average deal size"), unit="amount", direction="higher",
              tables=("opportunities",), area=AREA,
              description=N_("Average amount of the deals won in the period."))
def kpi_avg_deal_size(frames: Frames, ctx: KpiContext) -> float | None:
    won = won_in_period(frames["opportunities"], ctx)
    return float(won["amount"].mean()) if len(won) else None


@register_kpi("sales_cycle_days", label=N_("Sales cycle"), unit="days", direction="lower",
              tables=("opportunities",), area=AREA,
              description=N_("Median days from creation to win of the deals won in the period (deals without a "
                             "created date left out)."))
def kpi_sales_cycle_days(frames: Frames, ctx: KpiContext) -> float | None:
    cycle = _cycle_frame(won_in_period(frames["opportunities"], ctx))[0]
    return float(cycle["cycle_days"].median()) if len(cycle) else None


@register_kpi("contract_amount", label=N_("Contract amount"), unit="amount", direction="higher",
              tables=("contracts",), area=AREA, description=N_("Amount of the contracts signed in the period."))
def kpi_contract_amount(frames: Frames, ctx: KpiContext) -> float | None:
    return float(_signed(frames, ctx)["amount"].sum()) if not frames["contracts"].empty else None


@register_kpi("payments_received", label=N_("Payments received"), unit="amount", direction="higher",
              tables=("payments",), area=AREA, description=N_("Payments (回款) received in the period."))
def kpi_payments_received(frames: Frames, ctx: KpiContext) -> float | None:
    paid = _in(frames, "payments", "received_at", ctx)
    return float(paid["amount"].sum()) if not frames["payments"].empty else None


@register_kpi("collection_rate", label=N_("Collection rate"), unit="rate", direction="higher",
              tables=("payments", "invoices"), area=AREA,
              description=N_("Payments received in the period ÷ amount invoiced in the period."))
def kpi_collection_rate(frames: Frames, ctx: KpiContext) -> float | None:
    paid = _in(frames, "payments", "received_at", ctx)["amount"].sum()
    return ratio(paid, _in(frames, "invoices", "issued_at", ctx)["amount"].sum())


@register_kpi("receivable_balance", label=N_("Receivable balance"), unit="amount", direction="lower",
              tables=("contracts", "payments"), area=AREA,
              description=N_("What the contracts signed in the period still owe at its end: their amount − "
                             "payments received against them."))
def kpi_receivable_balance(frames: Frames, ctx: KpiContext) -> float | None:
    return receivable_balance(frames, ctx)
