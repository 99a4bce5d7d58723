"""Building a project's image from the app, through the container runtime when it is there.

The container runtime (``workbench/container/``) is being built alongside the app, so the app
asks for it by import and disables its Build button, saying why, when it is missing. The build
itself is a plain blocking function: the environment pane runs it on a worker.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from workbench.paths import Paths
from workbench.registry import Context
from workbench.ssh.hostkeys import HostKeyPolicy

RUNTIME_COMING = "coming with the container runtime"
_NEEDED = (
    "workbench.container.builder",
    "workbench.container.recipe",
    "workbench.context_runtime",
)


def builder_available() -> bool:
    """Whether the container runtime offers an image builder with a progress callback."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in _NEEDED)
    except ImportError:
        return False


@dataclass(frozen=True)
class BuildLine:
    """One line of build output and where the build is (0..1, None when unknown)."""

    text: str
    fraction: float | None
    step: str | None


@dataclass(frozen=True)
class BuildResult:
    tag: str
    built: bool  # False: an image with these inputs already existed
    log_path: str | None


def build_image(
    *,
    paths: Paths,
    env: Mapping[str, str],
    context: Context,
    project_dir: Path,
    policy: HostKeyPolicy,
    passphrase_provider: Callable[[Path], str | None],
    on_line: Callable[[BuildLine], None],
) -> BuildResult:
    """Connect to ``context``, build (or find) the project's image, report each log line."""
    from workbench.container.builder import BuildProgress, ensure_image
    from workbench.container.recipe import recipe_for
    from workbench.context_runtime import open_runtime, state_dir_for
    from workbench.spec.document import SpecDocument

    spec = SpecDocument.load(project_dir / ".project" / "spec.yaml").spec
    runtime = open_runtime(context, env=env, policy=policy, passphrase_provider=passphrase_provider)
    with runtime:
        recipe = recipe_for(project_dir, spec, host_uid=runtime.host_uid, host_gid=runtime.host_gid)

        def progress(update: BuildProgress) -> None:
            on_line(BuildLine(update.line, update.fraction, update.step))

        outcome = ensure_image(
            runtime.docker,
            recipe,
            log_dir=state_dir_for(paths, context.name, spec.meta.name or project_dir.name),
            on_progress=progress,
        )
    return BuildResult(
        outcome.tag, outcome.built, str(outcome.log_path) if outcome.log_path else None
    )
