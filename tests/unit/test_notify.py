"""crmlens.notify against real local servers: an aiosmtpd SMTP server and an HTTP server on 127.0.0.1.

Each test builds a tiny fake run folder (manifest.json and <region>/alerts.json), never a real run.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from crmlens import notify
from crmlens.errors import ParameterError

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-Pa55word"
TOKEN = "tok3n-abcdef123456"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """The local servers are reached directly, whatever proxy the machine has."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")


# ------------------------------------------------------------------------------------------------ fake runs


def _alert(region: str, kpi: str, severity: str, n: int = 0) -> dict[str, Any]:
    return {"id": f"anomaly:{kpi}:{region}:2026-09:{n}", "kind": "anomaly", "kpi": kpi, "label": kpi.title(),
            "region": region, "period": "2026-09", "value": 120.0, "expected_low": 200.0, "expected_high": 300.0,
            "bound": None, "severity": severity,
            "text": f"{kpi} in {region} fell to 120 in 2026-09, below the expected 200–300 (#{n}).",
            "recommendation": f"Check the {kpi} sources of {region}."}


def make_run(root: Path, run_id: str = "20261201-101500", *, alerts: dict[str, list[dict]] | None = None,
             failed: int = 0, kpi_value: float = 0.30, language: str = "en") -> Path:
    """A run folder with a manifest (tasks carrying their KPIs, as diff_runs reads them) and alerts.json files."""
    run = root / run_id
    regions = ["North", "South"]
    tasks = []
    for region in regions:
        for i, notebook in enumerate(["01_funnel", "02_pipeline"]):
            bad = failed > 0 and region == "South" and i < failed
            tasks.append({
                "id": f"{notebook}:{region}:2026-Q3", "notebook": notebook, "region": region, "period": "2026-Q3",
                "parameters": {}, "status": "failed" if bad else "ok",
                "error": {"kind": "error", "cell": 7, "ename": "KeyError", "evalue": "'stage'"} if bad else None,
                "kpis": [] if bad else [
                    {"kpi": "win_rate", "label": "Win rate", "value": kpi_value + (0.1 if region == "North" else 0),
                     "display": None},
                    {"kpi": f"deals_{i}", "label": f"Deals {i}", "value": 100.0 + i, "display": None}],
            })
    run.mkdir(parents=True)
    manifest = {"run_id": run_id, "status": "failed" if failed else "ok",
                "parameters": {"regions": regions, "periods": ["2026-Q3"], "base": {"language": language}},
                "tasks": tasks, "exports": {r: {"status": "ok", "error": None} for r in regions},
                "summary": {"tasks": len(tasks), "ok": len(tasks) - failed, "failed": failed, "reused": 0,
                            "not_run": 0, "duration_s": 12.0}}
    (run / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (run / "index.html").write_text("<html></html>", encoding="utf-8")
    alerts = {"North": [_alert("North", "new_leads", "watch"), _alert("North", "win_rate", "act")],
              "South": [_alert("South", "bookings", "watch")]} if alerts is None else alerts
    for region in regions:
        (run / region).mkdir()
        if region in alerts:
            (run / region / "alerts.json").write_text(json.dumps(
                {"region": region, "period": "2026-Q3", "language": language, "alerts": alerts[region]}),
                encoding="utf-8")
    (run / "North" / "report.pdf").write_bytes(b"%PDF-1.4 fake report\n%%EOF\n")
    (run / "North" / "report.html").write_text("<html></html>", encoding="utf-8")
    return run


@pytest.fixture
def run(tmp_path) -> Path:
    return make_run(tmp_path / "outputs")


def config(channels: dict[str, Any], **top: Any) -> notify.NotifyConfig:
    return notify.parse_config({"channels": channels, **top}, "test.yaml")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------- SMTP server


class Collector:
    def __init__(self, reject_data: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        self.reject_data = reject_data

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd calls it by this name
        if self.reject_data:
            return "554 5.7.1 Message rejected as spam"
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "message": email.message_from_bytes(envelope.content, policy=email.policy.default)})
        return "250 OK"


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"bot" and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server() -> Iterator[tuple[Collector, int, dict[str, Any]]]:
    """A plain SMTP server on 127.0.0.1 with AUTH (login bot / PASSWORD) allowed without TLS."""
    handler = Collector()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, authenticator=_authenticator,
                            auth_require_tls=False)
    controller.start()
    try:
        yield handler, port, {"host": "127.0.0.1", "port": port, "security": "none"}
    finally:
        controller.stop()


