"""Figures of the evaluation and benchmark chapters: they take computed results and draw.

Nothing here computes a score: the tables come from :mod:`medxai_lite.metrics` (e.g.
:func:`~medxai_lite.metrics.score_table`, :func:`~medxai_lite.metrics.perturbation_curves`,
:func:`~medxai_lite.metrics.road_curves`, :func:`~medxai_lite.metrics.cascading_randomisation`)
and from :func:`medxai_lite.bench.run_benchmark`. Every function returns the figure; axes are
labelled, and figures that show maps or colour-coded values carry a colour bar.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = ["REFERENCE_COLOUR", "VERDICT_COLOURS", "method_colours", "style_verdicts", "cascade_labels",
           "plot_score_heatmap", "plot_perturbation_curves", "plot_road_curves", "plot_randomisation_curves",
           "plot_randomisation_maps", "plot_timing", "plot_mean_bars", "plot_pvalue_grid"]

#: The colour of reference curves (random maps): grey, drawn dashed.
REFERENCE_COLOUR = (0.5, 0.5, 0.5)


#: Background colours of verdict cells: green for a pass, red for a failure, amber and grey between.
VERDICT_COLOURS = {"passes": "#d9f2d9", "fails": "#f8d7da", "reproduced": "#d9f2d9", "holds": "#d9f2d9",
                   "ordering only": "#fff3cd", "not comparable": "#e2e3e5", "not run": "#e2e3e5",
                   "not reproduced": "#f8d7da", "does not hold": "#f8d7da", "yes": "#d9f2d9", "no": "#f8d7da"}


def style_verdicts(table, columns: str | Sequence[str] | None = "verdict", *, colours: Mapping | None = None,
                   default: str = "", caption: str | None = None, hide_index: bool = False, **formats):
    """A pandas Styler of ``table`` with verdict cells coloured (:data:`VERDICT_COLOURS`).

    ``columns``: the column(s) holding verdicts (``None``: every column). A value without a
    colour gets ``default`` (``""``: no colour). ``formats`` go to ``Styler.format`` (e.g.
    ``formatter={"p": "{:.3f}"}`` or ``precision=3``).
    """
    colours = VERDICT_COLOURS if colours is None else colours
    subset = None if columns is None else ([columns] if isinstance(columns, str) else list(columns))

    def colour(value):
        c = colours.get(value, default) if isinstance(value, str) else default
        return f"background-color: {c}" if c else ""

    styled = table.style
    if formats:
        styled = styled.format(**formats)
    if hide_index:
        styled = styled.hide(axis="index")
    styled = styled.map(colour, subset=subset)
    return styled.set_caption(caption) if caption else styled


def method_colours(methods: Sequence[str], reference: str = "random") -> dict:
    """One ``tab10`` colour per method, in order, and grey for the ``reference``."""
    import matplotlib.pyplot as plt

    methods = [m for m in methods if m != reference]
    palette = plt.cm.tab10.colors
    return {**{m: palette[k % len(palette)] for k, m in enumerate(methods)}, reference: REFERENCE_COLOUR}


def _colours(colours, names, reference):
    colours = dict(colours or {})
    missing = [n for n in names if n not in colours]
    return {**method_colours(missing, reference), **colours} if missing else colours


def plot_score_heatmap(summary, *, title: str | None = None, label: str = "mean score", vmin: float = 0.0,
                       vmax: float = 1.0, cmap: str = "viridis", strip: str = "phantom-"):
    """A table of mean scores as a heatmap, values written in the cells.

    ``summary``: rows are methods, columns a two-level index ``(group, metric)`` (e.g. the
    ``(dataset, metric)`` columns of :func:`~medxai_lite.metrics.score_summary`); a white line
    separates the groups. ``strip`` is removed from the group names in the tick labels.
    """
    import matplotlib.pyplot as plt

    values = summary.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 * values.shape[1] + 3, 0.55 * values.shape[0] + 2.2))
    im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    middle = vmin + 0.6 * (vmax - vmin)
    for (r, c), v in np.ndenumerate(values):
        ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if v < middle else "black")
    keys = [k if isinstance(k, tuple) else (k,) for k in summary.columns]
    ax.set_xticks(range(values.shape[1]))
    ax.set_xticklabels(["\n".join([str(k[0]).replace(strip, ""), *map(str, k[1:])]) for k in keys], fontsize=8,
                       rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(values.shape[0]))
    ax.set_yticklabels(summary.index)
    ax.set_xlabel(" / ".join(str(n) for n in summary.columns.names if n) or "column")
    ax.set_ylabel(summary.index.name or "method")
    for c in range(1, len(keys)):
        if keys[c][0] != keys[c - 1][0]:
            ax.axvline(c - 0.5, color="white", lw=2)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02).set_label(label)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_perturbation_curves(curves: Mapping, *, colours: Mapping | None = None, reference: str = "random",
                             title: str | None = None):
    """Deletion and insertion curves side by side, the mean over images per method.

    ``curves`` maps ``(mode, method)`` to a :class:`~medxai_lite.metrics.PerturbationCurves`
    (``mode`` ``"deletion"`` or ``"insertion"``); the legend gives each method's mean AUC. The
    ``reference`` method (a random map) is drawn grey and dashed.
    """
    import matplotlib.pyplot as plt

    modes = [m for m in ("deletion", "insertion") if any(k[0] == m for k in curves)]
    methods = list(dict.fromkeys(k[1] for k in curves))
    colours = _colours(colours, methods, reference)
    fig, axes = plt.subplots(1, len(modes), figsize=(5.5 * len(modes), 4.2), sharey=True, squeeze=False)
    for ax, mode in zip(axes[0], modes):
        base = ""
        for m in methods:
            res = curves.get((mode, m))
            if res is None:
                continue
            base = res.baseline
            ax.plot(res.fractions, np.nanmean(res.curves, 0), color=colours[m], lw=2,
                    ls="--" if m == reference else "-", label=f"{m} (AUC {np.nanmean(res.auc):.2f})")
        ax.set_xlabel(f"fraction of pixels {'removed' if mode == 'deletion' else 'inserted'} (most relevant first)")
        better = "lower" if mode == "deletion" else "higher"
        baseline = "zero (mean colour)" if base == "zero" else base
        ax.set_title(f"{mode.capitalize()}, baseline {baseline}: {better} AUC is better", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title="method (mean AUC)", title_fontsize=8)
    axes[0, 0].set_ylabel("probability of the explained class\n(mean over images)")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_road_curves(curves: Mapping, *, colours: Mapping | None = None, reference: str = "random",
                     title: str | None = None, spread: float = 0.015):
    """ROAD MoRF and LeRF against the fraction of pixels removed, the mean over images per method.

    ``curves`` maps a method to a :class:`~medxai_lite.metrics.RoadCurves`. Methods are shifted
    sideways by up to ``spread`` so that equal curves stay visible.
    """
    import matplotlib.pyplot as plt

    methods = list(curves)
    colours = _colours(colours, methods, reference)
    offsets = dict(zip(methods, np.linspace(-spread, spread, len(methods))))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, order in zip(axes, ("MoRF", "LeRF")):
        for m, res in curves.items():
            values = res.morf if order == "MoRF" else res.lerf
            ax.plot(res.removed + offsets[m], np.nanmean(values, 0), marker="o", color=colours[m],
                    ls="--" if m == reference else "-", label=m)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xlabel(f"fraction of pixels removed and imputed ({'most' if order == 'MoRF' else 'least'} "
                      "relevant first)")
        ax.set_title(f"ROAD {order}: " + ("a faithful map falls fast (lower is better)" if order == "MoRF"
                                          else "a faithful map stays near 0 (higher is better)"), fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("change in probability of the explained class\n(mean over images)")
    axes[1].legend(fontsize=8, title="method", title_fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def cascade_labels(layers: Sequence[str]) -> list[str]:
    """Axis labels of the cascading steps: ``"none"``, the first layer, then ``"+ layer"``."""
    layers = list(layers)
    return ["none"] + layers[:1] + [f"+ {b}" for b in layers[1:]]


def plot_randomisation_curves(table, step_labels: Sequence[str] | None = None, *, colours: Mapping | None = None,
                              title: str | None = None):
    """Similarity with the original maps as the model is randomised, per method.

    ``table``: the tidy result of :func:`~medxai_lite.metrics.cascading_randomisation_methods`
    (``step, layer, image, metric, value, method``). One panel per similarity (Spearman, SSIM);
    filled markers where the score is defined for every image, open ones where the mean leaves
    some images out. ``step_labels[j]`` names step ``j`` (default: :func:`cascade_labels` of the
    table's layers).
    """
    import matplotlib.pyplot as plt

    if step_labels is None:
        steps = table[table.step > 0].drop_duplicates("step").sort_values("step")
        step_labels = cascade_labels(steps.layer)
    names = {"spearman": "Spearman rank correlation", "ssim": "SSIM"}
    metrics = [m for m in names if m in set(table.metric)]
    methods = list(dict.fromkeys(table.method))
    colours = _colours(colours, methods, "random")
    n_images = table.image.nunique()
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.2), sharey=True, squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for m in methods:
            part = table[(table.method == m) & (table.metric == metric)].groupby("step").value
            mean, defined = part.mean(), part.count()
            ax.plot(mean.index, mean.values, color=colours.get(m), label=m)
            full = defined == n_images       # open markers: the score is undefined for some images
            ax.plot(mean.index[full], mean.values[full], "o", color=colours.get(m))
            ax.plot(mean.index[~full], mean.values[~full], "o", mfc="white", color=colours.get(m))
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(step_labels)))
        ax.set_xticklabels(step_labels, rotation=30, ha="right")
        ax.set_xlabel("layers randomised so far (from the output down)")
        ax.set_title(names[metric] + " with the original maps", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(f"similarity (mean over {n_images} images)")
    axes[0, 0].set_ylim(-1.05, 1.05)
    axes[0, -1].legend(fontsize=8, title="method (open marker: mean over\nthe images where it is defined)",
                       title_fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_randomisation_maps(image, maps: Mapping[str, Sequence], step_labels: Sequence[str], *, mask=None,
                            clip_percentile: Mapping[str, float | None] | float | None = None,
                            title: str | None = None, cmap: str = "inferno"):
    """The maps of one image at every randomisation step: a row per method, a column per step.

    ``maps[method][j]`` is the map [H, W] of step ``j`` (e.g. one image of the
    ``return_maps=True`` result of :func:`~medxai_lite.metrics.cascading_randomisation`).
    ``clip_percentile`` (one value, or one per method) saturates the top of sparse gradient maps
    (see :func:`~medxai_lite.viz.overlay`). The true lesion ``mask`` is outlined in cyan.
    """
    import matplotlib.pyplot as plt

    from .plots import overlay

    methods = list(maps)
    fig, axes = plt.subplots(len(methods), len(step_labels),
                             figsize=(1.6 * len(step_labels) + 1.4, 1.75 * len(methods) + 0.6), squeeze=False)
    for r, m in enumerate(methods):
        clip = clip_percentile.get(m) if isinstance(clip_percentile, Mapping) else clip_percentile
        for c, label in enumerate(step_labels):
            overlay(axes[r, c], image, maps[m][c], colorbar=False, mask=mask, clip_percentile=clip, cmap=cmap)
            if r == 0:
                axes[r, c].set_title(label, fontsize=9)
        axes[r, 0].set_ylabel(m, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 0.92, 1))
    cax = fig.add_axes((0.93, 0.2, 0.012, 0.6))
    clipped = clip_percentile is not None and (not isinstance(clip_percentile, Mapping)
                                               or any(v is not None for v in clip_percentile.values()))
    fig.colorbar(plt.cm.ScalarMappable(norm=plt.Normalize(0, 1), cmap=cmap), cax=cax).set_label(
        "relevance (normalised" + ("; gradient maps clipped at the 99th percentile)" if clipped else ")"),
        fontsize=8)
    return fig


def plot_timing(seconds, errors=None, *, title: str | None = None, figsize=(8, 4.5),
                xlabel: str = "seconds per image (log scale)"):
    """Horizontal bars of seconds per image, log scale: rows are methods, one bar per column
    (dataset) of ``seconds``; ``errors`` (same shape) draws whiskers."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    seconds.plot.barh(ax=ax, logx=True, xerr=errors, capsize=2 if errors is not None else 0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, title=seconds.columns.name, title_fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_mean_bars(scores, metrics: Mapping[str, str], *, z: float = 1.96):
    """Mean score per dataset and method with a ``z``-standard-error interval, one panel per metric.

    ``scores``: a tidy table with columns ``dataset, method, metric, value`` (e.g. a
    :func:`~medxai_lite.metrics.score_table` or the benchmark's ``scores``); ``metrics`` maps a
    metric to its axis label. Each dataset is a group of bars, one per method, in the order the
    table lists them; a method not scored on a dataset leaves its slot empty. The title gives the
    interval's normal coverage for ``z`` (95 % at 1.96).
    """
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    coverage = 2 * norm.cdf(z) - 1
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), 4.5), squeeze=False)
    for ax, (metric, label) in zip(axes[0], metrics.items()):
        s = scores[scores.metric == metric]
        stats = s.groupby(["dataset", "method"], sort=False)["value"].agg(["mean", "sem"]).reset_index()
        names, datasets = list(dict.fromkeys(stats["method"])), list(dict.fromkeys(stats["dataset"]))
        width = 0.8 / max(len(names), 1)
        for k, m in enumerate(names):
            part = stats[stats.method == m]
            pos = np.array([datasets.index(d) for d in part["dataset"]]) + k * width
            ax.bar(pos, part["mean"], width, yerr=z * part["sem"].fillna(0), capsize=2, label=m)
        ax.set_xticks(np.arange(len(datasets)) + 0.4 - width / 2, datasets, rotation=10)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xlabel("dataset")
        ax.set_ylabel(label)
        ax.set_title(label.split(" (")[0] + f", mean and {coverage * 100:.0f} % interval")
    axes[0, -1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_pvalue_grid(tests, *, column: str = "p_holm", floor: float = 1e-6, vmax: float = 4.0):
    """Pairwise p-values as ``-log10 p`` matrices, a panel per dataset and metric.

    ``tests``: the table of :func:`~medxai_lite.metrics.paired_tests` with ``dataset`` and
    ``metric`` columns (the benchmark's ``ttests``); ``column`` is the p-value drawn.
    """
    import matplotlib.pyplot as plt
    import pandas as pd

    datasets = list(dict.fromkeys(tests["dataset"]))
    metrics = list(dict.fromkeys(tests["metric"]))
    fig, axes = plt.subplots(len(metrics), len(datasets), figsize=(4.6 * len(datasets), 4 * len(metrics)),
                             squeeze=False)
    label = "Holm-adjusted p" if column == "p_holm" else column.replace("_", " ")
    for row, metric in zip(axes, metrics):
        for ax, d in zip(row, datasets):
            part = tests[(tests.dataset == d) & (tests.metric == metric)]
            names = list(dict.fromkeys(list(part.method_a) + list(part.method_b)))
            grid = pd.DataFrame(np.nan, index=names, columns=names)
            for _, r in part.iterrows():
                grid.loc[r.method_a, r.method_b] = grid.loc[r.method_b, r.method_a] = r[column]
            im = ax.imshow(-np.log10(grid.astype(float).clip(lower=floor)), cmap="viridis", vmin=0, vmax=vmax)
            ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
            ax.set_yticks(range(len(names)), names, fontsize=8)
            ax.set_title(f"{d}: {metric}", fontsize=10)
            plt.colorbar(im, ax=ax, fraction=0.046).set_label(f"-log10 {label}")
    fig.suptitle(f"Which methods differ? (brighter: smaller {label}; 1.3 is p = 0.05)", fontsize=11)
    fig.tight_layout()
    return fig
