"""Projects: create from the catalog, clone, list, find and delete, with git really run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.support.corpus import own_spec, shared_spec
from workbench.errors import (
    AlreadyExistsError,
    CommandFailed,
    ConflictError,
    InvalidValueError,
    NotFoundError,
    SpecError,
    WorkbenchError,
)
from workbench.paths import Paths
from workbench.projects import (
    MARKER_RELATIVE,
    SPEC_RELATIVE,
    NotAProjectError,
    clone_project,
    create_project,
    delete_project,
    find_project,
    get_base,
    list_projects,
    load_catalog,
)


def git(repo: Path, *args: str, env: dict[str, str]) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    ).stdout


def load_yaml(path: Path) -> dict:
    return YAML(typ="safe").load(path.read_text())


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def git_env(wb_env: dict[str, str]) -> dict[str, str]:
    """``wb_env`` with no git identity anywhere: creation must still commit."""
    return {**wb_env, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def make_repo(
    folder: Path, env: dict[str, str], spec_fixture: Path | None = None, *, spec_text: str = ""
) -> Path:
    """A plain git repository (made with git, not Workbench) holding an AI Workbench spec."""
    folder.mkdir(parents=True)
    git(folder, "init", "--quiet", "--initial-branch=main", env=env)
    if spec_fixture or spec_text:
        (folder / ".project").mkdir()
        text = spec_fixture.read_text() if spec_fixture else spec_text
        (folder / SPEC_RELATIVE).write_text(text)
    (folder / "README.md").write_text("hello\n")
    git(folder, "add", "--all", env=env)
    git(
        folder,
        "-c",
        "user.name=T",
        "-c",
        "user.email=t@example.com",
        "commit",
        "--quiet",
        "-m",
        "init",
        env=env,
    )
    return folder


# -- the catalog -----------------------------------------------------------------------------


def test_catalog_holds_the_real_bases_and_the_local_test_base() -> None:
    catalog = {b.id: b for b in load_catalog()}
    assert {"python-basic", "python-cuda122", "pytorch", "rapids", "debian-test"} <= set(catalog)
    assert catalog["python-basic"].image_ref.startswith("nvcr.io/nvidia/ai-workbench/python-basic:")
    assert catalog["pytorch"].image_ref.startswith("nvcr.io/nvidia/ai-workbench/pytorch:")
    assert catalog["debian-test"].image_ref == "workbench-test-base:bookworm"
    for base in catalog.values():
        for key in ("registry", "image", "name", "description", "cuda_version", "os", "os_distro"):
            assert key in base.base, (base.id, key)
        assert base.base["package_managers"], base.id
        assert all(pm["binary_path"].startswith("/") for pm in base.base["package_managers"])
        assert "user_info" in base.base
    assert any(app["name"] == "jupyterlab" for app in catalog["python-basic"].base["apps"])
    assert catalog["pytorch"].requires_gpu
    assert not catalog["debian-test"].requires_gpu


def test_catalog_bases_match_the_real_specs_they_came_from() -> None:
    real = load_yaml(shared_spec("Akhil-Raghu__my-first-project"))["environment"]["base"]
    assert get_base("python-basic").base == real


def test_unknown_base_lists_the_known_ones(paths: Paths) -> None:
    with pytest.raises(NotFoundError) as err:
        create_project(paths, "demo", "no-such-base")
    assert err.value.hint and "python-basic" in err.value.hint
    assert leftovers(paths.projects_dir) == []


# -- create ----------------------------------------------------------------------------------


def test_create_makes_the_ai_workbench_layout(paths: Paths, git_env: dict[str, str]) -> None:
    project = create_project(paths, "demo", "pytorch", "My first project", env=git_env)
    root = paths.projects_dir / "demo"
    assert project.path == root.resolve()
    assert project.name == "demo"
    assert project.description == "My first project"
    assert project.base_image == get_base("pytorch").image_ref
    assert project.created_by_workbench

    for folder in ("code", "models", "data", "data/scratch"):
        assert (root / folder / ".gitkeep").is_file()
    for name in ("apt.txt", "requirements.txt", "variables.env", ".gitignore", "README.md"):
        assert (root / name).is_file(), name
    for script in ("preBuild.bash", "postBuild.bash"):
        assert os.access(root / script, os.X_OK), script
    assert "# demo" in (root / "README.md").read_text()

    spec = load_yaml(root / SPEC_RELATIVE)
    assert spec["specVersion"] == "v2"
    assert spec["meta"]["name"] == "demo"
    assert spec["meta"]["image"] == "project-demo"
    assert spec["meta"]["description"] == "My first project"
    assert spec["meta"]["createdOn"].endswith("Z")
    assert spec["environment"]["base"] == get_base("pytorch").base
    assert [(e["path"], e["storage"]) for e in spec["layout"]] == [
        ("code/", "git"),
        ("models/", "gitlfs"),
        ("data/", "gitlfs"),
        ("data/scratch/", "gitignore"),
    ]
    assert spec["execution"]["mounts"][0] == {
        "type": "project",
        "target": "/project/",
        "description": "Project directory",
        "options": "rw",
    }
    assert spec["execution"]["resources"]["sharedMemoryMB"] == 1024
    assert spec["execution"]["resources"]["gpu"]["requested"] == 1  # pytorch wants a GPU
    assert spec["execution"]["secrets"] == []


def test_create_commits_everything_but_the_marker(paths: Paths, git_env: dict[str, str]) -> None:
    create_project(paths, "demo", "python-basic", env=git_env)
    root = paths.projects_dir / "demo"
    log = git(root, "log", "--format=%an <%ae>|%s", env=git_env).strip().splitlines()
    assert len(log) == 1
    assert log[0].startswith("Workbench <workbench@localhost>|Create project demo")
    assert git(root, "status", "--porcelain", "--ignored=no", env=git_env) == ""
    tracked = git(root, "ls-files", env=git_env).split()
    assert ".project/spec.yaml" in tracked
    assert "code/.gitkeep" in tracked
    assert MARKER_RELATIVE.as_posix() not in tracked
    assert (root / MARKER_RELATIVE).is_file()
    assert git(root, "branch", "--show-current", env=git_env).strip() == "main"


def test_create_uses_the_users_git_identity_when_there_is_one(
    paths: Paths, wb_env: dict[str, str]
) -> None:
    env = {**wb_env, "GIT_CONFIG_NOSYSTEM": "1"}
    Path(wb_env["HOME"], ".gitconfig").write_text(
        "[user]\n\tname = Ada\n\temail = ada@example.com\n"
    )
    create_project(paths, "demo", "debian-test", env=env)
    author = git(paths.projects_dir / "demo", "log", "--format=%an", env=env).strip()
    assert author == "Ada"


def test_created_spec_loads_with_the_spec_model(paths: Paths, git_env: dict[str, str]) -> None:
    spec_module = pytest.importorskip("workbench.spec")
    for base in ("python-basic", "rapids", "debian-test"):
        project = create_project(paths, f"p-{base}", base, env=git_env)
        doc = spec_module.SpecDocument.load(project.spec_path)
        assert doc.spec.meta.name == f"p-{base}"


@pytest.mark.parametrize("bad", ["", "../x", "two words", ".hidden", "a/b", "-rf"])
def test_bad_names_touch_nothing(paths: Paths, bad: str) -> None:
    with pytest.raises(InvalidValueError) as err:
        create_project(paths, bad, "python-basic")
    assert err.value.field == "name"
    assert not paths.projects_dir.exists()


def test_create_refuses_a_taken_name(paths: Paths, git_env: dict[str, str]) -> None:
    create_project(paths, "demo", "python-basic", env=git_env)
    with pytest.raises(AlreadyExistsError):
        create_project(paths, "demo", "pytorch", env=git_env)
    spec = load_yaml(paths.projects_dir / "demo" / SPEC_RELATIVE)
    assert spec["environment"]["base"]["name"] == "Python Basic"


def test_failed_create_leaves_nothing_behind(paths: Paths, git_env: dict[str, str]) -> None:
    with pytest.raises(WorkbenchError, match="git is not installed"):
        create_project(paths, "demo", "python-basic", env={**git_env, "PATH": "/nonexistent"})
    assert leftovers(paths.projects_dir) == []


# -- list and find ---------------------------------------------------------------------------


def test_list_projects(paths: Paths, git_env: dict[str, str]) -> None:
    assert list_projects(paths) == []
    create_project(paths, "beta", "python-basic", "B", env=git_env)
    create_project(paths, "alpha", "rapids", "A", env=git_env)
    (paths.projects_dir / "not-a-project").mkdir()
    broken = paths.projects_dir / "broken" / ".project"
    broken.mkdir(parents=True)
    (broken / "spec.yaml").write_text("meta: [unclosed\n")

    found = list_projects(paths)
    assert [p.name for p in found] == ["alpha", "beta", "broken"]
    alpha = found[0]
    assert alpha.description == "A"
    assert alpha.base_name == "RAPIDS with CUDA 12.0.1"
    assert alpha.base_image == "nvcr.io/nvidia/rapidsai/notebooks:24.06-cuda12.0-py3.11"
    assert found[2].problem and "spec.yaml" in found[2].problem
    data = alpha.to_dict()
    assert set(data) == {"name", "path", "description", "base", "created_by_workbench", "problem"}
    json.dumps([p.to_dict() for p in found])


def test_find_by_name_path_and_meta_name(paths: Paths, git_env: dict[str, str]) -> None:
    created = create_project(paths, "demo", "python-basic", env=git_env)
    assert find_project(paths, "demo") == created
    assert find_project(paths, str(created.path)) == created
    assert find_project(paths, created.path) == created

    repo = make_repo(paths.projects_dir / "services-example", git_env, own_spec("services"))
    by_meta = find_project(paths, "services-demo")  # meta.name differs from the folder's name
    assert by_meta.path == repo.resolve()
    assert not by_meta.created_by_workbench


def test_find_reports_missing_and_non_projects(paths: Paths, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as err:
        find_project(paths, "ghost")
    assert err.value.name == "ghost"
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(NotAProjectError) as not_project:
        find_project(paths, str(plain))
    assert str(not_project.value).startswith(
        f"{plain.resolve()} is not a project: no .project/spec.yaml"
    )
    with pytest.raises(InvalidValueError):
        find_project(paths, "bad name")


# -- clone -----------------------------------------------------------------------------------


def test_clone_a_real_spec_repository(
    paths: Paths, tmp_path: Path, git_env: dict[str, str]
) -> None:
    source = make_repo(tmp_path / "src" / "services-demo.git", git_env, own_spec("services"))
    project = clone_project(paths, str(source), env=git_env)
    assert project.path == (paths.projects_dir / "services-demo").resolve()
    assert project.name == "services-demo"
    assert project.base_image == "nvcr.io/nvidia/ai-workbench/python-cuda122:1.0.3"
    assert project.created_by_workbench
    assert git(project.path, "status", "--porcelain", env=git_env) == ""  # the marker is excluded
    assert git(project.path, "notes", "list", env=git_env) == ""  # none there, none needed
    assert leftovers(paths.projects_dir) == ["services-demo"]


def test_clone_into_a_named_or_given_destination(
    paths: Paths, tmp_path: Path, git_env: dict[str, str]
) -> None:
    source = make_repo(tmp_path / "src", git_env, own_spec("gpu-finetune"))
    named = clone_project(paths, str(source), "cudf", env=git_env)
    assert named.path == (paths.projects_dir / "cudf").resolve()
    elsewhere = clone_project(paths, str(source), tmp_path / "else" / "mine", env=git_env)
    assert elsewhere.path == (tmp_path / "else" / "mine").resolve()
    with pytest.raises(AlreadyExistsError):
        clone_project(paths, str(source), "cudf", env=git_env)


def test_clone_of_a_repository_without_a_spec_leaves_nothing(
    paths: Paths, tmp_path: Path, git_env: dict[str, str]
) -> None:
    source = make_repo(tmp_path / "just-code", git_env)
    with pytest.raises(SpecError, match=r"no \.project/spec\.yaml"):
        clone_project(paths, str(source), env=git_env)
    assert leftovers(paths.projects_dir) == []


def test_clone_of_a_broken_spec_leaves_nothing(
    paths: Paths, tmp_path: Path, git_env: dict[str, str]
) -> None:
    source = make_repo(tmp_path / "broken", git_env, spec_text="- just\n- a list\n")
    with pytest.raises(SpecError):
        clone_project(paths, str(source), env=git_env)
    assert leftovers(paths.projects_dir) == []


def test_clone_failure_is_a_command_failed(
    paths: Paths, tmp_path: Path, git_env: dict[str, str]
) -> None:
    with pytest.raises(CommandFailed) as err:
        clone_project(paths, str(tmp_path / "missing-repo"), env=git_env)
    assert err.value.exit_status != 0
    assert leftovers(paths.projects_dir) == []


# -- delete ----------------------------------------------------------------------------------


def test_delete_what_workbench_created(paths: Paths, git_env: dict[str, str]) -> None:
    create_project(paths, "demo", "python-basic", env=git_env)
    removed = delete_project(paths, "demo")
    assert removed == (paths.projects_dir / "demo").resolve()
    assert not removed.exists()


def test_delete_a_clone_workbench_made(
    paths: Paths, tmp_path: Path, git_env: dict[str, str]
) -> None:
    source = make_repo(tmp_path / "src" / "proj", git_env, own_spec("services"))
    project = clone_project(paths, str(source), env=git_env)
    delete_project(paths, str(project.path))
    assert not project.path.exists()
    assert source.exists()


def test_delete_refuses_what_workbench_did_not_make(
    paths: Paths, tmp_path: Path, git_env: dict[str, str]
) -> None:
    by_hand = make_repo(paths.projects_dir / "by-hand", git_env, own_spec("services"))
    with pytest.raises(ConflictError, match="not created by Workbench"):
        delete_project(paths, "by-hand")
    assert by_hand.exists()

    # A plain `git clone` of a Workbench project does not inherit the marker...
    create_project(paths, "made", "python-basic", env=git_env)
    plain_clone = tmp_path / "plain-clone"
    git(
        tmp_path,
        "clone",
        "--quiet",
        str(paths.projects_dir / "made"),
        str(plain_clone),
        env=git_env,
    )
    with pytest.raises(ConflictError):
        delete_project(paths, str(plain_clone))
    # ...and neither does a copied folder, whose marker names another path.
    copied = tmp_path / "copied"
    shutil.copytree(paths.projects_dir / "made", copied)
    with pytest.raises(ConflictError):
        delete_project(paths, str(copied))
    assert plain_clone.exists()
    assert copied.exists()
