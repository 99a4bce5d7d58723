"""The service's method declarations: the table, the checker, and the client that must obey it.

The server's side is tried against a real service in ``tests/integration/test_service_input.py``;
here the declarations themselves, and every request the Python client sends, read off a real
socket pair and checked against the declaration of its method.
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any, get_args

import pytest

from tests.support.messages import sample_wire
from workbench.errors import InvalidValueError
from workbench.paths import Paths
from workbench.service import server
from workbench.service.client import ServiceClient
from workbench.service.machine import State
from workbench.service.methods import METHODS, Method, Param


def test_every_declared_method_has_a_handler_and_no_handler_is_undeclared():
    assert set(server._HANDLERS) == set(METHODS)
    # A method of Connection named like a handler but not registered would be dead code now.
    named = {name[3:] for name in vars(server.Connection) if name.startswith("_m_")}
    assert named == set(METHODS)


def test_the_states_a_wait_accepts_are_the_machines_states():
    (states,) = [p.choices for p in METHODS["wait"].params if p.name == "states"]
    assert set(states) == set(get_args(State))


def test_defaults_fill_what_is_left_out_and_null_counts_as_left_out():
    checked = METHODS["stop"].check({"context": "gpu", "force": None})
    assert checked == {"context": "gpu", "force": False}
    assert METHODS["subscribe"].check(None) == {}


def test_a_checked_value_is_returned_as_given():
    method = Method("m", (Param("n", "number", minimum=0), Param("names", "strings")))
    assert method.check({"n": 2, "names": ["a", "b"]}) == {"n": 2, "names": ["a", "b"]}
    assert method.check({"n": 0.5})["n"] == 0.5


@pytest.mark.parametrize(
    ("param", "value", "words"),
    [
        (Param("n", "number"), float("nan"), "finite"),
        (Param("n", "number"), float("inf"), "finite"),
        (Param("n", "integer"), 1.0, "an integer, not a number"),
        (Param("s", "strings", max_items=2), ["a", "b", "c"], "at most 2 items"),
        (Param("s", "strings"), ["a", ""], "empty"),
        (Param("s", "string", choices=("x", "y")), "z", "not one of x, y"),
        (Param("p", "path"), "~/p", "absolute"),
    ],
)
def test_the_checker_refuses_with_the_reason(param, value, words):
    with pytest.raises(InvalidValueError) as caught:
        Method("m", (param,)).check({param.name: value})
    assert caught.value.field == f"m.{param.name}"
    assert words in caught.value.reason


class _Checker:
    """The far end of a socket pair: checks each request against its declaration, answers {}."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.problems: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with self.sock.makefile("rb") as reader:
            for line in reader:
                message = json.loads(line)
                name, params = message["method"], message.get("params")
                try:
                    self.seen.append((name, METHODS[name].check(params)))
                except (KeyError, InvalidValueError) as exc:
                    self.problems.append(f"{name}: {exc}")
                result = sample_wire(METHODS[name].result) if name in METHODS else {}
                if name == "hello":
                    result["protocol"] = 1
                reply = {"jsonrpc": "2.0", "v": 1, "id": message["id"], "result": result}
                self.sock.sendall(json.dumps(reply).encode() + b"\n")


def test_every_request_the_python_client_sends_fits_its_declaration(tmp_path: Path):
    ours, theirs = socket.socketpair()
    checker = _Checker(theirs)
    client = ServiceClient(ours)
    project = str(tmp_path / "proj")
    try:
        client.hello(Paths.from_env({"HOME": str(tmp_path)}))
        client.acquire("gpu")
        client.acquire("gpu", holder_pid=42, purpose="activate")
        client.release("lease-1")
        client.release(holder_pid=42, context="gpu", purpose="activate", keep="lease-2")
        client.status()
        client.status(["gpu"], refresh=True)
        client.start("gpu")
        client.stop("gpu", force=True)
        client.wait("gpu", ["running", "error"], 30)
        client.open_project(project, "gpu", holder_pid=42, full_build=True)
        client.close_project(project, "gpu")
        client.start_app(project, "gpu", "jupyterlab", holder_pid=42, local_port=8888, timeout=5)
        client.stop_app(project, "gpu", "jupyterlab")
        client.project_status(project, "gpu")
        client.sync_status(project, "gpu")
        client.sync_conflicts(project, "gpu")
        client.sync_resolve(project, "gpu", "notes.md", "both")
        client.sync_pause(project, "gpu")
        client.sync_resume(project, "gpu")
        client.sync_settle(project, "gpu", "restore")
        client.attach_target("gpu", project=project)
        client.attach_target("gpu")
        client.compose_up(project, "gpu", profiles=["nim"], holder_pid=42)
        client.compose_up(project, "gpu", secrets_in_environment=True)
        client.compose_down(project, "gpu")
        client.compose_status(project, "gpu")
        client.compose_logs(project, "gpu", service="db", tail=100)
        client.build_project(project, "gpu", full_build=True)
        client.app_logs(project, "gpu", "jupyterlab", tail=20)
        client.costs(since=1_700_000_000, by="context")
        client.costs()
        client.delete_instance("gpu")
        client.subscribe(lambda event: None)
        client.shutdown(force=True)
    finally:
        client.close()
        theirs.close()
    assert checker.problems == []
    called = {name for name, _ in checker.seen}
    assert called == set(METHODS), "a method without a client call is untested here"
