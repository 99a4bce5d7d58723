"""The ``brev`` context: a Brev instance driven through the ``brev`` CLI the user already has.

Status comes from ``brev ls --json``, lifecycle from ``brev start NAME`` / ``brev stop NAME``,
and the address from the ``Host NAME`` entry that ``brev refresh`` writes to
``~/.brev/ssh_config`` (Brev hands out a new IP after a restart, so it is read after each
start, never stored). An instance that can only be deleted is reported as not stoppable and
never stopped or deleted behind the user's back.

The kind also makes machines (``BrevProvisioner``): offers from ``brev gpu-search --json``,
``brev gpu-create --name NAME --type T1,T2 --detached`` (the types tried in order; with a disk
size, the types and ``target_disk_gb`` go as ``gpu-search``'s JSON on stdin, the only way the
CLI takes one), and ``brev delete NAME``, only when the user asks for it
(``nvwb delete context --delete-instance``).

Its host keys are pinned per instance (``HostKeyTrust.PER_INSTANCE``): Brev's ``ssh_config``
turns host key checking off and hands an address on to other instances, so a key is never pinned
by address, only into the context, the first time the instance is reached.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.errors import CommandFailed, ContextError, InvalidValueError
from workbench.kinds import Endpoint, FieldRule, HostKeyTrust, Kind, ProviderState, ProviderStatus
from workbench.kinds.provision import (
    Attempt,
    Created,
    CreateRequest,
    Offer,
    OfferQuery,
    Progress,
    capacity_error,
    make_offer,
)
from workbench.registry import Context

log = logging.getLogger(__name__)

LS_TIMEOUT_SECONDS = 60.0
LIFECYCLE_TIMEOUT_SECONDS = 300.0
CREATE_TIMEOUT_SECONDS = 900.0
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
_TRIED = re.compile(r"\[Worker \d+\] (\S+) Failed: (.*)")
_MADE = re.compile(r"\[Worker \d+\] (\S+) Success! Created instance '([^']+)'")
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
        # A machine Workbench created knows from its offer whether it can be stopped.
        record = context.created_instance or {}
        self._created_stoppable = record.get("stoppable") is not False
        self._stoppable = self._created_stoppable
        self._rate: float | None = None

    @property
    def always_on(self) -> bool:
        return False

    @property
    def can_stop(self) -> bool:
        return self._stoppable

    # -- the brev CLI ---------------------------------------------------------------------

    def _brev(self, *args: str, timeout: float) -> str:
        return run_brev(self._env, args, timeout=timeout, context=self.context.name)

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
        self._stoppable = self._created_stoppable and not any(
            entry.get(k) is False for k in ("stoppable", "is_stoppable")
        )
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


# -- the brev CLI -------------------------------------------------------------------------------


def brev_binary(env: Mapping[str, str], context: str | None = None) -> str:
    import shutil  # this module is imported by every `nvwb` start: only when used

    found = env.get("NVWB_BREV") or shutil.which("brev", path=env.get("PATH"))
    if not found:
        raise ContextError(
            "the 'brev' command was not found on PATH", context=context, hint=INSTALL_HINT
        )
    return found


def _failure(shown: str, code: int, out: str, err: str, context: str | None) -> Exception:
    said = (err + out).lower()
    if any(word in said for word in _LOGGED_OUT_WORDS):
        return ContextError(
            "the brev CLI is not logged in",
            context=context,
            hint="run 'brev login', then try again",
        )
    return CommandFailed(shown, code, err or out)


def run_brev(
    env: Mapping[str, str],
    args: tuple[str, ...] | list[str],
    *,
    timeout: float,
    context: str | None = None,
    input: str | None = None,
) -> str:
    """``brev ARGS``' standard output; ``CommandFailed`` (or "not logged in") when it fails.

    Standard input is ``input`` when given, else /dev/null: the real CLI reads instance types
    from a pipe, never from a terminal or a device."""
    import shlex
    import subprocess

    argv = [brev_binary(env, context), *args]
    shown = "brev " + shlex.join(args)
    log.info("context %s: %s", context or "-", shown)
    try:
        done = subprocess.run(
            argv,
            env=dict(env),
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ContextError(
            f"'{shown}' did not finish within {timeout:g} s", context=context
        ) from exc
    except OSError as exc:
        raise ContextError(
            f"cannot run '{shown}': {exc}", context=context, hint=INSTALL_HINT
        ) from exc
    if done.returncode != 0:
        failure = _failure(shown, done.returncode, done.stdout, done.stderr, context)
        if isinstance(failure, ContextError):
            raise failure from CommandFailed(shown, done.returncode, done.stderr)
        raise failure
    return done.stdout


def _number(value: float) -> str:
    return f"{value:g}"


class BrevProvisioner:
    """Brev's offers, and creating and deleting instances, through the ``brev`` CLI."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = dict(os.environ if env is None else env)

    def offers(self, query: OfferQuery) -> list[Offer]:
        args = ["gpu-search", "--json"]
        for flag, value in (
            ("--gpu-name", query.gpu_name),
            ("--provider", query.provider),
            ("--min-vram", query.min_vram),
            ("--min-total-vram", query.min_total_vram),
            ("--min-capability", query.min_capability),
            ("--min-disk", query.min_disk),
            ("--max-boot-time", query.max_boot_minutes),
        ):
            if value is not None and value != "":
                args += [flag, value if isinstance(value, str) else _number(value)]
        out = run_brev(self._env, args, timeout=LS_TIMEOUT_SECONDS)
        try:
            data = json.loads(out or "[]")
        except json.JSONDecodeError as exc:
            raise ContextError(
                f"'brev gpu-search --json' printed something unexpected: {out.strip()[:200]!r}",
                hint="update the Brev CLI; Workbench needs 'brev gpu-search --json'",
            ) from exc
        if data is None:
            return []
        if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
            raise ContextError("'brev gpu-search --json' did not print a list of offers")
        offers = []
        for number, entry in enumerate(data):
            try:
                offers.append(make_offer("brev", **entry))
            except InvalidValueError as exc:
                raise ContextError(
                    f"'brev gpu-search --json' printed offer {number + 1} "
                    f"({str(entry.get('type'))[:60]!r}) with a bad {exc.field}: {exc.reason}",
                    hint="update the Brev CLI or Workbench",
                ) from exc
            except TypeError as exc:  # a field missing
                raise ContextError(
                    f"'brev gpu-search --json' printed offer {number + 1} "
                    f"({str(entry.get('type'))[:60]!r}) that Workbench cannot read: {exc}",
                    hint="update the Brev CLI or Workbench",
                ) from exc
        return offers

    def create(self, request: CreateRequest, progress: Progress) -> Created:
        import shlex
        import subprocess

        if not request.types:
            # The real CLI picks types of its own without one: never let it choose what we pay.
            raise InvalidValueError("types", "at least one instance type is needed")
        args = ["gpu-create", "--name", request.name]
        stdin_text: str | None = None
        if request.disk_gb or request.disks:
            stdin_text = json.dumps(
                [
                    {"type": t, "target_disk_gb": request.disks.get(t, request.disk_gb)}
                    for t in request.types
                ]
            )
        else:
            args += ["--type", ",".join(request.types)]
        args.append("--detached")
        shown = "brev " + shlex.join(args)
        log.info("%s", shown)
        progress(f"asking Brev for {request.name}: {', '.join(request.types)}")
        try:
            process = subprocess.Popen(
                [brev_binary(self._env), *args],
                env=self._env,
                stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        except OSError as exc:
            raise ContextError(f"cannot run '{shown}': {exc}", hint=INSTALL_HINT) from exc
        if stdin_text is not None and process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.write(stdin_text)
            process.stdin.close()
        attempts: list[Attempt] = []
        made: tuple[str, str] | None = None
        said: list[str] = []
        assert process.stderr is not None and process.stdout is not None
        # Piped, the CLI logs each try on stderr as it goes, and prints the name on stdout.
        for raw in process.stderr:
            line = raw.rstrip()
            if not line:
                continue
            said.append(line)
            if tried := _TRIED.search(line):
                attempts.append(Attempt(tried.group(1), False, tried.group(2).strip()))
                progress(f"{tried.group(1)}: {tried.group(2).strip()}")
            elif success := _MADE.search(line):
                made = (success.group(1), success.group(2))
                attempts.append(Attempt(made[0], True))
                progress(f"{made[0]}: created {made[1]}")
        out = process.stdout.read()
        try:
            code = process.wait(timeout=CREATE_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired as exc:
            process.kill()
            process.wait()
            raise ContextError(f"'{shown}' did not finish in {CREATE_TIMEOUT_SECONDS:g} s") from exc
        if code != 0 or made is None:
            failure = _failure(shown, code, out, "\n".join(said), None)
            if isinstance(failure, ContextError):
                raise failure
            raise capacity_error(request.name, tuple(attempts), said[-1] if said else out.strip())
        names = out.split()
        return Created(instance=made[1] or (names[-1] if names else request.name), type=made[0],
                       attempts=tuple(attempts))  # fmt: skip

    def context_fields(self, created: Created) -> dict[str, Any]:
        return {"brev_instance_name": created.instance}

    def instance_of(self, context: Context) -> str:
        return context.brev_instance_name or context.name

    def delete(self, context: Context) -> None:
        instance = context.brev_instance_name
        if not instance:
            raise ContextError(
                f"context {context.name} names no Brev instance", context=context.name
            )
        run_brev(self._env, ["delete", instance], timeout=LIFECYCLE_TIMEOUT_SECONDS,
                 context=context.name)  # fmt: skip


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
    provisioner=BrevProvisioner,
    guard=True,
    trust=HostKeyTrust.PER_INSTANCE,
    host=lambda context: f"brev:{context.brev_instance_name}",
    order=20,
)
