r"""Perturbation-based methods (survey §2.1.4): change the input, watch the class score.

Each method hides parts of the image and reads the model's output on the perturbed copies:
superpixels (LIME, KernelSHAP, Anchors), the blocks of a hierarchy (Partition SHAP), sliding
windows (occlusion), random soft masks (RISE), masks made from the last convolutional layer's
activations (SIDU), or one smooth mask optimised by gradient descent (extremal perturbation,
the only method here that differentiates the model).

*Hiding* always means blending with a reference image from :mod:`medxai_lite.baselines`
(option ``baseline``: ``"mean"``, ``"blur"``, ``"black"``, ``"zero"`` or a tensor):
:math:`h(x, m) = m \odot x + (1 - m) \odot b`. Images stay in the model's normalised input
space throughout (no round trip through 8-bit images).

Superpixels are SLIC-zero (Achanta et al. 2012; scikit-image ``slic(..., slic_zero=True)``,
which adapts the compactness, so smooth scans and noise alike get about ``n_segments`` compact
segments) on each image scaled to [0, 1]: :func:`superpixels`; ``extras["segments"]`` holds them.

Randomness comes from the generator ``explain(..., seed=s)`` seeds: torch's (RISE, KernelSHAP,
Anchors) or, for numpy-based libraries, one seeded from ``torch.initial_seed()``, i.e. from ``s``:
LIME's own ``RandomState``; numpy's global generator for shap's Partition explainer, which breaks
ties in its priority queue with ``np.random.randn()`` (seeded for the call, its state restored
afterwards). Occlusion, SIDU and extremal perturbation are deterministic.
"""
from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._utils import check_choice
from .._utils import check_fraction as _fraction
from .._utils import check_positive_int as _int
from .captum_tools import attribute as _attribute
from .captum_tools import reference as _reference
from .registry import AdapterResult, register

__all__ = ["superpixels", "rise_masks"]  # the adapters themselves are reached through explain()

_PERT = "Perturbation-based"


# --------------------------------------------------------------------------- helpers


def _seed() -> int:
    """The seed ``explain`` gave torch's (forked) generator, for libraries that draw from numpy."""
    return int(torch.initial_seed() % 2**32)


@contextlib.contextmanager
def _numpy_global_seed(seed: int):
    """numpy's global generator seeded for a library that draws from it, its state restored on exit."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _scores(model: nn.Module, x: torch.Tensor, score: str = "logit") -> torch.Tensor:
    with torch.no_grad():
        out = model(x)
    return out.softmax(1) if score == "softmax" else out


def _blend(image: torch.Tensor, reference: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """:math:`m x + (1 - m) b` for masks ``keep`` [B, H, W] (or [B, 1, H, W]) and one image [C, H, W]
    (written so that a 0/1 mask gives exactly the image's or the reference's values)."""
    keep = (keep if keep.dim() == 4 else keep[:, None]).to(image)
    return keep * image + (1 - keep) * reference


@contextlib.contextmanager
def _no_lime_progress_bar():
    """lime 0.2 wraps its sampling loop in ``tqdm.auto`` with no switch to turn it off: a bar on
    stderr in a terminal, an ipywidget in Jupyter (which the rendered book cannot show). Swap it
    for a pass-through for the call; the original is put back on exit."""
    from lime import lime_image

    saved = lime_image.tqdm
    lime_image.tqdm = lambda iterable, *args, **kwargs: iterable
    try:
        yield
    finally:
        lime_image.tqdm = saved


def superpixels(images: torch.Tensor, n_segments: int = 50) -> np.ndarray:
    """SLIC-zero superpixels of each image, int64 [N, H, W] labelled 0 .. K-1 (K ~ ``n_segments``).

    Each image is min-max scaled to [0, 1] first (normalised inputs have any range); 3-channel
    images are segmented in CIELAB, others channel by channel.
    """
    from skimage.segmentation import slic

    n_segments = _int("n_segments", n_segments, 2)
    out = []
    for image in images.detach().float().cpu():
        x = image.permute(1, 2, 0).numpy()
        x = (x - x.min()) / max(float(x.max() - x.min()), 1e-12)
        labels = slic(x, n_segments=n_segments, slic_zero=True, start_label=0, channel_axis=-1,
                      convert2lab=x.shape[-1] == 3)
        out.append(np.unique(labels, return_inverse=True)[1].reshape(labels.shape))
    return np.stack(out).astype(np.int64)


def _per_segment(values: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """The map that gives each pixel its superpixel's value."""
    return np.asarray(values, dtype=np.float32)[segments]


