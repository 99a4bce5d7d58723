"""Questions from worker threads to the person at the screen: host keys and key passphrases.

SSH runs on workers, and the core asks its questions synchronously (``PromptPolicy.ask``, a
``PassphraseProvider``). The prompter turns such a call into a dialog on the GUI thread and
blocks only the worker until the person answers; the event loop keeps running meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal
from PySide6.QtWidgets import QDialog, QWidget

from ui.dialogs.host_key import HostKeyDialog
from ui.dialogs.passphrase import PassphraseDialog
from workbench.errors import WorkbenchError
from workbench.secrets import SecretStore, context_secret_key
from workbench.ssh.hostkeys import PromptPolicy

log = logging.getLogger(__name__)

PASSPHRASE_SECRET = "ssh_key_passphrase"


@dataclass(kw_only=True)
class _Question:
    """One question from a worker; ``answered`` is set once ``answer`` holds the reply."""

    answered: threading.Event = field(default_factory=threading.Event)
    answer: Any = None


@dataclass(kw_only=True)
class _HostKeyQuestion(_Question):
    """Trust ``host``'s key? Answered True or False (the app quitting answers False)."""

    host: str
    fingerprint: str


@dataclass(kw_only=True)
class _PassphraseQuestion(_Question):
    """The key's passphrase: ``(passphrase, remember)``, or None when refused or quitting."""

    key_path: str


class GuiPrompter(QObject):
    """Shows the dialogs for questions asked on worker threads; ``dialogShown`` is for tests."""

    dialogShown = Signal(object)
    _asked = Signal(object)

    def __init__(
        self,
        parent_widget: Callable[[], QWidget | None],
        secrets: SecretStore | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._parent_widget = parent_widget
        self._secrets = secrets
        self._open: dict[int, tuple[_Question, QDialog]] = {}
        self._closed = False
        self._asked.connect(self._show)

    # -- what workers call ---------------------------------------------------------------

    def ask_host_key(self, host: str, fingerprint: str) -> bool:
        """Blocks the calling worker until the person trusts the key or refuses it."""
        return bool(self._ask(_HostKeyQuestion(host=host, fingerprint=fingerprint)))

    def host_key_policy(self) -> PromptPolicy:
        return PromptPolicy(self.ask_host_key)

    def passphrase_provider(self, context: str) -> Callable[[Path], str | None]:
        """A ``PassphraseProvider``: the keyring's remembered passphrase, else ask."""

        def provide(key_path: Path) -> str | None:
            key = context_secret_key(context, PASSPHRASE_SECRET)
            if self._secrets is not None:
                try:
                    stored = self._secrets.get(key)
                except WorkbenchError as exc:
                    log.warning("keyring unavailable, asking instead: %s", exc)
                    stored = None
                if stored:
                    return stored
            answer = self._ask(_PassphraseQuestion(key_path=str(key_path)))
            if answer is None:
                return None
            passphrase, remember = answer
            if remember and self._secrets is not None:
                try:
                    self._secrets.set(key, passphrase)
                except WorkbenchError as exc:
                    log.warning("could not remember the passphrase: %s", exc)
            return str(passphrase)

        return provide

    def _ask(self, question: _Question) -> Any:
        if QThread.currentThread() is self.thread():
            raise RuntimeError("asked a person from the GUI thread: that would deadlock")
        if self._closed:
            return None
        self._asked.emit(question)
        question.answered.wait()
        return question.answer

    # -- the GUI side --------------------------------------------------------------------

    def _show(self, question: _Question) -> None:
        dialog: QDialog
        parent = self._parent_widget()
        if isinstance(question, _HostKeyQuestion):
            dialog = HostKeyDialog(question.host, question.fingerprint, parent=parent)
        elif isinstance(question, _PassphraseQuestion):
            dialog = PassphraseDialog(question.key_path, parent=parent)
        else:  # answered first: a worker must never wait on a question nobody shows
            question.answered.set()
            raise TypeError(f"no dialog for {type(question).__name__}")

        def finished(result: int) -> None:
            accepted = result == QDialog.DialogCode.Accepted
            if isinstance(dialog, HostKeyDialog):
                question.answer = accepted
            elif isinstance(dialog, PassphraseDialog):
                question.answer = (
                    (dialog.passphrase, dialog.remember.isChecked()) if accepted else None
                )
            self._open.pop(id(question), None)
            question.answered.set()
            dialog.deleteLater()

        dialog.finished.connect(finished)
        self._open[id(question)] = (question, dialog)
        dialog.open()
        self.dialogShown.emit(dialog)

    def open_dialogs(self) -> list[QDialog]:
        return [dialog for _question, dialog in self._open.values()]

    def close(self) -> None:
        """Answer every open question with no (the app is quitting): no worker waits forever."""
        self._closed = True
        for question, dialog in list(self._open.values()):
            question.answer = False if isinstance(question, _HostKeyQuestion) else None
            question.answered.set()
            dialog.close()
        self._open.clear()
