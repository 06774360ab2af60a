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
# # Open challenges in practice
#
# Three of the problems the [previous page](../book/challenges.md) describes, run and measured:
#
# 1. **A shortcut model, caught and cured.** A network is trained on phantom images in which an
#    artefact comes with one class. Its test accuracy looks fine; its explanations and two
#    altered test sets show what it learnt; the book's model trained without the artefact is the
#    cure.
# 2. **Explanations under acquisition noise.** Speckle, Rician noise and a bias field, each at
#    growing strength: how much does the map of the same image change, and does the prediction
#    change with it?
# 3. **Plausible is not faithful.** Maps that sit on the lesion and yet stay rank-correlated with
#    themselves when the network's weights are replaced by random ones, next to maps that do change.
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
dataset = "phantom-skin"          # the shortcut lesson; a phantom: only they can move the artefact
shortcut = 1.0                    # share of the shortcut class that carries the artefact in training
profile = "cpu"
arch = "resnet14"
seed = 0
n_eval = 200                      # test images per test set (accuracy)
n_explain = 8                     # artefact-bearing test images explained and scored
n_show = 2                        # of which drawn
shortcut_methods = ["gradcam", "integrated_gradients", "occlusion"]
preset = "quick"                  # the registry's cost preset of the slower methods
robust_dataset = "phantom-brain-mri"   # the corruption study
robust_methods = ["gradcam", "integrated_gradients"]
strengths = {"speckle": [0.05, 0.1, 0.2], "rician": [0.02, 0.04, 0.08], "bias_field": [0.1, 0.2, 0.4]}
n_robust = 4                      # lesion images explained clean and corrupted
n_robust_accuracy = 120           # test images for the accuracy under corruption
sanity_dataset = "phantom-brain-mri"   # plausible versus faithful
sanity_methods = ["gradcam", "eigencam", "guided_backprop", "integrated_gradients", "saliency"]
n_sanity = 4
randomisation_threshold = 0.5     # mean Spearman at or above this after randomisation: the method fails

# %%
import copy

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import medxai_lite as mx
from medxai_lite.book import chapter_timer, glue   # glue prints where no book is built (Colab)
from medxai_lite.data import SHORTCUT_CLASS
from medxai_lite.data.corruptions import corrupt
from medxai_lite.explain import METHODS, explain
from medxai_lite.metrics import chance_level, model_randomisation_table, pointing_game, random_maps
from medxai_lite.metrics import relevance_mass_accuracy
from medxai_lite.metrics.sanity import randomisable_layers, randomise_layers
from medxai_lite.robustness import corrupted_accuracy, corruption_stability, stability_summary
from medxai_lite.selection import lesion_images
from medxai_lite.shortcuts import TEST_SETS, accuracy_table, artefact_batch, region_mass, shortcut_test_sets
from medxai_lite.viz import style_verdicts
from medxai_lite.viz.challenges import (plot_artefact_examples, plot_corruptions, plot_region_mass,
                                        plot_shortcut_maps, plot_stability)
from medxai_lite.viz.evaluation import plot_randomisation_maps

timer = chapter_timer()   # this chapter's wall time, shown in its opening
mx.set_seed(seed)


def options_of(method: str) -> dict:
    """The registry's cost preset for ``method`` (nothing for methods without one)."""
    return {"preset": preset} if METHODS[method].presets.get(preset) else {}


# %% [markdown]
# ## 1. A shortcut model, caught and cured
#
# ### The data
#
# `load_dataset(name, shortcut=s)` draws the same phantoms as always, but puts an artefact on a
# share `s` of the images of one class (`SHORTCUT_CLASS`) and on no other image. In the training
# set below, every artefact therefore says "this is the shortcut class". The dataset also records
# where the artefact's pixels are (`meta["artefact_mask"]`), so relevance on it can be measured
# like relevance on the lesion.

