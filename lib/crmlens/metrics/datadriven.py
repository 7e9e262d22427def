"""Data-driven multi-touch attribution (数据驱动归因): the Markov-chain removal effect and the Shapley value.

The same inputs and output as `crmlens.metrics.marketing.attribute` (touches: journey_id, `by`, occurred_at;
conversions: journey_id, value, converted_at; out: `by`, attributed_amount, attributed_share, most credit
first), but the split is learned from the journeys instead of fixed by a rule. Touches at or after their journey's
conversion do not count; a conversion without a touch before it is credited to nobody (``attrs["unattributed"]``).
A journey of `touches` whose journey_id is not in `conversions` did not convert: the Markov model learns from it
(its path ends in *null*), the Shapley value does not need it.

**Markov** (`markov_attribution`): a first-order chain over the states start, each `by` value, conversion and
null. Each journey is a path start → its touches in time order (consecutive touches of the same value are one
step) → conversion or null; the transition probabilities are the counted transitions of all paths, each journey
counting once. P(conversion) is the absorption probability from start (one linear solve). The removal effect of
state c is 1 − P(conversion with c removed) / P(conversion), where removing c sends every path that reaches c to
null; the converted value is split in proportion to the removal effects. No simulation: the result is exact and
the same on every run.

**Shapley** (`shapley_attribution`): the "simplified Shapley value" of Zhao, Mahboobi and Bagheri (2018,
arXiv:1804.05327). The players are the `by` values of the converted journeys; R(S) is the value of the converted
journeys whose set of `by` values is exactly S, and a coalition is worth v(S) = Σ R(T) over T ⊆ S. The Shapley
value of this game is computed exactly over all 2ⁿ coalitions, for up to `MAX_SHAPLEY_CHANNELS` players. (For
this v it equals splitting each converted journey's value equally between its distinct `by` values, which the
tests check; order and repetition within a journey do not matter.)

Library choice (ChannelAttribution, marketing-attribution-models): docs/dependencies.md.
"""

from __future__ import annotations

from math import factorial

import numpy as np
import pandas as pd

from crmlens.errors import ParameterError
from crmlens.i18n import N_
from crmlens.metrics.common import UNKNOWN
from crmlens.present import register_columns

#: The most `by` values (players) `shapley_attribution` takes: its exact value enumerates 2ⁿ coalitions.
MAX_SHAPLEY_CHANNELS = 15
TOUCH_COLUMNS = ("journey_id", "occurred_at")
CONVERSION_COLUMNS = ("journey_id", "value", "converted_at")

register_columns({
    "markov": (N_("Markov chain"), "share"),
    "shapley": (N_("Shapley value"), "share"),
})


def markov_attribution(touches: pd.DataFrame, conversions: pd.DataFrame, *, by: str = "channel") -> pd.DataFrame:
    """Credit per `by` (a column of `touches`) by the removal effect of a first-order Markov chain (module doc).
    Columns: `by`, attributed_amount, attributed_share; most credit first (ties by name); every `by` value of the
    counted touches has a row (zero when removing it changes nothing); no row at all when no journey converted
    after a touch (nothing to split: see ``attrs["credited"]``). attrs: model ``"markov"``, credited (the value
    split), unattributed (value of conversions without a touch before them), removal_effect (`by` value →
    effect), conversion_probability (P(conversion) from start)."""
    paths = _paths(touches, conversions, by)
    names, state, journey, converted = paths.names, paths.state, paths.journey, paths.converted
    k = len(names)
    if paths.credited <= 0 or k == 0:
        return _result({n: 0.0 for n in names}, by, "markov", paths.unattributed, paths.credited,
                       removal_effect={n: 0.0 for n in names}, conversion_probability=0.0)
    # collapse consecutive repeats of a state within a journey
    keep = np.ones(len(state), dtype=bool)
    keep[1:] = (journey[1:] != journey[:-1]) | (state[1:] != state[:-1])
    state, journey = state[keep], journey[keep]
    start, conv, null = k, k + 1, k + 2
    first = np.ones(len(state), dtype=bool)
    first[1:] = journey[1:] != journey[:-1]
    last = np.ones(len(state), dtype=bool)
    last[:-1] = journey[1:] != journey[:-1]
    src = np.concatenate([np.where(first, start, np.roll(state, 1)), state[last]])
    dst = np.concatenate([state, np.where(converted[journey[last]], conv, null)])
    n_states = k + 3
    counts = np.bincount(src * n_states + dst, minlength=n_states * n_states).reshape(n_states, n_states)
    counts = counts.astype("float64")
    out_total = counts.sum(axis=1, keepdims=True)
    prob = np.divide(counts, out_total, out=np.zeros_like(counts), where=out_total > 0)
    # transient states 0..k-1 (the `by` values) and k (start); absorbing: conversion, null
    q = prob[: k + 1, : k + 1]
    fundamental = np.linalg.inv(np.eye(k + 1) - q)  # expected visits; every transient state reaches absorption
    absorbed = fundamental @ prob[: k + 1, conv]  # P(conversion) from each transient state
    p_conv = float(absorbed[start])
    # Removing c sends paths reaching c to null: P(conv without c) = P(conv) − P(reach c from start) · P(conv | c),
    # and P(reach c from start) = N[start, c] / N[c, c] (strong Markov property).
    reach = fundamental[start, :k] / np.diag(fundamental)[:k]
    lost = reach * absorbed[:k]
    effect = np.clip(lost / p_conv, 0.0, 1.0) if p_conv > 0 else np.zeros(k)
    total_effect = float(effect.sum())
    credit = effect / total_effect * paths.credited if total_effect > 0 else np.zeros(k)
    return _result(dict(zip(names, credit.tolist(), strict=True)), by, "markov", paths.unattributed,
                   paths.credited, removal_effect=dict(zip(names, effect.tolist(), strict=True)),
                   conversion_probability=p_conv)


