"""The service's methods, declared once: each one's name, parameters, their types and limits.

The server's dispatch is driven by this table. A method not declared here cannot be called, a
parameter not declared for its method is refused, and every value is checked against its
declaration before a handler runs, so a handler reads values of the declared type and a bad
request is answered with an error that names the parameter (``INVALID_PARAMS``), never with an
internal error or, worse, a wrong answer (a string where a list belongs, iterated letter by
letter).

This is the first part of the service's typed contract; results and events are to be declared
beside it. It uses the standard library only: ``nvwb`` loads the service's client on its path,
and its start-up time is a budget (see ``benchmarks/cli_startup.py``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from workbench.errors import InvalidValueError

Kind = Literal["string", "path", "integer", "number", "boolean", "strings"]

MAX_TEXT = 1024  # names, ids, purposes: far above any real one
MAX_PATH = 4096  # PATH_MAX on Linux
MAX_LIST = 1000  # contexts in one status request
MAX_PID = 2**31 - 1  # pid_t
MAX_SECONDS = 1e9  # about 31 years: "as long as it takes", and still a valid wait
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
                        where, f"item {number} must be a string, not {_what(item)}"
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
class Method:
    """One method: its parameters, and whether it may block (then it runs on its own thread)."""

    name: str
    params: tuple[Param, ...] = ()
    blocking: bool = False
    doc: str = ""

    def check(self, params: Any) -> dict[str, Any]:
        """The request's ``params`` checked: every declared name present (defaults filled in).

        Raises ``InvalidValueError`` whose field is ``METHOD.PARAM`` (or ``METHOD.params``).
        """
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise InvalidValueError(
                f"{self.name}.params", f"must be an object of named parameters, not {_what(params)}"
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


def _wrong(where: str, kind: Kind, value: Any) -> InvalidValueError:
    return InvalidValueError(where, f"must be {_KIND_TEXT[kind]}, not {_what(value)}")


def _what(value: Any) -> str:
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

METHODS: Mapping[str, Method] = {
    method.name: method
    for method in (
        Method(
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
            doc="the service's protocol, version and pid",
        ),
        Method(
            "acquire",
            (_CONTEXT, _HOLDER_PID, _PURPOSE),
            doc="a lease on a context: start it if stopped, keep it running while held",
        ),
        Method(
            "release",
            (
                Param("lease_id", "string"),
                _HOLDER_PID,
                Param("context", "string"),
                Param("purpose", "string", empty=True),
                Param("keep", "string", doc="a lease id to leave alone"),
            ),
            doc="end one lease by id, or each lease matching holder/context/purpose",
        ),
        Method(
            "status",
            (Param("contexts", "strings"), Param("refresh", "boolean", default=False)),
            doc="a snapshot of each context (all of them without contexts)",
        ),
        Method("start", (_CONTEXT,), doc="start a context without holding it"),
        Method("stop", (_CONTEXT, _FORCE), doc="stop a context now; force ends its leases"),
        Method(
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
            blocking=True,
            doc="block until the context is in one of states (default: running)",
        ),
        Method(
            "open_project",
            (_PROJECT, _CONTEXT, _HOLDER_PID, Param("full_build", "boolean", default=False)),
            blocking=True,
            doc="lease, start, build and run the project's container",
        ),
        Method("close_project", (_PROJECT, _CONTEXT), blocking=True),
        Method(
            "start_app",
            (
                _PROJECT,
                _CONTEXT,
                _APP,
                _HOLDER_PID,
                Param("local_port", "integer", default=0, minimum=0, maximum=65535),
                Param("timeout", "number", minimum=0, maximum=MAX_SECONDS),
            ),
            blocking=True,
            doc="start an app and forward it; the service holds the forward",
        ),
        Method("stop_app", (_PROJECT, _CONTEXT, _APP), blocking=True),
        Method("project_status", (_PROJECT, _CONTEXT)),
        Method(
            "build_project",
            (_PROJECT, _CONTEXT, Param("full_build", "boolean", default=False)),
            blocking=True,
            doc="build the image on a context the service is connected to, with no new login; "
            "connected false when it is not (the caller connects itself)",
        ),
        Method(
            "app_logs",
            (_PROJECT, _CONTEXT, _APP, Param("tail", "integer", minimum=1, maximum=10_000_000)),
            blocking=True,
            doc="an app's output, over the service's connection; connected false without one",
        ),
        Method("subscribe", doc="events from now on, as notifications on this connection"),
        Method("shutdown", (_FORCE,), doc="exit; refused while anything is held, unless force"),
    )
}
