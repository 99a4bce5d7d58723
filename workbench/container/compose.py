"""A project's compose services (the spec's ``environment.compose_file_path``) on its context.

Many NVIDIA example projects run sidecars (a NIM, a vector database) from a compose file beside
the project container. They run through the context's own Docker engine with Docker's own
compose: ``docker compose`` (the plugin) where the host has it, else ``docker-compose`` (the
standalone program, Debian's ``docker-compose`` package); a host with neither is told how to get
one (``ComposeMissing``). On a remote context the command runs on the host over the context's SSH
connection; the project's folder there is the synced copy.

What comes from the project is checked before use, as everything from a stranger's repository:

- the compose file is read on this machine (``compose_file``: through ``project_files``, a
  regular file inside the project, no symbolic link on the way, at most 1 MiB, YAML within
  ``yaml_limits``) and handed to compose on its standard input (``-f -``), so what runs is what
  was checked, never a file the remote or a link put in its place;
- service and profile names must be compose names (letters, digits, ``_.-``), so they are safe
  on a command line, in a label filter and in the app;
- the project's variables (``variables.env``) and secrets (the keyring) reach compose as the
  environment it interpolates the file with; on a remote host they are sent inside the script on
  the SSH channel's standard input (``sh -s``), never on a command line.

Secrets stay out of ``docker inspect`` (``docs/security.md``): before ``up`` the file is resolved
(``compose config``) with the secrets set, and if a secret's value would land in a service's
definition (its ``environment``, a label, a command: all of which the engine shows and stores)
the ``up`` is refused naming the service and the variable. Compose's own secrets
(``secrets: NAME: environment: NAME``, read in the container from ``/run/secrets/NAME``) keep the
value out of the container's definition. ``allow_secret_environment`` lets the user say
otherwise for one ``up``.

Status and logs come from the engine's API (the ``com.docker.compose.project`` label), the same
for both compose programs. ``down`` enables every profile the file names, then removes whatever
still carries the label, so no profile's service is left behind; closing the project calls it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets as random
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.container.compose_file import (
    COMPOSE_NAME,
    ComposeFile,
    compose_path,
    project_name,
    read_compose_file,
    secrets_in_definition,
)
from workbench.errors import CommandFailed, ContextError, InvalidValueError, UsageError

log = logging.getLogger(__name__)

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
PROBE_TIMEOUT_S = 60.0
ENGINES: tuple[tuple[str, ...], ...] = (("docker", "compose"), ("docker-compose",))
HOW_TO_GET = (
    "install Docker's compose plugin on that host (Docker's own packages: "
    "docker-compose-plugin; https://docs.docker.com/compose/install/), or the standalone "
    "docker-compose (Debian and Ubuntu: apt-get install docker-compose)"
)


class ComposeMissing(ContextError):
    """The context's host has neither ``docker compose`` nor ``docker-compose``."""

    code = "compose_missing"


class SecretInComposeDefinition(UsageError):
    """A secret's value would be part of a compose service's definition (``docker inspect``)."""

    code = "secret_in_compose"

    def __init__(self, variables: list[str], services: list[str]) -> None:
        super().__init__(
            f"the compose file would put the secret(s) {', '.join(variables)} into the "
            f"definition of service(s) {', '.join(services)}, which 'docker inspect' shows and "
            "the engine stores; nothing was started",
            hint="give them as compose secrets (top level 'secrets: NAME: environment: NAME', "
            "and 'secrets: [NAME]' in the service, read from /run/secrets/NAME), or, knowing "
            "what it shows, pass --secrets-in-environment",
        )
        self.variables = variables
        self.services = services

    def details(self) -> dict[str, Any]:
        return {**super().details(), "variables": self.variables, "services": self.services}


@dataclass(frozen=True)
class ServiceState:
    name: str
    state: str  # running | exited | created | ... | absent
    containers: tuple[str, ...] = ()
    health: str | None = None
    profiles: tuple[str, ...] = ()


