"""Edits change only the lines they must, in every real spec and every style variant."""

from __future__ import annotations

import re

import pytest

from tests.unit.spec.conftest import changed, unchanged_lines_kept
from workbench.errors import AlreadyExistsError, InvalidValueError, NotFoundError
from workbench.spec import SpecDocument

TENSORBOARD = {
    "name": "tensorboard",
    "type": "tensorboard",
    "class": "webapp",
    "start_command": "tensorboard --logdir /data/tensorboard/logs/ --port 6006",
    "health_check_command": "curl -f http://localhost:6006/",
    "stop_command": "pkill tensorboard",
    "timeout_seconds": 60,
    "webapp_options": {
        "autolaunch": True,
        "port": "6006",
        "proxy": {"trim_prefix": False},
        "url": "http://localhost:6006",
    },
}


def _eol(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _assert_line_endings(text: str, eol: str) -> None:
    if eol == "\r\n":
        assert "\n" not in text.replace("\r\n", ""), "a bare LF crept into a CRLF spec"
    else:
        assert "\r" not in text


def test_set_shared_memory_changes_only_its_line(variant_spec: str) -> None:
    doc = SpecDocument.from_text(variant_spec)
    old = doc.spec.execution.resources.sharedMemoryMB
    doc.set_shared_memory_mb(2048)

    removed, added = changed(variant_spec, doc.text)
    assert len(removed) == 1 and len(added) == 1
    assert re.fullmatch(rf"\s*sharedMemoryMB: {old}\r?\n?", removed[0])
    assert added[0] == removed[0].replace(f": {old}", ": 2048")
    assert doc.spec.execution.resources.sharedMemoryMB == 2048
    assert variant_spec.endswith("\n") == doc.text.endswith("\n")
    _assert_line_endings(doc.text, _eol(variant_spec))
    assert doc.dirty


def test_set_gpus_changes_only_its_line(variant_spec: str) -> None:
    doc = SpecDocument.from_text(variant_spec)
    old = doc.spec.execution.resources.gpu.requested
    doc.set_gpus(old + 2)

    removed, added = changed(variant_spec, doc.text)
    assert len(removed) == 1 and len(added) == 1
    assert re.fullmatch(rf"\s*requested: {old}\r?\n?", removed[0])
    assert added[0] == removed[0].replace(f": {old}", f": {old + 2}")
    assert doc.spec.execution.resources.gpu.requested == old + 2


def test_setting_the_same_value_changes_nothing(fixture_spec: str) -> None:
    doc = SpecDocument.from_text(fixture_spec)
    doc.set_shared_memory_mb(doc.spec.execution.resources.sharedMemoryMB)
    assert doc.text == fixture_spec
    assert not doc.dirty


def test_add_and_remove_mount_touch_only_their_lines(variant_spec: str) -> None:
    doc = SpecDocument.from_text(variant_spec)
    before = len(doc.spec.execution.mounts)
    doc.add_mount("host", "/mnt/datasets/", description="Datasets: shared", options="ro")

    assert unchanged_lines_kept(variant_spec, doc.text)
    _, added = changed(variant_spec, doc.text)
    assert [line.strip() for line in added] == [
        "- type: host",
        "target: /mnt/datasets/",
        'description: "Datasets: shared"',
        "options: ro",
    ]
    mount = doc.spec.execution.mounts[-1]
    assert len(doc.spec.execution.mounts) == before + 1
    assert (mount.type, mount.target, mount.description, mount.options) == (
        "host",
        "/mnt/datasets/",
        "Datasets: shared",
        "ro",
    )
    _assert_line_endings(doc.text, _eol(variant_spec))
    # New lines line up with their siblings: the dash under the other mounts' dashes.
    dashes = {
        line[: len(line) - len(line.lstrip())]
        for line in doc.text.splitlines()
        if "- type:" in line
    }
    assert len(dashes) == 1

    doc.remove_mount("/mnt/datasets")
    assert doc.text == variant_spec


def test_remove_existing_mount_deletes_only_its_lines(fixture_spec: str) -> None:
    doc = SpecDocument.from_text(fixture_spec)
    victim = doc.spec.execution.mounts[-1]
    if victim.type == "project":
        doc.add_mount("tmp", "/scratch/")
        fixture_spec = doc.text
        victim = doc.spec.execution.mounts[-1]
    count = len(doc.spec.execution.mounts)
    doc.remove_mount(victim.target)
    removed, added = changed(fixture_spec, doc.text)
    assert added == []
    assert len(removed) == 4
    assert removed[1].strip() == f"target: {victim.target}"
    assert len(doc.spec.execution.mounts) == count - 1


def test_add_and_remove_app_touch_only_their_lines(variant_spec: str) -> None:
    doc = SpecDocument.from_text(variant_spec)
    doc.add_app(TENSORBOARD)

    removed, added = changed(variant_spec, doc.text)
    # Only an empty "apps: []" may change, into "apps:" with the new item below.
    assert [line.strip() for line in removed] in ([], ["apps: []"])
    assert len(added) == 13 + len(removed)
    app = doc.spec.execution.apps[-1]
    assert app.name == "tensorboard" and app.class_ == "webapp"
    assert app.webapp_options is not None and app.webapp_options.port == "6006"
    assert app.timeout_seconds == 60
    effective = [a for a in doc.apps() if a.name == "tensorboard"]
    assert [a.start_command for a in effective] == [TENSORBOARD["start_command"]]

    doc.remove_app("tensorboard")
    assert doc.text == variant_spec


def test_add_and_remove_secret_touch_only_their_lines(variant_spec: str) -> None:
    doc = SpecDocument.from_text(variant_spec)
    doc.add_secret("HF_TOKEN", "Hugging Face token: read access")
    removed, added = changed(variant_spec, doc.text)
    assert [line.strip() for line in added if "secrets" not in line] == [
        "- variable: HF_TOKEN",
        'description: "Hugging Face token: read access"',
    ]
    # Only an empty "secrets: []" line may change, into "secrets:".
    assert all(line.strip() == "secrets: []" for line in removed)
    assert doc.spec.execution.secrets[-1].variable == "HF_TOKEN"

    doc.remove_secret("HF_TOKEN")
    assert doc.text == variant_spec


def test_removing_the_last_secret_leaves_an_empty_list() -> None:
    text = (
        "specVersion: v2\nmeta:\n  name: p\nexecution:\n"
        "  secrets:  # keep me\n  - variable: A\n    description: a\n  mounts: []\n"
    )
    doc = SpecDocument.from_text(text)
    doc.remove_secret("A")
    assert (
        doc.text
        == "specVersion: v2\nmeta:\n  name: p\nexecution:\n  secrets: []  # keep me\n  mounts: []\n"
    )
    assert doc.spec.execution.secrets == []


def test_edits_keep_comments_quotes_and_unknown_keys() -> None:
    text = (
        "# my project\n"
        "specVersion: 'v2'\n"
        "meta:\n"
        "  name: demo   # the name\n"
        "  futureKey: {a: 1}\n"
        "execution:\n"
        "  resources:\n"
        "    sharedMemoryMB: 64  # small\n"
        "  # mounts follow\n"
        "  mounts:\n"
        "  - type: project\n"
        "    target: /project/\n"
        "    description: |\n"
        "      The project.\n"
        "      Two lines.\n"
        "\n"
        "# the end\n"
    )
    doc = SpecDocument.from_text(text)
    doc.set_shared_memory_mb(128)
    doc.add_mount("tmp", "/tmp/x")
    doc.set_gpus(1)
    assert doc.text == (
        "# my project\n"
        "specVersion: 'v2'\n"
        "meta:\n"
        "  name: demo   # the name\n"
        "  futureKey: {a: 1}\n"
        "execution:\n"
        "  resources:\n"
        "    sharedMemoryMB: 128  # small\n"
        "    gpu:\n"
        "      requested: 1\n"
        "  # mounts follow\n"
        "  mounts:\n"
        "  - type: project\n"
        "    target: /project/\n"
        "    description: |\n"
        "      The project.\n"
        "      Two lines.\n"
        "\n"
        "  - type: tmp\n"
        "    target: /tmp/x\n"
        '    description: ""\n'
        '    options: ""\n'
        "# the end\n"
    )
    assert doc.spec.execution.mounts[0].description == "The project.\nTwo lines.\n"


def test_missing_sections_are_added_with_the_documents_indentation() -> None:
    text = "specVersion: v2\nmeta:\n    name: p\n    labels:\n        - a\n"
    doc = SpecDocument.from_text(text)
    doc.set_shared_memory_mb(512)
    doc.add_secret("TOKEN")
    assert doc.text == text + (
        "execution:\n"
        "    resources:\n"
        "        sharedMemoryMB: 512\n"
        "    secrets:\n"
        "        - variable: TOKEN\n"
        '          description: ""\n'
    )


def test_empty_values_and_flow_lists_are_filled() -> None:
    text = (
        "specVersion: v2\nmeta:\n  name: p\nexecution:\n"
        "  resources:\n  secrets: [{variable: A}]\n  mounts:\n"
    )
    doc = SpecDocument.from_text(text)
    doc.set_gpus(2)
    doc.add_secret("B", "b")
    doc.add_mount("volume", "/data", options="volumeName=data")
    assert doc.text == (
        "specVersion: v2\nmeta:\n  name: p\nexecution:\n"
        "  resources:\n    gpu:\n      requested: 2\n"
        '  secrets: [{variable: A}, {variable: "B", description: "b"}]\n'
        "  mounts:\n"
        '  - type: volume\n    target: /data\n    description: ""\n    options: volumeName=data\n'
    )
    doc.remove_secret("A")
    assert 'secrets: [{variable: "B", description: "b"}]\n' in doc.text


def test_strings_that_yaml_would_misread_are_quoted() -> None:
    text = "specVersion: v2\nmeta:\n  name: p\n"
    doc = SpecDocument.from_text(text)
    tricky = ["8080", "yes", "", "a: b", "#x", "true", "1.0", "null", " pad", "x\ny", "é ok", "-v"]
    for i, value in enumerate(tricky):
        doc.add_secret(f"S{i}", value)
    assert [s.description for s in doc.spec.execution.secrets] == tricky


def test_failed_edits_leave_the_document_unchanged(fixture_spec: str) -> None:
    doc = SpecDocument.from_text(fixture_spec)
    existing = doc.spec.execution.mounts[0].target
    with pytest.raises(AlreadyExistsError):
        doc.add_mount("volume", existing)
    with pytest.raises(AlreadyExistsError):
        doc.add_mount("volume", existing.rstrip("/"))
    with pytest.raises(InvalidValueError):
        doc.add_mount("nfs", "/x")
    with pytest.raises(InvalidValueError):
        doc.add_mount("host", "relative/path")
    with pytest.raises(NotFoundError):
        doc.remove_mount("/nowhere")
    with pytest.raises(NotFoundError):
        doc.remove_app("nope")
    with pytest.raises(NotFoundError):
        doc.remove_secret("NOPE")
    with pytest.raises(InvalidValueError):
        doc.add_secret("not a name")
    with pytest.raises(InvalidValueError):
        doc.add_app({"name": "x", "class": "daemon"})
    with pytest.raises(InvalidValueError):
        doc.add_app({"class": "webapp"})
    with pytest.raises(InvalidValueError):
        doc.set_shared_memory_mb(-1)
    with pytest.raises(InvalidValueError):
        doc.set_gpus(True)
    doc.add_app({"name": "mine", "class": "process"})
    with pytest.raises(AlreadyExistsError):
        doc.add_app({"name": "mine", "class": "process"})
    doc.remove_app("mine")
    assert doc.text == fixture_spec
    assert not doc.dirty


def test_effective_apps_let_project_apps_override_the_base() -> None:
    text = (
        "specVersion: v2\nmeta:\n  name: p\n"
        "environment:\n  base:\n    apps:\n"
        "    - {name: jupyterlab, class: webapp, start_command: base}\n"
        "    - {name: other, class: process}\n"
        "execution:\n  apps:\n"
        "  - {name: mine, class: process}\n"
        "  - {name: jupyterlab, class: webapp, start_command: project}\n"
    )
    apps = SpecDocument.from_text(text).apps()
    assert [(a.name, a.start_command) for a in apps] == [
        ("jupyterlab", "project"),
        ("other", ""),
        ("mine", ""),
    ]
