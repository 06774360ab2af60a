"""The concept chapter's helpers (medxai_lite.concepts) against known answers.

- ``gradient_alignment``: a model linear in the layer's activations gives cosine 1 for every pair;
  gradients on disjoint supports give 0;
- ``probe_vectors``: a concept decided by one feature gets that feature's axis;
- ``segment_overlap``: hand-made segments and masks give their exact shares;
- ``correctable_errors``: a bottleneck with a hand-set head fixes exactly the images whose
  deciding concept was wrong;
- ``error_by_uncertainty``: equal bins, error rates and the AUROC of a perfect and a useless signal;
- TCAV computes each concept's activations once (captum 0.9 recomputed them per experiment) and
  returns the same numbers;
- the registry's ``tcav`` takes ``source="intervention"`` and has a ``"book"`` preset;
- bad input raises a ValueError naming the parameter.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medxai_lite import concepts as C
from medxai_lite.concepts.bottleneck import ConceptBottleneck
from medxai_lite.concepts.discovery import ACEConcept, ACEResult
from medxai_lite.latent import LatentFeatures


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Small models run fastest on one thread on the shared 2-core machine."""


# --------------------------------------------------------------------------- gradient_alignment
class _LinearOnLayer(nn.Module):
    """``layer`` (identity) then a fixed linear map of the flattened input: the layer gradient of a
    logit is that logit's weight row for every input."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Identity()
        self.head = nn.Linear(3 * 4 * 4, 2)
        torch.manual_seed(0)
        nn.init.normal_(self.head.weight)

    def forward(self, x):
        return self.head(self.layer(x).flatten(1))


class _MaskedSum(nn.Module):
    """logit 0 = sum(relu(layer(x))): its layer gradient is the indicator of the positive inputs."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Identity()
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        s = torch.relu(self.layer(x)).flatten(1).sum(1, keepdim=True) + self.bias
        return torch.cat([s, -s], 1)


def test_gradient_alignment_is_one_for_a_linear_model_and_zero_for_disjoint_supports():
    x = torch.randn(5, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    linear = _LinearOnLayer().eval()
    out = C.gradient_alignment(linear, "layer", 1, x)
    assert out["cosine"].shape == (5, 5)
    assert out["mean"] == pytest.approx(1.0, abs=1e-6) and out["min"] == pytest.approx(1.0, abs=1e-6)
    # three images, each positive on its own third of the pixels: gradients with disjoint supports
    y = -torch.ones(3, 3, 4, 4)
    y.view(3, -1)[0, :16] = 1
    y.view(3, -1)[1, 16:32] = 1
    y.view(3, -1)[2, 32:] = 1
    out = C.gradient_alignment(_MaskedSum().eval(), "layer", [0, 0, 0], y)
    np.testing.assert_allclose(out["cosine"], np.eye(3), atol=1e-7)
    assert out["mean"] == pytest.approx(0.0) and out["min"] == pytest.approx(0.0)


def test_gradient_alignment_refuses_bad_input():
    model = _LinearOnLayer().eval()
    x = torch.randn(3, 3, 4, 4)
    with pytest.raises(ValueError, match="inputs"):
        C.gradient_alignment(model, "layer", 0, x[:1])
    with pytest.raises(ValueError, match="target"):
        C.gradient_alignment(model, "layer", 5, x)
    with pytest.raises(ValueError, match="target"):
        C.gradient_alignment(model, "layer", [0, 1], x)
    with pytest.raises(ValueError, match="layer"):
        C.gradient_alignment(model, "nowhere", 0, x)
    with pytest.raises(RuntimeError, match="eval"):          # the package's rule for a model in training mode
        C.gradient_alignment(model.train(), "layer", 0, x)


# --------------------------------------------------------------------------- probe_vectors
def test_probe_vectors_find_the_feature_that_decides_each_concept():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 6)) * np.array([1, 5, 1, 0.2, 1, 1])      # unequal scales
    concepts = np.column_stack([features[:, 1] > 0, features[:, 3] < 0])       # feature 1 up, feature 3 down
    vectors = C.probe_vectors(features, concepts)
    assert vectors.shape == (2, 6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert np.argmax(np.abs(vectors[0])) == 1 and vectors[0, 1] > 0.95
    assert np.argmax(np.abs(vectors[1])) == 3 and vectors[1, 3] < -0.95
    # projecting on the vectors separates the concepts
    proj = C.concept_projections(features, vectors)
    assert ((proj[:, 0] > np.median(proj[:, 0])) == concepts[:, 0]).mean() > 0.95


def test_probe_vectors_refuse_bad_input():
    x = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="features"):
        C.probe_vectors(x[0], np.ones((10, 1)))
    with pytest.raises(ValueError, match="concepts"):
        C.probe_vectors(x, np.ones((9, 1)))
    with pytest.raises(ValueError, match=r"concepts\[:, 0\] must hold both"):
        C.probe_vectors(x, np.ones((10, 1)))
    with pytest.raises(ValueError, match="C must"):
        C.probe_vectors(x, np.arange(10) % 2, C=0)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        C.probe_vectors(bad, np.arange(10) % 2)


