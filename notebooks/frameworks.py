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
# # Frameworks in practice: one method, several libraries
#
# This notebook puts the survey's Table 11 {cite}`dagnaw2025survey` next to what is installed
# here, then computes the same explanation through different libraries on the book's trained
# models: Grad-CAM through pytorch-grad-cam {cite}`gildenblat2021pytorchgradcam`, captum
# {cite}`kokhlikyan2020captum` and torchcam {cite}`fernandez2020torchcam`, and Integrated
# Gradients through captum and zennit {cite}`anders2021software`. It shows what each library
# hands back with its defaults, what has to be aligned before two maps can be compared, how far
# they agree once aligned, and what each costs. Every number quoted below comes from this run.

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
dataset = "phantom-brain-mri"     # the dataset of the integration-rule study and the exercise
profile = "cpu"
seed = 0
arch = "resnet14"
n_images = 3                      # lesion images per dataset (Grad-CAM)
n_ig_images = 2                   # of which explained with Integrated Gradients
repeats = 5                       # timed Grad-CAM calls per library (the median is reported)
ig_repeats = 3                    # timed Integrated-Gradients calls per library
ig_steps = 16                     # points on the integration path (the registry's quick preset)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

import medxai_lite as mx
from medxai_lite.explain import explain
from medxai_lite.explain.registry import to_unit
from medxai_lite.frameworks import (CAPTUM_RULES, agreement, compare_libraries, frameworks_table, package_licence,
                                    package_version, rule_weights, summarise_agreement, table11_methods)
from medxai_lite.metrics import pointing_game, random_maps, relevance_mass_accuracy
from medxai_lite.selection import lesion_images
from medxai_lite.viz import method_grid, plot_timing
from medxai_lite.book import chapter_timer, glue   # glue prints where no book is built (Colab)

timer = chapter_timer()   # this chapter's wall time, shown in its opening
mx.set_seed(seed)
print("Installed:", ", ".join(f"{p} {package_version(p)}" for p in ("grad-cam", "captum", "torchcam", "zennit")))

# %% [markdown]
# ## Table 11 as data
#
# The survey's table of open-source frameworks ships with `medxai_lite` as two small CSV files
# (one row per framework, one row per framework and method). `frameworks_table()` reads them and
# adds what only this installation knows: whether the package is installed, its version, and
# which methods of the book's registry call it. The transcription choices (the survey text is
# an OCR of the PDF) are listed in the docstring of `medxai_lite.frameworks.table`.

# %%
table = frameworks_table()
links = [f'<a href="{r}">{f}</a>' for f, r in zip(table["framework"], table["repository"])]
table11 = pd.DataFrame({"Framework": links, "Backend": table["backend"],
                        "Supported methods [survey reference]": table["methods"]})
table11_html = table11.style.hide(axis="index").set_caption(
    "Table 11 of the survey: open-source XAI frameworks (names link to the repositories)")
glue("fw_table11", table11_html, display=False)
glue("fw_n_frameworks", len(table), display=False)
glue("fw_n_listed", int(table["n_methods"].sum()), display=False)
table11_html

# %%
long = table11_methods()
here = pd.DataFrame({
    "Framework": table["framework"],
    "Installed here": [v if pd.notna(v) else "no" for v in table["version"]],
    "Licence": [v if pd.notna(v) else "" for v in table["licence"]],
    "Registry methods that call it": [m if m else "none" for m in table["registry_methods"]],
    "Listed methods run through it": [f"{k} of {n}" for k, n in zip(table["listed_via_framework"], table["n_methods"])],
})
no_registry = sorted(set(long.loc[long["registry"] == "", "method"]))
glue("fw_not_in_registry", ", ".join(no_registry), display=False)
glue("fw_n_not_in_registry", len(no_registry), display=False)
for key, framework in (("pgc", "pytorch-grad-cam"), ("captum", "Captum"), ("torchcam", "TorchCAM")):
    glue(f"fw_nreg_{key}", int(table.set_index("framework").loc[framework, "n_registry"]), display=False)
