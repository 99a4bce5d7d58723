"""Building a project's image on a context's engine: live log, progress, a kept log, clear failures.

The tag is a hash of the build inputs (``build_context``), so an image that already exists under
it is used as it is: nothing changed, nothing rebuilt. The log streams to a callback line by line
and into ``build.log`` in the project's state dir (the previous one is kept as ``build.log.1``).
A failed build raises :class:`BuildFailed` naming the step that broke, why (where the log says),
what to do, and the tail of that step's output.

A base without sudo is found out by the build itself (the sudo step says so); the build is then
redone with the scripts run as root. Either tag counts as built afterwards.
"""

from __future__ import annotations

import collections
import io
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
import requests.exceptions

from workbench.container import build_context as bc
from workbench.container.build_context import BuildContext, ImageRecipe
from workbench.container.recipe import without_sudo
from workbench.errors import ContextError, WorkbenchError
from workbench.paths import open_private, private_dir

log = logging.getLogger(__name__)

BUILD_LOG = "build.log"
BUILD_TIMEOUT_S = 3 * 3600
TAIL_LINES = 15
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # the engine colours a step's stderr red
_DOCKER_STEP = re.compile(r"^Step (\d+)/(\d+) :")
_APT_MISSING = re.compile(
    r"E: Unable to locate package (\S+)|E: Package '([^']+)' has no installation candidate"
)


@dataclass(frozen=True)
class BuildProgress:
    """Where a build is: the Workbench step running, its place among the steps, the log line."""

    step: str | None
    step_number: int  # 1-based among ``step_count``; 0 before the first marker
    step_count: int
    line: str
    docker_step: tuple[int, int] | None = None  # Dockerfile instruction n of m

    @property
    def fraction(self) -> float:
        if self.docker_step is not None:
            done, total = self.docker_step
            return max(0.0, min(1.0, (done - 1) / total)) if total else 0.0
        return (self.step_number - 1) / self.step_count if self.step_count else 0.0


ProgressCallback = Callable[[BuildProgress], None]


@dataclass(frozen=True)
class BuildOutcome:
    tag: str
    built: bool  # False: an image with these inputs was already there
    log_path: Path | None
    seconds: float = 0.0


class BuildFailed(WorkbenchError):
    """The image build stopped at a step; carries the step, the log's tail and where the log is."""

    exit_code = 8
    code = "build_failed"

    def __init__(
        self,
        step: str | None,
        reason: str,
        *,
        tail: list[str],
        log_path: Path | None,
        hint: str | None = None,
    ) -> None:
        where = f"at step {step}" if step else "before any step ran"
        lines = [f"the image build failed {where}: {reason}"]
        if tail:
            lines.append("last lines of the build log:")
            lines += [f"  | {line}" for line in tail]
        if log_path is not None:
            lines.append(f"full log: {log_path}")
        super().__init__("\n".join(lines), hint=hint)
        self.step = step
        self.reason = reason
        self.tail = tail
        self.log_path = log_path

    def details(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "reason": self.reason,
            "tail": self.tail,
            "log_path": str(self.log_path) if self.log_path else None,
        }


