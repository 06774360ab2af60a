"""The challenges chapter's package code: artefact masks in the phantoms, the modality-like
corruptions, the shortcut test sets and region scores, and map stability under corruption.

Known answers throughout: images generated before the artefact masks existed (a fixture), the
Rayleigh mean of Rician noise on a black image, models whose behaviour is fixed by construction.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from medxai_lite.data import SHORTCUT_CLASS, load_dataset, normalize
from medxai_lite.data.corruptions import CORRUPTIONS, bias_field, corrupt, rician, speckle
from medxai_lite.data.phantoms import PHANTOMS, generate
from medxai_lite.robustness import corrupted_accuracy, corruption_stability, stability_summary
from medxai_lite.shortcuts import TEST_SETS, accuracy_table, artefact_batch, region_mass, shortcut_test_sets

NAMES = list(PHANTOMS)
FIXTURE = Path(__file__).parent / "data" / "phantoms_v3_before_artefact_masks.npz"


# torch on one thread for the module (conftest.py): on shared cores 2 spin-waiting threads are slower
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- phantoms: artefact masks


@pytest.mark.parametrize("name", NAMES)
def test_artefact_masks_leave_the_images_as_they_were(name):
    """Images generated before the artefact masks were added (generator version 3, seed 3, 64 px,
    shortcut 1.0, 24 images; five stored) come out the same: no pixel, label, lesion or flag moved."""
    ref = np.load(FIXTURE)
    d = generate(name, 24, size=64, seed=3, shortcut=1.0)
    idx = ref[f"{name}/index"]
    assert np.array_equal(d["labels"][idx], ref[f"{name}/labels"])
    assert np.array_equal(d["meta"]["artefact"][idx], ref[f"{name}/art"])
    assert np.array_equal(d["masks"][idx], ref[f"{name}/masks"])
    assert np.array_equal(d["images"][idx], ref[f"{name}/images"])


@pytest.mark.parametrize("name", NAMES)
def test_artefact_mask_is_exactly_where_the_artefact_changed_pixels(name):
    with_art = generate(name, 40, size=64, seed=5, shortcut=1.0)
    plain = generate(name, 40, size=64, seed=5, shortcut=0.0)
    art, amask = with_art["meta"]["artefact"], with_art["meta"]["artefact_mask"]
    assert amask.shape == (40, 64, 64) and amask.dtype == bool
    assert art.any() and not amask[~art].any()                      # no mask without an artefact
    assert not plain["meta"]["artefact_mask"].any()
    changed = (with_art["images"] != plain["images"]).any(-1)
    assert not (changed & ~amask).any()                             # every changed pixel is in the mask
    for i in np.flatnonzero(art):
        # the mask is the visible artefact: nearly all of it changed the image (where the ruler
        # passes into the dermoscope's dark vignette, a change can round away in uint8)
        assert (changed[i] & amask[i]).sum() >= 0.95 * amask[i].sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_shortcut_class_moves_the_artefact_and_nothing_else(name):
    target = SHORTCUT_CLASS[name]
    other = next(c for c in range(len(PHANTOMS[name].classes)) if c != target)
    default = generate(name, 60, size=48, seed=1, shortcut=1.0)
    moved = generate(name, 60, size=48, seed=1, shortcut=1.0, shortcut_class=other)
    plain = generate(name, 60, size=48, seed=1)
    labels = moved["labels"]
    assert np.array_equal(labels, default["labels"]) and np.array_equal(moved["masks"], default["masks"])
    assert np.array_equal(moved["meta"]["artefact"], labels == other)
    assert np.array_equal(default["meta"]["artefact"], labels == target)
    # images of classes that carry no artefact in either set are the artefact-free images
    neither = (labels != other) & (labels != target)
    assert np.array_equal(moved["images"][labels == target], plain["images"][labels == target])
    assert np.array_equal(moved["images"][neither], plain["images"][neither])
    assert np.array_equal(generate(name, 60, size=48, seed=1, shortcut=1.0, shortcut_class=target)["images"],
                          default["images"])


@pytest.mark.parametrize("bad", [-1, 4, 1.0, True, "melanoma"])
def test_shortcut_class_must_be_a_class_index(bad):
    with pytest.raises(ValueError, match="shortcut_class"):
        generate("phantom-skin", 4, size=32, shortcut=0.5, shortcut_class=bad)


def test_load_dataset_passes_shortcut_class_and_exposes_the_mask():
    ds = load_dataset("phantom-skin", split="test", image_size=48, n=30, shortcut=1.0, shortcut_class=0)
    assert np.array_equal(ds.meta["artefact"], ds.labels == 0)
    assert ds.meta["artefact_mask"].shape == (30, 48, 48)


# --------------------------------------------------------------------------- corruptions


def _grey_images(n=3, size=32, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.uniform(0.1, 0.9, (n, 1, size, size)).astype(np.float32)
    return np.repeat(g, 3, axis=1)


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_strength_zero_is_the_identity(kind):
    x = _grey_images()
    assert np.array_equal(CORRUPTIONS[kind](x, 0.0, seed=3), x)


def test_rician_mean_on_a_black_image_is_the_rayleigh_mean():
    """|n1 + i n2| with n ~ N(0, sigma^2) is Rayleigh: mean sigma * sqrt(pi / 2) (Gudbjartsson & Patz 1995)."""
    sigma = 0.1
    out = rician(np.zeros((4, 1, 128, 128), np.float32), sigma, seed=0)
    assert out.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.01)
    assert out.min() >= 0


def test_rician_on_a_bright_image_approaches_sqrt_a2_plus_sigma2():
    a, sigma = 0.6, 0.05
    out = rician(np.full((4, 1, 128, 128), a, np.float32), sigma, seed=1)
    assert out.mean() == pytest.approx(np.sqrt(a ** 2 + sigma ** 2), abs=1e-3)
    assert out.std() == pytest.approx(sigma, rel=0.03)


def test_speckle_is_multiplicative_with_the_given_std():
    for level in (0.2, 0.6):
        out = speckle(np.full((4, 1, 128, 128), level / 2, np.float32), 0.2, seed=2)
        ratio = out / (level / 2)
        assert ratio.mean() == pytest.approx(1.0, abs=0.01)
        assert ratio.std() == pytest.approx(0.2, rel=0.03)      # the same relative spread at any brightness


def test_bias_field_is_a_smooth_gain_with_the_given_log_std():
    x = np.full((4, 3, 96, 96), 0.4, np.float32)
    out = bias_field(x, 0.15, seed=4)
    log_gain = np.log(out / x)
    assert np.allclose(log_gain[:, 0], log_gain[:, 2])               # one gain for every channel
    assert log_gain.std(axis=(1, 2, 3)) == pytest.approx([0.15] * 4, rel=0.05)
    # smooth: neighbouring pixels differ by a small fraction of the field's spread (white noise:
    # 2 / sqrt(pi) = 1.13 times it)
    assert np.abs(np.diff(log_gain, axis=-1)).mean() < 0.1 * log_gain.std()


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corruptions_keep_grey_images_grey_and_repeat_with_the_seed(kind):
    x = _grey_images()
    a, b, c = (CORRUPTIONS[kind](x, 0.2, seed=s) for s in (7, 7, 8))
    assert a.dtype == np.float32 and a.shape == x.shape and 0 <= a.min() and a.max() <= 1
    assert np.array_equal(a[:, 0], a[:, 1]) and np.array_equal(a[:, 1], a[:, 2])
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_colour_images_get_noise_per_channel():
    x = np.random.default_rng(0).uniform(0.2, 0.8, (2, 3, 32, 32)).astype(np.float32)
    out = speckle(x, 0.3, seed=0)
    assert not np.allclose(out[:, 0] / x[:, 0], out[:, 1] / x[:, 1])


def test_corrupt_works_in_intensity_space():
    x01 = torch.from_numpy(_grey_images(2, 32))
    images = normalize(x01)
    out = corrupt(images, "rician", 0.05, seed=0)
    expected = normalize(torch.from_numpy(rician(x01.numpy(), 0.05, seed=0)))
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(corrupt(images, "speckle", 0.0), images, atol=1e-5)


@pytest.mark.parametrize("call, match", [
    (lambda: speckle(_grey_images(), -0.1), "strength"),
    (lambda: rician(_grey_images(), float("nan")), "sigma"),
    (lambda: bias_field(_grey_images()[0], 0.1), r"\[N, C, H, W\]"),
    (lambda: speckle(_grey_images() * 2, 0.1), r"\[0, 1\]"),
    (lambda: corrupt(torch.zeros(1, 3, 8, 8), "blur", 0.1), "kind"),
    (lambda: corrupt(np.zeros((1, 3, 8, 8), np.float32), "speckle", 0.1), "normalised float tensor"),
])
def test_corruptions_reject_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --------------------------------------------------------------------------- region mass


def test_region_mass_known_answers():
    maps = np.zeros((2, 4, 4))
    maps[0, 0] = 1.0                                   # image 0: all relevance on the top row
    maps[1] = 1.0                                      # image 1: uniform
    top = np.zeros((2, 4, 4), bool)
    top[:, 0] = True
    left = np.zeros((2, 4, 4), bool)
    left[:, :, 0] = True                               # overlaps the top row in one pixel
    t = region_mass(maps, {"top": top, "left": left}).set_index(["image", "region"])
    assert t.loc[(0, "top"), "mass"] == 1.0 and t.loc[(0, "left"), "mass"] == 0.25
    assert t.loc[(0, "elsewhere"), "mass"] == 0.0
    for region, area in (("top", 0.25), ("left", 0.25), ("elsewhere", 9 / 16)):
        assert t.loc[(1, region), "area"] == area
        assert t.loc[(1, region), "mass"] == pytest.approx(area)     # a uniform map scores the area


def test_region_mass_empty_region_is_nan_and_bad_input_raises():
    maps = np.ones((1, 4, 4))
    t = region_mass(maps, {"none": np.zeros((1, 4, 4), bool)}, rest=None)
    assert len(t) == 1 and np.isnan(t["mass"].iloc[0])
    with pytest.raises(ValueError, match="shape"):
        region_mass(maps, {"r": np.ones((1, 3, 3), bool)})
    with pytest.raises(ValueError, match="boolean"):
        region_mass(maps, {"r": np.ones((1, 4, 4))})
    with pytest.raises(ValueError, match="rest"):
        region_mass(maps, {"elsewhere": np.ones((1, 4, 4), bool)})


# --------------------------------------------------------------------------- shortcut test sets


class ArtefactOracle(nn.Module):
    """Predicts the shortcut class exactly when the image differs from every artefact-free image
    it was given, i.e. when it carries the artefact: a perfect Clever Hans."""

    def __init__(self, clean_images: torch.Tensor, shortcut_class: int, other: int, classes: int = 2):
        super().__init__()
        self.register_buffer("clean", clean_images.flatten(1))
        self.shortcut_class, self.other, self.classes = shortcut_class, other, classes
        self.dummy = nn.Parameter(torch.zeros(1))            # evaluate() reads the device from a parameter

    def forward(self, x):
        distance = torch.cdist(x.flatten(1), self.clean, compute_mode="donot_use_mm_for_euclid_dist")
        has_artefact = distance.amin(1) > 1e-4
        logits = torch.zeros(len(x), self.classes)
        logits[torch.arange(len(x)), torch.where(has_artefact, self.shortcut_class, self.other)] = 1.0
        return logits + 0 * self.dummy


def test_shortcut_test_sets_and_accuracy_of_a_perfect_clever_hans():
    sets = shortcut_test_sets("phantom-skin", 1.0, n=40, image_size=32, seed=2)
    assert list(sets) == list(TEST_SETS)
    labels = sets[TEST_SETS[0]].labels
    for ds in sets.values():
        assert np.array_equal(ds.labels, labels)
    clean = sets[TEST_SETS[1]].batch()["image"]
    oracle = ArtefactOracle(clean, shortcut_class=1, other=0).eval()
    t = accuracy_table({"oracle": oracle}, sets).set_index("test set")
    share_mel = float((labels == 1).mean())
    assert t.loc[TEST_SETS[0], "accuracy"] == 1.0                      # looks perfect
    assert t.loc[TEST_SETS[1], "accuracy"] == pytest.approx(1 - share_mel)   # calls everything benign
    assert t.loc[TEST_SETS[2], "accuracy"] == 0.0                      # every answer reversed
    assert t.loc[TEST_SETS[0], "predicted shortcut class"] == pytest.approx(share_mel)
    assert t.loc[TEST_SETS[1], "predicted shortcut class"] == 0.0
    assert t.loc[TEST_SETS[2], "predicted shortcut class"] == pytest.approx(1 - share_mel)


def test_artefact_batch_carries_the_masks():
    ds = load_dataset("phantom-chest-xray", split="test", image_size=48, n=30, shortcut=1.0)
    batch = artefact_batch(ds, 3)
    assert batch["artefact_mask"].shape == (3, 48, 48) and batch["artefact_mask"].any(dim=(1, 2)).all()
    assert (batch["label"] == SHORTCUT_CLASS["phantom-chest-xray"]).all()
    with pytest.raises(ValueError, match="carries the artefact"):
        artefact_batch(load_dataset("phantom-chest-xray", split="test", image_size=48, n=10), 3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="phantom-skin", shortcut=0.0), "shortcut"),
    (dict(name="phantom-skin", shortcut=1.0, other_class=1), "other_class"),
    (dict(name="ham10000", shortcut=1.0), "phantom"),
])
def test_shortcut_test_sets_reject_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        shortcut_test_sets(n=8, image_size=32, **kwargs)


# --------------------------------------------------------------------------- stability under corruption


class LinearReader(nn.Module):
    """Logits linear in the image: its gradient (the saliency map) is the same for every input."""

    def __init__(self, size=32):
        super().__init__()
        self.linear = nn.Linear(3 * size * size, 2)
        torch.manual_seed(0)
        nn.init.normal_(self.linear.weight)

    def forward(self, x):
        return self.linear(x.flatten(1))


def test_a_map_that_ignores_the_image_is_perfectly_stable():
    model = LinearReader().eval()
    images = normalize(torch.from_numpy(_grey_images(3, 32)))
    strengths = {"speckle": [0.3], "rician": [0.2], "bias_field": [0.5]}
    table = corruption_stability(model, images, [0, 1, 0], ["saliency"], strengths)
    assert len(table) == 9 and set(table.corruption) == set(CORRUPTIONS)
    assert np.allclose(table.spearman, 1.0)
    summary = stability_summary(table)
    assert np.allclose(summary.spearman, 1.0) and (summary["n maps"] == 3).all()


def test_stability_drops_with_strength_for_an_image_dependent_map():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)).eval()
    images = normalize(torch.from_numpy(_grey_images(4, 32, seed=1)))
    table = corruption_stability(model, images, None, ["saliency"], {"rician": [0.001, 0.3]})
    rho = table.groupby("strength").spearman.mean()
    assert rho[0.001] > 0.95 and rho[0.3] < rho[0.001] - 0.1


def test_corrupted_accuracy_of_a_constant_model_is_the_label_share():
    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.tensor([0.0, 1.0]))

        def forward(self, x):
            return self.bias.expand(len(x), 2)

    images = normalize(torch.from_numpy(_grey_images(4, 16)))
    labels = [1, 1, 1, 0]
    table = corrupted_accuracy(Constant().eval(), images, labels, {"speckle": [0.2, 0.5], "rician": [0.1]})
    assert list(table.strength) == [0.0, 0.2, 0.5, 0.0, 0.1]
    assert np.allclose(table.accuracy, 0.75)
    merged = stability_summary(
        corruption_stability(LinearReader(16).eval(), images, labels, ["saliency"], {"speckle": [0.2]}), table)
    assert merged.accuracy.tolist() == [0.75]


def test_stability_rejects_bad_strengths():
    images = normalize(torch.from_numpy(_grey_images(1, 16)))
    with pytest.raises(ValueError, match="strengths"):
        corruption_stability(LinearReader(16).eval(), images, [0], ["saliency"], {"jpeg": [0.1]})
    with pytest.raises(ValueError, match="strengths"):
        corrupted_accuracy(LinearReader(16).eval(), images, [0], {"rician": [-0.1]})


# --------------------------------------------------------------------------- figures


@pytest.fixture
def agg():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def test_shortcut_figures_draw_both_outlines_and_label_their_axes(agg):
    from medxai_lite.viz.challenges import ARTEFACT_COLOR, plot_artefact_examples, plot_region_mass, plot_shortcut_maps

    ds = load_dataset("phantom-skin", split="test", image_size=48, n=12, shortcut=1.0)
    batch = artefact_batch(ds, 2)
    fig = plot_artefact_examples(ds, [int(i) for i in batch["index"]])
    dashed = [ln for ax in fig.axes for ln in ax.lines if ln.get_color() == ARTEFACT_COLOR]
    assert len(dashed) >= 2                                     # the ruler outlined on both images
    maps = np.random.default_rng(0).random((2, 48, 48))
    fig = plot_shortcut_maps(batch["image"], {"a": maps, "b": maps}, lesion_masks=batch["mask"],
                             artefact_masks=batch["artefact_mask"], clip_percentile={"a": 99, "b": None})
    assert len(fig.axes) == 2 * 3 + 1                            # 2 rows x (input + 2 maps) + one colour bar
    assert "relevance" in fig.axes[-1].get_ylabel()
    regions = {"artefact": batch["artefact_mask"].numpy(), "lesion": batch["mask"].numpy()}
    mass = pd.concat([region_mass(maps, regions).assign(model=name, method="m") for name in ("shortcut", "clean")])
    summary = mass.groupby(["model", "method", "region"], sort=False)[["mass", "area"]].mean().reset_index()
    fig = plot_region_mass(summary)
    assert fig.axes[0].get_ylabel() == "share of positive relevance" and len(fig.axes) == 2


def test_corruption_figures(agg):
    from medxai_lite.viz.challenges import plot_corruptions, plot_stability

    images = normalize(torch.from_numpy(_grey_images(2, 32)))
    corrupted = {k: {0.0: images[0], 0.1: corrupt(images, k, 0.1)[0]} for k in ("speckle", "rician")}
    maps = {k: {s: np.random.default_rng(1).random((32, 32)) for s in v} for k, v in corrupted.items()}
    fig = plot_corruptions(images[0], corrupted, maps=maps)
    assert len(fig.axes) == 2 * 2 * 2 + 1                        # image and map rows per corruption, colour bar
    table = corruption_stability(LinearReader(32).eval(), images, [0, 1], ["saliency"], {"speckle": [0.1, 0.2]})
    accuracy = corrupted_accuracy(LinearReader(32).eval(), images, [0, 1], {"speckle": [0.1, 0.2]})
    fig = plot_stability(stability_summary(table), accuracy)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "speckle strength" and "Spearman" in ax.get_ylabel()
    assert len(ax.lines) == 2                                    # the method and the accuracy
