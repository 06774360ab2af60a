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
# # Example-based explanations in practice
#
# The companion notebook of the {doc}`example-based chapter </book/examples>`. On the three
# phantoms it explains the book's default classifiers with other images: the nearest training
# images and the class prototypes in the network's latent space, counterfactuals pulled towards a
# prototype, CEM's pertinent positives and negatives, the patches an L2X explainer keeps, and the
# training images that help or hurt a prediction most (TracIn), including training images
# mislabelled on purpose. Every result is scored beside what a random choice would get, and every
# number quoted in the chapter comes from this run.

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
datasets = ["phantom-brain-mri", "phantom-skin", "phantom-chest-xray"]
profile = "cpu"
arch = "resnet14"
seed = 0
preset = "book"                # the registry's cost preset of every method ("quick" or "book")
k = 5                          # neighbours, helpful and harmful training images per query
n_eval = 48                    # test images per dataset for the neighbour, prototype and influence scores
n_search = 1                   # lesion images per dataset for the counterfactual and CEM searches
n_l2x = 32                     # lesion images per dataset for the L2X scores
mislabel_dataset = "phantom-chest-xray"   # the planted-mislabel experiment (phantoms only)
n_planted = 10                 # training images relabelled on purpose
top_k = 20                     # how deep the rankings are searched for them
n_harmed = 16                  # test images of the planted images' true class

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display

import medxai_lite as mx
from medxai_lite.book import chapter_timer, glue   # glue prints where no book is built (Colab)
from medxai_lite.explain import METHODS, list_methods
from medxai_lite.explain.examples import influence_scores, self_influence, training_index
from medxai_lite.metrics import pointing_game, random_maps, relevance_mass_accuracy
from medxai_lite.metrics.examples import (label_agreement, label_chance, patch_chance, patch_hit_rate,
                                          planted_ranking, random_patch_maps, top_patches)
from medxai_lite.models.explainers import get_mislabelled_model, training_probabilities, uninformed_l2x_loss
from medxai_lite.viz import method_grid
from medxai_lite.viz.examples import (plot_cem, plot_counterfactuals, plot_gallery, plot_influence,
                                      plot_planted_ranking, plot_prototypes)

timer = chapter_timer()   # this chapter's wall time, shown in its opening
mx.set_seed(seed)
short = {"phantom-brain-mri": "brain MRI", "phantom-skin": "skin", "phantom-chest-xray": "chest X-ray"}
key = {name: short.get(name, name).split()[0].replace("-", "_") for name in datasets}
FAMILY = list_methods("Example-based")
seconds = {}          # (method, dataset) -> seconds per image, measured in this run


def record(result, name):
    """Keep the seconds per image an explanation took."""
    seconds[result.method, short.get(name, name)] = result.seconds / len(result)
    return result


models, tests = {}, {}
for name in datasets:
    models[name] = mx.get_trained_model(name, arch, profile, seed=seed, progress=False)
    s = models[name].report.settings
    tests[name] = mx.load_dataset(name, "test", image_size=s["image_size"], n=s["n_test"], seed=seed)
size = int(s["image_size"])

# %% [markdown]
# The family in the registry, with the two cost presets: `quick` (the tests: everything
# against the batch itself, a few steps) and `book` (this chapter: the model's own training split,
# and the search and training budgets that keep the notebook within minutes on a CPU).

# %%
registry = pd.DataFrame([{"method": m, "title": METHODS[m].title, "output": METHODS[m].output,
                          "library": METHODS[m].library, "quick preset": dict(METHODS[m].presets["quick"]),
                          "book preset": dict(METHODS[m].presets["book"])} for m in FAMILY]).set_index("method")
registry.style.set_caption("The example-based family of medxai_lite.explain")

# %% [markdown]
# Where the survey's application tables (Tables 2-10, in the {doc}`atlas </book/atlas>`) use
# example-based methods:

# %%
from medxai_lite import atlas

uses = atlas.atlas_long()
uses = uses[uses["family"] == "Example-based"]
where = uses.groupby("method").apply(
    lambda g: "; ".join(f"{m} [{', '.join(str(r) for r in sorted(set(x['reference'])))}]"
                        for m, x in g.groupby("sub_modality")), include_groups=False)
display(where.rename("sub-modality [survey reference numbers]").to_frame())
for method, text in where.items():
    glue(f"ex_atlas_{method.lower()}", text, display=False)
glue("ex_atlas_rows", int(len(uses)), display=False)

# %% [markdown]
# ## 1. Nearest training examples
#
# For the first `n_eval` test images of each dataset, the `k` training images closest to each in
# the classifier's latent space (the input of its last linear layer, 256 numbers for the
# default ResNet14), found by scikit-learn's exact nearest-neighbour search. The training features are
# computed once and cached beside the model. Two questions score the neighbours: do they carry
# the class the model predicted (the explanation "it looks like these") and the image's true
# class? The reference is a random training image, whose class matches with the frequency of
# that class in the training split.

