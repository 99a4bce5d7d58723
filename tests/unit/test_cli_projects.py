"""Projects, packages and variables through ``nvwb``: real git, real files, in-process CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.cli import nvwb

LAYOUT = [
    "code",
    "data",
    "models",
    ".project/spec.yaml",
    "apt.txt",
    "requirements.txt",
    "preBuild.bash",
    "postBuild.bash",
    "variables.env",
]


def _create(env: dict[str, str], name: str = "hello") -> Path:
    result = nvwb(
        env,
        "create",
        "project",
        name,
        "--base-environment-id",
        "debian-test",
        "--description",
        "a test",
        "-o",
        "json",
    )
    assert result.code == 0, result.err
    return Path(result.json()["path"])


def test_create_project_has_the_ai_workbench_layout_and_is_a_git_repo(wb_env):
    project = _create(wb_env)
    assert project.parent == Path(wb_env["NVWB_PROJECTS_DIR"])
    for entry in LAYOUT:
        assert (project / entry).exists(), entry
    log = subprocess.run(
        ["git", "-C", str(project), "log", "--oneline"], check=True, capture_output=True, text=True
    ).stdout
    assert log.strip(), "the new project has a first commit"
    assert nvwb(wb_env, "-p", "hello", "validate", "project-spec").code == 0
    listed = nvwb(wb_env, "list", "projects", "-o", "json").json()
    assert [(p["name"], p["description"]) for p in listed] == [("hello", "a test")]


def test_bases_list_real_public_ones_and_the_local_test_base(wb_env):
    ids = {b["id"] for b in nvwb(wb_env, "list", "bases", "-o", "json").json()}
    assert {"python-basic", "pytorch", "debian-test"} <= ids


@pytest.mark.parametrize(("name", "code"), [("../x", 2), ("", 2), ("two words", 2)])
def test_unsafe_project_names_touch_nothing(wb_env, name, code):
    result = nvwb(wb_env, "create", "project", name, "--base-environment-id", "debian-test")
    assert result.code == code
    projects = Path(wb_env["NVWB_PROJECTS_DIR"])
    assert not projects.exists() or not any(projects.iterdir())


def test_unknown_base_and_duplicate_name(wb_env):
    assert nvwb(wb_env, "create", "project", "x", "--base-environment-id", "nope").code == 4
    _create(wb_env, "dup")
    again = nvwb(wb_env, "create", "project", "dup", "--base-environment-id", "debian-test")
    assert again.code == 5


def test_packages_and_variables_from_inside_the_project(wb_env):
    project = _create(wb_env)
    assert nvwb(wb_env, "add", "package", "apt", "jq", "tree", cwd=project / "code").code == 0
    assert nvwb(wb_env, "add", "package", "pip", "numpy>=1.26", cwd=project).code == 0
    dup = nvwb(wb_env, "add", "package", "apt", "jq", cwd=project)
    assert dup.code == 5 and "already" in dup.err
    rows = nvwb(wb_env, "list", "packages", "-o", "json", cwd=project).json()
    assert [(r["manager"], r["name"]) for r in rows] == [
        ("apt", "jq"),
        ("apt", "tree"),
        ("pip", "numpy"),
    ]
    assert nvwb(wb_env, "remove", "package", "apt", "tree", cwd=project).code == 0
    assert "tree" not in (project / "apt.txt").read_text()

    assert nvwb(wb_env, "create", "environment-variable", "MODE", "fast", cwd=project).code == 0
    piped = nvwb(
        wb_env,
        "create",
        "environment-variable",
        "GREETING",
        "-",
        cwd=project,
        stdin="hello world\n",
    )
    assert piped.code == 0
    assert "GREETING=hello world" in (project / "variables.env").read_text()
    leak = nvwb(wb_env, "create", "environment-variable", "HF_TOKEN", "abc", cwd=project)
    assert leak.code == 2 and "secret" in leak.err  # never into a plain file by accident
    assert "abc" not in (project / "variables.env").read_text()
    assert nvwb(wb_env, "delete", "environment-variable", "MODE", cwd=project).code == 0
    names = [
        v["name"]
        for v in nvwb(wb_env, "list", "environment-variables", "-o", "json", cwd=project).json()
    ]
    assert "MODE" not in names and "GREETING" in names


def test_delete_project_only_what_workbench_made(wb_env, tmp_path):
    project = _create(wb_env)
    assert nvwb(wb_env, "delete", "project", "hello").code == 130  # no terminal, no --yes
    assert project.exists()
    assert nvwb(wb_env, "delete", "project", "hello", "--yes").code == 0
    assert not project.exists()

    by_hand = Path(wb_env["NVWB_PROJECTS_DIR"]) / "mine"
    (by_hand / ".project").mkdir(parents=True)
    (by_hand / ".project" / "spec.yaml").write_text("specVersion: v2\n")
    refused = nvwb(wb_env, "delete", "project", str(by_hand), "--yes")
    assert refused.code == 10 and by_hand.exists()


def test_clone_a_project_from_a_local_repository(wb_env, tmp_path):
    source = _create(wb_env, "origin")
    result = nvwb(wb_env, "clone", "project", str(source), str(tmp_path / "copy"), "-o", "json")
    assert result.code == 0, result.err
    assert (tmp_path / "copy" / ".project" / "spec.yaml").is_file()
    not_a_project = tmp_path / "plain"
    subprocess.run(["git", "init", "-q", str(not_a_project)], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(not_a_project),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
        check=True,
    )
    bad = nvwb(wb_env, "clone", "project", str(not_a_project), str(tmp_path / "bad"))
    assert bad.code != 0 and not (tmp_path / "bad").exists()
