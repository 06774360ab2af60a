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
# # The modality atlas in practice
#
# This notebook opens the survey's Tables 2-10 {cite}`dagnaw2025survey`, shipped as data in
# `medxai_lite.atlas`, and asks them the questions of the [previous page](../book/atlas.md):
# how many studies each table holds, which method families each modality uses (an interactive
# heatmap), which methods to look at for a modality and a task (a method finder), and what the
# interpretable vision-language models of Table 10 are. It trains no model and runs in seconds.
# Every number quoted in the text comes from this run. Numbers in square brackets are reference
# numbers in the survey's bibliography.

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
# Parameters (papermill can override them). The atlas is data, so there is no "real data" switch.
level = "sub_modality"       # heatmap rows: "sub_modality" (CXR, Mammography ...) or "modality" (one per table)
finder_examples = [("CXR", ""), ("Dermatology", ""), ("Histopathology", ""), ("CT", "covid")]   # (modality, task)
top_k = 5                    # methods the static finder prints per example

# %%
import sys

import ipywidgets as widgets
import pandas as pd
import plotly.io as pio
from IPython.display import display
from itables import init_notebook_mode

import medxai_lite as mx
from medxai_lite.atlas import (FAMILY_CHAPTERS, FAMILY_ORDER, TABLE_MODALITY, TABLE_ROWS, TABLE_TITLES, atlas,
                               atlas_long, atlas_table, family_matrix, find_methods, modalities,
                               plot_family_heatmap)
from medxai_lite.book import chapter_timer, glue, live_widgets   # glue prints where no book is built (Colab)
from medxai_lite.viz.tables import interactive_table

timer = chapter_timer()   # this chapter's wall time, shown in its opening

if "google.colab" not in sys.modules:   # Colab picks its own renderer; the book needs HTML output
    pio.renderers.default = "plotly_mimetype+notebook_connected"
init_notebook_mode(all_interactive=False, connected=False)   # sortable tables that work offline

rows = atlas()            # Tables 2-9, one row per study
long = atlas_long()       # one row per (study, method)
vlm = atlas_table(10)     # Table 10
print(f"medxai_lite {mx.__version__}. Tables 2-9: {len(rows)} rows; Table 10: {len(vlm)} rows; "
      f"{len(long)} (study, method) pairs over {long['method'].nunique()} distinct methods")

# %% [markdown]
# ## The tables in numbers
#
# One line per table: its caption, its rows (checked against the survey's own count when the data
# load), how many of them name a method the transcription could read, and how many distinct
# methods it names.

# %%
summary = pd.DataFrame({
    "table": list(TABLE_ROWS),
    "caption": [TABLE_TITLES[n] for n in TABLE_ROWS],
    "rows": [TABLE_ROWS[n] for n in TABLE_ROWS],
})
readable = long.groupby("table")["reference"].nunique()
distinct = long.groupby("table")["method"].nunique()
summary["rows with a method"] = summary["table"].map(readable).astype("Int64")
summary["distinct methods"] = summary["table"].map(distinct).astype("Int64")
display(summary.set_index("table"))

repeated = rows.groupby("reference")["table"].nunique()
repeated = sorted(int(r) for r in repeated[repeated > 1].index)
n_readable = int(long.groupby(["table", "reference"]).ngroups)
glue("atlas_rows", len(rows), display=False)
glue("atlas_vlm_rows", len(vlm), display=False)
glue("atlas_refs", int(rows["reference"].nunique()), display=False)
glue("atlas_pairs", len(long), display=False)
glue("atlas_methods", int(long["method"].nunique()), display=False)
glue("atlas_missing", int((rows["methods"] == "").sum()), display=False)
glue("atlas_readable", n_readable, display=False)
glue("atlas_repeated", ", ".join(f"[{r}]" for r in repeated), display=False)
glue("atlas_n_repeated", len(repeated), display=False)
print("studies listed in more than one table:", ", ".join(f"[{r}]" for r in repeated))

# %% [markdown]
# ## Which families, where
#
# A study counts once in a family however many of the family's methods it names (Grad-CAM plus
# Grad-CAM++ is one CAM-based study). First the totals over Tables 2-9, then the heatmap per
# imaging modality. Hover over a cell to see the survey references behind it.

