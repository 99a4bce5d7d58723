"""The service's typed contract: messages, results declared per method, the derived client.

A stand-in service on a real socket (a socket pair, or the user's socket path for ``nvwb``)
answers what a newer, older or broken service might: the client must say so clearly, naming the
field, and never crash on a missing key; and it checks a call against the declaration before
anything is sent.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import nvwb
from tests.support.messages import sample_wire
from workbench import osproc
from workbench.errors import InvalidValueError
from workbench.paths import Paths
from workbench.service import messages, server
from workbench.service.client import ServiceClient
from workbench.service.messages import (
    ContextSnapshot,
    Event,
    LeaseInfo,
    Message,
    StateEvent,
    event_from_wire,
)
from workbench.service.methods import METHODS
from workbench.service.protocol import ServiceMismatch, prepare_runtime_dir, socket_path

Answer = Callable[[str, dict[str, Any]], Any]


class StandIn:
    """The far end of a socket: records each request and answers with ``answer(method,
    params)``'s result; ``events`` are sent before the answer to a ``subscribe``."""

    def __init__(self, sock: socket.socket, answer: Answer, events: tuple[Any, ...] = ()) -> None:
        self.sock = sock
        self.answer = answer
        self.events = list(events)
        self.seen: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with self.sock, self.sock.makefile("rb") as reader:
            for line in reader:
                message = json.loads(line)
                name = message["method"]
                self.seen.append(name)
                if name == "subscribe":
                    for event in self.events:
                        self._send({"jsonrpc": "2.0", "v": 1, "method": "event", "params": event})
                result = self.answer(name, message.get("params") or {})
                self._send({"jsonrpc": "2.0", "v": 1, "id": message["id"], "result": result})

    def _send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(message).encode() + b"\n")


def valid(name: str, params: dict[str, Any]) -> Any:
    """A minimal answer that fits ``name``'s declaration."""
    result = sample_wire(METHODS[name].result)
    if name == "hello":
        result["protocol"] = 1
    return result


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def snapshot_wire(**fields: Any) -> dict[str, Any]:
    return {**sample_wire(ContextSnapshot), **fields}


# -- results ---------------------------------------------------------------------------------


def test_a_result_that_does_not_fit_is_a_clear_error_naming_the_field(pair):
    ours, theirs = pair

    def odd(name: str, params: dict[str, Any]) -> Any:
        if name == "status":
            return {"contexts": [snapshot_wire(leases="none")], "service": {}}
        return valid(name, params)

    StandIn(theirs, odd)
    client = ServiceClient(ours)
    with pytest.raises(ServiceMismatch) as caught:
        client.status()
    assert "contexts[0].leases: must be a list, not a string" in caught.value.message
    assert caught.value.exit_code == 11
    assert "another Workbench release" in str(caught.value.hint)


def test_a_newer_services_extra_fields_are_ignored_and_its_values_kept(pair):
    ours, theirs = pair

    def newer(name: str, params: dict[str, Any]) -> Any:
        if name == "status":
            snap = snapshot_wire(state="hibernating", zone="eu-west", hourly_rate=3)
            return {**valid(name, params), "contexts": [snap], "shards": 3}
        return valid(name, params)

    StandIn(theirs, newer)
    (snap,) = ServiceClient(ours).status().contexts
    assert snap.state == "hibernating"  # a state this release does not know is shown as said
    assert snap.hourly_rate == 3 and isinstance(snap.hourly_rate, int)  # -o json keeps "3"


def test_nvwb_status_against_a_service_that_answers_oddly_exits_clearly(wb_env, tmp_path: Path):
    """Not a traceback or an ``internal error``: what and where, and the exit code of a service
    that cannot be used (11)."""
    paths = Paths.from_env(wb_env)
    prepare_runtime_dir(paths)
    listener = osproc.LocalListener(socket_path(paths))

    def serve() -> None:
        conn = listener.accept()
        if conn is None:
            return

        def odd(name: str, params: dict[str, Any]) -> Any:
            if name == "status":
                return {"contexts": [{"name": "gpu", "leases": "none"}]}
            return valid(name, params)

        StandIn(conn, odd)

    threading.Thread(target=serve, daemon=True).start()
    try:
        done = nvwb(wb_env, "status")
    finally:
        listener.close()
    assert "Traceback" not in done.err and "internal error" not in done.err, done.err
    assert done.code == 11, done.err
    assert "the status result this client cannot read at contexts[0]" in done.err


# -- parameters ------------------------------------------------------------------------------


