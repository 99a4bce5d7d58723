"""Loading private key files, asking for a passphrase only when the file is encrypted.

paramiko's own ``PKey.from_path`` mishandles passphrases in the version we use, so the key type is
read from the file (OpenSSH keys carry their public half in the clear; PEM keys name it in their
header) and the matching paramiko class decrypts it, once.
"""

from __future__ import annotations

import base64
import binascii
import logging
import struct
from collections.abc import Callable
from pathlib import Path

import paramiko

from workbench.errors import ContextError

logger = logging.getLogger(__name__)

PassphraseProvider = Callable[[Path], "str | None"]
"""Given a key file, return its passphrase, or None to skip the key (the user declined)."""

_OPENSSH_MAGIC = b"openssh-key-v1\x00"
_CLASSES: dict[str, type[paramiko.PKey]] = {
    "ssh-ed25519": paramiko.Ed25519Key,
    "ssh-rsa": paramiko.RSAKey,
    "ecdsa-sha2-nistp256": paramiko.ECDSAKey,
    "ecdsa-sha2-nistp384": paramiko.ECDSAKey,
    "ecdsa-sha2-nistp521": paramiko.ECDSAKey,
}
_PEM_HEADERS: dict[str, type[paramiko.PKey]] = {
    "-----BEGIN RSA PRIVATE KEY-----": paramiko.RSAKey,
    "-----BEGIN EC PRIVATE KEY-----": paramiko.ECDSAKey,
}


class PassphraseRejected(ContextError):
    """The passphrase given for a key file does not decrypt it (a remembered one may be stale)."""

    code = "passphrase_rejected"

    def __init__(self, key_path: Path, *, context: str | None = None) -> None:
        super().__init__(
            f"wrong passphrase for key {key_path}",
            context=context,
            hint="type it again; if it was remembered in the keyring, forget it there first",
        )
        self.key_path = key_path

    def details(self) -> dict[str, object]:
        return {**super().details(), "key_path": str(self.key_path)}


class KeySkipped(Exception):
    """A key that could not be used, with the reason, so authentication can try the next one."""


def load_private_key(path: Path, passphrase_provider: PassphraseProvider | None) -> paramiko.PKey:
    """Load ``path``; raise ``KeySkipped`` when unusable, ``PassphraseRejected`` when mistyped."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError as exc:
        raise KeySkipped(f"{path}: no such file") from exc
    except OSError as exc:
        raise KeySkipped(f"{path}: {exc.strerror or exc}") from exc
    key_class = _key_class(text)
    if key_class is None:
        raise KeySkipped(f"{path}: not a private key paramiko can use (ed25519, ecdsa, rsa)")
    try:
        return key_class.from_private_key_file(str(path))
    except paramiko.PasswordRequiredException:
        pass
    except (paramiko.SSHException, ValueError) as exc:
        raise KeySkipped(f"{path}: cannot load: {exc}") from exc
    passphrase = passphrase_provider(path) if passphrase_provider is not None else None
    if passphrase is None:
        raise KeySkipped(f"{path}: encrypted, and no passphrase was given")
    try:
        key = key_class.from_private_key_file(str(path), password=passphrase)
    except (paramiko.SSHException, ValueError) as exc:
        raise PassphraseRejected(path) from exc
    logger.debug("decrypted %s", path)
    return key


def _key_class(text: str) -> type[paramiko.PKey] | None:
    for header, key_class in _PEM_HEADERS.items():
        if header in text:
            return key_class
    begin, end = "-----BEGIN OPENSSH PRIVATE KEY-----", "-----END OPENSSH PRIVATE KEY-----"
    if begin not in text or end not in text:
        return None
    body = text.split(begin, 1)[1].split(end, 1)[0]
    try:
        data = base64.b64decode("".join(body.split()))
        return _CLASSES.get(_openssh_key_type(data))
    except (binascii.Error, ValueError, struct.error):
        return None


def _openssh_key_type(data: bytes) -> str:
    """The type of the first public key in an ``openssh-key-v1`` blob (stored unencrypted)."""
    if not data.startswith(_OPENSSH_MAGIC):
        raise ValueError("not an openssh-key-v1 file")
    offset = len(_OPENSSH_MAGIC)
    for _ in range(3):  # cipher name, kdf name, kdf options
        (length,) = struct.unpack_from(">I", data, offset)
        offset += 4 + length
    offset += 4  # number of keys
    offset += 4  # length of the public key blob, whose first field is the type
    (length,) = struct.unpack_from(">I", data, offset)
    return data[offset + 4 : offset + 4 + length].decode("ascii")
