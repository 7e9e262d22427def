"""The Facebook ad campaigns export (KAG_conversion_data.csv) through params/sources/ad_campaigns.yaml, checked
against an independent pandas reading of the raw CSV: every ad kept, per-campaign CTR, CPC and cost per approved
conversion. Also, on small exports written here: a header behind a UTF-8 byte-order mark reads as its names,
undated ad figures count in every period (dated ones in theirs), and a source without ad figures gets the
"not in this source" note.
"""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest

from crmlens import data, paths
from crmlens.params import validate_params

ADS_DIR = paths.PROJECT_ROOT.parent / "shared" / "data" / "ad_campaigns"
ADS_FILE = ADS_DIR / "KAG_conversion_data.csv"
ADS_MAPPING = paths.SOURCES_DIR / "ad_campaigns.yaml"


def open_ads(period: str = "2026-Q3"):
    params = validate_params({"source": str(ADS_DIR), "mapping": str(ADS_MAPPING), "region": "all",
                              "period": period})
    return data.open_slice(params)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    if not ADS_FILE.is_file():
        pytest.skip(f"the ad campaigns export is not at {ADS_FILE} (shared/data must sit beside the project)")
    return pd.read_csv(ADS_FILE, encoding="utf-8-sig")


@pytest.fixture(scope="module")
def ads_slice(raw):
    return open_ads()


@pytest.fixture(scope="module")
def by_campaign_raw(raw) -> pd.DataFrame:
    g = raw.groupby(raw["xyz_campaign_id"].astype(str))[
        ["Impressions", "Clicks", "Spent", "Total_Conversion", "Approved_Conversion"]].sum()
    return pd.DataFrame({"ctr": g["Clicks"] / g["Impressions"], "cpc": g["Spent"] / g["Clicks"],
                         "cost_per_approved": g["Spent"] / g["Approved_Conversion"],
                         "spend": g["Spent"], "impressions": g["Impressions"]})


@pytest.mark.realdata
def test_every_ad_is_kept_nothing_lost(ads_slice, raw):
    report = ads_slice.report
    metrics = report.tables["campaign_metrics"]
    assert metrics.loaded == len(raw) == 1_143
    assert metrics.accepted + metrics.rejected == len(raw) and metrics.rejected == 0 and report.ok
    assert (report.tables["campaigns"].loaded, report.tables["campaigns"].accepted) == (3, 3)
    frame = ads_slice.tables["campaign_metrics"]
    assert len(frame) == 1_143 and frame["ad_id"].tolist() == raw["ad_id"].astype(str).tolist()
    assert frame["report_date"].isna().all(), "the export has no date"
    assert ads_slice.info.tables == ("campaigns", "campaign_metrics"), "the other tables are absent"
    camps = ads_slice.tables["campaigns"].set_index("campaign_id")
    assert sorted(camps.index) == ["1178", "916", "936"] and set(camps["channel"]) == {"social"}
    assert camps["region_id"].isna().all() and camps["started_at"].isna().all()
    spent = raw.groupby(raw["xyz_campaign_id"].astype(str))["Spent"].sum().round(2)
    assert camps["cost_amount"].sort_index().tolist() == pytest.approx(spent.sort_index().tolist(), abs=1e-9)


@pytest.mark.realdata
def test_per_campaign_ctr_cpc_and_cost_per_approved_conversion_equal_pandas(ads_slice, by_campaign_raw):
    from crmlens.metrics import adspend

    out = adspend.ad_performance(ads_slice).set_index("campaign_id").sort_index()
    want = by_campaign_raw.sort_index()
    assert out.index.tolist() == want.index.tolist()
    assert out["click_through_rate"].to_numpy() == pytest.approx(want["ctr"].to_numpy(), rel=1e-12)
    assert out["cost_per_click"].to_numpy() == pytest.approx(want["cpc"].to_numpy(), rel=1e-9)
    assert out["cost_per_approved_conversion"].to_numpy() == pytest.approx(want["cost_per_approved"].to_numpy(),
                                                                          rel=1e-9)
    assert out["ad_spend_amount"].to_numpy() == pytest.approx(want["spend"].to_numpy(), rel=1e-9)
    assert out["n_impressions"].astype("int64").tolist() == want["impressions"].tolist()
    result = adspend.ad_performance(ads_slice)
    assert result.attrs["source"] == "campaign_metrics" and result.attrs["n_undated"] == 1_143
    assert "none of the 1,143 rows has a date" in adspend.basis_note(result)
    found = adspend.describe_ad_performance(result)
    assert found.text.startswith("Facebook campaign 916 brings an approved conversion at the lowest cost (6.24")
    assert "1178 at the highest (63.83" in found.text and found.severity == "act"


