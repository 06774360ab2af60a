"""Evaluation metrics for explanation maps, the sanity checks of Adebayo et al., and statistics.

Every per-image metric is a plain function with one signature::

    metric(model, images, targets, maps, masks=None, **options) -> np.ndarray [N]

``images`` float [N, C, H, W] (normalised, as the model reads them), ``targets`` class indices
[N] (``None``: the model's predicted class), ``maps`` float [N, H, W] (an
:class:`~medxai_lite.explain.Explanation` is accepted too), ``masks`` bool [N, H, W] (lesion
ground truth; localisation metrics need it, the others ignore it). Each function carries
``higher_is_better`` (bool), ``category`` (``"localisation"``, ``"fidelity"`` or ``"sanity"``),
``needs_masks`` and ``needs_model``, and is listed in :data:`METRICS`.

=========================== ============== ===============================================
name                        category       higher is better
=========================== ============== ===============================================
relevance_mass_accuracy     localisation   yes (Arras et al. 2022)
relevance_rank_accuracy     localisation   yes (Arras et al. 2022)
pointing_game               localisation   yes (Zhang et al. 2018)
deletion                    fidelity       no  (Petsiuk et al. 2018)
insertion                   fidelity       yes (Petsiuk et al. 2018)
aopc                        fidelity       yes (Samek et al. 2017)
road_morf                   fidelity       no  (Rong et al. 2022, via pytorch-grad-cam)
road_lerf                   fidelity       yes (idem)
road_combined               fidelity       yes (idem)
confidence_change           fidelity       yes (pytorch-grad-cam CamMultImageConfidenceChange)
confidence_increase         fidelity       yes (idem, as 0/1 per image)
randomisation_similarity    sanity         no  (Adebayo et al. 2018)
=========================== ============== ===============================================

The whole sanity-check experiment (cascading / independent parameter randomisation, label
randomisation) returns tidy tables: :func:`cascading_randomisation`,
:func:`independent_randomisation`, :func:`label_randomisation`. Paired tests, effect sizes,
multiple-comparison corrections and bootstrap intervals live in :mod:`medxai_lite.metrics.stats`.

Curves behind the per-image numbers: :func:`perturbation_curves` (deletion / insertion),
:func:`aopc_curve` (AOPC against the number of steps) and :func:`road_curves` (ROAD per
percentile). Every per-image score table is built by :func:`score_table` (long format:
``dataset, model, method, metric, image, value``) and summarised by :func:`score_summary`. The
reference every map has to beat: :func:`random_maps` (pixel noise, or noise on a CAM's grid)
and :func:`chance_level` (the expected localisation score of a random map). What a strict
pointing game can reach and how much it hangs on near-ties: :func:`pointing_ceiling` (the best
any map upsampled bilinearly from a grid can do; the package's bicubic CAMs can pass it) and :func:`peak_plateau` (the pixels within a few per cent
of the peak, and their share in the lesion). For sampling
methods: :func:`seed_rank_correlation` (do two seeds give the same map?) and
:func:`cost_quality` (seconds per image against localisation, per cost preset).

Example
-------
>>> from medxai_lite.metrics import METRICS, list_metrics
>>> list_metrics("localisation")
['pointing_game', 'relevance_mass_accuracy', 'relevance_rank_accuracy']
>>> scores = METRICS["deletion"](model, images, targets, maps)      # np.ndarray [N]
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import torch
from torch import nn

from .._utils import check_choice, check_eval_model, check_images  # noqa: F401 - re-exported for the metric modules
from .._utils import check_positive_int  # noqa: F401 - used by the metric modules
from .._utils import check_targets as _check_targets
from .._utils import model_device  # noqa: F401 - re-exported (metrics.model_device)

#: The categories a metric can belong to.
CATEGORIES = ("localisation", "fidelity", "sanity")

#: The registry: metric name -> function (filled by :func:`register_metric`).
METRICS: dict[str, Callable] = {}

#: Policies for maps that are constant (ranking, peak and mass fraction undefined).
ON_CONSTANT = ("nan", "raise")


def register_metric(name: str, *, category: str, higher_is_better: bool, needs_masks: bool = False,
                    needs_model: bool = True, reference: str = "") -> Callable:
    """Decorator: record a metric in :data:`METRICS` and set its attributes.

    The function keeps its own behaviour; it gains ``name``, ``category``,
    ``higher_is_better``, ``needs_masks``, ``needs_model`` and ``reference`` attributes.
    """
    check_choice("category", category, CATEGORIES)

    def decorate(func: Callable) -> Callable:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is already registered")
        func.name = name
        func.category = category
        func.higher_is_better = bool(higher_is_better)
        func.needs_masks = bool(needs_masks)
        func.needs_model = bool(needs_model)
        func.reference = reference
        METRICS[name] = func
        return func

    return decorate


def list_metrics(category: str | None = None) -> list[str]:
    """Names of the registered metrics, sorted, optionally of one ``category``."""
    if category is not None:
        check_choice("category", category, CATEGORIES)
    return sorted(n for n, f in METRICS.items() if category is None or f.category == category)


def metrics_table(category: str | None = None):
    """The registry as a pandas DataFrame: name, category, higher_is_better, needs_masks,
    needs_model, reference."""
    import pandas as pd

    rows = [dict(name=n, category=METRICS[n].category, higher_is_better=METRICS[n].higher_is_better,
                 needs_masks=METRICS[n].needs_masks, needs_model=METRICS[n].needs_model,
                 reference=METRICS[n].reference) for n in list_metrics(category)]
    return pd.DataFrame(rows, columns=["name", "category", "higher_is_better", "needs_masks",
                                       "needs_model", "reference"])


# --------------------------------------------------------------------------- shared input checks
# They live here, above the submodule imports, because every submodule uses them.


def check_model(model) -> nn.Module:
    """Refuse anything but an ``nn.Module`` in eval mode (a metric never switches the mode)."""
    return check_eval_model(model, "metrics")


def check_maps(maps, images=None) -> np.ndarray:
    """``maps`` as float64 [N, H, W]; accepts arrays, tensors and objects with ``.maps``.

    Raises ``ValueError`` naming ``maps`` for a wrong shape, a size that differs from the
    images' (H, W) or count N, and NaN / infinite values.
    """
    if hasattr(maps, "maps") and not isinstance(maps, (np.ndarray, torch.Tensor)):
        maps = maps.maps
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().cpu().numpy()
    maps = np.asarray(maps)
    if maps.dtype == bool or not np.issubdtype(maps.dtype, np.number):
        raise TypeError(f"maps must hold real numbers; got dtype {maps.dtype}")
    if maps.ndim != 3:
        hint = " (drop the channel axis: maps[:, 0])" if maps.ndim == 4 and maps.shape[1] == 1 else ""
        hint = hint or (" (add a batch dimension: maps[None])" if maps.ndim == 2 else "")
        raise ValueError(f"maps must have shape [N, H, W]; got {list(maps.shape)}{hint}")
    if maps.shape[0] == 0:
        raise ValueError("maps must hold at least one map; got N = 0")
    if images is not None:
        shape = tuple(images.shape)
        if shape[0] != maps.shape[0]:
            raise ValueError(f"maps and images must hold the same number of items; got {maps.shape[0]} maps "
                             f"and {shape[0]} images")
        if tuple(shape[-2:]) != maps.shape[1:]:
            raise ValueError(f"maps must match the images' size: images are {shape[-2]}x{shape[-1]} but maps are "
                             f"{maps.shape[1]}x{maps.shape[2]} (resize the maps to the input resolution)")
    bad = ~np.isfinite(maps).reshape(len(maps), -1).all(1)
    if bad.any():
        raise ValueError(f"maps contain NaN or infinite values (images {_first(np.flatnonzero(bad))})")
    return maps.astype(np.float64, copy=False)


def check_masks(masks, maps: np.ndarray, metric: str, on_empty: str = "raise") -> tuple[np.ndarray, np.ndarray]:
    """``masks`` as bool [N, H, W], the maps' shape, and bool [N]: which masks are empty.

    An empty mask (e.g. a "no tumour" image) leaves a localisation score undefined:
    ``on_empty="raise"`` raises a ``ValueError`` naming the images; ``"nan"`` lets the caller
    score them NaN, silently, since the choice was explicit.
    """
    check_choice("on_empty", on_empty, ("raise", "nan"))
    if masks is None:
        raise ValueError(f"{metric} needs masks= (bool [N, H, W], the ground-truth region of each image)")
    if hasattr(masks, "detach"):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks)
    if masks.dtype != bool:
        if not np.issubdtype(masks.dtype, np.number) or not np.isin(masks, (0, 1)).all():
            raise ValueError("masks must be boolean (or hold only 0 and 1)")
        masks = masks.astype(bool)
    if masks.shape != maps.shape:
        raise ValueError(f"masks must have the maps' shape {list(maps.shape)}; got {list(masks.shape)}")
    empty = ~masks.reshape(len(masks), -1).any(1)
    if empty.any() and on_empty == "raise":
        raise ValueError(f"masks are empty for images {_first(np.flatnonzero(empty))}: {metric} is undefined "
                         "without a ground-truth region; drop those images or pass on_empty='nan'")
    return masks, empty


def constant_maps(maps: np.ndarray, metric: str, on_constant: str) -> np.ndarray:
    """Bool [N]: which maps are constant (no ranking, no peak), handled by :func:`flag_undefined`."""
    flat = maps.reshape(len(maps), -1)
    const = flat.max(1) == flat.min(1)
    return flag_undefined(const, metric, on_constant, "is undefined for a constant map (no ranking, no peak)",
                          what="maps are constant")


def flag_undefined(flags: np.ndarray, metric: str, on_constant: str, reason: str,
                   what: str = "maps are degenerate") -> np.ndarray:
    """Policy for images whose score is undefined: ``on_constant="raise"`` raises a ``ValueError``
    naming them; ``"nan"`` warns (``RuntimeWarning``) and the caller scores them NaN."""
    check_choice("on_constant", on_constant, ON_CONSTANT)
    flags = np.asarray(flags, dtype=bool)
    if flags.any():
        msg = f"{what} for images {_first(np.flatnonzero(flags))}: {metric} {reason}"
        if on_constant == "raise":
            raise ValueError(msg)
        warnings.warn(msg + "; scored NaN (pass on_constant='raise' to make this an error)",
                      RuntimeWarning, stacklevel=3)
    return flags


def check_targets(targets, model: nn.Module, images: torch.Tensor, batch_size: int = 64,
                  num_classes: int | None = None) -> torch.Tensor:
    """Targets as int64 [N] on the model's device; ``None`` -> the predicted classes."""
    n = images.shape[0]
    device = model_device(model)
    if targets is None:
        with torch.no_grad():   # not inference_mode: explainers may use the targets under autograd
            return torch.cat([model(images[i:i + batch_size].to(device)).argmax(1)
                              for i in range(0, n, batch_size)])
    if num_classes is None:
        with torch.no_grad():
            num_classes = model(images[:1].to(device)).shape[-1]
    values = _check_targets(targets, n, num_classes)
    return values.to(device)


