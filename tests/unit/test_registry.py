"""The contexts registry: validation per field and per kind, the file on disk, the secret guard."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from workbench.errors import AlreadyExistsError, InvalidValueError, NotFoundError
from workbench.paths import Paths
from workbench.registry import (
    DEFAULT_IDLE_STOP_COMMAND,
    FILE_VERSION,
    Context,
    ContextsFileError,
    Registry,
)

HOST_KEY = "SHA256:" + "A" * 43


def ssh(name: str = "gpu-box", **fields: Any) -> Context:
    fields.setdefault("hostname", "10.0.0.7")
    return Context(name=name, kind="ssh", **fields)


# -- first use -------------------------------------------------------------------------------


def test_first_load_creates_the_file_with_the_local_context(paths: Paths) -> None:
    assert not paths.contexts_file.exists()
    registry = Registry.load(paths)
    assert [c.name for c in registry.list()] == ["local"]
    local = registry.get("local")
    assert local.kind == "local"
    assert local.stop_command_on_idle is None  # the guard never shuts down this machine
    data = json.loads(paths.contexts_file.read_text())
    assert data["version"] == FILE_VERSION
    assert list(data["contexts"]) == ["local"]
    assert stat.S_IMODE(paths.contexts_file.stat().st_mode) == 0o600


def test_local_context_comes_back_when_removed_by_hand(paths: Paths) -> None:
    paths.config_dir.mkdir(parents=True)
    paths.contexts_file.write_text('{"version": 1, "contexts": {}}')
    assert "local" in Registry.load(paths)


def test_local_context_cannot_be_deleted_or_duplicated(paths: Paths) -> None:
    registry = Registry.load(paths)
    with pytest.raises(InvalidValueError) as err:
        registry.delete("local")
    assert err.value.field == "name"
    with pytest.raises(AlreadyExistsError):
        registry.create(Context(name="local", kind="local"))
    with pytest.raises(InvalidValueError) as err:
        registry.create(Context(name="laptop", kind="local"))
    assert err.value.field == "kind"


# -- create, get, update, delete, save -------------------------------------------------------


def test_create_save_and_load_round_trip(paths: Paths) -> None:
    registry = Registry.load(paths)
    created = registry.create(
        ssh(
            ssh_username="ubuntu",
            ssh_port=2222,
            ssh_key_path="~/.ssh/id_ed25519",
            hourly_rate=1,
            host_mount_sources={"/data/models/": "/srv/models"},
            gpus=[{"name": "NVIDIA H100", "memory_mib": 81559}],
            accepted_host_key=HOST_KEY,
        )
    )
    registry.create(Context(name="brevbox", kind="brev", brev_instance_name="my-instance"))
    registry.create(
        Context(
            name="cloud",
            kind="command",
            start_command="aws ec2 start-instances --instance-ids i-0abc",
            stop_command="aws ec2 stop-instances --instance-ids i-0abc",
            status_command="aws ec2 describe-instances --instance-ids i-0abc",
        )
    )
    registry.save()

    again = Registry.load(paths)
    assert again.names() == ["local", "brevbox", "cloud", "gpu-box"]
    assert again.get("gpu-box") == created
    assert again.get("gpu-box").hourly_rate == 1.0
    assert isinstance(again.get("gpu-box").hourly_rate, float)
    assert again.get("brevbox").stop_command_on_idle == DEFAULT_IDLE_STOP_COMMAND


def test_to_dict_shape_is_stable(paths: Paths) -> None:
    data = ssh().to_dict()
    assert list(data) == [
        "name",
        "kind",
        "description",
        "hostname",
        "ssh_username",
        "ssh_port",
        "ssh_key_path",
        "workbench_dir",
        "brev_instance_name",
        "start_command",
        "stop_command",
        "status_command",
        "partition",
        "account",
        "qos",
        "gpus_per_node",
        "nodes",
        "time_limit",
        "hourly_rate",
        "idle_timeout_minutes",
        "idle_gpu_busy_percent",
        "grace_period_seconds",
        "host_mount_sources",
        "gpus",
        "accepted_host_key",
        "stop_command_on_idle",
        "created_instance",
        "created_at",
    ]
    assert data["ssh_port"] == 22
    assert data["workbench_dir"] == "~/.nvwb"
    assert data["idle_timeout_minutes"] == 30
    assert data["grace_period_seconds"] == 60
    json.dumps(data)  # plain JSON types only


def test_create_twice_and_missing_names(paths: Paths) -> None:
    registry = Registry.load(paths)
    registry.create(ssh())
    with pytest.raises(AlreadyExistsError):
        registry.create(ssh())
    with pytest.raises(NotFoundError) as err:
        registry.get("nope")
    assert err.value.name == "nope"
    with pytest.raises(NotFoundError):
        registry.delete("nope")


def test_update_validates_and_persists(paths: Paths) -> None:
    registry = Registry.load(paths)
    registry.create(ssh())
    updated = registry.update("gpu-box", ssh_port=2200, description="lab machine")
    assert updated.ssh_port == 2200
    with pytest.raises(InvalidValueError) as err:
        registry.update("gpu-box", ssh_port=70000)
    assert err.value.field == "ssh_port"
    assert registry.get("gpu-box").ssh_port == 2200  # a refused update changes nothing
    with pytest.raises(InvalidValueError) as err:
        registry.update("gpu-box", colour="blue")
    assert err.value.field == "colour"
    with pytest.raises(InvalidValueError) as err:
        registry.update("gpu-box", kind="brev")
    assert err.value.field == "kind"
    registry.save()
    assert Registry.load(paths).get("gpu-box").description == "lab machine"


def test_update_keeps_following_the_default_idle_stop_command(paths: Paths) -> None:
    registry = Registry.load(paths)
    registry.create(ssh())
    updated = registry.update("gpu-box", stop_command_on_idle="sudo -n poweroff")
    assert updated.stop_command_on_idle == "sudo -n poweroff"
    assert registry.update("gpu-box", description="x").stop_command_on_idle == "sudo -n poweroff"


def test_delete_removes_from_the_file(paths: Paths) -> None:
    registry = Registry.load(paths)
    registry.create(ssh())
    registry.save()
    registry.delete("gpu-box")
    registry.save()
    assert Registry.load(paths).names() == ["local"]


def test_locked_saves_on_success_and_not_on_error(paths: Paths) -> None:
    with Registry.locked(paths) as registry:
        registry.create(ssh())
    assert "gpu-box" in Registry.load(paths)
    with pytest.raises(RuntimeError), Registry.locked(paths) as registry:
        registry.delete("gpu-box")
        raise RuntimeError("boom")
    assert "gpu-box" in Registry.load(paths)


# -- field and kind rules --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"ssh_port": 0}, "ssh_port"),
        ({"ssh_port": 65536}, "ssh_port"),
        ({"ssh_port": True}, "ssh_port"),
        ({"ssh_port": "22"}, "ssh_port"),
        ({"hourly_rate": -0.5}, "hourly_rate"),
        ({"hourly_rate": float("nan")}, "hourly_rate"),
        ({"hourly_rate": "cheap"}, "hourly_rate"),
        ({"idle_timeout_minutes": 0}, "idle_timeout_minutes"),
        ({"grace_period_seconds": -1}, "grace_period_seconds"),
        ({"hostname": "-oProxyCommand=evil"}, "hostname"),
        ({"hostname": "two words"}, "hostname"),
        ({"ssh_username": "root@host"}, "ssh_username"),
        ({"accepted_host_key": "MD5:aa:bb"}, "accepted_host_key"),
        ({"host_mount_sources": {"relative/": "/srv"}}, "host_mount_sources.relative/"),
        ({"gpus": [{"api_token": "x"}]}, "gpus[0].api_token"),
        ({"gpus": ["H100"]}, "gpus[0]"),
        ({"description": "two\nlines"}, "description"),
        ({"workbench_dir": ""}, "workbench_dir"),
        ({"brev_instance_name": "x"}, "brev_instance_name"),
        ({"start_command": "true"}, "start_command"),
    ],
)
def test_bad_ssh_fields_name_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidValueError) as err:
        ssh(**fields)
    assert err.value.field == field


def test_bad_names_are_refused() -> None:
    for bad in ("", "../x", "two words", "-x"):
        with pytest.raises(InvalidValueError) as err:
            Context(name=bad, kind="brev", brev_instance_name="i")
        assert err.value.field == "name"


def test_kind_rules() -> None:
    with pytest.raises(InvalidValueError) as err:
        Context(name="box", kind="ssh")
    assert err.value.field == "hostname"
    with pytest.raises(InvalidValueError) as err:
        Context(name="b", kind="brev")
    assert err.value.field == "brev_instance_name"
    with pytest.raises(InvalidValueError) as err:
        Context(name="b", kind="brev", brev_instance_name="i", hostname="1.2.3.4")
    assert err.value.field == "hostname"
    with pytest.raises(InvalidValueError) as err:
        Context(name="c", kind="command", start_command="a", stop_command="b")
    assert err.value.field == "status_command"
    with pytest.raises(InvalidValueError) as err:
        Context(name="local", kind="local", hostname="example.com")
    assert err.value.field == "hostname"
    with pytest.raises(InvalidValueError) as err:
        Context(name="x", kind="docker")  # type: ignore[arg-type]
    assert err.value.field == "kind"


def test_ipv6_and_dns_hostnames_are_accepted() -> None:
    assert ssh(hostname="::1").hostname == "::1"
    assert ssh(hostname="gpu-01.lab.example.com").hostname == "gpu-01.lab.example.com"


# -- secrets never land in the file ----------------------------------------------------------


def test_unknown_secret_like_field_is_refused_with_a_hint(paths: Paths) -> None:
    registry = Registry.load(paths)
    registry.create(ssh())
    with pytest.raises(InvalidValueError) as err:
        registry.update("gpu-box", ssh_password="hunter2")
    assert err.value.field == "ssh_password"
    assert err.value.hint is not None
    assert "keyring" in err.value.hint


@pytest.mark.parametrize(
    "command",
    [
        "brev-start --token abcdef0123456789",
        "API_TOKEN=abcdef0123456789 ./start.sh",
        "start --password=correcthorse",
    ],
)
def test_literal_secret_in_a_command_template_is_refused(command: str) -> None:
    with pytest.raises(InvalidValueError) as err:
        Context(
            name="c", kind="command", start_command=command, stop_command="s", status_command="t"
        )
    assert err.value.field == "start_command"


@pytest.mark.parametrize(
    "command",
    [
        "cloud start --token $CLOUD_TOKEN",
        'API_TOKEN="$TOKEN" ./start.sh',
        "cloud start --token ${{TOKEN}}",
        "aws secretsmanager get-secret-value --secret-id prod",
        "gcloud compute instances start my-vm --zone us-east1-b",
    ],
)
def test_secret_references_in_command_templates_are_fine(command: str) -> None:
    ctx = Context(
        name="c", kind="command", start_command=command, stop_command="s", status_command="t"
    )
    assert ctx.start_command == command


def test_gpus_mutated_in_place_cannot_smuggle_a_secret_into_the_file(paths: Paths) -> None:
    registry = Registry.load(paths)
    ctx = registry.create(ssh(gpus=[{"name": "A100"}]))
    ctx.gpus[0]["access_token"] = "leak"
    with pytest.raises(InvalidValueError):
        registry.save()
    assert "leak" not in paths.contexts_file.read_text()


# -- a file we cannot use --------------------------------------------------------------------


def write_file(paths: Paths, text: str) -> Path:
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    paths.contexts_file.write_text(text)
    return paths.contexts_file


def test_corrupt_json_names_the_file_and_line(paths: Paths) -> None:
    file = write_file(paths, '{\n  "version": 1,\n  "contexts": {,}\n}\n')
    with pytest.raises(ContextsFileError) as err:
        Registry.load(paths)
    assert err.value.file == str(file)
    assert err.value.line == 3
    assert str(file) in str(err.value)
    assert file.read_text().startswith("{\n")  # never overwritten


def test_newer_version_is_refused(paths: Paths) -> None:
    write_file(paths, json.dumps({"version": FILE_VERSION + 1, "contexts": {}}))
    with pytest.raises(ContextsFileError) as err:
        Registry.load(paths)
    assert err.value.field == "version"


def test_bad_entry_names_its_field_path(paths: Paths) -> None:
    write_file(
        paths,
        json.dumps(
            {"version": 1, "contexts": {"box": {"kind": "ssh", "hostname": "h", "ssh_port": 0}}}
        ),
    )
    with pytest.raises(ContextsFileError) as err:
        Registry.load(paths)
    assert err.value.field == "contexts.box.ssh_port"


def test_entry_with_a_secret_field_in_the_file_is_refused(paths: Paths) -> None:
    write_file(
        paths,
        json.dumps(
            {"version": 1, "contexts": {"box": {"kind": "ssh", "hostname": "h", "token": "t"}}}
        ),
    )
    with pytest.raises(ContextsFileError) as err:
        Registry.load(paths)
    assert err.value.field == "contexts.box.token"
    assert err.value.hint and "secret" in err.value.hint


def test_reserved_local_name_with_another_kind_is_refused(paths: Paths) -> None:
    write_file(
        paths,
        json.dumps({"version": 1, "contexts": {"local": {"kind": "ssh", "hostname": "h"}}}),
    )
    with pytest.raises(ContextsFileError):
        Registry.load(paths)


# -- start-up cost ---------------------------------------------------------------------------


def test_import_pulls_in_no_heavy_library(wb_env: dict[str, str]) -> None:
    code = (
        "import sys; from workbench.paths import Paths; from workbench.registry import Registry;"
        "Registry.load(Paths.from_env()).list();"
        "heavy = [m for m in ('pydantic', 'ruamel', 'keyring', 'git', 'docker', 'paramiko')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=wb_env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"
    assert Path(wb_env["NVWB_CONFIG_DIR"], "contexts.json").exists()
    assert os.stat(Path(wb_env["NVWB_CONFIG_DIR"], "contexts.json")).st_mode & 0o077 == 0
