"""Property: random edits on both sides, synced now and then, converge and lose no version.

Every step is a create, edit, delete, rename or mode change on the laptop or the remote (a real
sshd on loopback), with sync cycles between. The checks after each sync: every file version that
differed from the last agreed state (a change not yet synced) still exists somewhere, at its
path or as a conflict copy; and at the end, once conflicts are settled, both trees are equal.

It runs twice: with full cycles (both trees scanned), and with incremental cycles fed the paths a
watcher would report (what a live session does between full scans: only those are planned).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_sync_fixtures import connect, tree
from tests.support.sshd import SshServer
from workbench.agent import install_agent
from workbench.ssh import SshConnection
from workbench.sync.engine import SyncEngine
from workbench.sync.local import LocalTree
from workbench.sync.manifest import stat_path
from workbench.sync.remote import RemoteTree
from workbench.sync.session import apply_request
from workbench.sync.state import StateStore
from workbench.sync.transport import ParamikoRunner

NAMES = ["a.txt", "b.txt", "d/c.txt", "d/e.txt", "ü名.txt"]
SIDES = ["local", "remote"]

op = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(SIDES), st.sampled_from(NAMES)),
    st.tuples(st.just("delete"), st.sampled_from(SIDES), st.sampled_from(NAMES)),
    st.tuples(st.just("rename"), st.sampled_from(SIDES), st.sampled_from(NAMES),
              st.sampled_from(NAMES)),
    st.tuples(st.just("chmod"), st.sampled_from(SIDES), st.sampled_from(NAMES)),
    st.tuples(st.just("sync")),
)  # fmt: skip


@pytest.fixture(scope="module")
def link(sshd: SshServer) -> Iterator[tuple[SshConnection, str, Path]]:
    folder = Path(tempfile.mkdtemp(prefix="wb-sync-prop-"))
    connection = connect(sshd, folder / "known_hosts")
    agent, _ = install_agent(connection, str(folder / "wbdir"))
    yield connection, agent.script_path, folder
    connection.close()
    shutil.rmtree(folder, ignore_errors=True)


def contents(root: Path) -> set[bytes]:
    return {v[1] for v in tree(root).values() if v[0] == "file"}  # type: ignore[index,misc]


def unsynced_versions(engine: SyncEngine, roots: dict[str, Path]) -> set[bytes]:
    """Contents on either side that differ from the agreed version at their path."""
    found: set[bytes] = set()
    for root in roots.values():
        for rel, value in tree(root).items():
            if value[0] != "file":  # type: ignore[index]
                continue
            data: bytes = value[1]  # type: ignore[index,misc]
            agreed = engine.state.base.get(rel)
            if agreed is None or agreed.digest != hashlib.sha256(data).hexdigest():
                found.add(data)
    return found


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(op, min_size=1, max_size=25))
@pytest.mark.parametrize("cycles", ["full", "incremental"])
def test_random_edits_converge_without_loss(
    link: tuple[SshConnection, str, Path], steps: list[tuple[str, ...]], cycles: str
) -> None:
    connection, agent_path, folder = link
    work = Path(tempfile.mkdtemp(dir=folder))
    roots = {"local": work / "laptop", "remote": work / "remote"}
    roots["local"].mkdir()
    runner = ParamikoRunner(connection)
    remote_tree = RemoteTree(runner, agent_path, str(roots["remote"]))
    engine = SyncEngine(LocalTree(roots["local"]), remote_tree, StateStore(work / "state"))
    counter = itertools.count()
    try:
        # Start from a synced tree so deletions and conflicts have something to act on.
        for name in NAMES[:3]:
            path = roots["local"] / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f"seed {name}".encode())
        engine.cycle(full=True)

        seen: dict[str, set[str]] = {"local": set(), "remote": set()}

        def saw(side: str, name: str) -> None:
            """What a watcher reports: the path and the folders above it."""
            parts = name.split("/")
            seen[side].update("/".join(parts[: i + 1]) for i in range(len(parts)))

        def cycle() -> None:
            if cycles == "full":
                report = engine.cycle(full=True)
            else:
                engine.update_remote(
                    [(p, stat_path(roots["remote"], p)) for p in sorted(seen["remote"])]
                )
                engine.refresh_local(seen["local"])
                seen["local"].clear()
                seen["remote"].clear()
                report = engine.cycle(full=False)
            if report.halted:
                # Random deletions can take most of a small tree: sync halts and asks, and
                # the user says yes (what a confirmation does is part of the property).
                assert "nvwb sync confirm-deletions" in report.halted
                apply_request(engine.state, {"kind": "confirm-deletions"})
                report = engine.cycle(full=True)
                assert report.halted is None, report.halted

        def sync() -> None:
            must_survive = unsynced_versions(engine, roots)
            for _ in range(2):  # the second carries conflict copies across
                cycle()
            kept = contents(roots["local"]) | contents(roots["remote"])
            lost = must_survive - kept
            assert not lost, f"versions lost: {lost}"

        for step in steps:
            kind = step[0]
            if kind == "sync":
                sync()
                continue
            root = roots[step[1]]
            path = root / step[2]
            saw(step[1], step[2])
            if kind == "rename":
                saw(step[1], step[3])
            if kind == "write":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(f"{step[1]} v{next(counter)}".encode())
                st_ = path.stat()
                os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + next(counter)))
            elif kind == "delete" and path.exists():
                path.unlink()
            elif kind == "rename" and path.exists():
                target = root / step[3]
                target.parent.mkdir(parents=True, exist_ok=True)
                path.rename(target)
            elif kind == "chmod" and path.exists():
                path.chmod(path.stat().st_mode ^ 0o100)
        sync()
        for conflict in list(engine.state.conflicts):
            apply_request(engine.state, {"path": conflict, "keep": "both"})
        for _ in range(3):
            cycle()
        assert not engine.state.conflicts
        assert tree(roots["local"]) == tree(roots["remote"])
    finally:
        remote_tree.close()
        shutil.rmtree(work, ignore_errors=True)
