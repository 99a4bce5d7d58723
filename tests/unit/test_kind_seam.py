"""A kind of context is one declaration: a kind defined in this file, registered at run time,
is usable end to end without any other module knowing of it.

``nvwb create context`` takes its fields (flags and ``--type`` come from the declaration), the
registry applies its rules (required, does not apply, defaults), ``nvwb list contexts`` shows it,
and the service's manager starts and stops it through its provider.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from contexts import builtin_kinds
from tests.support.cli import nvwb
from workbench.errors import InvalidValueError
from workbench.kinds import (
    FieldRule,
    HostKeyTrust,
    Kind,
    ProviderState,
    all_kinds,
    register,
    unregister,
)
from workbench.paths import Paths
from workbench.registry import Context, Registry
from workbench.service.leases import Holder
from workbench.service.machine import Timing
from workbench.service.manager import Manager

ROOT = Path(__file__).resolve().parents[2]


class ToyProvider:
    """A machine that is a file: ``running`` or ``stopped``, with a log of what was asked."""

    def __init__(self, context: Context, env: Mapping[str, str]) -> None:
        self.context = context
        self.file = Path(env["TOY_MACHINE"])
        self.file.parent.mkdir(parents=True, exist_ok=True)
        self.calls = self.file.with_suffix(".calls")

    @property
    def always_on(self) -> bool:
        return False

    @property
    def can_stop(self) -> bool:
        return True

    def _write(self, state: str) -> None:
        with self.calls.open("a") as log:
            log.write(f"{state} {self.context.hostname}:{self.context.ssh_port}\n")
        self.file.write_text(state)

    def status(self) -> ProviderState:
        text = self.file.read_text().strip() if self.file.exists() else "stopped"
        return ProviderState("running" if text == "running" else "stopped")

    def start(self) -> None:
        self._write("running")

    def stop(self) -> None:
        self._write("stopped")

    def ssh_endpoint(self) -> None:
        return None

    def hourly_rate(self) -> float | None:
        return None


TOY = Kind(
    name="toy",
    title="Toy machine (tests)",
    summary="a machine that is a file, for the seam test",
    fields=(FieldRule("hostname", required=True), FieldRule("ssh_port", default=2200)),
    provider=ToyProvider,
    trust=HostKeyTrust.KNOWN_HOSTS,
)


@pytest.fixture
def toy() -> Iterator[Kind]:
    all_kinds()  # the built-in kinds are there first, as in any process
    register(TOY)
    yield TOY
    unregister("toy")


def test_a_kind_declared_in_a_test_works_end_to_end(
    toy: Kind, wb_env: dict[str, str], tmp_path: Path, capsys
):
    # The CLI: --type offers it, the flags' help says which kinds take them.
    capsys.readouterr()
    assert nvwb(wb_env, "create", "context", "--help").code == 0
    shown = " ".join(capsys.readouterr().out.split())  # argparse prints help to sys.stdout
    assert "--type {local,ssh,brev,command,slurm,toy}" in shown
    assert (
        "--hostname HOSTNAME SSH host name or ~/.ssh/config alias [ssh, command, slurm, toy]"
        in shown
    )

    # The registry's rules come from the declaration: required, does not apply, defaults.
    missing = nvwb(wb_env, "create", "context", "t", "--type", "toy")
    assert missing.code == 2 and "hostname: is required for a toy context" in missing.err
    foreign = nvwb(
        wb_env, "create", "context", "t", "--type", "toy", "--hostname", "toy.example",
        "--brev-instance-name", "i",
    )  # fmt: skip
    assert foreign.code == 2
    assert "brev_instance_name: does not apply to a toy context" in foreign.err
    no_guard = nvwb(
        wb_env, "create", "context", "t", "--type", "toy", "--hostname", "toy.example",
        "--idle-gpu-busy", "50",
    )  # fmt: skip
    assert no_guard.code == 2 and "nothing stops it when idle" in no_guard.err

    created = nvwb(
        wb_env, "create", "context", "t", "--type", "toy", "--hostname", "toy.example", "-o", "json"
    )
    assert created.code == 0, created.err
    assert created.json()["kind"] == "toy" and created.json()["ssh_port"] == 2200
    # A HOSTNAME alone still means ssh: a new kind does not take over another's inference.
    assert nvwb(wb_env, "create", "context", "s", "h.example", "-o", "json").json()["kind"] == "ssh"

    # Listed like any other.
    rows = {r["name"]: r for r in nvwb(wb_env, "list", "contexts", "-o", "json").json()}
    assert rows["t"]["kind"] == "toy"
    table = nvwb(wb_env, "list", "contexts").out
    assert any(ln.split()[:3] == ["t", "toy", "toy.example:2200"] for ln in table.splitlines())

    # The service's manager starts and stops it through its provider.
    machine_file = tmp_path / "toy" / "machine"
    env = {**wb_env, "TOY_MACHINE": str(machine_file)}
    fast = Timing(poll_interval=0.05, start_timeout=5, stop_timeout=5, ssh_timeout=2)
    manager = Manager(Paths.from_env(env), env, timing=fast, pid_check_interval=0.1)
    try:
        with Registry.locked(Paths.from_env(env)) as registry:
            registry.update("t", grace_period_seconds=0)
        lease = manager.acquire("t", Holder.for_connection("seam"), "window")
        _wait_state(manager, "t", "running")
        assert machine_file.read_text() == "running"
        manager.release(lease.id)
        _wait_state(manager, "t", "stopped")
        assert machine_file.read_text() == "stopped"
        calls = machine_file.with_suffix(".calls").read_text().splitlines()
        assert calls == ["running toy.example:2200", "stopped toy.example:2200"]
    finally:
        manager.close()


def test_an_unregistered_kind_is_refused_by_name(wb_env: dict[str, str]):
    result = nvwb(wb_env, "create", "context", "t", "--type", "toy", "--hostname", "h")
    assert result.code == 2 and "invalid choice: 'toy'" in result.err
    with pytest.raises(InvalidValueError, match="'toy' is not a context kind") as caught:
        Context(name="t", kind="toy", hostname="h")
    assert caught.value.field == "kind"


_PLUGIN = """
from workbench.kinds import FieldRule, Kind, ProviderState


