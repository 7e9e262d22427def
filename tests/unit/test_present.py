"""Tables for readers: labels, units, no index, '–' for missing values, right-aligned numbers, wide tables
split into blocks, long ones cut with a note, and the full data kept for the workbook."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from crmlens import i18n, present


@pytest.fixture(autouse=True)
def _english_after():
    yield
    i18n.use("en")


def frame() -> pd.DataFrame:
    return pd.DataFrame({"region_id": ["East", "West"], "n_widgets": [120, 80], "widget_to_gadget_rate": [0.4044, None],
                         "won_test_amount": [1234567.0, 0.0], "median_test_days": [12.34, 20.0]})


def cells(html: str) -> list[str]:
    return re.findall(r"<td[^>]*>(.*?)</td>", html)


def headers(html: str) -> list[str]:
    return re.findall(r"<th(?:\s[^>]*)?>(.*?)</th>", html)


def test_units_are_inferred_from_names_and_registered_labels_win():
    assert present.column_of("widget_to_gadget_rate").unit == "rate"
    assert present.column_of("median_test_days").unit == "days"
    assert present.column_of("n_widgets").unit == "count"
    assert present.column_of("won_test_amount").unit == "amount"
    assert present.column_of("region_id").label == "Region"


def test_a_table_has_labels_formatted_units_no_index_and_a_dash_for_missing():
    page = present.table(frame(), currency="USD").to_html()
    assert headers(page) == ["Region", "N widgets", "Widget to gadget rate", "Won test amount", "Median test days"]
    assert not any("_" in h for h in headers(page)), "no snake_case header"
    assert cells(page)[:5] == ["East", "120", "40.4%", "1,234,567 USD", "12.3 days"]
    assert cells(page)[7] == "–", "a missing value is a dash, not NaN"
    assert '<td class="num">40.4%</td>' in page and '<td class="txt">East</td>' in page
    assert ">0<" not in page.replace("0 USD", ""), "only the real zero amount is a zero"
    assert "– = no value." in page


def test_a_named_index_becomes_a_column_and_a_range_index_disappears():
    indexed = frame().set_index("region_id")
    page = present.table(indexed).to_html()
    assert headers(page)[0] == "Region" and cells(page)[0] == "East"
    assert "<th></th>" not in present.table(frame()).to_html()


def test_wide_tables_are_split_into_blocks_repeating_the_label_column():
    wide = pd.DataFrame({"region_id": ["East"], **{f"n_test_step_{i}": [i] for i in range(12)}})
    page = present.table(wide).to_html()
    blocks = page.count("<table")
    assert blocks == 2
    assert page.count(">Region</th>") == 2
    assert all(len(re.findall(r"<th\s", b)) <= present.MAX_COLUMNS for b in page.split("<table")[1:])


def test_long_tables_are_cut_with_a_note_and_the_record_keeps_every_row():
    long = pd.DataFrame({"rep_id": [f"R{i:04d}" for i in range(60)], "n_test_deals": range(60)})
    shown = present.table(long)
    page = shown.to_html()
    assert len(re.findall(r"<tr>", page)) == 1 + present.MAX_ROWS
    assert "First 25 of 60 rows" in page
    record = shown.record()
    assert record["rows"] == 60 and len(record["data"]) == 60
    assert record["columns"][1] == {"name": "n_test_deals", "label": "N test deals", "unit": "count"}


def test_registered_columns_and_table_specific_labels():
    present.register_columns({"test_only_share_of_x": ("Share of X", "share")})
    t = present.table(pd.DataFrame({"test_only_share_of_x": [0.5], "y": ["a"]}), labels={"y": "Why"})
    assert headers(t.to_html()) == ["Share of X", "Why"]
    with pytest.raises(ValueError, match="registered twice"):
        present.register_columns({"test_only_share_of_x": ("Other", "share")})


def test_chinese_headers_and_units():
    with i18n.language("zh"):
        page = present.table(frame(), currency="USD").to_html()
    assert headers(page)[0] == "区域"
    assert "12.3 天" in page


def test_none_stays_none_and_the_frame_is_the_analysts():
    assert present.table(None) is None
    data = frame()
    assert present.table(data).frame is data
