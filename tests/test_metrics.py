"""medxai_lite.metrics: known answers for every metric, the library wrappers against the
libraries called directly, the statistics against SciPy and hand computations, bad input.

No test depends on the explanation registry: explanations come from a plain gradient saliency
written here, or from maps built by hand.
"""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from scipy import stats as sps
from torch import nn

import medxai_lite.metrics as M
from medxai_lite.metrics import fidelity, stats

RNG = np.random.default_rng(0)


# torch on one thread for the module (conftest.py): on shared cores 2 spin-waiting threads are slower
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- models and explainers


class PixelReader(nn.Module):
    """Class-1 logit = sum_p w_p * mean_c x[c, p]; class-0 logit = a constant. Relevance is known
    exactly: removing pixel p (replacing it by a baseline b) lowers the logit by w_p mean_c(x - b)[p]."""

    def __init__(self, weights: torch.Tensor, offset: float):
        super().__init__()
        self.register_buffer("weights", weights.float())
        self.offset = offset

    def forward(self, x):
        s = (x.mean(1) * self.weights).flatten(1).sum(1)
        return torch.stack([torch.full_like(s, self.offset), s], 1)


def tiny_cnn(seed: int = 0, classes: int = 2) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes)).eval()


def gradient_saliency(model, images, targets):
    """|d logit_t / d x|, max over channels, scaled to [0, 1] per image (Simonyan et al. 2014)."""
    images = images.detach().clone().requires_grad_(True)
    out = model(images)
    (grad,) = torch.autograd.grad(out.gather(1, targets.reshape(-1, 1).to(out.device)).sum(), images)
    sal = grad.abs().amax(1)
    return (sal / sal.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]).numpy()


@pytest.fixture(scope="module")
def reader():
    """16x16 images; 8 pixels carry distinct weights 0.8..0.1, the rest none (logits stay moderate,
    so softmax probabilities do not saturate)."""
    h = w = 16
    weights = torch.zeros(h, w)
    idx = torch.from_numpy(np.random.default_rng(1).choice(h * w, 8, replace=False))
    weights.view(-1)[idx] = torch.arange(8, 0, -1).float() / 10
    model = PixelReader(weights, offset=2.7).eval()
    gen = torch.Generator().manual_seed(2)
    images = 1.0 + torch.rand(3, 3, h, w, generator=gen)                 # positive: contributions >= 0
    contributions = (images.mean(1) * weights).numpy()                   # the true relevance [N, H, W]
    return model, images, torch.ones(3, dtype=torch.long), contributions


@pytest.fixture(scope="module")
def small():
    """A tiny conv net, 4 images of 32 px, gradient maps."""
    model = tiny_cnn()
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    targets = torch.tensor([0, 1, 0, 1])
    return model, images, targets, gradient_saliency(model, images, targets)


def box_masks(n=2, size=16, lo=4, hi=8):
    masks = np.zeros((n, size, size), bool)
    masks[:, lo:hi, lo:hi] = True
    return masks


# --------------------------------------------------------------------------- registry


def test_registry_lists_every_metric_with_its_attributes():
    expected = {"relevance_mass_accuracy", "relevance_rank_accuracy", "pointing_game", "deletion", "insertion",
                "aopc", "road_morf", "road_lerf", "road_combined", "confidence_change", "confidence_increase",
                "randomisation_similarity"}
    assert set(M.METRICS) == expected
    for name, func in M.METRICS.items():
        assert func.name == name and isinstance(func.higher_is_better, bool) and func.category in M.CATEGORIES
        assert func.__doc__ and "Example" in func.__doc__, name
    assert M.list_metrics("localisation") == ["pointing_game", "relevance_mass_accuracy", "relevance_rank_accuracy"]
    assert not M.deletion.higher_is_better and M.insertion.higher_is_better and not M.road_morf.higher_is_better
    assert list(M.metrics_table().name) == M.list_metrics()
    with pytest.raises(ValueError, match="category"):
        M.list_metrics("speed")
    assert set(M.__all__) <= set(dir(M))


@pytest.mark.parametrize("name", sorted(M.METRICS))
def test_every_metric_returns_one_float_per_image(name, small):
    model, images, targets, maps = small
    masks = np.zeros(maps.shape, bool)
    masks[:, 8:20, 8:20] = True
    options = dict(explainer=gradient_saliency) if name == "randomisation_similarity" else {}
    if name in ("deletion", "insertion", "aopc"):
        options["steps"] = 8
    if name.startswith("road"):
        options["percentiles"] = (50,)
    out = M.METRICS[name](model, images, targets, maps, masks, **options)
    assert isinstance(out, np.ndarray) and out.shape == (4,) and out.dtype == np.float64
    assert np.isfinite(out).all()


# --------------------------------------------------------------------------- localisation


