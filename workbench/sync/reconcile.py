"""The three-way comparison: both manifests against the last agreed state, giving a plan.

Pure functions, no I/O: ``hash_requests`` says which files must be hashed to decide, and
``plan`` turns the (hashed) manifests into actions. The rules, after Mutagen's two-way-safe mode:
a change on one side propagates; the same change on both sides is agreement; different changes
on both sides are a conflict where both versions are kept; a deletion propagates only when the
other side is unchanged (an edit beats a delete). Whether a plan may run at all (one side lost
most of what was agreed) is ``workbench.sync.loss``'s to say.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

from workbench.sync import relpath
from workbench.sync.manifest import Entry, Manifest, Problem
from workbench.sync.state import Agreed

Side = Literal["local", "remote"]
ActionKind = Literal["copy", "delete", "chmod", "conflict", "rename"]


def other(side: Side) -> Side:
    return "remote" if side == "local" else "local"


@dataclass(frozen=True)
class Action:
    """Make ``to``'s ``path`` look like ``source`` (the other side's entry), or delete it.

    ``expect`` is what ``to`` held at ``path`` when it was scanned; the side applying the action
    checks it first and refuses when the path changed meanwhile, so nothing is overwritten blind.
    A ``conflict`` carries both entries and changes nothing at ``path`` itself. A ``rename``
    moves ``to``'s file at ``origin`` (``expect`` is what was there) to ``path``: the other side
    moved a file whose content ``to`` already holds, so no byte needs to travel.
    """

    kind: ActionKind
    path: str
    to: Side
    source: Entry | None = None
    expect: Entry | None = None
    local: Entry | None = None
    remote: Entry | None = None
    origin: str = ""

    def describe(self) -> str:
        arrow = "->" if self.to == "remote" else "<-"
        return f"{self.kind} {arrow} {self.path}"


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    # Paths already equal on both sides, with their refreshed agreed state.
    agreed: dict[str, Agreed] = field(default_factory=dict)
    # Paths gone from both sides: forget them.
    dropped: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for action in self.actions:
            key = action.kind if action.kind == "conflict" else f"{action.kind}_{action.to}"
            out[key] = out.get(key, 0) + 1
        return out


def _stat_same(entry: Entry, base: Agreed | None, side: Side) -> bool:
    return base is not None and base.stat_matches(entry, side)


def _digest(entry: Entry, base: Agreed | None, side: Side) -> str:
    """The entry's content digest: hashed this cycle, or the agreed one when stat says so."""
    if entry.digest:
        return entry.digest
    if entry.type == "file" and base is not None and _stat_same(entry, base, side):
        return base.digest
    return ""


def _maybe_changed(entry: Entry | None, base: Agreed | None, side: Side) -> bool:
    if entry is None or base is None:
        return (entry is None) != (base is None)
    if entry.type != base.type:
        return True
    if entry.type == "symlink":
        return entry.target != base.target
    if entry.type == "dir":
        return False
    return entry.executable != base.executable or not _stat_same(entry, base, side)


def hash_requests(
    base: Mapping[str, Agreed],
    local: Manifest,
    remote: Manifest,
    *,
    only: Collection[str] | None = None,
) -> tuple[set[str], set[str]]:
    """Files whose content must be read to decide (a stat change alone is not an edit);
    ``only``: look at these paths alone (an incremental cycle), else at every path."""
    want_local: set[str] = set()
    want_remote: set[str] = set()
    for path in local.keys() | remote.keys() if only is None else only:
        lo, re_, b = local.get(path), remote.get(path), base.get(path)
        lc, rc = _maybe_changed(lo, b, "local"), _maybe_changed(re_, b, "remote")
        if not (lc and rc):
            continue  # one side unchanged: the other's stat change propagates as it is
        files = [(e, s) for e, s in ((lo, "local"), (re_, "remote")) if e and e.type == "file"]
        if len(files) == 2 and lo and re_:
            if lo.size == re_.size or (b is not None and b.type == "file"):
                want_local.add(path)
                want_remote.add(path)
        elif len(files) == 1 and b is not None and b.type == "file":
            entry, side = files[0]
            size = b.local_size if side == "local" else b.remote_size
            if entry.size == size:
                (want_local if side == "local" else want_remote).add(path)
    want_local |= _rename_suspects(base, local, remote, "local", only)
    want_remote |= _rename_suspects(base, remote, local, "remote", only)
    for wanted, manifest, side in ((want_local, local, "local"), (want_remote, remote, "remote")):
        for path in list(wanted):
            if _digest(manifest[path], base.get(path), side):  # type: ignore[arg-type]
                wanted.discard(path)
    return want_local, want_remote


