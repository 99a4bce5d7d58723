"""The wording of uptime, cost, holders and inactivity (Qt-free helpers the views share), and that
``nvwb status`` says the same words as the app's contexts table (``workbench.presentation``)."""

from __future__ import annotations

from typing import Any

from ui import format as fmt
from ui.models.contexts_model import ACTIVITY, COST, HOLDERS, ContextRow
from workbench.cli.commands.service import _row
from workbench.registry import Context
from workbench.service.messages import ContextSnapshot, LeaseInfo


def snapshot(**fields: Any) -> ContextSnapshot:
    """A running brev context's snapshot as the service sends it, with ``fields`` changed."""
    wire: dict[str, Any] = {
        "name": "gpu",
        "kind": "brev",
        "state": "running",
        "message": "",
        "state_since": 0.0,
        "stoppable": True,
        "always_on": False,
        "leases": [],
        "grace_period_seconds": 60,
        **fields,
    }
    return ContextSnapshot.from_wire(wire)


def lease(purpose: str, holder_text: str) -> LeaseInfo:
    kind, _, who = holder_text.partition(" ")
    holder = {"kind": "pid", "pid": int(who)} if kind == "pid" else {"kind": "connection"}
    return LeaseInfo.from_wire(
        {
            "id": holder_text,
            "context": "gpu",
            "holder": holder if kind == "pid" else {**holder, "connection": who},
            "holder_text": holder_text,
            "purpose": purpose,
            "acquired_at": 0.0,
        }
    )


def test_durations_read_naturally():
    assert fmt.duration(None) == ""
    assert fmt.duration(42) == "42 s"
    assert fmt.duration(12 * 60 + 5) == "12 min"
    assert fmt.duration(3 * 3600 + 5 * 60) == "3 h 05 min"
    assert fmt.duration(2 * 86400 + 4 * 3600) == "2 d 4 h"


def test_uptime_and_cost():
    assert fmt.uptime_and_cost(snapshot(uptime_seconds=None)) == ""
    assert fmt.uptime_and_cost(snapshot(uptime_seconds=3900, cost=2.1667)) == "1 h 05 min · $2.17"
    assert fmt.uptime_and_cost(snapshot(uptime_seconds=90, cost=None)) == "1 min"


def test_holders_prefer_purposes_and_do_not_repeat():
    leases = [
        lease("project window: demo", "client ab12"),
        lease("project window: demo", "client cd34"),
        lease("", "pid 4242"),
    ]
    assert fmt.holders(leases) == "project window: demo, pid 4242"


def test_inactivity_when_known_else_the_grace_countdown():
    assert fmt.inactivity(snapshot(inactive_seconds=7 * 60 + 10)) == "inactive for 7 min"
    assert fmt.inactivity(snapshot(grace_remaining_seconds=41.2)) == (
        "stopping in 42 s unless reopened"
    )
    assert fmt.inactivity(snapshot(state="running")) == ""


def test_gpu_summary_is_empty_until_probed():
    assert fmt.gpu_summary([]) == ""


def test_nvwb_status_and_the_contexts_table_say_the_same_words():
    """One snapshot, read by ``nvwb status`` and by the app's table: the same words for the
    uptime, the cost, who holds it and the note (they used to differ: ``1h05m`` and ``1 h 05
    min``, ``2.17`` and ``$2.17``, ``stopping in 42s`` and ``42 s``, a window's client id)."""
    snap = snapshot(
        uptime_seconds=3900,
        cost=2.1667,
        grace_remaining_seconds=41.2,
        stoppable=False,
        leases=[lease("project window: demo", "client ab12").to_wire()],
    )
    row = _row(snap)
    cell = ContextRow(Context(name="gpu", kind="brev", brev_instance_name="gpu-1"), snap).cell
    assert f"{row['uptime']} · {row['cost_text']}" == cell(COST) == "1 h 05 min · $2.17"
    assert ", ".join(row["holders"]) == cell(HOLDERS) == "project window: demo"
    assert row["note"] == cell(ACTIVITY)
    assert "stopping in 42 s unless reopened" in row["note"]
    assert "cannot stop: delete it when done" in row["note"]
