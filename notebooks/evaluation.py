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
# # Evaluation metrics in practice
#
# This notebook computes the metrics of the [previous page](../book/evaluation.md) with
# `medxai_lite.metrics`. The phantom images come with their true lesion masks, so the
# localisation metrics are scored against real ground truth rather than a clinician's sketch.
# In order: the metric registry; relevance mass accuracy, relevance rank accuracy and the
# pointing game for five methods on the three phantom modalities; deletion and insertion
# curves; ROAD in both orders; the two readings of "confidence increase"; the cascading
# randomisation test of Adebayo et al. {cite}`adebayo2018sanity`; and paired t-tests that ask
# whether the differences between methods are larger than the noise of a small test set.

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
# Parameters (papermill can override them). Real data: see "Running on real data and in Colab".
dataset = "phantom-brain-mri"     # the dataset of the fidelity, confidence and sanity sections
datasets = ["phantom-brain-mri", "phantom-skin", "phantom-chest-xray"]   # the localisation table
profile = "cpu"
seed = 0
arch = "resnet14"
n_images = 8                      # lesion-bearing test images per dataset (localisation, t-tests)
n_fidelity = 8                    # images of the deletion / insertion curves and confidence change
n_road = 8                        # images of the ROAD curves (each removal solves a sparse system)
n_sanity = 4                      # images of the randomisation test
steps = 16                        # perturbation steps of the deletion / insertion curves
road_percentiles = (20, 50, 80)   # ROAD keeps this share (%) of the pixels at each step
# the methods compared; "scorecam" can be added, at about 3-5 s per image on a 2-core CPU
methods = ["gradcam", "layercam", "integrated_gradients", "saliency", "guided_backprop"]
fidelity_methods = ["gradcam", "integrated_gradients", "saliency"]
sanity_methods = ["gradcam", "saliency", "guided_backprop", "integrated_gradients"]
randomisation_threshold = 0.5     # mean Spearman at or above this after full randomisation: the method fails
n_randomisation = 2               # images of the every-method randomisation table
sanity_skip = ["xrai"]            # XRAI's segmentation dominates its cost; see the gradient chapter
method_options = {"integrated_gradients": {"n_steps": 16}, "scorecam": {"batch_size": 128}}

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

import medxai_lite as mx
from medxai_lite.explain import METHODS, list_methods
from medxai_lite.explain.registry import short_reference
from medxai_lite.metrics import (
    cascade_summary, cascading_randomisation_methods, count_constant_maps, curve_summary, localisation_table,
    metrics_table, paired_tests, perturbation_curves, pointing_game, random_maps, road_curves,
    score_runs, score_summary, score_table, wide_scores,
)
from medxai_lite.selection import explain_lesions
from medxai_lite.viz import (cascade_labels, method_colours, plot_perturbation_curves, plot_randomisation_curves,
                             plot_randomisation_maps, plot_road_curves, plot_score_heatmap, style_verdicts)
from medxai_lite.viz.tables import split_table
from medxai_lite.book import chapter_timer, glue

timer = chapter_timer()   # this chapter's wall time, shown in its opening

mx.set_seed(seed)
methods = [m for m in methods if METHODS[m].supports(arch)]
COLOURS = method_colours(methods)         # one colour per method, grey for the random reference


# %% [markdown]
# ## The metrics in the package
#
# Every metric is a plain function over a batch that returns one score per image, and records
# whether a higher score is better and which family it belongs to. Localisation metrics need
# the true masks; fidelity metrics need the model; the sanity metric needs the explainer itself,
# since it reruns it on a damaged copy of the model. The reference is the paper by first author
# and year (cited in full on the chapter page). Confidence change and confidence increase come
# from pytorch-grad-cam's `CamMultImageConfidenceChange` and `IncreaseInConfidence`, the three
# ROAD scores from its `ROADMostRelevantFirst`, `ROADLeastRelevantFirst` and `ROADCombined`.

# %%
registry = metrics_table()
registry.assign(reference=registry.reference.map(short_reference)).set_index("name").rename(
    columns=lambda c: c.replace("_", " "))

