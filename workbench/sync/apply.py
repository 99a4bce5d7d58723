"""Running a plan: ops first on each side, then one transfer stream each way, then agreement.

The order matters for safety: deletions (deepest first) and folder creations go before files, so
a file's folder exists when it lands; every op and file carries the state the planner saw, and
the side applying it refuses when that changed. Only what both sides confirmed becomes part of
the agreed state; anything refused or failed keeps its old agreement and is retried next cycle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workbench.sync.local import LocalTree
from workbench.sync.manifest import Entry, Problem
from workbench.sync.reconcile import Action, Plan, Side
from workbench.sync.remote import RemoteTree
from workbench.sync.state import Agreed, Conflict
from workbench.sync.wire import Result, SendItem, op

logger = logging.getLogger(__name__)

Progress = Callable[[str, int], None]


def conflict_name(path: str, side: Side, when: float) -> str:
    """``dir/NAME`` -> ``dir/NAME.conflict-<side>-<UTC time>``: sorts beside the original."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(when))
    return f"{path}.conflict-{side}-{stamp}"


@dataclass
class Outcome:
    """What a plan did: the new agreed entries (``None``: forget the path), conflicts found,
    problems met, and the paths that changed under us (looked at again by the next cycle)."""

    agreed: dict[str, Agreed | None] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    retry: set[str] = field(default_factory=set)
    files_sent: int = 0
    bytes_sent: int = 0
    # What each side holds now at the paths changed there (``None``: gone), for the caches.
    after: dict[Side, dict[str, Entry | None]] = field(
        default_factory=lambda: {"local": {}, "remote": {}}
    )


@dataclass
class _Pending:
    """Work for one side: ops, files to land there, and what each one means once done."""

    ops: list[dict[str, Any]] = field(default_factory=list)
    op_actions: dict[str, Action] = field(default_factory=dict)
    files: list[SendItem] = field(default_factory=list)
    file_actions: dict[str, Action | None] = field(default_factory=dict)


def _depth(path: str) -> int:
    return path.count("/")


def _entry_op(path: str, source: Entry, expect: Entry | None) -> dict[str, Any]:
    if source.type == "dir":
        return op("mkdir", path, expect, mode=source.mode or 0o755)
    return op("symlink", path, expect, target=source.target)


def build(plan: Plan, now: float) -> tuple[dict[Side, _Pending], list[Conflict]]:
    pending: dict[Side, _Pending] = {"local": _Pending(), "remote": _Pending()}
    conflicts: list[Conflict] = []
    deletes: dict[Side, list[Action]] = {"local": [], "remote": []}
    for action in plan.actions:
        work = pending[action.to]
        if action.kind == "delete":
            deletes[action.to].append(action)
        elif action.kind == "chmod":
            assert action.source is not None
            work.ops.append(
                op("chmod", action.path, action.expect, executable=action.source.executable)
            )
            work.op_actions[action.path] = action
        elif action.kind == "rename":
            assert action.expect is not None
            work.ops.append(
                op(
                    "rename",
                    action.path,
                    None,
                    origin=action.origin,
                    origin_expect=action.expect.to_json(),
                )
            )
            work.op_actions[action.path] = action
        elif action.kind == "copy":
            assert action.source is not None
            if action.source.type == "file":
                work.files.append(SendItem(action.path, action.path, action.source, action.expect))
                work.file_actions[action.path] = action
            else:
                work.ops.append(_entry_op(action.path, action.source, action.expect))
                work.op_actions[action.path] = action
        else:
            conflicts.append(_conflict(action, pending, now))
    for side, actions in deletes.items():
        ordered = sorted(actions, key=lambda a: -_depth(a.path))
        pending[side].ops[:0] = [op("delete", a.path, a.expect) for a in ordered]
        pending[side].op_actions.update({a.path: a for a in ordered})
    for work in pending.values():
        # renames (a folder they empty may be deleted next; they make the folders they need),
        # deletions (deepest first), then folders (shallowest first), then links and modes.
        rank = {"rename": -1, "delete": 0, "mkdir": 1, "symlink": 2, "chmod": 3}
        work.ops.sort(
            key=lambda o: (
                rank[o["op"]],
                -_depth(o["path"]) if o["op"] == "delete" else _depth(o["path"]),
            )
        )
    return pending, conflicts


def _conflict(action: Action, pending: dict[Side, _Pending], now: float) -> Conflict:
    """Keep both versions: each side gets the other's beside its own, named for the side."""
    record = Conflict(action.path, now)
    versions: tuple[tuple[Entry | None, Side], ...] = (
        (action.remote, "remote"),
        (action.local, "local"),
    )
    for version, side in versions:
        to: Side = "local" if side == "remote" else "remote"
        if version is None or version.type == "dir":
            continue
        name = conflict_name(action.path, side, now)
        if version.type == "file":
            pending[to].files.append(SendItem(action.path, name, version, None))
            pending[to].file_actions[name] = None
        else:
            pending[to].ops.append(op("symlink", name, None, target=version.target))
        if side == "remote":
            record.remote_copy = name
        else:
            record.local_copy = name
    record.local_summary = _summary(action.local)
    record.remote_summary = _summary(action.remote)
    return record


def _summary(entry: Entry | None) -> str:
    if entry is None:
        return "deleted"
    if entry.type == "file":
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.mtime_ns / 1e9))
        return f"file, {entry.size} bytes, modified {stamp}"
    if entry.type == "symlink":
        return f"link to {entry.target}"
    return "folder"


