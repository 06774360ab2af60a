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
# # The benchmark, executed
#
# This notebook runs `medxai_lite.bench.run_benchmark`, the code behind `medxai bench`, and
# draws every table and figure of the reproduction from the CSV files it writes (see the
# [previous page](../book/benchmark.md) for what is reproduced and at which scale). A finished
# run is cached under a key of its settings, so a rebuild reads the tables instead of
# recomputing them.

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
# Parameters (papermill can override them). The experiment at its own scale, on a GPU:
# data = "real"; profile = "paper"  (fetch the three datasets first: see the previous page)
data = "phantom"
profile = "cpu"
seed = 0
datasets = None       # None: the data source's three datasets
archs = None          # None: ResNet50, DenseNet121, VGG16, EfficientNet-B0
methods = None        # None: the paper's five CAM methods
n_images = None       # None: the profile's budget (bench.BENCH_BUDGETS)
extended = None       # None: the profile's choice (off on the CPU, on at paper scale); True runs the grid
progress = False      # True: progress bars (worth it for the long paper run)

# %%
import sys

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import plotly.express as px
import plotly.io as pio
from IPython.display import display
from itables import init_notebook_mode

from medxai_lite.bench import (PUBLISHED_CONFIDENCE, SCORE_LABELS, extended_ranks, reproduction_summary, run_benchmark,
                               table_b, train_models)
from medxai_lite.models import cam_grid
from medxai_lite.viz import plot_mean_bars, plot_pvalue_grid, plot_timing, style_verdicts
from medxai_lite.viz.tables import interactive_table, split_table
from medxai_lite.book import chapter_timer, glue

timer = chapter_timer()   # this chapter's wall time, shown in its opening

if "google.colab" not in sys.modules:   # Colab picks its own renderer; the book needs HTML output
    pio.renderers.default = "plotly_mimetype+notebook_connected"
init_notebook_mode(all_interactive=False, connected=False)   # sortable tables that work offline

# %% [markdown]
# Training comes first, as a step of its own: the four networks on each dataset with the
# benchmark's budget, and, when the extended grid runs, a ResNet18 with the same budget for it.
# On a rebuild every network comes from the cache in seconds.

# %%
models = train_models(data, profile, datasets=datasets, archs=archs, extended=extended, seed=seed,
                      progress=progress)
print(f"{len(models)} networks ready")

# %%
result = run_benchmark(data, profile, datasets=datasets, archs=archs, methods=methods, n_images=n_images,
                       extended=extended, seed=seed, progress=progress)
meta = result.meta
print(f"tables in {result.folder}")
print(f"device: {meta['device']}; computed in {meta['wall_seconds']:.0f} s (" + ", ".join(f"{k.replace('_', ' ')} {v:.0f} s" for k, v in meta['phase_seconds'].items()) + ")")
cam_arch = meta["settings"]["cam_arch"]
cam_model = models[(meta["settings"]["datasets"][0], cam_arch)]
size = cam_model.report.settings["image_size"]
grid = cam_grid(cam_model, cam_arch, size)
print(f"{cam_arch} at {size} px, output stride {cam_model.report.settings.get('output_stride', 32)}: "
      f"the CAMs read a {grid[0]} x {grid[1]} grid of {size // grid[0]} px cells "
      "(the paper's ResNet50 at 224 px: 7 x 7 cells of 32 px)")

# %% [markdown]
# ## What reproduced and what did not
#
# Each row is computed from the tables of this run: the published findings the abstract of
# Chaddad et al. states, and the precondition that makes any CAM score worth reading (the maps
# must beat a random map of the same grain). On phantom data a number measured on real images
# can only be rehearsed, never reproduced; the verdict says so.

# %%
style_verdicts(reproduction_summary(result), default="white", hide_index=True,
               caption="What reproduced and what did not (computed from this run)")

# %% [markdown]
# ## Table A: four CNNs on three datasets
#
# Test accuracy and macro-F1 of each network, with the published ResNet50 figure on the
# real skin-cancer data beside ours. Our networks start from random weights and see small
# phantoms (the image size and output stride printed above) for a few epochs; the published
# ones started from ImageNet weights at full size.
# Training from scratch on a few hundred images only works with two standard aids, both
# recorded in the settings: ResNet blocks start as the identity (`zero_init_residual`) and the
# BatchNorm statistics are recomputed on the training set before each validation
# (`precise_bn`). VGG16 gets a token run only: with 138 million parameters and no
# BatchNorm it is the costliest of the four per image on a CPU and did not learn from scratch
# within any budget this page can afford, so expect it near chance.