def email_channel(smtp: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"kind": "email", "smtp": smtp, "from": "CRM Lens <crmlens@example.com>",
            "to": ["ops@example.com", "lead@example.com"], **extra}


def test_the_digest_email_arrives_with_subject_recipients_alerts_links_and_attachment(run, smtp_server):
    handler, _port, smtp = smtp_server
    cfg = config({"mail": email_channel(smtp, cc=["cc@example.com"], on="always",
                                        attach=["{region}/report.pdf", "index.html"])},
                 base_url="https://reports.example.com/crmlens/")
    [record] = notify.send_run_notifications(run, config=cfg, timeout=5)
    assert record["status"] == "sent", record
    assert record["channel"] == "mail" and record["kind"] == "email" and record["alerts"] == 3
    assert record["attachments"] == ["North_report.pdf", "index.html"]
    [got] = handler.messages
    assert got["from"] == "crmlens@example.com"
    assert sorted(got["to"]) == ["cc@example.com", "lead@example.com", "ops@example.com"]
    msg = got["message"]
    assert "20261201-101500" in msg["Subject"] and "3 alerts (1 act)" in msg["Subject"]
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    # act before watch, each alert's text and recommendation
    assert text.index("[ACT] win_rate in North") < text.index("[WATCH] new_leads in North")
    assert "Check the bookings sources of South." in text
    assert "Tasks: 4 ok, 0 failed" in text and "Regions: North, South" in text
    assert "https://reports.example.com/crmlens/20261201-101500/index.html" in text
    assert "https://reports.example.com/crmlens/20261201-101500/North/report.html" in text
    assert "South/report.pdf: not found, not attached" in text
    assert '<a href="https://reports.example.com/crmlens/20261201-101500/index.html">' in html
    assert "win_rate in North" in html
    [pdf, index] = list(msg.iter_attachments())
    assert pdf.get_filename() == "North_report.pdf" and pdf.get_content_type() == "application/pdf"
    assert pdf.get_content().startswith(b"%PDF")
    assert index.get_filename() == "index.html"


def test_attachments_over_the_size_cap_are_skipped_and_said(run, smtp_server):
    handler, _port, smtp = smtp_server
    (run / "South" / "report.pdf").write_bytes(b"x" * 200_000)
    cfg = config({"mail": email_channel(smtp, attach=["{region}/report.pdf"], max_attachments_mb=0.1)})
    [record] = notify.send_run_notifications(run, config=cfg, timeout=5)
    assert record["status"] == "sent" and record["attachments"] == ["North_report.pdf"]
    text = handler.messages[0]["message"].get_body(("plain",)).get_content()
    assert "South/report.pdf: 0.2 MB, over the 0.1 MB limit, not attached" in text


def test_smtp_login_accepted_and_a_wrong_password_is_failed_without_the_password(run, smtp_server, monkeypatch):
    handler, _port, smtp = smtp_server
    cfg = config({"mail": email_channel({**smtp, "username": "bot", "password_env": "CRMLENS_TEST_SMTP_PW"})})
    monkeypatch.setenv("CRMLENS_TEST_SMTP_PW", PASSWORD)
    assert notify.send_run_notifications(run, config=cfg, timeout=5)[0]["status"] == "sent"
    monkeypatch.setenv("CRMLENS_TEST_SMTP_PW", PASSWORD + "-wrong")
    [record] = notify.send_run_notifications(run, config=cfg, timeout=5)
    assert record["status"] == "failed" and "refused the login of bot: 535" in record["reason"]
    assert PASSWORD not in json.dumps(record)
    assert len(handler.messages) == 1


