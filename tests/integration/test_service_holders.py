"""Leases bound to something that ends, and stops that cannot happen said at once.

A lease held by a process lasts as long as that process: a holder that never ends (pid 1, the
service itself, another user's process) would keep a paid machine up forever, so the service
refuses it, with a message that says which pid and why, and takes no lease. An always-on context
(``local``, an ``ssh`` host) cannot be stopped by Workbench at all: ``nvwb stop context`` says so
at once instead of waiting for a stop that never comes.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import psutil
import pytest

from tests.support.cli import nvwb
from tests.support.fake_brev import FakeBrev
from tests.support.service_env import FAST, add_brev_context, service_env
from tests.support.sshd import SshServer, sshd_available
from workbench.errors import ContextError, InvalidValueError
from workbench.paths import Paths
from workbench.registry import Context, Registry
from workbench.service.client import ServiceClient
from workbench.service.messages import LeaseInfo

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen"),
    pytest.mark.timeout(120),
]


@pytest.fixture
def env(wb_env: dict[str, str], brev: FakeBrev) -> Iterator[dict[str, str]]:
    yield from service_env({**brev.env(wb_env), **FAST})


def _leases(client: ServiceClient, name: str = "gpu") -> list[LeaseInfo]:
    (snap,) = client.status([name]).contexts
    return list(snap.leases)


def _refused(client: ServiceClient, pid: int) -> InvalidValueError:
    with pytest.raises(InvalidValueError) as caught:
        client.acquire("gpu", holder_pid=pid, purpose="activate")
    return caught.value


@pytest.mark.parametrize("pid", [1, 0, -1, -4242])
def test_a_holder_that_never_ends_is_refused(env, brev: FakeBrev, pid: int):
    brev.create("gpu-1")
    paths = add_brev_context(env, grace_period_seconds=0)
    with ServiceClient.connect(paths, env) as client:
        error = _refused(client, pid)
        assert "holder_pid" in error.field
        if pid == 1:
            assert "pid 1 never ends" in error.message
        assert _leases(client) == []
    assert brev.instance("gpu-1")["starts"] == 0  # nothing was started for it


def test_the_service_itself_cannot_hold_a_lease(env, brev: FakeBrev):
    brev.create("gpu-1")
    paths = add_brev_context(env, grace_period_seconds=0)
    with ServiceClient.connect(paths, env) as client:
        error = _refused(client, int(client.service.pid))
        assert "the Workbench service itself" in error.message
        assert _leases(client) == []


def test_a_process_of_another_user_cannot_hold_a_lease(env, brev: FakeBrev):
    brev.create("gpu-1")
    paths = add_brev_context(env, grace_period_seconds=0)
    other: subprocess.Popen[bytes] | None = None
    if os.getuid() == 0:
        # As root (CI containers) make one: a sleeper running as nobody.
        other = subprocess.Popen(["sleep", "60"], user=65534)
        pid = other.pid
    else:
        found = [p.pid for p in psutil.process_iter(["uids"]) if p.info["uids"].real != os.getuid()]
        if not [p for p in found if p > 1]:
            pytest.skip("no process of another user to name")
        pid = next(p for p in found if p > 1)
    try:
        with ServiceClient.connect(paths, env) as client:
            error = _refused(client, pid)
            assert "another user" in error.message
            assert _leases(client) == []
    finally:
        if other is not None:
            other.kill()
            other.wait()


def test_a_dead_process_cannot_hold_a_lease(env, brev: FakeBrev):
    brev.create("gpu-1")
    paths = add_brev_context(env, grace_period_seconds=0)
    gone = subprocess.Popen(["true"])
    gone.wait()
    with ServiceClient.connect(paths, env) as client:
        with pytest.raises(ContextError) as caught:
            client.acquire("gpu", holder_pid=gone.pid, purpose="activate")
        assert f"process {gone.pid} is not running" in caught.value.message
        assert _leases(client) == []


def test_activate_from_an_orphaned_shell_is_refused_with_a_hint(env, brev: FakeBrev):
    # A shell whose parent went away is re-parented to pid 1: what nvwb sees as its parent.
    brev.create("gpu-1")
    add_brev_context(env, grace_period_seconds=0)
    activated = nvwb({**env, "NVWB_HOLDER_PID": "1"}, "activate", "gpu")
    assert activated.code == InvalidValueError.exit_code, activated.err
    assert "pid 1" in activated.err and "never ends" in activated.err
    assert brev.instance("gpu-1")["starts"] == 0


def test_stop_context_on_local_says_at_once_that_it_cannot_be_stopped(env):
    started = time.monotonic()
    stopped = nvwb({**env, "NVWB_WAIT_TIMEOUT": "20"}, "stop", "context", "local")
    elapsed = time.monotonic() - started
    assert stopped.code == ContextError.exit_code
    assert "local cannot be stopped" in stopped.err and "this computer" in stopped.err
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_stop_context_on_an_ssh_host_says_at_once_that_it_cannot_be_stopped(env, sshd: SshServer):
    paths = Paths.from_env(env)
    with Registry.locked(paths) as registry:
        registry.create(
            Context(
                name="box",
                kind="ssh",
                hostname=sshd.host,
                ssh_port=sshd.port,
                ssh_username=sshd.user,
                ssh_key_path=str(sshd.client_key_path),
                accepted_host_key=sshd.host_key_fingerprint,
            )
        )
    started = time.monotonic()
    stopped = nvwb({**env, "NVWB_WAIT_TIMEOUT": "20"}, "stop", "context", "box")
    elapsed = time.monotonic() - started
    assert stopped.code == ContextError.exit_code
    assert "box cannot be stopped" in stopped.err and "always on" in stopped.err
    assert elapsed < 10, f"took {elapsed:.1f} s"
    # The same answer for a client of the service (the app's Stop button).
    with ServiceClient.connect(paths, env) as client, pytest.raises(ContextError) as caught:
        client.stop("box")
    assert "cannot be stopped" in caught.value.message
