"""Known host keys: the user's OpenSSH ``known_hosts`` (read only) and Workbench's own pins.

Pins are written in OpenSSH's known_hosts format to ``Paths.known_hosts_file``, atomically, keyed
like OpenSSH (``host`` on port 22, ``[host]:port`` otherwise), so a user can read them with
``ssh-keygen -F`` and a key OpenSSH already trusts is trusted here without asking again. The
files are read afresh on each lookup: they are small, and another process may have pinned a key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import ContextError
from workbench.paths import Paths, atomic_write_text

logger = logging.getLogger(__name__)


def fingerprint_blob(blob: bytes) -> str:
    """OpenSSH's fingerprint: ``SHA256:`` and the unpadded base64 of the key blob's SHA-256."""
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class KnownKey:
    """One key line that matched a host: where it came from, and whether it is ``@revoked``."""

    key_type: str
    blob: bytes
    source: Path
    line: int
    revoked: bool = False

    @property
    def fingerprint(self) -> str:
        return fingerprint_blob(self.blob)

    def where(self) -> str:
        return f"{self.source}:{self.line}"


class KnownHosts:
    """Lookup across the system files and the pinned file; pinning writes the pinned file only."""

    def __init__(self, pinned_file: Path, system_files: Sequence[Path] = ()) -> None:
        self.pinned_file = pinned_file
        self.system_files = tuple(system_files)

    @classmethod
    def for_user(cls, env: Mapping[str, str] | None = None) -> KnownHosts:
        """Workbench's pins plus ``~/.ssh/known_hosts``, for the user in ``env``."""
        env = os.environ if env is None else env
        home = Path(env.get("HOME") or Path.home())
        return cls(Paths.from_env(env).known_hosts_file, [home / ".ssh" / "known_hosts"])

    def lookup(self, name: str) -> list[KnownKey]:
        """Every key known for ``name`` (``host`` or ``[host]:port``), pins first."""
        found: list[KnownKey] = []
        for path in (self.pinned_file, *self.system_files):
            for lineno, line in _read_lines(path):
                entry = _parse(line)
                if entry is None:
                    continue
                marker, patterns, key_type, blob = entry
                if marker == "@cert-authority":
                    continue  # host certificates are not supported; such lines vouch for nothing
                if _host_matches(patterns, name):
                    found.append(KnownKey(key_type, blob, path, lineno, marker == "@revoked"))
        return found

    def openssh_files(self, name: str) -> tuple[Path, ...]:
        """The known_hosts files the system ``ssh`` must read to trust what ``lookup`` trusts for
        ``name`` (the name ``ssh`` looks up): here, the same files."""
        return (self.pinned_file, *self.system_files)

    def pin(self, name: str, key_type: str, blob: bytes) -> None:
        """Trust this key for ``name``, replacing an earlier pin of the same key type."""
        kept = [
            line
            for _, line in _read_lines(self.pinned_file, keep_all=True)
            if not _is_pin_of(line, name, key_type)
        ]
        encoded = base64.b64encode(blob).decode("ascii")
        kept.append(f"{name} {key_type} {encoded}")
        self._write(kept)
        logger.info("pinned %s key %s for %s", key_type, fingerprint_blob(blob), name)

    def forget(self, name: str) -> int:
        """Drop every pin for ``name``; return how many. System files are never touched."""
        lines = [line for _, line in _read_lines(self.pinned_file, keep_all=True)]
        kept = [line for line in lines if not _is_pin_of(line, name, None)]
        removed = len(lines) - len(kept)
        if removed:
            self._write(kept)
            logger.info("forgot %d pinned key(s) for %s", removed, name)
        return removed

    def _write(self, lines: list[str]) -> None:
        try:
            atomic_write_text(self.pinned_file, "".join(f"{line}\n" for line in lines), mode=0o600)
        except OSError as exc:
            raise ContextError(
                f"cannot save host key pins to {self.pinned_file}: {exc.strerror or exc}",
                hint="check that the Workbench config folder is writable",
            ) from exc


def _read_lines(path: Path, *, keep_all: bool = False) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        logger.warning("cannot read %s: %s", path, exc)
        return []
    lines: list[tuple[int, str]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if keep_all:
            if line:
                lines.append((lineno, line))
        elif line and not line.startswith("#"):
            lines.append((lineno, line))
    return lines


def _parse(line: str) -> tuple[str | None, list[str], str, bytes] | None:
    fields = line.split()
    marker = None
    if fields and fields[0].startswith("@"):
        marker, fields = fields[0], fields[1:]
    if len(fields) < 3:
        return None
    try:
        blob = base64.b64decode(fields[2], validate=True)
    except (binascii.Error, ValueError):
        return None
    return marker, fields[0].split(","), fields[1], blob


def _is_pin_of(line: str, name: str, key_type: str | None) -> bool:
    entry = _parse(line)
    if entry is None or entry[0] is not None:
        return False
    _, patterns, line_type, _ = entry
    return patterns == [name] and (key_type is None or line_type == key_type)


def _host_matches(patterns: list[str], name: str) -> bool:
    """OpenSSH's rules: hashed names, ``*`` and ``?`` wildcards, ``!`` negation wins."""
    matched = False
    lowered = name.lower()
    for pattern in patterns:
        if pattern.startswith("|1|"):
            matched = matched or _hashed_matches(pattern, name)
            continue
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        if _wildcard(body.lower()).fullmatch(lowered):
            if negated:
                return False
            matched = True
    return matched


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    )


def _hashed_matches(pattern: str, name: str) -> bool:
    try:
        _, _, salt_b64, hash_b64 = pattern.split("|", 3)
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(hash_b64)
    except (ValueError, binascii.Error):
        return False
    actual = hmac.new(salt, name.encode("utf-8"), hashlib.sha1).digest()
    return hmac.compare_digest(actual, expected)