# --------------------------------------------------------------------------- superpixel surrogates


@register("lime", title="LIME", family=_PERT, library="lime", needs_gradients=False, cost="slow",
          paper="Ribeiro et al. 2016, \"Why Should I Trust You?\": Explaining the Predictions of Any Classifier (KDD)",
          sign="absolute", presets={"quick": {"num_samples": 64}})
def _lime(call, num_samples: int = 1000, n_segments: int = 50, baseline="mean", blur_sigma: float | None = None,
          kernel_width: float = 0.25, score: str = "softmax", batch_size: int = 64):
    r"""LIME: a locally weighted linear surrogate of the class score on superpixels,
    :math:`w = \arg\min_w \sum_z \pi(z)\,(f_c(h(x, z)) - w_0 - w^\top z)^2 + \|w\|^2`, over
    ``num_samples`` random on/off vectors :math:`z \in \{0,1\}^K` (hidden superpixels take the
    ``baseline``), :math:`\pi(z) = \exp(-d_{\cos}(z, \mathbf 1)^2 / (2\sigma^2))` (lime's default
    kernel, :math:`\sqrt{\exp(-d^2/\sigma^2)}`), ``kernel_width`` :math:`\sigma`. Each pixel gets its superpixel's weight :math:`w_k` (signed). ``score``:
    ``"softmax"`` (LIME's class probability) or ``"logit"`` (for a confident model whose probability
    stays at 1 whatever is hidden). ``extras``: ``segments``, ``intercept`` and ``r2`` (the
    surrogate's weighted R²).

    Ribeiro et al. 2016, https://arxiv.org/abs/1602.04938 (``lime.lime_image.LimeImageExplainer``).
    """
    from lime import lime_image

    num_samples, batch_size = _int("num_samples", num_samples, 2), _int("batch_size", batch_size)
    if not kernel_width > 0:
        raise ValueError(f"kernel_width must be > 0, got {kernel_width!r}")
    check_choice("score", score, ("softmax", "logit"))
    targets = call.require_targets()
    segments = superpixels(call.images, n_segments)
    reference = _reference(call.images, baseline, blur_sigma)
    explainer = lime_image.LimeImageExplainer(kernel_width=float(kernel_width), feature_selection="none",
                                              random_state=_seed())
    model, device, dtype = call.model, call.images.device, call.images.dtype

    def classify(batch):  # lime's perturbed copies of the normalised image, channel-last
        x = torch.as_tensor(np.asarray(batch), dtype=dtype, device=device).permute(0, 3, 1, 2)
        return _scores(model, x, score).cpu().numpy()

    maps, intercepts, fits = [], [], []
    for image, ref, seg, t in zip(call.images, reference, segments, targets.tolist()):
        weights = np.zeros(seg.max() + 1)
        with _no_lime_progress_bar():
            exp = explainer.explain_instance(
                image.permute(1, 2, 0).cpu().numpy(), classify, labels=(t,), top_labels=None,
                hide_color=ref.permute(1, 2, 0).cpu().numpy(), num_features=len(weights), num_samples=num_samples,
                batch_size=batch_size, segmentation_fn=lambda _, seg=seg: seg)
        for k, w in exp.local_exp[t]:
            weights[k] = w
        maps.append(_per_segment(weights, seg))
        intercepts.append(exp.intercept[t])
        fits.append(exp.score)
    return AdapterResult(raw=np.stack(maps), extras={"segments": segments, "intercept": np.asarray(intercepts),
                                                     "r2": np.asarray(fits)})


@register("kernelshap", title="KernelSHAP", family=_PERT, library="captum", needs_gradients=False, cost="slow",
          paper="Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions (NeurIPS)",
          sign="absolute", presets={"quick": {"n_samples": 64}})