# %%
clean_model = mx.get_trained_model(dataset, arch, profile, seed=seed, progress=False)
size = clean_model.report.settings["image_size"]
target = SHORTCUT_CLASS[dataset]
look = mx.load_dataset(dataset, "train", image_size=size, n=64, seed=seed, shortcut=shortcut)
classes = look.classes
with_art = list(np.flatnonzero(look.meta["artefact"])[:2])
without = [i for i in range(len(look)) if look.labels[i] != target][:2]
plot_artefact_examples(look, with_art + without,
                       title=f"{dataset}, training images with shortcut={shortcut:g}: the artefact comes "
                             f"with '{classes[target]}' only")
plt.show()
share = {c: float(look.meta["artefact"][look.labels == k].mean()) for k, c in enumerate(classes)}
print("share of training images carrying the artefact, per class:", {c: f"{v:.0%}" for c, v in share.items()})

# %% [markdown]
# ### Training the shortcut model
#
# The same network and settings as the book's default model (the `cpu` profile), trained once on
# data with the artefact and then read from the cache. The book's default model, trained on the
# same kind of images without any artefact, plays the part of the model retrained after the
# problem was found.

# %%
shortcut_model = mx.get_trained_model(dataset, arch, profile, seed=seed, shortcut=shortcut, progress=False)
models = {"shortcut model": shortcut_model, "clean model": clean_model}
for name, model in models.items():
    r = model.report
    print(f"{name}: trained {r.seconds:.0f} s, best epoch {r.best_epoch}; accuracy on its own test split "
          f"{r.test['accuracy']:.3f}")
glue("ch_train_s", float(shortcut_model.report.seconds), display=False)

# %% [markdown]
# ### Behaviour: three test sets from the same images
#
# The phantoms draw the same random numbers whatever `shortcut` is, so one seed gives the same
# `n_eval` test images three times: with the artefact at the training rate, without any
# artefact, and with the artefact moved to another class. Only the artefact differs between the
# three. The last column counts how often each model answers with the shortcut class.

# %%
sets = shortcut_test_sets(dataset, shortcut, n=n_eval, image_size=size, seed=seed)
accuracy = accuracy_table(models, sets)
acc = accuracy.set_index(["model", "test set"])
for m_key, m_name in (("s", "shortcut model"), ("c", "clean model")):
    for t_key, t_name in zip(("same", "free", "moved"), TEST_SETS):
        glue(f"ch_acc_{m_key}_{t_key}", float(acc.loc[(m_name, t_name), "accuracy"]), display=False)
        glue(f"ch_pred_{m_key}_{t_key}", float(acc.loc[(m_name, t_name), "predicted shortcut class"]), display=False)


def change(a: float, b: float) -> str:
    return "falls" if b < a - 0.005 else ("rises" if b > a + 0.005 else "stays at about the same level,")


s_acc = [float(acc.loc[("shortcut model", t), "accuracy"]) for t in TEST_SETS]
c_acc = [float(acc.loc[("clean model", t), "accuracy"]) for t in TEST_SETS]
moved_pred = float(acc.loc[("shortcut model", TEST_SETS[2]), "predicted shortcut class"])
steady = max(c_acc) - min(c_acc) < 0.02
behaviour = (f"The shortcut model's accuracy {change(s_acc[0], s_acc[1])} from {s_acc[0]:.3f} to {s_acc[1]:.3f} once "
             f"the artefact is removed, and {change(s_acc[0], s_acc[2]).rstrip(',')} to {s_acc[2]:.3f} when the "
             f"artefact is moved to another class, where it answers '{classes[target]}' for {moved_pred:.0%} of the "
             f"images. The clean model scores {c_acc[0]:.3f}, {c_acc[1]:.3f} and {c_acc[2]:.3f} on the three sets"
             + (", hardly affected by the artefact." if steady else "."))
