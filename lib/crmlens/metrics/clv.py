"""Customer lifetime value (CLV, 客户终身价值): what each customer has been worth (net revenue to date) and what
it is expected to be worth over the next 12 months, per customer and per segment, with a holdout check of the
model against a naive baseline.

**Summary of a purchase history (RFM-T)**, in days (the model's time unit), at a cut-off time:
purchases of the same customer on the same calendar day are one purchase (`rfm_t_summary`);
``n_purchases`` purchase days; ``frequency`` repeat purchases (n_purchases − 1); ``recency_days`` days from the
first to the last purchase day; ``age_days`` (the models' *T*) days from the first purchase day to the cut-off;
``spend_amount`` the mean amount of the repeat purchases (missing without a repeat purchase).

**Predicted value** (`predict_value`): expected purchases in the horizon × expected amount per purchase ×
the customer's net share (what it kept of what it bought, after credits: returns, refunds, cancellations).

* Purchases: the **BG/NBD** model (Fader, Hardie & Lee 2005), `pymc_marketing.clv.BetaGeoModel`. Assumptions:
  while alive, a customer buys at a constant rate λ (purchases are a Poisson process); λ varies across
  customers as a Gamma distribution; after each purchase the customer drops out ("dies") for good with
  probability p, p varies across customers as a Beta distribution; λ and p are independent. Purchase
  timing says nothing else about a customer (no seasonality, no contract terms, no covariates). A customer
  with a single purchase still gets a prediction: the population's rates, weighted by how long it has been
  silent (its age).
* Amount per purchase: the **Gamma-Gamma** model (Fader & Hardie 2013), `GammaGammaModel`, fitted on the
  customers with repeat purchases of positive amount. Assumptions: a customer's purchase amounts vary around
  its own mean, which is Gamma distributed across customers, and is independent of how often it buys. A
  customer without repeat purchases gets the population mean.
* Credits: future credits are assumed to be the customer's past share of its gross revenue.

Both models are fitted by maximum a posteriori (MAP) with an explicit seed: the same data give the same numbers;
full MCMC sampling takes minutes, MAP about a second once compiled (see `bench/bench_clv.py`). The MAP is
pymc's `find_MAP` (same start point, same L-BFGS-B optimiser on the same log density without Jacobian) with two
differences: the log density, its gradient and the model's values are compiled as **one** pytensor function,
where `find_MAP` compiles five (a start-value check, the density, the gradient, the values, the start point),
and that function takes the customers' data as inputs, so the next model of the same kind in the process (another
region, the holdout's cut-off) reuses it: pytensor's graph rewriting is most of a fit's time (`_map_point`,
`_COMPILED`; tested equal to `find_MAP` and to a fresh compile; `bench/bench_clv.py`, 2026-12-02: both models
0.82 s warm instead of 1.55 s). pymc-marketing (and pytensor, which compiles the models once per machine into its
cache, see `PYTENSOR_CACHE`) is imported only when a model is fitted: ``import crmlens.metrics.clv`` costs nothing.
Notebook 04 fits both (the values and the holdout check) in a second process when a core is free
(`crmlens.analysis.in_background`), started with the kernel and warmed while the slice opens (`prepare`), so the
fits run while the other sections do.

**Holdout check** (`holdout_check`): fit on the purchases before a cut-off, predict each customer's purchases
(purchase days) in the `holdout_days` after it, compare with what it did; the **naive baseline** repeats each
customer's past rate: its repeat purchases ÷ its age, times the holdout days.

Failure modes give a status and a message, not an exception: no purchase (``no_purchases``), fewer than
`MIN_CUSTOMERS` customers (``too_few_customers``), fewer than `MIN_REPEAT_BUYERS` customers who bought twice
(``no_repeat_buyers``) — the models cannot tell purchase rates from dropout without repeat buyers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crmlens.analysis import on_slice
from crmlens.errors import ParameterError, SchemaError
from crmlens.findings import Finding, finding
from crmlens.i18n import N_, _, n_, sentences
from crmlens.kpis import KpiContext
from crmlens.metrics import customers as _customers  # noqa: F401  (registers the shared columns)
from crmlens.metrics.common import UNKNOWN, check_choice, isin, reference_time, region_accounts
from crmlens.metrics.common import fmt as _fmt
from crmlens.metrics.common import shown as _shown
from crmlens.present import register_columns

#: The predicted value covers the next 365 days (12 months).
HORIZON_DAYS = 365
#: The holdout check predicts the purchases of the 3 months (91 days) after its cut-off.
HOLDOUT_DAYS = 91
#: Seed of the MAP fits (the optimiser's start); the same data and seed give the same numbers.
SEED = 20261201
#: Fewer customers than this: no model is fitted (four parameters of purchase and dropout rates learnt from a few
#: dozen customers are noise, and the holdout check on them says nothing; the section says so instead).
MIN_CUSTOMERS = 50
#: Fewer customers with a repeat purchase than this: no model is fitted.
MIN_REPEAT_BUYERS = 5
#: The model "clearly" beats the baseline when its MAE is this much (relative) lower.
MIN_HOLDOUT_GAIN = 0.05
#: The share of customers (by predicted value) whose share of the predicted value the findings name.
TOP_SHARE = 0.1
#: Draws per customer of the model's predictive distribution (`simulate_purchases`), in chunks of customers.
N_DRAWS = 200
_CHUNK = 20_000
STATUSES = ("ok", "no_purchases", "too_few_customers", "no_repeat_buyers")
METHODS = {"model": N_("BG/NBD model"), "baseline": N_("Naive baseline (past rate repeated)")}
SEGMENTS = ("industry", "size_band", "region_id", "level", "source_channel", "country", "rfm_tier", "value_tier")
_DAY = pd.Timedelta(days=1)

register_columns({
    "n_purchases": (N_("Purchases"), "count"),
    "first_to_last_days": (N_("Days from the first to the last purchase"), "days"),
    "age_days": (N_("Days since the first purchase"), "days"),
    "spend_amount": (N_("Mean repeat purchase"), "amount"),
    "net_share": (N_("Net share kept"), "share"),
    "expected_purchases": (N_("Expected purchases (12 months)"), "number"),
    "probability_alive": (N_("Probability still a customer"), "share"),
    "expected_spend_amount": (N_("Expected amount per purchase"), "amount"),
    "predicted_value_amount": (N_("Predicted value (12 months)"), "amount"),
    "predicted_per_customer": (N_("Predicted value per customer"), "amount"),
    "predicted_share": (N_("Share of predicted value"), "share"),
    "method": (N_("Method"), "text"),
    "method_name": (N_("Method"), "text"),
    "mae": (N_("Mean absolute error (purchases)"), "number"),
    "rmse": (N_("Root mean squared error (purchases)"), "number"),
    "predicted_total": (N_("Predicted purchases"), "number"),
    "actual_total": (N_("Actual purchases"), "count"),
})


#: The reader's message of each failure status.
STATUS_TEXT = {
    "no_purchases": N_("No customer bought before the cut-off: there is no purchase history to model."),
    "too_few_customers": N_("Only {n} customers bought before the cut-off: too few to fit a lifetime value "
                            "model (at least {min} are needed)."),
    "no_repeat_buyers": N_("Only {n_repeat} of {n} customers bought more than once: without repeat buyers the "
                           "model cannot tell how often customers buy from how soon they leave (at least {min} "
                           "are needed)."),
}


def status_message(status: str, n: int = 0, n_repeat: int = 0) -> str:
    """The reader's sentence for a failure `status` (empty for "ok")."""
    if status == "ok":
        return ""
    check_choice("status", status, STATUSES)
    minimum = MIN_REPEAT_BUYERS if status == "no_repeat_buyers" else MIN_CUSTOMERS
    return _(STATUS_TEXT[status], n=_fmt(n, "count"), n_repeat=_fmt(n_repeat, "count"),
             min=_fmt(minimum, "count"))


