"""Forecast and alerts (预测与预警) on the slice: the entry points of ``notebooks/09_forecast_alerts.ipynb``.

- **Bookings trend forecast** (`bookings_forecast`): monthly bookings (won amount by ``closed_at``) per region ×
  product line and for the whole slice, backtested against simple baselines and forecast by the winner
  (`crmlens.forecast.series`).
- **Pipeline forecast** (`outlook`): the period's bookings from the open deals with calibrated win probabilities,
  the distribution and the probability of each target (`crmlens.forecast.pipeline`); `target_check` states how
  well those probabilities did on past quarters against the naive pace rule.
- **Alerts** (`alerts_of`): thresholds from ``params/alerts.yaml``, anomalies in every KPI's monthly history, and
  (`exceptions`) every region side by side (`crmlens.alerts`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from crmlens import alerts as al
from crmlens import kpis
from crmlens.analysis import on_slice
from crmlens.findings import Finding, finding
from crmlens.forecast import pipeline as pf
from crmlens.i18n import N_, _, format_number
from crmlens.metrics.common import fmt as _fmt
from crmlens.metrics.common import remember
from crmlens.periods import Period, shift_period
from crmlens.present import register_columns

AREA = "forecast"
#: Past quarters the target probabilities are checked on.
CHECK_PERIODS = 8
LEVEL_LABELS = {"company": N_("Company"), "region": N_("Region"), "team": N_("Team"), "rep": N_("Rep")}
CATEGORY_LABELS = {"closed": N_("Won so far"), "commit": N_("Commit"), "best_case": N_("Best case"),
                   "pipeline": N_("Pipeline"), "omitted": N_("Omitted"), "run_rate": N_("Not yet in the pipeline")}

DRIFT_LABELS = {"won": N_("Won"), "lost": N_("Lost"), "pushed": N_("Pushed out of the period"),
                "pulled_in": N_("Pulled into the period"), "added": N_("Added"), "amount_changed": N_("Amount changed"),
                "stage_changed": N_("Stage changed"), "removed": N_("Removed"), "re_estimated": N_("Re-estimated"),
                "run_rate": N_("New-deal run-rate")}

METHOD_LABELS = {"model": N_("Calibrated (stage, age, amount)"),
                 "stage_probability": N_("The CRM's stage probability")}

register_columns({
    "method": (N_("Method"), "text"),
    "brier_score": (N_("Brier score"), "number"),
    "mean_predicted_rate": (N_("Mean predicted probability"), "rate"),
    "actual_win_rate": (N_("Actual win share"), "rate"),
    "drift_change": (N_("Change"), "text"),
    "drift_effect": (N_("Effect on the forecast"), "amount"),
    "group": (N_("Group"), "text"),
    "closed_amount": (N_("Won so far"), "amount"),
    "pipeline_expected": (N_("Expected from open deals"), "amount"),
    "run_rate_expected": (N_("Expected from new deals"), "amount"),
    "expected_amount": (N_("Expected bookings"), "amount"),
    "p10": (N_("Low (P10)"), "amount"),
    "p90": (N_("High (P90)"), "amount"),
    "target_amount": (N_("Target"), "amount"),
    "target_probability": (N_("Chance of target"), "rate"),
    "expected_attainment": (N_("Expected attainment"), "rate"),
    "category": (N_("Category"), "text"),
    "n_deals": (N_("Deals"), "count"),
    "pipeline_amount_open": (N_("Open amount"), "amount"),
    "cumulative_expected": (N_("Cumulative expected"), "amount"),
    "checkpoint": (N_("Days before the period end"), "text"),
    "n_targets": (N_("Targets checked"), "count"),
    "n_points": (N_("Points backtested"), "count"),
    "backtest_note": (N_("Note"), "text"),
    "brier_model": (N_("Brier score, our probability"), "number"),
    "brier_naive": (N_("Brier score, pace rule"), "number"),
    "reached_rate": (N_("Targets reached"), "rate"),
    "month": (N_("Month"), "text"),
    "expected_low": (N_("Expected from"), "number"),
    "expected_high": (N_("Expected to"), "number"),
    "alert_kind": (N_("Alert"), "text"),
    "severity_label": (N_("Severity"), "text"),
    "alert_text": (N_("What happened"), "text"),
    "change": (N_("Change vs comparison"), "number"),
    "series": (N_("Series"), "text"),
    "model": (N_("Model"), "text"),
    "mase_score": (N_("MASE"), "number"),
    "smape_pct": (N_("sMAPE (%)"), "number"),
    "interval_coverage": (N_("Interval coverage"), "rate"),
    "is_chosen": (N_("Chosen"), "text"),
    "robust_z": (N_("Robust z-score"), "number"),
    "likely_driver": (N_("Likely driver"), "text"),
    "value_shown": (N_("This period"), "text"),
    "comparison_shown": (N_("Comparison period"), "text"),
    "change_shown": (N_("Change vs comparison"), "text"),
})


# ----------------------------------------------------------------------------------------- pipeline forecast

def pipeline_data(s: Any) -> pf.PipelineData:
    """The forecast's inputs for the slice's region, read once per slice: every deal (all history), the stage
    history, the reps' teams and the targets."""
    key = "forecast.pipeline_data"
    if key not in s.derived:
        cols = ["opportunity_id", "owner_rep_id", "region_id", "created_at", "closed_at", "is_won", "stage", "amount",
                "probability", "forecast_category", "product_id", "expected_close_date"]
        region, check = s.params.region, s._check_as_of
        opps = s.store.read_columns("opportunities", cols, region=region, as_of=check)
        history = (s.store.read_columns("opportunity_stage_history", ["opportunity_id", "stage", "entered_at",
                                                                      "exited_at"], region=region, as_of=check)
                   if s.has("opportunity_stage_history") else None)
        vocab = s.info.vocabulary
        s.derived[key] = pf.PipelineData.build(
            opps, reps=s.tables["reps"] if s.has("reps") else None, history=history,
            targets=s.tables["targets"] if s.has("targets") else None, as_of=s.as_of, won_stage=vocab.won_stage,
            lost_stage=vocab.lost_stage)
    return s.derived[key]


