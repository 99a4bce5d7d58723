"""The halt: sync stops when one side lost most of what both sides had agreed on.

A wiped volume, an unmounted disk, a failed checkout, a wrong folder: most agreed files are gone
from one side, and propagating that would delete them on the other side too. What else appeared
on the emptied side (a ``nohup.out``, an empty folder left behind) changes nothing, so the rule
counts what was lost, not what is left: a side halts sync when it lost more than half of the
agreed files and at least ``LOSS_MIN`` of them, or all of them. A wipe seen by the watcher as a
stream of small batches is counted together: deletions that side made in the last
``LOSS_WINDOW`` seconds add up.

Two ways on, both recorded in the agreed state so that they work whether or not a session runs
(``nvwb sync confirm-deletions`` and ``nvwb sync restore``): confirm the loss (the files go on
the other side too; only as many as the halt showed), or restore (they are copied back from
the other side). Resuming without either halts again while the files are still missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from workbench.errors import ConflictError, UsageError
from workbench.sync import relpath
from workbench.sync.manifest import Manifest, Problem
from workbench.sync.reconcile import Plan, Side, other
from workbench.sync.state import Agreed, SyncState

LOSS_SHARE = 0.5  # more than this share of the agreed files...
LOSS_MIN = 10  # ...and at least this many (or every one of them)
LOSS_WINDOW = 60.0  # deletions a side made within this many seconds count together

CONFIRM = "nvwb sync confirm-deletions"
RESTORE = "nvwb sync restore"
NAMES: dict[str, str] = {"local": "the laptop", "remote": "the remote"}


class SyncHalted(ConflictError):
    """Sync stopped rather than delete what one side lost (or its folder is gone)."""

    code = "sync_halted"


@dataclass(frozen=True)
class Loss:
    """What one side lost: ``lost`` of the ``agreed`` files both sides last agreed on."""

    side: Side
    lost: int
    agreed: int

    def halts(self) -> bool:
        share = self.lost > self.agreed * LOSS_SHARE
        return share and (self.lost >= LOSS_MIN or self.lost == self.agreed)

    def message(self) -> str:
        where, there = NAMES[self.side], NAMES[other(self.side)]
        return (
            f"sync halted: {where} lost {self.lost} of the {self.agreed} files both sides "
            f"agreed on (a wiped volume, an unmounted disk, a failed checkout?), and syncing "
            f"would delete them on {there} too. If they should go, run '{CONFIRM}' (in the "
            f"app: Confirm deletions in the Files tab); to copy them back from {there}, run "
            f"'{RESTORE}' (in the app: Restore)"
        )

    def to_json(self) -> dict[str, object]:
        return {"side": self.side, "lost": self.lost, "agreed": self.agreed, "at": time.time()}


def root_gone(message: str) -> str:
    """The halt for a remote folder that is gone after a first sync."""
    return (
        f"sync halted: {message}, though both sides were in step before. If the remote copy is "
        f"gone for good, run '{RESTORE}' to copy the project there again (in the app: "
        "Restore); otherwise put it back and run 'nvwb sync resume'"
    )


@dataclass
class LossGuard:
    """Applies the rule to each plan; remembers what each side lost lately (not saved: a new
    session starts with a full scan, which sees a whole loss at once)."""

    recent: dict[Side, list[tuple[float, int]]] = field(
        default_factory=lambda: {"local": [], "remote": []}
    )

    def check(
        self,
        plan: Plan,
        state: SyncState,
        caches: Mapping[Side, Manifest],
        problems: Iterable[Problem],
        now: float,
    ) -> Loss | None:
        """The loss that halts this plan, if one does (a confirmed one does not)."""
        blocked = {p.path for p in problems}
        for side in ("local", "remote"):
            if not _deletes_files(plan, other(side)):
                continue
            lost, agreed = count_lost(state.base, caches[side], caches[other(side)], blocked)
            recent = self._recent(side, now)
            loss = Loss(side, lost + recent, agreed + recent)
            if loss.halts() and loss.lost > int(state.allow_loss.get(side, 0)):
                return loss
        return None

    def note(self, plan: Plan, gone: Iterable[str], state: SyncState, now: float) -> None:
        """After a plan ran: the files each side's loss deleted on the other (``gone``: paths
        deleted); a confirmed loss is spent once its deletions went."""
        deleted = set(gone)
        for side in ("local", "remote"):
            count = sum(
                1
                for a in plan.actions
                if a.kind == "delete"
                and a.to == other(side)
                and a.path in deleted
                and a.expect is not None
                and a.expect.type != "dir"
            )
            if not count:
                continue
            if side in state.allow_loss:  # the confirmed loss: spent, and not counted again
                del state.allow_loss[side]
                self.recent[side].clear()
            else:
                self.recent[side].append((now, count))

    def _recent(self, side: Side, now: float) -> int:
        kept = [(t, n) for t, n in self.recent[side] if now - t < LOSS_WINDOW]
        self.recent[side] = kept
        return sum(n for _, n in kept)


def _deletes_files(plan: Plan, side: Side) -> bool:
    return any(
        a.kind == "delete" and a.to == side and a.expect is not None and a.expect.type != "dir"
        for a in plan.actions
    )


def count_lost(
    base: Mapping[str, Agreed], here: Manifest, there: Manifest, blocked: set[str]
) -> tuple[int, int]:
    """Agreed files (not folders) missing ``here`` and still ``there`` (what a deletion would
    take), and the agreed files still on either side. A path under a problem (it could not be
    read) is not lost."""
    lost = agreed = 0
    for path, entry in base.items():
        if entry.type == "dir":
            continue
        if path not in here and path not in there:
            continue  # gone from both: nothing left to lose
        agreed += 1
        if path not in here:
            if blocked and (path in blocked or any(a in blocked for a in relpath.ancestors(path))):
                continue
            lost += 1
    return lost, agreed


def settle(state: SyncState, how: str) -> None:
    """``confirm-deletions`` or ``restore`` on the halt recorded in ``state`` (raises
    ``UsageError`` when there is none to settle)."""
    halt = state.halt
    if not halt:
        raise UsageError(
            "sync is not halted for lost files: there is nothing to confirm or restore",
            hint="'nvwb sync status' shows the state",
        )
    side = str(halt.get("side"))
    if side not in NAMES:
        raise UsageError("the recorded halt names no side; run 'nvwb sync resume' to look again")
    if how == "confirm-deletions":
        if halt.get("root"):
            raise UsageError(
                f"{NAMES[side]}'s folder itself is gone: there is nothing to delete",
                hint=f"'{RESTORE}' copies the project there again",
            )
        state.allow_loss[side] = int(halt.get("lost") or 0)
    elif how == "restore":
        state.restore = side
    else:
        raise UsageError(f"unknown way to settle a halt: {how!r}")
    state.halt = None
    state.paused = False


def restore_plan(state: SyncState, caches: Mapping[Side, Manifest]) -> None:
    """Carry out a ``restore``: every agreed path the side lost that the other side still has
    is forced from the other side (copied back), then the request is spent."""
    side: Side = "remote" if state.restore == "remote" else "local"
    if state.restore in ("local", "remote"):
        here, there = caches[side], caches[other(side)]
        for path in state.base:
            if path not in here and path in there:
                state.forced[path] = other(side)
    state.restore = ""
