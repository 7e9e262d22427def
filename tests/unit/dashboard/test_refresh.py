"""Live refresh of an open dashboard: the source's version (`DashboardData.source_version`), `reload`, and
`Dashboard.refresh` / the automatic check, on a copy of the tiny demo whose Parquet files the tests rewrite.

New numbers are checked against the library computed independently on the new files (`crmlens.data.open_slice`
and `crmlens.dashboard.tiles.tiles_for`), and against the numbers shown before the change."""

from __future__ import annotations

import dataclasses
import io
import re
import shutil
import threading
import time
from html import unescape

import pandas as pd
import pytest

from crmlens import data, i18n
from crmlens.cli import main
from crmlens.dashboard import serve
from crmlens.dashboard import state as st
from crmlens.dashboard.model import DashboardData, database_version
from crmlens.dashboard.tiles import tiles_for
from crmlens.dashboard.widgets import OVERVIEW, Dashboard
from crmlens.errors import ParameterError

KPI = "bookings_amount"
#: The overview's tiles and drill-down with one chart: what a refresh re-renders, without the forecast's
#: simulations and the other charts on every render (the full view is the browser test's)
LIGHT = dataclasses.replace(OVERVIEW, panels=("pipeline",), key_findings=False)


@pytest.fixture
def folder(tiny_demo, tmp_path):
    """A copy of the tiny demo the test may rewrite."""
    return shutil.copytree(tiny_demo, tmp_path / "demo")


@pytest.fixture
def board_data(folder, tmp_path) -> DashboardData:
    return DashboardData(data.connect(str(folder)), cache_dir=tmp_path / "cache")


@pytest.fixture(scope="module")
def unchanged_data(tiny_demo) -> DashboardData:
    """The tiny demo itself, for tests that change no file (quicker: no copy to validate)."""
    return DashboardData(data.connect(str(tiny_demo)), cache_dir=False)


def library_value(folder, state: st.FilterState, kpi: str = KPI) -> float | None:
    """`kpi` the notebooks' way, on the files as they are now: a new connection, the engine-filtered slice."""
    con = data.connect(str(folder))
    s = data.open_slice(st.to_params(state, data.data_as_of(con)), con)
    return next(t.value for t in tiles_for(s, [kpi]))


def shown_value(board_data: DashboardData, state: st.FilterState, kpi: str = KPI) -> float | None:
    return next(t.value for t in tiles_for(board_data.view(state), [kpi]))