def test_relevance_mass_accuracy_known_answers():
    masks = box_masks()
    maps = masks * RNG.random(masks.shape)                                  # all relevance inside
    assert np.array_equal(M.relevance_mass_accuracy(None, None, None, maps, masks), [1.0, 1.0])
    half = maps.copy()
    half[:, 0, :] = 0
    half[:, 0, 0] = maps.sum((1, 2))                                        # as much outside as inside
    np.testing.assert_allclose(M.relevance_mass_accuracy(None, None, None, half, masks), 0.5)
    flat = np.ones(masks.shape)                                              # constant positive: chance level
    np.testing.assert_allclose(M.relevance_mass_accuracy(None, None, None, flat, masks), 16 / 256)
    signed = np.where(masks, 1.0, -5.0)                                      # negative relevance is dropped
    assert np.array_equal(M.relevance_mass_accuracy(None, None, None, signed, masks), [1.0, 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        M.relevance_mass_accuracy(None, None, None, signed, masks, positive_only=False)


def test_relevance_rank_accuracy_known_answers():
    masks = box_masks()
    maps = masks + 0.1 * RNG.random(masks.shape)                             # top-|M| pixels = the mask
    assert np.array_equal(M.relevance_rank_accuracy(None, None, None, maps, masks), [1.0, 1.0])
    assert np.array_equal(M.relevance_rank_accuracy(None, None, None, 1.0 - maps, masks), [0.0, 0.0])
    shifted = np.roll(masks, 2, axis=2) + 0.0                                 # box moved by 2 of its 4 columns
    np.testing.assert_allclose(M.relevance_rank_accuracy(None, None, None, shifted, masks), 0.5)
    # ties at the cut-off are shared: 16 mask pixels among 32 tied top pixels -> 0.5, whatever the order
    tied = np.zeros(masks.shape)
    tied[:, 4:8, 2:10] = 1.0
    np.testing.assert_allclose(M.relevance_rank_accuracy(None, None, None, tied, masks), 0.5)


def test_pointing_game_hit_miss_and_tolerance():
    masks = np.zeros((3, 16, 16), bool)
    masks[:, 6:10, 6:10] = True
    maps = RNG.random((3, 16, 16)) * 0.5
    maps[0, 7, 8] = 1.0                  # peak inside: hit
    maps[1, 0, 0] = 1.0                  # far away: miss
    maps[2, 7, 12] = 1.0                 # 3 px right of the mask: a near miss
    assert np.array_equal(M.pointing_game(None, None, None, maps, masks), [1.0, 0.0, 0.0])
    assert np.array_equal(M.pointing_game(None, None, None, maps, masks, tolerance=3), [1.0, 0.0, 1.0])
    assert np.array_equal(M.pointing_game(None, None, None, maps, masks, tolerance=2.9), [1.0, 0.0, 0.0])
    two_peaks = np.zeros((1, 16, 16))
    two_peaks[0, 7, 7] = two_peaks[0, 0, 0] = 1.0                             # tie: one of two peaks hits
    assert M.pointing_game(None, None, None, two_peaks, masks[:1])[0] == 0.5
    with pytest.raises(ValueError, match="tolerance"):
        M.pointing_game(None, None, None, maps, masks, tolerance=-1)


# --------------------------------------------------------------------------- fidelity: known answers


def _orderings(contributions):
    """The true map, a random permutation of it, and the reversed ordering."""
    rng = np.random.default_rng(5)
    shuffled = np.stack([rng.permutation(c.ravel()).reshape(c.shape) for c in contributions])
    return {"true": contributions, "random": shuffled, "reversed": -contributions}


def test_deletion_curve_is_the_hand_computed_one(reader):
    model, images, targets, contrib = reader
    n, h, w = contrib.shape
    res = M.perturbation_curves(model, images, targets, contrib, mode="deletion", steps=h * w, score="logit")
    top = -np.sort(-contrib.reshape(n, -1), axis=1)                          # contributions, most relevant first
    total = contrib.reshape(n, -1).sum(1, keepdims=True)
    expected = np.concatenate([total, total - np.cumsum(top, axis=1)], axis=1)
    np.testing.assert_allclose(res.curves, expected, atol=1e-4)
    np.testing.assert_allclose(res.fractions, np.arange(h * w + 1) / (h * w))
    np.testing.assert_allclose(res.auc, fidelity.trapezoid(expected, res.fractions, axis=1), atol=1e-5)
    ins = M.perturbation_curves(model, images, targets, contrib, mode="insertion", baseline="zero", steps=h * w,
                                score="logit")
    np.testing.assert_allclose(ins.curves, total - expected, atol=1e-4)


@pytest.mark.parametrize("baseline", ["zero", "mean", "blur"])
def test_true_ordering_beats_random_and_reversed(reader, baseline):
    model, images, targets, _ = reader
    # the true relevance with respect to this baseline: what each pixel adds to the class-1 logit
    contrib = ((images - fidelity.make_baseline(images, baseline)).mean(1) * model.weights).numpy()
    scores = {}
    for name, maps in _orderings(contrib).items():
        scores[name] = dict(
            deletion=M.deletion(model, images, targets, maps, baseline=baseline, steps=32),
            insertion=M.insertion(model, images, targets, maps, baseline=baseline, steps=32),
            aopc=M.aopc(model, images, targets, maps, baseline=baseline, steps=32))
    for other in ("random", "reversed"):
        assert (scores["true"]["deletion"] < scores[other]["deletion"]).all()
        assert (scores["true"]["insertion"] > scores[other]["insertion"]).all()
        assert (scores["true"]["aopc"] > scores[other]["aopc"]).all()
    assert (scores["true"]["aopc"] > 0).all()
    assert (scores["random"]["deletion"] < scores["reversed"]["deletion"]).all()


def staircase(side: int = 8, delta: float = 0.01):
    """A linear model whose deletion curve is known in closed form.

    P = side^2 pixels; pixel p carries the weight w_p = delta * (P - r_p), r_p its rank 0..P-1 in
    a random order. On an all-ones image with the zero baseline, removing the k most relevant
    pixels leaves the class-1 logit f_k = delta * sum_{j=k+1..P} j, so the drop after k steps is
    delta * (k P - k (k - 1) / 2) and, with one pixel per step (S = P),

        AOPC(L) = 1/(L+1) sum_{k=0..L} delta (k P - k (k - 1) / 2) = delta (P L / 2 - L (L - 1) / 6).
    """
    p = side * side
    ranks = np.random.default_rng(4).permutation(p)
    weights = torch.from_numpy(delta * (p - ranks).reshape(side, side)).float()
    model = PixelReader(weights, offset=0.0).eval()
    images = torch.ones(2, 3, side, side)
    maps = weights.numpy()[None].repeat(2, 0)                      # the true relevance, most relevant first
    return model, images, torch.ones(2, dtype=torch.long), maps, p, delta


def test_aopc_known_answer_on_a_linear_model():
    model, images, targets, maps, p, delta = staircase()
    expected = lambda L: delta * (p * L / 2 - L * (L - 1) / 6)        # noqa: E731
    res = M.perturbation_curves(model, images, targets, maps, steps=p, baseline="zero", score="logit")
    curve = M.aopc_curve(res)
    assert curve.shape == (2, p + 1)
    np.testing.assert_allclose(curve, np.vstack([expected(np.arange(p + 1))] * 2), rtol=1e-5, atol=1e-6)
    aopc = M.aopc(model, images, targets, maps, steps=p, baseline="zero", score="logit")
    np.testing.assert_allclose(aopc, expected(p), rtol=1e-5)            # delta (P^2 / 2 - P (P - 1) / 6)
    assert aopc[0] == pytest.approx(13.76, rel=1e-5)                     # 0.01 (64 * 32 - 64 * 63 / 6)
    # a uniform map removes pixels in raster order: a different, known curve (still exact)
    flat = M.aopc(model, images, targets, np.ones_like(maps) + np.arange(p)[::-1].reshape(8, 8) * 1e-9,
                  steps=p, baseline="zero", score="logit")
    assert flat[0] < aopc[0]


def test_aopc_curve_of_a_flat_model_is_zero_and_insertion_curves_are_refused(reader):
    model, images, targets, contrib = reader
    flat = M.perturbation_curves(model, images, targets, contrib, steps=8, score="logit")
    flat.curves[:] = 3.0                                             # a model that ignores the image
    assert np.array_equal(M.aopc_curve(flat), np.zeros((3, 9)))
    nan_row = np.array([[np.nan] * 5, [1.0, 0.5, 0.5, 0.0, 0.0]])
    out = M.aopc_curve(nan_row)
    assert np.isnan(out[0]).all() and out[1] == pytest.approx([0, 0.25, 1 / 3, 0.5, 0.6])
    ins = M.perturbation_curves(model, images, targets, contrib, mode="insertion", steps=4)
    with pytest.raises(ValueError, match="deletion"):
        M.aopc_curve(ins)


def test_trapezoid_works_with_either_numpy_name(monkeypatch):
    y, x = np.array([[0.0, 1.0, 1.0]]), np.array([0.0, 0.5, 1.0])
    assert fidelity.trapezoid(y, x, axis=1) == pytest.approx([0.75])
    if hasattr(np, "trapezoid"):                        # NumPy 2: pretend to be NumPy 1 (only trapz)
        trapezoid = np.trapezoid
        monkeypatch.delattr(np, "trapezoid")
        monkeypatch.setattr(np, "trapz", trapezoid, raising=False)
        assert fidelity.trapezoid(y, x, axis=1) == pytest.approx([0.75])


def test_batched_perturbation_equals_one_image_at_a_time(small):
    model, images, targets, maps = small
    for mode, baseline in [("deletion", "zero"), ("insertion", "blur")]:
        batched = M.perturbation_curves(model, images, targets, maps, mode=mode, baseline=baseline, steps=8,
                                        batch_size=64)
        single = M.perturbation_curves(model, images, targets, maps, mode=mode, baseline=baseline, steps=8,
                                       batch_size=1)
        np.testing.assert_allclose(batched.curves, single.curves, atol=1e-6)


def test_partial_curves_and_predicted_targets(small):
    model, images, targets, maps = small
    full = M.perturbation_curves(model, images, None, maps, steps=16)
    with torch.no_grad():
        assert np.array_equal(full.targets, model(images).argmax(1).numpy())
    explicit = M.perturbation_curves(model, images, full.targets, maps, steps=16)
    np.testing.assert_allclose(explicit.curves, full.curves, atol=1e-7)
    half = M.perturbation_curves(model, images, full.targets, maps, steps=8, max_fraction=0.5)
    np.testing.assert_allclose(half.fractions, full.fractions[:9])
    np.testing.assert_allclose(half.curves, full.curves[:, :9], atol=1e-6)
    for bad in (0, 1.5, float("nan"), True, "0.5"):                  # bool and str named, not a TypeError
        with pytest.raises(ValueError, match="max_fraction"):
            M.perturbation_curves(model, images, None, maps, max_fraction=bad)


def test_patches_are_removed_whole(reader):
    model, images, targets, _ = reader
    patch_values = RNG.permutation(64).reshape(1, 8, 8).astype(float)       # distinct value per 2x2 patch
    maps = np.repeat(np.repeat(patch_values, 2, 1), 2, 2).repeat(3, 0)
    by_patch = M.perturbation_curves(model, images, targets, maps, steps=64, patch_size=2)
    by_pixel = M.perturbation_curves(model, images, targets, maps, steps=64)
    np.testing.assert_allclose(by_patch.curves, by_pixel.curves, atol=1e-6)


def test_baselines():
    images = torch.randn(2, 3, 32, 32)
    assert torch.equal(fidelity.make_baseline(images, "zero"), torch.zeros_like(images))
    mean = fidelity.make_baseline(images, "mean")
    torch.testing.assert_close(mean[:, :, 5, 7], images.mean((2, 3)))
    flat = torch.full((1, 3, 32, 32), 0.7)
    torch.testing.assert_close(fidelity.make_baseline(flat, "blur"), flat)    # blurring a constant changes nothing
    blurred = fidelity.make_baseline(images, "blur", blur_sigma=2.0)
    assert blurred.std() < 0.5 * images.std()
    with pytest.raises(ValueError, match="baseline"):
        fidelity.make_baseline(images, "noise")


def test_an_image_equal_to_its_baseline_gives_a_flat_curve(reader):
    model, _, targets, contrib = reader
    flat = torch.full((3, 3, 16, 16), 1.5)
    for baseline in ("mean", "blur"):
        res = M.perturbation_curves(model, flat, targets, contrib, baseline=baseline, steps=8, score="logit")
        np.testing.assert_allclose(res.curves, res.curves[:, :1].repeat(9, 1), rtol=1e-5)


# --------------------------------------------------------------------------- pytorch-grad-cam wrappers


LIBRARY_NOISE = "ignore:__array_wrap__ must accept context:DeprecationWarning"   # pytorch-grad-cam 1.5 on NumPy 2


@pytest.mark.filterwarnings(LIBRARY_NOISE)
@pytest.mark.parametrize("kind", ["morf", "lerf", "combined"])
def test_road_equals_pytorch_grad_cam(kind, small):
    from pytorch_grad_cam.metrics import road
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    model, images, targets, maps = small
    percentiles = [20, 40, 60, 80]
    direct_cls = {"morf": road.ROADMostRelevantFirstAverage, "lerf": road.ROADLeastRelevantFirstAverage,
                  "combined": road.ROADCombined}[kind]
    torch.manual_seed(7)
    direct = direct_cls(percentiles=percentiles)(images, maps.astype(np.float32),
                                                 [ClassifierOutputSoftmaxTarget(int(t)) for t in targets], model)
    ours = M.METRICS[f"road_{kind}"](model, images, targets, maps, percentiles=percentiles, seed=7)
    np.testing.assert_allclose(ours, direct, rtol=0, atol=1e-7)
    state = torch.get_rng_state()
    again = M.METRICS[f"road_{kind}"](model, images, targets, maps, percentiles=percentiles, seed=7)
    assert np.array_equal(ours, again) and torch.equal(state, torch.get_rng_state())   # seeded, global RNG untouched


def test_sparse_imputer_is_the_librarys_imputer_bit_for_bit():
    """The COO-assembled system is the library's lil-assembled one, entry for entry, and the
    imputed image (solution plus the noise drawn after it) is identical for the same seed."""
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer, neighbors_weights

    from medxai_lite.metrics.fidelity import _sparse_imputer

    rng = np.random.default_rng(3)
    img = torch.from_numpy(rng.normal(size=(3, 24, 20)).astype(np.float32))
    yy, xx = np.mgrid[:24, :20]
    masks = [rng.random((24, 20)) > 0.4,                                        # scattered pixels
             (yy - 8) ** 2 + (xx - 15) ** 2 > 30,                               # a blob touching the edge
             np.ones((24, 20), bool) & (yy > 0)]                                # one row removed
    ours = _sparse_imputer()
    for keep in masks:
        mask = torch.from_numpy(keep.astype(np.float32))
        lib_a, lib_b = NoisyLinearImputer.setup_sparse_system(mask.numpy(), img.numpy(), neighbors_weights)
        our_a, our_b = ours.setup_sparse_system(mask.numpy(), img.numpy(), neighbors_weights)
        assert np.array_equal(lib_a.toarray(), our_a.toarray()) and np.array_equal(lib_b, our_b)
        torch.manual_seed(5)
        expected = NoisyLinearImputer()(img, mask)
        torch.manual_seed(5)
        assert torch.equal(ours(img, mask), expected)
        assert torch.equal(expected[:, keep], img[:, keep])                     # kept pixels untouched


@pytest.mark.filterwarnings(LIBRARY_NOISE)
def test_road_scores_the_unperturbed_images_once(small):
    """pytorch-grad-cam re-scores the unperturbed batch for every percentile and direction; the
    wrapper runs it once: 1 + 2 x 4 forward passes for combined ROAD at four percentiles."""
    model, images, targets, maps = small
    calls = []
    handle = model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        M.road_combined(model, images, targets, maps, percentiles=[20, 40, 60, 80], seed=0)
    finally:
        handle.remove()
    # one image to read the number of classes (check_targets), the four unperturbed images once,
    # then the four perturbed images for each of the eight (direction, percentile) pairs
    assert calls == [1] + [4] * 9


@pytest.mark.filterwarnings(LIBRARY_NOISE)
def test_road_single_percentile_uses_the_single_class(small):
    from pytorch_grad_cam.metrics.road import ROADMostRelevantFirst
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, images, targets, maps = small
    torch.manual_seed(0)
    direct = ROADMostRelevantFirst(percentile=80)(images, maps.astype(np.float32),
                                                   [ClassifierOutputTarget(int(t)) for t in targets], model)
    ours = M.road_morf(model, images, targets, maps, percentiles=80, score="logit", seed=0)
    np.testing.assert_allclose(ours, direct, atol=1e-7)
    with pytest.raises(ValueError, match="percentiles"):
        M.road_morf(model, images, targets, maps, percentiles=[0, 120])


@pytest.mark.filterwarnings(LIBRARY_NOISE)
def test_road_curves_are_the_single_percentile_scores(small):
    model, images, targets, maps = small
    res = M.road_curves(model, images, targets, maps, percentiles=(20, 50, 80))
    assert res.morf.shape == res.lerf.shape == (4, 3)
    np.testing.assert_allclose(res.removed, [0.8, 0.5, 0.2])
    for j, p in enumerate((20, 50, 80)):
        np.testing.assert_array_equal(res.morf[:, j], M.road_morf(model, images, targets, maps, percentiles=p))
        np.testing.assert_array_equal(res.lerf[:, j], M.road_lerf(model, images, targets, maps, percentiles=p))
    np.testing.assert_allclose(res.combined, (res.lerf - res.morf) / 2)


@pytest.mark.filterwarnings(LIBRARY_NOISE)
def test_road_curves_of_a_model_that_ignores_the_image_are_zero(small):
    _, images, targets, maps = small
    blind = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 2)).eval()
    with torch.no_grad():
        blind[1].weight.zero_()
        blind[1].bias.copy_(torch.tensor([0.3, -0.2]))
    res = M.road_curves(blind, images, targets, maps, percentiles=(10, 90))
    assert np.array_equal(res.morf, np.zeros((4, 2))) and np.array_equal(res.lerf, np.zeros((4, 2)))


