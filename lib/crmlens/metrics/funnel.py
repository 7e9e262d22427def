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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from crmlens.errors import ParameterError
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
from crmlens.schema import Vocabulary

if TYPE_CHECKING:
    from crmlens.data import Slice

AREA = "sales_funnel"

#: The lead funnel's steps, in order, and how people read them.
STEPS: tuple[str, ...] = ("lead", "mql", "sql", "opportunity", "won")
STEP_LABELS: dict[str, str] = {"lead": "Lead", "mql": "MQL", "sql": "SQL", "opportunity": "Opportunity",
                               "won": "Won"}
#: Step-to-step transitions of the lead funnel (`<from>_to_<to>`), in order.
TRANSITIONS: tuple[str, ...] = ("lead_to_mql", "mql_to_sql", "sql_to_opportunity", "opportunity_to_won")
TRANSITION_LABELS: dict[str, str] = {"lead_to_mql": "lead→MQL", "mql_to_sql": "MQL→SQL",
                                     "sql_to_opportunity": "SQL→opportunity", "opportunity_to_won": "opportunity→won"}
#: Columns of `leads` the conversion can be split by.
LEAD_DIMENSIONS: tuple[str, ...] = ("source_channel", "region_id", "owner_rep_id", "campaign_id")
#: Columns the win rate can be split by (`product_line` needs the products table).
OPPORTUNITY_DIMENSIONS: tuple[str, ...] = ("competitor", "region_id", "owner_rep_id", "product_id",
                                           "product_line", "deal_type", "loss_reason")
#: Label for a missing value of a dimension (no competitor, no loss reason given, ...).
NONE_LABEL = "(none)"
#: How a dimension is named in sentences and titles.
DIMENSION_WORDS: dict[str, str] = {"region_id": "region", "owner_rep_id": "rep", "source_channel": "channel",
                                   "campaign_id": "campaign", "product_id": "product", "product_line": "product line",
                                   "deal_type": "deal type", "loss_reason": "loss reason", "competitor": "competitor"}
_DAY = pd.Timedelta(days=1)


# ------------------------------------------------------------------------------------------ helpers

