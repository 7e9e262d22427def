"""Data quality (数据质量: completeness, consistency, freshness) of a source, read from its validated store.

Validation (`crmlens.validate_engine`) keeps every row: the accepted rows, the rejected rows with every reason,
and the problems of rows kept with a warning. This module turns that record into what a reader can act on:

* **Tables** (`table_overview`): per table of the data model, loaded = accepted + rejected, rows warned, status
  (usable / with warnings / unusable; a table the source does not have is "not in this source", never a zero),
  and the rows of the slice's region and period.
* **Problems** (`problems_by_rule`, `problem_examples`): rows per table, column and rule, with an example value
  and the source row (file line) to look at.
* **Fixes** (`mapping_fixes`): what the mapping changed on the way in, and in how many rows.
* **Completeness** (`completeness`, `completeness_trend`): the share of empty values per column of the accepted
  rows (columns the source does not have are not counted as empty); per month for the fact tables.
* **Freshness** (`freshness`): each fact table's latest record up to the as-of, its usual gap between records,
  and whether it stopped updating (no record for `STALE_GAPS` usual gaps and at least `STALE_MIN_DAYS` days).
* **Duplicates** (`near_duplicates`): accounts whose names are the same once case, punctuation and legal forms
  are set aside, under different ids; and contacts or accounts sharing an e-mail or phone kept as custom fields.
* **Referential integrity** (`orphans`): per relationship (child column → parent table), the rows pointing to
  no parent.
* **Across runs** (`snapshot`, `previous_snapshots`, `drift`, `problem_trend`): every run keeps the source's
  quality record (``quality.json``); the next run compares categories and problem counts with it.

Everything here reads the whole source (data quality is the source's, not a region's), except the slice's own
columns of `table_overview`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from crmlens.findings import Finding, finding
from crmlens.i18n import N_, _, n_, sentences
from crmlens.kpis import register_kpi
from crmlens.metrics.common import fmt as _fmt
from crmlens.present import register_columns
from crmlens.schema import SCHEMA, load_order

AREA = "data_quality"
#: The frame `table_overview` gives to `nb.record_kpis` (``with_frames={quality.OVERVIEW: overview}``).
OVERVIEW = "quality_overview"
#: MIME type of the quality record in an executed notebook; the run writes it to ``<region>/<period>/quality.json``.
QUALITY_MIMETYPE = "application/vnd.crmlens.quality+json"
FILENAME = "quality.json"
VERSION = 1
#: A table stopped updating when its latest record is older than this many usual gaps ...
STALE_GAPS = 5
#: ... and at least this many days old.
STALE_MIN_DAYS = 14
#: Months of completeness trend.
TREND_MONTHS = 12
#: A category's share must move by this much (absolute) between runs to be a drift.
DRIFT_MIN_SHARE = 0.05
#: Categorical columns compared between runs: at most this many values are kept per column.
MAX_CATEGORIES = 50
#: Words of legal form set aside when comparing account names.
LEGAL_FORMS = ("inc", "incorporated", "ltd", "limited", "llc", "plc", "gmbh", "ag", "sa", "sarl", "bv", "nv", "co",
               "corp", "corporation", "company", "group", "holdings", "pty", "srl", "spa", "kk", "有限公司",
               "有限责任公司", "股份有限公司", "集团", "公司")

STATUS = {"ok": N_("usable"), "warnings": N_("usable, with warnings"), "unusable": N_("unusable"),
          "absent": N_("not in this source")}
SEVERITY = {"reject": N_("rejected"), "warn": N_("kept, with a warning")}
RULES = {"wrong_type": N_("not readable as its type"), "not_nullable": N_("required, but empty"),
         "not_null": N_("required, but empty"),
         "allowed_values": N_("not one of the allowed values"), "min": N_("below the minimum"),
         "max": N_("above the maximum"), "duplicate_key": N_("duplicate key"),
         "foreign_key": N_("points to no parent row"), "missing_value": N_("empty"),
         "missing_column": N_("column missing"), "not_future": N_("later than the as-of")}


def rule_label(rule: str) -> str:
    """The reader's name of a validation rule (row rules: "breaks the row rule <name>")."""
    if rule in RULES:
        return _(RULES[rule])
    if rule.startswith("row:"):
        return _("breaks the row rule {name}", name=rule[4:])
    return rule


#: The reader's name of each table: msgids ``table:<name>`` (the prefix keeps them apart from the count labels
#: of the same words — "Leads" the table is 线索, "Leads" the count 线索数), shown without the prefix.
TABLE_LABELS = {
    "regions": N_("table:Regions"),
    "teams": N_("table:Teams"),
    "reps": N_("table:Sales reps"),
    "products": N_("table:Products"),
    "accounts": N_("table:Accounts"),
    "contacts": N_("table:Contacts"),
    "campaigns": N_("table:Campaigns"),
    "campaign_events": N_("table:Campaign events"),
    "campaign_metrics": N_("table:Campaign metrics"),
    "leads": N_("table:Leads"),
    "opportunities": N_("table:Opportunities"),
    "opportunity_stage_history": N_("table:Opportunity stage history"),
    "contracts": N_("table:Contracts"),
    "payments": N_("table:Payments"),
    "invoices": N_("table:Invoices"),
    "credit_notes": N_("table:Credit notes"),
    "activities": N_("table:Activities"),
    "tickets": N_("table:Tickets"),
    "surveys": N_("table:Surveys"),
    "targets": N_("table:Targets"),
    "market": N_("table:Market"),
    "competitor_intel": N_("table:Competitor intelligence"),
}

