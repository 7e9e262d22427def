"""The notebook's calls (`perf.target_attainment(s, "region")`...) on a slice, and the reader's tables of their
results: every column has a registered label, no snake_case header reaches a reader."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from crmlens import data, params, present
from crmlens.metrics import performance as perf
from crmlens.periods import Period
from crmlens.truths import TEAM_BELOW_TARGET
from tests.unit.metrics.test_performance import Q2, Q3, tables


@pytest.fixture(scope="module")
def demo_slice(tiny_demo):
    values = {"source": str(tiny_demo), "region": "East", "period": TEAM_BELOW_TARGET.period, "as_of": "2026-10-01"}
    return data.open_slice(params.validate_params(values), data.connect(tiny_demo))


@pytest.fixture
def shown(monkeypatch):
    """The notes the notebook would show ("needs table ...")."""
    from crmlens import notebook

    notes: list[str] = []
    monkeypatch.setattr(notebook, "md", lambda text, finding=False: notes.append(text))
    return notes


class FakeSlice:
    """A slice of the fixture company: current frames = Q3, comparison = Q2 (only what the analyses read)."""

    def __init__(self, frames: dict[str, pd.DataFrame]) -> None:
        self.tables = frames
        self.comparison = frames
        self.params = SimpleNamespace(region="all", comparison="previous", forgotten_days=60, churn_days=455)
        self.period = Period(label="2026-Q3", start=Q3.period_start, end=Q3.period_end, kind="quarter")
        self.comparison_period = Period(label="2026-Q2", start=Q2.period_start, end=Q2.period_end, kind="quarter")
        self.as_of = Q3.as_of
        self.info = SimpleNamespace(vocabulary=Q3.vocabulary, source="fixture", tables=tuple(frames))

    def missing(self, *names: str) -> list[str]:
        return [n for n in names if n not in self.tables]

    def has(self, *names: str) -> bool:
        return not self.missing(*names)

    def history(self, name: str, n_periods: int = 8) -> pd.DataFrame:
        return self.tables[name]


def test_slice_calls_equal_the_frame_level_functions():
    frames = tables()
    s = FakeSlice(frames)
    got = perf.target_attainment(s, "team")
    assert got.equals(perf.target_attainment(frames["opportunities"], frames, s_ctx(s), "team"))
    assert perf.deal_size(s, "product_line").equals(
        perf.deal_size(frames["opportunities"], s_ctx(s), "product_line", frames))
    assert perf.sales_cycle(s).equals(perf.sales_cycle(frames["opportunities"], s_ctx(s)))
    assert perf.sales_brief(s).equals(perf.sales_brief(frames, s_ctx(s), frames, s_ctx(s, "comparison")))
    assert perf.collections_summary(s).equals(perf.collections_summary(frames, s_ctx(s)))
    weekly = perf.bookings_over_time(s, "week")
    assert weekly["period"].iloc[0] == "2026-W27" and weekly["bookings_amount"].sum() == 600.0
    assert weekly.loc[weekly["period_start"] >= s.as_of, "bookings_amount"].isna().all()  # after the as-of time


def s_ctx(s: FakeSlice, which: str = "current"):
    from crmlens import notebook

    return notebook.context(s, which)


@pytest.mark.parametrize(("call", "missing"), [
    (lambda s: perf.deal_size(s, "size_band"), "accounts"),
    (lambda s: perf.sales_cycle(s, by="industry"), "accounts"),
    (lambda s: perf.deal_size_over_time(s, "size_band"), "accounts"),
    (lambda s: perf.target_attainment(s, "product_line"), "products"),
    (lambda s: perf.target_attainment(s, "team"), "reps"),
])
def test_a_segment_whose_table_is_missing_is_skipped_with_a_note(call, missing, shown):
    s = FakeSlice({k: v for k, v in tables().items() if k not in ("accounts", "products", "reps")})
    assert call(s) is None
    assert len(shown) == 1 and f"`{missing}`" in shown[0]
    assert perf.deal_size(s, "product") is not None  # products are only needed for product lines


def test_the_demo_slice_results_have_reader_labels(demo_slice, shown):
    s = demo_slice
    results = {
        "brief": perf.sales_brief(s)[perf.BRIEF_SHOWN],
        "attainment": perf.target_attainment(s, "rep"),
        "monthly": perf.bookings_over_time(s, "month", n_periods=8),
        "quarterly": perf.bookings_over_time(s, "quarter", n_periods=16),
        "deal_size": perf.deal_size(s, "size_band"),
        "deal_size_trend": perf.deal_size_over_time(s, "product_line"),
        "cycle": perf.sales_cycle(s, "product"),
        "cycle_trend": perf.sales_cycle_over_time(s),
        "collections": perf.collections_summary(s),
        "collections_trend": perf.collections_over_time(s, "month", n_periods=4),
        "contracts": perf.contract_summary(s, top=10),
    }
    results["seasons"] = perf.quarterly_seasonality(results["quarterly"])
    assert not shown and all(r is not None and len(r) for r in results.values())
    assert present.unregistered(results.values()) == set()
    for name, result in results.items():
        headers = present.table(result).formatted().columns
        assert not [h for h in headers if "_" in h], (name, list(headers))
    assert results["seasons"]["year"].tolist() == [2023, 2024, 2025]  # the demo starts 2023-01-01
    reps = results["attainment"]
    assert reps["key"].is_unique and reps["key"].str.match(r"R\d+").all()