# %%
rows, near, preds = [], {}, {}
for name in datasets:
    ds, model = tests[name], models[name]
    x = ds.batch(range(n_eval))["image"]
    training_index(model)      # untimed: on a cold cache, embeds the training split once and caches it
    result = record(mx.explain("nearest_examples", model, x, preset=preset, k=k), name)
    near[name], preds[name] = result, result.targets
    train_labels = training_index(model).labels
    truth = ds.labels[:n_eval]
    votes = np.array([np.bincount(row, minlength=len(ds.classes)).argmax() for row in result.value["labels"]])
    rows.append({"dataset": short[name],
                 "neighbours of the predicted class": label_agreement(result.value["labels"], result.targets).mean(),
                 "random training image, predicted class": label_chance(train_labels, result.targets).mean(),
                 "neighbours of the true class": label_agreement(result.value["labels"], truth).mean(),
                 "random training image, true class": label_chance(train_labels, truth).mean(),
                 "k-NN vote = prediction": np.mean(votes == result.targets),
                 "model accuracy": np.mean(result.targets == truth)})
near_table = pd.DataFrame(rows).set_index("dataset")
near_table.style.format("{:.3f}").set_caption(
    f"The {k} nearest training images of {n_eval} test images per dataset, against random training images")

# %%
def first_lesion(ds, n=1):
    """Indices of the first ``n`` test images with a lesion."""
    return [int(i) for i in np.flatnonzero(ds.masks.reshape(len(ds), -1).any(1))[:n]]


queries = {name: first_lesion(tests[name])[0] for name in datasets}
gallery_q, gallery_x, gallery_t, gallery_qt, gallery_m, gallery_xm, gallery_h = [], [], [], [], [], [], []
for name in datasets:
    ds, i = tests[name], queries[name]
    result = near[name]
    train = result.extras["dataset"]
    idx, dist = result.value["indices"][i], result.value["distances"][i]
    pred = int(result.targets[i])
    gallery_q.append(ds[i]["image"])
    gallery_qt.append(f"{short[name]} query\ntrue {ds.classes[ds.labels[i]]}, predicted {ds.classes[pred]}")
    gallery_m.append(ds.masks[i])
    gallery_x.append([train[int(j)]["image"] for j in idx])
    gallery_xm.append([train.masks[int(j)] for j in idx])
    gallery_t.append([f"{train.classes[train.labels[int(j)]]}\nd = {d:.2f}" for j, d in zip(idx, dist)])
    gallery_h.append([train.labels[int(j)] != pred for j in idx])
plot_gallery(gallery_q, gallery_x, gallery_t, query_titles=gallery_qt, masks=gallery_m, example_masks=gallery_xm,
             highlight=gallery_h, title=f"The {k} nearest training images in the latent space (Euclidean distance d; "
                                        "red: not the predicted class; true lesions in cyan)")
plt.show()

# %%
mean_near = near_table.mean()
glue("ex_k", int(k), display=False)
glue("ex_n_train", int(len(training_index(models[datasets[0]]))), display=False)
glue("ex_n_eval", int(n_eval), display=False)
glue("ex_nn_pred", float(mean_near["neighbours of the predicted class"]), display=False)
glue("ex_nn_pred_chance", float(mean_near["random training image, predicted class"]), display=False)
glue("ex_nn_true", float(mean_near["neighbours of the true class"]), display=False)
glue("ex_nn_true_chance", float(mean_near["random training image, true class"]), display=False)
glue("ex_nn_vote", float(mean_near["k-NN vote = prediction"]), display=False)
for name in datasets:
    glue(f"ex_nn_pred_{key[name]}", float(near_table.loc[short[name], "neighbours of the predicted class"]),
         display=False)
margin = near_table["neighbours of the predicted class"] - near_table["random training image, predicted class"]
glue("ex_nn_sentence", ("on every dataset the neighbours carried the predicted class far more often than random training "
                        "images (by at least " f"{margin.min():.2f}): the latent spaces are organised by class"
                        if margin.min() > 0.2 else
                        f"the neighbours beat random training images by {margin.min():.2f} on the weakest dataset, "
                        "so on that dataset the latent space is only loosely organised by class"), display=False)

# %% [markdown]
# In this run, {glue:text}`ex_nn_sentence`. When a model is right on almost every image (the
# table's last column), the neighbours mostly confirm its prediction; they become informative
# where they disagree with it, or where they resemble the query in something other than the
# lesion (an artefact, a position, a skin tone).

# %% [markdown]
# ## 2. Class prototypes
#
# One prototype per class: the mean of the latent features of that class's training images
# (Snell et al.'s class mean), shown by the training image nearest to it. Each test image is then
# explained by its nearest prototype. The reference: a prototype drawn at random, right for one
# class in C.

# %%
rows, protos = [], {}
for name in datasets:
    ds, model = tests[name], models[name]
    x = ds.batch(range(n_eval))["image"]
    result = record(mx.explain("prototypes", model, x, preset=preset), name)
    protos[name] = result
    nearest_class = result.value["classes"][:, 0]
    rows.append({"dataset": short[name], "nearest prototype = prediction": np.mean(nearest_class == result.targets),
                 "nearest prototype = true class": np.mean(nearest_class == ds.labels[:n_eval]),
                 "random prototype": 1 / len(ds.classes)})
proto_table = pd.DataFrame(rows).set_index("dataset")
proto_table.style.format("{:.3f}").set_caption(f"Nearest class prototype of {n_eval} test images per dataset")

