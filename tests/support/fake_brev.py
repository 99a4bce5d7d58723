"""A stand-in for the ``brev`` CLI whose instances are real SSH servers, for tests and benchmarks.

Brev cannot be reached from CI, so ``tests/support/bin/brev`` (which runs ``main`` here) follows
the real CLI's interface instead: ``ls --json`` (entries with ``name``, ``id``, ``status``),
``start NAME``, ``stop NAME`` and ``refresh`` (writing ``$HOME/.brev/ssh_config``). An instance
is an ``sshd`` on a loopback port: ``start`` marks it STARTING and boots it in a detached helper
after a configurable delay, ``stop`` marks it STOPPING and kills it, so a test can SSH into a
"running" instance and see that a "stopped" one is really gone.

State lives in ``$FAKE_BREV_HOME/state.json`` under a file lock (the service polls ``ls`` while a
``start`` is running). Tests drive it through ``FakeBrev``; failures are switches on an instance
(``fail_stop``, ``stoppable``, ``boot_fails``, ``never_ready``) or on the account
(``logged_out``, ``garbage_ls``).

Only the standard library and ``sshd.py`` (loaded by path) are used, because the script runs
under whatever ``python3`` is on PATH, outside the test virtualenv.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

BIN_DIR = Path(__file__).resolve().parent / "bin"
SCRIPT = BIN_DIR / "brev"
LOGGED_OUT_MESSAGE = "you are currently logged out, run `brev login` to log in"


def _sshd_module() -> ModuleType:
    # Loaded by path, not as tests.support.sshd: the package __init__ imports pytest.
    name = "_fake_brev_sshd"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("sshd.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# -- state -----------------------------------------------------------------------------------


class Store:
    """The fake account: instances and switches, in one JSON file under a lock."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.file = home / "state.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / "state.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = json.loads(self.file.read_text()) if self.file.exists() else {}
            except json.JSONDecodeError:
                data = {}
            data.setdefault("instances", {})
            data.setdefault("account", {})
            yield data
            tmp = self.file.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2))
            os.replace(tmp, self.file)

    def read(self) -> dict[str, Any]:
        with self.locked() as data:
            return json.loads(json.dumps(data))


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return not stat[stat.rfind(")") + 2 :].startswith("Z")


def _kill_tree(pid: int) -> None:
    sshd = _sshd_module()
    for target in [pid, *sshd._descendants(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _ancestors(pid: int) -> set[int]:
    found = set()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat[stat.rfind(")") + 2 :].split()[1])
    return found


def _kill_machine_processes(port: int | None) -> None:
    """Kill what runs "on" the instance: every process started over SSH to its port.

    A real machine that stops runs nothing any more, detached processes (the agent's guard)
    included; here they are found by the ``SSH_CONNECTION`` their session gave them.
    """
    if not port:
        return
    spared = _ancestors(os.getpid())
    suffix = f" {port}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in spared:
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        for item in environ.split(b"\0"):
            if item.startswith(b"SSH_CONNECTION=") and item.endswith(suffix):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(entry), signal.SIGKILL)
                break


# -- the helper API tests use ----------------------------------------------------------------


class FakeBrev:
    """The test's handle on one fake Brev account living in ``home``."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.store = Store(home)

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with the stand-in ``brev`` first on PATH and this account selected."""
        env = dict(base)
        env["PATH"] = f"{BIN_DIR}{os.pathsep}{base.get('PATH', os.defpath)}"
        env["FAKE_BREV_HOME"] = str(self.home)
        return env

    def create(
        self,
        name: str,
        *,
        status: str = "STOPPED",
        boot_delay: float = 0.3,
        stop_delay: float = 0.1,
        stoppable: bool = True,
        fail_stop: str | None = None,
        boot_fails: bool = False,
        never_ready: bool = False,
        hourly_price: float | None = None,
    ) -> None:
        with self.store.locked() as data:
            data["instances"][name] = {
                "id": uuid.uuid4().hex[:9],
                "status": "STOPPED",
                "boot_delay": boot_delay,
                "stop_delay": stop_delay,
                "stoppable": stoppable,
                "fail_stop": fail_stop,
                "boot_fails": boot_fails,
                "never_ready": never_ready,
                "hourly_price": hourly_price,
                "port": None,
                "pid": None,
                "starts": 0,
                "stops": 0,
            }
        if status == "RUNNING":
            self.set(name, status="STARTING")
            _boot(self.store, name, delay=0.0)

    def set(self, name: str, **fields: Any) -> None:
        with self.store.locked() as data:
            data["instances"][name].update(fields)

    def set_account(self, **fields: Any) -> None:
        with self.store.locked() as data:
            data["account"].update(fields)

    def instance(self, name: str) -> dict[str, Any]:
        return dict(self.store.read()["instances"][name])

    def status(self, name: str) -> str:
        return str(self.instance(name)["status"])

    def sshd_alive(self, name: str) -> bool:
        return _pid_alive(self.instance(name)["pid"])

    def wait_status(self, name: str, status: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.status(name) != status:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} is {self.status(name)}, not {status}")
            time.sleep(0.05)

    def close(self) -> None:
        """Kill every instance's sshd (and any helper still sleeping); the account is closed, so
        a service that outlives the test cannot boot an instance (and leave its sshd) again."""
        with self.store.locked() as data:
            data["closed"] = True
            for inst in data["instances"].values():
                for key in ("pid", "helper_pid"):
                    pid = inst.get(key)
                    if pid and _pid_alive(pid):
                        _kill_tree(pid)
                _kill_machine_processes(inst.get("port"))
                inst["pid"] = None
                inst["status"] = "STOPPED"