def _kernelshap(call, n_samples: int = 512, n_segments: int = 50, baseline="mean", blur_sigma: float | None = None,
                batch_size: int = 64):
    r"""KernelSHAP: Shapley values of the superpixels for the class logit, estimated by a linear
    regression on ``n_samples`` coalitions :math:`z` drawn in proportion to the Shapley kernel
    :math:`\pi(z) = \frac{K - 1}{\binom{K}{|z|}\,|z|\,(K - |z|)}`; absent superpixels take the
    ``baseline``, so :math:`\sum_k \phi_k \approx f_c(x) - f_c(b)`. Each pixel gets its superpixel's
    :math:`\phi_k` (signed). ``extras["segments"]``.

    Lundberg & Lee 2017, https://arxiv.org/abs/1705.07874 (captum ``KernelShap``).
    """
    from captum.attr import KernelShap

    n_samples, batch_size = _int("n_samples", n_samples, 2), _int("batch_size", batch_size)
    targets = call.require_targets()
    segments = superpixels(call.images, n_segments)
    reference = _reference(call.images, baseline, blur_sigma)
    method = KernelShap(call.model)
    maps = []
    for i, t in enumerate(targets.tolist()):
        mask = torch.as_tensor(segments[i], device=call.images.device)[None, None]
        with torch.no_grad():
            phi = method.attribute(call.images[i:i + 1], baselines=reference[i:i + 1], target=t, feature_mask=mask,
                                   n_samples=n_samples, perturbations_per_eval=batch_size, return_input_shape=False)
        maps.append(_per_segment(phi.reshape(-1).cpu().numpy(), segments[i]))
    return AdapterResult(raw=np.stack(maps), extras={"segments": segments})


@register("partition_shap", title="Partition SHAP", family=_PERT, library="shap", needs_gradients=False,
          cost="slow", paper="Lundberg & Lee 2017 (NeurIPS); shap's Partition explainer (Owen values on a "
                             "hierarchy of image blocks)", sign="absolute", presets={"quick": {"max_evals": 128}})
def _partition_shap(call, max_evals: int = 1000, baseline="mean", blur_sigma: float | None = None,
                    batch_size: int = 64):
    r"""Partition SHAP: Owen values of the class logit for shap's hierarchy of image blocks (axis-aligned
    halvings down to pixels), refined where the value changes most until ``max_evals`` model calls;
    hidden blocks take the ``baseline`` (given to ``shap.maskers.Image`` as an array, not its 8-bit
    inpainting). :math:`\sum_{ij} \mathrm{raw}_{ij} = f_c(x) - f_c(b)` (channels summed). shap breaks ties
    between equally promising blocks with numpy's global generator (``np.random.randn``, no seed
    parameter): it is seeded from ``seed`` for the call and restored afterwards, so a seed repeats;
    where no ties occur the result does not depend on the seed.

    Lundberg & Lee 2017, https://arxiv.org/abs/1705.07874 (``shap.explainers.Partition``).
    """
    import shap

    max_evals, batch_size = _int("max_evals", max_evals, 4), _int("batch_size", batch_size)
    targets = call.require_targets()
    reference = _reference(call.images, baseline, blur_sigma)
    model, device, dtype = call.model, call.images.device, call.images.dtype

    def predict(batch):  # shap's masked copies, channel-last
        x = torch.as_tensor(np.asarray(batch), dtype=dtype, device=device).permute(0, 3, 1, 2)
        return _scores(model, x).cpu().numpy()

    maps = []
    for image, ref, t in zip(call.images, reference, targets.tolist()):
        hwc = image.permute(1, 2, 0).cpu().numpy()
        masker = shap.maskers.Image(ref.permute(1, 2, 0).cpu().numpy(), hwc.shape)
        with _numpy_global_seed(_seed()):
            values = shap.explainers.Partition(predict, masker)(hwc[None], max_evals=max_evals, batch_size=batch_size,
                                                                outputs=[t], silent=True).values
        maps.append(np.asarray(values)[0, ..., 0].sum(-1))
    return AdapterResult(raw=np.stack(maps).astype(np.float32))


# --------------------------------------------------------------------------- occlusion


@register("occlusion", title="Occlusion", family=_PERT, library="captum", needs_gradients=False, cost="slow",
          paper="Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks (ECCV)",
          sign="absolute", presets={"quick": {"window": 16, "stride": 16}})
def _occlusion(call, window: int = 16, stride: int = 8, baseline="mean", blur_sigma: float | None = None,
               batch_size: int = 64):
    r"""Occlusion: slide a ``window`` x ``window`` patch (all channels) by ``stride`` pixels, replace it
    by the ``baseline`` and record the drop of the class logit,
    :math:`R_{ij} = \frac{1}{|W(ij)|}\sum_{w \in W(ij)} f_c(x) - f_c(h(x, 1 - \mathbb 1_w))` over the
    windows :math:`W(ij)` that cover the pixel. Where the last full window stops short of the
    border, captum adds one cut off at the image edge, so every pixel is covered and the edge
    windows are smaller than ``window``. ``batch_size``
    occluded copies per forward pass. ``extras["attributions"]`` [N, C, H, W].

    Zeiler & Fergus 2014, https://arxiv.org/abs/1311.2901 (captum ``Occlusion``).
    """
    from captum.attr import Occlusion

    limit = min(call.size)
    window, stride, batch_size = _int("window", window), _int("stride", stride), _int("batch_size", batch_size)
    if window > limit or stride > limit:
        raise ValueError(f"window and stride must be at most the image size ({limit} px); got {window}, {stride}")
    channels = call.images.shape[1]
    reference = _reference(call.images, baseline, blur_sigma)
    attributions, _ = _attribute(call, Occlusion(call.model), sliding_window_shapes=(channels, window, window),
                                 strides=(channels, stride, stride), baselines=reference,
                                 perturbations_per_eval=batch_size)
    attributions = attributions.detach()
    return AdapterResult(raw=attributions.mean(1), extras={"attributions": attributions.float().cpu().numpy()})