# %%
studies_per_family = (long.drop_duplicates(["table", "reference", "family"])
                      .groupby("family").size().reindex(list(FAMILY_ORDER), fill_value=0))
share = (studies_per_family / n_readable).round(3)
display(pd.DataFrame({"studies": studies_per_family, "share of studies": share}))
gradcam = long[long["method"] == "Grad-CAM"].drop_duplicates(["table", "reference"])
glue("atlas_cam_studies", int(studies_per_family["CAM-based"]), display=False)
glue("atlas_cam_share", 100 * float(share["CAM-based"]), display=False)
glue("atlas_gradcam_studies", len(gradcam), display=False)
glue("atlas_gradcam_share", 100 * len(gradcam) / n_readable, display=False)
glue("atlas_pert_studies", int(studies_per_family["Perturbation-based"]), display=False)
rare = [f for f in FAMILY_ORDER if studies_per_family[f] <= 5]
glue("atlas_rare_families", ", ".join(rare) or "none", display=False)
glue("atlas_rare_max", int(studies_per_family[rare].max()) if rare else 0, display=False)
print("families in at most five studies:", ", ".join(rare) or "none")

# %%
fig = plot_family_heatmap(level)
fig.show()

# %% [markdown]
# The same counts per table (one row per modality group) are what the previous page quotes for
# each modality. The cell below also records, for every group, which family leads.

# %%
groups = family_matrix("modality")
# the families without "-based", so that the eight columns fit the page
display(groups.rename(columns=lambda c: str(c).replace("-based", "")))
slug = {"CAM-based": "cam", "Gradient-based": "gradient", "Attention-based": "attention",
        "Perturbation-based": "pert", "Example-based": "example", "Concept-based": "concept",
        "Text-based": "text", "Latent-based": "latent"}
group_key = {m: "".join(ch for ch in m.lower() if ch.isalnum()) for m in TABLE_MODALITY.values()}
for group, key in group_key.items():
    glue(f"atlas_n_{key}", int((rows["modality"] == group).sum()), display=False)
    for family, fkey in slug.items():
        glue(f"fm_{key}_{fkey}", int(groups.loc[group, family]), display=False)
leader = groups.idxmax(axis=1)
cam_leads = [g for g in groups.index if leader[g] == "CAM-based"]
glue("atlas_cam_leads", len(cam_leads), display=False)
glue("atlas_n_groups", len(groups), display=False)
glue("atlas_not_cam_led", ", ".join(g for g in groups.index if g not in cam_leads) or "none", display=False)
print("CAM-based leads in", len(cam_leads), "of", len(groups), "groups;",
      "elsewhere:", ", ".join(f"{g} ({leader[g]})" for g in groups.index if g not in cam_leads) or "none")

# a few sub-modality and task counts the previous page quotes
sub = family_matrix("sub_modality")
cxr = rows[rows["sub_modality"] == "CXR"]
glue("atlas_cxr_n", len(cxr), display=False)
glue("atlas_cxr_gradcam", int(find_methods("CXR").set_index("method").loc["Grad-CAM", "studies"]), display=False)
glue("atlas_cxr_covid", int(cxr["task"].str.contains("covid", case=False).sum()), display=False)
glue("atlas_mri_tumour", int(atlas_table(4)["task"].str.contains("tumor", case=False).sum()), display=False)
glue("atlas_derm_n", int((rows["sub_modality"] == "Dermatology").sum()), display=False)
glue("atlas_histo_n", int((rows["sub_modality"] == "Histopathology").sum()), display=False)
glue("atlas_spect_n", int((rows["sub_modality"] == "SPECT").sum()), display=False)
glue("atlas_endo_n", int((rows["sub_modality"] == "Endoscopy").sum()), display=False)
glue("atlas_endo_cam", int(sub.loc["Endoscopy", "CAM-based"]), display=False)
captions = long[long["method"] == "Image Captioning"].drop_duplicates(["table", "reference"])
glue("atlas_captioning", len(captions), display=False)
glue("atlas_captioning_groups", ", ".join(dict.fromkeys(captions["modality"])), display=False)
print("image captioning studies:", len(captions), "in", ", ".join(dict.fromkeys(captions["modality"])))

