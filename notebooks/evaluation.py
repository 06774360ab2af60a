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
arch = "resnet18"
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
# cost presets of the slow methods in the every-method randomisation table
sanity_presets = {"scorecam": {"batch_size": 128}, "ablationcam": {"batch_size": 128},
                  "sscam": {"num_samples": 1, "batch_size": 128}, "iscam": {"num_samples": 1, "batch_size": 128},
                  "smooth_gradcampp": {"num_samples": 2}, "smoothgrad": {"nt_samples": 4},
                  "integrated_gradients": {"n_steps": 16}, "deepshap": {"n_noise": 2}}
method_options = {"integrated_gradients": {"n_steps": 16}, "scorecam": {"batch_size": 128}}

# %%
import matplotlib.pyplot as plt
import numpy as np
from scipy import ndimage
import pandas as pd
from IPython.display import display

import medxai_lite as mx
from medxai_lite.data import lesion_batch
from medxai_lite.explain import METHODS, explain, list_methods
from medxai_lite.metrics import (
    cascading_randomisation, confidence_change, confidence_increase, metrics_table, paired_tests,
    perturbation_curves, pointing_game, randomisable_layers, relevance_mass_accuracy, relevance_rank_accuracy,
    road_lerf, road_morf,
)
from medxai_lite.viz import add_colorbar, overlay

import warnings

mx.set_seed(seed)
methods = [m for m in methods if METHODS[m].supports(arch)]
if not arch.startswith("resnet"):         # "layer2" names a ResNet stage; other architectures use the default
    method_options = {m: {k: v for k, v in o.items() if k != "layer"} for m, o in method_options.items()}
COLOURS = dict(zip(methods + ["random"], plt.cm.tab10.colors[:len(methods)] + ((0.5, 0.5, 0.5),)))


def lesion_images(name, model, n, seed=seed):
    """``n`` test images with a lesion (by mask, where the dataset has masks), at the model's image size."""
    test = mx.load_dataset(name, split="test", image_size=model.report.settings["image_size"], n=64, seed=seed)
    return test, lesion_batch(test, n)


def n_constant(maps):
    """How many of the maps [N, H, W] are constant (e.g. all zero): no ranking, no peak."""
    flat = np.asarray(maps).reshape(len(maps), -1)
    return int((flat.max(1) == flat.min(1)).sum())


def random_maps(images, seed=seed):
    """A uniform-noise map per image: the reference any explanation has to beat."""
    n, _, h, w = images.shape
    return np.random.default_rng(seed).random((n, h, w)).astype(np.float32)


# %% [markdown]
# ## The metrics in the package
#
# Every metric is a plain function over a batch that returns one score per image, and records
# whether a higher score is better and which family it belongs to. Localisation metrics need
# the true masks; fidelity metrics need the model; the sanity metric needs the explainer itself,
# since it reruns it on a damaged copy of the model.

# %%
metrics_table()

# %% [markdown]
# ## Localisation against the true lesion
#
# For each dataset: a ResNet18 (trained once, then read from the cache), `n_images` test images
# that contain a lesion, and each method explaining the **true** class. Each map is scored with
# relevance mass accuracy (RMA) and relevance rank accuracy (RRA) {cite}`arras2022clevr`, and
# with the pointing game {cite}`zhang2018topdown`, once strictly and once with the tolerance of
# the original paper (15 px at 224 px, scaled to the image size). The row `chance` is the
# expected score of a random map: for RMA, RRA and the strict pointing game the share of the image
# that the lesion covers, and for the tolerant pointing game the share covered by the lesion grown
# by the tolerance (a peak anywhere in that band counts as a hit). That is the number to beat.

