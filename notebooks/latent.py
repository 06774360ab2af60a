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
# # Latent-space maps in practice
#
# The [previous page](../book/latent.md) explains what a map of a network's feature space can
# and cannot show. This notebook draws such maps for the book's three default models and
# measures them:
#
# 1. **Features.** The input of each model's final linear layer, for a few hundred test images.
# 2. **Three projections.** PCA, t-SNE and UMAP of the same features, scored by trustworthiness,
#    continuity and a k-nearest-neighbour check, with an interactive map that shows the image
#    under the pointer.
# 3. **Sensitivity.** The same features under a grid of perplexities, neighbourhood sizes and
#    minimum distances, and under several seeds.
# 4. **A misleading cluster.** A model that learnt a shortcut draws two clean clusters that look
#    like a class split; the numbers show what they really follow.
#
# Every number quoted in the text below comes from this run.

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
datasets = ["phantom-brain-mri", "phantom-skin", "phantom-chest-xray"]   # the book's default models
profile = "cpu"
arch = "resnet14"
seed = 0
n_points = 300                    # test images per dataset
k_quality = 10                    # neighbours of trustworthiness and continuity
k_knn = 5                         # neighbours of the k-NN check
explore_dataset = "phantom-brain-mri"      # the interactive map of section 2
explore_concept = "ring enhancement"       # its concept colouring
grid_dataset = "phantom-brain-mri"         # the sensitivity study
perplexities = [5, 30, 100]
umap_neighbors = [5, 15, 50]
umap_min_dists = [0.0, 0.1, 0.5]
stability_seeds = [0, 1, 2]
shortcut_dataset = "phantom-skin"          # the misleading cluster: a phantom (only they can move the artefact)
shortcut = 1.0                    # the challenges chapter's shortcut model (artefact on every melanoma)
n_shortcut = 200                  # test images of the shortcut study
demo_method = "umap"              # the projection of the shortcut study
shortcut_concept = "diameter"     # the concept colouring of its interactive map
thumbnail_px = 40                 # side of the hover thumbnails (they all go into the page)

# %%
import time

import matplotlib.pyplot as plt
from IPython.display import display
import numpy as np
import pandas as pd
import torch

import medxai_lite as mx
from medxai_lite.book import chapter_timer, glue   # glue prints where no book is built (Colab)
from medxai_lite.latent import (TITLES, class_islands, classifier_head, cluster_separation, knn_accuracy,
                                mix_features, penultimate_features, project, projection_table, seed_stability,
                                sensitivity_grid)
from medxai_lite.shortcuts import TEST_SETS, shortcut_test_sets
from medxai_lite.viz.latent import latent_scatter, plot_projection_grid, with_thumbnails

mx.set_seed(seed)
timer = chapter_timer()   # this chapter's wall time, shown in its opening

# %% [markdown]
# ## Where the survey's studies use these methods
#
# The modality atlas (`medxai_lite.atlas`) holds the survey's Tables 2-10 as data. The studies
# that use a latent-based method:

# %%
from medxai_lite.atlas import atlas_long, atlas_table

long = atlas_long()
latent_rows = long[long.family == "Latent-based"]
studies = (latent_rows.groupby(["table", "sub_modality", "reference", "task"], sort=False)["method"]
           .agg(", ".join).reset_index())
vlm = atlas_table(10)
vlm = vlm[vlm.methods.str.contains("SNE|UMAP", case=False)]
studies = pd.concat([studies, vlm.rename(columns={"image_modality": "sub_modality", "methods": "method"})
                     .assign(task="(vision-language model)")[studies.columns]], ignore_index=True)
glue("lat_atlas_n", len(studies), display=False)
glue("lat_atlas_refs", ", ".join(f"[{r}]" for r in studies.reference), display=False)
studies.rename(columns={"sub_modality": "modality", "method": "latent method(s)"}).style.hide(axis="index") \
    .set_caption("Studies of the survey's Tables 2-10 that use t-SNE or UMAP")

# %% [markdown]
# ## 1. The features
#
# `penultimate_features` runs each default model once over `n_points` test images and records,
# with a forward hook on the final linear layer, what goes into it: for the default ResNet14 of
# the book, the 256 globally pooled activations of the last convolutional block. It keeps the labels,
# predictions, concept labels and images of the same items. The check in the last column: the
# head applied to the recorded features gives back the model's logits.

