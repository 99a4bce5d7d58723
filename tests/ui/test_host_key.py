"""A new host key is shown in a dialog; trusting it pins it, refusing it connects to nothing."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.support.sshd import SshServer
from ui.app import App
from ui.dialogs.host_key import HostKeyDialog
from workbench.paths import Paths
from workbench.registry import Context, Registry
from workbench.ssh.knownhosts import KnownHosts

pytestmark = pytest.mark.timeout(60)


def _ssh_context(env: dict[str, str], sshd: SshServer) -> None:
    with Registry.locked(Paths.from_env(env)) as registry:
        registry.create(
            Context(
                name="box",
                kind="ssh",
                hostname=sshd.host,
                ssh_port=sshd.port,
                ssh_username=sshd.user,
                ssh_key_path=str(sshd.client_key_path),
            )
        )


def _check(qtbot, app: App) -> HostKeyDialog:
    qtbot.waitUntil(lambda: app.window.contexts_model.row("box") is not None, timeout=10000)
    app.window.select_context("box")
    app.window.last_check = ""
    assert app.window.check_action.isEnabled()
    app.window.check_action.trigger()
    qtbot.waitUntil(lambda: bool(app.window.prompter.open_dialogs()), timeout=15000)
    (dialog,) = app.window.prompter.open_dialogs()
    assert isinstance(dialog, HostKeyDialog)
    return dialog


def _pins(env: dict[str, str], sshd: SshServer) -> list:
    return KnownHosts(Paths.from_env(env).known_hosts_file).lookup(f"[{sshd.host}]:{sshd.port}")


def test_trusting_a_new_host_key_pins_it(qtbot, app: App, env, sshd: SshServer):
    _ssh_context(env, sshd)
    dialog = _check(qtbot, app)
    assert dialog.fingerprint == sshd.host_key_fingerprint
    assert dialog.fingerprint_label.text() == sshd.host_key_fingerprint
    assert dialog.cancel_button.isDefault()  # Enter does not trust by accident
    qtbot.mouseClick(dialog.trust_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: app.window.last_check != "", timeout=15000)
    assert app.window.last_check.startswith("ok: connected as"), app.window.last_check
    assert [pin.fingerprint for pin in _pins(env, sshd)] == [sshd.host_key_fingerprint]
    # Known now: the next check asks nothing.
    app.window.last_check = ""
    app.window.check_action.trigger()
    qtbot.waitUntil(lambda: app.window.last_check != "", timeout=15000)
    assert app.window.last_check.startswith("ok:")
    assert not app.window.prompter.open_dialogs()


def test_refusing_a_new_host_key_connects_to_nothing(qtbot, app: App, env, sshd: SshServer):
    _ssh_context(env, sshd)
    dialog = _check(qtbot, app)
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: app.window.last_check != "", timeout=15000)
    assert app.window.last_check.startswith("failed:")
    assert "not accepted" in app.window.last_check
    assert "not accepted" in app.window.banner.text()
    assert _pins(env, sshd) == []


def test_a_key_passphrase_is_asked_and_remembered_in_the_keyring(
    qtbot, app: App, env, sshd: SshServer, keyring_backend
):
    from ui.dialogs.passphrase import PassphraseDialog
    from workbench.secrets import SecretStore, context_secret_key

    with Registry.locked(Paths.from_env(env)) as registry:
        registry.create(
            Context(
                name="box",
                kind="ssh",
                hostname=sshd.host,
                ssh_port=sshd.port,
                ssh_username=sshd.user,
                ssh_key_path=str(sshd.encrypted_key_path),
                accepted_host_key=sshd.host_key_fingerprint,
            )
        )
    qtbot.waitUntil(lambda: app.window.contexts_model.row("box") is not None, timeout=10000)
    app.window.select_context("box")
    app.window.check_action.trigger()
    qtbot.waitUntil(lambda: bool(app.window.prompter.open_dialogs()), timeout=15000)
    (dialog,) = app.window.prompter.open_dialogs()
    assert isinstance(dialog, PassphraseDialog)
    assert dialog.edit.echoMode() == dialog.edit.EchoMode.Password
    qtbot.keyClicks(dialog.edit, sshd.passphrase)
    dialog.remember.setChecked(True)
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: app.window.last_check != "", timeout=15000)
    assert app.window.last_check.startswith("ok:"), app.window.last_check
    stored = SecretStore(env=env).get(context_secret_key("box", "ssh_key_passphrase"))
    assert stored == sshd.passphrase
    # Remembered: the next connection asks nothing.
    app.window.last_check = ""
    app.window.check_action.trigger()
    qtbot.waitUntil(lambda: app.window.last_check != "", timeout=15000)
    assert app.window.last_check.startswith("ok:")
    assert not app.window.prompter.open_dialogs()
    SecretStore(env=env).delete(context_secret_key("box", "ssh_key_passphrase"))


def test_a_brev_key_trusted_in_the_app_is_pinned_per_instance_not_by_address(wb_env, brev):
    # The app's connection check and the service trust a Brev instance the same way: its key is
    # pinned into the context (accepted_host_key), never by address in known_hosts, since Brev
    # hands addresses on to other instances. (No service here: it would pin the key itself.)
    from ui.connection_check import check_connection
    from workbench.ssh import PromptPolicy

    env = brev.env(wb_env)
    brev.create("gpu-1", status="RUNNING", boot_delay=0.0)
    brev.wait_status("gpu-1", "RUNNING")
    instance = brev.instance("gpu-1")
    paths = Paths.from_env(env)
    with Registry.locked(paths) as registry:
        context = registry.create(Context(name="box", kind="brev", brev_instance_name="gpu-1"))
    asked: list[str] = []
    answer = check_connection(
        context, env, PromptPolicy(lambda host, fp: asked.append(fp) or True), lambda key: None
    )
    assert answer.startswith("connected as"), answer
    assert asked == [instance["host_key_fingerprint"]]  # a person was asked, as for any host
    assert Registry.load(paths).get("box").accepted_host_key == instance["host_key_fingerprint"]
    assert KnownHosts(paths.known_hosts_file).lookup(f"[127.0.0.1]:{instance['port']}") == []
    # Pinned: the next check asks nothing.
    again = Registry.load(paths).get("box")
    assert check_connection(again, env, PromptPolicy(lambda h, fp: False), lambda key: None)
