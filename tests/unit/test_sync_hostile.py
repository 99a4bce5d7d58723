"""A hostile remote: whatever the agent answers, the laptop's tree changes only where it asked.

The sync engine runs for real (real files, the real planner, applier and ``RemoteTree``) against
a stand-in agent (``tests.support.hostile_agent``) that answers with scripted or generated
hostile messages: paths with ``..``, absolute paths, ``.git`` in any letter case, names with
newlines and NULs, case tricks on ignored names, huge and negative sizes, expectations forged
to match the laptop's own files, setuid and world-writable modes, results for paths nobody asked
about. After every cycle the laptop's tree is compared with what it was:

- nothing changed outside the project folder, nor under ``.git`` (any case), nor at an ignored
  path (matched case-insensitively where the engine is told the disk folds case);
- every path that changed is one the laptop's own plan asked to change;
- nothing landed with setuid/setgid/sticky or a write bit the laptop's umask takes away;
- a malformed answer is a transport error (retried later), never a crash of the engine.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.support.hostile_agent import (
    ASKED,
    EDITED,
    LAPTOP_EDIT,
    LAPTOP_NOW,
    HostileRunner,
    Script,
)
from workbench.errors import ContextError
from workbench.sync import relpath
from workbench.sync.engine import SyncEngine
from workbench.sync.ignore import IgnoreRules, load_rules
from workbench.sync.local import LocalTree
from workbench.sync.reconcile import Plan
from workbench.sync.remote import RemoteTree
from workbench.sync.state import StateStore
from workbench.sync.watch import RemoteEvents, RemoteWatcher

LAPTOP: dict[str, bytes] = {
    ".git/HEAD": b"ref: refs/heads/main\n",
    ".git/config": b"[core]\n\tbare = false\n",
    ".git/hooks/pre-commit.sample": b"#!/bin/sh\nexit 0\n",
    ".gitignore": b"*.log\n.env\nsecrets/\n",
    ".env": b"API_KEY=laptop-secret\n",
    "logs/run.log": b"a log\n",
    "code/a.py": b"print('a')\n",
}
# A thread that dies of a message (the watcher's reader) is a crash too, not a warning.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

UMASK = os.umask(0o022)
os.umask(UMASK)

Snapshot = dict[str, tuple[Any, ...]]


def snapshot(top: Path) -> Snapshot:
    """Everything under ``top``, links not followed: type, content or target, mode."""
    out: Snapshot = {}
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            full = Path(folder) / name
            rel = full.relative_to(top).as_posix()
            st_ = full.lstat()
            if stat.S_ISLNK(st_.st_mode):
                out[rel] = ("link", os.readlink(full))
            elif stat.S_ISDIR(st_.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st_.st_mode))
            else:
                out[rel] = ("file", full.read_bytes(), stat.S_IMODE(st_.st_mode))
    return out


def ignored(rules: IgnoreRules, path: str, is_dir: bool, fold: bool) -> bool:
    """The test's own reading of the laptop's ignore rules (gitignore: the last match wins, an
    ignored folder ignores what it holds), case-insensitive when ``fold``."""
    compiled = [
        (r, re.compile(r.regex, re.DOTALL | (re.IGNORECASE if fold else 0))) for r in rules.rules
    ]

    def matches(sub_path: str, folder: bool) -> bool:
        name = sub_path.rpartition("/")[2]
        if name.startswith(".wbsync-"):
            return True
        hit = False
        for rule, rx in compiled:
            if rule.dir_only and not folder:
                continue
            if rule.base and not sub_path.startswith(rule.base + "/"):
                continue
            if rx.fullmatch(sub_path[len(rule.base) + 1 :] if rule.base else sub_path):
                hit = not rule.negate
        return hit

    parts = path.split("/")
    return any(matches("/".join(parts[:i]), True) for i in range(1, len(parts))) or matches(
        path, is_dir
    )


def asked_by(plan: Plan) -> tuple[set[str], set[str]]:
    """The laptop paths a plan asks to change, and prefixes of conflict copies it may write."""
    paths: set[str] = set()
    prefixes: set[str] = set()
    for action in plan.actions:
        if action.kind == "conflict":
            prefixes.add(f"{action.path}.conflict-remote-")
            paths.update(relpath.ancestors(action.path))
            continue
        if action.to != "local":
            continue
        for path in (action.path, action.origin):
            if path:
                paths.add(path)
                paths.update(relpath.ancestors(path))
    return paths, prefixes


@dataclass
class Laptop:
    """The laptop's project (real files) synced with the stand-in, and what was asked."""

    top: Path
    script: Script
    fold: bool = False
    asked: set[str] = field(default_factory=set)
    prefixes: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = self.top / "laptop"
        for rel, data in LAPTOP.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (self.top / "outside").mkdir()
        (self.top / "outside" / "keep.txt").write_bytes(b"outside the project\n")
        self.runner = HostileRunner(self.script, str(self.root))
        self.remote = RemoteTree(self.runner, "/wb/agent.py", "/remote/projects/p")
        self.engine = SyncEngine(
            LocalTree(self.root),
            self.remote,
            StateStore(self.top.parent / f"{self.top.name}-state"),
            case_insensitive=["local"] if self.fold else [],
        )

    def close(self) -> None:
        self.remote.close()
        self.runner.close()

    def watch(self) -> RemoteEvents:
        """Start the (real) remote watcher on the stand-in's watch stream; what it passed on."""
        got: RemoteEvents = []
        arrived = threading.Event()

        def on_events(events: RemoteEvents) -> None:
            got.extend(events)
            arrived.set()

        def on_lost(why: str) -> None:
            self.errors.append(why)
            arrived.set()

        watcher = RemoteWatcher(
            self.remote, self.engine.load_rules(), on_events, lambda: None, on_lost
        )
        watcher.start(5.0)
        arrived.wait(0.5 if self.script.events else 0.0)
        watcher.stop()
        return got

    def cycle(self, *, full: bool = True, events: RemoteEvents | None = None) -> None:
        """One cycle, then the checks; a transport error (a refused answer) is allowed."""
        before = snapshot(self.top)

        def on_plan(plan: Plan) -> None:
            paths, prefixes = asked_by(plan)
            self.asked |= paths
            self.prefixes |= prefixes

        try:
            if events is not None:
                self.engine.update_remote(events)
            self.engine.cycle(full=full, on_plan=on_plan)
        except ContextError as exc:
            self.errors.append(exc.message)
        self.check(before, snapshot(self.top))

    def check(self, before: Snapshot, after: Snapshot) -> None:
        rules = load_rules(self.root)
        changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
        for path in sorted(changed):
            assert path.startswith("laptop/"), f"changed outside the project: {path!r}"
            rel = path[len("laptop/") :]
            parts = rel.split("/")
            assert not any(p.casefold() == ".git" for p in parts), f"changed under .git: {rel!r}"
            now = after.get(path)
            is_dir = now is not None and now[0] == "dir"
            assert not ignored(rules, rel, is_dir, self.fold), f"changed an ignored path: {rel!r}"
            assert rel in self.asked or rel.startswith(tuple(self.prefixes)), (
                f"changed a path the laptop never asked for: {rel!r}"
            )
            assert ".wbsync-" not in rel, f"a temp file was left: {rel!r}"
            if now is not None and now[0] != "link":
                mode = now[-1]
                assert not mode & 0o7000, f"{rel!r} landed with mode {mode:o}"
                assert not mode & UMASK & 0o777, f"{rel!r} landed with mode {mode:o}"


