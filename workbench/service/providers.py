"""The core's one door to the ``contexts`` backends (the layering allows no other import)."""

from __future__ import annotations

from collections.abc import Mapping

from contexts import provider_for as _provider_for
from contexts.base import Provider
from workbench.registry import Context


def provider_for(context: Context, env: Mapping[str, str]) -> Provider:
    """The backend that drives ``context``, its commands run with ``env``."""
    return _provider_for(context, env)