# %%
feats, models = {}, {}
for name in datasets:
    model = mx.get_trained_model(name, arch, profile, seed=seed, progress=False)
    size = model.report.settings["image_size"]
    data = mx.load_dataset(name, "test", image_size=size, n=n_points, seed=seed)
    feats[name] = penultimate_features(model, data)
    models[name] = model

rows = []
for name, f in feats.items():
    head = classifier_head(models[name])
    with torch.no_grad():
        again = head(torch.from_numpy(f.features).to(head.weight.device)).cpu().numpy()
    x = f.features
    centred = x - x.mean(0)
    var = np.linalg.svd(centred, compute_uv=False) ** 2
    rows.append({"dataset": name, "images": len(f), "classes": len(f.classes), "feature size": x.shape[1],
                 "accuracy": float(f.correct.mean()), "variance in 2 PCs": var[:2].sum() / var.sum(),
                 "variance in 50 PCs": var[:50].sum() / var.sum(), "active units": int((x.std(0) > 1e-6).sum()),
                 "max |head(features) - logits|": float(np.abs(again - f.logits).max())})
overview = pd.DataFrame(rows)
glue("lat_n_points", n_points, display=False)
glue("lat_feature_size", int(overview["feature size"].iloc[0]), display=False)
glue("lat_var50_min", float(overview["variance in 50 PCs"].min()), display=False)
glue("lat_var2_max", float(overview["variance in 2 PCs"].max()), display=False)
glue("lat_var2_min", float(overview["variance in 2 PCs"].min()), display=False)
(overview.style.hide(axis="index")
 .format({"accuracy": "{:.3f}", "variance in 2 PCs": "{:.2f}", "variance in 50 PCs": "{:.3f}",
          "max |head(features) - logits|": "{:.1e}"})
 .set_caption("The penultimate features of the three default models on their test images"))

# %% [markdown]
# Before t-SNE and UMAP, `project` reduces the features to their first 50 principal components
# (the column "variance in 50 PCs" is what they keep) and does not standardise them: the head
# reads the raw features, so their raw Euclidean geometry is the one that matters to the model.

# %% [markdown]
# ## 2. Three projections of the same features
#
# Each feature set is projected by PCA (linear, a reference), t-SNE (perplexity 30)
# {cite}`vandermaaten2008visualizing` and UMAP (15 neighbours, minimum distance 0.1)
# {cite}`mcinnes2018umap`, all with seed `seed`. Each map is scored by
# {cite}`venna2001neighborhood`:
#
# - **trustworthiness** at `k_quality` neighbours: are the neighbours a reader sees in the map
#   true neighbours in the feature space?
# - **continuity**: are the true neighbours kept together in the map?
# - **k-NN accuracy**: a `k_knn`-nearest-neighbour classifier of the true class, 5-fold
#   cross-validated, in the map and in the feature space. A projection cannot add information,
#   so the gap between the two is class structure the map has lost.
#
# UMAP's first call in a fresh process compiles umap-learn's numba code; it is timed apart.

# %%
first = feats[datasets[0]]
t0 = time.perf_counter()
project(first, "umap", seed=seed)
umap_first = time.perf_counter() - t0
t0 = time.perf_counter()
project(first, "umap", seed=seed)
umap_again = time.perf_counter() - t0
print(f"UMAP on {len(first)} points: first call {umap_first:.1f} s (numba compilation included), "
      f"second call {umap_again:.2f} s")
glue("lat_umap_first_s", umap_first, display=False)
glue("lat_umap_again_s", umap_again, display=False)
glue("lat_umap_compile_s", umap_first - umap_again, display=False)

# %%
main = projection_table(feats, ("pca", "tsne", "umap"), seed=seed, n_neighbors=k_quality, knn=k_knn)
scores = main.table
for name in datasets:
    part = scores[scores.set == name].set_index("method")
    subtitles = {m: f"T = {part.loc[m, 'trustworthiness']:.3f}, C = {part.loc[m, 'continuity']:.3f}\n"
                    f"k-NN accuracy {part.loc[m, 'knn accuracy']:.2f}" for m in part.index}
    f = feats[name]
    plot_projection_grid({TITLES[m]: main.embeddings[(name, m)] for m in ("pca", "tsne", "umap")},
                         np.asarray(f.classes, dtype=object)[f.labels], order=f.classes,
                         subtitles={TITLES[m]: subtitles[TITLES[m]] for m in ("pca", "tsne", "umap")},
                         title=f"{name}: {len(f)} test images, penultimate features of the default model "
                               f"(k-NN accuracy in the features {part['knn accuracy (features)'].iloc[0]:.2f})")
    plt.show()

