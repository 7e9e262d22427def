"""Browser tests: Voila started by a fixture on a free 127.0.0.1 port, driven by Playwright with Debian's
Chromium (/usr/bin/chromium; never `playwright install`). A failed test leaves a full-page screenshot and the
Voila log in outputs/test-artifacts/browser/."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmlens import paths
from crmlens.run.exports import CHROMIUM, CHROMIUM_ARGS

ARTIFACTS = paths.PROJECT_ROOT / "outputs" / "test-artifacts" / "browser"
RENDER_TIMEOUT_MS = 180_000


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def start_server(source: str, mapping: str | None, name: str, pool_size: int = 1,
                 preheat: tuple[str, ...] = ("overview",), env: dict[str, str] | None = None):
    from crmlens.dashboard.serve import VoilaServer

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / f"voila-{name}.log"
    # a used kernel is replaced at once and preheats only the default view: tests open one page at a time and
    # check what it shows (which views a kernel preheats is unit-tested); each refill is then seconds, not ~20 s
    quick = {"CRMLENS_DASHBOARD_PREHEAT_DELAY": "0", "CRMLENS_DASHBOARD_WARM": "0"}
    # only the dashboards a module opens most are preheated: each preheated kernel loads the data (a few seconds
    # of CPU), and five views × a pool would compete with the rest of the suite
    return VoilaServer(pool_size=pool_size, source=source, mapping=mapping, log_path=log,
                       extra_env={**quick, **(env or {})}, preheat=preheat).start()


@pytest.fixture
def page(request, browser) -> Iterator:
    """A fresh browser page; requests leaving 127.0.0.1 are blocked and listed in ``page.outside``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.outside = []

    def route(r):
        url = r.request.url
        if url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            r.continue_()
        else:
            pg.outside.append(url)
            r.abort()
    pg.route("**/*", route)
    yield pg
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-120:]
        with contextlib.suppress(Exception):  # a courtesy: the test's own failure is what matters
            pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    context.close()
