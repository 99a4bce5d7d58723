#!/usr/bin/env python3
"""Workbench's remote agent: one standard-library file that the service copies to each remote.

It runs under whatever ``python3`` the machine has (3.8 or newer), so it imports nothing outside
the standard library and uses no syntax newer than 3.8. The service replaces it when its sha256
changes. Subcommands:

  guard      the idle backstop: stops the machine when no heartbeat came for the idle timeout
             and nothing is using it (forwarded-port connections, SSH terminals, keep-alive
             jobs, optionally GPU load); runs detached, one per state dir
  heartbeat  record that the service is alive and holds a lease; prints the status
  status     print the guard's status as JSON
  version    print this file's sha256

The state dir holds: guard.lock (held by the running guard), guard.pid, guard.json (the settings
it runs with), heartbeat, status.json, guard.log, ports (extra forwarded ports, written by the
service) and keepalive/ (one file per job that must keep the machine up, holding its pid).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

PROTOCOL = 1
LOCK_NAME = "guard.lock"
PID_NAME = "guard.pid"
CONFIG_NAME = "guard.json"
HEARTBEAT_NAME = "heartbeat"
STATUS_NAME = "status.json"
LOG_NAME = "guard.log"
PORTS_NAME = "ports"
KEEPALIVE_DIR = "keepalive"
MAX_LOG_BYTES = 1 << 20
STOP_COMMAND_TIMEOUT = 600.0
READY_TIMEOUT = 15.0
REPLACE_TIMEOUT = 10.0
# TCP state 01 in /proc/net/tcp*; a LISTEN socket (0A) is not a user.
TCP_ESTABLISHED = "01"
# Linux's Unix98 pseudo-terminals use majors 136-143.
PTS_MAJORS = range(136, 144)

log = logging.getLogger("workbench-agent")


def agent_hash() -> str:
    """The sha256 of this very file: the version the service compares with its own copy."""
    with open(os.path.abspath(__file__), "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


# --- small file helpers ---------------------------------------------------------------------


def write_atomic(path: str, text: str) -> None:
    """Write through a temporary file and a rename, so a reader never sees half a file."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def read_json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_float(path: str) -> float | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return float(fh.read().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return True  # no /proc: kill(0) is all we know
    return not stat[stat.rfind(")") + 2 :].startswith(("Z", "X"))


# --- activity: what counts as someone using the machine -------------------------------------


def _hex_port(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


def established_connections(ports: list[int], proc: str = "/proc") -> list[str]:
    """Established TCP connections with either end on one of ``ports``, one entry each.

    On loopback both ends of a connection appear as lines, so each is keyed by its unordered
    pair of endpoints and counted once. The far end is matched too: with Docker's userland proxy
    off, only the SSH server's outgoing socket to the published port is in this namespace.
    """
    wanted = set(ports)
    if not wanted:
        return []
    seen: dict[frozenset[str], str] = {}
    for name in ("tcp", "tcp6"):
        try:
            with open(os.path.join(proc, "net", name), encoding="ascii") as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or fields[3] != TCP_ESTABLISHED:
                continue
            local, remote = fields[1], fields[2]
            try:
                local_port, remote_port = _hex_port(local), _hex_port(remote)
            except (IndexError, ValueError):
                continue
            if local_port in wanted or remote_port in wanted:
                port = local_port if local_port in wanted else remote_port
                seen.setdefault(frozenset((local, remote)), f"connection to port {port}")
    return sorted(seen.values())


def _proc_stats(proc: str) -> dict[int, tuple[str, int, int]]:
    """pid -> (command name, parent pid, controlling tty number) for every process."""
    found: dict[int, tuple[str, int, int]] = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "stat"), encoding="utf-8", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name may hold spaces and ')': the fields resume after the last ')'.
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2 :].split()
        try:
            found[int(entry)] = (comm, int(fields[1]), int(fields[4]))
        except (IndexError, ValueError):
            continue
    return found


def _has_sshd_ancestor(pid: int, stats: dict[int, tuple[str, int, int]]) -> bool:
    seen = set()
    current = stats.get(pid, ("", 0, 0))[1]
    while current > 1 and current not in seen:
        seen.add(current)
        comm, parent, _ = stats.get(current, ("", 0, 0))
        # OpenSSH 9.8 runs each session in "sshd-session"; older ones in "sshd".
        if comm.startswith("sshd"):
            return True
        current = parent
    return False


def ssh_terminals(proc: str = "/proc") -> list[str]:
    """Interactive SSH sessions: pseudo-terminals held by processes that descend from sshd.

    Commands the service runs (``ssh host cmd``, SFTP) get no terminal, so they never count;
    a shell someone opened does, for as long as it is open.
    """
    stats = _proc_stats(proc)
    terminals: dict[int, str] = {}
    for pid, (comm, _parent, tty) in sorted(stats.items()):
        major = (tty >> 8) & 0xFFF
        if tty == 0 or major not in PTS_MAJORS:
            continue
        minor = (tty & 0xFF) | ((tty >> 12) & 0xFFF00)
        number = (major - PTS_MAJORS[0]) * 256 * 1024 + minor
        if number not in terminals and _has_sshd_ancestor(pid, stats):
            terminals[number] = f"SSH terminal pts/{number} ({comm}, pid {pid})"
    return [terminals[n] for n in sorted(terminals)]


def keepalive_jobs(state_dir: str) -> list[str]:
    """Jobs marked keep-alive: files in ``keepalive/`` naming a live pid. Dead ones are removed."""
    folder = os.path.join(state_dir, KEEPALIVE_DIR)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    jobs = []
    for name in names:
        path = os.path.join(folder, name)
        try:
            with open(path, encoding="utf-8") as fh:
                words = fh.read().split()
            pid = int(words[0])
        except (OSError, ValueError, IndexError):
            continue  # being written, or not ours to judge
        if pid > 0 and pid_alive(pid):
            jobs.append(f"keep-alive job {name} (pid {pid})")
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)
    return jobs


def gpu_busy(threshold: int) -> list[str]:
    """GPUs at or above ``threshold`` percent utilisation, per ``nvidia-smi`` (if there is one)."""
    if threshold <= 0:
        return []
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    try:
        out = subprocess.run(
            [binary, "--query-gpu=index,utilization.gpu", "--format=csv,noheader,nounits"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=20,
            check=False,
        ).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError):
        return []
    busy = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[1].isdigit() and int(parts[1]) >= threshold:
            busy.append(f"GPU {parts[0]} at {parts[1]}%")
    return busy


