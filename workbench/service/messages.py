"""The service's messages, declared once: what its methods return and what its events carry.

The server's handlers return these types and the server encodes them (``to_wire``); the client
decodes every result and event into them (``from_wire``) before the CLI or the app sees it, so
both read attributes of a known type, never keys of a dict. The field names are the JSON keys on
the wire (and in ``nvwb ... -o json``); a field whose wire name differs says so in its metadata
(``AppRow.class_`` is ``"class"``), and a field marked ``omit`` is left out of the wire while it
holds its default (``LeaseInfo.reconnecting``), as the service always did.

``from_wire`` checks the shape and the type of every field and raises ``ServiceMismatch`` naming
the field, so a client meeting a service of another release, or a broken one, says so instead
of crashing on a missing key; keys it does not know are ignored (a newer service may add some).

Standard library only, and nothing is evaluated before it is used: ``nvwb`` loads this on the
way to the service, and its start-up time is a budget (see ``benchmarks/cli_startup.py``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self

from workbench.service.protocol import ServiceMismatch

if TYPE_CHECKING:
    from workbench.spec import AppSpec

__all__ = [
    "EVENTS",
    "AgentInfo",
    "AppLog",
    "AppRow",
    "AttachTarget",
    "BudgetStatus",
    "BuildLineEvent",
    "BuiltImage",
    "ClosedProject",
    "ComposeLogs",
    "ComposeService",
    "ComposeStatus",
    "Conflict",
    "ConflictList",
    "ContextSnapshot",
    "CostReport",
    "CostRow",
    "DeletedInstance",
    "ErrorBody",
    "Event",
    "GraceEvent",
    "HelloResult",
    "HolderInfo",
    "LeaseEvent",
    "LeaseInfo",
    "Message",
    "Nothing",
    "NoticeEvent",
    "OpenedProject",
    "ProgressEvent",
    "ProjectEvent",
    "ProjectStatus",
    "Released",
    "RunningCost",
    "ServiceInfo",
    "ShuttingDown",
    "SshHost",
    "StartedApp",
    "StateEvent",
    "StatusResult",
    "StoppedApp",
    "StoppedContext",
    "Subscribed",
    "SyncEvent",
    "SyncHalt",
    "SyncProblem",
    "SyncStatus",
    "event_from_wire",
    "what",
]

Decode = Callable[[Any, str], Any]
_OMIT = {"omit": True}  # metadata: left out of the wire while it holds its default


def what(value: Any) -> str:
    """A JSON value's kind, for messages: ``a string``, ``null``, ``an object``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class _Mismatch(Exception):
    """Where (a dotted path) and why a value does not fit; turned into ``ServiceMismatch``."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where}: {why}")
        self.where = where
        self.why = why


@dataclass(frozen=True)
class _Field:
    name: str
    wire: str
    decode: Decode
    required: bool
    default: Any
    omit: bool


class Message:
    """A message of the service's contract: a frozen dataclass that encodes itself.

    Subclasses are ``@dataclass(frozen=True)``; their fields may be ``str``, ``int``, ``float``
    (an integer is accepted and kept), ``bool``, ``X | None``, ``tuple[X, ...]``, another
    ``Message``, ``dict[str, Any]`` (an object passed through as it is) or ``Any``.
    """

    _fields_cache: ClassVar[dict[type, tuple[_Field, ...]]] = {}

    def to_wire(self) -> dict[str, Any]:
        """The JSON object this message is on the wire."""
        data: dict[str, Any] = {}
        for spec in _fields(type(self)):
            value = getattr(self, spec.name)
            if spec.omit and value == spec.default:
                continue
            data[spec.wire] = _encode(value)
        return data

    @classmethod
    def from_wire(cls, data: Any, where: str = "") -> Self:
        """The message ``data`` holds; ``ServiceMismatch`` naming the field if it does not fit.

        ``where`` names what is read (``the status result``), for the error."""
        try:
            return cls._decode(data, "")
        except _Mismatch as exc:
            said = where or f"a {cls.__name__}"
            at = f" at {exc.where}" if exc.where else ""
            raise ServiceMismatch(
                f"the Workbench service sent {said} this client cannot read{at}: {exc.why}",
                hint="the service may be of another Workbench release: close what uses it (it "
                "exits when idle) and retry",
            ) from None

    @classmethod
    def _decode(cls, data: Any, where: str) -> Self:
        if not isinstance(data, dict):
            raise _Mismatch(where, f"must be an object, not {what(data)}")
        values: dict[str, Any] = {}
        for spec in _fields(cls):
            at = f"{where}.{spec.wire}" if where else spec.wire
            if spec.wire not in data:
                if spec.required:
                    raise _Mismatch(at, "is missing")
                continue
            values[spec.name] = spec.decode(data[spec.wire], at)
        return cls(**values)


def _fields(cls: type) -> tuple[_Field, ...]:
    cached = Message._fields_cache.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    specs = []
    for item in dataclasses.fields(cls):
        has_default = (
            item.default is not dataclasses.MISSING
            or item.default_factory is not dataclasses.MISSING
        )
        default = (
            item.default
            if item.default is not dataclasses.MISSING
            else item.default_factory()
            if item.default_factory is not dataclasses.MISSING
            else None
        )
        specs.append(
            _Field(
                name=item.name,
                wire=str(item.metadata.get("wire", item.name)),
                decode=_decoder(hints[item.name]),
                required=not has_default,
                default=default,
                omit=bool(item.metadata.get("omit")),
            )
        )
    found = tuple(specs)
    Message._fields_cache[cls] = found
    return found


def _encode(value: Any) -> Any:
    if isinstance(value, Message):
        return value.to_wire()
    if isinstance(value, tuple | list):
        return [_encode(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _encode(item) for key, item in value.items()}
    return value


def _decoder(hint: Any) -> Decode:
    """How a value of type ``hint`` is checked and read."""
    if hint is Any:
        return lambda value, where: value
    if hint is str:
        return _simple(str, "a string")
    if hint is bool:
        return _simple(bool, "true or false")
    if hint is int:
        return _integer
    if hint is float:
        return _number
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        others = [arg for arg in args if arg is not type(None)]
        if len(others) != 1 or len(args) != 2:
            raise TypeError(f"unsupported union in a message: {hint!r}")
        inner = _decoder(others[0])
        return lambda value, where: None if value is None else inner(value, where)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = _decoder(args[0])

        def items(value: Any, where: str) -> tuple[Any, ...]:
            if not isinstance(value, list):
                raise _Mismatch(where, f"must be a list, not {what(value)}")
            return tuple(item(entry, f"{where}[{number}]") for number, entry in enumerate(value))

        return items
    if origin is dict:

        def obj(value: Any, where: str) -> dict[str, Any]:
            if not isinstance(value, dict):
                raise _Mismatch(where, f"must be an object, not {what(value)}")
            return dict(value)

        return obj
    if isinstance(hint, type) and issubclass(hint, Message):
        return hint._decode
    raise TypeError(f"unsupported type in a message: {hint!r}")


def _simple(kind: type, text: str) -> Decode:
    def check(value: Any, where: str) -> Any:
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise _Mismatch(where, f"must be {text}, not {what(value)}")
        return value

    return check


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Mismatch(where, f"must be an integer, not {what(value)}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Mismatch(where, f"must be a number, not {what(value)}")
    return value


# -- leases and contexts ---------------------------------------------------------------------


@dataclass(frozen=True)
class Nothing(Message):
    """A result with nothing in it (the default of a method declared without one)."""


@dataclass(frozen=True)
class HolderInfo(Message):
    """Who holds a lease: a client (``connection``: its client id) or a process (``pid``)."""

    kind: str  # "connection" | "pid"
    pid: int | None = field(default=None, metadata=_OMIT)
    connection: str | None = field(default=None, metadata=_OMIT)


@dataclass(frozen=True)
class LeaseInfo(Message):
    """One lease: a reason for ``context`` to run. ``reconnecting``: kept by a restarted
    service for a client that has not come back yet."""

    id: str
    context: str
    holder: HolderInfo
    holder_text: str
    purpose: str
    acquired_at: float
    reconnecting: bool = field(default=False, metadata=_OMIT)


@dataclass(frozen=True)
class AgentInfo(Message):
    """What the service knows of the agent on a running remote machine and its idle guard."""

    installed: bool
    version: str | None = None
    guard_wanted: bool = False
    heartbeats: bool = False
    error: str | None = None
    inactive_seconds: float | None = None
    # The guard's last reading (``workbench.agent.AgentStatus``), once there is one.
    state: str | None = None
    guard_running: bool | None = None
    guard_pid: int | None = None
    idle_timeout_seconds: float | None = None
    activity: tuple[str, ...] = ()
    stop_reason: str | None = None
    agent_version: str | None = None


@dataclass(frozen=True)
class ContextSnapshot(Message):
    """One context as the service sees it now (``status``, ``start``, ``wait``)."""

    name: str
    kind: str
    state: str  # methods.STATES; kept as said, so a newer service's state shows as it is
    message: str
    state_since: float
    stoppable: bool
    always_on: bool
    leases: tuple[LeaseInfo, ...]
    grace_period_seconds: float
    grace_remaining_seconds: float | None = None
    uptime_seconds: float | None = None
    hourly_rate: float | None = None
    cost: float | None = None
    agent: AgentInfo | None = None
    inactive_seconds: float | None = None


@dataclass(frozen=True)
class StoppedContext(ContextSnapshot):
    """``stop``'s answer: the snapshot, and the leases a forced stop ended."""

    ended_leases: tuple[LeaseInfo, ...] = ()