@pytest.fixture
def laptop(tmp_path: Path) -> Iterator[Any]:
    made: list[Laptop] = []

    def make(script: Script, *, fold: bool = False) -> Laptop:
        lap = Laptop(tmp_path / f"case{len(made)}", script, fold=fold)
        made.append(lap)
        return lap

    yield make
    for lap in made:
        lap.close()


def file(path: Any, size: Any = 5, mode: Any = 0o644, mtime: Any = 1_700_000_000 * 10**9) -> Any:
    return {"path": path, "type": "file", "size": size, "mtime_ns": mtime, "mode": mode}


def folder(path: Any, mode: Any = 0o755) -> Any:
    return {"path": path, "type": "dir", "size": 0, "mtime_ns": 0, "mode": mode}


# -- each hole on its own ----------------------------------------------------------------------


def test_a_scan_cannot_plant_files_under_git_in_any_case(laptop: Any) -> None:
    names = [
        ".git/hooks/pre-commit",
        ".GIT/hooks/pre-commit",
        ".Git/config",
        "sub/.git",
        "sub/.gIt/hooks/post-checkout",
    ]
    entries = [
        folder(".git/hooks"),
        folder(".GIT"),
        folder(".GIT/hooks"),
        folder("sub"),
        folder("sub/.gIt"),
        folder("sub/.gIt/hooks"),
        *(file(n) for n in names),
    ]
    lap = laptop(Script(entries=entries))
    lap.cycle()
    lap.cycle()
    assert not (lap.root / ".git/hooks/pre-commit").exists()
    assert sorted(os.listdir(lap.root)) == sorted(
        [".git", ".gitignore", ".env", "logs", "code", "sub"]
    )
    assert os.listdir(lap.root / "sub") == []


