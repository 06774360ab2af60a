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
# # Concept-based explanations: TCAV, true effects, concept bottlenecks, ACE and ConceptSHAP (notebook)
#
# The companion notebook of the {doc}`concept-based chapter </book/concepts>`. The phantoms know
# every image's concepts and can draw the same image again with one concept switched, so each
# method below is checked against the truth:
#
# 1. the concepts and their true interventions (the same image, one concept switched);
# 2. TCAV on the dermoscopy model, with Kim et al.'s significance test against random concepts;
# 3. the causal concept effect of every concept, measured by re-rendering, and how well TCAV ranks it;
# 4. the same for the shortcut model of the {doc}`challenges notebook </notebooks/challenges>`;
# 5. concept bottleneck models (independent, sequential, joint), test-time intervention, a
#    probabilistic and a post-hoc bottleneck, on the brain MRI phantom;
# 6. ACE, which discovers concepts without labels, and ConceptSHAP, which measures how completely a
#    set of concepts explains a model;
# 7. the time each method took.

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
# Parameters (papermill can override them). True interventions exist for the phantoms only.
dataset = "phantom-skin"          # TCAV, true effects, ACE, ConceptSHAP: the ABCD concepts and the ruler
shortcut = 1.0                    # the challenges chapter's shortcut model (same arguments: one cache entry)
cbm_dataset = "phantom-brain-mri" # the bottlenecks: six binary concepts that decide the tumour type
profile = "cpu"
arch = "resnet14"
seed = 0
tcav_preset = "book"              # the registry's cost preset of "tcav" (examples, random runs, pool)
n_inputs = 15                     # test images of the explained class whose gradients TCAV counts
n_effect = 40                     # test images each true intervention re-renders, in both arms
n_permutations = 2999             # random orders behind the p-value of the pooled rank agreement
cbm_difficulty = 0.6              # fainter, smaller tumours than in training (0.3): the bottlenecks err
n_cbm = 150                       # such test images
ace_images = 8                    # images ACE segments
ace_resolutions = (5, 10, 20)     # SLIC superpixels per image, one segmentation per value
ace_clusters = 8                  # k-means clusters in activation space
ace_segments = 20                 # segments kept per discovered concept (nearest its centre)
ace_random = 15                   # random counterparts of the TCAV test of the discovered concepts
n_shap = 40                       # images per arm (artefact off, artefact on) for ConceptSHAP
shap_epochs = 200                 # Adam steps of ConceptSHAP's map g, per subset of concepts

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display

import medxai_lite as mx
from medxai_lite import concepts as C
from medxai_lite.book import chapter_timer, glue   # glue prints where no book is built (Colab)
from medxai_lite.data import INTERVENTIONS, SHORTCUT_CLASS, intervene
from medxai_lite.explain import METHODS
from medxai_lite.latent import classifier_head
from medxai_lite.viz.concepts import (plot_ace_gallery, plot_cbm_intervention, plot_concept_shap,
                                      plot_concept_weights, plot_intervention_curve, plot_intervention_pairs,
                                      plot_tcav, plot_tcav_vs_effect, plot_uncertainty_error)
from medxai_lite.viz.evaluation import plot_timing

timer = chapter_timer()   # this chapter's wall time, shown in its opening
mx.set_seed(seed)
seconds = {}              # method -> seconds measured in this run


