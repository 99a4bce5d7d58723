"""Host key pinning, authentication and ~/.ssh/config resolution against a real OpenSSH server."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.ssh_env import OPTIONS, connect
from tests.support.sshd import SshServer, sshd_available
from workbench.errors import Cancelled, ContextError, HostKeyRejected, InvalidValueError
from workbench.ssh import (
    AcceptFingerprint,
    ConnectOptions,
    KnownHosts,
    PassphraseRejected,
    PromptPolicy,
    RejectUnknown,
    SshConnection,
    SshTarget,
    resolve_target,
)
from workbench.ssh.config import parse_destination
from workbench.ssh.knownhosts import fingerprint_blob

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen"),
]


@pytest.fixture
def server(fresh_sshd: SshServer) -> SshServer:
    return fresh_sshd


@pytest.fixture
def pins(tmp_path: Path) -> Path:
    return tmp_path / "config" / "known_hosts"


@pytest.fixture
def known_hosts(pins: Path) -> KnownHosts:
    return KnownHosts(pins)


# -- host keys -------------------------------------------------------------------------------


def test_unknown_host_key_is_refused_with_its_fingerprint(
    server: SshServer, known_hosts: KnownHosts, pins: Path
) -> None:
    with pytest.raises(HostKeyRejected) as rejected:
        connect(server, known_hosts, RejectUnknown())
    error = rejected.value
    assert error.offered == server.host_key_fingerprint
    assert error.pinned is None
    assert error.host == server.host
    assert f"--accept-host-key {server.host_key_fingerprint}" in (error.hint or "")
    assert error.exit_code == 7
    assert not pins.exists()


def test_accepted_fingerprint_is_pinned_and_trusted_next_time(
    server: SshServer, known_hosts: KnownHosts, pins: Path
) -> None:
    connect(server, known_hosts, AcceptFingerprint(server.host_key_fingerprint)).close()
    assert pins.read_text().startswith(f"[{server.host}]:{server.port} ssh-ed25519 ")
    assert pins.stat().st_mode & 0o777 == 0o600
    with connect(server, known_hosts, RejectUnknown()) as again:
        assert again.exec("echo pinned").stdout == b"pinned\n"


def test_pins_are_readable_by_openssh(
    server: SshServer, known_hosts: KnownHosts, pins: Path
) -> None:
    connect(server, known_hosts, AcceptFingerprint(server.host_key_fingerprint)).close()
    found = subprocess.run(
        ["ssh-keygen", "-F", f"[{server.host}]:{server.port}", "-f", str(pins)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "ssh-ed25519" in found.stdout
    result = subprocess.run(
        [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={pins}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-i",
            str(server.client_key_path),
            "-p",
            str(server.port),
            f"{server.user}@{server.host}",
            "echo ok",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.stdout == "ok\n", result.stderr


def test_wrong_fingerprint_is_refused_and_not_pinned(
    server: SshServer, known_hosts: KnownHosts, pins: Path
) -> None:
    wrong = "SHA256:" + base64.b64encode(hashlib.sha256(b"x").digest()).decode().rstrip("=")
    with pytest.raises(HostKeyRejected) as rejected:
        connect(server, known_hosts, AcceptFingerprint(wrong))
    assert rejected.value.offered == server.host_key_fingerprint
    assert wrong in rejected.value.message
    assert not pins.exists()
    # Near misses do not count either: the padding OpenSSH leaves off, a lower-case prefix.
    for almost in (server.host_key_fingerprint + "=", server.host_key_fingerprint.lower()):
        with pytest.raises(HostKeyRejected):
            connect(server, known_hosts, AcceptFingerprint(almost))


def test_changed_host_key_is_always_refused_with_both_fingerprints(
    server: SshServer, known_hosts: KnownHosts, pins: Path
) -> None:
    old = server.host_key_fingerprint
    connect(server, known_hosts, AcceptFingerprint(old)).close()
    server.regenerate_host_key()
    new = server.host_key_fingerprint
    assert new != old
    for policy in (RejectUnknown(), AcceptFingerprint(new), PromptPolicy(lambda h, f: True)):
        with pytest.raises(HostKeyRejected) as rejected:
            connect(server, known_hosts, policy)
        assert rejected.value.offered == new
        assert rejected.value.pinned == old
        assert "CHANGED" in rejected.value.message
        assert str(pins) in (rejected.value.hint or "")
    # Forgetting the pin is the way out, after checking the new key.
    assert known_hosts.forget(f"[{server.host}]:{server.port}") == 1
    connect(server, known_hosts, AcceptFingerprint(new)).close()


def test_key_in_users_known_hosts_is_trusted_hashed_or_not(
    server: SshServer, tmp_path: Path, pins: Path
) -> None:
    public = server.host_key_path.with_name(server.host_key_path.name + ".pub").read_text()
    key_type, blob = public.split()[:2]
    system = tmp_path / "ssh_known_hosts"
    system.write_text(f"# a comment\n[{server.host}]:{server.port} {key_type} {blob}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(system)], check=True, capture_output=True)
    assert "|1|" in system.read_text()
    known_hosts = KnownHosts(pins, [system])
    with connect(server, known_hosts, RejectUnknown()) as conn:
        assert conn.exec("true").ok
    assert not pins.exists()  # nothing to pin: OpenSSH already trusts it


def test_wildcard_and_negated_known_hosts_patterns(tmp_path: Path) -> None:
    blob = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + b"k" * 36).decode()
    system = tmp_path / "known_hosts"
    system.write_text(
        f"*.example.com,!bad.example.com ssh-ed25519 {blob}\n"
        f"@cert-authority * ssh-ed25519 {blob}\n"
        "garbage line\n"
        f"h?st ssh-ed25519 not-base64!\n"
    )
    known = KnownHosts(tmp_path / "pins", [system])
    assert [k.key_type for k in known.lookup("a.example.com")] == ["ssh-ed25519"]
    assert known.lookup("bad.example.com") == []
    assert known.lookup("[a.example.com]:2222") == []
    assert known.lookup("host") == []


def test_prompt_policy_pins_on_yes_and_cancels_on_no(
    server: SshServer, known_hosts: KnownHosts, pins: Path
) -> None:
    questions: list[tuple[str, str]] = []

    def no(host: str, fp: str) -> bool:
        questions.append((host, fp))
        return False

    with pytest.raises(Cancelled):
        connect(server, known_hosts, PromptPolicy(no))
    assert questions == [(f"{server.host}:{server.port}", server.host_key_fingerprint)]
    assert not pins.exists()
    connect(server, known_hosts, PromptPolicy(lambda host, fp: True)).close()
    assert pins.exists()


def test_fingerprint_format_matches_openssh(server: SshServer) -> None:
    public = server.host_key_path.with_name(server.host_key_path.name + ".pub").read_text()
    blob = base64.b64decode(public.split()[1])
    assert fingerprint_blob(blob) == server.host_key_fingerprint


# -- authentication --------------------------------------------------------------------------


def test_encrypted_key_with_right_passphrase(server: SshServer, known_hosts: KnownHosts) -> None:
    asked: list[Path] = []
    with connect(
        server,
        known_hosts,
        AcceptFingerprint(server.host_key_fingerprint),
        key=server.encrypted_key_path,
        passphrase=server.passphrase,
        asked=asked,
    ) as conn:
        assert conn.exec("echo unlocked").stdout == b"unlocked\n"
    assert asked == [server.encrypted_key_path]


def test_encrypted_key_with_wrong_passphrase(server: SshServer, known_hosts: KnownHosts) -> None:
    with pytest.raises(PassphraseRejected) as rejected:
        connect(
            server,
            known_hosts,
            AcceptFingerprint(server.host_key_fingerprint),
            key=server.encrypted_key_path,
            passphrase="not it",
        )
    assert rejected.value.key_path == server.encrypted_key_path
    assert isinstance(rejected.value, ContextError)
    assert rejected.value.hint


def test_encrypted_key_without_passphrase_is_skipped(
    server: SshServer, known_hosts: KnownHosts
) -> None:
    with pytest.raises(ContextError, match="no passphrase was given") as failed:
        connect(
            server,
            known_hosts,
            AcceptFingerprint(server.host_key_fingerprint),
            key=server.encrypted_key_path,
            passphrase=None,
        )
    assert "authentication" in failed.value.message


def test_unauthorized_key_fails_with_hint(
    server: SshServer, known_hosts: KnownHosts, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    with pytest.raises(ContextError, match="refused") as failed:
        connect(server, known_hosts, AcceptFingerprint(server.host_key_fingerprint), key=stranger)
    assert "authorized_keys" in (failed.value.hint or "")
    with pytest.raises(ContextError, match="no such file"):
        connect(
            server,
            known_hosts,
            AcceptFingerprint(server.host_key_fingerprint),
            key=tmp_path / "missing",
        )


def test_agent_keys_are_used(
    server: SshServer, known_hosts: KnownHosts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        for _ in range(100):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.05"], check=True)
        subprocess.run(
            ["ssh-add", "-q", str(server.client_key_path)], env=env, check=True, capture_output=True
        )
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        target = SshTarget(host=server.host, port=server.port, user=server.user)
        options = ConnectOptions(use_agent=True, look_for_keys=False)
        policy = AcceptFingerprint(server.host_key_fingerprint)
        with SshConnection(target, policy, known_hosts, options=options) as conn:
            assert conn.exec("echo agent").stdout == b"agent\n"
    finally:
        agent.terminate()
        agent.wait()


# -- ~/.ssh/config ---------------------------------------------------------------------------


def test_config_alias_resolves_and_connects(
    server: SshServer, known_hosts: KnownHosts, tmp_path: Path
) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host wb-test\n"
        f"    HostName {server.host}\n"
        f"    Port {server.port}\n"
        f"    User {server.user}\n"
        f"    IdentityFile {server.client_key_path}\n"
        f"Host *\n"
        f"    User someone-else\n"
    )
    target = resolve_target("wb-test", config_path=config)
    assert target == SshTarget(
        host=server.host,
        port=server.port,
        user=server.user,
        key_paths=(server.client_key_path,),
        alias="wb-test",
    )
    assert target.known_hosts_name == f"[{server.host}]:{server.port}"
    policy = AcceptFingerprint(server.host_key_fingerprint)
    with SshConnection(target, policy, known_hosts, options=OPTIONS) as conn:
        assert conn.exec("echo alias").stdout == b"alias\n"


def test_explicit_values_win_over_config(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(
        "Host box\n  HostName 10.1.2.3\n  Port 2200\n  User alice\n  IdentityFile ~/.ssh/box\n"
        "  ProxyCommand nc %h %p\n"
    )
    plain = resolve_target("box", config_path=config, env={"HOME": str(tmp_path)})
    assert (plain.host, plain.port, plain.user) == ("10.1.2.3", 2200, "alice")
    assert plain.proxy_command == "nc 10.1.2.3 2200"
    explicit = resolve_target(
        "box", port=22, user="bob", key_paths=["/k"], proxy_jump="gw", config_path=config
    )
    assert (explicit.host, explicit.port, explicit.user) == ("10.1.2.3", 22, "bob")
    assert explicit.key_paths == (Path("/k"),)
    assert explicit.proxy_jump == "gw"
    assert explicit.proxy_command is None
    assert explicit.known_hosts_name == "10.1.2.3"
    unknown = resolve_target("carol@elsewhere:2022", config_path=config)
    assert (unknown.host, unknown.port, unknown.user, unknown.alias) == (
        "elsewhere",
        2022,
        "carol",
        None,
    )


def test_parse_destination() -> None:
    assert parse_destination("host") == (None, "host", None)
    assert parse_destination("u@host:2222") == ("u", "host", 2222)
    assert parse_destination("ssh://u@[::1]:2222/") == ("u", "::1", 2222)
    assert parse_destination("fe80::1") == (None, "fe80::1", None)
    with pytest.raises(InvalidValueError):
        parse_destination("host:notaport")
    with pytest.raises(InvalidValueError):
        parse_destination("u@")
