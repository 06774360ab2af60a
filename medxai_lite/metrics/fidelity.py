"""Fidelity metrics: does changing what the map calls relevant change the model's output?

Hand-written (no maintained library computes them batched for arbitrary maps): Deletion and
Insertion (Petsiuk et al. 2018) and AOPC (Samek et al. 2017), all three on one perturbation
engine, :func:`perturbation_curves`, that scores every step of every image in large batches
(chunks of ``batch_size`` perturbed images per forward pass). Wrapped from pytorch-grad-cam:
ROAD (Rong et al. 2022) and the multiply-by-the-map confidence change.

Every metric: ``metric(model, images, targets, maps, masks=None, **options) -> np.ndarray [N]``
with ``model`` in eval mode, ``images`` float [N, C, H, W] (normalised), ``targets`` int [N] or
``None`` (predicted class), ``maps`` [N, H, W]; ``masks`` is ignored.

Scores are the softmax probability of the target class by default (``score="probability"``);
``score="logit"`` uses the raw class score.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
import numpy as np
import torch
import torch.nn.functional as F

from .._utils import check_choice, check_fraction
from ..baselines import make_baseline as _make_baseline
from . import (
    check_images, check_maps, check_model, check_positive_int, check_targets, constant_maps, model_device,
    register_metric,
)

__all__ = [
    "BASELINES", "SCORES", "PerturbationCurves", "make_baseline", "perturbation_curves", "trapezoid",
    "deletion", "insertion", "aopc", "aopc_curve", "road_morf", "road_lerf", "road_combined", "RoadCurves",
    "road_curves", "confidence_change", "confidence_increase",
]

#: What removed pixels are replaced with (deletion) or revealed from (insertion).
BASELINES = ("blur", "zero", "mean")
#: Which model output is tracked.
SCORES = ("probability", "logit")
#: ROAD percentiles used when none are given (those of pytorch-grad-cam's ROAD tutorial).
ROAD_PERCENTILES = (20, 40, 60, 80)


# --------------------------------------------------------------------------- perturbation engine


def trapezoid(y, x=None, axis: int = -1) -> np.ndarray:
    """The trapezoidal rule, ``numpy.trapezoid`` (NumPy >= 2) or ``numpy.trapz`` (NumPy 1.x):
    the same sum under either name."""
    rule = getattr(np, "trapezoid", None) or getattr(np, "trapz")
    return rule(y, x, axis=axis)


def make_baseline(images: torch.Tensor, baseline: str = "zero", blur_sigma: float | None = None) -> torch.Tensor:
    """The image every pixel is moved towards: :func:`medxai_lite.baselines.make_baseline`
    restricted to :data:`BASELINES` (``"blur"``: Petsiuk et al.'s sigma 5 at 224 px, scaled)."""
    return _make_baseline(images, baseline, blur_sigma, choices=BASELINES)


def _ranks(maps: np.ndarray, patch_size: int) -> tuple[torch.Tensor, int]:
    """Rank of every pixel, 0 = most relevant (ties: raster order), and the number of units.

    With ``patch_size > 1`` the map is averaged over non-overlapping patches, patches are
    ranked, and each pixel carries its patch's rank.
    """
    n, h, w = maps.shape
    values = torch.from_numpy(np.ascontiguousarray(maps))
    if patch_size > 1:
        values = F.avg_pool2d(values[:, None], patch_size, ceil_mode=True)[:, 0]
    flat = values.reshape(n, -1)
    units = flat.shape[1]
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(units).expand(n, units).contiguous())
    ranks = ranks.reshape(n, *values.shape[1:])
    if patch_size > 1:
        ranks = ranks.repeat_interleave(patch_size, 1).repeat_interleave(patch_size, 2)[:, :h, :w]
    return ranks, units


def step_counts(units: int, steps: int, max_fraction: float) -> np.ndarray:
    """How many units (pixels or patches) are perturbed at each of the ``steps + 1`` steps."""
    return np.rint(np.arange(steps + 1) * (max_fraction * units / steps)).astype(np.int64)


def _class_scores(outputs: torch.Tensor, targets: torch.Tensor, score: str) -> torch.Tensor:
    if score == "probability":
        outputs = torch.softmax(outputs, dim=1)
    return outputs.gather(1, targets[:, None])[:, 0]


