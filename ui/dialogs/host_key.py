"""Trust a host key seen for the first time: the fingerprint shown, a plain yes or no.

This is the app's side of ``workbench.ssh.hostkeys.PromptPolicy``: an accepted key is pinned by
the core, so the question comes once per host. A changed key never gets here (the core refuses
it with both fingerprints), so this dialog can stay about a first meeting.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from ui.style import icon


class HostKeyDialog(QDialog):
    """Accepted: trust and pin the key. Rejected (or closed): do not connect."""

    def __init__(self, host: str, fingerprint: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.fingerprint = fingerprint
        self.setWindowTitle("Trust this host?")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(12)

        top = QHBoxLayout()
        picture = QLabel()
        picture.setPixmap(icon("shield").pixmap(40, 40))
        picture.setAlignment(Qt.AlignmentFlag.AlignTop)
        top.addWidget(picture)
        heading = QLabel(f"<b>First connection to {host}</b>")
        heading.setObjectName("sectionTitle")
        top.addWidget(heading, 1)
        layout.addLayout(top)

        explain = QLabel(
            "Workbench has not seen this host's key before. Check that the fingerprint below is "
            "the host's (on the host: <code>ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub"
            "</code>). Once trusted, the key is remembered, and a different key will be refused."
        )
        explain.setWordWrap(True)
        explain.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(explain)

        self.fingerprint_label = QLabel(fingerprint)
        mono = QFont("DejaVu Sans Mono")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.fingerprint_label.setFont(mono)
        self.fingerprint_label.setObjectName("card")
        self.fingerprint_label.setContentsMargins(12, 10, 12, 10)
        self.fingerprint_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.fingerprint_label)

        self.buttons = QDialogButtonBox()
        self.trust_button = self.buttons.addButton(
            "Trust and connect", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.trust_button.setProperty("primary", True)
        self.cancel_button = self.buttons.addButton(
            "Don't connect", QDialogButtonBox.ButtonRole.RejectRole
        )
        # The safe answer is the default one: Enter must not trust a key by accident.
        self.cancel_button.setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