def read_ports(state_dir: str, given: list[int]) -> list[int]:
    """The ports given on the command line plus those in the state dir's ``ports`` file."""
    ports = set(given)
    try:
        with open(os.path.join(state_dir, PORTS_NAME), encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        text = ""
    for word in text.replace(",", " ").split():
        if word.isdigit():
            ports.add(int(word))
    return sorted(ports)


def detect_activity(state_dir: str, ports: list[int], gpu_percent: int) -> list[str]:
    """Everything that says someone is using the machine right now."""
    return (
        established_connections(read_ports(state_dir, ports))
        + ssh_terminals()
        + keepalive_jobs(state_dir)
        + gpu_busy(gpu_percent)
    )


# --- the guard ------------------------------------------------------------------------------


def _lock_path(state_dir: str) -> str:
    return os.path.join(state_dir, LOCK_NAME)


def guard_running(state_dir: str) -> int | None:
    """The running guard's pid, or None. The lock, not the pid file, is the truth."""
    try:
        fd = os.open(_lock_path(state_dir), os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        pid = read_float(os.path.join(state_dir, PID_NAME))
        return int(pid) if pid else -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class Guard:
    """The watch loop: decide each ``poll`` seconds whether the machine is idle, then stop it."""

    def __init__(self, state_dir: str, config: dict[str, Any]) -> None:
        self.state_dir = state_dir
        self.config = config
        self.idle_timeout = float(config["idle_timeout"])
        self.poll = float(config["poll"])
        self.started_at = time.time()
        self.armed_at = self.started_at  # the idle clock never starts before the guard did
        self.last_activity: float | None = None
        self.activity: list[str] = []
        self.stopping = False
        self.stop_info: dict[str, Any] = {}

    def status(self, state: str, inactive: float | None) -> dict[str, Any]:
        data = {
            "protocol": PROTOCOL,
            "state": state,
            "guard_pid": os.getpid(),
            "started_at": self.started_at,
            "updated_at": time.time(),
            "idle_timeout_seconds": self.idle_timeout,
            "poll_seconds": self.poll,
            "stop_command": self.config["stop_command"],
            "ports": read_ports(self.state_dir, self.config["ports"]),
            "armed_at": self.armed_at,
            "last_activity": self.last_activity,
            "activity": self.activity,
            "inactive_seconds": inactive,
        }
        data.update(self.stop_info)
        return data

    def write_status(self, state: str, inactive: float | None) -> None:
        write_atomic(
            os.path.join(self.state_dir, STATUS_NAME), json.dumps(self.status(state, inactive))
        )

    def run(self, should_exit: Callable[[], bool]) -> int:
        log.info("guard %d watching: %s", os.getpid(), json.dumps(self.config, sort_keys=True))
        while not should_exit():
            now = time.time()
            self.activity = detect_activity(
                self.state_dir, self.config["ports"], int(self.config["gpu_busy_percent"])
            )
            if self.activity:
                self.last_activity = now
            heartbeat = read_float(os.path.join(self.state_dir, HEARTBEAT_NAME))
            marks = [m for m in (heartbeat, self.last_activity, self.armed_at) if m is not None]
            inactive = max(0.0, now - max(marks))
            if inactive >= self.idle_timeout:
                if self.stop(heartbeat, inactive):
                    return 0
                continue
            self.write_status("watching", inactive)
            self._sleep(min(self.poll, self.idle_timeout - inactive), should_exit)
        self.write_status("exited", None)
        log.info("guard %d told to exit", os.getpid())
        return 0

    def stop(self, heartbeat: float | None, inactive: float) -> bool:
        """Run the stop command; True when it succeeded (the guard's work is done)."""
        since = "never" if heartbeat is None else f"{time.time() - heartbeat:.0f} s ago"
        reason = f"idle for {inactive:.0f} s (last heartbeat: {since}; no activity)"
        command = self.config["stop_command"]
        log.warning("%s: running the stop command: %s", reason, command)
        self.stop_info = {"stop_reason": reason, "stop_started_at": time.time()}
        self.write_status("stopping", inactive)
        try:
            done = subprocess.run(
                ["/bin/sh", "-c", command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=STOP_COMMAND_TIMEOUT,
                start_new_session=True,
                check=False,
            )
            code, output = done.returncode, done.stdout.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            code, output = -1, f"the stop command did not finish in {STOP_COMMAND_TIMEOUT:.0f} s"
        except OSError as exc:
            code, output = -1, str(exc)
        self.stop_info.update(
            {"stop_exit_code": code, "stop_output": output[-2000:], "stopped_at": time.time()}
        )
        if code == 0:
            log.warning("stop command succeeded; the guard's work is done")
            self.write_status("stopped", inactive)
            return True
        # Try again after another full idle period rather than give up: a machine left up costs.
        log.error("stop command failed with %s: %s", code, output.strip()[-500:])
        self.armed_at = time.time()
        self.write_status("stop_failed", inactive)
        return False

    @staticmethod
    def _sleep(seconds: float, should_exit: Callable[[], bool]) -> None:
        deadline = time.monotonic() + max(0.05, seconds)
        while not should_exit() and time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def _config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    ports = sorted({int(p) for p in args.ports.replace(",", " ").split()}) if args.ports else []
    return {
        "protocol": PROTOCOL,
        "version": agent_hash(),
        "idle_timeout": float(args.idle_timeout),
        "stop_command": args.stop_command,
        "ports": ports,
        "poll": float(args.poll),
        "gpu_busy_percent": int(args.gpu_busy_percent),
    }


def _setup_logging(state_dir: str) -> None:
    path = os.path.join(state_dir, LOG_NAME)
    with contextlib.suppress(OSError):
        if os.path.getsize(path) > MAX_LOG_BYTES:
            os.replace(path, path + ".1")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def _take_lock(state_dir: str) -> int:
    """Hold the state dir's guard lock for this process's life; OSError if another holds it."""
    fd = os.open(_lock_path(state_dir), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def _retire(state_dir: str, pid: int) -> bool:
    """Ask the running guard to exit (SIGTERM, then SIGKILL); True once its lock is free."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        if pid > 0:
            with contextlib.suppress(OSError):
                os.kill(pid, signum)
        deadline = time.monotonic() + REPLACE_TIMEOUT
        while time.monotonic() < deadline:
            if guard_running(state_dir) is None:
                return True
            time.sleep(0.05)
    return guard_running(state_dir) is None


def _serve_guard(state_dir: str, config: dict[str, Any], lock_fd: int) -> int:
    """The guard's life once it holds the lock: pid file, loop, cleanup."""
    exiting = []
    signal.signal(signal.SIGTERM, lambda signum, frame: exiting.append(signum))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the SSH session that started us may close
    write_atomic(os.path.join(state_dir, PID_NAME), f"{os.getpid()}\n")
    write_atomic(os.path.join(state_dir, CONFIG_NAME), json.dumps(config, sort_keys=True))
    try:
        return Guard(state_dir, config).run(lambda: bool(exiting))
    except Exception:
        log.exception("guard failed")
        return 1
    finally:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(state_dir, PID_NAME))
        os.close(lock_fd)


def _daemonize(state_dir: str, config: dict[str, Any]) -> dict[str, Any]:
    """Double-fork a guard that outlives this SSH session; return what it reported once ready."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child > 0:
        os.close(write_end)
        data = b""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(read_end, 4096)
            if not chunk:
                break
            data += chunk
        os.close(read_end)
        os.waitpid(child, 0)
        try:
            reported = json.loads(data.decode("utf-8") or "{}")
        except ValueError:
            reported = {}
        return reported if isinstance(reported, dict) else {}
    # First child: a new session, so no terminal or SSH session can signal the guard.
    os.close(read_end)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    # The guard itself, reparented to init.
    code = 1
    try:
        os.chdir("/")
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        _setup_logging(state_dir)
        try:
            lock_fd = _take_lock(state_dir)
        except OSError:
            os.write(write_end, json.dumps({"error": "another guard took the lock"}).encode())
            os._exit(1)
        os.write(write_end, json.dumps({"pid": os.getpid()}).encode())
        os.close(write_end)
        code = _serve_guard(state_dir, config, lock_fd)
    finally:
        os._exit(code)


def cmd_guard(args: argparse.Namespace) -> int:
    state_dir = os.path.abspath(os.path.expanduser(args.state_dir))
    os.makedirs(os.path.join(state_dir, KEEPALIVE_DIR), mode=0o700, exist_ok=True)
    config = _config_from_args(args)
    action = "started"
    running = guard_running(state_dir)
    if running is not None:
        if read_json(os.path.join(state_dir, CONFIG_NAME)) == config:
            print(json.dumps({"action": "unchanged", "pid": running}))
            return 0
        if not _retire(state_dir, running):
            print(json.dumps({"action": "failed", "error": "the old guard would not exit"}))
            return 1
        action = "replaced"
    if args.foreground:
        _setup_logging(state_dir)
        try:
            lock_fd = _take_lock(state_dir)
        except OSError:
            print(json.dumps({"action": "failed", "error": "another guard took the lock"}))
            return 1
        return _serve_guard(state_dir, config, lock_fd)
    reported = _daemonize(state_dir, config)
    if "pid" not in reported:
        reported.setdefault("error", "the guard did not report back")
        print(json.dumps({"action": "failed", **reported}))
        return 1
    print(json.dumps({"action": action, "pid": reported["pid"]}))
    return 0


# --- heartbeat, status, version -------------------------------------------------------------


def compose_status(state_dir: str) -> dict[str, Any]:
    """What the guard last wrote, brought up to date with the heartbeat and the clock."""
    data = read_json(os.path.join(state_dir, STATUS_NAME))
    now = time.time()
    pid = guard_running(state_dir)
    heartbeat = read_float(os.path.join(state_dir, HEARTBEAT_NAME))
    marks = [
        m
        for m in (heartbeat, data.get("last_activity"), data.get("armed_at") if pid else None)
        if isinstance(m, (int, float))
    ]
    data.update(
        {
            "protocol": PROTOCOL,
            "agent_version": agent_hash(),
            "now": now,
            "guard_running": pid is not None,
            "guard_pid": pid,
            "last_heartbeat": heartbeat,
            "inactive_seconds": max(0.0, now - max(marks)) if marks else None,
        }
    )
    if pid is None and data.get("state") in ("watching", "stopping", "stop_failed"):
        data["state"] = "dead"  # killed without a chance to say so
    data.setdefault("state", "not_started")
    return data


def cmd_heartbeat(args: argparse.Namespace) -> int:
    state_dir = os.path.abspath(os.path.expanduser(args.state_dir))
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    # The remote's own clock, so a laptop whose clock is off cannot fool the guard.
    write_atomic(os.path.join(state_dir, HEARTBEAT_NAME), f"{time.time():.3f}\n")
    print(json.dumps(compose_status(state_dir)))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state_dir = os.path.abspath(os.path.expanduser(args.state_dir))
    print(json.dumps(compose_status(state_dir)))
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    print(agent_hash())
    return 0


# --- sync commands (scan, hash, watch) ---
# The sync engine's remote half (workbench/sync/wire.py documents the shapes; the laptop's half
# is workbench/sync/local.py). Every command takes the sync ROOT; paths are relative POSIX paths.
# Writes go to ".wbsync-*" temp files and are renamed into place only when whole, verified and
# the destination still holds what the laptop saw, so nothing is half-written or overwritten blind.

SYNC_TEMP_PREFIX = ".wbsync-"
SYNC_CHUNK = 1 << 20
# Never synced, in any letter case (the laptop's ``workbench/sync/ignore.py`` ALWAYS_IGNORED):
# ".git" (git runs what is in it) and ".nvwb-identity" (the laptop's identity token).
SYNC_ALWAYS_IGNORED = frozenset({".git", ".nvwb-identity"})


class SyncRules:
    """Ignore rules compiled on the laptop (gitignore semantics; last match wins). The laptop's
    twin: ``workbench/sync/ignore.py`` ``IgnoreRules`` (``tests/unit/test_agent_twins.py``
    runs both, and the walk, path checks and errno words, on the same inputs)."""

    def __init__(self, rules: list[dict[str, Any]]) -> None:
        import re

        self.rules = [
            (r["base"], re.compile(r["re"], re.DOTALL), bool(r["neg"]), bool(r["dir"]))
            for r in rules
        ]

    def matches(self, path: str, is_dir: bool) -> bool:
        name = path.rpartition("/")[2]
        # Our temp files, and SYNC_ALWAYS_IGNORED in any letter case, always.
        if name.startswith(SYNC_TEMP_PREFIX) or name.casefold() in SYNC_ALWAYS_IGNORED:
            return True
        ignored = False
        for base, rx, neg, dir_only in self.rules:
            if dir_only and not is_dir:
                continue
            if base:
                if not path.startswith(base + "/"):
                    continue
                sub = path[len(base) + 1 :]
            else:
                sub = path
            if rx.fullmatch(sub):
                ignored = not neg
        return ignored

    def ignored(self, path: str, is_dir: bool) -> bool:
        parts = path.split("/")
        for i in range(1, len(parts)):
            if self.matches("/".join(parts[:i]), True):
                return True
        return self.matches(path, is_dir)


def _sync_check(path: str) -> str:
    if not path or path.startswith("/") or "\0" in path:
        raise ValueError(f"refused path {path!r}: not a relative path inside the root")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise ValueError(f"refused path {path!r}: it would leave the root")
    return path


def _sync_inside(root: str, path: str) -> str:
    """root/path, refusing any parent that is not a real folder (a symlink could lead out).
    The laptop's twin: ``workbench/sync/relpath.py`` ``resolve_inside``."""
    import stat as st_

    _sync_check(path)
    current = root
    for part in path.split("/")[:-1]:
        current = current + "/" + part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            break  # nothing below a missing folder exists either; it is created as a folder
        if not st_.S_ISDIR(mode):
            where = current[len(root) + 1 :]
            raise ValueError(f"refused path {path!r}: {where} is not a folder")
    return os.path.join(root, path)


def _sync_entry(path: str, st: os.stat_result, target: str = "") -> dict[str, Any] | None:
    import stat as st_

    mode = st.st_mode
    if st_.S_ISREG(mode):
        kind, size, mtime = "file", st.st_size, st.st_mtime_ns
    elif st_.S_ISDIR(mode):
        kind, size, mtime = "dir", 0, 0
    elif st_.S_ISLNK(mode):
        kind, size, mtime = "symlink", 0, 0
    else:
        return None
    entry = {
        "path": path,
        "type": kind,
        "size": size,
        "mtime_ns": mtime,
        "mode": st_.S_IMODE(mode) if kind != "symlink" else 0,
    }
    if target:
        entry["target"] = target
    return entry


def _sync_stat(root: str, path: str) -> dict[str, Any] | None:
    import stat as st_

    full = os.path.join(root, path)
    try:
        st = os.lstat(full)
        target = os.readlink(full) if st_.S_ISLNK(st.st_mode) else ""
    except (FileNotFoundError, NotADirectoryError):
        return None
    return _sync_entry(path, st, target)


def _sync_matches(current: dict[str, Any] | None, expect: dict[str, Any] | None) -> bool:
    if expect is None or current is None:
        return expect is None and current is None
    if current["type"] != expect["type"]:
        return False
    if current["type"] == "file":
        return (current["size"], current["mtime_ns"]) == (expect["size"], expect["mtime_ns"])
    if current["type"] == "symlink":
        return current.get("target", "") == expect.get("target", "")
    return True


def _sync_oserror(exc: OSError) -> str:
    """The laptop's twin: ``workbench/sync/manifest.py`` ``os_message``."""
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if exc.errno == errno.ENAMETOOLONG:
        return "the name is too long for this file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOTEMPTY:
        return "the folder is not empty (it holds files that are not synced)"
    return exc.strerror or str(exc)


_SYNC_TEMP_IDS = iter(range(1 << 62))
_SYNC_TEMP_TAG = os.urandom(4).hex()


def _sync_temp(full: str) -> str:
    """A temp name beside ``full``: unique to this process (created with O_EXCL all the same)."""
    name = f"{SYNC_TEMP_PREFIX}{_SYNC_TEMP_TAG}-{next(_SYNC_TEMP_IDS)}.tmp"
    return os.path.join(os.path.dirname(full), name)


def _sync_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# A temp file is created with its final permissions where the umask lets it (a chmod less per
# file); ``commit`` sets them exactly where it does not.
_SYNC_UMASK = _sync_umask()


def _sync_widen_pipe(fd: int) -> None:
    """A 1 MiB pipe to sshd where Linux allows it: bulk data then costs a third of the CPU of
    the default 64 KiB (fewer system calls and context switches)."""
    with contextlib.suppress(OSError, ValueError):
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)


def _sync_open_read(full: str) -> int:
    """A file opened for reading, never through a symlink (one could lead out of the root)."""
    return os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))


