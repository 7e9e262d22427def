"""Benchmark multi-touch attribution (issue 13): the rule-based models (`crmlens.metrics.marketing.attribute`) and
the data-driven ones (`crmlens.metrics.datadriven`) over a demo's journeys, each measured in its own fresh
process, side by side with a naive per-journey Python loop, as ratios.

    .venv/bin/python bench/bench_attribution.py                  # data/demo
    .venv/bin/python bench/bench_attribution.py --data large     # data/large (crmlens demo --scale large, ~10×)
    .venv/bin/python bench/bench_attribution.py --repeat 5       # best of 5 calls per row (default 3)

The journeys are built once (`marketing.journeys` over the parquet files of campaign_events, campaigns, leads and
opportunities; its row gives that time) and kept in a temporary folder that every row's child reads. Journeys to
a won deal have a conversion; the leads that engaged and did not end in a won deal are journeys without one (when
`journeys` does not return them, this bench adds them from ``campaign_events.lead_id`` and says so).

Rows:

* first_touch … time_decay — project: ``attribute(touches, conversions, model)``; linear also against the naive
  way: a Python loop over the journeys (touches gathered per journey in a dict, each journey sorted, cut at its
  conversion, and 1/n of its value added per touch).
* markov — project: ``markov_attribution`` (transitions counted with ``np.bincount``, one matrix inverse for
  every removal effect); naive: the same loop collapsing each path and counting its transitions in a dict, then
  one linear solve per removed channel.
* shapley — project: ``shapley_attribution`` (exact, 2ⁿ coalitions); no naive row.

Seconds: the best of ``--repeat`` calls inside the child (reading the journeys excluded). Memory: the call's peak
resident memory above the memory before it (the child resets the kernel's high-water mark,
``/proc/self/clear_refs``, then reads ``VmHWM``; where that is not possible, the growth of ``ru_maxrss``). Figures
only; nothing is asserted. Times are wall-clock on a possibly shared machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = {"default": ROOT / "data" / "demo", "large": ROOT / "data" / "large"}
RULES = ("first_touch", "last_touch", "linear", "u_shaped", "w_shaped", "time_decay")

CHILD = r'''
import gc, json, resource, sys, time
from pathlib import Path
import pandas as pd
args = json.loads(sys.argv[1])
sys.path.insert(0, args["bench"])
import bench_attribution as b
out = {}
if args["what"] == "journeys":
    from crmlens.metrics import marketing
    tables = {n: pd.read_parquet(Path(args["data"]) / f"{n}.parquet")
              for n in ("campaign_events", "campaigns", "leads", "opportunities")}
    base = b.rss_mark()
    t = time.perf_counter()
    touches, conversions = marketing.journeys(tables["campaign_events"], tables["campaigns"], tables["leads"],
                                              tables["opportunities"])
    out["seconds"] = time.perf_counter() - t
    out["peak_mb"] = b.rss_peak(base)
    lost = ~touches["journey_id"].isin(conversions["journey_id"])
    out["added_non_converting"] = not bool(lost.any())
    if out["added_non_converting"]:
        touches = pd.concat([touches, b.lost_journeys(tables, conversions)], ignore_index=True)
        lost = ~touches["journey_id"].isin(conversions["journey_id"])
    out["events"] = len(tables["campaign_events"])
    out["touches"] = len(touches)
    out["journeys"] = int(touches["journey_id"].nunique())
    out["non_converting"] = int(touches.loc[lost, "journey_id"].nunique())
    out["conversions"] = len(conversions)
    out["channels"] = int(touches["channel"].nunique())
    touches[["journey_id", "channel", "campaign_id", "occurred_at", "is_lead_creation"]].to_parquet(
        Path(args["tmp"]) / "touches.parquet")
    conversions.to_parquet(Path(args["tmp"]) / "conversions.parquet")
else:
    touches = pd.read_parquet(Path(args["tmp"]) / "touches.parquet")
    conversions = pd.read_parquet(Path(args["tmp"]) / "conversions.parquet")
    fn = b.function(args["what"])
    gc.collect()
    base = b.rss_mark()
    times = []
    for i in range(args["repeat"]):
        t = time.perf_counter()
        result = fn(touches, conversions)
        times.append(time.perf_counter() - t)
        if i == 0:
            out["peak_mb"] = b.rss_peak(base)
    out["seconds"] = min(times)
    out["shares"] = {str(k): float(v) for k, v in result.items()}
print("RESULT " + json.dumps(out))
'''


# --------------------------------------------------------------------------------------- used by the child

def function(what: str):
    """The callable measured by row `what`: (touches, conversions) → {channel: share}."""
    from crmlens.metrics import datadriven, marketing

    def shares(frame):
        return dict(zip(frame["channel"], frame["attributed_share"], strict=True))

    if what in RULES:
        return lambda t, c: shares(marketing.attribute(t, c, what))
    if what == "markov":
        return lambda t, c: shares(datadriven.markov_attribution(t, c))
    if what == "shapley":
        return lambda t, c: shares(datadriven.shapley_attribution(t, c))
    return {"naive_linear": naive_linear, "naive_markov": naive_markov}[what]


def rss_mark() -> float:
    """The resident memory now (MB), after resetting the peak (VmHWM) where the kernel allows it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status("VmRSS")
    except OSError:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_peak(base: float) -> float:
    """The peak resident memory since `rss_mark` above its mark (MB)."""
    try:
        return round(_status("VmHWM") - base, 1)
    except OSError:
        import resource
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base, 1)


