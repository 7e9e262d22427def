"""The run's kernel pool (`crmlens.run.kernels.KernelPool`): a reset or warm-up in progress when the pool
closes stops at once instead of waiting out its timeout on a kernel that is gone."""

from __future__ import annotations

import threading
import time

import pytest

from crmlens.run.kernels import KernelPool

pytestmark = pytest.mark.slow


def _heartbeats() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if type(t).__name__ == "HBChannel" and t.is_alive()]


def test_code_running_when_the_pool_closes_is_abandoned_at_once(tmp_path):
    pool = KernelPool(size=1, warm_code=None, cwd=str(tmp_path))
    km = pool.acquire()
    kc = km.client()
    kc.start_channels()
    outcome: dict[str, object] = {}

    def run() -> None:
        t0 = time.monotonic()
        outcome["reply"] = pool._execute(km, kc, "import time\ntime.sleep(120)", timeout=300)
        outcome["seconds"] = time.monotonic() - t0

    thread = threading.Thread(target=run)
    try:
        thread.start()
        time.sleep(1.0)
        pool.close()  # the run ends: its kernels are shut down
        thread.join(timeout=30)
        assert not thread.is_alive(), "still waiting on a kernel that is gone"
        assert outcome["reply"] is None and outcome["seconds"] < 15, outcome
    finally:
        kc.stop_channels()
        pool.close()
    assert _heartbeats() == []


def test_a_reply_comes_back_and_a_silent_timeout_is_an_error(tmp_path):
    with KernelPool(size=1, warm_code=None, cwd=str(tmp_path)) as pool:
        km = pool.acquire()
        kc = km.client()
        kc.start_channels()
        try:
            reply = pool._execute(km, kc, "x = 1", timeout=60)
            assert reply is not None and reply["content"]["status"] == "ok"
            reply = pool._execute(km, kc, "1 / 0", timeout=60)
            assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "ZeroDivisionError"
            with pytest.raises(TimeoutError, match="within 1 s"):
                pool._execute(km, kc, "import time\ntime.sleep(5)", timeout=1)
        finally:
            kc.stop_channels()
