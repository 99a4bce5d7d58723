"""Two-way sync beside ``rsync -a`` over the same OpenSSH server on loopback, in the same run.

Figures (issue 5):

* first sync of a tree of mixed sizes (5,000 files, 200 MB; ``--quick``: 1,000 files, 40 MB)
  into an empty remote folder: Workbench's engine (a fresh engine, agent and OpenSSH master, the
  paramiko connection already up as it is in the service) against ``rsync -a`` (which pays its
  own SSH login); goal at most 1.0x;
* a re-sync with nothing changed: a fresh engine again (agreed state loaded from disk, both
  trees scanned in full, the agent started anew) against ``rsync -a`` again; goal at most 1.0x;
* one small edit until it is on the other side, laptop to remote and remote to laptop, with a
  live ``SyncSession`` (both watchers running) on the same tree: p50 and p95 over 100 edits
  each (``--quick``: 30); goal p95 under 300 ms.

Both tools write the same bytes to the same disk, and on a shared virtual disk the time to write
5,000 new files swings by 2x from one minute to the next. So each round writes into new folders
(nothing is deleted until the end), dirty pages are flushed (``sync``) before every timed run,
rounds alternate which tool goes first, and each ratio is the median of the rounds' ratios over
``--rounds`` rounds (default 5; ``--quick``: 1). Beside wall time, each run's
busy CPU time (the whole machine's, from /proc/stat: both ends of the link) is reported, which
the hypervisor's steal does not inflate. Every round's figures are in the JSON too.

Run: ``.venv/bin/python benchmarks/sync_bench.py [--quick] [--json]``; with ``--json`` the last
line is one JSON object (``*_ratio``: ours over rsync's time; ``*_p95_ms``: latencies).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.test_sync_fixtures import connect  # noqa: E402
from tests.support.sshd import SshServer  # noqa: E402
from workbench.agent import RemoteAgent, install_agent  # noqa: E402
from workbench.sync.engine import SyncEngine  # noqa: E402
from workbench.sync.local import LocalTree  # noqa: E402
from workbench.sync.remote import RemoteTree  # noqa: E402
from workbench.sync.session import SessionOptions, SyncSession  # noqa: E402
from workbench.sync.state import StateStore  # noqa: E402
from workbench.sync.transport import BulkRunner, ParamikoRunner  # noqa: E402


def make_tree(root: Path, files: int, total: int, seed: int = 5) -> int:
    """Mixed sizes as a project has them: mostly small sources, some data, a few large files."""
    rng = random.Random(seed)
    large = max(2, files // 1000)
    medium = files // 20
    small = files - large - medium
    sizes = [rng.randint(200, 16_000) for _ in range(small)]
    sizes += [rng.randint(100_000, 1_000_000) for _ in range(medium)]
    rest = max(total - sum(sizes), large)
    sizes += [rest // large] * large
    written = 0
    for i, size in enumerate(sizes):
        path = root / f"d{i % 50:02d}" / f"s{i % 7}" / f"f{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        written += size
    return written


def busy_cpu_seconds() -> float:
    """CPU time the whole machine spent busy (both ends of the loopback link, every process),
    from /proc/stat: unlike wall time, it does not grow when the hypervisor steals the CPU."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def measured(run: Callable[[], float]) -> tuple[float, float]:
    """Wall seconds (as ``run`` reports them) and busy CPU seconds of one timed run."""
    os.sync()
    before = busy_cpu_seconds()
    seconds = run()
    return seconds, busy_cpu_seconds() - before


def rsync(server: SshServer, known_hosts: Path, src: Path, dst: Path) -> float:
    ssh = (
        f"ssh -p {server.port} -i {server.client_key_path} -o IdentitiesOnly=yes "
        f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes -o BatchMode=yes "
        "-F /dev/null"
    )
    started = time.perf_counter()
    subprocess.run(
        ["rsync", "-a", "-e", ssh, f"{src}/", f"{server.user}@{server.host}:{dst}/"],
        check=True,
    )
    return time.perf_counter() - started


def timed_cycle(connection, agent: RemoteAgent, local: Path, remote: str, state: Path) -> float:
    """One full cycle as a new session runs it (the agent installed, as the service does once
    per context when a project opens)."""
    started = time.perf_counter()
    runner = BulkRunner(connection)
    tree = RemoteTree(
        ParamikoRunner(connection), agent.script_path, remote, agent.python, bulk=runner
    )
    engine = SyncEngine(LocalTree(local), tree, StateStore(state))
    report = engine.cycle(full=True)
    seconds = time.perf_counter() - started
    assert report.halted is None and not report.problems, report
    tree.close()
    runner.close()
    return seconds


