"""Tests of the executive view's "Customer value by segment" panel (crmlens.dashboard.panels_clv) on the tiny demo:
the company-wide values are fitted once, in the kernel's second process, and are the numbers `clv.customer_value`
gives in place on the company-wide slice; a view's table is `clv.value_by_segment` of those values kept to the
view's customers (a region's segments add up to that region's customers only); the panel is pending until the
job is done, then real; another kernel reads the filed values (or waits for the kernel computing them) instead of
fitting again; no contracts, a failed job and Chinese say so plainly. One fit in each process (~25 s)."""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import pandas as pd
import plotly.graph_objects as go
import pytest

from crmlens import data, i18n
from crmlens.dashboard import panels_clv as pc
from crmlens.dashboard import state as st
from crmlens.dashboard.model import DashboardData
from crmlens.metrics import clv, customers
from crmlens.schema import SCHEMA

TABLES = pc.PANEL_TABLES_CLV["clv_segments"]
STATE = st.FilterState()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache folder of its own: nothing computed yet, so the first panel is pending."""
    return tmp_path_factory.mktemp("clv_cache")


@pytest.fixture(scope="module")
def board(tiny_demo, cache) -> DashboardData:
    return DashboardData.load(str(tiny_demo), tables=TABLES, cache_dir=cache)


@pytest.fixture(scope="module")
def first(board):
    """The panel before and after the second process's job: (pending panel, the job asked again, values,
    the panel once done)."""
    view = board.view(STATE)
    pending = pc.clv_segments_panel(view)
    asked_again = pc.customer_values(board, STATE)
    assert pending.pending is not None, "the first panel of a fresh cache must wait for the job"
    values = pending.pending.result(timeout=180)
    yield pending, asked_again, values, pc.clv_segments_panel(view)
    pc.shutdown()


@pytest.fixture(scope="module")
def expected(board, first) -> pd.DataFrame:
    """`clv.customer_value` in this process on the company-wide slice, as notebook 04 calls it."""
    company = board.view(STATE)
    assert company.params.region == "all" and not company.state.slice_filters
    return clv.customer_value(company, customers.purchase_history(company),
                              credits=customers.credit_history(company))


def _expected_table(view, values: pd.DataFrame, keep: pd.Series) -> pd.DataFrame:
    ids = view.tables["accounts"].loc[keep.to_numpy(), "account_id"].astype("string")
    mine = values[values["account_id"].astype("string").isin(set(ids))].reset_index(drop=True)
    return clv.value_by_segment(view, mine, by="industry")


def test_the_panel_is_pending_then_real(first):
    pending, asked_again, _values, done = first
    assert pending.no_data == i18n._(pc.PENDING_TEXT) and pending.table is None and pending.figure is None
    assert asked_again is pending.pending, "a job already running for the key must not be started twice"
    assert pending.pending.done() and pending.pending.exception() is None
    assert done.pending is None and done.no_data is None
    assert isinstance(done.figure, go.Figure) and not done.table.empty
    assert list(done.columns) == ["segment", "n_customers", "net_revenue_amount", "predicted_value_amount",
                                  "predicted_per_customer", "predicted_share"]
    assert done.columns["segment"] == "Industry"
    predicted = done.figure.data[1]  # bars keyed by segment, highest predicted value on top
    assert list(predicted.y) == done.table["segment"].tolist()[::-1]
    assert list(predicted.x) == pytest.approx(done.table["predicted_value_amount"].tolist()[::-1])


def test_values_of_the_second_process_are_those_of_the_company_wide_slice(first, expected):
    values = first[2]
    assert values.attrs["status"] == "ok" and expected.attrs["status"] == "ok"
    pd.testing.assert_frame_equal(values, expected)


def test_company_table_is_value_by_segment_of_every_customer(board, first, expected):
    view = board.view(STATE)
    table = _expected_table(view, expected, pd.Series(True, index=view.tables["accounts"].index))
    pd.testing.assert_frame_equal(first[3].table, table)
    assert first[3].table["n_customers"].sum() == len(expected)
    assert first[3].finding == (clv.describe_value_by_segment(table).text
                                if clv.describe_value_by_segment(table) else "")


def test_region_view_counts_only_that_regions_customers(board, first, expected):
    view = board.view(dataclasses.replace(STATE, region="East"))
    assert pc.customer_values(board, view.state).done(), "a region view reuses the company-wide values"
    panel = pc.clv_segments_panel(view)
    accounts = view.tables["accounts"]
    east = accounts["region_id"].eq("East").fillna(False)
    pd.testing.assert_frame_equal(panel.table, _expected_table(view, expected, east))
    n_east = expected["account_id"].isin(set(accounts.loc[east.to_numpy(), "account_id"])).sum()
    assert 0 < panel.table["n_customers"].sum() == n_east < len(expected)


def test_segment_view_keeps_that_segments_customers_and_notes_the_product_line(board, first, expected):
    view = board.view(dataclasses.replace(STATE, segment="large", product_line="Cloud"))
    panel = pc.clv_segments_panel(view)
    large = view.tables["accounts"]["size_band"].eq("large").fillna(False)
    pd.testing.assert_frame_equal(panel.table, _expected_table(view, expected, large))
    assert panel.note and "product line" in panel.note  # accounts cannot be filtered by product line


def test_another_kernel_reads_the_filed_values(tiny_demo, cache, first, monkeypatch):
    monkeypatch.setattr(pc, "_pool", lambda: pytest.fail("a kernel must not fit values another filed"))
    other = DashboardData.load(str(tiny_demo), tables=TABLES, cache_dir=cache)
    future = pc.customer_values(other, STATE)
    assert future.done()
    pd.testing.assert_frame_equal(future.result(), first[2])
    assert pc.clv_segments_panel(other.view(STATE)).table is not None


def test_a_kernel_waits_for_the_one_computing(tiny_demo, tmp_path, first, monkeypatch):
    monkeypatch.setattr(pc, "_pool", lambda: pytest.fail("a job running in another kernel must not start again"))
    other = DashboardData.load(str(tiny_demo), tables=TABLES, cache_dir=tmp_path)
    key = pc.values_key(other, STATE)
    marker = pc._marker(other, key)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{os.getpid()}\n")  # "another kernel" (a live process) computes this key
    future = pc.customer_values(other, STATE)
    assert not future.done()
    panel = pc.clv_segments_panel(other.view(STATE))
    assert panel.pending is future
    other._store(key, first[2])  # the other kernel files its result
    pd.testing.assert_frame_equal(future.result(timeout=10), first[2])


def test_no_contracts_says_no_data_naming_the_table(tiny_demo):
    view = DashboardData(data.connect(str(tiny_demo)), tables=("leads",)).view(STATE)
    panel = pc.clv_segments_panel(view)
    assert panel.table is None and panel.pending is None
    assert "`contracts`" in panel.no_data and panel.no_data.startswith("No data")


@pytest.mark.parametrize("error, says", [
    (ValueError("boom\nTraceback (most recent call last):\n  File x"), "ValueError: boom"),
    (BrokenProcessPool("gone"), "out of memory"),
])
def test_a_failed_job_says_why_in_plain_words(board, monkeypatch, error, says):
    failed: Future = Future()
    failed.set_exception(error)
    monkeypatch.setattr(pc, "customer_values", lambda board, state: failed)
    panel = pc.clv_segments_panel(board.view(STATE))
    assert panel.pending is None and panel.table is None
    assert panel.no_data.startswith("Customer values could not be computed: ") and says in panel.no_data
    assert "Traceback" not in panel.no_data


def test_chinese_panel(board, first):
    with i18n.language("zh"):
        zh = pc.clv_segments_panel(board.view(dataclasses.replace(STATE, language="zh")))
    en = first[3]
    assert zh.title == "客户终身价值（按细分）" and en.title == "Customer value by segment"
    assert list(zh.columns) == list(en.columns) and all(i18n.has_cjk(h) for h in zh.columns.values())
    numbers = ["n_customers", "net_revenue_amount", "predicted_value_amount"]
    pd.testing.assert_frame_equal(zh.table[numbers], en.table[numbers])
    with i18n.language("zh"):
        assert i18n.has_cjk(i18n._(pc.PENDING_TEXT))


def test_panel_tables_are_fact_tables():
    assert "contracts" in TABLES
    assert all(SCHEMA[t].kind == "fact" for t in TABLES)