# %% [markdown]
# ## A method finder
#
# `find_methods(modality, task)` ranks the methods the tables record for a modality (a group such
# as `"MRI"`, or an imaging-modality cell such as `"CXR"`), optionally only for tasks containing a
# keyword, with the survey references, the book chapter of the method's family and the
# `medxai_lite.explain` registry key that runs it here (`None` where the book has none yet). In
# Jupyter or Colab the widget below asks it interactively; the rendered book shows its answer for
# a few examples as printed tables.

# %%
pd.set_option("display.max_colwidth", 60)
for modality, task in finder_examples:
    answer = find_methods(modality, task or None).head(top_k)
    print(f"\n{modality}" + (f", task contains {task!r}" if task else "") + f": top {len(answer)} methods")
    print(answer.to_string(index=False))

# %% tags=["remove-output"]
def finder_widget():
    """The live method finder: a modality dropdown and a task box (Jupyter and Colab only)."""
    modality_box = widgets.Dropdown(options=modalities("modality") + modalities("sub_modality"), value="CXR",
                                    description="modality")
    task_box = widgets.Text(value="", placeholder="task keyword, e.g. covid", description="task")
    finder_out = widgets.Output()

    def _update(_=None):
        with finder_out:
            finder_out.clear_output(wait=True)
            answer = find_methods(modality_box.value, task_box.value or None)
            if answer.empty:
                print("no study in the tables matches this modality and task")
            else:
                display(answer)

    modality_box.observe(_update, names="value")
    task_box.observe(_update, names="value")
    _update()
    display(widgets.VBox([widgets.HBox([modality_box, task_box]), finder_out]))


if live_widgets():        # off in the book build and the tests, where no one can use it
    finder_widget()

# %% [markdown]
# The `chapter` column links each family to its chapter (the [CAM](../book/cam.md),
# [gradient](../book/gradient.md), [attention](../book/attention.md),
# [perturbation](../book/perturbation.md), [text](../book/text.md) and
# [concept](../book/concepts.md) chapters among them); the cell below lists any family without
# one, whose `chapter` is `None`.

# %%
print("families without a chapter yet:", ", ".join(f for f in FAMILY_ORDER if f not in FAMILY_CHAPTERS))

# %% [markdown]
# ## Interpretable vision-language models (Table 10)
#
# Table 10 has its own columns: the image modality (always paired with text), the reference and
# the explanation the model gives. The previous page describes each model.

# %%
display(vlm[["image_modality", "reference", "methods"]])
concept = vlm["methods"].str.contains(r"concept|CBM|CSR", case=False)
glue("vlm_n", len(vlm), display=False)
glue("vlm_cxr", int((vlm["image_modality"] == "CXR + Text").sum()), display=False)
glue("vlm_derm", int((vlm["image_modality"] == "Dermatology + Text").sum()), display=False)
glue("vlm_concept", int(concept.sum()), display=False)
print(f"{int(concept.sum())} of {len(vlm)} models explain through concepts (concept prompts, bottlenecks, CSR)")

# %% [markdown]
# ## The whole atlas, sortable
#
# All rows of Tables 2-9 as transcribed. Click a header to sort, type in the search box to filter
# (e.g. `LIME` or `COVID`); the "Column visibility" button shows the note on every cell that
# needed a decision.

# %%
interactive_table(rows, visible=["table", "modality", "sub_modality", "methods", "reference", "task"],
                  classes="display compact", pageLength=10, lengthMenu=[10, 25, 50, 200])

# %% [markdown]
# ## Exercises
#
# ```{exercise-start}
# :label: atlas-ex-hybrid
# ```
#
# Section 3.10 of the survey says that explanations combining several kinds of evidence are
# gaining ground. Use `atlas_long()` to compute, for each modality group, the share of studies
# that name methods from two or more families. Which group combines families most often?
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{solution-start} atlas-ex-hybrid
# :class: dropdown
# ```