def test_a_missing_password_variable_fails_the_channel_and_names_the_variable(run, smtp_server, monkeypatch):
    _handler, _port, smtp = smtp_server
    monkeypatch.delenv("CRMLENS_TEST_SMTP_PW", raising=False)
    cfg = config({"mail": email_channel({**smtp, "username": "bot", "password_env": "CRMLENS_TEST_SMTP_PW"})})
    assert notify.missing_environment(cfg) == ["mail: CRMLENS_TEST_SMTP_PW"]
    [record] = notify.send_run_notifications(run, config=cfg, timeout=5)
    assert record == {**record, "status": "failed", "reason": "environment variable CRMLENS_TEST_SMTP_PW is not set"}


def test_starttls_and_login_configured_against_a_plain_server_fail_gracefully(run, monkeypatch):
    handler = Collector()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)  # no TLS, no AUTH
    controller.start()
    try:
        monkeypatch.setenv("CRMLENS_TEST_SMTP_PW", PASSWORD)
        starttls = {"host": "127.0.0.1", "port": port, "security": "starttls"}
        login = {"host": "127.0.0.1", "port": port, "security": "none", "username": "bot",
                 "password_env": "CRMLENS_TEST_SMTP_PW"}
        records = notify.send_run_notifications(run, config=config({"tls": email_channel(starttls),
                                                                    "auth": email_channel(login)}), timeout=5)
    finally:
        controller.stop()
    assert [r["status"] for r in records] == ["failed", "failed"]
    assert f"127.0.0.1:{port} does not support STARTTLS" in records[0]["reason"]
    assert f"127.0.0.1:{port} does not support login (AUTH)" in records[1]["reason"]
    assert PASSWORD not in json.dumps(records) and not handler.messages


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command for a test certificate")
def test_starttls_with_login_over_tls_and_a_configured_ca(run, tmp_path, monkeypatch):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    handler = Collector()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=server_tls, require_starttls=True,
                            authenticator=_authenticator)
    controller.start()
    monkeypatch.setenv("CRMLENS_TEST_SMTP_PW", PASSWORD)
    smtp = {"host": "127.0.0.1", "port": port, "security": "starttls", "username": "bot",
            "password_env": "CRMLENS_TEST_SMTP_PW"}
    try:
        trusted, untrusted = notify.send_run_notifications(
            run, config=config({"trusted": email_channel({**smtp, "ca_file": str(cert)}),
                                "untrusted": email_channel(smtp)}), timeout=5)
    finally:
        controller.stop()
    assert trusted["status"] == "sent", trusted
    assert untrusted["status"] == "failed" and "TLS with SMTP server" in untrusted["reason"]
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted["reason"]
    assert len(handler.messages) == 1


def test_an_smtp_server_that_rejects_the_message_or_is_not_there(run):
    handler = Collector(reject_data=True)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    closed = free_port()
    try:
        rejected, refused = notify.send_run_notifications(run, config=config({
            "rejects": email_channel({"host": "127.0.0.1", "port": port, "security": "none"}),
            "closed": email_channel({"host": "127.0.0.1", "port": closed, "security": "none"})}), timeout=5)
    finally:
        controller.stop()
    assert rejected["status"] == "failed" and "refused the message at send: 554" in rejected["reason"]
    assert refused["status"] == "failed"
    assert refused["reason"] == f"cannot reach SMTP server 127.0.0.1:{closed}: Connection refused"


# ---------------------------------------------------------------------------------------------- HTTP server


