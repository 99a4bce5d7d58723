"""Where Workbench keeps its files: config, state, runtime socket dir, projects.

Every location can be overridden through the environment (``NVWB_CONFIG_DIR`` and friends), and
the environment is passed in rather than read from ``os.environ`` so the CLI's ``main(argv, env)``
and the tests stay isolated. ``Paths.from_env`` is the one place those variables are read, and it
makes every folder absolute against the caller's working directory at once: the service runs in
``/``, so a relative folder handed on as written would name another place there. ``as_env`` gives
the resolved folders back as variables, for the processes Workbench starts.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "workbench"


@dataclass(frozen=True)
class Paths:
    """The folders one user's Workbench reads and writes."""

    config_dir: Path
    state_dir: Path
    runtime_dir: Path
    projects_dir: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> Paths:
        """The folders ``env`` names, relative ones taken from ``cwd`` (default: this process's)."""
        env = os.environ if env is None else env
        home = _absolute(cwd, Path(env.get("HOME") or Path.home()))
        config = _dir(env, "NVWB_CONFIG_DIR", "XDG_CONFIG_HOME", home / ".config", APP_NAME)
        state = _dir(env, "NVWB_STATE_DIR", "XDG_STATE_HOME", home / ".local" / "state", APP_NAME)
        runtime_default = Path(f"/tmp/{APP_NAME}-{os.getuid()}")
        runtime = _dir(env, "NVWB_RUNTIME_DIR", "XDG_RUNTIME_DIR", runtime_default, APP_NAME)
        if env.get("NVWB_PROJECTS_DIR"):
            projects = Path(env["NVWB_PROJECTS_DIR"]).expanduser()
        else:
            # AI Workbench keeps projects here; users moving over find them where they expect.
            projects = home / "nvidia-workbench"
        return cls(
            config_dir=_absolute(cwd, config),
            state_dir=_absolute(cwd, state),
            runtime_dir=_absolute(cwd, runtime),
            projects_dir=_absolute(cwd, projects),
        )

    def as_env(self) -> dict[str, str]:
        """These folders as the ``NVWB_*`` variables that name them, for a process we start."""
        return {
            "NVWB_CONFIG_DIR": str(self.config_dir),
            "NVWB_STATE_DIR": str(self.state_dir),
            "NVWB_RUNTIME_DIR": str(self.runtime_dir),
            "NVWB_PROJECTS_DIR": str(self.projects_dir),
        }

    @property
    def contexts_file(self) -> Path:
        return self.config_dir / "contexts.json"

    @property
    def known_hosts_file(self) -> Path:
        return self.config_dir / "known_hosts"

    @property
    def current_context_file(self) -> Path:
        return self.state_dir / "current-context"


def _absolute(cwd: Path | None, path: Path) -> Path:
    # Not resolve(): symlinks stay as the user wrote them; only the starting point is fixed. The
    # process's working directory is looked up only when needed (it may have been deleted).
    if path.is_absolute():
        return path
    return (Path.cwd() if cwd is None else cwd) / path


def _dir(env: Mapping[str, str], own: str, xdg: str, fallback: Path, leaf: str) -> Path:
    if env.get(own):
        return Path(env[own]).expanduser()
    if env.get(xdg):
        return Path(env[xdg]).expanduser() / leaf
    return fallback if fallback.name == leaf else fallback / leaf


def atomic_write_text(
    path: Path, text: str, *, mode: int | None = None, durable: bool = True
) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never half a file.

    ``newline=""`` keeps the text's own line endings (a CRLF spec stays CRLF). ``durable``
    flushes the file to disk before the rename (``fsync``); state that is rewritten many times a
    second and safe to find a little old after a crash may skip it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # One temporary file per writer, threads included: two threads sharing one would truncate
    # each other's and rename a half-written file into place.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        elif path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
