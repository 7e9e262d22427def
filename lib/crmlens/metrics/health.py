"""Customer health (客户健康度): satisfaction (CSAT, NPS) and what drives it, service levels, and churn early
warning.

Pure functions over validated frames, as the other areas.

* **CSAT** is a survey's 1–5 satisfaction score (4–5 count as *satisfied*); **NPS** is the share of promoters
  (9–10 on the 0–10 recommend question) minus the share of detractors (0–6), in points (−100..+100).
* **Service targets**: a ticket's first response is due `first_response_hours` after it was opened, its
  resolution `resolution_days` after (both by priority; `SERVICE_TARGETS`, options of the
  ``customer_health`` analysis). A ticket not yet answered/resolved at the reference time counts against the
  target once the deadline has passed.
* **Drivers** (`csat_drivers`): each survey response is described by the service its account got in the
  `DRIVER_WINDOW_DAYS` days before it (a ticket that missed its first-response target, an unresolved ticket,
  a resolution over target) and by the driver the respondent named; one linear regression (ordinary least
  squares with heteroskedasticity-robust, HC3, standard errors — statsmodels) estimates each factor's effect
  in CSAT points (and NPS points) *holding the others constant*, with a 95 % confidence interval.
* **Churn early warning** (`churn_dataset`, `fit_churn_model`, `score_customers`): see those functions.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from crmlens.analysis import on_slice
from crmlens.errors import ParameterError
from crmlens.findings import Finding, finding
from crmlens.i18n import N_, _, format_number, n_
from crmlens.kpis import KpiContext, register_kpi
from crmlens.metrics.common import (
    UNKNOWN,
    bucket,
    check_choice,
    extreme_vs_median,
    lookup,
    ratio,
    reference_time,
    region_accounts,
    segment_fields,
)
from crmlens.metrics.common import fmt as _fmt
from crmlens.present import register_columns

AREA = "customer_health"
Frames = Mapping[str, pd.DataFrame]

#: Service targets by ticket priority: hours to the first response, days to the resolution.
SERVICE_TARGETS: dict[str, tuple[float, float]] = {
    "low": (48.0, 10.0), "medium": (16.0, 5.0), "high": (6.0, 3.0), "urgent": (2.0, 1.0),
}
#: Service a survey response is related to: tickets opened this many days before it.
DRIVER_WINDOW_DAYS = 90
#: Fewer survey responses than this make no driver estimate (the confidence intervals would be too wide).
MIN_RESPONSES = 30
SATISFIED = 4  # CSAT at or above: satisfied
PROMOTER, PASSIVE = 9, 7  # NPS at or above: promoter; passive from 7 (detractor below)
SATISFACTION_BY = ("region_id", "product_line", "product_id", "rep_id", "industry", "size_band", "level")
SERVICE_BY = ("category", "priority", "product_line", "product_id")

register_columns({
    "n_responses": (N_("Responses"), "count"),
    "csat_mean": (N_("CSAT (1–5)"), "score"),
    "satisfied_share": (N_("Satisfied (CSAT 4–5)"), "share"),
    "promoters_share": (N_("Promoters"), "share"),
    "passives_share": (N_("Passives"), "share"),
    "detractors_share": (N_("Detractors"), "share"),
    "nps": (N_("NPS"), "score"),
    "factor": (N_("Factor"), "text"),
    "n_with": (N_("Responses with it"), "count"),
    "csat_with": (N_("CSAT with it"), "score"),
    "csat_without": (N_("CSAT without it"), "score"),
    "csat_effect": (N_("Effect on CSAT (points)"), "score"),
    "csat_effect_low": (N_("95% CI, low"), "score"),
    "csat_effect_high": (N_("95% CI, high"), "score"),
    "nps_effect": (N_("Effect on NPS (points)"), "score"),
    "p_value": (N_("p-value"), "number"),
    "n_opened": (N_("Tickets opened"), "count"),
    "n_resolved": (N_("Tickets resolved"), "count"),
    "n_backlog": (N_("Open tickets (backlog)"), "count"),
    "first_response_hours": (N_("Median first response (hours)"), "number"),
    "resolution_days": (N_("Median resolution (days)"), "days"),
    "first_response_met": (N_("First response on target"), "share"),
    "resolution_met": (N_("Resolved on target"), "share"),
})

FACTORS = {
    "slow_first_response": N_("A ticket missed its first-response target"),
    "unresolved_ticket": N_("An unresolved ticket"),
    "slow_resolution": N_("A ticket resolved over target"),
    "had_ticket": N_("Any ticket"),
}
DRIVER_FACTOR = "driver: "  # prefix of the survey's named driver in the factor column


def _targets(service_targets: Mapping[str, Sequence[float]] | None) -> dict[str, tuple[float, float]]:
    out = dict(SERVICE_TARGETS)
    for key, value in (service_targets or {}).items():
        if key not in SERVICE_TARGETS:
            raise ParameterError(f"service target priority {key!r} is not allowed; use one of "
                                 f"{', '.join(SERVICE_TARGETS)}")
        try:
            hours, days = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ParameterError(f"service target {key}: {value!r} is not allowed; use [first-response hours, "
                                 f"resolution days], e.g. [16, 5]") from None
        if hours <= 0 or days <= 0:
            raise ParameterError(f"service target {key}: {value!r} is not allowed; both must be > 0")
        out[key] = (hours, days)
    return out


# ------------------------------------------------------------------------------------------- satisfaction

def nps_group(nps: pd.Series) -> pd.Series:
    """'promoter' (9–10), 'passive' (7–8) or 'detractor' (0–6); missing where the score is."""
    values = pd.to_numeric(nps, errors="coerce").astype("float64")
    out = pd.Series(np.where(values >= PROMOTER, "promoter", np.where(values >= PASSIVE, "passive", "detractor")),
                    index=nps.index, dtype="string")
    return out.where(values.notna())


def nps_score(nps: pd.Series) -> float | None:
    """Net Promoter Score in points: % promoters − % detractors among the non-missing scores."""
    group = nps_group(nps).dropna()
    if group.empty:
        return None
    return float(100.0 * ((group == "promoter").mean() - (group == "detractor").mean()))


def _survey_groups(surveys: pd.DataFrame, by: str | None, accounts: pd.DataFrame | None,
                   products: pd.DataFrame | None) -> pd.Series:
    if by is None:
        return pd.Series(_("All responses"), index=surveys.index, dtype="string")
    check_choice("by", by, SATISFACTION_BY)
    if by in surveys.columns:
        return surveys[by].astype("string").fillna(UNKNOWN)
    if by == "product_line":
        if products is None or "product_id" not in surveys.columns:
            return pd.Series(UNKNOWN, index=surveys.index, dtype="string")
        return lookup(surveys["product_id"], products.set_index("product_id")["product_line"]).astype(
            "string").fillna(UNKNOWN)
    if accounts is None or by not in accounts.columns:
        return pd.Series(UNKNOWN, index=surveys.index, dtype="string")
    return lookup(surveys["account_id"], accounts.drop_duplicates("account_id").set_index("account_id")[by]).astype(
        "string").fillna(UNKNOWN)


def _satisfaction_rows(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    csat = pd.to_numeric(frame["csat"], errors="coerce").astype("float64") if "csat" in frame else \
        pd.Series(np.nan, index=frame.index)
    nps = pd.to_numeric(frame["nps"], errors="coerce").astype("float64") if "nps" in frame else \
        pd.Series(np.nan, index=frame.index)
    group = nps_group(nps)
    work = pd.DataFrame({k: frame[k] for k in keys})
    work["csat"] = csat
    work["sat"] = (csat >= SATISFIED).where(csat.notna()).astype("Float64")
    for name in ("promoter", "passive", "detractor"):
        work[name] = (group == name).where(group.notna()).astype("Float64")
    work["one"] = 1
    out = work.groupby(keys, sort=True, dropna=False).agg(
        n_responses=("one", "sum"), csat_mean=("csat", "mean"), satisfied_share=("sat", "mean"),
        promoters_share=("promoter", "mean"), passives_share=("passive", "mean"),
        detractors_share=("detractor", "mean")).reset_index()
    out["nps"] = 100.0 * (out["promoters_share"] - out["detractors_share"])
    return out


@on_slice("surveys")
def satisfaction(surveys: pd.DataFrame, by: str | None = None, *, accounts: pd.DataFrame | None = None,
                 products: pd.DataFrame | None = None) -> pd.DataFrame:
    """CSAT and NPS of the survey responses (the slice's: its period and region), overall or per `by`
    (`SATISFACTION_BY`): responses, mean CSAT, share satisfied, promoter/passive/detractor shares, NPS.
    Best NPS first."""
    frame = surveys.assign(segment=_survey_groups(surveys, by, accounts, products))
    out = _satisfaction_rows(frame, ["segment"]) if len(frame) else pd.DataFrame(
        columns=["segment", "n_responses", "csat_mean", "satisfied_share", "promoters_share", "passives_share",
                 "detractors_share", "nps"])
    out = out.sort_values(["nps", "segment"], ascending=[False, True], na_position="last", kind="stable")
    out = out.reset_index(drop=True)
    out.attrs["by"] = by
    return out


@on_slice("surveys")
def satisfaction_trend(s: Any, surveys: pd.DataFrame, freq: str = "quarter", n_periods: int = 8) -> pd.DataFrame:
    """CSAT and NPS per `freq` over the `n_periods` periods of the slice's kind ending with its own (the
    surveys' history, read in the engine)."""
    history = s.history("surveys", n_periods) if hasattr(s, "history") else surveys
    frame = history.assign(period=bucket(history["responded_at"], freq))
    frame = frame[frame["period"].notna()]
    out = _satisfaction_rows(frame, ["period"]) if len(frame) else pd.DataFrame(
        columns=["period", "n_responses", "csat_mean", "satisfied_share", "nps"])
    out.attrs["freq"] = freq
    return out


def describe_satisfaction(result: pd.DataFrame | None, *, min_responses: int = 10) -> Finding | None:
    """Overall: the CSAT and NPS in words. Per group: the group(s) with the lowest NPS among those with at
    least `min_responses` responses, when it is below the others' median (equal NPS named together)."""
    if result is None:
        return None
    if result.empty or int(result["n_responses"].sum()) == 0:
        return None if result.attrs.get("by") else finding(
            _("No survey response in this slice: satisfaction cannot be measured."), "info", kpi="csat")
    if result.attrs.get("by") is None:
        row = result.iloc[0]
        text = _("Customers rated us {csat} of 5 on average ({satisfied} satisfied) in {n} responses; NPS {nps} "
                 "({promoters} promoters, {detractors} detractors).", csat=_fmt(row["csat_mean"], "score"),
                 satisfied=_fmt(row["satisfied_share"], "share"), n=_fmt(int(row["n_responses"]), "count"),
                 nps=format_number(row["nps"], "score", signed=True, digits=0),
                 promoters=_fmt(row["promoters_share"], "share"),
                 detractors=_fmt(row["detractors_share"], "share"))
        if pd.notna(row["nps"]) and row["nps"] < 0:
            return finding(text, "act", kpi="nps", recommendation=_(
                "More customers would warn others than recommend us: call the detractors of this period and fix "
                "what they name."))
        return finding(text, "info", kpi="nps")
    # within ten points: noise at these sample sizes, not a finding
    found = extreme_vs_median(result[(result["n_responses"] >= min_responses) & result["nps"].notna()], "nps",
                              lowest=True, min_gap=10, min_groups=3)
    if found is None:
        return None
    worst, low, median = found
    names = ", ".join(str(v) for v in worst["segment"])
    text = n_("{groups} has the lowest NPS ({nps}) vs a median of {median}.",
              "{groups} have the lowest NPS ({nps} each) vs a median of {median}.", len(worst), groups=names,
              nps=format_number(low, "score", signed=True, digits=0),
              median=format_number(median, "score", signed=True, digits=0))
    return finding(text, "watch", kpi="nps", recommendation=_(
        "Read the comments of {groups}'s detractors and agree one fix with the owner.", groups=names))


# ------------------------------------------------------------------------------------------------ service

def _ticket_frame(tickets: pd.DataFrame, at: pd.Timestamp,
                  targets: Mapping[str, tuple[float, float]]) -> pd.DataFrame:
    """Tickets with their deadlines and whether each target was met / missed / not yet due at `at`."""
    t = tickets
    prio = t["priority"].astype("string") if "priority" in t else pd.Series(pd.NA, index=t.index, dtype="string")
    hours = prio.map({k: v[0] for k, v in targets.items()}).astype("float64")
    days = prio.map({k: v[1] for k, v in targets.items()}).astype("float64")
    opened = t["opened_at"]
    first = t["first_response_at"] if "first_response_at" in t else pd.Series(pd.NaT, index=t.index)
    resolved = t["resolved_at"] if "resolved_at" in t else pd.Series(pd.NaT, index=t.index)
    first = first.where(first < at)
    resolved = resolved.where(resolved < at)
    fr_due = opened + pd.to_timedelta(hours, unit="h")
    res_due = opened + pd.to_timedelta(days, unit="D")
    out = pd.DataFrame({"opened_at": opened, "first_due": fr_due, "resolution_due": res_due,
                        "first_response_at": first, "resolved_at": resolved}, index=t.index)
    # met: done by the deadline; missed: done late, or not done and the deadline passed; else not yet known
    out["first_met"] = np.where(first.notna(), first <= fr_due, np.where(fr_due < at, False, np.nan))
    out["resolution_met"] = np.where(resolved.notna(), resolved <= res_due, np.where(res_due < at, False, np.nan))
    # when a target was known missed: at its deadline, if nothing came by then (a late answer, or none yet)
    out["first_missed_at"] = fr_due.where(~(first <= fr_due))
    out["resolution_missed_at"] = res_due.where(~(resolved <= res_due))
    out["first_hours"] = (first - opened).dt.total_seconds() / 3600.0
    out["resolution_days"] = (resolved - opened).dt.total_seconds() / 86400.0
    return out


def _ticket_groups(tickets: pd.DataFrame, by: str | None, products: pd.DataFrame | None) -> pd.Series:
    if by is None:
        return pd.Series(_("All tickets"), index=tickets.index, dtype="string")
    check_choice("by", by, SERVICE_BY)
    if by == "product_line":
        if products is None or "product_id" not in tickets:
            return pd.Series(UNKNOWN, index=tickets.index, dtype="string")
        return lookup(tickets["product_id"], products.set_index("product_id")["product_line"]).astype(
            "string").fillna(UNKNOWN)
    if by not in tickets:
        return pd.Series(UNKNOWN, index=tickets.index, dtype="string")
    return tickets[by].astype("string").fillna(UNKNOWN)


@on_slice("tickets")
def service_levels(s: Any, tickets: pd.DataFrame, by: str | None = None, *, ctx: KpiContext,
                   products: pd.DataFrame | None = None, n_periods: int = 8,
                   service_targets: Mapping[str, Sequence[float]] | None = None) -> pd.DataFrame:
    """Per `by` (`SERVICE_BY`, or overall): tickets opened and resolved in the period, the backlog at the
    reference time (opened before it, not resolved by it — over the tickets of the last `n_periods`
    periods), the median first-response hours and resolution days of the period's tickets, and the shares of
    them that met their targets (tickets whose deadline is still ahead are left out of the shares)."""
    history = s.history("tickets", n_periods) if hasattr(s, "history") else tickets
    return service_table(history, by, ctx=ctx, products=products, service_targets=service_targets)


def service_table(tickets: pd.DataFrame, by: str | None = None, *, ctx: KpiContext,
                  products: pd.DataFrame | None = None,
                  service_targets: Mapping[str, Sequence[float]] | None = None) -> pd.DataFrame:
    """`service_levels` over a frame of tickets (opened before the period too, for the backlog)."""
    at = reference_time(ctx)
    start = pd.Timestamp(ctx.period_start)
    t = _ticket_frame(tickets, at, _targets(service_targets))
    t["segment"] = _ticket_groups(tickets, by, products)
    opened = t["opened_at"]
    t["in_period"] = (opened >= start) & (opened < at)
    t["resolved_in"] = t["resolved_at"].notna() & (t["resolved_at"] >= start)
    t["backlog"] = (opened < at) & t["resolved_at"].isna()
    cur = t[t["in_period"]]
    g = t.groupby("segment", sort=True)
    out = pd.DataFrame({
        "n_opened": g["in_period"].sum(), "n_resolved": g["resolved_in"].sum(), "n_backlog": g["backlog"].sum(),
    })
    gc = cur.groupby("segment", sort=True)
    out["first_response_hours"] = gc["first_hours"].median()
    out["resolution_days"] = gc["resolution_days"].median()
    out["first_response_met"] = gc["first_met"].mean()
    out["resolution_met"] = gc["resolution_met"].mean()
    out = out.reset_index().astype({"n_opened": "int64", "n_resolved": "int64", "n_backlog": "int64"})
    out = out.sort_values(["n_opened", "segment"], ascending=[False, True], kind="stable").reset_index(drop=True)
    out.attrs["by"] = by
    return out


def describe_service(result: pd.DataFrame | None) -> Finding | None:
    """Overall: tickets, backlog and target attainment in words. Per group: the group(s) furthest below the
    first-response target when it is at least ten points below the others' median."""
    if result is None:
        return None
    if result.empty:
        return None if result.attrs.get("by") else finding(
            _("No ticket in this slice: service levels cannot be measured."), "info", kpi="first_response_on_target")
    if result.attrs.get("by") is None:
        row = result.iloc[0]
        text = _("{opened} tickets were opened and {resolved} resolved; {backlog} are open. {first} got their first "
                 "response on target and {res} were resolved on target.", opened=_fmt(int(row["n_opened"]), "count"),
                 resolved=_fmt(int(row["n_resolved"]), "count"), backlog=_fmt(int(row["n_backlog"]), "count"),
                 first=_fmt(row["first_response_met"], "share"), res=_fmt(row["resolution_met"], "share"))
        bad = pd.notna(row["first_response_met"]) and row["first_response_met"] < 0.8
        return finding(text, "watch" if bad else "info", kpi="first_response_on_target", recommendation=_(
            "Fewer than 80% of tickets are answered on target: add first-line cover at the busiest hours and "
            "alert on tickets about to miss their deadline.") if bad else None)
    found = extreme_vs_median(result[(result["n_opened"] >= 10) & result["first_response_met"].notna()],
                              "first_response_met", lowest=True, min_gap=0.1)
    if found is None:
        return None
    worst, low, median = found
    names = ", ".join(str(v) for v in worst["segment"])
    text = n_("{groups} gets the fewest first responses on target ({share} vs a median of {median}).",
              "{groups} get the fewest first responses on target ({share} each vs a median of {median}).",
              len(worst), groups=names, share=_fmt(low, "share"), median=_fmt(median, "share"))
    return finding(text, "watch", kpi="first_response_on_target", recommendation=_(
        "Route {groups} tickets to a dedicated queue until they meet the target.", groups=names))


@on_slice("tickets")
def ticket_trend(s: Any, tickets: pd.DataFrame, *, ctx: KpiContext, freq: str = "month", n_periods: int = 4,
                 service_targets: Mapping[str, Sequence[float]] | None = None) -> pd.DataFrame:
    """Tickets opened and resolved per `freq`, the backlog at each period's end and the share answered on
    target, over the `n_periods` periods of the slice's kind ending with its own."""
    history = s.history("tickets", n_periods) if hasattr(s, "history") else tickets
    start = s.history_span(n_periods).start if hasattr(s, "history_span") else history["opened_at"].min()
    at = reference_time(ctx)
    t = _ticket_frame(history, at, _targets(service_targets))
    t["period"] = bucket(t["opened_at"], freq).where(t["opened_at"] >= start)
    rows = t.groupby("period", sort=True).agg(n_opened=("opened_at", "size"), first_response_met=("first_met", "mean"))
    done = t["resolved_at"].dropna()
    resolved = bucket(done[done >= start], freq).value_counts()
    rows["n_resolved"] = resolved.reindex(rows.index).fillna(0).astype("int64")
    ends = t.groupby("period")["opened_at"].max()  # each bucket's end: the backlog just after its last ticket
    rows["n_backlog"] = [int(((t["opened_at"] <= e) & ~(t["resolved_at"] <= e)).sum())
                         for e in ends.reindex(rows.index)]
    out = rows.reset_index()[["period", "n_opened", "n_resolved", "n_backlog", "first_response_met"]]
    out.attrs["freq"] = freq
    return out


# ------------------------------------------------------------------------------------------------ drivers

def response_service(surveys: pd.DataFrame, tickets: pd.DataFrame | None, *, window_days: int = DRIVER_WINDOW_DAYS,
                     service_targets: Mapping[str, Sequence[float]] | None = None) -> pd.DataFrame:
    """Per survey response (same index): the service its account got in the `window_days` days before it —
    ``had_ticket``, ``slow_first_response`` (a ticket's first-response target was missed by then),
    ``unresolved_ticket`` (one was still open then), ``slow_resolution`` (one's resolution target was missed by
    then). False where the source has no tickets for the account."""
    cols = ["had_ticket", "slow_first_response", "unresolved_ticket", "slow_resolution"]
    out = pd.DataFrame(False, index=surveys.index, columns=cols)
    if tickets is None or tickets.empty or surveys.empty:
        return out
    t = _ticket_frame(tickets, pd.Timestamp.max.floor("D"), _targets(service_targets))
    t["account_id"] = tickets["account_id"]
    t = t[t["account_id"].notna()]
    left = pd.DataFrame({"row": np.arange(len(surveys)), "account_id": surveys["account_id"].to_numpy(),
                         "responded_at": surveys["responded_at"].to_numpy()})
    m = left.merge(t, on="account_id", how="inner")
    at = m["responded_at"]
    m = m[(m["opened_at"] < at) & (m["opened_at"] >= at - pd.Timedelta(days=window_days))]
    at = m["responded_at"]
    flags = pd.DataFrame({
        "row": m["row"], "had_ticket": True,
        "slow_first_response": m["first_missed_at"].notna() & (m["first_missed_at"] < at),
        "unresolved_ticket": ~(m["resolved_at"] < at),
        "slow_resolution": m["resolution_missed_at"].notna() & (m["resolution_missed_at"] < at),
    }).groupby("row").any()
    for c in cols:
        out.iloc[flags.index.to_numpy(), out.columns.get_loc(c)] = flags[c].to_numpy()
    return out


@on_slice("surveys")
def csat_drivers(s: Any, surveys: pd.DataFrame, *, tickets: pd.DataFrame | None = None, n_periods: int = 8,
                 window_days: int = DRIVER_WINDOW_DAYS,
                 service_targets: Mapping[str, Sequence[float]] | None = None) -> pd.DataFrame | None:
    """What moves CSAT and NPS: over the survey responses of the last `n_periods` periods (one period holds too
    few for stable estimates), the service factors of `response_service` and the driver each respondent named,
    in one OLS regression per score (statsmodels, HC3 robust standard errors). One row per factor: responses
    with it, mean CSAT with and without it, its effect on CSAT in points holding the other factors constant,
    the 95 % confidence interval and p-value, and its effect on NPS in points. Strongest effect first."""
    history = s.history("surveys", n_periods) if hasattr(s, "history") else surveys
    ticket_history = (s.history("tickets", n_periods + 1) if s.has("tickets") else None) \
        if hasattr(s, "history") else tickets
    return driver_table(history, ticket_history, window_days=window_days, service_targets=service_targets)


def driver_table(surveys: pd.DataFrame, tickets: pd.DataFrame | None, *, window_days: int = DRIVER_WINDOW_DAYS,
                 service_targets: Mapping[str, Sequence[float]] | None = None) -> pd.DataFrame:
    """`csat_drivers` over frames."""
    empty = pd.DataFrame(columns=["factor", "n_with", "csat_with", "csat_without", "csat_effect", "csat_effect_low",
                                  "csat_effect_high", "p_value", "nps_effect"])
    data = surveys[pd.to_numeric(surveys["csat"], errors="coerce").notna()] if "csat" in surveys else surveys.iloc[:0]
    empty.attrs["n_responses"] = len(data)
    if len(data) < MIN_RESPONSES:
        return empty
    X = response_service(data, tickets, window_days=window_days, service_targets=service_targets).astype("float64")
    X = X.loc[:, X.std(ddof=0) > 0]  # a factor nobody (or everybody) has estimates nothing
    if "driver" in data and data["driver"].notna().any():
        named = data["driver"].astype("string").fillna(UNKNOWN)
        top = named.value_counts().index[0]  # the most named driver is the baseline of the others
        for value in sorted(set(named) - {top}):
            X[DRIVER_FACTOR + value] = (named == value).astype("float64").to_numpy()
        empty.attrs["baseline_driver"] = top
    if X.empty:
        return empty
    import statsmodels.api as sm

    y = pd.to_numeric(data["csat"]).astype("float64").to_numpy()
    design = sm.add_constant(X.to_numpy(), has_constant="add")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.OLS(y, design).fit(cov_type="HC3")
        ci = np.asarray(fit.conf_int(0.05))
        nps = pd.to_numeric(data["nps"], errors="coerce") if "nps" in data else pd.Series(np.nan, index=data.index)
        promoter = nps_group(nps)
        nps_y = 100.0 * ((promoter == "promoter").astype(float) - (promoter == "detractor").astype(float))
        ok = nps.notna().to_numpy()
        nps_fit = sm.OLS(nps_y.to_numpy()[ok], design[ok]).fit(cov_type="HC3") if ok.sum() >= MIN_RESPONSES else None
    rows = []
    for i, name in enumerate(X.columns, start=1):
        has = X[name].to_numpy() > 0
        rows.append({"factor": name, "n_with": int(has.sum()), "csat_with": float(y[has].mean()),
                     "csat_without": float(y[~has].mean()), "csat_effect": float(fit.params[i]),
                     "csat_effect_low": float(ci[i, 0]), "csat_effect_high": float(ci[i, 1]),
                     "p_value": float(fit.pvalues[i]),
                     "nps_effect": float(nps_fit.params[i]) if nps_fit is not None else np.nan})
    out = pd.DataFrame(rows)
    out = out.reindex(out["csat_effect"].abs().sort_values(ascending=False, kind="stable").index).reset_index(drop=True)
    out.attrs.update(empty.attrs)
    out.attrs["r_squared"] = float(fit.rsquared)
    return out


def factor_label(factor: str) -> str:
    """The reader's name of a driver factor."""
    if factor.startswith(DRIVER_FACTOR):
        return _("Named driver: {driver}", driver=_(DRIVER_LABELS.get(factor[len(DRIVER_FACTOR):],
                                                                      factor[len(DRIVER_FACTOR):])))
    return _(FACTORS.get(factor, factor))


DRIVER_LABELS = {"product_quality": N_("product quality"), "support": N_("support"), "price": N_("price"),
                 "onboarding": N_("onboarding"), "relationship": N_("relationship"), "features": N_("features")}


def drivers_for_readers(result: pd.DataFrame | None) -> pd.DataFrame | None:
    """The driver table with the factors named for readers."""
    if result is None:
        return None
    return result.assign(factor=[factor_label(f) for f in result["factor"]])


def describe_csat_drivers(result: pd.DataFrame | None, *, alpha: float = 0.05) -> Finding | None:
    """The factor that lowers CSAT most, when its effect is significant at `alpha` — with the effect size and
    its 95 % confidence interval, and the gap in raw means. Nothing when no factor's effect is significant."""
    if result is None:
        return None
    if result.empty:
        n = int(result.attrs.get("n_responses", 0))
        return finding(n_("Only {n} survey response: too few to estimate what drives satisfaction (at least {min} "
                          "are needed).", "Only {n} survey responses: too few to estimate what drives satisfaction "
                          "(at least {min} are needed).", n, n=_fmt(n, "count"), min=_fmt(MIN_RESPONSES, "count")),
                       "info", kpi="csat")
    bad = result[(result["p_value"] < alpha) & (result["csat_effect_high"] < 0)]
    if bad.empty:
        return None
    row = bad.loc[bad["csat_effect"].idxmin()]
    text = _("{factor} in the {days} days before a survey lowers CSAT by {effect} points (95% CI {low}–{high}), "
             "other factors held constant: {with_} vs {without} on average ({n} responses with it).",
             factor=factor_label(str(row["factor"])), days=DRIVER_WINDOW_DAYS,
             effect=format_number(-row["csat_effect"], "score"), low=format_number(-row["csat_effect_high"], "score"),
             high=format_number(-row["csat_effect_low"], "score"), with_=_fmt(row["csat_with"], "score"),
             without=_fmt(row["csat_without"], "score"), n=_fmt(int(row["n_with"]), "count"))
    rec = {
        "slow_first_response": _("Meet the first-response target: staff the first line for the peak hours and "
                                 "alert before a ticket's deadline passes."),
        "unresolved_ticket": _("Close open tickets before asking for feedback, and escalate tickets open longer than "
                               "their resolution target."),
        "slow_resolution": _("Escalate tickets about to miss their resolution target to second-line support."),
    }.get(str(row["factor"]), _("Look into what respondents naming it say, and fix the most cited cause."))
    return finding(text, "act", kpi="csat", recommendation=rec)


# ------------------------------------------------------------------------------------- recorded churn

def _records_churn(accounts: pd.DataFrame, s: Any = None) -> bool:
    """Whether the source records churn: the slice's source has ``accounts.churned_at`` (`crmlens.data.has_column`);
    for bare frames, a ``churned_at`` column with at least one date."""
    if s is not None and hasattr(s, "store"):
        from crmlens.data import has_column

        return has_column(s, "accounts", "churned_at")
    return "churned_at" in accounts.columns and bool(accounts["churned_at"].notna().any())


@on_slice("accounts")
def recorded_churn(accounts: pd.DataFrame, by: str | None = None, *, ctx: KpiContext,
                   s: Any = None) -> pd.DataFrame | None:
    """Churn as the source records it (``accounts.churned_at``, e.g. a subscription's end): per `by` (an account
    column — attributes and custom fields), the customers the period had (created before its end and not lost
    before its start: at the start or won during it), those lost in it (``churned_at`` in [start, reference
    time)) and the churn rate. None when the source does not record churn (no ``churned_at`` column): then
    churn is inferred from purchases (`crmlens.metrics.customers`)."""
    if not _records_churn(accounts, s):
        return None
    if by is not None and by not in accounts.columns:
        usable = [c for c in accounts.columns if c not in ("account_id", "name", "churned_at", "created_at")]
        raise ParameterError(f"by: {by!r} is not a column of accounts in this source; use one of {', '.join(usable)}")
    acc = region_accounts(accounts, ctx)
    start, at = pd.Timestamp(ctx.period_start), reference_time(ctx)
    created = acc["created_at"] if "created_at" in acc else pd.Series(pd.NaT, index=acc.index)
    churned = acc["churned_at"]
    there = ~(created >= at) & ~(churned < start)
    lost = there & (churned >= start) & (churned < at)
    if by is None:
        segment = pd.Series(_("All customers"), index=acc.index)
    elif pd.api.types.is_bool_dtype(acc[by]):  # yes/no fields read as words
        segment = acc[by].map({True: _("yes"), False: _("no")}).astype("string").fillna(UNKNOWN)
    else:
        segment = acc[by].astype("string").fillna(UNKNOWN)
    frame = pd.DataFrame({"segment": segment, "there": there.astype(int), "lost": lost.astype(int)})
    out = frame.groupby("segment", sort=True).agg(n_customers=("there", "sum"), n_churned=("lost", "sum"))
    out = out[out["n_customers"] > 0].reset_index()
    out["churn_rate"] = out["n_churned"] / out["n_customers"]
    out = out.sort_values(["churn_rate", "segment"], ascending=[False, True], kind="stable").reset_index(drop=True)
    out.attrs["by"] = by
    return out


@on_slice("accounts")
def recorded_churn_by_fields(s: Any, accounts: pd.DataFrame, *, ctx: KpiContext,
                             max_values: int = 12) -> pd.DataFrame | None:
    """`recorded_churn` by each of the source's own fields (custom fields of the accounts: categories, yes/no, and
    numbers with at most `max_values` distinct values), stacked with a ``field`` column. None when the source does
    not record churn or keeps no such field."""
    if not _records_churn(accounts, s):
        return None
    parts = []
    for name in segment_fields(s, accounts, max_values):
        part = recorded_churn(accounts, name, ctx=ctx, s=s)
        parts.append(part.assign(field=name)[["field", *part.columns]])
    return pd.concat(parts, ignore_index=True) if parts else None


def describe_recorded_churn(result: pd.DataFrame | None, *, min_customers: int = 30) -> Finding | None:
    """Overall: how many customers the source records as lost in the period. Per segment: the segment(s) with the
    highest churn rate when it is at least five points above the median segment's (equal rates named together)."""
    if result is None or result.empty:
        return None
    if result.attrs.get("by") is None:
        row = result.iloc[0]
        text = _("{lost} of the {n} customers of the period were lost ({rate}), as the source records it.",
                 lost=_fmt(int(row["n_churned"]), "count"), n=_fmt(int(row["n_customers"]), "count"),
                 rate=_fmt(row["churn_rate"], "rate"))
        return finding(text, "watch" if row["churn_rate"] > 0.1 else "info", kpi="recorded_churn_rate")
    found = extreme_vs_median(result[result["n_customers"] >= min_customers], "churn_rate", lowest=False,
                              min_gap=0.05)
    if found is None:
        return None
    worst, high, median = found
    names = ", ".join(str(v) for v in worst["segment"])
    text = n_("{segments} loses most customers ({rate}) vs a median of {median}.",
              "{segments} lose most customers ({rate} each) vs a median of {median}.", len(worst), segments=names,
              rate=_fmt(high, "rate"), median=_fmt(median, "rate"))
    return finding(text, "watch", kpi="recorded_churn_rate", recommendation=_(
        "Ask the customers of {segments} who left why, and offer the ones still here a review call.",
        segments=names))


# ------------------------------------------------------------------------------------ reasons for churn

register_columns({"driver": (N_("Driver named"), "text"), "n_churned_naming": (N_("Churned customers naming it"),
                                                                               "count")})


@on_slice("accounts", "surveys")
def churn_reasons(accounts: pd.DataFrame, purchases: pd.DataFrame | None, *, ctx: KpiContext, surveys: pd.DataFrame,
                  s: Any = None, window_days: int = 365) -> pd.DataFrame | None:
    """Why the period's churned customers left, as they said it: the driver named in each churned customer's last
    survey response in the `window_days` before it churned (churn recorded by the source, else inferred from
    purchases: `crmlens.metrics.customers.customer_states`), with its CSAT. One row per driver: churned
    customers naming it, their share, and their mean CSAT; most named first. None when the surveys record no
    driver."""
    if "driver" not in surveys.columns:
        return None
    history = s.history("surveys", 8) if s is not None and hasattr(s, "history") else surveys
    start, at = pd.Timestamp(ctx.period_start), reference_time(ctx)
    acc = region_accounts(accounts, ctx)
    if _records_churn(accounts, s):
        lost = acc[(acc["churned_at"] >= start) & (acc["churned_at"] < at)]
        when = pd.Series(lost["churned_at"].to_numpy(), index=lost["account_id"].astype("string").to_numpy())
    elif purchases is not None:
        from crmlens.metrics.customers import customer_states

        states = customer_states(accounts, purchases, ctx)
        lost = states[states["is_churned"]]
        last = purchases[purchases["purchased_at"] < at].groupby("account_id")["purchased_at"].max()
        last.index = last.index.astype("string")
        # it churned when its latest purchase stopped covering it
        when = last.reindex(lost["account_id"].astype("string").to_numpy()) + pd.Timedelta(days=ctx.churn_days)
    else:
        return None
    answered = history[history["account_id"].astype("string").isin(when.index)].copy()
    answered["churn_at"] = lookup(answered["account_id"].astype("string"), when).to_numpy()
    answered = answered[(answered["responded_at"] < answered["churn_at"])
                        & (answered["responded_at"] >= answered["churn_at"] - pd.Timedelta(days=window_days))]
    answered = answered.sort_values("responded_at", kind="stable").drop_duplicates("account_id", keep="last")
    answered = answered[answered["driver"].notna()]
    if answered.empty:
        return pd.DataFrame(columns=["driver", "n_churned_naming", "share", "csat_mean"])
    out = answered.assign(csat=pd.to_numeric(answered["csat"], errors="coerce").astype("float64")).groupby(
        "driver").agg(n_churned_naming=("account_id", "size"), csat_mean=("csat", "mean")).reset_index()
    out["share"] = out["n_churned_naming"] / out["n_churned_naming"].sum()
    out["driver"] = [_(DRIVER_LABELS.get(str(d), str(d))) for d in out["driver"]]
    out = out.sort_values(["n_churned_naming", "driver"], ascending=[False, True], kind="stable")
    out = out[["driver", "n_churned_naming", "share", "csat_mean"]].reset_index(drop=True)
    out.attrs["n_lost"] = len(when)
    return out


def describe_churn_reasons(result: pd.DataFrame | None) -> Finding | None:
    """The driver most named by the churned customers who answered a survey before leaving, when one leads."""
    if result is None or result.empty:
        return None
    n = int(result["n_churned_naming"].sum())
    top = result.iloc[0]
    if n < 10 or (len(result) > 1 and result["n_churned_naming"].iloc[1] == top["n_churned_naming"]):
        return None
    text = _("Of the {n} churned customers who answered a survey in their last year, {share} named {driver} "
             "(CSAT {csat} on average).", n=_fmt(n, "count"), share=_fmt(top["share"], "share"),
             driver=str(top["driver"]), csat=_fmt(top["csat_mean"], "score"))
    return finding(text, "watch", kpi="customer_churn_rate", recommendation=_(
        "Put {driver} first on the agenda of the next customer reviews, and call the customers who named it and are "
        "still here.", driver=str(top["driver"])))


# ------------------------------------------------------------------------------------------ churn risk

#: A customer's churn risk is for the next `HORIZON_DAYS` days after the reference date: two quarters, so that
#: customers whose renewal falls due soon are warned about before it lapses (with a yearly term plus grace, churn
#: within one quarter is mostly a renewal already overdue).
HORIZON_DAYS = 182
#: Reference dates are `REF_STEP_DAYS` apart; the model learns from the `N_REFS` latest whose outcome is known.
REF_STEP_DAYS = 91
N_REFS = 8
#: The model's random seed (explicit: same data ⇒ same scores).
SEED = 7
#: A reason is given when setting the feature to a typical retained customer's value lowers the risk this much.
MIN_REASON_LIFT = 0.02
#: At most this many reasons per customer.
MAX_REASONS = 3
#: Reasons are worked out for the customers with at least this risk (the others need no call).
REASON_MIN_RISK = 0.1
ACCOUNT_ATTRIBUTES = ("industry", "size_band", "level", "source_channel", "country")

FEATURE_LABELS = {
    "days_since_purchase": N_("Days since the last purchase"),
    "n_purchases_2y": N_("Purchases in 2 years"),
    "revenue_2y": N_("Revenue in the last 2 years"),
    "tenure_days": N_("Days as a customer"),
    "n_activities_90d": N_("Activities in the last 90 days"),
    "activity_change": N_("Change of activity (last 90 days vs the 180 before)"),
    "days_since_activity": N_("Days since the last activity"),
    "n_tickets_180d": N_("Tickets in 180 days"),
    "n_unresolved": N_("Unresolved tickets"),
    "n_slow_first_response": N_("Tickets answered late in 180 days"),
    "csat_mean": N_("CSAT in the last year"),
    "nps_mean": N_("NPS score in the last year"),
}

register_columns({
    "risk": (N_("Churn risk"), "share"),
    "reasons": (N_("Why"), "text"),
    "annual_revenue": (N_("Yearly revenue"), "amount"),
    "revenue_at_risk": (N_("Yearly revenue at risk"), "amount"),
    "feature": (N_("Signal"), "text"),
    "auc_drop": (N_("Importance (drop of ROC AUC)"), "score"),
    "predicted": (N_("Predicted churn rate"), "share"),
    "observed": (N_("Observed churn rate"), "share"),
    "measure": (N_("Measure"), "text"),
    "result": (N_("Result"), "text"),
    "n_at_risk": (N_("Customers at high risk"), "count"),
})


class _Events:
    """Timestamps per account, for window counts/sums at many (account, time) points at once: one sorted key
    per event (account code, second) and a binary search per query — no join of the two sides."""

    def __init__(self, codes: np.ndarray, times: pd.Series, values: np.ndarray | None = None) -> None:
        secs = _seconds(times)
        ok = (codes >= 0) & ~np.isnan(secs)
        key = codes[ok].astype("float64") * _SCALE + secs[ok]
        order = np.argsort(key, kind="stable")
        self.key = key[order]
        vals = np.ones(len(key)) if values is None else np.asarray(values, dtype="float64")[ok][order]
        self.cum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(vals))])

    def _pos(self, codes: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.key, codes.astype("float64") * _SCALE + t, side="left")

    def count(self, codes: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Events of each account in [lo, hi) (seconds)."""
        return self._pos(codes, hi) - self._pos(codes, lo)

    def total(self, codes: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return self.cum[self._pos(codes, hi)] - self.cum[self._pos(codes, lo)]

    def last_before(self, codes: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Seconds of each account's latest event before t (NaN when none)."""
        pos = self._pos(codes, t) - 1
        prev = self.key[np.maximum(pos, 0)] if len(self.key) else np.zeros(len(codes))
        same = (pos >= 0) & (np.floor(prev / _SCALE) == codes) if len(self.key) else np.zeros(len(codes), bool)
        return np.where(same, prev - codes * _SCALE, np.nan)

    def first(self, codes: np.ndarray) -> np.ndarray:
        """Seconds of each account's first event (NaN when none)."""
        pos = np.searchsorted(self.key, codes.astype("float64") * _SCALE, side="left")
        nxt = self.key[np.minimum(pos, len(self.key) - 1)] if len(self.key) else np.zeros(len(codes))
        same = (pos < len(self.key)) & (np.floor(nxt / _SCALE) == codes) if len(self.key) else \
            np.zeros(len(codes), bool)
        return np.where(same, nxt - codes * _SCALE, np.nan)


_EPOCH = pd.Timestamp("1970-01-01")
_SCALE = 2.0 ** 32  # seconds per account code in an event key (times up to 2106)
DAY_S = 86_400.0


def _seconds(times: pd.Series | pd.Timestamp | Sequence[Any]) -> np.ndarray:
    if isinstance(times, pd.Timestamp):
        return np.array([(times - _EPOCH).total_seconds()])
    t = pd.to_datetime(pd.Series(times)).astype("datetime64[us]")
    return np.where(t.isna(), np.nan, (t - _EPOCH).dt.total_seconds().to_numpy(dtype="float64", na_value=np.nan))


@dataclass
class ChurnData:
    """Customers × reference dates: features known at each date and whether the customer churned within
    `horizon_days` after it (missing for the scoring date, whose future is not known yet)."""

    frame: pd.DataFrame
    numeric: list[str]
    categorical: list[str]
    mode: str  # "inferred" (from purchases), "recorded" (accounts.churned_at) or "none" (neither: no churn to learn)
    refs: list[pd.Timestamp]  # labelled reference dates, latest first
    score_ref: pd.Timestamp
    horizon_days: int
    dated: bool = True  # False: churn recorded without dates (one reference date only)
    booleans: list[str] = field(default_factory=list)  # features that were yes/no attributes (as 1/0)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def churn_dataset(accounts: pd.DataFrame, *, at: pd.Timestamp, purchases: pd.DataFrame | None = None,
                  activities: pd.DataFrame | None = None, tickets: pd.DataFrame | None = None,
                  surveys: pd.DataFrame | None = None, cover_days: int = 455, horizon_days: int = HORIZON_DAYS,
                  n_refs: int = N_REFS, attributes: Sequence[str] | None = None,
                  service_targets: Mapping[str, Sequence[float]] | None = None) -> ChurnData:
    """The churn model's rows: for the scoring date `at` and `n_refs` earlier reference dates R (`REF_STEP_DAYS`
    apart, the latest one horizon before `at`: their outcome is known), each customer of R with its features at R
    and — for the earlier dates — whether it churned in (R, R + `horizon_days`].

    Two situations, chosen from the data:

    * **recorded** — accounts carry ``churned_at`` (a subscription business): the customers at R are the accounts
      created by R that had not churned by R; churned = ``churned_at`` in (R, R + horizon]. When every recorded
      churn has the same date (a source without dates, e.g. a label and the mapping's as-of), only one reference
      date is honest (R = that date − horizon) and the model is cross-validated instead of tested on later dates.
    * **inferred** — no recorded churn: a customer is active at R while its latest purchase is less than
      `cover_days` (the run's ``churn_days``) old; churned = active at R, not active at R + horizon.

    Features (each only where its table exists): days since the last purchase, purchases in 2 years, revenue in
    the last year, days as a customer; activities in the last 90 days, their change vs the 180 days before (per
    90 days), days since the last activity; tickets in 180 days, unresolved at R, answered late; mean CSAT and
    NPS score in the last year; and the account `attributes` (default `ACCOUNT_ATTRIBUTES` and any others the
    caller adds, e.g. the source's custom fields) — numbers as numbers, the rest as categories.
    """
    at = pd.Timestamp(at)
    accounts = accounts.drop_duplicates("account_id").reset_index(drop=True)
    recorded = _records_churn(accounts)
    dated = True
    if recorded:
        churned = accounts["churned_at"].dropna()
        dated = churned.nunique() > 1
        if not dated:
            at = min(at, pd.Timestamp(churned.iloc[0]))
    refs = [at - pd.Timedelta(days=horizon_days + REF_STEP_DAYS * k) for k in range(n_refs if dated else 1)]
    codes_of = pd.Index(accounts["account_id"])
    p_codes = codes_of.get_indexer(purchases["account_id"]) if purchases is not None else None
    purch = _Events(p_codes, purchases["purchased_at"]) if purchases is not None else None
    money = _Events(p_codes, purchases["purchased_at"], purchases["amount"].to_numpy(dtype="float64", na_value=0.0)) \
        if purchases is not None and "amount" in purchases else None
    acts = _Events(codes_of.get_indexer(activities["account_id"]), activities["occurred_at"]) \
        if activities is not None and "account_id" in activities else None
    cover = cover_days * DAY_S
    rows = []
    for ref in [at, *refs]:
        r = _seconds(ref)[0]
        codes = np.arange(len(accounts))
        if recorded:
            ch = _seconds(accounts["churned_at"])
            created = _seconds(accounts["created_at"]) if "created_at" in accounts else np.full(len(codes), np.nan)
            keep = (np.isnan(ch) | (ch > r)) & (np.isnan(created) | (created <= r))
            if purch is not None:
                keep &= ~np.isnan(purch.last_before(codes, np.full(len(codes), r))) | (purch.cum[-1] == 0)
            codes = codes[keep]
            label = (~np.isnan(ch[codes]) & (ch[codes] <= r + horizon_days * DAY_S)).astype(float)
        else:
            if purch is None:
                break
            last = purch.last_before(codes, np.full(len(codes), r))
            keep = ~np.isnan(last) & (last + cover > r)
            codes = codes[keep]
            t2 = r + horizon_days * DAY_S
            last2 = purch.last_before(codes, np.full(len(codes), t2))
            label = (last2 + cover <= t2).astype(float)
        if ref is at:
            label = np.full(len(codes), np.nan)
        part = pd.DataFrame({"account_id": accounts["account_id"].to_numpy()[codes], "ref": ref, "churned": label})
        part["_code"] = codes
        rows.append(part)
    frame = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["account_id", "ref", "churned", "_code"])
    codes = frame["_code"].to_numpy(dtype="int64")
    r = _seconds(frame["ref"])
    numeric: list[str] = []

    def put(name: str, values: np.ndarray) -> None:
        frame[name] = values
        numeric.append(name)

    if purch is not None and len(frame):
        last = purch.last_before(codes, r)
        put("days_since_purchase", (r - last) / DAY_S)
        put("n_purchases_2y", purch.count(codes, r - 730 * DAY_S, r).astype(float))
        if money is not None:
            put("revenue_2y", money.total(codes, r - 730 * DAY_S, r))
        first = purch.first(codes)
        put("tenure_days", np.where(first < r, (r - first) / DAY_S, np.nan))
    if acts is not None and len(frame):
        recent = acts.count(codes, r - 90 * DAY_S, r).astype(float)
        before = acts.count(codes, r - 270 * DAY_S, r - 90 * DAY_S) / 2.0
        put("n_activities_90d", recent)
        frame["_activities_before"] = before  # for the reasons' words, not a feature
        put("activity_change", np.where(before > 0, recent / np.where(before > 0, before, 1) - 1.0, np.nan))
        put("days_since_activity", (r - acts.last_before(codes, r)) / DAY_S)
    if tickets is not None and len(frame) and "account_id" in tickets:
        for name, values in _ticket_features(frame, tickets, service_targets).items():
            put(name, values)
    if surveys is not None and len(frame) and "account_id" in surveys:
        s_codes = codes_of.get_indexer(surveys["account_id"])
        for col in ("csat", "nps"):
            if col not in surveys:
                continue
            values = pd.to_numeric(surveys[col], errors="coerce")
            tot = _Events(s_codes, surveys["responded_at"], values.to_numpy(dtype="float64", na_value=np.nan))
            cnt = _Events(s_codes, surveys["responded_at"], values.notna().to_numpy(dtype="float64"))
            k = cnt.total(codes, r - 365 * DAY_S, r)
            put(f"{col}_mean", np.where(k > 0, tot.total(codes, r - 365 * DAY_S, r) / np.where(k > 0, k, 1), np.nan))
    categorical: list[str] = []
    booleans: list[str] = []
    wanted = list(ACCOUNT_ATTRIBUTES) + [a for a in (attributes or ()) if a not in ACCOUNT_ATTRIBUTES]
    for col in wanted:
        if col not in accounts.columns or col in ("account_id", "churned_at") or accounts[col].notna().sum() == 0:
            continue
        values = accounts[col].to_numpy()[codes] if len(frame) else accounts[col].iloc[:0].to_numpy()
        series = accounts[col]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            frame[col] = pd.to_numeric(pd.Series(values), errors="coerce").astype("float64").to_numpy()
            numeric.append(col)
            if pd.api.types.is_bool_dtype(series):
                booleans.append(col)
        elif pd.api.types.is_datetime64_any_dtype(series):
            frame[col] = (r - _seconds(pd.Series(values))) / DAY_S
            numeric.append(col)
        elif series.nunique() <= 50:  # identifiers and free text are not features
            frame[col] = pd.Categorical(pd.Series(values, dtype="string").fillna(UNKNOWN),
                                        categories=sorted(set(series.astype("string").fillna(UNKNOWN))))
            categorical.append(col)
    frame = frame.drop(columns="_code")
    mode = "recorded" if recorded else "inferred" if purchases is not None else "none"
    return ChurnData(frame=frame, numeric=numeric, categorical=categorical, mode=mode, refs=refs, score_ref=at,
                     horizon_days=horizon_days, dated=dated, booleans=booleans)