# --------------------------------------------------------------------------- segment_overlap
def _ace_result(masks, owner, members):
    concepts = [ACEConcept(f"concept {k + 1}", np.asarray(m), len(set(owner[m])), np.zeros(2))
                for k, m in enumerate(members)]
    n = len(masks)
    return ACEResult(concepts, torch.zeros(n, 3, 4, 4), np.asarray(masks), np.asarray(owner), np.full(n, 5),
                     np.zeros((n, 2)), np.zeros(n, dtype=int))


def test_segment_overlap_gives_the_exact_shares():
    seg = np.zeros((3, 4, 4), dtype=bool)
    seg[0, :2, :] = True          # 8 pixels, top half of image 0
    seg[1, :, :1] = True          # 4 pixels, left column of image 1
    seg[2, 3, :] = True           # 4 pixels, bottom row of image 0
    result = _ace_result(seg, np.array([0, 1, 0]), [[0, 2], [1]])
    mask = np.zeros((2, 4, 4), dtype=bool)
    mask[0, 0, :] = True          # image 0: top row -> half of segment 0, none of segment 2
    mask[1, :2, :] = True         # image 1: top half -> half of segment 1
    np.testing.assert_allclose(C.segment_overlap(result, mask), [(0.5 + 0.0) / 2, 0.5])
    np.testing.assert_allclose(C.segment_overlap(result, np.ones((2, 4, 4), bool)), [1.0, 1.0])
    with pytest.raises(ValueError, match="masks"):
        C.segment_overlap(result, np.ones((2, 5, 5), bool))
    with pytest.raises(ValueError, match="one mask per discovery image"):
        C.segment_overlap(result, np.ones((1, 4, 4), bool))


# --------------------------------------------------------------------------- correctable_errors
def _hand_set_cbm():
    """Two concepts and two classes: the concept layer copies features 0 and 1 (times 20) into the concept
    logits, and the class is "yes" exactly when concept 1 ("decides") is above 0.5; concept 0 is unused."""
    b = ConceptBottleneck(2, 2, 2, "joint")          # its standardisation starts as the identity
    with torch.no_grad():
        b.concept_layer.weight.copy_(torch.eye(2) * 20)
        b.concept_layer.bias.zero_()
        b.head.weight.copy_(torch.tensor([[0.0, -5.0], [0.0, 5.0]]))
        b.head.bias.copy_(torch.tensor([2.5, -2.5]))
    return C.ConceptBottleneckModel(nn.Linear(2, 2), b.eval(), ["unused", "decides"], ["no", "yes"]).eval()


def test_correctable_errors_lists_exactly_the_fixable_images():
    model = _hand_set_cbm()
    feats = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=np.float32)   # predicted: yes, no, yes, no
    truth = np.array([[1, 1], [1, 1], [0, 1], [0, 1]], dtype=np.float32)
    # image 0 right; 1 and 3 wrong and fixed by the true "decides" (1); image 2 wrong ("no" is its label)
    # but its true "decides" is 1 as predicted, so no single correction fixes it
    labels = np.array([1, 1, 0, 1])
    data = LatentFeatures(feats, np.zeros((4, 2), np.float32), labels, ("no", "yes"), concepts=truth,
                          concept_names=("unused", "decides"))
    fixes = C.correctable_errors(model, data)
    assert list(fixes["position"]) == [1, 3] and set(fixes["concept"]) == {"decides"}
    assert (fixes["before"] == "no").all() and (fixes["after"] == "yes").all() and (fixes["label"] == "yes").all()
    assert (fixes["true"] == 1).all() and (fixes["predicted"] < 0.01).all()
    data.labels = np.array([1, 0, 1, 0])                 # every prediction right: nothing to fix
    assert len(C.correctable_errors(model, data)) == 0


def test_correctable_errors_refuses_a_posthoc_cbm_and_data_without_concepts():
    small = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 2))
    posthoc = C.ConceptBottleneckModel.untrained(small, ["a", "b"], 2, kind="posthoc-cbm")
    data = LatentFeatures(np.zeros((2, 4), np.float32), np.zeros((2, 2), np.float32), np.zeros(2, int), ("0", "1"),
                          concepts=np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="probabilities"):
        C.correctable_errors(posthoc, data)
    cbm = C.ConceptBottleneckModel.untrained(small, ["a", "b", "c"], 2)
    with pytest.raises(ValueError, match="3 concept labels"):
        C.correctable_errors(cbm, data)


