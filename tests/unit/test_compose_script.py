"""The script ``nvwb compose`` sends to a remote host's ``sh -s``, run by a real ``/bin/sh``.

On a remote context compose runs on the host through one ``sh -s`` whose script comes on the SSH
channel's standard input: the project's variables and secrets are exported there, never put on a
command line (``ps`` on the host shows ``sh -s`` and compose's own flags only), and the compose
file follows as a here-document that no line of the file can end early. A stand-in
``docker-compose`` records what it was given.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from workbench.container.compose import ComposeFile, ComposeMissing, ComposeRunner, _script

HOSTILE = """\
services:
  web:
    image: x
    command: ["sh", "-c", "echo '$$HOME' \\"quoted\\" `date` $(id)"]
NVWB_COMPOSE_0000000000000000
EOF
"""


def test_values_travel_in_the_script_not_on_a_command_line_and_the_file_arrives_whole(
    tmp_path: Path,
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "record"
    fake = bin_dir / "docker-compose"
    fake.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {record}.argv\n'
        f'printf "%s" "$API_TOKEN" > {record}.token\n'
        f'printf "%s" "$GREETING" > {record}.greeting\n'
        f"cat > {record}.stdin\n"
    )
    fake.chmod(0o755)
    secret = "tok-'$(touch /tmp/pwned)'\"`id`\"-end"
    runner = ComposeRunner(
        docker=None,
        name="nvwb-demo-1234",
        project_dir="/home/u/projects/demo-1234",
        compose=ComposeFile("compose.yaml", HOSTILE, ("web",), ()),
        context="box",
    )
    runner._engine = ("docker-compose",)
    argv = runner._argv(["up", "-d"], ["tools"])
    script = _script(argv, {"GREETING": "hello world", "API_TOKEN": secret}, HOSTILE)
    done = subprocess.run(
        ["sh", "-s"],
        input=script,
        capture_output=True,
        text=True,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert Path(f"{record}.token").read_text() == secret
    assert Path(f"{record}.greeting").read_text() == "hello world"
    assert Path(f"{record}.stdin").read_text() == HOSTILE
    words = Path(f"{record}.argv").read_text().splitlines()
    assert words == ["-p", "nvwb-demo-1234", "-f", "-", "--project-directory",
                     "/home/u/projects/demo-1234", "--profile", "tools", "up", "-d"]  # fmt: skip
    assert secret not in " ".join(words)
    assert not Path("/tmp/pwned").exists()


def test_a_host_without_compose_is_told_how_to_get_it(tmp_path: Path) -> None:

    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker command here")
    only_docker = tmp_path / "bin"
    only_docker.mkdir()
    (only_docker / "docker").symlink_to(docker)  # Docker without its compose plugin
    plugin = subprocess.run([docker, "compose", "version"], capture_output=True, check=False,
                            env={"PATH": str(only_docker), "HOME": str(tmp_path)})  # fmt: skip
    if plugin.returncode == 0:
        pytest.skip("this Docker has its compose plugin installed system-wide")
    runner = ComposeRunner(
        docker=None,
        name="nvwb-demo-1234",
        project_dir="/p",
        compose=ComposeFile("compose.yaml", HOSTILE, ("web",), ()),
        local_env={"PATH": str(only_docker), "HOME": str(tmp_path)},
        context="local",
    )
    with pytest.raises(ComposeMissing) as caught:
        runner.engine()
    assert "neither 'docker compose' nor 'docker-compose'" in caught.value.message
    assert "docker-compose-plugin" in (caught.value.hint or "")
    assert "apt-get install docker-compose" in (caught.value.hint or "")