@pytest.mark.realdata
def test_audience_and_the_sources_own_columns_group_the_figures(ads_slice, raw):
    from crmlens.metrics import adspend

    by_gender = adspend.ad_performance(ads_slice, "gender").set_index("gender").sort_index()
    g = raw.groupby("gender")[["Clicks", "Impressions", "Spent"]].sum()
    assert by_gender["click_through_rate"].to_numpy() == pytest.approx((g["Clicks"] / g["Impressions"]).to_numpy())
    assert by_gender["cost_per_click"].to_numpy() == pytest.approx((g["Spent"] / g["Clicks"]).to_numpy())
    audience = adspend.ad_performance(ads_slice, "audience")
    assert audience["n_ads"].sum() == len(raw)
    assert len(audience) == raw.groupby(["age", "gender", "interest"]).ngroups
    assert "30-34 · M · interest 15" in set(audience["audience"])


@pytest.mark.realdata
def test_undated_figures_are_the_same_in_every_period(raw):
    from crmlens.metrics import adspend

    a = adspend.ad_performance(open_ads("2017"))
    b = adspend.ad_performance(open_ads("2026-W37"))
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.realdata
def test_cli_validate_reports_clean(capsys, raw):
    from crmlens.cli import main

    code = main(["validate", "--source", str(ADS_DIR), "--mapping", str(ADS_MAPPING)])
    out = capsys.readouterr().out
    assert code == 0 and "OK: every table can be used." in out
    assert "left empty: report_date" in out
    for line in out.splitlines():
        if line.startswith(("regions ", "leads ", "campaign_events ")):
            assert line.rstrip().endswith("absent")


# ----------------------------------------------------------------------- small exports written by the tests

def write_source(folder, files: dict[str, str], mapping: str):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_bytes(text.encode("utf-8-sig" if name.startswith("bom") else "utf-8"))
    path = folder / "mapping.yaml"
    path.write_text(textwrap.dedent(mapping), encoding="utf-8")
    return path


MAPPING = """\
    name: tiny_ads
    files:
      camps: {path: bom_campaigns.csv}
      stats: {path: stats.csv}
    tables:
      campaigns:
        from: camps
        columns: {campaign_id: id, channel: channel}
      campaign_metrics:
        from: stats
        columns: {campaign_id: campaign, ad_id: ad, report_date: day, n_impressions: impressions, n_clicks: clicks,
                  spend_amount: spend}
"""
CAMPAIGNS_ONLY = """\
    name: tiny_campaigns
    files:
      camps: {path: bom_campaigns.csv}
    tables:
      campaigns:
        from: camps
        columns: {campaign_id: id, channel: channel}
"""
CAMPAIGNS_CSV = "id,channel\nk1,social\n"
STATS_CSV = ("campaign,ad,day,impressions,clicks,spend\n"
             "k1,x1,2026-07-05,100,5,10\n"      # Q3 2026
             "k1,x2,2025-01-10,200,8,12\n"      # Q1 2025
             "k1,x3,,300,9,30\n"                # undated: every period
             "k1,x4,2026-08-01,10,20,1\n")      # more clicks than impressions: rejected


def _open(tmp_path, period: str, files: dict[str, str] | None = None, mapping: str = MAPPING):
    folder = tmp_path / "export"
    path = write_source(folder, files or {"bom_campaigns.csv": CAMPAIGNS_CSV, "stats.csv": STATS_CSV}, mapping)
    params = validate_params({"source": str(folder), "mapping": str(path), "region": "all", "period": period})
    return data.open_slice(params)


