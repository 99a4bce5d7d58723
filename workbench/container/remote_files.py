"""The project's files copied to a remote context's workbench dir, as one tar stream.

The container on a remote context mounts the project from the remote's disk, so the files must be
there first. Until the sync issue makes this live and two-way, ``nvwb open`` copies the project
once per open: every file (``.git/`` and caches left out) travels through a single exec channel
running ``tar -x`` on the remote, which is far quicker than a file-by-file SFTP walk. Files on the
remote that no longer exist here are left alone: a copy never deletes.
"""

from __future__ import annotations

import logging
import os
import shlex
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.errors import ContextError

if TYPE_CHECKING:
    from workbench.ssh import SshConnection

log = logging.getLogger(__name__)

# Never worth copying: git's own data (the remote gets a working tree, not a clone) and caches.
SKIPPED_DIRS = frozenset({".git", "__pycache__", ".ipynb_checkpoints", ".venv", "node_modules"})
COPY_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class CopyResult:
    remote_dir: str
    files: int
    bytes: int
    seconds: float


def remote_project_dir(workbench_dir: str, folder: str) -> str:
    """Where a project lives on a remote context: ``<workbench dir>/projects/<folder>``.

    ``folder`` is the project's ``<name>-<id>`` (``ProjectIdentity.key``), so two projects that
    share a name never share a remote folder; versions before project identities used the bare
    name, which ``ProjectSession`` only looks for to warn that it is no longer used.
    """
    return f"{workbench_dir.rstrip('/')}/projects/{folder}"


def copy_project(ssh: SshConnection, local_dir: Path, remote_dir: str) -> CopyResult:
    """Copy ``local_dir`` into ``remote_dir`` (created if needed) through one ``tar -x``."""
    started = time.monotonic()
    quoted = shlex.quote(remote_dir)
    command = f"mkdir -p {quoted} && tar -x --no-same-owner -m -C {quoted} -f -"
    files = 0
    size = 0
    with ssh.exec_stream(command) as process:
        try:
            with tarfile.open(fileobj=process.stdin, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for path in _walk(local_dir):
                    info = tar.gettarinfo(str(path), arcname=path.relative_to(local_dir).as_posix())
                    if info.isreg():
                        with open(path, "rb") as handle:
                            tar.addfile(info, handle)
                        files += 1
                        size += info.size
                    elif info.isdir() or info.issym():
                        tar.addfile(info)
            process.close_stdin()
        except OSError as exc:
            raise ContextError(
                f"copying {local_dir} to {ssh.target.display()}:{remote_dir} failed: {exc}",
                context=ssh.context,
                hint="check the remote has free disk space and the connection is up",
            ) from exc
        status = process.wait(COPY_TIMEOUT_S)
        stderr = process.stderr.read().decode("utf-8", "replace").strip()
    if status != 0:
        raise ContextError(
            f"copying the project to {ssh.target.display()}:{remote_dir} failed "
            f"(tar exited {status}): {stderr.splitlines()[-1] if stderr else 'no message'}",
            context=ssh.context,
            hint="check that the SSH user may write there and that tar is installed",
        )
    seconds = time.monotonic() - started
    log.info("copied %d files (%d bytes) to %s in %.2f s", files, size, remote_dir, seconds)
    return CopyResult(remote_dir, files, size, seconds)


def _walk(root: Path) -> Iterator[Path]:
    for current, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        here = Path(current)
        for name in dirs:
            yield here / name
        for name in sorted(names):
            yield here / name
