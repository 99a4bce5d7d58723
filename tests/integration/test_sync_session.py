"""A live sync session over a real sshd: watchers both ways, conflicts, CLI handlers, faults.

The sessions here run in the test, not in the Workbench service: ``nvwb sync`` reads them (their
saved state and ``status.json``) but never edits the state of a session it cannot reach. Steering
a session the service runs is tested in ``test_service_projects.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_sync_fixtures import Pair, make_pair, pair, tree, write
from tests.support.sshd import SshServer
from workbench.cli.commands import sync as sync_cli
from workbench.cli.invocation import Invocation
from workbench.cli.output import render
from workbench.errors import ConflictError
from workbench.sync.session import SessionOptions, SyncSession

__all__ = ["pair"]

SPEC = "specVersion: v2\nmeta:\n  name: demo\n"


def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def reads(path: Path, text: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return path.read_text() == text
        except OSError:
            return False

    return check


@pytest.fixture
def session(pair: Pair) -> Iterator[tuple[SyncSession, list[tuple[str, dict[str, Any]]]]]:
    write(pair.local_root / ".project/spec.yaml", SPEC)
    events: list[tuple[str, dict[str, Any]]] = []
    live = SyncSession(
        pair.local_root,
        str(pair.remote_root),
        pair.connection,
        pair.state_dir,
        agent_path=pair.agent_path,
        on_event=lambda kind, data: events.append((kind, data)),
        options=SessionOptions(prefer_openssh=False),
    )
    live.start()
    yield live, events
    live.stop()


def cli(pair: Pair, handler: str, **args: Any) -> tuple[int, Any]:
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
    return result.exit_code, json.loads(out.getvalue())


def test_first_sync_reports_progress_then_edits_flow_both_ways(
    pair: Pair, session: tuple[SyncSession, list[tuple[str, dict[str, Any]]]]
) -> None:
    live, events = session
    live.sync_now(60)
    progress = [d for k, d in events if k == "progress" and d.get("first")]
    assert progress and progress[-1]["done_files"] == progress[-1]["files"] >= 1
    write(pair.local_root / "code/train.py", "print('laptop')")
    until(reads(pair.remote_root / "code/train.py", "print('laptop')"))
    write(pair.remote_root / "outputs/metrics.json", '{"loss": 0.1}')
    until(reads(pair.local_root / "outputs/metrics.json", '{"loss": 0.1}'))
    (pair.local_root / "code/train.py").rename(pair.local_root / "code/main.py")
    until(
        lambda: (
            (pair.remote_root / "code/main.py").exists()
            and not (pair.remote_root / "code/train.py").exists()
        )
    )
    (pair.remote_root / "outputs/metrics.json").unlink()
    until(lambda: not (pair.local_root / "outputs/metrics.json").exists())
    assert live.wait_idle(10)
    assert tree(pair.local_root) == tree(pair.remote_root)
    assert live.status()["state"] == "watching"


def test_conflict_through_the_cli(
    pair: Pair, session: tuple[SyncSession, list[tuple[str, dict[str, Any]]]]
) -> None:
    live, _ = session
    write(pair.local_root / "nb.ipynb", "base")
    live.sync_now(60)
    until(reads(pair.remote_root / "nb.ipynb", "base"))
    live.pause()
    write(pair.local_root / "nb.ipynb", "laptop")
    write(pair.remote_root / "nb.ipynb", "remote!")
    code, paused = cli(pair, "status")
    assert code == 0 and paused["state"] == "paused"
    assert paused["waiting"] == [] and paused["waiting_text"] == "none"  # nothing held back
    live.resume()
    until(lambda: live.status()["conflicts"] == 1)
    code, rows = cli(pair, "conflicts")
    assert [r["path"] for r in rows] == ["nb.ipynb"]
    copy = rows[0]["remote_copy"]
    until(reads(pair.remote_root / copy, "remote!"))
    # A session no service runs cannot be asked: its state is not edited behind its back.
    with pytest.raises(ConflictError) as refused:
        cli(pair, "resolve", path="nb.ipynb", keep="remote")
    assert "cannot reach" in refused.value.message
    assert [r["path"] for r in cli(pair, "conflicts")[1]] == ["nb.ipynb"]  # nothing changed
    live.resolve("nb.ipynb", "remote")
    until(reads(pair.local_root / "nb.ipynb", "remote!"))
    until(lambda: not (pair.local_root / copy).exists() and not (pair.remote_root / copy).exists())
    until(lambda: cli(pair, "conflicts")[1] == [])


def test_cli_pause_of_a_session_it_cannot_reach_is_refused_and_changes_nothing(
    pair: Pair, session: tuple[SyncSession, list[tuple[str, dict[str, Any]]]]
) -> None:
    live, _ = session
    live.sync_now(60)
    with pytest.raises(ConflictError) as refused:
        cli(pair, "pause")
    assert "runs in a process this command cannot reach" in refused.value.message
    assert not (live.folder / "requests").exists()  # no request left for it to find
    assert live.status()["state"] != "paused"
    write(pair.local_root / "while-running.txt", "x")
    until(reads(pair.remote_root / "while-running.txt", "x"))  # it still syncs


def test_session_survives_a_killed_sshd(tmp_path: Path, fresh_sshd: SshServer) -> None:
    p = make_pair(tmp_path, fresh_sshd)
    states: list[str] = []
    live = SyncSession(
        p.local_root,
        str(p.remote_root),
        p.connection,
        p.state_dir,
        agent_path=p.agent_path,
        on_event=lambda k, d: states.append(d["state"]) if k == "state" else None,
        options=SessionOptions(prefer_openssh=False, retry_max=1.0),
    )
    try:
        live.start()
        live.sync_now(60)
        fresh_sshd.kill()
        write(p.local_root / "during-outage.txt", "written offline")
        until(lambda: "disconnected" in states, 30)
        fresh_sshd.start()
        until(reads(p.remote_root / "during-outage.txt", "written offline"), 60)
        write(p.remote_root / "after.txt", "back")
        until(reads(p.local_root / "after.txt", "back"), 30)
    finally:
        live.stop()
        p.runner.close()
        p.connection.close()


def test_incremental_cycles_alone_converge_on_a_mixed_sequence(
    pair: Pair, session: tuple[SyncSession, list[tuple[str, dict[str, Any]]]]
) -> None:
    """After the first sync, watcher-driven cycles plan only the paths that changed: a sequence
    of edits on both sides (files, folders with content, moves, a conflict) still converges,
    and none of it needs a full rescan."""
    live, events = session
    for i in range(40):
        write(pair.local_root / f"src/m{i % 4}/f{i}.py", f"v1 {i}")
    live.sync_now(60)
    seen_before = len(events)

    def converged() -> bool:
        return live.wait_idle(0.2) and tree(pair.local_root) == tree(pair.remote_root)

    write(pair.local_root / "src/m0/f0.py", "v2 laptop")  # an edit
    write(pair.remote_root / "src/m1/f1.py", "v2 remote")  # an edit on the other side
    write(pair.remote_root / "notes/new.md", "made on the remote")  # a new folder
    until(converged, 30)
    (pair.local_root / "src/m2").rename(pair.local_root / "src/moved")  # a folder moved
    (pair.remote_root / "src/m3/f3.py").unlink()  # a delete
    until(converged, 30)
    for child in (pair.remote_root / "notes").iterdir():
        child.unlink()
    (pair.remote_root / "notes").rmdir()  # a folder with content, gone
    (pair.local_root / "src/moved/f2.py").chmod(0o755)  # an exec bit
    until(converged, 30)
    live.pause()
    write(pair.local_root / "src/m0/f4.py", "laptop side")
    write(pair.remote_root / "src/m0/f4.py", "remote side!")
    live.resume()  # a resume rescans in full: the conflict needs both sides' news
    until(lambda: live.status()["conflicts"] == 1, 30)

    def in_step_but_the_conflict() -> bool:
        # Each side keeps its own version at the conflicted path; everything else, including
        # both conflict copies (carried across by an incremental cycle), is the same.
        if not live.wait_idle(0.2):
            return False
        here, there = tree(pair.local_root), tree(pair.remote_root)
        copies = [p for p in here if ".conflict-" in p]
        return len(copies) == 2 and {k: v for k, v in here.items() if k != "src/m0/f4.py"} == {
            k: v for k, v in there.items() if k != "src/m0/f4.py"
        }

    until(in_step_but_the_conflict, 30)
    assert (pair.local_root / "src/moved/f2.py").read_text() == "v1 2"
    assert not (pair.local_root / "notes").exists()
    assert not (pair.local_root / "src/m3/f3.py").exists()
    cycles = [data for kind, data in events[seen_before:] if kind == "cycle"]
    fulls = [data["full_reason"] for data in cycles if data["full"]]
    assert fulls == ["resume"], cycles  # the resume's, and no other


@pytest.mark.parametrize("side", ["local", "remote"])
def test_a_file_still_being_written_is_retried_without_a_full_rescan(
    pair: Pair, session: tuple[SyncSession, list[tuple[str, dict[str, Any]]]], side: str
) -> None:
    """A log growing while cycles run changes under the transfers: those paths are read again
    and planned by the next incremental cycle, never by rescanning the whole tree, and the
    file arrives whole once it stops growing."""
    live, events = session
    for i in range(20):
        write(pair.local_root / f"src/f{i}.py", f"{i}")
    live.sync_now(60)
    seen_before = len(events)
    root = pair.local_root if side == "local" else pair.remote_root
    other = pair.remote_root if side == "local" else pair.local_root
    chunk = bytes(range(256)) * 800  # 200 KiB
    with open(root / "train.log", "wb") as log:
        for _ in range(30):
            log.write(chunk)
            log.flush()
            time.sleep(0.05)
    until(lambda: live.wait_idle(0.2) and tree(pair.local_root) == tree(pair.remote_root), 30)
    assert (other / "train.log").read_bytes() == chunk * 30
    assert live.status()["waiting"] == []  # no hold outlived the file's last change
    cycles = [data for kind, data in events[seen_before:] if kind == "cycle"]
    assert [data["full_reason"] for data in cycles if data["full"]] == [], cycles
    assert any(data["retry"] == ["train.log"] for data in cycles), cycles
