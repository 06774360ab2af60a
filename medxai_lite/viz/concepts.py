"""Figures of the concept-based chapter: true interventions, TCAV scores beside their random
counterparts, TCAV against the true effect, concept bottlenecks (an intervention, the intervention
curve, uncertainty against error, a post-hoc head's weights), ACE galleries and ConceptSHAP values.

Nothing here computes a score: the results come from :mod:`medxai_lite.concepts`. Conventions as in
:mod:`medxai_lite.viz.plots` (grey modalities stay grey, cyan lesion outline, colour bars); series
differ by marker and line style as well as colour, so the figures read in grey. Every function
returns the figure.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .plots import _show, add_colorbar, outline_mask, to_display

__all__ = ["plot_intervention_pairs", "plot_tcav", "plot_tcav_vs_effect", "plot_intervention_curve",
           "plot_cbm_intervention", "plot_uncertainty_error", "plot_concept_weights", "plot_ace_gallery",
           "plot_concept_shap", "MARKERS", "LINESTYLES"]

#: Markers and line styles of successive series (so that they differ in grey too).
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)))

_RANDOM_COLOUR = "0.55"


def _as_display(images, name: str) -> list:
    if images is None or len(images) == 0:
        raise ValueError(f"{name} must hold at least one image")
    return [to_display(x) for x in images]


# ----------------------------------------------------------------------------- interventions
def plot_intervention_pairs(low, high, concepts: Sequence[str], *, values: Sequence | None = None,
                            masks=None, title: str | None = None, size: float = 2.0):
    """One row per concept: the image rendered with the concept at its low value, at its high value,
    and the absolute pixel difference (mean over the colour channels, on the displayed 0-1 scale)
    with a colour bar.

    ``low``, ``high``: normalised image tensors ``[K, 3, H, W]`` (or display arrays); ``concepts``:
    K names; ``values``: K ``(low, high)`` pairs for the column titles (default 0 and 1);
    ``masks``: K lesion masks ``[H, W]`` outlined on the high image (None to skip). A value that is
    a string is shown as it is (e.g. ``"as drawn"`` for a concept that can only be switched off).
    """
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    lo, hi = _as_display(low, "low"), _as_display(high, "high")
    concepts = list(concepts)
    if not (len(lo) == len(hi) == len(concepts)):
        raise ValueError(f"low, high and concepts must have the same length; got {len(lo)}, {len(hi)}, {len(concepts)}")
    if any(a.shape != b.shape for a, b in zip(lo, hi)):
        raise ValueError("low and high must hold images of the same shape, pair by pair")
    values = [(0, 1)] * len(concepts) if values is None else list(values)

    def head(c, v):
        return f"do({c} = {v:g})" if isinstance(v, (int, float, np.number)) else f"{c}: {v}"

    if len(values) != len(concepts):
        raise ValueError(f"values must hold one (low, high) pair per concept ({len(concepts)}); got {len(values)}")
    diffs = [np.abs(b - a).mean(-1) for a, b in zip(lo, hi)]
    vmax = max(float(max(d.max() for d in diffs)), 1e-6)
    norm = mpl.colors.Normalize(0, vmax)
    fig, axes = plt.subplots(len(concepts), 3, figsize=(3 * size + 0.9, size * len(concepts) + 0.6), squeeze=False)
    for r, (c, a, b, d, (v0, v1)) in enumerate(zip(concepts, lo, hi, diffs, values)):
        _show(axes[r, 0], a)
        _show(axes[r, 1], b)
        if masks is not None and masks[r] is not None and np.asarray(masks[r]).any():
            outline_mask(axes[r, 1], np.asarray(masks[r]))
        axes[r, 2].imshow(d, cmap="magma", norm=norm)
        axes[r, 2].set_xticks([])
        axes[r, 2].set_yticks([])
        axes[r, 0].set_title(head(c, v0), fontsize=8)
        axes[r, 1].set_title(head(c, v1), fontsize=8)
        axes[r, 2].set_title(f"|difference|, {(d > 1 / 255).mean():.1%} of pixels", fontsize=8)
        add_colorbar(axes[r, 2], mpl.cm.ScalarMappable(norm=norm, cmap="magma"), label="|pixel difference| (0-1)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- TCAV
def _tcav_panel(ax, result, show_p: bool) -> None:
    names = list(result.concepts)
    scores = np.asarray(result.scores, dtype=float)
    rnd = np.asarray(result.random_scores, dtype=float)
    x = np.arange(len(names))
    rng = np.random.default_rng(0)
    mean, std = scores.mean(1), scores.std(1, ddof=1) if scores.shape[1] > 1 else np.zeros(len(names))
    r_mean, r_std = float(rnd.mean()), float(rnd.std(ddof=1)) if len(rnd) > 1 else 0.0
    ax.axhspan(max(0.0, r_mean - r_std), min(1.0, r_mean + r_std), color=_RANDOM_COLOUR, alpha=0.25, lw=0,
               label=f"random CAVs: mean ± std ({len(rnd)} runs)")
    ax.axhline(r_mean, color=_RANDOM_COLOUR, lw=1, ls="--")
    err = np.vstack([np.minimum(std, mean), np.minimum(std, 1 - mean)])      # whiskers kept inside [0, 1]
    ax.bar(x, mean, yerr=err, color="#4c72b0", alpha=0.85, capsize=3, label="concept: mean ± std over runs")
    for i in range(len(names)):
        ax.scatter(x[i] + rng.uniform(-0.18, 0.18, scores.shape[1]), scores[i], s=9, color="k", zorder=3,
                   label="one run (one random counterpart)" if i == 0 else None)
    xr = len(names)
    ax.scatter(xr + rng.uniform(-0.18, 0.18, len(rnd)), rnd, s=9, color=_RANDOM_COLOUR, edgecolor="k", lw=0.3,
               zorder=3)
    for i, (p, sig) in enumerate(zip(result.p_adjusted, result.significant)):
        text = ("*" if sig else "n.s.") + (f"\np={p:.2g}" if show_p else "")
        ax.text(x[i], 1.03, text, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(x) + [xr])
    ax.set_xticklabels(names + ["random"], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.22)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("TCAV score\n(share of inputs whose logit rises)", fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def plot_tcav(results, *, title: str | None = None, show_p: bool = True, size: tuple = (4.6, 3.6)):
    """TCAV scores (bars: mean over the random counterparts, whiskers: std, dots: each run) beside
    the scores of random CAVs (grey band: their mean ± std; grey dots at "random"), with the
    significance verdict above each bar (``*`` or ``n.s.`` and the adjusted p-value).

    ``results``: a :class:`~medxai_lite.concepts.TCAVResult`, or a dict ``{panel title: TCAVResult}``
    (one panel each).
    """
    import matplotlib.pyplot as plt

    from ..concepts import TCAVResult

    panels = {"": results} if isinstance(results, TCAVResult) else dict(results or {})
    if not panels or not all(isinstance(r, TCAVResult) for r in panels.values()):
        raise ValueError("results must be a TCAVResult or a non-empty dict of them")
    fig, axes = plt.subplots(1, len(panels), figsize=(size[0] * len(panels), size[1]), squeeze=False)
    for ax, (label, result) in zip(axes[0], panels.items()):
        _tcav_panel(ax, result, show_p)
        ax.set_title(label or f"class {result.target}, layer {result.layer}", fontsize=9)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def plot_tcav_vs_effect(table, *, x: str = "effect", y: str = "tcav", group: str | None = "model",
                        label: str = "concept", ci: tuple | None = ("ci_low", "ci_high"), yerr: str | None = None,
                        title: str | None = None, xlabel: str = "true causal concept effect (CaCE)",
                        ylabel: str = "TCAV score", figsize=(6.2, 4.6)):
    """Each (model, concept) pair as a point: its true effect (``x``, with the ``ci`` columns as a
    horizontal interval) against its TCAV score (``y``, ``yerr`` column as a vertical one). Groups
    (``group`` column) get their own marker; every point is labelled with its ``label`` column.
    Dashed guides: no effect (x = 0) and an indifferent TCAV score (y = 0.5).

    ``table``: a pandas DataFrame with those columns (one row per point).
    """
    import matplotlib.pyplot as plt

    need = [x, y, label] + ([group] if group else []) + (list(ci) if ci else []) + ([yerr] if yerr else [])
    missing = [c for c in need if c not in getattr(table, "columns", ())]
    if missing:
        raise ValueError(f"table must be a DataFrame with columns {need}; missing {missing}")
    if len(table) == 0:
        raise ValueError("table must hold at least one row")
    fig, ax = plt.subplots(figsize=figsize)
    groups = list(dict.fromkeys(table[group])) if group else [None]
    for g_i, g in enumerate(groups):
        rows = table[table[group] == g] if group else table
        xe = None
        if ci:
            xe = np.vstack([(rows[x] - rows[ci[0]]).clip(lower=0), (rows[ci[1]] - rows[x]).clip(lower=0)])
        ye = None
        if yerr:
            v, e = rows[y].to_numpy(dtype=float), rows[yerr].to_numpy(dtype=float)
            ye = np.vstack([np.minimum(e, v), np.minimum(e, 1 - v)]).clip(min=0)   # inside [0, 1]
        ax.errorbar(rows[x], rows[y], xerr=xe, yerr=ye, fmt=MARKERS[g_i % len(MARKERS)],
                    ms=7, capsize=2, lw=0.8, label=str(g) if g is not None else None, mfc="white" if g_i % 2 else None)
        # points that (nearly) coincide share one label, names stacked
        spots: dict = {}
        for _, r in rows.iterrows():
            spots.setdefault((round(float(r[x]) / 0.03), round(float(r[y]) / 0.08)), []).append(r)
        for members in spots.values():
            text = "\n".join(str(r[label]) for r in members)
            ax.annotate(text, (members[0][x], members[0][y]), xytext=(5, -6 if g_i % 2 else 5),
                        textcoords="offset points", fontsize=7, va="top" if g_i % 2 else "bottom")
    ax.axvline(0, color="0.5", ls="--", lw=0.8)
    ax.axhline(0.5, color="0.5", ls=":", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.05, 1.1)
    ax.grid(alpha=0.3)
    if group:
        ax.legend(fontsize=8, title=group, title_fontsize=8, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- bottlenecks
def plot_intervention_curve(curves: Mapping, *, reference: Mapping[str, float] | None = None,
                            title: str | None = None, figsize=(6.0, 4.0)):
    """Task accuracy against the number of concepts corrected per image (test-time intervention).

    ``curves``: ``{label: DataFrame with columns k and accuracy}`` (:func:`~medxai_lite.concepts.
    intervention_curve`); ``reference``: ``{label: accuracy}`` drawn as horizontal lines (e.g. the
    classifier's own accuracy on the same images).
    """
    import matplotlib.pyplot as plt

    if not curves:
        raise ValueError("curves must name at least one curve")
    fig, ax = plt.subplots(figsize=figsize)
    for i, (label, frame) in enumerate(curves.items()):
        if not {"k", "accuracy"} <= set(getattr(frame, "columns", ())):
            raise ValueError(f"curves[{label!r}] must be a DataFrame with columns k and accuracy")
        ax.plot(frame["k"], frame["accuracy"], marker=MARKERS[i % len(MARKERS)], ls=LINESTYLES[i % len(LINESTYLES)],
                ms=5, label=label)
    for j, (label, value) in enumerate((reference or {}).items()):
        ax.axhline(value, color="0.35", lw=1, ls=LINESTYLES[(j + 1) % len(LINESTYLES)], label=label)
    ax.set_xlabel("concepts corrected per image (k)")
    ax.set_ylabel("task accuracy")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_cbm_intervention(image, concept_names: Sequence[str], predicted, corrected, truth, classes: Sequence[str],
                          p_before, p_after, *, mask=None, title: str | None = None):
    """A test-time intervention on one image: the image (lesion outlined), the concepts the
    bottleneck predicted, after the correction and their true values, and the class
    probabilities before and after."""
    import matplotlib.pyplot as plt

    names = list(concept_names)
    arrays = [np.asarray(a, dtype=float).ravel() for a in (predicted, corrected, truth)]
    if not all(len(a) == len(names) for a in arrays):
        raise ValueError(f"predicted, corrected and truth must hold one value per concept ({len(names)})")
    pb, pa = np.asarray(p_before, dtype=float).ravel(), np.asarray(p_after, dtype=float).ravel()
    if len(pb) != len(classes) or len(pa) != len(classes):
        raise ValueError(f"p_before and p_after must hold one probability per class ({len(classes)})")
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.8), gridspec_kw={"width_ratios": [1, 1.6, 1.2]})
    _show(axes[0], to_display(image))
    if mask is not None and np.asarray(mask).any():
        outline_mask(axes[0], np.asarray(mask))
    axes[0].set_title("image (true lesion outlined)", fontsize=8)
    y = np.arange(len(names))
    axes[1].barh(y + 0.2, arrays[0], height=0.38, color="#dd8452", label="predicted")
    axes[1].barh(y - 0.2, arrays[1], height=0.38, color="#4c72b0", hatch="//", edgecolor="white",
                 label="after the correction")
    axes[1].scatter(arrays[2], y, marker="|", s=220, color="k", zorder=3, label="true value")
    axes[1].axvline(0.5, color="0.5", ls=":", lw=0.8)
    axes[1].set_yticks(y)
    axes[1].set_yticklabels(names, fontsize=8)
    axes[1].invert_yaxis()
    axes[1].set_xlim(0, 1.02)
    axes[1].set_xlabel("concept probability")
    axes[1].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
    axes[1].set_title("the bottleneck's concepts", fontsize=8)
    yc = np.arange(len(classes))
    axes[2].barh(yc + 0.2, pb, height=0.38, color="#dd8452", label="before")
    axes[2].barh(yc - 0.2, pa, height=0.38, color="#4c72b0", hatch="//", edgecolor="white", label="after")
    axes[2].set_yticks(yc)
    axes[2].set_yticklabels(list(classes), fontsize=8)
    axes[2].invert_yaxis()
    axes[2].set_xlim(0, 1.02)
    axes[2].set_xlabel("class probability")
    axes[2].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    axes[2].set_title("the prediction", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_uncertainty_error(tables: Mapping, *, title: str | None = None, xlabel: str = "mean uncertainty in the bin",
                           figsize=(6.0, 4.0)):
    """Error rate of concept predictions against their uncertainty, one line per ``{label: table}``
    (:func:`~medxai_lite.concepts.error_by_uncertainty`; its AUROC goes into the legend)."""
    import matplotlib.pyplot as plt

    if not tables:
        raise ValueError("tables must name at least one table")
    fig, ax = plt.subplots(figsize=figsize)
    for i, (label, frame) in enumerate(tables.items()):
        if not {"uncertainty", "error_rate"} <= set(getattr(frame, "columns", ())):
            raise ValueError(f"tables[{label!r}] must be a DataFrame with columns uncertainty and error_rate")
        auroc = frame.attrs.get("auroc", float("nan"))
        ax.plot(frame["uncertainty"], frame["error_rate"], marker=MARKERS[i % len(MARKERS)],
                ls=LINESTYLES[i % len(LINESTYLES)], label=f"{label} (AUROC {auroc:.2f})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of wrong concept predictions")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_concept_weights(weights, concept_names: Sequence[str], classes: Sequence[str], *, title: str | None = None,
                         label: str = "head weight"):
    """A linear head's weights ``[C, K]`` (rows: classes, columns: concepts) as a heat map on a
    diverging scale centred on 0, each cell annotated; exact zeros (a sparse head) are marked "0"."""
    import matplotlib.pyplot as plt

    w = np.asarray(weights, dtype=float)
    if w.shape != (len(classes), len(concept_names)):
        raise ValueError(f"weights must have shape [classes, concepts] = [{len(classes)}, {len(concept_names)}]; "
                         f"got {list(w.shape)}")
    vmax = max(float(np.abs(w).max()), 1e-6)
    fig, ax = plt.subplots(figsize=(1.1 * len(concept_names) + 2.4, 0.55 * len(classes) + 1.8))
    im = ax.imshow(w, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
    for (i, j), v in np.ndenumerate(w):
        ax.text(j, i, "0" if v == 0 else f"{v:.2f}", ha="center", va="center", fontsize=7,
                color="white" if abs(v) > 0.6 * vmax else "black")
    ax.set_xticks(range(len(concept_names)))
    ax.set_xticklabels(list(concept_names), rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)))
    ax.set_yticklabels(list(classes), fontsize=8)
    ax.set_xlabel("concept")
    ax.set_ylabel("class")
    add_colorbar(ax, im, label=label)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- discovery
def plot_ace_gallery(result, *, k: int = 6, concepts: Sequence[str] | None = None,
                     notes: Mapping[str, str] | None = None, title: str | None = None, size: float = 1.2):
    """ACE's concepts, one row each: the ``k`` segment patches nearest the cluster centre, the row
    titled with the concept's name, segments, images, TCAV score and significance (and ``notes``)."""
    import matplotlib.pyplot as plt

    chosen = [c for c in result.concepts if concepts is None or c.name in concepts]
    if not chosen:
        raise ValueError("result has no concept to show" + (f" among {list(concepts)}" if concepts else ""))
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    height = (size + 0.42) * len(chosen) + 0.8
    fig, axes = plt.subplots(len(chosen), k, figsize=(max(size * k + 0.4, 7.5), height), squeeze=False)
    for row, c in zip(axes, chosen):
        gallery = c.gallery(result, k)
        for j, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if j < len(gallery):
                _show(ax, gallery[j].astype(np.float32) / 255)
        verdict = "significant" if c.significant else "n.s."
        extra = f"; {notes[c.name]}" if notes and c.name in notes else ""
        # a row label that may be wider than its first panel: placed as text, outside the layout
        row[0].annotate(f"{c.name}: {len(c.members)} segments from {c.n_images} images, TCAV {c.tcav:.2f} "
                        f"({verdict}, p={c.p_value:.2g}){extra}", xy=(0, 1.06), xycoords="axes fraction",
                        ha="left", va="bottom", fontsize=8, annotation_clip=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.75 / height, hspace=0.45 + 0.1 * (size < 1),
                        wspace=0.06)
    return fig


def plot_concept_shap(results: Mapping, *, title: str | None = None, size: tuple = (4.4, 3.0)):
    """ConceptSHAP values, one panel per ``{label: ConceptSHAPResult}``: a horizontal bar per
    concept (its Shapley share of the completeness), with the completeness of the whole set and of
    the empty set in the panel title."""
    import matplotlib.pyplot as plt

    from ..concepts import ConceptSHAPResult

    if not results or not all(isinstance(r, ConceptSHAPResult) for r in results.values()):
        raise ValueError("results must be a non-empty dict of ConceptSHAPResult")
    fig, axes = plt.subplots(1, len(results), figsize=(size[0] * len(results), size[1]), squeeze=False, sharex=True)
    for ax, (label, r) in zip(axes[0], results.items()):
        y = np.arange(len(r.names))
        colours = ["#c44e52" if v < 0 else "#4c72b0" for v in r.shapley]
        ax.barh(y, r.shapley, color=colours)
        for yi, v in zip(y, r.shapley):
            ax.text(v, yi, f" {v:.2f}", va="center", ha="left" if v >= 0 else "right", fontsize=7)
        ax.axvline(0, color="0.3", lw=0.8)
        ax.set_yticks(y)
        ax.set_yticklabels(list(r.names), fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("ConceptSHAP value")
        ax.set_title(f"{label}\ncompleteness {r.completeness:.2f} (empty set {r.eta[()]:.2f})", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
