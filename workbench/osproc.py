"""Every call of the laptop side that differs by operating system, each with its fallback.

Workbench's laptop side (the ``nvwb`` CLI, the app, the per-user service) will mostly run on
macOS and Windows; the remote agent (``resources/agent``) runs on the Linux host and is not
concerned. A call that exists only on Linux, or only on POSIX systems, is made here and nowhere
else (``tests/unit/test_portability.py`` checks that), behind a function whose docstring says what
it does on each system and what it falls back to. Only Linux is tested on this project's
machines: ``docs/architecture.md`` lists what has not run on macOS or Windows yet.

Processes are read through psutil (start times, zombies, owners) on every system: ``/proc`` is
Linux's, and ``os.kill(pid, 0)`` on Windows does not probe a process, it terminates it. psutil is
imported on first use, as are the modules only some calls need: the CLI's start time is counted
in milliseconds.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import socket

    import psutil

log = logging.getLogger(__name__)

WINDOWS = sys.platform == "win32"
MACOS = sys.platform == "darwin"
LINUX = sys.platform.startswith("linux")

#: How far apart two readings of one process's start time may be. psutil computes it from the
#: boot time, which Linux reports to the second and which may be read again by another service
#: process; a pid recycled within a second of its holder's start is not a real case.
START_TIME_TOLERANCE_S = 1.0

# -- processes ----------------------------------------------------------------------------------


def process_start_time(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch), or None if it does not run or is hidden.

    All systems: psutil's ``create_time``.
    """
    if pid <= 0:
        return None
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError, ValueError):
        return None


def same_process_start(recorded: float | None, now: float | None) -> bool:
    """Whether two start times name the same process (see ``START_TIME_TOLERANCE_S``)."""
    if recorded is None or now is None:
        return recorded is None
    return abs(recorded - now) <= START_TIME_TOLERANCE_S


def pid_alive(pid: int, start_time: float | None = None) -> bool:
    """Whether ``pid`` runs, is not a zombie and, when ``start_time`` is given, is still the
    process that started then (a recycled pid is another process).

    All systems: psutil. A process we may not inspect (another user's, on macOS and Windows)
    is not alive for us: a lease holder is always this user's process.
    """
    if pid <= 0:
        return False
    import psutil

    try:
        process = psutil.Process(pid)
        status = process.status()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        # Not ours to read (macOS, Windows): a holder is always this user's process, so one we
        # may not read is another process that took the pid over.
        return False
    if status in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
        return False
    if start_time is None:
        return True
    return same_process_start(start_time, process_start_time(pid))


def process_name(pid: int) -> str:
    """The name of process ``pid`` (its executable's, ``sh``, ``explorer.exe``); "" if unknown."""
    import psutil

    try:
        return str(psutil.Process(pid).name())
    except (psutil.Error, OSError):
        return ""


def pid_owned_by_current_user(pid: int) -> bool:
    """Whether ``pid`` runs as the user running this process.

    POSIX: its real uid is ours. Windows: its account name is ours. A process whose owner cannot
    be read (psutil ``AccessDenied``, as for other users' processes on macOS and Windows) is not
    ours.
    """
    import psutil

    try:
        process = psutil.Process(pid)
        if WINDOWS:
            return bool(process.username() == psutil.Process().username())
        return bool(process.uids().real == os.getuid())
    except (psutil.Error, OSError):
        return False


# The names of the processes between a shell and the Python running ``nvwb`` on Windows, where a
# console script is a small launcher that starts python as a child and waits for it.
_WINDOWS_LAUNCHERS = frozenset({"nvwb.exe", "py.exe", "python.exe", "python3.exe", "pythonw.exe"})


def parent_shell_pid() -> int:
    """The process that ran this one: the shell a lease of ``nvwb activate`` is held for.

    POSIX: the parent (``os.getppid``), which is the shell: a console script execs python.
    Windows: the first ancestor that is not the console-script launcher or a python, since the
    launcher ends with ``nvwb`` and would end the lease at once. An ancestor that cannot be read
    stops the walk there.
    """
    pid = os.getppid()
    if not WINDOWS:
        return pid
    import psutil

    try:
        process: psutil.Process | None = psutil.Process(pid)
        while process is not None and process.name().lower() in _WINDOWS_LAUNCHERS:
            parent = process.parent()
            if parent is None:
                break
            process = parent
        return process.pid if process is not None else pid
    except psutil.Error:
        return pid