# ------------------------------------------------------------------------------------------------ summary

def _check_days(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParameterError(f"{name}: {value!r} is not allowed; use a whole number of days ≥ 1")
    return value


def _credits_by_account(credits: pd.DataFrame | None, until: pd.Timestamp) -> pd.DataFrame:
    """Per account (index): n_credits and credit_amount of the credits before `until`."""
    if credits is None or credits.empty:
        return pd.DataFrame({"n_credits": pd.Series(dtype="int64"), "credit_amount": pd.Series(dtype="float64")})
    missing = [c for c in ("account_id", "credited_at", "amount") if c not in credits.columns]
    if missing:
        raise SchemaError(f"credits: column(s) {', '.join(missing)} needed for net revenue are missing")
    before = credits[credits["credited_at"] < until]
    grouped = before.groupby(before["account_id"].astype("string"), sort=True)
    return pd.DataFrame({"n_credits": grouped.size().astype("int64"),
                         "credit_amount": grouped["amount"].sum().astype("float64")})


def rfm_t_summary(purchases: pd.DataFrame, until: pd.Timestamp, credits: pd.DataFrame | None = None
                  ) -> pd.DataFrame:
    """The RFM-T summary of every customer who bought before `until` (see the module doc): account_id,
    n_purchases, frequency, first_to_last_days, age_days, spend_amount, gross_revenue_amount, n_credits,
    credit_amount, net_revenue_amount (gross − credits before `until`), net_share (net ÷ gross, clipped to
    0–1; 1 without gross revenue). `purchases` is a `crmlens.metrics.customers.purchases_of` frame;
    `credits` a `crmlens.metrics.customers.credits_of` frame (credits of customers who never bought are left
    out). Ordered by account_id."""
    until = pd.Timestamp(until)
    bought = purchases[purchases["purchased_at"] < until]
    days = pd.DataFrame({"account_id": bought["account_id"].astype("string").to_numpy(),
                         "day": bought["purchased_at"].dt.floor("D").to_numpy(),
                         "amount": bought["amount"].astype("float64").to_numpy()})
    days = days.groupby(["account_id", "day"], sort=True, as_index=False)["amount"].sum()
    grouped = days.groupby("account_id", sort=True)
    first, last = grouped["day"].min(), grouped["day"].max()
    n = grouped.size().astype("int64")
    gross = grouped["amount"].sum().astype("float64")
    first_amount = grouped["amount"].first().astype("float64")
    out = pd.DataFrame({"n_purchases": n, "frequency": n - 1,
                        "first_to_last_days": (last - first) / _DAY, "age_days": (until - first) / _DAY,
                        "spend_amount": ((gross - first_amount) / (n - 1)).where(n > 1),
                        "gross_revenue_amount": gross})
    out.index = out.index.astype("string")
    creds = _credits_by_account(credits, until).reindex(out.index)
    out["n_credits"] = creds["n_credits"].fillna(0).astype("int64")
    out["credit_amount"] = creds["credit_amount"].fillna(0.0).astype("float64")
    out["net_revenue_amount"] = out["gross_revenue_amount"] - out["credit_amount"]
    share = (out["net_revenue_amount"] / out["gross_revenue_amount"]).where(out["gross_revenue_amount"] > 0, 1.0)
    out["net_share"] = share.clip(0.0, 1.0).astype("float64")
    out = out.rename_axis("account_id").reset_index()
    out["account_id"] = out["account_id"].astype("string")
    return out


def baseline_purchases(summary: pd.DataFrame, days: float) -> pd.Series:
    """The naive forecast of each customer's purchases in the next `days`: its past rate repeated — repeat
    purchases ÷ age in days × `days` (0 for a customer with one purchase)."""
    return (summary["frequency"] / summary["age_days"].where(summary["age_days"] > 0) * days).fillna(0.0)


# ------------------------------------------------------------------------------------------------- models

@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """pytensor's and pymc's noise kept out of notebooks and reports: the "could not link to a BLAS" warning
    (pytensor then uses NumPy's C-API implementation: slower matrix products, same numbers; the CLV models
    barely use them), deprecation warnings of their dependencies and their INFO logging."""
    loggers = [logging.getLogger(name) for name in ("pytensor", "pymc", "pymc_marketing")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"PyTensor could not link to a BLAS", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*fit_data.*", category=UserWarning)
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


#: pytensor's compile cache for CRM Lens alone (unless the user's PYTENSOR_FLAGS name one): pytensor reads every
#: cached module's key when a process first compiles, so a cache shared with other projects' models slows each
#: kernel's first fit (measured: 5.3 s with the 336 modules of a shared ~/.pytensor, 3.9 s with the 42 of ours).
#: Per user, not per clone: the first compile ever takes ~30 s.
PYTENSOR_CACHE = Path.home() / ".cache" / "crmlens" / "pytensor"


def _use_own_compile_cache() -> None:
    if "pytensor" in sys.modules:  # too late: the flags are read at import
        return
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "base_compiledir" not in flags and "compiledir" not in flags:
        os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, f"base_compiledir={PYTENSOR_CACHE}") if f)


