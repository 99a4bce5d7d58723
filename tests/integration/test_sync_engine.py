"""Sync cycles against a real sshd: every operation from each side, conflicts, refusals, faults."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_sync_fixtures import Pair, make_pair, pair, tree, write
from tests.support.capabilities import without_file_read_override
from tests.support.sshd import SshServer
from workbench.errors import ContextError
from workbench.sync.engine import HOLD_FIRST, HOLD_MAX
from workbench.sync.session import apply_request

__all__ = ["pair"]


def synced(p: Pair) -> None:
    assert tree(p.local_root) == tree(p.remote_root)


@pytest.mark.parametrize("origin", ["local", "remote"])
def test_every_operation_propagates_from_each_side(pair: Pair, origin: str) -> None:
    engine = pair.engine()
    src = pair.local_root if origin == "local" else pair.remote_root
    dst = pair.remote_root if origin == "local" else pair.local_root
    pair.remote_root.mkdir(parents=True, exist_ok=True)
    write(pair.local_root / "keep.txt", "base")
    engine.cycle(full=True)

    write(src / "new.txt", "created")
    write(src / "deep/er/file.bin", bytes(range(256)) * 10)
    write(src / "ünïcödé 名前.txt", "non-ascii")
    os.symlink("keep.txt", src / "link")
    (src / "empty").mkdir()
    report = engine.cycle(full=True)
    assert not report.problems and not report.halted
    synced(pair)
    assert os.readlink(dst / "link") == "keep.txt"

    write(src / "new.txt", "modified", mtime_offset=1000)
    (src / "deep/er/file.bin").rename(src / "deep/renamed.bin")
    (src / "keep.txt").chmod(0o755)
    (src / "link").unlink()
    os.symlink("new.txt", src / "link")
    (src / "empty").rmdir()
    engine.cycle(full=True)
    synced(pair)
    assert (dst / "new.txt").read_text() == "modified"
    assert os.access(dst / "keep.txt", os.X_OK)
    assert not (dst / "empty").exists()
    assert os.readlink(dst / "link") == "new.txt"

    (src / "keep.txt").chmod(0o644)
    (src / "deep/renamed.bin").unlink()
    (src / "deep/er").rmdir()
    engine.cycle(full=True)
    synced(pair)
    assert not os.access(dst / "keep.txt", os.X_OK)
    assert not (dst / "deep/er").exists()
    assert engine.cycle(full=True).changes == {}


def test_mtime_only_change_is_not_an_edit(pair: Pair) -> None:
    engine = pair.engine()
    write(pair.local_root / "a.txt", "same")
    engine.cycle(full=True)
    st = (pair.local_root / "a.txt").stat()
    os.utime(pair.local_root / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    write(pair.remote_root / "a.txt", "remote edit")
    report = engine.cycle(full=True)
    assert report.new_conflicts == []
    assert (pair.local_root / "a.txt").read_text() == "remote edit"


def test_both_sides_same_edit_is_agreement(pair: Pair) -> None:
    engine = pair.engine()
    write(pair.local_root / "a.txt", "one")
    write(pair.remote_root / "a.txt", "one")
    report = engine.cycle(full=True)
    assert report.changes == {} and "a.txt" in engine.state.base


def test_conflict_keeps_both_versions_and_resolves(pair: Pair) -> None:
    engine = pair.engine()
    write(pair.local_root / "notes.md", "base")
    engine.cycle(full=True)
    write(pair.local_root / "notes.md", "laptop edit")
    write(pair.remote_root / "notes.md", "remote edit!")
    report = engine.cycle(full=True)
    assert report.new_conflicts == ["notes.md"]
    engine.cycle(full=True)  # the conflict copies cross over
    conflict = engine.state.conflicts["notes.md"]
    for root in (pair.local_root, pair.remote_root):
        assert (root / conflict.remote_copy).read_text() == "remote edit!"
        assert (root / conflict.local_copy).read_text() == "laptop edit"
    assert (pair.local_root / "notes.md").read_text() == "laptop edit"
    assert (pair.remote_root / "notes.md").read_text() == "remote edit!"
    # Further edits to a conflicted path wait for the user.
    write(pair.local_root / "notes.md", "laptop edit 2")
    engine.cycle(full=True)
    assert (pair.remote_root / "notes.md").read_text() == "remote edit!"

    apply_request(engine.state, {"path": "notes.md", "keep": "both"})
    engine.cycle(full=True)
    engine.cycle(full=True)
    synced(pair)
    assert (pair.remote_root / "notes.md").read_text() == "laptop edit 2"
    assert (pair.remote_root / conflict.remote_copy).read_text() == "remote edit!"
    assert not (pair.remote_root / conflict.local_copy).exists()
    assert not engine.state.conflicts


@pytest.mark.parametrize("keep", ["local", "remote"])
def test_resolve_keep_one_side_removes_the_copies(pair: Pair, keep: str) -> None:
    engine = pair.engine()
    write(pair.local_root / "x.txt", "base")
    engine.cycle(full=True)
    write(pair.local_root / "x.txt", "L")
    write(pair.remote_root / "x.txt", "RR")
    engine.cycle(full=True)
    engine.cycle(full=True)
    apply_request(engine.state, {"path": "x.txt", "keep": keep})
    engine.cycle(full=True)
    engine.cycle(full=True)
    synced(pair)
    assert (pair.local_root / "x.txt").read_text() == ("L" if keep == "local" else "RR")
    assert sorted(p.name for p in pair.local_root.iterdir()) == ["x.txt"]


def test_edit_beats_delete_on_either_side(pair: Pair) -> None:
    engine = pair.engine()
    write(pair.local_root / "dir/a.txt", "base")
    write(pair.local_root / "b.txt", "base")
    engine.cycle(full=True)
    # The laptop deletes the folder; the remote edits a file inside it.
    (pair.local_root / "dir/a.txt").unlink()
    (pair.local_root / "dir").rmdir()
    write(pair.remote_root / "dir/a.txt", "remote edit")
    # The remote deletes a file the laptop edits.
    (pair.remote_root / "b.txt").unlink()
    write(pair.local_root / "b.txt", "laptop edit")
    engine.cycle(full=True)
    synced(pair)
    assert (pair.local_root / "dir/a.txt").read_text() == "remote edit"
    assert (pair.remote_root / "b.txt").read_text() == "laptop edit"


def test_emptied_side_halts_instead_of_deleting_everything(pair: Pair) -> None:
    engine = pair.engine()
    for i in range(5):
        write(pair.local_root / f"f{i}.txt", str(i))
    engine.cycle(full=True)
    for i in range(5):
        (pair.remote_root / f"f{i}.txt").unlink()
    report = engine.cycle(full=True)
    assert report.halted and "halted" in report.halted
    assert len(list(pair.local_root.iterdir())) == 5


def test_missing_remote_root_halts_after_a_first_sync(pair: Pair) -> None:
    engine = pair.engine()
    write(pair.local_root / "a.txt", "a")
    engine.cycle(full=True)
    (pair.remote_root / "a.txt").unlink()
    pair.remote_root.rmdir()
    fresh = pair.engine()
    report = fresh.cycle(full=True)
    assert report.halted and "sync root" in report.halted
    assert (pair.local_root / "a.txt").exists()


def test_ignored_paths_stay_put(pair: Pair) -> None:
    engine = pair.engine(remote_only=["data"])
    write(pair.local_root / ".gitignore", "*.log\n!keep.log\n")
    write(pair.local_root / "sub/.workbenchignore", "secret/\n")
    write(pair.local_root / "x.log", "ignored")
    write(pair.local_root / "keep.log", "kept")
    write(pair.local_root / "sub/secret/s.txt", "ignored")
    write(pair.local_root / "sub/ok.txt", "kept")
    write(pair.local_root / "__pycache__/m.pyc", "ignored")
    write(pair.local_root / ".git/HEAD", "ignored")
    pair.remote_root.mkdir(parents=True)
    write(pair.remote_root / "data/big.bin", "remote only")
    write(pair.remote_root / "out.log", "remote log")
    engine.cycle(full=True)
    remote = set(tree(pair.remote_root))
    assert {"keep.log", "sub/ok.txt", ".gitignore", "sub/.workbenchignore"} <= remote
    assert not remote & {"x.log", "sub/secret/s.txt", "__pycache__/m.pyc", ".git/HEAD"}
    assert not (pair.local_root / "data").exists()
    assert not (pair.local_root / "out.log").exists()


def test_symlinks_are_never_followed_out_of_the_root(pair: Pair, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    engine = pair.engine()
    os.symlink(str(outside), pair.local_root / "escape")
    engine.cycle(full=True)
    assert os.readlink(pair.remote_root / "escape") == str(outside)
    # A file that would land under the link is refused rather than written outside.
    write(pair.remote_root / "escape-real/x", "x")
    results = engine.local.apply_ops([{"op": "mkdir", "path": "escape/inside", "expect": None}])
    assert not results[0].ok and "not a folder" in results[0].error
    assert list(outside.iterdir()) == []
    results = engine.remote.apply_ops([{"op": "delete", "path": "../x", "expect": None}])
    assert not results[0].ok and "leave the root" in results[0].error
    # Reading a path again (after a transfer found it changed) never looks through the link.
    write(outside / "seen.txt", "outside")
    results = engine.remote.apply_ops([{"op": "stat", "path": "escape/seen.txt", "expect": None}])
    assert not results[0].ok and results[0].entry is None


def test_names_differing_only_by_case_are_reported(pair: Pair) -> None:
    engine = pair.engine()
    write(pair.local_root / "Readme.md", "a")
    write(pair.local_root / "README.md", "b")
    report = engine.cycle(full=True)
    assert any("differ only by case" in p.message for p in report.problems)
    synced(pair)


@pytest.mark.parametrize("size", [6, 3 << 20], ids=["inline", "stream"])
def test_unreadable_file_is_reported_the_rest_syncs_and_nothing_is_deleted(
    pair: Pair, size: int
) -> None:
    """A file this machine may not read (mode 000; as root, with the override dropped): a
    problem in the report, the rest syncs, nothing is taken for deleted; once readable, it goes."""
    engine = pair.engine()
    data = os.urandom(size)
    write(pair.local_root / "locked.bin", data).chmod(0)
    write(pair.local_root / "open.txt", "fine")
    with without_file_read_override():
        report = engine.cycle(full=True)
    problems = [p for p in report.problems if p.path == "locked.bin"]
    assert problems and "permission denied" in problems[0].message, report.problems
    assert (pair.remote_root / "open.txt").read_text() == "fine"
    assert not (pair.remote_root / "locked.bin").exists()
    assert [n for n in os.listdir(pair.remote_root) if n.startswith(".wbsync-")] == []
    assert (pair.local_root / "locked.bin").read_bytes() == data  # root may still look
    with without_file_read_override():
        again = engine.cycle(full=True)  # still unreadable: reported again, nothing deleted
    assert any(p.path == "locked.bin" for p in again.problems)
    assert (pair.local_root / "locked.bin").exists()
    (pair.local_root / "locked.bin").chmod(0o644)
    engine.cycle(full=True)
    assert (pair.remote_root / "locked.bin").read_bytes() == data
    synced(pair)


def test_file_changing_while_sent_is_retried_never_half_applied(pair: Pair) -> None:
    engine = pair.engine()
    big = write(pair.local_root / "growing.bin", os.urandom(4 << 20))
    write(pair.local_root / "other.txt", "other")

    def change(_plan: object) -> None:
        with open(big, "ab") as fh:
            fh.write(b"more")

    report = engine.cycle(full=True, on_plan=change)
    assert report.retry == ["growing.bin"]
    assert not (pair.remote_root / "growing.bin").exists()
    assert (pair.remote_root / "other.txt").read_text() == "other"
    # Incremental: the engine read growing.bin again, no rescan needed. It waits a moment (it
    # may still be growing), longer each time it changes under a transfer again.
    report = engine.cycle()
    assert not report.full and report.held == ["growing.bin"] and report.files_sent == 0
    assert report.held_until is not None and report.held_until > time.time()
    report = engine.cycle(on_plan=change, now=lambda: time.time() + HOLD_FIRST)
    assert report.retry == ["growing.bin"] and report.held_until is not None
    assert report.held_until >= time.time() + 2 * HOLD_FIRST  # held twice as long this time
    report = engine.cycle(now=lambda: time.time() + 3 * HOLD_FIRST)
    assert not report.full and report.files_sent == 1 and not report.retry and not report.held
    assert report.held_until is None
    synced(pair)


def test_a_hold_ends_with_its_reason(pair: Pair) -> None:
    """A held file deleted before its next try leaves no hold behind (a hold that outlived its
    path would wake the session for nothing, again and again)."""
    engine = pair.engine()
    big = write(pair.local_root / "growing.bin", os.urandom(1 << 20))

    def change(_plan: object) -> None:
        with open(big, "ab") as fh:
            fh.write(b"more")

    assert engine.cycle(full=True, on_plan=change).retry == ["growing.bin"]
    assert engine.cycle().held == ["growing.bin"]  # kept back: its hold runs
    big.unlink()
    engine.refresh_local(["growing.bin"])  # what the watcher reports
    report = engine.cycle(now=lambda: time.time() + HOLD_MAX)
    assert report.held == [] and report.held_until is None and engine.held == {}
    assert not (pair.remote_root / "growing.bin").exists()
    assert engine.cycle().changes == {}


def test_remote_edit_after_scan_is_not_overwritten(pair: Pair) -> None:
    engine = pair.engine()
    write(pair.local_root / "a.txt", "base")
    engine.cycle(full=True)
    write(pair.local_root / "a.txt", "laptop", mtime_offset=10**9)

    def remote_edit(_plan: object) -> None:
        write(pair.remote_root / "a.txt", "remote wrote meanwhile", mtime_offset=2 * 10**9)

    report = engine.cycle(full=True, on_plan=remote_edit)
    assert report.retry == ["a.txt"]
    assert (pair.remote_root / "a.txt").read_text() == "remote wrote meanwhile"
    report = engine.cycle()  # incremental: both sides' a.txt were read again
    assert not report.full
    assert report.new_conflicts == ["a.txt"]


def test_many_files_travel_as_one_stream(pair: Pair) -> None:
    engine = pair.engine()
    for i in range(300):
        write(pair.local_root / f"d{i % 7}/f{i}.txt", f"{i}" * 100)
    write(pair.local_root / "large.bin", os.urandom(3 << 20))
    report = engine.cycle(full=True)
    assert report.files_sent == 301
    synced(pair)
    for i in range(300):
        (pair.remote_root / f"d{i % 7}/f{i}.txt").write_text(f"remote {i}")
    report = engine.cycle(full=True)
    assert report.files_sent == 300
    synced(pair)


def test_killed_link_leaves_no_partial_file_and_converges(
    tmp_path: Path, fresh_sshd: SshServer
) -> None:
    p = make_pair(tmp_path, fresh_sshd)
    try:
        engine = p.engine()
        write(p.local_root / "small.txt", "small")
        engine.cycle(full=True)
        payload = os.urandom(48 << 20)
        write(p.local_root / "huge.bin", payload)

        def kill_mid_transfer() -> None:
            # Kill the link once the big file is partly written on the remote (a timer could
            # fire before or after a transfer this fast).
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                for name in os.listdir(p.remote_root):
                    with contextlib.suppress(OSError):
                        if name.startswith(".wbsync-") and (p.remote_root / name).stat().st_size:
                            fresh_sshd.kill()
                            return
                time.sleep(0.0005)
            fresh_sshd.kill()

        killer = threading.Thread(target=kill_mid_transfer)
        killer.start()
        with pytest.raises(ContextError):
            engine.cycle(full=True)
        killer.join()
        time.sleep(0.5)
        assert not (p.remote_root / "huge.bin").exists()
        fresh_sshd.start()
        # A new engine, as after a restart: temp files of the killed transfer are cleaned up.
        engine = p.engine()
        for _ in range(3):
            try:
                engine.cycle(full=True)
                break
            except ContextError:
                time.sleep(1.0)
        assert (p.remote_root / "huge.bin").read_bytes() == payload
        leftovers = [n for n in os.listdir(p.remote_root) if n.startswith(".wbsync-")]
        assert leftovers == []
        synced(p)
    finally:
        p.runner.close()
        p.connection.close()


def test_bulk_through_openssh(tmp_path: Path, sshd: SshServer) -> None:
    p = make_pair(tmp_path, sshd, openssh=True)
    try:
        engine = p.engine()
        for i in range(100):
            write(p.local_root / f"f{i}.bin", os.urandom(20_000))
        report = engine.cycle(full=True)
        assert report.files_sent == 100
        synced(p)
        for i in range(100):
            write(p.remote_root / f"f{i}.bin", os.urandom(30_000))
        engine.cycle(full=True)
        synced(p)
    finally:
        p.runner.close()
        p.connection.close()


@contextlib.contextmanager
def small_disk(folder: Path, size: str) -> Iterator[None]:
    """``folder`` on a tmpfs of ``size``: a real file system that fills up."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def resize(folder: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)")