def test_a_link_whose_name_is_too_long_to_land_leaves_no_temp_file(laptop: Any) -> None:
    # Found by the property below: the link went to a temp name, the rename to a 300-letter
    # name failed, and the temp link stayed in the project.
    link = {"path": "x" * 300, "type": "symlink", "size": 0, "mtime_ns": 0, "mode": 0o644}
    lap = laptop(Script(entries=[{**link, "target": "ok.txt"}]))
    lap.cycle()
    lap.cycle()
    assert not [n for n in os.listdir(lap.root) if n.startswith(".wbsync-")]


def test_ignored_names_stay_off_the_laptop_case_insensitively_where_the_disk_folds(
    laptop: Any,
) -> None:
    lap = laptop(
        Script(
            entries=[
                file(".ENV"),
                folder("LOGS"),
                file("LOGS/X.LOG"),
                folder("Secrets"),
                file("Secrets/k.txt"),
            ]
        ),
        fold=True,
    )
    lap.cycle()
    lap.cycle()
    assert not {".ENV", "LOGS", "Secrets"} & set(os.listdir(lap.root))


def test_a_transfer_stream_lands_only_what_the_laptop_asked_for(laptop: Any) -> None:
    big = 3 << 20  # streamed, not inline
    lap = laptop(
        Script(
            entries=[file("big.bin", size=big)],
            headers=[
                {
                    "path": ".git/hooks/pre-commit",
                    "size": 5,
                    "mode": 0o755,
                    "mtime_ns": 1,
                    "expect": None,
                },
                {
                    "path": "code/a.py",
                    "size": 5,
                    "mode": 0o644,
                    "mtime_ns": 1,
                    "expect": LAPTOP_NOW,
                },
            ],
        )
    )
    lap.cycle()
    assert (lap.root / "code/a.py").read_bytes() == LAPTOP["code/a.py"]
    assert not (lap.root / ".git/hooks/pre-commit").exists()


def test_a_header_cannot_bring_its_own_expectation(laptop: Any) -> None:
    """The laptop asked for ``new.bin``, where it had nothing; the user writes ``new.bin`` on
    the laptop while it is on its way. A header claiming the laptop expected that very file
    must not make it overwrite the edit: the laptop checks against its own expectation."""
    lap = laptop(
        Script(
            entries=[file("new.bin", size=3 << 20)],
            headers=[
                {"path": ASKED, "size": 3 << 20, "mode": 0o644, "mtime_ns": 1, "expect": EDITED}
            ],
        )
    )
    lap.cycle()
    assert (lap.root / "new.bin").read_bytes() == LAPTOP_EDIT


@pytest.mark.parametrize("mode", [0o4755, 0o2775, 0o1777, 0o7777, 0o666])
def test_modes_from_the_remote_never_give_more_than_the_laptop_allows(
    laptop: Any, mode: int
) -> None:
    lap = laptop(
        Script(
            entries=[
                file("small.sh", mode=mode),
                file("big.bin", size=3 << 20, mode=mode),
                folder("d", mode=mode),
                file("d/x", mode=mode),
            ],
            inline=[{"path": ASKED, "ok": True, "data": "aGVsbG8=", "mode": mode, "mtime_ns": 1}]
            * 2,
            headers=[{"path": ASKED, "size": 3 << 20, "mode": mode, "mtime_ns": 1, "expect": None}],
        )
    )
    lap.cycle()
    lap.cycle()
    assert (lap.root / "small.sh").exists() and (lap.root / "big.bin").exists()


