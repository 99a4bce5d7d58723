"""Cloud GPUs from the command line: find an offer, create an instance from it, delete it.

The stand-in brev lists offers in the real ``gpu-search --json`` shape and creates real sshd
instances with ``gpu-create``; the service is the real one, spawned by the CLI as in use.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.cli import nvwb
from tests.support.fake_brev import FakeBrev
from tests.support.service_env import FAST, service_env, wait_for
from tests.support.sshd import sshd_available
from tests.support.workbench_service import holder
from workbench.paths import Paths
from workbench.registry import Registry
from workbench.service.client import ServiceClient

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen"),
    pytest.mark.timeout(120),
]


@pytest.fixture
def env(wb_env: dict[str, str], brev: FakeBrev) -> Iterator[dict[str, str]]:
    yield from service_env({**brev.env(wb_env), **FAST})


# -- finding -------------------------------------------------------------------------------


def test_list_gpu_offers_shows_what_follows_from_brevs_figures(env, brev: FakeBrev):
    found = nvwb(env, "list", "gpu-offers", "-o", "json")
    assert found.code == 0, found.err
    offers = {o["type"]: o for o in found.json()}
    b200 = offers["p6-b200.48xlarge"]
    assert (b200["architecture"], b200["fp4"], b200["fp8"]) == ("Blackwell", True, True)
    assert b200["price_per_gpu_hour"] == pytest.approx(113.93 / 8)
    assert b200["price_per_gb_hour"] == pytest.approx(113.93 / 1440)
    assert offers["g6e.xlarge"]["architecture"] == "Ada Lovelace"
    assert offers["gpu_1x_a100_sxm4"]["stoppable"] is False
    table = nvwb(env, "list", "gpu-offers")
    assert table.code == 0
    assert "FP4" in table.out and "cannot stop" in table.out and "$/GPU-H" in table.out


def test_our_filters_and_sorts(env, brev: FakeBrev):
    fp4 = nvwb(env, "list", "gpu-offers", "--fp4", "-o", "json").json()
    assert {o["type"] for o in fp4} == {"rtxpro6000.1x", "p6-b200.48xlarge"}
    cheap = nvwb(env, "list", "gpu-offers", "--max-price", "1.5", "--stoppable-only", "-o", "json")
    types = [o["type"] for o in cheap.json()]
    assert types == ["n1-standard-4:nvidia-tesla-t4:1", "g5.xlarge"]
    by_vram = nvwb(env, "list", "gpu-offers", "--sort", "vram", "-o", "json").json()
    assert by_vram[0]["type"] == "p6-b200.48xlarge"
    per_gpu = nvwb(env, "list", "gpu-offers", "--sort", "price-per-gpu", "-o", "json").json()
    figures = [o["price_per_gpu_hour"] for o in per_gpu]
    assert figures == sorted(figures)
    brevs = nvwb(env, "list", "gpu-offers", "--gpu-name", "h100", "--min-disk", "500", "-o", "json")
    assert [o["type"] for o in brevs.json()] == ["a3-highgpu-8g:nvidia-h100-80gb:8"]
    bad = nvwb(env, "list", "gpu-offers", "--sort", "colour")
    assert bad.code == 2 and "colour" in bad.err
    negative = nvwb(env, "list", "gpu-offers", "--max-price", "-1")
    assert negative.code == 2 and "--max-price" in negative.err


def test_fits_reads_the_projects_gpu_request(env, brev: FakeBrev, tmp_path):
    made = nvwb(env, "create", "project", "trainer")
    assert made.code == 0, made.err
    assert nvwb(env, "update", "resources", "--gpus", "8", "-p", "trainer").code == 0
    fits = nvwb(env, "list", "gpu-offers", "--fits", "-p", "trainer", "-o", "json")
    assert fits.code == 0, fits.err
    assert {o["type"] for o in fits.json()} == {
        "a3-highgpu-8g:nvidia-h100-80gb:8",
        "p6-b200.48xlarge",
    }


def test_offers_are_asked_of_brev_once_then_cached(env, brev: FakeBrev):
    for _ in range(3):
        assert nvwb(env, "list", "gpu-offers", "-o", "json").code == 0
    assert len(brev.calls("gpu-search")) == 1
    assert nvwb(env, "list", "gpu-offers", "--refresh", "-o", "json").code == 0
    assert len(brev.calls("gpu-search")) == 2


# -- creating ------------------------------------------------------------------------------


def _registry(env) -> Registry:
    return Registry.load(Paths.from_env(env))


def test_create_from_an_offer_waits_pins_records_and_registers(env, brev: FakeBrev):
    made = nvwb(env, "create", "context", "box", "--brev-create", "--brev-type", "g5.xlarge")
    assert made.code == 0, made.err
    assert "g5.xlarge" in made.err  # progress, as it went
    context = _registry(env).get("box")
    assert context.kind == "brev" and context.brev_instance_name == "box"
    assert context.hourly_rate == pytest.approx(1.21)
    record = context.created_instance
    assert record is not None
    assert (record["type"], record["provider"], record["stoppable"]) == ("g5.xlarge", "aws", True)
    assert record["tried"] == [{"type": "g5.xlarge", "ok": True, "reason": ""}]
    # Running, and the key it showed pinned into the context.
    assert brev.status("box") == "RUNNING"
    assert context.accepted_host_key == brev.instance("box")["host_key_fingerprint"]
    assert "pinned" in made.out
    # The service meters it from now on.
    with ServiceClient.connect(Paths.from_env(env), env) as client:
        (snap,) = client.status(["box"]).contexts
    assert snap.hourly_rate == pytest.approx(1.21)


def test_create_falls_back_to_the_next_type(env, brev: FakeBrev):
    brev.no_capacity("n3-H100x1")
    made = nvwb(
        env, "create", "context", "box", "--brev-create", "--brev-type", "n3-H100x1,g6e.xlarge"
    )
    assert made.code == 0, made.err
    assert "n3-H100x1: insufficient capacity" in made.err
    record = _registry(env).get("box").created_instance
    assert record is not None and record["type"] == "g6e.xlarge"
    assert [t["type"] for t in record["tried"]] == ["n3-H100x1", "g6e.xlarge"]


def test_no_capacity_anywhere_names_each_type_and_registers_nothing(env, brev: FakeBrev):
    brev.no_capacity("n3-H100x1", "g6e.xlarge")
    made = nvwb(
        env,
        "create", "context", "box", "--brev-create", "--brev-type", "n3-H100x1,g6e.xlarge",
        "-o", "json",
    )  # fmt: skip
    assert made.code == 6
    assert "n3-H100x1: insufficient capacity" in made.err
    assert "g6e.xlarge: insufficient capacity" in made.err
    error = made.json()["error"]
    assert [a["type"] for a in error["attempts"]] == ["n3-H100x1", "g6e.xlarge"]
    assert "box" not in _registry(env)


def test_bad_requests_change_nothing(env, brev: FakeBrev):
    unknown = nvwb(env, "create", "context", "box", "--brev-create", "--brev-type", "g9.huge")
    assert unknown.code == 2 and "g9.huge" in unknown.err and "gpu-offers" in unknown.err
    no_type = nvwb(env, "create", "context", "box", "--brev-create")
    assert no_type.code == 2 and "--brev-type" in no_type.err
    too_big = nvwb(
        env, "create", "context", "box", "--brev-create",
        "--brev-type", "n1-standard-4:nvidia-tesla-t4:1", "--disk-gb", "5000",
    )  # fmt: skip
    assert too_big.code == 2 and "--disk-gb" in too_big.err and "2000" in too_big.err
    type_alone = nvwb(env, "create", "context", "box", "--brev-type", "g5.xlarge")
    assert type_alone.code == 2 and "--brev-create" in type_alone.err
    assert brev.calls("gpu-create") == []
    assert "box" not in _registry(env)


def test_disk_size_reaches_brev(env, brev: FakeBrev):
    made = nvwb(
        env, "create", "context", "box", "--brev-create",
        "--brev-type", "n1-standard-4:nvidia-tesla-t4:1", "--disk-gb", "500",
    )  # fmt: skip
    assert made.code == 0, made.err
    assert brev.instance("box")["disk_gb"] == 500
    record = _registry(env).get("box").created_instance
    assert record is not None and record["disk_gb"] == 500


def test_a_type_that_cannot_stop_is_warned_and_confirmed(env, brev: FakeBrev):
    asked = nvwb(
        env, "create", "context", "box", "--brev-create", "--brev-type", "gpu_1x_a100_sxm4"
    )
    assert asked.code == 130, asked.err
    assert "cannot be stopped" in asked.err and "$1.29/h" in asked.err
    assert brev.calls("gpu-create") == []
    made = nvwb(
        env, "create", "context", "box", "--brev-create", "--brev-type", "gpu_1x_a100_sxm4",
        "--grace-period", "1", "--yes",
    )  # fmt: skip
    assert made.code == 0, made.err
    assert "cannot be stopped" in made.err
    # Never stopped behind the user's back: no lease, a 1 s grace period, and still running.
    time.sleep(3)
    assert brev.status("box") == "RUNNING" and brev.instance("box")["stops"] == 0
    status = nvwb(env, "status", "-o", "json").json()
    (row,) = [r for r in status if r["name"] == "box"]
    assert row["stoppable"] is False
    assert "cannot stop: delete it when done" in row["note"]
    assert row["hourly_rate"] == pytest.approx(1.29)


# -- deleting ------------------------------------------------------------------------------


def _create(env, name: str = "box") -> None:
    made = nvwb(env, "create", "context", name, "--brev-create", "--brev-type", "g5.xlarge")
    assert made.code == 0, made.err


def test_delete_with_the_instance(env, brev: FakeBrev):
    _create(env)
    refused = nvwb(env, "delete", "context", "box", "--delete-instance")
    assert refused.code == 130 and "box" in refused.err
    assert brev.exists("box") and "box" in _registry(env)
    deleted = nvwb(env, "delete", "context", "box", "--delete-instance", "--yes")
    assert deleted.code == 0, deleted.err
    assert brev.calls("delete") == [["box"]]
    brev.wait_gone("box")
    assert "box" not in _registry(env)
    assert "deleted" in deleted.out.lower()


def test_delete_without_the_instance_leaves_it_and_says_so(env, brev: FakeBrev):
    _create(env)
    deleted = nvwb(env, "delete", "context", "box", "--yes")
    assert deleted.code == 0, deleted.err
    assert "box" not in _registry(env)
    assert brev.exists("box") and brev.calls("delete") == []
    assert "still" in deleted.out and "brev delete box" in deleted.out


def test_delete_instance_refused_while_a_lease_is_held(env, brev: FakeBrev):
    _create(env)
    with holder() as shell:
        held = {**env, "NVWB_HOLDER_PID": str(shell.pid)}
        assert nvwb(held, "activate", "box").code == 0
        refused = nvwb(env, "delete", "context", "box", "--delete-instance", "--yes")
        assert refused.code == 10, refused.err
        assert "in use" in refused.err
        assert brev.exists("box") and brev.status("box") == "RUNNING"
        assert "box" in _registry(env)
        assert brev.calls("delete") == []
        shell.kill()
    wait_for(lambda: nvwb(env, "status", "-o", "json").json()[-1]["leases"] == [], 10, "release")


def test_a_failed_delete_leaves_the_context_usable(env, brev: FakeBrev):
    _create(env)
    brev.set_account(fail_delete="backend unavailable (503)")
    failed = nvwb(env, "delete", "context", "box", "--delete-instance", "--yes")
    assert failed.code == 8 and "503" in failed.err
    assert brev.exists("box") and "box" in _registry(env)
    with holder() as shell:  # not left "being deleted": a lease is taken as before
        held = {**env, "NVWB_HOLDER_PID": str(shell.pid)}
        activated = nvwb(held, "activate", "box")
        assert activated.code == 0, activated.err
        shell.kill()