@pytest.mark.parametrize("full", ["remote", "local"])
def test_full_disk_is_reported_the_rest_syncs_and_it_converges_once_there_is_room(
    pair: Pair, full: str
) -> None:
    """The side receiving the files runs out of space halfway: what fits lands, what does not
    is reported as such and leaves no partial or temp file; with room again, it converges."""
    engine = pair.engine()
    write(pair.local_root / "seed.txt", "seed")
    engine.cycle(full=True)  # both roots exist and agree
    src = pair.local_root if full == "remote" else pair.remote_root
    dst = pair.remote_root if full == "remote" else pair.local_root
    shutil.rmtree(dst)
    with small_disk(dst, "3m"):
        write(dst / "seed.txt", "seed")
        os.utime(dst / "seed.txt", ns=(os.stat(src / "seed.txt").st_mtime_ns,) * 2)
        engine = pair.engine()  # the same agreed state: only the new files travel
        sizes = {"a-small.txt": 100_000, "b-big.bin": 5 << 20, "c-small.txt": 100_000}
        payload = {name: os.urandom(size) for name, size in sizes.items()}
        for name, data in payload.items():
            write(src / name, data)
        report = engine.cycle(full=True)
        full_problems = [p for p in report.problems if p.path == "b-big.bin"]
        assert full_problems and "no space left" in full_problems[0].message, report.problems
        assert (dst / "a-small.txt").read_bytes() == payload["a-small.txt"]
        assert (dst / "c-small.txt").read_bytes() == payload["c-small.txt"]
        assert not (dst / "b-big.bin").exists()
        assert [n for n in os.listdir(dst) if n.startswith(".wbsync-")] == []
        assert (src / "b-big.bin").read_bytes() == payload["b-big.bin"]  # nothing lost
        resize(dst, "16m")
        report = engine.cycle(full=True)
        assert not report.problems, report.problems
        assert (dst / "b-big.bin").read_bytes() == payload["b-big.bin"]
        synced(pair)