# -- what the CLI does -----------------------------------------------------------------------


def _instance_dir(store: Store, name: str) -> Path:
    return store.home / "instances" / name


def _boot(store: Store, name: str, *, delay: float) -> None:
    """Wait ``delay``, start the instance's sshd, mark it RUNNING (runs in a detached helper)."""
    time.sleep(delay)
    with store.locked() as data:
        inst = data["instances"].get(name)
        if inst is None or inst["status"] != "STARTING" or data.get("closed"):
            return  # stopped or deleted while booting, or the test is over
        if inst.get("boot_fails"):
            inst["status"] = "FAILURE"
            return
        if inst.get("never_ready"):
            return
        # A new port each boot, as a cloud hands out a new address: the client must re-read
        # ssh_config after every start. SshServer picks it, and picks another should some other
        # process take it before sshd binds it.
        sshd = _sshd_module()
        # Each instance is a machine of its own: its own HOME, so ~/.nvwb differs per instance.
        home = _instance_dir(store, name) / "home"
        home.mkdir(parents=True, exist_ok=True)
        bin_dir = _machine_commands(store, name)
        server = sshd.SshServer(
            _instance_dir(store, name),
            session_env={
                "HOME": str(home),
                "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
            },
        )
        server.start()
        inst.update(status="RUNNING", port=server.port, pid=server.pid, helper_pid=None)
        inst["user"] = server.user
        inst["key"] = str(server.client_key_path)
        inst["host_key_fingerprint"] = server.host_key_fingerprint
        inst["started_at"] = time.time()
        inst["home"] = str(home)
        # The sshd lives on after this helper exits; close our copy of its log fd only.
        server._process = None


def _machine_commands(store: Store, name: str) -> Path:
    """``sudo`` and ``shutdown`` for the instance, first on its sessions' PATH.

    ``sudo -n shutdown -h now`` (the agent's default stop command) run "on" a stand-in instance
    must stop that instance, as it would a real one, and never the machine the tests run on.
    """
    bin_dir = _instance_dir(store, name) / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    scripts = {
        "sudo": "#!/bin/sh\n# Options (-n, -E, ...) are dropped: the test user may do anything.\n"
        'while [ $# -gt 0 ]; do case "$1" in -*) shift;; *) break;; esac; done\nexec "$@"\n',
        "shutdown": "#!/bin/sh\n# The machine shutting itself down: Brev sees the instance stop.\n"
        f"FAKE_BREV_HOME='{store.home}' exec '{sys.executable}' '{SCRIPT}' stop '{name}'\n",
    }
    for command, text in scripts.items():
        path = bin_dir / command
        path.write_text(text)
        path.chmod(0o755)
    return bin_dir


def _halt(store: Store, name: str, *, delay: float) -> None:
    time.sleep(delay)
    with store.locked() as data:
        inst = data["instances"].get(name)
        if inst is None or inst["status"] != "STOPPING":
            return
        if inst.get("pid"):
            _kill_tree(inst["pid"])
        _kill_machine_processes(inst.get("port"))
        inst.update(status="STOPPED", pid=None, helper_pid=None)


def _spawn_helper(verb: str, name: str) -> int:
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), verb, name],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=os.environ.copy(),
    )
    return proc.pid


def _fail(message: str, code: int = 1) -> int:
    sys.stderr.write(f"Error: {message}\n")
    return code