@dataclass(frozen=True)
class ServiceInfo(Message):
    """The service itself: its pid, release, start time and how many clients it has."""

    pid: int
    version: str
    started_at: float
    clients: int


@dataclass(frozen=True)
class BudgetStatus(Message):
    """This month against the budget: ``level`` is the highest of 80 and 100 (percent) reached,
    0 below both."""

    month: str
    monthly_usd: float
    spent: float
    fraction: float
    level: int
    stop_idle_over_budget: bool


@dataclass(frozen=True)
class StatusResult(Message):
    """``status``'s answer: a snapshot of each context asked about, the service, and this
    month's spend against the budget (when one is set)."""

    contexts: tuple[ContextSnapshot, ...]
    service: ServiceInfo
    budget: BudgetStatus | None = None


# -- costs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostRow(Message):
    """One day's or one context's cost; ``unpriced_seconds``: time run at no known rate."""

    key: str
    cost: float
    seconds: float
    unpriced_seconds: float = 0.0


@dataclass(frozen=True)
class RunningCost(Message):
    """A context metered now: its rate, since when, what it cost since, whether it can stop."""

    context: str
    hourly_rate: float | None
    since: float
    cost: float | None
    stoppable: bool


@dataclass(frozen=True)
class CostReport(Message):
    """``costs``' answer: the ledger summed by day or by context from ``since``, this month's
    spend, what runs now and at what rate, and the budget."""

    since: float
    until: float
    by: str
    rows: tuple[CostRow, ...]
    total: float
    month_spent: float
    rate_now: float
    running: tuple[RunningCost, ...]
    budget: BudgetStatus | None = None


