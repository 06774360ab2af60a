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
# # Gradient and backpropagation methods in practice
#
# This notebook runs the gradient family of the [previous page](../book/gradient.md) through
# `medxai_lite.explain`, which wraps captum {cite}`kokhlikyan2020captum`, zennit
# {cite}`anders2021software` and PAIR's `saliency` package. Beyond the maps and their cost it
# checks, on the trained models, the property that defines each attribution method:
# completeness for Integrated Gradients, summation-to-delta for DeepLIFT, conservation for LRP.

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
dataset = "phantom-brain-mri"     # the dataset of the property checks and the explorer
datasets = ["phantom-brain-mri", "phantom-skin", "phantom-chest-xray"]   # the side-by-side grids
profile = "cpu"
seed = 0
arch = "resnet14"
n_images = 2
method_options = {"integrated_gradients": {"n_steps": 32}, "smoothgrad": {"nt_samples": 8},
                  "xrai": {"steps": 16}, "deepshap": {"n_noise": 4}}

# %%
import copy

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

import medxai_lite as mx
from medxai_lite.explain import METHODS, compatibility_matrix, explain, list_methods, methods_table
from medxai_lite.selection import lesion_images
from medxai_lite.viz import explore, explorer_figure, method_grid, plot_timing
from medxai_lite.viz.tables import compatibility_tables, registry_tables
from medxai_lite.book import chapter_timer

timer = chapter_timer()   # this chapter's wall time, shown in its opening

mx.set_seed(seed)
GRADS = list_methods("Gradient-based")
print(len(GRADS), "gradient-family methods:", ", ".join(GRADS))


# %% [markdown]
# ## The registry and the compatibility matrix
#
# Computed from the registry at build time. LRP with the plain epsilon rule is refused on
# networks with batch normalisation (the BatchNorm layers must first be merged into the
# convolutions, which zennit's canonizers do for the composite rule); the ReLU-based rules of
# DeconvNet and Guided Backpropagation have no counterpart for EfficientNet's SiLU.
#
# The registry gives each method's backing library, cost class and original paper (first author
# and year; the chapter page cites each paper in full), then the options it accepts.
# In the compatibility matrix a refused pair reads `no [k]`, and note k below it gives the reason.

# %%
registry_tables(methods_table("Gradient-based"), ["title", "library", "cost", "ref"])

# %%
matrix = compatibility_matrix(family="Gradient-based")
compatibility_tables(matrix)      # "no [k]": the reason is note k, below the matrix

# %% [markdown]
# ## Every method on the three modalities
#
# Attribution maps are signed and pixel-level; to compare them with the CAM family they are
# reduced over the colour channels (the largest absolute value for gradient images, the signed
# sum for attributions that add up to a score, whose absolute value is then taken, as the chapter
# page explains) and scaled to [0, 1] (the contract of `Explanation.maps`; the signed values stay
# in `Explanation.raw`).

# %%
timings = []
for name in datasets:
    model = mx.get_trained_model(name, arch, profile, seed=seed, progress=False)
    test, batch = lesion_images(name, model, n_images, seed=seed)
    results = {}
    for method in GRADS:
        if not METHODS[method].supports(arch):
            continue
        res = explain(method, model, batch["image"], **method_options.get(method, {}))
        results[method] = res
        timings.append({"dataset": name, "method": method, "seconds per image": res.seconds / len(batch["image"])})
    method_grid(batch["image"], results, masks=batch.get("mask"),
                row_titles=[test.classes[int(l)] for l in batch["label"]],
                title=f"{name}: gradient-family maps of a {arch} (display clipped at the 99th percentile)",
                clip_percentile=99)
    plt.show()

# %%
times = pd.DataFrame(timings).pivot_table(index="method", columns="dataset", values="seconds per image")
times = times.loc[times.mean(axis=1).sort_values().index]
plot_timing(times, title=f"Gradient-family cost on a {arch}, {mx.device()}")
plt.show()