# %%
pictures, titles, pmasks = [], [], []
for name in datasets:
    p = protos[name].extras["prototypes"]
    train = protos[name].extras["dataset"]
    pictures.append([train[int(j)]["image"] for j in p.pictures])
    titles.append([f"{train.classes[c]}\n(mean of {n} images)" for c, n in zip(p.classes, p.sizes)])
    pmasks.append([train.masks[int(j)] for j in p.pictures])
plot_prototypes(pictures, titles, row_labels=[short[n] for n in datasets], masks=pmasks,
                title="Class prototypes, each shown by the training image nearest to the class mean")
plt.show()
mean_proto = proto_table.mean()
glue("ex_proto_pred", float(mean_proto["nearest prototype = prediction"]), display=False)
glue("ex_proto_true", float(mean_proto["nearest prototype = true class"]), display=False)
glue("ex_proto_chance", float(mean_proto["random prototype"]), display=False)

# %% [markdown]
# ## 3. Counterfactuals guided by prototypes
#
# For the first `n_search` lesion images of each dataset: the smallest change (elastic net on
# $\delta$) that makes the model predict another class, pulled towards the prototype of the
# nearest other class (the mean of its 5 training images closest to the query). The search runs
# at the `book` preset; the notebook records whether it flipped the prediction, how large the
# change is, and how far the counterfactual's encoding moved towards the target prototype. The
# difference image $\sum_c |x_{cf} - x|$ is then scored against the lesion like any map.

# %%
search_idx = {name: first_lesion(tests[name], n_search) for name in datasets}
search_x = {name: tests[name].batch(search_idx[name]) for name in datasets}
cf_rows, cfs = [], {}
for name in datasets:
    model, batch = models[name], search_x[name]
    result = record(mx.explain("counterfactual_proto", model, batch["image"], preset=preset), name)
    cfs[name] = result
    e = result.extras
    for j in range(len(batch["image"])):
        cf_rows.append({"dataset": short[name], "image": search_idx[name][j], "flipped": bool(e["flipped"][j]),
                        "from": tests[name].classes[int(result.targets[j])],
                        "to": tests[name].classes[int(e["counterfactual_class"][j])],
                        "L1 of the change": e["l1"][j], "L2 of the change": e["l2"][j],
                        "distance to target prototype, start": e["proto_distance_start"][j],
                        "distance to target prototype, end": e["proto_distance"][j],
                        "s per image": result.seconds / len(batch["image"])})
cf_table = pd.DataFrame(cf_rows).set_index(["dataset", "image"])
# one index column (dataset and image together) keeps the table inside the reading column
cf_table.set_axis([f"{d}, image {i}" for d, i in cf_table.index], axis=0).rename_axis("test image").style.format(
    precision=3).set_caption(
    f"Counterfactuals guided by prototypes ({preset} preset: {dict(METHODS['counterfactual_proto'].presets[preset])})")

# %%
def probability(model, images):
    """The model's predicted class and its probability for a batch of normalised images."""
    with torch.no_grad():
        p = model(torch.as_tensor(images).to(mx.model_device(model))).softmax(1).cpu()
    return p.argmax(1).numpy(), p.max(1).values.numpy()


imgs, made, t_img, t_cf, proto_pics, t_proto, cmasks = [], [], [], [], [], [], []
for name in datasets:
    model, batch, result = models[name], search_x[name], cfs[name]
    classes = tests[name].classes
    c0, p0 = probability(model, batch["image"])
    c1, p1 = probability(model, result.extras["counterfactual"])
    train = result.extras["dataset"]
    for j in range(len(batch["image"])):
        imgs.append(batch["image"][j])
        made.append(torch.as_tensor(result.extras["counterfactual"][j]))
        t_img.append(f"{short[name]}: x\npredicted {classes[c0[j]]} ({p0[j]:.2f})")
        t_cf.append(f"x_cf\npredicted {classes[c1[j]]} ({p1[j]:.2f})")
        pic = int(result.extras["target_picture"][j])
        proto_pics.append(train[pic]["image"])
        t_proto.append(f"target prototype:\n{classes[int(result.extras['target_class'][j])]} (nearest image)")
        cmasks.append(batch["mask"][j].numpy())
plot_counterfactuals(imgs, made, titles=t_img, counterfactual_titles=t_cf, prototypes=proto_pics,
                     prototype_titles=t_proto, masks=cmasks,
                     title="Counterfactuals guided by prototypes: the image, the counterfactual, what changed, "
                           "and where the search was pulled")
plt.show()

# %% [markdown]
# ## 4. CEM: pertinent positives and pertinent negatives
#
# On the same images. The pertinent positive (PP) is the least of the image that, shown alone on
# a black background, keeps the predicted class; the pertinent negative (PN) is the least that,
# *added* to the image (pixels only made brighter), changes it. Both are FISTA searches at the
# `book` preset.

