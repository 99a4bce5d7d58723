"""How sync reaches the remote agent: one command channel per operation, two ways to open one.

Paramiko (the context's ``SshConnection``) always works. For bulk the system OpenSSH client is
about twice as fast on the same link (measured in ``benchmarks/sync_bench.py``: its ciphers run
in C), so where ``ssh`` is installed and can log in non-interactively with the same key and the
same pinned host keys, transfers go through it, as sessions on the connection's one
ControlMaster (the app forwards' too), so each command costs a round trip, not a handshake. If
it cannot log in, sync falls back to paramiko for good and says so in the log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import subprocess
import threading
from collections.abc import Callable
from typing import IO, Protocol

import paramiko

from workbench import osproc
from workbench.errors import ContextError
from workbench.ssh import SshConnection
from workbench.ssh.openssh import openssh_available
from workbench.ssh.process import RemoteProcess

logger = logging.getLogger(__name__)


class TransportError(ContextError):
    """The link failed in the middle of a sync operation: retried once it is back."""

    code = "sync_transport"


class Proc(Protocol):
    """A running remote command: its stdin, stdout, and its end."""

    @property
    def stdin(self) -> IO[bytes]: ...

    @property
    def stdout(self) -> IO[bytes]: ...

    def close_stdin(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def stderr_text(self) -> str: ...

    def kill(self) -> None: ...

    def alive(self) -> bool: ...


class Runner(Protocol):
    """Starts remote commands (``argv`` is quoted for the remote shell here)."""

    @property
    def name(self) -> str: ...

    def start(self, argv: list[str]) -> Proc: ...

    def start_bulk(self, argv: list[str]) -> Proc:
        """A command that will carry much data (where it matters, on a connection of its own)."""
        ...

    def start_spare(self, argv: list[str]) -> tuple[Proc, bool]:
        """A command started ahead of need: on a connection already made where there is one
        (no login for what may go unused), else as ``start_bulk``; and whether it is as
        ``start_bulk`` would make it (fit for a large transfer)."""
        ...

    def close(self) -> None: ...


class _ParamikoProc:
    def __init__(self, process: RemoteProcess) -> None:
        self._process = process

    @property
    def stdin(self) -> IO[bytes]:
        return self._process.stdin  # type: ignore[return-value]

    @property
    def stdout(self) -> IO[bytes]:
        return self._process.stdout  # type: ignore[return-value]

    def close_stdin(self) -> None:
        with contextlib.suppress(EOFError, OSError, paramiko.SSHException):
            self._process.close_stdin()

    def wait(self, timeout: float | None = None) -> int:
        return self._process.wait(timeout)

    def stderr_text(self) -> str:
        channel = self._process.channel
        chunks = []
        while channel.recv_stderr_ready():
            chunks.append(channel.recv_stderr(65536))
        return b"".join(chunks).decode("utf-8", "replace")

    def kill(self) -> None:
        # On a link that just died, closing the channel can itself fail (paramiko raises
        # EOFError writing the close message): the channel is gone either way.
        with contextlib.suppress(EOFError, OSError, paramiko.SSHException):
            self._process.close()

    def alive(self) -> bool:
        channel = self._process.channel
        return not (channel.closed or channel.exit_status_ready())


class ParamikoRunner:
    """Commands as exec channels of the context's own connection (reconnects on its own)."""

    name = "paramiko"

    def __init__(self, connection: SshConnection) -> None:
        self.connection = connection

    def start(self, argv: list[str]) -> Proc:
        try:
            return _ParamikoProc(self.connection.exec_stream(shlex.join(argv)))
        except ContextError as exc:
            raise TransportError(exc.message, context=exc.context, hint=exc.hint) from exc

    def start_bulk(self, argv: list[str]) -> Proc:
        return self.start(argv)

    def start_spare(self, argv: list[str]) -> tuple[Proc, bool]:
        return self.start(argv), True

    def close(self) -> None:
        """The connection belongs to the caller."""