# %%
wide = scores.pivot_table(index="set", columns="method", values=["trustworthiness", "continuity", "knn accuracy"],
                          sort=False)
wide[("knn accuracy", "features")] = scores.groupby("set", sort=False)["knn accuracy (features)"].first()
wide = wide[[(s, m) for s in ("trustworthiness", "continuity") for m in ("PCA", "t-SNE", "UMAP")]
            + [("knn accuracy", m) for m in ("features", "PCA", "t-SNE", "UMAP")]]
for name in datasets:
    key = name.replace("phantom-", "").replace("-", "_")
    for m in ("PCA", "t-SNE", "UMAP"):
        mk = m.lower().replace("-", "")
        glue(f"lat_T_{key}_{mk}", float(wide.loc[name, ("trustworthiness", m)]), display=False)
        glue(f"lat_C_{key}_{mk}", float(wide.loc[name, ("continuity", m)]), display=False)
        glue(f"lat_knn_{key}_{mk}", float(wide.loc[name, ("knn accuracy", m)]), display=False)
    glue(f"lat_knn_{key}_features", float(wide.loc[name, ("knn accuracy", "features")]), display=False)
timing = scores.groupby("method", sort=False)["seconds"].mean()
for m in ("PCA", "t-SNE", "UMAP"):
    glue(f"lat_seconds_{m.lower().replace('-', '')}", float(timing[m]), display=False)

mean_T = scores.groupby("method")["trustworthiness"].mean()
mean_C = scores.groupby("method")["continuity"].mean()
best_T, worst_T = mean_T.idxmax(), mean_T.idxmin()
best_C = mean_C.idxmax()
linear_sentence = (f"Averaged over the three datasets, {best_T} has the highest trustworthiness ({mean_T[best_T]:.3f}) "
                   f"and {worst_T} the lowest ({mean_T[worst_T]:.3f}); {best_C} has the highest continuity "
                   f"({mean_C[best_C]:.3f}).")
gaps = (scores["knn accuracy (features)"] - scores["knn accuracy"])
largest = scores.loc[gaps.idxmax()]
knn_sentence = (f"The largest loss of k-NN accuracy is {largest['method']} on {largest['set']}: "
                f"{largest['knn accuracy (features)']:.3f} in the features, {largest['knn accuracy']:.3f} in the map"
                if gaps.max() > 0 else "No map loses k-NN accuracy against the features")
map_knn, feat_knn = scores["knn accuracy"].min(), scores["knn accuracy (features)"].min()
if map_knn >= feat_knn - 0.02:
    separation = (f"Every map keeps the classes about as separable as the features do: the k-NN accuracy is at least "
                  f"{map_knn:.3f} in the maps and {feat_knn:.3f} in the features, so the maps differ in their local "
                  "detail rather than in the class structure")
else:
    separation = (f"Some maps lose class structure: the k-NN accuracy falls to {map_knn:.3f} in the worst map, "
                  f"against at least {feat_knn:.3f} in the features")
glue("lat_quality_sentence", linear_sentence, display=False)
glue("lat_knn_sentence", knn_sentence, display=False)
glue("lat_separation_sentence", separation, display=False)
print(linear_sentence)
print(knn_sentence + ".")
print(separation + ".")
print(f"mean time per projection of {n_points} points: " + ", ".join(f"{m} {s:.2f} s" for m, s in timing.items()))
(wide.style.format("{:.3f}")
 .set_caption(f"Trustworthiness and continuity (k = {k_quality}) of each map, and k-NN accuracy "
              f"(k = {k_knn}) in the features and in each map"))

# %% [markdown]
# ### The map to explore
#
# Point at a dot to see its image, its class and the model's prediction beside the map; the menu
# switches the colouring between the true class, whether the prediction is right, a concept
# label and (in section 4) the shortcut artefact. Wrong predictions are worth a look: in a good
# map they sit at the border between two classes, or inside the wrong one.

# %%
f = feats[explore_dataset]
emb = main.embeddings[(explore_dataset, "umap")]
fig = latent_scatter(emb, f.colours([explore_concept] if explore_concept else []), hover=f.hover_text(),
                     axis_label="UMAP",
                     title=f"{explore_dataset}: UMAP of the default model's features ({len(f)} test images)")
with_thumbnails(fig, f.images, captions=f.hover_text(), size=thumbnail_px)

