"""Sanity checks for saliency maps (Adebayo et al. 2018, "Sanity Checks for Saliency Maps", NeurIPS).

An explanation that does not change when the model's parameters or its training labels are
randomised cannot be explaining the model. Three tests, each comparing the maps of the
original model with those of a randomised one by SSIM (scikit-image) and Spearman rank
correlation (SciPy's ranks); similarity near 1 means the method *fails* the check:

* :func:`cascading_randomisation` - re-initialise layers one after another, from the output
  towards the input, keeping earlier randomisations;
* :func:`independent_randomisation` - re-initialise one layer at a time, the rest intact;
* :func:`label_randomisation` - train the same small model on shuffled labels.

They work on a *copy*: the model passed in is never modified. ``explainer`` is a method name
of :func:`medxai_lite.explain.explain` or a callable ``explainer(model, images, targets) ->``
maps [N, H, W] (array, tensor or :class:`~medxai_lite.explain.Explanation`). Results are tidy
pandas DataFrames with columns ``mode, step, layer, image, metric, value``.

:func:`randomisation_similarity` is the per-image metric form (registry category ``"sanity"``)
for tables that put every method beside every metric.
"""
from __future__ import annotations

import copy
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .._utils import check_choice, device, minmax_scale
from . import check_images, check_maps, check_model, check_positive_int, check_targets, register_metric

__all__ = [
    "SIMILARITIES", "map_similarity", "randomisable_layers", "randomise_layers",
    "cascading_randomisation", "cascading_randomisation_methods", "cascade_summary", "independent_randomisation",
    "label_randomisation", "make_train_fn",
    "randomisation_similarity", "model_randomisation_table",
]

#: Similarity measures between two sets of maps.
SIMILARITIES = ("ssim", "spearman")
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)
_COLUMNS = ["mode", "step", "layer", "image", "metric", "value"]


def map_similarity(maps_a, maps_b, metric: str = "spearman") -> np.ndarray:
    """Per-image similarity of two sets of maps [N, H, W] -> float64 [N].

    ``"spearman"``: Spearman rank correlation of the flattened maps (average ranks for ties,
    as ``scipy.stats.spearmanr``); NaN when either map is constant (no ranking).
    ``"ssim"``: structural similarity (Wang et al. 2004; ``skimage.metrics.structural_similarity``,
    7x7 window, ``data_range=1``) after scaling each map to [0, 1] by its own min and max
    (a constant map becomes all zeros), so that raw and normalised maps compare alike.

    Example
    -------
    >>> map_similarity(maps, maps, "spearman")
    array([1., 1.])
    """
    from scipy.stats import rankdata

    check_choice("metric", metric, SIMILARITIES)
    a = check_maps(maps_a)
    b = check_maps(maps_b)
    if a.shape != b.shape:
        raise ValueError(f"maps_a and maps_b must have the same shape; got {list(a.shape)} and {list(b.shape)}")
    n = len(a)
    if metric == "spearman":
        ra = rankdata(a.reshape(n, -1), axis=1)
        rb = rankdata(b.reshape(n, -1), axis=1)
        ra -= ra.mean(1, keepdims=True)
        rb -= rb.mean(1, keepdims=True)
        denom = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = (ra * rb).sum(1) / denom
        rho[denom == 0] = np.nan
        return np.clip(rho, -1.0, 1.0)
    from skimage.metrics import structural_similarity

    if min(a.shape[1:]) < 7:
        raise ValueError(f"ssim needs maps of at least 7x7 pixels; got {a.shape[1]}x{a.shape[2]}")
    a, b = minmax_scale(a), minmax_scale(b)
    return np.array([structural_similarity(x, y, data_range=1.0) for x, y in zip(a, b)])