def _require(frame: pd.DataFrame, table: str, *columns: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        from crmlens.errors import SchemaError

        raise SchemaError(f"{table}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")


def _days(delta: pd.Series) -> pd.Series:
    return delta.dt.total_seconds().astype("float64") / 86400.0


def _labels(values: pd.Series) -> pd.Series:
    """Group labels: strings, with missing values shown as NONE_LABEL."""
    return values.astype("string").fillna(NONE_LABEL)


def _median(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.median()) if len(values) else None


def _pct(value: float | None) -> str:
    if value is None or pd.isna(value):
        return "n/a"
    return f"{value:.1%}" if 0 < abs(value) < 0.1 else f"{value:.0%}"


def _money(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:,.0f}"


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

    One row per step (Lead, MQL, SQL, Opportunity, Won — Won only with `opportunities`): `n_leads` that
    reached it, `opportunity_amount` of their opportunities (opportunity and won steps), `conversion_rate`
    from the previous step, `drop_off_rate` (1 − conversion) and `from_lead_rate` (share of the cohort).
    """
    progress = lead_progress(leads, opportunities, ctx)
    steps = STEPS if opportunities is not None else STEPS[:-1]
    rows = []
    for step in steps:
        reached = progress[f"reached_{step}"].astype(bool)
        amount = progress.loc[reached, "opportunity_amount"].sum(min_count=1) if step in ("opportunity", "won") \
            else np.nan
        rows.append({"step_id": step, "step": STEP_LABELS[step], "n_leads": int(reached.sum()),
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


def lead_funnel_periods(periods: Mapping[str, tuple[Mapping[str, pd.DataFrame], KpiContext]]) -> pd.DataFrame:
    """`lead_funnel` for each period (label → (frames, context), e.g. from `period_frames`), stacked with a
    `period` column, in the order given."""
    parts = []
    for label, (frames, ctx) in periods.items():
        part = lead_funnel(frames["leads"], frames.get("opportunities"), ctx)
        part.insert(0, "period", label)
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def describe_lead_funnel(funnel: pd.DataFrame) -> str:
    """A sentence on one period's lead funnel (the first period of a stacked frame): size, end-to-end
    conversion and the step losing the most leads."""
    if "period" in funnel.columns and len(funnel):
        funnel = funnel[funnel["period"] == funnel["period"].iloc[0]]
    if funnel.empty or funnel["n_leads"].iloc[0] == 0:
        return "No leads were created in the period."
    n = int(funnel["n_leads"].iloc[0])
    last = funnel.iloc[-1]
    steps = funnel.iloc[1:].dropna(subset=["drop_off_rate"])
    text = (f"Of {n:,} leads created in the period, {int(last['n_leads']):,} reached {last['step']} "
            f"({_pct(last['from_lead_rate'])} end to end).")
    if len(steps):
        worst = steps.loc[steps["drop_off_rate"].idxmax()]
        prev = funnel["step"].iloc[funnel.index.get_loc(worst.name) - 1]
        text += (f" The biggest drop so far is {prev}→{worst['step']}: {_pct(worst['drop_off_rate'])} of the "
                 f"leads at {prev} have not (yet) reached {worst['step']}.")
    return text


def describe_funnel_periods(funnel: pd.DataFrame) -> str:
    """A sentence comparing the end-to-end and step rates of the first period of a stacked funnel frame
    (from `lead_funnel_periods`) with the other periods."""
    if funnel.empty or "period" not in funnel.columns:
        return "No lead funnel to compare."
    labels = list(dict.fromkeys(funnel["period"]))
    first = funnel[funnel["period"] == labels[0]].set_index("step_id")
    if first["n_leads"].iloc[0] == 0:
        return f"No leads were created in {labels[0]}."
    parts = []
    for label in labels[1:]:
        other = funnel[funnel["period"] == label].set_index("step_id")
        if other["n_leads"].iloc[0] == 0:
            parts.append(f"no leads in {label}")
            continue
        n_other = int(other.loc["lead", "n_leads"])
        parts.append(f"{n_other:,} lead{'s' if n_other != 1 else ''} and {_pct(other['from_lead_rate'].iloc[-1])} "
                     f"end to end in {label}")
    last = first.index[-1]
    text = (f"{labels[0]}: {int(first.loc['lead', 'n_leads']):,} leads, {_pct(first['from_lead_rate'].iloc[-1])} "
            f"reached {STEP_LABELS[last]}")
    return text + (f" — vs {'; '.join(parts)}." if parts else ".")


# ---------------------------------------------------------------------------- conversion by segment

def _rates(progress: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Counts per step and step rates of a `lead_progress` frame, grouped by `keys`."""
    has_won = progress["reached_won"].notna().all() and len(progress) > 0
    cols = {f"n_{step}": (f"reached_{step}", "sum") for step in STEPS if step != "won" or has_won}
    work = progress.assign(**{f"reached_{s}": progress[f"reached_{s}"].fillna(False).astype(bool) for s in STEPS})
    if keys:
        out = work.groupby(keys, observed=True, sort=True).agg(**cols).reset_index()
    else:
        out = pd.DataFrame([{name: work[col].sum() for name, (col, _) in cols.items()}])
    out = out.rename(columns={"n_lead": "n_leads"})
    if "n_won" not in out.columns:
        out["n_won"] = np.nan
    count = {"lead": "n_leads", "mql": "n_mql", "sql": "n_sql", "opportunity": "n_opportunity", "won": "n_won"}
    out["mql_rate"] = ratio_series(out["n_mql"], out["n_leads"])
    out["mql_to_sql_rate"] = ratio_series(out["n_sql"], out["n_mql"])
    out["sql_to_opportunity_rate"] = ratio_series(out["n_opportunity"], out["n_sql"])
    out["opportunity_to_won_rate"] = ratio_series(out[count["won"]], out["n_opportunity"])
    out["lead_to_won_rate"] = ratio_series(out[count["won"]], out["n_leads"])
    return out


def conversion_by(leads: pd.DataFrame, opportunities: pd.DataFrame | None, by: str,
                  ctx: KpiContext | None = None) -> pd.DataFrame:
    """Lead-funnel conversion of the period's lead cohort split by `by` (one of `LEAD_DIMENSIONS`).

    One row per value of `by` (missing values as "(none)"): `n_leads`, `n_mql`, `n_sql`, `n_opportunity`,
    `n_won` and the rates `mql_rate` (lead→MQL), `mql_to_sql_rate`, `sql_to_opportunity_rate`,
    `opportunity_to_won_rate`, `lead_to_won_rate`; sorted by `n_leads`, largest first.
    """
    check_choice("by", by, LEAD_DIMENSIONS)
    progress = lead_progress(leads, opportunities, ctx)
    if by not in progress.columns:
        raise ParameterError(f"by: leads have no column {by!r}; use one of "
                             f"{', '.join(c for c in LEAD_DIMENSIONS if c in progress.columns)}")
    progress = progress.assign(**{by: _labels(progress[by])})
    out = _rates(progress, [by])
    return out.sort_values(["n_leads", by], ascending=[False, True], ignore_index=True)


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


# -------------------------------------------------------------------------------- bottleneck

def compare_steps(leads: pd.DataFrame, opportunities: pd.DataFrame | None = None, *, by: str = "region_id",
                  min_n: int = 20) -> pd.DataFrame:
    """Each group's step rates against its peers (the other groups), over all leads in the frame.

    Use a frame covering several periods and every group (e.g. `history(s, "leads", 8, every_region=True)`): one
    quarter of one region is too few leads to judge a step. One row per group × step: `group`, `step`,
    `n_entered` (leads that reached the step's start), `n_converted`, `rate`, `peer_rate` (median rate of
    the *other* groups with at least `min_n` entered) and `ratio` = rate ÷ peer_rate (below 1 is worse).
    Groups with fewer than `min_n` entered, and leads with no value of `by` ("(none)", e.g. unassigned
    leads), are neither judged nor peers (ratio missing).
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
        rows.append(pd.DataFrame({"dimension": by, "group": counts[by], "step": step, "n_entered": entered.astype(int),
                                  "n_converted": converted.astype(int), "rate": ratio_series(converted, entered)}))
    if not rows:
        return pd.DataFrame(columns=["dimension", "group", "step", "n_entered", "n_converted", "rate", "peer_rate",
                                     "ratio"])
    out = pd.concat(rows, ignore_index=True)
    out["peer_rate"] = _peer_medians(out, "rate", min_n)
    out["ratio"] = ratio_series(out["rate"], out["peer_rate"]).where((out["n_entered"] >= min_n)
                                                                     & (out["group"] != NONE_LABEL))
    return out


def _peer_medians(frame: pd.DataFrame, value: str, min_n: int, count: str = "n_entered") -> pd.Series:
    """For each row, the median `value` of the other groups' rows of the same step with ≥ `min_n` counts."""
    result = pd.Series(np.nan, index=frame.index, dtype="float64")
    for _, rows in frame.groupby("step", sort=False):
        eligible = rows[(rows[count] >= min_n) & rows[value].notna() & (rows["group"] != NONE_LABEL)]
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
    `by` (region_id, owner_rep_id, ...). One row per group × stage: `group`, `step` (the stage),
    `n_entered` (entries), `median_days`, `peer_median_days` (median of the other groups with ≥ `min_n`
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
           .agg(n_entered=("days", "size"), median_days=("days", "median")).reset_index())
    out = out.rename(columns={"stage": "step"})
    out.insert(0, "dimension", by)
    order = {stage: i for i, stage in enumerate(vocabulary.stages)}
    out = out.sort_values(["step", "group"], key=lambda c: c.map(order) if c.name == "step" else c,
                          ignore_index=True)
    out["peer_median_days"] = _peer_medians(out, "median_days", min_n)
    out["ratio"] = ratio_series(out["peer_median_days"], out["median_days"]).where((out["n_entered"] >= min_n)
                                                                                   & (out["group"] != NONE_LABEL))
    return out


@dataclass(frozen=True)
class Bottleneck:
    """The diagnosed bottleneck: the group × step performing worst against its peers.

    `kind` is "conversion" (value = step rate) or "dwell" (value = median days in the stage); `ratio` is the
    performance relative to peers (below 1 is worse: rate ÷ peer rate, or peer days ÷ own days); `flagged`
    says whether it is below `threshold` — abnormal — or merely the weakest of a healthy set. All fields but
    `dimension`, `threshold` and `flagged` are None when there was nothing to compare.
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

    @property
    def step_label(self) -> str:
        return TRANSITION_LABELS.get(self.step or "", self.step or "")

    def as_frame(self) -> pd.DataFrame:
        """The result as a one-row frame (for display and exports)."""
        return pd.DataFrame([dataclasses.asdict(self)])


def diagnose_bottleneck(steps: pd.DataFrame, dwell: pd.DataFrame | None = None, *, focus: str = "all",
                        threshold: float = 0.7) -> Bottleneck:
    """The group × step whose conversion (from `compare_steps`) or dwell time (from `compare_stage_days`) is
    worst against its peers; `flagged` when its ratio to the peers' median is below `threshold`.

    `focus` = "all" looks at every group (which region is the bottleneck?); a group name (a region, a rep)
    looks only at that group's steps against its peers (where is *this* region's bottleneck?).
    """
    if not 0 < threshold < 1:
        raise ParameterError(f"threshold: {threshold!r} must be between 0 and 1 (e.g. 0.7 = 30% worse than peers)")
    frames = [steps.assign(kind="conversion", value=steps["rate"], peer_value=steps["peer_rate"])]
    if dwell is not None and len(dwell):
        frames.append(dwell.assign(kind="dwell", value=dwell["median_days"], peer_value=dwell["peer_median_days"]))
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
    worst = candidates.loc[candidates["ratio"].astype(float).idxmin()]
    return Bottleneck(dimension=dimension, group=str(worst["group"]), step=str(worst["step"]), kind=worst["kind"],
                      value=float(worst["value"]), peer_value=float(worst["peer_value"]),
                      ratio=float(worst["ratio"]), n_entered=int(worst["n_entered"]),
                      flagged=bool(worst["ratio"] < threshold), threshold=threshold)


def describe_bottleneck(result: Bottleneck) -> str:
    """The diagnosis in one sentence, e.g. "East converts SQL→opportunity at 18% vs 35% for its peers
    (0.51×) — the bottleneck." """
    if result.group is None:
        return "Not enough data to compare groups (each needs enough leads or stage entries)."
    word = DIMENSION_WORDS.get(result.dimension, result.dimension)
    peers = "the other regions" if result.dimension == "region_id" else f"the other {word}s"
    if result.kind == "dwell":
        core = (f"{result.group} deals spend {result.value:.0f} days in {result.step} vs {result.peer_value:.0f} "
                f"for {peers} ({1 / result.ratio:.1f}× as long)")
    else:
        core = (f"{result.group} converts {result.step_label} at {result.value:.0%} vs {result.peer_value:.0%} "
                f"for {peers} ({result.ratio:.2f}×, {result.n_entered:,} leads entering the step)")
    if result.flagged:
        return core + " — the bottleneck."
    return (f"No step is abnormally weak (none below {result.threshold:.0%} of its peers); the weakest: "
            + core + ".")


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