# %%
cem_rows, pps, pns = [], {}, {}
for name in datasets:
    model, batch = models[name], search_x[name]
    pp = record(mx.explain("cem_pp", model, batch["image"], preset=preset), name)
    pn = record(mx.explain("cem_pn", model, batch["image"], preset=preset), name)
    pps[name], pns[name] = pp, pn
    for j in range(len(batch["image"])):
        cem_rows.append({"dataset": short[name], "image": search_idx[name][j],
                         "PP found": bool(pp.extras["found"][j]), "PP L1": pp.extras["l1"][j],
                         "PP class": tests[name].classes[int(pp.extras["class"][j])],
                         "PN found": bool(pn.extras["found"][j]), "PN L1": pn.extras["l1"][j],
                         "class after adding the PN": tests[name].classes[int(pn.extras["class"][j])]})
cem_table = pd.DataFrame(cem_rows).set_index(["dataset", "image"])
cem_table.style.format(precision=3).set_caption(f"CEM ({preset} preset: {dict(METHODS['cem_pp'].presets[preset])})")

# %%
imgs, pp_imgs, pn_imgs, bases, t_img, t_pp, t_pn, cmasks = [], [], [], [], [], [], [], []
for name in datasets:
    batch, pp, pn = search_x[name], pps[name], pns[name]
    classes = tests[name].classes
    for j in range(len(batch["image"])):
        imgs.append(batch["image"][j])
        pp_imgs.append(torch.as_tensor(pp.extras["pp"][j]))
        pn_imgs.append(torch.as_tensor(pn.extras["pn"][j]))
        bases.append(torch.as_tensor(pp.extras["baseline"][j]))
        t_img.append(f"{short[name]}: x\npredicted {classes[int(pp.targets[j])]}")
        t_pp.append(f"PP alone{'' if pp.extras['found'][j] else ' (not found)'}\npredicted "
                    f"{classes[int(pp.extras['class'][j])]}")
        t_pn.append(f"x + PN{'' if pn.extras['found'][j] else ' (not found)'}\npredicted "
                    f"{classes[int(pn.extras['class'][j])]}")
        cmasks.append(batch["mask"][j].numpy())
plot_cem(imgs, pp_imgs, pn_imgs, titles=t_img, pp_titles=t_pp, pn_titles=t_pn, baselines=bases, masks=cmasks,
         title="CEM: what must be present (PP) and what must stay absent (PN) for the prediction")
plt.show()

# %% [markdown]
# ### The made images' changes against the lesion
#
# The three maps of this section and the last, $\sum_c|\delta|$, scored against the true lesion
# beside a random pixel map on the same images (pointing game and relevance mass accuracy, see
# the {doc}`evaluation chapter </book/evaluation>`). With `n_search` image(s) per dataset (set in
# the parameters cell; the real-data settings at the end of the page use more) these are
# anecdotes more than estimates.

# %%
search_rows = []
for label, results, success in (("counterfactual |x_cf - x|", cfs, "flipped"), ("CEM pertinent positive", pps, "found"),
                                ("CEM pertinent negative", pns, "found")):
    maps = np.concatenate([results[n].maps for n in datasets])
    masks = np.concatenate([search_x[n]["mask"].numpy() for n in datasets])
    found = np.concatenate([results[n].extras[success] for n in datasets])
    ok = found & (maps.reshape(len(maps), -1).max(1) > 0)   # a failed search, or an empty change, is not scored
    rnd = random_maps(torch.zeros(len(maps), 1, size, size), seed=seed)
    row = {"map": label, "images": int(ok.sum())}
    for name_, metric in (("pointing game", pointing_game), ("relevance mass accuracy", relevance_mass_accuracy)):
        row[name_] = metric(None, None, None, maps[ok], masks[ok]).mean() if ok.any() else np.nan
        row[f"random map {'PG' if metric is pointing_game else 'RMA'}"] = (
            metric(None, None, None, rnd[ok], masks[ok]).mean() if ok.any() else np.nan)
    search_rows.append(row)
search_scores = pd.DataFrame(search_rows).set_index("map")
search_scores.style.format("{:.3f}", subset=search_scores.columns[1:], na_rep="-").set_caption(
    "Where the made images changed, against the true lesion (all datasets pooled; successful, non-empty searches)")

# %%
cf_all = cf_table
glue("ex_n_search", int(len(cf_all)), display=False)
glue("ex_cf_flipped", float(cf_all["flipped"].mean()), display=False)
glue("ex_cf_l1", float(cf_all["L1 of the change"].mean()), display=False)
glue("ex_cf_l2", float(cf_all["L2 of the change"].mean()), display=False)
glue("ex_cf_proto_start", float(cf_all["distance to target prototype, start"].mean()), display=False)
glue("ex_cf_proto_end", float(cf_all["distance to target prototype, end"].mean()), display=False)
closer = cf_all["distance to target prototype, end"] < cf_all["distance to target prototype, start"]
glue("ex_cf_closer", f"{int(closer.sum())} of {len(cf_all)} searches ended closer to their target prototype"
     + ("" if closer.all() else " (the rest moved away from it: the flip can land on a class other than the "
        "target's, and the table shows where each ended)"), display=False)
glue("ex_pp_found", float(cem_table["PP found"].mean()), display=False)
glue("ex_pn_found", float(cem_table["PN found"].mean()), display=False)
glue("ex_pp_l1", float(cem_table["PP L1"].mean()), display=False)
empty = [f"{d}" for (d, _), v in cem_table["PP L1"].items() if v == 0]
glue("ex_pp_empty_sentence", (f"in this run that happened for {', '.join(empty)}" if empty else
                              "in this run no pertinent positive was empty"), display=False)