# --------------------------------------------------------------------------- error_by_uncertainty
def test_error_by_uncertainty_bins_and_auroc():
    u = np.arange(10, dtype=float)
    errors = u >= 8                                    # the two most uncertain are the wrong ones
    table = C.error_by_uncertainty(u, errors, n_bins=5)
    assert list(table["n"]) == [2] * 5
    np.testing.assert_allclose(table["uncertainty"], [0.5, 2.5, 4.5, 6.5, 8.5])
    np.testing.assert_allclose(table["error_rate"], [0, 0, 0, 0, 1])
    assert table.attrs["auroc"] == pytest.approx(1.0)
    flat = C.error_by_uncertainty(np.ones(10), errors, n_bins=2)        # an uncertainty that says nothing
    assert flat.attrs["auroc"] == pytest.approx(0.5)
    assert np.isnan(C.error_by_uncertainty(u, np.zeros(10, bool)).attrs["auroc"])
    two_d = C.error_by_uncertainty(u.reshape(5, 2), errors.reshape(5, 2), n_bins=5)
    assert two_d.equals(table)


def test_error_by_uncertainty_refuses_bad_input():
    with pytest.raises(ValueError, match="same non-empty shape"):
        C.error_by_uncertainty(np.ones(3), np.zeros(4, bool))
    with pytest.raises(ValueError, match="n_bins"):
        C.error_by_uncertainty(np.ones(3), np.zeros(3, bool), n_bins=4)
    with pytest.raises(ValueError, match="errors must be booleans"):
        C.error_by_uncertainty(np.ones(3), np.array([0, 2, 1]))
    with pytest.raises(ValueError, match="NaN"):
        C.error_by_uncertainty(np.array([1.0, np.nan]), np.zeros(2, bool))


# --------------------------------------------------------------------------- TCAV: activations once
def test_tcav_computes_each_concepts_activations_once_with_the_same_result(monkeypatch):
    """captum 0.9 recomputes a concept's activations for every experiment it is in (K + 1 times for
    each random set); the package's TCAV computes them once and gets the same scores as recomputing."""
    import importlib

    from captum.concept import TCAV

    from medxai_lite.models.zoo import SmallCNN

    tcav_module = importlib.import_module("medxai_lite.concepts.tcav")
    torch.manual_seed(0)
    model = SmallCNN(2, width=4).eval()
    g = torch.Generator().manual_seed(0)
    sets = {"a": torch.randn(6, 3, 16, 16, generator=g), "b": torch.randn(6, 3, 16, 16, generator=g)}
    inputs, pool = torch.randn(4, 3, 16, 16, generator=g), torch.randn(30, 3, 16, 16, generator=g)
    calls = []
    original = TCAV.generate_activation

    def counting(self, layers, concept):
        calls.append(concept.id)
        return original(self, layers, concept)

    monkeypatch.setattr(TCAV, "generate_activation", counting)
    once = C.tcav(model, "features.2", 1, sets, inputs, pool, n_random=3)
    assert sorted(calls) == sorted(set(calls)) and len(calls) == 2 + 2 * 3       # every concept once
    calls.clear()
    monkeypatch.setattr(tcav_module, "_reusing_tcav", lambda: TCAV)              # captum as it comes
    again = C.tcav(model, "features.2", 1, sets, inputs, pool, n_random=3)
    assert len(calls) == 2 * (2 * 3 + 3)                                         # twice per experiment
    np.testing.assert_array_equal(once.scores, again.scores)
    np.testing.assert_array_equal(once.random_scores, again.random_scores)
    np.testing.assert_allclose(once.cavs, again.cavs)


# --------------------------------------------------------------------------- the registry's tcav
def test_the_registry_tcav_has_a_book_preset_and_takes_rendered_examples():
    from medxai_lite.explain import METHODS, explain
    from medxai_lite.models.zoo import SmallCNN

    info = METHODS["tcav"]
    assert "source" in info.options
    assert set(info.presets["quick"]) == set(info.presets["book"])
    assert info.presets["book"]["n_random"] > info.presets["quick"]["n_random"]
    torch.manual_seed(0)
    model = SmallCNN(2, width=4).eval()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    rendered = explain("tcav", model, x, targets=1, preset="quick", source="intervention", layer="features.2")
    from medxai_lite.data import INTERVENTIONS

    assert rendered.value["names"] == tuple(INTERVENTIONS["phantom-skin"])      # "artefact" included
    assert rendered.value["scores"].shape == (3, len(INTERVENTIONS["phantom-skin"]))
    with pytest.raises(ValueError, match="source"):
        explain("tcav", model, x, targets=1, preset="quick", source="dreams", layer="features.2")