glue("fw_n_installed", int(table["installed"].sum()), display=False)
for key, package in (("pgc", "grad-cam"), ("captum", "captum"), ("torchcam", "torchcam"), ("torchray", "torchray"),
                     ("zennit", "zennit")):
    glue(f"fw_licence_{key}", str(package_licence(package)), display=False)
    glue(f"fw_version_{key}", str(package_version(package)), display=False)
print("Methods of Table 11 the book's registry does not have:", ", ".join(no_registry))
here.style.hide(axis="index").set_caption("Table 11 on this machine and in the book's registry")

# %% [markdown]
# "Listed methods run through it" counts the methods the survey lists for a framework that the
# book's registry computes *with that framework*. A low count does not mean the book lacks the
# method: the registry calls one library per method, so torchcam's Grad-CAM, for example, is
# listed in Table 11 but the registry's Grad-CAM is pytorch-grad-cam's. The comparison below
# runs all three.
#
# ## The models and the images
#
# The book's default network for each phantom set (a ResNet14 at the `cpu` profile, read from
# the model cache) and its first `n_images` test images that carry a lesion. Each image is
# explained for its true class.

# %%
runs = {}
for name in datasets:
    model = mx.get_trained_model(name, arch, profile, seed=seed, progress=False)
    test, batch = lesion_images(name, model, n_images, seed=seed)
    runs[name] = dict(model=model, test=test, x=batch["image"], y=batch["label"],
                      masks=batch["mask"].numpy() if "mask" in batch else None)
    print(f"{name}: {arch} at {model.report.settings['image_size']} px, test accuracy "
          f"{model.report.test['accuracy']:.3f}, CAM layer grid {mx.cam_grid(model, arch, batch['image'].shape[-1])}")

# %% [markdown]
# ## Grad-CAM through three libraries
#
# `compare_libraries("gradcam", ...)` calls each library on the same model, layer (the zoo's
# CAM layer, `layer3[-1]` of the ResNet14), images and classes, and brings every output to one
# post-processing: ReLU on the layer's grid, bilinear upsampling to the input
# (`align_corners=False`, the resize all three use or document), min-max scaling per map. The
# libraries take turns, `repeats` times, and the median time of each is kept.
#
# What the libraries return with their defaults, measured on the first dataset:

# %%
# one untimed warm-up call per library (imports, first-call allocations) on the first dataset only
gradcam = {name: compare_libraries("gradcam", run["model"], run["x"], run["y"], repeats=repeats, warmup=i == 0)
           for i, (name, run) in enumerate(runs.items())}
defaults = gradcam[datasets[0]].defaults()
glue("fw_captum_shape", defaults.loc["captum", "shape returned"], display=False)
glue("fw_torchcam_shape", defaults.loc["torchcam", "shape returned"], display=False)
glue("fw_pgc_shape", defaults.loc["pytorch-grad-cam", "shape returned"], display=False)
negative = sum(int((c.raw["captum"] < 0).any(axis=(1, 2)).sum()) for c in gradcam.values())
glue("fw_n_negative", negative, display=False)
glue("fw_n_maps", sum(len(c.targets) for c in gradcam.values()), display=False)
defaults[["version", "shape returned", "range returned", "aligned here"]].style.set_caption(
    f"{datasets[0]}: what each library returns for Grad-CAM with its defaults")

# %% [markdown]
# pytorch-grad-cam returns maps at the input's size, already rectified and scaled to [0, 1].
# captum returns the weighted sum on the layer's grid ({glue:text}`fw_captum_shape`: images, one
# channel, the grid) with its sign; {glue:text}`fw_n_negative:d` of the
# {glue:text}`fw_n_maps:d` grids of this run have negative cells. torchcam returns the grid
# ({glue:text}`fw_torchcam_shape`) rectified and scaled, but not upsampled. Used as they come,
# the three cannot even be compared pixel by pixel. How much the alignment matters shows when
# captum's map is upsampled the way captum's own helper does by default
# (`LayerAttribution.interpolate`, nearest neighbour), with and without the ReLU:

# %%
size = tuple(runs[datasets[0]]["x"].shape[-2:])


def nearest(grid, relu: bool):
    """captum's grid [N, h, w] upsampled as LayerAttribution.interpolate does by default, min-max scaled."""
    grid = torch.as_tensor(grid)[:, None]
    up = F.interpolate(grid.clamp_min(0) if relu else grid, size=size, mode="nearest")[:, 0]
    return to_unit(up, "positive" if relu else "all", "minmax").numpy()


naive = pd.concat([agreement({"pytorch-grad-cam": c.maps["pytorch-grad-cam"],
                              "captum: signed, nearest": nearest(c.raw["captum"], False),
                              "captum: ReLU, nearest": nearest(c.raw["captum"], True),
                              "captum: aligned": c.maps["captum"]}) for c in gradcam.values()], ignore_index=True)
naive = naive[naive.library_a == "pytorch-grad-cam"].groupby("library_b", sort=False)[["spearman", "max abs diff"]].agg(
    {"spearman": "mean", "max abs diff": "max"})
glue("fw_naive_rho", float(naive.loc["captum: ReLU, nearest", "spearman"]), display=False)
glue("fw_naive_diff", float(naive.loc["captum: ReLU, nearest", "max abs diff"]), display=False)
naive.columns = ["mean Spearman", "max abs diff"]
naive.style.format("{:.3g}").set_caption("captum's map against pytorch-grad-cam's, all datasets and images")

# %% [markdown]
# Upsampled by nearest neighbour, captum's map has a mean rank correlation of
# {glue:text}`fw_naive_rho:.2f` with pytorch-grad-cam's and differs from it by up to
# {glue:text}`fw_naive_diff:.2f` on the [0, 1] scale, although both libraries computed the same
# numbers on the grid; leaving the sign in changes the map only where the grid has negative
# cells. After alignment, on every dataset:

# %%
cam_agree = pd.concat([agreement(c).assign(dataset=name) for name, c in gradcam.items()], ignore_index=True)
cam_summary = summarise_agreement(cam_agree)
glue("fw_cam_min_rho", float(cam_summary["min Spearman"].min()), display=False)
glue("fw_cam_max_diff", float(cam_summary["max abs diff"].max()), display=False)
glue("fw_cam_n_maps", int(cam_summary["maps"].iloc[0]), display=False)
same = cam_summary["min Spearman"].min() > 0.999 and cam_summary["max abs diff"].max() < 1e-3
glue("fw_cam_verdict", "the three libraries compute the same Grad-CAM, and what separated their outputs above was "
     "post-processing only" if same else "the libraries still differ after alignment, by more than floating-point "
     "error, so something besides post-processing separates them", display=False)
cam_summary.style.format({"mean Spearman": "{:.6f}", "min Spearman": "{:.6f}", "max abs diff": "{:.1e}"}).set_caption(
    f"Grad-CAM: agreement between libraries over {len(runs)} datasets x {n_images} images")

# %% [markdown]
# Over {glue:text}`fw_cam_n_maps` maps per pair, the smallest rank correlation between two
# libraries is {glue:text}`fw_cam_min_rho:.6f` and the largest pixel difference
# {glue:text}`fw_cam_max_diff:.1e`: {glue:text}`fw_cam_verdict`. The maps, one image per
# dataset, with the true lesion outlined in cyan:

# %%
images = torch.stack([runs[name]["x"][0] for name in runs])
masks = (np.stack([runs[name]["masks"][0] for name in runs])
         if all(runs[name]["masks"] is not None for name in runs) else None)
