"""What a person decides about a sync, carried out on an agreed state, live or stored.

Why this exists: the same decisions (keep one side's version of a conflict, or both; confirm
the deletions a halt held back, or restore the lost files) are made to a running session's
engine and, with no session running, to the state saved on disk (``workbench.sync.control``);
one implementation serves both, so the two can never mean different things.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from workbench.errors import InvalidValueError, NotFoundError
from workbench.sync.loss import settle
from workbench.sync.state import StateStore, SyncState

if TYPE_CHECKING:
    from workbench.sync.engine import SyncEngine

Keep = Literal["local", "remote", "both"]


def resolve(state: SyncState, path: str, keep: str) -> None:
    """Settle the conflict at ``path``: ``local`` or ``remote`` wins on both sides (the conflict
    copies go), or ``both`` (the local version at ``path``, the remote's kept as its copy)."""
    conflict = state.conflicts.get(path)
    if conflict is None:
        raise NotFoundError("conflict", path, hint="see 'nvwb sync conflicts'")
    if keep not in ("local", "remote", "both"):
        raise InvalidValueError("--keep", "must be local, remote or both")
    state.forced[path] = "remote" if keep == "remote" else "local"
    doomed = [conflict.local_copy]
    if keep != "both":
        doomed.append(conflict.remote_copy)
    for copy in doomed:
        if copy:
            state.forced[copy] = "delete"
    del state.conflicts[path]


def apply_request(engine_state: SyncState, request: dict[str, Any]) -> None:
    """Carry out a ``resolve``, ``confirm-deletions`` or ``restore`` on an agreed state (in a
    session, or on disk with none running)."""
    kind = request.get("kind", "resolve")
    if kind in ("confirm-deletions", "restore"):
        settle(engine_state, str(kind))
        return
    resolve(engine_state, str(request["path"]), str(request["keep"]))


class Decisions:
    """A live session's controls, carried out on its agreed state: the engine's while it
    exists (it saves them), else the stored one, where the engine finds them when it starts."""

    def __init__(self, store: StateStore, engine: Callable[[], SyncEngine | None]) -> None:
        self._store = store
        self._engine = engine

    def state(self) -> SyncState:
        engine = self._engine()
        return engine.state if engine is not None else self._store.load()

    def pause(self) -> None:
        self._change(lambda engine: engine.pause(), lambda state: setattr(state, "paused", True))

    def resume(self) -> None:
        self._change(lambda engine: engine.resume(), lambda state: setattr(state, "paused", False))

    def settle(self, how: str) -> None:
        """``confirm-deletions`` or ``restore`` (``loss.settle``: sync then carries on)."""
        self._change(lambda engine: engine.settle(how), lambda state: settle(state, how))

    def conflicts(self) -> list[dict[str, Any]]:
        return [c.to_json() for c in self.state().conflicts.values()]

    def _change(
        self, live: Callable[[SyncEngine], None], stored: Callable[[SyncState], None]
    ) -> None:
        engine = self._engine()
        if engine is not None:
            live(engine)
            return
        state = self._store.load()
        stored(state)
        self._store.save(state)
