"""The Files tab against real sync sessions over a real sshd: state, conflicts, resolve, pause.

A project open in the Workbench service (an ``ssh`` context on a loopback sshd, its container on
this machine's Docker engine) has its live session in the service: the pane reads and steers it
through the service's ``sync_*`` methods, as ``nvwb sync`` does. A session the service does not
run (here: one run by the test, then stopped, as after ``nvwb close`` or a halted open) is read
from its folder, and what the pane does is applied to its saved state for its next start.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

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
from ui.models.sync_status import SyncView
from ui.panes.files_pane import FilesPane
from workbench.paths import Paths
from workbench.service.client import ServiceClient
from workbench.service.messages import SyncStatus
from workbench.sync.session import SessionOptions, SyncSession

__all__ = ["pair"]

pytestmark = pytest.mark.timeout(240)

SPEC = "specVersion: v2\nmeta:\n  name: demo\n"
WAIT_MS = 30000


def reads(path: Path, text: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return path.read_text() == text
        except OSError:
            return False

    return check


# -- a project open in the service ---------------------------------------------------------------


@dataclass
class Opened:
    """A project the service has open on ``box``, and its copy on the remote."""

    env: dict[str, str]
    paths: Paths
    root: Path
    remote: Path

    def client(self) -> ServiceClient:
        return ServiceClient.connect(self.paths, self.env, spawn=False)

    def status(self) -> SyncStatus:
        with self.client() as client:
            return client.sync_status(str(self.root), "box")

    def conflicts(self) -> list[dict[str, Any]]:
        with self.client() as client:
            return [c.to_wire() for c in client.sync_conflicts(str(self.root), "box").conflicts]

    def sync_now(self) -> None:
        """Wait until the session is idle in step (as ``SyncSession.sync_now`` did in the test)."""
        wait = time.monotonic() + WAIT_MS / 1000
        while self.status().state != "watching" or self.status().pending:
            assert time.monotonic() < wait, f"sync is {self.status().state}"
            time.sleep(0.1)


@pytest.fixture
def opened(
    wb_env: dict[str, str], sshd: SshServer, tmp_path: Path, docker_client: Any,
    test_base_image: str,
) -> Iterator[Opened]:  # fmt: skip
    for base in service_env({**wb_env, **FAST, "NVWB_SERVICE_IDLE_EXIT": "30"}):
        paths = Paths.from_env(base)
        register(paths, ssh_context(sshd, tmp_path / "remote-workbench"))
        name = "wbui-files"
        root = make_project(paths, name)
        remote = tmp_path / "remote-workbench" / "projects" / project_key(paths, root)
        try:
            with holder() as shell:
                env = {**base, "NVWB_HOLDER_PID": str(shell.pid), "NVWB_CONTEXT": "box"}
                done = nvwb(env, "open", cwd=root)
                assert done.code == 0, done.err
                yield Opened(env, paths, root.resolve(), remote)
                nvwb(env, "close", cwd=root)
        finally:
            remove_container(docker_client, name)


def service_pane(qtbot, opened: Opened) -> FilesPane:
    pane = FilesPane(opened.root, paths=opened.paths, env=opened.env, context="box", refresh_ms=150)
    qtbot.addWidget(pane)
    pane.show()
    return pane


# -- a session the service does not run ----------------------------------------------------------


def new_session(pair: Pair) -> SyncSession:
    return SyncSession(
        pair.local_root,
        str(pair.remote_root),
        pair.connection,
        pair.state_dir,
        agent_path=pair.agent_path,
        options=SessionOptions(prefer_openssh=False),
    )


def pair_env(pair: Pair) -> dict[str, str]:
    """A Workbench user whose state is the pair's, with no service running."""
    return {
        "HOME": str(pair.state_dir),
        "NVWB_STATE_DIR": str(pair.state_dir),
        "NVWB_CONFIG_DIR": str(pair.state_dir / "config"),
        "NVWB_RUNTIME_DIR": str(pair.state_dir / "run"),
    }


@pytest.fixture
def session(pair: Pair) -> Iterator[SyncSession]:
    write(pair.local_root / ".project/spec.yaml", SPEC)
    with new_session(pair) as live:
        yield live


def make_session_conflict(qtbot, pair: Pair, live: SyncSession, path: str = "nb.ipynb") -> None:
    """As ``make_conflict``, on a session the test runs."""
    write(pair.local_root / path, "base")
    live.sync_now(60)
    qtbot.waitUntil(reads(pair.remote_root / path, "base"), timeout=WAIT_MS)
    live.pause()
    write(pair.local_root / path, "laptop")
    write(pair.remote_root / path, "remote!")
    live.resume()
    qtbot.waitUntil(lambda: live.status()["conflicts"] == 1, timeout=WAIT_MS)


def make_pane(qtbot, pair: Pair, context: str = "box") -> FilesPane:
    env = pair_env(pair)
    pane = FilesPane(
        pair.local_root, paths=Paths.from_env(env), env=env, context=context, refresh_ms=150
    )
    qtbot.addWidget(pane)
    pane.show()
    return pane