# --------------------------------------------------------------------------- random and feature masks


def rise_masks(n: int, grid: int, p: float, size, device=None) -> torch.Tensor:
    r"""RISE's masks [n, H, W]: a ``grid`` x ``grid`` Bernoulli(``p``) grid upsampled bilinearly to
    :math:`(s + 1)\,C` pixels a side (cell :math:`C = \lceil H / s \rceil`), then cropped at a random
    shift in :math:`[0, C)^2`. Draws from torch's generator."""
    (H, W), s = size, grid
    ch, cw = math.ceil(H / s), math.ceil(W / s)
    cells = (torch.rand(n, 1, s, s, device=device) < p).float()
    up = F.interpolate(cells, size=((s + 1) * ch, (s + 1) * cw), mode="bilinear", align_corners=False)[:, 0]
    dy = torch.randint(0, ch, (n,), device=device)
    dx = torch.randint(0, cw, (n,), device=device)
    rows = (dy[:, None] + torch.arange(H, device=device))[:, :, None]
    cols = (dx[:, None] + torch.arange(W, device=device))[:, None, :]
    return up[torch.arange(n, device=device)[:, None, None], rows, cols].clamp_(0, 1)  # (rounding above 1)


@register("rise", title="RISE", family=_PERT, library="none (hand-written)",
          needs_gradients=False, cost="slow",
          paper="Petsiuk et al. 2018, RISE: Randomized Input Sampling for Explanation of Black-box Models (BMVC)",
          sign="all", scale="minmax", presets={"quick": {"n_masks": 256}})
def _rise(call, n_masks: int = 2000, grid: int = 7, p: float = 0.5, baseline="zero", blur_sigma: float | None = None,
          score: str = "softmax", batch_size: int = 64):
    r"""RISE: the score-weighted average of random masks,
    :math:`S_c = \frac{1}{N\,\mathbb E[M]} \sum_{i=1}^N f_c(h(x, M_i))\,M_i`, :math:`\mathbb E[M] = p`, over
    ``n_masks`` masks :func:`rise_masks` (``grid`` cells a side, each kept with probability ``p``);
    hidden pixels take the ``baseline`` (the paper multiplies the normalised input by the mask:
    ``"zero"``). ``score``: ``"softmax"`` (the paper's class probability) or ``"logit"``. Every image
    uses the same masks; ``batch_size`` masked copies per forward pass. Maps are min-max scaled
    (:math:`S_c` has a floor of about :math:`p\,f_c`, the mean score of a masked image).

    Petsiuk et al. 2018, https://arxiv.org/abs/1806.07421 (no maintained library; the authors' code is
    a notebook).
    """
    n_masks, grid, batch_size = _int("n_masks", n_masks), _int("grid", grid, 2), _int("batch_size", batch_size)
    p = _fraction("p", p)
    check_choice("score", score, ("softmax", "logit"))
    targets = call.require_targets()
    reference = _reference(call.images, baseline, blur_sigma)
    saliency = torch.zeros(len(call.images), *call.size, device=call.images.device)
    for start in range(0, n_masks, batch_size):
        masks = rise_masks(min(batch_size, n_masks - start), grid, p, call.size, call.images.device)
        for i, t in enumerate(targets.tolist()):
            f = _scores(call.model, _blend(call.images[i], reference[i], masks), score)[:, t]
            saliency[i] += torch.einsum("b,bhw->hw", f.float(), masks)
    return AdapterResult(raw=saliency / (n_masks * p))


@register("sidu", title="SIDU", family=_PERT, library="none (hand-written)",
          needs_gradients=False, cost="slow",
          paper="Muddamsetty et al. 2022, Visual explanation of black-box model: Similarity Difference and "
                "Uniqueness (SIDU) method (Pattern Recognition 127)",
          scale="minmax", presets={"quick": {"batch_size": 128}})
