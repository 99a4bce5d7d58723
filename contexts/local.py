"""The ``local`` context: this machine's Docker engine, always on, never started or stopped."""

from __future__ import annotations

from collections.abc import Mapping

from contexts.base import ProviderState, SshEndpoint
from workbench.registry import Context


class LocalProvider:
    """This machine: running for as long as we are running."""

    def __init__(self, context: Context, env: Mapping[str, str] | None = None) -> None:
        self.context = context

    @property
    def always_on(self) -> bool:
        return True

    @property
    def can_stop(self) -> bool:
        return False

    def status(self) -> ProviderState:
        return ProviderState("running", stoppable=False)

    def start(self) -> None:
        """Nothing to start: the laptop is on."""

    def stop(self) -> None:
        """Never stop the machine Workbench itself runs on."""

    def ssh_endpoint(self) -> SshEndpoint | None:
        return None

    def hourly_rate(self) -> float | None:
        return None
