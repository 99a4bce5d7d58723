"""Invalid specs fail with the file, line, field and what was expected; unknown keys warn."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.corpus import own_spec
from tests.unit.spec.conftest import fixture_text
from workbench.errors import ConflictError, SpecError
from workbench.spec import SpecDocument, SpecWarning

# The project's own spec shaped like NVIDIA's nim-anywhere: seven apps, secrets, host mounts.
NIM = own_spec("services")


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def test_wrong_type_names_line_field_and_expectation() -> None:
    text = fixture_text(NIM).replace("sharedMemoryMB: 1024", 'sharedMemoryMB: "lots"')
    with pytest.raises(SpecError) as info:
        SpecDocument.from_text(text, filename="spec.yaml")
    err = info.value
    assert err.file == "spec.yaml"
    assert err.line == _line_of(text, "sharedMemoryMB")
    assert err.field == "execution.resources.sharedMemoryMB"
    assert err.expected == "an integer"
    assert str(err).startswith(
        f"spec.yaml:{err.line}: execution.resources.sharedMemoryMB: got 'lots'"
    )


@pytest.mark.parametrize(
    ("old", "new", "field", "expected"),
    [
        ("requested: 0", "requested: [1]", "execution.resources.gpu.requested", "an integer"),
        (
            "autolaunch: false",
            "autolaunch: sometimes",
            "execution.apps[6].webapp_options.autolaunch",
            "true or false",
        ),
        (
            "type: host",
            "type: nfs",
            "execution.mounts[1].type",
            "one of 'project', 'volume', 'host' or 'tmp'",
        ),
        (
            "timeout_seconds: 600",
            "timeout_seconds: -1",
            "execution.apps[3].timeout_seconds",
            "a number of at least 0",
        ),
        ("  secrets:\n", "  secrets: 3\n  old_secrets:\n", "execution.secrets", "a list"),
        ("specVersion: v2", "specVersion: v1", "specVersion", "one of 'v2'"),
    ],
)
def test_each_kind_of_bad_value(old: str, new: str, field: str, expected: str) -> None:
    text = fixture_text(NIM).replace(old, new, 1)
    with pytest.raises(SpecError) as info:
        SpecDocument.from_text(text)
    assert (info.value.field, info.value.expected) == (field, expected)
    assert info.value.line == _line_of(text, new.strip().split("\n")[0])


def test_missing_spec_version() -> None:
    text = fixture_text(NIM).replace("specVersion: v2\n", "")
    with pytest.raises(SpecError) as info:
        SpecDocument.from_text(text)
    assert info.value.field == "specVersion"
    assert info.value.line == 1
    assert "required" in info.value.reason


def test_missing_nested_required_key_points_at_its_parent() -> None:
    text = (
        "specVersion: v2\nmeta:\n  name: p\nexecution:\n"
        "  mounts:\n  - type: host\n    options: ro\n"
    )
    with pytest.raises(SpecError) as info:
        SpecDocument.from_text(text)
    assert info.value.field == "execution.mounts[0].target"
    assert info.value.line == 6


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("specVersion: v2\nmeta:\n  name: [p\nlayout: []\n")
    with pytest.raises(SpecError) as info:
        SpecDocument.load(path)
    assert info.value.file == str(path)
    assert info.value.line == 4
    assert "malformed YAML" in info.value.reason


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("- just\n- a list\n", 1),
        ("specVersion: v2\nmeta:\n  name: p\nmeta:\n  name: q\n", 4),
        ("", 1),
    ],
)
def test_not_a_spec(text: str, line: int) -> None:
    with pytest.raises(SpecError) as info:
        SpecDocument.from_text(text)
    assert info.value.line == line


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no spec file"):
        SpecDocument.load(tmp_path / "absent.yaml")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SpecError, match="UTF-8"):
        SpecDocument.load(binary)


def test_unknown_keys_warn_and_survive() -> None:
    text = (
        "specVersion: v2\n"
        "meta:\n"
        "  name: p\n"
        "  sparkle: true\n"
        "execution:\n"
        "  sharedMemoryMB: 64\n"
        "  mounts:\n"
        "  - type: tmp\n"
        "    target: /tmp/\n"
        "    readonly: yes\n"
    )
    doc = SpecDocument.from_text(text)
    assert [(w.field, w.line) for w in doc.warnings] == [
        ("meta.sparkle", 4),
        ("execution.sharedMemoryMB", 6),
        ("execution.mounts[0].readonly", 10),
    ]
    assert all(isinstance(w, SpecWarning) for w in doc.warnings)
    assert "execution.resources.sharedMemoryMB" in doc.warnings[1].message
    assert doc.warnings[0].to_dict() == {
        "field": "meta.sparkle",
        "line": 4,
        "message": doc.warnings[0].message,
    }
    assert str(doc.warnings[0]).startswith("line 4: meta.sparkle: unknown key")
    assert doc.spec.meta.model_extra == {"sparkle": True}
    doc.set_gpus(1)
    assert "  sparkle: true\n" in doc.text and "    readonly: yes\n" in doc.text
    assert len(doc.warnings) == 3


def test_an_edit_that_would_break_the_spec_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    bad_execution = "specVersion: v2\nmeta:\n  name: p\nexecution: 5\n"
    with pytest.raises(SpecError):
        SpecDocument.from_text(bad_execution)
    bad_resources = "specVersion: v2\nmeta:\n  name: p\nexecution:\n  resources: 5\n"
    with pytest.raises(SpecError):
        SpecDocument.from_text(bad_resources)
    bad_gpu = "specVersion: v2\nmeta:\n  name: p\nexecution:\n  resources:\n    gpu: 0\n"
    with pytest.raises(SpecError):
        SpecDocument.from_text(bad_gpu)
    path.write_text(
        "specVersion: v2\nmeta:\n  name: p\nexecution:\n"
        "  resources:\n    gpu: {requested: 0}\n  x: 1\n"
    )
    doc = SpecDocument.load(path)
    with pytest.raises(SpecError):
        doc.set_value(("execution", "resources", "sharedMemoryMB"), "lots")
    with pytest.raises(SpecError):
        doc.set_value(("execution", "resources"), 3)
    assert not doc.dirty
    assert doc.save() is False


def test_save_keeps_mode_and_refuses_to_overwrite_outside_changes(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(fixture_text(NIM).encode())
    os.chmod(path, 0o640)
    doc = SpecDocument.load(path)
    doc.set_gpus(1)
    assert doc.dirty
    assert doc.save() is True
    assert not doc.dirty
    assert path.stat().st_mode & 0o777 == 0o640
    assert SpecDocument.load(path).spec.execution.resources.gpu.requested == 1

    path.write_text(path.read_text().replace("sharedMemoryMB: 1024", "sharedMemoryMB: 4096"))
    doc.set_gpus(2)
    with pytest.raises(ConflictError):
        doc.save()
    assert "sharedMemoryMB: 4096" in path.read_text()


def test_from_text_needs_a_path_to_save() -> None:
    doc = SpecDocument.from_text(fixture_text(NIM))
    with pytest.raises(SpecError):
        doc.save()
