"""Create or edit a context: every field checked as it is typed, with the reason beside it.

The rules are the CLI's own: ``names.name_problem`` for the name, ``workbench.values`` for the
numbers (the ranges ``nvwb``'s flags use), then the registry's ``Context`` validation for the
whole entry, whose ``InvalidValueError`` names the field it is about. The kinds offered and the
fields each shows come from the registered kinds' declarations and the core's table of fields
(``workbench.kinds.fields``), as ``nvwb``'s flags do. Saving happens on a worker (the registry
is a locked file); if it fails the dialog stays open with everything as typed and the reason on
top.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

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
from workbench.errors import InvalidValueError
from workbench.kinds import Kind, all_kinds, kind_named
from workbench.kinds.fields import CATALOGUE, INFO, form_fields
from workbench.names import name_problem
from workbench.registry import (
    DEFAULT_GRACE_PERIOD_SECONDS,
    DEFAULT_IDLE_STOP_COMMAND,
    DEFAULT_IDLE_TIMEOUT_MINUTES,
    DEFAULT_WORKBENCH_DIR,
    Context,
)

SaveFn = Callable[[Context], Context]


class ContextFormDialog(QDialog):
    """``existing`` None: a new context. ``save`` runs on a worker and stores the context."""

    def __init__(
        self,
        *,
        runner: TaskRunner,
        save: SaveFn,
        taken_names: list[str],
        existing: Context | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.existing = existing
        self.saved: Context | None = None
        self._runner = runner
        self._save = save
        self._taken = set(taken_names)
        self.setWindowTitle(f"Edit context {existing.name}" if existing else "New context")
        self.setMinimumWidth(560)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(12)
        self.banner = Banner()
        layout.addWidget(self.banner)
        intro = QLabel(
            "A context is where projects run. Workbench starts a Brev or cloud machine when a "
            "project window opens on it and stops it after the last one closes."
        )
        intro.setObjectName("hint")
        intro.setWordWrap(True)
        layout.addWidget(intro)

        self._form = QFormLayout()
        self._form.setHorizontalSpacing(12)
        self._form.setVerticalSpacing(6)
        layout.addLayout(self._form)

        self.name_edit = QLineEdit(existing.name if existing else "")
        self.name_edit.setPlaceholderText("gpu-box")
        self.name_edit.setEnabled(existing is None)
        self.kind_combo = QComboBox()
        # A built-in kind (local) is only ever shown for its one context, never offered.
        kinds: list[Kind] = (
            [kind_named(existing.kind)]
            if existing is not None and kind_named(existing.kind).builtin
            else [kind for kind in all_kinds() if not kind.builtin]
        )
        for kind in kinds:
            self.kind_combo.addItem(kind.title, kind.name)
        if existing is not None:
            self.kind_combo.setCurrentIndex(max(0, self.kind_combo.findData(existing.kind)))
            self.kind_combo.setEnabled(False)  # the registry never changes a context's kind

        self.edits: dict[str, QLineEdit] = {"name": self.name_edit}
        self.problems: dict[str, FieldProblem] = {}
        self._rows: dict[str, tuple[QLabel, QWidget]] = {}
        self._add_row("name", "Name", self.name_edit)
        self._add_row("kind", "Kind", self.kind_combo)
        for info in _FORM:
            edit = QLineEdit(_text_of(existing, info.name))
            edit.setPlaceholderText(info.placeholder)
            self.edits[info.name] = edit
            self._add_row(info.name, info.label, edit)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.save_button.setProperty("primary", True)
        self.buttons.accepted.connect(self._submit)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

        for edit in self.edits.values():
            edit.textChanged.connect(self.validate)
        self.kind_combo.currentIndexChanged.connect(self._kind_changed)
        self._kind_changed()

    def _add_row(self, key: str, label: str, widget: QWidget) -> None:
        problem = FieldProblem(widget)
        column = QWidget()
        box = QVBoxLayout(column)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        box.addWidget(widget)
        box.addWidget(problem)
        caption = QLabel(label)
        self._form.addRow(caption, column)
        self.problems[key] = problem
        self._rows[key] = (caption, column)

    # -- reading the form ----------------------------------------------------------------

    @property
    def kind(self) -> str:
        return str(self.kind_combo.currentData())

    def _shown(self) -> tuple[str, ...]:
        return form_fields(kind_named(self.kind))

    def _kind_changed(self) -> None:
        shown = set(self._shown())
        for info in _FORM:
            caption, column = self._rows[info.name]
            caption.setVisible(info.name in shown)
            column.setVisible(info.name in shown)
        self.validate()
        self.adjustSize()

    def _parsed(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The fields shown for this kind, parsed; and the problems found while parsing."""
        parsed: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for key in self._shown():
            text = self.edits[key].text().strip()
            if not text:
                continue
            kind = INFO[key].number
            if kind is None:
                parsed[key] = text
                continue
            if key == "hourly_rate":
                text = text.lstrip("$")
            problem = kind.text_problem(text)
            if problem:
                problems[key] = problem
            else:
                parsed[key] = kind.parse(key, text)
        return parsed, problems

    def build(self) -> tuple[Context | None, dict[str, str]]:
        """The context the form describes, or None and each field's problem."""
        name = self.name_edit.text().strip()
        problems: dict[str, str] = {}
        if self.existing is None:
            problem = name_problem(name)
            if problem is None and name in self._taken:
                problem = "a context of that name exists already"
            if problem:
                problems["name"] = problem
        fields, parse_problems = self._parsed()
        problems.update(parse_problems)
        if parse_problems:
            return None, problems
        if problems:
            # The name is wrong; check the other fields anyway (under a stand-in name) so that
            # every reason shows at once rather than one after the other.
            try:
                Context(name="stand-in", kind=self.kind, **fields)
            except InvalidValueError as exc:
                key = exc.field.split(".")[0].split("[")[0]
                if key in self.problems and key != "name":
                    problems[key] = exc.reason + (f" ({exc.hint})" if exc.hint else "")
            return None, problems
        try:
            if self.existing is not None:
                merged = self.existing.to_dict()
                for key in self._shown():
                    merged[key] = fields.get(key, _DEFAULTS.get(key))
                if merged.get("stop_command_on_idle") == DEFAULT_IDLE_STOP_COMMAND:
                    merged["stop_command_on_idle"] = None  # keep following the default
                return Context.from_dict(merged), {}
            return Context(name=name, kind=self.kind, **fields), {}
        except InvalidValueError as exc:
            field = exc.field.split(".")[0].split("[")[0]
            key = field if field in self.problems else "name"
            reason = exc.reason + (f" ({exc.hint})" if exc.hint else "")
            return None, {key: reason}

    def validate(self) -> bool:
        context, problems = self.build()
        for key, widget in self.problems.items():
            widget.set_problem(problems.get(key))
        self.save_button.setEnabled(context is not None)
        return context is not None

    # -- saving --------------------------------------------------------------------------

    def _submit(self) -> None:
        context, _problems = self.build()
        if context is None:
            self.validate()
            return
        self.save_button.setEnabled(False)
        self.save_button.setText("Saving…")
        self._runner.submit(
            lambda: self._save(context), self._saved, self._save_failed, receiver=self
        )

    def _saved(self, context: Context) -> None:
        self.saved = context
        self.accept()

    def _save_failed(self, exc: Exception) -> None:
        # Everything typed stays; the reason goes on top and beside its field when it has one.
        self.save_button.setText("Save")
        self.save_button.setEnabled(True)
        text = error_text(exc)
        self.banner.show_message(f"Not saved: {text}")
        if isinstance(exc, InvalidValueError) and exc.field in self.problems:
            self.problems[exc.field].set_problem(exc.reason)


# Every field any kind shows, in the catalogue's order; each kind shows its own (``_shown``).
_FORM: Final = tuple(info for info in CATALOGUE if info.form)

# An emptied field goes back to its default, as the CLI's create would leave it.
_DEFAULTS: Final[dict[str, Any]] = {
    "description": "",
    "workbench_dir": DEFAULT_WORKBENCH_DIR,
    "idle_timeout_minutes": DEFAULT_IDLE_TIMEOUT_MINUTES,
    "grace_period_seconds": DEFAULT_GRACE_PERIOD_SECONDS,
    "idle_gpu_busy_percent": 0,
}


def _text_of(context: Context | None, key: str) -> str:
    if context is None:
        return ""
    value = getattr(context, key)
    if value is None:
        return ""
    if key == "hourly_rate":
        return f"{value:g}"
    if key == "idle_gpu_busy_percent" and value == 0:
        return ""  # off: the placeholder says so
    return str(value)