register_columns({
    "table_label": (N_("Table"), "text"),
    "table": (N_("Table (data model)"), "text"),
    "status_label": (N_("Status"), "text"),
    "loaded": (N_("Rows loaded"), "count"),
    "accepted": (N_("Rows accepted"), "count"),
    "rejected": (N_("Rows rejected"), "count"),
    "warned": (N_("Rows warned"), "count"),
    "rejected_share": (N_("Share rejected"), "share"),
    "slice_loaded": (N_("Rows of this region and period"), "count"),
    "slice_rejected": (N_("Rejected in this region and period"), "count"),
    "column": (N_("Column"), "text"),
    "rule_label": (N_("Problem"), "text"),
    "outcome_label": (N_("Outcome"), "text"),
    "rows": (N_("Rows"), "count"),
    "example_value": (N_("Example value"), "text"),
    "example_source_row": (N_("Example source row"), "text"),
    "example_message": (N_("Example message"), "text"),
    "source_row": (N_("Source row"), "text"),
    "problem_value": (N_("Value"), "text"),
    "category_value": (N_("Value"), "text"),
    "message": (N_("Message"), "text"),
    "empty_share": (N_("Share empty"), "share"),
    "n_rows": (N_("Rows"), "count"),
    "n_empty": (N_("Empty values"), "count"),
    "month": (N_("Month"), "text"),
    "latest_record_at": (N_("Latest record"), "date"),
    "days_since_latest": (N_("Days since the latest record"), "days"),
    "usual_gap_days": (N_("Usual days between records"), "days"),
    "stale": (N_("Stopped updating"), "text"),
    "matched_on": (N_("Matched on"), "text"),
    "shared_value": (N_("Shared value"), "text"),
    "ids": (N_("Ids"), "text"),
    "n_ids": (N_("Records"), "count"),
    "relationship": (N_("Relationship"), "text"),
    "orphans": (N_("Rows without a parent"), "count"),
    "parent_rejected": (N_("Rows whose parent was rejected"), "count"),
    "fix_column": (N_("Column"), "text"),
    "fix_from": (N_("From"), "text"),
    "fix_to": (N_("To"), "text"),
    "fix_reason": (N_("Why"), "text"),
    "drift_change": (N_("Change"), "text"),
    "share_before": (N_("Share in the previous run"), "share"),
    "share_now": (N_("Share now"), "share"),
    "run": (N_("Run"), "text"),
    "problem_rows": (N_("Problem rows"), "count"),
    "rows_before": (N_("Rows in the previous run"), "count"),
})


def table_label(name: str) -> str:
    """The reader's name of table `name` (translated), e.g. "Opportunities"."""
    return _(TABLE_LABELS[name]).removeprefix("table:") if name in TABLE_LABELS else name


def _as_of(s: Any) -> pd.Timestamp | None:
    return getattr(s, "_check_as_of", None)


def source_report(s: Any) -> Any:
    """The whole source's validation report at the slice's as-of (`crmlens.store.Store.report`), cached on the
    slice."""
    key = ("quality", "report")
    if key not in s.derived:
        s.derived[key] = s.store.report(as_of=_as_of(s), source=s.info.source)
    return s.derived[key]


# ------------------------------------------------------------------------------------------------- tables

def table_overview(s: Any) -> pd.DataFrame:
    """One row per table of the data model, in load order: table, table_label, status, status_label, loaded,
    accepted, rejected, warned (rows kept with a warning), rejected_share, and the rows of the slice's region and
    period (slice_loaded, slice_rejected). A table the source does not have has status "absent" and no counts
    (not zeros)."""
    report = source_report(s)
    rows = []
    for name in load_order():
        rep = report.tables.get(name)
        if rep is None:
            continue
        absent = rep.status == "absent"
        warned = 0
        if not absent and len(rep.problems):
            w = rep.problems[rep.problems["severity"] == "warn"]
            warned = int(w["row_key"].nunique()) if len(w) else 0
        cut = s.report.tables.get(name) if hasattr(s, "report") else None
        rows.append({"table": name, "table_label": table_label(name), "status": rep.status,
                     "status_label": _(STATUS.get(rep.status, rep.status)),
                     "loaded": None if absent else rep.loaded, "accepted": None if absent else rep.accepted,
                     "rejected": None if absent else rep.rejected, "warned": None if absent else warned,
                     "rejected_share": None if absent or not rep.loaded else rep.rejected / rep.loaded,
                     "slice_loaded": None if absent or cut is None else cut.loaded,
                     "slice_rejected": None if absent or cut is None else cut.rejected})
    out = pd.DataFrame(rows)
    for col in ("loaded", "accepted", "rejected", "warned", "slice_loaded", "slice_rejected"):
        out[col] = out[col].astype("Int64")
    out["rejected_share"] = out["rejected_share"].astype("float64")
    for col in ("table", "table_label", "status", "status_label"):
        out[col] = out[col].astype("string")
    return out


def describe_overview(overview: pd.DataFrame | None) -> Finding | None:
    """Unusable tables first (act: nothing built on them can be trusted), then the share of rows rejected over
    the tables present; a clean source is said to be clean."""
    if overview is None or overview.empty:
        return None
    present = overview[overview["status"] != "absent"]
    if present.empty:
        return finding(_("The source has none of the data model's tables."), "act",
                       _("Check the source folder or the mapping's files."), weight=1.0, lead=True)
    unusable = present[present["status"] == "unusable"]
    loaded, rejected = int(present["loaded"].sum()), int(present["rejected"].sum())
    absent = overview[overview["status"] == "absent"]
    lacks = n_("The source does not have {n} of the data model's tables ({names}); the analyses that need them "
               "say so.", "The source does not have {n} of the data model's tables ({names}); the analyses that "
               "need them say so.", len(absent), n=_fmt(len(absent), "count"),
               names=", ".join(absent["table_label"])) if len(absent) else ""
    if len(unusable):
        names = ", ".join(unusable["table_label"])
        text = n_("Table {names} cannot be used: every analysis that needs it is skipped or incomplete.",
                  "Tables {names} cannot be used: every analysis that needs them is skipped or incomplete.",
                  len(unusable), names=names)
        return finding(sentences(text, lacks), "act",
                       _("Fix the problems listed below for these tables (or the mapping that reads them), then run "
                         "again."), kpi="unusable_tables", weight=1.0, lead=True)
    warned = int(present["warned"].sum())
    kept = n_("{warned} row was kept with a warning (listed below).", "{warned} rows were kept with a warning (listed "
              "below).", warned, warned=_fmt(warned, "count")) if warned else ""
    if rejected == 0:
        text = _("All {loaded} rows of the {n} tables the source has were accepted: no row was rejected.",
                 loaded=_fmt(loaded, "count"), n=_fmt(len(present), "count"))
        return finding(sentences(text, kept, lacks), "info" if warned else "good")
    share = rejected / loaded if loaded else 0.0
    worst = present.sort_values(["rejected_share", "table"], ascending=[False, True]).iloc[0]
    text = _("{rejected} of {loaded} rows ({share}) were rejected; the most in {table}: {worst_rejected} of "
             "{worst_loaded} ({worst_share}). Rejected rows are left out of every analysis.",
             rejected=_fmt(rejected, "count"), loaded=_fmt(loaded, "count"), share=_small_share(share),
             table=worst["table_label"], worst_rejected=_fmt(worst["rejected"], "count"),
             worst_loaded=_fmt(worst["loaded"], "count"), worst_share=_small_share(worst["rejected_share"]))
    if share >= 0.05 or worst["rejected_share"] >= 0.2:
        severity = "act"
    elif share >= 0.005 or worst["rejected_share"] >= 0.05:
        severity = "watch"
    else:  # a few rows in thousands: said, but not above the analyses' findings
        severity = "info"
    return finding(sentences(text, kept, lacks), severity,
                   _("Correct the rejected rows in the CRM (the source rows are listed below), or map the values "
                     "in the mapping file."), kpi="rejected_row_share", weight=min(1.0, 0.5 + share * 5), lead=True)


