"""Notifications of a run: its digest and alerts by e-mail (SMTP) and webhooks (Slack, Teams, 企业微信, 钉钉, JSON).

A YAML file (example: ``params/notify.example.yaml``; docs/notifications.md) names the channels; each says when it
sends (``on: alerts`` — only when the run has alerts at or above its ``min_severity``; ``always``; ``failures``)::

    config = load_config(Path("params/notify.yaml"))     # before the run: a bad file is a ParameterError
    ...                                                   # the run, its manifest.json and index.html
    records = send_run_notifications(run_dir, config=config, previous_run=previous)

The digest says what the run was (id, periods, regions, tasks ok/failed, where its index is: a path, or a link
under ``base_url``), its key KPI changes since the previous run (`crmlens.run.diff.diff_runs`), its alerts (every
``<region>/alerts.json``; act before watch, capped, "and N more") and, by e-mail, attachments (files of the run
folder, with a size cap; a missing file is skipped and said). It is written in the run's language.

Secrets never sit in the configuration: it names the environment variables that hold them (``password_env``,
``url_env``, ``secret_env``, ``headers_env``), and no secret is written to a record, a log or an error text
(a webhook's address is shown as its scheme and host only). A failed delivery (connection refused, timeout,
HTTP 4xx/5xx, a refused login) never raises: it is a record with ``status: failed`` and a reason.
"""

from __future__ import annotations

import base64
import contextlib
import difflib
import hashlib
import hmac
import html
import json
import logging
import math
import mimetypes
import os
import re
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from crmlens import i18n
from crmlens.errors import ParameterError
from crmlens.i18n import N_, _, n_
from crmlens.paths import safe_component

log = logging.getLogger("crmlens.notify")

#: Severity of an alert, lowest first (an alert of an unknown severity counts as ``watch``).
SEVERITIES: tuple[str, ...] = ("watch", "act")
_RANK = {"watch": 1, "act": 2}
#: When a channel sends: ``alerts`` (alerts at or above its min_severity), ``always`` (every run), ``failures``.
TRIGGERS: tuple[str, ...] = ("alerts", "always", "failures")
#: Payload formats of a webhook.
FORMATS: tuple[str, ...] = ("slack", "teams", "wecom", "dingtalk", "json")
SECURITIES: tuple[str, ...] = ("none", "starttls", "ssl")
_DEFAULT_PORT = {"none": 25, "starttls": 587, "ssl": 465}
#: The largest message each service accepts (bytes of UTF-8 for WeCom and DingTalk, characters otherwise).
_LIMITS = {"slack": 39_000, "teams": 20_000, "wecom": 4_000, "dingtalk": 19_000}
_SEVERITY_LABELS = {"act": N_("ACT"), "watch": N_("WATCH")}
_STATUS_LABELS = {"ok": N_("ok"), "failed": N_("failed"), "interrupted": N_("interrupted")}

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# ---------------------------------------------------------------------------------------------- configuration