# %% [markdown]
# ## Localisation against the true lesion
#
# For each dataset: the default ResNet14 (trained once, then read from the cache), `n_images` test images
# that contain a lesion, and each method explaining the **true** class. Each map is scored with
# relevance mass accuracy (RMA) and relevance rank accuracy (RRA) {cite}`arras2022clevr`, and
# with the pointing game {cite}`zhang2018topdown`, once strictly and once with the tolerance of
# the original paper (15 px at 224 px, scaled to the image size). The row `chance` is the
# expected score of a random map: for RMA, RRA and the strict pointing game the share of the image
# that the lesion covers, and for the tolerant pointing game the share covered by the lesion grown
# by the tolerance (a peak anywhere in that band counts as a hit). That is the number to beat.

# %%
# dataset -> model, test set, lesion batch and maps per method (the fidelity dataset too, if it is not among them)
runs = {name: explain_lesions(name, methods, arch=arch, profile=profile, seed=seed, method_options=method_options,
                              n=n_images if name in datasets else max(n_fidelity, n_road, n_sanity))
        for name in dict.fromkeys([*datasets, dataset])}
loc = []                 # tidy score tables
for name in datasets:
    batch, maps = runs[name]["batch"], runs[name]["maps"]
    if "mask" not in batch:
        print(f"{name}: no lesion masks, so the localisation metrics are skipped for it")
        continue
    # RMA, RRA, the pointing game strict and with Zhang et al.'s tolerance, and the chance row
    loc.append(localisation_table(maps, batch["mask"].numpy(), dataset=name, model_name=arch))
    for method, m in maps.items():   # scored NaN and left out of the means; one line instead of warnings
        if count_constant_maps(m):
            print(f"{name}, {method}: {count_constant_maps(m)} of {len(m)} maps are constant "
                  "(no positive relevance, no peak): scored NaN and left out of the means")

loc = pd.concat(loc, ignore_index=True) if loc else pd.DataFrame()
if loc.empty:
    print("No dataset with masks: nothing to localise against.")
else:
    summary = score_summary(loc)       # mean per method (rows) and per dataset and metric (columns)
    display(split_table(summary, lambda part: part.style.format("{:.2f}").background_gradient(
        cmap="viridis", vmin=0, vmax=1), level="dataset"))     # one table per dataset

# %% [markdown]
# The same table as a heatmap: rows are methods, columns the metric on each dataset.

# %%
if not loc.empty:
    plot_score_heatmap(summary, label="mean score over lesion images\n(higher is better, 1 = perfect)",
                       title=f"Localisation against the true masks ({arch}, {n_images} images per dataset)")
    plt.show()

# %% [markdown]
# Three things to look for. First, a CAM of the last block can only be as sharp as that block's
# grid: upsampled bilinearly, its maximum always sits on a cell centre, so a lesion that contains
# no cell centre cannot be hit in the strict pointing game however good the network (an edge
# centre shares its peak with the clamped block out to the border, so it counts only in part).
# The book upsamples bicubically, which lets the peak fall between two cells that fire together
# (see the CAM chapter), so that bilinear ceiling is a reference here, not a bound. The cell below
# measures it on these images (`metrics.pointing_ceiling`) beside Grad-CAM's score and the chance
# level. Second, the two scores ask different things: a single sharp peak
# on the lesion is all the pointing game asks for, whereas RMA counts every speck of relevance
# elsewhere in the image, so a method can rank high on one and low on the other; compare a
# method's rows across the two columns of each dataset. Third, always read a score against the
# `chance` row.

# %%
from medxai_lite.metrics import cam_pointing_ceiling

for name in datasets:
    run = runs[name]
    if "mask" in run["batch"] and "gradcam" in run["maps"]:
        masks = run["batch"]["mask"].numpy()
        (h, w), ceiling = cam_pointing_ceiling(masks, run["model"], arch)
        pg = np.nanmean(pointing_game(None, run["batch"]["image"], None, run["maps"]["gradcam"], masks))
        print(f"{name}: Grad-CAM reads a {h} x {w} grid ({masks.shape[-1] / h:.0f} px cells); strict pointing game "
              f"{pg:.2f}, bilinear ceiling for that grid {ceiling.mean():.2f}, chance {masks.mean():.2f}")

# %% [markdown]
# ## Deletion and insertion
#
# The `n_fidelity` first images of `dataset`. **Deletion** {cite}`petsiuk2018rise` replaces the
# most relevant pixels first with the baseline `"zero"` (in the model's normalised input space
# this is the dataset's mean colour); **insertion** starts from a blurred copy and copies the
# most relevant pixels back first. The y-axis is the softmax probability of the explained class.
# A uniform-noise map (grey) orders the pixels at random and gives the reference curves.
# AOPC {cite}`samek2017evaluating` is read off the same deletion curves: the mean drop from the
# starting score over all steps, which is what `medxai_lite.metrics.aopc` returns per image.

