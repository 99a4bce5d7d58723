"""Ask for an SSH key's passphrase, optionally to be remembered in the OS keyring.

The dialog only collects the answer; the prompter stores it in the keyring (off the GUI thread)
when "remember" is ticked. The text field never echoes the passphrase.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)


class PassphraseDialog(QDialog):
    def __init__(self, key_path: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key_path = key_path
        self.setWindowTitle("Key passphrase")
        self.setMinimumWidth(440)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(10)
        label = QLabel(f"The SSH key <b>{key_path}</b> is protected by a passphrase.")
        label.setWordWrap(True)
        layout.addWidget(label)
        self.edit = QLineEdit()
        self.edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.edit.setPlaceholderText("passphrase")
        layout.addWidget(self.edit)
        self.remember = QCheckBox("Remember in the keyring")
        self.remember.setToolTip("Stored by your desktop's keyring, never in a file")
        layout.addWidget(self.remember)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setProperty("primary", True)
        self.ok_button.setEnabled(False)
        self.edit.textChanged.connect(lambda text: self.ok_button.setEnabled(bool(text)))
        layout.addWidget(buttons)

    @property
    def passphrase(self) -> str:
        return self.edit.text()