def _rename_suspects(
    base: Mapping[str, Agreed],
    here: Manifest,
    there: Manifest,
    side: Side,
    only: Collection[str] | None,
) -> set[str]:
    """New files on ``side`` as large as a file that went from ``side`` and stayed unchanged on
    the other: hashed, so a move can travel as a rename instead of the file's bytes."""
    sizes: set[int] = set()
    for path in base if only is None else only:
        agreed = base.get(path)
        if agreed is None or agreed.type != "file" or path in here:
            continue
        kept = there.get(path)
        if kept is not None and agreed.stat_matches(kept, other(side)):
            sizes.add(agreed.local_size if side == "local" else agreed.remote_size)
    sizes.discard(0)
    if not sizes:
        return set()
    candidates = here if only is None else [p for p in only if p in here]
    return {
        path
        for path in candidates
        if (entry := here[path]).type == "file"
        and entry.size in sizes
        and path not in base
        and path not in there
    }


def _same_content(a: Entry | None, b: Entry | None, da: str, db: str) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if a.type != b.type:
        return False
    if a.type == "dir":
        return True
    if a.type == "symlink":
        return a.target == b.target
    return bool(da) and da == db and a.executable == b.executable


def _changed(entry: Entry | None, base: Agreed | None, side: Side, digest: str) -> bool:
    if not _maybe_changed(entry, base, side):
        return False
    if entry is None or base is None or entry.type != "file" or base.type != "file":
        return True
    if entry.executable != base.executable:
        return True
    return not digest or digest != base.digest


def plan(
    base: Mapping[str, Agreed],
    local: Manifest,
    remote: Manifest,
    *,
    skip: Collection[str] = (),
    problems: Collection[Problem] = (),
    forced: Mapping[str, str] | None = None,
    case_insensitive: Collection[Side] = (),
    only: Collection[str] | None = None,
) -> Plan:
    """Decide what to do. ``skip``: paths left alone (open conflicts); ``problems``: paths that
    could not be read (left alone with their subtrees, so unreadable never means deleted);
    ``forced``: paths whose fate the user chose with ``resolve`` (a side, or ``delete``);
    ``only``: decide for these paths alone (an incremental cycle: the rest is as agreed)."""
    forced = forced or {}
    result = Plan(problems=list(problems))
    blocked = {p.path for p in problems} | set(skip)
    collisions = _case_collisions(local.keys() | remote.keys())
    for group in collisions:
        names = ", ".join(sorted(group))
        for side in case_insensitive:
            result.problems.append(
                Problem(
                    sorted(group)[0],
                    side,
                    f"names differ only by case ({names}); "
                    f"the {side} file system cannot hold both, so they are not synced",
                )
            )
            blocked |= group
        if not case_insensitive:
            result.problems.append(
                Problem(
                    sorted(group)[0],
                    "both",
                    f"names differ only by case ({names}); "
                    "they would collide on a case-insensitive file system (macOS, Windows)",
                )
            )

    def is_blocked(path: str) -> bool:
        if not blocked:
            return False
        if path in blocked:
            return True
        return any(a in blocked for a in relpath.ancestors(path))

    paths = local.keys() | remote.keys() | base.keys() if only is None else only
    for path in sorted(paths):
        if is_blocked(path):
            continue
        lo, re_, b = local.get(path), remote.get(path), base.get(path)
        if (
            path not in forced
            and lo is not None
            and re_ is not None
            and not _maybe_changed(lo, b, "local")
            and not _maybe_changed(re_, b, "remote")
        ):
            continue  # the common case on a big tree: as agreed on both sides, nothing to do
        dl = _digest(lo, b, "local") if lo else ""
        dr = _digest(re_, b, "remote") if re_ else ""
        if lo is not None and dl and not lo.digest:
            lo = lo.with_digest(dl)
        if re_ is not None and dr and not re_.digest:
            re_ = re_.with_digest(dr)
        if path in forced:
            _force(result, path, forced[path], lo, re_)
            continue
        lc = _changed(lo, b, "local", dl)
        rc = _changed(re_, b, "remote", dr)
        if not lc and not rc:
            _agree(result, path, lo, re_, dl or dr or (b.digest if b else ""))
        elif lc and not rc:
            _propagate(result, path, "local", lo, re_)
        elif rc and not lc:
            _propagate(result, path, "remote", re_, lo)
        elif _same_content(lo, re_, dl, dr):
            _agree(result, path, lo, re_, dl)
        elif lo is None:
            _propagate(result, path, "remote", re_, lo)  # an edit beats a delete
        elif re_ is None:
            _propagate(result, path, "local", lo, re_)
        else:
            result.actions.append(Action("conflict", path, "local", local=lo, remote=re_))
    _drop_under_conflicts(result)
    _renames(result, base)
    _ensure_parents(result, local, remote)
    return result


