"""The ``brev`` context: a Brev instance driven through the ``brev`` CLI the user already has.

Status comes from ``brev ls --json``, lifecycle from ``brev start NAME`` / ``brev stop NAME``,
and the address from the ``Host NAME`` entry that ``brev refresh`` writes to
``~/.brev/ssh_config`` (Brev hands out a new IP after a restart, so it is read after each
start, never stored). Workbench never runs ``brev delete``: an instance that can only be deleted
is reported as not stoppable and left alone.

Its host keys are pinned per instance (``HostKeyTrust.PER_INSTANCE``): Brev's ``ssh_config``
turns host key checking off and hands an address on to other instances, so a key is never pinned
by address, only into the context, the first time the instance is reached.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.errors import CommandFailed, ContextError
from workbench.kinds import Endpoint, FieldRule, HostKeyTrust, Kind, ProviderState, ProviderStatus
from workbench.registry import Context

log = logging.getLogger(__name__)

LS_TIMEOUT_SECONDS = 60.0
LIFECYCLE_TIMEOUT_SECONDS = 300.0
INSTALL_HINT = "install the Brev CLI (https://docs.nvidia.com/brev) and run 'brev login'"

_STATUS: dict[str, ProviderStatus] = {
    "RUNNING": "running",
    "STOPPED": "stopped",
    "STARTING": "starting",
    "DEPLOYING": "starting",
    "CREATING": "starting",
    "STOPPING": "stopping",
    "FAILURE": "failed",
    "UNHEALTHY": "failed",
    "DELETING": "notfound",
    "DELETED": "notfound",
    "TERMINATED": "notfound",
}
_OPTION = re.compile(r"(\S+?)(?:\s*=\s*|\s+)(.*)")
_RATE_KEYS = ("hourly_price", "price_per_hour", "cost_per_hour")
_LOGGED_OUT_WORDS = ("login", "logged out", "not logged in", "unauthorized", "credentials")
_TERMINATE_ONLY_WORDS = (
    "does not support stop",
    "cannot be stopped",
    "only be deleted",
    "not stoppable",
)


class BrevProvider:
    """One Brev instance, named by the context's ``brev_instance_name``."""

    def __init__(self, context: Context, env: Mapping[str, str] | None = None) -> None:
        self.context = context
        self._env = dict(os.environ if env is None else env)
        assert context.brev_instance_name is not None  # the registry requires it
        self.instance = context.brev_instance_name
        self._stoppable = True
        self._rate: float | None = None

    @property
    def always_on(self) -> bool:
        return False

    @property
    def can_stop(self) -> bool:
        return self._stoppable

    # -- the brev CLI ---------------------------------------------------------------------

    def _binary(self) -> str:
        import shutil  # this module is imported by every `nvwb` start: only when used

        found = self._env.get("NVWB_BREV") or shutil.which("brev", path=self._env.get("PATH"))
        if not found:
            raise ContextError(
                "the 'brev' command was not found on PATH",
                context=self.context.name,
                hint=INSTALL_HINT,
            )
        return found

    def _brev(self, *args: str, timeout: float) -> str:
        argv = [self._binary(), *args]
        import shlex
        import subprocess

        shown = "brev " + shlex.join(args)
        log.info("context %s: %s", self.context.name, shown)
        try:
            done = subprocess.run(
                argv,
                env=self._env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ContextError(
                f"'{shown}' did not finish within {timeout:g} s", context=self.context.name
            ) from exc
        except OSError as exc:
            raise ContextError(
                f"cannot run '{shown}': {exc}", context=self.context.name, hint=INSTALL_HINT
            ) from exc
        if done.returncode != 0:
            said = (done.stderr + done.stdout).lower()
            if any(word in said for word in _LOGGED_OUT_WORDS):
                raise ContextError(
                    "the brev CLI is not logged in",
                    context=self.context.name,
                    hint="run 'brev login', then try again",
                ) from CommandFailed(shown, done.returncode, done.stderr)
            raise CommandFailed(shown, done.returncode, done.stderr or done.stdout)
        return done.stdout

    def _entries(self) -> list[dict[str, Any]]:
        out = self._brev("ls", "--json", timeout=LS_TIMEOUT_SECONDS)
        try:
            data = json.loads(out)
        except json.JSONDecodeError as exc:
            raise ContextError(
                f"'brev ls --json' printed something unexpected: {out.strip()[:200]!r}",
                context=self.context.name,
                hint="update the Brev CLI; Workbench needs 'brev ls --json'",
            ) from exc
        if isinstance(data, dict):
            data = data.get("workspaces", data.get("instances"))
        if data is None:
            return []
        if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
            raise ContextError(
                "'brev ls --json' did not print a list of instances",
                context=self.context.name,
            )
        return data

    # -- Provider -------------------------------------------------------------------------

    def status(self) -> ProviderState:
        entries = self._entries()
        entry = next((e for e in entries if e.get("name") == self.instance), None)
        if entry is None:
            entry = next((e for e in entries if e.get("id") == self.instance), None)
        if entry is None:
            return ProviderState("notfound", f"Brev has no instance named {self.instance}")
        self._stoppable = not any(entry.get(k) is False for k in ("stoppable", "is_stoppable"))
        for key in _RATE_KEYS:
            value = entry.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                self._rate = float(value)
        raw = str(entry.get("status", "")).upper()
        health = str(entry.get("health_status", "")).upper()
        status = _STATUS.get(raw)
        if status is None:
            return ProviderState(
                "unknown", f"Brev reports status {raw or 'nothing'!r}", stoppable=self._stoppable
            )
        message = "" if status == "running" else f"Brev reports {raw}"
        if status == "running" and health == "UNHEALTHY":
            message = "Brev reports the instance unhealthy"
        return ProviderState(status, message, stoppable=self._stoppable)

    def start(self) -> None:
        self._brev("start", self.instance, timeout=LIFECYCLE_TIMEOUT_SECONDS)

    def stop(self) -> None:
        try:
            self._brev("stop", self.instance, timeout=LIFECYCLE_TIMEOUT_SECONDS)
        except CommandFailed as exc:
            if any(word in exc.stderr.lower() for word in _TERMINATE_ONLY_WORDS):
                self._stoppable = False
                raise ContextError(
                    f"Brev instance {self.instance} cannot be stopped, only deleted",
                    context=self.context.name,
                    hint="Workbench never deletes instances; delete it with 'brev delete' "
                    "when you are done",
                ) from exc
            raise

    def ssh_endpoint(self) -> Endpoint | None:
        self._brev("refresh", timeout=LS_TIMEOUT_SECONDS)
        config = Path(self._env.get("HOME") or Path.home()) / ".brev" / "ssh_config"
        try:
            text = config.read_text(encoding="utf-8")
        except OSError as exc:
            raise ContextError(
                f"'brev refresh' left no readable {config}: {exc.strerror or exc}",
                context=self.context.name,
            ) from exc
        options = parse_host_entry(text, self.instance)
        if options is None or "hostname" not in options:
            raise ContextError(
                f"{config} has no 'Host {self.instance}' entry with a HostName",
                context=self.context.name,
                hint="run 'brev refresh' and check that the instance is running",
            )
        port_text = options.get("port", "22")
        try:
            port = int(port_text)
        except ValueError as exc:
            raise ContextError(
                f"{config}: bad Port {port_text!r} for {self.instance}", context=self.context.name
            ) from exc
        key = options.get("identityfile")
        return Endpoint(
            hostname=options["hostname"],
            port=port,
            username=self.context.ssh_username or options.get("user"),
            key_path=self.context.ssh_key_path or (os.path.expanduser(key) if key else None),
        )

    def hourly_rate(self) -> float | None:
        return self._rate


def parse_host_entry(text: str, host: str) -> dict[str, str] | None:
    """The options of the ``Host`` block naming exactly ``host`` (keys lower-cased), or None.

    Brev's file is simple (one name per ``Host`` line, no ``Match``), so a small reader is
    enough; values may be quoted, and ``Key=Value`` is accepted as OpenSSH does.
    """
    import shlex

    found: dict[str, str] | None = None
    current = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _OPTION.match(line)
        if match is None:
            continue
        key, value = match.group(1), match.group(2)
        key = key.lower()
        value = value.strip().strip('"')
        if key == "host":
            if found is not None:
                break
            current = host in shlex.split(value)
            if current:
                found = {}
            continue
        if key == "match":
            current = False
            continue
        if current and found is not None:
            found.setdefault(key, value)  # OpenSSH: the first value given wins
    return found


KIND = Kind(
    name="brev",
    title="Brev instance",
    summary="a Brev instance, started and stopped through the `brev` CLI; its address from "
    "`~/.brev/ssh_config`",
    # No hostname: the address comes from `brev refresh` (~/.brev/ssh_config); one typed here
    # would go stale the next time Brev hands out a new IP.
    fields=(
        FieldRule("brev_instance_name", required=True),
        FieldRule("ssh_username", help="else the `User` brev's ssh_config names"),
        FieldRule("ssh_port", form=False, help="not used: brev's ssh_config names the port"),
        FieldRule("ssh_key_path", help="else the `IdentityFile` brev's ssh_config names"),
    ),
    provider=BrevProvider,
    guard=True,
    trust=HostKeyTrust.PER_INSTANCE,
    host=lambda context: f"brev:{context.brev_instance_name}",
    order=20,
)