def test_confidence_change_and_increase_by_hand(small):
    model, images, targets, maps = small
    with torch.no_grad():
        before = torch.softmax(model(images), 1)[torch.arange(4), targets].double().numpy()
        after = torch.softmax(model(images * torch.from_numpy(maps).float()[:, None]), 1)[torch.arange(4), targets]
    change = after.double().numpy() - before
    np.testing.assert_allclose(M.confidence_change(model, images, targets, maps), change, atol=1e-6)
    np.testing.assert_array_equal(M.confidence_increase(model, images, targets, maps), (change > 0).astype(float))
    # a map of ones leaves the image as it is: no change, no increase
    ones = np.ones_like(maps)
    assert np.array_equal(M.confidence_change(model, images, targets, ones), np.zeros(4))
    assert np.array_equal(M.confidence_increase(model, images, targets, ones), np.zeros(4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.confidence_change(model, images, targets, maps * 3)


# --------------------------------------------------------------------------- sanity checks


def test_cascading_randomisation_drives_similarity_towards_zero(small):
    model, images, targets, _ = small
    before = {k: v.clone() for k, v in model.state_dict().items()}
    df = M.cascading_randomisation(model, images, targets, gradient_saliency)
    assert list(df.columns) == ["mode", "step", "layer", "image", "metric", "value"]
    mean = df.groupby(["step", "layer", "metric"], sort=False).value.mean().unstack()
    assert list(mean.index.get_level_values("layer")) == ["original", "6", "2", "0"]   # output layer first
    np.testing.assert_allclose(mean.iloc[0].to_numpy(), 1.0)                            # untouched copy
    last = mean.iloc[-1]
    assert abs(last["spearman"]) < 0.2 and last["ssim"] < 0.2                            # about 0.04 and 0.02
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())          # model not modified


def test_cascading_randomisation_returns_the_maps_of_every_step(small):
    model, images, targets, _ = small
    df, maps = M.cascading_randomisation(model, images, targets, gradient_saliency, layers=["6", "2"],
                                         return_maps=True)
    assert len(maps) == df.step.max() + 1 == 3 and all(m.shape == (4, 32, 32) for m in maps)
    np.testing.assert_allclose(maps[0], gradient_saliency(model, images, targets))   # the untouched copy
    # the recorded maps are the ones the similarities were computed from
    again = M.map_similarity(gradient_saliency(model, images, targets), maps[2], "spearman")
    np.testing.assert_allclose(df[(df.step == 2) & (df.metric == "spearman")].value, again)
    assert df.equals(M.cascading_randomisation(model, images, targets, gradient_saliency, layers=["6", "2"]))


def test_cascading_randomisation_of_several_methods(small, monkeypatch):
    model, images, targets, _ = small
    seen = []

    def fake_explain(method, model, images, targets=None, **options):
        seen.append((method, options))
        return types.SimpleNamespace(maps=gradient_saliency(model, images, targets) ** (2 if method == "b" else 1))

    monkeypatch.setitem(sys.modules, "medxai_lite.explain", types.SimpleNamespace(explain=fake_explain))
    table, maps = M.cascading_randomisation_methods(model, images, targets, ["a", "b"], layers=["6"],
                                                    method_options={"b": {"k": 1}}, return_maps=True)
    assert list(table.columns) == ["mode", "step", "layer", "image", "metric", "value", "method"]
    assert list(dict.fromkeys(table.method)) == ["a", "b"] and set(maps) == {"a", "b"} and len(maps["b"]) == 2
    assert all(o == ({"k": 1} if m == "b" else {}) for m, o in seen)
    alone = M.cascading_randomisation(model, images, targets, "a", layers=["6"])
    np.testing.assert_array_equal(table[table.method == "a"].value, alone.value)


def test_independent_randomisation_and_the_registry_metric(small):
    model, images, targets, maps = small
    df = M.independent_randomisation(model, images, targets, gradient_saliency, layers=["0", "6"],
                                     similarity="spearman")
    assert set(df.metric) == {"spearman"} and list(df.layer.unique()) == ["original", "0", "6"]
    assert (df[df.layer == "0"].value < 0.9).all()
    rho = M.randomisation_similarity(model, images, targets, maps, explainer=gradient_saliency)
    assert rho.shape == (4,) and np.abs(rho).mean() < 0.5
    with pytest.raises(ValueError, match="explainer"):
        M.randomisation_similarity(model, images, targets, maps)
    with pytest.raises(ValueError, match="layers"):
        M.cascading_randomisation(model, images, targets, gradient_saliency, layers=["nope"])


def test_map_similarity_matches_scipy_and_skimage():
    from skimage.metrics import structural_similarity

    a, b = RNG.random((2, 16, 16)), RNG.random((2, 16, 16))
    b[1] = a[1] ** 3                                                          # monotone: rank correlation 1
    rho = M.map_similarity(a, b, "spearman")
    assert rho[0] == pytest.approx(sps.spearmanr(a[0].ravel(), b[0].ravel()).statistic)
    assert rho[1] == pytest.approx(1.0)
    ssim = M.map_similarity(a, b, "ssim")
    scaled = [(m - m.min()) / (m.max() - m.min()) for m in (a[0], b[0])]
    assert ssim[0] == pytest.approx(structural_similarity(*scaled, data_range=1.0))
    assert np.isnan(M.map_similarity(np.ones((1, 8, 8)), a[:1, :8, :8], "spearman")[0])


def test_explainer_may_be_a_registry_name(small, monkeypatch):
    model, images, targets, maps = small
    calls = []

    def fake_explain(method, model, images, targets=None, **options):
        calls.append((method, options))
        return types.SimpleNamespace(maps=gradient_saliency(model, images, targets))

    monkeypatch.setitem(sys.modules, "medxai_lite.explain", types.SimpleNamespace(explain=fake_explain))
    rho = M.randomisation_similarity(model, images, targets, maps, explainer="saliency",
                                     explain_options={"abs": True})
    assert rho.shape == (4,) and calls == [("saliency", {"abs": True})]


def test_label_randomisation_trains_on_a_permutation():
    images = torch.randn(12, 3, 16, 16)
    labels = torch.tensor([0, 1] * 6)
    seen = []

    def train_fn(x, y):
        seen.append(y.clone())
        return tiny_cnn(seed=len(seen)).train()          # returned in training mode on purpose: put in eval

    df = M.label_randomisation(images[:4], None, gradient_saliency, train_fn=train_fn, train_images=images,
                               train_labels=labels)
    assert len(seen) == 2 and torch.equal(seen[0], labels)
    assert torch.equal(torch.sort(seen[1]).values, torch.sort(labels).values) and not torch.equal(seen[1], labels)
    assert set(df.layer) == {"shuffled_labels"} and len(df) == 8 and np.array_equal(df.attrs["shuffled_labels"],
                                                                                      seen[1].numpy())
    with pytest.raises(ValueError, match="two classes"):
        M.label_randomisation(images[:4], None, gradient_saliency, train_fn=train_fn, train_images=images,
                              train_labels=torch.zeros(12, dtype=torch.long))


def test_label_randomisation_with_a_real_small_budget_training():
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(64) % 2
    images = torch.randn(64, 3, 16, 16, generator=gen)
    images[labels == 1, :, 4:12, 4:12] += 2.0                                 # class 1: a bright square
    train_fn = M.make_train_fn(lambda k: tiny_cnn(0, k), epochs=15, lr=1e-2, batch_size=16)
    df = M.label_randomisation(images[:8], None, gradient_saliency, train_fn=train_fn, train_images=images,
                               train_labels=labels)
    assert df.value.notna().all() and df[df.metric == "spearman"].value.mean() < 0.9


# --------------------------------------------------------------------------- statistics


@pytest.fixture(scope="module")
def scores():
    rng = np.random.default_rng(11)
    base = rng.normal(0.1, 0.05, 30)
    return {"gradcam++": base + rng.normal(0.0, 0.02, 30), "xgradcam": base + rng.normal(0.03, 0.02, 30),
            "layercam": base + rng.normal(-0.01, 0.02, 30)}


def test_paired_tests_equal_scipy(scores):
    df = stats.paired_tests(scores, n_resamples=999)
    assert [(a, b) for a, b in zip(df.method_a, df.method_b)] == [
        ("gradcam++", "xgradcam"), ("gradcam++", "layercam"), ("xgradcam", "layercam")]
    for row in df.itertuples():
        ref = sps.ttest_rel(scores[row.method_a], scores[row.method_b])
        assert row.t == pytest.approx(ref.statistic, rel=1e-12) and row.p == pytest.approx(ref.pvalue, rel=1e-12)
        assert row.df == 29 and row.n == 30
        d = scores[row.method_a] - scores[row.method_b]
        assert row.d_z == pytest.approx(d.mean() / d.std(ddof=1)) and row.d_z == pytest.approx(row.t / np.sqrt(30))
        assert row.ci_low < row.mean_diff < row.ci_high
    np.testing.assert_allclose(df.p_holm, stats.holm(df.p))
    np.testing.assert_allclose(df.p_bonferroni, np.minimum(1, 3 * df.p))
    assert (df.significant == (df.p_holm <= 0.05)).all()
    wide = stats.paired_tests(__import__("pandas").DataFrame(scores), n_resamples=999)
    np.testing.assert_allclose(wide.p, df.p)


def test_holm_and_bonferroni_hand_computed():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.bonferroni([0.01, 0.04, 0.03, 0.005]), [0.04, 0.16, 0.12, 0.02])
    np.testing.assert_allclose(stats.holm([0.5, 0.4]), [0.8, 0.8])                   # capped, monotone
    np.testing.assert_allclose(stats.holm([0.6, 0.9]), [1.0, 1.0])
    np.testing.assert_allclose(stats.holm([0.01, np.nan, 0.02]), [0.02, np.nan, 0.02])   # NaN not counted
    np.testing.assert_allclose(stats.adjust_pvalues([0.2, 0.01], "none"), [0.2, 0.01])
    with pytest.raises(ValueError, match="pvalues"):
        stats.holm([0.1, 1.5])


