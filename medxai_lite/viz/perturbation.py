"""Figures of the perturbation chapter: the reference images a perturbation fills hidden
regions with, cost against quality per preset, and the agreement of maps across seeds.

Nothing here computes a score: the tables come from :func:`medxai_lite.metrics.cost_quality`
and :func:`medxai_lite.metrics.seed_rank_correlation`; the reference images from
:func:`medxai_lite.baselines.make_baseline`. Every function returns the figure.
"""
from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import numpy as np

from .plots import _show, outline_mask, to_display

__all__ = ["BASELINE_NOTES", "AGREEMENT_LABELS", "plot_baselines", "plot_cost_quality", "plot_seed_agreement"]

#: Why no scanner produces each reference image: the caption of :func:`plot_baselines`.
BASELINE_NOTES = {
    "blur": "keeps coarse brightness but erases edges and texture; optics and reconstruction never "
            "blur one region and leave the rest sharp",
    "black": "zero signal, as outside the body; inside the body it reads as a hole, or as dark "
             "tissue (fluid, air) that then can never matter",
    "zero": "the dataset's mean colour after normalisation: a flat patch with no anatomy and no noise",
    "mean": "the image's own mean colour: a flat patch with no anatomy and none of the noise every "
            "real acquisition carries",
    "noise": "the image's mean and spread per channel, but independent pixels: no anatomy, and "
             "noise far stronger and less correlated than a scanner's",
}