def randomisable_layers(model: nn.Module) -> list[str]:
    """Names of the weight layers a randomisation test re-initialises, output first.

    Every module that owns parameters and has ``reset_parameters`` (convolutions, linear
    layers, attention projections ...), except normalisation layers, in reverse order of
    registration (for torchvision CNNs that is the reverse of the forward order). Pass your own
    list to the tests to randomise coarser blocks instead (e.g. ``["fc", "layer4", "layer3"]``).
    """
    names = [name for name, m in model.named_modules()
             if any(True for _ in m.parameters(recurse=False)) and not isinstance(m, _NORMS)
             and (hasattr(m, "reset_parameters") or hasattr(m, "_reset_parameters"))]
    return names[::-1]


def randomise_layers(model: nn.Module, layers: Sequence[str], seed: int = 0) -> nn.Module:
    """Re-initialise, in place, every parameter of the named modules (and their submodules).

    Each module gets its default initialiser (``reset_parameters``; Adebayo et al. drew from a
    truncated normal, the same idea); parameters of a module without one are drawn from a
    normal distribution with their own standard deviation. Seeded in a forked generator.
    """
    known = dict(model.named_modules())
    for j, name in enumerate(layers):
        if name not in known:
            raise ValueError(f"layers: {name!r} is not a module of this model; see randomisable_layers(model)")
        module = known[name]
        if not any(True for _ in module.parameters()):
            raise ValueError(f"layers: {name!r} has no parameters to randomise")
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(seed * 100_003 + j)
            for m in module.modules():
                reset = getattr(m, "reset_parameters", None) or getattr(m, "_reset_parameters", None)
                if reset is not None and any(True for _ in m.parameters(recurse=False)):
                    reset()
                else:
                    for p in m.parameters(recurse=False):
                        std = float(p.std()) if p.numel() > 1 and float(p.std()) > 0 else 0.02
                        p.normal_(0.0, std)
    return model


def _as_explainer(explainer, explain_options: dict | None) -> Callable:
    options = dict(explain_options or {})
    if isinstance(explainer, str):
        method = explainer

        def run(model, images, targets):
            from ..explain import explain

            return explain(method, model, images, targets, **options)
    elif callable(explainer):
        def run(model, images, targets):
            return explainer(model, images, targets, **options)
    else:
        raise TypeError("explainer must be a method name of medxai_lite.explain or a callable "
                        f"(model, images, targets) -> maps; got {type(explainer).__name__}")

    def maps_of(model, images, targets) -> np.ndarray:
        return check_maps(run(model, images, targets), images)

    return maps_of


def _prepare(model, images, targets):
    check_model(model)
    images = check_images(images)
    targets = check_targets(targets, model, images)
    return images, targets


def _rows(mode, step, layer, reference, maps, similarity) -> list[dict]:
    rows = []
    for metric in similarity:
        for i, v in enumerate(map_similarity(reference, maps, metric)):
            rows.append(dict(mode=mode, step=step, layer=layer, image=i, metric=metric, value=float(v)))
    return rows


def _check_similarity(similarity) -> tuple[str, ...]:
    similarity = (similarity,) if isinstance(similarity, str) else tuple(similarity)
    if not similarity:
        raise ValueError("similarity must name at least one of: " + ", ".join(SIMILARITIES))
    for s in similarity:
        check_choice("similarity", s, SIMILARITIES)
    return similarity


def _parameter_randomisation(mode, model, images, targets, explainer, layers, similarity, seed, explain_options,
                             return_maps=False):
    import pandas as pd

    images, targets = _prepare(model, images, targets)
    similarity = _check_similarity(similarity)
    maps_of = _as_explainer(explainer, explain_options)
    layers = randomisable_layers(model) if layers is None else list(layers)
    if not layers:
        raise ValueError("layers is empty: nothing to randomise")
    reference = maps_of(model, images, targets)
    work = copy.deepcopy(model)
    # step 0: an untouched copy, which must reproduce the maps (a deterministic explainer gives 1)
    steps = [maps_of(work, images, targets)]
    rows = _rows(mode, 0, "original", reference, steps[0], similarity)
    for j, name in enumerate(layers, start=1):
        if mode == "independent":
            work = copy.deepcopy(model)
        randomise_layers(work, [name], seed=seed + j)
        maps = maps_of(work, images, targets)
        rows += _rows(mode, j, name, reference, maps, similarity)
        if return_maps:
            steps.append(maps)
    table = pd.DataFrame(rows, columns=_COLUMNS)
    return (table, steps) if return_maps else table


