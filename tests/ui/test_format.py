"""The wording of uptime, cost, holders and inactivity (Qt-free helpers the views share)."""

from __future__ import annotations

from ui import format as fmt


def test_durations_read_naturally():
    assert fmt.duration(None) == ""
    assert fmt.duration(42) == "42 s"
    assert fmt.duration(12 * 60 + 5) == "12 min"
    assert fmt.duration(3 * 3600 + 5 * 60) == "3 h 05 min"
    assert fmt.duration(2 * 86400 + 4 * 3600) == "2 d 4 h"


def test_uptime_and_cost():
    assert fmt.uptime_and_cost({"uptime_seconds": None}) == ""
    assert fmt.uptime_and_cost({"uptime_seconds": 3900, "cost": 2.1667}) == "1 h 05 min · $2.17"
    assert fmt.uptime_and_cost({"uptime_seconds": 90, "cost": None}) == "1 min"


def test_holders_prefer_purposes_and_do_not_repeat():
    leases = [
        {"purpose": "project window: demo", "holder_text": "client ab12"},
        {"purpose": "project window: demo", "holder_text": "client cd34"},
        {"purpose": "", "holder_text": "pid 4242"},
    ]
    assert fmt.holders(leases) == "project window: demo, pid 4242"


def test_inactivity_when_known_else_the_grace_countdown():
    assert fmt.inactivity({"inactive_seconds": 7 * 60 + 10}) == "inactive for 7 min"
    assert fmt.inactivity({"grace_remaining_seconds": 41.2}) == "stopping in 42 s unless reopened"
    assert fmt.inactivity({"state": "running"}) == ""


def test_gpu_summary_is_empty_until_probed():
    assert fmt.gpu_summary([]) == ""
