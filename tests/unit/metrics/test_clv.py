"""Customer lifetime value and credits: the RFM-T summary, the naive baseline and the netting of credits on
hand-computed fixtures (numbers worked out in the comments), the failure modes (no model is fitted: fast), and
one small model fit (pymc-marketing, MAP) for determinism and the shape of the results."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest

from crmlens.errors import SchemaError
from crmlens.kpis import KpiContext
from crmlens.metrics import clv
from crmlens.metrics import customers as cu

T = pd.Timestamp
CUT = T("2026-02-10")


def _purchases(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["account_id", "signed_at", "amount"])
    frame["signed_at"] = pd.to_datetime(frame["signed_at"]).astype("datetime64[us]")
    return cu.purchases_of(frame)


def purchases() -> pd.DataFrame:
    return _purchases([
        ("A", "2026-01-01 10:00", 100.0), ("A", "2026-01-01 15:00", 50.0),  # one purchase day: 150
        ("A", "2026-01-11 09:00", 200.0), ("A", "2026-01-31 12:00", 100.0),  # repeat purchases: 200, 100
        ("B", "2026-01-21 08:00", 80.0),                                     # one purchase only
        ("C", "2026-02-15 08:00", 70.0),                                     # after the cut-off: not a customer yet
    ])


def credits() -> pd.DataFrame:
    frame = pd.DataFrame({"account_id": ["A", "A", "Z"],
                          "credited_at": pd.to_datetime(["2026-02-01", "2026-03-01", "2026-01-05"]),
                          "amount": [-45.0, 10.0, 5.0]})  # a source may sign a credit negative: its size counts
    return cu.credits_of(frame)


# --------------------------------------------------------------------------------------- summary, baseline

def test_rfm_t_summary_by_hand() -> None:
    s = clv.rfm_t_summary(purchases(), CUT, credits()).set_index("account_id")
    assert list(s.index) == ["A", "B"]
    a, b = s.loc["A"], s.loc["B"]
    # A: purchase days 01-01, 01-11, 01-31 → 3 purchases, 2 repeats; 30 days first → last; 40 days to the cut-off
    assert (a["n_purchases"], a["frequency"], a["first_to_last_days"], a["age_days"]) == (3, 2, 30.0, 40.0)
    assert a["spend_amount"] == pytest.approx((200 + 100) / 2)  # the first purchase day is not a repeat
    assert a["gross_revenue_amount"] == pytest.approx(450.0)
    # the credit of 02-01 (45) is before the cut-off, the one of 03-01 after: net 405, 90% kept
    assert (a["n_credits"], a["credit_amount"], a["net_revenue_amount"]) == (1, 45.0, 405.0)
    assert a["net_share"] == pytest.approx(0.9)
    # B: one purchase on 01-21, 20 days before the cut-off; no repeat, so no mean repeat amount
    assert (b["n_purchases"], b["frequency"], b["first_to_last_days"], b["age_days"]) == (1, 0, 0.0, 20.0)
    assert np.isnan(b["spend_amount"]) and b["net_share"] == 1.0 and b["credit_amount"] == 0.0


def test_baseline_repeats_each_customers_past_rate() -> None:
    s = clv.rfm_t_summary(purchases(), CUT)
    got = clv.baseline_purchases(s, 91).to_numpy()
    assert got == pytest.approx([2 / 40 * 91, 0.0])  # A: 2 repeats in 40 days → 4.55 in 91; B: no repeat


# ----------------------------------------------------------------------------------------------- credits

def test_credits_of_keeps_the_size_and_drops_rows_without_account_or_time() -> None:
    frame = pd.DataFrame({"account_id": ["A", None, "B"],
                          "credited_at": pd.to_datetime(["2026-01-02", "2026-01-03", None]),
                          "amount": [-12.5, 3.0, 4.0]})
    got = cu.credits_of(frame)
    assert got[["account_id", "amount"]].values.tolist() == [["A", 12.5]]
    with pytest.raises(SchemaError, match="credited_at"):
        cu.credits_of(frame.drop(columns="credited_at"))


def test_net_revenue_nets_credits_and_counts_them_apart() -> None:
    net = cu.net_revenue(purchases(), credits(), None, CUT).set_index("account_id")
    # A: 450 bought, 45 credited; B: 80 bought; Z: credited 5 without buying in reach (shown, net −5)
    assert net.loc["A", ["n_purchases", "gross_revenue_amount", "n_credits", "credit_amount",
                         "net_revenue_amount"]].tolist() == [3 + 1, 450.0, 1, 45.0, 405.0]
    assert net.loc["B", "net_revenue_amount"] == 80.0
    assert net.loc["Z", ["n_purchases", "net_revenue_amount"]].tolist() == [0, -5.0]


CTX = KpiContext(period_start=T("2026-01-01"), period_end=T("2026-02-10"), region="all", period_label="x")


def _accounts() -> pd.DataFrame:
    return pd.DataFrame({"account_id": ["A", "B", "C", "Z"], "name": ["Alpha", "Beta", "Gamma", "Zed"],
                         "region_id": ["R1"] * 4}).astype("string")


def test_rfm_monetary_is_net_of_credits_and_credits_are_not_purchases() -> None:
    plain = cu.rfm(_accounts(), purchases(), CTX).set_index("account_id")
    net = cu.rfm(_accounts(), purchases(), CTX, credits=credits()).set_index("account_id")
    assert plain.loc["A", "monetary_amount"] == 450.0 and net.loc["A", "monetary_amount"] == 405.0
    assert net.loc["A", "frequency"] == plain.loc["A", "frequency"] == 4  # orders, credits not counted
    assert "Z" not in net.index  # credited but never bought: not a customer


def test_credit_summary_and_its_finding() -> None:
    got = cu.credit_summary(_accounts(), purchases(), CTX, credits=credits(), window_days=365)
    row = got.iloc[0]
    # before 02-10: A 450 + B 80 gross; credits A 45 and Z 5 (Z is an account of the region)
    assert (row["n_credits"], row["n_credited_customers"], row["credit_amount"]) == (2, 2, 50.0)
    assert row["gross_revenue_amount"] == 530.0 and row["credit_share"] == pytest.approx(50 / 530)
    found = cu.describe_credits(got)
    assert found.severity == "watch" and "2 credit notes" in found.text and "9.4%" in found.text
    quiet = cu.credit_summary(_accounts(), purchases(), CTX, credits=credits().iloc[0:0], window_days=90)
    assert quiet.iloc[0]["n_credits"] == 0
    assert cu.describe_credits(quiet).text == "No return, refund or cancellation was recorded in the last 90 days."
    none = cu.credit_summary(_accounts(), purchases(), CTX, credits=None)
    assert np.isnan(none.iloc[0]["n_credits"])
    assert "records no returns" in cu.describe_credits(none).text


# ------------------------------------------------------------------------------------------ failure modes

def test_no_purchases_one_customer_no_repeat_buyers_give_a_status_not_a_crash() -> None:
    empty = purchases().iloc[0:0]
    got = clv.predict_value(empty, CUT)
    assert got.empty and got.attrs["status"] == "no_purchases"
    assert "no purchase history" in clv.describe_customer_value(got).text

    one = clv.predict_value(purchases(), CUT)  # A and B: 2 customers
    assert one.attrs["status"] == "too_few_customers" and one["predicted_value_amount"].isna().all()
    assert "Only 2 customers" in clv.describe_customer_value(one).text

    days = pd.date_range("2025-11-01", periods=60, freq="D").strftime("%Y-%m-%d")
    singles = _purchases([(f"S{i:02d}", day, 10.0) for i, day in enumerate(days)])
    got = clv.predict_value(singles, CUT)
    assert got.attrs["status"] == "no_repeat_buyers" and len(got) == 60
    assert "Only 0 of 60 customers bought more than once" in clv.describe_customer_value(got).text
    check = clv.holdout_check(singles, CUT)
    assert check.empty and check.attrs["status"] == "no_repeat_buyers"
    assert clv.describe_holdout(check).severity == "info"
    assert clv.top_customers(got).empty


def test_describe_holdout_says_whether_the_model_beats_the_baseline() -> None:
    def frame(model: float, baseline: float) -> pd.DataFrame:
        out = pd.DataFrame({"method": ["model", "baseline"], "method_name": ["m", "b"], "mae": [model, baseline],
                            "rmse": [1.0, 1.0], "predicted_total": [5.0, 5.0], "actual_total": [6.0, 6.0]})
        out.attrs.update(status="ok", holdout_days=91, n_customers=40)
        return out

    better = clv.describe_holdout(frame(0.5, 0.8))
    assert better.severity == "good" and "0.500" in better.text and "0.800" in better.text
    assert "38% less error" in better.text  # (0.8 − 0.5) ÷ 0.8
    barely = clv.describe_holdout(frame(0.917, 0.919))  # UCI's figures: better, but by 0.2%
    assert barely.severity == "info" and "barely better than 0.919" in barely.text and "less error" not in barely.text
    worse = clv.describe_holdout(frame(0.9, 0.8))
    assert worse.severity == "watch" and "no better than" in worse.text
    assert "model MAE 0.500" in clv.holdout_note(frame(0.5, 0.8))


def test_importing_the_module_does_not_import_pymc() -> None:
    code = "import sys, crmlens.metrics.clv; print('pymc_marketing' in sys.modules or 'pytensor' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------------- one small model fit

def _history() -> pd.DataFrame:
    """60 customers over 2025: each buys every `gap` days from its start until it stops (deterministic)."""
    rows = []
    for i in range(60):
        start = T("2025-01-01") + pd.Timedelta(days=3 * i)
        gap, stop = 20 + (i % 7) * 10, T("2025-06-01") + pd.Timedelta(days=(i % 5) * 60)
        t, k = start, 0
        while t < stop and t < T("2026-01-01"):
            rows.append((f"C{i:02d}", str(t), 50.0 + 10 * (i % 4) + k))
            t, k = t + pd.Timedelta(days=gap), k + 1
    return _purchases(rows)


@pytest.fixture(scope="module")
def fitted() -> pd.DataFrame:
    return clv.predict_value(_history(), T("2026-01-01"), seed=7)


def test_a_small_fit_is_deterministic_and_consistent(fitted) -> None:
    assert fitted.attrs["status"] == "ok" and fitted.attrs["n_customers"] == len(fitted) >= 55
    clv.prepare()  # notebook 04's warm-up of its second process changes no result
    again = clv.predict_value(_history(), T("2026-01-01"), seed=7)
    pd.testing.assert_frame_equal(fitted, again)  # same data, same seed: same numbers
    product = fitted["expected_purchases"] * fitted["expected_spend_amount"] * fitted["net_share"]
    assert fitted["predicted_value_amount"].to_numpy() == pytest.approx(product.to_numpy())
    assert fitted["predicted_value_amount"].is_monotonic_decreasing
    assert ((fitted["probability_alive"] >= 0) & (fitted["probability_alive"] <= 1)).all()
    assert (fitted["expected_purchases"] > 0).all()  # every customer gets a prediction


def test_value_by_segment_and_top_customers(fitted) -> None:
    accounts = pd.DataFrame({"account_id": [f"C{i:02d}" for i in range(60)],
                             "industry": ["Tech" if i % 2 else None for i in range(60)]}).astype("string")
    by = clv.value_by_segment(accounts, fitted, "industry")
    assert set(by["segment"]) == {"Tech", "(unknown)"} and by["n_customers"].sum() == len(fitted)
    assert by["predicted_value_amount"].sum() == pytest.approx(fitted["predicted_value_amount"].sum())
    assert by["predicted_share"].sum() == pytest.approx(1.0)
    top = clv.top_customers(fitted, n=5)
    assert list(top["account_id"]) == list(fitted["account_id"].head(5))


def test_holdout_check_compares_model_and_baseline_on_the_same_customers() -> None:
    check = clv.holdout_check(_history(), T("2025-10-01"), holdout_days=91, seed=7)
    assert list(check["method"]) == ["model", "baseline"]
    per = check.attrs["per_customer"]
    assert check.loc[0, "actual_total"] == per["actual"].sum() == check.loc[1, "actual_total"]
    assert check.loc[1, "mae"] == pytest.approx(np.mean(np.abs(per["baseline"] - per["actual"])))
    assert check.loc[0, "mae"] == pytest.approx(np.mean(np.abs(per["model_median"] - per["actual"])))


def test_simulated_purchases_average_to_the_models_expected_purchases() -> None:
    summary = clv.rfm_t_summary(_history(), T("2025-10-01"))
    fit = clv.fit_models(summary, seed=7, spend=False)
    draws = clv.simulate_purchases(fit, summary, 91, n_draws=2000, seed=7)
    assert draws.shape == (2000, len(summary)) and (draws >= 0).all() and (draws == draws.round()).all()
    expected = clv._expected_purchases(fit, summary, 91)
    assert draws.mean(axis=0).sum() == pytest.approx(expected.sum(), rel=0.03)
    assert draws.mean(axis=0) == pytest.approx(expected, abs=0.15)
    again = clv.simulate_purchases(fit, summary, 91, n_draws=2000, seed=7)
    assert (draws == again).all()  # the seed fixes the draws


def test_the_one_compile_map_is_pymcs_find_map() -> None:
    """`clv._map_point` (one pytensor function) finds what `pymc.find_MAP` (five) finds, from the same start."""
    import pymc as pm

    module = clv._clv_module()
    summary = clv.rfm_t_summary(_history(), T("2026-01-01"))
    data = pd.DataFrame({"customer_id": np.arange(len(summary)), "frequency": summary["frequency"].astype(float),
                         "recency": summary["first_to_last_days"].astype(float),
                         "T": summary["age_days"].astype(float)})
    model = module.BetaGeoModel()
    model.build_model(data)
    with clv._quiet():
        ours = clv._map_point(model=model.model, seed=7)
        theirs = pm.find_MAP(model=model.model, seed=7, progressbar=False)
    assert set(ours) == set(theirs)
    for name, value in theirs.items():
        assert np.asarray(ours[name]) == pytest.approx(np.asarray(value), rel=1e-3, abs=1e-6), name


def _bg_model(summary: pd.DataFrame) -> Any:
    data = pd.DataFrame({"customer_id": np.arange(len(summary)), "frequency": summary["frequency"].astype(float),
                         "recency": summary["first_to_last_days"].astype(float),
                         "T": summary["age_days"].astype(float)})
    model = clv._clv_module().BetaGeoModel()
    model.build_model(data)
    return model.model


def test_a_model_of_the_same_kind_on_other_customers_reuses_the_compiled_function() -> None:
    """`_map_point` compiles a model's function once per process: a BG/NBD model of other customers (another
    region, another cut-off, another number of customers) reuses it with its own data, and finds what a fresh
    compile and `pymc.find_MAP` find; a model of another kind gets a function of its own."""
    import pymc as pm

    history = _history()
    one = clv.rfm_t_summary(history, T("2026-01-01"))
    other = clv.rfm_t_summary(history[history["account_id"] >= "C10"], T("2025-10-01"))  # fewer customers
    assert len(other) < len(one)
    with clv._quiet():
        clv._COMPILED.clear()
        clv._map_point(model=_bg_model(one), seed=7)
        assert len(clv._COMPILED) == 1
        compiled = next(iter(clv._COMPILED.values()))
        reused = clv._map_point(model=_bg_model(other), seed=7)
        assert len(clv._COMPILED) == 1 and next(iter(clv._COMPILED.values())) is compiled
        clv._COMPILED.clear()
        fresh = clv._map_point(model=_bg_model(other), seed=7)
        theirs = pm.find_MAP(model=_bg_model(other), seed=7, progressbar=False)
        spenders = one[one["frequency"] > 0]
        gg = clv._clv_module().GammaGammaModel()
        gg.build_model(pd.DataFrame({"customer_id": np.arange(len(spenders)),
                                     "frequency": spenders["frequency"].astype(float),
                                     "monetary_value": spenders["spend_amount"].astype(float)}))
        clv._map_point(model=gg.model, seed=7)
    assert len(clv._COMPILED) == 2  # another kind of model, another function
    assert set(reused) == set(fresh) == set(theirs)
    for name, value in fresh.items():
        np.testing.assert_array_equal(reused[name], value)  # reused or compiled anew: the same numbers
        assert np.asarray(value) == pytest.approx(np.asarray(theirs[name]), rel=1e-3, abs=1e-6), name


def test_a_shared_compiled_function_runs_one_fit_at_a_time() -> None:
    """A pytensor function holds its inputs' and outputs' storage: while one fit uses the shared function,
    a fit of the same kind in another thread waits for it, then gets its own numbers."""
    import threading

    history = _history()
    one = clv.rfm_t_summary(history, T("2026-01-01"))
    other = clv.rfm_t_summary(history[history["account_id"] >= "C10"], T("2025-10-01"))
    with clv._quiet():
        clv._COMPILED.clear()
        clv._map_point(model=_bg_model(one), seed=7)
        alone = clv._map_point(model=_bg_model(other), seed=7)
        (_fn, in_use), = clv._COMPILED.values()
        got: dict[str, Any] = {}
        with in_use:  # as if a fit in another thread were running on it
            thread = threading.Thread(target=lambda: got.update(clv._map_point(model=_bg_model(other), seed=7)))
            thread.start()
            thread.join(timeout=3)
            assert thread.is_alive() and not got  # waiting for the function
        thread.join(timeout=60)
    assert not thread.is_alive() and set(got) == set(alone)
    for name, value in alone.items():
        np.testing.assert_array_equal(got[name], value)