def _clv_module() -> Any:
    """pymc_marketing.clv, imported on first use (~3–4 s), with CRM Lens's own pytensor compile cache."""
    _use_own_compile_cache()
    with _quiet():
        from pymc_marketing import clv

    return clv


#: `_map_point`'s compiled functions in this process, by the structure of the model's graph with its data lifted
#: to inputs (`_lifted`): a model of the same kind on other customers (another region, the holdout's cut-off)
#: reuses the function instead of compiling it again (pytensor's graph rewriting, ~0.2–1 s a fit). Each comes with
#: a lock: a pytensor function holds its inputs' and outputs' storage, so two threads must not run it at once.
_COMPILED: dict[str, tuple[Any, threading.Lock]] = {}
_COMPILED_LOCK = threading.Lock()
_COMPILED_MAX = 16


def _lifted(outputs: list[Any]) -> tuple[list[Any], list[Any], list[Any], str]:
    """The graph `outputs` with its data lifted to inputs: every constant array (the customers' observations)
    and every integer constant that is one of their lengths (pymc writes the number of customers into the
    graph) becomes an input of its own. Returns the new outputs, the new inputs, their values (this model's
    constants, in the same order) and the key: the new graph printed with types and static shapes, so two
    models share a key only when they compute the same function of their data."""
    import pytensor.tensor as pt
    from pytensor.graph.basic import ancestors
    from pytensor.graph.replace import clone_replace
    from pytensor.printing import debugprint
    from pytensor.tensor.variable import TensorConstant

    constants = list(dict.fromkeys(v for v in ancestors(outputs) if isinstance(v, TensorConstant)))
    arrays = [c for c in constants if c.ndim >= 1 and c.data.size > 1]
    lengths = {int(n) for c in arrays for n in c.data.shape if n > 1}
    counts = [c for c in constants if c.ndim == 0 and c.dtype.startswith(("int", "uint")) and int(c.data) in lengths]
    lifted = {c: c.type.clone(shape=(None,) * c.ndim)(name=f"data_{i}") for i, c in enumerate(arrays)}
    lifted.update({c: pt.scalar(f"length_{i}", dtype="int64") for i, c in enumerate(counts)})
    # not strict: each node is made again from its new inputs, so no static shape of this model's data remains
    new_outputs = clone_replace(outputs, replace=lifted, rebuild_strict=False)
    values = [c.data for c in arrays] + [np.int64(c.data) for c in counts]
    key = debugprint(new_outputs, file="str", print_type=True, print_shape=True)
    return new_outputs, list(lifted.values()), values, key


