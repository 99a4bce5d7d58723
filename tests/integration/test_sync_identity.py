"""Sync and a project's identity: the folder's identity token never travels, either way, and a
project's agreed state follows its identity (a move confirmed with ``--moved-from`` keeps it)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_container_support import (
    make_project,
    project_key,
    register,
    remove_container,
    ssh_context,
)
from tests.integration.test_sync_fixtures import Pair, pair, write
from tests.support.cli import nvwb
from tests.support.service_env import FAST, service_env
from tests.support.sshd import SshServer
from tests.support.workbench_service import holder
from workbench.paths import Paths
from workbench.sync.session import SessionOptions, SyncSession

__all__ = ["pair"]  # a fixture, used by name

TOKEN = ".project/.nvwb-identity"


def test_the_identity_token_is_never_sent_to_the_remote(pair: Pair) -> None:
    write(pair.local_root / TOKEN, "laptop-token\n")
    write(pair.local_root / ".project" / "spec.yaml", "specVersion: v2\n")
    pair.engine().cycle()
    assert (pair.remote_root / ".project" / "spec.yaml").exists()
    assert not (pair.remote_root / TOKEN).exists()


def test_a_remote_cannot_write_the_identity_token_here(pair: Pair) -> None:
    write(pair.local_root / ".project" / "spec.yaml", "specVersion: v2\n")
    engine = pair.engine()
    engine.cycle()
    # The remote plants a token of its choosing (and one in another letter case): neither may
    # reach this machine, where it would bind the folder to an identity it chose.
    write(pair.remote_root / TOKEN, "remote-chosen-token\n")
    write(pair.remote_root / "sub" / ".project" / ".NVWB-IDENTITY", "another\n")
    write(pair.remote_root / "later.txt", "synced\n")
    report = pair.engine().cycle()
    assert (pair.local_root / "later.txt").exists(), report
    assert not (pair.local_root / TOKEN).exists()
    assert not (pair.local_root / "sub" / ".project" / ".NVWB-IDENTITY").exists()
    # A token on both sides stays each side's own.
    write(pair.local_root / TOKEN, "laptop-token\n")
    pair.engine().cycle()
    assert (pair.local_root / TOKEN).read_text() == "laptop-token\n"
    assert (pair.remote_root / TOKEN).read_text() == "remote-chosen-token\n"


def _session(made: Pair, project_id: str | None) -> SyncSession:
    return SyncSession(
        made.local_root,
        str(made.remote_root),
        made.connection,
        made.state_dir,
        agent_path=made.agent_path,
        options=SessionOptions(prefer_openssh=False),
        project_id=project_id,
    )


def test_a_state_kept_by_path_is_taken_over_by_the_projects_identity(pair: Pair) -> None:
    """An agreed state an earlier version kept by the folder's path is the project's once it
    has an identity: nothing starts over. A bare folder (no id) stays keyed by its path."""
    write(pair.local_root / "a.txt", "one\n")
    with _session(pair, None) as bare:
        bare.wait_first_sync(30)
        by_path = bare.folder
    keyed = _session(pair, "0123abcd")
    assert keyed.folder != by_path and not by_path.exists()
    assert keyed.status()["paths"] == 1  # the agreed state came along
    assert _session(pair, None).folder == by_path  # a bare folder is still found by path


ENV = {**FAST, "NVWB_SERVICE_IDLE_EXIT": "30", "NVWB_WAIT_TIMEOUT": "120"}


@pytest.fixture
def env(wb_env: dict[str, str]) -> Iterator[dict[str, str]]:
    yield from service_env({**wb_env, **ENV})


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_moved_project_keeps_its_agreed_state_once_the_move_is_confirmed(
    env: dict[str, str], paths: Paths, sshd: SshServer, tmp_path: Path, docker_client: Any,
    test_base_image: str,
) -> None:  # fmt: skip
    """A file edited on the remote while the project was closed and moved comes back as the
    remote's edit: the agreed state from before the move still says the laptop did not change
    it. With no agreed state (keyed by the old path) both versions would stand as a conflict."""
    register(paths, ssh_context(sshd, tmp_path / "remote-workbench"))
    name = "wbt-sync-moved"
    root = make_project(paths, name)
    remote_copy = tmp_path / "remote-workbench" / "projects" / project_key(paths, root)
    moved = tmp_path / "elsewhere" / name
    try:
        with holder() as shell:
            env = {**env, "NVWB_HOLDER_PID": str(shell.pid), "NVWB_CONTEXT": "box"}
            opened = nvwb(env, "open", cwd=root)
            assert opened.code == 0, opened.err
            assert nvwb(env, "close", cwd=root).code == 0
            (remote_copy / "code" / "hello.txt").write_text("edited on the remote\n")
            moved.parent.mkdir()
            shutil.move(root, moved)
            confirmed = nvwb(env, "update", "project", "--moved-from", str(root), cwd=moved)
            assert confirmed.code == 0, confirmed.err

            again = nvwb(env, "open", cwd=moved)
            assert again.code == 0, again.err
            assert (moved / "code" / "hello.txt").read_text() == "edited on the remote\n"
            assert not [p for p in (moved / "code").iterdir() if ".conflict-" in p.name]
            assert nvwb(env, "close", cwd=moved).code == 0
    finally:
        remove_container(docker_client, name)