def _env_name(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME.match(value):
        # the value is not repeated: someone may have written the secret itself here
        raise ValueError("must be the name of an environment variable (letters, digits and _, e.g. "
                         "CRMLENS_SMTP_PASSWORD), not the secret itself")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class SmtpSettings(_Model):
    """The SMTP server of an e-mail channel."""

    host: str = Field(min_length=1)
    port: int | None = Field(None, ge=1, le=65535, description="default: 25, 587 (starttls) or 465 (ssl)")
    security: Literal["none", "starttls", "ssl"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    ca_file: Path | None = Field(None, description="CA certificates (PEM) to trust besides the system's")
    local_hostname: str | None = None

    @field_validator("password_env")
    @classmethod
    def _password_env(cls, value: str | None) -> str | None:
        return _env_name(value)

    @model_validator(mode="after")
    def _login_pair(self) -> SmtpSettings:
        if self.password_env and not self.username:
            raise ValueError("password_env is set but username is not: the login needs both")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or _DEFAULT_PORT[self.security]


class _Channel(_Model):
    on: Literal["alerts", "always", "failures"] = "alerts"
    min_severity: Literal["watch", "act"] = "watch"
    enabled: bool = True
    max_alerts: int = Field(10, ge=1, le=1000, description="alerts listed; the others are counted")


class EmailChannel(_Channel):
    """An e-mail channel: the digest as plain text with an HTML alternative, optionally with attachments."""

    kind: Literal["email"]
    smtp: SmtpSettings
    sender: str = Field(alias="from", min_length=3)
    to: list[str] = Field(min_length=1)
    cc: list[str] = []
    bcc: list[str] = []
    subject: str | None = Field(None, description="placeholders {run_id} {periods} {regions} {alerts} {status}")
    attach: list[str] = Field([], description="files of the run folder; {region} is each region (e.g. "
                                                "{region}/report.pdf)")
    max_attachments_mb: float = Field(10.0, gt=0)

    @field_validator("to", "cc", "bcc")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        for value in values:
            if "@" not in value:
                raise ValueError(f"{value!r} is not an e-mail address")
        return values

    @field_validator("attach")
    @classmethod
    def _inside_run(cls, values: list[str]) -> list[str]:
        for value in values:
            if value.startswith(("/", "\\")) or ".." in Path(value).parts:
                raise ValueError(f"{value!r}: attachments are files inside the run folder (a relative path "
                                 "such as {region}/report.pdf)")
        return values

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.format(run_id="", periods="", regions="", alerts=0, status="")
            except (KeyError, IndexError, ValueError) as err:
                raise ValueError(f"unknown placeholder {err}; accepted: {{run_id}} {{periods}} {{regions}} "
                                 "{alerts} {status}") from None
        return value


class WebhookChannel(_Channel):
    """A webhook channel: one HTTP POST of JSON in the receiving service's format."""

    kind: Literal["webhook"]
    format: Literal["slack", "teams", "wecom", "dingtalk", "json"]
    url_env: str | None = None
    url: str | None = Field(None, description="only for an address without a token; otherwise url_env")
    secret_env: str | None = Field(None, description="钉钉 signing secret (加签), dingtalk only")
    headers: dict[str, str] = {}
    headers_env: dict[str, str] = Field({}, description="header name → environment variable with its value")
    title: str | None = Field(None, description="钉钉 message title (a keyword its security setting requires)")

    @field_validator("url_env", "secret_env")
    @classmethod
    def _envs(cls, value: str | None) -> str | None:
        return _env_name(value)

    @field_validator("headers_env")
    @classmethod
    def _header_envs(cls, values: dict[str, str]) -> dict[str, str]:
        for value in values.values():
            _env_name(value)
        return values

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and urllib.parse.urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// address")
        return value

    @model_validator(mode="after")
    def _one_url(self) -> WebhookChannel:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url_env (the environment variable holding the address: use it "
                             "when the address embeds a token) and url")
        if self.secret_env and self.format != "dingtalk":
            raise ValueError("secret_env signs 钉钉 (dingtalk) messages only")
        return self


Channel = Annotated[EmailChannel | WebhookChannel, Field(discriminator="kind")]


class NotifyConfig(_Model):
    """The notification settings of a run (one YAML file)."""

    language: Literal["en", "zh"] | None = Field(None, description="default: the run's language")
    base_url: str | None = Field(None, description="where the outputs folder is published: links become "
                                                   "<base_url>/<run_id>/index.html")
    max_changes: int = Field(5, ge=0, le=100)
    compare_with_previous: bool = Field(True, description="without previous_run, compare with the latest "
                                                          "earlier run beside this one")
    channels: dict[str, Channel] = Field(min_length=1)
    source: str | None = Field(None, exclude=True, description="the file it was read from (set by load_config)")

    @field_validator("channels")
    @classmethod
    def _names(cls, values: dict[str, Any]) -> dict[str, Any]:
        for name in values:
            if not _CHANNEL_NAME.match(str(name)):
                raise ValueError(f"channel name {name!r}: use letters, digits, '-', '_' or '.'")
        return values

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str | None) -> str | None:
        if value is not None and urllib.parse.urlsplit(value).scheme not in ("http", "https", "file"):
            raise ValueError("must be an http://, https:// or file:// address")
        return value


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: ``on:`` is a key, not True (PyYAML reads on/off/yes/no as booleans)."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))

_MODELS: dict[str, type[BaseModel]] = {"email": EmailChannel, "webhook": WebhookChannel}
_SECRET_FIELDS = ("password_env", "url_env", "secret_env", "headers_env", "url", "headers")


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The line (1-based) of the deepest key of `loc` found in the composed YAML `node`."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if str(key.value) == str(part):
                    node, line = value, key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model whose fields are valid at `loc` (for "unknown field" errors)."""
    if not loc:
        return NotifyConfig
    if loc[0] != "channels" or len(loc) < 3 or loc[2] not in _MODELS:
        return None
    model = _MODELS[loc[2]]
    if len(loc) == 3:
        return model
    if loc[3] == "smtp" and len(loc) == 4:
        return SmtpSettings
    return None


def _config_error(err: ValidationError, source: str, root: yaml.Node | None) -> ParameterError:
    """One line per problem: file:line: field: what is wrong and what is accepted (never a secret's value)."""
    lines: Any = []
    for e in err.errors():
        loc = tuple(e.get("loc", ()))
        kind_loc = loc
        if len(loc) >= 3 and loc[0] == "channels" and loc[2] in _MODELS:
            loc = loc[:2] + loc[3:]  # the kind tag pydantic puts in the path
        if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc += ("kind",)
        name = ".".join(str(p) for p in loc) or "(the file)"
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            model = _model_at(kind_loc[:-1])
            fields = [f.alias or n for n, f in model.model_fields.items() if n != "source"] if model else []
            close = difflib.get_close_matches(str(loc[-1]), fields, n=1) if loc else []
            message = "unknown field" + (f" (did you mean {close[0]}?)" if close else "")
            message += f"; the fields here are: {', '.join(fields)}" if fields else ""
        elif e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            message = "kind must be one of: email, webhook"
        elif e["type"] == "missing":
            message = "required field is missing"
        elif e["type"].startswith("literal_"):
            message = message.replace("Input should be", "accepted:")
        if not any(str(p).endswith(_SECRET_FIELDS) for p in loc) and e["type"] not in ("missing", "extra_forbidden") \
                and not isinstance(e.get("input"), dict | list):
            message += f" (got {e.get('input')!r})"
        line = _line_of(root, loc)
        lines.append((line or 0, f"{source}{f':{line}' if line else ''}: {name}: {message}"))
    lines = [text for _line, text in sorted(lines, key=lambda item: item[0])]
    if len(lines) == 1:
        return ParameterError(f"notification config {lines[0]}")
    return ParameterError(f"notification config {source} is not valid ({len(lines)} problems):\n"
                          + "\n".join(f"  - {line}" for line in lines))


def parse_config(data: Mapping[str, Any], source: str = "<notification settings>",
                 root: yaml.Node | None = None) -> NotifyConfig:
    """Validate settings already read (a dict); a ParameterError names `source`, each field and what is accepted."""
    if not isinstance(data, Mapping):
        raise ParameterError(f"notification config {source}: must be a mapping with a `channels:` key, not a "
                             f"{type(data).__name__}")
    try:
        config = NotifyConfig.model_validate(dict(data))
    except ValidationError as err:
        raise _config_error(err, source, root) from None
    return config.model_copy(update={"source": source})


def load_config(path: str | Path) -> NotifyConfig:
    """Read and validate a notification file (call it before a run: errors are found before any work).

    A problem raises `ParameterError` naming the file, the line, the field and what is accepted. Environment
    variables are not read here (`missing_environment` lists those that are not set)."""
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"notification config {path} does not exist (an example: params/notify.example.yaml)")
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=_Loader)
        root = yaml.compose(text, Loader=_Loader)
    except (OSError, UnicodeDecodeError) as err:
        raise ParameterError(f"notification config {path}: cannot read it: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ParameterError(f"notification config {path}{where} is not valid YAML: "
                             f"{getattr(err, 'problem', None) or err}") from None
    if data is None:
        raise ParameterError(f"notification config {path} is empty; it needs `channels:` (see "
                             "params/notify.example.yaml)")
    return parse_config(data, str(path), root)


