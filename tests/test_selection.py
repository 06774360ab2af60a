"""medxai_lite.selection: the lesion-bearing images the chapters explain."""
from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from medxai_lite.data import load_dataset
from medxai_lite.selection import LESION_POOL, explain_lesions, lesion_images


def fake_model(size):
    return types.SimpleNamespace(report=types.SimpleNamespace(settings={"image_size": size}))


def test_lesion_images_are_the_first_lesion_bearing_test_images_at_the_model_size():
    test, batch = lesion_images("phantom-skin", fake_model(48), 5, seed=3)
    assert len(test) == LESION_POOL and test.split == "test"
    assert batch["image"].shape == (5, 3, 48, 48) and batch["mask"].shape == (5, 48, 48)
    assert batch["mask"].flatten(1).any(1).all()                       # every image carries a lesion
    # the same pool as loading the split directly, and the first five items with a mask
    same = load_dataset("phantom-skin", split="test", image_size=48, n=LESION_POOL, seed=3)
    first = [i for i in range(len(same)) if same[i]["mask"].any()][:5]
    assert [int(i) for i in batch["index"]] == first
    assert torch.equal(batch["image"], torch.stack([same[i]["image"] for i in first]))


def test_lesion_images_needs_a_trained_model_report():
    with pytest.raises(ValueError, match="image_size"):
        lesion_images("phantom-skin", object(), 2)


def test_explain_lesions_explains_the_true_class_with_every_method(monkeypatch):
    calls = []

    def fake_explain(method, model, images, targets=None, **options):
        calls.append((method, targets.tolist(), options))
        return types.SimpleNamespace(maps=np.zeros((len(images), *images.shape[-2:]), np.float32))

    monkeypatch.setattr("medxai_lite.explain.explain", fake_explain)
    run = explain_lesions("phantom-chest-xray", ["a", "b"], n=3, model=fake_model(32), seed=4,
                          method_options={"b": {"k": 2}, "a": {"seed": 1}})
    assert set(run) == {"model", "test", "batch", "maps"} and set(run["maps"]) == {"a", "b"}
    assert run["maps"]["a"].shape == (3, 32, 32)
    # the seed reaches the methods, unless a method's own options name one
    assert [c[0] for c in calls] == ["a", "b"] and calls[1][2] == {"seed": 4, "k": 2} and calls[0][2] == {"seed": 1}
    assert calls[0][1] == run["batch"]["label"].tolist()               # the true classes