def _small_share(value: float) -> str:
    """A share with enough decimals to tell a few rows from none (0.03 %, not 0.0 %)."""
    return _fmt(value, "share", 1 if value == 0 or value >= 0.001 else 2)


# ------------------------------------------------------------------------------------------------ problems

def _problems(s: Any) -> pd.DataFrame:
    report = source_report(s)
    return report.problems


def _short(value: Any, limit: int = 80) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def problems_by_rule(s: Any) -> pd.DataFrame:
    """Problems per table, column, rule and outcome (rejected/warned): rows, an example value, its source row
    (the file's line, or the row's place in a database table) and the message; most rows first."""
    problems = _problems(s)
    columns = ["table", "table_label", "column", "rule", "rule_label", "severity", "outcome_label", "rows",
               "example_value", "example_source_row", "example_message"]
    if problems.empty:
        return pd.DataFrame(columns=columns).astype({"rows": "Int64"})
    p = problems.assign(column=problems["column"].fillna(""))
    grouped = (p.groupby(["table", "column", "rule", "severity"], sort=False)
               .agg(rows=("message", "size"), example_value=("value", "first"),
                    example_source_row=("source_row", "first"), example_message=("message", "first"))
               .reset_index())
    grouped["table_label"] = grouped["table"].map(table_label)
    grouped["rule_label"] = grouped["rule"].map(rule_label)
    grouped["outcome_label"] = [_(SEVERITY.get(v, v)) for v in grouped["severity"]]
    grouped["example_value"] = grouped["example_value"].map(_short)
    grouped["example_source_row"] = grouped["example_source_row"].map(_short)
    grouped["rows"] = grouped["rows"].astype("Int64")
    out = grouped.sort_values(["rows", "table", "column", "rule"], ascending=[False, True, True, True],
                              kind="mergesort")
    return out[columns].reset_index(drop=True).astype({c: "string" for c in columns if c != "rows"})


def problem_examples(s: Any, n: int = 3) -> pd.DataFrame:
    """Up to `n` problem rows per table, column and rule: table, column, source_row, value, message."""
    problems = _problems(s)
    columns = ["table_label", "column", "source_row", "problem_value", "message"]
    if problems.empty:
        return pd.DataFrame(columns=columns, dtype="string")
    p = problems.assign(column=problems["column"].fillna(""))
    out = p.groupby(["table", "column", "rule"], sort=False).head(n).copy()
    out["table_label"] = out["table"].map(table_label)
    out["problem_value"] = out["value"].map(_short)
    out["source_row"] = out["source_row"].map(_short)
    out["message"] = out["message"].map(lambda m: _short(m, 300))
    return out[columns].reset_index(drop=True).astype("string")


def describe_problems(by_rule: pd.DataFrame | None) -> Finding | None:
    """The rule that cost the most rows, with where to look."""
    if by_rule is None or by_rule.empty:
        return None
    top = by_rule.iloc[0]
    total = int(by_rule["rows"].sum())
    where = f"{top['table_label']}.{top['column']}" if top["column"] else str(top["table_label"])
    text = _("{total} problems in {n} kinds; the most common: {where} — {rule} ({rows} rows, {outcome}; e.g. source "
             "row {row}).", total=_fmt(total, "count"), n=_fmt(len(by_rule), "count"), where=where,
             rule=top["rule_label"], rows=_fmt(top["rows"], "count"), outcome=top["outcome_label"],
             row=top["example_source_row"] or "–")
    severity = "watch" if (by_rule["severity"] == "reject").any() else "info"  # the overview says how serious
    return finding(text, severity, _("Start with the most common problem: one fix in the CRM or the mapping often "
                                     "clears thousands of rows."), weight=0.6)


def mapping_fixes(s: Any) -> pd.DataFrame | None:
    """The fixes the mapping applied on the way in (file, column, from, to, reason, rows changed); None without a
    mapping that fixes anything."""
    fixes = list(s.store.meta.get("fixes") or [])
    if not fixes:
        return None
    out = pd.DataFrame({"table": [str(f.get("file", "")) for f in fixes],
                        "fix_column": [str(f.get("column", "")) for f in fixes],
                        "fix_from": [_short(f.get("from")) for f in fixes],
                        "fix_to": [_short(f.get("to")) for f in fixes],
                        "fix_reason": [str(f.get("reason", "")) for f in fixes],
                        "rows": [int(f.get("rows", 0)) for f in fixes]})
    return out.astype({c: "string" for c in ("table", "fix_column", "fix_from", "fix_to", "fix_reason")})


def describe_fixes(fixes: pd.DataFrame | None) -> Finding | None:
    if fixes is None or fixes.empty:
        return None
    return finding(n_("The mapping applied {n} fix, which changed {rows} rows.",
                      "The mapping applied {n} fixes, which changed {rows} rows.", len(fixes),
                      n=_fmt(len(fixes), "count"), rows=_fmt(int(fixes["rows"].sum()), "count")), "info",
                   _("Fix these values at the source when you can: a mapping fix hides them from every other tool."))


# -------------------------------------------------------------------------------------------- completeness

def _present_columns(s: Any, name: str) -> list[str]:
    meta = s.store.meta["tables"].get(name) or {}
    have = set(meta.get("columns") or ())
    table = s.store.table(name)
    return [c.name for c in table.columns if c.name in have or c.custom_type is not None]


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def completeness(s: Any) -> pd.DataFrame:
    """Per table the source has and per column it gives: n_rows (accepted), n_empty, empty_share; columns of the
    data model the source does not give are left out (not in this source, not empty). Emptiest first."""
    store = s.store
    rows = []
    for name in store.tables:
        cols = _present_columns(s, name)
        if not cols:
            continue
        parts = ", ".join(f"count({_ident(c)}) AS {_ident(c)}" for c in cols)
        got = store.con_df(f"SELECT count(*) AS __n, {parts} FROM acc_{name}").iloc[0]
        n = int(got["__n"])
        for c in cols:
            rows.append({"table": name, "table_label": table_label(name), "column": c, "n_rows": n,
                         "n_empty": n - int(got[c]), "empty_share": (n - int(got[c])) / n if n else np.nan})
    out = pd.DataFrame(rows, columns=["table", "table_label", "column", "n_rows", "n_empty", "empty_share"])
    out = out.sort_values(["empty_share", "table", "column"], ascending=[False, True, True], kind="mergesort")
    return out.reset_index(drop=True).astype({"table": "string", "table_label": "string", "column": "string",
                                              "n_rows": "Int64", "n_empty": "Int64", "empty_share": "float64"})


