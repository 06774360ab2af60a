# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Perturbation methods in practice
#
# This notebook runs the eight perturbation methods of the [previous page](../book/perturbation.md)
# through `medxai_lite.explain`, which wraps lime, captum {cite}`kokhlikyan2020captum`, shap and
# torchray and implements RISE, SIDU and Anchors in a few dozen lines each. It shows what a
# "hidden" region is filled with, the maps on the three phantom modalities with the true lesion
# outlined, their scores beside a random map and the chance level, what each method costs and
# what a larger sample budget buys, and how much a map changes when only the random seed
# changes. Every number quoted in the text below comes from this run.

# %% tags=["remove-cell"]
# Colab or a fresh runtime: install medxai_lite from the book's repository when it is missing.
try:
    import medxai_lite  # noqa: F401
except ImportError:
    import subprocess
    import sys
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q",
                           "medxai_lite[explain] @ git+https://github.com/medxai-book/medxai-book"])

# %% tags=["parameters"]
# Parameters (papermill can override them). Real data: see "Run it on real data" at the end.
dataset = "phantom-brain-mri"     # the dataset of the baseline, cost and seed studies
datasets = ["phantom-brain-mri", "phantom-skin", "phantom-chest-xray"]   # grids and scores
profile = "cpu"
seed = 0
arch = "resnet14"
preset = "quick"                  # the registry's cost preset of the scored maps ("quick" or "book")
n_score = 2                       # lesion images per dataset, explained and scored
n_grid = 2                        # of which shown in the grids
book_methods = ["occlusion", "kernelshap"]   # also run at the other preset (cost against quality)
seed_methods = ["lime", "kernelshap", "rise", "occlusion"]   # seed repeatability (occlusion: control)
seeds = [0, 1, 2]
fidelity_steps = 10               # points of the deletion and insertion curves

# %%
import sys

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import plotly.io as pio
import torch
from scipy import ndimage

import medxai_lite as mx
from medxai_lite.baselines import make_baseline
from medxai_lite.explain import METHODS, explain, list_methods, methods_table
from medxai_lite.metrics import (chance_level, chance_scores, cost_quality, count_constant_maps, localisation_table,
                                 random_maps, rank_correlation, score_summary, score_table, seed_rank_correlation)
from medxai_lite.selection import lesion_images
from medxai_lite.viz import method_grid, plot_timing
from medxai_lite.viz.perturbation import plot_baselines, plot_cost_quality, plot_seed_agreement
from medxai_lite.viz.tables import registry_tables
from medxai_lite.book import chapter_timer, glue   # glue prints where no book is built (Colab)

timer = chapter_timer()   # this chapter's wall time, shown in its opening

if "google.colab" not in sys.modules:   # Colab picks its own renderer; the book needs HTML output
    pio.renderers.default = "plotly_mimetype+notebook_connected"
mx.set_seed(seed)
PERT = list_methods("Perturbation-based")
print(len(PERT), "perturbation-family methods:", ", ".join(PERT))

# %% [markdown]
# ## The registry: one knob per method, two settings
#
# Each method's cost is set by one knob (samples, masks, windows, optimisation steps), and the
# registry stores two settings of it: `quick`, for tests and this CPU build, and `book`, closer to
# the papers. The tables are read from the registry at build time: first what each method needs,
# with its original paper by first author and year (the chapter page cites each one in full),
# then the two settings of its knobs.

# %%
def knob(method: str, preset_name: str) -> str:
    return ", ".join(f"{k}={v}" for k, v in METHODS[method].presets[preset_name].items())


registry = methods_table("Perturbation-based")[["title", "library", "needs_gradients", "ref"]]
registry["quick preset"] = [knob(m, "quick") for m in registry.index]
registry["book preset"] = [knob(m, "book") for m in registry.index]
for m in PERT:
    glue(f"pert_knob_{m}", f"{knob(m, 'quick')} (quick) and {knob(m, 'book')} (book)", display=False)
registry_tables(registry, ["title", "library", "needs_gradients", "ref"], ["quick preset", "book preset"],
                captions=("What each method needs (ref: first author and year)", "The knobs of the two presets"))

# %% [markdown]
# ## The models and the images
#
# The book's default network for each phantom set (a ResNet14 at the `cpu` profile, trained once
# and then read from the cache) and the first `n_score` test images that carry a lesion.

