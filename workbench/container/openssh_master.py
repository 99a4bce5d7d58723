"""Bulk app forwards through the system OpenSSH client: one ControlMaster per context.

paramiko's transport tops out well below OpenSSH for a single big stream (measured in
``benchmarks/forward_throughput.py``: about 0.75x of ``ssh -L`` on loopback), because every packet
is handled in Python. App forwards carry the bulk traffic (notebooks, model files, dashboards), so
where ``ssh`` is installed they go through one ``ssh -M`` master per context instead, with the
forwards added to it by ``ssh -O forward``. Everything else (Docker API, exec, file copy) stays on
the paramiko connection.

The master trusts exactly what the paramiko connection trusts (``workbench.ssh.openssh``): the
known_hosts files its ``KnownHosts`` names for OpenSSH (our pins and the user's file; for a brev
context, a private file holding just the key that matched the context's pin), with
``StrictHostKeyChecking=yes`` (the paramiko connection, made first, has already pinned or refused
the key). It never prompts (``BatchMode``): a key that needs a
passphrase not held by an ssh-agent makes it fail, and the caller falls back to paramiko. A
supervisor thread restarts a master that died (host rebooted, network gone) with backoff and puts
its forwards back on the same local ports.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from workbench import osproc
from workbench.errors import ContextError
from workbench.ssh import KnownHosts, SshTarget
from workbench.ssh.openssh import trust_options

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0
SUPERVISE_INTERVAL_S = 0.5
BACKOFF_MAX_S = 5.0
CIPHERS = (
    "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,"
    "aes128-ctr,aes192-ctr,aes256-ctr"
)


def openssh_available() -> bool:
    return shutil.which("ssh") is not None and osproc.openssh_multiplexing()


class OpenSshMaster:
    """An ``ssh -M -N`` master to ``target`` whose control socket takes ``-O forward`` requests."""

    def __init__(self, target: SshTarget, known_hosts: KnownHosts, control_dir: Path) -> None:
        self.target = target
        self.known_hosts = known_hosts
        # Fixed for the master's life: a restart trusts the same key, never a new one.
        self._trust = trust_options(target, known_hosts)
        control_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Unix socket paths are short (108 bytes); a private temp dir keeps it short and ours.
        self._dir = Path(tempfile.mkdtemp(prefix="wbcm-", dir=_short_dir(control_dir)))
        self.control_path = self._dir / "cm"
        self._lock = threading.RLock()
        self._process: subprocess.Popen[bytes] | None = None
        self._forwards: dict[int, int] = {}  # local port -> remote port
        self._closed = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.restarts = 0

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the master and wait until it is usable; raises ``ContextError`` if it is not."""
        with self._lock:
            self._spawn()
        self._supervisor = threading.Thread(
            target=self._supervise, daemon=True, name=f"openssh-master-{self.target.host}"
        )
        self._supervisor.start()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._stop_process()
            self._forwards.clear()
        shutil.rmtree(self._dir, ignore_errors=True)

    def alive(self) -> bool:
        process = self._process
        return process is not None and process.poll() is None and self._check()

    # -- forwards ------------------------------------------------------------------------------

    def forward(self, local_port: int, remote_port: int) -> None:
        """Listen on ``127.0.0.1:local_port`` and forward to the remote's 127.0.0.1:remote_port."""
        with self._lock:
            self._control("forward", self._spec(local_port, remote_port))
            self._forwards[local_port] = remote_port

    def cancel(self, local_port: int) -> None:
        with self._lock:
            remote = self._forwards.pop(local_port, None)
            if remote is not None and self.alive():
                with contextlib.suppress(ContextError):
                    self._control("cancel", self._spec(local_port, remote))

    # -- internals -----------------------------------------------------------------------------

    def _base(self) -> list[str]:
        target = self.target
        args = [
            "ssh", "-F", "/dev/null",
            "-S", str(self.control_path),
            "-p", str(target.port),
            "-l", target.user,
            "-o", "BatchMode=yes",
            *self._trust,
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=3",
            "-o", "ConnectTimeout=10",
            # AES-GCM first, as on the paramiko connection: with AES-NI it moves bulk data
            # about 1.5x faster than OpenSSH's default chacha20-poly1305 (forward_throughput.py).
            "-o", f"Ciphers={CIPHERS}",
        ]  # fmt: skip
        if target.proxy_jump:
            args += ["-J", target.proxy_jump]
        elif target.proxy_command:
            args += ["-o", f"ProxyCommand={target.proxy_command}"]
        for key in target.key_paths:
            args += ["-i", str(key)]
        if target.key_paths:
            args += ["-o", "IdentitiesOnly=yes"]
        return args

    def _spawn(self) -> None:
        self.control_path.unlink(missing_ok=True)
        command = [*self._base(), "-M", "-N", "-o", "ControlPersist=no", self.target.host]
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read() if self._process.stderr else b""
                raise ContextError(
                    f"the OpenSSH master to {self.target.display()} exited: "
                    f"{err.decode('utf-8', 'replace').strip() or self._process.returncode}"
                )
            if self.control_path.exists() and self._check():
                log.info("OpenSSH master to %s is up", self.target.display())
                return
            time.sleep(0.05)
        self._stop_process()
        raise ContextError(f"the OpenSSH master to {self.target.display()} did not come up")

    def _check(self) -> bool:
        done = subprocess.run(
            [*self._base(), "-O", "check", self.target.host],
            capture_output=True,
            check=False,
            timeout=10,
        )
        return done.returncode == 0

    def _control(self, verb: str, spec: str) -> None:
        done = subprocess.run(
            [*self._base(), "-O", verb, "-L", spec, self.target.host],
            capture_output=True,
            check=False,
            timeout=15,
        )
        if done.returncode != 0:
            raise ContextError(
                f"OpenSSH could not {verb} {spec}: {done.stderr.decode('utf-8', 'replace').strip()}"
            )

    @staticmethod
    def _spec(local_port: int, remote_port: int) -> str:
        return f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}"

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def _supervise(self) -> None:
        delay = SUPERVISE_INTERVAL_S
        while not self._closed.wait(delay):
            process = self._process
            if process is not None and process.poll() is None:
                delay = SUPERVISE_INTERVAL_S
                continue
            with self._lock:
                if self._closed.is_set():
                    return
                try:
                    self._spawn()
                    for local, remote in list(self._forwards.items()):
                        self._control("forward", self._spec(local, remote))
                except ContextError as exc:
                    log.info("OpenSSH master to %s not back yet: %s", self.target.host, exc)
                    self._stop_process()
                    delay = min(delay * 2, BACKOFF_MAX_S)
                    continue
                self.restarts += 1
                delay = SUPERVISE_INTERVAL_S
                log.info(
                    "OpenSSH master to %s restarted; %d forward(s) back",
                    self.target.host,
                    len(self._forwards),
                )


def _short_dir(preferred: Path) -> Path:
    # Leave room for "/wbcm-XXXXXXXX/cm" and OpenSSH's temporary suffix in sun_path.
    return preferred if len(str(preferred)) <= 70 else osproc.short_temp_dir()
