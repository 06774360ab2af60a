"""Figures of the example-based chapter: galleries of nearest examples and prototypes, a
counterfactual beside its difference image, CEM's pertinent positive and negative, and the most
helpful and most harmful training images of a prediction. Conventions as in
:mod:`medxai_lite.viz.plots`: grey modalities stay grey, true lesions are outlined in cyan, every
tile has a title, and every difference image has a colour bar with its unit.

Images are normalised tensors ``[3, H, W]`` (as the datasets give them) or display arrays
``[H, W, 3]``; lists of them, or tensors ``[N, 3, H, W]``, where several are drawn.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .plots import _show, add_colorbar, outline_mask, to_display

__all__ = ["plot_gallery", "plot_prototypes", "plot_counterfactuals", "plot_cem", "plot_influence",
           "plot_planted_ranking", "difference_map", "DIFFERENCE_LABEL"]

#: The unit of the difference images: summed over the colour channels, in the model's input units.
DIFFERENCE_LABEL = "|change| summed over channels\n(normalised input units)"
_DIFF_CMAP = "magma"


def _items(images, name: str) -> list:
    """A list of single images from a tensor/array [N, ...] or a sequence."""
    if images is None:
        raise ValueError(f"{name} must hold at least one image; got None")
    items = list(images)
    if not items:
        raise ValueError(f"{name} must hold at least one image; got none")
    return items


def _check_titles(titles, n: int, name: str) -> list:
    if titles is None:
        raise ValueError(f"{name} must give one title per image ({n}); got None")
    titles = list(titles)
    if len(titles) != n:
        raise ValueError(f"{name} must give one title per image ({n}); got {len(titles)}")
    return [str(t) for t in titles]


def _mask_at(masks, i):
    if masks is None:
        return None
    m = masks[i]
    if m is None:
        return None
    m = np.asarray(m.detach().cpu() if hasattr(m, "detach") else m)
    return m if m.any() else None


def _tile(ax, image, title: str, mask=None, colour: str = "black") -> None:
    _show(ax, to_display(image))
    if mask is not None:
        outline_mask(ax, mask)
    ax.set_title(title, fontsize=8, color=colour)


def difference_map(image, changed) -> np.ndarray:
    """``|changed - image|`` summed over the channel axis, float [H, W] (both ``[C, H, W]``, in the
    same units: the model's normalised input for the made images of the example-based family)."""
    a = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image, dtype=np.float64)
    b = np.asarray(changed.detach().cpu() if hasattr(changed, "detach") else changed, dtype=np.float64)
    if a.ndim != 3 or a.shape != b.shape:
        raise ValueError(f"changed must have the image's shape [C, H, W] {list(a.shape)}; got {list(b.shape)}")
    return np.abs(b - a).sum(0)


def _diff_panel(ax, diff: np.ndarray, title: str, mask=None, vmax: float | None = None):
    import matplotlib as mpl

    empty = not diff.max() > 0
    top = float(vmax if vmax is not None else (1.0 if empty else diff.max()))
    im = ax.imshow(diff, cmap=_DIFF_CMAP, norm=mpl.colors.Normalize(0, top))
    if mask is not None:
        outline_mask(ax, mask)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title + ("\n(no change at all)" if empty else ""), fontsize=8)
    add_colorbar(ax, im, label=DIFFERENCE_LABEL)