glue("ex_pn_l1", float(cem_table["PN L1"].mean()), display=False)
for label, short_label in (("counterfactual |x_cf - x|", "cf"), ("CEM pertinent positive", "pp"),
                           ("CEM pertinent negative", "pn")):
    row = search_scores.loc[label]
    glue(f"ex_{short_label}_rma", float(row["relevance mass accuracy"]), display=False)
    glue(f"ex_{short_label}_rma_random", float(row["random map RMA"]), display=False)
    glue(f"ex_{short_label}_pg", float(row["pointing game"]), display=False)
    glue(f"ex_{short_label}_pg_random", float(row["random map PG"]), display=False)
beats = [lab for lab in search_scores.index if search_scores.loc[lab, "images"] > 0
         and search_scores.loc[lab, "relevance mass accuracy"] > search_scores.loc[lab, "random map RMA"]]
pp_row = search_scores.loc["CEM pertinent positive"]
glue("ex_pp_n_scored", int(pp_row["images"]), display=False)
glue("ex_pp_sentence", (
    ", so none can be scored" if pp_row["images"] == 0 else
    "; they put less of their mass on the lesion than a random map does. A likely reason: a "
    "black image is far from anything the network was trained on, and the faint pixels that keep its class "
    "there need not be the lesion's (the figure shows where they lie)"
    if pp_row["relevance mass accuracy"] <= pp_row["random map RMA"] else
    "; they put more of their mass on the lesion than a random map does"), display=False)
glue("ex_search_sentence", (f"{len(beats)} of the 3 difference maps put more of their mass on the lesion than a "
                            f"random map ({', '.join(beats) if beats else 'none'})"), display=False)
glue("ex_search_preset", ", ".join(f"{a} = {b}" for a, b in METHODS["counterfactual_proto"].presets[preset].items()
                                   if a != "references"), display=False)

# %% [markdown]
# In this run, {glue:text}`ex_search_sentence`. A pertinent positive with no change at all means
# that the black baseline alone already gets the predicted class, so there is nothing the image
# must contribute.

# %% [markdown]
# ## 5. L2X: the patches a trained explainer keeps
#
# L2X trains a small explainer network once per classifier (on its training split, then cached)
# to choose the `k` patches of a grid from which a second small network, the approximator, can
# best predict the classifier's output. The `book` preset uses a grid of 16-pixel patches (6 x 6
# at 96 px, each patch four cells of the CAM chapter's grid) and a training budget of five epochs. On `n_l2x` lesion images per
# dataset the kept patches are scored against the true lesion, beside `k` patches drawn at
# random and beside the `k` cells Grad-CAM ranks highest on the same images.

# %%
l2x_rows, l2x_show, l2x_reports = [], {}, {}
for name in datasets:
    model, ds = models[name], tests[name]
    batch = ds.batch(first_lesion(ds, n_l2x))
    x, masks = batch["image"], batch["mask"].numpy()
    mx.explain("l2x", model, x[:1], preset=preset)   # untimed: trains and caches the explainer on a cold cache
    result = record(mx.explain("l2x", model, x, preset=preset), name)
    explainer = result.extras["explainer"]
    kk, patch = explainer.k, explainer.patch
    rnd_maps, rnd_sel = random_patch_maps(len(x), size, patch, kk, seed=seed)
    gradcam = record(mx.explain("gradcam", model, x), name)
    l2x_reports[name] = (explainer.report, uninformed_l2x_loss(training_probabilities(model)))
    for label, maps, sel in (("L2X", result.maps, result.extras["selected"]), ("random patches", rnd_maps, rnd_sel),
                             ("Grad-CAM", gradcam.maps, top_patches(gradcam.maps, patch, kk))):
        l2x_rows.append({"dataset": short[name], "map": label,
                         "patches touching the lesion": patch_hit_rate(sel, masks, patch).mean(),
                         "chance": patch_chance(masks, patch).mean(),
                         "pointing game": pointing_game(None, None, None, maps, masks).mean(),
                         "relevance mass accuracy": relevance_mass_accuracy(None, None, None, maps, masks).mean()})
    l2x_show[name] = (x[:1], masks[:1], {"L2X: kept patches": result.maps[:1], "random patches": rnd_maps[:1],
                                         "Grad-CAM": gradcam.maps[:1]})
l2x_table = pd.DataFrame(l2x_rows).set_index(["dataset", "map"])
l2x_table.style.format("{:.3f}").set_caption(
    f"The k = {kk} patches of the {patch}-pixel grid kept by L2X, by chance and by Grad-CAM, on {n_l2x} lesion "
    "images per dataset (Grad-CAM's patches: its k cells of largest mean)")

# %%
train_rows = []
for name in datasets:
    report, floor = l2x_reports[name]
    train_rows.append({"dataset": short[name], "training s (when it was trained)": report.seconds,
                       "epochs": len(report.history), "first epoch loss": report.history[0],
                       "last epoch loss": report.history[-1], "loss of a blind approximator": floor})
l2x_train = pd.DataFrame(train_rows).set_index("dataset")
display(l2x_train.style.format(precision=3).set_caption(
    "L2X training (the seconds of the run that trained it; the blind approximator predicts the mean class "
    "probabilities whatever it is shown)"))