def plot_baselines(images, baselines: Sequence[str] = ("blur", "black", "mean", "noise"), *, masks=None,
                   row_titles: Sequence[str] | None = None, seed: int = 0, blur_sigma: float | None = None,
                   notes: Mapping[str, str] | None = None, size: float = 2.0, title: str | None = None,
                   width: int = 34):
    """Each image ``[N, C, H, W]`` (normalised) beside its reference images, one column per
    baseline of :func:`medxai_lite.baselines.make_baseline`, with the lesion outlined (``masks``
    ``[N, H, W]``) and, under each column, why no scanner makes such an image (``notes``,
    default :data:`BASELINE_NOTES`, wrapped at ``width`` characters).

    ``seed`` draws the ``"noise"`` baseline and ``blur_sigma`` sets the ``"blur"`` one (default:
    :func:`~medxai_lite.baselines.default_blur_sigma`). Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    from ..baselines import make_baseline

    notes = BASELINE_NOTES if notes is None else notes
    refs = {b: make_baseline(images, b, blur_sigma, seed=seed) for b in baselines}
    n, cols = len(images), 1 + len(baselines)
    wrapped = {b: textwrap.fill(notes.get(b, ""), width) for b in baselines}
    lines = max([w.count("\n") + 1 for w in wrapped.values() if w] or [0])
    fig, axes = plt.subplots(n, cols, figsize=(size * cols, size * n + 0.16 * lines + 0.5), squeeze=False)
    for i in range(n):
        mask = None if masks is None else np.asarray(masks[i])
        for j, (name, image) in enumerate([("input", images[i])] + [(b, refs[b][i]) for b in baselines]):
            ax = axes[i, j]
            _show(ax, to_display(image))
            if mask is not None:
                outline_mask(ax, mask)
            label = (f"input: {row_titles[i]}" if row_titles else "input") if j == 0 else f"{name} baseline"
            ax.set_title(label, fontsize=9)
    for j, b in enumerate(baselines, start=1):
        axes[-1, j].set_xlabel(wrapped[b], fontsize=7, loc="left")
    axes[-1, 0].set_xlabel("the image as acquired", fontsize=7, loc="left")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_cost_quality(table, *, x: str = "seconds per image", y: str = "pointing game",
                      references: Mapping[str, float] | None = None, title: str | None = None,
                      hover: Sequence[str] = ("RMA", "images", "scored")):
    """Plotly scatter of quality against cost, one point per method and preset, the presets of a
    method joined by a line (cost on a log axis).

    ``table`` has columns ``method``, ``preset``, ``x`` and ``y``, as
    :func:`medxai_lite.metrics.cost_quality` returns (one dataset, or averaged over datasets
    first). ``references`` draws dashed horizontal lines, e.g. ``{"random map": 0.1, "chance":
    0.05}``. Returns the plotly figure.
    """
    import plotly.graph_objects as go

    missing = {"method", "preset", x, y} - set(table.columns)
    if missing:
        raise ValueError(f"table is missing column(s) {sorted(missing)}")
    if (table[x] <= 0).any():
        raise ValueError(f"{x} must be > 0 for a log axis")
    symbols = {"quick": "circle-open", "book": "circle"}
    hover = [h for h in hover if h in table.columns]
    fig = go.Figure()
    import plotly.express as px

    palette = px.colors.qualitative.Plotly
    for k, (method, part) in enumerate(table.groupby("method", sort=False)):
        colour = palette[k % len(palette)]
        extra = np.stack([part[h].to_numpy() for h in hover], axis=-1) if hover else None
        template = "".join(f"<br>{h}: %{{customdata[{i}]:.3g}}" for i, h in enumerate(hover))
        fig.add_trace(go.Scatter(
            x=part[x], y=part[y], mode="lines+markers+text" if len(part) > 1 else "markers+text",
            name=method, legendgroup=method, line=dict(color=colour, width=1),
            marker=dict(color=colour, size=11, symbol=[symbols.get(p, "diamond") for p in part["preset"]],
                        line=dict(width=2, color=colour)),
            text=[p for p in part["preset"]], textposition="top center", textfont=dict(size=9),
            customdata=extra,
            hovertemplate=f"<b>{method}</b> (%{{text}})<br>{x}: %{{x:.3g}}<br>{y}: %{{y:.3g}}{template}"
                          "<extra></extra>"))
    for k, (label, value) in enumerate((references or {}).items()):
        fig.add_hline(y=float(value), line_dash="dash" if k == 0 else "dot", line_color="grey",
                      annotation_text=label, annotation_position="bottom right")
    fig.update_xaxes(type="log", title_text=f"{x} (log scale)")
    fig.update_yaxes(title_text=y, range=[-0.05, 1.08] if table[y].between(0, 1).all() else None)
    fig.update_layout(title=title, legend_title_text="method (open: quick, filled: book)", height=460,
                      margin=dict(l=60, r=20, t=60 if title else 30, b=50))
    return fig


#: Axis labels of :func:`plot_seed_agreement`'s panels.
AGREEMENT_LABELS = {"spearman": "Spearman ρ between seeds (all pixels)",
                    "top_overlap": "IoU of the top pixels between seeds"}


def plot_seed_agreement(table, columns: Sequence[str] = ("spearman", "top_overlap"), *, title: str | None = None,
                        figsize=None):
    """Agreement between seeds, per method, one panel per statistic in ``columns`` (those the
    table has): one dot per image (its mean over the pairs of seeds) and a bar at the method's
    mean, from :func:`medxai_lite.metrics.seed_rank_correlation` tables (concatenated). The axes
    run up to 1 (the same map). Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    columns = [c for c in columns if c in table.columns]
    if not columns:
        raise ValueError("table has none of the columns to plot (spearman, top_overlap)")
    per_image = table.groupby(["method", "image"], sort=False)[columns].mean().reset_index()
    methods = list(dict.fromkeys(per_image["method"]))
    figsize = figsize or (3.6 * len(columns) + 0.6 * len(methods), 3.6)
    fig, axes = plt.subplots(1, len(columns), figsize=figsize, squeeze=False)
    for ax, column in zip(axes[0], columns):
        for k, m in enumerate(methods):
            values = per_image.loc[per_image.method == m, column].to_numpy()
            ax.bar(k, np.nanmean(values) if np.isfinite(values).any() else 0, color="#c6dbef", width=0.6,
                   edgecolor="#3182bd")
            jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
            ax.plot(k + jitter, values, "o", color="#08519c", ms=5)
        ax.set_xticks(range(len(methods)), methods, rotation=30 if len(methods) > 4 else 0, ha="right"
                      if len(methods) > 4 else "center")
        low = np.nanmin(per_image[column]) if np.isfinite(per_image[column]).any() else 0.0
        ax.set_ylim(min(0.0, float(low) - 0.05), 1.02)
        ax.set_ylabel(AGREEMENT_LABELS.get(column, column), fontsize=9)
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
