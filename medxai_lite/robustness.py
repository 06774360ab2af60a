"""Do explanations survive the noise of a real scanner? Map stability and accuracy under corruption.

For each corruption of :mod:`medxai_lite.data.corruptions` (speckle, Rician noise, bias field) and
each strength, the same images are corrupted with a fixed seed and explained again for the same
classes; :func:`corruption_stability` compares every map with the map of the clean image by
Spearman's rank correlation over the pixels (:func:`medxai_lite.metrics.rank_correlation`: 1 means
the pixels are ranked identically). :func:`corrupted_accuracy` measures what the corruption does
to the model's accuracy, so the two can be read side by side: a map that changes while the
prediction holds is unstable; a map that changes because the prediction changed is not.

Example
-------
>>> strengths = {"speckle": [0.1, 0.3], "rician": [0.03, 0.1], "bias_field": [0.1, 0.3]}
>>> corruption_stability(model, images, labels, ["gradcam"], strengths)    # doctest: +SKIP
>>> corrupted_accuracy(model, images, labels, strengths)                   # doctest: +SKIP
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = ["corruption_stability", "corrupted_accuracy", "stability_summary"]


def _check_strengths(strengths: Mapping[str, Sequence[float]]) -> dict:
    from .data.corruptions import CORRUPTIONS
    from ._utils import check_choice

    if not strengths:
        raise ValueError("strengths must map at least one corruption to its strengths, e.g. {'rician': [0.05]}")
    out = {}
    for kind, values in strengths.items():
        check_choice("strengths", kind, CORRUPTIONS)
        values = [float(v) for v in values]
        if not values or any(not np.isfinite(v) or v < 0 for v in values):
            raise ValueError(f"strengths[{kind!r}] must be a non-empty list of numbers >= 0; got {values}")
        out[kind] = values
    return out


def corruption_stability(model, images, targets, methods: Sequence[str], strengths: Mapping[str, Sequence[float]], *,
                         seed: int = 0, method_options: Mapping[str, dict] | None = None):
    """Rank correlation between the map of each clean image and the map of its corrupted copy.

    Parameters
    ----------
    model : nn.Module in eval mode
    images : Tensor [N, 3, H, W], normalised (as the datasets give them)
    targets : int [N] or None
        The classes to explain, the same for the clean and the corrupted images (``None``: the
        model's predictions on the *clean* images), so only the image changes.
    methods : method names of :func:`medxai_lite.explain.explain`
    strengths : dict corruption -> strengths (see :data:`medxai_lite.data.corruptions.CORRUPTIONS`)
    seed : int
        Seeds the corruption and the explainers.
    method_options : dict method -> explain options (e.g. ``{"occlusion": {"preset": "quick"}}``)

    Returns
    -------
    pandas.DataFrame, columns ``method, corruption, strength, image, spearman, seconds``
    (``seconds``: explaining the corrupted batch).
    """
    import pandas as pd

    from .data.corruptions import corrupt
    from .explain import explain
    from .metrics import check_targets, rank_correlation
    from ._utils import check_images

    strengths = _check_strengths(strengths)
    images = check_images(images)
    if not methods:
        raise ValueError("methods must name at least one explanation method")
    targets = check_targets(targets, model, images).cpu()
    options = dict(method_options or {})
    clean = {m: explain(m, model, images, targets, seed=seed, **options.get(m, {})).maps for m in methods}
    rows = []
    for kind, values in strengths.items():
        for strength in values:
            noisy = corrupt(images, kind, strength, seed=seed)
            for m in methods:
                res = explain(m, model, noisy, targets, seed=seed, **options.get(m, {}))
                rho = rank_correlation(clean[m], res.maps)
                rows += [dict(method=m, corruption=kind, strength=strength, image=i, spearman=float(r),
                              seconds=float(res.seconds)) for i, r in enumerate(rho)]
    return pd.DataFrame(rows, columns=["method", "corruption", "strength", "image", "spearman", "seconds"])


def corrupted_accuracy(model, images, labels, strengths: Mapping[str, Sequence[float]], *, seed: int = 0,
                       batch_size: int = 64):
    """Accuracy of ``model`` on ``images`` corrupted at every strength (strength 0: the clean images).

    ``images`` Tensor [N, 3, H, W] normalised, ``labels`` int [N]. Returns a pandas DataFrame,
    columns ``corruption, strength, accuracy, n``, with a strength-0 row per corruption.
    """
    import pandas as pd
    import torch

    from .data.corruptions import corrupt
    from .metrics import model_device
    from ._utils import check_eval_model, check_images, check_targets

    strengths = _check_strengths(strengths)
    check_eval_model(model, "corrupted_accuracy")
    images = check_images(images)
    labels = check_targets(labels, len(images))
    device = model_device(model)

    def accuracy(x) -> float:
        with torch.no_grad():
            pred = torch.cat([model(x[i:i + batch_size].to(device)).argmax(1).cpu()
                              for i in range(0, len(x), batch_size)])
        return float((pred == labels).float().mean())

    clean = accuracy(images)
    rows = []
    for kind, values in strengths.items():
        rows.append(dict(corruption=kind, strength=0.0, accuracy=clean, n=len(images)))
        for strength in values:
            if strength == 0:
                continue
            rows.append(dict(corruption=kind, strength=strength, accuracy=accuracy(corrupt(images, kind, strength,
                                                                                           seed=seed)),
                             n=len(images)))
    return pd.DataFrame(rows, columns=["corruption", "strength", "accuracy", "n"])


def stability_summary(stability, accuracy=None):
    """Mean (and count) of the rank correlation per method, corruption and strength, with the
    accuracy at that corruption and strength beside it when ``accuracy`` is given."""
    table = (stability.groupby(["corruption", "strength", "method"], sort=False)
             .spearman.agg(["mean", "count"]).rename(columns={"mean": "spearman", "count": "n maps"})
             .reset_index())
    if accuracy is not None:
        table = table.merge(accuracy[["corruption", "strength", "accuracy"]], on=["corruption", "strength"], how="left")
    return table
