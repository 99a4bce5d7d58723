"""A real OpenSSH server on a loopback port, for integration tests that must not mock SSH.

``SshServer`` runs ``/usr/sbin/sshd -D -e`` as the current user (root or not) with its own host
key, its own authorized keys (a plain ed25519 client key and a passphrase-protected one) and a
config that allows TCP forwarding and SFTP. It can be stopped, killed (SIGKILL, sessions
included, as when a host dies) and restarted on the same port with the same or a new host key.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)

SSHD = "/usr/sbin/sshd"
SFTP_SERVER_CANDIDATES = (
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/libexec/sftp-server",
    "/usr/lib/ssh/sftp-server",
)
PASSPHRASE = "correct horse battery staple"
# How many other ports a first start may try when the free port it picked was taken meanwhile.
PORT_RETRIES = 5
_BIND_FAILURES = ("Address already in use", "Cannot bind any address")


def sshd_available() -> bool:
    """True where an OpenSSH server and ssh-keygen can be run (tests skip otherwise)."""
    return os.access(SSHD, os.X_OK) and shutil.which("ssh-keygen") is not None


def _sftp_server() -> str:
    for candidate in SFTP_SERVER_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("no sftp-server binary found")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path, passphrase: str = "", comment: str = "workbench-test") -> None:
    for stale in (path, path.with_name(path.name + ".pub")):
        stale.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, found through /proc (sshd's children call setsid)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the ppid follows the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    queue = [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


class _PortTaken(RuntimeError):
    """sshd could not bind its port: another process holds it."""


class SshServer:
    """One sshd on 127.0.0.1, its keys and config kept in ``directory``."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        port: int | None = None,
        session_env: dict[str, str] | None = None,
    ) -> None:
        """``session_env`` is set in every session (sshd's ``SetEnv``), e.g. a HOME of its own."""
        self._owns_directory = directory is None
        self._session_env = dict(session_env or {})
        self.directory = (
            Path(tempfile.mkdtemp(prefix="wb-sshd-")) if directory is None else directory
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        # A port picked here is only probably free: another process may bind it before sshd
        # does. Until the first start succeeds such a port may be swapped for another; a port
        # the caller named, or one a start has used, is kept (restarts stay on it).
        self._port_movable = not port
        self._port = port or _free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log: int | None = None
        self._user = pwd.getpwuid(os.getuid()).pw_name
        self._make_keys()
        self._write_config()

    # -- what tests read -------------------------------------------------------------------

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return self._port

    @property
    def user(self) -> str:
        return self._user

    @property
    def client_key_path(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def encrypted_key_path(self) -> Path:
        return self.directory / "id_ed25519_encrypted"

    @property
    def passphrase(self) -> str:
        return PASSPHRASE

    @property
    def host_key_path(self) -> Path:
        return self.directory / "ssh_host_ed25519_key"

    @property
    def log_path(self) -> Path:
        return self.directory / "sshd.log"

    @property
    def host_key_fingerprint(self) -> str:
        """The host key's fingerprint as ``ssh-keygen -l`` prints it: ``SHA256:...``."""
        out = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", str(self.host_key_path) + ".pub"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return out.split()[1]

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        if self.is_running():
            return
        if os.geteuid() == 0:
            # sshd insists on its privilege separation directory when run as root.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        retries = PORT_RETRIES if self._port_movable else 0
        while True:
            self._log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            log_start = os.fstat(self._log).st_size
            self._process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.directory / "sshd_config")],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                start_new_session=True,
            )
            try:
                self._wait_for_banner(timeout, log_start)
                break
            except _PortTaken:
                self.kill()
                if retries <= 0:
                    raise
                retries -= 1
                taken, self._port = self._port, _free_port()
                self._write_config()
                logger.info("port %s was taken before sshd bound it; trying %s", taken, self._port)
            except BaseException:
                self.kill()
                raise
        self._port_movable = False
        logger.info("sshd %s listening on %s:%s", self._process.pid, self.host, self.port)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the listener and every session it forked."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL the listener and every session: the client sees the host vanish."""
        self._signal(signal.SIGKILL, 5.0)

    def restart(self, timeout: float = 10.0) -> None:
        """Stop and start again on the same port, with the same host key."""
        self.stop()
        self.start(timeout)

    def regenerate_host_key(self) -> None:
        """Give the server a new host key (restarting it if it runs), as after a reinstall."""
        was_running = self.is_running()
        if was_running:
            self.stop()
        _keygen(self.host_key_path, comment="workbench-test-host")
        if was_running:
            self.start()

    def close(self) -> None:
        self.kill()
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SshServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def read_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- internals -------------------------------------------------------------------------

    def _make_keys(self) -> None:
        if not self.host_key_path.exists():
            _keygen(self.host_key_path, comment="workbench-test-host")
        if not self.client_key_path.exists():
            _keygen(self.client_key_path)
        if not self.encrypted_key_path.exists():
            _keygen(self.encrypted_key_path, passphrase=PASSPHRASE, comment="workbench-encrypted")
        authorized = "".join(
            (path.with_name(path.name + ".pub")).read_text()
            for path in (self.client_key_path, self.encrypted_key_path)
        )
        (self.directory / "authorized_keys").write_text(authorized)
        for path in (self.client_key_path, self.encrypted_key_path, self.host_key_path):
            path.chmod(0o600)

    def _write_config(self) -> None:
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key_path}",
            f"PidFile {self.directory / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.directory / 'authorized_keys'}",
            "UsePAM no",
            "StrictModes no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin yes",
            "AllowTcpForwarding yes",
            "AllowStreamLocalForwarding yes",
            "X11Forwarding no",
            "PrintMotd no",
            "PrintLastLog no",
            "MaxStartups 100:30:200",
            "MaxSessions 100",
            "LogLevel VERBOSE",
            f"Subsystem sftp {_sftp_server()}",
        ]
        if self._session_env:
            lines.append("SetEnv " + " ".join(f'"{k}={v}"' for k, v in self._session_env.items()))
        (self.directory / "sshd_config").write_text("\n".join(lines) + "\n")

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def _wait_for_banner(self, timeout: float, log_start: int = 0) -> None:
        """Wait until this sshd (said its log, written from ``log_start`` on) answers."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                log = self._log_since(log_start)
                error = _PortTaken if any(text in log for text in _BIND_FAILURES) else RuntimeError
                raise error(f"sshd exited with {self._process.returncode}:\n{log[-2000:]}")
            # Only our sshd's own word that it listens makes a banner on the port its banner: a
            # server that took the port first would answer too.
            if "Server listening on" not in self._log_since(log_start):
                time.sleep(0.05)
                continue
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                    if sock.recv(64).startswith(b"SSH-2.0-"):
                        return
            except OSError as exc:
                last_error = exc
            time.sleep(0.05)
        raise RuntimeError(f"sshd did not answer on port {self.port}: {last_error}")

    def _signal(self, signum: signal.Signals, timeout: float) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            pids = [process.pid, *_descendants(process.pid)]
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in [process.pid, *_descendants(process.pid)]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                process.wait()
            self._wait_gone(pids, timeout)
        self._process = None
        if self._log is not None:
            os.close(self._log)
            self._log = None

    @staticmethod
    def _wait_gone(pids: list[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for pid in pids:
            while time.monotonic() < deadline:
                try:
                    stat = Path(f"/proc/{pid}/stat").read_text()
                except OSError:
                    break
                if stat[stat.rfind(")") + 2 :].startswith("Z"):
                    break  # a zombie holds no socket; its reaper may be slow
                time.sleep(0.02)
