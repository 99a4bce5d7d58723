"""What a client may send the service, tried against a real service process.

The service is spawned by the first client exactly as in use; the hostile requests then go over
a raw Unix socket, byte for byte. Each bad request must get a JSON-RPC error that says what was
wrong and where, the service must not grow with what it is sent, and the connection must stay
usable afterwards (a ``hello`` still answers).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import nvwb
from tests.support.service_env import FAST, service_env, wait_for
from tests.support.workbench_service import shut_down
from workbench.errors import InvalidValueError, SpecError
from workbench.paths import Paths
from workbench.service import protocol
from workbench.service.client import ServiceClient, ServiceUnavailable
from workbench.service.server import socket_path

pytestmark = [pytest.mark.timeout(120)]


@pytest.fixture
def env(wb_env: dict[str, str]) -> Iterator[dict[str, str]]:
    yield from service_env({**wb_env, **FAST, "NVWB_SERVICE_IDLE_EXIT": "30"})


@pytest.fixture
def service(env: dict[str, str]) -> Iterator[ServiceClient]:
    """A running service (spawned as a client would) and a well-behaved client of it."""
    with ServiceClient.connect(Paths.from_env(env), env) as client:
        yield client


class Raw:
    """A connection that sends whatever bytes it is given and reads the replies one by one."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(str(path))
        self.reader = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> dict[str, Any]:
        line = self.reader.readline()
        assert line, "the service closed the connection"
        message: dict[str, Any] = json.loads(line)
        return message

    def ask(self, message: Any) -> dict[str, Any]:
        self.send(json.dumps(message).encode() + b"\n")
        return self.reply()

    def call(self, method: str, params: Any = None, msg_id: Any = 1) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "v": 1, "id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        return self.ask(message)

    def still_answers(self) -> None:
        assert self.call("hello", {}, msg_id=99)["result"]["protocol"] == protocol.PROTOCOL_VERSION

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@pytest.fixture
def raw(service: ServiceClient, env: dict[str, str]) -> Iterator[Raw]:
    connection = Raw(socket_path(Paths.from_env(env)))
    yield connection
    connection.close()


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _invalid_params(reply: dict[str, Any], field: str) -> str:
    error = reply["error"]
    assert error["code"] == protocol.INVALID_PARAMS, error
    assert error["data"]["field"] == field, error
    assert error["data"]["code"] == "invalid_value"
    message: str = error["message"]
    assert message.startswith(f"{field}: ")
    return message


