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
# # Attention maps in practice
#
# This notebook trains the book's small Vision Transformer on the three phantom sets and reads
# its attention four ways: one layer's raw weights, Attention Rollout and Attention Flow
# {cite}`abnar2020quantifying`, and attention weighted by its gradient
# {cite}`chefer2021generic`. Every map is scored against the true lesions beside a random map,
# the chance level and the Grad-CAM of the book's default CNN, so that "the model attends to
# the lesion" is a measured statement, not an impression.

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
dataset = "phantom-brain-mri"     # the dataset of the layer-by-layer figures
datasets = ["phantom-brain-mri", "phantom-skin", "phantom-chest-xray"]
profile = "cpu"
seed = 0
arch = "hybrid_vit"               # the network the attention family reads
cnn_arch = "resnet14"             # the book's default CNN, for the Grad-CAM beside it
n_images = 6                      # lesion images per dataset that are explained and scored
fidelity_steps = 16               # deletion/insertion steps (one forward pass per step and image)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import medxai_lite as mx
from medxai_lite.explain import explain, list_methods, methods_table
from medxai_lite.explain.attention import attention_entropy, attention_weights, rollout_entropy
from medxai_lite.metrics import localisation_table, random_maps, score_summary, score_table
from medxai_lite.models import arch_spec, num_parameters
from medxai_lite.selection import lesion_images
from medxai_lite.viz import explore, explorer_figure, method_grid, plot_score_heatmap, plot_timing
from medxai_lite.viz.attention import entropy_heatmap, plot_attention_heads, plot_entropy_by_layer
from medxai_lite.viz.tables import registry_tables
from medxai_lite.book import chapter_timer, glue

timer = chapter_timer()   # this chapter's wall time, shown in its opening

mx.set_seed(seed)
ATT = list_methods("Attention-based")
# ref: the original paper by first author and year (the chapter page cites each one in full)
registry_tables(methods_table("Attention-based"), ["title", "library", "cost", "ref"])

# %% [markdown]
# ## The model: a hybrid Vision Transformer
#
# A Vision Transformer cut into 16-pixel patches and trained from scratch needs far more images
# than a phantom set has. The book's ViT is the *hybrid* variant of Dosovitskiy et al.
# {cite}`dosovitskiy2021image`: three strided convolution blocks turn the image into a grid of
# tokens, one per 8 x 8 pixel cell, and four transformer blocks mix them. It trains once per
# dataset and is cached, like every model of the book. Its test accuracy sits beside the
# default ResNet14's.

# %%
models, rows = {}, []
for name in datasets:
    vit = mx.get_trained_model(name, arch, profile, seed=seed, progress=False)
    cnn = mx.get_trained_model(name, cnn_arch, profile, seed=seed, progress=False)
    models[name] = (vit, cnn)
    size = vit.report.settings["image_size"]
    rows.append({"dataset": name, f"{arch_spec(arch).title} accuracy": vit.report.test["accuracy"],
                 "macro-F1": vit.report.test["macro_f1"], "epochs": len(vit.report.history),
                 "training (s)": vit.report.seconds,
                 f"{arch_spec(cnn_arch).title} accuracy": cnn.report.test["accuracy"]})
accuracy = pd.DataFrame(rows).set_index("dataset")
vit_model = models[dataset][0]
tokens = vit_model.tokens_grid(size)
glue("vit_params", f"{num_parameters(vit_model) / 1e6:.2f} M", display=False)
glue("vit_tokens", f"{tokens[0]} x {tokens[1]}", display=False)
glue("vit_min_accuracy", f"{accuracy.iloc[:, 0].min():.3f}", display=False)
vit_acc, cnn_acc = accuracy.iloc[:, 0], accuracy[f"{arch_spec(cnn_arch).title} accuracy"]
gap = (cnn_acc - vit_acc).idxmax()
glue("vit_gap_sentence", f"{gap} ({vit_acc[gap]:.3f} against the {arch_spec(cnn_arch).title}'s {cnn_acc[gap]:.3f})",
     display=False)