def tile_values(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-kpi="([^"]*)" data-value="([^"]*)"', html))


def bump_won_amount(folder, board_data: DashboardData, extra: float = 12_345.0) -> None:
    """Rewrite opportunities.parquet with one won deal of the default period worth `extra` more."""
    period = board_data.view(st.FilterState()).period
    path = folder / "opportunities.parquet"
    frame = pd.read_parquet(path)
    won = frame.index[(frame["is_won"] == True) & (frame["closed_at"] >= period.start)  # noqa: E712
                      & (frame["closed_at"] < period.end)]
    frame.loc[won[0], "amount"] = frame.loc[won[0], "amount"] + extra
    frame.to_parquet(path, index=False)


def add_later_won_deal(folder, board_data: DashboardData, amount: float = 50_000.0) -> pd.Timestamp:
    """Append a won deal closed after the data's last event (the data's as-of date moves a day); its close."""
    path = folder / "opportunities.parquet"
    frame = pd.read_parquet(path)
    row = frame[frame["is_won"] == True].iloc[[-1]].copy()  # noqa: E712
    closed = board_data.as_of + pd.Timedelta(hours=10)
    row["opportunity_id"], row["amount"], row["closed_at"] = "O99999", amount, closed
    row["created_at"] = closed - pd.Timedelta(days=30)
    row["expected_close_date"] = closed.normalize()
    pd.concat([frame, row], ignore_index=True).to_parquet(path, index=False)
    return closed


def render_count(board: Dashboard) -> int:
    return int(re.search(r"data-render='(\d+)'", board.status.value).group(1))


def refresh_line(board: Dashboard) -> tuple[str, str, str]:
    """(kind, reloads so far, text) of the refresh line."""
    found = re.search(r"data-kind='(\w+)' data-refreshes='(\d+)'[^>]*>(.*)</span>", board.refresh_note.value)
    assert found, board.refresh_note.value
    return found.group(1), found.group(2), unescape(found.group(3))


# ------------------------------------------------------------------------------------------ versions

def test_unchanged_source_keeps_its_version_and_is_not_reloaded(unchanged_data):
    board_data = unchanged_data
    assert board_data.version is not None
    assert board_data.source_version() == board_data.version
    assert not board_data.changed()
    board = Dashboard(board_data, LIGHT)
    before = (board.tile_row.value, render_count(board))
    assert board.refresh_note.value == ""
    assert board.check_for_update() is False  # the automatic check: nothing changed, nothing said
    assert board.data is board_data and board.refreshes == 0
    assert (board.tile_row.value, render_count(board)) == before
    assert board.refresh_note.value == ""
    assert board.refresh(manual=True) is False  # a click says so
    kind, reloads, text = refresh_line(board)
    assert (kind, reloads) == ("current", "0") and text.startswith("The data is up to date (checked at ")
    assert board.data is board_data and render_count(board) == before[1]


def test_a_rewritten_file_is_a_new_version_and_reload_gives_the_new_numbers(folder, board_data):
    state = st.FilterState()
    old_value = shown_value(board_data, state)
    assert old_value == pytest.approx(library_value(folder, state))
    bump_won_amount(folder, board_data)
    assert board_data.changed()
    new = board_data.reload()
    assert new is not board_data and new.con is not board_data.con
    assert new.version == new.source_version() != board_data.version
    assert not new.changed()
    expected = library_value(folder, state)
    assert expected == pytest.approx(old_value + 12_345.0)
    assert shown_value(new, state) == pytest.approx(expected, rel=1e-12)
    # nothing computed for the old version is served: its results live under another key, on disk too
    assert new.cache_dir is not None and new.cache_dir != board_data.cache_dir
    assert shown_value(board_data, state) == pytest.approx(old_value)  # the old object is left as it was


def test_refresh_rerenders_the_view_with_the_new_tiles_and_as_of_date(folder, board_data):
    board = Dashboard(board_data, LIGHT)
    state = board.state
    before_tiles, before_header, renders = tile_values(board.tile_row.value), board.header.value, render_count(board)
    closed = add_later_won_deal(folder, board_data)
    assert board.check_for_update() is True
    assert board.data is not board_data and board.refreshes == 1
    assert board.data.as_of == closed.normalize() + pd.Timedelta(days=1)  # midnight after the new last event
    assert render_count(board) == renders + 1 and board.state == state
    shown = tile_values(board.tile_row.value)
    assert float(shown[KPI]) == pytest.approx(library_value(folder, state), rel=1e-12)
    assert shown != before_tiles
    assert board.header.value != before_header
    assert f"data as of {i18n.format_date(board.data.as_of.normalize())}" in unescape(board.header.value)
    kind, reloads, text = refresh_line(board)
    assert (kind, reloads) == ("refreshed", "1") and "data as of" in text
    assert board.filters.as_of == board.data.as_of
    assert board.drill.data is board.data
    assert board.check_for_update() is False and board.refreshes == 1  # that version is now the one shown
    east = st.FilterState(region="East")  # later filter changes are computed on the new data
    board.set_state(east)
    assert float(tile_values(board.tile_row.value)[KPI]) == pytest.approx(library_value(folder, east), rel=1e-12)


def test_the_refresh_button_reloads_and_keeps_the_filters(folder, board_data):
    board = Dashboard(board_data, LIGHT)
    chinese = st.FilterState(period="2026-Q3", language="zh")
    board.set_state(chinese)
    assert board.refresh_button.description == "刷新数据"
    old = shown_value(board_data, chinese)
    bump_won_amount(folder, board_data)
    board.refresh_button.click()
    assert board.refreshes == 1 and board.state == chinese
    new = float(tile_values(board.tile_row.value)[KPI])
    assert new == pytest.approx(library_value(folder, chinese), rel=1e-12)
    assert new != pytest.approx(old)
    kind, _n, text = refresh_line(board)
    assert kind == "refreshed" and text.startswith("数据已于")


def test_a_failed_reload_keeps_the_data_shown_and_says_why(folder, board_data):
    board = Dashboard(board_data, LIGHT)
    before = (board.tile_row.value, board.header.value, render_count(board))
    good = (folder / "opportunities.parquet").read_bytes()
    (folder / "opportunities.parquet").write_bytes(good[: len(good) // 2])  # a half-written file
    assert board_data.changed()
    assert board.check_for_update() is False
    assert board.data is board_data and board.refreshes == 0
    assert (board.tile_row.value, board.header.value, render_count(board)) == before
    kind, reloads, text = refresh_line(board)
    assert (kind, reloads) == ("error", "0")
    assert text.startswith("Could not refresh the data: ") and "opportunities" in text
    assert text.endswith(f"Still showing the data as of {i18n.format_date(board_data.as_of.normalize())}.")
    # that version is not tried again by the automatic check (a click would): it waits for the next change
    board_data.reload = lambda: pytest.fail("a version that failed to load was loaded again")
    assert board.check_for_update() is False
    del board_data.reload
    # the file is whole again: a new version, loaded
    pd.read_parquet(io.BytesIO(good)).to_parquet(folder / "opportunities.parquet", index=False)
    assert board.check_for_update() is True and board.refreshes == 1
    assert refresh_line(board)[0] == "refreshed"


def test_a_failing_version_check_is_reported_not_raised(unchanged_data, monkeypatch):
    board_data = unchanged_data
    board = Dashboard(board_data, LIGHT)

    def broken(*_a, **_k):
        raise OSError("the share went away")
    monkeypatch.setattr(board_data, "source_version", broken)
    assert board.check_for_update() is False
    kind, _n, text = refresh_line(board)
    assert kind == "error" and text == "Could not check for new data: OSError: the share went away"


# ------------------------------------------------------------------------------------------ the automatic check

def test_the_automatic_check_runs_in_a_daemon_thread_and_applies_new_data(folder, board_data):
    board = Dashboard(board_data, LIGHT)
    thread = board.start_auto_refresh(0.2)
    try:
        assert thread is not None and thread.daemon and thread.is_alive()
        time.sleep(0.5)
        assert board.refreshes == 0  # checked, nothing changed
        bump_won_amount(folder, board_data)
        deadline = time.monotonic() + 30
        while board.refreshes == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert board.refreshes == 1
        assert float(tile_values(board.tile_row.value)[KPI]) == pytest.approx(
            library_value(folder, board.state), rel=1e-12)
    finally:
        board.stop_auto_refresh()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_concurrent_refreshes_do_not_overlap(folder, board_data, monkeypatch):
    board = Dashboard(board_data, LIGHT)
    bump_won_amount(folder, board_data)
    gate, slow_reload = threading.Event(), board_data.reload

    def reload():
        gate.wait(10)
        return slow_reload()
    monkeypatch.setattr(board_data, "reload", reload)
    results: list[bool] = []
    first = threading.Thread(target=lambda: results.append(board.refresh(manual=False)))
    first.start()
    time.sleep(0.2)
    assert board.refresh(manual=True) is False  # one refresh at a time
    gate.set()
    first.join(30)
    assert results == [True] and board.refreshes == 1


def test_refresh_interval_from_the_environment():
    env = serve.REFRESH_ENV
    assert serve.DEFAULT_REFRESH_S == 300
    assert serve.refresh_interval({}) == 300 == serve.refresh_interval({env: " "})
    assert serve.refresh_interval({env: "0"}) == 0
    assert serve.refresh_interval({env: "2.5"}) == 2.5
    for bad in ("five", "-1", "nan", "inf", "1e999"):
        with pytest.raises(ParameterError) as err:
            serve.refresh_interval({env: bad})
        message = str(err.value)
        assert message.startswith(f"{env}: {bad!r} is not a number of seconds")
        assert "number ≥ 0" in message and "0 turns the automatic check for new data off" in message
    assert serve.voila_env(refresh_s=2, base={})[env] == "2"
    assert env not in serve.voila_env(base={})
    with pytest.raises(ParameterError, match=r"^refresh: -3"):
        serve.voila_env(refresh_s=-3, base={})


def test_a_bad_interval_in_the_kernel_turns_the_check_off_with_a_message(unchanged_data, monkeypatch):
    monkeypatch.setenv(serve.REFRESH_ENV, "soon")
    board = Dashboard(unchanged_data, LIGHT)
    assert board.start_auto_refresh() is None
    kind, _n, text = refresh_line(board)
    assert kind == "error" and text.startswith(f"Automatic refresh is off: {serve.REFRESH_ENV}: 'soon'")
    monkeypatch.setenv(serve.REFRESH_ENV, "0")
    assert board.start_auto_refresh() is None  # 0: off, quietly


def test_cli_refresh_option(capsys, monkeypatch):
    monkeypatch.delenv(serve.REFRESH_ENV, raising=False)
    assert main(["dashboard", "--refresh", "soon", "--print-command"]) == 2
    assert "--refresh: 'soon' is not a number of seconds" in capsys.readouterr().err
    assert main(["dashboard", "--refresh", "30", "--print-command"]) == 0
    monkeypatch.setenv(serve.REFRESH_ENV, "-2")
    assert main(["dashboard", "--print-command"]) == 2
    assert f"{serve.REFRESH_ENV}: '-2'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ databases

def test_a_duckdb_file_version_follows_its_writes(tmp_path):
    import duckdb

    path = tmp_path / "crm.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE opportunities AS SELECT 1 AS amount")
    info = data.SourceInfo(f"duckdb:///{path}", "url", tables=("opportunities",))
    first = database_version(info, None)
    assert first == database_version(info, None)
    time.sleep(0.01)
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE opportunities SET amount = 2")
    assert database_version(info, None) != first


@pytest.mark.postgres
@pytest.mark.slow
def test_a_postgres_version_follows_its_tables_statistics(postgres_server, tiny_demo):
    import ibis
    import psycopg

    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE crm_refresh")
    url = f"{postgres_server}/crm_refresh"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE opportunities (opportunity_id text, amount double precision)")
        conn.execute("INSERT INTO opportunities VALUES ('O1', 10.0)")
    info = data.SourceInfo(url, "url", tables=("opportunities",))
    con = ibis.connect(url)
    try:
        time.sleep(1.5)  # the writer's statistics reach the server when its session ends
        first = database_version(info, con)
        assert first == database_version(info, con)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE opportunities SET amount = 11.0")
        deadline = time.monotonic() + 15
        while database_version(info, con) == first and time.monotonic() < deadline:
            time.sleep(0.3)
        assert database_version(info, con) != first
    finally:
        con.disconnect()