row_titles = [f"{n.replace('phantom-', '')}, {runs[n]['test'].classes[int(runs[n]['y'][0])]}" for n in runs]
panels = {lib: np.stack([c.maps[lib][0] for c in gradcam.values()]) for lib in gradcam[datasets[0]].libraries}
panels["captum, nearest"] = np.stack([nearest(c.raw["captum"][:1], True)[0] for c in gradcam.values()])
method_grid(images, panels, masks=masks, row_titles=row_titles,
            title=f"Grad-CAM of a {arch}: three libraries aligned, and captum upsampled by its helper's default")
plt.show()

# %% [markdown]
# ## Where the cells sit: what `align` changes
#
# The libraries' bilinear resize puts each grid cell at the middle of its block of pixels. On a
# ResNet the cell's receptive field is centred half a cell further up and left (the CAM chapter
# derives it), and `medxai_lite` upsamples to that centre by default (`align=True`).
# `compare_libraries(..., align=True)` keeps the libraries' operations (ReLU on the grid, then
# bilinear upsampling) and changes only where the cells sit. The book's own `explain("gradcam")`
# also interpolates bicubically between the cell centres, which lets the peak fall between two
# cells (the CAM chapter says why), so it differs from both in the interpolation as well. All
# three variants, scored against the true lesions beside a random map on the same grid, upsampled
# as the book's maps are (the reference every map has to beat):

# %%
rows, variant_maps = [], {}
for name, run in runs.items():
    aligned = compare_libraries("gradcam", run["model"], run["x"], run["y"], libraries=["captum"], align=True,
                                repeats=1, warmup=False)
    maps = {"libraries (bilinear)": gradcam[name].maps["captum"],
            "aligned cells, bilinear": aligned.maps["captum"],
            "explain() default": explain("gradcam", run["model"], run["x"], run["y"]).maps}
    # the reference every map must beat: noise on the same CAM grid, upsampled the same way
    scored = {**maps, "random map (CAM grid)": random_maps(run["x"], grid="cam", model=run["model"], arch=arch,
                                                           seed=seed)}
    for variant, m in scored.items():
        row = {"dataset": name, "variant": variant,
               "Spearman vs libraries": float(np.nanmean(agreement({"a": maps["libraries (bilinear)"], "b": m})["spearman"]))}
        if run["masks"] is not None:
            row["pointing game"] = float(np.nanmean(pointing_game(None, None, None, m, run["masks"])))
            row["RMA"] = float(np.nanmean(relevance_mass_accuracy(None, None, None, m, run["masks"])))
        rows.append(row)
    for k, m in maps.items():
        variant_maps.setdefault(k, []).append(m[0])       # the first image of each dataset, for the figure
align_table = pd.DataFrame(rows).groupby("variant", sort=False).mean(numeric_only=True)
glue("fw_align_rho", float(align_table.loc["aligned cells, bilinear", "Spearman vs libraries"]), display=False)
glue("fw_order_rho", float(align_table.loc["explain() default", "Spearman vs libraries"]), display=False)
moved = align_table.loc["aligned cells, bilinear", "Spearman vs libraries"] < 0.99
glue("fw_align_verdict", "the alignment is not a detail of floating-point arithmetic but a different map" if moved
     else "on these models the two placements give nearly the same ranking of pixels", display=False)
if "pointing game" in align_table:
    pg_lib, pg_al = (float(align_table.loc[v, "pointing game"]) for v in ("libraries (bilinear)", "aligned cells, bilinear"))
    glue("fw_pg_compare", f"a pointing game of {pg_al:.2f} instead of {pg_lib:.2f}" if round(pg_al, 2) != round(pg_lib, 2)
         else f"the same pointing game ({pg_al:.2f})", display=False)
if "pointing game" in align_table:
    glue("fw_pg_lib", float(align_table.loc["libraries (bilinear)", "pointing game"]), display=False)
    glue("fw_pg_aligned", float(align_table.loc["aligned cells, bilinear", "pointing game"]), display=False)
    glue("fw_pg_explain", float(align_table.loc["explain() default", "pointing game"]), display=False)