# %%
runs = {}                # dataset -> model, test set, batch, maps per method
loc_rows = []
for name in datasets:
    model = mx.get_trained_model(name, arch, profile, seed=seed, progress=False)
    test, batch = lesion_images(name, model, n_images)
    images, targets = batch["image"], batch["label"]
    maps = {m: explain(m, model, images, targets, **method_options.get(m, {})).maps for m in methods}
    runs[name] = dict(model=model, test=test, batch=batch, maps=maps)
    if "mask" not in batch:
        print(f"{name}: no lesion masks, so the localisation metrics are skipped for it")
        continue
    masks = batch["mask"].numpy()
    size = images.shape[-1]
    tolerance = 15 * size / 224
    scorers = {"RMA": lambda m: relevance_mass_accuracy(None, images, None, m, masks),
               "RRA": lambda m: relevance_rank_accuracy(None, images, None, m, masks),
               "pointing game": lambda m: pointing_game(None, images, None, m, masks),
               f"pointing game ±{tolerance:.0f} px": lambda m: pointing_game(None, images, None, m, masks,
                                                                            tolerance=tolerance)}
    for method, m in maps.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            for metric, score in scorers.items():
                for i, v in enumerate(score(m)):
                    loc_rows.append(dict(dataset=name, method=method, image=i, metric=metric, value=v))
        if caught:   # the metrics score such maps NaN and warn; one line per method instead of three warnings
            print(f"{name}, {method}: {n_constant(m)} of {len(m)} maps are constant "
                  "(no positive relevance, no peak): scored NaN and left out of the means")
    # chance: the share of the image a random peak must land in; with a tolerance that region is the
    # lesion grown by the tolerance, not the lesion itself
    area = masks.reshape(len(masks), -1).mean(1)
    grown = np.stack([ndimage.distance_transform_edt(~m) <= tolerance for m in masks]).reshape(len(masks), -1).mean(1)
    for metric in scorers:
        for i, v in enumerate(grown if "±" in metric else area):
            loc_rows.append(dict(dataset=name, method="chance", image=i, metric=metric, value=v))

loc = pd.DataFrame(loc_rows)
if loc.empty:
    print("No dataset with masks: nothing to localise against.")
else:
    metric_order = list(dict.fromkeys(loc.metric))
    summary = (loc.groupby(["method", "dataset", "metric"]).value.mean().unstack(["dataset", "metric"])
               .reindex(index=[m for m in methods + ["chance"] if m in set(loc.method)]))
    summary = summary[[(d, m) for d in datasets for m in metric_order if (d, m) in summary.columns]]
    display(summary.style.format("{:.2f}").background_gradient(cmap="viridis", vmin=0, vmax=1))

# %% [markdown]
# The same table as a heatmap: rows are methods, columns the metric on each dataset.

# %%
if not loc.empty:
    values = summary.to_numpy()
    fig, ax = plt.subplots(figsize=(1.0 * values.shape[1] + 3, 0.55 * values.shape[0] + 2.2))
    im = ax.imshow(values, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for (r, c), v in np.ndenumerate(values):
        ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if v < 0.6 else "black")
    ax.set_xticks(range(values.shape[1]))
    ax.set_xticklabels([f"{d.replace('phantom-', '')}\n{m}" for d, m in summary.columns], fontsize=8,
                       rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(values.shape[0]))
    ax.set_yticklabels(summary.index)
    for boundary in range(len(metric_order), values.shape[1], len(metric_order)):
        ax.axvline(boundary - 0.5, color="white", lw=2)
    cb = fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    cb.set_label("mean score over lesion images\n(higher is better, 1 = perfect)")
    ax.set_title(f"Localisation against the true masks ({arch}, {n_images} images per dataset)")
    fig.tight_layout()
    plt.show()

# %% [markdown]
# Three things to look for. First, a CAM of the last block can only be as sharp as that block's
# grid: once upsampled, its maximum always sits on a cell centre, so a lesion that contains no
# cell centre cannot be hit in the strict pointing game however good the network. The cell
# below measures that ceiling on these images (`metrics.pointing_ceiling`) beside Grad-CAM's
# score and the chance level. Second, the pixel-level gradient maps often win the pointing game
# while their RMA stays modest: a single sharp peak on the lesion is all the pointing game asks
# for, whereas RMA counts every speck of relevance elsewhere in the image. Third, always read a
# score against the `chance` row.

# %%
from medxai_lite.metrics import pointing_ceiling
from medxai_lite.models import cam_grid, grid_origin