# %% [markdown]
# ## 3. Sensitivity to the settings and the seed
#
# The same features of `grid_dataset`, projected by t-SNE at each perplexity and by UMAP at each
# pair of neighbourhood size and minimum distance, all with one seed. Perplexity and
# `n_neighbors` set how many neighbours each point attends to; `min_dist` sets how tightly UMAP
# may pack points together. Besides the three scores of section 2, each map gets a count of
# **islands per class**: into how many separate pieces each class's 5-nearest-neighbour graph
# falls, averaged over the classes. It has no distance scale, so the features are measured the
# same way: a class that is one cloud in the features and several islands in the map has been
# cut up by the projection, one of the ways t-SNE misleads that Wattenberg et al. illustrate
# {cite}`wattenberg2016how`.

# %%
grid = sensitivity_grid(feats[grid_dataset], perplexities=perplexities, n_neighbors=umap_neighbors,
                        min_dists=umap_min_dists, seed=seed, k=k_quality, knn=k_knn)
gt = grid.table.set_index("setting")
sub = {s: f"T = {gt.loc[s, 'trustworthiness']:.3f}, C = {gt.loc[s, 'continuity']:.3f}" for s in gt.index}
g = feats[grid_dataset]
classes_of = np.asarray(g.classes, dtype=object)[g.labels]
tsne_keys = [s for s in gt.index if gt.loc[s, "method"] == "t-SNE"]
umap_keys = [s for s in gt.index if gt.loc[s, "method"] == "UMAP"]
plot_projection_grid({s: grid.embeddings[s] for s in tsne_keys}, classes_of, order=g.classes, subtitles=sub,
                     title=f"{grid_dataset}: t-SNE at three perplexities")
plt.show()
plot_projection_grid({s.replace("UMAP ", "UMAP\n"): grid.embeddings[s] for s in umap_keys}, classes_of,
                     order=g.classes, subtitles={s.replace("UMAP ", "UMAP\n"): sub[s] for s in umap_keys},
                     ncols=len(umap_min_dists), axis_label="UMAP",
                     title=f"{grid_dataset}: UMAP, n_neighbors down, min_dist across")
plt.show()

# %%
scored = ["trustworthiness", "continuity", "knn accuracy", "islands per class", "seconds"]
t_lo, t_hi = gt["trustworthiness"].idxmin(), gt["trustworthiness"].idxmax()
c_lo, c_hi = gt["continuity"].idxmin(), gt["continuity"].idxmax()
grid_sentence = (f"trustworthiness ranges from {gt.loc[t_lo, 'trustworthiness']:.3f} ({t_lo}) to "
                 f"{gt.loc[t_hi, 'trustworthiness']:.3f} ({t_hi}), continuity from {gt.loc[c_lo, 'continuity']:.3f} "
                 f"({c_lo}) to {gt.loc[c_hi, 'continuity']:.3f} ({c_hi}), and the k-NN accuracy in the map from "
                 f"{gt['knn accuracy'].min():.3f} to {gt['knn accuracy'].max():.3f}")
t_span = gt["trustworthiness"].max() - gt["trustworthiness"].min()
c_span = gt["continuity"].max() - gt["continuity"].min()
span = max(t_span, c_span)
grid_verdict = (f"Trustworthiness and continuity move little across the grid (by at most {span:.3f}), but the "
                "pictures change" if span < 0.02 else
                f"Trustworthiness and continuity move by up to {span:.3f} across the grid, and the pictures change "
                "with them")
glue("lat_grid_verdict", grid_verdict, display=False)
glue("lat_grid_sentence", grid_sentence, display=False)
glue("lat_grid_n", len(gt), display=False)
glue("lat_grid_seconds", float(gt["seconds"].sum()), display=False)
print(f"{len(gt)} maps of {grid_dataset} in {gt['seconds'].sum():.1f} s: {grid_sentence}.")

feature_islands = float(class_islands(g.features, g.labels).mean())
most = gt["islands per class"].idxmax()
fewest = gt["islands per class"].idxmin()
islands_sentence = (f"In the features, the classes of {grid_dataset} fall into {feature_islands:.2f} pieces each on "
                    f"average (1: every class is one connected cloud). In the maps, from "
                    f"{gt.loc[fewest, 'islands per class']:.2f} ({fewest}) to {gt.loc[most, 'islands per class']:.2f} "
                    f"({most})")