method_grid(images, {k: np.stack(v) for k, v in variant_maps.items()}, masks=masks, row_titles=row_titles,
            title="Grad-CAM: where the cells sit, and how the map is interpolated between them")
plt.show()
align_table.style.format("{:.2f}").set_caption(f"Grad-CAM, three upsamplings, and a random map on the same grid; "
                                               f"mean over {len(runs)} datasets x {n_images} lesion images")

# %% [markdown]
# Moving the cells to their receptive-field centres lowers the rank correlation with the
# libraries' map to {glue:text}`fw_align_rho:.2f` (and {glue:text}`fw_order_rho:.2f` for the
# book's default, which also interpolates bicubically): {glue:text}`fw_align_verdict`. In this run the pointing game is
# {glue:text}`fw_pg_lib:.2f` with the libraries' placement, {glue:text}`fw_pg_aligned:.2f` with
# aligned cells and {glue:text}`fw_pg_explain:.2f` with the book's default. When two papers report
# Grad-CAM scores, the library alone does not say which of these maps they scored.
#
# ## Integrated Gradients through captum and zennit
#
# Both libraries integrate the gradient of the target logit along the straight path from a
# baseline (here zeros in the normalised input space, the dataset's mean colour) to the image.
# zennit sums the gradients at $\alpha = 1/M, 2/M, \dots, 1$ with weight $1/M$ each (a right
# Riemann sum); captum's default is Gauss-Legendre quadrature, and `method="riemann_right"`
# gives zennit's sum. With the same rule and `ig_steps` points the two should return the same
# attributions; the map is the book's IG map (channel sum, absolute value, divided by the
# maximum). Completeness says the attributions of an image add up to the difference of the
# target logit between the image and the baseline.

# %%
# no warm-up: both libraries are imported, and the networks have run, by now
ig = {name: compare_libraries("integrated_gradients", run["model"], run["x"][:n_ig_images], run["y"][:n_ig_images],
                              n_steps=ig_steps, captum_method="riemann_right", baseline="zero", repeats=ig_repeats,
                              warmup=False)
      for name, run in runs.items()}
ig_agree = pd.concat([agreement(c).assign(dataset=name) for name, c in ig.items()], ignore_index=True)
ig_summary = summarise_agreement(ig_agree)
glue("fw_ig_min_rho", float(ig_summary["min Spearman"].min()), display=False)
glue("fw_ig_max_diff", float(ig_summary["max abs diff"].max()), display=False)
glue("fw_ig_steps", ig_steps, display=False)
same_ig = ig_summary["min Spearman"].min() > 0.999 and ig_summary["max abs diff"].max() < 1e-3
glue("fw_ig_verdict", "agree" if same_ig else "still differ", display=False)
ig_summary.style.format({"mean Spearman": "{:.6f}", "min Spearman": "{:.6f}", "max abs diff": "{:.1e}"}).set_caption(
    f"Integrated Gradients ({ig_steps} points, right Riemann sum): captum against zennit")

# %%
complete = pd.concat([c.completeness.assign(dataset=name) for name, c in ig.items()], ignore_index=True)
complete_summary = complete.groupby(["dataset", "library"], sort=False)[["score difference", "error", "relative error"]].agg(
    lambda v: float(np.mean(np.abs(v))))
complete_summary.columns = ["mean |score difference|", "mean |error|", "mean relative error"]
for lib in ig[datasets[0]].libraries:
    glue(f"fw_ig_err_{lib}", float(complete.loc[complete.library == lib, "relative error"].mean()), display=False)
per_dataset = complete_summary["mean relative error"].groupby(level="dataset", sort=False).mean()
glue("fw_ig_err_low", float(per_dataset.min()), display=False)
glue("fw_ig_err_low_ds", str(per_dataset.idxmin()), display=False)
glue("fw_ig_err_high", float(per_dataset.max()), display=False)
glue("fw_ig_err_high_ds", str(per_dataset.idxmax()), display=False)
complete_summary.style.format("{:.3g}").set_caption(f"Completeness of Integrated Gradients, {ig_steps} points")

