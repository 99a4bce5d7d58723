"""SshConnection against a real OpenSSH server: exec, SFTP, forwards, proxies and reconnection."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ssh_env import OPTIONS, connect, target_of
from tests.support.sshd import SshServer, sshd_available
from workbench.errors import CommandFailed, ContextError
from workbench.ssh import (
    AcceptFingerprint,
    ConnectionState,
    ConnectOptions,
    HostUnreachable,
    KnownHosts,
    RejectUnknown,
    SshConnection,
    SshTarget,
    resolve_target,
)

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen"),
]


@pytest.fixture
def server(fresh_sshd: SshServer) -> SshServer:
    return fresh_sshd


@pytest.fixture
def known_hosts(tmp_path: Path) -> KnownHosts:
    return KnownHosts(tmp_path / "pins" / "known_hosts")


@pytest.fixture
def conn(server: SshServer, known_hosts: KnownHosts) -> Iterator[SshConnection]:
    connection = connect(server, known_hosts, AcceptFingerprint(server.host_key_fingerprint))
    yield connection
    connection.close()


@pytest.fixture
def http_site(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    """A tiny HTTP server on 127.0.0.1: the "remote" app a forward reaches (same machine here)."""
    root = tmp_path / "site"
    root.mkdir()
    body = os.urandom(3 * 1024 * 1024)
    (root / "blob.bin").write_bytes(body)
    handler = functools.partial(QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], body
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def fetch(port: int, path: str = "/blob.bin") -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return bytes(response.read())


# -- exec ------------------------------------------------------------------------------------


def test_exec_returns_exit_status_and_both_streams(conn: SshConnection) -> None:
    result = conn.exec("echo out; echo err >&2; exit 3")
    assert result.exit_status == 3
    assert result.stdout == b"out\n"
    assert result.stderr == b"err\n"
    with pytest.raises(CommandFailed) as failed:
        result.check()
    assert failed.value.exit_status == 3
    assert "err" in failed.value.message


def test_exec_feeds_input_and_carries_large_output(conn: SshConnection) -> None:
    data = os.urandom(8 * 1024 * 1024)
    result = conn.exec("sha256sum", input=data).check()
    assert result.stdout_text.split()[0] == hashlib.sha256(data).hexdigest()

    big = conn.exec("head -c 20000000 /dev/zero; head -c 3000000 /dev/zero >&2").check()
    assert len(big.stdout) == 20_000_000
    assert len(big.stderr) == 3_000_000


def test_exec_timeout_raises_context_error(conn: SshConnection) -> None:
    started = time.monotonic()
    with pytest.raises(ContextError, match="timed out"):
        conn.exec("sleep 30", timeout=0.5)
    assert time.monotonic() - started < 5
    assert conn.exec("echo still fine").stdout == b"still fine\n"


def test_exec_stream_yields_output_while_running(conn: SshConnection) -> None:
    with conn.exec_stream(
        "for i in 1 2 3; do echo line $i; sleep 0.2; done; read x; echo got $x"
    ) as proc:
        first = proc.stdout.readline()
        assert first == b"line 1\n"
        proc.stdin.write(b"hello\n")
        proc.close_stdin()
        rest = proc.stdout.read()
        assert rest == b"line 2\nline 3\ngot hello\n"
        assert proc.wait(5) == 0


def test_open_exec_stream_is_socket_like(conn: SshConnection) -> None:
    channel = conn.open_exec_stream("cat")
    try:
        channel.sendall(b"ping\n")
        channel.settimeout(5)
        assert channel.recv(100) == b"ping\n"
        channel.shutdown_write()
        assert channel.recv(100) == b""
    finally:
        channel.close()


def test_uses_aes_gcm(conn: SshConnection) -> None:
    assert conn.transport.remote_cipher == "aes128-gcm@openssh.com"  # type: ignore[attr-defined]


# -- SFTP ------------------------------------------------------------------------------------


def test_sftp_put_and_get(conn: SshConnection, tmp_path: Path) -> None:
    local = tmp_path / "up.bin"
    local.write_bytes(os.urandom(2 * 1024 * 1024 + 17))
    remote = tmp_path / "remote" / "copy.bin"
    remote.parent.mkdir()
    back = tmp_path / "down.bin"
    sftp = conn.sftp()
    try:
        sftp.put(str(local), str(remote))
        assert sftp.stat(str(remote)).st_size == local.stat().st_size
        sftp.get(str(remote), str(back))
    finally:
        sftp.close()
    assert back.read_bytes() == local.read_bytes()


# -- forwards --------------------------------------------------------------------------------


def test_local_forward_reaches_remote_http(
    conn: SshConnection, http_site: tuple[int, bytes]
) -> None:
    port, body = http_site
    with conn.forward_local(port) as forward:
        assert forward.local_host == "127.0.0.1"
        assert forward.local_port != port
        assert fetch(forward.local_port) == body
        # Several at once, each on its own channel.
        results: list[bytes] = []
        threads = [
            threading.Thread(target=lambda: results.append(fetch(forward.local_port)))
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == [body] * 4


def test_forward_to_closed_port_drops_that_connection_only(
    conn: SshConnection, http_site: tuple[int, bytes]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with (
        conn.forward_local(closed_port) as dead,
        socket.create_connection(("127.0.0.1", dead.local_port), timeout=5) as client,
    ):
        assert client.recv(10) == b""  # closed at once: nothing listens there
    port, body = http_site
    with conn.forward_local(port) as alive:
        assert fetch(alive.local_port) == body
    with pytest.raises(ContextError, match=r"cannot connect to 127\.0\.0\.1"):
        conn.open_direct_tcpip("127.0.0.1", closed_port)


def test_forward_on_taken_local_port_is_a_clear_error(conn: SshConnection) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ContextError, match="cannot listen"):
            conn.forward_local(22, local_port=taken.getsockname()[1])


# -- reconnection ----------------------------------------------------------------------------


def test_reconnects_after_sshd_is_killed(conn: SshConnection, server: SshServer) -> None:
    states: list[ConnectionState] = []
    conn.add_state_listener(states.append)
    assert conn.exec("echo before").stdout == b"before\n"
    server.kill()
    wait_until(lambda: not conn.is_alive())
    server.start()
    assert conn.exec("echo after").stdout == b"after\n"
    assert conn.reconnects == 1
    assert states == [ConnectionState.RECONNECTING, ConnectionState.CONNECTED]


def test_reconnect_waits_with_backoff_until_server_returns(
    conn: SshConnection, server: SshServer
) -> None:
    server.kill()
    wait_until(lambda: not conn.is_alive())
    restarter = threading.Timer(1.5, server.start)
    restarter.start()
    started = time.monotonic()
    try:
        assert conn.exec("echo back").stdout == b"back\n"
    finally:
        restarter.join()
    assert 1.0 < time.monotonic() - started < 10


def test_reconnect_gives_up_after_the_configured_time(
    server: SshServer, known_hosts: KnownHosts
) -> None:
    options = ConnectOptions(use_agent=False, look_for_keys=False, reconnect_timeout=1.0)
    with SshConnection(
        target_of(server),
        AcceptFingerprint(server.host_key_fingerprint),
        known_hosts,
        options=options,
    ) as connection:
        server.kill()
        wait_until(lambda: not connection.is_alive())
        started = time.monotonic()
        with pytest.raises(ContextError, match="could not reconnect") as lost:
            connection.exec("true")
        assert 0.9 < time.monotonic() - started < 4
        assert lost.value.hint
        assert isinstance(lost.value.__cause__, HostUnreachable)


def test_forward_serves_new_connections_after_reconnect(
    conn: SshConnection, server: SshServer, http_site: tuple[int, bytes]
) -> None:
    port, body = http_site
    forward = conn.forward_local(port)
    assert fetch(forward.local_port) == body
    server.kill()
    wait_until(lambda: not conn.is_alive())
    server.start()
    assert fetch(forward.local_port) == body  # the same local port, over the new transport
    assert conn.reconnects == 1
    forward.close()


def test_closed_connection_refuses_work(conn: SshConnection) -> None:
    conn.close()
    with pytest.raises(ContextError, match="closed"):
        conn.exec("true")


# -- failures to connect ---------------------------------------------------------------------


def test_refused_port_fails_fast_with_hint(known_hosts: KnownHosts) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = SshTarget(host="127.0.0.1", port=port, user="nobody")
    started = time.monotonic()
    with pytest.raises(HostUnreachable, match="refused") as refused:
        SshConnection(target, RejectUnknown(), known_hosts, options=OPTIONS).connect()
    assert time.monotonic() - started < 2
    assert refused.value.hint


def test_silent_server_times_out(known_hosts: KnownHosts) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        target = SshTarget(host="127.0.0.1", port=silent.getsockname()[1], user="nobody")
        options = ConnectOptions(use_agent=False, look_for_keys=False, connect_timeout=1.0)
        started = time.monotonic()
        with pytest.raises(ContextError, match="handshake"):
            SshConnection(target, RejectUnknown(), known_hosts, options=options).connect()
        assert time.monotonic() - started < 5


def test_unresolvable_host(known_hosts: KnownHosts) -> None:
    target = SshTarget(host="no-such-host.invalid", port=22, user="nobody")
    with pytest.raises(HostUnreachable, match="cannot resolve"):
        SshConnection(target, RejectUnknown(), known_hosts, options=OPTIONS).connect()


# -- proxies ---------------------------------------------------------------------------------


def write_ssh_config(tmp_path: Path, server: SshServer, extra: str = "") -> Path:
    config = tmp_path / "ssh_config"
    config.write_text(
        f"""
