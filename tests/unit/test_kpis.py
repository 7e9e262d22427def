"""The KPI registry: complete definitions, documented, formatted, compared direction-aware."""

from __future__ import annotations

import pandas as pd
import pytest

from crmlens import docs, kpis
from crmlens.errors import ParameterError
from crmlens.kpis import Kpi, KpiContext, change, compute_kpi, get_kpi, kpi_table, load_all, register_kpi
from crmlens.schema import SCHEMA

CTX = KpiContext(period_start=pd.Timestamp("2026-07-01"), period_end=pd.Timestamp("2026-10-01"))


def test_every_kpi_is_fully_defined():
    registry = load_all()
    assert registry, "no KPI registered"
    for name, kpi in registry.items():
        assert kpi.name == name
        assert kpi.label and kpi.description and kpi.area and kpi.grain
        assert kpi.unit in kpis.UNITS and kpi.direction in kpis.DIRECTIONS
        # a KPI of the whole source's validation (data quality) reads every table's report, not one table
        assert kpi.tables or kpi.grain == "source", f"{name} does not say which tables it needs"
        assert callable(kpi.compute)


def test_every_kpi_is_in_the_catalogue():
    text = docs.kpi_catalogue_markdown()
    for name, kpi in load_all().items():
        assert f"| `{name}` | {kpi.label} |" in text


def test_unknown_kpi_lists_the_registered_ones():
    with pytest.raises(ParameterError) as err:
        get_kpi("bookingz")
    message = str(err.value)
    assert "'bookingz'" in message
    for name in list(load_all())[:3]:
        assert name in message


def test_registering_twice_is_refused():
    def a(frames, ctx):
        return 1.0

    def b(frames, ctx):
        return 2.0

    register_kpi("_test_twice", label="T", unit="count", description="d", direction="higher",
                 tables=("leads",), area="test")(a)
    try:
        with pytest.raises(ValueError, match="registered twice"):
            register_kpi("_test_twice", label="T", unit="count", description="d", direction="higher",
                         tables=("leads",), area="test")(b)
    finally:
        kpis.KPIS.pop("_test_twice", None)


@pytest.mark.parametrize(("kw", "bad"), [({"unit": "furlongs"}, "unit"), ({"direction": "up"}, "direction"),
                                         ({"tables": ("leadz",)}, "unknown tables")])
def test_bad_definitions_are_refused(kw, bad):
    args = {"label": "T", "unit": "count", "description": "d", "direction": "higher", "tables": ("leads",),
            "area": "test"} | kw
    with pytest.raises(ValueError, match=bad):
        register_kpi("_test_bad", **args)


def _kpi(direction="higher", unit="amount") -> Kpi:
    return Kpi(name="k", label="K", unit=unit, description="d", direction=direction, tables=("leads",), area="t",
               compute=lambda f, c: 1.0)


@pytest.mark.parametrize(
    ("unit", "value", "text"),
    [("amount", 1234567.4, "1,234,567 USD"), ("rate", 0.3521, "35.2%"), ("days", 12.46, "12.5 days"),
     ("count", 1500, "1,500"), ("ratio", 2.5, "2.50"), ("rate", None, "–"), ("amount", float("nan"), "–")],
)
def test_format(unit, value, text):
    assert _kpi(unit=unit).format(value) == text


@pytest.mark.parametrize(
    ("direction", "value", "before", "trend"),
    [("higher", 110, 100, "better"), ("higher", 90, 100, "worse"), ("lower", 90, 100, "better"),
     ("lower", 110, 100, "worse"), ("neutral", 110, 100, "neutral"), ("higher", 100, 100, "flat")],
)
def test_change_is_direction_aware(direction, value, before, trend):
    got = change(_kpi(direction), value, before)
    assert got["trend"] == trend and got["delta"] == value - before
    assert got["delta_pct"] == pytest.approx((value - before) / before)


def test_change_without_comparison_or_from_zero():
    assert change(_kpi(), 5, None) == {"delta": None, "delta_pct": None, "trend": "n/a"}
    assert change(_kpi(), 5, 0)["delta_pct"] is None


def test_compute_kpi_returns_none_when_a_table_is_missing():
    name = next(iter(load_all()))
    assert compute_kpi(name, {}, CTX) is None


def test_kpi_table_shape_and_no_data_status():
    names = list(load_all())[:2]
    table = kpi_table(names, {}, CTX, {}, CTX)
    assert table["kpi"].tolist() == names
    assert (table["status"] == "not in source").all() and (table["display"] == "–").all()
    kpi = get_kpi(names[0])
    empty = {t: pd.DataFrame({c.name: pd.Series(dtype="datetime64[ns]" if c.name.endswith("_at") else "object")
                              for c in SCHEMA[t].columns}) for t in kpi.tables}
    table = kpi_table(names[:1], empty, CTX)
    assert table["status"].tolist() == ["no data"], "tables present but nothing in the period: no data"


def test_kpi_readers_table_in_both_languages():
    from crmlens import i18n
    from crmlens.kpis import readers_table

    table = kpi_table(["win_rate"], {}, CTX, {}, CTX)
    shown = readers_table(table, period="2026-Q3", comparison_period="2026-Q2").to_html()
    assert ">Win rate<" in shown and ">2026-Q3<" in shown and ">not in this source<" in shown
    with i18n.language("zh"):
        shown = readers_table(table, period="2026-Q3").to_html()
    assert ">赢单率<" in shown or ">Win rate<" not in shown
    assert ">数据源中没有<" in shown
