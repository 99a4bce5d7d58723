"""The contexts table: registry entries joined with the service's live snapshots.

Rows are keyed by context name. A new status only changes the cells that changed, so the
selection and scroll position survive the poll every couple of seconds.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from ui import format as fmt
from ui.bridge import ContextsView
from ui.style import kind_icon, state_colours
from workbench import presentation
from workbench.registry import Context
from workbench.service.messages import ContextSnapshot, LeaseInfo

ContextRole = Qt.ItemDataRole.UserRole + 1
SnapshotRole = Qt.ItemDataRole.UserRole + 2
StateRole = Qt.ItemDataRole.UserRole + 3

COLUMNS = ("Name", "Kind", "State", "GPUs", "Uptime · cost", "Held by", "Activity")
NAME, KIND, STATE, GPUS, COST, HOLDERS, ACTIVITY = range(len(COLUMNS))

_KIND_TEXT = {"local": "this machine", "ssh": "SSH host", "brev": "Brev", "command": "command"}

Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class ContextRow:
    """One context as the table shows it (``snapshot``: as the service last saw it, if it has)."""

    context: Context
    snapshot: ContextSnapshot | None = None

    @property
    def name(self) -> str:
        return self.context.name

    @property
    def state(self) -> str:
        return self.snapshot.state if self.snapshot is not None else "unknown"

    @property
    def message(self) -> str:
        return self.snapshot.message if self.snapshot is not None else ""

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def stoppable(self) -> bool:
        if self.snapshot is None:
            return self.context.kind != "local"
        return self.snapshot.stoppable

    @property
    def leases(self) -> tuple[LeaseInfo, ...]:
        return self.snapshot.leases if self.snapshot is not None else ()

    def with_state(self, state: str, message: str) -> ContextRow:
        """This row as a state event says it is now, before the next full status."""
        snapshot = self.snapshot or ContextSnapshot(
            name=self.context.name,
            kind=self.context.kind,
            state=state,
            message=message,
            state_since=time.time(),
            stoppable=self.context.kind != "local",
            always_on=False,
            leases=(),
            grace_period_seconds=self.context.grace_period_seconds,
        )
        return ContextRow(self.context, dataclasses.replace(snapshot, state=state, message=message))

    def cell(self, column: int) -> str:
        if column == NAME:
            return self.name
        if column == KIND:
            return _KIND_TEXT.get(self.context.kind, self.context.kind)
        if column == STATE:
            return self.state
        if column == GPUS:
            return fmt.gpu_short(self.context.gpus)
        if column == COST:
            return presentation.uptime_and_cost(self.snapshot) if self.snapshot else ""
        if column == HOLDERS:
            return fmt.holders(self.leases)
        if column == ACTIVITY:
            # The words of ``nvwb status``'s NOTE: the news (a failure's message, terminate-only,
            # the grace countdown, the agent's inactivity), not the provider's echo of a state.
            return presentation.note(self.snapshot) if self.snapshot else ""
        return ""


class ContextsModel(QAbstractTableModel):
    """The rows of ``ContextsView`` for a ``QTableView``."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[ContextRow] = []

    # -- updating ------------------------------------------------------------------------

    def set_view(self, view: ContextsView) -> None:
        rows = [ContextRow(ctx, view.snapshots.get(ctx.name)) for ctx in view.contexts]
        if [r.name for r in rows] != [r.name for r in self._rows]:
            self.beginResetModel()
            self._rows = rows
            self.endResetModel()
            return
        for number, (old, new) in enumerate(zip(self._rows, rows, strict=True)):
            if old != new:
                self._rows[number] = new
                self.dataChanged.emit(self.index(number, 0), self.index(number, len(COLUMNS) - 1))

    def apply_state(self, name: str, state: str, message: str) -> None:
        """A state event: shown at once, before the next full status arrives."""
        for number, row in enumerate(self._rows):
            if row.name == name:
                self._rows[number] = row.with_state(state, message)
                self.dataChanged.emit(self.index(number, 0), self.index(number, len(COLUMNS) - 1))

    # -- reading -------------------------------------------------------------------------

    def rows(self) -> list[ContextRow]:
        return list(self._rows)

    def row(self, name: str) -> ContextRow | None:
        return next((r for r in self._rows if r.name == name), None)

    def row_at(self, number: int) -> ContextRow | None:
        return self._rows[number] if 0 <= number < len(self._rows) else None

    def names(self) -> list[str]:
        return [r.name for r in self._rows]

    # -- QAbstractTableModel -------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return row.cell(column)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == STATE and row.message:
                return f"{row.state}: {row.message}"
            if column == NAME:
                return row.context.description or None
            if column == GPUS:
                return fmt.gpu_summary(row.context.gpus) or None
            text = row.cell(column)
            return text or None
        if role == Qt.ItemDataRole.DecorationRole and column == NAME:
            return kind_icon(row.context.kind)
        if column == STATE and role in (
            Qt.ItemDataRole.BackgroundRole,
            Qt.ItemDataRole.ForegroundRole,
        ):
            background, foreground = state_colours(row.state)
            return background if role == Qt.ItemDataRole.BackgroundRole else foreground
        if role == Qt.ItemDataRole.TextAlignmentRole and column == STATE:
            return Qt.AlignmentFlag.AlignCenter
        if role == ContextRole:
            return row.context
        if role == SnapshotRole:
            return row.snapshot
        if role == StateRole:
            return row.state
        return None
