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
# # CAM-based methods in practice
#
# This notebook runs every CAM-family method of the [previous page](../book/cam.md) through
# `medxai_lite.explain`, which wraps pytorch-grad-cam {cite}`gildenblat2021pytorchgradcam` and
# torchcam {cite}`fernandez2020torchcam`. It shows which method runs on which architecture of the
# model zoo, the maps side by side on the three phantom modalities with the true lesion
# outlined, what each method costs, how the choice of layer changes the picture, and a live
# explorer.

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
dataset = "phantom-brain-mri"     # the dataset of the explorer and the layer study
datasets = ["phantom-brain-mri", "phantom-skin", "phantom-chest-xray"]   # the side-by-side grids
profile = "cpu"
seed = 0
arch = "resnet14"
n_images = 1                      # images per dataset in the grids (Score-CAM and its kin run one
                                  # forward pass per channel: the chapter's costliest methods)
n_score = 32                      # lesion images per dataset scored against the true masks
# sample budgets of the costly methods (one forward pass per channel and sample)
slow_options = {"sscam": {"num_samples": 1, "batch_size": 128}, "iscam": {"num_samples": 1, "batch_size": 128},
                "scorecam": {"batch_size": 128}, "ablationcam": {"batch_size": 128},
                "smooth_gradcampp": {"num_samples": 4}}

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

import medxai_lite as mx
from medxai_lite.explain import METHODS, compatibility_matrix, explain, list_methods, methods_table
from medxai_lite.selection import lesion_images
from medxai_lite.viz import explore, explorer_figure, method_grid, plot_timing
from medxai_lite.viz.tables import compatibility_tables, registry_tables
from medxai_lite.book import chapter_timer, glue   # glue prints where no book is built (Colab)

timer = chapter_timer()   # this chapter's wall time, shown in its opening

mx.set_seed(seed)
CAMS = list_methods("CAM-based")
print(len(CAMS), "CAM-family methods:", ", ".join(CAMS))


# %% [markdown]
# ## The registry: what each method needs and costs
#
# Each entry records the backing library, whether the method needs gradients, a cost class
# (`fast`: one forward and backward pass; `medium`: a few such passes per image, for a handful of
# noise samples or for every layer's gradients at once; `slow`: one forward pass per channel of
# the target layer, or per noise sample) and the original paper by first author and year (the chapter's
# summary table cites each one in full). The options each method accepts follow in a second table.

# %%
registry_tables(methods_table("CAM-based"))

# %% [markdown]
# ## Which method runs on which architecture
#
# The table is computed from the registry at build time. A method is marked `yes` only where
# its defining property holds on that architecture, as checked by the test suite; otherwise the
# cell reads `no [k]` and note k below the matrix gives the reason, the message `explain` raises.
# One `yes` is approximate: CAM on DenseNet121 reads `features.norm5`, and the network applies a
# ReLU after it, before the pooling, so the class score decomposes exactly over the rectified
# features, not over the layer the map is drawn from (see the chapter page).
# The original CAM, for example, needs global average pooling followed by a single linear
# layer, which VGG16's three-layer classifier does not have.

# %%
matrix = compatibility_matrix(family="CAM-based")
compatibility_tables(matrix)      # "no [k]": the reason is note k, below the matrix

# %% [markdown]
# ## Every method on the three modalities
#
# The book's default ResNet14 per dataset (a ResNet18 without its fourth stage; trained once,
# then read from the cache), the first `n_images` test images with a lesion (set in the
# parameters cell), every CAM-family method
# explaining the predicted class. The cyan line is the true lesion. The grid each map is
# upsampled from is printed first: at the `cpu` profile's 96 px the ResNet14's last residual
# block downsamples by 8 (its third stage is dilated), a 12 x 12 grid of 8-pixel cells, finer
# than the 7 x 7 grid the Chaddad et al. ResNet50 reads at 224 px. Why not the usual stride of
# 16: the scores below print the ceiling a grid of 16-pixel cells would put on the same lesions
# (for maps upsampled bilinearly).

