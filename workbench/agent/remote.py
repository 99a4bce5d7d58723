"""The agent on one remote: install or update it by hash, start its guard, heartbeat, status.

Everything goes over the context's one ``SshConnection``: a single exec finds the folder, checks
``python3`` and hashes the installed copy; the new copy travels by SFTP to a temporary name and
is renamed into place, so a guard starting at that moment never runs half a file.
"""

from __future__ import annotations

import io
import json
import logging
import shlex
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from workbench.agent.script import AgentScript, local_agent
from workbench.agent.status import AgentStatus
from workbench.errors import ContextError
from workbench.ssh import SshConnection

log = logging.getLogger(__name__)

AGENT_DIR = "agent"
SCRIPT_NAME = "agent.py"
STATE_DIR = "state"
PYTHON = "python3"
MIN_PYTHON = (3, 8)
COMMAND_TIMEOUT_SECONDS = 60.0

# Run by the remote's python3: its version, the installed agent's sha256 (or "-"), and the
# interpreter's real path (a pyenv or conda shim in front of it costs ~0.1 s on every start).
_PROBE = (
    "import hashlib, sys\n"
    "print('.'.join(map(str, sys.version_info[:3])))\n"
    "try:\n"
    "    print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())\n"
    "except OSError:\n"
    "    print('-')\n"
    "print(sys.executable)\n"
)


@dataclass(frozen=True)
class GuardSettings:
    """How the guard watches: all in seconds; ``ports`` are the forwarded ones to watch."""

    idle_timeout: float
    stop_command: str
    ports: tuple[int, ...] = ()
    poll: float = 15.0
    gpu_busy_percent: int = 0


@dataclass(frozen=True)
class RemoteAgent:
    """The installed agent on the far end of ``connection``, in ``directory`` (absolute)."""

    connection: SshConnection
    directory: str
    version: str
    python: str = PYTHON  # the interpreter behind ``python3`` there, when it said

    @property
    def script_path(self) -> str:
        return f"{self.directory}/{SCRIPT_NAME}"

    @property
    def state_dir(self) -> str:
        return f"{self.directory}/{STATE_DIR}"

    def _run(self, *args: str, input: str | None = None) -> str:
        command = shlex.join([PYTHON, self.script_path, *args])
        result = self.connection.exec(command, input=input, timeout=COMMAND_TIMEOUT_SECONDS)
        if not result.ok:
            raise ContextError(
                f"the agent on {self.connection.target.display()} failed "
                f"({args[0]}, exit {result.exit_status}): "
                f"{(result.stderr_text or result.stdout_text).strip()[-300:]}",
                context=self.connection.context,
            )
        return result.stdout_text

    def start_guard(self, settings: GuardSettings) -> dict[str, object]:
        """Start the guard detached, or replace one running with other settings or code.

        Returns what the agent said: ``{"action": "started"|"replaced"|"unchanged", "pid": N}``.
        """
        out = self._run(
            "guard",
            "--state-dir",
            self.state_dir,
            "--idle-timeout",
            f"{settings.idle_timeout:g}",
            "--stop-command",
            settings.stop_command,
            "--ports",
            ",".join(str(p) for p in sorted(settings.ports)),
            "--poll",
            f"{settings.poll:g}",
            "--gpu-busy-percent",
            str(settings.gpu_busy_percent),
        )
        try:
            reported = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            reported = None
        if not isinstance(reported, dict) or "pid" not in reported:
            raise ContextError(
                f"the agent's guard on {self.connection.target.display()} did not start: "
                f"{out.strip()[-300:]!r}",
                context=self.connection.context,
            )
        log.info(
            "guard on %s: %s (pid %s)",
            self.connection.target.display(),
            reported.get("action"),
            reported.get("pid"),
        )
        return reported

    def watch_ports(self, ports: Iterable[int]) -> None:
        """Tell the running guard which forwarded ports count as use, without restarting it.

        Written to the state dir's ``ports`` file (atomically), which the guard reads each poll,
        so forwards opened and closed as apps come and go never reset its idle clock.
        """
        text = " ".join(str(p) for p in sorted(set(ports))) + "\n"
        folder = shlex.quote(self.state_dir)
        self.connection.exec(
            f"cd {folder} && cat > ports.tmp && mv -f ports.tmp ports",
            input=text,
            timeout=COMMAND_TIMEOUT_SECONDS,
        ).check()

    def heartbeat(self) -> AgentStatus:
        """Tell the guard the service is alive and holds a lease; returns its status."""
        return AgentStatus.parse(
            self._run("heartbeat", "--state-dir", self.state_dir),
            where=self.connection.target.display(),
        )

    def status(self) -> AgentStatus:
        return AgentStatus.parse(
            self._run("status", "--state-dir", self.state_dir),
            where=self.connection.target.display(),
        )