def test_a_header_behind_a_byte_order_mark_reads_as_its_names(tmp_path):
    from crmlens.mapping import build_mapped_source, load_mapping

    path = write_source(tmp_path / "bom", {"bom_campaigns.csv": CAMPAIGNS_CSV, "stats.csv": STATS_CSV}, MAPPING)
    assert (tmp_path / "bom" / "bom_campaigns.csv").read_bytes().startswith(b"\xef\xbb\xbfid,")
    con, _ = build_mapped_source(tmp_path / "bom", load_mapping(path))
    assert [r[0] for r in con.execute("DESCRIBE raw.camps").fetchall()] == ["_source_row", "id", "channel"]
    assert con.execute("SELECT campaign_id FROM main.campaigns").fetchall() == [("k1",)]


@pytest.mark.parametrize("cluster_rows", [None, 1], ids=["plain", "stored-sorted-by-period"])
def test_undated_ad_figures_count_in_every_period_and_dated_ones_in_theirs(tmp_path, monkeypatch, cluster_rows):
    from crmlens import store

    monkeypatch.setenv(store.STORE_DIR_ENV, str(tmp_path / "store"))
    monkeypatch.setattr(store, "CLUSTER_ROWS", cluster_rows)
    q3 = _open(tmp_path, "2026-Q3")
    assert q3.store.meta["tables"]["campaign_metrics"].get("clustered") == ("span" if cluster_rows else None)
    assert q3.report.tables["campaign_metrics"].rejected == 1, "clicks above impressions is rejected"
    problems = q3.report.problems
    assert problems.loc[problems["column"] == "n_clicks,n_impressions", "row_key"].str.startswith("k1|x4").all()
    assert sorted(q3.tables["campaign_metrics"]["ad_id"]) == ["x1", "x3"]
    assert sorted(_open(tmp_path, "2025").tables["campaign_metrics"]["ad_id"]) == ["x2", "x3"]
    assert _open(tmp_path, "2024").tables["campaign_metrics"]["ad_id"].tolist() == ["x3"]
    frame = q3.store.read("campaign_metrics")
    mask = data.period_mask(frame, q3.store.table("campaign_metrics"), q3.period)
    assert sorted(frame.loc[mask, "ad_id"]) == ["x1", "x3"], "the pandas rule agrees with the engine's"


def test_a_source_with_campaigns_but_no_ad_figures_says_so(tmp_path, monkeypatch):
    from crmlens import notebook
    from crmlens.metrics import adspend

    shown: list[str] = []
    monkeypatch.setattr(notebook, "md", lambda text, **_: shown.append(text))
    s = _open(tmp_path, "2026-Q3", {"bom_campaigns.csv": CAMPAIGNS_CSV}, CAMPAIGNS_ONLY)
    assert s.info.tables == ("campaigns",)
    assert adspend.ad_performance(s) is None
    assert shown == ["> **Skipped — not in this source.** This section needs table `campaign_metrics` (or "
                     f"`campaign_events` with impressions and clicks); the source `{s.info.source}` has neither."]
    assert adspend.describe_ad_performance(None) is None and adspend.basis_note(None) == ""


DAILY_MAPPING = """\
    name: daily_ads
    files:
      camps: {path: campaigns.csv}
      daily: {path: daily.csv}
    tables:
      campaigns:
        from: camps
        columns: {campaign_id: id, channel: channel}
      campaign_metrics:
        from: daily
        columns:
          campaign_id: Campaign
          report_date: Day
          n_impressions: {sql: "replace(\\"Impr.\\", ',', '')"}
          n_clicks: Clicks
          spend_amount: {sql: "replace(Cost, ',', '')"}
          n_conversions: {sql: "round(TRY_CAST(Conversions AS DOUBLE))"}
"""
DAILY_CSV = ('Campaign,Day,Impr.,Clicks,Cost,Conversions\n'
             'Brand,2026-09-29,"12,345",210,"1,050.50",3.4\n'
             'Brand,2026-09-30,"10,000",190,949.50,2.6\n'
             'Brand,2026-10-01,900,10,50,0\n')