def _ticket_features(frame: pd.DataFrame, tickets: pd.DataFrame,
                     service_targets: Mapping[str, Sequence[float]] | None) -> dict[str, np.ndarray]:
    """Per row of `frame` (account_id, ref): tickets opened in the 180 days before ref, those still unresolved at
    ref, and those whose first-response target was missed by then."""
    t = _ticket_frame(tickets, pd.Timestamp.max.floor("D"), _targets(service_targets))
    t["account_id"] = tickets["account_id"]
    t = t[t["account_id"].notna()][["account_id", "opened_at", "resolved_at", "first_missed_at"]]
    left = pd.DataFrame({"row": np.arange(len(frame)), "account_id": frame["account_id"].to_numpy(),
                         "ref": pd.to_datetime(frame["ref"]).to_numpy()})
    m = left.merge(t, on="account_id", how="inner")
    ref = m["ref"]
    m = m[(m["opened_at"] < ref) & (m["opened_at"] >= ref - pd.Timedelta(days=180))]
    ref = m["ref"]
    g = pd.DataFrame({"row": m["row"].to_numpy(), "n": 1.0, "open": (~(m["resolved_at"] < ref)).to_numpy(float),
                      "slow": (m["first_missed_at"] < ref).to_numpy(float)}).groupby("row").sum()
    out = {}
    for name, col in (("n_tickets_180d", "n"), ("n_unresolved", "open"), ("n_slow_first_response", "slow")):
        values = np.zeros(len(frame))
        values[g.index.to_numpy()] = g[col].to_numpy()
        out[name] = values
    return out