def _status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise OSError(key)


def lost_journeys(tables: dict, conversions):
    """Journeys without a conversion, for a `marketing.journeys` that returns only the won ones: each lead's
    touches (``campaign_events.lead_id``) when the lead did not convert into one of `conversions`."""
    import pandas as pd
    ev, leads, campaigns = tables["campaign_events"], tables["leads"], tables["campaigns"]
    won = leads.loc[leads["opportunity_id"].astype("string").isin(conversions["journey_id"]), "lead_id"]
    lost = ev[ev["lead_id"].notna() & ~ev["lead_id"].isin(won)]
    channel = campaigns.set_index("campaign_id")["channel"]
    return pd.DataFrame({"journey_id": ("lead:" + lost["lead_id"].astype("string")).to_numpy(),
                         "campaign_id": lost["campaign_id"].to_numpy(),
                         "channel": lost["campaign_id"].map(channel).fillna("(unknown)").to_numpy(),
                         "occurred_at": lost["occurred_at"].to_numpy(), "is_lead_creation": False})


def _per_journey(touches, conversions) -> tuple[dict, dict]:
    """The naive gathering: every touch appended to its journey's list, in Python."""
    ends = {j: (v, at) for j, v, at in zip(conversions["journey_id"], conversions["value"],
                                           conversions["converted_at"], strict=True)}
    paths: dict = {}
    for j, ch, at in zip(touches["journey_id"], touches["channel"], touches["occurred_at"], strict=True):
        paths.setdefault(j, []).append((at, ch))
    return paths, ends


def naive_linear(touches, conversions) -> dict:
    paths, ends = _per_journey(touches, conversions)
    credit: dict = {}
    for j, path in paths.items():
        if j not in ends:
            continue
        value, at = ends[j]
        counted = [ch for when, ch in sorted(path, key=lambda p: p[0]) if when < at]
        for ch in counted:
            credit[ch] = credit.get(ch, 0.0) + value / len(counted)
    total = sum(credit.values())
    return {ch: v / total for ch, v in sorted(credit.items(), key=lambda kv: -kv[1])}