Host jump
    HostName {server.host}
    Port {server.port}
    User {server.user}
    IdentityFile {server.client_key_path}

Host behind-jump
    HostName {server.host}
    Port {server.port}
    User {server.user}
    IdentityFile {server.client_key_path}
    ProxyJump jump
{extra}
"""
    )
    return config


def test_proxy_jump_through_a_config_alias(
    server: SshServer, known_hosts: KnownHosts, tmp_path: Path
) -> None:
    config = write_ssh_config(tmp_path, server)
    target = resolve_target("behind-jump", config_path=config)
    assert target.proxy_jump == "jump"
    with SshConnection(
        target,
        AcceptFingerprint(server.host_key_fingerprint),
        known_hosts,
        options=OPTIONS,
        ssh_config=config,
    ) as connection:
        assert connection.exec("echo via jump").stdout == b"via jump\n"


def test_proxy_command_runs_through_the_shell(
    server: SshServer, known_hosts: KnownHosts, tmp_path: Path
) -> None:
    ssh_w = (
        f"ssh -q -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
        f"-i {server.client_key_path} -p {server.port} -W %h:%p {server.user}@{server.host}"
    )
    target = resolve_target(
        f"{server.host}:{server.port}",
        user=server.user,
        key_paths=[server.client_key_path],
        proxy_command=ssh_w,
        config_path=tmp_path / "absent",
    )
    assert f"-W {server.host}:{server.port}" in (target.proxy_command or "")
    with SshConnection(
        target, AcceptFingerprint(server.host_key_fingerprint), known_hosts, options=OPTIONS
    ) as connection:
        assert connection.exec("echo via proxy").stdout == b"via proxy\n"


def wait_until(condition: object, timeout: float = 5.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