def cascading_randomisation(model, images, targets, explainer, *, layers: Sequence[str] | None = None,
                            similarity=SIMILARITIES, seed: int = 0, explain_options: dict | None = None,
                            return_maps: bool = False):
    """Cascading model-parameter randomisation (Adebayo et al. 2018, Sec. 3.1).

    On a copy of ``model``, layers are re-initialised one after another from the output
    towards the input (``layers``, default :func:`randomisable_layers`), *keeping* the earlier
    randomisations; after each step the maps are recomputed and compared with the original
    ones. A method that explains the model loses similarity as more layers are randomised.

    Parameters
    ----------
    model : nn.Module in eval mode (not modified)
    images : Tensor [N, C, H, W]
    targets : int [N] or None
        Classes to explain; ``None``: the original model's predictions, kept fixed for every
        randomised copy.
    explainer : str or callable
        A method name for :func:`medxai_lite.explain.explain`, or
        ``explainer(model, images, targets, **explain_options) -> maps [N, H, W]``.
    layers : sequence of module names, optional
        In the order to randomise. Step ``j`` has all of ``layers[:j]`` randomised.
    similarity : "ssim", "spearman" or both (default)
    seed : int
        Seeds the re-initialisation (forked generator).
    explain_options : dict, optional
    return_maps : bool
        Also return the maps of every step (to show them, or to count the constant ones).

    Returns
    -------
    pandas.DataFrame, columns ``mode, step, layer, image, metric, value``: step 0 (layer
    ``"original"``) compares the untouched copy with the original maps; step ``j`` names the
    last layer randomised. With ``return_maps=True``, the pair ``(table, maps)`` where
    ``maps[j]`` is float64 [N, H, W], the maps of step ``j`` (``maps[0]``: the untouched copy).

    Example
    -------
    >>> df = cascading_randomisation(model, images, None, "saliency", layers=["fc", "layer4", "layer3"])
    >>> df.groupby(["step", "layer", "metric"], sort=False).value.mean().unstack()
    >>> df, maps = cascading_randomisation(model, images, None, "saliency", return_maps=True)
    >>> len(maps) == df.step.max() + 1
    True
    """
    return _parameter_randomisation("cascading", model, images, targets, explainer, layers, similarity, seed,
                                    explain_options, return_maps)


def cascading_randomisation_methods(model, images, targets, methods: Sequence[str], *,
                                    layers: Sequence[str] | None = None, similarity=SIMILARITIES, seed: int = 0,
                                    method_options: dict | None = None, return_maps: bool = False):
    """:func:`cascading_randomisation` for several methods of :func:`medxai_lite.explain.explain`
    on the same images, layers and seed, as one table with a ``method`` column (last).

    ``method_options`` maps a method to its explain options. With ``return_maps=True`` returns
    ``(table, maps)`` where ``maps[method][j]`` is the maps of step ``j`` (float64 [N, H, W]).

    Example
    -------
    >>> table = cascading_randomisation_methods(model, images, None, ["gradcam", "saliency"],
    ...                                         layers=["fc", "layer4", "layer3"])
    """
    import pandas as pd

    options = dict(method_options or {})
    tables, maps = [], {}
    for method in methods:
        table, maps[method] = cascading_randomisation(model, images, targets, method, layers=layers,
                                                      similarity=similarity, seed=seed,
                                                      explain_options=options.get(method, {}), return_maps=True)
        tables.append(table.assign(method=method))
    table = pd.concat(tables, ignore_index=True)
    return (table, maps) if return_maps else table