def _force(result: Plan, path: str, choice: str, lo: Entry | None, re_: Entry | None) -> None:
    """The user's choice from ``resolve``: a side wins outright, or the path goes everywhere."""
    if choice == "delete":
        for entry, side in ((lo, "local"), (re_, "remote")):
            if entry is not None:
                result.actions.append(Action("delete", path, side, expect=entry))  # type: ignore[arg-type]
        if lo is None and re_ is None:
            result.dropped.add(path)
    elif choice == "local":
        _propagate(result, path, "local", lo, re_)
    else:
        _propagate(result, path, "remote", re_, lo)


def _agree(result: Plan, path: str, lo: Entry | None, re_: Entry | None, digest: str) -> None:
    if lo is None or re_ is None:
        result.dropped.add(path)
    else:
        result.agreed[path] = Agreed.of(lo, re_, digest)


def _propagate(
    result: Plan, path: str, winner: Side, source: Entry | None, target: Entry | None
) -> None:
    to = other(winner)
    if source is None:
        if target is None:
            result.dropped.add(path)
        else:
            result.actions.append(Action("delete", path, to, expect=target))
        return
    if (
        target is not None
        and source.type == "file"
        and target.type == "file"
        and source.digest
        and source.digest == target.digest
        and source.executable != target.executable
    ):
        result.actions.append(Action("chmod", path, to, source=source, expect=target))
        return
    if target is not None and source.type == "dir" and target.type == "dir":
        local, remote = (source, target) if winner == "local" else (target, source)
        result.agreed[path] = Agreed.of(local, remote, "")
        return
    result.actions.append(Action("copy", path, to, source=source, expect=target))


def _renames(result: Plan, base: Mapping[str, Agreed]) -> None:
    """A delete of ``A`` and a copy of a new ``B`` to the same side, where ``B``'s content is what
    that side holds at ``A``: one rename there instead (a moved checkpoint does not travel)."""
    gone: dict[tuple[Side, str, bool], list[Action]] = {}
    for action in result.actions:
        agreed = base.get(action.path)
        expect = action.expect
        if (
            action.kind == "delete"
            and expect is not None
            and expect.type == "file"
            and expect.size
            and agreed is not None
            and agreed.digest
        ):
            gone.setdefault((action.to, agreed.digest, expect.executable), []).append(action)
    if not gone:
        return
    replaced: set[int] = set()
    actions: list[Action] = []
    for action in result.actions:
        actions.append(_as_rename(action, gone, replaced) or action)
    result.actions = [a for a in actions if id(a) not in replaced]


def _as_rename(
    action: Action, gone: Mapping[tuple[Side, str, bool], list[Action]], replaced: set[int]
) -> Action | None:
    source = action.source
    if action.kind != "copy" or action.expect is not None or not source or not source.digest:
        return None
    for moved in gone.get((action.to, source.digest, source.executable), []):
        if id(moved) in replaced or moved.path.casefold() == action.path.casefold():
            continue  # a case-only rename could be the same file on this side
        replaced.add(id(moved))
        return Action("rename", action.path, action.to, source, moved.expect, origin=moved.path)
    return None


def _drop_under_conflicts(result: Plan) -> None:
    conflicted = {a.path for a in result.actions if a.kind == "conflict"}
    if not conflicted:
        return
    result.actions = [
        a
        for a in result.actions
        if a.kind == "conflict" or not any(x in conflicted for x in relpath.ancestors(a.path))
    ]


def _ensure_parents(result: Plan, local: Manifest, remote: Manifest) -> None:
    """A file written under a folder the receiving side deleted brings the folder back, and the
    sending side keeps it: an edit inside a folder beats the folder's deletion."""
    deletes = {(a.to, a.path): a for a in result.actions if a.kind == "delete"}
    creates = {(a.to, a.path) for a in result.actions if a.kind == "copy"}
    extra: list[Action] = []
    for action in list(result.actions):
        if action.kind != "copy":
            continue
        sender = local if action.to == "remote" else remote
        receiver = remote if action.to == "remote" else local
        for folder in relpath.ancestors(action.path):
            if folder in receiver or (action.to, folder) in creates:
                continue
            source = sender.get(folder)
            if source is None or source.type != "dir":
                continue
            deletes.pop((other(action.to), folder), None)
            creates.add((action.to, folder))
            extra.append(Action("copy", folder, action.to, source=source, expect=None))
    kept_deletes = set(id(a) for a in deletes.values())
    result.actions = [
        a for a in result.actions if a.kind != "delete" or id(a) in kept_deletes
    ] + extra


def _case_collisions(paths: Collection[str]) -> list[set[str]]:
    if len({path.casefold() for path in paths}) == len(paths):
        return []  # the usual case, in one pass without a set per path
    groups: dict[str, set[str]] = {}
    for path in paths:
        groups.setdefault(path.casefold(), set()).add(path)
    return [g for g in groups.values() if len(g) > 1]
