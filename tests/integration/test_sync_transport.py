"""The bulk runner's choice of SSH client, against a real sshd.

A bulk process asked for before the choice is made starts through OpenSSH at once, beside the
login check; it is kept when OpenSSH is chosen, and killed (the work going through paramiko)
when the check fails.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from tests.integration.test_sync_fixtures import connect
from tests.support.sshd import SshServer
from workbench.sync.transport import BulkRunner


def _local_ssh_running(marker: str) -> bool:
    found = subprocess.run(["pgrep", "-f", f"^ssh .*{marker}"], capture_output=True, check=False)
    return found.returncode == 0


def _echo_through(runner: BulkRunner, marker: str) -> bytes:
    proc = runner.start_bulk(["sh", "-c", f"read line && echo {marker}-$line"])
    proc.stdin.write(b"hello\n")
    proc.stdin.flush()
    proc.close_stdin()
    out = proc.stdout.read()
    assert proc.wait(10) == 0
    return out


def test_a_bulk_process_asked_for_before_the_choice_goes_through_openssh(
    tmp_path: Path, sshd: SshServer
):
    connection = connect(sshd, tmp_path / "pins" / "known_hosts")
    decided: list[str] = []
    runner = BulkRunner(connection, on_decided=lambda: decided.append(runner.name))
    try:
        marker = f"m{uuid.uuid4().hex[:8]}"
        assert runner.name == "deciding"
        assert _echo_through(runner, marker) == f"{marker}-hello\n".encode()
        assert runner.name == "openssh" and decided == ["openssh"]
    finally:
        runner.close()
        connection.close()


def test_when_openssh_cannot_log_in_the_work_goes_through_paramiko_and_no_ssh_is_left(
    tmp_path: Path, sshd: SshServer
):
    pins = tmp_path / "pins" / "known_hosts"
    connection = connect(sshd, pins)  # paramiko is connected and trusted
    # OpenSSH reads the same pins: a different key for the host makes it refuse to log in.
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    pin_files = list(pins.parent.glob("*"))
    assert pin_files
    for pin_file in pin_files:
        lines = pin_file.read_text().splitlines()
        key = (tmp_path / "other.pub").read_text().split()
        pin_file.write_text(
            "".join(" ".join([line.split()[0], *key[:2]]) + "\n" for line in lines if line.strip())
        )
    runner = BulkRunner(connection)
    try:
        marker = f"m{uuid.uuid4().hex[:8]}"
        assert _echo_through(runner, marker) == f"{marker}-hello\n".encode()
        assert runner.name == "paramiko"
        assert not _local_ssh_running(marker)
    finally:
        runner.close()
        connection.close()
