"""Pipeline forecast (销售预测): expected bookings of a period from the open deals, with **calibrated** win
probabilities, and a Monte Carlo over deal outcomes and close dates that gives the distribution of the period's
bookings and the probability of reaching the target — per company, region, team and rep.

**State at a time.** A deal is open at time ``t`` when it was created by ``t`` and not closed by ``t``. Its stage
at ``t`` is the stage-history row it was in at ``t`` (`opportunity_stage_history`); without a stage history, the
current stage of a deal still open, else unknown. Its age is the days since ``created_at``.

**Calibrated win probability.** Not the rep's ``probability``: the share of similar deals that were won, learnt
from history. Training samples are the deals open at each month end of the two years before the cut-off
(ending `GAP_DAYS` before it, so that most have closed) whose outcome is known by the cut-off; a sample's cell is
its stage × age band (`AGE_BANDS`) × amount band (terciles of the samples' amounts). A cell's rate is shrunk
toward its stage's rate, and a stage's toward the overall rate, with the weight of `PRIOR_DEALS` deals (empirical
Bayes): a thin cell borrows from its stage. The close date: the days from a sample to its win, per stage (the
empirical distribution of the won samples), give the chance that a won deal closes inside the period.

**Not yet in the pipeline.** Deals created after ``t`` and won inside the period also count: the "run-rate",
taken from the same period of earlier years (the amount won in it by deals created after the same point in that
period), scaled by the growth of the last 12 months' bookings over the 12 before; when the history holds fewer
than two such periods, from the last four periods of the same length.

**Monte Carlo.** Each simulation draws every open deal's outcome (won with its calibrated probability) and close
date (inside the period with its stage's probability), and one run-rate sample; bookings = won so far in the
period + the drawn deals + the run-rate. `N_SIMS` simulations, seeded: the same data gives the same numbers.
The probability of reaching the target is the share of simulations at or above it.

**Checked on history** (`target_backtest`): for past quarters, at several points before quarter end, the
probability of reaching the target as the model would have stated it then (trained on what was known then) vs
whether the target was reached — Brier score against the naive rule "attainment so far ÷ elapsed share ≥ 100 %".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from crmlens.periods import Period, next_period, same_period_last_year, shift_period

#: Days since creation that split deals into age bands (young, maturing, old, stale).
AGE_BANDS: tuple[int, ...] = (30, 90, 180)
#: Weight, in deals, of a stage's rate on a thin cell's rate (and of the overall rate on a stage's).
PRIOR_DEALS = 20.0
#: Training samples end this many days before the cut-off (their outcomes must be known by then).
GAP_DAYS = 90
#: Months of month-end samples the win model learns from.
TRAIN_MONTHS = 24
#: Simulations of the Monte Carlo.
N_SIMS = 2000
#: Deals closed this many days before the period (and since) are kept with a forecast (drift tells won/lost).
CLOSED_DAYS = 120
#: Levels of a forecast, widest first.
LEVELS: tuple[str, ...] = ("company", "region", "team", "rep")
#: The stage name of a deal whose stage at a time is not known.
UNKNOWN_STAGE = "(unknown)"
_DAY = pd.Timedelta(days=1)


@dataclass
class PipelineData:
    """What the forecast reads: every deal of the slice's region (all history, one row per opportunity), the
    stage history, the reps' teams, the targets, and the source's won stage."""

    deals: pd.DataFrame  # opportunity_id, owner_rep_id, team_id, region_id, created_at, closed_at, won, amount,
    #                      probability, forecast_category, stage, product_id, expected_close_date
    history: pd.DataFrame | None  # opportunity_id, stage, entered_at, exited_at (None: not in this source)
    targets: pd.DataFrame | None
    as_of: pd.Timestamp
    won_stage: str = "Won"
    lost_stage: str = "Lost"
    _stage_cache: dict = field(default_factory=dict, repr=False)  # month-end samples, targets per period/level

    @classmethod
    def build(cls, opportunities: pd.DataFrame, *, reps: pd.DataFrame | None = None,
              history: pd.DataFrame | None = None, targets: pd.DataFrame | None = None,
              as_of: pd.Timestamp, won_stage: str = "Won", lost_stage: str = "Lost") -> PipelineData:
        """From validated frames (canonical columns). Deals created after `as_of` are left out; a deal closed
        after it counts as open."""
        o = opportunities
        o = o[o["created_at"].isna() | (o["created_at"] <= as_of)]
        deals = pd.DataFrame({
            "opportunity_id": o["opportunity_id"].astype(str).to_numpy(),
            "owner_rep_id": _col(o, "owner_rep_id"), "region_id": _col(o, "region_id"),
            "created_at": pd.to_datetime(o["created_at"]).to_numpy(),
            "closed_at": pd.to_datetime(o["closed_at"]).to_numpy(),
            "won": (o["is_won"].astype("boolean").fillna(False).to_numpy(bool)
                    if "is_won" in o else (o["stage"] == won_stage).to_numpy(bool)),
            "amount": pd.to_numeric(o["amount"], errors="coerce").fillna(0.0).to_numpy(float),
            "amount_known": pd.to_numeric(o["amount"], errors="coerce").notna().to_numpy(bool),
            "probability": pd.to_numeric(_col(o, "probability", np.nan), errors="coerce"),
            "forecast_category": _col(o, "forecast_category"),
            "stage": _col(o, "stage"),
            "product_id": _col(o, "product_id"),
            "expected_close_date": (pd.to_datetime(o["expected_close_date"]).to_numpy() if "expected_close_date" in o
                                    else np.full(len(o), np.datetime64("NaT"), dtype="datetime64[ns]")),
        })
        team = None
        if reps is not None and len(reps) and "team_id" in reps:
            team = reps.drop_duplicates("rep_id").set_index("rep_id")["team_id"]
        deals["team_id"] = (deals["owner_rep_id"].map(team) if team is not None else pd.Series(None, index=deals.index,
                                                                                                dtype=object))
        for name in ("opportunity_id", "owner_rep_id", "region_id", "team_id", "forecast_category", "stage"):
            # plain Python strings: the forecast groups and looks them up many times (Arrow strings cost a copy each)
            deals[name] = pd.Series(deals[name].to_numpy(object), index=deals.index, dtype=object)
        if history is not None:
            history = history[history["opportunity_id"].isin(deals["opportunity_id"])][
                ["opportunity_id", "stage", "entered_at", "exited_at"]].copy()
            history = history if len(history) else None
        return cls(deals=deals, history=history, targets=targets, as_of=pd.Timestamp(as_of), won_stage=won_stage,
                   lost_stage=lost_stage)

    def open_at(self, t: pd.Timestamp) -> pd.DataFrame:
        """The deals open at `t`, with their stage and age (days) at `t`."""
        d = self.deals
        mask = d["created_at"].notna() & (d["created_at"] <= t) & (d["closed_at"].isna() | (d["closed_at"] > t))
        out = d[mask].copy()
        out["stage_at"] = self.stage_at(out, t)
        out["age_days"] = ((t - out["created_at"]) / _DAY).to_numpy(float)
        return out

    def stage_at(self, deals: pd.DataFrame, t: pd.Timestamp) -> pd.Series:
        """Each deal's stage at `t`: from the stage history, else the current stage of a deal still open now.
        `deals` is a cut of `self.deals` (same index)."""
        current = deals["stage"].where(deals["closed_at"].isna())
        if self.history is None:
            return current.fillna(UNKNOWN_STAGE).astype(object)
        h = self._history_arrays()
        t64 = np.datetime64(pd.Timestamp(t).as_unit("ns").to_datetime64(), "ns").astype(np.int64)
        live = (h["enter"] <= t64) & (h["exit"] > t64)
        rows, stages = h["row"][live][::-1], h["stage"][live][::-1]
        # the history is in order of entry: a deal's last live entry (its first in reverse) is its stage at t
        deal_rows, first = np.unique(rows, return_index=True)
        lookup = np.full(len(self.deals), -1, dtype=np.int64)
        lookup[deal_rows] = stages[first]
        codes = lookup[deals.index.to_numpy()]
        at = pd.Series(np.where(codes >= 0, h["names"][np.maximum(codes, 0)], None), index=deals.index, dtype=object)
        return at.where(at.notna(), current).fillna(UNKNOWN_STAGE).astype(object)

    def _history_arrays(self) -> dict[str, np.ndarray]:
        """The stage history as arrays in order of entry: each entry's deal row, stage code, entry and exit time
        (ns; a missing exit is "still there", a missing entry never). Built once."""
        if "history" not in self._stage_cache:
            h = self.history.sort_values("entered_at", kind="stable")
            row = pd.Index(self.deals["opportunity_id"]).get_indexer(h["opportunity_id"])
            keep = row >= 0
            big = np.iinfo(np.int64).max

            def ns(values: pd.Series) -> np.ndarray:
                out = values.to_numpy("datetime64[ns]").astype(np.int64)
                return np.where(values.isna().to_numpy(), big, out)

            codes, names = pd.factorize(h["stage"].astype(object))
            self._stage_cache["history"] = {"row": row[keep], "stage": codes[keep], "names": np.asarray(names, object),
                                            "enter": ns(h["entered_at"])[keep], "exit": ns(h["exited_at"])[keep]}
        return self._stage_cache["history"]

    def targets_of(self, label: str, level: str, names: Iterable[str]) -> np.ndarray:
        """The target amount of each group `names` of `level` for period `label` (NaN: no target)."""
        names = list(names)
        if self.targets is None or self.targets.empty:
            return np.full(len(names), np.nan)
        key = ("targets", label, level)
        if key not in self._stage_cache:
            t = self.targets[(self.targets["period"].astype(str) == label) & (self.targets["level"] == level)]
            self._stage_cache[key] = t.groupby(t["key"].astype(object))["target_amount"].sum()
        return self._stage_cache[key].reindex(names).to_numpy(float)

    def won_between(self, start: pd.Timestamp, end: pd.Timestamp, created_after: pd.Timestamp | None = None
                    ) -> pd.DataFrame:
        """The deals won in ``[start, end)`` (optionally only those created after `created_after`)."""
        d = self.deals
        mask = d["won"] & (d["closed_at"] >= start) & (d["closed_at"] < end)
        if created_after is not None:
            mask &= d["created_at"] > created_after
        return d[mask]


def _keys(values: pd.Series) -> pd.Series:
    """Group keys as plain Python strings, "(unknown)" for a missing one (no Arrow string copies)."""
    return values.astype(object).where(values.notna(), "(unknown)")


def _col(frame: pd.DataFrame, name: str, default: Any = None) -> pd.Series:
    if name in frame:
        return frame[name].astype(object).where(frame[name].notna(), None).to_numpy() if default is None \
            else frame[name].to_numpy()
    return np.full(len(frame), default, dtype=object if default is None else float)


# ----------------------------------------------------------------------------------------------- win model

@dataclass
class WinModel:
    """Calibrated win probabilities by stage × age band × amount band, and each stage's days-to-win."""

    cutoff: pd.Timestamp
    amount_edges: np.ndarray
    cell_rates: pd.Series  # index (stage, age_band, amount_band)
    stage_rates: pd.Series
    overall: float
    delays: dict[str, np.ndarray]  # stage → days from a sample to its win (sorted)
    n_samples: int
    #: Standard deviation, on the log-odds scale, of the month-to-month swing of the actual win share around the
    #: predicted one: every deal of a period shares it (a good quarter lifts them all), so it widens the range.
    shift_sd: float = 0.0

    def p_win(self, deals: pd.DataFrame) -> np.ndarray:
        """The calibrated win probability of deals with `stage_at`, `age_days` and `amount`."""
        keys = pd.MultiIndex.from_arrays([deals["stage_at"].to_numpy(object), age_band(deals["age_days"]),
                                          amount_band(deals["amount"], self.amount_edges)])
        p = self.cell_rates.reindex(keys).to_numpy(float)
        stage = self.stage_rates.reindex(deals["stage_at"].to_numpy(object)).to_numpy(float)
        return np.where(np.isnan(p), np.where(np.isnan(stage), self.overall, stage), p)

    def p_close_between(self, deals: pd.DataFrame, t: pd.Timestamp, start: pd.Timestamp, end: pd.Timestamp
                        ) -> np.ndarray:
        """The chance that a deal open at `t`, once won, closes in ``[start, end)`` (its stage's days-to-win)."""
        lo, hi = (start - t) / _DAY, (end - t) / _DAY
        out = np.empty(len(deals))
        everyone = self.delays.get("*", np.array([]))
        for stage, idx in pd.Series(np.arange(len(deals))).groupby(deals["stage_at"].to_numpy(object)).groups.items():
            days = self.delays.get(stage, everyone)
            if len(days) == 0:
                out[idx] = 1.0 if lo <= 0 else 0.0
                continue
            out[idx] = (np.searchsorted(days, hi, "left") - np.searchsorted(days, max(lo, 0.0), "left")) / len(days)
        return out