# %%
run = runs[dataset]
model, batch = run["model"], run["batch"]
x, t = batch["image"][:n_fidelity], batch["label"][:n_fidelity]
fid_maps = {m: run["maps"][m][:n_fidelity] for m in fidelity_methods if m in run["maps"]}
fid_maps["random"] = random_maps(x, grid="pixel", seed=seed)     # uniform noise at every pixel

curves = {(mode, m): perturbation_curves(model, x, t, maps, mode=mode, steps=steps,
                                         baseline="zero" if mode == "deletion" else "blur")
          for mode in ("deletion", "insertion") for m, maps in fid_maps.items()}
plot_perturbation_curves(curves, colours=COLOURS, title=f"{dataset}, {arch}, {len(x)} images, {steps} steps")
plt.show()

fid_summary = curve_summary(curves)      # mean AUCs, and AOPC read off the deletion curves
better_than_random = {                   # per column: the methods that beat the random map's mean
    col: [m for m in fid_summary.index if m != "random" and (fid_summary.loc[m, col] < fid_summary.loc["random", col]
                                                            if "lower" in col else
                                                            fid_summary.loc[m, col] > fid_summary.loc["random", col])]
    for col in fid_summary.columns}
n_methods = len(fid_summary.index) - 1
glue("eval_fid_vs_random", "; ".join(f"{col.split(' (')[0]}: {len(ms)} of {n_methods} methods beat it"
                                     + (f" ({', '.join(ms)})" if 0 < len(ms) < n_methods else "")
                                     for col, ms in better_than_random.items()), display=False)
losers = any(len(ms) < n_methods for ms in better_than_random.values())
glue("eval_fid_reading", (
    "Where a method does not beat the random ordering, the curve is not telling its map's quality: removing "
    "scattered random pixels damages the texture of the whole image at once, an input unlike any the model was "
    "trained on, which a small model can react to more than to losing one compact region, even the lesion. ROAD, "
    "next, replaces removed pixels by an imputation from their neighbours to reduce that artefact and the "
    "information the removed region's shape leaks; whether it succeeds here is in its table") if losers else
    "Every method beats the random ordering on every one of these scores here", display=False)
fid_summary.style.format("{:.3f}")

# %% [markdown]
# Against the random map: {glue:text}`eval_fid_vs_random`. {glue:text}`eval_fid_reading`.

# %% [markdown]
# Look at the ends of the curves as well as at the areas. The deletion curve ends at the
# probability the model gives to an image that is nothing but baseline, and the insertion curve
# starts at the probability of the blurred image: neither is zero in general, and a model that
# assigns a class to the blank canvas shifts every method's AUC by the same amount. The second
# exercise below shows that the baseline can even change the ranking.

# %%
ends = pd.DataFrame({"probability of the all-baseline image (deletion end)":
                     curves[("deletion", "random")].curves[:, -1],
                     "probability of the blurred image (insertion start)":
                     curves[("insertion", "random")].curves[:, 0]},
                    index=[f"{run['test'].classes[int(c)]} {i}" for i, c in enumerate(t)])
ends.style.format("{:.2f}")

# %% [markdown]
# ## ROAD: most and least relevant first, without the leak
#
# ROAD {cite}`rong2022consistent` (through pytorch-grad-cam {cite}`gildenblat2021pytorchgradcam`)
# fills removed pixels by noisy linear imputation from their neighbours instead of a constant,
# so that the shape of the removed region no longer tells the model anything. At each percentile
# `p` it keeps `p` % of the pixels: MoRF removes the most relevant rest, LeRF the least relevant
# rest. The score is the change of the class probability; a faithful map makes MoRF fall (left
# panel) and LeRF stay near zero (right panel); the dashed grey line in each panel is the random
# map. Combined ROAD is
# $(\mathrm{LeRF} - \mathrm{MoRF})/2$ averaged over the percentiles.

# %%
xr, tr = x[:n_road], t[:n_road]
road = {m: road_curves(model, xr, tr, maps[:n_road], percentiles=road_percentiles) for m, maps in fid_maps.items()}
plot_road_curves(road, colours=COLOURS, title=f"ROAD on {dataset}, {arch}, {len(xr)} images")
plt.show()

