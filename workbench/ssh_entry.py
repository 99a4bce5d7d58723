"""An OpenSSH config entry per remote context, for terminals and editors that speak SSH.

``nvwb attach`` runs the system ``ssh``, and VS Code's Remote-SSH, Cursor, JetBrains Gateway and
Zed all read ``~/.ssh/config``. So each remote context gets a ``Host nvwb-<context>`` block in a
file of ours (``CONFIG/ssh/hosts/<context>.conf``, pulled together by ``CONFIG/ssh/config``),
holding what Workbench itself connects with: the address, port, user and key, the jump host
when there is one, and the host key Workbench pinned, in a known_hosts file of our own
(``StrictHostKeyChecking yes``, ``HostKeyAlias``), so the editor checks the same key Workbench
does and never asks to trust a new one. The user's ``~/.ssh/config`` gets one ``Include`` line
for our file, added only when they say yes (``add_include``), at its top, the rest kept byte for
byte; a config that is a link or not a regular file is left alone with the line to add by hand.

Every value written here is checked first (``_value``): a host name, user or ProxyCommand that
could end the line, open a quote or start another option (a provider's address, a name from a
spec) is refused, never written. Paths are written in double quotes and may hold no quote or
control character. Nothing of a project's content goes into an entry: projects are reached
through the context's entry, their names and paths only on the command lines built elsewhere.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import ConflictError, InvalidValueError
from workbench.names import check_name
from workbench.paths import PRIVATE_FILE, Paths, atomic_write_text

if TYPE_CHECKING:
    from workbench.ssh import SshConnection

ALIAS_PREFIX = "nvwb-"
INCLUDE_MARK = "# added by Workbench (nvwb): its contexts' hosts, nvwb-<context>"
# A control socket's path must fit a sockaddr_un (104 bytes on macOS, 108 on Linux).
MAX_CONTROL_PATH = 100

_HOSTNAME = re.compile(r"[A-Za-z0-9_.:%\[\]-]+")
_USER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.@-]*")
_KEY_TYPE = re.compile(r"[A-Za-z0-9@._-]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_JUMP = re.compile(r"[A-Za-z0-9_.:@%\[\],-]+")


@dataclass(frozen=True)
class HostEntry:
    """One remote context as OpenSSH reaches it, and the host key Workbench pinned for it.

    ``jump``: the host this one is dialled from (a cluster's login node), itself an entry with
    its own pinned key; ``proxy_jump``/``proxy_command``: what the user's own SSH config says
    for the host, passed on as it is once checked.
    """

    context: str
    hostname: str
    port: int
    user: str
    host_key_type: str
    host_key: str  # base64, as in known_hosts
    identity_file: str | None = None
    jump: HostEntry | None = None
    proxy_jump: str | None = None
    proxy_command: str | None = None
    hop: int = 0  # 0: the context's machine; 1, 2...: the hosts in front of it

    @property
    def alias(self) -> str:
        base = ALIAS_PREFIX + self.context
        return base if not self.hop else f"{base}-jump{self.hop if self.hop > 1 else ''}"


def check_entry(entry: HostEntry) -> None:
    """Raise ``InvalidValueError`` naming the first value that cannot be written safely."""
    check_name("context", entry.context)
    _value("hostname", entry.hostname, _HOSTNAME)
    _value("user", entry.user, _USER)
    _value("host key type", entry.host_key_type, _KEY_TYPE)
    _value("host key", entry.host_key, _BASE64)
    if not 0 < entry.port < 65536:
        raise InvalidValueError("port", f"{entry.port} is not a port (1 to 65535)")
    if entry.identity_file is not None:
        _path("identity file", entry.identity_file)
    if entry.proxy_jump is not None:
        _value("ProxyJump", entry.proxy_jump, _JUMP)
    if entry.proxy_command is not None:
        _command("ProxyCommand", entry.proxy_command)
    if entry.jump is not None:
        check_entry(entry.jump)


def host_blocks(entry: HostEntry, known_hosts: Path, control_path: str | None = None) -> str:
    """The ``Host`` blocks for ``entry`` (its jump hosts first), as ssh_config text."""
    check_entry(entry)
    known = _path("known hosts file", str(known_hosts))
    control = _path("control path", control_path) if control_path is not None else None
    blocks = []
    if entry.jump is not None:
        blocks.append(host_blocks(entry.jump, known_hosts, control_path=None))
    lines = [
        f"Host {entry.alias}",
        f"    HostName {entry.hostname}",
        f"    Port {entry.port}",
        f"    User {entry.user}",
        f"    HostKeyAlias {entry.alias}",
        f'    UserKnownHostsFile "{known}"',
        "    GlobalKnownHostsFile none",
        "    StrictHostKeyChecking yes",
        "    UpdateHostKeys no",
        "    CheckHostIP no",
    ]
    if entry.identity_file:
        key = _path("identity file", entry.identity_file)
        lines += [f'    IdentityFile "{key}"', "    IdentitiesOnly yes"]
    if entry.jump is not None:
        lines.append(f"    ProxyJump {entry.jump.alias}")
    elif entry.proxy_jump:
        lines.append(f"    ProxyJump {entry.proxy_jump}")
    elif entry.proxy_command:
        lines.append(f"    ProxyCommand {entry.proxy_command}")
    if control is not None:
        lines += [
            "    ControlMaster auto",
            f'    ControlPath "{control}"',
            "    ControlPersist 60",
        ]
    lines += ["    ServerAliveInterval 15", "    ServerAliveCountMax 3"]
    blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def known_hosts_lines(entry: HostEntry) -> str:
    """The pinned keys, one line each, under the names ``HostKeyAlias`` makes ssh look up."""
    check_entry(entry)
    text = f"{entry.alias} {entry.host_key_type} {entry.host_key}\n"
    return (known_hosts_lines(entry.jump) if entry.jump is not None else "") + text


class SshEntries:
    """Our ssh_config file and each context's entry in it; the user's config's Include line."""

    def __init__(self, paths: Paths, home: Path) -> None:
        self.folder = paths.config_dir / "ssh"
        self.config_file = self.folder / "config"
        self.hosts = self.folder / "hosts"
        self.runtime = paths.runtime_dir
        self.user_config = home / ".ssh" / "config"

    @classmethod
    def for_env(cls, paths: Paths, env: Mapping[str, str]) -> SshEntries:
        """The entries of ``paths``; ``~/.ssh/config`` of the home ``env`` names."""
        home = env.get("HOME") or env.get("USERPROFILE")
        return cls(paths, Path(home) if home else Path.home())

    def entry_file(self, context: str) -> Path:
        return self.hosts / f"{check_name('context', context)}.conf"

    def known_hosts_file(self, context: str) -> Path:
        return self.hosts / f"{check_name('context', context)}.known_hosts"

    def control_path(self, context: str, *, multiplex: bool) -> str | None:
        """Where terminals and editors of ``context`` share one connection (OpenSSH's
        ControlMaster); None where ssh cannot (Windows) or the path would be too long."""
        if not multiplex:
            return None
        path = str(self.runtime / "ssh" / f"t-{check_name('context', context)}")
        return path if len(path) <= MAX_CONTROL_PATH else None

    def write(self, entry: HostEntry, *, multiplex: bool) -> Path:
        """Write (or replace) the entry of ``entry.context``; returns our config file."""
        known = self.known_hosts_file(entry.context)
        control = self.control_path(entry.context, multiplex=multiplex)
        text = host_blocks(entry, known, control)  # checks every value before anything is written
        if control is not None:
            (self.runtime / "ssh").mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write_text(known, known_hosts_lines(entry), mode=PRIVATE_FILE)
        atomic_write_text(
            self.entry_file(entry.context),
            f"# Workbench context {entry.context}: rewritten by nvwb, edits are lost\n" + text,
            mode=PRIVATE_FILE,
        )
        hosts = _path("our ssh config", str(self.hosts))
        atomic_write_text(
            self.config_file,
            "# Workbench's SSH hosts (nvwb-<context>); included from ~/.ssh/config\n"
            f'Include "{hosts}/*.conf"\n',
            mode=PRIVATE_FILE,
        )
        return self.config_file

    def remove(self, context: str) -> None:
        for path in (self.entry_file(context), self.known_hosts_file(context)):
            path.unlink(missing_ok=True)

    # -- the user's ~/.ssh/config ---------------------------------------------------------

    def include_line(self) -> str:
        return f'Include "{_path("our ssh config", str(self.config_file))}"'

    def included(self) -> bool:
        """Whether the user's ``~/.ssh/config`` already includes our file (at its top level)."""
        try:
            text = self.user_config.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
        ours = _path("our ssh config", str(self.config_file))
        for raw in text.splitlines():
            line = raw.strip()
            if re.match(r"(?i)(host|match)\s", line):
                return False  # an Include inside a Host or Match block applies to it alone
            words = line.split(None, 1)
            if (
                len(words) == 2
                and words[0].lower() == "include"
                and any(word.strip('"') == ours for word in _words(words[1]))
            ):
                return True
        return False

    def add_include(self) -> bool:
        """Put our Include line at the top of ``~/.ssh/config`` (created 0600 if missing);
        False when it was there already. Everything else in the file is kept as it was.

        A config that is a symlink or not a regular file is not touched (``ConflictError``
        with the line to add by hand): replacing it would break what manages it."""
        if self.included():
            return False
        config = self.user_config
        line = self.include_line()
        try:
            found = os.lstat(config)
        except FileNotFoundError:
            found = None
        if found is not None and not stat.S_ISREG(found.st_mode):
            raise ConflictError(
                f"{config} is not a regular file (a link, say); Workbench does not change it",
                hint=f"add this line at its top yourself: {line}",
            )
        old = config.read_bytes().decode("utf-8", errors="surrogateescape") if found else ""
        newline = "\r\n" if "\r\n" in old else "\n"
        new = f"{INCLUDE_MARK}{newline}{line}{newline}{newline if old else ''}{old}"
        if not config.parent.exists():
            config.parent.mkdir(mode=0o700, parents=True)
        mode = stat.S_IMODE(found.st_mode) if found else PRIVATE_FILE
        data = new.encode("utf-8", errors="surrogateescape")
        tmp = config.with_name(f".{config.name}.nvwb-{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, config)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return True


def entry_from_wire(data: dict[str, Any]) -> HostEntry:
    """The entry the service sent (``messages.SshHost.to_wire()``); checked before any use."""
    jump = data.get("jump")
    fields: dict[str, Any] = {name: data.get(name) for name in _FIELDS if name in data}
    fields["jump"] = entry_from_wire(jump) if isinstance(jump, dict) else None
    entry = HostEntry(**fields)
    check_entry(entry)
    return entry


_FIELDS = (
    "context",
    "hostname",
    "port",
    "user",
    "host_key_type",
    "host_key",
    "identity_file",
    "proxy_jump",
    "proxy_command",
    "hop",
)


def entry_of_connection(context: str, connection: SshConnection, hop: int = 0) -> HostEntry:
    """The entry of a live connection: its resolved target and the host key it verified
    (through the context's trust), its jump host's likewise."""
    target = connection.target
    key = connection.transport.get_remote_server_key()
    jump_connection = connection.jump_connection
    jump = (
        entry_of_connection(context, jump_connection, hop + 1)
        if jump_connection is not None and target.jump is not None
        else None
    )
    return HostEntry(
        context=context,
        hostname=target.host,
        port=target.port,
        user=target.user,
        host_key_type=key.get_name(),
        host_key=key.get_base64(),
        identity_file=str(target.key_paths[0]) if target.key_paths else None,
        jump=jump,
        proxy_jump=target.proxy_jump if jump is None and target.jump is None else None,
        proxy_command=target.proxy_command,
        hop=hop,
    )


def _words(text: str) -> list[str]:
    return re.findall(r'"[^"]*"|\S+', text)


def _value(field: str, value: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value) or value.startswith("-"):
        raise InvalidValueError(
            f"ssh entry {field}",
            f"{value!r} cannot be written into an SSH config safely (spaces, quotes, '#', '=' "
            "and control characters are refused)",
        )
    return value


def _path(field: str, value: str) -> str:
    """``value`` as it can stand in double quotes in ssh_config: Windows' backslashes become
    slashes (OpenSSH reads both); a quote, a backslash elsewhere or a control character is
    refused."""
    if os.sep == "\\":
        value = value.replace("\\", "/")
    if not value or '"' in value or "\\" in value:
        raise InvalidValueError(f"ssh entry {field}", f"{value!r} cannot be written in quotes")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidValueError(f"ssh entry {field}", f"{value!r} holds a control character")
    return value


def _command(field: str, value: str) -> str:
    if not value.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidValueError(f"ssh entry {field}", f"{value!r} holds a control character")
    return value