# %%
runs = {}
for name in datasets:
    model = mx.get_trained_model(name, arch, profile, seed=seed, progress=False)
    test, batch = lesion_images(name, model, n_score, seed=seed)
    runs[name] = dict(model=model, test=test, batch=batch)
    share = chance_level(batch["mask"].numpy()).mean() if "mask" in batch else float("nan")
    print(f"{name}: {arch} at {model.report.settings['image_size']} px, test accuracy "
          f"{model.report.test['accuracy']:.3f}; {len(batch['image'])} lesion images, the lesion covers "
          f"{share:.1%} of the image on average")

# %% [markdown]
# ## What fills a hidden region
#
# Every method below hides parts of the image and watches the class score. "Hidden" means
# replaced by a reference image $b$, $h(x, m) = m \odot x + (1 - m) \odot b$, and the choice of $b$
# is part of the question the map answers. Four of the references in `medxai_lite.baselines`, on
# one lesion image of each modality:

# %%
first = {name: run["batch"] for name, run in runs.items()}
images = torch.stack([b["image"][0] for b in first.values()])
masks = np.stack([b["mask"][0].numpy() for b in first.values()]) if all("mask" in b for b in first.values()) else None
titles = [f"{name.replace('phantom-', '')}, {runs[name]['test'].classes[int(b['label'][0])]}" for name, b in first.items()]
plot_baselines(images, ("blur", "black", "mean", "noise"), masks=masks, row_titles=titles, seed=seed,
               title="The same image and the references a perturbation fills hidden pixels with")
plt.show()

# %% [markdown]
# None of these images could come out of a scanner, and each is unrealistic in its own way (the
# captions). A model trained on real scans has never seen a blurred disc, a flat grey patch or a
# field of independent Gaussian noise inside a brain, so its score on a perturbed copy measures
# two things at once: the loss of the hidden evidence and the surprise at the filling. How much
# the filling matters is easy to measure: the same occlusion run with each reference.

# %%
run = runs[dataset]
x, y = run["batch"]["image"], run["batch"]["label"]
m_true = run["batch"]["mask"].numpy() if "mask" in run["batch"] else None
by_baseline = {b: explain("occlusion", run["model"], x, y, preset=preset, seed=seed, baseline=b)
               for b in ("blur", "black", "mean", "noise")}
method_grid(x[:1], {f"occlusion, {b} fill": r.maps[:1] for b, r in by_baseline.items()},
            masks=None if m_true is None else m_true[:1], row_titles=[run["test"].classes[int(y[0])]],
            title=f"{dataset}: one occlusion map per reference image ({preset} preset)")
plt.show()
rows = []
for b, r in by_baseline.items():
    row = {"reference": b, "rank correlation with the mean fill": np.nanmean(rank_correlation(r, by_baseline["mean"]))}
    if m_true is not None:
        scored = localisation_table({b: r.maps}, m_true, chance=False)
        for metric in ("pointing game", "RMA"):
            row[metric] = scored.loc[scored.metric == metric, "value"].mean()
    rows.append(row)
baseline_scores = pd.DataFrame(rows).set_index("reference")
rho = baseline_scores["rank correlation with the mean fill"].drop("mean")
glue("pert_baseline_rho_min", float(rho.min()), display=False)
glue("pert_baseline_rho_min_name", str(rho.idxmin()), display=False)
baseline_scores.style.format("{:.2f}")

# %% [markdown]
# The map that occlusion draws depends on what the window is filled with: the least similar pair
# here, the {glue:text}`pert_baseline_rho_min_name` fill against the mean fill, has a rank
# correlation of {glue:text}`pert_baseline_rho_min:.2f` over the pixels (1 would be the same map). The rest of this
# notebook uses each method's own default reference (listed in the registry's docstrings: the
# image's mean colour for the superpixel methods and occlusion, the normalised zero for RISE and
# SIDU, a blur for extremal perturbation).
#
# ## Every method on the three modalities
#
# All eight methods at the `quick` preset, explaining the true class of each image. The cyan
# line is the true lesion. `cost_quality` runs each method once on all images of a dataset,
# records its seconds per image, and scores the maps (below). One dataset per cell keeps each
# cell well inside the build's time limit per cell.

