"""The three-way plan, without any file system: who wins, what conflicts, when to halt."""

from __future__ import annotations

import pytest

from workbench.sync.loss import LossGuard, count_lost
from workbench.sync.manifest import Entry, Problem
from workbench.sync.reconcile import hash_requests, plan
from workbench.sync.state import Agreed, SyncState


def f(path: str, size: int = 1, mtime: int = 1, digest: str = "", mode: int = 0o644) -> Entry:
    return Entry(path, "file", size, mtime, mode, digest=digest)


def d(path: str) -> Entry:
    return Entry(path, "dir", mode=0o755)


def agreed(entry: Entry, digest: str = "h1") -> Agreed:
    return Agreed.of(entry, entry, digest)


def kinds(p: object) -> list[tuple[str, str, str]]:
    return sorted((a.kind, a.to, a.path) for a in p.actions)  # type: ignore[attr-defined]


def test_one_sided_changes_propagate() -> None:
    base = {"a": agreed(f("a")), "b": agreed(f("b"))}
    local = {"a": f("a", 2, 2), "b": f("b"), "c": f("c")}
    remote = {"a": f("a"), "b": f("b")}
    assert kinds(plan(base, local, remote)) == [("copy", "remote", "a"), ("copy", "remote", "c")]
    remote.pop("b")
    assert ("delete", "local", "b") in kinds(plan(base, local, remote))


def test_exec_bit_alone_is_a_chmod() -> None:
    base = {"a": agreed(f("a"))}
    local = {"a": f("a", mode=0o755, digest="h1")}
    assert kinds(plan(base, local, {"a": f("a")})) == [("chmod", "remote", "a")]


def test_both_changed_differently_is_a_conflict() -> None:
    base = {"a": agreed(f("a"))}
    local = {"a": f("a", 2, 5, digest="x")}
    remote = {"a": f("a", 3, 6, digest="y")}
    assert kinds(plan(base, local, remote)) == [("conflict", "local", "a")]


def test_same_change_on_both_sides_agrees() -> None:
    base = {"a": agreed(f("a"))}
    result = plan(base, {"a": f("a", 2, 5, digest="x")}, {"a": f("a", 2, 7, digest="x")})
    assert result.actions == [] and result.agreed["a"].digest == "x"


def test_an_edit_beats_a_delete() -> None:
    base = {"a": agreed(f("a"))}
    result = plan(base, {}, {"a": f("a", 9, 9)})
    assert kinds(result) == [("copy", "local", "a")]


def test_a_delete_under_a_changed_child_keeps_the_folder() -> None:
    base = {"d": agreed(d("d"), ""), "d/x": agreed(f("d/x")), "d/y": agreed(f("d/y"))}
    local = {"e": f("e")}
    remote = {"d": d("d"), "d/x": f("d/x", 5, 5), "d/y": f("d/y")}
    got = kinds(plan(base, local, remote))
    assert ("copy", "local", "d/x") in got and ("copy", "local", "d") in got
    assert ("delete", "remote", "d") not in got and ("delete", "remote", "d/y") in got


@pytest.mark.parametrize(
    ("agreed_files", "lost", "halts"),
    [(3, 3, True), (3, 2, False), (31, 20, True), (31, 15, False), (12, 9, False),
     (20, 11, True), (1000, 499, False), (1000, 501, True), (1, 1, True)],
)  # fmt: skip
def test_a_side_halts_when_it_lost_most_of_what_was_agreed(
    agreed_files: int, lost: int, halts: bool
) -> None:
    """More than half, and at least ten (or all): whatever else is on the emptied side."""
    names = [f"f{i:04d}" for i in range(agreed_files)]
    base = {n: agreed(f(n)) for n in names}
    here = {n: f(n) for n in names[lost:]}
    here["nohup.out"] = f("nohup.out")  # something new there changes nothing
    there = {n: f(n) for n in names}
    the_plan = plan(base, here, there)
    state = SyncState(base=base)
    caches = {"local": here, "remote": there}
    loss = LossGuard().check(the_plan, state, caches, [], now=0.0)  # type: ignore[arg-type]
    assert (loss is not None) == halts
    if loss is not None:
        assert (loss.side, loss.lost, loss.agreed) == ("local", lost, agreed_files)
        assert f"the laptop lost {lost} of the {agreed_files} files" in loss.message()
        state.allow_loss["local"] = lost  # confirmed: this loss, no more
        assert LossGuard().check(the_plan, state, caches, [], now=0.0) is None  # type: ignore[arg-type]


