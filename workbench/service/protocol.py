"""The wire format between clients and the service: JSON-RPC 2.0 messages, one per line.

Every message carries ``"v"`` (``PROTOCOL_VERSION``) so a client can tell a service of another
release apart and say so, rather than misread it. Errors carry the ``WorkbenchError``'s
``to_dict()`` as ``data``, and ``error_from_dict`` turns that back into the same typed error
on the client side, so ``nvwb`` prints and exits exactly as if the failure had been local. For
that, each error class has a code of its own and ``details()`` lists everything it holds
(``tests/unit/test_service_errors.py`` checks both for every class).

A message is at most ``MAX_LINE`` bytes and ``MAX_DEPTH`` levels deep; ``decode`` raises
``MessageError`` (with the JSON-RPC code to answer) for anything else.
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.paths import Paths

PROTOCOL_VERSION = 1
SOCKET_NAME = "service.sock"
LOCK_NAME = "service.lock"
SPAWN_LOCK_NAME = "service-spawn.lock"
MAX_LINE = 1 << 20  # bytes of one message; a status of hundreds of contexts fits many times over
MAX_DEPTH = 32  # nesting of objects and lists in one message; the deepest real one is under 10
MAX_IN_FLIGHT = 32  # blocking requests (wait, open_project, ...) one connection may have running

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_BUSY = -32000  # the range JSON-RPC leaves to servers: too many requests in flight
WORKBENCH_ERROR = 1


class ServiceUnavailable(WorkbenchError):
    """The service could not be reached or started."""

    exit_code = 11
    code = "service_unavailable"


class ServiceGone(ServiceUnavailable):
    """The connection closed before the reply: the service exited (or was killed) meanwhile.

    A client may connect again as itself (``ServiceClient.reconnect``) and find its leases."""

    code = "service_gone"


class OtherConfiguration(ServiceUnavailable):
    """The service answering on this socket serves another configuration than the client's."""

    code = "service_other_configuration"


class ServiceMismatch(WorkbenchError):
    """The service answered with something this client cannot read (another release, or a
    broken service): said with the field, never a crash on a missing key. Not a lost service:
    connecting again would meet the same one."""

    exit_code = 11
    code = "service_mismatch"


class SyncNotHosted(WorkbenchError):
    """The service does not run this project's sync on this context (the project is not open
    there, or its sync could not start): the saved state is the one to read or edit."""

    exit_code = 4
    code = "sync_not_hosted"


class AlreadyRunning(WorkbenchError):
    """Another service holds this user's lock: this one must not start."""

    code = "service_running"


class MessageError(ValueError):
    """A line that is not a usable message; ``code`` is the JSON-RPC error to answer with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, separators=(",", ":"), default=str) + "\n").encode()


def decode(line: bytes, *, max_depth: int | None = MAX_DEPTH) -> dict[str, Any]:
    """One message; raises ``MessageError`` (a ``ValueError``) for anything else.

    Refused: what is not JSON, ``NaN`` and ``Infinity`` (not JSON, though Python writes them),
    anything but an object, and nesting deeper than ``max_depth`` (None: as deep as the parser
    goes; past that it is refused too, never a ``RecursionError``).
    """
    try:
        data = json.loads(line, parse_constant=_no_constant)
    except RecursionError:
        raise MessageError(PARSE_ERROR, "not JSON that can be read: nested too deeply") from None
    except ValueError as exc:
        raise MessageError(PARSE_ERROR, f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MessageError(INVALID_REQUEST, "a message must be a JSON object")
    if max_depth is not None and _deeper_than(data, max_depth):
        raise MessageError(INVALID_REQUEST, f"a message may not be nested deeper than {max_depth}")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _deeper_than(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def is_finite_number(value: Any) -> bool:
    """An int or float that JSON can carry (not a bool, not NaN or infinite)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not isinstance(value, float) or math.isfinite(value)


def request(msg_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "v": PROTOCOL_VERSION,
        "id": msg_id,
        "method": method,
        "params": params,
    }


def result(msg_id: Any, value: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "v": PROTOCOL_VERSION, "id": msg_id, "result": value}