def age_band(age_days: pd.Series | np.ndarray) -> np.ndarray:
    """0, 1, 2, ... by `AGE_BANDS` (days since creation)."""
    return np.searchsorted(np.asarray(AGE_BANDS, float), np.asarray(age_days, float), side="right")


def amount_band(amount: pd.Series | np.ndarray, edges: np.ndarray) -> np.ndarray:
    """0, 1, 2 by the training amounts' terciles."""
    return np.searchsorted(edges, np.asarray(amount, float), side="right")


def training_samples(data: PipelineData, cutoff: pd.Timestamp, months: int = TRAIN_MONTHS,
                     gap_days: int = GAP_DAYS) -> pd.DataFrame:
    """The deals open at each month end of the `months` months ending `gap_days` before `cutoff`, whose outcome
    is known at `cutoff`: stage and age then, amount, whether won and the days from the sample to the close."""
    last = (cutoff - pd.Timedelta(days=gap_days)).normalize()
    ends = pd.date_range(last - pd.DateOffset(months=months), last, freq="ME")
    parts = []
    for t in ends:
        t = t + pd.Timedelta(hours=23, minutes=59, seconds=59)
        key = ("samples", t)
        if key not in data._stage_cache:
            data._stage_cache[key] = data.open_at(t)[["opportunity_id", "stage_at", "age_days", "amount", "won",
                                                      "closed_at"]].assign(at=t)
        open_then = data._stage_cache[key]
        parts.append(open_then[open_then["closed_at"].notna() & (open_then["closed_at"] <= cutoff)])
    if not parts:
        return pd.DataFrame(columns=["opportunity_id", "stage_at", "age_days", "amount", "won", "closed_at", "at"])
    out = pd.concat(parts, ignore_index=True)
    out["days_to_close"] = (out["closed_at"] - out["at"]) / _DAY
    return out