def shapley_attribution(touches: pd.DataFrame, conversions: pd.DataFrame, *, by: str = "channel") -> pd.DataFrame:
    """Credit per `by` (a column of `touches`) by the exact Shapley value over coalitions of `by` values (module
    doc), for up to `MAX_SHAPLEY_CHANNELS` values among the converted journeys. Columns: `by`, attributed_amount,
    attributed_share; most credit first (ties by name); a value seen only in journeys that did not convert has
    a row with no credit; no row at all when no journey converted after a touch. attrs: model ``"shapley"``,
    credited, unattributed. More values than the limit: a ParameterError (use `markov_attribution`)."""
    paths = _paths(touches, conversions, by)
    names = paths.names
    in_converted = np.unique(paths.state[paths.converted[paths.journey]])
    n = len(in_converted)
    if n > MAX_SHAPLEY_CHANNELS:
        raise ParameterError(
            f"by: {by!r} has {n} values in converted journeys; shapley_attribution takes at most "
            f"{MAX_SHAPLEY_CHANNELS} (2^n coalitions): use a coarser column such as 'channel', or "
            f"markov_attribution")
    credit = dict.fromkeys(names, 0.0)
    if paths.credited > 0 and n > 0:
        player = np.full(len(names), -1, dtype=np.int64)
        player[in_converted] = np.arange(n)
        mine = paths.converted[paths.journey]
        j, p = paths.journey[mine], player[paths.state[mine]]
        starts = np.flatnonzero(np.r_[True, j[1:] != j[:-1]])  # touches are grouped by journey
        masks = np.bitwise_or.reduceat(np.left_shift(1, p), starts)  # each journey's set of players
        worth = np.bincount(masks, weights=paths.value[j[starts]], minlength=1 << n)  # R(S)
        for i in range(n):  # v(S) = Σ R(T), T ⊆ S: the subset-sum (zeta) transform
            view = worth.reshape(-1, 2, 1 << i)
            view[:, 1, :] += view[:, 0, :]
        phi = _shapley(worth, n)
        for idx, value in zip(in_converted.tolist(), phi.tolist(), strict=True):
            credit[names[idx]] = value
    return _result(credit, by, "shapley", paths.unattributed, paths.credited)


def _shapley(worth: np.ndarray, n: int) -> np.ndarray:
    """Shapley values of the n players of the game `worth` (v over the 2ⁿ bitmask coalitions):
    φ_i = Σ_{S ∌ i} |S|! (n − |S| − 1)! / n! · (v(S ∪ {i}) − v(S))."""
    masks = np.arange(1 << n, dtype=np.int64)
    size = np.zeros(1 << n, dtype=np.int64)
    for i in range(n):
        size += (masks >> i) & 1
    weight = np.array([factorial(s) * factorial(n - s - 1) / factorial(n) for s in range(n)])
    phi = np.empty(n)
    for i in range(n):
        without = masks[(masks & (1 << i)) == 0]
        phi[i] = float(np.dot(weight[size[without]], worth[without | (1 << i)] - worth[without]))
    return phi


