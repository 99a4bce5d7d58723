"""``nvwb list|create|update|delete context`` and the CLI's error funnel, run in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import nvwb


def _contexts_file(env: dict[str, str]) -> Path:
    return Path(env["NVWB_CONFIG_DIR"]) / "contexts.json"


def test_a_fresh_user_has_only_the_local_context(wb_env):
    result = nvwb(wb_env, "list", "contexts", "-o", "json")
    assert result.code == 0, result.err
    rows = result.json()
    assert [(r["name"], r["kind"], r["current"]) for r in rows] == [("local", "local", True)]


def test_create_ssh_context_then_list_wide_shows_it(wb_env):
    created = nvwb(
        wb_env,
        "create",
        "context",
        "gpu-box",
        "gpu.example.com",
        "--ssh-port",
        "2222",
        "--ssh-username",
        "me",
        "--hourly-rate",
        "1.25",
        "-o",
        "json",
    )
    assert created.code == 0, created.err
    assert created.json()["kind"] == "ssh"  # inferred from the HOSTNAME
    table = nvwb(wb_env, "list", "contexts", "--wide")
    line = next(ln for ln in table.out.splitlines() if ln.startswith("gpu-box"))
    assert "gpu.example.com:2222" in line and "1.25" in line
    stored = json.loads(_contexts_file(wb_env).read_text())
    assert stored["contexts"]["gpu-box"]["ssh_username"] == "me"
    assert _contexts_file(wb_env).stat().st_mode & 0o777 == 0o600


def test_create_each_kind_in_one_command(wb_env):
    assert nvwb(wb_env, "create", "context", "b", "--brev-instance-name", "inst-1").code == 0
    assert (
        nvwb(
            wb_env,
            "create",
            "context",
            "c",
            "--type",
            "command",
            "--start-command",
            "vm start {name}",
            "--stop-command",
            "vm stop {name}",
            "--status-command",
            "vm status {name}",
        ).code
        == 0
    )
    kinds = {r["name"]: r["kind"] for r in nvwb(wb_env, "list", "contexts", "-o", "json").json()}
    assert kinds == {"local": "local", "b": "brev", "c": "command"}


def test_global_flags_work_after_the_command(wb_env):
    first = nvwb(wb_env, "-o", "json", "list", "contexts")
    after = nvwb(wb_env, "list", "contexts", "-o", "json")
    assert first.json() == after.json()


def test_update_context_changes_only_what_is_given(wb_env):
    nvwb(wb_env, "create", "context", "box", "h.example", "--hourly-rate", "2")
    result = nvwb(wb_env, "update", "context", "box", "--grace-period", "5", "-o", "json")
    assert result.code == 0, result.err
    data = result.json()
    assert (data["grace_period_seconds"], data["hourly_rate"]) == (5, 2.0)


def test_host_mount_folders_are_set_added_and_removed_per_target(wb_env):
    created = nvwb(
        wb_env,
        "create",
        "context",
        "box",
        "h.example",
        "--host-mount",
        "/data/models/=/srv/models",
        "--host-mount",
        "/data/cache=/srv/cache",
        "-o",
        "json",
    )
    assert created.code == 0, created.err
    assert created.json()["host_mount_sources"] == {
        "/data/models/": "/srv/models",
        "/data/cache": "/srv/cache",
    }
    # An update adds to what is there; the same target (slash or not) replaces; TARGET= removes.
    updated = nvwb(
        wb_env,
        "update",
        "context",
        "box",
        "--host-mount",
        "/data/models=/mnt/models",
        "--host-mount",
        "/data/cache=",
        "--host-mount",
        "/data/raw/=/srv/raw",
        "-o",
        "json",
    )
    assert updated.code == 0, updated.err
    stored = json.loads(_contexts_file(wb_env).read_text())["contexts"]["box"]
    assert stored["host_mount_sources"] == {"/data/models": "/mnt/models", "/data/raw/": "/srv/raw"}


def test_the_idle_stop_command_is_set_per_context(wb_env):
    nvwb(wb_env, "create", "context", "b", "--brev-instance-name", "i")
    assert nvwb(wb_env, "list", "contexts", "-o", "json").json()[1]["stop_command_on_idle"] == (
        "sudo -n shutdown -h now"
    )
    result = nvwb(wb_env, "update", "context", "b", "--idle-stop-command", "poweroff", "-o", "json")
    assert result.code == 0, result.err
    assert result.json()["stop_command_on_idle"] == "poweroff"


def test_a_busy_gpu_can_count_as_use_on_machines_workbench_stops(wb_env):
    created = nvwb(
        wb_env, "create", "context", "b", "--brev-instance-name", "i", "--idle-gpu-busy", "50",
        "-o", "json",
    )  # fmt: skip
    assert created.code == 0, created.err
    assert created.json()["idle_gpu_busy_percent"] == 50
    off = nvwb(wb_env, "update", "context", "b", "--idle-gpu-busy", "0", "-o", "json")
    assert off.code == 0, off.err
    stored = json.loads(_contexts_file(wb_env).read_text())["contexts"]["b"]
    assert stored["idle_gpu_busy_percent"] == 0
    shown = nvwb(wb_env, "update", "context", "b", "--idle-gpu-busy", "70")
    assert shown.code == 0 and "Busy GPU counts as use (%)" in shown.out and "70" in shown.out


def test_delete_context_needs_yes_without_a_terminal(wb_env):
    nvwb(wb_env, "create", "context", "box", "h.example")
    refused = nvwb(wb_env, "delete", "context", "box")
    assert refused.code == 130 and "--yes" in refused.err
    assert nvwb(wb_env, "delete", "context", "box", "--yes").code == 0
    names = [r["name"] for r in nvwb(wb_env, "list", "contexts", "-o", "json").json()]
    assert names == ["local"]


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["create", "context", "../x", "h"], 2, "must not contain '/'"),
        (["create", "context", "", "h"], 2, "must not be empty"),
        (["create", "context", "a b", "h"], 2, "spaces"),
        (["create", "context", "x", "--type", "cloud"], 2, "invalid choice"),
        (["create", "context", "x", "--ssh-port", "abc", "h"], 2, "--ssh-port: must be a whole"),
        (["create", "context", "x", "--ssh-port", "70000", "h"], 2, "from 1 to 65535"),
        (["create", "context", "x"], 2, "cannot tell the context's type"),
        (["create", "context", "local", "--type", "local"], 5, "already exists"),
        (["update", "context", "nope", "--hourly-rate", "1"], 4, "does not exist"),
        (["delete", "context", "local", "--yes"], 2, "local"),
        (["create", "context", "x", "h", "--host-mount", "/data"], 2, "expected TARGET=FOLDER"),
        (["create", "context", "x", "h", "--host-mount", "data=/srv"], 2, "absolute container"),
        (["update", "context", "local", "--host-mount", "=/srv"], 2, "expected TARGET=FOLDER"),
        (["update", "context", "local", "--idle-gpu-busy", "50"], 2, "does not apply to a local"),
        (["create", "context", "x", "h", "--idle-gpu-busy", "50"], 2, "nothing stops it when idle"),
        (
            ["create", "context", "x", "--brev-instance-name", "i", "--idle-gpu-busy", "101"],
            2,
            "from 0 to 100",
        ),
        (["frobnicate"], 2, "invalid choice"),
    ],
)
def test_bad_input_is_one_clear_line_and_changes_nothing(wb_env, argv, code, needle):
    nvwb(wb_env, "list", "contexts")  # the registry exists before, so "unchanged" means something
    before = _contexts_file(wb_env).read_bytes()
    result = nvwb(wb_env, *argv)
    assert result.code == code, (result.code, result.err)
    assert needle in result.err
    assert result.err.startswith("nvwb: error: ")
    assert "Traceback" not in result.err
    assert _contexts_file(wb_env).read_bytes() == before


def test_errors_come_out_as_json_when_asked(wb_env):
    result = nvwb(wb_env, "update", "context", "nope", "--hourly-rate", "1", "-o", "json")
    assert result.code == 4
    error = result.json()["error"]
    assert error["code"] == "not_found" and error["name"] == "nope" and error["exit_code"] == 4


def test_current_context_from_env(wb_env):
    nvwb(wb_env, "create", "context", "box", "h.example")
    rows = nvwb({**wb_env, "NVWB_CONTEXT": "box"}, "list", "contexts", "-o", "json").json()
    assert [r["name"] for r in rows if r["current"]] == ["box"]


def test_a_corrupt_contexts_file_is_reported_and_left_alone(wb_env):
    path = _contexts_file(wb_env)
    path.parent.mkdir(parents=True)
    path.write_text('{"version": 1, "contexts": {"x": {"kind": "ssh"', encoding="utf-8")
    result = nvwb(wb_env, "list", "contexts")
    assert result.code != 0 and "contexts.json" in result.err
    assert path.read_text(encoding="utf-8").endswith('"ssh"')


def test_version_and_help_exit_zero(wb_env, capsys):
    assert nvwb(wb_env, "--version").code == 0
    assert nvwb(wb_env, "list", "--help").code == 0


def test_cli_reference_is_up_to_date():
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    check = subprocess.run(
        [sys.executable, str(root / "scripts" / "gen-cli-docs"), "--check"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