# %%
# The first call of a library pays one-off costs (imports, set-up inside shap); one tiny call per
# method keeps them out of the seconds per image measured below.
TINY = {"lime": {"num_samples": 8}, "kernelshap": {"n_samples": 8}, "partition_shap": {"max_evals": 16},
        "occlusion": {"window": 56, "stride": 56}, "rise": {"n_masks": 8}, "anchors": {"max_samples": 16},
        "extremal_perturbation": {"iterations": 2}}
warm = runs[datasets[0]]
for m, options in TINY.items():
    if m in PERT:
        explain(m, warm["model"], warm["batch"]["image"][:1], warm["batch"]["label"][:1], **options)


def explain_dataset(name: str) -> pd.DataFrame:
    """Every method on the lesion images of one dataset: keeps the explanations in runs[name],
    draws the grid, returns the cost table."""
    run = runs[name]
    x, y = run["batch"]["image"], run["batch"]["label"]
    m_true = run["batch"]["mask"].numpy() if "mask" in run["batch"] else None
    table, results = cost_quality(PERT, run["model"], x, m_true, targets=y, presets=(preset,), seed=seed,
                                  dataset=name, return_maps=True)
    run["results"] = {m: results[(m, preset)] for m in PERT}
    method_grid(x[:n_grid], {m: r.maps[:n_grid] for m, r in run["results"].items()},
                masks=None if m_true is None else m_true[:n_grid],
                row_titles=[run["test"].classes[int(c)] for c in y[:n_grid]], max_cols=5,
                title=f"{name}: perturbation maps of a {arch} ({preset} preset)")
    plt.show()
    return table


cost_tables = [explain_dataset(datasets[0])]

# %%
for name in datasets[1:2]:        # the second dataset
    cost_tables.append(explain_dataset(name))

# %%
for name in datasets[2:]:         # the third (and any further) dataset
    cost_tables.append(explain_dataset(name))
costs = pd.concat(cost_tables, ignore_index=True)

# %% [markdown]
# ## What each method costs
#
# Seconds per image on this machine, as `explain` measured them (the method alone, not the
# scoring). Occlusion's cost grows with the number of windows, RISE's with the number of masks,
# LIME's and KernelSHAP's with the number of sampled coalitions, extremal perturbation's with its
# optimisation steps, and SIDU's with the channels of the feature layer its masks come from.

# %%
times = costs.pivot(index="method", columns="dataset", values="seconds per image")
times = times.loc[times.mean(axis=1).sort_values().index]
plot_timing(times, title=f"Perturbation-family cost on a {arch}, {mx.device()}, {preset} preset")
plt.show()
mean_seconds = times.mean(axis=1)
for m in PERT:
    glue(f"pert_s_{m}", float(mean_seconds[m]), display=False)
glue("pert_fastest", str(mean_seconds.idxmin()), display=False)
glue("pert_slowest", str(mean_seconds.idxmax()), display=False)
glue("pert_cost_ratio", float(mean_seconds.max() / mean_seconds.min()), display=False)
times.style.format("{:.2f}")

# %% [markdown]
# At the `quick` preset the cheapest method here is {glue:text}`pert_fastest` and the most
# expensive {glue:text}`pert_slowest`, {glue:text}`pert_cost_ratio:.0f` times slower per image.
# A gradient CAM needs one forward and one backward pass for the same map (the CAM chapter
# times it on the same networks).
#
# ## Scores beside a random map and the chance level
#
# Localisation: the pointing game (is the map's maximum inside the lesion? tied maxima count by
# the share that hits) and relevance mass accuracy (RMA, the share of the map's mass inside the
# lesion) {cite}`zhang2018topdown,arras2022clevr`. Fidelity: the deletion and insertion areas
# under the curve {cite}`petsiuk2018rise` (deletion: lower is better; insertion: higher is
# better). `random` is a map of uniform pixel noise on the same images; `chance` is the expected
# localisation score of such a map, the share of the image the lesion covers.

