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
# # Getting started: data, models and a first explanation
#
# This chapter walks through the three steps every later chapter builds on:
#
# 1. **Data.** Three phantom datasets that imitate brain MRI, dermoscopy and chest X-ray, each
#    image with its true lesion mask, clinical concept labels and a report sentence.
# 2. **Models.** A ResNet14 (a ResNet18 without its fourth stage) per dataset, trained once and
#    then read from the cache, with its accuracy, macro-F1 and confusion matrix on a held-out
#    test split.
# 3. **A first explanation.** One Grad-CAM {cite}`selvaraju2017gradcam` per modality, computed
#    directly with the `pytorch-grad-cam` library and compared with the true lesion outline.
#
# On this page everything runs on a CPU in a few minutes. In Colab, set `datasets` in the
# parameters cell below to the public datasets and `profile = "paper"` (see
# [Running on real data and in Colab](../book/real_data.md)).
#
# ## Learning objectives
#
# - Load a phantom or public dataset and read an item's image, label, lesion mask, concepts and
#   report.
# - Train (or load from the cache) the book's default model of a dataset and read its scores.
# - Compute a first Grad-CAM and compare it with the true lesion outline.
#
# *Prerequisites:* Python and a first acquaintance with PyTorch; the introduction.
#
# *Time:* in the last build of this book, on two CPU cores, this notebook ran in
# {glue:text}`time_cpu_note:s`. {glue:text}`gpu_getting_started_note:s` The
# [course page](../book/course.md) lists every notebook's times.

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
# Parameters (papermill can override them). Real data in Colab:
# datasets = ["brain-tumor-mri", "isic-benign-malignant", "chest-xray-pneumonia"]; profile = "paper"
datasets = ["phantom-brain-mri", "phantom-skin", "phantom-chest-xray"]
profile = "cpu"
seed = 0
arch = "resnet14"

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import medxai_lite as mx
from medxai_lite.viz import overlay, plot_confusion, plot_history, show_grid
from medxai_lite.viz.tables import TableGroup
from medxai_lite.book import chapter_timer

timer = chapter_timer()   # this chapter's wall time, shown in its opening

mx.set_seed(seed)
settings = mx.PROFILES[profile]
print(f"medxai_lite {mx.__version__}, torch {torch.__version__}, device: {mx.device()}")
print(f"profile {profile!r}: {settings['image_size']} px images, up to {settings['epochs']} epochs")

# %% [markdown]
# ## 1. The data
#
# `load_dataset` returns a PyTorch dataset whose items are dictionaries: a normalised image
# tensor, the label and, where the dataset knows them, the lesion mask, the concept vector and
# a report sentence. The grids below show the test split of each phantom set at 128 px, with
# the true lesion outlined in cyan.

# %%
for name in datasets:
    ds = mx.load_dataset(name, split="test", image_size=128, n=16, seed=seed)
    fig = show_grid(ds, n=16, ncols=8, size=1.6)
    plt.show()

# %% [markdown]
# One item in full: everything a later chapter can score an explanation against.

# %%
ds = mx.load_dataset(datasets[0], split="test", image_size=128, n=16, seed=seed)
item = ds[min(1, len(ds) - 1)]
print("classes:      ", ds.classes)
print("image:        ", tuple(item["image"].shape), item["image"].dtype)
print("label:        ", item["label"], f"({ds.classes[item['label']]})")
if "mask" in item:
    print("mask:         ", tuple(item["mask"].shape), f"{int(item['mask'].sum())} lesion pixels")
if "concepts" in item:
    print("concepts:     ", dict(zip(ds.concept_names, item["concepts"].tolist())))
if "caption" in item:
    print("report:       ", item["caption"])
    print("question/answer pairs:", item["qa"][:3])