def _sync_out(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _sync_read_rules(args: argparse.Namespace) -> SyncRules:
    if not getattr(args, "rules", None):
        return SyncRules([])
    if args.rules == "-":
        text = sys.stdin.readline()
    else:
        with open(args.rules) as fh:
            text = fh.read()
    return SyncRules(json.loads(text) if text.strip() else [])


def _sync_walk(
    root: str,
    rules: SyncRules,
    problems: list[dict[str, Any]],
    start: str = "",
    clean: bool = False,
) -> Any:
    import stat as st_

    stack = [start]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(os.path.join(root, folder) if folder else root) as it:
                items = list(it)
        except FileNotFoundError:
            continue
        except OSError as exc:
            problems.append(
                {"path": folder or ".", "problem": f"cannot list folder: {_sync_oserror(exc)}"}
            )
            continue
        for item in items:
            rel = folder + "/" + item.name if folder else item.name
            if clean and item.name.startswith(SYNC_TEMP_PREFIX):
                with contextlib.suppress(OSError):
                    if not item.is_dir(follow_symlinks=False):
                        os.unlink(item.path)
                continue
            try:
                st = item.stat(follow_symlinks=False)
                is_dir = st_.S_ISDIR(st.st_mode)
                if rules.matches(rel, is_dir):
                    continue
                target = os.readlink(item.path) if st_.S_ISLNK(st.st_mode) else ""
            except FileNotFoundError:
                continue
            except OSError as exc:
                problems.append({"path": rel, "problem": "cannot read: " + _sync_oserror(exc)})
                continue
            entry = _sync_entry(rel, st, target)
            if entry is None:
                continue
            # Readable by everyone (the common case) needs no access() call.
            if (
                entry["type"] == "file"
                and st.st_mode & 0o444 != 0o444
                and not os.access(item.path, os.R_OK)
            ):
                problems.append({"path": rel, "problem": "cannot read: permission denied"})
                continue
            yield entry
            if is_dir:
                stack.append(rel)


def _sync_scan_all(root: str, rules: SyncRules, clean: bool = False) -> dict[str, Any]:
    import stat as st_

    try:
        ok = st_.S_ISDIR(os.stat(root).st_mode)
        message = "" if ok else f"the sync root {root} is not a folder"
    except OSError as exc:
        ok, message = False, f"the sync root {root} cannot be read: {_sync_oserror(exc)}"
    problems = []  # type: list[dict[str, Any]]
    entries = list(_sync_walk(root, rules, problems, clean=clean)) if ok else []
    return {"entries": entries, "problems": problems, "root_ok": ok, "message": message}


def cmd_sync_scan(args: argparse.Namespace) -> int:
    """Print the manifest of ROOT as JSON lines, then {"done": true, "root_ok": ...}."""
    found = _sync_scan_all(args.root, _sync_read_rules(args))
    for entry in found["entries"]:
        _sync_out(entry)
    for problem in found["problems"]:
        _sync_out(problem)
    _sync_out({"done": True, "root_ok": found["root_ok"], "message": found["message"]})
    return 0


def _sync_hash_one(root: str, path: str) -> dict[str, Any]:
    try:
        digest = hashlib.sha256()
        with os.fdopen(_sync_open_read(_sync_inside(root, path)), "rb") as fh:
            while True:
                chunk = fh.read(SYNC_CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
        return {"path": path, "sha256": digest.hexdigest()}
    except FileNotFoundError:
        return {"path": path, "missing": True}
    except (OSError, ValueError) as exc:
        reason = _sync_oserror(exc) if isinstance(exc, OSError) else str(exc)
        return {"path": path, "error": "cannot read: " + reason}


def cmd_sync_hash(args: argparse.Namespace) -> int:
    """Read JSON-string paths on stdin, print {"path", "sha256"} (or "error") for each."""
    for line in sys.stdin:
        if line.strip():
            _sync_out(_sync_hash_one(args.root, json.loads(line)))
            sys.stdout.flush()
    return 0


def _sync_set_exec(mode: int, executable: bool) -> int:
    return mode | ((mode & 0o444) >> 2) if executable else mode & ~0o111


def _sync_remove(full: str, current: dict[str, Any] | None) -> None:
    if current is None:
        return
    if current["type"] == "dir":
        os.rmdir(full)
    else:
        os.unlink(full)


def _sync_apply_one(root: str, op: dict[str, Any]) -> dict[str, Any]:
    path = op["path"]
    try:
        full = _sync_inside(root, path)
        current = _sync_stat(root, path)
        if op["op"] == "stat":
            return {"path": path, "ok": True, "entry": current}
        if op["op"] == "mkdir" and current is not None and current["type"] == "dir":
            return {"path": path, "ok": True, "entry": current}  # already there (a rename made it)
        if not _sync_matches(current, op.get("expect")):
            return {
                "path": path,
                "ok": False,
                "error": "changed since it was scanned",
                "changed": True,
            }
        kind = op["op"]
        if kind == "delete":
            _sync_remove(full, current)
            return {"path": path, "ok": True}
        if kind == "mkdir":
            if current is not None and current["type"] != "dir":
                _sync_remove(full, current)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(full, int(op.get("mode", 0o755)) & 0o7777)
        elif kind == "symlink":
            os.makedirs(os.path.dirname(full), exist_ok=True)
            tmp = _sync_temp(full)
            os.symlink(op["target"], tmp)
            if current is not None and current["type"] == "dir":
                os.rmdir(full)
            os.replace(tmp, full)
        elif kind == "chmod":
            os.chmod(full, _sync_set_exec(os.lstat(full).st_mode & 0o7777, bool(op["executable"])))
        elif kind == "rename":  # a file the laptop moved, whose content is already here
            source = _sync_inside(root, op["origin"])
            if not _sync_matches(_sync_stat(root, op["origin"]), op.get("origin_expect")):
                return {
                    "path": path,
                    "ok": False,
                    "error": "changed since it was scanned",
                    "changed": True,
                }
            os.makedirs(os.path.dirname(full), exist_ok=True)
            _sync_inside(root, path)
            os.rename(source, full)
        else:
            return {"path": path, "ok": False, "error": f"unknown op {kind!r}"}
        return {"path": path, "ok": True, "entry": _sync_stat(root, path)}
    except ValueError as exc:
        return {"path": path, "ok": False, "error": str(exc)}
    except OSError as exc:
        return {"path": path, "ok": False, "error": _sync_oserror(exc)}


def cmd_sync_apply(args: argparse.Namespace) -> int:
    """Read ops (JSON lines: delete, mkdir, symlink, chmod) on stdin; print a result for each."""
    for line in sys.stdin:
        if line.strip():
            _sync_out(_sync_apply_one(args.root, json.loads(line)))
            sys.stdout.flush()
    return 0


def _sync_discard(tmp: str | None) -> None:
    if tmp:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


_SYNC_MOVED = {"type": "moved"}  # what ``_current`` says when the folder itself went


class _SyncLanding:
    """One incoming file: written to a temp file beside its destination and hashed as it comes,
    then renamed into place only if the sender vouched for it and the destination still holds
    what the laptop saw. A write that fails (disk full) keeps the stream in step: the rest of
    the file is read and dropped, and the result says why."""

    def __init__(self, root: str, path: str, mode: int = 0o600) -> None:
        """``mode``: the permissions the file is to have, when known before its bytes."""
        self.root, self.path = root, path
        self.mode = -1
        self.tmp = ""
        self.fd = -1
        self.error = ""
        self.sha = hashlib.sha256()
        try:
            self.fd = self._create(mode & 0o777)
            self.mode = mode & 0o777 & ~_SYNC_UMASK
        except (OSError, ValueError) as exc:
            self.tmp = ""  # not created here: nothing of ours to remove
            self.fail(exc)

    def _create(self, mode: int) -> int:
        """Make the temp file (``self.tmp``) beside the destination; its descriptor."""
        full = _sync_inside(self.root, self.path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        _sync_inside(self.root, self.path)  # makedirs may have raced with a new symlink
        self.tmp = _sync_temp(full)
        return os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)

    def _discard(self) -> None:
        _sync_discard(self.tmp)

    def _current(self) -> dict[str, Any] | None:
        _sync_inside(self.root, self.path)
        return _sync_stat(self.root, self.path)

    def _put_in_place(self, current: dict[str, Any] | None) -> None:
        full = _sync_inside(self.root, self.path)
        if current is not None and current["type"] == "dir":
            os.rmdir(full)
        os.replace(self.tmp, full)

    def write(self, data: Any) -> None:
        if self.fd < 0:
            return
        self.sha.update(data)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            self.fail(exc)

    def fail(self, exc: BaseException | None = None, reason: str = "") -> None:
        if exc is not None and not reason:
            reason = _sync_oserror(exc) if isinstance(exc, OSError) else str(exc)
        self.error = self.error or reason
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self._discard()
        self.tmp = ""

    def result(self, **extra: Any) -> dict[str, Any]:
        return {"path": self.path, "ok": False, "error": self.error, **extra}

    def commit(
        self, sent_ok: bool, reason: str, mode: int, mtime_ns: int, expect: Any
    ) -> dict[str, Any]:
        if self.fd < 0:
            return self.result()
        if not sent_ok:
            self.fail(reason=reason or "the sender could not read it")
            return self.result(changed=self.error.startswith("changed"))
        try:
            if mode & 0o7777 != self.mode:
                os.fchmod(self.fd, mode & 0o7777)
            os.utime(self.fd, ns=(mtime_ns, mtime_ns))
            landed = os.fstat(self.fd)
            os.close(self.fd)
            self.fd = -1
            current = self._current()
            if current is _SYNC_MOVED or not _sync_matches(current, expect):
                self.fail(reason="changed here since it was scanned")
                return self.result(changed=True)
            self._put_in_place(current)
        except (OSError, ValueError) as exc:
            self.fail(exc)
            return self.result()
        entry = _sync_entry(self.path, landed)
        return {"path": self.path, "ok": True, "entry": entry, "digest": self.sha.hexdigest()}


# os.replace takes the same dir_fd arguments as os.rename, which stands for both in the set.
_SYNC_DIR_FD_OK = {
    os.open,
    os.stat,
    os.rename,
    os.unlink,
    os.mkdir,
    os.rmdir,
    os.readlink,
} <= os.supports_dir_fd


class _SyncFolders:
    """The root's folders, opened once per transfer stream, each reached from its parent
    without following a symlink (O_NOFOLLOW): files are then created, checked and renamed
    relative to their folder's descriptor, so a folder swapped for a symlink meanwhile cannot
    send a write elsewhere, and no path is walked again per file."""

    LIMIT = 256

    def __init__(self, root: str) -> None:
        self.root = root
        self.fds = {}  # type: dict[str, int]
        try:
            self.path_max = os.pathconf(root, "PC_PATH_MAX")
        except (OSError, ValueError, AttributeError):
            self.path_max = 4096

    def fd(self, folder: str) -> int:
        fd = self.fds.pop(folder, None)
        if fd is None:
            fd = self._open(folder)
        self.fds[folder] = fd  # most recently used last
        while len(self.fds) > self.LIMIT:
            os.close(self.fds.pop(next(iter(self.fds))))
        return fd

    def _open(self, folder: str) -> int:
        if not folder:
            return os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        above, _, name = folder.rpartition("/")
        parent = self.fd(above)
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o777, dir_fd=parent)
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
        try:
            return os.open(name, flags, dir_fd=parent)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise ValueError(f"refused {folder!r}: it is not a folder") from exc
            raise

    def still_there(self, folder: str, fd: int) -> bool:
        """Whether ``root/folder`` is still the folder ``fd`` holds: one removed or moved away
        meanwhile would swallow a file renamed into it, and the file would look synced."""
        try:
            here = os.stat(os.path.join(self.root, folder), follow_symlinks=False)
        except OSError:
            return False
        held = os.fstat(fd)
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino) and held.st_nlink > 0

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