# %%
acc = result.accuracy
ours = acc.dropna(subset=["macro_f1"])
table_a = ours.pivot(index="arch", columns="dataset", values="accuracy")      # a row per network
table_a_f1 = ours.pivot(index="arch", columns="dataset", values="macro_f1")
display(pd.concat({"accuracy": table_a, "macro-F1": table_a_f1}, axis=1).style.format("{:.3f}")
        .background_gradient(cmap="Greens", vmin=0.4, vmax=1.0)
        .set_caption(f"Table A: test accuracy and macro-F1 ({ours['source'].iloc[0]})"))
display(ours.set_index(["dataset", "arch"])[["n_train", "epochs", "train_seconds"]]
        .rename(columns={"n_train": "training images", "epochs": "epochs run", "train_seconds": "seconds"})
        .style.format("{:.0f}").set_caption("Training budget"))
display(acc[acc["macro_f1"].isna()][["dataset", "arch", "accuracy", "source"]].style.hide(axis="index")
        .format({"accuracy": "{:.4f}"}).set_caption("Published figure, for comparison (different data and scale)"))

# %%
f1 = result.per_class_f1.pivot_table(index=["dataset", "class"], columns="arch", values="f1")
display(f1.style.format("{:.2f}").background_gradient(cmap="Greens", vmin=0, vmax=1).set_caption("Per-class F1"))
# which networks barely learned in this run: macro-F1 under 0.6 (two classes at chance give 0.5 or less)
weak = ours[ours["macro_f1"] < 0.6]
weak_text = ("; ".join(f"{r.arch} on {r.dataset.replace('phantom-', '')} (accuracy {r.accuracy:.2f}, macro-F1 "
                       f"{r.macro_f1:.2f})" for r in weak.itertuples()) or "none")
glue("bench_weak_networks", weak_text, display=False)
print("networks with a macro-F1 under 0.6 in this run:", weak_text)

# %% [markdown]
# ## Table B: the five CAM methods on ResNet50
#
# Mean ROAD (combined MoRF/LeRF), mean change in the target probability when the image is
# multiplied by the map, the fraction of images whose probability rises, and two localisation
# scores the paper could not compute without masks: the pointing game and relevance mass
# accuracy (RMA) against the true lesion (on the images that have one), one table per dataset.
# The row
# `random_map` is a reference that is not in the paper: random maps with the same coarse grain
# as the CAMs (noise on the target layer's grid, upsampled), scored on the same images. A
# method's score means something only by its distance from that row. The published glioma
# figures sit in the last table: they are one of the two confidence readings on real MRI,
# which a phantom cannot reproduce, only rehearse.

# %%
scores, summary = result.scores, result.cam_summary
overall = summary[summary["class"] == "all"]
per_dataset = scores.groupby("dataset")["image"].nunique()
# one table per dataset; each column keeps its own colour scale, as on the whole table
display(split_table(table_b(result).rename(columns=SCORE_LABELS, level=0),
                    lambda part: part.style.format("{:.3f}").background_gradient(cmap="RdYlGn", axis=0),
                    level="dataset", caption=lambda d: f"Table B: {d}, mean over {per_dataset[d]} images"))
per_class = (summary[summary["class"] != "all"].set_index(["dataset", "class", "method"])
             [["road_combined", "confidence_change"]].rename(columns=SCORE_LABELS).rename_axis(columns="metric")
             .unstack(["dataset", "class"]).reorder_levels(["dataset", "metric", "class"], axis=1))
display(split_table(per_class, lambda part: part.style.format("{:+.3f}").background_gradient(
    cmap="RdYlGn", vmin=-0.2, vmax=0.2), level="dataset", caption="Mean ROAD (combined) and confidence change "
                                                                   "per class: {key}"))
display(pd.DataFrame(PUBLISHED_CONFIDENCE).style.format(precision=2).hide(axis="index")
        .set_caption("Published: confidence increase on glioma (Chaddad et al. 2025)"))

# %% [markdown]
# How far is each method from the random reference? Positive: better than a random map of
# the same grain, in each score's own units.

# %%
from medxai_lite.bench import RANDOM_REFERENCE, gap_to_random

display(split_table(gap_to_random(result).rename(columns=SCORE_LABELS, level=0),
                    lambda part: part.style.format("{:+.3f}").background_gradient(cmap="RdYlGn", vmin=-0.1, vmax=0.1),
                    level="dataset", caption="Method minus random reference: {key}"))
undefined = overall.groupby("method")["road_n_undefined"].sum()
print("per-image ROAD scores left out because the map was constant:",
      ", ".join(f"{m} {int(n)}" for m, n in undefined.items() if n) or "none")