for name in datasets:
    x, masks, maps = l2x_show[name]
    method_grid(x, maps, masks=masks, row_titles=[short[name]], size=1.8)
    plt.show()

# %%
learnt = [short[n] for n in datasets if l2x_reports[n][0].history[-1] < 0.9 * l2x_reports[n][1]]
above = [short[n] for n in datasets                 # above both the random draw and the chance rate
         if l2x_table.loc[(short[n], "L2X"), "patches touching the lesion"]
         > max(l2x_table.loc[(short[n], "random patches"), "patches touching the lesion"],
               l2x_table.loc[(short[n], "L2X"), "chance"])]
glue("ex_l2x_k", int(kk), display=False)
glue("ex_l2x_patch", int(patch), display=False)
glue("ex_n_l2x", int(n_l2x), display=False)
glue("ex_l2x_epochs", int(len(l2x_reports[datasets[0]][0].history)), display=False)
for name in datasets:
    glue(f"ex_l2x_hit_{key[name]}", float(l2x_table.loc[(short[name], "L2X"), "patches touching the lesion"]),
         display=False)
    glue(f"ex_l2x_rnd_{key[name]}", float(l2x_table.loc[(short[name], "random patches"),
                                                        "patches touching the lesion"]), display=False)
    glue(f"ex_l2x_gc_{key[name]}", float(l2x_table.loc[(short[name], "Grad-CAM"), "patches touching the lesion"]),
         display=False)
    glue(f"ex_l2x_chance_{key[name]}", float(l2x_table.loc[(short[name], "L2X"), "chance"]), display=False)
    glue(f"ex_l2x_loss_{key[name]}", float(l2x_reports[name][0].history[-1]), display=False)
    glue(f"ex_l2x_floor_{key[name]}", float(l2x_reports[name][1]), display=False)
glue("ex_l2x_sentence", (f"the training loss fell clearly below that of a blind approximator on {len(learnt)} of "
                         f"{len(datasets)} datasets ({', '.join(learnt) or 'none'}), and the kept patches touched the "
                         f"lesion more often than both a random draw of patches and the chance rate on {len(above)} "
                         f"({', '.join(above) or 'none'})"),
     display=False)

# %% [markdown]
# In this run, {glue:text}`ex_l2x_sentence` ("clearly": at least 10 % below). Where the last
# training loss stays near the blind approximator's, the kept patches barely help the
# approximator predict the classifier: they may still land on the lesion more often than chance,
# as the hit rates show, but they are weak evidence of what the classifier uses.

# %% [markdown]
# ## 6. The training images that help or hurt a prediction (TracIn)
#
# TracIn scores a training image $z$ for a test image $z'$ by the dot product of their loss
# gradients. The book's models keep no training checkpoints, so it is computed once, at the final
# weights, and for the last linear layer (captum's `TracInCPFast`). The `book` preset reads the
# training images' latent features from the cached index instead of running the network over the
# training split again (`from_index=True`; the same scores). Positive: a gradient step on $z$
# would lower the loss on $z'$ (helpful); negative: harmful.

# %%
inf_rows, infs = [], {}
for name in datasets:
    model, ds = models[name], tests[name]
    x = ds.batch(range(n_eval))["image"]
    result = record(mx.explain("influence", model, x, preset=preset, k=k), name)
    infs[name] = result
    labels = result.extras["training_labels"]
    helpful, harmful = labels[result.value["indices"]], labels[result.extras["harmful_indices"]]
    inf_rows.append({"dataset": short[name], "helpful images of the predicted class": label_agreement(
        helpful, result.targets).mean(), "harmful images of the predicted class": label_agreement(
        harmful, result.targets).mean(), "random training image": label_chance(labels, result.targets).mean()})
inf_table = pd.DataFrame(inf_rows).set_index("dataset")
inf_table.style.format("{:.3f}").set_caption(
    f"The {k} most helpful and most harmful training images of {n_eval} test predictions per dataset")

# %%
for name in datasets:
    ds, result = tests[name], infs[name]
    i = queries[name]
    train = training_index(models[name]).dataset
    labels = result.extras["training_labels"]
    up, down = result.value["indices"][i], result.extras["harmful_indices"][i]
    plot_influence(ds[i]["image"], [train[int(j)]["image"] for j in up], [train[int(j)]["image"] for j in down],
                   query_title=f"{short[name]} query\npredicted {ds.classes[int(result.targets[i])]}",
                   helpful_titles=[f"{ds.classes[labels[j]]}\n{s:+.3g}" for j, s in
                                   zip(up, result.value["scores"][i])],
                   harmful_titles=[f"{ds.classes[labels[j]]}\n{s:+.3g}" for j, s in
                                   zip(down, result.extras["harmful_scores"][i])],
                   mask=ds.masks[i], helpful_masks=[train.masks[int(j)] for j in up],
                   harmful_masks=[train.masks[int(j)] for j in down],
                   highlight_harmful=[labels[j] == int(result.targets[i]) for j in down],
                   title="TracIn on the final weights: training label and influence (red: harmful although of the "
                         "predicted class)")
    plt.show()
