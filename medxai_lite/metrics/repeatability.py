"""Seed repeatability: does a stochastic explanation method give the same map when only its
random seed changes?

LIME and KernelSHAP draw random coalitions of superpixels, RISE draws random masks, Anchors
draws perturbed samples: two runs that differ only in the seed explain the same model, the same
image and the same class, so any difference between their maps is sampling noise, not
information about the model. The statistic is Spearman's rank correlation between the two
maps over the pixels (rank-based, so a map and any increasing function of it agree perfectly):

.. math:: \\rho(a, b) = \\mathrm{corr}\\big(\\mathrm{rank}(a), \\mathrm{rank}(b)\\big)

(ties get their average rank; ``scipy.stats.spearmanr``). 1 means the two seeds rank the
pixels identically; values near 0 mean the ranking is mostly noise. A deterministic method
(occlusion, SIDU, extremal perturbation) scores exactly 1.

Spearman's rho weighs every pixel alike, so it also measures how the many low-relevance pixels
are ordered. :func:`top_overlap` asks only about the top: the intersection over union of the
pixels each map puts in its most relevant ``top`` fraction.

Example
-------
>>> table = seed_rank_correlation("rise", model, images, seeds=(0, 1, 2), preset="quick")  # doctest: +SKIP
>>> table.groupby("method")["spearman"].mean()                                            # doctest: +SKIP
"""
from __future__ import annotations

import itertools
from typing import Mapping, Sequence

import numpy as np

__all__ = ["REPEATABILITY_COLUMNS", "rank_correlation", "top_overlap", "seed_rank_correlation"]

#: The columns of :func:`seed_rank_correlation`'s table.
REPEATABILITY_COLUMNS = ["method", "preset", "image", "seed_a", "seed_b", "spearman", "top_overlap"]


def _as_maps(maps, name: str) -> np.ndarray:
    if hasattr(maps, "maps") and not isinstance(maps, np.ndarray) and not hasattr(maps, "detach"):
        maps = maps.maps
    if hasattr(maps, "detach"):
        maps = maps.detach().cpu().numpy()
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3:
        raise ValueError(f"{name} must have shape [N, H, W]; got {list(maps.shape)}")
    if not np.isfinite(maps).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return maps


def rank_correlation(maps_a, maps_b) -> np.ndarray:
    """Per image, Spearman's rank correlation between two maps over their pixels.

    Parameters
    ----------
    maps_a, maps_b : array, tensor or Explanation, [N, H, W]
        Two maps of the same images (e.g. the same method under two seeds).

    Returns
    -------
    np.ndarray float64 [N] in [-1, 1]; NaN where either map is constant (no ranking).

    Example
    -------
    >>> m = np.random.default_rng(0).random((2, 8, 8))
    >>> rank_correlation(m, m ** 3), rank_correlation(m, -m)
    (array([1., 1.]), array([-1., -1.]))
    """
    from scipy.stats import spearmanr

    a, b = _as_maps(maps_a, "maps_a"), _as_maps(maps_b, "maps_b")
    if a.shape != b.shape:
        raise ValueError(f"maps_a and maps_b must have the same shape; got {list(a.shape)} and {list(b.shape)}")
    out = np.full(len(a), np.nan)
    for i, (x, y) in enumerate(zip(a.reshape(len(a), -1), b.reshape(len(b), -1))):
        if np.ptp(x) > 0 and np.ptp(y) > 0:   # spearmanr warns and returns NaN on a constant input
            out[i] = float(spearmanr(x, y)[0])
    return out