def _map_point(model: Any = None, *, seed: int | None = None, maxeval: int = 5000, **_: Any) -> dict[str, Any]:
    """pymc's `find_MAP` for `model` (called as pymc-marketing calls it: ``model=``, ``seed=``, ``progressbar=``),
    compiled once: the log density without Jacobian, its gradient and every unobserved value (transformed and
    deterministic) are outputs of one pytensor function, with the model's data as inputs, kept for the next
    model of the same kind in this process (`_COMPILED`). Same start point (the model's initial point for
    `seed`), same optimiser (scipy's L-BFGS-B with the gradient, at most `maxeval` evaluations), same result (a
    dict: value name → value; equal to `find_MAP`'s to ~1e-7, the data not folded into the compiled graph).
    A start point whose density is not finite is an error, as in `find_MAP`."""
    import pymc as pm
    import pytensor
    from pymc.blocking import DictToArrayBijection
    from pymc.initial_point import make_initial_point_fn
    from pymc.util import get_default_varnames
    from scipy.optimize import minimize

    model = pm.modelcontext(model)
    value_vars = model.continuous_value_vars
    start = make_initial_point_fn(model=model, jitter_rvs=set(), return_transformed=True)(seed)
    x0 = DictToArrayBijection.map({v.name: start[v.name] for v in value_vars})
    logp = model.logp(jacobian=False)
    unobserved = get_default_varnames(model.unobserved_value_vars, include_transformed=True)
    outputs, data_inputs, data, key = _lifted([logp, *pytensor.grad(logp, value_vars), *unobserved])
    key = f"check_bounds={model.check_bounds}\n{key}"  # pymc compiles the parameter checks by this flag
    with _COMPILED_LOCK:
        compiled = _COMPILED.get(key)
    if compiled is None:
        from pymc.pytensorf import compile as compile_pymc

        with model:  # as `model.compile_fn` does: pymc's rewrites (a parameter out of bounds gives -inf)
            fn = compile_pymc([*value_vars, *data_inputs], outputs, allow_input_downcast=True, accept_inplace=True,
                              on_unused_input="ignore")
        with _COMPILED_LOCK:
            compiled = _COMPILED.setdefault(key, (fn, threading.Lock()))
            while len(_COMPILED) > _COMPILED_MAX:
                _COMPILED.pop(next(iter(_COMPILED)))
    fn, in_use = compiled
    pieces, lo = [], 0
    for _name, shape, size, dtype in x0.point_map_info:
        pieces.append((slice(lo, lo + size), shape, dtype))
        lo += size
    n_vars = len(value_vars)

    def run(x: np.ndarray) -> list[Any]:
        return fn(*[x[sl].reshape(shape).astype(dtype) for sl, shape, dtype in pieces], *data)

    def cost(x: np.ndarray) -> tuple[float, np.ndarray]:
        out = run(x)
        return -float(out[0]), -np.concatenate([np.ravel(g) for g in out[1:1 + n_vars]])

    with in_use:
        if not np.isfinite(run(x0.data)[0]):
            raise pm.exceptions.SamplingError(f"The model's log density is not finite at its start point {start}")
        best = minimize(cost, x0.data, jac=True, method="L-BFGS-B", options={"maxfun": maxeval})
        return {v.name: np.asarray(value).copy() for v, value in zip(unobserved, run(best.x)[1 + n_vars:],
                                                                       strict=True)}


@contextlib.contextmanager
def _one_compile_map() -> Iterator[None]:
    """pymc-marketing's ``fit(method="map")`` with `_map_point` in place of `pymc.find_MAP` (its own results
    handling — the inference data, the fit data — is kept)."""
    from unittest import mock

    import pymc as pm

    with mock.patch.object(pm, "find_MAP", _map_point):
        yield


def _check(summary: pd.DataFrame) -> tuple[str, int, int]:
    n = len(summary)
    n_repeat = int((summary["frequency"] > 0).sum()) if n else 0
    if n == 0:
        return "no_purchases", n, n_repeat
    if n < MIN_CUSTOMERS:
        return "too_few_customers", n, n_repeat
    if n_repeat < MIN_REPEAT_BUYERS:
        return "no_repeat_buyers", n, n_repeat
    return "ok", n, n_repeat


def fit_models(summary: pd.DataFrame, *, seed: int = SEED, spend: bool = True) -> dict[str, Any]:
    """Fit BG/NBD (purchases) and Gamma-Gamma (amount per purchase) to a `rfm_t_summary` frame by MAP: a dict
    with status (`STATUSES`), message, n_customers, n_repeat_buyers, purchase_model, spend_model (None when
    too few repeat buyers with a positive amount, or `spend` False: the observed mean is used), params (the
    fitted parameters) and fit_seconds."""
    status, n, n_repeat = _check(summary)
    out: dict[str, Any] = {"status": status, "message": status_message(status, n, n_repeat), "n_customers": n,
                           "n_repeat_buyers": n_repeat, "purchase_model": None, "spend_model": None,
                           "params": {}, "fit_seconds": 0.0}
    if status != "ok":
        return out
    clv = _clv_module()
    started = time.perf_counter()
    data = pd.DataFrame({"customer_id": np.arange(n), "frequency": summary["frequency"].to_numpy("float64"),
                         "recency": summary["first_to_last_days"].to_numpy("float64"),
                         "T": summary["age_days"].to_numpy("float64")})
    with _quiet(), _one_compile_map():
        bg = clv.BetaGeoModel()
        bg.fit(data, method="map", progressbar=False, seed=seed)
        out["purchase_model"] = bg
        out["params"] = {k: float(v) for k, v in bg.fit_summary().items()}
        spenders = summary[(summary["frequency"] > 0) & (summary["spend_amount"] > 0)]
        if spend and len(spenders) >= MIN_REPEAT_BUYERS:
            gg = clv.GammaGammaModel()
            gg.fit(pd.DataFrame({"customer_id": np.arange(len(spenders)),
                                 "frequency": spenders["frequency"].to_numpy("float64"),
                                 "monetary_value": spenders["spend_amount"].to_numpy("float64")}),
                   method="map", progressbar=False, seed=seed)
            out["spend_model"] = gg
            out["params"].update({f"spend_{k}": float(v) for k, v in gg.fit_summary().items()})
    out["fit_seconds"] = time.perf_counter() - started
    return out


