"""Data-driven attribution: the Markov removal effect and the Shapley value on journeys computed by hand,
their invariants, and the shortcuts of the implementation checked against the plain definitions."""

from __future__ import annotations

from itertools import combinations, pairwise
from math import factorial

import numpy as np
import pandas as pd
import pytest

from crmlens.errors import ParameterError
from crmlens.metrics import datadriven as dd
from crmlens.metrics import marketing as mk

T = pd.Timestamp


def journeys(paths: dict[str, list[str]], values: dict[str, float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Touches one day apart in the listed order; a journey in `values` converts the day after its last touch
    (the others did not convert)."""
    rows = [(j, ch, T("2026-01-01") + pd.Timedelta(days=i)) for j, path in paths.items()
            for i, ch in enumerate(path)]
    touches = pd.DataFrame(rows, columns=["journey_id", "channel", "occurred_at"])
    conversions = pd.DataFrame({"journey_id": list(values), "value": list(values.values()),
                                "converted_at": [T("2026-01-01") + pd.Timedelta(days=len(paths.get(j, [])))
                                                 for j in values]})
    return touches, conversions


def credit(out: pd.DataFrame) -> dict[str, float]:
    return dict(zip(out["channel"], out["attributed_amount"], strict=True))


# j1: A A B → conversion (100; the repeated A is one step); j2: B → conversion (50); j3: A → null; j4: C → null
PATHS = {"j1": ["A", "A", "B"], "j2": ["B"], "j3": ["A"], "j4": ["C"]}
VALUES = {"j1": 100.0, "j2": 50.0}


def test_markov_by_hand():
    touches, conv = journeys(PATHS, VALUES)
    # a touch at the conversion (j1 converts on day 3) does not count: channel D never appears
    touches = pd.concat([touches, pd.DataFrame({"journey_id": ["j1"], "channel": ["D"],
                                                "occurred_at": [T("2026-01-04")]})], ignore_index=True)
    out = dd.markov_attribution(touches, conv)
    # transitions: start→A 2 (j1, j3), start→B 1, start→C 1 (of 4); A→B 1, A→null 1; B→conv 2; C→null 1
    # P(conv) = ½·½·1 + ¼·1 = ½
    # without A: start→A goes to null: P = ¼ → RE_A = 1 − ¼/½ = ½; without B: P = 0 → RE_B = 1; without C: ½ → 0
    # credit of 150: A = 150 · ½/1½ = 50, B = 150 · 1/1½ = 100, C = 0
    assert credit(out) == pytest.approx({"B": 100.0, "A": 50.0, "C": 0.0})
    assert list(out["channel"]) == ["B", "A", "C"]
    assert out["attributed_share"].tolist() == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert out.attrs["model"] == "markov" and out.attrs["unattributed"] == 0.0
    assert out.attrs["conversion_probability"] == pytest.approx(0.5)
    assert out.attrs["removal_effect"] == pytest.approx({"A": 0.5, "B": 1.0, "C": 0.0})
    assert list(out.columns) == ["channel", "attributed_amount", "attributed_share"]


def test_shapley_by_hand():
    # j1 {A, B} 100, j2 {B} 50, j3 {A, B, C} 90 (order and repeats do not matter), j4 {C} did not convert
    touches, conv = journeys({"j1": ["B", "A"], "j2": ["B", "B"], "j3": ["C", "A", "B"], "j4": ["C"]},
                             {"j1": 100.0, "j2": 50.0, "j3": 90.0})
    out = dd.shapley_attribution(touches, conv)
    # v(S) = Σ R(T ⊆ S): v(A) = v(C) = v(AC) = 0, v(B) = v(BC) = 50, v(AB) = 150, v(ABC) = 240
    # φ_A = ⅓(v(A) − 0) + ⅙(v(AB) − v(B)) + ⅙(v(AC) − v(C)) + ⅓(v(ABC) − v(BC)) = 0 + 100/6 + 0 + 190/3 = 80
    # φ_B = ⅓·50 + ⅙(150 − 0) + ⅙(50 − 0) + ⅓(240 − 0) = 50/3 + 25 + 25/3 + 80 = 130;  φ_C = 240 − 80 − 130 = 30
    # (= each journey's value split equally between its channels: A 50 + 30, B 50 + 50 + 30, C 30)
    assert credit(out) == pytest.approx({"B": 130.0, "A": 80.0, "C": 30.0})
    assert out.attrs["model"] == "shapley" and out["attributed_share"].sum() == pytest.approx(1.0)


def test_order_matters_for_markov_not_shapley():
    # j1 A → B → conversion (100), j2 B → A → null
    # transitions: start→A ½, start→B ½; A→B ½, A→null ½; B→conv ½, B→A ½
    # x_B = ½ + ½x_A, x_A = ½x_B → x_B = ⅔, x_A = ⅓; P(conv) = ½·⅓ + ½·⅔ = ½
    # without A: x_B = ½ → P = ¼, RE_A = ½; without B: P = 0, RE_B = 1 → A 100/3, B 200/3
    a_first = journeys({"j1": ["A", "B"], "j2": ["B", "A"]}, {"j1": 100.0})
    assert credit(dd.markov_attribution(*a_first)) == pytest.approx({"A": 100 / 3, "B": 200 / 3})
    # j1 B → A → conversion: start→B 1, B→A 1, A→conv ½, A→null ½; removing either leaves P = 0: 50/50
    b_first = journeys({"j1": ["B", "A"], "j2": ["B", "A"]}, {"j1": 100.0})
    assert credit(dd.markov_attribution(*b_first)) == pytest.approx({"A": 50.0, "B": 50.0})
    for fixture in (a_first, b_first):
        assert credit(dd.shapley_attribution(*fixture)) == pytest.approx({"A": 50.0, "B": 50.0})


def test_non_converting_journeys_matter_for_markov_not_shapley():
    # j1 A → B → conversion (100), j2 B → conversion (50)
    # start→A ½, start→B ½, A→B 1, B→conv 1: P = 1; without A: ½ → RE_A = ½; without B: 0 → RE_B = 1
    # credit of 150: A = 150 · ½/1½ = 50, B = 100
    touches, conv = journeys({"j1": ["A", "B"], "j2": ["B"]}, VALUES)
    assert credit(dd.markov_attribution(touches, conv)) == pytest.approx({"A": 50.0, "B": 100.0})
    # j3 B → null (did not convert): start→A ⅓, start→B ⅔, A→B 1, B→conv ⅔, B→null ⅓
    # P = ⅓·⅔ + ⅔·⅔ = ⅔; without A: ⅔·⅔ = 4/9 → RE_A = 1 − (4/9)/(⅔) = ⅓; without B: 0 → RE_B = 1
    # A = 150 · ⅓/(4/3) = 37.5, B = 112.5: the journey lost after B lowers what A leads to, and A loses credit
    touches, conv = journeys({"j1": ["A", "B"], "j2": ["B"], "j3": ["B"]}, VALUES)
    assert credit(dd.markov_attribution(touches, conv)) == pytest.approx({"A": 37.5, "B": 112.5})
    # Shapley only looks at converted journeys: j1 split 50/50, j2 to B, with or without j3
    assert credit(dd.shapley_attribution(touches, conv)) == pytest.approx({"A": 50.0, "B": 100.0})


def test_symmetric_channels_get_equal_credit():
    touches, conv = journeys({"j1": ["A", "B"], "j2": ["B", "A"], "j3": ["A"], "j4": ["B"]},
                             {"j1": 80.0, "j2": 80.0})
    for model in (dd.markov_attribution, dd.shapley_attribution):
        got = credit(model(touches, conv))
        assert got["A"] == pytest.approx(got["B"]) and sum(got.values()) == pytest.approx(160.0)


def test_channel_only_in_non_converting_journeys_gets_nothing():
    touches, conv = journeys(PATHS, VALUES)  # C appears only in j4, which did not convert
    out = dd.shapley_attribution(touches, conv)
    assert credit(out) == pytest.approx({"A": 50.0, "B": 100.0, "C": 0.0})
    assert out.set_index("channel").loc["C", "attributed_share"] == 0.0
    assert credit(dd.markov_attribution(touches, conv))["C"] == 0.0  # removing C changes no conversion either


def random_journeys(seed: int, n_journeys: int = 300, channels: str = "ABCDEF"):
    rng = np.random.default_rng(seed)
    paths = {f"j{i}": list(rng.choice(list(channels), size=rng.integers(1, 7))) for i in range(n_journeys)}
    values = {j: float(rng.integers(1, 1000)) for j in paths if rng.random() < 0.4}
    values["ghost"] = 77.0  # a conversion without a touch
    return journeys(paths, values)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_credits_sum_to_converted_value_with_a_touch(seed):
    touches, conv = random_journeys(seed)
    with_touch = conv[conv["journey_id"].isin(touches["journey_id"])]["value"].sum()
    for model in (dd.markov_attribution, dd.shapley_attribution):
        out = model(touches, conv)
        assert out["attributed_amount"].sum() == pytest.approx(with_touch)
        assert out["attributed_share"].sum() == pytest.approx(1.0)
        assert out.attrs["unattributed"] == 77.0
        assert (out["attributed_amount"] >= 0).all()
        # the same journeys converted with a touch as the rule-based models see
        assert out["attributed_amount"].sum() == pytest.approx(
            mk.attribute(touches, conv, "linear")["attributed_amount"].sum())


def markov_by_definition(touches: pd.DataFrame, conv: pd.DataFrame) -> dict[str, float]:
    """Per journey in plain Python: the collapsed path, the transition counts, then for each channel the chain
    rebuilt with that channel's incoming transitions sent to null and solved again."""
    ends = dict(zip(conv["journey_id"], conv["converted_at"], strict=True))
    counts: dict[tuple[str, str], int] = {}
    for j, group in touches.sort_values("occurred_at", kind="stable").groupby("journey_id"):
        path = [c for c, at in zip(group["channel"], group["occurred_at"], strict=True)
                if j not in ends or at < ends[j]]
        if not path:
            continue
        collapsed = [c for i, c in enumerate(path) if i == 0 or c != path[i - 1]]
        states = ["(start)", *collapsed, "(conversion)" if j in ends else "(null)"]
        for a, b in pairwise(states):
            counts[a, b] = counts.get((a, b), 0) + 1
    channels = sorted({a for a, _ in counts} - {"(start)"})

    def p_conversion(removed: str | None) -> float:
        transient = ["(start)", *[c for c in channels if c != removed]]
        index = {s: i for i, s in enumerate(transient)}
        m = np.eye(len(transient))
        r = np.zeros(len(transient))
        for s in transient:
            out = sum(n for (a, _), n in counts.items() if a == s)
            for (a, b), n in counts.items():
                if a == s and b in index:
                    m[index[s], index[b]] -= n / out
                elif a == s and b == "(conversion)":
                    r[index[s]] += n / out
        return float(np.linalg.solve(m, r)[0])

    base = p_conversion(None)
    effect = {c: 1 - p_conversion(c) / base for c in channels}
    total = sum(effect.values())
    value = conv[conv["journey_id"].isin(touches["journey_id"])]["value"].sum()
    return {c: value * e / total for c, e in effect.items()}


@pytest.mark.parametrize("seed", [3, 4])
def test_markov_equals_removal_by_definition(seed):
    touches, conv = random_journeys(seed, n_journeys=120)
    assert credit(dd.markov_attribution(touches, conv)) == pytest.approx(markov_by_definition(touches, conv))


def shapley_by_definition(touches: pd.DataFrame, conv: pd.DataFrame) -> dict[str, float]:
    """The Shapley formula over every coalition, in plain Python, v(S) = value of journeys whose set ⊆ S."""
    ends = dict(zip(conv["journey_id"], conv["converted_at"], strict=True))
    values = dict(zip(conv["journey_id"], conv["value"], strict=True))
    sets = {}
    for j, group in touches.groupby("journey_id"):
        if j in ends:
            sets[j] = frozenset(group.loc[group["occurred_at"] < ends[j], "channel"])
    players = sorted(set().union(*sets.values()))
    n = len(players)

    def v(coalition: frozenset) -> float:
        return sum(values[j] for j, s in sets.items() if s and s <= coalition)

    out = {}
    for p in players:
        others = [q for q in players if q != p]
        out[p] = sum(factorial(k) * factorial(n - k - 1) / factorial(n) * (v(frozenset(s) | {p}) - v(frozenset(s)))
                     for k in range(n) for s in combinations(others, k))
    return out


def test_shapley_equals_the_formula_and_the_equal_split():
    touches, conv = random_journeys(5, n_journeys=150, channels="ABCDE")
    got = credit(dd.shapley_attribution(touches, conv))
    got = {c: v for c, v in got.items() if v}
    assert got == pytest.approx(shapley_by_definition(touches, conv))
    # Zhao et al.'s simplification: each converted journey's value split equally between its distinct channels
    t = touches.merge(conv, on="journey_id")
    t = t[t["occurred_at"] < t["converted_at"]].drop_duplicates(["journey_id", "channel"])
    split = (t["value"] / t.groupby("journey_id")["channel"].transform("size")).groupby(t["channel"]).sum()
    assert got == pytest.approx(split.to_dict())


def test_degenerate_inputs():
    touches, conv = journeys(PATHS, VALUES)
    for model in (dd.markov_attribution, dd.shapley_attribution):
        # no touches: nothing to credit, everything unattributed — no row, not NaN shares
        empty = model(touches.iloc[:0], conv)
        assert empty.empty and list(empty.columns) == ["channel", "attributed_amount", "attributed_share"]
        assert empty.attrs["unattributed"] == 150.0
        # no conversion: touches of journeys that did not convert only
        none = model(touches, conv.iloc[:0])
        assert none.empty and none.attrs["unattributed"] == 0.0
        # one channel gets everything
        one = model(touches.assign(channel="email"), conv)
        assert one.to_dict("list") == {"channel": ["email"], "attributed_amount": [150.0], "attributed_share": [1.0]}
        # by another column: campaign_id, a missing value is "(unknown)"
        by_campaign = model(touches.assign(campaign_id=touches["channel"].where(touches["channel"] != "A")), conv,
                            by="campaign_id")
        assert set(by_campaign["campaign_id"]) == {"(unknown)", "B", "C"}


def test_bad_arguments_name_the_parameter():
    touches, conv = journeys(PATHS, VALUES)
    for model in (dd.markov_attribution, dd.shapley_attribution):
        with pytest.raises(ParameterError, match=r"by: touches has no column 'region'"):
            model(touches, conv, by="region")
        with pytest.raises(ParameterError, match=r"conversions: .*no column 'value'"):
            model(touches, conv.drop(columns="value"))
        with pytest.raises(ParameterError, match=r"touches: .*no column 'occurred_at'"):
            model(touches.drop(columns="occurred_at"), conv)
        with pytest.raises(ParameterError, match="touches: list is not allowed"):
            model([], conv)


def test_shapley_refuses_more_channels_than_its_limit():
    n = dd.MAX_SHAPLEY_CHANNELS + 1
    paths = {f"j{i}": [f"ch{i:02d}"] for i in range(n)}
    touches, conv = journeys(paths, dict.fromkeys(paths, 10.0))
    with pytest.raises(ParameterError, match=rf"by: 'channel' has {n} values.*at most {n - 1}"):
        dd.shapley_attribution(touches, conv)
    # channels only in journeys that did not convert are no players: they do not count towards the limit
    touches, conv = journeys(paths, {"j0": 10.0})
    assert credit(dd.shapley_attribution(touches, conv))["ch00"] == 10.0
    assert dd.markov_attribution(touches, conv)["attributed_amount"].sum() == pytest.approx(10.0)


def test_row_order_and_time_zone_do_not_change_the_result():
    touches, conv = random_journeys(6, n_journeys=80)
    before = touches.copy(), conv.copy()
    shuffled = touches.sample(frac=1.0, random_state=1)
    aware = touches.assign(occurred_at=touches["occurred_at"].dt.tz_localize("UTC"))
    aware_conv = conv.assign(converted_at=conv["converted_at"].dt.tz_localize("UTC"))
    for model in (dd.markov_attribution, dd.shapley_attribution):
        expected = credit(model(touches, conv))
        assert credit(model(shuffled, conv)) == pytest.approx(expected)
        assert credit(model(aware, aware_conv)) == pytest.approx(expected)
    assert touches.equals(before[0]) and conv.equals(before[1]), "the caller's frames are not changed"
