"""Providers behind one interface: command templates, the local and ssh probes, brev's files."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from contexts.brev import parse_host_entry
from contexts.command import render
from workbench.errors import CommandFailed, ContextError, InvalidValueError
from workbench.kinds import Endpoint, Provider, provider_for, wait_for_ssh_banner
from workbench.registry import Context, local_context


def _command_context(tmp_path: Path, status: str = "echo running", **kw: str) -> Context:
    return Context(
        name="cloud-1",
        kind="command",
        start_command=kw.get("start", f"touch {tmp_path}/started-{{name}}"),
        stop_command=kw.get("stop", f"touch {tmp_path}/stopped-{{name}}"),
        status_command=status,
        hostname=kw.get("hostname", "box.example"),
    )


def test_every_kind_has_a_provider_meeting_the_protocol(tmp_path: Path) -> None:
    contexts = [
        local_context(),
        Context(name="h", kind="ssh", hostname="127.0.0.1", ssh_port=2),
        Context(name="b", kind="brev", brev_instance_name="gpu-1"),
        _command_context(tmp_path),
    ]
    for ctx in contexts:
        provider = provider_for(ctx, {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
        assert isinstance(provider, Provider)
        assert provider.context is ctx


def test_command_template_values_reach_the_shell_as_variables(tmp_path: Path) -> None:
    ctx = _command_context(tmp_path)
    assert render("aws start {name} --host {hostname}", ctx, "start_command") == (
        'aws start "${NVWB_TEMPLATE_NAME}" --host "${NVWB_TEMPLATE_HOSTNAME}"'
    )
    odd = Context(
        name="x",
        kind="command",
        start_command=f"printf %s {{workbench_dir}} > {tmp_path}/out",
        stop_command="s",
        status_command="s",
        workbench_dir="~/my dir; rm -rf $HOME",
    )
    provider_for(odd, {"PATH": "/usr/bin:/bin"}).start()
    assert (tmp_path / "out").read_text() == "~/my dir; rm -rf $HOME"


def test_command_template_unknown_variable_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(InvalidValueError) as info:
        render("start {instance_id}", _command_context(tmp_path), "start_command")
    assert info.value.field == "start_command"
    assert "instance_id" in info.value.message


def test_command_provider_runs_its_templates(tmp_path: Path) -> None:
    provider = provider_for(_command_context(tmp_path), {"PATH": "/usr/bin:/bin"})
    provider.start()
    assert (tmp_path / "started-cloud-1").exists()
    provider.stop()
    assert (tmp_path / "stopped-cloud-1").exists()
    assert provider.status().status == "running"
    assert provider.can_stop and not provider.always_on
    assert provider.ssh_endpoint() == Endpoint("box.example", 22, None, None)


@pytest.mark.parametrize(
    ("printed", "expected"),
    [
        ("running", "running"),
        ("Stopped\\n", "stopped"),
        ("noise\\nstarting", "starting"),
        ("STOPPING", "stopping"),
        ("notfound", "notfound"),
        ("not-found", "notfound"),
    ],
)
def test_command_status_words(tmp_path: Path, printed: str, expected: str) -> None:
    ctx = _command_context(tmp_path, status=f"printf '{printed}'")
    assert provider_for(ctx, {"PATH": "/usr/bin:/bin"}).status().status == expected


def test_command_status_that_prints_nonsense_is_a_context_error(tmp_path: Path) -> None:
    ctx = _command_context(tmp_path, status="echo maybe")
    with pytest.raises(ContextError, match="printed 'maybe'") as info:
        provider_for(ctx, {"PATH": "/usr/bin:/bin"}).status()
    assert info.value.hint and "running, stopped" in info.value.hint


def test_command_failure_carries_exit_code_and_stderr(tmp_path: Path) -> None:
    ctx = _command_context(tmp_path, stop="echo quota exceeded >&2; exit 3")
    with pytest.raises(CommandFailed) as info:
        provider_for(ctx, {"PATH": "/usr/bin:/bin"}).stop()
    assert info.value.exit_status == 3
    assert "quota exceeded" in info.value.stderr
    assert "quota exceeded" in info.value.message


def test_command_templates_see_the_environment(tmp_path: Path) -> None:
    ctx = _command_context(tmp_path, status='echo "$CLOUD_STATE"')
    env = {"PATH": "/usr/bin:/bin", "CLOUD_STATE": "stopped"}
    assert provider_for(ctx, env).status().status == "stopped"


def test_local_is_always_running_and_never_stopped() -> None:
    provider = provider_for(local_context())
    assert provider.status().status == "running"
    assert provider.always_on and not provider.can_stop


def test_ssh_status_is_reachability(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        ctx = Context(name="h", kind="ssh", hostname="127.0.0.1", ssh_port=port)
        provider = provider_for(ctx, {"HOME": str(tmp_path)})
        assert provider.status().status == "running"
    state = provider.status()
    assert state.status == "unknown"
    assert f"127.0.0.1:{port} unreachable" in state.message
    assert provider.always_on and not provider.can_stop


def test_wait_for_ssh_banner_times_out_with_the_last_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ContextError, match=r"did not answer within 0\.3 s"):
        wait_for_ssh_banner(Endpoint("127.0.0.1", port), 0.3, interval=0.05)


BREV_SSH_CONFIG = """\
# Generated by brev
Host other
  Hostname 10.0.0.1
  Port 2222

Host gpu-1
  Hostname 34.1.2.3
  IdentityFile "/home/u/.brev/brev.pem"
  User ubuntu
  StrictHostKeyChecking no
  Port=22022

Host gpu-1-host
  Hostname 34.9.9.9
"""


def test_parse_brev_ssh_config_entry() -> None:
    entry = parse_host_entry(BREV_SSH_CONFIG, "gpu-1")
    assert entry is not None
    assert entry["hostname"] == "34.1.2.3"
    assert entry["identityfile"] == "/home/u/.brev/brev.pem"
    assert entry["user"] == "ubuntu"
    assert entry["port"] == "22022"
    assert parse_host_entry(BREV_SSH_CONFIG, "gpu") is None
