"""The ``command`` context: any cloud VM driven by start, stop and status shell templates.

In the manner of DevPod's providers, a user who can start, stop and query a machine from a shell
(``aws ec2 start-instances ...``, ``gcloud compute instances stop ...``) gets auto-start and
verified auto-stop without Workbench knowing that cloud. Templates name context fields as
``{name}``, ``{hostname}``...; values are shell-quoted so a field cannot inject a command.
Secrets are referred to as ``$NAME`` and come from the environment the service runs in.
"""

from __future__ import annotations

import logging
import os
import shlex
import string
import subprocess
from collections.abc import Mapping

from contexts.base import PROVIDER_STATUSES, ProviderState, ProviderStatus, SshEndpoint
from workbench import osproc
from workbench.errors import CommandFailed, ContextError, InvalidValueError
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


def template_variables(ctx: Context) -> dict[str, str]:
    """The ``{...}`` names a template may use, from the context's own fields."""
    values = {
        "name": ctx.name,
        "context": ctx.name,
        "hostname": ctx.hostname,
        "ssh_username": ctx.ssh_username,
        "ssh_port": str(ctx.port) if ctx.ssh_port is not None else None,
        "ssh_key_path": ctx.ssh_key_path,
        "workbench_dir": ctx.workbench_dir,
    }
    return {k: v for k, v in values.items() if v is not None}


def render(template: str, ctx: Context, field: str) -> str:
    """Fill a template's ``{names}`` with shell-quoted values; an unknown name is an error."""
    values = template_variables(ctx)
    pieces: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InvalidValueError(field, f"is not a valid template: {exc}") from exc
    for literal, name, spec, conversion in parsed:
        pieces.append(literal)
        if name is None:
            continue
        if spec or conversion:
            raise InvalidValueError(field, f"'{{{name}}}' may not carry a format spec")
        if name not in values:
            known = ", ".join(sorted(values))
            raise InvalidValueError(
                field,
                f"uses '{{{name}}}', which this context does not have",
                hint=f"known: {known}; write '{{{{' for a literal brace",
            )
        pieces.append(shlex.quote(values[name]))
    return "".join(pieces)


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
        command = render(template, self.context, field)
        log.info("context %s: running %s: %s", self.context.name, field, command)
        try:
            done = subprocess.run(
                osproc.shell_argv(command),  # /bin/sh; sh from PATH on Windows
                env=self._env,
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
            raise CommandFailed(command, done.returncode, done.stderr)
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

    def ssh_endpoint(self) -> SshEndpoint | None:
        ctx = self.context
        if not ctx.hostname:
            return None
        return SshEndpoint(ctx.hostname, ctx.port, ctx.ssh_username, ctx.ssh_key_path)

    def hourly_rate(self) -> float | None:
        return None