class Provider:
    def __init__(self, context, env):
        self.context = context
    always_on = True
    can_stop = False
    def status(self):
        return ProviderState("running")
    def start(self): pass
    def stop(self): pass
    def ssh_endpoint(self): return None
    def hourly_rate(self): return None


KIND = Kind(
    name="plugged", title="Plugged", summary="from a package of its own",
    fields=(FieldRule("hostname", required=True),), provider=Provider, always_on=True,
)
"""


def test_a_process_that_registers_nothing_finds_kinds_by_entry_point(tmp_path: Path):
    # A package of its own (not in contexts/) declaring a kind in the entry-point group.
    site = tmp_path / "site"
    site.mkdir()
    (site / "plugged_kind.py").write_text(_PLUGIN)
    info = site / "plugged_kind-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugged-kind\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[workbench.context_kinds]\nplugged = plugged_kind:KIND\n"
    )
    script = (
        "from workbench.kinds import names\n"
        "from workbench.registry import Context\n"
        "print(' '.join(names()))\n"
        "print(Context(name='p', kind='plugged', hostname='h').is_remote)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    found, remote = done.stdout.split("\n")[:2]
    # The built-in kinds come the same way (this package's own entry points), in their order.
    assert found.split() == ["local", "ssh", "brev", "command", "slurm", "plugged"]
    assert remote == "True"


def test_every_kind_module_is_an_entry_point():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    points = declared["workbench.context_kinds"]
    kinds = {kind.name: kind for kind in builtin_kinds()}
    assert points == {name: f"contexts.{name}:KIND" for name in kinds}
    assert [kind.name for kind in all_kinds() if kind.name in kinds] == [
        "local",
        "ssh",
        "brev",
        "command",
        "slurm",
    ]


def _wait_state(manager: Manager, name: str, state: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (snap := manager.machine(name).snapshot()).state != state:
        assert time.monotonic() < deadline, f"{name} is {snap.state} ({snap.message})"
        time.sleep(0.02)


def test_the_kinds_table_in_the_docs_is_up_to_date():
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen-kinds-docs"), "--check"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