def fit_win_model(samples: pd.DataFrame, cutoff: pd.Timestamp, prior: float = PRIOR_DEALS) -> WinModel:
    """Empirical-Bayes win rates by stage × age band × amount band from `training_samples`."""
    won = samples["won"].astype(float)
    overall = float(won.mean()) if len(samples) else 0.5
    amounts = samples["amount"].to_numpy(float)
    edges = np.unique(np.quantile(amounts, [1 / 3, 2 / 3])) if len(amounts) else np.array([])
    stage = samples["stage_at"].to_numpy(object)
    by_stage = won.groupby(stage).agg(["sum", "count"])
    stage_rates = (by_stage["sum"] + prior * overall) / (by_stage["count"] + prior)
    keys = [stage, age_band(samples["age_days"]), amount_band(amounts, edges)]
    cells = won.groupby(keys).agg(["sum", "count"])
    base = stage_rates.reindex(cells.index.get_level_values(0)).to_numpy(float)
    cell_rates = (cells["sum"] + prior * base) / (cells["count"] + prior)
    delays: dict[str, np.ndarray] = {}
    wins = samples[samples["won"]]
    if len(wins):
        delays["*"] = np.sort(wins["days_to_close"].to_numpy(float))
        for name, days in wins.groupby("stage_at")["days_to_close"]:
            if len(days) >= 30:
                delays[str(name)] = np.sort(days.to_numpy(float))
    model = WinModel(cutoff=cutoff, amount_edges=edges, cell_rates=cell_rates, stage_rates=stage_rates,
                     overall=overall, delays=delays, n_samples=len(samples))
    if len(samples) and "at" in samples:
        per = pd.DataFrame({"at": samples["at"].to_numpy(), "won": won.to_numpy(), "p": model.p_win(samples)})
        per = per.groupby("at").agg(won=("won", "mean"), p=("p", "mean"), n=("won", "size"))
        per = per[per["n"] >= 30]
        if len(per) >= 6:
            model.shift_sd = float(np.std(_logit(per["won"].to_numpy()) - _logit(per["p"].to_numpy()), ddof=1))
    return model


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