# %% [markdown]
# ## Checking the defining properties
#
# **Completeness** of Integrated Gradients {cite}`sundararajan2017axiomatic`: the attributions
# sum to $f(x) - f(x')$ for the baseline $x'$, up to the error of the quadrature that approximates
# the path integral (Gauss-Legendre points in captum; the check below uses 64).
# **Summation-to-delta** of DeepLIFT {cite}`shrikumar2017learning`: the same identity holds
# exactly for its multipliers. **Conservation** of LRP {cite}`bach2015pixel`: the relevance of
# all pixels adds up to the explained logit (here without the share absorbed by bias terms).

# %%
model = mx.get_trained_model(dataset, arch, profile, seed=seed, progress=False)
test, batch = lesion_images(dataset, model, 4, seed=seed)
x = batch["image"]
with torch.no_grad():
    logits = model(x.to(mx.device())).cpu()
rows = []
for baseline in ("black", "blur", "mean"):
    res = explain("integrated_gradients", model, x, baseline=baseline, n_steps=64)
    total = res.extras["attributions"].reshape(len(x), -1).sum(1)
    rows.append({"method": f"Integrated Gradients ({baseline})", "sum of attributions": total.mean(),
                 "target: f(x) - f(baseline) (LRP: f(x))": (total - res.extras["convergence_delta"]).mean(),
                 "max |error|": np.abs(res.extras["convergence_delta"]).max()})
res = explain("deeplift", model, x)
total = res.extras["attributions"].reshape(len(x), -1).sum(1)
rows.append({"method": "DeepLIFT (black)", "sum of attributions": total.mean(),
             "target: f(x) - f(baseline) (LRP: f(x))": (total - res.extras["convergence_delta"]).mean(),
             "max |error|": np.abs(res.extras["convergence_delta"]).max()})
if METHODS["lrp_composite"].supports(arch):
    res = explain("lrp_composite", model, x)
    rel = res.raw.reshape(len(x), -1).sum(1)
    logit = logits[torch.arange(len(x)), torch.as_tensor(res.targets)].numpy()
    rows.append({"method": "LRP composite (zennit)", "sum of attributions": rel.mean(),
                 "target: f(x) - f(baseline) (LRP: f(x))": logit.mean(), "max |error|": np.abs(rel - logit).max()})
pd.DataFrame(rows).set_index("method").style.format("{:.4f}")

# %% [markdown]
# The baseline decides what Integrated Gradients explains *against*. On MRI a black image is
# the background outside the head, so a black baseline asks "why this image rather than no
# head at all"; a blurred copy keeps the anatomy and asks about the fine detail, such as the
# lesion's edge {cite}`sturmfels2020visualizing`.

# %%
cols = {f"IG, {b} baseline": explain("integrated_gradients", model, x, baseline=b, n_steps=32)
        for b in ("black", "blur", "mean")}
method_grid(x, cols, masks=batch.get("mask"), clip_percentile=99,
            title=f"{dataset}: Integrated Gradients against three baselines")
plt.show()

# %% [markdown]
# ## A sanity check in miniature
#
# Adebayo et al. {cite}`adebayo2018sanity` asked whether a map changes when the model it
# explains is destroyed. Below, every weight of a copy of the model is re-drawn at random and
# the maps are compared with the trained model's by Spearman rank correlation. A method whose
# maps barely change explains the *image* (its edges) more than the *model*. The evaluation
# chapter runs the full cascading test.

# %%
random_model = copy.deepcopy(model)
torch.manual_seed(seed)
for module in random_model.modules():
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
random_model.eval()
sanity = []
for method in ("saliency", "guided_backprop", "deconvnet", "integrated_gradients", "gradcam"):
    if method not in METHODS or not METHODS[method].supports(arch):
        continue
    a = explain(method, model, x).maps
    b = explain(method, random_model, x, targets=explain(method, model, x).targets).maps
    rho = [spearmanr(a[i].ravel(), b[i].ravel())[0] for i in range(len(x))]
    sanity.append({"method": method, "Spearman (trained vs random weights)": np.nanmean(rho)})
pd.DataFrame(sanity).set_index("method").style.format("{:.2f}").background_gradient(cmap="Reds", vmin=0, vmax=1)

