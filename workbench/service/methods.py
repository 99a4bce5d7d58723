"""The service's methods, declared once: each one's name, parameters and result type.

The server's dispatch is driven by this table. A method not declared here cannot be called, a
parameter not declared for its method is refused, and every value is checked against its
declaration before a handler runs, so a handler reads values of the declared type and a bad
request is answered with an error that names the parameter (``INVALID_PARAMS``), never with an
internal error or, worse, a wrong answer (a string where a list belongs, iterated letter by
letter). A handler returns the declared result (a ``messages`` type), which the server encodes.

The client is derived from the same table: ``ServiceClient.call`` checks the parameters against
the declaration before anything is sent and decodes the reply into the declared type, and each
method is a client attribute of that name (``client.status(refresh=True)``), positional
arguments taken in the order declared here. ``docs/service.md``'s table of methods is written
from it (``scripts/gen-service-docs``).

Standard library only: ``nvwb`` loads the service's client on its path, and its start-up time is
a budget (see ``benchmarks/cli_startup.py``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, cast

from workbench.errors import InvalidValueError
from workbench.service import messages as m
from workbench.service.messages import Message, what

R = TypeVar("R", bound=Message)

Kind = Literal["string", "path", "integer", "number", "boolean", "strings"]

MAX_TEXT = 1024  # names, ids, purposes: far above any real one
MAX_PATH = 4096  # PATH_MAX on Linux
MAX_LIST = 1000  # contexts in one status request
MAX_PID = 2**31 - 1  # pid_t
MAX_SECONDS = 1e9  # about 31 years: "as long as it takes", and still a valid wait
REPLY_SECONDS = 60.0  # how long a client waits for a quick method's reply
REPLY_MARGIN = 10.0  # beyond a wait's own timeout
#: The states a context machine can be in (``machine.State``; a test keeps the two equal).
STATES = ("stopped", "starting", "running", "stopping", "error", "unknown")

_KIND_TEXT = {
    "string": "a string",
    "path": "an absolute path",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "strings": "a list of strings",
}


@dataclass(frozen=True)
class Param:
    """One parameter: its name, kind, whether it must be given, and its limits.

    ``max_length`` bounds a string (characters) and each string of a list; ``max_items`` a
    list; ``minimum``/``maximum`` a number; ``choices`` the strings allowed. Strings may be empty
    only where ``empty`` says so. An optional parameter left out (or given as null) takes
    ``default``.
    """

    name: str
    kind: Kind
    required: bool = False
    default: Any = None
    max_length: int = MAX_TEXT
    max_items: int = MAX_LIST
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    empty: bool = False
    doc: str = ""

    def check(self, where: str, value: Any) -> Any:
        """``value`` if it fits this declaration, else ``InvalidValueError`` naming ``where``."""
        if self.kind == "boolean":
            if not isinstance(value, bool):
                raise _wrong(where, self.kind, value)
            return value
        if self.kind in ("integer", "number"):
            return self._number(where, value)
        if self.kind == "strings":
            if not isinstance(value, list):
                raise _wrong(where, self.kind, value)
            if len(value) > self.max_items:
                raise InvalidValueError(where, f"may hold at most {self.max_items} items")
            for number, item in enumerate(value, 1):
                if not isinstance(item, str):
                    raise InvalidValueError(
                        where, f"item {number} must be a string, not {what(item)}"
                    )
            return [self._string(where, item) for item in value]
        if not isinstance(value, str):
            raise _wrong(where, self.kind, value)
        return self._string(where, value)

    def _number(self, where: str, value: Any) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong(where, self.kind, value)
        if self.kind == "integer" and not isinstance(value, int):
            raise _wrong(where, self.kind, value)
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidValueError(where, "must be a finite number")
        if self.minimum is not None and value < self.minimum:
            raise InvalidValueError(where, f"must be at least {_number_text(self.minimum)}")
        if self.maximum is not None and value > self.maximum:
            raise InvalidValueError(where, f"must be at most {_number_text(self.maximum)}")
        return value

    def _string(self, where: str, value: str) -> str:
        if not value and not self.empty:
            raise InvalidValueError(where, "must not be empty")
        if len(value) > self.max_length:
            raise InvalidValueError(
                where, f"must be at most {self.max_length} characters (got {len(value)})"
            )
        if "\x00" in value:
            raise InvalidValueError(where, "must not contain a NUL character")
        if self.kind == "path" and not os.path.isabs(value):
            raise InvalidValueError(
                where,
                f"must be an absolute path (got {value[:80]!r}): "
                "the service does not share the client's working directory",
            )
        if self.choices and value not in self.choices:
            raise InvalidValueError(
                where, f"{value[:80]!r} is not one of {', '.join(self.choices)}"
            )
        return value


@dataclass(frozen=True)
class Method(Generic[R]):
    """One method: its parameters, its result's type, whether it may block (then it runs on a
    thread of its own), and how long a client waits for its reply.

    ``reply_seconds``: how long a client waits for the reply (None: as long as it takes, for
    the methods that build images and start machines); ``reply_after`` names instead the
    parameter (seconds) the reply may take, ``REPLY_MARGIN`` added (``wait``'s ``timeout``).
    """

    name: str
    params: tuple[Param, ...] = ()
    result: type[R] = field(default=cast(Any, m.Nothing))
    blocking: bool = False
    doc: str = ""
    reply_seconds: float | None = REPLY_SECONDS
    reply_after: str = ""

    def check(self, params: Any) -> dict[str, Any]:
        """The request's ``params`` checked: every declared name present (defaults filled in).

        Raises ``InvalidValueError`` whose field is ``METHOD.PARAM`` (or ``METHOD.params``).
        """
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise InvalidValueError(
                f"{self.name}.params", f"must be an object of named parameters, not {what(params)}"
            )
        declared = {param.name: param for param in self.params}
        for name in params:
            if name not in declared:
                known = ", ".join(declared) or "none"
                raise InvalidValueError(
                    f"{self.name}.{name[:80]}", f"unknown parameter (known: {known})"
                )
        checked: dict[str, Any] = {}
        for name, param in declared.items():
            value = params.get(name)
            if value is None:
                if param.required:
                    raise InvalidValueError(f"{self.name}.{name}", "is required")
                checked[name] = param.default
            else:
                checked[name] = param.check(f"{self.name}.{name}", value)
        return checked

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """A client's call as named parameters: ``args`` in the declared order, then ``kwargs``
        (a name given twice, or more arguments than parameters, is refused)."""
        if len(args) > len(self.params):
            raise InvalidValueError(
                f"{self.name}.params",
                f"takes at most {len(self.params)} positional arguments ({len(args)} given)",
            )
        named: dict[str, Any] = {}
        for param, value in zip(self.params, args, strict=False):
            named[param.name] = value
        for name, value in kwargs.items():
            if name in named:
                raise InvalidValueError(f"{self.name}.{name}", "given twice")
            named[name] = value
        return named

    def reply_timeout(self, params: Mapping[str, Any]) -> float | None:
        """How long a client waits for the reply to a call with ``params`` (None: no limit)."""
        if self.reply_after:
            seconds = params.get(self.reply_after)
            return float(seconds) + REPLY_MARGIN if seconds else None
        return self.reply_seconds


def _wrong(where: str, kind: Kind, value: Any) -> InvalidValueError:
    return InvalidValueError(where, f"must be {_KIND_TEXT[kind]}, not {what(value)}")


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# -- the declarations ----------------------------------------------------------------------------

_CONTEXT = Param("context", "string", required=True, doc="a context's name")
_PROJECT = Param(
    "project", "path", required=True, max_length=MAX_PATH, doc="the project folder's path"
)
_APP = Param("app", "string", required=True, doc="an app's name in the project's spec")
_HOLDER_PID = Param(
    "holder_pid",
    "integer",
    minimum=1,
    maximum=MAX_PID,
    doc="the process that holds the lease; without it, the calling connection does",
)
_FORCE = Param("force", "boolean", default=False)
_PURPOSE = Param("purpose", "string", default="", empty=True, doc="why it is held, for status")
_SYNC_CONTEXT = Param("context", "string", required=True, doc="the context the project is open on")

HELLO = Method(
    "hello",
    (
        Param("client", "string", doc="what the client is, for the log"),
        Param("pid", "integer", minimum=1, maximum=MAX_PID, doc="the client's pid"),
        Param(
            "config_dir",
            "path",
            max_length=MAX_PATH,
            doc="the client's configuration; refused when the service serves another",
        ),
        Param("state_dir", "path", max_length=MAX_PATH, doc="the client's state folder"),
        Param(
            "client_id",
            "string",
            max_length=64,
            doc="the client's id, kept across reconnects: its leases are held under it",
        ),
    ),
    result=m.HelloResult,
    doc="the service's protocol, version and pid, and the leases this client holds",
)
ACQUIRE = Method(
    "acquire",
    (_CONTEXT, _HOLDER_PID, _PURPOSE),
    result=m.LeaseInfo,
    doc="a lease on a context: start it if stopped, keep it running while held",
)
RELEASE = Method(
    "release",
    (
        Param("lease_id", "string"),
        _HOLDER_PID,
        Param("context", "string"),
        Param("purpose", "string", empty=True),
        Param("keep", "string", doc="a lease id to leave alone"),
    ),
    result=m.Released,
    doc="end one lease by id, or each lease matching holder/context/purpose",
)
STATUS = Method(
    "status",
    (Param("contexts", "strings"), Param("refresh", "boolean", default=False)),
    result=m.StatusResult,
    doc="a snapshot of each context (all of them without contexts)",
)
START = Method(
    "start", (_CONTEXT,), result=m.ContextSnapshot, doc="start a context without holding it"
)
STOP = Method(
    "stop",
    (_CONTEXT, _FORCE),
    result=m.StoppedContext,
    doc="stop a context now; force ends its leases",
)
WAIT = Method(
    "wait",
    (
        _CONTEXT,
        Param("states", "strings", choices=STATES, max_items=len(STATES)),
        Param(
            "timeout",
            "number",
            minimum=0,
            maximum=MAX_SECONDS,
            doc="seconds; 0 or none waits as long as it takes",
        ),
    ),
    result=m.ContextSnapshot,
    blocking=True,
    reply_after="timeout",
    doc="block until the context is in one of states (default: running)",
)
OPEN_PROJECT = Method(
    "open_project",
    (_PROJECT, _CONTEXT, _HOLDER_PID, Param("full_build", "boolean", default=False)),
    result=m.OpenedProject,
    blocking=True,
    reply_seconds=None,
    doc="lease, start, build and run the project's container",
)
CLOSE_PROJECT = Method(
    "close_project",
    (_PROJECT, _CONTEXT),
    result=m.ClosedProject,
    blocking=True,
    reply_seconds=None,
    doc="stop its apps, sync, forwards and container; release its leases",
)
START_APP = Method(
    "start_app",
    (
        _PROJECT,
        _CONTEXT,
        _APP,
        _HOLDER_PID,
        Param("local_port", "integer", default=0, minimum=0, maximum=65535),
        Param("timeout", "number", minimum=0, maximum=MAX_SECONDS, doc="the health check's wait"),
    ),
    result=m.StartedApp,
    blocking=True,
    reply_seconds=None,
    doc="start an app and forward it; the service holds the forward",
)
STOP_APP = Method(
    "stop_app",
    (_PROJECT, _CONTEXT, _APP),
    result=m.StoppedApp,
    blocking=True,
    reply_seconds=None,
    doc="stop an app and close its forward; its log is kept",
)
PROJECT_STATUS = Method(
    "project_status",
    (_PROJECT, _CONTEXT),
    result=m.ProjectStatus,
    reply_seconds=120.0,
    doc="open here or not, the container's state, each app's state and URL, the sync's status",
)
# The sync of a project the service has open on a remote context. A project it does not run the
# sync of is answered with ``sync_not_hosted``: its saved state is then read or edited offline
# (``workbench.service.sync_control``).
SYNC_STATUS = Method(
    "sync_status",
    (_PROJECT, _SYNC_CONTEXT),
    result=m.SyncStatus,
    blocking=True,
    reply_seconds=None,
    doc="the project's live sync: state, last sync, pending, conflicts, problems",
)
SYNC_CONFLICTS = Method(
    "sync_conflicts",
    (_PROJECT, _SYNC_CONTEXT),
    result=m.ConflictList,
    blocking=True,
    reply_seconds=None,
    doc="the paths both sides changed differently",
)
SYNC_RESOLVE = Method(
    "sync_resolve",
    (
        _PROJECT,
        _SYNC_CONTEXT,
        Param("path", "string", required=True, max_length=MAX_PATH, doc="the conflict's path"),
        Param("keep", "string", required=True, choices=("local", "remote", "both")),
    ),
    result=m.SyncStatus,
    blocking=True,
    reply_seconds=None,
    doc="settle a conflict: one side's version everywhere, or both kept",
)
SYNC_PAUSE = Method(
    "sync_pause",
    (_PROJECT, _SYNC_CONTEXT),
    result=m.SyncStatus,
    blocking=True,
    reply_seconds=None,
    doc="stop syncing; changes wait on both sides",
)
SYNC_RESUME = Method(
    "sync_resume",
    (_PROJECT, _SYNC_CONTEXT),
    result=m.SyncStatus,
    blocking=True,
    reply_seconds=None,
    doc="sync again, both sides rescanned",
)
SYNC_SETTLE = Method(
    "sync_settle",
    (
        _PROJECT,
        _SYNC_CONTEXT,
        Param("how", "string", required=True, choices=("confirm-deletions", "restore")),
    ),
    result=m.SyncStatus,
    blocking=True,
    reply_seconds=None,
    doc="after a halt for lost files: delete them on the other side too, or copy them back",
)
# Daily work in a project (``workbench/service/daily.py``): terminals, editors, compose.
ATTACH_TARGET = Method(
    "attach_target",
    (
        _CONTEXT,
        Param("project", "path", max_length=MAX_PATH, doc="the project (none: the host alone)"),
    ),
    result=m.AttachTarget,
    blocking=True,
    reply_seconds=120.0,
    doc="where a terminal or editor goes: the host's SSH entry, the project's container",
)
_PROFILES = Param("profiles", "strings", max_items=64, max_length=63, doc="compose profiles")
COMPOSE_UP = Method(
    "compose_up",
    (
        _PROJECT,
        _CONTEXT,
        _PROFILES,
        _HOLDER_PID,
        Param(
            "secrets_in_environment",
            "boolean",
            default=False,
            doc="allow a secret's value in a service's definition (docker inspect shows it)",
        ),
    ),
    result=m.ComposeStatus,
    blocking=True,
    reply_seconds=None,
    doc="start the project's compose services (opening the project first if needed)",
)
COMPOSE_DOWN = Method(
    "compose_down",
    (_PROJECT, _CONTEXT),
    result=m.ComposeStatus,
    blocking=True,
    reply_seconds=None,
    doc="stop and remove the project's compose services, every profile's",
)
COMPOSE_STATUS = Method(
    "compose_status",
    (_PROJECT, _CONTEXT),
    result=m.ComposeStatus,
    blocking=True,
    reply_seconds=120.0,
    doc="each compose service's state, containers and health",
)
COMPOSE_LOGS = Method(
    "compose_logs",
    (
        _PROJECT,
        _CONTEXT,
        Param("service", "string", max_length=63, doc="one service (none: all, prefixed)"),
        Param("tail", "integer", minimum=1, maximum=10_000_000, doc="only the last N lines"),
    ),
    result=m.ComposeLogs,
    blocking=True,
    reply_seconds=120.0,
    doc="the output of the project's compose services",
)
# ``nvwb build`` and ``nvwb logs`` over the connection the service holds to a context (no login
# of their own); ``connected`` false when it holds none: the CLI then connects itself.
BUILD_PROJECT = Method(
    "build_project",
    (_PROJECT, _CONTEXT, Param("full_build", "boolean", default=False)),
    result=m.BuiltImage,
    blocking=True,
    reply_seconds=None,
    doc="build the project's image over the service's connection to the context, if it has one",
)
APP_LOGS = Method(
    "app_logs",
    (_PROJECT, _CONTEXT, _APP, Param("tail", "integer", minimum=1, maximum=10_000_000)),
    result=m.AppLog,
    blocking=True,
    reply_seconds=None,
    doc="an app's output over the service's connection to the context, if it has one",
)
COSTS = Method(
    "costs",
    (
        Param(
            "since",
            "number",
            minimum=0,
            maximum=1e11,
            doc="epoch seconds; default: this month's start",
        ),
        Param("by", "string", default="day", choices=("day", "context")),
    ),
    result=m.CostReport,
    doc="the cost ledger summed by day or context, this month against the budget, the rate now",
)
DELETE_INSTANCE = Method(
    "delete_instance",
    (_CONTEXT,),
    result=m.DeletedInstance,
    blocking=True,
    reply_seconds=None,
    doc="delete the context's machine and the context; refused while a lease holds it",
)
SUBSCRIBE = Method(
    "subscribe",
    result=m.Subscribed,
    doc="events from now on, as notifications on this connection",
)
SHUTDOWN = Method(
    "shutdown",
    (_FORCE,),
    result=m.ShuttingDown,
    doc="exit; refused while anything is held, unless force",
)

METHODS: Mapping[str, Method[Any]] = {
    method.name: method
    for method in (
        HELLO,
        ACQUIRE,
        RELEASE,
        STATUS,
        START,
        STOP,
        WAIT,
        OPEN_PROJECT,
        CLOSE_PROJECT,
        START_APP,
        STOP_APP,
        PROJECT_STATUS,
        SYNC_STATUS,
        SYNC_CONFLICTS,
        SYNC_RESOLVE,
        SYNC_PAUSE,
        SYNC_RESUME,
        SYNC_SETTLE,
        ATTACH_TARGET,
        COMPOSE_UP,
        COMPOSE_DOWN,
        COMPOSE_STATUS,
        COMPOSE_LOGS,
        BUILD_PROJECT,
        APP_LOGS,
        COSTS,
        DELETE_INSTANCE,
        SUBSCRIBE,
        SHUTDOWN,
    )
}
