"""Kinds of context: what one is (``base``), which ones this process knows (``registry``), what
their fields mean (``fields``) and how to reach one over SSH (``connect``, imported on use).

The core defines the seam and never imports a kind: the backends in ``contexts/`` each declare a
``Kind`` and are registered by the executables (``nvwb/``, ``ui/app.py``) or found through the
``workbench.context_kinds`` entry points. ``docs/architecture.md`` says what a new kind provides.
"""

from __future__ import annotations

from workbench.kinds.base import (
    PROVIDER_STATUSES,
    Endpoint,
    FieldRule,
    HostKeyTrust,
    Kind,
    Provider,
    ProviderState,
    ProviderStatus,
    wait_for_ssh_banner,
)
from workbench.kinds.registry import (
    all_kinds,
    find_kind,
    kind_named,
    names,
    provider_for,
    register,
    settled,
    unregister,
)

__all__ = [
    "PROVIDER_STATUSES",
    "Endpoint",
    "FieldRule",
    "HostKeyTrust",
    "Kind",
    "Provider",
    "ProviderState",
    "ProviderStatus",
    "all_kinds",
    "find_kind",
    "kind_named",
    "names",
    "provider_for",
    "register",
    "settled",
    "unregister",
    "wait_for_ssh_banner",
]