# %%
timings = []
for name in datasets:
    model = mx.get_trained_model(name, arch, profile, seed=seed, progress=False)
    h, w = mx.cam_grid(model, arch, model.report.settings["image_size"])
    print(f"{name}: {arch} at {model.report.settings['image_size']} px, the CAM layer is a {h} x {w} grid")
    test, batch = lesion_images(name, model, n_images, seed=seed)
    explain("gradcam", model, batch["image"][:1])     # untimed warm-up: the first call pays for hooks and caches
    results = {}
    for method in CAMS:
        res = explain(method, model, batch["image"], **slow_options.get(method, {}))
        results[method] = res
        timings.append({"dataset": name, "method": method, "seconds per image": res.seconds / len(batch["image"])})
    titles = [f"{test.classes[int(l)]}" for l in batch["label"]]
    method_grid(batch["image"], results, masks=batch.get("mask"), row_titles=titles,
                title=f"{name}: CAM-family maps of a {arch} ({model.report.settings['image_size']} px)")
    plt.show()

# %% [markdown]
# ## What each method costs
#
# Wall-clock seconds per image on this machine (`explain` reports the time of the method
# itself). Score-CAM, SS-CAM, IS-CAM and Ablation-CAM run one forward pass per channel of the
# target layer (256 on the ResNet14's last block, 2,048 on a ResNet50's), and SS-CAM and IS-CAM
# multiply that by their number of noise samples, which this page keeps small. The first three
# pass masked images through the whole network; Ablation-CAM passes ablated activations through
# the head that follows the layer only.

# %%
times = pd.DataFrame(timings).pivot_table(index="method", columns="dataset", values="seconds per image")
times = times.loc[times.mean(axis=1).sort_values().index]
plot_timing(times, title=f"CAM-family cost on a {arch}, {mx.device()}", figsize=(8, 5))
plt.show()
times.style.format("{:.3f}")

# %% [markdown]
# ## Can the maps be right? Scores against the true lesion
#
# Every CAM-family method of the `fast` cost class on the first `n_score` test images with a
# lesion of each dataset, explaining the true class, scored with the pointing game (is the
# map's maximum inside the lesion?) and relevance mass accuracy (RMA, the share of the map's mass
# inside it) {cite}`zhang2018topdown,arras2022clevr`. Two references sit beside them: a random
# map on the same 12 x 12 grid (`random`), and the *bilinear ceiling* of the strict pointing game
# for that grid (`ceiling (bilinear)`): a map upsampled bilinearly from a grid peaks on a cell
# centre, so a lesion holding no cell centre cannot be hit by such a map (a centre on the grid's
# edge reads the whole clamped block out to the image border, and the peak is then shared by that
# block: only the block's share inside the lesion counts). The book's maps interpolate
# bicubically between the same centres (see the chapter), so they can pass that ceiling where a
# lesion sits between two cells that both fire. Grad-CAM is also shown read back bilinearly from
# its own grid (`gradcam, bilinear`) and with the libraries' own upsampling (`gradcam, library
# resize`: bilinear, and every cell half a cell right of and below its receptive-field centre,
# see the previous page).

# %%
from medxai_lite.explain.cam import map_from_grid
from medxai_lite.metrics import (cam_pointing_ceiling, peak_plateau, pointing_ceiling, random_maps,
                                 relevance_mass_accuracy, score_summary, score_table)

fast_cams = [m for m in CAMS if METHODS[m].cost == "fast" and METHODS[m].supports(arch)]
scores = []              # tidy: dataset, model, method, metric, image, value
plateaus = []            # Grad-CAM's peak plateau per image (next section)
for name in datasets:
    model = mx.get_trained_model(name, arch, profile, seed=seed, progress=False)
    test, batch = lesion_images(name, model, n_score, seed=seed)
    if "mask" not in batch:
        print(f"{name}: no lesion masks, nothing to score against")
        continue
    x, y, masks = batch["image"], batch["label"], batch["mask"].numpy()
    results = {m: explain(m, model, x, targets=y) for m in fast_cams}
    maps = {m: r.maps for m, r in results.items()}
    maps["gradcam, bilinear"] = map_from_grid(results["gradcam"].extras["cam"], x.shape[-2:], arch,
                                              mode="bilinear").numpy()              # the same cells, read bilinearly
    maps["gradcam, library resize"] = explain("gradcam", model, x, targets=y, align=False).maps
    maps["random"] = random_maps(x, grid="cam", model=model, arch=arch, seed=seed)   # noise on the CAM grid
    plateaus.append(peak_plateau(maps["gradcam"], masks).assign(dataset=name))
    true_class = {"class": [test.classes[int(c)] for c in y]}
    scores.append(score_table(maps, {"pointing game": "pointing_game", "RMA": "relevance_mass_accuracy"},
                              images=x, targets=y, masks=masks, dataset=name, model_name=arch, columns=true_class))
    ceiling = cam_pointing_ceiling(masks, model, arch)[1]       # the best a bilinear map of that grid can do
    scores.append(score_table({"ceiling (bilinear)": masks}, {"pointing game": lambda *a: ceiling}, dataset=name,
                              columns=true_class))
    # the same for a grid of 16-pixel cells (output stride 16, the usual dilated setting)
    ceiling16 = pointing_ceiling(masks, 16, mx.models.grid_origin(arch, 16))
    scores.append(score_table({"bilinear ceiling, 16 px": masks}, {"pointing game": lambda *a: ceiling16},
                              dataset=name))
