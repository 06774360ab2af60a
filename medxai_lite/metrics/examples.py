r"""Scores for the example-based family (:mod:`medxai_lite.explain.examples`), each beside the value
a random choice would get.

An example-based explanation is not always a map, so the localisation metrics of
:mod:`medxai_lite.metrics.localisation` do not cover it all. The questions asked here:

- **Patches against the lesion** (L2X keeps ``k`` of the ``d`` patches of a grid):
  :func:`patch_touches` says which patches touch the lesion, :func:`patch_hit_rate` the share
  of the selected patches that do, :func:`patch_chance` its expected value for ``k`` patches
  drawn at random (the same for every ``k``: :math:`|\{p : p \cap M \ne \emptyset\}| / d`),
  :func:`random_patch_maps` draws such a random selection as maps, for any other metric, and
  :func:`top_patches` picks the ``k`` patches a relevance map (e.g. Grad-CAM) ranks highest, so
  that it is scored on the same terms.
- **Neighbours against labels** (nearest examples, prototypes): :func:`label_agreement` is the
  share of the returned examples whose class is the one given (the query's true class, or the
  model's prediction); :func:`label_chance` is its expected value for examples drawn at random
  from the references, the reference frequency of that class.
- **Planted items in a ranking** (influence, self-influence): :func:`planted_ranking` counts the
  planted items (e.g. mislabelled training images) among the top ``k`` of a score, against the
  chance count :math:`k\,n_{planted} / n` and its one-sided hypergeometric p-value.

Shapes: ``masks`` bool [N, H, W]; ``selected`` int [N, k] (patch indices, row-major over the
grid, as ``explain("l2x", ...)`` returns them in ``extras["selected"]``); ``labels`` int [N, k].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._utils import check_positive_int

__all__ = ["patch_touches", "patch_hit_rate", "patch_chance", "random_patch_maps", "top_patches", "label_agreement",
           "label_chance", "PlantedRanking", "planted_ranking"]


# --------------------------------------------------------------------------- patches
def _masks(masks) -> np.ndarray:
    if hasattr(masks, "detach"):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[0] == 0:
        raise ValueError(f"masks must be boolean [N >= 1, H, W]; got shape {list(masks.shape)}")
    if masks.dtype != bool:
        if not np.issubdtype(masks.dtype, np.number) or not np.isin(masks, (0, 1)).all():
            raise ValueError("masks must be boolean (or hold only 0 and 1)")
        masks = masks.astype(bool)
    return masks


def _grid(shape, patch) -> tuple[int, int]:
    patch = check_positive_int("patch", patch)
    h, w = shape
    if h % patch or w % patch:
        raise ValueError(f"patch must divide the image size; got patch={patch} for {h} x {w} images")
    return h // patch, w // patch


def patch_touches(masks, patch: int) -> np.ndarray:
    """Bool [N, d]: whether each ``patch`` x ``patch`` cell of the grid (row-major, ``d`` cells)
    holds at least one lesion pixel."""
    masks = _masks(masks)
    gh, gw = _grid(masks.shape[1:], patch)
    n = len(masks)
    return masks.reshape(n, gh, patch, gw, patch).any((2, 4)).reshape(n, gh * gw)


def patch_hit_rate(selected, masks, patch: int) -> np.ndarray:
    r"""Float [N]: the share of each image's selected patches that touch its lesion,
    :math:`|\{p \in S : p \cap M \ne \emptyset\}| / |S|`."""
    touches = patch_touches(masks, patch)
    selected = np.asarray(selected)
    if selected.ndim != 2 or len(selected) != len(touches) or selected.shape[1] == 0:
        raise ValueError(f"selected must be patch indices [N={len(touches)}, k >= 1]; got shape {list(selected.shape)}")
    if not np.issubdtype(selected.dtype, np.integer) or selected.min() < 0 or selected.max() >= touches.shape[1]:
        raise ValueError(f"selected must hold patch indices in 0..{touches.shape[1] - 1}")
    return np.take_along_axis(touches, selected, 1).mean(1)


def patch_chance(masks, patch: int) -> np.ndarray:
    """Float [N]: the expected :func:`patch_hit_rate` of patches drawn uniformly at random (with
    or without replacement, any ``k``): the share of the grid's patches that touch the lesion."""
    return patch_touches(masks, patch).mean(1)