# %% [markdown]
# ## Do the CAMs beat a random map?
#
# Before comparing the methods with each other, each one is tested against the random
# reference on the same images: a one-sided paired t-test (is the method's mean score higher?)
# on the pointing game and on ROAD, with Holm's correction over the five methods of each
# dataset and score. A method that does not beat random on a dataset has nothing to say there,
# whatever its rank among the others.

# %%
vs = result.vs_random
if vs.empty:
    print("No comparison with the random reference in this run.")
else:
    wins = vs.assign(beats=vs.p_holm <= 0.05).pivot_table(index="method_a", columns=["metric", "dataset"],
                                                          values="beats", aggfunc="first")
    display(style_verdicts(wins.replace({True: "yes", False: "no"}).rename(columns=SCORE_LABELS, level="metric"),
                           columns=None, default="#f8d7da",
                           caption="Beats the random map (one-sided paired t-test, Holm-adjusted p <= 0.05)"))
    # the main columns first; "Column visibility" shows n, the two means, t, d_z and the raw p
    display(interactive_table(
        vs[["dataset", "metric", "method_a", "n", "mean_a", "mean_b", "mean_diff", "ci_low", "ci_high", "t",
            "d_z", "p", "p_holm", "significant"]].rename(columns={"method_a": "method", "mean_b": "mean_random"})
        .replace({"metric": SCORE_LABELS}).round(4),
        ["dataset", "metric", "method", "mean_diff", "ci_low", "ci_high", "p_holm", "significant"],
        classes="display compact", pageLength=10))

# %% [markdown]
# The column `map mean` in Table B is not a score: it is the mean of the [0, 1] map, the share
# of the image that multiplying by the map keeps. Multiplying a normalised image by a map sets
# every pixel the map ignores to the dataset's mean colour; a map of uniform noise keeps about
# half of every pixel, a CAM that has found a lesion much less of the image. If the confidence
# change mostly tracked that share, a method could raise its score by spreading its map. The
# figure below plots each method's confidence change against how much of the image its maps
# keep, the random reference included, and the printed correlations say how far that holds here.

# %%
conf = scores[scores.metric.isin(["confidence_change", "map_mean"])].pivot_table(
    index=["dataset", "method", "image"], columns="metric", values="value").reset_index()
fig = px.scatter(conf, x="map_mean", y="confidence_change", color="method", facet_col="dataset",
                 hover_data=["image"], labels={"map_mean": "mean map value (share of the image kept)",
                                               "confidence_change": "confidence change"},
                 title="Confidence change against the share of the image each map keeps, one point per image")
fig.update_layout(height=420)
fig.show()
r = conf.groupby("dataset")[["map_mean", "confidence_change"]].corr(method="spearman").xs("map_mean", level=1)
print("Spearman correlation between map mean and confidence change, per dataset:")
print(r["confidence_change"].round(2).to_string())

# %%
ref = overall[overall.method == RANDOM_REFERENCE].set_index("dataset")["confidence_change"]
best = overall[overall.method != RANDOM_REFERENCE].groupby("dataset")["confidence_change"].max()
for d in ref.index:
    print(f"{d}: best method {best[d]:+.3f}, random reference {ref[d]:+.3f} "
          f"({'the random maps lose less' if ref[d] > best[d] else 'the best method loses less'})")

# %% [markdown]
# Where a correlation above is strongly positive, the "image x map" confidence mostly measures
# how much of the image a map keeps; where it is weak, the share kept does not explain the
# score, and the printed comparison with the random reference is the one to read. ROAD, which
# imputes removed pixels from their neighbours and compares removing the most and the least
# relevant pixels, is less exposed to that. The published positive figures come from
# pretrained networks at 224 px, whose 7 x 7 maps can keep the lesion and little else, on
# images a pretrained network has seen the like of; a network trained from scratch on a few
# hundred phantoms meets the mean-coloured background as something new.

# %% [markdown]
# The maps behind Table B: the five methods on two test images of each dataset, from the
# same ResNet50s (from `train_models` above; `medxai_lite.bench.bench_model` loads one on its
# own), with the true lesion outlined.

# %%
from medxai_lite.bench import example_maps
from medxai_lite.viz import method_grid

for d in meta["settings"]["datasets"]:
    # the networks the training step returned; two lesion images, the benchmark's method options
    test, batch, maps = example_maps(models[(d, cam_arch)], d, meta["settings"]["methods"], arch=cam_arch,
                                     profile=profile, seed=seed)
    names = [f"{test.classes[int(c)]} (predicted {test.classes[int(p)]})"
             for c, p in zip(batch["label"], next(iter(maps.values())).targets)]
    method_grid(batch["image"], maps, masks=batch.get("mask"), row_titles=names,
                title=f"{d}: the five CAM methods on {cam_arch}")
    plt.show()