def incomplete(completeness_frame: pd.DataFrame | None, min_share: float = 0.0) -> pd.DataFrame | None:
    """The columns with some empty values (more than `min_share`)."""
    if completeness_frame is None:
        return None
    return completeness_frame[completeness_frame["empty_share"] > min_share].reset_index(drop=True)


def describe_completeness(frame: pd.DataFrame | None) -> Finding | None:
    """How many columns are complete; the emptiest required-for-analysis columns."""
    if frame is None or frame.empty:
        return None
    gaps = frame[frame["n_empty"] > 0]
    if gaps.empty:
        return finding(_("Every value of the {n} columns the source gives is filled in.",
                         n=_fmt(len(frame), "count")), "good")
    never, partly = gaps[gaps["n_empty"] == gaps["n_rows"]], gaps[gaps["n_empty"] < gaps["n_rows"]]
    parts = [_("{n} of {total} columns have empty values.", n=_fmt(len(gaps), "count"),
               total=_fmt(len(frame), "count"))]
    if len(never):
        parts.append(n_("{n} is never filled in: {names}.", "{n} are never filled in: {names}.", len(never),
                        n=_fmt(len(never), "count"),
                        names=", ".join(f"{r.table_label}.{r.column}" for r in never.head(6).itertuples())
                        + ("…" if len(never) > 6 else "")))
    if len(partly):
        parts.append(_("The emptiest of the others: {names}.", names=", ".join(
            f"{r.table_label}.{r.column} ({_fmt(r.empty_share, 'share', 0)})" for r in partly.head(3).itertuples())))
    return finding(sentences(*parts), "info", _("Make the fields analyses rely on required in the CRM's forms, or "
                                                  "fill them in bulk from another system."), weight=0.4)


def completeness_trend(s: Any, months: int = TREND_MONTHS) -> pd.DataFrame:
    """Per fact table and month (of its time column) of the last `months` months up to the as-of, per column with
    empty values: empty_share. Long format: table, table_label, column, month, n_rows, empty_share."""
    store = s.store
    as_of = pd.Timestamp(s.as_of)
    start = (as_of.to_period("M") - (months - 1)).to_timestamp()
    frames = []
    for name in store.tables:
        table = SCHEMA[name]
        if table.period is None:
            continue
        time_col = table.period.columns[0]
        cols = [c for c in _present_columns(s, name) if c != time_col]
        if time_col not in _present_columns(s, name) or not cols:
            continue
        parts = ", ".join(f"count({_ident(c)}) AS {_ident(c)}" for c in cols)
        got = store.con_df(
            f"SELECT strftime(date_trunc('month', {_ident(time_col)}), '%Y-%m') AS month, count(*) AS __n, {parts} "
            f"FROM acc_{name} WHERE {_ident(time_col)} >= TIMESTAMP '{start:%Y-%m-%d}' AND {_ident(time_col)} < "
            f"TIMESTAMP '{as_of:%Y-%m-%d %H:%M:%S}' GROUP BY 1 ORDER BY 1")
        if got.empty:
            continue
        long = got.melt(id_vars=["month", "__n"], value_vars=cols, var_name="column", value_name="filled")
        long["empty_share"] = 1 - long["filled"] / long["__n"]
        keep = long.groupby("column")["empty_share"].transform("max") > 0
        long = long[keep]
        if long.empty:
            continue
        frames.append(long.assign(table=name, table_label=table_label(name)).rename(columns={"__n": "n_rows"}))
    columns = ["table", "table_label", "column", "month", "n_rows", "empty_share"]
    if not frames:
        return pd.DataFrame(columns=columns)
    out = pd.concat(frames, ignore_index=True)[columns]
    return out.astype({"table": "string", "table_label": "string", "column": "string", "month": "string",
                       "n_rows": "Int64", "empty_share": "float64"})


# ----------------------------------------------------------------------------------------------- freshness

def freshness(s: Any, *, stale_gaps: int = STALE_GAPS, stale_min_days: int = STALE_MIN_DAYS) -> pd.DataFrame:
    """Per fact table the source has: latest_at (its latest time up to the as-of, over its time columns),
    days_since_latest, usual_gap_days (the median gap between consecutive days with a record, over the year
    before its latest record) and stale ("yes" when the latest record is older than `stale_gaps` usual gaps and
    `stale_min_days` days). Dimension tables have no time and are left out."""
    store = s.store
    as_of = pd.Timestamp(s.as_of)
    rows = []
    for name in store.tables:
        table = SCHEMA[name]
        if table.period is None:
            continue
        cols = [c for c in dict.fromkeys(table.period.columns) if c in _present_columns(s, name)]
        if not cols:
            continue
        cap = f"TIMESTAMP '{as_of:%Y-%m-%d %H:%M:%S}'"
        times = " UNION ALL ".join(f"SELECT {_ident(c)} AS t FROM acc_{name} WHERE {_ident(c)} <= {cap}" for c in cols)
        got = store.con_df(
            f"WITH t AS ({times}), d AS (SELECT DISTINCT CAST(t AS DATE) AS day FROM t), "
            f"last AS (SELECT max(day) AS top FROM d), "
            f"g AS (SELECT day - lag(day) OVER (ORDER BY day) AS gap FROM d, last "
            f"WHERE day > top - INTERVAL 365 DAY) "
            f"SELECT (SELECT max(t) FROM t) AS latest, (SELECT median(gap) FROM g) AS gap")
        latest = got["latest"].iloc[0]
        if pd.isna(latest):
            continue
        latest = pd.Timestamp(latest)
        gap = got["gap"].iloc[0]
        gap_days = float(gap) if gap is not None and not pd.isna(gap) else np.nan
        since = (as_of - latest) / pd.Timedelta(days=1)
        stale = bool(since >= stale_min_days and (np.isnan(gap_days) or since > stale_gaps * max(gap_days, 1.0)))
        rows.append({"table": name, "table_label": table_label(name), "latest_record_at": latest,
                     "days_since_latest": round(float(since), 1), "usual_gap_days": gap_days,
                     "stale": _("yes") if stale else _("no"), "is_stale": stale})
    out = pd.DataFrame(rows, columns=["table", "table_label", "latest_record_at", "days_since_latest", "usual_gap_days",
                                      "stale", "is_stale"])
    out = out.sort_values(["is_stale", "days_since_latest", "table"], ascending=[False, False, True])
    return out.reset_index(drop=True).astype({"table": "string", "table_label": "string", "stale": "string",
                                              "is_stale": "bool", "days_since_latest": "float64",
                                              "usual_gap_days": "float64"})


