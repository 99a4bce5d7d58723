"""Where Workbench keeps its files: config, state, runtime socket dir, projects.

Every location can be overridden through the environment (``NVWB_CONFIG_DIR`` and friends), and
the environment is passed in rather than read from ``os.environ`` so the CLI's ``main(argv, env)``
and the tests stay isolated.
"""

from __future__ import annotations

import os
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
    def from_env(cls, env: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if env is None else env
        home = Path(env.get("HOME") or Path.home())
        config = _dir(env, "NVWB_CONFIG_DIR", "XDG_CONFIG_HOME", home / ".config", APP_NAME)
        state = _dir(env, "NVWB_STATE_DIR", "XDG_STATE_HOME", home / ".local" / "state", APP_NAME)
        runtime_default = Path(f"/tmp/{APP_NAME}-{os.getuid()}")
        runtime = _dir(env, "NVWB_RUNTIME_DIR", "XDG_RUNTIME_DIR", runtime_default, APP_NAME)
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
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
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
