"""Benchmark the Voila dashboards in headless Chromium: first render (cold kernel vs preheated), page weight,
filter change → all panels updated, and several viewers at once (render, response, memory per viewer).

    .venv/bin/python bench/bench_dashboard.py [--notebook overview|sales_manager] [--changes 24] [--sessions 5]
                                              [--skip-sessions] [--out results.json]

Phases (each with its own Voila server, started with `crmlens.dashboard.serve.VoilaServer` and always stopped;
Chromium is already running when a page is timed, as a viewer's browser is, and every timed page has a new
browser context: nothing cached):

1. cold first render: ``pool_size=0`` — page.goto until the status line is there and every chart is drawn
   (``.main-svg``) or shows its "No data" line; also when Voila's loading spinner first shows (and the
   browser's first paint), i.e. that the loading state appears at once.
2. preheated first render: ``pool_size=1``, after the pool kernel is ready (its CPU time stopped growing);
   the same figure, plus the bytes the page received over HTTP and over the kernel websocket, and how many
   requests went to a host other than 127.0.0.1 (should be 0).
3. filter changes on that page: alternately the region and the period; for each, the time from the
   dropdown change until the status line's ``data-render`` grew AND every chart redrew (``data-revision``
   changed) or shows "No data". States the kernel computed before (pre-warmed: every region's default view;
   or visited earlier) are "warm", the others "cold".
4. sessions: ``pool_size=2``, S browser contexts (one kernel each) open the page at once; each must render
   (status line + all tiles) and answer one region change. Memory: RSS of every kernel and of Voila.

Prints figures, asserts nothing about speed. Times are wall-clock on a possibly shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from crmlens import paths
from crmlens.dashboard.ahead import AHEAD_ENV
from crmlens.dashboard.serve import VoilaServer
from crmlens.dashboard.widgets import VIEWS
from crmlens.run.exports import CHROMIUM, CHROMIUM_ARGS

VIEWPORT = {"width": 1366, "height": 900}
RENDER_TIMEOUT_S = 240.0   # a cold kernel loads and warms the data first (~20–40 s alone on 2 cores)
CHANGE_TIMEOUT_S = 120.0
#: Seconds a just-launched Chromium is left to finish starting before a page is timed (`launch`): the first
#: page of a browser launched just before it rendered ~0.6 s later than a page of a running browser.
BROWSER_SETTLE_S = 2.0
READY_TIMEOUT_S = 300.0    # … per 10 pool kernels: 20 kernels preheating at once take ~4½ min on 2 cores
#: After data-render grew, how long to wait for charts that have not redrawn yet before counting them as
#: "not redrawn" (the kernel sends nothing for a chart whose figure did not change).
SETTLE_S = 3.0
#: Deep-link parameters of every page (``--query``), e.g. the sales rep view's rep.
QUERY: dict[str, str] = {}
PERIOD_CYCLE = ("this_year", "last_quarter", "this_quarter", "last_12_months", "QUARTER", "this_month")


class BenchError(RuntimeError):
    """A phase could not be measured (timeout, page error); the message says what was waited for."""


# -- processes and memory ------------------------------------------------------------------------------------

def children(pid: int) -> list[tuple[int, str]]:
    """(pid, args) of the direct children of `pid`."""
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.strip().split(None, 1)
        if parts:
            rows.append((int(parts[0]), parts[1] if len(parts) > 1 else ""))
    return rows


def descendants(pids: list[int]) -> list[int]:
    """Every process under `pids` (children, their children...), from one `ps` of the whole machine: a kernel's
    second processes (the forkserver and the worker it starts, which fits the customer-value and churn models)
    are grandchildren."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    under: dict[int, list[int]] = {}
    for line in out.splitlines():
        pid, ppid = (int(x) for x in line.split())
        under.setdefault(ppid, []).append(pid)
    found, todo = [], list(pids)
    while todo:
        kids = under.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def kernel_pids(server: VoilaServer) -> dict[int, str]:
    """The kernel processes Voila started: pid → args."""
    return {pid: args for pid, args in children(server.process.pid) if "kernel" in args}


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def smaps_mb(pid: int) -> dict[str, float] | None:
    """A process's memory beyond RSS (Linux's smaps_rollup): ``pss`` its proportional share (a page shared by n
    processes counts 1/n: libraries' code, read-only files), ``uss`` its private pages (what it alone holds:
    freed when it ends). With many kernels, RSS counts the shared libraries in every one of them."""
    try:
        fields = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                fields[parts[0][:-1]] = int(parts[1]) / 1024
    except OSError:
        return None
    return {"pss": fields.get("Pss", 0.0), "uss": fields.get("Private_Clean", 0.0) + fields.get("Private_Dirty", 0.0)}


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total