class _SyncStreamLanding(_SyncLanding):
    """A ``_SyncLanding`` that works relative to its folder's descriptor (``_SyncFolders``)."""

    def __init__(self, folders: _SyncFolders, path: str, mode: int) -> None:
        self.folders = folders
        self.folder, self.name, self.dir_fd = "", "", -1
        super().__init__(folders.root, path, mode)

    def _create(self, mode: int) -> int:
        _sync_check(self.path)
        if len(self.root) + 1 + len(self.path.encode("utf-8")) >= self.folders.path_max:
            raise OSError(errno.ENAMETOOLONG, "File name too long")
        self.folder, _, self.name = self.path.rpartition("/")
        self.dir_fd = self.folders.fd(self.folder)
        self.tmp = _sync_temp(self.name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        return os.open(self.tmp, flags, mode, dir_fd=self.dir_fd)

    def _discard(self) -> None:
        if self.tmp:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp, dir_fd=self.dir_fd)

    def _current(self) -> dict[str, Any] | None:
        if not self.folders.still_there(self.folder, self.dir_fd):
            return _SYNC_MOVED  # its folder was moved or removed meanwhile: retry
        try:
            st = os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        import stat as st_

        target = ""
        if st_.S_ISLNK(st.st_mode):
            target = os.readlink(self.name, dir_fd=self.dir_fd)
        return _sync_entry(self.path, st, target)

    def _put_in_place(self, current: dict[str, Any] | None) -> None:
        if current is not None and current["type"] == "dir":
            os.rmdir(self.name, dir_fd=self.dir_fd)
        os.replace(self.tmp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)


