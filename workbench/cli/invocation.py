"""What one run of ``nvwb`` knows: its I/O, environment, paths, and the chosen context/project.

Handlers receive an ``Invocation`` instead of reaching for ``sys`` or ``os.environ``, which is
what lets ``main(argv, env)`` run in-process in tests.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from workbench.errors import Cancelled, UsageError
from workbench.paths import Paths

if TYPE_CHECKING:
    from workbench.projects import Project

DEFAULT_CONTEXT = "local"


@dataclass
class Invocation:
    args: argparse.Namespace
    env: Mapping[str, str]
    stdin: TextIO
    stdout: TextIO
    stderr: TextIO
    cwd: Path

    @property
    def paths(self) -> Paths:
        return Paths.from_env(self.env, cwd=self.cwd)

    @property
    def output(self) -> str:
        return str(getattr(self.args, "output", "table") or "table")

    @property
    def interactive(self) -> bool:
        return self.stdin.isatty() and self.output == "table"

    def context_name(self) -> str:
        """The context to act on: ``-c``, then ``NVWB_CONTEXT``, then the last ``activate``."""
        chosen = getattr(self.args, "context", None) or self.env.get("NVWB_CONTEXT")
        if chosen:
            return str(chosen)
        marker = self.paths.current_context_file
        if marker.is_file():
            name = marker.read_text(encoding="utf-8").strip()
            if name:
                return name
        return DEFAULT_CONTEXT

    def project(self) -> Project:
        """The project to act on: ``-p NAME|PATH``, else the project folder holding the cwd."""
        selector = getattr(self.args, "project", None) or self.env.get("NVWB_PROJECT")
        if selector:
            return self.find_project(str(selector))
        from workbench.projects import is_project, read_project

        for folder in (self.cwd, *self.cwd.parents):
            if is_project(folder):
                return read_project(folder)
        raise UsageError(
            "no project selected",
            hint="pass -p NAME or -p PATH, or run inside a project folder",
        )

    def find_project(self, selector: str) -> Project:
        """A project by name, or by a path taken relative to this invocation's cwd."""
        from workbench.projects import find_project

        if "/" in selector or selector in (".", "..") or selector.startswith("~"):
            return find_project(self.paths, self.cwd / Path(selector).expanduser())
        return find_project(self.paths, selector)

    def confirm(self, question: str) -> None:
        """Ask yes/no on the terminal unless ``--yes``; anything but yes cancels."""
        if getattr(self.args, "yes", False):
            return
        if not self.stdin.isatty():
            raise Cancelled(f"{question} Refused: no terminal to ask on", hint="pass --yes")
        self.stderr.write(f"{question} [y/N] ")
        self.stderr.flush()
        answer = self.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise Cancelled("cancelled")

    def read_secret(self, prompt: str) -> str:
        """Read a value from stdin: hidden at a terminal, the whole pipe otherwise."""
        if self.stdin.isatty():
            import getpass

            return getpass.getpass(prompt, stream=self.stderr)
        return self.stdin.read().rstrip("\n")
