"""Spec edits through ``nvwb`` on copies of AI Workbench specs (ours and the public corpus):
only the right lines change."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

from tests.support.cli import nvwb
from tests.support.corpus import OWN_SPECS, missing_corpus, spec_params


def _project_from(fixture: Path, root: Path) -> Path:
    project = root / fixture.stem
    (project / ".project").mkdir(parents=True)
    shutil.copyfile(fixture, project / ".project" / "spec.yaml")
    return project


def _diff(before: bytes, after: bytes) -> tuple[list[str], list[str]]:
    removed, added = [], []
    for line in difflib.ndiff(before.decode().splitlines(), after.decode().splitlines()):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


@pytest.mark.parametrize("fixture", spec_params())
def test_update_shared_memory_changes_only_its_line(wb_env, tmp_path, fixture):
    if fixture is None:
        missing_corpus()
    project = _project_from(fixture, tmp_path)
    spec = project / ".project" / "spec.yaml"
    before = spec.read_bytes()
    validated = nvwb(wb_env, "-p", str(project), "validate", "project-spec", "-o", "json")
    assert validated.code == 0, validated.err
    result = nvwb(
        wb_env,
        "-p",
        str(project),
        "update",
        "resources",
        "--shared-memory-mb",
        "2048",
        "-o",
        "json",
    )
    assert result.code == 0, result.err
    assert result.json()["shared_memory_mb"] == 2048
    removed, added = _diff(before, spec.read_bytes())
    if any("sharedMemoryMB:" in line for line in removed):
        assert len(removed) == 1 and len(added) == 1
        assert added[0].strip() == "sharedMemoryMB: 2048"
        assert removed[0].split(":")[0] == added[0].split(":")[0]  # same indentation
    else:  # absent before: only the lines it needs are added
        assert removed == [] and 1 <= len(added) <= 3
        assert any(line.strip() == "sharedMemoryMB: 2048" for line in added)
    # and back: listing reads what was written
    listed = nvwb(wb_env, "-p", str(project), "list", "resources", "-o", "json").json()
    assert listed["shared_memory_mb"] == 2048


@pytest.mark.parametrize("fixture", OWN_SPECS, ids=lambda p: p.stem)
def test_mount_and_app_round_trip_through_the_cli(wb_env, tmp_path, fixture):
    project = _project_from(fixture, tmp_path)
    spec = project / ".project" / "spec.yaml"
    before = spec.read_bytes()
    p = ["-p", str(project)]
    assert nvwb(wb_env, *p, "create", "mount", "volume", "/cache/", "--description", "c").code == 0
    targets = [m["target"] for m in nvwb(wb_env, *p, "list", "mounts", "-o", "json").json()]
    assert "/cache/" in targets
    created = nvwb(
        wb_env,
        *p,
        "create",
        "app",
        "web",
        "--start-cmd",
        "python3 -m http.server 9000",
        "--health-check-cmd",
        "curl -fs http://localhost:9000/",
        "--webapp-port",
        "9000",
    )
    assert created.code == 0, created.err
    apps = {a["name"]: a for a in nvwb(wb_env, *p, "list", "apps", "-o", "json").json()}
    assert apps["web"]["port"] == "9000" and apps["web"]["class"] == "webapp"
    assert nvwb(wb_env, *p, "delete", "app", "web").code == 0
    assert nvwb(wb_env, *p, "delete", "mount", "/cache/").code == 0
    assert spec.read_bytes() == before


def test_a_bad_edit_names_the_problem_and_writes_nothing(wb_env, tmp_path):
    project = _project_from(OWN_SPECS[-1], tmp_path)
    spec = project / ".project" / "spec.yaml"
    before = spec.read_bytes()
    result = nvwb(wb_env, "-p", str(project), "update", "resources", "--gpus", "-1")
    assert result.code == 2 and "gpu" in result.err.lower()
    dup = nvwb(wb_env, "-p", str(project), "create", "mount", "project", "/elsewhere/")
    assert dup.code != 0
    assert spec.read_bytes() == before


def test_an_invalid_spec_names_file_line_and_field(wb_env, tmp_path):
    project = _project_from(OWN_SPECS[-1], tmp_path)
    spec = project / ".project" / "spec.yaml"
    text = spec.read_text().replace("sharedMemoryMB:", "sharedMemoryMB: lots #", 1)
    if "sharedMemoryMB" not in text:
        pytest.skip("fixture has no sharedMemoryMB")
    spec.write_text(text)
    result = nvwb(wb_env, "-p", str(project), "validate", "project-spec", "-o", "json")
    assert result.code == 3
    error = result.json()["error"]
    assert error["field"] == "execution.resources.sharedMemoryMB"
    assert error["file"].endswith("spec.yaml") and isinstance(error["line"], int)
    assert spec.read_text() == text


def test_a_folder_that_is_not_a_project(wb_env, tmp_path):
    result = nvwb(wb_env, "-p", str(tmp_path), "list", "mounts")
    assert result.code == 4 and "not a project" in result.err


def test_no_project_selected_outside_a_project(wb_env, tmp_path):
    result = nvwb(wb_env, "list", "mounts", cwd=tmp_path)
    assert result.code == 2 and "no project selected" in result.err