# ------------------------------------------------------------------------------------------------ run-rate

def run_rate_samples(data: PipelineData, t: pd.Timestamp, period: Period, keys: Mapping[str, str]
                     ) -> tuple[list[pd.DataFrame], str]:
    """Samples of the bookings from deals not yet in the pipeline at `t` that will be won in `period`: for each
    analogue period (the same period of up to three earlier years, else the last four periods), the amount won
    in it by deals created after the same point, per group of each level (`keys`: level → deal column), scaled
    by the recent growth. Returns (samples, how they were taken)."""
    offset = period.end - max(t, period.start)
    analogues = [same_period_last_year(period)]
    while len(analogues) < 3:
        analogues.append(same_period_last_year(analogues[-1]))
    first = data.deals["created_at"].min()
    yearly = [p for p in analogues if pd.notna(first) and p.start >= first and p.end <= t]
    growth = 1.0
    if len(yearly) >= 2:
        recent = data.won_between(t - pd.DateOffset(years=1), t)["amount"].sum()
        before = data.won_between(t - pd.DateOffset(years=2), t - pd.DateOffset(years=1))["amount"].sum()
        growth = float(np.clip(recent / before, 0.5, 2.0)) if before > 0 else 1.0
        chosen, how = yearly, "same_period"
    else:
        chosen = [shift_period(period, -k) for k in range(1, 5)]
        chosen = [p for p in chosen if pd.notna(first) and p.start >= first and p.end <= t + _DAY]
        how = "recent_periods"
    out = []
    for years_back, p in enumerate(chosen, start=1):
        t_k = p.end - offset
        won = data.won_between(max(t_k, p.start), p.end, created_after=t_k)
        scale = growth ** years_back if how == "same_period" else 1.0
        parts = [pd.DataFrame({"level": ["company"], "key": ["company"],
                               "amount": [float(won["amount"].sum() * scale)]})]
        parts += [pd.DataFrame({"level": lvl, "key": _keys(won[col]),
                                "amount": won["amount"] * scale}) for lvl, col in keys.items() if lvl != "company"]
        out.append(pd.concat(parts, ignore_index=True).groupby(["level", "key"], as_index=False)["amount"].sum())
    return out, how


