"""Helpers the example-based chapter adds to the package, with known answers:

- medxai_lite.metrics.examples: patch hits against a lesion, their chance level, random patch
  selections, label agreement of returned examples and its chance, planted items in a ranking;
- influence(from_index=True): TracIn on the head over cached features gives the scores of the
  network path;
- train_l2x(targets=...): known probabilities train the same explainer as the forward pass;
- the registry's "book" presets of the family are set and accepted.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import hypergeom
from torch import nn

from medxai_lite.data import load_dataset
from medxai_lite.explain import METHODS, explain, list_methods
from medxai_lite.metrics.examples import (label_agreement, label_chance, patch_chance, patch_hit_rate, patch_touches,
                                          planted_ranking, random_patch_maps, top_patches)
from medxai_lite.models.zoo import SmallCNN


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (see tests/conftest.py)."""


# --------------------------------------------------------------------------- patches
def _lesion():
    """An 8 x 8 image on a 4-pixel grid (2 x 2 patches); the lesion touches patches 0 and 1 only."""
    m = np.zeros((1, 8, 8), bool)
    m[0, 1:3, 2:6] = True
    return m


def test_patch_touches_hit_rate_and_chance_known_answers():
    m = _lesion()
    np.testing.assert_array_equal(patch_touches(m, 4), [[True, True, False, False]])
    np.testing.assert_allclose(patch_hit_rate([[0, 3]], m, 4), [0.5])
    np.testing.assert_allclose(patch_hit_rate([[0, 1]], m, 4), [1.0])
    np.testing.assert_allclose(patch_hit_rate([[2]], m, 4), [0.0])
    np.testing.assert_allclose(patch_chance(m, 4), [0.5])                      # 2 of the 4 patches
    np.testing.assert_allclose(patch_chance(m, 2), [4 / 16])                   # the lesion spans 2 x 2 cells of 2 px
    # the chance level is what random selections score on average
    maps, sel = random_patch_maps(4000, 8, 4, 2, seed=0)
    assert np.mean(patch_hit_rate(sel, np.repeat(m, 4000, 0), 4)) == pytest.approx(0.5, abs=0.02)


def test_random_patch_maps_keep_k_distinct_patches():
    maps, sel = random_patch_maps(5, (8, 12), 4, 3, seed=1)
    assert maps.shape == (5, 8, 12) and sel.shape == (5, 3) and maps.dtype == np.float32
    assert set(np.unique(maps)) == {0.0, 1.0} and (maps.sum((1, 2)) == 3 * 16).all()
    assert all(len(set(row)) == 3 for row in sel)
    for i in range(5):                                                         # the map is the selection
        cells = maps[i].reshape(2, 4, 3, 4)[:, 0, :, 0].ravel()
        np.testing.assert_array_equal(np.flatnonzero(cells), sel[i])
    again, _ = random_patch_maps(5, (8, 12), 4, 3, seed=1)
    np.testing.assert_array_equal(maps, again)


def test_top_patches_of_a_map_are_the_cells_with_the_largest_mean():
    maps = np.zeros((2, 8, 8))
    maps[0, 0:4, 4:8] = 1.0                      # patch 1 everywhere
    maps[0, 4, 4] = 5.0                          # one bright pixel: patch 3 has mean 5/16 < 1
    maps[1, 4:8, 0:4] = 0.2                      # patch 2
    maps[1, 0, 0] = 4.0                          # patch 0: mean 0.25 > 0.2
    np.testing.assert_array_equal(top_patches(maps, 4, 1), [[1], [0]])
    np.testing.assert_array_equal(top_patches(maps, 4, 2), [[1, 3], [0, 2]])
    np.testing.assert_allclose(patch_hit_rate(top_patches(maps, 4, 2), np.repeat(_lesion(), 2, 0), 4), [0.5, 0.5])


def test_label_agreement_and_chance():
    np.testing.assert_allclose(label_agreement([[0, 0, 1, 1], [2, 2, 2, 0]], [0, 2]), [0.5, 0.75])
    np.testing.assert_allclose(label_chance([0, 0, 0, 1], [0, 1, 2]), [0.75, 0.25, 0.0])


def test_planted_ranking_counts_against_the_hypergeometric_chance():
    scores = np.arange(20, dtype=float)                        # item 19 has the largest score
    result = planted_ranking(scores, [19, 18, 0], k=5)
    assert result.hits == 2 and result.expected == pytest.approx(5 * 3 / 20)
    np.testing.assert_array_equal(result.ranks, [1, 2, 20])
    assert result.p_value == pytest.approx(hypergeom.sf(1, 20, 3, 5))
    assert result.enrichment == pytest.approx(2 / 0.75)
    low = planted_ranking(scores, [19, 18, 0], k=5, largest=False)          # the most negative first
    assert low.hits == 1 and list(low.ranks) == [1, 19, 20]
    assert planted_ranking(scores, [19], k=1).p_value == pytest.approx(1 / 20)