@dataclass
class PerturbationCurves:
    """Deletion / insertion curves of N images.

    Attributes
    ----------
    fractions : float64 [S + 1]
        Fraction of pixels (or patches) perturbed at each step, from 0 to ``max_fraction``.
    curves : float64 [N, S + 1]
        Target score at each step (NaN rows for constant maps).
    auc : float64 [N]
        Trapezoidal area under each curve over ``fractions``.
    targets : int64 [N]
    mode, baseline, score : str
    """

    fractions: np.ndarray
    curves: np.ndarray
    auc: np.ndarray
    targets: np.ndarray
    mode: str
    baseline: str
    score: str


def perturbation_curves(model, images, targets, maps, masks=None, *, mode: str = "deletion",
                        baseline: str | None = None, steps: int = 32, max_fraction: float = 1.0,
                        patch_size: int = 1, score: str = "probability", batch_size: int = 64,
                        blur_sigma: float | None = None, on_constant: str = "nan") -> PerturbationCurves:
    """Deletion or insertion curves (Petsiuk et al. 2018), batched over images and steps.

    Pixels are ranked by relevance (most relevant first; ties in raster order). At step
    ``k = 0..S`` the ``n_k = round(k * max_fraction * HW / S)`` most relevant pixels are

    * ``mode="deletion"``: replaced by the baseline, starting from the image;
    * ``mode="insertion"``: copied from the image into the baseline, starting from the baseline;

    and the target score ``f`` is recorded. The perturbed images of all images and steps go
    through the model in chunks of ``batch_size`` (one forward pass per chunk, no per-image
    loop); the unperturbed image, and with the zero baseline the all-zero image, are scored
    once rather than once per curve.

    Parameters
    ----------
    model : nn.Module in eval mode
    images : Tensor float [N, C, H, W]; targets : int [N] or None (predicted class)
    maps : array [N, H, W]; masks : ignored
    mode : {"deletion", "insertion"}
    baseline : {"zero", "blur", "mean"}
        Default: ``"zero"`` for deletion, ``"blur"`` for insertion (Petsiuk et al.'s choices).
        See :func:`make_baseline`.
    steps : int >= 1
        S; the curves have S + 1 points.
    max_fraction : float in (0, 1]
        Perturb at most this fraction of the pixels (1 = the full curve).
    patch_size : int >= 1
        Rank and perturb square patches of this size instead of pixels (Samek et al. used 9).
    score : {"probability", "logit"}
    batch_size : int
        Perturbed images per forward pass.
    on_constant : {"nan", "raise"}
        A constant map gives no ordering: its row is NaN (with a warning) or an error.

    Returns
    -------
    PerturbationCurves (``fractions`` [S+1], ``curves`` [N, S+1], ``auc`` [N], ...)

    Example
    -------
    >>> res = perturbation_curves(model, images, None, maps, mode="deletion", steps=16)
    >>> res.curves.shape, res.auc.shape
    ((8, 17), (8,))
    """
    check_choice("mode", mode, ("deletion", "insertion"))
    check_choice("score", score, SCORES)
    baseline = ("zero" if mode == "deletion" else "blur") if baseline is None else baseline
    check_choice("baseline", baseline, BASELINES)
    steps = check_positive_int("steps", steps)
    patch_size = check_positive_int("patch_size", patch_size)
    batch_size = check_positive_int("batch_size", batch_size)
    max_fraction = check_fraction("max_fraction", max_fraction, closed=True)
    check_model(model)
    maps = check_maps(maps, images)
    images = check_images(images)
    const = constant_maps(maps, mode, on_constant)
    dev = model_device(model)
    n = len(maps)
    with torch.inference_mode():
        # the unperturbed images' outputs: the targets when none are given, and one end of every curve
        logits = torch.cat([model(images[s:s + batch_size].to(dev)) for s in range(0, n, batch_size)])
    targets = logits.argmax(1) if targets is None else check_targets(targets, model, images, batch_size,
                                                                    num_classes=logits.shape[-1])
    ranks, units = _ranks(maps, patch_size)
    counts = step_counts(units, steps, max_fraction)
    # steps that need no perturbed forward pass: the image itself, and (zero baseline) the all-zero image
    image_steps = counts == (0 if mode == "deletion" else units)
    baseline_steps = (counts == (units if mode == "deletion" else 0)) & (baseline == "zero")
    todo = torch.from_numpy(np.flatnonzero(~image_steps & ~baseline_steps)).to(dev)
    curves = np.full((n, steps + 1), np.nan)
    keep = np.flatnonzero(~const)
    if len(keep):
        sel = torch.from_numpy(keep)
        t = targets[sel.to(targets.device)].to(dev)
        rows = np.full((len(keep), steps + 1), np.nan)
        with torch.inference_mode():
            rows[:, image_steps] = _class_scores(logits[sel.to(dev)], t, score).double().cpu().numpy()[:, None]
            if baseline_steps.any():
                zero = model(torch.zeros_like(images[:1]).to(dev)).expand(len(keep), -1)
                rows[:, baseline_steps] = _class_scores(zero, t, score).double().cpu().numpy()[:, None]
            x0 = images[sel].to(dev)
            base = make_baseline(x0, baseline, blur_sigma)
            r = ranks[sel].to(dev)
            n_k = torch.from_numpy(counts).to(dev)
            per_image = len(todo)
            flat = torch.empty(len(keep) * per_image, dtype=torch.float64)
            for start in range(0, len(flat), batch_size):
                idx = torch.arange(start, min(start + batch_size, len(flat)), device=dev)
                i, k = idx // per_image, todo[idx % per_image]
                perturbed = (r[i] < n_k[k][:, None, None]).unsqueeze(1)   # [B, 1, H, W]
                if mode == "deletion":
                    batch = torch.where(perturbed, base[i], x0[i])
                else:
                    batch = torch.where(perturbed, x0[i], base[i])
                flat[start:start + len(idx)] = _class_scores(model(batch), t[i], score).double().cpu()
        rows[:, todo.cpu().numpy()] = flat.reshape(len(keep), per_image).numpy()
        curves[keep] = rows
    fractions = counts / units
    auc = trapezoid(curves, fractions, axis=1)
    return PerturbationCurves(fractions=fractions, curves=curves, auc=auc, targets=targets.cpu().numpy(),
                              mode=mode, baseline=baseline, score=score)