# --------------------------------------------------------------------------------------------- simulation

def simulate(amount: np.ndarray, p_win: np.ndarray, p_in_period: np.ndarray, groups: Mapping[str, np.ndarray],
             *, n_sims: int = N_SIMS, seed: int = 0, block: int = 250, shift_sd: float = 0.0
             ) -> dict[str, pd.DataFrame]:
    """Monte Carlo of the bookings of deals: each simulation draws whether each deal is won (`p_win`) and closes
    inside the period (`p_in_period`) — independent, so one draw with the product of the two chances; with
    `shift_sd`, each simulation first draws a shift of every deal's log-odds of winning (normal, this standard
    deviation: the period's shared luck). Returns per
    level (`groups`: level → each deal's group key) a frame of n_sims rows × groups holding the simulated
    bookings of the deals."""
    from scipy import sparse

    rng = np.random.default_rng(seed)
    n = len(amount)
    onehots = {}
    for level, keys in groups.items():
        codes, uniques = pd.factorize(_keys(pd.Series(keys, dtype=object)), sort=True)
        onehots[level] = (sparse.csr_matrix((amount, (np.arange(n), codes)), shape=(n, len(uniques))), uniques)
    results = {level: [] for level in groups}
    # calibrated probabilities take few values (one per cell): shift those, then spread them over the deals
    p_values, p_index = np.unique(np.asarray(p_win, float), return_inverse=True)
    p_in = np.asarray(p_in_period, float)
    for start in range(0, n_sims, block):
        m = min(block, n_sims - start)
        if shift_sd > 0:
            shifted = 1.0 / (1.0 + np.exp(-(_logit(p_values)[None, :] + rng.normal(0.0, shift_sd, (m, 1)))))
            p = shifted[:, p_index] * p_in
        else:
            p = np.broadcast_to(np.asarray(p_win, float) * p_in, (m, n))
        # won and closing inside the period are independent: one draw with the product of their chances
        hit = (rng.random((m, n)) < p).astype(np.float64)
        for level, (onehot, _uniques) in onehots.items():
            results[level].append(np.asarray(onehot.T @ hit.T).T if n else np.zeros((m, onehot.shape[1])))
    return {level: pd.DataFrame(np.vstack(results[level]) if results[level] else np.zeros((0, len(u))),
                                columns=list(u))
            for level, (_o, u) in onehots.items()}