def run(
    plan: Plan,
    local: LocalTree,
    remote: RemoteTree,
    *,
    now: float | None = None,
    progress: Progress | None = None,
) -> Outcome:
    """Apply ``plan``; ``TransportError`` propagates (the caller retries the cycle later)."""
    when = time.time() if now is None else now
    pending, conflicts = build(plan, when)
    outcome = Outcome(conflicts=conflicts)
    push = pending["remote"]
    # Remote folders to make, and nothing else to do there before files: made alongside a
    # large push (its receiver makes any folder a file needs, and mkdir takes a folder that is
    # already there), so a first sync does not wait a round trip for hundreds of mkdirs.
    alongside = (
        bool(push.files) and not _small(push.files) and all(o["op"] == "mkdir" for o in push.ops)
    )
    ops_thread = _RemoteOps(remote, push.ops) if alongside and push.ops else None
    sides: tuple[tuple[Side, LocalTree | RemoteTree], ...] = (("remote", remote), ("local", local))
    for side, tree in sides:
        work = pending[side]
        if work.ops and not (side == "remote" and alongside):
            for result in tree.apply_ops(work.ops):
                _settle(outcome, side, work.op_actions.get(result.path), result)

    if push.files and _small(push.files):
        # A few small files go inline on the request channel: one round trip, no new channel.
        results = remote.put([local.read_inline(item) for item in push.files])
        _settle_files(outcome, "remote", push, [], results)
        _report(progress, results)
    elif push.files:

        def on_pushed(result: Result) -> None:
            if progress is not None:
                progress(result.path, result.entry.size if result.entry else 0)

        try:
            verdicts, results = remote.receive(
                lambda out: local.write_stream(push.files, out),
                [item.dest for item in push.files],
                on_result=on_pushed,
                size=sum(item.source.size for item in push.files),
            )
        finally:
            op_results = ops_thread.results() if ops_thread is not None else []
        for result in op_results:
            _settle(outcome, "remote", push.op_actions.get(result.path), result)
        _settle_files(outcome, "remote", push, verdicts, results)

    pull = pending["local"]
    if pull.files and _small(pull.files):
        sent = remote.get(pull.files)
        results = [
            local.land_inline(item, data) for item, data in zip(pull.files, sent, strict=True)
        ]
        _settle_files(outcome, "local", pull, [], results)
        _report(progress, results)
    elif pull.files:
        results = remote.send(pull.files, lambda stream: local.read_stream(stream, pull.files))
        _settle_files(outcome, "local", pull, [], results)
        _report(progress, results)
    return outcome


class _RemoteOps:
    """Remote ops applied on a thread of their own (over the agent's request channel) while the
    push stream runs on its own channel; ``results`` waits and re-raises what went wrong."""

    def __init__(self, remote: RemoteTree, ops: list[dict[str, Any]]) -> None:
        self._results: list[Result] = []
        self._failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._apply, args=(remote, ops), daemon=True, name="sync-remote-ops"
        )
        self._thread.start()

    def _apply(self, remote: RemoteTree, ops: list[dict[str, Any]]) -> None:
        try:
            self._results = remote.apply_ops(ops)
        except BaseException as exc:  # re-raised on the cycle's thread
            self._failure.append(exc)

    def results(self) -> list[Result]:
        self._thread.join()
        if self._failure:
            raise self._failure[0]
        return self._results


def _report(progress: Progress | None, results: list[Result]) -> None:
    if progress is not None:
        for result in results:
            progress(result.path, result.entry.size if result.entry else 0)


INLINE_MAX_FILES = 64
INLINE_MAX_BYTES = 2 << 20


def _small(items: list[SendItem]) -> bool:
    return len(items) <= INLINE_MAX_FILES and sum(i.source.size for i in items) <= INLINE_MAX_BYTES


def _settle_files(
    outcome: Outcome, side: Side, work: _Pending, verdicts: list[Result], results: list[Result]
) -> None:
    """The receiver's results decide; a file it never reported on is retried next cycle."""
    sources = {item.dest: item.path for item in work.files}
    reported = {r.path for r in results}
    for result in results:
        if result.path not in work.file_actions:
            continue
        if result.ok:
            outcome.files_sent += 1
            outcome.bytes_sent += result.entry.size if result.entry else 0
        elif result.changed:
            outcome.retry.add(sources[result.path])  # a conflict copy's source: the original
        _settle(outcome, side, work.file_actions[result.path], result)
    for item in work.files:
        if item.dest not in reported:
            outcome.retry.update((item.path, item.dest))
    del verdicts  # the receiver already judged each file by its verdict


def _settle(outcome: Outcome, side: Side, action: Action | None, result: Result) -> None:
    """Record one confirmed change in the agreement, or the reason it did not happen."""
    if not result.ok:
        if result.changed:
            outcome.retry.add(result.path)
            if action is not None:
                outcome.retry.update(p for p in (action.path, action.origin) if p)
        else:
            outcome.problems.append(Problem(result.path, side, result.error))
        return
    outcome.after[side][result.path] = result.entry
    if action is None:  # a conflict copy: one-sided until the next cycle carries it over
        return
    if action.kind == "delete":
        outcome.after[side][result.path] = None
        outcome.agreed[action.path] = None
        return
    if action.kind == "rename":
        outcome.after[side][action.origin] = None
        outcome.agreed[action.origin] = None
    source, after = action.source, result.entry
    if source is None or after is None:
        return
    local, remote = (source, after) if side == "remote" else (after, source)
    digest = result.digest or source.digest
    outcome.agreed[action.path] = Agreed.of(local, remote, digest)
