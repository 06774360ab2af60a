"""Cost against quality: what a method's cost preset buys in localisation.

Perturbation methods, and sampling methods in general, have one knob that sets both their cost
and the noise in their maps: the number of samples, masks, windows or optimisation steps. The
registry gives each method two settings of that knob, ``"quick"`` and ``"book"``
(:attr:`medxai_lite.explain.MethodInfo.presets`). :func:`cost_quality` runs a set of methods at
each preset on the same images, measures the seconds per image, and scores the maps against the
true lesions with the pointing game and relevance mass accuracy.

Example
-------
>>> table = cost_quality(["occlusion", "rise"], model, images, masks, targets=labels)   # doctest: +SKIP
>>> table[["method", "preset", "seconds per image", "pointing game"]]                  # doctest: +SKIP
"""
from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import numpy as np

__all__ = ["COST_COLUMNS", "cost_quality"]

#: The columns of :func:`cost_quality`'s table.
COST_COLUMNS = ["dataset", "method", "preset", "seconds per image", "pointing game", "RMA", "images", "scored"]


def cost_quality(methods: Sequence[str], model, images, masks, *, targets=None,
                 presets: Sequence[str] = ("quick", "book"), seed: int = 0,
                 options: Mapping[str, Mapping] | None = None, dataset: str | None = None,
                 return_maps: bool = False):
    """Seconds per image and localisation quality of every method at every cost preset.

    Each method runs once per preset on all ``images`` (``explain(method, model, images,
    targets, preset=p, seed=seed)``); its seconds per image are that call's
    :attr:`~medxai_lite.explain.Explanation.seconds` divided by the number of images (wall
    clock on this machine, so compare rows of one run, not of different machines). The maps are
    scored with :func:`~medxai_lite.metrics.pointing_game` (strict; tied peaks count by the
    share that hits) and :func:`~medxai_lite.metrics.relevance_mass_accuracy`, averaged over
    the images whose map is not constant (a constant map, e.g. Anchors' empty anchor, has no
    peak; ``scored`` counts the others).

    Parameters
    ----------
    methods : sequence of str
        Registered map methods.
    model : nn.Module in eval mode
    images : Tensor float [N, C, H, W]
    masks : bool [N, H, W] or None
        The true lesion of each image (none empty). ``None`` (a dataset without masks): only the
        cost is measured, the quality columns are NaN.
    targets : None, int or sequence of N ints
        The explained classes (``None``: the predicted class).
    presets : sequence of {"quick", "book"}
        The registry's cost presets to run.
    seed : int
        ``explain``'s seed.
    options : mapping method -> options, optional
        Options passed on top of the preset (e.g. ``{"occlusion": {"baseline": "blur"}}``).
    dataset : str, optional
        The ``dataset`` column.
    return_maps : bool
        Also return the explanations, ``{(method, preset): Explanation}``, so a caller can
        reuse the maps (grids, other metrics) without explaining again.

    Returns
    -------
    pandas.DataFrame with columns :data:`COST_COLUMNS`, one row per method and preset in the
    order given; with ``return_maps``, the pair ``(table, explanations)``.

    Example
    -------
    >>> table, runs = cost_quality(["lime", "occlusion"], model, x, masks, targets=y, presets=("quick",),
    ...                            return_maps=True)                                 # doctest: +SKIP
    >>> runs[("lime", "quick")].maps.shape                                          # doctest: +SKIP
    (4, 112, 112)
    """
    import pandas as pd

    from .._utils import check_choice
    from ..explain import explain
    from ..explain.registry import PRESETS
    from .localisation import pointing_game, relevance_mass_accuracy

    if isinstance(methods, str):
        methods = [methods]
    if isinstance(presets, str):
        presets = [presets]
    if not methods or not presets:
        raise ValueError("cost_quality needs at least one method and one preset")
    for p in presets:
        check_choice("presets", p, PRESETS)
    if masks is not None:
        if hasattr(masks, "detach"):
            masks = masks.detach().cpu().numpy()
        masks = np.asarray(masks).astype(bool)
        if masks.ndim != 3 or len(masks) != len(images) or masks.shape[1:] != tuple(images.shape[-2:]):
            raise ValueError(f"masks must be bool [N, H, W] matching the images {list(images.shape)}; "
                             f"got {list(masks.shape)}")
    options = dict(options or {})
    rows, runs = [], {}
    for method in methods:
        for preset in presets:
            res = explain(method, model, images, targets, preset=preset, seed=seed, **options.get(method, {}))
            if res.maps is None:
                raise ValueError(f"method {method!r} returns {res.kind!r}, not maps: nothing to localise")
            if masks is None:
                hits = mass = np.full(len(images), np.nan)
            else:
                with warnings.catch_warnings():      # constant maps score NaN: counted in "scored" instead
                    warnings.simplefilter("ignore", RuntimeWarning)
                    hits = pointing_game(None, images, None, res.maps, masks, on_constant="nan")
                    mass = relevance_mass_accuracy(None, images, None, res.maps, masks, on_constant="nan")
                mass = np.where(np.isfinite(hits), mass, np.nan)   # both scores over the same images
            scored = int(np.isfinite(hits).sum())
            rows.append({"dataset": dataset, "method": method, "preset": preset,
                         "seconds per image": res.seconds / len(images),
                         "pointing game": float(np.nanmean(hits)) if scored else float("nan"),
                         "RMA": float(np.nanmean(mass)) if np.isfinite(mass).any() else float("nan"),
                         "images": len(images), "scored": scored})
            runs[(method, preset)] = res
    table = pd.DataFrame(rows, columns=COST_COLUMNS)
    return (table, runs) if return_maps else table
