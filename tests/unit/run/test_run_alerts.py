"""A run's alerts and forecasts: alerts.json per region, the alerts on the index page, forecast.json per task,
the forecast drift in `crmlens diff`, and notifications sent to a real local webhook — a failing channel never
failing the run."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from crmlens.forecast.snapshots import FORECAST_MIMETYPE
from crmlens.run import runner
from crmlens.run.diff import diff_runs
from crmlens.run.runner import RunOptions
from tests.unit.run.fakes import write_notebook

pytestmark = pytest.mark.slow

ALERT_CELL = """
from crmlens import notebook as nb
from crmlens.alerts import Alert
if region == "North":
    nb.show_alerts({"alerts": [Alert("threshold", "leads_created", region, "2026-09", 261.0, "act",
                                     "New leads in North fell to 261 in 2026-09.", bound=0.3)]})
"""

FORECAST_CELL = f"""
from IPython.display import display
amount = options["test"]["amount"]
snap = {{"version": 1, "region": region, "period": "2026-Q4", "as_of": options["test"]["as_of"],
        "run_rate_expected": 10.0,
        "deals": {{"columns": ["opportunity_id", "owner_rep_id", "stage", "amount", "expected_close_date", "p",
                              "expected_amount"],
                  "rows": [["O1", "R1", "Proposal", amount, "2026-11-15", 0.5, amount * 0.5]]}},
        "closed": {{"columns": ["opportunity_id", "won", "in_period", "amount"], "rows": []}}}}
display({{"{FORECAST_MIMETYPE}": snap, "text/plain": "snapshot"}}, raw=True)
"""


_notebook = write_notebook


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Hook.received
    server.shutdown()
    server.server_close()


def test_alerts_forecasts_drift_and_notifications_of_a_run(tiny_demo, tmp_path, webhook, monkeypatch):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "09_test.ipynb", ALERT_CELL, FORECAST_CELL)
    url, received = webhook
    monkeypatch.setenv("CRMLENS_TEST_HOOK", url)
    config = tmp_path / "notify.yaml"
    config.write_text("channels:\n  hook: {kind: webhook, format: json, url_env: CRMLENS_TEST_HOOK, on: alerts}\n"
                      "  broken: {kind: webhook, format: slack, url_env: CRMLENS_TEST_CLOSED, on: always}\n")
    monkeypatch.setenv("CRMLENS_TEST_CLOSED", "http://127.0.0.1:9/closed")  # nothing listens on port 9

    def run(run_id, amount, as_of, notify=None):
        return runner.run(RunOptions(source=str(tiny_demo), regions="North,East", periods="2026-Q3",
                                     notebooks_dir=folder, outputs_dir=tmp_path / "out", exports=(), progress=False,
                                     workers=1, run_id=run_id, notify=notify,
                                     overrides={"options": {"test": {"amount": amount, "as_of": as_of}}}))

    first = run("first", 100.0, "2026-09-01T00:00:00")
    second = run("second", 140.0, "2026-09-15T00:00:00", notify=config)
    assert first.exit_code == 0 and second.exit_code == 0, "a failing notification never fails the run"

    north = json.loads((second.run_dir / "North" / "alerts.json").read_text())
    assert [a["id"] for a in north["alerts"]] == ["threshold:leads_created:North:2026-09"]
    assert north["alerts"][0]["severity"] == "act" and north["alerts"][0]["label"] == "Leads created"
    assert json.loads((second.run_dir / "East" / "alerts.json").read_text())["alerts"] == []
    index = (second.run_dir / "index.html").read_text()
    assert 'data-alerts="1" data-act="1"' in index and "New leads in North fell to 261" in index
    assert (second.run_dir / "North" / "2026-Q3" / "forecast.json").is_file()

    moved = {c.region: c for c in diff_runs(first.run_dir, second.run_dir).forecasts}
    assert moved["North"].expected_a == pytest.approx(60.0) and moved["North"].expected_b == pytest.approx(80.0)
    assert moved["North"].by_change == {"amount_changed": pytest.approx(20.0), "run_rate": 0.0}
    assert "Pipeline forecasts that moved" in diff_runs(first.run_dir, second.run_dir).to_text()

    records = {r["channel"]: r for r in second.manifest["notifications"]}
    assert records["hook"]["status"] == "sent" and records["broken"]["status"] == "failed"
    assert "9/closed" not in json.dumps(records), "a webhook address is not written out"
    assert len(received) == 1 and "New leads in North fell to 261" in json.dumps(received[0])