scores = pd.concat(scores, ignore_index=True) if scores else pd.DataFrame(columns=["dataset", "method", "metric"])
cam_scores = score_summary(scores, columns=["metric", "dataset"]) if len(scores) else pd.DataFrame()
cam_scores.style.format("{:.2f}", na_rep="").background_gradient(cmap="viridis", vmin=0, vmax=1)

# %%
pg = cam_scores["pointing game"] if len(cam_scores) else pd.DataFrame()
for name in pg.columns:
    beats = [m for m in fast_cams if m in pg.index and pg.loc[m, name] > pg.loc["random", name]]
    aligned, library = pg.loc["gradcam, bilinear", name], pg.loc["gradcam, library resize", name]
    better = ("the library resize points better" if library > aligned else
              "the aligned map points better" if aligned > library else "the two point equally well")
    print(f"{name}: {len(beats)} of {len(fast_cams)} methods point better than the random map; Grad-CAM "
          f"{pg.loc['gradcam', name]:.2f} bicubic vs {aligned:.2f} bilinear, both aligned, and {library:.2f} "
          f"with the library resize (of the two bilinear maps, {better.replace('the ', '', 1)}); bilinear ceiling "
          f"{pg.loc['ceiling (bilinear)', name]:.2f} ({pg.loc['bilinear ceiling, 16 px', name]:.2f} "
          "with 16 px cells)")
gain = pg.loc["gradcam"] - pg.loc["gradcam, bilinear"]
above = [n for n in pg.columns if pg.loc["gradcam", n] > pg.loc["ceiling (bilinear)", n]]
shortfall = pg.loc["ceiling (bilinear)"] - pg.loc["gradcam, bilinear"]      # hits a bilinear map could have had
glue("cam_bicubic_sentence", (
    f"the {h} x {w} grid's bilinear ceiling is {pg.loc['ceiling (bilinear)'].min():.2f} or more on every dataset, "
    f"yet Grad-CAM read bilinearly falls short of it by up to {shortfall.max():.2f} ({shortfall.idxmax()}): those "
    "misses are lesions that hold a cell centre while the map's strongest cell is a neighbour. Bicubic "
    f"interpolation changes the strict pointing game by {gain.min():+.2f} to {gain.max():+.2f} over the datasets, "
    f"most on {gain.idxmax()} ({pg.loc['gradcam, bilinear', gain.idxmax()]:.2f} bilinear, "
    f"{pg.loc['gradcam', gain.idxmax()]:.2f} bicubic)" + (
        f", and passes the bilinear ceiling on {', '.join(above)}" if above else
        ", and stays at or under the bilinear ceiling on every dataset's average (per class, see the table "
        "further down)")) if len(pg.columns) else "", display=False)
library_wins = [n for n in pg.columns if pg.loc["gradcam, library resize", n] > pg.loc["gradcam", n]]
glue("cam_library_sentence", (
    "the libraries' own map, bilinear and shifted half a cell, points better than the book's default on "
    + " and ".join(f"{n} ({pg.loc['gradcam, library resize', n]:.2f} against {pg.loc['gradcam', n]:.2f})"
                   for n in library_wins)) if library_wins else
     "the book's default points at least as well as the libraries' own map on every dataset", display=False)