def prepare() -> None:
    """Import pymc-marketing, read pytensor's compile cache and let xarray look for its optional array
    libraries (~5–6 s together): what a process's first fit pays before it compiles. Notebook 04 runs it in its
    second process while the kernel opens the slice (``nb.warm_up(clv.prepare)``), so the fits sent there next
    start at once. Changes no result."""
    _clv_module()
    import arviz
    from pytensor.link.c.basic import get_module_cache

    with _quiet():
        get_module_cache()
        arviz.from_dict(posterior={"x": np.zeros((1, 2))})  # a fit's results become such an InferenceData


def _expected_purchases(fit: dict[str, Any], summary: pd.DataFrame, days: float) -> np.ndarray:
    data = pd.DataFrame({"customer_id": np.arange(len(summary)), "frequency": summary["frequency"].to_numpy("float64"),
                         "recency": summary["first_to_last_days"].to_numpy("float64"),
                         "T": summary["age_days"].to_numpy("float64")})
    with _quiet():
        values = fit["purchase_model"].expected_purchases(data, future_t=float(days))
    return np.asarray(values.mean(("chain", "draw"))).astype("float64")


def _probability_alive(fit: dict[str, Any], summary: pd.DataFrame) -> np.ndarray:
    data = pd.DataFrame({"customer_id": np.arange(len(summary)), "frequency": summary["frequency"].to_numpy("float64"),
                         "recency": summary["first_to_last_days"].to_numpy("float64"),
                         "T": summary["age_days"].to_numpy("float64")})
    with _quiet():
        values = fit["purchase_model"].expected_probability_alive(data)
    return np.asarray(values.mean(("chain", "draw"))).astype("float64")


def _expected_spend(fit: dict[str, Any], summary: pd.DataFrame) -> np.ndarray:
    """The Gamma-Gamma expected amount per purchase (the population mean without a positive repeat amount); the
    mean of the observed repeat amounts when no spend model could be fitted."""
    positive = (summary["frequency"] > 0) & (summary["spend_amount"] > 0)
    if fit["spend_model"] is None:
        seen = summary.loc[positive, "spend_amount"]
        fallback = float(seen.mean()) if len(seen) else float(
            (summary["gross_revenue_amount"] / summary["n_purchases"]).mean())
        return np.where(positive, summary["spend_amount"].fillna(0.0), fallback).astype("float64")
    data = pd.DataFrame({"customer_id": np.arange(len(summary)),
                         "frequency": np.where(positive, summary["frequency"], 0).astype("float64"),
                         "monetary_value": np.where(positive, summary["spend_amount"].fillna(0.0), 0.0)})
    with _quiet():
        values = fit["spend_model"].expected_customer_spend(data)
    return np.asarray(values.mean(("chain", "draw"))).astype("float64")


def predict_value(purchases: pd.DataFrame, until: pd.Timestamp, *, credits: pd.DataFrame | None = None,
                  horizon_days: int = HORIZON_DAYS, seed: int = SEED) -> pd.DataFrame:
    """Every customer who bought before `until`: its `rfm_t_summary` columns, then expected_purchases in the
    next `horizon_days`, probability_alive, expected_spend_amount and predicted_value_amount (the product, ×
    net_share), ordered by predicted value (descending) then account_id. Without a model (see `STATUSES`)
    the prediction columns are missing; ``attrs`` carry status, message, n_customers, n_repeat_buyers,
    params, fit_seconds and horizon_days."""
    days = _check_days("horizon_days", horizon_days)
    summary = rfm_t_summary(purchases, until, credits)
    fit = fit_models(summary, seed=seed)
    out = summary.copy()
    if fit["status"] == "ok":
        out["expected_purchases"] = _expected_purchases(fit, summary, days)
        out["probability_alive"] = _probability_alive(fit, summary)
        out["expected_spend_amount"] = _expected_spend(fit, summary)
        out["predicted_value_amount"] = out["expected_purchases"] * out["expected_spend_amount"] * out["net_share"]
        out = out.sort_values(["predicted_value_amount", "account_id"], ascending=[False, True], kind="mergesort")
    else:
        for column in ("expected_purchases", "probability_alive", "expected_spend_amount", "predicted_value_amount"):
            out[column] = np.nan
    out = out.reset_index(drop=True)
    out.attrs.update({k: fit[k] for k in ("status", "message", "n_customers", "n_repeat_buyers", "params",
                                          "fit_seconds")}, horizon_days=days, until=str(pd.Timestamp(until)))
    return out


