"""Creating and deleting Brev instances through the stand-in ``brev`` (real sshd instances).

``brev gpu-create --name NAME --type T1,T2 --detached`` tries the types in order; a type it finds
no capacity for is reported on stderr and the next one is tried. These tests check that the
provisioner passes the real flags, names every type tried and why it failed, and deletes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_brev import FakeBrev
from tests.support.sshd import sshd_available
from workbench.kinds import kind_named
from workbench.kinds.provision import CapacityError, CreateRequest, Provisioner
from workbench.registry import Context

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen"),
]


@pytest.fixture
def brev(tmp_path: Path) -> Iterator[FakeBrev]:
    fake = FakeBrev(tmp_path / "brev")
    yield fake
    fake.close()


def _provisioner(brev: FakeBrev, wb_env: dict[str, str]) -> Provisioner:
    factory = kind_named("brev").provisioner
    assert factory is not None
    return factory(brev.env(wb_env))


def test_create_passes_the_real_flags(brev: FakeBrev, wb_env: dict[str, str]) -> None:
    said: list[str] = []
    created = _provisioner(brev, wb_env).create(
        CreateRequest(name="box", types=("g5.xlarge",)), said.append
    )
    assert created.instance == "box" and created.type == "g5.xlarge"
    assert brev.calls("gpu-create")[-1] == ["--name", "box", "--type", "g5.xlarge", "--detached"]
    assert brev.instance("box")["instance_type"] == "g5.xlarge"
    assert any("g5.xlarge" in line for line in said)


def test_capacity_fallback_names_each_type_tried(brev: FakeBrev, wb_env: dict[str, str]) -> None:
    brev.no_capacity("n3-H100x1")
    said: list[str] = []
    created = _provisioner(brev, wb_env).create(
        CreateRequest(name="box", types=("n3-H100x1", "g6e.xlarge")), said.append
    )
    assert created.type == "g6e.xlarge"
    assert [(a.type, a.ok) for a in created.attempts] == [
        ("n3-H100x1", False),
        ("g6e.xlarge", True),
    ]
    assert "insufficient capacity" in created.attempts[0].reason
    assert brev.instance("box")["instance_type"] == "g6e.xlarge"


def test_every_type_out_of_capacity(brev: FakeBrev, wb_env: dict[str, str]) -> None:
    brev.no_capacity("n3-H100x1", "g6e.xlarge")
    with pytest.raises(CapacityError) as raised:
        _provisioner(brev, wb_env).create(
            CreateRequest(name="box", types=("n3-H100x1", "g6e.xlarge")), lambda _line: None
        )
    error = raised.value
    assert [a.type for a in error.tried] == ["n3-H100x1", "g6e.xlarge"]
    text = str(error)
    assert "n3-H100x1: insufficient capacity" in text and "g6e.xlarge: insufficient" in text
    assert error.details()["attempts"][0]["type"] == "n3-H100x1"
    assert not brev.exists("box")


def test_disk_size_travels_as_gpu_search_json_on_stdin(
    brev: FakeBrev, wb_env: dict[str, str]
) -> None:
    # The real gpu-create takes a disk size only from gpu-search's JSON (target_disk_gb).
    _provisioner(brev, wb_env).create(
        CreateRequest(name="box", types=("n1-standard-4:nvidia-tesla-t4:1",), disk_gb=500),
        lambda _line: None,
    )
    assert brev.calls("gpu-create")[-1] == ["--name", "box", "--detached"]
    assert brev.instance("box")["disk_gb"] == 500


def test_a_taken_name_is_not_a_capacity_problem(brev: FakeBrev, wb_env: dict[str, str]) -> None:
    brev.create("box")
    with pytest.raises(CapacityError) as raised:
        _provisioner(brev, wb_env).create(
            CreateRequest(name="box", types=("g5.xlarge",)), lambda _line: None
        )
    assert "duplicate" in str(raised.value)


def test_delete_removes_the_instance(brev: FakeBrev, wb_env: dict[str, str]) -> None:
    brev.create("box", status="RUNNING")
    assert brev.sshd_alive("box")
    port = brev.instance("box")["port"]
    context = Context(name="b", kind="brev", brev_instance_name="box")
    _provisioner(brev, wb_env).delete(context)
    assert brev.calls("delete")[-1] == ["box"]
    brev.wait_gone("box")
    assert port and json.dumps(brev.store.read()["account"]["deleted"]) == '["box"]'


def test_created_instances_stoppability_is_known_from_the_record(wb_env: dict[str, str]) -> None:
    from workbench.kinds import provider_for

    context = Context(
        name="b",
        kind="brev",
        brev_instance_name="box",
        created_instance={"type": "gpu_1x_a100_sxm4", "stoppable": False},
    )
    assert not provider_for(context, wb_env).can_stop
