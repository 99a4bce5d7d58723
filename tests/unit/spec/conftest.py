"""Helpers for the spec tests: where the real specs are, and what a diff changed."""

from __future__ import annotations

import difflib
import functools
import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from ruamel.yaml import YAML

REPO_ROOT = Path(__file__).resolve().parents[3]


def fixtures_dir() -> Path:
    override = os.environ.get("WORKBENCH_FIXTURES")
    base = Path(override) if override else REPO_ROOT.parent / "shared" / "fixtures"
    return base / "workbench-specs"


FIXTURES = sorted(fixtures_dir().glob("*.yaml"))


def fixture_text(path: Path) -> str:
    # newline="" keeps the bytes exactly as they are; read-only, tests edit copies in memory.
    return path.read_bytes().decode("utf-8")


def changed(before: str, after: str) -> tuple[list[str], list[str]]:
    """(lines removed, lines added) between two texts; line endings are checked apart."""
    removed: list[str] = []
    added: list[str] = []
    for line in difflib.ndiff(before.splitlines(), after.splitlines()):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


def unchanged_lines_kept(before: str, after: str) -> bool:
    """Whether ``after`` is ``before`` with lines only inserted (and none lost or altered)."""
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines())
    return all(tag == "insert" for tag, *_ in matcher.get_opcodes() if tag != "equal")


@pytest.fixture(params=FIXTURES, ids=[p.stem for p in FIXTURES])
def fixture_path(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


@pytest.fixture
def fixture_spec(fixture_path: Path) -> str:
    return fixture_text(fixture_path)


@functools.cache
def four_space(text: str) -> str:
    """The same spec re-emitted with 4-space indentation and indented sequences (test input)."""
    yaml = YAML()
    yaml.indent(mapping=4, sequence=6, offset=4)
    yaml.width = 4096
    out = io.StringIO()
    yaml.dump(yaml.load(text), out)
    return out.getvalue()


VARIANTS: dict[str, Callable[[str], str]] = {
    "as-is": lambda text: text,
    "crlf": lambda text: text.replace("\n", "\r\n"),
    "no-final-newline": lambda text: text.rstrip("\n"),
    "four-space": four_space,
    "four-space-crlf-no-final-newline": lambda text: (
        four_space(text).rstrip("\n").replace("\n", "\r\n")
    ),
}


@pytest.fixture(params=list(VARIANTS))
def variant_spec(request: pytest.FixtureRequest, fixture_spec: str) -> str:
    return VARIANTS[request.param](fixture_spec)