def describe_freshness(frame: pd.DataFrame | None, as_of: Any = None) -> Finding | None:
    """Tables that stopped updating (act: their numbers are old), else how recent the data is."""
    if frame is None or frame.empty:
        return None
    stale = frame[frame["is_stale"]]
    if len(stale):
        names = ", ".join(f"{r.table_label} ({_fmt(r.days_since_latest, 'days', 0)})" for r in stale.itertuples())
        text = n_("Table {names} stopped updating: its latest record is far older than its usual gap between "
                  "records.", "Tables {names} stopped updating: their latest records are far older than their usual "
                  "gaps between records.", len(stale), names=names)
        return finding(text, "act", _("Check the export or the sync job of these tables: the analyses that use them "
                                      "show old numbers."), kpi="stale_tables", weight=0.9, lead=True)
    newest = frame.sort_values("days_since_latest").iloc[0]
    oldest = frame.sort_values("days_since_latest").iloc[-1]
    if oldest["days_since_latest"] == newest["days_since_latest"]:
        return finding(_("Every table is up to date: the latest records are from {date}, within their usual gaps.",
                         date=pd.Timestamp(newest["latest_record_at"]).strftime("%Y-%m-%d")), "good")
    return finding(_("Every table is up to date: the latest records are {newest} ({newest_table}) to {oldest} "
                     "({oldest_table}) old, within their usual gaps.",
                     newest=_fmt(newest["days_since_latest"], "days", 0), newest_table=newest["table_label"],
                     oldest=_fmt(oldest["days_since_latest"], "days", 0), oldest_table=oldest["table_label"]), "good")


# ---------------------------------------------------------------------------------------------- duplicates

_LEGAL = re.compile(r"(?:^|\s)(?:" + "|".join(re.escape(w) for w in LEGAL_FORMS if w.isascii()) + r")(?=\s|$)")
_CJK_LEGAL = re.compile("|".join(sorted((re.escape(w) for w in LEGAL_FORMS if not w.isascii()), key=len,
                                        reverse=True)))


def normalize_name(name: Any) -> str:
    """A company name for comparison: lower case, legal forms (Inc, Ltd, GmbH, 有限公司...) and punctuation set
    aside, spaces collapsed ("ACME, Inc." and "Acme Inc" → "acme")."""
    if name is None or (isinstance(name, float) and np.isnan(name)) or name is pd.NA:
        return ""
    text = _CJK_LEGAL.sub(" ", str(name).casefold())
    text = re.sub(r"[^\w\s]|_", " ", text)
    text = _LEGAL.sub(" ", " " + text + " ")
    return " ".join(text.split())


def normalize_phone(value: Any) -> str:
    """A phone number's digits (at least 7, else empty): "+1 (555) 010-2000" → "15550102000"."""
    digits = re.sub(r"\D", "", "" if value is None or value is pd.NA else str(value))
    return digits if len(digits) >= 7 else ""


def normalize_email(value: Any) -> str:
    text = "" if value is None or value is pd.NA else str(value).strip().casefold()
    return text if "@" in text else ""


_CONTACT_FIELDS = {"email": ("email", "e_mail", "mail"), "phone": ("phone", "mobile", "tel", "telephone")}


def _contact_fields(s: Any, name: str) -> dict[str, str]:
    """The custom fields of table `name` that hold an e-mail or a phone: kind → field name."""
    found: dict[str, str] = {}
    for field in s.store.custom_fields(name):
        low = field.casefold()
        for kind, words in _CONTACT_FIELDS.items():
            if kind not in found and any(low == w or low.endswith("_" + w) or low.startswith(w + "_") for w in words):
                found[kind] = field
    return found


def near_duplicates(s: Any, limit: int = 200) -> pd.DataFrame:
    """Groups of records under different ids that look like one: accounts whose normalized names
    (`normalize_name`) are equal in the same country and city (where the source records them); accounts or
    contacts sharing an e-mail or phone (custom fields named e-mail / phone, when the mapping keeps them).
    Columns: table, table_label, kind (name, email, phone), matched_on, shared_value, n_ids, ids (the first
    ten); the largest groups first, at most `limit` (``attrs``: n_groups and n_records of all of them)."""
    store = s.store
    groups = []
    labels = {"name": _("name"), "email": _("e-mail"), "phone": _("phone")}
    if "accounts" in store.tables and "name" in _present_columns(s, "accounts"):
        # the same name in another country or city is usually another company (a subsidiary, a namesake)
        have = _present_columns(s, "accounts")
        place = " || ' · ' || ".join(f"coalesce(CAST({c} AS VARCHAR), '')" for c in ("country", "city") if c in have)
        acc = store.con_df(f"SELECT account_id, name, {place or 'NULL'} AS place FROM acc_accounts "
                           f"WHERE name IS NOT NULL")
        acc["shared_value"] = acc["name"].map(normalize_name)
        named = (acc["shared_value"] != "") & acc["place"].notna()
        acc.loc[named, "shared_value"] = acc.loc[named, "shared_value"] + " (" + acc.loc[named, "place"] + ")"
        groups.append(("accounts", "name", acc[acc["shared_value"] != ""][["account_id", "shared_value"]].rename(
            columns={"account_id": "id"})))
    for name, id_col in (("accounts", "account_id"), ("contacts", "contact_id")):
        if name not in store.tables:
            continue
        for kind, field in _contact_fields(s, name).items():
            got = store.con_df(f"SELECT {id_col} AS id, {_ident(field)} AS v FROM acc_{name} "
                               f"WHERE {_ident(field)} IS NOT NULL")
            got["shared_value"] = got["v"].map(normalize_email if kind == "email" else normalize_phone)
            groups.append((name, kind, got[got["shared_value"] != ""][["id", "shared_value"]]))
    rows = []
    for name, kind, frame in groups:
        if frame.empty:
            continue
        frame = frame.astype({"id": "string"}).drop_duplicates()
        counted = frame.groupby("shared_value")["id"].agg(["nunique", lambda ids: ", ".join(sorted(ids)[:10])])
        counted.columns = ["n_ids", "ids"]
        counted = counted[counted["n_ids"] > 1]
        for key, r in counted.iterrows():
            rows.append({"table": name, "table_label": table_label(name), "kind": kind, "matched_on": labels[kind],
                         "shared_value": _short(key), "n_ids": int(r["n_ids"]), "ids": r["ids"]})
    out = pd.DataFrame(rows, columns=["table", "table_label", "kind", "matched_on", "shared_value", "n_ids", "ids"])
    out = out.sort_values(["n_ids", "table", "kind", "shared_value"], ascending=[False, True, True, True],
                          kind="mergesort")
    types = {"table": "string", "table_label": "string", "kind": "string", "matched_on": "string",
             "shared_value": "string", "n_ids": "Int64", "ids": "string"}
    shown = out.head(limit).reset_index(drop=True).astype(types)
    shown.attrs.update(n_groups=len(out), n_records=int(out["n_ids"].sum()) if len(out) else 0)
    return shown