@dataclass(frozen=True)
class DeletedInstance(Message):
    """``delete_instance``'s answer: the machine deleted, and the context with it."""

    context: str
    instance: str
    seconds: float


@dataclass(frozen=True)
class HelloResult(Message):
    """The service's protocol, release and folders; ``connection``: the holder id this
    connection's leases are held under; ``leases``: those its client holds already."""

    protocol: int
    version: str
    pid: int
    started_at: float
    connection: str
    config_dir: str
    state_dir: str
    leases: tuple[LeaseInfo, ...] = ()


@dataclass(frozen=True)
class Released(Message):
    """``release``'s answer: the leases it ended."""

    released: tuple[LeaseInfo, ...]


@dataclass(frozen=True)
class Subscribed(Message):
    """``subscribe``'s answer: events follow on this connection."""

    subscribed: bool


@dataclass(frozen=True)
class ShuttingDown(Message):
    """``shutdown``'s answer: the service is on its way out."""

    stopping: bool


# -- projects and apps ------------------------------------------------------------------------


@dataclass(frozen=True)
class AppRow(Message):
    """One app of a project as ``list apps`` and ``project_status`` carry it."""

    name: str
    type: str
    class_: str = field(metadata={"wire": "class"})
    port: str | None
    state: str  # running | stopped | exited | closed | unknown
    url: str | None = None

    @classmethod
    def of_spec(cls, app: AppSpec, state: str) -> AppRow:
        """The row of ``app`` in ``state``; the URL is filled in when it is forwarded."""
        port = app.webapp_options.port if app.webapp_options else ""
        return cls(app.name, app.type, app.class_, port or None, state)


