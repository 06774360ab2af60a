"""Reference images: what an attribution method explains *against* and what a perturbation
metric fills removed pixels with.

One module serves every caller, so a name means the same image everywhere: Integrated
Gradients and DeepLIFT (``explain(..., baseline=...)``), DeepSHAP's background set, and the
deletion / insertion / AOPC curves of :mod:`medxai_lite.metrics.fidelity`.

>>> from medxai_lite.baselines import make_baseline
>>> make_baseline(images, "blur").shape == images.shape
True
"""
from __future__ import annotations

import math

import torch

from ._utils import check_choice

__all__ = ["BASELINES", "make_baseline", "gaussian_blur", "default_blur_sigma"]

#: The named reference images (a tensor broadcastable to the images is accepted too).
BASELINES = ("black", "zero", "mean", "blur")


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


def make_baseline(images: torch.Tensor, baseline="zero", blur_sigma: float | None = None,
                  choices=BASELINES) -> torch.Tensor:
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
    sigma = default_blur_sigma(images) if blur_sigma is None else blur_sigma
    return gaussian_blur(images, sigma)
