"""A live session's two change feeds, kept running: this machine's watcher and the remote's.

Why this exists: the local watcher starts once; the remote watcher (the agent's ``watch``
stream on the context's connection) starts beside the first cycle, and again whenever its
stream is lost or the ignore rules change, and must never outlive the watcher that replaced it.
That lifecycle is its own concern; the session only asks for the feeds to be up
(``ensure``), down (``drop_remote``, ``stop``) or restarted (``rules_changed``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from workbench.errors import ContextError
from workbench.sync.ignore import IgnoreRules
from workbench.sync.pending import Pending
from workbench.sync.remote import RemoteTree
from workbench.sync.watch import LocalWatcher, RemoteWatcher

logger = logging.getLogger(__name__)


class Feeds:
    """Both watchers of one session, feeding ``pending``. Called under the session's lock."""

    def __init__(
        self,
        root: Path,
        pending: Pending,
        *,
        rules: Callable[[], IgnoreRules | None],
        on_lost: Callable[[str], None],
        local: bool = True,
    ) -> None:
        """``rules``: the engine's current ignore rules (None before it has any), which filter
        this machine's events; ``on_lost(why)``: the remote feed broke (the link dropped)."""
        self.root = root
        self.pending = pending
        self._rules = rules
        self._on_lost = on_lost
        self._local_wanted = local
        self.local: LocalWatcher | None = None
        self.remote: RemoteWatcher | None = None

    @property
    def remote_mode(self) -> str | None:
        """How the remote watches (``inotify``, ``poll``), once its watcher runs."""
        return self.remote.mode if self.remote is not None else None

    def ensure(self, remote: RemoteTree, rules: Callable[[], IgnoreRules]) -> None:
        """Start what is missing: the local watcher (once), the remote one when there is none
        or it was lost (with ``rules()``, the project's ignore rules now)."""
        if self.local is None and self._local_wanted:
            self.local = LocalWatcher(self.root, self._on_local)
            self.local.start()
        with self.pending.cond:
            restart = self.remote is None or self.pending.remote_lost
            self.pending.remote_lost = False
        if restart:
            self._restart_remote(remote, rules())

    def rules_changed(self) -> None:
        """The ignore rules changed: the remote watcher starts again with them next cycle."""
        if self.remote is not None:
            self.remote.stop()
            with self.pending.cond:
                self.pending.remote_lost = True

    def drop_remote(self) -> None:
        if self.remote is not None:
            self.remote.stop()
            self.remote = None

    def stop(self) -> None:
        if self.local is not None:
            self.local.stop()
            self.local = None
        self.drop_remote()

    def lost(self, why: str) -> None:
        logger.info("sync %s: %s", self.root, why)
        self._on_lost(why)
        self.pending.lost_remote()

    # -- internals -------------------------------------------------------------------------

    def _on_local(self, paths: set[str]) -> None:
        rules = self._rules()
        if rules is not None:
            paths = {p for p in paths if not rules.ignored(p, False) or not rules.ignored(p, True)}
        if paths:
            self.pending.add_local(paths)

    def _on_rescan(self) -> None:
        self.pending.poke(full="the remote watcher lost events")

    def _restart_remote(self, remote: RemoteTree, rules: IgnoreRules) -> None:
        if self.remote is not None:
            self.remote.stop()
        watcher = RemoteWatcher(remote, rules, self.pending.add_remote, self._on_rescan, self.lost)
        self.remote = watcher
        with self.pending.cond:
            self.pending.watcher_starting = True
        threading.Thread(
            target=self._start_remote, args=(watcher,), daemon=True, name="sync-watch"
        ).start()

    def _start_remote(self, watcher: RemoteWatcher) -> None:
        """Start the remote watcher beside the cycle (a full one: it needs no watcher), so an
        open waits for one less remote start; once it is ready, one more full cycle looks at
        what changed before it was (nothing is missed)."""
        try:
            watcher.start()
            started = watcher.ready.is_set() and bool(watcher.mode)
            why = "" if started else "the remote watcher did not start"
        except ContextError as exc:
            started, why = False, f"the remote watcher did not start: {exc.message}"
        with self.pending.cond:
            self.pending.watcher_starting = False
            current = self.remote is watcher and not self.pending.stopping
        if not current:
            watcher.stop()  # replaced or dropped meanwhile: its channel must not outlive it
            return
        if started:
            self.pending.poke(full="remote watcher started")
        else:
            self.lost(why)