# %%
from collections import Counter  # noqa: E402
from itertools import combinations  # noqa: E402

fams_per_study = long.groupby(["modality", "table", "reference"])["family"].agg(lambda f: tuple(sorted(set(f))))
hybrid = (fams_per_study.map(len) >= 2).groupby("modality").mean().reindex(groups.index).round(2)
print(hybrid.to_string())
print("most often hybrid:", hybrid.idxmax(), f"({hybrid.max():.0%} of its studies)")
print("a single family is the majority in every group:", bool((hybrid < 0.5).all()))
pairs = Counter(p for fams in fams_per_study if len(fams) >= 2 for p in combinations(fams, 2))
print("most common pairs of families:", pairs.most_common(3))

# %% [markdown]
# The printed shares are this run's answer, and the last two lines say whether single-family
# studies are the majority everywhere and which pairs of families occur together most often. A
# pair of a CAM with a perturbation method (LIME or SHAP) is a map computed from the network's
# inside checked against one computed from its outputs alone, which is the kind of combination
# Section 3.10 has in mind. Combinations with text or concepts, the other half of that remark,
# are what to look for in the printed pairs.
#
# ```{solution-end}
# ```
#
# ```{exercise-start}
# :label: atlas-ex-count
# ```
#
# Grad-CAM is by far the most frequent method for chest X-rays in the atlas. Give two reasons why
# that count says little about whether Grad-CAM is the *best* explanation for chest X-rays, and
# say which chapter of this book measures what the count cannot.
#
# ```{exercise-end}
# ```
#
# ```{solution-start} atlas-ex-count
# :class: dropdown
# ```
#
# First, the tables list *representative* studies chosen by the survey's authors, not a
# systematic sample, so the counts describe their selection. Second, popularity follows
# convenience: Grad-CAM needs one backward pass, works on any CNN and is one line in
# pytorch-grad-cam or captum, and most of these studies report maps as illustrations without
# scoring them. Whether a map is faithful to the model and points at the lesion is measured by the
# [evaluation chapter](../book/evaluation.md) (deletion and insertion, pointing game, sanity
# checks) and compared across methods in the [benchmark chapter](../book/benchmark.md).
#
# ```{solution-end}
# ```
#
# ```{exercise-start}
# :label: atlas-ex-extend
# ```
#
# A new paper uses "Grad-CAM/++, CRP" (CRP: concept relevance propagation) on knee MRI. Pass the
# cell through `split_methods` and `canonical_method`. What happens to CRP, and which family of
# the survey would you give it?
#
# ```{exercise-end}
# ```
#
# ```{solution-start} atlas-ex-extend
# :class: dropdown
# ```

# %%
from medxai_lite.atlas import canonical_method, split_methods  # noqa: E402

pieces = split_methods("Grad-CAM/++, CRP")
print(pieces)
for piece in pieces:
    try:
        print(piece, "->", canonical_method(piece))
    except ValueError as err:
        print(piece, "->", "ValueError:", str(err)[:80], "...")

# %% [markdown]
# The slash expands to Grad-CAM and Grad-CAM++, both known. CRP is unknown, and the package says
# so instead of filing it under "Other": a new method needs an explicit entry. CRP propagates
# relevance backwards like LRP (gradient-based in the survey's Section 2.1.2) but reports it per
# learned concept, so it fits the survey's concept-based family as well as the gradient-based one;
# the atlas would record the family you choose in `EXTRA_FAMILIES`, with the reason.
#
# ```{solution-end}
# ```

# %% [markdown]
# ## What to remember
#
# - The survey's tables are a curated sample: they show where each family has been used, not
#   which method works best for a modality.
# - CAM-based maps, above all Grad-CAM, are the most used family of the tables; concept-,
#   example- and latent-based explanations are rare, and text appears mostly as report generation.
# - Use `find_methods(modality, task)` to start from the modality, then check the chosen method
#   with the [evaluation chapter](../book/evaluation.md)'s metrics on your own data.

# %% [markdown]
# ```{bibliography}
# :filter: docname in docnames
# ```

# %% tags=["remove-input"]
timer.glue()