def missing_environment(config: NotifyConfig) -> list[str]:
    """``channel: VARIABLE`` for each environment variable a channel needs that is not set (to warn before a
    run; at sending time the channel fails with that reason)."""
    out = []
    for name, channel in config.channels.items():
        for var in _env_vars(channel):
            if not os.environ.get(var):
                out.append(f"{name}: {var}")
    return out


def _env_vars(channel: EmailChannel | WebhookChannel) -> list[str]:
    if isinstance(channel, EmailChannel):
        return [channel.smtp.password_env] if channel.smtp.password_env else []
    return [v for v in (channel.url_env, channel.secret_env, *channel.headers_env.values()) if v]


# ----------------------------------------------------------------------------------------------- the digest


@dataclass
class Digest:
    """What a run's notifications say (built by `build_digest`; the texts are rendered per channel)."""

    run_dir: Path
    run_id: str
    status: str
    language: str
    periods: list[str]
    regions: list[str]
    tasks: dict[str, int]
    failed_tasks: list[dict[str, Any]]
    failed_exports: dict[str, str]
    index: str
    reports: dict[str, str]
    alerts: list[dict[str, Any]]
    previous_run_id: str | None = None
    changes: list[dict[str, Any]] = field(default_factory=list)
    changes_total: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def has_failures(self) -> bool:
        """Tasks or exports failed, or the run did not finish."""
        return bool(self.tasks.get("failed") or self.failed_exports or self.status in ("failed", "interrupted"))

    def alerts_at(self, min_severity: str) -> list[dict[str, Any]]:
        """The alerts at or above `min_severity`, act first."""
        floor = _RANK.get(min_severity, 1)
        return [a for a in self.alerts if _rank(a) >= floor]


def _rank(alert: Mapping[str, Any]) -> int:
    return _RANK.get(str(alert.get("severity", "watch")), 1)


def _link(base_url: str | None, run_dir: Path, relative: str) -> str:
    if base_url:
        return f"{base_url.rstrip('/')}/{urllib.parse.quote(run_dir.name)}/{urllib.parse.quote(relative)}"
    return str((run_dir / relative).absolute())


def _read_alerts(run_dir: Path, regions: list[str]) -> tuple[list[dict[str, Any]], list[tuple[str, str]], str | None]:
    """Every region's alerts (act first, then in file order), the files that could not be read (region, error),
    and the language they were written in."""
    found: list[dict[str, Any]] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    language = None
    files = [run_dir / safe_component(r) / "alerts.json" for r in regions]
    files += [p for p in sorted(run_dir.glob("*/alerts.json")) if p not in files]
    for order, path in enumerate(files):
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            items = data["alerts"] if isinstance(data, dict) else data
            if not isinstance(items, list):
                raise ValueError("`alerts` is not a list")
        except (OSError, ValueError, KeyError, TypeError) as err:
            problems.append((path.parent.name, f"{type(err).__name__}: {str(err)[:200]}"))
            continue
        if isinstance(data, dict) and data.get("language") and language is None:
            language = str(data["language"])
        for index, alert in enumerate(items):
            if not isinstance(alert, dict):
                continue
            key = str(alert.get("id") or f"{path.parent.name}:{index}")
            if key in seen:
                continue
            seen.add(key)
            found.append({"region": path.parent.name, **alert, "_order": (order, index)})
    found.sort(key=lambda a: (-_rank(a), a["_order"]))
    for alert in found:
        del alert["_order"]
    return found, problems, language


def _run_language(manifest: Mapping[str, Any], fallback: str | None) -> str:
    params = manifest.get("parameters") or {}
    for value in (params.get("language"), (params.get("base") or {}).get("language"), fallback):
        if value:
            with contextlib.suppress(ParameterError):
                return i18n.check_language(str(value))
    return i18n.DEFAULT_LANGUAGE


def find_previous_run(run_dir: Path) -> Path | None:
    """The run finished last before `run_dir` in the same outputs folder (by the time its manifest.json was
    written; run ids need not sort), or None."""
    run_dir = Path(run_dir)
    try:
        own = (run_dir / "manifest.json").stat().st_mtime_ns
    except OSError:
        return None
    candidates = []
    with contextlib.suppress(OSError):
        for other in run_dir.parent.iterdir():
            if other.name == run_dir.name or other.is_symlink() or other.name.startswith("."):
                continue
            with contextlib.suppress(OSError):
                stamp = (other / "manifest.json").stat().st_mtime_ns
                if stamp <= own:
                    candidates.append((stamp, other.name, other))
    return max(candidates)[2] if candidates else None