for name, run in runs.items():
    if "mask" not in run["batch"] or "gradcam" not in run["maps"]:
        continue
    masks = run["batch"]["mask"].numpy()
    size = masks.shape[-1]
    h, w = cam_grid(run["model"], arch, size)
    stride = size / h
    ceiling = pointing_ceiling(masks, stride, grid_origin(arch, stride))
    pg = np.nanmean(pointing_game(None, run["batch"]["image"], None, run["maps"]["gradcam"], masks))
    print(f"{name}: Grad-CAM reads a {h} x {w} grid ({stride:.0f} px cells); strict pointing game {pg:.2f}, "
          f"ceiling for that grid {ceiling.mean():.2f}, chance {masks.reshape(len(masks), -1).mean():.2f}")

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
run = runs.get(dataset)
if run is None:      # the fidelity dataset is not among the localisation ones
    model = mx.get_trained_model(dataset, arch, profile, seed=seed, progress=False)
    test, batch = lesion_images(dataset, model, max(n_fidelity, n_road, n_sanity))
    run = dict(model=model, test=test, batch=batch,
               maps={m: explain(m, model, batch["image"], batch["label"], **method_options.get(m, {})).maps
                     for m in methods})
model, batch = run["model"], run["batch"]
x, t = batch["image"][:n_fidelity], batch["label"][:n_fidelity]
fid_maps = {m: run["maps"][m][:n_fidelity] for m in fidelity_methods if m in run["maps"]}
fid_maps["random"] = random_maps(x)

curves = {(mode, m): perturbation_curves(model, x, t, maps, mode=mode, steps=steps,
                                         baseline="zero" if mode == "deletion" else "blur")
          for mode in ("deletion", "insertion") for m, maps in fid_maps.items()}

fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
for ax, mode in zip(axes, ("deletion", "insertion")):
    for m in fid_maps:
        res = curves[(mode, m)]
        ax.plot(res.fractions, np.nanmean(res.curves, 0), color=COLOURS[m], lw=2, ls="--" if m == "random" else "-",
                label=f"{m} (AUC {np.nanmean(res.auc):.2f})")
    ax.set_xlabel(f"fraction of pixels {'removed' if mode == 'deletion' else 'inserted'} (most relevant first)")
    better = "lower" if mode == "deletion" else "higher"
    baseline = "zero (mean colour)" if mode == "deletion" else "blur"
    ax.set_title(f"{mode.capitalize()}, baseline {baseline}: {better} AUC is better", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="method (mean AUC)", title_fontsize=8)
axes[0].set_ylabel("probability of the explained class\n(mean over images)")
fig.suptitle(f"{dataset}, {arch}, {len(x)} images, {steps} steps", fontsize=11)
fig.tight_layout()
plt.show()

fidelity = pd.DataFrame({
    "deletion AUC (lower is better)": {m: np.nanmean(curves[("deletion", m)].auc) for m in fid_maps},
    "insertion AUC (higher is better)": {m: np.nanmean(curves[("insertion", m)].auc) for m in fid_maps},
    "AOPC (higher is better)": {m: np.nanmean(curves[("deletion", m)].curves[:, :1] - curves[("deletion", m)].curves)
                                for m in fid_maps},
})
fidelity.style.format("{:.3f}")

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
# rest. The score is the change of the class probability; a faithful map makes MoRF fall
# (solid lines) and LeRF stay near zero (dashed lines). Combined ROAD is
# $(\mathrm{LeRF} - \mathrm{MoRF})/2$ averaged over the percentiles.

# %%
xr, tr = x[:n_road], t[:n_road]
road_rows = []
for m, maps in fid_maps.items():
    for p in road_percentiles:
        for order, fn in (("MoRF", road_morf), ("LeRF", road_lerf)):
            for i, v in enumerate(fn(model, xr, tr, maps[:n_road], percentiles=p)):
                road_rows.append(dict(method=m, order=order, removed=1 - p / 100, image=i, value=v))
road = pd.DataFrame(road_rows)

fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
offsets = dict(zip(fid_maps, np.linspace(-0.015, 0.015, len(fid_maps))))   # keep equal curves apart
for ax, order in zip(axes, ("MoRF", "LeRF")):
    for m in fid_maps:
        mean = road[(road.method == m) & (road.order == order)].groupby("removed").value.mean()
        ax.plot(mean.index + offsets[m], mean.values, marker="o", color=COLOURS[m],
                ls="--" if m == "random" else "-", label=m)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel(f"fraction of pixels removed and imputed ({'most' if order == 'MoRF' else 'least'} relevant first)")
    ax.set_title(f"ROAD {order}: " + ("a faithful map falls fast (lower is better)" if order == "MoRF"
                                      else "a faithful map stays near 0 (higher is better)"), fontsize=10)
    ax.grid(alpha=0.3)
