"""The halt: a side that lost most of what both sides agreed on stops sync until a person says.

A wiped volume, an unmounted disk, a failed checkout: most agreed files are gone from one side.
Propagating that would delete them on the other side too, so sync halts, whatever else appeared
on the emptied side (a ``nohup.out``, an empty folder left behind), and whether the loss shows in
one full scan or arrives as a stream of watcher events. The message says which side, how many,
and the two ways on: ``nvwb sync confirm-deletions`` (they go on the other side too) or ``nvwb
sync restore`` (they are copied back from the other side). Both work with the session running
and with none (they then apply when it next starts). Real sshd, real files.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_sync_fixtures import Pair, pair, tree, write
from tests.integration.test_sync_session import until
from workbench.cli.commands import sync as sync_cli
from workbench.cli.invocation import Invocation
from workbench.cli.output import render
from workbench.errors import ConflictError, UsageError
from workbench.sync.engine import SyncEngine
from workbench.sync.local import LocalTree
from workbench.sync.manifest import stat_path
from workbench.sync.remote import RemoteTree
from workbench.sync.session import SessionOptions, SyncSession, session_folder
from workbench.sync.state import StateStore

__all__ = ["pair"]

FILES = 30  # in data/, beside train.py and the spec: AGREED files in all
AGREED = FILES + 2
SPEC = "specVersion: v2\nmeta:\n  name: demo\n"


def files_under(root: Path) -> list[str]:
    """The files below ``root`` (names only: sync may be deleting them meanwhile)."""
    return sorted(
        (Path(folder) / name).relative_to(root).as_posix()
        for folder, _, names in os.walk(root)
        for name in names
    )


def engine_for(pair: Pair) -> SyncEngine:
    """A fresh engine on the pair, keeping its state where a session would (so that the CLI
    finds it, as it finds a session that is not running)."""
    folder = session_folder(
        pair.state_dir, pair.local_root, pair.connection.target.display(), str(pair.remote_root)
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "session.json").write_text(
        json.dumps(
            {
                "project_dir": os.path.realpath(pair.local_root),
                "remote": pair.connection.target.display(),
                "context": pair.connection.context,
                "remote_root": str(pair.remote_root),
            }
        )
    )
    remote = RemoteTree(pair.runner, pair.agent_path, str(pair.remote_root))
    return SyncEngine(LocalTree(pair.local_root), remote, StateStore(folder))


def seeded(pair: Pair) -> SyncEngine:
    """An engine whose two sides agree on ``FILES`` files in ``data/`` and a ``train.py``."""
    engine = engine_for(pair)
    for i in range(FILES):
        write(pair.local_root / f"data/f{i:02d}.txt", f"sample {i}")
    write(pair.local_root / "train.py", "print('train')")
    write(pair.local_root / ".project/spec.yaml", SPEC)  # the CLI finds the project by it
    report = engine.cycle(full=True)
    assert report.halted is None and not report.problems
    assert len(files_under(pair.remote_root)) == AGREED
    return engine


def cli(pair: Pair, handler: str, **args: Any) -> dict[str, Any]:
    namespace = argparse.Namespace(
        project=str(pair.local_root), context=None, output="json", **args
    )
    out = io.StringIO()
    inv = Invocation(
        args=namespace,
        env={
            "NVWB_STATE_DIR": str(pair.state_dir),
            "NVWB_RUNTIME_DIR": str(pair.state_dir / "run"),  # no service runs there
            "HOME": str(pair.state_dir),
        },
        stdin=io.StringIO(),
        stdout=out,
        stderr=io.StringIO(),
        cwd=pair.local_root,
    )
    result = getattr(sync_cli, handler)(inv)
    render(result, "json", out)
    data: dict[str, Any] = json.loads(out.getvalue())
    return data


def wipe_remote(pair: Pair, left: str) -> None:
    for child in pair.remote_root.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    if left == "a new file":
        write(pair.remote_root / "nohup.out", "nohup: ignoring input")
    elif left == "a folder":
        (pair.remote_root / "data").mkdir()


@pytest.mark.parametrize("left", ["nothing", "a new file", "a folder"])
def test_a_wiped_side_halts_whatever_else_appeared_there(pair: Pair, left: str) -> None:
    engine = seeded(pair)
    wipe_remote(pair, left)
    report = engine.cycle(full=True)
    assert report.halted, report.changes
    message = report.halted
    assert f"the remote lost {AGREED} of the {AGREED} files" in message
    assert "nvwb sync confirm-deletions" in message and "nvwb sync restore" in message
    assert len(files_under(pair.local_root)) == AGREED  # nothing deleted here
    # It stays halted: the same cycle again deletes nothing either.
    assert engine.cycle(full=True).halted
    assert len(files_under(pair.local_root)) == AGREED


def test_a_laptop_that_lost_most_files_halts_too(pair: Pair) -> None:
    """A failed checkout on the laptop: 20 of 32 gone, 12 left, a lock file new."""
    engine = seeded(pair)
    for i in range(20):
        (pair.local_root / f"data/f{i:02d}.txt").unlink()
    write(pair.local_root / "index.lock", "x")
    report = engine.cycle(full=True)
    assert report.halted and f"the laptop lost 20 of the {AGREED} files" in report.halted
    assert len(files_under(pair.remote_root)) == AGREED


def test_a_few_deletions_just_sync(pair: Pair) -> None:
    engine = seeded(pair)
    for i in range(5):
        (pair.remote_root / f"data/f{i:02d}.txt").unlink()
    report = engine.cycle(full=True)
    assert report.halted is None
    assert len(files_under(pair.local_root)) == AGREED - 5


def test_a_loss_arriving_in_small_batches_still_halts(pair: Pair) -> None:
    """A wipe seen as a stream of watcher events: each batch alone is a small share, so the
    rule counts what the same side lost in the last minute together."""
    engine = seeded(pair)
    halted = None
    for start in range(0, FILES, 6):
        gone = [f"data/f{i:02d}.txt" for i in range(start, min(start + 6, FILES))]
        for path in gone:
            (pair.remote_root / path).unlink()
        engine.update_remote([(p, stat_path(pair.remote_root, p)) for p in gone])
        report = engine.cycle(full=False)
        if report.halted:
            halted = report.halted
            break
    assert halted is not None and "the remote lost" in halted
    assert len(files_under(pair.local_root)) > AGREED // 2  # most are still here


def test_confirming_lets_the_deletions_go(pair: Pair) -> None:
    engine = seeded(pair)
    wipe_remote(pair, "a new file")
    assert engine.cycle(full=True).halted
    handle_state = engine.state
    assert handle_state.halt is not None and handle_state.halt["side"] == "remote"
    status = cli(pair, "status")  # no session runs: the stored halt still says how to go on
    assert status["state"] == "stopped" and "nvwb sync confirm-deletions" in status["message"]
    done = cli(pair, "confirm_deletions")  # no session runs: it applies to the stored state
    assert done["how"] == "applied"
    fresh = engine_for(pair)
    report = fresh.cycle(full=True)
    assert report.halted is None
    fresh.cycle(full=True)
    assert files_under(pair.local_root) == ["nohup.out"]
    assert tree(pair.local_root) == tree(pair.remote_root)
    assert fresh.state.halt is None and fresh.state.allow_loss == {}  # spent


def test_confirming_covers_only_the_loss_that_was_shown(pair: Pair) -> None:
    """A confirmation is for the halt it answers: if the side then lost more (another disk
    went), sync halts again rather than delete what nobody confirmed."""
    engine = seeded(pair)
    for i in range(20):
        (pair.remote_root / f"data/f{i:02d}.txt").unlink()
    assert engine.cycle(full=True).halted
    cli(pair, "confirm_deletions")
    for i in range(20, FILES):
        (pair.remote_root / f"data/f{i:02d}.txt").unlink()
    report = engine_for(pair).cycle(full=True)
    assert report.halted and f"the remote lost {FILES} of the {AGREED}" in report.halted
    assert len(files_under(pair.local_root)) == AGREED


def test_restore_copies_the_lost_files_back(pair: Pair) -> None:
    engine = seeded(pair)
    wipe_remote(pair, "a folder")
    assert engine.cycle(full=True).halted
    assert cli(pair, "restore")["how"] == "applied"
    fresh = engine_for(pair)
    assert fresh.cycle(full=True).halted is None
    assert tree(pair.local_root) == tree(pair.remote_root)
    assert len(files_under(pair.remote_root)) == AGREED


def test_restore_after_the_remote_folder_itself_went(pair: Pair) -> None:
    engine = seeded(pair)
    shutil.rmtree(pair.remote_root)
    report = engine_for(pair).cycle(full=True)
    assert report.halted and "nvwb sync restore" in report.halted
    cli(pair, "restore")
    assert engine_for(pair).cycle(full=True).halted is None
    assert tree(pair.local_root) == tree(pair.remote_root)
    del engine


def test_confirming_with_nothing_halted_is_refused(pair: Pair) -> None:
    seeded(pair)
    with pytest.raises(UsageError) as caught:
        cli(pair, "confirm_deletions")
    assert "not halted" in caught.value.message


@pytest.fixture
def live(pair: Pair) -> Iterator[SyncSession]:
    session = SyncSession(
        pair.local_root,
        str(pair.remote_root),
        pair.connection,
        pair.state_dir,
        agent_path=pair.agent_path,
        options=SessionOptions(prefer_openssh=False),
    )
    yield session
    session.stop()


@pytest.mark.parametrize("how", ["confirm_deletions", "restore"])
def test_a_running_session_halts_the_cli_shows_it_and_its_host_settles_it(
    pair: Pair, live: SyncSession, how: str
) -> None:
    """The session runs in the test (``nvwb sync`` through the service is in
    ``test_service_projects.py``): the CLI reads the halt, and refuses to settle a session it
    cannot reach; the session's own ``settle_halt`` (what the service calls) settles it."""
    seeded(pair)
    live.start()
    live.sync_now(60)
    wipe_remote(pair, "a new file")
    until(lambda: cli(pair, "status")["state"] == "halted", 30)  # status.json caught up
    status = cli(pair, "status")
    assert status["state"] == "halted" and "nvwb sync confirm-deletions" in status["message"]
    assert status["halt"]["side"] == "remote" and status["halt"]["lost"] == AGREED
    assert len(files_under(pair.local_root)) == AGREED
    with pytest.raises(ConflictError):
        cli(pair, how)
    assert live.status()["state"] == "halted"  # refused: nothing changed
    live.settle_halt(how.replace("_", "-"))
    if how == "confirm_deletions":
        until(lambda: files_under(pair.local_root) == ["nohup.out"], 30)
    else:
        until(lambda: len(files_under(pair.remote_root)) == AGREED + 1, 30)
    until(lambda: live.status()["state"] == "watching", 30)
    assert live.wait_idle(10)
    assert tree(pair.local_root) == tree(pair.remote_root)