class _SubprocessProc:
    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self._stderr = bytearray()
        assert popen.stderr is not None
        self._reader = threading.Thread(
            target=self._drain, args=(popen.stderr,), daemon=True, name="ssh-stderr"
        )
        self._reader.start()

    def _drain(self, stream: IO[bytes]) -> None:
        while chunk := stream.read(65536):
            self._stderr.extend(chunk[-65536:])

    @property
    def stdin(self) -> IO[bytes]:
        assert self._popen.stdin is not None
        return self._popen.stdin

    @property
    def stdout(self) -> IO[bytes]:
        assert self._popen.stdout is not None
        return self._popen.stdout

    def close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            self.stdin.close()

    def wait(self, timeout: float | None = None) -> int:
        code = self._popen.wait(timeout)
        self._reader.join(1.0)
        return code

    def stderr_text(self) -> str:
        return bytes(self._stderr).decode("utf-8", "replace")

    def alive(self) -> bool:
        return self._popen.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self._popen.kill()
        self._popen.wait()
        for stream in (self._popen.stdin, self._popen.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


# Bulk data through a pipe to ``ssh``: Python's default 8 KiB buffer and Linux's default 64 KiB
# pipe cost three times the CPU of a 64 KiB buffer and a 1 MiB pipe (fewer system calls and
# context switches; measured on 200 MB, docs/benchmarks.md).
PIPE_BUFFER = 64 << 10
PIPE_SIZE = 1 << 20


def widen_pipe(fd: int) -> None:
    """Give a pipe ``PIPE_SIZE`` bytes of room where the system allows it (Linux)."""
    osproc.widen_pipe(fd, PIPE_SIZE)


class OpenSshRunner:
    """Commands through the system ``ssh``: sessions on the connection's one ControlMaster
    (``SshConnection.openssh_master``, shared with app forwards: no login of their own), and
    bulk transfers on a connection of their own.

    Trust is the connection's: the same target, key files, ProxyJump hops and pinned host keys
    (checked strictly, so this path never asks and never pins anything itself;
    ``workbench.ssh.openssh``). No agent forwarding, no TTY.
    """

    name = "openssh"

    def __init__(self, connection: SshConnection) -> None:
        self.connection = connection
        self.master = connection.openssh_master()
        self._openssh = self.master.openssh

    def check(self) -> bool:
        """Whether ``ssh`` logs in non-interactively: starts the connection's master (a no-op
        when app forwards already did)."""
        try:
            self.master.start()
        except ContextError as exc:
            logger.info(
                "system ssh cannot log in to %s non-interactively (%s); sync uses paramiko",
                self.connection.target.display(),
                exc.message[-200:],
            )
            return False
        return True

    def start(self, argv: list[str]) -> Proc:
        return self._start(self.master.session(shlex.join(argv)))

    def start_bulk(self, argv: list[str]) -> Proc:
        return self._start(self._openssh.command("-T", remote=shlex.join(argv)))

    def start_spare(self, argv: list[str]) -> tuple[Proc, bool]:
        if self.master.running():
            return self.start(argv), False
        return self.start_bulk(argv), True

    def _start(self, command: list[str]) -> Proc:
        try:
            popen = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                bufsize=PIPE_BUFFER,
            )
        except OSError as exc:
            raise TransportError(f"cannot run ssh: {exc}") from exc
        for stream in (popen.stdin, popen.stdout):
            assert stream is not None
            widen_pipe(stream.fileno())
        return _SubprocessProc(popen)

    def close(self) -> None:
        """The master is the connection's: it ends with it."""


class BulkRunner:
    """OpenSSH for bulk where it works, decided on a thread so nobody waits for its login.

    The decision starts on first need (a transfer, or ``decide_soon``), not at construction:
    a re-sync with nothing to send then never pays for a second login competing with its scan.
    A bulk process asked for while the decision is under way is started through OpenSSH at
    once, on its own connection, alongside the check (two logins at the same time instead of
    one after the other: about half a second sooner on a host whose shell runs pyenv init), and
    kept only if OpenSSH is chosen. It is as safe as the check: batch mode, the pinned keys
    checked strictly, nothing asked and nothing pinned.
    """

    def __init__(
        self,
        connection: SshConnection,
        *,
        prefer_openssh: bool = True,
        on_decided: Callable[[], None] | None = None,
    ) -> None:
        """``on_decided`` is called (on the deciding thread) once the choice is made."""
        self._connection = connection
        self._prefer_openssh = prefer_openssh
        self._on_decided = on_decided
        self._fallback = ParamikoRunner(connection)
        self._candidate: OpenSshRunner | None = None
        self._chosen: Runner | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def decide_soon(self) -> None:
        """Start deciding in the background, if not already started."""
        with self._lock:
            if self._thread is None:
                if openssh_wanted(prefer_openssh=self._prefer_openssh):
                    try:
                        self._candidate = OpenSshRunner(self._connection)
                    except ContextError as exc:  # the connection closed meanwhile
                        logger.info("sync uses paramiko: %s", exc.message)
                self._thread = threading.Thread(target=self._choose, daemon=True, name="sync-ssh")
                self._thread.start()

    def _choose(self) -> None:
        candidate = self._candidate
        if candidate is not None and candidate.check():
            self._chosen = candidate
        else:
            if candidate is not None:
                candidate.close()
            self._chosen = self._fallback
        if self._on_decided is not None:
            self._on_decided()

    @property
    def name(self) -> str:
        chosen = self._chosen
        return chosen.name if chosen is not None else "deciding"

    def runner(self) -> Runner:
        self.decide_soon()
        assert self._thread is not None
        self._thread.join(60.0)
        return self._chosen or self._fallback

    def start(self, argv: list[str]) -> Proc:
        return self.runner().start(argv)

    def start_bulk(self, argv: list[str]) -> Proc:
        self.decide_soon()
        candidate = self._candidate
        if self._chosen is not None or candidate is None:
            return self.runner().start_bulk(argv)
        try:
            ahead: Proc | None = candidate.start_bulk(argv)  # while the check runs
        except TransportError:
            ahead = None
        chosen = self.runner()
        if chosen is candidate and ahead is not None:
            return ahead
        if ahead is not None:
            ahead.kill()
        return chosen.start_bulk(argv)

    def start_spare(self, argv: list[str]) -> tuple[Proc, bool]:
        """On the master when it already runs (app forwards started it: no login), else as
        ``start_bulk``."""
        self.decide_soon()
        chosen, candidate = self._chosen, self._candidate
        if chosen is not None:
            return chosen.start_spare(argv)
        if candidate is not None and candidate.master.running():
            return candidate.start_spare(argv)
        return self.start_bulk(argv), True

    def close(self) -> None:
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(60.0)
        if self._chosen is not None:
            self._chosen.close()


def openssh_wanted(*, prefer_openssh: bool = True) -> bool:
    """Whether to try the system ``ssh`` at all: installed, and not turned off."""
    return prefer_openssh and openssh_available() and os.environ.get("NVWB_SYNC_SSH") != "paramiko"