glue("ch_behaviour_sentence", behaviour, display=False)
print(behaviour)
glue("ch_n_eval", n_eval, display=False)
glue("ch_shortcut_class", classes[target], display=False)
glue("ch_dataset", dataset, display=False)
glue("ch_shortcut", f"{shortcut:g}", display=False)
(accuracy.drop(columns="n").rename(columns={"predicted shortcut class": f"predicted '{classes[target]}'"})
 .style.hide(axis="index").format(precision=3)
 .set_caption(f"{dataset}: accuracy on the same {n_eval} test images, with the artefact moved"))

# %%
fig, ax = plt.subplots(figsize=(7.5, 3.2))
accuracy.pivot(index="test set", columns="model", values="accuracy").loc[list(TEST_SETS)].plot.barh(ax=ax)
ax.axvline(1 / len(classes), color="grey", ls="--", lw=1, label="chance (equal classes)")
ax.set_xlabel("accuracy")
ax.set_ylabel("")
ax.set_xlim(0, 1)
ax.legend(fontsize=8, loc="lower right")
ax.set_title(f"{dataset}: the shortcut model against the clean model")
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Explanations: relevance on the artefact and on the lesion
#
# The first `n_explain` test images of the shortcut class that carry the artefact, explained for
# their true class by each model. Every map is scored twice with relevance mass accuracy
# {cite}`arras2022clevr`: the share of its positive relevance on the lesion and on the artefact.
# Each region's share of the image is what a map that knows nothing gets, and a random map on
# the CAM grid is scored beside the methods. A region can touch the other (a large lesion
# reaching the ruler); each is scored on its own.

# %%
batch = artefact_batch(sets[TEST_SETS[0]], n_explain)
x, y = batch["image"], batch["label"]
regions = {"artefact": batch["artefact_mask"].numpy(), "lesion": batch["mask"].numpy()}
maps, seconds = {}, {}
for name, model in models.items():
    for m in shortcut_methods:
        res = explain(m, model, x, y, seed=seed, **options_of(m))
        maps[(name, m)] = res.maps
        seconds[(name, m)] = res.seconds / len(x)
reference = random_maps(x, "cam", model=clean_model, arch=arch, seed=seed)
tables = [region_mass(mp, regions).assign(model=name, method=m) for (name, m), mp in maps.items()]
tables += [region_mass(reference, regions).assign(model=name, method="random map") for name in models]
mass = pd.concat(tables, ignore_index=True)
peaks = {key: pointing_game(None, None, None, mp, regions["artefact"]).mean() for key, mp in maps.items()}
summary = mass.groupby(["model", "method", "region"], sort=False)[["mass", "area"]].mean().reset_index()
wide = summary.pivot_table(index=["model", "method"], columns="region", values="mass", sort=False)
wide = wide.rename(columns={"artefact": "mass on the artefact", "lesion": "mass on the lesion",
                            "elsewhere": "mass elsewhere"})
wide["peak on the artefact"] = [peaks.get(k, np.nan) for k in wide.index]
areas = summary.drop_duplicates("region").set_index("region")["area"]
print(f"{len(x)} images; the artefact covers {areas['artefact']:.1%} of the image on average and the lesion "
      f"{areas['lesion']:.1%}: the mass a map with no information puts on each")
wide.style.format("{:.2f}", na_rep="").set_caption("Mean share of positive relevance per region, and how often "
                                                    "the map's peak lies on the artefact")

# %%
plot_region_mass(summary, title=f"{dataset}: where the relevance goes ({len(x)} images with the artefact)")
plt.show()

# %%
show = slice(0, n_show)
panels = {f"{name.split()[0]}: {m}": maps[(name, m)][show] for name in models for m in shortcut_methods}
clip = {f"{name.split()[0]}: {m}": 99 if METHODS[m].family == "Gradient-based" else None
        for name in models for m in shortcut_methods}
plot_shortcut_maps(x[show], panels, lesion_masks=regions["lesion"][show], artefact_masks=regions["artefact"][show],
                   row_titles=[classes[int(v)] for v in y[show]], clip_percentile=clip,
                   title="The same images explained by the shortcut model and by the clean model")