road_table = pd.DataFrame({m: {"MoRF": np.nanmean(r.morf), "LeRF": np.nanmean(r.lerf)} for m, r in road.items()}).T
road_table["combined (higher is better)"] = (road_table["LeRF"] - road_table["MoRF"]) / 2
road_table.rename_axis(index="method", columns="order").style.format("{:.3f}")

# %% [markdown]
# ## Confidence change and confidence increase
#
# Chaddad et al. {cite}`chaddad2025overview` report a "confidence increase" per method (for
# example 0.12 for XGradCAM on glioma) without saying which of two quantities it is. Both
# multiply the normalised image by the map in [0, 1] and rerun the model: **reading 1** averages
# the change of the class probability over images (pytorch-grad-cam's
# `CamMultImageConfidenceChange`); **reading 2** counts the share of images whose probability
# goes up (its `IncreaseInConfidence`, the "increase in confidence" of Grad-CAM++
# {cite}`chattopadhay2018gradcam`). The same maps give quite different numbers.

# %%
readings = {"reading 1: mean change": "confidence_change", "reading 2: share that rises": "confidence_increase"}
# the first n_fidelity images of each dataset, every method and a pixel-noise map, for the true class
conf = score_runs({d: runs[d] for d in datasets}, readings, n=n_fidelity, random_seed=seed, model_name=arch)
score_summary(conf).rename_axis(columns=["dataset", None]).style.format("{:.2f}")   # mean over images

# %% [markdown]
# Two lessons. First, the same maps give very different numbers under the two readings, so a
# published "confidence increase" cannot be compared with another one unless the reading, the
# score (probability or logit) and the map scaling are stated. Second, multiplying a
# *normalised* image by a map pushes every pixel with low relevance to zero, that is to the
# dataset's mean colour. Where most of a map is near zero, as for the sparse gradient maps,
# every method produces nearly the same almost-blank image and the metric mostly reports what
# the model thinks of a blank image: on the brain phantom, where the blank image is read as a
# meningioma, all methods can end up with identical scores. A model that already gives its
# class a probability near 1, as these small models mostly do, has moreover little room to gain,
# and reading 2 counts a gain of 0.001 as a full success, so a map can score a sizeable share of
# "increases" while its mean change is near zero or negative: read the random map's two
# readings in the table side by side.
#
# ## Sanity check: cascading randomisation
#
# Following Adebayo et al. {cite}`adebayo2018sanity`, a copy of the model is damaged from the
# output towards the input: first the classifier is re-initialised, then the last residual
# stage as well, and so on down to the first convolution. After each step the maps of the
# same images are recomputed and compared with the original maps by Spearman rank correlation
# and by SSIM {cite}`wang2004image`. A method that explains *this model* should lose its
# similarity quickly; a method whose maps stay put is showing something about the image (edges,
# contrast), not about what the network learnt. The BatchNorm layers are left alone, as in the
# package's default.

# %%
xs, ts = batch["image"][:n_sanity], batch["label"][:n_sanity]
# the architecture's blocks from the output down (its spec in the model zoo)
blocks = list(mx.models.arch_spec(arch).blocks)

# sanity_maps[method][step]: the maps after that step (0: the untouched copy)
sanity, sanity_maps = cascading_randomisation_methods(model, xs, ts, sanity_methods, layers=blocks, seed=seed,
                                                      method_options=method_options, return_maps=True)
plot_randomisation_curves(sanity, colours=COLOURS, title=f"Cascading randomisation of a {arch} on {dataset}: "
                                                         "a method that passes falls towards 0")
plt.show()

# %% [markdown]
# A CAM can become entirely zero once the classifier is random (no channel speaks *for* the
# class any more; the table after the maps below counts such maps, in its last column). Rank
# correlation is undefined for a constant map, so where that happens the Spearman curve averages only the images where
# it is defined (drawn with an open marker) and can jump; SSIM treats the empty map as all
# zeros. The maps of the first image along the way (columns: layers
# randomised so far; the true lesion outlined in cyan):

# %%
plot_randomisation_maps(xs[0], {m: [step[0] for step in sanity_maps[m]] for m in sanity_methods},
                        cascade_labels(blocks),
                        mask=batch["mask"][0].numpy() if "mask" in batch else None,
                        clip_percentile={m: None if METHODS[m].family == "CAM-based" else 99 for m in sanity_methods},
                        title="Maps of one image as the model is randomised from the output down")
