"""What a kind of context is: the one declaration a backend in ``contexts/`` makes.

A kind says which of a context's fields it uses (required or not, with defaults), how to drive
its machine (a :class:`Provider`), where its SSH server is when that is known without asking the
provider, and how its host keys are trusted. Everything else (the CLI's flags and ``--type``, the
registry's checks, the app's form, the docs' table) is derived from these declarations, so a new
kind is one module. The core never imports a kind: they are registered
(``workbench.kinds.registry``).

``Context`` is referred to for types only: the registry's ``Context`` checks itself against its
kind, so at run time the registry imports this module and not the other way round.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from workbench.errors import ContextError
from workbench.kinds.jobs import JobRunnerFactory
from workbench.kinds.provision import ProvisionerFactory

if TYPE_CHECKING:
    from workbench.registry import Context
    from workbench.ssh import SshConnection

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
class Endpoint:
    """Where a machine's SSH server listens and how to log in: the one endpoint type.

    ``jump``: the machine is reached through that SSH server (a cluster's login node, for a
    compute node), as OpenSSH's ProxyJump; ``hostname`` is then dialled from the jump host.
    """

    hostname: str
    port: int = 22
    username: str | None = None
    key_path: str | None = None
    jump: Endpoint | None = None


@dataclass(frozen=True)
class ProviderState:
    """One observation of the machine: a status word and, where useful, the provider's words."""

    status: ProviderStatus
    message: str = ""
    # False where the provider says this machine can only be deleted, never stopped.
    stoppable: bool = True
    # False while the machine costs nothing yet though asked for (an allocation in a queue):
    # the cost meter starts once it runs.
    billed: bool = True


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

    def ssh_endpoint(self) -> Endpoint | None:
        """How to reach the running machine over SSH, or None where there is no SSH."""
        ...

    def hourly_rate(self) -> float | None:
        """The provider's own price per hour, when it says; the context's rate wins over it."""
        ...


class HostKeyTrust(enum.Enum):
    """How a kind's host keys are trusted (``workbench.kinds.connect`` applies it).

    ``KNOWN_HOSTS``: pinned by address in Workbench's known_hosts (the user's is read too); an
    unknown key is asked about where a person can be asked, refused in the service.
    ``PER_INSTANCE``: pinned by fingerprint into the context's ``accepted_host_key`` on first use,
    never by address (for clouds that recycle addresses across machines, like Brev); the system
    ``ssh`` reads a private known_hosts file of the context's own. In both, a set
    ``accepted_host_key`` is the one key trusted for a new address.
    """

    KNOWN_HOSTS = "known_hosts"
    PER_INSTANCE = "per_instance"


@dataclass(frozen=True)
class FieldRule:
    """One field of ``Context`` that a kind uses.

    The field's flag, form label and value check are the core's (``workbench.kinds.fields``):
    a field means the same in every kind. ``default`` is set when the field is left empty (in a
    string default, ``{name}`` stands for the context's name: the slurm kind's idle stop command
    cancels that context's own allocation);
    ``form`` False keeps it out of the app's form for this kind; ``help`` says what the field
    means for this kind where that needs saying (the docs' table).
    """

    name: str
    required: bool = False
    default: Any = None
    form: bool = True
    help: str = ""


def _no_endpoint(context: Context) -> Endpoint | None:
    return None


def _no_check(context: Context) -> None:
    return None


def _hostname_and_port(context: Context) -> str | None:
    host = context.hostname
    if host and context.ssh_port not in (None, 22):
        host = f"{host}:{context.ssh_port}"
    return host


@dataclass(frozen=True, eq=False)  # one declaration per kind: compared by identity
class Kind:
    """A kind of context, declared once by its module in ``contexts/`` and registered.

    ``remote``: reached over SSH (it then also takes ``accepted_host_key`` and the idle guard's
    ``stop_command_on_idle``). ``guard``: the remote agent's idle guard may stop it (it then also
    takes ``idle_gpu_busy_percent``). ``builtin``: only the one built-in context has this kind.
    ``static_endpoint``: the SSH endpoint when the context's own fields say it (else the provider
    is asked once the machine runs). ``check``: rules beyond required, does-not-apply and
    defaults; raises ``InvalidValueError`` naming the field. ``host``: what ``nvwb list
    contexts`` shows in its HOST column. ``called``: how messages name one context of the kind.
    ``order``: where it sits in lists (``--type``, the app's form, the docs; the built-in kinds
    are 0 to 30), and which kind a flag given alone picks when two could take it. ``jobs``: for
    kinds whose machines take batch jobs, the runner that queues them (``workbench.kinds.jobs``).
    ``check_endpoint``: where a connection check goes when it is not the machine itself (a
    cluster's login node: the compute node exists only while an allocation runs); ``probe``:
    what the check runs there, returning the line it reports (raise ``ContextError`` when the
    answer shows the context cannot work, e.g. a partition the cluster does not have).
    ``provisioner``: for kinds that can find, create and delete their machines (a cloud's GPU
    offers), what does it (``workbench.kinds.provision``).
    """

    name: str
    title: str
    summary: str
    fields: tuple[FieldRule, ...]
    provider: Callable[[Context, Mapping[str, str]], Provider]
    remote: bool = True
    always_on: bool = False
    guard: bool = False
    builtin: bool = False
    trust: HostKeyTrust = HostKeyTrust.KNOWN_HOSTS
    static_endpoint: Callable[[Context], Endpoint | None] = _no_endpoint
    check: Callable[[Context], None] = _no_check
    host: Callable[[Context], str | None] = _hostname_and_port
    called: str = ""
    order: int = 100
    jobs: JobRunnerFactory | None = None
    check_endpoint: Callable[[Context, Mapping[str, str]], Endpoint] | None = None
    probe: Callable[[SshConnection, Context], str] | None = None
    provisioner: ProvisionerFactory | None = None
    _names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_names", frozenset(rule.name for rule in self.fields))

    @property
    def a_context(self) -> str:
        """``a brev context``: how a message names one context of this kind."""
        return self.called or f"a {self.name} context"

    def uses(self, name: str) -> bool:
        """Whether the kind declares the field ``name`` itself (shared fields aside)."""
        return name in self._names


def wait_for_ssh_banner(endpoint: Endpoint, timeout: float, *, interval: float = 0.25) -> None:
    """Block until something answers ``SSH-2.0-`` on the endpoint, or raise with the last error.

    A booted instance accepts TCP before sshd is ready on some clouds, so the banner, not the
    connect, is the sign that an SSH session can begin. An endpoint behind a jump host is not
    dialled from here (a cluster's node answers once its job runs).
    """
    import socket

    if endpoint.jump is not None:
        return  # only the jump host can dial it: the SSH connection through it is the test
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
