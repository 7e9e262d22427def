"""Live refresh in a real browser: Voila serves the overview on a COPY of the tiny demo with a 2-second check
(``CRMLENS_DASHBOARD_REFRESH_S=2``); the test rewrites opportunities.parquet while the page is open and waits
for the tile to show the library's number for the new file — no reload of the page, no click."""

from __future__ import annotations

import shutil
import time

import pandas as pd
import pytest

from crmlens import data
from crmlens.dashboard import state as st
from crmlens.dashboard.serve import DASHBOARDS_DIR, REFRESH_ENV, VoilaServer
from crmlens.dashboard.tiles import tiles_for
from tests.browser.conftest import ARTIFACTS, RENDER_TIMEOUT_MS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STATUS = ".crmlens-status-line"
KPI = "bookings_amount"
TILE = f'.crmlens-tile[data-kpi="{KPI}"]'
INTERVAL_S = 2


@pytest.fixture(scope="module")
def served(tiny_demo, tmp_path_factory):
    """(server, folder): the overview alone (one kernel, started for the page: nothing else competes for the
    CPU) on a copy of the tiny demo the test may rewrite."""
    folder = shutil.copytree(tiny_demo, tmp_path_factory.mktemp("refresh") / "demo")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = {"CRMLENS_DASHBOARD_PREHEAT_DELAY": "0", "CRMLENS_DASHBOARD_WARM": "0", REFRESH_ENV: str(INTERVAL_S)}
    server = VoilaServer(DASHBOARDS_DIR / "overview.ipynb", pool_size=0, source=str(folder),
                         log_path=ARTIFACTS / "voila-refresh.log", extra_env=env).start()
    yield server, folder
    server.stop()


def library_value(folder, state: st.FilterState) -> float | None:
    """The tile's KPI the notebooks' way, on the files as they are now."""
    con = data.connect(str(folder))
    s = data.open_slice(st.to_params(state, data.data_as_of(con)), con)
    return next(t.value for t in tiles_for(s, [KPI]))


def bump_won_amount(folder, extra: float) -> None:
    """A new version of opportunities.parquet: one won deal of the default period worth `extra` more."""
    period = st.resolve_period(st.FilterState(), data.data_as_of(data.connect(str(folder))))
    path = folder / "opportunities.parquet"
    frame = pd.read_parquet(path)
    won = frame.index[(frame["is_won"] == True) & (frame["closed_at"] >= period.start)  # noqa: E712
                      & (frame["closed_at"] < period.end)]
    frame.loc[won[0], "amount"] += extra
    frame.to_parquet(path, index=False)


def test_an_open_page_shows_the_new_data_after_the_source_changes(served, page):
    server, folder = served
    page.goto(server.url(), timeout=RENDER_TIMEOUT_MS)
    page.wait_for_selector(STATUS, timeout=RENDER_TIMEOUT_MS)
    before = float(page.get_attribute(TILE, "data-value"))
    assert before == pytest.approx(library_value(folder, st.FilterState()), rel=1e-12)
    renders = int(page.get_attribute(STATUS, "data-render"))

    bump_won_amount(folder, 12_345.0)
    changed = time.monotonic()
    expected = library_value(folder, st.FilterState())
    assert expected == pytest.approx(before + 12_345.0)
    # the refresh line is the last part a refresh updates: then tiles and status line are the new render's
    page.wait_for_function(f"() => {{ const t = document.querySelector('{TILE}');"
                           f" const r = document.querySelector('.crmlens-refresh-line');"
                           f" return t && Number(t.dataset.value) !== {before!r} && r"
                           f" && r.dataset.kind === 'refreshed'; }}", timeout=30_000)
    seconds = time.monotonic() - changed
    assert float(page.get_attribute(TILE, "data-value")) == pytest.approx(expected, rel=1e-12)
    assert int(page.get_attribute(STATUS, "data-render")) == renders + 1  # re-rendered in place, same page
    line = page.locator(".crmlens-refresh-line")
    assert line.get_attribute("data-kind") == "refreshed" and line.get_attribute("data-refreshes") == "1"
    assert "Data refreshed at" in line.inner_text()
    assert page.locator(".crmlens-refresh").inner_text().strip() == "Refresh data"
    assert page.outside == []
    print(f"new data shown {seconds:.1f} s after the file changed (check every {INTERVAL_S} s)")