print(f"{arch_spec(arch).title}: {num_parameters(vit_model) / 1e6:.2f} M parameters, {len(vit_model.blocks)} blocks, "
      f"{vit_model.blocks[0].attn.heads} heads, a {tokens[0]} x {tokens[1]} token grid at {size} px")
accuracy.style.format({c: "{:.3f}" for c in accuracy.columns if "accuracy" in c or "F1" in c} | {"training (s)": "{:.0f}"})

# %% [markdown]
# Trained from scratch on a few hundred images, the ViT trails the ResNet14 most on
# {glue:text}`vit_gap_sentence`. The maps below explain that model, errors included, so read them
# with its accuracy in mind.
#
# ## Where the class token looks, layer by layer
#
# Each panel is the class token's row of one head's attention matrix, over the
# {glue:text}`vit_tokens` patch tokens, drawn at the centre of each token's cell. Heads in the
# first layer tend to look at neighbourhoods or at intensity; by the last layer the class token
# gathers from tokens that have already mixed with each other, so a bright token there stands
# for a region, not for its own 8 x 8 pixels.

# %%
test, batch = lesion_images(dataset, vit_model, n_images, seed=seed)
x = batch["image"]
weights = attention_weights(vit_model, x)                 # [layers, images, heads, tokens, tokens]
plot_attention_heads(x[0], weights[:, 0], mask=batch["mask"][0] if "mask" in batch else None,
                     title=f"{dataset}: the class token's attention per layer and head ({test.classes[int(batch['label'][0])]})")
plt.show()

# %% [markdown]
# ## Does attention grow diffuse with depth?
#
# The entropy of the class token's attention over the patches measures how spread out it is:
# divided by $\log T$ for $T$ patch tokens it is 1 for uniform attention and 0 for attention on
# one token. The rollout's entropy answers the same question for the information accumulated up
# to a layer.

# %%
entropy_rows, curves = [], {}
for name in datasets:
    vit = models[name][0]
    _, b = lesion_images(name, vit, n_images, seed=seed)
    raw = attention_entropy(vit, b["image"]).assign(dataset=name)
    entropy_rows.append(raw)
    roll = rollout_entropy(vit, b["image"])
    curves[name] = {"raw attention (mean of heads)": raw.groupby("layer")["normalised"].mean().values,
                    "rollout up to the layer": roll["normalised"].values}
entropy = pd.concat(entropy_rows, ignore_index=True)
plot_entropy_by_layer(curves, title="How spread out the class token's attention is, layer by layer")
plt.show()
by_layer = entropy.groupby(["dataset", "layer"])["normalised"].mean().unstack("layer")
first, last = by_layer.iloc[:, 0], by_layer.iloc[:, -1]
grows = int((last > first).sum())
glue("entropy_grows", f"{grows} of {len(by_layer)}", display=False)
glue("entropy_first", f"{first.mean():.2f}", display=False)
glue("entropy_last", f"{last.mean():.2f}", display=False)
glue("rollout_last", f"{np.mean([c['rollout up to the layer'][-1] for c in curves.values()]):.2f}", display=False)
print(f"raw attention: normalised entropy {first.mean():.2f} in layer 1 and {last.mean():.2f} in layer "
      f"{by_layer.columns[-1]} (mean of datasets); higher in the last layer on {grows} of {len(by_layer)} datasets")
by_layer.style.format("{:.3f}").background_gradient(cmap="viridis", vmin=0, vmax=1, axis=None)

