"""A sales rep's day (销售个人工作台): the rep's open deals with their next step and whether they went stale,
and the rep's due and overdue activities (任务和约会: tasks, calls, meetings with a ``due_at``).

**Open deal**: an opportunity of the rep (``owner_rep_id``) created before the reference time (the as-of time,
capped at the period end: `crmlens.metrics.common.reference_time`) and not closed by then. Its **last
activity** is the latest activity that occurred on the deal (``opportunity_id``) by anyone up to the reference
time; its **next step** the earliest activity on it not completed yet (``completed_at`` empty) with a
``due_at``. A deal is **stale** when nothing happened on it for `STALE_DAYS` days (or ever, if it is older than
that) or when its expected close date has passed while it is still open.

**Due activity**: an activity of the rep (``rep_id``) with a ``due_at``, not completed and not occurred by the
reference time. It is **overdue** when ``due_at`` is before the reference time, **due** when within the next
`DUE_DAYS` days.

Both take the activity history (not just the period's rows): a deal's last activity or an overdue task may
be older than the period. With a slice: ``myday.pipeline_of(s, "R0001")``, ``myday.agenda_of(s, "R0001")``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from crmlens.errors import ParameterError
from crmlens.findings import Finding
from crmlens.i18n import N_, _, format_number, n_
from crmlens.kpis import KpiContext
from crmlens.metrics.common import reference_time

#: Days without activity after which an open deal counts as stale.
STALE_DAYS = 30
#: Activities due within this many days after the reference time are listed as due.
DUE_DAYS = 7
#: Periods of activity history read for the last activity and overdue tasks (a year of quarters).
HISTORY_PERIODS = 4

PIPELINE_COLUMNS = ["opportunity_id", "account_id", "account_name", "stage", "amount", "expected_close_date",
                    "last_activity_at", "days_since_activity", "next_step", "next_step_due_at", "is_stale",
                    "close_date_passed"]
AGENDA_COLUMNS = ["activity_id", "activity_type", "due_at", "status", "days_overdue", "account_id",
                  "account_name", "opportunity_id"]
STATUS_LABELS = {"overdue": N_("overdue"), "due": N_("due")}

_DAY = pd.Timedelta(days=1)


def _check_rep(rep: object) -> str:
    if not isinstance(rep, str) or not rep.strip():
        raise ParameterError(f"rep: {rep!r} is not a rep; use a rep_id of the source's reps table")
    return rep.strip()


def _check_days(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ParameterError(f"{name}: {value!r} is not allowed; use a whole number of days > 0")
    return value


def _names(accounts: pd.DataFrame | None) -> pd.Series:
    if accounts is None or "name" not in accounts.columns:
        return pd.Series(dtype="string")
    first = accounts.drop_duplicates("account_id")
    return pd.Series(first["name"].astype("string").to_numpy(), index=first["account_id"].astype("string"))


def _times(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us]")
    return pd.to_datetime(frame[column])


def pipeline(opportunities: pd.DataFrame, activities: pd.DataFrame | None, accounts: pd.DataFrame | None,
             ctx: KpiContext, rep: str, *, stale_days: int = STALE_DAYS) -> pd.DataFrame:
    """The open deals of `rep` at the reference time (see the module doc), stale ones first, then by amount
    (largest first) and opportunity_id: `PIPELINE_COLUMNS`. `activities` is the activity history (None when the
    source has none: no last activity, no next step, and staleness only from the close date)."""
    rep, stale_days = _check_rep(rep), _check_days("stale_days", stale_days)
    now = reference_time(ctx)
    opps = opportunities[opportunities["owner_rep_id"].astype("string") == rep]
    created, closed = _times(opps, "created_at"), _times(opps, "closed_at")
    opps = opps[((created.isna() | (created <= now)) & (closed.isna() | (closed > now))).fillna(False).to_numpy()]
    if opps.empty:
        return pd.DataFrame(columns=PIPELINE_COLUMNS)
    out = pd.DataFrame({"opportunity_id": opps["opportunity_id"].astype("string").to_numpy(),
                        "account_id": opps["account_id"].astype("string").to_numpy(),
                        "stage": opps["stage"].astype("string").to_numpy(),
                        "amount": pd.to_numeric(opps["amount"], errors="coerce").to_numpy("float64"),
                        "expected_close_date": _times(opps, "expected_close_date").to_numpy()})
    out["account_name"] = out["account_id"].map(_names(accounts)).astype("string")
    created = _times(opps, "created_at").reset_index(drop=True)
    last = pd.Series(pd.NaT, index=out.index, dtype="datetime64[us]")
    next_at = pd.Series(pd.NaT, index=out.index, dtype="datetime64[us]")
    next_step = pd.Series(pd.NA, index=out.index, dtype="string")
    if activities is not None and len(activities) and "opportunity_id" in activities.columns:
        acts = activities[activities["opportunity_id"].astype("string").isin(set(out["opportunity_id"]))]
        deal = acts["opportunity_id"].astype("string")
        occurred = _times(acts, "occurred_at")
        done = occurred.notna() & (occurred <= now)
        latest = occurred[done].groupby(deal[done]).max()
        last = pd.Series(latest.reindex(out["opportunity_id"]).to_numpy(), index=out.index).astype("datetime64[us]")
        due, completed = _times(acts, "due_at"), _times(acts, "completed_at")
        open_ = due.notna() & (completed.isna() | (completed > now)) & ~done
        upcoming = acts.loc[open_.to_numpy()].assign(_due=due[open_], _deal=deal[open_])
        upcoming = upcoming.sort_values(["_deal", "_due", "activity_id"], kind="mergesort").drop_duplicates("_deal")
        by_deal = upcoming.set_index("_deal")
        next_at = pd.Series(by_deal["_due"].reindex(out["opportunity_id"]).to_numpy(), index=out.index
                            ).astype("datetime64[us]")
        next_step = pd.Series(by_deal["activity_type"].astype("string").reindex(out["opportunity_id"]).to_numpy(),
                              index=out.index, dtype="string")
    since = (now - last.fillna(created)).dt.days
    out["last_activity_at"] = last
    out["days_since_activity"] = ((now - last).dt.days).astype("Float64")
    out["next_step"] = next_step.astype("string")
    out["next_step_due_at"] = next_at
    out["close_date_passed"] = (out["expected_close_date"] < now.normalize()).fillna(False).astype(bool)
    out["is_stale"] = ((since.isna() | (since >= stale_days)) | out["close_date_passed"]).fillna(False).astype(bool)
    out = out.sort_values(["is_stale", "amount", "opportunity_id"], ascending=[False, False, True],
                          na_position="last", kind="mergesort")
    return out[PIPELINE_COLUMNS].reset_index(drop=True)


def agenda(activities: pd.DataFrame | None, accounts: pd.DataFrame | None, ctx: KpiContext, rep: str, *,
           due_days: int = DUE_DAYS) -> pd.DataFrame:
    """The due and overdue activities of `rep` at the reference time (see the module doc), by due time:
    `AGENDA_COLUMNS` (status ``overdue`` / ``due``, days_overdue for the overdue ones)."""
    rep, due_days = _check_rep(rep), _check_days("due_days", due_days)
    if activities is None or "due_at" not in activities.columns:
        return pd.DataFrame(columns=AGENDA_COLUMNS)
    now = reference_time(ctx)
    acts = activities[activities["rep_id"].astype("string") == rep]
    due, occurred, completed = _times(acts, "due_at"), _times(acts, "occurred_at"), _times(acts, "completed_at")
    open_ = due.notna() & (occurred.isna() | (occurred > now)) & (completed.isna() | (completed > now))
    shown = open_ & (due < now + due_days * _DAY)
    acts, due = acts.loc[shown.to_numpy()], due[shown]
    if acts.empty:
        return pd.DataFrame(columns=AGENDA_COLUMNS)
    out = pd.DataFrame({"activity_id": acts["activity_id"].astype("string").to_numpy(),
                        "activity_type": acts["activity_type"].astype("string").to_numpy(),
                        "due_at": due.to_numpy(),
                        "account_id": acts["account_id"].astype("string").to_numpy(),
                        "opportunity_id": (acts["opportunity_id"].astype("string").to_numpy()
                                           if "opportunity_id" in acts.columns else pd.NA)})
    out["status"] = pd.Series(["overdue" if d < now else "due" for d in out["due_at"]], dtype="string")
    overdue_days = (now - out["due_at"]).dt.days
    out["days_overdue"] = overdue_days.where(out["status"] == "overdue").astype("Float64")
    out["account_name"] = out["account_id"].map(_names(accounts)).astype("string")
    out = out.sort_values(["due_at", "activity_id"], kind="mergesort")
    return out[AGENDA_COLUMNS].reset_index(drop=True)


def pipeline_of(s: Any, rep: str, *, stale_days: int = STALE_DAYS) -> pd.DataFrame | None:
    """`pipeline` for a slice (or a dashboard View): its opportunities, its activity history (`HISTORY_PERIODS`
    periods) and accounts; None when the source has no opportunities."""
    if s.missing("opportunities"):
        return None
    from crmlens import notebook

    acts = None if s.missing("activities") else s.history("activities", HISTORY_PERIODS)
    return pipeline(s.tables["opportunities"], acts, s.tables.get("accounts"), notebook.context(s), rep,
                    stale_days=stale_days)


def agenda_of(s: Any, rep: str, *, due_days: int = DUE_DAYS) -> pd.DataFrame | None:
    """`agenda` for a slice (or a dashboard View); None when the source has no activities."""
    if s.missing("activities"):
        return None
    from crmlens import notebook

    return agenda(s.history("activities", HISTORY_PERIODS), s.tables.get("accounts"), notebook.context(s), rep,
                  due_days=due_days)


def describe_pipeline(result: pd.DataFrame | None) -> Finding | None:
    """"N open deals worth X; K of them stale, worth Y" with what to do; None without open deals."""
    if result is None or result.empty:
        return None
    n, total = len(result), result["amount"].sum(min_count=1)
    stale = result[result["is_stale"]]
    text = n_("{n} open deal worth {amount}", "{n} open deals worth {amount}", n, n=format_number(n, "count"),
              amount=format_number(total, "amount"))
    if stale.empty:
        return Finding(_("{deals}; none is stale: each had activity in the last {days} days and none is past "
                         "its close date.", deals=text, days=STALE_DAYS), "good", weight=0.3)
    return Finding(
        _("{deals}; {k} stale (no activity for {days} days, or past the expected close date), worth {amount}.",
          deals=text, k=format_number(len(stale), "count"), days=STALE_DAYS,
          amount=format_number(stale["amount"].sum(min_count=1), "amount")),
        "act", recommendation=_("Give each stale deal a next step today, or close it as lost."), weight=0.6)


def describe_agenda(result: pd.DataFrame | None) -> Finding | None:
    """"K overdue, M due in the next 7 days"; None when nothing is due."""
    if result is None or result.empty:
        return None
    overdue = int((result["status"] == "overdue").sum())
    due = len(result) - overdue
    text = _("{overdue} overdue and {due} due in the next {days} days.", overdue=format_number(overdue, "count"),
             due=format_number(due, "count"), days=DUE_DAYS)
    if overdue:
        return Finding(text, "act", recommendation=_("Do or reschedule the overdue ones first."), weight=0.5)
    return Finding(text, "good", weight=0.2)
