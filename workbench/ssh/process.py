"""Remote commands over an SSH session channel: run to completion, or stream while they run."""

from __future__ import annotations

import logging
import select
import threading
import time
from dataclasses import dataclass
from types import TracebackType

import paramiko

from workbench.errors import CommandFailed, ContextError

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ExecResult:
    """A finished remote command. ``exit_status`` is -1 when it ended without one (a signal)."""

    exit_status: int
    stdout: bytes
    stderr: bytes
    command: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    def check(self) -> ExecResult:
        """Return self if the command succeeded, else raise ``CommandFailed``."""
        if not self.ok:
            raise CommandFailed(self.command, self.exit_status, self.stderr_text)
        return self


class RemoteProcess:
    """A running remote command: write ``stdin``, read ``stdout`` and ``stderr``, ``wait()``."""

    def __init__(self, channel: paramiko.Channel, command: str) -> None:
        self.channel = channel
        self.command = command
        self.stdin = channel.makefile_stdin("wb")
        self.stdout = channel.makefile("rb")
        self.stderr = channel.makefile_stderr("rb")

    def close_stdin(self) -> None:
        """Send EOF: the remote command sees its input end."""
        self.stdin.flush()
        self.channel.shutdown_write()

    def wait(self, timeout: float | None = None) -> int:
        if not self.channel.status_event.wait(timeout):
            raise ContextError(
                f"timed out after {timeout:g} s waiting for: {self.command}",
                hint="the command is still running on the host; raise the timeout or kill it",
            )
        return self.channel.recv_exit_status()

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> RemoteProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def run_to_completion(
    channel: paramiko.Channel, command: str, data: bytes | None, timeout: float | None
) -> ExecResult:
    """Feed ``data`` to the command, gather both outputs, return when it exits (or time out)."""
    writer = None
    if data is not None:
        writer = threading.Thread(
            target=_feed, args=(channel, data), daemon=True, name="ssh-exec-stdin"
        )
        writer.start()
    else:
        channel.shutdown_write()
    deadline = None if timeout is None else time.monotonic() + timeout
    out: list[bytes] = []
    err: list[bytes] = []
    wakeup = channel.fileno()  # readable when either stream has data
    try:
        while True:
            progressed = False
            if channel.recv_ready():
                out.append(channel.recv(_CHUNK))
                progressed = True
            if channel.recv_stderr_ready():
                err.append(channel.recv_stderr(_CHUNK))
                progressed = True
            if progressed:
                continue
            # exit-status may arrive before the last of the output (OpenSSH sends it when the
            # child exits, while its pipes still drain); EOF comes only after all of it.
            if channel.closed or (channel.eof_received and channel.exit_status_ready()):
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise ContextError(
                    f"timed out after {timeout:g} s: {command}",
                    hint="raise the timeout, or check why the command hangs on the host",
                )
            wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
            select.select([wakeup], [], [], wait)
    finally:
        channel.close()
    if writer is not None:
        writer.join(1.0)
    return ExecResult(channel.recv_exit_status(), b"".join(out), b"".join(err), command)


def _feed(channel: paramiko.Channel, data: bytes) -> None:
    try:
        channel.sendall(data)
        channel.shutdown_write()
    except (OSError, paramiko.SSHException) as exc:
        # The command may exit before reading all of its input; that is its business.
        logger.debug("stdin for remote command not fully sent: %s", exc)