def test_parameters_are_checked_before_anything_is_sent(pair):
    ours, theirs = pair
    stand_in = StandIn(theirs, valid)
    client = ServiceClient(ours)
    with pytest.raises(InvalidValueError) as caught:
        client.acquire("gpu", holder_pid="1")
    assert caught.value.field == "acquire.holder_pid"
    with pytest.raises(InvalidValueError) as caught:
        client.open_project("relative/path", "gpu")
    assert caught.value.field == "open_project.project" and "absolute" in caught.value.reason
    with pytest.raises(InvalidValueError) as caught:
        client.sync_resolve("/p", "gpu", "notes.md", "mine")
    assert caught.value.field == "sync_resolve.keep"
    with pytest.raises(InvalidValueError):
        client.stop("gpu", True, "extra")  # more arguments than the method has
    client.status()  # and the connection is fine: the first line the stand-in reads is this
    assert stand_in.seen == ["status"]


def test_positional_arguments_follow_the_declared_order(pair):
    ours, theirs = pair
    received: list[dict[str, Any]] = []

    def record(name: str, params: dict[str, Any]) -> Any:
        received.append(params)
        return valid(name, params)

    StandIn(theirs, record)
    ServiceClient(ours).wait("gpu", ["running"], 30)
    assert received == [{"context": "gpu", "states": ["running"], "timeout": 30}]


def test_every_declared_method_is_a_client_call_with_its_declared_result():
    derived = {
        name for name, value in vars(ServiceClient).items() if callable(value) and name in METHODS
    }
    assert derived == set(METHODS)
    hints = typing.get_type_hints(ServiceClient.hello)
    assert hints["return"] is METHODS["hello"].result


def test_every_handler_declares_the_result_its_method_declares():
    for name, handler in server._HANDLERS.items():
        returned = typing.get_type_hints(handler, vars(server))["return"]
        assert returned is METHODS[name].result, name


# -- events ----------------------------------------------------------------------------------


def test_events_arrive_typed_and_an_odd_or_unknown_one_is_dropped_not_the_connection(pair):
    ours, theirs = pair
    good = {"event": "state", "context": "gpu", "time": 1.0, "state": "running", "message": ""}
    StandIn(
        theirs,
        valid,
        events=(
            {"event": "state", "context": 5},  # broken
            {"event": "weather", "context": "gpu", "time": 1.0},  # a newer service's
            good,
        ),
    )
    client = ServiceClient(ours)
    seen: list[Event] = []
    arrived = threading.Event()

    def note(event: Event) -> None:
        seen.append(event)
        arrived.set()

    client.subscribe(note)
    assert arrived.wait(5)
    assert seen == [StateEvent("gpu", 1.0, state="running", message="")]
    assert client.status().contexts == ()  # the reader carried on


def test_an_event_of_a_known_kind_that_does_not_fit_names_the_field():
    with pytest.raises(ServiceMismatch) as caught:
        event_from_wire({"event": "lease", "context": "gpu", "time": 1.0, "action": "lost"})
    assert "lease event" in caught.value.message and "lease: is missing" in caught.value.message


# -- the messages themselves -----------------------------------------------------------------


def _message_classes() -> list[type[Message]]:
    found = [
        value
        for value in vars(messages).values()
        if isinstance(value, type) and issubclass(value, Message) and value is not Message
    ]
    return [cls for cls in found if dataclasses.is_dataclass(cls) and cls is not Event]


@pytest.mark.parametrize("cls", _message_classes(), ids=lambda cls: cls.__name__)
def test_every_message_reads_back_what_it_writes(cls: type[Message]):
    wire = sample_wire(cls)
    message = cls.from_wire(wire)
    again = message.to_wire()
    assert cls.from_wire(again) == message
    assert set(wire) <= set(again)  # every key written, defaults included unless omitted


def test_field_names_are_todays_json_keys():
    lease = LeaseInfo.from_wire(sample_wire(LeaseInfo))
    assert set(lease.to_wire()) == {"id", "context", "holder", "holder_text", "purpose",
                                    "acquired_at"}  # fmt: skip
    dormant = dataclasses.replace(lease, reconnecting=True)
    assert dormant.to_wire()["reconnecting"] is True  # said only when it is so
    row = messages.AppRow("web", "custom", "webapp", "8888", "running").to_wire()
    assert list(row) == ["name", "type", "class", "port", "state", "url"]


def test_the_contract_tables_in_the_docs_are_up_to_date():
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    check = subprocess.run(
        [sys.executable, str(root / "scripts" / "gen-service-docs"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
