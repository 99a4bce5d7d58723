"""The agent's copies of laptop helpers, pinned together: both run on the same inputs and agree.

The agent must stay one standard-library file, so it carries its own errno messages, tree walk,
ignore-rule matching, path checks, entry comparison and exec-bit rule. A copy that drifted would
make the two sides of a sync disagree (a path ignored on one side only looks deleted on the
other; a problem worded two ways). Each test here runs the laptop's function and the agent's
on the same inputs.
"""

from __future__ import annotations

import errno
import importlib.util
import itertools
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.capabilities import without_file_read_override
from workbench.resources import resource_path
from workbench.sync import local, relpath
from workbench.sync.ignore import IgnoreRules, base_rules, parse_lines
from workbench.sync.manifest import Entry, Problem, hash_file, os_message, scan, walk
from workbench.sync.wire import matches_expectation


@pytest.fixture(scope="module")
def agent() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "workbench_agent_twin", resource_path("agent", "agent.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _verdict(check: Callable[[], object]) -> tuple[bool, str]:
    """(accepted, the refusal's message)."""
    try:
        check()
    except (relpath.UnsafePath, ValueError) as exc:
        return False, getattr(exc, "message", None) or str(exc)
    return True, ""


# -- errno messages -----------------------------------------------------------------------------


ERRNOS = [errno.ENOSPC, errno.ENAMETOOLONG, errno.EACCES, errno.EPERM, errno.ENOTEMPTY,
          errno.EIO, errno.ENOENT, errno.EROFS, errno.ELOOP, errno.EDQUOT]  # fmt: skip


@pytest.mark.parametrize("code", ERRNOS, ids=[errno.errorcode[c] for c in ERRNOS])
def test_errno_messages_agree(agent: ModuleType, code: int) -> None:
    exc = OSError(code, os.strerror(code))
    assert os_message(exc) == agent._sync_oserror(exc)
    assert os_message(OSError("no errno at all")) == agent._sync_oserror(OSError("no errno at all"))


# -- path checks --------------------------------------------------------------------------------


PATHS = ["a", "a/b/c", "", "/a", "a/../b", "..", ".", "a//b", "a/./b", "a/", "/", "a\0b",
         "é/ü", ".git/x", " a", "a\\b", "..a", "a..", "...", "a/b/"]  # fmt: skip


@pytest.mark.parametrize("path", PATHS)
def test_path_checks_agree(agent: ModuleType, path: str) -> None:
    assert _verdict(lambda: relpath.check(path)) == _verdict(lambda: agent._sync_check(path))


def test_the_way_into_the_root_is_checked_alike(agent: ModuleType, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real" / "sub").mkdir(parents=True)
    (root / "file.txt").write_text("x")
    (root / "link").symlink_to(root / "real")
    (root / "outside").symlink_to(tmp_path)
    paths = ["real/x", "real/sub/x", "link/x", "outside/x", "file.txt/x", "missing/deeper/x",
             "real/missing/x", "link", "x", "../x", "real/../x"]  # fmt: skip
    for path in paths:
        laptop = _verdict(lambda p=path: relpath.resolve_inside(root, p))  # type: ignore[misc]
        remote = _verdict(lambda p=path: agent._sync_inside(str(root), p))  # type: ignore[misc]
        assert laptop == remote, path


# -- ignore rules -------------------------------------------------------------------------------


PATTERNS = "\n".join(
    [
        "*.log",
        "!keep.log",
        "build/",
        "/top-only",
        "docs/**/*.tmp",
        "**/cache",
        "a?c",
        "[abc]x",
        "[!d]y",
        "\\#hash",
        "\\!bang",
        "trailing\\ ",  # an escaped trailing space is kept
        "data/*",
        "!data/keep/",
        "node_modules",
    ]
)

RULE_PATHS = ["x.log", "keep.log", "sub/x.log", "build", "build/a", "sub/build", "top-only",
              "sub/top-only", "docs/a/b.tmp", "docs/b.tmp", "cache", "a/b/cache", "abc", "abbc",
              "ax", "dx", "ay", "dy", "#hash", "!bang", "trailing ", "data/x", "data/keep",
              "data/keep/f", "node_modules", "a/node_modules/b", ".git", ".GIT", "a/.Git/hooks",
              ".nvwb-identity", ".project/.nvwb-identity", ".project/.NVWB-Identity",
              ".wbsync-abc.tmp", "a/.wbsync-1", "X.LOG", "Build/a", "README", "é.log",
              "line\nbreak.log", ".DS_Store", "__pycache__/x.pyc", "a.pyc"]  # fmt: skip


@pytest.mark.parametrize("fold", [False, True], ids=["exact-case", "folding-case"])
def test_ignore_rules_match_alike(agent: ModuleType, fold: bool) -> None:
    rules = base_rules(remote_only=["models"], case_insensitive=fold)
    rules.add(parse_lines(PATTERNS))
    rules.add(parse_lines("!nested.log\n*.bin\n", "sub"))
    theirs = agent.SyncRules(rules.to_json())
    paths = [*RULE_PATHS, "models/w.bin", "sub/nested.log", "sub/a.bin", "a.bin"]
    for path, is_dir in itertools.product(paths, (False, True)):
        assert rules.matches(path, is_dir) == theirs.matches(path, is_dir), (path, is_dir)
        assert rules.ignored(path, is_dir) == theirs.ignored(path, is_dir), (path, is_dir)


# -- the tree walk ------------------------------------------------------------------------------

MTIME_NS = 1_700_000_000_123_456_789


def _tree(root: Path) -> Path:
    """The same tree, byte for byte and stamp for stamp, wherever it is made."""
    files = {
        "a.txt": b"one",
        "run.sh": b"#!/bin/sh\n",
        "sub/b.txt": b"two" * 100,
        "sub/deeper/c.bin": b"\0" * 10,
        "node_modules/x.js": b"ignored",
        "x.log": b"ignored too",
        ".wbsync-left.tmp": b"a killed transfer's",
        "sub/.wbsync-2.tmp": b"another",
        ".git/HEAD": b"ref",
        ".project/.nvwb-identity": b"token",
        "shut/inside.txt": b"in a folder that cannot be listed",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, ns=(MTIME_NS, MTIME_NS))
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("sub/b.txt")
    (root / "dangling").symlink_to("nowhere")
    os.mkfifo(root / "pipe")
    (root / "empty").mkdir()
    _too_deep(root / "deep")
    (root / "shut").chmod(0)
    return root


def _too_deep(top: Path) -> None:
    """Folders nested past PATH_MAX: listing the deepest fails with ENAMETOOLONG."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(18):
            name = "d" * 250
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)


def _rules() -> IgnoreRules:
    rules = base_rules()
    rules.add(parse_lines("node_modules/\n*.log\n"))
    return rules


def _laptop_walk(root: Path, clean: bool) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    problems: list[Problem] = []
    entries = [e.to_json() for e in walk(root, _rules(), problems, side="remote", clean=clean)]
    return _sorted(entries), sorted((p.path, p.message) for p in problems)


def _agent_walk(
    agent: ModuleType, root: Path, clean: bool
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    problems: list[dict[str, str]] = []
    rules = agent.SyncRules(_rules().to_json())
    entries = list(agent._sync_walk(str(root), rules, problems, clean=clean))
    return _sorted(entries), sorted((p["path"], p["problem"]) for p in problems)


def _sorted(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # The deep folders' mtimes are whatever the disk gave them: compared by name and kind.
    return sorted(
        ({**e, "mtime_ns": 0} if e["type"] == "dir" else e for e in entries),
        key=lambda e: str(e["path"]),
    )


@pytest.mark.parametrize("clean", [False, True], ids=["scan", "scan-and-clean"])
def test_the_tree_walk_finds_and_words_alike(
    agent: ModuleType, tmp_path: Path, clean: bool
) -> None:
    ours, theirs = _tree(tmp_path / "laptop"), _tree(tmp_path / "agent")
    with without_file_read_override():
        laptop = _laptop_walk(ours, clean)
        remote = _agent_walk(agent, theirs, clean)
    assert laptop == remote
    paths = {e["path"] for e in laptop[0]}
    assert {"a.txt", "link", "dangling", "empty", "sub/deeper/c.bin"} <= paths
    assert not paths & {"x.log", "pipe", ".git", ".project/.nvwb-identity", "node_modules"}
    assert "shut" in {path for path, _ in laptop[1]}  # a folder that cannot be listed
    assert any("too long" in message for _, message in laptop[1])  # the deepest folder
    temps = (".wbsync-left.tmp", "sub/.wbsync-2.tmp")
    left = [name for name in temps if (ours / name).exists()]
    assert left == [name for name in temps if (theirs / name).exists()]
    assert (left == []) is clean
    for root in (ours, theirs):
        (root / "shut").chmod(0o755)  # let the cleanup in


def test_a_root_that_is_not_there_or_not_a_folder_is_worded_alike(
    agent: ModuleType, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("x")
    for root in (tmp_path / "missing", tmp_path / "file"):
        found = scan(root, _rules())
        said = agent._sync_scan_all(str(root), agent.SyncRules([]))
        assert (found.root_ok, found.root_message) == (said["root_ok"], said["message"])


# -- small rules --------------------------------------------------------------------------------


def test_file_digests_agree(agent: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(os.urandom(3 << 20))
    assert agent._sync_hash_one(str(tmp_path), "f.bin")["sha256"] == hash_file(tmp_path / "f.bin")


def test_exec_bits_follow_the_same_rule(agent: ModuleType) -> None:
    for mode, executable in itertools.product(
        (0o600, 0o644, 0o640, 0o755, 0o700, 0o444), (True, False)
    ):
        assert local.set_executable(mode, executable) == agent._sync_set_exec(mode, executable)


def test_a_path_still_holding_what_the_planner_saw_is_judged_alike(agent: ModuleType) -> None:
    shapes = [
        None,
        Entry("p", "file", 3, 10, 0o644),
        Entry("p", "file", 3, 11, 0o644),
        Entry("p", "file", 4, 10, 0o755),
        Entry("p", "dir", 0, 0, 0o755),
        Entry("p", "symlink", target="a"),
        Entry("p", "symlink", target="b"),
    ]
    for current, expect in itertools.product(shapes, shapes):
        theirs = agent._sync_matches(
            current.to_json() if current else None, expect.to_json() if expect else None
        )
        assert matches_expectation(current, expect) == theirs, (current, expect)