def _changes(digest: Digest, previous: Path, limit: int) -> None:
    from crmlens.run.diff import diff_runs

    try:
        diff = diff_runs(previous, digest.run_dir)
    except Exception as err:  # a damaged previous run must not stop the digest
        digest.notes.append(_("The run could not be compared with the previous run ({error}).",
                              error=str(err)[:300]))
        return
    digest.previous_run_id = diff.run_id_a

    def weight(change: Any) -> tuple[int, float]:
        rel = change.rel_change
        if rel is not None and math.isfinite(rel):
            return (0, -abs(rel))
        delta = change.delta
        return (1, -abs(delta) if delta is not None and math.isfinite(delta) else 0.0)

    ranked, seen = [], set()
    for change in sorted(diff.kpis_changed, key=lambda c: (weight(c), c.key)):
        same = (change.region, change.period, change.kpi, repr(change.old), repr(change.new))
        if same not in seen:  # a KPI recorded alike by several notebooks is one change
            seen.add(same)
            ranked.append(change)
    digest.changes_total = len(ranked)
    digest.changes = [c.to_dict() for c in ranked[:limit]]


def build_digest(run_dir: Path, config: NotifyConfig | None = None, previous_run: Path | None = None) -> Digest:
    """The digest of the finished run in `run_dir` (raises `RunError` when its manifest cannot be read)."""
    from crmlens.run.diff import read_manifest

    config = config or NotifyConfig.model_construct(channels={})
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    params = manifest.get("parameters") or {}
    tasks = manifest.get("tasks") or []
    regions = [str(r) for r in params.get("regions") or []] or sorted({str(t.get("region")) for t in tasks
                                                                       if t.get("region")})
    periods = [str(p) for p in params.get("periods") or []] or sorted({str(t.get("period")) for t in tasks
                                                                       if t.get("period")})
    summary = manifest.get("summary") or {}
    counts = {key: int(summary.get(key) or 0) for key in ("tasks", "ok", "failed", "reused", "not_run")}
    if not summary:
        counts.update(tasks=len(tasks), **{s: sum(t.get("status") == s for t in tasks) for s in ("ok", "failed",
                                                                                                  "reused")})
    failed_tasks = [{"id": t.get("id"), "region": t.get("region"), "period": t.get("period"),
                     "notebook": t.get("notebook"), "error": _error_text(t.get("error"))}
                    for t in tasks if t.get("status") == "failed"]
    failed_exports = {str(r): _error_text(e.get("error")) for r, e in (manifest.get("exports") or {}).items()
                      if isinstance(e, dict) and e.get("status") not in (None, "ok")}
    alerts, problems, alerts_language = _read_alerts(run_dir, regions)
    language = config.language or _run_language(manifest, alerts_language)
    with i18n.language(language):
        notes = [_("The alerts of {region} could not be read ({error}).", region=region, error=error)
                 for region, error in problems]
        reports = {r: _link(config.base_url, run_dir, f"{safe_component(r)}/report.html") for r in regions
                   if (run_dir / safe_component(r) / "report.html").is_file()}
        digest = Digest(run_dir=run_dir, run_id=str(manifest.get("run_id") or run_dir.name),
                        status=str(manifest.get("status") or "ok"), language=language, periods=periods,
                        regions=regions, tasks=counts, failed_tasks=failed_tasks, failed_exports=failed_exports,
                        index=_link(config.base_url, run_dir, "index.html"), reports=reports, alerts=alerts,
                        notes=notes)
        if previous_run is None and config.compare_with_previous:
            previous_run = find_previous_run(run_dir)
        if previous_run is not None and config.max_changes:
            _changes(digest, Path(previous_run), config.max_changes)
    return digest


def _error_text(error: Any) -> str:
    if isinstance(error, dict):  # a task's error record (crmlens.run.execute): ename, evalue, cell
        name = error.get("ename")
        value = str(error.get("evalue") or error.get("message") or "").strip()
        value = value.splitlines()[0] if value else ""
        cell = f" (cell {error['cell']})" if error.get("cell") is not None else ""
        error = (f"{name}: {value}" if name and value else str(name or value)) + cell
    text = " ".join(str(error or "").split())
    return text[:200] + ("…" if len(text) > 200 else "")


# ------------------------------------------------------------------------------------------------ rendering


@dataclass
class ChannelView:
    """The digest as one channel shows it (`channel_view`): its alerts (all, and those listed) and the facts."""

    digest: Digest
    alerts: list[dict[str, Any]]
    shown: list[dict[str, Any]]
    title: str
    facts: list[tuple[str, str]]
    attachments: list[str] = field(default_factory=list)

    @property
    def more(self) -> int:
        return len(self.alerts) - len(self.shown)


