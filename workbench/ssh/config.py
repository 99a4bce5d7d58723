"""Where to connect: an ``SshTarget`` resolved from ``~/.ssh/config`` and a context's own values.

A user who already reaches a machine with ``ssh box`` should be able to name ``box`` and nothing
else, so HostName, Port, User, IdentityFile, ProxyJump and ProxyCommand are read from their SSH
config (through ``paramiko.SSHConfig``); values stored with the context win over the config.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko

from workbench import osproc
from workbench.errors import InvalidValueError

logger = logging.getLogger(__name__)

DEFAULT_PORT = 22


@dataclass(frozen=True)
class SshTarget:
    """One SSH destination, fully resolved. ``alias`` is the name the user gave, if any."""

    host: str
    port: int = DEFAULT_PORT
    user: str = field(default_factory=lambda: osproc.login_name({}))
    key_paths: tuple[Path, ...] = ()
    proxy_command: str | None = None
    proxy_jump: str | None = None
    alias: str | None = None
    host_key_alias: str | None = None
    # The first hop, already resolved (a cluster's login node): wins over ``proxy_jump``'s text,
    # which is kept for the system ``ssh`` (``-J``).
    jump: SshTarget | None = None

    @property
    def known_hosts_name(self) -> str:
        """The name host keys are pinned under, as OpenSSH writes it: ``host``, ``[host]:port``."""
        name = self.host_key_alias or self.host
        return name if self.port == DEFAULT_PORT else f"[{name}]:{self.port}"

    def display(self) -> str:
        """``user@host:port`` (the alias first when there is one), for messages."""
        where = f"{self.user}@{self.host}:{self.port}"
        return f"{self.alias} ({where})" if self.alias and self.alias != self.host else where


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("HOME") or Path.home()) / ".ssh" / "config"


def resolve_target(
    name: str,
    *,
    port: int | None = None,
    user: str | None = None,
    key_paths: Sequence[Path | str] | None = None,
    proxy_command: str | None = None,
    proxy_jump: str | None = None,
    config_path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> SshTarget:
    """Resolve ``name`` (an alias, a host name or ``user@host:port``) into an ``SshTarget``.

    Explicit arguments win over the SSH config; the config wins over the defaults (port 22, the
    local user name, OpenSSH's default identity files decided later, at authentication).
    """
    dest_user, dest_host, dest_port = parse_destination(name)
    path = default_config_path(env) if config_path is None else config_path
    options = _lookup(dest_host, path)

    host = str(options.get("hostname") or dest_host)
    resolved_port = port or dest_port or _int_option(options, "port", path) or DEFAULT_PORT
    resolved_user = user or dest_user or _str_option(options, "user") or _local_user(env)
    if key_paths is not None:
        keys = tuple(Path(p).expanduser() for p in key_paths)
    else:
        keys = tuple(Path(p).expanduser() for p in options.get("identityfile", []))

    if proxy_command is not None:
        proxy_command = expand_proxy_tokens(proxy_command, host, resolved_port, resolved_user)
    elif proxy_jump is None:
        # paramiko has already expanded %h, %p and %r in a ProxyCommand from the config.
        proxy_command = _none_is_none(options.get("proxycommand"))
        proxy_jump = _none_is_none(options.get("proxyjump"))
    if proxy_command and proxy_jump:
        # OpenSSH takes whichever comes first in the file; paramiko no longer knows, so be plain.
        logger.warning("%s has both ProxyCommand and ProxyJump; using ProxyJump", dest_host)
        proxy_command = None

    target = SshTarget(
        host=host,
        port=resolved_port,
        user=resolved_user,
        key_paths=keys,
        proxy_command=proxy_command,
        proxy_jump=proxy_jump,
        alias=dest_host if dest_host != host else None,
        host_key_alias=_str_option(options, "hostkeyalias"),
    )
    logger.debug("resolved %r to %s", name, target)
    return target


def parse_destination(text: str) -> tuple[str | None, str, int | None]:
    """Split ``[ssh://][user@]host[:port]`` (IPv6 in brackets) into its parts."""
    rest = text.strip()
    if rest.startswith("ssh://"):
        rest = rest[len("ssh://") :].rstrip("/")
    user: str | None = None
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
    port: int | None = None
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        if tail.startswith(":"):
            port = _parse_port(tail[1:], text)
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
        port = _parse_port(port_text, text)
    else:
        host = rest
    if not host:
        raise InvalidValueError("host", f"no host name in {text!r}")
    return user or None, host, port


def _parse_port(value: str, text: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise InvalidValueError("port", f"{value!r} in {text!r} is not a port number")
    return int(value)


def expand_proxy_tokens(command: str, host: str, port: int, user: str) -> str:
    """Expand OpenSSH's ``%h``, ``%p``, ``%r`` and ``%%`` in a ProxyCommand."""
    values = {"h": host, "p": str(port), "r": user, "%": "%"}
    out: list[str] = []
    chars = iter(command)
    for ch in chars:
        if ch == "%":
            token = next(chars, "")
            out.append(values.get(token, "%" + token))
        else:
            out.append(ch)
    return "".join(out)


def _lookup(host: str, path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        config = paramiko.SSHConfig.from_path(str(path))
        return dict(config.lookup(host))
    except (OSError, paramiko.ConfigParseError, ValueError) as exc:
        raise InvalidValueError(
            "ssh_config",
            f"cannot read {path}: {exc}",
            hint="fix the file or pass the host's details",
        ) from exc


def _str_option(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    return None if value is None else str(value)


def _int_option(options: Mapping[str, Any], key: str, path: Path) -> int | None:
    value = options.get(key)
    if value is None:
        return None
    text = str(value)
    if not text.isdigit():
        raise InvalidValueError(key, f"{text!r} in {path} is not a number")
    return int(text)


def _none_is_none(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return None if not text or text.lower() == "none" else text


def _local_user(env: Mapping[str, str] | None) -> str:
    env = os.environ if env is None else env
    return env.get("USER") or osproc.login_name({})
