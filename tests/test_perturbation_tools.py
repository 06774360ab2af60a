"""The perturbation chapter's tools: seed repeatability, the cost/quality sweep and their figures,
on models built so that the right answer is known."""
from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

from medxai_lite.metrics import cost_quality, rank_correlation, seed_rank_correlation, top_overlap
from medxai_lite.metrics.cost import COST_COLUMNS
from medxai_lite.metrics.repeatability import REPEATABILITY_COLUMNS
from medxai_lite.models.zoo import SmallCNN

matplotlib.use("Agg")

SIZE = 32


class ReadsRegion(nn.Module):
    """Logits ``[mean of x over a fixed region (channels averaged), 0]``: only that region matters."""

    def __init__(self, region: torch.Tensor):
        super().__init__()
        self.register_buffer("region", region.float())

    def forward(self, x):
        v = (x.mean(1) * self.region).sum((1, 2)) / self.region.sum()
        return torch.stack([v, torch.zeros_like(v)], 1)


# torch on one thread for this module (the fixture is in tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def quadrant():
    """Images bright in the top-left 16 x 16 quadrant, that quadrant as the lesion mask."""
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    mask[:16, :16] = True
    images = 0.1 * torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    images[:, :, :16, :16] += 2.0
    return images, mask.expand(3, SIZE, SIZE).numpy().copy()


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return SmallCNN(num_classes=3, width=4).eval()


# --------------------------------------------------------------------------- rank correlation


def test_rank_correlation_known_answers():
    rng = np.random.default_rng(0)
    m = rng.random((3, 8, 8))
    np.testing.assert_allclose(rank_correlation(m, m), 1.0)
    np.testing.assert_allclose(rank_correlation(m, m ** 3 + 2), 1.0)       # any increasing function: same ranks
    np.testing.assert_allclose(rank_correlation(m, -m), -1.0)
    # a hand-checked case: ranks (1, 2, 3, 4) against (2, 1, 4, 3): rho = 1 - 6 * 4 / (4 * 15) = 0.6
    a = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    b = np.array([[[2.0, 1.0], [4.0, 3.0]]])
    np.testing.assert_allclose(rank_correlation(a, b), [0.6])
    const = np.zeros((1, 2, 2))
    assert np.isnan(rank_correlation(a, const)).all()                    # no ranking, no warning
    assert np.isnan(rank_correlation(torch.from_numpy(const), const)).all()


