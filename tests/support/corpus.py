"""Where the spec files the tests read live: the project's own, and the shared public corpus.

The project's own specs (``tests/fixtures/specs``, written for these tests) are always there, so
a fresh clone of the repository runs every spec test. The corpus of real specs from public
projects lives in ``../shared/fixtures/workbench-specs`` beside the checkout (or where
``WORKBENCH_FIXTURES`` points): CI always has it, a person who cloned the repository does not.
Tests over it run when it is there; when it is not, they skip with the reason (in CI too: the
corpus is data a clone does not carry, not a service the machine must provide; ``.ci/run`` says
in its summary whether it was found).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
OWN_SPECS_DIR = REPO_ROOT / "tests" / "fixtures" / "specs"


def shared_specs_dir() -> Path:
    override = os.environ.get("WORKBENCH_FIXTURES")
    base = Path(override) if override else REPO_ROOT.parent / "shared" / "fixtures"
    return base / "workbench-specs"


OWN_SPECS = sorted(OWN_SPECS_DIR.glob("*.yaml"))
SHARED_SPECS = sorted(shared_specs_dir().glob("*.yaml"))
MISSING_REASON = (
    f"the shared corpus of public specs is not at {shared_specs_dir()} (it sits beside the "
    "checkout as ../shared in CI; set WORKBENCH_FIXTURES to its fixtures folder to run these)"
)


def own_spec(name: str) -> Path:
    """One of the project's own specs, by file stem (``services``, ``minimal``, ...)."""
    path = OWN_SPECS_DIR / f"{name}.yaml"
    assert path.is_file(), f"no such test spec: {path}"
    return path


def shared_spec(stem: str) -> Path:
    """One spec of the shared corpus; skips with the reason when the corpus is not there."""
    path = shared_specs_dir() / f"{stem}.yaml"
    if not path.is_file():
        missing_corpus()
    return path


def missing_corpus() -> None:
    pytest.skip(MISSING_REASON)


def spec_params() -> list[object]:
    """pytest parameters: every own spec, then every shared one, or one skipping stand-in for
    the shared corpus when it is missing (so the report says why those cases did not run)."""
    params: list[object] = [pytest.param(p, id=f"own-{p.stem}") for p in OWN_SPECS]
    if SHARED_SPECS:
        params += [pytest.param(p, id=p.stem) for p in SHARED_SPECS]
    else:
        params.append(pytest.param(None, id="shared-corpus-missing"))
    return params
