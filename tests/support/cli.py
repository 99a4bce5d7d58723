"""Run ``nvwb`` in-process, as a user would from a shell, and capture what it prints."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.cli.main import main


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class _Stdin(io.StringIO):
    def isatty(self) -> bool:
        return False


def nvwb(env: dict[str, str], *argv: str, cwd: Path | None = None, stdin: str = "") -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), env, stdin=_Stdin(stdin), stdout=out, stderr=err, cwd=cwd)
    return Outcome(code, out.getvalue(), err.getvalue())