mean_inf = inf_table.mean()
glue("ex_inf_helpful_same", float(mean_inf["helpful images of the predicted class"]), display=False)
glue("ex_inf_harmful_same", float(mean_inf["harmful images of the predicted class"]), display=False)
glue("ex_inf_chance", float(mean_inf["random training image"]), display=False)

# %% [markdown]
# ## 7. Finding mislabelled training images
#
# A test the phantoms make possible: relabel `n_planted` training images on purpose, train a
# classifier on the noisy labels (a small CNN at 64 px, trained once and cached), and ask whether
# influence finds them. Two rankings are searched to a depth of `top_k`: TracIn's
# self-influence (how much each training image's own loss gradient weighs; a label that fights
# the rest keeps a large one), and the total influence on `n_harmed` test images of the planted
# images' true class, most harmful first. Chance: `top_k` training images drawn at random hold
# `top_k * n_planted / n_train` planted ones on average.

# %%
t0 = time.perf_counter()
noisy = get_mislabelled_model(mislabel_dataset, n_planted=n_planted, seed=seed)
rep = noisy.report
print(f"the mislabelled classifier: {len(rep.labels)} training images, {len(rep.planted)} of class "
      f"'{rep.classes[rep.source]}' labelled '{rep.classes[rep.target]}'; loaded or trained in "
      f"{time.perf_counter() - t0:.1f} s (training took {rep.seconds:.1f} s when it ran)")
t0 = time.perf_counter()
own = self_influence(noisy, None)
seconds["self-influence, per training image", short[mislabel_dataset]] = (time.perf_counter() - t0) / len(rep.labels)
noisy_test = mx.load_dataset(mislabel_dataset, "test", image_size=rep.settings["image_size"], n=200, seed=seed)
harmed = noisy_test.batch(np.flatnonzero(noisy_test.labels == rep.source)[:n_harmed])
t0 = time.perf_counter()
total = influence_scores(noisy, harmed["image"], harmed["label"], None).sum(0)
seconds["influence on the harmed test images, per test image", short[mislabel_dataset]] = (
    (time.perf_counter() - t0) / len(harmed["image"]))
by_self = planted_ranking(own, rep.planted, top_k)
by_harm = planted_ranking(total, rep.planted, top_k, largest=False)
planted_table = pd.DataFrame([{"ranking": "self-influence (largest first)", "planted in the top k": by_self.hits,
                               "chance": by_self.expected, "p-value": by_self.p_value,
                               "median rank of a planted image": np.median(by_self.ranks)},
                              {"ranking": f"influence on {len(harmed['image'])} test images of class "
                                          f"'{rep.classes[rep.source]}' (most harmful first)",
                               "planted in the top k": by_harm.hits, "chance": by_harm.expected,
                               "p-value": by_harm.p_value, "median rank of a planted image": np.median(by_harm.ranks)}]
                             ).set_index("ranking")