def test_bootstrap_ci_equals_scipy_and_degenerate_cases():
    x = np.random.default_rng(3).normal(size=25)
    ref = sps.bootstrap((x,), np.mean, n_resamples=2000, rng=np.random.default_rng(4)).confidence_interval
    assert stats.bootstrap_ci(x, n_resamples=2000, seed=4) == pytest.approx((ref.low, ref.high))
    assert stats.bootstrap_ci(np.full(5, 0.3)) == (0.3, 0.3)
    assert all(np.isnan(stats.bootstrap_ci([1.0])))
    with pytest.raises(ValueError, match="NaN"):
        stats.bootstrap_ci([1.0, np.nan, 2.0])


def test_stats_handle_nan_pairs_and_bad_input(scores):
    a = scores["gradcam++"].copy()
    a[:3] = np.nan
    df = stats.paired_tests({"a": a, "b": scores["xgradcam"]}, n_resamples=999)
    ref = sps.ttest_rel(a[3:], scores["xgradcam"][3:])
    assert df.n[0] == 27 and df.p[0] == pytest.approx(ref.pvalue)
    summary = stats.method_summary({"a": a}, n_resamples=999)
    assert summary.n[0] == 27 and summary.n_nan[0] == 3
    assert stats.cohens_dz([1.0, 2.0, 3.0], [0.5, 1.0, 2.5]) == pytest.approx(2.3094010767585)
    assert np.isnan(stats.cohens_dz([1.0, 2.0], [1.0, 2.0]))
    with pytest.raises(ValueError, match="paired"):
        stats.paired_tests({"a": np.ones(3), "b": np.ones(4)})
    with pytest.raises(ValueError, match="at least two methods"):
        stats.paired_tests({"a": np.ones(3)})
    import pandas as pd

    tidy = pd.DataFrame({"method": ["x", "x", "y", "y"], "image": [0, 1, 0, 1], "value": [1.0, 2.0, 3.0, 5.0]})
    assert stats.to_wide(tidy).to_dict("list") == {"x": [1.0, 2.0], "y": [3.0, 5.0]}
    with pytest.raises(ValueError, match="repeated"):
        stats.to_wide(pd.concat([tidy, tidy]))