def _sidu(call, layer=None, threshold: float = 0.5, kernel_width: float = 0.25, baseline="zero",
          blur_sigma: float | None = None, batch_size: int = 64):
    r"""SIDU: masks from the K feature maps :math:`A^k` of ``layer`` (default: the CAM layer),
    :math:`M_k = U(\mathbb 1[A^k > \tau])` (``threshold`` :math:`\tau`, bilinear upsampling :math:`U`),
    weighted by their similarity difference and uniqueness,

    .. math:: S_c = \frac1K \sum_k SD^c_k\,U_k\,M_k,\quad
              SD^c_k = \exp\Big(-\frac{(P_c(x) - P_c(h(x, M_k)))^2}{2\sigma^2}\Big),\quad
              U_k = \operatorname{minmax}_k \sum_j \|P(h(x, M_k)) - P(h(x, M_j))\|_2

    with :math:`P` the softmax probabilities and :math:`\sigma` = ``kernel_width`` (0.25, as in the
    authors' code). Masked images multiply the normalised input by the mask (``baseline="zero"``).
    One forward pass per distinct channel mask (channels with the same binary mask share it),
    ``batch_size`` per pass. Maps are min-max scaled.

    Muddamsetty et al. 2022, https://doi.org/10.1016/j.patcog.2022.108604 (follows the authors' Keras
    script, https://github.com/satyamahesh84/SIDU_XAI_CODE; the ``pytorch-sidu`` package departs from
    it: uniqueness of feature maps rather than predictions, threshold 0.15).
    """
    batch_size = _int("batch_size", batch_size)
    if not kernel_width > 0:
        raise ValueError(f"kernel_width must be > 0, got {kernel_width!r}")
    module = call.layers(layer)
    if len(module) != 1:
        raise ValueError("SIDU reads one layer; pass a single module or name as layer")
    captured = []
    handle = module[0].register_forward_hook(lambda m, i, out: captured.append(out.detach()))
    try:
        original = _scores(call.model, call.images, "softmax")
    finally:
        handle.remove()
    if call.targets is None:
        call.targets = original.argmax(1)
    features = captured[0]
    if features.dim() != 4:
        raise ValueError(f"layer must output feature maps [N, K, h, w]; got shape {list(features.shape)}")
    targets = call.require_targets()
    reference = _reference(call.images, baseline, blur_sigma)
    binary = (features > float(threshold)).float()
    saliency = []
    for i, t in enumerate(targets.tolist()):
        # channels with the same binary mask give the same masked image: score each distinct mask once
        distinct, which = torch.unique(binary[i].flatten(1), dim=0, return_inverse=True)
        distinct = distinct.reshape(-1, 1, *binary.shape[-2:])
        probs, masks = [], []
        for start in range(0, len(distinct), batch_size):
            m = F.interpolate(distinct[start:start + batch_size], size=call.size, mode="bilinear",
                              align_corners=False)[:, 0]
            probs.append(_scores(call.model, _blend(call.images[i], reference[i], m), "softmax"))
            masks.append(m)
        probs, masks = torch.cat(probs).float()[which], torch.cat(masks)
        similarity = torch.exp(-(original[i, t].float() - probs[:, t]) ** 2 / (2 * kernel_width ** 2))
        spread = torch.cdist(probs[None], probs[None])[0].sum(1)
        uniqueness = (spread - spread.min()) / (spread.max() - spread.min() + 1e-13)
        weights = torch.zeros(len(masks), device=masks.device).index_add_(0, which, similarity * uniqueness)
        saliency.append(torch.einsum("k,khw->hw", weights, masks) / len(which))
    return AdapterResult(raw=torch.stack(saliency), extras={"layer": call.layer_name(module[0])})


# --------------------------------------------------------------------------- Anchors


def _kl(p, q):
    p, q = np.clip(p, 1e-7, 1 - 1e-16), np.clip(q, 1e-7, 1 - 1e-16)
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


def _kl_bounds(p: np.ndarray, level: np.ndarray):
    """KL confidence bounds of Bernoulli means ``p``: the extremes of :math:`\\{q : KL(p, q) \\le \\beta / n\\}`
    (``level`` = :math:`\\beta / n`), by 16 bisection steps as in the authors' code."""
    lo_l, hi_l = np.maximum(p - np.sqrt(level / 2), 0), p.copy()
    lo_u, hi_u = p.copy(), np.minimum(p + np.sqrt(level / 2), 1)
    for _ in range(16):
        m = (lo_l + hi_l) / 2
        out = _kl(p, m) > level
        lo_l, hi_l = np.where(out, m, lo_l), np.where(out, hi_l, m)
        m = (lo_u + hi_u) / 2
        out = _kl(p, m) > level
        lo_u, hi_u = np.where(out, lo_u, m), np.where(out, m, hi_u)
    return lo_l, hi_u


