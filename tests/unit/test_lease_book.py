"""The lease book and a manager that takes the last service's leases back, in-process.

The contexts are the ``command`` kind over a state file (``tests/unit/test_state_machine.py``'s
``Cloud``), so starts and stops are real shell commands; holders are real processes. Two managers
on the same state dir stand for a service and the one started after it crashed.
"""

from __future__ import annotations

import json
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.test_state_machine import FAST, Cloud, _add, _wait_state
from workbench import osproc
from workbench.paths import Paths
from workbench.service.lease_book import BOOK_NAME, LeaseBook
from workbench.service.leases import Holder, Lease
from workbench.service.manager import Manager
from workbench.service.timing import Timing

WINDOW = 1.5  # the reconnect window of these managers


@pytest.fixture
def cloud(tmp_path: Path) -> Cloud:
    return Cloud(tmp_path / "cloud")


@pytest.fixture
def shell() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "300"])
    yield process
    process.kill()
    process.wait()


def _manager(paths: Paths, env: dict[str, str]) -> Manager:
    timing = Timing(**{**FAST.__dict__, "reconnect_window": WINDOW})
    return Manager(paths, env, timing=timing, pid_check_interval=0.1)


# -- the book ------------------------------------------------------------------------------------


def test_the_book_keeps_every_field_and_is_private(tmp_path: Path, shell: subprocess.Popen[bytes]):
    book = LeaseBook(tmp_path / "state" / BOOK_NAME)
    leases = [
        Lease("gpu", Holder.for_pid(shell.pid), "activate"),
        Lease("box", Holder.for_connection("c" * 32), "window", project="/home/u/proj"),
    ]
    book.save(leases)
    assert sorted(book.load(), key=lambda le: le.id) == sorted(leases, key=lambda le: le.id)
    assert stat.S_IMODE(book.path.stat().st_mode) == 0o600
    assert [p.name for p in book.path.parent.iterdir()] == [BOOK_NAME]  # no temporary left


def test_an_unreadable_book_is_set_aside_and_nothing_is_restored(tmp_path: Path):
    path = tmp_path / BOOK_NAME
    path.write_text('{"version": 1, "leases": [{"id": "x"')  # cut short
    assert LeaseBook(path).load() == []
    assert not path.exists()
    (aside,) = tmp_path.glob(f"{BOOK_NAME}.bad-*")
    assert aside.read_text().startswith('{"version": 1')


def test_a_bad_entry_is_skipped_and_the_others_kept(tmp_path: Path):
    good = Lease("gpu", Holder.for_connection("d" * 32), "window")
    path = tmp_path / BOOK_NAME
    LeaseBook(path).save([good])
    data = json.loads(path.read_text())
    data["leases"] += [
        {"id": "p1", "context": "gpu", "holder": {"kind": "pid", "pid": 1}},  # never ends
        {"id": "p2", "context": "gpu", "holder": {"kind": "telepathy"}, "purpose": ""},
        "not an object",
    ]
    path.write_text(json.dumps(data))
    assert LeaseBook(path).load() == [good]


# -- a manager after a crash -----------------------------------------------------------------


def test_a_live_holder_keeps_its_lease_across_managers_and_its_end_stops_the_machine(
    paths: Paths, wb_env: dict[str, str], cloud: Cloud, shell: subprocess.Popen[bytes]
):
    _add(paths, cloud.context("c1", grace=0))
    first = _manager(paths, wb_env)
    lease = first.acquire("c1", Holder.for_pid(shell.pid), "activate")
    _wait_state(first, "c1", "running")
    first.close()  # a service that goes (or crashed: the book was written at the acquire)
    second = _manager(paths, wb_env)
    try:
        second.restore()
        assert [le.id for le in second.leases()] == [lease.id]
        time.sleep(0.8)  # the grace period is 0: a forgotten lease would be stopping now
        assert _wait_state(second, "c1", "running").leases[0].id == lease.id
        assert cloud.calls() == ["start"]
        shell.kill()
        shell.wait()
        _wait_state(second, "c1", "stopped")
        assert cloud.calls() == ["start", "stop"]
        assert LeaseBook(paths.state_dir / BOOK_NAME).load() == []
    finally:
        second.close()


