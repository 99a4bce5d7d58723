"""The ``command`` context: any cloud VM driven by start, stop and status shell templates.

In the manner of DevPod's providers, a user who can start, stop and query a machine from a shell
(``aws ec2 start-instances ...``, ``gcloud compute instances stop ...``) gets auto-start and
verified auto-stop without Workbench knowing that cloud. Templates name context fields as
``{name}``, ``{hostname}``...; a value never enters the command's text: it reaches the shell as an
environment variable referred to with the quoting the placeholder sits in
(``workbench.command_template``), so no value is ever read as shell. Secrets are referred to as
``$NAME`` and come from the environment the service runs in. Neither the template nor a value is
logged: the log and errors name the field that ran.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from workbench import command_template, osproc
from workbench.errors import CommandFailed, ContextError
from workbench.kinds import (
    PROVIDER_STATUSES,
    Endpoint,
    FieldRule,
    HostKeyTrust,
    Kind,
    ProviderState,
    ProviderStatus,
)
from workbench.registry import Context

log = logging.getLogger(__name__)

START_STOP_TIMEOUT_SECONDS = 600.0
STATUS_TIMEOUT_SECONDS = 60.0
# The words a status template may print (its last non-empty line), beyond the canonical ones.
_ALIASES: dict[str, ProviderStatus] = {
    "not-found": "notfound",
    "not_found": "notfound",
    "terminated": "notfound",
    "pending": "starting",
    "stopped": "stopped",
    "shutting-down": "stopping",
}


def render(template: str, ctx: Context, field: str) -> str:
    """The command ``/bin/sh -c`` runs for ``template``: placeholders are variable references."""
    return command_template.parse(template, field, ctx.template_values()).command


class CommandProvider:
    """A machine whose lifecycle is three shell commands."""

    def __init__(self, context: Context, env: Mapping[str, str] | None = None) -> None:
        self.context = context
        self._env = dict(os.environ if env is None else env)

    @property
    def always_on(self) -> bool:
        return False

    @property
    def can_stop(self) -> bool:
        return bool(self.context.stop_command)

    def _run(self, field: str, timeout: float) -> str:
        template = getattr(self.context, field)
        if not template:
            raise ContextError(
                f"context {self.context.name} has no {field}", context=self.context.name
            )
        import subprocess  # this module is imported by every `nvwb` start: only when used

        values = self.context.template_values()
        parsed = command_template.parse(template, field, values)
        # The field, never the command: a template or a value does not belong in service.log.
        log.info("context %s: running its %s", self.context.name, field)
        try:
            done = subprocess.run(
                osproc.shell_argv(parsed.command),  # /bin/sh; sh from PATH on Windows
                env={**self._env, **parsed.environment(values)},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ContextError(
                f"{field} of context {self.context.name} did not finish within {timeout:g} s",
                context=self.context.name,
            ) from exc
        except OSError as exc:
            raise ContextError(f"cannot run {field}: {exc}", context=self.context.name) from exc
        if done.returncode != 0:
            raise CommandFailed(
                f"{field} of context {self.context.name}", done.returncode, done.stderr
            )
        return done.stdout

    def status(self) -> ProviderState:
        out = self._run("status_command", STATUS_TIMEOUT_SECONDS)
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        word = lines[-1].lower() if lines else ""
        status = _ALIASES.get(word, word)
        if status not in PROVIDER_STATUSES or status in ("failed", "unknown"):
            raise ContextError(
                f"status_command of context {self.context.name} printed {word or 'nothing'!r}",
                context=self.context.name,
                hint="it must print one of running, stopped, starting, stopping, notfound",
            )
        return ProviderState(status, stoppable=self.can_stop)  # type: ignore[arg-type]

    def start(self) -> None:
        self._run("start_command", START_STOP_TIMEOUT_SECONDS)

    def stop(self) -> None:
        self._run("stop_command", START_STOP_TIMEOUT_SECONDS)

    def ssh_endpoint(self) -> Endpoint | None:
        return _endpoint(self.context)

    def hourly_rate(self) -> float | None:
        return None


def _endpoint(context: Context) -> Endpoint | None:
    """A machine with a ``hostname`` is reached there; without one it has no SSH."""
    if not context.hostname:
        return None
    return Endpoint(context.hostname, context.port, context.ssh_username, context.ssh_key_path)


KIND = Kind(
    name="command",
    title="Any cloud (start/stop commands)",
    summary="any cloud VM: your own `start`, `stop` and `status` shell commands, in the manner "
    "of DevPod providers",
    fields=(
        FieldRule("start_command", required=True),
        FieldRule("stop_command", required=True),
        FieldRule("status_command", required=True),
        FieldRule("hostname", help="where its SSH server is; without one it has no SSH"),
        FieldRule("ssh_username"),
        FieldRule("ssh_port"),
        FieldRule("ssh_key_path"),
    ),
    provider=CommandProvider,
    guard=True,
    trust=HostKeyTrust.KNOWN_HOSTS,
    static_endpoint=_endpoint,
    order=30,
)
