"""``workbench.osproc``, the one home of OS-specific calls, on this (Linux) machine.

Real processes, files and sockets. The Windows transport of the service socket (a local TCP port
and a token) is exercised here too, by asking for it: it is the only part of the Windows path that
Linux can run. What has not run on macOS or Windows is listed in ``docs/architecture.md``.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench import osproc


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "300"])
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def test_a_running_process_is_alive_with_its_start_time(child: subprocess.Popen[bytes]):
    started = osproc.process_start_time(child.pid)
    assert started is not None and abs(started - time.time()) < 60
    assert osproc.pid_alive(child.pid)
    assert osproc.pid_alive(child.pid, started)
    assert osproc.pid_alive(child.pid, started + 0.5)  # one reading's rounding, not another process


def test_a_recycled_pid_is_another_process(child: subprocess.Popen[bytes]):
    started = osproc.process_start_time(child.pid)
    assert started is not None
    assert not osproc.pid_alive(child.pid, started - 3600)


def test_a_zombie_and_a_reaped_process_are_not_alive(child: subprocess.Popen[bytes]):
    started = osproc.process_start_time(child.pid)
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while osproc.pid_alive(child.pid, started):  # killed, not reaped yet: a zombie
        assert time.monotonic() < deadline, "a zombie counted as alive"
        time.sleep(0.02)
    child.wait()
    assert not osproc.pid_alive(child.pid)
    assert osproc.process_start_time(child.pid) is None


@pytest.mark.parametrize("pid", [0, -1])
def test_no_process_has_a_pid_below_one(pid: int):
    assert not osproc.pid_alive(pid)
    assert osproc.process_start_time(pid) is None


def test_owner_is_read_from_the_process(child: subprocess.Popen[bytes]):
    assert osproc.pid_owned_by_current_user(child.pid)
    assert osproc.process_name(child.pid) == "sleep"
    if os.getuid() != 0:
        return  # another user's process can only be made as root
    other = subprocess.Popen(["sleep", "60"], user=65534)
    try:
        assert not osproc.pid_owned_by_current_user(other.pid)
    finally:
        other.kill()
        other.wait()


def test_the_parent_shell_is_the_parent_here():
    assert osproc.parent_shell_pid() == os.getppid()


def test_a_lock_is_exclusive_until_released(tmp_path: Path):
    path = tmp_path / "lock"
    first = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    second = os.open(path, os.O_RDWR)
    try:
        assert osproc.lock_fd(first, wait=False)
        assert not osproc.lock_fd(second, wait=False)
        started = time.monotonic()
        assert not osproc.lock_fd(second, timeout=0.3)
        assert time.monotonic() - started >= 0.25
        osproc.close_locked(first)
        assert osproc.lock_fd(second, wait=False)
    finally:
        osproc.close_locked(second)


def test_a_lock_goes_with_the_process_that_held_it(tmp_path: Path):
    path = tmp_path / "lock"
    path.touch()
    holder = subprocess.Popen(
        ["python3", "-c", f"import fcntl,time; f=open({str(path)!r}); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(300)"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        fd = os.open(path, os.O_RDWR)
        assert not osproc.lock_fd(fd, wait=False)
        holder.kill()
        holder.wait()
        assert osproc.lock_fd(fd, timeout=5)
        osproc.close_locked(fd)
    finally:
        holder.kill()
        holder.wait()


def _echo_once(listener: osproc.LocalListener, accepted: list[bool]) -> None:
    conn = listener.accept()
    accepted.append(conn is not None)
    if conn is not None:
        with conn:
            conn.sendall(conn.recv(100).upper())


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_the_local_listener_takes_this_users_clients(tmp_path: Path, transport: str):
    path = tmp_path / "service.sock"
    listener = osproc.LocalListener(path, transport=transport)
    accepted: list[bool] = []
    server = threading.Thread(target=_echo_once, args=(listener, accepted))
    server.start()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        sock = osproc.connect_local(path)
        assert sock is not None
        with sock:
            sock.sendall(b"hello")
            assert sock.recv(100) == b"HELLO"
        server.join(5)
        assert accepted == [True]
    finally:
        listener.close()
        server.join(5)


def test_a_tcp_client_without_the_token_is_refused(tmp_path: Path):
    path = tmp_path / "service.sock"
    listener = osproc.LocalListener(path, transport="tcp")
    _magic, host, port, token = path.read_text().split()
    assert len(token) == 64
    accepted: list[bool] = []
    server = threading.Thread(target=_echo_once, args=(listener, accepted))
    server.start()
    try:
        with socket.create_connection((host, int(port)), timeout=5) as intruder:
            intruder.sendall(b"0" * 64 + b"\n")
            assert intruder.recv(100) == b""  # closed on it, unanswered
        server.join(5)
        assert accepted == [False]
    finally:
        listener.close()
        server.join(5)


def test_nothing_listening_is_none_not_an_error(tmp_path: Path):
    assert osproc.connect_local(tmp_path / "missing.sock") is None
    stale = tmp_path / "stale.sock"
    osproc.LocalListener(stale).close()  # a dead service's socket file
    assert osproc.connect_local(stale) is None
    tcp = tmp_path / "tcp.sock"
    osproc.LocalListener(tcp, transport="tcp").close()  # a dead service's endpoint file
    assert osproc.connect_local(tcp) is None
    junk = tmp_path / "junk.sock"
    junk.write_text("not an endpoint\n")
    assert osproc.connect_local(junk) is None


def test_default_folders_follow_each_systems_convention():
    home = Path("/h")
    linux = osproc.default_dirs(home, {}, "wb", system="linux")
    assert (linux.config, linux.state) == (home / ".config/wb", home / ".local/state/wb")
    assert str(linux.runtime).startswith("/tmp/wb-")
    mac = osproc.default_dirs(home, {"TMPDIR": "/var/folders/x/T"}, "wb", system="darwin")
    assert mac.config == home / "Library/Application Support/wb"
    assert mac.state == home / "Library/Application Support/wb/state"
    assert mac.runtime == Path("/var/folders/x/T/wb")
    assert len(str(mac.runtime / "service.sock")) < 104  # macOS's socket path limit
    mac_bare = osproc.default_dirs(home, {}, "wb", system="darwin")
    assert mac_bare.runtime == home / "Library/Caches/wb/run"
    windows = osproc.default_dirs(
        home, {"APPDATA": "/A/Roaming", "LOCALAPPDATA": "/A/Local"}, "wb", system="win32"
    )
    assert windows == osproc.DefaultDirs(
        Path("/A/Roaming/wb"), Path("/A/Local/wb/state"), Path("/A/Local/wb/run")
    )


def test_file_data_helpers(tmp_path: Path):
    path = tmp_path / "data"
    path.write_bytes(b"0123456789")
    fd = os.open(path, os.O_RDWR)
    try:
        assert osproc.pread(fd, 4, 3) == b"3456"
        osproc.fchmod(fd, 0o600)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        read, write = os.pipe()
        try:
            osproc.widen_pipe(write, 1 << 20)
            assert osproc.sendfile(write, fd, 2, 5) == 5
            assert os.read(read, 10) == b"23456"
        finally:
            os.close(read)
            os.close(write)
    finally:
        os.close(fd)


def test_a_command_runs_through_a_posix_shell():
    done = subprocess.run(
        osproc.shell_argv("echo $((6 * 7))"), capture_output=True, text=True, check=True
    )
    assert done.stdout == "42\n"


def test_a_detached_child_is_in_a_session_of_its_own():
    child = subprocess.Popen(["sleep", "30"], **osproc.detached_popen_kwargs())
    try:
        assert os.getsid(child.pid) == child.pid != os.getsid(0)
    finally:
        child.kill()
        child.wait()