# --------------------------------------------------------------------------- bad input


def test_bad_maps_and_masks_give_clear_errors(small):
    model, images, targets, maps = small
    masks = np.zeros(maps.shape, bool)
    masks[:, 4:8, 4:8] = True
    with pytest.raises(ValueError, match="maps must match the images' size"):
        M.deletion(model, images, targets, maps[:, :16, :16])
    with pytest.raises(ValueError, match="same number"):
        M.insertion(model, images, targets, maps[:3])
    with pytest.raises(ValueError, match=r"masks must have the maps' shape"):
        M.pointing_game(None, None, None, maps, masks[:, :16])
    with pytest.raises(ValueError, match=r"shape \[N, H, W\]"):
        M.relevance_mass_accuracy(None, None, None, maps[0], masks[0])
    with pytest.raises(ValueError, match="drop the channel axis"):
        M.aopc(model, images, targets, maps[:, None])
    empty = masks.copy()
    empty[2] = False
    for name in M.list_metrics("localisation"):
        with pytest.raises(ValueError, match="masks are empty for images 2"):
            M.METRICS[name](None, images, None, maps, empty)
        out = M.METRICS[name](None, images, None, maps, empty, on_empty="nan")
        assert np.isnan(out[2]) and np.isfinite(np.delete(out, 2)).all()
    assert np.isnan(M.pointing_game(None, images, None, maps, empty, on_empty="nan", tolerance=2)[2])
    with pytest.raises(ValueError, match="needs masks"):
        M.relevance_mass_accuracy(None, None, None, maps)
    nan = maps.copy()
    nan[1, 3, 3] = np.nan
    for name in ("pointing_game", "deletion", "road_morf", "confidence_change"):
        with pytest.raises(ValueError, match=r"maps contain NaN .*images 1"):
            M.METRICS[name](model, images, targets, nan, masks)
    with pytest.raises(RuntimeError, match="training mode"):
        M.deletion(tiny_cnn().train(), images, targets, maps)
    with pytest.raises(ValueError, match="targets out of range"):
        M.insertion(model, images, [0, 1, 2, 0], maps)
    with pytest.raises(ValueError, match="steps"):
        M.deletion(model, images, targets, maps, steps=0)
    with pytest.raises(ValueError, match="score"):
        M.deletion(model, images, targets, maps, score="prob")


