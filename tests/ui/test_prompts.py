"""The prompter shows the right dialog, with the question's own words, under the window.

Asked from a worker thread, as the core asks: the dialog opens on the GUI thread, its answer
reaches the worker, and quitting answers every open question with no. No SSH server needed:
``tests/ui/test_host_key.py`` covers the same dialogs during a real connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from ui.dialogs.host_key import HostKeyDialog
from ui.dialogs.passphrase import PassphraseDialog
from ui.prompts import GuiPrompter

pytestmark = pytest.mark.timeout(30)

FINGERPRINT = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"


class _Worker:
    """Runs ``ask`` on a plain thread, as SSH code does, and keeps what it returned."""

    def __init__(self, ask: Callable[[], Any]) -> None:
        self.result: Any = "not answered"
        self._thread = threading.Thread(target=self._run, args=(ask,), daemon=True)
        self._thread.start()

    def _run(self, ask: Callable[[], Any]) -> None:
        self.result = ask()

    def done(self) -> bool:
        return not self._thread.is_alive()


@pytest.fixture
def window(qtbot) -> QWidget:
    widget = QWidget()
    qtbot.addWidget(widget)
    return widget


@pytest.fixture
def prompter(window: QWidget) -> GuiPrompter:
    return GuiPrompter(lambda: window, parent=window)


def _shown(qtbot, prompter: GuiPrompter, count: int = 1) -> list[Any]:
    qtbot.waitUntil(lambda: len(prompter.open_dialogs()) == count, timeout=5000)
    return prompter.open_dialogs()


def test_a_host_key_question_shows_host_and_fingerprint(qtbot, window, prompter):
    worker = _Worker(lambda: prompter.ask_host_key("box.example", FINGERPRINT))
    (dialog,) = _shown(qtbot, prompter)
    assert isinstance(dialog, HostKeyDialog)
    assert (dialog.host, dialog.fingerprint) == ("box.example", FINGERPRINT)
    assert dialog.fingerprint_label.text() == FINGERPRINT
    assert dialog.parent() is window
    qtbot.mouseClick(dialog.trust_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(worker.done, timeout=5000)
    assert worker.result is True
    assert prompter.open_dialogs() == []


def test_a_passphrase_question_names_the_key_and_returns_what_was_typed(qtbot, window, prompter):
    provide = prompter.passphrase_provider("box")
    key_path = Path("/keys/id_ed25519")
    worker = _Worker(lambda: provide(key_path))
    (dialog,) = _shown(qtbot, prompter)
    assert isinstance(dialog, PassphraseDialog)
    assert dialog.key_path == str(key_path)
    assert dialog.parent() is window
    qtbot.keyClicks(dialog.edit, "open sesame")
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(worker.done, timeout=5000)
    assert worker.result == "open sesame"


def test_quitting_answers_every_open_question_with_no(qtbot, prompter):
    host_key = _Worker(lambda: prompter.ask_host_key("box.example", FINGERPRINT))
    _shown(qtbot, prompter, 1)
    passphrase = _Worker(lambda: prompter.passphrase_provider("box")(Path("/keys/id_rsa")))
    dialogs = _shown(qtbot, prompter, 2)
    assert {type(dialog) for dialog in dialogs} == {HostKeyDialog, PassphraseDialog}
    prompter.close()
    qtbot.waitUntil(lambda: host_key.done() and passphrase.done(), timeout=5000)
    assert host_key.result is False
    assert passphrase.result is None
    assert prompter.open_dialogs() == []
    # Once closed, nobody is asked any more.
    late = _Worker(lambda: prompter.ask_host_key("other.example", FINGERPRINT))
    qtbot.waitUntil(late.done, timeout=5000)
    assert late.result is False
