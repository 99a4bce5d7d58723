"""Git on the laptop's copy of a project, for real: a repository with a bare remote.

``nvwb commit|discard|fetch|pull|push|publish|history|list branches|create branch|
switch-branch`` against real git; the refusals (uncommitted changes before a switch, no upstream,
diverged branches, large files before a commit) say what to do and change nothing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.cli import nvwb
from workbench.paths import Paths
from workbench.projects import create_project

IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.org",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.org",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(root), **IDENTITY},
    )
    return done.stdout


@pytest.fixture
def env(wb_env: dict[str, str]) -> dict[str, str]:
    return {**wb_env, **IDENTITY}


@pytest.fixture
def project(paths: Paths, env: dict[str, str]) -> Path:
    return create_project(paths, "wbt-git", "python-basic", env=env).path


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    remote = tmp_path / "remote.git"
    subprocess.run(
        ["git", "init", "--bare", "--quiet", "--initial-branch=main", str(remote)], check=True
    )
    return remote


def test_commit_history_publish_push_fetch_pull_with_a_bare_remote(
    project: Path, bare: Path, env: dict[str, str], tmp_path: Path
) -> None:
    nothing = nvwb(env, "commit", "-m", "empty", cwd=project)
    assert nothing.code == 2 and "nothing to commit" in nothing.err

    (project / "code" / "train.py").write_text("print('train')\n")
    made = nvwb(env, "commit", "-m", "Add training", "-o", "json", cwd=project)
    assert made.code == 0, made.err
    assert git(project, "log", "-1", "--format=%s").strip() == "Add training"
    assert git(project, "status", "--porcelain") == ""

    history = nvwb(env, "history", "-n", "5", "-o", "json", cwd=project).json()
    assert history[0]["subject"] == "Add training" and history[0]["hash"] == made.json()["hash"]
    assert len(history) == 2  # and the project's first commit

    no_upstream = nvwb(env, "push", cwd=project)
    assert no_upstream.code == 2 and "no upstream" in no_upstream.err
    assert "publish" in no_upstream.err
    no_remote = nvwb(env, "fetch", cwd=project)
    assert no_remote.code == 2 and "no git remote" in no_remote.err

    published = nvwb(env, "publish", str(bare), "-o", "json", cwd=project)
    assert published.code == 0, published.err
    assert published.json()["upstream"] == "origin/main"
    assert git(bare, "log", "-1", "--format=%s", "main").strip() == "Add training"

    # Someone else pushes; fetch and pull bring it here.
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "--quiet", str(bare), str(other)], check=True)
    (other / "README.md").write_text("changed elsewhere\n")
    git(other, "commit", "-qam", "Elsewhere")
    git(other, "push", "-q")
    assert nvwb(env, "fetch", cwd=project).code == 0
    pulled = nvwb(env, "pull", cwd=project)
    assert pulled.code == 0, pulled.err
    assert (project / "README.md").read_text() == "changed elsewhere\n"

    (project / "code" / "train.py").write_text("print('v2')\n")
    assert nvwb(env, "commit", "-m", "v2", cwd=project).code == 0
    pushed = nvwb(env, "push", cwd=project)
    assert pushed.code == 0, pushed.err
    assert git(bare, "log", "-1", "--format=%s", "main").strip() == "v2"

    # Diverged: a pull that cannot fast-forward is refused and changes nothing.
    git(other, "pull", "-q")
    (other / "README.md").write_text("theirs\n")
    git(other, "commit", "-qam", "Theirs")
    git(other, "push", "-q")
    (project / "README.md").write_text("ours\n")
    assert nvwb(env, "commit", "-m", "Ours", cwd=project).code == 0
    head = git(project, "rev-parse", "HEAD")
    diverged = nvwb(env, "pull", cwd=project)
    assert diverged.code == 10 and "diverged" in diverged.err
    assert git(project, "rev-parse", "HEAD") == head
    assert (project / "README.md").read_text() == "ours\n"


def test_branches_create_switch_and_the_refusals(project: Path, env: dict[str, str]) -> None:
    listed = nvwb(env, "list", "branches", "-o", "json", cwd=project).json()
    assert listed == [{"name": "main", "current": True, "upstream": None, "marker": "*"}]

    (project / "README.md").write_text("work in progress\n")
    refused = nvwb(env, "create", "branch", "feature", cwd=project)
    assert refused.code == 10 and "--carry" in refused.err
    assert "feature" not in git(project, "branch")

    carried = nvwb(env, "create", "branch", "feature", "--carry", cwd=project)
    assert carried.code == 0, carried.err
    assert git(project, "branch", "--show-current").strip() == "feature"
    assert (project / "README.md").read_text() == "work in progress\n"

    switch = nvwb(env, "switch-branch", "main", cwd=project)
    assert switch.code == 10 and "uncommitted" in switch.err and "README.md" in switch.err
    assert git(project, "branch", "--show-current").strip() == "feature"

    assert nvwb(env, "commit", "-m", "WIP", cwd=project).code == 0
    assert nvwb(env, "switch-branch", "main", cwd=project).code == 0
    assert git(project, "branch", "--show-current").strip() == "main"
    assert (project / "README.md").read_text() != "work in progress\n"

    for bad in ("-x", "a..b", "no spaces"):
        wrong = nvwb(env, "create", "branch", "--", bad, cwd=project)
        assert wrong.code == 2, (bad, wrong.err)
    names = {b["name"] for b in nvwb(env, "list", "branches", "-o", "json", cwd=project).json()}
    assert names == {"main", "feature"}


def test_discard_throws_away_changes_after_asking(project: Path, env: dict[str, str]) -> None:
    readme = (project / "README.md").read_text()
    (project / "README.md").write_text("oops\n")
    (project / "code" / "scratch.py").write_text("x = 1\n")
    asked = nvwb(env, "discard", cwd=project)
    assert asked.code == 130  # no terminal to ask on, no --yes
    assert (project / "README.md").read_text() == "oops\n"
    done = nvwb(env, "discard", "--yes", "-o", "json", cwd=project)
    assert done.code == 0, done.err
    assert sorted(done.json()["discarded"]) == ["README.md", "code/scratch.py"]
    assert (project / "README.md").read_text() == readme
    assert not (project / "code" / "scratch.py").exists()
    assert git(project, "status", "--porcelain") == ""


def test_a_large_file_is_pointed_out_before_a_commit_with_the_fixes(
    project: Path, env: dict[str, str]
) -> None:
    weights = project / "checkpoints" / "weights.bin"
    weights.parent.mkdir(exist_ok=True)
    with open(weights, "wb") as handle:
        handle.truncate(11 * 1024 * 1024)
    (project / "code" / "small.py").write_text("pass\n")
    head = git(project, "rev-parse", "HEAD")
    refused = nvwb(env, "commit", "-m", "with weights", "-o", "json", cwd=project)
    assert refused.code == 10
    error = refused.json()["error"]
    assert error["code"] == "large_files" and error["paths"] == ["checkpoints/weights.bin"]
    assert ".gitignore" in error["hint"] and "Git LFS" in error["hint"]
    assert git(project, "rev-parse", "HEAD") == head  # nothing committed
    assert git(project, "diff", "--cached", "--name-only") == ""  # nothing staged either

    # The offered fix: .gitignore keeps it out, and the rest commits.
    (project / ".gitignore").write_text((project / ".gitignore").read_text() + "checkpoints/\n")
    fixed = nvwb(env, "commit", "-m", "code only", cwd=project)
    assert fixed.code == 0, fixed.err
    assert "checkpoints/weights.bin" not in git(project, "ls-files")

    # models/ is marked for Git LFS by the project's .gitattributes, but without Git LFS set up
    # git would store the file as it is: still pointed out.
    from workbench.vcs import Repo

    with open(project / "models" / "last.ckpt", "wb") as handle:
        handle.truncate(11 * 1024 * 1024)
    assert [f.path for f in Repo(project, env).large_files()] == ["models/last.ckpt"]
    # With the LFS filter set up (as 'git lfs install' does), it is LFS's, not pointed out.
    git(project, "config", "filter.lfs.clean", "cat")
    git(project, "config", "filter.lfs.smudge", "cat")
    assert [f.path for f in Repo(project, env).large_files()] == []
    git(project, "config", "--unset", "filter.lfs.clean")
    (project / "models" / "last.ckpt").unlink()

    # And --overrideWarnings commits a large file anyway.
    with open(project / "data.bin", "wb") as handle:
        handle.truncate(11 * 1024 * 1024)
    forced = nvwb(env, "commit", "-m", "anyway", "--overrideWarnings", cwd=project)
    assert forced.code == 0, forced.err
    assert "data.bin" in git(project, "ls-files")