# %% [markdown]
# The grid printed at the top of the page is all the detail these maps have: each cell is
# upsampled to the centre of its receptive field (see the CAM chapter for why that matters).
# Read Table B with these maps in view: a score can rank maps that localise nothing, which is
# why the test against the random reference comes first.

# %%
plot_mean_bars(scores, {"road_combined": "ROAD combined (higher: more faithful)",
                        "confidence_change": "confidence change (mean)"})
plt.show()

# %% [markdown]
# ## Paired t-tests between the methods
#
# Every pair of methods on the same images, for both scores and every dataset: the mean
# difference with its bootstrap 95 % interval, the t statistic, Cohen's $d_z$, the raw p-value
# and the Holm- and Bonferroni-adjusted ones. The table is sortable: click a column header.

# %%
tt = result.ttests.copy()
cols = ["dataset", "metric", "method_a", "method_b", "n", "mean_diff", "ci_low", "ci_high", "t", "d_z", "p",
        "p_holm", "p_bonferroni", "significant"]
# the main columns first; "Column visibility" shows n, t, d_z, the raw and Bonferroni p, and significant
interactive_table(tt[cols].replace({"metric": SCORE_LABELS}).round(4),
                  ["dataset", "metric", "method_a", "method_b", "mean_diff", "ci_low", "ci_high", "p_holm"],
                  classes="display compact", pageLength=10)

# %%
plot_pvalue_grid(tt, column="p_holm")      # -log10 of the Holm-adjusted p of every pair
plt.show()

# %% [markdown]
# ## Time per image

# %%
timing = result.timing
plot_timing(timing.pivot(index="method", columns="dataset", values="mean_s_per_image"),
            timing.pivot(index="method", columns="dataset", values="sd_s_per_image"), figsize=(8, 4),
            xlabel="seconds per image (log scale; bars: mean, whiskers: sd)",
            title=f"Time per image on {timing['device'].iloc[0]}, {timing['arch'].iloc[0]}")
plt.show()
timing.style.format({"mean_s_per_image": "{:.3f}", "sd_s_per_image": "{:.3f}"}).hide(axis="index")

# %% [markdown]
# ## The extended grid: every visual method x every visual metric
#
# Every visual method of the registry's CAM, gradient and perturbation families on a ResNet18
# trained with the benchmark's budget (it is cheap enough for Score-CAM and its relatives, and
# for the perturbation methods' hundreds of masked copies per image), each at the profile's
# preset (`"quick"` on the CPU, the chapters' `"book"` settings at paper scale), scored with the
# localisation metrics against the phantoms' true lesion masks and with the fidelity metrics.
# For metrics where lower is better (deletion AUC, ROAD MoRF) the heatmap ranks by the negated
# value, so that bright always means good. Hover over a cell for the value; the table's
# `seconds per image` column is each method's cost at that preset.
#
# The grid costs 32 methods times 8 metrics per image, so the `cpu` profile leaves it out of the
# book's build (whose budget is 25 minutes for every chapter together); set `extended = True` in
# the parameters cell to run it, on one lesion image per dataset on a CPU. The `paper` profile
# runs it on 32 images per dataset.

# %%
ext = result.extended
if len(ext):
    preset = meta["settings"]["budget"].get("extended_preset") or "default"
    per_family = ext.drop_duplicates("method").groupby("family", sort=False)["method"].apply(list)
    print(f"{ext['method'].nunique()} methods at the {preset!r} preset, {ext['dataset'].nunique()} datasets, "
          f"{meta['settings']['budget']['extended_images']} lesion images each:")
    for family, names in per_family.items():
        print(f"  {family} ({len(names)}): {', '.join(names)}")
    print(f"extended grid computed in {meta['phase_seconds'].get('extended_grid', float('nan')):.0f} s")
    # the main columns first; "Column visibility" shows family, category, direction and image count
    display(interactive_table(ext.round(4), ["dataset", "method", "metric", "value", "seconds_per_image"],
                              classes="display compact", pageLength=10))
    ranked, mean = extended_ranks(ext)     # percentile rank per metric, 1 = best; methods best first
    fig = px.imshow(ranked, color_continuous_scale="Viridis", aspect="auto",
                    labels=dict(x="metric", y="method", color="rank (1 = best)"),
                    title="Extended grid: percentile rank of each method per metric (mean over the phantom sets)")
    fig.update_traces(customdata=mean.values,
                      hovertemplate="%{y} / %{x}<br>value %{customdata:.3f}<br>rank %{z:.2f}<extra></extra>")
    fig.update_layout(height=650)
    fig.show()
