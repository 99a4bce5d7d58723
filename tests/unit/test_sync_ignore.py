"""gitignore syntax as sync reads it, and the rules a project's files add up to."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from workbench.resources import resource_path
from workbench.sync.ignore import IgnoreRules, load_rules, parse_lines


@pytest.mark.parametrize(
    ("patterns", "path", "is_dir", "ignored"),
    [
        ("*.log", "a.log", False, True),
        ("*.log", "deep/x/a.log", False, True),
        ("*.log\n!keep.log", "x/keep.log", False, False),
        ("/build/", "build", True, True),
        ("/build/", "x/build", True, False),
        ("build/", "build", False, False),
        ("build/", "build/out.o", False, True),
        ("doc/*.txt", "doc/a.txt", False, True),
        ("doc/*.txt", "doc/x/a.txt", False, False),
        ("data/**/raw", "data/a/b/raw", False, True),
        ("data/**/raw", "data/raw", False, True),
        ("**/cache", "a/b/cache", True, True),
        ("logs/**", "logs/a/b", False, True),
        ("f?.txt", "f1.txt", False, True),
        ("f[0-2].txt", "f3.txt", False, False),
        ("f[!0-2].txt", "f3.txt", False, True),
        ("\\#hash", "#hash", False, True),
        ("# comment", "# comment", False, False),
        ("name\\ ", "name ", False, True),
        ("ünï*", "ünïcode", False, True),
    ],
)
def test_gitignore_syntax(patterns: str, path: str, is_dir: bool, ignored: bool) -> None:
    assert IgnoreRules(parse_lines(patterns)).ignored(path, is_dir) is ignored


def test_temp_files_are_always_ignored() -> None:
    rules = IgnoreRules(parse_lines("!*"))
    assert rules.ignored("dir/.wbsync-abc.tmp", False)


def test_project_rules_nested_and_defaults(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.ckpt\nnode_modules/\n")
    (tmp_path / "code").mkdir()
    (tmp_path / "code/.gitignore").write_text("!best.ckpt\n/local.txt\n")
    (tmp_path / ".workbenchignore").write_text("scratch/\n")
    (tmp_path / "node_modules/pkg").mkdir(parents=True)
    (tmp_path / "node_modules/pkg/.gitignore").write_text("!*\n")
    rules = load_rules(tmp_path, remote_only=["data/"])
    assert rules.ignored("models/x.ckpt", False)
    assert not rules.ignored("code/best.ckpt", False)
    assert rules.ignored("code/local.txt", False)
    assert not rules.ignored("local.txt", False)
    assert rules.ignored("scratch/notes", False)
    assert rules.ignored("data/train.parquet", False)
    assert not rules.ignored("code/data/x", False)
    for default in (".git/HEAD", "a/__pycache__/m.pyc", ".ipynb_checkpoints/n.ipynb"):
        assert rules.ignored(default, False), default
    # node_modules is ignored, so its own .gitignore was never read.
    assert rules.ignored("node_modules/pkg/index.js", False)


def test_rules_travel_as_json() -> None:
    rules = IgnoreRules(parse_lines("*.log\n!keep.log", base="sub"))
    assert rules.to_json() == [
        {"base": "sub", "re": "(?:.*/)?[^/]*\\.log", "neg": False, "dir": False},
        {"base": "sub", "re": "(?:.*/)?keep\\.log", "neg": True, "dir": False},
    ]


def agent_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "workbench_remote_agent_rules", resource_path("agent", "agent.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("fold", [False, True])
def test_git_is_never_synced_in_any_case_and_rules_fold_case_where_the_disk_does(
    tmp_path: Path, fold: bool
) -> None:
    """``.git`` (file or folder, any letter case, any depth) is out on both sides whatever a
    negation says; on a disk that folds case, so does every rule, here and on the agent (which
    gets the rules as JSON)."""
    (tmp_path / ".gitignore").write_text(".env\nsecrets/\n!.git\n")
    rules = load_rules(tmp_path, case_insensitive=fold)
    agent = agent_module().SyncRules(rules.to_json())
    for side in (rules, agent):
        for path, is_dir in ((".git", True), (".GIT/hooks/pre-commit", False), ("sub/.Git", False),
                             ("a/b/.gIt/config", False)):  # fmt: skip
            assert side.ignored(path, is_dir), path
        assert side.ignored(".env", False) and side.ignored("secrets/k", False)
        assert side.ignored(".ENV", False) is fold
        assert side.ignored("SECRETS/k", False) is fold
        assert not side.ignored(".environment", False)