# %%
panels = {f"IG, {lib}": np.stack([c.maps[lib][0] for c in ig.values()]) for lib in ig[datasets[0]].libraries}
method_grid(images, panels, masks=masks, clip_percentile=99, row_titles=row_titles,
            title=f"Integrated Gradients ({ig_steps} points, zero baseline) through two libraries; top 1 % saturated")
plt.show()

# %% [markdown]
# With the same rule the two libraries {glue:text}`fw_ig_verdict`: smallest rank correlation
# {glue:text}`fw_ig_min_rho:.6f` and a largest map difference of {glue:text}`fw_ig_max_diff:.1e`,
# and their attributions miss completeness by the same amount: on average
# {glue:text}`fw_ig_err_captum:.2%` (captum) and {glue:text}`fw_ig_err_zennit:.2%` (zennit) of the
# score difference at {glue:text}`fw_ig_steps:d` points. That average mixes very different
# datasets, from {glue:text}`fw_ig_err_low:.2%` on {glue:text}`fw_ig_err_low_ds` to
# {glue:text}`fw_ig_err_high:.2%` on {glue:text}`fw_ig_err_high_ds`: the same sum computed by two
# libraries misses by the same amount, so the error belongs to the integration (its rule, its
# number of points, and how sharply the score changes along that dataset's path), not to the
# library. The next cell compares the rules on the `dataset` images; on a dataset with a large
# error, more points are the first remedy.
#
# ## The integration rule
#
# captum's five rules on the `dataset` images at the same number of points, with zennit's for
# reference. The weights column is the sum of the rule's weights $s_m$: on a network that is
# linear along the path, the attributions add up to that sum times the score difference.

# %%
run = runs[dataset]
x_ig, y_ig = run["x"][:n_ig_images], run["y"][:n_ig_images]
rule_rows = []
for rule in CAPTUM_RULES:
    if rule == "riemann_right":   # computed above
        r = ig[dataset]
    else:
        r = compare_libraries("integrated_gradients", run["model"], x_ig, y_ig, n_steps=ig_steps, captum_method=rule,
                              libraries=["captum"], repeats=1, warmup=False)
    c = r.completeness
    rule_rows.append({"rule": f"captum {rule}", "sum of weights": rule_weights(rule, ig_steps)[1].sum(),
                      "mean relative error": c.loc[c.library == "captum", "relative error"].mean(),
                      "Spearman vs zennit": float(np.nanmean(agreement({"a": r.maps["captum"],
                                                                        "b": ig[dataset].maps["zennit"]})["spearman"]))})
zen = ig[dataset].completeness
rule_rows.append({"rule": "zennit (right Riemann)", "sum of weights": 1.0,
                  "mean relative error": zen.loc[zen.library == "zennit", "relative error"].mean(),
                  "Spearman vs zennit": 1.0})
rules = pd.DataFrame(rule_rows).set_index("rule")
glue("fw_trap_sum", float(rules.loc["captum riemann_trapezoid", "sum of weights"]), display=False)
glue("fw_trap_err", float(rules.loc["captum riemann_trapezoid", "mean relative error"]), display=False)
glue("fw_gl_err", float(rules.loc["captum gausslegendre", "mean relative error"]), display=False)
glue("fw_right_err", float(rules.loc["captum riemann_right", "mean relative error"]), display=False)
glue("fw_rule_dataset", dataset, display=False)
glue("fw_rule_err_min", float(rules["mean relative error"].min()), display=False)
glue("fw_rule_err_max", float(rules["mean relative error"].max()), display=False)
best = rules["mean relative error"].idxmin()
glue("fw_best_rule", best, display=False)
rules.style.format("{:.3g}").set_caption(f"{dataset}: integration rules at {ig_steps} points")