def cascade_summary(table, maps: dict | None = None):
    """Where the randomisation test ends: per method, the mean similarity after the last step.

    ``table``: the result of :func:`cascading_randomisation_methods`; ``maps``: its maps (with
    ``return_maps=True``), to count the maps that are constant after full randomisation (their
    Spearman correlation is undefined and left out of the mean). Rows in the order of the
    methods; columns ``"<similarity> after full randomisation"`` and, with ``maps``,
    ``"constant maps after full randomisation"``.
    """
    from .tables import count_constant_maps

    last = table[table.step == table.step.max()]
    summary = last.groupby(["method", "metric"]).value.mean().unstack("metric")
    summary = summary.loc[list(dict.fromkeys(table.method))]
    summary.columns = [f"{c} after full randomisation" for c in summary.columns]
    if maps is not None:
        summary["constant maps after full randomisation"] = [count_constant_maps(maps[m][-1]) for m in summary.index]
    return summary


def independent_randomisation(model, images, targets, explainer, *, layers: Sequence[str] | None = None,
                              similarity=SIMILARITIES, seed: int = 0, explain_options: dict | None = None):
    """Independent model-parameter randomisation (Adebayo et al. 2018, Sec. 3.1).

    Like :func:`cascading_randomisation`, but each step starts again from an intact copy and
    re-initialises only ``layers[j-1]``, showing which single layer the maps depend on. Same
    parameters and result columns (mode ``"independent"``).

    Example
    -------
    >>> independent_randomisation(model, images, None, "gradcam", layers=["layer4", "layer1"])
    """
    return _parameter_randomisation("independent", model, images, targets, explainer, layers, similarity, seed,
                                    explain_options)


def make_train_fn(model_fn: Callable[[int], nn.Module] | None = None, *, num_classes: int | None = None,
                  epochs: int = 10, lr: float = 1e-3, batch_size: int = 32, seed: int = 0) -> Callable:
    """A small-budget ``train_fn(images, labels) -> model`` for :func:`label_randomisation`.

    Trains ``model_fn(num_classes)`` (default ``get_model("small_cnn", num_classes)``) with Adam
    and cross-entropy for ``epochs`` passes of the package's training loop
    (:func:`medxai_lite.models.train.fit`), seeded in a forked generator, on
    :func:`medxai_lite.device` (the model is built on the CPU first, so a seed gives the same
    initial weights everywhere; batches move to the device as they are used), and returns it there
    in eval mode. ``num_classes`` defaults to ``max(label) + 1`` (at least 2).

    Example
    -------
    >>> train_fn = make_train_fn(epochs=5)
    >>> model = train_fn(images, labels)
    """
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)

    def train_fn(images: torch.Tensor, labels: torch.Tensor) -> nn.Module:
        from ..models.train import fit

        k = num_classes or max(2, int(labels.max()) + 1)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            if model_fn is None:
                from ..models.zoo import get_model

                model = get_model("small_cnn", k)
            else:
                model = model_fn(k)
            dev = device()
            model.to(dev)
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            gen = torch.Generator().manual_seed(seed)

            def batches(epoch):   # a fresh seeded order of the images every epoch
                order = torch.randperm(len(images), generator=gen)
                for start in range(0, len(images), batch_size):
                    idx = order[start:start + batch_size]
                    yield images[idx], labels[idx]

            fit(model, opt, batches, epochs, device=dev)
        return model.eval()

    return train_fn