def test_rank_correlation_refuses_bad_maps():
    with pytest.raises(ValueError, match="same shape"):
        rank_correlation(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match=r"maps_a must have shape \[N, H, W\]"):
        rank_correlation(np.zeros((4, 4)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="NaN"):
        rank_correlation(np.full((1, 2, 2), np.nan), np.zeros((1, 2, 2)))


def test_top_overlap_known_answers():
    a = np.zeros((1, 10, 10))
    a[0, :2, :5] = 1.0                                   # the top 10 % of the pixels
    b = np.zeros((1, 10, 10))
    b[0, :2, 5:] = 1.0                                   # another 10 %, disjoint
    c = np.zeros((1, 10, 10))
    c[0, :2, 3:8] = 1.0                                  # shares 4 of 10 pixels with a: IoU 4 / 16
    np.testing.assert_allclose(top_overlap(a, a, top=0.1), [1.0])
    np.testing.assert_allclose(top_overlap(a, b, top=0.1), [0.0])
    np.testing.assert_allclose(top_overlap(a, c, top=0.1), [4 / 16])
    # the background's order does not matter, only the top set
    noisy = a + 0.01 * np.random.default_rng(0).random((1, 10, 10))
    np.testing.assert_allclose(top_overlap(a, noisy, top=0.1), [1.0])
    assert rank_correlation(a, noisy)[0] < 1.0
    assert np.isnan(top_overlap(a, np.zeros_like(a))).all()
    with pytest.raises(ValueError, match="top must be a fraction"):
        top_overlap(a, a, top=1.0)


# --------------------------------------------------------------------------- seed repeatability


def test_a_deterministic_method_repeats_exactly_across_seeds(quadrant):
    images, mask = quadrant
    model = ReadsRegion(torch.from_numpy(mask[0])).eval()
    table = seed_rank_correlation("occlusion", model, images, targets=0, seeds=(0, 1, 2), preset="quick")
    assert list(table.columns) == REPEATABILITY_COLUMNS
    assert len(table) == 3 * 3                                         # 3 images x 3 pairs of seeds
    assert set(zip(table.seed_a, table.seed_b)) == {(0, 1), (0, 2), (1, 2)}
    np.testing.assert_allclose(table.spearman, 1.0)
    np.testing.assert_allclose(table.top_overlap, 1.0)
    assert (table.method == "occlusion").all() and (table.preset == "quick").all()


def test_a_stochastic_method_changes_with_the_seed_and_reuses_given_maps(small):
    from medxai_lite.explain import explain

    images = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    table = seed_rank_correlation("rise", small, images, seeds=(0, 5), preset=None, n_masks=32, grid=4)
    assert len(table) == 2
    assert (table.spearman < 0.999).all()                              # 32 random masks: seed noise shows
    assert (table.spearman > -1).all()
    known = explain("rise", small, images, seed=0, n_masks=32, grid=4).maps
    again = seed_rank_correlation("rise", small, images, seeds=(0, 5), preset=None, maps={0: known}, n_masks=32,
                                  grid=4)
    np.testing.assert_allclose(again.spearman, table.spearman)
    # a map given for a seed is used as is: the same maps for both seeds agree perfectly
    same, maps = seed_rank_correlation("rise", small, images, seeds=(0, 5), maps={0: known, 5: known},
                                       return_maps=True)
    np.testing.assert_allclose(same.spearman, 1.0)
    assert sorted(maps) == [0, 5] and np.array_equal(maps[5], known)


@pytest.mark.parametrize("seeds", [(0,), (1, 1), (0, -1)])
def test_seed_rank_correlation_needs_two_distinct_seeds(small, seeds):
    with pytest.raises(ValueError, match="at least two distinct non-negative integers"):
        seed_rank_correlation("rise", small, torch.zeros(1, 3, SIZE, SIZE), seeds=seeds)


# --------------------------------------------------------------------------- cost against quality


def test_cost_quality_scores_a_known_region_exactly(quadrant):
    images, mask = quadrant
    model = ReadsRegion(torch.from_numpy(mask[0])).eval()
    table, runs = cost_quality(["occlusion"], model, images, mask, targets=0, presets=("quick",),
                               dataset="toy", return_maps=True)
    assert list(table.columns) == COST_COLUMNS
    row = table.iloc[0]
    # one 16 x 16 window per quadrant: only the read quadrant changes the logit
    assert row["pointing game"] == 1.0 and row["RMA"] == pytest.approx(1.0)
    assert row["images"] == 3 and row["scored"] == 3 and row["dataset"] == "toy"
    assert row["seconds per image"] == pytest.approx(runs[("occlusion", "quick")].seconds / 3)
    assert runs[("occlusion", "quick")].maps.shape == (3, SIZE, SIZE)
    # the lesion is the one region the model does not read: nothing lands on it
    outside = ReadsRegion(torch.from_numpy(~mask[0])).eval()
    miss = cost_quality("occlusion", outside, images, mask, targets=0, presets="quick").iloc[0]
    assert miss["pointing game"] == 0.0 and miss["RMA"] == pytest.approx(0.0, abs=1e-6)
    # no masks (a dataset without them): the cost alone
    cost = cost_quality(["occlusion"], model, images, None, targets=0, presets=("quick",)).iloc[0]
    assert cost["seconds per image"] > 0 and np.isnan(cost["pointing game"]) and cost["scored"] == 0


def test_cost_quality_runs_every_method_at_every_preset(small, quadrant):
    images, mask = quadrant
    table = cost_quality(["occlusion", "rise"], small, images[:2], mask[:2], presets=("quick", "book"),
                         options={"rise": {"n_masks": 16}})
    assert list(zip(table.method, table.preset)) == [("occlusion", "quick"), ("occlusion", "book"),
                                                     ("rise", "quick"), ("rise", "book")]
    assert (table["seconds per image"] > 0).all()
    assert table["pointing game"].between(0, 1).all() and table["RMA"].between(0, 1).all()


def test_cost_quality_counts_constant_maps_instead_of_warning(quadrant):
    import warnings

    class Blind(nn.Module):
        """The same logits whatever the image: every occlusion map is all zero."""

        def forward(self, x):
            return torch.stack([0 * x.mean((1, 2, 3)), torch.ones(len(x))], 1)

    images, mask = quadrant
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row = cost_quality(["occlusion"], Blind().eval(), images, mask, targets=0, presets=("quick",)).iloc[0]
    assert row["scored"] == 0 and row["images"] == 3
    assert np.isnan(row["pointing game"]) and np.isnan(row["RMA"])


def test_cost_quality_averages_both_scores_over_the_same_images(quadrant, monkeypatch):
    """A constant map has no peak and is not scored; its relevance mass must not enter the RMA
    mean either (a uniform map's RMA is the lesion's share, not NaN)."""
    import medxai_lite.explain as E

    images, mask = quadrant
    maps = np.zeros((3, SIZE, SIZE), np.float32)
    maps[0] = 1.0                                                 # constant: left out of both
    maps[1:][:, mask[0]] = 1.0                                    # all relevance on the lesion
    monkeypatch.setattr(E, "explain", lambda *a, **k: SimpleNamespace(maps=maps, seconds=1.0, kind="map"))
    row = cost_quality(["occlusion"], None, images, mask, presets=("quick",)).iloc[0]
    assert row["scored"] == 2 and row["pointing game"] == 1.0 and row["RMA"] == pytest.approx(1.0)


def test_cost_quality_refuses_bad_arguments(small, quadrant):
    images, mask = quadrant
    with pytest.raises(ValueError, match="unknown presets 'fast'"):
        cost_quality(["occlusion"], small, images, mask, presets=("fast",))
    with pytest.raises(ValueError, match="masks must be bool"):
        cost_quality(["occlusion"], small, images, mask[:, :8], presets=("quick",))
    with pytest.raises(ValueError, match="at least one method"):
        cost_quality([], small, images, mask)


# --------------------------------------------------------------------------- figures


def test_baseline_gallery_shows_every_reference(quadrant):
    from medxai_lite.viz.perturbation import BASELINE_NOTES, plot_baselines

    images, mask = quadrant
    fig = plot_baselines(images[:2], masks=mask[:2], row_titles=["a", "b"])
    axes = fig.axes
    assert len(axes) == 2 * 5
    assert [ax.get_title() for ax in axes[:5]] == ["input: a", "blur baseline", "black baseline", "mean baseline",
                                                   "noise baseline"]
    assert axes[-1].get_xlabel().replace("\n", " ") == BASELINE_NOTES["noise"]
    assert set(BASELINE_NOTES) >= {"blur", "black", "zero", "mean", "noise"}


def test_cost_quality_figure_has_a_log_cost_axis_and_labels():
    import pandas as pd

    from medxai_lite.viz.perturbation import plot_cost_quality

    table = pd.DataFrame({"method": ["lime", "lime", "rise"], "preset": ["quick", "book", "quick"],
                          "seconds per image": [0.4, 4.0, 1.3], "pointing game": [0.5, 0.75, 1.0],
                          "RMA": [0.2, 0.3, 0.4]})
    fig = plot_cost_quality(table, references={"random map": 0.1})
    assert fig.layout.xaxis.type == "log"
    assert fig.layout.xaxis.title.text == "seconds per image (log scale)"
    assert fig.layout.yaxis.title.text == "pointing game"
    assert [t.name for t in fig.data] == ["lime", "rise"]
    assert list(fig.data[0].x) == [0.4, 4.0]
    with pytest.raises(ValueError, match="missing column"):
        plot_cost_quality(table.drop(columns="preset"))
    with pytest.raises(ValueError, match="must be > 0"):
        plot_cost_quality(table.assign(**{"seconds per image": 0.0}))


def test_seed_agreement_figure():
    import pandas as pd

    from medxai_lite.viz.perturbation import plot_seed_agreement

    table = pd.DataFrame({"method": ["lime"] * 4 + ["rise"] * 2, "preset": "quick", "image": [0, 0, 1, 1, 0, 1],
                          "seed_a": 0, "seed_b": 1, "spearman": [0.2, 0.4, 0.6, 0.8, 0.9, 0.95],
                          "top_overlap": [1.0, 1.0, 0.5, 0.5, 0.0, 1.0]})
    fig = plot_seed_agreement(table)
    assert len(fig.axes) == 2
    for ax, heights in zip(fig.axes, ([0.5, 0.925], [0.75, 0.5])):
        assert [t.get_text() for t in ax.get_xticklabels()] == ["lime", "rise"]
        np.testing.assert_allclose([p.get_height() for p in ax.patches], heights)
    assert "Spearman" in fig.axes[0].get_ylabel() and "IoU" in fig.axes[1].get_ylabel()
    assert len(plot_seed_agreement(table.drop(columns="top_overlap")).axes) == 1
    with pytest.raises(ValueError, match="none of the columns"):
        plot_seed_agreement(table[["method", "image"]])


def test_lime_draws_no_progress_bar_and_puts_lime_back(small, monkeypatch):
    """lime 0.2 wraps its sampling in tqdm.auto (an ipywidget in Jupyter, which the book cannot
    show): the adapter swaps it for a pass-through during the call and restores it after."""
    from lime import lime_image

    from medxai_lite.explain import explain

    def no_bars(*args, **kwargs):
        raise AssertionError("lime drew a progress bar")

    monkeypatch.setattr(lime_image, "tqdm", no_bars)
    res = explain("lime", small, torch.randn(1, 3, SIZE, SIZE), num_samples=8, n_segments=4)
    assert res.maps.shape == (1, SIZE, SIZE)
    assert lime_image.tqdm is no_bars