else:
    print("The extended grid did not run in this build (extended=False for the "
          f"{profile!r} profile); set extended = True in the parameters cell to run it.")

# %% [markdown]
# ## Exercises
#
# ```{exercise-start}
# :label: bench-ex-reading
# ```
#
# "Confidence increase" has two readings. From `result.scores`, compute for each dataset and
# method both the mean change in the target probability and the fraction of images whose
# probability rises, and say for which methods the two readings rank the methods differently.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{solution-start} bench-ex-reading
# :class: dropdown
# ```

# %%
both = scores[scores.metric.isin(["confidence_change", "confidence_increase"])].pivot_table(
    index=["dataset", "method"], columns="metric", values="value")
ranks = both.groupby(level="dataset").rank(ascending=False)      # tied values share their mean rank
display(both.join(ranks.add_suffix(" rank")).rename(columns=lambda c: c.replace("_", " ")).style.format("{:.3f}"))
for d, r in ranks.groupby(level="dataset"):
    differ = [m for (_, m), row in r.iterrows() if row["confidence_change"] != row["confidence_increase"]]
    n_values = both.loc[d, "confidence_increase"].nunique()
    print(f"{d}: " + ("the fraction is the same for every method, so it does not rank them"
                      if n_values == 1 else
                      f"the two readings place {len(differ)} of {len(r)} methods differently"
                      + (f" ({', '.join(differ)})" if differ else "")
                      + f"; the fraction takes {n_values} distinct values over the methods"))

# %% [markdown]
# The printed lines answer the question for this run. The readings can disagree because the mean
# weighs how far each probability moves and the fraction only whether it rises: a method can
# raise the probability a little on many images yet lower it a lot on a few. With few images per
# dataset the fraction also takes few values, so methods tie on it, and where every method shares
# one value the fraction does not rank them at all. A reproduction has to say which reading it
# reports.
#
# ```{solution-end}
# ```
#
# ```{exercise-start}
# :label: bench-ex-power
# ```
#
# With the few images per dataset the `cpu` budget scores (the solution's table gives n), how large would a difference between two methods
# have to be for a paired t-test to detect it? Using the standard deviation of the per-image
# differences between XGrad-CAM and Grad-CAM++ on confidence change, compute the smallest
# mean difference a two-sided test at $\alpha = 0.05$ detects with 80 % power for the $n$ of this run and
# for $n = 100$ (use the normal approximation $\delta = (z_{0.975} + z_{0.8})\,\sigma_d/\sqrt{n}$).
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{solution-start} bench-ex-power
# :class: dropdown
# ```

# %%
from scipy.stats import norm

s = scores[scores.metric == "confidence_change"].pivot_table(index=["dataset", "image"], columns="method",
                                                              values="value")
if {"xgradcam", "gradcampp"} <= set(s.columns):
    sd = (s["xgradcam"] - s["gradcampp"]).groupby(level="dataset").std()
    z = norm.ppf(0.975) + norm.ppf(0.8)
    n_run = int(s.groupby(level="dataset").size().min())
    display(pd.DataFrame({"sd of differences": sd, f"detectable, n = {n_run}": z * sd / np.sqrt(n_run),
                          "detectable, n = 100": z * sd / np.sqrt(100)}).style.format("{:.4f}"))

# %% [markdown]
# The detectable difference shrinks with the square root of the number of images: the last
# column is what 100 images per dataset could resolve (the `paper` profile scores that many).
# Where the two methods' differences hardly vary from image to image (a standard deviation near
# zero, as when every map yields the same masked image, and so the same score, whatever method
# made it), even a tiny difference is "detectable", and a significant test then says little
# about which method explains better.
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
# data = "real"
# profile = "paper"                             # 224 px, ImageNet weights, 100 images per dataset
# progress = True
# ```
#
# Fetch the three public datasets first (see the page on real data); the run trains twelve networks and takes hours on a Colab GPU.
#
# ## What to remember
#
# - Before ranking explanation methods, check that each one beats a random map on the same
#   images; a ranking among methods that do not is noise.
# - A CPU rehearsal on phantoms tests the procedure, not the published numbers: the image size,
#   the training from scratch and the data all differ from the paper's.
# - Time per image belongs in the choice, and it is measured, not guessed: Ablation-CAM costs one
#   forward pass per channel (here only through the network's head, which the ablated
#   activations feed), EigenGrad-CAM an SVD per image; the timing table says which costs more on
#   this machine.
#
# ```{bibliography}
# :filter: docname in docnames
# ```

# %% tags=["remove-input"]
timer.glue()