# %% [markdown]
# In the run above, the normalised entropy of raw attention goes from
# {glue:text}`entropy_first` in the first layer to {glue:text}`entropy_last` in the last
# (mean of the three datasets; higher in the last layer on {glue:text}`entropy_grows`
# datasets), and the rollout of all layers ends at {glue:text}`rollout_last`. Rollout
# multiplies row-stochastic matrices, and such products mix: the further up, the closer every
# row gets to the same broad distribution. That is the diffusion rollout was designed to
# track, and the reason one deep layer's raw weights say little on their own. The heatmap
# below shows every head; hover for the values.

# %%
entropy_heatmap(entropy, title="Normalised entropy of the class token's attention, per layer and head")

# %% [markdown]
# ## Four attention maps beside two Grad-CAMs, on three modalities
#
# The columns: the last layer's raw attention (mean of heads), rollout, flow, gradient-weighted
# attention, then Grad-CAM on the ViT's convolutional stem (the hybrid has one, at the token
# grid) and Grad-CAM on the ResNet14 (a 12 x 12 grid, like the ViT's tokens at 96 px). All explain the true class; the cyan
# outline is the true lesion.

# %%
COLUMNS = {"attention": "raw attention (last layer)", "attention_rollout": "rollout", "attention_flow": "flow",
           "grad_attention": "gradient x attention", "gradcam": "Grad-CAM (ViT stem)"}
runs, timings = {}, []
for name in datasets:
    vit, cnn = models[name]
    test_d, b = lesion_images(name, vit, n_images, seed=seed)
    res = {}
    for method, label in COLUMNS.items():
        res[label] = explain(method, vit, b["image"], b["label"])
        timings.append({"dataset": name, "method": label, "seconds per image": res[label].seconds / len(b["image"])})
    cnn_label = f"Grad-CAM ({arch_spec(cnn_arch).title})"
    res[cnn_label] = explain("gradcam", cnn, b["image"], b["label"])
    timings.append({"dataset": name, "method": cnn_label, "seconds per image": res[cnn_label].seconds / len(b["image"])})
    runs[name] = dict(batch=b, results=res, test=test_d)
    shown = slice(0, 2)
    method_grid(b["image"][shown], {k: v.maps[shown] for k, v in res.items()},
                masks=b["mask"][shown] if "mask" in b else None,
                row_titles=[test_d.classes[int(l)] for l in b["label"][shown]],
                title=f"{name}: attention maps of the {arch_spec(arch).title} and two Grad-CAMs")
    plt.show()

# %%
times = pd.DataFrame(timings).pivot_table(index="method", columns="dataset", values="seconds per image")
times = times.loc[times.mean(axis=1).sort_values().index]
plot_timing(times, title=f"Cost per image on {mx.device()}")
plt.show()
glue("flow_seconds", f"{times.loc['flow'].mean():.2f}", display=False)
glue("rollout_seconds", f"{times.loc['rollout'].mean():.3f}", display=False)
glue("flow_over_rollout", f"{times.loc['flow'].mean() / times.loc['rollout'].mean():.0f}", display=False)

# %% [markdown]
# ### Why the flow map is so flat
#
# A flow from token $j$ can never exceed the capacity leaving $j$ in the first layer,
# $\sum_i \hat A^{(1)}_{ij}$, nor the capacity entering the class token at the top, which is 1.
# The cell below compares every token's flow with that cut bound, on the same images.

# %%
from medxai_lite.explain.attention import attention_flow_matrix, flow_upper_bound, fuse_heads

gaps, saturated = [], []
for name, run in runs.items():
    fused = fuse_heads(attention_weights(models[name][0], run["batch"]["image"]))
    # the raw flow map holds each token's flow at the centre of its cell: every 8th pixel from 0
    token_flows = run["results"]["flow"].raw[:, ::vit_model.patch, ::vit_model.patch].reshape(fused.shape[1], -1)
    for i in range(fused.shape[1]):
        flows, bound = token_flows[i], flow_upper_bound(attention_flow_matrix(fused[:, i]))[1:]
        gaps.append(np.abs(flows - bound).max())
        saturated.append(np.mean(flows > 1 - 1e-4))
