"""Side-by-side explanation grids and the live explorer (ipywidgets, with a static fallback)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .plots import _show, add_colorbar, outline_mask, overlay, to_display

__all__ = ["method_grid", "explore", "explorer_figure"]


def method_grid(images, results: Mapping[str, object], masks=None, row_titles: Sequence[str] | None = None,
                cmap: str = "inferno", size: float = 1.9, title: str | None = None):
    """Rows: images; columns: the input, then one column per method in ``results``.

    ``results`` maps a column title to an :class:`~medxai_lite.explain.Explanation` (or an array
    ``[N,H,W]``) over the same ``images`` ``[N,3,H,W]``. True lesions (``masks`` ``[N,H,W]``) are
    outlined in cyan on every panel; one shared colour bar closes each row.
    """
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    maps = {k: np.asarray(getattr(v, "maps", v)) for k, v in results.items()}
    n = len(images)
    for k, m in maps.items():
        if m.shape[0] != n:
            raise ValueError(f"results[{k!r}] has {m.shape[0]} maps for {n} images")
    ncols = 1 + len(maps)
    fig, axes = plt.subplots(n, ncols, figsize=(size * ncols + 0.6, size * n + 0.5), squeeze=False)
    norm = mpl.colors.Normalize(0, 1)
    for i in range(n):
        img = to_display(images[i])
        _show(axes[i, 0], img)
        if masks is not None:
            outline_mask(axes[i, 0], np.asarray(masks[i]))
        axes[i, 0].set_ylabel(row_titles[i] if row_titles else f"image {i}", fontsize=8)
        if i == 0:
            axes[i, 0].set_title("input", fontsize=9)
        for j, (name, m) in enumerate(maps.items(), start=1):
            overlay(axes[i, j], images[i], m[i], mask=None if masks is None else np.asarray(masks[i]),
                    cmap=cmap, colorbar=False, title=name if i == 0 else None)
        add_colorbar(axes[i, -1], mpl.cm.ScalarMappable(norm=norm, cmap=cmap), label="relevance")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def explorer_figure(model, dataset, index: int, method: str, layer=None, target=None, ax=None, **options):
    """One explanation of ``dataset[index]`` drawn on ``ax``: the panel the explorer shows."""
    import matplotlib.pyplot as plt
    import torch

    from ..explain import explain

    item = dataset[index]
    x = item["image"][None]
    kwargs = dict(options)
    if layer is not None:
        kwargs["layer"] = layer
    res = explain(method, model, x, targets=None if target is None else [int(target)], **kwargs)
    with torch.no_grad():
        dev = next(model.parameters()).device
        prob = torch.softmax(model(x.to(dev)), 1)[0].cpu().numpy()
    if ax is None:
        _, ax = plt.subplots(figsize=(4.4, 4))
    t = int(res.targets[0])
    title = (f"{method}{'' if layer is None else ' @ ' + str(layer)}\n"
             f"true: {dataset.classes[item['label']]} | explained: {dataset.classes[t]} (p={prob[t]:.2f})")
    overlay(ax, item["image"], res.maps[0], mask=item.get("mask"), title=title)
    return ax, res


def explore(model, dataset, methods: Sequence[str], layers: Sequence[str] | None = None, **options):
    """A live explorer: pick the method, the image, the layer and the target class.

    Returns an ``ipywidgets.VBox``. In a static rendering (the built book) widgets cannot run;
    draw :func:`explorer_figure` for the default selection beside it.
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt

    method_w = W.Dropdown(options=list(methods), description="method")
    index_w = W.IntSlider(value=0, min=0, max=len(dataset) - 1, description="image")
    layer_w = W.Dropdown(options=["(default)"] + list(layers or []), description="layer")
    target_w = W.Dropdown(options=[("predicted", -1)] + [(c, k) for k, c in enumerate(dataset.classes)],
                          value=-1, description="target")
    out = W.Output()

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(4.6, 4.2))
            layer = None if layer_w.value == "(default)" else layer_w.value
            target = None if target_w.value < 0 else target_w.value
            try:
                explorer_figure(model, dataset, index_w.value, method_w.value, layer=layer, target=target, ax=ax,
                                **options.get(method_w.value, {}))
            except ValueError as exc:   # e.g. a method that cannot use the chosen layer
                ax.set_axis_off()
                ax.text(0.5, 0.5, str(exc), ha="center", va="center", wrap=True, fontsize=8)
            plt.show()

    for w in (method_w, index_w, layer_w, target_w):
        w.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox([method_w, layer_w]), W.HBox([index_w, target_w]), out])