def naive_markov(touches, conversions) -> dict:
    import numpy as np
    paths, ends = _per_journey(touches, conversions)
    counts: dict = {}
    for j, path in paths.items():
        end = ends[j][1] if j in ends else None
        states = [ch for when, ch in sorted(path, key=lambda p: p[0]) if end is None or when < end]
        if not states:
            continue
        collapsed = ["(start)"] + [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
        collapsed.append("(conversion)" if end is not None else "(null)")
        for a, b in itertools.pairwise(collapsed):
            counts[a, b] = counts.get((a, b), 0) + 1
    channels = sorted({a for a, _ in counts} - {"(start)"})

    def p_conversion(removed):
        transient = ["(start)"] + [c for c in channels if c != removed]
        index = {s: i for i, s in enumerate(transient)}
        m, r = np.eye(len(transient)), np.zeros(len(transient))
        totals: dict = {}
        for (a, _b), n in counts.items():
            totals[a] = totals.get(a, 0) + n
        for (a, b), n in counts.items():
            if a in index and b in index:
                m[index[a], index[b]] -= n / totals[a]
            elif a in index and b == "(conversion)":
                r[index[a]] += n / totals[a]
        return float(np.linalg.solve(m, r)[0])

    base = p_conversion(None)
    effect = {c: 1 - p_conversion(c) / base for c in channels}
    total = sum(effect.values())
    return {c: e / total for c, e in sorted(effect.items(), key=lambda kv: -kv[1])}


# --------------------------------------------------------------------------------------- the parent

def child(args: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=3600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}


def row(name: str, project: dict, naive: dict | None = None) -> None:
    p, n = project.get("seconds"), (naive or {}).get("seconds")
    ratio = f"{n / p:7.1f}×" if p and n else "      –"
    shares = project.get("shares") or {}
    note = ", ".join(f"{k} {v:.1%}" for k, v in list(shares.items())[:3]) or str(project.get("error", ""))
    if naive and naive.get("shares") and shares:
        keys = set(shares) | set(naive["shares"])
        gap = max(abs(shares.get(k, 0.0) - naive["shares"].get(k, 0.0)) for k in keys)
        note += f"; naive's shares differ by ≤ {gap:.1e}"
    elif naive and naive.get("error"):
        note += f"; naive: {naive['error']}"
    print(f"{name:<14} {_figure(p, 's', 3)} {_figure(project.get('peak_mb'), 'MB', 1)}   "
          f"{_figure(n, 's', 3)} {_figure((naive or {}).get('peak_mb'), 'MB', 1)}  {ratio}   {note}")


def _figure(value: float | None, unit: str, digits: int) -> str:
    return f"{value:8.{digits}f} {unit:<2}" if value is not None else f"{'–':>8} {'':<2}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=sorted(DATA), default="default", help="demo folder (default: data/demo)")
    parser.add_argument("--repeat", type=int, default=3, help="calls per row, the best one reported (default 3)")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crmlens-bench-attribution-") as tmp:
        base = {"data": str(DATA[opts.data]), "tmp": tmp, "bench": str(Path(__file__).resolve().parent),
                "repeat": max(opts.repeat, 1)}
        built = child({**base, "what": "journeys"})
        if "error" in built:
            print(f"journeys failed: {built['error']}")
            return
        print(f"attribution on {opts.data} ({DATA[opts.data].relative_to(ROOT)}): {built['events']:,} campaign "
              f"events → {built['touches']:,} touches in {built['journeys']:,} journeys ({built['non_converting']:,} "
              f"without a conversion), {built['conversions']:,} won deals, {built['channels']} channels")
        if built["added_non_converting"]:
            print("  (marketing.journeys returned won journeys only: the non-converting ones were added by this "
                  "bench from campaign_events.lead_id)")
        print(f"project vs naive: best of {base['repeat']} calls; peak memory above the start of the call; "
              "ratio naive/project")
        print(f"{'':<14} {'project':>10} {'memory':>11}   {'naive':>10} {'memory':>11}  {'ratio':>8}   largest shares")
        row("journeys", {"seconds": built["seconds"], "peak_mb": built["peak_mb"]})
        for model in RULES:
            naive = child({**base, "what": "naive_linear", "repeat": 1}) if model == "linear" else None
            row(model, child({**base, "what": model}), naive)
        row("markov", child({**base, "what": "markov"}), child({**base, "what": "naive_markov", "repeat": 1}))
        row("shapley", child({**base, "what": "shapley"}))


if __name__ == "__main__":
    main()
