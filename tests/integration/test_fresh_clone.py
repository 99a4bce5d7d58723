"""A person who clones the repository has no ``../shared``: the spec tests must still pass there.

The repository's tracked files (as they are in this working tree) are copied to a folder with
nothing beside it, and the spec tests run in it with the corpus pointed at an empty folder: they
pass on the project's own specs and say why the public corpus was skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_spec_tests_pass_without_the_shared_corpus(tmp_path: Path) -> None:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    clone = tmp_path / "alone" / "workbench"
    for name in filter(None, listed):
        source = REPO / os.fsdecode(name)
        if source.is_file():
            target = clone / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    empty = tmp_path / "no-corpus"
    empty.mkdir()
    env = {**os.environ, "WORKBENCH_FIXTURES": str(empty), "PYTHONPATH": str(clone)}
    tests = ["tests/unit/spec", "tests/unit/test_cli_spec.py"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *tests],
        check=False,
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
    assert "the shared corpus of public specs is not at" in done.stdout
