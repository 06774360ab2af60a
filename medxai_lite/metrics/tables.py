"""Tidy score tables: every per-image score of every method under every metric, one row each.

:func:`score_table` is the one place where per-image scores become a table: the evaluation and
benchmark chapters and :func:`medxai_lite.bench.run_benchmark` all build their tables with it.
The table is long ("tidy"): columns ``dataset, model, method, metric, image, value`` and any
per-image columns asked for, so that tables of several datasets, models or runs concatenate
and any summary is a ``groupby`` away; :func:`score_summary` is the usual one (mean per method,
one column per dataset and metric).
"""
from __future__ import annotations

import warnings
from typing import Callable, Mapping, Sequence

import numpy as np

__all__ = ["SCORE_COLUMNS", "score_table", "score_runs", "score_summary", "wide_scores", "localisation_table",
           "curve_summary", "count_constant_maps"]

#: The leading columns of every :func:`score_table`.
SCORE_COLUMNS = ["dataset", "model", "method", "metric", "image", "value"]


def _metric_specs(metrics) -> list[tuple[str, Callable, dict]]:
    """``metrics`` as a list of ``(label, function, options)``."""
    from . import METRICS

    if isinstance(metrics, str):
        metrics = [metrics]
    items = metrics.items() if isinstance(metrics, Mapping) else [(m, m) for m in metrics]
    specs = []
    for label, spec in items:
        fn, options = (spec if isinstance(spec, tuple) else (spec, {}))
        if isinstance(fn, str):
            if fn not in METRICS:
                raise ValueError(f"metrics: unknown metric {fn!r}; choose from: {', '.join(sorted(METRICS))}")
            fn = METRICS[fn]
        if not callable(fn):
            raise TypeError(f"metrics[{label!r}] must be a metric name, a callable or a (metric, options) pair; "
                            f"got {type(fn).__name__}")
        specs.append((str(label), fn, dict(options)))
    if not specs:
        raise ValueError("metrics must name at least one metric")
    return specs


def score_table(maps: Mapping[str, object], metrics, *, model=None, images=None, targets=None, masks=None,
                dataset: str | None = None, model_name: str | None = None, image_ids: Sequence | None = None,
                columns: Mapping[str, Sequence] | None = None, quiet: bool = False):
    """Score every set of maps with every metric: a long table, one row per method, metric and image.

    Parameters
    ----------
    maps : mapping method -> maps [N, H, W]
        Arrays, tensors or :class:`~medxai_lite.explain.Explanation` objects over the same
        ``images``. Each is handed to the metrics as given (an Explanation as its ``.maps``).
    metrics : metric names, or a mapping label -> metric
        A metric is a name of :data:`~medxai_lite.metrics.METRICS`, any callable with the metric
        signature ``fn(model, images, targets, maps, masks) -> [N]``, or a pair ``(metric,
        options)`` whose options are passed as keywords (e.g. ``("pointing_game", {"tolerance":
        5})``). The label is what the ``metric`` column says. A registered metric that needs
        masks is skipped when ``masks`` is None.
    model, images, targets, masks
        Passed to every metric, positionally, as in the metric signature.
    dataset, model_name : str, optional
        The ``dataset`` and ``model`` columns (``None`` when not given).
    image_ids : sequence [N], optional
        The ``image`` column (default ``0 .. N-1``), e.g. the images' indices in the test split.
    columns : mapping name -> sequence [N], optional
        Further per-image columns (the true class, the predicted class ...), after ``value``.
    quiet : bool
        Silence the metrics' ``RuntimeWarning`` about undefined scores (they are NaN either way).

    Returns
    -------
    pandas.DataFrame with columns :data:`SCORE_COLUMNS` plus ``columns``; rows ordered by
    method, then metric, then image.

    Example
    -------
    >>> score_table({"gradcam": gc_maps, "random": random_maps(images)},
    ...             ["relevance_mass_accuracy", "pointing_game"], images=images, masks=masks,
    ...             dataset="phantom-skin")                                         # doctest: +SKIP
    """
    import pandas as pd

    specs = _metric_specs(metrics)
    extra = {k: list(v) for k, v in (columns or {}).items()}
    clash = set(extra) & set(SCORE_COLUMNS)
    if clash:
        raise ValueError(f"columns must not redefine the table's own columns: {sorted(clash)}")
    rows = []
    for method, m in maps.items():
        if hasattr(m, "maps") and not isinstance(m, np.ndarray) and not hasattr(m, "detach"):
            m = m.maps
        n = len(m)
        ids = list(range(n)) if image_ids is None else list(image_ids)
        if len(ids) != n or any(len(v) != n for v in extra.values()):
            raise ValueError(f"image_ids and columns must hold one entry per map ({n} for {method!r})")
        for label, fn, options in specs:
            if getattr(fn, "needs_masks", False) and masks is None:
                continue
            with warnings.catch_warnings():
                if quiet:
                    warnings.simplefilter("ignore", RuntimeWarning)
                values = np.asarray(fn(model, images, targets, m, masks, **options), dtype=np.float64).reshape(-1)
            if len(values) != n:
                raise ValueError(f"metric {label!r} returned {len(values)} scores for {n} maps of {method!r}")
            for i, v in enumerate(values):
                rows.append({"dataset": dataset, "model": model_name, "method": method, "metric": label,
                             "image": ids[i], "value": float(v), **{k: col[i] for k, col in extra.items()}})
    return pd.DataFrame(rows, columns=SCORE_COLUMNS + list(extra))


