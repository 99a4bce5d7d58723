"""The real workbench service in tests: a holder process standing for a shell, and a clean exit.

Commands that go through the service (``nvwb open``, ``start APP``, ``activate``) spawn it on
first use with the test's environment; ``shut_down`` ends it at the end of the test, so no
service outlives its temporary folders. ``holder`` is a process whose pid the CLI is told to hold
leases for (``NVWB_HOLDER_PID``), as ``nvwb`` does for the shell that ran it.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

from workbench.paths import Paths
from workbench.service.client import ServiceClient, ServiceUnavailable
from workbench.service.server import socket_path


def shut_down(env: dict[str, str], timeout: float = 15.0) -> None:
    """Stop the service of ``env`` if one runs (machines and containers are left as they are)."""
    paths = Paths.from_env(env)
    try:
        with ServiceClient.connect(paths, env, spawn=False) as client:
            client.shutdown(force=True)
    except ServiceUnavailable:
        return
    deadline = time.monotonic() + timeout
    while socket_path(paths).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


@contextlib.contextmanager
def holder() -> Iterator[subprocess.Popen[bytes]]:
    """A process standing for the user's shell; killed (if still alive) on exit."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