def channel_view(digest: Digest, channel: EmailChannel | WebhookChannel) -> ChannelView:
    """The digest as `channel` shows it: its alerts (at or above its min_severity, capped) and the run's facts,
    in the language in use (wrap the call in ``i18n.language(digest.language)``)."""
    alerts = digest.alerts_at(channel.min_severity)
    act = sum(_rank(a) >= 2 for a in alerts)
    title = _("CRM Lens run {run_id} · {periods}", run_id=digest.run_id, periods=", ".join(digest.periods) or "–")
    tasks = digest.tasks
    task_text = _("{ok} ok, {failed} failed", ok=tasks["ok"], failed=tasks["failed"])
    if tasks.get("reused"):
        task_text += ", " + _("{n} reused", n=tasks["reused"])
    if tasks.get("not_run"):
        task_text += ", " + _("{n} not run", n=tasks["not_run"])
    facts = [(_("Status"), _(_STATUS_LABELS[digest.status]) if digest.status in _STATUS_LABELS else digest.status),
             (_("Periods"), ", ".join(digest.periods) or "–"),
             (_("Regions"), ", ".join(digest.regions) or "–"),
             (_("Tasks"), task_text),
             (_("Alerts"), _("{n} ({act} act, {watch} watch)", n=len(alerts), act=act, watch=len(alerts) - act)),
             (_("Index"), digest.index)]
    return ChannelView(digest, alerts, alerts[:channel.max_alerts], title, facts)


def _value(alert: Mapping[str, Any]) -> str:
    return str(alert.get("text") or _("{label} in {region}: {value}", label=alert.get("label") or alert.get("kpi"),
                                        region=alert.get("region"), value=alert.get("value")))


def _change_text(change: Mapping[str, Any]) -> str:
    label = change.get("label") or change.get("kpi")
    label = i18n.lookup(str(label)) or str(label)
    old = change.get("old_display") or i18n.format_number(change.get("old"))
    new = change.get("new_display") or i18n.format_number(change.get("new"))
    rel = change.get("rel_change")
    text = f"{change.get('region')} · {change.get('period')} · {label}: {old} → {new}"
    if isinstance(rel, int | float) and math.isfinite(rel):
        text += f" ({i18n.format_number(rel, 'rate', signed=True)})"
    return text


def _sections(view: ChannelView) -> list[tuple[str, list[tuple[str, str | None, str | None]]]]:
    """(heading, [(text, link or None, severity or None)]) of the digest's body, in order."""
    d = view.digest
    out: list[tuple[str, list[tuple[str, str | None, str | None]]]] = []
    items: list[tuple[str, str | None, str | None]] = []
    for alert in view.shown:
        text = _value(alert)
        if alert.get("recommendation"):
            text += " — " + str(alert["recommendation"])
        items.append((text, None, "act" if _rank(alert) >= 2 else "watch"))
    if view.more:
        items.append((_("… and {n} more", n=view.more), None, None))
    if not items:
        items.append((_("No alerts."), None, None))
    out.append((_("Alerts"), items))
    if d.previous_run_id is not None:
        heading = _("Key changes since run {run_id}", run_id=d.previous_run_id)
        changes: list[tuple[str, str | None, str | None]] = [(_change_text(c), None, None) for c in d.changes]
        if d.changes_total > len(d.changes):
            changes.append((_("… and {n} more", n=d.changes_total - len(d.changes)), None, None))
        if not changes:
            changes.append((_("No KPI changed."), None, None))
        out.append((heading, changes))
    if d.failed_tasks or d.failed_exports:
        failures: list[tuple[str, str | None, str | None]] = [
            (f"{t['id']}: {t['error']}" if t["error"] else str(t["id"]), None, None) for t in d.failed_tasks[:10]]
        if len(d.failed_tasks) > 10:
            failures.append((_("… and {n} more", n=len(d.failed_tasks) - 10), None, None))
        failures += [(_("exports of {region}: {error}", region=r, error=e), None, None)
                     for r, e in d.failed_exports.items()]
        out.append((_("Failures"), failures))
    links = [(_("Index of the run"), d.index, None)]
    links += [(_("Report of {region}", region=r), link, None) for r, link in d.reports.items()]
    out.append((_("Links"), links))
    if view.attachments:
        out.append((_("Attachments"), [(a, None, None) for a in view.attachments]))
    if d.notes:
        out.append((_("Notes"), [(n, None, None) for n in d.notes]))
    return out


def _severity_tag(severity: str | None) -> str:
    return f"[{_(_SEVERITY_LABELS[severity])}] " if severity else ""


def render_text(view: ChannelView) -> str:
    """Plain text (the e-mail's text part; Teams and generic JSON ``text``)."""
    lines = [view.title, "=" * min(len(view.title), 70), ""]
    lines += [f"{k}: {v}" for k, v in view.facts]
    for heading, items in _sections(view):
        lines += ["", heading]
        for text, link, severity in items:
            lines.append(f"  - {_severity_tag(severity)}{text}" + (f": {link}" if link else ""))
    return "\n".join(lines) + "\n"


def render_html(view: ChannelView) -> str:
    """The e-mail's HTML alternative."""
    e = html.escape
    colours = {"act": "#b42318", "watch": "#b54708"}
    parts = [f'<html lang="{i18n.html_lang(view.digest.language)}"><body style="font-family: sans-serif">',
             f"<h2>{e(view.title)}</h2>", "<table>"]
    parts += [f"<tr><th align='left'>{e(k)}</th><td>{_html_link(v) if k == _('Index') else e(v)}</td></tr>"
              for k, v in view.facts]
    parts.append("</table>")
    for heading, items in _sections(view):
        parts += [f"<h3>{e(heading)}</h3>", "<ul>"]
        for text, link, severity in items:
            tag = (f'<b style="color: {colours[severity]}">{e(_(_SEVERITY_LABELS[severity]))}</b> '
                   if severity else "")
            body = f'<a href="{e(_href(link))}">{e(text)}</a>' if link else e(text)
            parts.append(f"<li>{tag}{body}</li>")
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _href(link: str) -> str:
    return link if re.match(r"^[a-z]+://", link) else Path(link).as_uri()


