"""The one interface every execution-context backend offers the service's state machine.

A provider answers three questions about the machine behind a context (is it up, how do I start
it, how do I stop it) and, where it knows them, how to reach it over SSH and what it costs. The
state machine never needs to know which kind of context it drives.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from workbench.errors import ContextError
from workbench.registry import Context

# What a provider can say about its machine. ``failed`` is a machine the provider itself reports
# broken (Brev's FAILURE); ``unknown`` is one we could not ask about (unreachable, bad output).
ProviderStatus = Literal[
    "running", "stopped", "starting", "stopping", "notfound", "failed", "unknown"
]
PROVIDER_STATUSES: tuple[str, ...] = (
    "running",
    "stopped",
    "starting",
    "stopping",
    "notfound",
    "failed",
    "unknown",
)


@dataclass(frozen=True)
class ProviderState:
    """One observation of the machine: a status word and, where useful, the provider's words."""

    status: ProviderStatus
    message: str = ""
    # False where the provider says this machine can only be deleted, never stopped.
    stoppable: bool = True


@dataclass(frozen=True)
class SshEndpoint:
    """Where the machine's SSH server listens and how to log in."""

    hostname: str
    port: int = 22
    username: str | None = None
    key_path: str | None = None


@runtime_checkable
class Provider(Protocol):
    """What the state machine asks of a context's backend. Calls may block; none are async."""

    context: Context

    @property
    def always_on(self) -> bool:
        """True for machines Workbench neither starts nor stops (this machine, an SSH host)."""
        ...

    @property
    def can_stop(self) -> bool:
        """Whether auto-stop may stop this machine; terminate-only instances say False."""
        ...

    def status(self) -> ProviderState:
        """Ask the provider now; raises ``ContextError`` when it cannot answer."""
        ...

    def start(self) -> None:
        """Ask for the machine to start; returns once the request is accepted, not booted."""
        ...

    def stop(self) -> None:
        """Ask for the machine to stop; the caller verifies through ``status()``."""
        ...

    def ssh_endpoint(self) -> SshEndpoint | None:
        """How to reach the running machine over SSH, or None where there is no SSH."""
        ...

    def hourly_rate(self) -> float | None:
        """The provider's own price per hour, when it says; the context's rate wins over it."""
        ...


def wait_for_ssh_banner(endpoint: SshEndpoint, timeout: float, *, interval: float = 0.25) -> None:
    """Block until something answers ``SSH-2.0-`` on the endpoint, or raise with the last error.

    A booted instance accepts TCP before sshd is ready on some clouds, so the banner, not the
    connect, is the sign that an SSH session can begin.
    """
    deadline = time.monotonic() + timeout
    last = "no attempt made"
    while True:
        try:
            with socket.create_connection((endpoint.hostname, endpoint.port), timeout=2.0) as sock:
                sock.settimeout(2.0)
                banner = sock.recv(256)
                if banner.startswith(b"SSH-"):
                    return
                last = f"unexpected banner {banner[:40]!r}"
        except OSError as exc:
            last = str(exc) or type(exc).__name__
        if time.monotonic() >= deadline:
            raise ContextError(
                f"SSH on {endpoint.hostname}:{endpoint.port} did not answer within "
                f"{timeout:g} s: {last}"
            )
        time.sleep(interval)
