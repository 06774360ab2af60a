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
# 2. **Models.** A ResNet18 per dataset, trained once and then read from the cache, with its
#    accuracy, macro-F1 and confusion matrix on a held-out test split.
# 3. **A first explanation.** One Grad-CAM {cite}`selvaraju2017gradcam` per modality, computed
#    directly with the `pytorch-grad-cam` library and compared with the true lesion outline.
#
# On this page everything runs on a CPU in a few minutes. In Colab, set `datasets` in the
# parameters cell below to the public datasets and `profile = "paper"` (see
# [Running on real data and in Colab](../book/real_data.md)).

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
arch = "resnet18"

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import medxai_lite as mx
from medxai_lite.viz import overlay, plot_confusion, plot_history, show_grid

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
# ## 2. Training the default models
#
# `get_trained_model(dataset, arch, profile)` trains a network once and stores its weights in
# the cache folder under a key made of every setting; later calls, here or in any other
# chapter, load the weights in a second. Training uses AdamW with early stopping on the
# validation macro-F1 and keeps the best epoch's weights.

# %%
models, rows = {}, []
for name in datasets:
    model = mx.get_trained_model(name, arch, profile, seed=seed, progress=False)
    models[name] = model
    rep = model.report
    rows.append({"dataset": name, "model": arch, "test accuracy": rep.test["accuracy"],
                 "macro-F1": rep.test["macro_f1"],
                 **{f"F1 {c}": f for c, f in zip(rep.classes, rep.test["per_class_f1"])},
                 "best epoch": rep.best_epoch, "n test": rep.test["n"]})
table = pd.DataFrame(rows).set_index("dataset")
table.style.format(precision=3, na_rep="")

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
# per modality, explained for its true class; the cyan line is the true lesion.

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
        heat = cam(input_tensor=x, targets=[ClassifierOutputTarget(item["label"])])[0]
    prob = torch.softmax(model(x), 1)[0, item["label"]].item()
    overlay(ax, item["image"], heat, mask=item["mask"].numpy() if "mask" in item else None,
            title=f"{name}\n{test.classes[item['label']]} (p = {prob:.2f})")
fig.suptitle(f"Grad-CAM of {arch} for the true class, {size} px", fontsize=11)
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
# At the CPU profile's 64 px a ResNet18's last block is only 2 x 2 cells, so the map is coarse:
# it can say which part of the image mattered, not trace the lesion's edge. Look also at
# *where* the maps point: if they favour the same cell whatever the lesion's position, the map
# reflects the network's geometry at this resolution more than the lesion, even though the
# predictions are right. That is exactly why explanations have to be checked, not just looked
# at: the CAM chapter shows how the layer choice and the resolution change the picture, and
# the evaluation chapter scores such maps against the true masks and runs the sanity checks.
#
# ## What next
#
# - Every chapter starts with the same two cells: an install cell for Colab and a parameters
#   cell (`dataset`, `profile`, `seed`).
# - `mx.load_dataset(..., shortcut=0.9)` adds a label-correlated artefact (a ruler, a laterality
#   marker, a burnt-in annotation) so you can train a "Clever Hans" model and catch it with an
#   explanation.
#
# ```{bibliography}
# :filter: docname in docnames
# ```
