"""The kinds of context this process knows: registered by name, looked up by the core.

The executables (``nvwb``, the service, the app) register the built-in kinds explicitly
(``contexts.register_builtin``), which costs nothing but the imports. Anything else that uses the
core (a library user, a test calling ``workbench.cli.main.main``) gets the kinds declared in the
``workbench.context_kinds`` entry-point group on its first lookup; reading the installed
packages' metadata costs about 35 ms, which the executables do not pay.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from workbench.errors import InvalidValueError
from workbench.kinds.base import Kind, Provider

if TYPE_CHECKING:
    from workbench.registry import Context

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "workbench.context_kinds"

_lock = threading.RLock()
_kinds: dict[str, Kind] = {}


class _Settled:
    """Whether the set of kinds is settled: by discovery, or by an executable saying it
    registered what it needs (``settled``). A kind registered before that (a test's) is not."""

    done = False


def register(kind: Kind) -> Kind:
    """Make ``kind`` known by its name; registering the same declaration again is harmless."""
    _check_declaration(kind)
    with _lock:
        known = _kinds.get(kind.name)
        if known is not None and known is not kind:
            raise ValueError(f"a different context kind named {kind.name!r} is registered")
        _kinds[kind.name] = kind
    return kind


def _check_declaration(kind: Kind) -> None:
    from workbench.kinds.fields import INFO, SHARED

    for rule in kind.fields:
        if rule.name not in INFO or rule.name in SHARED:
            raise ValueError(
                f"context kind {kind.name!r}: {rule.name!r} is not a field a kind can declare "
                f"(one of {', '.join(n for n in INFO if n not in SHARED)})"
            )


def unregister(name: str) -> None:
    """Forget a kind (for tests that register one of their own)."""
    with _lock:
        _kinds.pop(name, None)


def settled() -> None:
    """The caller registered every kind it needs: no entry-point discovery in this process."""
    with _lock:
        _Settled.done = True


def all_kinds() -> tuple[Kind, ...]:
    """Every known kind, by their ``order`` (then name): the same order however registered."""
    _settle()
    with _lock:
        return tuple(sorted(_kinds.values(), key=lambda kind: (kind.order, kind.name)))


def names() -> tuple[str, ...]:
    return tuple(kind.name for kind in all_kinds())


def find_kind(name: str) -> Kind | None:
    _settle()
    with _lock:
        return _kinds.get(name)


def kind_named(name: str) -> Kind:
    """The kind called ``name``; ``InvalidValueError`` on the field ``kind`` when none is."""
    kind = find_kind(name)
    if kind is None:
        raise InvalidValueError(
            "kind", f"{name!r} is not a context kind", hint="one of " + ", ".join(names())
        )
    return kind


def provider_for(context: Context, env: Mapping[str, str] | None = None) -> Provider:
    """The backend that drives ``context``, its commands run with ``env`` (else ours)."""
    return kind_named(context.kind).provider(context, os.environ if env is None else env)


def _settle() -> None:
    if _Settled.done:
        return
    with _lock:
        if _Settled.done:
            return
        _Settled.done = True
        for kind in discover():
            _kinds.setdefault(kind.name, kind)


def discover() -> list[Kind]:
    """The kinds the installed packages declare in the ``workbench.context_kinds`` group."""
    from importlib.metadata import entry_points

    found: list[Kind] = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            kind = point.load()
        except Exception as exc:  # one broken plugin must not take every kind with it
            log.warning("context kind %s (%s) cannot be loaded: %s", point.name, point.value, exc)
            continue
        if not isinstance(kind, Kind) or kind.name != point.name:
            log.warning("entry point %s (%s) is not a Kind named so", point.name, point.value)
            continue
        try:
            _check_declaration(kind)
        except ValueError as exc:
            log.warning("entry point %s (%s): %s", point.name, point.value, exc)
            continue
        found.append(kind)
    return found
