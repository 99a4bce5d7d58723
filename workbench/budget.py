"""The monthly budget for cloud machines: how much, and whether idle ones stop once it is spent.

Kept in ``CONFIG/budget.json`` (``nvwb update budget``, the app's Costs view); the service reads
it on each check of the cost ledger, so a change applies without a restart. The notifications
at 80 % and 100 % and the optional stop of contexts nobody holds are the service's
(``workbench/service/costs.py``). Standard library only.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from workbench.errors import InvalidValueError
from workbench.paths import PRIVATE_FILE, Paths, atomic_write_text

BUDGET_NAME = "budget.json"
MAX_MONTHLY_USD = 10_000_000.0
LEVELS = (80, 100)  # percent of the budget at which the user is told


@dataclass(frozen=True)
class Budget:
    """``monthly_usd`` None: no budget. ``stop_idle_over_budget``: once this month's spend
    reaches the budget, contexts no lease holds are stopped at once (those that can be)."""

    monthly_usd: float | None = None
    stop_idle_over_budget: bool = False

    def __post_init__(self) -> None:
        amount = self.monthly_usd
        if amount is not None:
            if isinstance(amount, bool) or not isinstance(amount, int | float):
                raise InvalidValueError("monthly_usd", f"must be a number, not {amount!r}")
            if not math.isfinite(amount) or not 0 < amount <= MAX_MONTHLY_USD:
                raise InvalidValueError(
                    "monthly_usd", f"must be more than 0 and at most {MAX_MONTHLY_USD:,.0f}"
                )
        if not isinstance(self.stop_idle_over_budget, bool):
            raise InvalidValueError("stop_idle_over_budget", "must be true or false")


def budget_file(paths: Paths) -> str:
    return str(paths.config_dir / BUDGET_NAME)


def load_budget(paths: Paths) -> Budget:
    """The budget set, or none; a file that cannot be read is an ``InvalidValueError``."""
    file = paths.config_dir / BUDGET_NAME
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Budget()
    except (OSError, ValueError) as exc:
        raise InvalidValueError(str(file), f"cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidValueError(str(file), "must hold a JSON object")
    unknown = sorted(set(data) - {"monthly_usd", "stop_idle_over_budget"})
    if unknown:
        raise InvalidValueError(f"{file}: {unknown[0]}", "unknown field")
    try:
        return Budget(**data)
    except InvalidValueError as exc:
        raise InvalidValueError(f"{file}: {exc.field}", exc.reason) from exc


def save_budget(paths: Paths, budget: Budget) -> None:
    text = json.dumps(asdict(budget), indent=2) + "\n"
    atomic_write_text(paths.config_dir / BUDGET_NAME, text, mode=PRIVATE_FILE)
