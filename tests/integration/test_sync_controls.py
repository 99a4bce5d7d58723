"""The engine's own controls (pause, resume, disconnect), against a real sshd and agent: what
the live session asks of it instead of writing its fields."""

from __future__ import annotations

from tests.integration.test_sync_fixtures import Pair, pair, write
from workbench.sync.state import StateStore

__all__ = ["pair"]  # a fixture, used by name


def test_pause_and_resume_are_kept_in_the_agreed_state(pair: Pair) -> None:
    engine = pair.engine()
    engine.pause()
    assert engine.paused and StateStore(pair.state_dir).load().paused
    assert pair.engine().paused  # a new engine (a restarted session) starts paused
    engine.resume()
    assert not engine.paused and not StateStore(pair.state_dir).load().paused


def test_disconnect_closes_the_remote_and_the_next_cycle_scans_in_full(pair: Pair) -> None:
    write(pair.local_root / "a.txt", "one\n")
    engine = pair.engine()
    assert engine.cycle().full
    assert not engine.cycle().full  # scanned: an incremental cycle is enough
    engine.disconnect()
    assert engine.remote._server is None  # the agent's serve process is gone
    write(pair.local_root / "b.txt", "two\n")  # no watcher here: only a full scan finds it
    report = engine.cycle()
    assert report.full and (pair.remote_root / "b.txt").read_text() == "two\n"