def _html_link(link: str) -> str:
    return f'<a href="{html.escape(_href(link))}">{html.escape(link)}</a>'


def render_markdown(view: ChannelView, flavour: str = "markdown") -> str:
    """Markdown for 企业微信 (``wecom``: coloured severities), 钉钉 (``dingtalk``), Teams, or Slack (``slack``:
    its mrkdwn)."""
    slack = flavour == "slack"

    def esc(text: str) -> str:
        if slack:
            return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return text

    def link(text: str, url: str) -> str:
        if not re.match(r"^[a-z]+://", url):
            return f"{esc(text)}: `{esc(url)}`"
        return f"<{url}|{esc(text)}>" if slack else f"[{text}]({url})"

    def tag(severity: str | None) -> str:
        if not severity:
            return ""
        label = _(_SEVERITY_LABELS[severity])
        if flavour == "wecom":
            return f'<font color="{"warning" if severity == "act" else "comment"}">{label}</font> '
        return f"*{label}* " if slack else f"**{label}** "

    bold = (lambda s: f"*{s}*") if slack else (lambda s: f"**{s}**")
    lines = [bold(esc(view.title)) if slack else f"### {view.title}", ""]
    for key, value in view.facts:
        shown = link(value, value) if key == _("Index") and re.match(r"^[a-z]+://", value) else esc(value)
        lines.append(f"{bold(esc(key))}: {shown}" if slack else f"- {bold(key)}: {shown}")
    for heading, items in _sections(view):
        lines += ["", bold(esc(heading))]
        for text, url, severity in items:
            lines.append(f"- {tag(severity)}{link(text, url) if url else esc(text)}")
    return "\n".join(lines)


def _truncate(text: str, limit: int, *, as_bytes: bool) -> str:
    size = len(text.encode("utf-8")) if as_bytes else len(text)
    if size <= limit:
        return text
    marker = "\n…"
    budget = limit - len(marker.encode("utf-8") if as_bytes else marker)
    cut = text.encode("utf-8")[:budget].decode("utf-8", "ignore") if as_bytes else text[:budget]
    return cut.rsplit("\n", 1)[0] + marker


def structured(view: ChannelView) -> dict[str, Any]:
    """The digest as JSON (the ``json`` webhook format): every alert at or above the channel's severity."""
    d = view.digest
    return {
        "source": "crmlens", "type": "run_digest", "run_id": d.run_id, "status": d.status, "language": d.language,
        "periods": d.periods, "regions": d.regions, "tasks": d.tasks, "failed_tasks": d.failed_tasks,
        "failed_exports": d.failed_exports, "index": d.index, "reports": d.reports,
        "alerts": view.alerts, "alert_counts": {s: sum(_rank(a) == _RANK[s] for a in view.alerts)
                                                for s in SEVERITIES},
        "changes": {"previous_run_id": d.previous_run_id, "total": d.changes_total, "top": d.changes},
        "notes": d.notes, "title": view.title, "text": render_text(view),
    }


def webhook_payload(view: ChannelView, format: str, title: str | None = None) -> dict[str, Any]:
    """The JSON body of a webhook in `format` (one of `FORMATS`)."""
    if format == "json":
        return structured(view)
    if format == "slack":
        return {"text": _truncate(render_markdown(view, "slack"), _LIMITS["slack"], as_bytes=False)}
    if format == "teams":
        act = any(_rank(a) >= 2 for a in view.alerts)
        lines = render_markdown(view, "teams").split("\n")[1:]  # the title is the card's
        text = "\n\n".join(line for line in lines if line.strip())
        return {"@type": "MessageCard", "@context": "https://schema.org/extensions", "summary": view.title,
                "themeColor": "B42318" if act else ("B54708" if view.alerts else "2E7D32"), "title": view.title,
                "text": _truncate(text, _LIMITS["teams"], as_bytes=False)}
    if format == "wecom":
        return {"msgtype": "markdown",
                "markdown": {"content": _truncate(render_markdown(view, "wecom"), _LIMITS["wecom"], as_bytes=True)}}
    if format == "dingtalk":
        return {"msgtype": "markdown",
                "markdown": {"title": title or view.title,
                             "text": _truncate(render_markdown(view, "dingtalk"), _LIMITS["dingtalk"],
                                               as_bytes=True)}}
    raise ParameterError(f"webhook format {format!r} is not known; accepted: {', '.join(FORMATS)}")


# -------------------------------------------------------------------------------------------------- sending


class _Failure(Exception):
    """A delivery problem, already worded for the record (no secret in it)."""