glue("lat_islands_sentence", islands_sentence, display=False)
glue("lat_islands_features", feature_islands, display=False)
glue("lat_islands_max", float(gt.loc[most, "islands per class"]), display=False)
glue("lat_islands_max_setting", most, display=False)
print(islands_sentence + ".")
# one table per method, each with its own settings' columns (one table with both did not fit the column)
formats = {"perplexity": "{:g}", "n_neighbors": "{:g}", "min_dist": "{:g}", "trustworthiness": "{:.3f}",
           "continuity": "{:.3f}", "knn accuracy": "{:.2f}", "islands per class": "{:.2f}", "seconds": "{:.2f}"}
for method, own in (("t-SNE", ["perplexity"]), ("UMAP", ["n_neighbors", "min_dist"])):
    part = grid.table.loc[grid.table["method"] == method, own + scored]
    display(part.style.hide(axis="index").format({c: f for c, f in formats.items() if c in part})
            .set_caption(f"{grid_dataset}: every {method} setting of the grid, scored (k = {k_quality})"))

# %% [markdown]
# ### Seeds
#
# The same projection run with each seed of `stability_seeds`. Two maps are compared by
# Procrustes analysis: after the best rotation, reflection and scaling of one onto the other,
# the disparity is the share of squared distance left (0: the same map). t-SNE is run twice:
# from the PCA initialisation it uses by default, and from random positions drawn with the seed,
# the comparison Kobak and Linderman made {cite}`kobak2021initialization`.

# %%
runs = {"t-SNE (PCA start)": ("tsne", {}), "t-SNE (random start)": ("tsne", {"init": "random"}),
        "UMAP": ("umap", {})}
stab, rows = {}, []
for label, (method, extra) in runs.items():
    stab[label] = seed_stability(feats[grid_dataset], method, seeds=stability_seeds, k=k_quality, **extra)
    rows.append({"projection": label, **stab[label].summary()})
stability = pd.DataFrame(rows).set_index("projection")
for label, key in zip(runs, ("tsne_pca", "tsne_random", "umap")):
    glue(f"lat_disparity_{key}", float(stability.loc[label, "mean disparity"]), display=False)
    glue(f"lat_trange_{key}", float(stability.loc[label, "trustworthiness range"]), display=False)
t_range = stability["trustworthiness range"].max()
moved = stability["max disparity"].idxmax()
seed_sentence = (f"Across seeds the trustworthiness of each projection varied by at most {t_range:.4f}, even for "
                 f"{moved}, whose maps differed most (Procrustes disparity up to "
                 f"{stability.loc[moved, 'max disparity']:.2f}): maps of the same quality placed the same groups "
                 "differently" if t_range < 0.01 else
                 f"Across seeds the trustworthiness varied by up to {t_range:.4f}, and the maps of {moved} differed "
                 f"most (Procrustes disparity up to {stability.loc[moved, 'max disparity']:.2f})")
glue("lat_seed_sentence", seed_sentence, display=False)
print(seed_sentence + ".")
panels = {f"{label}\nseed {s}": stab[label].embeddings[s] for label in ("t-SNE (random start)", "UMAP")
          for s in stability_seeds}
plot_projection_grid(panels, classes_of, order=g.classes, ncols=len(stability_seeds),
                     axis_label={k: "t-SNE" if k.startswith("t-SNE") else "UMAP" for k in panels},
                     title=f"{grid_dataset}: the same features, projected with {len(stability_seeds)} seeds")
plt.show()
(stability.style.format("{:.4f}")
 .set_caption(f"Procrustes disparity between the maps of {len(stability_seeds)} seeds, and the range of their "
              "quality scores"))

# %% [markdown]
# ## 4. A misleading cluster
#
# The challenges chapter trained a "shortcut model": the same ResNet14 on skin phantoms in which
# every melanoma carries a ruler. It is read from the cache here, beside the book's default
# model of the same data, which never saw a ruler. Each model's features are taken on three
# versions of the same `n_shortcut` test images, which differ only in the artefact:
#
# - **as in training**: the ruler on every melanoma and on no naevus;
# - **artefact independent of class**: each image taken at random from the set above or from the
#   set in which the ruler sits on every naevus instead, so that half of each class carries it;
# - **without the artefact**.
#
# In each map the clusters are measured by the silhouette score {cite}`rousseeuw1987silhouettes`
# of two groupings, by class and by artefact, in the map and in the feature space.