async def wait_kernels_ready(server: VoilaServer, n: int, *, quiet_s: float = 6.0,
                             timeout_s: float | None = None) -> float:
    """Wait until Voila has `n` kernels and their (and Voila's) CPU time stopped growing for `quiet_s`
    seconds — the preheated kernels finished running the notebook up to `wait_for_request`, and their second
    processes the models they were sent while preheating (the default view's and the states computed ahead).
    Seconds waited.
    `quiet_s` must exceed the refill delay (`crmlens.dashboard.serve.PREHEAT_DELAY_S`: Voila starts a kernel
    replacing a used one that long after its page was asked for)."""
    start = time.monotonic()
    timeout_s = timeout_s if timeout_s is not None else READY_TIMEOUT_S * max(1.0, n / 10)
    deadline = start + timeout_s
    while len(kernel_pids(server)) < n:
        if time.monotonic() > deadline:
            raise BenchError(f"Voila started {len(kernel_pids(server))} of {n} pool kernels in {timeout_s:.0f} s")
        if server.process.poll() is not None:
            raise BenchError(f"Voila exited:\n{server.log()}")
        await asyncio.sleep(0.5)
    tick_s = 1 / os.sysconf("SC_CLK_TCK")
    last, quiet_since = None, time.monotonic()
    while True:
        kernels = list(kernel_pids(server))
        pids = [server.process.pid, *kernels, *descendants(kernels)]
        ticks = cpu_ticks(pids)
        now = time.monotonic()
        # more than 50 ms of CPU since the last look (every 0.25 s), all processes together: still working
        # (idle kernels' heartbeats add up to ~10 ms a look for 20 kernels)
        busy = last is None or (ticks - last) * tick_s > 0.05
        last = ticks
        if busy:
            quiet_since = now
        elif now - quiet_since >= quiet_s and len(kernel_pids(server)) >= n:
            return now - start - quiet_s
        if now > deadline:
            raise BenchError(f"the pool kernels were still busy after {timeout_s:.0f} s")
        await asyncio.sleep(0.25)


# -- page hooks ------------------------------------------------------------------------------------------------

RENDERED_JS = """([tiles, charts]) => {
  const s = document.querySelector('.crmlens-status-line');
  if (!s) return false;
  if (document.querySelectorAll('.crmlens-tile[data-kpi]').length < tiles) return false;
  const cs = [...document.querySelectorAll('.crmlens-chart')];
  if (cs.length < charts) return false;
  return cs.every(c => c.querySelector('.main-svg') ||
                       (c.closest('.crmlens-panel') || c).querySelector('.crmlens-no_data'));
}"""

#: Installed before navigation (with the view's numbers of tiles and charts): the page's own clock (ms since
#: navigation start) when the tiles are on screen and when every chart is drawn — free of Playwright's polling
#: and of the test harness' own work. Charts count only when all of the view's are on the page (widgets appear
#: one by one: the ones there may all be drawn before the last one is made).
PAGE_CLOCK_JS = """
window.__crmlensClock = {};
new MutationObserver(() => {
  const c = window.__crmlensClock, now = performance.now();
  const ready = document.querySelector('.crmlens-status-line') &&
                document.querySelectorAll('.crmlens-tile[data-kpi]').length >= __TILES__;
  if (!c.tiles && ready) c.tiles = now;
  const charts = [...document.querySelectorAll('.crmlens-chart')];
  if (!c.charts && c.tiles && charts.length >= __CHARTS__ && charts.every(x => x.querySelector('.main-svg') ||
      (x.closest('.crmlens-panel') || x).querySelector('.crmlens-no_data'))) c.charts = now;
}).observe(document, { childList: true, subtree: true });
"""

