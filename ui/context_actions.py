"""The main window's context actions: create, edit, delete, start, stop, check a connection.

Each works on the context selected in the window's table, and ``update`` enables only the
actions that make sense for it. Forms and questions open without blocking, and the work runs on
the bridge's workers; outcomes go to the window's status bar and banner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from ui.connection_check import check_connection
from ui.dialogs.confirm import ask_confirm
from ui.dialogs.context_form import ContextFormDialog
from ui.models.contexts_model import ContextRow
from workbench.registry import LOCAL_CONTEXT, Context, Registry

if TYPE_CHECKING:
    from ui.main_window import MainWindow


class ContextActions(QObject):
    """The actions (``new``, ``edit``, ``start``, ``stop``, ``check``) and what they do.

    Deleting is here too, but its action is the window's: the same key deletes a project when
    the projects list has the focus.
    """

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.new = window.make_action(
            "new-context", "New context…", self.new_context, "Ctrl+Shift+N"
        )
        self.edit = window.make_action("edit", "Edit…", self.edit_context, "Ctrl+E")
        self.start = window.make_action(
            "start", "Start", self.start_context, "Ctrl+R", "Start the selected context"
        )
        self.stop = window.make_action(
            "stop", "Stop", self.stop_context, "Ctrl+.", "Stop the selected context"
        )
        self.check = window.make_action(
            "key", "Check connection", self.check_connection, tip="Connect over SSH once"
        )

    def update(self, row: ContextRow | None) -> None:
        """Enable what can be done to ``row`` (the selected context, if any) now."""
        remote = row is not None and row.context.kind != LOCAL_CONTEXT
        self.edit.setEnabled(row is not None)
        self.start.setEnabled(
            remote and row is not None and row.state in ("stopped", "error", "unknown")
        )
        self.stop.setEnabled(
            remote and row is not None and row.state in ("running", "starting", "error")
        )
        self.check.setEnabled(remote)

    # -- creating and editing ------------------------------------------------------------

    def new_context(self) -> None:
        self._context_form(None)

    def edit_context(self) -> None:
        row = self.window.selected_context()
        if row is not None:
            self._context_form(row.context)

    def _context_form(self, existing: Context | None) -> None:
        window = self.window
        paths = window.bridge.paths

        def save(context: Context) -> Context:
            with Registry.locked(paths) as registry:
                if existing is None:
                    return registry.create(context)
                return registry.replace(context)

        dialog = ContextFormDialog(
            runner=window.bridge.tasks,
            save=save,
            taken_names=window.contexts_model.names(),
            existing=existing,
            parent=window,
        )
        window.open_form(dialog, window.bridge.refresh)

    # -- deleting ------------------------------------------------------------------------

    def delete_context(self) -> None:
        window = self.window
        row = window.selected_context()
        if row is None or row.name == LOCAL_CONTEXT:
            if row is not None:
                window.statusBar().showMessage("The local context is built in; it stays.", 8000)
            return
        paths, name = window.bridge.paths, row.name
        if row.context.created_instance:  # Workbench made its machine: ask about that too
            from ui.cloud_actions import ask_delete

            window.dialog = ask_delete(
                window,
                row.context,
                context_only=lambda: self._delete_only(name),
                with_instance=lambda: self._delete_with_machine(name),
            )
            return

        def delete() -> None:
            def job() -> None:
                with Registry.locked(paths) as registry:
                    registry.delete(name)

            window.bridge.tasks.submit(
                job, lambda _: window.bridge.refresh(), window.report("delete"), receiver=window
            )

        detail = "The machine itself is not touched; only Workbench forgets it."
        if row.running and row.stoppable:
            detail = f"{name} is running. " + detail + " Stop it first if you want it stopped."
        window.dialog = ask_confirm(
            window,
            "Delete context",
            f"Delete the context {name}?",
            confirm="Delete",
            on_yes=delete,
            detail=detail,
        )

    def _delete_only(self, name: str) -> None:
        window, paths = self.window, self.window.bridge.paths

        def job() -> None:
            with Registry.locked(paths) as registry:
                registry.delete(name)

        window.bridge.tasks.submit(
            job, lambda _: window.bridge.refresh(), window.report("delete"), receiver=window
        )
        window.statusBar().showMessage(f"{name} deleted; its machine is left running", 15000)

    def _delete_with_machine(self, name: str) -> None:
        window = self.window
        window.statusBar().showMessage(f"Deleting {name} and its machine…")

        def done(_answer: object) -> None:
            window.statusBar().showMessage(f"{name} and its machine are deleted", 15000)
            window.bridge.refresh()

        window.bridge.call(
            lambda client: client.delete_instance(name),
            done,
            window.report(f"delete {name}'s machine"),
            receiver=window,
        )

    # -- starting and stopping -----------------------------------------------------------

    def start_context(self) -> None:
        window = self.window
        row = window.selected_context()
        if row is None:
            return
        name = row.name
        window.contexts_model.apply_state(name, "starting", "")
        window.bridge.start_context(name, on_error=window.report(f"start {name}"), receiver=window)

    def stop_context(self) -> None:
        row = self.window.selected_context()
        if row is not None:
            self.window.tray.stop(row.name)

    # -- checking a connection -----------------------------------------------------------

    def check_connection(self) -> None:
        """Connect once over SSH: the place where a new host key is first shown."""
        window = self.window
        row = window.selected_context()
        if row is None:
            return
        name = row.name
        window.statusBar().showMessage(f"Connecting to {name}…")

        def done(text: str) -> None:
            window.statusBar().showMessage(f"{name}: {text}", 15000)
            window.last_check = f"ok: {text}"

        def failed(exc: Exception) -> None:
            window.last_check = f"failed: {exc}"
            window.report(f"connect to {name}")(exc)

        window.bridge.tasks.submit(
            lambda: check_connection(
                row.context,
                window.bridge.env,
                window.prompter.host_key_policy(),
                window.prompter.passphrase_provider(name),
            ),
            done,
            failed,
            receiver=window,
        )
