"""A soak of randomized acquire / release / holder-kill sequences against the stand-in brev.

The service's manager runs in-process over three fake Brev instances (real sshd processes) with
short grace periods. Each step picks a context and does one of: acquire for a connection,
acquire for a fresh ``sleep`` process, release a random lease, SIGKILL a random holder process,
drop a connection. Afterwards every lease is released and the timers are left to expire.

Checks (issue 4's goals):
- no stop is ever committed while a lease is held (every stop records its lease count: all 0);
- once timers expire, no instance is left running without a lease (brev says STOPPED).
Run: ``.venv/bin/python benchmarks/lease_soak.py [--steps 200] [--seed 1] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.config_env import make_wb_env
from tests.support.fake_brev import FakeBrev
from workbench.paths import Paths
from workbench.registry import Context, Registry
from workbench.service.leases import Holder
from workbench.service.machine import Timing
from workbench.service.manager import Manager

NAMES = ("soak-a", "soak-b", "soak-c")


def soak(steps: int, seed: int, root: Path) -> dict[str, object]:
    rng = random.Random(seed)
    runtime = Path(tempfile.mkdtemp(prefix="wbrt-", dir="/tmp"))
    brev = FakeBrev(root / "brev")
    env = brev.env(make_wb_env(root / "user", runtime))
    paths = Paths.from_env(env)
    with Registry.locked(paths) as registry:
        for i, name in enumerate(NAMES):
            brev.create(f"{name}-1", boot_delay=0.1, stop_delay=0.05)
            registry.create(
                Context(
                    name=name, kind="brev", brev_instance_name=f"{name}-1", grace_period_seconds=i
                )
            )  # 0, 1 and 2 s
    timing = Timing(poll_interval=0.1, start_timeout=60, stop_timeout=60, ssh_timeout=30)
    manager = Manager(paths, env, timing=timing, pid_check_interval=0.1)
    holders: list[subprocess.Popen[bytes]] = []
    counts = {"acquire": 0, "acquire_pid": 0, "release": 0, "kill": 0, "drop": 0}
    started = time.monotonic()
    try:
        for step in range(steps):
            name = rng.choice(NAMES)
            op = rng.choices(list(counts), weights=[3, 1, 6, 1, 2])[0]
            leases = manager.leases()
            if op == "acquire":
                manager.acquire(name, Holder.for_connection(f"c{rng.randrange(4)}"), "soak")
            elif op == "acquire_pid":
                proc = subprocess.Popen(["sleep", "600"])
                holders.append(proc)
                manager.acquire(name, Holder.for_pid(proc.pid), "soak")
            elif op == "release" and leases:
                manager.release(rng.choice(leases).id)
            elif op == "kill":
                alive = [p for p in holders if p.poll() is None]
                if alive:
                    victim = rng.choice(alive)
                    victim.kill()
                    victim.wait()
            elif op == "drop":
                manager.drop_connection(f"c{rng.randrange(4)}")
            counts[op] += 1
            time.sleep(rng.choice([0, 0.01, 0.05, 0.2, 0.5]))
            if step % 50 == 49:
                print(f"  {step + 1} steps, {len(manager.leases())} leases", file=sys.stderr)
        for proc in holders:
            proc.kill()
            proc.wait()
        manager.release_where(lambda lease: True)
        deadline = time.monotonic() + 60
        while not manager.idle() and time.monotonic() < deadline:
            time.sleep(0.2)
        left_running = [n for n in NAMES if brev.status(f"{n}-1") != "STOPPED"]
        committed = [c for m in manager.machines() for _, c in m.stops_committed]
        return {
            "steps": steps,
            "seed": seed,
            "operations": counts,
            "seconds": round(time.monotonic() - started, 1),
            "stops": len(committed),
            "starts": sum(brev.instance(f"{n}-1")["starts"] for n in NAMES),
            "stops_with_a_lease_held": sum(1 for c in committed if c),
            "left_running_without_lease": left_running,
            "goal_met": not left_running and not any(committed),
        }
    finally:
        for proc in holders:
            proc.kill()
        manager.close()
        brev.close()
        shutil.rmtree(runtime, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wb-soak-") as tmp:
        result = soak(args.steps, args.seed, Path(tmp))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['steps']} steps in {result['seconds']} s: {result['starts']} starts, "
            f"{result['stops']} stops; stops with a lease held: "
            f"{result['stops_with_a_lease_held']}; left running without a lease: "
            f"{result['left_running_without_lease'] or 'none'} "
            f"({'goal met' if result['goal_met'] else 'GOAL MISSED'})"
        )
    return 0 if result["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