def _sync_put(root: str, item: dict[str, Any]) -> dict[str, Any]:
    """Land one small file sent inline (base64) by ``serve``: same checks as a streamed one."""
    import base64

    landing = _SyncLanding(root, item["path"])
    try:
        landing.write(base64.b64decode(item["data"]))
    except ValueError as exc:
        landing.fail(exc)
    return landing.commit(
        bool(item["ok"]),
        item.get("reason", ""),
        int(item["mode"]),
        int(item["mtime_ns"]),
        item.get("expect"),
    )


def _sync_get(root: str, item: dict[str, Any]) -> dict[str, Any]:
    """Read one small file for ``serve`` (inline, base64), saying whether it stayed as planned."""
    import base64

    path = item["path"]
    try:
        with os.fdopen(_sync_open_read(_sync_inside(root, path)), "rb") as fh:
            st = os.fstat(fh.fileno())
            data = fh.read()
        after = os.stat(_sync_inside(root, path))
    except (OSError, ValueError) as exc:
        why = _sync_oserror(exc) if isinstance(exc, OSError) else str(exc)
        return {
            "path": path,
            "ok": False,
            "reason": "cannot read: " + why,
            "data": "",
            "mode": 0,
            "mtime_ns": 0,
        }
    planned = (item["size"], item["mtime_ns"])
    same = (st.st_size, st.st_mtime_ns) == (after.st_size, after.st_mtime_ns) == planned
    ok = same and len(data) == st.st_size
    return {
        "path": path,
        "ok": ok,
        "reason": "" if ok else "changed while it was being sent",
        "data": base64.b64encode(data).decode("ascii"),
        "mode": st.st_mode & 0o7777,
        "mtime_ns": st.st_mtime_ns,
    }


