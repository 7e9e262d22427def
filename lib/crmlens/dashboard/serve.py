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
* Offline: the pages use the `crmlens` Voila template (Voila's `lab` template without its Font Awesome CDN
  links, shipped in ``crmlens/dashboard/jupyter``, plus plotly.js served from the plotly package's copy:
  `prepare_template`); the widgets' code comes from the server too.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crmlens import paths
from crmlens.errors import ParameterError

#: Where the dashboard notebooks live.
DASHBOARDS_DIR: Path = paths.NOTEBOOKS_DIR / "dashboards"
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
#: Seconds Voila waits for a cell's output before giving up on it (nbclient's default, 4 s, drops the output of
#: a page whose kernel is slowed down by others preheating).
IOPUB_TIMEOUT_S = 60
#: Environment variables the dashboard notebooks read to find their data.
SOURCE_ENV, MAPPING_ENV = "CRMLENS_DASHBOARD_SOURCE", "CRMLENS_DASHBOARD_MAPPING"


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
                  python: str | None = None) -> list[str]:
    """The argv that serves `target` (the dashboards folder, or one notebook) with Voila.

    `token`: None or "" serve without a token, allowed on a loopback `host` only; off loopback a token is
    required (ParameterError otherwise). `pool_size` 0 turns preheating off (every page starts a kernel).
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
        argv += ["--preheat_kernel=True", f"--pool_size={pool_size}"]
    return argv


def prepare_template(root: str | Path | None = None) -> Path:
    """A Jupyter data folder with the `crmlens` Voila template and, in its static files, the plotly package's
    plotly.min.js (served by Voila and cached by browsers; 4.6 MB, not committed). Default folder:
    outputs/.cache/voila/plotly-<version> (a temporary one when that is not writable). Idempotent."""
    import shutil
    import tempfile

    import plotly

    source_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
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
    js = target / "static" / "plotly.min.js"
    if not js.exists() or js.stat().st_size != source_js.stat().st_size:
        from crmlens import atomic

        atomic.write_with(js, lambda tmp: shutil.copyfile(source_js, tmp))
    return root


def voila_env(source: str = "demo", mapping: str | Path | None = None,
              base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment Voila (and its kernels) run with: `base` (default os.environ) plus the dashboard
    source, the template folder (`prepare_template`) on JUPYTER_PATH and the project root (CRMLENS_HOME)."""
    env = dict(os.environ if base is None else base)
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
    """The address to open: the dashboards list, or one dashboard (``overview`` → its page)."""
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
                 timeout_s: float = 120.0, cull_idle_timeout: int = DEFAULT_CULL_IDLE_S) -> None:
        self.host = DEFAULT_HOST
        self.port = port or free_port(self.host)
        self.token = token
        self.argv = voila_command(target, host=self.host, port=self.port, token=token, pool_size=pool_size,
                                  cull_idle_timeout=cull_idle_timeout)
        self.env = voila_env(source, mapping)
        self.env.update(extra_env or {})
        self.timeout_s = timeout_s
        self.log_path = Path(log_path) if log_path else None
        self.process: Any = None

    def start(self) -> VoilaServer:
        import subprocess
        import tempfile
        import time

        if self.log_path is None:
            self.log_path = Path(tempfile.mkstemp(prefix="crmlens-voila-", suffix=".log")[1])
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(self.argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                        cwd=str(paths.PROJECT_ROOT), start_new_session=True)
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Voila exited with code {self.process.returncode}:\n{self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Voila did not listen on {self.host}:{self.port} within {self.timeout_s:.0f} s:\n"
                           f"{self.log()}")

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