def test_the_daily_export_example_of_the_docs_maps(tmp_path):
    """docs/mappings.md's Google Ads example: thousands separators stripped, fractional conversions rounded, days
    cut by period."""
    from crmlens.metrics import adspend

    s = _open(tmp_path, "2026-09", {"campaigns.csv": "id,channel\nBrand,paid_search\n", "daily.csv": DAILY_CSV},
              DAILY_MAPPING)
    assert s.report.ok and s.report.tables["campaign_metrics"].accepted == 2, "the two September days"
    rows = s.tables["campaign_metrics"]
    assert rows["n_impressions"].tolist() == [12_345, 10_000] and rows["n_conversions"].tolist() == [3, 3]
    out = adspend.ad_performance(s).iloc[0]
    assert (out["n_clicks"], out["ad_spend_amount"]) == (400, 2_000.0)
    assert out["cost_per_click"] == pytest.approx(5.0) and out["click_through_rate"] == pytest.approx(400 / 22_345)
    assert adspend.basis_note(adspend.ad_performance(s)) == ("Figures as the ad platform reported them, for the days "
                                                            "of the period.")


EVENTS_MAPPING = """\
    name: tiny_events
    files:
      camps: {path: campaigns.csv}
      events: {path: events.csv}
    tables:
      campaigns:
        from: camps
        columns: {campaign_id: id, channel: channel, started_at: start, ended_at: end, cost_amount: cost}
      campaign_events:
        from: events
        columns: {event_id: id, campaign_id: campaign, event_type: kind, occurred_at: at}
"""


def test_a_slice_without_ad_figures_counts_its_events_and_says_so(tmp_path, monkeypatch):
    from crmlens import notebook
    from crmlens.metrics import adspend

    shown: list[str] = []
    monkeypatch.setattr(notebook, "md", lambda text, **_: shown.append(text))
    files = {"campaigns.csv": "id,channel,start,end,cost\nk1,social,2026-06-01,2026-07-11,400\n",
             "events.csv": "id,campaign,kind,at\ne1,k1,impression,2026-07-02\ne2,k1,impression,2026-07-03\n"
                           "e3,k1,click,2026-07-03\ne4,k1,impression,2026-06-15\n"}
    s = _open(tmp_path, "2026-Q3", files, EVENTS_MAPPING)
    out = adspend.ad_performance(s)
    # Q3 holds 2 impressions and 1 click; the campaign ran 40 days, 10 of them in Q3: 400 x 10/40 = 100 spent
    assert out.attrs["source"] == "campaign_events" and out.attrs["spend"] == "prorated"
    row = out.iloc[0]
    assert (row["n_impressions"], row["n_clicks"], row["ad_spend_amount"]) == (2, 1, 100.0)
    assert row["click_through_rate"] == 0.5 and row["cost_per_click"] == 100.0 and pd.isna(row["n_conversions"])
    assert adspend.ad_performance(s, "audience") is None
    assert shown == ["> **Skipped — not in this source.** This section needs ad figures broken down this way "
                     f"(`campaign_metrics` with the column); the source `{s.info.source}` does not record them."]


def test_a_grouping_the_figures_lack_says_so_and_a_made_up_one_is_an_error(tmp_path, monkeypatch):
    from crmlens import notebook
    from crmlens.errors import ParameterError
    from crmlens.metrics import adspend

    shown: list[str] = []
    monkeypatch.setattr(notebook, "md", lambda text, **_: shown.append(text))
    s = _open(tmp_path, "2026-Q3")
    assert adspend.ad_performance(s, "audience") is None and len(shown) == 1 and "does not record" in shown[0]
    assert adspend.ad_performance(s, "ad_id")["ad_id"].tolist() == ["x1", "x3"]
    with pytest.raises(ParameterError, match="by: 'gender'"):
        adspend.ad_performance(s, "gender")
