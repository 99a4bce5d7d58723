"""Every spec (ours and the public corpus) loads, validates, and comes back byte for byte; in every
variant too."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.corpus import OWN_SPECS, SHARED_SPECS, missing_corpus, shared_specs_dir
from workbench.spec import SPEC_RELATIVE_PATH, ProjectSpec, SpecDocument


def test_own_specs_are_there() -> None:
    assert len(OWN_SPECS) >= 3, "tests/fixtures/specs holds the project's own test specs"


def test_shared_corpus_is_there() -> None:
    if not SHARED_SPECS:
        missing_corpus()
    assert len(SHARED_SPECS) >= 10, f"the public corpus at {shared_specs_dir()} is incomplete"


def test_fixture_loads_validates_and_round_trips(fixture_path: Path, tmp_path: Path) -> None:
    doc = SpecDocument.load(fixture_path)
    assert isinstance(doc.spec, ProjectSpec)
    assert doc.spec.specVersion == "v2"
    assert doc.spec.meta.name
    assert doc.warnings == []
    assert doc.text.encode() == fixture_path.read_bytes()
    assert not doc.dirty

    copy = tmp_path / SPEC_RELATIVE_PATH
    assert doc.save(copy) is True
    assert copy.read_bytes() == fixture_path.read_bytes()


def test_variant_round_trips(variant_spec: str) -> None:
    doc = SpecDocument.from_text(variant_spec)
    assert doc.text == variant_spec
    assert doc.spec.execution.mounts


def test_saving_unchanged_spec_writes_nothing(fixture_spec: str, tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(fixture_spec.encode())
    os.utime(path, (1_000_000, 1_000_000))
    doc = SpecDocument.load(path)
    assert doc.save() is False
    assert path.stat().st_mtime == 1_000_000


def test_models_read_the_real_values(fixture_path: Path) -> None:
    spec = SpecDocument.load(fixture_path).spec
    if fixture_path.stem == "services":
        assert spec.meta.name == "services-demo"
        assert spec.execution.secrets[0].variable == "NGC_API_KEY"
        api = next(a for a in spec.execution.apps if a.name == "API Server")
        assert api.webapp_options is not None and api.webapp_options.autolaunch is False
        assert "--reload-include '*.yaml'" in api.start_command
    if fixture_path.stem == "gpu-finetune":
        assert spec.execution.resources.gpu.requested == 1
        assert spec.execution.resources.sharedMemoryMB == 4096
        assert spec.meta.description == "Fine-tune a small model: LoRA, one GPU"
    if fixture_path.stem == "NVIDIA__nim-anywhere":
        assert spec.execution.resources.sharedMemoryMB == 1024
        assert spec.execution.secrets[0].variable == "NGC_API_KEY"
        assert [m.type for m in spec.execution.mounts] == ["project", "host", "host"]
        docs = next(a for a in spec.execution.apps if a.name == "Documentation")
        assert docs.class_ == "webapp"
        assert docs.webapp_options is not None
        assert docs.webapp_options.port == "7777"
        assert docs.webapp_options.proxy.trim_prefix is True
        assert spec.environment.base.package_managers[1].installed_packages == ["jupyterlab==4.0.7"]
        assert spec.layout[3].storage == "gitlfs"
    for mount in spec.execution.mounts:
        assert mount.target.startswith("/")
