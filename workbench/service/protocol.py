"""The wire format between clients and the service: JSON-RPC 2.0 messages, one per line.

Every message carries ``"v"`` (``PROTOCOL_VERSION``) so a client can tell a service of another
release apart and say so, rather than misread it. Errors carry the ``WorkbenchError``'s
``to_dict()`` as ``data``, and ``error_from_dict`` turns that back into the same typed error
on the client side, so ``nvwb`` prints and exits exactly as if the failure had been local.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.paths import Paths

if TYPE_CHECKING:
    from workbench.spec import AppSpec

PROTOCOL_VERSION = 1
SOCKET_NAME = "service.sock"
LOCK_NAME = "service.lock"
SPAWN_LOCK_NAME = "service-spawn.lock"
MAX_LINE = 1 << 20  # one message; a status of hundreds of contexts fits many times over

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
WORKBENCH_ERROR = 1


def encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, separators=(",", ":"), default=str) + "\n").encode()


def decode(line: bytes) -> dict[str, Any]:
    """One message; raises ``ValueError`` for anything that is not a JSON object."""
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("a message must be a JSON object")
    return data


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


def _error_classes() -> dict[str, type[WorkbenchError]]:
    found: dict[str, type[WorkbenchError]] = {}
    todo: list[type[WorkbenchError]] = [WorkbenchError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return found


def error_from_dict(data: dict[str, Any]) -> WorkbenchError:
    """Rebuild the typed error the service raised, attributes included.

    The subclasses' constructors differ, so the instance is made without calling them and given
    the attributes their ``details()`` read.
    """
    cls = _error_classes().get(str(data.get("code")), WorkbenchError)
    exc = cls.__new__(cls)
    WorkbenchError.__init__(exc, str(data.get("message", "")), hint=data.get("hint"))
    for key, value in data.items():
        if key not in ("code", "message", "hint", "exit_code"):
            setattr(exc, key, value)
    if isinstance(data.get("exit_code"), int) and data["exit_code"] != cls.exit_code:
        # An error class this process has not imported: keep its documented exit code.
        setattr(exc, "exit_code", data["exit_code"])  # noqa: B010 (a ClassVar, set per instance)
    return exc


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


def app_row(app: AppSpec, state: str) -> dict[str, Any]:
    """One app as ``list apps`` and ``project_status`` carry it; the URL is filled in when the
    app is forwarded."""
    port = app.webapp_options.port if app.webapp_options else ""
    return {
        "name": app.name,
        "type": app.type,
        "class": app.class_,
        "port": port or None,
        "state": state,
        "url": None,
    }