@dataclass
class ChurnModel:
    """A fitted churn early-warning model, its checks and the scored customers (see `fit_churn_model`)."""

    data: ChurnData
    validation: str  # "time" (trained on earlier reference dates, tested on the latest) or "cv" (5-fold)
    auc: float | None
    precision_top_decile: float | None
    base_rate: float | None
    brier: float | None
    n_train: int
    n_test: int
    calibration: pd.DataFrame
    importance: pd.DataFrame
    scores: pd.DataFrame  # per customer at the scoring date: risk, reasons (text), reason_features
    test_scores: pd.DataFrame  # the test rows: account_id, churned, risk, reason_features
    message: str = ""  # why there is no model, when there is none
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.message


def _estimator(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        learning_rate=0.1, max_iter=100, max_leaf_nodes=15, min_samples_leaf=40, l2_regularization=1.0,
        categorical_features="from_dtype", early_stopping=False, random_state=seed)


class _Platt:
    """A fitted classifier whose probabilities are recalibrated by Platt scaling: a logistic regression
    (scikit-learn) of the outcome on the log-odds of the model's probability, learnt on rows of a later date than
    its training. With one class only among those rows, the probabilities stay as the model gives them
    (`calibrated` False). (scikit-learn's `CalibratedClassifierCV` cross-validates even a frozen model, which
    fails on a date with a handful of churns.)"""

    def __init__(self, model: Any, X: pd.DataFrame, y: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        self.model = model
        self.calibrated = 0 < int(y.sum()) < len(y)
        self.platt = LogisticRegression(C=1e6).fit(self._logit(X), y) if self.calibrated else None

    def _logit(self, X: pd.DataFrame) -> np.ndarray:
        p = np.clip(self.model.predict_proba(X)[:, 1], 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p)).reshape(-1, 1)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.platt.predict_proba(self._logit(X)) if self.platt is not None else self.model.predict_proba(X)


