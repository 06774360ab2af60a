"""Output kinds: every registered method is checked against its kind's contract, and a toy
family (``tests/toy_family.py``, one new module, no existing line touched) shows that a family
of any kind plugs in."""
from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest
import torch

from medxai_lite.explain import METHODS, OUTPUT_KINDS, explain, unregister
from medxai_lite.models.vit import HybridViT
from medxai_lite.models.zoo import SmallCNN


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return SmallCNN(3, width=4).eval()


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return HybridViT(3, dim=16, depth=2, heads=2, grid=4).eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def toy():
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    module = importlib.import_module("toy_family")
    try:
        yield module
    finally:
        for name in module.NAMES:
            unregister(name)
        sys.modules.pop("toy_family", None)
        sys.path.pop(0)


def contract(result, n: int, size: int) -> None:
    """The contract of the result's output kind (one assertion block per kind)."""
    assert result.kind in OUTPUT_KINDS and len(result) == n
    assert result.targets.shape == (n,) and result.targets.dtype == np.int64
    if result.kind == "map":
        assert result.maps.shape == result.raw.shape == (n, size, size) and result.maps.dtype == np.float32
        assert result.maps.min() >= 0 and result.maps.max() <= 1 and result.value is None
    elif result.kind == "concepts":
        names, scores = result.value["names"], result.value["scores"]
        assert scores.shape == (n, len(names)) and np.isfinite(scores).all() and result.maps is None
    elif result.kind == "examples":
        idx, dist = result.value["indices"], result.value["distances"]
        assert idx.shape == dist.shape and idx.shape[0] == n and (idx >= 0).all()
        assert (np.diff(dist, axis=1) >= 0).all() and result.maps is None
    elif result.kind == "text":
        assert len(result.value) == n and all(isinstance(t, str) for t in result.value) and result.maps is None
    else:  # pragma: no cover - a new kind needs its block here
        raise AssertionError(f"no contract test for output kind {result.kind!r}")


def _arch(name: str) -> str | None:
    """The architecture a method's contract is checked on: the small CNN, else the ViT."""
    return next((a for a in ("small_cnn", "hybrid_vit") if METHODS[name].supports(a)), None)


def _cheap(name: str) -> bool:
    return _arch(name) is not None and METHODS[name].cost != "slow" and name != "xrai"


@pytest.mark.parametrize("method", [m for m in METHODS if _cheap(m)])
def test_every_registered_method_meets_its_kinds_contract(method, small, vit, images):
    model = small if _arch(method) == "small_cnn" else vit
    contract(explain(method, model, images, preset="quick"), 3, 32)


def test_a_toy_family_of_every_kind_plugs_in_and_meets_its_contract(toy, small, images):
    assert {METHODS[n].output for n in toy.NAMES} == set(OUTPUT_KINDS)
    for name in ("toy_brightness", "toy_concepts", "toy_neighbours", "toy_caption"):
        contract(explain(name, small, images), 3, 32)
    neighbours = explain("toy_neighbours", small, images, k=3).value
    np.testing.assert_array_equal(neighbours["indices"][:, 0], [0, 1, 2])   # each image is its own nearest
    np.testing.assert_allclose(neighbours["distances"][:, 0], 0, atol=1e-4)
    concepts = explain("toy_concepts", small, images).value
    assert concepts["names"] == ("mean", "spread")
    np.testing.assert_allclose(concepts["scores"][:, 0], images.flatten(1).mean(1).numpy(), rtol=1e-5)
    caption = explain("toy_caption", small, images).value
    assert caption == ["bright" if v > 0 else "dark" for v in images.mean((1, 2, 3)).tolist()]
    assert "toy_concepts" in __import__("medxai_lite.explain", fromlist=["x"]).list_methods("Concept-based")


@pytest.mark.parametrize(("name", "pattern"), [
    ("toy_broken_examples", r"'examples' method must return .*sorted nearest first.*distances must be sorted"),
    ("toy_broken_text", r"'text' method must return a list of N strings; got 2 items"),
    ("toy_broken_map", r"'map' method must return .*raw maps of shape \[4, 4, 4\] for 3 images"),
])
def test_an_output_outside_its_contract_is_refused(toy, small, images, name, pattern):
    with pytest.raises(ValueError, match=pattern):
        explain(name, small, images)


def test_sign_and_scale_are_refused_for_a_kind_without_maps(toy, small, images):
    with pytest.raises(ValueError, match="sign and scale apply to map methods"):
        explain("toy_caption", small, images, sign="absolute")