def edit_latencies(session: SyncSession, src: Path, dst: Path, count: int) -> list[float]:
    out: list[float] = []
    for i in range(count):
        name = f"d{i % 50:02d}/edit-{i % 10}.txt"
        data = f"edit {i} {time.time_ns()}"
        started = time.perf_counter()
        (src / name).write_text(data)
        deadline = started + 10
        while time.perf_counter() < deadline:
            try:
                if (dst / name).read_text() == data:
                    break
            except OSError:
                pass
            time.sleep(0.001)
        else:
            raise RuntimeError(f"edit {i} did not arrive: {session.status()}")
        out.append(time.perf_counter() - started)
        time.sleep(0.02)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def first_and_again(
    server: SshServer,
    connection,
    agent: RemoteAgent,
    local: Path,
    work: Path,
    tag: str,
    ours_first: bool,
) -> dict[str, float]:
    """One round: a first sync into a fresh remote folder and a re-sync, by each tool."""
    pins = work / "known_hosts"
    target = work / f"rsync-remote-{tag}"
    remote = str(work / f"remote-{tag}")
    state = work / f"st-{tag}"

    def ours() -> list[tuple[float, float]]:
        return [
            measured(lambda: timed_cycle(connection, agent, local, remote, state)) for _ in range(2)
        ]

    def theirs() -> list[tuple[float, float]]:
        return [measured(lambda: rsync(server, pins, local, target)) for _ in range(2)]

    if ours_first:
        mine, other = ours(), theirs()
    else:
        other, mine = theirs(), ours()
    # Nothing is deleted until the end: freeing 400 MB of small files keeps this kind of virtual
    # disk busy for seconds after ``sync`` returns (measured: whichever tool ran next took up to
    # twice as long).
    return {
        "rsync_first_s": other[0][0],
        "first_sync_s": mine[0][0],
        "rsync_resync_s": other[1][0],
        "resync_s": mine[1][0],
        "rsync_first_cpu_s": other[0][1],
        "first_sync_cpu_s": mine[0][1],
        "rsync_resync_cpu_s": other[1][1],
        "resync_cpu_s": mine[1][1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller tree, fewer edits")
    parser.add_argument("--json", action="store_true", help="figures as JSON on the last line")
    parser.add_argument("--rounds", type=int, help="rounds of first sync + re-sync (default 3)")
    args = parser.parse_args()
    files, total, edits = (1000, 40 << 20, 30) if args.quick else (5000, 200 << 20, 100)
    rounds = args.rounds or (1 if args.quick else 5)
    work = Path(tempfile.mkdtemp(prefix="wb-sync-bench-"))
    figures: dict[str, object] = {}
    try:
        with SshServer() as server:
            pins = work / "known_hosts"
            connection = connect(server, pins)
            agent, _ = install_agent(connection, str(work / "wbdir"))
            local = work / "laptop"
            local.mkdir()
            size = make_tree(local, files, total)
            figures.update(files=files, bytes=size, rounds=rounds)
            runs = [
                first_and_again(server, connection, agent, local, work, str(i), i % 2 == 1)
                for i in range(rounds)
            ]
            median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            figures.update({key: round(value, 3) for key, value in median.items()})

            def ratio(ours: str, theirs: str) -> float:
                # Paired: each round's two runs met the same disk state, so the median of the
                # rounds' ratios is steadier than a ratio of medians.
                return round(statistics.median(r[ours] / r[theirs] for r in runs), 3)

            figures.update(
                first_sync_ratio=ratio("first_sync_s", "rsync_first_s"),
                resync_ratio=ratio("resync_s", "rsync_resync_s"),
                first_sync_cpu_ratio=ratio("first_sync_cpu_s", "rsync_first_cpu_s"),
                resync_cpu_ratio=ratio("resync_cpu_s", "rsync_resync_cpu_s"),
                per_round=[{key: round(value, 3) for key, value in r.items()} for r in runs],
            )
            remote = str(work / "remote")
            timed_cycle(connection, agent, local, remote, work / "st")
            session = SyncSession(
                local,
                remote,
                connection,
                work / "st",
                agent_path=agent.script_path,
                options=SessionOptions(),
            )
            session.start()
            session.sync_now(300)
            figures["transport"] = session.status()["transport"]
            l2r = edit_latencies(session, local, Path(remote), edits)
            r2l = edit_latencies(session, Path(remote), local, edits)
            session.stop()
            connection.close()
            for label, values in (("edit_l2r", l2r), ("edit_r2l", r2l)):
                figures[f"{label}_p50_ms"] = round(statistics.median(values) * 1000, 1)
                figures[f"{label}_p95_ms"] = round(pct(values, 0.95) * 1000, 1)
            figures["edits"] = edits
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not args.json:
        for key, value in figures.items():
            print(f"{key:>20}: {value}")
    print(json.dumps(figures) if args.json else "", end="\n" if args.json else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