axes[0].set_ylabel("change in probability of the explained class\n(mean over images)")
axes[1].legend(fontsize=8, title="method", title_fontsize=8)
fig.suptitle(f"ROAD on {dataset}, {arch}, {len(xr)} images", fontsize=11)
fig.tight_layout()
plt.show()

road_table = road.groupby(["method", "order"]).value.mean().unstack("order")[["MoRF", "LeRF"]]
road_table["combined (higher is better)"] = (road_table["LeRF"] - road_table["MoRF"]) / 2
road_table.loc[list(fid_maps)].style.format("{:.3f}")

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
conf_rows = []
for name, r in runs.items():
    xc, tc = r["batch"]["image"][:n_fidelity], r["batch"]["label"][:n_fidelity]
    conf_maps = {m: r["maps"][m][:n_fidelity] for m in methods} | {"random": random_maps(xc)}
    for m, v in conf_maps.items():
        conf_rows.append({"dataset": name, "method": m,
                          "reading 1: mean change": confidence_change(r["model"], xc, tc, v).mean(),
                          "reading 2: share that rises": confidence_increase(r["model"], xc, tc, v).mean()})
confidence = pd.DataFrame(conf_rows).set_index(["dataset", "method"]).unstack("dataset").swaplevel(axis=1)
confidence = confidence[[(d, c) for d in runs for c in ("reading 1: mean change", "reading 2: share that rises")]]
confidence = confidence.reindex(index=methods + ["random"])
confidence.style.format("{:.2f}")

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
# and reading 2 counts a gain of 0.001 as a full success: a random map can "increase confidence"
# on every image while its mean change is zero.
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
if arch.startswith("resnet"):
    blocks = ["fc", "layer4", "layer3", "layer2", "layer1", "conv1"]
else:                     # other architectures: the six weight layers nearest the output
    blocks = randomisable_layers(model)[:6]


def recording(method, store):
    """An explainer for the randomisation test that also keeps every set of maps it makes."""
    def run_method(model, images, targets):
        maps = explain(method, model, images, targets, **method_options.get(method, {})).maps
        store.append(maps)
        return maps
    return run_method


sanity, sanity_maps = [], {}
for m in sanity_methods:
    store = []
    df = cascading_randomisation(model, xs, ts, recording(m, store), layers=blocks, seed=seed)
    sanity.append(df.assign(method=m))
    sanity_maps[m] = store[1:]        # store[0]: the original model; then step 0 (untouched copy), 1, 2, ...
sanity = pd.concat(sanity, ignore_index=True)
step_labels = ["none"] + [blocks[0]] + [f"+ {b}" for b in blocks[1:]]

fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
for ax, metric in zip(axes, ("spearman", "ssim")):
    for m in sanity_methods:
        part = sanity[(sanity.method == m) & (sanity.metric == metric)].groupby("step").value
        mean, defined = part.mean(), part.count()
        ax.plot(mean.index, mean.values, color=COLOURS.get(m), label=m)
        full = defined == len(xs)       # open markers: the score is undefined for some images
        ax.plot(mean.index[full], mean.values[full], "o", color=COLOURS.get(m))
        ax.plot(mean.index[~full], mean.values[~full], "o", mfc="white", color=COLOURS.get(m))
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(step_labels)))
    ax.set_xticklabels(step_labels, rotation=30, ha="right")
    ax.set_xlabel("layers randomised so far (from the output down)")
    ax.set_title({"spearman": "Spearman rank correlation", "ssim": "SSIM"}[metric]
                 + " with the original maps", fontsize=10)
    ax.grid(alpha=0.3)
axes[0].set_ylabel(f"similarity (mean over {len(xs)} images)")
axes[0].set_ylim(-1.05, 1.05)
axes[1].legend(fontsize=8, title="method (open marker: mean over\nthe images where it is defined)",
               title_fontsize=8)
fig.suptitle(f"Cascading randomisation of a {arch} on {dataset}: a method that passes falls towards 0",
             fontsize=11)
fig.tight_layout()
plt.show()

# %% [markdown]
# Grad-CAM's map often becomes entirely zero once the classifier is random (no channel speaks
# *for* the class any more). Rank correlation is undefined for such a map, so the Spearman
# curve averages only the images where it is defined (open markers) and can jump; SSIM treats
# the empty map as all zeros. The maps of the first image along the way (columns: layers
# randomised so far; the true lesion outlined in cyan):

