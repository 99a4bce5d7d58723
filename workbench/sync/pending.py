"""What a live sync session's loop has to do next, and the condition it sleeps on.

Why this exists: the watchers (each on a thread of its own), the controls (pause, resume,
resolve, from any thread) and the loop share a handful of fields: the paths each side saw
change, why a full scan is due, whether the loop is paused or stopping, when a held file is due.
They live here, each one guarded by ``cond``, so the session itself reads as its states and
its cycle. Nothing here calls out while holding ``cond``: the session's controls take its own
lock first and ``cond`` second, so the loop never takes them in the other order.
"""

from __future__ import annotations

import threading
import time

from workbench.sync.ignore import IGNORE_FILES
from workbench.sync.watch import RemoteEvents


class Pending:
    """The loop's work queue; every field guarded by ``cond``."""

    def __init__(self, *, paused: bool = False) -> None:
        self.cond = threading.Condition()
        # Set when the loop found nothing to do (``SyncSession.wait_idle``, ``sync_now``).
        self.idle = threading.Event()
        self.local: set[str] = set()  # paths this machine's watcher saw change
        self.remote: RemoteEvents = []  # the remote watcher's events
        # Why the next cycle must scan both sides in full ("": it need not); shown in events.
        self.full_reason = "start"
        self.again = False  # the last cycle changed something: once more
        self.due_at = 0.0  # time.monotonic() when a held file may be tried again (0: none)
        self.paused = paused
        self.stopping = False
        self.watcher_starting = False  # the remote watcher is starting (not idle until it runs)
        self.remote_lost = False  # the remote watcher must be started again

    # -- feeding (any thread) --------------------------------------------------------------

    def want_full(self, reason: str) -> None:
        """Under ``cond``: the next cycle scans in full; the first reason given is kept."""
        if not self.full_reason:
            self.full_reason = reason

    def poke(self, *, full: str = "") -> None:
        """Wake the loop; ``full`` says why it must scan in full, if it must."""
        with self.cond:
            self.want_full(full)
            self.idle.clear()
            self.cond.notify_all()

    def add_local(self, paths: set[str]) -> None:
        with self.cond:
            self.local |= paths
            self.idle.clear()
            self.cond.notify_all()

    def add_remote(self, events: RemoteEvents) -> None:
        with self.cond:
            self.remote.extend(events)
            self.idle.clear()
            self.cond.notify_all()

    def lost_remote(self) -> None:
        """The remote watcher is gone: start it again, and rescan in full once reconnected."""
        with self.cond:
            self.want_full("reconnected")
            self.remote_lost = True
            self.idle.clear()
            self.cond.notify_all()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    def set_paused(self, paused: bool) -> None:
        with self.cond:
            self.paused = paused

    # -- the loop's side -------------------------------------------------------------------

    def count(self) -> int:
        with self.cond:
            return len(self.local) + len(self.remote)

    def has_work(self) -> bool:
        """Under ``cond``: whether a cycle is due now."""
        due = bool(self.due_at) and time.monotonic() >= self.due_at
        return not self.paused and bool(
            self.local or self.remote or self.full_reason or self.again or due
        )

    def settled(self) -> bool:
        """Nothing pending, nothing held, no full scan due (``SyncSession.wait_idle``)."""
        with self.cond:
            held = bool(self.due_at) and not self.paused
            return not (self.local or self.remote or self.full_reason or held)

    def full_cycle(self, timeout: float) -> bool:
        """Ask for a full cycle; whether the loop was idle again within ``timeout``."""
        self.idle.clear()
        self.poke(full="sync now")
        return self.idle.wait(timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the loop found nothing to do and nothing is pending (``settled``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle.wait(max(0.0, deadline - time.monotonic())):
                if self.settled():
                    return True
                time.sleep(0.01)
        return False

    def wait(self, full_due: bool) -> tuple[bool, bool]:
        """Sleep (a second at most) until there may be something to do; ``full_due``: the
        periodic full scan is due. Returns (stopping, paused)."""
        with self.cond:
            if not self.stopping and not self.has_work():
                if (not self.due_at or self.paused) and not self.watcher_starting:
                    self.idle.set()  # a held file is still to go, or a watcher: not idle yet
                wait = 1.0  # paused, or nothing held: the next change wakes the loop
                if self.due_at and not self.paused:
                    wait = min(1.0, max(0.01, self.due_at - time.monotonic()))
                self.cond.wait(timeout=wait)
            if full_due:
                self.want_full("periodic rescan")
            return self.stopping, self.paused

    def debounce(self, quiet: float, most: float) -> None:
        """Wait until no change came for ``quiet`` seconds, or ``most`` seconds passed."""
        started = time.monotonic()
        with self.cond:
            seen = len(self.local) + len(self.remote)
            while time.monotonic() - started < most:
                self.cond.wait(quiet)
                now = len(self.local) + len(self.remote)
                if now == seen or self.stopping:
                    return
                seen = now

    def take(self) -> tuple[set[str], RemoteEvents, bool]:
        """What the watchers saw since the last cycle, now the cycle's, and whether an ignore
        file was among this machine's (the rules changed: a full scan is due)."""
        with self.cond:
            self.again = False
            local, self.local = self.local, set()
            remote, self.remote = self.remote, []
        rules = any(p.rpartition("/")[2] in IGNORE_FILES for p in local)
        return local, remote, rules

    def take_full_reason(self) -> str:
        with self.cond:
            reason, self.full_reason = self.full_reason, ""
            return reason

    def halt(self) -> None:
        """Stop until a person says how to go on: what is pending is dropped, since going on
        rescans in full."""
        with self.cond:
            self.full_reason = ""
            self.local.clear()
            self.remote.clear()
            self.paused = True

    def hold_until(self, held_until: float | None) -> None:
        """When the first file a cycle held back is due (``time.time()``, from its report)."""
        with self.cond:
            self.due_at = (
                time.monotonic() + max(0.0, held_until - time.time())
                if held_until is not None
                else 0.0
            )

    def run_again(self) -> None:
        """One more cycle at once: carry what the last one created across (conflict copies),
        and plan again what changed under it."""
        with self.cond:
            self.again = True

    def retry_in(self, delay: float) -> bool:
        """After a failure: rescan in full once back, and wait ``delay`` seconds; True when
        stopping meanwhile."""
        with self.cond:
            self.want_full("reconnected")
            return self.cond.wait_for(lambda: self.stopping, timeout=delay)
