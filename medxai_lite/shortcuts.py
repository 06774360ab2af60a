"""Catching a shortcut ("Clever Hans") model: test sets that move the artefact, and relevance per region.

A model trained on phantoms with ``shortcut=s`` (``get_trained_model(name, shortcut=s)``) sees
a label-correlated artefact (a ruler on melanomas, a marker on pneumonia films, a burnt-in
annotation on gliomas). Two measurements tell whether it learnt the artefact instead of the
lesion:

- **behaviour**, :func:`shortcut_test_sets` + :func:`accuracy_table`: the same test images
  three times, with the artefact at the training rate, with no artefact, and with the artefact
  moved to another class (the phantoms draw the same random stream whatever ``shortcut`` and
  ``shortcut_class`` are, so only the artefact changes between the three sets);
- **explanations**, :func:`artefact_batch` + :func:`region_mass`: the share of a map's positive
  relevance that falls on the artefact's pixels (``meta["artefact_mask"]``) and on the lesion,
  beside each region's share of the image, which is what a map with no information gets.

Example
-------
>>> sets = shortcut_test_sets("phantom-skin", 1.0, n=200)                       # doctest: +SKIP
>>> accuracy_table({"shortcut": model_s, "clean": model_c}, sets)                # doctest: +SKIP
>>> batch = artefact_batch(sets["with the artefact, as in training"], 8)         # doctest: +SKIP
>>> region_mass(maps, {"artefact": batch["artefact_mask"], "lesion": batch["mask"]})  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

__all__ = ["TEST_SETS", "shortcut_test_sets", "accuracy_table", "artefact_batch", "region_mass"]

#: The names of the three test sets of :func:`shortcut_test_sets`, in order.
TEST_SETS = ("with the artefact, as in training", "without the artefact", "artefact on another class")


def shortcut_test_sets(name: str, shortcut: float, *, n: int = 400, image_size: int = 96, seed: int = 0,
                       other_class: int | None = None) -> dict:
    """The same ``n`` test images of phantom ``name`` three times, differing only in the artefact.

    Keys are :data:`TEST_SETS`: the artefact on a share ``shortcut`` of the shortcut class
    (:data:`medxai_lite.data.SHORTCUT_CLASS`), as the shortcut model was trained; no artefact at
    all; and the artefact on the same share of ``other_class`` instead (default: the first class
    that is not the shortcut class; for the two-class phantoms, the other one). Images, labels and
    lesions are identical across the three; so is which images *could* carry the artefact.

    Returns a dict name -> :class:`~medxai_lite.data.BiomedDataset`.
    """
    from .data import PHANTOMS, SHORTCUT_CLASS, load_dataset

    if name not in PHANTOMS:
        raise ValueError(f"name must be a phantom dataset ({', '.join(PHANTOMS)}): only they can move the "
                         f"artefact; got {name!r}")
    if isinstance(shortcut, bool) or not np.isscalar(shortcut) or not 0.0 < float(shortcut) <= 1.0:
        raise ValueError(f"shortcut must lie in (0, 1] (the share of images with the artefact); got {shortcut!r}")
    k = len(PHANTOMS[name].classes)
    target = SHORTCUT_CLASS[name]
    if other_class is None:
        other_class = next(c for c in range(k) if c != target)
    if isinstance(other_class, bool) or not isinstance(other_class, (int, np.integer)) \
            or not 0 <= other_class < k or other_class == target:
        raise ValueError(f"other_class must be a class index in 0..{k - 1} other than the shortcut class {target}; "
                         f"got {other_class!r}")
    common = dict(split="test", image_size=image_size, n=n, seed=seed)
    return {
        TEST_SETS[0]: load_dataset(name, shortcut=float(shortcut), **common),
        TEST_SETS[1]: load_dataset(name, shortcut=0.0, **common),
        TEST_SETS[2]: load_dataset(name, shortcut=float(shortcut), shortcut_class=int(other_class), **common),
    }


def accuracy_table(models: Mapping[str, object], test_sets: Mapping[str, object], *, shortcut_class: int | None = None,
                   batch_size: int = 64):
    """Accuracy and macro-F1 of every model on every test set, and how often it predicts the shortcut class.

    ``models`` maps a label to a trained classifier in eval mode; ``test_sets`` a label to a
    dataset (e.g. :func:`shortcut_test_sets`). ``shortcut_class`` defaults to the datasets'
    :data:`~medxai_lite.data.SHORTCUT_CLASS`.

    Returns a pandas DataFrame, one row per (model, test set): ``model, test set, accuracy,
    macro_f1, predicted shortcut class`` (the share of images predicted as that class) and ``n``.
    """
    import pandas as pd

    from .data import SHORTCUT_CLASS
    from .models.train import evaluate

    if not models or not test_sets:
        raise ValueError("models and test_sets must each hold at least one entry")
    rows = []
    for set_name, ds in test_sets.items():
        cls = shortcut_class if shortcut_class is not None else SHORTCUT_CLASS.get(getattr(ds, "name", ""))
        if cls is None:
            raise ValueError(f"shortcut_class is needed: test set {set_name!r} is not a phantom dataset")
        for model_name, model in models.items():
            r = evaluate(model, ds, batch_size=batch_size)
            confusion = np.asarray(r["confusion"])
            rows.append({"model": model_name, "test set": set_name, "accuracy": r["accuracy"],
                         "macro_f1": r["macro_f1"], "predicted shortcut class": confusion[:, cls].sum() / r["n"],
                         "n": r["n"]})
    return pd.DataFrame(rows, columns=["model", "test set", "accuracy", "macro_f1", "predicted shortcut class", "n"])


def artefact_batch(dataset, n: int) -> dict:
    """A stacked batch of the first ``n`` items of ``dataset`` that carry the shortcut artefact.

    Like :meth:`~medxai_lite.data.BiomedDataset.batch` (``image`` [n, 3, H, W], ``label``, ``index``,
    ``mask`` [n, H, W] the lesion), plus ``artefact_mask`` bool [n, H, W], the artefact's pixels.
    Fewer than ``n`` come back when the dataset holds fewer; a ``ValueError`` when it holds none.
    """
    import torch

    from ._utils import check_positive_int

    n = check_positive_int("n", n)
    meta = getattr(dataset, "meta", {}) or {}
    if "artefact_mask" not in meta:
        raise ValueError("dataset carries no artefact masks (meta['artefact_mask']): load a phantom dataset "
                         "with shortcut > 0")
    idx = np.flatnonzero(meta["artefact"])[:n]
    if idx.size == 0:
        raise ValueError("no image of this dataset carries the artefact: load it with shortcut > 0")
    batch = dataset.batch([int(i) for i in idx])
    batch["artefact_mask"] = torch.from_numpy(np.asarray(meta["artefact_mask"][idx], dtype=bool))
    return batch


def region_mass(maps, regions: Mapping[str, object], *, rest: str | None = "elsewhere"):
    """Share of each map's positive relevance inside each named region, beside the region's area.

    .. math:: \\mathrm{mass}_r = \\frac{\\sum_{p \\in r} R_p^+}{\\sum_p R_p^+}, \\qquad
              \\mathrm{area}_r = \\frac{|r|}{H W}

    ``mass`` is the relevance mass accuracy of Arras et al. (2022) with ``r`` as the mask
    (:func:`medxai_lite.metrics.relevance_mass_accuracy`); ``area`` is the expected mass of a map
    that knows nothing about the image (:func:`medxai_lite.metrics.chance_level`), so
    ``mass / area`` above 1 means the map favours the region. Regions may overlap (a large lesion
    can touch a ruler): each is scored on its own. ``rest`` names the pixels outside every region
    (``None``: no such row). An empty region scores NaN for that image; a map without positive
    relevance scores NaN with a warning.

    Parameters
    ----------
    maps : [N, H, W] array, tensor or Explanation
    regions : dict name -> bool [N, H, W]

    Returns
    -------
    pandas.DataFrame, columns ``image, region, mass, area``, one row per image and region.

    Example
    -------
    >>> m = np.zeros((1, 4, 4)); m[0, 0] = 1.0                  # all relevance on the top row
    >>> top = np.zeros((1, 4, 4), bool); top[0, 0] = True
    >>> region_mass(m, {"top": top})[["region", "mass", "area"]].values.tolist()
    [['top', 1.0, 0.25], ['elsewhere', 0.0, 0.75]]
    """
    import pandas as pd

    from .metrics import chance_level, check_maps, relevance_mass_accuracy

    if not regions:
        raise ValueError("regions must name at least one region (name -> bool masks [N, H, W])")
    maps = check_maps(maps)
    named = {}
    for name, masks in regions.items():
        if hasattr(masks, "detach"):
            masks = masks.detach().cpu().numpy()
        masks = np.asarray(masks)
        if masks.shape != maps.shape:
            raise ValueError(f"regions[{name!r}] must have the maps' shape {list(maps.shape)}; got {list(masks.shape)}")
        if masks.dtype != bool:
            raise ValueError(f"regions[{name!r}] must be boolean masks; got dtype {masks.dtype}")
        named[name] = masks
    if rest is not None:
        if rest in named:
            raise ValueError(f"rest={rest!r} is also the name of a region; pick another name")
        named[rest] = ~np.logical_or.reduce(list(named.values()))
    rows = []
    for name, masks in named.items():
        mass = relevance_mass_accuracy(None, None, None, maps, masks, on_empty="nan")
        area = chance_level(masks)
        rows += [{"image": i, "region": name, "mass": float(mass[i]), "area": float(area[i])} for i in range(len(maps))]
    return pd.DataFrame(rows, columns=["image", "region", "mass", "area"])
