"""Benchmark: the project's plotly.js bundle vs the plotly package's whole plotly.js, in headless Chromium.

    .venv/bin/python bench/bench_plotlyjs.py [--runs 5]

For each, a bare page that loads the script and draws one bar chart, in a fresh browser context each time (as a
first visit): wall time from navigation until the chart is drawn, and the CPU time all Chromium processes
spent on it. Runs alternate between the two. Prints medians and the ratios; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from crmlens.charts import plotlyjs
from crmlens.run.exports import CHROMIUM, CHROMIUM_ARGS

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><script src="{src}"></script></head><body>
<div id="chart"></div>
<script>Plotly.newPlot("chart", [{{type: "bar", x: ["a", "b", "c"], y: [3, 1, 2]}}], {{width: 500, height: 300}})
  .then(() => {{ window.drawn = true; }});</script></body></html>"""


def chromium_cpu_s() -> float:
    """User + system CPU seconds of every running Chromium process."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"chrom" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return total / ticks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="page loads of each (default: %(default)s)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="crmlens-bench-plotlyjs-"))
    pages = {}
    for name, script in (("bundle", plotlyjs.BUNDLE), ("whole", plotlyjs.full_path())):
        page = folder / f"{name}.html"
        page.write_text(PAGE.format(src=script.as_uri()), encoding="utf-8")
        pages[name] = page
    results: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in pages}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for _ in range(args.runs):
                for name, page_file in pages.items():
                    context = browser.new_context()
                    page = context.new_page()
                    time.sleep(0.5)  # the new context's own start-up is not counted
                    cpu0, t0 = chromium_cpu_s(), time.perf_counter()
                    page.goto(page_file.as_uri())
                    page.wait_for_function("() => window.drawn === true")
                    wall = time.perf_counter() - t0
                    time.sleep(0.3)  # CPU ticks are sampled: let the last ones land
                    results[name]["wall"].append(wall)
                    results[name]["cpu"].append(chromium_cpu_s() - cpu0)
                    context.close()
        finally:
            browser.close()
    size = {"bundle": plotlyjs.BUNDLE.stat().st_size, "whole": plotlyjs.full_path().stat().st_size}
    print(f"== plotly.js in headless Chromium: first chart drawn on a fresh page ({args.runs} runs each, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.2f})")
    print(f"{'':8} {'size':>8} {'wall median':>12} {'min':>7} {'max':>7} {'Chromium CPU':>13}")
    for name, r in results.items():
        print(f"{name:8} {size[name] / 1e6:6.2f}MB {statistics.median(r['wall']):10.2f} s {min(r['wall']):5.2f} s "
              f"{max(r['wall']):5.2f} s {statistics.median(r['cpu']):11.2f} s")
    b, w = results["bundle"], results["whole"]
    print(f"bundle / whole: size {size['bundle'] / size['whole']:.2f}, wall "
          f"{statistics.median(b['wall']) / statistics.median(w['wall']):.2f}, CPU "
          f"{statistics.median(b['cpu']) / max(1e-9, statistics.median(w['cpu'])):.2f}")


if __name__ == "__main__":
    main()