# ------------------------------------------------------------------------------------------------ forecast

@dataclass
class Forecast:
    """A pipeline forecast of `period` made at `t`."""

    period: Period
    t: pd.Timestamp
    deals: pd.DataFrame  # the open deals with p_win, p_in_period, expected_amount
    summary: pd.DataFrame  # level, key, closed_amount, pipeline_expected, run_rate_expected, expected_amount,
    #                        p10, p50, p90, target_amount, target_probability
    categories: pd.DataFrame  # forecast_category, n_deals, amount, expected_amount
    sims: dict[str, pd.DataFrame]  # level → n_sims × groups of total bookings
    run_rate_basis: str
    model: WinModel
    closed_recent: pd.DataFrame | None = None  # deals closed (won or lost) from `CLOSED_DAYS` before the period to t


def forecast_period_for(period: Period, as_of: pd.Timestamp) -> Period:
    """The period a pipeline forecast looks at: the analysis period while it is still running at the as-of date,
    else the next period of the same length."""
    return period if as_of < period.end - pd.Timedelta(seconds=1) else next_period(period)


def level_keys(data: PipelineData, levels: Sequence[str]) -> dict[str, str]:
    """level → the deal column that groups it."""
    cols = {"company": "", "region": "region_id", "team": "team_id", "rep": "owner_rep_id"}
    return {lvl: cols[lvl] for lvl in levels}


def pipeline_forecast(data: PipelineData, period: Period, t: pd.Timestamp | None = None, *,
                      levels: Sequence[str] = LEVELS, n_sims: int = N_SIMS, seed: int = 0,
                      model: WinModel | None = None, details: bool = True) -> Forecast:
    """The forecast of `period`'s bookings made at `t` (default: the data's as-of date) from what was known at
    `t`: won so far, the open deals (calibrated), the run-rate; distribution and probability of the targets.
    Without `details` (backtests), no forecast categories and no recent closed deals."""
    t = pd.Timestamp(t if t is not None else data.as_of)
    model = model or fit_win_model(training_samples(data, t), t)
    keys = level_keys(data, levels)
    open_deals = data.open_at(t)
    open_deals["p_win"] = model.p_win(open_deals)
    open_deals["p_in_period"] = model.p_close_between(open_deals, t, period.start, period.end)
    open_deals["expected_amount"] = open_deals["amount"] * open_deals["p_win"] * open_deals["p_in_period"]
    groups = {lvl: (np.full(len(open_deals), "company", dtype=object) if lvl == "company"
                    else open_deals[col].to_numpy(object)) for lvl, col in keys.items()}
    sims = simulate(open_deals["amount"].to_numpy(float), open_deals["p_win"].to_numpy(float),
                    open_deals["p_in_period"].to_numpy(float), groups, n_sims=n_sims, seed=seed,
                    shift_sd=model.shift_sd)
    closed = data.won_between(period.start, min(t, period.end) + pd.Timedelta(microseconds=1))
    run_rates, basis = run_rate_samples(data, t, period, keys)
    rng = np.random.default_rng(seed + 1)
    pick = rng.integers(0, len(run_rates), n_sims) if run_rates else None
    rows, totals = [], {}
    for lvl, col in keys.items():
        frame = sims[lvl]
        closed_by = (pd.Series({"company": closed["amount"].sum()}) if lvl == "company" else
                     closed.groupby(_keys(closed[col]))["amount"].sum())
        per_sample = [rr.loc[rr["level"] == lvl].set_index("key")["amount"] for rr in run_rates]
        names = sorted(set(frame.columns) | set(closed_by.index) | {k for rr in per_sample for k in rr.index})
        frame = frame.reindex(columns=names, fill_value=0.0)
        if run_rates:
            table = np.vstack([rr.reindex(names).fillna(0.0).to_numpy(float) for rr in per_sample])
            rr_draw, rr_mean = table[pick], table.mean(axis=0)
        else:
            rr_draw, rr_mean = np.zeros((n_sims, len(names))), np.zeros(len(names))
        total = frame.to_numpy(float) + rr_draw + closed_by.reindex(names).fillna(0.0).to_numpy(float)
        totals[lvl] = pd.DataFrame(total, columns=names)
        expected_pipeline = (open_deals.groupby(_keys(open_deals[col]) if col else
                                                np.full(len(open_deals), "company"))["expected_amount"].sum()
                             .reindex(names).fillna(0.0))
        q = np.quantile(total, [0.1, 0.5, 0.9], axis=0) if len(total) else np.full((3, len(names)), np.nan)
        target = data.targets_of(period.label, lvl, names)
        prob = np.where(np.isnan(target), np.nan, (total >= np.nan_to_num(target, nan=np.inf)).mean(axis=0))
        rows.append(pd.DataFrame({
            "level": lvl, "key": names, "closed_amount": closed_by.reindex(names).fillna(0.0).to_numpy(float),
            "pipeline_expected": expected_pipeline.to_numpy(float), "run_rate_expected": rr_mean,
            "expected_amount": total.mean(axis=0), "p10": q[0], "p50": q[1], "p90": q[2],
            "target_amount": target, "target_probability": prob}))
    summary = pd.concat(rows, ignore_index=True)
    summary["expected_attainment"] = summary["expected_amount"] / summary["target_amount"]
    if not details:
        return Forecast(period=period, t=t, deals=open_deals, summary=summary, categories=pd.DataFrame(),
                        sims=totals, run_rate_basis=basis, model=model)
    categories = _categories(open_deals, closed, run_rates)
    d = data.deals
    since = min(period.start, t) - pd.Timedelta(days=CLOSED_DAYS)
    recent = d[d["closed_at"].notna() & (d["closed_at"] >= since) & (d["closed_at"] <= t)][
        ["opportunity_id", "won", "amount", "closed_at"]]
    return Forecast(period=period, t=t, deals=open_deals, summary=summary, categories=categories, sims=totals,
                    run_rate_basis=basis, model=model, closed_recent=recent)


