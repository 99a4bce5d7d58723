"""Typed numbers with ranges: one checker per kind of value, shared by every way a value comes in.

A port, a grace period or a GPU count reaches Workbench from ``nvwb`` flags, the app's forms,
``contexts.json`` and specs. Each kind is checked by one :class:`IntRange` (or
:class:`FloatRange`) defined here, so ``--grace-period 99999999999999999999999`` is refused by the
CLI with the same bound the registry and the form use, and the message names the flag or field.
The bounds are far above anything real (a week of grace period, 1 TiB of shared memory) and far
below what would overflow a timer or a container setting.

Standard library only: ``workbench.registry`` imports this and must stay fast.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from workbench.errors import InvalidValueError

_INTEGER = re.compile(r"[+-]?[0-9]{1,30}")
_TIME_LIMIT = re.compile(r"(?:([0-9]{1,4})-)?([0-9]{1,7})(?::([0-9]{1,2}))?(?::([0-9]{1,2}))?")
_NUMBER = re.compile(r"[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})")


@dataclass(frozen=True)
class IntRange:
    """Whole numbers from ``low`` to ``high`` (both included); ``unit`` is said in messages."""

    low: int
    high: int
    unit: str = ""

    @property
    def expected(self) -> str:
        unit = f" ({self.unit})" if self.unit else ""
        return f"a whole number from {self.low} to {self.high}{unit}"

    def problem(self, value: object) -> str | None:
        """Why ``value`` (an int) is not allowed, or ``None``."""
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be {self.expected}, not {value!r}"
        if not self.low <= value <= self.high:
            return f"must be {self.expected}, not {value}"
        return None

    def check(self, field: str, value: object) -> int:
        """``value`` if allowed, else ``InvalidValueError`` naming ``field``."""
        problem = self.problem(value)
        if problem:
            raise InvalidValueError(field, problem)
        assert isinstance(value, int)
        return value

    def text_problem(self, text: str) -> str | None:
        """Why ``text`` (as typed) is not such a number, or ``None``."""
        shown = text.strip()
        if not _INTEGER.fullmatch(shown):
            return f"must be {self.expected}, not {_shorten(shown)!r}"
        return self.problem(int(shown))

    def parse(self, field: str, text: str) -> int:
        """The number ``text`` spells, checked; ``InvalidValueError`` naming ``field``."""
        problem = self.text_problem(text)
        if problem:
            raise InvalidValueError(field, problem)
        return int(text.strip())


@dataclass(frozen=True)
class FloatRange:
    """Finite numbers from ``low`` to ``high`` (both included)."""

    low: float
    high: float
    unit: str = ""

    @property
    def expected(self) -> str:
        unit = f" ({self.unit})" if self.unit else ""
        return f"a number from {self.low:g} to {self.high:g}{unit}"

    def problem(self, value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be {self.expected}, not {value!r}"
        if not math.isfinite(value) or not self.low <= value <= self.high:
            return f"must be {self.expected}, not {value!r}"
        return None

    def check(self, field: str, value: object) -> float:
        problem = self.problem(value)
        if problem:
            raise InvalidValueError(field, problem)
        assert isinstance(value, int | float)
        return float(value)

    def text_problem(self, text: str) -> str | None:
        shown = text.strip()
        if not _NUMBER.fullmatch(shown):
            return f"must be {self.expected}, not {_shorten(shown)!r}"
        return self.problem(float(shown))

    def parse(self, field: str, text: str) -> float:
        problem = self.text_problem(text)
        if problem:
            raise InvalidValueError(field, problem)
        return float(text.strip())


def _shorten(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


# -- the kinds of value -------------------------------------------------------------------------

PORT = IntRange(1, 65535)
LOCAL_PORT = IntRange(0, 65535, "0: any free port")
GRACE_PERIOD_SECONDS = IntRange(0, 7 * 24 * 3600, "seconds, up to a week")
IDLE_TIMEOUT_MINUTES = IntRange(1, 30 * 24 * 60, "minutes, up to 30 days")
GPU_BUSY_PERCENT = IntRange(0, 100, "percent, 0: off")
HOURLY_RATE = FloatRange(0, 100_000, "per hour")
GPUS = IntRange(0, 1024)
SHARED_MEMORY_MB = IntRange(0, 1024 * 1024, "MB, up to 1 TiB")
APP_TIMEOUT_SECONDS = IntRange(0, 7 * 24 * 3600, "seconds, up to a week")
LOG_LINES = IntRange(1, 10_000_000, "lines")


@dataclass(frozen=True)
class TimeLimit:
    """A job's time limit as Slurm writes it (``sbatch --time``): ``MINUTES``, ``MINUTES:SECONDS``,
    ``HOURS:MINUTES:SECONDS``, ``DAYS-HOURS``, ``DAYS-HOURS:MINUTES``,
    ``DAYS-HOURS:MINUTES:SECONDS``, or ``UNLIMITED``; kept as typed, checked here.

    Slurm reads a limit of 0 as none at all; here that is spelled ``UNLIMITED``, so a typo cannot
    lift the backstop. Up to ``max_days``.
    """

    max_days: int = 365

    @property
    def expected(self) -> str:
        return (
            "a time limit as Slurm writes it (MINUTES, HOURS:MINUTES:SECONDS, "
            f"DAYS-HOURS:MINUTES:SECONDS or UNLIMITED), up to {self.max_days} days"
        )

    def minutes(self, text: str) -> int | None:
        """The limit in whole minutes (seconds round up); None for no limit. ``ValueError``
        when ``text`` is not a limit."""
        shown = text.strip()
        if shown.upper() in ("UNLIMITED", "INFINITE"):
            return None
        match = _TIME_LIMIT.fullmatch(shown)
        if match is None:
            raise ValueError(shown)
        days_text, first, second, third = match.groups()
        bounded: tuple[tuple[int, int], ...]
        if days_text is not None:  # D-H, D-H:M, D-H:M:S
            days, hours = int(days_text), int(first)
            mins, seconds = int(second or 0), int(third or 0)
            bounded = (hours, 24), (mins, 60), (seconds, 60)
        elif third is not None:  # H:M:S
            days, hours, mins, seconds = 0, int(first), int(second), int(third)
            bounded = (mins, 60), (seconds, 60)
        else:  # M, M:S
            days, hours, mins, seconds = 0, 0, int(first), int(second or 0)
            bounded = ((seconds, 60),)
        if any(part >= limit for part, limit in bounded):
            raise ValueError(shown)
        total = ((days * 24 + hours) * 60 + mins) * 60 + seconds
        return -(-total // 60)

    def problem(self, value: object) -> str | None:
        if not isinstance(value, str):
            return f"must be {self.expected}, not {value!r}"
        try:
            minutes = self.minutes(value)
        except ValueError:
            return f"must be {self.expected}, not {_shorten(value.strip())!r}"
        if minutes is not None and not 1 <= minutes <= self.max_days * 24 * 60:
            return f"must be {self.expected}, not {_shorten(value.strip())!r}"
        return None

    def check(self, field: str, value: object) -> str:
        problem = self.problem(value)
        if problem:
            raise InvalidValueError(field, problem)
        assert isinstance(value, str)
        return value.strip()

    def text_problem(self, text: str) -> str | None:
        return self.problem(text)

    def parse(self, field: str, text: str) -> str:
        return self.check(field, text)


NODES = IntRange(1, 100_000, "nodes")
GPUS_PER_NODE = IntRange(0, 1024, "GPUs on each node")
TASKS_PER_NODE = IntRange(1, 4096, "tasks on each node")
TIME_LIMIT = TimeLimit()

# -- cloud machines and what they cost ----------------------------------------------------------
DISK_GB = IntRange(1, 1_000_000, "GB")
PRICE_PER_HOUR = FloatRange(0, 100_000, "dollars an hour")
GPU_MEMORY_GB = FloatRange(0, 100_000, "GB")
CAPABILITY = FloatRange(0, 100, "a compute capability, e.g. 8.9")
BOOT_MINUTES = IntRange(1, 24 * 60, "minutes")
MONTHLY_BUDGET_USD = FloatRange(0, 10_000_000, "dollars a month; 0 removes the budget")