# %% [markdown]
# Where the bilinear ceiling is low, the lesions hold no cell centre: no bilinear map of this
# layer can point at them strictly, however good the network (the 16 px row shows how much a
# coarser grid loses). In this run {glue:text}`cam_bicubic_sentence`. The cells are the same;
# only where the map may peak between them differs. Where a method scores at or below the random
# map, it is not localising the lesion on that dataset.
#
# The receptive-field centre is where a cell's input window is centred, which is geometry; where
# a *trained* network's evidence for a lesion sits inside that window is learned, and need not be
# the centre. The printed lines say which placement pointed better here (both read bilinearly, so
# only the placement differs), and in this run {glue:text}`cam_library_sentence`. Where the library's
# half-cell shift wins, the features of this layer respond most to lesions below and to the right
# of their window's centre, and the geometric placement costs hits on the small lesions: an
# alignment argument is a hypothesis about the network that the lesion masks can test.
#
# ### How much does one pixel decide?
#
# The pointing game reads a single pixel, the map's maximum. If many pixels come within a few per
# cent of it, which one wins is close to a coin toss, and a strict hit or miss says more about
# that near-tie than about the map. `metrics.peak_plateau` measures the *plateau*, the pixels
# within 5 % of the map's range below its peak, and the share of it that lies in the lesion:
# the score the pointing game would give on average if the peak were drawn at random from the
# plateau. The table sets Grad-CAM's plateau beside the lesion it should fall in, and its share
# beside the strict pointing game above.

# %%
plateau = (pd.concat(plateaus).groupby("dataset", sort=False)
           .agg(**{"plateau (px, median)": ("plateau_px", "median"), "lesion (px, median)": ("lesion_px", "median"),
                   "plateau share in lesion": ("share_in_lesion", "mean")})) if plateaus else pd.DataFrame()
if len(plateau):
    plateau["Grad-CAM pointing game"] = [pg.loc["gradcam", name] for name in plateau.index]
    plateau["lesion / plateau"] = plateau["lesion (px, median)"] / plateau["plateau (px, median)"]
    display(plateau.style.format("{:.2f}").format("{:.0f}", subset=["plateau (px, median)", "lesion (px, median)"])
            .set_caption(f"Grad-CAM's peak plateau (within 5 % of the peak), first {n_score} lesion images"))
    tight = str(plateau["lesion / plateau"].idxmin())
    diff = plateau["Grad-CAM pointing game"] - plateau["plateau share in lesion"]
    gap, widest_gap = diff.abs().max(), str(diff.abs().idxmax())
    rma = cam_scores["RMA"]
    figures = {"plateau_px_low": plateau["plateau (px, median)"].min(),
               "plateau_px_high": plateau["plateau (px, median)"].max(),
               "lesion_px_low": plateau["lesion (px, median)"].min(),
               "lesion_px_high": plateau["lesion (px, median)"].max(),
               "plateau_tight_ratio": plateau.loc[tight, "lesion / plateau"],
               "plateau_tight_share": plateau.loc[tight, "plateau share in lesion"],
               "plateau_tight_pg": plateau.loc[tight, "Grad-CAM pointing game"],
               "plateau_tight_rma_ratio": rma.loc["gradcam", tight] / rma.loc["random", tight]}
    glue("plateau_tight_dataset", tight, display=False)
    glue("plateau_agreement", f"lie within {gap:.2f} of each other: the strict score is what the plateau makes likely"
         if gap <= 0.1 else (f"differ by up to {gap:.2f}, on {widest_gap}, where the peak lands in the lesion "
                             "more often than a pixel drawn from the plateau would: the peak is placed (between the "
                             "strongest cells), not drawn from its near-ties" if diff[widest_gap] > 0 else
                             f"differ by up to {gap:.2f}, on {widest_gap}, where the peak lands in the lesion "
                             "less often than a pixel drawn from the plateau would"), display=False)
    for key, value in figures.items():
        glue(key, float(value), display=False)
    print(f"plateau share vs strict pointing game: at most {gap:.2f} apart; smallest lesion against its plateau: "
          f"{tight} ({figures['plateau_tight_ratio']:.1f}x the plateau's area, Grad-CAM RMA "
          f"{figures['plateau_tight_rma_ratio']:.1f}x the random map's)")