@register_metric("deletion", category="fidelity", higher_is_better=False,
                 reference="Petsiuk, Das & Saenko 2018, RISE, BMVC")
def deletion(model, images, targets, maps, masks=None, *, baseline: str = "zero", steps: int = 32,
             score: str = "probability", batch_size: int = 64, **options) -> np.ndarray:
    """Deletion AUC (Petsiuk et al. 2018): remove the most relevant pixels first; lower is better.

    .. math:: \\mathrm{AUC}_{del} = \\int_0^1 f\\big(x^{(t)}\\big)\\, dt \\approx
              \\sum_{k=1}^{S} \\frac{f_{k-1} + f_k}{2}\\,(t_k - t_{k-1})

    where ``x^(t)`` is the image with its ``t`` most relevant fraction replaced by the baseline
    (default ``"zero"``, as the paper's black image). A faithful map makes the score fall fast.
    Options and shapes: :func:`perturbation_curves` (which also returns the curves).

    Returns ``np.ndarray`` float64 [N]; NaN for constant maps (with a warning).

    Example
    -------
    >>> deletion(model, images, targets, maps, steps=16)          # [N]
    """
    return perturbation_curves(model, images, targets, maps, mode="deletion", baseline=baseline, steps=steps,
                               score=score, batch_size=batch_size, **options).auc


@register_metric("insertion", category="fidelity", higher_is_better=True,
                 reference="Petsiuk, Das & Saenko 2018, RISE, BMVC")
def insertion(model, images, targets, maps, masks=None, *, baseline: str = "blur", steps: int = 32,
              score: str = "probability", batch_size: int = 64, **options) -> np.ndarray:
    """Insertion AUC (Petsiuk et al. 2018): reveal the most relevant pixels first; higher is better.

    .. math:: \\mathrm{AUC}_{ins} = \\int_0^1 f\\big(\\tilde x^{(t)}\\big)\\, dt

    where ``x~^(t)`` is the baseline (default ``"blur"``, as in the paper) with the ``t`` most
    relevant fraction of pixels copied from the image. A faithful map makes the score rise fast.
    Options and shapes: :func:`perturbation_curves`.

    Returns ``np.ndarray`` float64 [N]; NaN for constant maps (with a warning).

    Example
    -------
    >>> insertion(model, images, targets, maps, steps=16, baseline="blur")   # [N]
    """
    return perturbation_curves(model, images, targets, maps, mode="insertion", baseline=baseline, steps=steps,
                               score=score, batch_size=batch_size, **options).auc