def select_row(qtbot, pane: FilesPane, path: str) -> None:
    """Click the conflict's row, as a person picks the conflict to settle."""
    row = pane.conflict_paths().index(path)
    rect = pane.table.visualItemRect(pane.table.item(row, 0))
    qtbot.mouseClick(pane.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert pane.selected_conflicts() == [path]


def make_conflict(qtbot, opened: Opened, path: str = "code/nb.ipynb") -> None:
    """The same file edited differently on both sides while sync is paused."""
    write(opened.root / path, "base")
    qtbot.waitUntil(reads(opened.remote / path, "base"), timeout=WAIT_MS)
    with opened.client() as client:
        client.sync_pause(str(opened.root), "box")
        write(opened.root / path, "laptop")
        write(opened.remote / path, "remote!")
        client.sync_resume(str(opened.root), "box")
    qtbot.waitUntil(lambda: opened.status().conflicts == 1, timeout=WAIT_MS)


def test_a_conflict_is_listed_and_keep_both_settles_it(qtbot, opened: Opened):
    pane = service_pane(qtbot, opened)
    qtbot.waitUntil(lambda: pane.badge.state == "watching", timeout=WAIT_MS)
    assert pane.details.isVisible() and not pane.status.isVisible()
    assert str(opened.remote) in pane.remote_label.text()
    assert pane.problems_label.text() == "none"
    assert not pane.conflicts_box.isVisible()

    make_conflict(qtbot, opened)
    qtbot.waitUntil(lambda: pane.conflict_paths() == ["code/nb.ipynb"], timeout=WAIT_MS)
    assert pane.conflicts_box.isVisible()
    assert pane.conflicts_box.title() == "Conflicts (1)"
    conflict = opened.conflicts()[0]
    remote_copy, local_copy = conflict["remote_copy"], conflict["local_copy"]
    assert remote_copy.startswith("code/nb.ipynb.conflict-remote-")
    qtbot.waitUntil(reads(opened.root / remote_copy, "remote!"), timeout=WAIT_MS)

    select_row(qtbot, pane, "code/nb.ipynb")
    qtbot.mouseClick(pane.keep_buttons["both"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: pane.conflict_paths() == [], timeout=WAIT_MS)
    assert pane.table.rowCount() == 0
    assert not pane.conflicts_box.isVisible()
    assert "keeping both versions" in pane.banner.text()
    assert "not running" not in pane.banner.text()  # the running session took it
    # This machine's version at the path on both sides, the remote's kept as its copy on both,
    # and the laptop's copy on the remote gone.
    qtbot.waitUntil(reads(opened.remote / "code/nb.ipynb", "laptop"), timeout=WAIT_MS)
    assert (opened.root / "code/nb.ipynb").read_text() == "laptop"
    qtbot.waitUntil(reads(opened.remote / remote_copy, "remote!"), timeout=WAIT_MS)
    assert (opened.root / remote_copy).read_text() == "remote!"
    qtbot.waitUntil(
        lambda: (
            not (opened.remote / local_copy).exists() and not (opened.root / local_copy).exists()
        ),
        timeout=WAIT_MS,
    )
    assert opened.conflicts() == []


def test_keep_local_while_the_session_is_stopped_applies_when_it_starts(
    qtbot, pair: Pair, session: SyncSession
):
    make_session_conflict(qtbot, pair, session)
    session.stop()
    pane = make_pane(qtbot, pair)
    qtbot.waitUntil(lambda: pane.conflict_paths() == ["nb.ipynb"], timeout=WAIT_MS)
    assert pane.badge.state == "stopped"
    assert "not running" in pane.pending_label.text()

    select_row(qtbot, pane, "nb.ipynb")
    qtbot.mouseClick(pane.keep_buttons["local"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: pane.conflict_paths() == [], timeout=WAIT_MS)
    assert "applies when it starts" in pane.banner.text()

    # The project opened again: a new session, as the service starts one.
    with new_session(pair) as again:
        qtbot.waitUntil(reads(pair.remote_root / "nb.ipynb", "laptop"), timeout=WAIT_MS)
        again.sync_now(60)
        assert again.wait_idle(20)
        qtbot.waitUntil(lambda: pane.badge.state == "watching", timeout=WAIT_MS)
    copies = [p.name for p in [*pair.local_root.iterdir(), *pair.remote_root.iterdir()]]
    assert not [name for name in copies if ".conflict-" in name]
    assert (pair.local_root / "nb.ipynb").read_text() == "laptop"


def test_pause_and_resume_reach_the_running_session(qtbot, opened: Opened):
    opened.sync_now()
    pane = service_pane(qtbot, opened)
    qtbot.waitUntil(lambda: pane.badge.state == "watching", timeout=WAIT_MS)
    assert pane.pause_button.isEnabled() and not pane.resume_button.isEnabled()

    qtbot.mouseClick(pane.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: opened.status().state == "paused", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: pane.badge.state == "paused", timeout=WAIT_MS)
    assert pane.resume_button.isEnabled() and not pane.pause_button.isEnabled()
    write(opened.root / "code/while-paused.txt", "x")
    qtbot.wait(500)
    assert not (opened.remote / "code/while-paused.txt").exists()

    qtbot.mouseClick(pane.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(reads(opened.remote / "code/while-paused.txt", "x"), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: pane.badge.state == "watching", timeout=WAIT_MS)
    assert pane.pause_button.isEnabled()


def test_no_session_is_said_plainly(qtbot, tmp_path: Path):
    project = tmp_path / "project"
    project.mkdir()
    for context, words in (("local", "No sync on the local context"), ("box", "opened on box")):
        env = {"HOME": str(tmp_path), "NVWB_STATE_DIR": str(tmp_path / "state"),
               "NVWB_RUNTIME_DIR": str(tmp_path / "run")}  # fmt: skip
        pane = FilesPane(
            project, paths=Paths.from_env(env), env=env, context=context, refresh_ms=100
        )
        qtbot.addWidget(pane)
        pane.show()
        qtbot.waitUntil(lambda p=pane: p.view is not None, timeout=WAIT_MS)
        assert words in pane.status.text()
        assert pane.status.isVisible()
        assert not pane.details.isVisible() and not pane.conflicts_box.isVisible()


def test_files_still_changing_are_listed(qtbot, pair: Pair):
    """What status says is held back (changed while being sent) shows, a long list cut short."""
    pane = make_pane(qtbot, pair)
    base = SyncView(context="box", found=True, running=True, state="syncing")
    pane._show_view(base)
    assert pane.waiting_label.text() == "none"
    held = tuple(f"ckpt/step-{i}.pt" for i in range(7))
    pane._show_view(dataclasses.replace(base, waiting=held))
    assert pane.waiting_label.text() == (
        "ckpt/step-0.pt, ckpt/step-1.pt, ckpt/step-2.pt, ckpt/step-3.pt, ckpt/step-4.pt and 2 more"
    )


@pytest.mark.parametrize("button", ["confirm", "restore"])
def test_a_halt_for_lost_files_is_settled_with_a_button(qtbot, opened: Opened, button: str):
    """The remote copy's data is wiped: sync halts, the tab says so and offers both ways on."""
    for i in range(12):
        write(opened.root / f"data/f{i}.txt", str(i))
    qtbot.waitUntil(reads(opened.remote / "data/f11.txt", "11"), timeout=WAIT_MS)
    opened.sync_now()
    pane = service_pane(qtbot, opened)
    qtbot.waitUntil(lambda: pane.badge.state == "watching", timeout=WAIT_MS)
    assert not pane.confirm_button.isVisible() and not pane.restore_button.isVisible()
    data = opened.remote / "data"
    for child in list(data.iterdir()):
        child.unlink()
    data.rmdir()
    qtbot.waitUntil(lambda: pane.badge.state == "halted", timeout=WAIT_MS)
    lost = re.search(r"the remote lost (\d+) of the (\d+) files", pane.state_label.text())
    assert lost is not None and int(lost.group(1)) >= 12, pane.state_label.text()
    assert pane.confirm_button.isVisible() and pane.restore_button.isVisible()
    assert not pane.resume_button.isEnabled()  # resuming would only halt again
    target = pane.confirm_button if button == "confirm" else pane.restore_button
    qtbot.mouseClick(target, Qt.MouseButton.LeftButton)
    if button == "confirm":
        qtbot.waitUntil(lambda: not (opened.root / "data").exists(), timeout=WAIT_MS)
    else:
        qtbot.waitUntil(reads(opened.remote / "data/f3.txt", "3"), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: pane.badge.state == "watching", timeout=WAIT_MS)
    assert not pane.confirm_button.isVisible()
    assert "sync resumed" in pane.banner.text().lower()


def test_a_halt_left_by_a_failed_open_is_offered_while_sync_is_stopped(qtbot, pair: Pair):
    """A halted ``nvwb open`` stops its session: the tab still shows the halt and its buttons,
    and Restore applies to the stored state, for the next open."""
    write(pair.local_root / ".project/spec.yaml", SPEC)
    for i in range(12):
        write(pair.local_root / f"data/f{i}.txt", str(i))
    with new_session(pair) as live:
        live.sync_now(60)
        for i in range(12):
            (pair.remote_root / f"data/f{i}.txt").unlink()
        qtbot.waitUntil(lambda: live.status()["state"] == "halted", timeout=WAIT_MS)
    pane = make_pane(qtbot, pair)
    qtbot.waitUntil(pane.restore_button.isVisible, timeout=WAIT_MS)
    assert pane.badge.state == "stopped" and "the remote lost 12 of the 13" in (
        pane.state_label.text()
    )
    qtbot.mouseClick(pane.restore_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not pane.restore_button.isVisible(), timeout=WAIT_MS)
    assert "applies when it starts" in pane.banner.text()
    with new_session(pair) as again:
        again.wait_first_sync(60)
        assert (pair.remote_root / "data/f5.txt").read_text() == "5"