def score_runs(runs: Mapping[str, Mapping], metrics, *, n: int | None = None, random_seed: int | None = None,
               model_name: str | None = None, quiet: bool = False):
    """:func:`score_table` over several datasets, concatenated: one run per dataset.

    ``runs`` maps a dataset to a dict with ``model``, ``batch`` (``"image"``, ``"label"`` and,
    where known, ``"mask"``) and ``maps`` (method -> [N, H, W]), as
    :func:`medxai_lite.selection.explain_lesions` returns. The metrics see the model, the images,
    their true classes as targets, and the masks. ``n`` keeps the first ``n`` images of each
    run; with ``random_seed``, a method ``"random"`` (pixel noise,
    :func:`~medxai_lite.metrics.random_maps`) is scored beside the others as the reference.

    Example
    -------
    >>> score_runs(runs, ["confidence_change"], n=8, random_seed=0)        # doctest: +SKIP
    """
    import pandas as pd

    from .reference import random_maps

    tables = []
    for name, run in runs.items():
        batch = run["batch"]
        keep = slice(None) if n is None else slice(0, int(n))
        images, targets = batch["image"][keep], batch["label"][keep]
        masks = batch["mask"][keep].numpy() if "mask" in batch else None
        maps = {m: v[keep] for m, v in run["maps"].items()}
        if random_seed is not None:
            maps["random"] = random_maps(images, grid="pixel", seed=random_seed)
        tables.append(score_table(maps, metrics, model=run["model"], images=images, targets=targets, masks=masks,
                                  dataset=name, model_name=model_name, quiet=quiet))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=SCORE_COLUMNS)