@register_metric("aopc", category="fidelity", higher_is_better=True,
                 reference="Samek et al. 2017, IEEE TNNLS 28(11):2660-2673")
def aopc(model, images, targets, maps, masks=None, *, steps: int = 32, baseline: str = "zero",
         score: str = "probability", batch_size: int = 64, **options) -> np.ndarray:
    """Area Over the MoRF Perturbation Curve (Samek et al. 2017); higher is better.

    .. math:: \\mathrm{AOPC} = \\frac{1}{L + 1} \\sum_{k=0}^{L} \\big( f(x^{(0)}) - f(x^{(k)}) \\big)

    with ``x^(k)`` the image after ``k`` most-relevant-first perturbation steps (the deletion
    curve of :func:`perturbation_curves`, ``L = steps``). Samek et al. replaced 9x9 regions with
    uniform noise over part of the image: ``patch_size=9`` and ``max_fraction<1`` reproduce the
    region scheme; the replacement here is a deterministic baseline (``"zero"``, ``"mean"`` or
    ``"blur"``). The per-image value is returned; the paper's AOPC is its mean over images.

    Returns ``np.ndarray`` float64 [N]; NaN for constant maps (with a warning).

    Example
    -------
    >>> aopc(model, images, targets, maps, steps=16).mean()
    """
    res = perturbation_curves(model, images, targets, maps, mode="deletion", baseline=baseline, steps=steps,
                              score=score, batch_size=batch_size, **options)
    return aopc_curve(res)[:, -1]