def _levels(s: Any) -> tuple[str, ...]:
    return pf.LEVELS if s.params.region == "all" else ("region", "team", "rep")


@on_slice("opportunities")
def outlook(s: Any, *, n_sims: int = pf.N_SIMS, seed: int = 0) -> pf.Forecast:
    """The pipeline forecast of the period under way at the as-of date (the next period once the analysis
    period is over), for the slice's levels (company, region, team, rep)."""
    data = pipeline_data(s)
    period = pf.forecast_period_for(s.period, s.as_of)
    f = pf.pipeline_forecast(data, period, s.as_of, levels=_levels(s), n_sims=n_sims, seed=seed)
    if s.has("reps") and "name" in s.tables["reps"]:  # readers know reps by name
        names = s.tables["reps"].drop_duplicates("rep_id").set_index("rep_id")["name"]
        f.summary["name"] = f.summary["key"].map(names).where(f.summary["level"] == "rep")
    if not s.has("targets"):
        f.summary.attrs["no_targets"] = s.info.source
    return f


def forecast_table(f: pf.Forecast | None, level: str = "region") -> pd.DataFrame | None:
    """A reader's table of one level of the forecast: won so far, expected from open and new deals, the expected
    bookings with their 80 % range, the target and the chance of reaching it."""
    if f is None:
        return None
    rows = f.summary[f.summary["level"] == level]
    if rows.empty:
        return None
    named = level == "rep" and "name" in rows and rows["name"].notna().any()
    out = rows.rename(columns={"key": "group"})[["group", *(["name"] if named else []), "closed_amount",
                                                 "pipeline_expected", "run_rate_expected", "expected_amount", "p10",
                                                 "p90", "target_amount", "target_probability", "expected_attainment"]]
    out = out.sort_values(["target_probability", "expected_amount"], ascending=[True, False], na_position="last")
    if out["target_amount"].isna().all():
        out = out.drop(columns=["target_amount", "target_probability", "expected_attainment"])
    return out.reset_index(drop=True)


def category_table(f: pf.Forecast | None) -> pd.DataFrame | None:
    """Expected bookings by forecast category (won so far, commit, best case, pipeline) and from new deals."""
    if f is None:
        return None
    c = f.categories.copy()
    c["category"] = [_(CATEGORY_LABELS.get(k, k)) for k in c["forecast_category"]]
    return c.rename(columns={"amount": "pipeline_amount_open"})[
        ["category", "n_deals", "pipeline_amount_open", "expected_amount", "cumulative_expected"]]


def chance(p: float) -> str:
    """A simulated probability as a reader reads it: "> 99 %" and "< 1 %" at the ends (a finite number of
    simulations never proves certainty), else the percentage."""
    if p >= 0.995:
        return _("over 99 %")
    if p <= 0.005:
        return _("under 1 %")
    return _fmt(p, "rate", digits=0)


