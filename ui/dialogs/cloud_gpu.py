"""The "New cloud GPU" dialog: find an offer, see what it costs, create a context on it.

The offers (``workbench.offers``: every kind that makes machines, Brev's ``gpu-search``) fill a
sortable table, narrowed by a text, a price ceiling, FP4 only, stoppable only, and what the
selected project's spec asks for. The chosen type's price per hour and per day is shown before
anything is paid. Creating runs ``workbench.provisioning`` on a worker with its progress in the
window; a type that cannot be stopped is confirmed first; a failure says why and offers the
next type in the table's order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ui.dialogs.confirm import ask_confirm
from ui.format import error_text
from ui.models.offers_model import PRICE, OffersFilter, OffersModel
from ui.tasks import TaskRunner
from workbench import presentation
from workbench.kinds.provision import CapacityError
from workbench.offers import Offer, OfferList, OfferQuery, Selection, find_offers, gpus_requested
from workbench.paths import Paths
from workbench.projects import Project
from workbench.provisioning import Made, make, plan

log = logging.getLogger(__name__)


class _Relay(QObject):
    """Carries the worker's progress lines to the GUI thread. Parentless on purpose: the job
    holds it, so it outlives a dialog closed while the machine is still being made."""

    line = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.open = True

    def say(self, text: str) -> None:
        with self.lock:
            if self.open:
                self.line.emit(text)


class NewCloudGpuDialog(QDialog):
    """Pick an offer and create a context on a new machine of that type."""

    def __init__(
        self,
        *,
        paths: Paths,
        env: Mapping[str, str],
        runner: TaskRunner,
        project: Project | None = None,
        taken_names: list[str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.paths = paths
        self.env = dict(env)
        self.runner = runner
        self.project = project
        self.taken = set(taken_names or [])
        self.gpus_requested = 0
        self.made: Made | None = None
        self.question: QMessageBox | None = None
        self.busy = False
        self.failed_type: str | None = None
        self._relay: _Relay | None = None
        self._auto_name = True
        self.setWindowTitle("New cloud GPU")
        self.resize(1180, 640)
        self._build()
        self.load()

    # -- building ------------------------------------------------------------------------

    def _build(self) -> None:
        box = QVBoxLayout(self)
        box.addLayout(self._filters())
        self._table(box)
        self._form(box)
        self._buttons(box)
        self.search.textChanged.connect(self._filters_changed)
        self.max_price.valueChanged.connect(self._filters_changed)
        for check in (self.fp4, self.stoppable, self.fits):
            check.toggled.connect(self._filters_changed)
        self.name.textChanged.connect(lambda _t: self._selected())
        # A name the person typed stays; one we made follows the chosen offer.
        self.name.textEdited.connect(lambda text: setattr(self, "_auto_name", not text))

    def _filters(self) -> QHBoxLayout:
        filters = QHBoxLayout()
        self.search = QLineEdit()
        self.search.setPlaceholderText("GPU, provider or type (H100, aws, g5)")
        self.search.setClearButtonEnabled(True)
        filters.addWidget(self.search, 2)
        filters.addWidget(QLabel("at most"))
        self.max_price = QDoubleSpinBox()
        self.max_price.setRange(0, 100_000)
        self.max_price.setDecimals(2)
        self.max_price.setPrefix("$")
        self.max_price.setSuffix("/h")
        self.max_price.setSpecialValueText("any price")
        filters.addWidget(self.max_price)
        self.fp4 = QCheckBox("FP4 (Blackwell)")
        filters.addWidget(self.fp4)
        self.stoppable = QCheckBox("Stoppable only")
        filters.addWidget(self.stoppable)
        self.fits = QCheckBox("Fits the project")
        self.fits.setEnabled(self.project is not None)
        if self.project is None:
            self.fits.setToolTip("select a project in the main window to filter by its GPUs")
        filters.addWidget(self.fits)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("ask the cloud again now")
        self.refresh_button.clicked.connect(lambda: self.load(refresh=True))
        filters.addWidget(self.refresh_button)
        return filters

    def _table(self, box: QVBoxLayout) -> None:
        self.model = OffersModel()
        self.proxy = OffersFilter()
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(PRICE, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setShowGrid(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.selectionModel().selectionChanged.connect(self._selected)
        box.addWidget(self.table, 1)
        self.status = QLabel("Asking for offers…")
        self.status.setWordWrap(True)
        box.addWidget(self.status)

    def _form(self, box: QVBoxLayout) -> None:
        form = QFormLayout()
        self.name = QLineEdit()
        self.name.setPlaceholderText("the new context's name")
        form.addRow("Context name", self.name)
        self.disk = QSpinBox()
        self.disk.setRange(0, 1_000_000)
        self.disk.setSuffix(" GB")
        self.disk.setSpecialValueText("the type's own")
        form.addRow("Disk", self.disk)
        self.cost = QLabel("Choose an offer")
        form.addRow("Cost", self.cost)
        box.addLayout(form)

    def _buttons(self, box: QVBoxLayout) -> None:
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(500)
        self.log.setFixedHeight(90)
        self.log.hide()
        box.addWidget(self.log)
        buttons = QHBoxLayout()
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setObjectName("error")
        buttons.addWidget(self.problem, 1)
        self.next_button = QPushButton("Try the next type")
        self.next_button.hide()
        self.next_button.clicked.connect(self.try_next)
        buttons.addWidget(self.next_button)
        self.cancel_button = QPushButton("Close")
        self.cancel_button.clicked.connect(self.reject)
        buttons.addWidget(self.cancel_button)
        self.create_button = QPushButton("Create")
        self.create_button.setProperty("primary", True)
        self.create_button.setEnabled(False)
        self.create_button.clicked.connect(self.create_machine)
        buttons.addWidget(self.create_button)
        box.addLayout(buttons)

    # -- offers --------------------------------------------------------------------------

    def load(self, *, refresh: bool = False) -> None:
        paths, env, project = self.paths, self.env, self.project
        self.status.setText("Asking for offers…")
        self.refresh_button.setEnabled(False)

        def job() -> tuple[OfferList, int]:
            wanted = gpus_requested(project.spec_path) if project is not None else 0
            return find_offers(paths, env, OfferQuery(), refresh=refresh), wanted

        def done(result: tuple[OfferList, int]) -> None:
            found, wanted = result
            self.refresh_button.setEnabled(True)
            self.gpus_requested = wanted
            if project is not None:
                self.fits.setText(f"Fits {project.name} ({wanted} GPU{'s' if wanted != 1 else ''})")
            self.model.set_offers(found.offers)
            self.table.sortByColumn(
                self.table.horizontalHeader().sortIndicatorSection(),
                self.table.horizontalHeader().sortIndicatorOrder(),
            )
            self._filters_changed()
            asked = "just now" if not found.cached else presentation.ago(found.fetched_at)
            self.status.setText(f"{len(found.offers)} offers, asked {asked}")

        def failed(exc: Exception) -> None:
            self.refresh_button.setEnabled(True)
            self.status.setText(f"Could not read the offers: {error_text(exc)}")

        self.runner.submit(job, done, failed, receiver=self)

    def selection(self) -> Selection:
        return Selection(
            max_price=self.max_price.value() or None,
            fp4=self.fp4.isChecked(),
            stoppable_only=self.stoppable.isChecked(),
            min_gpus=self.gpus_requested if self.fits.isChecked() else 0,
        )

    def _filters_changed(self, *_: Any) -> None:
        self.proxy.set_filters(self.search.text(), self.selection())
        shown = self.proxy.rowCount()
        if self.model.rowCount():
            self.status.setText(f"{shown} of {self.model.rowCount()} offers shown")
        self._selected()

    def visible_types(self) -> list[str]:
        """The types the table shows now, in its order (tests, and the next type to try)."""
        return [self.proxy.offer_at(row).type for row in range(self.proxy.rowCount())]

    def select_type(self, instance_type: str) -> None:
        types = self.visible_types()
        if instance_type in types:
            self.table.selectRow(types.index(instance_type))

    def selected_offer(self) -> Offer | None:
        rows = self.table.selectionModel().selectedRows()
        return self.proxy.offer_at(rows[0].row()) if rows else None

    def _selected(self, *_: Any) -> None:
        offer = self.selected_offer()
        if offer is None:
            self.cost.setText("Choose an offer")
        else:
            text = (
                f"{presentation.money(offer.price_per_hour)} an hour, "
                f"{presentation.money(offer.price_per_day)} a day "
                f"({offer.gpu_count}x {offer.gpu_name}, {offer.total_vram_gb:g} GB)"
            )
            if not offer.stoppable:
                text += f" — {presentation.TERMINATE_ONLY}: it costs until deleted"
            self.cost.setText(text)
            wanted = _default_name(offer, self.taken)
            if (self._auto_name or not self.name.text()) and self.name.text() != wanted:
                self.name.setText(wanted)
        self.create_button.setEnabled(
            offer is not None and bool(self.name.text()) and not self.busy
        )

    # -- creating ------------------------------------------------------------------------

    def create_machine(self) -> None:
        offer = self.selected_offer()
        if offer is None or self.busy:
            return
        if offer.stoppable:
            self._start(offer, confirmed=False)
            return
        self.question = ask_confirm(
            self,
            "A GPU that cannot be stopped",
            f"{offer.type} cannot be stopped, only deleted.",
            detail=f"It costs {presentation.money(offer.price_per_hour)} an hour "
            f"({presentation.money(offer.price_per_day)} a day) from now until you delete it. "
            "Workbench never stops or deletes it by itself.",
            confirm="Create it anyway",
            on_yes=lambda: self._start(offer, confirmed=True),
        )

    def try_next(self) -> None:
        """After a failure: the type after the one that failed, in the table's order."""
        types = self.visible_types()
        failed = self.failed_type
        if failed in types:
            following = types[types.index(failed) + 1 :]
            if following:
                self.select_type(following[0])
        self.create_machine()

    def _start(self, offer: Offer, *, confirmed: bool) -> None:
        name = self.name.text().strip()
        disk = self.disk.value() or None
        paths, env = self.paths, self.env
        relay = _Relay()
        relay.line.connect(self._progress)
        self._relay = relay
        self.busy = True
        self.problem.clear()
        self.next_button.hide()
        self.failed_type = None
        self.log.show()
        self.log.appendPlainText(f"Creating {name} on {offer.type}…")
        self._selected()

        def job() -> Made:
            planned = plan(paths, env, name=name, kind=offer.kind, types=[offer.type],
                           disk_gb=disk, type_flag="Type", disk_flag="Disk")  # fmt: skip
            return make(paths, env, planned, progress=relay.say, unstoppable_confirmed=confirmed)

        def done(made: Made) -> None:
            self.busy = False
            self.made = made
            self.log.appendPlainText(f"{name} is running; host key {made.host_key} pinned.")
            self.accept()

        def failed(exc: Exception) -> None:
            self.busy = False
            self._selected()
            text = error_text(exc)
            self.log.appendPlainText(f"Failed: {text}")
            self.problem.setText(text)
            if isinstance(exc, CapacityError):
                self.failed_type = offer.type
                types = self.visible_types()
                after = types[types.index(offer.type) + 1 :] if offer.type in types else []
                if after:
                    self.next_button.setText(f"Try {after[0]}")
                    self.next_button.show()

        self.runner.submit(job, done, failed, receiver=self)

    def _progress(self, line: str) -> None:
        self.log.appendPlainText(line)

    def done(self, result: int) -> None:
        relay = self._relay
        if relay is not None:
            with relay.lock:
                relay.open = False
        super().done(result)


def _default_name(offer: Offer, taken: set[str]) -> str:
    import re

    stem = re.sub(r"[^a-z0-9-]+", "-", offer.gpu_name.lower()).strip("-") or "gpu"
    base = f"{stem}-{offer.gpu_count}x" if offer.gpu_count > 1 else stem
    name, number = base, 2
    while name in taken:
        name, number = f"{base}-{number}", number + 1
    return name
