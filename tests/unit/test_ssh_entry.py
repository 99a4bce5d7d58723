"""The SSH config entry Workbench writes for a context, and the Include line it offers to add.

Nothing a provider or a project says may become an ssh option: every value is checked before a
byte is written. The user's ``~/.ssh/config`` is changed only by ``add_include``: one line at
its top, the rest kept byte for byte; a link or a folder there is left alone.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from workbench.errors import ConflictError, InvalidValueError
from workbench.paths import Paths
from workbench.ssh_entry import HostEntry, SshEntries, entry_from_wire, host_blocks

KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def _entry(**changes: object) -> HostEntry:
    fields: dict[str, object] = {
        "context": "gpu-box",
        "hostname": "10.0.0.5",
        "port": 2222,
        "user": "ubuntu",
        "host_key_type": "ssh-ed25519",
        "host_key": KEY,
        "identity_file": "/home/me/.ssh/id_ed25519",
    }
    fields.update(changes)
    return HostEntry(**fields)  # type: ignore[arg-type]


@pytest.fixture
def entries(paths: Paths, tmp_path: Path) -> SshEntries:
    return SshEntries(paths, tmp_path / "home")


def _ssh_g(config: Path, host: str) -> dict[str, str]:
    """What ``ssh -G`` makes of ``host`` under ``config``: the real parser's view."""
    done = subprocess.run(
        ["ssh", "-G", "-F", str(config), host], capture_output=True, text=True, check=True
    )
    found: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        found.setdefault(key, value)
    return found


def test_the_entry_says_what_workbench_connects_with_as_ssh_reads_it(
    entries: SshEntries,
) -> None:
    jump = _entry(hostname="login.example.org", port=22, user="me", hop=1, identity_file=None)
    config = entries.write(_entry(jump=jump), multiplex=True)
    seen = _ssh_g(config, "nvwb-gpu-box")
    assert seen["hostname"] == "10.0.0.5"
    assert seen["port"] == "2222"
    assert seen["user"] == "ubuntu"
    assert seen["stricthostkeychecking"] == "true"
    assert seen["hostkeyalias"] == "nvwb-gpu-box"
    assert seen["userknownhostsfile"] == str(entries.known_hosts_file("gpu-box"))
    assert seen["proxyjump"] == "nvwb-gpu-box-jump"
    assert seen["identityfile"] == "/home/me/.ssh/id_ed25519"
    assert seen["controlmaster"] == "auto"
    jumped = _ssh_g(config, "nvwb-gpu-box-jump")
    assert jumped["hostname"] == "login.example.org" and jumped["user"] == "me"
    pinned = entries.known_hosts_file("gpu-box").read_text()
    assert f"nvwb-gpu-box ssh-ed25519 {KEY}\n" in pinned
    assert f"nvwb-gpu-box-jump ssh-ed25519 {KEY}\n" in pinned
    for path in (config, entries.entry_file("gpu-box"), entries.known_hosts_file("gpu-box")):
        assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hostname", "10.0.0.5\n    ProxyCommand touch /tmp/pwned"),
        ("hostname", "box ProxyCommand=sh"),
        ("hostname", "-oProxyCommand=sh"),
        ("hostname", 'box" ProxyCommand "sh'),
        ("user", "root\nLocalCommand sh"),
        ("user", "me #"),
        ("host_key", KEY + "\nHost *"),
        ("identity_file", '/tmp/k" ProxyCommand "sh'),
        ("identity_file", "/tmp/k\nHost *"),
        ("proxy_command", "nc %h %p\n    LocalCommand sh"),
        ("proxy_jump", "jump ProxyCommand=sh"),
        ("context", "../x"),
    ],
)
def test_a_value_that_could_inject_an_option_is_refused_and_nothing_written(
    entries: SshEntries, field: str, value: str
) -> None:
    with pytest.raises(InvalidValueError):
        entries.write(_entry(**{field: value}), multiplex=False)
    assert not entries.folder.exists()


def test_entry_from_the_wire_is_checked_too() -> None:
    data = {**_entry().__dict__, "jump": {**_entry(hop=1).__dict__, "user": "a b"}}
    with pytest.raises(InvalidValueError):
        entry_from_wire(data)


def test_the_include_line_goes_at_the_top_and_keeps_the_rest(entries: SshEntries) -> None:
    config = entries.user_config
    config.parent.mkdir(parents=True)
    original = "Host old\n    HostName old.example.org\n    # a comment\n\nHost *\n  User me\n"
    config.write_text(original)
    config.chmod(0o640)
    assert not entries.included()
    assert entries.add_include()
    text = config.read_text()
    assert text.endswith(original)  # byte for byte
    assert text.splitlines()[1] == entries.include_line()
    assert config.stat().st_mode & 0o777 == 0o640  # its mode kept
    assert entries.included()
    assert not entries.add_include()  # never twice
    assert config.read_text() == text


def test_an_include_inside_a_host_block_does_not_count(entries: SshEntries) -> None:
    entries.user_config.parent.mkdir(parents=True)
    entries.user_config.write_text(f"Host x\n    {entries.include_line()}\n")
    assert not entries.included()


def test_a_missing_config_is_created_private(entries: SshEntries) -> None:
    assert entries.add_include()
    assert entries.user_config.stat().st_mode & 0o777 == 0o600
    assert entries.user_config.parent.stat().st_mode & 0o777 == 0o700


def test_a_linked_config_is_left_alone_with_the_line_to_add(
    entries: SshEntries, tmp_path: Path
) -> None:
    managed = tmp_path / "dotfiles-ssh-config"
    managed.write_text("Host a\n")
    entries.user_config.parent.mkdir(parents=True)
    os.symlink(managed, entries.user_config)
    with pytest.raises(ConflictError) as caught:
        entries.add_include()
    assert entries.include_line() in (caught.value.hint or "")
    assert entries.user_config.is_symlink()
    assert managed.read_text() == "Host a\n"


def test_the_written_config_parses_with_a_plain_ssh_and_the_include(
    entries: SshEntries,
) -> None:
    entries.write(_entry(), multiplex=False)
    entries.add_include()
    seen = _ssh_g(entries.user_config, "nvwb-gpu-box")
    assert seen["hostname"] == "10.0.0.5"
    assert "controlmaster" not in seen or seen["controlmaster"] == "false"


def test_blocks_name_no_project_content() -> None:
    text = host_blocks(_entry(), Path("/k/known"))
    assert text.startswith("Host nvwb-gpu-box\n")
    assert "RemoteCommand" not in text and "LocalCommand" not in text


def test_deleting_a_context_removes_its_entry(paths: Paths, wb_env: dict[str, str]) -> None:
    from tests.support.cli import nvwb
    from workbench.registry import Context, Registry

    with Registry.locked(paths) as registry:
        registry.create(Context(name="gpu-box", kind="ssh", hostname="10.0.0.5"))
    entries = SshEntries(paths, Path(wb_env["HOME"]))
    entries.write(_entry(), multiplex=False)
    assert entries.entry_file("gpu-box").exists()
    assert nvwb(wb_env, "delete", "context", "gpu-box", "--yes").code == 0
    assert not entries.entry_file("gpu-box").exists()
    assert not entries.known_hosts_file("gpu-box").exists()