def describe_outlook(f: pf.Forecast | None) -> Finding | None:
    """The expected bookings with their range and the chance of the target; the group least likely to reach its
    target (unique, below 50 %) is named."""
    if f is None or f.summary.empty:
        return None
    top_level = f.summary["level"].iloc[0]
    top = f.summary[f.summary["level"] == top_level].iloc[0] if top_level == "company" or \
        (f.summary["level"] == top_level).sum() == 1 else None
    if top is None:
        return None
    low, high = _fmt(top["p10"], "amount"), _fmt(top["p90"], "amount")
    parts = {"period": f.period.label, "as_of": f.t.strftime("%Y-%m-%d"),
             "expected": _fmt(top["expected_amount"], "amount"), "closed": _fmt(top["closed_amount"], "amount"),
             "pipe": _fmt(top["pipeline_expected"], "amount"), "new": _fmt(top["run_rate_expected"], "amount")}
    if low == high:  # nothing left uncertain (e.g. no open deal with an amount): a range "X–X" says nothing
        text = _("For {period} (as of {as_of}) we expect bookings of {expected}, with no uncertainty left in the "
                 "forecast: {closed} won so far, {pipe} from open deals and {new} from deals not yet in the "
                 "pipeline.", **parts)
    else:
        text = _("For {period} (as of {as_of}) we expect bookings of {expected} (80 % range {low}–{high}): {closed} "
                 "won so far, {pipe} from open deals and {new} from deals not yet in the pipeline.", low=low,
                 high=high, **parts)
    unknown = int((~f.deals["amount_known"]).sum()) if "amount_known" in f.deals else 0
    if unknown:
        text = _("{text} {n} of the {total} open deals have no amount in this source and count for nothing.",
                 text=text, n=_fmt(unknown, "count"), total=_fmt(len(f.deals), "count"))
    if pd.isna(top["target_amount"]):
        why = f.summary.attrs.get("no_targets")
        text = _("{text} The chance of reaching the target cannot be stated: {why}", text=text,
                 why=_("the source has no targets table.") if why else _("no target is set for the period."))
        return finding(text, "info", kpi="bookings_amount", weight=0.3)
    prob = float(top["target_probability"])
    text = _("{text} Target {target}: the chance of reaching it is {prob}.", text=text,
             target=_fmt(top["target_amount"], "amount"), prob=chance(prob))
    lower = f.summary[(f.summary["level"] != top_level) & f.summary["target_probability"].notna()]
    lower = lower[lower["level"] == (lower["level"].iloc[0] if len(lower) else "")]
    rec = ""
    if len(lower):
        worst = lower[lower["target_probability"] == lower["target_probability"].min()]
        if len(worst) == 1 and worst["target_probability"].iloc[0] < 0.5:
            w = worst.iloc[0]
            level_label = LEVEL_LABELS[w["level"]]
            text = _("{text} Least likely: {level} {key}, {prob} (expected {expected} vs {target}).", text=text,
                     level=_(level_label).lower(), key=w["key"],
                     prob=chance(w["target_probability"]),
                     expected=_fmt(w["expected_amount"], "amount"), target=_fmt(w["target_amount"], "amount"))
            rec = _("Review {key}'s commit and best-case deals now and pull forward what can close in {period}; "
                    "add pipeline there for the next period.", key=w["key"], period=f.period.label)
    severity = "act" if prob < 0.3 else "watch" if prob < 0.6 or rec else "good"
    return finding(text, severity, rec, kpi="bookings_amount", weight=min(1.0, abs(0.5 - prob) + 0.3))


@on_slice("opportunities", "targets")
def target_check(s: Any, *, n_periods: int = CHECK_PERIODS, n_sims: int = 300, seed: int = 0) -> pd.DataFrame:
    """The target probabilities checked on the `n_periods` complete quarters before the forecast period: the
    backtest rows (`crmlens.forecast.pipeline.target_backtest`); ``attrs["scores"]`` holds the Brier scores."""
    data = pipeline_data(s)
    period = pf.forecast_period_for(s.period, s.as_of)
    quarter = _quarter_of(period)
    past = [shift_period(quarter, -k) for k in range(n_periods, 0, -1)]
    levels = ("company", "region", "team") if s.params.region == "all" else ("region", "team")
    bt = pf.target_backtest(data, past, levels=levels, n_sims=n_sims, seed=seed)
    bt.attrs["scores"] = pf.brier_scores(bt)
    return bt


def _quarter_of(period: Period) -> Period:
    from crmlens.periods import parse_period

    q = (period.start.month - 1) // 3 + 1
    return parse_period(f"{period.start.year}-Q{q}")


def check_table(bt: pd.DataFrame | None) -> pd.DataFrame | None:
    """The Brier scores per point before the period end, and overall."""
    if bt is None or bt.empty:
        return None
    sc = bt.attrs["scores"].copy()
    sc["checkpoint"] = [_("{n} days", n=int(d)) if pd.notna(d) else _("All") for d in sc["days_before_end"]]
    return sc.rename(columns={"n": "n_targets"})[["checkpoint", "n_targets", "brier_model", "brier_naive",
                                                  "reached_rate"]]


def describe_target_check(bt: pd.DataFrame | None) -> Finding | None:
    """Whether our probabilities beat the pace rule on past quarters (Brier score, lower is better)."""
    if bt is None or bt.empty:
        return None
    total = bt.attrs["scores"].iloc[-1]
    ours, naive = float(total["brier_model"]), float(total["brier_naive"])
    text = _("Checked on {n} past targets ({periods}, stated 60, 30 and 10 days before each quarter end), our "
             "probability scored {ours} (Brier score, lower is better) against {naive} for the pace rule "
             "\"attainment so far ÷ elapsed share\".", n=int(total["n"]),
             periods=f"{bt['period'].iloc[0]}..{bt['period'].iloc[-1]}", ours=f"{ours:.3f}", naive=f"{naive:.3f}")
    if ours < naive:
        return finding(_("{text} The forecast's probabilities can be trusted more than the pace.", text=text), "info",
                       weight=0.3)
    return finding(_("{text} On this source the pace rule did better: read the probabilities with care.",
                     text=text), "watch", weight=0.4)


@on_slice("opportunities")
def win_calibration(s: Any) -> pd.DataFrame:
    """Deal-level check of the calibrated win probabilities vs the CRM's stage probability, on the deals open at
    the ends of the last four quarters more than 90 days ago (`crmlens.forecast.pipeline.deal_calibration`)."""
    data = pipeline_data(s)
    last = pd.Timestamp(s.as_of) - pd.Timedelta(days=pf.GAP_DAYS)
    cutoffs = [(last - pd.DateOffset(months=3 * k)).to_period("Q").to_timestamp(how="end") for k in range(4)]
    out = pf.deal_calibration(data, sorted(cutoffs))
    out["method"] = [_(METHOD_LABELS.get(m, m)) for m in out["source"]]
    return out.rename(columns={"n": "n_deals", "brier": "brier_score", "mean_predicted": "mean_predicted_rate",
                               "win_share": "actual_win_rate"})[["method", "n_deals", "brier_score",
                                                                 "mean_predicted_rate", "actual_win_rate"]]


