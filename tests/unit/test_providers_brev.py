"""The brev provider against the stand-in ``brev`` CLI, whose instances are real sshd processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_brev import FakeBrev
from tests.support.sshd import sshd_available
from workbench.errors import CommandFailed, ContextError
from workbench.kinds import Provider, provider_for, wait_for_ssh_banner
from workbench.registry import Context

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen"),
]


@pytest.fixture
def brev(tmp_path: Path) -> Iterator[FakeBrev]:
    fake = FakeBrev(tmp_path / "brev")
    yield fake
    fake.close()


def _provider(brev: FakeBrev, wb_env: dict[str, str], name: str = "gpu-1") -> Provider:
    ctx = Context(name="b", kind="brev", brev_instance_name=name)
    return provider_for(ctx, brev.env(wb_env))


def _wait(provider: Provider, status: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (seen := provider.status().status) != status:
        assert time.monotonic() < deadline, f"still {seen}, wanted {status}"
        time.sleep(0.05)


def test_start_then_ssh_then_stop(brev: FakeBrev, wb_env: dict[str, str]) -> None:
    brev.create("gpu-1", boot_delay=1.0, hourly_price=1.25)
    provider = _provider(brev, wb_env)
    assert provider.status().status == "stopped"
    provider.start()
    assert provider.status().status == "starting"
    _wait(provider, "running")
    endpoint = provider.ssh_endpoint()
    assert endpoint is not None
    assert endpoint.hostname == "127.0.0.1"
    assert endpoint.port == brev.instance("gpu-1")["port"]
    assert endpoint.key_path and Path(endpoint.key_path).exists()
    wait_for_ssh_banner(endpoint, 5)
    assert provider.hourly_rate() == 1.25
    provider.stop()
    _wait(provider, "stopped")
    assert not brev.sshd_alive("gpu-1")


def test_unknown_instance_is_notfound(brev: FakeBrev, wb_env: dict[str, str]) -> None:
    brev.create("gpu-1")
    state = _provider(brev, wb_env, "gpu-9").status()
    assert state.status == "notfound"
    assert "gpu-9" in state.message


def test_terminate_only_is_flagged_and_stop_refused(brev: FakeBrev, wb_env: dict[str, str]) -> None:
    brev.create("gpu-1", stoppable=False)
    provider = _provider(brev, wb_env)
    state = provider.status()
    assert not state.stoppable and not provider.can_stop
    with pytest.raises(ContextError, match="cannot be stopped, only deleted"):
        provider.stop()


def test_failed_stop_carries_brevs_message(brev: FakeBrev, wb_env: dict[str, str]) -> None:
    brev.create("gpu-1", status="RUNNING", fail_stop="backend unavailable (503)")
    with pytest.raises(CommandFailed, match=r"backend unavailable \(503\)"):
        _provider(brev, wb_env).stop()
    assert brev.sshd_alive("gpu-1")


def test_missing_brev_binary(wb_env: dict[str, str]) -> None:
    env = dict(wb_env, PATH="/nonexistent")
    provider = provider_for(Context(name="b", kind="brev", brev_instance_name="x"), env)
    with pytest.raises(ContextError, match="'brev' command was not found") as info:
        provider.status()
    assert info.value.hint and "brev login" in info.value.hint


def test_logged_out(brev: FakeBrev, wb_env: dict[str, str]) -> None:
    brev.set_account(logged_out=True)
    with pytest.raises(ContextError, match="not logged in") as info:
        _provider(brev, wb_env).status()
    assert info.value.hint == "run 'brev login', then try again"


def test_unexpected_ls_output(brev: FakeBrev, wb_env: dict[str, str]) -> None:
    brev.set_account(garbage_ls=True)
    with pytest.raises(ContextError, match="printed something unexpected"):
        _provider(brev, wb_env).status()


def test_brev_failure_status(brev: FakeBrev, wb_env: dict[str, str]) -> None:
    brev.create("gpu-1", boot_delay=0.05, boot_fails=True)
    provider = _provider(brev, wb_env)
    provider.start()
    _wait(provider, "failed")
    assert "FAILURE" in provider.status().message
