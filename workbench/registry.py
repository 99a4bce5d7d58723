"""The contexts registry: where projects can run, kept in ``contexts.json`` in the config dir.

Every client (the CLI, the app, the service) reads this file, and ``nvwb list contexts`` must start
in well under 150 ms, so this module uses only the standard library: frozen dataclasses with
explicit validation, no pydantic. Secrets never land here; they live in the OS keyring
(``workbench.secrets``), and a guard refuses anything that looks like one.

The file's JSON shape is documented in ``docs/contexts.md``.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final, cast

from workbench import command_template, osproc, values
from workbench.errors import (
    AlreadyExistsError,
    InvalidValueError,
    NotFoundError,
    WorkbenchError,
)
from workbench.kinds import fields as kind_fields
from workbench.kinds.base import Kind
from workbench.kinds.fields import CATALOGUE, SHARED, rules_of
from workbench.kinds.registry import kind_named
from workbench.names import check_name
from workbench.paths import Paths, atomic_write_text, private_dir

log = logging.getLogger(__name__)

FILE_VERSION: Final = 1
LOCAL_CONTEXT: Final = "local"
DEFAULT_WORKBENCH_DIR: Final = "~/.nvwb"
DEFAULT_IDLE_TIMEOUT_MINUTES: Final = 30
DEFAULT_GRACE_PERIOD_SECONDS: Final = 60
DEFAULT_SSH_PORT: Final = 22
# The agent's guard runs this on the remote when nobody has used it for the idle timeout.
DEFAULT_IDLE_STOP_COMMAND: Final = kind_fields.DEFAULT_IDLE_STOP_COMMAND

# Command templates: run by the service through /bin/sh (``command_template``).
_COMMAND_FIELDS: Final = ("start_command", "stop_command", "status_command")
# Fields `update()` must not change: the name is the key, and a kind change would silently
# reinterpret every other field.
_IMMUTABLE_FIELDS: Final = ("name", "kind", "created_at")

# Patterns stay strings, compiled (and cached by `re`) on first use: compiling them all at import
# would cost every CLI start a few milliseconds for fields most contexts never set.
_SECRET_WORDS: Final = (
    r"(?i)pass(word|wd|phrase)?|token|secret|api[_-]?key|private[_-]?key|credential"
)
_HOSTNAME: Final = r"[A-Za-z0-9_:\[][A-Za-z0-9_.:%\[\]-]*"  # names, IPv4, IPv6; no leading '-'
_USERNAME: Final = r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?"
_HOST_KEY: Final = r"SHA256:[A-Za-z0-9+/]{43}=?"
_SCHEDULER_NAME: Final = r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}"  # partitions, accounts, QOS


def _now_iso() -> str:
    # time.strftime, not datetime: datetime adds a few ms to every CLI start.
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def looks_like_secret_key(key: str) -> bool:
    """Whether a field or mapping key is named like a secret (password, token, ...)."""
    return re.search(_SECRET_WORDS, key) is not None


@dataclass(frozen=True, slots=True)
class Context:
    """One place a project can run. Immutable: change it with ``Registry.update``.

    ``host_mount_sources`` maps a mount's container target (``/data/models/``) to the folder on
    this context's host that backs it. ``gpus`` holds what ``nvidia-smi`` reported the last time
    the context was probed, one dict per GPU. ``created_instance`` records the machine Workbench
    created for this context (``nvwb create context --brev-create``): its type, provider, price,
    whether it can be stopped, the types tried; None for a machine made elsewhere.
    """

    name: str
    kind: str
    description: str = ""
    hostname: str | None = None
    ssh_username: str | None = None
    ssh_port: int | None = None
    ssh_key_path: str | None = None
    workbench_dir: str = DEFAULT_WORKBENCH_DIR
    brev_instance_name: str | None = None
    start_command: str | None = None
    stop_command: str | None = None
    status_command: str | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gpus_per_node: int | None = None
    nodes: int | None = None
    time_limit: str | None = None
    hourly_rate: float | None = None
    idle_timeout_minutes: int = DEFAULT_IDLE_TIMEOUT_MINUTES
    idle_gpu_busy_percent: int = 0
    grace_period_seconds: int = DEFAULT_GRACE_PERIOD_SECONDS
    host_mount_sources: dict[str, str] = field(default_factory=dict)
    gpus: list[dict[str, Any]] = field(default_factory=list)
    accepted_host_key: str | None = None
    stop_command_on_idle: str | None = None
    created_instance: dict[str, Any] | None = None
    created_at: str = field(default_factory=_now_iso)

    FIELD_NAMES: ClassVar[tuple[str, ...]]

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def is_remote(self) -> bool:
        """Reached over SSH (every kind but ``local``)."""
        return kind_named(self.kind).remote

    @property
    def port(self) -> int:
        """The SSH port to dial: the stored one, else 22."""
        return self.ssh_port if self.ssh_port is not None else DEFAULT_SSH_PORT

    def template_values(self) -> dict[str, str]:
        """What a command template's placeholders stand for here (``{name}``, ``{hostname}``...);
        a field that is not set has no placeholder."""
        fields = {
            "name": self.name,
            "context": self.name,
            "hostname": self.hostname,
            "ssh_username": self.ssh_username,
            "ssh_port": str(self.ssh_port) if self.ssh_port is not None else None,
            "ssh_key_path": self.ssh_key_path,
            "workbench_dir": self.workbench_dir,
        }
        return {k: v for k, v in fields.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape (``docs/contexts.md``): every field, in declaration order."""
        data: dict[str, Any] = {}
        for name in Context.FIELD_NAMES:
            value = getattr(self, name)
            if isinstance(value, dict):
                value = dict(value)
            elif isinstance(value, list):
                value = [dict(item) for item in value]
            data[name] = value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "") -> Context:
        """Build and validate a context from its JSON shape; unknown keys are refused."""
        prefix = f"{where}." if where else ""
        if not isinstance(data, Mapping):
            raise InvalidValueError(where or "context", "must be a JSON object")
        unknown = [key for key in data if key not in Context.FIELD_NAMES]
        if unknown:
            key = unknown[0]
            raise InvalidValueError(
                f"{prefix}{key}", "unknown field", hint=_secret_hint(key) or _fields_hint()
            )
        for required in ("name", "kind"):
            if required not in data:
                raise InvalidValueError(f"{prefix}{required}", "is required")
        kwargs = dict(data)
        if isinstance(kwargs.get("host_mount_sources"), Mapping):
            kwargs["host_mount_sources"] = dict(kwargs["host_mount_sources"])
        if isinstance(kwargs.get("created_instance"), Mapping):
            kwargs["created_instance"] = dict(kwargs["created_instance"])
        if isinstance(kwargs.get("gpus"), list):
            kwargs["gpus"] = [dict(g) if isinstance(g, Mapping) else g for g in kwargs["gpus"]]
        if kwargs.get("created_at") is None:
            kwargs.pop("created_at", None)
        try:
            return cls(**kwargs)
        except InvalidValueError as exc:
            if not prefix:
                raise
            raise InvalidValueError(f"{prefix}{exc.field}", exc.reason, hint=exc.hint) from exc


