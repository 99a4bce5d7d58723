"""The cost ledger on its own: intervals, rates, sums by day and context, and a restart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from workbench.service.ledger import CostLedger, month_start, next_midnight


def test_an_interval_with_its_rate(tmp_path: Path) -> None:
    ledger = CostLedger(tmp_path / "ledger.json")
    assert ledger.begin("gpu", 1000.0) == 1000.0
    ledger.touch("gpu", 3.6, 1500.0)  # the rate learned: it applies to the whole interval
    ledger.end("gpu", 2000.0)
    (share,) = ledger.shares(0, 5000, "context")
    assert (share.key, share.seconds, share.cost) == ("gpu", 1000.0, pytest.approx(1.0))
    assert ledger.spent(0, 5000) == pytest.approx(1.0)
    assert ledger.spent(1500, 5000) == pytest.approx(0.5)  # only the part since


def test_a_rate_change_splits_the_interval(tmp_path: Path) -> None:
    ledger = CostLedger(tmp_path / "ledger.json")
    ledger.begin("gpu", 0.0)
    ledger.touch("gpu", 3.6, 10.0)
    ledger.touch("gpu", 7.2, 1000.0)
    ledger.end("gpu", 2000.0)
    rates = [(i.start, i.end, i.rate) for i in ledger.intervals()]
    assert rates == [(0.0, 1000.0, 3.6), (1000.0, 2000.0, 7.2)]
    assert ledger.spent(0, 3000) == pytest.approx(1.0 + 2.0)


def test_unpriced_time_is_counted_apart(tmp_path: Path) -> None:
    ledger = CostLedger(tmp_path / "ledger.json")
    ledger.begin("mystery", 0.0)
    ledger.end("mystery", 600.0)
    (share,) = ledger.shares(0, 1000, "context")
    assert (share.cost, share.unpriced_seconds) == (0.0, 600.0)


def test_days_split_at_local_midnight(tmp_path: Path) -> None:
    ledger = CostLedger(tmp_path / "ledger.json")
    midnight = next_midnight(time.time())
    ledger.begin("gpu", midnight - 1800)
    ledger.touch("gpu", 3.6, midnight - 1700)
    ledger.end("gpu", midnight + 3600)
    days = ledger.shares(0, midnight + 10000, "day")
    assert [d.seconds for d in days] == [1800.0, 3600.0]
    assert [d.cost for d in days] == [pytest.approx(1.8), pytest.approx(3.6)]
    assert days[1].key == time.strftime("%Y-%m-%d", time.localtime(midnight + 1))


def test_a_restart_continues_an_interval_the_machine_still_runs(tmp_path: Path) -> None:
    file = tmp_path / "ledger.json"
    first = CostLedger(file)
    first.begin("gpu", 100.0)
    first.touch("gpu", 3.6, 150.0)
    first.save()
    # The service is killed here; a new one reads the file and finds the machine running.
    second = CostLedger(file)
    assert second.begin("gpu", 400.0) == 100.0
    second.end("gpu", 1100.0)
    assert second.spent(0, 2000) == pytest.approx(1.0)


def test_a_restart_that_finds_the_machine_stopped_ends_it_when_last_seen(tmp_path: Path) -> None:
    file = tmp_path / "ledger.json"
    first = CostLedger(file)
    first.begin("gpu", 100.0)
    first.touch("gpu", 3.6, 600.0)
    first.save()
    second = CostLedger(file)
    second.end("gpu", 5000.0)  # never seen running by this service
    (interval,) = second.intervals()
    assert interval.end == 600.0
    assert second.spent(0, 9000) == pytest.approx(0.5)
    # And on disk, for the next one.
    assert json.loads(file.read_text())["intervals"][0]["end"] == 600.0


def test_a_deleted_contexts_interval_is_ended(tmp_path: Path) -> None:
    ledger = CostLedger(tmp_path / "ledger.json")
    ledger.begin("gone", 0.0)
    ledger.begin("kept", 0.0)
    ledger.close_unknown({"kept"}, 50.0)
    ends = {i.context: i.end for i in ledger.intervals()}
    assert ends == {"gone": 50.0, "kept": None}


def test_an_unreadable_ledger_is_kept_aside_not_lost(tmp_path: Path) -> None:
    file = tmp_path / "ledger.json"
    file.write_text('{"version": 1, "intervals": [')  # cut short
    ledger = CostLedger(file)
    assert ledger.intervals() == []
    assert [p.name.startswith("ledger.json.unreadable-") for p in tmp_path.iterdir()] == [True]


def test_notifications_are_remembered_per_month(tmp_path: Path) -> None:
    file = tmp_path / "ledger.json"
    ledger = CostLedger(file)
    ledger.mark_notified("2026-05", 80)
    assert CostLedger(file).notified("2026-05") == [80]
    assert CostLedger(file).notified("2026-06") == []
    assert month_start(time.time()) <= time.time()
