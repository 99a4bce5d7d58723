"""One SSH connection per context, carrying everything: exec, SFTP, forwards, the Docker API.

``SshConnection`` owns a single paramiko ``Transport``. Every operation asks for a live transport
first; when the old one has dropped (host rebooted, network gone), that call reconnects with
exponential backoff before going on, so forwards and the service's users see a pause, not an
error. Host key and authentication failures are never retried: waiting will not fix them.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import paramiko

from workbench.errors import ContextError
from workbench.ssh.auth import authenticate
from workbench.ssh.config import SshTarget, resolve_target
from workbench.ssh.dial import Dialed, HostUnreachable, dial_proxy_command, dial_tcp
from workbench.ssh.forward import LocalForward
from workbench.ssh.hostkeys import HostKeyPolicy, preferred_key_types, verify_host_key
from workbench.ssh.keys import PassphraseProvider
from workbench.ssh.knownhosts import KnownHosts
from workbench.ssh.master import OpenSshMaster
from workbench.ssh.openssh import CIPHERS, CONNECT_TIMEOUT_S, KEEPALIVE_INTERVAL_S, OpenSsh
from workbench.ssh.process import ExecResult, RemoteProcess, run_to_completion

logger = logging.getLogger(__name__)

T = TypeVar("T")

MiB = 1 << 20
KiB = 1 << 10


@dataclass(frozen=True)
class ConnectOptions:
    """Timeouts, reconnection and performance settings; the defaults suit an interactive app."""

    connect_timeout: float = float(CONNECT_TIMEOUT_S)
    keepalive_interval: int = KEEPALIVE_INTERVAL_S
    reconnect_timeout: float = 60.0
    backoff_initial: float = 0.2
    backoff_max: float = 5.0
    # A 64 MiB window keeps a fast link busy across a long round trip; paramiko's 2 MiB does not.
    window_size: int = 64 * MiB
    max_packet_size: int = 256 * KiB
    # The system ssh's list (``workbench.ssh.openssh``): AES-GCM first, one pass per packet (no
    # separate HMAC), which paramiko lists last by default; what paramiko lacks is skipped.
    ciphers: tuple[str, ...] = CIPHERS
    use_agent: bool = True
    look_for_keys: bool = True


class ConnectionState(enum.Enum):
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


StateListener = Callable[[ConnectionState], None]


class SshConnection:
    """A reconnecting SSH connection to one target. Thread-safe; ``close()`` when done."""

    def __init__(
        self,
        target: SshTarget,
        policy: HostKeyPolicy,
        known_hosts: KnownHosts,
        passphrase_provider: PassphraseProvider | None = None,
        *,
        options: ConnectOptions | None = None,
        context: str | None = None,
        env: Mapping[str, str] | None = None,
        ssh_config: Path | None = None,
    ) -> None:
        self.target = target
        self.policy = policy
        self.known_hosts = known_hosts
        self.passphrase_provider = passphrase_provider
        self.options = options or ConnectOptions()
        self.context = context
        self._env = dict(os.environ if env is None else env)
        self._ssh_config = ssh_config
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._transport: paramiko.Transport | None = None
        self._dialed: Dialed | None = None
        self._jump: SshConnection | None = None
        self._ever_connected = False
        self._forwards: list[LocalForward] = []
        self._listeners: list[StateListener] = []
        self.reconnects = 0
        self._master: OpenSshMaster | None = None
        self._master_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect now (once, no retries); a no-op when already connected."""
        with self._lock:
            self._check_open()
            if self.is_alive():
                return
            self._install(self._open_transport())

    def is_alive(self) -> bool:
        transport = self._transport
        return transport is not None and transport.is_active() and transport.is_authenticated()

    def close(self) -> None:
        self._closing.set()
        with self._master_lock:
            master, self._master = self._master, None
        if master is not None:
            master.close()
        with self._lock:
            forwards, self._forwards = self._forwards, []
            for forward in forwards:
                forward.close()
            self._drop_transport()
            if self._jump is not None:
                self._jump.close()
                self._jump = None
        self._notify(ConnectionState.CLOSED)

    def add_state_listener(self, listener: StateListener) -> None:
        """Called (on the calling thread, keep it short) as the connection drops and comes back."""
        self._listeners.append(listener)

    def __enter__(self) -> SshConnection:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def jump_connection(self) -> SshConnection | None:
        """The connection to the jump host this one is dialled through, once made."""
        return self._jump

    @property
    def transport(self) -> paramiko.Transport:
        """The live transport, reconnecting first if it dropped."""
        return self._live_transport()

    # -- operations ------------------------------------------------------------------------

    def exec(
        self, command: str, input: bytes | str | None = None, timeout: float | None = None
    ) -> ExecResult:
        """Run ``command`` through the remote user's shell and wait for it."""
        data = input.encode("utf-8") if isinstance(input, str) else input
        channel = self._open_session()
        self._start_command(channel, command)
        return run_to_completion(channel, command, data, timeout)

    def exec_stream(self, command: str) -> RemoteProcess:
        """Start ``command``; read its output as it comes (``for line in proc.stdout``)."""
        channel = self._open_session()
        self._start_command(channel, command)
        return RemoteProcess(channel, command)

    def open_exec_stream(self, command: str) -> paramiko.Channel:
        """A socket-like channel on ``command``'s stdin/stdout (``docker system dial-stdio``)."""
        channel = self._open_session()
        self._start_command(channel, command)
        return channel

    def sftp(self) -> paramiko.SFTPClient:
        """A new SFTP session on this connection; the caller closes it."""

        def open_sftp(transport: paramiko.Transport) -> paramiko.SFTPClient:
            client = paramiko.SFTPClient.from_transport(
                transport,
                window_size=self.options.window_size,
                max_packet_size=self.options.max_packet_size,
            )
            if client is None:
                raise paramiko.SSHException("the server refused the sftp subsystem")
            return client

        return self._with_transport(open_sftp, "open an SFTP session")

    def open_direct_tcpip(self, remote_host: str, remote_port: int) -> paramiko.Channel:
        """A channel connected to ``remote_host:remote_port`` as seen from the SSH host."""

        def open_channel(transport: paramiko.Transport) -> paramiko.Channel:
            return transport.open_channel(
                "direct-tcpip",
                dest_addr=(remote_host, remote_port),
                src_addr=("127.0.0.1", 0),
                timeout=self.options.connect_timeout,
            )

        return self._with_transport(open_channel, f"connect to {remote_host}:{remote_port}")

    def forward_local(
        self, remote_port: int, remote_host: str = "127.0.0.1", local_port: int = 0
    ) -> LocalForward:
        """Listen on ``127.0.0.1:local_port`` (0: any) and forward to the remote port."""
        self._check_open()
        forward = LocalForward(
            lambda: self.open_direct_tcpip(remote_host, remote_port),
            remote_host,
            remote_port,
            local_port=local_port,
        )
        with self._lock:
            self._forwards = [f for f in self._forwards if not f.closed]
            self._forwards.append(forward)
        return forward

    # -- the system ssh beside it ----------------------------------------------------------

    def openssh(self) -> OpenSsh:
        """``ssh`` command lines that reach this connection's target as it does: the same
        keys, the same pinned host keys, ProxyJump hops resolved from the same config."""
        return self._openssh_for(self.target)

    def openssh_master(self, control_dir: Path | None = None) -> OpenSshMaster:
        """The one OpenSSH ControlMaster beside this connection (not started: ``start()`` it),
        shared by whoever asks (app forwards, sync) and closed with the connection.
        ``control_dir`` is where its socket goes when this call makes it (else a private
        folder under the temp dir)."""
        with self._master_lock:
            self._check_open()
            if self._master is None:
                self._master = OpenSshMaster(self.openssh(), control_dir)
            return self._master

    def _openssh_for(self, target: SshTarget) -> OpenSsh:
        hop = self._hop_before(target)
        jump = self._openssh_for(hop) if hop is not None else None
        return OpenSsh(target, self.known_hosts, jump=jump)

    def _hop_before(self, target: SshTarget) -> SshTarget | None:
        """The last ProxyJump hop on the way to ``target``: given resolved (``target.jump``, a
        cluster's login node), else resolved from the ssh config, its earlier hops (``a,b``: via
        a, then b) as its own ProxyJump; None when there is none."""
        if target.jump is not None:
            return target.jump
        if not target.proxy_jump:
            return None
        hops = [h.strip() for h in target.proxy_jump.split(",") if h.strip()]
        *earlier, last = hops
        hop = resolve_target(last, config_path=self._ssh_config, env=self._env)
        return _with_jump(hop, ",".join(earlier)) if earlier else hop

    # -- internals -------------------------------------------------------------------------

    def _open_session(self) -> paramiko.Channel:
        return self._with_transport(
            lambda t: t.open_session(timeout=self.options.connect_timeout), "open a session"
        )

    def _start_command(self, channel: paramiko.Channel, command: str) -> None:
        try:
            channel.exec_command(command)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            channel.close()
            raise ContextError(
                f"cannot run a command on {self.target.display()}: {exc}",
                context=self.context,
                hint="the connection dropped; try again",
            ) from exc

    def _with_transport(self, operation: Callable[[paramiko.Transport], T], what: str) -> T:
        """Run ``operation`` on a live transport; if it failed because the transport just died,
        reconnect and try once more (only opening things goes through here, never a command)."""
        transport = self._live_transport()
        try:
            return operation(transport)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if transport.is_active():
                raise ContextError(
                    f"cannot {what} on {self.target.display()}: {exc or type(exc).__name__}",
                    context=self.context,
                    hint="check that it is running and reachable from the SSH host",
                ) from exc
            logger.info("transport to %s died during %s; reconnecting", self.target.display(), what)
        transport = self._live_transport()
        try:
            return operation(transport)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ContextError(
                f"cannot {what} on {self.target.display()}: {exc or type(exc).__name__}",
                context=self.context,
            ) from exc

    def _live_transport(self) -> paramiko.Transport:
        with self._lock:
            self._check_open()
            transport = self._transport
            if transport is not None and transport.is_active():
                return transport
            # The first connection fails fast; only a connection that worked is worth waiting for.
            transport = self._reconnect() if self._ever_connected else self._open_transport()
            self._install(transport)
            return transport

    def _reconnect(self) -> paramiko.Transport:
        self._drop_transport()
        self._notify(ConnectionState.RECONNECTING)
        started = time.monotonic()
        delay = self.options.backoff_initial
        attempt = 0
        while True:
            attempt += 1
            try:
                transport = self._open_transport()
            except HostUnreachable as exc:
                elapsed = time.monotonic() - started
                remaining = self.options.reconnect_timeout - elapsed
                if remaining <= 0 or self._closing.is_set():
                    self._notify(ConnectionState.DISCONNECTED)
                    raise ContextError(
                        f"lost the connection to {self.target.display()} and could not reconnect "
                        f"in {elapsed:.1f} s ({attempt} attempts): {exc.message}",
                        context=self.context,
                        hint=exc.hint,
                    ) from exc
                pause = min(delay, remaining)  # the last attempt lands on the deadline
                logger.info(
                    "reconnect to %s failed (%s); retrying in %.1f s",
                    self.target.display(),
                    exc.message,
                    pause,
                )
                if self._closing.wait(pause):
                    self._check_open()
                delay = min(delay * 2, self.options.backoff_max)
            except ContextError:
                self._notify(ConnectionState.DISCONNECTED)
                raise
            else:
                self.reconnects += 1
                logger.info("reconnected to %s after %d attempt(s)", self.target.display(), attempt)
                return transport

    def _install(self, transport: paramiko.Transport) -> None:
        self._transport = transport
        self._ever_connected = True
        self._notify(ConnectionState.CONNECTED)

    def _open_transport(self) -> paramiko.Transport:
        """Dial, handshake, check the host key, authenticate: one attempt."""
        options = self.options
        dialed = self._dial()
        try:
            transport = paramiko.Transport(
                dialed.sock,
                default_window_size=options.window_size,
                default_max_packet_size=options.max_packet_size,
            )
        except (paramiko.SSHException, OSError) as exc:
            dialed.close()
            raise HostUnreachable(
                f"cannot start SSH on {self.target.display()}: {exc}", context=self.context
            ) from exc
        try:
            transport.banner_timeout = options.connect_timeout
            transport.handshake_timeout = options.connect_timeout
            security = transport.get_security_options()
            available = tuple(security.ciphers)
            security.ciphers = tuple(c for c in options.ciphers if c in available) or available
            security.key_types = preferred_key_types(
                self.known_hosts, self.target.known_hosts_name, tuple(security.key_types)
            )
            self._handshake(transport, dialed)
            verify_host_key(
                self.known_hosts,
                self.policy,
                name=self.target.known_hosts_name,
                host=self.target.host_key_alias or self.target.host,
                port=self.target.port,
                key=transport.get_remote_server_key(),
            )
            authenticate(
                transport,
                self.target,
                home=Path(self._env.get("HOME") or Path.home()),
                passphrase_provider=self.passphrase_provider,
                use_agent=options.use_agent,
                look_for_keys=options.look_for_keys,
                context=self.context,
            )
            transport.set_keepalive(options.keepalive_interval)
        except BaseException:
            transport.close()
            dialed.close()
            raise
        self._dialed = dialed
        logger.info(
            "connected to %s (cipher %s)",
            self.target.display(),
            getattr(transport, "remote_cipher", "?"),
        )
        return transport

    def _handshake(self, transport: paramiko.Transport, dialed: Dialed) -> None:
        timeout = self.options.connect_timeout
        try:
            transport.start_client(timeout=timeout)
            # start_client returns quietly when its timeout passes: see whether it got anywhere.
            if not (transport.is_active() and getattr(transport, "initial_kex_done", False)):
                transport.close()
                raise paramiko.SSHException(f"no answer within {timeout:g} s")
        except (paramiko.SSHException, EOFError, OSError) as exc:
            detail = str(exc) or type(exc).__name__
            if dialed.stderr_tail:
                detail += f" (ProxyCommand said: {dialed.stderr_tail[-1]})"
            raise HostUnreachable(
                f"SSH handshake with {self.target.display()} failed: {detail}",
                context=self.context,
                hint="is an SSH server listening there? (for a host that just started, "
                "try again in a moment)",
            ) from exc

    def _dial(self) -> Dialed:
        target = self.target
        if target.proxy_jump or target.jump:
            return Dialed(self._jump_channel())
        if target.proxy_command:
            return dial_proxy_command(target.proxy_command, target, context=self.context)
        return dial_tcp(target, self.options.connect_timeout, context=self.context)

    def _jump_channel(self) -> paramiko.Channel:
        """A channel to the target through the ProxyJump host(s): ``a,b`` means via a, then b."""
        if self._jump is None:
            jump_target = self._hop_before(self.target)
            assert jump_target is not None
            self._jump = SshConnection(
                jump_target,
                self.policy,
                self.known_hosts,
                self.passphrase_provider,
                options=self.options,
                context=self.context,
                env=self._env,
                ssh_config=self._ssh_config,
            )
        self._jump.transport  # noqa: B018 - reach the jump host first; its errors stand as they are
        try:
            return self._jump.open_direct_tcpip(self.target.host, self.target.port)
        except ContextError as exc:
            via = self.target.jump.display() if self.target.jump else self.target.proxy_jump
            raise HostUnreachable(
                f"cannot reach {self.target.display()} through {via}: {exc.message}",
                context=self.context,
                hint=exc.hint,
            ) from exc

    def _drop_transport(self) -> None:
        transport, self._transport = self._transport, None
        dialed, self._dialed = self._dialed, None
        if transport is not None:
            transport.close()
        if dialed is not None:
            dialed.close()

    def _check_open(self) -> None:
        if self._closing.is_set():
            raise ContextError(
                f"the connection to {self.target.display()} is closed", context=self.context
            )

    def _notify(self, state: ConnectionState) -> None:
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception:
                logger.exception("connection state listener failed")


def _with_jump(target: SshTarget, proxy_jump: str) -> SshTarget:
    return replace(target, proxy_jump=proxy_jump, proxy_command=None)