# %% [markdown]
# Over the datasets here the plateau's share in the lesion and the strict pointing game
# {glue:text}`plateau_agreement`. The plateaus' median areas run from
# {glue:text}`plateau_px_low:.0f` to {glue:text}`plateau_px_high:.0f` pixels, the lesions' from
# {glue:text}`lesion_px_low:.0f` to {glue:text}`lesion_px_high:.0f`. On
# {glue:text}`plateau_tight_dataset` the median lesion is {glue:text}`plateau_tight_ratio:.1f`
# times the plateau's area and {glue:text}`plateau_tight_share:.2f` of the plateau lies in it
# (pointing game {glue:text}`plateau_tight_pg:.2f`), while Grad-CAM's relevance mass there is
# {glue:text}`plateau_tight_rma_ratio:.1f` times a random map's. Where a good part of the plateau
# spills past the lesion's edge, the map has found the lesion's neighbourhood but does not decide
# firmly which of a few near-tied pixels sits on it, and the strict pointing game turns on that
# near-tie; the smaller the lesion against the plateau, the more of it spills. Read a strict
# pointing game on lesions of about one cell together with the plateau, the relevance mass and
# the tolerant pointing game of the evaluation chapter, never alone.
#
# A dataset's pointing game is an average over its classes, and the misses need not be spread
# evenly over them. The table splits Grad-CAM's strict score, bicubic and bilinear, and the grid's
# bilinear ceiling by true class.

# %%
by_class = (scores[scores["method"].isin(["gradcam", "gradcam, bilinear", "ceiling (bilinear)"])
                   & (scores["metric"] == "pointing game")]
            .pivot_table(index=["dataset", "class"], columns="method", values="value", aggfunc="mean", sort=False)
            .rename(columns={"gradcam": "Grad-CAM pointing game", "gradcam, bilinear": "read bilinearly"})
            .rename_axis(columns=None)) if len(scores) else pd.DataFrame()
if len(by_class):
    by_class.insert(0, "images", scores[(scores["method"] == "gradcam") & (scores["metric"] == "pointing game")]
                    .groupby(["dataset", "class"], sort=False).size())
    display(by_class.style.format("{:.2f}").format("{:.0f}", subset=["images"])
            .set_caption(f"Grad-CAM's strict pointing game (bicubic; read bilinearly) and the grid's bilinear "
                         f"ceiling per true class, first {n_score} "
                         "lesion images"))
    spread = by_class["Grad-CAM pointing game"].groupby(level="dataset").agg(["min", "max", "idxmin"])
    widest = spread.assign(span=spread["max"] - spread["min"])["span"].idxmax()
    worst = spread.loc[widest, "idxmin"][1]
    glue("class_pg_dataset", widest, display=False)
    glue("class_pg_worst", worst, display=False)
    glue("class_pg_low", float(spread.loc[widest, "min"]), display=False)
    glue("class_pg_high", float(spread.loc[widest, "max"]), display=False)
    glue("class_pg_worst_ceiling", float(by_class.loc[(widest, worst), "ceiling (bilinear)"]), display=False)
    print(f"widest spread between classes: {widest}, from {spread.loc[widest, 'min']:.2f} ({worst}) to "
          f"{spread.loc[widest, 'max']:.2f}")
    change = by_class["Grad-CAM pointing game"] - by_class["read bilinearly"]
    (d_up, c_up), losses = change.idxmax(), change[change < 0]
    row = by_class.loc[(d_up, c_up)]
    glue("class_bicubic_sentence", (
        f"Read bilinearly, {c_up} on {d_up} scores {row['read bilinearly']:.2f} against a bilinear ceiling of "
        f"{row['ceiling (bilinear)']:.2f}, and {row['Grad-CAM pointing game']:.2f} bicubic, the largest gain of "
        "any class" + ("; bicubic interpolation costs hits on " + ", ".join(
            f"{c} on {d} ({by_class.loc[(d, c), 'read bilinearly']:.2f} bilinear, "
            f"{by_class.loc[(d, c), 'Grad-CAM pointing game']:.2f} bicubic)" for d, c in losses.index)
            if len(losses) else "; it costs no class a hit") + "."), display=False)