class _AnchorPool:
    """Samples of :math:`D(z \\mid A)`: superpixels of the anchor A kept, each other kept with
    probability 1/2, hidden ones replaced by the reference; label :math:`\\mathbb 1[\\arg\\max f = c]`.
    A sample drawn for B counts for every A ⊇ B whose superpixels it keeps (it is then a sample of
    :math:`D(z \\mid A)`), as in the authors' implementation."""

    def __init__(self, model, image, reference, segments, target, budget):
        self.model, self.image, self.reference, self.target, self.budget = model, image, reference, target, budget
        self.segments = torch.as_tensor(segments, device=image.device)
        self.k = int(segments.max()) + 1
        self.z = np.zeros((0, self.k), bool)
        self.forced = np.zeros((0, self.k), bool)
        self.y = np.zeros(0, bool)

    @property
    def spent(self) -> bool:
        return len(self.y) >= self.budget

    def draw(self, anchor: tuple, n: int) -> None:
        z = torch.rand(n, self.k, device=self.image.device) < 0.5
        z[:, list(anchor)] = True
        keep = z[:, self.segments].float()
        label = _scores(self.model, _blend(self.image, self.reference, keep)).argmax(1) == self.target
        forced = np.zeros((n, self.k), bool)
        forced[:, list(anchor)] = True
        self.z, self.forced = np.concatenate([self.z, z.cpu().numpy()]), np.concatenate([self.forced, forced])
        self.y = np.concatenate([self.y, label.cpu().numpy()])

    def stats(self, anchors: list) -> tuple[np.ndarray, np.ndarray]:
        """(positives, samples) of each anchor."""
        pos, n = np.zeros(len(anchors)), np.zeros(len(anchors))
        for j, a in enumerate(anchors):
            outside = np.ones(self.k, bool)
            outside[list(a)] = False
            rows = self.z[:, list(a)].all(1) & ~self.forced[:, outside].any(1)
            pos[j], n[j] = self.y[rows].sum(), rows.sum()
        return pos, n


def _beta(n_arms: int, t: int, delta: float) -> float:
    temp = math.log(405.5 * n_arms * t ** 1.1 / delta)
    return temp + math.log(temp)


def _lucb(pool: _AnchorPool, anchors: list, top_n: int, epsilon: float, delta: float, batch: int) -> list:
    """KL-LUCB (Kaufmann & Kalyanakrishnan 2013): the ``top_n`` anchors of highest precision, sampling
    the two most ambiguous arms until their confidence intervals are ``epsilon`` apart."""
    for j in np.flatnonzero(pool.stats(anchors)[1] == 0):
        pool.draw(anchors[j], 1)
    t = 1
    while True:
        pos, n = pool.stats(anchors)
        means = pos / n
        order = np.argsort(means, kind="stable")
        if len(anchors) <= top_n:
            return list(order[::-1])
        best, rest = order[-top_n:], order[:-top_n]
        lb, ub = _kl_bounds(means, np.full(len(means), _beta(len(anchors), t, delta)) / n)
        u, l = rest[np.argmax(ub[rest])], best[np.argmin(lb[best])]
        if ub[u] - lb[l] <= epsilon or pool.spent:
            return list(best[::-1])
        pool.draw(anchors[u], batch)
        pool.draw(anchors[l], batch)
        t += 1


