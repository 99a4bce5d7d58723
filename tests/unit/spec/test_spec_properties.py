"""Properties over random edits: undoing every edit gives back the original bytes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.spec.conftest import FIXTURES, VARIANTS, fixture_text
from workbench import values
from workbench.spec import SpecDocument

_segment = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789_-."), min_size=1, max_size=12
).filter(lambda s: s not in (".", ".."))  # a mount target is a plain path
_targets = st.lists(_segment, min_size=1, max_size=3).map(lambda parts: "/mnt/" + "/".join(parts))
_mounts = st.lists(
    st.tuples(st.sampled_from(["volume", "host", "tmp"]), _targets, st.text(max_size=20)),
    max_size=4,
    unique_by=lambda m: m[1].rstrip("/"),
)
_specs = st.sampled_from(FIXTURES).flatmap(
    lambda path: st.sampled_from(list(VARIANTS)).map(lambda v: VARIANTS[v](fixture_text(path)))
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=_specs,
    shm=st.integers(min_value=0, max_value=values.SHARED_MEMORY_MB.high),
    gpus=st.integers(min_value=0, max_value=16),
    mounts=_mounts,
)
def test_random_edits_then_undo_restore_the_bytes(
    text: str, shm: int, gpus: int, mounts: list[tuple[str, str, str]]
) -> None:
    doc = SpecDocument.from_text(text)
    old_shm = doc.spec.execution.resources.sharedMemoryMB
    old_gpus = doc.spec.execution.resources.gpu.requested

    doc.set_shared_memory_mb(shm)
    doc.set_gpus(gpus)
    for kind, target, description in mounts:
        doc.add_mount(kind, target, description=description)
    assert doc.spec.execution.resources.sharedMemoryMB == shm
    assert doc.spec.execution.resources.gpu.requested == gpus
    added = doc.spec.execution.mounts[len(doc.spec.execution.mounts) - len(mounts) :]
    assert [(m.type, m.target, m.description) for m in added] == mounts

    for _, target, _ in reversed(mounts):
        doc.remove_mount(target)
    doc.set_gpus(old_gpus)
    doc.set_shared_memory_mb(old_shm)
    assert doc.text == text


@settings(max_examples=80, deadline=None)
@given(value=st.text(max_size=40))
def test_any_string_reads_back_as_written(value: str) -> None:
    doc = SpecDocument.from_text(fixture_text(FIXTURES[0]))
    doc.add_secret("ANY", value)
    # App names follow the name rules (test_spec_hostile); any string is fine in a command.
    doc.add_app({"name": "any", "class": "process", "start_command": value})
    assert doc.spec.execution.secrets[-1].description == value
    assert doc.spec.execution.apps[-1].start_command == value