def _remote_dir(workbench_dir: str) -> str:
    """``<workbench_dir>/agent`` as a shell word, ``~`` expanded by the remote shell."""
    if workbench_dir == "~" or workbench_dir.startswith("~/"):
        return '"$HOME"' + shlex.quote(workbench_dir[1:] + "/" + AGENT_DIR)
    return shlex.quote(workbench_dir.rstrip("/") + "/" + AGENT_DIR)


def install_agent(
    connection: SshConnection, workbench_dir: str, script: AgentScript | None = None
) -> tuple[RemoteAgent, bool]:
    """Make sure ``script`` (default: the shipped agent) is the remote's agent.

    Returns the agent and whether it was copied (False: the remote already had this hash).
    """
    script = script or local_agent()
    where = connection.target.display()
    folder = _remote_dir(workbench_dir)
    probe = (
        f"mkdir -p {folder}/{STATE_DIR} && cd {folder} && pwd -P && "
        f"{PYTHON} -c {shlex.quote(_PROBE)} {SCRIPT_NAME}"
    )
    result = connection.exec(probe, timeout=COMMAND_TIMEOUT_SECONDS)
    lines = [line.strip() for line in result.stdout_text.splitlines()]
    if not result.ok or len(lines) < 3:
        said = (result.stderr_text or result.stdout_text).strip()
        missing = result.exit_status == 127 or ("python3" in said and "not found" in said)
        raise ContextError(
            f"cannot install the Workbench agent on {where}: "
            + ("python3 is not installed there" if missing else said[-300:] or "no answer"),
            context=connection.context,
            hint="the agent needs python3 (3.8 or newer) on the machine"
            if missing
            else "check that the SSH user may write to the context's workbench dir",
        )
    directory, python_version, installed = lines[0], lines[1], lines[2]
    if tuple(int(p) for p in python_version.split(".")[:2]) < MIN_PYTHON:
        raise ContextError(
            f"python3 on {where} is {python_version}; the Workbench agent needs 3.8 or newer",
            context=connection.context,
        )
    python = lines[3] if len(lines) > 3 and lines[3].startswith("/") else PYTHON
    agent = RemoteAgent(connection, directory, script.sha256, python)
    if installed == script.sha256:
        return agent, False
    _upload(connection, agent.script_path, script.data)
    log.info(
        "agent %s installed on %s (was %s)",
        script.sha256[:12],
        where,
        "absent" if installed == "-" else installed[:12],
    )
    return agent, True


def _upload(connection: SshConnection, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    sftp = connection.sftp()
    try:
        sftp.putfo(io.BytesIO(data), tmp, file_size=len(data), confirm=True)
        sftp.chmod(tmp, 0o755)
        try:
            sftp.posix_rename(tmp, path)
        except OSError:
            # A server without posix-rename@openssh.com: mv is atomic within one folder too.
            connection.exec(
                f"mv -f {shlex.quote(tmp)} {shlex.quote(path)}", timeout=COMMAND_TIMEOUT_SECONDS
            ).check()
    except OSError as exc:
        raise ContextError(
            f"cannot copy the Workbench agent to {connection.target.display()}:{path}: {exc}",
            context=connection.context,
        ) from exc
    finally:
        sftp.close()