glue("flow_bound_gap", f"{max(gaps):.1e}", display=False)
glue("flow_saturated", f"{np.mean(saturated):.0%}", display=False)
print(f"largest |flow - cut bound| over {len(gaps)} images: {max(gaps):.1e}; "
      f"tokens whose flow reaches the maximum of 1: {np.mean(saturated):.0%} on average")

# %% [markdown]
# On this model the flow of every token is its cut bound, to within {glue:text}`flow_bound_gap`
# (the resolution of the integer capacities): with 145 tokens (144 patches and the class token)
# and every weight positive, the
# middle layers offer so many paths that only the two ends limit the flow. Flow therefore shows
# how much attention each token *receives in the first layer*, capped at 1, and
# {glue:text}`flow_saturated` of the tokens reach the cap and tie. That is why the package
# min-max scales the flow map (divided by its maximum it would be nearly uniform), and why its
# pointing game says little: the tied tokens are equal on the grid, and the single peak the
# bicubic upsampling then picks sits where the saturated region's shape happens to overshoot. Abnar and Zuidema introduced flow on sentences of a few dozen
# tokens, where the graph is narrow and its middle layers matter; a ViT's graph is wide.
#
# Rollout is a few matrix products ({glue:text}`rollout_seconds` s per image); flow solves one
# maximum-flow problem per patch token on a graph of (layers + 1) x tokens nodes
# ({glue:text}`flow_seconds` s per image, {glue:text}`flow_over_rollout` times rollout). On a
# ViT-Base at 224 px (196 patch tokens, 12 layers) the graph has three times as many layers as
# this four-block model's and more tokens in each, which is why flow is rarely computed for
# large models.
#
# ## Scores against the true lesions
#
# Localisation: relevance mass accuracy (the share of the map's mass inside the lesion) and the
# pointing game (is the map's peak inside it), strict and with the 15 px tolerance of Zhang et
# al. scaled to the image. The references: uniform noise on the token grid, upsampled as the
# attention maps are (`random`, each token at its patch's centre, bicubic between them) and the
# chance level (the lesion's share of the image).
# Fidelity: deletion and insertion areas under the curve, computed on the model each map
# explains, with `fidelity_steps` steps per curve (each step is one forward pass per image).

# %%
# the phantoms have lesion masks; of the public datasets, figshare-brain-tumor and ham10000 do
scored = {name: run for name, run in runs.items() if "mask" in run["batch"]}
assert scored, "none of the datasets has lesion masks, which the scores below need (figshare-brain-tumor and ham10000 do)"
tables = []
for name, run in scored.items():
    b, res = run["batch"], run["results"]
    maps = {label: r.maps for label, r in res.items()}
    maps["random"] = random_maps(b["image"], grid="cam", model=models[name][0], arch=arch, seed=seed)   # token grid
    tables.append(localisation_table(maps, b["mask"], dataset=name, model_name=arch))
loc = pd.concat(tables, ignore_index=True)
loc_summary = score_summary(loc[loc.metric.isin(["RMA", "pointing game", loc.metric[loc.metric.str.contains("±")].iloc[0]])])
order = list(COLUMNS.values()) + [f"Grad-CAM ({arch_spec(cnn_arch).title})", "random", "chance"]
loc_summary = loc_summary.reindex([m for m in order if m in loc_summary.index])
loc_summary.style.format("{:.2f}").background_gradient(cmap="Greens", vmin=0, vmax=1, axis=None)