# ----------------------------------------------------------------------------------------- drift

def previous_snapshot(s: Any, f: pf.Forecast | None) -> dict[str, Any] | None:
    """The latest forecast of the same period and region kept by an earlier run (``forecast.json`` in the runs
    beside this one — or in ``outputs/`` outside a run), made at or before this forecast's time."""
    import glob

    from crmlens import paths

    if f is None:
        return None
    best: tuple[Any, ...] | None = None
    region = glob.escape(paths.safe_component(s.params.region))
    for path, snap in paths.earlier_run_records(f"*/{region}/*/forecast.json"):
        if snap.get("period") != f.period.label or snap.get("region") != s.params.region:
            continue
        made = pd.Timestamp(snap.get("as_of"))
        if made > f.t:
            continue
        key = (made, path.stat().st_mtime)
        if best is None or key > best[0]:
            best = (key, snap, path)
    if best is None:
        return None
    best[1]["_path"] = str(best[2])
    return best[1]


def forecast_drift(s: Any, f: pf.Forecast | None) -> pd.DataFrame | None:
    """How the forecast moved since the earlier run's forecast of the same period, deal by deal
    (`crmlens.forecast.snapshots.drift`); None with a note when no earlier run kept one."""
    from crmlens import notebook
    from crmlens.forecast import snapshots

    if f is None:
        return None
    before = previous_snapshot(s, f)
    if before is None:
        notebook.md(_("> No earlier run kept a forecast of {period} for {region}: the next run will show how this "
                      "one moves.", period=f.period.label, region=al.region_shown(s.params.region)))
        return None
    moves = snapshots.drift(before, snapshots.snapshot(f, s.params.region))
    moves.attrs["before_path"] = before["_path"]
    return moves


def drift_table(moves: pd.DataFrame | None) -> pd.DataFrame | None:
    """The effect of each kind of change on the expected bookings."""
    from crmlens.forecast import snapshots

    if moves is None:
        return None
    out = snapshots.drift_summary(moves)
    out["change"] = [_(DRIFT_LABELS.get(c, c)) for c in out["change"]]
    return out.rename(columns={"change": "drift_change", "effect": "drift_effect"})


def describe_drift(moves: pd.DataFrame | None) -> Finding | None:
    """The move of the forecast and its largest causes."""
    if moves is None:
        return None
    a, b = moves.attrs["expected_before"], moves.attrs["expected_after"]
    by = moves.groupby("change")["effect"].sum()
    by = by[by.abs() > 0.005 * max(abs(a), 1.0)].sort_values(key=lambda x: -x.abs())
    if abs(b - a) < 0.005 * max(abs(a), 1.0) and by.empty:
        return finding(_("The forecast of {period} has not moved since the run as of {before} ({amount}).",
                         period=moves.attrs["period"], before=str(moves.attrs["before_as_of"])[:10],
                         amount=_fmt(b, "amount")), "info", weight=0.1)
    causes = _list([f"{_(DRIFT_LABELS.get(c, c))} {format_number(v, 'amount', signed=True)}"
                    for c, v in by.head(4).items()])
    text = _("Since the run as of {before}, the forecast of {period} moved from {a} to {b} ({delta}): {causes}.",
             before=str(moves.attrs["before_as_of"])[:10], period=moves.attrs["period"], a=_fmt(a, "amount"),
             b=_fmt(b, "amount"), delta=format_number(b - a, "amount", signed=True), causes=causes)
    down = b < a * 0.95
    return finding(text, "watch" if down else "info",
                   _("Go through the pushed and lost deals with their owners.") if down else "",
                   kpi="bookings_amount", weight=min(1.0, abs(b - a) / max(abs(a), 1.0) * 3))


# ----------------------------------------------------------------------------------------- bookings trend

#: Series forecast besides the total: the largest by sales.
MAX_SERIES = 8


def sales_events(s: Any) -> pd.DataFrame | None:
    """The slice's sales over all its history, one row per sale: at, amount, region_id, product_line — the won
    opportunities (by ``closed_at``), or, for a source without won opportunities, the signed contracts (by
    ``signed_at``). ``attrs["basis"]`` says which. None when the source has neither."""
    key = "forecast.sales_events"
    if key in s.derived:
        return s.derived[key]
    lines = (s.tables["products"].drop_duplicates("product_id").set_index("product_id")["product_line"]
             if s.has("products") else None)
    out = None
    if s.has("opportunities"):
        won = pipeline_data(s).deals
        won = won[won["won"] & won["closed_at"].notna()]
        if len(won):
            out = pd.DataFrame({"at": won["closed_at"].to_numpy(), "amount": won["amount"].to_numpy(float),
                                "region_id": won["region_id"].to_numpy(object),
                                "product_line": won["product_id"].map(lines).to_numpy(object) if lines is not None
                                else None})
            out.attrs["basis"] = "opportunities"
    if out is None and s.has("contracts"):
        c = s.store.read_columns("contracts", ["signed_at", "amount", "region_id", "product_id"],
                                 region=s.params.region, as_of=s._check_as_of)
        c = c[c["signed_at"].notna() & (c["signed_at"] <= s.as_of)]
        out = pd.DataFrame({"at": c["signed_at"].to_numpy(), "amount": c["amount"].astype(float).to_numpy(),
                            "region_id": c["region_id"].astype(object).to_numpy(),
                            "product_line": c["product_id"].map(lines).to_numpy(object) if lines is not None
                            else None})
        out.attrs["basis"] = "contracts"
    s.derived[key] = out
    return out


