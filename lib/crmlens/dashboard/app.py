"""What a dashboard notebook calls — three lines, so the notebooks hold no logic:

    board_data = app.load("overview")   # before wait_for_request: imports, data, caches (preheated kernels)
    wait_for_request()                   # Voila: the viewer's request (and its query string) arrives
    board = app.show("overview", board_data)

`load` opens the source Voila was started for (`crmlens.dashboard.serve.source_from_env`; the demo by
default), validates its tables once and computes the views a viewer most likely opens first (`warm_states`:
every region at the default period, every period preset for all regions; results are shared on disk between
kernels, `crmlens.dashboard.model.DashboardData.memo`), so the first page and the first changes are quick.
`show` displays the dashboard of the page's deep link (``QUERY_STRING``, e.g. ``region=East&language=zh``; a
bad link opens the default view with a message naming the bad parameter). The page's language (``language``,
English by default) becomes the kernel's. Preheating warms the English views; a Chinese one is computed when
first asked for.
"""

from __future__ import annotations

import os
import time

#: How many kernels may preheat at once (the others queue): by default half the cores, at least one. Voila
#: refills its whole pool the moment viewers take its kernels — 20 viewers arriving together start 20 kernels
#: preheating (imports, data, warm views: ~10 s of CPU each), which on a small machine starved the 20 pages
#: of the viewers they were started for (none rendered within 4 minutes). Queued, they leave the other cores
#: to the pages.
PREHEAT_SLOTS_ENV = "CRMLENS_DASHBOARD_PREHEAT_SLOTS"

#: The dashboard of the default view a preheating kernel built in `load`, by view name (taken by `show`).
_PREBUILT: dict[str, Dashboard] = {}

#: The preheat slot this kernel holds (an open, locked file) until `load` has warmed its views.
_SLOT: dict[str, object] = {"file": None}


def preheat_slots() -> int:
    """`PREHEAT_SLOTS_ENV` (a whole number ≥ 1), else half the usable cores, at least 1."""
    raw = os.environ.get(PREHEAT_SLOTS_ENV, "").strip()
    if raw.isdigit() and int(raw) >= 1:
        return int(raw)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // 2)


def _slot_dir() -> str:
    """Where the slots' lock files are: next to the shared results (``$CRMLENS_DASHBOARD_CACHE``), so every
    kernel of a server (and of servers sharing them) queues together; the system's temporary folder when that
    cache is off."""
    import tempfile

    value = os.environ.get("CRMLENS_DASHBOARD_CACHE", "")
    if value.strip().lower() in ("off", "0", "none"):
        return os.path.join(tempfile.gettempdir(), f"crmlens-preheat-{os.getuid()}")
    if value:
        return os.path.join(value, "preheat-slots")
    from crmlens import paths

    return str(paths.OUTPUTS_DIR / ".cache" / "dashboard" / "preheat-slots")


def _take_slot() -> float:
    """Wait for a preheat slot (`preheat_slots` lock files, `fcntl.flock`: the operating system frees a slot
    whose kernel died); seconds waited. Without file locks (not Linux/macOS) or a writable folder: no queue."""
    try:
        import fcntl
    except ImportError:
        return 0.0
    start = time.monotonic()
    try:
        folder = _slot_dir()
        os.makedirs(folder, exist_ok=True)
        files = [open(os.path.join(folder, f"slot-{i}.lock"), "a+") for i in range(preheat_slots())]  # noqa: SIM115
    except OSError:
        return 0.0
    while True:
        for fh in files:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue
            _SLOT["file"] = fh
            for other in files:
                if other is not fh:
                    other.close()
            return time.monotonic() - start
        time.sleep(0.25)


def release_slot() -> None:
    """Give this kernel's preheat slot to the next kernel in the queue (`load` does, once warm)."""
    fh = _SLOT["file"]
    _SLOT["file"] = None
    if fh is not None:
        fh.close()  # closing the file drops the lock


def _yield_to_viewers() -> float:
    """In a kernel preheating for Voila's pool, wait for a preheat slot (`PREHEAT_SLOTS_ENV`); seconds waited.
    (Voila starts a kernel that replaces a used one only `crmlens.dashboard.serve.PREHEAT_DELAY_S` after.)"""
    if os.environ.get("VOILA_PREHEAT") != "True":  # (`preheating()`, defined after the heavy imports)
        return 0.0
    return _take_slot()


_yield_to_viewers()

import dataclasses  # noqa: E402 - the heavy imports come after the wait above

from crmlens import kpis  # noqa: E402
from crmlens.dashboard import serve  # noqa: E402
from crmlens.dashboard import state as st  # noqa: E402
from crmlens.dashboard.model import DEFAULT_FACT_TABLES, DashboardData  # noqa: E402
from crmlens.dashboard.views import ViewSpec  # noqa: E402
from crmlens.dashboard.widgets import VIEWS, Dashboard, open_dashboard, warm  # noqa: E402
from crmlens.errors import ParameterError  # noqa: E402

#: What a preheating kernel computes before its viewer arrives besides the default view (always built: `load`):
#: "default" (every region at the default period, and every period preset for all regions), "all" (every
#: region × every preset) or "0" (nothing more).
WARM_ENV = "CRMLENS_DASHBOARD_WARM"
WARM_CHOICES = ("default", "all", "0")


def warm_states(regions: list[str], choice: str = "default", seed: int | None = None) -> list[st.FilterState]:
    """The filter states a preheating kernel computes (see `WARM_ENV`), default view first. The rest is
    shuffled with `seed` (the kernel's pid) so kernels preheating at the same time mostly compute different
    states and share them through the disk cache."""
    import random

    if choice not in WARM_CHOICES:
        raise ParameterError(f"{WARM_ENV}: {choice!r} is not allowed; use one of {', '.join(WARM_CHOICES)}")
    if choice == "0":
        return []
    default = st.FilterState()
    presets = [p for p in st.PRESETS if p != default.period]
    states = [dataclasses.replace(default, region=r) for r in ["all", *regions]]
    states += [dataclasses.replace(default, region=r, period=p) for r in ["all", *regions] for p in presets
               if choice == "all" or r == "all"]
    rest = states[1:]
    random.Random(seed).shuffle(rest)
    return [states[0], *rest]


def view_tables(spec: ViewSpec) -> set[str]:
    """The tables view `spec` reads: its tiles' KPIs' and its panels' (`crmlens.dashboard.panels.PANEL_TABLES`)."""
    from crmlens.dashboard.panels import PANEL_TABLES

    tables = {t for name in spec.tiles for t in kpis.get_kpi(name).tables}
    for key in spec.panels:
        tables.update(PANEL_TABLES[key])
    return tables


def load(view: str = "overview", source: str | None = None, mapping: str | None = None) -> DashboardData:
    """The dashboard data of the served source (or `source` / `mapping`): the tables view `view` needs (its
    tiles' KPIs' tables and `DEFAULT_FACT_TABLES`); a preheating kernel also computes the `warm_states` (the
    choice is checked in every kernel) and builds the default view's dashboard (`show` takes it), then gives
    its preheat slot to the next kernel."""
    try:
        env_source, env_mapping = serve.source_from_env()
        spec = VIEWS[view]
        tables = {*DEFAULT_FACT_TABLES, *view_tables(spec)}
        board_data = DashboardData.load(source or env_source, mapping if source else (mapping or env_mapping),
                                        tables=sorted(tables))
        choice = os.environ.get(WARM_ENV, "default").strip().lower()
        states = warm_states(board_data.options["regions"], choice, seed=os.getpid())
        if preheating():  # a viewer waiting for a cold kernel gets their own view first, not the warm-up
            warm(board_data, spec, states)
            # the default view's widgets, ready before the viewer arrives (`show` moves them to the page's link)
            _PREBUILT[view] = Dashboard(board_data, spec)
    finally:
        release_slot()
    return board_data


def preheating() -> bool:
    """True in a kernel Voila runs ahead of its viewer (its pool); False when a viewer is waiting for it."""
    return os.environ.get("VOILA_PREHEAT") == "True"


def show(view: str, board_data: DashboardData, query: str | None = None) -> Dashboard:
    """Display view `view` for the page's deep link (`query`, default ``$QUERY_STRING``) and return it: the
    dashboard `load` built while preheating, moved to the link, else a new one."""
    from IPython.display import display

    query = os.environ.get("QUERY_STRING", "") if query is None else query
    board = _PREBUILT.pop(view, None)
    if board is not None and board.data is not board_data:  # built from other data: not this page's
        board.ahead.stop()
        board = None
    if board is None:
        board = open_dashboard(view, board_data, query)
    else:
        board.open_link(query)
        board.start_auto_refresh()
    display(board.app)
    return board
