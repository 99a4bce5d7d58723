"""Where Workbench keeps its files: every folder absolute, resolved once from the environment."""

from __future__ import annotations

import os
from pathlib import Path

from workbench.paths import Paths


def test_paths_from_a_relative_environment_are_absolute(tmp_path):
    paths = Paths.from_env(
        {
            "HOME": "home",
            "NVWB_CONFIG_DIR": "c",
            "NVWB_STATE_DIR": "./s",
            "NVWB_RUNTIME_DIR": "../r",
            "NVWB_PROJECTS_DIR": "p",
        },
        cwd=tmp_path,
    )
    assert paths.config_dir == tmp_path / "c"
    assert paths.state_dir == tmp_path / "s"
    assert paths.runtime_dir.resolve() == tmp_path.parent.resolve() / "r"
    assert paths.projects_dir == tmp_path / "p"
    xdg = Paths.from_env(
        {"HOME": "/h", "XDG_CONFIG_HOME": "x", "XDG_RUNTIME_DIR": "y"}, cwd=tmp_path
    )
    assert xdg.config_dir == tmp_path / "x" / "workbench"
    assert xdg.runtime_dir == tmp_path / "y" / "workbench"
    assert Paths.from_env({"HOME": "hh"}, cwd=tmp_path).state_dir.is_absolute()


def test_as_env_names_the_same_folders_from_anywhere(tmp_path):
    paths = Paths.from_env(
        {"HOME": "/h", "NVWB_CONFIG_DIR": "c", "NVWB_STATE_DIR": "s"}, cwd=tmp_path
    )
    elsewhere = Paths.from_env({"HOME": "/h", **paths.as_env()}, cwd=Path("/"))
    assert elsewhere == paths


def test_the_working_directory_is_not_asked_for_when_nothing_is_relative(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    here = os.getcwd()
    os.chdir(gone)
    try:
        gone.rmdir()  # Path.cwd() would now fail
        paths = Paths.from_env({"HOME": "/h", "NVWB_RUNTIME_DIR": "/r"})
    finally:
        os.chdir(here)
    assert paths.config_dir == Path("/h/.config/workbench")