# %%
fig, axes = plt.subplots(len(sanity_methods), len(step_labels),
                         figsize=(1.6 * len(step_labels) + 1.4, 1.75 * len(sanity_methods) + 0.6), squeeze=False)
for r, m in enumerate(sanity_methods):
    for c, label in enumerate(step_labels):
        overlay(axes[r, c], xs[0], sanity_maps[m][c][0], colorbar=False,
                mask=batch["mask"][0].numpy() if "mask" in batch else None,
                clip_percentile=99 if METHODS[m].family != "CAM-based" else None)
        if r == 0:
            axes[r, c].set_title(label, fontsize=9)
    axes[r, 0].set_ylabel(m, fontsize=9)
fig.suptitle("Maps of one image as the model is randomised from the output down", fontsize=11)
fig.tight_layout(rect=(0, 0, 0.92, 1))
cax = fig.add_axes((0.93, 0.2, 0.012, 0.6))
fig.colorbar(plt.cm.ScalarMappable(norm=plt.Normalize(0, 1), cmap="inferno"), cax=cax).set_label(
    "relevance (normalised; gradient maps clipped at the 99th percentile)", fontsize=8)
plt.show()

# %%
last = sanity[sanity.step == sanity.step.max()].groupby(["method", "metric"]).value.mean().unstack("metric")
last.columns = [f"{c} after full randomisation" for c in last.columns]
last["constant maps after full randomisation"] = [n_constant(sanity_maps[m][-1]) for m in last.index]
last.loc[sanity_methods].style.format("{:.2f}", subset=list(last.columns[:2]))

# %% [markdown]
# ### Every method of the registry, model randomised
#
# The same check for every visual method the package offers, at the model's own resolution:
# each method explains `n_randomisation` images on the trained network and on a copy whose every
# weight layer is re-initialised (the last step of the cascading test). A mean Spearman rank
# correlation of at least `randomisation_threshold` between the two sets of maps marks the
# method as failing: its maps do not depend on what the network learnt. Adebayo et al.
# {cite}`adebayo2018sanity` found Guided Backprop and Guided Grad-CAM insensitive in this way;
# the table says what this run finds. Slow methods run with the cost presets named in the
# parameters cell.

# %%
from medxai_lite.metrics import model_randomisation_table

every_method = [m for m in list_methods() if m not in sanity_skip and METHODS[m].supports(arch)]
randomisation = model_randomisation_table(model, xs[:n_randomisation], ts[:n_randomisation], every_method,
                                          method_options=sanity_presets, threshold=randomisation_threshold,
                                          seed=seed)
failing = randomisation[randomisation.verdict == "fails"].method.tolist()
print(f"{len(randomisation)} methods on {arch}, {min(len(xs), n_randomisation)} images of {dataset}: "
      f"{len(failing)} fail (mean Spearman >= {randomisation_threshold}): {', '.join(failing) or 'none'}")
other = randomisation[~randomisation.verdict.isin(["passes", "fails"])]
for _, r in other.iterrows():
    print(f"{r.method}: {r.verdict} {r.error}")
(randomisation.sort_values("spearman", ascending=False)
 .style.format({"spearman": "{:.2f}", "ssim": "{:.2f}", "seconds": "{:.1f}"}).hide(axis="index")
 .map(lambda v: {"fails": "background-color: #f8d7da", "passes": "background-color: #d9f2d9"}.get(v, ""),
      subset=["verdict"])
 .set_caption("Model randomisation: similarity of the maps before and after re-initialising every layer"))

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
    rma = loc[(loc.metric == "RMA") & loc.method.isin(tested)]
    wide = rma.pivot_table(index=["dataset", "image"], columns="method", values="value")[tested]
    tests = paired_tests(wide, n_resamples=2000, seed=seed)
    display(tests[["method_a", "method_b", "n", "mean_diff", "ci_low", "ci_high", "t", "p", "p_holm", "d_z",
                   "significant"]].style.format(precision=3))
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
    gamed = pd.DataFrame({name: {"RMA": relevance_mass_accuracy(None, None, None, m, masks).mean(),
                                 "RRA": relevance_rank_accuracy(None, None, None, m, masks).mean(),
                                 "pointing game": pointing_game(None, None, None, m, masks).mean()}
                          for name, m in (("point map", point), ("halo map", halo))})
    display(gamed.style.format("{:.2f}"))

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
# ```{bibliography}
# :filter: docname in docnames
# ```