# -- limits on what is read -----------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from /proc")
def test_a_line_over_the_limit_is_refused_while_read_and_the_connection_kept(raw, service):
    pid = service.service.pid
    before = _peak_rss_kib(pid)
    size = 128 << 20
    chunk = b"x" * (1 << 20)
    raw.send(b'{"jsonrpc": "2.0", "id": 5, "method": "hello", "params": {"pad": "')
    for _ in range(size // len(chunk)):
        raw.send(chunk)
    raw.send(b'"}}\n')
    error = raw.reply()["error"]
    assert error["code"] == protocol.INVALID_REQUEST
    assert str(protocol.MAX_LINE) in error["message"] and "longer" in error["message"]
    grown_mib = (_peak_rss_kib(pid) - before) / 1024
    assert grown_mib < 16, f"the service grew by {grown_mib:.0f} MiB reading a 128 MiB line"
    raw.still_answers()


def test_a_line_of_exactly_the_limit_is_read(raw):
    message = json.dumps({"jsonrpc": "2.0", "v": 1, "id": 3, "method": "hello", "params": {}})
    padded = message[:-1] + " " * (protocol.MAX_LINE - len(message)) + "}"
    assert len(padded) == protocol.MAX_LINE
    raw.send(padded.encode() + b"\n")
    assert raw.reply()["result"]["protocol"] == protocol.PROTOCOL_VERSION


def test_json_nested_100000_deep_gets_an_error_not_a_dropped_connection(raw):
    raw.send(b'{"jsonrpc": "2.0", "id": 1, "method": "hello", "params": {"x": ' + b"[" * 100_000)
    raw.send(b"]" * 100_000 + b"}}\n")
    error = raw.reply()["error"]
    assert error["code"] in (protocol.PARSE_ERROR, protocol.INVALID_REQUEST)
    assert "nested" in error["message"]
    raw.still_answers()


def test_json_nested_past_the_limit_but_parseable_is_refused(raw):
    deep: Any = "leaf"
    for _ in range(protocol.MAX_DEPTH + 1):
        deep = [deep]
    reply = raw.call("status", {"contexts": deep})
    assert reply["error"]["code"] == protocol.INVALID_REQUEST
    assert f"nested deeper than {protocol.MAX_DEPTH}" in reply["error"]["message"]
    raw.still_answers()


@pytest.mark.parametrize(
    ("line", "code", "words"),
    [
        (b"not json at all", protocol.PARSE_ERROR, "not JSON"),
        (b"\xff\xfe\x00garbage", protocol.PARSE_ERROR, "not JSON"),
        (b"[1, 2, 3]", protocol.INVALID_REQUEST, "must be a JSON object"),
        (b'{"id": 1, "method": "hello", "params": {"n": NaN}}', protocol.PARSE_ERROR, "NaN"),
        (b'{"id": {"a": 1}, "method": "hello"}', protocol.INVALID_REQUEST, "id"),
        (b'{"id": 1, "method": 7}', protocol.INVALID_REQUEST, "method"),
        (b'{"id": 1, "jsonrpc": "1.0", "method": "hello"}', protocol.INVALID_REQUEST, "2.0"),
        (b'{"id": 1, "v": 99, "method": "hello"}', protocol.INVALID_REQUEST, "protocol 99"),
    ],
)
def test_a_malformed_message_gets_a_clear_error(raw, line, code, words):
    raw.send(line + b"\n")
    error = raw.reply()["error"]
    assert error["code"] == code, error
    assert words in error["message"], error
    raw.still_answers()


# -- each method's declared parameters ------------------------------------------------------------


def test_an_unknown_method_is_not_found_even_when_the_server_has_such_a_name(raw):
    for name in ("nope", "_holder", "holder", "manager", "__init__", "send", "close"):
        error = raw.call(name, {})["error"]
        assert error["code"] == protocol.METHOD_NOT_FOUND, (name, error)
        assert repr(name) in error["message"]
    raw.still_answers()


def test_the_contexts_of_status_must_be_a_list_not_a_string(raw):
    # It used to be iterated letter by letter: status of contexts 'f', 'a', 'k', 'e'.
    message = _invalid_params(raw.call("status", {"contexts": "fake"}), "status.contexts")
    assert "list" in message and "string" in message
    raw.still_answers()


@pytest.mark.parametrize(
    ("method", "params", "field", "words"),
    [
        ("acquire", {"context": 5}, "acquire.context", "string"),
        ("acquire", {}, "acquire.context", "required"),
        ("acquire", {"context": ""}, "acquire.context", "empty"),
        ("acquire", {"context": "local", "holder_pid": "12"}, "acquire.holder_pid", "integer"),
        ("acquire", {"context": "local", "holder_pid": True}, "acquire.holder_pid", "integer"),
        ("acquire", {"context": "local", "holder_pid": -4}, "acquire.holder_pid", "at least 1"),
        ("acquire", {"context": "local", "holder_pid": 2**70}, "acquire.holder_pid", "at most"),
        ("acquire", {"context": "local", "purpose": ["a"]}, "acquire.purpose", "string"),
        ("acquire", {"context": "x" * 100_000}, "acquire.context", "at most"),
        ("acquire", {"context": "lo\x00cal"}, "acquire.context", "NUL"),
        ("acquire", {"context": "local", "colour": "red"}, "acquire.colour", "unknown"),
        ("release", {"lease_id": 12}, "release.lease_id", "string"),
        ("status", {"contexts": ["local", 3]}, "status.contexts", "string"),
        ("status", {"contexts": ["c"] * 10_000}, "status.contexts", "at most"),
        ("status", {"refresh": "yes"}, "status.refresh", "true or false"),
        ("stop", {"context": "local", "force": 1}, "stop.force", "true or false"),
        ("wait", {"context": "local", "states": "running"}, "wait.states", "list"),
        ("wait", {"context": "local", "states": ["flying"]}, "wait.states", "one of"),
        ("wait", {"context": "local", "timeout": "soon"}, "wait.timeout", "number"),
        ("wait", {"context": "local", "timeout": -1}, "wait.timeout", "at least 0"),
        ("wait", {"context": "local", "timeout": 1e300}, "wait.timeout", "at most"),
        ("start_app", {"project": "/p", "context": "c", "app": "a", "local_port": "abc"},
         "start_app.local_port", "integer"),
        ("start_app", {"project": "/p", "context": "c", "app": "a", "local_port": 70000},
         "start_app.local_port", "at most 65535"),
        ("open_project", {"project": "relative/dir", "context": "local"},
         "open_project.project", "absolute"),
        ("shutdown", {"force": "please"}, "shutdown.force", "true or false"),
        ("subscribe", {"topic": "all"}, "subscribe.topic", "unknown"),
    ],
)  # fmt: skip
def test_a_parameter_of_the_wrong_shape_is_refused_by_name(raw, method, params, field, words):
    message = _invalid_params(raw.call(method, params), field)
    assert words in message, message
    raw.still_answers()


@pytest.mark.parametrize("params", [[], "context", 7, [{"context": "local"}]])
def test_params_that_are_not_an_object_are_refused(raw, params):
    error = raw.call("acquire", params)["error"]
    assert error["code"] == protocol.INVALID_PARAMS
    assert "params" in error["message"] and "object" in error["message"]
    raw.still_answers()


def test_a_bad_parameter_changes_nothing(raw, service):
    raw.call("acquire", {"context": "local", "holder_pid": "1"})
    raw.call("acquire", {"context": "local", "purpose": 3})
    (local,) = service.status(["local"]).contexts
    assert local.leases == ()


def test_the_python_client_raises_the_refusal_as_a_typed_error(service):
    with pytest.raises(InvalidValueError) as caught:
        service.call("status", {"contexts": "fake"})
    assert caught.value.field == "status.contexts"
    assert caught.value.exit_code == 2


def test_blocking_requests_in_flight_on_one_connection_are_bounded(raw, service):
    # Each ``wait`` holds a thread in the service; one client cannot take an unbounded number.
    limit = protocol.MAX_IN_FLIGHT
    params = {"context": "local", "states": ["stopped"], "timeout": 20}
    for msg_id in range(limit + 1):
        raw.send(
            json.dumps(
                {"jsonrpc": "2.0", "id": msg_id, "method": "wait", "params": params}
            ).encode()
            + b"\n"
        )
    error = raw.reply()["error"]
    assert error["code"] == protocol.SERVER_BUSY, error
    assert str(limit) in error["message"]
    # Other clients are not affected.
    assert service.status(["local"]).contexts[0].state == "running"


# -- a typed error without its optional fields ----------------------------------------------------


def test_list_apps_json_with_a_malformed_spec_prints_the_error_not_a_traceback(env):
    created = nvwb(
        env, "create", "project", "broken", "--base-environment-id", "debian-test", "-o", "json"
    )
    assert created.code == 0, created.err
    project = Path(created.json()["path"])
    (project / ".project" / "spec.yaml").write_text("specVersion: v2\nmeta: [unclosed\n")
    listed = nvwb(env, "list", "apps", "-c", "local", "-o", "json", cwd=project)
    assert "Traceback" not in listed.err and "internal error" not in listed.err, listed.err
    assert listed.code == SpecError.exit_code, listed.err
    error = listed.json()["error"]
    assert error["code"] == "spec" and "spec.yaml" in error["message"]


# -- relative folders -----------------------------------------------------------------------------


def _relative_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "NVWB_RUNTIME_DIR": "rt", "NVWB_STATE_DIR": "st", "NVWB_CONFIG_DIR": "cfg"}