# %%
TOL = 8                          # pixels: "near the lesion" (half an occlusion window)
score_parts, near_parts = [], []
for name, run in runs.items():
    batch = run["batch"]
    if "mask" not in batch:
        print(f"{name}: no lesion masks, fidelity only")
    x, y = batch["image"], batch["label"]
    m_true = batch["mask"].numpy() if "mask" in batch else None
    maps = {m: r.maps for m, r in run["results"].items()}
    maps["random"] = random_maps(x, "pixel", seed=seed)
    if m_true is not None:
        loc = localisation_table(maps, m_true, dataset=name, model_name=arch, tolerance=TOL)
        score_parts.append(loc[loc.metric.isin(["pointing game", "RMA"])])
        # the same scores against the lesion grown by TOL pixels: is a miss near the lesion or elsewhere?
        grown = np.stack([ndimage.distance_transform_edt(~m) <= TOL for m in m_true])
        near_parts += [loc[loc.metric == f"pointing game ±{TOL} px"],
                       score_table(maps, {f"RMA ±{TOL} px": "relevance_mass_accuracy"}, masks=grown, dataset=name,
                                   quiet=True),
                       score_table({"chance": grown}, {f"RMA ±{TOL} px": chance_scores}, masks=grown, dataset=name)]
    fidelity = {"deletion AUC": ("deletion", {"steps": fidelity_steps}),
                "insertion AUC": ("insertion", {"steps": fidelity_steps})}
    score_parts.append(score_table(maps, fidelity, model=run["model"], images=x, targets=y, dataset=name,
                                   model_name=arch, quiet=True))
scores = pd.concat(score_parts, ignore_index=True)
pooled = score_summary(scores, columns=["metric"])
(pooled.style.format("{:.2f}", na_rep="")
 .background_gradient(cmap="viridis", subset=[c for c in ("pointing game", "RMA") if c in pooled.columns], vmin=0, vmax=1)
 .set_caption(f"Mean over {len(runs)} datasets x {n_score} lesion images ({preset} preset)"))

# %%
per_dataset = score_summary(scores[scores.metric == "pointing game"], columns=["dataset"])
per_dataset.style.format("{:.2f}", na_rep="").background_gradient(cmap="viridis", vmin=0, vmax=1).set_caption(
    "Pointing game per dataset")

# %% [markdown]
# Which methods do better than a random map, pooled over the three datasets? For localisation
# the comparison is with the chance level, the exact expected score of a random map (the
# `random` row is a single draw of it, and with a handful of images one draw can land far from
# its expectation). For deletion and insertion, which have no closed form, it is with the
# `random` row. The sentences below are written by the code from the table above. For a method
# that does not beat chance, the same score against the lesion grown by `TOL` pixels tells
# whether it looks near the lesion but too coarsely, or somewhere else.

# %%
# what limits the resolution of each method's map (properties of the method, not of the run)
RESOLUTION = {
    "lime": "its map has one value per superpixel",
    "kernelshap": "its map has one value per superpixel",
    "partition_shap": "its blocks are refined only as far as the budget of model calls allows",
    "occlusion": "its map is constant on blocks the size of the stride",
    "rise": "its masks are upsampled from a 7 x 7 grid",
    "sidu": "its map is the upsampling of a map on the 12 x 12 feature grid",
    "anchors": "its map is 1 on whole superpixels",
    "extremal_perturbation": "its mask covers a fixed 10 % of the image",
}
near = score_summary(pd.concat(near_parts, ignore_index=True), columns=["metric"]) if near_parts else None
NEAR = {"pointing game": f"pointing game ±{TOL} px", "RMA": f"RMA ±{TOL} px"}


def why(method: str, metric: str) -> str:
    """The reason a method misses, read off its score against the lesion grown by TOL pixels."""
    score, chance = near.loc[method, NEAR[metric]], near.loc["chance", NEAR[metric]]
    if score > chance:
        return (f"within {TOL} px of the lesion it scores {score:.2f} against a chance of {chance:.2f}, so it finds "
                f"the region but not the lesion itself: {RESOLUTION[method]}")
    return (f"even within {TOL} px of the lesion it scores {score:.2f} against a chance of {chance:.2f}: its "
            "relevance lies elsewhere in the image")


def verdicts(table: pd.DataFrame, metric: str, reference: str, higher_is_better: bool = True) -> tuple[list, list]:
    col = table[metric]
    ref = col[reference]
    better = [m for m in PERT if m in col.index and (col[m] > ref if higher_is_better else col[m] < ref)]
    return better, [m for m in PERT if m in col.index and m not in better]


def sentence(better, worse, what, metric=None):
    if not worse:
        return f"all {len(better)} methods {what}"
    if not better:
        return f"none of the {len(worse)} methods {what}"
    return (f"{len(better)} of {len(better) + len(worse)} methods {what}; "
            + "; ".join(f"{m} does not" + (f" ({why(m, metric)})" if metric else "") for m in worse))