# --------------------------------------------------------------------------- galleries
def plot_gallery(queries, examples: Sequence, titles: Sequence[Sequence[str]], *, query_titles: Sequence[str],
                 masks=None, example_masks=None, title: str | None = None, size: float = 1.9,
                 highlight: Sequence[Sequence[bool]] | None = None):
    """One row per query: the query image, then its examples (nearest neighbours, prototypes, ...).

    ``queries`` [R, 3, H, W] (or a list of R images); ``examples`` a list of R lists of images
    (rows may differ in length); ``titles`` the matching titles (e.g. ``"naevus\\nd = 3.2"``);
    ``query_titles`` one per row; ``masks`` / ``example_masks`` optional lesion masks, outlined
    in cyan (the same nesting as the images); ``highlight`` optional flags that colour a tile's
    title red (e.g. a neighbour of another class than the query's prediction). Returns the figure.
    """
    import matplotlib.pyplot as plt

    queries = _items(queries, "queries")
    examples = list(examples)
    if len(examples) != len(queries):
        raise ValueError(f"examples must hold one row per query ({len(queries)}); got {len(examples)}")
    query_titles = _check_titles(query_titles, len(queries), "query_titles")
    titles = list(titles)
    if len(titles) != len(queries):
        raise ValueError(f"titles must hold one row per query ({len(queries)}); got {len(titles)}")
    rows = []
    for r, (row, row_titles) in enumerate(zip(examples, titles)):
        row = _items(row, f"examples[{r}]")
        rows.append((row, _check_titles(row_titles, len(row), f"titles[{r}]")))
    if highlight is not None and (len(highlight) != len(rows) or
                                  any(len(h) != len(row) for h, (row, _) in zip(highlight, rows))):
        raise ValueError("highlight must hold one flag per example, row by row, like titles")
    ncols = 1 + max(len(row) for row, _ in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(size * ncols, (size + 0.45) * len(rows) + 0.5),
                             squeeze=False)
    for r, (row, row_titles) in enumerate(rows):
        _tile(axes[r, 0], queries[r], query_titles[r], _mask_at(masks, r))
        for spine in axes[r, 0].spines.values():
            spine.set_edgecolor("#1565c0")
            spine.set_linewidth(2.5)
        for j in range(1, ncols):
            ax = axes[r, j]
            if j - 1 >= len(row):
                ax.set_axis_off()
                continue
            emask = None if example_masks is None else _mask_at(example_masks[r], j - 1)
            red = highlight is not None and bool(highlight[r][j - 1])
            _tile(ax, row[j - 1], row_titles[j - 1], emask, "#c62828" if red else "black")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_prototypes(images: Sequence, titles: Sequence[Sequence[str]], *, row_labels: Sequence[str], masks=None,
                    title: str | None = None, size: float = 1.9):
    """One row per dataset (or model): the picture of each class prototype (the reference image
    nearest to it), titled (e.g. class and how many references it stands for). ``images``: a list
    of rows of images; ``titles`` likewise; ``row_labels`` one per row (written on the row's first
    tile as a y-label); ``masks`` optional lesion masks in the same nesting. Returns the figure."""
    import matplotlib.pyplot as plt

    rows = list(images)
    if not rows:
        raise ValueError("images must hold at least one row of prototype pictures; got none")
    row_labels = _check_titles(row_labels, len(rows), "row_labels")
    titles = list(titles)
    if len(titles) != len(rows):
        raise ValueError(f"titles must hold one row per row of images ({len(rows)}); got {len(titles)}")
    rows = [(_items(row, f"images[{r}]"), t) for r, (row, t) in enumerate(zip(rows, titles))]
    rows = [(row, _check_titles(t, len(row), f"titles[{r}]")) for r, (row, t) in enumerate(rows)]
    ncols = max(len(row) for row, _ in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(size * ncols + 0.6, (size + 0.45) * len(rows) + 0.4),
                             squeeze=False)
    for r, (row, row_titles) in enumerate(rows):
        for j in range(ncols):
            ax = axes[r, j]
            if j >= len(row):
                ax.set_axis_off()
                continue
            mask = None if masks is None else _mask_at(masks[r], j)
            _tile(ax, row[j], row_titles[j], mask)
        axes[r, 0].set_ylabel(row_labels[r], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- made images
def plot_counterfactuals(images, counterfactuals, *, titles: Sequence[str], counterfactual_titles: Sequence[str],
                         prototypes=None, prototype_titles: Sequence[str] | None = None, masks=None,
                         title: str | None = None, size: float = 2.1):
    """One row per image: the image (lesion outlined), its counterfactual, the difference image
    :math:`\\sum_c |x_{cf} - x|` (own colour bar, in normalised input units, lesion outlined) and,
    when given, the picture of the prototype the search was pulled towards. Returns the figure."""
    import matplotlib.pyplot as plt

    images = _items(images, "images")
    counterfactuals = _items(counterfactuals, "counterfactuals")
    n = len(images)
    if len(counterfactuals) != n:
        raise ValueError(f"counterfactuals must hold one image per image ({n}); got {len(counterfactuals)}")
    titles = _check_titles(titles, n, "titles")
    counterfactual_titles = _check_titles(counterfactual_titles, n, "counterfactual_titles")
    if prototypes is not None:
        prototypes = _items(prototypes, "prototypes")
        if len(prototypes) != n:
            raise ValueError(f"prototypes must hold one picture per image ({n}); got {len(prototypes)}")
        prototype_titles = _check_titles(prototype_titles, n, "prototype_titles")
    ncols = 3 + (prototypes is not None)
    fig, axes = plt.subplots(n, ncols, figsize=(size * ncols + 1.2, (size + 0.5) * n + 0.4), squeeze=False)
    for i in range(n):
        mask = _mask_at(masks, i)
        _tile(axes[i, 0], images[i], titles[i], mask)
        _tile(axes[i, 1], counterfactuals[i], counterfactual_titles[i])
        _diff_panel(axes[i, 2], difference_map(images[i], counterfactuals[i]), "|x_cf - x|", mask)
        if prototypes is not None:
            _tile(axes[i, 3], prototypes[i], prototype_titles[i])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_cem(images, pertinent_positives, pertinent_negatives, *, titles: Sequence[str],
             pp_titles: Sequence[str], pn_titles: Sequence[str], baselines=None, masks=None,
             title: str | None = None, size: float = 2.0):
    """One row per image: the image (lesion outlined), the pertinent positive shown alone
    (:math:`b + \\delta`), what it kept (:math:`\\sum_c |\\delta|` against the baseline ``b``, colour
    bar), the image with the pertinent negative added (:math:`x + \\delta`) and what was added
    (colour bar). ``baselines``: the images :math:`b` the PP was built on (``extras["baseline"]``
    of ``cem_pp``); without them the PP's change is measured against the image. Returns the figure."""
    import matplotlib.pyplot as plt

    images = _items(images, "images")
    n = len(images)
    pp = _items(pertinent_positives, "pertinent_positives")
    pn = _items(pertinent_negatives, "pertinent_negatives")
    for name, items in (("pertinent_positives", pp), ("pertinent_negatives", pn)):
        if len(items) != n:
            raise ValueError(f"{name} must hold one image per image ({n}); got {len(items)}")
    titles = _check_titles(titles, n, "titles")
    pp_titles = _check_titles(pp_titles, n, "pp_titles")
    pn_titles = _check_titles(pn_titles, n, "pn_titles")
    if baselines is not None:
        baselines = _items(baselines, "baselines")
        if len(baselines) != n:
            raise ValueError(f"baselines must hold one image per image ({n}); got {len(baselines)}")
    fig, axes = plt.subplots(n, 5, figsize=(size * 5 + 2.2, (size + 0.55) * n + 0.4), squeeze=False)
    for i in range(n):
        mask = _mask_at(masks, i)
        _tile(axes[i, 0], images[i], titles[i], mask)
        _tile(axes[i, 1], pp[i], pp_titles[i])
        base = images[i] if baselines is None else baselines[i]
        _diff_panel(axes[i, 2], difference_map(base, pp[i]), "PP: what it keeps" if baselines is not None
                    else "PP: |PP - x|", mask)
        _tile(axes[i, 3], pn[i], pn_titles[i])
        _diff_panel(axes[i, 4], difference_map(images[i], pn[i]), "PN: what it adds", mask)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- influence
def plot_influence(query, helpful, harmful, *, query_title: str, helpful_titles: Sequence[str],
                   harmful_titles: Sequence[str], mask=None, helpful_masks=None, harmful_masks=None,
                   title: str | None = None, size: float = 1.9, highlight_harmful: Sequence[bool] | None = None,
                   highlight_helpful: Sequence[bool] | None = None):
    """The query (lesion outlined) and two rows of training images: the most helpful (proponents,
    top) and the most harmful (opponents, bottom), each titled (e.g. its training label and its
    influence score). ``highlight_*``: flags that colour a tile's title red (e.g. a planted
    mislabelled image). Returns the figure."""
    import matplotlib.pyplot as plt

    helpful = _items(helpful, "helpful")
    harmful = _items(harmful, "harmful")
    helpful_titles = _check_titles(helpful_titles, len(helpful), "helpful_titles")
    harmful_titles = _check_titles(harmful_titles, len(harmful), "harmful_titles")
    for name, flags, items in (("highlight_helpful", highlight_helpful, helpful),
                               ("highlight_harmful", highlight_harmful, harmful)):
        if flags is not None and len(flags) != len(items):
            raise ValueError(f"{name} must hold one flag per image ({len(items)}); got {len(flags)}")
    ncols = 1 + max(len(helpful), len(harmful))
    fig, axes = plt.subplots(2, ncols, figsize=(size * ncols, 2 * (size + 0.45) + 0.5), squeeze=False)
    _tile(axes[0, 0], query, str(query_title), None if mask is None else np.asarray(mask))
    axes[1, 0].set_axis_off()
    for r, (items, row_titles, masks, flags, label) in enumerate(
            ((helpful, helpful_titles, helpful_masks, highlight_helpful, "most helpful"),
             (harmful, harmful_titles, harmful_masks, highlight_harmful, "most harmful"))):
        for j in range(1, ncols):
            ax = axes[r, j]
            if j - 1 >= len(items):
                ax.set_axis_off()
                continue
            red = flags is not None and bool(flags[j - 1])
            _tile(ax, items[j - 1], row_titles[j - 1], _mask_at(masks, j - 1), "#c62828" if red else "black")
        axes[r, 1].set_ylabel(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_planted_ranking(scores, planted, *, k: int, largest: bool = True, score_label: str = "score",
                         title: str | None = None, ax=None):
    """Every item's score against its rank (rank 1: the largest score, or the smallest with
    ``largest=False``), the ``planted`` items in red, the top ``k`` shaded, and the hits and the
    chance count in the legend (:func:`medxai_lite.metrics.examples.planted_ranking`). Returns
    the figure."""
    import matplotlib.pyplot as plt

    from ..metrics.examples import planted_ranking

    result = planted_ranking(scores, planted, k, largest=largest)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores if largest else scores, kind="stable")
    ranks = np.arange(1, len(scores) + 1)
    is_planted = np.isin(order, np.asarray(planted))
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 3.4))
    else:
        fig = ax.figure
    ax.axvspan(0.5, k + 0.5, color="#fff3e0", zorder=0, label=f"top {k}")
    ax.scatter(ranks[~is_planted], scores[order][~is_planted], s=8, color="#9e9e9e", label="other training images")
    ax.scatter(ranks[is_planted], scores[order][is_planted], s=28, color="#c62828", marker="D",
               label=f"planted: {result.hits} in the top {k} (chance {result.expected:.1f}, p = {result.p_value:.1e})")
    ax.set_xlabel("rank (1 = " + ("largest" if largest else "smallest") + " score)")
    ax.set_ylabel(score_label)
    ax.legend(fontsize=7.5, loc="upper right" if largest else "lower right")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