def _calibrated(model: Any, X: pd.DataFrame, y: np.ndarray) -> _Platt:
    """`model` (fitted) with sigmoid (Platt) calibration learnt on (X, y) — rows of a later date than its training."""
    return _Platt(model, X, y)


def _precision_top(y: np.ndarray, p: np.ndarray, share: float = 0.1) -> float | None:
    if not len(y):
        return None
    k = max(1, round(share * len(y)))
    top = np.argsort(-p, kind="stable")[:k]
    return float(y[top].mean())


def _typical(X: pd.DataFrame, y: np.ndarray, data: ChurnData) -> dict[str, Any]:
    """A retained customer's typical value of each feature (median; most frequent category)."""
    kept = X[y == 0] if (y == 0).any() else X
    out: dict[str, Any] = {}
    for c in data.numeric:
        v = kept[c].median()
        out[c] = v if pd.notna(v) else np.nan
    for c in data.categorical:
        counts = kept[c].value_counts()
        out[c] = counts.index[0] if len(counts) else UNKNOWN
    return out


def _reasons(model: Any, X: pd.DataFrame, typical: Mapping[str, Any], data: ChurnData) -> list[list[str]]:
    """Per row, the features that push its risk up most: each feature set to a typical retained customer's
    value in turn, and the fall of the predicted risk measured (features whose value is typical give none)."""
    if X.empty:
        return []
    base = model.predict_proba(X)[:, 1]
    lifts = np.zeros((len(X), len(data.features)))
    for j, name in enumerate(data.features):
        moved = X.copy()
        value = typical[name]
        if name in data.categorical:
            moved[name] = pd.Categorical([value] * len(X), categories=X[name].cat.categories)
        else:
            moved[name] = value
        lifts[:, j] = base - model.predict_proba(moved)[:, 1]
    out = []
    for row in lifts:
        order = np.argsort(-row, kind="stable")[:MAX_REASONS]
        out.append([data.features[j] for j in order if row[j] >= MIN_REASON_LIFT])
    return out