def test_results_for_paths_nobody_asked_about_change_nothing(laptop: Any) -> None:
    planted = file(".git/hooks/pre-commit")
    lap = laptop(
        Script(
            results=[
                {"path": ".git/hooks/pre-commit", "ok": True, "entry": planted},
                {"path": "evil.txt", "ok": True, "entry": file("evil.txt")},
            ]
            * 4,
        )
    )
    lap.cycle()  # the laptop's files go to the remote; the answers name other paths
    lap.cycle(full=False)
    lap.cycle(full=False)
    assert not (lap.root / ".git/hooks/pre-commit").exists()
    assert not (lap.root / "evil.txt").exists()


def test_watch_events_are_checked_like_a_scan(laptop: Any) -> None:
    events = [
        {"path": ".git/hooks/pre-commit", "entry": file(".git/hooks/pre-commit")},
        {"path": "../../outside/x", "entry": file("../../outside/x")},
        {"path": ".ENV", "entry": file(".ENV")},
    ]
    lap = laptop(Script(events=events), fold=True)
    lap.cycle()
    lap.cycle(full=False, events=lap.watch())
    assert not (lap.root / ".git/hooks/pre-commit").exists()
    assert not (lap.root / ".ENV").exists()


@pytest.mark.parametrize(
    "entries",
    [
        [{"path": 7, "type": "file"}],
        [{"type": "file"}],
        ["not an object"],
        [file("x", size="12")],
        [file("x", size=-4)],
        [file("x", mtime=2**80)],
        [{"path": "l", "type": "symlink", "target": "a\x00b"}],
        [file("x", mode=2**40)],
    ],
)
def test_a_malformed_answer_is_refused_not_a_crash(laptop: Any, entries: list[Any]) -> None:
    lap = laptop(Script(entries=entries))
    lap.cycle()
    lap.cycle()


# -- all of it at once -------------------------------------------------------------------------

