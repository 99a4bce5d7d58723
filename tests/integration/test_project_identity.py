"""Projects that share a ``meta.name`` share nothing else: secrets, containers, folders, records.

A clone and its ``cp -r`` copy, or a hostile repository that names itself after a victim's
project, carry the same ``meta.name``. Each must get its own keyring entries, container, remote
folder, state folders and service record, through an identity minted on this machine.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_container_support import make_project
from tests.support.cli import nvwb
from workbench.container.session import ProjectSession
from workbench.context_runtime import ContextRuntime, open_runtime
from workbench.paths import Paths
from workbench.projects import read_project
from workbench.registry import local_context

VALUE = "hf_0123456789abcdefVICTIM"


def _create(env: dict[str, str], name: str) -> Path:
    result = nvwb(
        env, "create", "project", name, "--base-environment-id", "debian-test", "-o", "json"
    )
    assert result.code == 0, result.err
    return Path(result.json()["path"])


def _set_secret(env: dict[str, str], project: Path, name: str, value: str) -> None:
    result = nvwb(
        env, "create", "environment-variable", name, "-", "--is-sensitive", cwd=project,
        stdin=value + "\n",
    )  # fmt: skip
    assert result.code == 0, result.err


def _secret_row(env: dict[str, str], project: Path, name: str) -> dict[str, Any]:
    result = nvwb(env, "list", "environment-variables", "-o", "json", cwd=project)
    assert result.code == 0, result.err
    return dict(next(r for r in result.json() if r["name"] == name))


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd, check=True, capture_output=True,
    )  # fmt: skip


# -- keyring -----------------------------------------------------------------------------------


def test_a_copied_project_does_not_see_the_originals_secrets(
    wb_env: dict[str, str], tmp_path: Path, keyring_backend: str
) -> None:
    original = _create(wb_env, "twin")
    _set_secret(wb_env, original, "HF_TOKEN", VALUE)
    copy = tmp_path / "elsewhere" / "twin"
    shutil.copytree(original, copy, symlinks=True)  # cp -r: the same meta.name, the same files

    assert _secret_row(wb_env, original, "HF_TOKEN")["is_set"]
    row = _secret_row(wb_env, copy, "HF_TOKEN")
    assert not row["is_set"] and row["value"] is None
    # Setting it in the copy leaves the original's value alone.
    _set_secret(wb_env, copy, "HF_TOKEN", "hf_copy_value_0123456789")
    assert _secret_row(wb_env, original, "HF_TOKEN")["value"] == "hf****IM"


def test_a_hostile_clone_named_after_a_victim_gets_none_of_its_secrets(
    wb_env: dict[str, str], paths: Paths, tmp_path: Path, keyring_backend: str
) -> None:
    victim = _create(wb_env, "rag")
    _set_secret(wb_env, victim, "NVIDIA_API_KEY", VALUE)
    # The attacker's repository copies the victim's spec (meta.name and the secret's name).
    evil = tmp_path / "evil-src"
    evil.mkdir()
    (evil / ".project").mkdir()
    shutil.copy(victim / ".project" / "spec.yaml", evil / ".project" / "spec.yaml")
    _git("init", "-q", cwd=evil)
    _git("add", "-A", cwd=evil)
    _git("commit", "-qm", "rag", cwd=evil)
    cloned = nvwb(wb_env, "clone", "project", str(evil), str(tmp_path / "rag"), "-o", "json")
    assert cloned.code == 0, cloned.err
    clone = Path(cloned.json()["path"])
    assert read_project(clone).name == read_project(victim).name == "rag"

    assert not _secret_row(wb_env, clone, "NVIDIA_API_KEY")["is_set"]
    runtime = open_runtime(local_context(), env=wb_env)
    try:
        session = ProjectSession(runtime, read_project(clone), paths, wb_env)
        _env, secret_env, warnings = session._environment()
    finally:
        runtime.close()
    assert secret_env == {}
    assert any("NVIDIA_API_KEY" in w for w in warnings)


# -- containers and state folders --------------------------------------------------------------


@pytest.fixture
def runtime(wb_env: dict[str, str], test_base_image: str) -> Iterator[ContextRuntime]:
    rt = open_runtime(local_context(), env=wb_env)
    yield rt
    rt.close()


@pytest.mark.docker
@pytest.mark.slow
def test_two_same_named_projects_run_side_by_side_and_close_alone(
    runtime: ContextRuntime, paths: Paths, wb_env: dict[str, str], tmp_path: Path,
    docker_client: Any,
) -> None:  # fmt: skip
    first = make_project(paths, "wbt-twin")
    second = tmp_path / "copy" / "wbt-twin"
    shutil.copytree(first, second, symlinks=True)
    a = ProjectSession(runtime, read_project(first), paths, wb_env)
    b = ProjectSession(runtime, read_project(second), paths, wb_env)
    try:
        assert a.name == b.name == "wbt-twin"
        assert a.container_name != b.container_name
        assert a.state_dir != b.state_dir and a.app_log_dir != b.app_log_dir
        opened_a = a.open()
        opened_b = b.open()
        assert opened_a.container.name != opened_b.container.name
        assert a.state() == "running" and b.state() == "running"
        mounted = {m["Source"] for m in opened_b.container.attrs["Mounts"] if m["Type"] == "bind"}
        assert str(second) in mounted and str(first) not in mounted
        assert b.close()
        assert a.state() == "running"  # closing the copy leaves the original running
    finally:
        for session in (a, b):
            session.close()