def simulate_purchases(fit: dict[str, Any], summary: pd.DataFrame, days: float, *, n_draws: int = N_DRAWS,
                       seed: int = SEED) -> np.ndarray:
    """Draws of each customer's purchases in the next `days` from the fitted BG/NBD model (an array
    n_draws × customers): alive with its probability; if alive, λ ~ Gamma(r + x, α + T) and p ~ Beta(a, b + x)
    (the posterior given its history), then purchases at rate λ, each followed by dropout with probability p.
    Their mean is the model's expected purchases; their median its forecast under absolute error."""
    params = fit["params"]
    r, alpha = params["r"], params["alpha"]
    a, b = max(params["a"], 1e-9), max(params["b"], 1e-9)  # a MAP at the boundary (no dropout) is a → 0
    rng = np.random.default_rng(seed)
    alive_p = _probability_alive(fit, summary)
    x, age = summary["frequency"].to_numpy("float64"), summary["age_days"].to_numpy("float64")
    out = np.zeros((n_draws, len(summary)))
    for lo in range(0, len(summary), _CHUNK):  # bounded memory on large bases
        sl = slice(lo, lo + _CHUNK)
        shape = (n_draws, len(x[sl]))
        active = rng.random(shape) < alive_p[sl]
        rate = rng.gamma(r + x[sl], 1.0 / (alpha + age[sl]), shape)
        drop = rng.beta(a, b + x[sl], shape)
        clock, count = np.zeros(shape), np.zeros(shape)
        while active.any():
            clock += rng.exponential(1.0, shape) / rate
            bought = active & (clock < days)
            count += bought
            active = bought & (rng.random(shape) >= drop)
        out[:, sl] = count
    return out


def holdout_check(purchases: pd.DataFrame, cutoff: pd.Timestamp, *, holdout_days: int = HOLDOUT_DAYS,
                  seed: int = SEED) -> pd.DataFrame:
    """Fit on the purchases before `cutoff`, forecast each of those customers' purchases (purchase days) in
    [cutoff, cutoff + `holdout_days`), and compare with what they did: one row per method ("model",
    "baseline" — `baseline_purchases`) with method_name, mae, rmse, predicted_total and actual_total.

    Each error is measured on the point forecast that error rewards: MAE on the median of the model's
    predictive distribution (`simulate_purchases`), RMSE and the predicted total on its mean (the expected
    purchases). The baseline is one number per customer for both. Empty (status and message in ``attrs``)
    when no model could be fitted. ``attrs``: status, message, n_customers, cutoff, holdout_days, per_customer
    (account_id, actual, model — the mean —, model_median, baseline)."""
    cutoff = pd.Timestamp(cutoff)
    days = _check_days("holdout_days", holdout_days)
    summary = rfm_t_summary(purchases, cutoff)
    fit = fit_models(summary, seed=seed, spend=False)  # purchases only: no amount is forecast
    columns = ["method", "method_name", "mae", "rmse", "predicted_total", "actual_total"]
    attrs = {"status": fit["status"], "message": fit["message"], "n_customers": fit["n_customers"],
             "cutoff": str(cutoff), "holdout_days": days}
    if fit["status"] != "ok":
        out = pd.DataFrame(columns=columns)
        out.attrs.update(attrs)
        return out
    after = purchases[(purchases["purchased_at"] >= cutoff) & (purchases["purchased_at"] < cutoff + days * _DAY)]
    actual_days = after.assign(day=after["purchased_at"].dt.floor("D")).drop_duplicates(["account_id", "day"])
    actual = actual_days.groupby(actual_days["account_id"].astype("string")).size()
    actual = actual.reindex(summary["account_id"]).fillna(0).astype("float64").to_numpy()
    mean = _expected_purchases(fit, summary, days)
    median = np.median(simulate_purchases(fit, summary, days, seed=seed), axis=0)
    base = baseline_purchases(summary, days).to_numpy("float64")
    rows = [{"method": m, "method_name": _(METHODS[m]), "mae": float(np.mean(np.abs(point - actual))),
             "rmse": float(np.sqrt(np.mean((expected - actual) ** 2))), "predicted_total": float(expected.sum()),
             "actual_total": float(actual.sum())} for m, point, expected in (("model", median, mean),
                                                                            ("baseline", base, base))]
    out = pd.DataFrame(rows, columns=columns)
    out["method_name"] = out["method_name"].astype("string")
    attrs["per_customer"] = pd.DataFrame({"account_id": summary["account_id"], "actual": actual, "model": mean,
                                          "model_median": median, "baseline": base})
    out.attrs.update(attrs)
    return out


# ------------------------------------------------------------------------------------- slice entry points

def _mine(purchases: pd.DataFrame, accounts: pd.DataFrame, ctx: KpiContext) -> pd.DataFrame:
    """The purchases of the region's accounts."""
    accounts = region_accounts(accounts, ctx)
    return purchases[isin(purchases["account_id"].astype("string"), accounts["account_id"].astype("string"))]


@on_slice("accounts", "contracts")
def customer_value(accounts: pd.DataFrame, purchases: pd.DataFrame | None, ctx: KpiContext, *,
                   credits: pd.DataFrame | None = None, horizon_days: int = HORIZON_DAYS, seed: int = SEED
                   ) -> pd.DataFrame:
    """`predict_value` for the customers of the region at the reference time (the as-of time, capped at the
    period end), with the account's name. With a slice:
    ``clv.customer_value(s, purchases, credits=customers.credit_history(s))``."""
    if purchases is None:
        raise SchemaError("customer_value needs purchases (table `contracts`), which are not in this source")
    ref = reference_time(ctx)
    out = predict_value(_mine(purchases, accounts, ctx), ref, credits=credits, horizon_days=horizon_days, seed=seed)
    names = accounts.drop_duplicates("account_id").set_index(accounts.drop_duplicates("account_id")["account_id"]
                                                            .astype("string"))
    if "name" in names.columns:
        out.insert(1, "name", out["account_id"].map(names["name"]).astype("string"))
    return out