def score_summary(table, index: str = "method", columns: Sequence[str] = ("dataset", "metric")):
    """Mean score (NaN left out) per ``index`` value, one column per combination of ``columns``.

    Rows and columns keep the order in which their values first appear in ``table`` (the order
    the methods, datasets and metrics were scored in), not the alphabetical one; combinations
    that were never scored are left out. A column of ``columns`` that is empty throughout (the
    ``dataset`` of a :func:`score_table` called without one) is left out of the header instead
    of dropping every row; at least one of ``columns`` must hold values.

    Example
    -------
    >>> score_summary(table)            # rows: methods; columns: (dataset, metric)   # doctest: +SKIP
    """
    columns = [columns] if isinstance(columns, str) else list(columns)
    missing = [c for c in [index, *columns] if c not in table.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the score table; it has {list(table.columns)}")
    kept = [c for c in columns if table[c].notna().any()]
    if not kept and len(table):
        raise ValueError(f"columns {columns} hold no values; name a column of the table that does")
    columns = kept or columns
    means = table.groupby([index, *columns], sort=False)["value"].mean().unstack(columns)
    means = means.reindex(index=list(dict.fromkeys(table[index])))
    levels = [list(dict.fromkeys(table[c])) for c in columns]
    if len(columns) == 1:
        return means[[c for c in levels[0] if c in means.columns]]
    import itertools

    present = set(means.columns)
    return means[[key for key in itertools.product(*levels) if key in present]]


def wide_scores(table, metric: str, methods: Sequence[str] | None = None, index="image"):
    """One metric of a tidy score table in wide form: a row per image (``index``, e.g.
    ``["dataset", "image"]`` when several datasets are pooled), a column per method, in the
    order of ``methods`` (default: as scored). The input of
    :func:`~medxai_lite.metrics.paired_tests`."""
    part = table[table.metric == metric]
    wide = part.pivot(index=index, columns="method", values="value")
    return wide[list(methods) if methods is not None else list(dict.fromkeys(part.method))]


def localisation_table(maps: Mapping[str, object], masks, *, tolerance: float | None = None, chance: bool = True,
                       dataset: str | None = None, model_name: str | None = None, quiet: bool = True):
    """The localisation scores of every method against the true lesions, as a :func:`score_table`.

    Metrics (the ``metric`` column): ``"RMA"`` (relevance mass accuracy), ``"RRA"`` (relevance
    rank accuracy), ``"pointing game"`` (strict) and ``"pointing game ±T px"`` with the tolerance
    ``T`` of Zhang et al. (15 px at 224 px, scaled to the image size, unless ``tolerance`` is
    given). With ``chance``, a method ``"chance"`` holds the expected score of a random map
    (:func:`~medxai_lite.metrics.chance_level`: the lesion's share of the image, the grown
    lesion's for the tolerant pointing game), the number to beat. Constant maps score NaN;
    ``quiet`` silences the warnings (count them with :func:`count_constant_maps`).

    Example
    -------
    >>> localisation_table({"gradcam": maps}, masks, dataset="phantom-skin")   # doctest: +SKIP
    """
    from .reference import chance_scores

    if hasattr(masks, "detach"):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape [N, H, W]; got {list(masks.shape)}")
    tolerance = 15 * masks.shape[-1] / 224 if tolerance is None else float(tolerance)
    tolerant = f"pointing game ±{tolerance:.3g} px"       # 15 px at 224 scaled to 96 px: "±6.43 px"
    metrics = {"RMA": "relevance_mass_accuracy", "RRA": "relevance_rank_accuracy", "pointing game": "pointing_game",
               tolerant: ("pointing_game", {"tolerance": tolerance})}
    table = score_table(maps, metrics, masks=masks, dataset=dataset, model_name=model_name, quiet=quiet)
    if not chance:
        return table
    import pandas as pd

    chance_metrics = {k: (chance_scores, {"tolerance": tolerance if k == tolerant else 0.0}) for k in metrics}
    reference = score_table({"chance": masks}, chance_metrics, masks=masks, dataset=dataset, model_name=model_name)
    return pd.concat([table, reference], ignore_index=True)


def curve_summary(curves: Mapping):
    """Mean deletion AUC, insertion AUC and AOPC per method, from perturbation curves.

    ``curves`` maps ``(mode, method)`` to a :class:`~medxai_lite.metrics.PerturbationCurves`;
    AOPC is read off the deletion curves (:func:`~medxai_lite.metrics.aopc_curve`, last point).
    Means leave out NaN (constant maps). Returns a DataFrame, one row per method.
    """
    import pandas as pd

    from .fidelity import aopc_curve

    methods = list(dict.fromkeys(k[1] for k in curves))
    columns = {}
    if any(k[0] == "deletion" for k in curves):
        columns["deletion AUC (lower is better)"] = {m: np.nanmean(curves[("deletion", m)].auc) for m in methods}
    if any(k[0] == "insertion" for k in curves):
        columns["insertion AUC (higher is better)"] = {m: np.nanmean(curves[("insertion", m)].auc) for m in methods}
    if "deletion AUC (lower is better)" in columns:
        columns["AOPC (higher is better)"] = {m: np.nanmean(aopc_curve(curves[("deletion", m)])[:, -1])
                                             for m in methods}
    return pd.DataFrame(columns)


def count_constant_maps(maps) -> int:
    """How many of the maps [N, H, W] are constant (e.g. all zero): no ranking and no peak, so
    the localisation metrics score them NaN."""
    if hasattr(maps, "maps") and not isinstance(maps, np.ndarray) and not hasattr(maps, "detach"):
        maps = maps.maps
    if hasattr(maps, "detach"):
        maps = maps.detach().cpu().numpy()
    flat = np.asarray(maps).reshape(len(maps), -1)
    return int((flat.max(1) == flat.min(1)).sum())
