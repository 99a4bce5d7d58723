"""The one OpenSSH argument builder: app forwards' master and sync's transfers speak alike, and
alike with the paramiko connection (ciphers, keep-alive, timeouts)."""

from __future__ import annotations

import itertools
import shlex
from pathlib import Path

from workbench.ssh import ConnectOptions, KnownHosts, SshConnection, SshTarget
from workbench.ssh.hostkeys import RejectUnknown
from workbench.ssh.openssh import (
    CIPHERS,
    CONNECT_TIMEOUT_S,
    KEEPALIVE_COUNT,
    KEEPALIVE_INTERVAL_S,
    OWN_CONNECTION,
)
from workbench.sync.transport import OpenSshRunner

POLICY = ("Ciphers", "ServerAliveInterval", "ServerAliveCountMax", "ConnectTimeout", "BatchMode")


def _options(argv: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for flag, value in itertools.pairwise(argv):
        if flag == "-o":
            key, _, val = value.partition("=")
            found.setdefault(key, val)
    return found


def _connection(tmp_path: Path, target: SshTarget, config: str = "") -> SshConnection:
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(config)
    return SshConnection(
        target, RejectUnknown(), KnownHosts(tmp_path / "known_hosts"), ssh_config=ssh_config
    )


def test_forwards_and_sync_use_the_same_ciphers_keepalive_and_timeouts(tmp_path: Path) -> None:
    connection = _connection(tmp_path, SshTarget("box.test", 2222, "me", (tmp_path / "key",)))
    try:
        runner = OpenSshRunner(connection)
        master = connection.openssh_master()
        assert runner.master is master  # sync's sessions ride the forwards' master
        session = master.session("true")
        bulk = master.openssh.command("-T", remote="true")
        expected = {
            "Ciphers": ",".join(CIPHERS),
            "ServerAliveInterval": str(KEEPALIVE_INTERVAL_S),
            "ServerAliveCountMax": str(KEEPALIVE_COUNT),
            "ConnectTimeout": str(CONNECT_TIMEOUT_S),
            "BatchMode": "yes",
        }
        for argv in (session, bulk):
            found = _options(argv)
            assert {k: found.get(k) for k in POLICY} == expected
        assert _options(bulk)["ControlPath"] == "none"
        assert _options(session)["ControlPath"] == str(master.control_path)
    finally:
        connection.close()
    # The paramiko connection: the same list (it skips what it lacks) and keep-alive.
    options = ConnectOptions()
    assert options.ciphers == CIPHERS
    assert options.keepalive_interval == KEEPALIVE_INTERVAL_S
    assert options.connect_timeout == CONNECT_TIMEOUT_S


def test_a_proxy_jump_hop_is_reached_with_its_own_keys_and_our_pins(tmp_path: Path) -> None:
    config = (
        "Host gw\n    HostName gw.example.test\n    Port 2200\n    User hop\n"
        f"    IdentityFile {tmp_path / 'gw key'}\n"
        "Host outer\n    HostName outer.example.test\n    User far\n"
    )
    target = SshTarget("box.test", 22, "me", (tmp_path / "key",), proxy_jump="outer,gw")
    connection = _connection(tmp_path, target, config)
    try:
        argv = connection.openssh().command(remote="true")
    finally:
        connection.close()
    proxy = _options(argv)["ProxyCommand"]
    hop = shlex.split(proxy.replace("%%", "%"))
    assert hop[0] == "ssh" and hop[-3:] == ["-W", "[box.test]:22", "gw.example.test"]
    assert hop[hop.index("-p") + 1] == "2200" and hop[hop.index("-l") + 1] == "hop"
    assert hop[hop.index("-i") + 1] == str(tmp_path / "gw key")
    hop_options = _options(hop)
    assert hop_options["StrictHostKeyChecking"] == "yes" and hop_options["BatchMode"] == "yes"
    assert str(tmp_path) in hop_options["UserKnownHostsFile"]
    # The hop before it (outer) is the gw hop's own ProxyCommand.
    outer = shlex.split(hop_options["ProxyCommand"].replace("%%", "%"))
    assert outer[-3:] == ["-W", "[gw.example.test]:2200", "outer.example.test"]
    assert "-J" not in argv and "-J" not in hop


def test_percent_signs_reach_ssh_as_literal_text(tmp_path: Path) -> None:
    """A ProxyCommand arrives with its tokens expanded (``config.resolve_target``): a ``%``
    left in it, or in a key's path, is text that ``ssh`` must not expand again."""
    key = tmp_path / "100%key"
    target = SshTarget(
        "box.test", 22, "me", (key,), proxy_command="nc -X 5 -x 10.0.0.1:1080%x box 22"
    )
    connection = _connection(tmp_path, target)
    try:
        argv = connection.openssh().command(control=OWN_CONNECTION)
    finally:
        connection.close()
    assert _options(argv)["ProxyCommand"] == "nc -X 5 -x 10.0.0.1:1080%%x box 22"
    assert argv[argv.index("-i") + 1] == str(key).replace("%", "%%")


def test_ssh_looks_a_host_key_up_under_the_name_paramiko_pinned_it(tmp_path: Path) -> None:
    """With a ``HostKeyAlias`` on another port than 22, ``ssh`` would look the key up under the
    bare alias; the pins (paramiko's, a cluster node's vouched-for keys) are ``[alias]:port``."""
    target = SshTarget("10.0.0.7", 2200, "me", host_key_alias="node1")
    connection = _connection(tmp_path, target)
    try:
        argv = connection.openssh().command(remote="true")
    finally:
        connection.close()
    assert _options(argv)["HostKeyAlias"] == "[node1]:2200" == target.known_hosts_name
