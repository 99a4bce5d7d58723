"""The packaged build beside the pip-installed one: sizes, the CLI's cold start, the app's window.

Measures, for the standalone folder ``dist/workbench`` (``packaging/build``) and a pip install
of the same clone (``build/packaging/venv``, which ``packaging/build`` makes: ``pip install .``,
not editable):

* the size of the standalone folder and of the ``.deb``;
* ``nvwb list contexts`` from process start to exit, a new process each run (the files in the
  page cache, as on a second start), alternating packaged and pip runs; goal: the packaged CLI
  is no slower than the pip-installed one;
* ``workbench --smoke-test``: seconds from process start to the main window shown and to the
  service's answer (the app spawns it), each run a fresh user whose service is not running.

Run: ``.venv/bin/python benchmarks/packaging.py [--runs 15] [--json]`` after ``packaging/build``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "dist" / "workbench"
PIP_BIN = REPO / "build" / "packaging" / "venv" / "bin"


def folder_bytes(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_symlink())


def fresh_env(root: Path) -> dict[str, str]:
    home = root / "home"
    run = root / "run"
    home.mkdir(parents=True)
    run.mkdir(mode=0o700)
    return {
        "HOME": str(home),
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "NVWB_RUNTIME_DIR": str(run),
        "NVWB_SERVICE_IDLE_EXIT": "1",
        "QT_QPA_PLATFORM": "offscreen",
    }


def stop_service(env: dict[str, str]) -> None:
    lock = Path(env["NVWB_RUNTIME_DIR"]) / "service.lock"
    try:
        pid = int(lock.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, 15)
    except OSError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)


def cli_once(exe: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([str(exe), "list", "contexts"], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def app_once(exe: Path, root: Path) -> dict[str, float]:
    env = fresh_env(root)
    try:
        result = subprocess.run(
            [str(exe), "--smoke-test"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        stop_service(env)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return {"window": report["window_seconds"], "service": report["service_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="CLI runs of each (default 15)")
    parser.add_argument("--app-runs", type=int, default=5, help="app runs of each (default 5)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    for path in (BUNDLE / "nvwb", PIP_BIN / "nvwb"):
        if not path.exists():
            sys.exit(f"{path} is missing: run packaging/build first")
    debs = sorted((REPO / "dist").glob("workbench_*.deb"), key=lambda p: p.stat().st_mtime)

    figures: dict[str, object] = {
        "bundle_mib": round(folder_bytes(BUNDLE) / 2**20, 1),
        "deb_mib": round(debs[-1].stat().st_size / 2**20, 1) if debs else None,
    }
    with tempfile.TemporaryDirectory(prefix="wbpkg-") as tmp:
        env = fresh_env(Path(tmp) / "cli")
        cli: dict[str, list[float]] = {"packaged": [], "pip": []}
        for exe in (BUNDLE / "nvwb", PIP_BIN / "nvwb"):
            cli_once(exe, env)  # the first run makes the config; not counted
        for _ in range(args.runs):
            cli["packaged"].append(cli_once(BUNDLE / "nvwb", env))
            cli["pip"].append(cli_once(PIP_BIN / "nvwb", env))
        figures["cli_list_contexts_s"] = {
            name: {"median": round(statistics.median(v), 3), "min": round(min(v), 3)}
            for name, v in cli.items()
        }
        figures["cli_packaged_over_pip"] = round(
            statistics.median(cli["packaged"]) / statistics.median(cli["pip"]), 2
        )
        app: dict[str, list[dict[str, float]]] = {"packaged": [], "pip": []}
        for run in range(args.app_runs):
            for name, exe in (("packaged", BUNDLE / "workbench"), ("pip", PIP_BIN / "workbench")):
                root = Path(tmp) / f"app-{name}-{run}"
                app[name].append(app_once(exe, root))
                shutil.rmtree(root, ignore_errors=True)
        figures["app_window_s"] = {
            name: round(statistics.median(r["window"] for r in runs), 3)
            for name, runs in app.items()
        }
        figures["app_service_answered_s"] = {
            name: round(statistics.median(r["service"] for r in runs), 3)
            for name, runs in app.items()
        }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    for key, value in figures.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
