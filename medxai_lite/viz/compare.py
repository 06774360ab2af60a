"""Side-by-side explanation grids and the live explorer (ipywidgets, with a static fallback)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .._utils import model_device
from .plots import _show, add_colorbar, outline_mask, overlay, to_display

__all__ = ["method_grid", "explore", "explorer_figure"]


def method_grid(images, results: Mapping[str, object], masks=None, row_titles: Sequence[str] | None = None,
                cmap: str = "inferno", size: float = 1.9, title: str | None = None, max_cols: int = 8,
                clip_percentile: float | None = None):
    """For each image, the input then one panel per method in ``results``, wrapped at ``max_cols``.

    ``results`` maps a panel title to an :class:`~medxai_lite.explain.Explanation` (or an array
    ``[N,H,W]``) over the same ``images`` ``[N,3,H,W]``. True lesions (``masks`` ``[N,H,W]``) are
    outlined in cyan on every panel; each row of panels ends with the shared colour bar.
    ``clip_percentile`` (e.g. 99) makes sparse pixel attributions visible (see :func:`overlay`).
    """
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    maps = {k: np.asarray(getattr(v, "maps", v)) for k, v in results.items()}
    n = len(images)
    for k, m in maps.items():
        if m.shape[0] != n:
            raise ValueError(f"results[{k!r}] has {m.shape[0]} maps for {n} images")
    panels = 1 + len(maps)
    ncols = min(panels, max_cols)
    rows_per_image = int(np.ceil(panels / ncols))
    fig, axes = plt.subplots(n * rows_per_image, ncols, figsize=(size * ncols + 0.8, (size + 0.25) * n * rows_per_image + 0.4),
                             squeeze=False)
    norm = mpl.colors.Normalize(0, 1)
    for i in range(n):
        cells = [axes[i * rows_per_image + p // ncols, p % ncols] for p in range(rows_per_image * ncols)]
        for ax in cells[panels:]:
            ax.set_axis_off()
        mask = None if masks is None else np.asarray(masks[i])
        _show(cells[0], to_display(images[i]))
        if mask is not None:
            outline_mask(cells[0], mask)
        cells[0].set_title(f"input: {row_titles[i]}" if row_titles else f"input {i}", fontsize=8)
        for ax, (name, m) in zip(cells[1:], maps.items()):
            overlay(ax, images[i], m[i], mask=mask, cmap=cmap, colorbar=False, title=name,
                    clip_percentile=clip_percentile)
        for r in range(rows_per_image):
            add_colorbar(axes[i * rows_per_image + r, ncols - 1], mpl.cm.ScalarMappable(norm=norm, cmap=cmap),
                         label="relevance")
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
        dev = model_device(model)
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
    draw :func:`explorer_figure` for the default selection beside it. Where widgets are switched
    off (:func:`medxai_lite.book.live_widgets`: the book build, the tests) it returns a short
    Markdown note instead.
    """
    from ..book import live_widgets

    if not live_widgets():
        from IPython.display import Markdown

        return Markdown("*The interactive explorer runs in Jupyter or Colab; the page shows its "
                        "default selection as a static figure.*")
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
