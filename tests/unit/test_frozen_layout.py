"""What a frozen build (``packaging/build``) changes under the code, checked without freezing.

PyInstaller keeps the modules as ``.pyc`` files with no ``.py`` beside them, and there are no
entry points; ``tests/packaging/test_bundle.py`` runs the real build, these run the same layout
from the checkout so the unit suite catches a regression without a build.
"""

from __future__ import annotations

import compileall
import json
import shutil
import subprocess
import sys
from pathlib import Path

from workbench.kinds import all_kinds

REPO = Path(__file__).resolve().parents[2]


def test_builtin_kinds_are_found_in_a_sourceless_package(tmp_path: Path) -> None:
    """Only ``.pyc`` files, as in the frozen folder: every kind is still registered."""
    sourceless = tmp_path / "contexts"
    shutil.copytree(REPO / "contexts", sourceless, ignore=shutil.ignore_patterns("__pycache__"))
    assert compileall.compile_dir(sourceless, legacy=True, quiet=1)
    for source in sourceless.glob("*.py"):
        source.unlink()
    probe = (
        "import json, contexts\n"
        "from workbench.kinds import all_kinds\n"
        "assert contexts.__file__.endswith('.pyc'), contexts.__file__\n"
        "contexts.register_builtin()\n"
        "print(json.dumps(sorted(kind.name for kind in all_kinds())))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == sorted(kind.name for kind in all_kinds())