PG_TEXT = "point at the lesion more often than chance"
RMA_TEXT = "put more of their mass on the lesion than chance"
DEL_TEXT = "make the class score fall faster than the random map when their top pixels are deleted"
INS_TEXT = "make it rise faster than the random map when their top pixels are inserted"


if "pointing game" in pooled.columns:
    pg_better, pg_worse = verdicts(pooled, "pointing game", "chance")
    rma_better, rma_worse = verdicts(pooled, "RMA", "chance")
    glue("pert_pg_sentence", sentence(pg_better, pg_worse, PG_TEXT, "pointing game"), display=False)
    glue("pert_rma_sentence", sentence(rma_better, rma_worse, RMA_TEXT, "RMA"), display=False)
    glue("pert_pg_random", float(pooled.loc["random", "pointing game"]), display=False)
    glue("pert_pg_chance", float(pooled.loc["chance", "pointing game"]), display=False)
    glue("pert_rma_chance", float(pooled.loc["chance", "RMA"]), display=False)
    best = pooled.loc[PERT, "pointing game"].idxmax()
    glue("pert_pg_best", str(best), display=False)
    glue("pert_pg_best_value", float(pooled.loc[best, "pointing game"]), display=False)
    low = {d: [m for m in PERT if m in per_dataset.index and per_dataset.loc[m, d] <= per_dataset.loc["chance", d]]
           for d in per_dataset.columns}
    low = {d: ms for d, ms in low.items() if ms}
    glue("pert_pg_dataset_sentence", "on every dataset, every method points at the lesion more often than chance"
         if not low else "on single datasets the pointing game is at or below chance for " +
         "; ".join(f"{', '.join(ms)} ({d})" for d, ms in low.items()), display=False)
    for m in PERT:
        glue(f"pert_pg_{m}", float(pooled.loc[m, "pointing game"]), display=False)
        glue(f"pert_rma_{m}", float(pooled.loc[m, "RMA"]), display=False)
    print("Pointing game:", sentence(pg_better, pg_worse, PG_TEXT, "pointing game"))
    print("RMA:", sentence(rma_better, rma_worse, RMA_TEXT, "RMA"))
del_better, del_worse = verdicts(pooled, "deletion AUC", "random", higher_is_better=False)
ins_better, ins_worse = verdicts(pooled, "insertion AUC", "random")
glue("pert_del_sentence", sentence(del_better, del_worse, DEL_TEXT), display=False)
glue("pert_ins_sentence", sentence(ins_better, ins_worse, INS_TEXT), display=False)
n_constant = sum(count_constant_maps(run["results"]["anchors"]) for run in runs.values())
glue("pert_anchor_empty", n_constant, display=False)
glue("pert_n_scored", len(runs) * n_score, display=False)
glue("pert_n_score", n_score, display=False)
print("Deletion:", sentence(del_better, del_worse, DEL_TEXT))
print("Insertion:", sentence(ins_better, ins_worse, INS_TEXT))
print(f"Anchors returned the empty anchor (a constant map, left out of the localisation means) on {n_constant} "
      f"of {len(runs) * n_score} images.")

# %% [markdown]
# In this run, pooled over {glue:text}`pert_n_scored` lesion images, a random map's peak lands
# on the lesion with probability {glue:text}`pert_pg_chance:.2f` (the chance level; the single
# random draw scored {glue:text}`pert_pg_random:.2f`), and {glue:text}`pert_pg_sentence`. By
# relevance mass, against a chance level of {glue:text}`pert_rma_chance:.2f`,
# {glue:text}`pert_rma_sentence`. The best pointing game is {glue:text}`pert_pg_best`'s,
# {glue:text}`pert_pg_best_value:.2f`. Pooling hides differences between modalities:
# {glue:text}`pert_pg_dataset_sentence` (an empty cell in the table above means that the method
# returned only constant maps on that dataset). For
# fidelity, {glue:text}`pert_del_sentence`, and {glue:text}`pert_ins_sentence`.
#
# With only {glue:text}`pert_n_score` lesion images per dataset every score here is coarse, so
# read the table for large gaps, not for the second decimal; the evaluation chapter shows how to
# test a difference.
#
# Deletion and insertion are perturbation experiments themselves (deleted pixels take the
# dataset's mean colour; inserted pixels start from a blurred copy), so they measure agreement
# with the model's response to *that* perturbation, not correctness, and they favour maps whose
# order suits it. The random map has an advantage of its own on deletion: deleting a random
# scatter of pixels sprinkles the whole image with isolated flat dots, a corruption the network
# has never seen, and the class score can collapse faster than when one compact region is
# removed. Where the random map wins on deletion, that is the likely reason; the ROAD metric of
# the evaluation chapter was designed to remove this kind of artefact {cite}`rong2022consistent`.
#
# ## Cost against quality
#
# The `book` preset spends more samples, windows or coalitions. Is it worth it? On the
# `dataset` images, the methods of `book_methods` run again at their other preset, and each
# method's two presets are joined by a line: cost on a log axis, pointing game upwards. Hover
# over a point for its RMA.

