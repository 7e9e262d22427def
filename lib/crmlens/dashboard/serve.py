"""Serving the dashboards with Voila: the command line `crmlens dashboard` (and `make dashboard`) runs.

`voila_command(...)` builds the Voila argv and `voila_env(...)` its environment; the browser tests and the
benchmark start Voila through the same two functions, so what is tested is what is served.

* Address: 127.0.0.1 by default. Any other address (``--host 0.0.0.0`` to share the dashboards on a network)
  requires a token: `voila_command` raises `ParameterError` when asked to serve off loopback without one, and
  `crmlens dashboard --host ...` makes a random one when none is given (printed with the URL to share).
  Voila never moves to another port silently (``--Voila.port_retries=0``): a taken port is an error.
* Preheated kernels: ``pool_size`` kernels per dashboard notebook run it up to `wait_for_request` before a
  viewer arrives (imports, data loaded and validated, the likely first views computed), so a page shows its
  tiles in about two seconds (docs/dashboards.md, Speed). Size the pool for the viewers expected at once;
  more viewers get a cold kernel (slower).
* Culling: a kernel idle for ``cull_idle_timeout`` seconds (default 15 min) is shut down — a closed tab frees
  its memory (~0.4–0.9 GB per viewer on the default demo). Checked every ``cull_interval`` seconds.
* The data: the kernels read the source named by ``CRMLENS_DASHBOARD_SOURCE`` / ``CRMLENS_DASHBOARD_MAPPING``
  (set from ``--source`` / ``--mapping``; default the demo).
* Live refresh: an open dashboard checks its source for a new version every ``CRMLENS_DASHBOARD_REFRESH_S``
  seconds (``--refresh``; default 300, 0 = only the page's "Refresh data" button) and re-renders on new data.
* Stopping: `run_voila` (what `crmlens dashboard` runs) starts Voila in a session of its own and, on SIGTERM,
  SIGINT or SIGHUP or any other exit of its process, stops Voila and every process below it — the kernels,
  which Jupyter starts in sessions of their own — (`stop_process_tree`: SIGTERM, SIGKILL after
  `STOP_GRACE_S`), then exits with status 0.
* Offline: the pages use the `crmlens` Voila template (Voila's `lab` template without its Font Awesome CDN
  links, shipped in ``crmlens/dashboard/jupyter``, plus plotly.js served from the plotly package's copy:
  `prepare_template`); the widgets' code comes from the server too.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import secrets
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from crmlens import paths
from crmlens.errors import ParameterError

#: Where the dashboard notebooks live.
DASHBOARDS_DIR: Path = paths.NOTEBOOKS_DIR / "dashboards"
#: The landing page's notebook (in `DASHBOARDS_DIR`): every view with a thumbnail and a line
#: (`crmlens.dashboard.landing`); `crmlens dashboard` prints its address.
LANDING = "index"
#: The Jupyter data folder holding the `crmlens` Voila template, as committed (`prepare_template` copies it
#: with plotly.js into a runtime folder that is put on JUPYTER_PATH for Voila).
JUPYTER_DATA_DIR: Path = Path(__file__).parent / "jupyter"
#: Set in the environment of Voila's kernels when the page template loads plotly.js (then the dashboards do
#: not send it over the widget channel).
PAGE_PLOTLY_ENV = "CRMLENS_DASHBOARD_PAGE_PLOTLY"
TEMPLATE = "crmlens"
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8866
DEFAULT_POOL_SIZE = 2
DEFAULT_CULL_IDLE_S, DEFAULT_CULL_INTERVAL_S = 900, 60
#: JupyterLab front-end extensions installed in the environment that the dashboard pages do not load.
UNUSED_EXTENSIONS: tuple[str, ...] = ("jupyterlab-plotly", "jupyterlab_pygments")
#: Seconds Voila waits before it replaces a pool kernel a viewer took (Voila's ``fill_delay``, 1 s by default).
#: The replacement's start — a process, ipykernel's imports, Voila compiling the page template, then the data —
#: slowed the page of the viewer who had just taken a kernel on a small machine: Voila served that page's ~60
#: script files in 1.2 s instead of 0.15 s, and drew its charts later. 5 s: after that page's render (2–3 s on
#: 2 cores; with 3 s the replacement still started under the last charts of the larger views).
#: `PREHEAT_DELAY_ENV` (seconds ≥ 0) overrides it.
PREHEAT_DELAY_ENV = "CRMLENS_DASHBOARD_PREHEAT_DELAY"
PREHEAT_DELAY_S = 5.0
#: Seconds Voila waits for a cell's output before giving up on it (nbclient's default, 4 s, drops the output of
#: a page whose kernel is slowed down by others preheating).
IOPUB_TIMEOUT_S = 60
#: Environment variables the dashboard notebooks read to find their data.
SOURCE_ENV, MAPPING_ENV = "CRMLENS_DASHBOARD_SOURCE", "CRMLENS_DASHBOARD_MAPPING"
#: Seconds between two checks of an open dashboard for new data (docs/dashboards.md, Live refresh): read by the
#: kernels (`refresh_interval`), set by ``crmlens dashboard --refresh``; 0 turns the automatic check off.
REFRESH_ENV = "CRMLENS_DASHBOARD_REFRESH_S"
DEFAULT_REFRESH_S = 300.0


def _seconds(value: Any, name: str, hint: str) -> float:
    """`value` as seconds (a finite number ≥ 0), else a `ParameterError` naming `name`, with `hint` after
    "use a number ≥ 0"."""
    import math

    try:
        seconds = float(str(value).strip())
    except ValueError:
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds < 0:
        raise ParameterError(f"{name}: {value!r} is not a number of seconds; use a number ≥ 0{hint}")
    return seconds


def _env_seconds(env: Mapping[str, str] | None, name: str, default: float, hint: str) -> float:
    """Environment variable `name` of `env` (default os.environ) as seconds (`_seconds`); `default` when unset
    or empty."""
    raw = (os.environ if env is None else env).get(name)
    if raw is None or not raw.strip():
        return default
    return _seconds(raw, name, hint)


_REFRESH_HINT = f" such as 300 (0 turns the automatic check for new data off; default {DEFAULT_REFRESH_S:g})"


def check_refresh(value: Any, name: str = REFRESH_ENV) -> float:
    """`value` as a live-refresh interval in seconds (a number ≥ 0; 0 = no automatic check), else a
    `ParameterError` naming `name` and what is accepted."""
    return _seconds(value, name, _REFRESH_HINT)


def refresh_interval(env: Mapping[str, str] | None = None) -> float:
    """Seconds between a dashboard's automatic checks for new data: ``$CRMLENS_DASHBOARD_REFRESH_S`` (unset or
    empty: `DEFAULT_REFRESH_S`; 0: off). A bad value raises `ParameterError` naming the variable."""
    return _env_seconds(env, REFRESH_ENV, DEFAULT_REFRESH_S, _REFRESH_HINT)


def refill_delay(env: Mapping[str, str] | None = None) -> float:
    """Seconds Voila waits before replacing a used pool kernel: `PREHEAT_DELAY_ENV` of `env` (default
    os.environ; unset or empty: `PREHEAT_DELAY_S`). A bad value raises `ParameterError` naming the variable."""
    return _env_seconds(env, PREHEAT_DELAY_ENV, PREHEAT_DELAY_S, f" (0: at once; default {PREHEAT_DELAY_S:g})")


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    """A random token for serving off loopback (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


#: Times `VoilaServer.start` tries a new free port when the one it chose was taken before Voila listened.
PORT_ATTEMPTS = 3
_PORT_TAKEN = "is already in use"
_RUNNING = "is running at:"


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port free on `host` right now (for tests and benchmarks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ParameterError(f"{name}: {value!r} is not a whole number ≥ 0")
    return value


def voila_command(target: str | Path = DASHBOARDS_DIR, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                  token: str | None = None, pool_size: int = DEFAULT_POOL_SIZE,
                  cull_idle_timeout: int = DEFAULT_CULL_IDLE_S, cull_interval: int = DEFAULT_CULL_INTERVAL_S,
                  python: str | None = None, preheat: Sequence[str] | None = None,
                  env: Mapping[str, str] | None = None) -> list[str]:
    """The argv that serves `target` (the dashboards folder, or one notebook) with Voila.

    `token`: None or "" serve without a token, allowed on a loopback `host` only; off loopback a token is
    required (ParameterError otherwise). `pool_size` 0 turns preheating off (every page starts a kernel);
    `preheat` names the dashboards whose kernels are preheated (default: every one but the landing page).
    `env` (default os.environ) may set the wait before a used pool kernel is replaced (`PREHEAT_DELAY_ENV`).
    """
    target = Path(target)
    if not target.exists():
        raise ParameterError(f"dashboard: {target} does not exist; give the dashboards folder "
                             f"({paths.display_path(DASHBOARDS_DIR)}) or one of its notebooks")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ParameterError(f"port: {port!r} is not a TCP port (1–65535)")
    if not is_loopback(host) and not token:
        raise ParameterError(f"host: {host} is reachable from other machines; serve it with a token "
                             "(crmlens dashboard --host ... --token SECRET, or let it make one) — never without")
    _positive("pool_size", pool_size)
    _positive("cull_idle_timeout", cull_idle_timeout)
    _positive("cull_interval", cull_interval)
    argv = [python or sys.executable, "-m", "voila", str(target), "--no-browser",
            f"--Voila.ip={host}", f"--Voila.port={port}", "--Voila.port_retries=0",
            f"--Voila.token={token or ''}", f"--template={TEMPLATE}", "--theme=light",
            "--show_tracebacks=False",
            f"--MappingKernelManager.cull_idle_timeout={cull_idle_timeout}",
            f"--MappingKernelManager.cull_interval={cull_interval}",
            # the page loads only the front-end extensions the dashboards use (plotly's lab renderer alone is
            # 4.7 MB; the charts draw with the plotly.js the page template serves)
            *(f"--VoilaConfiguration.extension_denylist={name}" for name in UNUSED_EXTENSIONS),
            # a busy machine (several kernels preheating at once) must not lose a page's output
            f"--NotebookClient.iopub_timeout={IOPUB_TIMEOUT_S}"]
    if pool_size:
        # the landing page reads no data: no kernel is kept waiting for it
        others = [] if preheat is None else sorted(p.stem for p in DASHBOARDS_DIR.glob("*.ipynb")
                                                   if p.stem not in preheat and p.stem != LANDING)
        denied = ", ".join(f"'{name}.ipynb'" for name in [LANDING, *others])
        argv += ["--preheat_kernel=True", f"--pool_size={pool_size}",
                 f"--VoilaKernelManager.preheat_denylist=[{denied}]",
                 f"--VoilaKernelManager.fill_delay={refill_delay(env):g}"]
    return argv


def prepare_template(root: str | Path | None = None) -> Path:
    """A Jupyter data folder with the `crmlens` Voila template and, in its static files, plotly.js: the
    project's bundle of the trace types its charts draw (`crmlens.charts.plotlyjs`, 1.4 MB, the one pages load)
    and the plotly package's whole plotly.min.js (4.8 MB, not committed; loaded by a page only for a chart of
    another type). Served by Voila and cached by browsers. Default folder: outputs/.cache/voila/plotly-<version>
    (a temporary one when that is not writable). Idempotent."""
    import shutil
    import tempfile

    import plotly

    from crmlens.charts import plotlyjs

    if root is None:
        root = paths.OUTPUTS_DIR / ".cache" / "voila" / f"plotly-{plotly.__version__}"
    root = Path(root)
    committed = JUPYTER_DATA_DIR / "voila" / "templates" / TEMPLATE
    try:
        target = root / "voila" / "templates" / TEMPLATE
        (target / "static").mkdir(parents=True, exist_ok=True)
    except OSError:
        return prepare_template(tempfile.mkdtemp(prefix="crmlens-voila-"))
    for f in committed.iterdir():
        if f.is_file() and (not (target / f.name).exists() or (target / f.name).read_bytes() != f.read_bytes()):
            shutil.copyfile(f, target / f.name)
    for source_js in (plotlyjs.BUNDLE, plotlyjs.full_path()):
        js = target / "static" / source_js.name
        if not js.exists() or js.stat().st_size != source_js.stat().st_size:
            from crmlens import atomic

            atomic.write_with(js, lambda tmp, src=source_js: shutil.copyfile(src, tmp))
    return root


def voila_env(source: str = "demo", mapping: str | Path | None = None,
              base: Mapping[str, str] | None = None, refresh_s: float | None = None) -> dict[str, str]:
    """The environment Voila (and its kernels) run with: `base` (default os.environ) plus the dashboard
    source, the template folder (`prepare_template`) on JUPYTER_PATH and the project root (CRMLENS_HOME);
    `refresh_s` sets the dashboards' live-refresh interval (`REFRESH_ENV`; None keeps the inherited one)."""
    env = dict(os.environ if base is None else base)
    if refresh_s is not None:
        env[REFRESH_ENV] = f"{check_refresh(refresh_s, 'refresh'):g}"
    env[SOURCE_ENV] = str(source)
    if mapping:
        env[MAPPING_ENV] = str(mapping)
    else:
        env.pop(MAPPING_ENV, None)
    jupyter_path = [str(prepare_template())] + [p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    env["JUPYTER_PATH"] = os.pathsep.join(jupyter_path)
    env[PAGE_PLOTLY_ENV] = "1"
    env.setdefault(paths.HOME_ENV, str(paths.PROJECT_ROOT))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def source_from_env(env: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """(source, mapping) a dashboard kernel should open: from `voila_env`'s variables, else the demo."""
    env = os.environ if env is None else env
    return env.get(SOURCE_ENV) or "demo", env.get(MAPPING_ENV) or None


def url_for(host: str, port: int, token: str | None = None, notebook: str | None = None) -> str:
    """The address to open: the root (the dashboards list when Voila serves the folder, the dashboard itself when
    it serves one notebook), or, serving the folder, one dashboard (``overview`` → its page)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    path = f"voila/render/{notebook if notebook.endswith('.ipynb') else notebook + '.ipynb'}" if notebook else ""
    query = f"?token={token}" if token else ""
    return f"http://{shown}:{port}/{path}{query}"


class VoilaServer:
    """A Voila process serving the dashboards on a loopback port, for tests and benchmarks:

        with VoilaServer(pool_size=1) as server:
            page.goto(server.url("overview", region="East"))

    Starts `voila_command` in its own process group with `voila_env`, waits until the port answers (and fails
    with the server's log if it exits or does not answer within `timeout_s`), and stops the whole group on
    exit. Its output goes to `log_path` (a temporary file by default)."""

    def __init__(self, target: str | Path = DASHBOARDS_DIR, *, port: int | None = None, pool_size: int = 1,
                 source: str = "demo", mapping: str | Path | None = None, token: str | None = None,
                 extra_env: Mapping[str, str] | None = None, log_path: str | Path | None = None,
                 timeout_s: float = 120.0, cull_idle_timeout: int = DEFAULT_CULL_IDLE_S,
                 preheat: Sequence[str] | None = None) -> None:
        self.host = DEFAULT_HOST
        self._chosen_port = port is None
        self.port = port or free_port(self.host)
        self.token = token
        self.env = voila_env(source, mapping)
        self.env.update(extra_env or {})
        self._command = functools.partial(voila_command, target, host=self.host, token=token, pool_size=pool_size,
                                          cull_idle_timeout=cull_idle_timeout, preheat=preheat, env=self.env)
        self.argv = self._command(port=self.port)
        self.timeout_s = timeout_s
        self.log_path = Path(log_path) if log_path else None
        self.process: Any = None

    def start(self) -> VoilaServer:
        import subprocess
        import tempfile
        import time

        if self.log_path is None:
            self.log_path = Path(tempfile.mkstemp(prefix="crmlens-voila-", suffix=".log")[1])
        deadline = time.monotonic() + self.timeout_s
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self._log = self.log_path.open("wb")
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                            cwd=str(paths.PROJECT_ROOT), start_new_session=True)
            while time.monotonic() < deadline:
                if self._ready():
                    return self
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
            else:
                self.stop()
                raise RuntimeError(f"Voila did not answer on {self.host}:{self.port} within {self.timeout_s:.0f} s:"
                                   f"\n{self.log()}")
            log = self.log()
            # the free port it was given was taken before it listened (by a kernel's socket, a browser...):
            # another one, when the caller left the port to us
            if not (self._chosen_port and attempt < PORT_ATTEMPTS and _PORT_TAKEN in log):
                raise RuntimeError(f"Voila exited with code {self.process.returncode}:\n{log}")
            self._log.close()
            self.port = free_port(self.host)
            self.argv = self._command(port=self.port)
        raise AssertionError("unreachable")

    def _ready(self) -> bool:
        """Whether Voila says it is running, is still running, and its port answers HTTP (the port may be held
        by something else: a kernel's ZeroMQ socket does not answer HTTP)."""
        import http.client

        if _RUNNING not in self.log() or self.process.poll() is not None:
            return False
        conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
        try:
            conn.request("HEAD", "/voila/static/")  # any answer will do: no page rendered, no kernel started
            conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:] if self.log_path and self.log_path.exists() else ""

    def url(self, notebook: str | None = None, **query: str) -> str:
        from urllib.parse import urlencode

        base = url_for(self.host, self.port, None, notebook)
        params = dict(query)
        if self.token:
            params["token"] = self.token
        return base + ("?" + urlencode(params) if params else "")

    def stop(self) -> None:
        import signal
        import subprocess

        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def __enter__(self) -> VoilaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------------------------------ stopping

#: The signals that stop `crmlens dashboard` (a service manager's or `kill`'s SIGTERM, Ctrl+C, a closed
#: terminal): Voila and every process below it (its kernels) are stopped with it.
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP")
                                                 if hasattr(signal, name))
#: Seconds Voila and its kernels get to exit after SIGTERM before what remains is killed (SIGKILL).
STOP_GRACE_S = 5.0
#: While Voila runs, its process tree is read every so many seconds, so that kernels it leaves behind when it
#: exits by itself (a crash) are stopped too.
TREE_REFRESH_S = 5.0
#: Seconds between two looks at whether Voila still runs.
POLL_S = 1.0


class StopRequested(BaseException):
    """Raised in the main thread by a stop signal (`STOP_SIGNALS`) while `run_voila` waits for Voila."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _proc_stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, start time in clock ticks, state) of a process from /proc; None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2:].split()  # after "pid (command) ": state, ppid, ... field 22 starttime
    return int(fields[1]), int(fields[19]), fields[0].decode()


def _running(pid: int, started: int) -> bool:
    """True while the process `pid` started at `started` runs (not the same pid reused, not a zombie)."""
    stat = _proc_stat(pid)
    return stat is not None and stat[1] == started and stat[2] != "Z"


def descendants(pid: int) -> dict[int, int]:
    """Every process below `pid` (children, grandchildren, ...: Voila's kernels and what they started), as
    {pid: start time}; the start time tells a process from a later one given the same pid. Read from /proc
    (empty where there is none: then only the process and its group are signalled)."""
    children: dict[int, list[tuple[int, int]]] = {}
    try:
        entries = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return {}
    for child in entries:
        stat = _proc_stat(child)
        if stat is not None and stat[2] != "Z":
            children.setdefault(stat[0], []).append((child, stat[1]))
    found: dict[int, int] = {}
    todo = [pid]
    while todo:
        for child, started in children.get(todo.pop(), ()):
            if child not in found:
                found[child] = started
                todo.append(child)
    return found


def stop_process_tree(process: Any, grace_s: float = STOP_GRACE_S, known: Mapping[int, int] | None = None) -> None:
    """Stop `process` (a `subprocess.Popen`) and every process below it: SIGTERM to it, to its process group
    when it leads one of its own (never to ours), and to each descendant — also those in sessions of their own,
    as Jupyter starts its kernels —, then SIGKILL to what still runs after `grace_s` seconds. `known`: processes
    seen below it earlier ({pid: start time}), stopped too when still running (kernels left by a Voila that
    exited). Idempotent; returns once the process is reaped."""
    import subprocess
    import time

    tree = {pid: started for pid, started in (known or {}).items() if _running(pid, started)}
    group = None
    if process.poll() is None:
        tree.update(descendants(process.pid))
        with contextlib.suppress(OSError):
            pgid = os.getpgid(process.pid)
            group = pgid if pgid == process.pid and pgid != os.getpgrp() else None

    def send(sig: int, pids: Mapping[int, int], to_process: bool = True) -> None:
        if to_process and group is not None:
            with contextlib.suppress(OSError):
                os.killpg(group, sig)  # Voila and whatever it started in its group
        elif to_process:
            with contextlib.suppress(OSError):
                process.send_signal(sig)  # a no-op once the process is reaped
        for pid, started in pids.items():
            if _running(pid, started):
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)

    send(signal.SIGTERM, tree)
    deadline = time.monotonic() + grace_s
    while True:
        if process.poll() is None:  # a kernel Voila was starting when the signal came
            new = {pid: started for pid, started in descendants(process.pid).items() if pid not in tree}
            tree.update(new)
            send(signal.SIGTERM, new, to_process=False)
        elif not any(_running(pid, started) for pid, started in tree.items()):
            break
        if time.monotonic() >= deadline:
            send(signal.SIGKILL, tree)
            break
        time.sleep(0.1)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    deadline = time.monotonic() + 2.0  # after SIGKILL: until the kernels are gone (their memory freed)
    while any(_running(pid, started) for pid, started in tree.items()) and time.monotonic() < deadline:
        time.sleep(0.05)
    if isinstance(known, dict):
        known.clear()


def _voila_child_setup(parent: int) -> None:  # pragma: no cover - runs in the child, between fork and exec
    """In Voila's process before it starts: the stop signals unblocked (`run_voila` blocks them around the
    start) and, on Linux, SIGTERM to Voila when its parent dies, even by SIGKILL (prctl PR_SET_PDEATHSIG)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        if os.getppid() != parent:  # the parent died before the line above
            os.kill(os.getpid(), signal.SIGTERM)


def run_voila(argv: list[str], env: Mapping[str, str] | None = None, cwd: str | Path | None = None,
              grace_s: float = STOP_GRACE_S) -> int:
    """Run Voila (`voila_command`'s argv) until it exits or this process is asked to stop — what `crmlens
    dashboard` does. Voila starts in a session of its own (a Ctrl+C reaches this process only). SIGTERM, SIGINT
    and SIGHUP (`STOP_SIGNALS`; one the process ignores, as under nohup, stays ignored) stop Voila and every
    process below it, kernels included (`stop_process_tree`), and then return 0; so does leaving this function
    any other way, and an exit of the interpreter while it runs (atexit). Otherwise: Voila's exit status (128 +
    the signal number when a signal ended it), once the kernels it left behind are stopped too."""
    import atexit
    import functools
    import subprocess
    import threading
    import time

    posix = os.name == "posix"
    in_main = posix and threading.current_thread() is threading.main_thread()
    requested: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        if not requested:  # once: a second Ctrl+C while stopping does not cut the clean-up short
            requested.append(signum)
            raise StopRequested(signum)

    if in_main:  # blocked until the handlers are in place: a signal during the start is handled, not lost
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        process = subprocess.Popen(argv, env=None if env is None else dict(env), cwd=cwd, start_new_session=True,
                                   preexec_fn=functools.partial(_voila_child_setup, os.getpid()) if posix else None)
    except BaseException:
        if in_main:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        raise
    known: dict[int, int] = {}
    stop = functools.partial(stop_process_tree, process, grace_s, known)
    atexit.register(stop)
    previous: dict[int, Any] = {}
    code = 0
    try:
        if in_main:
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    previous[sig] = signal.signal(sig, on_signal)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        refreshed = time.monotonic()
        while process.poll() is None:
            time.sleep(POLL_S)  # a stop signal interrupts it (StopRequested)
            if time.monotonic() - refreshed >= TREE_REFRESH_S:
                known.update(descendants(process.pid))
                for pid, started in list(known.items()):
                    if not _running(pid, started):
                        del known[pid]
                refreshed = time.monotonic()
        code = process.returncode if process.returncode >= 0 else 128 - process.returncode
    except (StopRequested, KeyboardInterrupt):
        code = 0
    finally:
        requested.append(0)
        stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        atexit.unregister(stop)
    return code
