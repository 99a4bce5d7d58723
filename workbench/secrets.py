"""Secrets in the OS keyring: project secrets, provider tokens, SSH key passphrases.

This is the only module that talks to ``keyring``. Values never touch a file or a log line; the
CLI shows them through ``mask``. ``keyring`` (and its D-Bus backend) is imported on first use so
commands that need no secret start fast.

Keys name what a secret is for: ``project-id/<id>/<VARIABLE>`` for a variable a project's spec
lists under ``execution.secrets`` (``<id>`` is the project's identity on this machine,
``workbench.identity``: never its ``meta.name``, which any repository can copy),
``context/<context>/<what>`` for a context's token or key passphrase. Versions before project
identities stored project secrets under ``project/<name>/<VARIABLE>``; those are only ever read
by the explicit claim (``nvwb update project --claim-name-secrets``), never found by name.
The keyring service is ``workbench`` unless ``NVWB_KEYRING_SERVICE`` says otherwise (the tests
use that to stay apart from a real user's entries).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from workbench.errors import InvalidValueError, SecretStoreError
from workbench.names import check_env_name, check_name

log = logging.getLogger(__name__)

DEFAULT_SERVICE: Final = "workbench"
SERVICE_ENV: Final = "NVWB_KEYRING_SERVICE"
_HINT: Final = (
    "Workbench keeps secrets in the OS keyring (Secret Service: GNOME Keyring or KWallet); "
    "make sure one is running and unlocked"
)
_T = TypeVar("_T")
_PROJECT_ID = re.compile(r"[0-9a-f]{8}")


def project_secret_key(project_id: str, variable: str) -> str:
    """The keyring key of a project secret, e.g. ``project-id/3f9c02ab/NVIDIA_API_KEY``.

    Its own namespace (``project-id/``, not ``project/``), so a project *named* like another's
    id never reaches that project's secrets through the old name-based keys.
    """
    if not isinstance(project_id, str) or not _PROJECT_ID.fullmatch(project_id):
        raise InvalidValueError("project id", f"{project_id!r} is not a project identity")
    check_env_name("variable", variable)
    return f"project-id/{project_id}/{variable}"


def name_secret_key(project: str, variable: str) -> str:
    """Where versions before project identities kept a secret: ``project/<name>/<VARIABLE>``.

    Shared by every project of that name, so it is read only by an explicit claim.
    """
    check_name("project", project)
    check_env_name("variable", variable)
    return f"project/{project}/{variable}"


def context_secret_key(context: str, what: str) -> str:
    """The keyring key of a context's secret, e.g. ``context/gpu-box/ssh_key_passphrase``."""
    check_name("context", context)
    check_name("what", what)
    return f"context/{context}/{what}"


def mask(value: str | None) -> str:
    """A secret as the CLI may print it: ``ab****yz`` for long values, ``****`` otherwise.

    Only values of 16 characters or more show their ends, so that a short password never gives
    away a quarter of itself.
    """
    if value is None or value == "":
        return ""
    if len(value) < 16:
        return "****"
    return f"{value[:2]}****{value[-2:]}"


def service_name(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get(SERVICE_ENV) or DEFAULT_SERVICE


class SecretStore:
    """Get, set and delete secrets under one keyring service.

    ``backend`` may be any ``keyring.backend.KeyringBackend``; by default the one ``keyring``
    picks for this desktop (Secret Service on Linux).
    """

    def __init__(
        self,
        service: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        backend: Any = None,
    ) -> None:
        self.service = service or service_name(env)
        self._backend = backend

    def _keyring(self) -> Any:
        if self._backend is None:
            try:
                import keyring
            except ImportError as exc:  # pragma: no cover - a declared dependency
                raise SecretStoreError(
                    "the 'keyring' package is not installed", hint=_HINT
                ) from exc
            self._backend = keyring.get_keyring()
        return self._backend

    def _call(self, action: str, key: str, fn: Callable[[], _T]) -> _T:
        try:
            return fn()
        except SecretStoreError:
            raise
        except Exception as exc:
            # The boundary to a third-party backend: keyring's own errors, and whatever its D-Bus
            # layer lets through (jeepney, secretstorage), become one typed error. The message
            # carries the key and the backend's words, never the value.
            raise SecretStoreError(
                f"could not {action} secret '{key}' in the keyring: {_describe(exc)}", hint=_HINT
            ) from exc

    def set(self, key: str, value: str) -> None:
        _check_key(key)
        if not isinstance(value, str):
            raise InvalidValueError("value", "a secret must be a string")
        if value == "":
            raise InvalidValueError("value", "a secret must not be empty")
        backend = self._keyring()
        self._call("store", key, lambda: backend.set_password(self.service, key, value))
        log.info("stored secret %s in keyring service %s", key, self.service)

    def get(self, key: str) -> str | None:
        """The secret's value, or ``None`` when no such secret is stored."""
        _check_key(key)
        backend = self._keyring()
        value: str | None = self._call("read", key, lambda: backend.get_password(self.service, key))
        return value

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def delete(self, key: str) -> bool:
        """Remove the secret; ``False`` when there was none to remove."""
        _check_key(key)
        backend = self._keyring()
        if self._call("read", key, lambda: backend.get_password(self.service, key)) is None:
            return False
        self._call("delete", key, lambda: backend.delete_password(self.service, key))
        log.info("deleted secret %s from keyring service %s", key, self.service)
        return True


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key.strip():
        raise InvalidValueError("key", "a secret's key must not be empty")
    if any(ch in key for ch in "\n\r\x00"):
        raise InvalidValueError("key", "a secret's key must be a single line")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