CATEGORY_ORDER = ("closed", "commit", "best_case", "pipeline", "omitted", "run_rate")


def _categories(open_deals: pd.DataFrame, closed: pd.DataFrame, run_rates: list[pd.DataFrame]) -> pd.DataFrame:
    """Expected bookings by forecast category (won so far, commit, best case, pipeline) and the run-rate."""
    cat = open_deals["forecast_category"].fillna("pipeline").astype(str)
    by = open_deals.groupby(cat).agg(n_deals=("opportunity_id", "size"), amount=("amount", "sum"),
                                     expected_amount=("expected_amount", "sum"))
    rr = float(np.mean([r.loc[r["level"] == "company", "amount"].sum() for r in run_rates])) if run_rates else 0.0
    extra = pd.DataFrame({"n_deals": [len(closed), np.nan], "amount": [closed["amount"].sum(), np.nan],
                          "expected_amount": [closed["amount"].sum(), rr]}, index=["closed", "run_rate"])
    out = pd.concat([extra.loc[["closed"]], by, extra.loc[["run_rate"]]])
    order = [c for c in CATEGORY_ORDER if c in out.index] + [c for c in out.index if c not in CATEGORY_ORDER]
    out = out.loc[order].rename_axis("forecast_category").reset_index()
    out["cumulative_expected"] = out["expected_amount"].cumsum()
    return out


# ------------------------------------------------------------------------------------------------ backtest

