"""Execution-context backends (providers), one module per kind: local, ssh, brev, command.

``provider_for`` is the one door: the core asks it for a context's ``Provider`` and never imports
a backend module itself, so adding a kind means adding a module and a line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from workbench.errors import ContextError

if TYPE_CHECKING:
    from contexts.base import Provider
    from workbench.registry import Context

# kind -> "module:class"; imported on demand so `nvwb` pays only for the backend it uses.
PROVIDERS: dict[str, str] = {
    "local": "contexts.local:LocalProvider",
    "ssh": "contexts.ssh:SshProvider",
    "brev": "contexts.brev:BrevProvider",
    "command": "contexts.command:CommandProvider",
}


def provider_for(context: Context, env: Mapping[str, str] | None = None) -> Provider:
    """The backend that drives ``context``; ``env`` is the environment its commands run with."""
    target = PROVIDERS.get(context.kind)
    if target is None:
        raise ContextError(f"no provider for context kind {context.kind!r}", context=context.name)
    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    provider: Provider = cls(context, env)
    return provider
