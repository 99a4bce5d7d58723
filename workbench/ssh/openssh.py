"""The one way Workbench runs the system ``ssh``: its arguments, and the policy they carry.

Why this exists: two parts run OpenSSH beside the paramiko connection (app forwards through a
ControlMaster, sync's bulk transfers), and each once built its own command line; they drifted
(different cipher lists, keep-alives of 5 s and 15 s, ProxyJump handed to ``-J``, whose hop
ssh neither used our keys nor our pins). ``OpenSsh`` builds every ``ssh`` command line, and
``CIPHERS``, ``KEEPALIVE_INTERVAL_S`` and ``CONNECT_TIMEOUT_S`` are the paramiko connection's
defaults too, so all three speak alike.

Trust: ``ssh`` runs against a target the paramiko ``SshConnection`` has already verified. It
never asks and never pins: ``StrictHostKeyChecking=yes`` with the known_hosts files that the
connection's ``KnownHosts`` names for OpenSSH (``KnownHosts.openssh_files``), nothing else: not
the system's global file, not ``~/.ssh/config`` (``-F none``), no key updates written, no
prompts (``BatchMode``).

Proxies are reached as the paramiko connection reaches them: a ProxyCommand as resolved (its
tokens already expanded, so ``%`` is escaped for ``ssh``), a ProxyJump hop as a ProxyCommand
running this same builder's ``ssh -W`` to the hop, resolved from the user's config as paramiko
resolves it, with the hop's own keys and pins (``SshConnection.openssh``).
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Sequence
from typing import Final

from workbench import osproc
from workbench.ssh.config import SshTarget
from workbench.ssh.knownhosts import KnownHosts

# AES-GCM first: one pass per packet with AES-NI, about 1.5x OpenSSH's default chacha20-poly1305
# on bulk data here (benchmarks/forward_throughput.py); paramiko, which has no chacha20, skips
# what it lacks (``SshConnection``).
CIPHERS: Final = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)
# A keep-alive every 15 s; OpenSSH gives up after 3 unanswered (45 s). A far-away or roaming
# network may go quiet for longer than 15 s without being gone: a transfer or a forward cut
# then would cost a new login and a retry.
KEEPALIVE_INTERVAL_S: Final = 15
KEEPALIVE_COUNT: Final = 3
CONNECT_TIMEOUT_S: Final = 15

# Control options: a connection of its own (bulk data: a master's relay costs about a third
# more CPU per byte), or a session on a master's connection (no login).
OWN_CONNECTION: Final = ("-o", "ControlMaster=no", "-o", "ControlPath=none")


def openssh_available() -> bool:
    """Whether the system ``ssh`` is installed and can share a connection (not on Windows)."""
    return shutil.which("ssh") is not None and osproc.openssh_multiplexing()


def escape_tokens(value: str) -> str:
    """``value`` as literal text where ``ssh`` expands ``%`` tokens (paths, ProxyCommand)."""
    return value.replace("%", "%%")


def through_master(control_path: str) -> tuple[str, ...]:
    """Control options for a session on the master listening at ``control_path``."""
    return ("-o", "ControlMaster=no", "-o", f"ControlPath={escape_tokens(control_path)}")


def as_master(control_path: str) -> tuple[str, ...]:
    """Control options for the master itself (its life is its process's: no persistence)."""
    return (
        "-M",  # ControlMaster=yes
        "-o", f"ControlPath={escape_tokens(control_path)}",
        "-o", "ControlPersist=no",
    )  # fmt: skip


def openssh_host_key_name(target: SshTarget) -> str:
    """The name ``ssh`` is made to look a host key up under: the paramiko connection's
    (``host`` on port 22, ``[host]:port`` otherwise; the ``HostKeyAlias`` standing for the
    host). ``ssh`` itself would look an alias up without the port, where nothing was pinned."""
    return target.known_hosts_name


def trust_options(target: SshTarget, known_hosts: KnownHosts) -> list[str]:
    """``-o`` options for ``ssh`` to ``target``: our known hosts only, checked strictly."""
    files = known_hosts.openssh_files(openssh_host_key_name(target))
    quoted = " ".join(shlex.quote(escape_tokens(str(f))) for f in files)
    options = [
        "-o", "StrictHostKeyChecking=yes",
        "-o", "UserKnownHostsFile=" + quoted,
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "UpdateHostKeys=no",
        "-o", "CheckHostIP=no",
    ]  # fmt: skip
    if target.host_key_alias:
        options += ["-o", f"HostKeyAlias={openssh_host_key_name(target)}"]
    return options


class OpenSsh:
    """``ssh`` command lines to ``target``, reached through ``jump`` (the ProxyJump hop before
    it, itself an ``OpenSsh``) when there is one. Make it with ``SshConnection.openssh()``."""

    def __init__(
        self,
        target: SshTarget,
        known_hosts: KnownHosts,
        *,
        jump: OpenSsh | None = None,
        program: str = "ssh",
    ) -> None:
        self.target = target
        self.known_hosts = known_hosts
        self.jump = jump
        self.program = program
        # Fixed for this object's life: a master restarted later trusts the same files.
        self._trust = trust_options(target, known_hosts)

    def options(self) -> list[str]:
        """Everything but the control options and the destination."""
        target = self.target
        args = [
            "-F", "none",  # no config file (``/dev/null`` is a file some systems have replaced)
            "-p", str(target.port),
            "-l", target.user,
            "-x", "-a",  # no X11, no agent forwarding
            "-o", "BatchMode=yes",
            *self._trust,
            "-o", f"ServerAliveInterval={KEEPALIVE_INTERVAL_S}",
            "-o", f"ServerAliveCountMax={KEEPALIVE_COUNT}",
            "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
            "-o", "Compression=no",
            "-o", "Ciphers=" + ",".join(CIPHERS),
        ]  # fmt: skip
        proxy = self.proxy_command()
        if proxy:
            args += ["-o", "ProxyCommand=" + escape_tokens(proxy)]
        for key in target.key_paths:
            args += ["-i", escape_tokens(str(key))]
        if target.key_paths:
            args += ["-o", "IdentitiesOnly=yes"]
        return args

    def proxy_command(self) -> str | None:
        """How the TCP stream to the target is made, when not directly: through the jump hop
        (``ssh -W`` there, on a connection of its own), else the target's ProxyCommand."""
        if self.jump is not None:
            host = f"[{self.target.host}]:{self.target.port}"
            return shlex.join(self.jump.command("-W", host))
        return self.target.proxy_command

    def command(
        self,
        *extra: str,
        control: Sequence[str] = OWN_CONNECTION,
        remote: str | None = None,
    ) -> list[str]:
        """``ssh`` with our options, ``control``, ``extra`` flags, the host and ``remote`` (a
        command line for the remote shell, already quoted)."""
        tail = [] if remote is None else [remote]
        return [self.program, *self.options(), *control, *extra, self.target.host, *tail]

    def display(self) -> str:
        return self.target.display()