#: Installed once on a rendered page: records (performance.now()) when a change event fired, when data-render
#: grew and when each chart redrew / went to "No data", from a MutationObserver (no polling delay).
HOOK_JS = """() => {
  if (window.__crmBench) return;
  const snap = () => {
    const s = document.querySelector('.crmlens-status-line');
    const charts = [...document.querySelectorAll('.crmlens-chart')];
    return {
      render: s ? Number(s.dataset.render) : -1,
      state: s ? s.dataset.state : null,
      seconds: s ? Number(s.dataset.seconds) : null,
      revs: charts.map(c => c.dataset.revision || ''),
      nodata: charts.map(c => !!(c.closest('.crmlens-panel') || c).querySelector('.crmlens-no_data')),
    };
  };
  const m = {snap, base: null, armed: false, t0: null, renderAt: null, chartAt: []};
  m.arm = () => { m.base = snap(); m.armed = true; m.t0 = null; m.renderAt = null;
                  m.chartAt = m.base.revs.map(() => null); };
  m.check = () => {
    if (!m.base || m.t0 === null) return;
    const t = performance.now(), s = snap();
    if (m.renderAt === null && s.render > m.base.render) m.renderAt = t;
    s.revs.forEach((r, i) => {
      if (m.chartAt[i] === null && (r !== m.base.revs[i] || (s.nodata[i] && !m.base.nodata[i]))) m.chartAt[i] = t;
    });
  };
  m.result = () => { m.check(); const s = snap();
    return {t0: m.t0, renderAt: m.renderAt, chartAt: m.chartAt, state: s.state, seconds: s.seconds,
            render: s.render, nodata: s.nodata, now: performance.now()}; };
  document.addEventListener('change', () => { if (m.armed) { m.t0 = performance.now(); m.armed = false; } }, true);
  new MutationObserver(m.check).observe(document.body,
    {subtree: true, childList: true, attributes: true, characterData: true});
  window.__crmBench = m;
}"""