def duplicate_checks(s: Any) -> list[str]:
    """What `near_duplicates` could compare in this source (for the reader): "accounts: name", ..."""
    store = s.store
    done = []
    if "accounts" in store.tables and "name" in _present_columns(s, "accounts"):
        done.append(f"{table_label('accounts')}: {_('name')}")
    for name in ("accounts", "contacts"):
        if name in store.tables:
            done += [f"{table_label(name)}: {_('e-mail') if k == 'email' else _('phone')}"
                     for k in _contact_fields(s, name)]
    return done


def describe_duplicates(frame: pd.DataFrame | None, checked: list[str] | None = None) -> Finding | None:
    """How many groups of likely duplicates, and the largest."""
    if frame is None:
        return None
    checked_text = ", ".join(checked or [])
    if frame.empty:
        if not checked:
            return finding(_("The source gives no name, e-mail or phone to compare records by."), "info")
        return finding(_("No two records share a name, e-mail or phone under different ids (compared: {checked}).",
                         checked=checked_text), "good")
    top = frame.iloc[0]
    n_groups = int(frame.attrs.get("n_groups", len(frame)))
    n_records = int(frame.attrs.get("n_records", frame["n_ids"].sum()))
    text = n_("{n} group of records looks like one record under different ids ({records} records); the largest: "
              "{count} {table} with the {kind} “{key}”.",
              "{n} groups of records look like one record each under different ids ({records} records); the "
              "largest: {count} {table} with the {kind} “{key}”.", n_groups, n=_fmt(n_groups, "count"),
              records=_fmt(n_records, "count"), count=_fmt(top["n_ids"], "count"), table=top["table_label"],
              kind=top["matched_on"], key=top["shared_value"])
    return finding(text, "watch", _("Merge the duplicates in the CRM (most CRMs have a merge tool): split records "
                                    "split the customer's history and double-count customers."),
                   kpi="duplicate_groups", weight=0.5)


# ------------------------------------------------------------------------------------------------- orphans

def orphans(s: Any) -> pd.DataFrame:
    """Per relationship (table.column → parent table.column) of the data model that the source has both ends of:
    ``orphans``, rows whose value points to no parent row at all, and ``parent_rejected``, rows whose parent exists
    but was rejected (fixing the parent brings them back). From the validation's foreign-key problems; such rows
    are rejected."""
    store = s.store
    problems = _problems(s)
    fk = problems[problems["rule"] == "foreign_key"] if len(problems) else problems
    rows = []
    for name in store.tables:
        for col in store.table(name).columns:
            if not col.references:
                continue
            parent, parent_col = col.references.split(".")
            if parent not in store.tables or col.name not in _present_columns(s, name):
                continue
            values = fk.loc[(fk["table"] == name) & (fk["column"] == col.name), "value"].astype(str) if len(fk) \
                else pd.Series(dtype=str)
            n_rejected = 0
            if len(values) and store.meta["tables"][parent]["rejected"]:
                keys = store.con_df(f"SELECT DISTINCT CAST({_ident(parent_col)} AS VARCHAR) AS k FROM rej_{parent}")
                n_rejected = int(values.isin(set(keys["k"].dropna())).sum())
            rows.append({"table": name, "table_label": table_label(name), "column": col.name,
                         "relationship": f"{name}.{col.name} → {parent}.{parent_col}",
                         "orphans": len(values) - n_rejected, "parent_rejected": n_rejected})
    out = pd.DataFrame(rows, columns=["table", "table_label", "column", "relationship", "orphans", "parent_rejected"])
    out = out.sort_values(["orphans", "parent_rejected", "relationship"], ascending=[False, False, True],
                          kind="mergesort")
    return out.reset_index(drop=True).astype({"table": "string", "table_label": "string", "column": "string",
                                              "relationship": "string", "orphans": "Int64",
                                              "parent_rejected": "Int64"})


def describe_orphans(frame: pd.DataFrame | None) -> Finding | None:
    """Rows pointing to no parent (act: an incomplete export, or broken references); rows whose parent was
    rejected are said apart (they come back when the parent is fixed)."""
    if frame is None or frame.empty:
        return None
    bad, cascaded = frame[frame["orphans"] > 0], int(frame["parent_rejected"].sum())
    follow = n_("{n} more row was rejected only because its parent row was rejected.",
                "{n} more rows were rejected only because their parent rows were rejected.", cascaded,
                n=_fmt(cascaded, "count")) if cascaded else ""
    if bad.empty:
        text = _("Every reference between tables points to an existing row ({n} relationships checked).",
                 n=_fmt(len(frame), "count"))
        return finding(sentences(text, follow), "info" if cascaded else "good")
    top = bad.iloc[0]
    rows = n_("{n} row", "{n} rows", int(top["orphans"]), n=_fmt(top["orphans"], "count"))
    text = n_("{n} relationship has rows pointing to no parent row; the most: {relationship} ({rows}).",
              "{n} relationships have rows pointing to no parent row; the most: {relationship} ({rows}).",
              len(bad), n=_fmt(len(bad), "count"), relationship=top["relationship"], rows=rows)
    severity = "act" if int(bad["orphans"].sum()) >= 100 else "watch"
    return finding(sentences(text, follow), severity, _(
        "Export the parent table completely (a filtered or older export of the parent is the usual cause), or fix "
        "the references in the CRM."), weight=0.7)


# ------------------------------------------------------------------------------------------------ KPIs

def _overview_kpi(frames: Mapping[str, pd.DataFrame], fn: Any) -> float | None:
    overview = frames.get(OVERVIEW) if hasattr(frames, "get") else None
    if overview is None or overview.empty:
        return None
    present = overview[overview["status"] != "absent"]
    return None if present.empty else fn(present)


