"""An isolated environment for one test: its own HOME and Workbench folders, nothing of the user's.

Workbench takes its environment as a mapping (``Paths.from_env(env)``, the CLI's ``main(argv,
env)``), so a test hands it this dict instead of touching ``os.environ``. Only what the suite must
share with the machine passes through: ``PATH``, the D-Bus session address (the test keyring), the
Docker endpoint, locale and the Qt platform.
"""

from __future__ import annotations

import os
import pwd
import tempfile
from collections.abc import Mapping
from pathlib import Path

from tests.support.keyring_env import SESSION_SERVICE

#: Variables copied from the outer environment when set; everything else is left behind.
PASSTHROUGH = (
    "PATH",
    "DBUS_SESSION_BUS_ADDRESS",
    "DOCKER_HOST",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "QT_QPA_PLATFORM",
    "CI",
)

# A Unix socket path must fit in sun_path (108 bytes). The service's socket lives in the runtime
# dir, so that dir must leave room for a socket name after it.
_MAX_RUNTIME_DIR = 80


def runtime_dir_for(root: Path) -> tuple[Path, bool]:
    """A runtime dir under ``root`` if its path is short enough for sockets, else a short temp dir.

    Returns the folder and whether it lies outside ``root`` (then the caller removes it).
    """
    candidate = root / "run"
    if len(os.fsencode(candidate)) <= _MAX_RUNTIME_DIR:
        candidate.mkdir(mode=0o700, parents=True, exist_ok=True)
        return candidate, False
    short = Path(tempfile.mkdtemp(prefix="wbrt-", dir="/tmp"))
    short.chmod(0o700)
    return short, True


def make_wb_env(
    root: Path, runtime_dir: Path, outer: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a new Workbench user whose files all live under ``root``.

    ``HOME`` and the runtime dir exist (as on a real login); Workbench's own config, state and
    projects folders do not yet, so the code under test must create them as on a first run.
    """
    outer = os.environ if outer is None else outer
    env = {name: outer[name] for name in PASSTHROUGH if outer.get(name)}
    env.setdefault("PATH", os.defpath)
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "HOME": str(home),
            "USER": outer.get("USER", "") or _user_name(),
            # Libraries that follow the XDG spec (platformdirs, ssh helpers) stay inside HOME too.
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_RUNTIME_DIR": str(runtime_dir),
            "NVWB_CONFIG_DIR": str(root / "config"),
            "NVWB_STATE_DIR": str(root / "state"),
            "NVWB_RUNTIME_DIR": str(runtime_dir),
            "NVWB_PROJECTS_DIR": str(root / "projects"),
            # Secrets written by the code under test go to a service name of this test session.
            "NVWB_KEYRING_SERVICE": SESSION_SERVICE,
        }
    )
    return env


def _user_name() -> str:
    return pwd.getpwuid(os.getuid()).pw_name