def test_files_that_could_not_be_read_are_not_lost() -> None:
    names = [f"d/f{i:02d}" for i in range(20)]
    base = {n: agreed(f(n)) for n in names}
    base["d"] = agreed(d("d"), "")
    there = {**{n: f(n) for n in names}, "d": d("d")}
    loss = count_lost(base, {}, there, {"d"})
    assert loss == (0, 20)


def test_unreadable_paths_are_never_taken_for_deleted() -> None:
    base = {"a": agreed(f("a")), "b": agreed(f("b"))}
    result = plan(
        base,
        {"b": f("b")},
        {"a": f("a"), "b": f("b")},
        problems=[Problem("a", "local", "cannot read: permission denied")],
    )
    assert result.actions == []


def test_hashes_only_where_a_decision_needs_them() -> None:
    base = {"a": agreed(f("a")), "b": agreed(f("b"))}
    local = {"a": f("a", 1, 9), "b": f("b", 1, 9), "c": f("c", 4, 4)}
    remote = {"a": f("a", 1, 8), "b": f("b"), "c": f("c", 4, 5)}
    want_local, want_remote = hash_requests(base, local, remote)
    # a: both touched; b: only the laptop touched it (its stat change propagates as it is);
    # c: new on both sides with the same size.
    assert want_local == {"a", "c"} and want_remote == {"a", "c"}


def test_forced_resolution_and_deleted_copies() -> None:
    base = {"a": agreed(f("a"))}
    local = {"a": f("a", 2, 2), "a.conflict-local-1": f("a.conflict-local-1")}
    remote = {"a": f("a", 3, 3), "a.conflict-local-1": f("a.conflict-local-1")}
    result = plan(base, local, remote, forced={"a": "remote", "a.conflict-local-1": "delete"})
    assert kinds(result) == [
        ("copy", "local", "a"),
        ("delete", "local", "a.conflict-local-1"),
        ("delete", "remote", "a.conflict-local-1"),
    ]


def test_progress_bar_draws_only_on_a_terminal() -> None:
    import io

    from workbench.cli.commands.sync import ProgressBar

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    quiet, tty = io.StringIO(), Tty()
    for stream in (quiet, tty):
        bar = ProgressBar(stream)
        bar("progress", {"first": True, "files": 2, "bytes": 10, "done_files": 2, "done_bytes": 10})
    assert quiet.getvalue() == ""
    assert "2/2 files" in tty.getvalue() and tty.getvalue().endswith("\n")


def test_a_moved_file_becomes_a_rename_on_the_other_side() -> None:
    base = {"old.bin": agreed(f("old.bin", 500), "h1")}
    remote = {"old.bin": f("old.bin", 500)}
    local = {"new.bin": f("new.bin", 500, 7)}
    # hash_requests asks for the new file's digest: it is as large as the file that went.
    assert hash_requests(base, local, remote) == ({"new.bin"}, set())
    local["new.bin"] = f("new.bin", 500, 7, digest="h1")
    result = plan(base, local, remote)
    assert kinds(result) == [("rename", "remote", "new.bin")]
    assert result.actions[0].origin == "old.bin"
    assert result.actions[0].expect == remote["old.bin"].with_digest("h1")


def test_no_rename_when_the_content_differs_or_the_other_side_changed_it() -> None:
    base = {"old.bin": agreed(f("old.bin", 500), "h1")}
    local = {"new.bin": f("new.bin", 500, 7, digest="other")}
    assert kinds(plan(base, local, {"old.bin": f("old.bin", 500)})) == [
        ("copy", "remote", "new.bin"),
        ("delete", "remote", "old.bin"),
    ]
    local = {"new.bin": f("new.bin", 500, 7, digest="h1")}
    edited = {"old.bin": f("old.bin", 600, 9)}  # edited remotely: an edit beats a delete
    assert hash_requests(base, local, edited) == (set(), set())
    assert kinds(plan(base, local, edited)) == [
        ("copy", "local", "old.bin"),
        ("copy", "remote", "new.bin"),
    ]


def test_a_case_only_rename_is_sent_not_renamed() -> None:
    base = {"readme.md": agreed(f("readme.md", 5), "h1")}
    local = {"README.md": f("README.md", 5, 2, digest="h1")}
    assert ("rename", "remote", "README.md") not in kinds(
        plan(base, local, {"readme.md": f("readme.md", 5)})
    )
