"""The command lines that open an editor on a project: on its context, or in its container.

VS Code (and Cursor, built on it) open a folder on an SSH host with ``--remote
ssh-remote+HOST PATH`` and a running container with Dev Containers' ``attached-container`` URI,
whose JSON names the container and, for a remote engine, ``ssh://HOST`` as its Docker host. Zed
opens ``ssh://HOST/PATH``. HOST is the context's entry in Workbench's SSH config
(``nvwb-<context>``, ``workbench.ssh_entry``), so any editor that reads ``~/.ssh/config``
(JetBrains Gateway too: pick the host in its list) reaches the context with the pinned host key.

The container's name and the project's folders go into argv elements (and JSON), never through a
shell.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.errors import InvalidValueError

EDITORS = {
    "code": "VS Code",
    "cursor": "Cursor",
    "zed": "Zed",
}
VSCODE_LIKE = ("code", "cursor")


def host_alias(context: str) -> str:
    return "nvwb-" + context


def attached_container_uri(container: str, workdir: str, *, ssh_host: str | None) -> str:
    """Dev Containers' URI for a running container (on ``ssh_host``'s engine when given)."""
    config: dict[str, Any] = {"containerName": "/" + container}
    if ssh_host is not None:
        config["settings"] = {"host": f"ssh://{ssh_host}"}
    encoded = json.dumps(config, separators=(",", ":")).encode("utf-8").hex()
    return f"vscode-remote://attached-container+{encoded}{workdir}"


def editor_argv(
    editor: str,
    target: Any,
    *,
    container: bool,
    local_project: Path,
) -> list[str]:
    """The command that opens ``editor`` for the service's ``AttachTarget``.

    ``container``: in the running container (Dev Containers); else the project's folder on
    the context (the laptop's own folder for the local context)."""
    if editor not in EDITORS:
        raise InvalidValueError("--editor", f"{editor!r} is not one of {', '.join(EDITORS)}")
    alias = host_alias(target.context) if target.remote else None
    if container:
        if editor not in VSCODE_LIKE:
            raise InvalidValueError(
                "--container", f"{EDITORS[editor]} cannot attach to a container; open the folder"
            )
        if not target.container:
            raise InvalidValueError("--container", "the project has no container here")
        uri = attached_container_uri(target.container, target.workdir, ssh_host=alias)
        return [editor, "--folder-uri", uri]
    folder = str(target.project_dir) if target.remote else str(local_project)
    if alias is None:
        return [editor, folder]
    if editor == "zed":
        return [editor, f"ssh://{alias}{folder}"]
    return [editor, "--remote", f"ssh-remote+{alias}", folder]
