"""One OpenSSH ControlMaster per connection: app forwards and sync's small transfers ride it.

paramiko's transport tops out well below OpenSSH for a single big stream (measured in
``benchmarks/forward_throughput.py``: about 0.75x of ``ssh -L`` on loopback), because every packet
is handled in Python. App forwards and sync's transfers carry the bulk traffic, so where ``ssh``
is installed they go through one ``ssh -M`` master per ``SshConnection``
(``SshConnection.openssh_master``): forwards are added to it with ``ssh -O forward``, sync runs
its transfer processes as sessions on it. It is one login, made once by whichever needs it
first (an app's forward, or sync's first bulk need), shared by the other. Everything else
(Docker API, exec, sync's requests) stays on the paramiko connection.

Its command line is ``workbench.ssh.openssh``'s: it trusts exactly what the paramiko connection
trusts and never prompts (``BatchMode``): a key that needs a passphrase not held by an ssh-agent
makes it fail, and the callers fall back to paramiko. A supervisor thread restarts a master that
died (host rebooted, network gone) with backoff and puts its forwards back on the same ports.
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
from workbench.ssh.openssh import OpenSsh, as_master, through_master

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0
SUPERVISE_INTERVAL_S = 0.5
BACKOFF_MAX_S = 5.0


class OpenSshMaster:
    """An ``ssh -M -N`` master whose control socket takes sessions and ``-O forward`` requests.

    Nothing runs until ``start()`` (idempotent, thread-safe); ``close()`` ends it for good.
    """

    def __init__(self, openssh: OpenSsh, control_dir: Path | None = None) -> None:
        self.openssh = openssh
        self.target = openssh.target
        base = control_dir if control_dir is not None else osproc.short_temp_dir()
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Unix socket paths are short (108 bytes); a private temp dir keeps it short and ours.
        self._dir = Path(tempfile.mkdtemp(prefix="wbcm-", dir=_short_dir(base)))
        self.control_path = self._dir / "cm"
        self._lock = threading.RLock()
        self._process: subprocess.Popen[bytes] | None = None
        self._forwards: dict[int, int] = {}  # local port -> remote port
        self._closed = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.restarts = 0

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the master unless it runs, and wait until it is usable; raises ``ContextError``
        if it is not (nothing is left running then)."""
        with self._lock:
            if self._closed.is_set():
                raise ContextError(f"the OpenSSH master to {self.target.display()} is closed")
            if self._process is not None and self._process.poll() is None:
                return
            self._spawn()
            if self._supervisor is None:
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

    def running(self) -> bool:
        """Whether its process runs (no round trip: ``alive`` asks the master itself)."""
        process = self._process
        return process is not None and process.poll() is None

    def alive(self) -> bool:
        process = self._process
        return process is not None and process.poll() is None and self._check()

    # -- what rides it ---------------------------------------------------------------------------

    def session(self, remote: str) -> list[str]:
        """The command line of ``remote`` (quoted for the remote shell) as a session on this
        master: no login of its own."""
        return self.openssh.command("-T", control=self._client(), remote=remote)

    def forward(self, local_port: int, remote_port: int) -> None:
        """Listen on ``127.0.0.1:local_port`` and forward to the remote's 127.0.0.1:remote_port."""
        with self._lock:
            self.start()
            self._control("forward", self._spec(local_port, remote_port))
            self._forwards[local_port] = remote_port

    def cancel(self, local_port: int) -> None:
        with self._lock:
            remote = self._forwards.pop(local_port, None)
            if remote is not None and self.alive():
                with contextlib.suppress(ContextError):
                    self._control("cancel", self._spec(local_port, remote))

    # -- internals -----------------------------------------------------------------------------

    def _client(self) -> tuple[str, ...]:
        return through_master(str(self.control_path))

    def _spawn(self) -> None:
        self.control_path.unlink(missing_ok=True)
        command = self.openssh.command("-N", control=as_master(str(self.control_path)))
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read() if self._process.stderr else b""
                self._stop_process()
                raise ContextError(
                    f"the OpenSSH master to {self.target.display()} exited: "
                    f"{err.decode('utf-8', 'replace').strip() or 'no reason given'}"
                )
            if self.control_path.exists() and self._check():
                log.info("OpenSSH master to %s is up", self.target.display())
                return
            time.sleep(0.05)
        self._stop_process()
        raise ContextError(f"the OpenSSH master to {self.target.display()} did not come up")

    def _check(self) -> bool:
        try:
            done = subprocess.run(
                self.openssh.command("-O", "check", control=self._client()),
                capture_output=True,
                check=False,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0

    def _control(self, verb: str, spec: str) -> None:
        done = subprocess.run(
            self.openssh.command("-O", verb, "-L", spec, control=self._client()),
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
