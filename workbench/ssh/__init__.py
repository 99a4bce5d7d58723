"""SSH for remote contexts: one reconnecting paramiko connection per context, pinned host keys.

The pieces: ``config`` (targets from ~/.ssh/config), ``knownhosts`` and ``hostkeys`` (trust),
``keys`` and ``auth`` (authentication), ``dial`` (sockets, ProxyCommand), ``process`` (remote
commands), ``forward`` (local port forwards) and ``connection``, which ties them together; beside
it, the system ``ssh``: ``openssh`` (every command line, one policy) and ``master`` (the one
ControlMaster per connection, for bulk).
"""

from __future__ import annotations

from workbench.ssh.config import SshTarget, resolve_target
from workbench.ssh.connection import ConnectionState, ConnectOptions, SshConnection
from workbench.ssh.dial import HostUnreachable
from workbench.ssh.forward import LocalForward
from workbench.ssh.hostkeys import (
    AcceptFingerprint,
    HostKeyPolicy,
    PromptPolicy,
    RejectUnknown,
    fingerprint,
)
from workbench.ssh.keys import PassphraseProvider, PassphraseRejected
from workbench.ssh.knownhosts import KnownHosts
from workbench.ssh.process import ExecResult, RemoteProcess

__all__ = [
    "AcceptFingerprint",
    "ConnectOptions",
    "ConnectionState",
    "ExecResult",
    "HostKeyPolicy",
    "HostUnreachable",
    "KnownHosts",
    "LocalForward",
    "PassphraseProvider",
    "PassphraseRejected",
    "PromptPolicy",
    "RejectUnknown",
    "RemoteProcess",
    "SshConnection",
    "SshTarget",
    "fingerprint",
    "resolve_target",
]
