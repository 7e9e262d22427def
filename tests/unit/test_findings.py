"""Findings as records, ranked into an executive summary; analyses that take the slice."""

from __future__ import annotations

import pandas as pd
import pytest

from crmlens import findings
from crmlens.analysis import on_slice
from crmlens.findings import Finding, finding


def test_no_text_is_no_finding_and_a_bad_severity_is_refused():
    assert finding("") is None and finding(None) is None
    with pytest.raises(ValueError, match="severity"):
        Finding(text="x", severity="urgent")


def test_a_record_round_trips_and_weight_is_clipped():
    f = finding("East converts badly", "act", "Coach East's SDRs", kpi="sql_to_opportunity_rate", weight=3)
    assert f.weight == 1.0
    back = Finding.from_record(f.record())
    assert back == f
    assert "**Recommendation:** Coach East's SDRs" in f.markdown()


def test_ranking_puts_act_before_watch_before_good_then_weight_and_drops_repeats():
    items = [finding("context", "info", weight=1), finding("good", "good", weight=0.9),
             finding("watch small", "watch", weight=0.1), finding("act", "act", weight=0.2),
             finding("watch big", "watch", weight=0.8), finding("act", "act", weight=0.2)]
    assert [f.text for f in findings.rank(items)] == ["act", "watch big", "watch small", "good", "context"]
    assert [f.text for f in findings.summary(items, limit=3)] == ["act", "watch big", "watch small"]


def test_context_comes_into_the_summary_only_when_nothing_is_pressing():
    only = [finding("a", "info", weight=0.2), finding("b", "info", weight=0.5)]
    assert [f.text for f in findings.summary(only)] == ["b", "a"]


def test_a_plain_sentence_is_context():
    assert findings.as_finding("Some sentence.").severity == "info"
    assert findings.as_finding(None) is None


class FakeSlice:
    """What `on_slice` needs of a slice: tables, params, missing(), info and periods for the context."""

    def __init__(self, tables):
        from types import SimpleNamespace

        from crmlens.periods import parse_period
        from crmlens.schema import Vocabulary

        self.tables = tables
        self.comparison = {"leads": "previous"}
        self.params = SimpleNamespace(region="East", forgotten_days=60, churn_days=455)
        self.period = self.comparison_period = parse_period("2026-Q3")
        self.as_of = pd.Timestamp("2026-10-01")
        self.info = SimpleNamespace(source="demo", vocabulary=Vocabulary())

    def missing(self, *names):
        return [n for n in names if n not in self.tables]


@on_slice("leads")
def _conversion(leads, opportunities, by, ctx, *, min_n=1, products=None):
    return leads, opportunities, by, ctx, min_n, products


def test_on_slice_fills_tables_and_context_by_name_and_takes_the_rest_from_the_call():
    s = FakeSlice({"leads": "L", "opportunities": "O", "products": "P"})
    leads, opps, by, ctx, min_n, products = _conversion(s, "source_channel", min_n=5)
    assert (leads, opps, by, min_n, products) == ("L", "O", "source_channel", 5, "P")
    assert ctx.region == "East" and str(ctx.period_start.date()) == "2026-07-01"
    # called with frames: the plain function
    assert _conversion("l", "o", "x", None) == ("l", "o", "x", None, 1, None)


def test_on_slice_without_a_needed_table_shows_the_note_and_skips(monkeypatch):
    shown = []
    monkeypatch.setattr("crmlens.notebook.md", lambda text, finding=False: shown.append(text))
    assert _conversion(FakeSlice({"opportunities": "O"}), "source_channel") is None
    assert "needs table `leads`" in shown[0] and "demo" in shown[0]


# ------------------------------------------------------------------------------------- in a second process

def test_in_background_gives_what_the_call_gives_from_a_second_process(monkeypatch):
    from crmlens import analysis

    monkeypatch.setattr(analysis, "spare_cores", lambda: 1)
    s = FakeSlice({"leads": "L", "opportunities": "O", "products": "P"})
    job = analysis.in_background(_conversion, s, "source_channel", min_n=5)
    assert job.in_second_process
    leads, opps, by, ctx, min_n, products = job.result()
    assert (leads, opps, by, min_n, products) == ("L", "O", "source_channel", 5, "P")
    assert ctx == _conversion(s, "source_channel")[3]


def test_in_background_stays_in_place_without_a_core_or_a_table(monkeypatch):
    from crmlens import analysis

    monkeypatch.setenv(analysis.BACKGROUND_ENV, "0")
    assert analysis.spare_cores() == 0
    s = FakeSlice({"leads": "L", "opportunities": "O"})
    job = analysis.in_background(_conversion, s, "x")
    assert not job.in_second_process and job.result()[:3] == ("L", "O", "x")
    monkeypatch.setattr(analysis, "spare_cores", lambda: 1)
    shown = []
    monkeypatch.setattr("crmlens.notebook.md", lambda text, finding=False: shown.append(text))
    job = analysis.in_background(_conversion, FakeSlice({"opportunities": "O"}), "x")
    assert not job.in_second_process and not shown  # the note is shown where the result is used
    assert job.result() is None and "needs table `leads`" in shown[0]


_WARMED: list[str] = []


def _warm() -> None:
    _WARMED.append("warm")


@on_slice("leads")
def _where(leads):
    import os

    return os.getpid(), list(_WARMED), leads


def test_jobs_started_while_one_is_pending_share_its_second_process_after_its_warm_up(monkeypatch):
    import os

    from crmlens import analysis

    monkeypatch.setattr(analysis, "spare_cores", lambda: 1)
    assert analysis.warm_up(_warm)  # imports and first compiles, started before the data is open
    monkeypatch.setattr(analysis, "spare_cores", lambda: 0)  # the second process now takes the free core
    s = FakeSlice({"leads": "L"})
    first, second = analysis.in_background(_where, s), analysis.in_background(_where, s)
    assert first.in_second_process and second.in_second_process  # no further core asked for
    (pid1, warmed1, leads), (pid2, warmed2, _) = first.result(), second.result()
    assert pid1 == pid2 != os.getpid() and leads == "L"
    assert warmed1 == warmed2 == ["warm"] and _WARMED == []  # the warm-up ran there, before the jobs
    assert analysis._SECOND["pool"] is None  # stopped with its last job
    job = analysis.in_background(_where, s)  # no core and no process open: in place
    assert not job.in_second_process and job.result()[0] == os.getpid()


def test_a_warm_up_no_job_follows_stops_its_process_and_none_starts_without_a_core(monkeypatch):
    import time

    from crmlens import analysis

    monkeypatch.setattr(analysis, "spare_cores", lambda: 0)
    assert not analysis.warm_up(_warm) and analysis._SECOND["pool"] is None
    monkeypatch.setattr(analysis, "spare_cores", lambda: 1)
    assert analysis.warm_up(_warm)
    pool = analysis._SECOND["pool"]
    for _ in range(200):
        if analysis._SECOND["pool"] is None:
            break
        time.sleep(0.05)
    assert analysis._SECOND["pool"] is None and pool._shutdown_thread


def test_a_data_problem_leads_the_summary_but_good_data_news_does_not():
    items = [finding("act big", "act", weight=1.0), finding("rows rejected", "watch", weight=0.1, lead=True),
             finding("all accepted", "good", weight=1.0, lead=True), finding("watch", "watch", weight=0.5)]
    assert [f.text for f in findings.rank(items)] == ["rows rejected", "act big", "watch", "all accepted"]
    back = Finding.from_record(items[1].record())
    assert findings.leads(back)  # the mark survives the notebook record
