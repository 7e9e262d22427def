"""Sales funnel: lead → MQL → SQL → opportunity → won, conversion by segment and over time, funnel velocity,
bottleneck diagnosis, the opportunity funnel by stage, and win/loss analysis.

Definitions used throughout (also in each function's docstring):

* **Lead cohort** of a period: the leads *created* in the period (`leads.created_at`), followed to wherever
  they got by the time of the data (conversions after the period count). A lead *reached* a step when that
  step's marker or any later one is set: MQL = `mql_at`, SQL = `sql_at`, opportunity = `opportunity_id`,
  won = its opportunity has `is_won` true (an opportunity missing from the frames counts as not won).
  Recent cohorts have had less time to convert: compare like with like.
* **Step rate**: leads that reached a step ÷ leads that reached the step before it; **drop-off** = 1 − rate.
* **Opportunities** in a slice are the ones *active* in the period; functions select "created in the period"
  (new), "closed in the period" (won/lost, win rate) and "open at period end" (pipeline) themselves.
* **Win rate**: won ÷ closed (won + lost) among opportunities closed in the period.
* **Dwell time**: days between entering and leaving a stage (`opportunity_stage_history`), for stage
  entries *left* in the period.

Stage names and order always come from the source's vocabulary (`Vocabulary`), never from the demo's.

The analyses a notebook calls take the slice (`crmlens.analysis.on_slice`: ``funnel.conversion_by(s,
"source_channel")``) or, as written, frames (the unit tests). Every ``describe_*`` function returns a
`crmlens.findings.Finding` — or None when the data supports no sentence. Labels that reach readers (step names,
"(none)", outcomes) are in the language in use (`crmlens.i18n`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from crmlens import i18n
from crmlens.analysis import on_slice
from crmlens.errors import ParameterError
from crmlens.findings import Finding, finding
from crmlens.i18n import N_, _, n_
from crmlens.kpis import KpiContext, register_kpi
from crmlens.metrics.common import (
    bucket,
    check_choice,
    closed_in_period,
    in_period,
    isin,
    lookup,
    memo_by_inputs,
    ratio,
    ratio_series,
    won_mask,
)
from crmlens.present import register_columns
from crmlens.schema import Vocabulary

if TYPE_CHECKING:
    from crmlens.data import Slice

AREA = "sales_funnel"

#: The lead funnel's steps, in order, and how people read them (msgids: `lead_funnel` shows them translated).
STEPS: tuple[str, ...] = ("lead", "mql", "sql", "opportunity", "won")
STEP_LABELS: dict[str, str] = {"lead": N_("Lead"), "mql": N_("MQL"), "sql": N_("SQL"),
                               "opportunity": N_("Opportunity"), "won": N_("Won")}
#: Step-to-step transitions of the lead funnel (`<from>_to_<to>`), in order.
TRANSITIONS: tuple[str, ...] = ("lead_to_mql", "mql_to_sql", "sql_to_opportunity", "opportunity_to_won")
TRANSITION_LABELS: dict[str, str] = {"lead_to_mql": N_("lead→MQL"), "mql_to_sql": N_("MQL→SQL"),
                                     "sql_to_opportunity": N_("SQL→opportunity"),
                                     "opportunity_to_won": N_("opportunity→won")}
#: The KPI of the registry each transition moves (findings name it; "" when none measures it).
TRANSITION_KPIS: dict[str, str] = {"lead_to_mql": "mql_rate", "mql_to_sql": "",
                                   "sql_to_opportunity": "sql_to_opportunity_rate", "opportunity_to_won": "win_rate"}
#: Columns of `leads` the conversion can be split by.
LEAD_DIMENSIONS: tuple[str, ...] = ("source_channel", "region_id", "owner_rep_id", "campaign_id")
#: Columns the win rate can be split by (`product_line` needs the products table).
OPPORTUNITY_DIMENSIONS: tuple[str, ...] = ("competitor", "region_id", "owner_rep_id", "product_id",
                                           "product_line", "deal_type", "loss_reason")
#: Label for a missing value of a dimension (no competitor, no loss reason given, ...); results carry it
#: translated (`none_label`).
NONE_LABEL = N_("(none)")
#: How a dimension is named in sentences and titles (msgids), in the singular and the plural.
DIMENSION_WORDS: dict[str, str] = {"region_id": N_("region"), "owner_rep_id": N_("rep"),
                                   "source_channel": N_("channel"), "campaign_id": N_("campaign"),
                                   "product_id": N_("product"), "product_line": N_("product line"),
                                   "deal_type": N_("deal type"), "loss_reason": N_("loss reason"),
                                   "competitor": N_("competitor")}
DIMENSION_PLURALS: dict[str, str] = {"region_id": N_("regions"), "owner_rep_id": N_("reps"),
                                     "source_channel": N_("channels"), "campaign_id": N_("campaigns"),
                                     "product_id": N_("products"), "product_line": N_("product lines"),
                                     "deal_type": N_("deal types"), "loss_reason": N_("loss reasons"),
                                     "competitor": N_("competitors")}
#: Outcomes of `win_loss`, in its row order (msgids).
OUTCOME_LABELS: dict[str, str] = {"won": N_("Won"), "lost": N_("Lost")}
#: The columns a reader's table of `lead_funnel_periods` and of the peer comparisons shows (the ids and the
#: compared dimension stay in the analyst's frame): ``nb.table(frame, columns=funnel.LEAD_FUNNEL_TABLE)``.
LEAD_FUNNEL_TABLE: tuple[str, ...] = ("period", "step", "n_leads", "opportunity_amount", "conversion_rate",
                                      "drop_off_rate", "from_lead_rate")
PEER_TABLE: tuple[str, ...] = ("group", "name", "step", "n_at_step", "n_converted", "n_entries", "rate", "peer_rate",
                               "median_days", "peer_median_days", "ratio")
_DAY = pd.Timedelta(days=1)

register_columns({
    "step_id": (N_("Step key"), "text"),
    "n_leads": (N_("Leads"), "count"),
    "opportunity_amount": (N_("Opportunity amount"), "amount"),
    "conversion_rate": (N_("Conversion from previous step"), "rate"),
    "drop_off_rate": (N_("Drop-off"), "rate"),
    "from_lead_rate": (N_("Share of all leads"), "rate"),
    "n_mql": (N_("MQLs"), "count"),
    "n_sql": (N_("SQLs"), "count"),
    "n_opportunity": (N_("Opportunities"), "count"),
    "n_won": (N_("Won deals"), "count"),
    "mql_rate": (N_("Lead→MQL rate"), "rate"),
    "mql_to_sql_rate": (N_("MQL→SQL rate"), "rate"),
    "sql_to_opportunity_rate": (N_("SQL→opportunity rate"), "rate"),
    "opportunity_to_won_rate": (N_("Opportunity→won rate"), "rate"),
    "lead_to_won_rate": (N_("Lead→won rate"), "rate"),
    "campaign_id": (N_("Campaign"), "text"),
    "dimension": (N_("Compared by"), "text"),
    "group": (N_("Group"), "text"),
    "n_at_step": (N_("Leads at the step"), "count"),
    "n_converted": (N_("Converted"), "count"),
    "rate": (N_("Rate"), "rate"),
    "peer_rate": (N_("Peers' median rate"), "rate"),
    "ratio": (N_("Ratio to peers"), "ratio"),
    "median_days": (N_("Median days"), "days"),
    "mean_days": (N_("Mean days"), "days"),
    "peer_median_days": (N_("Peers' median days"), "days"),
    "n_entries": (N_("Stage exits"), "count"),
    "from_stage": (N_("From stage"), "text"),
    "to_stage": (N_("To stage"), "text"),
    "n_moves": (N_("Moves"), "count"),
    "n_reached": (N_("Reached"), "count"),
    "amount": (N_("Amount"), "amount"),
    "n_opportunities": (N_("Opportunities"), "count"),
    "share_rate": (N_("Share"), "share"),
    "n_active": (N_("Active opportunities"), "count"),
    "n_new": (N_("New opportunities"), "count"),
    "new_amount": (N_("Amount of new opportunities"), "amount"),
    "n_closed": (N_("Closed deals"), "count"),
    "n_lost": (N_("Lost deals"), "count"),
    "won_amount": (N_("Won amount"), "amount"),
    "win_rate": (N_("Win rate"), "rate"),
    "n_open_at_end": (N_("Open at period end"), "count"),
    "pipeline_amount": (N_("Open pipeline"), "amount"),
    "median_cycle_days": (N_("Median sales cycle"), "days"),
    "outcome": (N_("Outcome"), "text"),
    "avg_amount": (N_("Average amount"), "amount"),
    "loss_reason": (N_("Loss reason"), "text"),
    "lost_amount": (N_("Lost amount"), "amount"),
    "amount_share_rate": (N_("Share of lost amount"), "share"),
    "deal_type": (N_("Deal type"), "text"),
})


# ------------------------------------------------------------------------------------------ helpers

def _require(frame: pd.DataFrame, table: str, *columns: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        from crmlens.errors import SchemaError

        raise SchemaError(f"{table}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")


def _days(delta: pd.Series) -> pd.Series:
    return delta.dt.total_seconds().astype("float64") / 86400.0


def none_label() -> str:
    """`NONE_LABEL` in the language in use: what results show for a missing value of a dimension."""
    return _(NONE_LABEL)


def _is_none(values: pd.Series) -> pd.Series:
    """True where a group label is the missing-value label (in English or in the language in use)."""
    return values.astype("string").isin([NONE_LABEL, none_label()]).fillna(False).astype(bool)


def _labels(values: pd.Series) -> pd.Series:
    """Group labels: strings, with missing values shown as `none_label`."""
    return values.astype("string").fillna(none_label())


def _median(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.median()) if len(values) else None


def _sum_known(values: pd.Series) -> float:
    """The sum of the known values: 0 for no rows, missing (NaN) when rows exist but no value is known (open
    deals without an amount in some CRMs) — never a zero made of unknowns."""
    if not len(values):
        return 0.0
    total = values.sum(min_count=1)
    return float(total) if pd.notna(total) else np.nan


def _known(value: Any) -> bool:
    return not i18n.is_missing(value)


def _pct(value: float | None) -> str:
    """A rate in a sentence: whole percents, one decimal under 10%."""
    if not _known(value):
        return i18n.MISSING_VALUE
    return i18n.format_number(value, "rate", digits=1 if 0 < abs(value) < 0.1 else 0)


def _money(value: float | None, currency: str | None = None) -> str:
    return i18n.format_number(value, "amount", currency)


def _count(value: float) -> str:
    return i18n.format_number(value, "count")


def _whole(value: float) -> str:
    return i18n.format_number(value, "number", digits=0)


def _days_text(value: float) -> str:
    return i18n.format_number(value, "days", digits=0)


def _word(by: str, plural: bool = False) -> str:
    """How the dimension `by` is named in a sentence, in the language in use."""
    words = DIMENSION_PLURALS if plural else DIMENSION_WORDS
    return _(words[by]) if by in words else by


def _join(items: Iterable[str]) -> str:
    """"a", "a and b", "a, b and c" in the language in use."""
    items = [str(i) for i in items]
    if len(items) < 2:
        return "".join(items)
    return _("{items} and {last}", items=_(", ").join(items[:-1]), last=items[-1])


def _then(text: str, more: str) -> str:
    """Two sentences one after the other (a space in English, none in Chinese)."""
    return _("{text} {more}", text=text, more=more)


def _who(group: Any, name: Any = None, by: str = "") -> str:
    """A group as a reader names it: its name when it has one — with the id for reps ("Lei Li (R0001)"), whose
    names are not unique —, else its id."""
    group = str(group)
    if not (_known(name) and str(name) and str(name) != group):
        return group
    return f"{name} ({group})" if by == "owner_rep_id" else str(name)


def _tied(values: pd.Series, value: float) -> pd.Series:
    """Rows of `values` equal to `value` (a tie is not a ranking)."""
    return pd.Series(np.isclose(values.astype("float64"), value, rtol=1e-9, atol=1e-12), index=values.index)


def _clip(value: float) -> float:
    return float(min(1.0, max(0.0, value))) if _known(value) else 0.0


_NAME_TABLES = {"region_id": ("regions", "region_id"), "owner_rep_id": ("reps", "rep_id")}


def with_names(frame: pd.DataFrame, key: str, by: str, *, reps: pd.DataFrame | None = None,
               regions: pd.DataFrame | None = None) -> pd.DataFrame:
    """`frame` with a `name` column after its `key` column when `by` is a dimension whose ids have names
    (regions, reps) and its table is given; else `frame` as it is. Charts label the ids with these names
    (`crmlens.charts.display_names`)."""
    table = {"regions": regions, "reps": reps}.get(_NAME_TABLES.get(by, ("", ""))[0])
    if table is None or frame is None or key not in frame.columns or "name" in frame.columns \
            or "name" not in table.columns:
        return frame
    id_column = _NAME_TABLES[by][1]
    names = table.drop_duplicates(id_column).set_index(id_column)["name"].astype("string")
    names.index = names.index.astype("string")
    out = frame.copy()
    out.insert(out.columns.get_loc(key) + 1, "name", lookup(out[key].astype("string"), names))
    return out


# ------------------------------------------------------------------------------------- lead funnel

@memo_by_inputs
def lead_progress(leads: pd.DataFrame, opportunities: pd.DataFrame | None = None,
                  ctx: KpiContext | None = None) -> pd.DataFrame:
    """One row per lead of the cohort (created in `ctx`'s period; all rows when `ctx` is None) with a
    boolean `reached_<step>` per funnel step and the amount of its opportunity (`opportunity_amount`).

    A lead reached a step when that step's marker or any later one is set (a lead converted straight into
    an opportunity has passed MQL and SQL). `won` is known only with `opportunities`; without it the
    `reached_won` column is all missing. The input is not modified.
    """
    _require(leads, "leads", "lead_id", "created_at", "mql_at", "sql_at", "opportunity_id")
    cohort = leads[in_period(leads["created_at"], ctx)] if ctx is not None else leads
    out = pd.DataFrame({"lead_id": cohort["lead_id"].to_numpy()}, index=cohort.index)
    for col in ("source_channel", "region_id", "owner_rep_id", "campaign_id", "created_at"):
        if col in cohort.columns:
            out[col] = cohort[col]
    opp_ids = cohort["opportunity_id"]
    if opportunities is not None:
        _require(opportunities, "opportunities", "opportunity_id", "is_won", "amount")
        opps = opportunities.drop_duplicates("opportunity_id").set_index("opportunity_id")
        won = isin(opp_ids, opps.index[won_mask(opps).to_numpy()])
        out["opportunity_amount"] = lookup(opp_ids, opps["amount"].astype("float64")).astype("float64")
    else:
        won = pd.Series(False, index=cohort.index)
        out["opportunity_amount"] = np.nan
    reached_opp = opp_ids.notna().to_numpy(dtype=bool) | won.to_numpy(dtype=bool)
    reached_sql = cohort["sql_at"].notna().to_numpy(dtype=bool) | reached_opp
    reached_mql = cohort["mql_at"].notna().to_numpy(dtype=bool) | reached_sql
    out["reached_lead"] = True
    out["reached_mql"] = reached_mql
    out["reached_sql"] = reached_sql
    out["reached_opportunity"] = reached_opp
    out["reached_won"] = won.to_numpy(dtype=bool) if opportunities is not None else pd.NA
    return out.reset_index(drop=True)


def lead_funnel(leads: pd.DataFrame, opportunities: pd.DataFrame | None = None,
                ctx: KpiContext | None = None) -> pd.DataFrame:
    """The lead funnel of the cohort of leads created in the period (all leads when `ctx` is None).

    One row per step (Lead, MQL, SQL, Opportunity, Won — Won only with `opportunities`): `step_id`, `step`
    (its label in the language in use), `n_leads` that reached it, `opportunity_amount` of their
    opportunities (opportunity and won steps), `conversion_rate` from the previous step, `drop_off_rate`
    (1 − conversion) and `from_lead_rate` (share of the cohort).
    """
    progress = lead_progress(leads, opportunities, ctx)
    steps = STEPS if opportunities is not None else STEPS[:-1]
    rows = []
    for step in steps:
        reached = progress[f"reached_{step}"].astype(bool)
        amount = progress.loc[reached, "opportunity_amount"].sum(min_count=1) if step in ("opportunity", "won") \
            else np.nan
        rows.append({"step_id": step, "step": _(STEP_LABELS[step]), "n_leads": int(reached.sum()),
                     "opportunity_amount": float(amount) if pd.notna(amount) else np.nan})
    out = pd.DataFrame(rows)
    out["conversion_rate"] = ratio_series(out["n_leads"], out["n_leads"].shift(1))
    out["drop_off_rate"] = 1.0 - out["conversion_rate"]
    out["from_lead_rate"] = ratio_series(out["n_leads"], pd.Series(out["n_leads"].iloc[0], index=out.index))
    return out


def period_frames(s: Slice) -> dict[str, tuple[Mapping[str, pd.DataFrame], KpiContext]]:
    """The slice's current, previous and last-year frames with their KPI contexts, keyed by period label
    (current first) — the input of `lead_funnel_periods` and friends."""
    out: dict[str, tuple[Mapping[str, pd.DataFrame], KpiContext]] = {}
    for frames, period in ((s.tables, s.period), (s.previous, s.previous_period), (s.last_year, s.last_year_period)):
        ctx = KpiContext(period_start=period.start, period_end=period.end, region=s.params.region, as_of=s.as_of,
                         vocabulary=s.info.vocabulary, period_label=period.label)
        out.setdefault(period.label, (frames, ctx))
    return out


@on_slice("leads")
def lead_funnel_periods(periods: Mapping[str, tuple[Mapping[str, pd.DataFrame], KpiContext]] | None = None, *,
                        s: Slice | None = None) -> pd.DataFrame:
    """`lead_funnel` for each period (label → (frames, context), e.g. from `period_frames`), stacked with a
    `period` column, in the order given. Called with the slice (``lead_funnel_periods(s)``): its current,
    previous and last-year periods.

    The frame's ``attrs["incomplete_periods"]`` lists the periods not over at the time of the data (their
    cohorts are still being counted: `describe_funnel_periods` does not judge their volume)."""
    if periods is None:
        if s is None:
            raise ParameterError("periods: give the periods' frames (funnel.period_frames(s)) or the slice")
        periods = period_frames(s)
    parts = []
    incomplete = []
    for label, (frames, ctx) in periods.items():
        part = lead_funnel(frames["leads"], frames.get("opportunities"), ctx)
        part.insert(0, "period", label)
        parts.append(part)
        if ctx.as_of is not None and ctx.period_end is not None and ctx.as_of < ctx.period_end:
            incomplete.append(label)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    out.attrs["incomplete_periods"] = incomplete
    return out


def describe_lead_funnel(funnel: pd.DataFrame) -> Finding | None:
    """One period's lead funnel (the first period of a stacked frame): size, end-to-end conversion and the
    step losing the most leads (ties named together; no "biggest drop" when no step lost a lead). Context
    (info); no leads at all is a "watch"."""
    if "period" in funnel.columns and len(funnel):
        funnel = funnel[funnel["period"] == funnel["period"].iloc[0]]
    if funnel.empty or funnel["n_leads"].iloc[0] == 0:
        return finding(_("No leads were created in the period."), "watch",
                       _("Check that leads are captured and reach the CRM for this region and period."),
                       kpi="leads_created", weight=0.5)
    funnel = funnel.reset_index(drop=True)
    n = int(funnel["n_leads"].iloc[0])
    last = funnel.iloc[-1]
    text = n_("Of {n} lead created in the period, {reached} reached {step} ({rate} end to end).",
              "Of {n} leads created in the period, {reached} reached {step} ({rate} end to end).", n,
              reached=_count(last["n_leads"]), step=last["step"], rate=_pct(last["from_lead_rate"]))
    steps = funnel.iloc[1:].dropna(subset=["drop_off_rate"])
    if len(steps):
        top = float(steps["drop_off_rate"].max())
        worst = steps[_tied(steps["drop_off_rate"], top)]
        names = [(funnel["step"].iloc[i - 1], funnel["step"].iloc[i]) for i in worst.index]
        if top <= 0:
            text = _then(text, _("No step has lost a lead so far."))
        elif len(names) == 1:
            prev, step = names[0]
            text = _then(text, _("The biggest drop so far is {prev}→{step}: {rate} of the leads at {prev} have not "
                                 "(yet) reached {step}.", prev=prev, step=step, rate=_pct(top)))
        else:
            text = _then(text, _("The biggest drops so far, {rate} each, are {steps}.", rate=_pct(top),
                                 steps=_join(f"{a}→{b}" for a, b in names)))
    kpi = "lead_to_won_rate" if "step_id" in funnel.columns and funnel["step_id"].iloc[-1] == "won" \
        else "leads_created"
    return finding(text, "info", kpi=kpi, weight=0.2)


#: A change of lead volume vs the comparison period worth a finding (±20%).
LEAD_VOLUME_CHANGE = 0.2


def describe_funnel_periods(funnel: pd.DataFrame) -> Finding | None:
    """The first period of a stacked funnel frame (from `lead_funnel_periods`) against the other periods:
    leads and end-to-end conversion. None with a single period (nothing to compare). A lead volume ≥ 20%
    below the next period's is a "watch", ≥ 20% above it good news — judged only when the first period is
    over (`attrs["incomplete_periods"]`): a quarter under way has not had all its leads yet."""
    if funnel.empty or "period" not in funnel.columns:
        return None
    labels = list(dict.fromkeys(funnel["period"]))
    if len(labels) < 2:
        return None
    first = funnel[funnel["period"] == labels[0]].set_index("step_id")
    n = int(first["n_leads"].iloc[0])
    if n == 0:
        return finding(_("No leads were created in {period}.", period=labels[0]), "info", kpi="leads_created")
    parts = []
    for label in labels[1:]:
        other = funnel[funnel["period"] == label].set_index("step_id")
        n_other = int(other["n_leads"].iloc[0])
        if n_other == 0:
            parts.append(_("no leads in {period}", period=label))
            continue
        parts.append(n_("{n} lead and {rate} end to end in {period}", "{n} leads and {rate} end to end in {period}",
                        n_other, rate=_pct(other["from_lead_rate"].iloc[-1]), period=label))
    last = first.index[-1]
    summary = n_("{period}: {n} lead, {rate} reached {step}", "{period}: {n} leads, {rate} reached {step}", n,
                 period=labels[0], rate=_pct(first["from_lead_rate"].iloc[-1]), step=_(STEP_LABELS[last]))
    text = _("{summary} — vs {others}.", summary=summary, others=_("; ").join(parts))
    base_label = labels[1]
    base = int(funnel.loc[funnel["period"] == base_label, "n_leads"].iloc[0])
    if base == 0 or labels[0] in funnel.attrs.get("incomplete_periods", ()):
        return finding(text, "info", kpi="leads_created", weight=0.1)
    change = n / base - 1
    if change <= -LEAD_VOLUME_CHANGE:
        return finding(text, "watch", _("Review lead generation with marketing: {change} leads vs {period}.",
                                        change=i18n.format_number(change, "rate", signed=True, digits=0),
                                        period=base_label),
                       kpi="leads_created", weight=_clip(-change))
    if change >= LEAD_VOLUME_CHANGE:
        return finding(text, "good", kpi="leads_created", weight=_clip(change / 2))
    return finding(text, "info", kpi="leads_created", weight=0.1)


# ---------------------------------------------------------------------------- conversion by segment

def _rates(progress: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Counts per step and step rates of a `lead_progress` frame, grouped by `keys`."""
    has_won = progress["reached_won"].notna().all() and len(progress) > 0
    cols = {f"n_{step}": (f"reached_{step}", "sum") for step in STEPS if step != "won" or has_won}
    work = progress.assign(**{f"reached_{s}": progress[f"reached_{s}"].fillna(False).astype(bool) for s in STEPS})
    if keys:
        out = work.groupby(keys, observed=True, sort=True).agg(**cols).reset_index()
    else:
        out = pd.DataFrame([{name: work[col].sum() for name, (col, _how) in cols.items()}])
    out = out.rename(columns={"n_lead": "n_leads"})
    if "n_won" not in out.columns:
        out["n_won"] = np.nan
    out["mql_rate"] = ratio_series(out["n_mql"], out["n_leads"])
    out["mql_to_sql_rate"] = ratio_series(out["n_sql"], out["n_mql"])
    out["sql_to_opportunity_rate"] = ratio_series(out["n_opportunity"], out["n_sql"])
    out["opportunity_to_won_rate"] = ratio_series(out["n_won"], out["n_opportunity"])
    out["lead_to_won_rate"] = ratio_series(out["n_won"], out["n_leads"])
    return out