def describe_stage_days(frame: pd.DataFrame) -> str:
    """A sentence on where deals wait longest (from `stage_days`)."""
    known = frame.dropna(subset=["median_days"])
    if known.empty:
        return "No opportunity left an open stage in the period."
    slowest = known.loc[known["median_days"].idxmax()]
    total = known["median_days"].sum()
    return (f"Deals wait longest in {slowest['stage']} (median {slowest['median_days']:.0f} days over "
            f"{int(slowest['n_entries']):,} stage exits); the stage medians add up to {total:.0f} days.")


# ------------------------------------------------------------------------------- opportunities

def _closed_in(opportunities: pd.DataFrame, ctx: KpiContext | None) -> pd.DataFrame:
    _require(opportunities, "opportunities", "closed_at", "is_won")
    return closed_in_period(opportunities, ctx)


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


def stage_reach(stage_history: pd.DataFrame, opportunities: pd.DataFrame, vocabulary: Vocabulary,
                ctx: KpiContext | None = None) -> pd.DataFrame:
    """How far opportunities created in the period (all when `ctx` is None) got: per open stage and the
    won stage, `n_reached` (entered it, per the stage history), `amount` and `conversion_rate` from the
    previous stage. Needs `opportunity_stage_history`."""
    _require(opportunities, "opportunities", "opportunity_id", "created_at", "amount")
    cohort = opportunities[in_period(opportunities["created_at"], ctx)] if ctx is not None else opportunities
    amounts = cohort.drop_duplicates("opportunity_id").set_index("opportunity_id")["amount"]
    hist = stage_history[isin(stage_history["opportunity_id"], amounts.index)]
    stages = [*vocabulary.open_stages, vocabulary.won_stage]
    rows = []
    for stage in stages:
        ids = pd.Index(hist.loc[hist["stage"] == stage, "opportunity_id"].unique())
        rows.append({"stage": stage, "n_reached": len(ids), "amount": float(amounts.reindex(ids).sum())})
    out = pd.DataFrame(rows)
    out["conversion_rate"] = ratio_series(out["n_reached"], out["n_reached"].shift(1))
    return out