def test_path_too_long_for_the_remote_is_reported_and_the_rest_syncs(
    tmp_path: Path, sshd: SshServer
) -> None:
    """The remote root lies deep, so a path that is fine on the laptop is past PATH_MAX there."""
    p = make_pair(tmp_path, sshd)
    deep = tmp_path / "remote"
    for i in range(19):
        deep = deep / (f"{i:02d}" + "d" * 198)
    p = Pair(p.local_root, deep / "project", p.connection, p.runner, p.agent_path, p.state_dir)
    try:
        long_name = "/".join(["x" * 200] * 3) + "/file.txt"
        assert len(str(p.remote_root / long_name)) > 4096
        write(p.local_root / long_name, "too deep for the remote")
        write(p.local_root / "short.txt", "fits")
        report = p.engine().cycle(full=True)
        assert (p.remote_root / "short.txt").read_text() == "fits"
        messages = [m.message for m in report.problems if m.path.startswith("x" * 200)]
        assert any("too long" in m for m in messages), report.problems
        assert (p.local_root / long_name).read_text() == "too deep for the remote"
    finally:
        p.runner.close()
        p.connection.close()


def test_file_swapped_for_a_symlink_while_queued_is_never_followed(
    pair: Pair, tmp_path: Path
) -> None:
    """Between the scan and the send, a file becomes a link to a secret outside the root: the
    sender refuses to open it through the link, so the secret never travels."""
    engine = pair.engine()
    secret = write(tmp_path / "secret.txt", "outside the root")
    victim = write(pair.local_root / "notes.txt", "notes")
    write(pair.local_root / "other.txt", "other")

    def swap(_plan: object) -> None:
        victim.unlink()
        victim.symlink_to(secret)

    report = engine.cycle(full=True, on_plan=swap)
    assert not (pair.remote_root / "notes.txt").exists()
    assert (pair.remote_root / "other.txt").read_text() == "other"
    assert report.retry or report.problems
    engine.cycle(full=True)
    assert os.readlink(pair.remote_root / "notes.txt") == str(secret)  # kept as a link
    synced(pair)