plt.show()

# %%
last = cascade_summary(sanity, sanity_maps)      # mean similarity after the last step, and the constant maps
last.style.format("{:.2f}", subset=list(last.columns[:2]))

# %% [markdown]
# ### Every method of the registry, model randomised
#
# The same check for every visual method the package offers, at the model's own resolution:
# each method explains `n_randomisation` images on the trained network and on a copy whose every
# weight layer is re-initialised (the last step of the cascading test). A mean Spearman rank
# correlation of at least `randomisation_threshold` between the two sets of maps marks the
# method as failing: its maps do not depend on what the network learnt. Adebayo et al.
# {cite}`adebayo2018sanity` found Guided Backprop and Guided Grad-CAM insensitive in this way;
# the table says what this run finds. Every method of the CAM and gradient families runs at
# its registry's "quick" preset (fewer samples or steps, larger batches).

# %%
from medxai_lite.metrics import model_randomisation_table

every_method = [m for m in list_methods() if m not in sanity_skip and METHODS[m].supports(arch)
                and METHODS[m].family in ("CAM-based", "Gradient-based")]
randomisation = model_randomisation_table(model, xs[:n_randomisation], ts[:n_randomisation], every_method,
                                          method_options={m: dict(METHODS[m].presets["quick"]) for m in every_method},
                                          threshold=randomisation_threshold,
                                          seed=seed)
failing = randomisation[randomisation.verdict == "fails"].method.tolist()
print(f"{len(randomisation)} methods on {arch}, {min(len(xs), n_randomisation)} images of {dataset}: "
      f"{len(failing)} fail (mean Spearman >= {randomisation_threshold}): {', '.join(failing) or 'none'}")
for _, r in randomisation[~randomisation.verdict.isin(["passes", "fails"])].iterrows():
    print(f"{r.method}: {r.verdict} {r.error}")
# the error column is empty for every method that passes or fails; the others are printed above
style_verdicts(randomisation.sort_values("spearman", ascending=False).drop(columns="error"), hide_index=True,
               formatter={"spearman": "{:.2f}", "ssim": "{:.2f}", "seconds": "{:.1f}"},
               caption="Model randomisation: similarity of the maps before and after re-initialising every layer")

# %% [markdown]
# ## Are the differences real? Paired t-tests
#
# The localisation scores above are means over a handful of images. Because every method was
# scored on the *same* images, the right comparison is paired: a t-test on the per-image
# differences of RMA (`scipy.stats.ttest_rel` through `stats.paired_tests`), with Cohen's
# $d_z$, a bootstrap interval of the mean difference and Holm's correction for the three
# comparisons. The images of all datasets with masks are pooled.

# %%
tested = [m for m in ("gradcam", "layercam", "integrated_gradients") if m in methods]
if not loc.empty and len(tested) >= 2:
    wide = wide_scores(loc, "RMA", tested, index=["dataset", "image"])     # the datasets pooled
    tests = paired_tests(wide, n_resamples=2000, seed=seed)
    display(tests[["method_a", "method_b", "n", "mean_diff", "ci_low", "ci_high", "t", "p", "p_holm", "d_z",
                   "significant"]].rename(columns=lambda c: c.replace("_", " ")).style.format(precision=3)
            .hide(axis="index"))
else:
    print("Paired tests skipped: they need masks and at least two methods.")

# %% [markdown]
# With a few dozen images only large effects reach significance after correction; the
# bootstrap interval says how large a difference the data still allow. The benchmark chapter
# repeats this for the five CAM methods of Chaddad et al. with ROAD and confidence scores.
#
# ## Exercises
#
# ```{exercise-start}
# :label: eval-ex-gaming
# ```
#
# Build two "explanations" directly from the true masks of the first dataset (the brain
# phantom by default), without any model: (a) a **point map** that is 1 at a single pixel
# inside the lesion and 0 elsewhere; (b) a **halo map** that is 1 on the lesion and decays as
# $e^{-d/4}$ with the distance $d$ (in pixels) outside it. Score both with RMA, RRA and the strict pointing game. Which metric does
# each map fool, and what does that tell you about reporting a single localisation metric?
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{solution-start} eval-ex-gaming
# :class: dropdown
# ```

# %%
from scipy import ndimage

with_masks = [r for r in runs.values() if "mask" in r["batch"]]
if not with_masks:
    print("This exercise needs a dataset with lesion masks (the phantoms have them).")
