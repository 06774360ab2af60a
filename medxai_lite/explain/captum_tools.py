"""The captum plumbing every captum-backed adapter shares.

- :func:`attribute`: ``method.attribute(images, target=targets, **kwargs)`` with captum's
  per-call hook warnings silenced, optionally through a SmoothGrad ``NoiseTunnel``;
- the reducers from attributions [N, C, H, W] to raw maps [N, H, W]: :func:`gradient_image`
  (max of absolute values over channels, for gradient images) and :func:`channel_sum` (for
  methods whose attributions sum to a score difference);
- :func:`attribution_result`: an :class:`~medxai_lite.explain.registry.AdapterResult` with the
  attributions (and the convergence delta) in ``extras``;
- :func:`reference` and :func:`shap_background`: the reference images, from
  :mod:`medxai_lite.baselines`.

A new captum-backed family (occlusion, KernelSHAP, ...) imports these instead of copying them.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Callable

import torch

from ..baselines import BASELINES, make_baseline
from .registry import AdapterResult, Call

__all__ = ["quiet_captum", "attribute", "gradient_image", "channel_sum", "attribution_result", "reference",
           "shap_background", "BASELINES"]


@contextlib.contextmanager
def quiet_captum():
    """Silence the warning captum gives on every call that it sets temporary hooks on activations."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*hooks", category=UserWarning)
        yield


def attribute(call: Call, method, *, smooth: bool = False, nt_samples: int = 8, noise_level: float = 0.15,
              **kwargs):
    """``(attributions, delta)`` of ``method.attribute(call's images, target=call's targets, **kwargs)``.

    ``smooth=True`` wraps the method in captum's ``NoiseTunnel`` (SmoothGrad, Smilkov et al.
    2017): the mean over ``nt_samples`` noisy copies, noise std ``noise_level`` x (max - min) of
    the batch; the convergence delta is then ``None``.
    """
    targets = call.require_targets()
    x = call.inputs(True)
    with quiet_captum():
        if smooth:
            from captum.attr import NoiseTunnel

            if int(nt_samples) < 1 or not noise_level > 0:
                raise ValueError(f"nt_samples must be >= 1 and noise_level > 0; got {nt_samples!r}, {noise_level!r}")
            kwargs.pop("return_convergence_delta", None)
            stdev = float(noise_level) * float(x.detach().max() - x.detach().min())
            return NoiseTunnel(method).attribute(x, nt_type="smoothgrad", nt_samples=int(nt_samples),
                                                 stdevs=stdev, target=targets, **kwargs), None
        out = method.attribute(x, target=targets, **kwargs)
    return out if isinstance(out, tuple) else (out, None)


def gradient_image(attributions: torch.Tensor) -> torch.Tensor:
    r"""Simonyan et al.'s reduction of a gradient image: :math:`M_{ij} = \max_c |A_{cij}|`."""
    return attributions.detach().abs().amax(1)


def channel_sum(attributions: torch.Tensor) -> torch.Tensor:
    r""":math:`M_{ij} = \sum_c A_{cij}`: keeps the total, so ``raw.sum()`` is the explained difference."""
    return attributions.detach().sum(1)


def attribution_result(attributions: torch.Tensor, reduce: Callable[[torch.Tensor], torch.Tensor],
                       delta=None) -> AdapterResult:
    """Raw maps ``reduce(attributions)``; ``extras["attributions"]`` float32 [N, C, H, W] and, when
    given, ``extras["convergence_delta"]`` [N]."""
    extras = {"attributions": attributions.detach().float().cpu().numpy()}
    if delta is not None:
        extras["convergence_delta"] = delta.detach().float().cpu().numpy().reshape(-1)
    return AdapterResult(raw=reduce(attributions), extras=extras)


def reference(images: torch.Tensor, baseline, blur_sigma: float | None = None) -> torch.Tensor:
    """The reference image of each input: :func:`medxai_lite.baselines.make_baseline` with every
    named baseline (``"black"``, ``"zero"``, ``"mean"``, ``"blur"``, ``"noise"``) or a tensor."""
    return make_baseline(images, baseline, blur_sigma)


def shap_background(images: torch.Tensor, n_noise: int) -> torch.Tensor:
    """A default reference set for DeepSHAP-like methods: black, mean colour and blurred versions
    of the batch's mean image, plus ``n_noise`` noisy copies of the mean colour (std 0.5 x the
    batch's spread)."""
    mean_image = images.mean(0, keepdim=True)
    refs = [make_baseline(mean_image, b) for b in ("black", "mean", "blur")]
    noise = torch.randn((int(n_noise),) + tuple(images.shape[1:]), device=images.device, dtype=images.dtype)
    refs.append(refs[1] + 0.5 * images.std() * noise)
    return torch.cat(refs)
