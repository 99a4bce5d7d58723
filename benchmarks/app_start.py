"""Time from ``nvwb start APP`` to a healthy app, beside ``docker run`` plus the same health check.

The test project (``tests/integration/test_container_support.py``: the test base image, ``jq``
from apt.txt, ``python3 -m http.server`` with a curl health check) is built once first. Then,
alternating, each run measures from process start to a passing health check:

* baseline: ``docker run -d`` of the project's image with the app's command, then the same health
  check through ``docker exec`` every 0.1 s (what a user would script by hand);
* ``nvwb start web`` on a closed project: a new process that connects, checks the image,
  creates and starts the container, starts the app and polls its health check;
* ``nvwb start web`` on an open project: the same with the container already running.

Both ``nvwb`` runs call the CLI handler in a fresh interpreter (``python -c``), so interpreter
start and imports are counted, as for the real command. A third figure is the same start in a warm
interpreter (connection made, modules imported), which is what the workbench service will pay
once ``nvwb`` asks it instead of doing the work itself. Goal (issue 3): overhead under 1 s.
Run: ``.venv/bin/python benchmarks/app_start.py [--runs 5] [--json]``.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.test_container_support import (  # noqa: E402
    APP,
    APP_PORT,
    DEFAULT_HEALTH,
    make_project,
)
from workbench.container.runtime import container_name  # noqa: E402
from workbench.identity import identify  # noqa: E402
from workbench.paths import Paths  # noqa: E402
from workbench.projects import read_project  # noqa: E402

GOAL_OVERHEAD_S = 1.0
PROJECT = "wbbench-start"
BASELINE = "wbbench-baseline"

NVWB = str(Path(sys.executable).with_name("nvwb"))


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def baseline(image: str) -> float:
    docker("rm", "-f", BASELINE, check=False)
    health = DEFAULT_HEALTH.format(port=APP_PORT)
    started = time.perf_counter()
    docker(
        "run",
        "-d",
        "--name",
        BASELINE,
        "-p",
        f"127.0.0.1::{APP_PORT}",
        "-w",
        "/project",
        image,
        "sh",
        "-c",
        f"python3 -m http.server {APP_PORT}",
    )
    while docker("exec", BASELINE, "sh", "-c", health, check=False).returncode != 0:
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    docker("rm", "-f", BASELINE)
    return seconds


def nvwb_start(env: dict[str, str], project: Path) -> float:
    """``nvwb start web`` as a user types it: the console script, a process of its own."""
    started = time.perf_counter()
    subprocess.run(
        [NVWB, "-p", str(project), "start", APP, "--no-browser"],
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def stop_app(env: dict[str, str], project: Path) -> None:
    subprocess.run(
        [NVWB, "-p", str(project), "stop", APP], env=env, check=True, capture_output=True
    )


def warm_start(env: dict[str, str], project: Path) -> float:
    """Closed project to healthy app inside this (warm) process, as the service will do it."""
    from workbench.container.context_runtime import open_runtime
    from workbench.container.forwards import AppForwards
    from workbench.container.session import ProjectSession
    from workbench.projects import read_project
    from workbench.registry import local_context

    with open_runtime(local_context(), env=env) as runtime:
        session = ProjectSession(runtime, read_project(project), Paths.from_env(env), env)
        started = time.perf_counter()
        session.start_app(APP, AppForwards(None))
        seconds = time.perf_counter() - started
        session.close()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="figures as JSON on the last line")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wbbench-") as tmp:
        root = Path(tmp)
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(root / "home"),
            "NVWB_CONFIG_DIR": str(root / "config"),
            "NVWB_STATE_DIR": str(root / "state"),
            "NVWB_RUNTIME_DIR": str(root / "run"),
            "NVWB_PROJECTS_DIR": str(root / "projects"),
        }
        (root / "home").mkdir()
        project = make_project(Paths.from_env(env), PROJECT)
        nvwb_start(env, project)  # builds the image once; not measured
        name = container_name(PROJECT, identify(Paths.from_env(env), read_project(project)).id)
        image = docker("inspect", "-f", "{{.Config.Image}}", name).stdout
        docker("rm", "-f", name)
        closed, opened, base, warm = [], [], [], []
        try:
            for _ in range(args.runs):
                base.append(baseline(image.strip()))
                docker("rm", "-f", name, check=False)
                closed.append(nvwb_start(env, project))
                stop_app(env, project)
                opened.append(nvwb_start(env, project))
                stop_app(env, project)
                docker("rm", "-f", name, check=False)
                warm.append(warm_start(env, project))
        finally:
            docker("rm", "-f", name, check=False)
            docker("rm", "-f", BASELINE, check=False)
    figures = {
        "runs": args.runs,
        "docker_run_plus_health_s": round(statistics.median(base), 2),
        "nvwb_start_closed_project_s": round(statistics.median(closed), 2),
        "nvwb_start_open_project_s": round(statistics.median(opened), 2),
        "warm_start_closed_project_s": round(statistics.median(warm), 2),
    }
    figures["overhead_closed_s"] = round(
        figures["nvwb_start_closed_project_s"] - figures["docker_run_plus_health_s"], 2
    )
    figures["overhead_warm_s"] = round(
        figures["warm_start_closed_project_s"] - figures["docker_run_plus_health_s"], 2
    )
    figures["goal_overhead_s"] = GOAL_OVERHEAD_S
    print(f"time to a healthy '{APP}' app, median of {args.runs}, local Docker:")
    print(f"  docker run + health check:        {figures['docker_run_plus_health_s']:.2f} s")
    print(f"  nvwb start (project closed):      {figures['nvwb_start_closed_project_s']:.2f} s")
    print(f"  nvwb start (project open):        {figures['nvwb_start_open_project_s']:.2f} s")
    print(
        f"  overhead, closed project:         {figures['overhead_closed_s']:+.2f} s "
        f"(goal: under {GOAL_OVERHEAD_S:g} s)"
    )
    print(f"  warm process (project closed):    {figures['warm_start_closed_project_s']:.2f} s")
    print(f"  overhead, warm process:           {figures['overhead_warm_s']:+.2f} s")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