@on_slice("accounts", "contracts")
def holdout(accounts: pd.DataFrame, purchases: pd.DataFrame | None, ctx: KpiContext, *,
            holdout_days: int = HOLDOUT_DAYS, seed: int = SEED) -> pd.DataFrame:
    """`holdout_check` for the customers of the region, the cut-off `holdout_days` before the reference time."""
    if purchases is None:
        raise SchemaError("holdout needs purchases (table `contracts`), which are not in this source")
    days = _check_days("holdout_days", holdout_days)
    ref = reference_time(ctx)
    return holdout_check(_mine(purchases, accounts, ctx), ref - days * _DAY, holdout_days=days, seed=seed)


@on_slice("accounts")
def value_by_segment(accounts: pd.DataFrame | None, values: pd.DataFrame | None, by: str = "industry", *,
                     scored: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """Per value of `by` (an account attribute, or "rfm_tier"/"value_tier" from an `rfm` frame `scored`):
    segment, n_customers, net_revenue_amount (historical), predicted_value_amount, predicted_per_customer,
    predicted_share; ordered by predicted value (descending) then segment. Customers without a value of `by`
    are "(unknown)". None for None (a skipped section). With a slice: ``clv.value_by_segment(s, values,
    by="industry")``."""
    if values is None:
        return None
    check_choice("by", by, SEGMENTS)
    ids = values["account_id"].astype("string")
    if by in ("rfm_tier", "value_tier"):
        if scored is None:
            raise ParameterError(f"by: {by!r} needs the `rfm` frame (scored=...)")
        from crmlens.metrics.customers import tier_label

        lookup = scored.set_index(scored["account_id"].astype("string"))[by].map(tier_label)
    else:
        if accounts is None or by not in accounts.columns:
            raise SchemaError(f"accounts: column {by!r} is not in this source")
        frame = accounts.drop_duplicates("account_id")
        lookup = pd.Series(frame[by].astype("string").to_numpy(), index=frame["account_id"].astype("string"))
    segment = ids.map(lookup).astype("string").fillna(_(UNKNOWN))
    frame = pd.DataFrame({"segment": segment.to_numpy(), "net_revenue_amount": values["net_revenue_amount"].to_numpy(),
                          "predicted_value_amount": values["predicted_value_amount"].to_numpy("float64")})
    out = frame.groupby("segment", sort=True).agg(n_customers=("net_revenue_amount", "size"),
                                                  net_revenue_amount=("net_revenue_amount", "sum"),
                                                  predicted_value_amount=("predicted_value_amount",
                                                                          lambda v: v.sum(min_count=1)))
    out = out.reset_index()
    out["predicted_per_customer"] = out["predicted_value_amount"] / out["n_customers"]
    total = float(out["predicted_value_amount"].sum())
    out["predicted_share"] = out["predicted_value_amount"] / total if total > 0 else np.nan
    out = out.sort_values(["predicted_value_amount", "segment"], ascending=[False, True], kind="mergesort",
                          na_position="last").reset_index(drop=True)
    out.attrs.update(by=by, status=values.attrs.get("status"), message=values.attrs.get("message"))
    return out


#: The columns of a `holdout_check` frame a reader's table shows.
HOLDOUT_TABLE = ("method_name", "mae", "rmse", "predicted_total", "actual_total")
#: The columns of a `customer_value` frame a reader's table of top customers shows.
TOP_TABLE = ("account_id", "name", "n_purchases", "net_revenue_amount", "credit_amount", "probability_alive",
             "expected_purchases", "expected_spend_amount", "predicted_value_amount")


def top_customers(values: pd.DataFrame | None, n: int = 10) -> pd.DataFrame | None:
    """The `n` customers of a `customer_value` frame with the highest predicted value (none without a model);
    None for None (a skipped section)."""
    if values is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ParameterError(f"n: {n!r} is not allowed; use a whole number ≥ 1")
    if values.attrs.get("status") != "ok":
        return values.iloc[0:0][[c for c in TOP_TABLE if c in values.columns]]
    return values.head(n)[[c for c in TOP_TABLE if c in values.columns]].reset_index(drop=True)


# ------------------------------------------------------------------------------------------------ findings

def describe_customer_value(values: pd.DataFrame | None) -> Finding | None:
    """How concentrated the predicted value is: the top `TOP_SHARE` of customers' share of the next 12 months'
    predicted value (from 20 customers on), or why there is no prediction."""
    if values is None:
        return None
    if values.attrs.get("status") != "ok":
        return finding(values.attrs.get("message") or status_message("no_purchases"), "info")
    n = len(values)
    total = float(values["predicted_value_amount"].sum())
    if n < 20 or total <= 0:
        return None
    k = max(1, round(n * TOP_SHARE))
    top = float(values["predicted_value_amount"].head(k).sum())
    text = _("The {k} customers with the highest predicted value ({share_customers} of the customers) are "
             "expected to bring {share} of the next 12 months' predicted value ({total} in all).", k=_fmt(k, "count"),
             share_customers=_fmt(k / n, "share", 0), share=_fmt(top / total, "share", 0), total=_fmt(total, "amount"))
    alive = values.head(k)["probability_alive"]
    at_risk = int((alive < 0.5).sum())
    if at_risk:
        text = sentences(text, n_("{n} of them is more likely gone than still buying.",
                                  "{n} of them are more likely gone than still buying.", at_risk))
        return finding(text, "watch", recommendation=_(
            "Call the high-value customers whose probability of still buying is below 50% first."))
    return finding(text, "info", recommendation=_(
        "Give the top customers by predicted value a named account manager and a retention plan."))


def describe_value_by_segment(result: pd.DataFrame | None) -> Finding | None:
    """The segment whose customers are worth most per head, against the median segment (when one stands out by
    20% or more and holds 5 customers or more)."""
    if result is None or result.empty or result["predicted_per_customer"].notna().sum() < 2:
        return None
    rated = result[(result["n_customers"] >= 5) & result["predicted_per_customer"].notna()]
    if len(rated) < 2:
        return None
    best = rated["predicted_per_customer"].max()
    median = float(rated["predicted_per_customer"].median())
    if (rated["predicted_per_customer"] == best).sum() > 1 or median <= 0 or best < 1.2 * median:
        return None
    row = rated[rated["predicted_per_customer"] == best].iloc[0]
    text = _("{segment} customers are predicted to be worth {per} each over the next 12 months, against {median} "
             "for the median segment.", segment=_shown(row["segment"]), per=_fmt(best, "amount"),
             median=_fmt(median, "amount"))
    return finding(text, "info", recommendation=_(
        "Prioritise acquisition and upsell in {segment}: its customers are worth most.",
        segment=_shown(row["segment"])))


def describe_holdout(result: pd.DataFrame | None) -> Finding | None:
    """Whether the model forecast the holdout purchases better than the naive baseline, in numbers: clearly
    (MAE `MIN_HOLDOUT_GAIN` or more lower: good news), barely (lower MAE, by less: said as such, with the RMSE
    of both) or not (watch); or why there is no check."""
    if result is None:
        return None
    if result.attrs.get("status") != "ok" or result.empty:
        return finding(result.attrs.get("message") or status_message("no_purchases"), "info")
    if float(result["actual_total"].iloc[0]) == 0:
        return finding(_("No customer bought in the {days} days after the cut-off: the holdout check has nothing to "
                         "compare with.", days=_fmt(result.attrs.get("holdout_days", HOLDOUT_DAYS), "count")), "info")
    row = result.set_index("method")
    model, base = float(row.loc["model", "mae"]), float(row.loc["baseline", "mae"])
    values = {"days": _fmt(result.attrs.get("holdout_days", HOLDOUT_DAYS), "count"),
              "n": _fmt(result.attrs.get("n_customers", 0), "count"), "model": _fmt(model, "number", 3),
              "baseline": _fmt(base, "number", 3)}
    gain = (base - model) / base if base > 0 else 0.0
    if model < base and gain >= MIN_HOLDOUT_GAIN:
        text = _("On the last {days} days held out, the model's forecast of each of the {n} customers' purchases was "
                 "off by {model} purchases on average (MAE), against {baseline} for repeating each customer's past "
                 "rate: {gain} less error.", gain=_fmt(gain, "share", 0), **values)
        return finding(text, "good", recommendation=_(
            "Use the predicted 12-month value to rank customers for retention and upsell."))
    if model < base:
        text = _("On the last {days} days held out, the model's forecast of each of the {n} customers' purchases was "
                 "off by {model} purchases on average (MAE), barely better than {baseline} for repeating each "
                 "customer's past rate (root mean squared error {rmse_model} against {rmse_base}).",
                 rmse_model=_fmt(row.loc["model", "rmse"], "number", 3),
                 rmse_base=_fmt(row.loc["baseline", "rmse"], "number", 3), **values)
        return finding(text, "info", recommendation=_(
            "Use the predicted values to rank customers, not as a forecast of each customer's purchases."))
    text = _("On the last {days} days held out, the model's forecast of each of the {n} customers' purchases was off "
             "by {model} purchases on average (MAE), no better than {baseline} for repeating each customer's past "
             "rate.", **values)
    return finding(text, "watch", recommendation=_(
        "Treat the predicted values as indicative: rank customers by their past rate until more history "
        "accumulates."))


def holdout_note(result: pd.DataFrame | None) -> str:
    """One line for the closing note: the model's and the baseline's MAE (and RMSE) on the holdout."""
    if result is None or result.empty:
        return ""
    row = result.set_index("method")
    return _("Holdout ({days} days): model MAE {mae_model}, RMSE {rmse_model}; naive baseline MAE {mae_base}, RMSE "
             "{rmse_base}.", days=_fmt(result.attrs.get("holdout_days", HOLDOUT_DAYS), "count"),
             mae_model=_fmt(row.loc["model", "mae"], "number", 3),
             rmse_model=_fmt(row.loc["model", "rmse"], "number", 3),
             mae_base=_fmt(row.loc["baseline", "mae"], "number", 3),
             rmse_base=_fmt(row.loc["baseline", "rmse"], "number", 3))