@dataclass(frozen=True)
class OpenedProject(Message):
    """``open_project``'s answer: the container running, and the lease that holds it."""

    project: str
    context: str
    container: str
    image: str
    built: bool
    state: str
    files_copied: int | None
    warnings: tuple[str, ...]
    seconds: float
    lease: LeaseInfo
    sync: str | None = None  # the sync session's state, on a remote context


@dataclass(frozen=True)
class ClosedProject(Message):
    """``close_project``'s answer; ``closed`` False when it was not open there."""

    project: str
    context: str
    closed: bool  # False: it was not open there


@dataclass(frozen=True)
class StartedApp(Message):
    """``start_app``'s answer: the app's state and URL (the service's forward)."""

    app: str
    project: str
    context: str
    state: str
    url: str | None
    seconds: float
    user_msg: str = ""


@dataclass(frozen=True)
class StoppedApp(Message):
    """``stop_app``'s answer, and where the app's output was kept."""

    app: str
    state: str
    log: str  # where the app's output was kept


@dataclass(frozen=True)
class BuiltImage(Message):
    """``build_project``'s answer: the image, built over the service's connection if needed;
    ``connected`` false when the service holds no connection to the context (nothing done)."""

    connected: bool
    project: str = ""
    context: str = ""
    image: str = ""
    built: bool = False
    seconds: float = 0.0
    log: str | None = None


@dataclass(frozen=True)
class AppLog(Message):
    """``app_logs``' answer: the app's output; ``connected`` false as for ``BuiltImage``."""

    connected: bool
    app: str = ""
    log: str = ""


# -- sync ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncProblem(Message):
    """A path sync could not carry across this round, and why (retried)."""

    path: str
    side: str
    message: str


@dataclass(frozen=True)
class SyncHalt(Message):
    """Why sync halted for lost files: the side that lost them, how many of how many agreed;
    ``root`` when that side's folder itself was gone."""

    side: str
    lost: int | None = field(default=None, metadata=_OMIT)
    agreed: int | None = field(default=None, metadata=_OMIT)
    root: bool = field(default=False, metadata=_OMIT)
    at: float | None = field(default=None, metadata=_OMIT)


@dataclass(frozen=True)
class SyncStatus(Message):
    """A project's sync on one context: live from the service, or as last saved."""

    state: str
    message: str = ""
    project_dir: str = ""
    context: str | None = None
    remote: str = ""
    remote_root: str = ""
    last_sync: float | None = None
    pending: int = 0
    waiting: tuple[str, ...] = ()  # files that changed while being sent, settling first
    conflicts: int = 0
    problems: tuple[SyncProblem, ...] = ()
    transport: str | None = None
    remote_watch: str | None = None
    paths: int = 0
    cycles: int | None = None
    halt: SyncHalt | None = None


@dataclass(frozen=True)
class Conflict(Message):
    """A path both sides changed differently; each side kept the other's version beside it."""

    path: str
    local: str
    remote: str
    remote_copy: str
    local_copy: str
    detected_at: float


@dataclass(frozen=True)
class ConflictList(Message):
    """``sync_conflicts``' answer."""

    conflicts: tuple[Conflict, ...]


@dataclass(frozen=True)
class ProjectStatus(Message):
    """A project on a context: open in the service or not, the leases that hold it open, its
    container's state, each app's state and URL, and its live sync (remote contexts)."""

    project: str
    context: str
    open: bool
    leases: tuple[str, ...]
    context_state: str
    container: str  # running | exited | absent | unknown ...
    apps: tuple[AppRow, ...]
    sync: SyncStatus | None = None


# -- daily work: terminals, editors, compose (``workbench/service/daily.py``) ---------------------


@dataclass(frozen=True)
class SshHost(Message):
    """A remote context as OpenSSH reaches it, with the host key Workbench verified
    (``workbench.ssh_entry.HostEntry``); ``jump``: the host in front of it."""

    context: str
    hostname: str
    port: int
    user: str
    host_key_type: str
    host_key: str
    identity_file: str | None = None
    jump: SshHost | None = None
    proxy_jump: str | None = None
    proxy_command: str | None = None
    hop: int = 0


@dataclass(frozen=True)
class AttachTarget(Message):
    """Where a terminal or an editor goes: the context's host (``host``, remote contexts) and,
    with a project, its container and folders. ``control_path``: the service's own OpenSSH
    connection to the host, which a terminal may share."""

    context: str
    remote: bool
    container: str | None = None
    container_state: str | None = None
    project_dir: str | None = None  # the project's folder on the context's host
    workdir: str = "/project"  # in the container
    host: SshHost | None = None
    control_path: str | None = None


