"""Pre-started ("warm") Jupyter kernels for the run.

Starting a kernel and importing pandas, Ibis, plotly and the library costs 3–5 s of CPU; a notebook's own
work is often less. The pool starts kernels ahead of need and warms them (the imports, nothing else), and
after a task that *succeeded* it resets the kernel's namespace (IPython's ``%reset -f``: every variable of
the notebook gone, execution count back to 1; imported modules stay loaded) and hands it to the next task,
at most `max_uses` times. A kernel whose task failed, timed out or died is shut down, never reused.
Kernels talk over IPC sockets in a private folder (no TCP ports to collide).
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import tempfile
import threading
import time
import uuid
from typing import Any

from crmlens.errors import RunError

KERNEL_NAME = "crmlens"
#: Run in each kernel before it is handed out: the imports every analysis notebook makes (silent, no history).
#: Run (silently) between two tasks on the same kernel: nothing of the previous notebook stays visible.
RESET_CODE = ("get_ipython().run_line_magic('reset', '-f')\n"
              "get_ipython().execution_count = 1")
WARM_CODE = ("import pandas, numpy, ibis, ibis.backends.duckdb, plotly.graph_objects, plotly.io, nbformat\n"
             "import plotly.io._renderers  # imports jsonschema's format checkers: 3-4 s\n"
             "import crmlens.notebook, crmlens.charts, crmlens.metrics, crmlens.kpis, crmlens.data\n"
             "crmlens.charts.register_template()  # builds plotly's figure classes (the charts load plotly lazily)\n"
             # what is loaded now lives as long as the kernel: the garbage collector stops scanning it (the reset
             # between tasks runs a full collection, ~0.4 s over these objects otherwise)
             "import gc; gc.collect(); gc.freeze()")


def _run_sync(fn: Any) -> Any:
    from jupyter_core.utils import run_sync

    return run_sync(fn)


class KernelPool:
    """Up to `size` warm kernels ready ahead of demand.

    `acquire()` returns a started, warmed kernel manager (starting one if none is ready) and starts a
    replacement in the background while more tasks are expected (`expect(n)`); `release(km)` shuts a used one
    down; `close()` shuts everything down (also kernels still starting).
    """

    def __init__(self, size: int = 1, kernel_name: str = KERNEL_NAME, warm_code: str | None = WARM_CODE,
                 startup_timeout: float = 120, env: dict[str, str] | None = None, cwd: str | None = None,
                 max_uses: int = 20) -> None:
        self.size = max(1, int(size))
        self.env = dict(env or {})  # added to the kernels' environment
        self.cwd = cwd  # the kernels' working directory (the notebooks' folder, as in JupyterLab)
        self.max_uses = max(1, int(max_uses))
        self._uses: dict[int, int] = {}
        self.kernel_name = kernel_name
        self.warm_code = warm_code
        self.startup_timeout = startup_timeout
        self._ready: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._starting = 0
        self._expected: int | None = None  # tasks still to hand a kernel to (None: unknown, keep `size` ready)
        self._live: set[Any] = set()
        self._closed = False
        self._error: Exception | None = None
        self._recycling = 0
        self._dir = tempfile.mkdtemp(prefix="crmlens-kernels-")

    # -- public -------------------------------------------------------------------------------------------
    def expect(self, n: int | None) -> None:
        """Tell the pool how many more kernels will be asked for (it starts no more than that)."""
        with self._lock:
            self._expected = n
        self._refill()

    def acquire(self) -> Any:
        """A warm kernel manager for one task (the caller must `release` it). Waits for a kernel already
        starting rather than starting one more (on a small machine parallel start-ups only slow each other)."""
        with self._lock:
            if self._expected is not None:
                self._expected = max(0, self._expected - 1)
        while True:
            if self._closed:
                raise RunError("the kernel pool is closed (the run is stopping)")
            try:
                km = self._ready.get(timeout=0.2)
            except queue.Empty:
                with self._lock:
                    starting, error = self._starting + self._recycling, self._error
                if starting == 0:
                    if error is not None:
                        self._error = None
                        raise error from None
                    self._refill(at_least=1)
                continue
            self._refill()
            if _run_sync(km.is_alive)():
                return km
            self.release(km)  # died while waiting: take the next one

    def release(self, km: Any) -> None:
        """Shut a used kernel down (now) and free its resources."""
        with contextlib.suppress(Exception):
            _run_sync(km.shutdown_kernel)(now=True)  # also frees its sockets and connection file
        with self._lock:
            self._live.discard(km)
            self._uses.pop(id(km), None)

    def kill_all(self) -> None:
        """Shut down every kernel of the pool, also those in use (stopping a run)."""
        with self._lock:
            live = list(self._live)
        for km in live:
            self.release(km)

    def close(self) -> None:
        """Stop handing out kernels and shut every one down."""
        self._closed = True
        self.kill_all()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> KernelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------------------
    def _refill(self, at_least: int = 0) -> None:
        """Keep `size` kernels alive (in use, ready or starting), no more than the tasks still to come need."""
        with self._lock:
            if self._closed:
                return
            alive, ready = len(self._live), self._ready.qsize()
            in_use = alive - ready - self._starting
            want = self.size if self._expected is None else min(self.size, in_use + self._expected)
            n = max(0, want - alive)
            if at_least and ready == 0 and self._starting == 0 and self._recycling == 0:
                n = max(n, at_least)
            self._starting += n
        for _ in range(n):
            threading.Thread(target=self._start_ahead, name="crmlens-kernel-start", daemon=True).start()

    def recycle(self, km: Any) -> None:
        """After a task that succeeded: reset the kernel's namespace and make it ready for the next task
        (or shut it down when it has served `max_uses` tasks, or the reset fails). Done in the background:
        the task that used it is finished already."""
        with self._lock:
            self._recycling += 1
        threading.Thread(target=self._recycle, args=(km,), name="crmlens-kernel-reset", daemon=True).start()

    def _recycle(self, km: Any) -> None:
        try:
            uses = self._uses.get(id(km), 0) + 1
            if self._closed or uses >= self.max_uses or not self._reset(km):
                self.release(km)
                self._refill()
                return
            self._uses[id(km)] = uses
            self._ready.put(km)
        finally:
            with self._lock:
                self._recycling -= 1

    def _reset(self, km: Any) -> bool:
        try:
            if not _run_sync(km.is_alive)():
                return False
            kc = km.client()
            kc.start_channels()
            try:
                reply = self._execute(km, kc, RESET_CODE, timeout=30)
            finally:
                kc.stop_channels()
            return reply is not None and reply["content"].get("status") == "ok"
        except Exception:
            return False

    def _execute(self, km: Any, kc: Any, code: str, timeout: float) -> dict[str, Any] | None:
        """Run `code` silently; its execute reply, or None when the pool closed or the kernel died meanwhile
        (the run ended during a reset: not waiting out the timeout with a client whose heartbeat reopens its
        socket every second to a kernel that is gone)."""
        msg_id = kc.execute(code, silent=True, store_history=False)
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = _run_sync(kc.get_shell_msg)(timeout=min(1.0, max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                if self._closed or not _run_sync(km.is_alive)():
                    return None
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"no answer from the kernel within {timeout:g} s") from None
                continue
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                return reply

    def _start_ahead(self) -> None:
        try:
            km = self._start()
        except Exception as err:  # handed to the task waiting for a kernel
            km = None
            with self._lock:
                self._error = err
        finally:
            with self._lock:
                self._starting -= 1
        if km is None:
            return
        if self._closed:
            self.release(km)
        else:
            self._ready.put(km)

    def _start(self) -> Any:
        from jupyter_client.manager import AsyncKernelManager

        name = uuid.uuid4().hex[:12]
        km = AsyncKernelManager(kernel_name=self.kernel_name, transport="ipc",
                                connection_file=f"{self._dir}/{name}.json")
        km.ip = f"{self._dir}/{name}"
        with self._lock:
            self._live.add(km)
        try:
            # no IPython history: kernels side by side share one history database and print
            # "ERROR! Session/line number was not unique" into the notebook they run
            _run_sync(km.start_kernel)(env={**os.environ, **self.env}, cwd=self.cwd,
                                       extra_arguments=["--HistoryManager.enabled=False"])
            kc = km.client()
            kc.start_channels()
            try:
                _run_sync(kc.wait_for_ready)(timeout=self.startup_timeout)
                if self.warm_code:
                    reply = self._execute(km, kc, self.warm_code, timeout=self.startup_timeout)
                    if reply is None:
                        raise RunError(f"kernel {self.kernel_name!r} stopped while warming (the pool closed)")
                    if reply["content"].get("status") != "ok":
                        raise RunError(f"warming kernel {self.kernel_name!r} failed: "
                                       f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}")
            finally:
                kc.stop_channels()
        except Exception:
            self.release(km)
            raise
        return km


_worker_pool: KernelPool | None = None
_worker_lock = threading.Lock()


def worker_pool(size: int = 1, kernel_name: str = KERNEL_NAME, env: dict[str, str] | None = None,
                cwd: str | None = None) -> KernelPool:
    """The pool of this process (one per Dask worker process; created on first use, renewed when the kernel,
    its environment or folder changes, i.e. for another run)."""
    global _worker_pool
    with _worker_lock:
        old = _worker_pool
        if old is None or old._closed or (old.kernel_name, old.env, old.cwd) != (kernel_name, dict(env or {}), cwd):
            if old is not None:
                old.close()
            _worker_pool = KernelPool(size=size, kernel_name=kernel_name, env=env, cwd=cwd)
        return _worker_pool


def close_worker_pool() -> bool:
    """Shut down this process's pool (called on every Dask worker at the end of a run)."""
    global _worker_pool
    with _worker_lock:
        pool, _worker_pool = _worker_pool, None
    if pool is not None:
        pool.close()
    return True