@register_kpi("rejected_row_share", label=N_("Rows rejected"), unit="rate", direction="lower", tables=(),
              area=AREA, grain="source",
              description=N_("Rejected ÷ loaded rows over every table the source has (validation; the whole source "
                             "at the as-of)."))
def rejected_row_share(frames: Mapping[str, pd.DataFrame], ctx: Any) -> float | None:
    return _overview_kpi(frames, lambda p: float(p["rejected"].sum() / p["loaded"].sum())
                         if p["loaded"].sum() else None)


@register_kpi("unusable_tables", label=N_("Unusable tables"), unit="count", direction="lower", tables=(),
              area=AREA, grain="source",
              description=N_("Tables of the source that validation found unusable (nothing of them can be used)."))
def unusable_tables(frames: Mapping[str, pd.DataFrame], ctx: Any) -> float | None:
    return _overview_kpi(frames, lambda p: float((p["status"] == "unusable").sum()))


@register_kpi("problem_rows", label=N_("Rows with problems"), unit="count", direction="lower", tables=(),
              area=AREA, grain="source",
              description=N_("Rows rejected plus rows kept with a warning, over every table the source has."))
def problem_rows(frames: Mapping[str, pd.DataFrame], ctx: Any) -> float | None:
    return _overview_kpi(frames, lambda p: float(p["rejected"].sum() + p["warned"].sum()))


# ------------------------------------------------------------------------------------------- across runs

def _categorical_columns(s: Any, name: str) -> list[str]:
    table = s.store.table(name)
    present = set(_present_columns(s, name))
    return [c.name for c in table.columns if c.name in present and (
        c.allowed is not None or c.custom_type == "category" or c.name in ("industry", "size_band", "country",
                                                                             "source_channel", "level", "channel",
                                                                             "category", "priority", "type"))]


def categories(s: Any) -> dict[str, dict[str, dict[str, float]]]:
    """Per table and categorical column (allowed values, custom categories, segments): each value's share of the
    accepted rows (the `MAX_CATEGORIES` most common; None is "(empty)")."""
    store = s.store
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in store.tables:
        columns = _categorical_columns(s, name)
        total = int(store.meta["tables"][name]["accepted"]) if columns else 0  # the store's count of acc_<name>
        if not total:
            continue
        for col in columns:
            got = store.con_df(f"SELECT CAST({_ident(col)} AS VARCHAR) AS v, count(*) AS n FROM acc_{name} "
                               f"GROUP BY 1 ORDER BY n DESC, v LIMIT {MAX_CATEGORIES}")
            out.setdefault(name, {})[col] = {("(empty)" if pd.isna(v) else str(v)): round(int(n) / total, 6)
                                             for v, n in zip(got["v"], got["n"], strict=True)}
    return out


def snapshot(s: Any, overview: pd.DataFrame, by_rule: pd.DataFrame) -> dict[str, Any]:
    """The run's quality record (``quality.json``): source, as-of, per table its counts and status, problem rows
    per table and rule, and the categories' shares (`categories`) for the next run's drift."""
    tables = {r.table: {"status": r.status, "loaded": None if pd.isna(r.loaded) else int(r.loaded),
                        "rejected": None if pd.isna(r.rejected) else int(r.rejected),
                        "warned": None if pd.isna(r.warned) else int(r.warned)} for r in overview.itertuples()}
    problems = [{"table": r.table, "column": r.column, "rule": r.rule, "severity": r.severity, "rows": int(r.rows)}
                for r in by_rule.itertuples()]
    return {"version": VERSION, "source": str(s.info.source), "region": s.params.region, "period": s.period.label,
            "as_of": pd.Timestamp(s.as_of).isoformat(), "store_version": getattr(s.store, "version", None),
            "tables": tables, "problems": problems, "categories": categories(s)}


def previous_snapshots(s: Any, limit: int = 12) -> list[dict[str, Any]]:
    """The quality records of earlier runs of the same source and region (``quality.json`` in the runs beside this
    one — or in ``outputs/`` outside a run), oldest first, at most the `limit` latest."""
    import glob

    from crmlens import paths

    found = []
    region = glob.escape(paths.safe_component(s.params.region))
    for path, snap in paths.earlier_run_records(f"*/{region}/*/{FILENAME}"):
        if snap.get("source") != str(s.info.source) or snap.get("region") != s.params.region:
            continue
        snap["run"] = path.parent.parent.parent.name
        found.append((path.stat().st_mtime, snap["run"], snap))
    found.sort(key=lambda t: (t[0], t[1]))
    return [snap for _mtime, _run, snap in found[-limit:]]