# -- the user -----------------------------------------------------------------------------------


def current_uid() -> int | None:
    """This user's numeric id (POSIX ``os.getuid``); None on Windows, which has none."""
    getuid: Callable[[], int] | None = getattr(os, "getuid", None)
    return getuid() if getuid is not None else None


def current_gid() -> int | None:
    """This user's primary group id (POSIX ``os.getgid``); None on Windows."""
    getgid: Callable[[], int] | None = getattr(os, "getgid", None)
    return getgid() if getgid is not None else None


def login_name(env: Mapping[str, str] | None = None) -> str:
    """The user's login name: ``USER``, ``LOGNAME`` or ``USERNAME`` from ``env``, else the
    system's (``getpass.getuser``: the password database on POSIX, the account on Windows)."""
    import getpass

    env = os.environ if env is None else env
    for key in ("USER", "LOGNAME", "USERNAME"):
        if env.get(key):
            return env[key]
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):  # no name for this uid (a container's user)
        uid = current_uid()
        return f"uid{uid}" if uid is not None else "user"


# -- where files live ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DefaultDirs:
    """The system's conventional folders for Workbench's config, state and runtime files."""

    config: Path
    state: Path
    runtime: Path


def default_dirs(
    home: Path, env: Mapping[str, str], app: str, *, system: str | None = None
) -> DefaultDirs:
    """Where ``app``'s files go when neither ``NVWB_*_DIR`` nor ``XDG_*`` says (``paths.py``).

    Linux: ``~/.config/APP``, ``~/.local/state/APP``, ``/tmp/APP-UID/APP`` (the XDG spec's
    defaults; ``XDG_RUNTIME_DIR`` is normally set). macOS: ``~/Library/Application Support/APP``
    (state in its ``state`` folder) and the runtime folder in the per-user ``$TMPDIR``, else in
    ``~/Library/Caches/APP/run`` (a socket path must stay under 104 bytes). Windows:
    ``%APPDATA%\\APP``, ``%LOCALAPPDATA%\\APP\\state`` and ``%LOCALAPPDATA%\\APP\\run``, both
    private to the user by their ACLs. ``system`` (``sys.platform``) is for tests.
    """
    system = system or sys.platform
    if system == "darwin":
        support = home / "Library" / "Application Support" / app
        tmp = env.get("TMPDIR")
        runtime = Path(tmp) / app if tmp else home / "Library" / "Caches" / app / "run"
        return DefaultDirs(support, support / "state", runtime)
    if system == "win32":
        roaming = Path(env["APPDATA"]) if env.get("APPDATA") else home / "AppData" / "Roaming"
        local = Path(env["LOCALAPPDATA"]) if env.get("LOCALAPPDATA") else home / "AppData" / "Local"
        return DefaultDirs(roaming / app, local / app / "state", local / app / "run")
    uid = current_uid()
    return DefaultDirs(
        home / ".config" / app,
        home / ".local" / "state" / app,
        Path(f"/tmp/{app}-{uid if uid is not None else 'user'}") / app,
    )


def short_temp_dir() -> Path:
    """A folder for sockets whose path must be short (OpenSSH control sockets): ``/tmp`` on
    POSIX (shared but sticky; callers make private folders inside), the user's temp folder on
    Windows."""
    import tempfile

    return Path(tempfile.gettempdir()) if WINDOWS else Path("/tmp")


def openssh_multiplexing() -> bool:
    """Whether the system ``ssh`` can share a connection (ControlMaster): not Win32-OpenSSH, which
    has no control sockets; callers use paramiko there."""
    return not WINDOWS


# -- file locks ---------------------------------------------------------------------------------