plt.show()

# %%
g = wide["mass on the artefact"]
glue("ch_area_artefact", float(areas["artefact"]), display=False)
glue("ch_area_lesion", float(areas["lesion"]), display=False)
glue("ch_n_explain", len(x), display=False)
for m in shortcut_methods:
    glue(f"ch_art_s_{m}", float(g[("shortcut model", m)]), display=False)
    glue(f"ch_art_c_{m}", float(g[("clean model", m)]), display=False)
    glue(f"ch_les_s_{m}", float(wide.loc[("shortcut model", m), "mass on the lesion"]), display=False)
    glue(f"ch_les_c_{m}", float(wide.loc[("clean model", m), "mass on the lesion"]), display=False)
    glue(f"ch_peak_s_{m}", float(peaks[("shortcut model", m)]), display=False)
    glue(f"ch_peak_c_{m}", float(peaks[("clean model", m)]), display=False)
glue("ch_art_random", float(g[("shortcut model", "random map")]), display=False)
art_area = float(areas["artefact"])
caught = [m for m in shortcut_methods
          if g[("shortcut model", m)] >= 2 * art_area and g[("shortcut model", m)] >= 2 * g[("clean model", m)]]
missed = [m for m in shortcut_methods if m not in caught]


def detail(m: str) -> str:
    return f"{m} {g[('shortcut model', m)]:.2f} against {g[('clean model', m)]:.2f}"


parts = []
if caught:
    parts.append(f"{' and '.join(caught)} single{'s' if len(caught) == 1 else ''} the artefact out, putting at least "
                 f"twice its share of the image and twice the clean model's share on it ({'; '.join(map(detail, caught))})")
if missed:
    parts.append(f"{' and '.join(missed)} {'does' if len(missed) == 1 else 'do'} not "
                 f"({'; '.join(map(detail, missed))})")
caught_sentence = "; ".join(parts)
glue("ch_caught_sentence", caught_sentence, display=False)
glue("ch_caught_methods", " and ".join(caught) or "none of the methods", display=False)
les_area = float(areas["lesion"])
lesion_mass = wide["mass on the lesion"]
fooled = [m for m in missed if lesion_mass[("shortcut model", m)] > les_area]
if fooled:
    fooled_sentence = (f"{' and '.join(fooled)} even put{'s' if len(fooled) == 1 else ''} more than the lesion's share "
                       f"of the image ({les_area:.2f}) on the lesion for the shortcut model ("
                       + "; ".join(f"{m} {lesion_mass[('shortcut model', m)]:.2f}" for m in fooled)
                       + "): a plausible picture of a decision that the test sets show to rest on the artefact.")
elif missed:
    fooled_sentence = f"{' and '.join(missed)} do{'es' if len(missed) == 1 else ''} not favour the lesion either."
else:
    fooled_sentence = "Every method of the run singles the artefact out."
glue("ch_fooled_sentence", fooled_sentence, display=False)
print(f"Relevance on the artefact (shortcut model against clean model; the artefact covers {art_area:.2f} of "
      f"the image): {caught_sentence}. {fooled_sentence}")

# %% [markdown]
# In this run, {glue:text}`ch_caught_sentence` (shares of relevance on the artefact, shortcut
# model against clean model; the artefact covers {glue:text}`ch_area_artefact:.2f` of the image).
# {glue:text}`ch_fooled_sentence` The evidence comes from two independent places: the behaviour on the three test sets, which
# needs no explanation at all, and the maps, which need no altered test set. In practice only
# the second is usually available, because nobody knows in advance which artefact to remove,
# and a map is where a reader first sees the ruler lit up. Running more than one method guards
# against a method that misses what another one shows.

