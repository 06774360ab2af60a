"""One meaning per reference image: Integrated Gradients, DeepLIFT and the perturbation metrics
read the same ``medxai_lite.baselines``."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medxai_lite.baselines import BASELINES, default_blur_sigma, gaussian_blur, gaussian_noise, make_baseline


@pytest.fixture
def images():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_named_baselines_known_answers(images):
    assert BASELINES == ("black", "zero", "mean", "blur", "noise")
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


def test_noise_is_the_seeded_field_scaled_by_each_images_channel_statistics(images):
    noise = make_baseline(images, "noise", seed=3)
    eps = torch.randn(32, 32, generator=torch.Generator().manual_seed(3))
    mean, std = images.mean((2, 3), keepdim=True), images.std((2, 3), keepdim=True, unbiased=False)
    torch.testing.assert_close(noise, mean + std * eps)                   # the formula, exactly
    torch.testing.assert_close(gaussian_noise(images, 3), noise)
    assert torch.equal(make_baseline(images, "noise", seed=3), noise)     # same seed, same image
    assert not torch.allclose(make_baseline(images, "noise", seed=4), noise)
    assert torch.equal(make_baseline(images, "noise"), make_baseline(images, "noise", seed=0))
    # an image gets the same reference alone or in a batch
    torch.testing.assert_close(make_baseline(images[1:], "noise", seed=3), noise[1:])


def test_noise_keeps_the_images_mean_and_spread():
    x = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(1)) * torch.tensor([1.0, 2.0, 0.5])[:, None, None] \
        + torch.tensor([0.0, -1.0, 3.0])[:, None, None]
    noise = make_baseline(x, "noise", seed=0)
    np.testing.assert_allclose(noise.mean((2, 3)), x.mean((2, 3)), atol=0.05)
    np.testing.assert_allclose(noise.std((2, 3)), x.std((2, 3)), rtol=0.03)
    assert not torch.allclose(noise, x)                                   # the structure is gone
    flat = torch.full((2, 3, 8, 8), 0.25)
    torch.testing.assert_close(make_baseline(flat, "noise"), flat)        # no spread, no noise
    # a grey image copied into three channels (then normalised per channel) gets grey noise
    grey = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(2)).expand(1, 3, 64, 64)
    mean, std = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    noise = make_baseline((grey - mean) / std, "noise") * std + mean      # back to intensities
    torch.testing.assert_close(noise[:, 0], noise[:, 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(noise[:, 0], noise[:, 2], atol=1e-5, rtol=0)


def test_noise_seed_must_be_a_non_negative_integer(images):
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            make_baseline(images, "noise", seed=bad)


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
    with pytest.raises(ValueError, match="unknown baseline 'white-noise'; valid choices: black, zero, mean, blur, noise"):
        make_baseline(images, "white-noise")
    with pytest.raises(ValueError, match="does not broadcast"):
        make_baseline(images, torch.zeros(5, 3, 1, 1))
    with pytest.raises(ValueError, match="blur_sigma must be > 0"):
        make_baseline(images, "blur", blur_sigma=0)
    with pytest.raises(ValueError, match="unknown baseline 'black'"):
        make_baseline(images, "black", choices=("zero", "blur"))
