"""Findings as records: what a notebook concludes, as data the run can rank into an executive summary.

A describe function (``funnel.describe_bottleneck(result)``) returns a `Finding` — or None when the data
supports no sentence. The notebook shows it (``nb.say``) as Markdown and records it in the executed notebook
(`FINDING_MIMETYPE`) the way `record_kpis` records KPIs; the run reads the records back, adds where each
was found (notebook, section, anchor in the report) and ranks them (`rank`): act before watch before good
news before context, then by weight (how far from normal or from target the numbers are, 0..1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from crmlens.i18n import N_

#: MIME type of a finding record in an executed notebook.
FINDING_MIMETYPE = "application/vnd.crmlens.finding+json"

Severity = Literal["act", "watch", "good", "info"]
#: Most urgent first: the order of an executive summary.
SEVERITIES: tuple[str, ...] = ("act", "watch", "good", "info")
SEVERITY_LABELS = {"act": N_("Act"), "watch": N_("Watch"), "good": N_("Good news"), "info": N_("Context")}


@dataclass(frozen=True)
class Finding:
    """One finding: its text (Markdown, in the language in use), how urgent it is, what to do about it."""

    text: str
    severity: Severity = "info"
    recommendation: str = ""
    kpi: str = ""  # the KPI it is about (a name of the KPI registry), if any
    weight: float = 0.0  # 0..1: how strongly the numbers say it (ranking within a severity)
    # filled by the run when it reads the executed notebook
    notebook: str = ""
    section: str = ""
    anchor: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"finding severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")

    def markdown(self) -> str:
        """The finding as shown in a notebook: its text, then the recommendation."""
        from crmlens.i18n import _

        if not self.recommendation:
            return self.text
        return f"{self.text}\n\n**{_('Recommendation')}:** {self.recommendation}"

    def record(self) -> dict[str, Any]:
        """The JSON record kept in the executed notebook."""
        out = asdict(self)
        out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Finding:
        """The finding of a record (unknown keys ignored, a bad severity read as info)."""
        known = {k: record[k] for k in cls.__dataclass_fields__ if k in record}
        if known.get("severity") not in SEVERITIES:
            known["severity"] = "info"
        known["weight"] = float(known.get("weight") or 0.0)
        return cls(**known)

    def at(self, **where: str) -> Finding:
        """This finding with where it was found (notebook, section, anchor)."""
        return replace(self, **where)


def finding(text: str | None, severity: Severity = "info", recommendation: str = "", *, kpi: str = "",
            weight: float = 0.0, **extra: Any) -> Finding | None:
    """A `Finding`, or None when `text` is empty (nothing the data supports)."""
    if not text:
        return None
    return Finding(text=text, severity=severity, recommendation=recommendation or "", kpi=kpi,
                   weight=max(0.0, min(1.0, float(weight))), extra=extra)


def as_finding(value: Finding | str | None) -> Finding | None:
    """A describe function's result as a Finding (a plain sentence is context)."""
    if value is None or isinstance(value, Finding):
        return value
    return finding(str(value))


def leads(f: Finding) -> bool:
    """True for a finding that goes before every other of its report: a problem of the data itself (made with
    ``lead=True``, e.g. the data quality notebook's unusable tables or rejected rows), when it asks to act or
    watch — the numbers of every other finding depend on it."""
    return bool(f.extra.get("lead")) and f.severity in ("act", "watch")


def rank(findings: Iterable[Finding]) -> list[Finding]:
    """Most urgent first (`SEVERITIES`), then the heaviest; findings with the same text are kept once. Findings
    that `leads` come first of all."""
    seen: set[str] = set()
    unique = []
    for f in findings:
        if f.text in seen:
            continue
        seen.add(f.text)
        unique.append(f)
    return sorted(unique, key=lambda f: (not leads(f), SEVERITIES.index(f.severity), -f.weight))


def summary(findings: Iterable[Finding], limit: int = 6) -> list[Finding]:
    """The executive summary: the `limit` most important findings (`rank`). Context-only findings come in only
    when there is nothing more pressing."""
    ranked = rank(findings)
    pressing = [f for f in ranked if f.severity != "info"]
    return (pressing or ranked)[:limit]