def opportunity_summary(opportunities: pd.DataFrame, ctx: KpiContext) -> pd.DataFrame:
    """One row about the period's opportunities: `n_active` (in the slice), `n_new` / `new_amount` (created
    in the period), `n_closed`, `n_won`, `n_lost`, `won_amount`, `win_rate` (won ÷ closed, closed in the
    period), `n_open_at_end` / `pipeline_amount` (open at period end) and `median_cycle_days` (creation to
    close of the period's closed deals with a known creation date)."""
    _require(opportunities, "opportunities", "created_at", "closed_at", "is_won", "amount")
    new = opportunities[in_period(opportunities["created_at"], ctx)]
    closed = _closed_in(opportunities, ctx)
    won = closed[won_mask(closed)]
    open_end = _open_at_end(opportunities, ctx)
    cycle = _days(closed["closed_at"] - closed["created_at"])
    return pd.DataFrame([{
        "n_active": len(opportunities), "n_new": len(new), "new_amount": float(new["amount"].sum()),
        "n_closed": len(closed), "n_won": len(won), "n_lost": len(closed) - len(won),
        "won_amount": float(won["amount"].sum()), "win_rate": ratio(len(won), len(closed)),
        "n_open_at_end": len(open_end), "pipeline_amount": float(open_end["amount"].sum(min_count=1)),
        "median_cycle_days": _median(cycle),
    }])