class Hooks:
    """What the HTTP server received, and how it answers each path."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.answers: dict[str, tuple[int, bytes]] = {}
        self.delay: dict[str, float] = {}


@pytest.fixture
def http_server() -> Iterator[tuple[Hooks, str]]:
    hooks = Hooks()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # http.server calls it by this name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            parts = urllib.parse.urlsplit(self.path)
            hooks.received.append({"path": parts.path, "query": urllib.parse.parse_qs(parts.query),
                                   "headers": dict(self.headers), "json": json.loads(body)})
            time.sleep(hooks.delay.get(parts.path, 0))
            status, answer = hooks.answers.get(parts.path, (200, b"ok"))
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except (BrokenPipeError, ConnectionResetError):
                pass  # a delayed answer: the client stopped waiting (the timeout tests)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield hooks, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def webhook(fmt: str, env: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "webhook", "format": fmt, "url_env": env, **extra}


def test_each_webhook_format_posts_the_shape_its_service_accepts(run, http_server, monkeypatch):
    hooks, base = http_server
    for fmt in notify.FORMATS:
        monkeypatch.setenv(f"CRMLENS_TEST_{fmt.upper()}", f"{base}/{fmt}/{TOKEN}?key={TOKEN}")
    cfg = config({fmt: webhook(fmt, f"CRMLENS_TEST_{fmt.upper()}", on="always") for fmt in notify.FORMATS},
                 base_url="https://reports.example.com/out")
    records = notify.send_run_notifications(run, config=cfg, timeout=5)
    assert [(r["channel"], r["status"], r["alerts"]) for r in records] == [(f, "sent", 3) for f in notify.FORMATS]
    got = {r["path"].split("/")[1]: r for r in hooks.received}
    assert all(r["path"].endswith(TOKEN) for r in hooks.received)
    assert got["json"]["headers"]["Content-Type"].startswith("application/json")

    slack = got["slack"]["json"]
    assert list(slack) == ["text"]
    assert "*ACT* win_rate in North" in slack["text"]
    assert "<https://reports.example.com/out/20261201-101500/index.html|" in slack["text"]

    teams = got["teams"]["json"]
    assert teams["@type"] == "MessageCard" and teams["themeColor"] == "B42318"
    assert "CRM Lens run 20261201-101500" in teams["title"] and "**ACT** win_rate in North" in teams["text"]

    wecom = got["wecom"]["json"]
    assert wecom["msgtype"] == "markdown" and list(wecom["markdown"]) == ["content"]
    assert '<font color="warning">ACT</font> win_rate in North' in wecom["markdown"]["content"]
    assert len(wecom["markdown"]["content"].encode()) <= 4096

    ding = got["dingtalk"]["json"]
    assert ding["msgtype"] == "markdown" and set(ding["markdown"]) == {"title", "text"}
    assert ding["markdown"]["title"].startswith("CRM Lens run 20261201-101500")
    assert "**ACT** win_rate in North" in ding["markdown"]["text"]

    generic = got["json"]["json"]
    assert generic["run_id"] == "20261201-101500" and generic["regions"] == ["North", "South"]
    assert [a["severity"] for a in generic["alerts"]] == ["act", "watch", "watch"]
    assert generic["alerts"][0]["id"] == "anomaly:win_rate:North:2026-09:0"
    assert generic["alert_counts"] == {"watch": 2, "act": 1}
    assert generic["index"] == "https://reports.example.com/out/20261201-101500/index.html"
    assert generic["tasks"]["ok"] == 4


def test_alerts_are_capped_with_and_n_more_act_first(tmp_path, http_server, monkeypatch):
    hooks, base = http_server
    run = make_run(tmp_path, alerts={"North": [_alert("North", "leads", "watch", n) for n in range(8)]
                                     + [_alert("North", "win_rate", "act")]})
    monkeypatch.setenv("CRMLENS_TEST_HOOK", f"{base}/slack")
    monkeypatch.setenv("CRMLENS_TEST_JSON", f"{base}/json")
    cfg = config({"s": webhook("slack", "CRMLENS_TEST_HOOK", max_alerts=3),
                  "j": webhook("json", "CRMLENS_TEST_JSON", max_alerts=3)})
    notify.send_run_notifications(run, config=cfg, timeout=5)
    text = hooks.received[0]["json"]["text"]
    assert text.count("- *WATCH*") == 2 and text.count("- *ACT*") == 1
    assert text.index("*ACT*") < text.index("*WATCH*")
    assert "… and 6 more" in text
    assert len(hooks.received[1]["json"]["alerts"]) == 9  # the generic JSON has them all


def test_failed_webhooks_are_records_with_a_reason_and_no_secret(run, http_server, monkeypatch):
    hooks, base = http_server
    hooks.answers[f"/fail/{TOKEN}"] = (500, f"internal error for {TOKEN}".encode())
    hooks.answers["/wecom"] = (200, json.dumps({"errcode": 93000, "errmsg": "invalid webhook url"}).encode())
    hooks.delay["/slow"] = 1.0
    closed = free_port()
    monkeypatch.setenv("CRMLENS_TEST_500", f"{base}/fail/{TOKEN}")
    monkeypatch.setenv("CRMLENS_TEST_CLOSED", f"http://127.0.0.1:{closed}/hook/{TOKEN}")
    monkeypatch.setenv("CRMLENS_TEST_WECOM", f"{base}/wecom?key={TOKEN}")
    monkeypatch.setenv("CRMLENS_TEST_SLOW", f"{base}/slow")
    cfg = config({"h500": webhook("slack", "CRMLENS_TEST_500"), "closed": webhook("json", "CRMLENS_TEST_CLOSED"),
                  "wecom": webhook("wecom", "CRMLENS_TEST_WECOM"), "slow": webhook("teams", "CRMLENS_TEST_SLOW")})
    t0 = time.perf_counter()
    records = notify.send_run_notifications(run, config=cfg, timeout=0.3)
    assert time.perf_counter() - t0 < 3
    by = {r["channel"]: r for r in records}
    assert all(r["status"] == "failed" for r in records)
    assert by["h500"]["reason"].startswith(f"{base} answered HTTP 500 Internal Server Error: internal error for ***")
    assert by["closed"]["reason"] == f"cannot reach http://127.0.0.1:{closed}: Connection refused"
    assert by["wecom"]["reason"] == f"{base} refused the message: errcode 93000 invalid webhook url"
    assert by["slow"]["reason"] == f"{base} did not answer within 0.3 s"
    assert TOKEN not in json.dumps(records)


def test_dingtalk_messages_are_signed_when_a_secret_is_configured(run, http_server, monkeypatch):
    hooks, base = http_server
    monkeypatch.setenv("CRMLENS_TEST_DING", f"{base}/robot/send?access_token={TOKEN}")
    monkeypatch.setenv("CRMLENS_TEST_DING_SECRET", "SEC0123456789abcdef")
    cfg = config({"ding": webhook("dingtalk", "CRMLENS_TEST_DING", secret_env="CRMLENS_TEST_DING_SECRET",
                                  title="CRM Lens 告警")})
    [record] = notify.send_run_notifications(run, config=cfg, timeout=5)
    assert record["status"] == "sent"
    query = hooks.received[0]["query"]
    assert query["access_token"] == [TOKEN] and query["timestamp"][0].isdigit() and len(query["sign"][0]) == 44
    assert hooks.received[0]["json"]["markdown"]["title"] == "CRM Lens 告警"


# ---------------------------------------------------------------------------------------------- when to send


def test_on_alerts_without_alerts_is_skipped_and_min_severity_filters(tmp_path, http_server, monkeypatch):
    hooks, base = http_server
    monkeypatch.setenv("CRMLENS_TEST_HOOK", f"{base}/json")
    cfg = config({"act_only": webhook("json", "CRMLENS_TEST_HOOK", min_severity="act"),
                  "watch": webhook("json", "CRMLENS_TEST_HOOK"),
                  "always": webhook("json", "CRMLENS_TEST_HOOK", on="always", min_severity="act"),
                  "failures": webhook("json", "CRMLENS_TEST_HOOK", on="failures"),
                  "off": webhook("json", "CRMLENS_TEST_HOOK", on="always", enabled=False)})
    quiet = make_run(tmp_path / "a", alerts={"North": [_alert("North", "leads", "watch")]})
    records = {r["channel"]: r for r in notify.send_run_notifications(quiet, config=cfg, timeout=5)}
    assert records["act_only"] == {**records["act_only"], "status": "skipped", "alerts": 0,
                                   "reason": "no alerts at or above act"}
    assert records["watch"]["status"] == "sent" and records["watch"]["alerts"] == 1
    assert records["always"]["status"] == "sent" and records["always"]["alerts"] == 0
    assert records["failures"] == {**records["failures"], "status": "skipped", "reason": "no task or export failed"}
    assert records["off"]["status"] == "skipped"
    assert [[a["severity"] for a in h["json"]["alerts"]] for h in hooks.received] == [["watch"], []]

    none = make_run(tmp_path / "b", alerts={})
    records = {r["channel"]: r for r in notify.send_run_notifications(none, config=cfg, timeout=5)}
    assert records["watch"] == {**records["watch"], "status": "skipped", "reason": "no alerts at or above watch"}

    broken = make_run(tmp_path / "c", alerts={}, failed=1)
    records = {r["channel"]: r for r in notify.send_run_notifications(broken, config=cfg, timeout=5)}
    assert records["failures"]["status"] == "sent"
    payload = hooks.received[-1]["json"]
    assert payload["failed_tasks"][0]["id"] == "01_funnel:South:2026-Q3"
    assert "01_funnel:South:2026-Q3: KeyError: 'stage' (cell 7)" in payload["text"] and "Failures" in payload["text"]


def test_key_changes_since_the_previous_run_and_the_run_language(tmp_path, http_server, monkeypatch):
    hooks, base = http_server
    outputs = tmp_path / "outputs"
    before = make_run(outputs, "q3-board", kpi_value=0.20)
    os.utime(before / "manifest.json", (time.time() - 3600, time.time() - 3600))
    run = make_run(outputs, "20261201-101500", kpi_value=0.30, language="zh")
    make_run(outputs, "zz-later", kpi_value=0.50)  # finished after this run: not "previous"
    os.utime(run / "manifest.json", (time.time() - 60, time.time() - 60))
    assert notify.find_previous_run(run) == before
    monkeypatch.setenv("CRMLENS_TEST_HOOK", f"{base}/json")
    cfg = config({"j": webhook("json", "CRMLENS_TEST_HOOK", on="always")}, max_changes=1)
    [record] = notify.send_run_notifications(run, config=cfg, timeout=5)  # the previous run is found beside it
    assert record["status"] == "sent", record
    payload = hooks.received[0]["json"]
    assert payload["language"] == "zh"
    changes = payload["changes"]
    assert changes["previous_run_id"] == "q3-board" and changes["total"] == 2
    assert [(c["region"], c["kpi"]) for c in changes["top"]] == [("South", "win_rate")]  # +50% beats +33%
    assert "q3-board" in payload["text"] and "South · 2026-Q3 · 赢单率: 0.20 → 0.30 (+50.0%)" in payload["text"]
    assert "告警" in payload["text"] and "… 另有 1 项" in payload["text"]

    cfg = config({"j": webhook("json", "CRMLENS_TEST_HOOK", on="always")}, compare_with_previous=False,
                 language="en")
    notify.send_run_notifications(run, config=cfg, timeout=5)
    assert hooks.received[1]["json"]["changes"]["previous_run_id"] is None
    assert "Alerts" in hooks.received[1]["json"]["text"]


def test_an_unreadable_run_fails_every_channel_without_raising(tmp_path, monkeypatch):
    monkeypatch.setenv("CRMLENS_TEST_HOOK", f"http://127.0.0.1:1/{TOKEN}")
    cfg = config({"j": webhook("json", "CRMLENS_TEST_HOOK", on="always")})
    [record] = notify.send_run_notifications(tmp_path / "nowhere", config=cfg, timeout=1)
    assert record["status"] == "failed" and "cannot read the run" in record["reason"]


def test_a_damaged_alerts_file_is_said_and_the_others_are_sent(run, http_server, monkeypatch):
    hooks, base = http_server
    (run / "South" / "alerts.json").write_text("{not json", encoding="utf-8")
    monkeypatch.setenv("CRMLENS_TEST_HOOK", f"{base}/json")
    [record] = notify.send_run_notifications(run, config=config({"j": webhook("json", "CRMLENS_TEST_HOOK")}))
    assert record["status"] == "sent" and record["alerts"] == 2
    assert "The alerts of South could not be read" in hooks.received[0]["json"]["notes"][0]


# ------------------------------------------------------------------------------------------- configuration


def test_the_example_configuration_is_valid():
    cfg = notify.load_config(ROOT / "params" / "notify.example.yaml")
    assert {c.kind for c in cfg.channels.values()} == {"email", "webhook"}
    assert {c.format for c in cfg.channels.values() if c.kind == "webhook"} == set(notify.FORMATS)
    assert all(c.on in notify.TRIGGERS for c in cfg.channels.values())


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "notify.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_config_errors_name_the_file_line_field_and_what_is_accepted(tmp_path):
    path = write(tmp_path, """\