def _some_reasons(model: Any, X: pd.DataFrame, which: np.ndarray, typical: Mapping[str, Any],
                  data: ChurnData) -> list[list[str]]:
    """`_reasons` for the rows `which` selects; none for the others."""
    out: list[list[str]] = [[] for _ in range(len(X))]
    picked = np.flatnonzero(which)
    for i, reasons in zip(picked, _reasons(model, X.iloc[picked], typical, data), strict=True):
        out[i] = reasons
    return out


def reason_text(feature: str, row: Mapping[str, Any], booleans: Sequence[str] = ()) -> str:
    """One reason in words, with the customer's own value ("activity down 80% in 90 days")."""
    v = row.get(feature)
    recent, before = row.get("n_activities_90d"), row.get("_activities_before")
    if feature in ("activity_change", "n_activities_90d") and pd.notna(before) and before > 0 and recent < before:
        return _("activity down {pct} in the last 90 days ({recent} vs {before} per 90 days before)",
                 pct=format_number(1 - recent / before, "rate", digits=0), recent=_fmt(recent, "count"),
                 before=format_number(before, "number", digits=1))
    if feature == "activity_change" and pd.notna(v):
        return _("activity up {pct} in the last 90 days", pct=format_number(v, "rate", digits=0))
    if feature == "n_activities_90d":
        return n_("{n} activity in the last 90 days", "{n} activities in the last 90 days", int(v or 0),
                  n=_fmt(v or 0, "count"))
    if feature == "days_since_activity":
        return _("no activity for {days} days", days=_fmt(v, "count")) if pd.notna(v) else _("no activity recorded")
    if feature == "n_unresolved":
        return n_("{n} unresolved ticket", "{n} unresolved tickets", int(v or 0), n=_fmt(v or 0, "count"))
    if feature == "n_slow_first_response":
        return n_("{n} ticket answered late", "{n} tickets answered late", int(v or 0), n=_fmt(v or 0, "count"))
    if feature == "n_tickets_180d":
        return n_("{n} ticket in 180 days", "{n} tickets in 180 days", int(v or 0), n=_fmt(v or 0, "count"))
    if feature == "days_since_purchase":
        return _("last purchase {days} days ago", days=_fmt(v, "count"))
    if feature == "csat_mean":
        return _("CSAT {score} in the last year", score=_fmt(v, "score")) if pd.notna(v) else _("no CSAT response")
    if feature == "nps_mean":
        return _("NPS score {score} in the last year", score=_fmt(v, "score")) if pd.notna(v) else \
            _("no NPS response")
    label = feature_label(feature)
    if feature in booleans and pd.notna(v):
        return f"{label}: {_('yes') if v else _('no')}"
    shown = format_number(v, "number" if isinstance(v, float) and not float(v).is_integer() else "count") \
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) else str(v)
    return f"{label}: {shown}"


