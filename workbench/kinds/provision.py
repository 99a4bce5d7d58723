"""Making machines: what a kind that can find, create and delete them offers (``Kind.provisioner``).

Most kinds attach to a machine someone made elsewhere. A cloud that sells GPUs by the hour (Brev)
can also list what it has (offers: GPU, memory, price, whether it can be stopped), create one of
several instance types in order (the first with capacity wins), and delete it. A kind declares a
``Provisioner`` factory for that; ``nvwb list gpu-offers``, ``nvwb create context
--KIND-create``, ``nvwb delete context --delete-instance`` and the app's "New cloud GPU" dialog
reach it through that and nothing else, so the core never names a cloud.

An offer carries the provider's own figures and what follows from them: the architecture and the
number formats its tensor cores do (from the compute capability, ``workbench.gpu``'s tables),
the price per GPU-hour and per GB of GPU memory.

Standard library only (and ``workbench.gpu``, which is): every ``nvwb`` start imports the kinds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from workbench.errors import ContextError, InvalidValueError

if TYPE_CHECKING:
    from workbench.registry import Context

Progress = Callable[[str], None]

HOURS_PER_DAY = 24


@dataclass(frozen=True)
class Offer:
    """One instance type a cloud offers now: its figures as the provider gives them, and ours.

    ``capability`` is the compute capability as text (``"9.0"``), None where neither the
    provider nor the board's name tells; ``target_disk_gb`` is the disk the provider would give
    it for the query asked (the smallest, or the size asked for where the range allows).
    """

    kind: str
    type: str
    provider: str
    gpu_name: str
    gpu_count: int
    vram_per_gpu_gb: float
    total_vram_gb: float
    capability: str | None
    vcpus: int
    memory: str
    disk_min_gb: float
    disk_max_gb: float
    boot_time_seconds: int
    stoppable: bool
    rebootable: bool
    flex_ports: bool
    price_per_hour: float
    target_disk_gb: float | None
    architecture: str | None
    fp8: bool
    fp4: bool

    @property
    def price_per_gpu_hour(self) -> float | None:
        return self.price_per_hour / self.gpu_count if self.gpu_count else None

    @property
    def price_per_gb_hour(self) -> float | None:
        """Per GB of GPU memory (all GPUs together) and hour."""
        return self.price_per_hour / self.total_vram_gb if self.total_vram_gb else None

    @property
    def price_per_day(self) -> float:
        return self.price_per_hour * HOURS_PER_DAY

    @property
    def disk_fixed(self) -> bool:
        return self.disk_min_gb == self.disk_max_gb

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``nvwb list gpu-offers -o json`` (the provider's keys, then ours)."""
        data = asdict(self)
        data["price_per_gpu_hour"] = self.price_per_gpu_hour
        data["price_per_gb_hour"] = self.price_per_gb_hour
        data["price_per_day"] = self.price_per_day
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Offer:
        """The inverse of ``to_dict`` (the offers cache); the derived prices are recomputed."""
        names = cls.__dataclass_fields__
        return cls(**{name: data[name] for name in names})


def make_offer(
    kind: str,
    *,
    type: str,
    provider: str,
    gpu_name: str,
    gpu_count: int,
    vram_per_gpu_gb: float,
    total_vram_gb: float,
    capability: float | str | None,
    vcpus: int,
    memory: str,
    disk_min_gb: float,
    disk_max_gb: float,
    boot_time_seconds: int,
    stoppable: bool,
    rebootable: bool = False,
    flex_ports: bool = False,
    price_per_hour: float,
    target_disk_gb: float | None = None,
    **_unknown: Any,
) -> Offer:
    """An ``Offer`` from a provider's figures, each checked (``InvalidValueError`` names the
    field), with what follows from them. Keys a newer provider adds are ignored."""
    from workbench.gpu import (
        architecture_for,
        compute_capability_from_name,
        supports_fp4,
        supports_fp8,
    )

    _text("type", type)
    _text("provider", provider, empty=True)
    _text("gpu_name", gpu_name)
    _text("memory", memory, empty=True)
    cc = _capability(capability) or compute_capability_from_name(gpu_name)
    return Offer(
        kind=kind,
        type=type,
        provider=provider,
        gpu_name=gpu_name,
        gpu_count=_count("gpu_count", gpu_count),
        vram_per_gpu_gb=_amount("vram_per_gpu_gb", vram_per_gpu_gb),
        total_vram_gb=_amount("total_vram_gb", total_vram_gb),
        capability=cc,
        vcpus=_count("vcpus", vcpus),
        memory=memory,
        disk_min_gb=_amount("disk_min_gb", disk_min_gb),
        disk_max_gb=_amount("disk_max_gb", disk_max_gb),
        boot_time_seconds=_count("boot_time_seconds", boot_time_seconds),
        stoppable=_flag("stoppable", stoppable),
        rebootable=_flag("rebootable", rebootable),
        flex_ports=_flag("flex_ports", flex_ports),
        price_per_hour=_amount("price_per_hour", price_per_hour),
        target_disk_gb=(
            None if target_disk_gb is None else _amount("target_disk_gb", target_disk_gb)
        ),
        architecture=architecture_for(cc),
        fp8=supports_fp8(cc),
        fp4=supports_fp4(cc),
    )