def _secrets_of(channel: EmailChannel | WebhookChannel) -> list[str]:
    values = []
    for var in _env_vars(channel):
        value = os.environ.get(var)
        if value:
            values.append(value)
            parts = urllib.parse.urlsplit(value)
            values += [p for p in (parts.path, parts.query, parts.path.rsplit("/", 1)[-1]) if len(p) >= 6]
            values += [v for _k, v in urllib.parse.parse_qsl(parts.query) if len(v) >= 6]
    if isinstance(channel, WebhookChannel) and channel.url:
        parts = urllib.parse.urlsplit(channel.url)
        values += [p for p in (parts.path, parts.query) if len(p) >= 6]
        values += [v for _k, v in urllib.parse.parse_qsl(parts.query) if len(v) >= 6]
    return sorted(set(values), key=len, reverse=True)


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _env(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        raise _Failure(f"environment variable {var} is not set")
    return value


def _attachments(digest: Digest, channel: EmailChannel) -> tuple[list[tuple[str, bytes]], list[str]]:
    """The files to attach (name, content) and one line per file for the digest (attached, missing, too big)."""
    files: list[tuple[str, bytes]] = []
    lines: list[str] = []
    budget = int(channel.max_attachments_mb * 1024 * 1024)
    names: list[str] = []
    for pattern in channel.attach:
        expanded = ([pattern.replace("{region}", safe_component(r)) for r in digest.regions] if "{region}" in pattern
                    else [pattern])
        names += [n for n in expanded if n not in names]
    root = digest.run_dir.resolve()
    for name in names:
        path = (digest.run_dir / name).resolve()
        if root not in path.parents or not path.is_file():
            lines.append(_("{file}: not found, not attached", file=name))
            continue
        size = path.stat().st_size
        if size > budget:
            lines.append(_("{file}: {size} MB, over the {limit} MB limit, not attached", file=name,
                           size=f"{size / 1024 / 1024:.1f}", limit=f"{channel.max_attachments_mb:g}"))
            continue
        budget -= size
        files.append((name.replace("/", "_"), path.read_bytes()))
        lines.append(_("{file} ({size} KB)", file=name, size=f"{math.ceil(size / 1024):,d}"))
    return files, lines


def _subject(view: ChannelView, channel: EmailChannel) -> str:
    d = view.digest
    values = {"run_id": d.run_id, "periods": ", ".join(d.periods), "regions": ", ".join(d.regions),
              "alerts": len(view.alerts), "status": d.status}
    if channel.subject:
        return channel.subject.format(**values)
    act = sum(_rank(a) >= 2 for a in view.alerts)
    if d.has_failures:
        prefix = _("[CRM Lens] Run {run_id} had failures", run_id=d.run_id)
    else:
        prefix = _("[CRM Lens] Run {run_id}", run_id=d.run_id)
    if view.alerts:
        return prefix + " — " + n_("{n} alert ({act} act)", "{n} alerts ({act} act)", len(view.alerts), act=act) \
            + f" · {values['periods']}"
    return prefix + f" · {values['periods']}"


def _send_email(view: ChannelView, channel: EmailChannel, timeout: float) -> dict[str, Any]:
    smtp = channel.smtp
    password = _env(smtp.password_env) if smtp.password_env else None
    files, view.attachments = _attachments(view.digest, channel)
    msg = EmailMessage()
    msg["Subject"] = _subject(view, channel)
    msg["From"] = channel.sender
    msg["To"] = ", ".join(channel.to)
    if channel.cc:
        msg["Cc"] = ", ".join(channel.cc)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain="crmlens")
    msg.set_content(render_text(view))
    msg.add_alternative(render_html(view), subtype="html")
    for name, content in files:
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        maintype, subtype = kind.split("/", 1)
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    context = ssl.create_default_context(cafile=str(smtp.ca_file) if smtp.ca_file else None)
    where = f"{smtp.host}:{smtp.effective_port}"
    step = "connect"
    try:
        if smtp.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.effective_port, timeout=timeout,
                                                    context=context, local_hostname=smtp.local_hostname)
        else:
            client = smtplib.SMTP(smtp.host, smtp.effective_port, timeout=timeout,
                                  local_hostname=smtp.local_hostname)
        with client:
            if smtp.security == "starttls":
                step = "starttls"
                client.starttls(context=context)
            if smtp.username:
                step = "login"
                client.login(smtp.username, password or "")
            step = "send"
            refused = client.send_message(msg, to_addrs=[*channel.to, *channel.cc, *channel.bcc])
    except smtplib.SMTPNotSupportedError as err:
        what = "STARTTLS" if step == "starttls" else "login (AUTH)" if step == "login" else "the command"
        raise _Failure(f"SMTP server {where} does not support {what}: {err}") from None
    except smtplib.SMTPAuthenticationError as err:
        raise _Failure(f"SMTP server {where} refused the login of {smtp.username}: {err.smtp_code} "
                       f"{_smtp_text(err.smtp_error)}") from None
    except smtplib.SMTPRecipientsRefused as err:
        raise _Failure(f"SMTP server {where} refused every recipient: "
                       + "; ".join(f"{a} ({c} {_smtp_text(m)})" for a, (c, m) in err.recipients.items())) from None
    except smtplib.SMTPResponseException as err:
        raise _Failure(f"SMTP server {where} refused the message at {step}: {err.smtp_code} "
                       f"{_smtp_text(err.smtp_error)}") from None
    except smtplib.SMTPException as err:
        raise _Failure(f"SMTP {step} with {where} failed: {err}") from None
    except ssl.SSLError as err:
        raise _Failure(f"TLS with SMTP server {where} failed ({step}): {err.reason or err}") from None
    except TimeoutError:
        raise _Failure(f"SMTP server {where} did not answer within {timeout:g} s ({step})") from None
    except OSError as err:
        raise _Failure(f"cannot reach SMTP server {where}: {err.strerror or err}") from None
    extra: dict[str, Any] = {"attachments": [name for name, _content in files]}
    if refused:
        extra["reason"] = "refused recipients: " + ", ".join(sorted(refused))
    return extra


def _smtp_text(value: Any) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return " ".join(text.split())[:200]


def _dingtalk_signed(url: str, secret: str) -> str:
    stamp = str(round(time.time() * 1000))
    digest = hmac.new(secret.encode("utf-8"), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest))
    return f"{url}{'&' if '?' in url else '?'}timestamp={stamp}&sign={sign}"