def _first(indices, k: int = 10) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:k])
    return shown + (f", ... ({len(indices)} in all)" if len(indices) > k else "")


# The submodules import the helpers above from this package, so these imports stay last.
from .localisation import (  # noqa: E402
    cam_pointing_ceiling, peak_plateau, pointing_ceiling, pointing_game, relevance_mass_accuracy,
    relevance_rank_accuracy,
)
from .fidelity import (  # noqa: E402
    PerturbationCurves, RoadCurves, aopc, aopc_curve, confidence_change, confidence_increase, deletion, insertion,
    make_baseline, perturbation_curves, road_combined, road_curves, road_lerf, road_morf,
)
from .sanity import (  # noqa: E402
    cascade_summary, cascading_randomisation, cascading_randomisation_methods, independent_randomisation,
    label_randomisation, make_train_fn, map_similarity, model_randomisation_table, randomisable_layers,
    randomisation_similarity,
)
from . import stats  # noqa: E402
from .stats import bonferroni, bootstrap_ci, cohens_dz, holm, method_summary, paired_tests  # noqa: E402
from .reference import chance_level, chance_scores, random_maps  # noqa: E402
from .tables import (  # noqa: E402
    count_constant_maps, curve_summary, localisation_table, score_runs, score_summary, score_table, wide_scores,
)
from .repeatability import rank_correlation, seed_rank_correlation, top_overlap  # noqa: E402
from .cost import cost_quality  # noqa: E402
from .text import (  # noqa: E402
    TEXT_METRICS, MissingJavaError, bleu, cider_d, meteor, report_tuples, rouge_l, spice_style_f1, text_scores,
    text_score_table, diagnosis_agreement,
    tokenize,
)

