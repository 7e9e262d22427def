"""What the dashboard notebooks call: the states a preheating kernel computes."""

from __future__ import annotations

import pytest

from crmlens.dashboard import state as st
from crmlens.dashboard.app import warm_states
from crmlens.errors import ParameterError


def test_default_warm_up_is_every_region_at_the_default_period_and_every_preset_for_all():
    states = warm_states(["East", "West"], "default", seed=3)
    assert states[0] == st.FilterState()
    assert sorted((s.region, s.period) for s in states) == sorted(
        [("all", p) for p in st.PRESETS] + [("East", "this_quarter"), ("West", "this_quarter")])


def test_all_warm_up_covers_every_region_and_preset_and_kernels_take_different_orders():
    a, b = warm_states(["East", "West"], "all", seed=1), warm_states(["East", "West"], "all", seed=2)
    assert len(a) == 3 * len(st.PRESETS) and set(a) == set(b)
    assert a[0] == b[0] == st.FilterState() and a != b


def test_no_warm_up_and_a_bad_choice():
    assert warm_states(["East"], "0") == []
    with pytest.raises(ParameterError, match="CRMLENS_DASHBOARD_WARM: 'most'"):
        warm_states(["East"], "most")