# %% [markdown]
# ### How large are the lesions?
#
# An explanation can only be judged against a lesion of realistic size: a map that hits a lesion
# covering half the image proves little, and a network cannot be asked to point at a lesion far
# smaller than what it can resolve. The phantoms draw each lesion's area from a log-normal
# distribution calibrated on the real datasets' masks or boxes (`LESION_SIZES`):
#
# * **brain MRI**: tumour sizes per class of the figshare set of Cheng et al.
#   {cite}`cheng2015enhanced` (512 x 512 slices). No per-class mask statistics are published; the
#   medians are estimates from that set's tumour bounding boxes, an ellipse filling about
#   $\pi/4$ of its box. Pituitary tumours are the smallest, gliomas the largest;
# * **dermoscopy**: lesions cover 21.4 % of the image on average in the ISIC 2018 segmentation
#   masks {cite}`abraham2019focal`, which hold the HAM10000 images {cite}`tschandl2018ham10000`,
#   with a wide, right-skewed spread; melanomas are larger than naevi (the D of the ABCD rule);
# * **chest X-ray**: the RSNA Pneumonia Detection Challenge {cite}`shih2019augmenting` has
#   9,555 boxes on 6,012 positive films, one or two per film (two on about 55 %, nearly always one
#   per lung), the mean box about 220 x 330 px of a 1,024 px film and 7-8 % of the image in area
#   (more than the 6.9 % of the mean sides' product, because wide boxes also tend to be tall), an
#   inscribed opacity about $\pi/4$ of that.
#
# The table gives the calibrated distribution of each class (share of the image at the default
# difficulty); the histograms measure the generated masks of the test split against it. On a
# public dataset with masks (`figshare-brain-tumor`, `ham10000`) the same cell measures the real
# masks instead, so the calibration can be checked wherever the data is at hand.

# %%
from IPython.display import display

from medxai_lite.data.phantoms import LESION_SIZES, lesion_shares

display(pd.DataFrame([{"dataset": d, "class": c, "median share": v["median"], "log-normal sigma": v["sigma"],
                       "range": f"{v['low']:.1%} - {v['high']:.1%}", "source": v["source"]}
                      for (d, c), v in LESION_SIZES.items()])
        .style.format({"median share": "{:.1%}", "log-normal sigma": "{:.2f}"}).hide(axis="index")
        .set_caption("Calibrated lesion sizes (per pneumonia opacity; a film has one or two)"))
fig, axes = plt.subplots(1, len(datasets), figsize=(4.6 * len(datasets), 3.4), squeeze=False)
for ax, name in zip(axes[0], datasets):
    ds = mx.load_dataset(name, split="test", image_size=128, n=400, seed=seed)
    masks = getattr(ds, "masks", None)
    if masks is None:   # a public dataset: read the masks item by item, where it has them
        items = [ds[i] for i in range(len(ds))]
        masks = np.stack([it["mask"].numpy() for it in items]) if all("mask" in it for it in items) else None
    if masks is None:
        ax.set_axis_off()
        ax.set_title(f"{name}: no masks")
        continue
    shares = lesion_shares(masks)
    for c, cls in enumerate(ds.classes):
        part = shares[(ds.labels == c) & (shares > 0)]
        if len(part):
            ax.hist(100 * part, bins=np.logspace(-1, 2, 31), alpha=0.6,
                    label=f"{cls} (median {100 * np.median(part):.1f} %)")
    ax.set_xscale("log")
    ax.set_xlabel("lesion share of the image (%, log scale)")
    ax.set_ylabel("test images")
    ax.set_title(name)
    ax.legend(fontsize=7)
fig.suptitle("Lesion sizes of the test split", fontsize=11)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Training the default models
#
# `get_trained_model(dataset, arch, profile)` trains a network once and stores its weights in
# the cache folder under a key made of every setting; later calls, here or in any other
# chapter, load the weights in a second. Training uses AdamW with early stopping on the
# validation macro-F1 and keeps the best epoch's weights; a perfect validation score ends
# training at once, since no later epoch could replace it. On a CPU with native bfloat16
# arithmetic (recent Intel Xeons) the training steps run in mixed precision, about twice as fast;
# elsewhere, and for every score and explanation, the arithmetic is float32. The first table says
# which one each model was trained in, and how long it took; the second gives the F1 score of
# each class.

# %%
models, rows = {}, []
for name in datasets:
    model = mx.get_trained_model(name, arch, profile, seed=seed, progress=False)
    models[name] = model
    rep = model.report
    rows.append({"dataset": name, "model": arch, "test accuracy": rep.test["accuracy"],
                 "macro-F1": rep.test["macro_f1"],
                 **{f"F1 {c}": f for c, f in zip(rep.classes, rep.test["per_class_f1"])},
                 "best epoch": rep.best_epoch, "n test": rep.test["n"],
                 "training": rep.settings.get("precision", "fp32"), "training s": rep.seconds})
table = pd.DataFrame(rows).set_index("dataset")
f1_columns = [c for c in table.columns if c.startswith("F1 ")]     # each dataset has its own classes
per_class = (table[f1_columns].stack().dropna().rename("F1").rename_axis(["dataset", "class"])
             .rename(lambda c: c.removeprefix("F1 "), level="class").to_frame())
TableGroup([table.drop(columns=f1_columns).style.format(precision=3, formatter={"training s": "{:.0f}"}),
            per_class.style.format("{:.3f}").set_caption("F1 per class on the test split")])