def lock_fd(fd: int, *, wait: bool = True, timeout: float | None = None) -> bool:
    """Take an exclusive lock on the open file ``fd``; True once held.

    ``wait=False`` returns False at once when another process holds it. POSIX: ``flock`` (held
    until the descriptor is closed, released by the kernel when the process dies). Windows:
    ``msvcrt.locking`` on the file's first byte, tried every 50 ms while waiting (released when
    the file is closed; ``close_locked`` unlocks first, as Windows asks).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if _try_lock(fd):
            return True
        if not wait or (deadline is not None and time.monotonic() >= deadline):
            return False
        time.sleep(0.05)


def _try_lock(fd: int) -> bool:
    if WINDOWS:
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined,unused-ignore]
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def close_locked(fd: int) -> None:
    """Release ``lock_fd``'s lock and close ``fd``. POSIX: closing releases it. Windows: the
    byte is unlocked first, since Windows frees a lock left on a closed file only eventually."""
    if WINDOWS:
        import msvcrt

        with contextlib.suppress(OSError):
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined,unused-ignore]
    os.close(fd)


# -- file data ----------------------------------------------------------------------------------


def pread(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes of ``fd`` at ``offset``. POSIX: ``os.pread``. Windows: seek and read (the
    descriptor's position moves; callers here own their descriptors)."""
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def sendfile(out_fd: int, in_fd: int, offset: int, count: int) -> int:
    """Copy from file ``in_fd`` to ``out_fd`` (a pipe or socket) in the kernel; bytes sent.

    Linux only (``os.sendfile`` to a pipe). Elsewhere it raises ``OSError(ENOSYS)``, which
    callers take as "copy through Python": macOS's sendfile takes sockets only, Windows has none.
    """
    if not LINUX:
        raise OSError(errno.ENOSYS, "sendfile to a pipe is Linux's")
    return os.sendfile(out_fd, in_fd, offset, count)


def fchmod(fd: int, mode: int) -> None:
    """Set an open file's permission bits. POSIX: ``os.fchmod``. Windows (before Python 3.13):
    nothing; its files carry ACLs, not modes, and a new file is private to its folder's owner."""
    change: Callable[[int, int], None] | None = getattr(os, "fchmod", None)
    if change is not None:
        change(fd, mode)


def widen_pipe(fd: int, size: int) -> None:
    """Give a pipe ``size`` bytes of buffer. Linux: ``F_SETPIPE_SZ``; elsewhere (and where the
    system refuses) the pipe keeps its size."""
    if not LINUX:
        return
    import fcntl

    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)


# -- child processes ----------------------------------------------------------------------------


def detached_popen_kwargs() -> dict[str, Any]:
    """``subprocess.Popen`` arguments for a child that outlives this process and its terminal.

    POSIX: a new session (no terminal's SIGHUP or Ctrl-C reaches it). Windows: a detached
    process in a new process group (closing the console does not end it).
    """
    import subprocess

    if WINDOWS:
        detached = getattr(subprocess, "DETACHED_PROCESS", 0x8)
        new_group = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)
        return {"creationflags": detached | new_group}
    return {"start_new_session": True}


def shell_argv(command: str) -> list[str]:
    """The argv that runs ``command`` through a POSIX shell (command templates, ProxyCommand).

    POSIX: ``/bin/sh -c``. Windows: the ``sh`` on PATH (Git for Windows, MSYS2, Cygwin), since
    the commands are written, and quoted, for a POSIX shell; without one it raises
    ``FileNotFoundError`` naming what to install.
    """
    if not WINDOWS:
        return ["/bin/sh", "-c", command]
    import shutil

    found = shutil.which("sh")
    if found is None:
        raise FileNotFoundError(
            "no POSIX shell: install Git for Windows (its sh.exe on PATH) to run shell commands"
        )
    return [found, "-c", command]


def on_shutdown_signals(handler: Callable[[int], None]) -> None:
    """Call ``handler(signum)`` when the process is asked to end: SIGTERM and SIGINT, and
    SIGBREAK on Windows (Ctrl-Break, and what a console's close sends a process group)."""
    import signal

    names = ["SIGTERM", "SIGINT"] + (["SIGBREAK"] if WINDOWS else [])
    for name in names:
        signum = getattr(signal, name, None)
        if signum is not None:
            signal.signal(signum, lambda number, _frame: handler(number))


# -- the service's local socket -----------------------------------------------------------------

#: How a TCP endpoint file starts (Windows, where Python has no Unix sockets).
_TCP_MAGIC = "workbench-tcp"
_TOKEN_LINE_MAX = 200
TOKEN_TIMEOUT_S = 2.0


def unix_sockets() -> bool:
    """Whether this Python has Unix domain sockets (not on Windows, whatever Windows offers)."""
    import socket

    return hasattr(socket, "AF_UNIX")