@dataclass(frozen=True)
class ComposeService(Message):
    """One compose service: its state (``absent`` before ``up``), containers and health."""

    name: str
    state: str
    containers: tuple[str, ...] = ()
    health: str | None = None
    profiles: tuple[str, ...] = ()


@dataclass(frozen=True)
class ComposeStatus(Message):
    """A project's compose services on a context (``compose_*``); ``file``: the spec's
    ``compose_file_path``; ``engine``: which compose ran (``docker compose``/``docker-compose``)."""

    project: str
    context: str
    file: str
    profiles: tuple[str, ...]
    services: tuple[ComposeService, ...]
    engine: str | None = None


@dataclass(frozen=True)
class ComposeLogs(Message):
    """``compose_logs``' answer: a service's output (every service's, prefixed, without one)."""

    project: str
    service: str | None
    text: str


# -- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event(Message):
    """A notification after ``subscribe``; ``event`` on the wire says which kind (``KIND``)."""

    KIND: ClassVar[str] = ""
    context: str
    time: float

    def to_wire(self) -> dict[str, Any]:
        return {"event": self.KIND, **super().to_wire()}


@dataclass(frozen=True)
class StateEvent(Event):
    """A context's state changed (``methods.STATES``), with the service's message."""

    KIND: ClassVar[str] = "state"
    state: str
    message: str


@dataclass(frozen=True)
class ProgressEvent(Event):
    """A step of starting or stopping a context, in words."""

    KIND: ClassVar[str] = "progress"
    message: str


@dataclass(frozen=True)
class GraceEvent(Event):
    """The last lease went: the context stops after ``seconds`` unless one comes back."""

    KIND: ClassVar[str] = "grace"
    seconds: float


@dataclass(frozen=True)
class LeaseEvent(Event):
    """A lease was acquired, released, lost (its holder ended) or restored."""

    KIND: ClassVar[str] = "lease"
    action: str  # acquired | released | lost | restored
    lease: LeaseInfo


@dataclass(frozen=True)
class ProjectEvent(Event):
    """A stage of opening a project (``stage``: image, files, container, app) or a line the
    project host says; ``project_path`` tells two projects of one name apart."""

    KIND: ClassVar[str] = "project"
    project: str
    project_path: str
    stage: str | None
    message: str


@dataclass(frozen=True)
class BuildLineEvent(Event):
    """One line of an image build, and where the build is."""

    KIND: ClassVar[str] = "build"
    project: str
    project_path: str
    step: str | None
    step_number: int
    step_count: int
    docker_step: tuple[int, ...] | None
    line: str


@dataclass(frozen=True)
class SyncEvent(Event):
    """One of a project's sync session's own events (``kind``: state, progress, conflicts,
    cycle...; ``data`` as the session says it)."""

    KIND: ClassVar[str] = "sync"
    project: str
    project_path: str
    kind: str
    data: dict[str, Any]


@dataclass(frozen=True)
class NoticeEvent(Event):
    """Something a person should hear of (the budget reached, a machine that cannot stop left
    idle): ``level`` info or warning; ``context`` empty when it is about no one context."""

    KIND: ClassVar[str] = "notice"
    level: str
    title: str
    message: str


EVENTS: Mapping[str, type[Event]] = {
    cls.KIND: cls
    for cls in (
        StateEvent,
        ProgressEvent,
        GraceEvent,
        LeaseEvent,
        ProjectEvent,
        BuildLineEvent,
        SyncEvent,
        NoticeEvent,
    )
}


def event_from_wire(data: Any) -> Event | None:
    """The event ``data`` holds; None for a kind this release does not know (a newer
    service's). ``ServiceMismatch`` for one it knows that does not fit."""
    kind = data.get("event") if isinstance(data, dict) else None
    cls = EVENTS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        if not isinstance(data, dict):
            raise ServiceMismatch(f"the Workbench service sent an event that is {what(data)}")
        return None
    return cls.from_wire(data, f"a {kind} event")


# -- errors -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorBody(Message):
    """A JSON-RPC error: its code, message, and (for a Workbench error) the error's ``to_dict``
    as ``data``, which ``protocol.error_from_dict`` makes the same typed error again."""

    code: int
    message: str
    data: dict[str, Any] | None = None