planted_table.style.format({"chance": "{:.2f}", "p-value": "{:.1e}", "median rank of a planted image": "{:.0f}"}
                           ).set_caption(f"{n_planted} planted mislabels among {len(rep.labels)} training images, "
                                         f"searched in the top k = {top_k}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
plot_planted_ranking(own, rep.planted, k=top_k, score_label="self-influence", ax=axes[0],
                     title="TracIn self-influence of every training image")
plot_planted_ranking(total, rep.planted, k=top_k, largest=False, ax=axes[1],
                     score_label=f"total influence on {len(harmed['image'])} test images",
                     title=f"Influence on test images of class '{rep.classes[rep.source]}'")
plt.show()

train_noisy = training_index(noisy).dataset
q = 0
scores_q = influence_scores(noisy, harmed["image"][q:q + 1], harmed["label"][q:q + 1], None)[0]
down, up = np.argsort(scores_q, kind="stable")[:k], np.argsort(-scores_q, kind="stable")[:k]
names = rep.classes
plot_influence(harmed["image"][q], [train_noisy[int(j)]["image"] for j in up],
               [train_noisy[int(j)]["image"] for j in down],
               query_title=f"test image, true {names[int(harmed['label'][q])]}",
               helpful_titles=[f"label {names[rep.labels[j]]}\n{scores_q[j]:+.3g}" for j in up],
               harmful_titles=[f"label {names[rep.labels[j]]}" + (" (planted)" if j in rep.planted else "")
                               + f"\n{scores_q[j]:+.3g}" for j in down],
               highlight_harmful=[j in rep.planted for j in down], highlight_helpful=[j in rep.planted for j in up],
               title="The most helpful and most harmful training images of one test image (red: planted mislabel)")
plt.show()

glue("ex_n_planted", int(n_planted), display=False)
glue("ex_n_train_noisy", int(len(rep.labels)), display=False)
glue("ex_top_k", int(top_k), display=False)
glue("ex_planted_chance", float(by_self.expected), display=False)
glue("ex_self_hits", int(by_self.hits), display=False)
glue("ex_self_p", f"{by_self.p_value:.1e}", display=False)
glue("ex_harm_hits", int(by_harm.hits), display=False)
glue("ex_harm_p", f"{by_harm.p_value:.1e}", display=False)
glue("ex_n_harmed", int(len(harmed["image"])), display=False)
glue("ex_noisy_train_s", float(rep.seconds), display=False)

# %% [markdown]
# Self-influence put {glue:text}`ex_self_hits` of the {glue:text}`ex_n_planted` planted images
# among the {glue:text}`ex_top_k` training images with the largest scores, and the most harmful
# training images for the {glue:text}`ex_n_harmed` test images held
# {glue:text}`ex_harm_hits` of them, where chance would place
# {glue:text}`ex_planted_chance:.2f`.

# %% [markdown]
# ## 8. What each method cost
#
# Seconds per image, measured in this run on this machine (for L2X: explaining with the cached
# explainer; its training time is in the table of section 5).

# %%
cost = pd.Series(seconds).rename("s per image").rename_axis(["method", "dataset"]).unstack("dataset")
cost["mean"] = cost.mean(axis=1)
display(cost.style.format("{:.4f}", na_rep="-").set_caption("Seconds per image (CPU, this run)"))
for method in [m for m in cost.index if m in METHODS]:          # the registry's methods, by their names
    glue(f"ex_s_{method}", float(cost.loc[method, "mean"]), display=False)

# %% [markdown]
# ## Exercises
#
# ```{exercise-start}
# :label: examples-nb-ex-budget
# ```
#
# The counterfactual search above ran at the `book` preset. Run it again on the same images with
# `steps=100, c_steps=2` (the adapter's defaults) and compare, per image, whether it flipped, the
# L1 of the change and the distance to the target prototype. What did the larger budget buy, and
# what did it cost in seconds?
#
# ```{exercise-end}
# ```
#
# ```{solution-start} examples-nb-ex-budget
# :class: dropdown
# ```
#
# ```python
# for name in datasets:
#     full = mx.explain("counterfactual_proto", models[name], search_x[name]["image"], steps=100, c_steps=2)
#     print(short[name], full.extras["flipped"], full.extras["l1"].round(1), full.extras["proto_distance"].round(2),
#           f"{full.seconds:.0f} s")
# ```
#
# The second round of the search lowers $c$ where the first round succeeded (or raises it where
# it failed), and the longer Adam run keeps shrinking the elastic-net term after the prediction has
# flipped: the change becomes smaller and sparser. The cost grows with the passes: 100 steps in
# each of 2 rounds against the preset's steps and rounds (its values are in the counterfactual
# table's caption), so compare the printed seconds with the cost table of section 8.
#
# ```{solution-end}
# ```
#
# ```{exercise-start}
# :label: examples-nb-ex-cosine
# ```
#
# The TracIn rankings of section 6 are dominated by training images with large loss gradients.
# Rerun the influence of one dataset with `normalize=True` (each score divided by both
# self-influences: the cosine of the two gradients) and compare the share of helpful images of
# the predicted class with the table above. Why would a few training images top the raw ranking
# for almost every test image?
#
# ```{exercise-end}
# ```
#
# ```{solution-start} examples-nb-ex-cosine
# :class: dropdown
# ```
#
# ```python
# name = datasets[0]
# x = tests[name].batch(range(n_eval))["image"]
# cos = mx.explain("influence", models[name], x, preset=preset, k=k, normalize=True)
# labels = cos.extras["training_labels"]
# print("helpful of the predicted class:", label_agreement(labels[cos.value["indices"]], cos.targets).mean())
# print("distinct helpful images, raw vs normalised:", len(np.unique(infs[name].value["indices"])),
#       len(np.unique(cos.value["indices"])))
# ```
#
# The raw score is a dot product, so it grows with the norm of the training image's gradient: an
# image the model fits badly (a hard case, or a wrong label) has a large gradient and a large
# score, positive or negative, for many test images at once. Dividing by the norms (Barshan et
# al.'s relative influence) asks for a gradient that points the same way instead, which spreads
# the rankings over more training images. The count of distinct images printed above shows how
# much.
#
# ```{solution-end}
# ```
#
# ## What to remember
#
# - A neighbour, a prototype or a helpful training image explains a prediction only as well as
#   the latent space is organised by class: score its agreement against a random training image.
# - Counterfactuals and CEM are searches: their answer depends on the budget, so report whether
#   they succeeded and how large the change was, not just the picture.
# - Influence scores can be checked on a known truth: plant mislabelled images and count how many
#   the ranking finds against the chance count.
#
# ## Run it on real data
#
# In Colab with a GPU (see [Running on real data and in Colab](../book/real_data.md)), fetch the
# datasets and set the parameters cell to:
#
# ```python
# datasets = ["figshare-brain-tumor", "ham10000"]   # the two public sets with lesion masks
# profile = "paper"              # 224 px, ImageNet weights
# preset = "book"                # or pass steps=100, c_steps=2 to the searches for the papers' budget
# n_eval = 200
# n_search = 4
# n_l2x = 64
# mislabel_dataset = "phantom-chest-xray"   # planted mislabels need the phantoms' known labels
# ```
#
# `chest-xray-pneumonia` has no lesion masks, and every section here scores against the lesion
# or picks lesion images, so it is left out. On a GPU the L2X explainer can be trained for the
# paper's number of epochs: `mx.explain("l2x", model, x, preset="book", epochs=20)` trains and
# caches it once.

# %% [markdown]
# ```{bibliography}
# :filter: docname in docnames
# ```

# %% tags=["remove-input"]
timer.glue()