Context.FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Context))
# What a field holds when it is not set (None, or 0 for idle_gpu_busy_percent).
_UNSET: Final[dict[str, Any]] = {
    f.name: f.default for f in dataclasses.fields(Context) if f.default is not dataclasses.MISSING
}


def _fields_hint() -> str:
    return "known fields: " + ", ".join(Context.FIELD_NAMES)


def _secret_hint(key: str) -> str | None:
    if looks_like_secret_key(key):
        return "secrets never go in contexts.json; Workbench keeps them in the OS keyring"
    return None


def _set(ctx: Context, name: str, value: Any) -> None:
    # Normalising defaults inside a frozen dataclass's __post_init__.
    object.__setattr__(ctx, name, value)


def _validate(ctx: Context) -> None:
    """Check every field and the kind's rules; raise ``InvalidValueError`` naming the field."""
    if not isinstance(ctx.name, str):
        raise InvalidValueError("name", "must be a string")
    check_name("name", ctx.name)
    if not isinstance(ctx.kind, str):
        raise InvalidValueError("kind", f"must be a string, not {type(ctx.kind).__name__}")
    kind = kind_named(ctx.kind)
    for name in (
        "hostname",
        "ssh_username",
        "ssh_key_path",
        "brev_instance_name",
        "start_command",
        "stop_command",
        "status_command",
        "partition",
        "account",
        "qos",
        "time_limit",
        "accepted_host_key",
        "stop_command_on_idle",
    ):
        value = getattr(ctx, name)
        if value is None:
            continue
        _check_str(name, value, allow_empty=False)
        if value != value.strip():
            _set(ctx, name, value.strip())
    _check_str("description", ctx.description, allow_empty=True)
    _check_str("workbench_dir", ctx.workbench_dir, allow_empty=False)
    _check_str("created_at", ctx.created_at, allow_empty=False)

    if ctx.hostname is not None and not re.fullmatch(_HOSTNAME, ctx.hostname):
        raise InvalidValueError("hostname", f"{ctx.hostname!r} is not a host name or address")
    if ctx.ssh_username is not None and not re.fullmatch(_USERNAME, ctx.ssh_username):
        raise InvalidValueError("ssh_username", f"{ctx.ssh_username!r} is not a user name")
    if ctx.brev_instance_name is not None:
        check_name("brev_instance_name", ctx.brev_instance_name)
    if ctx.ssh_port is not None:
        values.PORT.check("ssh_port", ctx.ssh_port)
    for name in ("partition", "account", "qos"):
        value = getattr(ctx, name)
        if value is not None and not re.fullmatch(_SCHEDULER_NAME, value):
            raise InvalidValueError(
                name,
                f"{value!r} is not a Slurm {name} name",
                hint="letters, digits, '_', '.', '+' and '-', not starting with '-'",
            )
    if ctx.gpus_per_node is not None:
        values.GPUS_PER_NODE.check("gpus_per_node", ctx.gpus_per_node)
    if ctx.nodes is not None:
        values.NODES.check("nodes", ctx.nodes)
    if ctx.time_limit is not None:
        values.TIME_LIMIT.check("time_limit", ctx.time_limit)
    if ctx.accepted_host_key is not None and not re.fullmatch(_HOST_KEY, ctx.accepted_host_key):
        raise InvalidValueError(
            "accepted_host_key",
            f"{ctx.accepted_host_key!r} is not an SSH key fingerprint",
            hint="expected SHA256: followed by 43 base64 characters, as 'ssh-keygen -lf' prints",
        )
    _check_rate(ctx)
    values.IDLE_TIMEOUT_MINUTES.check("idle_timeout_minutes", ctx.idle_timeout_minutes)
    values.GRACE_PERIOD_SECONDS.check("grace_period_seconds", ctx.grace_period_seconds)
    values.GPU_BUSY_PERCENT.check("idle_gpu_busy_percent", ctx.idle_gpu_busy_percent)
    _check_mounts(ctx.host_mount_sources)
    _check_gpus(ctx.gpus)
    _check_created_instance(ctx.created_instance)
    _check_kind_rules(ctx, kind)
    _check_commands(ctx)