# %%
run = runs[dataset]
batch = run["batch"]
x, y = batch["image"], batch["label"]
m_true = batch["mask"].numpy() if "mask" in batch else None
other = [p for p in ("quick", "book") if p != preset]     # the preset the scoring run did not use
extra = cost_quality(book_methods, run["model"], x, m_true, targets=y, presets=other, seed=seed, dataset=dataset)
sweep = pd.concat([costs[costs.dataset == dataset], extra], ignore_index=True)
order = {"method": {m: i for i, m in enumerate(PERT)}, "preset": {"quick": 0, "book": 1}}
sweep = sweep.sort_values(["method", "preset"], key=lambda col: col.map(order[col.name])).reset_index(drop=True)
glue("pert_n_sweep", len(x), display=False)
glue("pert_dataset", dataset, display=False)
references = {}
if m_true is not None:
    references = {"random map": score_summary(scores[(scores.dataset == dataset)], columns=["metric"]).loc[
        "random", "pointing game"], "chance": float(chance_level(m_true).mean())}
fig = plot_cost_quality(sweep, references=references,
                        title=f"{dataset}: pointing game against seconds per image, quick and book presets")
fig.show()

# %%
pairs = sweep.pivot(index="method", columns="preset", values=["seconds per image", "pointing game", "RMA"])
pairs = pairs.loc[[m for m in book_methods if m in pairs.index]]
lines = []
for m in pairs.index:
    slower = pairs.loc[m, ("seconds per image", "book")] / pairs.loc[m, ("seconds per image", "quick")]
    pg_q, pg_b = pairs.loc[m, ("pointing game", "quick")], pairs.loc[m, ("pointing game", "book")]
    rma_q, rma_b = pairs.loc[m, ("RMA", "quick")], pairs.loc[m, ("RMA", "book")]
    verb = "raised" if pg_b > pg_q else ("lowered" if pg_b < pg_q else "left")
    if slower >= 1.2:
        cost = f"{slower:.1f} times the cost"
    elif slower > 1 / 1.2:
        cost = f"about the same cost ({slower:.1f} times)"
    else:   # the book preset never does less work: the machine was busy during the quick run
        cost = f"less time ({slower:.1f} times the quick preset's, a timing disturbed by other work)"
    lines.append(f"{m}: {cost} {verb} the pointing game"
                 + (f" from {pg_q:.2f} to {pg_b:.2f}" if verb != "left" else f" at {pg_q:.2f}")
                 + f" and moved RMA from {rma_q:.2f} to {rma_b:.2f}")
glue("pert_sweep_sentence", "; ".join(lines), display=False)
print("\n".join(lines))
pairs.style.format("{:.2f}")

# %% [markdown]
# In this run, on {glue:text}`pert_n_sweep` images of {glue:text}`pert_dataset`:
# {glue:text}`pert_sweep_sentence`.
# The presets change different things per method. For the sampling methods (LIME, KernelSHAP,
# RISE) the book preset draws more samples, which reduces the sampling noise of an estimate
# without changing what is estimated: a superpixel method stays at superpixel resolution however
# long it runs, so the extra cost buys localisation only where noise was what hid the lesion, and
# stability (next section, measured at the quick preset) in any case. Occlusion has no sampling
# noise: its book preset moves the same 16 px window by 8 px instead of 16, which changes the
# map's resolution and can change what it localises.
#
# ## Does the map depend on the seed?
#
# LIME and KernelSHAP sample coalitions of superpixels and RISE samples masks, so two runs that
# differ only in `seed` explain the same model, image and class with different samples. Two
# statistics compare their maps: the Spearman rank correlation over all pixels (1 the same
# ranking, 0 no relation), which also counts how the many unimportant pixels are ordered, and the
# overlap (intersection over union) of the top 5 % of pixels, which asks only whether the most
# relevant region stays. Occlusion is deterministic and serves as the control.

