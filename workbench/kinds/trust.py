"""The host key trust of kinds pinned per instance (``HostKeyTrust.PER_INSTANCE``, Brev's).

Brev writes ``StrictHostKeyChecking no`` into ``~/.brev/ssh_config``, so OpenSSH would take any
key, and Brev hands out a new address after each restart (old addresses go to other instances).
So such a key is never pinned by address: the first key an instance shows is recorded as the
context's ``accepted_host_key`` (``PinOnFirstUse``; in the app a person is asked first), and that
fingerprint is the only pin (``NoAddressPins``). The system ``ssh`` (app forwards, sync's bulk
transfers) cannot check a fingerprint, so the key that matched the pin is written to a
known_hosts file of the context's own (``openssh_pin_file``, mode 0600, under the state dir),
under the name that ``ssh`` looks up for the address being dialled, and ``ssh`` reads that file
alone, strictly. The user's files are never touched. ``workbench.kinds.connect`` picks these.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import paramiko

from workbench.paths import Paths, atomic_write_text
from workbench.ssh import HostKeyPolicy, KnownHosts, fingerprint
from workbench.ssh.knownhosts import KnownKey, fingerprint_blob

log = logging.getLogger(__name__)

RecordPin = Callable[[str], None]


class PinOnFirstUse:
    """Trust the first key seen and hand its fingerprint to ``record`` (the context's pin).

    With ``ask`` (the app's dialog, the CLI's question), a person decides first; a no raises
    as ``ask`` does and nothing is recorded.
    """

    def __init__(self, record: RecordPin, ask: HostKeyPolicy | None = None) -> None:
        self.record = record
        self.ask = ask

    def decide(self, host: str, port: int, key: paramiko.PKey) -> bool:
        if self.ask is not None and not self.ask.decide(host, port, key):
            return False
        offered = fingerprint(key)
        log.info("pinning the host key of %s:%s on first use: %s", host, port, offered)
        self.record(offered)
        return True


class NoAddressPins(KnownHosts):
    """Known hosts that know nothing and keep nothing by address: the policy alone decides.

    The key the policy accepted on this connection (the one matching the context's pin) is
    remembered in memory, so that ``openssh_files`` can give the system ``ssh`` exactly that key
    in ``openssh_file``, a private known_hosts file of the context's own.
    """

    def __init__(self, openssh_file: Path | None = None) -> None:
        # Never read or written: the methods that would touch it are overridden.
        super().__init__(pinned_file=Path(os.devnull))
        self.openssh_file = openssh_file
        self._lock = threading.Lock()
        self._accepted: tuple[str, bytes] | None = None

    def lookup(self, name: str) -> list[KnownKey]:
        return []

    def pin(self, name: str, key_type: str, blob: bytes) -> None:
        """The pin is the context's ``accepted_host_key``, written by the policy; the key it
        accepted is kept for ``openssh_files`` only."""
        with self._lock:
            self._accepted = (key_type, blob)

    def openssh_files(self, name: str) -> tuple[Path, ...]:
        """``openssh_file`` holding just the accepted key for ``name``; ``/dev/null`` (trust
        nothing) before a key was accepted, or when the file cannot be written."""
        with self._lock:
            accepted = self._accepted
            target = self.openssh_file
            if accepted is None or target is None:
                return (Path(os.devnull),)
            key_type, blob = accepted
            line = f"{name} {key_type} {base64.b64encode(blob).decode('ascii')}\n"
            try:
                atomic_write_text(target, line, mode=0o600)  # its folders made 0700
            except OSError as exc:
                log.warning("cannot write %s for ssh: %s", target, exc.strerror or exc)
                return (Path(os.devnull),)
        log.debug("ssh trusts %s for %s (%s)", fingerprint_blob(blob), name, target)
        return (target,)


def openssh_pin_file(paths: Paths, context: str) -> Path:
    """Where the system ``ssh`` finds the pinned key of a context pinned by fingerprint."""
    return paths.state_dir / "host-keys" / f"{context}.known_hosts"