# %% [markdown]
# ## 2. Explanations under acquisition noise
#
# The book's default model of `robust_dataset`, the first `n_robust` lesion-bearing test images,
# and three corruptions from `medxai_lite.data.corruptions`, each applied in intensity space: the
# normalised tensors are mapped back to [0, 1] (`denormalize`), corrupted, clipped to [0, 1] and
# normalised again (`corrupt`). A grey image gets one noise field for its three channels.
#
# - **speckle** (ultrasound-like): $y = x\,(1 + n)$, $n \sim N(0, s^2)$, via scikit-image's
#   `random_noise(mode="speckle")`;
# - **Rician noise** (MRI magnitude): $y = |x + n_1 + i\,n_2|$, $n_{1,2} \sim N(0, \sigma^2)$
#   {cite}`gudbjartsson1995rician`;
# - **bias field** (MRI intensity inhomogeneity): $y = x\,e^{\alpha g}$ with $g$ a smooth random
#   field of zero mean and unit spread {cite}`sled1998nonparametric`.
#
# Each map of a corrupted image is compared with the map of the clean image for the same class by
# Spearman's rank correlation over the pixels (1: the same ranking). The model's accuracy on
# `n_robust_accuracy` test images corrupted in the same way is drawn beside it.

# %%
robust_model = mx.get_trained_model(robust_dataset, arch, profile, seed=seed, progress=False)
_, rbatch = lesion_images(robust_dataset, robust_model, n_robust, seed=seed)
xr, yr = rbatch["image"], rbatch["label"]
corrupted = {k: {0.0: xr[0]} | {s: corrupt(xr, k, s, seed=seed)[0] for s in v} for k, v in strengths.items()}
example_maps = {k: {s: explain("gradcam", robust_model, img[None], yr[:1]).maps[0] for s, img in row.items()}
                for k, row in corrupted.items()}
plot_corruptions(xr[0], corrupted, maps=example_maps, mask=rbatch["mask"][0].numpy() if "mask" in rbatch else None,
                 title=f"{robust_dataset}: one image under each corruption, and its Grad-CAM map below it")
plt.show()

# %%
stability = corruption_stability(robust_model, xr, yr, robust_methods, strengths, seed=seed,
                                 method_options={m: options_of(m) for m in robust_methods})
acc_set = mx.load_dataset(robust_dataset, "test", image_size=robust_model.report.settings["image_size"],
                          n=n_robust_accuracy, seed=seed).batch()
corr_acc = corrupted_accuracy(robust_model, acc_set["image"], acc_set["label"], strengths, seed=seed)
stab = stability_summary(stability, corr_acc)
plot_stability(stab, corr_acc, strength_labels={"speckle": "speckle std s", "rician": "Rician sigma",
                                                "bias_field": "bias field alpha (std of the log gain)"},
               title=f"{robust_dataset}: map stability ({len(xr)} images) and accuracy ({len(acc_set['image'])} images)")
plt.show()
robust_table = stab.pivot_table(index=["corruption", "strength"], columns="method", values="spearman", sort=False)
robust_table["model accuracy"] = stab.drop_duplicates(["corruption", "strength"]).set_index(
    ["corruption", "strength"])["accuracy"]
(robust_table.style.format("{:.2f}").format_index("{:g}", level=1)
 .set_caption("Mean Spearman correlation between the maps of the clean and the corrupted images, and the "
              "model's accuracy on the corrupted images"))

# %%
strongest = stab.sort_values("strength").groupby(["corruption", "method"], sort=False).last().reset_index()
lines = []
for kind in strengths:
    row = strongest[strongest.corruption == kind].set_index("method")
    s_max = float(row["strength"].iloc[0])
    acc0 = float(corr_acc[(corr_acc.corruption == kind) & (corr_acc.strength == 0)].accuracy.iloc[0])
    acc1 = float(row["accuracy"].iloc[0])
    rhos = ", ".join(f"{m} {row.loc[m, 'spearman']:.2f}" for m in robust_methods)
    lines.append(f"{kind} at {s_max:g}, map correlation {rhos}, accuracy {acc0:.2f} -> {acc1:.2f}")
    for m in robust_methods:
        glue(f"ch_rho_{kind}_{m}", float(row.loc[m, "spearman"]), display=False)
    glue(f"ch_acc_{kind}", acc1, display=False)