class _Paths:
    """The counted touches, sorted by journey then time: `state` (code into `names`, sorted) and `journey` (code
    into the per-journey arrays `converted` and `value`); `credited`: value of the converted journeys with a
    counted touch; `unattributed`: value of the other conversions."""

    def __init__(self, names: list[str], state: np.ndarray, journey: np.ndarray, converted: np.ndarray,
                 value: np.ndarray, credited: float, unattributed: float) -> None:
        self.names, self.state, self.journey, self.converted, self.value = names, state, journey, converted, value
        self.credited, self.unattributed = credited, unattributed


def _paths(touches: pd.DataFrame, conversions: pd.DataFrame, by: str) -> _Paths:
    """Everything as integer codes (journeys, `by` values, times in ns): no string lookups per touch."""
    _check_columns("touches", touches, (*TOUCH_COLUMNS, by), by)
    _check_columns("conversions", conversions, CONVERSION_COLUMNS, by)
    conv = conversions.drop_duplicates("journey_id")
    codes, _uniques = pd.factorize(pd.concat([touches["journey_id"].astype("string"),
                                              conv["journey_id"].astype("string")], ignore_index=True))
    n_journeys = len(_uniques)
    touch_j, conv_j = codes[: len(touches)].astype(np.int64), codes[len(touches):].astype(np.int64)
    known = conv_j >= 0
    conv_value = conv["value"].astype("float64").fillna(0.0).to_numpy()
    converted = np.zeros(n_journeys, dtype=bool)
    converted[conv_j[known]] = True
    value = np.zeros(n_journeys)
    value[conv_j[known]] = conv_value[known]
    nat = np.iinfo(np.int64).min
    converted_at = np.full(n_journeys, nat, dtype=np.int64)
    converted_at[conv_j[known]] = _ns(conv["converted_at"])[known]
    when = _ns(touches["occurred_at"])
    jj = np.maximum(touch_j, 0)
    # a converted journey's touches before its conversion (none when it has no time), every touch of the others
    counted = (touch_j >= 0) & (when != nat) & (
        ~converted[jj] | ((converted_at[jj] != nat) & (when < converted_at[jj])))
    journey, when = touch_j[counted], when[counted]
    states = touches[by][counted].astype("string").fillna(UNKNOWN)
    state, names = pd.factorize(states, sort=True)
    state = state.astype(np.int64)
    if len(journey) > 1 and not ((np.diff(journey) > 0) | ((np.diff(journey) == 0) & (np.diff(when) >= 0))).all():
        order = np.lexsort((when, journey))  # by journey, then time; ties keep their order
        journey, state = journey[order], state[order]
    has_touch = np.bincount(journey, minlength=n_journeys) > 0
    credited = float(value[converted & has_touch].sum())
    unattributed = float(conv_value.sum()) - credited
    return _Paths([str(n) for n in names], state, journey, converted, value, credited, unattributed)


def _ns(times: pd.Series) -> np.ndarray:
    """Times as int64 nanoseconds (UTC for time-zone aware ones), NaT as the smallest int64."""
    return times.to_numpy(dtype="datetime64[ns]").view(np.int64)


def _check_columns(param: str, frame: pd.DataFrame, needed: tuple[str, ...], by: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ParameterError(f"{param}: {type(frame).__name__} is not allowed; use a DataFrame with columns "
                             f"{', '.join(needed)}")
    if not isinstance(by, str) or not by:
        raise ParameterError(f"by: {by!r} is not allowed; use the name of a column of touches, e.g. 'channel'")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        what = "by" if missing == [by] and param == "touches" else param
        raise ParameterError(f"{what}: {param} has no column {', '.join(map(repr, missing))}; it needs "
                             f"{', '.join(needed)} (has {', '.join(map(str, frame.columns)) or 'none'})")


def _result(credit: dict[str, float], by: str, model: str, unattributed: float, credited: float,
            **attrs: object) -> pd.DataFrame:
    if credited <= 0:  # nothing converted after a touch: nothing to split, no row (not NaN shares)
        credit = {}
    out = pd.DataFrame({by: pd.array(list(credit), dtype="string"),
                        "attributed_amount": np.asarray(list(credit.values()), dtype="float64")})
    total = float(out["attributed_amount"].sum())
    out["attributed_share"] = out["attributed_amount"] / total if total > 0 else 0.0
    out = out.sort_values(["attributed_amount", by], ascending=[False, True], kind="stable").reset_index(drop=True)
    out.attrs.update(model=model, unattributed=float(unattributed), credited=float(credited), **attrs)
    return out