def _check_commands(ctx: Context) -> None:
    """Templates parse, name only placeholders this context has, and hold no literal secret."""
    available = ctx.template_values()
    for name in (*_COMMAND_FIELDS, "stop_command_on_idle"):
        value = getattr(ctx, name)
        if value is None:
            continue
        # The idle stop command runs on the remote as it is written: it is not a template.
        command = (
            command_template.parse(value, name, available).command
            if name in _COMMAND_FIELDS
            else value
        )
        found = command_template.literal_secret(command)
        if found:
            raise InvalidValueError(
                name,
                f"looks like it holds a secret typed in literally: it {found}",
                hint="keep the secret in the OS keyring or the environment and refer to it as "
                "$NAME",
            )


def _check_kind_rules(ctx: Context, kind: Kind) -> None:
    """The kind's declaration: fields it does not take are unset, required ones are set, and
    defaults fill what is left empty; then the kind's own ``check``."""
    rules = rules_of(kind)
    taken = {rule.name for rule in rules}
    for info in CATALOGUE:
        name = info.name
        if name in SHARED or name in taken or getattr(ctx, name) == _UNSET[name]:
            continue
        raise InvalidValueError(
            name,
            f"does not apply to {kind.a_context}" + (f": {info.unused}" if info.unused else ""),
        )
    for rule in rules:
        if rule.required and getattr(ctx, rule.name) is None:
            raise InvalidValueError(rule.name, f"is required for {kind.a_context}")
    for rule in rules:
        if rule.default is not None and getattr(ctx, rule.name) is None:
            default = rule.default
            if isinstance(default, str):
                default = default.replace("{name}", ctx.name)  # a default of its own per context
            _set(ctx, rule.name, default)
    kind.check(ctx)