def describe_opportunities(summary: pd.DataFrame) -> str:
    """A sentence on new, closed and open opportunities (from `opportunity_summary`)."""
    row = summary.iloc[0]
    if row["n_active"] == 0:
        return "No opportunity was active in the period."
    text = (f"{int(row['n_new']):,} new opportunities worth {_money(row['new_amount'])}; "
            f"{int(row['n_closed']):,} closed, {int(row['n_won']):,} won (win rate {_pct(row['win_rate'])}, "
            f"{_money(row['won_amount'])} booked)")
    text += f"; {int(row['n_open_at_end']):,} still open at period end"
    if row["pipeline_amount"] > 0:
        text += f" worth {_money(row['pipeline_amount'])}"
    return text + "."


def _open_at_end(opportunities: pd.DataFrame, ctx: KpiContext) -> pd.DataFrame:
    created_before = opportunities["created_at"].isna() | (opportunities["created_at"] < ctx.period_end)
    not_closed = opportunities["closed_at"].isna() | (opportunities["closed_at"] >= ctx.period_end)
    return opportunities[(created_before & not_closed).fillna(False).astype(bool)]


def win_loss(opportunities: pd.DataFrame, ctx: KpiContext | None = None) -> pd.DataFrame:
    """Won vs lost among opportunities closed in the period (all closed when `ctx` is None): one row per
    `outcome` (won, lost) with `n_opportunities`, `amount`, `share_rate` (of the count), `avg_amount` and
    `median_cycle_days` (creation to close, where the creation date is known)."""
    closed = _closed_in(opportunities, ctx)
    won = won_mask(closed)
    rows = []
    for outcome, part in (("won", closed[won]), ("lost", closed[~won])):
        rows.append({"outcome": outcome, "n_opportunities": len(part), "amount": float(part["amount"].sum()),
                     "avg_amount": float(part["amount"].mean()) if part["amount"].notna().any() else np.nan,
                     "median_cycle_days": _median(_days(part["closed_at"] - part["created_at"]))
                     if "created_at" in part.columns else None})
    out = pd.DataFrame(rows)
    out["share_rate"] = ratio_series(out["n_opportunities"], pd.Series(len(closed), index=out.index))
    out["median_cycle_days"] = out["median_cycle_days"].astype("float64")
    return out[["outcome", "n_opportunities", "amount", "share_rate", "avg_amount", "median_cycle_days"]]