HOSTILE_PATHS = [
    "../escape.txt",
    "/tmp/absolute.txt",
    "a/../../x",
    "",
    ".",
    "a//b",
    "dir/",
    ".git",
    ".git/hooks/pre-commit",
    ".GIT/hooks/pre-commit",
    ".Git/config",
    "sub/.git/HEAD",
    "sub/.GiT",
    ".env",
    ".ENV",
    ".Env",
    "logs/x.log",
    "LOGS/X.LOG",
    "secrets/key",
    "SECRETS/key",
    "new\nline.txt",
    "nul\x00.txt",
    "tab\there",
    ".wbsync-planted.tmp",
    "code/a.py",
    "CODE/A.PY",
    "code",
    "x" * 300,
    "ünïcödé.txt",
    "ok.txt",
    "d/ok.txt",
    "d",
]
paths = st.one_of(st.sampled_from(HOSTILE_PATHS), st.just(ASKED), st.text(max_size=12))
# Plausible messages (the right types, hostile content) most of the time, so that scans pass and
# files travel; malformed ones (wrong types, out of range) now and then.
sizes = st.sampled_from([0, 5, 7, 3 << 20, 2**40])
modes = st.sampled_from([0o644, 0o755, 0o600, 0o4755, 0o2777, 0o1777, 0o7777, 0o666])
mtimes = st.sampled_from([0, 1, -5, 1_700_000_000 * 10**9, 2**62])
kinds = st.sampled_from(["file", "dir", "symlink"])
targets = st.sampled_from(["ok.txt", "../../etc/passwd", "/etc", ".git/hooks"])
plausible = st.fixed_dictionaries(
    {
        "path": paths,
        "type": kinds,
        "size": sizes,
        "mtime_ns": mtimes,
        "mode": modes,
        "target": targets,
    },
)
bad_sizes = st.one_of(st.sampled_from([-1, 2**70]), st.text(max_size=3), st.floats())
bad_modes = st.one_of(st.sampled_from([-1, 2**40]), st.text(max_size=3))
bad_mtimes = st.one_of(st.sampled_from([2**63, 2**80]), st.floats(allow_nan=False), st.none())
malformed = st.fixed_dictionaries(
    {
        "path": st.one_of(paths, st.integers(), st.none()),
        "type": st.sampled_from(["file", "dir", "symlink", "fifo", 7, None]),
        "size": st.one_of(sizes, bad_sizes),
        "mtime_ns": st.one_of(mtimes, bad_mtimes),
        "mode": st.one_of(modes, bad_modes),
    },
    optional={
        "target": st.sampled_from(["", "a\x00b", "x" * 5000]),
        "digest": st.sampled_from(["zz", 5, "00" * 32]),
    },
)
raw = st.one_of(malformed, st.none(), st.integers(), st.text(max_size=4))
entries = st.one_of(plausible, plausible, plausible, raw)
results = st.fixed_dictionaries(
    {"path": paths, "ok": st.one_of(st.booleans(), st.booleans(), st.integers())},
    optional={
        "entry": st.one_of(plausible, st.none(), raw),
        "changed": st.booleans(),
        "error": st.text(max_size=5),
        "digest": st.sampled_from(["", "ab" * 32, "zz"]),
    },
)
inline = st.fixed_dictionaries(
    {
        "path": paths,
        "ok": st.booleans(),
        "mode": st.one_of(modes, modes, bad_modes),
        "mtime_ns": st.one_of(mtimes, mtimes, bad_mtimes),
        "data": st.sampled_from(["aGVsbG8=", "", "!!notbase64", "QUFBQUFBQUFBQUFB"]),
    },
)
headers = st.fixed_dictionaries(
    {
        "path": paths,
        "size": st.one_of(sizes, sizes, bad_sizes),
        "mode": st.one_of(modes, modes, bad_modes),
        "mtime_ns": st.one_of(mtimes, mtimes, bad_mtimes),
        "expect": st.one_of(st.none(), st.sampled_from([EDITED, LAPTOP_NOW]), plausible),
    },
)
# Answers in the right shape about the right paths, with hostile content: the cycle goes on,
# files travel, and each lie meets the check meant for it.
asked_mostly = st.one_of(st.just(ASKED), st.just(ASKED), paths)
shaped = st.builds(
    Script,
    entries=st.lists(plausible, max_size=8),
    problems=st.lists(
        st.fixed_dictionaries({"path": paths, "problem": st.text(max_size=5)}), max_size=2
    ),
    events=st.lists(
        st.fixed_dictionaries({"path": paths, "entry": st.one_of(plausible, st.none())}), max_size=4
    ),
    results=st.lists(
        st.fixed_dictionaries(
            {"path": asked_mostly, "ok": st.booleans()},
            optional={"entry": st.one_of(plausible, st.none()), "changed": st.booleans()},
        ),
        max_size=6,
    ),
    inline=st.lists(
        st.fixed_dictionaries(
            {
                "path": asked_mostly,
                "ok": st.booleans(),
                "mode": modes,
                "mtime_ns": mtimes,
                "data": st.sampled_from(["aGVsbG8=", "", "QUFBQUFBQUFBQUFB"]),
            },
        ),
        max_size=4,
    ),
    headers=st.lists(
        st.fixed_dictionaries(
            {
                "path": asked_mostly,
                "size": sizes,
                "mode": modes,
                "mtime_ns": mtimes,
                "expect": st.one_of(st.none(), st.sampled_from([EDITED, LAPTOP_NOW]), plausible),
            },
        ),
        max_size=3,
    ),
    trailer_ok=st.booleans(),
)
# Anything at all: wrong types, out of range, answers to questions nobody asked.
anything = st.builds(
    Script,
    entries=st.lists(entries, max_size=8),
    problems=st.lists(
        st.one_of(st.fixed_dictionaries({"path": paths, "problem": st.text(max_size=5)}), raw),
        max_size=2,
    ),
    events=st.lists(
        st.one_of(
            st.fixed_dictionaries({"path": paths, "entry": st.one_of(entries, st.none())}), raw
        ),
        max_size=4,
    ),
    results=st.lists(st.one_of(results, results, raw), max_size=6),
    inline=st.lists(st.one_of(inline, inline, raw), max_size=4),
    headers=st.lists(st.one_of(headers, headers, raw), max_size=3),
    trailer_ok=st.booleans(),
    root_ok=st.one_of(st.just(True), st.just(True), st.booleans(), st.integers()),
)
scripts = st.one_of(shaped, shaped, anything)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=scripts, fold=st.booleans())
def test_whatever_the_remote_says_the_laptop_changes_only_what_it_asked_for(
    laptop: Any, script: Script, fold: bool
) -> None:
    lap = laptop(script, fold=fold)
    lap.cycle()
    lap.cycle(full=False, events=lap.watch())
    lap.cycle(full=False)
    lap.cycle()
    event(f"paths asked: {min(len(lap.asked), 3)}+, refusals: {min(len(lap.errors), 3)}+")