def cmd_sync_serve(args: argparse.Namespace) -> int:
    """Answer requests (JSON lines with "id" and "cmd") on one channel until stdin closes:
    scan, hash, apply, put and get (small files inline), cleanup. One process for the whole
    session, so a small change costs a round trip, not a login shell and an interpreter."""
    root = args.root
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        cmd = req.get("cmd")
        reply = {"id": req.get("id")}  # type: dict[str, Any]
        try:
            if cmd == "scan":
                # "create": the root (a first sync); "clean": drop the temp files a killed
                # transfer left, met on the way (the first scan of a session).
                if req.get("create"):
                    os.makedirs(root, exist_ok=True)
                rules = SyncRules(req.get("rules") or [])
                reply.update(_sync_scan_all(root, rules, clean=bool(req.get("clean"))))
            elif cmd == "hash":
                reply["results"] = [_sync_hash_one(root, p) for p in req["paths"]]
            elif cmd == "apply":
                reply["results"] = [_sync_apply_one(root, o) for o in req["ops"]]
            elif cmd == "put":
                reply["results"] = [_sync_put(root, f) for f in req["files"]]
            elif cmd == "get":
                reply["files"] = [_sync_get(root, f) for f in req["files"]]
            elif cmd == "hello":
                reply["python"] = sys.executable
            elif cmd == "prepare":  # the root: a first sync creates it
                if req.get("create"):
                    os.makedirs(root, exist_ok=True)
            else:
                reply["error"] = f"unknown request {cmd!r}"
        except Exception as exc:  # one bad request must not end the session's channel
            reply["error"] = f"{type(exc).__name__}: {exc}"
        _sync_out(reply)
        sys.stdout.flush()
    return 0