def _send_webhook(view: ChannelView, channel: WebhookChannel, timeout: float) -> dict[str, Any]:
    url = _env(channel.url_env) if channel.url_env else str(channel.url)
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise _Failure(f"environment variable {channel.url_env} does not hold an http(s) address")
    if channel.secret_env:
        url = _dingtalk_signed(url, _env(channel.secret_env))
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "crmlens-notify",
               **channel.headers, **{name: _env(var) for name, var in channel.headers_env.items()}}
    body = json.dumps(webhook_payload(view, channel.format, channel.title), ensure_ascii=False,
                      default=str).encode("utf-8")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    where = _origin(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = response.read(65536).decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        detail = ""
        with contextlib.suppress(Exception):
            detail = " ".join(err.read(500).decode("utf-8", "replace").split())[:200]
        raise _Failure(f"{where} answered HTTP {err.code} {err.reason}" + (f": {detail}" if detail else "")) from None
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, TimeoutError | socket.timeout):
            raise _Failure(f"{where} did not answer within {timeout:g} s") from None
        text = getattr(reason, "strerror", None) or str(reason)
        raise _Failure(f"cannot reach {where}: {text}") from None
    except TimeoutError:
        raise _Failure(f"{where} did not answer within {timeout:g} s") from None
    except OSError as err:
        raise _Failure(f"cannot reach {where}: {err.strerror or err}") from None
    if channel.format in ("wecom", "dingtalk"):  # these answer HTTP 200 with an error code
        with contextlib.suppress(ValueError):
            data = json.loads(answer)
            if isinstance(data, dict) and data.get("errcode") not in (None, 0):
                raise _Failure(f"{where} refused the message: errcode {data.get('errcode')} "
                               f"{str(data.get('errmsg', ''))[:200]}")
    return {}


def _record(name: str, channel: EmailChannel | WebhookChannel, status: str, reason: str | None, alerts: int,
            t0: float, **extra: Any) -> dict[str, Any]:
    record = {"channel": name, "kind": channel.kind, "status": status, "reason": reason, "alerts": alerts,
              "duration_s": round(time.perf_counter() - t0, 3)}
    if isinstance(channel, WebhookChannel):
        record["format"] = channel.format
    record.update(extra)
    return record


def _decide(digest: Digest, channel: EmailChannel | WebhookChannel, alerts: int) -> str | None:
    """Why the channel does not send this time (None: it sends)."""
    if not channel.enabled:
        return "disabled (enabled: false)"
    if channel.on == "alerts" and not alerts:
        return f"no alerts at or above {channel.min_severity}"
    if channel.on == "failures" and not digest.has_failures:
        return "no task or export failed"
    return None


def send_run_notifications(run_dir: Path, config_path: Path | None = None, *,
                           config: NotifyConfig | Mapping[str, Any] | None = None, previous_run: Path | None = None,
                           timeout: float = 10.0) -> list[dict[str, Any]]:
    """Send the run's notifications to every channel of the configuration; one delivery record per channel.

    Records: ``{"channel", "kind", "status": "sent"|"skipped"|"failed", "reason", "alerts", "duration_s"}`` (+
    ``format`` for webhooks, ``attachments`` for e-mail). Delivery problems (and a run folder that cannot be
    read) are failed records, never exceptions, and their reasons hold no secret; only a bad configuration
    raises `ParameterError`. `previous_run`: the run to compare the KPIs with (default: the latest earlier run
    beside this one, unless ``compare_with_previous: false``). `timeout`: seconds per connection."""
    if config is None:
        if config_path is None:
            raise ParameterError("send_run_notifications: give config_path (a notification YAML file) or config")
        config = load_config(config_path)
    elif not isinstance(config, NotifyConfig):
        config = parse_config(config, str(config_path or "<notification settings>"))
    run_dir = Path(run_dir)
    records: list[dict[str, Any]] = []
    t_build = time.perf_counter()
    try:
        digest: Digest | None = build_digest(run_dir, config, previous_run)
        problem = None
    except Exception as err:  # the run's notifications must never fail the run
        digest, problem = None, f"cannot read the run {run_dir}: {str(err)[:300]}"
    for name, channel in config.channels.items():
        t0 = time.perf_counter() if digest is not None else t_build
        secrets = _secrets_of(channel)
        if digest is None:
            records.append(_record(name, channel, "failed", _scrub(str(problem), secrets), 0, t0))
            log.warning("notification %s failed: %s", name, records[-1]["reason"])
            continue
        alerts = len(digest.alerts_at(channel.min_severity))
        skip = _decide(digest, channel, alerts)
        if skip:
            records.append(_record(name, channel, "skipped", skip, alerts, t0))
            continue
        try:
            with i18n.language(digest.language):
                view = channel_view(digest, channel)
                extra = (_send_email(view, channel, timeout) if isinstance(channel, EmailChannel)
                         else _send_webhook(view, channel, timeout))
            reason = extra.pop("reason", None)
            records.append(_record(name, channel, "sent", reason, alerts, t0, **extra))
            log.info("notification %s sent (%s alerts)", name, alerts)
        except _Failure as err:
            records.append(_record(name, channel, "failed", _scrub(str(err), secrets), alerts, t0))
        except Exception as err:  # a bug or an unforeseen error: reported, not raised
            text = f"{type(err).__name__}: {str(err)[:300]}"
            records.append(_record(name, channel, "failed", _scrub(text, secrets), alerts, t0))
        if records[-1]["status"] == "failed":
            log.warning("notification %s failed: %s", name, records[-1]["reason"])
    return records