@pytest.mark.parametrize("name", ["relevance_rank_accuracy", "pointing_game", "deletion", "insertion", "aopc",
                                  "road_combined"])
def test_constant_maps_score_nan_with_a_warning_or_raise(name, small):
    model, images, targets, maps = small
    masks = np.zeros(maps.shape, bool)
    masks[:, 4:8, 4:8] = True
    bad = maps.copy()
    bad[1] = 0.5
    options = {"percentiles": (50,)} if name.startswith("road") else {"steps": 4} if name in (
        "deletion", "insertion", "aopc") else {}
    with pytest.warns(RuntimeWarning, match="constant for images 1"):
        out = M.METRICS[name](model, images, targets, bad, masks, **options)
    assert np.isnan(out[1]) and np.isfinite(np.delete(out, 1)).all()
    with pytest.raises(ValueError, match="constant for images 1"):
        M.METRICS[name](model, images, targets, bad, masks, on_constant="raise", **options)
    zero = np.zeros_like(maps)
    with pytest.warns(RuntimeWarning, match="no positive relevance"):
        assert np.isnan(M.relevance_mass_accuracy(None, None, None, zero, masks)).all()


# --------------------------------------------------------------------------- references and score tables


def test_random_maps_pixel_noise_is_the_seeded_uniform_draw():
    images = torch.zeros(3, 3, 10, 12)
    maps = M.random_maps(images, seed=5)
    assert maps.shape == (3, 10, 12) and maps.dtype == np.float32
    np.testing.assert_array_equal(maps, np.random.default_rng(5).random((3, 10, 12)).astype(np.float32))
    assert not np.array_equal(maps, M.random_maps(images, seed=6))