# %% [markdown]
# captum's trapezoid rule places its {glue:text}`fw_ig_steps:d` points at $0, 1/(M-1), \dots, 1$
# but gives them weights $1/M$ (halved at both ends), which add up to
# {glue:text}`fw_trap_sum:.4f` instead of 1, so its attributions fall short of the score
# difference by about $1/M$ even where the path is linear (the test-suite checks it on a linear
# model, where every other rule is exact). In this run its completeness error is
# {glue:text}`fw_trap_err:.1%`, against {glue:text}`fw_gl_err:.1%` for Gauss-Legendre and
# {glue:text}`fw_right_err:.1%` for the right Riemann sum; the smallest error belongs to
# {glue:text}`fw_best_rule`. Whatever the library, report the rule and the number of points with
# an IG map, and check completeness before reading it.
#
# ## What each library costs
#
# Seconds per image, the median of the timed calls (library call plus the common
# post-processing), measured on this machine's CPU with the libraries taking turns.

# %%
timing = pd.concat(
    [c.timing()["seconds per image"].rename(name).to_frame().assign(method="Grad-CAM") for name, c in gradcam.items()]
    + [c.timing()["seconds per image"].rename(name).to_frame().assign(method="Integrated Gradients")
       for name, c in ig.items()], axis=0)
timing = timing.reset_index().groupby(["method", "library"], sort=False).first()
timing.columns.name = "dataset"
mean_time = timing.mean(axis=1)
cam_time, ig_time = mean_time.loc["Grad-CAM"], mean_time.loc["Integrated Gradients"]
glue("fw_cam_fastest", str(cam_time.idxmin()), display=False)
glue("fw_cam_slowest", str(cam_time.idxmax()), display=False)
glue("fw_cam_ratio", float(cam_time.max() / cam_time.min()), display=False)
glue("fw_ig_fastest", str(ig_time.idxmin()), display=False)
glue("fw_ig_ratio", float(ig_time.max() / ig_time.min()), display=False)
glue("fw_ig_over_cam", float(ig_time.mean() / cam_time.mean()), display=False)
plot_timing(timing.set_axis([f"{m}: {lib}" for m, lib in timing.index]),
            title=f"Seconds per image on {mx.device().type.upper()}, {arch}, median of the timed calls")
plt.show()
(timing * 1000).style.format("{:.1f}").set_caption("Milliseconds per image")

# %% [markdown]
# For Grad-CAM the fastest library here is {glue:text}`fw_cam_fastest` and the slowest
# {glue:text}`fw_cam_slowest`, {glue:text}`fw_cam_ratio:.1f` times slower per image. All
# three make one forward and one backward pass, so the differences come from the work around
# that pass (pytorch-grad-cam, for one, moves activations and gradients to NumPy and resizes
# with OpenCV). For Integrated Gradients {glue:text}`fw_ig_fastest` is faster by
# a factor of {glue:text}`fw_ig_ratio:.1f`; captum sends all path points of all images through
# the network in batches of `internal_batch_size`, zennit one batch per point. An IG map costs
# {glue:text}`fw_ig_over_cam:.0f` times a Grad-CAM map here.

# %% [markdown]
# ## Exercises
#
# ```{exercise-start}
# :label: fw-ex-steps
# ```
#
# Use `compare_libraries("integrated_gradients", ..., libraries=["captum"], captum_method=...)`
# on the first `dataset` image to measure the completeness error of the Gauss-Legendre and
# right Riemann rules at 4, 8 and 16 points. Which rule needs fewer points
# for the same error on this network? Does the answer change the maps, as measured by the rank
# correlation between the two rules' maps at 16 points?
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{solution-start} fw-ex-steps
# :class: dropdown
# ```

