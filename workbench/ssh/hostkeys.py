"""Host key trust: decide whether the key a server offers may be used, in paramiko's policy style.

A key already known (pinned by Workbench or in ``~/.ssh/known_hosts``) is used silently. A key that
differs from the known one is always refused, with both fingerprints, whatever the policy. Only an
unknown key goes to the ``HostKeyPolicy``: refuse (scripts), accept one expected fingerprint
(``--accept-host-key SHA256:...``) or ask a person (a CLI prompt, a dialog in the app). An
accepted key is pinned, so the next connection needs no answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import paramiko

from workbench.errors import Cancelled, HostKeyRejected
from workbench.ssh.knownhosts import KnownHosts, fingerprint_blob

logger = logging.getLogger(__name__)

# OpenSSH names an RSA key "ssh-rsa" in known_hosts but negotiates it under these algorithms.
_ALGORITHMS_FOR_KEY_TYPE = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


def fingerprint(key: paramiko.PKey) -> str:
    """The key's fingerprint exactly as OpenSSH prints it: ``SHA256:`` + unpadded base64."""
    return fingerprint_blob(key.asbytes())


def accept_hint(offered: str) -> str:
    return (
        f"check that {offered} is the host's key (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on "
        f"the host), then run with --accept-host-key {offered}"
    )


class HostKeyPolicy(Protocol):
    """Decides about a host key seen for the first time. True: trust and pin it."""

    def decide(self, host: str, port: int, key: paramiko.PKey) -> bool: ...


class RejectUnknown:
    """Never trust a new key: for scripts and the service when no one can be asked."""

    def decide(self, host: str, port: int, key: paramiko.PKey) -> bool:
        offered = fingerprint(key)
        raise HostKeyRejected(
            f"the host key of {_where(host, port)} is not known ({key.get_name()} {offered})",
            host=host,
            offered=offered,
            hint=accept_hint(offered),
        )


class AcceptFingerprint:
    """Trust a new key only if its fingerprint is exactly the one the user gave."""

    def __init__(self, expected: str) -> None:
        self.expected = expected.strip()

    def decide(self, host: str, port: int, key: paramiko.PKey) -> bool:
        offered = fingerprint(key)
        if offered == self.expected:
            return True
        raise HostKeyRejected(
            f"the host key of {_where(host, port)} is {offered}, not the expected {self.expected}",
            host=host,
            offered=offered,
            hint="the fingerprint must match exactly (SHA256:..., as ssh-keygen -l prints it); "
            "if it does not, you may not be talking to the host you think",
        )


class PromptPolicy:
    """Ask a person: ``ask(host, fingerprint)`` returns their yes or no (the CLI or a dialog)."""

    def __init__(self, ask: Callable[[str, str], bool]) -> None:
        self.ask = ask

    def decide(self, host: str, port: int, key: paramiko.PKey) -> bool:
        offered = fingerprint(key)
        if self.ask(_where(host, port), offered):
            return True
        raise Cancelled(f"the host key of {_where(host, port)} ({offered}) was not accepted")


def preferred_key_types(
    known_hosts: KnownHosts, name: str, available: tuple[str, ...]
) -> tuple[str, ...]:
    """Host key algorithms with the already-known types first, as OpenSSH orders them.

    A server with several host keys then shows the one we know, rather than a new one we would
    have to ask about (or, worse, one that looks changed).
    """
    known_types: list[str] = []
    for known in known_hosts.lookup(name):
        if not known.revoked:
            for algorithm in _ALGORITHMS_FOR_KEY_TYPE.get(known.key_type, (known.key_type,)):
                if algorithm in available and algorithm not in known_types:
                    known_types.append(algorithm)
    return (*known_types, *(a for a in available if a not in known_types))


def verify_host_key(
    known_hosts: KnownHosts,
    policy: HostKeyPolicy,
    *,
    name: str,
    host: str,
    port: int,
    key: paramiko.PKey,
) -> None:
    """Return if ``key`` may be used for ``name`` (pinning it if the policy accepts), else raise."""
    offered = fingerprint(key)
    blob = key.asbytes()
    known = known_hosts.lookup(name)
    for entry in known:
        if entry.revoked and entry.blob == blob:
            raise HostKeyRejected(
                f"the host key of {_where(host, port)} ({offered}) is marked @revoked in "
                f"{entry.where()}",
                host=host,
                offered=offered,
                hint="ask the host's administrator why the key was revoked",
            )
    trusted = [entry for entry in known if not entry.revoked]
    if any(entry.key_type == key.get_name() and entry.blob == blob for entry in trusted):
        logger.debug("host key %s for %s is known", offered, name)
        return
    if trusted:
        pinned = ", ".join(entry.fingerprint for entry in trusted)
        places = ", ".join(entry.where() for entry in trusted)
        raise HostKeyRejected(
            f"the host key of {_where(host, port)} has CHANGED: it offered {offered}, but "
            f"{pinned} is known ({places}). Someone may be intercepting the connection",
            host=host,
            offered=offered,
            pinned=pinned,
            hint=f"if the host was reinstalled and you have checked the new key, remove the old "
            f"one ({places}; ssh-keygen -R '{name}' for ~/.ssh/known_hosts) and connect again",
        )
    if policy.decide(host, port, key):
        known_hosts.pin(name, key.get_name(), blob)
        return
    raise HostKeyRejected(
        f"the host key of {_where(host, port)} ({offered}) was not accepted",
        host=host,
        offered=offered,
        hint=accept_hint(offered),
    )


def _where(host: str, port: int) -> str:
    return host if port == 22 else f"{host}:{port}"