# %% [markdown]
# The classes differ most on {glue:text}`class_pg_dataset`: Grad-CAM's strict score runs from
# {glue:text}`class_pg_low:.2f` for {glue:text}`class_pg_worst` (whose lesions a bilinear map of the
# grid could hit at {glue:text}`class_pg_worst_ceiling:.2f`) to {glue:text}`class_pg_high:.2f`. A lesion that
# sits in the same anatomical place on every image, as a pituitary tumour sits in the sella, also
# sits at about the same place relative to the cells on every image: what the grid allows, and
# which cell a trained network's evidence favours, then repeats from one image to the next
# instead of averaging out, and a small class can swing a dataset's score.
# {glue:text}`class_bicubic_sentence` Read the per-class
# rows before blaming a method for a dataset's average. (`benchmarks/bench_default_models.py
# --per-class` prints the peak's mean offset from the lesion per class.)
#
# ## The choice of layer
#
# Moving the target layer earlier trades meaning for resolution. The book's ResNet14 has three
# stages. Its third is dilated instead of strided, so `layer3` and `layer2` both read the 12 x 12
# grid (the line printed below gives each layer's grid) and `layer1` 24 x 24 cells; the later
# layer sees further and is more class-specific at the same resolution. Grad-CAM's channel
# weights come from average gradients, which lose their meaning in
# early layers; Layer-CAM weights each location by its own positive gradient and stays usable
# there {cite}`jiang2021layercam`, and it can fuse several stages into one map.

# %%
model = mx.get_trained_model(dataset, arch, profile, seed=seed, progress=False)
test, batch = lesion_images(dataset, model, 3, seed=seed)
# the last three resolution stages of this architecture, from its spec in the model zoo
layers = [mx.models.module_name(model, p) for p in mx.models.arch_spec(arch).stage_layers[-3:]]
cols = {}
for layer in layers:
    for method in ("gradcam", "layercam"):
        cols[f"{method} @ {layer}"] = explain(method, model, batch["image"], layer=layer)
cols["layercam fused"] = explain("layercam", model, batch["image"], fuse_stages=True)
grids = {layer: cols[f"gradcam @ {layer}"].extras["grid"] for layer in layers}     # read off the maps above
print("grid read at each layer: " + ", ".join(f"{layer} {h} x {w}" for layer, (h, w) in grids.items()))
method_grid(batch["image"], cols, masks=batch.get("mask"),
            title=f"{dataset}: early vs late target layers ({arch})")
plt.show()

# %% [markdown]
# How much of each map's relevance falls inside the true lesion (the relevance mass
# accuracy of the evaluation chapter) makes the comparison a number:

# %%
if "mask" in batch:
    import warnings

    with warnings.catch_warnings():      # a map with no positive relevance scores NaN; said below
        warnings.simplefilter("ignore", RuntimeWarning)
        inside = pd.DataFrame({k: relevance_mass_accuracy(None, None, None, v.maps, batch["mask"].numpy(),
                                                          on_constant="nan") for k, v in cols.items()},
                              index=[f"image {i}" for i in range(len(batch["image"]))]).T
    display(inside.style.format("{:.2f}", na_rep="n/a"))
    for k, row in inside.iterrows():
        if row.isna().any():
            print(f"{k}: no positive relevance on {', '.join(row.index[row.isna()])} "
                  "(the rectified map is zero everywhere), so its relevance mass is undefined (n/a)")

# %% [markdown]
# ## Explore
#
# In Jupyter or Colab the widget below lets you pick the method, the image, the layer and the
# class to explain, and redraws the map. The rendered book cannot run widgets, so it shows the
# default selection as a static figure instead.

# %%
fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.2))
explorer_figure(model, test, 0, "gradcam", ax=axes[0])
explorer_figure(model, test, 0, "layercam", layer=layers[0], ax=axes[1])
fig.tight_layout()
plt.show()

# %% tags=["remove-output"]
explore(model, test, methods=CAMS, layers=[l for l in layers if l], **slow_options)

# %% [markdown]
# ## Exercises
#
# ```{exercise-start}
# :label: cam-ex-equivalent
# ```
#
# On a ResNet, the last block is followed by global average pooling and one linear layer.
# Show numerically that CAM, Grad-CAM and HiRes-CAM then give the same map up to a positive
# factor, by correlating their raw (un-normalised) maps `Explanation.raw` on eight test images.
# Why does the argument break for VGG16?
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{solution-start} cam-ex-equivalent
# :class: dropdown
# ```
#
# The gradient of the logit $y^c = \sum_k w_k^c \frac{1}{Z}\sum_{ij} A^k_{ij}$ with respect to
# $A^k_{ij}$ is $w_k^c / Z$ at every location, so Grad-CAM's channel weight is $w^c_k/Z$
# (CAM's weight divided by a constant) and HiRes-CAM's element-wise product sums to the same
# map. VGG16 has three linear layers with ReLUs after the pooling, so the gradient varies with
# the input and the equivalence is lost.

