"""GPU offers across the kinds that make machines: found, cached briefly, filtered and sorted.

``nvwb list gpu-offers`` and the app's "New cloud GPU" dialog both read offers through
``find_offers``: each kind with a provisioner (``workbench.kinds.provision``) is asked with the
provider's own filters, and the answer is kept for ``DEFAULT_TTL_SECONDS`` in the state folder,
so typing in the dialog's filter or running the command twice does not ask the cloud again.
``select`` applies what the provider cannot filter by: a price ceiling, FP4, stoppable only, the
GPU count a project asks for (``--fits``), and our sorts.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import InvalidValueError
from workbench.kinds import all_kinds
from workbench.kinds.provision import Offer, OfferQuery, make_offer
from workbench.paths import PRIVATE_FILE, Paths, atomic_write_text

__all__ = [
    "SORTS",
    "Offer",
    "OfferCache",
    "OfferList",
    "OfferQuery",
    "Selection",
    "find_offers",
    "make_offer",
    "select",
]

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 60.0
CACHE_NAME = "gpu-offers.json"
CACHE_VERSION = 1
SORTS = ("price", "vram", "boot-time", "price-per-gpu")


@dataclass(frozen=True)
class Selection:
    """What we filter and sort by beyond the provider's own filters.

    ``max_price``: dollars per hour at most; ``fp4``: Blackwell only; ``stoppable_only``: no
    instance that can only be deleted; ``min_gpus``: at least that many GPUs (a project's
    request, ``--fits``); ``sort``: one of ``SORTS`` (price and per-GPU price cheapest first,
    memory most first, boot time fastest first, unknown boot times last).
    """

    max_price: float | None = None
    fp4: bool = False
    stoppable_only: bool = False
    min_gpus: int = 0
    sort: str = "price"

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise InvalidValueError("sort", f"{self.sort!r} is not one of {', '.join(SORTS)}")
        if self.max_price is not None and self.max_price < 0:
            raise InvalidValueError("max_price", "must be at least 0")

    def keeps(self, offer: Offer) -> bool:
        if self.max_price is not None and offer.price_per_hour > self.max_price:
            return False
        if self.fp4 and not offer.fp4:
            return False
        if self.stoppable_only and not offer.stoppable:
            return False
        return offer.gpu_count >= self.min_gpus


def sort_key(sort: str) -> Any:
    """The key ``select`` sorts by (ties broken by price, then type, so the order is stable)."""

    def key(offer: Offer) -> tuple[Any, ...]:
        tie = (offer.price_per_hour, offer.type)
        if sort == "vram":
            return (-offer.total_vram_gb, *tie)
        if sort == "boot-time":
            unknown = offer.boot_time_seconds == 0
            return (unknown, offer.boot_time_seconds, *tie)
        if sort == "price-per-gpu":
            per_gpu = offer.price_per_gpu_hour
            return (per_gpu is None, per_gpu or 0.0, *tie)
        return tie

    return key


def select(offers: Iterable[Offer], selection: Selection) -> list[Offer]:
    """``offers`` that ``selection`` keeps, in its order."""
    return sorted((o for o in offers if selection.keeps(o)), key=sort_key(selection.sort))


@dataclass(frozen=True)
class OfferList:
    """Offers and when they were asked for; ``cached``: from the cache, not asked just now."""

    offers: tuple[Offer, ...]
    fetched_at: float
    cached: bool


class OfferCache:
    """Answers to offer queries, each kept ``ttl`` seconds, in one small private JSON file.

    Anything wrong with the file (missing, corrupt, of another version) is a miss, never an
    error: the cache only saves asking again."""

    def __init__(self, path: Path, ttl: float = DEFAULT_TTL_SECONDS) -> None:
        self.path = path
        self.ttl = ttl

    def _entries(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}

    def get(self, key: str, *, now: float | None = None) -> tuple[list[Offer], float] | None:
        """The offers filed under ``key`` and when, while fresh; else None."""
        now = time.time() if now is None else now
        entry = self._entries().get(key)
        if not isinstance(entry, dict):
            return None
        at = entry.get("at")
        if not isinstance(at, int | float) or not 0 <= now - at <= self.ttl:
            return None
        try:
            return [Offer.from_dict(item) for item in entry["offers"]], float(at)
        except (KeyError, TypeError):
            return None

    def put(self, key: str, offers: Sequence[Offer], *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        entries = {
            k: v
            for k, v in self._entries().items()
            if isinstance(v, dict) and isinstance(v.get("at"), int | float)
            and 0 <= now - v["at"] <= self.ttl
        }  # fmt: skip
        entries[key] = {"at": now, "offers": [offer.to_dict() for offer in offers]}
        text = json.dumps({"version": CACHE_VERSION, "entries": entries})
        try:
            atomic_write_text(self.path, text, mode=PRIVATE_FILE, durable=False)
        except OSError as exc:
            log.warning("cannot write the offers cache %s: %s", self.path, exc)


def cache_for(paths: Paths, env: Mapping[str, str]) -> OfferCache:
    """The offers cache of this user (``NVWB_OFFERS_TTL`` seconds; 0 keeps nothing)."""
    try:
        ttl = float(env.get("NVWB_OFFERS_TTL") or DEFAULT_TTL_SECONDS)
    except ValueError:
        raise InvalidValueError(
            "NVWB_OFFERS_TTL", f"{env.get('NVWB_OFFERS_TTL')!r} is not a number of seconds"
        ) from None
    return OfferCache(paths.state_dir / CACHE_NAME, ttl)


def find_offers(
    paths: Paths,
    env: Mapping[str, str],
    query: OfferQuery,
    *,
    refresh: bool = False,
) -> OfferList:
    """What every kind that makes machines offers for ``query``: from the cache while fresh
    (unless ``refresh``), else asked of each provider now. A provider's error is raised."""
    cache = cache_for(paths, env)
    found: list[Offer] = []
    oldest = time.time()
    cached = True
    for kind in all_kinds():
        if kind.provisioner is None:
            continue
        key = f"{kind.name}|{query.key()}"
        hit = None if refresh else cache.get(key)
        if hit is not None:
            offers, at = hit
            oldest = min(oldest, at)
        else:
            offers = kind.provisioner(env).offers(query)
            cache.put(key, offers)
            cached = False
        found.extend(offers)
    return OfferList(tuple(found), oldest, cached)


def gpus_requested(spec_path: Path) -> int:
    """The GPUs a project's spec asks for (``execution.resources.gpu.requested``)."""
    from workbench.spec import SpecDocument

    resources = SpecDocument.load(spec_path).spec.execution.resources
    return resources.gpu.requested if resources.gpu else 0
