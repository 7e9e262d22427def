"""Alerts: the thresholds file (errors naming the line), threshold breaches, out-of-sample anomalies with their
expected range, the cross-region report, and the demo's planted sudden drop found by both with few false alarms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmlens import alerts as al
from crmlens import data, params
from crmlens.errors import ParameterError
from crmlens.truths import SUDDEN_DROP


def write(tmp_path, text):
    path = tmp_path / "alerts.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_alerts_file_is_valid():
    config = al.load_alerts()
    assert any(r.kpi == "leads_created" and r.drop for r in config.thresholds)


def test_errors_name_the_file_the_line_and_what_is_accepted(tmp_path):
    path = write(tmp_path, "thresholds:\n  - kpi: win_rate\n    below: 0.2\n  - kpi: win_rat\n    below: 0.3\n"
                           "  - kpi: csat\n    bellow: 3\n  - kpi: csat\n")
    with pytest.raises(ParameterError) as err:
        al.load_alerts(path)
    text = str(err.value)
    assert str(path) in text
    assert "line 4: thresholds.1.kpi: unknown KPI 'win_rat'" in text and "win_rate" in text
    assert "line 7: thresholds.2.bellow: unknown key; accepted: kpi, region, below, above, drop" in text
    assert "line 8: thresholds.3: a rule needs at least one of below, above, drop, rise" in text


def test_a_missing_default_file_means_no_thresholds_but_a_missing_named_file_is_an_error(tmp_path):
    with pytest.raises(ParameterError, match="does not exist"):
        al.load_alerts(tmp_path / "nope.yaml")


def test_a_region_rule_replaces_the_general_one(tmp_path):
    config = al.load_alerts(write(tmp_path, "thresholds:\n  - {kpi: win_rate, below: 0.2}\n"
                                            "  - {kpi: win_rate, below: 0.4, region: North}\n"
                                            "  - {kpi: csat, below: 3}\n"))
    assert [(r.kpi, r.below) for r in config.rules_for("North")] == [("win_rate", 0.4), ("csat", 3)]
    assert [(r.kpi, r.below) for r in config.rules_for("East")] == [("win_rate", 0.2), ("csat", 3)]


def history(kpi, values, start="2024-01-01"):
    months = pd.date_range(start, periods=len(values), freq="MS")
    return pd.DataFrame({"kpi": kpi, "month": months.strftime("%Y-%m"), "start": months, "value": values,
                         "complete": True})


def test_threshold_breaches_by_hand():
    h = pd.concat([history("win_rate", [0.5, 0.3, 0.5]), history("leads_created", [100, 100, 100, 60, 170])])
    rules = [al.AlertRule(kpi="win_rate", below=0.4), al.AlertRule(kpi="leads_created", drop=0.3, rise=0.5,
                                                                    baseline=3, severity="act")]
    hits = al.threshold_hits(h, rules)
    assert hits[["kpi", "month", "rule"]].values.tolist() == [
        ["win_rate", "2024-02", "below"], ["leads_created", "2024-04", "drop"], ["leads_created", "2024-05", "rise"]]
    drop = hits[hits["rule"] == "drop"].iloc[0]
    assert drop["reference"] == pytest.approx(100) and drop["severity"] == "act"
    rise = hits[hits["rule"] == "rise"].iloc[0]
    assert rise["reference"] == pytest.approx((100 + 100 + 60) / 3)
    alerts = al.threshold_alerts(hits, "X", ["2024-04"])
    assert len(alerts) == 1 and "-40%" in alerts[0].text and alerts[0].id == "threshold:leads_created:X:2024-04"


def seasonal_counts(seed, months=48, drop_at=None):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2022-01-01", periods=months, freq="MS")
    level = 400 * (1 + 0.3 * np.isin(idx.month, [10, 11, 12]))
    values = rng.poisson(level).astype(float)
    if drop_at is not None:
        values[drop_at] = round(values[drop_at] * 0.5)
    return idx, values


def test_a_planted_drop_is_an_anomaly_and_q4_seasonality_is_not():
    idx, values = seasonal_counts(1, drop_at=45)
    r = al.expected_range(pd.Series(values), idx, log=True, count=True)
    flagged = np.flatnonzero(r["robust_z"].abs() > al.ANOMALY_Z)
    assert list(flagged) == [45]
    assert r["low"].iloc[45] > values[45] and r["expected"].iloc[45] > 300
    # the first year is not judged: seasonality cannot be told from a surprise without a year behind
    assert r["expected"].iloc[:al.MIN_HISTORY].isna().all() and r["expected"].iloc[al.MIN_HISTORY:].notna().all()


@pytest.mark.parametrize("seed", range(5))
def test_no_false_alarm_on_clean_seasonal_counts(seed):
    idx, values = seasonal_counts(seed)
    r = al.expected_range(pd.Series(values), idx, log=True, count=True)
    assert (r["robust_z"].abs() > al.ANOMALY_Z).sum() == 0


def test_anomaly_alerts_are_bad_moves_only():
    _idx, values = seasonal_counts(1, drop_at=45)
    values[40] *= 2  # a jump up of leads: an anomaly, good news, not an alert
    h = history("leads_created", values, start="2022-01-01")
    found = al.anomalies(h, "X")
    assert set(found.loc[found["is_anomaly"], "month"]) == {"2025-05", "2025-10"}
    alerts = al.anomaly_alerts(found, "X", ["2025-05", "2025-10"])
    assert [a.period for a in alerts] == ["2025-10"]
    assert "below the expected" in alerts[0].text


def test_cross_region_flags_the_region_that_moved_alone():
    t = pd.DataFrame({"kpi": "leads_created", "region": list("ABCDEF"),
                      "value": [105, 98, 102, 50, 101, 99], "comparison_value": [100] * 6})
    out = al.cross_region(t)
    assert out.loc[out["is_outlier"], "region"].tolist() == ["D"]
    assert out.loc[3, "change"] == pytest.approx(-0.5)


@pytest.fixture(scope="module")
def small_slice(demo_folder):
    folder = demo_folder("small", 7)
    return data.open_slice(params.validate_params({"source": str(folder), "region": "all", "period": "2026-Q3"}),
                           data.connect(folder))


@pytest.mark.slow
def test_the_planted_sudden_drop_is_found_with_at_most_one_false_alarm_per_region_year(small_slice):
    from crmlens.metrics import forecasting as fc

    config = al.load_alerts()
    true_pos, false_pos, missed = 0, {}, 0
    for region in small_slice.tables["regions"]["region_id"]:
        h = fc.kpi_history_of(small_slice, config.model_copy(update={"anomalies": config.anomalies.model_copy(
            update={"kpis": ["leads_created"]})}), region=region)
        found = al.anomalies(h, region)
        alarms = set(found.loc[found["is_anomaly"] & found["bad"], "month"])
        hits = set(al.threshold_hits(h, config.rules_for(region))["month"])
        planted = region == SUDDEN_DROP.region_id
        for name, flagged in (("anomaly", alarms), ("threshold", hits)):
            if planted:
                true_pos += SUDDEN_DROP.month in flagged
                missed += SUDDEN_DROP.month not in flagged
            wrong = flagged - ({SUDDEN_DROP.month} if planted else set())
            for month in wrong:
                false_pos.setdefault((region, name, month[:4]), []).append(month)
    assert missed == 0, "the planted drop was not found by both the anomaly and the threshold"
    assert true_pos == 2
    assert all(len(v) <= 1 for v in false_pos.values()), false_pos


def test_the_dashboard_badges_take_the_thresholds_of_the_region(tmp_path):
    from crmlens.dashboard.tiles import check_thresholds

    config = al.load_alerts(write(tmp_path, "thresholds:\n  - {kpi: win_rate, below: 0.2}\n"
                                            "  - {kpi: win_rate, below: 0.4, region: North}\n"
                                            "  - {kpi: leads_created, drop: 0.3, rise: 0.5}\n"
                                            "  - {kpi: csat, above: 4.9, below: 3}\n"))
    north = al.tile_thresholds(config, "North")
    assert north == {"win_rate": {"min": 0.4}, "leads_created": {"drop_pct": 0.3}, "csat": {"min": 3.0, "max": 4.9}}
    assert al.tile_thresholds(config, "East")["win_rate"] == {"min": 0.2}
    assert check_thresholds(north) == north  # what the tiles accept
