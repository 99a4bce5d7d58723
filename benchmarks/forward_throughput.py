"""Throughput of a 200 MB download through our app forward, beside ``ssh -L`` to the same sshd.

A loopback OpenSSH server (the test suite's) stands for the remote; behind it a TCP server sends
N MB from memory to each connection. The same download goes through:

* ``ssh -L``: the system OpenSSH client forwarding a local port (what a user would otherwise run);
* ``ssh -L`` via a ControlMaster: one multiplexed master, forwards added with ``-O forward``;
* ours, paramiko: ``SshConnection.forward_local`` (AES-GCM, 64 MiB window, 256 KiB packets);
* ours, as apps get it: ``open_forwards`` picks an OpenSSH ControlMaster where ``ssh`` is
  installed (``workbench/ssh/master.py``), paramiko elsewhere.

Each forward is held by a process of its own, as ``nvwb start`` (or the service) holds it, so the
download client does not share a Python interpreter with the forward.

Goal (issue 3): ours at least 0.8x ``ssh -L``. Each figure is the median of ``--runs`` downloads.
Run: ``.venv/bin/python benchmarks/forward_throughput.py [--mb 200] [--runs 5] [--json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.sshd import SshServer
from workbench.container.forwards import ForwardKey, open_forwards
from workbench.ssh import (
    AcceptFingerprint,
    ConnectOptions,
    KnownHosts,
    SshConnection,
    SshTarget,
)

GOAL_RATIO = 0.8
CHUNK = 1 << 20


def blast_server(size: int) -> tuple[int, Callable[[], None]]:
    """A TCP server on 127.0.0.1 that sends ``size`` bytes to each connection, then closes."""
    payload = os.urandom(CHUNK)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            left = size
            with contextlib.suppress(OSError):
                while left > 0:
                    n = min(left, CHUNK)
                    conn.sendall(payload[:n])
                    left -= n

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()

    def close() -> None:
        stop.set()
        listener.close()

    return listener.getsockname()[1], close


def download(port: int, size: int) -> float:
    """Seconds to read ``size`` bytes from 127.0.0.1:port."""
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    got = 0
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        while True:
            n = sock.recv_into(view)
            if not n:
                break
            got += n
    seconds = time.perf_counter() - started
    if got != size:
        raise RuntimeError(f"got {got} bytes, expected {size}")
    return seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def ssh_args(server: SshServer, known_hosts: Path) -> list[str]:
    return [
        "ssh",
        "-p",
        str(server.port),
        "-i",
        str(server.client_key_path),
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-F",
        "/dev/null",
        f"{server.user}@{server.host}",
    ]


@contextlib.contextmanager
def openssh_forward(
    server: SshServer, known_hosts: Path, remote: int, cipher: str | None = None
) -> Iterator[int]:
    local = free_port()
    extra = ["-c", cipher] if cipher else []
    proc = subprocess.Popen(
        [
            *ssh_args(server, known_hosts)[:-1],
            *extra,
            ssh_args(server, known_hosts)[-1],
            "-N",
            "-L",
            f"127.0.0.1:{local}:127.0.0.1:{remote}",
        ],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_listening(local)
        yield local
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def control_master_forward(server: SshServer, known_hosts: Path, remote: int) -> Iterator[int]:
    control = Path(tempfile.mkdtemp(prefix="wbcm-")) / "cm"
    base = ssh_args(server, known_hosts)
    master = subprocess.Popen(
        [*base[:-1], "-M", "-S", str(control), "-N", base[-1]],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    local = free_port()
    try:
        deadline = time.monotonic() + 10
        while not control.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        subprocess.run(
            [
                *base[:-1],
                "-S",
                str(control),
                "-O",
                "forward",
                "-L",
                f"127.0.0.1:{local}:127.0.0.1:{remote}",
                base[-1],
            ],
            check=True,
            capture_output=True,
        )
        wait_listening(local)
        yield local
    finally:
        subprocess.run(
            [*base[:-1], "-S", str(control), "-O", "exit", base[-1]],
            capture_output=True,
            check=False,
        )
        master.terminate()
        master.wait(10)


@contextlib.contextmanager
def our_forward(server: SshServer, remote: int, openssh: bool) -> Iterator[int]:
    """Our forward held by a process of its own, as ``nvwb start`` or the service holds it."""
    spec = json.dumps(
        {
            "host": server.host,
            "port": server.port,
            "user": server.user,
            "key": str(server.client_key_path),
            "fp": server.host_key_fingerprint,
            "remote": remote,
            "openssh": openssh,
        }
    )
    with child("--hold-forward", spec) as port:
        yield port


def hold_forward(spec_json: str) -> None:
    spec = json.loads(spec_json)
    pins = Path(tempfile.mkdtemp(prefix="wbkh-")) / "known_hosts"
    target = SshTarget(
        host=spec["host"], port=spec["port"], user=spec["user"], key_paths=(Path(spec["key"]),)
    )
    conn = SshConnection(
        target,
        AcceptFingerprint(spec["fp"]),
        KnownHosts(pins),
        options=ConnectOptions(use_agent=False, look_for_keys=False),
    )
    conn.connect()
    forwards = open_forwards(conn, pins.parent / "ssh", prefer_openssh=spec["openssh"])
    kind = "openssh" if spec["openssh"] else "paramiko"
    if forwards.kind != kind:
        raise RuntimeError(f"wanted {kind} forwards, got {forwards.kind}")
    authority = forwards.authority(ForwardKey("bench", "blast"), spec["remote"])
    print(authority.rsplit(":", 1)[1], flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    forwards.close_all()
    conn.close()


def serve_blast(size: int) -> None:
    port, _ = blast_server(size)
    print(port, flush=True)
    sys.stdin.read()


@contextlib.contextmanager
def child(*args: str) -> Iterator[int]:
    """This script run with ``args`` in a process of its own; yields the port it prints."""
    proc = subprocess.Popen(
        [sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def interleaved_mb_s(ports: dict[str, int], size: int, runs: int) -> dict[str, float]:
    """Median MB/s per forward, the forwards taking turns so that load elsewhere on the machine
    falls on all of them alike."""
    for port in ports.values():
        download(port, size)  # warm-up: first-connection costs are not throughput
    samples: dict[str, list[float]] = {name: [] for name in ports}
    for _ in range(runs):
        for name, port in ports.items():
            samples[name].append(size / 1e6 / download(port, size))
    return {name: round(statistics.median(values), 1) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="figures as JSON on the last line")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hold-forward", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_blast(args.serve)
        return 0
    if args.hold_forward:
        hold_forward(args.hold_forward)
        return 0
    size = args.mb * 1_000_000
    with child("--serve", str(size)) as remote:
        figures = measure(size, remote, args.runs)
    figures = {"mb": args.mb, "runs": args.runs, "cpus": os.cpu_count() or 0, **figures}
    ratio = float(figures["workbench_mb_s"]) / float(figures["ssh_L_mb_s"])
    figures["ratio"] = round(ratio, 2)
    figures["ratio_same_cipher"] = round(
        float(figures["workbench_mb_s"]) / float(figures["ssh_L_gcm_mb_s"]), 2
    )
    figures["goal_ratio"] = GOAL_RATIO
    print(f"{args.mb} MB download, median of {args.runs}, loopback sshd, {os.cpu_count()} CPUs:")
    print(f"  ssh -L:                    {figures['ssh_L_mb_s']:8.1f} MB/s")
    print(f"  ssh -L, aes128-gcm:        {figures['ssh_L_gcm_mb_s']:8.1f} MB/s")
    print(f"  ssh -L via ControlMaster:  {figures['ssh_controlmaster_mb_s']:8.1f} MB/s")
    print(f"  workbench, paramiko:       {figures['workbench_paramiko_mb_s']:8.1f} MB/s")
    print(f"  workbench (OpenSSH master):{figures['workbench_mb_s']:8.1f} MB/s  <- what apps get")
    print(f"  ratio workbench / ssh -L:  {ratio:.2f}x (goal: at least {GOAL_RATIO}x)")
    print(f"  ratio workbench / ssh -L with the same cipher: {figures['ratio_same_cipher']}x")
    if args.json:
        print(json.dumps(figures))
    return 0


def measure(size: int, remote: int, runs: int) -> dict[str, float | int | str]:
    figures: dict[str, float | int | str] = {}
    with SshServer() as server, contextlib.ExitStack() as stack:
        known_hosts = Path(tempfile.mkdtemp(prefix="wbkh-")) / "known_hosts"
        key = (server.host_key_path.with_name(server.host_key_path.name + ".pub")).read_text()
        known_hosts.write_text(f"[{server.host}]:{server.port} {key}")
        ports = {
            "ssh_L_mb_s": stack.enter_context(openssh_forward(server, known_hosts, remote)),
            "ssh_L_gcm_mb_s": stack.enter_context(
                openssh_forward(server, known_hosts, remote, "aes128-gcm@openssh.com")
            ),
            "ssh_controlmaster_mb_s": stack.enter_context(
                control_master_forward(server, known_hosts, remote)
            ),
            "workbench_paramiko_mb_s": stack.enter_context(
                our_forward(server, remote, openssh=False)
            ),
            "workbench_mb_s": stack.enter_context(our_forward(server, remote, openssh=True)),
        }
        figures.update(interleaved_mb_s(ports, size, runs))
    return figures


if __name__ == "__main__":
    sys.exit(main())