def feature_label(feature: str) -> str:
    """A model signal's name for readers: its label, the column's registered label, or the field's own name
    (a custom field)."""
    from crmlens.present import COLUMNS

    if feature in FEATURE_LABELS:
        return _(FEATURE_LABELS[feature])
    return _(COLUMNS[feature].label) if feature in COLUMNS else feature


def fit_churn_model(data: ChurnData, *, seed: int = SEED) -> ChurnModel:
    """Fit, check and apply the churn model (scikit-learn histogram gradient boosting, sigmoid calibration).

    * **Time-based** (dated data, enough reference dates): **tested on the latest** reference date, calibrated on
      the latest one whose outcome was known by then (one horizon earlier), trained on the dates before that —
      never a random split across time, and nothing learnt from outcomes after the test date. ROC AUC, precision
      in the top decile of risk, Brier score and the calibration curve are measured on that test date. Then the
      model is fitted again with everything known (trained on all but the latest date, calibrated on the latest)
      to score the customers at the scoring date.
    * **Cross-validated** (churn without dates, or too few dates): 5-fold stratified cross-validation of the
      pooled rows gives the checks; the scoring model is calibrated by 3-fold cross-validation.

    Per-customer reasons: `_reasons`. Importance: the fall of test ROC AUC when a feature is shuffled
    (permutation importance, 3 repeats).

    Runs on one thread: the run executes notebooks side by side on every core, and OpenMP threads of several
    kernels competing for the same cores spin and slow each other down many times over (measured: 7 s alone,
    117 s beside another kernel)."""
    # before OpenMP loads with scikit-learn (threadpoolctl alone still left the first fit ~3× slower here)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _fit_churn_model(data, seed=seed)


