"""From a project folder and its spec to the :class:`ImageRecipe` its image is built from.

The base image and its package managers come from ``environment.base``; the build scripts and
package lists are the files at the project's root, read as they are but only as regular files
inside the project (``workbench.project_files``: a symlinked ``apt.txt`` would copy a file of this
machine into the image). The uid and gid are those of the user who owns the project's files on the
context's host (this machine, or the SSH user).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from workbench.container.build_context import ImageRecipe
from workbench.errors import SpecError
from workbench.project_files import BUILD_INPUT_MAX_BYTES, read_project_text
from workbench.projects import image_reference
from workbench.spec.models import ProjectSpec

BUILD_FILES = ("preBuild.bash", "apt.txt", "requirements.txt", "postBuild.bash")


def recipe_for(
    project_dir: Path, spec: ProjectSpec, *, host_uid: int, host_gid: int
) -> ImageRecipe:
    base = spec.environment.base
    image = image_reference(base.model_dump())
    if not image:
        raise SpecError(
            "names no base image",
            file=str(project_dir / ".project" / "spec.yaml"),
            field="environment.base.image",
            expected="a base image such as nvcr.io/nvidia/ai-workbench/python-basic:1.0.8",
        )
    managers = {m.name: m for m in base.package_managers}
    # A spec that lists no package managers is a hand-written one; assume a Debian-like base.
    apt = not managers or "apt" in managers
    pip_binary: str | None = "pip"
    if managers:
        pip = managers.get("pip")
        pip_binary = (pip.binary_path or "pip") if pip is not None else None
    texts = {name: _read(project_dir, name) for name in BUILD_FILES}
    return ImageRecipe(
        project_name=spec.meta.name or project_dir.name,
        base_image=image,
        apt=apt,
        pip_binary=pip_binary,
        pre_build=texts["preBuild.bash"],
        apt_txt=texts["apt.txt"],
        requirements_txt=texts["requirements.txt"],
        post_build=texts["postBuild.bash"],
        host_uid=host_uid,
        host_gid=host_gid,
    )


def without_sudo(recipe: ImageRecipe) -> ImageRecipe:
    """The same recipe for a base that has no sudo: build scripts then run as root."""
    return replace(recipe, base_has_sudo=False)


def _read(project_dir: Path, name: str) -> str:
    text = read_project_text(project_dir, name, max_bytes=BUILD_INPUT_MAX_BYTES)
    # Universal newlines, as reading in text mode gave: the same inputs keep the same image tag.
    return "" if text is None else text.replace("\r\n", "\n").replace("\r", "\n")