def _absolute(env: dict[str, str], cwd: Path) -> dict[str, str]:
    folders = ("NVWB_RUNTIME_DIR", "NVWB_STATE_DIR", "NVWB_CONFIG_DIR")
    return {**env, **{key: str(cwd / env[key]) for key in folders}}


def test_relative_folders_are_taken_from_where_the_command_runs(env, tmp_path):
    work = tmp_path / "w"  # short: the runtime dir must leave room for the socket's name
    work.mkdir()
    relative = _relative_env(env)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "workbench", "status", "-o", "json"],
            env=relative,
            cwd=work,
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert [row["name"] for row in json.loads(done.stdout)] == ["local"]
        assert (work / "rt" / protocol.SOCKET_NAME).is_socket()
        assert (work / "st" / "service.log").is_file()
        assert (work / "cfg" / "contexts.json").is_file()
        # In-process, with a working directory of its own, as the tests' ``nvwb`` runs.
        again = nvwb(relative, "status", "-o", "json", cwd=work)
        assert again.code == 0, again.err
    finally:
        shut_down(_absolute(relative, work))
    assert not (work / "rt" / protocol.SOCKET_NAME).exists()


# -- a client of another configuration ------------------------------------------------------------


def test_a_client_of_another_configuration_is_told_not_served_the_wrong_one(env, tmp_path):
    with ServiceClient.connect(Paths.from_env(env), env) as first:
        first_pid = first.service.pid
    other = {**env, "NVWB_CONFIG_DIR": str(tmp_path / "other-config")}
    created = nvwb(other, "create", "context", "elsewhere", "--brev-instance-name", "e-1")
    assert created.code == 0, created.err
    # Same runtime dir, so the same socket: the running service serves the first configuration.
    with pytest.raises(ServiceUnavailable) as caught:
        ServiceClient.connect(Paths.from_env(other), other)
    message = str(caught.value)
    assert str(tmp_path / "other-config") in message and env["NVWB_CONFIG_DIR"] in message
    assert str(first_pid) in message
    status = nvwb(other, "status", "-o", "json")
    assert status.code == ServiceUnavailable.exit_code, status.err
    assert "another configuration" in status.json()["error"]["message"]
    # The first configuration's clients are served as before.
    with ServiceClient.connect(Paths.from_env(env), env) as again:
        assert again.service.pid == first_pid
    # Once that service is gone, the other configuration gets a service of its own.
    shut_down(env)
    wait_for(lambda: not socket_path(Paths.from_env(env)).exists(), 15, "the first service to exit")
    try:
        served = nvwb(other, "status", "-o", "json")
        assert served.code == 0, served.err
        assert {row["name"] for row in served.json()} == {"local", "elsewhere"}
    finally:
        shut_down(other)


def test_the_same_configuration_by_another_spelling_is_served(env, tmp_path):
    with ServiceClient.connect(Paths.from_env(env), env) as first:
        first_pid = first.service.pid
    config = Path(env["NVWB_CONFIG_DIR"])
    config.mkdir(parents=True, exist_ok=True)
    link = tmp_path / "config-link"
    os.symlink(config, link)
    spelled = {**env, "NVWB_CONFIG_DIR": f"{link}/../config-link/."}
    with ServiceClient.connect(Paths.from_env(spelled), spelled) as client:
        assert client.service.pid == first_pid
