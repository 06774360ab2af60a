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
# torchcam {cite}`fernandez2020torchcam`. It shows which method runs on which of the five
# architectures, the maps side by side on the three phantom modalities with the true lesion
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
arch = "resnet18"
n_images = 2                      # images per dataset in the grids
# sample budgets of the costly methods (one forward pass per channel and sample)
slow_options = {"sscam": {"num_samples": 1, "batch_size": 128}, "iscam": {"num_samples": 1, "batch_size": 128},
                "scorecam": {"batch_size": 128}, "ablationcam": {"batch_size": 128},
                "smooth_gradcampp": {"num_samples": 4}}

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display

import medxai_lite as mx
from medxai_lite.data import lesion_batch
from medxai_lite.explain import compatibility_matrix, explain, list_methods, methods_table
from medxai_lite.viz import explore, explorer_figure, method_grid, overlay

mx.set_seed(seed)
CAMS = list_methods("CAM-based")
print(len(CAMS), "CAM-family methods:", ", ".join(CAMS))


def lesion_images(name, model, n, seed=seed):
    """``n`` test images with a lesion (by mask, where the dataset has masks), at the model's image size."""
    test = mx.load_dataset(name, split="test", image_size=model.report.settings["image_size"], n=64, seed=seed)
    return test, lesion_batch(test, n)


# %% [markdown]
# ## The registry: what each method needs and costs
#
# Each entry records the backing library, whether the method needs gradients, and a cost class
# (`fast`: one forward and backward pass; `slow`: one forward pass per channel of the target
# layer, or per noise sample).

# %%
methods_table("CAM-based")[["title", "library", "needs_gradients", "cost", "paper", "options"]]

# %% [markdown]
# ## Which method runs on which architecture
#
# The table is computed from the registry at build time. A method is marked `yes` only where
# its defining property holds on that architecture, as checked by the test suite; otherwise the
# cell gives the reason, and `explain` raises the same message. The original CAM, for example,
# needs global average pooling followed by a single linear layer, which VGG16's three-layer
# classifier does not have.

# %%
matrix = compatibility_matrix(family="CAM-based")
short = matrix.apply(lambda col: col.str.slice(0, 60))
short.style.map(lambda v: "background-color: #d9f2d9" if v == "yes" else "background-color: #f8d7da")

# %% [markdown]
# ## Every method on the three modalities
#
# A ResNet18 per dataset (trained once, then read from the cache), two test images with a
# lesion each, every CAM-family method explaining the predicted class. The cyan line is the
# true lesion. At the `cpu` profile's 64 px, the last residual block of a ResNet18 is a 2 x 2
# grid, so these maps can only say *which quadrant* mattered; the layer study below shows the
# price of looking earlier.

# %%
timings = []
for name in datasets:
    model = mx.get_trained_model(name, arch, profile, seed=seed, progress=False)
    test, batch = lesion_images(name, model, n_images)
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
# target layer (512 on a ResNet18's last block, 2,048 on a ResNet50's), and SS-CAM and IS-CAM
# multiply that by their number of noise samples, which this page keeps small.

# %%
times = pd.DataFrame(timings).pivot_table(index="method", columns="dataset", values="seconds per image")
times = times.loc[times.mean(1).sort_values().index]
fig, ax = plt.subplots(figsize=(8, 5))
times.plot.barh(ax=ax, logx=True)
ax.set_xlabel("seconds per image (log scale)")
ax.set_ylabel("")
ax.set_title(f"CAM-family cost on a {arch}, {mx.device()}")
ax.grid(axis="x", alpha=0.3)
fig.tight_layout()
plt.show()
times.style.format("{:.3f}")

# %% [markdown]
# ## The choice of layer
#
# Moving the target layer earlier trades meaning for resolution: `layer2` of a ResNet18 sees
# 8 x 8 cells at 64 px, `layer3` 4 x 4, `layer4` 2 x 2. Grad-CAM's channel weights come from
# average gradients, which lose their meaning in early layers; Layer-CAM weights each location
# by its own positive gradient and stays usable there {cite}`jiang2021layercam`, and it can fuse
# several stages into one map.

# %%
model = mx.get_trained_model(dataset, arch, profile, seed=seed, progress=False)
test, batch = lesion_images(dataset, model, 3)
layers = ["layer2", "layer3", "layer4"] if arch.startswith("resnet") else [None]
cols = {}
for layer in layers:
    for method in ("gradcam", "layercam"):
        cols[f"{method} @ {layer}"] = explain(method, model, batch["image"], layer=layer)
cols["layercam fused"] = explain("layercam", model, batch["image"], fuse_stages=True)
method_grid(batch["image"], cols, masks=batch.get("mask"),
            title=f"{dataset}: early vs late target layers ({arch})")
plt.show()

# %% [markdown]
# How much of each map's relevance falls inside the true lesion (the relevance mass
# accuracy of the evaluation chapter) makes the comparison a number:

# %%
def mass_inside(maps, masks):
    maps, masks = np.asarray(maps), np.asarray(masks, dtype=bool)
    return (maps * masks).sum((1, 2)) / np.maximum(maps.sum((1, 2)), 1e-12)

if "mask" in batch:
    inside = pd.DataFrame({k: mass_inside(v.maps, batch["mask"]) for k, v in cols.items()},
                          index=[f"image {i}" for i in range(len(batch["image"]))]).T
    display(inside.style.format("{:.2f}"))

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
_, batch8 = lesion_images(dataset, model, 8)
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
# `layer3` and at `layer4`, compute the fraction of 32 lesion-bearing test images whose maximum
# falls inside the mask. Which layer points better here, and why might the answer change at
# 224 px?
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{solution-start} cam-ex-pointing
# :class: dropdown
# ```

# %%
_, batch32 = lesion_images(dataset, model, 32)
if "mask" in batch32 and arch.startswith("resnet"):
    masks32 = batch32["mask"].numpy()
    for layer in ("layer3", "layer4"):
        maps = explain("gradcam", model, batch32["image"], layer=layer).maps
        peaks = maps.reshape(len(maps), -1).argmax(1)
        hits = masks32.reshape(len(maps), -1)[np.arange(len(maps)), peaks]
        print(f"{layer}: the peak lies in the lesion for {hits.mean():.0%} of {len(maps)} images")

# %% [markdown]
# At 64 px, `layer4` has only four cells, so its upsampled peak sits at the centre of a
# quadrant and often misses a small lesion even when the right quadrant lit up; `layer3`
# resolves four times as many cells. At 224 px the last block has 7 x 7 cells and the gap
# narrows, while the late layer's stronger class selectivity starts to pay off. The
# evaluation chapter turns this check into the pointing game and scores it on every method.
#
# ```{solution-end}
# ```
#
# ```{bibliography}
# :filter: docname in docnames
# ```