def random_patch_maps(n: int, size, patch: int, k: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(maps float32 [n, H, W], selected int [n, k])``: ``k`` distinct patches per image drawn
    uniformly at random (``numpy.random.default_rng(seed)``), 1 inside them and 0 elsewhere: the
    reference an L2X selection with the same ``k`` has to beat."""
    n, k = check_positive_int("n", n), check_positive_int("k", k)
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    if len(size) != 2:
        raise ValueError(f"size must be an int or a pair (H, W); got {size!r}")
    gh, gw = _grid(tuple(int(s) for s in size), patch)
    if k > gh * gw:
        raise ValueError(f"k must be at most the number of patches ({gh * gw}); got k={k}")
    rng = np.random.default_rng(seed)
    selected = np.sort(np.stack([rng.choice(gh * gw, k, replace=False) for _ in range(n)]), axis=1)
    cells = np.zeros((n, gh * gw), np.float32)
    np.put_along_axis(cells, selected, 1.0, 1)
    maps = cells.reshape(n, gh, 1, gw, 1).repeat(patch, 2).repeat(patch, 4).reshape(n, gh * patch, gw * patch)
    return maps, selected.astype(np.int64)


# --------------------------------------------------------------------------- labels of examples
def top_patches(maps, patch: int, k: int) -> np.ndarray:
    """Int [N, k]: the ``k`` patches of a ``patch``-pixel grid with the largest mean map value
    (row-major indices, sorted; ties broken by index), so that a relevance map can be scored
    with :func:`patch_hit_rate` like an L2X selection of the same ``k``."""
    if hasattr(maps, "maps") and not isinstance(maps, np.ndarray):
        maps = maps.maps
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3 or len(maps) == 0 or not np.isfinite(maps).all():
        raise ValueError(f"maps must be finite [N >= 1, H, W]; got shape {list(maps.shape)}")
    gh, gw = _grid(maps.shape[1:], patch)
    k = check_positive_int("k", k)
    if k > gh * gw:
        raise ValueError(f"k must be at most the number of patches ({gh * gw}); got k={k}")
    n = len(maps)
    means = maps.reshape(n, gh, patch, gw, patch).mean((2, 4)).reshape(n, gh * gw)
    return np.sort(np.argsort(-means, axis=1, kind="stable")[:, :k], axis=1)


def label_agreement(example_labels, labels) -> np.ndarray:
    """Float [N]: the share of each image's returned examples (``example_labels`` int [N, k])
    whose class equals ``labels`` [N] (the image's true class, or the model's prediction)."""
    example_labels, labels = np.asarray(example_labels), np.asarray(labels)
    if example_labels.ndim != 2 or example_labels.shape[1] == 0:
        raise ValueError(f"example_labels must be [N, k >= 1]; got shape {list(example_labels.shape)}")
    if labels.shape != (len(example_labels),):
        raise ValueError(f"labels must hold one class per image ({len(example_labels)}); got shape "
                         f"{list(labels.shape)}")
    return (example_labels == labels[:, None]).mean(1)


def label_chance(reference_labels, labels) -> np.ndarray:
    """Float [N]: the expected :func:`label_agreement` of examples drawn uniformly at random from
    references with classes ``reference_labels`` [M]: the frequency of each image's class there."""
    reference_labels, labels = np.asarray(reference_labels), np.asarray(labels)
    if reference_labels.ndim != 1 or len(reference_labels) == 0:
        raise ValueError(f"reference_labels must be a non-empty 1-d array; got shape {list(reference_labels.shape)}")
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-d array; got shape {list(labels.shape)}")
    return (labels[:, None] == reference_labels[None, :]).mean(1)


# --------------------------------------------------------------------------- planted items
@dataclass
class PlantedRanking:
    """Where planted items land in a ranking: ``hits`` of them among the top ``k`` of ``n_items``,
    ``expected`` (the chance count :math:`k\\,n_{planted}/n`), ``enrichment`` (hits / expected),
    ``p_value`` (one-sided: the probability that ``k`` items drawn at random hold at least ``hits``
    planted ones, hypergeometric) and ``ranks`` (1-based rank of every planted item, sorted)."""
    k: int
    hits: int
    expected: float
    enrichment: float
    p_value: float
    n_items: int
    n_planted: int
    ranks: np.ndarray


def planted_ranking(scores, planted, k: int, *, largest: bool = True) -> PlantedRanking:
    r"""Count the ``planted`` items (indices into ``scores``) among the ``k`` items of largest
    score (``largest=False``: smallest, e.g. the most harmful influence).

    Chance: ``k`` items drawn without replacement from ``n`` hold on average
    :math:`k\,n_{planted}/n` planted ones; the p-value is the hypergeometric tail
    :math:`P(X \ge \mathrm{hits})` (``scipy.stats.hypergeom``). Ties are broken by index (a stable
    sort), so the count never depends on luck.
    """
    from scipy.stats import hypergeom

    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or len(scores) == 0 or not np.isfinite(scores).all():
        raise ValueError(f"scores must be a finite 1-d array with one score per item; got shape {list(scores.shape)}")
    n = len(scores)
    planted = np.unique(np.asarray(planted))
    if planted.size == 0 or not np.issubdtype(planted.dtype, np.integer) or planted.min() < 0 or planted.max() >= n:
        raise ValueError(f"planted must be a non-empty set of item indices in 0..{n - 1}")
    k = check_positive_int("k", k)
    if k > n:
        raise ValueError(f"k must be at most the number of items ({n}); got k={k}")
    if not isinstance(largest, bool):
        raise ValueError(f"largest must be True or False; got {largest!r}")
    order = np.argsort(-scores if largest else scores, kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(1, n + 1)
    hits = int(np.isin(order[:k], planted).sum())
    expected = k * len(planted) / n
    p = float(hypergeom.sf(hits - 1, n, len(planted), k))
    return PlantedRanking(k=k, hits=hits, expected=expected, enrichment=hits / expected, p_value=p, n_items=n,
                          n_planted=len(planted), ranks=np.sort(rank[planted]))