# %%
sc_model = mx.get_trained_model(shortcut_dataset, arch, profile, seed=seed, shortcut=shortcut, progress=False)
clean_model = mx.get_trained_model(shortcut_dataset, arch, profile, seed=seed, progress=False)
sc_size = sc_model.report.settings["image_size"]
sets = shortcut_test_sets(shortcut_dataset, shortcut, n=n_shortcut, image_size=sc_size, seed=seed)
take_moved = np.random.default_rng(seed).random(n_shortcut) < 0.5
VERSIONS = ("as in training", "artefact independent of class", "without the artefact")
versions = {}
for model_name, model in (("shortcut model", sc_model), ("clean model", clean_model)):
    same = penultimate_features(model, sets[TEST_SETS[0]])
    moved = penultimate_features(model, sets[TEST_SETS[2]])
    versions[(model_name, VERSIONS[0])] = same
    versions[(model_name, VERSIONS[1])] = mix_features(same, moved, take_moved)
    versions[(model_name, VERSIONS[2])] = penultimate_features(model, sets[TEST_SETS[1]])

rows, demo_emb = [], {}
for (model_name, version), f in versions.items():
    y = project(f, demo_method, seed=seed)
    demo_emb[(model_name, version)] = y
    groups = {"class": f.labels, "artefact": f.artefact}
    in_map, in_feats = cluster_separation(y, groups), cluster_separation(f.features, groups)
    rows.append({"model": model_name, "test set": version, "accuracy": float(f.correct.mean()),
                 "artefact share": float(f.artefact.mean()),
                 "map: by class": in_map["class"], "map: by artefact": in_map["artefact"],
                 "features: by class": in_feats["class"], "features: by artefact": in_feats["artefact"],
                 "k-NN accuracy in the map": knn_accuracy(y, f.labels, k=k_knn, seed=seed)})
demo = pd.DataFrame(rows).set_index(["model", "test set"])
(demo.style.format("{:.2f}", na_rep="n/a")
 .set_caption(f"{shortcut_dataset}: silhouette scores by class and by artefact, in the {TITLES[demo_method]} map and "
              "in the features (n/a: no image carries the artefact)"))

# %%
panels, colour, shape, sub = {}, {}, {}, {}
for (model_name, version), f in versions.items():
    key = f"{model_name}\n{version}"
    panels[key] = demo_emb[(model_name, version)]
    colour[key] = np.asarray(f.classes, dtype=object)[f.labels]
    shape[key] = np.where(f.artefact, "ruler", "no ruler")
    r = demo.loc[(model_name, version)]
    art = "n/a" if np.isnan(r["map: by artefact"]) else f"{r['map: by artefact']:.2f}"
    sub[key] = f"silhouette: class {r['map: by class']:.2f}, artefact {art}"
plot_projection_grid(panels, colour, style=shape, order=versions[("shortcut model", VERSIONS[0])].classes,
                     style_title="artefact", subtitles=sub, ncols=3, axis_label=TITLES[demo_method], size=3.0,
                     title=f"{shortcut_dataset}: {TITLES[demo_method]} maps of two models on three versions of the "
                           f"same {n_shortcut} test images")
plt.show()

# %%
d = demo
s_same, s_mix, s_free = (d.loc[("shortcut model", v)] for v in VERSIONS)
c_same, c_mix, c_free = (d.loc[("clean model", v)] for v in VERSIONS)
for tag, r in (("s_same", s_same), ("s_mix", s_mix), ("s_free", s_free), ("c_same", c_same), ("c_mix", c_mix),
               ("c_free", c_free)):
    glue(f"lat_sil_class_{tag}", float(r["map: by class"]), display=False)
    glue(f"lat_fsil_class_{tag}", float(r["features: by class"]), display=False)
    glue(f"lat_acc_{tag}", float(r["accuracy"]), display=False)
    if not np.isnan(r["map: by artefact"]):
        glue(f"lat_sil_art_{tag}", float(r["map: by artefact"]), display=False)
        glue(f"lat_fsil_art_{tag}", float(r["features: by artefact"]), display=False)
glue("lat_n_shortcut", n_shortcut, display=False)
glue("lat_demo_method", TITLES[demo_method], display=False)
follows = "the artefact" if s_mix["map: by artefact"] > s_mix["map: by class"] + 0.05 else (
    "the class" if s_mix["map: by class"] > s_mix["map: by artefact"] + 0.05 else "neither grouping clearly")
collapse = s_free["map: by class"] < s_same["map: by class"] - 0.1
clean_keeps = min(c_mix["map: by class"], c_free["map: by class"]) > c_same["map: by class"] - 0.1
split = "splits the classes cleanly" if s_same["map: by class"] > 0.5 else "separates the classes only partly"
shortcut_part = (f"On the images as in training, the shortcut model's map {split} (silhouette by class "
                 f"{s_same['map: by class']:.2f}). Once the ruler no longer goes with the class, its clusters follow "
                 f"{follows}: silhouette {s_mix['map: by artefact']:.2f} by artefact against "
                 f"{s_mix['map: by class']:.2f} by class, and the model's accuracy is {s_mix['accuracy']:.2f}. "
                 f"Without any ruler the class split {'collapses' if collapse else 'does not collapse'} (silhouette by "
                 f"class {s_free['map: by class']:.2f}, accuracy {s_free['accuracy']:.2f}).")
