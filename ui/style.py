"""The app's look in one place: the style sheet, icons from ``resources/icons`` and state colours.

State colours are here as well as in the style sheet because table cells and badges are painted
from code; keeping the two lists side by side keeps "running is green" true everywhere.
"""

from __future__ import annotations

from functools import cache

from PySide6.QtGui import QColor, QIcon
from PySide6.QtWidgets import QApplication

from workbench.presentation import Colour, state_colour
from workbench.resources import resource_path

# Background and text of each colour a state is shown in; which colour a state word gets is
# ``workbench.presentation.state_colour``'s (shared with ``nvwb``). Readable on white, never colour
# alone (the state's word is always shown with it).
COLOURS: dict[Colour, tuple[str, str]] = {
    "green": ("#e3f4e4", "#1b5e20"),
    "amber": ("#fff4e0", "#8a4b00"),
    "grey": ("#eceff1", "#455a64"),
    "red": ("#fde7e7", "#b71c1c"),
    "purple": ("#ede7f6", "#4527a0"),
}


def state_colours(state: str) -> tuple[QColor, QColor]:
    """(background, foreground) for a state word: a context's, an app's or a sync's."""
    background, foreground = COLOURS[state_colour(state)]
    return QColor(background), QColor(foreground)


def state_badge_css(state: str) -> str:
    background, foreground = COLOURS[state_colour(state)]
    return f"background: {background}; color: {foreground};"


@cache
def icon(name: str) -> QIcon:
    """The icon ``resources/icons/<name>.svg`` (an empty icon if it is missing)."""
    path = resource_path("icons", f"{name}.svg")
    return QIcon(str(path)) if path.is_file() else QIcon()


def kind_icon(kind: str) -> QIcon:
    return icon(kind if kind in ("local", "ssh", "brev", "command") else "context")


def apply_style(app: QApplication) -> None:
    """Give the whole app the style sheet and the window icon."""
    app.setStyle("Fusion")  # the same widgets everywhere, so the style sheet looks as designed
    sheet = resource_path("style", "workbench.qss")
    if sheet.is_file():
        # Style sheets resolve url() against the working directory; point them at resources/.
        text = sheet.read_text(encoding="utf-8")
        text = text.replace("@icons/", resource_path("icons").as_posix() + "/")
        app.setStyleSheet(text)
    app.setWindowIcon(icon("workbench"))
