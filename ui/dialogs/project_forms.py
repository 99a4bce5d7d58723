"""New and cloned projects: the forms, checked as typed, and the git work done on a worker.

Creating and cloning run git, so both happen off the GUI thread; a failure leaves the dialog
open with the reason on top and every field as it was typed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from ui.format import error_text
from ui.tasks import TaskRunner
from ui.widgets.banner import Banner
from ui.widgets.checked_field import FieldProblem
from workbench.names import name_problem
from workbench.paths import Paths
from workbench.projects import BaseEnvironment, Project, clone_project, create_project


class _ProjectForm(QDialog):
    """What both forms share: a banner, a form of checked fields, and a worker-run submit."""

    def __init__(self, title: str, runner: TaskRunner, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(520)
        self.project: Project | None = None
        self._runner = runner
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(12)
        self.banner = Banner()
        layout.addWidget(self.banner)
        self.form = QFormLayout()
        self.form.setHorizontalSpacing(12)
        self.form.setVerticalSpacing(6)
        layout.addLayout(self.form)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setProperty("primary", True)
        self.buttons.accepted.connect(self._submit)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.problems: dict[str, FieldProblem] = {}

    def add_field(self, key: str, label: str, widget: QWidget) -> None:
        problem = FieldProblem(widget)
        column = QWidget()
        box = QVBoxLayout(column)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        box.addWidget(widget)
        box.addWidget(problem)
        self.form.addRow(QLabel(label), column)
        self.problems[key] = problem

    def check(self) -> dict[str, str]:
        raise NotImplementedError

    def work(self) -> Callable[[], Project]:
        raise NotImplementedError

    def validate(self) -> bool:
        problems = self.check()
        for key, widget in self.problems.items():
            widget.set_problem(problems.get(key))
        self.ok_button.setEnabled(not problems)
        return not problems

    def _submit(self) -> None:
        if not self.validate():
            return
        self.ok_button.setEnabled(False)
        self.ok_button.setText("Working…")
        self._runner.submit(self.work(), self._done, self._failed, receiver=self)

    def _done(self, project: Project) -> None:
        self.project = project
        self.accept()

    def _failed(self, exc: Exception) -> None:
        self.ok_button.setText("OK")
        self.ok_button.setEnabled(True)
        text = error_text(exc)
        self.banner.show_message(text)


class NewProjectDialog(_ProjectForm):
    """A new project from a base environment of the catalog."""

    def __init__(
        self,
        *,
        paths: Paths,
        env: Mapping[str, str],
        catalog: list[BaseEnvironment],
        taken_names: list[str],
        runner: TaskRunner,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__("New project", runner, parent)
        self._paths = paths
        self._env = dict(env)
        self._taken = set(taken_names)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("my-rag-app")
        self.base_combo = QComboBox()
        for base in catalog:
            self.base_combo.addItem(base.name, base.id)
            self.base_combo.setItemData(
                self.base_combo.count() - 1, f"{base.image_ref}\n{base.description}", 3
            )
        self.description_edit = QLineEdit()
        self.description_edit.setPlaceholderText("optional, one line")
        self.add_field("name", "Name", self.name_edit)
        self.add_field("base", "Base environment", self.base_combo)
        self.add_field("description", "Description", self.description_edit)
        hint = QLabel(f"Created in {paths.projects_dir}, as a git repository.")
        hint.setObjectName("hint")
        self.form.addRow("", hint)
        self.name_edit.textChanged.connect(self.validate)
        self.description_edit.textChanged.connect(self.validate)
        self.validate()

    def check(self) -> dict[str, str]:
        problems: dict[str, str] = {}
        name = self.name_edit.text().strip()
        problem = name_problem(name)
        if problem is None and (name in self._taken or (self._paths.projects_dir / name).exists()):
            problem = "a project of that name exists already"
        if problem:
            problems["name"] = problem
        if self.base_combo.count() == 0:
            problems["base"] = "the base-environment catalog is empty"
        return problems

    def work(self) -> Callable[[], Project]:
        name = self.name_edit.text().strip()
        base = str(self.base_combo.currentData())
        description = self.description_edit.text().strip()
        return lambda: create_project(self._paths, name, base, description, env=self._env)


class CloneProjectDialog(_ProjectForm):
    """A project cloned from a git URL or a local repository."""

    def __init__(
        self,
        *,
        paths: Paths,
        env: Mapping[str, str],
        runner: TaskRunner,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__("Clone project", runner, parent)
        self._paths = paths
        self._env = dict(env)
        self.source_edit = QLineEdit()
        self.source_edit.setPlaceholderText(
            "https://github.com/NVIDIA/workbench-example-hybrid-rag"
        )
        self.dest_edit = QLineEdit()
        self.dest_edit.setPlaceholderText("folder name (default: the repository's name)")
        self.add_field("source", "Repository", self.source_edit)
        self.add_field("dest", "Folder", self.dest_edit)
        self.source_edit.textChanged.connect(self.validate)
        self.dest_edit.textChanged.connect(self.validate)
        self.validate()

    def check(self) -> dict[str, str]:
        problems: dict[str, str] = {}
        if not self.source_edit.text().strip():
            problems["source"] = "must not be empty"
        dest = self.dest_edit.text().strip()
        if dest:
            problem = name_problem(dest)
            if problem is None and (self._paths.projects_dir / dest).exists():
                problem = "that folder exists already"
            if problem:
                problems["dest"] = problem
        return problems

    def work(self) -> Callable[[], Project]:
        source = self.source_edit.text().strip()
        dest = self.dest_edit.text().strip() or None
        return lambda: clone_project(self._paths, source, dest, env=self._env)
