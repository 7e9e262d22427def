"""`CRMLENS_STRICT_KPIS=1` (set by `make test` for its nbval pass over the committed notebooks on the demo): a
notebook's last cell fails when one of its headline KPIs has no value, naming it; unset, it only records."""

from __future__ import annotations

import pytest

from crmlens import data, notebook
from crmlens.errors import CrmLensError
from crmlens.params import validate_params


@pytest.fixture(scope="module")
def east(tiny_demo):
    params = validate_params({"source": str(tiny_demo), "region": "East", "period": "2026-Q3",
                              "as_of": "2026-10-01"})
    return data.open_slice(params, data.connect(tiny_demo))


def test_strict_mode_names_the_kpis_without_a_value(east, monkeypatch):
    real = notebook.kpi_summary

    def one_empty(s, names, with_frames=None):
        table = real(s, names, with_frames)
        table.loc[table["kpi"] == "leads_created", ["status", "value"]] = ["no_data", None]
        return table

    monkeypatch.setattr(notebook, "kpi_summary", one_empty)
    notebook.record_kpis(east, ["win_rate", "leads_created"], area="test")  # not strict: recorded, no error
    monkeypatch.setenv(notebook.STRICT_KPIS_ENV, "1")
    with pytest.raises(CrmLensError, match=r"CRMLENS_STRICT_KPIS: KPIs without a value for East 2026-Q3: "
                                           r"leads_created \(no_data\)"):
        notebook.record_kpis(east, ["win_rate", "leads_created"], area="test")
    monkeypatch.setattr(notebook, "kpi_summary", real)
    notebook.record_kpis(east, ["win_rate", "leads_created"], area="test")  # both have data on the demo