def test_a_holder_that_ended_meanwhile_is_finalized_then_released(
    paths: Paths, wb_env: dict[str, str], cloud: Cloud
):
    _add(paths, cloud.context("c1", grace=0))
    holder = subprocess.Popen(["sleep", "300"])
    first = _manager(paths, wb_env)
    lease = first.acquire("c1", Holder.for_pid(holder.pid), "project demo", project="/p/demo")
    _wait_state(first, "c1", "running")
    first.close()
    holder.kill()
    holder.wait()
    finalized: list[tuple[str, bool]] = []
    second = _manager(paths, wb_env)
    try:

        def adopt(restored: Lease) -> object:
            assert restored.project == "/p/demo"

            def finalizer(gone: Lease) -> None:
                # Runs before the lease goes: the machine is still held.
                finalized.append((gone.id, bool(second.machine("c1").leases)))

            return finalizer

        second.restore(adopt)  # type: ignore[arg-type]
        _wait_state(second, "c1", "stopped")
        assert finalized == [(lease.id, True)]
        assert second.leases() == []
    finally:
        second.close()


def test_a_recycled_pid_does_not_keep_a_lease(
    paths: Paths, wb_env: dict[str, str], cloud: Cloud, shell: subprocess.Popen[bytes]
):
    # The book names a running process, but one that started long after the lease was taken.
    _add(paths, cloud.context("c1", grace=0))
    started = osproc.process_start_time(shell.pid)
    assert started is not None
    impostor = Holder("pid", pid=shell.pid, start_time=started - 3600)
    LeaseBook(paths.state_dir / BOOK_NAME).save([Lease("c1", impostor, "activate")])
    manager = _manager(paths, wb_env)
    try:
        manager.restore()
        deadline = time.monotonic() + 5
        while manager.leases():
            assert time.monotonic() < deadline, "the lease of a recycled pid was kept"
            time.sleep(0.05)
        assert "start" not in cloud.calls()
    finally:
        manager.close()


def test_a_clients_lease_waits_dormant_then_wakes_when_the_client_comes_back(
    paths: Paths, wb_env: dict[str, str], cloud: Cloud
):
    _add(paths, cloud.context("c1", grace=0))
    client = "e" * 32
    LeaseBook(paths.state_dir / BOOK_NAME).save([Lease("c1", Holder.for_connection(client))])
    manager = _manager(paths, wb_env)
    try:
        manager.restore()
        time.sleep(0.5)
        snap = _wait_state(manager, "c1", "stopped")  # held, but not started for it
        assert [le.reconnecting for le in snap.leases] == [True]
        assert cloud.calls() == []
        _holder_id, held = manager.attach_client("conn1", client)
        assert [le.holder.connection for le in held] == [client]
        _wait_state(manager, "c1", "running")
        time.sleep(WINDOW + 0.5)  # the window has passed: a claimed lease stays
        assert manager.machine("c1").snapshot().state == "running"
        manager.drop_connection("conn1")  # its last connection closes: the lease ends
        _wait_state(manager, "c1", "stopped")
    finally:
        manager.close()


def test_a_client_that_does_not_come_back_loses_its_lease_after_the_window(
    paths: Paths, wb_env: dict[str, str], cloud: Cloud
):
    _add(paths, cloud.context("c1", grace=0))
    first = _manager(paths, wb_env)
    first.attach_client("conn1", "f" * 32)
    first.acquire("c1", Holder.for_connection(first.holder_id("conn1")), "window")
    _wait_state(first, "c1", "running")
    first.close()
    second = _manager(paths, wb_env)
    try:
        restored_at = time.monotonic()
        second.restore()
        _wait_state(second, "c1", "stopped", timeout=WINDOW + 5)
        assert time.monotonic() - restored_at >= WINDOW - 0.1
        assert cloud.calls() == ["start", "stop"]
    finally:
        second.close()


def test_a_holder_is_the_same_across_two_readings_of_its_start_time():
    one = Holder("pid", pid=4242, start_time=1000.0)
    assert one.same_as(Holder("pid", pid=4242, start_time=1000.4))
    assert not one.same_as(Holder("pid", pid=4242, start_time=1002.0))  # another process
    assert not one.same_as(Holder("pid", pid=4243, start_time=1000.0))
    assert Holder.for_connection("a" * 16).same_as(Holder.for_connection("a" * 16))
    assert not Holder.for_connection("a" * 16).same_as(one)


def test_leases_not_yet_taken_back_stay_in_the_book(
    paths: Paths, wb_env: dict[str, str], cloud: Cloud, shell: subprocess.Popen[bytes]
):
    _add(paths, cloud.context("c1", grace=0))
    _add(paths, cloud.context("c2", grace=0))
    kept = Lease("c1", Holder.for_pid(shell.pid), "activate")
    book = LeaseBook(paths.state_dir / BOOK_NAME)
    book.save([kept])
    manager = _manager(paths, wb_env)  # restore() not called yet
    try:
        manager.acquire("c2", Holder.for_pid(shell.pid), "another")
        assert kept.id in {lease.id for lease in book.load()}
    finally:
        manager.close()