clean_values = (f"{c_same['map: by class']:.2f}, {c_mix['map: by class']:.2f} and "
                f"{c_free['map: by class']:.2f}")
clean_part = (f"The clean model's map keeps its class split on all three versions (silhouette by class {clean_values})."
              if clean_keeps else f"The clean model's silhouette by class is {clean_values} on the three versions.")
verdict = f"{shortcut_part} {clean_part}"
agree = ((s_mix["features: by artefact"] > s_mix["features: by class"])
         == (s_mix["map: by artefact"] > s_mix["map: by class"]))
features_sentence = (
    f"In the {versions[('shortcut model', VERSIONS[1])].features.shape[1]}-dimensional features themselves the "
    f"silhouette is {s_mix['features: by artefact']:.2f} by artefact and "
    f"{s_mix['features: by class']:.2f} by class, so the map reports the network's representation faithfully: the "
    "clusters are real, and what misleads is reading them as classes" if agree else
    f"In the features themselves the silhouette is {s_mix['features: by artefact']:.2f} by artefact and "
    f"{s_mix['features: by class']:.2f} by class, which ranks the two groupings differently from the map: here the "
    "projection itself adds to the confusion")
glue("lat_demo_sentence", verdict, display=False)
glue("lat_demo_features_sentence", features_sentence, display=False)
glue("lat_demo_follows", follows, display=False)
print(verdict)
print(features_sentence + ".")

# %% [markdown]
# In this run: {glue:text}`lat_demo_sentence` On the first version, class and ruler coincide,
# so no map of it, however clean, can say which of the two its clusters follow. What tells them
# apart is a test set in which the suspected factor is decoupled from the class, and a number
# (the silhouette by each grouping) rather than the look of the clusters.
#
# The same map, to explore: the shortcut model on the images where the ruler is independent of
# the class. The menu's last entry colours the points by the artefact.

# %%
f = versions[("shortcut model", VERSIONS[1])]
fig = latent_scatter(demo_emb[("shortcut model", VERSIONS[1])],
                     f.colours([shortcut_concept] if shortcut_concept else []), hover=f.hover_text(),
                     axis_label=TITLES[demo_method],
                     title=f"{shortcut_dataset}, shortcut model: the ruler on half of each class ({len(f)} images)")
with_thumbnails(fig, f.images, captions=f.hover_text(), size=thumbnail_px)

# %% [markdown]
# ## Exercises
#
# ```{exercise-start}
# :label: lat-ex-scale
# ```
#
# Trustworthiness and continuity depend on the neighbourhood size $k$ at which they are
# measured. Project the chest X-ray features with UMAP at `n_neighbors=5` and at
# `n_neighbors=50`, and score both maps at $k = 5$ and at $k = 50$. Which setting keeps small
# neighbourhoods better, and which large ones?
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{solution-start} lat-ex-scale
# :class: dropdown
# ```

# %%
from medxai_lite.latent import continuity, trustworthiness

x_cxr = feats["phantom-chest-xray"].features if "phantom-chest-xray" in feats else first.features
rows = []
for nn in (5, 50):
    y = project(x_cxr, "umap", seed=seed, n_neighbors=nn)
    for k in (5, 50):
        rows.append({"n_neighbors": nn, "k": k, "trustworthiness": trustworthiness(x_cxr, y, k),
                     "continuity": continuity(x_cxr, y, k)})
scale = pd.DataFrame(rows).set_index(["n_neighbors", "k"])
print(scale.unstack("k").round(3))
for k in (5, 50):
    mean = {nn: scale.loc[(nn, k)].mean() for nn in (5, 50)}
    better = max(mean, key=mean.get)
    print(f"at k = {k}: n_neighbors={better} keeps neighbourhoods better (mean of T and C {mean[better]:.3f} "
          f"against {mean[55 - better]:.3f})")