def target_backtest(data: PipelineData, periods: Sequence[Period], *, days_before_end: Sequence[int] = (60, 30, 10),
                    levels: Sequence[str] = ("company", "region", "team"), n_sims: int = 1000, seed: int = 0
                    ) -> pd.DataFrame:
    """For each past period and each point `days_before_end` days before its end, the probability of reaching
    each group's target as stated then (the win model learnt at the period's first point, from what was known
    then) and by the naive rule
    (attainment so far ÷ elapsed share ≥ 100 %: 1, else 0), next to whether the target was reached."""
    rows = []
    for period in periods:
        actual, model = None, None
        for days in sorted(days_before_end, reverse=True):
            t = period.end - pd.Timedelta(days=days)
            if t <= period.start or t > data.as_of:
                continue
            # one model per period, learnt at its first point: the later points know no less than it
            model = model or fit_win_model(training_samples(data, t), t)
            f = pipeline_forecast(data, period, t, levels=levels, n_sims=n_sims, seed=seed, model=model,
                                  details=False)
            s = f.summary.dropna(subset=["target_amount"])
            s = s[s["target_amount"] > 0]
            if actual is None:
                won = data.won_between(period.start, period.end)
                actual = {lvl: (pd.Series({"company": won["amount"].sum()}) if lvl == "company" else
                                won.groupby(_keys(won[col]))["amount"].sum())
                          for lvl, col in level_keys(data, levels).items()}
            elapsed = (t - period.start) / (period.end - period.start)
            got = np.array([actual[lvl].get(k, 0.0) for lvl, k in zip(s["level"], s["key"], strict=True)])
            rows.append(pd.DataFrame({
                "period": period.label, "days_before_end": days, "level": s["level"].to_numpy(),
                "key": s["key"].to_numpy(), "target_amount": s["target_amount"].to_numpy(float),
                "closed_so_far": s["closed_amount"].to_numpy(float), "elapsed_share": elapsed,
                "p_model": s["target_probability"].to_numpy(float),
                "p_naive": ((s["closed_amount"] / s["target_amount"] / elapsed) >= 1.0).astype(float).to_numpy(),
                "actual_amount": got, "reached": (got >= s["target_amount"].to_numpy(float)).astype(float)}))
    cols = ["period", "days_before_end", "level", "key", "target_amount", "closed_so_far", "elapsed_share", "p_model",
            "p_naive", "actual_amount", "reached"]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=cols)


def brier_scores(backtest: pd.DataFrame) -> pd.DataFrame:
    """Brier score (mean squared error of the stated probability vs 0/1 outcome; lower is better) of the model
    and of the naive rule, overall and per point before the period end."""
    if backtest.empty:
        return pd.DataFrame(columns=["days_before_end", "n", "brier_model", "brier_naive", "reached_rate"])
    b = backtest.assign(err_model=(backtest["p_model"] - backtest["reached"]) ** 2,
                        err_naive=(backtest["p_naive"] - backtest["reached"]) ** 2)
    per = b.groupby("days_before_end").agg(n=("reached", "size"), brier_model=("err_model", "mean"),
                                           brier_naive=("err_naive", "mean"), reached_rate=("reached", "mean"))
    per = per.sort_index(ascending=False).reset_index()
    total = pd.DataFrame({"days_before_end": [None], "n": [len(b)], "brier_model": [b["err_model"].mean()],
                          "brier_naive": [b["err_naive"].mean()], "reached_rate": [b["reached"].mean()]})
    return pd.concat([per.astype({"days_before_end": object}), total], ignore_index=True)


def deal_calibration(data: PipelineData, cutoffs: Sequence[pd.Timestamp]) -> pd.DataFrame:
    """Deal-level check of the calibrated win probabilities against the CRM's stage probability (the median
    ``probability`` of today's open deals in the stage the deal was in): at each cut-off, the deals open then whose
    outcome is known now; the Brier score of each (lower is better), the mean predicted and the actual win share."""
    rows = []
    for t in cutoffs:
        model = fit_win_model(training_samples(data, t), t)
        open_then = data.open_at(t)
        open_then = open_then[open_then["closed_at"].notna()]
        if open_then.empty:
            continue
        rows.append(open_then.assign(p_model=model.p_win(open_then), cutoff=t))
    if not rows:
        return pd.DataFrame(columns=["source", "n", "brier", "mean_predicted", "win_share"])
    d = pd.concat(rows, ignore_index=True)
    y = d["won"].astype(float)
    out = [{"source": "model", "n": len(d), "brier": float(((d["p_model"] - y) ** 2).mean()),
            "mean_predicted": float(d["p_model"].mean()), "win_share": float(y.mean())}]
    # the reps' probability of a closed deal is final (0 or 1): the CRM's probability of the deal's stage then
    # is the median probability of today's open deals in that stage
    open_now = data.deals[data.deals["closed_at"].isna()]
    by_stage = pd.to_numeric(open_now["probability"], errors="coerce").groupby(open_now["stage"]).median()
    rep = d["stage_at"].map(by_stage).astype(float)
    rep = rep.where(rep <= 1, rep / 100.0)
    ok = rep.notna()
    if ok.any():
        out.append({"source": "stage_probability", "n": int(ok.sum()),
                    "brier": float(((rep[ok] - y[ok]) ** 2).mean()), "mean_predicted": float(rep[ok].mean()),
                    "win_share": float(y[ok].mean())})
    return pd.DataFrame(out)