glue("ch_acc_clean", float(corr_acc[corr_acc.strength == 0].accuracy.iloc[0]), display=False)
robust_chance = 1 / len(robust_model.report.classes)
glue("ch_robust_chance", robust_chance, display=False)
glue("ch_robust_sentence", "; ".join(lines), display=False)
lowest = strongest.loc[strongest.spearman.idxmin()]
glue("ch_rho_lowest", float(lowest.spearman), display=False)
glue("ch_rho_lowest_where", f"{lowest.method} under {lowest.corruption} at {lowest.strength:g}", display=False)
print("\n".join(lines))

# %% [markdown]
# At the strongest setting of each corruption: {glue:text}`ch_robust_sentence` (chance:
# {glue:text}`ch_robust_chance:.2f`). The least stable
# map was {glue:text}`ch_rho_lowest_where`, with a rank correlation of
# {glue:text}`ch_rho_lowest:.2f`. Read the two curves together: where the accuracy holds and the
# map moves, the explanation is less robust than the decision it explains; where the accuracy
# falls, the network's evidence has changed and a changed map may report that faithfully; a map
# that stays put after the accuracy has collapsed may follow the image more than the network
# (section 3 checks that directly).

# %% [markdown]
# ## 3. Plausible is not faithful
#
# The evaluation chapter's model-randomisation check {cite}`adebayo2018sanity`, on `n_sanity`
# lesion images: each method explains the trained network and a copy whose every layer has been
# re-initialised, and a mean Spearman correlation of at least `randomisation_threshold` between
# the two sets of maps marks a failure. Beside it, how *plausible* each trained map looks: the
# share of relevance on the lesion and whether the peak lies on it.

# %%
sanity_model = mx.get_trained_model(sanity_dataset, arch, profile, seed=seed, progress=False)
_, sbatch = lesion_images(sanity_dataset, sanity_model, n_sanity, seed=seed)
xs, ys, ms = sbatch["image"], sbatch["label"], sbatch["mask"].numpy()
verdicts = model_randomisation_table(sanity_model, xs, ys, sanity_methods, seed=seed,
                                     method_options={m: options_of(m) for m in sanity_methods},
                                     threshold=randomisation_threshold).set_index("method")
randomised = randomise_layers(copy.deepcopy(sanity_model), randomisable_layers(sanity_model), seed=seed)
trained_maps = {m: explain(m, sanity_model, xs, ys, seed=seed, **options_of(m)).maps for m in sanity_methods}
verdicts["mass on the lesion"] = [relevance_mass_accuracy(None, None, None, trained_maps[m], ms).mean()
                                  for m in verdicts.index]
verdicts["pointing game"] = [pointing_game(None, None, None, trained_maps[m], ms).mean() for m in verdicts.index]
chance = float(chance_level(ms).mean())
print(f"chance level (the lesion's share of the image): {chance:.3f}")
style_verdicts(verdicts[["family", "mass on the lesion", "pointing game", "spearman", "ssim", "verdict"]]
               .sort_values("spearman", ascending=False), precision=2,
               caption=f"{sanity_dataset}: plausibility on the trained model and similarity after randomisation")

# %%
failing = verdicts[verdicts.verdict == "fails"]
passing = verdicts[verdicts.verdict == "passes"]
plausible = failing.sort_values(["pointing game", "mass on the lesion"], ascending=False).index[:1].tolist()
faithful = passing.sort_values(["pointing game", "mass on the lesion"], ascending=False).index[:1].tolist()
pair = plausible + faithful or verdicts.sort_values("spearman").index[[-1, 0]].tolist()
random_side = {m: explain(m, randomised, xs, ys, seed=seed, **options_of(m)).maps for m in pair}
plot_randomisation_maps(xs[0], {m: [trained_maps[m][0], random_side[m][0]] for m in pair},
                        ["trained network", "all layers random"], mask=ms[0],
                        clip_percentile={m: None if METHODS[m].family == "CAM-based" else 99 for m in pair},
                        title="One image, trained and randomised")