# %% [markdown]
# The printed lines give this run's answer. A small `n_neighbors` builds UMAP's graph from the
# closest few points only, so it keeps small neighbourhoods but can place whole groups anywhere
# relative to each other, which the scores at large $k$ penalise; a large one sees more of each
# point's surroundings. Where the two settings come out close at one $k$, the feature space has
# a simple structure at that scale. Either way, a quality score means something only together
# with the $k$ it was measured at.
#
# ```{solution-end}
# ```
#
# ```{exercise-start}
# :label: lat-ex-two-clusters
# ```
#
# A colleague shows you a t-SNE map of their chest X-ray classifier's features: two well
# separated clusters, one mostly pneumonia and one mostly normal films. They conclude that the
# network has learnt to recognise pneumonia. What else could produce the same picture, and what
# would you check before agreeing?
#
# ```{exercise-end}
# ```
#
# ```{solution-start} lat-ex-two-clusters
# :class: dropdown
# ```
#
# Anything that goes with the label in their data: the hospital or scanner the films came from,
# burnt-in markers or text, patient position (lying patients are often the sick ones), age, or
# image processing. Section 4 shows a ruler producing exactly such a map. Checks: colour the
# same map by every piece of metadata available and compare silhouettes by each grouping;
# measure the separation in the feature space, not only in the map; test on data in which the
# suspected factor is removed or decoupled from the label; and redraw the map with other
# perplexities and seeds, since a t-SNE map can make compact clusters out of structure that is
# much weaker in the features (the gaps between t-SNE clusters have no scale).
#
# ```{solution-end}
# ```
#
# ```{exercise-start}
# :label: lat-ex-trust
# ```
#
# Construct, on paper, a map of ten points that has a trustworthiness of 1 and yet a low
# continuity. What does such a map look like, and what would a reader wrongly conclude from it?
#
# ```{exercise-end}
# ```
#
# ```{solution-start} lat-ex-trust
# :class: dropdown
# ```
#
# Take ten points on a closed loop in the feature space (a circle) and map them onto a line by
# cutting the loop open at one place. Away from the ends every neighbourhood seen on the line is a
# true one; only at the ends does the line bring in a point that was further round the loop, so
# trustworthiness stays high. But the two points on either side of the cut, true neighbours, end
# up at the two ends of the line, so continuity falls further once a neighbourhood holds more than
# the nearest point. To see both numbers (continuity is
# the same function with the two spaces swapped):
#
# ```python
# from sklearn.manifold import trustworthiness
# t = np.arange(10) * 2 * np.pi / 10
# loop, line = np.c_[np.cos(t), np.sin(t)], np.arange(10.0)[:, None]
# for k in (1, 2, 3):
#     print(k, trustworthiness(loop, line, n_neighbors=k), trustworthiness(line, loop, n_neighbors=k))
# ```
#
# A reader would conclude that the two ends are the most different images of the set, when they
# are neighbours. t-SNE and UMAP tear such structures open often, which is why both scores are
# reported.
#
# ```{solution-end}
# ```
#
# ## What to remember
#
# - A 2-D map of a feature space shows neighbourhoods, not distances: cluster sizes and the gaps
#   between clusters have no scale, and the picture changes with the perplexity, neighbourhood
#   size and seed.
# - Score a map before reading it: trustworthiness and continuity at a stated $k$, and a k-NN
#   check of the map against the features.
# - A clean cluster is only evidence for what it follows once it is coloured by every candidate
#   (class, artefact, scanner) and measured on data where they are decoupled.
#
# ## Run it on real data
#
# In Colab with a GPU (see [Running on real data and in Colab](../book/real_data.md)), fetch the
# datasets and set the parameters cell to:
#
# ```python
# datasets = ["brain-tumor-mri", "ham10000", "chest-xray-pneumonia"]
# profile = "paper"                           # 224 px, ImageNet weights
# n_points = 1000                             # t-SNE and UMAP stay under a minute each
# explore_dataset = "brain-tumor-mri"
# explore_concept = None                      # the public sets carry no concept labels
# grid_dataset = "brain-tumor-mri"
# perplexities = [5, 30, 100, 300]
# umap_neighbors = [5, 15, 50, 200]
# stability_seeds = [0, 1, 2, 3, 4]
# shortcut_dataset = "phantom-skin"           # phantoms only: the artefact is planted and moved
# n_shortcut = 600
# thumbnail_px = 32                           # 1000 thumbnails per map: keep them small
# ```
#
# The public datasets have no concept labels and no planted artefact, so their maps offer the
# class and correctness colourings; with `explore_concept = None` the concept entry is left out.

# %% [markdown]
# ```{bibliography}
# :filter: docname in docnames
# ```

# %% tags=["remove-input"]
timer.glue()
