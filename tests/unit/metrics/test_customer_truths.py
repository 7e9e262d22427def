"""The customer truths planted in the demo (crmlens.truths), checked on the raw tables by their definitions and
recovered by the analyses of notebooks 04 and 06: the high-value industry, the cohort that stays less, and the
CSAT driver (slow first responses). Tiny demo, two seeds: truths must not depend on luck."""

from __future__ import annotations

import numpy as np
import pytest

from crmlens import data, params
from crmlens.metrics import customers as cu
from crmlens.metrics import health as he
from crmlens.truths import CSAT_DRIVER, HIGH_VALUE_INDUSTRY, WORSE_COHORT


@pytest.fixture(params=[7, 11], ids=lambda s: f"seed{s}", scope="module")
def demo_slice(request, demo_folder):
    folder = demo_folder("tiny", request.param)
    return data.open_slice(params.validate_params({"source": str(folder), "region": "all", "period": "2026-Q3"}),
                           data.connect(folder))


def test_high_value_industry_planted_and_recovered(demo_slice):
    acc = demo_slice.tables["accounts"]
    big = acc[acc["size_band"].isin(["large", "enterprise"])]
    assert (big["industry"] == HIGH_VALUE_INDUSTRY.industry).mean() == pytest.approx(HIGH_VALUE_INDUSTRY.big_share,
                                                                                   abs=0.1)
    purchases = cu.purchase_history(demo_slice)
    scored = cu.rfm(demo_slice, purchases)
    industry = scored["account_id"].map(acc.set_index("account_id")["industry"])
    lift = industry[scored["value_tier"] == "high"].value_counts(normalize=True) / industry.value_counts(normalize=True)
    assert lift[HIGH_VALUE_INDUSTRY.industry] > 1.2
    found = cu.describe_profile(cu.profile(demo_slice, purchases, by="industry"))
    assert found is not None and found.text.startswith(HIGH_VALUE_INDUSTRY.industry)


def test_worse_cohort_planted_and_recovered(demo_slice):
    purchases = cu.purchase_history(demo_slice)
    cohorts = cu.cohort_retention(demo_slice, purchases, freq="quarter", n_periods=8, basis="active")
    at = cohorts.set_index("cohort")["5"].dropna()
    assert WORSE_COHORT.quarter in at.index and len(at) >= 3
    assert at.drop(WORSE_COHORT.quarter).median() - at[WORSE_COHORT.quarter] >= 0.10
    found = cu.describe_cohort_retention(cohorts)
    assert found is not None and f"The {WORSE_COHORT.quarter} cohort kept" in found.text
    assert found.severity == "watch"


def test_csat_driver_planted_by_its_definition(demo_slice):
    surveys = demo_slice.history("surveys", 16)
    tickets = demo_slice.history("tickets", 17)
    flags = he.response_service(surveys, tickets, window_days=CSAT_DRIVER.window_days,
                                service_targets={k: [v, 10.0] for k, v in CSAT_DRIVER.target_hours})
    csat = surveys["csat"].astype("float64")
    gap = csat[~flags["slow_first_response"]].mean() - csat[flags["slow_first_response"]].mean()
    assert gap > CSAT_DRIVER.csat_drop * 0.7, gap  # the planted point, plus the churners' unhappy responses
    assert np.isfinite(gap)
    drivers = he.csat_drivers(demo_slice)
    assert drivers.loc[drivers["csat_effect"].idxmin(), "factor"] == "slow_first_response"