# %%
_, batch8 = lesion_images(dataset, model, 8, seed=seed)
raw = {m: explain(m, model, batch8["image"]).raw.reshape(len(batch8["image"]), -1) for m in ("cam", "gradcam", "hirescam")}
corr = pd.DataFrame({f"cam vs {m}": [np.corrcoef(raw["cam"][i], raw[m][i])[0, 1] for i in range(len(raw["cam"]))]
                     for m in ("gradcam", "hirescam")})
corr.describe().loc[["mean", "min"]].style.format("{:.4f}")

# %% [markdown]
# ```{solution-end}
# ```
#
# ```{exercise-start}
# :label: cam-ex-pointing
# ```
#
# A map "points" at the lesion when its maximum lies inside the true mask. For Grad-CAM at
# `layer1`, `layer2` and `layer3`, compute the fraction of 32 lesion-bearing test images whose
# maximum falls inside the mask, together with the grid of each layer. Which layer points best
# here, and what do the grids predict?
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{solution-start} cam-ex-pointing
# :class: dropdown
# ```

# %%
_, batch32 = lesion_images(dataset, model, 32, seed=seed)
if "mask" in batch32:
    masks32 = batch32["mask"].numpy()
    hit_rates = {}
    for layer in layers:
        maps = explain("gradcam", model, batch32["image"], layer=layer).maps
        peaks = maps.reshape(len(maps), -1).argmax(1)
        hits = masks32.reshape(len(maps), -1)[np.arange(len(maps)), peaks]
        grid = explain("gradcam", model, batch32["image"][:1], layer=layer).extras.get("grid")
        hit_rates[layer] = hits.mean()
        print(f"{layer} ({grid[0]} x {grid[1]} grid): the peak lies in the lesion for "
              f"{hits.mean():.0%} of {len(maps)} images")
    best = max(hit_rates, key=hit_rates.get)
    print(f"Best here: {best}.")

# %% [markdown]
# The printed line above gives this run's answer. Two forces pull in opposite directions: an
# earlier layer can have a finer grid (here `layer1` has four times the cells of `layer3`;
# `layer2` has the same, since the third stage is dilated), so its peak can land inside a lesion
# smaller than a cell of the last grid; but Grad-CAM's averaged
# gradients describe early channels poorly, so the early map may light up edges that are not
# class evidence. The evaluation chapter scores every method this way, beside a random map.
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
# dataset = "figshare-brain-tumor"              # tumour masks: the layer study and scores work
# datasets = ["figshare-brain-tumor", "ham10000", "chest-xray-pneumonia"]
# profile = "paper"                             # 224 px, ImageNet weights (ResNet14: a 14 x 14 grid)
# n_score = 100
# slow_options = {"sscam": {"num_samples": 8}, "iscam": {"num_samples": 8}, "smooth_gradcampp": {"num_samples": 16}}
# ```
#
# `chest-xray-pneumonia` has no masks: it contributes maps and timings but no localisation scores. At 224 px the published networks read a 7 x 7 grid with no dilation, and the ResNet14 a 14 x 14 grid.
#
# ## What to remember
#
# - Every CAM is a weighted sum of one layer's feature maps: it is no sharper than that layer's
#   grid, and its upsampling decides where each cell lands (at its receptive field's centre, or
#   where the trained network's evidence peaks: measured against true lesions) and whether the
#   peak can fall between two cells (bicubic) or only on one (bilinear).
# - The members of the family differ in how they weight the channels (gradients, higher-order
#   terms, scores of masked inputs, ablation, principal components), and so in cost: from one
#   backward pass to one forward pass per channel.
# - Score a CAM against the true lesion and a random map of the same grid before trusting it; the
#   grid and the lesion size set a ceiling on what a bilinearly upsampled CAM can reach.
#
# ```{bibliography}
# :filter: docname in docnames
# ```

# %% tags=["remove-input"]
timer.glue()