def _anchor(pool: _AnchorPool, threshold, delta, epsilon, beam_size, batch, max_size):
    """Beam search for the anchor of largest coverage with precision >= ``threshold`` (Ribeiro et al.
    2018, Alg. 2). Returns (anchor in order of inclusion, precision, found)."""
    eps_stop = 0.05  # the authors' default
    stop = math.log(1 / (delta / (1 + (beam_size - 1) * pool.k)))

    def confirm(a):  # sample until the precision is confidently above or below the threshold
        while True:
            pos, n = pool.stats([a])
            mean = pos[0] / n[0]
            lb, ub = _kl_bounds(np.array([mean]), np.array([stop / n[0]]))
            undecided = (mean >= threshold and lb[0] < threshold - eps_stop) or \
                        (mean < threshold and ub[0] >= threshold + eps_stop)
            if not undecided or pool.spent:
                return mean, mean >= threshold and lb[0] > threshold - eps_stop
            pool.draw(a, batch)

    # the empty anchor (coverage 1) first: does the prediction hold whatever is hidden?
    pool.draw((), batch)
    precision, ok = confirm(())
    if ok:
        return (), precision, True
    beam, order, tried = [()], {(): ()}, []   # order: anchor (sorted) -> its superpixels in order of inclusion
    for _ in range(max_size):
        for a in beam:
            for f in range(pool.k):
                if f not in a:
                    order.setdefault(tuple(sorted(a + (f,))), order[a] + (f,))
        candidates = sorted(c for c in order if len(c) == len(beam[0]) + 1)
        if not candidates or pool.spent:
            break
        beam = [candidates[j] for j in _lucb(pool, candidates, min(beam_size, len(candidates)), epsilon, delta, batch)]
        # coverage, 2^-|A| under D, is the same for all anchors of one size and larger than for any
        # longer one: the first size with a valid anchor holds the answer
        results = [(confirm(a), a) for a in beam]
        valid = [(mean, a) for (mean, good), a in results if good]
        tried += [(mean, a) for (mean, _), a in results]
        if valid:
            mean, a = max(valid)
            return order[a], mean, True
    if not tried:
        return (), precision, False
    mean, a = max(tried)
    return order[a], mean, False


@register("anchors", title="Anchors", family=_PERT, library="none (hand-written)",
          needs_gradients=False, cost="slow",
          paper="Ribeiro et al. 2018, Anchors: High-Precision Model-Agnostic Explanations (AAAI)",
          presets={"quick": {"max_samples": 512, "batch_size": 16}})
def _anchors(call, threshold: float = 0.95, n_segments: int = 50, baseline="mean", blur_sigma: float | None = None,
             delta: float = 0.1, epsilon: float = 0.15, beam_size: int = 1, max_anchor_size: int = 10,
             batch_size: int = 32, max_samples: int = 2048):
    r"""Anchors: the smallest set of superpixels :math:`A` that *anchors* the prediction,
    :math:`\mathrm{prec}(A) = \mathbb E_{z \sim D(\cdot \mid A)}[\mathbb 1[\arg\max f(h(x, z)) = c]] \ge \tau`
    (``threshold``), with the largest coverage :math:`\mathrm{cov}(A) = P_D(A \subseteq z) = 2^{-|A|}`;
    under :math:`D(\cdot \mid A)` the anchor's superpixels stay and each other one is hidden (``baseline``)
    with probability 1/2. Beam search (``beam_size``) adds one superpixel at a time; each round picks
    the best candidates by KL-LUCB (``epsilon``, ``delta``) and accepts an anchor once the KL lower
    confidence bound of its precision exceeds :math:`\tau - 0.05` (the authors' procedure). At most
    ``max_samples`` model calls per image (``batch_size`` per draw); when they run out, or no anchor of
    up to ``max_anchor_size`` superpixels qualifies, the most precise candidate is returned
    (``extras["found"]`` False).

    ``maps`` are 1 on the anchor's superpixels, 0 elsewhere (all 0 for the empty anchor: the
    prediction holds whatever is hidden). ``raw`` ranks them by order of inclusion (first 1, last
    1/|A|). ``extras``: ``segments``, ``anchor`` (superpixel ids in order), ``precision``,
    ``coverage``, ``found``, ``n_samples``.

    Ribeiro et al. 2018, https://ojs.aaai.org/index.php/AAAI/article/view/11491. A short
    re-implementation of the authors' ``anchor_base.AnchorBaseBeam.anchor_beam``: their ``anchor-exp``
    (last release 2020) pulls in spaCy and preallocates ``batch_size`` x 10000 sample rows; alibi's
    ``AnchorImage`` would downgrade numpy to 1.x. Deviation: the empty anchor is accepted by the same
    test as any other (the authors' code stops sampling it at :math:`\tau - \epsilon` but then asks
    for a lower bound above :math:`\tau`).
    """
    threshold, delta, epsilon = _fraction("threshold", threshold, True), _fraction("delta", delta), \
        _fraction("epsilon", epsilon)
    beam_size, batch_size = _int("beam_size", beam_size), _int("batch_size", batch_size)
    max_anchor_size, max_samples = _int("max_anchor_size", max_anchor_size), _int("max_samples", max_samples)
    targets = call.require_targets()
    segments = superpixels(call.images, n_segments)
    reference = _reference(call.images, baseline, blur_sigma)
    raw, maps, extras = [], [], {"segments": segments, "anchor": [], "precision": [], "coverage": [], "found": [],
                                 "n_samples": []}
    for image, ref, seg, t in zip(call.images, reference, segments, targets.tolist()):
        pool = _AnchorPool(call.model, image, ref, seg, t, max_samples)
        anchor, precision, found = _anchor(pool, threshold, delta, epsilon, beam_size, batch_size, max_anchor_size)
        rank = np.zeros(pool.k, np.float32)
        rank[list(anchor)] = (len(anchor) - np.arange(len(anchor))) / max(len(anchor), 1)
        raw.append(rank[seg])
        maps.append((rank > 0).astype(np.float32)[seg])
        for key, value in (("anchor", list(anchor)), ("precision", float(precision)),
                           ("coverage", 2.0 ** -len(anchor)), ("found", bool(found)), ("n_samples", len(pool.y))):
            extras[key].append(value)
    return AdapterResult(raw=np.stack(raw), maps=np.stack(maps), extras=extras)


