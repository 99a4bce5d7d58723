"""The standalone build (``packaging/build``'s ``dist/workbench``) works as a person uses it.

Each test runs the frozen executables as subprocesses, in a fresh Workbench user of its own: no
Python of the checkout is involved, so what these tests see is what the ``.deb`` installs. The
folder is ``NVWB_BUNDLE`` if set, else ``dist/workbench``; without one the tests are skipped
(failed in CI, where ``.ci/run`` builds it first). ``packaging/check-deb`` runs the same kind of
checks on the installed package in a clean Debian container.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.support import service_missing
from workbench import __version__
from workbench.kinds import all_kinds
from workbench.resources import resource_path

REPO = Path(__file__).resolve().parents[2]
BUNDLE = Path(os.environ.get("NVWB_BUNDLE") or REPO / "dist" / "workbench")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle() -> Path:
    if not (BUNDLE / "nvwb").is_file():
        service_missing(f"no standalone build at {BUNDLE}: run packaging/build first")
    return BUNDLE


@pytest.fixture
def user(wb_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A fresh user's environment whose service (if one is started) is ended afterwards."""
    env = {**wb_env, "NVWB_SERVICE_IDLE_EXIT": "2", "QT_QPA_PLATFORM": "offscreen"}
    yield env
    pid_file = Path(env["NVWB_RUNTIME_DIR"]) / "service.lock"
    pid = _service_pid(pid_file)
    if pid is not None and psutil.pid_exists(pid):
        psutil.Process(pid).terminate()


def _service_pid(lock: Path) -> int | None:
    try:
        text = lock.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def run(
    bundle: Path,
    exe: str,
    *args: str,
    env: dict[str, str],
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bundle / exe), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_version_is_the_projects(bundle: Path, user: dict[str, str]) -> None:
    result = run(bundle, "nvwb", "--version", env=user)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"nvwb {__version__}"


def test_every_builtin_kind_is_registered(bundle: Path, user: dict[str, str]) -> None:
    """The frozen build has no entry points: its executables must register the kinds."""
    listed = run(bundle, "nvwb", "list", "contexts", "-o", "json", env=user)
    assert listed.returncode == 0, listed.stderr
    assert [c["name"] for c in json.loads(listed.stdout)] == ["local"]
    help_text = run(bundle, "nvwb", "create", "context", "--help", env=user).stdout
    choices = re.search(r"--type \{([a-z,]+)\}", help_text)
    assert choices is not None, help_text
    assert set(choices.group(1).split(",")) == {kind.name for kind in all_kinds()}
    made = run(
        bundle, "nvwb", "create", "context", "box", "box.example.invalid",
        "--type", "ssh", "--ssh-username", "me", env=user,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    listed = run(bundle, "nvwb", "list", "contexts", "-o", "json", env=user)
    types = {c["name"]: c["kind"] for c in json.loads(listed.stdout)}
    assert types == {"local": "local", "box": "ssh"}


def test_resources_are_found_in_the_bundle(bundle: Path, user: dict[str, str]) -> None:
    bases = run(bundle, "nvwb", "list", "bases", "-o", "json", env=user)
    assert bases.returncode == 0, bases.stderr
    catalog = json.loads(resource_path("catalog", "bases.json").read_text())
    ids = {entry["id"] for entry in json.loads(bases.stdout)}
    assert ids and ids == {entry["id"] for entry in _entries(catalog)}
    made = run(
        bundle, "nvwb", "create", "project", "hello", "--base-environment-id", "python-basic",
        env=user,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    spec = Path(user["NVWB_PROJECTS_DIR"]) / "hello" / ".project" / "spec.yaml"
    assert spec.is_file()


def _entries(catalog: object) -> list[dict[str, object]]:
    if isinstance(catalog, dict):
        for value in catalog.values():
            if isinstance(value, list):
                return value
    assert isinstance(catalog, list)
    return catalog


def test_the_frozen_cli_spawns_the_frozen_service(bundle: Path, user: dict[str, str]) -> None:
    """``python -m nvwb.service`` means nothing to a frozen executable: the client must start
    the bundle's own service executable."""
    status = run(bundle, "nvwb", "status", "-o", "json", env=user)
    assert status.returncode == 0, status.stderr + status.stdout
    states = {row["name"]: row["state"] for row in json.loads(status.stdout)}
    assert "local" in states
    pid = _service_pid(Path(user["NVWB_RUNTIME_DIR"]) / "service.lock")
    assert pid is not None
    exe = Path(psutil.Process(pid).exe()).resolve()
    assert exe.parent == bundle.resolve(), exe


def test_the_app_shows_its_main_window_and_reaches_the_service(
    bundle: Path, user: dict[str, str]
) -> None:
    started = time.monotonic()
    result = run(bundle, "workbench", "--smoke-test", env=user, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["window"] == "Workbench"
    assert report["service"]["pid"] > 0
    assert report["window_seconds"] < time.monotonic() - started
    exe = Path(psutil.Process(report["service"]["pid"]).exe()).resolve()
    assert exe.parent == bundle.resolve(), exe