# %%
pg = loc[loc.metric == "pointing game"].groupby("method")["value"].mean()
rma = loc[loc.metric == "RMA"].groupby("method")["value"].mean()
attention_labels = [COLUMNS[m] for m in ATT if m in COLUMNS]
beats = [m for m in attention_labels if pg[m] > pg["random"] and rma[m] > rma["random"]]
best = max(attention_labels, key=lambda m: (pg[m], rma[m]))
cnn_label = f"Grad-CAM ({arch_spec(cnn_arch).title})"
glue("att_beats_random", ", ".join(beats) if beats else "none of them", display=False)
glue("att_best", best, display=False)
glue("att_best_pg", f"{pg[best]:.2f}", display=False)
glue("cnn_gradcam_pg", f"{pg[cnn_label]:.2f}", display=False)
glue("random_pg", f"{pg['random']:.2f}", display=False)
glue("vit_gradcam_pg", f"{pg[COLUMNS['gradcam']]:.2f}", display=False)
verdict = "ahead of" if pg[best] > pg[cnn_label] else "level with" if pg[best] == pg[cnn_label] else "behind"
glue("att_vs_cnn", verdict, display=False)
print(f"pointing game, mean of the three datasets: best attention map ({best}) {pg[best]:.2f}, "
      f"{cnn_label} {pg[cnn_label]:.2f}, random {pg['random']:.2f}")
print("beat the random map on both the pointing game and relevance mass:", ", ".join(beats) or "none")
losers = [m for m in attention_labels if m not in beats]
if losers:
    print("did not beat it on both:", ", ".join(losers))

# %%
fidelity = []
FIDELITY = {"deletion": ("deletion", {"steps": fidelity_steps}), "insertion": ("insertion", {"steps": fidelity_steps})}
for name, run in runs.items():
    b, res = run["batch"], run["results"]
    vit, cnn = models[name]
    vit_maps = {label: r.maps for label, r in res.items() if label != cnn_label}
    vit_maps["random"] = random_maps(b["image"], grid="cam", model=vit, arch=arch, seed=seed)   # the token grid
    fidelity.append(score_table(vit_maps, FIDELITY, model=vit, images=b["image"],
                                targets=b["label"], dataset=name, model_name=arch, quiet=True))
    fidelity.append(score_table({cnn_label: res[cnn_label].maps,
                                 "random (CNN)": random_maps(b["image"], grid="cam", model=cnn, arch=cnn_arch, seed=seed)},
                                FIDELITY, model=cnn, images=b["image"], targets=b["label"],
                                dataset=name, model_name=cnn_arch, quiet=True))
fid = pd.concat(fidelity, ignore_index=True)
fid_summary = score_summary(fid)
plot_score_heatmap(fid_summary, title="Deletion AUC (lower is better) and insertion AUC (higher is better)",
                   label="mean AUC")
plt.show()
dele = fid[fid.metric == "deletion"].groupby("method")["value"].mean()
ins = fid[fid.metric == "insertion"].groupby("method")["value"].mean()
faithful = [m for m in attention_labels if dele[m] < dele["random"] and ins[m] > ins["random"]]
glue("att_faithful", ", ".join(faithful) if faithful else "none of them", display=False)
print("attention maps that beat the random map on both deletion and insertion:", ", ".join(faithful) or "none")

# %% [markdown]
# Read the two tables together. In this run the attention maps that beat the random reference
# on both localisation scores are: {glue:text}`att_beats_random`. The best of them,
# {glue:text}`att_best`, finds the lesion with its peak in a share {glue:text}`att_best_pg` of
# the images, {glue:text}`att_vs_cnn` the ResNet14's Grad-CAM ({glue:text}`cnn_gradcam_pg`;
# random {glue:text}`random_pg`). On fidelity, the maps that beat random on both deletion and
# insertion are: {glue:text}`att_faithful`. The two need not agree: attention says which tokens
# the class token *read*, and a token can be read without its content changing the decision,
# which is the gap between attention and explanation that Jain and Wallace
# {cite}`jain2019attention` pointed out in text models. Gradient-weighted attention adds the
# missing half, whether reading a token moves the class score.
#
# ## Explore
#
# In Jupyter or Colab the widget below switches method and image; the rendered book shows the
# default selection as a static figure.