class ComposeRunner:
    """Runs compose for one project on one context: locally, or on the host over SSH."""

    def __init__(
        self,
        *,
        docker: Any,
        name: str,
        project_dir: str,
        compose: ComposeFile,
        ssh: Any | None = None,
        local_env: Mapping[str, str] | None = None,
        context: str = "",
    ) -> None:
        self.docker = docker
        self.name = name
        self.project_dir = project_dir  # on the context's host
        self.compose = compose
        self.ssh = ssh
        self.local_env = dict(local_env or {})
        self.context = context
        self._engine: tuple[str, ...] | None = None

    # -- which compose -------------------------------------------------------------------

    def engine(self) -> tuple[str, ...]:
        """``("docker", "compose")`` or ``("docker-compose",)``: the first the host has."""
        if self._engine is not None:
            return self._engine
        for words in ENGINES:
            command = " ".join(words) + " version"
            if self.ssh is not None:
                result = self.ssh.exec(command, timeout=PROBE_TIMEOUT_S)
                ok = result.ok
            else:
                ok = (
                    shutil.which(words[0]) is not None
                    and _run_local([*words, "version"], env=self.local_env, timeout=60)[0] == 0
                )
            if ok:
                self._engine = words
                return words
        where = f"context '{self.context}'" if self.context else "this machine"
        raise ComposeMissing(
            f"{where} has no Docker compose (neither 'docker compose' nor 'docker-compose')",
            context=self.context or None,
            hint=HOW_TO_GET,
        )

    # -- commands ------------------------------------------------------------------------

    def up(
        self,
        profiles: Sequence[str],
        variables: Mapping[str, str],
        secrets: Mapping[str, str],
        *,
        allow_secret_environment: bool = False,
    ) -> None:
        """``up -d`` with ``profiles``; refused first if a secret would be in a definition."""
        for profile in profiles:
            if profile not in self.compose.profiles:
                known = ", ".join(self.compose.profiles) or "none"
                raise InvalidValueError(
                    "--profile", f"{profile!r} is not a profile of the compose file (its: {known})"
                )
        if secrets and not allow_secret_environment:
            resolved = self._run(["config"], profiles, variables, secrets).strip()
            found = secrets_in_definition(resolved, secrets)
            if found:
                raise SecretInComposeDefinition(
                    sorted(found), sorted({svc for svcs in found.values() for svc in svcs})
                )
        self._run(["up", "-d", "--remove-orphans"], profiles, variables, secrets)

    def down(self, variables: Mapping[str, str], secrets: Mapping[str, str]) -> None:
        """Stop and remove every service of the file, whatever its profile, and its network."""
        with contextlib.suppress(ComposeMissing):
            self._run(["down", "--remove-orphans"], self.compose.profiles, variables, secrets)
        # What compose left (a service renamed in the file since it was started): by label.
        for container in self._containers():
            with contextlib.suppress(Exception):
                container.remove(force=True)
        with contextlib.suppress(Exception):
            for network in self.docker.networks.list(filters={"label": self._label()}):
                with contextlib.suppress(Exception):
                    network.remove()

    def status_any(self) -> bool:
        """Whether any container of the project's compose services exists, running or not."""
        return bool(self._containers())

    def status(self) -> list[ServiceState]:
        """Each service of the file with its container's state (``absent`` when none)."""
        by_service: dict[str, list[Any]] = {}
        for container in self._containers():
            service = (container.labels or {}).get(LABEL_SERVICE, "")
            by_service.setdefault(service, []).append(container)
        rows = []
        for name in self.compose.services:
            found = by_service.pop(name, [])
            rows.append(self._row(name, found))
        for name, found in sorted(by_service.items()):  # no longer in the file
            if COMPOSE_NAME.fullmatch(name):
                rows.append(self._row(name, found))
        return rows

    def logs(self, service: str | None, tail: int | None) -> str:
        """The output of ``service``'s containers (every service's, prefixed, without one)."""
        if service is not None and service not in self.compose.services:
            raise InvalidValueError("service", f"{service!r} is not a service of the compose file")
        parts = []
        for container in self._containers(service):
            raw = container.logs(tail=tail if tail else "all", timestamps=False)
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            if service is None:
                label = (container.labels or {}).get(LABEL_SERVICE, "?")
                text = "".join(f"{label} | {line}\n" for line in text.splitlines())
            parts.append(text)
        return "".join(parts)

    # -- internals -----------------------------------------------------------------------

    def _label(self) -> str:
        return f"{LABEL_PROJECT}={self.name}"

    def _containers(self, service: str | None = None) -> list[Any]:
        labels = [self._label()]
        if service is not None:
            labels.append(f"{LABEL_SERVICE}={service}")
        return list(self.docker.containers.list(all=True, filters={"label": labels}))

    def _row(self, name: str, containers: list[Any]) -> ServiceState:
        profiles = tuple(self.compose.service_profiles.get(name, ()))
        if not containers:
            return ServiceState(name, "absent", profiles=profiles)
        states = [str(c.status) for c in containers]
        state = "running" if "running" in states else states[0]
        health = None
        with contextlib.suppress(Exception):
            health = (containers[0].attrs.get("State") or {}).get("Health", {}).get("Status")
        return ServiceState(name, state, tuple(c.name for c in containers), health, profiles)

    def _argv(self, command: Sequence[str], profiles: Sequence[str]) -> list[str]:
        folder = self.project_dir.rstrip("/")
        if self.compose.folder:
            folder = f"{folder}/{self.compose.folder}"
        argv = [*self.engine(), "-p", self.name, "-f", "-", "--project-directory", folder]
        for profile in profiles:
            argv += ["--profile", profile]
        return argv + list(command)

    def _run(
        self,
        command: Sequence[str],
        profiles: Sequence[str],
        variables: Mapping[str, str],
        secrets: Mapping[str, str],
    ) -> str:
        argv = self._argv(command, profiles)
        environment = {**variables, **secrets}
        shown = " ".join(["compose", *command])
        if self.ssh is None:
            code, out, err = _run_local(
                argv, env={**self.local_env, **environment}, stdin=self.compose.text
            )
        else:
            result = self.ssh.exec("sh -s", input=_script(argv, environment, self.compose.text))
            code, out, err = result.exit_status, result.stdout_text, result.stderr_text
        if code != 0:
            raise CommandFailed(shown, code, _scrub(err or out, secrets))
        return out


