"""Matplotlib figures used across the book.

Conventions: grayscale modalities (MRI, X-ray) are shown in grey; heatmaps use a perceptually
uniform colour map (``inferno`` by default) blended over the image and always get a colour bar;
true lesions are outlined in cyan, which stays visible on grey, skin and heatmap colours alike.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["to_display", "outline_mask", "show_grid", "overlay", "add_colorbar", "plot_confusion", "plot_history"]

OUTLINE_COLOR = "#00e5ff"


def to_display(image) -> np.ndarray:
    """A normalised ``[3,H,W]`` tensor, or a uint8/float ``[H,W,3]`` array -> float ``[H,W,3]`` in [0,1]."""
    import torch

    if isinstance(image, torch.Tensor):
        from ..data.base import denormalize

        return denormalize(image.detach().cpu().float()).permute(1, 2, 0).numpy()
    a = np.asarray(image)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, -1)
    return np.clip(a, 0.0, 1.0)


def _is_gray(img: np.ndarray) -> bool:
    return bool(np.allclose(img[..., 0], img[..., 1], atol=1e-3) and np.allclose(img[..., 1], img[..., 2], atol=1e-3))


def outline_mask(ax, mask, color: str = OUTLINE_COLOR, lw: float = 1.2, label: str | None = None) -> None:
    """Draw the outline of a boolean mask ``[H,W]`` on ``ax`` (nothing when the mask is empty)."""
    from skimage import measure

    m = np.asarray(mask, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D [H,W], got shape {m.shape}")
    for i, c in enumerate(measure.find_contours(m, 0.5)):
        ax.plot(c[:, 1], c[:, 0], color=color, lw=lw, label=label if i == 0 else None)


def _show(ax, img):
    if _is_gray(img):
        ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img)
    ax.set_xticks([])
    ax.set_yticks([])


def show_grid(dataset, n: int = 16, ncols: int = 4, outline: bool = True, title: str | None = None,
              indices: Sequence[int] | None = None, size: float = 2.2):
    """A grid of ``n`` items of ``dataset`` titled by class, with lesion masks outlined.

    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    if n < 1 or ncols < 1:
        raise ValueError(f"n and ncols must be positive, got n={n}, ncols={ncols}")
    indices = list(range(min(n, len(dataset)))) if indices is None else list(indices)
    nrows = int(np.ceil(len(indices) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.4), squeeze=False)
    for ax in axes.flat[len(indices):]:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, indices):
        item = dataset[i]
        _show(ax, to_display(item["image"]))
        if outline and "mask" in item:
            outline_mask(ax, item["mask"].numpy())
        ax.set_title(dataset.classes[item["label"]], fontsize=9)
    fig.suptitle(title or f"{dataset.name} ({dataset.modality}, {dataset.split}): true lesion outlined in cyan",
                 fontsize=11)
    fig.tight_layout()
    return fig


def add_colorbar(ax, mappable, label: str = "relevance (normalised)"):
    """A slim colour bar beside ``ax``."""
    import matplotlib.pyplot as plt

    cb = plt.colorbar(mappable, ax=ax, fraction=0.046, pad=0.03)
    cb.set_label(label, fontsize=8)
    cb.ax.tick_params(labelsize=7)
    return cb


def overlay(ax, image, heatmap, mask=None, alpha: float = 0.6, cmap: str = "inferno", title: str | None = None,
            colorbar: bool = True, vmin: float = 0.0, vmax: float = 1.0, clip_percentile: float | None = None):
    """Blend ``heatmap`` ``[H,W]`` over ``image`` on ``ax``; outline ``mask``; add a colour bar.

    Grayscale images stay grey underneath so the anatomy remains readable; the heatmap's alpha
    grows with its value, so low relevance does not veil the image. ``clip_percentile`` (e.g.
    99) rescales the map so that its top 1 % saturates: sparse pixel attributions stay visible.
    """
    img = to_display(image)
    h = np.asarray(heatmap, dtype=float)
    if clip_percentile is not None:
        top = np.percentile(h, clip_percentile)
        h = np.clip(h / top, 0, 1) if top > 0 else h
    if h.shape != img.shape[:2]:
        raise ValueError(f"heatmap shape {h.shape} does not match the image size {img.shape[:2]}")
    _show(ax, img)
    import matplotlib as mpl

    norm = mpl.colors.Normalize(vmin=vmin, vmax=vmax)
    rgba = mpl.colormaps[cmap](norm(h))
    rgba[..., 3] = alpha * np.clip(norm(h), 0, 1) ** 0.7
    ax.imshow(rgba)
    if mask is not None:
        outline_mask(ax, np.asarray(mask))
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        add_colorbar(ax, mpl.cm.ScalarMappable(norm=norm, cmap=cmap))
    return ax


def plot_confusion(ax, confusion, classes, title: str | None = None, normalise: bool = True):
    """A confusion matrix (rows: true class, columns: predicted), with counts in the cells."""
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion, dtype=float)
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalise else cm
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalise else None)
    ax.set_xticks(range(len(classes)), classes, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for (r, c), v in np.ndenumerate(cm):
        ax.text(c, r, f"{int(v)}", ha="center", va="center", fontsize=8,
                color="white" if shown[r, c] > 0.6 else "black")
    if title:
        ax.set_title(title, fontsize=10)
    plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label("row fraction" if normalise else "count", fontsize=8)
    return ax


def plot_history(ax, history, title: str | None = None):
    """Training loss, validation loss and validation macro-F1 per epoch."""
    ep = [h["epoch"] for h in history]
    ax.plot(ep, [h["train_loss"] for h in history], "o-", label="train loss")
    ax.plot(ep, [h["val_loss"] for h in history], "s-", label="val loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax2 = ax.twinx()
    ax2.plot(ep, [h["val_macro_f1"] for h in history], "^-", color="tab:green", label="val macro-F1")
    ax2.set_ylabel("macro-F1")
    ax2.set_ylim(0, 1.02)
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [l.get_label() for l in lines], fontsize=8, loc="center right")
    if title:
        ax.set_title(title, fontsize=10)
    return ax
