"""One meaning per reference image: Integrated Gradients, DeepLIFT and the perturbation metrics
read the same ``medxai_lite.baselines``."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medxai_lite.baselines import BASELINES, default_blur_sigma, gaussian_blur, make_baseline


@pytest.fixture
def images():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_named_baselines_known_answers(images):
    assert BASELINES == ("black", "zero", "mean", "blur")
    black = make_baseline(images, "black")
    assert torch.equal(black[:, :, 5, 7], images.amin((2, 3)))
    assert torch.equal(make_baseline(images, "zero"), torch.zeros_like(images))
    np.testing.assert_allclose(make_baseline(images, "mean")[:, :, 0, 0], images.mean((2, 3)), rtol=1e-6)
    assert torch.equal(make_baseline(images, torch.zeros(1, 3, 1, 1)), torch.zeros_like(images))
    flat = torch.full((1, 3, 16, 16), 0.7)
    torch.testing.assert_close(make_baseline(flat, "blur"), flat)          # blurring a constant changes nothing


def test_blur_of_an_impulse_is_the_sampled_gaussian():
    sigma = 1.5
    x = torch.zeros(1, 1, 33, 33)
    x[0, 0, 16, 16] = 1.0
    out = gaussian_blur(x, sigma)[0, 0]
    half = math.ceil(2 * sigma)                     # kernel 2 ceil(2 sigma) + 1 = 7
    g = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    g /= g.sum()
    np.testing.assert_allclose(out[16, 16 - half:17 + half].numpy(), g * g[half], rtol=1e-5)
    assert out[16, 16 + half + 1] == 0                               # nothing beyond the kernel
    np.testing.assert_allclose(out.sum().item(), 1.0, rtol=1e-5)      # mass is kept


def test_default_blur_is_petsiuks_sigma_scaled_to_the_image(images):
    assert default_blur_sigma(torch.zeros(1, 3, 224, 224)) == 5.0
    assert default_blur_sigma(torch.zeros(1, 3, 112, 112)) == 2.5
    torch.testing.assert_close(make_baseline(images, "blur"), gaussian_blur(images, 5.0 * 32 / 224))


def test_integrated_gradients_and_deletion_use_the_same_blur(images):
    from medxai_lite.explain import explain
    from medxai_lite.metrics import fidelity
    from medxai_lite.models.zoo import SmallCNN

    torch.manual_seed(0)
    model = SmallCNN(2, width=4).eval()
    ig = explain("integrated_gradients", model, images, baseline="blur", n_steps=4)
    torch.testing.assert_close(torch.from_numpy(ig.extras["baseline"]), make_baseline(images, "blur"))
    torch.testing.assert_close(fidelity.make_baseline(images, "blur"), make_baseline(images, "blur"))


def test_bad_baselines_are_named(images):
    with pytest.raises(ValueError, match="unknown baseline 'white-noise'; valid choices: black, zero, mean, blur"):
        make_baseline(images, "white-noise")
    with pytest.raises(ValueError, match="does not broadcast"):
        make_baseline(images, torch.zeros(5, 3, 1, 1))
    with pytest.raises(ValueError, match="blur_sigma must be > 0"):
        make_baseline(images, "blur", blur_sigma=0)
    with pytest.raises(ValueError, match="unknown baseline 'black'"):
        make_baseline(images, "black", choices=("zero", "blur"))