def describe_win_loss(frame: pd.DataFrame) -> str:
    """A sentence on the win rate and how won and lost deals differ (from `win_loss`)."""
    won, lost = frame.set_index("outcome").loc["won"], frame.set_index("outcome").loc["lost"]
    total = int(won["n_opportunities"] + lost["n_opportunities"])
    if total == 0:
        return "No opportunity was closed in the period."
    text = f"{int(won['n_opportunities']):,} of {total:,} closed deals were won ({_pct(won['share_rate'])})"
    if pd.notna(won["median_cycle_days"]) and pd.notna(lost["median_cycle_days"]):
        text += (f"; won deals took {won['median_cycle_days']:.0f} days from creation to close (median) vs "
                 f"{lost['median_cycle_days']:.0f} for lost ones")
    return text + "."


def loss_reasons(opportunities: pd.DataFrame, ctx: KpiContext | None = None) -> pd.DataFrame:
    """Why deals closed in the period (all closed when `ctx` is None) were lost: one row per `loss_reason`
    ("(none)" when not given) with `n_lost`, `lost_amount`, `share_rate` (of lost deals) and
    `amount_share_rate` (of lost amount), most frequent first."""
    closed = _closed_in(opportunities, ctx)
    lost = closed[~won_mask(closed)]
    reason = _labels(lost["loss_reason"]) if "loss_reason" in lost.columns else pd.Series(NONE_LABEL, index=lost.index)
    out = (lost.assign(loss_reason=reason).groupby("loss_reason", observed=True)
           .agg(n_lost=("amount", "size"), lost_amount=("amount", "sum")).reset_index())
    out["n_lost"] = out["n_lost"].astype(int)
    out["lost_amount"] = out["lost_amount"].astype("float64")
    out["share_rate"] = ratio_series(out["n_lost"], pd.Series(out["n_lost"].sum(), index=out.index))
    out["amount_share_rate"] = ratio_series(out["lost_amount"], pd.Series(out["lost_amount"].sum(), index=out.index))
    return out.sort_values(["n_lost", "loss_reason"], ascending=[False, True], ignore_index=True)


def describe_loss_reasons(frame: pd.DataFrame) -> str:
    """A sentence naming the top loss reason (from `loss_reasons`)."""
    if frame.empty:
        return "No deal was lost in the period."
    known = frame[frame["loss_reason"] != NONE_LABEL]
    if known.empty:
        return f"{int(frame['n_lost'].sum()):,} deals were lost; this source records no loss reason."
    top = known.iloc[0]
    return (f"{top['loss_reason']} is the top reason for losing: {int(top['n_lost']):,} of "
            f"{int(frame['n_lost'].sum()):,} lost deals ({_pct(top['share_rate'])}).")


