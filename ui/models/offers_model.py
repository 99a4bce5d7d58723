"""GPU offers as a table: one row per instance type, sortable by the numbers, filterable.

``OffersModel`` holds the offers (``workbench.offers``); ``OffersFilter`` sorts by each column's
number (not its text: "$11.39" after "$2.28") and keeps what the dialog's filters allow, through
the same ``Selection`` that ``nvwb list gpu-offers`` uses, so the app and the CLI agree on what
"fits" and "FP4 only" mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)

from workbench import presentation
from workbench.offers import Offer, Selection

Index = QModelIndex | QPersistentModelIndex

GPU, COUNT, MEMORY, ARCH, FORMATS, PRICE, PER_GPU, BOOT, STOPPABLE, PROVIDER, TYPE = range(11)
HEADERS = (
    "GPU",
    "Count",
    "Memory",
    "Architecture",
    "FP8/FP4",
    "$/hour",
    "$/GPU-hour",
    "Boot",
    "Stoppable",
    "Provider",
    "Type",
)
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


def _formats(offer: Offer) -> str:
    return " ".join(f for f, on in (("FP8", offer.fp8), ("FP4", offer.fp4)) if on) or "—"


class OffersModel(QAbstractTableModel):
    def __init__(self) -> None:
        super().__init__()
        self._offers: list[Offer] = []

    def set_offers(self, offers: Sequence[Offer]) -> None:
        self.beginResetModel()
        self._offers = list(offers)
        self.endResetModel()

    def offer_at(self, row: int) -> Offer:
        return self._offers[row]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self._offers)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        offer = self._offers[index.row()]
        column = index.column()
        if role == SORT_ROLE:
            return _sort_value(offer, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return (
                f"{offer.type} on {offer.provider}: {offer.gpu_count}x {offer.gpu_name}, "
                f"compute capability {offer.capability or 'unknown'}, {offer.vcpus} vCPUs, "
                f"{offer.memory} memory"
                + ("" if offer.stoppable else f"; {presentation.TERMINATE_ONLY}")
            )
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (COUNT, MEMORY, PRICE, PER_GPU):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        return _text(offer, column)


def _text(offer: Offer, column: int) -> str:
    if column == GPU:
        return offer.gpu_name
    if column == COUNT:
        return str(offer.gpu_count)
    if column == MEMORY:
        return f"{offer.total_vram_gb:g} GB"
    if column == ARCH:
        return offer.architecture or "unknown"
    if column == FORMATS:
        return _formats(offer)
    if column == PRICE:
        return presentation.money(offer.price_per_hour)
    if column == PER_GPU:
        return presentation.money(offer.price_per_gpu_hour)
    if column == BOOT:
        return presentation.duration(offer.boot_time_seconds) if offer.boot_time_seconds else "?"
    if column == STOPPABLE:
        return "yes" if offer.stoppable else "cannot stop"
    if column == PROVIDER:
        return offer.provider
    return offer.type


def _sort_value(offer: Offer, column: int) -> Any:
    numbers: dict[int, Any] = {
        COUNT: offer.gpu_count,
        MEMORY: offer.total_vram_gb,
        PRICE: offer.price_per_hour,
        PER_GPU: offer.price_per_gpu_hour or 0.0,
        # Unknown boot times last, as the CLI sorts them.
        BOOT: offer.boot_time_seconds or 10**9,
        STOPPABLE: int(offer.stoppable),
        FORMATS: int(offer.fp8) + 2 * int(offer.fp4),
    }
    return numbers.get(column, _text(offer, column).lower())


class OffersFilter(QSortFilterProxyModel):
    """What the dialog's filters keep: a text (GPU, provider or type) and a ``Selection``."""

    def __init__(self) -> None:
        super().__init__()
        self.setSortRole(SORT_ROLE)
        self._text = ""
        self._selection = Selection()

    def set_filters(self, text: str, selection: Selection) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt 6.10 and later
            self.beginFilterChange()
            self._text, self._selection = text.strip().lower(), selection
            self.endFilterChange()
        else:
            self._text, self._selection = text.strip().lower(), selection
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        assert isinstance(model, OffersModel)
        offer = model.offer_at(source_row)
        if self._text and not any(
            self._text in value.lower() for value in (offer.gpu_name, offer.provider, offer.type)
        ):
            return False
        return self._selection.keeps(offer)

    def offer_at(self, row: int) -> Offer:
        model = self.sourceModel()
        assert isinstance(model, OffersModel)
        return model.offer_at(self.mapToSource(self.index(row, 0)).row())