# %%
fig, axes = plt.subplots(2, len(datasets), figsize=(5.2 * len(datasets), 8.5), squeeze=False)
for j, name in enumerate(datasets):
    rep = models[name].report
    plot_history(axes[0, j], rep.history, title=f"{name}: training")
    plot_confusion(axes[1, j], rep.test["confusion"], rep.classes, title=f"{name}: test confusion")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. A first explanation: Grad-CAM through pytorch-grad-cam
#
# Grad-CAM weights each channel $k$ of a late convolutional layer by the average gradient of
# the class score $y^c$ over that channel, $\alpha_k^c = \frac{1}{Z}\sum_{i,j}
# \partial y^c / \partial A^k_{ij}$, and keeps the positive part of the weighted sum,
# $L^c = \mathrm{ReLU}(\sum_k \alpha_k^c A^k)$. `medxai_lite.target_layer` names the layer for
# each architecture (the last residual block of a ResNet). Below, one test image with a lesion
# per modality, explained for its true class; the cyan line is the true lesion. The cell calls
# pytorch-grad-cam directly, then the same method through `medxai_lite.explain`, which places
# each cell of the 12 x 12 grid on the centre of its receptive field instead of the middle of
# its block of pixels, and interpolates bicubically between the cells where the library does so
# bilinearly (the CAM chapter explains both); the figure shows the latter. The printed offset
# between the two peaks is the sum of both differences.

# %%
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

fig, axes = plt.subplots(1, len(datasets), figsize=(4.6 * len(datasets), 4.2), squeeze=False)
for ax, name in zip(axes[0], datasets):
    model = models[name]
    size = model.report.settings["image_size"]
    test = mx.load_dataset(name, split="test", image_size=size, n=64, seed=seed)
    # the first test image with a lesion: by its mask where the dataset has masks, else by class
    healthy = [c for c, cls in enumerate(test.classes) if "normal" in cls.lower() or cls.lower().startswith("no")]
    with_lesion = [k for k in range(len(test)) if "mask" in test[k] and test[k]["mask"].any()]
    i = with_lesion[0] if with_lesion else int(np.flatnonzero(~np.isin(test.labels, healthy))[0])
    item = test[i]
    x = item["image"][None].to(mx.device())
    with GradCAM(model=model, target_layers=[mx.target_layer(model, arch)]) as cam:
        library_heat = cam(input_tensor=x, targets=[ClassifierOutputTarget(item["label"])])[0]
    heat = mx.explain("gradcam", model, x, targets=[item["label"]]).maps[0]   # the same CAM, registered, bicubic
    shift = np.subtract(np.unravel_index(library_heat.argmax(), library_heat.shape),
                        np.unravel_index(heat.argmax(), heat.shape))
    prob = torch.softmax(model(x), 1)[0, item["label"]].item()
    overlay(ax, item["image"], heat, mask=item["mask"].numpy() if "mask" in item else None,
            title=f"{name}\n{test.classes[item['label']]} (p = {prob:.2f})")
    print(f"{name}: the library's own resize puts the peak {shift[0]:+d} px down, {shift[1]:+d} px right "
          "of the book's (placement and interpolation together)")
grid = mx.cam_grid(model, arch, size)
fig.suptitle(f"Grad-CAM of {arch} for the true class, {size} px, a {grid[0]} x {grid[1]} grid", fontsize=11)
fig.tight_layout()
plt.show()

# %% [markdown]
# ```{exercise-start}
# :label: gs-ex-shortcut
# ```
#
# **A shortcut in the data.** `load_dataset(name, shortcut=s)` puts an artefact on a fraction
# `s` of the images of one class (see `medxai_lite.data.SHORTCUT_CLASS`) and on none of the
# others. Load 200 training images of `phantom-skin` with `shortcut=0.9`, find which class
# carries the ruler (the dataset's `meta["artefact"]` flags it per image) and in what fraction
# of its images. Show four images that carry it.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{solution-start} gs-ex-shortcut
# :class: dropdown
# ```

# %%
from medxai_lite.data import SHORTCUT_CLASS

skin = mx.load_dataset("phantom-skin", split="train", image_size=128, n=200, seed=seed, shortcut=0.9)
artefact = skin.meta["artefact"]
for c, cls in enumerate(skin.classes):
    print(f"{cls:15s}: ruler on {artefact[skin.labels == c].mean():.0%} of {int((skin.labels == c).sum())} images")
print("shortcut class:", skin.classes[SHORTCUT_CLASS["phantom-skin"]])
fig = show_grid(skin, indices=list(np.flatnonzero(artefact)[:4]), ncols=4, size=2.0,
                title="phantom-skin with shortcut=0.9: the ruler appears on melanomas only")
