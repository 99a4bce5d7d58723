"""GPU offers: what follows from Brev's own figures, our filters and sorts, the short cache.

The offers are read from the stand-in brev's ``gpu-search --json`` (the real CLI's JSON shape)
where a real part is used; the derived facts are checked against the architecture tables of
``workbench/gpu.py``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support.fake_brev import OFFERS, FakeBrev
from workbench.errors import ContextError, InvalidValueError
from workbench.kinds import kind_named
from workbench.offers import (
    Offer,
    OfferCache,
    OfferQuery,
    Selection,
    find_offers,
    make_offer,
    select,
)
from workbench.paths import Paths


def _offer(**changes: object) -> Offer:
    fields = {**OFFERS[0], **changes}
    return make_offer("brev", **fields)  # type: ignore[arg-type]


def test_architecture_and_formats_follow_the_compute_capability() -> None:
    blackwell = _offer(gpu_name="B200", capability=10.0)
    assert (blackwell.capability, blackwell.architecture) == ("10.0", "Blackwell")
    assert blackwell.fp4 and blackwell.fp8
    pro = _offer(gpu_name="RTXPro6000", capability=12.0)
    assert pro.architecture == "Blackwell" and pro.fp4
    hopper = _offer(gpu_name="H100", capability=9.0)
    assert (hopper.architecture, hopper.fp8, hopper.fp4) == ("Hopper", True, False)
    ada = _offer(gpu_name="L40S", capability=8.9)
    assert (ada.architecture, ada.fp8, ada.fp4) == ("Ada Lovelace", True, False)
    ampere = _offer(gpu_name="A100", capability=8.0)
    assert (ampere.architecture, ampere.fp8, ampere.fp4) == ("Ampere", False, False)


def test_unknown_capability_falls_back_to_the_boards_name() -> None:
    # Brev says 0 for a GPU it has no capability for; the board's name still tells.
    guessed = _offer(gpu_name="H100", capability=0)
    assert guessed.capability == "9.0" and guessed.fp8
    unknown = _offer(gpu_name="Gaudi2", capability=0)
    assert unknown.capability is None and unknown.architecture is None
    assert not unknown.fp8 and not unknown.fp4


def test_prices_per_gpu_hour_and_per_gb() -> None:
    eight = _offer(gpu_count=8, total_vram_gb=640, vram_per_gpu_gb=80, price_per_hour=88.0)
    assert eight.price_per_gpu_hour == pytest.approx(11.0)
    assert eight.price_per_gb_hour == pytest.approx(88.0 / 640)
    assert eight.price_per_day == pytest.approx(88.0 * 24)
    free_memory = _offer(total_vram_gb=0)
    assert free_memory.price_per_gb_hour is None


def test_bad_figures_are_refused_with_the_field_named() -> None:
    with pytest.raises(InvalidValueError, match="gpu_count"):
        _offer(gpu_count="eight")
    with pytest.raises(InvalidValueError, match="price_per_hour"):
        _offer(price_per_hour=-1)
    with pytest.raises(InvalidValueError, match="type"):
        _offer(type="")


def _all() -> list[Offer]:
    return [make_offer("brev", **o) for o in OFFERS]  # type: ignore[arg-type]


def test_filters_max_price_fp4_stoppable_and_fits() -> None:
    offers = _all()
    cheap = select(offers, Selection(max_price=1.5))
    assert cheap and all(o.price_per_hour <= 1.5 for o in cheap)
    fp4 = select(offers, Selection(fp4=True))
    assert {o.type for o in fp4} == {"rtxpro6000.1x", "p6-b200.48xlarge"}
    stoppable = select(offers, Selection(stoppable_only=True))
    assert "gpu_1x_a100_sxm4" not in {o.type for o in stoppable}
    assert len(stoppable) == len(offers) - 1
    eight = select(offers, Selection(min_gpus=8))
    assert {o.type for o in eight} == {"a3-highgpu-8g:nvidia-h100-80gb:8", "p6-b200.48xlarge"}


def test_sorts() -> None:
    offers = _all()
    by_price = [o.price_per_hour for o in select(offers, Selection(sort="price"))]
    assert by_price == sorted(by_price)
    by_vram = [o.total_vram_gb for o in select(offers, Selection(sort="vram"))]
    assert by_vram == sorted(by_vram, reverse=True)  # most memory first
    by_boot = [o.boot_time_seconds for o in select(offers, Selection(sort="boot-time"))]
    assert by_boot == sorted(by_boot)
    per_gpu = [o.price_per_gpu_hour for o in select(offers, Selection(sort="price-per-gpu"))]
    assert per_gpu == sorted(per_gpu)  # type: ignore[type-var]
    with pytest.raises(InvalidValueError, match="sort"):
        Selection(sort="colour")


def test_brev_offers_come_from_gpu_search_json(tmp_path: Path, wb_env: dict[str, str]) -> None:
    brev = FakeBrev(tmp_path / "brev")
    provisioner = kind_named("brev").provisioner
    assert provisioner is not None
    found = provisioner(brev.env(wb_env)).offers(OfferQuery(gpu_name="h100", min_disk=500))
    assert [o.type for o in found] == ["a3-highgpu-8g:nvidia-h100-80gb:8"]
    assert brev.calls("gpu-search")[-1] == ["--json", "--gpu-name", "h100", "--min-disk", "500"]
    assert found[0].target_disk_gb == 1000


def test_brev_offers_garbage_is_a_clear_error(tmp_path: Path, wb_env: dict[str, str]) -> None:
    brev = FakeBrev(tmp_path / "brev")
    brev.set_offers([{"type": "x"}])  # the CLI prints what it was given: a record missing fields
    provisioner = kind_named("brev").provisioner
    assert provisioner is not None
    with pytest.raises(ContextError, match="gpu-search"):
        provisioner(brev.env(wb_env)).offers(OfferQuery())


def test_offers_are_cached_briefly(tmp_path: Path, wb_env: dict[str, str]) -> None:
    brev = FakeBrev(tmp_path / "brev")
    env = brev.env(wb_env)
    paths = Paths.from_env(env)
    first = find_offers(paths, env, OfferQuery())
    again = find_offers(paths, env, OfferQuery())
    assert len(brev.calls("gpu-search")) == 1, "the second look came from the cache"
    assert not first.cached and again.cached
    assert [o.type for o in again.offers] == [o.type for o in first.offers]
    find_offers(paths, env, OfferQuery(gpu_name="a100"))
    assert len(brev.calls("gpu-search")) == 2, "another query asks brev"
    find_offers(paths, env, OfferQuery(), refresh=True)
    assert len(brev.calls("gpu-search")) == 3


def test_cache_expires_and_survives_garbage(tmp_path: Path) -> None:
    cache = OfferCache(tmp_path / "offers.json", ttl=0.2)
    offers = _all()[:2]
    cache.put("k", offers, now=100.0)
    hit = cache.get("k", now=100.1)
    assert hit is not None and [o.type for o in hit[0]] == [o.type for o in offers]
    assert cache.get("k", now=100.3) is None
    (tmp_path / "offers.json").write_text("{not json")
    assert cache.get("k", now=time.time()) is None  # a broken cache is a miss, never an error
    cache.put("k", offers, now=5.0)
    assert json.loads((tmp_path / "offers.json").read_text())["entries"]["k"]["at"] == 5.0