def cmd_sync_receive(args: argparse.Namespace) -> int:
    """Land a transfer stream read on stdin (see workbench/sync/wire.py): a result line per
    file, flushed every 50 ms or so (a line per file would cost a packet per file)."""
    stdin = sys.stdin.buffer
    # Results go out every 50 ms or so, not a write (and an SSH packet) per file.
    out = open(sys.stdout.fileno(), "wb", buffering=1 << 16, closefd=False)  # noqa: SIM115
    _sync_widen_pipe(stdin.fileno())
    buf = memoryview(bytearray(SYNC_CHUNK))
    folders = _SyncFolders(args.root) if _SYNC_DIR_FD_OK else None
    try:
        _sync_receive_loop(args.root, stdin, out, buf, folders)
    finally:
        if folders is not None:
            folders.close()
    out.flush()
    return 0


def _sync_receive_loop(root: str, stdin: Any, out: Any, buf: Any, folders: Any) -> None:
    flushed = time.monotonic()
    while True:
        line = stdin.readline()
        if not line.strip():
            break
        head = json.loads(line)
        path, mode = str(head["path"]), int(head["mode"])
        if folders is not None:
            landing = _SyncStreamLanding(folders, path, mode)  # type: _SyncLanding
        else:
            landing = _SyncLanding(root, path, mode)
        left = int(head["size"])
        while left:
            got = stdin.readinto(buf[: min(left, SYNC_CHUNK)])
            if not got:
                break
            landing.write(buf[:got])
            left -= got
        trailer = stdin.readline() if not left else b""
        if not trailer.endswith(b"\n"):
            landing.fail(reason="transfer ended early")
            out.write(_sync_line(landing.result()))
            break
        said = _SYNC_TRAILER_OK if trailer == b'{"ok": true}\n' else json.loads(trailer)
        result = landing.commit(
            said.get("ok") is True,
            str(said.get("reason", "")),
            int(head["mode"]),
            int(head["mtime_ns"]),
            head.get("expect"),
        )
        out.write(_sync_line(result))
        if time.monotonic() - flushed > 0.05:
            out.flush()
            flushed = time.monotonic()


_SYNC_TRAILER_OK = {"ok": True}


def _sync_line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")


SYNC_SENDFILE_MIN = 256 << 10


def _sync_copy_out(out: Any, fd: int, size: int) -> int:
    """Copy up to ``size`` bytes of ``fd`` to ``out``; returns how many the file gave (fewer
    when it shrank). Large files go by sendfile (no copy through Python) where ``out`` is a
    pipe or socket; anything else is read and written in chunks."""
    sent = 0
    if size >= SYNC_SENDFILE_MIN and hasattr(os, "sendfile"):
        out.flush()
        try:
            target = out.fileno()
            while sent < size:
                n = os.sendfile(target, fd, sent, min(size - sent, 1 << 30))
                if not n:
                    return sent
                sent += n
            return sent
        except OSError as exc:
            if sent or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
        except (AttributeError, ValueError):  # no file descriptor behind ``out``
            pass
    while sent < size:
        data = os.read(fd, min(size - sent, SYNC_CHUNK))
        if not data:
            break
        out.write(data)
        sent += len(data)
    return sent


def _sync_stream_one(out: Any, root: str, item: dict[str, Any]) -> None:
    """One file of a transfer stream: header, exactly ``size`` bytes (zeros pad a file that
    shrank), trailer saying whether it was read whole and unchanged."""
    import stat as st_

    head = {"path": item["dest"], "size": 0, "mode": 0, "mtime_ns": 0, "expect": item.get("expect")}
    fd = -1
    try:
        full = _sync_inside(root, item["path"])
        fd = _sync_open_read(full)
        st = os.fstat(fd)
        if not st_.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
    except (OSError, ValueError) as exc:
        if fd >= 0:
            os.close(fd)
        reason = _sync_oserror(exc) if isinstance(exc, OSError) else str(exc)
        if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
            reason = "it became a symlink"
        out.write((json.dumps(head, ensure_ascii=False) + "\n").encode("utf-8"))
        out.write(_sync_trailer(False, "cannot read: " + reason))
        return
    try:
        head.update(size=st.st_size, mode=st_.S_IMODE(st.st_mode), mtime_ns=st.st_mtime_ns)
        out.write((json.dumps(head, ensure_ascii=False) + "\n").encode("utf-8"))
        got = _sync_copy_out(out, fd, st.st_size)
        for offset in range(got, st.st_size, SYNC_CHUNK):
            out.write(bytes(min(SYNC_CHUNK, st.st_size - offset)))
        after = os.stat(full)
    finally:
        os.close(fd)
    planned = (item["size"], item["mtime_ns"])
    same = (st.st_size, st.st_mtime_ns) == (after.st_size, after.st_mtime_ns) == planned
    ok = same and got == st.st_size
    out.write(_sync_trailer(ok, "" if ok else "changed while it was being sent"))


def _sync_trailer(ok: bool, reason: str) -> bytes:
    said = {"ok": True} if ok else {"ok": False, "reason": reason}
    return (json.dumps(said, ensure_ascii=False) + "\n").encode("utf-8")


def cmd_sync_send(args: argparse.Namespace) -> int:
    """Read items (JSON lines: path, dest, size, mtime_ns, expect) on stdin until EOF, then
    write them as one transfer stream to stdout (see workbench/sync/wire.py)."""
    items = [json.loads(line) for line in sys.stdin.buffer if line.strip()]
    out = open(sys.stdout.fileno(), "wb", buffering=1 << 16, closefd=False)  # noqa: SIM115
    _sync_widen_pipe(out.fileno())
    for item in items:
        _sync_stream_one(out, args.root, item)
    out.flush()
    return 0


def cmd_sync_stream(args: argparse.Namespace) -> int:
    """A transfer process started ahead of need: its first input line says what it is to be,
    ``receive`` or ``send``. The laptop starts one while it scans, so the remote shell and
    interpreter start alongside the scan rather than after it."""
    kind = sys.stdin.buffer.readline().strip()
    if kind == b"receive":
        return cmd_sync_receive(args)
    if kind == b"send":
        return cmd_sync_send(args)
    return 0  # closed unused


def cmd_sync_cleanup(args: argparse.Namespace) -> int:
    """Delete temp files that a killed transfer left behind; print how many."""
    _sync_out({"removed": _sync_remove_temps(args.root)})
    return 0


def _sync_remove_temps(root: str) -> int:
    removed = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            if name.startswith(SYNC_TEMP_PREFIX):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))
                    removed += 1
    return removed


