"""The service's live handles on a context for projects: its Docker runtime and its app forwards.

One ``ContextHandles`` per context with open projects. On a linked remote machine (``link.py``)
the Docker runtime rides the link's SSH connection, so opening a project is no second login; an
``ssh`` context (always on, no link) or a machine whose link failed gets a connection of its
own, owned and closed here. The forwards (``AppForwards``) live here too, because the URL that
``nvwb start APP`` printed must outlive that command: they go when the project closes or the
context stops.

A service that was killed leaves its OpenSSH masters running (they are its children, not tied
to its life), still forwarding the old URLs. Only one service runs per user, so every master
under this runtime dir's ``ssh`` folder when a service starts is a dead service's: it is told
to exit (``ssh -O exit``) before anything new is forwarded (``sweep_orphaned_masters``).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from workbench.container.context_runtime import ContextRuntime, open_runtime
from workbench.container.forwards import AppForwards, open_forwards
from workbench.errors import WorkbenchError
from workbench.paths import Paths
from workbench.registry import Context
from workbench.service.link import ContextLink

log = logging.getLogger(__name__)


@dataclass
class ContextHandles:
    """A context's runtime and forwards, and the link whose connection the runtime borrows."""

    runtime: ContextRuntime
    forwards: AppForwards
    link: ContextLink | None
    made_at: float = field(default_factory=time.time)

    def close(self) -> None:
        """Forwards first (their OpenSSH master too), then the runtime (its own connection only)."""
        try:
            self.forwards.close_all()
        finally:
            with contextlib.suppress(Exception):  # a dead engine channel must not block teardown
                self.runtime.close()


class ContextRuntimes:
    """Handles by context name, made on first use, dropped when the context stops. Thread-safe."""

    def __init__(self, paths: Paths, env: Mapping[str, str]) -> None:
        self.paths = paths
        self.env = dict(env)
        self._lock = threading.Lock()
        self._handles: dict[str, ContextHandles] = {}
        self._making: dict[str, threading.Lock] = {}
        sweep_orphaned_masters(paths.runtime_dir / "ssh")

    def get(self, context: Context, link: ContextLink | None) -> ContextHandles:
        """The handles of ``context``; remade when the machine's link changed (a new boot)."""
        name = context.name
        with self._lock:
            making = self._making.setdefault(name, threading.Lock())
        with making:  # connecting takes seconds: one at a time per context, others wait
            with self._lock:
                handles = self._handles.get(name)
            if handles is not None and (handles.link is link or handles.runtime.owns_ssh):
                return handles
            if handles is not None:
                self.drop(name)
            handles = self._open(context, link)
            with self._lock:
                self._handles[name] = handles
            return handles

    def peek(self, name: str) -> ContextHandles | None:
        with self._lock:
            return self._handles.get(name)

    def drop(self, name: str, only: ContextHandles | None = None) -> None:
        """Close the handles of ``name`` (when given ``only``, just those, not newer ones)."""
        with self._lock:
            handles = self._handles.get(name)
            if handles is None or (only is not None and handles is not only):
                return
            del self._handles[name]
        if handles is not None:
            log.info("context %s: project runtime and forwards closed", name)
            handles.close()

    def close(self) -> None:
        with self._lock:
            names = list(self._handles)
        for name in names:
            self.drop(name)

    def _open(self, context: Context, link: ContextLink | None) -> ContextHandles:
        borrowed = link.ssh() if link is not None else None
        runtime = open_runtime(
            context,
            env=self.env,
            connection=borrowed,
            owns_connection=borrowed is None,
            passphrase_provider=self._keyring_passphrase(context) if borrowed is None else None,
        )
        try:
            forwards = (
                open_forwards(runtime.ssh, self.paths.runtime_dir / "ssh")
                if runtime.is_remote
                else AppForwards(None)
            )
        except BaseException:
            runtime.close()
            raise
        log.info(
            "context %s: project runtime ready (%s, forwards: %s)",
            context.name,
            "the link's connection" if borrowed is not None else "own connection",
            forwards.kind,
        )
        return ContextHandles(runtime, forwards, link if borrowed is not None else None)

    def _keyring_passphrase(self, context: Context) -> _KeyringPassphrase:
        return _KeyringPassphrase(context.name, self.env)


def sweep_orphaned_masters(control_dir: Path) -> int:
    """Tell every OpenSSH master left under ``control_dir`` (a dead service's) to exit, and
    remove its folder; how many were found. Only the service, holding the user's lock, calls
    this. Masters whose folder had to go under ``/tmp`` (a runtime dir too long for a socket
    path) are not found here: they end when their connection does."""
    found = 0
    ssh = shutil.which("ssh")
    for folder in sorted(control_dir.glob("wbcm-*")) if control_dir.is_dir() else []:
        control = folder / "cm"
        if ssh is not None and control.exists():
            found += 1
            try:
                subprocess.run(
                    [ssh, "-S", str(control), "-O", "exit", "workbench-orphan"],
                    capture_output=True,
                    timeout=10,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                log.warning("cannot end the orphaned OpenSSH master %s: %s", control, exc)
        shutil.rmtree(folder, ignore_errors=True)
    if found:
        log.info("ended %d OpenSSH master(s) left by a previous service", found)
    return found


class _KeyringPassphrase:
    """A key passphrase from the keyring only: the service has nobody to ask."""

    def __init__(self, context: str, env: Mapping[str, str]) -> None:
        self.context = context
        self.env = env

    def __call__(self, key_path: Path) -> str | None:
        from workbench.secrets import SecretStore, context_secret_key

        try:
            return SecretStore(env=self.env).get(
                context_secret_key(self.context, "ssh_key_passphrase")
            )
        except WorkbenchError as exc:
            log.info("context %s: no passphrase from the keyring: %s", self.context, exc)
            return None
