"""Daily work from a project window: Terminal, Open in VS Code, the Git tab, compose services.

Installed onto a ``ProjectWindow`` by ``install`` (a toolbar, a tab, a section of the Apps tab),
so the window's own code stays about opening and closing the project:

- **Terminal** starts the user's terminal emulator on ``nvwb attach`` (``ui.terminal``); that
  command holds the context with a lease of its own process while it runs.
- **Open in VS Code** asks the service where the project is (``attach_target``), writes the
  context's SSH entry (``workbench.ssh_entry``), asks before adding the ``Include`` line to
  ``~/.ssh/config``, and starts ``code`` on the project's folder there (``workbench.editor``).
- **Git** is ``ui.panes.git_pane``, on the laptop's copy.
- **Compose services** (``ui.panes.compose_pane``) when the spec names a compose file.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QMessageBox

from ui.panes.compose_pane import ComposePane
from ui.panes.git_pane import GitPane
from ui.style import icon
from ui.terminal import open_terminal
from workbench import osproc
from workbench.editor import editor_argv
from workbench.errors import WorkbenchError
from workbench.ssh_entry import SshEntries, entry_from_wire

if TYPE_CHECKING:
    from ui.project_window import ProjectWindow
    from workbench.service.messages import AttachTarget

log = logging.getLogger(__name__)


class DailyWork(QObject):
    """The window's Terminal and editor actions, Git tab and compose section."""

    def __init__(self, window: ProjectWindow) -> None:
        super().__init__(window)
        self.window = window
        bridge = window.bridge
        self.last_terminal: list[str] | None = None
        self.last_editor: list[str] | None = None
        self.ask_include: Callable[[str], bool] = self._ask_include
        toolbar = window.addToolBar("Work")
        toolbar.setObjectName("dailyWork")
        self.terminal_action = toolbar.addAction(icon("output"), "Terminal")
        self.terminal_action.setToolTip("A shell in the project's container, in your terminal")
        self.terminal_action.triggered.connect(self.open_terminal)
        self.editor_action = toolbar.addAction(icon("files"), "Open in VS Code")
        self.editor_action.setToolTip("VS Code on the project's folder, over SSH on a remote")
        self.editor_action.triggered.connect(self._editor_clicked)
        self.container_editor_action = toolbar.addAction(icon("apps"), "VS Code in the container")
        self.container_editor_action.setToolTip(
            "VS Code attached to the running container (Dev Containers)"
        )
        self.container_editor_action.triggered.connect(self._container_editor_clicked)
        usable = window.link is not None
        for action in (self.terminal_action, self.editor_action, self.container_editor_action):
            action.setEnabled(usable)

        self.git = GitPane(window.project.path, env=bridge.env, runner=bridge.tasks)
        window.tabs.addTab(self.git, icon("files"), "Git")
        window.tabs.currentChanged.connect(self._tab_shown)
        self.git.refresh()

        self.compose: ComposePane | None = None
        spec = window.document.spec if window.document is not None else None
        relative = spec.environment.compose_file_path.strip() if spec is not None else ""
        if relative and window.link is not None:
            self.compose = ComposePane(
                relative,
                call=self._call,
                project=str(window.project.path),
                context=lambda: window.context,
                runner=bridge.long_tasks,
            )
            layout = window.apps.layout()
            if layout is not None:
                layout.addWidget(self.compose)

    # -- actions -------------------------------------------------------------------------

    def open_terminal(self) -> None:
        window = self.window
        try:
            self.last_terminal = open_terminal(
                window.bridge.paths, window.bridge.env, window.context, window.project.path
            )
        except WorkbenchError as exc:
            self._say(str(exc), exc.hint)
            return
        window.output.append("terminal: " + " ".join(self.last_terminal))

    def open_editor(self, editor: str = "code", *, container: bool = False) -> None:
        window = self.window
        project = window.project.path

        def where() -> tuple[AttachTarget, Path | None, bool]:
            target: AttachTarget = self._call(
                lambda c: c.attach_target(window.context, project=str(project))
            )
            if target.host is None:
                return target, None, True
            entries = SshEntries.for_env(window.bridge.paths, window.bridge.env)
            config = entries.write(
                entry_from_wire(target.host.to_wire()), multiplex=osproc.openssh_multiplexing()
            )
            return target, config, entries.included()

        def launch(found: tuple[AttachTarget, Path | None, bool]) -> None:
            target, config, included = found
            if container and target.container_state != "running":
                self._say(
                    "the project's container is not running",
                    "wait until the project is open, then try again",
                )
                return
            if config is not None and not included:
                entries = SshEntries.for_env(window.bridge.paths, window.bridge.env)
                if self.ask_include(entries.include_line()):
                    try:
                        entries.add_include()
                    except WorkbenchError as exc:
                        self._say(str(exc), exc.hint)
            argv = editor_argv(editor, target, container=container, local_project=project)
            self.last_editor = argv
            window.output.append("editor: " + " ".join(argv))
            try:
                subprocess.Popen(argv, env=dict(window.bridge.env),
                                 **osproc.detached_popen_kwargs())  # fmt: skip
            except OSError:
                self._say(
                    f"'{argv[0]}' is not on the PATH",
                    "install VS Code and its 'code' command, or run: " + " ".join(argv),
                )

        def failed(exc: Exception) -> None:
            self._say(str(exc), getattr(exc, "hint", None))

        window.bridge.long_tasks.submit(where, launch, failed, receiver=window)

    # -- internals -----------------------------------------------------------------------

    def _editor_clicked(self, *_checked: object) -> None:
        self.open_editor()

    def _container_editor_clicked(self, *_checked: object) -> None:
        self.open_editor(container=True)

    def _call(self, call: Callable[[Any], Any]) -> Any:
        link = self.window.link
        if link is None:
            raise WorkbenchError("the project's spec cannot be read")
        return link._call(call)

    def _tab_shown(self, index: int) -> None:
        shown = self.window.tabs.widget(index)
        if shown is self.git:
            self.git.refresh()
        elif shown is self.window.apps and self.compose is not None:
            self.compose.refresh()

    def _ask_include(self, line: str) -> bool:
        answer = QMessageBox.question(
            self.window,
            "Let editors find this context",
            "Workbench wrote an SSH host for this context. Add this line at the top of "
            f"~/.ssh/config so VS Code and other editors find it?\n\n{line}\n\n"
            "Nothing else in the file changes.",
        )
        return answer == QMessageBox.StandardButton.Yes

    def _say(self, text: str, hint: str | None) -> None:
        self.window.banner.show_message(text + (f" ({hint})" if hint else ""), level="warning")
        self.window.output.append(text)


def install(window: ProjectWindow) -> DailyWork:
    return DailyWork(window)