def _horizon(s: Any, freq: str, end: pd.Timestamp) -> int:
    """The rest of the forecast period and two quarters more, in steps of `freq`."""
    period = pf.forecast_period_for(s.period, s.as_of)
    days = (period.end - end).days + 182
    return max(1, int(np.ceil(days / {"D": 1, "W": 7}.get(freq, 30.44))))


def bookings_forecast(s: Any, *, freq: str | None = None, horizon: int | None = None, max_series: int = MAX_SERIES,
                      n_origins: int = 3) -> dict[str, Any] | None:
    """Sales per day, week or month (`crmlens.forecast.series.choose_freq`: the finest the data supports) for the
    slice and its largest splits (`_splits`: regions, then region × product line; a region's slice: its product
    lines), at most `max_series` besides the total, each backtested from `n_origins` origins against the baselines
    and forecast by the winner over `horizon` steps (default: the option ``forecast_alerts.horizon_days``, else the
    rest of the forecast period and two quarters).
    Returns ``{"history", "forecasts", "backtests", "freq", "basis", "left_out"}``; None (with a note) when the
    source has no sales."""
    from crmlens import notebook
    from crmlens.forecast import series

    events = sales_events(s)
    if events is None or events.empty:
        notebook.md(notebook.needs_text(["opportunities", "contracts"], s.info.source))
        return None
    as_of = pd.Timestamp(s.as_of)
    first = events["at"].min()
    freq = freq or series.choose_freq((as_of - first).days, len(events))
    step = {"D": "D", "W": "W-MON", "MS": "MS"}[freq]
    unit = as_of.to_period({"D": "D", "W": "W-SUN", "MS": "M"}[freq])
    # the unit under way at the as-of date is left out unless it is complete
    end = (unit + 1).start_time if as_of >= (unit + 1).start_time - pd.Timedelta(seconds=1) else unit.start_time
    events = events[events["at"] < end]
    total_id = s.params.region if s.params.region != "all" else _("All regions")
    groups = [(total_id, events)]
    left_out = 0
    for keys in _splits(events, s.params.region):
        sizes = events.groupby(keys)["amount"].sum().sort_values(ascending=False)
        room = max(0, max_series - (len(groups) - 1))
        left_out += max(0, len(sizes) - room)
        groups += [(k, events[keys == k]) for k in sizes.index[:room]]
    start = first.floor("D")
    frames = []
    for sid, rows in groups:
        reg = series.regular_series(rows["at"], rows["amount"], freq, start=start, end=end - pd.Timedelta(days=1))
        frames.append(pd.DataFrame({"series_id": sid, "date": reg.index, "value": reg.to_numpy(float)}))
    history = pd.concat(frames, ignore_index=True)
    days = s.params.option("forecast_alerts", "horizon_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 1096):
        from crmlens.errors import ParameterError

        raise ParameterError(f"options.forecast_alerts.horizon_days: {days!r} is not allowed; use a whole number of "
                             "days from 1 to 1096 (empty: the rest of the forecast period and two quarters)")
    horizon = horizon or (int(np.ceil(days / {"D": 1, "W": 7}.get(freq, 30.44))) if days else None) or \
        _horizon(s, freq, end)
    countries = _countries(s)
    country_of = {sid: countries.get(sid.split(" · ")[0], countries.get(s.params.region)) for sid, _ in groups}
    if s.params.region == "all":
        common = set(countries.values())
        country_of[total_id] = next(iter(common)) if len(common) == 1 else None
    # threads: a kernel (papermill, Voila) is no place for a process pool (its __main__ cannot be re-imported)
    forecasts, backtests = series.forecast_many(history, step if freq != "W" else "W", horizon, n_origins=n_origins,
                                                country_of=country_of, executor="thread")
    return {"history": history, "forecasts": forecasts, "backtests": backtests, "freq": freq,
            "basis": events.attrs.get("basis", ""), "left_out": left_out}


def _splits(events: pd.DataFrame, region: str) -> list[pd.Series]:
    """The splits forecast besides the total: for the whole company each region, then region × product line;
    for a region, its product lines. Product lines only where they split the sales (the largest under 90 %)."""
    unknown = _("(unknown)")
    lines = events["product_line"].fillna(unknown).astype(str)
    useful = events["product_line"].notna().any() and events.groupby(lines)["amount"].sum().max() < 0.9 * events[
        "amount"].sum()
    regions = events["region_id"].fillna(unknown).astype(str)
    if region != "all":
        return [lines] if useful else []
    return [regions, regions + " · " + lines] if useful else [regions]


def _countries(s: Any) -> dict[str, str]:
    if not s.has("regions") or "country" not in s.tables["regions"]:
        return {}
    r = s.tables["regions"].dropna(subset=["country"])
    return dict(zip(r["region_id"].astype(str), r["country"].astype(str), strict=True))


FREQ_LABELS = {"D": N_("daily"), "W": N_("weekly"), "MS": N_("monthly")}
MODEL_LABELS = {"prophet": N_("Prophet (trend and seasonality)"), "seasonal_naive": N_("Seasonal naive"),
                "last_year": N_("Same period last year"), "moving_average": N_("Moving average")}


def backtest_table(result: dict[str, Any] | None) -> pd.DataFrame | None:
    """Per series and model: MASE, sMAPE, interval coverage; which model forecasts the series."""
    if result is None or result["backtests"].empty:
        return None
    order = {sid: i for i, sid in enumerate(result["history"]["series_id"].unique())}
    b = result["backtests"].copy()
    b = b.iloc[np.lexsort((np.arange(len(b)), b["series_id"].map(order).to_numpy()))]
    b["model"] = [_(MODEL_LABELS.get(m, m)) for m in b["model"]]
    b["backtest_note"] = b["note"].fillna("") if "note" in b else ""
    b = b.rename(columns={"series_id": "series", "mase": "mase_score", "smape": "smape_pct",
                          "coverage": "interval_coverage", "chosen": "is_chosen"})
    return b[["series", "model", "mase_score", "smape_pct", "interval_coverage", "n_points", "is_chosen",
              "backtest_note"]].reset_index(drop=True)


def describe_bookings_forecast(result: dict[str, Any] | None) -> Finding | None:
    """On how many series the trend model beat every baseline, and the forecast of the total for the horizon."""
    if result is None or result["backtests"].empty:
        return None
    bt = result["backtests"]
    per = bt.groupby("series_id", sort=False)["beats_baselines"].first()
    n, beat = len(per), int(per.fillna(False).astype(bool).sum())
    total = result["history"]["series_id"].iloc[0]
    freq_label = FREQ_LABELS[result["freq"]]
    f = result["forecasts"][result["forecasts"]["series_id"] == total]
    text = _("Backtested on the {freq} sales history, the trend model (Prophet) beat every simple baseline on {beat} "
             "of {n} series; the others are forecast by their best baseline.", freq=_(freq_label), beat=beat, n=n)
    if len(f):
        text = _("{text} {series}: {amount} expected from {start} to {end} ({model}).",
                 text=text, series=total, amount=_fmt(f["yhat"].sum(), "amount"),
                 start=pd.Timestamp(f["date"].min()).strftime("%Y-%m-%d"),
                 end=pd.Timestamp(f["date"].max()).strftime("%Y-%m-%d"),
                 model=_(MODEL_LABELS.get(f["model"].iloc[0], f["model"].iloc[0])))
    if result.get("left_out"):
        text = _("{text} {n} smaller series were not forecast.", text=text, n=result["left_out"])
    return finding(text, "info", weight=0.2)


# ----------------------------------------------------------------------------------------------- alerts

def kpi_names(s: Any, config: al.AlertsConfig) -> list[str]:
    """The KPIs whose history is examined: the configured ones, else every KPI the source has tables for."""
    names = config.anomalies.kpis or list(kpis.load_all())
    return [n for n in names if all(s.has(t) for t in kpis.get_kpi(n).tables)]


def kpi_history_of(s: Any, config: al.AlertsConfig | None = None, region: str | None = None) -> pd.DataFrame:
    """Monthly values of the examined KPIs over the configured months, up to the as-of date."""
    config = config or al.load_alerts()
    months = config.anomalies.months
    n_periods = max(1, int(np.ceil(months / max(1, round((s.period.end - s.period.start).days / 30.44)))) + 1)
    frames = HistoryFrames(s, n_periods, region)
    return al.kpi_history(frames, _ctx(s, region), kpi_names(s, config), end=s.as_of, months=months)


class HistoryFrames(Mapping):
    """The slice's history of every table of the source (`crmlens.data.Slice.history`), each read when a KPI first
    uses it — a KPI reads two or three tables, not the twenty a source may have."""

    def __init__(self, s: Any, n_periods: int, region: str | None = None) -> None:
        self.s, self.n_periods, self.region, self._frames = s, n_periods, region, {}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self.s.info.tables:
            raise KeyError(name)
        if name not in self._frames:
            self._frames[name] = self.s.history(name, self.n_periods, region=self.region)
        return self._frames[name]

    def __contains__(self, name: object) -> bool:
        return name in self.s.info.tables

    def __iter__(self) -> Any:
        return iter(self.s.info.tables)

    def __len__(self) -> int:
        return len(self.s.info.tables)


def _list(parts: list[str]) -> str:
    """Clauses joined "a; b" (Chinese: "a；b")."""
    from crmlens import i18n

    return ("；" if i18n.current() == "zh" else "; ").join(parts)


def _ctx(s: Any, region: str | None = None) -> kpis.KpiContext:
    from crmlens import notebook

    ctx = notebook.context(s)
    if region:
        from dataclasses import replace

        ctx = replace(ctx, region=region)
    return ctx


def period_months(s: Any) -> list[str]:
    """The months of the analysis period (YYYY-MM) up to the as-of date."""
    end = min(s.period.end - pd.Timedelta(seconds=1), pd.Timestamp(s.as_of))
    return [p.strftime("%Y-%m") for p in pd.period_range(s.period.start, end, freq="M")]


def alerts_of(s: Any, history: pd.DataFrame, config: al.AlertsConfig | None = None) -> dict[str, Any]:
    """The period's alerts of the slice: threshold breaches and anomalies, with the anomaly table and the
    threshold hits of the whole history (for precision/recall and charts)."""
    config = config or al.load_alerts()
    region = s.params.region
    found = al.anomalies(history, region, z=config.anomalies.z)
    hits = al.threshold_hits(history, config.rules_for(region))
    months = period_months(s)
    currency = s.params.currency
    alerts = al.threshold_alerts(hits, region, months, currency) + al.anomaly_alerts(found, region, months, currency)
    alerts.sort(key=lambda a: (a.severity != "act", a.kpi, a.period))
    # was any month of the period judged: a threshold KPI with a value, or a KPI with an expected range?
    period = history[history["month"].isin(months) & history["complete"]]
    judged = bool(period[period["kpi"].isin({r.kpi for r in config.rules_for(region)})]["value"].notna().any()
                  or found[found["month"].isin(months)]["expected"].notna().any())
    return {"alerts": alerts, "anomalies": found, "hits": hits, "months": months, "judged": judged}


def alerts_table(result: dict[str, Any] | None) -> pd.DataFrame | None:
    """The period's alerts, most urgent first."""
    if result is None or not result["alerts"]:
        return None
    from crmlens.findings import SEVERITY_LABELS

    return pd.DataFrame([{"alert_kind": _(al.KIND_LABELS[a.kind]), "severity_label": _(SEVERITY_LABELS[a.severity]),
                          "kpi": _(kpis.get_kpi(a.kpi).label), "month": a.period, "alert_text": a.text}
                         for a in result["alerts"]])


def describe_alerts(result: dict[str, Any] | None) -> Finding | None:
    """The period's alerts in one finding; nothing when no month of the period could be judged (no threshold
    applies and no KPI has the year of history an anomaly needs) — silence is not good news then."""
    if result is None or (not result["alerts"] and not result["judged"]):
        return None
    return al.describe_alerts(result["alerts"])


def exceptions(s: Any, names: list[str] | None = None) -> pd.DataFrame | None:
    """Every region's KPIs for the period vs the comparison period side by side, outliers flagged."""
    if not s.has("regions"):
        return None
    regions = s.tables["regions"]["region_id"].dropna().astype(str).tolist()
    names = [n for n in (names or EXCEPTION_KPIS) if all(s.has(t) for t in kpis.get_kpi(n).tables)]
    if not names:
        return None
    events = sales_events(s)
    if events is not None and len(events) and events["at"].min() > s.comparison_period.start + pd.Timedelta(days=7):
        from crmlens import notebook

        notebook.md(_("> The source's sales start on {start}, after the comparison period {period} began: the "
                      "regions' changes are not compared.", start=events["at"].min().strftime("%Y-%m-%d"),
                      period=s.comparison_period.label))
        return None
    # the same table for every region: the next region's task in a reused kernel (`crmlens run`) takes it
    # from memory instead of computing every region's KPIs again
    key = _every_region_key(s, "exceptions", tuple(names))
    if key is None:
        return _exceptions(s, regions, names)
    return remember(key, lambda: _exceptions(s, regions, names))


def _every_region_key(s: Any, *parts: Any) -> tuple | None:
    """What a result computed for every region depends on: the validated source version, every parameter but
    the region, the as-of date and the language; None when the source has no version, or for a slice cut by more
    than the parameters (a dashboard view of one rep, team or segment: the dashboard keys its own results)."""
    import json

    from crmlens import i18n
    from crmlens.data import Slice

    if type(s) is not Slice:
        return None
    version = getattr(s.info.store, "version", None)
    if version is None:
        return None
    params = json.dumps(s.params.model_dump(mode="json", exclude={"region"}), sort_keys=True, default=str)
    # the time rows "in the future" are checked against is the clock when no as-of date is given: the hour it
    # falls in (the tasks of a run opened seconds apart share it; a new hour, e.g. a dashboard left open, does not)
    check = getattr(s, "_check_as_of", None)
    check = pd.Timestamp(check).floor("h") if check is not None else None
    return (str(version), str(s.info.source), params, str(s.as_of), str(check), i18n.current(),
            *parts)


def _exceptions(s: Any, regions: list[str], names: list[str]) -> pd.DataFrame:
    from dataclasses import replace

    from crmlens import notebook

    rows, frames, contexts = [], {}, {}
    n_back = 2 if s.params.comparison != "last_year" else {"quarter": 5, "month": 13, "week": 54}.get(s.period.kind, 2)
    for region in regions:
        frames[region] = cur = HistoryFrames(s, n_back, region)
        contexts[region] = ctx, before = _ctx(s, region), replace(notebook.context(s, "comparison"), region=region)
        for n in names:
            rows.append({"kpi": n, "region": region, "value": kpis.compute_kpi(n, cur, ctx),
                         "comparison_value": kpis.compute_kpi(n, cur, before)})
    table = al.cross_region(pd.DataFrame(rows))
    table["likely_driver"] = ""
    for i in table.index[table["is_outlier"]]:
        region, name = table.at[i, "region"], table.at[i, "kpi"]
        table.at[i, "likely_driver"] = _driver(s, frames[region], name, *contexts[region])
    return table


def _segments(s: Any, table: str) -> list[tuple[str, str, pd.Series | None]]:
    """(label, column, lookup) of the splits of a KPI's main table a driver is looked for in."""
    lines = (s.tables["products"].drop_duplicates("product_id").set_index("product_id")["product_line"]
             if s.has("products") else None)
    teams = s.tables["reps"].drop_duplicates("rep_id").set_index("rep_id")["team_id"] if s.has("reps") else None
    options = {"leads": [(N_("channel"), "source_channel", None)],
               "opportunities": [(N_("product line"), "product_id", lines), (N_("team"), "owner_rep_id", teams)],
               "contracts": [(N_("product line"), "product_id", lines), (N_("team"), "owner_rep_id", teams)],
               "tickets": [(N_("category"), "category", None), (N_("product line"), "product_id", lines)],
               "surveys": [(N_("product line"), "product_id", lines)],
               "activities": [(N_("activity type"), "activity_type", None)]}
    return [(label, col, lookup) for label, col, lookup in options.get(table, [])
            if col != "product_id" or lookup is not None]


class _Replaced(Mapping):
    """Frames with one table replaced (a segment's rows)."""

    def __init__(self, base: Mapping[str, pd.DataFrame], name: str, frame: pd.DataFrame) -> None:
        self.base, self.name, self.frame = base, name, frame

    def __getitem__(self, key: str) -> pd.DataFrame:
        return self.frame if key == self.name else self.base[key]

    def __contains__(self, key: object) -> bool:
        return key in self.base

    def __iter__(self) -> Any:
        return iter(self.base)

    def __len__(self) -> int:
        return len(self.base)


def _driver(s: Any, frames: Mapping[str, pd.DataFrame], name: str, ctx: kpis.KpiContext,
            before: kpis.KpiContext) -> str:
    """The segment (product line, channel, team...) of the KPI's main table whose own change moved the most in the
    direction of the region's move — for counts and amounts its share of the move — as a short text; "" when no
    split of the table has two values or the KPI has no change."""
    kpi = kpis.get_kpi(name)
    main = kpi.tables[0]
    total_now, total_before = kpis.compute_kpi(name, frames, ctx), kpis.compute_kpi(name, frames, before)
    if total_now is None or total_before is None or total_now == total_before:
        return ""
    move = total_now - total_before
    for label, col, lookup in _segments(s, main):
        rows = frames[main]
        if col not in rows:
            continue
        keys = rows[col].map(lookup) if lookup is not None else rows[col]
        values = [v for v in keys.dropna().unique()]
        if len(values) < 2:
            continue
        changes, now_sum = {}, 0.0
        for v in values:
            part = _Replaced(frames, main, rows[keys == v])
            now, then = kpis.compute_kpi(name, part, ctx), kpis.compute_kpi(name, part, before)
            now_sum += now or 0.0
            if now is not None and then is not None:
                changes[v] = now - then
        same_way = {v: c for v, c in changes.items() if c * move > 0}
        if not same_way:
            continue
        top = max(same_way, key=lambda v: abs(same_way[v]))
        # a share of the move only for a KPI that adds up over the segments (a count, a sum — not an average)
        if kpi.unit in ("count", "amount") and abs(now_sum - total_now) <= 0.01 * max(abs(total_now), 1.0):
            return _("{segment} {value}: {share} of the move", segment=_(label), value=top,
                     share=_fmt(same_way[top] / move, "rate"))
        change = kpi.format(same_way[top], "USD") if kpi.unit in ("amount", "rate") else f"{same_way[top]:+.2f}"
        return _("{segment} {value} moved most ({change})", segment=_(label), value=top, change=change)
    return ""


#: The KPIs of the cross-region report (those the source supports).
EXCEPTION_KPIS = ("leads_created", "new_opportunities", "win_rate", "bookings_amount", "avg_deal_size",
                  "sales_cycle_days", "contract_amount", "new_customers", "csat", "complaint_tickets")


def exceptions_table(table: pd.DataFrame | None) -> pd.DataFrame | None:
    """The regions whose change stands out, with the likely driver; None when none does."""
    if table is None or not table["is_outlier"].any():
        return None
    out = table[table["is_outlier"]].copy()
    # one row per KPI, each in its own unit: the numbers as readers read them
    found = [kpis.get_kpi(k) for k in out["kpi"]]
    out["value_shown"] = [k.format(v) for k, v in zip(found, out["value"], strict=True)]
    out["comparison_shown"] = [k.format(v) for k, v in zip(found, out["comparison_value"], strict=True)]
    out["change_shown"] = [f"{c:+.0%}" if k.unit in ("count", "amount") else k.format(c)
                           for k, c in zip(found, out["change"], strict=True)]
    out["kpi"] = [_(k.label) for k in found]
    return out[["region", "kpi", "value_shown", "comparison_shown", "change_shown", "robust_z", "likely_driver"]
               ].reset_index(drop=True)


def describe_exceptions(table: pd.DataFrame | None) -> Finding | None:
    """The regions whose KPI change stands out from their peers'."""
    if table is None or table.empty:
        return None
    if table["robust_z"].isna().all():  # too few regions (or changes) to compare: nothing to say
        return None
    out = table[table["is_outlier"]]
    if out.empty:
        return finding(_("No region's KPI moved far from its peers' in the period."), "info", weight=0.1)
    parts = [_("{label} in {region} ({change})", label=_(kpis.get_kpi(r.kpi).label), region=r.region,
               change=f"{r.change:+.0%}" if kpis.get_kpi(r.kpi).unit in ("count", "amount") else f"{r.change:+.2f}")
             + (_(" — likely driver: {driver}", driver=r.likely_driver) if r.likely_driver else "")
             for r in out.itertuples()]
    return finding(_("Moved far from the other regions in the period: {what}.", what=_list(parts)), "watch",
                   _("Ask the regional managers what changed there; the peers show it is not the market as a whole."),
                   weight=0.5)