def test_random_maps_on_a_grid_have_its_grain():
    images = torch.zeros(2, 3, 64, 64)
    maps = M.random_maps(images, (2, 2), seed=1)
    assert maps.shape == (2, 64, 64) and maps.dtype == np.float32
    np.testing.assert_allclose(maps.min(axis=(1, 2)), 0, atol=1e-7)
    np.testing.assert_allclose(maps.max(axis=(1, 2)), 1, atol=1e-7)
    # a 2 x 2 grid upsampled bilinearly (align_corners=False) leaves each 16 x 16 corner flat
    for corner in (maps[:, :16, :16], maps[:, :16, -16:], maps[:, -16:, :16], maps[:, -16:, -16:]):
        assert np.ptp(corner, axis=(1, 2)).max() < 1e-6
    assert np.array_equal(maps, M.random_maps(images, (2, 2), seed=1))
    with pytest.raises(ValueError, match="grid"):
        M.random_maps(images, "coarse")
    with pytest.raises(ValueError, match="grid"):
        M.random_maps(images, (0, 2))
    with pytest.raises(ValueError, match="model"):
        M.random_maps(images, "cam")


def test_random_maps_on_the_cam_grid_of_a_model():
    from medxai_lite.models import get_model

    torch.manual_seed(0)
    model = get_model("resnet18", num_classes=2).eval()
    x = torch.randn(3, 3, 64, 64)
    maps = M.random_maps(x, "cam", model=model, arch="resnet18", seed=1)
    # layer4 of a (stride-32) ResNet18 is 2 x 2 at 64 px: the same noise as that grid named
    # directly, upsampled as the CAMs of that layer are (cells at their receptive-field centres,
    # 0 and 32 px), so that the reference peaks only where a CAM can
    from medxai_lite.explain.cam import upsample_registered
    from medxai_lite._utils import minmax_scale

    low = np.random.default_rng(1).random((3, 1, 2, 2), dtype=np.float32)
    expected = minmax_scale(upsample_registered(torch.from_numpy(low[:, 0]), (64, 64), 32, 0.0).numpy())
    np.testing.assert_allclose(maps, expected, atol=1e-6)
    peaks = [np.unravel_index(int(m.argmax()), m.shape) for m in maps]
    assert all(r in (0, 32) and c in (0, 32) for r, c in peaks)          # a node, or its clamped block's start
    assert not np.array_equal(maps, M.random_maps(x, (2, 2), seed=1))   # a bare grid keeps plain resizing
    assert not model.layer4._forward_hooks and not model.training     # the measuring hook is removed
    with pytest.raises(ValueError, match="square"):
        M.random_maps(torch.zeros(1, 3, 64, 32), "cam", model=model, arch="resnet18")


def test_chance_level_is_the_share_of_the_image_to_hit():
    masks = np.zeros((2, 10, 10), bool)
    masks[0, 4:6, 4:6] = True
    masks[1, 0, 0] = True
    np.testing.assert_allclose(M.chance_level(masks), [0.04, 0.01])
    # grown by 1 px (Euclidean): the 2 x 2 square gains its 8 edge neighbours; the corner pixel 2
    np.testing.assert_allclose(M.chance_level(masks, tolerance=1), [0.12, 0.03])
    np.testing.assert_allclose(M.chance_scores(None, None, None, masks, masks, tolerance=1), [0.12, 0.03])
    # a random map's expected pointing game is the chance level
    rng = np.random.default_rng(0)
    hits = np.mean([M.pointing_game(None, None, None, rng.random((2, 10, 10)), masks) for _ in range(2000)], 0)
    np.testing.assert_allclose(hits, [0.04, 0.01], atol=0.012)


def test_score_table_is_tidy_and_matches_the_metrics():
    masks = box_masks(n=3)
    maps = {"box": masks.astype(float), "noise": M.random_maps(torch.zeros(3, 3, 16, 16), seed=0)}
    table = M.score_table(maps, {"RMA": "relevance_mass_accuracy", "PG 2": ("pointing_game", {"tolerance": 2})},
                          masks=masks, dataset="d", model_name="m", image_ids=[7, 8, 9],
                          columns={"class": ["a", "b", "a"]})
    assert list(table.columns) == [*M.tables.SCORE_COLUMNS, "class"]
    assert len(table) == 2 * 2 * 3 and list(table.image[:3]) == [7, 8, 9] and set(table.dataset) == {"d"}
    assert list(dict.fromkeys(table.method)) == ["box", "noise"]
    assert list(dict.fromkeys(table.metric)) == ["RMA", "PG 2"]
    noise_rma = table[(table.method == "noise") & (table.metric == "RMA")].value.to_numpy()
    np.testing.assert_array_equal(noise_rma, M.relevance_mass_accuracy(None, None, None, maps["noise"], masks))
    assert (table[table.method == "box"].value == 1.0).all()
    # metrics needing masks are skipped without them; a callable with the metric signature is a metric
    means = M.score_table(maps, {"RMA": "relevance_mass_accuracy",
                                 "mean": lambda model, x, t, m, masks: m.mean(axis=(1, 2))})
    assert set(means.metric) == {"mean"} and means.value.between(0, 1).all()
    with pytest.raises(ValueError, match="unknown metric"):
        M.score_table(maps, ["nope"])
    with pytest.raises(ValueError, match="one entry per map"):
        M.score_table(maps, ["relevance_mass_accuracy"], masks=masks, image_ids=[1, 2])


def test_score_summary_keeps_the_scoring_order():
    import pandas as pd

    table = pd.DataFrame({"dataset": ["z", "z", "z", "z", "a", "a"], "method": ["m2", "m2", "m1", "m1", "m2", "m1"],
                          "metric": ["x", "x", "x", "x", "x", "x"], "image": [0, 1, 0, 1, 0, 0],
                          "value": [1.0, np.nan, 2.0, 4.0, 5.0, 6.0]})
    summary = M.score_summary(table)
    assert list(summary.index) == ["m2", "m1"] and list(summary.columns) == [("z", "x"), ("a", "x")]
    assert summary.loc["m2", ("z", "x")] == 1.0 and summary.loc["m1", ("z", "x")] == 3.0   # NaN left out
    assert list(M.score_summary(table, columns="dataset").columns) == ["z", "a"]


def test_score_summary_of_a_table_scored_without_a_dataset():
    """score_table's dataset defaults to None; the summary leaves that empty column out of its
    header instead of dropping every row (pandas' groupby drops missing keys)."""
    masks = np.zeros((2, 8, 8), bool)
    masks[:, 2:4, 2:4] = True
    maps = np.zeros((2, 8, 8))
    maps[:, 2, 2] = 1.0
    maps[1, 7, 7] = 2.0                                           # the second map peaks outside
    summary = M.score_summary(M.score_table({"m": maps}, ["pointing_game"], masks=masks))
    assert list(summary.index) == ["m"] and list(summary.columns) == ["pointing_game"]
    assert summary.loc["m", "pointing_game"] == 0.5
    with pytest.raises(ValueError, match="hold no values"):
        M.score_summary(M.score_table({"m": maps}, ["pointing_game"], masks=masks), columns="dataset")
    with pytest.raises(ValueError, match="not in the score table"):
        M.score_summary(M.score_table({"m": maps}, ["pointing_game"], masks=masks), columns="modality")


