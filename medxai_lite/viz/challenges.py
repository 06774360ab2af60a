"""Figures of the challenges chapter: maps with the lesion *and* the shortcut artefact outlined,
relevance mass per region, images under modality-like corruption, map stability against strength.

Nothing here computes a score: the tables come from :mod:`medxai_lite.shortcuts` and
:mod:`medxai_lite.robustness`, the corrupted images from :mod:`medxai_lite.data.corruptions`.
The lesion is outlined in solid cyan and the artefact in dashed magenta, so the two stay apart
in print and in grey. Every function returns the figure.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .plots import _show, outline_mask, overlay, to_display

__all__ = ["ARTEFACT_COLOR", "outline_artefact", "plot_artefact_examples", "plot_shortcut_maps", "plot_region_mass", "plot_corruptions",
           "plot_stability"]

#: Outline colour of the shortcut artefact (drawn dashed; the lesion is solid cyan).
ARTEFACT_COLOR = "#ff2bd6"


def outline_artefact(ax, mask) -> None:
    """Dashed magenta outline of the artefact's pixels ``[H, W]`` (nothing when empty)."""
    from skimage import measure

    m = np.asarray(mask, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D [H, W]; got shape {m.shape}")
    for c in measure.find_contours(np.pad(m, 1), 0.5):     # padded: a region on the border closes
        ax.plot(c[:, 1] - 1, c[:, 0] - 1, color=ARTEFACT_COLOR, lw=1.1, ls=(0, (2, 1.5)))


def _legend(fig, lesion: bool, artefact: bool) -> None:
    """A legend under the figure for the two outlines (proxies, so no panel has to show both)."""
    from matplotlib.lines import Line2D

    from .plots import OUTLINE_COLOR

    handles = ([Line2D([], [], color=OUTLINE_COLOR, lw=1.2, label="lesion (true mask)")] if lesion else []) + \
              ([Line2D([], [], color=ARTEFACT_COLOR, lw=1.1, ls=(0, (2, 1.5)), label="shortcut artefact")]
               if artefact else [])
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)


def _masks(x):
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=bool)


def plot_artefact_examples(dataset, indices: Sequence[int], *, title: str | None = None, size: float = 2.1):
    """Items of a phantom ``dataset`` titled by class, lesion (cyan) and artefact (dashed magenta) outlined."""
    import matplotlib.pyplot as plt

    meta = getattr(dataset, "meta", {}) or {}
    artefact = meta.get("artefact_mask")
    indices = list(indices)
    fig, axes = plt.subplots(1, len(indices), figsize=(size * len(indices), size + 0.8), squeeze=False)
    for ax, i in zip(axes[0], indices):
        item = dataset[i]
        _show(ax, to_display(item["image"]))
        if "mask" in item:
            outline_mask(ax, item["mask"].numpy())
        if artefact is not None:
            outline_artefact(ax, artefact[i])
        carries = artefact is not None and bool(artefact[i].any())
        ax.set_title(f"{dataset.classes[item['label']]}" + (", artefact" if carries else ""), fontsize=8)
    _legend(fig, lesion=getattr(dataset, "masks", None) is not None, artefact=artefact is not None)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def _shared_colorbar(fig, cmap: str, label: str = "relevance (normalised)", right: float = 0.92) -> None:
    """One colour bar at the figure's right edge (call after ``tight_layout(rect=(..., right, ...))``)."""
    import matplotlib as mpl

    cax = fig.add_axes((right + 0.015, 0.25, 0.012, 0.5))
    fig.colorbar(mpl.cm.ScalarMappable(norm=mpl.colors.Normalize(0, 1), cmap=cmap), cax=cax).set_label(label, fontsize=8)


def plot_shortcut_maps(images, maps: Mapping[str, object], *, lesion_masks=None, artefact_masks=None,
                       row_titles: Sequence[str] | None = None, title: str | None = None, size: float = 1.9,
                       cmap: str = "inferno", clip_percentile: Mapping[str, float | None] | float | None = None):
    """Each image ``[N, 3, H, W]`` and its maps, one column per entry of ``maps`` (title -> [N, H, W]
    array or Explanation), the lesion (solid cyan) and the artefact (dashed magenta) outlined on
    every panel, one colour bar for all. ``clip_percentile`` (one value, or one per column title)
    saturates the top of sparse pixel maps (see :func:`~medxai_lite.viz.overlay`)."""
    import matplotlib.pyplot as plt

    maps = {k: np.asarray(getattr(v, "maps", v)) for k, v in maps.items()}
    lesion, artefact = _masks(lesion_masks), _masks(artefact_masks)
    n, cols = len(images), 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(size * cols + 0.9, (size + 0.3) * n + 0.7), squeeze=False)
    for i in range(n):
        _show(axes[i, 0], to_display(images[i]))
        axes[i, 0].set_title(f"input: {row_titles[i]}" if row_titles else "input", fontsize=8)
        for j, (name, m) in enumerate(maps.items(), start=1):
            clip = clip_percentile.get(name) if isinstance(clip_percentile, Mapping) else clip_percentile
            overlay(axes[i, j], images[i], m[i], colorbar=False, cmap=cmap, title=name if i == 0 else None,
                    clip_percentile=clip)
        for ax in axes[i]:
            if lesion is not None:
                outline_mask(ax, lesion[i])
            if artefact is not None:
                outline_artefact(ax, artefact[i])
    _legend(fig, lesion=lesion is not None, artefact=artefact is not None)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 0.93, 1))
    clipped = clip_percentile is not None and (not isinstance(clip_percentile, Mapping)
                                               or any(v is not None for v in clip_percentile.values()))
    _shared_colorbar(fig, cmap, "relevance (normalised" + ("; pixel maps clipped at a high percentile)"
                                                          if clipped else ")"), right=0.93)
    return fig


