"""``nvwb attach`` and the editor's SSH entry, for real: a loopback sshd stands for the host.

A project is opened on an ``ssh`` context through the service; ``nvwb attach`` then runs in a
real pseudo-terminal of the test's own (type, read, resize, exit code), into the project's
running container on the "remote" Docker engine. The terminal rides the service's own OpenSSH
connection (sshd sees no new login), and holds a lease of its process while it runs. Then the
SSH entry ``open-editor`` writes is used by a plain ``ssh``: a command runs on the host and in
the container, and a host whose key changed is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_container_support import (
    HELLO,
    make_project,
    register,
    remove_container,
    ssh_context,
)
from tests.support.cli import nvwb
from tests.support.sshd import SshServer
from tests.support.workbench_service import holder, shut_down
from workbench.paths import Paths
from workbench.registry import Context

pytestmark = [pytest.mark.docker, pytest.mark.sshd, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PROJECT = "wbt-attach"


# In the new session, the pty on stdin becomes its controlling terminal (resizes then signal the
# foreground process, as in a real terminal window); then the command is run in its place.
_CONTROLLING_TTY = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


class Terminal:
    """A process on a pseudo-terminal of the test's own: type into it, read its screen."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.master, slave = pty.openpty()
        self.resize(24, 80, fd=slave)
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CONTROLLING_TTY, *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        os.close(slave)
        self.seen = ""

    def resize(self, rows: int, cols: int, fd: int | None = None) -> None:
        fcntl.ioctl(
            self.master if fd is None else fd,
            termios.TIOCSWINSZ,
            struct.pack("HHHH", rows, cols, 0, 0),
        )

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, wanted: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while wanted not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                said = self.seen[-2000:]
                raise AssertionError(f"{wanted!r} never came; the screen said:\n{said}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the other side is gone
                    chunk = b""
                if not chunk and self.process.poll() is not None:
                    raise AssertionError(f"{wanted!r} never came; it exited:\n{self.seen[-2000:]}")
                self.seen += chunk.decode("utf-8", "replace")
        return self.seen

    def resized(self, rows: int, cols: int, *, then: str = "") -> None:
        """Resize, and wait until the shell in the container sees it (the window change travels
        through ssh and docker: under load it takes a moment)."""
        self.resize(rows, cols)
        for _attempt in range(20):
            self.type("stty size\n")
            try:
                self.expect(f"{rows} {cols}", timeout=1.5)
            except AssertionError:
                continue
            break
        else:
            raise AssertionError(f"the terminal never became {rows}x{cols}:\n{self.seen[-500:]}")
        if then:
            self.type(then)

    def wait(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                with contextlib.suppress(OSError):
                    self.seen += os.read(self.master, 65536).decode("utf-8", "replace")
        return self.process.wait(timeout=1)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)


def _logins(sshd: SshServer) -> int:
    return sshd.read_log().count("Accepted publickey")


def _guards_terminals() -> set[str]:
    """The SSH terminals the remote agent's idle guard counts as use on this host (the loopback
    sshd's host is this machine), by its own code."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("wb_agent", REPO / "resources/agent/agent.py")
    assert spec is not None and spec.loader is not None
    agent = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(agent)
    return {line.split(" (")[0] for line in agent.ssh_terminals()}


@pytest.fixture
def opened(
    fresh_sshd: SshServer,
    tmp_path: Path,
    paths: Paths,
    wb_env: dict[str, str],
    docker_client: object,
    test_base_image: str,
) -> Iterator[tuple[Context, Path, dict[str, str]]]:
    context = ssh_context(fresh_sshd, tmp_path / "remote-workbench")
    register(paths, context)
    root = make_project(paths, PROJECT, apt="")
    with holder() as shell:
        env = {**wb_env, "NVWB_CONTEXT": context.name, "NVWB_HOLDER_PID": str(shell.pid),
               "PYTHONPATH": str(REPO), "TERM": "xterm"}  # fmt: skip
        try:
            done = nvwb(env, "open", cwd=root)
            assert done.code == 0, done.err
            yield context, root, env
        finally:
            nvwb(env, "close", cwd=root)
            shut_down(wb_env)
            remove_container(docker_client, PROJECT)


def test_attach_is_a_real_terminal_in_the_container_over_the_services_connection(
    opened: tuple[Context, Path, dict[str, str]], fresh_sshd: SshServer
) -> None:
    context, root, env = opened
    logins = _logins(fresh_sshd)
    before = _guards_terminals()
    terminal = Terminal([sys.executable, "-m", "nvwb", "attach"], env, root)
    try:
        terminal.type("echo IN-$((6*7)) && test -f /.dockerenv && pwd\n")
        screen = terminal.expect("IN-42")
        # The idle guard counts it as use: an SSH terminal on the host.
        assert _guards_terminals() - before
        assert "/project" in terminal.expect("/project\r\n")
        assert screen.count("IN-42") >= 1
        # While it runs, the terminal holds the context: a lease of its own process.
        status = nvwb(env, "status", "-o", "json").json()
        (row,) = [r for r in status if r["name"] == context.name]
        terminals = [le for le in row["leases"] if le["purpose"] == "terminal"]
        assert len(terminals) == 1
        assert terminals[0]["holder"]["pid"] == terminal.process.pid
        # The window's size follows the terminal's.
        terminal.resize(33, 121)
        time.sleep(0.5)
        terminal.type("stty size\n")
        terminal.expect("33 121")
        terminal.type("cat code/hello.txt; exit 7\n")
        assert terminal.wait() == 7
        assert HELLO.strip() in terminal.seen
    finally:
        terminal.close()
    # No second login: the terminal went over the service's own SSH connection.
    assert _logins(fresh_sshd) == logins
    status = nvwb(env, "status", "-o", "json").json()
    (row,) = [r for r in status if r["name"] == context.name]
    assert not [le for le in row["leases"] if le["purpose"] == "terminal"]  # released


def test_attach_on_the_local_context_is_docker_exec_in_a_terminal(
    paths: Paths, wb_env: dict[str, str], docker_client: object, test_base_image: str
) -> None:
    root = make_project(paths, "wbt-attach-local", apt="")
    with holder() as shell:
        env = {**wb_env, "NVWB_CONTEXT": "local", "NVWB_HOLDER_PID": str(shell.pid),
               "PYTHONPATH": str(REPO), "TERM": "xterm"}  # fmt: skip
        try:
            not_open = nvwb(env, "attach", cwd=root)
            assert not_open.code == 2 and "nvwb open" in not_open.err
            assert nvwb(env, "open", cwd=root).code == 0
            terminal = Terminal([sys.executable, "-m", "nvwb", "attach"], env, root)
            try:
                terminal.type("test -f /.dockerenv && echo LOCAL-$((2+3)); stty size\n")
                terminal.expect("LOCAL-5")
                terminal.expect("24 80")
                terminal.resized(50, 100, then="exit 4\n")
                assert terminal.wait() == 4
            finally:
                terminal.close()
        finally:
            nvwb(env, "close", cwd=root)
            shut_down(wb_env)
            remove_container(docker_client, "wbt-attach-local")


def test_attach_host_is_a_shell_on_the_contexts_host(
    opened: tuple[Context, Path, dict[str, str]],
) -> None:
    _context, root, env = opened
    terminal = Terminal([sys.executable, "-m", "nvwb", "attach", "--host"], env, root)
    try:
        terminal.type("test -f /.dockerenv || echo ON-THE-HOST; exit 3\n")
        terminal.expect("ON-THE-HOST")
        assert terminal.wait() == 3
    finally:
        terminal.close()


def test_the_editor_entry_works_with_plain_ssh_on_the_host_and_in_the_container(
    opened: tuple[Context, Path, dict[str, str]], fresh_sshd: SshServer
) -> None:
    context, root, env = opened
    done = nvwb(env, "open-editor", "--print", "-o", "json", cwd=root)
    assert done.code == 0, done.err
    said = done.json()
    remote_dir = str(context.workbench_dir)
    assert said["argv"][:3] == ["code", "--remote", "ssh-remote+nvwb-box"]
    assert said["argv"][3].startswith(remote_dir + "/projects/wbt-attach-")
    assert said["included"] is False  # no terminal to ask on: ~/.ssh/config left alone
    assert not (Path(env["HOME"]) / ".ssh" / "config").exists()
    config = said["ssh_config"]
    base = ["ssh", "-F", config, "-o", "BatchMode=yes", "-o", "ControlMaster=no"]
    on_host = subprocess.run([*base, "nvwb-box", "cat", said["argv"][3] + "/code/hello.txt"],
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert on_host.returncode == 0, on_host.stderr
    assert on_host.stdout == HELLO
    container = nvwb(env, "open-editor", "--container", "--print", "-o", "json", cwd=root).json()
    uri = container["argv"][2]
    config_json = json.loads(bytes.fromhex(uri.split("+", 1)[1].split("/", 1)[0]))
    name = config_json["containerName"].lstrip("/")
    assert config_json["settings"] == {"host": "ssh://nvwb-box"}
    in_container = subprocess.run(
        [*base, "nvwb-box", "docker", "exec", name, "cat", "/project/code/hello.txt"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert in_container.returncode == 0, in_container.stderr
    assert in_container.stdout == HELLO
    # The entry pins the key Workbench verified: a host with another key is refused.
    fresh_sshd.regenerate_host_key()
    refused = subprocess.run([*base, "nvwb-box", "true"], capture_output=True, text=True,
                             timeout=60, check=False)  # fmt: skip
    assert refused.returncode != 0
    assert "host key" in refused.stderr.lower()


def test_open_editor_adds_the_include_when_asked_and_ssh_finds_the_host(
    opened: tuple[Context, Path, dict[str, str]],
) -> None:
    _context, root, env = opened
    user_config = Path(env["HOME"]) / ".ssh" / "config"
    user_config.parent.mkdir(mode=0o700)
    user_config.write_text("Host mine\n    HostName example.org\n")
    done = nvwb(env, "open-editor", "--print", "--yes", "-o", "json", cwd=root)
    assert done.code == 0, done.err
    assert done.json()["included"] is True
    assert user_config.read_text().endswith("Host mine\n    HostName example.org\n")
    through_include = subprocess.run(
        ["ssh", "-F", str(user_config), "-o", "BatchMode=yes", "-o", "ControlMaster=no",
         "nvwb-box", "echo", "through-the-include"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert through_include.returncode == 0, through_include.stderr
    assert through_include.stdout.strip() == "through-the-include"