def _text(name: str, value: object, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidValueError(name, f"must be text, not {type(value).__name__}")
    if not empty and not value.strip():
        raise InvalidValueError(name, "must not be empty")
    return value


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValueError(name, f"must be a whole number, not {value!r}")
    if value < 0 or not math.isfinite(value) or int(value) != value:
        raise InvalidValueError(name, f"must be a whole number of at least 0, not {value!r}")
    return int(value)


def _amount(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValueError(name, f"must be a number, not {value!r}")
    if value < 0 or not math.isfinite(value):
        raise InvalidValueError(name, f"must be a number of at least 0, not {value!r}")
    return float(value)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidValueError(name, f"must be true or false, not {value!r}")
    return value


def _capability(value: float | str | None) -> str | None:
    """``"9.0"`` from Brev's 9 or 9.0; None for its 0 (a GPU it knows no capability of)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not math.isfinite(value) or value <= 0:
        return None
    return f"{value:.1f}"


@dataclass(frozen=True)
class OfferQuery:
    """The provider's own filters, asked of it (``brev gpu-search``'s): GPU name and provider
    (partial, any case), minimum memory per GPU and in all (GB), minimum compute capability,
    minimum disk (GB), maximum boot time (minutes). None: not asked."""

    gpu_name: str | None = None
    provider: str | None = None
    min_vram: float | None = None
    min_total_vram: float | None = None
    min_capability: float | None = None
    min_disk: float | None = None
    max_boot_minutes: int | None = None

    def key(self) -> str:
        """What the offers cache files this query's answer under."""
        return ";".join(f"{k}={v}" for k, v in asdict(self).items() if v is not None)


@dataclass(frozen=True)
class CreateRequest:
    """Create one machine called ``name``, trying ``types`` in order; ``disk_gb``: its disk,
    where the type lets it be chosen (None: the type's smallest); ``disks``: a type's own disk
    where it differs (a type whose disk is one size keeps it)."""

    name: str
    types: tuple[str, ...]
    disk_gb: int | None = None
    disks: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Attempt:
    """One type tried: whether the machine was made with it, and if not, the provider's why."""

    type: str
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class Created:
    """What a create made: the provider's name for the instance, its type, every try."""

    instance: str
    type: str
    attempts: tuple[Attempt, ...] = field(default_factory=tuple)


class CapacityError(ContextError):
    """No type asked for could be created: each one tried, and the provider's reason."""

    code = "capacity"

    def __init__(
        self,
        message: str,
        *,
        attempts: tuple[Attempt, ...] = (),
        context: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, context=context, hint=hint)
        # Kept as plain data: it crosses the service's wire as it is (``tried`` reads it).
        self.attempts = [asdict(a) for a in attempts]

    @property
    def tried(self) -> tuple[Attempt, ...]:
        """Each type tried, in order, and why it failed."""
        return tuple(Attempt(**dict(a)) for a in self.attempts)

    def details(self) -> dict[str, Any]:
        return {**super().details(), "attempts": [dict(a) for a in self.attempts]}


def capacity_error(name: str, attempts: tuple[Attempt, ...], said: str = "") -> CapacityError:
    """The error for a create that made nothing, naming each type and why it failed."""
    lines = "; ".join(f"{a.type}: {a.reason or 'failed'}" for a in attempts)
    return CapacityError(
        f"could not create {name}: " + (lines or said or "no type could be created"),
        attempts=attempts,
        hint="try other types ('nvwb list gpu-offers' lists them), or the same later",
    )


class Provisioner(Protocol):
    """What a kind that makes machines offers. Calls may block; none are async."""

    def offers(self, query: OfferQuery) -> list[Offer]:
        """What can be created now, filtered by the provider's own ``query``."""
        ...

    def create(self, request: CreateRequest, progress: Progress) -> Created:
        """Create one machine, trying ``request.types`` in order; returns once it is asked
        for (booting), not once it runs. ``CapacityError`` names each type tried."""
        ...

    def context_fields(self, created: Created) -> dict[str, Any]:
        """The fields of the context that drives the machine made (its instance's name)."""
        ...

    def instance_of(self, context: Context) -> str:
        """The provider's name for the machine ``context`` drives."""
        ...

    def delete(self, context: Context) -> None:
        """Delete the machine ``context`` drives; returns once the provider took the request."""
        ...


ProvisionerFactory = Callable[[Mapping[str, str]], Provisioner]
