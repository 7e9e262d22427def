"""Marketing beyond ROI: channel efficiency, lead-source paths, engagement, campaign funnels, the response curves
behind the budget recommendation and the headline KPIs on hand-computed fixtures; the demo's planted hollow
campaign, assist channel and channel ROI recovered through the slice-level analyses the notebook calls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmlens import data, params
from crmlens.kpis import KpiContext
from crmlens.metrics import marketing as mk
from crmlens.truths import ASSIST_CHANNEL, CHANNEL_ROI, HOLLOW_CAMPAIGN

T = pd.Timestamp
Q1 = KpiContext(period_start=T("2026-01-01"), period_end=T("2026-04-01"), region="all", period_label="2026-Q1",
                as_of=T("2026-04-01"))


def ts(values):
    return pd.to_datetime(pd.Series(values), format="ISO8601").astype("datetime64[us]")


def lead_frames():
    leads = pd.DataFrame({
        "lead_id": ["l1", "l2", "l3", "l4", "l5"],
        "source_channel": ["referral", "referral", "email", "email", "email"],
        "campaign_id": ["c1", "c1", "c2", "c2", "c2"],
        "created_at": ts(["2026-01-05", "2026-01-07", "2026-02-01", "2026-02-03", "2025-12-20"]),
        "mql_at": ts(["2026-01-06", "2026-01-08", None, "2026-02-05", None]),
        "sql_at": ts(["2026-01-10", None, None, "2026-02-08", None]),
        "opportunity_id": ["o1", None, None, "o2", None]}).astype({"opportunity_id": "string"})
    opps = pd.DataFrame({
        "opportunity_id": ["o1", "o2"], "account_id": ["a1", "a2"], "amount": [1000.0, 400.0],
        "is_won": [True, False], "created_at": ts(["2026-01-15", "2026-02-10"]),
        "closed_at": ts(["2026-03-01", "2026-03-05"])})
    return leads, opps


def test_channel_efficiency_by_hand():
    leads, opps = lead_frames()
    roi = pd.DataFrame({"channel": ["referral", "email"], "cost_amount": [500.0, 200.0], "roi": [1.0, -1.0]})
    out = mk.channel_efficiency(leads, opps, ctx=Q1, roi=roi).set_index("channel")
    # the Q1 cohort: l1, l2 (referral), l3, l4 (email); l5 was created in December
    assert list(out.index) == ["email", "referral"]  # two leads each: by name
    ref, email = out.loc["referral"], out.loc["email"]
    assert ref[["n_leads", "mql_rate", "sql_rate", "lead_to_won_rate"]].tolist() == [2, 1.0, 0.5, 0.5]
    assert ref["median_days_to_won"] == 55.0 and ref["won_amount"] == 1000.0  # 5 Jan → 1 Mar
    assert ref["cost_per_lead"] == 250.0 and email["cost_per_lead"] == 100.0
    assert email[["mql_rate", "sql_rate", "lead_to_won_rate"]].tolist() == [0.5, 0.5, 0.0]
    assert pd.isna(email["median_days_to_won"])  # nothing won: no speed, not zero days
    text = mk.describe_channel_efficiency(out.reset_index(), min_leads=2).text
    assert text.startswith("Leads from referral become won deals most often (50.0% of 2 leads), leads from email")


def test_source_paths_by_hand():
    leads, opps = lead_frames()
    out = mk.source_paths(leads, opps, ctx=Q1).set_index("channel")
    assert list(out.index) == ["referral", "email"]  # most bookings first
    ref = out.loc["referral"]
    assert ref[["mql_rate", "mql_to_sql_rate", "sql_to_opportunity_rate", "opportunity_to_won_rate"]].tolist() == [
        1.0, 0.5, 1.0, 1.0]
    # days: lead → MQL 1 and 1; MQL → SQL 4 (l1); SQL → opportunity 5 (10 → 15 Jan); opportunity → won 45
    assert ref[["days_to_mql", "days_to_sql", "days_to_opportunity", "days_to_close"]].tolist() == [1.0, 4.0, 5.0,
                                                                                                      45.0]
    assert ref["bookings_share"] == 1.0 and out.loc["email", "bookings_share"] == 0.0
    assert out.loc["email", "opportunity_to_won_rate"] == 0.0 and out.loc["email", "mql_to_sql_rate"] == 1.0
    window = mk.source_paths(leads, opps, ctx=Q1, created_between=(T("2025-12-01"), T("2026-01-01")))
    assert window["n_leads"].tolist() == [1] and window["mql_rate"].tolist() == [0.0]  # only l5


def test_engagement_by_hand():
    campaigns = pd.DataFrame({"campaign_id": ["c1", "c2", "c3"], "name": ["Mail", "Web", "Ads"],
                              "channel": ["email", "webinar", "paid_search"]})
    events = pd.DataFrame({
        "campaign_id": ["c1"] * 4 + ["c2"] * 3 + ["c3"] * 5,
        "event_type": ["open", "open", "open", "click", "register", "register", "attend"] + ["impression"] * 4
                      + ["click"],
        "lead_id": ["l1", "l2", None, "l1", "l3", "l4", "l3", None, None, None, None, "l5"],
        "occurred_at": ts(["2026-02-01"] * 12)})
    out = mk.campaign_engagement(events, campaigns, ctx=Q1).set_index("channel")
    assert list(out.index) == ["email", "webinar", "paid_search"]  # most engagement first
    assert out.loc["email", ["n_opens", "n_clicks", "n_engagements", "n_engaged_leads"]].tolist() == [3, 1, 4, 2]
    assert out.loc["email", "click_rate"] == pytest.approx(1 / 3)
    assert out.loc["webinar", "attendance_rate"] == 0.5 and pd.isna(out.loc["webinar", "click_rate"])
    assert out.loc["paid_search", "click_rate"] == 0.25  # one click per four ads shown
    per_campaign = mk.campaign_engagement(events, campaigns, by="campaign")
    assert per_campaign.columns[:2].tolist() == ["campaign_id", "name"] and per_campaign["name"].iloc[0] == "Mail"
    trend = mk.engagement_trend(events, freq="month")
    assert trend.set_index("event_type").loc["impression", "n_events"] == 4
    by_channel = mk.engagement_trend(events, freq="month", campaigns=campaigns).set_index("channel")
    assert by_channel["n_engagements"].to_dict() == {"email": 4, "paid_search": 1, "webinar": 3}
    text = mk.describe_engagement(out.reset_index(), min_views=1).text
    assert text.startswith("email draws the most clicks per view (33.3%), paid_search the fewest (25.0%).")
    assert "50.0% of the 2 registrations" in text


def test_campaign_funnel_by_hand_with_ad_figures_for_campaigns_without_events():
    campaigns = pd.DataFrame({"campaign_id": ["c1", "c2", "c3"], "name": ["Events", "Ads", "Quiet"],
                              "channel": ["webinar", "social", "partner"],
                              "started_at": ts(["2026-01-01"] * 3), "ended_at": ts(["2026-03-31"] * 3)})
    leads = pd.DataFrame({
        "lead_id": [f"l{i}" for i in range(6)], "campaign_id": ["c1", "c1", "c1", "c2", "c2", "c3"],
        "created_at": ts(["2026-01-10"] * 6), "mql_at": ts([None] * 6), "sql_at": ts([None] * 6),
        "opportunity_id": ["o1", "o2", None, None, None, None]}).astype({"opportunity_id": "string"})
    opps = pd.DataFrame({"opportunity_id": ["o1", "o2"], "account_id": ["a1", "a2"], "amount": [10.0, 20.0],
                         "is_won": [True, False], "created_at": ts(["2026-01-20"] * 2),
                         "closed_at": ts(["2026-02-01", "2026-02-02"])})
    events = pd.DataFrame({"campaign_id": ["c1"] * 14, "event_type": ["impression"] * 10 + ["click"] * 4,
                           "lead_id": [None] * 14, "occurred_at": ts(["2026-01-05"] * 14)})
    ads = pd.DataFrame({"campaign_id": ["c2", "c2", "c1"], "n_impressions": [600, 400, 99999],
                        "n_clicks": [30, 20, 999]})
    out = mk.campaign_funnel(campaigns, leads, events=events, opportunities=opps, ad_metrics=ads,
                             ctx=Q1).set_index("campaign_id")
    assert list(out.index) == ["c2", "c1", "c3"]  # most engagement first, unknown last
    # c1 has events: its figures come from them, never mixed with the platform's (99,999 impressions ignored)
    assert out.loc["c1", ["n_exposed", "n_engagements", "n_leads", "n_opportunities", "n_won"]].tolist() == [
        10, 4, 3, 2, 1]
    assert out.loc["c1", ["engagement_rate", "lead_rate", "won_rate"]].tolist() == [0.4, 0.75, 0.5]
    assert out.loc["c1", "opportunity_rate"] == pytest.approx(2 / 3)
    assert out.loc["c2", ["n_exposed", "n_engagements", "lead_rate"]].tolist() == [1000, 50, 0.04]
    assert pd.isna(out.loc["c2", "won_rate"])  # no opportunity: no win rate, not 0 %
    quiet = out.loc["c3"]
    assert pd.isna(quiet["n_exposed"]) and pd.isna(quiet["n_engagements"]) and quiet["n_leads"] == 1
    steps = mk.funnel_steps(out.reset_index(), ["c1", "c3"])
    assert steps[steps["campaign_id"] == "c3"]["step"].tolist() == ["lead", "opportunity", "won"]


def test_hollow_campaign_is_named_only_when_it_stands_out():
    result = pd.DataFrame({
        "campaign_id": [f"c{i}" for i in range(10)], "name": [f"Campaign {i}" for i in range(10)],
        "n_engagements": [900.0, 100, 110, 90, 95, 120, 80, 100, 105, 99],
        "n_leads": [60, 20, 20, 20, 20, 20, 20, 20, 20, 20],
        "n_opportunities": [0, 2, 3, 2, 1, 2, 2, 2, 2, 2]})
    result["opportunity_rate"] = result["n_opportunities"] / result["n_leads"]
    found = mk.describe_campaign_funnel(result)
    assert found.severity == "act"
    assert found.text.startswith("Campaign 0 drew 9.0 times the engagement of the median campaign (900 interactions) "
                                 "but none of its 60 leads became an opportunity (median campaign: 10.0%")
    converting = result.assign(n_opportunities=result["n_opportunities"].replace(0, 6))
    converting["opportunity_rate"] = converting["n_opportunities"] / converting["n_leads"]
    assert mk.hollow_campaigns(converting).empty
    assert "Campaign 2 turned the largest share" in mk.describe_campaign_funnel(converting).text


def _campaigns(returns: dict[str, float], n: int, noise: float, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for channel, k in returns.items():
        cost = rng.lognormal(np.log(10_000), 0.6, n)
        won = k * cost * rng.lognormal(0.0, noise, n)
        rows += [{"campaign_id": f"{channel}{i}", "channel": channel, "cost_amount": c, "won_amount": w}
                 for i, (c, w) in enumerate(zip(cost, won, strict=True))]
    return pd.DataFrame(rows)


def test_marginal_roi_recovers_proportional_returns_and_recommends_a_move():
    out = mk.marginal_roi(_campaigns({"a": 5.0, "b": 2.0, "c": 0.5}, n=30, noise=0.05)).set_index("channel")
    assert list(out.index) == ["a", "b", "c"]
    assert out["elasticity"].iloc[0] == pytest.approx(1.0, abs=0.05)  # revenue proportional to spend
    assert out["marginal_roi"].tolist() == pytest.approx([4.0, 1.0, -0.5], abs=0.3)
    assert (out["marginal_roi_low"] < out["marginal_roi"]).all()
    assert (out["marginal_roi"] < out["marginal_roi_high"]).all()
    assert out["roi"].tolist() == pytest.approx([4.0, 1.0, -0.5], abs=0.05)
    found = mk.describe_marginal_roi(out.reset_index())
    assert found.severity == "act" and "returns most in a" in found.text and "In c even the next unit" in found.text
    assert "Move budget from c to a" in found.recommendation


def test_marginal_roi_says_when_the_data_cannot_tell_channels_apart():
    noisy = mk.marginal_roi(_campaigns({"a": 1.3, "b": 1.2}, n=8, noise=1.5, seed=3))
    found = mk.describe_marginal_roi(noisy)
    assert found.severity == "info" and "does not support moving budget" in found.text
    few = mk.marginal_roi(_campaigns({"a": 2.0, "b": 1.0}, n=3, noise=0.1))
    assert few["marginal_roi"].isna().all() and few["roi"].notna().all()  # too few campaigns for a curve
    assert mk.describe_marginal_roi(few) is None


def test_marketing_kpis_by_hand():
    leads, _ = lead_frames()
    campaigns = pd.DataFrame({"campaign_id": ["c1", "c2", "c3"], "region_id": ["East", "West", None],
                              "started_at": ts(["2026-01-01", "2026-02-01", "2025-10-01"]),
                              "cost_amount": [300.0, 100.0, 50.0]})
    frames = {"leads": leads, "campaigns": campaigns}
    assert mk.kpi_marketing_cost(frames, Q1) == 400.0  # c3 started in the quarter before
    assert mk.kpi_campaign_leads(frames, Q1) == 4.0  # l5 was created in December
    assert mk.kpi_cost_per_lead(frames, Q1) == 100.0
    assert mk.kpi_cost_per_mql(frames, Q1) == pytest.approx(400 / 3)  # l1, l2, l4
    east = KpiContext(period_start=Q1.period_start, period_end=Q1.period_end, region="East", period_label="2026-Q1")
    assert mk.kpi_marketing_cost(frames, east) == 300.0 and mk.kpi_campaign_leads(frames, east) == 2.0
    undated = campaigns.assign(started_at=ts([None, None, None]))  # an undated campaign counts in every period
    assert mk.kpi_marketing_cost({"campaigns": undated}, Q1) == 450.0


def _slice(folder, region="all"):
    values = {"source": str(folder), "region": region, "period": "2026-Q3", "as_of": "2026-10-01"}
    return data.open_slice(params.validate_params(values), data.connect(folder))


@pytest.mark.parametrize("seed", [7, 11])
def test_planted_hollow_campaign_is_found(demo_folder, seed):
    s = _slice(demo_folder("tiny", seed))
    funnels = mk.campaign_funnel_of(s)
    hollow = mk.hollow_campaigns(funnels)
    assert hollow["name"].tolist()[:1] == [HOLLOW_CAMPAIGN.name]
    row = hollow.iloc[0]
    assert row["n_leads"] >= HOLLOW_CAMPAIGN.min_leads and row["n_opportunities"] == 0
    assert row["n_engagements"] == funnels["n_engagements"].max()
    assert mk.describe_campaign_funnel(funnels).text.startswith(HOLLOW_CAMPAIGN.name)


@pytest.mark.parametrize("seed", [7, 11])
def test_planted_assist_channel_is_found(demo_folder, seed):
    s = _slice(demo_folder("tiny", seed))
    models = mk.attribution_of(s).set_index("channel")
    assist = ASSIST_CHANNEL.channel
    assert models["vs_last_touch"].idxmax() == assist  # last-touch under-credits it most
    assert models.loc[assist, "first_touch"] - models.loc[assist, "last_touch"] > ASSIST_CHANNEL.min_gap
    assert models.loc[assist, "markov"] > models.loc[assist, "last_touch"]
    assert f"under-credits {assist}" in mk.describe_models(models.reset_index()).text
    by_campaign = mk.attribution_of(s, "campaign_id")  # the same journeys, credited per campaign
    assert by_campaign.columns[:2].tolist() == ["campaign_id", "name"] and "shapley" not in by_campaign
    assert by_campaign["last_touch"].sum() == pytest.approx(1.0) and by_campaign["markov"].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [7, 11])
def test_planted_channel_roi_ranks_through_the_notebook_call(demo_folder, seed):
    s = _slice(demo_folder("tiny", seed))
    roi = mk.channel_roi(s).set_index("channel")  # the mature campaigns
    assert roi["roi"].idxmax() == CHANNEL_ROI.best_channel and roi.loc[CHANNEL_ROI.negative_channel, "roi"] < 0
    curves = mk.marginal_roi_of(s).set_index("channel")
    assert curves["marginal_roi"].idxmax() == CHANNEL_ROI.best_channel
    assert curves["marginal_roi"].idxmin() == CHANNEL_ROI.negative_channel


def test_a_region_pays_its_share_of_global_campaigns(demo_folder):
    folder = demo_folder("tiny", 7)
    whole, east = mk.marketing_data(_slice(folder)), mk.marketing_data(_slice(folder, "East"))
    spread = whole.campaigns[whole.campaigns["region_id"].isna()].set_index("campaign_id")["cost_amount"]
    mine = east.campaigns[east.campaigns["region_id"].isna()].set_index("campaign_id")["cost_amount"]
    assert set(east.campaigns["region_id"].dropna()) == {"East"}
    assert (mine <= spread.loc[mine.index] + 1e-9).all() and mine.sum() < 0.5 * spread.sum()
    east_leads = east.leads.groupby("campaign_id").size()
    every = _slice(folder).history("leads", mk.history_periods(_slice(folder))).groupby("campaign_id").size()
    one = mine.index[mine > 0][0]
    assert mine[one] == pytest.approx(spread[one] * east_leads[one] / every[one])
