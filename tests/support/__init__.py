"""Helpers the test fixtures share: real services to test against, and one rule for their absence.

The rule: in CI (``CI=true``) a service the suite needs but cannot find is a failure, because a
skipped integration test there would hide a broken machine; on a developer's machine the test is
skipped with the reason, so the unit tests still run anywhere.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from typing import NoReturn, TypeVar

import pytest

#: Names this test session's keyring entries, containers and temp files apart from any other run.
SESSION_ID = f"{os.getpid()}-{secrets.token_hex(4)}"

_T = TypeVar("_T")


class ServiceUnavailable(RuntimeError):
    """A service the tests need is missing; the message says what is wrong and how to fix it."""


def in_ci() -> bool:
    """True when running under CI, which sets ``CI=true``."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def service_missing(message: str) -> NoReturn:
    """Fail (in CI) or skip (elsewhere) the current test because a service is unavailable."""
    if in_ci():
        pytest.fail(f"{message} [CI=true: a missing service fails the run]", pytrace=False)
    pytest.skip(message)


def require(check: Callable[[], _T]) -> _T:
    """Run ``check``; if it raises ``ServiceUnavailable``, fail or skip with its message."""
    try:
        return check()
    except ServiceUnavailable as exc:
        # Reported outside the except block: the report is the message, not a chained traceback.
        message = str(exc)
    service_missing(message)