@on_slice("leads")
def conversion_by(leads: pd.DataFrame, opportunities: pd.DataFrame | None, by: str,
                  ctx: KpiContext | None = None, *, reps: pd.DataFrame | None = None,
                  regions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Lead-funnel conversion of the period's lead cohort split by `by` (one of `LEAD_DIMENSIONS`).

    One row per value of `by` (missing values as "(none)"): [`name` of the region or rep, given `regions` /
    `reps`], `n_leads`, `n_mql`, `n_sql`, `n_opportunity`, `n_won` and the rates `mql_rate` (lead→MQL),
    `mql_to_sql_rate`, `sql_to_opportunity_rate`, `opportunity_to_won_rate`, `lead_to_won_rate`; sorted by
    `n_leads`, largest first.
    """
    check_choice("by", by, LEAD_DIMENSIONS)
    progress = lead_progress(leads, opportunities, ctx)
    if by not in progress.columns:
        raise ParameterError(f"by: leads have no column {by!r}; use one of "
                             f"{', '.join(c for c in LEAD_DIMENSIONS if c in progress.columns)}")
    progress = progress.assign(**{by: _labels(progress[by])})
    out = _rates(progress, [by])
    out = out.sort_values(["n_leads", by], ascending=[False, True], ignore_index=True)
    return with_names(out, by, by, reps=reps, regions=regions)


def conversion_trend(leads: pd.DataFrame, opportunities: pd.DataFrame | None = None, *, freq: str = "quarter",
                     by: str | None = None) -> pd.DataFrame:
    """Lead-funnel conversion per creation period (`freq`: month, quarter, ...) of each lead cohort in the
    frame (e.g. `Slice.history("leads", 8)`), optionally per value of `by` (one of `LEAD_DIMENSIONS`).

    Columns: `period`, [`by`], the counts and rates of `conversion_by`. The latest cohorts are the
    youngest: their later steps are still filling up.
    """
    if by is not None:
        check_choice("by", by, LEAD_DIMENSIONS)
    progress = lead_progress(leads, opportunities)
    progress["period"] = bucket(progress["created_at"], freq)
    keys = ["period"]
    if by is not None:
        progress[by] = _labels(progress[by])
        keys.append(by)
    return _rates(progress, keys).sort_values(keys, ignore_index=True)


@on_slice("leads")
def conversion_history(s: Slice, n_periods: int = 8, *, freq: str = "quarter", by: str | None = None,
                       reps: pd.DataFrame | None = None, regions: pd.DataFrame | None = None) -> pd.DataFrame:
    """`conversion_trend` of the lead cohorts of the slice's last `n_periods` periods (its region), per
    `freq`, optionally by `by` (with the `name` of each region or rep)."""
    out = conversion_trend(history(s, "leads", n_periods), history(s, "opportunities", n_periods), freq=freq, by=by)
    return with_names(out, by, by, reps=reps, regions=regions) if by is not None else out


# -------------------------------------------------------------------------------- bottleneck

def compare_steps(leads: pd.DataFrame, opportunities: pd.DataFrame | None = None, *, by: str = "region_id",
                  min_n: int = 20) -> pd.DataFrame:
    """Each group's step rates against its peers (the other groups), over all leads in the frame.

    Use a frame covering several periods and every group (e.g. `history(s, "leads", 8, every_region=True)`, or
    `peer_steps(s)`): one quarter of one region is too few leads to judge a step. One row per group × step:
    `dimension` (= `by`), `group`, `step`, `n_at_step` (leads that reached the step's start), `n_converted`,
    `rate`, `peer_rate` (median rate of the *other* groups with at least `min_n` entered) and `ratio` = rate ÷
    peer_rate (below 1 is worse). Groups with fewer than `min_n` entered, and leads with no value of `by`
    ("(none)", e.g. unassigned leads), are neither judged nor peers (ratio missing).
    """
    check_choice("by", by, LEAD_DIMENSIONS)
    if min_n < 1:
        raise ParameterError(f"min_n: {min_n!r} must be a whole number ≥ 1")
    progress = lead_progress(leads, opportunities)
    progress[by] = _labels(progress[by])
    counts = _rates(progress, [by])
    has_won = opportunities is not None
    rows = []
    for i, step in enumerate(TRANSITIONS):
        if step == "opportunity_to_won" and not has_won:
            continue
        src, dst = STEPS[i], STEPS[i + 1]
        entered = counts["n_leads" if src == "lead" else f"n_{src}"]
        converted = counts[f"n_{dst}"]
        rows.append(pd.DataFrame({"dimension": by, "group": counts[by], "step": step, "n_at_step": entered.astype(int),
                                  "n_converted": converted.astype(int), "rate": ratio_series(converted, entered)}))
    if not rows:
        return pd.DataFrame(columns=["dimension", "group", "step", "n_at_step", "n_converted", "rate", "peer_rate",
                                     "ratio"])
    out = pd.concat(rows, ignore_index=True)
    out["peer_rate"] = _peer_medians(out, "rate", min_n, "n_at_step")
    out["ratio"] = ratio_series(out["rate"], out["peer_rate"]).where((out["n_at_step"] >= min_n)
                                                                     & ~_is_none(out["group"]))
    return out


def _peer_medians(frame: pd.DataFrame, value: str, min_n: int, count: str) -> pd.Series:
    """For each row, the median `value` of the other groups' rows of the same step with ≥ `min_n` counts."""
    result = pd.Series(np.nan, index=frame.index, dtype="float64")
    for _step, rows in frame.groupby("step", sort=False):
        eligible = rows[(rows[count] >= min_n) & rows[value].notna() & ~_is_none(rows["group"])]
        values = eligible[value].to_numpy(dtype="float64")
        groups = eligible["group"].astype(object).to_numpy()
        for idx, group in zip(rows.index, rows["group"].astype(object).to_numpy(), strict=True):
            others = values[groups != group]
            if len(others):
                result.loc[idx] = float(np.median(others))
    return result


def compare_stage_days(stage_history: pd.DataFrame, opportunities: pd.DataFrame, vocabulary: Vocabulary, *,
                       by: str = "region_id", ctx: KpiContext | None = None, min_n: int = 20) -> pd.DataFrame:
    """Each group's median dwell time per open stage against its peers (the other groups).

    Stage entries left in the period (all left entries when `ctx` is None), grouped by the opportunity's
    `by` (region_id, owner_rep_id, ...). One row per group × stage: `dimension`, `group`, `step` (the stage),
    `n_entries` (stage entries left), `median_days`, `peer_median_days` (median of the other groups with ≥ `min_n`
    entries) and `ratio` = peer ÷ own days (below 1 is slower than peers, i.e. worse).
    """
    _require(opportunities, "opportunities", "opportunity_id")
    if by not in opportunities.columns or by in ("amount",):
        raise ParameterError(f"by: opportunities have no grouping column {by!r}; use e.g. region_id or owner_rep_id")
    entries = _left_entries(stage_history, vocabulary, ctx)
    groups = opportunities.drop_duplicates("opportunity_id").set_index("opportunity_id")[by]
    entries = entries.assign(group=_labels(lookup(entries["opportunity_id"], groups)))
    entries = entries[isin(entries["opportunity_id"], groups.index)]
    out = (entries.groupby(["group", "stage"], observed=True)
           .agg(n_entries=("days", "size"), median_days=("days", "median")).reset_index())
    out = out.rename(columns={"stage": "step"})
    out.insert(0, "dimension", by)
    order = {stage: i for i, stage in enumerate(vocabulary.stages)}
    out = out.sort_values(["step", "group"], key=lambda c: c.map(order) if c.name == "step" else c,
                          ignore_index=True)
    out["peer_median_days"] = _peer_medians(out, "median_days", min_n, "n_entries")
    out["ratio"] = ratio_series(out["peer_median_days"], out["median_days"]).where((out["n_entries"] >= min_n)
                                                                                   & ~_is_none(out["group"]))
    return out


@on_slice("leads")
def peer_steps(s: Slice, by: str = "region_id", *, n_periods: int = 8, min_n: int = 20,
               reps: pd.DataFrame | None = None, regions: pd.DataFrame | None = None) -> pd.DataFrame:
    """`compare_steps` over the lead cohorts of the last `n_periods` periods, with the `name` of each region or
    rep. By region, every region's leads (a region is judged against its peers, also when the slice is one
    region); by another dimension (rep, channel), the slice's own leads."""
    every = by == "region_id"
    out = compare_steps(history(s, "leads", n_periods, every_region=every),
                        history(s, "opportunities", n_periods, every_region=every), by=by, min_n=min_n)
    return with_names(out, "group", by, reps=reps, regions=regions)


@on_slice("opportunity_stage_history", "opportunities")
def peer_stage_days(s: Slice, by: str = "region_id", *, n_periods: int = 8, min_n: int = 20,
                    vocabulary: Vocabulary | None = None, reps: pd.DataFrame | None = None,
                    regions: pd.DataFrame | None = None) -> pd.DataFrame:
    """`compare_stage_days` of the stage entries left over the last `n_periods` periods, with the `name` of
    each region or rep. By region, every region's deals; by another dimension, the slice's own."""
    every = by == "region_id"
    out = compare_stage_days(history(s, "opportunity_stage_history", n_periods, every_region=every),
                             history(s, "opportunities", n_periods, every_region=every),
                             vocabulary or s.info.vocabulary, by=by, min_n=min_n)
    return with_names(out, "group", by, reps=reps, regions=regions)


@dataclass(frozen=True)
class Bottleneck:
    """The diagnosed bottleneck: the group × step performing worst against its peers.

    `kind` is "conversion" (value = step rate) or "dwell" (value = median days in the stage); `ratio` is the
    performance relative to peers (below 1 is worse: rate ÷ peer rate, or peer days ÷ own days); `flagged`
    says whether it is below `threshold` — abnormal — or merely the weakest of a healthy set. All fields but
    `dimension`, `threshold` and `flagged` are None when there was nothing to compare. `name` is the group's
    name (a region's, a rep's) when known; `tied_with` the other group × steps exactly as far behind
    ("West (SQL→opportunity)") — a tie is not a single bottleneck.
    """

    dimension: str
    group: str | None
    step: str | None
    kind: Literal["conversion", "dwell"] | None
    value: float | None
    peer_value: float | None
    ratio: float | None
    n_entered: int
    flagged: bool
    threshold: float
    name: str | None = None
    tied_with: tuple[str, ...] = ()

    @property
    def step_label(self) -> str:
        """The step as a reader names it (a transition's label, or the stage name of a dwell)."""
        label = TRANSITION_LABELS.get(self.step or "")
        return _(label) if label else (self.step or "")

    @property
    def who(self) -> str:
        """The group as a reader names it."""
        return _who(self.group, self.name, self.dimension)

    def as_frame(self) -> pd.DataFrame:
        """The result as a one-row frame (for display and exports)."""
        return pd.DataFrame([dataclasses.asdict(self)])


def diagnose_bottleneck(steps: pd.DataFrame | None, dwell: pd.DataFrame | None = None, *, focus: str = "all",
                        threshold: float = 0.7) -> Bottleneck | None:
    """The group × step whose conversion (from `compare_steps`) or dwell time (from `compare_stage_days`) is
    worst against its peers; `flagged` when its ratio to the peers' median is below `threshold`. None when
    `steps` is None (a section skipped for want of leads).

    `focus` = "all" looks at every group (which region is the bottleneck?); a group name (a region, a rep)
    looks only at that group's steps against its peers (where is *this* region's bottleneck?).
    """
    if not 0 < threshold < 1:
        raise ParameterError(f"threshold: {threshold!r} must be between 0 and 1 (e.g. 0.7 = 30% worse than peers)")
    if steps is None:
        return None
    frames = [steps.assign(kind="conversion", value=steps["rate"], peer_value=steps["peer_rate"], n=steps["n_at_step"])]
    if dwell is not None and len(dwell):
        frames.append(dwell.assign(kind="dwell", value=dwell["median_days"], peer_value=dwell["peer_median_days"],
                                   n=dwell["n_entries"]))
    candidates = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    dimension = str(steps["dimension"].iloc[0]) if len(steps) else "region_id"
    if focus != "all":
        known = sorted(set(candidates["group"].astype(str)))
        if focus not in known:
            raise ParameterError(f"focus: {focus!r} is not a {dimension} in the data; use all or one of "
                                 f"{', '.join(known) or 'none (no data)'}")
        candidates = candidates[candidates["group"] == focus]
    candidates = candidates[candidates["ratio"].notna()]
    if candidates.empty:
        return Bottleneck(dimension, None, None, None, None, None, None, 0, False, threshold)
    ratios = candidates["ratio"].astype(float)
    worst = candidates.loc[ratios.idxmin()]
    ties = candidates[_tied(ratios, float(worst["ratio"])) & (candidates.index != worst.name)]
    tied_with = tuple(f"{_who(row['group'], row.get('name'), dimension)} ({_step_label(row['step'])})"
                      for _i, row in ties.iterrows())
    name = worst.get("name")
    return Bottleneck(dimension=dimension, group=str(worst["group"]), step=str(worst["step"]), kind=worst["kind"],
                      value=float(worst["value"]), peer_value=float(worst["peer_value"]),
                      ratio=float(worst["ratio"]), n_entered=int(worst["n"]),
                      flagged=bool(worst["ratio"] < threshold), threshold=threshold,
                      name=str(name) if _known(name) else None, tied_with=tied_with)


def _step_label(step: str) -> str:
    label = TRANSITION_LABELS.get(step)
    return _(label) if label else str(step)


#: What to do about a flagged conversion bottleneck of a region (or another group), and of a rep (msgids;
#: {who} is the group).
BOTTLENECK_ADVICE: dict[str, str] = {
    "lead_to_mql": N_("Review with marketing how {who}'s leads are scored and how fast they are first answered."),
    "mql_to_sql": N_("Review how {who}'s SDRs work MQLs into SQLs: speed of follow-up and qualification criteria."),
    "sql_to_opportunity": N_("Review how {who}'s SDRs hand SQLs to reps."),
    "opportunity_to_won": N_("Review {who}'s lost opportunities (loss reasons, competitors, pricing) with its "
                             "sales manager."),
}
REP_BOTTLENECK_ADVICE: dict[str, str] = {
    "lead_to_mql": N_("Review with {who} how fast their leads are first answered."),
    "mql_to_sql": N_("Review with {who} how their MQLs are followed up and qualified."),
    "sql_to_opportunity": N_("Review with {who} how their SQLs are turned into opportunities."),
    "opportunity_to_won": N_("Review {who}'s open opportunities with their manager before more are lost."),
}
DWELL_ADVICE = N_("Review what {who}'s deals in {stage} wait for (next steps, approvals) in the pipeline review.")


def describe_bottleneck(result: Bottleneck | None) -> Finding | None:
    """The diagnosis, e.g. "East converts SQL→opportunity at 18% vs 35% for the other regions (0.51×) — the
    bottleneck." A flagged bottleneck is "act", with what to review; ties are named; a healthy set names its
    weakest step as context; too little data to compare says so."""
    if result is None:
        return None
    if result.group is None:
        return finding(_("Not enough data to compare groups (each needs enough leads or stage entries)."), "info")
    peers = _("the other {dimensions}", dimensions=_word(result.dimension, plural=True))
    who = result.who
    if result.kind == "dwell":
        values = {"who": who, "days": _days_text(result.value), "stage": result.step, "peer_days": _whole(
            result.peer_value), "peers": peers}
        if result.ratio and result.ratio > 0:
            core = _("{who} deals spend {days} in {stage} vs {peer_days} for {peers} ({times}× as long)",
                     times=i18n.format_number(1 / result.ratio, "number", digits=1), **values)
        else:
            core = _("{who} deals spend {days} in {stage} vs {peer_days} for {peers}", **values)
        advice, kpi = _(DWELL_ADVICE, who=who, stage=result.step), "median_stage_days"
    else:
        core = n_("{who} converts {step} at {rate} vs {peer_rate} for {peers} ({ratio}×, {n} lead entering the step)",
                  "{who} converts {step} at {rate} vs {peer_rate} for {peers} ({ratio}×, {n} leads entering the step)",
                  result.n_entered, who=who, step=result.step_label,
                  rate=i18n.format_number(result.value, "rate", digits=0),
                  peer_rate=i18n.format_number(result.peer_value, "rate", digits=0), peers=peers,
                  ratio=i18n.format_number(result.ratio, "number", digits=2))
        table = REP_BOTTLENECK_ADVICE if result.dimension == "owner_rep_id" else BOTTLENECK_ADVICE
        advice, kpi = _(table[result.step], who=who) if result.step in table else "", \
            TRANSITION_KPIS.get(result.step or "", "")
    if not result.flagged:
        text = _("No step is abnormally weak (none below {threshold} of its peers); the weakest: {finding}.",
                 threshold=i18n.format_number(result.threshold, "rate", digits=0), finding=core)
        return finding(text, "info", kpi=kpi, weight=0.1)
    if result.tied_with:
        text = _("{finding} — the bottleneck, tied with {others}.", finding=core, others=_join(result.tied_with))
    else:
        text = _("{finding} — the bottleneck.", finding=core)
    return finding(text, "act", advice, kpi=kpi, weight=_clip(1 - (result.ratio or 0)))


def history(s: Slice, name: str, n_periods: int = 8, *, every_region: bool = False) -> pd.DataFrame | None:
    """`Slice.history(name, n_periods)`, or None (quietly) when the source lacks the table — so that only the
    analysis using it shows the "needs table" note. With `every_region`, the history of every region (the
    slice's region and its peers), for comparing a region with the others."""
    if not s.has(name):
        return None
    return s.history(name, n_periods, region="all" if every_region else None)


# ------------------------------------------------------------------------------------ velocity

def _left_entries(stage_history: pd.DataFrame, vocabulary: Vocabulary, ctx: KpiContext | None) -> pd.DataFrame:
    _require(stage_history, "opportunity_stage_history", "opportunity_id", "stage", "entered_at", "exited_at")
    left = stage_history[stage_history["exited_at"].notna() & stage_history["stage"].isin(vocabulary.open_stages)]
    if ctx is not None:
        left = left[in_period(left["exited_at"], ctx)]
    return pd.DataFrame({"opportunity_id": left["opportunity_id"], "stage": left["stage"].astype("string"),
                         "days": _days(left["exited_at"] - left["entered_at"])})


@on_slice("opportunity_stage_history")
def stage_days(stage_history: pd.DataFrame, vocabulary: Vocabulary, ctx: KpiContext | None = None) -> pd.DataFrame:
    """Time spent in each open stage: for stage entries left in the period (all when `ctx` is None),
    `n_entries`, `median_days` and `mean_days` per stage, in the source's stage order."""
    entries = _left_entries(stage_history, vocabulary, ctx)
    agg = entries.groupby("stage", observed=True)["days"].agg(["size", "median", "mean"])
    out = pd.DataFrame({"stage": list(vocabulary.open_stages)})
    out["n_entries"] = out["stage"].map(agg["size"]).fillna(0).astype(int)
    out["median_days"] = out["stage"].map(agg["median"]).astype("float64")
    out["mean_days"] = out["stage"].map(agg["mean"]).astype("float64")
    return out


@on_slice("opportunity_stage_history")
def stage_to_stage_days(stage_history: pd.DataFrame, vocabulary: Vocabulary,
                        ctx: KpiContext | None = None) -> pd.DataFrame:
    """Days from entering one stage to entering the next one an opportunity actually moved to (skips and
    moves back included), for moves made in the period (all when `ctx` is None). One row per
    `from_stage` → `to_stage` pair: `n_moves`, `median_days`, in the source's stage order."""
    _require(stage_history, "opportunity_stage_history", "opportunity_id", "stage", "entered_at")
    hist = stage_history.sort_values(["opportunity_id", "entered_at"])
    nxt = hist.groupby("opportunity_id", sort=False)[["stage", "entered_at"]].shift(-1)
    moves = pd.DataFrame({"from_stage": hist["stage"].astype("string"), "to_stage": nxt["stage"].astype("string"),
                          "moved_at": nxt["entered_at"], "days": _days(nxt["entered_at"] - hist["entered_at"])})
    moves = moves[moves["to_stage"].notna()]
    if ctx is not None:
        moves = moves[in_period(moves["moved_at"], ctx)]
    out = (moves.groupby(["from_stage", "to_stage"], observed=True)["days"]
           .agg(n_moves="size", median_days="median").reset_index())
    order = {stage: i for i, stage in enumerate(vocabulary.stages)}
    out = out.sort_values(["from_stage", "to_stage"], key=lambda c: c.map(order), ignore_index=True)
    out["n_moves"] = out["n_moves"].astype(int)
    return out


#: A stage whose median wait is this many times the other stages' (median) is where deals stall.
SLOW_STAGE_FACTOR = 2.0


def describe_stage_days(frame: pd.DataFrame) -> Finding | None:
    """Where deals wait longest (from `stage_days`): the slowest stage (ties named together; a single stage
    with exits is not a ranking; equal waits say so). A stage with ≥ 2× the other stages' median wait is a
    "watch" with the stage to review."""
    known = frame.dropna(subset=["median_days"]).reset_index(drop=True)
    if known.empty:
        return finding(_("No opportunity left an open stage in the period."), "info", kpi="median_stage_days")
    total = _days_text(known["median_days"].sum())
    if len(known) == 1:
        row = known.iloc[0]
        return finding(n_("Only {stage} had deals leaving it in the period: a median {days} there ({n} stage exit).",
                          "Only {stage} had deals leaving it in the period: a median {days} there ({n} stage exits).",
                          int(row["n_entries"]), stage=row["stage"], days=_days_text(row["median_days"])),
                       "info", kpi="median_stage_days", weight=0.1)
    top = float(known["median_days"].max())
    slowest = known[_tied(known["median_days"], top)]
    if len(slowest) == len(known):
        return finding(_("Deals wait as long in every stage: a median {days} each; the stage medians add up to "
                         "{total}.", days=_days_text(top), total=total), "info", kpi="median_stage_days", weight=0.1)
    if len(slowest) > 1:
        return finding(_("Deals wait longest in {stages} (a median {days} each); the stage medians add up to "
                         "{total}.", stages=_join(slowest["stage"]), days=_days_text(top), total=total),
                       "info", kpi="median_stage_days", weight=0.1)
    row = slowest.iloc[0]
    text = n_("Deals wait longest in {stage} (median {days} over {n} stage exit); the stage medians add up to "
              "{total}.",
              "Deals wait longest in {stage} (median {days} over {n} stage exits); the stage medians add up to "
              "{total}.", int(row["n_entries"]), stage=row["stage"], days=_days_text(top), total=total)
    typical = float(known.loc[~_tied(known["median_days"], top), "median_days"].median())
    if typical > 0 and top >= SLOW_STAGE_FACTOR * typical:
        advice = _("Review what deals in {stage} wait for: they stay {times}× as long as in a typical stage.",
                   stage=row["stage"], times=i18n.format_number(top / typical, "number", digits=1))
        return finding(text, "watch", advice, kpi="median_stage_days", weight=_clip((top / typical - 1) / 4))
    return finding(text, "info", kpi="median_stage_days", weight=0.1)


# ------------------------------------------------------------------------------- opportunities

def _closed_in(opportunities: pd.DataFrame, ctx: KpiContext | None) -> pd.DataFrame:
    _require(opportunities, "opportunities", "closed_at", "is_won")
    return closed_in_period(opportunities, ctx)


@on_slice("opportunities")
def opportunity_funnel(opportunities: pd.DataFrame, vocabulary: Vocabulary) -> pd.DataFrame:
    """Opportunities by current stage, in the source's stage order (every stage listed, zeros included):
    `n_opportunities`, `amount` (sum of known amounts; missing when none is known, as for open deals in
    some CRMs) and `share_rate` (of the count). Pass the slice's
    opportunities — the ones active in the period, at their stage as of the data."""
    _require(opportunities, "opportunities", "stage", "amount")
    seen = set(opportunities["stage"].dropna().astype(str).unique())
    stages = list(vocabulary.stages) + sorted(seen - set(vocabulary.stages))
    grouped = opportunities.groupby(opportunities["stage"].astype("string"), observed=True)["amount"]
    out = pd.DataFrame({"stage": stages})
    out["n_opportunities"] = out["stage"].map(grouped.size()).fillna(0).astype(int)
    out["amount"] = out["stage"].map(grouped.sum(min_count=1)).astype("float64")
    out["share_rate"] = ratio_series(out["n_opportunities"],
                                     pd.Series(out["n_opportunities"].sum(), index=out.index))
    return out


@on_slice("opportunity_stage_history", "opportunities")
def stage_reach(stage_history: pd.DataFrame, opportunities: pd.DataFrame, vocabulary: Vocabulary,
                ctx: KpiContext | None = None) -> pd.DataFrame:
    """How far opportunities created in the period (all when `ctx` is None) got: per open stage and the
    won stage, `n_reached` (entered it, per the stage history), `amount` (of the known amounts; missing when
    none is known) and `conversion_rate` from the previous stage. Needs `opportunity_stage_history`."""
    _require(opportunities, "opportunities", "opportunity_id", "created_at", "amount")
    cohort = opportunities[in_period(opportunities["created_at"], ctx)] if ctx is not None else opportunities
    amounts = cohort.drop_duplicates("opportunity_id").set_index("opportunity_id")["amount"]
    hist = stage_history[isin(stage_history["opportunity_id"], amounts.index)]
    stages = [*vocabulary.open_stages, vocabulary.won_stage]
    rows = []
    for stage in stages:
        ids = pd.Index(hist.loc[hist["stage"] == stage, "opportunity_id"].unique())
        rows.append({"stage": stage, "n_reached": len(ids), "amount": _sum_known(amounts.reindex(ids))})
    out = pd.DataFrame(rows)
    out["conversion_rate"] = ratio_series(out["n_reached"], out["n_reached"].shift(1))
    return out


@on_slice("opportunities")
def opportunity_summary(opportunities: pd.DataFrame, ctx: KpiContext) -> pd.DataFrame:
    """One row about the period's opportunities: `n_active` (in the slice), `n_new` / `new_amount` (created
    in the period), `n_closed`, `n_won`, `n_lost`, `won_amount`, `win_rate` (won ÷ closed, closed in the
    period), `n_open_at_end` / `pipeline_amount` (open at period end) and `median_cycle_days` (creation to
    close of the period's closed deals with a known creation date). Amounts sum the known amounts: 0 with no
    deal, missing when deals exist but none has a known amount."""
    _require(opportunities, "opportunities", "created_at", "closed_at", "is_won", "amount")
    new = opportunities[in_period(opportunities["created_at"], ctx)]
    closed = _closed_in(opportunities, ctx)
    won = closed[won_mask(closed)]
    open_end = _open_at_end(opportunities, ctx)
    cycle = _days(closed["closed_at"] - closed["created_at"])
    return pd.DataFrame([{
        "n_active": len(opportunities), "n_new": len(new), "new_amount": _sum_known(new["amount"]),
        "n_closed": len(closed), "n_won": len(won), "n_lost": len(closed) - len(won),
        "won_amount": _sum_known(won["amount"]), "win_rate": ratio(len(won), len(closed)),
        "n_open_at_end": len(open_end), "pipeline_amount": _sum_known(open_end["amount"]),
        "median_cycle_days": _median(cycle),
    }])


def describe_opportunities(summary: pd.DataFrame, currency: str | None = None) -> Finding | None:
    """New, closed and open opportunities (from `opportunity_summary`); amounts in `currency` when given. No
    win rate without a closed deal, no "worth 0" from unknown amounts. Nothing left open at period end (an
    empty pipeline for the next period) is a "watch"."""
    row = summary.iloc[0]
    if row["n_active"] == 0:
        return finding(_("No opportunity was active in the period."), "info", kpi="new_opportunities")
    n_new, n_closed, n_open = int(row["n_new"]), int(row["n_closed"]), int(row["n_open_at_end"])
    if n_new and _known(row["new_amount"]):
        new = n_("{n} new opportunity worth {amount}", "{n} new opportunities worth {amount}", n_new,
                 amount=_money(row["new_amount"], currency))
    else:
        new = n_("{n} new opportunity", "{n} new opportunities", n_new)
    if n_closed == 0:
        closed = _("none closed")
    elif _known(row["won_amount"]):
        closed = n_("{n} closed, {won} won (win rate {rate}, {amount} booked)",
                    "{n} closed, {won} won (win rate {rate}, {amount} booked)", n_closed, won=_count(row["n_won"]),
                    rate=_pct(row["win_rate"]), amount=_money(row["won_amount"], currency))
    else:
        closed = n_("{n} closed, {won} won (win rate {rate})", "{n} closed, {won} won (win rate {rate})", n_closed,
                    won=_count(row["n_won"]), rate=_pct(row["win_rate"]))
    if n_open and _known(row["pipeline_amount"]) and row["pipeline_amount"] > 0:
        still_open = n_("{n} still open at period end worth {amount}", "{n} still open at period end worth {amount}",
                        n_open, amount=_money(row["pipeline_amount"], currency))
    else:
        still_open = n_("{n} still open at period end", "{n} still open at period end", n_open)
    text = _("{clauses}.", clauses=_("; ").join([new, closed, still_open]))
    if n_open == 0:
        return finding(text, "watch", _("Build pipeline for the next period: no opportunity is open at the end of "
                                        "this one."), kpi="pipeline_amount", weight=0.6)
    return finding(text, "info", kpi="new_opportunities", weight=0.1)


def _open_at_end(opportunities: pd.DataFrame, ctx: KpiContext) -> pd.DataFrame:
    created_before = opportunities["created_at"].isna() | (opportunities["created_at"] < ctx.period_end)
    not_closed = opportunities["closed_at"].isna() | (opportunities["closed_at"] >= ctx.period_end)
    return opportunities[(created_before & not_closed).fillna(False).astype(bool)]


@on_slice("opportunities")
def win_loss(opportunities: pd.DataFrame, ctx: KpiContext | None = None) -> pd.DataFrame:
    """Won vs lost among opportunities closed in the period (all closed when `ctx` is None): two rows, won
    then lost, with `outcome` (its label in the language in use), `n_opportunities`, `amount` (of the known
    amounts), `share_rate` (of the count), `avg_amount` and `median_cycle_days` (creation to close, where the
    creation date is known)."""
    closed = _closed_in(opportunities, ctx)
    won = won_mask(closed)
    rows = []
    for outcome, part in (("won", closed[won]), ("lost", closed[~won])):
        rows.append({"outcome": _(OUTCOME_LABELS[outcome]), "n_opportunities": len(part),
                     "amount": _sum_known(part["amount"]),
                     "avg_amount": float(part["amount"].mean()) if part["amount"].notna().any() else np.nan,
                     "median_cycle_days": _median(_days(part["closed_at"] - part["created_at"]))
                     if "created_at" in part.columns else None})
    out = pd.DataFrame(rows)
    out["share_rate"] = ratio_series(out["n_opportunities"], pd.Series(len(closed), index=out.index))
    out["median_cycle_days"] = out["median_cycle_days"].astype("float64")
    return out[["outcome", "n_opportunities", "amount", "share_rate", "avg_amount", "median_cycle_days"]]


#: Lost deals running this many times as long as won ones (median) point at deals kept open too long.
LONG_LOSS_FACTOR = 1.5
#: Deals needed on each side before comparing won and lost cycles.
MIN_CYCLE_DEALS = 3


def describe_win_loss(frame: pd.DataFrame) -> Finding | None:
    """The win rate and how won and lost deals differ (from `win_loss`: won first, then lost). When lost deals
    ran ≥ 1.5× as long as won ones (at least 3 of each), a "watch": deals kept open too long are lost."""
    won, lost = frame.iloc[0], frame.iloc[1]
    n_won, n_lost = int(won["n_opportunities"]), int(lost["n_opportunities"])
    total = n_won + n_lost
    if total == 0:
        return finding(_("No opportunity was closed in the period."), "info", kpi="win_rate")
    text = n_("{won} of {n} closed deal was won ({rate})", "{won} of {n} closed deals were won ({rate})", total,
              won=_count(n_won), rate=_pct(won["share_rate"]))
    won_days, lost_days = won["median_cycle_days"], lost["median_cycle_days"]
    both = _known(won_days) and _known(lost_days)
    if both:
        text = _("{text}; won deals took {won_days} from creation to close (median) vs {lost_days} for lost ones",
                 text=text, won_days=_days_text(won_days), lost_days=_whole(lost_days))
    text = _("{clauses}.", clauses=text)
    if both and won_days > 0 and min(n_won, n_lost) >= MIN_CYCLE_DEALS and lost_days >= LONG_LOSS_FACTOR * won_days:
        advice = _("Review the open deals older than {days}: most deals won close by then, and the ones that run "
                   "longer are mostly lost.", days=_days_text(won_days))
        return finding(text, "watch", advice, kpi="win_rate", weight=_clip((lost_days / won_days - 1) / 3))
    return finding(text, "info", kpi="win_rate", weight=0.2)


@on_slice("opportunities")
def loss_reasons(opportunities: pd.DataFrame, ctx: KpiContext | None = None) -> pd.DataFrame:
    """Why deals closed in the period (all closed when `ctx` is None) were lost: one row per `loss_reason`
    ("(none)" when not given) with `n_lost`, `lost_amount` (of the known amounts), `share_rate` (of lost
    deals) and `amount_share_rate` (of lost amount), most frequent first."""
    closed = _closed_in(opportunities, ctx)
    lost = closed[~won_mask(closed)]
    reason = _labels(lost["loss_reason"]) if "loss_reason" in lost.columns \
        else pd.Series(none_label(), index=lost.index, dtype="string")
    grouped = lost.assign(loss_reason=reason).groupby("loss_reason", observed=True)["amount"]
    out = pd.DataFrame({"n_lost": grouped.size(), "lost_amount": grouped.sum(min_count=1)}).reset_index()
    out["n_lost"] = out["n_lost"].astype(int)
    out["lost_amount"] = out["lost_amount"].astype("float64")
    out["share_rate"] = ratio_series(out["n_lost"], pd.Series(out["n_lost"].sum(), index=out.index))
    out["amount_share_rate"] = ratio_series(out["lost_amount"],
                                            pd.Series(out["lost_amount"].sum(min_count=1), index=out.index))
    return out.sort_values(["n_lost", "loss_reason"], ascending=[False, True], ignore_index=True)


#: A loss reason behind this share of the lost deals (with at least `MIN_REASON_DEALS`) is worth a review.
TOP_REASON_SHARE = 0.4
MIN_REASON_DEALS = 5


def describe_loss_reasons(frame: pd.DataFrame) -> Finding | None:
    """The top loss reason (from `loss_reasons`): ties named together, a single recorded reason not called
    "top", no reason recorded at all (or for most lost deals) a "watch" asking for the field. A reason behind
    ≥ 40% of ≥ 5 lost deals is a "watch"."""
    if frame.empty:
        return finding(_("No deal was lost in the period."), "info", kpi="win_rate")
    total = int(frame["n_lost"].sum())
    none = _is_none(frame["loss_reason"])
    known = frame[~none]
    required = _("Make the loss reason a required field when a deal is closed as lost.")
    if known.empty:
        return finding(n_("{n} deal was lost; this source records no loss reason for it.",
                          "{n} deals were lost; this source records no loss reason for them.", total),
                       "watch", required, kpi="win_rate", weight=0.4)
    top = int(known["n_lost"].max())
    leaders = known[known["n_lost"] == top]
    share = top / total
    if len(known) == 1 and not none.any():
        text = n_("{reason} is the reason for the only lost deal.", "{reason} is the reason for all {n} lost deals.",
                  total, reason=leaders["loss_reason"].iloc[0])
    elif len(leaders) == 1:
        text = n_("{reason} is the top reason for losing: {top} of {n} lost deal ({share}).",
                  "{reason} is the top reason for losing: {top} of {n} lost deals ({share}).", total,
                  reason=leaders["loss_reason"].iloc[0], top=_count(top), share=_pct(share))
    else:
        text = n_("{reasons} are the top reasons for losing: {top} of {n} lost deal each ({share} each).",
                  "{reasons} are the top reasons for losing: {top} of {n} lost deals each ({share} each).", total,
                  reasons=_join(leaders["loss_reason"]), top=_count(top), share=_pct(share))
    unknown = int(frame.loc[none, "n_lost"].sum())
    if unknown and unknown / total >= 0.5:
        text = _then(text, _("{share} of the lost deals have no reason recorded.", share=_pct(unknown / total)))
        return finding(text, "watch", required, kpi="win_rate", weight=_clip(unknown / total * 0.6))
    if len(leaders) == 1 and share >= TOP_REASON_SHARE and total >= MIN_REASON_DEALS:
        advice = _("Review the deals lost to {reason} with the team: {share} of the losses.",
                   reason=leaders["loss_reason"].iloc[0], share=_pct(share))
        return finding(text, "watch", advice, kpi="win_rate", weight=_clip(share))
    return finding(text, "info", kpi="win_rate", weight=_clip(share / 2))


@on_slice("opportunities")
def win_rate_by(opportunities: pd.DataFrame, by: str, ctx: KpiContext | None = None,
                products: pd.DataFrame | None = None, *, reps: pd.DataFrame | None = None,
                regions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Win rate of opportunities closed in the period (all closed when `ctx` is None) by `by` (one of
    `OPPORTUNITY_DIMENSIONS`; `product_line` needs `products`). One row per value ("(none)" when missing,
    e.g. no competitor): [`name` of the region or rep, given `regions` / `reps`], `n_closed`, `n_won`,
    `won_amount` (of the known amounts), `win_rate`; largest `n_closed` first."""
    check_choice("by", by, OPPORTUNITY_DIMENSIONS)
    closed = _closed_in(opportunities, ctx)
    if by == "product_line":
        if products is None:
            raise ParameterError("products: the products table is needed for by='product_line'")
        lines = products.drop_duplicates("product_id").set_index("product_id")["product_line"]
        keys = closed["product_id"].map(lines)
    elif by in closed.columns:
        keys = closed[by]
    else:
        raise ParameterError(f"by: opportunities have no column {by!r} in this source")
    won = won_mask(closed)
    frame = pd.DataFrame({by: _labels(keys), "won": won.astype(int), "won_amount": closed["amount"].where(won)})
    grouped = frame.groupby(by, observed=True)
    out = pd.DataFrame({"n_closed": grouped.size(), "n_won": grouped["won"].sum(),
                        "won_amount": grouped["won_amount"].sum(min_count=1)}).reset_index()
    out["n_closed"] = out["n_closed"].astype(int)
    out["n_won"] = out["n_won"].astype(int)
    out["won_amount"] = out["won_amount"].astype("float64").where(out["n_won"] > 0, 0.0)
    out["win_rate"] = ratio_series(out["n_won"], out["n_closed"])
    out = out.sort_values(["n_closed", by], ascending=[False, True], ignore_index=True)
    return with_names(out, by, by, reps=reps, regions=regions)


@on_slice("opportunities", "products")
def win_rate_by_product_line(opportunities: pd.DataFrame, products: pd.DataFrame,
                             ctx: KpiContext | None = None) -> pd.DataFrame:
    """`win_rate_by(..., "product_line")`: needs the products table (the notebook's section says so when the
    source lacks it)."""
    return win_rate_by(opportunities, "product_line", ctx, products)


#: A gap of this many points between the best and the worst win rate is worth a "watch".
WIN_RATE_GAP = 0.2
#: What to do about the weakest value of a dimension (msgids: {who} the weakest, {best_who} the best).
WIN_RATE_ADVICE: dict[str, str] = {
    "competitor": N_("Prepare the team's answer to {who}: we win {rate} of the deals it is on, vs {best} "
                     "against {best_who}."),
    "owner_rep_id": N_("Have {who}'s manager review their open deals with them; {best_who} wins {best}."),
    "product_line": N_("Review how {who} is priced and positioned: it wins {rate} vs {best} for {best_who}."),
    "product_id": N_("Review how {who} is priced and positioned: it wins {rate} vs {best} for {best_who}."),
    "region_id": N_("Review {who}'s lost deals and their loss reasons with its sales manager."),
}


def _groups_text(rows: pd.DataFrame, by: str) -> str:
    names = [_who(r[by], r.get("name"), by) for _i, r in rows.iterrows()]
    n = int(rows["n_closed"].sum())
    return n_("{groups}, {n} closed", "{groups}, {n} closed", n, groups=_join(names))


def describe_win_rate_by(frame: pd.DataFrame, min_closed: int = 10) -> Finding | None:
    """The best and worst win rates (from `win_rate_by`), among values with ≥ `min_closed` closed deals.
    Equal rates are not a range, one value is not a comparison, ties are named together; a gap of ≥ 20 points
    is a "watch" with what to do about the weakest (competitor, rep, product, region)."""
    if frame.empty:
        return finding(_("No deal was closed in the period."), "info", kpi="win_rate")
    by = frame.columns[0]
    word = _word(by)
    named = frame[~_is_none(frame[by])]
    if named.empty:
        return finding(_("No {dimension} is recorded on these deals.", dimension=word), "info", kpi="win_rate")
    if len(named) == 1:
        row = named.iloc[0]
        return finding(n_("{who}: win rate {rate} over {n} closed deal; no other {dimension} to compare with.",
                          "{who}: win rate {rate} over {n} closed deals; no other {dimension} to compare with.",
                          int(row["n_closed"]), who=_who(row[by], row.get("name"), by), rate=_pct(row["win_rate"]),
                          dimension=word), "info", kpi="win_rate", weight=0.1)
    solid = named[named["n_closed"] >= min_closed].dropna(subset=["win_rate"])
    if len(solid) < 2:
        return finding(_("Too few closed deals per {dimension} (under {n}) to compare win rates.", dimension=word,
                         n=_count(min_closed)), "info", kpi="win_rate")
    low, high = float(solid["win_rate"].min()), float(solid["win_rate"].max())
    if np.isclose(low, high):
        return finding(_("All {n} {dimensions} with {min} or more closed deals have the same win rate, {rate}.",
                         n=_count(len(solid)), dimensions=_word(by, plural=True), min=_count(min_closed),
                         rate=_pct(high)), "info", kpi="win_rate", weight=0.1)
    lows, highs = solid[_tied(solid["win_rate"], low)], solid[_tied(solid["win_rate"], high)]
    text = _("Win rate ranges from {low} ({low_groups}) to {high} ({high_groups}).", low=_pct(low),
             low_groups=_groups_text(lows, by), high=_pct(high), high_groups=_groups_text(highs, by))
    gap = high - low
    if gap >= WIN_RATE_GAP and by in WIN_RATE_ADVICE and len(lows) == 1:
        worst = lows.iloc[0]
        advice = _(WIN_RATE_ADVICE[by], who=_who(worst[by], worst.get("name"), by), rate=_pct(low), best=_pct(high),
                   best_who=_join(_who(r[by], r.get("name"), by) for _i, r in highs.iterrows()))
        return finding(text, "watch", advice, kpi="win_rate", weight=_clip(gap))
    return finding(text, "watch" if gap >= WIN_RATE_GAP else "info", kpi="win_rate", weight=_clip(gap))


def win_rate_trend(opportunities: pd.DataFrame, *, freq: str = "quarter", by: str | None = None) -> pd.DataFrame:
    """Win rate per close period (`freq`) of the closed opportunities in the frame (e.g.
    `Slice.history("opportunities", 8)`), optionally per `by` column: `period`, [`by`], `n_closed`, `n_won`,
    `won_amount`, `win_rate`."""
    if by is not None:
        check_choice("by", by, OPPORTUNITY_DIMENSIONS)
    closed = _closed_in(opportunities, None)
    won = won_mask(closed)
    frame = pd.DataFrame({"period": bucket(closed["closed_at"], freq), "won": won.astype(int),
                          "won_amount": closed["amount"].where(won)})
    keys = ["period"]
    if by is not None:
        frame[by] = _labels(closed[by])
        keys.append(by)
    grouped = frame.groupby(keys, observed=True)
    out = pd.DataFrame({"n_closed": grouped.size(), "n_won": grouped["won"].sum(),
                        "won_amount": grouped["won_amount"].sum(min_count=1)}).reset_index()
    out["won_amount"] = out["won_amount"].astype("float64").where(out["n_won"] > 0, 0.0)
    out["win_rate"] = ratio_series(out["n_won"], out["n_closed"])
    return out.sort_values(keys, ignore_index=True)


@on_slice("opportunities")
def win_rate_history(s: Slice, n_periods: int = 8, *, freq: str = "quarter", by: str | None = None) -> pd.DataFrame:
    """`win_rate_trend` of the deals closed over the slice's last `n_periods` periods (its region)."""
    return win_rate_trend(history(s, "opportunities", n_periods), freq=freq, by=by)


# ------------------------------------------------------------------------------------------ KPIs

def _leads_in(frames: Mapping[str, pd.DataFrame], ctx: KpiContext) -> pd.DataFrame | None:
    leads = frames["leads"]
    cohort = leads[in_period(leads["created_at"], ctx)]
    return cohort if len(cohort) else None


@register_kpi("leads_created", label=N_("Leads created"), unit="count", direction="higher", tables=("leads",),
              area=AREA, description=N_("Leads created in the period (by `created_at`)."))
def kpi_leads_created(frames: Mapping[str, pd.DataFrame], ctx: KpiContext) -> float | None:
    cohort = _leads_in(frames, ctx)
    return float(len(cohort)) if cohort is not None else None


@register_kpi("mql_rate", label=N_("Lead→MQL rate"), unit="rate", direction="higher", tables=("leads",), area=AREA,
              description=N_("Share of the leads created in the period that became MQLs (by the time of the data)."))
def kpi_mql_rate(frames: Mapping[str, pd.DataFrame], ctx: KpiContext) -> float | None:
    cohort = _leads_in(frames, ctx)
    if cohort is None:
        return None
    funnel = lead_funnel(cohort, None).set_index("step_id")
    return ratio(funnel.loc["mql", "n_leads"], funnel.loc["lead", "n_leads"])


@register_kpi("sql_to_opportunity_rate", label=N_("SQL→opportunity rate"), unit="rate", direction="higher",
              tables=("leads",), area=AREA,
              description=N_("Share of the SQLs among the leads created in the period that became opportunities."))
def kpi_sql_to_opportunity_rate(frames: Mapping[str, pd.DataFrame], ctx: KpiContext) -> float | None:
    cohort = _leads_in(frames, ctx)
    if cohort is None:
        return None
    funnel = lead_funnel(cohort, None).set_index("step_id")
    return ratio(funnel.loc["opportunity", "n_leads"], funnel.loc["sql", "n_leads"])


@register_kpi("lead_to_won_rate", label=N_("Lead→won rate"), unit="rate", direction="higher",
              tables=("leads", "opportunities"), area=AREA,
              description=N_("Share of the leads created in the period whose opportunity was won (by the time of "
                          "the data)."))
def kpi_lead_to_won_rate(frames: Mapping[str, pd.DataFrame], ctx: KpiContext) -> float | None:
    cohort = _leads_in(frames, ctx)
    if cohort is None:
        return None
    funnel = lead_funnel(cohort, frames["opportunities"]).set_index("step_id")
    return ratio(funnel.loc["won", "n_leads"], funnel.loc["lead", "n_leads"])


@register_kpi("new_opportunities", label=N_("New opportunities"), unit="count", direction="higher",
              tables=("opportunities",), area=AREA,
              description=N_("Opportunities created in the period (those with an unknown creation date are not "
                          "counted)."))
def kpi_new_opportunities(frames: Mapping[str, pd.DataFrame], ctx: KpiContext) -> float | None:
    opps = frames["opportunities"]
    if opps.empty or opps["created_at"].isna().all():
        return None
    return float(in_period(opps["created_at"], ctx).sum())


@register_kpi("pipeline_amount", label=N_("Open pipeline"), unit="amount", direction="higher",
              tables=("opportunities",), area=AREA,
              description=N_("Amount of the opportunities still open at the end of the period."))
def kpi_pipeline_amount(frames: Mapping[str, pd.DataFrame], ctx: KpiContext) -> float | None:
    open_end = _open_at_end(frames["opportunities"], ctx)
    total = open_end["amount"].sum(min_count=1)
    return float(total) if pd.notna(total) else None


@register_kpi("win_rate", label=N_("Win rate"), unit="rate", direction="higher", tables=("opportunities",), area=AREA,
              description=N_("Won ÷ closed (won + lost) among the opportunities closed in the period."))
def kpi_win_rate(frames: Mapping[str, pd.DataFrame], ctx: KpiContext) -> float | None:
    closed = _closed_in(frames["opportunities"], ctx)
    return ratio(int(won_mask(closed).sum()), len(closed))


@register_kpi("median_stage_days", label=N_("Median days in open stages"), unit="days", direction="lower",
              tables=("opportunities",), area=AREA,
              description=N_("Median total time in open stages of the opportunities closed in the period: from "
                          "entering the first stage (created_at, or the earliest stage entry) to the close."))
def kpi_median_stage_days(frames: Mapping[str, pd.DataFrame], ctx: KpiContext) -> float | None:
    closed = _closed_in(frames["opportunities"], ctx)
    start = closed.set_index("opportunity_id")["created_at"]
    hist = frames.get("opportunity_stage_history")
    if hist is not None and len(hist):
        first = hist[isin(hist["opportunity_id"], start.index)].groupby("opportunity_id")["entered_at"].min()
        start = pd.concat([start, first.reindex(start.index)], axis=1).min(axis=1)
    days = _days(closed.set_index("opportunity_id")["closed_at"] - start)
    return _median(days)