plt.show()
if plausible:
    p = plausible[0]
    text = (f"{p} fails: its maps keep a Spearman correlation of {verdicts.loc[p, 'spearman']:.2f} with those of the "
            f"randomised network, although on the trained network its peak lies on the lesion in "
            f"{verdicts.loc[p, 'pointing game']:.0%} of the images and it puts {verdicts.loc[p, 'mass on the lesion']:.2f} "
            f"of its relevance there (chance {chance:.2f})")
else:
    top = verdicts.spearman.idxmax()
    text = (f"no method fails the check in this run; the most insensitive is {top}, with a Spearman correlation of "
            f"{verdicts.loc[top, 'spearman']:.2f} after randomisation")
if faithful:
    f = faithful[0]
    text += (f"; {f} passes, its correlation falls to {verdicts.loc[f, 'spearman']:.2f}, with a pointing game of "
             f"{verdicts.loc[f, 'pointing game']:.2f} on the trained network")
glue("ch_sanity_sentence", text, display=False)
glue("ch_sanity_failing", ", ".join(failing.index) or "none", display=False)
if "guided_backprop" in verdicts.index:
    gb = verdicts.loc["guided_backprop"]
    outcome = {"passes": "passes it", "fails": "fails it", "undefined": "gives constant maps, which leave it undefined,",
               "error": "could not be run"}[gb.verdict]
    gb_text = (f"Guided Backpropagation, which the original study found insensitive to randomisation, {outcome} here "
               f"(mean Spearman correlation {gb.spearman:.2f} against a threshold of {randomisation_threshold:g}): "
               "the verdict depends on the network and the images, which is why it is measured, not assumed.")
else:
    gb_text = "Guided Backpropagation was not among the methods checked in this run."
glue("ch_gb_sentence", gb_text, display=False)
print(text + ".")
print(gb_text)


# %% [markdown]
# In this run, {glue:text}`ch_sanity_sentence`. A map that survives the destruction of every
# learnt weight is computed mostly from the image: edges and bright structures, which in a scan
# often coincide with the lesion. It looks convincing for the same reason it is uninformative.
# Which methods fail here ({glue:text}`ch_sanity_failing`) is read off this run, not assumed; the
# evaluation chapter runs the same check on every method of the registry.

# %% [markdown]
# ## Exercises
#
# ```{exercise-start}
# :label: ch-ex-missing
# ```
#
# The three test sets share their images. Explain the shortcut model's decision on the
# artefact-bearing images of section 1 once more, but on their artefact-free versions (the
# `"without the artefact"` set holds them at the same indices), and score the maps with
# `region_mass` using the *same* artefact masks. Where does the relevance go when the artefact
# is missing, and what does the model predict for these images?
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{solution-start} ch-ex-missing
# :class: dropdown
# ```

# %%
plain = sets[TEST_SETS[1]].batch([int(i) for i in batch["index"]])
method = caught[0] if caught else "integrated_gradients"     # a method that found the artefact above
res = explain(method, shortcut_model, plain["image"], plain["label"], seed=seed, **options_of(method))
print(f"{method} maps of the shortcut model, artefact-free versions of the same images:")
missing = region_mass(res.maps, regions).groupby("region", sort=False)[["mass", "area"]].mean()
with torch.no_grad():
    pred = shortcut_model(plain["image"].to(mx.model_device(shortcut_model))).argmax(1).cpu()
print(missing.round(3))
print(f"predicted '{classes[target]}' for {(pred == target).float().mean():.0%} of these {len(pred)} "
      f"'{classes[target]}' images once the artefact is gone")

