"""Benchmark the demo generator: time, peak memory and rows per scale, each scale in a fresh process.

    .venv/bin/python bench/bench_demo.py [--scales tiny,small,default,large] [--seed 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = """
import json, sys, time
started = time.perf_counter()
from crmlens.demo import generate
imported = time.perf_counter()
counts = generate(sys.argv[1], int(sys.argv[2]), sys.argv[3])
print(json.dumps({"import_s": imported - started, "generate_s": time.perf_counter() - imported,
                  "counts": counts}))
"""


def run_scale(scale: str, seed: int, out: Path) -> dict:
    """Generate one scale in a child process; return its timings, peak RSS (MB), sizes and row counts."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, scale, str(seed), str(out)],
                            stdout=subprocess.PIPE, text=True)
    stdout = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)  # the rusage of this very child
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"scale {scale}: generator exited with {proc.returncode}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - started
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports kilobytes
    result["disk_mb"] = sum(p.stat().st_size for p in out.glob("*.parquet")) / 1e6
    return result


def report(scale: str, r: dict) -> str:
    """A readable block for one scale."""
    counts = r["counts"]
    lines = [
        f"== {scale}: {r['generate_s']:.1f} s generating (+{r['import_s']:.1f} s imports, {r['wall_s']:.1f} s wall), "
        f"peak RSS {r['peak_rss_mb']:,.0f} MB, {sum(counts.values()):,} rows, {r['disk_mb']:,.1f} MB on disk",
    ]
    lines += [f"   {name:<26} {rows:>13,}" for name, rows in counts.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="tiny,small,default,large",
                        help="comma-separated scales to run (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="seed (default: %(default)s)")
    parser.add_argument("--keep", type=Path, help="write each scale to DIR/<scale> and keep it")
    parser.add_argument("--json", action="store_true", help="print one JSON object per scale instead")
    args = parser.parse_args(argv)
    for scale in [s.strip() for s in args.scales.split(",") if s.strip()]:
        with tempfile.TemporaryDirectory(prefix=f"crmlens-bench-{scale}-") as tmp:
            out = args.keep / scale if args.keep else Path(tmp)
            result = run_scale(scale, args.seed, out)
        print(json.dumps({"scale": scale, **result}) if args.json else report(scale, result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