def win_rate_by(opportunities: pd.DataFrame, by: str, ctx: KpiContext | None = None,
                products: pd.DataFrame | None = None) -> pd.DataFrame:
    """Win rate of opportunities closed in the period (all closed when `ctx` is None) by `by` (one of
    `OPPORTUNITY_DIMENSIONS`; `product_line` needs `products`). One row per value ("(none)" when missing,
    e.g. no competitor): `n_closed`, `n_won`, `won_amount`, `win_rate`; largest `n_closed` first."""
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
    frame = pd.DataFrame({by: _labels(keys), "won": won.astype(int),
                          "won_amount": closed["amount"].where(won, 0.0).fillna(0.0)})
    out = frame.groupby(by, observed=True).agg(n_closed=("won", "size"), n_won=("won", "sum"),
                                                won_amount=("won_amount", "sum")).reset_index()
    out["n_closed"] = out["n_closed"].astype(int)
    out["n_won"] = out["n_won"].astype(int)
    out["win_rate"] = ratio_series(out["n_won"], out["n_closed"])
    return out.sort_values(["n_closed", by], ascending=[False, True], ignore_index=True)


def describe_win_rate_by(frame: pd.DataFrame, min_closed: int = 10) -> str:
    """A sentence on the best and worst win rates (from `win_rate_by`), among values with ≥ `min_closed`
    closed deals."""
    if frame.empty:
        return "No deal was closed in the period."
    by = frame.columns[0]
    word = DIMENSION_WORDS.get(by, by)
    if (frame[by] == NONE_LABEL).all():
        return f"No {word} is recorded on these deals."
    solid = frame[(frame["n_closed"] >= min_closed) & (frame[by] != NONE_LABEL)].dropna(subset=["win_rate"])
    if len(solid) < 2:
        return f"Too few closed deals per {word} (under {min_closed}) to compare win rates."
    best, worst = solid.loc[solid["win_rate"].idxmax()], solid.loc[solid["win_rate"].idxmin()]
    return (f"Win rate ranges from {_pct(worst['win_rate'])} ({worst[by]}, {int(worst['n_closed']):,} closed) to "
            f"{_pct(best['win_rate'])} ({best[by]}, {int(best['n_closed']):,} closed).")


def win_rate_trend(opportunities: pd.DataFrame, *, freq: str = "quarter", by: str | None = None) -> pd.DataFrame:
    """Win rate per close period (`freq`) of the closed opportunities in the frame (e.g.
    `Slice.history("opportunities", 8)`), optionally per `by` column: `period`, [`by`], `n_closed`, `n_won`,
    `won_amount`, `win_rate`."""
    if by is not None:
        check_choice("by", by, OPPORTUNITY_DIMENSIONS)
    closed = _closed_in(opportunities, None)
    won = won_mask(closed)
    frame = pd.DataFrame({"period": bucket(closed["closed_at"], freq), "won": won.astype(int),
                          "won_amount": closed["amount"].where(won, 0.0).fillna(0.0)})
    keys = ["period"]
    if by is not None:
        frame[by] = _labels(closed[by])
        keys.append(by)
    out = frame.groupby(keys, observed=True).agg(n_closed=("won", "size"), n_won=("won", "sum"),
                                                  won_amount=("won_amount", "sum")).reset_index()
    out["win_rate"] = ratio_series(out["n_won"], out["n_closed"])
    return out.sort_values(keys, ignore_index=True)


# ------------------------------------------------------------------------------------------ KPIs

def _leads_in(frames: Mapping[str, pd.DataFrame], ctx: KpiContext) -> pd.DataFrame | None:
    leads = frames["leads"]
    cohort = leads[in_period(leads["created_at"], ctx)]
    return cohort if len(cohort) else None


@register_kpi("leads_created", label="Leads created", unit="count", direction="higher", tables=("leads",),
              area=AREA, description="Leads created in the period (by `created_at`).")
def kpi_leads_created(frames: Mapping[str, pd.DataFrame], ctx: KpiContext) -> float | None:
    cohort = _leads_in(frames, ctx)
    return float(len(cohort)) if cohort is not None else None


@register_kpi("mql_rate", label="Lead→MQL rate", unit="rate", direction="higher", tables=("leads",), area=AREA,
              description="Share of the leads created in the period that became MQLs (by the time of the data).")