def _fit_churn_model(data: ChurnData, *, seed: int = SEED) -> ChurnModel:
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import brier_score_loss, roc_auc_score

    frame, feats = data.frame, data.features
    labelled = frame[frame["churned"].notna()]
    current = frame[frame["churned"].isna()]
    empty_cal = pd.DataFrame(columns=["predicted", "observed", "n"])
    empty_imp = pd.DataFrame(columns=["feature", "auc_drop"])

    def none(message: str) -> ChurnModel:
        return ChurnModel(data, "", None, None, None, None, len(labelled), 0, empty_cal, empty_imp,
                          pd.DataFrame(columns=["account_id", "risk", "reasons", "reason_features"]),
                          pd.DataFrame(columns=["account_id", "churned", "risk", "reason_features"]), message)

    if data.mode == "none":
        return none(_("Churn cannot be told in this source: it records no churn date (`accounts.churned_at`) and no "
                      "purchases (`contracts`) to infer it from."))
    if not feats:
        return none(_("The source has nothing to predict churn from (no purchases, activities, tickets, surveys or "
                      "customer attributes)."))
    y_all = labelled["churned"].to_numpy(dtype=int)
    n_churned = int(y_all.sum())
    if len(labelled) < 50 or n_churned < 10 or n_churned > len(labelled) - 10:
        return none(_("Too little history to learn churn from: {n} customer-dates with {k} churns (at least 50 with "
                      "10 churns and 10 stays are needed).", n=_fmt(len(labelled), "count"),
                      k=_fmt(n_churned, "count")))
    refs = sorted(labelled["ref"].unique(), reverse=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gap = -(-data.horizon_days // REF_STEP_DAYS)  # reference dates between the test date and the calibration's
        if data.dated and len(refs) >= gap + 2:
            validation = "time"
            test = labelled[labelled["ref"] == refs[0]]
            cal = labelled[labelled["ref"] == refs[gap]]
            train = labelled[labelled["ref"] < refs[gap]]
            y_train = train["churned"].to_numpy(dtype=int)
            if not 0 < int(y_train.sum()) < len(y_train):
                return none(_("Too little history to learn churn from: the dates before {date} hold no churn (or "
                              "nothing else) to learn from.", date=str(pd.Timestamp(refs[gap]).date())))
            base = _estimator(seed).fit(train[feats], y_train)
            model = _calibrated(base, cal[feats], cal["churned"].to_numpy(dtype=int))
            y_test = test["churned"].to_numpy(dtype=int)
            p_test = model.predict_proba(test[feats])[:, 1]
            X_test, test_rows = test[feats], test
            perm_model = base  # ROC AUC only ranks: the calibration (monotone) does not change it
            n_train = len(train) + len(cal)
            # the scoring model: the same, one date later
            base2 = _estimator(seed).fit(labelled.loc[labelled["ref"] < refs[0], feats],
                                         labelled.loc[labelled["ref"] < refs[0], "churned"].to_numpy(dtype=int))
            final = _calibrated(base2, test[feats], y_test)
            explainer = base2
        else:
            from sklearn.calibration import CalibratedClassifierCV
            from sklearn.model_selection import StratifiedKFold, cross_val_predict

            validation = "cv"
            folds = StratifiedKFold(5, shuffle=True, random_state=seed)
            p_test = cross_val_predict(_estimator(seed), labelled[feats], y_all, cv=folds, method="predict_proba")[:, 1]
            y_test, X_test, test_rows = y_all, labelled[feats], labelled
            n_train = len(labelled)
            final = CalibratedClassifierCV(_estimator(seed), method="sigmoid",
                                           cv=StratifiedKFold(3, shuffle=True, random_state=seed)).fit(
                labelled[feats], y_all)
            explainer = _estimator(seed).fit(labelled[feats], y_all)
            perm_model = explainer
        auc = float(roc_auc_score(y_test, p_test)) if 0 < y_test.sum() < len(y_test) else None
        imp = permutation_importance(perm_model, X_test, y_test, scoring="roc_auc", n_repeats=3, random_state=seed) \
            if auc is not None else None
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(y_test, p_test, n_bins=10, strategy="uniform")  # empty bins dropped
    calibration = pd.DataFrame({"predicted": predicted, "observed": observed})
    importance = pd.DataFrame({"feature": feats, "auc_drop": imp.importances_mean if imp is not None else np.nan})
    importance = importance.sort_values("auc_drop", ascending=False, kind="stable").reset_index(drop=True)
    typical = _typical(labelled[feats], y_all, data)
    test_reasons = _some_reasons(explainer, X_test, (p_test >= REASON_MIN_RISK) | (y_test == 1), typical, data)
    test_scores = pd.DataFrame({"account_id": test_rows["account_id"].to_numpy(), "churned": y_test, "risk": p_test,
                                "reason_features": test_reasons})
    risk = final.predict_proba(current[feats])[:, 1] if len(current) else np.array([])
    reasons = _some_reasons(explainer, current[feats], risk >= REASON_MIN_RISK, typical, data)
    records = current.to_dict("records")
    scores = pd.DataFrame({
        "account_id": current["account_id"].to_numpy(), "risk": risk, "reason_features": reasons,
        "reasons": ["; ".join(reason_text(f, rec, data.booleans) for f in fs)
                    for fs, rec in zip(reasons, records, strict=True)],
        "annual_revenue": current["revenue_2y"].to_numpy() / 2.0 if "revenue_2y" in current else np.nan,
    })
    scores = scores.sort_values(["risk", "account_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    return ChurnModel(data, validation, auc, _precision_top(y_test, p_test), float(y_test.mean()),
                      float(brier_score_loss(y_test, p_test)), n_train, len(y_test), calibration, importance,
                      scores, test_scores)


def _custom_fields(s: Any) -> list[str]:
    """Every custom field of the slice's accounts (the churn model's extra features); none for bare frames."""
    from crmlens.data import custom_fields

    return list(custom_fields(s, "accounts")) if hasattr(s, "store") else []


@on_slice("accounts")
def churn_model(s: Any, accounts: pd.DataFrame, purchases: pd.DataFrame | None = None, *, ctx: KpiContext,
                horizon_days: int = HORIZON_DAYS, n_refs: int = N_REFS,
                service_targets: Mapping[str, Sequence[float]] | None = None) -> ChurnModel:
    """The churn early-warning model of the slice's customers (`churn_dataset`, `fit_churn_model`): history
    read in the engine over the `n_refs` + 3 periods before the reference time; the region's accounts."""
    at = reference_time(ctx)
    # periods of history (of the slice's kind): the reference dates, the horizon, and two years of features
    days = horizon_days + REF_STEP_DAYS * n_refs + 730
    span = max(4, -(-days // max(1, (pd.Timestamp(ctx.period_end) - pd.Timestamp(ctx.period_start)).days)))
    activities = s.history_columns("activities", ["account_id", "occurred_at"], span) if s.has("activities") \
        else None
    tickets = s.history("tickets", span) if s.has("tickets") else None
    surveys = s.history("surveys", span) if s.has("surveys") else None
    data = churn_dataset(region_accounts(accounts, ctx), at=at, purchases=purchases, activities=activities,
                         tickets=tickets, surveys=surveys, cover_days=ctx.churn_days, horizon_days=horizon_days,
                         n_refs=n_refs, attributes=_custom_fields(s), service_targets=service_targets)
    return fit_churn_model(data)


def model_quality(model: ChurnModel | None) -> pd.DataFrame | None:
    """The model's checks as a small table for readers."""
    if model is None or not model.ok:
        return None
    how = _("time-based: trained before {date}, tested on {date}", date=str(model.data.refs[0].date())) \
        if model.validation == "time" else _("5-fold cross-validation (the source gives no churn dates)")
    rows = [
        (_("Validation"), how),
        (_("ROC AUC"), format_number(model.auc, "score")),
        (_("Precision in the top 10% of risk"), format_number(model.precision_top_decile, "share")),
        (_("Churn rate in the test"), format_number(model.base_rate, "share")),
        (_("Brier score (lower is better)"), format_number(model.brier, "number", digits=3)),
        (_("Customer-dates learnt from / tested"), f"{_fmt(model.n_train, 'count')} / {_fmt(model.n_test, 'count')}"),
    ]
    if model.data.dated:
        rows.append((_("Horizon"), format_number(model.data.horizon_days, "days", digits=0)))
    return pd.DataFrame(rows, columns=["measure", "result"])


def importance_for_readers(model: ChurnModel | None, top: int = 8) -> pd.DataFrame | None:
    if model is None or not model.ok:
        return None
    out = model.importance.head(top).copy()
    out["feature"] = [feature_label(f) for f in out["feature"]]
    return out


def describe_churn_model(model: ChurnModel | None) -> Finding | None:
    """How good the model is (ROC AUC, precision in the top decile vs the base rate) and the signals that matter
    most; or why there is none."""
    if model is None:
        return None
    if not model.ok:
        return finding(model.message, "info", kpi="customer_churn_rate")
    if model.auc is None:
        return finding(_("The churn model could not be tested: its test customers all churned or all stayed. Its "
                         "scores are a hint, not a verdict."), "info", kpi="customer_churn_rate")
    top = model.importance[model.importance["auc_drop"] > 0.005].head(3)
    signals = ", ".join(feature_label(f) for f in top["feature"])
    quality = _("The churn model ranks customers well (ROC AUC {auc}): {precision} of the riskiest tenth churned, "
                "against {base} of all.", auc=_fmt(model.auc, "score"),
                precision=_fmt(model.precision_top_decile, "share"), base=_fmt(model.base_rate, "share")) \
        if model.auc is not None and model.auc >= 0.7 else \
        _("The churn model ranks customers only weakly (ROC AUC {auc}): use its list as a hint, not a verdict.",
          auc=_fmt(model.auc, "score"))
    text = quality + (" " + _("The strongest signals: {signals}.", signals=signals) if signals else "")
    return finding(text, "info", kpi="customer_churn_rate")


def describe_churn_risk(model: ChurnModel | None, *, high: float = 0.5) -> Finding | None:
    """How many active customers have a risk of at least `high`, their revenue, and the most common reasons."""
    if model is None or not model.ok or model.scores.empty:
        return None
    risky = model.scores[model.scores["risk"] >= high]
    if risky.empty:
        return finding(_("No active customer has a churn risk of {high} or more.", high=_fmt(high, "share")), "good",
                       kpi="customer_churn_rate")
    reasons = pd.Series([f for fs in risky["reason_features"] for f in fs[:1]]).value_counts()
    common = ", ".join(feature_label(f) for f in reasons.index[:2])
    revenue = pd.to_numeric(risky["annual_revenue"], errors="coerce")
    text = n_("{n} active customer has a churn risk of {high} or more.",
              "{n} active customers have a churn risk of {high} or more.", len(risky), n=_fmt(len(risky), "count"),
              high=_fmt(high, "share"))
    if model.data.dated:
        text += " " + _("The risk is for the next {days} days.", days=model.data.horizon_days)
    if revenue.notna().any():
        text += " " + _("Their yearly revenue: {revenue}.", revenue=_fmt(float(revenue.sum()), "amount"))
    if common:
        text += " " + _("Their main reasons: {reasons}.", reasons=common)
    return finding(text, "act", kpi="customer_churn_rate", weight=min(1.0, len(risky) / max(1, len(model.scores))),
                   recommendation=_("Call these customers this week, starting with the call list below (highest "
                                    "revenue at risk first)."))


@on_slice("accounts")
def call_list(accounts: pd.DataFrame, model: ChurnModel | None, *, reps: pd.DataFrame | None = None,
              per_rep: int = 5, min_risk: float = 0.3, ids: bool = False) -> pd.DataFrame | None:
    """Per owner rep, the customers to call first: risk ≥ `min_risk`, by yearly revenue at risk (risk × the
    customer's yearly revenue over the last two years), at most `per_rep` each; with the reasons. Without owners,
    one list of 4 × `per_rep`; without purchases, by risk. `ids` keeps each customer's account_id (first column:
    charts keyed by id)."""
    if model is None or not model.ok:
        return None
    sc = model.scores[model.scores["risk"] >= min_risk].copy()
    acc = accounts.drop_duplicates("account_id").set_index("account_id")
    sc["account"] = lookup(sc["account_id"], acc["name"]).fillna(sc["account_id"]) if "name" in acc else \
        sc["account_id"]
    owner = lookup(sc["account_id"], acc["owner_rep_id"]) if "owner_rep_id" in acc else \
        pd.Series(pd.NA, index=sc.index)
    if reps is not None and "name" in reps:
        owner = lookup(owner, reps.drop_duplicates("rep_id").set_index("rep_id")["name"]).fillna(owner)
    value = pd.to_numeric(sc["annual_revenue"], errors="coerce")
    columns = ["account", "risk", "reasons"]
    key = "risk"
    if value.notna().any():  # a source with purchases: by the revenue at risk
        sc["revenue_at_risk"] = sc["risk"] * value.fillna(0.0)
        columns.insert(2, "revenue_at_risk")
        key = "revenue_at_risk"
    if owner.notna().any():  # a source with owners: a list per rep
        sc["rep"] = owner.astype("string").fillna(UNKNOWN)
        sc = sc.sort_values(["rep", key, "account_id"], ascending=[True, False, True], kind="stable")
        sc = sc.groupby("rep", sort=True).head(per_rep)
        columns.insert(0, "rep")
    else:  # nobody owns the customers: one list, as long as the per-rep lists of a small team
        sc = sc.sort_values([key, "account_id"], ascending=[False, True], kind="stable").head(per_rep * 4)
    return sc[(["account_id"] if ids else []) + columns].reset_index(drop=True)



# ------------------------------------------------------------------------------------------------ KPIs

def headline_kpis(s: Any) -> list[str]:
    """The notebook's headline KPIs for this source: the churn rate it records (``accounts.churned_at``) when it
    records churn, else the churn inferred from purchases."""
    recorded = _records_churn(s.tables["accounts"], s) if s.has("accounts") else False
    return ["csat", "nps", "first_response_on_target", "recorded_churn_rate" if recorded else "customer_churn_rate"]


@register_kpi("recorded_churn_rate", label="Recorded churn rate", unit="rate", direction="lower",
              tables=("accounts",), area=AREA,
              description="Customers the source records as lost in the period (`accounts.churned_at`) ÷ the customers "
              "the period had (created before its end, not lost before its start); not in this source when accounts "
              "carry no `churned_at`, or it is empty for every account (churn is then inferred from purchases: "
              "customer_churn_rate).")
def kpi_recorded_churn_rate(frames: Frames, ctx: KpiContext) -> float | None:
    out = recorded_churn(frames["accounts"], ctx=ctx)
    if out is None or out.empty:
        return None
    return ratio(float(out["n_churned"].sum()), float(out["n_customers"].sum()))

def _period_surveys(frames: Frames, ctx: KpiContext) -> pd.DataFrame | None:
    s = frames.get("surveys")
    if s is None:
        return None
    t = s["responded_at"]
    return s[(t >= ctx.period_start) & (t < ctx.period_end)]


@register_kpi("csat", label="CSAT", unit="score", direction="higher", tables=("surveys",), area=AREA,
              description="Mean customer satisfaction (1–5) of the survey responses in the period.")
def kpi_csat(frames: Frames, ctx: KpiContext) -> float | None:
    s = _period_surveys(frames, ctx)
    v = None if s is None else pd.to_numeric(s["csat"], errors="coerce").mean()
    return None if v is None or pd.isna(v) else float(v)


@register_kpi("nps", label="NPS", unit="score", direction="higher", tables=("surveys",), area=AREA,
              description="Net Promoter Score of the period's responses: % promoters (9–10) − % detractors (0–6).")
def kpi_nps(frames: Frames, ctx: KpiContext) -> float | None:
    s = _period_surveys(frames, ctx)
    return None if s is None else nps_score(s["nps"])


@register_kpi("first_response_on_target", label="First response on target", unit="rate", direction="higher",
              tables=("tickets",), area=AREA,
              description="Share of the tickets opened in the period whose first response came within its target "
              "(by priority: low 48 h, medium 16 h, high 6 h, urgent 2 h); tickets whose deadline is still ahead "
              "are left out.")
def kpi_first_response_on_target(frames: Frames, ctx: KpiContext) -> float | None:
    t = frames["tickets"]
    at = reference_time(ctx)
    t = t[(t["opened_at"] >= ctx.period_start) & (t["opened_at"] < at)]
    met = _ticket_frame(t, at, SERVICE_TARGETS)["first_met"]
    v = pd.to_numeric(met, errors="coerce").mean()
    return None if pd.isna(v) else float(v)