@pytest.mark.parametrize("origin", ["local", "remote"])
def test_moves_travel_as_renames_not_bytes(pair: Pair, origin: str) -> None:
    """A file or a folder of files moved on one side is renamed on the other: nothing is sent."""
    engine = pair.engine()
    checkpoint = os.urandom(3 << 20)
    write(pair.local_root / "ckpt/step-1.bin", checkpoint)
    for i in range(5):
        write(pair.local_root / f"data/part-{i}.bin", os.urandom(100_000 + i))
    engine.cycle(full=True)
    src = pair.local_root if origin == "local" else pair.remote_root
    (src / "ckpt/step-1.bin").rename(src / "ckpt/best.bin")
    (src / "data").rename(src / "dataset")
    report = engine.cycle(full=True)
    assert report.files_sent == 0 and report.bytes_sent == 0, report
    to = "remote" if origin == "local" else "local"
    assert report.changes.get(f"rename_{to}") == 6, report.changes
    synced(pair)
    dst = pair.remote_root if origin == "local" else pair.local_root
    assert (dst / "ckpt/best.bin").read_bytes() == checkpoint
    assert not (dst / "data").exists()
    assert engine.cycle(full=True).changes == {}


def test_a_rename_never_moves_a_file_edited_on_the_other_side(pair: Pair) -> None:
    engine = pair.engine()
    write(pair.local_root / "a.bin", b"x" * 10_000)
    engine.cycle(full=True)
    (pair.local_root / "a.bin").rename(pair.local_root / "b.bin")

    def remote_edit(_plan: object) -> None:
        write(pair.remote_root / "a.bin", b"y" * 10_000, mtime_offset=10**9)

    report = engine.cycle(full=True, on_plan=remote_edit)
    assert report.retry
    assert (pair.remote_root / "a.bin").read_bytes() == b"y" * 10_000  # not moved, not lost
    engine.cycle(full=True)
    engine.cycle(full=True)
    assert (pair.local_root / "a.bin").read_bytes() == b"y" * 10_000  # the edit beat the move
    assert (pair.remote_root / "b.bin").read_bytes() == b"x" * 10_000
    synced(pair)


