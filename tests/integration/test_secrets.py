"""Secrets against the real Secret Service keyring (gnome-keyring under ``scripts/test``)."""

from __future__ import annotations

import logging
import secrets as random_secrets

import pytest
import secretstorage
from keyring.backends import fail

from workbench.errors import InvalidValueError, SecretStoreError
from workbench.secrets import (
    DEFAULT_SERVICE,
    SecretStore,
    context_secret_key,
    mask,
    name_secret_key,
    project_secret_key,
    service_name,
)


def stored_in_secret_service(service: str, key: str) -> list[str]:
    """What the Secret Service itself holds for ``service``/``key``, read without ``keyring``."""
    connection = secretstorage.dbus_init()
    try:
        collection = secretstorage.get_default_collection(connection)
        items = collection.search_items({"service": service, "username": key})
        return [item.get_secret().decode() for item in items]
    finally:
        connection.close()


@pytest.fixture
def store(keyring_backend: str, wb_env: dict[str, str]) -> SecretStore:
    return SecretStore(env=wb_env)


def test_service_name_comes_from_the_environment(keyring_backend: str, wb_env: dict[str, str]):
    assert SecretStore(env=wb_env).service == keyring_backend
    assert service_name({}) == DEFAULT_SERVICE
    assert SecretStore("explicit", env=wb_env).service == "explicit"


def test_set_get_delete_round_trip_in_the_real_keyring(store: SecretStore) -> None:
    key = project_secret_key("3f9c02ab", "NVIDIA_API_KEY")
    value = "nvapi-" + random_secrets.token_urlsafe(24)
    assert store.get(key) is None
    store.set(key, value)
    assert store.get(key) == value
    assert store.has(key)
    assert stored_in_secret_service(store.service, key) == [value]

    store.set(key, value + "-rotated")  # overwrite, never a second item
    assert stored_in_secret_service(store.service, key) == [value + "-rotated"]

    assert store.delete(key) is True
    assert store.get(key) is None
    assert stored_in_secret_service(store.service, key) == []
    assert store.delete(key) is False


def test_unicode_and_long_values_survive(store: SecretStore) -> None:
    key = context_secret_key("gpu-box", "ssh_key_passphrase")
    value = "pässwörd 🔑 " + "x" * 4096
    store.set(key, value)
    try:
        assert store.get(key) == value
    finally:
        store.delete(key)


def test_services_are_kept_apart(keyring_backend: str) -> None:
    key = project_secret_key("0a1b2c3d", "HF_TOKEN")
    mine = SecretStore(keyring_backend)
    other = SecretStore(f"{keyring_backend}-other")
    mine.set(key, "mine-value")
    try:
        assert other.get(key) is None
    finally:
        mine.delete(key)


def test_values_never_reach_the_log(store: SecretStore, caplog: pytest.LogCaptureFixture) -> None:
    key = project_secret_key("0a1b2c3d", "DB_PASSWORD")
    value = "s3cr3t-" + random_secrets.token_hex(8)
    with caplog.at_level(logging.DEBUG):
        store.set(key, value)
        store.get(key)
        store.delete(key)
    assert key in caplog.text
    assert value not in caplog.text


def test_empty_or_bad_input_is_refused(store: SecretStore) -> None:
    with pytest.raises(InvalidValueError) as err:
        store.set(project_secret_key("0a1b2c3d", "X"), "")
    assert err.value.field == "value"
    with pytest.raises(InvalidValueError):
        store.get("")
    with pytest.raises(InvalidValueError):
        project_secret_key("../etc", "X")
    with pytest.raises(InvalidValueError):  # a name is not an identity
        project_secret_key("demo", "X")
    with pytest.raises(InvalidValueError):
        name_secret_key("../etc", "X")
    with pytest.raises(InvalidValueError):
        project_secret_key("0a1b2c3d", "NOT-AN-ENV-NAME")
    with pytest.raises(InvalidValueError):
        context_secret_key("box", "a/b")


def test_no_keyring_backend_is_a_secret_store_error_with_a_hint() -> None:
    # keyring's own stand-in for "no usable backend", as chosen on a desktop without one.
    store = SecretStore("workbench-test-none", backend=fail.Keyring())
    with pytest.raises(SecretStoreError) as err:
        store.get(project_secret_key("0a1b2c3d", "TOKEN"))
    assert err.value.hint and "keyring" in err.value.hint
    assert err.value.exit_code == 9
    with pytest.raises(SecretStoreError) as err:
        store.set(project_secret_key("0a1b2c3d", "TOKEN"), "value-that-must-not-show")
    assert "value-that-must-not-show" not in str(err.value)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, ""),
        ("", ""),
        ("abc", "****"),
        ("fifteen-chars!!", "****"),
        ("nvapi-0123456789abcdef", "nv****ef"),
    ],
)
def test_mask(value: str | None, shown: str) -> None:
    assert mask(value) == shown


def test_key_helpers() -> None:
    assert project_secret_key("3f9c02ab", "NVIDIA_API_KEY") == "project-id/3f9c02ab/NVIDIA_API_KEY"
    # The keys of versions before project identities live in another namespace, so a project
    # named like another's id cannot reach that project's secrets through them.
    assert name_secret_key("3f9c02ab", "NVIDIA_API_KEY") == "project/3f9c02ab/NVIDIA_API_KEY"
    assert context_secret_key("brev-a100", "token") == "context/brev-a100/token"