# %% [markdown]
# ## Explore
#
# In Jupyter or Colab the widget below lets you pick the method, the image and the class; the
# rendered book shows the default selection as a static figure.

# %%
fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.2))
explorer_figure(model, test, 0, "integrated_gradients", ax=axes[0])
explorer_figure(model, test, 0, "smoothgrad", ax=axes[1])
fig.tight_layout()
plt.show()

# %% tags=["remove-output"]
supported = [m for m in GRADS if METHODS[m].supports(arch)]
explore(model, test, methods=supported, **method_options)

# %% [markdown]
# ## Exercises
#
# ```{exercise-start}
# :label: grad-ex-steps
# ```
#
# The completeness error of Integrated Gradients shrinks as the number of integration steps
# grows. Measure the largest absolute error `extras["convergence_delta"]` on four images for
# 4, 16, 32 (the book's default) and 64 steps, and find the smallest number of steps that keeps the error below 5 % of
# $|f(x) - f(x')|$ on every image.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{solution-start} grad-ex-steps
# :class: dropdown
# ```

# %%
for steps in (4, 16, 32, 64):
    res = explain("integrated_gradients", model, x, n_steps=steps)
    total = res.extras["attributions"].reshape(len(x), -1).sum(1)
    gap = np.abs(total - res.extras["convergence_delta"])
    rel = np.abs(res.extras["convergence_delta"]) / np.maximum(gap, 1e-9)
    print(f"{steps:3d} steps: max |error| {np.abs(res.extras['convergence_delta']).max():.4f}, "
          f"max relative error {rel.max():.1%}")

# %% [markdown]
# ```{solution-end}
# ```
#
# ```{exercise-start}
# :label: grad-ex-smooth
# ```
#
# SmoothGrad {cite}`smilkov2017smoothgrad` averages the gradient over noisy copies of the
# image. Compute `saliency` and `smoothgrad` with 4 and 16 samples on the same images and
# measure how much of each map's relevance falls inside the lesion mask. Does averaging move
# relevance onto the lesion, or only make the map look smoother?
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{solution-start} grad-ex-smooth
# :class: dropdown
# ```

# %%
if "mask" in batch:
    m = batch["mask"].numpy()
    for name, res in [("saliency", explain("saliency", model, x)),
                      ("smoothgrad, 4 samples", explain("smoothgrad", model, x, nt_samples=4)),
                      ("smoothgrad, 16 samples", explain("smoothgrad", model, x, nt_samples=16))]:
        inside = (res.maps * m).sum((1, 2)) / res.maps.sum((1, 2))
        print(f"{name:24s} relevance inside the lesion: {inside.mean():.2f} (lesion covers {m.mean():.2f} of the image)")

# %% [markdown]
# Averaging removes the high-frequency speckle of the raw gradient; whether it also moves mass
# onto the lesion depends on the model. A map can look cleaner without being more faithful,
# which is why the evaluation chapter scores maps instead of judging them by eye.
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
# profile = "paper"                             # 224 px, ImageNet weights
# method_options = {"integrated_gradients": {"n_steps": 64}, "smoothgrad": {"nt_samples": 50},
#                   "xrai": {"steps": 32}, "deepshap": {"n_noise": 16}}
# ```
#
# The budgets are the ones the methods' papers use; each costs that many backward passes per image.
#
# ## What to remember
#
# - Gradient methods explain at pixel resolution, but a raw gradient describes only the local
#   slope of the network, which saturates; path methods (Integrated Gradients, DeepLIFT, SHAP)
#   accumulate it from a baseline, and the baseline is part of the answer.
# - Properties such as completeness are checked in the run, not assumed: the notebook measures
#   them for the methods that claim one (Integrated Gradients, DeepLIFT, LRP).
# - Some backpropagation rules can draw edges whatever the weights are {cite}`adebayo2018sanity`; a map
#   that looks sharp still needs the randomisation check of the evaluation chapter, which says
#   whether they do on the book's models.
#
# ```{bibliography}
# :filter: docname in docnames
# ```

# %% tags=["remove-input"]
timer.glue()
