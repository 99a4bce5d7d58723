"""Opening the byte stream an SSH transport runs over: a TCP socket, or a ProxyCommand's stdio.

Failures here are the transient kind (host down, network gone, sshd restarting), raised as
``HostUnreachable`` so reconnection knows to retry them and nothing else.
"""

from __future__ import annotations

import collections
import logging
import socket
import subprocess
import threading
from dataclasses import dataclass, field

import paramiko

from workbench import osproc
from workbench.errors import ContextError
from workbench.ssh.config import SshTarget

logger = logging.getLogger(__name__)

# Dead peers are noticed by TCP itself: probes after 15 s of silence, unacknowledged data
# abandoned after 45 s, so a vanished host ends the transport instead of hanging it for minutes.
_KEEPIDLE_S = 15
_KEEPINTVL_S = 5
_KEEPCNT = 3
_USER_TIMEOUT_MS = 45_000


class HostUnreachable(ContextError):
    """The host could not be reached or did not speak SSH: worth retrying later."""

    code = "host_unreachable"


@dataclass
class Dialed:
    """The socket to hand to paramiko, and the ProxyCommand process behind it, if any."""

    sock: socket.socket | paramiko.Channel
    process: subprocess.Popen[bytes] | None = None
    stderr_tail: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=20)
    )

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            if self.process is not None and self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(2)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()


def dial_tcp(target: SshTarget, timeout: float, *, context: str | None = None) -> Dialed:
    where = f"{target.host}:{target.port}"
    try:
        sock = socket.create_connection((target.host, target.port), timeout=timeout)
    except socket.gaierror as exc:
        raise HostUnreachable(
            f"cannot resolve {target.host}: {exc.strerror or exc}",
            context=context,
            hint="check the host name (and its HostName in ~/.ssh/config)",
        ) from exc
    except ConnectionRefusedError as exc:
        raise HostUnreachable(
            f"connection to {where} refused",
            context=context,
            hint="is the host up and its SSH server running on that port?",
        ) from exc
    except TimeoutError as exc:
        raise HostUnreachable(
            f"timed out after {timeout:g} s connecting to {where}",
            context=context,
            hint="is the host up and reachable from here (VPN, firewall, security group)?",
        ) from exc
    except OSError as exc:
        raise HostUnreachable(
            f"cannot reach {where}: {exc.strerror or exc}",
            context=context,
            hint="is the host up and reachable from here (VPN, firewall, security group)?",
        ) from exc
    _tune(sock)
    return Dialed(sock)


def dial_proxy_command(command: str, target: SshTarget, *, context: str | None = None) -> Dialed:
    """Run ``command`` through the shell, as OpenSSH does, and talk SSH over its stdin/stdout."""
    ours, theirs = socket.socketpair()
    try:
        process = subprocess.Popen(
            osproc.shell_argv(f"exec {command}"),
            stdin=theirs.fileno(),
            stdout=theirs.fileno(),
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        ours.close()
        raise HostUnreachable(
            f"cannot run ProxyCommand {command!r}: {exc}",
            context=context,
            hint="check the ProxyCommand for this host in ~/.ssh/config",
        ) from exc
    finally:
        theirs.close()
    dialed = Dialed(ours, process)
    threading.Thread(
        target=_collect_stderr,
        args=(process, dialed, target),
        daemon=True,
        name=f"proxy-stderr-{target.host}",
    ).start()
    return dialed


def _collect_stderr(process: subprocess.Popen[bytes], dialed: Dialed, target: SshTarget) -> None:
    assert process.stderr is not None
    for raw in process.stderr:
        line = raw.decode("utf-8", "replace").rstrip()
        dialed.stderr_tail.append(line)
        logger.debug("ProxyCommand for %s: %s", target.host, line)


def _tune(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", _KEEPIDLE_S),
        ("TCP_KEEPINTVL", _KEEPINTVL_S),
        ("TCP_KEEPCNT", _KEEPCNT),
        ("TCP_USER_TIMEOUT", _USER_TIMEOUT_MS),
    ):
        option = getattr(socket, name, None)
        if option is not None:  # Linux has them all; macOS lacks some
            try:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
            except OSError:
                logger.debug("cannot set %s", name)
