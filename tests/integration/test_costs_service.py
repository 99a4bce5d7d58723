"""What machines cost, kept by the real service: the ledger across a SIGKILL, and the budget.

Rates here are high (3600 $/h: a dollar a second) so that a few seconds of a stand-in instance
cost enough to cross a budget.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.integration.test_service_restart import _kill_service
from tests.support.cli import nvwb
from tests.support.fake_brev import FakeBrev
from tests.support.service_env import FAST, add_brev_context, service_env, wait_for
from tests.support.sshd import sshd_available
from tests.support.workbench_service import holder
from workbench.paths import Paths
from workbench.service.client import ServiceClient
from workbench.service.ledger import LEDGER_NAME
from workbench.service.messages import Event, NoticeEvent

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen"),
    pytest.mark.timeout(120),
]

A_DOLLAR_A_SECOND = 3600.0


@pytest.fixture
def env(wb_env: dict[str, str], brev: FakeBrev) -> Iterator[dict[str, str]]:
    yield from service_env(
        {
            **brev.env(wb_env),
            **FAST,
            "NVWB_SERVICE_IDLE_EXIT": "30",
            "NVWB_SERVICE_RECONNECT_WINDOW": "5",
            "NVWB_SERVICE_LEDGER_INTERVAL": "0.2",
        }
    )


def _ledger(paths: Paths) -> list[dict]:
    return json.loads((paths.state_dir / LEDGER_NAME).read_text())["intervals"]


def _cost(client: ServiceClient, name: str = "gpu") -> float:
    report = client.costs(by="context")
    return next((row.cost for row in report.rows if row.key == name), 0.0)


def test_a_running_contexts_cost_survives_a_killed_service(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = add_brev_context(env, hourly_rate=A_DOLLAR_A_SECOND, grace_period_seconds=600)
    with holder() as shell:
        held = {**env, "NVWB_HOLDER_PID": str(shell.pid)}
        assert nvwb(held, "activate", "gpu").code == 0
        wait_for(lambda: bool(_ledger(paths)) and _ledger(paths)[0]["rate"] is not None, 10,
                 "the interval and its rate on disk")  # fmt: skip
        (interval,) = _ledger(paths)
        started = interval["start"]
        time.sleep(1.5)
        _kill_service(paths, env)
        killed_at = time.time()
        time.sleep(1.0)
        # A new service: the instance still runs, so its interval goes on from its first start.
        with ServiceClient.connect(paths, env) as client:
            wait_for(lambda: client.status(["gpu"]).contexts[0].state == "running", 20, "running")
            (snap,) = client.status(["gpu"]).contexts
            assert snap.uptime_seconds is not None
            assert snap.uptime_seconds >= time.time() - started - 1
            cost = _cost(client)
            assert cost >= killed_at - started  # not counted again from zero
            assert [i["start"] for i in _ledger(paths)] == [started]
        shell.kill()


def test_a_machine_stopped_while_no_service_ran_ends_when_last_seen(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = add_brev_context(env, hourly_rate=A_DOLLAR_A_SECOND, grace_period_seconds=600)
    with holder() as shell:
        held = {**env, "NVWB_HOLDER_PID": str(shell.pid)}
        assert nvwb(held, "activate", "gpu").code == 0
        time.sleep(1.0)
        _kill_service(paths, env)
        shell.kill()
    seen = _ledger(paths)[0]["seen"]
    # Someone stops the instance while no service runs.
    subprocess.run(["brev", "stop", "gpu-1"], env=env, check=True, capture_output=True)
    brev.wait_status("gpu-1", "STOPPED")
    time.sleep(1.0)
    with ServiceClient.connect(paths, env) as client:
        wait_for(lambda: client.status(["gpu"]).contexts[0].state == "stopped", 20, "stopped")
        wait_for(lambda: _ledger(paths)[0]["end"] is not None, 10, "the interval ended")
        assert _ledger(paths)[0]["end"] == seen
        first = _cost(client)
        time.sleep(0.5)
        assert _cost(client) == first  # a stopped machine costs nothing more


def test_the_budget_notifies_at_80_and_100_and_stops_what_nothing_holds(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    brev.create("held-1", boot_delay=0.2)
    paths = add_brev_context(env, hourly_rate=A_DOLLAR_A_SECOND, grace_period_seconds=600)
    add_brev_context(env, "held", hourly_rate=1.0, grace_period_seconds=600)
    budget = nvwb(env, "update", "budget", "--monthly-usd", "4", "--stop-idle-over-budget")
    assert budget.code == 0, budget.err
    events: list[Event] = []
    with holder() as shell, ServiceClient.connect(paths, env) as client:
        client.subscribe(events.append)
        held = {**env, "NVWB_HOLDER_PID": str(shell.pid)}
        assert nvwb(held, "activate", "held").code == 0
        client.start("gpu")  # running, nothing holds it, a long grace period
        notices = lambda: [e for e in events if isinstance(e, NoticeEvent)]  # noqa: E731
        wait_for(lambda: any("100 %" in n.title for n in notices()), 30, "the 100 % notice")
        titles = [n.title for n in notices()]
        assert titles.index("Budget 80 % reached") < titles.index("Budget 100 % reached")
        wait_for(lambda: brev.status("gpu-1") == "STOPPED", 20, "the idle context stopped")
        assert any(n.title == "gpu stopped: over budget" for n in notices())
        assert brev.status("held-1") == "RUNNING"  # held by a lease: never stopped for money
        status = nvwb(env, "status")
        assert "Budget:" in status.out and "spent" in status.out
        report = nvwb(env, "list", "costs", "--by", "context", "-o", "json").json()
        assert report["budget"]["level"] == 100 and report["month_spent"] >= 4
        # Told once a month, even by a new service.
        count = len(notices())
        time.sleep(1.0)
        assert len([n for n in notices() if n.title.startswith("Budget")]) == 2
        assert len(notices()) == count
        shell.kill()


def test_a_budget_without_stopping_only_notifies(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = add_brev_context(env, hourly_rate=A_DOLLAR_A_SECOND, grace_period_seconds=600)
    assert nvwb(env, "update", "budget", "--monthly-usd", "1").code == 0
    events: list[Event] = []
    with ServiceClient.connect(paths, env) as client:
        client.subscribe(events.append)
        client.start("gpu")
        wait_for(
            lambda: any(isinstance(e, NoticeEvent) and "100 %" in e.title for e in events),
            30,
            "the 100 % notice",
        )
        time.sleep(1.0)
        assert brev.status("gpu-1") == "RUNNING"
        assert brev.instance("gpu-1")["stops"] == 0


def test_list_costs_by_day_and_context(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    add_brev_context(env, hourly_rate=A_DOLLAR_A_SECOND, grace_period_seconds=600)
    with holder() as shell:
        held = {**env, "NVWB_HOLDER_PID": str(shell.pid)}
        assert nvwb(held, "activate", "gpu").code == 0
        time.sleep(1.0)
        by_day = nvwb(env, "list", "costs", "-o", "json").json()
        assert by_day["by"] == "day"
        (today,) = by_day["rows"]
        assert today["key"] == time.strftime("%Y-%m-%d") and today["cost"] >= 1.0
        assert by_day["rate_now"] == pytest.approx(A_DOLLAR_A_SECOND)
        table = nvwb(env, "list", "costs", "--by", "context")
        assert "gpu" in table.out and "Now: $3,600.00/h" in table.out
        shell.kill()
    later = nvwb(env, "list", "costs", "--since", "2999-01-01", "-o", "json").json()
    assert later["rows"] == [] and later["total"] == 0
    bad = nvwb(env, "list", "costs", "--since", "yesterday")
    assert bad.code == 2 and "--since" in bad.err


def test_an_idle_machine_that_cannot_stop_is_said_never_stopped(env, brev: FakeBrev):
    idle_env = {**env, "NVWB_SERVICE_AGENT_IDLE_TIMEOUT": "1"}
    brev.create("gpu-1", boot_delay=0.2, stoppable=False)
    paths = add_brev_context(idle_env, hourly_rate=2.0, grace_period_seconds=1)
    events: list[Event] = []
    with ServiceClient.connect(paths, idle_env) as client:
        client.subscribe(events.append)
        client.start("gpu")
        wait_for(
            lambda: any(isinstance(e, NoticeEvent) and "cannot be stopped" in e.title
                        for e in events),
            30,
            "the idle notice",
        )  # fmt: skip
        (notice,) = [e for e in events if isinstance(e, NoticeEvent)]
        assert "delete it when done" in notice.message and "$2.00/h" in notice.message
        time.sleep(1.0)
        assert brev.status("gpu-1") == "RUNNING" and brev.instance("gpu-1")["stops"] == 0
        assert brev.calls("delete") == []


def test_budget_input_is_checked(env):
    negative = nvwb(env, "update", "budget", "--monthly-usd", "-3")
    assert negative.code == 2 and "--monthly-usd" in negative.err
    nothing = nvwb(env, "update", "budget")
    assert nothing.code == 2
    alone = nvwb(env, "update", "budget", "--stop-idle-over-budget")
    assert alone.code == 2 and "--monthly-usd" in alone.err
    assert not (Paths.from_env(env).config_dir / "budget.json").exists()
    assert nvwb(env, "update", "budget", "--monthly-usd", "50").code == 0
    assert nvwb(env, "update", "budget", "--monthly-usd", "0").code == 0
    saved = json.loads((Paths.from_env(env).config_dir / "budget.json").read_text())
    assert saved == {"monthly_usd": None, "stop_idle_over_budget": False}
