"""The ``slurm`` kind's declaration: its fields, their checks, its flags and its defaults.

The provider itself runs against a real cluster (``tests/integration/slurm``); here, what needs no
cluster: the registry's rules for the kind, the CLI's flags and the time limit's syntax.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.cli import nvwb
from workbench import values
from workbench.errors import InvalidValueError
from workbench.kinds import kind_named
from workbench.kinds.fields import form_fields, rules_of
from workbench.registry import Context, Registry


def slurm(name: str = "hpc", **fields: Any) -> Context:
    fields.setdefault("hostname", "login.example.edu")
    fields.setdefault("partition", "gpu")
    return Context(name=name, kind="slurm", **fields)


def test_a_slurm_context_takes_the_clusters_fields() -> None:
    ctx = slurm(
        account="proj-42",
        qos="normal",
        gpus_per_node=8,
        nodes=2,
        time_limit="4:00:00",
        hourly_rate=98.32,
    )
    assert (ctx.partition, ctx.account, ctx.qos) == ("gpu", "proj-42", "normal")
    assert (ctx.gpus_per_node, ctx.nodes, ctx.time_limit) == (8, 2, "4:00:00")
    back = Context.from_dict(ctx.to_dict())
    assert back == ctx


def test_the_login_node_and_the_partition_are_required() -> None:
    with pytest.raises(InvalidValueError) as err:
        Context(name="hpc", kind="slurm", partition="gpu")
    assert err.value.field == "hostname"
    assert "required for a slurm context" in str(err.value)
    with pytest.raises(InvalidValueError) as err:
        Context(name="hpc", kind="slurm", hostname="login")
    assert err.value.field == "partition"


def test_the_guard_cancels_the_allocation_never_the_machine() -> None:
    ctx = slurm("my-hpc")
    assert ctx.stop_command_on_idle is not None
    assert "shutdown" not in ctx.stop_command_on_idle
    assert ctx.stop_command_on_idle.startswith("scancel ")
    assert "nvwb-alloc-my-hpc" in ctx.stop_command_on_idle
    # Each context cancels only its own holder job.
    assert "nvwb-alloc-other" in slurm("other").stop_command_on_idle  # type: ignore[operator]


def test_one_node_by_default() -> None:
    assert slurm().nodes == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("partition", "gpu partition"),
        ("partition", "-gpu"),
        ("partition", "a;rm -rf ~"),
        ("account", "$(id)"),
        ("qos", "x y"),
        ("time_limit", "4 hours"),
        ("time_limit", "1:2:3:4"),
        ("time_limit", "0"),
        ("time_limit", "4:00:61"),
        ("time_limit", "400-00:00:00"),
        ("gpus_per_node", -1),
        ("gpus_per_node", 100000),
        ("nodes", 0),
        ("nodes", True),
    ],
)
def test_bad_values_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(InvalidValueError) as err:
        slurm(**{field: value})
    assert err.value.field == field


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("30", 30),
        ("30:15", 31),
        ("4:00:00", 240),
        ("1-00", 1440),
        ("1-12:30", 2190),
        ("2-00:00:01", 2881),
        ("UNLIMITED", None),
        ("infinite", None),
    ],
)
def test_time_limits_are_read_as_slurm_writes_them(text: str, minutes: int | None) -> None:
    assert values.TIME_LIMIT.problem(text) is None
    assert values.TIME_LIMIT.minutes(text) == minutes


@pytest.mark.parametrize("field", ["partition", "account", "qos", "gpus_per_node", "time_limit"])
def test_the_clusters_fields_do_not_apply_to_other_kinds(field: str) -> None:
    value: object = {"gpus_per_node": 1, "time_limit": "60"}.get(field, "x")
    with pytest.raises(InvalidValueError) as err:
        Context(name="box", kind="ssh", hostname="box", **{field: value})
    assert err.value.field == field
    assert "does not apply to an ssh context" in str(err.value)


def test_the_form_shows_the_clusters_fields_but_not_the_idle_command() -> None:
    shown = form_fields(kind_named("slurm"))
    for name in ("hostname", "partition", "account", "qos", "gpus_per_node", "nodes"):
        assert name in shown
    assert "time_limit" in shown
    assert "stop_command_on_idle" not in shown
    assert any(rule.name == "idle_gpu_busy_percent" for rule in rules_of(kind_named("slurm")))


def test_create_context_with_the_issues_flags(wb_env: dict[str, str]) -> None:
    result = nvwb(
        wb_env,
        "create",
        "context",
        "hpc",
        "login.example.edu",
        "--type",
        "slurm",
        "--partition",
        "gpu",
        "--account",
        "A",
        "--qos",
        "Q",
        "--gpus-per-node",
        "4",
        "--nodes",
        "2",
        "--time",
        "4:00:00",
        "--hourly-rate",
        "12.5",
    )
    assert result.code == 0, result.err
    ctx = Registry.load(__import__("workbench.paths").paths.Paths.from_env(wb_env)).get("hpc")
    assert (ctx.kind, ctx.hostname, ctx.partition, ctx.account, ctx.qos) == (
        "slurm",
        "login.example.edu",
        "gpu",
        "A",
        "Q",
    )
    assert (ctx.gpus_per_node, ctx.nodes, ctx.time_limit) == (4, 2, "4:00:00")
    assert ctx.hourly_rate == 12.5


def test_partition_alone_calls_for_a_slurm_context(wb_env: dict[str, str]) -> None:
    result = nvwb(wb_env, "create", "context", "hpc", "login", "--partition", "gpu")
    assert result.code == 0, result.err
    listed = nvwb(wb_env, "list", "contexts", "-o", "json")
    (entry,) = [c for c in __import__("json").loads(listed.out) if c["name"] == "hpc"]
    assert entry["kind"] == "slurm"


def test_a_bad_time_flag_is_refused_and_nothing_is_created(wb_env: dict[str, str]) -> None:
    result = nvwb(
        wb_env, "create", "context", "hpc", "login", "--type", "slurm", "--partition", "gpu",
        "--time", "four hours",
    )  # fmt: skip
    assert result.code != 0
    assert "--time" in result.err or "time_limit" in result.err
    listed = nvwb(wb_env, "list", "contexts", "-o", "json")
    assert "hpc" not in listed.out
