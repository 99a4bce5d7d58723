"""The files stage of ``nvwb open`` on a remote context: first contact through the sync engine.

What ``nvwb open`` waits for between the image and the container on a remote context: the sync
session starts and its first full cycle compares both sides against the agreed state and carries
every change across (``workbench.container.remote_files.start_sync``). Measured over an OpenSSH
server on loopback, the paramiko connection already up (as it is in the service), the agent
already installed (as the service does once per context):

* cold: a project of 1,000 files (``--files``; mixed sizes, about 30 MB) into an empty remote
  folder, no agreed state;
* warm: the same again with nothing changed (a new session: agreed state loaded, both trees
  scanned, nothing sent), as every later ``open`` is.

The one-time tar copy this replaced measured, on this machine, for the same tree: cold 1.13 s,
warm 1.24 s (every open sent every file again), and the sync session that followed then spent
2.3 s hashing both sides in the background.

Run: ``.venv/bin/python benchmarks/open_files.py [--files N] [--rounds N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.sync_bench import make_tree  # noqa: E402
from tests.integration.test_sync_fixtures import connect  # noqa: E402
from tests.support.sshd import SshServer  # noqa: E402
from workbench.agent import install_agent  # noqa: E402
from workbench.container.remote_files import start_sync  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wb-open-bench-"))
    figures: dict[str, object] = {"files": args.files}
    try:
        with SshServer() as server:
            connection = connect(server, work / "known_hosts")
            wbdir = str(work / "wbdir")
            install_agent(connection, wbdir)
            local = work / "laptop"
            local.mkdir()
            figures["bytes"] = make_tree(local, args.files, 20 << 20)
            cold: list[float] = []
            warm: list[float] = []
            for i in range(args.rounds):
                remote, state = str(work / f"remote-{i}"), work / f"state-{i}"
                for runs in (cold, warm):
                    started = time.perf_counter()
                    first = start_sync(connection, local, remote, state, workbench_dir=wbdir)
                    runs.append(time.perf_counter() - started)
                    first.session.stop()
            connection.close()
            figures.update(
                cold_s=round(statistics.median(cold), 3),
                warm_s=round(statistics.median(warm), 3),
                cold_runs=[round(x, 3) for x in cold],
                warm_runs=[round(x, 3) for x in warm],
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>10}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