def aopc_curve(curves) -> np.ndarray:
    """AOPC as a curve: the AOPC after each number of perturbation steps ``L = 0 .. S``.

    .. math:: \\mathrm{AOPC}(L) = \\frac{1}{L + 1} \\sum_{k=0}^{L} \\big( f(x^{(0)}) - f(x^{(k)}) \\big)

    (Samek et al. 2017 plot AOPC against ``L``; :func:`aopc` is the last point, ``L = S``.)

    Parameters
    ----------
    curves : PerturbationCurves (deletion) or array [N, S + 1]
        Deletion curves, most relevant first: the target score after ``k`` steps.

    Returns
    -------
    np.ndarray float64 [N, S + 1]; column 0 is 0, NaN rows stay NaN.

    Example
    -------
    >>> res = perturbation_curves(model, images, targets, maps, mode="deletion", steps=16)
    >>> aopc_curve(res).shape                   # (N, 17); aopc_curve(res)[:, -1] == aopc(...)
    """
    if isinstance(curves, PerturbationCurves):
        if curves.mode != "deletion":
            raise ValueError(f"AOPC reads deletion curves (most relevant first); got {curves.mode!r} curves")
        curves = curves.curves
    values = np.asarray(curves, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 1:
        raise ValueError(f"curves must have shape [N, S + 1]; got {list(values.shape)}")
    drop = values[:, :1] - values
    return np.cumsum(drop, axis=1) / np.arange(1, values.shape[1] + 1)


# --------------------------------------------------------------------------- pytorch-grad-cam wrappers


def _grad_cam_targets(targets: torch.Tensor, score: str) -> list:
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget

    cls = ClassifierOutputSoftmaxTarget if score == "probability" else ClassifierOutputTarget
    return [cls(int(t)) for t in targets.cpu()]


def _run_grad_cam_metric(metric, model, images, targets, maps, score, batch_size, seed, skip):
    """Call a pytorch-grad-cam metric object on chunks of the batch; rows in ``skip`` are NaN.

    The metric sees the model through :class:`_OriginalOnce` (a fresh one per chunk), which
    scores each chunk's unperturbed images once however often the metric asks.

    ``seed`` seeds the CPU random generator inside a fork (ROAD's imputer adds noise), so the
    global random state is untouched; ``None`` uses the global generator.
    """
    check_choice("score", score, SCORES)
    batch_size = check_positive_int("batch_size", batch_size)
    dev = model_device(model)
    out = np.full(len(maps), np.nan)
    keep = np.flatnonzero(~skip)
    cams = maps.astype(np.float32)
    with torch.random.fork_rng(), warnings.catch_warnings():
        # pytorch-grad-cam 1.5 calls np.float32() on a tensor (ROAD thresholds), which NumPy 2 flags as
        # deprecated once per image; it is the library's, harmless, and would flood every notebook
        warnings.filterwarnings("ignore", message="__array_wrap__ must accept context", category=DeprecationWarning)
        if seed is not None:
            torch.manual_seed(seed)
        for start in range(0, len(keep), batch_size):
            rows = keep[start:start + batch_size]
            sel = torch.from_numpy(rows)
            values = metric(images[sel].to(dev), cams[rows], _grad_cam_targets(targets[sel.to(targets.device)], score),
                            _OriginalOnce(model))
            out[rows] = np.asarray(values, dtype=np.float64).reshape(-1)
    return out


def _percentile_list(percentiles) -> list:
    values = [percentiles] if np.isscalar(percentiles) else list(percentiles)
    if not values or any(isinstance(p, bool) or not np.isscalar(p) or not 0 < p < 100 for p in values):
        raise ValueError(f"percentiles must be numbers in (0, 100) (or one number); got {percentiles!r}")
    return values


def _sparse_imputer():
    """A fresh imputer of the class :func:`_sparse_imputer_class` builds once."""
    return _sparse_imputer_class()()


@functools.cache
def _sparse_imputer_class():
    """pytorch-grad-cam's ``NoisyLinearImputer`` with its equation system assembled in COO form.

    The library fills each removed pixel :math:`i` with the weighted mean of its eight
    neighbours, solving for all removed pixels at once (Rong et al. 2022, Eq. 3):

    .. math:: \\Big(\\sum_{j \\in N(i)} w_{ij}\\Big)\\, x_i - \\sum_{j \\in N(i),\\, j\\ \\mathrm{removed}} w_{ij}\\, x_j
              = \\sum_{j \\in N(i),\\, j\\ \\mathrm{kept}} w_{ij}\\, v_j

    (:math:`w = 1/6` for the four edge neighbours and :math:`1/12` for the four corners; outside
    the image they drop out), then adds N(0, ``noise``) to the solution. The library builds the
    matrix entry by entry in a ``lil_matrix``, which took more than half of each imputation's time
    at 80 px. Here the same entries go into a ``coo_matrix`` in one call: no (row, column) pair
    repeats, so the CSC matrix, the ``spsolve`` solution and the noise drawn after it are the
    library's own (``tests/test_metrics.py`` compares them bit for bit).
    """
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer, neighbors_weights
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    class SparseNoisyLinearImputer(NoisyLinearImputer):
        @staticmethod
        def setup_sparse_system(mask, img, weights):
            maskflt = mask.flatten()
            imgflat = img.reshape((img.shape[0], -1))
            indices = np.argwhere(maskflt == 0).flatten()
            vidx = np.zeros(len(maskflt), dtype=int)
            vidx[indices] = np.arange(len(indices))
            n = len(indices)
            b = np.zeros((n, img.shape[0]))
            diag = np.ones(n)
            rows, cols, vals = [np.arange(n)], [np.arange(n)], []
            for offset, weight in weights:
                valid, coords = NoisyLinearImputer.add_offset_to_indices(indices, offset, mask.shape)
                valid_coords, valid_ids = coords[valid], np.flatnonzero(valid)
                known = maskflt[valid_coords] > 0.5
                b[valid_ids[known], :] -= weight * imgflat[:, valid_coords[known]].T
                unknown = maskflt[valid_coords] < 0.5
                rows.append(valid_ids[unknown])
                cols.append(vidx[valid_coords[unknown]])
                vals.append(np.full(unknown.sum(), weight))
                diag[~valid] -= weight
            vals.insert(0, -diag)
            A = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
            return A.tocsc(), b

        def __call__(self, img, mask):
            imgflt = img.reshape(img.shape[0], -1)
            missing = np.argwhere(mask.reshape(-1) == 0).flatten()
            A, b = self.setup_sparse_system(mask.numpy(), img.numpy(), neighbors_weights)
            res = torch.tensor(spsolve(A, b), dtype=torch.float)
            filled = imgflt.clone()
            filled[:, missing] = res.t() + self.noise * torch.randn_like(res.t())
            return filled.reshape_as(img)

    return SparseNoisyLinearImputer


class _OriginalOnce:
    """The model, with its output on one batch (the unperturbed images) computed once.

    pytorch-grad-cam's ROAD classes score the unperturbed batch again for every percentile and
    for MoRF and LeRF: eight identical forward passes of the same tensor at four percentiles.
    This wrapper returns the first result for that tensor object; every other input runs the model.
    """

    def __init__(self, model):
        self.model, self._key, self._out = model, None, None

    def __call__(self, x):
        if x is self._key:
            return self._out
        out = self.model(x)
        if self._key is None:
            self._key, self._out = x, out
        return out


def _road_metric(kind, values, single):
    """A ROAD metric of pytorch-grad-cam (``kind`` "morf", "lerf" or "combined") built from the
    library's own parts, with the COO-assembled imputer (:func:`_sparse_imputer`)."""
    from pytorch_grad_cam.metrics import road
    from pytorch_grad_cam.metrics.perturbation_confidence import (
        AveragerAcrossThresholds, PerturbationConfidenceMetric, RemoveLeastRelevantFirst, RemoveMostRelevantFirst)

    def one(remove):
        return lambda p: PerturbationConfidenceMetric(remove(p, _sparse_imputer()))

    morf, lerf = one(RemoveMostRelevantFirst), one(RemoveLeastRelevantFirst)
    if kind == "combined":
        metric = road.ROADCombined(percentiles=values)   # LeRF then MoRF, as the library orders them
        metric.morf_averager = AveragerAcrossThresholds(morf, values)
        metric.lerf_averager = AveragerAcrossThresholds(lerf, values)
        return metric
    build = morf if kind == "morf" else lerf
    return build(values[0]) if single else AveragerAcrossThresholds(build, values)


def _road(kind, model, images, targets, maps, percentiles, score, batch_size, seed, on_constant):
    check_model(model)
    maps = check_maps(maps, images)
    images = check_images(images)
    values = _percentile_list(percentiles)
    targets = check_targets(targets, model, images, batch_size)
    const = constant_maps(maps, f"road_{kind}", on_constant)
    metric = _road_metric(kind, values, single=np.isscalar(percentiles))
    return _run_grad_cam_metric(metric, model, images, targets, maps, score, batch_size, seed, const)


@register_metric("road_morf", category="fidelity", higher_is_better=False,
                 reference="Rong et al. 2022, ICML (pytorch-grad-cam ROADMostRelevantFirst)")
def road_morf(model, images, targets, maps, masks=None, *, percentiles=ROAD_PERCENTILES, score: str = "probability",
              batch_size: int = 64, seed: int | None = 0, on_constant: str = "nan") -> np.ndarray:
    """ROAD most-relevant-first: mean change of the target score (lower is better).

    The ``100 - p`` % most relevant pixels are removed by noisy linear imputation; definition,
    parameters and return value as for :func:`road_combined`.

    Example
    -------
    >>> road_morf(model, images, targets, maps, percentiles=(20, 40, 60, 80))   # [N], mostly < 0
    """
    return _road("morf", model, images, targets, maps, percentiles, score, batch_size, seed, on_constant)


@register_metric("road_lerf", category="fidelity", higher_is_better=True,
                 reference="Rong et al. 2022, ICML (pytorch-grad-cam ROADLeastRelevantFirst)")
def road_lerf(model, images, targets, maps, masks=None, *, percentiles=ROAD_PERCENTILES, score: str = "probability",
              batch_size: int = 64, seed: int | None = 0, on_constant: str = "nan") -> np.ndarray:
    """ROAD least-relevant-first: mean change of the target score (higher is better).

    Only the ``p`` % most relevant pixels are kept; definition, parameters and return value as
    for :func:`road_combined`.

    Example
    -------
    >>> road_lerf(model, images, targets, maps)                                  # [N], near 0 is good
    """
    return _road("lerf", model, images, targets, maps, percentiles, score, batch_size, seed, on_constant)


@register_metric("road_combined", category="fidelity", higher_is_better=True,
                 reference="Rong et al. 2022, ICML (pytorch-grad-cam ROADCombined)")
def road_combined(model, images, targets, maps, masks=None, *, percentiles=ROAD_PERCENTILES,
                  score: str = "probability", batch_size: int = 64, seed: int | None = 0,
                  on_constant: str = "nan") -> np.ndarray:
    r"""ROAD combined, (LeRF - MoRF) / 2 (higher is better).

    ROAD, RemOve And Debias (Rong, Leemann, Borisov, Kasneci & Kasneci 2022, ICML), through
    pytorch-grad-cam's own classes. For each percentile ``p`` a binary mask keeps ``p`` % of the
    pixels and the rest are filled by noisy linear imputation (each removed pixel the weighted
    mean of its neighbours plus N(0, 0.01) noise), which avoids the out-of-distribution
    artefacts of plain deletion. Score per image:

    .. math:: \Delta_p = f(x_p) - f(x), \qquad \mathrm{ROAD} = \frac{1}{|P|} \sum_{p \in P} \Delta_p

    * MoRF (most relevant first): the kept pixels are the *least* relevant ``p`` %, i.e. the
      ``100 - p`` % most relevant are removed; a faithful map makes the score drop (lower is better).
    * LeRF (least relevant first): the kept pixels are the *most* relevant ``p`` %; a faithful
      map keeps the score (higher is better).
    * combined: ``(LeRF - MoRF) / 2`` over the same percentiles (higher is better).

    Parameters
    ----------
    model : nn.Module in eval mode; images : Tensor [N, C, H, W]; targets : int [N] or None
    maps : array [N, H, W] (cast to float32, as pytorch-grad-cam expects); masks : ignored
    percentiles : number or sequence in (0, 100)
        A sequence averages over percentiles (pytorch-grad-cam's ``...Average`` classes); one
        number uses the single-percentile class. Default ``(20, 40, 60, 80)``, the library's
        tutorial choice.
    score : {"probability", "logit"}
        ``ClassifierOutputSoftmaxTarget`` or ``ClassifierOutputTarget``.
    batch_size : int
        Images per call of the library metric.
    seed : int or None
        Seeds the imputation noise in a forked generator (global state untouched). With
        ``batch_size >= N`` the result equals the library called directly after
        ``torch.manual_seed(seed)``.
    on_constant : {"nan", "raise"}
        A constant map has no percentile ordering: NaN (with a warning) or an error.

    Returns
    -------
    np.ndarray float64 [N].
    
    Example
    -------
    >>> road_combined(model, images, targets, maps, percentiles=(20, 40, 60, 80)).mean()
    """
    return _road("combined", model, images, targets, maps, percentiles, score, batch_size, seed, on_constant)


@dataclass
class RoadCurves:
    """ROAD scores of N images at each percentile, most and least relevant first.

    Attributes
    ----------
    percentiles : float64 [P]
        Share (%) of the pixels kept at each point.
    morf, lerf : float64 [N, P]
        Change of the target score when the most (MoRF) or least (LeRF) relevant pixels are
        removed and imputed (NaN rows for constant maps).
    score : str
    """

    percentiles: np.ndarray
    morf: np.ndarray
    lerf: np.ndarray
    score: str

    @property
    def removed(self) -> np.ndarray:
        """Fraction of the pixels removed and imputed at each point, ``1 - p / 100`` [P]."""
        return 1 - self.percentiles / 100

    @property
    def combined(self) -> np.ndarray:
        """Combined ROAD per image and percentile, ``(LeRF - MoRF) / 2`` [N, P]."""
        return (self.lerf - self.morf) / 2


def road_curves(model, images, targets, maps, masks=None, *, percentiles=ROAD_PERCENTILES,
                score: str = "probability", batch_size: int = 64, seed: int | None = 0,
                on_constant: str = "nan") -> RoadCurves:
    """ROAD per percentile: :func:`road_morf` and :func:`road_lerf` at each single percentile.

    Where :func:`road_morf` with a sequence of percentiles returns their mean (pytorch-grad-cam's
    ``...Average`` classes), this keeps one score per percentile, to draw ROAD against the share
    of pixels removed. Each point is the single-percentile class with the imputation noise seeded
    by ``seed``, exactly ``road_morf(..., percentiles=p, seed=seed)``. Parameters as
    :func:`road_morf`; ``masks`` is ignored.

    Returns
    -------
    RoadCurves (``percentiles`` [P], ``morf`` and ``lerf`` [N, P], ``removed``, ``combined``).

    Example
    -------
    >>> res = road_curves(model, images, targets, maps, percentiles=(20, 50, 80))
    >>> res.removed, np.nanmean(res.morf, 0)          # x and y of the MoRF curve
    """
    values = _percentile_list(percentiles)
    options = dict(score=score, batch_size=batch_size, seed=seed, on_constant=on_constant)
    morf = np.stack([road_morf(model, images, targets, maps, percentiles=p, **options) for p in values], axis=1)
    lerf = np.stack([road_lerf(model, images, targets, maps, percentiles=p, **options) for p in values], axis=1)
    return RoadCurves(percentiles=np.asarray(values, dtype=np.float64), morf=morf, lerf=lerf, score=score)


def _check_unit_maps(maps: np.ndarray, metric: str) -> None:
    if maps.min() < 0 or maps.max() > 1:
        raise ValueError(f"maps must lie in [0, 1] for {metric} (the image is multiplied by the map); got values "
                         f"in [{maps.min():.3g}, {maps.max():.3g}] - use Explanation.maps or rescale")




@register_metric("confidence_change", category="fidelity", higher_is_better=True,
                 reference="pytorch-grad-cam CamMultImageConfidenceChange; reported by Chaddad et al. 2025")
def confidence_change(model, images, targets, maps, masks=None, *, score: str = "probability",
                      batch_size: int = 64) -> np.ndarray:
    r"""Confidence change when the image is multiplied by its map: the mean-change reading (higher is better).

    Both readings of "confidence increase" (Chaddad et al. 2025 report e.g. 0.12 for XGradCAM
    on glioma without saying which one they mean):

    * :func:`confidence_change` - the *mean change* of the target score,
      ``mean_i [f(x_i * m_i) - f(x_i)]`` (pytorch-grad-cam ``CamMultImageConfidenceChange``);
    * :func:`confidence_increase` - the *fraction of images* whose score rises,
      ``mean_i 1[f(x_i * m_i) > f(x_i)]`` (pytorch-grad-cam ``IncreaseInConfidence``).

    Both return the per-image values (change, or 1.0 / 0.0); the number to report is their
    mean over images. ``x * m`` multiplies the *normalised* input by the map, as the library
    does, so maps must lie in [0, 1]. A constant map is allowed (all ones leaves the image
    unchanged: change 0, no increase).

    Parameters
    ----------
    model : nn.Module in eval mode; images : Tensor [N, C, H, W]; targets : int [N] or None
    maps : array [N, H, W] in [0, 1]; masks : ignored
    score : {"probability", "logit"}
        ``ClassifierOutputSoftmaxTarget`` (default, as the library's tutorial) or
        ``ClassifierOutputTarget``.
    batch_size : int
        Images per call of the library metric.

    Returns
    -------
    np.ndarray float64 [N].
    
    Example
    -------
    >>> confidence_change(model, images, targets, maps).mean()     # e.g. 0.12
    """
    from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange

    return _cam_mult_metric(CamMultImageConfidenceChange(), "confidence_change", model, images, targets, maps,
                            score, batch_size)


@register_metric("confidence_increase", category="fidelity", higher_is_better=True,
                 reference="Chattopadhay et al. 2018 (Grad-CAM++), via pytorch-grad-cam IncreaseInConfidence; reported by Chaddad et al. 2025")
def confidence_increase(model, images, targets, maps, masks=None, *, score: str = "probability",
                        batch_size: int = 64) -> np.ndarray:
    """Confidence increase as 0/1 per image: the fraction-of-images reading (higher is better).

    The same image x map product as :func:`confidence_change` (see there for both readings and
    the parameters), scored 1 where the target score rises and 0 elsewhere.

    Example
    -------
    >>> confidence_increase(model, images, targets, maps).mean()   # fraction of images, e.g. 0.6
    """
    from pytorch_grad_cam.metrics.cam_mult_image import IncreaseInConfidence

    return _cam_mult_metric(IncreaseInConfidence(), "confidence_increase", model, images, targets, maps, score,
                            batch_size)


def _cam_mult_metric(metric, name, model, images, targets, maps, score, batch_size) -> np.ndarray:
    """The shared body of the two pytorch-grad-cam "image x map" confidence metrics."""
    check_model(model)
    maps = check_maps(maps, images)
    images = check_images(images)
    _check_unit_maps(maps, name)
    targets = check_targets(targets, model, images, batch_size)
    return _run_grad_cam_metric(metric, model, images, targets, maps, score, batch_size, None,
                                np.zeros(len(maps), bool))


