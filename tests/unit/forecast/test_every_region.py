"""Results that compare every region (notebook 09's exceptions) are computed once per source version and
parameters: the next region's task in a reused kernel takes them from memory, with the same numbers."""

from __future__ import annotations

import pandas as pd
import pytest

from crmlens import data, i18n
from crmlens.metrics import forecasting as fc
from crmlens.metrics.common import clear_memo
from crmlens.params import validate_params


def _slice(tiny_demo, region: str, **extra):
    params = validate_params({"source": str(tiny_demo), "region": region, "period": "2026-Q3",
                              "as_of": "2026-10-01", **extra})
    return data.open_slice(params, data.connect(tiny_demo))


@pytest.fixture
def counted(monkeypatch):
    clear_memo()
    calls = []
    real = fc._exceptions

    def counting(s, regions, names):
        calls.append(s.params.region)
        return real(s, regions, names)

    monkeypatch.setattr(fc, "_exceptions", counting)
    return calls


def test_the_next_region_takes_the_comparison_of_every_region_from_memory(tiny_demo, counted):
    east = fc.exceptions(_slice(tiny_demo, "East"))
    west = fc.exceptions(_slice(tiny_demo, "West"))
    assert counted == ["East"]  # West's task did not compute every region's KPIs again
    pd.testing.assert_frame_equal(east, west)
    assert set(east["region"]) == {"East", "West", "North", "South", "Central", "APAC"}
    west.loc[:, "value"] = -1.0  # a caller changing its copy changes nothing for the next one
    pd.testing.assert_frame_equal(fc.exceptions(_slice(tiny_demo, "all")), east)
    assert counted == ["East"]


def test_another_parameter_or_language_is_computed_again(tiny_demo, counted):
    first = fc.exceptions(_slice(tiny_demo, "East"))
    last_year = fc.exceptions(_slice(tiny_demo, "East", comparison="last_year"))
    with i18n.language("zh"):
        fc.exceptions(_slice(tiny_demo, "West"))
    assert counted == ["East", "East", "West"]
    assert not last_year["comparison_value"].equals(first["comparison_value"])


def test_without_an_as_of_date_the_regions_of_a_run_share_it_too(tiny_demo, counted):
    def no_as_of(region):
        params = validate_params({"source": str(tiny_demo), "region": region, "period": "2026-Q3"})
        return data.open_slice(params, data.connect(tiny_demo))

    east, west = no_as_of("East"), no_as_of("West")
    assert east._check_as_of != west._check_as_of  # the clock when each was opened
    if east._check_as_of.floor("h") != west._check_as_of.floor("h"):
        pytest.skip("the two slices were opened on either side of a full hour")
    pd.testing.assert_frame_equal(fc.exceptions(east), fc.exceptions(west))
    assert counted == ["East"]