# %%
run = runs[dataset]
x1, y1 = run["x"][:1], run["y"][:1]
sweep, maps16 = [], {}
for rule in ("gausslegendre", "riemann_right"):
    for steps in (4, 8, 16):
        r = compare_libraries("integrated_gradients", run["model"], x1, y1, n_steps=steps, captum_method=rule,
                              libraries=["captum"], repeats=1, warmup=False)
        sweep.append({"rule": rule, "points": steps, "relative error": r.completeness["relative error"].mean()})
        if steps == 16:
            maps16[rule] = r.maps["captum"]
sweep = pd.DataFrame(sweep).pivot(index="points", columns="rule", values="relative error")
rho16 = float(agreement(maps16)["spearman"].iloc[0])
better = (sweep["gausslegendre"] < sweep["riemann_right"]).sum()
print(f"Gauss-Legendre has the smaller error at {better} of {len(sweep)} budgets; the two rules' maps at 16 points "
      f"have a rank correlation of {rho16:.3f}.")
sweep.style.format("{:.2%}").set_caption(f"{dataset}: completeness error of captum's IG, one image")

# %% [markdown]
# The printed line and the table give this run's answer. Gauss-Legendre places its points where
# a smooth integrand is integrated most accurately, so on a smooth path it needs fewer points;
# a ReLU network's path integrand is only piecewise smooth, and the advantage can shrink or
# vanish. The rank correlation between the two rules' maps shows how much the rule changes what a
# reader would see, which can be little even when the completeness errors differ.
#
# ```{solution-end}
# ```
#
# ```{exercise-start}
# :label: fw-ex-invariance
# ```
#
# Without running anything: which of these steps can change the Spearman rank correlation
# between two maps of the same image, and which can change only their largest absolute
# difference? (a) min-max scaling of each map; (b) ReLU on the grid; (c) nearest instead of
# bilinear upsampling; (d) dividing an IG map by its maximum; (e) taking the absolute value of
# an IG map. What does the answer say about reporting only one of the two agreement measures?
#
# ```{exercise-end}
# ```
#
# ```{solution-start} fw-ex-invariance
# :class: dropdown
# ```
#
# The rank correlation depends only on the order of the pixels. (a) and (d) are increasing
# affine maps of each image, so they keep the order and change only the values: they can move
# the largest difference but never the rank correlation. (b) sets every negative cell to zero,
# which turns distinct values into ties, and (e) puts strongly negative pixels above weakly
# positive ones; both reorder pixels. (c) replaces smooth ramps between cell centres by steps,
# which also changes the order inside each block. A rank correlation of 1 therefore does not
# prove that two libraries draw the same picture (a different scaling leaves it at 1), and a
# small largest difference does not prove the same ranking when the maps are nearly flat;
# reporting both, as the tables above do, covers both cases.
#
# ```{solution-end}
# ```
#
# ## What to remember
#
# - Libraries that implement the same method compute the same numbers; their outputs differ in
#   post-processing (sign, upsampling, scaling), and those differences are not small.
# - Before comparing maps from two sources, align rectification, upsampling and scaling, and for
#   path methods the baseline, the rule and the number of points; then check the agreement.
# - Choose a library for its coverage, its defaults and its cost, and record its version and
#   options with every map.
#
# ## Run it on real data
#
# In Colab with a GPU (see [Running on real data and in Colab](../book/real_data.md)), fetch the
# datasets and set the parameters cell to:
#
# ```python
# datasets = ["figshare-brain-tumor", "ham10000", "chest-xray-pneumonia"]
# dataset = "figshare-brain-tumor"
# profile = "paper"                 # 224 px, ImageNet weights
# n_images = 16
# repeats = 10
# n_ig_images = 8
# ig_repeats = 3
# ig_steps = 64
# ```
#
# `chest-xray-pneumonia` has no masks, so its maps are compared and timed but not scored
# against lesions. On a GPU the timings will differ from this page's, and not uniformly:
# pytorch-grad-cam copies activations and gradients to the CPU for its NumPy and OpenCV steps,
# while the other libraries stay on the device.

# %% [markdown]
# ```{bibliography}
# :filter: docname in docnames
# ```

# %% tags=["remove-input"]
timer.glue()