# %%
run = runs[dataset]
x, y = run["batch"]["image"], run["batch"]["label"]
seed_tables, seed_maps = [], {}
for m in seed_methods:
    known = {seed: run["results"][m].maps} if seed in seeds else {}   # the scored maps: no second run
    table, maps = seed_rank_correlation(m, run["model"], x, y, seeds=seeds, preset=preset, maps=known,
                                        return_maps=True)
    seed_tables.append(table)
    seed_maps[m] = maps
repeat = pd.concat(seed_tables, ignore_index=True)
plot_seed_agreement(repeat, title=f"{dataset}: agreement between seeds {seeds} ({preset} preset)")
plt.show()
agreement = repeat.groupby("method", sort=False)[["spearman", "top_overlap"]].mean()
agreement.columns = ["Spearman rho (mean)", "top 5 % IoU (mean)"]
for m in agreement.index:
    glue(f"pert_rho_{m}", float(agreement.loc[m, "Spearman rho (mean)"]), display=False)
stochastic = agreement.drop(index=[m for m in ("occlusion",) if m in agreement.index])
if len(stochastic):
    rho, iou = stochastic["Spearman rho (mean)"], stochastic["top 5 % IoU (mean)"]
    low, high = rho.idxmin(), rho.idxmax()
    text = (f"{low} agrees least with itself (rank correlation {rho[low]:.2f}, top-5 % overlap {iou[low]:.2f}) "
            f"and {high} most ({rho[high]:.2f} and {iou[high]:.2f})")
    steadier_top = [m for m in stochastic.index if iou[m] > rho[m] + 0.1]
    if steadier_top:
        text += (f"; for {', '.join(steadier_top)} the most relevant region is steadier than the ranking as a "
                 "whole, so the seed mostly reshuffles the less relevant pixels")
    if rho.min() < 0.5:
        text += (". With a rank correlation this far below 1 a map cannot be read pixel by pixel: report the seed, "
                 "average several runs, or raise the sample budget until two seeds agree")
    else:
        text += ". At this budget every sampled method keeps its ranking across seeds"
    glue("pert_seed_sentence", text, display=False)
    print(text + ".")
agreement.style.format("{:.2f}").set_caption("Agreement between the maps of two seeds, mean over images and pairs")

# %%
shown = [m for m in seed_methods if m != "occlusion"][:2]
method_grid(x[:1], {f"{m}, seed {s}": seed_maps[m][s][:1] for m in shown for s in seeds},
            masks=None if "mask" not in run["batch"] else run["batch"]["mask"].numpy()[:1], max_cols=1 + len(seeds),
            title=f"{dataset}: the same image, method and class under {len(seeds)} seeds")
plt.show()

# %% [markdown]
# In this run, at the `quick` preset, {glue:text}`pert_seed_sentence`. The check costs one extra
# run and belongs next to any perturbation map shown to a clinician.

# %% [markdown]
# ## Exercises
#
# ```{exercise-start}
# :label: pert-ex-noise
# ```
#
# Occlusion is deterministic, but it becomes random again when the occluding window is filled
# with noise. Run occlusion at the `quick` preset on the `dataset` images with the noise
# reference drawn by three seeds, `baseline=make_baseline(x, "noise", seed=s)`, and measure the
# rank correlation between the three maps with `rank_correlation`. Compare with the seed
# agreement of LIME, KernelSHAP and RISE above. What does the answer say about filling hidden
# regions with noise?
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{solution-start} pert-ex-noise
# :class: dropdown
# ```

# %%
run = runs[dataset]
x, y = run["batch"]["image"], run["batch"]["label"]
noisy = {s: explain("occlusion", run["model"], x, y, preset="quick", baseline=make_baseline(x, "noise", seed=s)).maps
         for s in seeds}
