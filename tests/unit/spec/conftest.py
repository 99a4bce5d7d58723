"""Helpers for the spec tests: which specs they run over, and what a diff changed.

The specs are the project's own (always there) and the shared public corpus when it is beside
the checkout (``tests/support/corpus.py``)."""

from __future__ import annotations

import difflib
import functools
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.support.corpus import OWN_SPECS, SHARED_SPECS, missing_corpus, spec_params

# Every spec the spec tests run over: the project's own first, then the shared corpus if there.
FIXTURES = OWN_SPECS + SHARED_SPECS


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


@pytest.fixture(params=spec_params())
def fixture_path(request: pytest.FixtureRequest) -> Path:
    path: Path | None = request.param
    if path is None:
        missing_corpus()
    assert path is not None
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
