"""A stand-in for the ``brev`` CLI whose instances are real SSH servers, for tests and benchmarks.

Brev cannot be reached from CI, so ``tests/support/bin/brev`` (which runs ``main`` here) follows
the real CLI's interface instead: ``ls --json`` (entries with ``name``, ``id``, ``status``),
``start NAME``, ``stop NAME``, ``refresh`` (writing ``$HOME/.brev/ssh_config``), and the
commands that find and make instances: ``gpu-search [--json]`` with the real CLI's filters and
JSON shape (``OFFERS``: a Blackwell, a non-stoppable one...), ``gpu-create --name --type T1,T2
[--detached]`` (the types tried in order, each reported as ``[Worker 1] TYPE Failed: ...`` on
stderr when stdout is a pipe, as the real one does; a ``target_disk_gb`` from JSON on stdin) and
``delete NAME``. An instance
is an ``sshd`` on a loopback port: ``start`` marks it STARTING and boots it in a detached helper
after a configurable delay, ``stop`` marks it STOPPING and kills it, so a test can SSH into a
"running" instance and see that a "stopped" one is really gone.

State lives in ``$FAKE_BREV_HOME/state.json`` under a file lock (the service polls ``ls`` while a
``start`` is running). Tests drive it through ``FakeBrev``; failures are switches on an instance
(``fail_stop``, ``stoppable``, ``boot_fails``, ``never_ready``) or on the account
(``logged_out``, ``garbage_ls``, ``fail_delete``, ``no_capacity``: the types ``gpu-create``
finds no capacity for, ``offers``: the catalogue ``gpu-search`` lists).

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
import stat
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


# What ``gpu-search`` lists, in the real CLI's JSON shape (``GPUInstanceInfo`` in brev-cli's
# pkg/cmd/gpusearch): a few providers' types, a Blackwell (capability 10.0) and an RTX PRO 6000
# (12.0, Blackwell too), a type that cannot be stopped (Brev says so of some providers'
# instances), and one whose disk size is a range.
OFFERS: list[dict[str, Any]] = [
    {
        "type": "n1-standard-4:nvidia-tesla-t4:1",
        "provider": "gcp",
        "gpu_name": "T4",
        "gpu_count": 1,
        "vram_per_gpu_gb": 16,
        "total_vram_gb": 16,
        "capability": 7.5,
        "vcpus": 4,
        "memory": "15GiB",
        "disk_min_gb": 100,
        "disk_max_gb": 2000,
        "boot_time_seconds": 300,
        "stoppable": True,
        "rebootable": True,
        "flex_ports": True,
        "price_per_hour": 0.53,
    },
    {
        "type": "g5.xlarge",
        "provider": "aws",
        "gpu_name": "A10G",
        "gpu_count": 1,
        "vram_per_gpu_gb": 24,
        "total_vram_gb": 24,
        "capability": 8.6,
        "vcpus": 4,
        "memory": "16GiB",
        "disk_min_gb": 256,
        "disk_max_gb": 256,
        "boot_time_seconds": 420,
        "stoppable": True,
        "rebootable": True,
        "flex_ports": True,
        "price_per_hour": 1.21,
    },
    {
        "type": "gpu_1x_a100_sxm4",
        "provider": "lambda-labs",
        "gpu_name": "A100",
        "gpu_count": 1,
        "vram_per_gpu_gb": 40,
        "total_vram_gb": 40,
        "capability": 8.0,
        "vcpus": 30,
        "memory": "200GiB",
        "disk_min_gb": 512,
        "disk_max_gb": 512,
        "boot_time_seconds": 180,
        "stoppable": False,
        "rebootable": True,
        "flex_ports": False,
        "price_per_hour": 1.29,
    },
    {
        "type": "g6e.xlarge",
        "provider": "aws",
        "gpu_name": "L40S",
        "gpu_count": 1,
        "vram_per_gpu_gb": 48,
        "total_vram_gb": 48,
        "capability": 8.9,
        "vcpus": 4,
        "memory": "32GiB",
        "disk_min_gb": 250,
        "disk_max_gb": 250,
        "boot_time_seconds": 420,
        "stoppable": True,
        "rebootable": True,
        "flex_ports": True,
        "price_per_hour": 1.86,
    },
    {
        "type": "n3-H100x1",
        "provider": "hyperstack",
        "gpu_name": "H100",
        "gpu_count": 1,
        "vram_per_gpu_gb": 80,
        "total_vram_gb": 80,
        "capability": 9.0,
        "vcpus": 28,
        "memory": "180GiB",
        "disk_min_gb": 100,
        "disk_max_gb": 100,
        "boot_time_seconds": 240,
        "stoppable": True,
        "rebootable": True,
        "flex_ports": True,
        "price_per_hour": 2.28,
    },
    {
        "type": "rtxpro6000.1x",
        "provider": "nebius",
        "gpu_name": "RTXPro6000",
        "gpu_count": 1,
        "vram_per_gpu_gb": 96,
        "total_vram_gb": 96,
        "capability": 12.0,
        "vcpus": 16,
        "memory": "128GiB",
        "disk_min_gb": 200,
        "disk_max_gb": 200,
        "boot_time_seconds": 360,
        "stoppable": True,
        "rebootable": True,
        "flex_ports": True,
        "price_per_hour": 1.89,
    },
    {
        "type": "a3-highgpu-8g:nvidia-h100-80gb:8",
        "provider": "gcp",
        "gpu_name": "H100",
        "gpu_count": 8,
        "vram_per_gpu_gb": 80,
        "total_vram_gb": 640,
        "capability": 9.0,
        "vcpus": 208,
        "memory": "1872GiB",
        "disk_min_gb": 1000,
        "disk_max_gb": 1000,
        "boot_time_seconds": 600,
        "stoppable": True,
        "rebootable": True,
        "flex_ports": True,
        "price_per_hour": 88.49,
    },
    {
        "type": "p6-b200.48xlarge",
        "provider": "aws",
        "gpu_name": "B200",
        "gpu_count": 8,
        "vram_per_gpu_gb": 180,
        "total_vram_gb": 1440,
        "capability": 10.0,
        "vcpus": 192,
        "memory": "2048GiB",
        "disk_min_gb": 8000,
        "disk_max_gb": 8000,
        "boot_time_seconds": 900,
        "stoppable": True,
        "rebootable": True,
        "flex_ports": True,
        "price_per_hour": 113.93,
    },
]
NO_CAPACITY_MESSAGE = "insufficient capacity for instance type {type} in any region"


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

    def set_offers(self, offers: list[dict[str, Any]]) -> None:
        """What ``gpu-search`` lists from now on (default: ``OFFERS``)."""
        self.set_account(offers=offers)

    def no_capacity(self, *types: str) -> None:
        """``gpu-create`` finds no capacity for these instance types (a cloud sold out)."""
        self.set_account(no_capacity=list(types))

    def calls(self, verb: str) -> list[list[str]]:
        """The arguments of each ``brev VERB`` run so far (gpu-search, gpu-create, delete)."""
        return [list(c) for c in self.store.read()["account"].get("calls", {}).get(verb, [])]

    def exists(self, name: str) -> bool:
        return name in self.store.read()["instances"]

    def wait_gone(self, name: str, timeout: float = 10.0) -> None:
        """Wait until a deleted instance is gone (Brev deletes in the background)."""
        deadline = time.monotonic() + timeout
        while self.exists(name):
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} is still there ({self.status(name)})")
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
        if inst is None or inst["status"] not in ("STARTING", "DEPLOYING") or data.get("closed"):
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
            "instance_type": inst.get("instance_type", "fake.gpu"),
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


# -- finding, creating and deleting instances (brev-cli's gpu-search, gpu-create, delete) ------

_SEARCH_FLAGS = {
    "--gpu-name": "gpu_name",
    "-g": "gpu_name",
    "--provider": "provider",
    "-p": "provider",
    "--min-vram": "min_vram",
    "-v": "min_vram",
    "--min-total-vram": "min_total_vram",
    "-t": "min_total_vram",
    "--min-capability": "min_capability",
    "-c": "min_capability",
    "--min-disk": "min_disk",
    "--max-boot-time": "max_boot_time",
    "--sort": "sort",
    "-s": "sort",
}
_SORT_KEYS = {
    "price": "price_per_hour",
    "gpu-count": "gpu_count",
    "vram": "vram_per_gpu_gb",
    "total-vram": "total_vram_gb",
    "vcpu": "vcpus",
    "type": "type",
    "capability": "capability",
    "provider": "provider",
    "disk": "disk_max_gb",
}


def _options(args: list[str], known: dict[str, str], switches: set[str]) -> dict[str, Any] | str:
    """``--flag value``/``--flag=value`` and switches into a dict; a string says what is wrong."""
    found: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name in switches:
            found[name.lstrip("-")] = True
            i += 1
            continue
        if name not in known:
            return f"unknown flag: {arg}"
        if not eq:
            if i + 1 >= len(args):
                return f"flag needs an argument: {arg}"
            value = args[i + 1]
            i += 1
        found[known[name]] = value
        i += 1
    return found


def _record(store: Store, verb: str, args: list[str]) -> None:
    with store.locked() as data:
        data["account"].setdefault("calls", {}).setdefault(verb, []).append(args)


def _gpu_search(store: Store, args: list[str]) -> int:
    _record(store, "gpu-search", args)
    options = _options(args, _SEARCH_FLAGS, {"--json", "--desc", "-d"})
    if isinstance(options, str):
        return _fail(options)
    try:
        numbers = {
            key: float(options.get(key) or 0)
            for key in ("min_vram", "min_total_vram", "min_capability", "min_disk")
        }
        max_boot = int(options.get("max_boot_time") or 0)
    except ValueError as exc:
        return _fail(f"invalid argument: {exc}")
    offers = store.read()["account"].get("offers") or OFFERS
    name = str(options.get("gpu_name") or "").lower()
    provider = str(options.get("provider") or "").lower()
    chosen = []
    for offer in offers:
        # The real CLI's FilterInstances: partial names, minimums, unknown boot times excluded.
        # A test's offer may lack fields (to see the client cope): read with defaults.
        def num(key: str, o: dict[str, Any] = offer) -> float:
            return float(o.get(key) or 0)

        if name and name not in str(offer.get("gpu_name", "")).lower():
            continue
        if provider and provider not in str(offer.get("provider", "")).lower():
            continue
        if numbers["min_vram"] and num("vram_per_gpu_gb") < numbers["min_vram"]:
            continue
        if numbers["min_total_vram"] and num("total_vram_gb") < numbers["min_total_vram"]:
            continue
        if numbers["min_capability"] and num("capability") < numbers["min_capability"]:
            continue
        if numbers["min_disk"] and num("disk_max_gb") < numbers["min_disk"]:
            continue
        boot = num("boot_time_seconds")
        if max_boot and (not boot or boot > max_boot * 60):
            continue
        entry = dict(offer)
        low, high, wanted = num("disk_min_gb"), num("disk_max_gb"), numbers["min_disk"]
        target = wanted if low != high and wanted and low <= wanted <= high else low
        if target:  # omitempty
            entry["target_disk_gb"] = target
        chosen.append(entry)
    sort = str(options.get("sort") or "price").lower()
    if sort == "boot-time":
        chosen.sort(key=lambda o: (not o.get("boot_time_seconds"), o.get("boot_time_seconds", 0)))
    else:
        field = _SORT_KEYS.get(sort, "price_per_hour")
        chosen.sort(
            key=lambda o: (str if field in ("type", "provider") else float)(o.get(field) or 0)
        )
    if options.get("desc") or options.get("d"):
        chosen.reverse()
    if "json" in options or not sys.stdout.isatty():
        print(json.dumps(chosen, indent=2))
        return 0
    print("TYPE  PROVIDER  GPU  COUNT  $/HR")
    for offer in chosen:
        print(
            f"{offer['type']}  {offer['provider']}  {offer['gpu_name']}  {offer['gpu_count']}"
            f"  ${offer['price_per_hour']:.2f}"
        )
    print(f"\nFound {len(chosen)} GPU instance types")
    return 0


_CREATE_FLAGS = {
    "--name": "name",
    "-n": "name",
    "--type": "type",
    "-t": "type",
    "--count": "count",
    "-c": "count",
    "--parallel": "parallel",
    "-p": "parallel",
    "--timeout": "timeout",
    "--startup-script": "startup_script",
    "-s": "startup_script",
}


def _piped_specs() -> list[tuple[str, float]]:
    """Types (and target disks) from stdin, as the real CLI reads them: only from a pipe or a
    file, JSON from ``gpu-search --json`` or its table."""
    mode = os.fstat(0).st_mode
    if stat.S_ISCHR(mode):
        return []
    text = sys.stdin.read().strip()
    if not text:
        return []
    if text.startswith("["):
        return [(str(e["type"]), float(e.get("target_disk_gb") or 0)) for e in json.loads(text)]
    found = []
    for number, line in enumerate(text.splitlines()):
        if number == 0 and ("TYPE" in line or "GPU" in line):
            continue
        words = line.split()
        if words and not line.startswith("Found "):
            found.append((words[0], 0.0))
    return found


def _gpu_create(store: Store, args: list[str]) -> int:
    _record(store, "gpu-create", args)
    options = _options(args, _CREATE_FLAGS, {"--detached", "-d"})
    if isinstance(options, str):
        return _fail(options)
    specs = [(t.strip(), 0.0) for t in str(options.get("type") or "").split(",") if t.strip()]
    specs += _piped_specs()
    if not specs:
        return _fail("no instance types provided. Use --type flag or pipe from 'brev gpus'")
    name = str(options.get("name") or "")
    if not name:
        return _fail("--name flag is required")
    if int(options.get("count") or 1) != 1:
        return _fail("the stand-in brev creates one instance at a time")
    piped = not sys.stdout.isatty()
    log = sys.stderr if piped else sys.stdout
    log.write("Attempting to create 1 instance(s) with 1 parallel attempts\n")
    shown = ", ".join(f"{t} ({d:.0f}GB disk)" if d else t for t, d in specs)
    log.write(f"Instance types to try: {shown}\n\n")
    account = store.read()["account"]
    offers = {o["type"]: o for o in account.get("offers") or OFFERS}
    created = None
    for instance_type, disk in specs:
        log.write(f"[Worker 1] Trying {instance_type} for instance '{name}'...\n")
        offer = offers.get(instance_type)
        if offer is None:
            error = f"instance type {instance_type} not found"
        elif instance_type in (account.get("no_capacity") or []):
            error = NO_CAPACITY_MESSAGE.format(type=instance_type)
        elif store.read()["instances"].get(name) is not None:
            log.write(f"[Worker 1] {instance_type} Failed: duplicate workspace name {name}\n")
            log.write(
                f"\nError: Workspace '{name}' already exists. Use a different name or "
                "delete the existing workspace.\n"
            )
            return _fail("could only create 0/1 instances")
        else:
            error = ""
        if error:
            log.write(f"[Worker 1] {instance_type} Failed: {error}\n")
            continue
        assert offer is not None
        with store.locked() as data:
            data["instances"][name] = {
                "id": uuid.uuid4().hex[:9],
                "status": "DEPLOYING",
                "boot_delay": float(account.get("boot_delay", 0.3)),
                "stop_delay": 0.1,
                "stoppable": offer["stoppable"],
                "fail_stop": None,
                "boot_fails": False,
                "never_ready": False,
                "hourly_price": offer["price_per_hour"],
                "instance_type": instance_type,
                "disk_gb": disk or offer["disk_min_gb"],
                "port": None,
                "pid": None,
                "starts": 1,
                "stops": 0,
            }
        log.write(f"[Worker 1] {instance_type} Success! Created instance '{name}'\n")
        created = instance_type
        break
    if created is None:
        log.write("\nWarning: Only created 0/1 instances\n")
        return _fail("could only create 0/1 instances")
    pid = _spawn_helper("_boot", name)
    store_set(store, name, helper_pid=pid)
    if not options.get("detached") and not options.get("d"):
        deadline = time.monotonic() + float(options.get("timeout") or 300)
        while (
            time.monotonic() < deadline and store.read()["instances"][name]["status"] != "RUNNING"
        ):
            time.sleep(0.05)
    if piped:
        print(name)
    else:
        print(f"Successfully created 1 instance(s)!\n\nInstance: {name}\n  Type: {created}")
    return 0


def _delete(store: Store, names: list[str]) -> int:
    _record(store, "delete", names)
    if not names:
        return _fail("brev delete needs an instance name")
    refused = store.read()["account"].get("fail_delete")
    if refused:
        return _fail(str(refused))
    for name in names:
        with store.locked() as data:
            inst = data["instances"].get(name)
            if inst is None:
                return _fail(f"no workspaces found with name or id {name}")
            helper = inst.get("helper_pid")
            if helper and _pid_alive(helper):
                _kill_tree(helper)
            inst["status"] = "DELETING"
        pid = _spawn_helper("_remove", name)
        store_set(store, name, helper_pid=pid)
        print(
            f"Deleting dev environment {name}. This can take a few minutes. Run 'brev ls' to "
            "check status"
        )
    return 0


def _remove(store: Store, name: str, *, delay: float) -> None:
    """The cloud tears the machine down: its processes end, then Brev forgets it."""
    time.sleep(delay)
    with store.locked() as data:
        inst = data["instances"].get(name)
        if inst is None or inst["status"] != "DELETING":
            return
        if inst.get("pid"):
            _kill_tree(inst["pid"])
        _kill_machine_processes(inst.get("port"))
        del data["instances"][name]
        data["account"].setdefault("deleted", []).append(name)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    home = os.environ.get("FAKE_BREV_HOME")
    if not home:
        return _fail("FAKE_BREV_HOME is not set (this is the test stand-in for brev)")
    store = Store(Path(home))
    if not args:
        print("usage: brev ls|start|stop|refresh|gpu-search|gpu-create|delete")
        return 0
    verb, rest = args[0], args[1:]
    if verb == "_boot":
        _boot(store, rest[0], delay=float(store.read()["instances"][rest[0]]["boot_delay"]))
        return 0
    if verb == "_halt":
        _halt(store, rest[0], delay=float(store.read()["instances"][rest[0]]["stop_delay"]))
        return 0
    if verb == "_remove":
        inst = store.read()["instances"].get(rest[0])
        _remove(store, rest[0], delay=float(inst["stop_delay"]) if inst else 0.0)
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
    if verb in ("gpu-search", "gpu", "gpus", "gpu-list"):
        return _gpu_search(store, rest)
    if verb in ("gpu-create", "gpu-retry", "gcreate", "provision"):
        return _gpu_create(store, rest)
    if verb == "delete":
        return _delete(store, rest)
    return _fail(f'unknown command "{verb}" for "brev"')
