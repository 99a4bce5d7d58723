"""Project files that feed builds and commands are read only as regular files inside the project.

A cloned repository can ship a symlink (``apt.txt -> ~/.ssh/id_ed25519``), and a remote can sync
one; following it would copy a file of this machine into an image or a container. Every reader
(the recipe's build inputs, ``variables.env``, the spec) goes through ``workbench.project_files``.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from tests.support.capabilities import without_file_read_override
from workbench.build_inputs import list_packages, list_variables
from workbench.container.recipe import BUILD_FILES, recipe_for
from workbench.errors import SpecError
from workbench.spec import SpecDocument

SPEC = """\
specVersion: v2
meta:
    name: victim
environment:
    base:
        registry: nvcr.io
        image: nvidia/ai-workbench/python-basic:1.0.8
"""
SECRET = "PRIVATE KEY of this laptop\n"


def _project(root: Path) -> Path:
    project = root / "victim"
    (project / ".project").mkdir(parents=True)
    (project / ".project" / "spec.yaml").write_text(SPEC)
    return project


def _laptop_file(root: Path) -> Path:
    secret = root / "outside" / "id_ed25519"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    return secret


def _recipe(project: Path) -> object:
    spec = SpecDocument.load(project / ".project" / "spec.yaml").spec
    return recipe_for(project, spec, host_uid=1000, host_gid=1000)


@pytest.mark.parametrize("name", BUILD_FILES)
def test_a_symlinked_build_input_is_refused_naming_the_file(tmp_path: Path, name: str) -> None:
    project = _project(tmp_path)
    (project / name).symlink_to(_laptop_file(tmp_path))
    with pytest.raises(SpecError) as info:
        _recipe(project)
    assert info.value.file is not None and info.value.file.endswith(name)
    assert "symbolic link" in info.value.reason
    assert SECRET.strip() not in str(info.value)


def test_a_symlink_pointing_inside_the_project_is_refused_too(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "code").mkdir()
    (project / "code" / "apt.txt").write_text("curl\n")
    (project / "apt.txt").symlink_to("code/apt.txt")
    with pytest.raises(SpecError, match="symbolic link"):
        _recipe(project)


def test_regular_build_inputs_are_read_and_missing_ones_are_empty(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "apt.txt").write_text("curl\n")
    recipe = _recipe(project)
    assert recipe.apt_txt == "curl\n"  # type: ignore[attr-defined]
    assert recipe.pre_build == ""  # type: ignore[attr-defined]


def test_a_project_reached_through_a_symlinked_folder_is_fine(tmp_path: Path) -> None:
    # The user's own choice of where projects live is trusted; only what is inside is checked.
    project = _project(tmp_path)
    (project / "apt.txt").write_text("jq\n")
    alias = tmp_path / "alias"
    alias.symlink_to(project)
    assert _recipe(alias).apt_txt == "jq\n"  # type: ignore[attr-defined]


def test_a_directory_where_a_build_input_should_be_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "requirements.txt").mkdir()
    with pytest.raises(SpecError, match="not a regular file"):
        _recipe(project)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    project = _project(tmp_path)
    os.mkfifo(project / "postBuild.bash")
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            _recipe(project)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():  # unblock the reader so the test run can end
        with open(project / "postBuild.bash", "w"):
            pass
        worker.join(5)
        pytest.fail("reading a FIFO build input blocked")
    assert isinstance(outcome[0], SpecError)
    assert "not a regular file" in outcome[0].reason


def test_an_oversized_build_input_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path)
    with open(project / "requirements.txt", "wb") as fh:
        fh.truncate(64 * 1024 * 1024)
    with pytest.raises(SpecError, match="larger than"):
        _recipe(project)


def test_a_symlinked_variables_env_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "variables.env").symlink_to(_laptop_file(tmp_path))
    with pytest.raises(SpecError, match="symbolic link"):
        list_variables(project)


def test_a_symlinked_package_list_is_refused_when_listed(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "apt.txt").symlink_to(_laptop_file(tmp_path))
    with pytest.raises(SpecError, match="symbolic link"):
        list_packages(project, "apt")


def test_a_symlinked_spec_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path)
    real = tmp_path / "elsewhere.yaml"
    real.write_text(SPEC)
    spec = project / ".project" / "spec.yaml"
    spec.unlink()
    spec.symlink_to(real)
    with pytest.raises(SpecError, match="symbolic link"):
        SpecDocument.load(spec)


def test_a_symlinked_project_folder_component_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    (project / ".project").rename(elsewhere)
    (project / ".project").symlink_to(elsewhere)
    with pytest.raises(SpecError, match="symbolic link"):
        SpecDocument.load(project / ".project" / "spec.yaml")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_an_unreadable_build_input_names_the_file(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "apt.txt").write_text("curl\n")
    (project / "apt.txt").chmod(0)
    with without_file_read_override(), pytest.raises(SpecError) as info:
        _recipe(project)  # as root too: the capability to read anything is dropped here
    assert info.value.file is not None and info.value.file.endswith("apt.txt")