@pytest.mark.parametrize(("call", "name"), [
    (lambda: patch_touches(np.zeros((1, 8, 8), bool), 3), "patch"),
    (lambda: patch_touches(np.zeros((8, 8), bool), 4), "masks"),
    (lambda: patch_hit_rate([[0, 9]], _lesion(), 4), "selected"),
    (lambda: patch_hit_rate([0, 1], _lesion(), 4), "selected"),
    (lambda: random_patch_maps(2, 8, 4, 5), "k"),
    (lambda: random_patch_maps(0, 8, 4, 1), "n"),
    (lambda: top_patches(np.zeros((1, 8, 8)), 4, 5), "k"),
    (lambda: top_patches(np.zeros((8, 8)), 4, 1), "maps"),
    (lambda: label_agreement([0, 1], [0, 1]), "example_labels"),
    (lambda: label_agreement([[0, 1]], [0, 1]), "labels"),
    (lambda: label_chance([], [0]), "reference_labels"),
    (lambda: planted_ranking([1.0, np.nan], [0], 1), "scores"),
    (lambda: planted_ranking([1.0, 2.0], [2], 1), "planted"),
    (lambda: planted_ranking([1.0, 2.0], [0], 3), "k"),
    (lambda: planted_ranking([1.0, 2.0], [0], 1, largest="yes"), "largest"),
])
def test_bad_input_names_the_parameter(call, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call()


# --------------------------------------------------------------------------- influence from the index
def _settled_cnn() -> nn.Module:
    torch.manual_seed(0)
    model = SmallCNN(2, width=4)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
    return model.eval()


def test_influence_from_the_index_equals_the_network_path():
    model = _settled_cnn()
    refs = load_dataset("phantom-skin", "train", image_size=32, n=24, seed=0)
    x = refs.batch([1, 2, 3])["image"]
    for train in ("batch", refs, (refs.batch()["image"], refs.labels)):
        for normalize in (False, True):
            a = explain("influence", model, x, train=train, k=3, normalize=normalize)
            b = explain("influence", model, x, train=train, k=3, normalize=normalize, from_index=True)
            np.testing.assert_allclose(b.value["scores"], a.value["scores"], rtol=1e-4, atol=1e-6)
            np.testing.assert_array_equal(b.value["indices"], a.value["indices"])
            np.testing.assert_array_equal(b.extras["harmful_indices"], a.extras["harmful_indices"])
            assert b.extras["from_index"] and not a.extras["from_index"]
    for options in ({"scope": "all"}, {"estimator": "influence_function"}):
        with pytest.raises(ValueError, match="from_index"):
            explain("influence", model, x, train="batch", from_index=True, **options)
    with pytest.raises(ValueError, match="from_index"):
        explain("influence", model, x, train="batch", from_index="yes")


def test_influence_from_the_cached_training_index(tmp_cache):
    """train=None: the model's training split under the labels it was trained with, read from the
    index cached beside the model; the same scores as passing that split explicitly."""
    from medxai_lite.explain.examples import training_split
    from medxai_lite.models.explainers import get_mislabelled_model

    model = get_mislabelled_model("phantom-chest-xray", n_planted=4, image_size=32, n_train=40, width=4, epochs=1)
    train, labels = training_split(model)
    x = train.batch([0, 7])["image"]
    cached = explain("influence", model, x, k=40, from_index=True)
    assert list(tmp_cache.rglob("*example-index*.npz")) and cached.extras["source"].endswith("(cached features)")
    explicit = explain("influence", model, x, k=40, train=(train.batch()["image"], labels))
    np.testing.assert_allclose(cached.value["scores"], explicit.value["scores"], rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(cached.extras["training_labels"], labels)


# --------------------------------------------------------------------------- L2X with known targets
class _MeanBrightness(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(1, 2)

    def forward(self, x):
        return self.head(x.mean((1, 2, 3))[:, None])


def test_train_l2x_with_known_probabilities_trains_the_same_explainer():
    from medxai_lite.models.explainers import train_l2x

    torch.manual_seed(0)
    model = _MeanBrightness().eval()
    images = torch.randn(12, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        probs = model(images).softmax(1).numpy()
    a = train_l2x(model, images, k=1, patch=8, epochs=2, width=4, seed=0)
    b = train_l2x(model, images, k=1, patch=8, epochs=2, width=4, seed=0, targets=probs)
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        torch.testing.assert_close(p, q)
    for bad in (probs[:5], probs * 2, np.full_like(probs, np.nan)):
        with pytest.raises(ValueError, match="targets"):
            train_l2x(model, images, k=1, patch=8, epochs=1, width=4, targets=bad)


def test_the_uninformed_l2x_loss_is_the_entropy_of_the_mean_prediction(tmp_cache):
    from medxai_lite.latent import penultimate_features
    from medxai_lite.explain.examples import training_split
    from medxai_lite.models.explainers import get_mislabelled_model, training_probabilities, uninformed_l2x_loss

    assert uninformed_l2x_loss([[1.0, 0.0], [0.0, 1.0]]) == pytest.approx(np.log(2))
    assert uninformed_l2x_loss([[0.2, 0.8]] * 3) == pytest.approx(-(0.2 * np.log(0.2) + 0.8 * np.log(0.8)))
    with pytest.raises(ValueError, match="probabilities"):
        uninformed_l2x_loss([[0.5, 0.6]])
    model = get_mislabelled_model("phantom-skin", n_planted=2, image_size=32, n_train=30, width=4, epochs=1)
    train, _ = training_split(model)
    logits = torch.as_tensor(penultimate_features(model, train, keep_images=False).logits)
    np.testing.assert_allclose(training_probabilities(model), logits.softmax(1).numpy(), rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- presets
def test_the_family_has_book_presets_within_its_options():
    for method in list_methods("Example-based"):
        info = METHODS[method]
        assert info.presets["book"], method
        assert set(info.presets["book"]) <= set(info.options), method
    assert METHODS["influence"].presets["book"]["from_index"] is True
    assert METHODS["counterfactual_proto"].presets["book"]["steps"] < 100        # the adapter's default