class LocalListener:
    """The service's listening socket, reachable only by this user.

    Unix sockets (Linux, macOS): the socket file is born mode 0600 (``umask``) in a 0700 folder,
    and each peer's uid is checked where the system says it (``SO_PEERCRED`` on Linux,
    ``LOCAL_PEERCRED`` on macOS). TCP (Windows, or ``transport="tcp"`` for tests): a port on
    127.0.0.1 and a random token, both written to the endpoint file (mode 0600, in the user's
    private folder); a client must send the token as its first line, within 2 seconds.
    """

    def __init__(self, path: Path, *, transport: str | None = None) -> None:
        self.path = path
        self.transport = transport or ("unix" if unix_sockets() else "tcp")
        self._token = ""
        if self.transport == "unix":
            self.sock = self._bind_unix(path)
        else:
            self.sock = self._bind_tcp(path)

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self) -> socket.socket | None:
        """The next client, once it is known to be this user's; None for one refused (logged)."""
        conn, _ = self.sock.accept()
        conn.setblocking(True)
        try:
            allowed, why = self._check(conn)
        except OSError as exc:
            allowed, why = False, str(exc)
        if not allowed:
            log.warning("refused a connection: %s", why)
            with contextlib.suppress(OSError):
                conn.close()
            return None
        return conn

    def close(self) -> None:
        self.sock.close()

    # -- internals ----------------------------------------------------------------------------

    @staticmethod
    def _bind_unix(path: Path) -> socket.socket:
        import socket

        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # born 0600: no window in which another user could connect
        try:
            listener.bind(str(path))
        finally:
            os.umask(old)
        path.chmod(0o600)
        listener.listen(64)
        return listener

    def _bind_tcp(self, path: Path) -> socket.socket:
        import secrets
        import socket

        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self._token = secrets.token_hex(32)
        port = listener.getsockname()[1]
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(f"{_TCP_MAGIC} 127.0.0.1 {port} {self._token}\n")
        os.replace(tmp, path)
        return listener

    def _check(self, conn: socket.socket) -> tuple[bool, str]:
        if self.transport == "tcp":
            import hmac

            conn.settimeout(TOKEN_TIMEOUT_S)
            line = _read_line(conn, _TOKEN_LINE_MAX)
            conn.settimeout(None)
            if hmac.compare_digest(line.strip().encode(), self._token.encode()):
                return True, ""
            return False, "a client on the local TCP port did not send this user's token"
        uid = peer_uid(conn)
        mine = current_uid()
        if uid is not None and mine is not None and uid != mine:
            return False, f"a client of uid {uid}"
        return True, ""


def connect_local(path: Path) -> socket.socket | None:
    """A connection to the listener at ``path``, or None when nothing listens there.

    Reads what ``path`` is: a Unix socket, or a TCP endpoint file whose token is sent first.
    Other failures (a permission error) raise ``OSError``.
    """
    import socket

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISSOCK(mode):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            return None
        except OSError:
            sock.close()
            raise
        return sock
    try:
        fields = path.read_text(encoding="ascii").split()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    if len(fields) != 4 or fields[0] != _TCP_MAGIC or not fields[2].isdigit():
        return None
    _magic, host, port, token = fields
    try:
        sock = socket.create_connection((host, int(port)), timeout=TOKEN_TIMEOUT_S)
    except (ConnectionRefusedError, TimeoutError):
        return None
    sock.settimeout(None)
    sock.sendall(token.encode("ascii") + b"\n")
    return sock


def _read_line(conn: socket.socket, limit: int) -> str:
    data = b""
    while not data.endswith(b"\n") and len(data) < limit:
        chunk = conn.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode("ascii", "replace")


def peer_uid(conn: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket, where the system says.

    Linux: ``SO_PEERCRED``. macOS: ``LOCAL_PEERCRED`` (``struct xucred``). Elsewhere None, and the
    socket file's mode (0600 in a 0700 folder) is the only guard.
    """
    import socket
    import struct

    option = getattr(socket, "SO_PEERCRED", None)
    if option is not None:
        creds = conn.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        return int(uid)
    if MACOS:
        local_peercred, sol_local = 0x001, 0
        try:
            raw = conn.getsockopt(sol_local, local_peercred, struct.calcsize("IIh16I"))
        except OSError:
            return None
        _version, uid = struct.unpack_from("II", raw)
        return int(uid)
    return None