def _check_str(name: str, value: object, *, allow_empty: bool) -> str:
    if not isinstance(value, str):
        raise InvalidValueError(name, f"must be a string, not {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise InvalidValueError(name, "must not be empty")
    if "\n" in value or "\r" in value or "\x00" in value:
        raise InvalidValueError(name, "must be a single line")
    return value


def _check_rate(ctx: Context) -> None:
    rate = ctx.hourly_rate
    if rate is None:
        return
    checked = values.HOURLY_RATE.check("hourly_rate", rate)
    if isinstance(rate, int):
        _set(ctx, "hourly_rate", checked)


def _check_mounts(mounts: object) -> None:
    if not isinstance(mounts, dict):
        raise InvalidValueError("host_mount_sources", "must map container targets to host paths")
    for target, source in mounts.items():
        where = f"host_mount_sources.{target}"
        if not isinstance(target, str) or not target.startswith("/"):
            raise InvalidValueError(where, "the mount target must be an absolute container path")
        _check_str(where, source, allow_empty=False)


def _check_gpus(gpus: object) -> None:
    if not isinstance(gpus, list):
        raise InvalidValueError("gpus", "must be a list of objects")
    for index, gpu in enumerate(gpus):
        if not isinstance(gpu, dict) or not all(isinstance(k, str) for k in gpu):
            raise InvalidValueError(f"gpus[{index}]", "must be an object with string keys")
        for key in gpu:
            if looks_like_secret_key(key):
                raise InvalidValueError(
                    f"gpus[{index}].{key}", "is named like a secret", hint=_secret_hint(key)
                )


def _check_created_instance(record: object) -> None:
    """A record of JSON values under plain keys, none named like a secret."""
    if record is None:
        return
    if not isinstance(record, dict) or not all(isinstance(k, str) for k in record):
        raise InvalidValueError("created_instance", "must be an object with string keys")
    for key, value in record.items():
        where = f"created_instance.{key}"
        if looks_like_secret_key(key):
            raise InvalidValueError(where, "is named like a secret", hint=_secret_hint(key))
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise InvalidValueError(where, "must be a JSON value") from None


class ContextsFileError(WorkbenchError):
    """``contexts.json`` exists but cannot be used: corrupt JSON, a newer version, a bad entry."""

    exit_code = 3
    code = "contexts_file"

    def __init__(
        self,
        file: Path,
        message: str,
        *,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = f"{file}:{line}" if line is not None else str(file)
        text = f"{field}: {message}" if field else message
        super().__init__(f"{where}: {text}", hint=hint)
        self.file = str(file)
        self.line = line
        self.field = field
        self.reason = message

    def details(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "reason": self.reason}


def local_context() -> Context:
    return Context(name=LOCAL_CONTEXT, kind="local", description="This machine's Docker engine")


class Registry:
    """The contexts in ``contexts.json``, loaded into memory; ``save()`` writes them back.

    For read-modify-write from processes that may race (the CLI and the service), use
    ``Registry.locked(paths)``, which holds an exclusive lock from load to save.
    """

    def __init__(self, paths: Paths, contexts: Mapping[str, Context]) -> None:
        self.paths = paths
        self._contexts: dict[str, Context] = dict(contexts)
        if LOCAL_CONTEXT not in self._contexts:
            self._contexts[LOCAL_CONTEXT] = local_context()

    @property
    def file(self) -> Path:
        return self.paths.contexts_file

    @classmethod
    def load(cls, paths: Paths) -> Registry:
        """Read ``contexts.json``; on first use create it holding just the ``local`` context."""
        file = paths.contexts_file
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            registry = cls(paths, {})
            try:
                registry.save()
            except OSError as exc:
                # Listing contexts must still work from a read-only config dir.
                log.warning("could not create %s: %s", file, exc)
            return registry
        except OSError as exc:
            raise ContextsFileError(file, f"cannot be read: {exc.strerror or exc}") from exc
        return cls(paths, _parse(file, text))

    @classmethod
    @contextmanager
    def locked(cls, paths: Paths) -> Iterator[Registry]:
        """Load under an exclusive lock, yield, and save if the block ends without an error."""
        private_dir(paths.config_dir)
        lock_file = paths.contexts_file.with_name(paths.contexts_file.name + ".lock")
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            osproc.lock_fd(fd)
            registry = cls.load(paths)
            yield registry
            registry.save()
        finally:
            osproc.close_locked(fd)

    def list(self) -> list[Context]:
        """Every context, ``local`` first, the rest by name."""
        return sorted(self._contexts.values(), key=lambda c: (c.name != LOCAL_CONTEXT, c.name))

    def names(self) -> builtins.list[str]:
        return [c.name for c in self.list()]

    def __contains__(self, name: object) -> bool:
        return name in self._contexts

    def get(self, name: str) -> Context:
        try:
            return self._contexts[name]
        except KeyError:
            raise NotFoundError(
                "context", name, hint="'nvwb list contexts' shows the ones there are"
            ) from None

    def create(self, ctx: Context) -> Context:
        if ctx.name in self._contexts:
            raise AlreadyExistsError("context", ctx.name)
        if kind_named(ctx.kind).builtin:
            # One Docker engine per machine: a second local context would only be an alias.
            raise InvalidValueError(
                "kind",
                f"only the built-in '{LOCAL_CONTEXT}' context is of kind {ctx.kind}",
                hint=f"use '{LOCAL_CONTEXT}'",
            )
        self._contexts[ctx.name] = ctx
        log.info("created context %s (%s)", ctx.name, ctx.kind)
        return ctx

    def update(self, name: str, **changes: Any) -> Context:
        """Change some fields of a context; the result is validated as a whole."""
        current = self.get(name)
        for key in changes:
            if key not in Context.FIELD_NAMES:
                raise InvalidValueError(
                    key, "unknown field", hint=_secret_hint(key) or _fields_hint()
                )
            if key in _IMMUTABLE_FIELDS:
                raise InvalidValueError(key, "cannot be changed; delete and create the context")
        merged = current.to_dict()
        merged.update(changes)
        if "stop_command_on_idle" not in changes and (
            current.stop_command_on_idle == DEFAULT_IDLE_STOP_COMMAND
        ):
            # Keep following the default rather than freezing today's default into the entry.
            merged["stop_command_on_idle"] = None
        updated = Context.from_dict(merged)
        self._contexts[name] = updated
        log.info("updated context %s: %s", name, ", ".join(sorted(changes)))
        return updated

    def replace(self, ctx: Context) -> Context:
        """Store ``ctx`` over the existing context of that name (which must exist)."""
        self.get(ctx.name)
        self._contexts[ctx.name] = ctx
        return ctx

    def delete(self, name: str) -> Context:
        if name == LOCAL_CONTEXT:
            raise InvalidValueError("name", "the 'local' context is built in and cannot be deleted")
        ctx = self.get(name)
        del self._contexts[name]
        log.info("deleted context %s", name)
        return ctx

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FILE_VERSION,
            "contexts": {c.name: c.to_dict() for c in self.list()},
        }

    def save(self) -> None:
        """Write atomically with mode 0600, after a last check that no secret slipped in."""
        data = self.to_dict()
        _refuse_secrets(data)
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        atomic_write_text(self.file, text, mode=0o600)


def record_host_key(paths: Paths, name: str, fingerprint: str) -> Context:
    """Pin ``fingerprint`` as context ``name``'s ``accepted_host_key`` unless one is pinned
    already (on first use, the first key seen wins a race); returns the context as it now is."""
    with Registry.locked(paths) as registry:
        current = registry.get(name)
        if current.accepted_host_key is None:
            current = registry.update(name, accepted_host_key=fingerprint)
            log.info("context %s: host key %s pinned", name, fingerprint)
    return current


def _refuse_secrets(data: Mapping[str, Any]) -> None:
    """A last look before writing: no field, and no key inside ``gpus``, named like a secret.

    Mount targets are container paths chosen by projects, not field names, so they are exempt.
    """
    for name, entry in data["contexts"].items():
        for key, value in entry.items():
            where = f"contexts.{name}.{key}"
            if looks_like_secret_key(key):
                raise InvalidValueError(where, "is named like a secret", hint=_secret_hint(key))
            if key == "gpus":
                for index, gpu in enumerate(value):
                    for gpu_key in gpu:
                        if looks_like_secret_key(gpu_key):
                            raise InvalidValueError(
                                f"{where}[{index}].{gpu_key}",
                                "is named like a secret",
                                hint=_secret_hint(gpu_key),
                            )


def _parse(file: Path, text: str) -> dict[str, Context]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContextsFileError(
            file,
            f"is not valid JSON: {exc.msg} (column {exc.colno})",
            line=exc.lineno,
            hint="fix or remove the file; 'nvwb' recreates it with just the local context",
        ) from exc
    if not isinstance(data, dict):
        raise ContextsFileError(file, "must hold a JSON object")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ContextsFileError(file, "missing or bad 'version'", field="version")
    if version > FILE_VERSION:
        raise ContextsFileError(
            file,
            f"was written by a newer Workbench (version {version}, this one reads {FILE_VERSION})",
            field="version",
            hint="upgrade Workbench",
        )
    entries = data.get("contexts", {})
    if not isinstance(entries, dict):
        raise ContextsFileError(file, "must be an object of contexts by name", field="contexts")
    contexts: dict[str, Context] = {}
    for key, entry in entries.items():
        where = f"contexts.{key}"
        if isinstance(entry, dict) and entry.get("name", key) != key:
            raise ContextsFileError(file, "does not match its key", field=f"{where}.name")
        try:
            entry_dict = cast(dict[str, Any], entry)
            contexts[key] = Context.from_dict({"name": key, **entry_dict}, where=where)
        except TypeError as exc:
            raise ContextsFileError(file, "must be an object", field=where) from exc
        except InvalidValueError as exc:
            raise ContextsFileError(file, exc.reason, field=exc.field, hint=exc.hint) from exc
    local = contexts.get(LOCAL_CONTEXT)
    if local is not None and local.kind != "local":
        raise ContextsFileError(
            file, "the name 'local' is reserved for this machine", field="contexts.local.kind"
        )
    return contexts