def image_exists(client: Any, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def existing_tag(client: Any, recipe: ImageRecipe) -> str | None:
    """The tag of an image already built from ``recipe`` (with or without sudo), if any."""
    for candidate in (recipe, without_sudo(recipe)):
        tag = bc.render(candidate).tag
        if image_exists(client, tag):
            return tag
    return None


def ensure_image(
    client: Any,
    recipe: ImageRecipe,
    *,
    log_dir: Path,
    full_build: bool = False,
    on_progress: ProgressCallback | None = None,
) -> BuildOutcome:
    """The image for ``recipe``: found by its tag, or built now (``full_build``: without cache)."""
    if not full_build:
        found = existing_tag(client, recipe)
        if found is not None:
            log.info("image %s is up to date", found)
            return BuildOutcome(found, built=False, log_path=None)
    private_dir(log_dir)
    log_path = log_dir / BUILD_LOG
    started = time.monotonic()
    try:
        return _build(
            client,
            bc.render(recipe),
            log_path=log_path,
            full_build=full_build,
            on_progress=on_progress,
            started=started,
        )
    except BuildFailed as exc:
        if exc.step != bc.STEP_SUDO or not any(bc.NO_SUDO_MESSAGE in ln for ln in exc.tail):
            raise
        log.info(
            "the base of %s has no sudo; building with the scripts run as root", recipe.base_image
        )
    return _build(
        client,
        bc.render(without_sudo(recipe)),
        log_path=log_path,
        full_build=full_build,
        on_progress=on_progress,
        started=started,
        append=True,
    )


def _build(
    client: Any,
    context: BuildContext,
    *,
    log_path: Path,
    full_build: bool,
    on_progress: ProgressCallback | None,
    started: float,
    append: bool = False,
) -> BuildOutcome:
    if not append and log_path.exists():
        log_path.replace(log_path.with_name(BUILD_LOG + ".1"))
    steps = context.steps
    step: str | None = None
    step_lines: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    error: str | None = None
    with open_private(log_path, append=append) as log_file:
        log_file.write(
            f"# workbench build of {context.tag} ({time.strftime('%Y-%m-%d %H:%M:%S')})\n"
        )
        try:
            for line, chunk_error in _stream(client, context, full_build):
                log_file.write(line + "\n")
                log_file.flush()
                if chunk_error is not None:
                    error = chunk_error
                    step_lines.append(line)
                    continue
                new_step = bc.step_from_log_line(line)
                if new_step is not None and new_step != step:
                    step = new_step
                    step_lines.clear()
                step_lines.append(line)
                if on_progress is not None:
                    on_progress(_progress(line, step, steps))
        except (requests.exceptions.RequestException, docker.errors.APIError) as exc:
            log_file.write(f"# the build stopped: {exc}\n")
            raise _interrupted(exc, step, list(step_lines), log_path) from exc
        except ContextError as exc:
            log_file.write(f"# the build stopped: {exc}\n")
            raise
        if error is None:
            log_file.write(f"# built {context.tag} in {time.monotonic() - started:.1f} s\n")
    if error is not None:
        raise _failure(step, error, list(step_lines), log_path)
    return BuildOutcome(
        context.tag, built=True, log_path=log_path, seconds=time.monotonic() - started
    )


def _stream(
    client: Any, context: BuildContext, full_build: bool
) -> Iterator[tuple[str, str | None]]:
    """(log line, error text or None) for each line the engine sends."""
    chunks = client.api.build(
        fileobj=io.BytesIO(bc.context_tar(context.files)),
        custom_context=True,
        tag=context.tag,
        decode=True,
        rm=True,
        forcerm=True,  # intermediate containers go even when a step fails
        nocache=full_build,
        timeout=BUILD_TIMEOUT_S,
    )
    pending = ""
    for chunk in chunks:
        if "error" in chunk:
            detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
            text = str(detail).strip()
            yield text, text
            continue
        text = pending + str(chunk.get("stream") or chunk.get("status") or "")
        *complete, pending = text.split("\n")
        for line in complete:
            yield _ANSI.sub("", line.rstrip("\r")), None
    if pending:
        yield _ANSI.sub("", pending.rstrip("\r")), None


def _progress(line: str, step: str | None, steps: tuple[str, ...]) -> BuildProgress:
    match = _DOCKER_STEP.match(line)
    docker_step = (int(match.group(1)), int(match.group(2))) if match else None
    number = steps.index(step) + 1 if step in steps else 0
    return BuildProgress(step, number, len(steps), line, docker_step)


def _failure(step: str | None, error: str, tail: list[str], log_path: Path) -> BuildFailed:
    step = step or bc.STEP_BASE
    text = "\n".join(tail)
    if step == bc.STEP_BASE:
        return BuildFailed(
            step,
            f"the base image could not be used: {error}",
            tail=tail,
            log_path=log_path,
            hint="check environment.base (registry and image) in .project/spec.yaml; for a "
            "private registry run 'docker login REGISTRY' on the context's host",
        )
    if step == bc.STEP_APT:
        missing = _APT_MISSING.search(text)
        package = (missing.group(1) or missing.group(2)) if missing else None
        reason = f"apt cannot install '{package}'" if package else error
        return BuildFailed(
            step,
            reason,
            tail=tail,
            log_path=log_path,
            hint="fix or remove that line of apt.txt ('nvwb remove package apt NAME'); "
            "'apt-cache search NAME' in the base image finds the right name",
        )
    if step == bc.STEP_REQUIREMENTS:
        return BuildFailed(
            step,
            error,
            tail=tail,
            log_path=log_path,
            hint="fix requirements.txt ('nvwb remove package pip NAME'); the tail shows what "
            "pip said",
        )
    if step in (bc.STEP_PRE_BUILD, bc.STEP_POST_BUILD):
        return BuildFailed(
            step,
            error,
            tail=tail,
            log_path=log_path,
            hint=f"{step} exited with an error; run it by hand in the base image to debug",
        )
    return BuildFailed(
        step,
        error,
        tail=tail,
        log_path=log_path,
        hint="see the full log; 'nvwb build --full-build' rebuilds from scratch",
    )


def _interrupted(exc: Exception, step: str | None, tail: list[str], log_path: Path) -> BuildFailed:
    return BuildFailed(
        step,
        f"the connection to the Docker engine broke during the build: {exc}",
        tail=tail,
        log_path=log_path,
        hint="check the context is still reachable, then run 'nvwb build' again",
    )