__all__ = [
    "METRICS", "CATEGORIES", "ON_CONSTANT", "register_metric", "list_metrics", "metrics_table",
    "relevance_mass_accuracy", "relevance_rank_accuracy", "pointing_game", "pointing_ceiling", "cam_pointing_ceiling",
    "peak_plateau", "deletion", "insertion", "aopc", "aopc_curve", "perturbation_curves", "PerturbationCurves", "make_baseline",
    "road_morf", "road_lerf", "road_combined", "road_curves", "RoadCurves", "confidence_change",
    "confidence_increase", "random_maps", "chance_level", "chance_scores", "score_table", "score_runs",
    "score_summary", "wide_scores", "localisation_table", "curve_summary", "count_constant_maps",
    "randomisation_similarity", "cascading_randomisation", "cascading_randomisation_methods", "cascade_summary",
    "independent_randomisation", "label_randomisation", "make_train_fn", "map_similarity", "randomisable_layers",
    "model_randomisation_table", "stats", "paired_tests", "method_summary", "cohens_dz", "holm", "bonferroni",
    "bootstrap_ci", "rank_correlation", "top_overlap", "seed_rank_correlation", "cost_quality",
    "TEXT_METRICS", "MissingJavaError", "tokenize", "bleu", "meteor", "rouge_l", "cider_d", "report_tuples",
    "spice_style_f1", "text_scores", "text_score_table", "diagnosis_agreement",
]
