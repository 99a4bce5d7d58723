"""The laptop side stays portable: every Linux- or POSIX-only call goes through ``osproc``.

The CLI, the app and the service will mostly run on macOS and Windows, which this project cannot
test on yet. What it can check here: no module of ``workbench/``, ``contexts/`` or ``ui/`` but
``workbench/osproc.py`` imports a POSIX-only module, calls a POSIX-only ``os`` function, reads
``/proc`` or names a Unix-only socket or signal; and every module still imports in an
interpreter that lacks them (as Windows' does).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAPTOP = ("workbench", "contexts", "ui")
ALLOWED = {ROOT / "workbench" / "osproc.py"}

POSIX_MODULES = {"fcntl", "pwd", "grp", "termios", "tty", "pty", "resource", "posix", "msvcrt"}
POSIX_OS = {
    "getuid", "geteuid", "getgid", "getegid", "getpwuid", "setsid", "setpgrp", "getpgid",
    "killpg", "kill", "fork", "forkpty", "sendfile", "pread", "pwrite", "fchmod", "fchown",
    "chown", "lchown", "mkfifo", "mknod", "statvfs", "getloadavg", "sched_getaffinity",
    "wait3", "wait4", "openpty", "ttyname",
}  # fmt: skip
POSIX_SOCKET = {"AF_UNIX", "SO_PEERCRED", "LOCAL_PEERCRED"}
POSIX_SIGNALS = {"SIGKILL", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGCHLD", "SIGALRM",
                 "SIGPIPE", "SIGSTOP", "SIGCONT"}  # fmt: skip


def _laptop_files() -> list[Path]:
    return sorted(
        path
        for folder in LAPTOP
        for path in (ROOT / folder).rglob("*.py")
        if path not in ALLOWED and "__pycache__" not in path.parts
    )


def _findings(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    where = path.relative_to(root)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                f"{where}:{node.lineno}: import {alias.name}"
                for alias in node.names
                if alias.name.split(".")[0] in POSIX_MODULES
            ]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in POSIX_MODULES:
                found.append(f"{where}:{node.lineno}: from {node.module} import")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner, name = node.value.id, node.attr
            if (
                (owner == "os" and name in POSIX_OS)
                or (owner == "socket" and name in POSIX_SOCKET)
                or (owner == "signal" and name in POSIX_SIGNALS)
            ):
                found.append(f"{where}:{node.lineno}: {owner}.{name}")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("/proc/")
        ):
            found.append(f"{where}:{node.lineno}: reads {node.value!r}")
    return sorted(found, key=lambda line: int(line.split(":")[1]))


def test_no_laptop_module_makes_a_posix_only_call_outside_osproc():
    files = _laptop_files()
    assert len(files) > 50  # the scan sees the code, not an empty folder
    findings = [line for path in files for line in _findings(path)]
    assert findings == [], "move these behind workbench/osproc.py:\n" + "\n".join(findings)


def test_the_scan_finds_what_it_looks_for(tmp_path: Path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import fcntl\nimport os, socket\nos.getuid()\nsocket.AF_UNIX\nopen('/proc/1/stat')\n"
    )
    found = _findings(sample, tmp_path)
    assert [f.split(": ", 1)[1] for f in found] == [
        "import fcntl",
        "os.getuid",
        "socket.AF_UNIX",
        "reads '/proc/1/stat'",
    ]


# What a Windows Python lacks, taken away from this one before anything is imported.
_WITHOUT_POSIX = textwrap.dedent(
    """
    import importlib.abc, os, socket, sys

    class NoPosix(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"fcntl", "pwd", "grp", "termios", "tty", "pty", "resource"}:
                raise ImportError(f"no module named {name!r} (as on Windows)")
            return None

    for name in ("fcntl", "pwd", "grp", "termios", "tty", "pty", "resource"):
        sys.modules.pop(name, None)
    sys.meta_path.insert(0, NoPosix())
    for name in ("getuid", "geteuid", "getgid", "getegid", "sendfile", "pread", "fchmod",
                 "setsid", "killpg", "fork"):
        if hasattr(os, name):
            delattr(os, name)
    delattr(socket, "AF_UNIX")
    import importlib, pkgutil
    failed = []
    for package in ("workbench", "contexts", "ui"):
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            if info.name.endswith("__main__"):
                continue  # runs a program when imported
            try:
                importlib.import_module(info.name)
            except Exception as exc:
                failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
    print("\\n".join(failed))
    """
)


def test_every_laptop_module_imports_without_posix_only_modules():
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_POSIX],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "", "modules that do not import:\n" + done.stdout
