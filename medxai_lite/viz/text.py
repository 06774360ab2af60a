"""Figures of the text-based chapter: reports beside their image, one attention map per word, VQA
answers with the map the model read, and a dialogue turn by turn. Conventions as in
:mod:`medxai_lite.viz.plots` (grey modalities stay grey, cyan lesion outline, colour bars)."""
from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import numpy as np

from .plots import _show, outline_mask, overlay, to_display

__all__ = ["plot_reports", "plot_word_attention", "plot_answer_maps", "plot_dialogue"]


def _wrap(text: str, width: int) -> str:
    """Wrap each line of ``text`` at ``width`` characters, keeping its own line breaks."""
    lines = [w for line in text.split("\n") for w in (textwrap.wrap(line, width) or [""])]
    return "\n".join(lines).strip("\n") or "(empty)"


_ATTENTION_LABEL = "attention (scaled to its maximum)"


def _attention_colorbar(ax) -> None:
    import matplotlib as mpl

    from .plots import add_colorbar

    add_colorbar(ax, mpl.cm.ScalarMappable(norm=mpl.colors.Normalize(0, 1), cmap="inferno"), label=_ATTENTION_LABEL)


def plot_reports(image, reports: Mapping[str, str], *, mask=None, title: str | None = None, width: int = 72):
    """The image (lesion outlined) and, beside it, each report under its source's name
    (``reports``: e.g. ``{"reference": ..., "captioner": ...}``). Returns the figure."""
    import matplotlib.pyplot as plt

    if not reports:
        raise ValueError("reports must name at least one report")
    wrapped = {k: _wrap(v, width) for k, v in reports.items()}
    line = 11.5                                           # points per line at font size 8.5
    lines = sum(t.count("\n") + 2.3 for t in wrapped.values())
    height = max(2.4, lines * line / 72 + 0.5)
    fig, (ax, tx) = plt.subplots(1, 2, figsize=(11, height), gridspec_kw={"width_ratios": [1, 3.2]})
    _show(ax, to_display(image))
    if mask is not None:
        outline_mask(ax, np.asarray(mask))
    tx.set_axis_off()
    offset = 0.0
    for name, text in wrapped.items():
        tx.annotate(name, (0, 1), xycoords="axes fraction", xytext=(0, -offset), textcoords="offset points",
                    va="top", fontsize=8.5, fontweight="bold")
        tx.annotate(text, (0, 1), xycoords="axes fraction", xytext=(0, -offset - line), textcoords="offset points",
                    va="top", fontsize=8.5, family="monospace")
        offset += (text.count("\n") + 2.3) * line
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_word_attention(image, words: Sequence[str], maps, *, mask=None, highlight: Sequence[str] = (),
                        max_words: int = 14, ncols: int = 7, title: str | None = None, size: float = 1.55):
    """One panel per generated word: the attention map the decoder read to write it, over the
    image, lesion outlined; words in ``highlight`` get a red title. Returns the figure."""
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    maps = np.asarray(maps)
    if maps.ndim != 3 or len(maps) < len(words):
        raise ValueError(f"maps must be [T, H, W] with one map per word ({len(words)}), got shape {maps.shape}")
    keep = list(range(len(words)))
    if len(keep) > max_words:       # keep the highlighted words, then the first ones
        marked = [i for i in keep if words[i] in highlight]
        rest = [i for i in keep if i not in marked][:max(0, max_words - len(marked))]
        keep = sorted(marked[:max_words] + rest)
    nrows = int(np.ceil(len(keep) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + 0.9, size * nrows + 0.5), squeeze=False)
    for ax in axes.flat[len(keep):]:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, keep):
        overlay(ax, image, maps[i], mask=mask, colorbar=False)
        ax.set_title(words[i], fontsize=9, color="#c62828" if words[i] in highlight else "black",
                     fontweight="bold" if words[i] in highlight else "normal")
    fig.subplots_adjust(right=0.9, wspace=0.08, hspace=0.3, top=0.86 if title else 0.95)
    cax = fig.add_axes([0.92, 0.15, 0.015, 0.7])
    cb = fig.colorbar(mpl.cm.ScalarMappable(norm=mpl.colors.Normalize(0, 1), cmap="inferno"), cax=cax)
    cb.set_label(_ATTENTION_LABEL, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_answer_maps(images, maps, titles: Sequence[str], *, masks=None, suptitle: str | None = None,
                     size: float = 2.2):
    """A row of images, each with an attention map and its title (e.g. the answer and the truth)."""
    import matplotlib.pyplot as plt

    n = len(titles)
    fig, axes = plt.subplots(1, n, figsize=(size * n + 0.6, size + 0.8), squeeze=False)
    for k, ax in enumerate(axes[0]):
        overlay(ax, images[k], np.asarray(maps[k]), mask=None if masks is None else np.asarray(masks[k]),
                title=_wrap(titles[k], 30), colorbar=False)
        if k == n - 1:
            _attention_colorbar(ax)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def plot_dialogue(image, turns: Sequence[tuple], *, truths: Sequence[str] | None = None, mask=None,
                  title: str | None = None, size: float = 2.3):
    """A dialogue turn by turn: each panel shows the map the model read to answer, titled with the
    question, its answer and (``truths``) the true answer."""
    import matplotlib.pyplot as plt

    n = len(turns)
    fig, axes = plt.subplots(1, n, figsize=(size * n + 0.6, size + 1.1), squeeze=False)
    for k, (ax, (q, a, m)) in enumerate(zip(axes[0], turns)):
        label = f"Q{k + 1}: {q}\nA: {a}"
        if truths is not None:
            label += f"  (true: {truths[k]})"
        overlay(ax, image, m, mask=mask, colorbar=False, title=_wrap(label, 30))
        if k == n - 1:
            _attention_colorbar(ax)
        if truths is not None:
            ax.title.set_color("black" if a == truths[k] else "#c62828")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
