"""Which host key the service trusts for a context's machine, and where that trust is kept.

- A context with ``accepted_host_key`` trusts exactly that fingerprint.
- A ``brev`` context without one pins the key its instance shows on first connect and records
  it as the context's ``accepted_host_key``. Brev writes ``StrictHostKeyChecking no`` into
  ``~/.brev/ssh_config``, so OpenSSH would take any key; we take only the first one, per instance.
  Brev hands out a new address after each restart (and old addresses go to other instances), so
  brev pins are never keyed by address: the fingerprint in the context is the only pin.
- Any other context (``command``) trusts keys pinned in Workbench's or the user's known_hosts,
  and refuses an unknown one: the service cannot ask anyone, and ``--accept-host-key`` exists.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import paramiko

from workbench.registry import Context
from workbench.ssh import AcceptFingerprint, HostKeyPolicy, KnownHosts, RejectUnknown, fingerprint
from workbench.ssh.knownhosts import KnownKey

log = logging.getLogger(__name__)

RecordKey = Callable[[str], None]


class PinOnFirstUse:
    """Trust the first key seen and hand its fingerprint to ``record`` (the context's pin)."""

    def __init__(self, record: RecordKey) -> None:
        self.record = record

    def decide(self, host: str, port: int, key: paramiko.PKey) -> bool:
        offered = fingerprint(key)
        log.info("pinning the host key of %s:%s on first use: %s", host, port, offered)
        self.record(offered)
        return True


class NoAddressPins(KnownHosts):
    """Known hosts that know nothing and keep nothing: the policy alone decides, every time."""

    def __init__(self) -> None:
        # Never read or written: both methods that would touch it are overridden.
        super().__init__(pinned_file=Path(os.devnull))

    def lookup(self, name: str) -> list[KnownKey]:
        return []

    def pin(self, name: str, key_type: str, blob: bytes) -> None:
        """The pin is the context's ``accepted_host_key``, written by the policy."""


def trust_for(
    context: Context, env: Mapping[str, str], record: RecordKey
) -> tuple[HostKeyPolicy, KnownHosts]:
    """The host key policy and known hosts the service's connection to ``context`` uses."""
    if context.kind == "brev":
        if context.accepted_host_key:
            return AcceptFingerprint(context.accepted_host_key), NoAddressPins()
        return PinOnFirstUse(record), NoAddressPins()
    known = KnownHosts.for_user(env)
    if context.accepted_host_key:
        return AcceptFingerprint(context.accepted_host_key), known
    return RejectUnknown(), known