def test_localisation_table_has_the_chance_row_and_the_tolerant_pointing_game():
    masks = box_masks(n=2, size=224, lo=100, hi=110)
    peak = np.zeros((2, 224, 224))
    peak[:, 95, 105] = 1.0                                        # 5 px above the lesion
    table = M.localisation_table({"peak": peak}, masks, dataset="d")
    summary = M.score_summary(table)
    assert list(summary.index) == ["peak", "chance"]
    assert [m for _, m in summary.columns] == ["RMA", "RRA", "pointing game", "pointing game ±15 px"]
    assert summary.loc["peak", ("d", "pointing game")] == 0 and summary.loc["peak", ("d", "pointing game ±15 px")] == 1
    np.testing.assert_allclose(summary.loc["chance", ("d", "RMA")], 100 / 224 ** 2)
    np.testing.assert_allclose(summary.loc["chance", ("d", "pointing game ±15 px")], M.chance_level(masks, 15)[0])
    assert M.count_constant_maps(np.stack([peak[0], np.zeros((224, 224))])) == 1


def test_curve_summary_reads_the_curves(reader):
    model, images, targets, contrib = reader
    curves = {(mode, "true"): M.perturbation_curves(model, images, targets, contrib, mode=mode, steps=8)
              for mode in ("deletion", "insertion")}
    summary = M.curve_summary(curves)
    deletion_auc = curves[("deletion", "true")].auc.mean()
    assert summary.loc["true", "deletion AUC (lower is better)"] == pytest.approx(deletion_auc)
    assert summary.loc["true", "AOPC (higher is better)"] == pytest.approx(
        M.aopc(model, images, targets, contrib, steps=8).mean())


def test_cam_pointing_ceiling_reads_the_model_grid():
    from medxai_lite.models import get_model, grid_origin

    model = get_model("resnet18", num_classes=2).eval()
    masks = box_masks(n=1, size=64, lo=0, hi=6)
    grid, ceiling = M.cam_pointing_ceiling(masks, model, "resnet18")
    assert grid == (2, 2)
    np.testing.assert_array_equal(ceiling, M.pointing_ceiling(masks, 32, grid_origin("resnet18", 32)))


def test_peak_plateau_known_answer_and_its_limit_the_pointing_game():
    # a 2 x 2 block at the maximum, one pixel within 3 % of it, the rest far below
    maps = np.zeros((2, 6, 6))
    maps[:, 1:3, 1:3] = 1.0
    maps[:, 4, 4] = 0.97
    maps[1] = maps[1] * 2 - 1.0                     # the same shape on a range of [-1, 1]
    masks = np.zeros((2, 6, 6), bool)
    masks[:, 1:3, 1] = True                         # two of the block's four pixels
    got = M.peak_plateau(maps, masks)               # level 0.95: 5 pixels, 2 in the lesion
    assert got.plateau_px.tolist() == [5.0, 5.0] and got.lesion_px.tolist() == [2.0, 2.0]
    np.testing.assert_allclose(got.share_in_lesion, [0.4, 0.4])
    tight = M.peak_plateau(maps, masks, level=0.99)  # 0.97 falls out: the tied block alone
    np.testing.assert_allclose(tight.share_in_lesion, [0.5, 0.5])
    # at level 1 the plateau is the tied maximum, and the share is the pointing game's tie score
    rough = np.round(RNG.random((6, 12, 12)) * 4)    # many ties
    lesions = RNG.random((6, 12, 12)) > 0.6
    np.testing.assert_allclose(M.peak_plateau(rough, lesions, level=1.0).share_in_lesion,
                               M.pointing_game(None, None, None, rough, lesions))


def test_peak_plateau_bad_input():
    maps, masks = np.ones((1, 4, 4)), np.ones((1, 4, 4), bool)
    for bad in (0, 1.5, -0.1, float("nan"), True, "0.9"):
        with pytest.raises(ValueError, match="level"):
            M.peak_plateau(maps + np.eye(4), masks, level=bad)
    with pytest.raises(ValueError, match="masks"):
        M.peak_plateau(maps, None)
    with pytest.warns(RuntimeWarning, match="constant"):
        assert np.isnan(M.peak_plateau(maps, masks).share_in_lesion[0])


def test_wide_scores_and_score_runs(small):
    model, images, targets, maps = small
    masks = np.zeros(maps.shape, bool)
    masks[:, 8:16, 8:16] = True
    run = {"model": model, "batch": {"image": images, "label": targets, "mask": torch.from_numpy(masks)},
           "maps": {"grad": maps}}
    table = M.score_runs({"d1": run, "d2": run}, ["confidence_change", "relevance_mass_accuracy"], n=3,
                         random_seed=0, model_name="tiny")
    assert list(dict.fromkeys(table.dataset)) == ["d1", "d2"] and set(table.model) == {"tiny"}
    assert list(dict.fromkeys(table.method)) == ["grad", "random"] and table.image.max() == 2
    direct = M.confidence_change(model, images[:3], targets[:3], maps[:3])
    np.testing.assert_allclose(table[(table.dataset == "d1") & (table.method == "grad")
                                     & (table.metric == "confidence_change")].value, direct)
    wide = M.wide_scores(table, "relevance_mass_accuracy", ["random", "grad"], index=["dataset", "image"])
    assert list(wide.columns) == ["random", "grad"] and wide.shape == (6, 2)
    np.testing.assert_allclose(wide.loc[("d2", 1), "grad"],
                               M.relevance_mass_accuracy(None, None, None, maps[1:2], masks[1:2])[0])


def test_cascade_summary_reads_the_last_step(small):
    model, images, targets, _ = small
    table, maps = M.cascading_randomisation(model, images, targets, gradient_saliency, layers=["6", "2"],
                                            return_maps=True)
    table = table.assign(method="grad")
    maps[-1][0] = 0.0                                                     # one constant map at the end
    summary = M.cascade_summary(table, {"grad": maps})
    last = table[table.step == 2]
    assert summary.loc["grad", "ssim after full randomisation"] == pytest.approx(
        last[last.metric == "ssim"].value.mean())
    assert summary.loc["grad", "constant maps after full randomisation"] == 1
