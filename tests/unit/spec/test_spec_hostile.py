"""Specs written by strangers: bounded work, and every unsafe value reported by ``validate``.

A cloned project's spec is read by ``nvwb list projects``, ``validate``, ``open`` and the app. An
alias bomb, a deeply nested document or a huge file must fail fast with a clear ``SpecError``;
a ``meta.name`` that is a path, an app name that would escape the state folder, or a mount target
in the container's system folders are reported when the spec is validated, with line and field.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from tests.support.cli import nvwb
from tests.support.corpus import own_spec, shared_spec
from tests.unit.spec.conftest import FIXTURES, fixture_text
from workbench.errors import SpecError
from workbench.projects import read_project, read_spec_summary
from workbench.spec import SpecDocument

HEAD = "specVersion: v2\nmeta:\n  name: p\n"
# The project's own spec shaped like NVIDIA's nim-anywhere (a fresh clone has no shared corpus).
NIM = own_spec("services")


def alias_bomb(levels: int) -> str:
    lines = [HEAD.rstrip("\n"), "  labels: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"  l{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def deep(levels: int) -> str:
    return HEAD + "x: " + "[" * levels + "]" * levels + "\n"


def _project(root: Path, text: str) -> Path:
    project = root / "p"
    (project / ".project").mkdir(parents=True)
    (project / ".project" / "spec.yaml").write_text(text)
    return project


def test_an_alias_bomb_fails_fast_with_a_spec_error() -> None:
    started = time.monotonic()
    with pytest.raises(SpecError) as info:
        SpecDocument.from_text(alias_bomb(8), filename="spec.yaml")
    assert time.monotonic() - started < 3
    assert "alias" in info.value.reason
    assert info.value.file == "spec.yaml"


def test_deep_nesting_is_a_spec_error_not_a_recursion_error() -> None:
    with pytest.raises(SpecError) as info:
        SpecDocument.from_text(deep(3000), filename="spec.yaml")
    assert "nested" in info.value.reason
    assert info.value.line == 4


def test_too_many_values_without_aliases_are_refused_quickly() -> None:
    text = HEAD + "x: [" + ",".join(["1"] * 250_000) + "]\n"
    started = time.monotonic()
    with pytest.raises(SpecError, match="more than 100,000 values"):
        SpecDocument.from_text(text)
    assert time.monotonic() - started < 3


def test_a_huge_spec_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD + "# " + "x" * (60 * 1024 * 1024) + "\n")
    started = time.monotonic()
    with pytest.raises(SpecError, match="larger than"):
        SpecDocument.load(path)
    with pytest.raises(SpecError, match="larger than"):
        SpecDocument.from_text(path.read_text())
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("text", [alias_bomb(8), deep(3000)], ids=["alias-bomb", "deep"])
def test_validate_reports_hostile_specs_with_the_spec_exit_code(
    wb_env: dict[str, str], tmp_path: Path, text: str
) -> None:
    project = _project(tmp_path, text)
    result = nvwb(wb_env, "validate", "project-spec", str(project), "-o", "json")
    assert result.code == 3, result.err
    assert result.json()["error"]["code"] == "spec"


@pytest.mark.parametrize("text", [alias_bomb(8), deep(3000)], ids=["alias-bomb", "deep"])
def test_listing_a_project_with_a_hostile_spec_stays_quick_and_clear(
    tmp_path: Path, text: str
) -> None:
    project = _project(tmp_path, text)
    started = time.monotonic()
    with contextlib.suppress(SpecError):
        read_spec_summary(project / ".project" / "spec.yaml")
    read_project(project)  # listing falls back to the folder's name, never crashes
    assert time.monotonic() - started < 3


def test_real_specs_are_far_below_every_limit() -> None:
    from workbench import yaml_limits

    for path in FIXTURES:
        text = fixture_text(path)
        assert len(text.encode()) * 100 < yaml_limits.MAX_SPEC_BYTES
        SpecDocument.from_text(text, filename=path.name)


@pytest.mark.parametrize("name", ["../../evil", "/etc", "a b", ".hidden", "x" * 64])
def test_validate_reports_a_meta_name_that_is_not_a_name(name: str) -> None:
    text = fixture_text(NIM).replace("name: services-demo", f"name: {name!r}", 1)
    with pytest.raises(SpecError) as info:
        SpecDocument.from_text(text, filename="spec.yaml")
    assert info.value.field == "meta.name"
    assert info.value.line == text[: text.index(f"name: {name!r}")].count("\n") + 1


def test_validate_cli_reports_a_path_as_meta_name(wb_env: dict[str, str], tmp_path: Path) -> None:
    project = _project(tmp_path, "specVersion: v2\nmeta:\n  name: ../../evil\n")
    result = nvwb(wb_env, "validate", "project-spec", str(project), "-o", "json")
    assert result.code == 3
    error = result.json()["error"]
    assert (error["field"], error["line"]) == ("meta.name", 3)


@pytest.mark.parametrize(
    "target",
    ["/", "/etc", "/etc/", "/proc/self", "/usr/lib", "/data/../etc", "relative/path", "/dev/shm"],
)
def test_validate_reports_a_mount_target_outside_the_allowed_places(target: str) -> None:
    text = HEAD + "execution:\n  mounts:\n  - type: volume\n" + f"    target: {target!r}\n"
    with pytest.raises(SpecError) as info:
        SpecDocument.from_text(text, filename="spec.yaml")
    assert info.value.field == "execution.mounts[0].target"
    assert info.value.line == 7


@pytest.mark.parametrize(
    "target", ["/project/", "/data/tensorboard/logs/", "/var/host-run/", "/mnt/cache", "/tmp/"]
)
def test_ordinary_mount_targets_are_fine(target: str) -> None:
    text = HEAD + "execution:\n  mounts:\n  - type: volume\n" + f"    target: {target}\n"
    assert SpecDocument.from_text(text).spec.execution.mounts[0].target == target


@pytest.mark.parametrize(
    "name", ["../../../../escaped", "a/b", "..", "", "x\ty", "$(id)", "a;b", "`id`"]
)
def test_validate_reports_an_app_name_that_is_unsafe(name: str) -> None:
    text = HEAD + "execution:\n  apps:\n  - name: " + repr(name) + "\n    class: process\n"
    with pytest.raises(SpecError) as info:
        SpecDocument.from_text(text, filename="spec.yaml")
    assert info.value.field == "execution.apps[0].name"
    assert info.value.line == 6


def test_base_environment_app_names_are_checked_too() -> None:
    text = HEAD + "environment:\n  base:\n    apps:\n    - name: ../up\n"
    with pytest.raises(SpecError) as info:
        SpecDocument.from_text(text)
    assert info.value.field == "environment.base.apps[0].name"


def test_app_names_with_spaces_and_colons_are_accepted() -> None:
    names = [a.name for a in SpecDocument.from_text(fixture_text(NIM)).apps()]
    assert "Visual Studio Code" in names
    assert "Model server: small-instruct" in names


def test_app_names_of_the_public_nim_spec_are_accepted() -> None:
    real = shared_spec("NVIDIA__nim-anywhere")
    names = [a.name for a in SpecDocument.from_text(fixture_text(real)).apps()]
    assert "LLM NIM: meta-llama3-8b-instruct" in names


@pytest.mark.parametrize(
    ("key", "value"),
    [("port", '"70000"'), ("port", '"0"'), ("port", '"http"')],
)
def test_a_webapp_port_outside_the_port_range_is_reported(key: str, value: str) -> None:
    text = (
        HEAD + "execution:\n  apps:\n  - name: web\n    class: webapp\n"
        f"    webapp_options:\n      {key}: {value}\n"
    )
    with pytest.raises(SpecError) as info:
        SpecDocument.from_text(text)
    assert info.value.field == "execution.apps[0].webapp_options.port"


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("requested: 0", "requested: 99999999999999999999", "execution.resources.gpu.requested"),
        ("sharedMemoryMB: 1024", "sharedMemoryMB: 9999999", "execution.resources.sharedMemoryMB"),
        ("timeout_seconds: 600", "timeout_seconds: 99999999", "execution.apps[3].timeout_seconds"),
    ],
)
def test_numbers_beyond_their_range_are_reported(old: str, new: str, field: str) -> None:
    text = fixture_text(NIM).replace(old, new, 1)
    with pytest.raises(SpecError) as info:
        SpecDocument.from_text(text)
    assert info.value.field == field
    assert info.value.expected is not None and "at most" in info.value.expected