def kpi_mql_rate(frames: Mapping[str, pd.DataFrame], ctx: KpiContext) -> float | None:
    cohort = _leads_in(frames, ctx)
    if cohort is None:
        return None
    funnel = lead_funnel(cohort, None).set_index("step_id")
    return ratio(funnel.loc["mql", "n_leads"], funnel.loc["lead", "n_leads"])


@register_kpi("sql_to_opportunity_rate", label="SQL→opportunity rate", unit="rate", direction="higher",
              tables=("leads",), area=AREA,
              description="Share of the SQLs among the leads created in the period that became opportunities.")
def kpi_sql_to_opportunity_rate(frames: Mapping[str, pd.DataFrame], ctx: KpiContext) -> float | None:
    cohort = _leads_in(frames, ctx)
    if cohort is None:
        return None
    funnel = lead_funnel(cohort, None).set_index("step_id")
    return ratio(funnel.loc["opportunity", "n_leads"], funnel.loc["sql", "n_leads"])


@register_kpi("lead_to_won_rate", label="Lead→won rate", unit="rate", direction="higher",
              tables=("leads", "opportunities"), area=AREA,
              description="Share of the leads created in the period whose opportunity was won (by the time of "
                          "the data).")
def kpi_lead_to_won_rate(frames: Mapping[str, pd.DataFrame], ctx: KpiContext) -> float | None:
    cohort = _leads_in(frames, ctx)
    if cohort is None:
        return None
    funnel = lead_funnel(cohort, frames["opportunities"]).set_index("step_id")
    return ratio(funnel.loc["won", "n_leads"], funnel.loc["lead", "n_leads"])


@register_kpi("new_opportunities", label="New opportunities", unit="count", direction="higher",
              tables=("opportunities",), area=AREA,
              description="Opportunities created in the period (those with an unknown creation date are not "
                          "counted).")
def kpi_new_opportunities(frames: Mapping[str, pd.DataFrame], ctx: KpiContext) -> float | None:
    opps = frames["opportunities"]
    if opps.empty or opps["created_at"].isna().all():
        return None
    return float(in_period(opps["created_at"], ctx).sum())


@register_kpi("pipeline_amount", label="Open pipeline", unit="amount", direction="higher",
              tables=("opportunities",), area=AREA,
              description="Amount of the opportunities still open at the end of the period.")
def kpi_pipeline_amount(frames: Mapping[str, pd.DataFrame], ctx: KpiContext) -> float | None:
    open_end = _open_at_end(frames["opportunities"], ctx)
    total = open_end["amount"].sum(min_count=1)
    return float(total) if pd.notna(total) else None


@register_kpi("win_rate", label="Win rate", unit="rate", direction="higher", tables=("opportunities",), area=AREA,
              description="Won ÷ closed (won + lost) among the opportunities closed in the period.")
def kpi_win_rate(frames: Mapping[str, pd.DataFrame], ctx: KpiContext) -> float | None:
    closed = _closed_in(frames["opportunities"], ctx)
    return ratio(int(won_mask(closed).sum()), len(closed))


@register_kpi("median_stage_days", label="Median days in open stages", unit="days", direction="lower",
              tables=("opportunities",), area=AREA,
              description="Median total time in open stages of the opportunities closed in the period: from "
                          "entering the first stage (created_at, or the earliest stage entry) to the close.")
def kpi_median_stage_days(frames: Mapping[str, pd.DataFrame], ctx: KpiContext) -> float | None:
    closed = _closed_in(frames["opportunities"], ctx)
    start = closed.set_index("opportunity_id")["created_at"]
    hist = frames.get("opportunity_stage_history")
    if hist is not None and len(hist):
        first = hist[isin(hist["opportunity_id"], start.index)].groupby("opportunity_id")["entered_at"].min()
        start = pd.concat([start, first.reindex(start.index)], axis=1).min(axis=1)
    days = _days(closed.set_index("opportunity_id")["closed_at"] - start)
    return _median(days)