else:
    masks = with_masks[0]["batch"]["mask"].numpy()
    point = np.zeros(masks.shape, np.float32)
    for i, mask in enumerate(masks):
        core = ndimage.binary_erosion(mask)              # a pixel well inside the lesion where possible
        inside = np.argwhere(core if core.any() else mask)
        point[i][tuple(inside[len(inside) // 2])] = 1.0
    halo = np.stack([np.exp(-ndimage.distance_transform_edt(~mask) / 4) for mask in masks]).astype(np.float32)
    gamed = score_table({"point map": point, "halo map": halo}, {"RMA": "relevance_mass_accuracy",
                        "RRA": "relevance_rank_accuracy", "pointing game": "pointing_game"}, masks=masks)
    display(score_summary(gamed, index="metric", columns="method").rename_axis(index=None, columns=None)
            .style.format("{:.2f}"))

# %% [markdown]
# The point map has all its (single pixel of) relevance inside the lesion and its peak there:
# RMA = 1 and a pointing-game hit, yet it marks almost none of the lesion, which only RRA
# notices (one pixel out of $|M|$, plus the expected share of the tied zeros). The halo ranks
# the lesion pixels first, so RRA and the pointing game are perfect, while most of its mass lies
# outside and RMA is low. Each metric rewards one property (concentration, ranking, peak); a
# map can maximise one while being useless by another, so report several.
#
# ```{solution-end}
# ```
#
# ```{exercise-start}
# :label: eval-ex-baseline
# ```
#
# Deletion needs a value to put in place of the removed pixels. Recompute the deletion AUC of
# the `fidelity_methods` (and the random map) on the same images with the baselines `"zero"`,
# `"mean"` (each image's own mean colour) and `"blur"`. Does the ranking of the methods change?
# What probability does the model give to each fully deleted image?
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{solution-start} eval-ex-baseline
# :class: dropdown
# ```

# %%
by_baseline, end_prob = {}, {}
for base in ("zero", "mean", "blur"):
    results = {m: curves[("deletion", m)] if base == "zero" else     # "zero" was computed above
               perturbation_curves(model, x, t, maps, mode="deletion", baseline=base, steps=steps)
               for m, maps in fid_maps.items()}
    by_baseline[base] = {m: np.nanmean(r.auc) for m, r in results.items()}
    end_prob[base] = np.nanmean(results["random"].curves[:, -1])
auc = pd.DataFrame(by_baseline)
display(auc.style.format("{:.3f}").set_caption("deletion AUC (lower is better) per baseline"))
display(auc.rank().astype(int).rename(columns=lambda c: f"rank with {c}"))
print({k: round(float(v), 3) for k, v in end_prob.items()}, "<- mean probability of the fully deleted image")

# %% [markdown]
# A constant baseline makes images that the model never saw during training: the score can
# collapse after a few per cent of the pixels are gone, whatever their order, and the
# fully deleted image may still be assigned a class (here its probability is printed). Blurring
# keeps the low frequencies, so the model degrades more gradually and the ranking can differ.
# The AUC is therefore a property of the map *and* the baseline; ROAD's imputation is one
# answer to this problem.
#
# ```{solution-end}
# ```
#
# ## Run it on real data
#
# In Colab with a GPU (see [Running on real data and in Colab](../book/real_data.md)), fetch the
# datasets and set the parameters cell to:
#
# ```python
# dataset = "figshare-brain-tumor"
# datasets = ["figshare-brain-tumor", "ham10000", "chest-xray-pneumonia"]
# profile = "paper"
# n_images = 100; n_fidelity = 32; n_road = 32; n_sanity = 16; steps = 32
# ```
#
# Localisation needs masks (figshare brain tumours, HAM10000); the fidelity metrics and the sanity checks run on any dataset.
#
# ## What to remember
#
# - Localisation asks whether a map agrees with a human outline; fidelity asks whether the model
#   needs the pixels the map ranks first. The two can disagree, and both are needed.
# - Deletion and insertion depend on what replaces the removed pixels; ROAD's imputation limits
#   what the shape of the removed region leaks to the model.
# - Compare methods with paired tests on the same images, correct for multiple tests, and always
#   beside a random map and a randomised model.
#
# ```{bibliography}
# :filter: docname in docnames
# ```

# %% tags=["remove-input"]
timer.glue()