def plot_region_mass(summary, *, regions: Sequence[str] = ("artefact", "lesion"), title: str | None = None):
    """Grouped bars of the mean relevance mass per region, one panel per model.

    ``summary``: a DataFrame with columns ``model, method, region, mass, area`` (means over
    images, e.g. from :func:`medxai_lite.shortcuts.region_mass` tables grouped). Each region's area
    (the mass of a map that knows nothing) is drawn as a dashed line of the bar's colour.
    """
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(summary["model"]))
    methods = list(dict.fromkeys(summary["method"]))
    colours = dict(zip(regions, ("#c2185b", "#0097a7", "#7f7f7f")))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), sharey=True, squeeze=False)
    width = 0.8 / len(regions)
    for ax, model in zip(axes[0], models):
        sub = summary[summary.model == model]
        for k, region in enumerate(regions):
            rows = sub[sub.region == region].set_index("method").reindex(methods)
            x = np.arange(len(methods)) + (k - (len(regions) - 1) / 2) * width
            ax.bar(x, rows["mass"], width, color=colours.get(region), label=f"relevance on the {region}")
            ax.hlines(rows["area"], x - width / 2, x + width / 2, colors="k", linestyles="dashed", lw=1.0,
                      label="its share of the image (chance)" if k == 0 else None)
        ax.set_xticks(np.arange(len(methods)), methods, rotation=20, ha="right", fontsize=8)
        ax.set_title(model, fontsize=10)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_ylabel("share of positive relevance")
    axes[0, -1].legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_corruptions(image, corrupted: Mapping[str, Mapping[float, object]], *, maps=None, mask=None,
                     title: str | None = None, size: float = 1.8, cmap: str = "inferno"):
    """One image under every corruption and strength: a column per strength, a row per corruption.

    ``corrupted[kind][strength]`` is the corrupted image ``[3, H, W]`` (normalised). ``maps``,
    when given, has the same keys and holds the map ``[H, W]`` of each corrupted image: it is drawn
    on its own in a second row under the images (not blended over them, so that the image rows
    show the corruption alone), with one colour bar. The lesion ``mask`` is outlined in cyan.
    """
    import matplotlib.pyplot as plt

    kinds = list(corrupted)
    cols = max(len(v) for v in corrupted.values())
    per = 2 if maps is not None else 1
    fig, axes = plt.subplots(len(kinds) * per, cols,
                             figsize=(size * cols + 0.9, (size + 0.3) * len(kinds) * per + 0.5), squeeze=False)
    for r, kind in enumerate(kinds):
        for c, (strength, img) in enumerate(corrupted[kind].items()):
            ax = axes[r * per, c]
            _show(ax, to_display(img))
            if mask is not None:
                outline_mask(ax, mask)
            ax.set_title(f"{kind}, {strength:g}" if strength else "clean", fontsize=8)
            if maps is not None:
                ax = axes[r * per + 1, c]
                ax.imshow(np.asarray(maps[kind][strength]), cmap=cmap, vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if mask is not None:
                    outline_mask(ax, mask)
                ax.set_title("its map", fontsize=8)
        for row in range(per):
            for ax in axes[r * per + row, len(corrupted[kind]):]:
                ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 0.9 if maps is not None else 1, 1))
    if maps is not None:
        _shared_colorbar(fig, cmap, right=0.9)
    return fig


def plot_stability(summary, accuracy=None, *, strength_labels: Mapping[str, str] | None = None,
                   title: str | None = None, colours: Mapping[str, object] | None = None):
    """Map stability and accuracy against corruption strength: one panel per corruption.

    ``summary``: :func:`medxai_lite.robustness.stability_summary` (columns ``corruption,
    strength, method, spearman``); solid lines, one per method, give the mean Spearman
    correlation between the maps of the clean and the corrupted images. ``accuracy``:
    :func:`medxai_lite.robustness.corrupted_accuracy` (columns ``corruption, strength,
    accuracy``); the dashed black line gives the model's accuracy on the corrupted images
    (strength 0: the clean ones). ``strength_labels`` names each x axis.
    """
    import matplotlib.pyplot as plt

    from .evaluation import method_colours

    kinds = list(dict.fromkeys(summary["corruption"]))
    methods = list(dict.fromkeys(summary["method"]))
    colours = dict(colours or method_colours(methods))
    low = min(0.0, float(np.nanmin(summary["spearman"])) - 0.05)
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.6 * len(kinds), 3.5), sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        sub = summary[summary.corruption == kind]
        for m in methods:
            rows = sub[sub.method == m].sort_values("strength")
            ax.plot(rows.strength, rows.spearman, "o-", color=colours.get(m), label=f"{m}: map rank correlation")
        if accuracy is not None:
            acc = accuracy[accuracy.corruption == kind].sort_values("strength")
            ax.plot(acc.strength, acc.accuracy, "s--", color="k", label="model accuracy")
        ax.set_xlabel((strength_labels or {}).get(kind, f"{kind} strength"))
        ax.set_title(kind, fontsize=10)
        ax.set_ylim(low, 1.03)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("Spearman rho (clean vs corrupted)\nor accuracy")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig
