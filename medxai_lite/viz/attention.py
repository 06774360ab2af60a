"""Figures of the attention chapter: the class token's attention per layer and head, and entropy per layer."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .._utils import to_numpy
from .plots import add_colorbar, outline_mask, overlay, to_display, _show

__all__ = ["plot_attention_heads", "plot_entropy_by_layer", "entropy_heatmap"]


def _cls_maps(weights, size: int) -> np.ndarray:
    """``[L, H, T, T]`` -> the class token's rows over the patch tokens, upsampled: ``[L, H, size, size]``,
    each map divided by its maximum (every token's value at the centre of its cell, bilinear between)."""
    import torch

    from ..explain.cam import upsample_registered

    w = torch.as_tensor(to_numpy(weights), dtype=torch.float32)
    rows = w[..., 0, 1:]
    side = int(round(rows.shape[-1] ** 0.5))
    flat = rows.reshape(-1, side, side)
    maps = upsample_registered(flat, (size, size), size / side, 0.0, mode="bilinear").reshape(*rows.shape[:2], size, size)
    return (maps / maps.amax((-2, -1), keepdim=True).clamp_min(1e-12)).numpy()


def plot_attention_heads(image, weights, *, mask=None, title: str | None = None, size: float = 1.7,
                         cmap: str = "inferno"):
    """One row per layer (input side at the top), one column per head plus their mean: where the
    class token looks. ``weights`` is one image's ``[L, H, T, T]`` (e.g. ``attention_weights(model,
    x)[:, i]``); each panel is scaled to its own maximum (the colour bar), so compare patterns
    across panels, not brightness. The true lesion (``mask``) is outlined."""
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    img = to_display(image)
    w = to_numpy(weights)
    n_layers, n_heads = w.shape[:2]
    maps = _cls_maps(w, img.shape[0])
    mean = _cls_maps(w.mean(1, keepdims=True), img.shape[0])[:, 0]
    cols = n_heads + 2
    fig, axes = plt.subplots(n_layers, cols, figsize=(size * cols + 0.6, (size + 0.2) * n_layers + 0.5), squeeze=False)
    for l in range(n_layers):
        _show(axes[l, 0], img)
        if mask is not None:
            outline_mask(axes[l, 0], np.asarray(mask))
        axes[l, 0].set_title("input" if l == 0 else "", fontsize=8)
        axes[l, 0].set_ylabel(f"layer {l + 1}", fontsize=9)
        axes[l, 0].set_yticks([])
        axes[l, 0].set_xticks([])
        axes[l, 0].set_axis_on()
        for h in range(n_heads):
            overlay(axes[l, h + 1], image, maps[l, h], mask=mask, cmap=cmap, colorbar=False,
                    title=f"head {h + 1}" if l == 0 else None)
        overlay(axes[l, -1], image, mean[l], mask=mask, cmap=cmap, colorbar=False,
                title="mean of heads" if l == 0 else None)
        add_colorbar(axes[l, -1], mpl.cm.ScalarMappable(norm=mpl.colors.Normalize(0, 1), cmap=cmap),
                     label="attention / max")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_entropy_by_layer(curves: Mapping[str, Mapping[str, np.ndarray]], *, title: str | None = None,
                          figsize=(8.5, 3.4)):
    """Normalised entropy against depth, one panel per dataset: ``curves[dataset][label]`` is a
    vector over layers (1 = uniform over every patch token, 0 = all attention on one token)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=figsize, sharey=True, squeeze=False)
    for ax, (dataset, lines) in zip(axes[0], curves.items()):
        for (label, values), marker in zip(lines.items(), "osd^v"):
            values = np.asarray(values)
            ax.plot(np.arange(1, len(values) + 1), values, marker=marker, label=label)
        ax.set_title(dataset, fontsize=9)
        ax.set_xlabel("layer (1 = input side)")
        ax.set_xticks(np.arange(1, len(values) + 1))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("entropy / log(number of patches)")
    axes[0, -1].legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def entropy_heatmap(table, *, title: str | None = None):
    """Interactive (plotly) heatmaps of the normalised entropy per layer and head, one per dataset:
    ``table`` has the columns ``dataset``, ``layer``, ``head``, ``normalised`` (as
    :func:`medxai_lite.explain.attention.attention_entropy` plus a dataset column)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    datasets = list(dict.fromkeys(table["dataset"]))
    fig = make_subplots(rows=1, cols=len(datasets), subplot_titles=datasets, shared_yaxes=True)
    for i, d in enumerate(datasets):
        grid = table[table.dataset == d].pivot(index="layer", columns="head", values="normalised")
        fig.add_trace(go.Heatmap(z=grid.values, x=[f"head {h}" for h in grid.columns],
                                 y=[f"layer {l}" for l in grid.index], zmin=0, zmax=1, colorscale="Viridis",
                                 colorbar=dict(title="normalised<br>entropy") if i == 0 else None,
                                 showscale=i == 0,
                                 hovertemplate="%{y}, %{x}: %{z:.3f}<extra>" + d + "</extra>"), 1, i + 1)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, height=330, margin=dict(l=40, r=20, t=70, b=30))
    return fig