def runner_for(session: Any) -> ComposeRunner | None:
    """The compose runner of a ``ProjectSession``, or None when its spec names no compose file."""
    relative = compose_path(session.spec)
    if not relative:
        return None
    return ComposeRunner(
        docker=session.runtime.docker,
        name=project_name(session.key),
        project_dir=session.project_source(),
        compose=read_compose_file(session.project.path, relative),
        ssh=session.runtime.ssh,
        local_env=session.env,
        context=session.runtime.name,
    )


def _script(argv: Sequence[str], environment: Mapping[str, str], text: str) -> str:
    """A ``sh -s`` script: the environment exported (values never on a command line), then
    compose with the file as a here-document under a delimiter the file does not hold."""
    lines = ["set -e"]
    for name, value in environment.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise InvalidValueError("variable", f"{name!r} is not a variable name")
        lines.append(f"export {name}={shlex.quote(value)}")
    delimiter = "NVWB_COMPOSE_" + random.token_hex(8)
    while delimiter in text:
        delimiter = "NVWB_COMPOSE_" + random.token_hex(8)
    body = text if text.endswith("\n") else text + "\n"
    command = " ".join(shlex.quote(word) for word in argv)
    return "\n".join(lines) + f"\nexec {command} <<'{delimiter}'\n{body}{delimiter}\n"


def _run_local(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: str | None = None,
    timeout: float | None = None,
) -> tuple[int, str, str]:
    """Run compose here; ``timeout`` None: as long as it takes (``up`` may pull large images)."""
    try:
        done = subprocess.run(
            list(argv),
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=dict(env),
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        return 127, "", f"{argv[0]}: not found"
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {timeout or 0:g} s"
    return done.returncode, done.stdout, done.stderr


def _scrub(text: str, secrets: Mapping[str, str]) -> str:
    """Compose's error text with every secret it was given replaced (an error may quote one)."""
    for value in sorted(secrets.values(), key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text.strip()[-2000:]
