"""The test session's view of the OS keyring: a real Secret Service, a service name of its own.

``scripts/test`` runs the suite under a private D-Bus session with an unlocked gnome-keyring, so
the keyring tests exercise the same backend a user's desktop has. Every secret the suite writes
goes under ``SESSION_SERVICE`` (unique per session) and is purged at the end, so even a run
against a developer's own keyring leaves nothing behind and never reads their ``workbench`` entries.
"""

from __future__ import annotations

import os
import secrets

import keyring
import secretstorage
from keyring.backends import SecretService

from tests.support import SESSION_ID, ServiceUnavailable

#: The keyring service name the whole test session writes under.
SESSION_SERVICE = f"workbench-test-{SESSION_ID}"


class KeyringUnavailable(ServiceUnavailable):
    """No usable Secret Service: the message says what is wrong and how to get one."""


def check_secret_service(service: str = SESSION_SERVICE) -> str:
    """Check that ``keyring`` uses the Secret Service and can store, read and delete a value.

    Returns a description of the backend; raises ``KeyringUnavailable`` otherwise.
    """
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        raise KeyringUnavailable(
            "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS unset); run the suite with scripts/test"
        )
    backend = keyring.get_keyring()
    if not isinstance(backend, SecretService.Keyring):
        raise KeyringUnavailable(
            f"keyring chose {type(backend).__module__}.{type(backend).__qualname__}, not the "
            "Secret Service backend (is gnome-keyring-daemon running on the session bus? "
            "run the suite with scripts/test)"
        )
    probe_user = "round-trip-probe"
    probe_value = secrets.token_urlsafe(16)
    try:
        keyring.set_password(service, probe_user, probe_value)
        got = keyring.get_password(service, probe_user)
        keyring.delete_password(service, probe_user)
        gone = keyring.get_password(service, probe_user)
    except Exception as exc:
        raise KeyringUnavailable(
            f"the Secret Service keyring failed a set/get/delete round trip: {exc!r} "
            "(is the default collection unlocked?)"
        ) from exc
    if got != probe_value or gone is not None:
        raise KeyringUnavailable(
            f"the Secret Service keyring round trip was wrong: read {got!r}, after delete {gone!r}"
        )
    return f"{type(backend).__module__}.{type(backend).__qualname__}"


def purge_service(service: str) -> int:
    """Delete every keyring item stored under ``service``; returns how many went."""
    removed = 0
    connection = secretstorage.dbus_init()
    try:
        for collection in secretstorage.get_all_collections(connection):
            if collection.is_locked():
                continue
            for item in collection.search_items({"service": service}):
                item.delete()
                removed += 1
    finally:
        connection.close()
    return removed
