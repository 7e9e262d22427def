"""Computing ahead: while a viewer reads a dashboard, its kernel computes the filter states one change away, so
the next change is drawn from memory instead of computed while the viewer waits.

After every render, `ComputeAhead.shown(state)` replaces the list of states to compute (`one_change_away`: the
other regions at the same period, the other period presets and recent quarters of the same region — those next
to the current one in their drop-down first —, the other comparison) and wakes a daemon thread that computes
them one after the other with the dashboard's own `Dashboard.compute` (results remembered in memory and in the
shared disk cache, `DashboardData.memo`, so other kernels of the same source find them too). The thread steps
aside:

* it waits while the dashboard renders (`ComputeAhead.rendering`, taken by every render), and `DELAY_S` after
  it while the browser draws — the viewer's own change always comes first; a state the thread is computing
  when the viewer asks for it is waited for, not computed twice (`DashboardData.memo`);
* it only starts a state when a core is free (`crmlens.analysis.spare_cores`): with many viewers on a small
  machine, nobody's page is slowed by somebody else's guesses;
* it drops what is left when the viewer moves on (a new `shown`) and stops with the dashboard (`stop`).

``$CRMLENS_DASHBOARD_AHEAD`` sets how many states it computes after each render (default `DEFAULT_AHEAD`;
0 turns it off). It changes no number: the states are computed by the same code as when asked for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from crmlens.dashboard import state as st

#: How many states are computed ahead after each render (0: off).
AHEAD_ENV = "CRMLENS_DASHBOARD_AHEAD"
DEFAULT_AHEAD = 16
#: Seconds between two looks for a free core or the end of a render.
POLL_S = 0.2
#: Seconds after a render before the first state is started: the browser draws the page's charts first (it
#: shares the machine's cores, and the kernel still answers the page's widget messages).
DELAY_S = 0.5


def ahead_count(env: dict[str, str] | os._Environ[str] | None = None) -> int:
    """`AHEAD_ENV` as a count (default `DEFAULT_AHEAD`); a bad value raises ParameterError naming it."""
    from crmlens.errors import ParameterError

    raw = str((env if env is not None else os.environ).get(AHEAD_ENV, "")).strip()
    if not raw:
        return DEFAULT_AHEAD
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ParameterError(f"{AHEAD_ENV}: {raw!r} is not allowed; use a whole number of filter states "
                             f"(0 = off, default {DEFAULT_AHEAD})")
    return value


def nearest_first(options: Sequence[str], current: str) -> list[str]:
    """`options` other than `current`, nearest to it in the list first (the next, the one before, two after, two
    before, ...): a viewer stepping through a drop-down — arrow keys change its value at each press — asks for
    its neighbours next. In list order when `current` is not in it."""
    if current not in options:
        return list(options)
    here = list(options).index(current)
    out: list[str] = []
    for step in range(1, len(options)):
        out += [options[i] for i in (here + step, here - step) if 0 <= i < len(options)]
    return out


def one_change_away(state: st.FilterState, regions: Sequence[str], periods: Sequence[str]) -> list[st.FilterState]:
    """The filter states one change away from `state`, in the order they are computed: each other region (and
    all) at the same period and each other period of `periods` (the filter bar's presets and recent quarters)
    for the same region, taken in turn — the next change is as likely a region as a period —, each nearest to
    the current one in its drop-down first (`nearest_first`), then the other comparison. Slice filters, rep and
    language stay."""
    by_region = [dataclasses.replace(state, region=r) for r in nearest_first(["all", *regions], state.region)]
    by_period = [dataclasses.replace(state, period=p) for p in nearest_first(periods, state.period)]
    other = "last_year" if state.comparison == "previous" else "previous"
    out: list[st.FilterState] = []
    for k in range(max(len(by_region), len(by_period))):  # the next change is as likely a region as a period
        out += by_region[k:k + 1] + by_period[k:k + 1]
    out.append(dataclasses.replace(state, comparison=other))
    return out


class ComputeAhead:
    """The computing-ahead thread of one dashboard (see the module docs). `compute(state)` computes and
    remembers a state; `neighbours(state)` lists the states to compute after `state` is shown; `limit` caps
    them (default `ahead_count()`); `spare` tells whether a core is free (default
    `crmlens.analysis.spare_cores() >= 1`); `delay_s` is the pause after a render (`DELAY_S`)."""

    def __init__(self, compute: Callable[[st.FilterState], Any],
                 neighbours: Callable[[st.FilterState], list[st.FilterState]], *, limit: int | None = None,
                 spare: Callable[[], bool] | None = None, delay_s: float = DELAY_S) -> None:
        self.compute, self.neighbours = compute, neighbours
        self.delay_s = delay_s
        self.limit = ahead_count() if limit is None else limit
        self.spare = spare or _core_is_free
        self.computed = 0  # states computed so far (a test hook, and the bench's)
        self._queue: list[st.FilterState] = []
        self._generation = 0
        self._renders = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    @contextlib.contextmanager
    def rendering(self) -> Iterator[None]:
        """Held by a render: the thread starts no state meanwhile."""
        with self._lock:
            self._renders += 1
        try:
            yield
        finally:
            with self._lock:
                self._renders -= 1

    def shown(self, state: st.FilterState) -> None:
        """`state` is on screen: compute its neighbours next (what was left of the previous list is dropped)."""
        if not self.enabled or self._stop.is_set():
            return
        queue = self.neighbours(state)[: self.limit]
        with self._lock:
            self._generation += 1
            self._queue = queue
            self._idle.clear()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="crmlens-compute-ahead", daemon=True)
            self._thread.start()
        self._wake.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until the list of states is done (tests, the bench); True when it is."""
        return self._idle.wait(timeout)

    def stop(self) -> None:
        """End the thread (after the state it is computing)."""
        self._stop.set()
        self._wake.set()

    def _may_start(self, generation: int) -> bool | None:
        """True to start the next state, False to wait, None to drop the list (moved on, or stopped)."""
        if self._stop.is_set() or generation != self._generation:
            return None
        with self._lock:
            if self._renders:
                return False
        return self.spare()

    def _run(self) -> None:
        from crmlens.dashboard.widgets import _EXITING

        while not self._stop.is_set() and not _EXITING.is_set():
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                generation, queue = self._generation, list(self._queue)
            if self.delay_s and self._stop.wait(self.delay_s):  # the page's own drawing first
                break
            for s in queue:
                while (go := self._may_start(generation)) is False and not _EXITING.is_set():
                    time.sleep(POLL_S)
                if go is None or _EXITING.is_set():
                    break
                with contextlib.suppress(Exception):  # a state that fails is shown with its message when asked for
                    self.compute(s)
                self.computed += 1
            else:
                with self._lock:
                    if generation == self._generation:
                        self._idle.set()
            if self._stop.is_set():
                self._idle.set()


def _core_is_free() -> bool:
    from crmlens.analysis import spare_cores

    return spare_cores() >= 1
