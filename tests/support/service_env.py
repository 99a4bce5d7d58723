"""The real service against the stand-in brev: short timers, a clean exit, a brev context.

Shared by the tests that spawn the service (``tests/integration/test_service*.py``,
``test_agent_service.py``): each test has its own Workbench user (``wb_env``) and its own fake
Brev account (the ``brev`` fixture in ``tests/conftest.py``); its ``env`` fixture is
``yield from service_env({...})``, which stops the service when the test ends, so none outlives
its temporary folders.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.support.fake_brev import FakeBrev
from tests.support.workbench_service import shut_down
from workbench.paths import Paths
from workbench.registry import Context, Registry
from workbench.service.server import socket_path

#: Timers short enough for tests; a file adds or overrides its own (heartbeats, the agent).
FAST = {
    "NVWB_SERVICE_POLL_INTERVAL": "0.1",
    "NVWB_SERVICE_PID_CHECK_INTERVAL": "0.2",
    "NVWB_SERVICE_START_TIMEOUT": "30",
    "NVWB_SERVICE_STOP_TIMEOUT": "30",
    "NVWB_SERVICE_SSH_TIMEOUT": "15",
    "NVWB_SERVICE_IDLE_EXIT": "1.5",
    "NVWB_WAIT_TIMEOUT": "60",
}


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``check`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


@contextlib.contextmanager
def fake_brev(root: Path) -> Iterator[FakeBrev]:
    """A fake Brev account under ``root``; every instance's sshd is killed at the end."""
    fake = FakeBrev(root / "brev-account")
    try:
        yield fake
    finally:
        fake.close()


def service_env(environment: dict[str, str]) -> Iterator[dict[str, str]]:
    """Yield ``environment``, then stop its service (if one was spawned) and wait for it to go.

    For an ``env`` fixture: ``yield from service_env({**brev.env(wb_env), **FAST})``.
    """
    yield environment
    shut_down(environment)
    paths = Paths.from_env(environment)
    wait_for(lambda: not socket_path(paths).exists(), 10, "the service to exit")


def add_brev_context(env: dict[str, str], name: str = "gpu", **fields: Any) -> Paths:
    """Register a brev context ``name`` on the instance ``NAME-1``; ``fields`` as ``Context``'s."""
    paths = Paths.from_env(env)
    with Registry.locked(paths) as registry:
        registry.create(Context(name=name, kind="brev", brev_instance_name=f"{name}-1", **fields))
    return paths
