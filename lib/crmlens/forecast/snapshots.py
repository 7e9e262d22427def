"""Forecast snapshots and drift: every run keeps its pipeline forecast, and two forecasts of the same period say
how the forecast moved and which deals moved it.

A **snapshot** (`snapshot`) is a JSON record: the forecast period, the time it was made at (the data's as-of), the
summary per group (expected bookings, range, target, chance), every open deal with its amount, stage, expected
close date and expected contribution (amount × calibrated win probability × chance of closing inside the period),
the deals closed recently (won or lost) and the expected bookings of deals not yet in the pipeline. The notebook
records it (`FORECAST_MIMETYPE`); the run writes it to ``<region>/forecast.json``.

**Drift** (`drift`) between an earlier snapshot A and a later B of the same period: the expected bookings moved
from A's to B's; each deal's effect is its value in B minus its value in A (value = the amount of a deal won inside
the period, the expected contribution of an open deal, else 0), classed as **won**, **lost**, **pushed** (its
expected close date moved past the period end), **pulled in**, **added** (new since A), **amount changed**, **stage
changed**, **removed** (no longer in the source), or **re-estimated** (same deal, same facts, a new estimate as it
aged). The deals' effects and the change of the new-deal run-rate add up to the move exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

#: MIME type of a forecast snapshot in an executed notebook.
FORECAST_MIMETYPE = "application/vnd.crmlens.forecast+json"
FILENAME = "forecast.json"
VERSION = 1
#: Deals closed this many days before the period start (and after) are kept, to tell won/lost from removed.
CLOSED_DAYS = 120
CHANGE_ORDER = ("won", "lost", "pushed", "pulled_in", "added", "amount_changed", "stage_changed", "removed",
                "re_estimated", "run_rate")


def _ts(value: Any) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).isoformat()


def snapshot(f: Any, region: str, level: str | None = None) -> dict[str, Any]:
    """The JSON record of a `crmlens.forecast.pipeline.Forecast` for `region`."""
    data_deals = f.deals
    period = f.period
    summary = f.summary.replace({np.nan: None})
    top = level or f.summary["level"].iloc[0]
    deals = pd.DataFrame({
        "opportunity_id": data_deals["opportunity_id"].astype(str),
        "owner_rep_id": data_deals["owner_rep_id"].astype(object).where(data_deals["owner_rep_id"].notna(), None),
        "stage": data_deals["stage_at"].astype(str),
        "amount": data_deals["amount"].round(2),
        "expected_close_date": [None if pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d")
                                for v in data_deals["expected_close_date"]],
        "p": (data_deals["p_win"] * data_deals["p_in_period"]).round(4),
        "expected_amount": data_deals["expected_amount"].round(2),
    })
    closed = f.closed_recent if getattr(f, "closed_recent", None) is not None else pd.DataFrame(
        columns=["opportunity_id", "won", "amount", "closed_at"])
    inside = (closed["closed_at"] >= period.start) & (closed["closed_at"] < period.end) if len(closed) else []
    closed_rec = [{"opportunity_id": str(o), "won": bool(w), "in_period": bool(i), "amount": round(float(a), 2)}
                  for o, w, i, a in zip(closed["opportunity_id"], closed["won"], inside, closed["amount"],
                                        strict=True)] if len(closed) else []
    top_row = summary[summary["level"] == top].iloc[0]
    return {
        "version": VERSION, "region": region, "period": period.label, "as_of": _ts(f.t), "level": top,
        "expected_amount": top_row["expected_amount"], "run_rate_expected": top_row["run_rate_expected"],
        "summary": summary[["level", "key", "closed_amount", "pipeline_expected", "run_rate_expected",
                            "expected_amount", "p10", "p50", "p90", "target_amount", "target_probability"]
                           ].to_dict(orient="records"),
        "deals": _table(deals),
        "closed": _table(pd.DataFrame(closed_rec, columns=["opportunity_id", "won", "in_period", "amount"])),
    }


def _table(frame: pd.DataFrame) -> dict[str, Any]:
    """A frame as ``{"columns": [...], "rows": [[...], ...]}`` (compact JSON: keys are not repeated per row)."""
    return {"columns": list(frame.columns), "rows": frame.astype(object).where(frame.notna(), None).values.tolist()}


def _frame(value: Any, columns: list[str]) -> pd.DataFrame:
    if isinstance(value, Mapping):
        return pd.DataFrame(value.get("rows") or [], columns=value.get("columns") or columns)
    return pd.DataFrame(value or [], columns=columns)


def _values(snap: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    deals = _frame(snap.get("deals"), ["opportunity_id", "owner_rep_id", "stage", "amount", "expected_close_date",
                                       "p", "expected_amount"])
    closed = _frame(snap.get("closed"), ["opportunity_id", "won", "in_period", "amount"])
    return deals.set_index("opportunity_id"), closed.set_index("opportunity_id")


def _value(deals: pd.DataFrame, closed: pd.DataFrame, ids: pd.Index) -> pd.Series:
    """Each deal's value in a snapshot: the amount of a deal won inside the period, the expected contribution of
    an open deal, else 0."""
    won = closed[closed["won"].astype(bool) & closed["in_period"].astype(bool)]["amount"]
    return deals["expected_amount"].reindex(ids).fillna(won.reindex(ids)).fillna(0.0).astype(float)


def drift(before: Mapping[str, Any], after: Mapping[str, Any]) -> pd.DataFrame:
    """How the forecast of the same period moved from snapshot `before` to `after`: one row per deal whose value
    changed (or whose facts changed), then one ``run_rate`` row. Columns opportunity_id, owner_rep_id, change,
    stage_before, stage_after, amount_before, amount_after, value_before, value_after, effect. ``attrs`` hold
    the two expected totals, their times and the period."""
    if before.get("period") != after.get("period"):
        raise ValueError(f"forecasts of different periods: {before.get('period')} and {after.get('period')}")
    end = _period_end(after)
    da, ca = _values(before)
    db, cb = _values(after)
    ids = da.index.union(db.index).union(cb.index.intersection(da.index)).union(
        cb[cb["won"].astype(bool) & cb["in_period"].astype(bool)].index)
    ids = ids.difference(ca[ca["won"].astype(bool) & ca["in_period"].astype(bool)].index.intersection(
        cb[cb["won"].astype(bool) & cb["in_period"].astype(bool)].index))  # won in both: no effect
    va, vb = _value(da, ca, ids), _value(db, cb, ids)
    rows = pd.DataFrame({"opportunity_id": ids, "value_before": va.to_numpy(), "value_after": vb.to_numpy()})
    rows["owner_rep_id"] = db["owner_rep_id"].reindex(ids).fillna(da["owner_rep_id"].reindex(ids)).to_numpy()
    rows["stage_before"] = da["stage"].reindex(ids).to_numpy()
    rows["stage_after"] = db["stage"].reindex(ids).to_numpy()
    rows["amount_before"] = da["amount"].reindex(ids).to_numpy()
    rows["amount_after"] = db["amount"].reindex(ids).fillna(cb["amount"].reindex(ids)).to_numpy()
    close_a = pd.to_datetime(da["expected_close_date"].reindex(ids)).to_numpy()
    close_b = pd.to_datetime(db["expected_close_date"].reindex(ids)).to_numpy()
    in_a, in_b = da.index.intersection(ids), db.index.intersection(ids)
    was_open, is_open = rows["opportunity_id"].isin(in_a), rows["opportunity_id"].isin(in_b)
    won_b = rows["opportunity_id"].isin(cb[cb["won"].astype(bool)].index)
    lost_b = rows["opportunity_id"].isin(cb[~cb["won"].astype(bool)].index)
    inside_a = pd.Series(close_a < end) if end is not None else pd.Series(False, index=rows.index)
    inside_b = pd.Series(close_b < end) if end is not None else pd.Series(False, index=rows.index)
    amount_moved = ~np.isclose(rows["amount_before"].astype(float), rows["amount_after"].astype(float), rtol=0.005)
    change = np.select(
        [was_open & won_b, was_open & lost_b, ~was_open,
         was_open & is_open & inside_a.to_numpy() & ~inside_b.to_numpy(),
         was_open & is_open & ~inside_a.to_numpy() & inside_b.to_numpy(),
         was_open & is_open & amount_moved, was_open & is_open & (rows["stage_before"] != rows["stage_after"]),
         was_open & ~is_open],
        ["won", "lost", "added", "pushed", "pulled_in", "amount_changed", "stage_changed", "removed"],
        "re_estimated")
    rows["change"] = change
    rows["effect"] = rows["value_after"] - rows["value_before"]
    rows = rows[(rows["effect"].abs() > 0.005) | (rows["change"] != "re_estimated")]
    rr = float(after.get("run_rate_expected") or 0.0) - float(before.get("run_rate_expected") or 0.0)
    rows = pd.concat([rows, pd.DataFrame([{"opportunity_id": "", "change": "run_rate", "value_before":
                                           before.get("run_rate_expected"), "value_after":
                                           after.get("run_rate_expected"), "effect": rr}])], ignore_index=True)
    rows["order"] = rows["change"].map({c: i for i, c in enumerate(CHANGE_ORDER)})
    rows = rows.sort_values(["order", "effect"], key=lambda c: c if c.name == "order" else -c.abs()
                            ).drop(columns="order").reset_index(drop=True)
    rows.attrs.update(period=after.get("period"), before_as_of=before.get("as_of"), after_as_of=after.get("as_of"),
                      expected_before=_analytic(before), expected_after=_analytic(after))
    return rows[["opportunity_id", "owner_rep_id", "change", "stage_before", "stage_after", "amount_before",
                 "amount_after", "value_before", "value_after", "effect"]]


def _analytic(snap: Mapping[str, Any]) -> float:
    """Won inside the period + the open deals' expected contributions + the run-rate (the Monte Carlo's mean)."""
    deals, closed = _values(snap)
    won = closed[closed["won"].astype(bool) & closed["in_period"].astype(bool)]["amount"].sum()
    return float(won + deals["expected_amount"].astype(float).sum() + float(snap.get("run_rate_expected") or 0.0))


def _period_end(snap: Mapping[str, Any]) -> np.datetime64 | None:
    from crmlens.periods import parse_period

    try:
        return np.datetime64(parse_period(str(snap["period"])).end)
    except Exception:
        return None


def drift_summary(moves: pd.DataFrame) -> pd.DataFrame:
    """The effect of each kind of change, in `CHANGE_ORDER`, with the number of deals."""
    if moves.empty:
        return pd.DataFrame(columns=["change", "n_deals", "effect"])
    g = moves.groupby("change").agg(n_deals=("opportunity_id", lambda x: int((x != "").sum())),
                                    effect=("effect", "sum"))
    return g.reindex([c for c in CHANGE_ORDER if c in g.index]).reset_index()