class Traffic:
    """What a page received: HTTP response bodies, websocket frames, requests to other hosts."""

    def __init__(self, page: Any) -> None:
        self.http_bytes = 0
        self.http_responses = 0
        self.ws_bytes = 0
        self.ws_frames = 0
        self.outside: list[str] = []
        self.kernel_ids: list[str] = []
        self._tasks: list[asyncio.Task] = []
        page.on("request", self._request)
        page.on("response", lambda r: self._tasks.append(asyncio.ensure_future(self._response(r))))
        page.on("websocket", self._websocket)

    def _request(self, request: Any) -> None:
        host = urlparse(request.url).hostname
        if request.url.startswith(("http:", "https:", "ws:", "wss:")) and host != "127.0.0.1":
            self.outside.append(request.url)

    async def _response(self, response: Any) -> None:
        try:
            body = await response.body()
        except Exception:  # redirects, aborted requests
            return
        self.http_bytes += len(body)
        self.http_responses += 1

    def _websocket(self, ws: Any) -> None:
        host = urlparse(ws.url).hostname
        if host != "127.0.0.1":
            self.outside.append(ws.url)
        parts = urlparse(ws.url).path.split("/")
        if "kernels" in parts and parts.index("kernels") + 1 < len(parts):
            self.kernel_ids.append(parts[parts.index("kernels") + 1])
        ws.on("framereceived", self._frame)

    def _frame(self, payload: Any) -> None:
        self.ws_frames += 1
        self.ws_bytes += len(payload.encode()) if isinstance(payload, str) else len(payload)

    async def settle(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()

    def snapshot(self) -> dict[str, Any]:
        return {"http_bytes": self.http_bytes, "http_responses": self.http_responses, "ws_bytes": self.ws_bytes,
                "ws_frames": self.ws_frames, "outside_requests": len(self.outside), "outside_urls": self.outside[:5]}


async def open_and_render(page: Any, url: str, spec: Any, *, timeout_s: float = RENDER_TIMEOUT_S) -> dict[str, Any]:
    """goto `url` and wait until the whole view is on screen; seconds to the spinner and to the full render."""
    result: dict[str, Any] = {}
    await page.add_init_script(PAGE_CLOCK_JS.replace("__TILES__", str(len(spec.tiles)))
                               .replace("__CHARTS__", str(len(spec.panels))))
    start = time.perf_counter()
    try:
        response = await page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
        if response is not None and response.status >= 400:
            raise BenchError(f"GET {url} answered HTTP {response.status}")
        result["commit_s"] = time.perf_counter() - start
        await page.wait_for_function(
            "() => { const l = document.querySelector('#loading');"
            " return (l && l.offsetParent !== null) || document.querySelector('.crmlens-status-line') ||"
            " (document.body && document.body.innerText.trim().length > 0); }",
            timeout=timeout_s * 1000)
        result["spinner_s"] = time.perf_counter() - start
        await page.wait_for_function(RENDERED_JS, arg=[len(spec.tiles), len(spec.panels)], timeout=timeout_s * 1000)
        result["render_s"] = time.perf_counter() - start
    except BenchError:
        raise
    except Exception as exc:
        try:
            seen = await page.evaluate(
                "() => ({text: (document.body ? document.body.innerText : '').trim().slice(0, 160),"
                " status: !!document.querySelector('.crmlens-status-line'),"
                " tiles: document.querySelectorAll('.crmlens-tile[data-kpi]').length,"
                " charts: document.querySelectorAll('.crmlens-chart').length,"
                " drawn: document.querySelectorAll('.crmlens-chart .main-svg').length})")
        except Exception:
            seen = None
        raise BenchError(f"page did not render within {timeout_s:.0f} s ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0]}); reached: {sorted(result)}; page: {seen}") from exc
    paint = await page.evaluate(
        "() => Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, e.startTime / 1000]))")
    clock = await page.evaluate("() => window.__crmlensClock || {}")
    result["page_tiles_s"] = clock["tiles"] / 1000 if clock.get("tiles") else None
    result["page_charts_s"] = clock["charts"] / 1000 if clock.get("charts") else None
    result["first_paint_s"] = paint.get("first-paint")
    result["first_contentful_paint_s"] = paint.get("first-contentful-paint")
    result["status_render"] = await page.get_attribute(".crmlens-status-line", "data-render")
    result["kernel_seconds"] = float(await page.get_attribute(".crmlens-status-line", "data-seconds") or "nan")
    return result


async def options_of(page: Any, name: str) -> list[tuple[str, str]]:
    return await page.eval_on_selector_all(
        f".crmlens-filter-{name} select option", "os => os.map(o => [o.value, o.textContent.trim()])")


async def change_filter(page: Any, name: str, value: str, traffic: Traffic | None = None, *,
                        timeout_s: float = CHANGE_TIMEOUT_S) -> dict[str, Any]:
    """Select `value` in filter `name` and wait until all panels are updated; the change's figures."""
    await page.evaluate("() => window.__crmBench.arm()")
    ws_before = traffic.ws_bytes if traffic else 0
    await page.locator(f".crmlens-filter-{name} select").select_option(value, timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    render_seen: float | None = None
    while True:
        r = await page.evaluate("() => window.__crmBench.result()")
        done = [t for t in r["chartAt"] if t is not None]
        if r["renderAt"] is not None and len(done) == len(r["chartAt"]):
            break
        if r["renderAt"] is not None:
            render_seen = render_seen or time.monotonic()
            if time.monotonic() - render_seen > SETTLE_S:
                break  # the charts left did not redraw (their figure did not change)
        if time.monotonic() > deadline:
            what = "data-render to grow" if r["renderAt"] is None else "every chart to redraw"
            raise BenchError(f"{name}={value}: waited {timeout_s:.0f} s for {what} (status line state "
                             f"{r['state']!r}, render {r['render']})")
        await asyncio.sleep(0.015)
    if r["t0"] is None:
        raise BenchError(f"{name}={value}: no change event was seen")
    done = [t for t in r["chartAt"] if t is not None]
    end = max([r["renderAt"], *done])
    return {"filter": name, "value": value, "state": r["state"], "seconds": (end - r["t0"]) / 1000,
            "render_s": (r["renderAt"] - r["t0"]) / 1000, "kernel_s": r["seconds"],
            "charts_redrawn": len(done), "charts_not_redrawn": len(r["chartAt"]) - len(done),
            "charts_no_data": sum(r["nodata"]), "ws_bytes": (traffic.ws_bytes - ws_before) if traffic else None}


# -- phases ------------------------------------------------------------------------------------------------

async def launch(pw: Any) -> Any:
    """Chromium, already running when a page is timed — as a viewer's browser is: a blank page opened and
    closed, then a pause for the browser's own start-up work (its GPU and network processes). Each timed page
    still gets a new context: nothing cached, its own renderer."""
    browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    context = await browser.new_context()
    await (await context.new_page()).goto("about:blank")
    await context.close()
    await asyncio.sleep(BROWSER_SETTLE_S)
    return browser


def server_for(notebook: str, pool_size: int, log_dir: Path, tag: str) -> VoilaServer:
    target = paths.NOTEBOOKS_DIR / "dashboards" / f"{notebook}.ipynb"
    return VoilaServer(target, pool_size=pool_size, log_path=log_dir / f"voila-{tag}.log", timeout_s=120)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def phase_cold(pw: Any, notebook: str, log_dir: Path) -> dict[str, Any]:
    spec = VIEWS[notebook]
    with server_for(notebook, 0, log_dir, "cold") as server:
        browser = await launch(pw)
        try:
            page = await (await browser.new_context(viewport=VIEWPORT)).new_page()
            result = await open_and_render(page, server.url(**QUERY), spec)
            result["kernel_rss_mb"] = [rss_mb(p) for p in kernel_pids(server)]
            result["voila_rss_mb"] = rss_mb(server.process.pid)
        finally:
            await browser.close()
    return result


def _next(cycle: list[str], current: str, used: int) -> tuple[str, int]:
    for k in range(len(cycle)):
        value = cycle[(used + k) % len(cycle)]
        if value != current:
            return value, used + k + 1
    raise BenchError(f"no other value than {current!r} to choose")


async def phase_preheated(pw: Any, notebook: str, changes: int, log_dir: Path, think_s: float = 0.0
                          ) -> dict[str, Any]:
    spec = VIEWS[notebook]
    with server_for(notebook, 1, log_dir, "preheated") as server:
        say("  waiting for the pool kernel to finish preheating…")
        ready_s = await wait_kernels_ready(server, 1)
        browser = await launch(pw)
        try:
            timed = await (await browser.new_context(viewport=VIEWPORT)).new_page()
            result = await open_and_render(timed, server.url(**QUERY), spec)  # timed: nothing else attached
            result["pool_ready_s"] = ready_s
            await timed.close()
            # a second viewer (new browser context, nothing cached) for the transfer size and the changes
            say("  waiting for the refilled pool kernel…")
            await wait_kernels_ready(server, 1)
            page = await (await browser.new_context(viewport=VIEWPORT)).new_page()
            traffic = Traffic(page)
            result["second_viewer"] = await open_and_render(page, server.url(**QUERY), spec)
            await asyncio.sleep(1.0)  # late frames / responses of the first render
            await traffic.settle()
            result["transfer"] = traffic.snapshot()
            result["kernel_rss_mb_after_render"] = [rss_mb(p) for p in kernel_pids(server)]

            await page.evaluate(HOOK_JS)
            regions = [v for v, _ in await options_of(page, "region")]
            period_opts = await options_of(page, "period")
            # the <option> values are the labels ("This year"): find the presets by their normalised label
            by_key = {" ".join(v.split()).lower().replace(" ", "_"): v for v, _ in period_opts}
            quarters = [v for v, _ in period_opts if "-Q" in v]
            periods = []
            for key in PERIOD_CYCLE:  # the second quarter listed: the first is last_quarter under another name
                value = (quarters[1:2] or quarters[:1] or [None])[0] if key == "QUARTER" else by_key.get(key)
                if value and value not in periods:
                    periods.append(value)
            if len(regions) < 2 or len(periods) < 2:
                raise BenchError(f"filter options not found: regions {regions}, periods {period_opts}")
            seen = {await page.get_attribute(".crmlens-status-line", "data-state") or ""}
            current = {"region": await page.locator(".crmlens-filter-region select").input_value(),
                       "period": await page.locator(".crmlens-filter-period select").input_value()}
            used = {"region": 0, "period": 0}
            cycles = {"region": regions, "period": periods}
            rows = []
            for i in range(changes):
                name = "region" if i % 2 == 0 else "period"
                value, used[name] = _next(cycles[name], current[name], used[name])
                if think_s:  # the viewer reads the page before the next change (the kernel computes ahead)
                    await asyncio.sleep(think_s)
                row = await change_filter(page, name, value, traffic)
                current[name] = value
                state = row["state"] or ""
                prewarmed = all(part.startswith("region=") for part in state.split("&") if part)
                row["warm"] = state in seen or prewarmed
                seen.add(state)
                rows.append(row)
                say(f"  change {i + 1:>2}: {name}={value:<16} {row['seconds']:6.2f} s "
                    f"({'warm' if row['warm'] else 'cold'}, kernel {row['kernel_s']:.2f} s, "
                    f"{row['charts_redrawn']} redrawn, {row['charts_not_redrawn']} not)")
            await traffic.settle()
            result["changes"] = rows
            result["think_s"], result["ahead"] = think_s, os.environ.get(AHEAD_ENV, "default")
            result["transfer_total"] = traffic.snapshot()
            result["kernel_rss_mb_after_changes"] = [rss_mb(p) for p in kernel_pids(server)]
            result["voila_rss_mb"] = rss_mb(server.process.pid)
            result["regions"], result["periods"] = regions, periods
        finally:
            await browser.close()
    return result


async def _session(browser: Any, url: str, notebook: str, index: int, start_gate: asyncio.Event) -> dict[str, Any]:
    """One viewer: its own browser context (so its own page and kernel); kept open until memory is read."""
    spec = VIEWS[notebook]
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    traffic = Traffic(page)
    await start_gate.wait()
    row: dict[str, Any] = {"session": index}
    try:
        row.update(await open_and_render(page, url, spec))
        await page.evaluate(HOOK_JS)
        regions = [v for v, _ in await options_of(page, "region")]
        current = await page.locator(".crmlens-filter-region select").input_value()
        others = [r for r in regions if r != current]
        target = others[index % len(others)]
        change = await change_filter(page, "region", target, traffic)
        row.update(response_s=change["seconds"], response_render_s=change["render_s"],
                   response_kernel_s=change["kernel_s"], region=target)
    except BenchError as exc:
        row["error"] = str(exc)
    row["kernel_ids"] = traffic.kernel_ids
    row["outside_requests"] = len(traffic.outside)
    return row


async def phase_sessions(pw: Any, notebook: str, sessions: int, log_dir: Path, pool: int = 2) -> dict[str, Any]:
    with server_for(notebook, pool, log_dir, "sessions") as server:
        say(f"  waiting for the {pool} pool kernels to finish preheating…")
        ready_s = await wait_kernels_ready(server, pool)
        browser = await launch(pw)
        try:
            gate = asyncio.Event()
            tasks = [asyncio.ensure_future(_session(browser, server.url(**QUERY), notebook, i, gate))
                     for i in range(sessions)]
            await asyncio.sleep(1.0)  # the contexts are made before the clock starts
            gate.set()
            done = await asyncio.gather(*tasks, return_exceptions=True)
            rows = [item if not isinstance(item, BaseException) else
                    {"session": i, "error": f"{type(item).__name__}: {item}"} for i, item in enumerate(done)]
            await asyncio.sleep(1.0)
            memory, rows = _memory(server, rows)
        finally:
            await browser.close()
    return {"pool_ready_s": ready_s, "sessions": rows, "memory": memory, "pool": pool}


def _memory(server: VoilaServer, rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """RSS of Voila and of each kernel, kernels matched to sessions by the kernel id in their websocket URL."""
    kernels = kernel_pids(server)
    by_id = {}
    for pid, args in kernels.items():
        for row in rows:
            for kid in row.get("kernel_ids", []):
                if kid in args:
                    by_id[kid] = pid
    for row in rows:
        pids = [by_id[k] for k in row.get("kernel_ids", []) if k in by_id]
        row["kernel_pid"] = pids[0] if pids else None
        row["kernel_rss_mb"] = rss_mb(pids[0]) if pids else None
    viewer_pids = {r["kernel_pid"] for r in rows if r.get("kernel_pid")}
    memory = {"voila_rss_mb": rss_mb(server.process.pid),
              "viewer_kernels_rss_mb": [rss_mb(p) for p in sorted(viewer_pids)],
              "viewer_kernels_pss_mb": [(smaps_mb(p) or {}).get("pss") for p in sorted(viewer_pids)],
              "viewer_kernels_uss_mb": [(smaps_mb(p) or {}).get("uss") for p in sorted(viewer_pids)],
              "other_kernels_rss_mb": [rss_mb(p) for p in sorted(set(kernels) - viewer_pids)],
              "kernels": len(kernels)}
    return memory, rows


# -- report ------------------------------------------------------------------------------------------------

def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def stats(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "median": statistics.median(values) if values else None,
            "p95": pct(values, 0.95), "max": max(values) if values else None}


def fmt(value: Any, unit: str = "s", digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    return f"{value:.{digits}f} {unit}".strip()


def mean(values: list[Any]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def summarize(results: dict[str, Any]) -> list[str]:
    lines = [f"== dashboard benchmark: {results['notebook']} (demo data), {results['when']}, "
             f"load average before {results['loadavg_before']}"]
    cold = results.get("cold")
    if isinstance(cold, dict) and "render_s" in cold:
        lines.append(f"1. cold first render (pool 0)  : {fmt(cold['render_s'])}  spinner shown at "
                     f"{fmt(cold['spinner_s'])} (first paint {fmt(cold['first_paint_s'])}), kernel "
                     f"{fmt(cold['kernel_seconds'])} in show(); page clock: tiles {fmt(cold.get('page_tiles_s'))}, "
                     f"charts {fmt(cold.get('page_charts_s'))}")
    elif cold:
        lines.append(f"1. cold first render: FAILED — {cold.get('error')}")
    pre = results.get("preheated")
    if isinstance(pre, dict) and "render_s" in pre:
        t = pre["transfer"]
        lines.append(f"2. preheated first render (pool 1): {fmt(pre['render_s'])}  spinner at {fmt(pre['spinner_s'])} "
                     f"(first paint {fmt(pre['first_paint_s'])}); pool ready {fmt(pre['pool_ready_s'], digits=0)} "
                     "after start")
        lines.append(f"   on the page's clock: tiles at {fmt(pre.get('page_tiles_s'))}, all charts drawn at "
                     f"{fmt(pre.get('page_charts_s'))} (second viewer, traffic recorded: "
                     f"{fmt((pre.get('second_viewer') or {}).get('render_s'))})")
        lines.append(f"   transfer: HTTP {t['http_bytes'] / 1e6:.2f} MB in {t['http_responses']} responses + "
                     f"websocket {t['ws_bytes'] / 1e6:.2f} MB in {t['ws_frames']} frames = "
                     f"{(t['http_bytes'] + t['ws_bytes']) / 1e6:.2f} MB; requests off 127.0.0.1: "
                     f"{t['outside_requests']}")
        rows = pre.get("changes", [])
        if rows:
            allv = [r["seconds"] for r in rows]
            warm = [r["seconds"] for r in rows if r["warm"]]
            coldv = [r["seconds"] for r in rows if not r["warm"]]
            lines.append(f"3. filter change → all panels updated ({len(rows)} changes, {len(warm)} warm / "
                         f"{len(coldv)} cold; reading {pre.get('think_s', 0):g} s before each change, computing "
                         f"ahead {pre.get('ahead', 'default')}):")
            lines.append(f"   {'':8} {'n':>3} {'median':>8} {'p95':>8} {'max':>8} {'kernel med':>11}")
            for name, vals, sel in (("all", allv, rows), ("warm", warm, [r for r in rows if r["warm"]]),
                                    ("cold", coldv, [r for r in rows if not r["warm"]])):
                s = stats(vals)
                ks = statistics.median([r["kernel_s"] for r in sel]) if sel else None
                lines.append(f"   {name:8} {s['n']:>3} {fmt(s['median']):>8} {fmt(s['p95']):>8} {fmt(s['max']):>8} "
                             f"{fmt(ks):>11}")
            hits = [r for r in rows if (r["kernel_s"] or 0) < 0.2]
            lines.append(f"   kernel side: {len(hits)} of {len(rows)} changes took < 0.2 s in the kernel (cache hit); "
                         f"of the 'cold' ones {sum(1 for r in hits if not r['warm'])} were hits (a state reusing a "
                         "cached period or view)")
            unchanged = sum(r["charts_not_redrawn"] for r in rows)
            lines.append(f"   charts not redrawn after a change (figure unchanged, {SETTLE_S:.0f} s grace): "
                         f"{unchanged} of {sum(r['charts_redrawn'] + r['charts_not_redrawn'] for r in rows)}; "
                         f"websocket per change median {statistics.median([r['ws_bytes'] for r in rows]) / 1e3:.0f} kB")
            lines.append(f"   kernel RSS after the changes: "
                         f"{', '.join(fmt(v, 'MB', 0) for v in pre['kernel_rss_mb_after_changes'])}")
    elif pre:
        lines.append(f"2./3. preheated: FAILED — {pre.get('error')}")
    ses = results.get("sessions")
    if isinstance(ses, dict) and "sessions" in ses:
        rows = ses["sessions"]
        rendered = [r["render_s"] for r in rows if r.get("render_s") is not None and "error" not in r]
        lines.append(f"4. {len(rows)} sessions at once (pool {ses.get('pool', 2)}): {len(rendered)} of {len(rows)} "
                     "rendered and answered a region change; the last one rendered at "
                     f"{fmt(max(rendered, default=None))} "
                     f"(median {fmt(statistics.median(rendered) if rendered else None)})")
        lines.append(f"   {'session':>7} {'render':>8} {'response':>9} {'kernel RSS':>11}  note")
        for r in rows:
            lines.append(f"   {r['session']:>7} {fmt(r.get('render_s')):>8} {fmt(r.get('response_s')):>9} "
                         f"{fmt(r.get('kernel_rss_mb'), 'MB', 0):>11}  {r.get('error', '')}")
        mem = ses["memory"]
        lines.append(f"   memory: {fmt(mean(mem['viewer_kernels_rss_mb']), 'MB', 0)} per viewer (mean kernel RSS of "
                     f"{len(mem['viewer_kernels_rss_mb'])}), Voila server {fmt(mem['voila_rss_mb'], 'MB', 0)}, "
                     f"{len(mem['other_kernels_rss_mb'])} more kernel(s) refilling the pool "
                     f"({', '.join(fmt(v, 'MB', 0) for v in mem['other_kernels_rss_mb']) or '—'})")
        pss = [v for v in mem.get("viewer_kernels_pss_mb", []) if v is not None]
        uss = [v for v in mem.get("viewer_kernels_uss_mb", []) if v is not None]
        if pss and uss:
            lines.append(f"   per viewer's kernel beyond RSS: {fmt(mean(pss), 'MB', 0)} proportional (PSS: shared "
                         f"libraries split between the kernels), {fmt(mean(uss), 'MB', 0)} private (USS: what one "
                         "more viewer adds)")
    elif ses:
        lines.append(f"4. sessions: FAILED — {ses.get('error')}")
    return lines


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    log_dir = Path(tempfile.mkdtemp(prefix="crmlens-bench-dashboard-"))
    # an empty result cache: phase 1 measures the first kernel ever on this data and code; later phases
    # reuse what earlier kernels computed, as a running `make dashboard` does
    from crmlens.dashboard.model import CACHE_ENV

    os.environ[CACHE_ENV] = str(log_dir / "cache")
    results: dict[str, Any] = {"notebook": args.notebook, "when": time.strftime("%Y-%m-%d %H:%M:%S"),
                               "loadavg_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                               "cpus": os.cpu_count(), "logs": str(log_dir)}
    phases = [] if args.skip_cold else [
        ("cold", "1/4 cold first render (pool_size=0)", lambda pw: phase_cold(pw, args.notebook, log_dir))]
    phases += [("preheated", f"2-3/4 preheated render + {args.changes} filter changes (pool_size=1)",
               lambda pw: phase_preheated(pw, args.notebook, args.changes, log_dir, args.think))]
    if not args.skip_sessions:
        phases.append(("sessions", f"4/4 {args.sessions} sessions at once (pool_size={args.pool_size})",
                       lambda pw: phase_sessions(pw, args.notebook, args.sessions, log_dir, args.pool_size)))
    async with async_playwright() as pw:
        for key, title, phase in phases:
            say(f"-- {title}")
            started = time.monotonic()
            try:
                results[key] = await phase(pw)
            except Exception as exc:  # a failed phase is reported; the next one still runs
                results[key] = {"error": f"{type(exc).__name__}: {exc}"}
                say(f"   FAILED: {exc}  (Voila logs in {log_dir})")
            say(f"   ({time.monotonic() - started:.0f} s)")
    results["loadavg_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--notebook", choices=sorted(VIEWS), default="overview",
                        help="dashboard (default: %(default)s)")
    parser.add_argument("--changes", type=int, default=24, help="filter changes to time (default: %(default)s)")
    parser.add_argument("--sessions", type=int, default=5, help="viewers at once in phase 4 (default: %(default)s)")
    parser.add_argument("--skip-sessions", action="store_true", help="skip phase 4")
    parser.add_argument("--skip-cold", action="store_true", help="skip phase 1")
    parser.add_argument("--pool-size", type=int, default=2, help="preheated kernels in phase 4 (default: %(default)s)")
    parser.add_argument("--query", action="append", default=[], metavar="KEY=VALUE",
                        help="a deep-link parameter of every page, e.g. rep=R0006 (the sales rep view gets the first "
                             "rep of the demo when none is given)")
    parser.add_argument("--think", type=float, default=0.0, metavar="S",
                        help="seconds the viewer reads the page before each filter change (default: %(default)s: "
                        "changes back to back, the worst case for computing ahead)")
    parser.add_argument("--ahead", type=int, metavar="N",
                        help=f"filter states the kernels compute ahead after each render (${AHEAD_ENV}; default: "
                        "the library's, 0 = off)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    if args.ahead is not None:
        if args.ahead < 0:
            parser.error("--ahead must be 0 or more")
        os.environ[AHEAD_ENV] = str(args.ahead)  # the Voila servers' kernels inherit it
    if args.changes < 1 or args.sessions < 1 or args.pool_size < 1:
        parser.error("--changes, --sessions and --pool-size must be at least 1")
    for item in args.query:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--query: {item!r} is not KEY=VALUE")
        QUERY[key] = value
    demo = paths.PROJECT_ROOT / "data" / "demo"
    if not (demo / "opportunities.parquet").exists():
        print(f"No demo data in {demo}: make it first with `make demo`.", file=sys.stderr)
        return 2
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: install the Debian package `chromium` (make system-deps).", file=sys.stderr)
        return 2
    if VIEWS[args.notebook].needs == "rep" and "rep" not in QUERY:
        import pandas as pd

        QUERY["rep"] = str(sorted(pd.read_parquet(demo / "reps.parquet")["rep_id"].astype(str))[0])
    results = asyncio.run(run(args))
    print("\n".join(summarize(results)))
    print(f"load average after: {results['loadavg_after']} ({results['cpus']} CPUs); Voila logs: {results['logs']}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str))
        print(f"results written to {args.out}")
    failed = [k for k in ("cold", "preheated", "sessions")
              if isinstance(results.get(k), dict) and "error" in results[k]]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