# %% [markdown]
# The printed table gives this run's answer. With the artefact gone, the region where it was
# is plain skin (or background), and the share of relevance there can be compared with its
# share of the image; the prediction line shows whether the lesion alone still convinces the
# model. A model that relied on the artefact loses confidence or changes its answer here, while
# its map spreads over whatever remains. The clean model would not notice the difference.
#
# ```{solution-end}
# ```
#
# ```{exercise-start}
# :label: ch-ex-background
# ```
#
# Without signal, an MRI magnitude image is not black: Rician noise there has mean
# $\sigma\sqrt{\pi/2}$. Why does this matter for Integrated Gradients with a black baseline, and
# for the deletion metric that fills removed pixels with black?
#
# ```{exercise-end}
# ```
#
# ```{solution-start} ch-ex-background
# :class: dropdown
# ```
#
# Both methods compare the image with an all-black one, which no scanner produces: the real
# background has a floor of about $1.25\,\sigma$, and inside the head every tissue carries the
# same noise. Integrated Gradients attributes $f(x) - f(x')$ along the straight path from the
# black image, so pixels of the background, which differ from black only by noise, receive
# attribution in proportion to that noise; and the path passes through images darker and
# smoother than any scan, where the network's gradients are unconstrained. Deletion likewise
# scores the model on images with black holes, which are out of distribution (the perturbation
# chapter shows how much the filling matters). A baseline that keeps the noise floor (the
# image's own background level, or a blurred copy) asks a question closer to the data.
#
# ```{solution-end}
# ```
#
# ```{exercise-start}
# :label: ch-ex-crop
# ```
#
# A colleague proposes to cure the shortcut by cropping the bottom fifth of every image, where
# the ruler sits. What does this fix, what can it not guarantee, and how would you check the
# result with the tools of this chapter?
#
# ```{exercise-end}
# ```
#
# ```{solution-start} ch-ex-crop
# :class: dropdown
# ```
#
# It removes this artefact from training and test images alike, so the model can no longer use
# it. It cannot guarantee that no other shortcut remains (the next one is unknown by
# definition, as hospital-specific markers, scanners or text were in the studies cited on the
# previous page), and it also removes any lesion that reaches the bottom fifth. The check is the
# one of section 1: accuracy on test sets that differ only in a suspected factor, and the share
# of relevance on every region that should not matter, beside that region's share of the image.
# Retraining on data without the confound, as the clean model here, is the stronger cure.
#
# ```{solution-end}
# ```
#
# ## What to remember
#
# - High accuracy on a test set with the training set's biases proves nothing: test on data where
#   the suspected shortcut is absent or reversed, and measure relevance on it.
# - Corrupt the input the way the scanner would, and read map stability beside accuracy: a map
#   that moves while the prediction holds is not a reliable explanation.
# - A map on the lesion is not evidence of faithfulness; run the randomisation check first.
#
# ## Run it on real data
#
# The shortcut lesson needs phantoms (only they can move the artefact); the corruption and sanity
# studies run on any dataset. In Colab with a GPU (see
# [Running on real data and in Colab](../book/real_data.md)), fetch the datasets and set:
#
# ```python
# dataset = "phantom-skin"                    # phantoms only: the artefact is planted and moved
# profile = "paper"                           # 224 px, ImageNet weights
# n_eval = 1000
# n_explain = 32
# preset = "book"
# robust_dataset = "figshare-brain-tumor"     # real MRI: Rician noise and bias field are its own
# n_robust = 32
# n_robust_accuracy = 600
# sanity_dataset = "figshare-brain-tumor"     # tumour masks: the plausibility scores work
# n_sanity = 16
# ```
#
# A real MRI already carries Rician noise and a bias field, so the added corruption comes on top
# of the scanner's own; the strengths then read as "how much worse than this scan".

# %% [markdown]
# ```{bibliography}
# :filter: docname in docnames
# ```

# %% tags=["remove-input"]
timer.glue()