rhos = [np.nanmean(rank_correlation(noisy[a], noisy[b])) for i, a in enumerate(seeds) for b in seeds[i + 1:]]
noise_rho = float(np.mean(rhos))
lime_rho = float(agreement.loc["lime", "Spearman rho (mean)"]) if "lime" in agreement.index else float("nan")
print(f"occlusion with a noise fill, mean rank correlation between noise seeds: {noise_rho:.2f} "
      f"(LIME between sampling seeds: {lime_rho:.2f})")
print("The noise alone changes the occlusion map " + ("more" if noise_rho < lime_rho else "less")
      + " than LIME's sampling changes LIME's map in this run.")

# %% [markdown]
# The printed lines give this run's numbers. A noise fill adds a second source of randomness:
# the map now depends on which noise pattern happened to sit in each window, and the model's
# reaction to an out-of-distribution patch of noise is part of every score difference. A
# deterministic reference (mean colour, blur) removes that variance but keeps the bias of its
# own unrealistic filling; averaging over several noise draws reduces the variance at a cost
# proportional to the number of draws.
#
# ```{solution-end}
# ```
#
# ```{exercise-start}
# :label: pert-ex-ceiling
# ```
#
# At the `quick` preset occlusion slides a 16 x 16 window with a stride of 16 pixels over a
# 96 x 96 image; at the `book` preset the stride is 8. A pituitary tumour is often only a few
# pixels across at this size. Without running anything: what is the largest pointing-game score
# (tied maxima counted by the share that hits) that occlusion can reach on a lesion of 6 x 6
# pixels at each preset, however good the model? What does the answer say about comparing
# methods whose maps have different resolutions?
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{solution-start} pert-ex-ceiling
# :class: dropdown
# ```
#
# With stride 16 each pixel is covered by exactly one window, so the map is constant on 16 x 16
# blocks, and its maximum is at least a whole block of 256 pixels. At best the 36 lesion pixels
# all lie in the peak block, so the score is at most 36 / 256, about 0.14. With window 16 and
# stride 8, the map is constant on 8 x 8 cells (each covered by the same windows), so the ceiling
# is 36 / 64, about 0.56. A method with coarse maps is capped by its resolution before the
# model is even consulted; a fair comparison puts such ceilings next to the scores, as the CAM
# chapter does for bilinear maps of the feature grid. The size of the peak in this run's occlusion maps:

# %%
peak_sizes = {}
for name, r in runs.items():
    maps = r["results"]["occlusion"].maps
    peak_sizes[name] = (maps == maps.max(axis=(1, 2), keepdims=True)).sum(axis=(1, 2)).mean()
print("pixels at the maximum of the occlusion map (" + preset + " preset), mean per dataset:",
      {k: int(v) for k, v in peak_sizes.items()})

# %% [markdown]
# ```{solution-end}
# ```
#
# ## What to remember
#
# - A perturbation map answers "what happens when this region is replaced by $b$?", so the
#   reference image $b$ is part of the explanation, and no choice of $b$ looks like a real scan.
# - For the sampling methods, the sample budget buys stability and only sometimes localisation:
#   check two seeds before reading a LIME, SHAP or RISE map, and compare the presets' scores.
# - Score every map against a random map and the chance level, and at the method's own
#   resolution: superpixels, windows and bilinearly upsampled feature grids (SIDU's here) cap what
#   a map can point at.
#
# ## Run it on real data
#
# In Colab with a GPU (see [Running on real data and in Colab](../book/real_data.md)), fetch the
# datasets and set the parameters cell to:
#
# ```python
# dataset = "figshare-brain-tumor"              # tumour masks: the localisation scores work
# datasets = ["figshare-brain-tumor", "ham10000", "chest-xray-pneumonia"]
# profile = "paper"                             # 224 px, ImageNet weights
# preset = "book"                               # the papers' sample budgets
# n_score = 16
# n_grid = 2
# book_methods = ["occlusion", "kernelshap", "lime", "partition_shap", "rise", "sidu", "anchors",
#                 "extremal_perturbation"]
# seed_methods = ["lime", "kernelshap", "rise", "occlusion"]
# seeds = [0, 1, 2]
# ```
#
# `chest-xray-pneumonia` has no masks, so it contributes timings, maps and fidelity scores but no
# localisation scores. With `preset = "book"` the maps and scores use the papers' budgets and the
# cost sweep runs the `quick` preset of `book_methods` for comparison.

# %% [markdown]
# ```{bibliography}
# :filter: docname in docnames
# ```

# %% tags=["remove-input"]
timer.glue()
