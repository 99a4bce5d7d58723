"""Numbers given to ``nvwb`` are checked against one range per kind, with the flag named.

``workbench.values`` holds the ranges; the parser, the app's forms, ``contexts.json`` and specs
use the same ones. A refused value is one clear line (exit 2) and changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import nvwb
from workbench import values
from workbench.errors import InvalidValueError
from workbench.registry import Context

HUGE = "99999999999999999999999"


def _project(root: Path) -> Path:
    project = root / "p"
    (project / ".project").mkdir(parents=True)
    (project / ".project" / "spec.yaml").write_text(
        "specVersion: v2\nmeta:\n  name: p\nexecution:\n  resources:\n"
        "    gpu:\n      requested: 0\n    sharedMemoryMB: 1024\n"
    )
    return project


def _contexts(wb_env: dict[str, str]) -> bytes:
    nvwb(wb_env, "list", "contexts")
    return (Path(wb_env["NVWB_CONFIG_DIR"]) / "contexts.json").read_bytes()


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--grace-period", HUGE),
        ("--grace-period", "-1"),
        ("--grace-period", "1e3"),
        ("--grace-period", "٣"),  # a digit, but not one a user means
        ("--idle-timeout", "0"),
        ("--idle-timeout", HUGE),
        ("--idle-gpu-busy", "101"),
        ("--ssh-port", "70000"),
        ("--ssh-port", "0"),
        ("--hourly-rate", "nan"),
        ("--hourly-rate", "inf"),
        ("--hourly-rate", "-2"),
        ("--hourly-rate", "1e400"),
    ],
)
def test_context_numbers_out_of_range_name_the_flag_and_change_nothing(
    wb_env: dict[str, str], flag: str, value: str
) -> None:
    before = _contexts(wb_env)
    result = nvwb(wb_env, "update", "context", "local", f"{flag}={value}")
    assert result.code == 2, (result.out, result.err)
    assert flag in result.err and "Traceback" not in result.err
    assert "must be" in result.err
    assert _contexts(wb_env) == before


def test_a_grace_period_beyond_a_week_is_refused_by_the_registry_too() -> None:
    with pytest.raises(InvalidValueError) as info:
        Context(name="b", kind="brev", brev_instance_name="i", grace_period_seconds=10**22)
    assert info.value.field == "grace_period_seconds"


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--gpus", "99999999999999999999"),
        ("--gpus", "-1"),
        ("--shared-memory-mb", HUGE),
        ("--shared-memory-mb", "lots"),
    ],
)
def test_resource_numbers_out_of_range_name_the_flag_and_change_nothing(
    wb_env: dict[str, str], tmp_path: Path, flag: str, value: str
) -> None:
    project = _project(tmp_path)
    spec = project / ".project" / "spec.yaml"
    before = spec.read_bytes()
    result = nvwb(wb_env, "-p", str(project), "update", "resources", f"{flag}={value}")
    assert result.code == 2, (result.out, result.err)
    assert flag in result.err and "must be" in result.err
    assert spec.read_bytes() == before


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--webapp-port", "70000"),
        ("--webapp-port", "0"),
        ("--webapp-port", "http"),
        ("--timeout-seconds", HUGE),
        ("--timeout-seconds", "-5"),
    ],
)
def test_app_numbers_out_of_range_name_the_flag_and_change_nothing(
    wb_env: dict[str, str], tmp_path: Path, flag: str, value: str
) -> None:
    project = _project(tmp_path)
    spec = project / ".project" / "spec.yaml"
    before = spec.read_bytes()
    result = nvwb(
        wb_env,
        "-p",
        str(project),
        "create",
        "app",
        "web",
        "--start-cmd",
        "python3 -m http.server 8080",
        "--webapp-port=8080",
        f"{flag}={value}",
    )
    assert result.code == 2, (result.out, result.err)
    assert flag in result.err and "must be" in result.err
    assert spec.read_bytes() == before


@pytest.mark.parametrize(
    "argv",
    [
        ["start", "web", "--port", "70000"],
        ["logs", "web", "--tail", "0"],
        ["logs", "web", "--tail", HUGE],
    ],
)
def test_other_numbers_are_checked_before_anything_runs(
    wb_env: dict[str, str], argv: list[str]
) -> None:
    result = nvwb(wb_env, *argv)
    assert result.code == 2, (result.out, result.err)
    assert argv[2] in result.err and "must be" in result.err


def test_values_at_the_ends_of_each_range_are_accepted(
    wb_env: dict[str, str], tmp_path: Path
) -> None:
    result = nvwb(
        wb_env,
        "update",
        "context",
        "local",
        f"--grace-period={values.GRACE_PERIOD_SECONDS.high}",
        f"--idle-timeout={values.IDLE_TIMEOUT_MINUTES.high}",
        "--hourly-rate=0",
    )
    assert result.code == 0, result.err
    project = _project(tmp_path)
    result = nvwb(
        wb_env,
        "-p",
        str(project),
        "update",
        "resources",
        f"--gpus={values.GPUS.high}",
        "--shared-memory-mb=0",
    )
    assert result.code == 0, result.err