# %%
fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.2))
explorer_figure(vit_model, test, int(batch["index"][0]), "attention_rollout", ax=axes[0])
explorer_figure(vit_model, test, int(batch["index"][0]), "grad_attention", ax=axes[1])
fig.tight_layout()
plt.show()

# %% tags=["remove-output"]
explore(vit_model, test, methods=ATT)

# %% [markdown]
# ## Exercises
#
# ```{exercise-start}
# :label: att-ex-fusion
# ```
#
# Rollout fuses the heads of a layer by their mean. Run `explain("attention_rollout", ...)` with
# `head_fusion="max"` and `"min"` on the lesion images of one dataset and score the three
# versions with `localisation_table`. Which fusion localises best here, and how do the maps
# differ to the eye?
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{solution-start} att-ex-fusion
# :class: dropdown
# ```

# %%
b = runs[dataset]["batch"]
fusions = {f"rollout ({f})": explain("attention_rollout", vit_model, b["image"], b["label"], head_fusion=f).maps
           for f in ("mean", "max", "min")}
fusion_scores = localisation_table(fusions, b["mask"], dataset=dataset, chance=False)
fusion_summary = fusion_scores[fusion_scores.metric.isin(["RMA", "pointing game"])].groupby(
    ["method", "metric"])["value"].mean().unstack("metric")
print(fusion_summary.round(2).to_string())
top = fusion_summary["pointing game"]
print("best pointing game:", " and ".join(top.index[top == top.max()]))

# %% [markdown]
# The table is the run's answer. Max fusion lets the most focused head dominate each layer,
# which sharpens the map when that head looks at the lesion and misleads when it looks at
# something else; min fusion keeps only what every head agrees on and tends to flatten the map.
# The mean sits between the two, which is why Abnar and Zuidema used it.
#
# ```{solution-end}
# ```
#
# ```{exercise-start}
# :label: att-ex-identity
# ```
#
# Suppose every attention matrix of a trained ViT were the identity: each token attends only to
# itself. What would Attention Rollout show for the class token, and would it be right to
# conclude that the model ignores the image?
#
# ```{exercise-end}
# ```
#
# ```{solution-start} att-ex-identity
# :class: dropdown
# ```
#
# The product of identity matrices is the identity, so the class token's rollout row is 1 on
# itself and 0 on every patch: a flat, empty map (the package's tests check exactly this). It
# would be wrong to conclude that the model ignores the image, only that it never moves
# information *between* tokens. If the class token never reads a patch, its prediction can only
# come from its own embedding, which is the same for every image, so such a model would
# predict one class for every input; a model that does better than that must move information
# somewhere, through attention or, in this hybrid, through the convolutional stem before the
# tokens exist. Rollout sees only the first of these routes.
#
# ```{solution-end}
# ```
#
# ## What to remember
#
# - Raw attention of one layer shows what the class token read in that layer, not what decided
#   the class; rollout and flow follow information through all layers.
# - Attention can grow diffuse with depth, and on this run's ViTs it did so on
#   {glue:text}`entropy_grows` datasets only: measure it (entropy) instead of trusting a bright map.
# - Score attention maps like any other: against the lesion, the random map and a CNN baseline.
#
# ## Run it on real data
#
# In Colab with a GPU, set the parameters cell to
# `datasets = ["figshare-brain-tumor", "ham10000"]`, `dataset = "figshare-brain-tumor"` and
# `profile = "paper"` (224 px, a 28 x 28 token grid), then run all cells. These two public sets
# ship lesion masks, which the localisation scores need; a set without masks
# (`brain-tumor-mri`, `chest-xray-pneumonia`) gets the maps and the entropy, and the score cells
# stop with a message saying so. See
# [running on real data](../book/real_data.md) for downloading them.
#
# ```{bibliography}
# :filter: docname in docnames
# ```

# %% tags=["remove-input"]
timer.glue()
