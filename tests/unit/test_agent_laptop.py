"""The laptop side of the agent that needs no SSH: status parsing, trust choices, guard settings,
and how ``nvwb status`` words what the agent reports."""

from __future__ import annotations

import paramiko
import pytest

from workbench.agent import AgentStatus, local_agent
from workbench.cli.commands.service import _row
from workbench.errors import ContextError
from workbench.kinds.connect import trust
from workbench.kinds.trust import NoAddressPins, PinOnFirstUse
from workbench.paths import Paths
from workbench.presentation import inactivity as _agent_note
from workbench.registry import DEFAULT_IDLE_STOP_COMMAND, Context, Registry
from workbench.service.link import ContextLink
from workbench.service.messages import ContextSnapshot
from workbench.service.timing import Timing
from workbench.ssh import AcceptFingerprint, RejectUnknown, fingerprint


def test_status_is_the_last_json_line():
    status = AgentStatus.parse(
        'noise\n{"state": "watching", "guard_running": true, "guard_pid": 42,'
        ' "inactive_seconds": 3.5, "activity": ["SSH terminal pts/0 (bash, pid 7)"]}\n',
        where="box",
    )
    assert status.state == "watching" and status.guard_pid == 42
    assert status.inactive_seconds == 3.5
    assert status.activity == ("SSH terminal pts/0 (bash, pid 7)",)
    with pytest.raises(ContextError, match="printed no status"):
        AgentStatus.parse("Traceback (most recent call last):", where="box")


def test_the_shipped_agent_is_hashed():
    script = local_agent()
    assert script.data.startswith(b"#!/usr/bin/env python3")
    assert len(script.sha256) == 64


def test_brev_pins_on_first_use_into_the_context_and_never_by_address(paths: Paths):
    with Registry.locked(paths) as registry:
        registry.create(Context(name="gpu", kind="brev", brev_instance_name="gpu-1"))
    link = ContextLink(Registry.load(paths).get("gpu"), paths, {}, Timing())
    policy, known = trust(link.context, {}, record_pin=link._record_host_key)
    assert isinstance(policy, PinOnFirstUse) and isinstance(known, NoAddressPins)
    key = paramiko.Ed25519Key.from_private_key_file(_ed25519(paths))
    assert policy.decide("10.0.0.7", 22, key)
    pinned = Registry.load(paths).get("gpu").accepted_host_key
    assert pinned == fingerprint(key)
    assert known.lookup("10.0.0.7") == []  # an address Brev gives to the next instance
    policy, _ = trust(Registry.load(paths).get("gpu"), {}, record_pin=link._record_host_key)
    assert isinstance(policy, AcceptFingerprint) and policy.expected == pinned


def test_command_contexts_refuse_unknown_keys(paths: Paths):
    ctx = Context(
        name="vm",
        kind="command",
        hostname="vm.example",
        start_command="true",
        stop_command="true",
        status_command="echo running",
    )
    policy, _ = trust(ctx, {"HOME": str(paths.config_dir)}, record_pin=lambda fp: None)
    assert isinstance(policy, RejectUnknown)


def test_guard_settings_follow_the_context_and_the_overrides(paths: Paths):
    ctx = Context(name="gpu", kind="brev", brev_instance_name="gpu-1", idle_timeout_minutes=20)
    link = ContextLink(ctx, paths, {}, Timing())
    settings = link.guard_settings()
    assert settings.idle_timeout == 1200 and settings.stop_command == DEFAULT_IDLE_STOP_COMMAND
    assert settings.gpu_busy_percent == 0  # off unless the context asks
    assert link.heartbeat_interval() == 30
    busy_ctx = Context(
        name="gpu", kind="brev", brev_instance_name="gpu-1", idle_gpu_busy_percent=60
    )
    busy = ContextLink(busy_ctx, paths, {}, Timing())
    assert busy.guard_settings().gpu_busy_percent == 60
    fast = ContextLink(ctx, paths, {}, Timing.from_env({"NVWB_SERVICE_AGENT_IDLE_TIMEOUT": "3"}))
    assert fast.guard_settings().idle_timeout == 3
    assert fast.heartbeat_interval() == 1  # a third of the idle timeout: one lost beat is fine
    assert fast.guard_settings().poll == 0.75


def _snap(**over: object) -> ContextSnapshot:
    return ContextSnapshot.from_wire(_wire(**over))


def _wire(**over: object) -> dict:
    base = {
        "state_since": 0.0,
        "grace_period_seconds": 60,
        "name": "gpu",
        "kind": "brev",
        "state": "running",
        "message": "",
        "stoppable": True,
        "always_on": False,
        "leases": [],
        "uptime_seconds": 10,
        "cost": None,
        "inactive_seconds": 125.0,
        "agent": {
            "installed": True,
            "guard_running": True,
            "idle_timeout_seconds": 1800.0,
            "activity": [],
        },
    }
    return {**base, **over}


def test_status_notes_say_what_the_agent_reports():
    assert _agent_note(_snap()) == "inactive for 2 min (the machine stops itself at 30 min)"
    assert _agent_note(_snap(inactive_seconds=7.9)).startswith("inactive for 7 s")
    busy = _snap(agent={**_wire()["agent"], "activity": ["connection to port 8888"]})
    assert _agent_note(busy) == "in use on the machine: connection to port 8888"
    lease = {"id": "l1", "context": "gpu", "holder": {"kind": "pid", "pid": 1}}
    held = _snap(leases=[{**lease, "holder_text": "pid 1", "purpose": "", "acquired_at": 0.0}])
    assert _agent_note(held) == ""  # nothing said
    broken = _snap(agent={"installed": False, "error": "python3 is not installed there"})
    assert "no idle guard on the machine: python3" in str(_agent_note(broken))
    assert _agent_note(_snap(state="stopped")) == ""
    assert "inactive for 2 min" in _row(_snap())["note"]


def _ed25519(paths: Paths) -> str:
    import subprocess

    paths.config_dir.mkdir(parents=True, exist_ok=True)
    key = paths.config_dir / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return str(key)