# --------------------------------------------------------------------------- extremal perturbation


class _Blended(nn.Module):
    """:math:`z \\mapsto f(z + b)`: torchray's "fade" perturbation of :math:`x - b`, :math:`m \\odot (x - b)`,
    then becomes the blend :math:`m \\odot x + (1 - m) \\odot b` with any reference image ``b``."""

    def __init__(self, model: nn.Module, reference: torch.Tensor):
        super().__init__()
        self.model = model
        self.reference = reference

    def forward(self, z):
        return self.model(z + self.reference)


@register("extremal_perturbation", title="Extremal perturbation", family=_PERT, library="torchray",
          needs_gradients=True, cost="slow",
          paper="Fong, Patrick & Vedaldi 2019, Understanding Deep Networks via Extremal Perturbations and Smooth "
                "Masks (ICCV); Fong & Vedaldi 2017, Interpretable Explanations of Black Boxes by Meaningful "
                "Perturbation (ICCV)", presets={"quick": {"iterations": 60}})
def _extremal_perturbation(call, area: float = 0.1, iterations: int = 250, baseline="blur",
                           blur_sigma: float | None = None, step: int | None = None, sigma: float | None = None):
    r"""Extremal perturbation: the smooth mask :math:`m` of area ``area`` that best preserves the class
    logit, :math:`m^* = \arg\max_m f_c(m \odot x + (1 - m) \odot b) - \lambda \|\mathrm{vecsort}(m) - r_a\|^2`,
    with :math:`r_a` the sorted template of a mask of area :math:`a` (Fong et al. 2019's area loss,
    :math:`\lambda` = 300 growing by 0.35 % per iteration) and :math:`m` a smooth max-pooling of
    Gaussian bumps on a grid every ``step`` pixels (width ``sigma``; default 7 and 21 px at 224 px,
    scaled to the image, ``step`` at least 2: a one-pixel grid lets the mask break up).
    ``iterations`` SGD steps (torchray's default is 800). The blend with a
    blurred image ``b`` (``baseline="blur"``, ``blur_sigma`` default 10 px at 224 px, scaled to the
    image: their :math:`\sigma_0`) is Fong & Vedaldi 2017's perturbation; torchray's
    horizontal-flip jitter is off (left and right are not interchangeable in medical images).
    ``maps`` are the mask itself.

    Fong et al. 2019, https://arxiv.org/abs/1910.08485 (torchray ``extremal_perturbation``).
    """
    from torchray.attribution.extremal_perturbation import extremal_perturbation

    area, iterations = _fraction("area", area), _int("iterations", iterations)
    size = max(call.size)
    step = max(2, round(7 * size / 224)) if step is None else _int("step", step)
    sigma = 21 * size / 224 if sigma is None else sigma
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    targets = call.require_targets()
    reference = _reference(call.images, baseline, 10 * size / 224 if blur_sigma is None else blur_sigma)
    masks = []
    for i, t in enumerate(targets.tolist()):
        shifted = _Blended(call.model, reference[i:i + 1])
        with torch.enable_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*meshgrid", category=UserWarning)
            mask, _ = extremal_perturbation(shifted, (call.images[i:i + 1] - reference[i:i + 1]).detach(), t,
                                            areas=[area], perturbation="fade", num_levels=2, max_iter=iterations,
                                            step=step, sigma=float(sigma), jitter=False)
        masks.append(mask.detach()[0, 0])
    masks = torch.stack(masks)
    return AdapterResult(raw=masks, maps=masks.clamp(0, 1))