def error(msg_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        body["data"] = data
    return {"jsonrpc": "2.0", "v": PROTOCOL_VERSION, "id": msg_id, "error": body}


def workbench_error(msg_id: Any, exc: WorkbenchError) -> dict[str, Any]:
    return error(msg_id, WORKBENCH_ERROR, exc.message, exc.to_dict())


def event(payload: dict[str, Any]) -> dict[str, Any]:
    """A notification (no id): state changes, progress, leases."""
    return {"jsonrpc": "2.0", "v": PROTOCOL_VERSION, "method": "event", "params": payload}


# Every module that defines a WorkbenchError subclass. A client imports them when a reply names a
# code it has not met (``nvwb open`` never loads the image builder, yet a failed build must come
# back as ``BuildFailed`` with its log). A fixed list, never a name from the wire;
# ``tests/unit/test_service_errors.py`` checks it is complete.
ERROR_MODULES = (
    "workbench.errors",
    "workbench.registry",
    "workbench.projects",
    "workbench.identity",
    "workbench.project_files",
    "workbench.gpu",
    "workbench.kinds.provision",
    "workbench.ssh.dial",
    "workbench.ssh.keys",
    "workbench.sync.relpath",
    "workbench.sync.loss",
    "workbench.sync.untrusted",
    "workbench.sync.transport",
    "workbench.container.builder",
    "workbench.container.apps",
    "workbench.container.runtime",
    "workbench.container.compose",
    "workbench.vcs",
    "workbench.container.forwards",
    "workbench.service.protocol",
)
_WIRE_KEYS = frozenset({"code", "message", "hint", "exit_code"})


class UnknownError(WorkbenchError):
    """An error whose code no module of this release defines: code, exit code and fields kept."""

    code = "unknown"

    def details(self) -> dict[str, Any]:
        fields: dict[str, Any] = getattr(self, "_wire_fields", {})
        return dict(fields)


def _error_classes() -> dict[str, type[WorkbenchError]]:
    found: dict[str, type[WorkbenchError]] = {}
    todo: list[type[WorkbenchError]] = [WorkbenchError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return found


def error_class(code: str) -> type[WorkbenchError] | None:
    """The class whose code is ``code``, importing ``ERROR_MODULES`` if it is not loaded yet."""
    found = _error_classes().get(code)
    if found is None:
        for module in ERROR_MODULES:
            try:
                importlib.import_module(module)
            except ImportError:  # an optional dependency missing here: its errors cannot come
                continue
        found = _error_classes().get(code)
    return found


def error_from_dict(data: dict[str, Any]) -> WorkbenchError:
    """Rebuild the typed error the service raised, attributes included.

    The subclasses' constructors differ, so the instance is made without calling them and given
    the attributes their ``details()`` read; one that ``to_dict`` left out because it was None
    is set to None. Only plain data attributes are set: a key naming a method or a private
    attribute is not (it would break the error when printed).
    """
    code = str(data.get("code") or WorkbenchError.code)
    cls = error_class(code)
    exc = (cls or UnknownError).__new__(cls or UnknownError)
    WorkbenchError.__init__(exc, str(data.get("message", "")), hint=_text_or_none(data.get("hint")))
    fields = {key: value for key, value in data.items() if key not in _WIRE_KEYS}
    for key, value in fields.items():
        if _settable(type(exc), key):
            setattr(exc, key, value)
    if cls is None:
        setattr(exc, "code", code)  # noqa: B010 (a ClassVar, set per instance)
        exc._wire_fields = {k: v for k, v in fields.items() if _settable(UnknownError, k)}  # type: ignore[attr-defined]
    exit_code = data.get("exit_code")
    if (
        isinstance(exit_code, int)
        and not isinstance(exit_code, bool)
        and exit_code != exc.exit_code
    ):
        setattr(exc, "exit_code", exit_code)  # noqa: B010 (a ClassVar, set per instance)
    _fill_missing(exc)
    return exc


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _settable(cls: type[WorkbenchError], key: str) -> bool:
    if not key.isidentifier() or key.startswith("_") or key == "args":
        return False
    existing = getattr(cls, key, None)
    return not callable(existing) and not isinstance(existing, property)


def _fill_missing(exc: WorkbenchError) -> None:
    """Set to None each attribute ``details()`` reads that the wire did not carry."""
    for _ in range(64):
        try:
            exc.details()
            return
        except AttributeError as missing:
            if missing.obj is not exc or not missing.name or not _settable(type(exc), missing.name):
                raise
            setattr(exc, missing.name, None)


def socket_path(paths: Paths) -> Path:
    """Where the user's service listens (clients and the server agree through this alone)."""
    return paths.runtime_dir / SOCKET_NAME


def prepare_runtime_dir(paths: Paths) -> Path:
    """The runtime dir, created 0700 (or tightened to it): the socket's only other guard."""
    directory = paths.runtime_dir
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if directory.stat().st_mode & 0o077:
        directory.chmod(0o700)
    return directory