class stopwatch:
    """``with stopwatch("name"):`` adds the block's wall time to ``seconds["name"]``."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        seconds[self.name] = seconds.get(self.name, 0.0) + time.perf_counter() - self.t0


clean_model = mx.get_trained_model(dataset, arch, profile, seed=seed, progress=False)
shortcut_model = mx.get_trained_model(dataset, arch, profile, seed=seed, shortcut=shortcut, progress=False)
models = {"clean model": clean_model, "shortcut model": shortcut_model}
size = clean_model.report.settings["image_size"]
target = SHORTCUT_CLASS[dataset]          # the explained class: melanoma, the class the artefact comes with
test = mx.load_dataset(dataset, "test", image_size=size, n=n_effect, seed=seed)
classes = test.classes
concepts = list(INTERVENTIONS[dataset])                   # what the phantom can switch, artefact included
labelled = [c for c in concepts if c != "artefact"]        # what the clean data label
print(f"explained class: {classes[target]}; concepts: {', '.join(concepts)}")
for name, model in models.items():
    print(f"{name}: accuracy on its own test split {model.report.test['accuracy']:.3f}")
glue("cc_target", classes[target], display=False)
glue("cc_size", int(size), display=False)

# %% [markdown]
# ## 1. Concepts you can switch
#
# `medxai_lite.data.intervene(dataset, {concept: value})` draws the same images again with one
# concept forced, every other random number unchanged: anatomy, noise, position and the other
# concepts stay as they were. Below, one melanoma of the test set with each concept at its two
# values, and the pixels that changed; then a glioma of the brain phantom. Every true effect in
# this notebook is measured on such pairs.

# %%
def switched(ds, i, names):
    """The two arms of each concept of ``names`` for item ``i`` of ``ds`` (low, high, values)."""
    low, high, values = [], [], []
    for c in names:
        arms = C.intervention_arms(ds, c)
        low.append(arms.low[i]["image"])
        high.append(arms.high[i]["image"])
        values.append((0.0, "1, as drawn") if arms.natural_high else arms.values)
    return torch.stack(low), torch.stack(high), values


show = mx.load_dataset(dataset, "test", image_size=size, n=8, seed=seed)   # a few images: every arm re-renders all
i_skin = int(np.flatnonzero(show.labels == target)[0])
low, high, values = switched(show, i_skin, concepts)
plot_intervention_pairs(low, high, concepts, values=values,
                        title=f"{dataset}, test image {i_skin} ({classes[show.labels[i_skin]]}): one concept switched "
                              "per row")
plt.show()
changed = {c: float((np.abs(h.numpy() - lo.numpy()).max(0) > 1e-6).mean()) for c, lo, h in zip(concepts, low, high)}

brain_test = mx.load_dataset(cbm_dataset, "test", image_size=size, n=8, seed=seed)
i_brain = int(np.flatnonzero(brain_test.labels == 0)[0])            # a glioma
brain_concepts = list(INTERVENTIONS[cbm_dataset])
low_b, high_b, values_b = switched(brain_test, i_brain, brain_concepts)
plot_intervention_pairs(low_b, high_b, brain_concepts, values=values_b,
                        title=f"{cbm_dataset}, test image {i_brain} ({brain_test.classes[0]}): one concept switched "
                              "per row")
plt.show()
print("share of pixels that changed, dermoscopy image:", {c: f"{v:.1%}" for c, v in changed.items()})
glue("cc_artefact_pixels", 100 * changed["artefact"], display=False)

# %% [markdown]
# Where the survey's application tables (Tables 2-10, in the {doc}`atlas </book/atlas>`) use
# concept-based methods:

# %%
from medxai_lite import atlas

uses = atlas.atlas_long()
uses = uses[uses["family"] == "Concept-based"]
where = uses.groupby("method").apply(
    lambda g: "; ".join(f"{m} [{', '.join(str(r) for r in sorted(set(x['reference'])))}]"
                        for m, x in g.groupby("sub_modality")), include_groups=False)
display(where.rename("sub-modality [survey reference numbers]").to_frame())
for method, text in where.items():
    glue(f"cc_atlas_{method.lower()}", text, display=False)

# %% [markdown]
# ## 2. TCAV on the dermoscopy model
#
# Kim et al.'s recipe, through the registry (`explain("tcav", ...)`, which wraps
# `captum.concept.TCAV`): for each concept, the images of a pool whose label says the concept is
# present; a linear classifier separates their activations at `layer2` (the stage before the
# ResNet14's last block) from those of a random set of training images (a second draw, so that no
# image sits on both sides), and its normal is the concept activation vector (CAV). The TCAV score counts the
# share of melanoma test images whose melanoma logit grows along the CAV. Each concept is trained
# against `n_random` different random sets, and `n_random` CAVs between two random sets give the
# scores of concepts that mean nothing; a Welch t-test with Holm's correction says which concepts
# differ from them. The preset fixes the budget:

# %%
preset = dict(METHODS["tcav"].presets[tcav_preset])
print(f"tcav preset {tcav_preset!r}:", preset)
glue("cc_n_examples", int(preset["n_examples"]), display=False)
glue("cc_n_random", int(preset["n_random"]), display=False)
glue("cc_n_pool", int(preset["n_pool"]), display=False)
glue("cc_n_inputs", int(n_inputs), display=False)
glue("cc_n_effect", int(n_effect), display=False)

inputs = test.batch(list(np.flatnonzero(test.labels == target)[:n_inputs]))["image"]
tcav_runs, tcav_seconds, tcav_pools = {}, {}, {}


def run_tcav(model_name, source, names):
    result = mx.explain("tcav", models[model_name], inputs, targets=target, preset=tcav_preset, concepts=names,
                        source=source, seed=seed)
    tcav_runs[model_name, source] = result.extras["tcav"]
    tcav_pools[model_name, source] = result.extras["random_pool"]   # where the random sets came from
    tcav_seconds[model_name, source] = result.seconds
    return result.extras["tcav"]


labels_clean = run_tcav("clean model", "labels", labelled)
# headers with spaces wrap, so the table fits the reading column
labels_clean.table().rename(columns=lambda c: c.replace("_", " ")).style.format(precision=3).set_caption(
    f"TCAV of '{classes[target]}' on the clean model, concept examples chosen by their labels (layer "
    f"{labels_clean.layer})")

# %% [markdown]
# Why so many scores sit at or near 0 or 1: at this layer the gradient of the melanoma logit points
# in nearly the same direction for every input. `gradient_alignment` measures it, as the cosine
# between the gradients of every pair of inputs.

# %%
alignment = C.gradient_alignment(clean_model, labels_clean.layer, target, inputs)
print(f"gradients at {labels_clean.layer}: mean pairwise cosine {alignment['mean']:.2f}, "
      f"smallest {alignment['min']:.2f}")
glue("cc_grad_cos", alignment["mean"], display=False)
glue("cc_grad_cos_min", alignment["min"], display=False)

# %% [markdown]
# A concept chosen by its label brings its class along: most images with an irregular border are
# melanomas, so the CAV of "border irregularity" also points towards "melanoma". The phantoms allow
# a cleaner set: the same pool images rendered with the concept switched on
# (`source="intervention"`), which differ from the random images in the concept only, not in the
# mix of classes. The artefact can be tested this way too, although no clean image carries it.

# %%
rendered_clean = run_tcav("clean model", "intervention", concepts)
plot_tcav({"examples chosen by label": labels_clean, "examples rendered with the concept on": rendered_clean},
          title=f"TCAV of '{classes[target]}', clean model: concepts (blue) against random CAVs (grey)")
plt.show()

# %% [markdown]
# ## 3. The true effect of each concept, and how well TCAV ranks it
#
# The causal concept effect (CaCE) of concept $C$ on the melanoma probability is
# $E[p(\text{melanoma} \mid do(C=1))] - E[p(\text{melanoma} \mid do(C=0))]$. Goyal et al. estimate
# the two arms with a generative model; the phantoms render them exactly, on the same `n_effect`
# test images, with a bootstrap interval over the images.

# %%
effects = {}
for name, model in models.items():
    with stopwatch(f"CaCE ({name})"):
        frame = C.causal_concept_effects(model, test, concepts, n_resamples=2000, seed=seed)
    effects[name] = frame[frame["class"] == classes[target]].set_index("concept")
    effects[name].attrs = {}      # the ConceptEffect objects stay in frame.attrs
effect_table = pd.concat({name: e[["effect", "ci_low", "ci_high", "n"]] for name, e in effects.items()},
                         names=["model"])
effect_table.style.format("{:.3f}", subset=[c for c in effect_table.columns if c != "n"]).format(
    {"n": "{:d}"}).set_caption(
    f"True effect of each concept on p({classes[target]}), with 95 % bootstrap intervals")

# %% [markdown]
# ## 4. The shortcut model
#
# The model the challenges notebook trains on dermoscopy phantoms in which every training melanoma
# carries a ruler (`shortcut=1.0`; the same arguments, so the cache holds it once). For TCAV its
# examples and random sets come from its own training distribution, so the ruler has natural
# examples there.

# %%
labels_short = run_tcav("shortcut model", "labels", concepts)
rendered_short = run_tcav("shortcut model", "intervention", concepts)
plot_tcav({"examples chosen by label": labels_short, "examples rendered with the concept on": rendered_short},
          title=f"TCAV of '{classes[target]}', shortcut model: concepts (blue) against random CAVs (grey)")
plt.show()
# the pool TCAV drew its random sets from (the model's training distribution) and how well each CAV
# tells its examples from random images
ruler_share = float(np.mean(tcav_pools["shortcut model", "intervention"].meta["artefact"]))
cav_acc = rendered_short.table()["cav_accuracy"]
glue("cc_pool_ruler_share", ruler_share, display=False)
glue("cc_short_artefact_cav_acc", float(cav_acc["artefact"]), display=False)
glue("cc_short_cav_acc_verdict", "barely above chance" if cav_acc["artefact"] < 0.7 else "well above chance",
     display=False)
print(f"shortcut model's pool: {ruler_share:.0%} of its images carry the ruler; CAV accuracy (rendered examples "
      f"against random sets, held-out share, chance 0.5): " + ", ".join(f"{c} {a:.2f}" for c, a in cav_acc.items()))

# %% [markdown]
# The random pool has a price. {glue:text}`cc_pool_ruler_share:.0%` of its images carry the
# ruler, so a random set holds rulers too, and the artefact's CAV, which has to separate ruler images from
# random ones, reaches a held-out accuracy of {glue:text}`cc_short_artefact_cav_acc:.2f`
# ({glue:text}`cc_short_cav_acc_verdict`; 0.5 is chance). A CAV that can hardly tell its examples
# from the random sets is a weak estimate of the ruler's direction in activation space, whatever
# score it then gets. The exercise on relative CAVs in {doc}`/book/concepts` trains each CAV
# against the concept's own negative arm instead.
#
# ### TCAV against the true effects, over every concept
#
# One point per (model, concept): its true effect and its TCAV score. Spearman's $\rho$ over all of
# them asks whether a higher TCAV score goes with a larger effect; its p-value comes from
# permutations (`rank_agreement`). The left panel uses Kim et al.'s examples chosen by label; the
# right one the rendered examples.

# %%
rows = []
for (name, source), res in tcav_runs.items():
    table = res.table()
    for c in res.concepts:
        e = effects[name].loc[c]
        rows.append({"model": name, "examples": source, "concept": c, "tcav": table.loc[c, "tcav"],
                     "tcav_std": table.loc[c, "tcav_std"], "significant": bool(table.loc[c, "significant"]),
                     "derivative": float(res.derivatives[:, res.concepts.index(c)].mean()),
                     "effect": e["effect"], "ci_low": e["ci_low"], "ci_high": e["ci_high"]})
pairs = pd.DataFrame(rows)
agreement = {}
for source in ("labels", "intervention"):
    sub = pairs[pairs["examples"] == source]
    keys = [f"{m}: {c}" for m, c in zip(sub["model"], sub["concept"])]
    agreement[source, "all"] = C.rank_agreement(dict(zip(keys, sub["tcav"])), dict(zip(keys, sub["effect"])),
                                                n_permutations=n_permutations, seed=seed)
    for name in models:
        one = sub[sub["model"] == name]
        agreement[source, name] = C.rank_agreement(dict(zip(one["concept"], one["tcav"])),
                                                   dict(zip(one["concept"], one["effect"])), seed=seed)
agree = pd.DataFrame([{"examples": s, "concepts of": who, "pairs": len(a.concepts), "Spearman rho": a.spearman,
                       "p (permutation)": a.p_spearman, "Kendall tau": a.kendall}
                      for (s, who), a in agreement.items()]).set_index(["examples", "concepts of"])
display(agree.style.format(precision=3, na_rep="undefined (a constant score)").set_caption(
    "Rank agreement between the TCAV score and the true effect"))

figs = []
for source, title in (("labels", "examples chosen by label"),
                      ("intervention", "examples rendered with the concept on")):
    a = agreement[source, "all"]
    f = plot_tcav_vs_effect(pairs[pairs["examples"] == source], yerr="tcav_std",
                            title=f"TCAV ({title}) against the true effect\nSpearman rho = {a.spearman:.2f} "
                                  f"(p = {a.p_spearman:.2f}, {len(a.concepts)} pairs)")
    figs.append(f)
    plt.show()
glue("cc_headline_fig", figs[0], display=False)

# %%
head = agreement["labels", "all"]
rendered = agreement["intervention", "all"]
glue("cc_rho", head.spearman, display=False)
glue("cc_rho_p", head.p_spearman, display=False)
glue("cc_rho_pairs", len(head.concepts), display=False)
glue("cc_rho_rendered", rendered.spearman, display=False)
glue("cc_rho_rendered_p", rendered.p_spearman, display=False)
glue("cc_rho_rendered_pairs", len(rendered.concepts), display=False)
verdict = ("significant at the 5 % level" if head.p_spearman < 0.05 else "not significant at the 5 % level")
glue("cc_rho_verdict", verdict, display=False)
agrees = bool(head.p_spearman < 0.05 and head.spearman > 0)
glue("cc_rho_sentence", "a higher TCAV score went with a larger true effect" if agrees else
     "a higher TCAV score did not go with a larger true effect", display=False)
runs = np.concatenate([r.random_scores for r in tcav_runs.values()])
extreme = float(np.mean((runs <= 0.1) | (runs >= 0.9)))
print(f"random CAVs: {extreme:.0%} of {len(runs)} scores within 0.1 of 0 or 1")
glue("cc_random_extreme", 100 * extreme, display=False)
glue("cc_random_n", int(len(runs)), display=False)
sat = pairs[(pairs["examples"] == "labels")]
glue("cc_n_saturated", int((sat["tcav"] >= 0.99).sum()), display=False)
glue("cc_n_label_pairs", int(len(sat)), display=False)
glue("cc_n_significant_labels", int(sat["significant"].sum()), display=False)
glue("cc_n_significant_rendered", int(pairs[pairs["examples"] == "intervention"]["significant"].sum()),
     display=False)
e_clean = effects["clean model"]["effect"]
glue("cc_top_effect_concept", str(e_clean.drop("artefact").idxmax()), display=False)
glue("cc_top_effect", float(e_clean.drop("artefact").max()), display=False)
glue("cc_low_effect_concept", str(e_clean.drop("artefact").idxmin()), display=False)
glue("cc_low_effect", float(e_clean.drop("artefact").min()), display=False)

# %% [markdown]
# ### Does each method find the artefact?

# %%
art = pairs[pairs["model"] == "shortcut model"].set_index(["examples", "concept"])
finding = {}
for source in ("labels", "intervention"):
    s = art.loc[source]
    others = s.drop("artefact")
    finding[source] = {"TCAV of the artefact": s.loc["artefact", "tcav"],
                       "significant": bool(s.loc["artefact", "significant"]),
                       "highest TCAV of the other concepts": others["tcav"].max(),
                       "other concepts scoring as high": int((others["tcav"] >= s.loc["artefact", "tcav"]).sum()),
                       "mean derivative, artefact": s.loc["artefact", "derivative"],
                       "largest mean derivative, others": others["derivative"].max()}
eff_short = effects["shortcut model"]
finding["true effect"] = {"effect of the artefact": eff_short.loc["artefact", "effect"],
                          "largest |effect| of the others": eff_short.drop("artefact")["effect"].abs().max()}
print(f"shortcut model, true effect of the artefact on p({classes[target]}): "
      f"{finding['true effect']['effect of the artefact']:.3f}; largest |effect| of any other concept: "
      f"{finding['true effect']['largest |effect| of the others']:.3f}")
# the same interventions on the log-odds, which does not saturate where p is already near 0 or 1
odds = C.causal_concept_effects(shortcut_model, test, concepts, scale="log_odds", n_resamples=2000, seed=seed)
odds_effects = odds.attrs["effects"]                      # the ConceptEffect of each concept, per image
odds = odds[odds["class"] == classes[target]].set_index("concept")
odds.attrs = {}
odds_others = odds.drop("artefact")["effect"].abs()
print(f"on the log-odds of {classes[target]}: artefact {odds.loc['artefact', 'effect']:+.2f}; "
      + ", ".join(f"{c} {odds.loc[c, 'effect']:+.2f}" for c in odds_others.index))
pd.DataFrame({k: v for k, v in finding.items() if k != "true effect"}).style.format(precision=3).set_caption(
    "Shortcut model: the artefact against the other concepts, for TCAV with each kind of example")

# %%
for source, key in (("labels", "labels"), ("intervention", "rendered")):
    f = finding[source]
    glue(f"cc_art_tcav_{key}", float(f["TCAV of the artefact"]), display=False)
    glue(f"cc_art_sig_{key}", "significant" if f["significant"] else "not significant", display=False)
    glue(f"cc_art_ties_{key}", int(f["other concepts scoring as high"]), display=False)
    alone = f["other concepts scoring as high"] == 0 and f["significant"]
    glue(f"cc_art_found_{key}", "singled out the artefact" if alone else "did not single out the artefact",
         display=False)
    glue(f"cc_art_deriv_{key}", float(f["mean derivative, artefact"]), display=False)
    glue(f"cc_art_deriv_others_{key}", float(f["largest mean derivative, others"]), display=False)
glue("cc_art_effect", float(finding["true effect"]["effect of the artefact"]), display=False)
glue("cc_art_effect_others", float(finding["true effect"]["largest |effect| of the others"]), display=False)
glue("cc_art_effect_clean", float(effects["clean model"].loc["artefact", "effect"]), display=False)
glue("cc_art_logodds", float(odds.loc["artefact", "effect"]), display=False)
glue("cc_logodds_other_concept", str(odds_others.idxmax()), display=False)
glue("cc_logodds_other", float(odds.loc[odds_others.idxmax(), "effect"]), display=False)
glue("cc_logodds_ratio", float(abs(odds.loc["artefact", "effect"]) / max(odds_others.max(), 1e-12)), display=False)
k_other = odds_effects[odds_others.idxmax()]
glue("cc_logodds_other_same_sign", float(np.mean(np.sign(k_other.differences[:, target])
                                                 == np.sign(k_other.on(target)))), display=False)
melanomas = np.flatnonzero(test.labels == target)          # the clean test set: no ruler anywhere
glue("cc_short_p_clean_melanoma", float(C.predict_proba(shortcut_model, test, melanomas)[:, target].mean()),
     display=False)
t = finding["true effect"]
glue("cc_art_effect_sentence", "the true effect singled out the artefact" if t["effect of the artefact"] > 0.5
     and t["largest |effect| of the others"] < 0.05 else "the true effect did not single out the artefact",
     display=False)

# %% [markdown]
# ## 5. Concept bottleneck models
#
# The bottlenecks read the penultimate features of the book's default brain MRI classifier, which
# stays frozen: a concept layer predicts the six concepts, a linear head predicts the tumour type
# from them alone. Koh et al.'s three trainings, a probabilistic and a post-hoc bottleneck are
# trained once and cached. Their report holds the scores on the classifier's own test split.

# %%
brain_model = mx.get_trained_model(cbm_dataset, arch, profile, seed=seed, progress=False)
cbms = {mode: C.get_trained_cbm(cbm_dataset, mode, profile=profile, seed=seed, classifier=brain_model)
        for mode in C.CBM_MODES}
prob_cbm = C.get_probabilistic_cbm(cbm_dataset, profile=profile, seed=seed, classifier=brain_model)
posthoc = C.get_posthoc_cbm(cbm_dataset, profile=profile, seed=seed, classifier=brain_model)
names_b, classes_b = cbms["joint"].concept_names, cbms["joint"].classes
own = pd.DataFrame({mode: {"task accuracy": m.report.metrics["label_accuracy"],
                           "concept accuracy (mean)": float(np.mean(m.report.metrics["concept_accuracy"])),
                           "concept AUC (mean)": float(np.nanmean(m.report.metrics["concept_auc"])),
                           "training s": m.report.seconds}
                    for mode, m in {**cbms, "probabilistic": prob_cbm}.items()}).T
own.loc["classifier (no bottleneck)"] = [brain_model.report.test["accuracy"], np.nan, np.nan, np.nan]
own.style.format(precision=3, na_rep="-").set_caption(
    f"{cbm_dataset}, the classifier's own test split ({brain_model.report.settings['n_test']} images; "
    "training s: how long each took when it was first trained; the first one trained in a session also "
    "paid for computing the classifier's features, which the others reused)")

# %% [markdown]
# On those images the bottlenecks make almost no mistake, so there is nothing to correct. A harder
# test set shows more: the same generator with fainter, smaller tumours (`difficulty` =
# `cbm_difficulty`, against 0.3 in training), as a scanner with less contrast would give.

# %%
hard = mx.load_dataset(cbm_dataset, "test", image_size=size, n=n_cbm, seed=seed, difficulty=cbm_difficulty)
with stopwatch("CBM (features and concepts)"):
    data = C.concept_data(brain_model, hard)
    features = torch.from_numpy(data.features).to(mx.model_device(brain_model))
    with torch.no_grad():
        predicted = {mode: m.bottleneck.concept_values(features).cpu().numpy() for mode, m in cbms.items()}
        predicted["probabilistic"] = prob_cbm.bottleneck.concept_values(features).cpu().numpy()
truth = data.concepts > 0.5
rows = {}
for mode, values in predicted.items():
    b = cbms[mode].bottleneck if mode in cbms else prob_cbm.bottleneck
    with torch.no_grad():
        task = float((b(features).argmax(1).cpu().numpy() == data.labels).mean())
    rows[mode] = {"task accuracy": task, "concept accuracy (mean)": float(((values > 0.5) == truth).mean()),
                  **{f"acc. {c}": float(((values[:, j] > 0.5) == truth[:, j]).mean()) for j, c in enumerate(names_b)}}
hard_table = pd.DataFrame(rows).T
clf_hard = float((data.logits.argmax(1) == data.labels).mean())
hard_table.loc["classifier (no bottleneck)", "task accuracy"] = clf_hard
display(hard_table.T.style.format(precision=3, na_rep="-").set_caption(   # a column per model fits the page
    f"The same models on {n_cbm} harder test images (difficulty {cbm_difficulty})"))
glue("cc_cbm_difficulty", float(cbm_difficulty), display=False)
glue("cc_n_cbm", int(n_cbm), display=False)
glue("cc_clf_hard", clf_hard, display=False)
glue("cc_clf_own", float(brain_model.report.test["accuracy"]), display=False)
for mode in (*C.CBM_MODES, "probabilistic"):
    glue(f"cc_cbm_task_{mode}", float(hard_table.loc[mode, "task accuracy"]), display=False)
    glue(f"cc_cbm_concepts_{mode}", float(hard_table.loc[mode, "concept accuracy (mean)"]), display=False)
    src = cbms[mode] if mode in cbms else prob_cbm
    glue(f"cc_cbm_own_{mode}", float(src.report.metrics["label_accuracy"]), display=False)
worst = hard_table.loc["joint", [f"acc. {c}" for c in names_b]].astype(float).idxmin()[5:]
glue("cc_cbm_worst_concept", worst, display=False)
glue("cc_cbm_worst_acc", float(hard_table.loc["joint", f"acc. {worst}"]), display=False)

# %% [markdown]
# ### Test-time intervention: correct a concept, watch the prediction
#
# `correctable_errors` lists the wrong predictions of the joint bottleneck that one corrected
# concept puts right. The first, with the largest concept error:

# %%
fixes = C.correctable_errors(cbms["joint"], data)
print(f"{len(fixes)} (image, concept) corrections put a wrong prediction right, on "
      f"{fixes['position'].nunique() if len(fixes) else 0} images")
glue("cc_n_fixable", int(fixes["position"].nunique()) if len(fixes) else 0, display=False)
glue("cc_n_wrong_joint", int(round((1 - hard_table.loc["joint", "task accuracy"]) * len(data.labels))), display=False)
if len(fixes):
    fix = fixes.iloc[0]
    k = int(fix["position"])
    image = hard[k]["image"][None]
    model = cbms["joint"]
    before = model.concepts(image)[0].cpu().numpy()
    after = before.copy()
    after[names_b.index(fix["concept"])] = fix["true"]
    p_before = torch.softmax(model.predict(image), 1)[0].cpu().numpy()
    p_after = torch.softmax(model.predict(image, interventions={fix["concept"]: float(fix["true"])}), 1)[0].cpu().numpy()
    plot_cbm_intervention(image[0], names_b, before, after, data.concepts[k], classes_b, p_before, p_after,
                          mask=hard.masks[k],
                          title=f"Harder test image {k} (true class: {fix['label']}): setting '{fix['concept']}' to "
                                f"its true value {fix['true']:g} turns '{fix['before']}' into '{fix['after']}'")
    plt.show()
    glue("cc_fix_sentence", f"on test image {k} (true class: {fix['label']}), the joint bottleneck gave "
                            f"'{fix['concept']}' a probability of {fix['predicted']:.2f} and answered "
                            f"'{fix['before']}'; setting that one concept to its true value, {fix['true']:g}, changed "
                            f"the answer to '{fix['after']}'", display=False)
    display(fixes.head(8).style.format(precision=3).set_caption("Corrections that fix a wrong prediction"))
else:
    glue("cc_fix_sentence", "no single corrected concept put a wrong prediction of the joint bottleneck right on "
                            "these images", display=False)

# %% [markdown]
# ### The intervention curve
#
# Task accuracy as $k$ concepts per image are replaced by their true values: in a random order,
# or the concepts whose probability is closest to 0.5 first (Koh et al., Fig. 4).

# %%
with stopwatch("intervention curves"):
    curves = {f"{mode}, random order": C.intervention_curve(m, data, order="random", seed=seed)
              for mode, m in cbms.items()}
    curves["joint, most uncertain first"] = C.intervention_curve(cbms["joint"], data, order="uncertain")
    curves["probabilistic, random order"] = C.intervention_curve(prob_cbm, data, order="random", seed=seed)
plot_intervention_curve(curves, reference={"classifier (no bottleneck)": clf_hard},
                        title=f"{cbm_dataset}, {n_cbm} harder test images: correcting concepts at test time")
plt.show()
curve_table = pd.DataFrame({label: c.set_index("k")["accuracy"] for label, c in curves.items()})
glue("cc_curve_k0", float(curve_table.loc[0, "joint, random order"]), display=False)
glue("cc_curve_k2_random", float(curve_table.loc[2, "joint, random order"]), display=False)
glue("cc_curve_k2_uncertain", float(curve_table.loc[2, "joint, most uncertain first"]), display=False)
glue("cc_curve_all", float(curve_table["joint, random order"].iloc[-1]), display=False)
glue("cc_n_concepts_b", int(len(names_b)), display=False)
k2u, k2r = curve_table.loc[2, "joint, most uncertain first"], curve_table.loc[2, "joint, random order"]
glue("cc_curve_sentence", "correcting the two most uncertain concepts first did better than two at random"
     if k2u > k2r else "correcting the two most uncertain concepts first did no better than two at random",
     display=False)

# %% [markdown]
# ## 6. A probabilistic bottleneck: does its uncertainty point at its errors?
#
# The probabilistic bottleneck gives each concept a distribution; its total uncertainty
# $\mathrm{Var}[c_j] = E[p(1-p)] + \mathrm{Var}[p]$ should be high where the concept is wrong. The
# predictions (image, concept) are sorted by uncertainty into five equal groups; for reference the
# same is done with the joint bottleneck's $p(1-p)$.

# %%
with stopwatch("probabilistic CBM (uncertainty)"):
    with torch.no_grad():
        u = prob_cbm.bottleneck.uncertainty(features)
errors_prob = (predicted["probabilistic"] > 0.5) != truth
errors_joint = (predicted["joint"] > 0.5) != truth
unc_tables = {"probabilistic CBM, Var[c]": C.error_by_uncertainty(u["total"].cpu().numpy(), errors_prob),
              "joint CBM, p(1 - p)": C.error_by_uncertainty(predicted["joint"] * (1 - predicted["joint"]),
                                                            errors_joint)}
plot_uncertainty_error(unc_tables, title=f"{cbm_dataset}, harder test images: concept errors by uncertainty "
                                         f"({errors_prob.size} predictions per model)")
plt.show()
display(pd.concat(unc_tables, names=["model"]).style.format(precision=3).set_caption(
    "Error rate of concept predictions in each fifth of the uncertainty"))
p_tab = unc_tables["probabilistic CBM, Var[c]"]
glue("cc_unc_auroc", p_tab.attrs["auroc"], display=False)
glue("cc_unc_auroc_joint", unc_tables["joint CBM, p(1 - p)"].attrs["auroc"], display=False)
glue("cc_unc_err_low", float(p_tab["error_rate"].iloc[0]), display=False)
glue("cc_unc_err_high", float(p_tab["error_rate"].iloc[-1]), display=False)
glue("cc_unc_share_epistemic", float(u["epistemic"].sum() / u["total"].sum()), display=False)
a_p, a_j = p_tab.attrs["auroc"], unc_tables["joint CBM, p(1 - p)"].attrs["auroc"]
glue("cc_unc_sentence", ("the probabilistic bottleneck's uncertainty flagged wrong concepts better than the joint "
                         "bottleneck's p(1 - p)") if a_p > a_j + 0.02 else
     ("the probabilistic bottleneck's uncertainty flagged wrong concepts no better than the joint bottleneck's "
      "p(1 - p), which costs nothing extra"), display=False)

# %% [markdown]
# ## 7. A post-hoc bottleneck
#
# No concept layer is trained into the model here: a linear probe per concept on the frozen
# features gives a concept vector, the image's projections on them are its concept scores, a
# sparse (L1) logistic head reads them (PCBM), and a residual on the features adds what the
# concepts miss (PCBM-h).

# %%
m = posthoc.report.metrics
with stopwatch("post-hoc CBM"):
    with torch.no_grad():
        scores_ph = posthoc.bottleneck.concept_values(features)
        head_only = posthoc.bottleneck.head(scores_ph).argmax(1).cpu().numpy()
        hybrid = posthoc.bottleneck(features).argmax(1).cpu().numpy()
ph_table = pd.DataFrame({
    "own test split": {"PCBM (sparse head)": m["head_accuracy"], "PCBM-h (head + residual)": m["label_accuracy"],
                       "classifier": m["classifier_accuracy"]},
    f"harder images (difficulty {cbm_difficulty})": {"PCBM (sparse head)": float((head_only == data.labels).mean()),
                                                     "PCBM-h (head + residual)": float((hybrid == data.labels).mean()),
                                                     "classifier": clf_hard}})
display(ph_table.style.format(precision=3).set_caption("Post-hoc bottleneck: task accuracy"))
print("probe accuracy per concept (training split): "
      + ", ".join(f"{c} {a:.3f}" for c, a in zip(names_b, m["probe_accuracy"])))
weights = posthoc.bottleneck.head.weight.detach().cpu().numpy()
plot_concept_weights(weights, names_b, classes_b,
                     title=f"PCBM's sparse head: {m['nonzero_weights']} non-zero weights of {weights.size}")
plt.show()
glue("cc_pcbm_head", float(m["head_accuracy"]), display=False)
glue("cc_pcbm_h", float(m["label_accuracy"]), display=False)
glue("cc_pcbm_head_hard", float(ph_table.iloc[0, 1]), display=False)
glue("cc_pcbm_h_hard", float(ph_table.iloc[1, 1]), display=False)
glue("cc_pcbm_nonzero", int(m["nonzero_weights"]), display=False)
glue("cc_pcbm_weights", int(weights.size), display=False)
leans = [f"'{cls}' most on '{names_b[int(np.argmax(weights[i]))]}'" for i, cls in enumerate(classes_b)
         if weights[i].max() > 0]
leans += [f"'{cls}' on the absence of '{names_b[int(np.argmin(weights[i]))]}'" for i, cls in enumerate(classes_b)
          if weights[i].max() <= 0 < -weights[i].min()]
glue("cc_pcbm_rules", "the sparse head rests " + ", ".join(leans), display=False)
print("the sparse head rests " + ", ".join(leans))

# %% [markdown]
# ## 8. ACE: concepts found without labels
#
# ACE segments `ace_images` melanomas of the shortcut model's own test distribution (each carries
# the ruler) with SLIC at several resolutions, clusters the segments' activations, keeps the
# clusters that recur across images and scores each with TCAV against random segments. It is told
# nothing about rulers; `segment_overlap` then measures how much of each discovered concept lies on
# the ruler's true pixels.

# %%
short_test = mx.load_dataset(dataset, "test", image_size=size, n=4 * ace_images, seed=seed, shortcut=shortcut)
pick = [i for i in range(len(short_test)) if short_test.labels[i] == target and short_test.meta["artefact"][i]]
pick = pick[:ace_images]
with stopwatch("ACE"):
    found = C.ace(shortcut_model, short_test.batch(pick)["image"], target=target, resolutions=tuple(ace_resolutions),
                  n_clusters=ace_clusters, max_segments=ace_segments, n_random=ace_random, seed=seed)
on_ruler = C.segment_overlap(found, short_test.meta["artefact_mask"][pick])
on_lesion = C.segment_overlap(found, short_test.masks[pick])
ace_table = found.table()
ace_table["share on the ruler"] = on_ruler
ace_table["share on the lesion"] = on_lesion
display(ace_table.style.format(precision=3).set_caption(
    f"ACE on the shortcut model: {len(found.patches)} segments, {len(found.concepts)} concepts kept"))
notes = {c.name: f"{r:.0%} on the ruler" for c, r in zip(found.concepts, on_ruler)}
plot_ace_gallery(found, k=6, notes=notes, title="ACE's concepts for the shortcut model (segments nearest each centre)")
plt.show()
best = int(np.argmax(on_ruler))
glue("cc_ace_n_segments", int(len(found.patches)), display=False)
glue("cc_ace_n_concepts", int(len(found.concepts)), display=False)
glue("cc_ace_ruler_concept", found.concepts[best].name, display=False)
glue("cc_ace_ruler_share", float(on_ruler[best]), display=False)
glue("cc_ace_ruler_tcav", float(found.concepts[best].tcav), display=False)
glue("cc_ace_ruler_sig", "significant" if found.concepts[best].significant else "not significant", display=False)
glue("cc_ace_n_significant", int(sum(c.significant for c in found.concepts)), display=False)
glue("cc_ace_ruler_area", float(short_test.meta["artefact_mask"][pick].mean()), display=False)
glue("cc_ace_sig_off_ruler", int(sum(c.significant and r < 0.05 for c, r in zip(found.concepts, on_ruler))),
     display=False)

# %% [markdown]
# ## 9. ConceptSHAP: how completely do the named concepts explain each model?
#
# The concept vectors are linear probes on the penultimate features (`probe_vectors`): one per
# ABCD attribute and one for the artefact, fitted on `n_shap` clean test images and the same images
# with the ruler switched on (so that the ruler is independent of the class). Completeness asks how
# much of the model's behaviour a map $g$ from the concept scores back to the features recovers
# through the model's own head, from 0 (no better than the most frequent answer) to 1. We score it
# against the model's own predictions, so it measures what explains the model, not what explains
# the label. ConceptSHAP gives each concept its Shapley value of completeness (exact, over the 32
# subsets); the values add up to the completeness of all five minus that of the empty set, which
# can be negative when the fitted $g$ scores below the majority answer, so they need not sum to
# the completeness itself. Half of the images fit $g$, the other half score it.

# %%
shap_data = mx.load_dataset(dataset, "test", image_size=size, n=n_shap, seed=seed)
shap_sets = [shap_data, intervene(shap_data, {"artefact": 1.0})]      # the clean test set carries no ruler
shap_results = {}
for name, model in models.items():
    with stopwatch(f"ConceptSHAP ({name})"):
        parts = [C.concept_data(model, ds) for ds in shap_sets]
        feats = np.concatenate([p.features for p in parts])
        preds = np.concatenate([p.logits.argmax(1) for p in parts])
        labels = np.concatenate([np.column_stack([p.concepts, p.artefact]) for p in parts])
        vectors = C.probe_vectors(feats, labels)
        fit, val = np.arange(len(feats)) % 2 == 0, np.arange(len(feats)) % 2 == 1
        shap_results[name] = C.concept_shap(feats[fit], preds[fit], classifier_head(model), vectors,
                                            names=labelled + ["artefact"], validation=(feats[val], preds[val]),
                                            epochs=shap_epochs, seed=seed)
plot_concept_shap(shap_results, title="ConceptSHAP: each concept's share of the completeness (model's own answers)")
plt.show()
display(pd.concat({n: r.table() for n, r in shap_results.items()}, names=["model"]).style.format(precision=3)
        .set_caption("ConceptSHAP value and completeness of each concept alone"))
for name, key in (("clean model", "clean"), ("shortcut model", "short")):
    r = shap_results[name]
    glue(f"cc_shap_complete_{key}", float(r.completeness), display=False)
    top = np.flatnonzero(np.isclose(r.shapley, np.max(r.shapley), rtol=0, atol=5e-3))   # ties within 0.005
    glue(f"cc_shap_top_{key}", " and ".join(r.names[int(i)] for i in top)
         + (" (tied)" if len(top) > 1 else ""), display=False)
    glue(f"cc_shap_top_value_{key}", float(np.max(r.shapley)), display=False)
    glue(f"cc_shap_artefact_{key}", float(r.shapley[r.names.index("artefact")]), display=False)
glue("cc_n_shap", int(n_shap), display=False)
r = shap_results["clean model"]
vs = C.rank_agreement(dict(zip(r.names, r.shapley)), effects["clean model"]["effect"].to_dict(), seed=seed)
print(f"clean model: ConceptSHAP against the true effects, Spearman rho = {vs.spearman:.2f} (p = {vs.p_spearman:.2f})")
glue("cc_shap_vs_effect", vs.spearman, display=False)
glue("cc_shap_vs_effect_p", vs.p_spearman, display=False)

# %% [markdown]
# ## 10. What each method cost
#
# Wall time of each step in this run (seconds, on this machine); TCAV includes drawing its pool
# and rendering its examples, CaCE the rendering of both arms of every concept.

# %%
for (name, source), s in tcav_seconds.items():
    seconds[f"TCAV, {'labelled' if source == 'labels' else 'rendered'} examples ({name})"] = s
timing = pd.Series(seconds, name="seconds").sort_values()
plot_timing(timing.to_frame("this run"), title="Seconds per method in this run", xlabel="seconds (log scale)",
            figsize=(8, 4.8))
plt.show()
for key, s in seconds.items():
    glue("cc_s_" + "".join(ch if ch.isalnum() else "_" for ch in key.lower()).strip("_"), float(s), display=False)
glue("cc_s_tcav_mean", float(np.mean(list(tcav_seconds.values()))), display=False)
glue("cc_s_cace_mean", float(np.mean([seconds[f"CaCE ({n})"] for n in models])), display=False)
glue("cc_s_shap_mean", float(np.mean([seconds[f"ConceptSHAP ({n})"] for n in models])), display=False)
timing.to_frame().style.format("{:.1f}")

# %% [markdown]
# ## Exercises and what to remember
#
# Both are on the {doc}`chapter page </book/concepts>`: relative CAVs from the two arms of an
# intervention, why a derivative is not an effect, and where a bottleneck is worth its cost.
#
# ## Run it on real data
#
# TCAV, ACE and the bottlenecks need concept labels or images of a concept, and the true effects
# need images that can be re-rendered with one concept switched; none of the book's public
# datasets provides either (HAM10000 and ISIC images carry a diagnosis, not ABCD labels; derm7pt
# and SkinCon carry dermoscopic concepts, but are not in `medxai_lite`'s registry). On a GPU the
# phantom run can be made larger:
#
# ```python
# profile = "paper"          # 224 px classifiers
# tcav_preset = "book"       # or pass n_examples=50, n_random=50 to explain("tcav", ...)
# n_inputs = 100
# n_effect = 400
# n_cbm = 1000
# ace_images = 40
# ace_resolutions = (15, 50, 80)   # Ghorbani et al.'s values at 299 px
# ace_clusters = 25
# ace_segments = 40
# ace_random = 20
# n_shap = 400
# shap_epochs = 300
# ```

# %% [markdown]
# ```{bibliography}
# :filter: docname in docnames
# ```

# %% tags=["remove-input"]
timer.glue()
