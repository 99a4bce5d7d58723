"""The variables and secrets tab: ``variables.env`` edited line by line, secrets in the keyring.

Variables are plain text kept in git. Secrets (the spec's ``execution.secrets``) go only to the
OS keyring, under the project's identity on this machine (``workbench.identity``, resolved on the
worker: a folder whose identity is unclear shows why in the banner and stores nothing); the table
shows whether each is set and, at most, ``secrets.mask`` of its value. The keyring and the file
are touched on a worker, and an entry the person typed stays in its field until it has been
stored.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.tasks import TaskRunner
from ui.widgets.banner import Banner
from ui.widgets.checked_field import FieldProblem
from ui.widgets.table_cells import cell
from workbench.build_inputs import (
    delete_variable,
    list_variables,
    looks_sensitive,
    set_variable,
)
from workbench.errors import WorkbenchError
from workbench.identity import identify
from workbench.names import env_name_problem
from workbench.paths import Paths
from workbench.projects import Project
from workbench.secrets import SecretStore, mask, project_secret_key
from workbench.spec.models import Secret


class VariablesPane(QWidget):
    """Both editors under one banner that says what went wrong, if anything."""

    def __init__(
        self,
        *,
        project: Project,
        paths: Paths,
        secrets: list[Secret],
        store: SecretStore,
        runner: TaskRunner,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(8)
        self.banner = Banner()
        layout.addWidget(self.banner)
        self.variables = VariablesEditor(project.path, runner, self.banner)
        self.secrets = SecretsEditor(
            project, paths, secrets, store=store, runner=runner, banner=self.banner
        )
        layout.addWidget(self.variables, 1)
        layout.addWidget(self.secrets, 1)


class VariablesEditor(QWidget):
    """``variables.env``: plain text, in git; a name that looks like a secret is refused."""

    def __init__(
        self, project_dir: Path, runner: TaskRunner, banner: Banner, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.project_dir = project_dir
        self.runner = runner
        self.banner = banner
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        title = QLabel("Variables (variables.env, kept in git)")
        title.setObjectName("sectionTitle")
        layout.addWidget(title)
        self.table = _table(("Name", "Value"))
        layout.addWidget(self.table, 1)
        add = QHBoxLayout()
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("NAME")
        self.value_edit = QLineEdit()
        self.value_edit.setPlaceholderText("value")
        self.set_button = QPushButton("Set")
        self.delete_button = QPushButton("Delete selected")
        add.addWidget(self.name_edit, 1)
        add.addWidget(self.value_edit, 2)
        add.addWidget(self.set_button)
        add.addWidget(self.delete_button)
        layout.addLayout(add)
        self.name_problem = FieldProblem(self.name_edit)
        layout.addWidget(self.name_problem)
        self.name_edit.textChanged.connect(self._check_name)
        self.set_button.clicked.connect(self._set_variable)
        self.delete_button.clicked.connect(self._delete_variable)
        self.reload()
        self._check_name()

    def reload(self) -> None:
        try:
            variables = list_variables(self.project_dir)
        except WorkbenchError as exc:
            self.banner.show_message(str(exc))
            variables = []
        self.table.setRowCount(len(variables))
        for row, variable in enumerate(variables):
            self.table.setItem(row, 0, QTableWidgetItem(variable.name))
            self.table.setItem(row, 1, QTableWidgetItem(variable.value or ""))

    def _check_name(self) -> None:
        name = self.name_edit.text().strip()
        problem = env_name_problem(name) if name else None
        if problem is None and name and looks_sensitive(name):
            problem = "looks like a secret: add it to the spec's secrets so it goes to the keyring"
        self.name_problem.set_problem(problem)
        self.set_button.setEnabled(bool(name) and problem is None)

    def _set_variable(self) -> None:
        name, value = self.name_edit.text().strip(), self.value_edit.text()
        self.set_button.setEnabled(False)

        def done(_: object) -> None:
            self.banner.hide()
            self.name_edit.clear()  # only now: a failed write keeps what was typed
            self.value_edit.clear()
            self.reload()

        self.runner.submit(
            lambda: set_variable(self.project_dir, name, value), done, self._failed, receiver=self
        )

    def _delete_variable(self) -> None:
        row = self.table.currentRow()
        if row < 0:
            return
        name = cell(self.table, row, 0).text()
        self.runner.submit(
            lambda: delete_variable(self.project_dir, name),
            lambda _: self.reload(),
            self._failed,
            receiver=self,
        )

    def _failed(self, exc: Exception) -> None:
        self._check_name()
        self.banner.show_message(str(exc))


class SecretsEditor(QWidget):
    """The spec's secrets: set or removed in the keyring, shown masked at most."""

    def __init__(
        self,
        project: Project,
        paths: Paths,
        secrets: list[Secret],
        *,
        store: SecretStore,
        runner: TaskRunner,
        banner: Banner,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.project = project
        self.paths = paths
        self.secrets = secrets
        self.store = store
        self.runner = runner
        self.banner = banner
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        title = QLabel("Secrets (stored in your OS keyring, never in the project)")
        title.setObjectName("sectionTitle")
        layout.addWidget(title)
        self.table = _table(("Secret", "Description", "Value"))
        self.table.setRowCount(len(secrets))
        for row, secret in enumerate(secrets):
            self.table.setItem(row, 0, QTableWidgetItem(secret.variable))
            self.table.setItem(row, 1, QTableWidgetItem(secret.description))
            self.table.setItem(row, 2, QTableWidgetItem("checking…"))
        layout.addWidget(self.table, 1)
        row_box = QHBoxLayout()
        self.value_edit = QLineEdit()
        self.value_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.value_edit.setPlaceholderText("new value for the selected secret")
        self.store_button = QPushButton("Store in keyring")
        self.remove_button = QPushButton("Remove")
        row_box.addWidget(self.value_edit, 1)
        row_box.addWidget(self.store_button)
        row_box.addWidget(self.remove_button)
        layout.addLayout(row_box)
        if not secrets:
            for widget in (self.value_edit, self.store_button, self.remove_button, self.table):
                widget.setEnabled(False)
            self.table.hide()
            none = QLabel("The spec names no secrets.")
            none.setObjectName("hint")
            layout.addWidget(none)
        self.store_button.clicked.connect(self._store)
        self.remove_button.clicked.connect(self._remove)
        self.reload()

    def _key(self, variable: str) -> str:
        """The keyring key under the project's identity; on a worker (it may mint one)."""
        return project_secret_key(identify(self.paths, self.project).id, variable)

    def shown_values(self) -> list[str]:
        return [cell(self.table, row, 2).text() for row in range(self.table.rowCount())]

    def reload(self) -> None:
        if not self.secrets:
            return
        names = [s.variable for s in self.secrets]

        def job() -> dict[str, str]:
            # Masked here, on the worker: the full value never reaches a widget.
            return {name: mask(self.store.get(self._key(name))) for name in names}

        def done(masked: dict[str, str]) -> None:
            for row, name in enumerate(names):
                cell(self.table, row, 2).setText(masked.get(name) or "not set")

        def failed(exc: Exception) -> None:
            for row in range(len(names)):
                cell(self.table, row, 2).setText("keyring unavailable")
            self.banner.show_message(str(exc), level="warning")

        self.runner.submit(job, done, failed, receiver=self)

    def _selected(self) -> str | None:
        row = self.table.currentRow()
        if row < 0 and len(self.secrets) == 1:
            row = 0
        return self.secrets[row].variable if 0 <= row < len(self.secrets) else None

    def _store(self) -> None:
        variable, value = self._selected(), self.value_edit.text()
        if variable is None or not value:
            self.banner.show_message("Pick a secret and type its value first.", level="warning")
            return

        def done(_: object) -> None:
            self.value_edit.clear()  # only now: a failed store keeps what was typed
            self.banner.hide()
            self.reload()

        self.runner.submit(
            lambda: self.store.set(self._key(variable), value), done, self._failed, receiver=self
        )

    def _remove(self) -> None:
        variable = self._selected()
        if variable is None:
            return
        self.runner.submit(
            lambda: self.store.delete(self._key(variable)),
            lambda _: self.reload(),
            self._failed,
            receiver=self,
        )

    def _failed(self, exc: Exception) -> None:
        self.banner.show_message(str(exc))


def _table(columns: tuple[str, ...]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().hide()
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return table
