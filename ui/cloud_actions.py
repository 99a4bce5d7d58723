"""The main window's cloud actions: a new cloud GPU, the Costs view, and what the service says.

Kept apart from the window (``ui/main_window.py`` adds the two actions to its toolbar) and from
the context actions (which ask ``ask_delete`` here when a context's machine was created by
Workbench). The service's notices (the budget reached, a machine that cannot stop left idle)
go to the tray, which shows them in the window's status bar too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QMessageBox, QWidget

from ui.costs_view import CostsView
from ui.dialogs.cloud_gpu import NewCloudGpuDialog
from workbench import presentation
from workbench.registry import Context
from workbench.service.messages import NoticeEvent

if TYPE_CHECKING:
    from ui.main_window import MainWindow


class CloudActions(QObject):
    """``new_gpu`` and ``costs``, and the notices of the service."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.costs_view: CostsView | None = None
        self.new_gpu = window.make_action(
            "cloud-gpu",
            "New cloud GPU…",
            self.new_cloud_gpu,
            "Ctrl+Shift+G",
            "Find a cloud GPU that fits, see its price, create a context on it",
        )
        self.costs = window.make_action(
            "costs", "Costs", self.show_costs, tip="What cloud machines cost; the budget"
        )
        window.bridge.notice.connect(self._notice)

    def new_cloud_gpu(self) -> None:
        window = self.window
        dialog = NewCloudGpuDialog(
            paths=window.bridge.paths,
            env=window.bridge.env,
            runner=window.bridge.long_tasks,
            project=window.selected_project(),
            taken_names=window.contexts_model.names(),
            parent=window,
        )

        def made() -> None:
            if dialog.made is not None:
                name = dialog.made.context.name
                window.statusBar().showMessage(f"{name} is running on a new cloud GPU", 15000)
            window.bridge.refresh()

        window.open_form(dialog, made)

    def show_costs(self) -> None:
        if self.costs_view is None:
            self.costs_view = CostsView(self.window.bridge, self.window)
            self.costs_view.finished.connect(lambda _r: self._costs_closed())
        else:
            self.costs_view.refresh()
        self.costs_view.show()
        self.costs_view.raise_()

    def _costs_closed(self) -> None:
        view, self.costs_view = self.costs_view, None
        if view is not None:
            view.deleteLater()

    def _notice(self, event: NoticeEvent) -> None:
        level = "warning" if event.level == "warning" else "info"
        self.window.tray.notify(event.title, event.message, level)


def ask_delete(
    parent: QWidget,
    context: Context,
    *,
    context_only: Callable[[], None],
    with_instance: Callable[[], None],
) -> QMessageBox:
    """Deleting a context whose machine Workbench created: the machine too, or only the
    context (which leaves the machine running and costing, and says so)."""
    record = context.created_instance or {}
    rate = presentation.money(record.get("price_per_hour"))
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Delete context")
    box.setText(f"Delete the context {context.name} and its {record.get('type', '')} machine?")
    box.setInformativeText(
        f"Workbench created this machine. Deleting it ends its cost ({rate}/h) and everything on "
        "it is gone. Deleting only the context leaves the machine running and costing; you can "
        "delete it later with the cloud's own tools."
    )
    both = box.addButton("Delete context and machine", QMessageBox.ButtonRole.DestructiveRole)
    both.setProperty("danger", True)
    only = box.addButton("Delete only the context", QMessageBox.ButtonRole.ActionRole)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)

    def finished() -> None:
        clicked = box.clickedButton()
        if clicked is both:
            with_instance()
        elif clicked is only:
            context_only()
        box.deleteLater()

    box.finished.connect(finished)
    box.open()
    return box