class _Inotify:
    """inotify through ctypes: one watch per folder, events as (folder wd, name, mask)."""

    MASK = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x02000000
    OVERFLOW, ISDIR, IGNORED = 0x4000, 0x40000000, 0x8000

    def __init__(self) -> None:
        import ctypes
        import ctypes.util

        self.libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.paths = {}  # type: dict[int, str]

    def add(self, full: str, rel: str) -> None:
        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(full), self.MASK)
        if wd >= 0:
            self.paths[wd] = rel

    def read(self) -> list[tuple[str | None, str, int]]:
        import struct

        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return []
        events = []
        offset = 0
        while offset + 16 <= len(data):
            wd, mask, _cookie, length = struct.unpack_from("iIII", data, offset)
            name = os.fsdecode(data[offset + 16 : offset + 16 + length].rstrip(b"\0"))
            offset += 16 + length
            if mask & self.IGNORED:
                self.paths.pop(wd, None)
                continue
            events.append((self.paths.get(wd), name, mask))
        return events


def cmd_sync_watch(args: argparse.Namespace) -> int:  # noqa: PLR0915
    """Stream changes under ROOT: {"ready": mode}, then one line per batch,
    {"events": [{"path": P, "entry": E or null}]}, or {"rescan": true} when events were lost.
    Ends when stdin closes (the laptop hung up)."""
    rules = _sync_read_rules(args)
    root = args.root
    if not os.path.isdir(root):
        sys.stderr.write(f"agent: the sync root {root} is not a folder\n")
        return 1
    debounce = args.debounce
    inotify = None
    if not args.poll:
        try:
            inotify = _Inotify()
        except (OSError, AttributeError):
            inotify = None

    def watch_tree(start: str) -> list[str]:
        """Add watches on start and the folders below; return every path found below."""
        found = []
        if inotify is not None:
            inotify.add(os.path.join(root, start) if start else root, start)
        for entry in _sync_walk(root, rules, [], start):
            found.append(entry["path"])
            if entry["type"] == "dir" and inotify is not None:
                inotify.add(os.path.join(root, entry["path"]), entry["path"])
        return found

    def emit(paths: set[str]) -> None:
        events = []
        for path in sorted(paths):
            entry = _sync_stat(root, path)
            if entry is not None and rules.ignored(path, entry["type"] == "dir"):
                continue
            if entry is None and rules.ignored(path, False) and rules.ignored(path, True):
                continue
            events.append({"path": path, "entry": entry})
        if events:
            _sync_out({"events": events})
            sys.stdout.flush()

    def snapshot() -> dict[str, tuple[Any, ...]]:
        return {
            e["path"]: (e["type"], e["size"], e["mtime_ns"], e["mode"], e.get("target"))
            for e in _sync_walk(root, rules, [])
        }

    stdin_fd = sys.stdin.fileno()
    if inotify is not None:
        watch_tree("")
        _sync_out({"ready": "inotify"})
        sys.stdout.flush()
        while True:
            readable, _, _ = select.select([inotify.fd, stdin_fd], [], [])
            if stdin_fd in readable and not os.read(stdin_fd, 4096):
                return 0
            if inotify.fd not in readable:
                continue
            dirty = set()  # type: set[str]
            overflow = False
            deadline = time.monotonic() + 10 * debounce
            while True:
                for folder, name, mask in inotify.read():
                    if mask & inotify.OVERFLOW or folder is None:
                        overflow = overflow or bool(mask & inotify.OVERFLOW)
                        continue
                    path = folder + "/" + name if folder and name else (name or folder)
                    if not path or rules.ignored(path, bool(mask & inotify.ISDIR)):
                        continue
                    dirty.add(path)
                    if mask & inotify.ISDIR and mask & (0x100 | 0x80):
                        dirty.update(watch_tree(path))
                quiet = select.select([inotify.fd], [], [], debounce)[0]
                if not quiet or time.monotonic() > deadline:
                    break
            if overflow:
                _sync_out({"rescan": True})
                sys.stdout.flush()
            emit(dirty)
    _sync_out({"ready": "poll"})
    sys.stdout.flush()
    before = snapshot()
    while True:
        readable, _, _ = select.select([stdin_fd], [], [], args.interval)
        if readable and not os.read(stdin_fd, 4096):
            return 0
        now = snapshot()
        changed = {p for p in before.keys() | now.keys() if before.get(p) != now.get(p)}
        before = now
        emit(changed)


def add_sync_commands(commands: Any) -> None:
    """Register the sync subcommands on the ``commands`` subparsers object."""
    for name, func, text in (
        ("scan", cmd_sync_scan, "print ROOT's manifest as JSON lines"),
        ("hash", cmd_sync_hash, "sha256 of the paths read on stdin"),
        ("apply", cmd_sync_apply, "apply delete/mkdir/symlink/chmod ops read on stdin"),
        ("receive", cmd_sync_receive, "land a transfer stream read on stdin"),
        ("send", cmd_sync_send, "write the files named on stdin as a transfer stream"),
        ("stream", cmd_sync_stream, "receive or send, as the first line on stdin says"),
        ("cleanup", cmd_sync_cleanup, "delete temp files left by a killed transfer"),
        ("watch", cmd_sync_watch, "stream changes under ROOT as JSON lines"),
        ("serve", cmd_sync_serve, "answer sync requests on stdin until it closes"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("root")
        if name in ("scan", "watch"):
            sub.add_argument("--rules", help="file (or - for stdin's first line) of JSON rules")
        if name == "watch":
            sub.add_argument("--poll", action="store_true", help="poll even where inotify works")
            sub.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
            sub.add_argument("--debounce", type=float, default=0.02, help="quiet time to batch")
        sub.set_defaults(func=func)


# --- end of sync commands ---


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent.py", description="Workbench's remote agent")
    commands = parser.add_subparsers(dest="command")

    guard = commands.add_parser("guard", help="stop the machine when nobody uses it")
    guard.add_argument("--state-dir", required=True)
    guard.add_argument("--idle-timeout", type=float, required=True, help="seconds")
    guard.add_argument("--stop-command", required=True)
    guard.add_argument("--ports", default="", help="forwarded ports, comma-separated")
    guard.add_argument("--poll", type=float, default=15.0, help="seconds between checks")
    guard.add_argument(
        "--gpu-busy-percent", type=int, default=0, help="a GPU this busy counts as use (0: off)"
    )
    guard.add_argument("--foreground", action="store_true", help="do not detach (tests)")
    guard.set_defaults(func=cmd_guard)

    heartbeat = commands.add_parser("heartbeat", help="record a heartbeat; print the status")
    heartbeat.add_argument("--state-dir", required=True)
    heartbeat.set_defaults(func=cmd_heartbeat)

    status = commands.add_parser("status", help="print the guard's status as JSON")
    status.add_argument("--state-dir", required=True)
    status.set_defaults(func=cmd_status)

    version = commands.add_parser("version", help="print this file's sha256")
    version.set_defaults(func=cmd_version)

    add_sync_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args))
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            return 1
        sys.stderr.write(f"agent: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
