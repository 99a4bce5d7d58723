"""One sync cycle: bring both manifests up to date, hash what must be, plan, apply, remember.

``SyncEngine`` keeps a manifest cache per side. A full cycle scans both trees; an incremental one
re-reads only the paths the watchers flagged (``refresh``), which is what keeps one small edit
well under the latency goal on a large tree. Either way the plan is made over the whole cached
manifests, so the rules never depend on which kind of cycle ran.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from workbench.sync import apply as applier
from workbench.sync import choices, relpath
from workbench.sync.ignore import IgnoreRules, base_rules, load_rules
from workbench.sync.local import LocalTree
from workbench.sync.loss import LossGuard, restore_plan, root_gone, settle
from workbench.sync.manifest import Entry, Manifest, Problem, ScanResult
from workbench.sync.reconcile import Action, Plan, Side, hash_requests, plan
from workbench.sync.remote import BULK_OWN_CONNECTION, PYTHON, RemoteTree
from workbench.sync.state import StateStore, SyncState
from workbench.sync.wire import op

logger = logging.getLogger(__name__)

# A file that changed while it was being sent waits this long before the next try, twice as
# long each time it changes again, up to HOLD_MAX: a checkpoint still being written is not
# re-sent (and dropped) every cycle while it grows.
HOLD_FIRST = 0.25
HOLD_MAX = 8.0


@dataclass
class CycleReport:
    """What one cycle found and did, for status and events."""

    started: float
    seconds: float = 0.0
    full: bool = False
    halted: str | None = None
    changes: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    new_conflicts: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)  # changed under the cycle: looked at again
    held: list[str] = field(default_factory=list)  # files left for a later try (see HOLD_FIRST)
    held_until: float | None = None  # when the first of them is due (time.time())
    files_sent: int = 0
    bytes_sent: int = 0

    @property
    def changed_anything(self) -> bool:
        return bool(self.changes)

    def to_json(self) -> dict[str, object]:
        return {
            "full": self.full,
            "seconds": round(self.seconds, 4),
            "halted": self.halted,
            "changes": self.changes,
            "problems": [p.to_json() for p in self.problems],
            "new_conflicts": self.new_conflicts,
            "retry": self.retry,
            "held": self.held,
            "files_sent": self.files_sent,
            "bytes_sent": self.bytes_sent,
        }


class SyncEngine:
    """The cycle logic of a session, without threads: ``cycle()`` is called by the session."""

    def __init__(
        self,
        local: LocalTree,
        remote: RemoteTree,
        store: StateStore,
        *,
        remote_only: Iterable[str] = (),
        case_insensitive: Iterable[Side] = (),
    ) -> None:
        self.local = local
        self.remote = remote
        self.store = store
        self.remote_only = tuple(remote_only)
        self.case_insensitive = tuple(case_insensitive)
        # Where this machine's disk folds case, so do its ignore rules (as git's do there).
        self.fold_case = "local" in self.case_insensitive
        local.refuse = self._refused_here
        self.losses = LossGuard()
        self.state: SyncState = store.load()
        if self.state.remote_python and remote.python == PYTHON:
            remote.python = self.state.remote_python
        remote.start_soon()  # the agent starts while this machine reads its ignore rules
        if not self.state.base:
            remote.warm_bulk()  # a first sync: files will travel, so start a transfer process
        # The project's own ignore files are read by each full scan (a walk of the tree): until
        # the first, the defaults and remote-only folders stand in (they only filter watcher
        # events, which the first scan supersedes).
        self.rules: IgnoreRules = base_rules(
            remote_only=self.remote_only, case_insensitive=self.fold_case
        )
        self.caches: dict[Side, Manifest] = {"local": {}, "remote": {}}
        self.scan_problems: dict[Side, list[Problem]] = {"local": [], "remote": []}
        self.scanned = False
        self.prepared = False
        self.cleaned = False
        # Paths that may have changed since the last cycle (watcher events, what the last cycle
        # wrote): an incremental cycle plans only these, so an edit costs the same on a tree of
        # 500 files or 500,000. A full cycle plans everything.
        self.touched: set[str] = set()
        # Files that changed under a transfer: path -> (times in a row, not to be sent before).
        self.held: dict[str, tuple[int, float]] = {}

    def load_rules(self) -> IgnoreRules:
        return load_rules(
            self.local.root, remote_only=self.remote_only, case_insensitive=self.fold_case
        )

    def _refused_here(self, path: str, is_dir: bool) -> str:
        """Why nothing may be written at ``path`` on this machine ("" if it may)."""
        return "it is ignored here" if self.rules.ignored(path, is_dir) else ""

    def _admitted(self, path: str, entry: Entry | None) -> bool:
        """Whether a remote entry may be taken in: never one at a path this machine ignores
        (the remote was sent the same rules, but it may not have kept to them)."""
        return not self.rules.ignored(path, entry is not None and entry.type == "dir")

    def _may_create_remote_root(self) -> bool:
        """A first sync creates the remote folder, and so does a ``restore`` of it."""
        return not self.state.base or self.state.restore == "remote"

    def prepare(self) -> None:
        """Once per engine, before the remote watcher starts: the remote root exists (a first
        sync creates it). The first full scan also clears temp files a killed transfer left."""
        if not self.prepared:
            self.remote.prepare(create=self._may_create_remote_root())
            self._remember_python()
            self.prepared = True

    def _remember_python(self) -> None:
        if self.state.remote_python != self.remote.python:
            self.state.remote_python = self.remote.python
            self.store.save(self.state)

    # -- keeping the caches true -----------------------------------------------------------

    def full_scan(self) -> str | None:
        """Scan both sides whole, at once (the remote's agent works while this machine walks
        its own tree); returns why sync must halt, if it must."""
        self.rules = self.load_rules()  # a .gitignore may have changed since the last scan
        first = not self.cleaned
        remote_scan: list[ScanResult] = []
        failure: list[BaseException] = []

        def scan_remote() -> None:
            try:
                remote_scan.append(
                    self.remote.scan(
                        self.rules, create=first and self._may_create_remote_root(), clean=first
                    )
                )
            except BaseException as exc:  # re-raised below, on the cycle's thread
                failure.append(exc)

        worker = threading.Thread(target=scan_remote, daemon=True, name="sync-remote-scan")
        worker.start()
        local_scan = self.local.scan(self.rules, clean=first)
        bulk, large = self._outgoing(local_scan.entries)
        if bulk:
            # Files to send: start a transfer process now, so the remote shell and interpreter
            # start while the remote scan runs rather than after the plan.
            self.remote.warm_bulk(large=large)
        worker.join()
        if failure:
            raise failure[0]
        if first:
            self._remember_python()
            self.cleaned = True
        if not local_scan.root_ok:
            return local_scan.root_message
        found = remote_scan[0]
        if not found.root_ok:
            if not self.state.base:
                return found.root_message
            self.state.halt = {"side": "remote", "root": True, "at": time.time()}
            self.store.save(self.state)
            return root_gone(found.root_message)
        self.caches = {"local": local_scan.entries, "remote": self._admit(found.entries)}
        self.scan_problems = {"local": local_scan.problems, "remote": found.problems}
        self.scanned = True
        return None

    def _admit(self, remote: Manifest) -> Manifest:
        """The remote's scan, less what this machine ignores (the agent was sent the same
        rules, but may not have kept to them): an entry its own rule ignores, and what an
        ignored folder holds (a scan lists every entry's folder: ``untrusted.scan``)."""
        dropped = {p for p, e in remote.items() if self.rules.matches(p, e.type == "dir")}
        if not dropped:
            return remote
        return {
            path: entry
            for path, entry in remote.items()
            if path not in dropped and not any(a in dropped for a in relpath.ancestors(path))
        }

    def _outgoing(self, local: Manifest) -> tuple[bool, bool]:
        """Whether this machine holds more new or changed files than go inline, and whether
        they weigh enough for a transfer on a connection of its own."""
        base = self.state.base
        count = size = 0
        for path, entry in local.items():
            if entry.type != "file":
                continue
            agreed = base.get(path)
            if agreed is None or not agreed.stat_matches(entry, "local"):
                count += 1
                size += entry.size
                if size >= BULK_OWN_CONNECTION:
                    return True, True
        return count > applier.INLINE_MAX_FILES or size > applier.INLINE_MAX_BYTES, False

    def refresh_local(self, paths: Iterable[str]) -> None:
        """Re-read ``paths`` on this machine (a watcher saw them change)."""
        cache = self.caches["local"]
        for path in sorted(set(paths), key=lambda p: p.count("/")):
            if not relpath.is_safe(path):
                continue
            self._forget_problem("local", path)
            try:
                entry = self.local.stat(path)
            except OSError as exc:  # unreadable is never taken for gone
                self.scan_problems["local"].append(
                    Problem(path, "local", f"cannot read: {exc.strerror or exc}")
                )
                continue
            if entry is not None and self.rules.ignored(path, entry.type == "dir"):
                continue
            self.touched.add(path)
            if entry is None or entry.type != "dir" or cache.get(path) is None:
                self.touched.update(_drop_subtree(cache, path))
            if entry is None:
                continue
            cache[path] = entry
            if entry.type == "dir":
                sub = self.local.scan_under(self.rules, path)
                cache.update(sub.entries)
                self.touched.update(sub.entries)
                self.scan_problems["local"].extend(sub.problems)

    def update_remote(self, events: Iterable[tuple[str, Entry | None]]) -> None:
        """Apply the remote watcher's events (each already stat'ed by the agent)."""
        cache = self.caches["remote"]
        for path, entry in events:
            if not relpath.is_safe(path) or not self._admitted(path, entry):
                continue
            self._forget_problem("remote", path)
            self.touched.add(path)
            if entry is None or entry.type != "dir":
                self.touched.update(_drop_subtree(cache, path))
            if entry is not None:
                cache[path] = entry

    def recheck(self, paths: Iterable[str]) -> None:
        """Re-read ``paths`` on both sides: they changed while a cycle worked on them, so the
        caches are stale there. The next cycle plans them afresh, without a full scan (the
        watchers report whatever changes after this)."""
        wanted = sorted(p for p in set(paths) if relpath.is_safe(p))
        self.refresh_local(wanted)
        rules = self.rules
        # A stat that fails (a folder on the way is a link now, say) leaves the cache as it was:
        # never taken for "gone", which could propagate as a deletion.
        self.update_remote(
            (result.path, result.entry)
            for result in self.remote.apply_ops([op("stat", p, None) for p in wanted])
            if result.ok
            and (result.entry is None or not rules.ignored(result.path, result.entry.type == "dir"))
        )

    def _forget_problem(self, side: Side, path: str) -> None:
        problems = self.scan_problems[side]
        if problems:
            self.scan_problems[side] = [p for p in problems if p.path != path]

    # -- one cycle -------------------------------------------------------------------------

    def cycle(
        self,
        *,
        full: bool = False,
        progress: applier.Progress | None = None,
        on_plan: Callable[[Plan], None] | None = None,
        now: Callable[[], float] = time.time,
    ) -> CycleReport:
        report = CycleReport(started=now(), full=full or not self.scanned)
        if report.full:
            self.held.clear()  # a full cycle (sync now, resume, reconnect) tries everything
            halt = self.full_scan()
            if halt:
                report.halted = halt
                return report
        only = None if report.full else self._planning_set()
        touched, self.touched = self.touched, set()
        try:
            done = self._cycle(report, only, progress, on_plan, now)
        except BaseException:
            self.touched |= touched  # not planned after all: the next cycle must see them
            raise
        if done.halted:
            self.touched |= touched  # nothing ran: still to be planned once settled
        return done

    def _planning_set(self) -> set[str] | None:
        """What an incremental cycle looks at: the touched paths, their folders, what the
        agreed state holds below a touched folder (gone from both caches), paths the user
        resolved and paths with problems. ``None`` (everything) when that is most of the tree."""
        touched = self.touched
        if len(touched) > 2000:
            return None
        only = set(touched)
        for path in touched:
            only.update(relpath.ancestors(path))
        prefixes = tuple(path + "/" for path in touched)
        if prefixes:
            only.update(p for p in self.state.base if p.startswith(prefixes))
        only.update(self.state.forced)
        for problems in self.scan_problems.values():
            only.update(p.path for p in problems)
        return only

    def _cycle(
        self,
        report: CycleReport,
        only: set[str] | None,
        progress: applier.Progress | None,
        on_plan: Callable[[Plan], None] | None,
        now: Callable[[], float],
    ) -> CycleReport:
        local, remote = self.caches["local"], self.caches["remote"]
        if self.state.restore and report.full:
            restore_plan(self.state, self.caches)  # forced copies back, planned below
        hash_problems = self._hash(local, remote, only)
        the_plan = self._plan(local, remote, hash_problems, only)
        the_plan = self._verify_deletions(the_plan, local, remote, hash_problems, only)
        report.problems = the_plan.problems
        loss = self.losses.check(the_plan, self.state, self.caches, the_plan.problems, now())
        if loss is not None:
            self.state.halt = loss.to_json()
            self.store.save(self.state)
            report.halted = loss.message()
            return report
        self._hold(the_plan, report, now())
        report.changes = the_plan.counts()
        if on_plan is not None:
            on_plan(the_plan)
        outcome = applier.run(the_plan, self.local, self.remote, now=now(), progress=progress)
        gone = [path for path, agreed in outcome.agreed.items() if agreed is None]
        self.losses.note(the_plan, gone, self.state, now())
        if self.state.halt is not None:
            self.state.halt = None  # not halted after all: the files are back, or confirmed
            self.store.save(self.state)
        self._remember(the_plan, outcome)
        self._note_holds(the_plan, outcome, now(), set(report.held))
        if self.held:
            report.held_until = min(until for _, until in self.held.values())
        report.problems = [*the_plan.problems, *outcome.problems]
        report.new_conflicts = [c.path for c in outcome.conflicts]
        report.retry = sorted(outcome.retry)
        if outcome.retry:
            self.recheck(outcome.retry)
        report.files_sent = outcome.files_sent
        report.bytes_sent = outcome.bytes_sent
        report.seconds = now() - report.started
        return report

    def _hold(self, the_plan: Plan, report: CycleReport, when: float) -> None:
        """Take out of the plan the copies of files still held; they stay touched, so the cycle
        after their hold plans them again."""
        waiting = {path for path, (_, until) in self.held.items() if until > when}
        if not waiting:
            return
        kept: list[Action] = []
        for action in the_plan.actions:
            if action.kind == "copy" and action.path in waiting:
                report.held.append(action.path)
            else:
                kept.append(action)
        if report.held:
            the_plan.actions = kept
            report.held.sort()
            self.touched.update(report.held)

    def _note_holds(
        self, the_plan: Plan, outcome: applier.Outcome, when: float, kept_back: set[str]
    ) -> None:
        """Hold what changed under this cycle (longer if it did before); release the rest of
        what went, and every hold that has run out and was not kept back this cycle (its path
        was planned again: sent, or nothing left to send), so no hold outlives its reason."""
        for action in the_plan.actions:
            if action.path not in outcome.retry:
                self.held.pop(action.path, None)
        for path in outcome.retry:
            tries = self.held.get(path, (0, 0.0))[0] + 1
            self.held[path] = (tries, when + min(HOLD_FIRST * 2 ** (tries - 1), HOLD_MAX))
        for path in [p for p, (_, until) in self.held.items() if until <= when]:
            if path not in kept_back:
                del self.held[path]

    def _hash(self, local: Manifest, remote: Manifest, only: set[str] | None) -> list[Problem]:
        want_local, want_remote = hash_requests(self.state.base, local, remote, only=only)
        problems: list[Problem] = []
        for side, wanted, tree in (
            ("local", want_local, self.local),
            ("remote", want_remote, self.remote),
        ):
            if not wanted:
                continue
            digests, failed = tree.hash(sorted(wanted))
            cache = local if side == "local" else remote
            for path, digest in digests.items():
                if path in cache:
                    cache[path] = cache[path].with_digest(digest)
            problems.extend(failed)
        return problems

    def _plan(
        self, local: Manifest, remote: Manifest, extra: list[Problem], only: set[str] | None
    ) -> Plan:
        return plan(
            self.state.base,
            local,
            remote,
            only=only,
            skip=self.state.conflicts.keys(),
            problems=[*self.scan_problems["local"], *self.scan_problems["remote"], *extra],
            forced=self.state.forced,
            case_insensitive=self.case_insensitive,
        )

    def _verify_deletions(
        self,
        the_plan: Plan,
        local: Manifest,
        remote: Manifest,
        extra: list[Problem],
        only: set[str] | None,
    ) -> Plan:
        """Before deleting here because the remote's cache says a path is gone, ask the remote:
        a watcher event can be older than a file this session has just put there."""
        suspects = [a.path for a in the_plan.actions if a.kind == "delete" and a.to == "local"]
        suspects += [a.origin for a in the_plan.actions if a.kind == "rename" and a.to == "local"]
        if not suspects:
            return the_plan
        results = self.remote.apply_ops([op("stat", p, None) for p in suspects])
        stale = False
        for result in results:
            if result.ok and result.entry is not None and self._admitted(result.path, result.entry):
                remote[result.path] = result.entry
                stale = True
        return self._plan(local, remote, extra, only) if stale else the_plan

    def _remember(self, the_plan: Plan, outcome: applier.Outcome) -> None:
        state = self.state
        if not (the_plan.actions or the_plan.agreed or the_plan.dropped or state.forced):
            return  # nothing new agreed: no need to rewrite the state file
        for path in the_plan.dropped:
            state.base.pop(path, None)
        state.base.update(the_plan.agreed)
        for path, agreed in outcome.agreed.items():
            if agreed is None:
                state.base.pop(path, None)
            else:
                state.base[path] = agreed
            state.forced.pop(path, None)
        for path in list(state.forced):
            if path not in self.caches["local"] and path not in self.caches["remote"]:
                state.forced.pop(path, None)
        for conflict in outcome.conflicts:
            state.conflicts[conflict.path] = conflict
        for side in ("local", "remote"):
            cache = self.caches[side]
            for path, entry in outcome.after[side].items():
                # Looked at again next cycle: a conflict copy written here is carried across.
                self.touched.add(path)
                if entry is None:
                    self.touched.update(_drop_subtree(cache, path))
                else:
                    cache[path] = entry
        state.last_sync = time.time()
        self.store.save(state)

    def save(self) -> None:
        self.store.save(self.state)

    # -- controls (what a live session asks of it) -----------------------------------------

    @property
    def paused(self) -> bool:
        return self.state.paused

    def pause(self) -> None:
        """Sync nothing until ``resume``; kept in the agreed state (a restart stays paused)."""
        self.state.paused = True
        self.save()

    def resume(self) -> None:
        self.state.paused = False
        self.save()

    def resolve(self, path: str, keep: choices.Keep) -> None:
        """Settle a conflict (``choices.resolve``); the next cycle carries it out."""
        choices.resolve(self.state, path, keep)
        self.save()

    def settle(self, how: str) -> None:
        """``confirm-deletions`` or ``restore`` the halt the agreed state records."""
        settle(self.state, how)
        self.save()

    def disconnect(self) -> None:
        """The link dropped, or the session stops: the remote's processes go, and the next
        cycle scans both sides in full (nothing seen before the drop is trusted blindly)."""
        self.remote.close()
        self.scanned = False


def _drop_subtree(cache: Manifest, path: str) -> list[str]:
    """Forget ``path`` and all below it; returns what was there."""
    gone = [path] if cache.pop(path, None) is not None else []
    prefix = path + "/"
    below = [k for k in cache if k.startswith(prefix)]
    for key in below:
        del cache[key]
    return gone + below


def local_root_case_insensitive(root: Path) -> bool:
    """Whether ``root``'s file system folds case (macOS and Windows defaults do)."""
    probe = root / ".wbsync-case-probe"
    try:
        probe.write_bytes(b"")
        return (root / ".WBSYNC-CASE-PROBE").exists()
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)
