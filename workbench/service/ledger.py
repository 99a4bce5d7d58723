"""The cost ledger: every interval a context ran, with its hourly rate, kept on disk.

The cost meter (``cost.py``) used to live in the service's memory only, so a service that
crashed or was killed forgot what a running cloud machine had cost, and started counting again
from zero. The ledger keeps each interval (context, start, last seen running, end, rate) in
``STATE/cost-ledger.json``, rewritten whole and atomically on each change (a process killed at
any moment leaves the old file or the new one, never half of one) and every ``ledger_interval``
seconds while something runs, to move its "last seen" on.

An interval still open when a new service starts is the machine's own: if the new service finds
the machine running, the interval goes on from its first start (``begin`` returns that start,
and the meter counts from it); if it finds it stopped, the interval ends when it was last seen
running. A rate that changes while a machine runs (the provider's price learned, the context's
rate edited) ends the interval and opens another at the new rate; a rate learned for the first
time applies to the whole interval, as the meter shows it.

The months' budget notifications given are kept here too, so a restart does not repeat them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from workbench.paths import PRIVATE_FILE, atomic_write_text

log = logging.getLogger(__name__)

LEDGER_NAME = "cost-ledger.json"
LEDGER_VERSION = 1
KEEP_SECONDS = 400 * 86400  # a year and a month of history: this month against the last's


@dataclass
class Interval:
    """One stretch of a context running; ``end`` None while it still runs."""

    id: str
    context: str
    start: float
    seen: float
    end: float | None = None
    rate: float | None = None

    def until(self, now: float, live: bool) -> float:
        """Where the interval ends for a report at ``now``: its end, else now while this
        service sees it run, else when it was last seen running."""
        if self.end is not None:
            return self.end
        return now if live else self.seen


@dataclass(frozen=True)
class Share:
    """A part of the ledger summed: cost, seconds run, and seconds run at no known rate."""

    key: str
    cost: float
    seconds: float
    unpriced_seconds: float


class CostLedger:
    """The intervals on disk, and the sums the Costs view and the budget read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._intervals: list[Interval] = []
        self._notified: dict[str, list[int]] = {}
        self._live: set[str] = set()  # open intervals this service has seen running
        self._load()

    # -- the file ------------------------------------------------------------------------

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            # Kept aside, not overwritten: a person may want what it held.
            aside = self.path.with_name(f"{self.path.name}.unreadable-{int(time.time())}")
            log.error("cost ledger %s unreadable (%s); kept as %s", self.path, exc, aside.name)
            with contextlib.suppress(OSError):
                self.path.rename(aside)
            return
        if not isinstance(data, dict) or data.get("version") != LEDGER_VERSION:
            log.error("cost ledger %s is of another version; starting a new one", self.path)
            return
        for entry in data.get("intervals", []):
            try:
                interval = Interval(**entry)
            except TypeError:
                log.warning("cost ledger: an entry that is not an interval skipped: %r", entry)
                continue
            self._intervals.append(interval)
        notified = data.get("notified", {})
        if isinstance(notified, dict):
            self._notified = {
                str(k): [int(x) for x in v if isinstance(x, int)]
                for k, v in notified.items()
                if isinstance(v, list)
            }

    def save(self, *, durable: bool = True) -> None:
        """Write the ledger now (atomically); a failure is logged, the ledger kept in memory.

        The meter's own writes (a start, a stop) are not flushed to the disk (``durable``
        False): they happen under a machine's lock, a process killed after the rename loses
        nothing (the kernel has the file), and the periodic save flushes them."""
        with self._lock:
            data = {
                "version": LEDGER_VERSION,
                "intervals": [asdict(i) for i in self._intervals],
                "notified": self._notified,
            }
            text = json.dumps(data, indent=1)
            try:
                atomic_write_text(self.path, text, mode=PRIVATE_FILE, durable=durable)
            except OSError as exc:
                log.error("cannot write the cost ledger %s: %s", self.path, exc)

    def prune(self, now: float) -> None:
        """Forget intervals that ended more than ``KEEP_SECONDS`` ago (saved by ``save``)."""
        with self._lock:
            cutoff = now - KEEP_SECONDS
            self._intervals = [i for i in self._intervals if i.end is None or i.end >= cutoff]

    # -- what the meter does ---------------------------------------------------------------

    def _open(self, context: str) -> Interval | None:
        return next((i for i in self._intervals if i.context == context and i.end is None), None)

    def begin(self, context: str, now: float, rate: float | None = None) -> float:
        """``context`` runs (at ``rate``, where known): its open interval goes on (returns its
        start), else one opens."""
        with self._lock:
            interval = self._open(context)
            if interval is None:
                interval = Interval(uuid.uuid4().hex[:12], context, now, now, rate=rate)
                self._intervals.append(interval)
                self.save(durable=False)
            self._live.add(interval.id)
            return interval.start

    def end(self, context: str, now: float) -> None:
        """``context`` stopped: its open interval ends now, or, if this service never saw it
        run (found stopped after a restart), when it was last seen running."""
        with self._lock:
            interval = self._open(context)
            if interval is None:
                return
            interval.end = now if interval.id in self._live else interval.seen
            self._live.discard(interval.id)
            self.save(durable=False)

    def touch(self, context: str, rate: float | None, now: float) -> None:
        """``context`` still runs at ``rate``: its last-seen time moves on (saved by ``save``)."""
        with self._lock:
            interval = self._open(context)
            if interval is None or interval.id not in self._live:
                return
            if rate is not None and interval.rate is not None and rate != interval.rate:
                interval.end = interval.seen = now
                self._live.discard(interval.id)
                successor = Interval(uuid.uuid4().hex[:12], context, now, now, rate=rate)
                self._intervals.append(successor)
                self._live.add(successor.id)
                return
            if interval.rate is None:
                interval.rate = rate
            interval.seen = max(interval.seen, now)

    def close_unknown(self, known: set[str], now: float) -> None:
        """End the open intervals of contexts that no longer exist (deleted meanwhile)."""
        with self._lock:
            changed = False
            for interval in self._intervals:
                if interval.end is None and interval.context not in known:
                    interval.end = now if interval.id in self._live else interval.seen
                    self._live.discard(interval.id)
                    changed = True
            if changed:
                self.save()

    # -- sums ----------------------------------------------------------------------------

    def intervals(self) -> list[Interval]:
        with self._lock:
            return [Interval(**asdict(i)) for i in self._intervals]

    def shares(self, since: float, until: float, by: str) -> list[Share]:
        """Cost between ``since`` and ``until``, by ``"day"`` (local dates, an interval split at
        midnight) or by ``"context"``; an open interval counts as ``Interval.until`` says."""
        sums: dict[str, list[float]] = {}
        with self._lock:
            for interval in self._intervals:
                live = interval.id in self._live
                begin = max(interval.start, since)
                end = min(interval.until(until, live), until)
                for key, seconds in _pieces(interval.context, begin, end, by):
                    total = sums.setdefault(key, [0.0, 0.0, 0.0])
                    total[1] += seconds
                    if interval.rate is None:
                        total[2] += seconds
                    else:
                        total[0] += seconds / 3600.0 * interval.rate
        return [
            Share(key, round(v[0], 4), v[1], v[2])
            for key, v in sorted(sums.items())
        ]  # fmt: skip

    def spent(self, since: float, until: float) -> float:
        return round(sum(s.cost for s in self.shares(since, until, "context")), 4)

    # -- budget notifications ----------------------------------------------------------

    def notified(self, month: str) -> list[int]:
        with self._lock:
            return list(self._notified.get(month, []))

    def mark_notified(self, month: str, level: int) -> None:
        with self._lock:
            self._notified.setdefault(month, [])
            if level not in self._notified[month]:
                self._notified[month].append(level)
                self.save()

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"intervals": [asdict(i) for i in self._intervals]}


def _pieces(context: str, begin: float, end: float, by: str) -> list[tuple[str, float]]:
    if end <= begin:
        return []
    if by == "context":
        return [(context, end - begin)]
    pieces = []
    at = begin
    while at < end:
        following = next_midnight(at)
        stop = min(end, following)
        pieces.append((time.strftime("%Y-%m-%d", time.localtime(at)), stop - at))
        at = stop
    return pieces


def next_midnight(when: float) -> float:
    """The next local midnight after ``when``."""
    day = time.localtime(when)
    return time.mktime((day.tm_year, day.tm_mon, day.tm_mday + 1, 0, 0, 0, 0, 0, -1))


def month_start(when: float) -> float:
    """Local midnight on the first of ``when``'s month."""
    day = time.localtime(when)
    return time.mktime((day.tm_year, day.tm_mon, 1, 0, 0, 0, 0, 0, -1))


def month_of(when: float) -> str:
    return time.strftime("%Y-%m", time.localtime(when))
