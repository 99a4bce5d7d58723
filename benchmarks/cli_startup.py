"""How long ``nvwb list contexts -o json`` takes to start, beside a bare ``python -c pass``.

Goal (issue 2): the median is at most 8x the bare interpreter's on the same machine.
Run: ``.venv/bin/python benchmarks/cli_startup.py [--runs 20] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_RATIO = 8.0


def _median_ms(cmd: list[str], env: dict[str, str], runs: int) -> float:
    subprocess.run(cmd, env=env, check=True, capture_output=True)  # warm the page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="figures as JSON on the last line")
    args = parser.parse_args()
    nvwb = Path(sys.executable).with_name("nvwb")
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "HOME": tmp,
            "NVWB_CONFIG_DIR": f"{tmp}/config",
            "NVWB_STATE_DIR": f"{tmp}/state",
        }
        bare = _median_ms([sys.executable, "-c", "pass"], env, args.runs)
        ours = _median_ms([str(nvwb), "list", "contexts", "-o", "json"], env, args.runs)
    ratio = ours / bare
    figures = {
        "python_pass_ms": round(bare, 1),
        "nvwb_list_contexts_ms": round(ours, 1),
        "startup_ratio": round(ratio, 2),
        "goal_ratio": GOAL_RATIO,
        "runs": args.runs,
    }
    print(f"python -c pass:              {bare:7.1f} ms (median of {args.runs})")
    print(f"nvwb list contexts -o json:  {ours:7.1f} ms (median of {args.runs})")
    print(f"ratio: {ratio:.2f}x (goal: at most {GOAL_RATIO:g}x)")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
