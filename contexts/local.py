"""The ``local`` kind: this machine's Docker engine, always on, never started or stopped.

There is one local context, built in and named ``local``; no other can be created.
"""

from __future__ import annotations

from collections.abc import Mapping

from workbench.kinds import Endpoint, HostKeyTrust, Kind, ProviderState
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

    def ssh_endpoint(self) -> Endpoint | None:
        return None

    def hourly_rate(self) -> float | None:
        return None


KIND = Kind(
    name="local",
    title="This machine",
    summary="this machine's Docker engine; built in, named `local`, cannot be deleted",
    fields=(),
    provider=LocalProvider,
    remote=False,
    always_on=True,
    builtin=True,
    trust=HostKeyTrust.KNOWN_HOSTS,  # never asked: nothing is reached over SSH
    host=lambda context: "this machine",
    order=0,
)