def label_randomisation(images, targets, explainer, *, train_fn: Callable, train_images, train_labels,
                        model: nn.Module | None = None, similarity=SIMILARITIES, seed: int = 0,
                        explain_options: dict | None = None):
    """Data (label) randomisation test (Adebayo et al. 2018, Sec. 3.2).

    Trains the same architecture twice with ``train_fn`` - on ``train_labels`` and on a seeded
    permutation of them - and compares the maps the two models give for ``images``. A model
    trained on shuffled labels can only memorise; an explanation that still looks the same is
    not tied to what the model learnt from the labels.

    Parameters
    ----------
    images : Tensor [N, C, H, W]
        The images to explain.
    targets : int [N] or None
        Classes to explain in both models; ``None``: the true-label model's predictions.
    explainer : str or callable (see :func:`cascading_randomisation`)
    train_fn : callable ``(images [M, C, H, W], labels int64 [M]) -> nn.Module``
        Trains a fresh model; :func:`make_train_fn` gives a small-budget one. The returned
        model is put in eval mode.
    train_images, train_labels : the training set (Tensor [M, C, H, W], int [M])
    model : nn.Module, optional
        The model trained on the true labels; trained with ``train_fn`` when omitted (the fair
        comparison: same budget, only the labels differ).
    similarity, seed, explain_options : as in :func:`cascading_randomisation`

    Returns
    -------
    pandas.DataFrame, columns ``mode, step, layer, image, metric, value`` with mode
    ``"label"`` and layer ``"shuffled_labels"``; ``df.attrs["shuffled_labels"]`` holds the
    permuted labels.

    Example
    -------
    >>> df = label_randomisation(images, None, "saliency", train_fn=make_train_fn(epochs=5),
    ...                          train_images=x_train, train_labels=y_train)
    """
    import pandas as pd

    similarity = _check_similarity(similarity)
    if not callable(train_fn):
        raise TypeError(f"train_fn must be callable (images, labels) -> nn.Module; got {type(train_fn).__name__}")
    train_images = check_images(train_images)
    labels = train_labels.detach().cpu() if isinstance(train_labels, torch.Tensor) else torch.as_tensor(
        np.asarray(train_labels))
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.ndim != 1:
        raise TypeError("train_labels must be integer class indices of shape [M]")
    labels = labels.long()
    if len(labels) != len(train_images):
        raise ValueError(f"train_labels must have one entry per training image ({len(train_images)}); "
                         f"got {len(labels)}")
    if len(torch.unique(labels)) < 2:
        raise ValueError("train_labels must hold at least two classes: shuffling one class changes nothing")
    gen = torch.Generator().manual_seed(seed)
    shuffled = labels[torch.randperm(len(labels), generator=gen)]
    trained = [train_fn(train_images, labels)] if model is None else []
    trained.append(train_fn(train_images, shuffled))
    for m in trained:
        if not isinstance(m, nn.Module):
            raise TypeError(f"train_fn must return an nn.Module; got {type(m).__name__}")
        m.eval()
    model = trained[0] if model is None else model
    shuffled_model = trained[-1]
    images, targets = _prepare(model, images, targets)
    maps_of = _as_explainer(explainer, explain_options)
    reference = maps_of(model, images, targets)
    rows = _rows("label", 1, "shuffled_labels", reference, maps_of(shuffled_model, images, targets), similarity)
    df = pd.DataFrame(rows, columns=_COLUMNS)
    df.attrs["shuffled_labels"] = shuffled.numpy()
    return df


@register_metric("randomisation_similarity", category="sanity", higher_is_better=False,
                 reference="Adebayo et al. 2018, NeurIPS")
def randomisation_similarity(model, images, targets, maps, masks=None, *, explainer=None,
                             similarity: str = "spearman", layers: Sequence[str] | None = None, seed: int = 0,
                             explain_options: dict | None = None) -> np.ndarray:
    """Similarity between ``maps`` and the maps of a fully randomised copy of the model.

    The last step of the cascading test (Adebayo et al. 2018) as a per-image score: all
    ``layers`` (default :func:`randomisable_layers`) of a copy are re-initialised, ``explainer``
    recomputes the maps for the same ``targets``, and ``similarity`` compares them with
    ``maps``. Lower is better: a method whose maps survive randomisation is not explaining the
    model. (A strongly negative Spearman correlation would also show dependence; use
    ``abs()`` if you want to treat it so.)

    Parameters
    ----------
    model : nn.Module in eval mode (not modified); images : Tensor [N, C, H, W]
    targets : int [N] or None (predicted class); maps : [N, H, W], from the same explainer
    explainer : str or callable, required (see :func:`cascading_randomisation`)
    similarity : {"spearman", "ssim"}
    layers, seed, explain_options : as in :func:`cascading_randomisation`

    Returns
    -------
    np.ndarray float64 [N]; Spearman is NaN where a map is constant.

    Example
    -------
    >>> randomisation_similarity(model, images, None, explain("saliency", model, images).maps,
    ...                          explainer="saliency")
    """
    if explainer is None:
        raise ValueError("randomisation_similarity needs explainer= (a method name or a callable) to recompute "
                         "the maps on the randomised model")
    check_choice("similarity", similarity, SIMILARITIES)
    maps = check_maps(maps, images)
    images, targets = _prepare(model, images, targets)
    maps_of = _as_explainer(explainer, explain_options)
    work = copy.deepcopy(model)
    randomise_layers(work, randomisable_layers(model) if layers is None else list(layers), seed=seed)
    return map_similarity(maps, maps_of(work, images, targets), similarity)


