"""Reference images: what an attribution method explains *against* and what a perturbation
metric fills removed pixels with.

One module serves every caller, so a name means the same image everywhere: Integrated
Gradients and DeepLIFT (``explain(..., baseline=...)``), DeepSHAP's background set, the
perturbation family (what a hidden region is filled with) and the deletion / insertion / AOPC
curves of :mod:`medxai_lite.metrics.fidelity`.

>>> from medxai_lite.baselines import make_baseline
>>> make_baseline(images, "blur").shape == images.shape
True
"""
from __future__ import annotations

import math
import numbers

import torch

from ._utils import check_choice

__all__ = ["BASELINES", "make_baseline", "gaussian_blur", "gaussian_noise", "default_blur_sigma"]

#: The named reference images (a tensor broadcastable to the images is accepted too).
BASELINES = ("black", "zero", "mean", "blur", "noise")


def default_blur_sigma(images: torch.Tensor) -> float:
    """Petsiuk et al. (2018)'s blur, sigma 5 at 224 px, scaled to the image: ``5 * max(H, W) / 224``."""
    return 5.0 * max(images.shape[-2:]) / 224


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``images`` [N, C, H, W] with torchvision, reflect padding.

    The kernel is ``2 * ceil(2 sigma) + 1`` pixels wide, capped so that reflect padding fits
    the image; a kernel narrower than 3 returns a copy.
    """
    if not float(sigma) > 0:
        raise ValueError(f"blur_sigma must be > 0; got {sigma!r}")
    from torchvision.transforms.functional import gaussian_blur as tv_blur

    kernel = 2 * math.ceil(2 * float(sigma)) + 1
    kernel = min(kernel, 2 * ((min(images.shape[-2:]) - 1) // 2) + 1)
    if kernel < 3:
        return images.clone()
    return tv_blur(images, kernel_size=[kernel, kernel], sigma=[float(sigma)] * 2)


def gaussian_noise(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    r"""Gaussian noise with each image's per-channel mean and standard deviation, [N, C, H, W].

    .. math:: b_{c,h,w} = \mu_c + \sigma_c\, \varepsilon_{h,w}, \qquad
              \varepsilon \sim \mathcal N(0, 1)

    with :math:`\mu_c, \sigma_c` the mean and (population) standard deviation of channel ``c``
    of that image. One field :math:`\varepsilon` [H, W] serves every channel (luminance noise),
    so a grey image (MRI, X-ray, copied into three channels) gets grey noise rather than coloured
    speckle. It is drawn from a CPU generator seeded with ``seed`` and shared by the images of
    the batch, so an image gets the same reference alone or in any batch, and the same seed gives
    the same image on every device.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    generator = torch.Generator().manual_seed(int(seed))
    eps = torch.randn(tuple(images.shape[-2:]), generator=generator, dtype=torch.float32)
    eps = eps.to(device=images.device, dtype=images.dtype)
    mean = images.mean(dim=(2, 3), keepdim=True)
    std = images.std(dim=(2, 3), keepdim=True, unbiased=False)
    return mean + std * eps


def make_baseline(images: torch.Tensor, baseline="zero", blur_sigma: float | None = None,
                  choices=BASELINES, seed: int = 0) -> torch.Tensor:
    """The reference image of each input, same shape as ``images`` [N, C, H, W].

    ``"zero"``
        All zeros in the model's input space: the dataset's mean colour for normalised images.
    ``"black"``
        Each channel's minimum in that image: black whatever the normalisation.
    ``"mean"``
        Each image's own per-channel mean colour.
    ``"blur"``
        A Gaussian blur of the image (:func:`gaussian_blur`); ``blur_sigma`` defaults to
        :func:`default_blur_sigma` (2.5 px at 112 px, 5 px at 224 px).
    ``"noise"``
        Gaussian noise with the image's per-channel mean and standard deviation
        (:func:`gaussian_noise`), drawn with ``seed``: same seed, same image.
    a tensor
        Broadcast to the images' shape.

    ``choices`` restricts the named baselines a caller accepts (the error names them).
    """
    if isinstance(baseline, torch.Tensor):
        try:
            return torch.broadcast_to(baseline.to(images), images.shape).clone()
        except RuntimeError as exc:
            raise ValueError(f"baseline tensor of shape {list(baseline.shape)} does not broadcast to images "
                             f"{list(images.shape)}") from exc
    check_choice("baseline", baseline, choices)
    if baseline == "zero":
        return torch.zeros_like(images)
    if baseline == "black":
        return images.amin(dim=(2, 3), keepdim=True).expand_as(images).clone()
    if baseline == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images).clone()
    if baseline == "noise":
        return gaussian_noise(images, seed)
    sigma = default_blur_sigma(images) if blur_sigma is None else blur_sigma
    return gaussian_blur(images, sigma)