plt.show()

# %% [markdown]
# A model trained on these images can reach a high accuracy by looking at the ruler instead of
# the lesion; an explanation that lights up the ruler gives it away.
#
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise-start}
# :label: gs-ex-accuracy
# ```
#
# A model reaches 99 % test accuracy on `phantom-chest-xray`. Give two reasons why this says
# nothing about whether its Grad-CAM will point at the consolidation.
#
# ```{exercise-end}
# ```
#
# ```{solution-start} gs-ex-accuracy
# :class: dropdown
# ```
#
# 1. The model may be right for the wrong reason: a label-correlated artefact (the shortcut of the
#    exercise above) gives the same accuracy with no attention to the lung at all.
# 2. Even a model that uses the lesion may not let a CAM show it: the map can be no finer than the
#    grid of the layer it reads, and a bilinear upsampling puts its peak at a cell centre, so a
#    lesion smaller than a cell can be missed (the book's maps upsample bicubically, which lets the
#    peak fall between two cells, as the CAM chapter measures). Accuracy measures the output, an explanation measures a path to
#    it; each has to be checked on its own, which the CAM and evaluation chapters do.
#
# ```{solution-end}
# ```


# %% tags=["remove-cell"]
# The notebooks' times on a GPU, for the course page: a recorded run (benchmarks/bench_notebooks.py),
# since the machine that builds the book has none.
from pathlib import Path

from medxai_lite.book import duration, glue, recorded_gpu_times

gpu_times = recorded_gpu_times()
gpu_machine = gpu_times.attrs["machine"]
for name in sorted({p.stem for p in Path(".").glob("*.ipynb")} | set(gpu_times.index)):
    row = gpu_times.loc[name] if name in gpu_times.index else None
    ok = row is not None and bool(row["ok"])
    glue(f"gpu_{name}_run", f"{row['run_min']:.1f}" if ok else "not measured", display=False)
    glue(f"gpu_{name}_train", f"{row['train_min']:.1f}" if ok else "not measured", display=False)
    side_by_side = f", {row['jobs']} notebooks side by side" if ok and row["jobs"] > 1 else ""
    glue(f"gpu_{name}_note", (f"In one recorded run on a GPU ({gpu_machine['gpu']}, "
                              f"{gpu_times.attrs['threads'] or gpu_machine['cpus']} CPU threads{side_by_side}) it took "
                              f"{duration(row['total_min'])}"
                              + (f", {duration(row['train_min'])} of it training models the cache lacked."
                                 if row["train_min"] >= 0.5 / 60 else " (it trains no model or found them cached).")
                              ) if ok else "No run of it on a GPU has been recorded.", display=False)
glue("gpu_machine", f"one {gpu_machine['gpu']} with {gpu_times.attrs['threads'] or gpu_machine['cpus']} CPU threads "
     f"per notebook (torch {gpu_machine['torch']}, {gpu_machine['date']}, commit {gpu_machine.get('commit') or '?'})",
     display=False)
glue("gpu_jobs", gpu_times.attrs["jobs"], display=False)
glue("gpu_n_measured", int(gpu_times["ok"].sum()), display=False)
glue("gpu_total_min", float(gpu_times.loc[gpu_times["ok"], "total_min"].sum()), display=False)

# %% [markdown]
# The map is as coarse as the grid printed in the title: it can say which part of the image
# mattered, not trace the lesion's edge. Look also at *where* the maps point: a map that
# favours the same place whatever the lesion's position reflects the network's geometry more
# than the lesion, even when the predictions are right. That is why explanations have to be
# checked, not just looked at: the CAM chapter scores every CAM against the true lesions and a
# random map, and the evaluation chapter adds the fidelity metrics and the sanity checks.
#
# ## What next
#
# - Every chapter starts with the same two cells: an install cell for Colab and a parameters
#   cell (`dataset`, `profile`, `seed`).
# - `mx.load_dataset(..., shortcut=0.9)` adds a label-correlated artefact (a ruler, a laterality
#   marker, a burnt-in annotation). The [challenges chapter](../book/challenges.md) trains such a
#   "Clever Hans" model, catches it with its explanations and with test sets that remove or move
#   the artefact, and cures it.
#
# ## What to remember
#
# - Three calls carry the whole book: `load_dataset`, `get_trained_model` (trained once, then
#   cached) and `explain`.
# - The phantoms come with lesion masks, concepts and reports, so every explanation can be checked
#   against a known answer.
# - A map is as coarse as the layer it reads and has to be scored, not only looked at.
#
# ```{bibliography}
# :filter: docname in docnames
# ```

# %% tags=["remove-input"]
timer.glue()
