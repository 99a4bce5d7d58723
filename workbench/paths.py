"""Where Workbench keeps its files: config, state, runtime socket dir, projects.

Every location can be overridden through the environment (``NVWB_CONFIG_DIR`` and friends), then
``XDG_*`` where set, else the system's own convention (``osproc.default_dirs``: XDG on Linux,
``~/Library`` on macOS, ``%APPDATA%`` on Windows). The environment is passed in rather than read
from ``os.environ`` so the CLI's ``main(argv, env)`` and the tests stay isolated.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from workbench.osproc import default_dirs

APP_NAME = "workbench"


@dataclass(frozen=True)
class Paths:
    """The folders one user's Workbench reads and writes."""

    config_dir: Path
    state_dir: Path
    runtime_dir: Path
    projects_dir: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if env is None else env
        home = Path(env.get("HOME") or Path.home())
        system = default_dirs(home, env, APP_NAME)
        config = _dir(env, "NVWB_CONFIG_DIR", "XDG_CONFIG_HOME", system.config, APP_NAME)
        state = _dir(env, "NVWB_STATE_DIR", "XDG_STATE_HOME", system.state, APP_NAME)
        runtime = _dir(env, "NVWB_RUNTIME_DIR", "XDG_RUNTIME_DIR", system.runtime, APP_NAME)
        if "NVWB_PROJECTS_DIR" in env:
            projects = Path(env["NVWB_PROJECTS_DIR"]).expanduser()
        else:
            # AI Workbench keeps projects here; users moving over find them where they expect.
            projects = home / "nvidia-workbench"
        return cls(config_dir=config, state_dir=state, runtime_dir=runtime, projects_dir=projects)

    @property
    def contexts_file(self) -> Path:
        return self.config_dir / "contexts.json"

    @property
    def known_hosts_file(self) -> Path:
        return self.config_dir / "known_hosts"

    @property
    def current_context_file(self) -> Path:
        return self.state_dir / "current-context"


def _dir(env: Mapping[str, str], own: str, xdg: str, fallback: Path, leaf: str) -> Path:
    if env.get(own):
        return Path(env[own]).expanduser()
    if env.get(xdg):
        return Path(env[xdg]).expanduser() / leaf
    return fallback


def atomic_write_text(
    path: Path, text: str, *, mode: int | None = None, durable: bool = True
) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never half a file.

    ``newline=""`` keeps the text's own line endings (a CRLF spec stays CRLF). ``durable``
    flushes the file to disk before the rename (``fsync``); state that is rewritten many times a
    second and safe to find a little old after a crash may skip it. ``mode`` is the file's from
    its creation (a private file is never readable by others, not even as the temporary file).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
        fd = os.open(tmp, flags, 0o666 if mode is None else mode)
        with open(fd, "w", encoding="utf-8", newline="") as fh:
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