def test_a_first_sync_into_a_folder_already_holding_files_overwrites_nothing(pair: Pair) -> None:
    """Nothing agreed yet, and the remote folder already holds some of the same names: nothing
    there is overwritten; different contents become a conflict, equal ones agree."""
    engine = pair.engine()
    for i in range(100):
        write(pair.local_root / f"data/f{i}.bin", f"laptop {i}")
    write(pair.remote_root / "data/f1.bin", "remote 1, different")
    write(pair.remote_root / "data/f2.bin", "laptop 2")  # the same content
    write(pair.remote_root / "remote-only.txt", "only there")
    report = engine.cycle(full=True)
    assert report.files_sent >= 98, report
    assert (pair.remote_root / "data/f1.bin").read_text() == "remote 1, different"
    assert report.new_conflicts == ["data/f1.bin"]
    assert (pair.local_root / "remote-only.txt").read_text() == "only there"
    engine.cycle(full=True)  # carries the conflict copies across
    local_copy = [n for n in os.listdir(pair.remote_root / "data") if ".conflict-local-" in n]
    assert len(local_copy) == 1
    assert (pair.remote_root / "data" / local_copy[0]).read_text() == "laptop 1"
    assert (pair.remote_root / "data/f2.bin").read_text() == "laptop 2"
    assert "data/f2.bin" in engine.state.base