def drift(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> pd.DataFrame | None:
    """Categorical values whose share moved since the previous run's record: a new value (not in the previous
    run), a value gone, or a share that moved by `DRIFT_MIN_SHARE` or more. None without a previous record."""
    if not before:
        return None
    rows = []
    old_all, new_all = before.get("categories") or {}, after.get("categories") or {}
    for name, cols in new_all.items():
        for col, shares in cols.items():
            old = (old_all.get(name) or {}).get(col)
            if old is None:
                continue
            for value in sorted(set(shares) | set(old)):
                a, b = old.get(value), shares.get(value)
                if a is None:
                    change = _("new value")
                elif b is None:
                    change = _("value gone")
                elif abs(b - a) >= DRIFT_MIN_SHARE:
                    change = _("share moved")
                else:
                    continue
                rows.append({"table": name, "table_label": table_label(name), "column": col, "category_value": value,
                             "drift_change": change, "share_before": a, "share_now": b,
                             "_size": abs((b or 0.0) - (a or 0.0))})
    out = pd.DataFrame(rows, columns=["table", "table_label", "column", "category_value", "drift_change",
                                      "share_before", "share_now", "_size"])
    out = out.sort_values(["_size", "table", "column", "category_value"], ascending=[False, True, True, True])
    return out.drop(columns="_size").reset_index(drop=True).astype(
        {"table": "string", "table_label": "string", "column": "string", "category_value": "string",
         "drift_change": "string", "share_before": "float64", "share_now": "float64"})


def describe_drift(frame: pd.DataFrame | None, before: Mapping[str, Any] | None = None) -> Finding | None:
    if frame is None:
        return None
    run = (before or {}).get("run", "")
    if frame.empty:
        return finding(_("No category appeared, disappeared or moved by {min} or more since the previous run "
                         "({run}).", min=_fmt(DRIFT_MIN_SHARE, "share", 0), run=run), "good")
    new = frame[frame["share_before"].isna()]
    top = frame.iloc[0]
    text = _("{n} categorical values changed since the previous run ({run}), {new} of them new; the largest: "
             "{table}.{column} “{value}” ({before} → {now}).", n=_fmt(len(frame), "count"), run=run,
             new=_fmt(len(new), "count"), table=top["table_label"], column=top["column"], value=top["category_value"],
             before=_fmt(top["share_before"], "share", 1), now=_fmt(top["share_now"], "share", 1))
    return finding(text, "watch", _("Check whether the CRM's picklists or the export changed: a renamed value splits "
                                    "a segment in every analysis."), weight=0.4)


def problem_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> pd.DataFrame | None:
    """Kinds of problem (table, column, rule) whose share of the table's loaded rows moved since the previous run's
    record: a new kind, a kind gone, or a share that moved by `DRIFT_MIN_SHARE` or more — e.g. out-of-range
    amounts that were 1 % of the rows and are now 9 %. None without a previous record."""
    if not before:
        return None

    def shares(record: Mapping[str, Any]) -> dict[tuple[str, str, str], tuple[int, float]]:
        loaded = {t: (v or {}).get("loaded") or 0 for t, v in (record.get("tables") or {}).items()}
        out = {}
        for p in record.get("problems") or []:
            key = (p["table"], p.get("column") or "", p["rule"])
            n = out.get(key, (0, 0.0))[0] + int(p["rows"])
            out[key] = (n, n / loaded[p["table"]] if loaded.get(p["table"]) else 0.0)
        return out

    old, new = shares(before), shares(after)
    rows = []
    for key in sorted(set(old) | set(new)):
        (n0, s0), (n1, s1) = old.get(key, (0, 0.0)), new.get(key, (0, 0.0))
        if key in old and key in new and abs(s1 - s0) < DRIFT_MIN_SHARE:
            continue
        change = _("new problem") if key not in old else (_("problem gone") if key not in new else
                                                           _("share moved"))
        rows.append({"table": key[0], "table_label": table_label(key[0]), "column": key[1], "rule": key[2],
                     "rule_label": rule_label(key[2]), "drift_change": change, "rows_before": n0, "rows": n1,
                     "share_before": s0, "share_now": s1, "_size": abs(s1 - s0)})
    out = pd.DataFrame(rows, columns=["table", "table_label", "column", "rule", "rule_label", "drift_change",
                                      "rows_before", "rows", "share_before", "share_now", "_size"])
    out = out.sort_values(["_size", "table", "column", "rule"], ascending=[False, True, True, True])
    return out.drop(columns="_size").reset_index(drop=True).astype(
        {"table": "string", "table_label": "string", "column": "string", "rule": "string", "rule_label": "string",
         "drift_change": "string", "rows_before": "Int64", "rows": "Int64", "share_before": "float64",
         "share_now": "float64"})


def describe_problem_changes(frame: pd.DataFrame | None, before: Mapping[str, Any] | None = None
                             ) -> Finding | None:
    """A kind of problem that appeared or grew since the previous run (watch), else nothing to say."""
    if frame is None or frame.empty:
        return None
    worse = frame[frame["share_now"] > frame["share_before"]]
    if worse.empty:
        return None
    top = worse.iloc[0]
    where = f"{top['table_label']}.{top['column']}" if top["column"] else str(top["table_label"])
    text = _("Since the previous run ({run}), {where} — {rule} went from {before} to {now} of the table's rows.",
             run=(before or {}).get("run", ""), where=where, rule=top["rule_label"],
             before=_small_share(float(top["share_before"])), now=_small_share(float(top["share_now"])))
    return finding(text, "watch", _("Look at the rows of this problem in the examples above: a change in how the "
                                    "CRM is filled in or exported usually starts such a rise."), weight=0.5)


def describe_history(earlier: list[Mapping[str, Any]]) -> Finding | None:
    """Say so when no earlier run's record of this source and region is kept (the comparisons start next run)."""
    if earlier:
        return None
    return finding(_("No earlier run of this source and region is kept here: the next run compares with this "
                     "one."), "info")


def problem_trend(history: list[Mapping[str, Any]], current: Mapping[str, Any]) -> pd.DataFrame | None:
    """Problem rows (rejected + warned) per table in each earlier run's record and in this one: run, table,
    table_label, problem_rows. None without an earlier record."""
    if not history:
        return None
    rows = []
    for snap in [*history, {**current, "run": _("this run")}]:
        for name, t in (snap.get("tables") or {}).items():
            if t.get("status") == "absent" or t.get("loaded") is None:
                continue
            rows.append({"run": snap.get("run", ""), "as_of": snap.get("as_of"), "table": name,
                         "table_label": table_label(name),
                         "problem_rows": int((t.get("rejected") or 0) + (t.get("warned") or 0))})
    return pd.DataFrame(rows).astype({"run": "string", "table": "string", "table_label": "string",
                                      "problem_rows": "Int64"})


def describe_trend(frame: pd.DataFrame | None) -> Finding | None:
    """A table whose problem rows grew run after run (the last two runs each more than the one before) is a
    worsening source (act); fewer problems than in the previous run is good news."""
    if frame is None or frame.empty:
        return None
    runs = list(dict.fromkeys(frame["run"]))
    if len(runs) < 2:
        return None
    pivot = frame.pivot_table(index="table_label", columns="run", values="problem_rows", aggfunc="sum")[runs]
    pivot = pivot.fillna(0)
    last, prev = pivot[runs[-1]], pivot[runs[-2]]
    worse = pivot[(last > prev)]
    if len(runs) >= 3:
        worse = worse[worse[runs[-2]] > worse[runs[-3]]]
    if len(worse):
        top = (last - prev)[worse.index].sort_values(ascending=False)
        name = top.index[0]
        text = _("The source is getting worse: {table} has more problem rows in each of the last runs ({before} → "
                 "{now}).", table=name, before=_fmt(prev[name], "count"), now=_fmt(last[name], "count"))
        return finding(text, "act", _("Find what changed in the CRM or its export since the runs before (a new "
                                      "form, an import, a sync job) and fix it at the source."),
                       kpi="problem_rows", weight=0.8, lead=True)
    total_last, total_prev = float(last.sum()), float(prev.sum())
    if total_last < total_prev:
        return finding(_("Fewer problem rows than in the previous run: {before} → {now}.",
                         before=_fmt(total_prev, "count"), now=_fmt(total_last, "count")), "good")
    if total_last == total_prev:
        return finding(_("As many problem rows as in the previous run ({now}).", now=_fmt(total_last, "count")),
                       "info")
    return finding(_("More problem rows than in the previous run: {before} → {now}.",
                     before=_fmt(total_prev, "count"), now=_fmt(total_last, "count")), "watch",
                   _("See which tables grew in the table below."))