def model_randomisation_table(model, images, targets, methods: Sequence[str], *, method_options: dict | None = None,
                              threshold: float = 0.5, seed: int = 0, on_error: str = "record"):
    """The model-randomisation check (Adebayo et al. 2018, Sec. 3.1) for many methods at once.

    For each method in ``methods``: the maps of ``model`` and of a copy with *every*
    :func:`randomisable_layers` layer re-initialised (the last step of the cascading test) for
    the same ``images`` and ``targets``, compared by Spearman rank correlation and SSIM
    (:func:`map_similarity`), averaged over the images. A method whose maps keep a mean Spearman
    correlation of at least ``threshold`` with the randomised model's *fails*: its maps do not
    depend on what the network learnt. ``method_options`` maps a method to its
    :func:`~medxai_lite.explain.explain` options (cost presets). ``on_error="record"`` puts a
    method that cannot run on this model in the table with its error instead of raising.

    Returns
    -------
    pandas.DataFrame, one row per method: ``method, family, spearman, ssim, n, verdict,
    seconds, error``; ``verdict`` is ``"passes"``, ``"fails"``, ``"undefined"`` (constant maps)
    or ``"error"``.

    Example
    -------
    >>> model_randomisation_table(model, images, None, ["gradcam", "guided_backprop"])
    """
    import time

    import pandas as pd

    from ..explain import METHODS, explain

    check_choice("on_error", on_error, ("record", "raise"))
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold!r}")
    images, targets = _prepare(model, images, targets)
    work = copy.deepcopy(model)
    randomise_layers(work, randomisable_layers(model), seed=seed)
    options = dict(method_options or {})
    rows = []
    for method in methods:
        start = time.perf_counter()
        try:
            opts = options.get(method, {})
            original = explain(method, model, images, targets, seed=seed, **opts).maps
            randomised = explain(method, work, images, targets, seed=seed, **opts).maps
        except Exception as exc:  # noqa: BLE001 - recorded in the table, as documented
            if on_error == "raise":
                raise
            rows.append(dict(method=method, family=METHODS[method].family if method in METHODS else "",
                             spearman=np.nan, ssim=np.nan, n=0, verdict="error",
                             seconds=time.perf_counter() - start, error=f"{type(exc).__name__}: {exc}"))
            continue
        rho = map_similarity(original, randomised, "spearman")
        ssim = map_similarity(original, randomised, "ssim")
        mean_rho = float(np.nanmean(rho)) if np.isfinite(rho).any() else float("nan")
        verdict = "undefined" if not np.isfinite(mean_rho) else ("fails" if mean_rho >= threshold else "passes")
        rows.append(dict(method=method, family=METHODS[method].family, spearman=mean_rho,
                         ssim=float(np.nanmean(ssim)), n=int(np.isfinite(rho).sum()), verdict=verdict,
                         seconds=time.perf_counter() - start, error=""))
    return pd.DataFrame(rows, columns=["method", "family", "spearman", "ssim", "n", "verdict", "seconds", "error"])