def _ls(store: Store, args: list[str]) -> int:
    data = store.read()
    if data["account"].get("garbage_ls"):
        print("You have 1 instances in Org fake\nNAME STATUS\n")
        return 0
    entries = []
    for name, inst in sorted(data["instances"].items()):
        status = inst["status"]
        if status == "RUNNING" and not _pid_alive(inst.get("pid")):
            status = "FAILURE"  # the machine vanished under Brev's feet
        entry = {
            "name": name,
            "id": inst["id"],
            "status": status,
            "health_status": "HEALTHY" if status == "RUNNING" else "",
            "instance_type": "fake.gpu",
            "stoppable": inst["stoppable"],
        }
        if inst.get("hourly_price") is not None:
            entry["hourly_price"] = inst["hourly_price"]
        entries.append(entry)
    if "--json" in args:
        print(json.dumps(entries))
    else:
        print("NAME\tSTATUS\tID")
        for e in entries:
            print(f"{e['name']}\t{e['status']}\t{e['id']}")
    return 0


def _start(store: Store, name: str) -> int:
    with store.locked() as data:
        if data.get("closed"):
            return _fail("this fake Brev account was closed by its test")
        inst = data["instances"].get(name)
        if inst is None:
            return _fail(f"no instance named {name}")
        if inst["status"] in ("RUNNING", "STARTING", "DEPLOYING"):
            print(f"Instance {name} is already {inst['status'].lower()}")
            return 0
        if inst["status"] == "STOPPING":
            return _fail(f"instance {name} is stopping; try again once it is stopped")
        inst["status"] = "STARTING"
        inst["starts"] += 1
    pid = _spawn_helper("_boot", name)
    store_set(store, name, helper_pid=pid)
    print(f"Instance {name} is starting. Run 'brev ls' to check its status.")
    return 0


def _stop(store: Store, name: str) -> int:
    with store.locked() as data:
        inst = data["instances"].get(name)
        if inst is None:
            return _fail(f"no instance named {name}")
        if not inst["stoppable"]:
            return _fail(f"instance {name} does not support stopping; it can only be deleted")
        if inst.get("fail_stop"):
            return _fail(str(inst["fail_stop"]))
        if inst["status"] in ("STOPPED", "STOPPING"):
            print(f"Instance {name} is already {inst['status'].lower()}")
            return 0
        helper = inst.get("helper_pid")
        if helper and _pid_alive(helper):
            _kill_tree(helper)  # a boot in progress is abandoned
        inst["status"] = "STOPPING"
        inst["stops"] += 1
    pid = _spawn_helper("_halt", name)
    store_set(store, name, helper_pid=pid)
    print(f"Instance {name} is stopping.")
    return 0


def store_set(store: Store, name: str, **fields: Any) -> None:
    with store.locked() as data:
        inst = data["instances"].get(name)
        if inst is not None and (
            "helper_pid" not in fields or inst["status"] in ("STARTING", "STOPPING")
        ):
            inst.update(fields)


def _refresh(store: Store) -> int:
    data = store.read()
    home = Path(os.environ.get("HOME") or Path.home())
    lines = ["# Generated by brev refresh (fake). Do not edit.", ""]
    for name, inst in sorted(data["instances"].items()):
        if not inst.get("port"):
            continue
        lines += [
            f"Host {name}",
            "  Hostname 127.0.0.1",
            f'  IdentityFile "{inst["key"]}"',
            f"  User {inst['user']}",
            "  ServerAliveInterval 30",
            "  UserKnownHostsFile /dev/null",
            "  StrictHostKeyChecking no",
            "  PasswordAuthentication no",
            f"  Port {inst['port']}",
            "",
        ]
    target = home / ".brev" / "ssh_config"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines))
    print("refreshed ssh config")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    home = os.environ.get("FAKE_BREV_HOME")
    if not home:
        return _fail("FAKE_BREV_HOME is not set (this is the test stand-in for brev)")
    store = Store(Path(home))
    if not args:
        print("usage: brev ls|start|stop|refresh")
        return 0
    verb, rest = args[0], args[1:]
    if verb == "_boot":
        _boot(store, rest[0], delay=float(store.read()["instances"][rest[0]]["boot_delay"]))
        return 0
    if verb == "_halt":
        _halt(store, rest[0], delay=float(store.read()["instances"][rest[0]]["stop_delay"]))
        return 0
    if store.read()["account"].get("logged_out"):
        return _fail(LOGGED_OUT_MESSAGE)
    if verb == "ls":
        return _ls(store, rest)
    if verb in ("start", "stop") and not rest:
        return _fail(f"brev {verb} needs an instance name")
    if verb == "start":
        return _start(store, rest[0])
    if verb == "stop":
        return _stop(store, rest[0])
    if verb == "refresh":
        return _refresh(store)
    return _fail(f'unknown command "{verb}" for "brev"')