def top_overlap(maps_a, maps_b, top: float = 0.05) -> np.ndarray:
    r"""Per image, the intersection over union of the two maps' most relevant pixels.

    Each map's top set holds the pixels at or above its ``1 - top`` quantile (ties at the
    threshold all count, so a map that is constant on superpixels keeps whole superpixels).

    .. math:: \mathrm{IoU} = \frac{|T_a \cap T_b|}{|T_a \cup T_b|}

    Parameters
    ----------
    maps_a, maps_b : array, tensor or Explanation, [N, H, W]
    top : float in (0, 1)
        The fraction of pixels in the top set (before ties are added).

    Returns
    -------
    np.ndarray float64 [N] in [0, 1]; NaN where either map is constant (no top set).

    Example
    -------
    >>> a = np.zeros((1, 4, 5)); a[0, 0, 0] = 1
    >>> top_overlap(a, a, top=0.05), top_overlap(a, np.roll(a, 1, axis=2), top=0.05)
    (array([1.]), array([0.]))
    """
    if not (isinstance(top, (int, float)) and 0 < top < 1):
        raise ValueError(f"top must be a fraction in (0, 1); got {top!r}")
    a, b = _as_maps(maps_a, "maps_a"), _as_maps(maps_b, "maps_b")
    if a.shape != b.shape:
        raise ValueError(f"maps_a and maps_b must have the same shape; got {list(a.shape)} and {list(b.shape)}")
    out = np.full(len(a), np.nan)
    for i, (x, y) in enumerate(zip(a.reshape(len(a), -1), b.reshape(len(b), -1))):
        if np.ptp(x) > 0 and np.ptp(y) > 0:
            tx, ty = x >= np.quantile(x, 1 - top), y >= np.quantile(y, 1 - top)
            out[i] = (tx & ty).sum() / (tx | ty).sum()
    return out


def seed_rank_correlation(method: str, model, images, targets=None, *, seeds: Sequence[int] = (0, 1, 2),
                          preset: str | None = "quick", maps: Mapping[int, object] | None = None,
                          top: float = 0.05, return_maps: bool = False, **options):
    """How much a method's maps depend on its random seed: Spearman's rank correlation between
    the maps of every pair of ``seeds``, per image.

    Parameters
    ----------
    method : str
        A registered map method (see :func:`medxai_lite.explain.list_methods`).
    model : nn.Module in eval mode
    images : Tensor float [N, C, H, W]
    targets : None, int or sequence of N ints
        The explained classes; ``None`` explains the predicted class (the same for every seed).
    seeds : sequence of at least two distinct non-negative ints
        Passed as ``explain(..., seed=s)``.
    preset : {"quick", "book"} or None
        The method's cost preset (the registry's); options passed explicitly win.
    maps : mapping seed -> maps [N, H, W], optional
        Maps already computed for some of the seeds with the same preset and options (e.g. by a
        scoring run): those seeds are not explained again.
    top : float in (0, 1)
        The fraction of pixels in the top sets of :func:`top_overlap`.
    return_maps : bool
        Also return the maps of every seed, ``{seed: float [N, H, W]}``.
    **options
        Further options of the method.

    Returns
    -------
    pandas.DataFrame with columns :data:`REPEATABILITY_COLUMNS`: one row per image and pair of
    seeds (``seed_a < seed_b`` in the order given), ``spearman`` from :func:`rank_correlation` and
    ``top_overlap`` from :func:`top_overlap` (both NaN where a map is constant). The per-image values of one pair are
    ``table[(table.seed_a == a) & (table.seed_b == b)].spearman``; the mean per method is a
    ``groupby`` away. With ``return_maps``, the pair ``(table, maps)``.

    Example
    -------
    >>> t = seed_rank_correlation("lime", model, images, labels, seeds=(0, 1, 2))   # doctest: +SKIP
    >>> t.groupby("image")["spearman"].mean()          # per image, over the three pairs  # doctest: +SKIP
    """
    import pandas as pd

    from ..explain import explain

    seeds = [int(s) for s in seeds]
    if len(seeds) < 2 or len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise ValueError(f"seeds must hold at least two distinct non-negative integers; got {list(seeds)!r}")
    done = {int(s): _as_maps(m, f"maps[{s}]") for s, m in (maps or {}).items()}
    results = {}
    for s in seeds:
        if s in done:
            results[s] = done[s]
            continue
        res = explain(method, model, images, targets, preset=preset, seed=s, **options)
        if res.maps is None:
            raise ValueError(f"method {method!r} returns {res.kind!r}, not maps: no rank correlation")
        results[s] = res.maps
    rows = []
    for a, b in itertools.combinations(seeds, 2):
        rho = rank_correlation(results[a], results[b])
        iou = top_overlap(results[a], results[b], top)
        rows += [{"method": method, "preset": preset, "image": i, "seed_a": a, "seed_b": b, "spearman": float(r),
                  "top_overlap": float(o)} for i, (r, o) in enumerate(zip(rho, iou))]
    table = pd.DataFrame(rows, columns=REPEATABILITY_COLUMNS)
    return (table, results) if return_maps else table