channels:
  team:
    kind: webhook
    format: teamz
    url_env: CRMLENS_TEAMS
    on: sometimes
  mail:
    kind: email
    smtp: {host: smtp.example.com, prot: 25}
    from: a@example.com
    to: [b@example.com]
""")
    with pytest.raises(ParameterError) as info:
        notify.load_config(path)
    text = str(info.value)
    assert f"{path}:4: channels.team.format:" in text and "'slack', 'teams', 'wecom', 'dingtalk' or 'json'" in text
    assert f"{path}:6: channels.team.on:" in text and "'alerts', 'always' or 'failures'" in text
    assert (f"{path}:9: channels.mail.smtp.prot: unknown field (did you mean port?); the fields here are: host, port, "
            "security") in text


def test_config_errors_for_kinds_urls_and_secrets(tmp_path):
    with pytest.raises(ParameterError, match=r"notify.yaml:3: channels.x.kind: kind must be one of: email, webhook"):
        notify.load_config(write(tmp_path, "channels:\n  x:\n    kind: sms\n"))
    with pytest.raises(ParameterError, match="give exactly one of url_env"):
        notify.load_config(write(tmp_path, "channels:\n  x: {kind: webhook, format: slack}\n"))
    secret = f"https://hooks.slack.com/services/{TOKEN}"
    with pytest.raises(ParameterError) as info:
        notify.load_config(write(tmp_path, f"channels:\n  x: {{kind: webhook, format: slack, url_env: '{secret}'}}\n"))
    assert "channels.x.url_env: must be the name of an environment variable" in str(info.value)
    assert TOKEN not in str(info.value)
    with pytest.raises(ParameterError, match=r"notify.yaml:1: channels: Field required|channels: required field"):
        notify.load_config(write(tmp_path, "language: zh\n"))
    with pytest.raises(ParameterError, match="does not exist"):
        notify.load_config(tmp_path / "missing.yaml")
    with pytest.raises(ParameterError, match=r"notify.yaml:\d+ is not valid YAML"):
        notify.load_config(write(tmp_path, "channels:\n  x: [\n"))
    with pytest.raises(ParameterError, match=r"attachments are files inside the run folder"):
        notify.load_config(write(tmp_path, "channels:\n  m: {kind: email, smtp: {host: h}, from: a@b.c, to: [d@e.f], "
                                           "attach: [../secret.txt]}\n"))


def test_on_is_read_as_a_key_not_as_true(tmp_path):
    cfg = notify.load_config(write(tmp_path, "channels:\n  x:\n    kind: webhook\n    format: json\n"
                                             "    url: http://127.0.0.1:9/x\n    on: always\n"))
    assert cfg.channels["x"].on == "always" and cfg.source == str(tmp_path / "notify.yaml")
