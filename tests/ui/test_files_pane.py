"""The Files tab against a real sync session over a real sshd: state, conflicts, resolve, pause.

The session runs in the test (as the service runs it for an open project), between a "laptop"
folder and a "remote" one reached through OpenSSH on loopback (see
``tests/integration/test_sync_fixtures.py``). The pane only reads and writes the session's
folder, as ``nvwb sync`` does, so what it shows and does here is what it shows and does for a
project the service keeps in sync.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.integration.test_sync_fixtures import Pair, pair, write
from ui.models.sync_status import SyncView
from ui.panes.files_pane import FilesPane
from workbench.sync.session import SessionOptions, SyncSession

__all__ = ["pair"]

pytestmark = pytest.mark.timeout(120)

SPEC = "specVersion: v2\nmeta:\n  name: demo\n"
WAIT_MS = 20000


def reads(path: Path, text: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return path.read_text() == text
        except OSError:
            return False

    return check


def new_session(pair: Pair) -> SyncSession:
    return SyncSession(
        pair.local_root,
        str(pair.remote_root),
        pair.connection,
        pair.state_dir,
        agent_path=pair.agent_path,
        options=SessionOptions(prefer_openssh=False),
    )


@pytest.fixture
def session(pair: Pair) -> Iterator[SyncSession]:
    write(pair.local_root / ".project/spec.yaml", SPEC)
    with new_session(pair) as live:
        yield live


def make_pane(qtbot, pair: Pair, context: str = "box") -> FilesPane:
    pane = FilesPane(pair.local_root, state_dir=pair.state_dir, context=context, refresh_ms=150)
    qtbot.addWidget(pane)
    pane.show()
    return pane


def select_row(qtbot, pane: FilesPane, path: str) -> None:
    """Click the conflict's row, as a person picks the conflict to settle."""
    row = pane.conflict_paths().index(path)
    rect = pane.table.visualItemRect(pane.table.item(row, 0))
    qtbot.mouseClick(pane.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert pane.selected_conflicts() == [path]


def make_conflict(qtbot, pair: Pair, live: SyncSession, path: str = "nb.ipynb") -> None:
    """The same file edited differently on both sides while sync is paused."""
    write(pair.local_root / path, "base")
    live.sync_now(60)
    qtbot.waitUntil(reads(pair.remote_root / path, "base"), timeout=WAIT_MS)
    live.pause()
    write(pair.local_root / path, "laptop")
    write(pair.remote_root / path, "remote!")
    live.resume()
    qtbot.waitUntil(lambda: live.status()["conflicts"] == 1, timeout=WAIT_MS)


def test_a_conflict_is_listed_and_keep_both_settles_it(qtbot, pair: Pair, session: SyncSession):
    pane = make_pane(qtbot, pair)
    qtbot.waitUntil(lambda: pane.badge.state == "watching", timeout=WAIT_MS)
    assert pane.details.isVisible() and not pane.status.isVisible()
    assert str(pair.remote_root) in pane.remote_label.text()
    assert pane.problems_label.text() == "none"
    assert not pane.conflicts_box.isVisible()

    make_conflict(qtbot, pair, session)
    qtbot.waitUntil(lambda: pane.conflict_paths() == ["nb.ipynb"], timeout=WAIT_MS)
    assert pane.conflicts_box.isVisible()
    assert pane.conflicts_box.title() == "Conflicts (1)"
    conflict = session.conflicts()[0]
    remote_copy, local_copy = conflict["remote_copy"], conflict["local_copy"]
    assert remote_copy.startswith("nb.ipynb.conflict-remote-")
    qtbot.waitUntil(reads(pair.local_root / remote_copy, "remote!"), timeout=WAIT_MS)

    select_row(qtbot, pane, "nb.ipynb")
    qtbot.mouseClick(pane.keep_buttons["both"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: pane.conflict_paths() == [], timeout=WAIT_MS)
    assert pane.table.rowCount() == 0
    assert not pane.conflicts_box.isVisible()
    assert "keeping both versions" in pane.banner.text()
    # This machine's version at the path on both sides, the remote's kept as its copy on both,
    # and the laptop's copy on the remote gone.
    qtbot.waitUntil(reads(pair.remote_root / "nb.ipynb", "laptop"), timeout=WAIT_MS)
    assert (pair.local_root / "nb.ipynb").read_text() == "laptop"
    qtbot.waitUntil(reads(pair.remote_root / remote_copy, "remote!"), timeout=WAIT_MS)
    assert (pair.local_root / remote_copy).read_text() == "remote!"
    qtbot.waitUntil(
        lambda: (
            not (pair.remote_root / local_copy).exists()
            and not (pair.local_root / local_copy).exists()
        ),
        timeout=WAIT_MS,
    )
    assert session.conflicts() == []


def test_keep_local_while_the_session_is_stopped_applies_when_it_starts(
    qtbot, pair: Pair, session: SyncSession
):
    make_conflict(qtbot, pair, session)
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


def test_pause_and_resume_reach_the_running_session(qtbot, pair: Pair, session: SyncSession):
    session.sync_now(60)
    pane = make_pane(qtbot, pair)
    qtbot.waitUntil(lambda: pane.badge.state == "watching", timeout=WAIT_MS)
    assert pane.pause_button.isEnabled() and not pane.resume_button.isEnabled()

    qtbot.mouseClick(pane.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: session.status()["state"] == "paused", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: pane.badge.state == "paused", timeout=WAIT_MS)
    assert pane.resume_button.isEnabled() and not pane.pause_button.isEnabled()
    write(pair.local_root / "while-paused.txt", "x")
    qtbot.wait(500)
    assert not (pair.remote_root / "while-paused.txt").exists()

    qtbot.mouseClick(pane.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(reads(pair.remote_root / "while-paused.txt", "x"), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: pane.badge.state == "watching", timeout=WAIT_MS)
    assert pane.pause_button.isEnabled()


def test_no_session_is_said_plainly(qtbot, tmp_path: Path):
    project = tmp_path / "project"
    project.mkdir()
    for context, words in (("local", "No sync on the local context"), ("box", "opened on box")):
        pane = FilesPane(project, state_dir=tmp_path / "state", context=context, refresh_ms=100)
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
def test_a_halt_for_lost_files_is_settled_with_a_button(
    qtbot, pair: Pair, session: SyncSession, button: str
):
    """The remote copy is wiped: sync halts, the tab says so and offers both ways on."""
    for i in range(12):
        write(pair.local_root / f"data/f{i}.txt", str(i))
    session.sync_now(60)
    pane = make_pane(qtbot, pair)
    qtbot.waitUntil(lambda: pane.badge.state == "watching", timeout=WAIT_MS)
    assert not pane.confirm_button.isVisible() and not pane.restore_button.isVisible()
    for child in list(pair.remote_root.iterdir()):
        if child.is_dir():
            for sub in list(child.rglob("*"))[::-1]:
                sub.unlink() if sub.is_file() else sub.rmdir()
            child.rmdir()
        else:
            child.unlink()
    qtbot.waitUntil(lambda: pane.badge.state == "halted", timeout=WAIT_MS)
    assert "the remote lost 13 of the 13 files" in pane.state_label.text()
    assert pane.confirm_button.isVisible() and pane.restore_button.isVisible()
    assert not pane.resume_button.isEnabled()  # resuming would only halt again
    target = pane.confirm_button if button == "confirm" else pane.restore_button
    qtbot.mouseClick(target, Qt.MouseButton.LeftButton)
    if button == "confirm":
        qtbot.waitUntil(lambda: not (pair.local_root / "data").exists(), timeout=WAIT_MS)
    else:
        qtbot.waitUntil(reads(pair.remote_root / "data/f3.txt", "3"), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: pane.badge.state == "watching", timeout=WAIT_MS)
    assert not pane.confirm_button.isVisible()


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
